"""Default priors of the cbcv model families, stated on the log scale, and their description.

Every parameter of these models is positive and its size is read in orders of magnitude: a
gamma shape ``r`` of 0.2 or 2 says "very" or "mildly" heterogeneous purchase rates, a rate
``alpha`` in weeks is 7 times the same rate in days. The default priors are therefore normal on
``log θ`` (:class:`LogScalePrior`): weakly informative on that scale and proper, so a posterior
cannot drift to infinity along a ridge of the likelihood.

The parameter a PyMC model samples *is* ``log θ`` (θ is a deterministic ``exp``), so

* a MAP fit (``SamplerSettings(method="map")``, the mode of the density of the model's free
  variables) finds the mode in ``log θ``, where the prior is nearly flat: MAP lands within a
  fraction of a percent of the maximum-likelihood estimate on the published data sets
  (tests/test_models_*.py, ``*_default_priors_*``);
* the posterior, as a density of θ itself, carries the ``1/θ`` of the change of variables: along
  a likelihood ridge where a shape and its rate grow together (Pareto/NBD's ``s`` and ``beta``,
  the data no longer telling heterogeneous dropout from homogeneous) the far end gets a
  weight ``1/(s·beta)`` relative to a prior flat in θ, which keeps the posterior near the
  maximum-likelihood estimate instead of half-way up the ridge.

Written once here, used by every family's ``default_priors``; :func:`priors_table` states a
model's priors for the report's model page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from cbcv.core.errors import CbcvError
from cbcv.models.base import CLVModel, Prior

#: Prior sd of log θ for shape parameters (gamma and beta shapes, BdW's c excepted): one sd is a
#: factor e³ ≈ 20, so 95% of the mass lies between 0.0028 and 360 times the median.
SHAPE_SIGMA = 3.0
#: Prior sd of log θ for parameters in the data's units (rates in the time unit, the
#: gamma-gamma scale in the currency unit), whose size depends on the unit chosen.
SCALE_SIGMA = 5.0
#: Prior sd of log θ for the gamma shapes of Pareto/NBD (``r``, ``s``): the coefficient of
#: variation of the purchase and dropout rates across customers is ``1/√shape``, so 95% of the
#: prior mass puts it between 0.23 and 4.4. Tighter than :data:`SHAPE_SIGMA` because the
#: likelihood leaves ``s`` (with ``beta``) free up a ridge to the homogeneous limit s → ∞, where
#: the CDNOW profile log-likelihood is only 5.3 below its maximum: with sd 3 on log s and 10 on
#: log beta, NUTS chains wander there (s in the hundreds).
HETEROGENEITY_SIGMA = 1.5
#: Prior sd of log θ for BG/NBD's beta shapes ``a``, ``b``: their ridge (a, b growing together)
#: is where a tighter prior would move MAP by more than 0.5%.
DROPOUT_SHAPE_SIGMA = 4.0


@dataclass(frozen=True)
class LogScalePrior(Prior):
    """A prior on ``log θ``: ``log θ ~ dist(**kwargs)`` (default ``Normal``), θ = exp(log θ).

    The PyMC model's free variable is ``log_<name>`` and θ its deterministic ``exp``, so MAP is the
    mode in log θ. ``LogScalePrior("Normal", {"mu": 0, "sigma": 3})`` is the same distribution
    of θ as ``Prior("LogNormal", {"mu": 0, "sigma": 3})``; only the scale of the mode differs.
    """

    dist: str = "Normal"

    def create(self, name: str) -> pt.TensorVariable:
        log_value = Prior(self.dist, self.kwargs).create(f"log_{name}")
        return pm.Deterministic(name, pt.exp(log_value))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "scale": "log"}


def log_normal(mu: float = 0.0, sigma: float = SHAPE_SIGMA) -> LogScalePrior:
    """``log θ ~ Normal(mu, sigma)``."""
    return LogScalePrior("Normal", {"mu": float(mu), "sigma": float(sigma)})


def log_normal_priors(
    shapes: tuple[str, ...], scales: tuple[str, ...] = (), shape_sigma: float = SHAPE_SIGMA
) -> Mapping[str, Prior]:
    """Default priors of a family: ``log θ ~ Normal(0, shape_sigma)`` for each shape and
    ``Normal(0, SCALE_SIGMA)`` for each parameter in the data's units."""
    priors: dict[str, Prior] = {k: log_normal(0.0, shape_sigma) for k in shapes}
    priors.update({k: log_normal(0.0, SCALE_SIGMA) for k in scales})
    return MappingProxyType(priors)


def prior_from_dict(spec: Mapping[str, Any]) -> Prior:
    """The inverse of ``Prior.to_dict`` / ``LogScalePrior.to_dict`` (e.g. a fit's recorded priors)."""
    cls = LogScalePrior if spec.get("scale") == "log" else Prior
    return cls(str(spec["dist"]), dict(spec.get("kwargs", {})))


def prior_logp(prior: Prior, value: pt.TensorVariable) -> pt.TensorVariable:
    """The prior's log density of θ at ``value`` (θ's own scale: a log-scale prior includes the
    ``−log θ`` of the change of variables)."""
    try:
        factory = getattr(pm, prior.dist)
    except AttributeError as exc:
        raise CbcvError(f"prior: PyMC has no distribution {prior.dist!r}") from exc
    dist = factory.dist(**dict(prior.kwargs))
    if isinstance(prior, LogScalePrior):
        log_value = pt.log(value)
        return pm.logp(dist, log_value) - log_value
    return pm.logp(dist, value)


def describe_prior(name: str, prior: Prior) -> str:
    """A prior as one line of text, e.g. ``log s ~ Normal(mu=0, sigma=3)``."""
    args = ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
                     for k, v in prior.kwargs.items())
    target = f"log {name}" if isinstance(prior, LogScalePrior) else name
    return f"{target} ~ {prior.dist}({args})"


def _central_interval(prior: Prior) -> tuple[float, float]:
    """The 95% central prior interval of θ where it has a closed form (normal on log θ,
    log-normal), else NaN."""
    kw = prior.kwargs
    lognormal = (isinstance(prior, LogScalePrior) and prior.dist == "Normal") or (
        not isinstance(prior, LogScalePrior) and prior.dist == "LogNormal"
    )
    if not lognormal:
        return (math.nan, math.nan)
    mu, sigma = float(kw.get("mu", 0.0)), float(kw.get("sigma", 1.0))
    return (float(np.exp(mu - 1.959964 * sigma)), float(np.exp(mu + 1.959964 * sigma)))


def fitted_priors(model: CLVModel) -> dict[str, Prior]:
    """The priors a fitted model was fitted with (recorded in its posterior's attrs, so also
    for a fit loaded from disk), else the model's own."""
    recorded = model.idata.attrs.get("priors") if model.idata is not None else None
    if not recorded:
        return dict(model.priors)
    return {k: prior_from_dict(v) for k, v in json.loads(recorded).items()}


def priors_table(model: CLVModel) -> pd.DataFrame:
    """The model's priors (those of its fit, when fitted), one row per parameter:
    ``parameter``, ``prior`` (as text), ``median`` and the 95% central interval ``low``/``high``
    of θ (NaN where no closed form); a covariate coefficient's row gives its own interval. For
    the model page of the report."""
    priors = fitted_priors(model)
    rows = []
    for name in model.prior_params:
        prior = priors[name]
        low, high = _central_interval(prior)
        median = math.sqrt(low * high) if np.isfinite(low) else math.nan
        rows.append({"parameter": name, "prior": describe_prior(name, prior), "median": median,
                     "low": low, "high": high})
    rows += model.effect_prior_rows()
    return pd.DataFrame(rows, columns=["parameter", "prior", "median", "low", "high"])
