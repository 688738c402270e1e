"""The engine of the subscription audit: accepted spells, their renewal counts and their payments,
in a scratch DuckDB that every subscription table is a query of.

Time conventions (the shared contract of the subscription work packages)
    A spell starts on day ``start`` and pays one ``price`` per billing period (``month``,
    ``quarter``, ``year``: n = 1, 3, 12 months) at the renewal dates ``start + k n months``,
    k = 0, 1, 2, ... (DuckDB calendar arithmetic, each date counted from ``start``, so a spell
    starting on 31 January renews on 28/29 February and on 31 March). ``end`` is the day service
    ends. At a date D (end of day) a spell with ``start <= D`` is *churned by D* when
    ``end <= D``, else *active at D*. An ``end`` after ``as_of`` is not known at ``as_of``: the
    spell is active (censored) there, so the audit at ``as_of`` never looks past ``as_of``; spells
    starting after ``as_of`` are left out (counted in the headline).

Per spell (table ``spells``)
    ``horizon``: renewal dates reached by ``as_of``, #{k >= 1 : start + k n months <= as_of},
    whether or not the spell is still active (the renewals it *could* have made: how long it has
    been observed). ``renewals``: renewals made, #{k >= 1 : start + k n months < end} for a
    churned spell (so ``end = start + 3 months`` renews twice and pays three times) and
    ``horizon`` for an active one. ``payments = renewals + 1`` (at least one, the first at
    ``start``). ``duration`` is the sBG/BdW duration datum (Fader & Hardie 2007, "How to Project
    Customer Retention"): ``payments`` for a churned spell (``churned = True``), ``renewals``
    for an active one (``churned = False``).

Payments (table ``payments``)
    One row per payment made by ``as_of`` (``customer_id``, the spell's ``cohort``, ``price``,
    ``pay_date`` and its ``period`` and ``cperiod`` ordinals): ``start + k n months`` for
    k = 0 .. ``renewals``,
    generated per spell with ``unnest(range(...))`` in DuckDB, never in pandas: the table lives
    in DuckDB (spilling to disk beyond ``memory_limit``) and only aggregates come back. A spell
    without a price (NaN: the source had no price column) makes payments of no revenue.

Periods
    Calendar periods (``period``, for time series) and cohorts (``cohort_period``) are
    ``month``, ``quarter`` or ``year``, numbered in SQL as pandas numbers them (period ordinals:
    months since January 1970 divided by n, rounded down), so the tables hold ``pd.Period``
    values whose ``str`` is the label of :mod:`cbcv.data.summary` (``2019-03``, ``2019Q1``,
    ``2019``). A spell's cohort is the period of its own ``start``: a reactivation (``spell`` >= 2)
    is a unit of retention in the cohort of its own start; acquisitions are first spells.

May import: data and core (and the rest of the audit).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from cbcv.audit._common import DateLike, as_day
from cbcv.audit.engine import periods
from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import DUCKDB, first_line, relation_of, scratch_connection

#: Accepted spells: a DataFrame or Arrow table in the spells schema, or a Parquet file or glob.
SpellSource = str | os.PathLike[str] | pd.DataFrame | pa.Table

#: Months in each billing period (and in each calendar period of the tables).
PERIOD_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}
#: pandas frequency of each period name.
PERIOD_FREQ: dict[str, str] = {"month": "M", "quarter": "Q", "year": "Y"}
#: Columns the audit reads (``plan`` and extra columns are optional and ignored).
SPELL_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "spell",
    "start",
    "end",
    "price",
    "billing_period",
)

#: ``months_floor(s, n, x)``: whole n-month steps from ``s`` to ``x`` by month number;
#: ``renewals_by(s, n, x)``: #{k >= 1 : s + k n months <= x} (0 when ``x`` is before the first).
MACROS_SQL = (
    "CREATE TEMP MACRO months_floor(s, n, x) AS CAST(floor(datediff('month', s, x) / n) AS BIGINT)",
    "CREATE TEMP MACRO renewals_by(s, n, x) AS greatest(0, months_floor(s, n, x) - "
    "CASE WHEN s + INTERVAL (months_floor(s, n, x) * n) MONTH > x THEN 1 ELSE 0 END)",
)

#: The typed view of the source.
SOURCE_SQL = """
CREATE TEMP VIEW src AS
SELECT CAST(customer_id AS VARCHAR) AS customer_id, CAST(spell AS BIGINT) AS spell,
       CAST(start AS DATE) AS start, CAST("end" AS DATE) AS "end",
       CASE WHEN isnan(CAST(price AS DOUBLE)) THEN NULL ELSE CAST(price AS DOUBLE) END AS price,
       lower(trim(CAST(billing_period AS VARCHAR))) AS billing_period
FROM {relation}
"""

#: Checks of the typed source: (column, condition of a bad row, what is wrong).
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("customer_id", "customer_id IS NULL", "missing customer_id"),
    ("spell", "spell IS NULL OR spell < 1", "spell must be a whole number >= 1"),
    ("start", "start IS NULL", "missing start date"),
    ("end", '"end" < start', "end is before start"),
    (
        "billing_period",
        "billing_period IS NULL OR billing_period NOT IN ('month', 'quarter', 'year')",
        "billing_period must be month, quarter or year",
    ),
)

SPELLS_SQL = """
CREATE TEMP TABLE spells AS
SELECT *, CASE WHEN churned THEN renewals + 1 ELSE renewals END AS duration,
       renewals + 1 AS payments
FROM (
    SELECT customer_id, spell, start, "end", price, billing_period, months, churned,
           {cohort} AS cohort, {period} AS start_period,
           CASE WHEN churned THEN {end_period} END AS end_period,
           renewals_by(start, months, {as_of}) AS horizon,
           CASE WHEN churned THEN renewals_by(start, months, "end" - 1)
                ELSE renewals_by(start, months, {as_of}) END AS renewals
    FROM (
        SELECT customer_id, spell, start, price, billing_period, months, churned,
               CASE WHEN churned THEN raw_end END AS "end"
        FROM (
            SELECT customer_id, spell, start, price, billing_period, "end" AS raw_end,
                   CASE billing_period WHEN 'month' THEN 1 WHEN 'quarter' THEN 3 ELSE 12 END
                       AS months,
                   coalesce("end" <= {as_of}, false) AS churned
            FROM src WHERE start <= {as_of}
        )
    )
)
"""

#: Change in a cohort's active spells at the end of each period: +1 in the period of ``start``,
#: -1 in the period of ``end`` (a spell is active at the end of periods ``start_period`` ..
#: ``end_period - 1``; one starting and ending within a period is never counted).
SUBSCRIBER_DELTAS_SQL = """
SELECT cohort, period, sum(delta) AS delta FROM (
    SELECT cohort, start_period AS period, 1 AS delta FROM spells
    UNION ALL
    SELECT cohort, end_period AS period, -1 AS delta FROM spells WHERE churned
) GROUP BY cohort, period
"""

PAYMENTS_SQL = """
CREATE TEMP TABLE payments AS
SELECT customer_id, cohort, price, pay_date, {period} AS period, {cperiod} AS cperiod
FROM (
    SELECT customer_id, cohort, price,
           CAST(start + INTERVAL (k * months) MONTH AS DATE) AS pay_date
    FROM (SELECT *, unnest(range(0, renewals + 1)) AS k FROM spells)
)
"""


def ordinal_sql(day: str, months: int) -> str:
    """SQL for the pandas period ordinal of the DATE expression ``day`` in periods of
    ``months`` months (1, 3, 12: pandas ``M``, ``Q``, ``Y``)."""
    return f"CAST(floor(((year({day}) - 1970) * 12 + month({day}) - 1) / {months}) AS BIGINT)"


def period_name(value: str, what: str) -> str:
    """``value`` as one of ``month``, ``quarter``, ``year`` (``M``, ``Q``, ``Y`` accepted);
    :class:`ConfigError` naming ``what`` otherwise."""
    text = str(value).strip().lower()
    text = {"m": "month", "q": "quarter", "y": "year", "a": "year"}.get(text, text)
    if text not in PERIOD_MONTHS:
        raise ConfigError(f"{what} {value!r} is not one of month, quarter, year")
    return text


@dataclass(frozen=True)
class SpellBook:
    """Accepted spells, their ``spells`` and ``payments`` tables (module docstring) and the
    ``calendar`` of ``period`` s, in the open connection ``con``.

    ``calendar`` has one row per period from the first spell's to ``as_of``'s: ``period``
    (ordinal), ``first_day``, ``last_day``, ``end_day`` = min(``last_day``, ``as_of``) (the day at
    whose end the period's subscribers are counted) and ``partial`` (``as_of`` inside it).
    ``name`` names the source in messages; ``dropped`` counts spells starting after ``as_of``;
    ``priced`` is False when no spell has a price (revenue figures are then NaN, not 0).
    """

    con: duckdb.DuckDBPyConnection
    name: str
    as_of: pd.Timestamp
    period: str
    cohort_period: str
    dropped: int
    priced: bool

    @property
    def freq(self) -> str:
        """pandas frequency of ``period``."""
        return PERIOD_FREQ[self.period]

    @property
    def cfreq(self) -> str:
        """pandas frequency of ``cohort_period``."""
        return PERIOD_FREQ[self.cohort_period]

    @property
    def as_of_sql(self) -> str:
        """``as_of`` as a DATE literal."""
        return DUCKDB.day(self.as_of.date())

    def df(self, sql: str) -> pd.DataFrame:
        """The result of ``sql`` as a DataFrame."""
        return self.con.execute(sql).df()

    def one(self, sql: str) -> tuple:
        """The single row of ``sql``."""
        return self.con.execute(sql).fetchall()[0]

    def periods(self, ordinals: pd.Series | np.ndarray) -> pd.api.extensions.ExtensionArray:
        """Ordinals of ``period`` as a pandas period array."""
        return periods(ordinals, self.freq)

    def cohorts(self, ordinals: pd.Series | np.ndarray) -> pd.api.extensions.ExtensionArray:
        """Ordinals of ``cohort_period`` as a pandas period array."""
        return periods(ordinals, self.cfreq)

    def calendar(self) -> pd.DataFrame:
        """The ``calendar`` table (class docstring), oldest period first."""
        return self.df("SELECT * FROM calendar ORDER BY period")


@contextlib.contextmanager
def open_spells(
    source: SpellSource,
    *,
    as_of: DateLike,
    period: str = "month",
    cohort_period: str = "month",
    memory_limit: str | None = None,
    threads: int | None = None,
) -> Iterator[SpellBook]:
    """The :class:`SpellBook` of the accepted spells ``source`` at ``as_of``, in a scratch DuckDB
    closed on exit.

    ``source`` is a DataFrame or Arrow table (registered, not copied) or the path of a Parquet
    file or glob, with the columns of :data:`SPELL_COLUMNS`. ``period`` and ``cohort_period``
    are ``month``, ``quarter`` or ``year``; ``memory_limit`` (e.g. ``"4GB"``) and ``threads`` are
    DuckDB's settings. A missing file or column, a bad row (missing id or start, a spell number
    below 1, an end before the start, an unknown billing period: the first one named by its
    1-based row), no spell started by ``as_of`` and any DuckDB error inside the block are
    :class:`DataError` naming the source.
    """
    period = period_name(period, "period")
    cohort_period = period_name(cohort_period, "cohort_period")
    stop = as_day(as_of, "as_of")
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        name = _register(con, source)
        try:
            for macro in MACROS_SQL:
                con.execute(macro)
            _check(con, name)
            dropped, priced = _build(con, name, stop, period, cohort_period)
            yield SpellBook(con, name, stop, period, cohort_period, dropped, priced)
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot audit the spells ({first_line(exc)})") from exc


def _register(con: duckdb.DuckDBPyConnection, source: SpellSource) -> str:
    """Expose ``source`` as the typed view ``src``; returns the name used in messages."""
    relation, name, found = relation_of(con, source, "spells_input", "spells")
    missing = [c for c in SPELL_COLUMNS if c not in found]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)} (accepted spells need "
            f"{', '.join(SPELL_COLUMNS)}; load them with the subscription loader first)"
        )
    try:
        con.execute(SOURCE_SQL.format(relation=relation))
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read the spells ({first_line(exc)})") from exc
    return name


def _check(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """:class:`DataError` naming the first bad row (1-based, in the source's order) and its
    column (:data:`CHECKS`). One scan when every row is good; rows are numbered (a window over
    the whole source) only to name a bad one."""
    flags = ", ".join(f"count(*) FILTER (WHERE {condition})" for _, condition, _ in CHECKS)
    counts = con.execute(f"SELECT {flags} FROM src").fetchall()[0]
    for (column, condition, what), bad in zip(CHECKS, counts, strict=True):
        if bad:
            row = con.execute(
                f"SELECT min(r) FROM (SELECT *, row_number() OVER () AS r FROM src) "
                f"WHERE {condition}"
            ).fetchall()[0][0]
            raise DataError(f"{name}: row {row}, column {column}: {what} ({bad} row(s))")


def _build(
    con: duckdb.DuckDBPyConnection, name: str, stop: pd.Timestamp, period: str, cohort_period: str
) -> tuple[int, bool]:
    """Create ``spells``, ``payments`` and ``calendar``; returns the spells left out (started
    after ``stop``) and whether any spell has a price. :class:`DataError` when no spell started
    by ``stop``."""
    as_of = DUCKDB.day(stop.date())
    months, cmonths = PERIOD_MONTHS[period], PERIOD_MONTHS[cohort_period]
    con.execute(
        SPELLS_SQL.format(
            as_of=as_of,
            cohort=ordinal_sql("start", cmonths),
            period=ordinal_sql("start", months),
            end_period=ordinal_sql('"end"', months),
        )
    )
    kept, first, priced = con.execute(
        "SELECT count(*), min(start), count(price) FROM spells"
    ).fetchall()[0]
    if not kept:
        raise DataError(f"{name}: no subscription spell starts on or before {stop.date()}")
    total = con.execute("SELECT count(*) FROM src").fetchall()[0][0]
    con.execute(
        PAYMENTS_SQL.format(
            period=ordinal_sql("pay_date", months), cperiod=ordinal_sql("pay_date", cmonths)
        )
    )
    freq = PERIOD_FREQ[period]
    index = pd.period_range(pd.Period(first, freq), pd.Period(stop, freq), freq=freq)
    last_day = index.end_time.normalize()
    frame = pd.DataFrame(
        {
            "period": index.asi8,
            "first_day": index.start_time,
            "last_day": last_day,
            "end_day": last_day.where(last_day <= stop, stop),
            "partial": last_day > stop,
        }
    )
    con.register("calendar_input", frame)
    con.execute(
        "CREATE TEMP TABLE calendar AS SELECT period, CAST(first_day AS DATE) AS first_day, "
        "CAST(last_day AS DATE) AS last_day, CAST(end_day AS DATE) AS end_day, partial "
        "FROM calendar_input"
    )
    con.unregister("calendar_input")
    return int(total - kept), bool(priced)
