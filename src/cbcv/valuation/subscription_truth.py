"""The true expected subscriber equity of a simulated subscription company, from its known
parameters (:mod:`cbcv.data.simulate.subscriptions`): the quantities cbcv's subscription
valuation estimates, evaluated at the truth.

**Existing subscribers.** A subscriber of cohort ``k`` (true sBG parameters ``alpha``, ``beta``
for its plan) active at the valuation date after ``n`` renewals pays its price at each further
renewal it makes; the next is due a fraction ``f`` of a billing period after the valuation
date. Its expected discounted residual revenue is

    ``price * z**f * DERL(d | alpha, beta, n)``,   ``z = 1 / (1 + d)``,

with ``d`` the discount rate per billing period and DERL the discounted expected residual
lifetime of Fader & Hardie (2010), "Customer-Base Valuation in a Contractual Setting: The
Perils of Ignoring Heterogeneity", Marketing Science 29(1), eq. 6 (its first term is the next
renewal, undiscounted: the ``z**f`` moves it to its due date). The true equity is the margin
times its sum over the subscribers active at the valuation date.

**Future subscribers.** A subscriber acquired later pays at its start and at each renewal: at
acquisition its value is ``margin * price * (1 + z * DERL(d | alpha, beta, 0))``. Its cohort's
``(alpha, beta)`` are drawn from the population, so the true value of a new subscriber is that
expression's expectation over the population (two-dimensional Gauss-Hermite quadrature over
``logit mu`` and ``log kappa``) and over the plans; times the true expected acquisitions
(:meth:`cbcv.data.simulate.acquisitions.AcquisitionParams.expected_after`), less the
acquisition cost, discounted as the valuation discounts them
(:func:`cbcv.valuation.equity.future_customer_equity`).

DERL is not reimplemented: :func:`cbcv.predict.contractual.derl_sbg` (closed form).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbcv.core.discount import period_rate
from cbcv.core.errors import DataError
from cbcv.core.units import PANDAS_FREQ, horizon_periods
from cbcv.data.simulate.acquisitions import AcquisitionParams
from cbcv.data.simulate.subscriptions import SimulatedSubscriptions, add_months, alpha_beta
from cbcv.data.subscriptions import PERIOD_MONTHS
from cbcv.predict.contractual import DERL_TOL, derl_sbg
from cbcv.valuation.equity import future_customer_equity

#: Gauss-Hermite nodes per dimension of the population expectation.
QUADRATURE_NODES = 24


def renewals_and_next_due(start: pd.Series, at: pd.Timestamp, months: int) -> tuple[np.ndarray, np.ndarray]:
    """Per spell started on ``start`` and active at the end of day ``at``: the renewals made
    (``#{k >= 1: start + k periods <= at}``) and the fraction of a billing period from ``at``
    to the next renewal (days from the end of ``at`` to it, over the days of that period: 0 for
    a renewal due the next day)."""
    begin = pd.DatetimeIndex(start)
    elapsed = (at.year - begin.year) * 12 + (at.month - begin.month)
    n = np.maximum(elapsed.to_numpy() // months, 0)
    # the calendar month count overshoots by one period when the day of the month is later
    due = _shift(begin, (n + 1) * months)
    made = _shift(begin, n * months)
    back = made > at
    n = np.where(back, n - 1, n)
    due = np.where(back, made, due)
    prev = _shift(begin, n * months)
    frac = ((pd.DatetimeIndex(due) - at).days.to_numpy() - 1) / (pd.DatetimeIndex(due) - prev).days.to_numpy()
    return n.astype(np.int64), frac


def _shift(days: pd.DatetimeIndex, months: np.ndarray) -> pd.DatetimeIndex:
    """``days + months`` calendar months, month-ends clamped (:func:`cbcv.data.simulate.subscriptions.add_months`)."""
    return pd.DatetimeIndex(add_months(days, np.asarray(months)))


def true_subscriber_equity(
    sim: SimulatedSubscriptions, *, margin: float, annual_discount_rate: float,
    at: str | pd.Timestamp | None = None,
) -> float:
    """The true expected residual equity of the subscribers active at ``at`` (default: the
    simulation's ``as_of``): module docstring."""
    at_ts = sim.as_of if at is None else pd.Timestamp(at).normalize()
    rec = sim.records
    active = rec[(rec["start"] <= at_ts) & (rec["end"].isna() | (rec["end"] > at_ts))]
    if len(active) == 0:
        raise DataError("true subscriber equity: no subscriber is active at the date")
    months = PERIOD_MONTHS[sim.spec.billing_period]
    n, frac = renewals_and_next_due(active["start"], at_ts, months)
    d = float(period_rate(annual_discount_rate, sim.spec.billing_period))
    truth = sim.cohorts.set_index("cohort")
    cohort = pd.PeriodIndex(active["start"].dt.to_period(pd.PeriodIndex(truth.index).freq))
    effect = active["plan"].map({k: p.churn_effect for k, p in sim.spec.plans.items()}).to_numpy(dtype=float)
    logit_mu = truth.loc[cohort, "logit_mu"].to_numpy() + effect
    a, b = alpha_beta(logit_mu, truth.loc[cohort, "log_kappa"].to_numpy())
    total = 0.0
    keys = pd.DataFrame({"a": a, "b": b, "n": n})
    for (ai, bi), group in keys.groupby(["a", "b"], sort=False):
        rows = group.index.to_numpy()
        derl = derl_sbg(np.array([[ai]]), np.array([[bi]]), n[rows][None, :].astype(float), d, DERL_TOL, 1_000_000)[0]
        price = active["price"].to_numpy(dtype=float)[rows]
        total += float(np.sum(price * (1.0 + d) ** -frac[rows] * derl))
    return float(margin) * total


def new_subscriber_value(sim: SimulatedSubscriptions, *, margin: float, annual_discount_rate: float) -> float:
    """The true expected value of a subscriber at acquisition, over the population and the plans
    (module docstring)."""
    pop = sim.spec.population
    x, w = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    w = w / w.sum()
    d = float(period_rate(annual_discount_rate, sim.spec.billing_period))
    value = 0.0
    for plan in sim.spec.plans.values():
        logit_mu = np.log(pop.mean_churn / (1 - pop.mean_churn)) + plan.churn_effect + pop.logit_sd * x
        log_kappa = np.log(pop.kappa) + pop.log_kappa_sd * x
        a, b = alpha_beta(logit_mu[:, None], log_kappa[None, :])
        derl0 = derl_sbg(a.reshape(-1, 1), b.reshape(-1, 1), np.zeros((1, 1)), d, DERL_TOL, 1_000_000)[:, 0]
        clv = plan.price * (1.0 + derl0 / (1.0 + d))
        value += plan.share * float(np.sum(np.outer(w, w).reshape(-1) * clv))
    return float(margin) * value


def true_future_subscriber_equity(
    sim: SimulatedSubscriptions, acquisition: AcquisitionParams, history: pd.PeriodIndex, acquired: int, *,
    margin: float, annual_discount_rate: float, acquisition_cost: float, horizon_years: float,
) -> float:
    """The true expected equity of the subscribers acquired after ``history`` (the periods from
    the market's opening, ``acquired`` subscribers in them) over ``horizon_years``: module
    docstring."""
    period = {code: name for name, code in PANDAS_FREQ.items()}[history.freqstr[0]]
    steps = horizon_periods(horizon_years, period)
    periods = pd.period_range(history[0], periods=len(history) + steps, freq=history.freq)
    expected = acquisition.expected_after(periods, len(history), acquired)
    clv = new_subscriber_value(sim, margin=margin, annual_discount_rate=annual_discount_rate)
    fe = future_customer_equity(expected[None, :], clv, acquisition_cost, annual_discount_rate, unit=period)
    return float(fe.total[0])
