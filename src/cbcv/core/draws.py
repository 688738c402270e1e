"""Posterior draws: their shapes, statistics and intervals.

Arrays of draws keep the draw on axis 0: ``(draws,)`` for a total, ``(draws, rows)`` for a
per-customer or per-period quantity. Intervals are equal-tailed (0.9 -> the 5% and 95%
quantiles).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

#: Value deciles of the customer-value tables.
N_DECILES = 10


def per_draw(x: Any, n_draws: int, name: str) -> np.ndarray:
    """A scalar or a ``(n_draws,)`` array as a ``(n_draws,)`` float array."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0 or arr.shape == (1,):
        return np.full(n_draws, float(arr.reshape(-1)[0]))
    if arr.shape != (n_draws,):
        raise ValueError(f"{name}: expected a scalar or {n_draws} draws, got shape {arr.shape}")
    return arr


def draw_matrix(
    x: Any,
    n_draws: int,
    n_cols: int,
    name: str,
    cols: str = "columns",
    one_d: Literal["auto", "cols"] = "auto",
) -> np.ndarray:
    """``x`` broadcast (as a view) to ``(n_draws, n_cols)``.

    Accepted: a scalar; a 2-d array broadcastable to that shape (``(n_draws, 1)``,
    ``(1, n_cols)``, ...); or a 1-d array, read as one value per column if its length is
    ``n_cols`` and as one value per draw if it is ``n_draws``. When both lengths are equal the
    1-d reading is ambiguous and raises, unless ``one_d="cols"`` (always per column).
    """
    arr = np.asarray(x, dtype=float)
    shape = (n_draws, n_cols)
    if arr.ndim == 1:
        by_col = arr.size == n_cols
        by_draw = arr.size == n_draws and one_d != "cols"
        if by_col and by_draw:
            raise ValueError(
                f"{name}: a 1-d array of length {arr.size} is ambiguous with {n_draws} draws and "
                f"{n_cols} {cols}; pass shape ({n_draws}, 1) for draws or (1, {n_cols}) for {cols}"
            )
        if by_col:
            return np.broadcast_to(arr[None, :], shape)
        if by_draw:
            return np.broadcast_to(arr[:, None], shape)
    elif arr.ndim in (0, 2):
        try:
            return np.broadcast_to(arr, shape)
        except ValueError:
            pass
    raise ValueError(
        f"{name}: expected a scalar, {n_cols} {cols}, {n_draws} draws or shape "
        f"({n_draws}, {n_cols}); got shape {arr.shape}"
    )


def interval_bounds(interval: float) -> tuple[float, float]:
    """The quantile levels of a central (equal-tailed) interval: 0.9 -> (0.05, 0.95)."""
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}")
    return (1 - interval) / 2, 1 - (1 - interval) / 2


def draw_stats(draws: Any, interval: float = 0.9, axis: int = 0) -> dict[str, Any]:
    """Median, mean and the equal-tailed ``interval`` (``low``, ``high``) of draws along ``axis``."""
    arr = np.asarray(draws, dtype=float)
    lo, hi = interval_bounds(interval)
    q = np.quantile(arr, [0.5, lo, hi], axis=axis)
    return {"median": q[0], "mean": arr.mean(axis=axis), "low": q[1], "high": q[2]}


def summarize_draws(draws: Mapping[str, Any], interval: float = 0.9) -> pd.DataFrame:
    """One row per named 1-d array of draws: ``median``, ``mean``, ``low``, ``high`` (the
    equal-tailed ``interval``, 0.9 -> the 5% and 95% quantiles). The interval is recorded in
    ``.attrs["interval"]``."""
    rows = {name: {k: float(v) for k, v in draw_stats(np.ravel(d), interval).items()} for name, d in draws.items()}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["median", "mean", "low", "high"])
    out.index.name = "quantity"
    out.attrs["interval"] = interval
    return out
