"""Acquisition cohorts: the cohort table and the customer cohort chart (C3, the "layer cake").

A customer's *cohort* is the calendar period (month, quarter, year, ...) of their first purchase
occasion in the log. The C3 stacks, for every calendar period, the revenue (or active customers,
or transactions) coming from each cohort, oldest at the bottom, so that the contribution of new
versus existing customers to each period's total can be read off (Fader, Hardie & Ross 2022,
*The Customer-Base Audit*, ch. 6-7).

All counts are over customer-days (one transaction per customer per day, returns netted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike, customer_days, period_ordinals, resolve_freq, with_cohorts

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


def cohort_table(
    transactions: pd.DataFrame,
    cohort_period: str = "quarter",
    *,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """One row per acquisition cohort, oldest first.

    Parameters
    ----------
    transactions
        A transaction log (``customer_id``, ``date``, ``amount``).
    cohort_period
        ``"month"``, ``"quarter"``, ``"year"`` or a pandas period alias (``"M"``, ``"Q-JUN"``...).
    as_of
        Last day counted ("to date"); default: the whole log.

    Returns
    -------
    DataFrame with ``cohort`` (``pd.Period``; ``str()`` gives the labels of
    :func:`cbcv.data.summary.customer_summary`, e.g. ``1997Q1``), ``customers`` acquired,
    ``first_purchase_revenue`` (net spend of their first purchase day), ``revenue`` (all net spend
    to date, first day included), ``revenue_per_customer``, ``repeat_customers`` (customers with
    at least two purchase days), ``repeat_share`` (their share of the cohort, 0-1),
    ``transactions`` (customer-days) and ``transactions_per_customer``.
    """
    freq = resolve_freq(cohort_period)
    days = customer_days(transactions, as_of=as_of, zero_amount_purchases=zero_amount_purchases)
    days = days.sort_values(["customer_id", "date"], kind="stable")
    per_customer = days.groupby("customer_id", sort=False).agg(
        first=("date", "first"),
        first_purchase_revenue=("amount", "first"),
        revenue=("amount", "sum"),
        transactions=("date", "size"),
    )
    per_customer["cohort"] = per_customer["first"].dt.to_period(freq)
    per_customer["repeat"] = per_customer["transactions"] >= 2
    out = (
        per_customer.groupby("cohort", sort=True)
        .agg(
            customers=("transactions", "size"),
            first_purchase_revenue=("first_purchase_revenue", "sum"),
            revenue=("revenue", "sum"),
            repeat_customers=("repeat", "sum"),
            transactions=("transactions", "sum"),
        )
        .reset_index()
    )
    out["customers"] = out["customers"].astype("int64")
    out["repeat_customers"] = out["repeat_customers"].astype("int64")
    out["transactions"] = out["transactions"].astype("int64")
    out["revenue_per_customer"] = out["revenue"] / out["customers"]
    out["repeat_share"] = out["repeat_customers"] / out["customers"]
    out["transactions_per_customer"] = out["transactions"] / out["customers"]
    return out[list(COHORT_TABLE_COLUMNS)]


def c3_table(
    transactions: pd.DataFrame,
    period: str = "quarter",
    *,
    cohort_period: str | None = None,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Customer cohort chart (C3) data: calendar period × acquisition cohort, long format.

    Parameters
    ----------
    transactions
        A transaction log.
    period
        Calendar period of the rows (``"month"``, ``"quarter"``, ``"year"`` or a pandas alias).
    cohort_period
        Period that defines cohorts; default ``period``. It may be coarser than ``period``
        (e.g. yearly cohorts on a quarterly chart).
    as_of
        Last day counted; default: the last day of the log. The last period is partial when
        ``as_of`` (or the log) ends inside it.

    Returns
    -------
    DataFrame with ``period``, ``cohort`` (both ``pd.Period``), ``age`` (whole ``period`` units
    from the period holding the cohort's first day; 0 in the first), ``revenue`` (net spend),
    ``active_customers`` (customers of the cohort with at least one purchase day in the period)
    and ``transactions`` (customer-days). Every cohort has a row for every period from the one
    containing the cohort's first day to the last period of the log, with zeros where the cohort
    bought nothing; a cohort has no rows before it exists. Sorted by period then cohort.
    """
    freq = resolve_freq(period)
    cfreq = resolve_freq(cohort_period) if cohort_period is not None else freq
    days = customer_days(transactions, as_of=as_of, zero_amount_purchases=zero_amount_purchases)
    days = with_cohorts(days, freq, cfreq)
    observed = (
        days.groupby(["period", "cohort"], sort=True)
        .agg(
            revenue=("amount", "sum"),
            active_customers=("customer_id", "nunique"),
            transactions=("date", "size"),
        )
        .reset_index()
    )
    last = days["period"].max()
    grid = []
    for cohort in sorted(days["cohort"].unique()):
        first_period = cohort.start_time.to_period(freq)
        periods = pd.period_range(first_period, last, freq=freq)
        grid.append(pd.DataFrame({"period": periods, "cohort": cohort}))
    full = pd.concat(grid, ignore_index=True)
    full["period"] = full["period"].astype(days["period"].dtype)
    full["cohort"] = full["cohort"].astype(days["cohort"].dtype)
    out = full.merge(observed, on=["period", "cohort"], how="left")
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    for col in ("active_customers", "transactions"):
        out[col] = out[col].fillna(0).astype("int64")
    start_ord = np.array(
        [c.start_time.to_period(freq).ordinal for c in out["cohort"]], dtype="int64"
    )
    out["age"] = period_ordinals(out["period"]) - start_ord
    out = out.sort_values(["period", "cohort"], kind="stable").reset_index(drop=True)
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
