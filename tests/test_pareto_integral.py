"""The compiled Pareto/NBD likelihood used by fits, against the reference and mpmath.

:mod:`cbcv.models.pareto_integral` computes the integral (series or quadrature) and the whole
log-likelihood with its gradient in Numba; the PyTensor graph of :mod:`cbcv.models.special` and
:func:`cbcv.models.pareto_nbd.pareto_nbd_logp` is the reference it must reproduce.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import digamma as sp_digamma

from cbcv.data.datasets import load_dataset
from cbcv.data.summary import customer_summary
from cbcv.models.compiled import compiled_total
from cbcv.models.nbd_kernel import digamma
from cbcv.models.pareto_integral import (
    SERIES_MAX_Z,
    _nodes,
    _quadrature,
    _series,
    log_integral_and_jacobian,
    loglike_data,
)
from cbcv.models.pareto_nbd import ParetoNBDModel, pareto_nbd_logp, pareto_total_logp
from cbcv.models.special import log_power_integral_np, log_power_integral_pt
from conftest import assert_numba_backend_agrees, assert_same_likelihood
from test_special import GRAD_CASES, _grid, mpmath_gradient, ref_log_integral

PARAMS = ("r", "alpha", "s", "beta")


def _kernel(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and Jacobian (α, p, β, q) of the compiled kernel for independent rows."""
    out = [log_integral_and_jacobian(a, b, np.array([p]), q, np.array([lo]), np.array([hi]))
           for a, p, b, q, lo, hi in rows]
    return np.array([v[0] for v, _ in out]), np.vstack([j for _, j in out])


@pytest.fixture(scope="module")
def reference_gradient():
    alpha, p, beta, q, lo, hi = (pt.dvector(n) for n in ("alpha", "p", "beta", "q", "lo", "hi"))
    out = log_power_integral_pt(alpha, p, beta, q, lo, hi)
    f = pytensor.function(
        [alpha, p, beta, q, lo, hi], pytensor.grad(pt.sum(out), [alpha, p, beta, q])
    )
    return lambda rows: np.stack(f(*rows.T), axis=-1)


def test_value_matches_mpmath_on_extreme_grid():
    g = _grid()
    ref = np.array([float(ref_log_integral(*row)) for row in g])
    got, _ = _kernel(g)
    assert np.all(np.isfinite(got))
    # as the reference: its worst corner is 5e-8 off mpmath, series rows are ~1e-15 off
    err = np.abs(got - ref)
    assert err.max() < 1e-7, g[np.argmax(err)]
    assert np.median(err) < 1e-13


def test_value_and_gradient_match_the_reference_on_random_rows(reference_gradient):
    rng = np.random.default_rng(11)
    n = 400
    alpha, beta = 10 ** rng.uniform(-2, 3, n), 10 ** rng.uniform(-2, 3, n)
    p, q = 10 ** rng.uniform(-2, 2.5, n), 1 + 10 ** rng.uniform(-2, 1.5, n)
    hi = 10 ** rng.uniform(-1, 3, n)
    lo = np.where(rng.uniform(size=n) < 0.3, 0.0, hi * rng.uniform(size=n))
    rows = np.column_stack([alpha, p, beta, q, lo, hi])
    value, jac = _kernel(rows)
    np.testing.assert_allclose(value, log_power_integral_np(*rows.T), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(jac, reference_gradient(rows), rtol=1e-7, atol=1e-10)


def test_gradient_matches_mpmath_derivative():
    cases = np.array(GRAD_CASES)
    _, got = _kernel(cases)
    ref = mpmath_gradient(GRAD_CASES)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


def test_series_and_quadrature_agree_where_both_apply():
    nodes, log_w = _nodes()
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(300):
        B = 10 ** rng.uniform(-1, 2)
        T = 10 ** rng.uniform(0, 2.5)
        lo = T * rng.uniform() * (rng.uniform() < 0.7)
        # z = (A − B)/(A + lo) up to the series' limit
        z = rng.uniform(0, SERIES_MAX_Z)
        A = (B + z * lo) / (1 - z)
        P, Q = 10 ** rng.uniform(-1, 1.5), 1 + 10 ** rng.uniform(-2, 1)
        *series, ok = _series(A, P, B, Q, lo, T)
        if not ok:
            continue
        quad = _quadrature(A, P, B, Q, lo, T, nodes, log_w)
        np.testing.assert_allclose(series, quad, rtol=1e-9, atol=1e-11)
        checked += 1
    assert checked > 250


def test_close_ends_equal_scales_and_empty_interval():
    # t_x a hair below T: no cancellation; α = β: the series has one term (δ = 0)
    for args in [(10.0, 3.5, 11.0, 1.6, 38.999999, 39.0), (5.0, 2.0, 5.0, 1.3, 0.0, 30.0)]:
        value, jac = _kernel(np.array([args]))
        assert value[0] == pytest.approx(float(ref_log_integral(*args)), rel=1e-12)
        assert np.all(np.isfinite(jac))
    value, jac = log_integral_and_jacobian(2.0, 3.0, np.array([1.5]), 1.2, np.array([5.0]), np.array([5.0]))
    assert value[0] == -np.inf and np.all(jac == 0.0)


def test_digamma_matches_scipy():
    v = np.concatenate([np.linspace(1e-3, 40, 2000), [123.4, 1e4, 1e7]])
    got = np.array([digamma(a) for a in v])
    np.testing.assert_allclose(got, sp_digamma(v), rtol=1e-13, atol=1e-13)


@pytest.fixture(scope="module")
def cdnow_arrays():
    tx = load_dataset("cdnow-sample").transactions
    summary = customer_summary(
        tx, calibration_end="1997-09-30", time_unit="week", zero_amount_purchases=True
    )
    arrays, _ = ParetoNBDModel().prepare(summary)
    return arrays


@pytest.mark.parametrize(
    "point",
    [(0.553, 10.578, 0.606, 11.669), (0.55, 10.6, 1.5, 45.0), (2.0, 1.0, 0.1, 300.0), (0.3, 50.0, 4.0, 2.0)],
)
def test_fit_likelihood_equals_the_pointwise_reference_on_cdnow(cdnow_arrays, point):
    sym = {k: pt.dscalar(k) for k in PARAMS}
    fit_total = pareto_total_logp(sym, cdnow_arrays)
    assert_same_likelihood(fit_total, pareto_nbd_logp, sym, cdnow_arrays, point, grad_atol=1e-7)


def test_numba_backend_gives_the_same_numbers(cdnow_arrays):
    sym = [pt.dscalar(k) for k in PARAMS]
    total = compiled_total("pareto_nbd", tuple(sym), loglike_data(cdnow_arrays))
    assert_numba_backend_agrees(total, sym, (0.55, 10.6, 0.6, 11.7))
