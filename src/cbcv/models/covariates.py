"""Customer covariates in the purchase, dropout and spend processes of the customer-level models.

A time-invariant covariate vector ``z`` (coded by :class:`~cbcv.models.covariate_design.CovariateDesign`:
indicators against a reference level, numeric columns standardised) scales one parameter of each
process, customer by customer, as in Fader & Hardie's (2007) "Incorporating Time-Invariant
Covariates into the Pareto/NBD and BG/NBD Models" note and CLVTools' static covariates:

=============  ==============================  ==============================  ======================
family         purchase                        dropout                         spend
=============  ==============================  ==============================  ======================
bgnbd, mbgnbd  α_i = α·exp(−z·β_purchase)      a_i = a·exp(z·β_dropout)
pareto_nbd     α_i = α·exp(−z·β_purchase)      β_i = β·exp(−z·β_dropout)
bgbb           α_i = α·exp(z·β_purchase)       γ_i = γ·exp(z·β_dropout)
gamma_gamma                                                                    γ_i = γ·exp(z·β_spend)
=============  ==============================  ==============================  ======================

Each coefficient has a Normal(0, 1) prior (``effect_sigma``): on standardised covariates a
log ratio within ±2 (a factor of 7) either way. What ``fit.json`` reports as an effect is the log
of the ratio of the *mean* of the process for a customer with the level (or one standard
deviation more of the numeric covariate) to a customer at the reference:

* purchase: the mean purchase rate r/α_i (Pareto/NBD, BG/NBD) or the mean purchase probability
  α_i/(α_i+β) (BG/BB);
* dropout: the mean dropout probability a_i/(a_i+b) (BG/NBD, MBG/NBD) or γ_i/(γ_i+δ) (BG/BB),
  or the mean dropout rate s/β_i (Pareto/NBD);
* spend: the mean spend per transaction p·γ_i/(q−1) (gamma-gamma).

For a gamma rate or scale the reported effect is the coefficient itself; for a beta mean it is
``c + log(a+b) − log(a·e^c + b)``, a deterministic of the posterior (:func:`beta_mean_effect`).

The likelihood stays compressed: customers with equal summaries *and* equal covariates share
one term (:meth:`CovariateModel.prepare`). Predictions use each customer's parameters: the
posterior draws of a covariate group (:meth:`CovariateModel.group_draws`) run through the
family's own kernels (:mod:`cbcv.predict.covariates`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from cbcv.core.errors import CbcvError, DataError
from cbcv.core.jsonio import dumps_strict
from cbcv.models.base import LOGLIKE_CHUNK_ELEMENTS, CLVModel, Prior, SamplerSettings
from cbcv.models.covariate_design import CovariateDesign, design_groups

#: Distinct covariate rows up to which the likelihood runs the family's compiled kernel per group.
MAX_GROUPS = 64
#: Standard deviation of the Normal prior of every covariate coefficient (standardised covariates).
EFFECT_SIGMA = 1.0


@dataclass(frozen=True)
class Link:
    """How a process's covariates enter a family: ``param_i = param · exp(sign · z·coef)``;
    ``partner`` names the other shape of a beta distribution whose mean param/(param+partner)
    the effect is reported on (None: a gamma rate or scale, whose mean the coefficient scales)."""

    process: str
    param: str
    sign: float
    partner: str | None = None
    mean: str = ""  # the mean whose log ratio the effect is, as fit.json describes it

    @property
    def description(self) -> str:
        """What an effect of this process measures, for ``fit.json``."""
        return (f"log of the ratio of the {self.mean} against the reference level (per standard deviation of a "
                "numeric covariate)")


_RATE, _DROP_P = "mean purchase rate", "mean dropout probability"
LINKS: Mapping[str, tuple[Link, ...]] = MappingProxyType({
    "bgnbd": (Link("purchase", "alpha", -1.0, mean=_RATE), Link("dropout", "a", 1.0, "b", _DROP_P)),
    "mbgnbd": (Link("purchase", "alpha", -1.0, mean=_RATE), Link("dropout", "a", 1.0, "b", _DROP_P)),
    "pareto_nbd": (Link("purchase", "alpha", -1.0, mean=_RATE), Link("dropout", "beta", -1.0, mean="mean dropout rate")),
    "bgbb": (Link("purchase", "alpha", 1.0, "beta", "mean purchase probability"),
             Link("dropout", "gamma", 1.0, "delta", _DROP_P)),
    "gamma_gamma": (Link("spend", "gamma", 1.0, mean="mean spend per transaction"),),
})


def beta_mean_effect(shape: Any, partner: Any, coef: Any, exp: Any = np.exp, log: Any = np.log) -> Any:
    """log[mean_i / mean_0] for a beta mean shape/(shape+partner) whose ``shape`` is scaled by
    e^coef: coef + log(shape+partner) − log(shape·e^coef + partner)."""
    return coef + log(shape + partner) - log(shape * exp(coef) + partner)


class CovariateModel(CLVModel):
    """A customer-level family (``family``: a BG/NBD, MBG/NBD, Pareto/NBD, BG/BB or gamma-gamma
    model, with its priors) with time-invariant covariates coded by ``design``; see the module
    docstring for the links, the priors and what the effects mean.

    Fit on the family's data frame with the covariate columns beside the summary columns. The
    posterior holds the family's parameters at the reference (z = 0), the raw coefficients
    ``<process>_coef`` and the reported effects ``<process>`` (dims ``effect``), which
    ``fit.json`` lists as ``purchase[<column>=<level>]`` and so on.
    """

    #: set per instance from the family (its name, its parameters, the effects)
    name: ClassVar[str] = "covariates"
    param_names: ClassVar[tuple[str, ...]] = ()
    default_priors: ClassVar[Mapping[str, Prior]] = MappingProxyType({})

    def __init__(self, family: CLVModel, design: CovariateDesign, effect_sigma: float = EFFECT_SIGMA) -> None:
        if family.name not in LINKS:
            raise CbcvError(f"model {family.name!r} takes no covariates; those that do: {', '.join(LINKS)}")
        if not design.effects:
            raise CbcvError(f"{family.name}: a covariate design without effects")
        if not effect_sigma > 0:
            raise CbcvError(f"effect_sigma must be positive, got {effect_sigma!r}")
        super().__init__()
        self.family = family
        self.design = design
        self.links = LINKS[family.name]
        self.effect_sigma = float(effect_sigma)
        self.name = family.name  # type: ignore[misc]  # an instance's family name, not a class constant
        processes = tuple(link.process for link in self.links)
        self.processes = processes
        self.param_names = (*family.param_names, *processes, *(f"{p}_coef" for p in processes))  # type: ignore[misc]
        self.priors = dict(family.priors)

    # -- data ----------------------------------------------------------------------------------------
    def prepare(self, data: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The family's validated, compressed arrays, compressed again jointly with each row's
        covariates: one row per distinct (summary, covariates) pair with its ``weight``, the
        design matrix as ``X`` (rows × effects). The inverse maps each fitted input row to its
        distinct row."""
        if "count" in data.columns:
            raise DataError(f"{self.name}: a counted summary (a 'count' column) carries no covariates; fit the "
                            "customer summary itself")
        data = data.reset_index(drop=True)
        arrays, inverse = self.family.prepare(data)
        fitted = self.family.fitted_rows(data)
        X = self.design.matrix(data.loc[fitted])
        groups, group_of = design_groups(X)
        key = np.asarray(inverse, dtype=np.int64) * len(groups) + group_of
        distinct, joint_inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        rows, row_group = distinct // len(groups), distinct % len(groups)
        out = {k: np.asarray(v)[rows] for k, v in arrays.items() if k != "weight"}
        out["weight"] = counts.astype(float)
        out["X"] = groups[row_group].astype(float)
        return out, np.asarray(joint_inverse, dtype=np.int64).reshape(-1)

    def fitted_rows(self, data: pd.DataFrame) -> np.ndarray:
        return self.family.fitted_rows(data)

    # -- likelihood ------------------------------------------------------------------------------------
    def row_params(self, params: Mapping[str, Any], coefs: Mapping[str, Any], X: Any) -> dict[str, Any]:
        """The family's parameters per row of ``X``: each linked one scaled by exp(sign·X·coef).
        ``params`` and ``coefs`` may carry a leading draws axis (``(draws, 1)`` and
        ``(draws, effects)``), giving ``(draws, rows)``."""
        out = dict(params)
        for link in self.links:
            coef = coefs[link.process]
            lin = pt.dot(coef, X.T) if isinstance(coef, pt.TensorVariable) else coef @ np.asarray(X).T
            exp = pt.exp if isinstance(lin, pt.TensorVariable) else np.exp
            out[link.param] = params[link.param] * exp(link.sign * lin)
        return out

    def logp(self, params: Mapping[str, Any], arrays: Mapping[str, Any]) -> pt.TensorVariable:
        """Pointwise log-likelihood: the family's (its paper's likelihood, see
        :meth:`CLVModel.logp` of each family, e.g. Fader, Hardie & Lee 2005, eq. 6) at each
        row's own parameters; pinned by
        tests/test_covariates.py::test_likelihood_is_the_familys_at_each_groups_parameters."""
        coefs = {p: params[f"{p}_coef"] for p in self.processes}
        base = {n: params[n] for n in self.family.param_names}
        return self.family.logp(self.row_params(base, coefs, arrays["X"]), arrays)

    def total_logp(self, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> pt.TensorVariable:
        """Σ weight × :meth:`logp`. With at most :data:`MAX_GROUPS` distinct covariate rows (the
        categorical covariates of a survey or a region), the sum over each group's rows is the
        family's own :meth:`CLVModel.total_logp` (its compiled kernel) at the group's scalar
        parameters; otherwise the pointwise graph. Equal to the pointwise sum to rounding
        (tests/test_covariates.py::test_grouped_total_equals_the_pointwise_sum)."""
        groups, group_of = design_groups(arrays["X"])
        if len(groups) > MAX_GROUPS:
            data = {k: pt.as_tensor_variable(np.asarray(v)) for k, v in arrays.items()}
            return pt.sum(data["weight"] * self.logp(params, data))
        base = {n: params[n] for n in self.family.param_names}
        coefs = {p: params[f"{p}_coef"] for p in self.processes}
        total = pt.as_tensor_variable(np.float64(0.0))
        for g, z in enumerate(groups):
            rows = group_of == g
            scaled = self.row_params(base, coefs, pt.as_tensor_variable(z[None, :]))
            scalar = {k: v[0] if v.ndim else v for k, v in ((k, pt.as_tensor_variable(v)) for k, v in scaled.items())}
            part = {k: np.asarray(v)[rows] for k, v in arrays.items() if k != "X"}
            total = total + self.family.total_logp(scalar, part)
        return total

    def build_model(self, arrays: Mapping[str, np.ndarray]) -> pm.Model:
        with pm.Model(coords={"effect": list(self.design.effects)}) as model:
            params: dict[str, Any] = {n: self.priors[n].create(n) for n in self.family.param_names}
            for link in self.links:
                params[f"{link.process}_coef"] = pm.Normal(f"{link.process}_coef", 0.0, self.effect_sigma,
                                                           dims="effect")
            pm.Potential("loglike", self.total_logp(params, arrays))
            for link in self.links:
                coef = params[f"{link.process}_coef"]
                effect = coef if link.partner is None else beta_mean_effect(
                    params[link.param], params[link.partner], coef, pt.exp, pt.log)
                pm.Deterministic(link.process, effect, dims="effect")
        return model

    def fit(self, data: pd.DataFrame, settings: SamplerSettings | None = None) -> az.InferenceData:
        """Fit as :meth:`CLVModel.fit`; the design goes into ``attrs['covariates']``."""
        idata = super().fit(data, settings)
        idata.attrs["covariates"] = dumps_strict(self.design.to_dict(), indent=None)
        idata.attrs["effect_sigma"] = self.effect_sigma
        # customers fitted (gamma-gamma leaves out those without repeat purchases) and rows given
        idata.attrs["n_customers"] = int(len(self.inverse)) if self.inverse is not None else 0
        idata.attrs["n_rows"] = int(len(data))
        for reason, count in self.family.dropped_rows(data).items():
            idata.attrs[f"n_dropped_{reason}"] = count
        return idata

    @property
    def checked_params(self) -> tuple[str, ...]:
        """The family's parameters: the coefficients may be 0 and are not on a log scale."""
        return tuple(self.family.param_names)

    @property
    def prior_params(self) -> tuple[str, ...]:
        return tuple(self.family.param_names)

    def effect_prior_rows(self) -> list[dict[str, Any]]:
        """Each coefficient's Normal(0, ``effect_sigma``) prior and its 95% interval (of the
        coefficient, a log ratio per standardised unit or against the reference level)."""
        half = 1.959964 * self.effect_sigma
        return [{"parameter": f"{p}_coef[{e}]", "prior": f"{p}_coef[{e}] ~ Normal(mu=0, sigma={self.effect_sigma:g})",
                 "median": 0.0, "low": -half, "high": half} for p in self.processes for e in self.design.effects]

    # -- posterior ----------------------------------------------------------------------------------------
    def summary(self, idata: az.InferenceData | None = None, hdi_prob: float = 0.94) -> pd.DataFrame:
        """The family's parameters and the reported effects, ``purchase[<effect>]`` and so on."""
        from cbcv.models.base import posterior_summary

        return posterior_summary(idata or self._require_fit(), (*self.family.param_names, *self.processes), hdi_prob)

    def draws(self, idata: az.InferenceData | None = None) -> dict[str, np.ndarray]:
        """The family's parameters at the reference and each reported effect, by its
        ``fit.json`` name, flattened over chains."""
        post = (idata or self._require_fit()).posterior
        out = {n: post[n].values.reshape(-1) for n in self.family.param_names}
        for process in self.processes:
            values = post[process].values.reshape(-1, len(self.design.effects))
            out.update({f"{process}[{e}]": values[:, j] for j, e in enumerate(self.design.effects)})
        return out

    def coef_draws(self, idata: az.InferenceData | None = None) -> dict[str, np.ndarray]:
        """The raw coefficients per process, ``(draws, effects)``."""
        post = (idata or self._require_fit()).posterior
        return {p: post[f"{p}_coef"].values.reshape(-1, len(self.design.effects)) for p in self.processes}

    def group_draws(self, z: np.ndarray, idata: az.InferenceData | None = None) -> dict[str, np.ndarray]:
        """The family's parameter draws for a customer with design row ``z`` (one per effect)."""
        post = (idata or self._require_fit()).posterior
        base = {n: post[n].values.reshape(-1, 1) for n in self.family.param_names}
        z = np.asarray(z, dtype=float).reshape(1, -1)
        return {k: np.asarray(v).reshape(-1) for k, v in self.row_params(base, self.coef_draws(idata), z).items()}

    def group(self, z: np.ndarray) -> GroupPosterior:
        """The family's posterior for a customer with design row ``z``, as a stand-in model."""
        return GroupPosterior(self.family.name, self.group_draws(z))

    def log_likelihood(self, idata: az.InferenceData | None = None, expand: bool = True) -> xr.DataArray:
        """Pointwise log-likelihood over the posterior, (chain, draw, customer) when ``expand``."""
        idata = idata or self._require_fit()
        if self.arrays is None or self.inverse is None:
            raise CbcvError(f"{self.name}: fit the model first")
        base_sym = {n: pt.vector(n) for n in self.family.param_names}
        coef_sym = {p: pt.matrix(f"{p}_coef") for p in self.processes}
        a = {k: pt.as_tensor_variable(np.asarray(v)) for k, v in self.arrays.items() if k != "X"}
        X = pt.as_tensor_variable(np.asarray(self.arrays["X"]))
        row = self.row_params({n: v[:, None] for n, v in base_sym.items()}, coef_sym, X)
        graph = self.family.logp(row, {k: v[None, :] for k, v in a.items()})
        fn = pytensor.function([*base_sym.values(), *coef_sym.values()], graph)
        post = idata.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        flat = [post[n].values.reshape(-1) for n in self.family.param_names]
        coefs = self.coef_draws(idata)
        flat += [coefs[p] for p in self.processes]
        step = max(1, LOGLIKE_CHUNK_ELEMENTS // len(self.arrays["weight"]))
        values = np.concatenate([fn(*[v[i : i + step] for v in flat]) for i in range(0, len(flat[0]), step)], axis=0)
        if expand:
            values = values[:, self.inverse]
        return xr.DataArray(values.reshape(n_chain, n_draw, -1), dims=("chain", "draw", "customer" if expand else "row"))


def restore(family: CLVModel, idata: az.InferenceData) -> CovariateModel:
    """A fitted :class:`CovariateModel` from a posterior saved by :meth:`CLVModel.save` (its
    ``attrs['covariates']`` design)."""
    spec = idata.attrs.get("covariates")
    if spec is None:
        raise CbcvError(f"{family.name}: the posterior records no covariates")
    model = CovariateModel(family, CovariateDesign.from_dict(json.loads(str(spec))),
                           float(idata.attrs.get("effect_sigma", EFFECT_SIGMA)))
    model.idata = idata
    return model


@dataclass(frozen=True)
class GroupPosterior:
    """The posterior of the family's parameters for one covariate group, standing for a fitted
    family model in its predictions (:mod:`cbcv.predict.engine` looks its class up by ``name``)."""

    name: str
    params: Mapping[str, np.ndarray]

    def draws(self) -> dict[str, np.ndarray]:
        return dict(self.params)
