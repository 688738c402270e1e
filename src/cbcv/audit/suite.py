"""The audit of one log, all tables together: :func:`customer_base_audit` computes them, in one
scratch DuckDB over one numbered log (:mod:`cbcv.audit.engine`), for the CLI, the pipeline and
the audit notebook.

What comes back to pandas
    Only aggregates: cohorts, cohorts × periods, ten deciles, 10 × 11 migration cells, one row
    per distinct inter-purchase time in days (for the histogram and the exact quantiles) and
    the calendar (days spanned). The one exception is the whale curve, defined with a point per
    buyer of the window: by default it comes back whole (``n + 1`` rows, no customer ids: 16
    bytes per buyer from DuckDB, 24 in the table); ``whale_points`` keeps only that many points
    of it, chosen evenly in customers. The top-1/10/20% shares are read off the curve's exact
    points around each fraction either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cbcv.audit._common import DateLike, Window, periods_as_text, resolve_window
from cbcv.audit.cohorts import c3_of, cohorts_of
from cbcv.audit.concentration import Concentration, concentration_of
from cbcv.audit.deciles import DecileMigration, deciles_of, migration_of
from cbcv.audit.engine import Source, open_sequence
from cbcv.audit.interpurchase import gap_counts_of, histogram_from_counts, summary_from_counts
from cbcv.audit.repeat import repeat_of


@dataclass(frozen=True)
class CustomerBaseAudit:
    """The audit of one transaction log; no table holds customer ids.

    ``cohorts`` (:func:`~cbcv.audit.cohort_table`), ``c3`` (:func:`~cbcv.audit.c3_table`),
    ``repeat`` (:func:`~cbcv.audit.repeat_rates`), ``deciles``
    (:func:`~cbcv.audit.decile_table` of ``window``), ``whale`` and ``concentration`` (of
    ``window``), ``interpurchase`` and ``interpurchase_stats`` (histogram and summary),
    ``migration`` (:func:`~cbcv.audit.decile_migration`, when two windows were given).
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
        return {name: periods_as_text(table) for name, table in out.items()}


def customer_base_audit(
    source: Source,
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
    """The customer-base audit of the transaction log ``source``, whatever its size or where it
    is: every table is a query of one numbered log (:func:`cbcv.audit.engine.open_sequence`).

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
        the purchase rule of :func:`cbcv.data.transactions.daily_sql`. Any single pandas period
        works (``month``, ``quarter``, ``year``, ``week``, ``day``, ``Q-JUN`` ...); a multiple
        such as ``2Q`` is a :class:`ConfigError`.
    whale_points
        ``None`` (default) returns the whole whale curve, one row per buyer of ``window`` plus
        the origin; a number keeps that many points plus the origin, evenly spaced in customers
        (all exact points of the same curve).
    memory_limit, threads
        DuckDB's memory cap (e.g. ``"4GB"``; beyond it DuckDB spills to disk) and worker
        threads; ``None`` keeps DuckDB's defaults.

    Returns
    -------
    :class:`CustomerBaseAudit`. Raises :class:`DataError` for an unreadable file, a missing
    column, a log without purchase days or a decile window (or first migration window) without
    buyers.
    """
    resolve_window(window)  # a bad window or migration pair fails before the log is read
    for each in migration or ():
        resolve_window(each)
    if bin_days < 1:
        raise ValueError(f"bin_days must be >= 1, got {bin_days}")
    if whale_points is not None and whale_points < 1:
        raise ValueError(f"whale_points must be >= 1, got {whale_points}")
    with open_sequence(
        source,
        period=period,
        cohort_period=cohort_period,
        as_of=as_of,
        zero_amount_purchases=zero_amount_purchases,
        memory_limit=memory_limit,
        threads=threads,
    ) as seq:
        cohorts = cohorts_of(seq)
        whale, concentration = concentration_of(seq, window, whale_points)
        values, counts = gap_counts_of(seq)
        return CustomerBaseAudit(
            cohorts=cohorts,
            c3=c3_of(seq),
            repeat=repeat_of(seq),
            deciles=deciles_of(seq, window),
            whale=whale,
            concentration=concentration,
            interpurchase=histogram_from_counts(values, counts, bin_days=bin_days),
            interpurchase_stats=pd.DataFrame(
                [summary_from_counts(values, counts, int(cohorts["repeat_customers"].sum()))]
            ),
            migration=migration_of(seq, *migration) if migration is not None else None,
        )
