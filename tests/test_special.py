"""The stable Pareto/NBD integral against mpmath at high precision, values and gradients.

The reference is Fader & Hardie's (2005) closed form of the same integral, the difference of two
Gaussian hypergeometric terms with the argument mapped into [0, 1) (branch by alpha >= beta),
evaluated by mpmath with 50 significant digits, so its cancellation and slow series do not matter.
"""

from __future__ import annotations

import itertools

import mpmath as mp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from cbcv.models.special import (
    GL_NODES,
    gauss_legendre,
    log_beta_np,
    log_beta_pt,
    log_power_integral_np,
    log_power_integral_pt,
)

DPS = 50


def ref_log_integral(alpha, p, beta, q, t_lo, t_hi, dps=DPS):
    """log ∫_{t_lo}^{t_hi} (α+τ)^-p (β+τ)^-q dτ from Fader & Hardie's 2F1 form (r+x = p, s+1 = q).

    ∫_t^∞ (α+τ)^-p (β+τ)^-q dτ = (M+t)^-(p+q-1) / (p+q-1) · 2F1(p+q-1, b; p+q; |α−β|/(M+t)),
    M = max(α, β), b the exponent of the factor with the smaller of α, β.
    """
    with mp.workdps(dps):
        alpha, p, beta, q, t_lo, t_hi = (mp.mpf(v) for v in (alpha, p, beta, q, t_lo, t_hi))
        a = p + q - 1
        big, b = (alpha, q) if alpha >= beta else (beta, p)
        gap = abs(alpha - beta)

        def tail(t):
            return (big + t) ** (-a) / a * mp.hyp2f1(a, b, a + 1, gap / (big + t))

        return mp.log(tail(t_lo) - tail(t_hi))


# r, s ~ 1e-2 .. 1e2; alpha, beta equal, close and far apart both ways; x = 0 and large;
# t_x = 0, tiny, inside, close to T; T small and very large.
SHAPES = [0.01, 0.6, 100.0]
SCALES = [(10.0, 10.0), (10.0, 11.0), (0.01, 100.0), (100.0, 0.01), (1e-3, 1e4), (1e4, 1e-3)]
HISTORIES = [  # (x, t_x, T)
    (0, 0.0, 39.0),
    (0, 0.0, 1e4),
    (3, 1e-6, 40.0),
    (5, 20.0, 40.0),
    (200, 25.0, 52.0),
    (200, 51.99, 52.0),
    (50, 9999.0, 1e4),
    (10, 5.0, 1e4),
]


def _grid():
    rows = []
    for r, s, (alpha, beta), (x, t_x, T) in itertools.product(SHAPES, SHAPES, SCALES, HISTORIES):
        rows.append((alpha, r + x, beta, s + 1.0, t_x, T))
    return np.array(rows)


@pytest.fixture(scope="module")
def grid():
    g = _grid()
    ref = np.array([float(ref_log_integral(*row)) for row in g])
    return g, ref


def test_integral_matches_mpmath_on_extreme_grid(grid):
    g, ref = grid
    got = log_power_integral_np(*g.T)
    assert np.all(np.isfinite(got))
    # the error of log I is the relative error of I; the worst corner (r = 0.01, s = 100,
    # α = 1e-3, β = 1e4, x = 0, T = 1e4) is off by 5e-8, the median case by ~1e-16
    err = np.abs(got - ref)
    assert err.max() < 1e-7, g[np.argmax(err)]
    assert np.median(err) < 1e-13


def test_integral_matches_mpmath_on_random_parameters():
    rng = np.random.default_rng(20240601)
    n = 150
    r, s = 10 ** rng.uniform(-2, 2, n), 10 ** rng.uniform(-2, 2, n)
    alpha, beta = 10 ** rng.uniform(-3, 4, n), 10 ** rng.uniform(-3, 4, n)
    T = 10 ** rng.uniform(-1, 4, n)
    x = np.maximum(np.floor(10 ** rng.uniform(0, 3.3, n)) - 1, 0)
    t_x = np.where(x > 0, T * rng.uniform(size=n), 0.0)
    got = log_power_integral_np(alpha, r + x, beta, s + 1, t_x, T)
    ref = np.array(
        [float(ref_log_integral(*v)) for v in zip(alpha, r + x, beta, s + 1, t_x, T, strict=True)]
    )
    assert np.abs(got - ref).max() < 1e-9


@pytest.fixture(scope="module")
def integral_fn():
    """One compiled PyTensor function for all tests: log I and its gradient w.r.t. α, p, β, q.

    The inputs are vectors of independent cases, so the gradient of the sum holds each case's
    own partial derivatives.
    """
    alpha, p, beta, q, t_lo, t_hi = (pt.dvector(n) for n in ("alpha", "p", "beta", "q", "lo", "hi"))
    out = log_power_integral_pt(alpha, p, beta, q, t_lo, t_hi)
    grads = pytensor.grad(pt.sum(out), [alpha, p, beta, q])
    f = pytensor.function([alpha, p, beta, q, t_lo, t_hi], [out, *grads])

    def call(*args):
        value, *g = f(*np.broadcast_arrays(*[np.atleast_1d(np.asarray(a, float)) for a in args]))
        return value, np.stack(g, axis=-1)

    return call


def test_pytensor_and_numpy_agree(grid, integral_fn):
    g, _ = grid
    value, grads = integral_fn(*g.T)
    np.testing.assert_allclose(value, log_power_integral_np(*g.T), rtol=1e-13, atol=1e-11)
    assert np.all(np.isfinite(grads))


def test_empty_interval_is_minus_infinity_with_zero_gradient(integral_fn):
    value, grads = integral_fn(
        [2.0, 2.0], [1.5, 1.5], [3.0, 3.0], [1.2, 1.2], [5.0, 5.0], [5.0, 6.0]
    )
    assert value[0] == -np.inf and np.isfinite(value[1])
    assert np.all(grads[0] == 0.0) and np.all(np.isfinite(grads[1])) and np.all(grads[1] != 0.0)


def test_short_interval_far_from_origin():
    # t_hi − t_lo = 1e-3 at τ ≈ 0.27 with α, β in the thousands: the log-time width is 3e-7,
    # which must be computed without cancellation.
    args = (3596.4, 4.03, 5527.1, 1.106, 0.2694, 0.2704)
    ref = float(ref_log_integral(*args))
    assert log_power_integral_np(*args) == pytest.approx(ref, rel=1e-13)


GRAD_CASES = [
    # alpha, p, beta, q, t_lo, t_hi
    (10.578, 2.553, 11.669, 1.606, 10.0, 38.9),  # CDNOW-like
    (0.01, 200.01, 100.0, 1.01, 25.0, 52.0),  # far apart, large x
    (100.0, 0.01, 0.01, 101.0, 0.0, 1e4),  # far apart the other way, x = 0, very large T
    (10.0, 100.0, 10.0, 1.6, 0.0, 40.0),  # equal scales
    (5.0, 3.5, 5.0001, 1.02, 1e-6, 30.0),  # nearly equal scales
]


def mpmath_gradient(cases) -> np.ndarray:
    """∂ log I / ∂(α, p, β, q) of each case (α, p, β, q, t_lo, t_hi) by mpmath's numerical
    derivative of :func:`ref_log_integral` at 50 digits."""
    ref = np.empty((len(cases), 4))
    with mp.workdps(DPS):
        for k, case in enumerate(cases):
            for i in range(4):

                def fi(v, i=i, case=case):
                    args = list(case)
                    args[i] = v
                    return ref_log_integral(*args)

                x0 = mp.mpf(case[i])
                ref[k, i] = float(mp.diff(fi, x0, h=x0 * mp.mpf("1e-15")))
    return ref


def test_gradient_matches_mpmath_derivative(integral_fn):
    cases = np.array(GRAD_CASES)
    _, got = integral_fn(*cases.T)
    ref = mpmath_gradient(GRAD_CASES)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


def test_gradient_is_that_of_the_evaluated_quadrature(integral_fn):
    # central differences of the value itself (random points) agree with the symbolic gradient
    rng = np.random.default_rng(7)
    x0 = np.column_stack(
        [
            10 ** rng.uniform(-1, 2, 20),
            10 ** rng.uniform(-1, 2, 20),
            10 ** rng.uniform(-1, 2, 20),
            1 + 10 ** rng.uniform(-1, 1, 20),
        ]
    )
    t_lo, t_hi = rng.uniform(0, 10, 20), rng.uniform(10, 60, 20)
    _, got = integral_fn(*x0.T, t_lo, t_hi)
    for i in range(4):
        h = np.zeros_like(x0)
        h[:, i] = 1e-6 * x0[:, i]
        up, _ = integral_fn(*(x0 + h).T, t_lo, t_hi)
        down, _ = integral_fn(*(x0 - h).T, t_lo, t_hi)
        np.testing.assert_allclose(got[:, i], (up - down) / (2 * h[:, i]), rtol=1e-6, atol=1e-9)


def test_log_beta_matches_mpmath():
    a = np.array([1e-3, 0.5, 3.0, 250.0])
    b = np.array([2.0, 1e-2, 7.5, 1e4])
    ref = [float(mp.log(mp.beta(x, y))) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(log_beta_np(a, b), ref, rtol=1e-12)
    np.testing.assert_allclose(log_beta_pt(a, b).eval(), ref, rtol=1e-12)


def test_gauss_legendre_integrates_polynomials_exactly():
    nodes, log_w = gauss_legendre(GL_NODES)
    w = np.exp(log_w)
    for k in range(0, 2 * GL_NODES, 7):
        exact = (1 - (-1) ** (k + 1)) / (k + 1)
        assert np.sum(w * nodes**k) == pytest.approx(exact, abs=1e-13)


def test_numpy_version_is_the_same_in_slices(grid, monkeypatch):
    import cbcv.models.special as special

    g, _ = grid
    whole = log_power_integral_np(*g.T)
    monkeypatch.setattr(special, "NP_CHUNK_NODES", 3 * GL_NODES)  # three elements a slice
    np.testing.assert_array_equal(log_power_integral_np(*g.T), whole)
    # broadcasting: a (2, 1) column against a row of 3
    b = log_power_integral_np(
        g[:2, 0:1], g[:2, 1:2], g[:2, 2:3], g[:2, 3:4], 0.0, np.array([1.0, 5.0, 9.0])
    )
    assert b.shape == (2, 3)
    assert b[1, 2] == log_power_integral_np(g[1, 0], g[1, 1], g[1, 2], g[1, 3], 0.0, 9.0)
