"""Read subscription records, or derive them from a billing log, in DuckDB SQL: every row accepted
or rejected with a reason, the counts reconciled, the accepted spells in one schema.

A **spell** is one uninterrupted subscription of a customer: it starts on ``start``, bills one
``price`` per billing period at ``start + k periods`` (k = 0, 1, ...; calendar months, month
ends clamped as DuckDB clamps them) and ends on ``end``, the day service stops (NULL while active
at the as-of date). This is the contractual setting of Fader & Hardie (2007, "How to Project
Customer Retention", J. Interactive Marketing 21(1)); :mod:`cbcv.data.subscription_summary`
turns spells into the duration data of their shifted-beta-geometric model.

Sources: a CSV file (staged as by :mod:`cbcv.data.load`: UTF-8, one record per line,
``source_row`` and ``line`` alike), a Parquet file or a DataFrame. All the work runs on a scratch
DuckDB connection that spills to disk (``memory_limit``, ``threads``); only the accepted spells
come back to pandas (or go straight to Parquet: :func:`validate_subscriptions_to_parquet`).

Subscription records (:func:`load_subscriptions`)
    Columns ``customer_id``, ``start``, ``end`` and optionally ``price``, ``plan``,
    ``billing_period`` (mapped by ``columns``; an optional column is used when the source has
    it or when it is mapped explicitly). Ids follow :func:`cbcv.data.rules.id_sql`, dates
    :func:`cbcv.data.rules.date_sql` (or ``date_format``; typed date columns are read as dates)
    within 1677-09-22 .. 2262-04-11, prices :func:`cbcv.data.rules.amount_sql` up to 1e12. An
    empty ``end`` (or a null token such as ``NULL``) is a spell still active. Each row is
    accepted or rejected once, with the first failing of :data:`SUBSCRIPTION_REJECTION_REASONS`:
    ``malformed_row``, ``missing_customer_id``, ``unparseable_start``, ``unparseable_end``,
    ``start_after_as_of``, ``end_not_after_start`` (end <= start), ``non_numeric_price``,
    ``missing_price``, ``non_positive_price`` (price checks only with a price column),
    ``unknown_plan`` (only when ``plans`` is given; matched case-insensitively, the listed
    spelling kept), ``unknown_billing_period`` (with a billing-period column: not one of
    ``month``/``monthly``, ``quarter``/``quarterly``, ``year``/``yearly``/``annual``/``annually``,
    case-insensitive; an empty cell included), ``duplicate_spell`` (same customer and start as
    an earlier row) and ``overlapping_spell`` (it starts before an earlier-starting spell of the
    same customer ends, or while that one is still active: compared with every earlier-starting
    row that passed the checks before it; the earlier spell is kept). The duplicate and overlap
    checks only see rows that pass every check before them.

    A spell ending after ``as_of`` is accepted as **active at as_of** (``end`` NULL: at as_of
    nobody knows it will end) and counted in ``ends_after_as_of``. Without ``as_of`` the ends
    are kept as given.

Billing logs (:func:`spells_from_billing_log`)
    Charges ``customer_id``, ``date``, ``amount``, validated like a transaction log (the first
    failing of :data:`BILLING_LOG_REJECTION_REASONS`); a customer's charges of one day are one
    charge (amounts summed). Consecutive charges at most one billing period + ``grace_days``
    apart belong to one spell; a longer gap starts a new spell (a reactivation). A spell starts
    at its first charge and ends one billing period after its last one when that day is on or
    before ``as_of`` (else it is active at as_of); its price is its last charge.

Output (:data:`SPELL_COLUMNS`): ``customer_id`` (str), ``spell`` (int64, 1-based per customer in
start order), ``start`` and ``end`` (datetime64[ns] days; ``end`` NaT while active), ``price``
(float64; NaN without a price column), ``plan`` (object; None without one), ``billing_period``
(``month``, ``quarter`` or ``year``), then the ``extra_columns`` (text, None when empty); ordered
by the customer's first accepted row, then spell. The rejections
(:data:`cbcv.data.load.REJECTION_COLUMNS`) have a line per failing check; ``primary`` marks the
counted one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import first_line, ident, literal, parse_day, scratch_connection
from cbcv.data.load import rejections_from_lines, stage_table
from cbcv.data.reconciliation import RowCounts
from cbcv.data.rules import (
    FIRST_REPRESENTABLE_DAY,
    LAST_REPRESENTABLE_DAY,
    MAX_ABS_AMOUNT,
    NULL_TOKENS,
    RowRules,
    amount_sql,
    date_sql,
    id_sql,
)
from cbcv.data.staged import ROW, Staged, resolve_columns

#: Rejection reasons of subscription records, in the order in which the first failing is chosen.
SUBSCRIPTION_REJECTION_REASONS: tuple[str, ...] = (
    "malformed_row", "missing_customer_id", "unparseable_start", "unparseable_end",
    "start_after_as_of", "end_not_after_start", "non_numeric_price", "missing_price",
    "non_positive_price", "unknown_plan", "unknown_billing_period", "duplicate_spell",
    "overlapping_spell",
)
#: Rejection reasons of a billing log's charges, in the same sense.
BILLING_LOG_REJECTION_REASONS: tuple[str, ...] = (
    "malformed_row", "missing_customer_id", "unparseable_date", "date_after_as_of",
    "non_numeric_amount", "non_positive_amount",
)
#: Contract names of a subscription source (the last three optional).
SUBSCRIPTION_COLUMNS: tuple[str, ...] = (
    "customer_id", "start", "end", "price", "plan", "billing_period",
)
#: Contract names of a billing log.
BILLING_LOG_COLUMNS: tuple[str, ...] = ("customer_id", "date", "amount")
#: Columns of the accepted spells (before any extra columns).
SPELL_COLUMNS: tuple[str, ...] = (
    "customer_id", "spell", "start", "end", "price", "plan", "billing_period",
)
#: Months in one billing period.
PERIOD_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}
#: Accepted spellings of a billing period (lower case) -> the billing period.
BILLING_PERIOD_ALIASES: dict[str, str] = {
    "month": "month", "monthly": "month", "quarter": "quarter", "quarterly": "quarter",
    "year": "year", "yearly": "year", "annual": "year", "annually": "year",
}
_OPTIONAL = ("price", "plan", "billing_period")
_FAR = "DATE '9999-12-31'"  # the end of a spell still active, for comparisons


@dataclass(frozen=True)
class SubscriptionReconciliation:
    """What a subscription read read, kept and rejected.

    ``rows_read == rows_accepted + rows_rejected`` and ``rejected_by_reason`` (every reason of
    the source's kind, zeros included) sums to ``rows_rejected`` (both checked on construction).
    Rows are records (``kind="spells"``) or charges (``kind="billing_log"``, where
    ``charges_in_spells`` counts the charges once same-day charges are merged; each lies in one
    spell). ``spells == active_at_as_of + churned``; ``reactivations`` are the spells with
    ``spell >= 2``; ``ends_after_as_of`` the spells whose recorded end is after ``as_of`` (kept
    as active); ``billing_periods`` maps each billing period to its spells; ``first_start`` /
    ``last_start`` and ``as_of`` are ISO days (None when unknown); ``columns`` maps the contract
    names (and extra columns) to the source's. A billing log without ``as_of`` is read at its
    last accepted charge.
    """

    source: str
    source_type: str
    sha256: str | None
    kind: str
    columns: dict[str, str]
    as_of: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    customers: int
    spells: int
    reactivations: int
    active_at_as_of: int
    churned: int
    ends_after_as_of: int
    billing_periods: dict[str, int]
    first_start: str | None
    last_start: str | None
    charges_in_spells: int | None = None

    def __post_init__(self) -> None:
        rejected = sum(self.rejected_by_reason.values())
        if (self.rows_accepted + self.rows_rejected != self.rows_read
                or rejected != self.rows_rejected
                or self.active_at_as_of + self.churned != self.spells):
            raise ValueError(f"{self.source}: subscription reconciliation does not add up")

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict (only ints, strings, None and dicts of them)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SubscriptionLoadResult:
    """``spells`` (:data:`SPELL_COLUMNS` + extra columns, module notes), ``rejections``
    (:data:`cbcv.data.load.REJECTION_COLUMNS`) and the reconciliation between them."""

    spells: pd.DataFrame
    rejections: pd.DataFrame
    reconciliation: SubscriptionReconciliation


class ValidatedSpells(NamedTuple):
    """What :func:`validate_subscriptions_to_parquet` returns besides the file it writes."""

    reconciliation: SubscriptionReconciliation
    rejections: pd.DataFrame


@dataclass(frozen=True)
class _Options:
    mapping: dict[str, str]
    explicit: frozenset[str]
    as_of: date | None
    billing_period: str
    plans: tuple[str, ...] | None
    extra_columns: tuple[str, ...]
    date_format: str | None


@dataclass(frozen=True)
class _Check:
    """A row check: its reason, the contract column whose raw value it shows, the condition
    (over the ``units`` table) and the SQL of its detail."""

    reason: str
    key: str
    cond: str
    detail: str = "NULL"


def load_subscriptions(
    source: str | os.PathLike[str] | pd.DataFrame, *,
    columns: Mapping[str, str] | None = None, as_of: Any = None, billing_period: str = "month",
    plans: Sequence[str] | None = None, extra_columns: Sequence[str] = (),
    date_format: str | None = None, memory_limit: str | None = None, threads: int | None = None,
    source_name: str | None = None,
) -> SubscriptionLoadResult:
    """Read and validate subscription records (module notes): the accepted spells, the
    rejections and the reconciliation.

    ``billing_period`` (``month``, ``quarter``, ``year`` or an alias) applies when the source has
    no billing-period column. ``plans``: the valid plan names (``unknown_plan`` otherwise).
    ``extra_columns``: source columns carried into the spells as text (e.g. ``channel``).

    DataError: the source is missing, empty (no data rows) or neither CSV nor Parquet nor a
    DataFrame; a required, mapped or extra column is missing; ``plans`` without a plan column.
    ConfigError: invalid ``columns``, ``as_of``, ``billing_period``, ``plans``, ``date_format``,
    ``extra_columns`` or DuckDB settings.
    """
    options = _options(columns, as_of, billing_period, plans, extra_columns, date_format)
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        rec, rejections = _read_spells(con, source, options, source_name)
        return SubscriptionLoadResult(_spells_frame(con, options.extra_columns), rejections, rec)


def validate_subscriptions_to_parquet(
    source: str | os.PathLike[str] | pd.DataFrame, path: str | os.PathLike[str], *,
    columns: Mapping[str, str] | None = None, as_of: Any = None, billing_period: str = "month",
    plans: Sequence[str] | None = None, extra_columns: Sequence[str] = (),
    date_format: str | None = None, memory_limit: str | None = None, threads: int | None = None,
    source_name: str | None = None,
) -> ValidatedSpells:
    """:func:`load_subscriptions` (same keywords) for sources larger than memory: the accepted
    spells go from DuckDB to the Parquet file ``path`` with a COPY (the columns and order of
    :attr:`SubscriptionLoadResult.spells`, days as TIMESTAMP), never through pandas. Returns the
    reconciliation and the rejections."""
    out = Path(path).expanduser()
    options = _options(columns, as_of, billing_period, plans, extra_columns, date_format)
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        rec, rejections = _read_spells(con, source, options, source_name)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            con.execute(f"COPY ({_spells_sql(options.extra_columns)}) TO {literal(str(out))} "
                        "(FORMAT PARQUET, COMPRESSION ZSTD)")
        except duckdb.Error as exc:
            raise DataError(f"{out.name}: cannot write the spells ({first_line(exc)})") from exc
    return ValidatedSpells(rec, rejections)


def spells_from_billing_log(
    source: str | os.PathLike[str] | pd.DataFrame, *,
    columns: Mapping[str, str] | None = None, billing_period: str = "month", grace_days: int = 7,
    as_of: Any = None, memory_limit: str | None = None, threads: int | None = None,
    source_name: str | None = None,
) -> SubscriptionLoadResult:
    """Derive spells from a billing log (module notes): one row per charge, ``customer_id``,
    ``date``, ``amount`` (mapped by ``columns``).

    Charges are rejected with the first failing of :data:`BILLING_LOG_REJECTION_REASONS`:
    ``missing_customer_id``, ``unparseable_date`` (also outside 1677-09-22 .. 2262-04-11),
    ``date_after_as_of``, ``non_numeric_amount`` (not a plain number, not finite or above
    1e12) and ``non_positive_amount``: **refunds (negative amounts) and zero charges are
    rejected** as ``non_positive_amount``, not netted against the charges (a refund does not
    say when service stopped). Identical rows are not treated as duplicates: two charges of a
    day are one charge with their amounts summed.

    Consecutive charge days at most one billing period + ``grace_days`` apart (``day <=
    previous + 1 period + grace_days``) are one spell. The spell's ``end`` is its last charge +
    one period when that day is on or before ``as_of`` (default: the last accepted charge),
    else NaT (active); ``price`` its last charge's amount; ``plan`` None; ``billing_period``
    the one given.
    """
    period = _billing_period(billing_period)
    if isinstance(grace_days, bool) or not isinstance(grace_days, int | np.integer) or grace_days < 0:
        raise ConfigError(f"grace_days must be a whole number of days >= 0, got {grace_days!r}")
    mapping = _column_map(columns, BILLING_LOG_COLUMNS)
    day = parse_day(as_of, "as_of")
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        staged = stage_table(con, source, mapping, source_name)
        try:
            rec, rejections = _billing_log(con, staged, period, int(grace_days), day)
        except duckdb.Error as exc:
            raise DataError(f"{staged.name}: cannot derive spells ({first_line(exc)})") from exc
        return SubscriptionLoadResult(_spells_frame(con, ()), rejections, rec)


# --------------------------------------------------------------------------- arguments


def _billing_period(value: Any) -> str:
    period = BILLING_PERIOD_ALIASES.get(str(value).strip().lower()) if isinstance(value, str) else None
    if period is None:
        raise ConfigError(f"billing_period must be one of {', '.join(BILLING_PERIOD_ALIASES)}, "
                          f"got {value!r}")
    return period


def _column_map(columns: Mapping[str, str] | None, keys: tuple[str, ...]) -> dict[str, str]:
    mapping = {k: k for k in keys}
    for key, value in (columns or {}).items():
        if key not in mapping:
            raise ConfigError(f"columns: unknown key {key!r}; expected some of {', '.join(keys)}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"columns.{key} must be a column name, got {value!r}")
        mapping[key] = value
    return mapping


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{what} must be a list of names, got {value!r}")
    return tuple(v.strip() for v in value)


def _options(columns: Mapping[str, str] | None, as_of: Any, billing_period: str,
             plans: Sequence[str] | None, extra_columns: Sequence[str],
             date_format: str | None) -> _Options:
    extra = _names(extra_columns, "extra_columns")
    if clash := [c for c in extra if c in SPELL_COLUMNS]:
        raise ConfigError(f"extra_columns {', '.join(clash)} would replace a spell column")
    if date_format is not None and (not isinstance(date_format, str) or not date_format):
        raise ConfigError(f"date_format must be a strptime format, got {date_format!r}")
    return _Options(
        _column_map(columns, SUBSCRIPTION_COLUMNS), frozenset(columns or {}),
        parse_day(as_of, "as_of"), _billing_period(billing_period),
        None if plans is None else _names(plans, "plans"), extra, date_format,
    )


# --------------------------------------------------------------------------- staging



def _resolve(staged: Staged, options: _Options) -> tuple[dict[str, str], dict[str, str]]:
    """(contract name -> source column for the columns present, extra name -> source column)."""
    found = list(staged.all_columns)
    folded = {c.strip().lower() for c in found}
    cols = dict(staged.columns)
    for key in _OPTIONAL:
        wanted = options.mapping[key]
        if key in options.explicit or wanted.strip().lower() in folded:
            cols.update(resolve_columns(found, {key: wanted}, staged.name))
    extra = {}
    for name in options.extra_columns:
        match = [c for c in found if c == name] or [
            c for c in found if c.strip().lower() == name.lower()]
        if len(match) != 1:
            shown = ", ".join(repr(c) for c in found)
            raise DataError(f"{staged.name}: extra column {name!r} not found; columns found: {shown}")
        extra[name] = match[0]
    if options.plans is not None and "plan" not in cols:
        raise DataError(f"{staged.name}: plans are given but there is no plan column "
                        f"{options.mapping['plan']!r} (columns.plan)")
    return cols, extra


def _text(column: str) -> str:
    return f"CAST({ident(column)} AS VARCHAR)"


def _in_range(day: str) -> str:
    return (f"CASE WHEN {day} BETWEEN DATE {literal(FIRST_REPRESENTABLE_DAY.isoformat())} "
            f"AND DATE {literal(LAST_REPRESENTABLE_DAY.isoformat())} THEN {day} END")


def _date_detail(parsed: str, fmt: str | None) -> str:
    what = f"format {fmt}" if fmt else "ISO YYYY-MM-DD or YYYYMMDD"
    return (f"CASE WHEN {parsed} IS NULL THEN {literal(f'not a date ({what})')} "
            f"ELSE {literal(f'outside {FIRST_REPRESENTABLE_DAY} .. {LAST_REPRESENTABLE_DAY}')} END")


def _number_checks(raw: str, num: str) -> tuple[str, str]:
    """(condition, detail) of a non-numeric value in a non-blank ``raw`` field."""
    bad = f"({num} IS NULL OR NOT isfinite({num}) OR abs({num}) > {MAX_ABS_AMOUNT!r})"
    detail = (f"CASE WHEN {num} IS NOT NULL AND isfinite({num}) THEN 'magnitude above 1e12' "
              f"ELSE 'not a plain number' END")
    return f"trim({raw}) <> '' AND {bad}", detail


# --------------------------------------------------------------------------- judging


def _check_date_format(con: duckdb.DuckDBPyConnection, fmt: str | None) -> None:
    if fmt is None:
        return
    try:
        con.execute("SELECT try_strptime('2000-01-01', ?)", [fmt]).fetchall()
    except duckdb.Error as exc:
        raise ConfigError(f"date_format {fmt!r} is not a strptime format: {first_line(exc)}") from exc


def _read_spells(con: duckdb.DuckDBPyConnection, source: Any, options: _Options,
                 source_name: str | None) -> tuple[SubscriptionReconciliation, pd.DataFrame]:
    """Stage and judge subscription records into the table ``spells``."""
    _check_date_format(con, options.date_format)
    required = {k: options.mapping[k] for k in ("customer_id", "start", "end")}
    required.update({k: options.mapping[k] for k in _OPTIONAL if k in options.explicit})
    staged = stage_table(con, source, required, source_name)
    cols, extra = _resolve(staged, options)
    try:
        return _judge_spells(con, staged, cols, extra, options)
    except duckdb.Error as exc:
        raise DataError(f"{staged.name}: cannot validate the subscriptions ({first_line(exc)})") from exc


def _units_sql(staged: Staged, cols: dict[str, str], extra: dict[str, str], o: _Options) -> str:
    """SQL: the table ``units``, a line per staged row with its raw and parsed fields."""
    def fmt(key: str) -> str | None:
        return None if cols[key] in staged.temporal else o.date_format

    raw = {k: _text(c) for k, c in cols.items()}
    blank_end = ", ".join(literal(t) for t in ("", *NULL_TOKENS))
    inner = [f"{ROW} AS source_row", f"{raw['customer_id']} AS id_raw",
             f"{id_sql(raw['customer_id'], RowRules())} AS customer_id",
             f"{raw['start']} AS start_raw", f"{date_sql(raw['start'], fmt('start'))} AS start_parsed",
             f"{raw['end']} AS end_raw", f"{date_sql(raw['end'], fmt('end'))} AS end_parsed",
             f"({raw['end']} IS NULL OR lower(trim({raw['end']})) IN ({blank_end})) AS end_blank"]
    outer = ["*", f"{_in_range('start_parsed')} AS start",
             f"CASE WHEN NOT end_blank THEN {_in_range('end_parsed')} END AS stop"]
    if "price" in cols:
        inner += [f"{raw['price']} AS price_raw", f"{amount_sql(raw['price'])} AS price_num"]
        outer.append("CASE WHEN isfinite(price_num) THEN price_num END AS price")
    else:
        outer.append("CAST('NaN' AS DOUBLE) AS price")
    if "plan" in cols:
        inner.append(f"{raw['plan']} AS plan_raw")
        plan = "nullif(trim(plan_raw), '')"
        if o.plans is not None:
            cases = " ".join(f"WHEN {literal(p.lower())} THEN {literal(p)}" for p in o.plans)
            plan = f"CASE lower({plan}) {cases} END"
        outer.append(f"{plan} AS plan")
    else:
        outer.append("CAST(NULL AS VARCHAR) AS plan")
    if "billing_period" in cols:
        inner.append(f"{raw['billing_period']} AS period_raw")
        cases = " ".join(f"WHEN {literal(a)} THEN {literal(p)}" for a, p in BILLING_PERIOD_ALIASES.items())
        outer.append(f"CASE lower(trim(period_raw)) {cases} END AS billing_period")
    else:
        outer.append(f"{literal(o.billing_period)} AS billing_period")
    inner += [f"nullif(trim({_text(c)}), '') AS {ident('x_' + n)}" for n, c in extra.items()]
    return f"CREATE TABLE units AS SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM rows)"


def _spell_checks(cols: dict[str, str], o: _Options) -> list[_Check]:
    checks = [
        _Check("missing_customer_id", "customer_id", "customer_id IS NULL"),
        _Check("unparseable_start", "start", "start IS NULL",
               _date_detail("start_parsed", o.date_format)),
        _Check("unparseable_end", "end", "NOT end_blank AND stop IS NULL",
               _date_detail("end_parsed", o.date_format)),
    ]
    if o.as_of is not None:
        checks.append(_Check("start_after_as_of", "start", f"start > DATE {literal(o.as_of.isoformat())}",
                             literal(f"after as-of date {o.as_of.isoformat()}")))
    checks.append(_Check("end_not_after_start", "end", "stop <= start",
                         "'on or before the start ' || CAST(start AS VARCHAR)"))
    if "price" in cols:
        cond, detail = _number_checks("price_raw", "price_num")
        checks += [
            _Check("non_numeric_price", "price", cond, detail),
            _Check("missing_price", "price", "price_raw IS NULL OR trim(price_raw) = ''", "'empty'"),
            _Check("non_positive_price", "price", "price <= 0", "'a price per period must be > 0'"),
        ]
    if o.plans is not None:
        checks.append(_Check("unknown_plan", "plan", "plan IS NULL",
                             literal(f"not one of the plans {', '.join(o.plans)}")))
    if "billing_period" in cols:
        checks.append(_Check("unknown_billing_period", "billing_period", "billing_period IS NULL",
                             "'not month, quarter or year (or monthly, quarterly, yearly, annual, "
                             "annually)'"))
    return checks


_RAW = {"customer_id": "id_raw", "start": "start_raw", "end": "end_raw", "price": "price_raw",
        "plan": "plan_raw", "billing_period": "period_raw", "date": "date_raw",
        "amount": "amount_raw"}


def _lines_sql(checks: Sequence[_Check], cols: dict[str, str], reasons: tuple[str, ...],
               table: str = "units") -> str:
    return " UNION ALL ".join(
        f"SELECT source_row, {reasons.index(c.reason)} AS rank, {literal(cols[c.key])} AS col, "
        f"nullif(CAST({_RAW[c.key]} AS VARCHAR), '') AS raw_value, {literal(c.reason)} AS reason, "
        f"CAST({c.detail} AS VARCHAR) AS detail FROM {table} WHERE coalesce({c.cond}, false)"
        for c in checks
    )


def _judge_spells(con: duckdb.DuckDBPyConnection, staged: Staged, cols: dict[str, str],
                  extra: dict[str, str], o: _Options) -> tuple[SubscriptionReconciliation, pd.DataFrame]:
    """Judge every staged record (row checks, then duplicates, then overlaps) into ``spells``."""
    reasons = SUBSCRIPTION_REJECTION_REASONS
    con.execute(_units_sql(staged, cols, extra, o))
    con.execute(f"CREATE TABLE row_lines AS {_lines_sql(_spell_checks(cols, o), cols, reasons)}")
    con.execute(
        "CREATE TABLE ranked AS SELECT *, row_number() OVER (PARTITION BY customer_id, start "
        "ORDER BY source_row) AS dup_rank, min(source_row) OVER (PARTITION BY customer_id, start) "
        "AS dup_of FROM units u WHERE NOT EXISTS (SELECT 1 FROM row_lines l "
        "WHERE l.source_row = u.source_row)"
    )
    con.execute(
        f"CREATE TABLE spans AS SELECT *, max(end_key) OVER w AS prev_end, arg_max(source_row, "
        "[epoch(end_key), -source_row]) OVER w AS prev_row FROM (SELECT *, "
        f"coalesce(stop, {_FAR}) AS end_key FROM ranked WHERE dup_rank = 1) WINDOW w AS "
        "(PARTITION BY customer_id ORDER BY start ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    start_col = literal(cols["start"])
    con.execute(
        "CREATE TABLE lines AS SELECT *, row_number() OVER (PARTITION BY source_row ORDER BY rank) "
        f"= 1 AS is_primary FROM (SELECT * FROM row_lines UNION ALL SELECT source_row, "
        f"{reasons.index('duplicate_spell')}, {start_col}, start_raw, 'duplicate_spell', "
        "'same customer and start as source row ' || dup_of FROM ranked WHERE dup_rank > 1 "
        f"UNION ALL SELECT source_row, {reasons.index('overlapping_spell')}, {start_col}, "
        "start_raw, 'overlapping_spell', 'starts before the spell of source row ' || prev_row || "
        f"CASE WHEN prev_end = {_FAR} THEN ' ends (it is active)' ELSE ' ends on ' || "
        "CAST(prev_end AS VARCHAR) END FROM spans WHERE prev_end > start)"
    )
    as_of = "NULL" if o.as_of is None else f"DATE {literal(o.as_of.isoformat())}"
    extras = "".join(f", {ident('x_' + n)}" for n in extra)
    con.execute(
        "CREATE TABLE spells AS SELECT customer_id, row_number() OVER (PARTITION BY customer_id "
        f"ORDER BY start) AS spell, start, CASE WHEN stop > {as_of} THEN NULL ELSE stop END AS "
        f"stop, coalesce(stop > {as_of}, false) AS after, price, plan, billing_period{extras}, "
        "min(source_row) OVER (PARTITION BY customer_id) AS cust_row FROM spans "
        "WHERE prev_end IS NULL OR prev_end <= start"
    )
    (n_units,) = con.execute("SELECT count(*) FROM units").fetchone()
    columns = {**cols, **extra}
    rec = _reconcile(con, staged, "spells", columns, o.as_of, n_units, reasons)
    return rec, rejections_from_lines(con, staged, 'source_row, rank')


def _billing_log(con: duckdb.DuckDBPyConnection, staged: Staged, period: str, grace: int,
                 as_of: date | None) -> tuple[SubscriptionReconciliation, pd.DataFrame]:
    """Judge every charge and group the accepted ones into the table ``spells``."""
    cols = staged.columns
    raw = {k: _text(c) for k, c in cols.items()}
    reasons = BILLING_LOG_REJECTION_REASONS
    fmt = None
    con.execute(
        f"CREATE TABLE units AS SELECT *, {_in_range('day_parsed')} AS day, CASE WHEN "
        f"isfinite(amount_num) THEN amount_num END AS amount FROM (SELECT {ROW} AS source_row, "
        f"{raw['customer_id']} AS id_raw, {id_sql(raw['customer_id'], RowRules())} AS customer_id, "
        f"{raw['date']} AS date_raw, {date_sql(raw['date'], fmt)} AS day_parsed, "
        f"{raw['amount']} AS amount_raw, {amount_sql(raw['amount'])} AS amount_num FROM rows)"
    )
    cond, detail = _number_checks("amount_raw", "amount_num")
    checks = [
        _Check("missing_customer_id", "customer_id", "customer_id IS NULL"),
        _Check("unparseable_date", "date", "day IS NULL", _date_detail("day_parsed", fmt)),
    ]
    if as_of is not None:
        checks.append(_Check("date_after_as_of", "date", f"day > DATE {literal(as_of.isoformat())}",
                             literal(f"after as-of date {as_of.isoformat()}")))
    checks += [
        _Check("non_numeric_amount", "amount", f"amount_raw IS NULL OR trim(amount_raw) = '' OR ({cond})",
               f"CASE WHEN amount_raw IS NULL OR trim(amount_raw) = '' THEN 'empty' ELSE {detail} END"),
        _Check("non_positive_amount", "amount", "amount <= 0",
               "CASE WHEN amount < 0 THEN 'a refund: charges must be > 0' "
               "ELSE 'a zero charge: charges must be > 0' END"),
    ]
    con.execute("CREATE TABLE lines AS SELECT *, row_number() OVER (PARTITION BY source_row "
                f"ORDER BY rank) = 1 AS is_primary FROM ({_lines_sql(checks, cols, reasons)})")
    con.execute(
        "CREATE TABLE charges AS SELECT customer_id, day, fsum(amount) AS amount, min(source_row) "
        "AS first_row, count(*) AS n_rows FROM units u WHERE NOT EXISTS (SELECT 1 FROM lines l "
        "WHERE l.source_row = u.source_row) GROUP BY customer_id, day"
    )
    if as_of is None:
        last = con.execute("SELECT max(day) FROM charges").fetchone()[0]
        as_of = last if isinstance(last, date) else None
    months = PERIOD_MONTHS[period]
    cut = "NULL" if as_of is None else f"DATE {literal(as_of.isoformat())}"
    con.execute(
        f"CREATE TABLE spells AS WITH flagged AS (SELECT *, CASE WHEN lag(day) OVER w IS NULL OR "
        f"day > lag(day) OVER w + INTERVAL ({months}) MONTH + INTERVAL ({grace}) DAY THEN 1 "
        "ELSE 0 END AS new FROM charges WINDOW w AS (PARTITION BY customer_id ORDER BY day)), "
        "numbered AS (SELECT *, sum(new) OVER (PARTITION BY customer_id ORDER BY day ROWS "
        "UNBOUNDED PRECEDING) AS spell FROM flagged), grouped AS (SELECT customer_id, spell, "
        "min(day) AS start, CAST(max(day) + INTERVAL "
        f"({months}) MONTH AS DATE) AS stop, arg_max(amount, day) AS price, min(first_row) AS "
        "first_row FROM numbered GROUP BY customer_id, spell) SELECT customer_id, "
        f"CAST(spell AS BIGINT) AS spell, start, CASE WHEN stop <= {cut} THEN stop END AS stop, "
        "false AS after, price, CAST(NULL AS VARCHAR) AS plan, "
        f"{literal(period)} AS billing_period, min(first_row) OVER (PARTITION BY customer_id) AS "
        "cust_row FROM grouped"
    )
    (n_units,) = con.execute("SELECT count(*) FROM units").fetchone()
    rec = _reconcile(con, staged, "billing_log", dict(cols), as_of, n_units, reasons)
    return rec, rejections_from_lines(con, staged, 'source_row, rank')


# --------------------------------------------------------------------------- results


def _reconcile(con: duckdb.DuckDBPyConnection, staged: Staged, kind: str, columns: dict[str, str],
               as_of: date | None, n_units: int, reasons: tuple[str, ...]) -> SubscriptionReconciliation:
    """The reconciliation of the tables ``units``, ``lines`` and ``spells``."""
    rows_read = int(n_units) + len(staged.malformed)
    if rows_read == 0:
        raise DataError(f"{staged.name}: empty file (no data rows)")
    by_reason = dict.fromkeys(reasons, 0)
    by_reason["malformed_row"] = len(staged.malformed)
    sql = "SELECT reason, count(*) FROM lines WHERE is_primary GROUP BY reason"
    by_reason.update({str(r): int(n) for r, n in con.execute(sql).fetchall()})
    rejected = sum(by_reason.values())
    cursor = con.execute(
        "SELECT count(*) AS spells, count(DISTINCT customer_id) AS customers, count(*) FILTER "
        "(spell >= 2) AS reactivations, count(*) FILTER (stop IS NULL) AS active_at_as_of, "
        "count(*) FILTER (stop IS NOT NULL) AS churned, count(*) FILTER (after) AS "
        "ends_after_as_of, CAST(min(start) AS VARCHAR) AS first_start, CAST(max(start) AS "
        "VARCHAR) AS last_start FROM spells"
    )
    figures = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    periods = dict(con.execute("SELECT billing_period, count(*) FROM spells GROUP BY 1 ORDER BY 1")
                   .fetchall())
    charges = None
    if kind == "billing_log":
        accepted, charges = con.execute("SELECT coalesce(sum(n_rows), 0), count(*) FROM charges").fetchone()
    else:
        accepted = figures["spells"]
    counts = RowCounts.tally(rows_read, int(accepted), by_reason)
    ints = {k: int(v) for k, v in figures.items() if k not in ("first_start", "last_start")}
    return SubscriptionReconciliation(
        source=staged.name, source_type=staged.kind, sha256=staged.sha256, kind=kind,
        columns=columns, as_of=None if as_of is None else as_of.isoformat(),
        rows_read=counts.read, rows_accepted=counts.accepted, rows_rejected=rejected,
        rejected_by_reason=counts.by_reason, billing_periods={str(k): int(v) for k, v in periods.items()},
        first_start=figures["first_start"], last_start=figures["last_start"],
        charges_in_spells=None if charges is None else int(charges), **ints,
    )


def _spells_sql(extra: Sequence[str]) -> str:
    extras = "".join(f", {ident('x_' + n)} AS {ident(n)}" for n in extra)
    return ("SELECT customer_id, spell, CAST(start AS TIMESTAMP) AS start, CAST(stop AS TIMESTAMP) "
            f"AS \"end\", price, plan, billing_period{extras} FROM spells ORDER BY cust_row, spell")


def _spells_frame(con: duckdb.DuckDBPyConnection, extra: Sequence[str]) -> pd.DataFrame:
    """The accepted spells in :data:`SPELL_COLUMNS` (+ ``extra``) with their dtypes."""
    out = con.execute(_spells_sql(extra)).df()

    def text(column: str) -> pd.Series:
        values = out[column].astype(object)
        return values.where(values.notna(), None)

    frame = pd.DataFrame({
        "customer_id": out["customer_id"].astype(str), "spell": out["spell"].astype("int64"),
        "start": pd.to_datetime(out["start"]).astype("datetime64[ns]"),
        "end": pd.to_datetime(out["end"]).astype("datetime64[ns]"),
        "price": out["price"].astype("float64"), "plan": text("plan"),
        "billing_period": out["billing_period"].astype(str),
    })
    for name in extra:
        frame[name] = text(name)
    return frame
