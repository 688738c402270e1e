"""Revenue concentration: the whale curve and the Gini coefficient (Fader, Hardie & Ross 2022,
*The Customer-Base Audit*, ch. 3).

The *whale curve* ranks the buyers of a window from the best (highest net spend) down and plots
the cumulative share of revenue against the cumulative share of customers; it is the Lorenz
curve L read from the top: W(p) = 1 - L(1 - p).

Negative spend
    Every purchase day nets to more than zero (:mod:`cbcv.data.transactions`), so a buyer's
    spend over a window computed from customer-days is positive. Spend handed in directly
    (:func:`whale_curve_from_spend`, :func:`concentration_from_spend`) may still be negative:
    it is clipped at 0 before the curve, the top shares and the Gini coefficient are computed, so
    all three describe the distribution of non-negative revenue over buyers and the curve rises
    monotonically to 1. ``Concentration.net_revenue`` keeps the unclipped total and
    ``negative_customers`` counts the clipped buyers.

Gini coefficient
    With the n buyers' clipped spends sorted ascending, x_(1) <= ... <= x_(n), and S = sum x_i,

        G = 2 * sum_i i * x_(i) / (n * S) - (n + 1) / n,

    which equals sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)) and 1 - 2 * (area under the
    piecewise-linear Lorenz curve). It is 0 when everyone spends the same and (n - 1) / n when
    one buyer has all the revenue; spends 1, 2, ..., n give (n - 1) / (3 n). No small-sample
    correction is applied. It is NaN when S = 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from cbcv.audit._common import Window, customer_days, in_window, window_label
from cbcv.core.errors import DataError

#: Customer shares (from the top) whose revenue share the summary reports.
TOP_SHARES: tuple[float, ...] = (0.01, 0.10, 0.20)


@dataclass(frozen=True)
class Concentration:
    """Summary of the whale curve of one window.

    ``top_1pct``, ``top_10pct``, ``top_20pct``: share (0-1) of clipped revenue from the top 1%,
    10% and 20% of buyers, read off the piecewise-linear whale curve (so a fraction of a customer
    counts pro rata: with 10 buyers the top 1% is a tenth of the best one). ``gini``: the Gini
    coefficient of clipped spend over buyers (module docstring).
    """

    window: str
    customers: int
    revenue: float
    net_revenue: float
    negative_customers: int
    top_1pct: float
    top_10pct: float
    top_20pct: float
    gini: float

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain values for JSON."""
        return asdict(self)


def buyer_spend(
    transactions: pd.DataFrame, window: Window = None, *, zero_amount_purchases: bool = False
) -> np.ndarray:
    """Net spend per buyer of ``window`` (customers with a purchase day in it), unsorted."""
    days = in_window(customer_days(transactions, zero_amount_purchases=zero_amount_purchases), window)
    if days.empty:
        raise DataError(f"no purchases in {window_label(window)}: no whale curve to draw")
    return days.groupby("customer_id", sort=False)["amount"].sum().to_numpy(dtype=float)


def gini(values: np.ndarray | pd.Series) -> float:
    """Gini coefficient of non-negative ``values`` (module docstring formula); negative values
    are clipped at 0. NaN for an empty array or a zero total."""
    x = np.sort(np.clip(np.asarray(values, dtype=float), 0.0, None))
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=float)
    return float(2.0 * np.dot(i, x) / (n * total) - (n + 1.0) / n)


def whale_curve_from_spend(spend: np.ndarray | pd.Series) -> pd.DataFrame:
    """Whale curve of per-customer spends (clipped at 0), from the top.

    Returns ``n + 1`` rows: ``customers`` (k = 0..n best customers), ``customer_share`` (k / n)
    and ``revenue_share`` (their share of clipped revenue), starting at (0, 0) and ending at
    (1, 1). ``revenue_share`` is NaN if the total is 0.
    """
    x = np.sort(np.clip(np.asarray(spend, dtype=float), 0.0, None))[::-1]
    n = x.size
    total = x.sum()
    cum = np.concatenate([[0.0], np.cumsum(x)])
    share = cum / total if total > 0 else np.full(n + 1, np.nan)
    return pd.DataFrame(
        {
            "customers": np.arange(n + 1, dtype="int64"),
            "customer_share": np.arange(n + 1, dtype=float) / max(n, 1),
            "revenue_share": share,
        }
    )


def whale_curve(
    transactions: pd.DataFrame, window: Window = None, *, zero_amount_purchases: bool = False
) -> pd.DataFrame:
    """Whale curve of the buyers of ``window`` (see :func:`whale_curve_from_spend`)."""
    return whale_curve_from_spend(buyer_spend(transactions, window, zero_amount_purchases=zero_amount_purchases))


def top_share(curve: pd.DataFrame, fraction: float) -> float:
    """Revenue share of the top ``fraction`` of customers, linearly interpolated on ``curve``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    return float(np.interp(fraction, curve["customer_share"], curve["revenue_share"]))


def concentration(
    transactions: pd.DataFrame, window: Window = None, *, zero_amount_purchases: bool = False
) -> Concentration:
    """Top-1/10/20% revenue shares and the Gini coefficient of the buyers of ``window``."""
    spend = buyer_spend(transactions, window, zero_amount_purchases=zero_amount_purchases)
    return concentration_from_spend(spend, window=window_label(window))


def concentration_from_spend(spend: np.ndarray | pd.Series, *, window: str = "") -> Concentration:
    """:class:`Concentration` of per-customer spends."""
    spend = np.asarray(spend, dtype=float)
    curve = whale_curve_from_spend(spend)
    return Concentration(
        window=window,
        customers=int(spend.size),
        revenue=float(np.clip(spend, 0.0, None).sum()),
        net_revenue=float(spend.sum()),
        negative_customers=int((spend < 0).sum()),
        top_1pct=top_share(curve, TOP_SHARES[0]),
        top_10pct=top_share(curve, TOP_SHARES[1]),
        top_20pct=top_share(curve, TOP_SHARES[2]),
        gini=gini(spend),
    )
