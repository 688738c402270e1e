"""Shifted-beta-geometric model: hand-worked probabilities, the published estimates of Fader &
Hardie (2007), equivalence of the data forms, several cohorts, errors, and parameter recovery."""

from __future__ import annotations

import arviz as az
import mpmath as mp
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.optimize import minimize
from scipy.special import betaln as sp_betaln

from cbcv.core.errors import CbcvError, DataError
from cbcv.data.research_sets import read_multi_cohort_retention, read_two_segment_retention
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.sbg import ShiftedBetaGeoModel, betaln_large, survivor_table_to_durations

FLAT = {"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}
MAP = SamplerSettings(method="map")


def _map_estimates(model: ShiftedBetaGeoModel, data: pd.DataFrame) -> dict[str, float]:
    model.fit(data, MAP)
    return {k: float(v[0]) for k, v in model.draws().items()}


def _scipy_loglike(alpha: float, beta: float, table: pd.DataFrame) -> float:
    """The sBG log-likelihood of a survivor table written out independently with scipy."""
    total = 0.0
    for _, group in table.groupby("cohort"):
        alive = group.sort_values("t")["alive"].to_numpy(dtype=float)
        t = np.arange(1, len(alive))
        lost = alive[:-1] - alive[1:]
        total += np.sum(lost * (sp_betaln(alpha + 1, beta + t - 1) - sp_betaln(alpha, beta)))
        total += alive[-1] * (sp_betaln(alpha, beta + len(alive) - 1) - sp_betaln(alpha, beta))
    return float(total)


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    return read_two_segment_retention()


def test_hand_worked_uniform_churn_probability() -> None:
    # alpha = beta = 1 (theta uniform): S(t) = 1/(t+1), P(T=t) = 1/(t(t+1)).
    durations = pd.DataFrame(
        {"t": [1, 2, 2, 3], "churned": [True, True, False, False], "count": [3, 1, 2, 4]}
    )
    expected = 3 * np.log(1 / 2) + np.log(1 / 6) + 2 * np.log(1 / 3) + 4 * np.log(1 / 4)
    ll = ShiftedBetaGeoModel().point_loglike({"alpha": 1.0, "beta": 1.0}, durations)
    assert ll == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("segment", "alpha", "beta"), [("Regular", 0.704, 1.182), ("High-end", 0.668, 3.806)]
)
def test_published_estimates_first_seven_years(segments, segment, alpha, beta) -> None:
    # Fader & Hardie (2007): 1,000 customers at t = 0, years 1-7 of churn for estimation.
    table = segments[(segments["cohort"] == segment) & (segments["t"] <= 7)]
    est = _map_estimates(ShiftedBetaGeoModel(priors=FLAT), table)
    assert est["alpha"] == pytest.approx(alpha, rel=0.01)
    assert est["beta"] == pytest.approx(beta, rel=0.01)
    ll = ShiftedBetaGeoModel().point_loglike(est, table)
    assert ll == pytest.approx(_scipy_loglike(est["alpha"], est["beta"], table), rel=1e-10)


def test_individual_durations_give_the_survivor_table_fit(segments) -> None:
    table = segments[(segments["cohort"] == "Regular") & (segments["t"] <= 7)]
    durations = survivor_table_to_durations(table)
    # one row per customer, as a subscription log would give them
    individual = durations.loc[durations.index.repeat(durations["count"].astype(int))]
    individual = individual[["t", "churned"]].reset_index(drop=True)
    assert len(individual) == 1000

    m_table, m_ind = ShiftedBetaGeoModel(priors=FLAT), ShiftedBetaGeoModel(priors=FLAT)
    est_table, est_ind = _map_estimates(m_table, table), _map_estimates(m_ind, individual)
    for k in ("alpha", "beta"):
        assert est_ind[k] == pytest.approx(est_table[k], rel=1e-4)
    assert m_ind.idata.attrs["n_distinct"] == m_table.idata.attrs["n_distinct"] == 8
    assert m_ind.idata.attrs["n_customers"] == m_table.idata.attrs["n_customers"] == 1000
    # the pointwise log-likelihood has one entry per customer in both forms
    assert m_table.log_likelihood().shape == (1, 1, 1000)
    assert float(m_table.log_likelihood().sum()) == pytest.approx(
        float(m_ind.log_likelihood().sum()), rel=1e-8
    )


def test_multi_cohort_fit_is_the_pooled_mle_and_tracks_survival() -> None:
    table = read_multi_cohort_retention()
    model = ShiftedBetaGeoModel(priors=FLAT)
    est = _map_estimates(model, table)
    assert model.idata.attrs["n_customers"] == 50_000

    # independent maximum likelihood over all five cohorts (different lengths) with scipy
    res = minimize(
        lambda v: -_scipy_loglike(np.exp(v[0]), np.exp(v[1]), table),
        x0=[0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-8},
    )
    alpha, beta = np.exp(res.x)
    assert est["alpha"] == pytest.approx(alpha, rel=1e-3)
    assert est["beta"] == pytest.approx(beta, rel=1e-3)

    # sensible: the fitted survivor curve follows the observed share remaining (all cohorts
    # share the same observed path) within one percentage point
    observed = table[table["cohort"] == "Cohort 1"]["alive"].to_numpy() / 10_000
    t = np.arange(len(observed))
    fitted = np.exp(sp_betaln(est["alpha"], est["beta"] + t) - sp_betaln(est["alpha"], est["beta"]))
    np.testing.assert_allclose(fitted, observed, atol=0.01)


def test_survivor_table_errors() -> None:
    model = ShiftedBetaGeoModel()
    rising = pd.DataFrame({"cohort": ["A"] * 3, "t": [0, 1, 2], "alive": [100, 80, 90]})
    with pytest.raises(DataError, match=r"cohort 'A' row 2: column 'alive' increases"):
        model.prepare(rising)
    gap = pd.DataFrame({"t": [0, 1, 3], "alive": [100, 80, 70]})
    with pytest.raises(DataError, match=r"column 't' must run 0, 1, 2"):
        model.prepare(gap)
    with pytest.raises(DataError, match=r"column 'alive' row 1: expected a whole number"):
        model.prepare(pd.DataFrame({"t": [0, 1], "alive": [100, -5]}))
    with pytest.raises(DataError, match=r"column 'alive' row 1: not a number"):
        model.prepare(pd.DataFrame({"t": [0, 1], "alive": ["100", "many"]}))


def test_duration_errors() -> None:
    model = ShiftedBetaGeoModel()
    with pytest.raises(DataError, match=r"column 't' row 1: a churned customer needs t >= 1"):
        model.prepare(pd.DataFrame({"t": [2, 0], "churned": [1, 1]}))
    with pytest.raises(DataError, match=r"column 'churned' row 0: expected 0/1"):
        model.prepare(pd.DataFrame({"t": [2], "churned": [3]}))
    with pytest.raises(DataError, match=r"column 't' row 0: expected a whole number"):
        model.prepare(pd.DataFrame({"t": [1.5], "churned": [0]}))
    with pytest.raises(DataError, match=r"survivor table .* or individual durations"):
        model.prepare(pd.DataFrame({"tenure": [1]}))
    with pytest.raises(CbcvError, match="unknown prior"):
        ShiftedBetaGeoModel(priors={"gamma": Prior("HalfFlat")})


def test_betaln_large_is_accurate_for_huge_arguments() -> None:
    a = np.array([0.3, 2.5, 0.7, 50.0, 1e20, 0.8, 1.0])
    b = np.array([1e20, 1e5 + 1, 1e12, 1e7, 2.0, 3.5, 1.0])
    mp.mp.dps = 60
    expected = [float(mp.log(mp.beta(mp.mpf(x), mp.mpf(y)))) for x, y in zip(a, b, strict=True)]
    va, vb = pt.dvector("a"), pt.dvector("b")
    got = pytensor.function([va, vb], betaln_large(va, vb))(a, b)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    # the gradient is exact at a tie (a == b): d/da log B(a, a) = digamma(a) - digamma(2a)
    grad = pytensor.function([va, vb], pytensor.grad(pt.sum(betaln_large(va, vb)), va))
    assert grad(np.array([1.0]), np.array([1.0]))[0] == pytest.approx(-1.0, rel=1e-12)


def simulate_durations(alpha: float, beta: float, n: int, horizon: int, seed: int) -> pd.DataFrame:
    """Customers with theta ~ Beta(alpha, beta), geometric durations, censored at ``horizon``."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(alpha, beta, size=n)
    duration = rng.geometric(theta)
    churned = duration <= horizon
    return pd.DataFrame({"t": np.minimum(duration, horizon), "churned": churned})


def test_large_sample_mle_is_consistent() -> None:
    # 200,000 simulated customers compress to 9 distinct (t, churned) rows: churn in periods
    # 1-8, or still active after 8.
    data = simulate_durations(0.8, 1.6, n=200_000, horizon=8, seed=1)
    model = ShiftedBetaGeoModel(priors=FLAT)
    est = _map_estimates(model, data)
    assert model.idata.attrs["n_distinct"] == 9
    assert est["alpha"] == pytest.approx(0.8, rel=0.02)
    assert est["beta"] == pytest.approx(1.6, rel=0.02)


def test_parameter_recovery_nuts() -> None:
    truth = {"alpha": 0.8, "beta": 1.6}
    data = simulate_durations(truth["alpha"], truth["beta"], n=1500, horizon=8, seed=12)
    model = ShiftedBetaGeoModel()
    idata = model.fit(data, SamplerSettings(draws=400, tune=400, chains=2, cores=1, seed=3))
    assert model.divergences() == 0
    hdi = az.hdi(idata, hdi_prob=0.94)
    for k, value in truth.items():
        low, high = hdi[k].values
        assert low <= value <= high, (k, low, high)
    assert float(az.rhat(idata)["alpha"]) < 1.05
