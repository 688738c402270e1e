"""The shared core of every cbcv model: priors, fitting (NUTS or MAP), diagnostics, persistence.

A model family subclasses :class:`CLVModel` and writes three things once:

* ``param_names`` and ``default_priors`` (parameter names as in the papers);
* ``prepare(data)``: validate the input frame and return the arrays the likelihood needs,
  compressed to distinct rows with a ``weight`` array (see :func:`compress`);
* ``logp(params, arrays)``: the pointwise log-likelihood as a PyTensor expression, one entry per
  distinct row, *unweighted*.

The base class turns ``logp`` into a PyMC model (weighted sum in a ``Potential``), samples it,
and reuses the same ``logp`` for the pointwise log-likelihood used by LOO (expanded back to one
entry per customer). Sampling (NUTS or MAP) is one step, :func:`sample_model`, shared with the
acquisition model. Predictions are functions of parameter draws run by the draws × rows engine
of :mod:`cbcv.predict` (a layer above), which registers each family's kernels under its class
(:func:`cbcv.predict.engine.registered`).
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from cbcv.core.errors import CbcvError, ConfigError
from cbcv.core.jsonio import dumps_strict
from cbcv.models.verdict import (
    ESS_MIN,
    RHAT_MAX,
    Check,
    FitVerdict,
    data_checks,
    estimate_checks,
    fit_verdict,
    record_checks,
)

FitMethod = Literal["nuts", "map"]

#: Diagnostic thresholds (RHAT_MAX, ESS_MIN) live in :mod:`cbcv.models.verdict`, re-exported here.
__all__ = [
    "DEFAULT_TARGET_ACCEPT", "ESS_MIN", "LOGLIKE_CHUNK_ELEMENTS", "RHAT_MAX", "CLVModel", "FitVerdict", "Prior",
    "SamplerSettings", "compress", "count_divergences", "posterior_median", "posterior_summary", "posterior_verdict",
    "sample_model",
]
#: NUTS ``target_accept`` of a fit whose settings and model give none.
DEFAULT_TARGET_ACCEPT = 0.9
#: Draws × distinct rows evaluated at once by :meth:`CLVModel.log_likelihood` (bounds memory).
LOGLIKE_CHUNK_ELEMENTS = 200_000


def draws_sha256(*models: Any) -> str:
    """SHA-256 of the models' names and posterior draws (each parameter by name, in order):
    what identifies a fit for a cache key or a model version."""
    h = hashlib.sha256()
    for model in models:
        h.update(model.name.encode())
        for name, values in sorted(model.draws().items()):
            h.update(name.encode() + np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Prior:
    """A prior as a PyMC distribution name and its keyword arguments, e.g.
    ``Prior("Gamma", {"alpha": 1.0, "beta": 0.1})``. Serialisable, so a fit records its priors."""

    dist: str
    kwargs: Mapping[str, float] = field(default_factory=dict)

    def create(self, name: str) -> pt.TensorVariable:
        try:
            factory = getattr(pm, self.dist)
        except AttributeError as exc:
            raise CbcvError(f"prior for {name!r}: PyMC has no distribution {self.dist!r}") from exc
        return factory(name, **dict(self.kwargs))

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class SamplerSettings:
    """How to fit: NUTS (PyMC's sampler, or nutpie when installed and asked for) or MAP."""

    method: FitMethod = "nuts"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    cores: int | None = None
    seed: int | None = 42
    #: NUTS step-size adaptation target; None: the model's ``default_target_accept``.
    target_accept: float | None = None
    nuts_sampler: Literal["pymc", "nutpie"] = "pymc"
    progressbar: bool = False
    #: PyMC's NUTS initialisation. A dense mass matrix suits these few-parameter models, whose
    #: parameters are strongly correlated (r with alpha, a with b, s with beta): on CDNOW it cuts
    #: Pareto/NBD's mean tree size from ~40 to ~14 leapfrog steps. Ignored by nutpie.
    init: str = "jitter+adapt_full"


def compress(data: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Collapse rows with identical values of ``columns`` into one row with a ``weight``.

    The likelihood of the compressed data, each row's term multiplied by its weight, equals the
    likelihood of the full data exactly; its gradient costs the number of distinct rows.
    Returns the distinct rows (``columns`` + ``weight``) and, for each input row in order, the
    position of its distinct row, so pointwise quantities can be expanded back per customer.
    """
    cols = list(columns)
    codes, uniques = pd.MultiIndex.from_frame(data[cols]).factorize()
    # name the columns explicitly: MultiIndex.factorize drops the level names (pandas >= 3)
    distinct = uniques.to_frame(index=False, name=cols)
    distinct["weight"] = np.bincount(codes, minlength=len(distinct)).astype(float)
    return distinct, np.asarray(codes, dtype=np.int64)


def posterior_median(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Each posterior variable's median over chains and draws (the point NUTS fits are checked at)."""
    post = idata.posterior
    return {str(k): np.median(post[k].values.reshape(-1, *post[k].shape[2:]), axis=0) for k in post.data_vars}


def _finite(v: Any) -> float | None:
    """A number, or None when missing or not finite."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _n_customers(data: pd.DataFrame) -> int:
    """Customers behind ``data``: its rows, or the sum of its ``count`` column when each row
    stands for several customers."""
    if "count" in data.columns:
        return int(round(float(pd.to_numeric(data["count"], errors="coerce").sum())))
    return int(len(data))


class CLVModel(ABC):
    """Base class of cbcv's Bayesian models (one subclass per model family)."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    default_priors: ClassVar[Mapping[str, Prior]]
    #: NUTS ``target_accept`` when the settings leave it unset.
    default_target_accept: ClassVar[float] = DEFAULT_TARGET_ACCEPT

    def __init__(self, priors: Mapping[str, Prior] | None = None) -> None:
        priors = dict(priors or {})
        unknown = set(priors) - set(self.param_names)
        if unknown:
            raise CbcvError(
                f"{self.name}: unknown prior(s) {sorted(unknown)}; parameters are {list(self.param_names)}"
            )
        self.priors: dict[str, Prior] = {**self.default_priors, **priors}
        self.idata: az.InferenceData | None = None
        self.arrays: dict[str, np.ndarray] | None = None
        self.inverse: np.ndarray | None = None
        self.fit_seconds: float | None = None

    # -- to be written by each family -------------------------------------------------------
    @abstractmethod
    def prepare(self, data: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Validate ``data`` and return (arrays incl. ``weight``, inverse index per input row)."""

    @abstractmethod
    def logp(self, params: Mapping[str, Any], arrays: Mapping[str, Any]) -> pt.TensorVariable:
        """Pointwise (unweighted) log-likelihood, one entry per distinct row."""

    def fitted_rows(self, data: pd.DataFrame) -> np.ndarray:
        """Which rows of ``data`` the fit uses, as a boolean mask (all of them unless a family
        leaves some out, as gamma-gamma does customers without repeat purchases)."""
        return np.ones(len(data), dtype=bool)

    def total_logp(self, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> pt.TensorVariable:
        """The fit's log-likelihood, Σ weight × :meth:`logp`. A family may override it with an
        algebraically equal sum that is cheaper to differentiate (terms shared by many rows
        evaluated once); the pointwise :meth:`logp` stays the reference, used for LOO."""
        data = {k: pt.as_tensor_variable(np.asarray(v)) for k, v in arrays.items()}
        return pt.sum(data["weight"] * self.logp(params, data))

    # -- shared machinery ---------------------------------------------------------------------
    def build_model(self, arrays: Mapping[str, np.ndarray]) -> pm.Model:
        with pm.Model() as model:
            params = {n: self.priors[n].create(n) for n in self.param_names}
            pm.Potential("loglike", self.total_logp(params, arrays))
        return model

    def fit(self, data: pd.DataFrame, settings: SamplerSettings | None = None) -> az.InferenceData:
        """Fit to ``data`` and return (and keep) the posterior as InferenceData."""
        settings = settings or SamplerSettings()
        if settings.target_accept is None:
            settings = replace(settings, target_accept=self.default_target_accept)
        self.arrays, self.inverse = self.prepare(data)
        model = self.build_model(self.arrays)
        start = time.perf_counter()
        idata, point = sample_model(model, settings, self.param_names, init=settings.init)
        self.fit_seconds = time.perf_counter() - start
        map_fit = settings.method == "map"
        checks = data_checks(self.arrays) + self._estimate_checks(
            model, point if map_fit else posterior_median(idata), curvature=map_fit
        )
        record_checks(idata.attrs, checks)
        idata.attrs.update(
            {
                "cbcv_model": self.name,
                "method": settings.method,
                "settings": dumps_strict(asdict(settings), indent=None),
                "priors": dumps_strict({k: v.to_dict() for k, v in self.priors.items()}, indent=None),
                "n_customers": _n_customers(data),
                # summaries rounded before counting (cbcv.data.summary_files.summary_counts)
                **({"resolution": float(data.attrs["resolution"]),
                    "n_distinct_exact": int(data.attrs.get("n_distinct_exact", 0))}
                   if data.attrs.get("resolution") is not None else {}),
                "n_distinct": int(len(self.arrays["weight"])),
                "fit_seconds": float(self.fit_seconds),
            }
        )
        self.idata = idata
        return idata

    def dropped_rows(self, data: pd.DataFrame) -> dict[str, int]:
        """Input rows a fit leaves out, by reason (none but for gamma-gamma)."""
        return {}

    @property
    def checked_params(self) -> tuple[str, ...]:
        """The parameters the estimate checks look at (positive, on a log scale)."""
        return tuple(self.param_names)

    @property
    def prior_params(self) -> tuple[str, ...]:
        """The parameters with a prior of their own in :attr:`priors` (the priors table's rows)."""
        return tuple(self.param_names)

    def effect_prior_rows(self) -> list[dict[str, Any]]:
        """Rows of the priors table for priors outside :attr:`priors` (covariate coefficients;
        none here): ``parameter``, ``prior``, ``median``, ``low``, ``high``."""
        return []

    def _estimate_checks(self, model: pm.Model, point: Mapping[str, Any], *, curvature: bool) -> list[Check]:
        """Boundary and curvature checks of the estimate (:func:`cbcv.models.verdict.estimate_checks`)
        on :attr:`checked_params`; a check that cannot run is itself a warning, never a failed fit."""
        try:
            return estimate_checks(model, point, self.checked_params, curvature=curvature)
        except Exception as exc:  # noqa: BLE001 - recorded as a warning, not swallowed
            return [("warn", f"the estimate could not be checked ({type(exc).__name__}: {exc})")]

    def verdict(self, idata: az.InferenceData | None = None) -> FitVerdict:
        """The fit's diagnostics verdict (:mod:`cbcv.models.verdict`): pass, warn or fail."""
        return posterior_verdict(self.name, idata or self._require_fit(), self.param_names)

    def draws(self, idata: az.InferenceData | None = None) -> dict[str, np.ndarray]:
        """Posterior draws of each parameter, flattened over chains: name → (n_draws,) array."""
        idata = idata or self._require_fit()
        post = idata.posterior
        return {n: post[n].values.reshape(-1) for n in self.param_names}

    def point_loglike(self, params: Mapping[str, float], data: pd.DataFrame | None = None) -> float:
        """Total log-likelihood at fixed parameter values (e.g. published estimates)."""
        arrays = self.arrays if data is None else self.prepare(data)[0]
        if arrays is None:
            raise CbcvError(f"{self.name}: give data or fit the model first")
        p = {k: pt.as_tensor_variable(np.float64(params[k])) for k in self.param_names}
        a = {k: pt.as_tensor_variable(np.asarray(v)) for k, v in arrays.items()}
        return float(pt.sum(a["weight"] * self.logp(p, a)).eval())

    def log_likelihood(self, idata: az.InferenceData | None = None, expand: bool = True) -> xr.DataArray:
        """Pointwise log-likelihood over the posterior, (chain, draw, customer) when ``expand``
        (each customer gets its distinct row's term), else (chain, draw, distinct row)."""
        idata = idata or self._require_fit()
        if self.arrays is None or self.inverse is None:
            raise CbcvError(f"{self.name}: fit the model first")
        sym = {n: pt.vector(n) for n in self.param_names}
        a = {k: pt.as_tensor_variable(np.asarray(v)) for k, v in self.arrays.items()}
        broadcast = {n: v[:, None] for n, v in sym.items()}
        fn = pytensor.function(list(sym.values()), self.logp(broadcast, {k: v[None, :] for k, v in a.items()}))
        post = idata.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        flat = [post[n].values.reshape(-1) for n in self.param_names]
        # evaluate in chunks of draws: a likelihood may hold a few dozen temporaries per element
        step = max(1, LOGLIKE_CHUNK_ELEMENTS // len(self.arrays["weight"]))
        values = np.concatenate(
            [fn(*[v[i : i + step] for v in flat]) for i in range(0, len(flat[0]), step)], axis=0
        )
        if expand:
            values = values[:, self.inverse]
        return xr.DataArray(
            values.reshape(n_chain, n_draw, -1),
            dims=("chain", "draw", "customer" if expand else "row"),
        )

    def summary(self, idata: az.InferenceData | None = None, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Per parameter: mean, sd, hdi low/high, r_hat, ess_bulk, ess_tail."""
        return posterior_summary(idata or self._require_fit(), self.param_names, hdi_prob)

    def divergences(self, idata: az.InferenceData | None = None) -> int:
        """Divergent NUTS transitions of the fit (:func:`count_divergences`)."""
        return count_divergences(idata or self._require_fit())

    def save(self, path: str | Path) -> Path:
        """Save the posterior (and the fit's metadata in its attrs) as netCDF."""
        return write_posterior(self._require_fit(), path)

    def _require_fit(self) -> az.InferenceData:
        if self.idata is None:
            raise CbcvError(f"{self.name}: the model has not been fitted")
        return self.idata


def write_posterior(idata: az.InferenceData, path: str | Path) -> Path:
    """Write a posterior (its metadata in the attrs) as netCDF, making the folder; the one
    writer of every cbcv model's :meth:`save`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    idata.to_netcdf(str(path))
    return path


def read_posterior(path: str | Path, name: str, *, groups: Sequence[str] = ()) -> az.InferenceData:
    """A posterior written by :func:`write_posterior` for the model ``name``: ConfigError when
    the file is missing, or is not that model's (its ``cbcv_model`` attribute, or a group in
    ``groups`` it must hold)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{name}: no posterior file {path.name}")
    idata = az.from_netcdf(str(path))
    if idata.attrs.get("cbcv_model") != name or any(g not in idata.groups() for g in groups):
        raise ConfigError(f"{name}: {path.name} is not a saved {name} model")
    return idata


def recorded_priors(attrs: Mapping[str, Any]) -> dict[str, Prior]:
    """The priors a fit recorded in its attrs (``priors``, as :meth:`Prior.to_dict` wrote them)."""
    return {k: Prior(v["dist"], v["kwargs"]) for k, v in json.loads(str(attrs["priors"])).items()}


def posterior_summary(idata: az.InferenceData, names: Sequence[str], hdi_prob: float = 0.94) -> pd.DataFrame:
    """ArviZ's summary of the variables ``names`` (mean, sd, ``hdi_low``/``hdi_high``, r_hat,
    ess_bulk, ess_tail), shared by every cbcv model."""
    s = az.summary(idata, var_names=list(names), hdi_prob=hdi_prob, kind="all")
    pct = round(hdi_prob * 100)
    return s.rename(columns={f"hdi_{(100 - pct) / 2:g}%": "hdi_low", f"hdi_{100 - (100 - pct) / 2:g}%": "hdi_high"})


def count_divergences(idata: az.InferenceData) -> int:
    """Divergent NUTS transitions recorded in ``idata`` (0 for a MAP fit)."""
    if "sample_stats" not in idata.groups() or "diverging" not in idata.sample_stats:
        return 0
    return int(idata.sample_stats["diverging"].sum())


def posterior_verdict(name: str, idata: az.InferenceData, names: Sequence[str]) -> FitVerdict:
    """The verdict of a fit of model ``name`` (:func:`cbcv.models.verdict.fit_verdict`): the
    sampling thresholds on the variables ``names`` for NUTS, and the checks kept in
    ``idata.attrs`` — the one verdict of every cbcv model, the acquisition model's included."""
    method = str(idata.attrs.get("method", "nuts"))
    params: dict[str, dict[str, float | None]] = {}
    if method == "nuts":
        params = {str(k): {c: _finite(row.get(c)) for c in ("r_hat", "ess_bulk", "ess_tail")}
                  for k, row in posterior_summary(idata, names).iterrows()}
    return fit_verdict(name, method, params, count_divergences(idata), idata.attrs)


def sample_model(
    model: pm.Model, settings: SamplerSettings, names: Sequence[str] | None = None, *, init: str | None = None
) -> tuple[az.InferenceData, dict[str, Any] | None]:
    """Sample ``model`` as ``settings`` say: NUTS (PyMC's or nutpie's, ``settings.nuts_sampler``)
    or the MAP point — the one sampling step of every cbcv model (the customer families'
    :meth:`CLVModel.fit` and :meth:`cbcv.models.acquisition.AcquisitionModel.fit`).

    A MAP fit returns a one-draw posterior of ``names`` (default: every free and deterministic
    variable, with the model's coords and dims) and the point itself; NUTS returns the
    InferenceData and ``None``. ``init``: PyMC's NUTS initialisation (``None``: PyMC's default;
    nutpie has its own). The target acceptance is ``settings.target_accept`` or
    :data:`DEFAULT_TARGET_ACCEPT`. A method other than ``nuts`` or ``map`` is a ConfigError.
    """
    if settings.method not in ("nuts", "map"):
        raise ConfigError(f"sampler.method must be 'nuts' or 'map', got {settings.method!r}")
    with model:
        if settings.method == "map":
            point = pm.find_MAP(progressbar=settings.progressbar, seed=settings.seed)
            keep = list(names) if names is not None else [v.name for v in (*model.free_RVs, *model.deterministics)]
            idata = az.from_dict(
                posterior={n: np.asarray(point[n])[None, None] for n in keep},
                coords={k: list(v) for k, v in model.coords.items()},
                dims={n: list(model.named_vars_to_dims.get(n, ())) for n in keep},
            )
            return idata, point
        extra = {"init": init} if init is not None and settings.nuts_sampler == "pymc" else {}
        idata = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.cores or min(settings.chains, 2),
            random_seed=settings.seed,
            target_accept=settings.target_accept or DEFAULT_TARGET_ACCEPT,
            nuts_sampler=settings.nuts_sampler,
            progressbar=settings.progressbar,
            compute_convergence_checks=False,
            **extra,
        )
        return idata, None
