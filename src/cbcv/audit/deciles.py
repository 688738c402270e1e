"""Decile analysis and decile migration (Fader, Hardie & Ross 2022, *The Customer-Base Audit*,
ch. 3 "How different are your customers?" and ch. 4 "What changed since last period?").

The buyers of a window (customers with at least one purchase day in it) are ranked by their net
spend in the window and cut into ten groups of equal count; decile 1 holds the top spenders.

Ranking and ties
    Buyers are sorted by spend descending; ties in spend are broken by the number of purchase
    days in the window (more first), then by ``customer_id`` ascending (string order). The order
    is therefore total and reproducible, so the same log always gives the same deciles; tied
    customers can fall on both sides of a decile boundary. Spends are compared rounded to
    :data:`SPEND_RESOLUTION` (a millionth of the currency unit), so that spends that are equal
    but for floating-point rounding (which depends on the order of summation: pandas version,
    DuckDB's plan) tie, and the ranking is the same in every engine
    (:mod:`cbcv.audit.sql` ranks with the same key).

Equal-count groups
    With n buyers and 0-based rank r, the decile is ``floor(10 r / n) + 1``. Group sizes are
    ``floor(n / 10)`` or ``ceil(n / 10)`` (exactly n / 10 when 10 divides n). With fewer than ten
    buyers some deciles are empty; their rows are kept with zeros (means are NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbcv.audit._common import Window, customer_days, in_window, window_label
from cbcv.core.errors import DataError

N_DECILES = 10
#: Spends are compared in units of ``1 / SPEND_RESOLUTION`` when ranking (key
#: ``floor(spend * SPEND_RESOLUTION + 0.5)``, the same float arithmetic in pandas and SQL).
SPEND_RESOLUTION = 1e6
INACTIVE = "inactive"

DECILE_COLUMNS: tuple[str, ...] = (
    "decile",
    "customers",
    "customer_share",
    "revenue",
    "revenue_share",
    "transactions",
    "transaction_share",
    "mean_spend",
    "mean_transactions",
    "min_spend",
    "max_spend",
)


def customer_deciles(
    transactions: pd.DataFrame, window: Window = None, *, zero_amount_purchases: bool = False
) -> pd.DataFrame:
    """Per-customer spend, transactions, rank and decile among the buyers of ``window``.

    ``window`` is a pandas period string (``"1997"``, ``"1997Q1"``), a ``pd.Period``, an
    inclusive ``(start, end)`` pair of dates, or ``None`` for the whole log. Returns
    ``customer_id``, ``spend`` (net), ``transactions`` (purchase days), ``rank`` (1 = top) and
    ``decile`` (1 = top), sorted by rank. Raises :class:`DataError` if nobody bought in the window.
    """
    days = in_window(customer_days(transactions, zero_amount_purchases=zero_amount_purchases), window)
    if days.empty:
        raise DataError(f"no purchases in {window_label(window)}: nothing to rank into deciles")
    per = (
        days.groupby("customer_id", sort=False)
        .agg(spend=("amount", "sum"), transactions=("date", "size"))
        .reset_index()
    )
    per["key"] = np.floor(per["spend"].to_numpy(dtype=float) * SPEND_RESOLUTION + 0.5)
    per = per.sort_values(
        ["key", "transactions", "customer_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    n = len(per)
    rank = np.arange(n, dtype="int64")
    per["rank"] = rank + 1
    per["decile"] = (N_DECILES * rank) // n + 1
    per["transactions"] = per["transactions"].astype("int64")
    return per[["customer_id", "spend", "transactions", "rank", "decile"]]


def decile_table(
    transactions: pd.DataFrame, window: Window = None, *, zero_amount_purchases: bool = False
) -> pd.DataFrame:
    """Ten rows, decile 1 (top spenders) to 10, for the buyers of ``window``.

    Columns: ``decile``, ``customers``, ``customer_share``, ``revenue`` (net spend),
    ``revenue_share``, ``transactions`` (purchase days), ``transaction_share``, ``mean_spend``
    and ``mean_transactions`` (per customer of the decile), ``min_spend`` and ``max_spend``.
    Shares are fractions (0-1) of the window's totals and sum to 1 over the deciles.
    """
    return decile_summary(customer_deciles(transactions, window, zero_amount_purchases=zero_amount_purchases))


def decile_summary(per_customer: pd.DataFrame) -> pd.DataFrame:
    """Aggregate :func:`customer_deciles` output into the ten-row decile table."""
    grouped = per_customer.groupby("decile").agg(
        customers=("spend", "size"),
        revenue=("spend", "sum"),
        transactions=("transactions", "sum"),
        min_spend=("spend", "min"),
        max_spend=("spend", "max"),
    )
    return decile_shares(grouped)


def decile_shares(grouped: pd.DataFrame) -> pd.DataFrame:
    """The ten-row decile table from per-decile ``customers``, ``revenue``, ``transactions``,
    ``min_spend`` and ``max_spend`` (indexed by decile; missing deciles become empty rows):
    shares of the totals and means per customer added (used by the pandas and the SQL audit)."""
    deciles = pd.Index(np.arange(1, N_DECILES + 1), name="decile")
    out = grouped.reindex(deciles)
    for col in ("customers", "transactions"):
        out[col] = out[col].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0)
    out["customer_share"] = out["customers"] / out["customers"].sum()
    out["revenue_share"] = out["revenue"] / out["revenue"].sum()
    out["transaction_share"] = out["transactions"] / out["transactions"].sum()
    has = out["customers"] > 0
    out["mean_spend"] = (out["revenue"] / out["customers"]).where(has)
    out["mean_transactions"] = (out["transactions"] / out["customers"]).where(has)
    return out.reset_index()[list(DECILE_COLUMNS)]


@dataclass(frozen=True)
class DecileMigration:
    """Where the buyers of each decile in period 1 are in period 2.

    ``counts``: index ``decile_1`` (1-10), columns ``"1"`` ... ``"10"`` and ``"inactive"`` (no
    purchase in period 2), customer counts. ``row_shares``: the same divided by the row total
    (each non-empty row sums to 1). Period-2 deciles rank all period-2 buyers, including those
    who did not buy in period 1. ``period_1`` and ``period_2`` label the windows.
    """

    counts: pd.DataFrame
    row_shares: pd.DataFrame
    period_1: str
    period_2: str


def decile_migration(
    transactions: pd.DataFrame, period_1: Window, period_2: Window, *, zero_amount_purchases: bool = False
) -> DecileMigration:
    """Cross-tabulate period-1 deciles (rows) against period-2 deciles or inactivity (columns).

    Each window is a pandas period string, a ``pd.Period`` or an inclusive ``(start, end)`` pair;
    deciles in each are those of :func:`customer_deciles` (top = 1).
    """
    first = customer_deciles(transactions, period_1, zero_amount_purchases=zero_amount_purchases)[["customer_id", "decile"]]
    try:
        second = customer_deciles(transactions, period_2, zero_amount_purchases=zero_amount_purchases)[["customer_id", "decile"]]
    except DataError:
        second = pd.DataFrame(
            {"customer_id": pd.Series(dtype=str), "decile": pd.Series(dtype="int64")}
        )
    merged = first.merge(second, on="customer_id", how="left", suffixes=("_1", "_2"))
    columns = [str(d) for d in range(1, N_DECILES + 1)] + [INACTIVE]
    merged["decile_2"] = [
        INACTIVE if pd.isna(d) else str(int(d)) for d in merged["decile_2"].to_numpy()
    ]
    counts = pd.crosstab(merged["decile_1"], merged["decile_2"])
    counts = counts.reindex(
        index=pd.Index(np.arange(1, N_DECILES + 1), name="decile_1"), columns=columns, fill_value=0
    ).astype("int64")
    counts.columns.name = "decile_2"
    totals = counts.sum(axis=1).replace(0, np.nan)
    row_shares = counts.div(totals, axis=0)
    return DecileMigration(
        counts=counts,
        row_shares=row_shares,
        period_1=window_label(period_1),
        period_2=window_label(period_2),
    )
