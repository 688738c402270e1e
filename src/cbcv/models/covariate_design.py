"""Time-invariant customer covariates as a design matrix: which columns, coded how.

A :class:`CovariateDesign` is built once from the calibration customers' covariates
(:meth:`CovariateDesign.from_frame`) and then codes any frame the same way
(:meth:`CovariateDesign.matrix`), so a fit, its predictions and a later scoring run agree:

* a **categorical** column (text, or a column named in ``categorical``) becomes one indicator per
  level other than its first (the reference level, the most common one unless ``reference``
  names another; ties broken alphabetically); an effect is then "this level against the
  reference";
* a **numeric** column is standardised with the calibration customers' mean and standard
  deviation, so an effect is "per standard deviation" and one prior, Normal(0, 1) on the log
  ratio, suits every column whatever its unit.

Effects are labelled ``<column>=<level>`` for a level and ``<column>`` for a numeric column —
the names ``fit.json`` gives them inside ``purchase[...]``, ``dropout[...]`` and ``spend[...]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from cbcv.core.errors import DataError

Kind = Literal["categorical", "numeric"]


@dataclass(frozen=True)
class Covariate:
    """One covariate column: its kind and its coding (levels, or mean and sd)."""

    name: str
    kind: Kind
    #: categorical: every level, the reference first
    levels: tuple[str, ...] = ()
    #: numeric: the calibration customers' mean and standard deviation
    mean: float = 0.0
    sd: float = 1.0

    @property
    def effects(self) -> tuple[str, ...]:
        if self.kind == "numeric":
            return (self.name,)
        return tuple(f"{self.name}={level}" for level in self.levels[1:])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "levels": list(self.levels), "mean": self.mean, "sd": self.sd}


@dataclass(frozen=True)
class CovariateDesign:
    """The covariates a model uses and how each is coded (see the module docstring)."""

    covariates: tuple[Covariate, ...] = field(default_factory=tuple)

    @property
    def effects(self) -> tuple[str, ...]:
        """The effect labels, one per design-matrix column."""
        return tuple(e for c in self.covariates for e in c.effects)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.covariates)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: Sequence[str],
        *,
        categorical: Sequence[str] = (),
        reference: Mapping[str, str] | None = None,
        source: str = "covariates",
    ) -> CovariateDesign:
        """The design of ``columns`` of ``frame`` (the calibration customers' covariates)."""
        if not columns:
            raise DataError(f"{source}: no covariate columns to use")
        reference = dict(reference or {})
        out = []
        for col in columns:
            if col not in frame.columns:
                raise DataError(f"{source}: no column {col!r} (columns: {', '.join(map(str, frame.columns))})")
            values = frame[col]
            _no_missing(values, col, source)
            if col in categorical or not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                out.append(_categorical(values, col, reference.get(col), source))
            else:
                x = values.to_numpy(dtype=float)
                sd = float(np.std(x))
                if not np.isfinite(x).all():
                    row = int(np.flatnonzero(~np.isfinite(x))[0])
                    raise DataError(f"{source}: column {col!r} row {row + 1}: not a finite number")
                if sd == 0.0:
                    raise DataError(f"{source}: column {col!r} takes one value ({x[0]:g}) for every customer: "
                                    "it cannot have an effect")
                out.append(Covariate(col, "numeric", mean=float(np.mean(x)), sd=sd))
        unknown = set(reference) - {c.name for c in out if c.kind == "categorical"}
        if unknown:
            raise DataError(f"{source}: reference level given for {sorted(unknown)}, not categorical covariates in use")
        return cls(tuple(out))

    def matrix(self, frame: pd.DataFrame, source: str = "covariates") -> np.ndarray:
        """The design matrix of ``frame`` (one row per row, one column per effect), coded as at
        the fit; a missing value or a level the fit never saw is a DataError naming the row."""
        blocks = []
        for cov in self.covariates:
            if cov.name not in frame.columns:
                raise DataError(f"{source}: no column {cov.name!r}, which the model was fitted with")
            values = frame[cov.name]
            _no_missing(values, cov.name, source)
            if cov.kind == "numeric":
                blocks.append(((values.to_numpy(dtype=float) - cov.mean) / cov.sd)[:, None])
                continue
            text = values.astype(str).to_numpy()
            codes = pd.Index(list(cov.levels)).get_indexer(text)
            if (codes < 0).any():
                row = int(np.flatnonzero(codes < 0)[0])
                raise DataError(f"{source}: column {cov.name!r} row {row + 1}: level {text[row]!r} was not seen "
                                f"at the fit (levels: {', '.join(cov.levels)})")
            blocks.append((codes[:, None] == np.arange(1, len(cov.levels))[None, :]).astype(float))
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def to_dict(self) -> dict[str, Any]:
        return {"covariates": [c.to_dict() for c in self.covariates]}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> CovariateDesign:
        return cls(tuple(
            Covariate(str(c["name"]), c["kind"], tuple(map(str, c.get("levels", ()))), float(c.get("mean", 0.0)),
                      float(c.get("sd", 1.0)))
            for c in spec["covariates"]
        ))


def _no_missing(values: pd.Series, col: str, source: str) -> None:
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"{source}: column {col!r} row {row + 1}: missing value (give every customer a value, "
                        "or a level such as 'unknown')")


def _categorical(values: pd.Series, col: str, reference: str | None, source: str) -> Covariate:
    counts = values.astype(str).value_counts()
    if len(counts) < 2:
        raise DataError(f"{source}: column {col!r} has one level ({counts.index[0]!r}) for every customer: "
                        "it cannot have an effect")
    order = sorted(counts.index, key=lambda level: (-int(counts[level]), level))
    if reference is not None:
        if reference not in counts.index:
            raise DataError(f"{source}: reference level {reference!r} of column {col!r} does not occur "
                            f"(levels: {', '.join(order)})")
        order.remove(reference)
        order.insert(0, reference)
    return Covariate(col, "categorical", tuple(order))


def design_groups(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a design matrix (sorted) and each row's group among them, a flat
    int64 array: the covariate groups that fits, predictions and scoring run once each."""
    groups, group_of = np.unique(np.asarray(X, dtype=float), axis=0, return_inverse=True)
    return groups, np.asarray(group_of, dtype=np.int64).reshape(-1)
