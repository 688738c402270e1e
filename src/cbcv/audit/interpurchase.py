"""Inter-purchase times: days between a customer's consecutive purchase days.

Every repeat purchase day (the second, third, ... purchase day of a customer) has an
inter-purchase time, the number of days since the customer's previous purchase day. Because
same-day purchases are merged into one customer-day, times are whole numbers of at least 1.

The histogram and the summary are computed once, from the count of each distinct time
(:func:`histogram_from_counts`, :func:`summary_from_counts`): the audit counts the times in SQL
(:func:`gap_counts_of`, one row per distinct time whatever the log's size), and
:func:`interpurchase_histogram` / :func:`interpurchase_summary` count the rows of a table of
:func:`interpurchase_times`, by group if asked.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike
from cbcv.audit.engine import Sequence, Source, open_sequence, periods
from cbcv.core.errors import DataError

#: Quantiles reported by :func:`interpurchase_summary`.
SUMMARY_QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "repeat_purchases",
    "customers",
    "mean",
    "sd",
    "min",
    "q10",
    "q25",
    "median",
    "q75",
    "q90",
    "max",
)
HISTOGRAM_COLUMNS: tuple[str, ...] = (
    "bin",
    "days_from",
    "days_to",
    "count",
    "share",
    "cumulative_share",
)

#: Repeat purchase days, one row each: the previous day, the gap and the purchase number.
TIMES_SQL = """
SELECT customer_id, CAST(date AS TIMESTAMP) AS date,
       CAST(date - CAST(gap AS INTEGER) AS TIMESTAMP) AS previous_date,
       gap AS days, k AS purchase_number, cohort
FROM seq WHERE k > 1 ORDER BY customer_id, date
"""

#: Repeat purchase days per whole number of days since the previous one.
GAPS_SQL = "SELECT gap AS days, count(*) AS count FROM seq WHERE k > 1 GROUP BY gap ORDER BY gap"


def interpurchase_times(
    transactions: Source,
    *,
    cohort_period: str | None = "quarter",
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """One row per repeat purchase day (explicitly per customer: not for the report).

    ``transactions`` is a DataFrame, an Arrow table or a Parquet file or glob. Returns
    ``customer_id`` (text), ``date``, ``previous_date``, ``days`` (int, >= 1),
    ``purchase_number`` (2 for the first repeat purchase, 3 for the next, ...) and, unless
    ``cohort_period`` is ``None``, ``cohort`` (period of the customer's first purchase). Sorted by
    customer and date; empty (with these columns) when nobody bought twice.
    """
    with open_sequence(
        transactions,
        cohort_period=cohort_period,
        as_of=as_of,
        zero_amount_purchases=zero_amount_purchases,
    ) as seq:
        out = seq.df(TIMES_SQL)
        cfreq = seq.cfreq
    for col in ("date", "previous_date"):
        out[col] = out[col].astype("datetime64[ns]")
    for col in ("days", "purchase_number"):
        out[col] = out[col].astype("int64")
    if cohort_period is None:
        return out.drop(columns="cohort")
    out["cohort"] = periods(out["cohort"], cfreq)
    return out


def gap_counts_of(seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Distinct inter-purchase times in days (ascending) in an open :class:`Sequence`, and how
    many repeat purchases have each."""
    gaps = seq.df(GAPS_SQL)
    return gaps["days"].to_numpy(dtype="int64"), gaps["count"].to_numpy(dtype="int64")


def histogram_from_counts(
    values: np.ndarray,
    counts: np.ndarray,
    *,
    bin_days: int = 7,
    max_days: int | None = None,
    n_closed: int | None = None,
    open_bin: bool | None = None,
) -> pd.DataFrame:
    """The histogram of :func:`interpurchase_histogram` from the distinct times ``values``
    (ascending, >= 1) and their ``counts``. ``n_closed`` (the number of closed bins) and
    ``open_bin`` (whether the bin above ``max_days`` is kept) fix the bins, to share them across
    groups; by default enough closed bins for the largest time (``max_days / bin_days`` with
    ``max_days``) and an open bin when a time exceeds ``max_days``."""
    _check_bins(bin_days, max_days)
    values = np.asarray(values, dtype="int64")
    counts = np.asarray(counts, dtype="int64")
    bins = (values - 1) // bin_days
    if n_closed is None:
        n_closed = _closed_bins(values, bin_days, max_days)
    if open_bin is None:
        open_bin = max_days is not None and bool((values > max_days).any())
    has_open = max_days is not None and open_bin
    n_bins = n_closed + (1 if has_open else 0)
    per_bin = np.zeros(n_bins, dtype="int64")
    np.add.at(per_bin, np.minimum(bins, n_closed), counts)
    k = np.arange(n_bins, dtype="int64")
    total = per_bin.sum()
    out = pd.DataFrame(
        {
            "bin": k,
            "days_from": k * bin_days + 1,
            "days_to": np.where(k < n_closed, (k + 1) * bin_days, np.nan),
            "count": per_bin,
            "share": per_bin / total if total else np.full(n_bins, np.nan),
        }
    )
    out["cumulative_share"] = out["share"].cumsum()
    return out


def summary_from_counts(
    values: np.ndarray, counts: np.ndarray, customers: float
) -> dict[str, float]:
    """One row of :func:`interpurchase_summary` from the distinct times ``values`` (ascending)
    and their ``counts``; ``customers`` is the number of customers with a repeat purchase.
    Quantiles are numpy's default (``linear``) of the expanded sample, with numpy's arithmetic
    step for step; mean and variance are exact sums over the counts."""
    values = np.asarray(values, dtype="int64")
    counts = np.asarray(counts, dtype="int64")
    n = int(counts.sum())
    nan = float("nan")
    row: dict[str, float] = dict.fromkeys(SUMMARY_COLUMNS, nan)
    row.update(repeat_purchases=n, customers=customers)
    if n == 0:
        return row
    mean = int(np.dot(values, counts)) / n
    cumulative = np.cumsum(counts)
    q = [_quantile(values, cumulative, float(p)) for p in SUMMARY_QUANTILES]
    row.update(
        {
            "mean": mean,
            "sd": math.sqrt(float(np.dot(counts, (values - mean) ** 2)) / (n - 1))
            if n > 1
            else nan,
            "min": float(values[0]),
            "q10": q[0],
            "q25": q[1],
            "median": q[2],
            "q75": q[3],
            "q90": q[4],
            "max": float(values[-1]),
        }
    )
    return row


def interpurchase_histogram(
    times: pd.DataFrame,
    *,
    bin_days: int = 7,
    max_days: int | None = None,
    by: str | None = None,
) -> pd.DataFrame:
    """Distribution of inter-purchase times (:func:`interpurchase_times`) in bins of
    ``bin_days`` days.

    Bin k (k = 0, 1, ...) holds times from ``days_from = k * bin_days + 1`` to
    ``days_to = (k + 1) * bin_days`` inclusive (so with weekly bins: 1-7, 8-14, ...). With
    ``max_days`` (a multiple of ``bin_days``) times above it go to one last open bin whose
    ``days_to`` is NaN. Empty bins are kept; every group has the same bins. Columns: ``by`` (if
    given, e.g. ``"cohort"``), ``bin``, ``days_from``, ``days_to``, ``count``, ``share`` and
    ``cumulative_share`` (within the group).
    """
    _check_bins(bin_days, max_days)
    _check_times(times, by)
    days = times["days"].to_numpy(dtype="int64")
    shared = {
        "bin_days": bin_days,
        "max_days": max_days,
        "n_closed": _closed_bins(days, bin_days, max_days),
        "open_bin": max_days is not None and bool((days > max_days).any()),
    }
    tables = []
    for key, part in _groups(times, by):
        values, counts = np.unique(part["days"].to_numpy(dtype="int64"), return_counts=True)
        table = histogram_from_counts(values, counts, **shared)
        if by is not None:
            table.insert(0, by, key)
        tables.append(table)
    if not tables:
        return pd.DataFrame(columns=[c for c in [by] if c] + list(HISTOGRAM_COLUMNS))
    return _restore(pd.concat(tables, ignore_index=True), times, by)


def interpurchase_summary(times: pd.DataFrame, *, by: str | None = None) -> pd.DataFrame:
    """Summary of inter-purchase times (:func:`interpurchase_times`) in days: one row (or one
    per ``by`` group) with ``repeat_purchases``, ``customers`` (with at least one repeat; NaN
    without a ``customer_id`` column), ``mean``, ``sd`` (sample, ddof = 1), ``min``, ``q10``,
    ``q25``, ``median``, ``q75``, ``q90`` and ``max``. Quantiles use linear interpolation
    (numpy's default)."""
    _check_times(times, by)
    rows = []
    for key, part in _groups(times, by):
        values, counts = np.unique(part["days"].to_numpy(dtype="int64"), return_counts=True)
        customers = part["customer_id"].nunique() if "customer_id" in part else float("nan")
        row = summary_from_counts(values, counts, customers)
        rows.append(row if by is None else {by: key, **row})
    return _restore(pd.DataFrame(rows), times, by)


def _quantile(values: np.ndarray, cumulative: np.ndarray, q: float) -> float:
    """``np.quantile(sample, q)`` (linear) of the sorted sample holding ``values[i]``
    ``cumulative[i] - cumulative[i - 1]`` times, with numpy's arithmetic step for step."""
    n = int(cumulative[-1])
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return float(values[-1])
    lo = math.floor(virtual)
    a, b = (float(values[np.searchsorted(cumulative, j, side="right")]) for j in (lo, lo + 1))
    gamma = virtual - lo
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _check_bins(bin_days: int, max_days: int | None) -> None:
    if bin_days < 1:
        raise ValueError(f"bin_days must be >= 1, got {bin_days}")
    if max_days is not None and (max_days < bin_days or max_days % bin_days):
        raise ValueError(f"max_days must be a positive multiple of bin_days, got {max_days}")


def _closed_bins(values: np.ndarray, bin_days: int, max_days: int | None) -> int:
    if max_days is not None:
        return max_days // bin_days
    return int((values.max() - 1) // bin_days) + 1 if values.size else 0


def _check_times(times: pd.DataFrame, by: str | None) -> None:
    if "days" not in times.columns:
        raise DataError("inter-purchase table lacks column 'days' (use interpurchase_times)")
    if by is not None and by not in times.columns:
        raise DataError(f"inter-purchase table lacks column {by!r} to group by")


def _groups(times: pd.DataFrame, by: str | None) -> list[tuple[object, pd.DataFrame]]:
    if by is None:
        return [(None, times)]
    return list(times.groupby(by, sort=True))


def _restore(out: pd.DataFrame, times: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """``out`` with the ``by`` column in the dtype it had in ``times`` (periods stay periods)."""
    if by is not None and not out.empty and isinstance(times[by].dtype, pd.PeriodDtype):
        out[by] = out[by].astype(times[by].dtype)
    return out
