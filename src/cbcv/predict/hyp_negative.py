"""Gauss's hypergeometric function ₂F₁(1, a; c; −y) at negative arguments, fast and accurate.

This is E[1 / (1 + p y)] for p ~ Beta(a, c − a): the expectation over the dropout probability in
the BG/NBD and MBG/NBD DERT (:mod:`cbcv.predict.dert_rate`). :func:`hyp2f1_one_negative` evaluates it
directly (scipy or Euler's integral), :func:`hyp2f1_one_negative_interpolated` at many
arguments per (a, c) by Chebyshev interpolation in log y.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

#: Above this c, :func:`hyp2f1_one_negative` integrates instead of calling scipy's hyp2f1, which
#: returns nan or inf for large c and large arguments (c = 175, y = 2700: a customer with 170
#: purchases) and loses digits from c ≈ 25.
HYP_DIRECT_MAX_C = 20.0
_LEGENDRE = np.polynomial.legendre.leggauss(200)


def hyp2f1_one_negative(a: Any, c: Any, y: Any) -> np.ndarray:
    """₂F₁(1, a; c; −y) for a > 0, c > 0, y ≥ 0 (broadcast).

    scipy's ``hyp2f1`` for c ≤ :data:`HYP_DIRECT_MAX_C` (against mpmath on 1,500 random
    points with y from 1e-3 to 1e6: within 1e-10 for a < 1, as BG/NBD's a usually is, and 1e-9
    for a < 3; 2e-8 was seen with a within 0.01 of 3); above, Euler's integral
    ₂F₁(1, a; c; −y) = (c − 1) ∫₀¹ (1 − t)^(c−2) (1 + y t)^(−a) dt in the variable s = log t,
    where the integrand is a smooth bump between s ≈ −log y and s ≈ −log c, by 200-point
    Gauss–Legendre on [min(−log y, −log c) − 45, 0] (relative error below 1e-14 against mpmath
    for c up to 1000 and y up to 1e7; tests/test_predict.py)."""
    a, c, y = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, c, y)))
    out = np.empty(a.shape)
    big = c > HYP_DIRECT_MAX_C
    out[~big] = special.hyp2f1(1.0, a[~big], c[~big], -y[~big])
    if big.any():
        nodes, weights = _LEGENDRE
        ab, cb, yb = a[big], c[big], y[big]
        res = np.empty(ab.shape)
        step = 20_000
        for i in range(0, ab.size, step):
            aa, cc, yy = ab[i : i + step, None], cb[i : i + step, None], yb[i : i + step, None]
            lo = np.minimum(-np.log(np.maximum(yy, 1e-300)), -np.log(cc)) - 45.0
            s = lo * (1.0 - nodes) / 2.0  # maps [-1, 1] onto [lo, 0]
            log_f = s + (cc - 2.0) * np.log1p(-np.exp(s)) - aa * np.log1p(yy * np.exp(s))
            res[i : i + step] = (cc[:, 0] - 1.0) * (-lo[:, 0] / 2.0) * (np.exp(log_f) @ weights)
        out[big] = res
    return out


#: Relative accuracy aimed at by :func:`hyp2f1_one_negative_interpolated`, and the bounds on its
#: number of Chebyshev points (below the minimum it is no cheaper than direct evaluation).
HYP_INTERP_TOL = 1e-12
HYP_INTERP_POINTS = (16, 64)


def chebyshev_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` Chebyshev points of the first kind on (−1, 1) and their barycentric weights
    (Berrut & Trefethen 2004, "Barycentric Lagrange interpolation", SIAM Review 46, eq. 5.3)."""
    k = np.arange(n)
    angle = (2 * k + 1) * np.pi / (2 * n)
    return np.cos(angle), (-1.0) ** k * np.sin(angle)


def hyp_interp_points(width: float) -> int:
    """Chebyshev points for interpolating in u = log y over an interval of ``width``: a function
    analytic in the strip |Im u| < π converges like ρ^(−n), ρ = η + √(1 + η²), η = 2π / width
    (the Bernstein ellipse that fits in the strip); n is chosen for ρ^(−n) ≤ 1e-13."""
    eta = 2.0 * np.pi / max(width, 1e-6)
    rho = eta + np.sqrt(1.0 + eta * eta)
    lo, hi = HYP_INTERP_POINTS
    return int(min(hi, max(lo, np.ceil(30.0 / np.log(rho)))))


def hyp2f1_one_negative_interpolated(a: np.ndarray, c: np.ndarray, y: np.ndarray) -> np.ndarray:
    """₂F₁(1, a; c; −y) at many y > 0 per (a, c): ``a`` and ``c`` of shape (draws, 1), ``y``
    (draws, m); equal to :func:`hyp2f1_one_negative` to about 1e-12 (tests/test_predict.py).

    f(y) = ₂F₁(1, a; c; −y) = E[1 / (1 + p y)] with p ~ Beta(a, c − a). As a function of
    u = log y it is analytic in the strip |Im u| < π (its singularities lie where 1 + p y = 0,
    on y ≤ −1), and so is h = f · (1 + y)^min(a, 1), which stays of order one over any range
    of y (f falls like y^−a for a < 1 and like 1/y for a > 1): Chebyshev interpolation of h in
    u then has a uniform relative error, falling geometrically with the number of points
    (:func:`hyp_interp_points`, from the widest draw's range of log y). Per draw, h is
    evaluated at the Chebyshev points spanning that draw's log y and interpolated by the
    barycentric formula. Guard: each draw's smallest and largest y (the ends, where the
    interpolation error peaks) are also evaluated directly, and any draw off there by more
    than 1e-11 is evaluated directly throughout. The BG/NBD DERT needs ₂F₁ at its trapezoidal
    lattice (tens to about 170 values) per draw and x, where for heavy buyers each direct value
    is a 200-node integral (c > 20)."""
    draws, m = y.shape
    u = np.log(y)
    lo, hi = u.min(axis=1, keepdims=True), u.max(axis=1, keepdims=True)
    points = hyp_interp_points(float(np.max(hi - lo)))
    if m <= 2 * points:
        return hyp2f1_one_negative(a, c, y)
    mid, half = (lo + hi) / 2.0, np.maximum((hi - lo) / 2.0, 1e-3)
    power = np.minimum(a, 1.0)
    cheb, bary = chebyshev_points(points)
    y_nodes = np.exp(mid + half * cheb)  # (draws, points)
    h_nodes = hyp2f1_one_negative(a, c, y_nodes) * np.exp(power * np.log1p(y_nodes))
    t = (u - mid) / half
    num, den = np.zeros(y.shape), np.zeros(y.shape)
    exact = np.full(y.shape, -1)
    for j in range(points):
        diff = t - cheb[j]
        hit = diff == 0.0
        if hit.any():
            exact[hit] = j
            diff[hit] = 1.0
        w = bary[j] / diff
        num += w * h_nodes[:, j : j + 1]
        den += w
    h = num / den
    if (exact >= 0).any():
        rows, cols = np.nonzero(exact >= 0)
        h[rows, cols] = h_nodes[rows, exact[rows, cols]]
    out = h * np.exp(-power * np.log1p(y))
    ends = np.concatenate([u.argmin(axis=1)[:, None], u.argmax(axis=1)[:, None]], axis=1)
    y_ends = np.take_along_axis(y, ends, axis=1)
    direct = hyp2f1_one_negative(a, c, y_ends)
    got = np.take_along_axis(out, ends, axis=1)
    bad = (np.abs(got - direct) > 10 * HYP_INTERP_TOL * np.abs(direct)).any(axis=1)
    if bad.any():
        out[bad] = hyp2f1_one_negative(a[bad], c[bad], y[bad])
    return out
