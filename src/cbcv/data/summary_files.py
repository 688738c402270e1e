"""Summary files: the per-customer summaries written to Parquet, and what is read from them.

:func:`cbcv.data.summary.customer_summary` returns one pandas row per customer, which is right
for an analyst's notebook and wrong for ten million customers. The report's pipeline
(:class:`cbcv.pipeline.company_data.CompanyData`) runs the same SQL
(:func:`cbcv.data.summary.summary_sql`, written once) through this module, the one place the
summary files are written, and reads back only what each step needs, whatever the size:

* :func:`write_summaries` writes the per-customer summary (and holdout columns) to Parquet;
* :func:`summary_counts` counts customers per distinct ``(x, t_x, T)`` (or any columns) of such
  a file, the only thing a frequency model's fit needs (pass the frame with its ``count`` column
  to ``BetaGeoModel.fit`` and friends);
* :func:`sample_rows` draws a reproducible random sample of a file's rows (e.g. repeat buyers
  for the gamma-gamma spend model, whose likelihood cannot be compressed: spend is continuous).

DuckDB's ``memory_limit`` caps the memory of each step; beyond it DuckDB spills to a private
temporary folder, so the steps run on files larger than memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import first_line, ident, literal, scratch_connection
from cbcv.data.summary import (
    HOLDOUT_COLUMNS,
    SUMMARY_COLUMNS,
    register_transactions,
    summary_period,
    summary_sql,
)

#: SQL type of each column of a summary file that is not DOUBLE: one schema whichever engine
#: computed it.
FILE_TYPES: dict[str, str] = {
    "customer_id": "VARCHAR", "cohort": "VARCHAR", "first_purchase": "TIMESTAMP",
    "last_purchase": "TIMESTAMP", "x": "BIGINT", "n_transactions": "BIGINT", "x_holdout": "BIGINT",
}

#: Columns a frequency model's fit reads.
RFT: tuple[str, ...] = ("x", "t_x", "T")


@dataclass(frozen=True)
class WrittenSummaries:
    """What :func:`write_summaries` wrote: the file, its customers and the time unit used."""

    path: Path
    n_customers: int
    time_unit: str
    holdout: bool


def write_summaries(
    transactions: pd.DataFrame | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    calibration_end: Any,
    holdout_end: Any = None,
    zero_amount_purchases: bool = False,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
    engine: str = "duckdb",
    memory_limit: str | None = None,
    threads: int | None = None,
    spark_master: str = "local[2]",
    spark_conf: Mapping[str, str] | None = None,
) -> WrittenSummaries:
    """Per-customer summaries of validated transactions (a Parquet path or a DataFrame) written
    to the Parquet file ``out``, never into pandas.

    The rows and columns are those of :func:`cbcv.data.summary.customer_summary` (with
    ``holdout_end``: of :func:`cbcv.data.summary.calibration_holdout`), sorted by customer id.
    ``engine="spark"`` runs the same SQL on Spark (:mod:`cbcv.data.spark`, session from
    ``spark_master`` and ``spark_conf``) and writes its result here; DuckDB (the default) is
    capped by ``memory_limit`` and ``threads``.
    """
    end, stop, start = summary_period(calibration_end, holdout_end, observation_start)
    cols = [*SUMMARY_COLUMNS, *(HOLDOUT_COLUMNS if stop is not None else ())]
    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        if engine == "spark":
            frame = _spark_summaries(transactions, end, stop, time_unit, cohort_period, start,
                                     zero_amount_purchases, spark_master, spark_conf)
            con.register("spark_summary", frame)
            name, query, renamed = "Spark summary", "SELECT * FROM spark_summary", {}
        else:
            name = register_transactions(con, transactions)
            query = summary_sql(end, stop, time_unit, cohort_period, start,
                                zero_amount_purchases=zero_amount_purchases)
            renamed = {"first_purchase": "first_purchase_ts", "last_purchase": "last_purchase_ts"}
        select = ", ".join(
            f"CAST({ident(renamed.get(c, c))} AS {FILE_TYPES.get(c, 'DOUBLE')}) AS {ident(c)}"
            for c in cols
        )
        try:
            con.execute(
                f"COPY (SELECT {select} FROM ({query}) ORDER BY customer_id) TO {literal(str(path))} "
                "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 1000000)"
            )
            n = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(path))})").fetchone()
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot summarise ({first_line(exc)})") from exc
    n_customers = int(n[0]) if n else 0
    if n_customers == 0:
        raise DataError(
            f"{name}: no customer made a purchase on or before calibration_end {end.isoformat()}"
        )
    return WrittenSummaries(
        path=path, n_customers=n_customers, time_unit=time_unit, holdout=stop is not None
    )


def _spark_summaries(
    transactions: pd.DataFrame | str | os.PathLike[str], end: date, stop: date | None,
    time_unit: str, cohort_period: str, start: date | None, zero_amount_purchases: bool,
    master: str, conf: Mapping[str, str] | None,
) -> pd.DataFrame:
    """The summaries computed on Spark, collected as DuckDB's frame
    (:func:`cbcv.data.spark.summary_to_pandas`)."""
    try:
        from cbcv.data import spark as sp
    except ImportError as exc:
        raise ConfigError(
            "engine.name: spark needs pyspark and Java 17+ (pip install 'cbcv[spark]')"
        ) from exc
    session = sp.spark_session(master=master, conf=dict(conf or {}))
    data = (
        sp.to_spark_transactions(session, transactions)
        if isinstance(transactions, pd.DataFrame)
        else transactions
    )
    common: dict[str, Any] = {"calibration_end": end, "time_unit": time_unit,
                              "cohort_period": cohort_period, "observation_start": start,
                              "zero_amount_purchases": zero_amount_purchases}
    if stop is None:
        out = sp.customer_summary_spark(session, data, **common)
    else:
        out = sp.calibration_holdout_spark(session, data, holdout_end=stop, **common)
    return sp.summary_to_pandas(out)


def _source(summaries: str | os.PathLike[str] | WrittenSummaries) -> tuple[Path, str]:
    path = summaries.path if isinstance(summaries, WrittenSummaries) else Path(summaries)
    if not path.is_file():
        raise DataError(f"{path.name}: file not found ({path})")
    return path, f"read_parquet({literal(str(path))})"


def summary_counts(
    summaries: str | os.PathLike[str] | WrittenSummaries,
    columns: Sequence[str] = RFT,
    *,
    where: str | None = None,
    resolution: float | None = None,
    sums: Sequence[str] = (),
    memory_limit: str | None = None,
) -> pd.DataFrame:
    """Customers per distinct value of ``columns`` in a summary Parquet file: the ``columns``
    plus ``count`` (int64), sorted by ``columns``; each of ``sums`` (other columns of the file)
    adds ``<column>_sum``, its sum over the group's customers with missing values as 0. ``where`` is an optional SQL filter on the
    file's columns (e.g. ``"x > 0"``). The frequency models fit this frame exactly as they
    would fit the per-customer summary (their likelihood is a sum over customers).

    ``resolution`` (in the summaries' time unit, e.g. ``1.0`` for whole weeks) rounds ``t_x``
    and ``T`` to the nearest multiple before counting. It is an approximation, off by default:
    it shrinks the number of distinct rows (and so the cost of a gradient) by orders of
    magnitude on large bases whose times are exact days, but moves the estimates a little
    (CDNOW's r goes from 0.243 to 0.231 at whole weeks). ``attrs["n_distinct_exact"]`` then
    holds the unrounded count and ``attrs["resolution"]`` the rounding, so a fit can report it.
    """
    path, relation = _source(summaries)
    cols = ", ".join(ident(c) for c in columns)
    filt = f"WHERE {where}" if where else ""
    if resolution is not None and not resolution > 0:
        raise ConfigError(f"resolution must be a positive number of time units, got {resolution!r}")
    rounded = {"t_x", "T"} if resolution is not None else set()
    q = float(resolution or 1.0)
    select = ", ".join(
        f"round({ident(c)} / {q!r}) * {q!r} AS {ident(c)}" if c in rounded else ident(c)
        for c in columns
    )
    select += "".join(f", {ident(c)}" for c in sums)
    totals = "".join(f", coalesce(sum({ident(c)}), 0) AS {ident(c + '_sum')}" for c in sums)
    with scratch_connection(memory_limit=memory_limit) as con:
        try:
            out = con.execute(
                f"SELECT {cols}, count(*) AS count{totals} FROM (SELECT {select} FROM {relation} {filt}) "
                f"GROUP BY {cols} ORDER BY {cols}"
            ).df()
            exact = None
            if rounded:
                exact = con.execute(
                    f"SELECT count(*) FROM (SELECT DISTINCT {cols} FROM {relation} {filt})"
                ).fetchone()
        except duckdb.Error as exc:
            raise DataError(f"{path.name}: cannot count summaries ({first_line(exc)})") from exc
    out["count"] = out["count"].astype("int64")
    out.attrs["resolution"] = resolution
    out.attrs["n_distinct_exact"] = int(exact[0]) if exact else len(out)
    return out


def column_moments(
    summaries: str | os.PathLike[str] | WrittenSummaries,
    column: str,
    *,
    where: str | None = None,
    memory_limit: str | None = None,
) -> tuple[int, float, float]:
    """The number of customers with a value of ``column`` in a summary Parquet file, its mean
    and its sample standard deviation (NaN for fewer than two), optionally under the SQL filter
    ``where`` (e.g. the first-purchase spend of the customers acquired since a date)."""
    path, relation = _source(summaries)
    col = ident(column)
    filt = f"AND ({where})" if where else ""
    with scratch_connection(memory_limit=memory_limit) as con:
        try:
            n, mean, sd = con.execute(
                f"SELECT count({col}), avg({col}), stddev_samp({col}) FROM {relation} "
                f"WHERE {col} IS NOT NULL {filt}"
            ).fetchone()
        except duckdb.Error as exc:
            raise DataError(f"{path.name}: cannot summarise {column} ({first_line(exc)})") from exc
    nan = float("nan")
    return int(n), float(mean) if mean is not None else nan, float(sd) if sd is not None else nan


def sample_rows(
    summaries: str | os.PathLike[str] | WrittenSummaries,
    n: int,
    *,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    seed: int = 0,
    memory_limit: str | None = None,
) -> pd.DataFrame:
    """A reproducible simple random sample (without replacement) of at most ``n`` rows of a
    summary Parquet file, optionally filtered by ``where``; all rows when fewer match.

    Rows are ranked by a seeded hash of their position in the file, so the sample depends only
    on the file, ``where``, ``n`` and ``seed`` (not on DuckDB's threads)."""
    if n <= 0:
        raise ConfigError(f"sample size must be positive, got {n}")
    path, _ = _source(summaries)
    rel = f"read_parquet({literal(str(path))}, file_row_number = true)"
    cols = "*" if columns is None else ", ".join(ident(c) for c in columns)
    filt = f"WHERE {where}" if where else ""
    with scratch_connection(memory_limit=memory_limit) as con:
        try:
            out = con.execute(
                f"SELECT {cols} FROM (SELECT * FROM {rel} {filt}) "
                f"ORDER BY hash(file_row_number + CAST({int(seed)} AS BIGINT) * 1000003), file_row_number "
                f"LIMIT {int(n)}"
            ).df()
        except duckdb.Error as exc:
            raise DataError(f"{path.name}: cannot sample ({first_line(exc)})") from exc
    return out.drop(columns=["file_row_number"], errors="ignore")
