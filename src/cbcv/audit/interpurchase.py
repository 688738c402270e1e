"""Inter-purchase times: days between a customer's consecutive purchase days.

Every repeat purchase day (the second, third, ... purchase day of a customer) has an
inter-purchase time, the number of days since the customer's previous purchase day. Because
same-day purchases are merged into one customer-day, times are whole numbers of at least 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike, customer_days, resolve_freq, with_cohorts
from cbcv.core.errors import DataError

#: Quantiles reported by :func:`interpurchase_summary`.
SUMMARY_QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)


def interpurchase_times(
    transactions: pd.DataFrame,
    *,
    cohort_period: str | None = "quarter",
    as_of: DateLike | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """One row per repeat purchase day (per customer, explicitly).

    Returns ``customer_id``, ``date``, ``previous_date``, ``days`` (int, >= 1),
    ``purchase_number`` (2 for the first repeat purchase, 3 for the next, ...) and, unless
    ``cohort_period`` is ``None``, ``cohort`` (period of the customer's first purchase). Sorted by
    customer and date; empty (with these columns) when nobody bought twice.
    """
    days = customer_days(transactions, as_of=as_of, zero_amount_purchases=zero_amount_purchases)
    days = days.sort_values(["customer_id", "date"], kind="stable").reset_index(drop=True)
    if cohort_period is not None:
        days = with_cohorts(days, resolve_freq(cohort_period))
    grouped = days.groupby("customer_id", sort=False)
    days["previous_date"] = grouped["date"].shift(1)
    days["purchase_number"] = grouped.cumcount() + 1
    repeat = days[days["previous_date"].notna()].copy()
    repeat["days"] = (repeat["date"] - repeat["previous_date"]).dt.days.astype("int64")
    repeat["purchase_number"] = repeat["purchase_number"].astype("int64")
    columns = ["customer_id", "date", "previous_date", "days", "purchase_number"]
    if cohort_period is not None:
        columns.append("cohort")
    return repeat[columns].reset_index(drop=True)


def _check_times(times: pd.DataFrame, by: str | None) -> None:
    if "days" not in times.columns:
        raise DataError("inter-purchase table lacks column 'days' (use interpurchase_times)")
    if by is not None and by not in times.columns:
        raise DataError(f"inter-purchase table lacks column {by!r} to group by")


def interpurchase_histogram(
    times: pd.DataFrame,
    *,
    bin_days: int = 7,
    max_days: int | None = None,
    by: str | None = None,
) -> pd.DataFrame:
    """Distribution of inter-purchase times in bins of ``bin_days`` days.

    Bin k (k = 0, 1, ...) holds times from ``days_from = k * bin_days + 1`` to
    ``days_to = (k + 1) * bin_days`` inclusive (so with weekly bins: 1-7, 8-14, ...). With
    ``max_days`` (a multiple of ``bin_days``) times above it go to one last open bin whose
    ``days_to`` is NaN. Empty bins are kept. Columns: ``by`` (if given, e.g. ``"cohort"``),
    ``bin``, ``days_from``, ``days_to``, ``count``, ``share`` and ``cumulative_share`` (within the
    group).
    """
    if bin_days < 1:
        raise ValueError(f"bin_days must be >= 1, got {bin_days}")
    if max_days is not None and (max_days < bin_days or max_days % bin_days):
        raise ValueError(f"max_days must be a positive multiple of bin_days, got {max_days}")
    _check_times(times, by)
    days = times["days"].to_numpy(dtype="int64")
    bins = (days - 1) // bin_days
    n_closed = (
        (int(bins.max()) + 1 if bins.size else 0) if max_days is None else max_days // bin_days
    )
    has_open = max_days is not None and bool((days > max_days).any())
    bins = np.minimum(bins, n_closed)
    n_bins = n_closed + (1 if has_open else 0)
    frame = pd.DataFrame({"bin": bins})
    groups = [(None, frame)] if by is None else list(frame.groupby(times[by].to_numpy(), sort=True))
    rows = []
    for key, part in groups:
        counts = np.bincount(part["bin"].to_numpy(dtype="int64"), minlength=n_bins)[:n_bins]
        k = np.arange(n_bins, dtype="int64")
        table = pd.DataFrame(
            {
                "bin": k,
                "days_from": k * bin_days + 1,
                "days_to": np.where(k < n_closed, (k + 1) * bin_days, np.nan),
                "count": counts.astype("int64"),
            }
        )
        total = counts.sum()
        table["share"] = counts / total if total else np.nan
        table["cumulative_share"] = table["share"].cumsum()
        if by is not None:
            table.insert(0, by, key)
        rows.append(table)
    if not rows:
        return pd.DataFrame(
            columns=[c for c in [by] if c]
            + ["bin", "days_from", "days_to", "count", "share", "cumulative_share"]
        )
    out = pd.concat(rows, ignore_index=True)
    if by is not None and isinstance(times[by].dtype, pd.PeriodDtype):
        out[by] = out[by].astype(times[by].dtype)
    return out


def interpurchase_summary(times: pd.DataFrame, *, by: str | None = None) -> pd.DataFrame:
    """Summary of inter-purchase times in days: one row (or one per ``by`` group) with
    ``repeat_purchases``, ``customers`` (with at least one repeat), ``mean``, ``sd`` (sample,
    ddof = 1), ``min``, ``q10``, ``q25``, ``median``, ``q75``, ``q90`` and ``max``.
    Quantiles use linear interpolation (numpy's default)."""
    _check_times(times, by)

    def summarise(part: pd.DataFrame) -> dict[str, float]:
        d = part["days"].to_numpy(dtype=float)
        q = np.quantile(d, SUMMARY_QUANTILES) if d.size else [np.nan] * len(SUMMARY_QUANTILES)
        return {
            "repeat_purchases": int(d.size),
            "customers": int(part["customer_id"].nunique()) if "customer_id" in part else np.nan,
            "mean": float(d.mean()) if d.size else np.nan,
            "sd": float(d.std(ddof=1)) if d.size > 1 else np.nan,
            "min": float(d.min()) if d.size else np.nan,
            "q10": float(q[0]),
            "q25": float(q[1]),
            "median": float(q[2]),
            "q75": float(q[3]),
            "q90": float(q[4]),
            "max": float(d.max()) if d.size else np.nan,
        }

    if by is None:
        return pd.DataFrame([summarise(times)])
    rows = [{by: key, **summarise(part)} for key, part in times.groupby(by, sort=True)]
    out = pd.DataFrame(rows)
    if isinstance(times[by].dtype, pd.PeriodDtype) and not out.empty:
        out[by] = out[by].astype(times[by].dtype)
    return out
