"""Customer equity: the value of the customers still to be acquired, and the forward revenue by
layer (existing customers and each future cohort). The value of the existing customers is the
per-draw total of their residual CLV, :func:`cbcv.clv.customer_clv` or
:func:`cbcv.clv.scoring.score_customers` (``.total``), as written below.

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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from cbcv.core.discount import Timing, discount_factors, period_rate
from cbcv.core.draws import draw_matrix, draw_stats, per_draw, summarize_draws
from cbcv.core.errors import ConfigError

Terminal = Literal["none", "gordon"]


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------
def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a (draws, columns) array, got shape {arr.shape}")
    return arr


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
