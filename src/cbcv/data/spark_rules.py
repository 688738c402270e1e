"""The row checks of :func:`cbcv.data.spark.load_transactions_spark`: the rules of
:mod:`cbcv.data.rules` in their Spark SQL spelling, checked in the order, with the rejection rows
and the reconciliation, of :func:`cbcv.data.load.load_transactions`.

Staged rows (:class:`SparkStaged`) carry every source column as text, as DuckDB stages them:
floating-point columns keep integral values' integer text (NaN is missing), dates are
``yyyy-MM-dd`` and timestamps their wall-clock text; a zone-aware timestamp is written in the
configured ``timezone``, else in its own zone (UTC when it has none), computed from the instant
itself, so that neither the machine's nor the Spark session's time zone changes a date.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from cbcv.data._sql import SPARK
from cbcv.data.load import REJECTION_COLUMNS
from cbcv.data.reconciliation import Reconciliation, RowCounts, reconciliation_of
from cbcv.data.rules import (
    RowRules,
    amount_sql,
    date_sql,
    id_sql,
    integral_text_sql,
    rejection_details,
    row_checks,
)
from cbcv.data.transactions import TRANSACTION_COLUMNS, reconciliation_sql

_MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class SparkStaged:
    """Rows of a source: ``source_row``, ``line``, raw text columns ``c0..cN``, ``malformed``
    and ``raw_line``. ``typed_date``: the date column was a date or timestamp (its text is read
    with the default rule, not ``date_format``)."""

    name: str
    kind: str
    sha256: str | None
    columns: dict[str, str]  # contract name -> source column
    internal: dict[str, str]  # contract name -> c<i>
    all_internal: tuple[str, ...]
    typed_date: bool
    rows: DataFrame


# --------------------------------------------------------------------------- typed columns as text


def wall_clock_text(micros: str) -> str:
    """SQL: the text (``yyyy-MM-dd HH:mm:ss[.ffffff]``) of a wall-clock time given as
    microseconds since 1970-01-01 00:00, with no time-zone arithmetic."""
    day = f"date_from_unix_date(CAST(floor(({micros}) / {_MICROS_PER_DAY}) AS INT))"
    tod = f"pmod({micros}, {_MICROS_PER_DAY})"
    return (
        f"CAST(make_timestamp_ntz(year({day}), month({day}), day({day}), "
        f"CAST(floor({tod} / 3600000000) AS INT), CAST(floor(pmod({tod}, 3600000000) / 60000000) "
        f"AS INT), CAST(pmod({tod}, 60000000) AS DECIMAL(8, 0)) / 1000000) AS STRING)"
    )


def zoned_micros(instant: str, zone: str) -> str:
    """SQL: the wall-clock microseconds, in ``zone``, of the TIMESTAMP (instant) ``instant``."""
    return f"unix_micros(from_utc_timestamp({instant}, {SPARK.literal(zone)}))"


def nanos_text(column: str, zone: str | None) -> str:
    """SQL: the text of an int64 nanosecond timestamp column (naive when ``zone`` is None)."""
    micros = f"floor({column} / 1000)"
    if zone is not None:
        micros = zoned_micros(f"timestamp_micros({micros})", zone)
    return wall_clock_text(micros)


def float_text(column: str) -> str:
    """SQL: a floating-point column as DuckDB stages it (:func:`cbcv.data.rules.integral_text_sql`)."""
    return integral_text_sql(column, "spark")


# --------------------------------------------------------------------------- checks


def check_rows(
    staged: SparkStaged,
    as_of: date | None,
    date_format: str | None,
    reject_duplicates: bool,
    rules: RowRules,
) -> DataFrame:
    """Every row with ``reason`` (NULL when accepted), as :func:`cbcv.data.load._validate`:
    the first failing check of :func:`cbcv.data.rules.row_checks` is the row's reason."""
    rows = staged.rows
    id_name, date_name, amount_name = (staged.internal[k] for k in TRANSACTION_COLUMNS)
    if reject_duplicates:
        window = Window.partitionBy(*[F.col(c) for c in staged.all_internal]).orderBy("source_row")
        dup_rank, first_row = F.row_number().over(window), F.min("source_row").over(window)
    else:
        dup_rank, first_row = F.lit(1), F.col("source_row")
    fields = rows.filter(~F.col("malformed")).select(
        "source_row",
        "line",
        F.col(id_name).alias("id_raw"),
        F.col(date_name).alias("date_raw"),
        F.col(amount_name).alias("amount_raw"),
        F.expr(id_sql(id_name, rules, "spark")).alias("customer_id"),
        F.expr(date_sql(date_name, None if staged.typed_date else date_format, "spark")).alias("date"),
        F.expr(amount_sql(amount_name, "spark")).alias("amount"),
        dup_rank.alias("dup_rank"),
        first_row.alias("first_row"),
        F.col("raw_line"),
    )
    verdict = " ".join(
        f"WHEN {cond} THEN {SPARK.literal(reason)}"
        for reason, _, cond in row_checks(rules, as_of, "spark")
    )
    checked = fields.withColumn("reason", F.expr(f"CASE {verdict} END")).drop("dup_rank")
    malformed = rows.filter(F.col("malformed")).select(
        "source_row",
        "line",
        *[
            F.lit(None).cast("string").alias(c)
            for c in ("id_raw", "date_raw", "amount_raw", "customer_id")
        ],
        F.lit(None).cast("date").alias("date"),
        F.lit(None).cast("double").alias("amount"),
        F.lit(None).cast("long").alias("first_row"),
        "raw_line",
        F.lit("malformed_row").alias("reason"),
    )
    return checked.unionByName(malformed)


def _failing(checked: DataFrame, column: str, raw: Column, reason: str, detail: Column,
             where: Column, order: int) -> DataFrame:
    return checked.filter(where).select(
        "source_row",
        "line",
        F.lit(column).alias("column"),
        raw.cast("string").alias("raw_value"),
        F.lit(reason).alias("reason"),
        F.col("reason").eqNullSafe(reason).alias("primary"),
        detail.cast("string").alias("detail"),
        F.lit(order).alias("_ord"),
    )


def rejection_rows(
    checked: DataFrame, staged: SparkStaged, as_of: date | None, rules: RowRules
) -> DataFrame:
    """One row per failing check of each rejected row (``primary``: the row's reason), with the
    columns of :data:`cbcv.data.load.REJECTION_COLUMNS`, ordered by source row and check."""
    raw_of = {
        f: (staged.columns[f], F.col(raw))
        for f, raw in zip(TRANSACTION_COLUMNS, ("id_raw", "date_raw", "amount_raw"), strict=True)
    }
    details = rejection_details(rules, as_of)
    is_malformed = F.col("reason").eqNullSafe("malformed_row")
    fields = checked.filter(~is_malformed)
    frames = []
    for order, (reason, field, cond) in enumerate(row_checks(rules, as_of, "spark"), start=1):
        if reason == "duplicate_row":
            detail = F.concat(F.lit("same fields as source row "), F.col("first_row").cast("string"))
            where = F.col("reason").eqNullSafe("duplicate_row")
            frames.append(_failing(fields, "*", F.lit(None), reason, detail, where, order))
            continue
        column, raw = raw_of[field]
        detail = F.lit(details.get(reason))
        frames.append(_failing(fields, column, raw, reason, detail, F.expr(cond), order))
    frames.append(
        checked.filter(is_malformed).select(
            "source_row",
            "line",
            F.lit("*").alias("column"),
            F.col("raw_line").alias("raw_value"),
            F.lit("malformed_row").alias("reason"),
            F.lit(True).alias("primary"),
            F.lit("cannot split into the header's columns (Spark CSV parser)").alias("detail"),
            F.lit(0).alias("_ord"),
        )
    )
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union.orderBy("source_row", "_ord").select(*REJECTION_COLUMNS)


# --------------------------------------------------------------------------- reconciliation


def reconcile(
    spark: SparkSession,
    accepted: DataFrame,
    staged: SparkStaged,
    counts: RowCounts,
    as_of: date | None,
    reject_duplicates: bool,
    notes: tuple[str, ...],
    zero_amount_purchases: bool = False,
) -> Reconciliation:
    """The :class:`~cbcv.data.load.Reconciliation` DuckDB gives for the same accepted rows,
    customer-days counted with the purchase rule (:func:`cbcv.data.transactions.daily_sql`)."""
    view = f"cbcv_accepted_{uuid.uuid4().hex}"
    accepted.createOrReplaceTempView(view)
    try:
        query = reconciliation_sql(view, zero_amount_purchases, SPARK.exact_sum)
        figures = spark.sql(query).collect()[0].asDict()
    finally:
        spark.catalog.dropTempView(view)
    return reconciliation_of(
        staged, counts, figures, as_of=as_of, duplicate_check=reject_duplicates, notes=notes,
        zero_amount_purchases=zero_amount_purchases,
    )
