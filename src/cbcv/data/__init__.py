"""cbcv.data: what the company's data says, validated — the one SQL pipeline for DuckDB and Spark.

Loading and validation with quarantine (:mod:`~cbcv.data.load`, the row rules of
:mod:`~cbcv.data.rules`, CSV and typed staging, :mod:`~cbcv.data.reconciliation`), customer-days
and summaries (:mod:`~cbcv.data.transactions`, :mod:`~cbcv.data.summary`), subscription spells
and their duration summaries (:mod:`~cbcv.data.subscriptions`,
:mod:`~cbcv.data.subscription_summary`), the Spark engine
running the same SQL (:mod:`~cbcv.data.spark`), bundled and research data sets
(:mod:`~cbcv.data.catalog`, :mod:`~cbcv.data.datasets`, :mod:`~cbcv.data.research_sets`) and
simulation with known parameters (:mod:`~cbcv.data.simulate`). Every query is built once
through :class:`cbcv.data._sql.Dialect` and run over a DataFrame, Arrow table, CSV, Parquet or
DuckDB table.

May import: core only.
"""

from cbcv.core.units import TIME_UNIT_DAYS, unit_days
from cbcv.data.catalog import DATASETS, dataset_path, is_dataset, raw_data_dir
from cbcv.data.datasets import load_dataset
from cbcv.data.load import REJECTION_REASONS, LoadResult, load_transactions
from cbcv.data.reconciliation import Reconciliation, ReturnsSummary
from cbcv.data.subscriptions import (
    SUBSCRIPTION_REJECTION_REASONS,
    SubscriptionLoadResult,
    SubscriptionReconciliation,
    load_subscriptions,
    spells_from_billing_log,
)
from cbcv.data.summary import calibration_holdout, customer_summary
from cbcv.data.transactions import TRANSACTION_COLUMNS, to_daily

__all__ = [
    "DATASETS",
    "REJECTION_REASONS",
    "SUBSCRIPTION_REJECTION_REASONS",
    "TIME_UNIT_DAYS",
    "TRANSACTION_COLUMNS",
    "LoadResult",
    "Reconciliation",
    "ReturnsSummary",
    "SubscriptionLoadResult",
    "SubscriptionReconciliation",
    "calibration_holdout",
    "customer_summary",
    "dataset_path",
    "is_dataset",
    "load_dataset",
    "load_subscriptions",
    "load_transactions",
    "raw_data_dir",
    "spells_from_billing_log",
    "to_daily",
    "unit_days",
]
