"""Valuation drivers: retention shocks, a new customer's DERT and revenue, unit economics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from cbcv.valuation import drivers as D

PN = dict(r=0.553, alpha=10.578, s=0.606, beta=11.669)  # Fader, Hardie & Lee (2005b), CDNOW
BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)  # Fader, Hardie & Lee (2005a), CDNOW
GG = dict(p=6.25, q=3.74, gamma=15.44)


def _draws(name: str, params: dict[str, float], n: int = 1) -> D.DrawSet:
    return D.DrawSet(name, {k: np.full(n, v) for k, v in params.items()})


def test_retention_shock_divides_mean_dropout_by_the_factor() -> None:
    for k in (0.8, 1.05, 1.3):
        pn = D.with_retention(_draws("pareto_nbd", PN), k).draws()
        assert (PN["s"] / pn["beta"][0]) == pytest.approx(PN["s"] / PN["beta"] / k, rel=1e-12)
        bg = D.with_retention(_draws("bgnbd", BG), k).draws()
        assert bg["a"][0] / (bg["a"][0] + bg["b"][0]) == pytest.approx(BG["a"] / (BG["a"] + BG["b"]) / k, rel=1e-12)
        assert bg["r"][0] == BG["r"] and bg["alpha"][0] == BG["alpha"]
    with pytest.raises(ValueError):
        D.with_retention(_draws("pareto_nbd", PN), 0.0)


@pytest.mark.parametrize("k", [1.0, 1.1])
def test_new_customer_dert_pareto_matches_direct_integration(k: float) -> None:
    # A new Pareto/NBD customer buys at rate λ while alive, dies at rate μ; discounted at δ
    # per week, DERT = E[λ] E[1/(μ + δ)] with λ ~ Gamma(r, α), μ ~ Gamma(s, β) (μ/k under the
    # retention shock: rate parameter k β).
    annual = 0.10
    delta = np.log1p(annual) * 7 / 365.25
    f = D.new_customer_dert_function(_draws("pareto_nbd", PN), "week", 1)
    got = f(k, np.array([annual]))[0]
    dens = stats.gamma(PN["s"], scale=1 / (k * PN["beta"])).pdf
    inner, _ = integrate.quad(lambda m: dens(m) / (m + delta), 0, np.inf, limit=200)
    assert got == pytest.approx(PN["r"] / PN["alpha"] * inner, rel=1e-6)


def test_new_customer_revenue_by_age_matches_simulation() -> None:
    rng = np.random.default_rng(3)
    n = 400_000
    lam = rng.gamma(PN["r"], 1 / PN["alpha"], n)
    mu = rng.gamma(PN["s"], 1 / PN["beta"], n)
    death = rng.exponential(1 / mu)
    length = D.period_length("quarter", "week")
    edges = np.arange(9) * length
    alive = np.clip(np.minimum(death[:, None], edges[None, 1:]) - edges[None, :-1], 0, None)
    counts = rng.poisson(lam[:, None] * alive)
    simulated = counts.mean(axis=0)
    se = counts.std(axis=0) / np.sqrt(n)
    spend = GG["p"] * GG["gamma"] / (GG["q"] - 1)
    got = D.new_customer_revenue_by_age(
        _draws("pareto_nbd", PN), _draws("gamma_gamma", GG), period="quarter", n_periods=8,
        time_unit="week", n_draws=1,
    )[0] / spend
    assert np.all(np.abs(got - simulated) < 4 * se + 1e-9), (got, simulated, se)


def test_existing_revenue_adds_up_to_the_window_expectation(cdnow_weekly) -> None:
    from cbcv import predict as P

    freq, spend = _draws("bgnbd", BG), _draws("gamma_gamma", GG)
    data = cdnow_weekly.head(300)
    by_period = D.existing_revenue_by_period(freq, spend, data, period="quarter", n_periods=3, time_unit="week", n_draws=1)
    length = D.period_length("quarter", "week")
    s = P.expected_spend(spend, data)[0]
    window = (s * P.expected_purchases(freq, 3 * length, data)[0]).sum()
    first = (s * P.expected_purchases(freq, length, data)[0]).sum()
    assert by_period.shape == (1, 3)
    assert by_period[0, 0] == pytest.approx(first, rel=1e-12)
    assert by_period.sum() == pytest.approx(window, rel=1e-12)
    assert np.all(np.diff(by_period[0]) < 0)  # a closed cohort's revenue declines


def test_unit_economics_payback_and_ratio() -> None:
    freq, spend = _draws("pareto_nbd", PN, 2), _draws("gamma_gamma", GG, 2)
    by_age = D.new_customer_revenue_by_age(freq, spend, period="quarter", n_periods=40, time_unit="week", n_draws=2)
    cum = np.cumsum(0.3 * by_age[0])
    cac = np.array([cum[2] * 0.999, 1e9])  # paid back in the third quarter; never
    ue = D.unit_economics(freq, spend, margin=np.full(2, 0.3), annual_discount_rate=np.full(2, 0.1),
                          acquisition_cost=cac, period="quarter", horizon_periods=40, time_unit="week", n_draws=2)
    assert ue.payback_periods[0] == 3 and np.isinf(ue.payback_periods[1])
    dert = D.new_customer_dert_function(freq, "week", 2)(1.0, np.full(2, 0.1))
    assert ue.clv == pytest.approx(0.3 * GG["p"] * GG["gamma"] / (GG["q"] - 1) * dert)
    table = ue.table()
    assert "CLV / CAC" in table.index
    assert ue.to_json_dict()["share_never_paid_back"] == 0.5
    free = D.unit_economics(freq, spend, margin=np.full(2, 0.3), annual_discount_rate=np.full(2, 0.1),
                            acquisition_cost=np.zeros(2), period="quarter", horizon_periods=4, time_unit="week", n_draws=2)
    assert "CLV / CAC" not in free.table().index  # no ratio without an acquisition cost


@pytest.mark.parametrize("name", ["bgnbd", "pareto_nbd"])
def test_dert_function_on_a_chebyshev_grid_matches_the_direct_quadrature(name, cdnow_weekly) -> None:
    model = _draws(name, BG if name == "bgnbd" else PN, n=3)
    direct = D.dert_function(model, cdnow_weekly, "week", 3)
    grid = D.dert_function(model, cdnow_weekly, "week", 3, grid=16)
    for retention, rate in ((1.0, 0.10), (1.05, np.array([0.08, 0.10, 0.12]))):
        np.testing.assert_allclose(grid(retention, rate), direct(retention, rate), rtol=2e-7)


def test_existing_revenue_weights_count_each_unit_customers(cdnow_weekly) -> None:
    freq, spend = _draws("bgnbd", BG, n=2), _draws("gamma_gamma", GG, n=2)
    data = cdnow_weekly.head(400)
    per_customer = D.existing_revenue_by_period(freq, spend, data, period="quarter", n_periods=4,
                                                time_unit="week", n_draws=2)
    z = data.assign(mean_repeat_spend=data["mean_repeat_spend"].where(data["x"] > 0, 0).fillna(0))
    units = z.groupby(["x", "t_x", "T"], as_index=False).agg(mean_repeat_spend=("mean_repeat_spend", "mean"),
                                                              count=("x", "size"))
    weighted = D.existing_revenue_by_period(freq, spend, units, period="quarter", n_periods=4, time_unit="week",
                                            n_draws=2, weights=units["count"].to_numpy())
    assert len(units) < len(data)
    np.testing.assert_allclose(weighted, per_customer, rtol=1e-12)


def test_a_new_customer_brings_its_first_purchase() -> None:
    """CLV at acquisition = margin × (first spend + repeat spend × DERT); the first purchase is
    revenue of the acquisition period and counts towards payback."""
    freq, spend = _draws("pareto_nbd", PN, 2), _draws("gamma_gamma", GG, 2)
    kwargs = dict(period="quarter", n_periods=8, time_unit="week", n_draws=2)
    repeat = D.new_customer_revenue_by_age(freq, spend, **kwargs)
    first = np.array([30.0, 40.0])
    both = D.new_customer_revenue_by_age(freq, spend, first_spend=first, **kwargs)
    np.testing.assert_allclose(both[:, 0] - repeat[:, 0], first)
    np.testing.assert_array_equal(both[:, 1:], repeat[:, 1:])
    ue_kwargs = dict(margin=np.full(2, 0.3), annual_discount_rate=np.full(2, 0.1), acquisition_cost=np.full(2, 10.0),
                     period="quarter", horizon_periods=8, time_unit="week", n_draws=2)
    without = D.unit_economics(freq, spend, **ue_kwargs)
    with_first = D.unit_economics(freq, spend, first_spend=first, **ue_kwargs)
    np.testing.assert_allclose(with_first.clv - without.clv, 0.3 * first, rtol=1e-12)
    # a first purchase of 40 at a 30% margin covers a CAC of 10 at once: paid back in quarter 1
    assert with_first.payback_periods.tolist() == [1.0, 1.0]


def test_first_purchase_spend_posterior_is_the_students_t_of_the_mean() -> None:
    est = D.FirstPurchaseSpend(n=50, mean=35.0, sd=12.0)
    draws = est.draws(200_000, seed=3)
    se = 12.0 / np.sqrt(50)
    assert draws.mean() == pytest.approx(35.0, abs=4 * se * np.sqrt(49 / 47) / np.sqrt(200_000))
    assert draws.std() == pytest.approx(se * np.sqrt(49 / 47), rel=0.01)  # t(49) variance 49/47
    assert np.quantile(draws, 0.95) == pytest.approx(35.0 + se * stats.t.ppf(0.95, 49), rel=2e-3)
    np.testing.assert_array_equal(est.draws(5, seed=3), est.draws(5, seed=3))
    assert D.FirstPurchaseSpend(1, 20.0, float("nan")).draws(3).tolist() == [20.0, 20.0, 20.0]
    with pytest.raises(ValueError, match="no first purchases"):
        D.FirstPurchaseSpend(0, float("nan"), float("nan")).draws(3)
