"""Customer equity against hand-worked values: existing customers (sum of margin x spend x
DERT per draw, groups, deciles, concentration), future customers (geometric acquisitions in
closed form, Gordon terminal value) and the forward revenue layer cake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbcv.core.draws import draw_matrix
from cbcv.core.errors import ConfigError, DataError
from cbcv.valuation import equity
from cbcv.valuation.equity import existing_customer_equity, future_customer_equity, revenue_layers


# ------------------------------------------------------------------------------------------
# existing customers
# ------------------------------------------------------------------------------------------
def test_two_customers_by_hand():
    # DERT 2 and 5, spend 10 and 20, margin 0.3: 0.3 * (10*2 + 20*5) = 36 in every draw
    dert = np.array([[2.0, 5.0]] * 3)
    ce = existing_customer_equity(dert, np.array([10.0, 20.0]), 0.3)
    np.testing.assert_allclose(ce.total, [36.0, 36.0, 36.0])
    s = ce.summary().loc["existing_customer_equity"]
    assert s["median"] == pytest.approx(36.0) and s["low"] == pytest.approx(36.0)
    np.testing.assert_allclose(ce.customers["value_mean"], [6.0, 30.0])
    assert list(ce.customers["rank"]) == [2, 1]


def test_per_draw_inputs_pair_draw_by_draw():
    dert = np.array([[1.0, 2.0], [3.0, 4.0]])
    spend = np.array([[10.0, 10.0], [20.0, 5.0]])
    margin = np.array([0.5, 0.1])
    ce = existing_customer_equity(dert, spend, margin)
    # draw 0: 0.5 * (10 + 20) = 15; draw 1: 0.1 * (60 + 20) = 8
    np.testing.assert_allclose(ce.total, [15.0, 8.0])
    np.testing.assert_allclose(ce.customers["value_mean"], [(5.0 + 6.0) / 2, (10.0 + 2.0) / 2])


def test_groups_deciles_and_concentration():
    n = 100
    values = np.arange(1, n + 1, dtype=float)  # customer i is worth i (margin 1, spend 1)
    dert = np.tile(values, (4, 1))
    customers = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(n)], "cohort": np.where(values <= 40, "A", "B")}
    )
    ce = existing_customer_equity(dert, 1.0, 1.0, customers)
    total = values.sum()  # 5050
    by = ce.by("cohort")
    assert by.loc["A", "median"] == pytest.approx(values[:40].sum())
    assert by.loc["B", "median"] == pytest.approx(values[40:].sum())
    assert by.loc["A", "customers"] == 40 and by["share"].sum() == pytest.approx(1.0)
    dec = ce.by("value_decile")
    assert dec.loc[1, "mean"] == pytest.approx(values[90:].sum())  # the ten most valuable
    assert dec.loc[10, "mean"] == pytest.approx(values[:10].sum())
    assert (dec["customers"] == 10).all()
    conc = ce.concentration()
    assert conc.loc["top 1%", "median"] == pytest.approx(100 / total)
    assert conc.loc["top 10%", "median"] == pytest.approx(values[90:].sum() / total)
    assert ce.customers.loc[99, "value_decile"] == 1 and ce.customers.loc[0, "value_decile"] == 10
    indexed = existing_customer_equity(dert, 1.0, 1.0, customers.set_index("customer_id"))
    assert indexed.customers.loc[99, "customer_id"] == "c99"
    with pytest.raises(ValueError, match="no grouping 'region'"):
        ce.by("region")
    with pytest.raises(DataError, match="region"):
        existing_customer_equity(dert, 1.0, 1.0, customers, group_by=["region"])


def test_chunked_aggregation_matches_one_pass(monkeypatch):
    rng = np.random.default_rng(1)
    dert = rng.gamma(1.0, 2.0, size=(50, 333))
    spend = rng.gamma(5.0, 10.0, size=(50, 333))
    margin = rng.uniform(0.2, 0.4, size=50)
    customers = pd.DataFrame({"cohort": rng.choice(["a", "b", "c"], size=333)})
    whole = existing_customer_equity(dert, spend, margin, customers)
    monkeypatch.setattr(equity, "CHUNK_CELLS", 50 * 7)  # 7 customers per chunk
    chunked = existing_customer_equity(dert, spend, margin, customers)
    expected = (margin[:, None] * spend * dert).sum(axis=1)
    np.testing.assert_allclose(whole.total, expected)
    np.testing.assert_allclose(chunked.total, expected)
    pd.testing.assert_frame_equal(whole.group_draws["cohort"], chunked.group_draws["cohort"])
    pd.testing.assert_frame_equal(whole.top_share_draws, chunked.top_share_draws)
    pd.testing.assert_frame_equal(whole.customers, chunked.customers)


def test_shape_errors():
    with pytest.raises(ValueError, match="spend"):
        existing_customer_equity(np.ones((3, 2)), np.ones(5), 0.3)
    with pytest.raises(ValueError, match="margin"):
        existing_customer_equity(np.ones((3, 2)), 1.0, np.ones(4))
    with pytest.raises(DataError, match="not finite for customer b"):
        existing_customer_equity(
            np.array([[1.0, np.nan]]), 1.0, 0.3, pd.DataFrame({"customer_id": ["a", "b"]})
        )
    with pytest.raises(ValueError, match="ambiguous"):
        draw_matrix(np.ones(3), 3, 3, "clv")
    assert draw_matrix(np.arange(3.0), 3, 5, "clv")[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert draw_matrix(np.arange(5.0), 3, 5, "clv")[2].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


# ------------------------------------------------------------------------------------------
# future customers
# ------------------------------------------------------------------------------------------
def test_geometric_acquisitions_closed_form():
    # n_t = 100 * 0.9**(t-1) new customers per quarter, each worth CLV 50 - CAC 20 = 30,
    # discounted mid-quarter at 12% a year: PV = 100 * 30 * v**0.5 * (1 - (0.9 v)**T) / (1 - 0.9 v)
    T, q, r = 20, 0.9, 0.12
    n = 100.0 * q ** np.arange(T)
    fe = future_customer_equity(np.tile(n, (2, 1)), 50.0, 20.0, r, unit="quarter")
    v = 1.12 ** (-1 / 4)
    closed = 100 * 30 * v**0.5 * (1 - (q * v) ** T) / (1 - q * v)
    np.testing.assert_allclose(fe.total, closed, rtol=1e-12)
    np.testing.assert_allclose(fe.pv_clv - fe.pv_acquisition_cost, closed, rtol=1e-12)
    np.testing.assert_allclose(fe.pv_clv, closed * 50 / 30, rtol=1e-12)
    np.testing.assert_allclose(fe.terminal_value, 0.0)
    by = fe.by_period()
    assert by["pv_net_value_mean"].sum() == pytest.approx(closed)
    assert len(by) == T and by["acquisitions_median"].iloc[0] == 100.0


def test_gordon_terminal_value_formula_and_perpetuity_consistency():
    # acquisitions growing at g per quarter for T quarters, then a Gordon tail at the same g:
    # horizon + terminal value = the growing perpetuity n0 c v**0.5 / (1 - (1+g) v)
    g_annual, r = 0.02, 0.10
    g = 1.02 ** 0.25 - 1
    v = 1.10 ** (-0.25)
    T = 12
    n = 40.0 * (1 + g) ** np.arange(T)
    fe = future_customer_equity(n[None, :], 25.0, 5.0, r, terminal="gordon", terminal_growth=g_annual)
    c = 20.0
    r_p = 1.10 ** 0.25 - 1
    tv_by_hand = v ** (T - 0.5) * n[-1] * c * (1 + g) / (r_p - g)
    assert fe.terminal_value[0] == pytest.approx(tv_by_hand, rel=1e-12)
    assert fe.total[0] == pytest.approx(40.0 * c * v**0.5 / (1 - (1 + g) * v), rel=1e-10)
    with pytest.raises(ConfigError, match="not below the discount rate"):
        future_customer_equity(n[None, :], 25.0, 5.0, 0.02, terminal="gordon", terminal_growth=0.03)


def test_future_equity_per_draw_inputs_and_horizon():
    acq = pd.DataFrame([[10.0, 10.0, 10.0], [20.0, 0.0, 5.0]], columns=["1998Q3", "1998Q4", "1999Q1"])
    clv = np.array([[30.0], [40.0]])
    fe = future_customer_equity(acq, clv, np.array([10.0, 0.0])[:, None], 0.0, horizon=2)
    # rate 0: no discounting. draw 0: 2 periods * 10 * (30 - 10); draw 1: 20 * 40
    np.testing.assert_allclose(fe.total, [400.0, 800.0])
    assert list(fe.periods) == ["1998Q3", "1998Q4"]
    with pytest.raises(ConfigError, match="horizon of 4 periods"):
        future_customer_equity(acq, 1.0, 0.0, 0.1, horizon=4)


# ------------------------------------------------------------------------------------------
# forward revenue layers
# ------------------------------------------------------------------------------------------
def test_revenue_layers_by_hand():
    existing = np.array([[100.0, 80.0, 60.0], [50.0, 40.0, 30.0]])
    by_age = np.array([10.0, 4.0, 2.0])  # a new customer's revenue at ages 0, 1, 2
    acq = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    lay = revenue_layers(existing, by_age, acq, periods=["Q1", "Q2", "Q3"])
    assert lay.layers == ("existing", "cohort Q1", "cohort Q2", "cohort Q3")
    np.testing.assert_allclose(lay.draws[0, 1], [10.0, 4.0, 2.0])  # 1 customer from Q1
    np.testing.assert_allclose(lay.draws[0, 2], [0.0, 20.0, 8.0])  # 2 customers from Q2
    np.testing.assert_allclose(lay.draws[0, 3], [0.0, 0.0, 30.0])
    np.testing.assert_allclose(lay.total[0], [110.0, 104.0, 100.0])
    np.testing.assert_allclose(lay.total[1], [50.0, 50.0, 34.0])
    means = lay.mean_table()
    assert means.loc["Q2", "existing"] == pytest.approx(60.0)
    summ = lay.summary()
    assert set(summ["layer"]) == {*lay.layers, "total"}
    grouped = lay.grouped(2)
    assert grouped.layers == ("existing", "cohort Q1 to cohort Q2", "cohort Q3")
    np.testing.assert_allclose(grouped.total, lay.total)
    with pytest.raises(ValueError, match="ages"):
        revenue_layers(existing, by_age[:2], acq)
