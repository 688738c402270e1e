"""cbcv.data: loading and validating transaction logs, bundled data sets, customer summaries."""

from cbcv.core.units import TIME_UNIT_DAYS, unit_days
from cbcv.data.catalog import DATASETS, dataset_path, is_dataset, raw_data_dir
from cbcv.data.datasets import load_dataset
from cbcv.data.load import REJECTION_REASONS, LoadResult, load_transactions
from cbcv.data.reconciliation import Reconciliation, ReturnsSummary
from cbcv.data.summary import calibration_holdout, customer_summary
from cbcv.data.transactions import TRANSACTION_COLUMNS, to_daily

__all__ = [
    "DATASETS",
    "REJECTION_REASONS",
    "TIME_UNIT_DAYS",
    "TRANSACTION_COLUMNS",
    "LoadResult",
    "Reconciliation",
    "ReturnsSummary",
    "calibration_holdout",
    "customer_summary",
    "dataset_path",
    "is_dataset",
    "load_dataset",
    "load_transactions",
    "raw_data_dir",
    "to_daily",
    "unit_days",
]
