"""Bounded-memory work over (draws × rows): the rows are cut into chunks so that the
temporaries of one chunk stay under a byte budget, whatever the number of customers.

Used by the predictions (:mod:`cbcv.predict`) and the CLV scoring (:mod:`cbcv.clv`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Params = dict[str, np.ndarray]

#: Temporaries held per (draw, row) element while evaluating one prediction.
TEMPS = 24


def chunk_rows(n_draws: int, max_bytes: int, temps: int = TEMPS) -> int:
    """Rows per chunk: ``temps`` float64 values per draw and row within ``max_bytes``."""
    return max(1, int(max_bytes // (8 * temps * max(n_draws, 1))))


def chunked(
    fn: Callable[[Params, dict[str, np.ndarray]], np.ndarray],
    params: Params,
    rows: dict[str, np.ndarray],
    inverse: np.ndarray,
    max_bytes: int,
    temps: int = TEMPS,
) -> np.ndarray:
    """``fn(params, rows_chunk)`` over the distinct ``rows`` (arrays of shape ``(1, n_rows)``)
    in chunks of at most ``max_bytes`` of temporaries (``temps`` float64 values per draw and
    row), returned as ``(draws, customers)`` by expanding each distinct row with ``inverse``."""
    n_draws = next(iter(params.values())).shape[0]
    n_rows = next(iter(rows.values())).shape[1]
    step = chunk_rows(n_draws, max_bytes, temps)
    out = np.empty((n_draws, n_rows))
    for i in range(0, n_rows, step):
        out[:, i : i + step] = fn(params, {k: v[:, i : i + step] for k, v in rows.items()})
    return out[:, inverse]
