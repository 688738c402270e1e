"""Repeat buying by acquisition cohort and cohort age.

For each cohort (period of first purchase) and each age a = 0, 1, 2, ... (whole periods since the
acquisition period; a = 0 is the acquisition period itself), two curves describe how a cohort
develops (Fader, Hardie & Ross 2022, *The Customer-Base Audit*, ch. 5-6):

* ``repeat_share``: the cumulative share of the cohort that has made at least one repeat purchase
  (a second purchase day) by the end of the period at age a;
* ``active_share``: the share of the cohort that bought at least once in the period at age a
  (1 at age 0 by definition).

Purchases are customer-days (same-day purchases are one, returns netted); the table is a
group-by of the audit's :class:`~cbcv.audit.engine.Sequence`.
"""

from __future__ import annotations

import pandas as pd

from cbcv.audit._common import DateLike
from cbcv.audit.engine import Sequence, Source, as_int64, ladder, open_sequence, periods

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

#: Per cohort and cohort period: first purchases, second purchases, active customers.
REPEAT_SQL = """
SELECT cohort, cperiod,
       count(*) FILTER (WHERE k = 1) AS customers,
       count(*) FILTER (WHERE k = 2) AS repeat_customers,
       count(*) FILTER (WHERE new_cperiod) AS active_customers
FROM seq GROUP BY cohort, cperiod
"""


def repeat_rates(
    transactions: Source,
    period: str = "quarter",
    *,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Cumulative repeat-purchase share and period activity by cohort and age.

    ``period`` (``"month"``, ``"quarter"``, ``"year"`` or a pandas alias) is the unit of both
    cohorts and ages; ``transactions``, ``as_of`` and ``zero_amount_purchases`` are as in
    :func:`cbcv.audit.cohort_table` (the last period is partial when the log ends inside it).

    Returns ``cohort``, ``age`` (int), ``period`` (calendar period = cohort + age),
    ``customers`` (cohort size), ``repeat_customers`` (customers whose second purchase day falls
    in a period at age <= ``age``), ``repeat_share``, ``active_customers`` (customers with a
    purchase day in ``period``) and ``active_share``: one row per cohort and age from 0 to the
    last period of the log, sorted by cohort then age.
    """
    with open_sequence(
        transactions, period=period, as_of=as_of, zero_amount_purchases=zero_amount_purchases
    ) as seq:
        return repeat_of(seq)


def repeat_of(seq: Sequence) -> pd.DataFrame:
    """:func:`repeat_rates` of an open :class:`Sequence`, cohorts and ages at its
    ``cohort_period``: every cohort × age 0 to the log's last period."""
    observed = seq.df(REPEAT_SQL)
    sizes = observed.groupby("cohort")["customers"].sum()
    cohorts = sizes.index.to_numpy(dtype="int64")
    owner, ordinals = ladder(cohorts, int(observed["cperiod"].max()))
    grid = pd.DataFrame({"cohort": cohorts[owner], "cperiod": ordinals})
    out = grid.merge(observed.drop(columns="customers"), on=["cohort", "cperiod"], how="left")
    out = out.fillna(0).sort_values(["cohort", "cperiod"], kind="stable").reset_index(drop=True)
    out["age"] = out["cperiod"] - out["cohort"]
    out["customers"] = sizes.to_numpy()[owner]
    out["repeat_customers"] = out.groupby("cohort")["repeat_customers"].cumsum()
    as_int64(out, "age", "customers", "repeat_customers", "active_customers")
    out["repeat_share"] = out["repeat_customers"] / out["customers"]
    out["active_share"] = out["active_customers"] / out["customers"]
    out["period"] = periods(out["cperiod"], seq.cfreq)
    out["cohort"] = periods(out["cohort"], seq.cfreq)
    return out[list(REPEAT_COLUMNS)]
