"""The customer-base audit, in SQL: DuckDB over a registered DataFrame or Arrow table, or a
Parquet transaction log of any size.

:func:`customer_base_audit` returns the :class:`~cbcv.audit.suite.CustomerBaseAudit` of a log
(``customer_id``, ``date``, ``amount``; other columns are ignored), such as the accepted-rows
file of :func:`cbcv.data.load.validate_to_parquet`, which the pipeline audits for every company.

How it is computed
    Everything per row or per customer stays in DuckDB, which spills to a private temporary
    folder beyond ``memory_limit`` (:func:`cbcv.data._sql.scratch_connection`):

    1. customer-days by :data:`cbcv.data.transactions.DAILY_SQL` (the rule of ``to_daily``:
       same-day rows netted, days with only returns dropped), joined to a *calendar* table that
       gives each day of the log's span the ordinal of its pandas period at ``period`` and at
       ``cohort_period``. The calendar is built by pandas (one row per day spanned, not per
       customer), so every pandas period alias (``W`` weeks ending Sunday, fiscal ``Q-JUN``,
       ``Y-JUN``, ``W-WED`` ...) gets exactly pandas' periods;
    2. one window pass numbers each customer's days (``k``), measures the gap to the previous
       day, takes the cohort (period of the first day) and flags a customer's first day in each
       period, into the scratch table ``seq``;
    3. the cohort table, the C3, the repeat-buying table and the inter-purchase counts are
       group-bys of ``seq``; the buyers of a window are ranked with ``row_number()`` in the
       order of :func:`cbcv.audit.deciles.customer_deciles` (spend compared to
       :data:`~cbcv.audit.deciles.SPEND_RESOLUTION` descending, purchase days descending,
       ``customer_id`` ascending) and cut into deciles by ``floor(10 r / n) + 1`` (not
       ``ntile``, which sizes groups differently); the decile table, the migration cross-tab,
       the Gini coefficient and the whale curve's cumulative revenue are SQL over that ranking.
       Sums are DuckDB's error-compensated ``fsum``; a customer's spend can differ from pandas'
       in the last bit (the order of summation differs), which the ranking key absorbs.

What comes back to pandas
    Only aggregates: cohorts, cohorts × periods, ten deciles, 10 × 11 migration cells, one row
    per distinct inter-purchase time in days (for the histogram and the exact quantiles) and
    the calendar (days spanned). The one exception is the whale curve, which
    :class:`CustomerBaseAudit` defines with a point per buyer of the window: by default it
    comes back whole, as :func:`cbcv.audit.concentration.whale_curve_from_spend` makes it
    (``n + 1`` rows, no customer ids: DuckDB returns k and the cumulative revenue, 16 bytes per
    buyer, and the table holds k and two shares, 24 bytes per buyer);
    ``whale_points`` keeps only that many points of it, chosen evenly in ``k``. The top-1/10/20%
    shares are read off the curve's exact points around each fraction either way.

A detail that follows the pandas audit on purpose
    * Quantiles of inter-purchase times are numpy's default (``linear``) interpolation,
      computed from the count of each whole-day time with numpy's own arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from cbcv.audit._common import DateLike, Window, as_day, resolve_freq, resolve_window, window_label
from cbcv.audit.cohorts import C3_COLUMNS, COHORT_TABLE_COLUMNS
from cbcv.audit.concentration import TOP_SHARES, Concentration, top_share
from cbcv.audit.deciles import (
    INACTIVE,
    N_DECILES,
    SPEND_RESOLUTION,
    DecileMigration,
    decile_shares,
)
from cbcv.audit.interpurchase import SUMMARY_QUANTILES
from cbcv.audit.repeat import REPEAT_COLUMNS
from cbcv.audit.suite import CustomerBaseAudit
from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import DUCKDB, first_line, literal, scratch_connection
from cbcv.data.summary import check_columns
from cbcv.data.transactions import daily_sql

#: Inclusive first and last day of a window, or ``None`` for the whole log.
Bounds = tuple[pd.Timestamp, pd.Timestamp] | None

#: Customer-days in customer order, from ``{days}`` (customer_id, date, amount) and ``calendar``:
#: ``k`` (1 for the first purchase day), ``gap`` (days since the previous one), ``cohort``
#: (cohort-period ordinal of the first day) and ``new_period``/``new_cperiod`` (the customer's
#: first day in the day's period / cohort-length period).
SEQUENCE_SQL = """
CREATE TEMP TABLE seq AS
SELECT customer_id, date, amount, period, cperiod,
       row_number() OVER w AS k,
       datediff('day', lag(date) OVER w, date) AS gap,
       first_value(cperiod) OVER w AS cohort,
       (lag(period) OVER w IS DISTINCT FROM period) AS new_period,
       (lag(cperiod) OVER w IS DISTINCT FROM cperiod) AS new_cperiod
FROM ({days}) AS d JOIN calendar USING (date)
WINDOW w AS (PARTITION BY customer_id ORDER BY date)
"""

#: Per cohort: customers, revenue of their first days, all revenue, repeat customers, days.
COHORTS_SQL = """
SELECT cohort,
       count(*) FILTER (WHERE k = 1) AS customers,
       fsum(amount) FILTER (WHERE k = 1) AS first_purchase_revenue,
       fsum(amount) AS revenue,
       count(*) FILTER (WHERE k = 2) AS repeat_customers,
       count(*) AS transactions
FROM seq GROUP BY cohort ORDER BY cohort
"""

#: Observed cells of the C3: revenue, active customers and customer-days per period and cohort.
C3_SQL = """
SELECT period, cohort,
       fsum(amount) AS revenue,
       count(*) FILTER (WHERE new_period) AS active_customers,
       count(*) AS transactions
FROM seq GROUP BY period, cohort
"""

#: Per cohort and cohort-length period: first purchases, second purchases, active customers.
REPEAT_SQL = """
SELECT cohort, cperiod,
       count(*) FILTER (WHERE k = 1) AS customers,
       count(*) FILTER (WHERE k = 2) AS repeat_customers,
       count(*) FILTER (WHERE new_cperiod) AS active_customers
FROM seq GROUP BY cohort, cperiod
"""

#: Inter-purchase times: repeat purchase days per whole number of days since the previous one.
GAPS_SQL = "SELECT gap AS days, count(*) AS count FROM seq WHERE k > 1 GROUP BY gap ORDER BY gap"

#: The buyers of a window ranked as :func:`cbcv.audit.deciles.customer_deciles` ranks them:
#: ``r`` (0 = top), ``n`` buyers, ``decile`` = floor(10 r / n) + 1, ``clipped`` = max(spend, 0).
RANKED_SQL = """
CREATE TEMP TABLE {table} AS
SELECT *, ({deciles} * r) // n + 1 AS decile
FROM (
    SELECT customer_id, spend, transactions, greatest(spend, 0.0) AS clipped,
           row_number() OVER (ORDER BY floor(spend * CAST({resolution} AS DOUBLE) + 0.5) DESC,
                              transactions DESC, customer_id) - 1 AS r,
           count(*) OVER () AS n
    FROM (SELECT customer_id, fsum(amount) AS spend, count(*) AS transactions
          FROM seq {where} GROUP BY customer_id)
)
"""

#: Per decile of a ranked table: buyers, revenue, purchase days, smallest and largest spend.
DECILES_SQL = """
SELECT decile, count(*) AS customers, fsum(spend) AS revenue,
       CAST(sum(transactions) AS BIGINT) AS transactions,
       min(spend) AS min_spend, max(spend) AS max_spend
FROM {table} GROUP BY decile
"""

#: Totals of a ranked table; ``weighted`` is sum_i i x_(i) over clipped spends sorted ascending.
TOTALS_SQL = """
SELECT count(*) AS n, fsum(clipped) AS revenue, fsum(spend) AS net_revenue,
       count(*) FILTER (WHERE spend < 0) AS negative, fsum((n - r) * clipped) AS weighted
FROM {table}
"""

#: Cumulative clipped revenue of the ``k`` best buyers of a ranked table, k = 1..n, or only the
#: ``k`` that the optional ``{keep}`` clause keeps.
WHALE_SQL = """
SELECT k, cum FROM (
    SELECT r + 1 AS k,
           fsum(clipped) OVER (ORDER BY r ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
    FROM {table}
) {keep} ORDER BY k
"""

#: Buyers of window 1 by their decile there and their decile (or inactivity) in window 2.
MIGRATION_SQL = """
SELECT a.decile AS decile_1, coalesce(CAST(b.decile AS VARCHAR), '{inactive}') AS decile_2,
       count(*) AS n
FROM {first} AS a LEFT JOIN {second} AS b USING (customer_id)
GROUP BY ALL
"""


def customer_base_audit(
    source: str | os.PathLike[str] | pd.DataFrame | pa.Table,
    *,
    period: str = "quarter",
    cohort_period: str | None = None,
    window: Window = None,
    migration: tuple[Window, Window] | None = None,
    bin_days: int = 7,
    as_of: DateLike | None = None,
    whale_points: int | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    zero_amount_purchases: bool = False,
) -> CustomerBaseAudit:
    """The customer-base audit of the transaction log ``source``, computed in DuckDB SQL — the
    one implementation, whatever the log's size or where it is.

    Parameters
    ----------
    source
        A pandas DataFrame or Arrow table (registered as a relation, not copied), or the path of
        a Parquet file or a glob of several (``logs/*.parquet``), with the columns
        ``customer_id``, ``date`` and ``amount`` (e.g. written by
        :func:`cbcv.data.load.validate_to_parquet`).
    period, cohort_period, window, migration, bin_days, as_of, zero_amount_purchases
        ``period`` is the calendar period of the C3; ``cohort_period`` defines cohorts and the
        unit of cohort age in the repeat-buying table (default ``period``); ``window`` is the
        period of the decile analysis and the whale curve (default: the whole log up to
        ``as_of``); ``migration`` a pair of windows for the decile migration (skipped when
        ``None``); ``bin_days`` the width of the inter-purchase bins; ``zero_amount_purchases``
        the purchase rule of :func:`cbcv.data.transactions.daily_sql`. Any single pandas period works
        (``month``, ``quarter``, ``year``, ``week``, ``day``, ``Q-JUN`` ...); a multiple such
        as ``2Q`` is a :class:`ConfigError`.
    whale_points
        ``None`` (default) returns the whole whale curve, one row per buyer of ``window`` plus
        the origin, as the pandas audit does; a number keeps that many points plus the origin,
        evenly spaced in customers (all exact points of the same curve).
    memory_limit, threads
        DuckDB's memory cap (e.g. ``"4GB"``; beyond it DuckDB spills to disk) and worker
        threads; ``None`` keeps DuckDB's defaults.

    Returns
    -------
    :class:`CustomerBaseAudit`. Raises
    :class:`DataError` for an unreadable file, a missing column, a log without purchase days or
    a decile window (or first migration window) without buyers.
    """
    cohort_period = cohort_period or period
    freq, cfreq = _single_freq(period), _single_freq(cohort_period)
    bounds = resolve_window(window)
    pair: tuple[tuple[Window, Window], tuple[Bounds, Bounds]] | None = None
    if migration is not None:
        first, second = migration
        pair = (first, second), (resolve_window(first), resolve_window(second))
    if bin_days < 1:
        raise ValueError(f"bin_days must be >= 1, got {bin_days}")
    if whale_points is not None and whale_points < 1:
        raise ValueError(f"whale_points must be >= 1, got {whale_points}")
    stop = as_day(as_of, "as_of") if as_of is not None else None
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        name = _register(con, source)
        try:
            _sequence(con, name, freq, cfreq, stop, zero_amount_purchases)
            cohorts = _cohort_table(con, cfreq)
            ranked: dict[Bounds, str] = {}
            main = _ranked_buyers(con, bounds, ranked, window)
            whale, concentration = _concentration(con, main, window_label(window), whale_points)
            values, counts = _gap_counts(con)
            return CustomerBaseAudit(
                cohorts=cohorts,
                c3=_c3_table(con, freq, cfreq),
                repeat=_repeat_rates(con, cfreq),
                deciles=_decile_table(con, main),
                whale=whale,
                concentration=concentration,
                interpurchase=_histogram(values, counts, bin_days),
                interpurchase_stats=_summary(
                    values, counts, int(cohorts["repeat_customers"].sum())
                ),
                migration=_migration(con, ranked, *pair) if pair is not None else None,
            )
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot audit ({first_line(exc)})") from exc


# --------------------------------------------------------------------------- source and days


def _single_freq(period: str) -> str:
    """:func:`resolve_freq`, refusing multiples (``2Q``): pandas' own audit does not handle them
    consistently (its ordinals step by one, its period ranges by the multiple)."""
    freq = resolve_freq(period)
    if pd.PeriodDtype(freq).freq.n != 1:
        raise ConfigError(
            f"period {period!r} is a multiple of a period; the SQL audit takes a single period "
            "(month, quarter, year, week, day or a pandas alias such as M, Q, Q-JUN)"
        )
    return freq


def _register(con: duckdb.DuckDBPyConnection, source: str | os.PathLike[str] | pd.DataFrame | pa.Table) -> str:
    """Expose ``source`` (a DataFrame or Arrow table, or a Parquet file or glob) as the view
    ``tx`` (``customer_id`` text, ``date`` DATE, ``amount`` DOUBLE); returns the name used in
    messages."""
    if isinstance(source, pd.DataFrame | pa.Table):
        found = [str(c) for c in source.columns] if isinstance(source, pd.DataFrame) else source.column_names
        check_columns(found, "transactions")
        con.register("tx_input", source)
        con.execute(
            "CREATE VIEW tx AS SELECT CAST(customer_id AS VARCHAR) AS customer_id, "
            "CAST(date AS DATE) AS date, CAST(amount AS DOUBLE) AS amount FROM tx_input"
        )
        return "transactions"
    text = str(Path(source).expanduser())
    name = Path(text).name
    is_glob = any(c in text for c in "*?[")
    if not (is_glob or Path(text).is_file()):
        raise DataError(f"{name}: file not found ({text})")
    relation = f"read_parquet({literal(text)})"
    try:
        found = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read as Parquet ({first_line(exc)})") from exc
    check_columns(found, name)
    con.execute(
        "CREATE VIEW tx AS SELECT CAST(customer_id AS VARCHAR) AS customer_id, "
        f"CAST(date AS DATE) AS date, CAST(amount AS DOUBLE) AS amount FROM {relation}"
    )
    return name


def _sequence(
    con: duckdb.DuckDBPyConnection,
    name: str,
    freq: str,
    cfreq: str,
    stop: pd.Timestamp | None,
    zero_amount_purchases: bool = False,
) -> None:
    """Create ``calendar`` and ``seq`` (:data:`SEQUENCE_SQL`) from the view ``tx``; DataError
    for missing values or no purchase day."""
    first, last, missing = con.execute(
        "SELECT min(date), max(date), count(*) FILTER (WHERE customer_id IS NULL "
        "OR date IS NULL OR amount IS NULL) FROM tx"
    ).fetchall()[0]
    if missing:
        raise DataError(
            f"{name}: {missing} row(s) with a missing customer_id, date or amount; load the "
            "data with cbcv.data.load.load_transactions first"
        )
    days = daily_sql("tx", zero_amount_purchases)
    if stop is not None:
        days = f"SELECT * FROM ({days}) WHERE date <= {DUCKDB.day(stop.date())}"
        last = min(last, stop.date()) if last is not None else None
    _calendar(con, first, last, freq, cfreq)
    con.execute(SEQUENCE_SQL.format(days=days))
    if not con.execute("SELECT count(*) FROM seq").fetchall()[0][0]:
        raise DataError(
            f"{name}: the transaction log has no purchase occasions (customer-days) to audit"
        )


def _calendar(
    con: duckdb.DuckDBPyConnection,
    first: dt.date | None,
    last: dt.date | None,
    freq: str,
    cfreq: str,
) -> None:
    """Table ``calendar``: every day from ``first`` to ``last`` with the pandas period ordinal of
    its ``freq`` period (``period``) and ``cfreq`` period (``cperiod``)."""
    days = pd.date_range(first, last, freq="D") if first is not None else pd.DatetimeIndex([])
    frame = pd.DataFrame(
        {
            "date": days,
            "period": days.to_period(freq).asi8,
            "cperiod": days.to_period(cfreq).asi8,
        }
    )
    con.register("calendar_input", frame)
    con.execute(
        "CREATE TEMP TABLE calendar AS "
        "SELECT CAST(date AS DATE) AS date, period, cperiod FROM calendar_input"
    )
    con.unregister("calendar_input")


def _periods(ordinals: pd.Series | np.ndarray, freq: str) -> pd.api.extensions.ExtensionArray:
    """Period ordinals as a pandas period array of ``freq``."""
    return pd.PeriodIndex.from_ordinals(np.asarray(ordinals, dtype="int64"), freq=freq).array


def _int64(frame: pd.DataFrame, *columns: str) -> None:
    for col in columns:
        frame[col] = frame[col].astype("int64")


def _ladder(starts: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray]:
    """For each start ordinal, every ordinal from it to ``last``: (index of the start, ordinal)."""
    lengths = last - starts + 1
    owner = np.repeat(np.arange(starts.size), lengths)
    offsets = np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, starts[owner] + offsets


# --------------------------------------------------------------------------- cohorts, C3, repeat


def _cohort_table(con: duckdb.DuckDBPyConnection, cfreq: str) -> pd.DataFrame:
    """:func:`cbcv.audit.cohorts.cohort_table`: one row per cohort, oldest first."""
    out = con.execute(COHORTS_SQL).df()
    out["cohort"] = _periods(out["cohort"], cfreq)
    _int64(out, "customers", "repeat_customers", "transactions")
    out["revenue_per_customer"] = out["revenue"] / out["customers"]
    out["repeat_share"] = out["repeat_customers"] / out["customers"]
    out["transactions_per_customer"] = out["transactions"] / out["customers"]
    return out[list(COHORT_TABLE_COLUMNS)]


def _c3_table(con: duckdb.DuckDBPyConnection, freq: str, cfreq: str) -> pd.DataFrame:
    """:func:`cbcv.audit.cohorts.c3_table`: every cohort × every period from the one holding the
    cohort's first day to the log's last, zeros where the cohort bought nothing."""
    observed = con.execute(C3_SQL).df()
    cohorts = np.unique(observed["cohort"].to_numpy(dtype="int64"))
    starts = pd.PeriodIndex.from_ordinals(cohorts, freq=cfreq).start_time.to_period(freq).asi8
    owner, ordinals = _ladder(starts, int(observed["period"].max()))
    grid = pd.DataFrame(
        {"period": ordinals, "cohort": cohorts[owner], "age": ordinals - starts[owner]}
    )
    out = grid.merge(observed, on=["period", "cohort"], how="left")
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    out[["active_customers", "transactions"]] = out[["active_customers", "transactions"]].fillna(0)
    _int64(out, "age", "active_customers", "transactions")
    out = out.sort_values(["period", "cohort"], kind="stable").reset_index(drop=True)
    out["period"] = _periods(out["period"], freq)
    out["cohort"] = _periods(out["cohort"], cfreq)
    return out[list(C3_COLUMNS)]


def _repeat_rates(con: duckdb.DuckDBPyConnection, cfreq: str) -> pd.DataFrame:
    """:func:`cbcv.audit.repeat.repeat_rates`: every cohort × age 0 to the log's last period."""
    observed = con.execute(REPEAT_SQL).df()
    sizes = observed.groupby("cohort")["customers"].sum()
    cohorts = sizes.index.to_numpy(dtype="int64")
    owner, ordinals = _ladder(cohorts, int(observed["cperiod"].max()))
    grid = pd.DataFrame({"cohort": cohorts[owner], "cperiod": ordinals})
    out = grid.merge(observed.drop(columns="customers"), on=["cohort", "cperiod"], how="left")
    out = out.fillna(0).sort_values(["cohort", "cperiod"], kind="stable").reset_index(drop=True)
    out["age"] = out["cperiod"] - out["cohort"]
    out["customers"] = sizes.to_numpy()[owner]
    out["repeat_customers"] = out.groupby("cohort")["repeat_customers"].cumsum()
    _int64(out, "age", "customers", "repeat_customers", "active_customers")
    out["repeat_share"] = out["repeat_customers"] / out["customers"]
    out["active_share"] = out["active_customers"] / out["customers"]
    out["period"] = _periods(out["cperiod"], cfreq)
    out["cohort"] = _periods(out["cohort"], cfreq)
    return out[list(REPEAT_COLUMNS)]


# --------------------------------------------------------------------------- deciles, whale


def _ranked_buyers(
    con: duckdb.DuckDBPyConnection,
    bounds: Bounds,
    tables: dict[Bounds, str],
    window: Window,
    *,
    required: bool = True,
) -> str:
    """Name of the table ranking the buyers of ``bounds`` (:data:`RANKED_SQL`), created once per
    window and remembered in ``tables``. DataError when ``required`` and nobody bought."""
    if bounds not in tables:
        where = ""
        if bounds is not None:
            start, end = (DUCKDB.day(b.date()) for b in bounds)
            where = f"WHERE date BETWEEN {start} AND {end}"
        table = f"ranked_{len(tables)}"
        con.execute(
            RANKED_SQL.format(
                table=table, deciles=N_DECILES, resolution=SPEND_RESOLUTION, where=where
            )
        )
        tables[bounds] = table
    table = tables[bounds]
    if required and not con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]:
        raise DataError(f"no purchases in {window_label(window)}: nothing to rank into deciles")
    return table


def _decile_table(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """:func:`cbcv.audit.deciles.decile_table`: ten rows, decile 1 (top spenders) to 10."""
    return decile_shares(con.execute(DECILES_SQL.format(table=table)).df().set_index("decile"))


def _whale_ks(n: int, whale_points: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``None`` for the whole whale curve, else the customer counts ``k`` to fetch and those to
    keep: ``whale_points + 1`` evenly spaced, plus (fetched only) the points around each
    top-share fraction, so that :func:`top_share` interpolates on its exact segment."""
    if whale_points is None or whale_points >= n:
        return None
    kept = np.unique(np.rint(np.linspace(0, n, whale_points + 1)).astype("int64"))
    around = [math.floor(f * n) + d for f in TOP_SHARES for d in (-1, 0, 1, 2)]
    return np.unique(np.clip(np.concatenate([kept, around]), 0, n)), kept


def _concentration(
    con: duckdb.DuckDBPyConnection, table: str, label: str, whale_points: int | None
) -> tuple[pd.DataFrame, Concentration]:
    """The whale curve (:func:`cbcv.audit.concentration.whale_curve_from_spend`, thinned to
    ``whale_points``) and :class:`Concentration` of the buyers ranked in ``table``."""
    n, revenue, net, negative, weighted = con.execute(TOTALS_SQL.format(table=table)).fetchall()[0]
    ks = _whale_ks(n, whale_points)
    keep = ""
    if ks is not None:
        con.register("whale_ks", pd.DataFrame({"k": ks[0]}))
        keep = "WHERE k IN (SELECT k FROM whale_ks)"
    points = con.execute(WHALE_SQL.format(table=table, keep=keep)).df()
    k = np.concatenate([[0], points["k"].to_numpy(dtype="int64")])
    cum = np.concatenate([[0.0], points["cum"].to_numpy(dtype=float)])
    curve = pd.DataFrame(
        {
            "customers": k,
            "customer_share": k.astype(float) / max(n, 1),
            "revenue_share": cum / revenue if revenue > 0 else np.full(k.size, np.nan),
        }
    )
    gini = 2.0 * weighted / (n * revenue) - (n + 1.0) / n if revenue > 0 else float("nan")
    tops = [top_share(curve, f) for f in TOP_SHARES]
    if ks is not None:
        curve = curve[curve["customers"].isin(ks[1])].reset_index(drop=True)
    summary = Concentration(
        window=label,
        customers=int(n),
        revenue=float(revenue),
        net_revenue=float(net),
        negative_customers=int(negative),
        top_1pct=tops[0],
        top_10pct=tops[1],
        top_20pct=tops[2],
        gini=float(gini),
    )
    return curve, summary


def _migration(
    con: duckdb.DuckDBPyConnection,
    tables: dict[Bounds, str],
    windows: tuple[Window, Window],
    bounds: tuple[Bounds, Bounds],
) -> DecileMigration:
    """:func:`cbcv.audit.deciles.decile_migration`: period-1 deciles (rows) against period-2
    deciles or inactivity (columns)."""
    first = _ranked_buyers(con, bounds[0], tables, windows[0])
    second = _ranked_buyers(con, bounds[1], tables, windows[1], required=False)
    cells = con.execute(MIGRATION_SQL.format(first=first, second=second, inactive=INACTIVE)).df()
    index = pd.Index(np.arange(1, N_DECILES + 1), name="decile_1")
    columns = pd.Index([str(d) for d in range(1, N_DECILES + 1)] + [INACTIVE], name="decile_2")
    counts = (
        cells.pivot(index="decile_1", columns="decile_2", values="n")
        .reindex(index=index, columns=columns)
        .fillna(0)
        .astype("int64")
    )
    totals = counts.sum(axis=1).replace(0, np.nan)
    return DecileMigration(
        counts=counts,
        row_shares=counts.div(totals, axis=0),
        period_1=window_label(windows[0]),
        period_2=window_label(windows[1]),
    )


# --------------------------------------------------------------------------- inter-purchase


def _gap_counts(con: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, np.ndarray]:
    """Distinct inter-purchase times in days (ascending) and how many repeat purchases have each."""
    gaps = con.execute(GAPS_SQL).df()
    return gaps["days"].to_numpy(dtype="int64"), gaps["count"].to_numpy(dtype="int64")


def _histogram(values: np.ndarray, counts: np.ndarray, bin_days: int) -> pd.DataFrame:
    """:func:`cbcv.audit.interpurchase.interpurchase_histogram` (no ``max_days``, no ``by``) from
    the count of each inter-purchase time."""
    bins = (values - 1) // bin_days
    n_bins = int(bins.max()) + 1 if bins.size else 0
    per_bin = np.zeros(n_bins, dtype="int64")
    np.add.at(per_bin, bins, counts)
    k = np.arange(n_bins, dtype="int64")
    total = per_bin.sum()
    out = pd.DataFrame(
        {
            "bin": k,
            "days_from": k * bin_days + 1,
            "days_to": ((k + 1) * bin_days).astype(float),
            "count": per_bin,
            "share": per_bin / total if total else np.full(n_bins, np.nan),
        }
    )
    out["cumulative_share"] = out["share"].cumsum()
    return out


def _quantile(values: np.ndarray, cumulative: np.ndarray, q: float) -> float:
    """``np.quantile(sample, q)`` (linear) of the sorted sample holding ``values[i]``
    ``cumulative[i] - cumulative[i - 1]`` times, with numpy's arithmetic step for step."""
    n = int(cumulative[-1])
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return float(values[-1])
    lo = math.floor(virtual)
    a, b = (float(values[np.searchsorted(cumulative, j, side="right")]) for j in (lo, lo + 1))
    gamma = virtual - lo
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _summary(values: np.ndarray, counts: np.ndarray, customers: int) -> pd.DataFrame:
    """:func:`cbcv.audit.interpurchase.interpurchase_summary` (one row) from the count of each
    inter-purchase time; ``customers`` is the number of customers with a repeat purchase."""
    n = int(counts.sum())
    nan = float("nan")
    row: dict[str, float] = {"repeat_purchases": n, "customers": customers}
    if n == 0:
        row.update(
            dict.fromkeys(["mean", "sd", "min", "q10", "q25", "median", "q75", "q90", "max"], nan)
        )
        return pd.DataFrame([row])
    mean = int(np.dot(values, counts)) / n
    sq = float(np.dot(counts, (values - mean) ** 2))
    cumulative = np.cumsum(counts)
    q = [_quantile(values, cumulative, float(p)) for p in SUMMARY_QUANTILES]
    row.update(
        {
            "mean": mean,
            "sd": math.sqrt(sq / (n - 1)) if n > 1 else nan,
            "min": float(values[0]),
            "q10": q[0],
            "q25": q[1],
            "median": q[2],
            "q75": q[3],
            "q90": q[4],
            "max": float(values[-1]),
        }
    )
    return pd.DataFrame([row])
