"""Customer-base audit (Fader, Hardie & Ross 2022, *The Customer-Base Audit*, Wharton School
Press): acquisition cohorts and the customer cohort chart (C3), repeat buying by cohort age,
decile analysis and migration, revenue concentration (whale curve, Gini) and inter-purchase
times.

Every function takes a transaction log in the contract of :mod:`cbcv.data.transactions`
(``customer_id``, ``date``, ``amount``; returns negative) and works on customer-days: one
transaction per customer per day, returns netted (:func:`cbcv.data.transactions.to_daily`).
Periods are ``"month"``/``"quarter"``/``"year"`` or pandas period aliases; windows are pandas
period strings (``"1997"``, ``"1997Q1"``) or inclusive ``(start, end)`` date pairs. Outputs for
the report never contain customer ids; :func:`customer_deciles` and
:func:`interpurchase_times` are explicitly per customer.

The tables are computed once, in SQL (:func:`cbcv.audit.sql.customer_base_audit`, over a
DataFrame, Arrow table or Parquet log of any size).

May import: data and core; never models or any layer above.
"""

from cbcv.audit.cohorts import c3_table, c3_wide, cohort_table
from cbcv.audit.concentration import (
    Concentration,
    concentration,
    concentration_from_spend,
    gini,
    top_share,
    whale_curve,
    whale_curve_from_spend,
)
from cbcv.audit.deciles import (
    DecileMigration,
    customer_deciles,
    decile_migration,
    decile_summary,
    decile_table,
)
from cbcv.audit.interpurchase import (
    interpurchase_histogram,
    interpurchase_summary,
    interpurchase_times,
)
from cbcv.audit.repeat import repeat_rates
from cbcv.audit.sql import customer_base_audit
from cbcv.audit.suite import CustomerBaseAudit

__all__ = [
    "Concentration",
    "CustomerBaseAudit",
    "DecileMigration",
    "c3_table",
    "c3_wide",
    "cohort_table",
    "concentration",
    "concentration_from_spend",
    "customer_base_audit",
    "customer_deciles",
    "decile_migration",
    "decile_summary",
    "decile_table",
    "gini",
    "interpurchase_histogram",
    "interpurchase_summary",
    "interpurchase_times",
    "repeat_rates",
    "top_share",
    "whale_curve",
    "whale_curve_from_spend",
]
