"""The draws × rows engine every prediction runs on, whatever the model.

A prediction is a function of parameter draws (arrays of shape ``(draws, 1)``, from
:func:`posterior_draws`) and distinct data rows (arrays of shape ``(1, rows)``, from
:func:`distinct_rows`); :func:`run` evaluates it in chunks of rows that keep the temporaries under
``max_bytes`` (:func:`cbcv.core.chunks.chunked`) and expands the result to one column per
customer. Which functions a model has is looked up by its class in a registry
(:func:`registered`): a family registers its kernels once, keyed by its model class, and a
subclass inherits its parent's entry unless it registers its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from cbcv.core.chunks import TEMPS, Params, chunked
from cbcv.core.errors import CbcvError
from cbcv.models import MODELS, CLVModel, compress
from cbcv.models.covariates import CovariateModel

#: Default byte budget of one chunk's temporaries.
MAX_BYTES = 256 * 2**20
#: Distinct data rows as ``(1, rows)`` arrays, keyed by column.
Rows = dict[str, np.ndarray]
#: A prediction over (draws, rows): parameter draws and a chunk of distinct rows → ``(draws, rows)``.
Kernel = Callable[[Params, Rows], np.ndarray]

F = TypeVar("F")


def posterior_draws(model: CLVModel, max_draws: int | None = None, seed: int = 0) -> Params:
    """Parameter draws, flattened over chains; thinned evenly to at most ``max_draws``. A model
    with covariates has no single set of draws: its predictions run per covariate group
    (:mod:`cbcv.predict.covariates`), and asking for its draws here is an error."""
    if isinstance(model, CovariateModel):
        raise CbcvError(f"{model.name} with covariates: predict with the customers' covariates "
                        "(cbcv.predict.covariates.covariate_groups), not from one set of draws")
    draws = model.draws()
    n = len(next(iter(draws.values())))
    if max_draws is not None and n > max_draws:
        idx = np.linspace(0, n - 1, max_draws).round().astype(int)
        draws = {k: v[idx] for k, v in draws.items()}
    return {k: np.asarray(v, dtype=float)[:, None] for k, v in draws.items()}


def distinct_rows(data: pd.DataFrame, cols: tuple[str, ...]) -> tuple[Rows, np.ndarray]:
    """The distinct rows of ``data[cols]`` as ``(1, n_distinct)`` arrays, and each row's index
    among them (predictions are computed once per distinct summary, then expanded)."""
    missing = [c for c in cols if c not in data]
    if missing:
        raise CbcvError(f"predictions need columns {missing} (from customer_summary)")
    distinct, inverse = compress(data.reset_index(drop=True), cols)
    return {c: distinct[c].to_numpy(dtype=float)[None, :] for c in cols}, inverse


def run(
    fn: Kernel,
    model: CLVModel,
    rows: Rows,
    inverse: np.ndarray,
    *,
    max_draws: int | None,
    max_bytes: int,
    temps: int = TEMPS,
    params: Params | None = None,
) -> np.ndarray:
    """``fn`` over ``model``'s posterior draws (or ``params``, when given) and the distinct
    ``rows``, in chunks of at most ``max_bytes`` of temporaries, as ``(draws, customers)``."""
    draws = posterior_draws(model, max_draws) if params is None else params
    return chunked(fn, draws, rows, inverse, max_bytes, temps)


def model_class(model: Any) -> type | None:
    """The model class of ``model``: a class as given, a model's class, or, for a name or a
    stand-in with a ``name`` (a set of draws standing for a fitted model), the class registered
    under that name in :data:`cbcv.models.MODELS` (None for an unknown name)."""
    if isinstance(model, type):
        return model
    if isinstance(model, CLVModel):
        return type(model)
    name = model if isinstance(model, str) else getattr(model, "name", None)
    return MODELS.get(name) if isinstance(name, str) else None


def registered(registry: Mapping[type, F], model: Any, what: str) -> F:
    """The entry of ``registry`` for ``model``'s class or the nearest base class that has one
    (method resolution order); CbcvError naming ``what`` when there is none."""
    cls = model_class(model)
    for base in cls.__mro__ if cls is not None else ():
        if base in registry:
            return registry[base]
    name = model if isinstance(model, str) else getattr(model, "name", type(model).__name__)
    raise CbcvError(f"model {name!r} does not predict {what}")


def summarise(draws: np.ndarray, interval: float = 0.9) -> pd.DataFrame:
    """Per customer: posterior mean and equal-tailed interval of a (draws, customers) array."""
    lo, hi = np.quantile(draws, [(1 - interval) / 2, (1 + interval) / 2], axis=0)
    return pd.DataFrame({"mean": draws.mean(axis=0), "low": lo, "high": hi})
