"""The one engine of the customer-base audit: a log's customer-days, numbered, in a scratch
DuckDB, which every audit table is a query of.

:func:`open_sequence` takes a transaction log (``customer_id``, ``date``, ``amount``; other
columns are ignored) wherever it is: a pandas DataFrame or Arrow table (registered as a
relation, not copied), or the path of a Parquet file or a glob of several (the accepted-rows
file of :func:`cbcv.data.load.validate_to_parquet`). It yields a :class:`Sequence` holding, in
DuckDB:

``calendar``
    Every day of the log's span with the pandas period ordinal of its ``period`` and of its
    ``cohort_period``. It is built by pandas (one row per day spanned, not per customer), so
    every pandas period alias (``W`` weeks ending Sunday, fiscal ``Q-JUN``, ``Y-JUN``,
    ``W-WED`` ...) gets exactly pandas' periods.
``seq``
    The customer-days (:data:`cbcv.data.transactions.DAILY_SQL`: same-day rows netted, days with
    only returns dropped) up to ``as_of``, with ``k`` (1 for a customer's first purchase day),
    ``gap`` (days since the previous one), ``cohort`` (cohort-period ordinal of the first day)
    and ``new_period``/``new_cperiod`` (the customer's first day in the day's period / cohort
    period): one window pass over the log.
``ranked_<i>``
    The buyers of a window ranked (:meth:`Sequence.ranked`), made once per window: spend
    compared to :data:`SPEND_RESOLUTION` descending, purchase days descending, ``customer_id``
    ascending; decile ``floor(10 r / n) + 1`` (not ``ntile``, which sizes groups differently).

Everything per row or per customer stays in DuckDB, which spills to a private temporary
folder beyond ``memory_limit`` (:func:`cbcv.data._sql.scratch_connection`); the tables of
:mod:`cbcv.audit.cohorts`, :mod:`~cbcv.audit.repeat`, :mod:`~cbcv.audit.deciles`,
:mod:`~cbcv.audit.concentration` and :mod:`~cbcv.audit.interpurchase` are group-bys of these
and bring back only aggregates (or, for the functions documented as per customer, one row per
customer). Sums are DuckDB's error-compensated ``fsum``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from cbcv.audit._common import DateLike, Window, as_day, resolve_freq, resolve_window, window_label
from cbcv.core.draws import N_DECILES
from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import DUCKDB, first_line, relation_of, scratch_connection
from cbcv.data.summary import check_columns
from cbcv.data.transactions import daily_sql

#: A transaction log the audit reads: a DataFrame, an Arrow table, or a Parquet file or glob.
Source = str | os.PathLike[str] | pd.DataFrame | pa.Table
#: Inclusive first and last day of a window, or ``None`` for the whole log.
Bounds = tuple[pd.Timestamp, pd.Timestamp] | None

#: Spends are compared in units of ``1 / SPEND_RESOLUTION`` when ranking (key
#: ``floor(spend * SPEND_RESOLUTION + 0.5)``): spends equal but for floating-point rounding (which
#: depends on the order of summation) tie, and the ranking is reproducible.
SPEND_RESOLUTION = 1e6

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

#: The buyers of a window: ``r`` (0 = top), ``n`` buyers, ``decile``, ``clipped`` = max(spend, 0).
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


@dataclass(frozen=True)
class Sequence:
    """The numbered customer-days of one log in the open connection ``con`` (module docstring):
    ``freq`` and ``cfreq`` are the pandas frequencies of ``period`` and ``cohort_period``,
    ``name`` names the source in messages."""

    con: duckdb.DuckDBPyConnection
    name: str
    freq: str
    cfreq: str
    _ranked: dict[Bounds, str] = field(default_factory=dict, repr=False)

    def df(self, sql: str) -> pd.DataFrame:
        """The result of ``sql`` as a DataFrame."""
        return self.con.execute(sql).df()

    def one(self, sql: str) -> tuple:
        """The single row of ``sql``."""
        return self.con.execute(sql).fetchall()[0]

    def ranked(self, window: Window, *, required: bool = True) -> str:
        """Name of the table ranking the buyers of ``window`` (:data:`RANKED_SQL`), made once per
        window. :class:`DataError` when ``required`` and nobody bought in it."""
        bounds = resolve_window(window)
        if bounds not in self._ranked:
            where = ""
            if bounds is not None:
                start, end = (DUCKDB.day(b.date()) for b in bounds)
                where = f"WHERE date BETWEEN {start} AND {end}"
            table = f"ranked_{len(self._ranked)}"
            self.con.execute(
                RANKED_SQL.format(
                    table=table, deciles=N_DECILES, resolution=SPEND_RESOLUTION, where=where
                )
            )
            self._ranked[bounds] = table
        table = self._ranked[bounds]
        if required and not self.one(f"SELECT count(*) FROM {table}")[0]:
            raise DataError(f"no purchases in {window_label(window)}: nothing to rank into deciles")
        return table


@contextlib.contextmanager
def open_sequence(
    source: Source,
    *,
    period: str = "quarter",
    cohort_period: str | None = None,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> Iterator[Sequence]:
    """The :class:`Sequence` of the log ``source`` (module docstring), in a scratch DuckDB closed
    on exit.

    ``period`` and ``cohort_period`` (default ``period``) are single pandas periods (``month``,
    ``quarter``, ``year``, ``week``, ``day``, ``Q-JUN`` ...; a multiple such as ``2Q`` is a
    :class:`ConfigError`); ``as_of`` is the last day counted; ``zero_amount_purchases`` the
    purchase rule of :func:`cbcv.data.transactions.daily_sql`; ``memory_limit`` (e.g. ``"4GB"``)
    and ``threads`` DuckDB's settings (``None``: its defaults). A missing file or column, a
    missing value, a log without purchase days and any DuckDB error raised inside the block are
    :class:`DataError` naming the source.
    """
    freq = single_freq(period)
    cfreq = single_freq(cohort_period) if cohort_period is not None else freq
    stop = as_day(as_of, "as_of") if as_of is not None else None
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        name = _register(con, source)
        try:
            _number_days(con, name, freq, cfreq, stop, zero_amount_purchases)
            yield Sequence(con, name, freq, cfreq)
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot audit ({first_line(exc)})") from exc


def single_freq(period: str) -> str:
    """:func:`cbcv.audit._common.resolve_freq`, refusing multiples (``2Q``): a cohort age counts
    whole periods, which a multiple does not define consistently in pandas (ordinals step by
    one, period ranges by the multiple)."""
    freq = resolve_freq(period)
    if pd.PeriodDtype(freq).freq.n != 1:
        raise ConfigError(
            f"period {period!r} is a multiple of a period; the audit takes a single period "
            "(month, quarter, year, week, day or a pandas alias such as M, Q, Q-JUN)"
        )
    return freq


def periods(ordinals: pd.Series | np.ndarray, freq: str) -> pd.api.extensions.ExtensionArray:
    """Period ordinals as a pandas period array of ``freq``."""
    return pd.PeriodIndex.from_ordinals(np.asarray(ordinals, dtype="int64"), freq=freq).array


def ladder(starts: np.ndarray, last: int) -> tuple[np.ndarray, np.ndarray]:
    """For each start ordinal, every ordinal from it to ``last``: (index of the start, ordinal)."""
    lengths = last - starts + 1
    owner = np.repeat(np.arange(starts.size), lengths)
    offsets = np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, starts[owner] + offsets


def as_int64(frame: pd.DataFrame, *columns: str) -> None:
    """Cast ``columns`` of ``frame`` to int64 in place."""
    for col in columns:
        frame[col] = frame[col].astype("int64")


def _register(con: duckdb.DuckDBPyConnection, source: Source) -> str:
    """Expose ``source`` as the view ``tx`` (``customer_id`` text, ``date`` DATE, ``amount``
    DOUBLE); returns the name used in messages."""
    relation, name, found = relation_of(con, source, "tx_input", "transactions")
    check_columns(found, name)
    con.execute(
        "CREATE VIEW tx AS SELECT CAST(customer_id AS VARCHAR) AS customer_id, "
        f"CAST(date AS DATE) AS date, CAST(amount AS DOUBLE) AS amount FROM {relation}"
    )
    return name


def _number_days(
    con: duckdb.DuckDBPyConnection,
    name: str,
    freq: str,
    cfreq: str,
    stop: pd.Timestamp | None,
    zero_amount_purchases: bool,
) -> None:
    """Create ``calendar`` and ``seq`` from the view ``tx``; DataError for missing values or no
    purchase day."""
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
        {"date": days, "period": days.to_period(freq).asi8, "cperiod": days.to_period(cfreq).asi8}
    )
    con.register("calendar_input", frame)
    con.execute(
        "CREATE TEMP TABLE calendar AS "
        "SELECT CAST(date AS DATE) AS date, period, cperiod FROM calendar_input"
    )
    con.unregister("calendar_input")
