"""The scoring engine's first pass on Spark, for bases spread over a cluster: :func:`score_spark`.

The same per-key evaluation as :func:`cbcv.clv.scoring.score_base` (:func:`cbcv.clv.keys.key_pass`),
run by ``mapInPandas`` over the distinct keys that Spark aggregates; the posterior, a few numbers
per draw (:class:`cbcv.clv.pairing.ScoringDraws`), is broadcast. ``pyspark`` is imported only
when it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cbcv.clv.keys import INTERVAL_DRAWS, KEY, MAX_BYTES, key_pass
from cbcv.clv.pairing import ScoringDraws
from cbcv.core.draws import interval_bounds
from cbcv.core.errors import DataError

#: Per-key means and intervals a partition sends back.
KEY_STATS = ("p_alive_mean", "p_alive_low", "p_alive_high", "dert_mean", "expected_mean", "expected_low",
             "expected_high", "a", "b", "u", "v")
#: The per-key statistics that exist only with a horizon.
HORIZON_STATS = ("expected_mean", "expected_low", "expected_high")

@dataclass(frozen=True)
class SparkScored:
    """Result of :func:`score_spark`: ``customers`` is a lazy Spark DataFrame (the summary's
    ``customer_id``, ``cohort`` when present, ``x``, ``t_x``, ``T``, then ``clv_mean``,
    ``p_alive_mean``, ``p_alive_low``, ``p_alive_high``, with a horizon ``expected_mean``,
    ``expected_low``, ``expected_high``, then ``dert_mean``, ``spend_mean``);
    ``total`` and ``expected_total`` are the per-draw totals, collected."""

    customers: Any
    total: np.ndarray
    expected_total: np.ndarray | None
    n_keys: int


def score_spark(
    spark: Any,
    summaries: Any,
    draws: ScoringDraws,
    *,
    horizon: float | None = None,
    interval: float = 0.9,
    interval_draws: int | None = INTERVAL_DRAWS,
    max_bytes: int = MAX_BYTES,
) -> SparkScored:
    """:func:`cbcv.clv.scoring.score_customers` on Spark, for bases spread over a cluster.

    ``summaries``: a Spark DataFrame with the summary columns (e.g. from
    :func:`cbcv.data.spark.customer_summary_spark`). The distinct keys and their counts are
    aggregated in Spark; ``mapInPandas`` evaluates each partition of keys over every draw with
    :func:`key_pass` (the posterior, a few numbers per draw, is broadcast); the per-key means are
    joined back to the customers. Per-draw totals come back to the driver, one array per
    partition. P(alive) and the expected transactions depend on the key alone, so their
    ``interval`` (over ``interval_draws`` evenly spaced draws, as the local engine reads them) is
    computed per key too. Ranks, value deciles and the per-customer CLV intervals need a global
    order or the draws per customer: use :func:`cbcv.clv.scoring.score_customers` on the Parquet
    output for those.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T_

    cols = summaries.columns
    missing = [c for c in ("customer_id", *KEY, "mean_repeat_spend") if c not in cols]
    if missing:
        raise DataError(f"Spark summaries: missing column(s) {', '.join(missing)}")
    z = F.when(F.col("x") > 0, F.coalesce(F.col("mean_repeat_spend").cast("double"), F.lit(0.0))).otherwise(F.lit(0.0))
    cust = summaries.select(
        "customer_id", *(["cohort"] if "cohort" in cols else []),
        *[F.col(c).cast("double").alias(c) for c in KEY], z.alias("z"),
    )
    keys = cust.groupBy(*KEY).agg(F.count(F.lit(1)).cast("double").alias("n"), F.sum("z").alias("sz"))
    shipped = spark.sparkContext.broadcast(draws)
    stats = [s for s in KEY_STATS if horizon is not None or s not in HORIZON_STATS]
    bounds = interval_bounds(interval)
    schema = T_.StructType(
        [T_.StructField(c, T_.DoubleType()) for c in (*KEY, *stats)]
        + [T_.StructField("total", T_.ArrayType(T_.DoubleType())),
           T_.StructField("expected_total", T_.ArrayType(T_.DoubleType()))]
    )

    def evaluate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        d = shipped.value
        for batch in batches:
            if batch.empty:
                continue
            res = key_pass(d, batch.reset_index(drop=True), horizon=horizon, max_bytes=max_bytes, bounds=bounds,
                           interval_draws=interval_draws)
            out = res.means[[*KEY, *stats]].copy()
            out["total"] = None
            out["expected_total"] = None
            extra = {c: [np.nan] for c in (*KEY, *stats)}
            extra["total"] = [res.total.tolist()]
            extra["expected_total"] = [None if res.expected_total is None else res.expected_total.tolist()]
            yield pd.concat([out, pd.DataFrame(extra)], ignore_index=True)

    evaluated = keys.mapInPandas(evaluate, schema).cache()
    try:
        parts = evaluated.where(F.col("total").isNotNull()).select("total", "expected_total").collect()
        total = np.sum([np.asarray(r["total"]) for r in parts], axis=0)
        expected_total = (
            np.sum([np.asarray(r["expected_total"]) for r in parts], axis=0) if horizon is not None else None
        )
        key_stats = evaluated.where(F.col("total").isNull()).drop("total", "expected_total")
        n_keys = key_stats.count()
    finally:
        shipped.unpersist()
    joined = cust.join(F.broadcast(key_stats) if n_keys < 1_000_000 else key_stats, on=list(KEY))
    customers = joined.select(
        "customer_id", *(["cohort"] if "cohort" in cols else []), *KEY,
        (F.col("u") + F.col("v") * F.col("z")).alias("clv_mean"),
        "p_alive_mean", "p_alive_low", "p_alive_high", *(HORIZON_STATS if horizon is not None else ()), "dert_mean",
        (F.col("a") + F.col("b") * F.col("z")).alias("spend_mean"),
    )
    return SparkScored(customers=customers, total=total, expected_total=expected_total, n_keys=int(n_keys))
