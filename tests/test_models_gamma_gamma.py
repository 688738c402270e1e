"""Gamma-gamma spend model: the marginal density of the mean against hand-worked values and
numerical integration, the published CDNOW estimates, exclusions, errors, and recovery."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, stats

from cbcv.core.errors import DataError
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.gamma_gamma import GammaGammaModel

FLAT = {k: Prior("HalfFlat") for k in ("p", "q", "gamma")}
MAP = SamplerSettings(method="map")


def _density_function(params: dict[str, float]) -> pytensor.compile.function.types.Function:
    """f(zbar | x) from the model's logp, compiled once: (x, zbar) arrays -> densities."""
    x, z = pt.dvector("x"), pt.dvector("z")
    p = {k: pt.as_tensor_variable(np.float64(v)) for k, v in params.items()}
    logp = GammaGammaModel().logp(p, {"x": x, "mean_repeat_spend": z})
    return pytensor.function([x, z], pt.exp(logp))


def _density(params: dict[str, float], x: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _density_function(params)(np.asarray(x, dtype=float), np.asarray(z, dtype=float))


def test_hand_worked_density_one_transaction() -> None:
    # p = q = gamma = 1, x = 1: f(z) = 1 / (1 + z)^2.
    z = np.array([0.5, 1.0, 3.0])
    np.testing.assert_allclose(
        _density({"p": 1, "q": 1, "gamma": 1}, np.ones(3), z), 1 / (1 + z) ** 2
    )


def test_density_is_the_gamma_mixture() -> None:
    """f(zbar | x) equals the Gamma(p x, rate nu x) density of the mean integrated over
    nu ~ Gamma(q, rate gamma), computed numerically with scipy."""
    params = {"p": 2.5, "q": 3.2, "gamma": 12.0}
    x, z = 3, 9.0
    mixture, _ = integrate.quad(
        lambda nu: (
            stats.gamma.pdf(z, a=params["p"] * x, scale=1 / (nu * x))
            * stats.gamma.pdf(nu, a=params["q"], scale=1 / params["gamma"])
        ),
        0,
        np.inf,
    )
    density = _density_function(params)
    assert density(np.array([x], float), np.array([z]))[0] == pytest.approx(mixture, rel=1e-6)
    total, _ = integrate.quad(lambda v: density(np.array([x], float), np.array([v]))[0], 0, np.inf)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_published_estimates_cdnow(cdnow_weekly) -> None:
    # Fader & Hardie (2013) / Fader, Hardie & Lee (2005): the 946 CDNOW sample customers with
    # repeat transactions in the 39-week calibration period, the mean of those repeat
    # transactions: p 6.25, q 3.74, gamma 15.44 (log-likelihood -4055.92, as CLVTools's
    # correctness test for this data).
    model = GammaGammaModel(priors=FLAT)
    model.fit(cdnow_weekly, MAP)
    est = {k: float(v[0]) for k, v in model.draws().items()}
    for k, value in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert est[k] == pytest.approx(value, rel=0.01), k
    assert model.point_loglike(est) == pytest.approx(-4055.92, abs=0.01)
    attrs = model.idata.attrs
    assert attrs["n_customers"] == 946
    assert attrs["n_dropped_no_repeat"] == 2357 - 946
    assert attrs["n_dropped_nonpositive_spend"] == 0
    assert model.log_likelihood().shape == (1, 1, 946)
    assert len(model.fitted_index) == 946


def test_nonpositive_mean_spend_is_dropped_or_an_error() -> None:
    data = pd.DataFrame({"x": [0, 2, 3, 1], "mean_repeat_spend": [np.nan, 10.0, -4.0, 7.5]})
    model = GammaGammaModel()
    arrays, inverse = model.prepare(data)
    assert sorted(arrays["mean_repeat_spend"]) == [7.5, 10.0]
    assert len(inverse) == 2
    with pytest.raises(DataError, match=r"column 'mean_repeat_spend' row 2: must be positive"):
        GammaGammaModel(nonpositive="error").prepare(data)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            {"x": [1, 2], "mean_repeat_spend": [5.0, np.nan]},
            r"column 'mean_repeat_spend' row 1: missing",
        ),
        (
            {"x": [1, -2], "mean_repeat_spend": [5.0, 4.0]},
            r"column 'x' row 1: expected a whole number",
        ),
        (
            {"x": [1, 2], "mean_repeat_spend": [5.0, "n/a"]},
            r"column 'mean_repeat_spend' row 1: not a number",
        ),
        ({"x": [1, 2]}, r"column 'mean_repeat_spend' is missing"),
        ({"x": [0, 0], "mean_repeat_spend": [np.nan, np.nan]}, r"no customer with x > 0"),
    ],
)
def test_data_errors(frame, message) -> None:
    with pytest.raises(DataError, match=message):
        GammaGammaModel().prepare(pd.DataFrame(frame))


def simulate_spend(p: float, q: float, gamma: float, n: int, seed: int) -> pd.DataFrame:
    """nu ~ Gamma(q, rate gamma) per customer, x = 1 + Poisson(3) transactions, each
    Gamma(p, rate nu); returns x and the mean of the x values."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(q, 1 / gamma, size=n)
    x = 1 + rng.poisson(3, size=n)
    owner = np.repeat(np.arange(n), x)
    values = rng.gamma(p, 1 / nu[owner])
    mean = np.bincount(owner, weights=values) / x
    return pd.DataFrame({"x": x, "mean_repeat_spend": mean})


def test_large_sample_mle_is_consistent() -> None:
    data = simulate_spend(6.0, 4.0, 15.0, n=100_000, seed=1)
    model = GammaGammaModel(priors=FLAT)
    model.fit(data, MAP)
    est = {k: float(v[0]) for k, v in model.draws().items()}
    # p and gamma trade off along a ridge (their product sets the mean); q and the mean
    # spend per transaction p gamma / (q - 1) are pinned down more tightly.
    assert est["q"] == pytest.approx(4.0, rel=0.03)
    assert est["p"] * est["gamma"] / (est["q"] - 1) == pytest.approx(6.0 * 15.0 / 3.0, rel=0.02)
    assert est["p"] == pytest.approx(6.0, rel=0.1)
    assert est["gamma"] == pytest.approx(15.0, rel=0.1)


def test_parameter_recovery_nuts() -> None:
    truth = {"p": 6.0, "q": 4.0, "gamma": 15.0}
    data = simulate_spend(**truth, n=1000, seed=41)
    model = GammaGammaModel()
    idata = model.fit(data, SamplerSettings(draws=400, tune=400, chains=2, cores=1, seed=9))
    assert model.divergences() == 0
    hdi = az.hdi(idata, hdi_prob=0.94)
    for k, value in truth.items():
        low, high = hdi[k].values
        assert low <= value <= high, (k, low, high)


def test_total_logp_equals_the_weighted_pointwise_sum(cdnow_weekly) -> None:
    """The fit's rearranged sum against the pointwise marginal density, on CDNOW's repeat buyers."""
    model = GammaGammaModel()
    arrays, _ = model.prepare(cdnow_weekly)
    for values in (dict(p=6.25, q=3.74, gamma=15.44), dict(p=0.7, q=12.0, gamma=300.0)):
        p = {k: pt.as_tensor_variable(np.float64(v)) for k, v in values.items()}
        total = float(model.total_logp(p, arrays).eval())
        assert total == pytest.approx(model.point_loglike(values, cdnow_weekly), rel=1e-12)
