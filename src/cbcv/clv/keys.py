"""The per-key evaluation of the scoring engine: predictions over the distinct summaries.

Every prediction of the frequency models (BG/NBD, MBG/NBD, Pareto/NBD) factors as
``P(alive | x, t_x, T) × f(x, T)``: the conditional expectation and DERT given alive depend on
the customer's history only through ``x`` and ``T`` (:func:`cbcv.predict.dert_given_alive`,
:func:`cbcv.predict.expected_given_alive`). ``f`` is evaluated once per distinct ``(x, T)`` pair
and per draw (:func:`pair_values`; for BG/NBD by Chebyshev interpolation over each x's T,
:data:`DERT_GRID` points), P(alive) (closed form) once per distinct key ``(x, t_x, T)``
(:func:`key_values`). The gamma-gamma expected spend is linear in the customer's mean repeat
spend ``z`` (Fader, Hardie & Lee 2005, "RFM and CLV", J. Marketing Research 42(4), eq. 5):
``E[Z | x, z] = A(x) + B(x) z`` with ``A = pγ/(px + q − 1)`` and ``B = px/(px + q − 1)``
(``B = 0`` without repeat purchases). So the CLV of a customer with key ``k`` under draw ``d`` is
``U_d(k) + V_d(k) z`` with ``U = m D A`` and ``V = m D B`` (``m`` the margin, ``D`` DERT), and
:func:`key_pass` sums it over the keys' customers in chunks of at most ``max_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit
from scipy import sparse

from cbcv import predict as P
from cbcv.clv.pairing import ScoringDraws
from cbcv.clv.tables import P_ALIVE_BINS
from cbcv.core.errors import DataError

#: Working memory of one chunk of keys (bytes).
MAX_BYTES = 256 * 2**20
#: The columns of a key: customers with the same key have the same predictions (but their spend).
KEY = ("x", "t_x", "T")
#: Draws used for each customer's interval by :func:`cbcv.clv.scoring.score_customers` and
#: :func:`cbcv.clv.spark.score_spark` (means and totals use every draw).
INTERVAL_DRAWS = 400


@dataclass(frozen=True)
class KeyValues:
    """Per draw and key of one chunk: P(alive), DERT, expected transactions (or None) and the
    CLV coefficients ``U = m D A`` and ``V = m D B`` (CLV = U + V z), all ``(draws, keys)``;
    ``A``, ``B`` the spend coefficients."""

    p_alive: np.ndarray
    dert: np.ndarray
    expected: np.ndarray | None
    A: np.ndarray
    B: np.ndarray
    U: np.ndarray
    V: np.ndarray


#: Chebyshev points per x for DERT given alive of BG/NBD and MBG/NBD (see
#: :func:`cbcv.predict.dert_given_alive`).
DERT_GRID = 16


@dataclass(frozen=True)
class PairValues:
    """The (x, T)-dependent factors of the predictions, per draw and distinct pair: DERT and
    (with a horizon) expected transactions given alive, ``(draws, pairs)``; ``index`` gives each
    key's pair."""

    index: np.ndarray
    dert: np.ndarray
    expected: np.ndarray | None


def pair_values(
    draws: ScoringDraws,
    x: np.ndarray,
    T: np.ndarray,
    *,
    horizon: float | None = None,
    max_bytes: int = MAX_BYTES,
    grid: int | None = DERT_GRID,
) -> PairValues:
    """Evaluate the (x, T) factors once per distinct pair (1-d ``x``, ``T`` of the keys), in
    blocks of whole x values so that each x's T can be interpolated (``grid``)."""
    pairs, index = np.unique(np.stack([x, T]), axis=1, return_inverse=True)
    px, pT = pairs[0], pairs[1]
    n_draws, n_pairs = draws.n_draws, pairs.shape[1]
    dert = np.empty((n_draws, n_pairs))
    expected = np.empty((n_draws, n_pairs)) if horizon is not None else None
    starts = np.flatnonzero(np.r_[True, px[1:] != px[:-1]])
    bounds = np.r_[starts, n_pairs]
    per_x = (grid or 64) * 8 * (P.TEMPS + 8 * P.BG_DERT_NODES) * n_draws
    step = max(1, int(max_bytes // max(per_x, 1)))
    rules: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(0, len(starts), step):
        cols = slice(int(bounds[i]), int(bounds[min(i + step, len(starts))]))
        bx, bT = px[None, cols], pT[None, cols]
        dert[:, cols] = P.dert_given_alive(draws.freq, draws.params, bx, bT, draws.delta[:, None], rules, grid=grid)
        if expected is not None:
            expected[:, cols] = P.expected_given_alive(draws.freq, float(horizon), draws.params, bx, bT)
    return PairValues(index=np.asarray(index).ravel(), dert=dert, expected=expected)


def key_values(
    draws: ScoringDraws,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    *,
    horizon: float | None = None,
    pairs: PairValues | None = None,
    index: np.ndarray | None = None,
) -> KeyValues:
    """Predictions for the keys ``(x, t_x, T)`` (1-d arrays), per draw (see the module notes).
    ``pairs``: the (x, T) factors when already evaluated (:func:`pair_values`), with ``index``
    the keys' columns in them; otherwise they are evaluated here. The products run in one
    compiled loop (:func:`clv_terms`: on the scale benchmark's 1M base, cProfile of the score
    stage, 7.6 s over both passes of 722,596 keys × 1,000 draws, where the NumPy products took
    17.7 s of the function's own time)."""
    p = draws.params
    alive = P.p_alive_rows(draws.freq, p, {"x": x[None, :], "t_x": t_x[None, :], "T": T[None, :]})
    if pairs is None:
        pairs = pair_values(draws, x, T, horizon=horizon, grid=None)
        index = pairs.index
    assert index is not None
    factor = pairs.expected if horizon is not None else None
    dert, A, B, U, V, expected = clv_terms(alive, pairs.dert, factor, index, x, draws.spend, draws.margin)
    return KeyValues(alive, dert, expected, A, B, U, V)


@njit(cache=True, error_model="numpy")  # a zero denominator gives inf: reported as not finite
def _clv_terms(alive, pair_dert, pair_expected, index, x, p, q, gamma, margin, with_expected):  # type: ignore[no-untyped-def]
    n_draws, n_keys = alive.shape
    dert, A, B = np.empty((n_draws, n_keys)), np.empty((n_draws, n_keys)), np.empty((n_draws, n_keys))
    U, V = np.empty((n_draws, n_keys)), np.empty((n_draws, n_keys))
    expected = np.empty((n_draws, n_keys if with_expected else 0))
    for d in range(n_draws):
        for k in range(n_keys):
            j = index[k]
            dd = alive[d, k] * pair_dert[d, j]
            denom = p[d] * x[k] + q[d] - 1.0
            a_ = p[d] * gamma[d] / denom
            b_ = p[d] * x[k] / denom
            md = margin[d] * dd
            dert[d, k], A[d, k], B[d, k], U[d, k], V[d, k] = dd, a_, b_, md * a_, md * b_
            if with_expected:
                expected[d, k] = alive[d, k] * pair_expected[d, j]
    return dert, A, B, U, V, expected


def clv_terms(
    alive: np.ndarray,
    pair_dert: np.ndarray,
    pair_expected: np.ndarray | None,
    index: np.ndarray,
    x: np.ndarray,
    spend: dict[str, np.ndarray],
    margin: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per (draw, key): DERT = P(alive) × the key's pair factor (``pair_dert[:, index]``), the
    gamma-gamma coefficients A = pγ/(px + q − 1), B = px/(px + q − 1), and U = m·DERT·A,
    V = m·DERT·B; with ``pair_expected``, expected transactions = P(alive) × its factor."""
    with_expected = pair_expected is not None
    f = np.ascontiguousarray
    out = _clv_terms(
        f(alive, dtype=np.float64), f(pair_dert, dtype=np.float64),
        f(pair_expected if with_expected else np.zeros((1, 1)), dtype=np.float64),
        f(index, dtype=np.int64), f(x, dtype=np.float64),
        *(f(np.ravel(spend[k]), dtype=np.float64) for k in ("p", "q", "gamma")),
        f(np.ravel(margin), dtype=np.float64), with_expected,
    )
    return (*out[:5], out[5] if with_expected else None)


#: float64 temporaries per (draw, key) in a pass over the keys (the pair factors are ready).
KEY_TEMPS = 40


def key_chunks(n_keys: int, draws: ScoringDraws, max_bytes: int) -> list[slice]:
    """Consecutive blocks of keys whose (draws × keys) temporaries fit in ``max_bytes``."""
    step = max(1, int(max_bytes // (8 * KEY_TEMPS * draws.n_draws)))
    return [slice(i, min(i + step, n_keys)) for i in range(0, n_keys, step)]


def group_sums(gn: sparse.csc_matrix, gs: sparse.csc_matrix, c: slice, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """(draws, groups) CLV totals over the keys ``c`` of a chunk: U @ customers + V @ summed z,
    with the chunk's (groups × keys) block made dense (a chunk has a few hundred keys)."""
    return U @ gn[:, c].toarray().T + V @ gs[:, c].toarray().T


def interval_draws_index(n_draws: int, interval_draws: int | None) -> np.ndarray:
    """The draws the per-customer intervals are read from: ``interval_draws`` of the ``n_draws``
    evenly spaced (every draw when ``None`` or more)."""
    n_sub = n_draws if interval_draws is None else min(interval_draws, n_draws)
    return np.linspace(0, n_draws - 1, n_sub).round().astype(int)


def key_bounds(values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``lo`` and ``hi`` quantiles over draws of a per-key quantity ``(draws, keys)``:
    P(alive) and expected transactions depend on the key alone, so their intervals are per key."""
    bounds = np.quantile(values, [lo, hi], axis=0)
    return bounds[0], bounds[1]


@dataclass(frozen=True)
class KeyPass:
    """The first pass over the keys: per-key means and the per-draw totals."""

    means: pd.DataFrame  # key columns + n, sz + p_alive_mean, dert_mean, expected_mean, a, b, u, v
    total: np.ndarray  # (draws,) CLV of all customers
    expected_total: np.ndarray | None  # (draws,) expected transactions of all customers
    p_alive_counts: np.ndarray  # (draws, bins) customers per P(alive) bin
    group_draws: dict[str, np.ndarray]  # name -> (draws, groups)


def key_pass(
    draws: ScoringDraws,
    keys: pd.DataFrame,
    *,
    horizon: float | None = None,
    groups: dict[str, tuple[sparse.csc_matrix, sparse.csc_matrix]] | None = None,
    p_alive_bins: int = P_ALIVE_BINS,
    max_bytes: int = MAX_BYTES,
    progress: Callable[[int, int], None] | None = None,
    pairs: PairValues | None = None,
    bounds: tuple[float, float] | None = None,
    interval_draws: int | None = None,
) -> KeyPass:
    """Evaluate every key (``x``, ``t_x``, ``T``, ``n`` customers, ``sz`` their summed mean
    repeat spend) over every draw. ``groups`` maps a name to sparse ``(groups × keys)`` matrices
    of customer counts and of summed ``z``, whose per-draw CLV totals are returned. ``bounds``
    (the interval's quantiles): also each key's P(alive) and expected-transaction intervals
    (``p_alive_low``, ``p_alive_high``, ``expected_low``, ``expected_high``) over the draws of
    :func:`interval_draws_index`, as the local engine's second pass reads them."""
    x, t_x, T = (keys[c].to_numpy(dtype=float) for c in KEY)
    n = keys["n"].to_numpy(dtype=float)
    sz = keys["sz"].to_numpy(dtype=float)
    groups = groups or {}
    n_draws, n_keys = draws.n_draws, len(keys)
    stats = {k: np.empty(n_keys) for k in ("p_alive_mean", "dert_mean", "a", "b", "u", "v")}
    if horizon is not None:
        stats["expected_mean"] = np.empty(n_keys)
    bounded = ["p_alive", *(["expected"] if horizon is not None else [])] if bounds is not None else []
    for name in bounded:
        stats[f"{name}_low"], stats[f"{name}_high"] = np.empty(n_keys), np.empty(n_keys)
    sub = interval_draws_index(n_draws, interval_draws)
    total = np.zeros(n_draws)
    exp_total = np.zeros(n_draws) if horizon is not None else None
    pa_counts = np.zeros((n_draws, p_alive_bins))
    sums = {g: np.zeros((n_draws, gn.shape[0])) for g, (gn, _) in groups.items()}
    if pairs is None:
        pairs = pair_values(draws, x, T, horizon=horizon, max_bytes=max_bytes)
    chunks = key_chunks(n_keys, draws, max_bytes)
    for j, c in enumerate(chunks):
        kv = key_values(draws, x[c], t_x[c], T[c], horizon=horizon, pairs=pairs, index=pairs.index[c])
        if not (np.isfinite(kv.U).all() and np.isfinite(kv.V).all()):
            bad = c.start + int(np.argmin(np.isfinite(kv.U + kv.V).all(axis=0)))
            raise DataError(f"scoring: CLV not finite for x={x[bad]:g}, t_x={t_x[bad]:g}, T={T[bad]:g}")
        total += kv.U @ n[c] + kv.V @ sz[c]
        for g, (gn, gs) in groups.items():
            sums[g] += group_sums(gn, gs, c, kv.U, kv.V)
        for name, arr in (("p_alive_mean", kv.p_alive), ("dert_mean", kv.dert), ("a", kv.A),
                          ("b", kv.B), ("u", kv.U), ("v", kv.V)):
            stats[name][c] = arr.mean(axis=0)
        if kv.expected is not None and exp_total is not None:
            stats["expected_mean"][c] = kv.expected.mean(axis=0)
            exp_total += kv.expected @ n[c]
        for name in bounded:
            assert bounds is not None
            values = kv.p_alive if name == "p_alive" else kv.expected
            stats[f"{name}_low"][c], stats[f"{name}_high"][c] = key_bounds(values[sub], *bounds)
        idx = np.clip((kv.p_alive * p_alive_bins).astype(np.int64), 0, p_alive_bins - 1)
        for b in range(p_alive_bins):
            pa_counts[:, b] += (idx == b) @ n[c]
        if progress is not None:
            progress(j + 1, len(chunks))
    means = keys.reset_index(drop=True).copy()
    for k, v in stats.items():
        means[k] = v
    return KeyPass(means, total, exp_total, pa_counts, sums)

