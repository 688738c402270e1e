"""Simulated continuous-time summaries ``x, t_x, T`` (optionally a holdout count) with the truth.

:func:`simulate_summaries` draws each customer exactly from the model's generative story (see
:mod:`cbcv.data.simulate`); no calendar, so no same-day merging.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError
from cbcv.data.simulate import draws
from cbcv.data.simulate.params import (
    FrequencyParams,
    GammaGammaParams,
    check_params,
    positive_int,
)


def _as_times(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ConfigError(f"{name} must be a number or an array of {n} values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must be finite and non-negative")
    return arr


def simulate_summaries(
    params: FrequencyParams,
    n_customers: int,
    T: float | np.ndarray,
    *,
    seed: int | None = None,
    T_holdout: float | np.ndarray | None = None,
    spend: GammaGammaParams | None = None,
) -> pd.DataFrame:
    """Exact continuous-time summaries ``x, t_x, T`` of a simulated customer base, with the truth.

    Parameters
    ----------
    params
        :class:`BGNBDParams` or :class:`ParetoNBDParams`.
    n_customers
        Number of customers.
    T
        Each customer's observation length from the first purchase (time units): a number or an
        array of ``n_customers`` values.
    seed
        Root seed; the same seed gives the same customers (see the module notes on blocks).
    T_holdout
        When given (number or array), adds ``x_holdout`` (repeat purchases in
        ``(T, T + T_holdout]``) and ``T_holdout``.
    spend
        When given, adds ``nu`` and ``mean_repeat_spend`` (mean of the ``x`` repeat purchase values
        drawn from the gamma-gamma model, ``Gamma(p x, nu x)`` exactly; NaN when ``x == 0``).

    Returns
    -------
    DataFrame with ``customer_id`` (str), ``x`` (int), ``t_x``, ``T``, [``x_holdout``,
    ``T_holdout``], ``lambda``, ``p`` or ``mu``, ``dropout`` (time of dropout from the first
    purchase; for the BG/NBD the time of the last purchase), ``alive`` (at ``T``), [``nu``,
    ``mean_repeat_spend``].
    """
    check_params(params, spend)
    n = positive_int(n_customers, "n_customers")
    T_arr = _as_times(T, n, "T")
    Th_arr = None if T_holdout is None else _as_times(T_holdout, n, "T_holdout")
    entropy = draws.entropy_of(seed)
    parts = []
    for block, lo in enumerate(range(0, n, draws.RNG_BLOCK)):
        hi = min(lo + draws.RNG_BLOCK, n)
        parts.append(
            _summary_block(
                params, spend, draws.block_streams(entropy, block), T_arr[lo:hi],
                None if Th_arr is None else Th_arr[lo:hi],
            )
        )
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = pd.DataFrame({"customer_id": pd.Series(draws.customer_ids(0, n, n)).astype(str), **cols})
    return out


def _summary_block(
    params: FrequencyParams,
    spend: GammaGammaParams | None,
    streams: list[np.random.Generator],
    T: np.ndarray,
    T_holdout: np.ndarray | None,
) -> dict[str, np.ndarray]:
    n = T.shape[0]
    latent = draws.latent_draws(params, n, streams[draws.LATENT])
    win = draws.events(params, latent, T, T_holdout, streams[draws.EVENTS])
    out: dict[str, np.ndarray] = {"x": win.x, "t_x": draws.recency(win, streams[draws.EVENTS]), "T": T}
    if win.x_holdout is not None and T_holdout is not None:
        out["x_holdout"] = win.x_holdout
        out["T_holdout"] = T_holdout
    out.update(latent)
    out["dropout"] = win.dropout
    out["alive"] = win.dropout > T
    if spend is not None:
        rng = streams[draws.SPEND]
        nu = draws.spend_rates(spend, n, rng)
        xs = np.maximum(win.x, 1)
        zbar = rng.gamma(spend.p * xs, 1.0 / (nu * xs))
        out["nu"] = nu
        out["mean_repeat_spend"] = np.where(win.x > 0, zbar, np.nan)
    return out


