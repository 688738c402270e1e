"""Run the customer summaries on the engine a company config chooses (``engine.name``).

``duckdb`` (the default) runs :mod:`cbcv.data.summary` embedded, capped by ``engine.memory_limit``
and ``engine.threads``; ``spark`` runs the same SQL through :mod:`cbcv.data.spark` on
``engine.spark.master`` with ``engine.spark.conf``. Both return the same pandas frame, so this is
for data whose summaries fit in memory (CDNOW-sized and up to a few million customers); for more,
keep the Spark DataFrame (:func:`cbcv.data.spark.customer_summary_spark`) or DuckDB's Parquet
output (:mod:`cbcv.data.streaming`).
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from cbcv.config import EngineSettings
from cbcv.core.errors import ConfigError
from cbcv.data.summary import calibration_holdout, customer_summary


def summaries_for_engine(
    engine: EngineSettings | None,
    transactions: pd.DataFrame | str | os.PathLike[str],
    *,
    calibration_end: Any,
    holdout_end: Any = None,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Per-customer summaries (with the holdout columns when ``holdout_end`` is given) of
    validated ``transactions`` (a DataFrame or a Parquet path) on the configured engine.

    The result is that of :func:`cbcv.data.summary.customer_summary` /
    :func:`~cbcv.data.summary.calibration_holdout` whichever engine runs it. ``engine`` is a
    config's ``engine`` section (``None``: DuckDB with its defaults).
    """
    settings = engine if engine is not None else EngineSettings()
    common: dict[str, Any] = {
        "calibration_end": calibration_end,
        "time_unit": time_unit,
        "cohort_period": cohort_period,
        "observation_start": observation_start,
        "zero_amount_purchases": zero_amount_purchases,
    }
    if settings.name == "duckdb":
        caps = {"memory_limit": settings.memory_limit, "threads": settings.threads}
        if holdout_end is None:
            return customer_summary(transactions, **common, **caps)
        return calibration_holdout(transactions, holdout_end=holdout_end, **common, **caps)
    try:
        from cbcv.data import spark as sp
    except ImportError as exc:
        raise ConfigError(
            "engine.name: spark needs pyspark and Java 17+ (pip install 'cbcv[spark]')"
        ) from exc
    session = sp.spark_session(master=settings.spark.master, conf=settings.spark.conf)
    data = (
        sp.to_spark_transactions(session, transactions)
        if isinstance(transactions, pd.DataFrame)
        else transactions
    )
    if holdout_end is None:
        out = sp.customer_summary_spark(session, data, **common)
    else:
        out = sp.calibration_holdout_spark(session, data, holdout_end=holdout_end, **common)
    return sp.summary_to_pandas(out)
