"""Acquisition cohorts: the cohort table and the customer cohort chart (C3, the "layer cake").

A customer's *cohort* is the calendar period (month, quarter, year, ...) of their first purchase
occasion in the log. The C3 stacks, for every calendar period, the revenue (or active customers,
or transactions) coming from each cohort, oldest at the bottom, so that the contribution of new
versus existing customers to each period's total can be read off (Fader, Hardie & Ross 2022,
*The Customer-Base Audit*, ch. 6-7).

All counts are over customer-days (one transaction per customer per day, returns netted); both
tables are group-bys of the audit's :class:`~cbcv.audit.engine.Sequence`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike
from cbcv.audit.engine import Sequence, Source, as_int64, ladder, open_sequence, periods

COHORT_TABLE_COLUMNS: tuple[str, ...] = (
    "cohort",
    "customers",
    "first_purchase_revenue",
    "revenue",
    "revenue_per_customer",
    "repeat_customers",
    "repeat_share",
    "transactions",
    "transactions_per_customer",
)

C3_COLUMNS: tuple[str, ...] = (
    "period",
    "cohort",
    "age",
    "revenue",
    "active_customers",
    "transactions",
)

C3_VALUES: tuple[str, ...] = ("revenue", "active_customers", "transactions")

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


def cohort_table(
    transactions: Source,
    cohort_period: str = "quarter",
    *,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """One row per acquisition cohort, oldest first.

    Parameters
    ----------
    transactions
        A transaction log (``customer_id``, ``date``, ``amount``): a DataFrame, an Arrow table
        or a Parquet file or glob.
    cohort_period
        ``"month"``, ``"quarter"``, ``"year"`` or a pandas period alias (``"M"``, ``"Q-JUN"``...).
    as_of
        Last day counted ("to date"); default: the whole log.
    zero_amount_purchases
        The purchase rule of :func:`cbcv.data.transactions.daily_sql`.

    Returns
    -------
    DataFrame with ``cohort`` (``pd.Period``; ``str()`` gives the labels of
    :func:`cbcv.data.summary.customer_summary`, e.g. ``1997Q1``), ``customers`` acquired,
    ``first_purchase_revenue`` (net spend of their first purchase day), ``revenue`` (all net spend
    to date, first day included), ``revenue_per_customer``, ``repeat_customers`` (customers with
    at least two purchase days), ``repeat_share`` (their share of the cohort, 0-1),
    ``transactions`` (customer-days) and ``transactions_per_customer``.
    """
    rule = {"as_of": as_of, "zero_amount_purchases": zero_amount_purchases}
    with open_sequence(transactions, period=cohort_period, **rule) as seq:
        return cohorts_of(seq)


def cohorts_of(seq: Sequence) -> pd.DataFrame:
    """:func:`cohort_table` of an open :class:`Sequence` (cohorts at its ``cohort_period``)."""
    out = seq.df(COHORTS_SQL)
    out["cohort"] = periods(out["cohort"], seq.cfreq)
    as_int64(out, "customers", "repeat_customers", "transactions")
    out["revenue_per_customer"] = out["revenue"] / out["customers"]
    out["repeat_share"] = out["repeat_customers"] / out["customers"]
    out["transactions_per_customer"] = out["transactions"] / out["customers"]
    return out[list(COHORT_TABLE_COLUMNS)]


def c3_table(
    transactions: Source,
    period: str = "quarter",
    *,
    cohort_period: str | None = None,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Customer cohort chart (C3) data: calendar period × acquisition cohort, long format.

    Rows are calendar ``period`` s (``"month"``, ``"quarter"``, ``"year"`` or a pandas alias) of
    the log ``transactions`` (as in :func:`cohort_table`); cohorts are defined by
    ``cohort_period`` (default ``period``), which may be coarser (yearly cohorts on a quarterly
    chart). ``as_of`` and ``zero_amount_purchases`` act as in :func:`cohort_table`; the last
    period is partial when ``as_of`` (or the log) ends inside it.

    Returns ``period``, ``cohort`` (both ``pd.Period``), ``age`` (whole ``period`` units from the
    period holding the cohort's first day; 0 in the first), ``revenue`` (net spend),
    ``active_customers`` (customers of the cohort with at least one purchase day in the period)
    and ``transactions`` (customer-days). Every cohort has a row for every period from the one
    containing the cohort's first day to the last period of the log, with zeros where the cohort
    bought nothing, and none before it exists. Sorted by period then cohort.
    """
    rule = {"as_of": as_of, "zero_amount_purchases": zero_amount_purchases}
    with open_sequence(transactions, period=period, cohort_period=cohort_period, **rule) as seq:
        return c3_of(seq)


def c3_of(seq: Sequence) -> pd.DataFrame:
    """:func:`c3_table` of an open :class:`Sequence`: every cohort × every period from the one
    holding the cohort's first day to the log's last, zeros where the cohort bought nothing."""
    freq, cfreq = seq.freq, seq.cfreq
    observed = seq.df(C3_SQL)
    cohorts = np.unique(observed["cohort"].to_numpy(dtype="int64"))
    starts = pd.PeriodIndex.from_ordinals(cohorts, freq=cfreq).start_time.to_period(freq).asi8
    owner, ordinals = ladder(starts, int(observed["period"].max()))
    grid = pd.DataFrame(
        {"period": ordinals, "cohort": cohorts[owner], "age": ordinals - starts[owner]}
    )
    out = grid.merge(observed, on=["period", "cohort"], how="left")
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    out[["active_customers", "transactions"]] = out[["active_customers", "transactions"]].fillna(0)
    as_int64(out, "age", "active_customers", "transactions")
    out = out.sort_values(["period", "cohort"], kind="stable").reset_index(drop=True)
    out["period"] = periods(out["period"], freq)
    out["cohort"] = periods(out["cohort"], cfreq)
    return out[list(C3_COLUMNS)]


def c3_wide(c3: pd.DataFrame, value: str = "revenue") -> pd.DataFrame:
    """Pivot :func:`c3_table` output for stacking: index ``period``, one column per cohort
    (oldest first), cells ``value`` (``revenue``, ``active_customers`` or ``transactions``), zero
    before a cohort exists. Each row sums to the period's total."""
    if value not in C3_VALUES:
        raise ValueError(f"value must be one of {', '.join(C3_VALUES)}, got {value!r}")
    wide = c3.pivot(index="period", columns="cohort", values=value).sort_index()
    wide = wide.reindex(columns=sorted(wide.columns)).fillna(0)
    if value != "revenue":
        wide = wide.astype("int64")
    wide.columns.name = "cohort"
    return wide
