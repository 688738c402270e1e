"""The audit of one log, all tables together (:func:`cbcv.audit.sql.customer_base_audit`
computes it, in SQL, for the CLI, the pipeline and the audit notebook)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cbcv.audit.concentration import Concentration
from cbcv.audit.deciles import DecileMigration


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
