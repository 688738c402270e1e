"""Per-customer summaries (recency, frequency, age, spend) computed in SQL: DuckDB by default,
the same query on Spark (:mod:`cbcv.data.spark`) when one machine is not enough.

The summaries are the sufficient statistics of the non-contractual models: for each customer
acquired on or before the calibration end, ``x`` repeat transactions, the time ``t_x`` of the last
one and the age ``T`` at the calibration end, all measured from the first purchase (Fader, Hardie
& Lee 2005, "Counting Your Customers the Easy Way", Marketing Science 24(2), section 2), plus the
spend used by the gamma-gamma model (Fader, Hardie & Lee 2005, "RFM and CLV", J. Marketing
Research 42(4): the mean spend of the repeat transactions).

Rules, all applied to customer-days (:func:`cbcv.data.transactions.daily_sql`: same-day rows are
one transaction with their net spend; a day netting to zero or less is not a transaction):

* The calibration period ends at the end of ``calibration_end``: a purchase on that day counts.
* A customer's first purchase is the first customer-day; ``x`` = customer-days in the
  calibration period − 1; ``t_x`` = (last − first purchase day) / unit; ``T`` = (calibration_end −
  first purchase day) / unit. A customer first buying on the calibration-end day has
  ``x = t_x = T = 0``.
* Time units: ``day`` = 1 day, ``week`` = 7 days, ``month`` = 365.25 / 12 = 30.4375 days (the mean
  Gregorian month). Times are exact fractions (CDNOW in days / 7, as the papers use).
* The holdout period is (calibration_end, holdout_end]; ``x_holdout`` counts its customer-days,
  ``spend_holdout`` their net spend, ``T_holdout`` = (holdout_end − calibration_end) / unit.
* Cohorts are labelled by the period of the first purchase: month ``1997-01``, quarter
  ``1997Q1``, year ``1997``.

The query is built once by :func:`summary_sql` for a SQL dialect (:class:`cbcv.data._sql.Dialect`):
``duckdb`` (the default, run here) or ``spark`` (run by :mod:`cbcv.data.spark`). The dialects
differ only in a few spellings: ``datediff``, the ``YYYY-MM`` label, DuckDB's error-compensated
``fsum`` against Spark's ``sum`` (so Spark's sums may differ in the last bits), identifier
quotes, DOUBLE literals, and the type of the first/last purchase column (DuckDB TIMESTAMP, Spark
DATE). The customer-day step is :data:`cbcv.data.transactions.DAILY_SQL`, valid in both.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.core.units import PANDAS_FREQ, periods_per_year, unit_days
from cbcv.data._sql import Dialect, dialect, first_line, literal, parse_day, scratch_connection
from cbcv.data.transactions import TRANSACTION_COLUMNS, daily_sql

#: Length of one time unit in days.
#: Cohort period -> SQL label of a DATE expression ``{d}`` (``{text}``: the dialect's text type;
#: ``month`` is the dialect's own :attr:`~cbcv.data._sql.Dialect.month_label`).
_COHORT_SQL: dict[str, str] = {
    "month": "{month}",
    "quarter": "CAST(year({d}) AS {text}) || 'Q' || CAST(quarter({d}) AS {text})",
    "year": "CAST(year({d}) AS {text})",
}

SUMMARY_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "cohort",
    "first_purchase",
    "last_purchase",
    "x",
    "t_x",
    "T",
    "n_transactions",
    "total_spend",
    "first_spend",
    "mean_repeat_spend",
    "mean_spend",
)
HOLDOUT_COLUMNS: tuple[str, ...] = ("x_holdout", "spend_holdout", "T_holdout")

Transactions = pd.DataFrame | str | os.PathLike[str]


def customer_summary(
    transactions: Transactions,
    *,
    calibration_end: Any,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """One row per customer whose first purchase is on or before ``calibration_end``.

    Parameters
    ----------
    transactions
        Validated transactions (``customer_id``, ``date``, ``amount``; extra columns ignored) as
        a DataFrame, or the path of a Parquet file holding them (read by DuckDB, not loaded).
    calibration_end
        Last day of the calibration period (inclusive).
    time_unit
        ``day``, ``week`` or ``month`` (see the module notes).
    cohort_period
        ``month``, ``quarter`` or ``year``: the label of the first purchase's period.
    observation_start
        When given, only customers whose first purchase is on or after this day are summarised
        (e.g. to leave out customers whose earlier history the log does not cover).
    memory_limit, threads
        Caps on DuckDB's memory (e.g. ``"8GB"``; beyond it DuckDB spills to disk) and threads;
        ``None`` keeps DuckDB's defaults. See :func:`cbcv.data._sql.scratch_connection`.
    zero_amount_purchases
        Count days of zero-priced purchases as purchases (the CDNOW papers' convention; see
        :mod:`cbcv.data.transactions`); by default a purchase has a positive net amount.

    Returns
    -------
    DataFrame with :data:`SUMMARY_COLUMNS`, sorted by ``customer_id``: ``x``,
    ``n_transactions`` int64; ``t_x``, ``T`` float64 in ``time_unit``; ``first_purchase``,
    ``last_purchase`` datetime64[ns]; ``total_spend`` (net, calibration period),
    ``first_spend``, ``mean_repeat_spend`` (NaN when ``x == 0``) and ``mean_spend`` (over all
    calibration transactions) float64.
    """
    end, _, start = summary_period(calibration_end, None, observation_start)
    sql = summary_sql(
        end, None, time_unit, cohort_period, start, zero_amount_purchases=zero_amount_purchases
    )
    return _run(transactions, sql, end, holdout=False, memory_limit=memory_limit, threads=threads)


def calibration_holdout(
    transactions: Transactions,
    *,
    calibration_end: Any,
    holdout_end: Any,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """:func:`customer_summary` plus ``x_holdout``, ``spend_holdout`` and ``T_holdout``.

    The holdout period is (``calibration_end``, ``holdout_end``]. ``x_holdout`` (int64) counts
    each customer's customer-days in it, ``spend_holdout`` their net spend (0 when none) and
    ``T_holdout`` = (holdout_end − calibration_end) / unit is the same for every customer.
    Customers first buying after ``calibration_end`` are not included.
    """
    end, stop, start = summary_period(
        calibration_end, required_day(holdout_end, "holdout_end"), observation_start
    )
    sql = summary_sql(
        end, stop, time_unit, cohort_period, start, zero_amount_purchases=zero_amount_purchases
    )
    return _run(transactions, sql, end, holdout=True, memory_limit=memory_limit, threads=threads)


def required_day(value: Any, what: str) -> date:
    day = parse_day(value, what)
    if day is None:
        raise ConfigError(f"{what} is required (a date, YYYY-MM-DD)")
    return day


def summary_period(
    calibration_end: Any, holdout_end: Any = None, observation_start: Any = None
) -> tuple[date, date | None, date | None]:
    """The summary's days, parsed and checked once for every engine: (calibration end, holdout
    end or None, observation start or None); ConfigError when a day is unparseable, missing or
    the holdout does not end after the calibration."""
    end = required_day(calibration_end, "calibration_end")
    stop = parse_day(holdout_end, "holdout_end")
    if stop is not None and stop <= end:
        raise ConfigError(
            f"holdout_end {stop.isoformat()} must be after calibration_end {end.isoformat()}"
        )
    return end, stop, parse_day(observation_start, "observation_start")


def summary_sql(
    end: date,
    stop: date | None,
    time_unit: str,
    cohort_period: str,
    start: date | None,
    *,
    dialect: str | Dialect = "duckdb",
    source: str = "tx",
    zero_amount_purchases: bool = False,
) -> str:
    """The summary query over the relation ``source`` (``customer_id``, ``date`` DATE, ``amount``
    DOUBLE), for ``dialect`` ``duckdb`` or ``spark``.

    Columns: ``customer_id, cohort, first_purchase_ts, last_purchase_ts, x, t_x, T,
    n_transactions, total_spend, first_spend, mean_repeat_spend, mean_spend`` and, when ``stop``
    (the holdout end) is given, ``x_holdout, spend_holdout, T_holdout``; sorted by customer id.
    ``first_purchase_ts`` / ``last_purchase_ts`` are TIMESTAMPs in DuckDB and DATEs in Spark.
    """
    sq = _dialect(dialect)
    days = sq.double(unit_days(time_unit))
    if cohort_period not in _COHORT_SQL:
        raise ConfigError(f"cohort_period {cohort_period!r} is not one of {', '.join(_COHORT_SQL)}")
    cohort = (
        _COHORT_SQL[cohort_period]
        .format(month=sq.month_label, d="{d}", text=sq.text_type)
        .format(d="first_purchase")
    )
    end_sql = sq.day(end)
    start_filter = f"WHERE first_purchase >= {sq.day(start)}" if start is not None else ""
    daily = daily_sql(source, zero_amount_purchases)
    calibration = f"""
        WITH days AS ({daily}),
        cal AS (
            SELECT customer_id, date, amount,
                   row_number() OVER (PARTITION BY customer_id ORDER BY date) AS k
            FROM days WHERE date <= {end_sql}
        ),
        per_customer AS (
            SELECT customer_id,
                   min(date) AS first_purchase,
                   max(date) AS last_purchase,
                   count(*) AS n_transactions,
                   {sq.exact_sum}(amount) AS total_spend,
                   max(amount) FILTER (WHERE k = 1) AS first_spend,
                   avg(amount) FILTER (WHERE k > 1) AS mean_repeat_spend,
                   avg(amount) AS mean_spend
            FROM cal GROUP BY customer_id
        ),
        summary AS (
            SELECT customer_id,
                   {cohort} AS cohort,
                   {sq.day_to_timestamp("first_purchase")} AS first_purchase_ts,
                   {sq.day_to_timestamp("last_purchase")} AS last_purchase_ts,
                   n_transactions - 1 AS x,
                   {sq.days_between("first_purchase", "last_purchase")} / {days} AS t_x,
                   {sq.days_between("first_purchase", end_sql)} / {days} AS {sq.ident("T")},
                   n_transactions, total_spend, first_spend, mean_repeat_spend, mean_spend
            FROM per_customer {start_filter}
        )"""
    if stop is None:
        return f"{calibration} SELECT * FROM summary ORDER BY customer_id"
    stop_sql = sq.day(stop)
    horizon = (stop - end).days / unit_days(time_unit)
    return f"""{calibration},
        holdout AS (
            SELECT customer_id, count(*) AS x_holdout, {sq.exact_sum}(amount) AS spend_holdout
            FROM days WHERE date > {end_sql} AND date <= {stop_sql}
            GROUP BY customer_id
        )
        SELECT s.*, coalesce(h.x_holdout, 0) AS x_holdout,
               coalesce(h.spend_holdout, {sq.double(0.0)}) AS spend_holdout,
               {sq.double(horizon)} AS {sq.ident("T_holdout")}
        FROM summary s LEFT JOIN holdout h USING (customer_id)
        ORDER BY customer_id"""


_dialect = dialect


def _query(transactions: Transactions, sql: str, what: str, memory_limit: str | None) -> tuple[str, pd.DataFrame]:
    """Run ``sql`` over the view ``tx`` of ``transactions`` (:func:`register_transactions`) on a
    scratch connection: the source's name and the result; a DataError saying what failed."""
    with scratch_connection(memory_limit=memory_limit) as con:
        name = register_transactions(con, transactions)
        try:
            return name, con.execute(sql).df()
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot {what} ({first_line(exc)})") from exc


def register_transactions(con: duckdb.DuckDBPyConnection, transactions: Transactions) -> str:
    """Expose validated ``transactions`` (a DataFrame or a Parquet path) on ``con`` as the view
    ``tx`` (``customer_id`` VARCHAR, ``date`` DATE, ``amount`` DOUBLE), which every summary query
    reads; DataError on a missing column or value. Returns the source's display name."""
    if isinstance(transactions, pd.DataFrame):
        name = "transactions DataFrame"
        found = [str(c) for c in transactions.columns]
        check_columns(found, name)
        con.register("tx_input", transactions[list(TRANSACTION_COLUMNS)])
        relation = "tx_input"
    elif isinstance(transactions, str | os.PathLike):
        path = Path(transactions).expanduser()
        name = path.name
        if not path.is_file():
            raise DataError(f"{name}: file not found ({path})")
        relation = f"read_parquet({literal(str(path))})"
        try:
            found = [
                str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
            ]
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot read as Parquet ({first_line(exc)})") from exc
        check_columns(found, name)
    else:
        raise DataError(
            f"transactions must be a DataFrame or a Parquet path, got {type(transactions).__name__}"
        )
    con.execute(
        "CREATE VIEW tx AS SELECT CAST(customer_id AS VARCHAR) AS customer_id, "
        f"CAST(date AS DATE) AS date, CAST(amount AS DOUBLE) AS amount FROM {relation}"
    )
    missing = con.execute(
        "SELECT count(*) FROM tx WHERE customer_id IS NULL OR date IS NULL OR amount IS NULL"
    ).fetchall()[0][0]
    if missing:
        raise DataError(
            f"{name}: {missing} row(s) with a missing customer_id, date or amount; load the "
            "data with cbcv.data.load.load_transactions first"
        )
    return name


def check_columns(found: list[str], name: str) -> None:
    missing = [c for c in TRANSACTION_COLUMNS if c not in found]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)}; columns found: {', '.join(found)}"
        )


def _run(
    transactions: Transactions,
    sql: str,
    end: date,
    *,
    holdout: bool,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        name = register_transactions(con, transactions)
        try:
            out = con.execute(sql).df()
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot summarise ({first_line(exc)})") from exc
    out = out.rename(
        columns={"first_purchase_ts": "first_purchase", "last_purchase_ts": "last_purchase"}
    )
    return summary_frame(out, name, end, holdout=holdout)


def summary_frame(out: pd.DataFrame, name: str, end: date | None, *, holdout: bool) -> pd.DataFrame:
    """The summary query's result (``first_purchase``/``last_purchase`` as dates or timestamps)
    as the documented frame: :data:`SUMMARY_COLUMNS` (+ :data:`HOLDOUT_COLUMNS`) with their
    dtypes, sorted by ``customer_id``. DataError naming ``name`` when it has no row."""
    if out.empty:
        when = f" {end.isoformat()}" if end is not None else ""
        raise DataError(f"{name}: no customer made a purchase on or before calibration_end{when}")
    out = out.sort_values("customer_id", kind="stable").reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "customer_id": out["customer_id"].astype(str),
            "cohort": out["cohort"].astype(str),
            "first_purchase": pd.to_datetime(out["first_purchase"]).astype("datetime64[ns]"),
            "last_purchase": pd.to_datetime(out["last_purchase"]).astype("datetime64[ns]"),
            "x": out["x"].astype("int64"),
            "t_x": out["t_x"].astype("float64"),
            "T": out["T"].astype("float64"),
            "n_transactions": out["n_transactions"].astype("int64"),
            "total_spend": out["total_spend"].astype("float64"),
            "first_spend": out["first_spend"].astype("float64"),
            "mean_repeat_spend": out["mean_repeat_spend"].astype("float64"),
            "mean_spend": out["mean_spend"].astype("float64"),
        }
    )
    if holdout:
        frame["x_holdout"] = out["x_holdout"].astype("int64")
        frame["spend_holdout"] = out["spend_holdout"].astype("float64")
        frame["T_holdout"] = out["T_holdout"].astype("float64")
    return frame.reset_index(drop=True)


def purchase_days(
    transactions: Transactions,
    *,
    calibration_end: Any,
    memory_limit: str | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Purchase occasions by date of the customers acquired on or before ``calibration_end``
    (a DataFrame or a validated Parquet log; counted in DuckDB, out of core): ``date``,
    ``new_customers`` (first purchases that day) and ``repeat_days`` (their later customer-days),
    one row per date with either, sorted by date. The daily series behind the tracking plot."""
    end = required_day(calibration_end, "calibration_end")
    name, out = _query(
        transactions,
        f"WITH d AS ({daily_sql('tx', zero_amount_purchases)}), "
        "f AS (SELECT customer_id, min(date) AS first FROM d GROUP BY customer_id) "
        "SELECT d.date, sum(CAST(d.date = f.first AS BIGINT)) AS new_customers, "
        "sum(CAST(d.date > f.first AS BIGINT)) AS repeat_days "
        f"FROM d JOIN f USING (customer_id) WHERE f.first <= DATE {literal(end.isoformat())} "
        "GROUP BY d.date ORDER BY d.date",
        "count purchase days", memory_limit,
    )
    if out.empty:
        raise DataError(f"{name}: no customer made a purchase on or before calibration_end {end.isoformat()}")
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out[["new_customers", "repeat_days"]] = out[["new_customers", "repeat_days"]].astype("int64")
    return out


def period_activity(
    transactions: Transactions,
    *,
    period: str,
    end: Any,
    births: str | None = None,
    memory_limit: str | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """The company's activity per calendar ``period`` up to ``end`` (a DataFrame or a validated
    Parquet log, counted in DuckDB, out of core): ``period`` (its first day), ``new_customers``
    (customers whose first purchase falls in it, among those passing the SQL filter ``births``
    on ``customer_id``: the customers whose acquisition the data show), ``active_customers``
    (customers with a purchase in it), ``transactions`` (purchase occasions: customer-days) and
    ``revenue`` (their net amount). Every period from the first purchase to ``end``'s period is
    a row, zeros included. The actual series of the backtests (:mod:`cbcv.valuation.backtest`)."""
    if period not in PANDAS_FREQ:
        raise ConfigError(f"period must be one of {', '.join(PANDAS_FREQ)}, got {period!r}")
    last = required_day(end, "end")
    part = literal(period)  # DuckDB's date_trunc part of the same name
    step = f"{12 // round(periods_per_year(period))} months"
    born = f"WHERE {births}" if births else ""
    name, out = _query(
        transactions,
        f"WITH d AS ({daily_sql('tx', zero_amount_purchases)}), "
        f"k AS (SELECT * FROM d WHERE date <= DATE {literal(last.isoformat())}), "
        "f AS (SELECT customer_id, min(date) AS first FROM k GROUP BY customer_id), "
        f"n AS (SELECT date_trunc({part}, first) AS period, count(*) AS new_customers FROM f {born} "
        "GROUP BY 1), "
        f"a AS (SELECT date_trunc({part}, date) AS period, count(DISTINCT customer_id) AS active_customers, "
        "count(*) AS transactions, fsum(amount) AS revenue FROM k GROUP BY 1), "
        f"g AS (SELECT unnest(generate_series(min(period), date_trunc({part}, DATE "
        f"{literal(last.isoformat())}), INTERVAL '{step}')) AS period FROM a) "
        "SELECT CAST(g.period AS DATE) AS period, coalesce(n.new_customers, 0) AS new_customers, "
        "coalesce(a.active_customers, 0) AS active_customers, coalesce(a.transactions, 0) AS "
        "transactions, coalesce(a.revenue, 0) AS revenue FROM g LEFT JOIN n USING (period) "
        "LEFT JOIN a USING (period) ORDER BY g.period",
        f"count activity by {period}", memory_limit,
    )
    if out.empty or out["period"].isna().all():
        raise DataError(f"{name}: no purchase on or before {last.isoformat()}")
    out["period"] = pd.PeriodIndex(pd.to_datetime(out["period"]), freq=PANDAS_FREQ[period])
    out[["new_customers", "active_customers", "transactions"]] = out[
        ["new_customers", "active_customers", "transactions"]].astype("int64")
    out["revenue"] = out["revenue"].astype("float64")
    return out


#: SQL of a period's index since year 0 (consecutive periods differ by 1) for a DATE ``d``.
_PERIOD_INDEX = {"month": "year({d}) * 12 + month({d})", "quarter": "year({d}) * 4 + quarter({d})",
                 "year": "year({d})"}


def period_summary(
    transactions: Transactions,
    *,
    period: str,
    calibration_end: Any,
    holdout_end: Any = None,
    births: str | None = None,
    memory_limit: str | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """The discrete-time summary of the customers acquired by ``calibration_end``, counted (the
    input of :class:`cbcv.models.bgbb.BetaGeoBetaBinomModel`; Fader, Hardie & Shang 2010): each
    ``period`` after a customer's first is a purchase opportunity; ``x`` the periods with a
    purchase among the ``n`` from the first to the calibration end's, ``t_x`` the last of them
    (0 when ``x = 0``); with ``holdout_end``, ``x_holdout`` (active periods after the calibration
    end's, to the holdout end's) and ``n_holdout`` (how many periods that is). One row per
    distinct summary with its ``count``; ``births`` filters the customers (SQL on ``customer_id``)."""
    if period not in _PERIOD_INDEX:
        raise ConfigError(f"period must be one of {', '.join(_PERIOD_INDEX)}, got {period!r}")
    end = required_day(calibration_end, "calibration_end")
    last = required_day(holdout_end, "holdout_end") if holdout_end is not None else end
    index = _PERIOD_INDEX[period]
    cal = index.format(d=f"DATE {literal(end.isoformat())}")
    born = f"AND {births}" if births else ""
    name, out = _query(
        transactions,
        f"WITH d AS (SELECT customer_id, {index.format(d='date')} AS k FROM "
        f"({daily_sql('tx', zero_amount_purchases)}) WHERE date <= DATE {literal(last.isoformat())} "
        "GROUP BY 1, 2), f AS (SELECT customer_id, min(k) AS f FROM d GROUP BY 1), "
        f"s AS (SELECT count(*) FILTER (WHERE k > f AND k <= {cal}) AS x, "
        f"coalesce(max(k) FILTER (WHERE k > f AND k <= {cal}) - f, 0) AS t_x, {cal} - f AS n, "
        f"count(*) FILTER (WHERE k > {cal}) AS x_holdout FROM d JOIN f USING (customer_id) "
        f"WHERE f <= {cal} {born} GROUP BY customer_id, f) "
        "SELECT x, t_x, n, x_holdout, count(*) AS count FROM s GROUP BY ALL ORDER BY n, x, t_x, x_holdout",
        f"summarise by {period}", memory_limit,
    )
    if out.empty:
        raise DataError(f"{name}: no customer acquired on or before {end.isoformat()}")
    out = out.astype("int64")
    if holdout_end is None:
        return out.drop(columns="x_holdout")
    per_year = round(periods_per_year(period))
    out["n_holdout"] = _period_number(last, per_year) - _period_number(end, per_year)
    return out


def _period_number(day: date, per_year: int) -> int:
    """The index of ``day``'s period as :data:`_PERIOD_INDEX` counts it."""
    return day.year * per_year + (day.month - 1) // (12 // per_year) + 1 if per_year > 1 else day.year
