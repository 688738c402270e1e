"""Gupta, Lehmann & Stuart (2004) customer valuation: hand-worked cases and published values."""

from __future__ import annotations

import math

import mpmath
import pytest

from cbcv.core.errors import ConfigError
from cbcv.valuation.benchmarks import (
    GLS_2004_ANNUAL_DISCOUNT_RATE,
    GLS_2004_FIRMS,
    GLS_2004_PUBLISHED_VALUE,
    GLS_2004_TABLE,
    GLSInputs,
    future_acquisitions_pv,
    gls_customer_value,
    gls_lifetime_value,
    logistic_acquisition_rate,
    logistic_customers,
    period_discount_rate,
    period_retention,
)

FIRMS = sorted(GLS_2004_TABLE)


# ---------------------------------------------------------------------------------- conversions
def test_annual_rates_convert_to_quarters_by_compounding():
    # 1.12 ** 0.25 = sqrt(sqrt(1.12)) = sqrt(1.0583005) = 1.0287373; 0.7 ** 0.25 = sqrt(0.8366600)
    assert period_discount_rate(0.12, 4) == pytest.approx(0.0287373, abs=1e-7)
    assert period_retention(0.7, 4) == pytest.approx(0.9146912, abs=1e-7)
    assert period_retention(0.7, 1) == 0.7


# ------------------------------------------------------------------------------ lifetime value
def test_gls_worked_example_250_dollars_and_the_naive_lifetime_overstatement():
    # GLS (2004): $100 a year, 80 % retention, 12 %: LV = 100 * 0.8 / (1.12 - 0.8) = 250; taking
    # "80 % retention = 5-year life" and discounting 5 full years gives $360, 44 % too much.
    for time in ("discrete", "continuous"):
        assert gls_lifetime_value(100.0, 0.8, 0.12, time=time) == pytest.approx(250.0, rel=1e-12)
    naive = sum(100.0 / 1.12**t for t in range(1, 6))
    assert naive == pytest.approx(360.48, abs=0.01)
    assert naive / 250.0 - 1.0 == pytest.approx(0.44, abs=0.005)


def test_retention_zero_leaves_one_margin_or_none_depending_on_timing():
    assert (
        gls_lifetime_value(40.0, 0.0, 0.05, time="discrete", first_margin="at_acquisition") == 40.0
    )
    assert gls_lifetime_value(40.0, 0.0, 0.05, time="discrete") == 0.0
    assert gls_lifetime_value(40.0, 0.0, 0.05, time="continuous") == 0.0


@pytest.mark.parametrize(
    ("m", "r", "i"), [(10.0, 0.9, 0.03), (3.87, 0.9146912, 0.0287373), (50.0, 0.5, 0.2)]
)
def test_closed_forms_match_long_explicit_sums(m, r, i):
    q = r / (1 + i)
    at_acquisition = sum(m * q**s for s in range(0, 5000))
    after = sum(m * q**s for s in range(1, 5000))
    assert gls_lifetime_value(
        m, r, i, time="discrete", first_margin="at_acquisition"
    ) == pytest.approx(m * (1 + i) / (1 + i - r), rel=1e-12)
    assert gls_lifetime_value(
        m, r, i, time="discrete", first_margin="at_acquisition"
    ) == pytest.approx(at_acquisition, rel=1e-10)
    assert gls_lifetime_value(m, r, i, time="discrete") == pytest.approx(after, rel=1e-10)
    # GLS's continuous intensity (1+i-r)/r integrates to the same r/(1+i-r) multiple
    assert gls_lifetime_value(m, r, i, time="continuous") == pytest.approx(after, rel=1e-10)


def test_finite_horizon_and_margin_growth_match_explicit_sums():
    m, r, i, g, h = 20.0, 0.85, 0.04, 0.02, 7
    after = sum(m * (1 + g) ** (s - 1) * r**s / (1 + i) ** s for s in range(1, h + 1))
    at_acq = sum(m * (1 + g) ** s * r**s / (1 + i) ** s for s in range(0, h))
    kw = {"margin_growth": g, "time": "discrete", "horizon": h}
    assert gls_lifetime_value(m, r, i, **kw) == pytest.approx(after, rel=1e-12)
    assert gls_lifetime_value(m, r, i, first_margin="at_acquisition", **kw) == pytest.approx(
        at_acq, rel=1e-12
    )
    # Gupta & Lehmann (2003): with growth and no horizon, m r / (1 + i - r (1 + g))
    assert gls_lifetime_value(m, r, i, margin_growth=g, time="discrete") == pytest.approx(
        m * r / (1 + i - r * (1 + g)), rel=1e-12
    )
    # continuous, finite horizon: integral_0^H exp(-lambda t) dt, lambda = (1 + i - r) / r
    lam = (1 + i - r) / r
    assert gls_lifetime_value(m, r, i, horizon=10.0) == pytest.approx(
        m * (1 - math.exp(-10 * lam)) / lam
    )
    # retention 1 at zero discount: a finite horizon counts one margin per period
    assert gls_lifetime_value(5.0, 1.0, 0.0, time="discrete", horizon=12) == pytest.approx(60.0)


# ----------------------------------------------------------------------- future acquisitions
def test_logistic_curve_and_its_derivative():
    alpha, beta, gamma = 1000.0, -3.0, 0.5
    # the acquisition rate peaks at t = -beta / gamma = 6, half way to the ceiling
    assert logistic_customers(6.0, alpha, beta, gamma) == pytest.approx(500.0)
    assert logistic_acquisition_rate(6.0, alpha, beta, gamma) == pytest.approx(alpha * gamma / 4)
    h = 1e-5
    slope = (
        logistic_customers(2.0 + h, alpha, beta, gamma)
        - logistic_customers(2.0 - h, alpha, beta, gamma)
    ) / (2 * h)
    assert logistic_acquisition_rate(2.0, alpha, beta, gamma) == pytest.approx(slope, rel=1e-8)


def test_undiscounted_future_acquisitions_are_the_rest_of_the_market():
    # i = 0: every customer still to come counts once: alpha - N(t0) = 1000 - 1000 / (1 + e^2)
    remaining = 1000.0 - 1000.0 / (1.0 + math.exp(2.0))
    assert remaining == pytest.approx(880.797, abs=1e-3)
    for time in ("continuous", "discrete"):
        inputs = GLSInputs(
            margin=1.0,
            retention=0.5,
            discount_rate=0.0,
            acquisition_cost=0.0,
            current_customers=0.0,
            alpha=1000.0,
            beta=-3.0,
            gamma=0.5,
            valuation_time=2.0,
            time=time,
        )
        assert future_acquisitions_pv(inputs) == pytest.approx(remaining, rel=1e-9)


def test_discrete_cohorts_are_discounted_from_the_period_they_join():
    # N(t) = 100 / (1 + 3^-t): N(0) = 50, N(1) = 75, N(2) = 90; cohorts 25 and 15 over two periods
    inputs = GLSInputs(
        margin=1.0,
        retention=0.5,
        discount_rate=0.1,
        acquisition_cost=0.0,
        current_customers=0.0,
        alpha=100.0,
        beta=0.0,
        gamma=math.log(3.0),
        time="discrete",
        acquisition_horizon=2,
    )
    assert future_acquisitions_pv(inputs) == pytest.approx(25 / 1.1 + 15 / 1.21, rel=1e-12)


@pytest.mark.parametrize(
    ("beta", "gamma", "t0", "i"),
    [(-3.0, 0.5, 2.0, 0.03), (-1.0, 0.2, 10.0, 0.0287), (-8.0, 0.15, 0.0, 0.1)],
)
def test_continuous_acquisitions_match_the_hypergeometric_closed_form(beta, gamma, t0, i):
    # Integrating by parts, with N(t0 + u) = alpha / (1 + a e^{-gamma u}) and a = e^{-beta - gamma t0}:
    #   A = -N(t0) + i * integral_0^inf N(t0 + u) e^{-iu} du
    #     = alpha * 2F1(1, i/gamma; 1 + i/gamma; -a) - alpha / (1 + a).
    alpha = 5e6
    a = math.exp(-beta - gamma * t0)
    closed = alpha * float(mpmath.hyp2f1(1, i / gamma, 1 + i / gamma, -a)) - alpha / (1 + a)
    inputs = GLSInputs(
        margin=1.0,
        retention=0.5,
        discount_rate=i,
        acquisition_cost=0.0,
        current_customers=0.0,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        valuation_time=t0,
    )
    assert future_acquisitions_pv(inputs) == pytest.approx(closed, rel=1e-8)


# ----------------------------------------------------------------------------- customer value
def test_hand_worked_customer_value_with_tax():
    # LV = 10 * 0.5 / (1.25 - 0.5) = 20/3; current 1000 LV; future 100 (LV - 2); 20 % tax
    inputs = GLSInputs(
        margin=10.0,
        retention=0.5,
        discount_rate=0.25,
        acquisition_cost=2.0,
        current_customers=1000.0,
        future_acquisitions_pv=100.0,
        tax_rate=0.2,
        time="discrete",
    )
    result = gls_customer_value(inputs)
    assert result.lifetime_value == pytest.approx(20 / 3)
    assert result.pre_tax_value == pytest.approx(1000 * 20 / 3 + 100 * (20 / 3 - 2))
    assert result.current_customers_value == pytest.approx(0.8 * 1000 * 20 / 3)
    assert result.future_customers_value == pytest.approx(0.8 * 100 * (20 / 3 - 2))
    assert result.total_value == pytest.approx(0.8 * 7133.3333333, rel=1e-9)
    assert result.net_value_per_new_customer == pytest.approx(20 / 3 - 2)
    assert set(result.to_dict()) >= {
        "total_value",
        "current_customers_value",
        "future_customers_value",
    }


def test_no_acquisition_growth_leaves_only_current_customers():
    base = {
        "margin": 5.0,
        "retention": 0.9,
        "discount_rate": 0.03,
        "acquisition_cost": 50.0,
        "current_customers": 2e6,
    }
    lv = 5.0 * 0.9 / (1.03 - 0.9)
    cases = [
        GLSInputs(**base, future_acquisitions_pv=0.0),
        GLSInputs(**base, alpha=0.0, beta=0.0, gamma=1.0),  # no market left to acquire
        GLSInputs(**base, alpha=3e6, beta=0.0, gamma=1.0, valuation_time=60.0),  # curve saturated
        GLSInputs(**base, alpha=3e6, beta=0.0, gamma=1.0, valuation_time=60.0, time="discrete"),
    ]
    for inputs in cases:
        result = gls_customer_value(inputs)
        assert abs(result.future_customers_value) < 1e-6
        assert result.total_value == pytest.approx(2e6 * lv, rel=1e-12)


def test_future_customers_worth_less_than_their_acquisition_cost_reduce_value():
    inputs = GLSInputs(
        margin=1.0,
        retention=0.5,
        discount_rate=0.05,
        acquisition_cost=10.0,
        current_customers=100.0,
        alpha=1000.0,
        beta=-2.0,
        gamma=0.4,
    )
    result = gls_customer_value(inputs)
    assert result.lifetime_value < 10.0
    assert result.future_customers_value < 0.0
    assert result.total_value < result.current_customers_value


# ------------------------------------------------------------------------------ published firms
@pytest.mark.parametrize("firm", FIRMS)
def test_published_customer_values_are_reproduced_within_2_percent(firm):
    result = gls_customer_value(GLS_2004_FIRMS[firm])
    assert result.total_value == pytest.approx(GLS_2004_PUBLISHED_VALUE[firm], rel=0.02)
    assert result.total_value == pytest.approx(
        result.current_customers_value + result.future_customers_value
    )


@pytest.mark.parametrize("firm", FIRMS)
def test_published_retention_elasticities_pin_the_quarterly_conventions(firm):
    # GLS: % change in customer value when the *annual* retention rate improves by 1 %. This is
    # reproduced only with r_q = r_a^(1/4) and a 12 % annual rate compounded to a quarter.
    published = GLS_2004_TABLE[firm]
    inputs = GLS_2004_FIRMS[firm]
    better = GLSInputs.from_annual(
        margin=inputs.margin,
        annual_retention=published.annual_retention * 1.01,
        annual_discount_rate=GLS_2004_ANNUAL_DISCOUNT_RATE,
        acquisition_cost=inputs.acquisition_cost,
        current_customers=inputs.current_customers,
        future_acquisitions_pv=inputs.future_acquisitions_pv,
        tax_rate=inputs.tax_rate,
    )
    elasticity = 100 * (
        gls_customer_value(better).total_value / gls_customer_value(inputs).total_value - 1
    )
    assert elasticity == pytest.approx(published.retention_elasticity, abs=0.1)


# -------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retention": 1.2, "future_acquisitions_pv": 0.0}, "retention"),
        ({"retention": 1.0, "discount_rate": 0.0, "future_acquisitions_pv": 0.0}, "diverges"),
        ({}, "acquisition curve"),
        ({"alpha": 1.0, "beta": 0.0}, "all of alpha, beta, gamma"),
        ({"alpha": 1.0, "beta": 0.0, "gamma": 1.0, "future_acquisitions_pv": 3.0}, "not both"),
        ({"future_acquisitions_pv": 0.0, "first_margin": "at_acquisition"}, "discrete-time"),
        (
            {"future_acquisitions_pv": 0.0, "time": "discrete", "customer_horizon": 2.5},
            "whole number",
        ),
        ({"future_acquisitions_pv": 0.0, "tax_rate": 1.0}, "tax rate"),
        ({"future_acquisitions_pv": -1.0}, "future_acquisitions_pv"),
    ],
)
def test_bad_inputs_raise_config_errors(kwargs, message):
    base = {
        "margin": 1.0,
        "retention": 0.5,
        "discount_rate": 0.05,
        "acquisition_cost": 1.0,
        "current_customers": 10.0,
    }
    with pytest.raises(ConfigError, match=message):
        GLSInputs(**{**base, **kwargs})
