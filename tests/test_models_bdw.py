"""Beta-discrete-Weibull model: hand-worked probabilities, reduction to the sBG at c = 1, the
nested fit on the Fader & Hardie (2007) series, numerical stability, and parameter recovery."""

from __future__ import annotations

import arviz as az
import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from cbcv.data.research_sets import read_two_segment_retention
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.bdw import BetaDiscreteWeibullModel
from cbcv.models.sbg import ShiftedBetaGeoModel

FLAT = {k: Prior("HalfFlat") for k in ("gamma", "delta", "c")}
MAP = SamplerSettings(method="map")


def _map_estimates(model, data: pd.DataFrame) -> dict[str, float]:
    model.fit(data, MAP)
    return {k: float(v[0]) for k, v in model.draws().items()}


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    return read_two_segment_retention()


def test_hand_worked_c_two() -> None:
    # gamma = delta = 1, c = 2: S(t) = B(1, 1 + t^2) / B(1, 1) = 1 / (1 + t^2).
    # S(1) = 1/2, S(2) = 1/5, S(3) = 1/10: P(T=1) = 1/2, P(T=2) = 3/10, P(T=3) = 1/10.
    durations = pd.DataFrame(
        {"t": [1, 2, 3, 3, 0], "churned": [1, 1, 1, 0, 0], "count": [5, 3, 1, 1, 7]}
    )
    expected = 5 * np.log(0.5) + 3 * np.log(0.3) + np.log(0.1) + np.log(0.1) + 7 * 0.0
    ll = BetaDiscreteWeibullModel().point_loglike({"gamma": 1.0, "delta": 1.0, "c": 2.0}, durations)
    assert ll == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("gamma", "delta"), [(0.704, 1.182), (0.3, 7.0), (4.0, 0.5)])
def test_c_one_is_the_sbg(segments, gamma, delta) -> None:
    table = segments[segments["cohort"] == "High-end"]
    bdw = BetaDiscreteWeibullModel().point_loglike(
        {"gamma": gamma, "delta": delta, "c": 1.0}, table
    )
    sbg = ShiftedBetaGeoModel().point_loglike({"alpha": gamma, "beta": delta}, table)
    assert bdw == pytest.approx(sbg, rel=1e-10)


@pytest.mark.parametrize("segment", ["Regular", "High-end"])
def test_nested_fit_on_the_two_segments(segments, segment) -> None:
    """The BdW nests the sBG, so its maximised log-likelihood is at least the sBG's; on these
    series its individual churn probabilities rise with tenure (c > 1), the paper's finding
    that individual churn propensities are unlikely to decline over time."""
    table = segments[(segments["cohort"] == segment) & (segments["t"] <= 7)]
    bdw_est = _map_estimates(BetaDiscreteWeibullModel(priors=FLAT), table)
    sbg_est = _map_estimates(
        ShiftedBetaGeoModel(priors={"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}), table
    )
    ll_bdw = BetaDiscreteWeibullModel().point_loglike(bdw_est, table)
    ll_sbg = ShiftedBetaGeoModel().point_loglike(sbg_est, table)
    assert ll_bdw >= ll_sbg - 1e-6
    assert bdw_est["c"] > 1.0


def test_long_tenures_against_high_precision() -> None:
    # t^c up to 5000^1.8 ~ 4.6e6: the beta functions' second argument is huge.
    params = {"gamma": 0.5, "delta": 2.0, "c": 1.8}
    durations = pd.DataFrame({"t": [1, 500, 5000, 5000], "churned": [1, 1, 1, 0]})
    mp.mp.dps = 60
    g, d, c = (mp.mpf(params[k]) for k in ("gamma", "delta", "c"))

    def surv(t: int) -> mp.mpf:
        return mp.beta(g, d + mp.mpf(t) ** c) / mp.beta(g, d)

    expected = (
        mp.log(surv(0) - surv(1))
        + mp.log(surv(499) - surv(500))
        + mp.log(surv(4999) - surv(5000))
        + mp.log(surv(5000))
    )
    ll = BetaDiscreteWeibullModel().point_loglike(params, durations)
    assert ll == pytest.approx(float(expected), rel=1e-9)


def simulate_bdw(
    gamma: float, delta: float, c: float, n: int, horizon: int, seed: int
) -> pd.DataFrame:
    """theta ~ Beta(gamma, delta); discrete-Weibull durations with S(t) = (1 - theta)^(t^c),
    drawn by inversion (T > t exactly when u <= S(t)), censored at ``horizon``."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(gamma, delta, size=n)
    u = rng.uniform(size=n)
    with np.errstate(divide="ignore"):
        duration = np.floor((np.log(u) / np.log1p(-theta)) ** (1.0 / c)) + 1
    churned = duration <= horizon
    return pd.DataFrame({"t": np.minimum(duration, horizon).astype(int), "churned": churned})


def test_large_sample_mle_is_consistent() -> None:
    data = simulate_bdw(0.6, 1.5, 1.4, n=200_000, horizon=10, seed=1)
    est = _map_estimates(BetaDiscreteWeibullModel(priors=FLAT), data)
    assert est["gamma"] == pytest.approx(0.6, rel=0.03)
    assert est["delta"] == pytest.approx(1.5, rel=0.03)
    assert est["c"] == pytest.approx(1.4, rel=0.03)


def test_parameter_recovery_nuts() -> None:
    truth = {"gamma": 0.6, "delta": 1.5, "c": 1.4}
    data = simulate_bdw(**truth, n=3000, horizon=10, seed=22)
    model = BetaDiscreteWeibullModel()
    idata = model.fit(data, SamplerSettings(draws=400, tune=400, chains=2, cores=1, seed=5))
    assert model.divergences() == 0
    hdi = az.hdi(idata, hdi_prob=0.94)
    for k, value in truth.items():
        low, high = hdi[k].values
        assert low <= value <= high, (k, low, high)
