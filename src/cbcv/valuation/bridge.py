"""From customer equity to equity value per share (the valuation bridge), per draw.

::

      existing customer equity
    + future customer equity            (net of acquisition costs, terminal value included)
    - PV(fixed operating costs)
    - PV(capital expenditure)
    - taxes
    = operating value
    + non-operating assets
    - net debt
    = equity value;  value per share = equity value / shares outstanding

This is the customer-based corporate valuation of Gupta, Lehmann & Stuart (2004) and McCarthy,
Fader & Hardie (2017) / McCarthy & Fader (2018), done per draw: draw ``d`` of customer equity
(posterior draw ``d`` of the models) meets draw ``d`` of every financial input, so each line of
the bridge and the value per share come with credible intervals, and
``P(value per share > market price)`` is the share of draws above the price.

Conventions
-----------
* **Costs.** ``fixed_costs`` and ``capex`` are annual amounts, paid evenly within each year (a
  constant amount per period of ``cost_unit``, growing at ``cost_growth`` a year), discounted at
  the firm's rate with the ``timing`` convention (mid-period by default; see
  :mod:`cbcv.valuation.inputs`). They run over ``horizon_years`` (a partial last period counts
  pro rata) or, with ``cost_horizon="perpetuity"``, for ever:
  ``PV = c (1 + r)**s / (r - g)`` per period amount ``c``, per-period rates ``r``, ``g`` and
  timing shift ``s`` (0.5 mid-period). The default (``cost_horizon=None``) matches the future
  customers: perpetuity when their equity has a terminal value, the horizon otherwise.
* **Taxes.** Customer equity is a pre-tax contribution. Taxes are ``tax_rate`` times the
  taxable operating contribution when it is positive, per draw:
  ``tax = t * max(CE_existing + CE_future - PV(fixed) - PV(capex), 0)``, with capex deducted
  as if expensed (over a long horizon depreciation adds up to capex; the timing of the tax
  shield is ignored) unless ``capex_deductible=False``. Applying the rate to the present value
  assumes the contribution is taxable in the periods it arises (no loss carry-forwards beyond
  the netting inside the present value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from cbcv.core.discount import TIMING_SHIFT, Timing, period_rate
from cbcv.core.draws import draw_stats, per_draw, summarize_draws
from cbcv.core.errors import ConfigError
from cbcv.core.units import periods_per_year
from cbcv.valuation.equity import FutureEquity
from cbcv.valuation.inputs import FinancialDraws

CostHorizon = Literal["horizon", "perpetuity"]

#: The lines of the bridge: (field, label, kind). ``add``/``subtract`` lines hold positive
#: amounts as named; ``subtotal``/``total`` lines are the running result.
BRIDGE: tuple[tuple[str, str, str], ...] = (
    ("existing_customer_equity", "Existing customers", "add"),
    ("future_customer_equity", "Future customers", "add"),
    ("pv_fixed_costs", "Fixed costs (PV)", "subtract"),
    ("pv_capex", "Capital expenditure (PV)", "subtract"),
    ("taxes", "Taxes", "subtract"),
    ("operating_value", "Operating value", "subtotal"),
    ("non_operating_assets", "Non-operating assets", "add"),
    ("net_debt", "Net debt", "subtract"),
    ("equity_value", "Equity value", "total"),
)


@dataclass(frozen=True)
class CostSchedule:
    """How an annual cost is paid: in periods of ``unit`` (``k`` a year), at the ``timing`` point
    of each period, growing by ``growth`` a year, for a horizon or (``perpetuity``) for ever."""

    unit: str = "year"
    timing: Timing = "mid"
    growth: float = 0.0
    perpetuity: bool = False

    def present_value(
        self, annual_amount: Any, discount_rate: Any, horizon_years: float
    ) -> np.ndarray:
        """Present value of ``annual_amount`` paid evenly over ``horizon_years`` (or for ever).

        Period ``t`` pays ``amount / k * (1 + g)**(t - 1)`` (``g`` the per-period growth),
        discounted by ``(1 + r) ** -(t - s)`` in periods (``s`` from ``timing``). A partial last
        period pays pro rata at its own mid/end/start point. ``annual_amount`` and
        ``discount_rate`` are scalars or per-draw arrays.
        """
        unit, growth = self.unit, self.growth
        amount = np.asarray(annual_amount, dtype=float)
        rate = np.asarray(discount_rate, dtype=float)
        k = periods_per_year(unit)
        r = period_rate(rate, unit)
        if growth <= -1:
            raise ConfigError("cost growth must be above -100%")
        g = float(period_rate(growth, unit))
        s = TIMING_SHIFT[self.timing]
        per_period = amount / k
        if self.perpetuity:
            bad = int(np.sum(np.atleast_1d(r) <= g))
            if bad:
                raise ConfigError(
                    f"costs in perpetuity need cost growth below the discount rate ({bad} draw(s) fail)"
                )
            return per_period * (1 + r) ** s / (r - g)
        n_exact = float(horizon_years) * k
        n_full = int(np.floor(n_exact + 1e-9))
        frac = max(n_exact - n_full, 0.0) if n_exact - n_full > 1e-9 else 0.0
        t = np.arange(1, n_full + 1, dtype=float)
        log_v = -np.log1p(np.atleast_1d(r))[:, None]
        pv = (np.exp(log_v * (t - s)) * (1 + g) ** (t - 1)).sum(axis=1)
        if frac > 0:
            when = n_full + frac * (1 - s)
            pv = pv + frac * (1 + g) ** n_full * np.exp(log_v[:, 0] * when)
        out = per_period * pv
        return out if np.ndim(rate) or np.ndim(amount) else np.asarray(float(out[0]))


def bridge_lines(amounts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every line of :data:`BRIDGE` from its ``add`` and ``subtract`` amounts (``(draws,)``
    arrays): each ``subtotal`` or ``total`` line is the running result of the lines above it."""
    lines: dict[str, np.ndarray] = {}
    running: Any = None  # the bridge starts with an amount
    for name, _label, kind in BRIDGE:
        if kind in ("subtotal", "total"):
            lines[name] = running
            continue
        amount = amounts[name]
        lines[name] = amount
        if running is None:
            running = amount
        else:
            running = running + amount if kind == "add" else running - amount
    return lines


def pv_annual_costs(
    annual_amount: Any, discount_rate: Any, horizon_years: float, **schedule: Any
) -> np.ndarray:
    """Present value of an annual amount paid evenly over ``horizon_years`` (or for ever):
    :meth:`CostSchedule.present_value`, ``schedule`` the fields of :class:`CostSchedule`
    (``unit="year"``, ``timing="mid"``, ``growth=0.0``, ``perpetuity=False``)."""
    return CostSchedule(**schedule).present_value(annual_amount, discount_rate, horizon_years)


@dataclass(frozen=True)
class ValuationResult:
    """Every line of the bridge as ``(draws,)`` arrays, and the value per share."""

    existing_customer_equity: np.ndarray
    future_customer_equity: np.ndarray
    pv_fixed_costs: np.ndarray
    pv_capex: np.ndarray
    taxes: np.ndarray
    operating_value: np.ndarray
    non_operating_assets: np.ndarray
    net_debt: np.ndarray
    equity_value: np.ndarray
    value_per_share: np.ndarray
    shares_outstanding: float
    market_price: float | None = None
    currency: str | None = None
    interval: float = 0.9
    conventions: dict[str, Any] = field(default_factory=dict)

    @property
    def n_draws(self) -> int:
        return int(self.value_per_share.size)

    def prob_above(self, price: float | None = None) -> float | None:
        """Share of draws with value per share above ``price`` (default: the market price);
        ``None`` when there is no price."""
        p = self.market_price if price is None else price
        if p is None:
            return None
        return float(np.mean(self.value_per_share > p))

    def bridge_table(self, interval: float | None = None, per_share: bool = False) -> pd.DataFrame:
        """One row per line of the bridge, in order, then ``value_per_share``: ``label``,
        ``kind`` (add, subtract, subtotal, total), ``median``, ``mean``, ``low``, ``high``.
        Amounts are positive as named (a cost of 5 is 5 on a ``subtract`` line); the means add
        up along the bridge, the medians in general do not. ``per_share=True`` divides the
        money lines by the shares outstanding."""
        iv = interval or self.interval
        rows = []
        scale = self.shares_outstanding if per_share else 1.0
        for name, label, kind in BRIDGE:
            st = draw_stats(getattr(self, name) / scale, iv)
            rows.append({"component": name, "label": label, "kind": kind, **{k: float(v) for k, v in st.items()}})
        if not per_share:
            st = draw_stats(self.value_per_share, iv)
            rows.append(
                {"component": "value_per_share", "label": "Value per share", "kind": "per_share",
                 **{k: float(v) for k, v in st.items()}}
            )
        out = pd.DataFrame(rows).set_index("component")
        out.attrs["interval"] = iv
        return out

    def summary(self, interval: float | None = None) -> pd.DataFrame:
        """Value per share and equity value: median, mean, low, high."""
        return summarize_draws(
            {"value_per_share": self.value_per_share, "equity_value": self.equity_value},
            interval or self.interval,
        )

    def to_json_dict(self, interval: float | None = None) -> dict[str, Any]:
        """The content of ``valuation.json``: value per share (median, mean, interval), the
        market price and ``P(value per share > price)`` (``null`` without a price), each line of
        the bridge, the number of draws and the conventions used."""
        iv = interval or self.interval
        table = self.bridge_table(iv)
        stats = ["median", "mean", "low", "high"]
        vps = table.loc["value_per_share"]
        return {
            "currency": self.currency,
            "n_draws": self.n_draws,
            "interval": iv,
            "value_per_share": {k: float(vps[k]) for k in stats},
            "market_price": self.market_price,
            "prob_value_above_price": self.prob_above(),
            "shares_outstanding": self.shares_outstanding,
            "bridge": {
                name: {"label": row["label"], "kind": row["kind"], **{k: float(row[k]) for k in stats}}
                for name, row in table.drop(index="value_per_share").iterrows()
            },
            "conventions": dict(self.conventions),
        }


def _total(x: Any, n_draws: int, name: str) -> np.ndarray:
    """The per-draw total of ``x``: its ``total`` draws (CLV tables, future equity) or ``x``
    itself (a number or an array of draws); zeros for None."""
    if x is None:
        return np.zeros(n_draws)
    return per_draw(getattr(x, "total", x), n_draws, name)


def value_bridge(
    existing: Any,
    future: FutureEquity | Any | None,
    financials: FinancialDraws,
    *,
    cost_unit: str = "year",
    timing: Timing = "mid",
    cost_horizon: CostHorizon | None = None,
    cost_growth: float = 0.0,
    capex_deductible: bool = True,
    currency: str | None = None,
    interval: float = 0.9,
) -> ValuationResult:
    """Operating value, equity value and value per share, per draw (see the module docstring
    for the cost and tax conventions).

    ``existing`` and ``future`` are :class:`cbcv.clv.CLVTables` / :class:`FutureEquity` or plain
    ``(draws,)`` arrays (``future=None``: no future customers); their draws pair with
    ``financials``' draws.
    """
    n = financials.n_draws
    ce_old = _total(existing, n, "existing customer equity")
    ce_new = _total(future, n, "future customer equity")
    if cost_horizon is None:
        cost_horizon = (
            "perpetuity" if isinstance(future, FutureEquity) and future.terminal != "none" else "horizon"
        )
    if cost_horizon not in ("horizon", "perpetuity"):
        raise ConfigError(f"cost_horizon {cost_horizon!r} unknown; choose horizon or perpetuity")
    costs = CostSchedule(cost_unit, timing, cost_growth, cost_horizon == "perpetuity")
    r, years = financials.discount_rate, financials.horizon_years
    pv_fixed = costs.present_value(financials.fixed_costs, r, years)
    pv_capex = costs.present_value(financials.capex, r, years)
    taxable = ce_old + ce_new - pv_fixed - (pv_capex if capex_deductible else 0.0)
    taxes = financials.tax_rate * np.maximum(taxable, 0.0)
    lines = bridge_lines({
        "existing_customer_equity": ce_old,
        "future_customer_equity": ce_new,
        "pv_fixed_costs": pv_fixed,
        "pv_capex": pv_capex,
        "taxes": taxes,
        "non_operating_assets": financials.non_operating_assets.copy(),
        "net_debt": financials.net_debt.copy(),
    })
    return ValuationResult(
        **lines,
        value_per_share=lines["equity_value"] / financials.shares_outstanding,
        shares_outstanding=financials.shares_outstanding,
        market_price=financials.market_price,
        currency=currency,
        interval=interval,
        conventions={
            "discounting": f"{timing}-period",
            "cost_unit": cost_unit,
            "cost_horizon": cost_horizon,
            "cost_growth": cost_growth,
            "horizon_years": financials.horizon_years,
            "tax_basis": "tax_rate * max(customer equity - PV fixed costs"
            + (" - PV capex" if capex_deductible else "")
            + ", 0)",
            "future_terminal": future.terminal if isinstance(future, FutureEquity) else None,
            "uncertain_inputs": list(financials.uncertain),
        },
    )
