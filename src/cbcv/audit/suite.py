"""All audit tables in one call, for the CLI (``cbcv audit``) and the audit notebook."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cbcv.audit._common import DateLike, Window, as_day, customer_days, in_window, window_label
from cbcv.audit.cohorts import c3_table, cohort_table
from cbcv.audit.concentration import Concentration, concentration_from_spend, whale_curve_from_spend
from cbcv.audit.deciles import DecileMigration, decile_migration, decile_table
from cbcv.audit.interpurchase import (
    interpurchase_histogram,
    interpurchase_summary,
    interpurchase_times,
)
from cbcv.audit.repeat import repeat_rates


@dataclass(frozen=True)
class CustomerBaseAudit:
    """The audit of one transaction log; no table holds customer ids.

    ``cohorts`` (:func:`cohort_table`), ``c3`` (:func:`c3_table`), ``repeat``
    (:func:`repeat_rates`), ``deciles`` (:func:`decile_table` of ``window``), ``whale`` and
    ``concentration`` (of ``window``), ``interpurchase`` and ``interpurchase_stats``
    (histogram and summary), ``migration`` (:func:`decile_migration`, when two windows were given).
    """

    cohorts: pd.DataFrame
    c3: pd.DataFrame
    repeat: pd.DataFrame
    deciles: pd.DataFrame
    whale: pd.DataFrame
    concentration: Concentration
    interpurchase: pd.DataFrame
    interpurchase_stats: pd.DataFrame
    migration: DecileMigration | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by a file-friendly name (periods as strings), ready for ``to_csv``."""
        out = {
            "cohorts": self.cohorts,
            "c3": self.c3,
            "repeat_rates": self.repeat,
            "deciles": self.deciles,
            "whale_curve": self.whale,
            "concentration": pd.DataFrame([self.concentration.to_dict()]),
            "interpurchase_histogram": self.interpurchase,
            "interpurchase_summary": self.interpurchase_stats,
        }
        if self.migration is not None:
            out["decile_migration_counts"] = self.migration.counts.reset_index()
            out["decile_migration_shares"] = self.migration.row_shares.reset_index()
        return {name: _periods_as_text(table) for name, table in out.items()}


def _periods_as_text(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for col in table.columns:
        if isinstance(table[col].dtype, pd.PeriodDtype):
            table[col] = table[col].astype(str)
    return table


def customer_base_audit(
    transactions: pd.DataFrame,
    *,
    period: str = "quarter",
    cohort_period: str | None = None,
    window: Window = None,
    migration: tuple[Window, Window] | None = None,
    bin_days: int = 7,
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> CustomerBaseAudit:
    """Run every audit table on ``transactions``.

    ``period`` is the calendar period of the C3; ``cohort_period`` defines cohorts and the unit
    of cohort age in the repeat-buying table (default ``period``); ``window`` is the period of the decile analysis and the whale
    curve (default: the whole log up to ``as_of``); ``migration`` a pair of windows for the
    decile migration (skipped when ``None``); ``bin_days`` the width of the inter-purchase bins;
    ``zero_amount_purchases`` the purchase rule of :func:`cbcv.data.transactions.daily_sql`.
    """
    rule = {"zero_amount_purchases": zero_amount_purchases}
    cohort_period = cohort_period or period
    if as_of is not None:
        customer_days(transactions, as_of=as_of, **rule)  # the clear error for a log with nothing to audit
        stop = as_day(as_of, "as_of")
        transactions = transactions[transactions["date"] <= stop]
    spend = (
        in_window(customer_days(transactions, **rule), window)
        .groupby("customer_id", sort=False)["amount"]
        .sum()
        .to_numpy(dtype=float)
    )
    times = interpurchase_times(transactions, cohort_period=cohort_period, **rule)
    return CustomerBaseAudit(
        cohorts=cohort_table(transactions, cohort_period, **rule),
        c3=c3_table(transactions, period, cohort_period=cohort_period, **rule),
        repeat=repeat_rates(transactions, cohort_period, **rule),
        deciles=decile_table(transactions, window, **rule),
        whale=whale_curve_from_spend(spend),
        concentration=concentration_from_spend(spend, window=window_label(window)),
        interpurchase=interpurchase_histogram(times, bin_days=bin_days),
        interpurchase_stats=interpurchase_summary(times),
        migration=decile_migration(transactions, *migration, **rule) if migration is not None else None,
    )
