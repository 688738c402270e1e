"""The Pareto/NBD log-likelihood and its gradient for fitting: a PyTensor Op computed in Numba.

The Pareto/NBD likelihood needs, per customer, ``I = ∫_{t_x}^{T} (α+τ)^-(r+x) (β+τ)^-(s+1) dτ``
(see :mod:`cbcv.models.special`, whose :func:`~cbcv.models.special.log_power_integral_pt` is the
reference: it is what the pointwise log-likelihood, LOO and predictions use). Under NUTS the
likelihood and its four partial derivatives are needed at every leapfrog step; differentiating
the reference's PyTensor graph costs 2.6 ms per gradient on CDNOW's 1,016 distinct summaries.
:func:`pareto_loglike_sum` returns the summed log-likelihood and its gradient in (r, α, s, β)
from one compiled loop (0.3 ms on CDNOW, through :class:`cbcv.models.compiled.CompiledLogLike`),
the integral by one of two methods per row:

**Series** (most rows). Let A ≥ B be the larger and smaller of α, β, with exponents P and Q
(so P = r+x, Q = s+1 when α ≥ β, and the other way round otherwise), δ = A − B and
w = 1/(A+τ). Then (B+τ) = (A+τ)(1 − δw) and, with m = P + Q − 1 = r + x + s,

.. math::

    I = w_0^{m} \\sum_{k \\ge 0} \\frac{(Q)_k}{k!} z^k \\, \\frac{1 - \\rho^{m+k}}{m+k},
    \\qquad z = \\delta w_0,\\; w_0 = \\frac{1}{A+t_x},\\; \\rho = \\frac{A+t_x}{A+T},

the hypergeometric series of Fader & Hardie's A0 with its two ends combined term by term:
every term is positive (no cancellation, however close t_x is to T) and the terms fall like z^k.
The partial derivatives are series over the same terms. Used where z ≤ :data:`SERIES_MAX_Z`;
on CDNOW at the published estimates that is every row (z ≤ 0.093, about 17 terms past the
terms' peak).

**Quadrature** (the rest). The reference's windowed Gauss–Legendre rule in y = log(min(α,β)+τ),
node for node, so the value equals the reference's to rounding; the derivatives are the same
rule applied to the differentiated integrand (∂/∂P log f = −log(A+τ), ∂/∂A log f = −P/(A+τ),
and likewise for B, Q), i.e. the derivative of the exact integral to quadrature accuracy.

Tests (``tests/test_pareto_integral.py``): values against mpmath on the extreme grid of
``tests/test_special.py`` as accurate as the reference, against the reference to 1e-12 and
gradients to 1e-7 relative on random rows, gradients against mpmath's derivatives to 1e-8,
series against quadrature to 1e-9, and the whole likelihood against the pointwise reference on
CDNOW (1e-13 relative, gradients 1e-8). The Op also runs in PyTensor's Numba backend (nutpie).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cbcv.models.nbd_kernel import grouped, log_and_inverse, nbd_alive_sum, softplus_logistic
from cbcv.models.special import GL_NODES, NEWTON_STEPS, WINDOW, gauss_legendre

#: Rows with z = |α−β| / (max(α,β) + t_x) above this use the quadrature (the series needs
#: ~40 / −log z terms past its peak: 180 at z = 0.8). On CDNOW rows at β = 45-140 the kernel
#: got faster as this limit rose from 0.5 to 0.85, against ~1.4 µs a row for the 32-node
#: quadrature; 0.8 keeps a margin.
SERIES_MAX_Z = 0.8
#: The series stops when a term falls below this fraction of the sum (past the terms' peak).
SERIES_TOL = 1e-17
#: Rows whose series would need more terms than this (large Q with z near the limit) use the
#: quadrature; so do rows whose largest term would exceed ~e^600 times the first.
SERIES_MAX_TERMS = 400


@numba.njit(cache=True, error_model="numpy")
def _series(A: float, P: float, B: float, Q: float, t_lo: float, t_hi: float) -> tuple:
    """(log I, ∂/∂A, ∂/∂P, ∂/∂B, ∂/∂Q, converged) by the series; A ≥ B, t_hi > t_lo.

    Term k is a_k = c_k z^k e_k / n_k with c_k = (Q)_k / k!, n_k = m + k and
    e_k = 1 − ρ^(n_k), updated as e_(k+1) = e_k + ρ^(n_k) (1 − ρ): a sum of positive numbers,
    accurate however close ρ is to 1, with one ``expm1`` per row instead of one per term.
    """
    delta = A - B
    w0 = 1.0 / (A + t_lo)
    z = delta * w0
    log_rho = -math.log1p((t_hi - t_lo) / (A + t_lo))
    one_minus_rho = -math.expm1(log_rho)
    rho = 1.0 - one_minus_rho
    dlr = w0 - 1.0 / (A + t_hi)  # ∂ log ρ / ∂A
    m = P + Q - 1.0
    peak = (Q * z - 1.0) / (1.0 - z)
    em = math.expm1(m * log_rho)
    e = -em  # 1 − ρ^n
    rho_n = 1.0 + em  # ρ^n
    ck = 1.0  # c_k z^k
    harm = 0.0  # Σ_{j<k} 1/(Q+j) = ∂ log c_k / ∂Q
    s0 = s_m = s_q = s_a = s_k = 0.0
    k = 0
    while True:
        n = m + k
        inv_n = 1.0 / n
        ratio = rho_n / e
        a = ck * e * inv_n
        s0 += a
        s_m += a * (-log_rho * ratio - inv_n)  # ∂ log a_k / ∂m
        s_q += a * harm
        s_a += a * (n * ratio)  # −∂ log a_k / ∂ log ρ
        s_k += a * k
        if k > peak and a <= SERIES_TOL * s0:
            break
        if k >= SERIES_MAX_TERMS:
            return 0.0, 0.0, 0.0, 0.0, 0.0, False
        ck *= (Q + k) * z / (k + 1.0)
        harm += 1.0 / (Q + k)
        e += rho_n * one_minus_rho
        rho_n *= rho
        k += 1
    # Σ a_k k / δ (∂/∂δ); at δ = 0 only the k = 1 term's derivative survives
    s_d = s_k / delta if delta > 0.0 else Q * w0 * -math.expm1((m + 1.0) * log_rho) / (m + 1.0)
    d_m = math.log(w0) + s_m / s0
    log_i = m * math.log(w0) + math.log(s0)
    d_a = -m * w0 + (s_d - w0 * s_k - dlr * s_a) / s0
    d_b = -s_d / s0
    return log_i, d_a, d_m, d_b, d_m + s_q / s0, True


@numba.njit(cache=True, error_model="numpy")
def _psi(y: float, c1: float, delta: float, p_big: float) -> float:
    return c1 * y - p_big * (y + math.log1p(delta * math.exp(-y)))


@numba.njit(cache=True, error_model="numpy")
def _dpsi(y: float, c1: float, delta: float, p_big: float) -> float:
    return c1 - p_big / (1.0 + delta * math.exp(-y))


@numba.njit(cache=True, error_model="numpy")
def _quadrature(
    A: float, P: float, B: float, Q: float, t_lo: float, t_hi: float,
    nodes: np.ndarray, log_w: np.ndarray,
) -> tuple:
    """(log I, ∂/∂A, ∂/∂P, ∂/∂B, ∂/∂Q) by the reference's windowed Gauss-Legendre rule; A ≥ B.

    In y = log(B + τ) the log integrand (with dτ = e^y dy) is ψ(y) = (1−Q) y − P log(e^y + δ),
    concave; the window and nodes are those of :func:`cbcv.models.special._log_power_integral`.
    """
    delta = A - B
    c1 = 1.0 - Q
    y_lo = math.log(B + t_lo)
    width = math.log1p((t_hi - t_lo) / (B + t_lo))
    y_hi = y_lo + width
    d_lo = _dpsi(y_lo, c1, delta, P)
    d_hi = _dpsi(y_hi, c1, delta, P)
    if d_lo <= 0.0:
        y_mode = y_lo
    elif d_hi >= 0.0:
        y_mode = y_hi
    else:
        y_root = math.log(delta) + math.log(c1) - math.log(Q + P - 1.0)
        y_mode = min(max(y_root, y_lo), y_hi)
    level = _psi(y_mode, c1, delta, P) - WINDOW
    w_hi, w_lo = y_hi, y_lo
    for _ in range(NEWTON_STEPS):
        h = _psi(w_hi, c1, delta, P) - level
        if h < 0.0:
            w_hi -= h / _dpsi(w_hi, c1, delta, P)
        h = _psi(w_lo, c1, delta, P) - level
        if h < 0.0:
            w_lo -= h / _dpsi(w_lo, c1, delta, P)
    cut_lo = max(min(w_lo, y_mode) - y_lo, 0.0)
    cut_hi = max(y_hi - max(w_hi, y_mode), 0.0)
    half = (width - cut_lo - cut_hi) / 2.0
    start = y_lo + cut_lo
    n = nodes.size
    vals = np.empty(n)
    e_neg = np.empty(n)  # 1 / (B + τ) = e^-y
    l1p = np.empty(n)  # log((A + τ) / (B + τ))
    top = -np.inf
    for j in range(n):
        y = start + half * (nodes[j] + 1.0)
        e_neg[j] = math.exp(-y)
        l1p[j] = math.log1p(delta * e_neg[j])
        vals[j] = c1 * y - P * (y + l1p[j]) + log_w[j]
        top = max(top, vals[j])
    total = g_p = g_q = g_a = g_b = 0.0
    for j in range(n):
        y = start + half * (nodes[j] + 1.0)
        wt = math.exp(vals[j] - top)
        total += wt
        g_q += wt * y  # log(B + τ)
        g_p += wt * (y + l1p[j])  # log(A + τ)
        g_b += wt * e_neg[j]  # 1 / (B + τ)
        g_a += wt * e_neg[j] / (1.0 + delta * e_neg[j])  # 1 / (A + τ)
    log_i = math.log(half) + top + math.log(total)
    return log_i, -P * g_a / total, -g_p / total, -Q * g_b / total, -g_q / total


@numba.njit(cache=True, error_model="numpy")
def _row(
    alpha: float, beta: float, p: float, q: float, lo: float, hi: float,
    nodes: np.ndarray, log_w: np.ndarray,
) -> tuple:
    """(log I, ∂/∂α, ∂/∂p, ∂/∂β, ∂/∂q) for one row, t_hi > t_lo; series where it converges fast."""
    swap = alpha < beta
    A, B = (beta, alpha) if swap else (alpha, beta)
    P, Q = (q, p) if swap else (p, q)
    z = (A - B) / (A + lo)
    ok = False
    v = d_a = d_p = d_b = d_q = 0.0
    if z <= SERIES_MAX_Z and Q * -math.log1p(-z) < 600.0:
        peak = max((Q * z - 1.0) / (1.0 - z), 0.0)
        if peak + 40.0 / max(-math.log(max(z, 1e-300)), 1e-3) < SERIES_MAX_TERMS:
            v, d_a, d_p, d_b, d_q, ok = _series(A, P, B, Q, lo, hi)
    if not ok:
        v, d_a, d_p, d_b, d_q = _quadrature(A, P, B, Q, lo, hi, nodes, log_w)
    if swap:  # A = β carries exponent q, B = α carries p
        return v, d_b, d_q, d_a, d_p
    return v, d_a, d_p, d_b, d_q


@numba.njit(cache=True, error_model="numpy")
def log_integral_jacobian(
    alpha: float, beta: float, p: np.ndarray, q: float, t_lo: np.ndarray, t_hi: np.ndarray,
    nodes: np.ndarray, log_w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """log ∫_{t_lo}^{t_hi} (α+τ)^-p (β+τ)^-q dτ per row and its partial derivatives.

    Returns ``(log_i, jac)``: ``jac[:, 0..3]`` = ∂ log I / ∂(α, p, β, q). Rows with t_hi ≤ t_lo
    (an empty integral) get −inf and a zero gradient, as the reference does.
    """
    n_rows = p.size
    log_i = np.empty(n_rows)
    jac = np.zeros((n_rows, 4))
    for i in range(n_rows):
        if t_hi[i] <= t_lo[i]:
            log_i[i] = -np.inf
            continue
        log_i[i], jac[i, 0], jac[i, 1], jac[i, 2], jac[i, 3] = _row(
            alpha, beta, p[i], q, t_lo[i], t_hi[i], nodes, log_w
        )
    return log_i, jac


@numba.njit(cache=True, error_model="numpy")
def death_term_sum(
    r: float, alpha: float, s: float, beta: float, x: np.ndarray, t_x: np.ndarray,
    T: np.ndarray, weight: np.ndarray, iT: np.ndarray, uT: np.ndarray, nodes: np.ndarray,
    log_w: np.ndarray, grad: np.ndarray,
) -> float:
    """Σ weight · softplus(ℓ), adding its gradient in (r, α, s, β) to ``grad``, where
    ℓ = log s + log I + (r+x) log(α+T) + s log(β+T) is the log ratio of the Pareto/NBD
    likelihood's death term to its alive term (see :func:`cbcv.models.pareto_nbd.pareto_nbd_logp`);
    log(α+T), log(β+T) and their inverses come from tables over the distinct T (``uT``; each
    row's position ``iT``). Rows with t_x = T contribute 0 (softplus(−∞))."""
    log_aT, inv_aT = log_and_inverse(alpha, uT)
    log_bT, inv_bT = log_and_inverse(beta, uT)
    total = 0.0
    log_s = math.log(s)
    for i in range(x.size):
        if T[i] <= t_x[i]:
            continue
        j = int(iT[i])
        rx = r + x[i]
        v, d_a, d_p, d_b, d_q = _row(alpha, beta, rx, s + 1.0, t_x[i], T[i], nodes, log_w)
        sp, sig = softplus_logistic(log_s + v + rx * log_aT[j] + s * log_bT[j])
        ws = weight[i] * sig
        total += weight[i] * sp
        grad[0] += ws * (d_p + log_aT[j])
        grad[1] += ws * (d_a + rx * inv_aT[j])
        grad[2] += ws * (1.0 / s + d_q + log_bT[j])
        grad[3] += ws * (d_b + s * inv_bT[j])
    return total


@numba.njit(cache=True, error_model="numpy")
def pareto_loglike_sum(
    r: float, alpha: float, s: float, beta: float, x: np.ndarray, t_x: np.ndarray,
    T: np.ndarray, weight: np.ndarray, iT: np.ndarray, ux: np.ndarray, wx: np.ndarray,
    uT: np.ndarray, wT: np.ndarray, xT: np.ndarray, nodes: np.ndarray, log_w: np.ndarray,
) -> tuple[float, np.ndarray]:
    """The Pareto/NBD log-likelihood Σ weight · ℓ(x, t_x, T) and its gradient in (r, α, s, β).

    The terms of :func:`cbcv.models.pareto_nbd.pareto_nbd_logp`, grouped: the NBD part
    (:func:`cbcv.models.nbd_kernel.nbd_alive_sum`: log-gammas once per distinct x, terms in T
    once per distinct T), the survival to T, −s·log1p(T/β), once per distinct T, and the death
    term per row (:func:`death_term_sum`)."""
    grad = np.zeros(4)
    total = nbd_alive_sum(r, alpha, ux, wx, uT, wT, xT, grad)
    for j in range(uT.size):
        l1p = math.log1p(uT[j] / beta)
        total -= s * wT[j] * l1p
        grad[2] -= wT[j] * l1p
        grad[3] += s * wT[j] * uT[j] / (beta * (beta + uT[j]))
    return total + death_term_sum(r, alpha, s, beta, x, t_x, T, weight, iT, uT, nodes, log_w, grad), grad


def _nodes() -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.ascontiguousarray(v) for v in gauss_legendre(GL_NODES))  # type: ignore[return-value]


def log_integral_and_jacobian(
    alpha: float, beta: float, p: np.ndarray, q: float, t_lo: np.ndarray, t_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy entry point to :func:`log_integral_jacobian` (float64 arrays, the reference's nodes)."""
    as_f = lambda v: np.ascontiguousarray(v, dtype=np.float64)  # noqa: E731
    return log_integral_jacobian(
        float(alpha), float(beta), as_f(p), float(q), as_f(t_lo), as_f(t_hi), *_nodes()
    )


def loglike_data(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The data of :func:`pareto_loglike_sum` from a model's compressed arrays
    (:func:`cbcv.models.nbd_kernel.grouped`) and the Gauss-Legendre nodes and log-weights of the
    quadrature."""
    g = grouped(arrays)
    keys = ("x", "t_x", "T", "weight", "iT", "ux", "wx", "uT", "wT", "xT")
    return [*(g[k] for k in keys), *_nodes()]
