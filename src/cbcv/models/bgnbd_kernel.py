"""The BG/NBD and MBG/NBD log-likelihoods with their gradients, as Numba kernels for fitting
(:class:`cbcv.models.compiled.CompiledLogLike`).

The terms are those of :func:`cbcv.models.bgnbd.bgnbd_logp` (Fader, Hardie & Lee 2005, eq. 6)
and :func:`~cbcv.models.bgnbd.mbgnbd_logp` (Batislam, Denizel & Filiztekin 2007), grouped:
log-gamma terms once per distinct x, the terms in T alone once per distinct T, and per row only
``softplus(d)`` with

    d = log a − log(b + x − 1 + m) + (r + x) · [log(α + T) − log(α + t_x)],   m = 1 for MBG/NBD,

(the log-gamma terms use b + x + m and a + b + x + m),

its logs gathered from per-distinct-value tables. The gradient is accumulated in the same loop:
∂d/∂r = log(α+T) − log(α+t_x), ∂d/∂α = (r+x)(1/(α+T) − 1/(α+t_x)), ∂d/∂a = 1/a,
∂d/∂b = −1/(b+x−1+m), each times the logistic function of d.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from cbcv.models.nbd_kernel import (
    digamma,
    grouped,
    log_and_inverse,
    nbd_alive_sum,
    softplus_logistic,
)


@numba.njit(cache=True, error_model="numpy")
def _bg_sum(
    r: float, alpha: float, a: float, b: float, modified: bool, x: np.ndarray, weight: np.ndarray,
    ix: np.ndarray, iT: np.ndarray, it: np.ndarray, ux: np.ndarray, wx: np.ndarray,
    uT: np.ndarray, wT: np.ndarray, xT: np.ndarray, ut: np.ndarray,
) -> tuple[float, np.ndarray]:
    shift = 1.0 if modified else 0.0
    grad = np.zeros(4)
    total = nbd_alive_sum(r, alpha, ux, wx, uT, wT, xT, grad)
    # per distinct x: log B(a, b+x+m) − log B(a, b) without log Γ(a), and b + x − 1 + m for d
    w_all = 0.0
    inv_b = np.empty(ux.size)
    log_b = np.empty(ux.size)
    for j in range(ux.size):
        v = ux[j]
        total += wx[j] * (math.lgamma(b + v + shift) - math.lgamma(a + b + v + shift))
        psi_ab = digamma(a + b + v + shift)
        grad[2] -= wx[j] * psi_ab
        grad[3] += wx[j] * (digamma(b + v + shift) - psi_ab)
        w_all += wx[j]
        # in d: BG/NBD b + x − 1 for x > 0 (x = 0 rows are masked, b stands in); MBG/NBD b + x
        bx = b + v - (1.0 if (v > 0.0 and not modified) else 0.0)
        inv_b[j] = 1.0 / bx
        log_b[j] = math.log(bx)
    psi_ab0 = digamma(a + b)
    total += w_all * (math.lgamma(a + b) - math.lgamma(b))
    grad[2] += w_all * psi_ab0
    grad[3] += w_all * (psi_ab0 - digamma(b))
    log_aT, inv_aT = log_and_inverse(alpha, uT)
    log_at, inv_at = log_and_inverse(alpha, ut)
    # per row: softplus(d), the death-before-T term relative to the alive term
    log_a = math.log(a)
    s_sig = s_r = s_alpha = s_b = 0.0
    for i in range(x.size):
        if x[i] <= 0.0 and not modified:
            continue
        jx, jT, jt = int(ix[i]), int(iT[i]), int(it[i])
        rx = r + x[i]
        gap = log_aT[jT] - log_at[jt]
        d = log_a - log_b[jx] + rx * gap
        sp, sig = softplus_logistic(d)
        ws = weight[i] * sig
        total += weight[i] * sp
        s_sig += ws
        s_r += ws * gap
        s_alpha += ws * rx * (inv_aT[jT] - inv_at[jt])
        s_b += ws * inv_b[jx]
    grad[0] += s_r
    grad[1] += s_alpha
    grad[2] += s_sig / a
    grad[3] -= s_b
    return total, grad


@numba.njit(cache=True, error_model="numpy")
def bg_loglike_sum(r, alpha, a, b, x, weight, ix, iT, it, ux, wx, uT, wT, xT, ut):  # type: ignore[no-untyped-def]
    """Σ weight · BG/NBD log-likelihood and its gradient in (r, α, a, b); arrays from
    :func:`loglike_data`."""
    return _bg_sum(r, alpha, a, b, False, x, weight, ix, iT, it, ux, wx, uT, wT, xT, ut)


@numba.njit(cache=True, error_model="numpy")
def mbg_loglike_sum(r, alpha, a, b, x, weight, ix, iT, it, ux, wx, uT, wT, xT, ut):  # type: ignore[no-untyped-def]
    """Σ weight · MBG/NBD log-likelihood and its gradient in (r, α, a, b)."""
    return _bg_sum(r, alpha, a, b, True, x, weight, ix, iT, it, ux, wx, uT, wT, xT, ut)


def loglike_data(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The kernels' data from a model's compressed arrays (:func:`cbcv.models.nbd_kernel.grouped`)."""
    g = grouped(arrays)
    return [g[k] for k in ("x", "weight", "ix", "iT", "it", "ux", "wx", "uT", "wT", "xT", "ut")]
