"""Summaries of subscription spells in DuckDB SQL: the duration data of the contractual retention
models, the subscriber base at a date and the acquisitions per period. Each function runs one
query over the spells (:data:`cbcv.data.subscriptions.SPELL_COLUMNS`, as a DataFrame or the
Parquet file of :func:`cbcv.data.subscriptions.validate_subscriptions_to_parquet`; read by
DuckDB, out of core) and returns a small DataFrame with no customer ids: one row per distinct
summary with its ``count``.

Conventions (one billing period of ``n`` = 1, 3 or 12 months; renewal dates ``start + k
periods``, calendar months with month ends clamped as DuckDB clamps them: a spell starting on
January 31 renews on February 28 or 29, then on March 31):

* payments made ``T = #{k >= 0 : start + k periods < end}`` (``end = start + 3 months``: 3);
* at a day ``D`` (its end), a spell with ``start <= D`` is **churned by D** when ``end <= D``, else
  **active at D** with ``n = #{k >= 1 : start + k periods <= D}`` renewals made;
* durations: churned by D: ``t = T, churned = True``; active at D: ``t = n, churned = False``.
  The churners of ``t`` paid ``t`` times; those alive at ``t`` made ``t`` renewals. This is the
  individual-durations form of the shifted-beta-geometric model (Fader & Hardie 2007, "How to
  Project Customer Retention", J. Interactive Marketing 21(1)) and of the beta-discrete-Weibull
  (Fader, Hardie, Liu, Davin & Steenburgh 2018, "How to Project Customer Retention" Revisited,
  J. Interactive Marketing 43);
* the cohort of a spell is the calendar period of its ``start``, labelled as
  :mod:`cbcv.data.summary` labels cohorts: month ``2019-03``, quarter ``2019Q1``, year ``2019``.
  Each spell, reactivations (``spell >= 2``) included, is a unit in the cohort of its own start.

Spells still active at the loader's as-of date have no end, so a day ``D`` after it counts them
as active at ``D``: summarise at days up to the as-of date. The retention model's period is the
billing period, so the duration functions refuse spells
mixing billing periods (a DataError naming the periods and their spells). Counts are computed
from the month numbers of the days, never by stepping through the periods.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.core.units import PANDAS_FREQ
from cbcv.data._sql import first_line, ident, literal, relation_of, scratch_connection
from cbcv.data.subscriptions import PERIOD_MONTHS
from cbcv.data.summary import required_day

Spells = pd.DataFrame | str | os.PathLike[str]
#: Cohort period -> SQL label of a DATE ``{d}`` (the labels of :mod:`cbcv.data.summary`).
COHORT_LABEL_SQL: dict[str, str] = {
    "month": "strftime({d}, '%Y-%m')",
    "quarter": "CAST(year({d}) AS VARCHAR) || 'Q' || CAST(quarter({d}) AS VARCHAR)",
    "year": "CAST(year({d}) AS VARCHAR)",
}
RETENTION_COLUMNS: tuple[str, ...] = ("cohort", "t", "churned", "count")
HOLDOUT_DURATION_COLUMNS: tuple[str, ...] = (
    "cohort", "renewals_cal", "renewals_end", "churned_holdout", "t_holdout", "count",
)
ACTIVE_COLUMNS: tuple[str, ...] = ("cohort", "renewals", "subscribers", "revenue_per_period")
_BASE = ("customer_id", "spell", "start", "end", "billing_period")


def retention_durations(
    spells: Spells, *, end: Any, cohort_period: str = "month", by: Sequence[str] = (),
    memory_limit: str | None = None, threads: int | None = None,
) -> pd.DataFrame:
    """The duration data at the day ``end`` of the spells starting on or before it (module
    notes): ``cohort``, the ``by`` columns (e.g. ``plan``, ``channel``: extra grouping keys,
    as text), ``t`` (int64), ``churned`` (bool) and ``count`` (int64), sorted by them.

    DataError: a missing column, spells mixing billing periods, or no spell starting by
    ``end``. ConfigError: a bad ``cohort_period``, ``end`` or ``by``.
    """
    day = required_day(end, "end")
    d = _day(day)
    keys = _Keys(cohort_period, by, RETENTION_COLUMNS)

    def sql(n: int) -> str:
        return (
            f"SELECT {keys.select}, CASE WHEN churned THEN {_payments(n)} ELSE {_renewals(d, n)} "
            "END AS t, churned, count(*) AS count FROM (SELECT *, coalesce(stop <= "
            f"{d}, false) AS churned FROM sp WHERE start <= {d}) GROUP BY ALL "
            f"ORDER BY {keys.order}, t, churned"
        )

    name, out = _run(spells, sql, _BASE, memory_limit, threads, periodic=True,
                     by=keys.by)
    if out.empty:
        raise DataError(f"{name}: no spell starts on or before {day.isoformat()}")
    return _typed(out, keys.by, {"t": "int64", "churned": "bool", "count": "int64"})


def holdout_durations(
    spells: Spells, *, calibration_end: Any, holdout_end: Any, cohort_period: str = "month",
    by: Sequence[str] = (), memory_limit: str | None = None, threads: int | None = None,
) -> pd.DataFrame:
    """The holdout check of the spells active at ``calibration_end``: ``cohort``, ``by``,
    ``renewals_cal`` (renewals made by ``calibration_end``), ``renewals_end`` (``#{k >= 1 :
    start + k periods <= holdout_end}``: what the spell would have made by ``holdout_end`` had it
    stayed), ``churned_holdout`` (``end <= holdout_end``), ``t_holdout`` (the payments ``T`` when
    churned, else ``renewals_end``) and ``count``; integers int64, flags bool.

    DataError: a missing column, mixed billing periods, or no spell active at
    ``calibration_end``. ConfigError: bad days (``holdout_end`` must follow
    ``calibration_end``), ``cohort_period`` or ``by``.
    """
    cal, stop = required_day(calibration_end, "calibration_end"), required_day(holdout_end, "holdout_end")
    if stop <= cal:
        raise ConfigError(f"holdout_end {stop.isoformat()} must be after calibration_end "
                          f"{cal.isoformat()}")
    c, h = _day(cal), _day(stop)
    keys = _Keys(cohort_period, by, HOLDOUT_DURATION_COLUMNS)

    def sql(n: int) -> str:
        return (
            f"SELECT {keys.select}, {_renewals(c, n)} AS renewals_cal, {_renewals(h, n)} AS "
            f"renewals_end, churned_holdout, CASE WHEN churned_holdout THEN {_payments(n)} ELSE "
            f"{_renewals(h, n)} END AS t_holdout, count(*) AS count FROM (SELECT *, coalesce(stop "
            f"<= {h}, false) AS churned_holdout FROM sp WHERE start <= {c} AND (stop IS NULL OR "
            f"stop > {c})) GROUP BY ALL ORDER BY {keys.order}, renewals_cal, renewals_end, "
            "churned_holdout, t_holdout"
        )

    name, out = _run(spells, sql, _BASE, memory_limit, threads, periodic=True,
                     by=keys.by)
    if out.empty:
        raise DataError(f"{name}: no spell is active at calibration_end {cal.isoformat()}")
    return _typed(out, keys.by, {"renewals_cal": "int64", "renewals_end": "int64",
                                 "churned_holdout": "bool", "t_holdout": "int64", "count": "int64"})


def active_subscribers(
    spells: Spells, *, at: Any, cohort_period: str = "month", by: Sequence[str] = (),
    next_due: bool = False, memory_limit: str | None = None, threads: int | None = None,
) -> pd.DataFrame:
    """The subscribers active at the day ``at`` (``start <= at < end``, or no end): ``cohort``,
    ``by``, ``renewals`` (made by ``at``), ``subscribers`` (int64) and ``revenue_per_period``
    (their price per billing period summed; NaN when a price is unknown). With ``next_due``,
    also ``next_due``: the mean fraction of a billing period from the end of ``at`` to each
    subscriber's next renewal (days to it, less one, over the days of that period: 0 for a
    renewal due the next day), weighted by price (unweighted where a price is unknown). Empty
    (with these columns) when nobody is active. DataError: a missing column or mixed billing
    periods."""
    day = required_day(at, "at")
    a = _day(day)
    keys = _Keys(cohort_period, by, (*ACTIVE_COLUMNS, "next_due"))

    def sql(n: int) -> str:
        due = ""
        if next_due:
            ren = _renewals(a, n)
            nxt, prev = _at_step(f"{ren} + 1", n), _at_step(ren, n)
            frac = f"(datediff('day', {a}, {nxt}) - 1) / datediff('day', {prev}, {nxt})"
            due = (f", CASE WHEN count(*) FILTER (WHERE price IS NULL OR isnan(price)) = 0 "
                   f"THEN fsum(price * {frac}) / fsum(price) ELSE avg({frac}) END AS next_due")
        return (
            f"SELECT {keys.select}, {_renewals(a, n)} AS renewals, count(*) AS subscribers, "
            "CASE WHEN count(*) FILTER (WHERE price IS NULL OR isnan(price)) = 0 THEN fsum(price) "
            f"END AS revenue_per_period{due} FROM sp WHERE start <= {a} AND (stop IS NULL OR stop > "
            f"{a}) GROUP BY ALL ORDER BY {keys.order}, renewals"
        )

    _, out = _run(spells, sql, (*_BASE, "price"), memory_limit, threads, periodic=True,
                  by=keys.by)
    types = {"renewals": "int64", "subscribers": "int64", "revenue_per_period": "float64"}
    return _typed(out, keys.by, {**types, **({"next_due": "float64"} if next_due else {})})


def new_subscribers(
    spells: Spells, *, since: Any, until: Any, by: Sequence[str] = (),
    memory_limit: str | None = None, threads: int | None = None,
) -> pd.DataFrame:
    """The new customers (first spells) starting from ``since`` to ``until`` (days included), by
    the ``by`` columns: ``by``..., ``subscribers`` (int64) and ``revenue_per_period`` (their
    prices summed; NaN when a price is unknown): the mix and prices of recent acquisitions.
    Empty (with these columns) when there are none."""
    lo, hi = required_day(since, "since"), required_day(until, "until")
    if hi < lo:
        raise ConfigError(f"until {hi.isoformat()} is before since {lo.isoformat()}")
    keys = _Keys("month", by, ("subscribers", "revenue_per_period"))
    cols = ", ".join(ident(f"by_{b}") for b in keys.by)
    sql = (
        f"SELECT {cols + ', ' if cols else ''}count(*) AS subscribers, CASE WHEN count(*) FILTER "
        "(WHERE price IS NULL OR isnan(price)) = 0 THEN fsum(price) END AS revenue_per_period "
        f"FROM sp WHERE spell = 1 AND start >= {_day(lo)} AND start <= {_day(hi)} "
        f"GROUP BY ALL{' ORDER BY ' + cols if cols else ''}"
    )
    _, out = _run(spells, lambda _: sql, ("spell", "start", "price"), memory_limit, threads,
                  periodic=False, by=keys.by)
    frame = pd.DataFrame({b: out[f"by_{b}"].astype(object).where(out[f"by_{b}"].notna(), None) for b in keys.by})
    if len(out) == 1 and not keys.by and int(out["subscribers"].iloc[0]) == 0:
        out = out.iloc[:0]
        frame = frame.iloc[:0]
    frame["subscribers"] = out["subscribers"].astype("int64").to_numpy()
    frame["revenue_per_period"] = out["revenue_per_period"].astype("float64").to_numpy()
    return frame.reset_index(drop=True)


def acquisition_history(
    spells: Spells, *, period: str = "month", end: Any, start: Any = None,
    memory_limit: str | None = None, threads: int | None = None,
) -> pd.DataFrame:
    """New customers (first spells, ``spell == 1``) per calendar ``period`` of their start:
    ``period`` (pandas Period of that frequency) and ``new_customers`` (int64). Only complete
    periods up to ``end`` (a period ending after ``end`` is left out), zero-filled from the first
    period with a new customer, or from the period holding ``start`` (first spells before it
    left out). The output of :func:`cbcv.valuation.acquisition.acquisitions_from_transactions`.

    DataError: a missing column, no new customer (without ``start``) or no complete period.
    ConfigError: a bad ``period``, ``end`` or ``start``.
    """
    if period not in PANDAS_FREQ:
        raise ConfigError(f"period must be one of {', '.join(PANDAS_FREQ)}, got {period!r}")
    stop = required_day(end, "end")
    freq = PANDAS_FREQ[period]
    last = pd.Period(stop, freq=freq)
    if pd.Timestamp(stop) < last.end_time.normalize():
        last -= 1
    first = None if start is None else pd.Period(required_day(start, "start"), freq=freq)
    after = _day((last + 1).start_time.date())
    lo = "lo" if first is None else _day(first.start_time.date())
    since = "" if first is None else f"AND start >= {lo}"
    sql = (
        f"WITH f AS (SELECT CAST(date_trunc({literal(period)}, start) AS DATE) AS period, "
        f"count(*) AS n FROM sp WHERE spell = 1 AND start < {after} {since} GROUP BY 1), "
        f"g AS (SELECT CAST(unnest(generate_series({lo}, {_day(last.start_time.date())}, "
        f"INTERVAL '{PERIOD_MONTHS[period]} months')) AS DATE) AS period FROM "
        "(SELECT min(period) AS lo FROM f)) "
        "SELECT g.period, coalesce(f.n, 0) AS new_customers FROM g LEFT JOIN f USING (period) "
        "ORDER BY g.period"
    )
    name, out = _run(spells, lambda _: sql, ("spell", "start"), memory_limit, threads, periodic=False)
    if out.empty:
        raise DataError(f"{name}: no complete {period} of new customers up to {stop.isoformat()}")
    index = pd.PeriodIndex(pd.to_datetime(out["period"]), freq=freq)
    return pd.DataFrame({"period": index, "new_customers": out["new_customers"].astype("int64")})


# --------------------------------------------------------------------------- SQL pieces


def _day(value: date) -> str:
    return f"DATE {literal(value.isoformat())}"


def _months(day: str) -> str:
    """SQL: whole calendar months from ``start``'s month to ``day``'s."""
    return f"((year({day}) - year(start)) * 12 + month({day}) - month(start))"


def _at_step(k: str, n: int) -> str:
    """SQL: the renewal date ``start + k periods`` (a TIMESTAMP)."""
    return f"(start + to_months(CAST(({k}) * {n} AS INTEGER)))"


def _renewals(day: str, n: int) -> str:
    """SQL: ``#{k >= 1 : start + k periods <= day}`` for ``start <= day``. With ``m`` the months
    between and ``k = m // n``, the renewal dates before the ``k``-th fall in earlier months, the
    ``k``-th in ``day``'s month or earlier, the next one in a later month."""
    k = f"({_months(day)} // {n})"
    return f"({k} + CASE WHEN {_at_step(k, n)} <= {day} THEN 0 ELSE -1 END)"


def _payments(n: int) -> str:
    """SQL: ``T = #{k >= 0 : start + k periods < end}`` (at least 1 when ``end > start``)."""
    k = f"({_months('stop')} // {n})"
    return f"({k} + CASE WHEN {_at_step(k, n)} < stop THEN 1 ELSE 0 END)"


class _Keys:
    """The grouping keys: the cohort label and the ``by`` columns, for SELECT and ORDER BY."""

    def __init__(self, cohort_period: str, by: Sequence[str], reserved: tuple[str, ...]) -> None:
        if cohort_period not in COHORT_LABEL_SQL:
            raise ConfigError(f"cohort_period must be one of {', '.join(COHORT_LABEL_SQL)}, "
                              f"got {cohort_period!r}")
        if isinstance(by, str) or not all(isinstance(b, str) and b for b in by):
            raise ConfigError(f"by must be a list of column names, got {by!r}")
        if bad := [b for b in by if b in reserved or by.count(b) > 1]:
            raise ConfigError(f"by: {', '.join(map(repr, bad))} cannot be a grouping column")
        self.by = tuple(by)
        cohort = COHORT_LABEL_SQL[cohort_period].format(d="start")
        self.select = ", ".join([f"{cohort} AS cohort", *(ident(f"by_{b}") for b in by)])
        self.order = ", ".join(["cohort", *(f"{ident(f'by_{b}')} NULLS FIRST" for b in by)])





def register_spells(con: duckdb.DuckDBPyConnection, spells: Spells,
                    required: Sequence[str] = _BASE, by: Sequence[str] = ()) -> str:
    """Expose ``spells`` (a DataFrame or a Parquet path) on ``con`` as the view ``sp`` of the
    ``required`` columns of ``customer_id`` VARCHAR, ``spell`` BIGINT, ``start`` and ``stop``
    (the end) DATE, ``price`` DOUBLE, ``billing_period`` VARCHAR, and each ``by`` column as
    ``by_<name>`` VARCHAR. DataError naming the missing columns. Returns the source's name."""
    if not isinstance(spells, pd.DataFrame | str | os.PathLike):
        raise DataError(f"spells must be a DataFrame or a Parquet path, got {type(spells).__name__}")
    source = spells.rename(columns=str) if isinstance(spells, pd.DataFrame) else spells
    relation, name, found = relation_of(con, source, "sp_input", "spells DataFrame")
    if missing := [c for c in (*required, *by) if c not in found]:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}; columns found: "
                        f"{', '.join(found)}")
    types = {"customer_id": "VARCHAR", "spell": "BIGINT", "start": "DATE", "end": "DATE",
             "price": "DOUBLE", "billing_period": "VARCHAR"}
    fields = [f"CAST({ident(c)} AS {t}) AS {'stop' if c == 'end' else c}"
              for c, t in types.items() if c in required]
    fields += [f"CAST({ident(c)} AS VARCHAR) AS {ident('by_' + c)}" for c in by]
    con.execute(f"CREATE VIEW sp AS SELECT {', '.join(fields)} FROM {relation}")
    return name


def _run(spells: Spells, sql: Any, required: Sequence[str], memory_limit: str | None,
         threads: int | None, *, periodic: bool, by: Sequence[str] = ()) -> tuple[str, pd.DataFrame]:
    """Register ``spells``, check them and run ``sql(months per billing period)``."""
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        name = register_spells(con, spells, required, by)
        try:
            bad = "start IS NULL" + (" OR stop <= start OR billing_period IS NULL" if periodic else "")
            (n_bad,) = con.execute(f"SELECT count(*) FROM sp WHERE {bad}").fetchone()
            if n_bad:
                raise DataError(f"{name}: {n_bad} spell(s) with a missing start or billing period "
                                "or an end on or before the start; load the spells with "
                                "cbcv.data.subscriptions.load_subscriptions first")
            months = 1
            if periodic:
                found = con.execute("SELECT billing_period, count(*) FROM sp GROUP BY 1 "
                                    "ORDER BY 2 DESC, 1").fetchall()
                months = _one_period(name, found)
            return name, con.execute(sql(months)).df()
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot summarise the spells ({first_line(exc)})") from exc


def _one_period(name: str, found: list[tuple[str, int]]) -> int:
    """Months per billing period of spells having one; DataError naming the mix otherwise."""
    if not found:
        raise DataError(f"{name}: no spells")
    shown = ", ".join(f"{p}: {n}" for p, n in found)
    if len(found) > 1:
        raise DataError(f"{name}: the spells mix billing periods ({shown}); the retention model "
                        "needs one billing period: summarise each billing period's spells apart")
    if found[0][0] not in PERIOD_MONTHS:
        raise DataError(f"{name}: billing period {found[0][0]!r} is not one of "
                        f"{', '.join(PERIOD_MONTHS)}")
    return PERIOD_MONTHS[found[0][0]]


def _typed(out: pd.DataFrame, by: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    """The result with ``cohort`` and ``by`` as text (None for missing) and ``dtypes``."""
    frame = pd.DataFrame({"cohort": out["cohort"].astype(str)})
    for b in by:
        values = out[f"by_{b}"].astype(object)
        frame[b] = values.where(values.notna(), None)
    for column, dtype in dtypes.items():
        frame[column] = out[column].astype(dtype)
    return frame.reset_index(drop=True)
