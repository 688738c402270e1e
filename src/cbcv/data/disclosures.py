"""Read a listed company's disclosed customer metrics, one row per period, in DuckDB SQL: every row
accepted or rejected with a reason, the counts reconciled, the units stated, the gaps and
restatements listed and the accounting identity checked.

A **disclosures table** has a ``period`` column and any of :data:`DISCLOSED_SERIES`
(``new_customers``, ``lost_customers``, ``customers_end``, ``active_customers``, ``orders``,
``revenue``, ``marketing_spend``), mapped by ``columns`` (contract name -> source column; an
unmapped name is looked up by itself, case-insensitively, and a series the source lacks is simply
not disclosed). Sources: a CSV file (staged as by :mod:`cbcv.data.load`), a Parquet file or a
DataFrame.

Periods (``period="quarter"`` or ``"month"``)
    ``2019Q1``, ``2019-Q1``, ``2019 Q1``, ``Q1 2019``, ``q1 2019`` (quarters), ``2019-01``,
    ``2019M01``, ``2019M1`` (months), or a date (``2019-03-31``, ``2019/03/31``, ``20190331``),
    which stands for the period containing it (the period's end, as filings date them). A
    quarter label in a monthly table is unparseable.

Values
    Empty cells and null tokens (``NULL``, ``NA``, ``-``, ...) are *not reported* (kept as
    missing: a firm need not disclose every series every period). Thousands separators (``1,234``)
    are read; anything else that is not a plain number rejects the row. ``scale`` multiplies a
    series into customers or currency units (``revenue: 1000`` for a column in thousands) and is
    stated in the result.

Each row is accepted or rejected once, with the first failing of
:data:`DISCLOSURE_REJECTION_REASONS`: ``malformed_row``, ``unparseable_period``,
``period_after_as_of`` (the period ends after ``as_of``), ``non_numeric_value``,
``negative_value`` (counts, revenue and spend are never negative), ``duplicate_period`` (a later
row of the same period with the same figures), ``restated_period`` (a row of a period that a
later row discloses again with different figures: the later row is the restatement and is the
one used; the replaced figures are listed in :attr:`Disclosures.restatements`).

The accounting identity ``customers_end_t = customers_end_{t-1} + new_customers_t -
lost_customers_t`` is checked wherever the four figures are disclosed; a violation (beyond half a
customer of rounding, in the scaled unit) is reported in :attr:`Disclosures.identities`, never
fixed. Periods missing inside the span are inserted as unreported rows and listed in
:attr:`Disclosures.gaps`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import first_line, ident, literal, scratch_connection
from cbcv.data.load import rejections_from_lines, stage_table
from cbcv.data.reconciliation import RowCounts
from cbcv.data.rules import NULL_TOKENS
from cbcv.data.staged import ROW, Staged, resolve_columns

Period = Literal["quarter", "month"]
#: The disclosed series, in the order tables show them.
DISCLOSED_SERIES: tuple[str, ...] = (
    "new_customers", "lost_customers", "customers_end", "active_customers", "orders", "revenue", "marketing_spend",
)
#: Rejection reasons, in the order in which the first failing is chosen.
DISCLOSURE_REJECTION_REASONS: tuple[str, ...] = (
    "malformed_row", "unparseable_period", "period_after_as_of", "non_numeric_value", "negative_value",
    "duplicate_period", "restated_period",
)
#: Pandas frequency of each period.
FREQ: dict[str, str] = {"quarter": "Q-DEC", "month": "M"}
#: Months in a period.
MONTHS: dict[str, int] = {"quarter": 3, "month": 1}
#: The accounting identity holds when it is off by at most this many (scaled) customers.
ROUNDING = 0.5


@dataclass(frozen=True)
class DisclosureReconciliation:
    """Rows read, accepted and rejected (by reason) of a disclosures source."""

    source: str
    source_type: str
    sha256: str | None
    columns: dict[str, str]
    as_of: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]

    def to_json_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Disclosures:
    """A validated disclosures table (module docstring).

    ``table``: one row per period from the first to the last accepted one (a contiguous
    ``PeriodIndex``), the disclosed series as float columns (NaN where not reported, scaled);
    ``identities``: per checked period ``period``, ``reported``, ``implied``, ``difference``,
    ``holds``; ``restatements``: per replaced figure ``period``, ``column``, ``earlier``,
    ``restated``, ``earlier_row``, ``restated_row``; ``rejections``: cbcv's rejection table."""

    table: pd.DataFrame
    period: str
    scale: dict[str, float]
    source_name: str
    sha256: str | None
    identities: pd.DataFrame
    gaps: tuple[str, ...]
    restatements: pd.DataFrame
    reconciliation: DisclosureReconciliation
    rejections: pd.DataFrame = field(repr=False)

    @property
    def series(self) -> tuple[str, ...]:
        """The series reported in at least one period."""
        return tuple(c for c in self.table.columns if self.table[c].notna().any())

    @property
    def violations(self) -> pd.DataFrame:
        """The periods where the accounting identity does not hold."""
        return self.identities[~self.identities["holds"]].reset_index(drop=True)

    def series_summary(self) -> pd.DataFrame:
        """Per disclosed series: the source column, the first and last period reported, how many
        periods report it and the scale applied."""
        rows = []
        for s in self.table.columns:
            seen = self.table.index[self.table[s].notna()]
            rows.append({"series": s, "column": self.reconciliation.columns.get(s, s),
                         "first_period": str(seen[0]) if len(seen) else None,
                         "last_period": str(seen[-1]) if len(seen) else None, "reported_periods": int(len(seen)),
                         "scale": float(self.scale.get(s, 1.0))})
        return pd.DataFrame(rows)

    def through(self, end: pd.Period) -> Disclosures:
        """The same disclosures as known at the end of period ``end`` (for rolling origins):
        the table to ``end``, its identities and gaps recomputed."""
        table = self.table.loc[:end]
        if table.empty:
            raise DataError(f"{self.source_name}: no period on or before {end}")
        return Disclosures(table, self.period, self.scale, self.source_name, self.sha256,
                           identity_checks(table, identity_tolerance(self.scale)),
                           tuple(g for g in self.gaps if pd.Period(g, freq=FREQ[self.period]) <= end),
                           self.restatements, self.reconciliation, self.rejections)

    def to_json_dict(self) -> dict[str, Any]:
        """Strict-JSON dict: the reconciliation, series, units, gaps, restatements and the
        identity checks with their violations."""
        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return float(v) if np.isfinite(v) else None
            if isinstance(v, np.integer | np.bool_):
                return v.item()
            return v

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict("records")]

        return {
            "reconciliation": self.reconciliation.to_json_dict(),
            "period": self.period,
            "first_period": str(self.table.index[0]), "last_period": str(self.table.index[-1]),
            "series": records(self.series_summary()),
            "gaps": list(self.gaps),
            "restatements": records(self.restatements.astype({"period": str})) if len(self.restatements) else [],
            "identity": {"checked": int(len(self.identities)), "violated": int((~self.identities["holds"]).sum()),
                         "violations": records(self.violations.astype({"period": str}))},
        }


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def load_disclosures(
    source: Any, *, period: Period = "quarter", as_of: date | None = None, columns: Mapping[str, str] | None = None,
    scale: Mapping[str, float] | None = None, source_name: str | None = None,
) -> Disclosures:
    """Read and validate a disclosures table (module docstring)."""
    if period not in FREQ:
        raise ConfigError(f"period {period!r}: choose quarter or month")
    mapping = {k: str(v) for k, v in (columns or {}).items()}
    unknown = [k for k in mapping if k not in ("period", *DISCLOSED_SERIES)]
    if unknown:
        raise ConfigError(f"data.columns.{unknown[0]}: not a disclosures field (period, {', '.join(DISCLOSED_SERIES)})")
    scales = {k: float(v) for k, v in (scale or {}).items()}
    if bad := [k for k, v in scales.items() if k not in DISCLOSED_SERIES or not v > 0]:
        raise ConfigError(f"data.scale.{bad[0]}: a positive multiplier of a disclosed series")
    with scratch_connection() as con:
        staged = stage_table(con, source, {"period": mapping.get("period", "period")}, source_name)
        cols = _resolve(staged, mapping)
        try:
            return _judge(con, staged, cols, period, as_of, scales)
        except duckdb.Error as exc:
            raise DataError(f"{staged.name}: cannot validate the disclosures ({first_line(exc)})") from exc



def _resolve(staged: Staged, mapping: Mapping[str, str]) -> dict[str, str]:
    """Contract name -> source column: ``period`` and every series present (a mapped series
    must be present)."""
    found = list(staged.all_columns)
    folded = {c.strip().lower() for c in found}
    cols = dict(staged.columns)
    for key in DISCLOSED_SERIES:
        wanted = mapping.get(key, key)
        if key in mapping or wanted.strip().lower() in folded:
            cols.update(resolve_columns(found, {key: wanted}, staged.name))
    if not set(cols) - {"period"}:
        raise DataError(f"{staged.name}: no disclosed series found (columns: {', '.join(found)}; expected any of "
                        f"{', '.join(DISCLOSED_SERIES)}, or map them in data.columns)")
    return cols


def period_sql(raw: str, period: str) -> str:
    """SQL: the first day of the period that the text ``raw`` names (module docstring), NULL
    when it names none."""
    v = f"upper(trim({raw}))"
    quarter = (f"CASE WHEN regexp_full_match({v}, '\\d{{4}}\\s*-?\\s*Q[1-4]') THEN make_date("
               f"CAST(left({v}, 4) AS INTEGER), 3 * CAST(right({v}, 1) AS INTEGER) - 2, 1) "
               f"WHEN regexp_full_match({v}, 'Q[1-4]\\s*-?\\s*\\d{{4}}') THEN make_date("
               f"CAST(right({v}, 4) AS INTEGER), 3 * CAST(substr({v}, 2, 1) AS INTEGER) - 2, 1) END")
    month = (f"CASE WHEN regexp_full_match({v}, '\\d{{4}}(-|M)(0?[1-9]|1[0-2])') THEN make_date("
             f"CAST(left({v}, 4) AS INTEGER), CAST(regexp_extract({v}, '(\\d+)$', 1) AS INTEGER), 1) END")
    day = (f"coalesce(try_strptime({v}, '%Y-%m-%d'), try_strptime({v}, '%Y/%m/%d'), "
           f"CASE WHEN regexp_full_match({v}, '\\d{{8}}') THEN try_strptime({v}, '%Y%m%d') END)")
    truncated = f"CAST(date_trunc({literal(period)}, {day}) AS DATE)"
    label = quarter if period == "quarter" else month
    return f"coalesce({label}, {truncated})"


def number_sql(raw: str) -> str:
    """SQL: a cell's number (thousands separators allowed), NULL unless a plain number."""
    v = f"replace(trim({raw}), ',', '')"
    return f"CASE WHEN regexp_full_match({v}, '[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?') THEN try_cast({v} AS DOUBLE) END"


def _units_sql(cols: dict[str, str], period: str) -> str:
    tokens = ", ".join(literal(t.lower()) for t in ("", *NULL_TOKENS))
    period_raw = f"CAST({ident(cols['period'])} AS VARCHAR)"
    parts = [f"{ROW} AS source_row", f"{period_raw} AS period_raw", f"{period_sql(period_raw, period)} AS start_day"]
    for key in DISCLOSED_SERIES:
        if key in cols:
            raw = f"CAST({ident(cols[key])} AS VARCHAR)"
            parts += [f"{raw} AS {ident('raw_' + key)}",
                      f"({raw} IS NULL OR lower(trim({raw})) IN ({tokens})) AS {ident('blank_' + key)}",
                      f"{number_sql(raw)} AS {ident('num_' + key)}"]
    return f"CREATE TABLE units AS SELECT * FROM (SELECT {', '.join(parts)} FROM rows)"


def _checks(cols: dict[str, str], period: str, as_of: date | None) -> list[str]:
    """SELECTs of the failing row checks: source_row, rank, col, raw_value, reason, detail."""
    reasons = DISCLOSURE_REJECTION_REASONS
    months = MONTHS[period]
    out = [f"SELECT source_row, {reasons.index('unparseable_period')} AS rank, {literal(cols['period'])} AS col, "
           f"period_raw AS raw_value, 'unparseable_period' AS reason, "
           f"{literal(f'not a {period} (e.g. 2019Q1, Q1 2019, 2019-03-31)')} AS detail FROM units WHERE start_day IS NULL"]
    if as_of is not None:
        out.append(f"SELECT source_row, {reasons.index('period_after_as_of')}, {literal(cols['period'])}, period_raw, "
                   f"'period_after_as_of', 'the {period} ends after the as-of date {as_of.isoformat()}' FROM units "
                   f"WHERE start_day + INTERVAL {months} MONTH - INTERVAL 1 DAY > DATE {literal(as_of.isoformat())}")
    for key in DISCLOSED_SERIES:
        if key not in cols:
            continue
        raw, blank, num = ident("raw_" + key), ident("blank_" + key), ident("num_" + key)
        out.append(f"SELECT source_row, {reasons.index('non_numeric_value')}, {literal(cols[key])}, {raw}, "
                   f"'non_numeric_value', 'not a plain number' FROM units WHERE NOT {blank} AND "
                   f"({num} IS NULL OR NOT isfinite({num}))")
        out.append(f"SELECT source_row, {reasons.index('negative_value')}, {literal(cols[key])}, {raw}, "
                   f"'negative_value', 'a disclosed count or amount is never negative' FROM units "
                   f"WHERE NOT {blank} AND {num} < 0")
    return out


def _judge(con: duckdb.DuckDBPyConnection, staged: Staged, cols: dict[str, str], period: str,
           as_of: date | None, scale: dict[str, float]) -> Disclosures:
    reasons = DISCLOSURE_REJECTION_REASONS
    con.execute(_units_sql(cols, period))
    con.execute(f"CREATE TABLE row_lines AS {' UNION ALL '.join(_checks(cols, period, as_of))}")
    series = [k for k in DISCLOSED_SERIES if k in cols]
    values = ", ".join(f"CASE WHEN NOT {ident('blank_' + k)} THEN {ident('num_' + k)} END AS {ident(k)}" for k in series)
    con.execute(f"CREATE TABLE good AS SELECT source_row, start_day, {values} FROM units u WHERE NOT EXISTS "
                "(SELECT 1 FROM row_lines l WHERE l.source_row = u.source_row)")
    same = " AND ".join(f"g.{ident(k)} IS NOT DISTINCT FROM k.{ident(k)}" for k in series)
    con.execute("CREATE TABLE ranked AS SELECT *, row_number() OVER (PARTITION BY start_day ORDER BY source_row DESC) "
                "AS latest, max(source_row) OVER (PARTITION BY start_day) AS kept_row FROM good")
    period_col = literal(cols["period"])
    con.execute(
        "CREATE TABLE lines AS SELECT *, row_number() OVER (PARTITION BY source_row ORDER BY rank) = 1 AS is_primary "
        f"FROM (SELECT * FROM row_lines UNION ALL SELECT g.source_row, CASE WHEN {same} THEN "
        f"{reasons.index('duplicate_period')} ELSE {reasons.index('restated_period')} END, {period_col}, "
        f"u.period_raw, CASE WHEN {same} THEN 'duplicate_period' ELSE 'restated_period' END, "
        "'disclosed again in source row ' || k.source_row FROM ranked g JOIN ranked k ON k.start_day = g.start_day "
        "AND k.latest = 1 JOIN units u ON u.source_row = g.source_row WHERE g.latest > 1)")
    (n_units,) = con.execute("SELECT count(*) FROM units").fetchone()
    kept = con.execute(f"SELECT start_day, source_row, {', '.join(ident(k) for k in series)} FROM ranked "
                       "WHERE latest = 1 ORDER BY start_day").df()
    replaced = con.execute(f"SELECT g.start_day, g.source_row AS earlier_row, k.source_row AS restated_row, "
                           f"{', '.join(f'g.{ident(k)} AS {ident(k)}' for k in series)} FROM ranked g JOIN ranked k "
                           "ON k.start_day = g.start_day AND k.latest = 1 WHERE g.latest > 1 ORDER BY g.source_row").df()
    rec = _reconcile(con, staged, cols, as_of, int(n_units), len(kept))
    rejections = rejections_from_lines(con, staged, "source_row, rank")
    if kept.empty:
        raise DataError(f"{staged.name}: no period accepted ({rec.rows_rejected} of {rec.rows_read} rows rejected; "
                        "see the rejections)")
    table, gaps = _table(kept, series, period, scale)
    return Disclosures(table, period, {k: scale.get(k, 1.0) for k in series}, staged.name, staged.sha256,
                       identity_checks(table, identity_tolerance(scale)), gaps, _restatements(replaced, kept, series, period, scale), rec,
                       rejections)


def _reconcile(con: duckdb.DuckDBPyConnection, staged: Staged, cols: dict[str, str], as_of: date | None,
               n_units: int, accepted: int) -> DisclosureReconciliation:
    rows_read = n_units + len(staged.malformed)
    if rows_read == 0:
        raise DataError(f"{staged.name}: empty file (no data rows)")
    by_reason = dict.fromkeys(DISCLOSURE_REJECTION_REASONS, 0)
    by_reason["malformed_row"] = len(staged.malformed)
    by_reason.update({str(r): int(n) for r, n in con.execute(
        "SELECT reason, count(*) FROM lines WHERE is_primary GROUP BY reason").fetchall()})
    counts = RowCounts.tally(rows_read, accepted, by_reason)
    return DisclosureReconciliation(staged.name, staged.kind, staged.sha256, dict(cols),
                                    None if as_of is None else as_of.isoformat(), counts.read, counts.accepted,
                                    counts.rejected, counts.by_reason)


def _table(kept: pd.DataFrame, series: Sequence[str], period: str, scale: Mapping[str, float]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The accepted periods as a contiguous, scaled table, and the periods missing inside it."""
    index = pd.PeriodIndex(pd.to_datetime(kept["start_day"]), freq=FREQ[period])
    frame = pd.DataFrame({k: kept[k].to_numpy(dtype=float) * scale.get(k, 1.0) for k in series}, index=index)
    full = pd.period_range(index.min(), index.max(), freq=FREQ[period])
    gaps = tuple(str(p) for p in full.difference(index))
    frame = frame.reindex(full)
    frame.index.name = "period"
    return frame, gaps


def _restatements(replaced: pd.DataFrame, kept: pd.DataFrame, series: Sequence[str], period: str,
                  scale: Mapping[str, float]) -> pd.DataFrame:
    """Per replaced figure: the period, the column, the earlier and the restated value and rows."""
    rows = []
    latest = kept.set_index("start_day")
    for r in replaced.to_dict("records"):
        for k in series:
            earlier, restated = r[k], latest.loc[r["start_day"], k]
            if not (pd.isna(earlier) and pd.isna(restated)) and earlier != restated:
                rows.append({"period": pd.Period(r["start_day"], freq=FREQ[period]), "column": k,
                             "earlier": float(earlier) * scale.get(k, 1.0) if pd.notna(earlier) else np.nan,
                             "restated": float(restated) * scale.get(k, 1.0) if pd.notna(restated) else np.nan,
                             "earlier_row": int(r["earlier_row"]), "restated_row": int(r["restated_row"])})
    return pd.DataFrame(rows, columns=["period", "column", "earlier", "restated", "earlier_row", "restated_row"])


def identity_tolerance(scale: Mapping[str, float]) -> float:
    """Half a unit of the coarsest of the identity's columns (module docstring)."""
    return ROUNDING * max(float(scale.get(k, 1.0)) for k in ("customers_end", "new_customers", "lost_customers"))


def identity_checks(table: pd.DataFrame, tolerance: float = ROUNDING) -> pd.DataFrame:
    """The accounting identity in every period where it can be checked (module docstring); it
    holds within ``tolerance`` customers."""
    cols = ["period", "reported", "implied", "difference", "holds"]
    if not {"customers_end", "new_customers", "lost_customers"} <= set(table.columns):
        return pd.DataFrame(columns=cols).astype({"holds": bool})
    end = table["customers_end"]
    implied = end.shift(1) + table["new_customers"] - table["lost_customers"]
    ok = implied.notna() & end.notna()
    out = pd.DataFrame({"period": table.index[ok], "reported": end[ok].to_numpy(), "implied": implied[ok].to_numpy()})
    out["difference"] = out["reported"] - out["implied"]
    out["holds"] = out["difference"].abs() <= tolerance
    return out[cols].reset_index(drop=True)
