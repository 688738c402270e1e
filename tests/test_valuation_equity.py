"""Customer equity against hand-worked values: future customers (geometric acquisitions in
closed form, Gordon terminal value) and the forward revenue layer cake. The existing customers'
equity is the total of :func:`cbcv.clv.customer_clv`, tested in ``test_clv.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbcv.core.draws import draw_matrix
from cbcv.core.errors import ConfigError
from cbcv.valuation.equity import future_customer_equity, revenue_layers


def test_draw_matrix_shapes():
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
