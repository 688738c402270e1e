"""Customer equity: the value of the existing customers, the value of the customers still to be
acquired, and the forward revenue by layer (existing customers and each future cohort).

Everything is computed per draw: draw ``d`` of the customer models' posterior is paired with
draw ``d`` of the financial inputs (:mod:`cbcv.valuation.inputs`), so each figure is an array
of draws with a median and a credible interval. Inputs are plain arrays; this module does not
know which model produced them.

Existing customers (Fader, Hardie & Lee 2005, "RFM and CLV", J. Marketing Research 42(4),
eq. 2, and Gupta, Lehmann & Stuart 2004, "Valuing Customers", JMR 41(1))
    ``CE_existing[d] = sum_i margin[d] * spend[d, i] * DERT[d, i]``

    with ``DERT`` the discounted expected residual transactions of customer ``i`` under draw
    ``d`` (already discounted at the firm's rate, from the transaction model) and ``spend`` the
    expected spend per transaction (e.g. gamma-gamma's conditional mean, Fader, Hardie & Lee
    2005, eq. 5).

Future customers (Gupta, Lehmann & Stuart 2004, eq. 5; McCarthy & Fader 2018)
    ``CE_future[d] = sum_t n[d, t] * (CLV[d, t] - CAC[d, t]) * v[d, t] + TV[d]``

    with ``n`` the new customers acquired in forecast period ``t`` (from the acquisition
    model), ``CLV`` a new customer's expected margin, valued at its acquisition, ``CAC`` the
    acquisition cost per new customer and ``v`` the discount factor from today to the middle
    of period ``t`` (customers are acquired through the period; see
    :func:`cbcv.core.discount.discount_factors`). The horizon is the number of periods
    given (or ``horizon``). The terminal value ``TV`` is either nothing (``terminal="none"``:
    no customers after the horizon) or Gordon growth on the last period's net new-customer
    value ``N_T = n_T (CLV_T - CAC_T)``: the periods after the horizon bring
    ``N_T (1 + g) ** j``, ``j = 1, 2, ...``, discounted like the periods before, which sums to

    ``TV = v_T * N_T * (1 + g) / (r - g)``

    with ``r`` and ``g`` the per-period discount and growth rates (the annual ``terminal_growth``
    is converted like the discount rate); it needs ``r > g`` in every draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from cbcv.core.discount import Timing, discount_factors, period_rate
from cbcv.core.draws import N_DECILES, draw_matrix, draw_stats, per_draw, summarize_draws
from cbcv.core.errors import ConfigError, DataError

Terminal = Literal["none", "gordon"]
#: Cells of (draws × customers) handled at once when aggregating customer values.
CHUNK_CELLS = 4_000_000


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------
def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a (draws, columns) array, got shape {arr.shape}")
    return arr


def _chunks(n_draws: int, n_customers: int) -> list[slice]:
    size = max(1, CHUNK_CELLS // max(n_draws, 1))
    return [slice(i, min(i + size, n_customers)) for i in range(0, n_customers, size)]


# --------------------------------------------------------------------------------------------
# Existing customers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExistingEquity:
    """Customer equity of the existing customers, per draw.

    * ``total``: ``(draws,)`` equity of the whole base;
    * ``customers``: one row per customer (the attribute columns given, then ``value_mean``,
      ``value_median``, ``value_low``, ``value_high`` over draws, ``rank`` by posterior mean
      value, 1 = most valuable, and ``value_decile``, 1 = top 10%);
    * ``group_draws``: for each grouping column (``value_decile`` always), a
      ``(draws × groups)`` DataFrame of the equity of each group;
    * ``top_share_draws``: ``(draws × fractions)`` share of total equity held by the top
      customers (ranked by posterior mean value; columns ``"top 1%"``, ``"top 10%"``).
    """

    total: np.ndarray
    customers: pd.DataFrame
    group_draws: dict[str, pd.DataFrame] = field(default_factory=dict)
    top_share_draws: pd.DataFrame = field(default_factory=pd.DataFrame)
    interval: float = 0.9

    @property
    def n_draws(self) -> int:
        return int(self.total.size)

    def summary(self, interval: float | None = None) -> pd.DataFrame:
        """One row, ``existing_customer_equity``: median, mean, low, high."""
        return summarize_draws({"existing_customer_equity": self.total}, interval or self.interval)

    def by(self, column: str, interval: float | None = None) -> pd.DataFrame:
        """Equity by group of ``column`` (a grouping column given at construction, or
        ``"value_decile"``): customers, median, mean, low, high, and ``share`` (the group's mean
        equity over the base's mean equity; shares add to 1)."""
        if column not in self.group_draws:
            raise ValueError(
                f"no grouping {column!r}; computed: {', '.join(self.group_draws)} "
                "(pass it in group_by when computing the equity)"
            )
        draws = self.group_draws[column]
        st = draw_stats(draws.to_numpy(), interval or self.interval)
        counts = self.customers.groupby(column, observed=True, sort=False, dropna=False).size()
        out = pd.DataFrame(
            {
                "customers": counts.reindex(draws.columns).fillna(0).astype(int).to_numpy(),
                **st,
            },
            index=draws.columns,
        )
        total_mean = float(self.total.mean())
        out["share"] = out["mean"] / total_mean if total_mean != 0 else np.nan
        out.index.name = column
        return out

    def concentration(self, interval: float | None = None) -> pd.DataFrame:
        """Share of equity held by the top customers: one row per fraction (median, mean, low,
        high of the per-draw share)."""
        out = summarize_draws(dict(self.top_share_draws.items()), interval or self.interval)
        out.index.name = "customers"
        return out


def _value_chunk(
    margin: np.ndarray, spend: np.ndarray, dert: np.ndarray, cols: slice
) -> np.ndarray:
    return margin[:, None] * spend[:, cols] * dert[:, cols]


def _spend_array(spend: Any, n_draws: int, n_customers: int) -> np.ndarray:
    arr = np.asarray(spend, dtype=float)
    if arr.ndim == 0:
        return np.full((1, n_customers), float(arr))
    if arr.shape == (n_customers,):
        return arr[None, :]
    if arr.shape == (n_draws, n_customers):
        return arr
    raise ValueError(
        f"spend: expected a scalar, {n_customers} customers or shape ({n_draws}, {n_customers}); "
        f"got shape {arr.shape}"
    )


def _group_codes(customers: pd.DataFrame, column: str) -> tuple[np.ndarray, pd.Index]:
    if column not in customers.columns:
        raise DataError(f"customers: no column {column!r} to group customer equity by")
    codes, uniques = pd.factorize(customers[column], sort=True, use_na_sentinel=False)
    return codes.astype(np.int64), pd.Index(uniques, name=column)


def existing_customer_equity(
    dert: Any,
    spend: Any,
    margin: Any,
    customers: pd.DataFrame | None = None,
    *,
    group_by: Sequence[str] | None = None,
    top_fractions: Sequence[float] = (0.01, 0.10),
    interval: float = 0.9,
) -> ExistingEquity:
    """Equity of the existing customers: ``sum_i margin * spend_i * DERT_i`` per draw.

    Parameters
    ----------
    dert
        ``(draws, customers)`` discounted expected residual transactions (already discounted).
    spend
        Expected spend per transaction: ``(draws, customers)``, ``(customers,)`` or a scalar.
    margin
        Contribution margin: a scalar or ``(draws,)``.
    customers
        Optional frame with one row per customer in the column order of ``dert``
        (``customer_id``, ``cohort``, any attributes); its columns (and a named index) are
        kept in ``ExistingEquity.customers``.
    group_by
        Columns of ``customers`` to sum equity by (per draw). Default: ``cohort`` when present.
        Value deciles (by posterior mean value, 1 = top) are always computed.
    top_fractions
        Fractions of customers (by posterior mean value) whose share of equity is reported.

    Customers are processed in chunks, so the temporary memory is bounded whatever the number
    of customers.
    """
    d = _as_2d(dert, "dert")
    n_draws, n_cust = d.shape
    if n_cust == 0:
        raise DataError("existing customer equity: no customers")
    m = per_draw(margin, n_draws, "margin")
    s = _spend_array(spend, n_draws, n_cust)
    if customers is not None and len(customers) != n_cust:
        raise ValueError(f"customers: {len(customers)} rows for {n_cust} columns of dert")
    if customers is None:
        cust = pd.DataFrame(index=pd.RangeIndex(n_cust))
    else:  # a named index (e.g. customer_id) becomes a column
        named = any(name is not None for name in customers.index.names)
        cust = customers.reset_index(drop=not named)
    if group_by is None:
        group_by = ("cohort",) if "cohort" in cust.columns else ()
    groupings = {col: _group_codes(cust, col) for col in group_by}
    chunks = _chunks(n_draws, n_cust)

    # Pass 1: totals, per-customer summaries, attribute groups.
    total = np.zeros(n_draws)
    stats = {k: np.empty(n_cust) for k in ("median", "mean", "low", "high")}
    group_sums = {col: np.zeros((n_draws, len(lab))) for col, (_, lab) in groupings.items()}
    for cols in chunks:
        v = _value_chunk(m, s, d, cols)
        finite = np.isfinite(v).all(axis=0)
        if not finite.all():
            j = cols.start + int(np.argmin(finite))
            who = cust["customer_id"].iloc[j] if "customer_id" in cust.columns else f"column {j}"
            raise DataError(f"existing customer equity: DERT or spend is not finite for customer {who}")
        total += v.sum(axis=1)
        for k, arr in draw_stats(v, interval).items():
            stats[k][cols] = arr
        for col, (codes, labels) in groupings.items():
            group_sums[col] += _sum_by_code(v, codes[cols], len(labels))

    # Rank by posterior mean value (ties by position), deciles of equal count (1 = top).
    order = np.argsort(-stats["mean"], kind="stable")
    rank = np.empty(n_cust, dtype=np.int64)
    rank[order] = np.arange(n_cust)
    decile = (N_DECILES * rank) // n_cust + 1
    fractions = [float(f) for f in top_fractions]
    if any(not 0 < f <= 1 for f in fractions):
        raise ValueError("top_fractions must be in (0, 1]")
    n_top = [max(1, int(np.ceil(f * n_cust - 1e-9))) for f in fractions]

    # Pass 2: value deciles and the top customers' equity.
    dec_sums = np.zeros((n_draws, N_DECILES))
    top_sums = np.zeros((n_draws, len(fractions)))
    for cols in chunks:
        v = _value_chunk(m, s, d, cols)
        dec_sums += _sum_by_code(v, decile[cols] - 1, N_DECILES)
        for j, k in enumerate(n_top):
            top_sums[:, j] += v[:, rank[cols] < k].sum(axis=1)

    cust["value_mean"] = stats["mean"]
    cust["value_median"] = stats["median"]
    cust["value_low"] = stats["low"]
    cust["value_high"] = stats["high"]
    cust["rank"] = rank + 1
    cust["value_decile"] = decile
    group_draws = {
        col: pd.DataFrame(group_sums[col], columns=labels) for col, (_, labels) in groupings.items()
    }
    group_draws["value_decile"] = pd.DataFrame(
        dec_sums, columns=pd.Index(np.arange(1, N_DECILES + 1), name="value_decile")
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(total[:, None] > 0, top_sums / total[:, None], np.nan)
    top = pd.DataFrame(shares, columns=[f"top {100 * f:g}%" for f in fractions])
    return ExistingEquity(
        total=total, customers=cust, group_draws=group_draws, top_share_draws=top, interval=interval
    )


def _sum_by_code(v: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-draw sums of the columns of ``v`` by group code: ``(draws, n_groups)``."""
    onehot = sparse.csr_matrix(
        (np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, n_groups)
    )
    return np.asarray((onehot.T @ v.T).T)


# --------------------------------------------------------------------------------------------
# Future customers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FutureEquity:
    """Equity of the customers acquired in the forecast periods, per draw.

    ``(draws, periods)`` arrays: ``acquisitions`` (new customers), ``net_value`` (undiscounted
    ``n * (CLV - CAC)``), ``discount`` (factors to today). ``(draws,)`` arrays:
    ``pv_clv`` (present value of the new customers' CLV), ``pv_acquisition_cost``,
    ``terminal_value`` (present value; 0 without a terminal value) and ``total``
    (``pv_clv - pv_acquisition_cost + terminal_value``).
    """

    periods: pd.Index
    acquisitions: np.ndarray
    net_value: np.ndarray
    discount: np.ndarray
    pv_clv: np.ndarray
    pv_acquisition_cost: np.ndarray
    terminal_value: np.ndarray
    total: np.ndarray
    unit: str = "quarter"
    timing: Timing = "mid"
    terminal: Terminal = "none"
    terminal_growth: float = 0.0
    interval: float = 0.9

    @property
    def n_draws(self) -> int:
        return int(self.total.size)

    @property
    def pv_horizon(self) -> np.ndarray:
        """Present value of the new customers of the horizon (without the terminal value)."""
        return self.pv_clv - self.pv_acquisition_cost

    def summary(self, interval: float | None = None) -> pd.DataFrame:
        """Rows ``pv_clv``, ``pv_acquisition_cost``, ``pv_horizon``, ``terminal_value``,
        ``future_customer_equity``: median, mean, low, high."""
        return summarize_draws(
            {
                "pv_clv": self.pv_clv,
                "pv_acquisition_cost": self.pv_acquisition_cost,
                "pv_horizon": self.pv_horizon,
                "terminal_value": self.terminal_value,
                "future_customer_equity": self.total,
            },
            interval or self.interval,
        )

    def by_period(self, interval: float | None = None) -> pd.DataFrame:
        """Per forecast period: new customers and the present value of their net value
        (``*_median``, ``*_mean``, ``*_low``, ``*_high``)."""
        iv = interval or self.interval
        out = pd.DataFrame(index=self.periods)
        out.index.name = "period"
        for name, arr in (("acquisitions", self.acquisitions), ("pv_net_value", self.net_value * self.discount)):
            for k, v in draw_stats(arr, iv).items():
                out[f"{name}_{k}"] = v
        return out


def future_customer_equity(
    acquisitions: Any,
    clv_at_acquisition: Any,
    acquisition_cost: Any,
    discount_rate: Any,
    *,
    unit: str = "quarter",
    timing: Timing = "mid",
    horizon: int | None = None,
    terminal: Terminal = "none",
    terminal_growth: float = 0.0,
    periods: Sequence[Any] | pd.Index | None = None,
    interval: float = 0.9,
) -> FutureEquity:
    """Equity of future customers: ``sum_t n_t (CLV_t - CAC_t) v_t`` plus a terminal value.

    Parameters
    ----------
    acquisitions
        ``(draws, periods)`` new customers per forecast period (e.g. the acquisition model's
        ``forecast(...).expected``, a DataFrame or array); period 1 starts today.
    clv_at_acquisition, acquisition_cost
        Per new customer, valued at acquisition: a scalar, ``(draws,)``, ``(periods,)`` or
        ``(draws, periods)``.
    discount_rate
        Annual rate, a scalar or ``(draws,)``.
    unit
        The length of a period (``"quarter"``, ``"month"``, ...).
    horizon
        Use only the first ``horizon`` periods (default: all given).
    terminal, terminal_growth
        ``"none"`` or ``"gordon"`` with an annual growth rate of the net new-customer value
        after the horizon (see the module docstring).
    """
    if terminal not in ("none", "gordon"):
        raise ConfigError(f"terminal value {terminal!r} unknown; choose none or gordon")
    labels_in = acquisitions.columns if isinstance(acquisitions, pd.DataFrame) else None
    n = _as_2d(acquisitions, "acquisitions")
    if horizon is not None:
        if horizon < 1 or horizon > n.shape[1]:
            raise ConfigError(
                f"future customers: horizon of {horizon} periods, but acquisitions are forecast "
                f"for {n.shape[1]}"
            )
        n = n[:, :horizon]
    n_draws, n_per = n.shape
    if periods is not None:
        labels = pd.Index(periods)
    elif labels_in is not None:
        labels = pd.Index(labels_in[:n_per])
    else:
        labels = pd.RangeIndex(1, n_per + 1, name="period")
    if len(labels) != n_per:
        raise ValueError(f"periods: {len(labels)} labels for {n_per} periods")
    clv = draw_matrix(clv_at_acquisition, n_draws, n_per, "clv_at_acquisition", "periods")
    cac = draw_matrix(acquisition_cost, n_draws, n_per, "acquisition_cost", "periods")
    rate = per_draw(discount_rate, n_draws, "discount_rate")
    v = discount_factors(rate, n_per, unit, timing)
    net = n * (clv - cac)
    pv_clv = (n * clv * v).sum(axis=1)
    pv_cac = (n * cac * v).sum(axis=1)
    tv = np.zeros(n_draws)
    if terminal == "gordon":
        tv = gordon_terminal_value(net[:, -1], v[:, -1], rate, terminal_growth, unit)
    return FutureEquity(
        periods=labels,
        acquisitions=n,
        net_value=net,
        discount=v,
        pv_clv=pv_clv,
        pv_acquisition_cost=pv_cac,
        terminal_value=tv,
        total=pv_clv - pv_cac + tv,
        unit=unit,
        timing=timing,
        terminal=terminal,
        terminal_growth=float(terminal_growth),
        interval=interval,
    )


def gordon_terminal_value(
    last_value: Any, last_discount: Any, annual_rate: Any, annual_growth: float, unit: str
) -> np.ndarray:
    """Present value of ``last_value * (1 + g)**j``, ``j = 1, 2, ...``, one per period after the
    last forecast period, discounted like it: ``last_discount * last_value * (1 + g) / (r - g)``
    with per-period ``r`` and ``g`` converted from the annual rates (Gordon growth)."""
    r = period_rate(annual_rate, unit)
    g = period_rate(annual_growth, unit) if annual_growth > -1 else None
    if g is None:
        raise ConfigError("terminal growth must be above -100%")
    bad = int(np.sum(r <= g))
    if bad:
        raise ConfigError(
            f"terminal growth {annual_growth:g} is not below the discount rate in {bad} draw(s); "
            "a Gordon terminal value needs growth < discount rate"
        )
    return np.asarray(last_discount) * np.asarray(last_value) * (1 + g) / (r - g)


# --------------------------------------------------------------------------------------------
# Forward revenue by layer
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RevenueLayers:
    """Forward revenue per period, split into the existing customers and each future cohort.

    ``draws`` is ``(draws, layers, periods)``; ``layers`` names them (``"existing"`` first, then
    one label per acquisition period). Means add up across layers (medians do not), so stacked
    charts use :meth:`mean_table`.
    """

    periods: pd.Index
    layers: tuple[str, ...]
    draws: np.ndarray
    interval: float = 0.9

    @property
    def total(self) -> np.ndarray:
        """``(draws, periods)`` total revenue."""
        return self.draws.sum(axis=1)

    def grouped(self, size: int) -> RevenueLayers:
        """The same revenue with consecutive cohorts merged ``size`` at a time (e.g. 4 quarterly
        cohorts into one yearly layer), labelled ``"cohorts <first>-<last>"``."""
        if size < 1:
            raise ValueError("size must be at least 1")
        n_coh = len(self.layers) - 1
        if size == 1 or n_coh == 0:
            return self
        parts = [self.draws[:, :1, :]]
        names = [self.layers[0]]
        for start in range(0, n_coh, size):
            stop = min(start + size, n_coh)
            parts.append(self.draws[:, 1 + start : 1 + stop, :].sum(axis=1, keepdims=True))
            first, last = self.layers[1 + start], self.layers[stop]
            names.append(first if stop - start == 1 else f"{first} to {last}")
        return RevenueLayers(self.periods, tuple(names), np.concatenate(parts, axis=1), self.interval)

    def mean_table(self) -> pd.DataFrame:
        """Periods × layers of mean revenue (what a stacked area shows)."""
        return pd.DataFrame(self.draws.mean(axis=0).T, index=self.periods, columns=list(self.layers))

    def summary(self, interval: float | None = None) -> pd.DataFrame:
        """Long table: ``period``, ``layer`` (``"total"`` last), median, mean, low, high."""
        iv = interval or self.interval
        frames = []
        for j, name in enumerate([*self.layers, "total"]):
            arr = self.total if name == "total" else self.draws[:, j, :]
            st = draw_stats(arr, iv)
            frames.append(pd.DataFrame({"period": self.periods, "layer": name, **st}))
        return pd.concat(frames, ignore_index=True)


def revenue_layers(
    existing_revenue: Any,
    new_customer_revenue_by_age: Any,
    acquisitions: Any,
    *,
    periods: Sequence[Any] | pd.Index | None = None,
    cohort_labels: Sequence[str] | None = None,
    interval: float = 0.9,
) -> RevenueLayers:
    """Assemble the forward revenue "layer cake".

    Parameters
    ----------
    existing_revenue
        ``(draws, P)`` (or ``(P,)``) expected revenue of today's customers in each of the next
        ``P`` periods.
    new_customer_revenue_by_age
        ``(draws, A)`` (or ``(A,)``) expected revenue of one new customer in the period of its
        acquisition (age 0) and each later period (age 1, 2, ...), ``A >= P``.
    acquisitions
        ``(draws, C)`` new customers in forecast periods ``1..C`` (``C <= P``, more are
        ignored), on the same period grid.

    Cohort ``c`` (acquired in period ``c``) brings ``n_c * rev_by_age[t - c]`` in period
    ``t >= c`` and nothing before.
    """
    n = _as_2d(acquisitions, "acquisitions")
    n_draws = n.shape[0]
    ex = np.asarray(existing_revenue, dtype=float)
    n_per = ex.shape[-1]
    ex = draw_matrix(ex, n_draws, n_per, "existing_revenue", "periods", one_d="cols")
    rev = np.asarray(new_customer_revenue_by_age, dtype=float)
    if rev.shape[-1] < n_per:
        raise ValueError(
            f"new_customer_revenue_by_age: {rev.shape[-1]} ages for {n_per} periods; give at least {n_per}"
        )
    rev = draw_matrix(rev, n_draws, rev.shape[-1], "new_customer_revenue_by_age", "ages", one_d="cols")
    n_coh = min(n.shape[1], n_per)
    labels = pd.Index(periods) if periods is not None else pd.RangeIndex(1, n_per + 1, name="period")
    if len(labels) != n_per:
        raise ValueError(f"periods: {len(labels)} labels for {n_per} periods")
    if cohort_labels is None:
        cohort_labels = [f"cohort {labels[c]}" for c in range(n_coh)]
    if len(cohort_labels) < n_coh:
        raise ValueError(f"cohort_labels: {len(cohort_labels)} labels for {n_coh} cohorts")
    out = np.zeros((n_draws, 1 + n_coh, n_per))
    out[:, 0, :] = ex
    for c in range(n_coh):
        out[:, 1 + c, c:] = n[:, c, None] * rev[:, : n_per - c]
    return RevenueLayers(
        periods=labels,
        layers=("existing", *[str(x) for x in cohort_labels[:n_coh]]),
        draws=out,
        interval=interval,
    )
