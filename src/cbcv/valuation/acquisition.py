"""Acquisitions as the valuation reads them: new customers per period, from a transaction log
(first purchase days, in SQL) or from the first purchases counted in a summary file, and the
least history an acquisition model is fitted to. The model itself is
:mod:`cbcv.models.acquisition` (re-exported here)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError, DataError
from cbcv.data.summary import purchase_days
from cbcv.data.transactions import TRANSACTION_COLUMNS
from cbcv.models.acquisition import AcquisitionModel, compare_holdout
from cbcv.models.acquisition_terms import PERIOD_FREQ, AcquisitionForecast, Frequency, MarketSize

__all__ = ["MIN_ACQUISITION_PERIODS", "AcquisitionForecast", "AcquisitionModel", "MarketSize",
           "acquisitions_from_first_purchases", "acquisitions_from_transactions", "compare_holdout"]

#: Periods with new customers needed before an acquisition model is fitted; with fewer, future
#: customers are valued at zero and the report says why.
MIN_ACQUISITION_PERIODS = 8


def active_periods(history: pd.DataFrame) -> int:
    """Periods of an acquisition history with new customers (an acquisition model is fitted
    from :data:`MIN_ACQUISITION_PERIODS` of them)."""
    return int((history["new_customers"] > 0).sum())

# --------------------------------------------------------------------------------------------
# Acquisition history from a transaction log
# --------------------------------------------------------------------------------------------
def acquisitions_from_transactions(
    transactions: pd.DataFrame,
    *,
    freq: Frequency = "quarter",
    end: Any = None,
    complete_periods_only: bool = True,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """New customers per period: customers whose first purchase falls in the period.

    ``transactions`` follows the transaction contract (``customer_id``, ``date``, ``amount``);
    purchases are customer-days with returns netted and days netting to zero or less dropped
    (:func:`cbcv.data.summary.purchase_days`, in SQL), so a customer whose first row is a return is
    acquired at their first real purchase. Periods run from the first acquisition to ``end``
    (default: the last transaction date), periods without acquisitions included with 0. When
    ``complete_periods_only``, a last period that ``end`` cuts short is dropped (its count would
    be partial). Returns ``period`` (pandas Period of ``freq``) and ``new_customers`` (int).
    """
    if freq not in PERIOD_FREQ:
        raise ConfigError(f"acquisition: freq must be one of {list(PERIOD_FREQ)}, got {freq!r}")
    missing = [c for c in TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise DataError(
            f"acquisition: transactions lack column(s) {missing}; expected {list(TRANSACTION_COLUMNS)}"
        )
    if not len(transactions):
        raise DataError("acquisition: the transactions hold no purchase")
    last_date = (
        pd.Timestamp(end)
        if end is not None
        else pd.Timestamp(transactions["date"].max()).normalize()
    )
    try:  # first purchase days in SQL (the purchase rule of cbcv.data.transactions.daily_sql)
        days = purchase_days(transactions, calibration_end=last_date.date(),
                             zero_amount_purchases=zero_amount_purchases)
    except DataError:
        raise DataError("acquisition: the transactions hold no purchase") from None
    first = days.loc[days["new_customers"] > 0].set_index("date")["new_customers"]
    return acquisitions_from_first_purchases(
        first, freq=freq, end=last_date, complete_periods_only=complete_periods_only
    )


def acquisitions_from_first_purchases(
    first: pd.Series, *, freq: Frequency = "quarter", end: Any, complete_periods_only: bool = True
) -> pd.DataFrame:
    """New customers per period from first-purchase dates: ``first`` maps each date (its index)
    to the customers who first bought that day, as counted out of core from a summary file
    (:func:`cbcv.data.summary_files.summary_counts` on ``first_purchase``). Periods run from the first
    acquisition to ``end``, as :func:`acquisitions_from_transactions`."""
    if freq not in PERIOD_FREQ:
        raise ConfigError(f"acquisition: freq must be one of {list(PERIOD_FREQ)}, got {freq!r}")
    code = PERIOD_FREQ[freq]
    last_date = pd.Timestamp(end).normalize()
    dates = pd.to_datetime(pd.Series(first.index, dtype="datetime64[ns]"))
    n = pd.Series(np.asarray(first, dtype=np.int64), index=dates.to_numpy())
    n = n[n.index <= last_date]
    if n.sum() == 0:
        raise DataError(f"acquisition: no customer acquired on or before {last_date.date()}")
    counts = n.groupby(n.index.to_period(code)).sum()
    last_period = last_date.to_period(code)
    if complete_periods_only and last_date < last_period.end_time.normalize():
        last_period = last_period - 1
    start_period = counts.index.min()
    if last_period < start_period:
        raise DataError(
            f"acquisition: no complete {freq} between the first acquisition and {last_date.date()}"
        )
    index = pd.period_range(start_period, last_period, freq=code)
    out = counts.reindex(index, fill_value=0).astype(np.int64)
    return pd.DataFrame({"period": index, "new_customers": out.to_numpy()})
