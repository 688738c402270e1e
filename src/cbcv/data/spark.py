"""The data layer on Apache Spark: the same validation and the same summary SQL as DuckDB.

DuckDB (embedded, the default) handles ten million customers on one machine. Use Spark when the
log no longer fits one machine's disk or time budget: the rules below are those of
:mod:`cbcv.data.load` and :mod:`cbcv.data.summary`, and the results are identical (tests compare
both engines on CDNOW and on simulated logs). ``pip install 'cbcv[spark]'`` and Java 17+.

Session
    :func:`spark_session` builds (or gets) a SparkSession: ``local[2]`` for a laptop or tests, or a
    cluster master (``spark://host:7077``, ``yarn``, ``k8s://https://host:443``) with Spark
    properties in ``conf`` (``spark.executor.memory`` and so on). It sets the session time zone
    to UTC and reads Parquet nanosecond timestamps (which Spark cannot type) as integers, which
    the readers here turn back into days.

Validation (:func:`load_transactions_spark`)
    CSV and Parquet files, with the rejection reasons, their order, the duplicate rule, the date
    and amount rules and the reconciliation of :func:`cbcv.data.load.load_transactions`. Nothing
    is collected to the driver but counts: the accepted rows and the rejections come back as
    Spark DataFrames or are written to Parquet (``out_dir``). :func:`load_result_to_pandas`
    collects a small result into the pandas :class:`~cbcv.data.load.LoadResult`.

    ``source_row`` is exact: CSV files are read as lines, numbered in file order across Spark's
    splits (a per-split count, no global sort), the header and blank lines excluded; ``line`` is
    the physical line. Parquet rows are numbered by Spark's ``_metadata.row_index``.

    The row rules are :mod:`cbcv.data.rules`' SQL in its Spark form (:mod:`cbcv.data.spark_rules`),
    and files are staged by :mod:`cbcv.data.spark_stage`; a local CSV file gets DuckDB's pre-scan
    first, so other encodings and file kinds are refused alike. Differences from DuckDB, all on
    malformed input: both read one record per physical line, but pathological quoting (a quote
    inside an unquoted field) may be counted differently, since Spark's CSV parser (PERMISSIVE
    mode, corrupt-record column) is more lenient than DuckDB's; a remote file's invalid UTF-8
    is replaced (U+FFFD) rather than refused; ``detail`` of a malformed row is generic.
    ``date_format`` is translated from strptime to Spark's pattern for the common directives
    (``%Y %m %d %H %M %S %I %p %f %b %B %a %A %j %y %%``; ``%y`` reads 00-99 as 2000-2099).
    Sums are plain ``sum``, not DuckDB's error-compensated ``fsum``: totals may differ in the
    last bits.

Summaries (:func:`customer_summary_spark`, :func:`calibration_holdout_spark`)
    Run :func:`cbcv.data.summary.summary_sql` in its Spark dialect on a temporary view and return
    a Spark DataFrame with the columns of :data:`cbcv.data.summary.SUMMARY_COLUMNS` (days as
    DATE); :func:`summary_to_pandas` gives the frame DuckDB gives.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

try:
    from pyspark import StorageLevel
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "cbcv.data.spark needs pyspark and Java 17+: pip install 'cbcv[spark]'"
    ) from exc

from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import SPARK
from cbcv.data.load import (
    REJECTION_REASONS,
    LoadOptions,
    LoadResult,
    Reconciliation,
    rejections_table,
)
from cbcv.data.reconciliation import RowCounts
from cbcv.data.rules import spark_date_pattern
from cbcv.data.spark_rules import check_rows, reconcile, rejection_rows
from cbcv.data.spark_stage import (
    URI,
    is_temporal,
    nanos_to_day,
    read_parquet,
    spark_errors,
    spark_source,
    stage_csv_spark,
    stage_parquet_spark,
)
from cbcv.data.summary import (
    HOLDOUT_COLUMNS,
    SUMMARY_COLUMNS,
    check_columns,
    required_day,
    summary_frame,
    summary_period,
    summary_sql,
)

__all__ = [
    "SparkLoadResult",
    "calibration_holdout_spark",
    "customer_summary_spark",
    "load_result_to_pandas",
    "load_transactions_spark",
    "spark_date_pattern",
    "spark_session",
    "summary_to_pandas",
    "to_spark_transactions",
]

#: Settings of every session built by :func:`spark_session` (``conf`` overrides them).
SESSION_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Spark cannot type Parquet TIMESTAMP(NANOS) (pandas' and cbcv.data.simulate's default):
    # read them as int64 nanoseconds, which the readers here turn into days.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
#: Added for ``local`` masters only.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}



# --------------------------------------------------------------------------- session


def spark_session(
    master: str = "local[2]",
    app_name: str = "cbcv",
    conf: Mapping[str, Any] | None = None,
) -> SparkSession:
    """Build a SparkSession, or get the running one, with settings suited to cbcv.

    Parameters
    ----------
    master
        As ``spark-submit --master`` takes it: ``local[2]`` (two threads on this machine; the
        default, for tests and small data), ``local[*]``, ``spark://host:7077`` (a standalone
        cluster), ``yarn``, ``k8s://https://host:443``.
    app_name
        The application's name in the cluster's UI.
    conf
        Spark properties, e.g. ``{"spark.driver.memory": "8g", "spark.executor.memory":
        "16g", "spark.executor.instances": "20"}``; values are passed as text. They override
        :data:`SESSION_DEFAULTS` (UTC session time zone, Parquet nanosecond timestamps as
        integers, Arrow transfers) and, for ``local`` masters, :data:`LOCAL_DEFAULTS` (no UI)
        and ``spark.sql.shuffle.partitions`` = twice the local threads (Spark's 200 is for
        clusters), with the Python workers running this interpreter (``spark.pyspark.python``;
        on a cluster, point it at an environment with cbcv installed on every executor).

    Notes
    -----
    No state is kept here: Spark itself holds the active session. Properties that configure the
    JVM (``spark.driver.memory``, ``spark.driver.extraJavaOptions``, ``spark.jars.packages``)
    take effect only when this call starts it, i.e. for the first session of the Python process;
    when a session is already running, ``getOrCreate`` returns it, applies the SQL properties of
    ``conf`` and ignores ``master``. Stop it with ``session.stop()``.
    """
    if not isinstance(master, str) or not master.strip():
        raise ConfigError(f"spark master must be a non-empty string, got {master!r}")
    settings: dict[str, str] = dict(SESSION_DEFAULTS)
    if master.startswith("local"):
        settings.update(LOCAL_DEFAULTS)
        partitions = str(2 * _local_threads(master))
        settings["spark.sql.shuffle.partitions"] = partitions
        settings["spark.default.parallelism"] = partitions
        # Python workers run this interpreter (and so see cbcv and its dependencies). PySpark
        # takes the workers' interpreter from PYSPARK_PYTHON when it starts the context; an
        # explicit setting (environment or conf) wins. On a cluster, point spark.pyspark.python
        # (or PYSPARK_PYTHON) at an environment with cbcv installed on every executor.
        os.environ.setdefault(
            "PYSPARK_PYTHON", str((conf or {}).get("spark.pyspark.python", sys.executable))
        )
    for key, value in (conf or {}).items():
        settings[str(key)] = _conf_text(value)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _conf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _local_threads(master: str) -> int:
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if m is None or m.group(1) is None:
        return 1
    if m.group(1) == "*":
        return os.cpu_count() or 1
    return max(1, int(m.group(1)))


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class SparkLoadResult:
    """Accepted transactions, the quarantined rows and the reconciliation, on Spark.

    ``transactions``: ``customer_id`` string, ``date`` DATE, ``amount`` double, ``source_row``
    long, in source order. ``rejections``: the columns of :data:`cbcv.data.load.REJECTION_COLUMNS`
    (``line``: the CSV file's line; NULL for Parquet), ordered by source row and reason. With
    ``out_dir`` they are read back from ``transactions_path`` / ``rejections_path``; without it
    they rest on a persisted (memory and disk) intermediate that :meth:`unpersist` releases.
    """

    transactions: DataFrame
    rejections: DataFrame
    reconciliation: Reconciliation
    transactions_path: str | None = None
    rejections_path: str | None = None
    _persisted: DataFrame | None = field(default=None, repr=False, compare=False)

    def unpersist(self) -> None:
        """Release the persisted intermediate (the DataFrames then recompute from the source)."""
        if self._persisted is not None:
            self._persisted.unpersist()


def load_transactions_spark(
    spark: SparkSession,
    source: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> SparkLoadResult:
    """Read a CSV or Parquet transaction log on Spark, validate each row and reconcile.

    The ``options`` and rules are those of :func:`cbcv.data.load.load_transactions` (the fields
    of :class:`~cbcv.data.load.LoadOptions` but ``table``; see the module notes for the few
    differences on malformed CSV). ``source`` is a local path or a URI Spark reads
    (``hdfs://``, ``s3a://``, ...; no sha256 is computed for those). ``out_dir`` writes
    ``transactions.parquet`` and ``rejections.parquet`` there (Spark folders, replaced if
    present) and returns DataFrames reading them.

    Raises
    ------
    DataError
        Missing or unreadable file, unsupported type, empty file, missing column.
    ConfigError
        ``columns``, ``as_of``, ``date_format``, ``delimiter``, ``null_tokens``,
        ``earliest_date`` or ``timezone`` is invalid.
    """
    settings = LoadOptions(**options)
    if settings.table is not None:
        raise ConfigError("table names a DuckDB database table: Spark reads CSV and Parquet files")
    parsed = settings.parsed()
    date_format, reject_duplicates = settings.date_format, settings.reject_duplicates
    as_of_day, rules = parsed.as_of, parsed.rules
    if date_format is not None:
        spark_date_pattern(date_format)  # a directive Spark cannot read fails before any work
    src = spark_source(source, settings.source_name)
    if src.kind == "csv":
        staged = stage_csv_spark(spark, src, parsed.columns, parsed.delimiter)
    else:
        staged = stage_parquet_spark(spark, src, parsed.columns, rules.timezone)
    notes: list[str] = []
    if date_format is not None and staged.typed_date:
        notes.append(
            f"date column {staged.columns['date']!r} is typed as a date: date_format was not needed"
        )
    checked = check_rows(staged, as_of_day, date_format, reject_duplicates, rules).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    counts = _row_counts(checked, staged.name)
    accepted = checked.filter(F.col("reason").isNull()).select(
        "customer_id", "date", "amount", "source_row"
    )
    with spark_errors(staged.name, "cannot reconcile"):
        reconciliation = reconcile(
            spark, accepted, staged, counts, as_of_day, reject_duplicates, tuple(notes),
            rules.zero_amount_purchases,
        )
    transactions = accepted.orderBy("source_row")
    rejections = rejection_rows(checked, staged, as_of_day, rules)
    if out_dir is None:
        return SparkLoadResult(transactions, rejections, reconciliation, _persisted=checked)
    folder = str(out_dir)
    if not URI.match(folder):
        Path(folder).expanduser().mkdir(parents=True, exist_ok=True)
        folder = str(Path(folder).expanduser().resolve())
    tx_path, rej_path = f"{folder}/transactions.parquet", f"{folder}/rejections.parquet"
    with spark_errors(staged.name, f"cannot write to {folder}"):
        transactions.write.mode("overwrite").parquet(tx_path)
        rejections.write.mode("overwrite").parquet(rej_path)
        checked.unpersist()
        transactions = spark.read.parquet(tx_path)
        rejections = spark.read.parquet(rej_path)
    return SparkLoadResult(transactions, rejections, reconciliation, tx_path, rej_path)


def _row_counts(checked: DataFrame, name: str) -> RowCounts:
    """Rows read, accepted and rejected (by reason) of the checked rows; DataError when none."""
    with spark_errors(name, "cannot validate rows"):
        counts = {r["reason"]: int(r["count"]) for r in checked.groupBy("reason").count().collect()}
    rows_read = sum(counts.values())
    if rows_read == 0:
        checked.unpersist()
        raise DataError(f"{name}: empty file (no data rows)")
    by_reason = {reason: counts.get(reason, 0) for reason in REJECTION_REASONS}
    return RowCounts.tally(rows_read, counts.get(None, 0), by_reason)


def load_result_to_pandas(result: SparkLoadResult) -> LoadResult:
    """Collect a (small) Spark load result into the pandas :class:`~cbcv.data.load.LoadResult`
    that :func:`cbcv.data.load.load_transactions` returns: same columns, dtypes and order."""
    tx = result.transactions.toPandas().sort_values("source_row", kind="stable")
    transactions = pd.DataFrame(
        {
            "customer_id": tx["customer_id"].astype(str),
            "date": pd.to_datetime(tx["date"]).astype("datetime64[ns]"),
            "amount": tx["amount"].astype("float64"),
            "source_row": tx["source_row"].astype("int64"),
        }
    ).reset_index(drop=True)
    rej = result.rejections.toPandas()
    order = {reason: i for i, reason in enumerate(REJECTION_REASONS)}
    rej = rej.assign(_ord=rej["reason"].map(order)).sort_values(
        ["source_row", "_ord"], na_position="last", kind="stable"
    )
    rejections = rejections_table(rej)
    return LoadResult(
        transactions=transactions, rejections=rejections, reconciliation=result.reconciliation
    )


# --------------------------------------------------------------------------- summaries


SparkTransactions = DataFrame | str | os.PathLike[str]


def to_spark_transactions(spark: SparkSession, transactions: pd.DataFrame) -> DataFrame:
    """A pandas transaction log (``customer_id``, ``date``, ``amount``) as a Spark DataFrame with
    ``date`` as DATE (no time-zone conversion). For data that fits the driver's memory."""
    check_columns([str(c) for c in transactions.columns], "transactions DataFrame")
    frame = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"]
            .astype(object)
            .where(transactions["customer_id"].notna(), None)
            .map(lambda v: None if v is None else str(v)),
            "date": pd.to_datetime(transactions["date"]).dt.date,
            "amount": pd.to_numeric(transactions["amount"], errors="coerce").astype("float64"),
        }
    )
    return spark.createDataFrame(frame, "customer_id string, date date, amount double")


def _normalised(spark: SparkSession, transactions: SparkTransactions) -> tuple[DataFrame, str]:
    """``customer_id`` string, ``date`` DATE, ``amount`` double; a display name."""
    nanos: frozenset[str] = frozenset()
    if isinstance(transactions, DataFrame):
        name = "transactions DataFrame"
        frame = transactions
    elif isinstance(transactions, str | os.PathLike):
        src = spark_source(transactions, None)
        name = src.name
        if src.kind != "parquet":
            raise DataError(
                f"{name}: summaries read validated transactions from Parquet; validate a CSV "
                "with load_transactions_spark(..., out_dir=...) first"
            )
        frame, nanos = read_parquet(spark, src)
    else:
        raise DataError(
            "transactions must be a Spark DataFrame or a Parquet path, got "
            f"{type(transactions).__name__}"
        )
    check_columns(list(frame.columns), name)
    kinds = {f.name: f.dataType for f in frame.schema.fields}
    if "date" in nanos:
        day = nanos_to_day(F.col("date"))
    elif is_temporal(kinds["date"]):
        day = F.col("date").cast("date")
    else:
        day = F.expr(f"try_cast({SPARK.ident('date')} AS DATE)")
    tx = frame.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        day.alias("date"),
        F.expr(f"try_cast({SPARK.ident('amount')} AS DOUBLE)").alias("amount"),
    )
    with spark_errors(name, "cannot read transactions"):
        missing = tx.filter(
            F.col("customer_id").isNull() | F.col("date").isNull() | F.col("amount").isNull()
        ).count()
    if missing:
        raise DataError(
            f"{name}: {missing} row(s) with a missing customer_id, date or amount; load the "
            "data with cbcv.data.spark.load_transactions_spark first"
        )
    return tx, name


@dataclass(frozen=True)
class SparkSummaryOptions:
    """The keywords of :func:`customer_summary_spark` and :func:`calibration_holdout_spark`: those
    of :func:`cbcv.data.summary.customer_summary` (``holdout_end``: the holdout columns too)."""

    calibration_end: Any
    holdout_end: Any = None
    time_unit: str = "week"
    cohort_period: str = "quarter"
    observation_start: Any = None
    zero_amount_purchases: bool = False


def _summarise(
    spark: SparkSession, transactions: SparkTransactions, options: SparkSummaryOptions
) -> DataFrame:
    end, stop, start = summary_period(
        options.calibration_end, options.holdout_end, options.observation_start
    )
    view = f"cbcv_tx_{uuid.uuid4().hex}"
    sql = summary_sql(
        end, stop, options.time_unit, options.cohort_period, start, dialect="spark", source=view,
        zero_amount_purchases=options.zero_amount_purchases,
    )
    tx, name = _normalised(spark, transactions)
    tx.createOrReplaceTempView(view)
    try:
        with spark_errors(name, "cannot summarise"):
            out = spark.sql(sql)
    finally:
        spark.catalog.dropTempView(view)  # the DataFrame keeps the view's plan
    columns = [
        F.col("customer_id").cast("string").alias("customer_id"),
        F.col("cohort").cast("string").alias("cohort"),
        F.col("first_purchase_ts").cast("date").alias("first_purchase"),
        F.col("last_purchase_ts").cast("date").alias("last_purchase"),
        F.col("x").cast("long").alias("x"),
        F.col("t_x").cast("double").alias("t_x"),
        F.col("T").cast("double").alias("T"),
        F.col("n_transactions").cast("long").alias("n_transactions"),
        *[F.col(c).cast("double").alias(c) for c in SUMMARY_COLUMNS[8:]],
    ]
    if stop is not None:
        columns += [
            F.col("x_holdout").cast("long").alias("x_holdout"),
            F.col("spend_holdout").cast("double").alias("spend_holdout"),
            F.col("T_holdout").cast("double").alias("T_holdout"),
        ]
    return out.select(*columns)


def customer_summary_spark(
    spark: SparkSession, transactions: SparkTransactions, **options: Any
) -> DataFrame:
    """:func:`cbcv.data.summary.customer_summary` on Spark, as a (lazy) Spark DataFrame.

    ``transactions`` is a Spark DataFrame or the path/URI of a Parquet file of validated
    transactions (``customer_id``, ``date``, ``amount``; other columns ignored); ``options`` are
    the fields of :class:`SparkSummaryOptions` (``calibration_end`` required; ``time_unit="week"``,
    ``cohort_period="quarter"``, ``observation_start=None``, ``zero_amount_purchases=False``).
    The columns are :data:`~cbcv.data.summary.SUMMARY_COLUMNS` with ``first_purchase`` /
    ``last_purchase`` as DATE, ``x`` / ``n_transactions`` long and the rest double, sorted by
    ``customer_id``. The input is checked for missing values (one pass); an empty result is
    reported by :func:`summary_to_pandas`.
    """
    return _summarise(spark, transactions, SparkSummaryOptions(**options))


def calibration_holdout_spark(
    spark: SparkSession, transactions: SparkTransactions, *, holdout_end: Any, **options: Any
) -> DataFrame:
    """:func:`customer_summary_spark` plus ``x_holdout`` (long), ``spend_holdout`` and
    ``T_holdout`` (double), as :func:`cbcv.data.summary.calibration_holdout`."""
    required_day(holdout_end, "holdout_end")
    settings = SparkSummaryOptions(holdout_end=holdout_end, **options)
    return _summarise(spark, transactions, settings)


def summary_to_pandas(summary: DataFrame, *, name: str = "Spark summary") -> pd.DataFrame:
    """Collect a Spark summary into the frame DuckDB's summaries give: the same columns and
    dtypes, sorted by ``customer_id``. DataError when it has no row. For data that fits the
    driver (CDNOW-sized); write large summaries with ``summary.write.parquet(...)`` instead."""
    out = summary.toPandas()
    holdout = all(c in out.columns for c in HOLDOUT_COLUMNS)
    return summary_frame(out, name, None, holdout=holdout)
