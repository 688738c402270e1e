"""Customer equity of a company known from its disclosures: the latent cohort matrix's future
revenue, after the contribution margin, discounted (McCarthy, Fader & Hardie 2017; McCarthy &
Fader 2018).

Per posterior draw ``d`` of :class:`cbcv.models.disclosures.DisclosureModel` (paired with draw
``d`` of the financial inputs):

* **existing customers** (acquired in the disclosed periods ``1..T``):
  ``CE_existing = margin * sum_{t > T} revenue_existing[t] * v_t``, their expected revenue in every
  period after the valuation date until it runs off (``tail`` periods after the acquisition
  horizon), ``v_t`` the mid-period discount factor from the valuation date
  (:func:`cbcv.core.discount.discount_factors`);
* **future customers** (acquired in the ``horizon`` periods after ``T``, ``horizon`` from
  ``financials.horizon_years``): ``CE_future = sum_{c} A_c (CLV_c - CAC) v_c``; as
  ``sum_c A_c CLV_c v_c = margin * sum_t revenue_future[t] v_t`` exactly (each cohort's CLV
  valued at its acquisition, discounted to today), the new customer's value that
  :class:`cbcv.valuation.sensitivity.ValuationModel` multiplies by the acquisitions is the
  acquisition-weighted average ``sum_t revenue_future[t] v_t / sum_c A_c v_c``: the same total,
  and a CLV per new customer for the unit economics.

The bridge, tornado and scenarios are the transaction company's (:mod:`cbcv.valuation.bridge`,
:mod:`cbcv.valuation.sensitivity`): a ``retention`` shock divides every customer's churn
probability (``DisclosureModel.cohort_paths(churn_factor=...)``), the discount rate is applied
per draw, acquisition cost and volume scale the future customers' line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbcv.core.discount import discount_factors
from cbcv.core.errors import DataError
from cbcv.models.disclosures import CohortPaths, DisclosureModel
from cbcv.valuation.drivers import UnitEconomics
from cbcv.valuation.inputs import FinancialDraws
from cbcv.valuation.sensitivity import ValuationModel
from cbcv.valuation.subscription import payback_periods


def future_marketing_plan(history: np.ndarray, horizon: int, periods_per_year: int, annual_growth: float = 0.0) -> np.ndarray:
    """Marketing spend for each future period: the same period of the last disclosed year
    (seasonality kept), grown by ``annual_growth`` a year."""
    history = np.asarray(history, dtype=float)
    if len(history) < periods_per_year:
        raise DataError(f"disclosures: the marketing plan needs a year ({periods_per_year} periods) of spend")
    last_year = history[-periods_per_year:]
    h = np.arange(horizon)
    return last_year[h % periods_per_year] * (1.0 + annual_growth) ** ((h // periods_per_year) + 1)


@dataclass(frozen=True)
class DisclosureEquity:
    """The customer equity of a fitted disclosures model under shocks (module docstring).

    ``horizon``: periods of acquisitions valued; ``tail``: periods after them over which the
    customers already acquired run off; ``future_marketing``: spend per horizon period (when the
    model uses the covariate); ``n_draws``/``seed``: the thinning of the posterior."""

    model: DisclosureModel
    horizon: int
    tail: int
    unit: str
    future_marketing: np.ndarray | None
    n_draws: int
    seed: int | None = 0
    _paths: dict[float, CohortPaths] = field(default_factory=dict, init=False, repr=False, compare=False)

    def paths(self, churn_factor: float = 1.0) -> CohortPaths:
        """The cohort paths (memoised per churn factor)."""
        key = round(float(churn_factor), 10)
        if key not in self._paths:
            self._paths[key] = self.model.cohort_paths(
                self.horizon, self.future_marketing, tail=self.tail, churn_factor=churn_factor,
                max_draws=self.n_draws, seed=self.seed)
        return self._paths[key]

    def _revenue(self, which: str, retention: float) -> np.ndarray:
        paths = self.paths(1.0 / retention)
        group = paths.existing if which == "existing" else paths.future
        if "revenue" not in group:
            raise DataError("disclosures: revenue is not disclosed; the customers cannot be valued")
        return group["revenue"][:, paths.n_fitted:]

    def revenue_pv(self, which: str, retention: float, rate: np.ndarray) -> np.ndarray:
        """Per draw, the present value at the valuation date of the ``existing`` or ``future``
        customers' expected revenue (before the margin)."""
        revenue = self._revenue(which, retention)
        return (revenue * discount_factors(rate, revenue.shape[1], self.unit)).sum(axis=1)

    @property
    def acquisitions(self) -> np.ndarray:
        """``(draws, horizon)`` expected new customers per future period."""
        paths = self.paths()
        return paths.acquired[:, paths.n_fitted:paths.n_fitted + self.horizon]

    def new_customer_value(self, retention: float, rate: np.ndarray) -> np.ndarray:
        """Per draw, the acquisition-weighted average revenue value of a new customer at its
        acquisition (module docstring)."""
        weights = (self.acquisitions * discount_factors(rate, self.horizon, self.unit)).sum(axis=1)
        return self.revenue_pv("future", retention, rate) / np.where(weights > 0, weights, np.nan)

    def valuation_model(self, financials: FinancialDraws, *, terminal: str = "none", terminal_growth: float = 0.0,
                        bridge_options: Mapping[str, Any] | None = None, currency: str | None = None) -> ValuationModel:
        """The :class:`ValuationModel` of these customers: the existing ones as one revenue
        stream, the future ones as acquisitions times the average new customer's value."""
        if financials.n_draws != self.paths().n_draws:
            raise DataError(f"disclosures: {financials.n_draws} financial draws for {self.paths().n_draws} posterior draws")
        return ValuationModel(
            financials=financials,
            dert=lambda m, rate: self.revenue_pv("existing", m, rate)[:, None], spend=1.0,
            acquisitions=self.acquisitions, new_customer_dert=self.new_customer_value,
            new_customer_spend=1.0, new_customer_first_spend=0.0, acquisition_unit=self.unit,
            terminal=terminal, terminal_growth=terminal_growth,  # type: ignore[arg-type]
            bridge_options=dict(bridge_options or {}), currency=currency,
        )

    def unit_economics(self, financials: FinancialDraws, currency: str | None = None) -> UnitEconomics:
        """A new customer's CLV (margin x its value at acquisition), CAC and payback periods
        (undiscounted cumulative margin of a customer acquired in the next period)."""
        clv = financials.contribution_margin * self.new_customer_value(1.0, financials.discount_rate)
        revenue = self.model.new_customer_revenue(self.horizon + self.tail, max_draws=self.n_draws, seed=self.seed)
        payback = payback_periods(revenue, financials.contribution_margin, financials.acquisition_cost)
        return UnitEconomics(clv, financials.acquisition_cost, payback, self.unit, currency)
