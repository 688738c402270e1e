"""Revenue concentration: the whale curve and the Gini coefficient (Fader, Hardie & Ross 2022,
*The Customer-Base Audit*, ch. 3).

The *whale curve* ranks the buyers of a window from the best (highest net spend) down and plots
the cumulative share of revenue against the cumulative share of customers; it is the Lorenz
curve L read from the top: W(p) = 1 - L(1 - p).

Negative spend
    Every purchase day nets to more than zero (:mod:`cbcv.data.transactions`; zero with
    ``zero_amount_purchases``), so a buyer's spend over a window is not negative. Spends are
    nevertheless clipped at 0 before the curve, the top shares and the Gini coefficient are
    computed, so all three describe the distribution of non-negative revenue over buyers and the
    curve rises monotonically to 1 whatever the purchase rule; ``Concentration.net_revenue``
    keeps the unclipped total and ``negative_customers`` counts the clipped buyers.

Gini coefficient
    With the n buyers' clipped spends sorted ascending, x_(1) <= ... <= x_(n), and S = sum x_i,

        G = 2 * sum_i i * x_(i) / (n * S) - (n + 1) / n,

    which equals sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)) and 1 - 2 * (area under the
    piecewise-linear Lorenz curve). It is 0 when everyone spends the same and (n - 1) / n when
    one buyer has all the revenue; spends 1, 2, ..., n give (n - 1) / (3 n). No small-sample
    correction is applied. It is NaN when S = 0. In SQL it is one pass over the ranked buyers
    (rank r from the top, so i = n - r).

Both are computed in SQL over the buyers ranked once per window
(:meth:`cbcv.audit.engine.Sequence.ranked`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from cbcv.audit._common import Window, window_label
from cbcv.audit.engine import Sequence, Source, open_sequence

#: Customer shares (from the top) whose revenue share the summary reports.
TOP_SHARES: tuple[float, ...] = (0.01, 0.10, 0.20)

#: Totals of a ranked table; ``weighted`` is sum_i i x_(i) over clipped spends sorted ascending.
TOTALS_SQL = """
SELECT count(*) AS n, fsum(clipped) AS revenue, fsum(spend) AS net_revenue,
       count(*) FILTER (WHERE spend < 0) AS negative, fsum((n - r) * clipped) AS weighted
FROM {table}
"""

#: Cumulative clipped revenue of the ``k`` best buyers of a ranked table, k = 1..n, or only the
#: ``k`` that the optional ``{keep}`` clause keeps.
WHALE_SQL = """
SELECT k, cum FROM (
    SELECT r + 1 AS k,
           fsum(clipped) OVER (ORDER BY r ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
    FROM {table}
) {keep} ORDER BY k
"""


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


def top_share(curve: pd.DataFrame, fraction: float) -> float:
    """Revenue share of the top ``fraction`` of customers, linearly interpolated on ``curve``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    return float(np.interp(fraction, curve["customer_share"], curve["revenue_share"]))


def whale_curve(
    transactions: Source,
    window: Window = None,
    *,
    whale_points: int | None = None,
    zero_amount_purchases: bool = False,
) -> pd.DataFrame:
    """Whale curve of the buyers of ``window``, from the top.

    Returns ``customers`` (k = 0..n best buyers), ``customer_share`` (k / n) and
    ``revenue_share`` (their share of clipped revenue; NaN if the total is 0), from (0, 0) to
    (1, 1): ``n + 1`` rows, or with ``whale_points`` that many points plus the origin, evenly
    spaced in k (exact points of the same curve). ``transactions`` is a DataFrame, an Arrow
    table or a Parquet file or glob. :class:`DataError` if nobody bought in ``window``.
    """
    with open_sequence(transactions, zero_amount_purchases=zero_amount_purchases) as seq:
        return concentration_of(seq, window, whale_points)[0]


def concentration(
    transactions: Source, window: Window = None, *, zero_amount_purchases: bool = False
) -> Concentration:
    """Top-1/10/20% revenue shares and the Gini coefficient of the buyers of ``window``."""
    with open_sequence(transactions, zero_amount_purchases=zero_amount_purchases) as seq:
        return concentration_of(seq, window, whale_points=1)[1]


def concentration_of(
    seq: Sequence, window: Window = None, whale_points: int | None = None
) -> tuple[pd.DataFrame, Concentration]:
    """The whale curve (:func:`whale_curve`, thinned to ``whale_points``) and
    :class:`Concentration` of the buyers of ``window`` in an open :class:`Sequence`."""
    if whale_points is not None and whale_points < 1:
        raise ValueError(f"whale_points must be >= 1, got {whale_points}")
    table = seq.ranked(window)
    n, revenue, net, negative, weighted = seq.one(TOTALS_SQL.format(table=table))
    ks = _whale_ks(n, whale_points)
    keep = ""
    if ks is not None:
        seq.con.register("whale_ks", pd.DataFrame({"k": ks[0]}))
        keep = "WHERE k IN (SELECT k FROM whale_ks)"
    points = seq.df(WHALE_SQL.format(table=table, keep=keep))
    if ks is not None:
        seq.con.unregister("whale_ks")
    k = np.concatenate([[0], points["k"].to_numpy(dtype="int64")])
    cum = np.concatenate([[0.0], points["cum"].to_numpy(dtype=float)])
    curve = pd.DataFrame(
        {
            "customers": k,
            "customer_share": k.astype(float) / max(n, 1),
            "revenue_share": cum / revenue if revenue > 0 else np.full(k.size, np.nan),
        }
    )
    gini = 2.0 * weighted / (n * revenue) - (n + 1.0) / n if revenue > 0 else float("nan")
    tops = [top_share(curve, f) for f in TOP_SHARES]
    if ks is not None:
        curve = curve[curve["customers"].isin(ks[1])].reset_index(drop=True)
    summary = Concentration(
        window=window_label(window),
        customers=int(n),
        revenue=float(revenue),
        net_revenue=float(net),
        negative_customers=int(negative),
        top_1pct=tops[0],
        top_10pct=tops[1],
        top_20pct=tops[2],
        gini=float(gini),
    )
    return curve, summary


def _whale_ks(n: int, whale_points: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``None`` for the whole whale curve, else the customer counts ``k`` to fetch and those to
    keep: ``whale_points + 1`` evenly spaced, plus (fetched only) the points around each
    top-share fraction, so that :func:`top_share` interpolates on its exact segment."""
    if whale_points is None or whale_points >= n:
        return None
    kept = np.unique(np.rint(np.linspace(0, n, whale_points + 1)).astype("int64"))
    around = [math.floor(f * n) + d for f in TOP_SHARES for d in (-1, 0, 1, 2)]
    return np.unique(np.clip(np.concatenate([kept, around]), 0, n)), kept
