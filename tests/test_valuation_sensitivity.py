"""Sensitivities against analytic answers: the margin elasticity of V = m A - C is
m A / (m A - C); scenarios equal a recomputation by hand; DERT sources (function, precomputed
mapping, plain array) are honoured."""

from __future__ import annotations

import numpy as np
import pytest

from cbcv.core.errors import ConfigError
from cbcv.valuation.bridge import pv_annual_costs, value_bridge
from cbcv.valuation.equity import future_customer_equity
from cbcv.valuation.inputs import FinancialDraws
from cbcv.valuation.sensitivity import ValuationModel, elasticities, scenarios, tornado

D = 4
BASE_DERT = np.tile([2.0, 5.0, 3.0], (D, 1))
SPEND = np.array([10.0, 20.0, 30.0])
A = float(BASE_DERT[0] @ SPEND)  # discounted revenue of the base: 210


def _fd(**kw) -> FinancialDraws:
    values = {"contribution_margin": 0.3, "discount_rate": 0.1, "shares_outstanding": 2.0,
              "horizon_years": 5.0, "fixed_costs": 5.0}
    values.update(kw)
    return FinancialDraws.from_values(D, **values)


def _dert_fn(retention: float, rate: np.ndarray) -> np.ndarray:
    # a stand-in for the model: DERT proportional to retention and to 0.1 / rate
    return BASE_DERT * retention * (0.1 / rate)[:, None]


def test_margin_elasticity_is_mA_over_mA_minus_C():
    fd = _fd()
    model = ValuationModel(fd, BASE_DERT, SPEND)
    C = float(pv_annual_costs(5.0, 0.1, 5.0))
    table = elasticities(model, step=0.05)
    assert table.loc["margin", "elasticity"] == pytest.approx(0.3 * A / (0.3 * A - C), rel=1e-9)
    assert table.loc["margin", "value_base"] == pytest.approx((0.3 * A - C) / 2.0)
    # retention and the discount rate need DERT recomputed, acquisition inputs need acquisitions
    assert list(table.index) == ["margin"]
    assert table.attrs["skipped"] == ["retention", "discount_rate", "acquisition_cost", "acquisition_volume"]


def test_full_draw_change_with_uncertain_margin():
    margins = np.array([0.2, 0.25, 0.3, 0.4])
    model = ValuationModel(_fd(contribution_margin=margins), BASE_DERT, SPEND)
    table = elasticities(model, ["margin"], step=0.1)
    # per draw, V_d = (m_d A - C) / S: +1% of margin adds m_d A / S / 100 to the value per share
    assert table.loc["margin", "change_per_pct_median"] == pytest.approx(np.median(margins) * A / 2 / 100)
    assert table.loc["margin", "change_per_pct_low"] == pytest.approx(np.quantile(margins, 0.05) * A / 2 / 100)


def test_scenario_margin_times_1_1_matches_recomputation():
    fd = _fd(tax_rate=0.25, net_debt=3.0)
    model = ValuationModel(fd, BASE_DERT, SPEND)
    table = scenarios(model, {"margin x1.1": {"margin": 1.1}})
    by_hand = value_bridge(np.full(D, 0.33 * A), None, fd.replace(contribution_margin=0.33))
    assert table.loc["margin x1.1", "median"] == pytest.approx(np.median(by_hand.value_per_share))
    base = value_bridge(np.full(D, 0.3 * A), None, fd)
    assert table.loc["base", "median"] == pytest.approx(np.median(base.value_per_share))
    assert table.loc["margin x1.1", "change"] == pytest.approx(
        np.median(by_hand.value_per_share) - np.median(base.value_per_share)
    )
    assert np.isnan(table.loc["base", "prob_above_price"])


def test_retention_and_discount_rate_through_a_dert_function():
    fd = _fd()
    model = ValuationModel(fd, _dert_fn, SPEND)
    C = float(pv_annual_costs(5.0, 0.1, 5.0))
    up = model.evaluate(retention=1.05)
    np.testing.assert_allclose(up.existing_customer_equity, 0.3 * A * 1.05)
    np.testing.assert_allclose(up.value_per_share, (0.3 * A * 1.05 - C) / 2)
    churn = model.evaluate(churn=1 / 1.05)
    np.testing.assert_allclose(churn.value_per_share, up.value_per_share)
    # discount rate x1.1 (10% -> 11%) and +1pp are the same change here
    mult = model.evaluate(discount_rate=1.1)
    shift = model.evaluate(discount_rate_shift=0.01)
    np.testing.assert_allclose(mult.value_per_share, shift.value_per_share)
    by_hand = (0.3 * A * 0.1 / 0.11 - float(pv_annual_costs(5.0, 0.11, 5.0))) / 2
    np.testing.assert_allclose(mult.value_per_share, by_hand)
    table = elasticities(model, step=0.05)
    assert list(table.index) == ["retention", "margin", "discount_rate"]
    # existing equity is proportional to retention: elasticity m A / (m A - C), as for margin
    assert table.loc["retention", "elasticity"] == pytest.approx(table.loc["margin", "elasticity"])


def test_precomputed_dert_draws():
    table = {1.0: BASE_DERT, 1.05: BASE_DERT * 1.05, (1.0, 1.1): BASE_DERT * 0.9}
    model = ValuationModel(_fd(), table, SPEND)
    np.testing.assert_allclose(model.evaluate(retention=1.05).existing_customer_equity, 0.3 * A * 1.05)
    np.testing.assert_allclose(model.evaluate(discount_rate=1.1).existing_customer_equity, 0.3 * A * 0.9)
    assert model.can_evaluate({"retention": 1.05}) and not model.can_evaluate({"retention": 0.95})
    with pytest.raises(ConfigError, match="no DERT for existing customers at retention x0.95"):
        model.evaluate(retention=0.95)
    with pytest.raises(ConfigError, match="unknown sensitivity input 'loyalty'"):
        model.evaluate(loyalty=1.1)


def test_future_customers_cac_scenario_and_volume_elasticity():
    fd = _fd(fixed_costs=0.0, acquisition_cost=4.0, horizon_years=2.0)
    acq = np.full((D, 12), 10.0)  # 12 quarters forecast, 8 used for a 2-year horizon
    new_dert = np.full(D, 1.5)
    model = ValuationModel(
        fd, np.zeros((D, 3)), SPEND, acquisitions=acq, new_customer_dert=new_dert, new_customer_spend=20.0
    )
    clv = 0.3 * 20.0 * 1.5  # 9 per new customer
    res = scenarios(model, {"CAC +20%": {"acquisition_cost": 1.2}})
    fe = future_customer_equity(acq[:, :8], clv, 4.8, 0.1, unit="quarter")
    assert res.loc["CAC +20%", "median"] == pytest.approx(np.median(fe.total) / 2)
    el = elasticities(model, ["acquisition_volume", "acquisition_cost"])
    assert el.loc["acquisition_volume", "elasticity"] == pytest.approx(1.0)  # value proportional to volume
    assert el.loc["acquisition_cost", "elasticity"] == pytest.approx(-4.0 / (clv - 4.0))
    with pytest.raises(ConfigError, match="needs 40 quarters"):
        ValuationModel(fd.replace(horizon_years=10.0), np.zeros((D, 3)), SPEND, acquisitions=acq,
                       new_customer_dert=new_dert).evaluate()


def test_tornado_rows_sorted_by_swing():
    model = ValuationModel(_fd(), _dert_fn, SPEND)
    t = tornado(model, step=0.1)
    assert list(t["swing"]) == sorted(t["swing"], reverse=True)
    assert t.loc["margin", "value_high"] == pytest.approx(np.median(model.evaluate(margin=1.1).value_per_share))
    assert t.loc["margin", "value_low"] == pytest.approx(np.median(model.evaluate(margin=0.9).value_per_share))
    custom = tornado(model, {"discount_rate_shift": (-0.02, 0.02), "fixed_costs": (0.5, 1.5)})
    assert set(custom.index) == {"discount_rate_shift", "fixed_costs"}
    assert custom.loc["discount_rate_shift", "value_low"] > custom.loc["discount_rate_shift", "value_high"]
