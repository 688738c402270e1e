"""BG/NBD and MBG/NBD: published CDNOW estimates, independent implementations, exact compression,
pointwise log-likelihoods, NUTS diagnostics and parameter recovery."""

from __future__ import annotations

import arviz as az
import mpmath as mp
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, stats
from scipy.special import beta as beta_fn
from scipy.special import gammaln

import cbcv.models.base as base
from cbcv.core.errors import DataError
from cbcv.data.simulate import BGNBDParams, simulate_summaries
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.bgnbd import BetaGeoModel, ModifiedBetaGeoModel, bgnbd_logp, validate_rft

# Fader, Hardie & Lee (2005), section 7: CDNOW sample, weeks, calibration to 1997-09-30.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4


def flat(model_cls):
    """The model with HalfFlat priors, whose MAP is the maximum-likelihood estimate."""
    return model_cls(priors={k: Prior("HalfFlat") for k in model_cls.param_names})


def map_point(model, data):
    idata = model.fit(data, SamplerSettings(method="map"))
    return {k: float(idata.posterior[k].values.ravel()[0]) for k in model.param_names}


@pytest.fixture(scope="module")
def bg_mle(cdnow_weekly):
    model = flat(BetaGeoModel)
    return model, map_point(model, cdnow_weekly)


# -- independent implementations (written from the papers, not from the model code) -------------
def bgnbd_like_closed_form(r, alpha, a, b, x, t_x, T):
    """FHL (2005) eq. 6 in linear space with scipy (fine at CDNOW's magnitudes)."""
    x = np.asarray(x, float)
    A = np.exp(gammaln(r + x) - gammaln(r)) * alpha**r
    first = beta_fn(a, b + x) / beta_fn(a, b) * A / (alpha + T) ** (r + x)
    xs = np.maximum(x, 1.0)
    second = beta_fn(a + 1, b + xs - 1) / beta_fn(a, b) * A / (alpha + t_x) ** (r + x)
    return first + np.where(x > 0, second, 0.0)


def mbgnbd_like_closed_form(r, alpha, a, b, x, t_x, T):
    """Batislam, Denizel & Filiztekin (2007) likelihood in linear space with scipy."""
    x = np.asarray(x, float)
    A = np.exp(gammaln(r + x) - gammaln(r)) * alpha**r
    first = beta_fn(a, b + x + 1) / beta_fn(a, b) * A / (alpha + T) ** (r + x)
    second = beta_fn(a + 1, b + x) / beta_fn(a, b) * A / (alpha + t_x) ** (r + x)
    return first + second


def like_by_integration(r, alpha, a, b, x, t_x, T, modified):
    """The model's story integrated numerically over λ ~ Gamma(r, α) and p ~ Beta(a, b).

    Given λ and p: alive at T after surviving the dropout chances (one per repeat purchase, plus
    one at the first purchase for the MBG/NBD), or dropped out right after the last purchase.
    """

    def e_lam(t):
        f = lambda lam: lam**x * np.exp(-lam * t) * stats.gamma.pdf(lam, r, scale=1 / alpha)  # noqa: E731
        return integrate.quad(f, 0, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0]

    def e_p(f):
        g = lambda p: f(p) * stats.beta.pdf(p, a, b)  # noqa: E731
        return integrate.quad(g, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0]

    survived = x + 1 if modified else x
    alive = e_p(lambda p: (1 - p) ** survived) * e_lam(T)
    if not modified and x == 0:
        return alive
    died = e_p(lambda p: p * (1 - p) ** (survived - 1)) * e_lam(t_x)
    return alive + died


def model_pointwise(model_cls, params, frame):
    """The model's pointwise log-likelihood per row of ``frame`` (no compression)."""
    arrays = {k: pt.as_tensor_variable(frame[k].to_numpy(float)) for k in ("x", "t_x", "T")}
    p = {k: pt.as_tensor_variable(np.float64(v)) for k, v in params.items()}
    return model_cls().logp(p, arrays).eval()


# -- published estimates -------------------------------------------------------------------------
def test_mle_reproduces_fader_hardie_lee_2005(bg_mle, cdnow_weekly):
    model, point = bg_mle
    for k, v in PUBLISHED.items():
        assert point[k] == pytest.approx(v, rel=0.01), k
    assert model.point_loglike(point) == pytest.approx(PUBLISHED_LL, abs=0.05)
    assert model.point_loglike(PUBLISHED, cdnow_weekly) == pytest.approx(PUBLISHED_LL, abs=0.1)


def test_default_priors_are_weak_on_cdnow(bg_mle, cdnow_weekly):
    # The default priors move the posterior mode by less than 1% from the maximum-likelihood
    # estimate (issue 13: MAP with default priors within 1% of the published estimates); b, the
    # least identified, moves most (-0.7% on CDNOW).
    _, mle = bg_mle
    point = map_point(BetaGeoModel(), cdnow_weekly)
    for k in PUBLISHED:
        assert point[k] == pytest.approx(mle[k], rel=0.01), k


def test_likelihoods_match_closed_forms_on_cdnow(cdnow_weekly):
    frame = cdnow_weekly[["x", "t_x", "T"]]
    cases = [
        (BetaGeoModel, bgnbd_like_closed_form, PUBLISHED),
        (
            ModifiedBetaGeoModel,
            mbgnbd_like_closed_form,
            {"r": 0.52, "alpha": 6.2, "a": 0.89, "b": 1.61},
        ),
        (
            ModifiedBetaGeoModel,
            mbgnbd_like_closed_form,
            {"r": 2.0, "alpha": 15.0, "a": 0.3, "b": 9.0},
        ),
    ]
    for model_cls, closed, params in cases:
        got = model_pointwise(model_cls, params, frame)
        ref = np.log(closed(*params.values(), frame["x"], frame["t_x"], frame["T"]))
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("modified", [False, True])
def test_likelihood_matches_the_model_story_integrated_numerically(modified):
    model_cls = ModifiedBetaGeoModel if modified else BetaGeoModel
    params = {"r": 0.7, "alpha": 3.0, "a": 1.3, "b": 2.2}
    frame = pd.DataFrame(
        {
            "x": [0, 0, 1, 4, 12],
            "t_x": [0.0, 0.0, 2.5, 20.0, 31.0],
            "T": [0.0, 30.0, 30.0, 35.0, 38.0],
        }
    )
    got = model_pointwise(model_cls, params, frame)
    ref = [
        np.log(like_by_integration(*params.values(), x, t, T, modified))
        for x, t, T in frame.itertuples(index=False)
    ]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def mp_bgnbd_ll(r, alpha, a, b, x, t_x, T):
    """FHL (2005) eq. 6 in mpmath at 50 digits."""
    with mp.workdps(50):
        r, alpha, a, b, t_x, T = (mp.mpf(v) for v in (r, alpha, a, b, t_x, T))
        A = mp.exp(mp.loggamma(r + x) - mp.loggamma(r)) * alpha**r
        L = mp.beta(a, b + x) / mp.beta(a, b) * A / (alpha + T) ** (r + x)
        if x > 0:
            L += mp.beta(a + 1, b + x - 1) / mp.beta(a, b) * A / (alpha + t_x) ** (r + x)
        return mp.log(L)


EXTREME_CASES = [
    # r, alpha, a, b, x, t_x, T
    (0.01, 0.01, 0.01, 0.01, 0, 0.0, 1e4),
    (100.0, 100.0, 100.0, 100.0, 200, 100.0, 1e4),
    (0.01, 100.0, 0.01, 100.0, 200, 9999.0, 1e4),
    (100.0, 0.01, 100.0, 0.01, 200, 1.0, 1e4),
    (0.5, 5.0, 0.5, 0.5, 1, 1e-6, 52.0),
    (2.0, 0.01, 0.05, 50.0, 50, 52.0, 52.0),
    (1.0, 1.0, 1.0, 1.5, 1, 0.0, 0.0),
]


def test_extreme_inputs_match_mpmath_with_finite_exact_gradients():
    cases = np.array(EXTREME_CASES)
    r, alpha, a, b = (pt.dvector(n) for n in ("r", "alpha", "a", "b"))
    arrays = {"x": cases[:, 4], "t_x": cases[:, 5], "T": cases[:, 6]}
    ll = bgnbd_logp({"r": r, "alpha": alpha, "a": a, "b": b}, arrays)
    f = pytensor.function([r, alpha, a, b], [ll, *pytensor.grad(pt.sum(ll), [r, alpha, a, b])])
    value, *grads = f(*cases[:, :4].T)
    grads = np.column_stack(grads)
    ref = np.array([float(mp_bgnbd_ll(*c)) for c in EXTREME_CASES])
    np.testing.assert_allclose(value, ref, rtol=1e-11, atol=1e-10)
    ref_grad = np.empty_like(grads)
    with mp.workdps(50):
        for k, case in enumerate(EXTREME_CASES):
            for i in range(4):

                def fi(v, i=i, case=case):
                    args = list(case)
                    args[i] = v
                    return mp_bgnbd_ll(*args)

                x0 = mp.mpf(case[i])
                ref_grad[k, i] = float(mp.diff(fi, x0, h=x0 * mp.mpf("1e-15")))
    assert np.all(np.isfinite(grads))
    np.testing.assert_allclose(grads, ref_grad, rtol=1e-8, atol=1e-8)


# -- compression and pointwise log-likelihood ----------------------------------------------------
class UncompressedBG(BetaGeoModel):
    """The same model without compression: one likelihood term per customer."""

    def prepare(self, data):
        frame = validate_rft(data, self.name)
        arrays = {k: frame[k].to_numpy(float) for k in ("x", "t_x", "T")}
        arrays["weight"] = np.ones(len(frame))
        return arrays, np.arange(len(frame))


def test_compression_is_exact(cdnow_weekly):
    compressed, full = BetaGeoModel(), UncompressedBG()
    arrays, inverse = compressed.prepare(cdnow_weekly)
    assert len(arrays["weight"]) < len(cdnow_weekly) / 2
    assert arrays["weight"].sum() == len(cdnow_weekly)
    np.testing.assert_array_equal(
        np.column_stack([arrays[k][inverse] for k in ("x", "t_x", "T")]),
        cdnow_weekly[["x", "t_x", "T"]].to_numpy(float),
    )
    for point in (PUBLISHED, {"r": 1.3, "alpha": 0.7, "a": 4.0, "b": 0.2}):
        assert compressed.point_loglike(point, cdnow_weekly) == pytest.approx(
            full.point_loglike(point, cdnow_weekly), rel=1e-13
        )
    # gradients of the two models' log posteriors agree
    grads = []
    for m in (compressed, full):
        with m.build_model(m.prepare(cdnow_weekly)[0]) as model:
            ip = model.initial_point()
            ip = {k: v + 0.3 for k, v in ip.items()}
            grads.append(model.compile_dlogp()(ip))
    # (sums of ~2,000 terms of both signs in a different order: agreement to rounding)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-8, atol=1e-10 * np.abs(grads[1]).max())
    # and so do their MAP estimates
    a = map_point(compressed, cdnow_weekly)
    b = map_point(full, cdnow_weekly)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-4)


def test_pointwise_log_likelihood_expands_per_customer(bg_mle, cdnow_weekly, monkeypatch):
    model, mle = bg_mle
    rng = np.random.default_rng(0)
    draws = {k: mle[k] * np.exp(0.05 * rng.standard_normal((2, 5))) for k in mle}
    idata = az.from_dict(posterior=draws)
    ll = model.log_likelihood(idata)
    assert ll.dims == ("chain", "draw", "customer")
    assert ll.shape == (2, 5, len(cdnow_weekly))
    for c in range(2):
        for d in range(5):
            point = {k: draws[k][c, d] for k in draws}
            assert float(ll[c, d].sum()) == pytest.approx(model.point_loglike(point), rel=1e-12)
    # each customer's term is that customer's own likelihood
    one = {k: draws[k][1, 3] for k in draws}
    for i in (0, 17, 2356):
        assert float(ll[1, 3, i]) == pytest.approx(
            model.point_loglike(one, cdnow_weekly.iloc[[i]]), rel=1e-12
        )
    # evaluation in chunks of draws changes nothing
    monkeypatch.setattr(base, "LOGLIKE_CHUNK_ELEMENTS", 3 * len(model.arrays["weight"]))
    np.testing.assert_array_equal(model.log_likelihood(idata).values, ll.values)
    rows = model.log_likelihood(idata, expand=False)
    assert rows.shape == (2, 5, len(model.arrays["weight"]))


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"x": [1], "t_x": [2.0]}), "column 'T' is missing"),
        (
            pd.DataFrame({"x": [1, -1], "t_x": [2.0, 0.0], "T": [3.0, 3.0]}),
            "column 'x' row 1: negative",
        ),
        (
            pd.DataFrame({"x": [1.5], "t_x": [2.0], "T": [3.0]}),
            "column 'x' row 0: expected a whole",
        ),
        (
            pd.DataFrame({"x": [1, 2], "t_x": [2.0, 4.0], "T": [3.0, 3.0]}),
            "column 't_x' row 1: t_x",
        ),
        (pd.DataFrame({"x": [0], "t_x": [1.0], "T": [3.0]}), "t_x must be 0 when x is 0"),
        (pd.DataFrame({"x": [1], "t_x": [np.nan], "T": [3.0]}), "column 't_x' row 0: not a finite"),
        (pd.DataFrame({"x": [1], "t_x": ["abc"], "T": [3.0]}), "column 't_x' row 0: not a finite"),
        (pd.DataFrame({"x": [], "t_x": [], "T": []}), "no rows"),
    ],
)
def test_bad_summaries_raise_one_line_data_errors(frame, match):
    with pytest.raises(DataError, match=match) as err:
        BetaGeoModel().prepare(frame)
    assert "\n" not in str(err.value)


def test_data_error_names_the_customer():
    frame = pd.DataFrame(
        {"customer_id": ["a", "b"], "x": [1, 2], "t_x": [1.0, 9.0], "T": [5.0, 5.0]}
    )
    with pytest.raises(DataError, match=r"bgnbd: column 't_x' row 1 \(customer_id 'b'\)"):
        BetaGeoModel().prepare(frame)


# -- NUTS ----------------------------------------------------------------------------------------
def importance_check(model, idata, n=4000, seed=1):
    """Posterior means by importance sampling, independent of NUTS' trajectories.

    The proposal is a multivariate t (5 d.f.) on the sampler's log scale, centred and scaled by
    the NUTS draws (inflated 1.5×); the target is the model's log posterior density on that scale.
    Returns the self-normalised estimates, their Monte Carlo standard errors and the effective
    sample size of the weights.
    """
    names = list(model.param_names)
    logs = np.column_stack([np.log(idata.posterior[k].values.ravel()) for k in names])
    mean, cov = logs.mean(0), np.cov(logs.T) * 1.5**2
    proposal = stats.multivariate_t(loc=mean, shape=cov, df=5, seed=seed)
    u = proposal.rvs(n)
    with model.build_model(model.arrays) as pm_model:
        logp = pm_model.compile_logp()  # log scale, with the Jacobian: the sampler's target
        # a log-scale prior's free variable is log_<name> itself (cbcv.models.priors)
        free = [f"log_{k}" if f"log_{k}" in pm_model.named_vars else k for k in names]
        value_names = [pm_model.rvs_to_values[pm_model[k]].name for k in free]
    log_target = np.array([logp(dict(zip(value_names, row, strict=True))) for row in u])
    log_w = log_target - proposal.logpdf(u)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    theta = np.exp(u)
    est = w @ theta
    se = np.sqrt(np.sum(w[:, None] ** 2 * (theta - est) ** 2, axis=0))
    return dict(zip(names, est, strict=True)), dict(zip(names, se, strict=True)), 1 / np.sum(w**2)


@pytest.mark.slow
def test_nuts_on_cdnow_converges_and_matches_importance_sampling(bg_mle, cdnow_weekly):
    model = BetaGeoModel()
    idata = model.fit(cdnow_weekly, SamplerSettings(chains=2, draws=1000, tune=1000, seed=11))
    summary = model.summary()
    assert model.divergences() == 0
    assert (summary["r_hat"] <= 1.01).all(), summary
    assert (summary["ess_bulk"] >= 400).all(), summary
    est, se, ess = importance_check(model, idata)
    assert ess > 1000
    for k in model.param_names:
        tol = 4 * np.hypot(summary.loc[k, "mcse_mean"], se[k])
        assert abs(summary.loc[k, "mean"] - est[k]) < tol, (k, summary.loc[k, "mean"], est[k], tol)
    # the maximum-likelihood estimate lies well inside the posterior
    _, mle = bg_mle
    for k in model.param_names:
        assert summary.loc[k, "hdi_low"] < mle[k] < summary.loc[k, "hdi_high"]


@pytest.mark.slow
def test_parameter_recovery_from_simulated_customers():
    truth = BGNBDParams(r=0.5, alpha=6.0, a=0.9, b=3.0)
    T = np.random.default_rng(5).uniform(26.0, 52.0, 5000).round(0)  # whole-week cohorts
    data = simulate_summaries(truth, 5000, T, seed=2024)
    model = BetaGeoModel()
    model.fit(data, SamplerSettings(chains=2, draws=500, tune=500, seed=3))
    summary = model.summary()
    assert model.divergences() == 0
    for k in model.param_names:
        v = getattr(truth, k)
        assert summary.loc[k, "hdi_low"] < v < summary.loc[k, "hdi_high"], (k, v, summary.loc[k])


def test_mbgnbd_drops_customers_with_no_repeat_purchase(cdnow_weekly):
    # Under the BG/NBD a customer with x = 0 is certainly alive; the MBG/NBD adds the chance
    # p0 = a / (a + b) of dropping out at the first purchase, after which (0, 0, T) is certain:
    # L_MBG(0, 0, T) = p0 + (1 − p0) · L_BG(0, 0, T).
    params = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.4}
    frame = pd.DataFrame({"x": [0], "t_x": [0.0], "T": [30.0]})
    bg = np.exp(model_pointwise(BetaGeoModel, params, frame)[0])
    mbg = np.exp(model_pointwise(ModifiedBetaGeoModel, params, frame)[0])
    p0 = params["a"] / (params["a"] + params["b"])
    assert mbg == pytest.approx(p0 + (1 - p0) * bg, rel=1e-12)


def test_map_fit_records_compression(cdnow_weekly):
    model = BetaGeoModel()
    idata = model.fit(cdnow_weekly, SamplerSettings(method="map"))
    assert idata.attrs["n_customers"] == len(cdnow_weekly)
    assert idata.attrs["n_distinct"] == len(model.arrays["weight"]) < len(cdnow_weekly)


@pytest.mark.parametrize("cls", [BetaGeoModel, ModifiedBetaGeoModel])
def test_total_logp_equals_the_weighted_pointwise_sum(cls, cdnow_weekly) -> None:
    """The fit's rearranged sum (x-only and T-only terms once per distinct value) against the
    pointwise reference, on CDNOW and at several parameter values (a < 1 and a > 1)."""
    import pytensor.tensor as pt

    model = cls()
    arrays, _ = model.prepare(cdnow_weekly)
    for values in (dict(r=0.243, alpha=4.414, a=0.793, b=2.426), dict(r=2.0, alpha=0.5, a=3.0, b=0.4)):
        p = {k: pt.as_tensor_variable(np.float64(v)) for k, v in values.items()}
        total = float(model.total_logp(p, arrays).eval())
        assert total == pytest.approx(model.point_loglike(values, cdnow_weekly), rel=1e-12, abs=1e-9)
