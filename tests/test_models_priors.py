"""Default priors (issue 13 item 14): MAP with the default priors lands within 1% of every
published maximum-likelihood estimate, the priors are stated on the log scale the fit samples,
are recorded with a fit in strict JSON, are described for the model page, and keep the
Pareto/NBD and BG/NBD posteriors (and their holdout forecasts) near the maximum-likelihood ones
on CDNOW."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest

from cbcv.data.research_sets import read_donations, read_two_segment_retention
from cbcv.models import MODELS, get_model
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.priors import LogScalePrior, prior_from_dict, prior_logp, priors_table
from cbcv.valuation.holdout import holdout_totals

MAP = SamplerSettings(method="map")

# The published maximum-likelihood estimates the default priors must reproduce within 1%.
BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005), weeks
PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}  # same paper, Pareto/NBD
GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}  # Fader & Hardie, note on spend (CDNOW)
BGBB = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}  # Fader, Hardie & Shang 2010
SBG = {  # Fader & Hardie (2007), "How to project customer retention", years 1-7
    "High-end": {"alpha": 0.668, "beta": 3.806},
    "Regular": {"alpha": 0.704, "beta": 1.182},
}


def _map(name: str, data: pd.DataFrame, priors: dict[str, Prior] | None = None) -> dict[str, float]:
    model = get_model(name)(priors=priors)
    model.fit(data, MAP)
    return {k: float(v[0]) for k, v in model.draws().items()}


def _flat(name: str) -> dict[str, Prior]:
    return {k: Prior("HalfFlat") for k in get_model(name).param_names}


def _segment(segment: str) -> pd.DataFrame:
    table = read_two_segment_retention()
    return table[(table["cohort"] == segment) & (table["t"] <= 7)]


def _assert_close(estimate: dict[str, float], published: dict[str, float], rel: float) -> None:
    errors = {k: estimate[k] / v - 1.0 for k, v in published.items()}
    assert all(abs(e) < rel for e in errors.values()), {k: f"{100 * e:+.2f}%" for k, e in errors.items()}


# -- MAP with the default priors against the published estimates ----------------------------------
@pytest.mark.parametrize(("name", "published"), [("bgnbd", BGNBD), ("pareto_nbd", PARETO),
                                                 ("gamma_gamma", GAMMA_GAMMA)])
def test_default_prior_map_matches_published_cdnow(name, published, cdnow_weekly) -> None:
    _assert_close(_map(name, cdnow_weekly), published, 0.01)


def test_default_prior_map_matches_published_bgbb_donations() -> None:
    _assert_close(_map("bgbb", read_donations(n_calibration=6)), BGBB, 0.01)


@pytest.mark.parametrize("segment", sorted(SBG))
def test_default_prior_map_matches_published_sbg(segment) -> None:
    _assert_close(_map("sbg", _segment(segment)), SBG[segment], 0.01)


@pytest.mark.parametrize("name", ["bgnbd", "pareto_nbd", "gamma_gamma"])
def test_default_prior_map_is_the_mle_on_cdnow(name, cdnow_weekly) -> None:
    # the prior moves the mode by well under the 1% tolerance (the flat fit is the MLE)
    _assert_close(_map(name, cdnow_weekly), _map(name, cdnow_weekly, _flat(name)), 0.005)


# -- the priors themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_priors_are_proper_and_on_the_log_scale(name) -> None:
    cls = get_model(name)
    assert set(cls.default_priors) == set(cls.param_names)
    for prior in cls.default_priors.values():
        assert isinstance(prior, LogScalePrior) and prior.dist == "Normal"
        assert 0.5 <= prior.kwargs["sigma"] <= 10.0  # weak, but proper


def test_log_scale_prior_is_the_log_normal_density_of_theta() -> None:
    prior = LogScalePrior("Normal", {"mu": 0.5, "sigma": 3.0})
    values = np.array([1e-4, 0.3, 1.0, 7.0, 5e3])
    got = prior_logp(prior, pt.as_tensor_variable(values)).eval()
    want = pm.logp(pm.LogNormal.dist(mu=0.5, sigma=3.0), values).eval()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # a plain prior is its own density
    plain = prior_logp(Prior("HalfNormal", {"sigma": 2.0}), pt.as_tensor_variable(values)).eval()
    np.testing.assert_allclose(plain, pm.logp(pm.HalfNormal.dist(sigma=2.0), values).eval())


def test_log_scale_prior_samples_log_theta_and_keeps_theta_in_the_trace(cdnow_weekly) -> None:
    model = get_model("gamma_gamma")()
    arrays, _ = model.prepare(cdnow_weekly)
    pm_model = model.build_model(arrays)
    assert {v.name for v in pm_model.free_RVs} == {"log_p", "log_q", "log_gamma"}
    assert {v.name for v in pm_model.deterministics} == {"p", "q", "gamma"}


def test_fit_records_the_priors_in_strict_json_that_round_trips(cdnow_weekly) -> None:
    model = get_model("gamma_gamma")()
    idata = model.fit(cdnow_weekly, MAP)
    recorded = json.loads(idata.attrs["priors"], parse_constant=lambda c: pytest.fail(c))
    assert {k: prior_from_dict(v) for k, v in recorded.items()} == model.priors
    assert recorded["p"] == {"dist": "Normal", "kwargs": {"mu": 0.0, "sigma": 3.0}, "scale": "log"}
    # the model page states the priors of the fit, also for a posterior loaded from disk
    other = get_model("gamma_gamma")(priors={"p": Prior("HalfNormal", {"sigma": 7.0})})
    other.idata = idata
    assert priors_table(other)["prior"].iloc[0] == "log p ~ Normal(mu=0, sigma=3)"
    assert prior_from_dict(Prior("HalfFlat").to_dict()) == Prior("HalfFlat")


def test_priors_table_states_each_prior_for_the_model_page() -> None:
    table = priors_table(get_model("pareto_nbd")())
    assert list(table["parameter"]) == ["r", "alpha", "s", "beta"]
    assert list(table.columns) == ["parameter", "prior", "median", "low", "high"]
    row = table.set_index("parameter").loc["s"]
    assert row["prior"] == "log s ~ Normal(mu=0, sigma=1.5)"
    assert row["median"] == pytest.approx(1.0)
    assert row["low"] == pytest.approx(math.exp(-1.959964 * 1.5), rel=1e-6)
    assert row["high"] == pytest.approx(math.exp(1.959964 * 1.5), rel=1e-6)
    custom = priors_table(get_model("sbg")(priors={"alpha": Prior("HalfNormal", {"sigma": 2.0})}))
    alpha = custom.set_index("parameter").loc["alpha"]
    assert alpha["prior"] == "alpha ~ HalfNormal(sigma=2)" and math.isnan(alpha["low"])


# -- the posterior on CDNOW stays near the maximum-likelihood estimate -----------------------------
def _holdout(name: str, data: pd.DataFrame, settings: SamplerSettings,
             priors: dict[str, Prior] | None = None):
    model = get_model(name)(priors=priors)
    model.fit(data, settings)
    return model, holdout_totals(model, data, max_draws=None)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "tolerance"), [("bgnbd", 0.01), ("pareto_nbd", 0.03)])
def test_bayes_holdout_forecast_stays_near_the_mle_one(name, tolerance, cdnow_weekly) -> None:
    # Old defaults (half-normal, flat in θ): Pareto/NBD's posterior ran up the (s, beta) ridge
    # (mean s 1.55, beta 46.6) and forecast 1,493 against the MLE's 1,665 (-10.4%); BG/NBD 1,623
    # against 1,653 (-1.9%). The Pareto/NBD likelihood itself is asymmetric along the ridge
    # (profile log-likelihood -4.7 at s = 0.3, only -5.3 as s -> infinity), so its posterior
    # predictive mean sits ~1.3% below the plug-in MLE forecast under any weak prior.
    _, mle = _holdout(name, cdnow_weekly, MAP, _flat(name))
    model, bayes = _holdout(name, cdnow_weekly, SamplerSettings(chains=2, draws=500, tune=500))
    assert bayes.mean == pytest.approx(mle.mean, rel=tolerance)
    if name == "pareto_nbd":
        post = model.draws()
        assert np.median(post["s"]) < 1.0 and np.median(post["beta"]) < 25.0
