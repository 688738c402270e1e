"""Pareto/NBD: mpmath at extreme inputs (values and gradients), the published CDNOW estimates,
exact compression, pointwise log-likelihoods, NUTS diagnostics and parameter recovery."""

from __future__ import annotations

import itertools
import json

import arviz as az
import mpmath as mp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats

import cbcv.models.base as base
from cbcv.data.simulate import ParetoNBDParams, simulate_summaries
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.pareto_nbd import ParetoNBDModel, pareto_nbd_logp

# Fader, Hardie & Lee (2005), section 7 (the Pareto/NBD column next to their BG/NBD), CDNOW
# sample in weeks, calibration to 1997-09-30: LL −9,595.0.
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PUBLISHED_LL = -9595.0


def mp_pareto_ll(r, alpha, s, beta, x, t_x, T, dps=50):
    """Pareto/NBD log-likelihood from Fader & Hardie (2005, note 009, the likelihood function) in mpmath.

    L = Γ(r+x) α^r β^s / Γ(r) · [ 1/((α+T)^(r+x) (β+T)^s) + s/(r+s+x) · A0 ], with A0 the
    difference of the 2F1 terms at t_x and T, argument |α−β|/(max(α,β)+t) (branch α ≥ β).
    """
    with mp.workdps(dps):
        r, alpha, s, beta, t_x, T = (mp.mpf(v) for v in (r, alpha, s, beta, t_x, T))
        rsx = r + s + x
        if alpha >= beta:
            big, b2 = alpha, s + 1
        else:
            big, b2 = beta, r + x
        gap = abs(alpha - beta)

        def term(t):
            return mp.hyp2f1(rsx, b2, rsx + 1, gap / (big + t)) / (big + t) ** rsx

        a0 = term(t_x) - term(T)
        pre = mp.loggamma(r + x) - mp.loggamma(r) + r * mp.log(alpha) + s * mp.log(beta)
        return pre + mp.log(1 / ((alpha + T) ** (r + x) * (beta + T) ** s) + s / rsx * a0)


def flat_model():
    return ParetoNBDModel(priors={k: Prior("HalfFlat") for k in ParetoNBDModel.param_names})


def map_point(model, data):
    idata = model.fit(data, SamplerSettings(method="map"))
    return {k: float(idata.posterior[k].values.ravel()[0]) for k in model.param_names}


@pytest.fixture(scope="module")
def mle(cdnow_weekly):
    model = flat_model()
    return model, map_point(model, cdnow_weekly)


@pytest.fixture(scope="module")
def logp_fn():
    """One compiled function: pointwise log-likelihood and its gradient w.r.t. the parameters,
    for vectors of independent cases (so the gradient of the sum is per case)."""
    names = ("r", "alpha", "s", "beta")
    params = {n: pt.dvector(n) for n in names}
    data = {n: pt.dvector(n) for n in ("x", "t_x", "T")}
    ll = pareto_nbd_logp(params, data)
    grads = pytensor.grad(pt.sum(ll), [params[n] for n in names])
    f = pytensor.function([*params.values(), *data.values()], [ll, *grads])

    def call(cases):
        cases = np.asarray(cases, float)
        value, *g = f(*cases.T)
        return value, np.column_stack(g)

    return call


# -- mpmath --------------------------------------------------------------------------------------
SHAPES = [0.01, 1.0, 100.0]
SCALES = [(10.0, 10.0), (10.0, 10.5), (0.01, 100.0), (100.0, 0.01), (1e-3, 1e4)]
HISTORIES = [(0, 0.0, 39.0), (0, 0.0, 1e4), (3, 1e-6, 40.0), (200, 25.0, 52.0), (200, 52.0, 52.0)]
HISTORIES += [(10, 5.0, 1e4), (50, 1e4, 1e4), (7, 39.9, 40.0)]


def test_loglike_matches_mpmath_on_extreme_grid(logp_fn):
    cases = [
        (r, alpha, s, beta, x, t_x, T)
        for r, s, (alpha, beta), (x, t_x, T) in itertools.product(SHAPES, SHAPES, SCALES, HISTORIES)
    ]
    value, grads = logp_fn(cases)
    ref = np.array([float(mp_pareto_ll(*c)) for c in cases])
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grads))
    # absolute error of the log-likelihood: the quadrature's worst corner (see test_special) is
    # 5e-8; everything else is within double-precision rounding of the terms
    err = np.abs(value - ref)
    assert err.max() < 1e-7, cases[int(np.argmax(err))]
    assert np.quantile(err, 0.95) < 1e-11


GRAD_CASES = [
    # r, alpha, s, beta, x, t_x, T
    (0.553, 10.578, 0.606, 11.669, 2, 30.43, 38.86),  # CDNOW
    (0.01, 0.01, 0.01, 100.0, 0, 0.0, 1e4),  # x = 0, very large T, scales far apart
    (100.0, 100.0, 100.0, 0.01, 200, 25.0, 52.0),  # large x, scales far apart the other way
    (1.0, 10.0, 0.5, 10.0, 5, 40.0, 40.0),  # t_x = T, equal scales
    (0.3, 5.0, 2.0, 5.00001, 1, 1e-6, 30.0),  # t_x ≈ 0, nearly equal scales
    (5.0, 1e-3, 0.01, 1e4, 50, 9999.0, 1e4),  # very large T, extreme scales
]


def test_gradient_matches_mpmath_derivative(logp_fn):
    _, grads = logp_fn(GRAD_CASES)
    ref = np.empty_like(grads)
    with mp.workdps(50):
        for k, case in enumerate(GRAD_CASES):
            for i in range(4):

                def fi(v, i=i, case=case):
                    args = list(case)
                    args[i] = v
                    return mp_pareto_ll(*args)

                x0 = mp.mpf(case[i])
                ref[k, i] = float(mp.diff(fi, x0, h=x0 * mp.mpf("1e-15")))
    assert np.all(np.isfinite(grads))
    np.testing.assert_allclose(grads, ref, rtol=1e-7, atol=1e-9)


def test_gradient_is_continuous_across_the_alpha_beta_branch(logp_fn):
    # the integral is evaluated with the larger of alpha and beta factored out; the result and
    # its gradient must not jump when alpha crosses beta
    eps = 1e-9
    cases = [(0.7, 12.0 + d, 0.9, 12.0, 4, 20.0, 40.0) for d in (-eps, 0.0, eps)]
    value, grads = logp_fn(cases)
    assert np.ptp(value) < 1e-8
    np.testing.assert_allclose(grads[0], grads[2], rtol=1e-6)
    np.testing.assert_allclose(grads[1], grads[2], rtol=1e-6)


# -- published estimates -------------------------------------------------------------------------
def test_mle_reproduces_published_cdnow_estimates(mle, cdnow_weekly):
    model, point = mle
    for k, v in PUBLISHED.items():
        assert point[k] == pytest.approx(v, rel=0.01), k
    assert model.point_loglike(point) == pytest.approx(PUBLISHED_LL, abs=0.05)
    assert model.point_loglike(PUBLISHED, cdnow_weekly) == pytest.approx(PUBLISHED_LL, abs=0.05)


def test_default_priors_are_weak_on_cdnow(mle, cdnow_weekly):
    _, ml = mle
    point = map_point(ParetoNBDModel(), cdnow_weekly)
    for k in PUBLISHED:
        assert point[k] == pytest.approx(ml[k], rel=0.01), k


# -- compression and pointwise log-likelihood ----------------------------------------------------
def test_compression_is_exact(mle, cdnow_weekly, logp_fn):
    _, point = mle
    arrays, inverse = ParetoNBDModel().prepare(cdnow_weekly)
    assert arrays["weight"].sum() == len(cdnow_weekly) and len(arrays["weight"]) < 1100
    frame = cdnow_weekly[["x", "t_x", "T"]].to_numpy(float)
    distinct = np.column_stack([arrays[k] for k in ("x", "t_x", "T")])
    np.testing.assert_array_equal(distinct[inverse], frame)
    for p in (point, {"r": 2.0, "alpha": 0.5, "s": 0.05, "beta": 300.0}):
        pv = np.array([p[k] for k in ParetoNBDModel.param_names])
        per_customer, g_customer = logp_fn(np.column_stack([np.tile(pv, (len(frame), 1)), frame]))
        per_row, g_row = logp_fn(np.column_stack([np.tile(pv, (len(distinct), 1)), distinct]))
        total = arrays["weight"] @ per_row
        assert total == pytest.approx(per_customer.sum(), rel=1e-13)
        assert ParetoNBDModel().point_loglike(p, cdnow_weekly) == pytest.approx(total, rel=1e-13)
        np.testing.assert_allclose(
            arrays["weight"] @ g_row, g_customer.sum(0), rtol=1e-9, atol=1e-9 * np.abs(g_row).max()
        )


def test_pointwise_log_likelihood_expands_per_customer(mle, cdnow_weekly, monkeypatch, logp_fn):
    model, point = mle
    rng = np.random.default_rng(1)
    draws = {k: point[k] * np.exp(0.05 * rng.standard_normal((2, 3))) for k in point}
    idata = az.from_dict(posterior=draws)
    # small chunks: the quadrature holds 32 nodes per (draw, row)
    monkeypatch.setattr(base, "LOGLIKE_CHUNK_ELEMENTS", 2 * len(model.arrays["weight"]))
    ll = model.log_likelihood(idata)
    assert ll.shape == (2, 3, len(cdnow_weekly))
    frame = cdnow_weekly[["x", "t_x", "T"]].to_numpy(float)
    for c, d in ((0, 0), (1, 2)):
        pv = np.array([draws[k][c, d] for k in model.param_names])
        own, _ = logp_fn(np.column_stack([np.tile(pv, (len(frame), 1)), frame]))
        np.testing.assert_allclose(ll[c, d].values, own, rtol=1e-12, atol=1e-12)


# -- NUTS ----------------------------------------------------------------------------------------
def test_nuts_parametrisation_is_an_exact_change_of_variables(cdnow_weekly):
    # NUTS samples (log r, log alpha, log s, log H) with H = s log(1 + t0/beta); its log density
    # must differ from the plain model's (on log r, log alpha, log s, log beta) by exactly
    # log |d log beta / d log H| at every point, so both describe the same posterior.
    model = ParetoNBDModel()
    arrays, _ = model.prepare(cdnow_weekly)
    plain = model.build_model(arrays).compile_logp()
    model._reparametrise = True
    reparam = model.build_model(arrays).compile_logp()
    t0 = np.average(arrays["T"], weights=arrays["weight"])
    for r, alpha, s, beta in [
        (0.55, 10.6, 0.6, 11.7),
        (0.3, 5.0, 3.0, 80.0),
        (1.2, 20.0, 0.1, 2.0),
    ]:
        # the default priors are on log θ (cbcv.models.priors): the free variables are log_<name>
        logs = {"log_r": np.log(r), "log_alpha": np.log(alpha), "log_s": np.log(s)}
        log_h = np.log(s * np.log1p(t0 / beta))
        lp = plain({**logs, "log_beta": np.log(beta)})
        lr = reparam({**logs, "log_dropout_hazard": log_h})

        def log_beta(lh, s=s):
            return np.log(t0 / np.expm1(np.exp(lh) / s))

        h = 1e-6
        slope = (log_beta(log_h + h) - log_beta(log_h - h)) / (2 * h)
        assert lr - lp == pytest.approx(np.log(abs(slope)), abs=1e-7)


def test_nuts_graph_holds_no_constant_derived_from_the_data(cdnow_weekly):
    # A scalar constant is written into PyTensor's compiled C code, so a constant taken from the
    # data (the time scale t0, the weighted mean T) would make every new data set compile anew.
    # t0 must enter as a shared variable; the graph's scalar constants are then the same for two
    # data sets with different mean T.
    from pytensor.graph.basic import ancestors

    def scalar_constants(frame):
        model = ParetoNBDModel()
        model._reparametrise = True
        arrays, _ = model.prepare(frame)
        pm_model = model.build_model(arrays)
        graph = [pm_model.logp(), pm_model.dlogp()]
        consts = {
            round(float(v.data), 12)
            for v in ancestors(graph)
            if isinstance(v, pt.TensorConstant) and v.data.ndim == 0
        }
        t0 = np.average(arrays["T"], weights=arrays["weight"])
        scale = [v for v in ancestors(graph) if isinstance(v, pytensor.compile.SharedVariable)]
        return consts, t0, scale

    later = cdnow_weekly.assign(T=cdnow_weekly["T"] + 10.0)
    (c1, t1, s1), (c2, t2, s2) = scalar_constants(cdnow_weekly), scalar_constants(later)
    assert t2 == pytest.approx(t1 + 10.0)
    assert c1 == c2
    assert not {round(t1, 12), round(np.log(t1), 12)} & c1
    assert [float(v.get_value()) for v in s1] == [pytest.approx(t1)]
    assert [float(v.get_value()) for v in s2] == [pytest.approx(t2)]


def importance_check(model, idata, n=3000, seed=1):
    """Posterior means by importance sampling, independent of NUTS' trajectories (see
    tests/test_models_bgnbd.py): multivariate-t proposal on the log scale from the NUTS draws,
    target the model's log posterior density on that scale."""
    names = list(model.param_names)
    logs = np.column_stack([np.log(idata.posterior[k].values.ravel()) for k in names])
    mean, cov = logs.mean(0), np.cov(logs.T) * 1.5**2
    proposal = stats.multivariate_t(loc=mean, shape=cov, df=5, seed=seed)
    u = proposal.rvs(n)
    with model.build_model(model.arrays) as pm_model:
        logp = pm_model.compile_logp()
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
def test_nuts_on_cdnow_converges_and_matches_importance_sampling(mle, cdnow_weekly):
    model = ParetoNBDModel()
    idata = model.fit(cdnow_weekly, SamplerSettings(chains=2, draws=500, tune=500, seed=11))
    summary = model.summary()
    assert model.divergences() == 0
    assert (summary["r_hat"] <= 1.02).all(), summary
    assert (summary.loc[["r", "alpha"], "r_hat"] <= 1.01).all(), summary
    est, se, ess = importance_check(model, idata)
    assert ess > 500
    for k in model.param_names:
        tol = 4 * np.hypot(summary.loc[k, "mcse_mean"], se[k])
        assert abs(summary.loc[k, "mean"] - est[k]) < tol, (k, summary.loc[k, "mean"], est[k], tol)
    _, ml = mle
    for k in model.param_names:
        assert summary.loc[k, "hdi_low"] < ml[k] < summary.loc[k, "hdi_high"]


@pytest.mark.slow
def test_parameter_recovery_from_simulated_customers():
    truth = ParetoNBDParams(r=0.6, alpha=8.0, s=0.8, beta=12.0)
    data = simulate_summaries(truth, 2000, 52.0, seed=2024)
    model = ParetoNBDModel()
    idata = model.fit(data, SamplerSettings(chains=2, draws=250, tune=400, seed=5))
    assert json.loads(idata.attrs["settings"])["target_accept"] == 0.95
    summary = model.summary()
    assert model.divergences() == 0
    for k in model.param_names:
        v = getattr(truth, k)
        assert summary.loc[k, "hdi_low"] < v < summary.loc[k, "hdi_high"], (k, v, summary.loc[k])
