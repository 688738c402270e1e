"""Predictions of a model with customer covariates: each customer at its own parameters.

A :class:`~cbcv.models.covariates.CovariateModel` scales the family's parameters by each
customer's covariates. :func:`covariate_groups` wraps a prediction of the family (a function of
``model`` and the customers' ``data``) so that, given a covariate model, it runs once per distinct
covariate row with that group's posterior draws (:meth:`CovariateModel.group`) on that group's
customers, and puts the columns back in the customers' order. Every draw index is the same draw
of the joint posterior in every group, so sums over customers keep their uncertainty. A plain
model passes straight through.

The cost is one pass of the family's kernels per distinct covariate row: a handful for
categorical covariates (a survey's promoter/passive/detractor, a region), as many as there are
distinct values for a numeric one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from cbcv.core.errors import CbcvError
from cbcv.models.covariate_design import design_groups
from cbcv.models.covariates import CovariateModel

F = TypeVar("F", bound=Callable[..., np.ndarray])


def covariate_parts(model: Any, data: pd.DataFrame) -> list[tuple[np.ndarray, Any]]:
    """The covariate groups of ``data`` under ``model``: each group's row positions and its
    stand-in model (:meth:`CovariateModel.group`, the family at that group's parameter draws);
    one part with every row and ``model`` itself for a model without covariates. For
    predictions that are not one column per customer (sums over customers, population
    curves, shocked posteriors), run part by part."""
    if not isinstance(model, CovariateModel):
        return [(np.arange(len(data)), model)]
    X = model.design.matrix(data.reset_index(drop=True), "predictions")
    groups, group_of = design_groups(X)
    return [(np.flatnonzero(group_of == g), model.group(z)) for g, z in enumerate(groups)]


def covariate_groups(fn: F) -> F:
    """``fn(model, ..., data, ...)`` → ``(draws, customers)``, made to accept a covariate model
    (see the module docstring). ``fn`` names its arguments ``model`` and ``data``."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> np.ndarray:
        bound = signature.bind(*args, **kwargs)
        model = bound.arguments["model"]
        if not isinstance(model, CovariateModel):
            return fn(*args, **kwargs)
        data = bound.arguments["data"]
        out: np.ndarray | None = None
        for rows, stand_in in covariate_parts(model, data):
            bound.arguments["model"] = stand_in
            bound.arguments["data"] = data.iloc[rows]
            part = fn(*bound.args, **bound.kwargs)
            if out is None:
                out = np.empty((part.shape[0], len(data)))
            out[:, rows] = part
        if out is None:
            raise CbcvError(f"{model.name}: no customers to predict")
        return out

    return wrapper  # type: ignore[return-value]
