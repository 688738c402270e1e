"""Read a customer × period revenue panel as data rooms hand them over, in DuckDB SQL: every
row accepted or rejected with a reason, the counts reconciled. Sources: CSV (staged as by
:mod:`cbcv.data.load`: UTF-8, a byte-order mark allowed, ``source_row`` and ``line`` alike),
Parquet or a DataFrame.

``wide``: a row per customer: id, optional cohort, a column per period headed by its label;
any other column, two columns of one period or a gap between periods is a DataError naming the
file and the column (``unknown_period_label``: it cannot be reconciled). **An empty cell is zero
revenue** (data rooms leave the cells before the cohort blank). ``long``: ``customer_id``,
``period``, ``revenue``, optional ``cohort`` (others ignored); a customer-period without a row
has no revenue, an empty revenue is ``non_numeric_revenue``; the periods run from the first to
the last that parses. Labels (:func:`period_sql`, case-insensitive): ``2016Q1`` ``Y2016Q1``
``2016-Q1`` ``y2016_q1`` ``Q1 2016``; ``2016-03`` ``201603`` ``2016M03``; ``2016`` ``Y2016``; an
ISO date (the period holding it).

A cohort is a label or matches ``pre_start_labels`` (``*`` matches any ending; a year in it is
not read): acquired before the first period, as is a cohort period before it. Without a cohort
column the cohort is the first period with revenue > 0 and ``acquired_before_start`` is NA
(left-censored) for customers active in the first period or never active. A declared cohort
period without revenue is accepted (net revenue can be zero: a purchase returned within the
period) and counted in ``customers_inactive_in_cohort_period``.

The first failing of :data:`PANEL_REJECTION_REASONS` is counted; later rows of one id (wide) or
customer-period (long) are duplicates. A bad cell rejects its wide row; in the long layout the
customer's other rows follow (``customer_rejected``, duplicates aside): an accepted customer's
history is complete. Revenue: a plain number (:func:`cbcv.data.rules.amount_sql`) in 0..1e12;
ids: :func:`cbcv.data.rules.id_sql`. The rejections (:data:`cbcv.data.load.REJECTION_COLUMNS`)
have a line per failing check; ``primary`` marks the counted one. ``panel`` keeps the accepted
cells with revenue > 0, customers in the order of their first row.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.core.units import PANDAS_FREQ, periods_per_year
from cbcv.data._sql import first_line, ident, literal, scratch_connection
from cbcv.data.csv_stage import stage_csv
from cbcv.data.load import file_kind, rejections_from_lines
from cbcv.data.reconciliation import RowCounts
from cbcv.data.rules import RowRules, amount_checks, amount_sql, id_sql
from cbcv.data.staged import ROW, Staged, file_sha256, resolve_columns
from cbcv.data.typed_stage import stage_frame, stage_parquet

Layout, PeriodName = Literal["wide", "long"], Literal["quarter", "month", "year"]
#: Rejection reasons in the order in which the first failing one is chosen.
PANEL_REJECTION_REASONS: tuple[str, ...] = (
    "malformed_row", "missing_customer_id", "unknown_period_label", "duplicate_customer",
    "duplicate_cell", "unparseable_cohort", "cohort_after_last_period", "non_numeric_revenue",
    "revenue_out_of_range", "negative_revenue", "customer_rejected", "conflicting_cohort",
    "cohort_after_first_active_period",
)
_RANK = {reason: rank for rank, reason in enumerate(PANEL_REJECTION_REASONS)}
#: pandas frequency of each period.
PERIOD_FREQ = PANDAS_FREQ
_PER_YEAR = {p: round(periods_per_year(p)) for p in PANDAS_FREQ}
DEFAULT_PRE_START_LABELS: tuple[str, ...] = ("pre*",)
#: Contract name -> default source column, per layout (``cohort`` is optional).
DEFAULT_COLUMNS: dict[str, dict[str, str]] = {
    "wide": {"customer_id": "CustomerID", "cohort": "Cohort"},
    "long": {k: k for k in ("customer_id", "period", "revenue", "cohort")},
}
#: (regex over the lower-cased label, group of the year, group of the quarter/month) by period.
_LABELS: dict[str, tuple[tuple[str, int, int | None], ...]] = {
    "quarter": ((r"y?(\d{4})[-_ /]?q([1-4])", 1, 2), (r"q([1-4])[-_ /]?y?(\d{4})", 2, 1)),
    "month": ((r"y?(\d{4})[-_/]?m?(0[1-9]|1[0-2])", 1, 2),),
    "year": ((r"y?(\d{4})", 1, None),),
}
_ISO_DAY = r"\d{4}-\d{2}-\d{2}([ t].*)?"
_NAT = int(np.iinfo(np.int64).min)


def period_sql(expr: str, period: str) -> str:
    """SQL: the label ``expr`` as a pandas Period ordinal of ``period`` (periods since 1970:
    ``2016Q1`` is 184), NULL unless a label of the module notes with a year in 1678..2261."""
    v = f"lower(trim(CAST({expr} AS VARCHAR)))"
    branches = []
    for pattern, year_group, sub_group in _LABELS[period]:
        def group(g: int, p: str = pattern) -> str:
            return f"try_cast(regexp_extract({v}, {literal(p)}, {g}) AS BIGINT)"
        sub = group(sub_group) if sub_group else "1"
        branches.append((f"regexp_full_match({v}, {literal(pattern)})", group(year_group), sub))
    day = f"try_cast(left({v}, 10) AS DATE)"
    sub_of_day = {"quarter": f"quarter({day})", "month": f"month({day})", "year": "1"}[period]
    iso = f"regexp_full_match({v}, {literal(_ISO_DAY)}) AND {day} IS NOT NULL"
    branches.append((iso, f"year({day})", sub_of_day))
    return "CASE " + " ".join(
        f"WHEN {cond} AND {year} BETWEEN 1678 AND 2261 "
        f"THEN ({year} - 1970) * {_PER_YEAR[period]} + {sub} - 1"
        for cond, year, sub in branches
    ) + " END"


def parse_period_label(label: str, period: PeriodName = "quarter") -> pd.Period | None:
    """The :class:`pandas.Period` of ``label`` as :func:`period_sql` reads it, or None."""
    _check_choice("period", period, PERIOD_FREQ)
    with duckdb.connect() as con:
        (ordinal,) = con.execute(f"SELECT {period_sql(literal(str(label)), period)}").fetchone()
    return None if ordinal is None else periods_of([ordinal], period)[0]


def periods_of(ordinals: Sequence[int] | np.ndarray, period: str) -> pd.PeriodIndex:
    """Period ordinals of ``period`` (the int64 minimum for NaT) as a PeriodIndex."""
    return pd.PeriodIndex.from_ordinals(np.asarray(ordinals, np.int64), freq=PERIOD_FREQ[period])


@dataclass(frozen=True)
class PanelReconciliation:
    """What a panel read read, kept and rejected: ``rows_read == rows_accepted + rows_rejected``
    (checked on construction), ``rejected_by_reason`` (every reason, zeros included) sums to
    ``rows_rejected``. Cells: the revenue values of the records that parse (wide: rows ×
    periods; long: one a row); ``cells_active``: the accepted ones > 0, the panel's rows."""

    source: str
    source_type: str
    sha256: str | None
    layout: str
    period: str
    columns: dict[str, str]
    pre_start_labels: tuple[str, ...]
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    cells_read: int
    cells_accepted: int
    cells_active: int
    customers: int
    customers_before_start: int
    customers_start_unknown: int
    customers_never_active: int
    customers_inactive_in_cohort_period: int
    total_revenue: float
    first_period: str | None
    last_period: str | None

    def __post_init__(self) -> None:
        rejected = sum(self.rejected_by_reason.values())
        if self.rows_accepted + self.rows_rejected != self.rows_read or rejected != self.rows_rejected:
            raise ValueError(f"{self.source}: panel reconciliation does not add up")

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict (tuples as lists; a non-finite total as None)."""
        out = dataclasses.asdict(self)
        out["pre_start_labels"] = list(self.pre_start_labels)
        out["total_revenue"] = self.total_revenue if math.isfinite(self.total_revenue) else None
        return out


@dataclass(frozen=True)
class PanelLoadResult:
    """``panel``: ``customer_id`` (str), ``period`` (Period), ``revenue`` (float, > 0).
    ``customers``: ``customer_id``, ``cohort`` (Period; NaT when acquired before the start by
    label, or never active without a cohort column), ``acquired_before_start`` (nullable
    boolean), ``first_active_period`` (NaT when never active). ``periods``: first to last."""

    panel: pd.DataFrame
    customers: pd.DataFrame
    periods: pd.PeriodIndex
    rejections: pd.DataFrame
    reconciliation: PanelReconciliation


@dataclass(frozen=True)
class _Spec:
    layout: str
    period: str
    required: dict[str, str]
    cohort: str
    cohort_explicit: bool
    pre_start_labels: tuple[str, ...]


def load_revenue_panel(
    source: str | os.PathLike[str] | pd.DataFrame, *, layout: Layout,
    columns: Mapping[str, str] | None = None, period: PeriodName = "quarter",
    pre_start_labels: Sequence[str] = DEFAULT_PRE_START_LABELS, source_name: str | None = None,
) -> PanelLoadResult:
    """Read and validate a revenue panel (module notes).

    DataError: the source is missing, unreadable, empty or of another type, a required column
    is missing, or a wide column is no label of ``period``. ConfigError: an invalid ``layout``,
    ``period``, ``columns`` or ``pre_start_labels``.
    """
    spec = _spec(layout, columns, period, pre_start_labels)
    with scratch_connection() as con:
        staged, cohort_col = _stage(con, source, spec, source_name)
        try:
            units = _wide_units if layout == "wide" else _long_units
            return _judge(con, staged, spec, cohort_col, units(con, staged, spec, cohort_col))
        except duckdb.Error as exc:
            raise DataError(f"{staged.name}: cannot validate the panel ({first_line(exc)})") from exc


def panel_to_transactions(result: PanelLoadResult, *,
                          date_rule: Literal["end", "start"] = "end") -> pd.DataFrame:
    """One purchase occasion per active customer-period (revenue > 0): ``customer_id``,
    ``date`` (the period's last day, or its first with ``date_rule="start"``; datetime64[ns])
    and ``amount`` (the period's revenue), in the panel's order. This turns the panel into
    period-stamped occasions: a period's purchases become one, with no timing inside it."""
    _check_choice("date_rule", date_rule, ("end", "start"))
    period = result.panel["period"].dt
    day = period.start_time if date_rule == "start" else period.end_time.dt.normalize()
    return pd.DataFrame({
        "customer_id": result.panel["customer_id"].astype(str),
        "date": day.astype("datetime64[ns]"),
        "amount": result.panel["revenue"].astype("float64"),
    })


def _check_choice(what: str, value: Any, choices: Any) -> None:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}, got {value!r}")


def _spec(layout: str, columns: Mapping[str, str] | None, period: str, pre: Sequence[str]) -> _Spec:
    _check_choice("layout", layout, DEFAULT_COLUMNS)
    _check_choice("period", period, PERIOD_FREQ)
    mapping = dict(DEFAULT_COLUMNS[layout])
    for key, value in (columns or {}).items():
        if key not in mapping:
            raise ConfigError(f"columns: unknown key {key!r}; expected some of {', '.join(mapping)}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"columns.{key} must be a column name, got {value!r}")
        mapping[key] = value
    if isinstance(pre, str) or not all(isinstance(p, str) and p.strip("* ") for p in pre):
        raise ConfigError(f"pre_start_labels must be a list of labels, got {pre!r}")
    cohort = mapping.pop("cohort")
    return _Spec(layout, period, mapping, cohort, "cohort" in (columns or {}),
                 tuple(p.strip() for p in pre))


def _stage(con: duckdb.DuckDBPyConnection, source: Any, spec: _Spec,
           source_name: str | None) -> tuple[Staged, str | None]:
    """The source as text in the view ``rows``, and its cohort column (None when absent)."""
    if isinstance(source, pd.DataFrame):
        frame = source.rename(columns=str)
        periodic = [c for c in frame.columns if isinstance(frame[c].dtype, pd.PeriodDtype)]
        staged = stage_frame(con, frame.astype(dict.fromkeys(periodic, str)), spec.required,
                             source_name or "DataFrame")
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        name, kind = source_name or path.name, file_kind(path)
        if not path.is_file():
            raise DataError(f"{name}: file not found ({path})")
        if kind not in ("csv", "parquet"):
            raise DataError(f"{name}: unsupported file type for a panel; use CSV or Parquet")
        staged = (stage_csv(con, path, name, spec.required, None) if kind == "csv" else
                  stage_parquet(con, path, name, file_sha256(path, name), spec.required))
    else:
        raise DataError(f"unsupported source {type(source).__name__}: pass a path or a DataFrame")
    folded = {c.strip().lower() for c in staged.all_columns}
    if not spec.cohort_explicit and spec.cohort.strip().lower() not in folded:
        return staged, None
    cohort = resolve_columns(list(staged.all_columns), {"cohort": spec.cohort}, staged.name)
    return staged, cohort["cohort"]


def _units_sql(staged: Staged, spec: _Spec, cohort_col: str | None, extra: str, key: str) -> str:
    """SQL: the table ``units``: a line per staged row with its id and cohort fields, ``extra``
    and its rank among the rows of the same ``key`` (``dup_rank`` > 1: a duplicate)."""
    raw = f"CAST({ident(staged.columns['customer_id'])} AS VARCHAR)"
    fields = f"{ROW} AS source_row, {raw} AS id_raw, {id_sql(raw, RowRules())} AS customer_id"
    if cohort_col is None:
        fields += ", NULL::VARCHAR AS cohort_raw, false AS cohort_pre, NULL::BIGINT AS cohort_ord"
    else:
        c = f"CAST({ident(cohort_col)} AS VARCHAR)"
        v = f"lower(trim({c}))"
        pre = " OR ".join(f"starts_with({v}, {literal(p[:-1].lower())})" if p.endswith("*")
                          else f"{v} = {literal(p.lower())}" for p in spec.pre_start_labels)
        pre = f"coalesce({pre or 'false'}, false)"
        fields += (f", {c} AS cohort_raw, {pre} AS cohort_pre, "
                   f"CASE WHEN NOT {pre} THEN {period_sql(c, spec.period)} END AS cohort_ord")
    missing = " OR ".join(f"{k} IS NULL" for k in key.split(", "))
    return (
        f"CREATE TABLE units AS SELECT *, CASE WHEN {missing} THEN 1 ELSE row_number() OVER "
        f"(PARTITION BY {key} ORDER BY source_row) END AS dup_rank, min(source_row) OVER "
        f"(PARTITION BY {key}) AS first_row FROM (SELECT {fields}{extra} FROM rows)"
    )


def _wide_units(con: duckdb.DuckDBPyConnection, staged: Staged, spec: _Spec,
                cohort_col: str | None) -> pd.PeriodIndex:
    """Tables ``units`` (a line per row) and ``cells`` (per row and period column, UNPIVOT)."""
    id_col = staged.columns["customer_id"]
    values = [c for c in staged.all_columns if c not in (id_col, cohort_col)]
    if not values:
        raise DataError(f"{staged.name}: no period columns besides {id_col!r}")
    pairs = ", ".join(f"({i}, {literal(c)})" for i, c in enumerate(values))
    con.execute(f"CREATE TABLE hdr AS SELECT pos, name, {period_sql('name', spec.period)} AS ord "
                f"FROM (VALUES {pairs}) t(pos, name)")
    by_period: dict[int, str] = {}
    for name, ordinal in con.execute("SELECT name, ord FROM hdr ORDER BY pos").fetchall():
        if ordinal is None or ordinal in by_period:
            raise DataError(f"{staged.name}: column {name!r} " + (
                f"is neither the id column {id_col!r}, the cohort column {spec.cohort!r} nor a "
                f"{spec.period} label such as {periods_of([184], spec.period)[0]} "
                "(unknown_period_label)" if ordinal is None
                else f"is the same {spec.period} as column {by_period[ordinal]!r}"))
        by_period[ordinal] = name
    periods = periods_of(range(min(by_period), max(by_period) + 1), spec.period)
    if missing := [str(p) for p in periods if p.ordinal not in by_period]:
        raise DataError(f"{staged.name}: no column for {spec.period} {', '.join(missing[:5])}")
    con.execute(_units_sql(staged, spec, cohort_col, "", "customer_id"))
    text = ", ".join(f"CAST({ident(c)} AS VARCHAR) AS {ident(c)}" for c in values)
    con.execute(
        "CREATE TABLE cells AS SELECT c.source_row, h.pos AS col_pos, h.name AS col, h.ord, c.raw, "
        "CASE WHEN c.raw IS NULL OR trim(c.raw) = '' THEN CAST(0 AS DOUBLE) "
        f"ELSE {amount_sql('c.raw')} END AS revenue FROM (SELECT {ROW} AS source_row, {text} "
        f"FROM rows) UNPIVOT INCLUDE NULLS (raw FOR col IN ({', '.join(map(ident, values))})) c "
        "JOIN hdr h ON h.name = c.col"
    )
    return periods


def _long_units(con: duckdb.DuckDBPyConnection, staged: Staged, spec: _Spec,
                cohort_col: str | None) -> pd.PeriodIndex:
    """Tables ``units`` and ``cells``, a line per row each."""
    period, revenue = (f"CAST({ident(staged.columns[k])} AS VARCHAR)" for k in ("period", "revenue"))
    extra = (f", {period} AS period_raw, {period_sql(period, spec.period)} AS ord, "
             f"{revenue} AS revenue_raw")
    con.execute(_units_sql(staged, spec, cohort_col, extra, "customer_id, ord"))
    con.execute(f"CREATE TABLE cells AS SELECT source_row, 0 AS col_pos, {literal(staged.columns['revenue'])} "
                f"AS col, ord, revenue_raw AS raw, {amount_sql('revenue_raw')} AS revenue FROM units")
    lo, hi = con.execute("SELECT min(ord), max(ord) FROM units").fetchone()
    return periods_of([] if lo is None else range(lo, hi + 1), spec.period)


def _line(reason: str, table: str, column: str, raw: str, detail: str, where: str) -> str:
    return (f"SELECT source_row, {_RANK[reason]} AS rank, {'col_pos' if table == 'cells' else 0} "
            f"AS col_pos, {column} AS col, CAST({raw} AS VARCHAR) AS raw_value, "
            f"{literal(reason)} AS reason, CAST({detail} AS VARCHAR) AS detail FROM {table} "
            f"WHERE {where}")


def _row_lines_sql(staged: Staged, spec: _Spec, cohort_col: str | None, last: int | None) -> str:
    """SQL: a line per failing row check (the reasons up to ``negative_revenue``)."""
    id_col = literal(staged.columns["customer_id"])
    non_numeric, out_of_range = (cond for _, cond in amount_checks("revenue"))
    parts = [_line("missing_customer_id", "units", id_col, "id_raw", "NULL", "customer_id IS NULL")]
    if spec.layout == "long":
        parts.append(_line("unknown_period_label", "units", literal(staged.columns["period"]),
                           "period_raw", literal(f"not a {spec.period} label"), "ord IS NULL"))
    dup, what = {"long": ("duplicate_cell", "customer and period"),
                 "wide": ("duplicate_customer", "customer id")}[spec.layout]
    parts.append(_line(dup, "units", id_col, "id_raw",
                       f"'same {what} as source row ' || first_row", "dup_rank > 1"))
    if cohort_col is not None:
        col, labels = literal(cohort_col), ", ".join(spec.pre_start_labels)
        parts.append(_line("unparseable_cohort", "units", col, "cohort_raw",
                           literal(f"not a {spec.period} label nor one of {labels}"),
                           "NOT cohort_pre AND cohort_ord IS NULL"))
        if last is not None:
            after = literal(f"after the last period {periods_of([last], spec.period)[0]}")
            parts.append(_line("cohort_after_last_period", "units", col, "cohort_raw", after,
                               f"cohort_ord > {last}"))
    parts += [
        _line("non_numeric_revenue", "cells", "col", "raw", "'not a plain number'", non_numeric),
        _line("revenue_out_of_range", "cells", "col", "raw", "'magnitude above 1e12'",
              out_of_range),
        _line("negative_revenue", "cells", "col", "raw", "NULL", "revenue < 0"),
    ]
    return " UNION ALL ".join(parts)


def _customer_sql(start: int | None, periods: pd.PeriodIndex, cohort_col: str | None) -> tuple[str, str]:
    """SQL: the table ``cust``, a line per customer with a row passing the row checks (table
    ``ok``) and the customer reason that rejects all those rows (NULL when accepted); and the
    rejection lines of those rows."""
    ranks = " ".join(f"WHEN {literal(r)} THEN {_RANK[r]}" for r in PANEL_REJECTION_REASONS)
    labels = " ".join(f"WHEN {p.ordinal} THEN {literal(str(p))}" for p in periods)
    col = "NULL" if cohort_col is None else literal(cohort_col)
    key = "CASE WHEN o.cohort_pre THEN 'pre' ELSE CAST(o.cohort_ord AS VARCHAR) END"
    inactive = "false" if start is None else f"cohort_ord >= {start} AND cohort_revenue <= 0"
    return (f"""CREATE TABLE cust AS WITH bad AS (
        SELECT u.customer_id, min(l.source_row) AS bad_row, arg_min(l.reason, l.source_row)
               AS bad_reason FROM row_lines l JOIN units u USING (source_row)
        WHERE l.is_primary AND u.customer_id IS NOT NULL
          AND l.reason NOT IN ('duplicate_customer', 'duplicate_cell') GROUP BY u.customer_id
    ), act AS (
        SELECT o.customer_id, min(o.source_row) AS first_row, count(DISTINCT {key}) AS n_cohorts,
               bool_or(o.cohort_pre) AS cohort_pre, max(o.cohort_ord) AS cohort_ord,
               min(c.ord) FILTER (WHERE c.revenue > 0) AS first_active,
               coalesce(fsum(c.revenue) FILTER (WHERE c.ord = o.cohort_ord), 0) AS cohort_revenue
        FROM ok o JOIN cells c USING (source_row) GROUP BY o.customer_id
    ) SELECT act.*, bad.bad_row, bad.bad_reason, {inactive} AS inactive_in_cohort,
        CASE WHEN bad.bad_row IS NOT NULL THEN 'customer_rejected'
             WHEN n_cohorts > 1 THEN 'conflicting_cohort'
             WHEN cohort_ord > first_active THEN 'cohort_after_first_active_period' END AS reason
    FROM act LEFT JOIN bad USING (customer_id)""", f"""SELECT o.source_row, 0 AS col_pos,
        CASE k.reason {ranks} END AS rank, CASE WHEN k.reason = 'customer_rejected' THEN '*' ELSE {col} END AS col,
        CASE WHEN k.reason <> 'customer_rejected' THEN o.cohort_raw END AS raw_value, k.reason,
        CASE k.reason WHEN 'customer_rejected' THEN 'source row ' || k.bad_row
                 || ' of this customer was rejected (' || k.bad_reason || ')'
             WHEN 'conflicting_cohort' THEN 'the rows declare ' || k.n_cohorts || ' cohorts'
             ELSE 'first revenue in ' || CASE k.first_active {labels or 'WHEN NULL THEN NULL'} END
             END AS detail, true AS is_primary
    FROM ok o JOIN cust k USING (customer_id) WHERE k.reason IS NOT NULL""")


def _judge(con: duckdb.DuckDBPyConnection, staged: Staged, spec: _Spec, cohort_col: str | None,
           periods: pd.PeriodIndex) -> PanelLoadResult:
    """Judge every row of ``units`` (row checks, then customer checks) and build the result."""
    start, last = (int(periods[i].ordinal) if len(periods) else None for i in (0, -1))
    con.execute(
        "CREATE TABLE row_lines AS SELECT *, row_number() OVER "
        "(PARTITION BY source_row ORDER BY rank, col_pos) = 1 AS is_primary "
        f"FROM ({_row_lines_sql(staged, spec, cohort_col, last)})"
    )
    con.execute("CREATE TABLE ok AS SELECT * FROM units u WHERE NOT EXISTS "
                "(SELECT 1 FROM row_lines l WHERE l.source_row = u.source_row)")
    cust, cust_lines = _customer_sql(start, periods, cohort_col)
    con.execute(cust)
    con.execute(f"CREATE TABLE lines AS SELECT * FROM row_lines UNION ALL BY NAME ({cust_lines})")
    con.execute("CREATE TABLE accepted AS SELECT o.source_row, o.customer_id, k.first_row "
                "FROM ok o JOIN cust k USING (customer_id) WHERE k.reason IS NULL")
    cohort, before = (
        ("cohort_ord", f"cohort_pre OR cohort_ord < {start}") if cohort_col is not None
        else ("first_active", f"CASE WHEN first_active > {start} THEN false END"))
    con.execute(f"CREATE TABLE kept AS SELECT customer_id, {cohort} AS cohort, ({before}) AS "
                "before, first_active, first_row, inactive_in_cohort FROM cust WHERE reason IS NULL")
    cursor = con.execute(  # aggregates without GROUP BY: one row each, also when empty
        "SELECT * FROM (SELECT count(*) AS units FROM units), (SELECT count(*) AS accepted "
        "FROM accepted), (SELECT count(*) AS cells_read FROM cells), "
        "(SELECT count(*) AS cells_accepted, count(*) FILTER (c.revenue > 0) AS cells_active, "
        "coalesce(fsum(c.revenue), 0) AS total_revenue FROM accepted JOIN cells c USING (source_row)), "
        "(SELECT count(*) AS customers, count(*) FILTER (before) AS customers_before_start, "
        "count(*) FILTER (before IS NULL) AS customers_start_unknown, count(*) FILTER "
        "(first_active IS NULL) AS customers_never_active, count(*) FILTER (inactive_in_cohort) "
        "AS customers_inactive_in_cohort_period FROM kept)"
    )
    figures = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    rows_read = int(figures.pop("units")) + len(staged.malformed)
    if rows_read == 0:
        raise DataError(f"{staged.name}: empty file (no data rows)")
    by_reason = dict.fromkeys(PANEL_REJECTION_REASONS, 0)
    by_reason["malformed_row"] = len(staged.malformed)
    sql = "SELECT reason, count(*) FROM lines WHERE is_primary GROUP BY reason"
    by_reason.update({str(r): int(n) for r, n in con.execute(sql).fetchall()})
    counts = RowCounts.tally(rows_read, int(figures.pop("accepted")), by_reason)
    figures = {k: float(v) if k == "total_revenue" else int(v) for k, v in figures.items()}
    reconciliation = PanelReconciliation(
        source=staged.name, source_type=staged.kind, sha256=staged.sha256, layout=spec.layout,
        period=spec.period, columns={**staged.columns, **({"cohort": cohort_col} if cohort_col else {})},
        pre_start_labels=spec.pre_start_labels, rows_read=counts.read,
        rows_accepted=counts.accepted, rows_rejected=counts.rejected,
        rejected_by_reason=counts.by_reason, **figures,
        first_period=str(periods[0]) if len(periods) else None,
        last_period=str(periods[-1]) if len(periods) else None,
    )
    panel, customers = _frames(con, spec.period)
    rejections = rejections_from_lines(con, staged, 'source_row, rank, col_pos')
    return PanelLoadResult(panel, customers, periods, rejections, reconciliation)


def _frames(con: duckdb.DuckDBPyConnection, period: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The accepted panel and customers, periods from their ordinals."""
    panel = con.execute("SELECT a.customer_id, c.ord, c.revenue FROM accepted a JOIN cells c "
                        "USING (source_row) WHERE c.revenue > 0 ORDER BY a.first_row, c.ord").df()
    cust = con.execute(f"SELECT customer_id, coalesce(cohort, {_NAT}) AS cohort, before, coalesce("
                       f"first_active, {_NAT}) AS first_active FROM kept ORDER BY first_row").df()

    def periods(frame: pd.DataFrame, column: str) -> pd.Series:
        return pd.Series(periods_of(frame[column].to_numpy(dtype=np.int64), period))

    return pd.DataFrame({
        "customer_id": panel["customer_id"].astype(str), "period": periods(panel, "ord"),
        "revenue": panel["revenue"].astype("float64"),
    }), pd.DataFrame({
        "customer_id": cust["customer_id"].astype(str), "cohort": periods(cust, "cohort"),
        "acquired_before_start": cust["before"].astype("boolean"),
        "first_active_period": periods(cust, "first_active"),
    })
