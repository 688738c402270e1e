"""Customer lifetime value of the existing customers, per posterior draw and customer.

Residual CLV of customer ``i`` under draw ``d`` (Fader, Hardie & Lee 2005, "RFM and CLV: Using
Iso-Value Curves for Customer Base Analysis", J. Marketing Research 42(4), eq. 2 and eq. 5)::

    CLV[d, i] = margin[d] * E[Z | x_i, z̄_i; p, q, γ (draw d)] * DERT(δ[d] | x_i, t_x_i, T_i; draw d)

* ``E[Z | ...]``: the gamma-gamma expected spend per transaction, ``p (γ + x z̄) / (p x + q − 1)``
  (:func:`cbcv.predict.expected_spend`);
* ``DERT``: discounted expected residual transactions of the purchase model
  (:func:`cbcv.predict.dert`) at the continuously compounded rate ``δ = log(1 + r) / k`` per
  model time unit (``k`` units a year), already discounted to the end of the calibration period;
* ``margin``: a number or one value per draw (e.g. from :func:`cbcv.valuation.inputs.draw_financials`).

Pairing of the two posteriors: draw ``d`` of the purchase model meets draw ``d`` of the spend
model (both thinned evenly to the same number of draws, the smaller of the two and
``max_draws``). The two models are fitted separately, on likelihoods that share no parameter
(gamma-gamma assumes spend independent of the purchase process), so their posteriors are
independent and pairing by index is an independent pairing: the product carries both
uncertainties. When the discount rate is given per draw, DERT is evaluated at each draw's own δ.

Memory: customers are processed in chunks of at most :data:`CHUNK_CELLS` (draw × customer)
cells; only the per-draw totals, group sums and histogram counts and the per-customer summaries
are kept, unless ``keep_draws`` asks for the full ``(draws, customers)`` array (the default for
inputs up to :data:`KEEP_CELLS` cells). Without stored draws, value deciles and the equity
concentration need the posterior-mean ranking first, so the chunks are evaluated twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cbcv import predict as P
from cbcv.core.discount import continuous_rate
from cbcv.core.draws import N_DECILES, draw_stats, per_draw, summarize_draws
from cbcv.core.errors import CbcvError, DataError
from cbcv.core.units import periods_per_year
from cbcv.models.base import CLVModel

#: (draw × customer) cells evaluated at once.
CHUNK_CELLS = 4_000_000
#: Up to this many cells the full (draws, customers) CLV array is kept by default (~200 MB).
KEEP_CELLS = 25_000_000
#: Bins of the P(alive) histogram.
P_ALIVE_BINS = 10
#: Columns of the summary carried into the per-customer table when present.
ATTRIBUTES = ("customer_id", "cohort", "first_purchase", "x", "t_x", "T", "total_spend", "mean_repeat_spend")


class CLVTables:
    """Tables from per-draw CLV figures, shared by :class:`CustomerCLV` (in memory) and
    :class:`cbcv.clv.scoring.ScoredBase` (out of core). A subclass holds ``total`` ``(draws,)``,
    ``group_draws`` (name → draws × groups DataFrame), ``top_share_draws``, ``p_alive_counts``
    ``(draws × bins)``, ``interval`` and ``n_customers``, and says how many customers each group
    and each P(alive) bin (by posterior mean) holds."""

    total: np.ndarray
    group_draws: dict[str, pd.DataFrame]
    top_share_draws: pd.DataFrame
    p_alive_counts: np.ndarray
    interval: float
    n_customers: int

    def _group_sizes(self, column: str) -> pd.Series:
        raise NotImplementedError

    def _p_alive_by_mean(self) -> np.ndarray:
        raise NotImplementedError

    def mean_clv_histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """Customers by posterior-mean CLV: ``bins`` log-spaced bins (:func:`log_bins`) and the
        customers in each, values outside clipped into the end bins."""
        raise NotImplementedError

    def lorenz(self) -> pd.DataFrame:
        """Cumulative share of customers (ranked by posterior mean CLV, most valuable first),
        ``customer_share``, against their cumulative share of the total posterior mean CLV,
        ``clv_share``, starting at (0, 0)."""
        raise NotImplementedError

    @property
    def n_draws(self) -> int:
        return int(self.total.size)

    def totals(self) -> np.ndarray:
        """Total CLV of the base per draw, ``(draws,)``."""
        return self.total

    def summary(self, interval: float | None = None) -> pd.DataFrame:
        """Total and mean-per-customer CLV: median, mean, low, high."""
        return summarize_draws(
            {"total_clv": self.total, "clv_per_customer": self.total / self.n_customers},
            interval or self.interval,
        )

    def by(self, column: str, interval: float | None = None) -> pd.DataFrame:
        """CLV by group of ``column`` (``"value_decile"`` or a column passed in ``group_by``):
        customers, median, mean, low, high of the group's total, ``per_customer`` (mean / size)
        and ``share`` of the base's mean total (shares add to 1)."""
        if column not in self.group_draws:
            raise CbcvError(
                f"no grouping {column!r}; computed: {', '.join(self.group_draws)} "
                "(pass it in group_by)"
            )
        draws = self.group_draws[column]
        st = draw_stats(draws.to_numpy(), interval or self.interval)
        counts = self._group_sizes(column)
        out = pd.DataFrame(st, index=draws.columns)
        out.insert(0, "customers", counts.reindex(draws.columns).fillna(0).astype(int).to_numpy())
        out["per_customer"] = out["mean"] / out["customers"].where(out["customers"] > 0)
        mean_total = float(self.total.mean())
        out["share"] = out["mean"] / mean_total if mean_total != 0 else np.nan
        out.index.name = column
        return out.reset_index()

    def by_cohort(self, interval: float | None = None) -> pd.DataFrame:
        """CLV by acquisition cohort (see :meth:`by`)."""
        return self.by("cohort", interval)

    def by_decile(self, interval: float | None = None) -> pd.DataFrame:
        """CLV by value decile, 1 = the top 10% by posterior mean CLV (see :meth:`by`)."""
        return self.by("value_decile", interval)

    def concentration(self, interval: float | None = None) -> pd.DataFrame:
        """Share of the total held by the top customers (ranked by posterior mean CLV): one row
        per fraction with the median, mean, low, high of the per-draw share."""
        out = summarize_draws(dict(self.top_share_draws.items()), interval or self.interval)
        out.index.name = "customers"
        return out.reset_index()

    def p_alive_distribution(self, interval: float | None = None) -> pd.DataFrame:
        """Histogram table of P(alive at the end of calibration): per bin of width 1/bins,
        ``customers`` by posterior-mean P(alive), the per-draw count (median, low, high) and
        ``share`` of customers (by posterior mean)."""
        bins = self.p_alive_counts.shape[1]
        edges = np.linspace(0.0, 1.0, bins + 1)
        by_mean = self._p_alive_by_mean()
        st = draw_stats(self.p_alive_counts, interval or self.interval)
        return pd.DataFrame(
            {
                "bin": [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)],
                "low_edge": edges[:-1],
                "high_edge": edges[1:],
                "customers": by_mean,
                "customers_median": st["median"],
                "customers_low": st["low"],
                "customers_high": st["high"],
                "share": by_mean / max(self.n_customers, 1),
            }
        )


@dataclass(frozen=True)
class CustomerCLV(CLVTables):
    """Residual CLV of the existing customers, per draw (see the module docstring).

    * ``total``: ``(draws,)`` sum of CLV over customers (the existing-customer equity);
    * ``customers``: one row per customer (summary attributes, then ``clv_mean``, ``clv_median``,
      ``clv_low``, ``clv_high``, ``p_alive_mean``, ``spend_mean``, ``dert_mean``, ``rank`` by
      posterior mean CLV, 1 = most valuable, and ``value_decile``, 1 = top 10%);
    * ``group_draws``: per grouping column (``value_decile`` always), ``(draws × groups)`` CLV sums;
    * ``top_share_draws``: ``(draws × fractions)`` share of the total held by the top customers;
    * ``p_alive_counts``: ``(draws × bins)`` customers per P(alive) bin, per draw;
    * ``draws``: the full ``(draws, customers)`` CLV array when kept, else ``None``.
    """

    total: np.ndarray
    customers: pd.DataFrame
    group_draws: dict[str, pd.DataFrame]
    top_share_draws: pd.DataFrame
    p_alive_counts: np.ndarray
    draws: np.ndarray | None = None
    interval: float = 0.9
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_customers(self) -> int:  # type: ignore[override]
        return len(self.customers)

    def _group_sizes(self, column: str) -> pd.Series:
        return self.customers.groupby(column, observed=True, dropna=False).size()

    def _p_alive_by_mean(self) -> np.ndarray:
        bins = self.p_alive_counts.shape[1]
        return np.bincount(_bin_index(self.customers["p_alive_mean"].to_numpy(), bins), minlength=bins)

    def lorenz(self) -> pd.DataFrame:
        values = np.sort(self.customers["clv_mean"].to_numpy())[::-1]
        return lorenz_frame(np.arange(values.size + 1), np.r_[0.0, np.cumsum(values)], values.size)

    def mean_clv_histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        values = self.customers["clv_mean"].to_numpy(dtype=float)
        positive = values[values > 0]
        edges = log_bins(float(positive.min()) if positive.size else None, float(values.max()), bins)
        return edges, np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]

    def top_customers(self, n: int = 20) -> pd.DataFrame:
        """The ``n`` most valuable customers by posterior mean CLV, **without their ids**: rank,
        cohort (when known), repeat transactions ``x``, CLV mean and interval, P(alive)."""
        cols = [c for c in ("rank", "cohort", "x", "clv_mean", "clv_low", "clv_high", "p_alive_mean", "spend_mean", "dert_mean")
                if c in self.customers]
        return self.customers.sort_values("rank").head(n)[cols].reset_index(drop=True)


#: Smallest edge of the CLV histogram (currency units): customers below it share the first bin.
MIN_CLV_EDGE = 0.01


def log_bins(min_positive: float | None, max_value: float, bins: int) -> np.ndarray:
    """``bins + 1`` log-spaced edges from the smallest positive value (at least
    :data:`MIN_CLV_EDGE`) to the largest (at least ten times the first edge)."""
    lo = max(min_positive if min_positive is not None else MIN_CLV_EDGE, MIN_CLV_EDGE)
    return np.geomspace(lo, max(max_value, lo * 10), bins + 1)


def lorenz_frame(ranks: np.ndarray, cumulative: np.ndarray, n: int) -> pd.DataFrame:
    """The curve of :meth:`CLVTables.lorenz` from the cumulative mean CLV at some ranks."""
    total = float(cumulative[-1])
    return pd.DataFrame({
        "customer_share": np.asarray(ranks, dtype=float) / n,
        "clv_share": np.asarray(cumulative, dtype=float) / total if total > 0 else np.zeros(len(ranks)),
    })


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    return np.clip((np.asarray(p) * bins).astype(np.int64), 0, bins - 1)


def _sum_by_code(v: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-draw sums of the columns of ``v`` by group code: ``(draws, n_groups)``."""
    onehot = sparse.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, n_groups))
    return np.asarray((onehot.T @ v.T).T)


def n_model_draws(model: CLVModel) -> int:
    """Number of posterior draws of a fitted model (chains × draws)."""
    return len(next(iter(model.draws().values())))


def dert_draws(
    model: CLVModel, data: pd.DataFrame, delta: np.ndarray, n_draws: int, max_bytes: int = P.MAX_BYTES
) -> np.ndarray:
    """DERT per draw and customer with one discount rate per draw (``delta``: ``(n_draws,)``,
    continuous per time unit); draws of ``model`` thinned evenly to ``n_draws`` as in
    :func:`cbcv.predict.posterior_draws`. A constant ``delta`` uses :func:`cbcv.predict.dert`."""
    delta = np.asarray(delta, dtype=float)
    if np.any(~np.isfinite(delta)) or np.any(delta <= 0):
        raise CbcvError("DERT needs a positive discount rate in every draw")
    if np.all(delta == delta[0]):
        return P.dert(model, data, delta=float(delta[0]), max_draws=n_draws, max_bytes=max_bytes)
    rows, inverse = P._rows(data, ("x", "t_x", "T"))
    fn, temps = P.dert_kernel(model, delta[:, None])
    return P._chunked(fn, P.posterior_draws(model, n_draws), rows, inverse, max_bytes, temps)


def _chunk_values(
    freq_model: CLVModel,
    spend_model: CLVModel,
    summary: pd.DataFrame,
    margin: np.ndarray,
    delta: np.ndarray,
    n_draws: int,
) -> Callable[[slice], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    def values(cols: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        part = summary.iloc[cols]
        d = dert_draws(freq_model, part, delta, n_draws)
        s = P.expected_spend(spend_model, part, max_draws=n_draws)
        pa = P.p_alive(freq_model, part, max_draws=n_draws)
        return margin[:, None] * s * d, pa, s, d

    return values


def customer_clv(
    freq_model: CLVModel,
    spend_model: CLVModel,
    summary: pd.DataFrame,
    *,
    margin: Any,
    annual_discount_rate: Any,
    time_unit: str,
    max_draws: int | None = 1000,
    group_by: Sequence[str] | None = None,
    top_fractions: Sequence[float] = (0.01, 0.10),
    keep_draws: bool | None = None,
    interval: float = 0.9,
    p_alive_bins: int = P_ALIVE_BINS,
) -> CustomerCLV:
    """Residual CLV per draw and customer, summarised (see the module docstring).

    Parameters
    ----------
    freq_model, spend_model
        A fitted purchase model (BG/NBD, MBG/NBD, Pareto/NBD) and a fitted gamma-gamma model.
    summary
        The customers' calibration summary (``x``, ``t_x``, ``T``, ``mean_repeat_spend``; a
        ``cohort`` and other attributes are carried along).
    margin, annual_discount_rate
        A number or one value per draw (``(n_draws,)``, with ``n_draws`` the number of draws used:
        the smaller of the two models' and ``max_draws``).
    time_unit
        The models' time unit (``day``, ``week``, ``month``), to turn the annual rate into δ.
    group_by
        Attribute columns of ``summary`` to total CLV by (per draw); default ``cohort`` if present.
    keep_draws
        Keep the ``(draws, customers)`` array in the result; default: when it has at most
        :data:`KEEP_CELLS` cells.
    """
    if spend_model.name != "gamma_gamma":
        raise CbcvError(f"spend model must be gamma_gamma, got {spend_model.name!r}")
    P._frequency(freq_model)
    summary = summary.reset_index(drop=True)
    n_cust = len(summary)
    if n_cust == 0:
        raise DataError("customer CLV: no customers")
    n_draws = min(n_model_draws(freq_model), n_model_draws(spend_model))
    if max_draws is not None:
        n_draws = min(n_draws, int(max_draws))
    m = per_draw(margin, n_draws, "margin")
    periods_per_year(time_unit)  # a clear error for an unknown unit
    delta = per_draw(continuous_rate(annual_discount_rate, time_unit), n_draws, "annual_discount_rate")
    if group_by is None:
        group_by = ("cohort",) if "cohort" in summary else ()
    for col in group_by:
        if col not in summary:
            raise DataError(f"customer CLV: no column {col!r} in the summary to group by")
    groupings = {c: pd.factorize(summary[c], sort=True, use_na_sentinel=False) for c in group_by}
    if keep_draws is None:
        keep_draws = n_draws * n_cust <= KEEP_CELLS
    size = max(1, CHUNK_CELLS // n_draws)
    chunks = [slice(i, min(i + size, n_cust)) for i in range(0, n_cust, size)]
    values = _chunk_values(freq_model, spend_model, summary, m, delta, n_draws)

    # Pass 1: totals, per-customer summaries, attribute groups, P(alive) histogram.
    total = np.zeros(n_draws)
    stats = {k: np.empty(n_cust) for k in ("clv_median", "clv_mean", "clv_low", "clv_high", "p_alive_mean", "spend_mean", "dert_mean")}
    sums = {c: np.zeros((n_draws, len(labels))) for c, (_, labels) in groupings.items()}
    pa_counts = np.zeros((n_draws, p_alive_bins))
    kept = np.empty((n_draws, n_cust)) if keep_draws else None
    for cols in chunks:
        v, pa, s, d = values(cols)
        if not np.isfinite(v).all():
            j = cols.start + int(np.argmin(np.isfinite(v).all(axis=0)))
            raise DataError(f"customer CLV: not finite for customer {summary.get('customer_id', pd.Series(range(n_cust))).iloc[j]}")
        if kept is not None:
            kept[:, cols] = v
        total += v.sum(axis=1)
        st = draw_stats(v, interval)
        for k in ("median", "mean", "low", "high"):
            stats[f"clv_{k}"][cols] = st[k]
        stats["p_alive_mean"][cols] = pa.mean(axis=0)
        stats["spend_mean"][cols] = s.mean(axis=0)
        stats["dert_mean"][cols] = d.mean(axis=0)
        for c, (codes, labels) in groupings.items():
            sums[c] += _sum_by_code(v, codes[cols], len(labels))
        idx = _bin_index(pa, p_alive_bins)
        for b in range(p_alive_bins):
            pa_counts[:, b] += (idx == b).sum(axis=1)

    # Rank by posterior mean CLV (ties by position); deciles of equal count, 1 = top.
    order = np.argsort(-stats["clv_mean"], kind="stable")
    rank = np.empty(n_cust, dtype=np.int64)
    rank[order] = np.arange(n_cust)
    decile = (N_DECILES * rank) // n_cust + 1
    fractions = [float(f) for f in top_fractions]
    if any(not 0 < f <= 1 for f in fractions):
        raise ValueError("top_fractions must be in (0, 1]")
    n_top = [max(1, int(np.ceil(f * n_cust - 1e-9))) for f in fractions]

    # Pass 2 (re-evaluated unless the draws were kept): value deciles and the top customers.
    dec_sums = np.zeros((n_draws, N_DECILES))
    top_sums = np.zeros((n_draws, len(fractions)))
    for cols in chunks:
        v = kept[:, cols] if kept is not None else values(cols)[0]
        dec_sums += _sum_by_code(v, decile[cols] - 1, N_DECILES)
        for j, k in enumerate(n_top):
            top_sums[:, j] += v[:, rank[cols] < k].sum(axis=1)

    customers = summary[[c for c in (*ATTRIBUTES, *group_by) if c in summary and c != "value_decile"]].copy()
    customers = customers.loc[:, ~customers.columns.duplicated()]
    for k, arr in stats.items():
        customers[k] = arr
    customers["rank"] = rank + 1
    customers["value_decile"] = decile
    group_draws = {c: pd.DataFrame(sums[c], columns=pd.Index(labels, name=c)) for c, (_, labels) in groupings.items()}
    group_draws["value_decile"] = pd.DataFrame(dec_sums, columns=pd.Index(np.arange(1, N_DECILES + 1), name="value_decile"))
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(total[:, None] > 0, top_sums / total[:, None], np.nan)
    top = pd.DataFrame(shares, columns=[f"top {100 * f:g}%" for f in fractions])
    meta = {
        "purchase_model": freq_model.name,
        "spend_model": spend_model.name,
        "n_draws": n_draws,
        "time_unit": time_unit,
        "pairing": "draw d of the purchase model with draw d of the spend model (independent posteriors)",
    }
    return CustomerCLV(
        total=total, customers=customers, group_draws=group_draws, top_share_draws=top,
        p_alive_counts=pa_counts, draws=kept, interval=interval, meta=meta,
    )
