"""Repeat buying by acquisition cohort and cohort age.

For each cohort (period of first purchase) and each age a = 0, 1, 2, ... (whole periods since the
acquisition period; a = 0 is the acquisition period itself), two curves describe how a cohort
develops (Fader, Hardie & Ross 2022, *The Customer-Base Audit*, ch. 5-6):

* ``repeat_share``: the cumulative share of the cohort that has made at least one repeat purchase
  (a second purchase day) by the end of the period at age a;
* ``active_share``: the share of the cohort that bought at least once in the period at age a
  (1 at age 0 by definition).

Purchases are customer-days (same-day purchases are one, returns netted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike, customer_days, period_ordinals, resolve_freq, with_cohorts

REPEAT_COLUMNS: tuple[str, ...] = (
    "cohort",
    "age",
    "period",
    "customers",
    "repeat_customers",
    "repeat_share",
    "active_customers",
    "active_share",
)


def repeat_rates(
    transactions: pd.DataFrame,
    period: str = "quarter",
    *,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Cumulative repeat-purchase share and period activity by cohort and age.

    Parameters
    ----------
    transactions
        A transaction log.
    period
        Period of both cohorts and ages (``"month"``, ``"quarter"``, ``"year"`` or a pandas alias).
    as_of
        Last day counted; default: the whole log. The last period is partial when the log ends
        inside it.

    Returns
    -------
    DataFrame with ``cohort``, ``age`` (int), ``period`` (calendar period = cohort + age),
    ``customers`` (cohort size), ``repeat_customers`` (customers whose second purchase day falls
    in a period at age <= ``age``), ``repeat_share``, ``active_customers`` (customers with a
    purchase day in ``period``) and ``active_share``. One row per cohort and age from 0 to the
    last period of the log, sorted by cohort then age.
    """
    freq = resolve_freq(period)
    days = with_cohorts(customer_days(transactions, as_of=as_of, zero_amount_purchases=zero_amount_purchases), freq)
    days["age"] = period_ordinals(days["period"]) - period_ordinals(days["cohort"])
    last_ordinal = int(period_ordinals(days["period"]).max())

    days = days.sort_values(["customer_id", "date"], kind="stable")
    order = days.groupby("customer_id", sort=False).cumcount()
    second = days.loc[order == 1, ["cohort", "age"]]
    sizes = days.loc[order == 0].groupby("cohort").size()
    repeat_at = second.groupby(["cohort", "age"]).size()
    active = days.groupby(["cohort", "age"])["customer_id"].nunique()

    frames = []
    for cohort, size in sizes.items():
        n_ages = last_ordinal - cohort.ordinal + 1
        ages = np.arange(n_ages, dtype="int64")
        firsts = repeat_at.get(cohort, pd.Series(dtype="int64")).reindex(ages, fill_value=0)
        act = active.get(cohort, pd.Series(dtype="int64")).reindex(ages, fill_value=0)
        frames.append(
            pd.DataFrame(
                {
                    "cohort": cohort,
                    "age": ages,
                    "period": pd.period_range(cohort, periods=n_ages, freq=freq),
                    "customers": int(size),
                    "repeat_customers": np.cumsum(firsts.to_numpy()).astype("int64"),
                    "active_customers": act.to_numpy().astype("int64"),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["cohort"] = out["cohort"].astype(days["cohort"].dtype)
    out["repeat_share"] = out["repeat_customers"] / out["customers"]
    out["active_share"] = out["active_customers"] / out["customers"]
    return out[list(REPEAT_COLUMNS)]
