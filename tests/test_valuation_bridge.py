"""The bridge from customer equity to value per share, against hand-computed arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cbcv.config import Distribution, Financials
from cbcv.valuation.bridge import pv_annual_costs, value_bridge
from cbcv.valuation.equity import future_customer_equity
from cbcv.valuation.inputs import FinancialDraws, draw_financials


def _fd(n: int = 3, **kw) -> FinancialDraws:
    values = {"contribution_margin": 0.3, "discount_rate": 0.1, "shares_outstanding": 10.0, "horizon_years": 2.0}
    values.update(kw)
    return FinancialDraws.from_values(n, **values)


def test_bridge_arithmetic_by_hand():
    fd = _fd(fixed_costs=100.0, capex=20.0, tax_rate=0.2, non_operating_assets=50.0, net_debt=200.0,
             market_price=60.0)
    res = value_bridge(np.full(3, 1000.0), np.full(3, 500.0), fd)
    # two years, paid mid-year at 10%
    annuity = 1.1**-0.5 + 1.1**-1.5
    pv_fixed, pv_capex = 100 * annuity, 20 * annuity
    taxes = 0.2 * (1500 - pv_fixed - pv_capex)
    operating = 1500 - pv_fixed - pv_capex - taxes
    equity = operating + 50 - 200
    np.testing.assert_allclose(res.pv_fixed_costs, pv_fixed)
    np.testing.assert_allclose(res.pv_capex, pv_capex)
    np.testing.assert_allclose(res.taxes, taxes)
    np.testing.assert_allclose(res.operating_value, operating)
    np.testing.assert_allclose(res.equity_value, equity)
    np.testing.assert_allclose(res.value_per_share, equity / 10)
    assert equity / 10 == pytest.approx(87.5256, abs=1e-4)
    assert res.prob_above() == 1.0 and res.prob_above(90.0) == 0.0


def test_no_tax_on_a_negative_contribution_and_capex_deductibility():
    fd = _fd(fixed_costs=1000.0, tax_rate=0.3)
    res = value_bridge(np.full(3, 100.0), None, fd)
    np.testing.assert_allclose(res.taxes, 0.0)
    np.testing.assert_allclose(res.future_customer_equity, 0.0)
    fd = _fd(capex=100.0, tax_rate=0.5, horizon_years=1.0)
    pv_capex = 100 * 1.1**-0.5
    with_shield = value_bridge(np.full(3, 1000.0), None, fd)
    without = value_bridge(np.full(3, 1000.0), None, fd, capex_deductible=False)
    np.testing.assert_allclose(with_shield.taxes, 0.5 * (1000 - pv_capex))
    np.testing.assert_allclose(without.taxes, 0.5 * 1000)


def test_cost_present_values():
    # perpetuity, mid-year: sum_t c 1.1**-(t - 0.5) = c * 1.1**0.5 / 0.1
    assert pv_annual_costs(100.0, 0.1, 5, perpetuity=True) == pytest.approx(100 * 1.1**0.5 / 0.1)
    assert pv_annual_costs(100.0, 0.1, 2000) == pytest.approx(100 * 1.1**0.5 / 0.1, rel=1e-9)
    # growing perpetuity, end of year: c / (r - g)
    assert pv_annual_costs(100.0, 0.1, 5, timing="end", growth=0.03, perpetuity=True) == pytest.approx(100 / 0.07)
    # half a year, paid evenly: half the amount at the quarter-year point
    assert pv_annual_costs(100.0, 0.1, 0.5) == pytest.approx(50 * 1.1**-0.25)
    # monthly payments of 100/12 for one year, mid-month
    monthly = sum(100 / 12 * 1.1 ** (-(t - 0.5) / 12) for t in range(1, 13))
    assert pv_annual_costs(100.0, 0.1, 1, unit="month") == pytest.approx(monthly)
    per_draw = pv_annual_costs(np.array([100.0, 200.0]), np.array([0.0, 0.1]), 1, timing="end")
    np.testing.assert_allclose(per_draw, [100.0, 200 / 1.1])


def test_cost_horizon_follows_the_terminal_value():
    fd = _fd(n=1, fixed_costs=10.0)
    acq = np.ones((1, 8))
    with_tv = future_customer_equity(acq, 5.0, 0.0, 0.1, terminal="gordon")
    without = future_customer_equity(acq, 5.0, 0.0, 0.1)
    assert value_bridge(0.0, with_tv, fd).pv_fixed_costs[0] == pytest.approx(10 * 1.1**0.5 / 0.1)
    assert value_bridge(0.0, without, fd).pv_fixed_costs[0] == pytest.approx(10 * (1.1**-0.5 + 1.1**-1.5))
    assert value_bridge(0.0, with_tv, fd).conventions["cost_horizon"] == "perpetuity"


def test_probability_above_price_and_json():
    n = 100
    fd = FinancialDraws.from_values(n, contribution_margin=0.3, discount_rate=0.1, shares_outstanding=1.0,
                                 market_price=90.5)
    res = value_bridge(np.arange(1.0, n + 1), None, fd, currency="USD")  # values 1..100 per share
    assert res.prob_above() == pytest.approx(0.10)
    assert res.prob_above(50.5) == pytest.approx(0.50)
    out = json.loads(json.dumps(res.to_json_dict()))
    assert out["n_draws"] == 100 and out["currency"] == "USD" and out["interval"] == 0.9
    assert out["value_per_share"]["median"] == pytest.approx(50.5)
    assert out["value_per_share"]["low"] == pytest.approx(np.quantile(np.arange(1.0, 101), 0.05))
    assert out["prob_value_above_price"] == pytest.approx(0.10)
    assert out["market_price"] == 90.5
    assert list(out["bridge"]) == [
        "existing_customer_equity", "future_customer_equity", "pv_fixed_costs", "pv_capex", "taxes",
        "operating_value", "non_operating_assets", "net_debt", "equity_value",
    ]
    no_price = value_bridge(np.ones(n), None, fd.replace(market_price=None)).to_json_dict()
    assert no_price["prob_value_above_price"] is None


def test_bridge_table_means_add_up_and_intervals_come_from_uncertain_inputs():
    fin = Financials(
        contribution_margin=0.3, discount_rate=0.08, fixed_costs=50.0, tax_rate=0.25,
        net_debt=Distribution(dist="normal", mean=100.0, sd=10.0), shares_outstanding=4.0,
        horizon_years=3.0,
    )
    fd = draw_financials(fin, 100_000, seed=2)
    ce = np.random.default_rng(0).normal(1000.0, 100.0, size=100_000)
    res = value_bridge(ce, 200.0 * np.ones(100_000), fd)
    t = res.bridge_table()
    m = t["mean"]
    assert m["operating_value"] == pytest.approx(
        m["existing_customer_equity"] + m["future_customer_equity"] - m["pv_fixed_costs"] - m["pv_capex"] - m["taxes"]
    )
    assert m["equity_value"] == pytest.approx(m["operating_value"] + m["non_operating_assets"] - m["net_debt"])
    assert m["value_per_share"] == pytest.approx(m["equity_value"] / 4.0)
    assert t.loc["net_debt", "low"] == pytest.approx(100 - 16.449, abs=0.3)
    assert t.loc["net_debt", "high"] == pytest.approx(100 + 16.449, abs=0.3)
    assert list(t["kind"])[:6] == ["add", "add", "subtract", "subtract", "subtract", "subtotal"]
    ps = res.bridge_table(per_share=True)
    assert ps.loc["equity_value", "mean"] == pytest.approx(m["value_per_share"])
