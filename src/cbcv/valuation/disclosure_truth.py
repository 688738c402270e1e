"""The true expected equity of the existing customers of a company simulated customer by customer
in the disclosures model's own story (:func:`cbcv.data.simulate.disclosures.simulate_period_company`).

What a valuation from disclosures estimates is the expected discounted margin of the customers
acquired so far, given the cohorts they were acquired in (it never sees a customer's history):
per future period ``t > T``,

    ``revenue_t = sum_c n_c S(t - c) m E[Z]``,

with ``n_c`` the customers acquired in period ``c``, ``S(k) = B(a, b + k) / B(a, b)`` the sBG
survivor (Fader & Hardie 2007, eq. 7), ``m`` the mean orders of an alive customer per period and
``E[Z] = p gamma / (q - 1)`` the gamma-gamma mean order value (Fader, Hardie & Lee 2005,
"RFM and CLV", J. Marketing Research 42(4)). The equity is ``margin * sum_t revenue_t v_t``,
discounted at mid-period as the valuation discounts (:func:`cbcv.core.discount.discount_factors`).
Written from the parameters alone, not from :class:`cbcv.models.disclosures.DisclosureModel`.
"""

from __future__ import annotations

import numpy as np

from cbcv.core.discount import discount_factors
from cbcv.core.errors import ConfigError
from cbcv.data.simulate.disclosures import SimulatedPeriodCompany


def true_existing_revenue(sim: SimulatedPeriodCompany, periods: int) -> np.ndarray:
    """Expected revenue of the customers acquired to the last simulated period, in each of the
    ``periods`` periods after it (module docstring)."""
    if periods < 1:
        raise ConfigError(f"periods must be at least 1, got {periods}")
    sizes = sim.cohort_sizes().astype(float)
    n_hist = len(sizes)
    ages = n_hist + np.arange(periods)[:, None] - np.arange(n_hist)[None, :]  # (future period, cohort)
    spend = sim.spend.p * sim.spend.gamma / (sim.spend.q - 1.0)
    return (sim.behaviour.survivor(ages) * sizes[None, :]).sum(axis=1) * sim.behaviour.m * spend


def true_existing_equity(
    sim: SimulatedPeriodCompany, *, margin: float, annual_discount_rate: float, periods: int,
) -> float:
    """``margin * sum_t revenue_t v_t`` over ``periods`` future periods (module docstring)."""
    revenue = true_existing_revenue(sim, periods)
    unit = "quarter" if sim.periods.freqstr.startswith("Q") else "month"
    factors = discount_factors(np.array([float(annual_discount_rate)]), periods, unit)[0]
    return float(margin * (revenue * factors).sum())
