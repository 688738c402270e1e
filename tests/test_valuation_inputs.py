"""Financial draws and discounting: distributions have their stated moments, constants are
broadcast, and rate conversions match hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cbcv.config import Distribution, Financials
from cbcv.core.discount import continuous_rate, discount_factors, period_rate
from cbcv.core.draws import summarize_draws
from cbcv.core.errors import ConfigError
from cbcv.core.units import horizon_periods
from cbcv.valuation.inputs import FinancialDraws, draw_financials

N = 200_000


def _fin(**kw) -> Financials:
    base = {"contribution_margin": 0.3, "discount_rate": 0.1, "shares_outstanding": 1000.0}
    base.update(kw)
    return Financials(**base)


def test_constants_are_broadcast():
    fd = draw_financials(_fin(net_debt=250.0, tax_rate=0.21, market_price=12.0), n_draws=7, seed=1)
    assert fd.n_draws == 7
    assert np.all(fd.contribution_margin == 0.3)
    assert np.all(fd.net_debt == 250.0)
    assert np.all(fd.tax_rate == 0.21)
    assert np.all(fd.capex == 0.0)  # config default
    assert fd.uncertain == ()
    assert fd.market_price == 12.0 and fd.shares_outstanding == 1000.0 and fd.horizon_years == 10.0


def test_normal_draws_have_the_stated_mean_and_sd():
    fd = draw_financials(_fin(contribution_margin=Distribution(dist="normal", mean=0.3, sd=0.05)), N, seed=3)
    x = fd.contribution_margin
    assert fd.uncertain == ("contribution_margin",)
    assert abs(x.mean() - 0.3) < 4 * 0.05 / np.sqrt(N)
    assert x.std() == pytest.approx(0.05, rel=0.01)


def test_lognormal_is_parametrised_by_the_variables_own_mean_and_sd():
    fd = draw_financials(_fin(fixed_costs=Distribution(dist="lognormal", mean=100.0, sd=30.0)), N, seed=4)
    x = fd.fixed_costs
    assert x.min() > 0
    assert abs(x.mean() - 100.0) < 4 * 30.0 / np.sqrt(N)
    assert x.std() == pytest.approx(30.0, rel=0.03)
    # the log has variance log(1 + 0.3**2) and mean log(100) - variance / 2
    s2 = np.log(1.09)
    assert np.log(x).var() == pytest.approx(s2, rel=0.02)
    assert np.log(x).mean() == pytest.approx(np.log(100.0) - s2 / 2, abs=4 * np.sqrt(s2 / N))


def test_uniform_90pct_interval_is_its_5_and_95_percent_points():
    fd = draw_financials(_fin(acquisition_cost=Distribution(dist="uniform", low=10.0, high=30.0)), N, seed=5)
    s = summarize_draws({"cac": fd.acquisition_cost}, interval=0.9).loc["cac"]
    assert s["low"] == pytest.approx(11.0, abs=0.1)
    assert s["high"] == pytest.approx(29.0, abs=0.1)
    assert s["median"] == pytest.approx(20.0, abs=0.1)


def test_normal_90pct_interval():
    x = np.random.default_rng(0).normal(size=N)
    s = summarize_draws({"z": x}).loc["z"]
    z = stats.norm.ppf(0.95)
    assert s["low"] == pytest.approx(-z, abs=0.02) and s["high"] == pytest.approx(z, abs=0.02)


def test_triangular_beta_and_truncated_normal():
    fd = draw_financials(
        _fin(
            capex=Distribution(dist="triangular", low=0.0, mode=10.0, high=50.0),
            tax_rate=Distribution(dist="beta", alpha=2.0, beta=6.0, low=0.1, high=0.5),
            contribution_margin=Distribution(dist="normal", mean=0.05, sd=0.1, low=0.0, high=1.0),
        ),
        N,
        seed=6,
    )
    assert fd.capex.mean() == pytest.approx(20.0, abs=0.1)  # (low + mode + high) / 3
    assert fd.tax_rate.min() >= 0.1 and fd.tax_rate.max() <= 0.5
    assert fd.tax_rate.mean() == pytest.approx(0.1 + 0.4 * 2 / 8, abs=0.001)
    m = fd.contribution_margin
    assert m.min() >= 0.0 and m.max() <= 1.0
    expected = stats.truncnorm.mean(-0.5, 9.5, loc=0.05, scale=0.1)
    assert m.mean() == pytest.approx(expected, abs=0.001)


def test_draws_are_reproducible_and_each_input_has_its_own_stream():
    margin = Distribution(dist="normal", mean=0.3, sd=0.05)
    a = draw_financials(_fin(contribution_margin=margin), 100, seed=11)
    b = draw_financials(_fin(contribution_margin=margin), 100, seed=11)
    c = draw_financials(
        _fin(contribution_margin=margin, net_debt=Distribution(dist="uniform", low=0, high=1)), 100, seed=11
    )
    d = draw_financials(_fin(contribution_margin=margin), 100, seed=12)
    np.testing.assert_array_equal(a.contribution_margin, b.contribution_margin)
    np.testing.assert_array_equal(a.contribution_margin, c.contribution_margin)
    assert not np.array_equal(a.contribution_margin, d.contribution_margin)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Distribution(dist="lognormal", mean=1.0, sd=0.1, low=0.0), "does not use low"),
        (Distribution(dist="lognormal", mean=-1.0, sd=0.1), "positive mean"),
        (Distribution(dist="triangular", low=0.0, mode=5.0, high=2.0), "low <= mode <= high"),
    ],
)
def test_bad_distribution_parameters_name_the_field(spec, message):
    with pytest.raises(ConfigError, match=f"financials.fixed_costs: .*{message}"):
        draw_financials(_fin(fixed_costs=spec), 10, seed=0)


def test_tax_rate_draws_outside_0_1_are_rejected():
    with pytest.raises(ConfigError, match="tax_rate"):
        draw_financials(_fin(tax_rate=Distribution(dist="normal", mean=0.2, sd=0.5)), 1000, seed=0)


def test_financial_draws_broadcast_scalars_to_array_length():
    fd = FinancialDraws(
        contribution_margin=np.array([0.2, 0.3, 0.4]), discount_rate=0.1, acquisition_cost=0.0,
        fixed_costs=0.0, capex=0.0, tax_rate=0.0, net_debt=5.0, non_operating_assets=0.0,
        shares_outstanding=10.0,
    )
    assert fd.n_draws == 3
    np.testing.assert_array_equal(fd.net_debt, [5.0, 5.0, 5.0])
    with pytest.raises(ValueError, match="one common length"):
        fd.replace(net_debt=np.ones(2))


def test_rate_conversions():
    assert period_rate(0.1, "month") == pytest.approx(1.1 ** (1 / 12) - 1)
    assert (1 + period_rate(0.1, "month")) ** 12 == pytest.approx(1.1)
    assert (1 + period_rate(0.1, "week")) ** (365.25 / 7) == pytest.approx(1.1)
    assert period_rate(0.1, "year") == pytest.approx(0.1)
    assert continuous_rate(0.1, "week") == pytest.approx(np.log(1.1) * 7 / 365.25)
    assert continuous_rate(0.1, "day") == pytest.approx(np.log(1.1) / 365.25)
    with pytest.raises(ConfigError, match="time unit 'fortnight'"):
        period_rate(0.1, "fortnight")
    with pytest.raises(ConfigError, match="above -1"):
        period_rate(-1.5, "year")


def test_discount_factors_mid_end_start():
    mid = discount_factors(0.1, 4, "quarter")
    np.testing.assert_allclose(mid, [1.1 ** (-0.125), 1.1 ** (-0.375), 1.1 ** (-0.625), 1.1 ** (-0.875)])
    np.testing.assert_allclose(discount_factors(0.1, 2, "year", "end"), [1 / 1.1, 1 / 1.21])
    np.testing.assert_allclose(discount_factors(0.1, 2, "year", "start"), [1.0, 1 / 1.1])
    per_draw = discount_factors(np.array([0.0, 0.1]), 3, "month")
    assert per_draw.shape == (2, 3)
    np.testing.assert_allclose(per_draw[0], 1.0)
    np.testing.assert_allclose(per_draw[1], [1.1 ** (-0.5 / 12), 1.1 ** (-1.5 / 12), 1.1 ** (-2.5 / 12)])


def test_horizon_periods():
    assert horizon_periods(10, "quarter") == 40
    assert horizon_periods(10, "week") == 522  # 521.79 weeks, rounded
    assert horizon_periods(0.01, "year") == 1
