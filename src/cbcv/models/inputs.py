"""The models' shared input checks: required columns, finite numbers, whole numbers, the
optional ``count`` column, and the compression of rows into distinct rows with summed counts.
Each failed check raises one :class:`~cbcv.core.errors.DataError` line naming the model, the
column and the first offending row. Used by every family (BG/NBD, Pareto/NBD, gamma-gamma,
BG/BB, sBG, BdW)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cbcv.core.errors import DataError
from cbcv.models.base import compress


def require_columns(data: pd.DataFrame, columns: Sequence[str], model: str, hint: str = "") -> None:
    """Raise a DataError naming the first of ``columns`` that ``data`` lacks (``hint``: what to
    add to the message, e.g. where such data come from)."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{model}: data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise DataError(
            f"{model}: column {missing[0]!r} is missing; the data need columns {list(columns)}{hint}"
        )


def first_bad_row(data: pd.DataFrame, bad: np.ndarray) -> Any:
    """The label of the first row of ``data`` where ``bad`` holds (for the error line)."""
    return data.index[int(np.flatnonzero(bad)[0])]


def numeric_column(data: pd.DataFrame, column: str, model: str) -> np.ndarray:
    """``data[column]`` as float64; a DataError names the first row that is not a number."""
    values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    raw_missing = data[column].isna().to_numpy()
    bad = np.isnan(values) & ~raw_missing
    if bad.any():
        row = first_bad_row(data, bad)
        raise DataError(
            f"{model}: column {column!r} row {row}: not a number ({data[column][row]!r})"
        )
    return values


def whole_numbers(data: pd.DataFrame, column: str, model: str, minimum: int = 0) -> np.ndarray:
    """``data[column]`` as float64 whole numbers ``>= minimum``; a DataError names the first
    offending row otherwise."""
    values = numeric_column(data, column, model)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < minimum)
    if bad.any():
        row = first_bad_row(data, bad)
        raise DataError(
            f"{model}: column {column!r} row {row}: expected a whole number >= {minimum}, "
            f"got {data[column][row]!r}"
        )
    return values


def optional_counts(data: pd.DataFrame, model: str, column: str = "count") -> np.ndarray | None:
    """The optional ``count`` column (customers per row) as whole numbers, or None."""
    if column not in data.columns:
        return None
    return whole_numbers(data, column, model, minimum=0)


def compress_counts(
    data: pd.DataFrame, columns: Sequence[str], counts: np.ndarray | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`cbcv.models.base.compress` for rows that may each stand for ``counts`` customers.

    Returns the distinct rows of ``columns`` with a ``weight`` (customers per distinct row) and,
    for each *customer* in input order (row ``i`` repeated ``counts[i]`` times), the position of
    its distinct row. Without ``counts`` this is exactly :func:`compress`.
    """
    distinct, codes = compress(data, columns)
    if counts is None:
        return distinct, codes
    counts = np.asarray(counts, dtype=float)
    distinct["weight"] = np.bincount(codes, weights=counts, minlength=len(distinct))
    return distinct, np.repeat(codes, counts.astype(np.int64))


#: Above this, log Γ(L) - log Γ(s + L) is taken from Stirling's series instead of the difference
#: of two large log-gamma values (which loses ~ eps * L log L in absolute terms).
