"""Customer-base audit (Fader, Hardie & Ross 2022, *The Customer-Base Audit*, Wharton School
Press): acquisition cohorts and the customer cohort chart (C3), repeat buying by cohort age,
decile analysis and migration, revenue concentration (whale curve, Gini) and inter-purchase
times.

Every function takes a transaction log in the contract of :mod:`cbcv.data.transactions`
(``customer_id``, ``date``, ``amount``; returns negative) as a pandas DataFrame, an Arrow table
or a Parquet file or glob, and works on customer-days: one transaction per customer per day,
returns netted (:data:`cbcv.data.transactions.DAILY_SQL`).
Periods are ``"month"``/``"quarter"``/``"year"`` or pandas period aliases; windows are pandas
period strings (``"1997"``, ``"1997Q1"``) or inclusive ``(start, end)`` date pairs. Outputs for
the report never contain customer ids; :func:`customer_deciles` and
:func:`interpurchase_times` are explicitly per customer.

Each table is written once, in SQL run by DuckDB over the log's numbered customer-days
(:mod:`cbcv.audit.engine`); :func:`customer_base_audit` computes them all in one pass over a log
of any size, and each single-table function computes one.

Subscriptions (contractual businesses) have their own audit over accepted spells
(:mod:`cbcv.audit.subscriptions`, :mod:`cbcv.audit.subscription_revenue`, engine
:mod:`cbcv.audit.subscription_base`): cohorts, the layer cake, survival and churn by tenure,
revenue retention (NRR, GRR), revenue per subscriber and concentration;
:func:`subscription_audit` computes them all.

May import: data and core; never models or any layer above.
"""

from cbcv.audit.cohorts import c3_table, c3_wide, cohort_table
from cbcv.audit.concentration import Concentration, concentration, top_share, whale_curve
from cbcv.audit.deciles import DecileMigration, customer_deciles, decile_migration, decile_table
from cbcv.audit.interpurchase import (
    interpurchase_histogram,
    interpurchase_summary,
    interpurchase_times,
)
from cbcv.audit.repeat import repeat_rates
from cbcv.audit.subscription_revenue import (
    revenue_concentration,
    revenue_per_subscriber,
    revenue_retention,
    trailing_revenue_retention,
)
from cbcv.audit.subscriptions import (
    SubscriptionAudit,
    churn_by_tenure,
    cohort_sizes,
    layer_cake,
    subscription_audit,
    survival_by_cohort,
)
from cbcv.audit.suite import CustomerBaseAudit, customer_base_audit

__all__ = [
    "Concentration",
    "CustomerBaseAudit",
    "DecileMigration",
    "SubscriptionAudit",
    "c3_table",
    "c3_wide",
    "churn_by_tenure",
    "cohort_sizes",
    "cohort_table",
    "concentration",
    "customer_base_audit",
    "customer_deciles",
    "decile_migration",
    "decile_table",
    "interpurchase_histogram",
    "interpurchase_summary",
    "interpurchase_times",
    "layer_cake",
    "repeat_rates",
    "revenue_concentration",
    "revenue_per_subscriber",
    "revenue_retention",
    "subscription_audit",
    "survival_by_cohort",
    "top_share",
    "trailing_revenue_retention",
    "whale_curve",
]
