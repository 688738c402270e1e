"""The pieces the compiled log-likelihood kernels share (BG/NBD, MBG/NBD and Pareto/NBD,
:mod:`cbcv.models.bgnbd_kernel`, :mod:`cbcv.models.pareto_integral`): ψ, a stable softplus,
the NBD part of the three likelihoods with its gradient, and the grouping of a model's
compressed arrays by distinct x, T and t_x."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def digamma(v: float) -> float:
    """ψ(v) for v > 0: recurrence up to v ≥ 10, then the asymptotic series (error < 1e-14)."""
    acc = 0.0
    while v < 10.0:
        acc -= 1.0 / v
        v += 1.0
    inv2 = 1.0 / (v * v)
    tail = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132))))
    return acc + math.log(v) - 0.5 / v - tail


@numba.njit(cache=True, error_model="numpy")
def softplus_logistic(d: float) -> tuple[float, float]:
    """(log(1 + e^d), 1 / (1 + e^-d)): softplus and its derivative, without overflow."""
    if d > 0.0:
        e = math.exp(-d)
        return d + math.log1p(e), 1.0 / (1.0 + e)
    e = math.exp(d)
    return math.log1p(e), e / (1.0 + e)


@numba.njit(cache=True, error_model="numpy")
def nbd_alive_sum(
    r: float, alpha: float, ux: np.ndarray, wx: np.ndarray, uT: np.ndarray, wT: np.ndarray,
    xT: np.ndarray, grad: np.ndarray,
) -> float:
    """Σ weight · log[Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))], the NBD part that BG/NBD, MBG/NBD and
    Pareto/NBD share, from the distinct x (``ux``, summed weights ``wx``) and the distinct T
    (``uT``, summed weights ``wT``, Σ weight·x ``xT``); adds its gradient to ``grad[0]`` (r) and
    ``grad[1]`` (α). r·log(α/(α+T)) is written −r·log1p(T/α)."""
    total = 0.0
    w_all = 0.0
    for j in range(ux.size):
        total += wx[j] * math.lgamma(r + ux[j])
        grad[0] += wx[j] * digamma(r + ux[j])
        w_all += wx[j]
    total -= w_all * math.lgamma(r)
    grad[0] -= w_all * digamma(r)
    for j in range(uT.size):
        l1p = math.log1p(uT[j] / alpha)
        total += -r * wT[j] * l1p - xT[j] * math.log(alpha + uT[j])
        grad[0] -= wT[j] * l1p
        grad[1] += r * wT[j] * uT[j] / (alpha * (alpha + uT[j])) - xT[j] / (alpha + uT[j])
    return total


@numba.njit(cache=True, error_model="numpy")
def log_and_inverse(c: float, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(c + u) and 1/(c + u) for each distinct value u, gathered by the per-row loops."""
    return np.log(c + u), 1.0 / (c + u)


def grouped(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A model's compressed arrays (``x``, ``t_x``, ``T``, ``weight``) with what the kernels
    group by: the distinct x, T and t_x (``ux``, ``uT``, ``ut``), each row's position among
    them (``ix``, ``iT``, ``it``, as floats: the kernels' data are float64), the summed weights
    per distinct x and T (``wx``, ``wT``) and Σ weight·x per distinct T (``xT``)."""
    x, t_x, T, w = (np.asarray(arrays[k], dtype=np.float64) for k in ("x", "t_x", "T", "weight"))
    out = {"x": x, "t_x": t_x, "T": T, "weight": w}
    for name, values in (("x", x), ("T", T), ("t", t_x)):
        levels, index = np.unique(values, return_inverse=True)
        out[f"u{name}"], out[f"i{name}"] = levels, index.ravel().astype(np.float64)
    ix, iT = out["ix"].astype(np.int64), out["iT"].astype(np.int64)
    out["wx"] = np.bincount(ix, weights=w, minlength=len(out["ux"]))
    out["wT"] = np.bincount(iT, weights=w, minlength=len(out["uT"]))
    out["xT"] = np.bincount(iT, weights=w * x, minlength=len(out["uT"]))
    return out
