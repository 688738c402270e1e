"""The exact draws of the simulated models on arrays of customers (one random block at a time).

Random streams: customer block ``k`` draws from ``SeedSequence(seed, spawn_key=(k,))``, split into
independent streams for latent parameters, purchase events, acquisition dates and spend (indexed
by :data:`LATENT`, :data:`EVENTS`, :data:`ACQUISITION`, :data:`SPEND`). The draws themselves
(order statistics of uniforms, the BG/NBD's geometric number of purchases before dropout, the
Pareto/NBD's exponential lifetime) are described in :mod:`cbcv.data.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbcv.core.errors import ConfigError
from cbcv.data.simulate.params import BGNBDParams, FrequencyParams, GammaGammaParams

#: Customers per random-number block; chunk boundaries never change the draws.
RNG_BLOCK = 4096
#: Indices of a block's streams (see :func:`block_streams`).
LATENT, EVENTS, ACQUISITION, SPEND = range(4)

# --------------------------------------------------------------------------------------------
# random streams


def entropy_of(seed: int | None) -> int:
    """Root entropy: the seed itself, or fresh entropy drawn once for the whole simulation."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def block_streams(entropy: int, block: int) -> list[np.random.Generator]:
    """Independent generators (latent, events, acquisition, spend) of customer block ``block``."""
    children = np.random.SeedSequence(entropy, spawn_key=(block,)).spawn(4)
    return [np.random.Generator(np.random.PCG64(c)) for c in children]


# --------------------------------------------------------------------------------------------
# model draws on arrays (one block of customers)


def latent_draws(
    params: FrequencyParams, n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-customer ``lambda`` and ``p`` (BG/NBD) or ``mu`` (Pareto/NBD)."""
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    if isinstance(params, BGNBDParams):
        return {"lambda": lam, "p": rng.beta(params.a, params.b, n)}
    return {"lambda": lam, "mu": rng.gamma(params.s, 1.0 / params.beta, n)}


def _geometric(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Geometric(p) on {1, 2, ...} as float (no int64 overflow for tiny p)."""
    u = 1.0 - rng.random(p.shape)  # (0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.floor(np.log(u) / np.log1p(-p)) + 1.0
    return np.where(np.isfinite(j) & (j >= 1.0), j, 1.0)


def _bg_window(
    lam: np.ndarray, remaining: np.ndarray, length: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD purchases in a window of ``length`` for customers with ``remaining`` purchases left.

    Returns (purchases in the window, dropout offset in the window or NaN, purchases left after).
    ``remaining == 0`` means already inactive: no purchases.
    """
    n_events = rng.poisson(lam * length).astype(float)
    died = (remaining > 0) & (remaining <= n_events)
    active = remaining > 0
    count = np.where(died, remaining, np.where(active, n_events, 0.0))
    a = np.where(died, remaining, 1.0)
    b = np.where(died, n_events - remaining + 1.0, 1.0)
    offset = np.where(died, length * rng.beta(a, b), np.nan)
    left = np.where(died | ~active, 0.0, remaining - n_events)
    return count.astype(np.int64), offset, left


def _tail_dropout(lam: np.ndarray, left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Time from now to the dropout of BG/NBD customers with ``left`` purchases to go."""
    shape = np.where(left > 0, left, 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        return rng.gamma(shape) / lam


@dataclass(frozen=True)
class Window:
    """Purchases in ``(0, T]`` per customer: ``x`` repeat purchases, all in ``(0, w]``; when
    ``last_at_w`` the last one is exactly at ``w`` (BG/NBD dropout), the others uniform."""

    x: np.ndarray
    w: np.ndarray
    last_at_w: np.ndarray
    dropout: np.ndarray
    x_holdout: np.ndarray | None


def events(
    params: FrequencyParams,
    latent: dict[str, np.ndarray],
    T: np.ndarray,
    T_holdout: np.ndarray | None,
    rng: np.random.Generator,
) -> Window:
    """Repeat purchases in ``(0, T]`` (and counts in ``(T, T + T_holdout]``) with dropout times."""
    lam = latent["lambda"]
    x_h = None
    if isinstance(params, BGNBDParams):
        remaining = _geometric(latent["p"], rng)
        x, offset, left = _bg_window(lam, remaining, T, rng)
        died = ~np.isnan(offset)
        w = np.where(died, offset, T)
        dropout = np.where(died, offset, np.inf)
        elapsed = T
        if T_holdout is not None:
            x_h, offset_h, left = _bg_window(lam, left, T_holdout, rng)
            died_h = ~np.isnan(offset_h)
            dropout = np.where(died_h, T + offset_h, dropout)
            elapsed = T + T_holdout
        tail = _tail_dropout(lam, left, rng)
        dropout = np.where(left > 0, elapsed + tail, dropout)
        return Window(x, w, died, dropout, x_h)
    with np.errstate(divide="ignore", over="ignore"):
        tau = rng.exponential(size=lam.shape) / latent["mu"]
    w = np.minimum(tau, T)
    x = rng.poisson(lam * w)
    if T_holdout is not None:
        x_h = rng.poisson(lam * np.clip(tau - T, 0.0, T_holdout))
    return Window(x, w, np.zeros(lam.shape, dtype=bool), tau, x_h)


def recency(win: Window, rng: np.random.Generator) -> np.ndarray:
    """``t_x``: the dropout time when the last purchase is at it, else the max of x uniforms."""
    u = rng.random(win.x.shape)
    with np.errstate(divide="ignore", over="ignore"):
        tmax = win.w * u ** (1.0 / np.maximum(win.x, 1))
    return np.where(win.last_at_w, win.w, np.where(win.x > 0, tmax, 0.0))


def purchase_times(win: Window, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All purchases (first at 0, then the repeat ones) as (customer index, time), sorted."""
    n = win.x.shape[0]
    free = win.x - win.last_at_w.astype(np.int64)
    cust_free = np.repeat(np.arange(n), free)
    t_free = np.repeat(win.w, free) * rng.random(cust_free.shape[0])
    fixed = np.flatnonzero(win.last_at_w)
    cust = np.concatenate([np.arange(n), cust_free, fixed])
    t = np.concatenate([np.zeros(n), t_free, win.w[fixed]])
    order = np.lexsort((t, cust))
    return cust[order], t[order]




def spend_rates(spend: GammaGammaParams, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-customer gamma-gamma spend rates ``nu ~ Gamma(q, gamma)`` (rate ``gamma``)."""
    return rng.gamma(spend.q, 1.0 / spend.gamma, n)


def customer_ids(start: int, stop: int, n_total: int) -> np.ndarray:
    """Zero-padded decimal ids, the same width for every customer of a simulation."""
    width = len(str(max(n_total - 1, 0)))
    return np.char.zfill(np.arange(start, stop).astype(str), width)
