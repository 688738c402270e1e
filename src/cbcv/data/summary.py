"""Per-customer summaries (recency, frequency, age, spend) computed in DuckDB SQL.

The summaries are the sufficient statistics of the non-contractual models: for each customer
acquired on or before the calibration end, ``x`` repeat transactions, the time ``t_x`` of the last
one and the age ``T`` at the calibration end, all measured from the first purchase (Fader, Hardie
& Lee 2005, "Counting Your Customers the Easy Way", Marketing Science 24(2), section 2), plus the
spend used by the gamma-gamma model (Fader, Hardie & Lee 2005, "RFM and CLV", J. Marketing
Research 42(4): the mean spend of the repeat transactions).

Rules, all applied to customer-days (:func:`cbcv.data.transactions.daily_sql`: same-day rows are
one transaction with their net spend; return-only days are not transactions):

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
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from cbcv.data._sql import first_line, literal, parse_day, scratch_connection
from cbcv.data.transactions import TRANSACTION_COLUMNS, daily_sql
from cbcv.errors import ConfigError, DataError

#: Length of one time unit in days.
TIME_UNIT_DAYS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}

#: Cohort period -> SQL label of a DATE expression ``{d}``.
_COHORT_SQL: dict[str, str] = {
    "month": "strftime({d}, '%Y-%m')",
    "quarter": "CAST(year({d}) AS VARCHAR) || 'Q' || CAST(quarter({d}) AS VARCHAR)",
    "year": "CAST(year({d}) AS VARCHAR)",
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


def unit_days(time_unit: str) -> float:
    """Days in one ``time_unit`` (``day``, ``week``, ``month``); ConfigError for others."""
    try:
        return TIME_UNIT_DAYS[time_unit]
    except (KeyError, TypeError):
        raise ConfigError(
            f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNIT_DAYS)}"
        ) from None


def customer_summary(
    transactions: Transactions,
    *,
    calibration_end: Any,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
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

    Returns
    -------
    DataFrame with :data:`SUMMARY_COLUMNS`, sorted by ``customer_id``: ``x``,
    ``n_transactions`` int64; ``t_x``, ``T`` float64 in ``time_unit``; ``first_purchase``,
    ``last_purchase`` datetime64[ns]; ``total_spend`` (net, calibration period),
    ``first_spend``, ``mean_repeat_spend`` (NaN when ``x == 0``) and ``mean_spend`` (over all
    calibration transactions) float64.
    """
    end = _required_day(calibration_end, "calibration_end")
    start = parse_day(observation_start, "observation_start")
    sql = _summary_sql(end, None, time_unit, cohort_period, start)
    return _run(transactions, sql, end, holdout=False)


def calibration_holdout(
    transactions: Transactions,
    *,
    calibration_end: Any,
    holdout_end: Any,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
) -> pd.DataFrame:
    """:func:`customer_summary` plus ``x_holdout``, ``spend_holdout`` and ``T_holdout``.

    The holdout period is (``calibration_end``, ``holdout_end``]. ``x_holdout`` (int64) counts
    each customer's customer-days in it, ``spend_holdout`` their net spend (0 when none) and
    ``T_holdout`` = (holdout_end − calibration_end) / unit is the same for every customer.
    Customers first buying after ``calibration_end`` are not included.
    """
    end = _required_day(calibration_end, "calibration_end")
    stop = _required_day(holdout_end, "holdout_end")
    if stop <= end:
        raise ConfigError(
            f"holdout_end {stop.isoformat()} must be after calibration_end {end.isoformat()}"
        )
    start = parse_day(observation_start, "observation_start")
    sql = _summary_sql(end, stop, time_unit, cohort_period, start)
    return _run(transactions, sql, end, holdout=True)


def _required_day(value: Any, what: str) -> date:
    day = parse_day(value, what)
    if day is None:
        raise ConfigError(f"{what} is required (a date, YYYY-MM-DD)")
    return day


def _summary_sql(
    end: date,
    stop: date | None,
    time_unit: str,
    cohort_period: str,
    start: date | None,
) -> str:
    days = unit_days(time_unit)
    if cohort_period not in _COHORT_SQL:
        raise ConfigError(f"cohort_period {cohort_period!r} is not one of {', '.join(_COHORT_SQL)}")
    cohort = _COHORT_SQL[cohort_period].format(d="first_purchase")
    end_sql = f"DATE {literal(end.isoformat())}"
    start_filter = (
        f"WHERE first_purchase >= DATE {literal(start.isoformat())}" if start is not None else ""
    )
    daily = daily_sql("tx")
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
                   fsum(amount) AS total_spend,
                   max(amount) FILTER (WHERE k = 1) AS first_spend,
                   avg(amount) FILTER (WHERE k > 1) AS mean_repeat_spend,
                   avg(amount) AS mean_spend
            FROM cal GROUP BY customer_id
        ),
        summary AS (
            SELECT customer_id,
                   {cohort} AS cohort,
                   CAST(first_purchase AS TIMESTAMP) AS first_purchase_ts,
                   CAST(last_purchase AS TIMESTAMP) AS last_purchase_ts,
                   n_transactions - 1 AS x,
                   datediff('day', first_purchase, last_purchase) / {days!r} AS t_x,
                   datediff('day', first_purchase, {end_sql}) / {days!r} AS "T",
                   n_transactions, total_spend, first_spend, mean_repeat_spend, mean_spend
            FROM per_customer {start_filter}
        )"""
    if stop is None:
        return f"{calibration} SELECT * FROM summary ORDER BY customer_id"
    stop_sql = f"DATE {literal(stop.isoformat())}"
    horizon = (stop - end).days / days
    return f"""{calibration},
        holdout AS (
            SELECT customer_id, count(*) AS x_holdout, fsum(amount) AS spend_holdout
            FROM days WHERE date > {end_sql} AND date <= {stop_sql}
            GROUP BY customer_id
        )
        SELECT s.*, coalesce(h.x_holdout, 0) AS x_holdout,
               coalesce(h.spend_holdout, 0.0) AS spend_holdout,
               {horizon!r} AS "T_holdout"
        FROM summary s LEFT JOIN holdout h USING (customer_id)
        ORDER BY customer_id"""


def _register(con: duckdb.DuckDBPyConnection, transactions: Transactions) -> str:
    """Expose the transactions as a view ``tx`` with normalised types; returns a display name."""
    if isinstance(transactions, pd.DataFrame):
        name = "transactions DataFrame"
        found = [str(c) for c in transactions.columns]
        _check_columns(found, name)
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
        _check_columns(found, name)
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


def _check_columns(found: list[str], name: str) -> None:
    missing = [c for c in TRANSACTION_COLUMNS if c not in found]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(missing)}; columns found: {', '.join(found)}"
        )


def _run(transactions: Transactions, sql: str, end: date, *, holdout: bool) -> pd.DataFrame:
    with scratch_connection() as con:
        name = _register(con, transactions)
        try:
            out = con.execute(sql).df()
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot summarise ({first_line(exc)})") from exc
    if out.empty:
        raise DataError(
            f"{name}: no customer made a purchase on or before calibration_end {end.isoformat()}"
        )
    frame = pd.DataFrame(
        {
            "customer_id": out["customer_id"].astype(str),
            "cohort": out["cohort"].astype(str),
            "first_purchase": pd.to_datetime(out["first_purchase_ts"]).astype("datetime64[ns]"),
            "last_purchase": pd.to_datetime(out["last_purchase_ts"]).astype("datetime64[ns]"),
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
