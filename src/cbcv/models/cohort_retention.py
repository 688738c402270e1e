"""Retention (sBG / BdW) pooled across acquisition cohorts, with time-invariant covariates.

Fader, P. S. and Hardie, B. G. S. (2007), "How to Project Customer Retention", *Journal of
Interactive Marketing* 21 (1), 76-90 (the sBG and its polarisation index); Fader, P. S., Hardie,
B. G. S., Liu, Y., Davin, J. and Steenburgh, T. (2018), '"How to Project Customer Retention"
Revisited: The Role of Duration Dependence', *Journal of Interactive Marketing* 43, 1-16 (the BdW).

Data: the individual-durations form of :mod:`cbcv.models.sbg`, one row per distinct cell, with
columns ``cohort``, the covariate columns, ``t``, ``churned`` and optionally ``count``
(subscribers per row): a subscriber who churned after paying ``t`` times has ``t, churned=True``;
one still active after ``t`` renewals has ``t, churned=False``. Cohorts may have been observed for
different numbers of periods (young cohorts: few renewals).

Parametrisation. Within cohort ``k`` the per-period churn probability ``theta`` is
Beta(``alpha_k``, ``beta_k``) across subscribers (the BdW's ``gamma_k``, ``delta_k``), written as
the mean churn probability ``mu_k = alpha_k / (alpha_k + beta_k)`` and the polarisation index
``phi_k = 1 / (alpha_k + beta_k + 1)`` of Fader & Hardie (2007) (``kappa_k = alpha_k + beta_k``):

    logit(mu_k) = m_mu + sigma_mu * z_k + x' b,      log(kappa_k) = m_kappa + sigma_kappa * w_k,

with ``z_k, w_k ~ Normal(0, 1)`` (non-centred). Why this scale: ``mu`` is what young cohorts
identify first (their first renewals), ``kappa`` (how fast the survivors' churn falls) needs
long tenures; pooled on separate axes, a young cohort keeps its own mean churn and borrows the
older cohorts' polarisation. ``(alpha, beta)`` themselves move together along a ridge of the
likelihood, which a hierarchy on them would pool badly; logit and log make both axes unbounded.

Poolings (``pooling=``):

* ``"partial"`` (default): the hierarchy above. Priors (override by name with ``priors=``):
  ``m_mu ~ Normal(-1.5, 2)`` (a typical cohort's mean churn per period: median 18%, 95% between
  0.4% and 92%, monthly to annual contracts), ``m_kappa ~ Normal(1, 2)`` (``kappa`` 95% between
  0.05 and 135, i.e. ``phi`` between 0.007 and 0.95, from very polarised to nearly homogeneous),
  ``sigma_mu ~ HalfNormal(1)`` (cohorts' mean churn odds differing by factors up to ~7) and
  ``sigma_kappa ~ HalfNormal(1)``. Fader & Hardie's (2007) segments (``mu`` 0.37 and 0.15,
  ``kappa`` 1.9 and 4.5) lie well inside (tests/test_cohort_retention.py::test_partial_pooling_lets_the_published_estimates_through).
* ``"complete"``: one ``(alpha, beta)`` for every cohort, with the single-cohort
  :class:`~cbcv.models.sbg.ShiftedBetaGeoModel`'s priors (``log alpha, log beta ~ Normal(0, 3)``),
  so that MAP reproduces it (tests/test_cohort_retention.py::test_complete_pooling_is_the_single_cohort_model).
* ``"unpooled"``: each cohort its own ``(alpha_k, beta_k)`` with those priors, independently.

BdW (``family="bdw"``): ``gamma_k, delta_k`` as ``alpha_k, beta_k`` above and one duration
dependence ``c`` shared by every cohort (``log c ~ Normal(0, 1)``, as
:class:`~cbcv.models.bdw.BetaDiscreteWeibullModel`): whether a subscriber's churn probability
rises or falls with tenure is a property of the product, and a cohort observed for two or three
periods cannot tell ``c`` from its ``kappa`` (both bend the survival curve), so a per-cohort
``c`` would not be identified where it matters.

Covariates (``covariates=``): time-invariant subscriber columns acting on ``logit(mu)``, the
churn propensity (a positive coefficient: more churn). A categorical column (text, category,
bool) gets one coefficient per level against its first level (sorted), named
``retention[<column>=<level>]``; a numeric column is standardised (count-weighted mean and sd of
the fit) and its coefficient, ``retention[<column>]``, is per standard deviation. Priors
``Normal(0, 1)`` on that scale (prior key ``retention``). A cohort's reported
``alpha_k, beta_k, mu_k, phi_k`` are at the baseline (first levels, numeric columns at their mean);
in the complete and unpooled models the covariates shift ``logit(mu)`` at the cohort's ``kappa``.

The likelihood is the sBG's / BdW's on compressed rows, each distinct ``(cell, t, churned)``
(cell: cohort and covariate values) weighted by its count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr

from cbcv.core.errors import CbcvError, ConfigError, DataError
from cbcv.core.jsonio import dumps_strict
from cbcv.models.base import (
    LOGLIKE_CHUNK_ELEMENTS,
    FitVerdict,
    Prior,
    SamplerSettings,
    count_divergences,
    posterior_median,
    posterior_summary,
    posterior_verdict,
    sample_model,
)
from cbcv.models.bdw import BetaDiscreteWeibullModel, log_survival
from cbcv.models.inputs import (
    compress_counts,
    first_bad_row,
    numeric_column,
    optional_counts,
    require_columns,
    whole_numbers,
)
from cbcv.models.priors import LogScalePrior, prior_from_dict
from cbcv.models.sbg import ShiftedBetaGeoModel, betaln
from cbcv.models.verdict import data_checks, estimate_checks, record_checks

Family = Literal["sbg", "bdw"]
Pooling = Literal["partial", "unpooled", "complete"]
FAMILY_NAMES: tuple[str, ...] = ("sbg", "bdw")
POOLINGS: tuple[str, ...] = ("partial", "unpooled", "complete")
#: The Beta shapes of each family (sBG's alpha, beta; BdW's gamma, delta).
SHAPES: Mapping[str, tuple[str, str]] = MappingProxyType({"sbg": ("alpha", "beta"), "bdw": ("gamma", "delta")})
#: Hyperpriors of the partial pooling and the covariate coefficients' prior (module docstring).
HYPER_PRIORS: Mapping[str, Prior] = MappingProxyType({
    "m_mu": Prior("Normal", {"mu": -1.5, "sigma": 2.0}),
    "sigma_mu": Prior("HalfNormal", {"sigma": 1.0}),
    "m_kappa": Prior("Normal", {"mu": 1.0, "sigma": 2.0}),
    "sigma_kappa": Prior("HalfNormal", {"sigma": 1.0}),
})
COEF_PRIOR = Prior("Normal", {"mu": 0.0, "sigma": 1.0})
#: Draws × subscribers at most in the pointwise log-likelihood :meth:`CohortRetentionModel.loo` uses.
LOO_MAX_ELEMENTS = 20_000_000
_TERM = "retention_term"


def row_logp(family: str, a: Any, b: Any, c: Any, t: Any, churned: Any) -> pt.TensorVariable:
    """Per row: ``log P(T = t)`` if churned, else ``log S(t)`` (PyTensor), sBG (Fader & Hardie 2007)
    with ``a, b = alpha, beta`` or BdW (Fader, Hardie, Liu, Davin & Steenburgh 2018) with
    ``a, b, c = gamma, delta, c``: the single-cohort likelihoods of :mod:`cbcv.models.sbg` and
    :mod:`cbcv.models.bdw` (their ``betaln`` / ``log_survival``), each row with its own parameters
    (tests/test_cohort_retention.py::test_hierarchical_likelihood_against_scipy)."""
    if family == "sbg":
        base = betaln(a, b)
        log_pmf = betaln(a + 1.0, b + pt.maximum(t - 1.0, 0.0)) - base
        return pt.switch(churned > 0.5, log_pmf, betaln(a, b + t) - base)
    log_s = log_survival(a, b, c, t)
    log_s_prev = log_survival(a, b, c, pt.maximum(t - 1.0, 0.0))
    diff = pt.minimum(log_s - log_s_prev, -1e-300)
    return pt.switch(churned > 0.5, log_s_prev + pt.log1mexp(diff), log_s)


# -- covariates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CovariateDesign:
    """How covariate columns become the design matrix: categorical levels (first = baseline) or a
    numeric column's mean and sd (standardised), and the coefficient names (``terms``)."""

    columns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    levels: tuple[tuple[str, ...], ...] = ()
    means: tuple[float, ...] = ()
    sds: tuple[float, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        out: list[str] = []
        for col, kind, levels in zip(self.columns, self.kinds, self.levels, strict=True):
            out.extend([f"{col}={lv}" for lv in levels[1:]] if kind == "categorical" else [col])
        return tuple(out)

    @classmethod
    def from_data(cls, data: pd.DataFrame, columns: Sequence[str], counts: np.ndarray, model: str) -> CovariateDesign:
        kinds, levels, means, sds = [], [], [], []
        for col in columns:
            raw = data[col]
            if raw.isna().any():
                raise DataError(f"{model}: column {col!r} row {first_bad_row(data, raw.isna().to_numpy())}: missing value")
            if pd.api.types.is_bool_dtype(raw) or not pd.api.types.is_numeric_dtype(raw):
                kinds.append("categorical")
                levels.append(tuple(sorted(raw.astype(str).unique())))
                means.append(0.0)
                sds.append(1.0)
                continue
            x = numeric_column(data, col, model)
            w = counts / counts.sum()
            mean = float(np.sum(w * x))
            sd = float(np.sqrt(np.sum(w * (x - mean) ** 2)))
            if not sd > 0:
                raise DataError(f"{model}: column {col!r}: every subscriber has the same value; drop the covariate")
            kinds.append("numeric")
            levels.append(())
            means.append(mean)
            sds.append(sd)
        return cls(tuple(columns), tuple(kinds), tuple(levels), tuple(means), tuple(sds))

    def matrix(self, data: pd.DataFrame | None, n: int, model: str) -> np.ndarray:
        """The ``(rows, terms)`` design of ``data``'s covariate columns; ``None``: the baseline
        (zeros). A level not seen in the fit is a DataError naming the row."""
        if data is None or not self.columns:
            return np.zeros((n, len(self.terms)))
        require_columns(data, self.columns, model)
        blocks = []
        for col, kind, levels, mean, sd in zip(self.columns, self.kinds, self.levels, self.means, self.sds, strict=True):
            if kind == "numeric":
                blocks.append(((numeric_column(data, col, model) - mean) / sd)[:, None])
                continue
            values = data[col].astype(str).to_numpy()
            unseen = ~np.isin(values, levels)
            if unseen.any():
                row = first_bad_row(data, unseen)
                raise DataError(f"{model}: column {col!r} row {row}: level {data[col][row]!r} was not seen in the "
                                f"fit (levels: {', '.join(levels)})")
            blocks.append((values[:, None] == np.asarray(levels[1:])[None, :]).astype(float))
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    def as_json(self) -> str:
        return dumps_strict(asdict(self), indent=None)

    @classmethod
    def from_json(cls, text: str) -> CovariateDesign:
        d = json.loads(text)
        return cls(tuple(d["columns"]), tuple(d["kinds"]), tuple(tuple(v) for v in d["levels"]),
                   tuple(d["means"]), tuple(d["sds"]))


@dataclass(frozen=True)
class Prepared:
    """Compressed durations: distinct rows (``cell``, ``t``, ``churned``, ``weight``), each cell's
    cohort index and design row, and each input row's distinct row and count (for expanding)."""

    cohorts: tuple[str, ...]
    design: CovariateDesign
    arrays: dict[str, np.ndarray]
    cell_cohort: np.ndarray
    cell_x: np.ndarray
    input_code: np.ndarray
    input_count: np.ndarray

    @property
    def inverse(self) -> np.ndarray:
        """Each subscriber's distinct row (input rows in order, each repeated ``count`` times)."""
        return np.repeat(self.input_code, self.input_count.astype(np.int64))


def _churned(data: pd.DataFrame, model: str) -> np.ndarray:
    raw = data["churned"]
    if raw.dtype == bool:
        return raw.to_numpy()
    flags = whole_numbers(data, "churned", model)
    if (flags > 1).any():
        row = first_bad_row(data, flags > 1)
        raise DataError(f"{model}: column 'churned' row {row}: expected 0/1 or True/False, got {raw[row]!r}")
    return flags.astype(bool)


def prepare_durations(data: pd.DataFrame, covariates: Sequence[str], model: str) -> Prepared:
    """Validate cohort durations (module docstring) and compress them to distinct rows."""
    require_columns(data, ("cohort", *covariates, "t", "churned"), model)
    if len(data) == 0:
        raise DataError(f"{model}: the data have no rows")
    t = whole_numbers(data, "t", model)
    churned = _churned(data, model)
    bad = churned & (t < 1)
    if bad.any():
        raise DataError(f"{model}: column 't' row {first_bad_row(data, bad)}: a churned subscriber needs t >= 1")
    if data["cohort"].isna().any():
        raise DataError(f"{model}: column 'cohort' row {first_bad_row(data, data['cohort'].isna().to_numpy())}: missing")
    counts = optional_counts(data, model)
    counts = np.ones(len(data)) if counts is None else counts
    if counts.sum() <= 0:
        raise DataError(f"{model}: column 'count' sums to 0: no subscribers")
    labels = data["cohort"].astype(str).to_numpy()
    cohorts = tuple(sorted(set(labels)))
    design = CovariateDesign.from_data(data, covariates, counts, model)
    cells = pd.DataFrame({"cohort": labels, **{
        c: data[c].astype(str).to_numpy() if k == "categorical" else data[c].to_numpy(dtype=float)
        for c, k in zip(design.columns, design.kinds, strict=True)}})
    cell_code = pd.MultiIndex.from_frame(cells).factorize()[0]
    first = np.unique(cell_code, return_index=True)[1]  # the first input row of each cell
    frame = pd.DataFrame({"cell": cell_code.astype(float), "t": t, "churned": churned.astype(float)})
    distinct, input_code = compress_counts(frame, ["cell", "t", "churned"])  # one code per input row
    distinct["weight"] = np.bincount(input_code, weights=counts, minlength=len(distinct))
    arrays = {k: distinct[k].to_numpy(dtype=float) for k in ("cell", "t", "churned", "weight")}
    cell_cohort = np.searchsorted(np.asarray(cohorts), labels[first])
    cell_x = design.matrix(data.iloc[first].reset_index(drop=True), len(first), model)
    return Prepared(cohorts, design, arrays, cell_cohort.astype(np.int64), cell_x,
                    np.asarray(input_code, dtype=np.int64), counts)


def _create(prior: Prior, name: str, dims: str | None = None) -> pt.TensorVariable:
    """A prior as a PyMC variable with optional ``dims``; a log-scale prior samples ``log_<name>``."""
    try:
        factory = getattr(pm, prior.dist)
    except AttributeError as exc:
        raise ConfigError(f"prior for {name!r}: PyMC has no distribution {prior.dist!r}") from exc
    if isinstance(prior, LogScalePrior):
        return pm.Deterministic(name, pt.exp(factory(f"log_{name}", **dict(prior.kwargs), dims=dims)), dims=dims)
    return factory(name, **dict(prior.kwargs), dims=dims)


def _sigmoid_np(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# -- the model ------------------------------------------------------------------------------------
class CohortRetentionModel:
    """sBG or BdW retention across cohorts, partially, completely or not pooled, with covariates
    (module docstring: parametrisation, priors, poolings)."""

    default_target_accept: ClassVar[float] = 0.9

    def __init__(self, family: Family = "sbg", pooling: Pooling = "partial", covariates: Sequence[str] = (),
                 priors: Mapping[str, Prior] | None = None) -> None:
        if family not in FAMILY_NAMES:
            raise ConfigError(f"cohort retention: family must be one of {list(FAMILY_NAMES)}, got {family!r}")
        if pooling not in POOLINGS:
            raise ConfigError(f"cohort retention: pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        self.family, self.pooling = family, pooling
        self.covariates = tuple(covariates)
        if len(set(self.covariates)) != len(self.covariates) or {"cohort", "t", "churned", "count"} & set(self.covariates):
            raise ConfigError(f"cohort retention: bad covariate list {list(self.covariates)}")
        self.shapes = SHAPES[family]
        single = ShiftedBetaGeoModel if family == "sbg" else BetaDiscreteWeibullModel
        # partial: the hyperpriors; complete and unpooled: the single-cohort model's priors
        defaults = dict(HYPER_PRIORS) if pooling == "partial" else {k: single.default_priors[k] for k in self.shapes}
        if family == "bdw":
            defaults["c"] = single.default_priors["c"]
        if self.covariates:
            defaults["retention"] = COEF_PRIOR
        unknown = set(priors or {}) - set(defaults)
        if unknown:
            raise ConfigError(f"{self.name}: unknown prior(s) {sorted(unknown)}; known: {sorted(defaults)}")
        self.priors: dict[str, Prior] = {**defaults, **dict(priors or {})}
        self.idata: az.InferenceData | None = None
        self.prepared: Prepared | None = None
        self.fit_seconds: float | None = None

    @property
    def name(self) -> str:
        return f"cohort_{self.family}"

    @property
    def param_names(self) -> tuple[str, ...]:
        """The posterior variables :meth:`summary` and :meth:`verdict` report."""
        a, b = self.shapes
        names = ["m_mu", "sigma_mu", "m_kappa", "sigma_kappa", "mu_pop", "phi_pop"] if self.pooling == "partial" else []
        names += ["mu", "phi", a, b]
        names += ["c"] if self.family == "bdw" else []
        names += ["retention"] if self.covariates else []
        return tuple(names)

    @property
    def cohorts(self) -> tuple[str, ...]:
        """The fitted cohorts' labels (sorted)."""
        return self._require_prepared().cohorts

    # -- fitting ------------------------------------------------------------------------------
    def build_model(self, prep: Prepared) -> pm.Model:
        """The PyMC model: per-cohort Beta shapes from the pooling (module docstring), per cell
        the covariates on ``logit(mu)``, and the sBG / BdW likelihood :func:`row_logp` of each
        distinct row weighted by its count (Fader & Hardie 2007; Fader et al. 2018;
        tests/test_cohort_retention.py::test_hierarchical_likelihood_against_scipy)."""
        a_name, b_name = self.shapes
        coords: dict[str, Any] = {"cohort": list(prep.cohorts)}
        terms = prep.design.terms
        if terms:
            coords[_TERM] = list(terms)
        with pm.Model(coords=coords) as model:
            dims = "cohort" if self.pooling != "complete" else None
            if self.pooling == "partial":
                p = {k: _create(self.priors[k], k) for k in HYPER_PRIORS}
                z = pm.Normal("z", 0.0, 1.0, dims="cohort")
                w = pm.Normal("w", 0.0, 1.0, dims="cohort")
                logit_mu = p["m_mu"] + p["sigma_mu"] * z
                log_kappa = p["m_kappa"] + p["sigma_kappa"] * w
                pm.Deterministic("mu_pop", pt.sigmoid(p["m_mu"]))
                pm.Deterministic("phi_pop", pt.sigmoid(-p["m_kappa"]))
                kappa = pt.exp(log_kappa)
                a_k = pm.Deterministic(a_name, pt.sigmoid(logit_mu) * kappa, dims="cohort")
                b_k = pm.Deterministic(b_name, pt.sigmoid(-logit_mu) * kappa, dims="cohort")
            else:
                a_k, b_k = _create(self.priors[a_name], a_name, dims), _create(self.priors[b_name], b_name, dims)
                logit_mu, log_kappa = pt.log(a_k) - pt.log(b_k), pt.log(a_k + b_k)
            pm.Deterministic("mu", a_k / (a_k + b_k), dims=dims)
            pm.Deterministic("phi", 1.0 / (a_k + b_k + 1.0), dims=dims)
            c = _create(self.priors["c"], "c") if self.family == "bdw" else pt.constant(1.0)
            cell_k = prep.cell_cohort
            if terms:
                coef = _create(self.priors["retention"], "retention", dims=_TERM)
                lm = logit_mu[cell_k] if logit_mu.ndim else logit_mu
                lk = log_kappa[cell_k] if log_kappa.ndim else log_kappa
                eta = lm + pt.dot(pt.as_tensor_variable(prep.cell_x), coef)
                a_cell, b_cell = pt.sigmoid(eta) * pt.exp(lk), pt.sigmoid(-eta) * pt.exp(lk)
            elif a_k.ndim:
                a_cell, b_cell = a_k[cell_k], b_k[cell_k]
            else:
                a_cell, b_cell = pt.ones(len(cell_k)) * a_k, pt.ones(len(cell_k)) * b_k
            rows = prep.arrays
            cell = rows["cell"].astype(np.int64)
            logp = row_logp(self.family, a_cell[cell], b_cell[cell], c, pt.as_tensor_variable(rows["t"]),
                            pt.as_tensor_variable(rows["churned"]))
            pm.Potential("loglike", pt.sum(pt.as_tensor_variable(rows["weight"]) * logp))
        return model

    def fit(self, durations: pd.DataFrame, settings: SamplerSettings | None = None) -> az.InferenceData:
        """Fit to cohort durations (module docstring) by NUTS (default) or MAP; returns (and
        keeps) the posterior, with the fit's metadata in its attrs and the compressed data in
        its ``constant_data`` group (so :meth:`load` restores a model that predicts)."""
        settings = settings or SamplerSettings()
        if settings.target_accept is None:
            settings = replace(settings, target_accept=self.default_target_accept)
        prep = prepare_durations(durations, self.covariates, self.name)
        model = self.build_model(prep)
        start = time.perf_counter()
        idata, point = sample_model(model, settings, None, init=settings.init)
        self.fit_seconds = time.perf_counter() - start
        map_fit = settings.method == "map"
        positive = (*self.shapes, *(("c",) if self.family == "bdw" else ()))
        try:
            est = estimate_checks(model, point if map_fit else posterior_median(idata), positive,
                                  curvature=map_fit)
        except Exception as exc:  # noqa: BLE001 - recorded as a warning, not swallowed
            est = [("warn", f"the estimate could not be checked ({type(exc).__name__}: {exc})")]
        record_checks(idata.attrs, data_checks(prep.arrays) + est)
        idata.attrs.update({
            "cbcv_model": self.name, "family": self.family, "pooling": self.pooling,
            "method": settings.method,
            "settings": dumps_strict(asdict(settings), indent=None),
            "priors": dumps_strict({k: v.to_dict() for k, v in self.priors.items()}, indent=None),
            "n_customers": int(round(float(prep.input_count.sum()))),
            "n_distinct": int(len(prep.arrays["weight"])),
            "n_rows": int(len(durations)),
            "fit_seconds": float(self.fit_seconds),
            "cohorts": dumps_strict(list(prep.cohorts), indent=None),
            "covariates": prep.design.as_json(),
        })
        idata.add_groups(constant_data=_data_dataset(prep))
        self.prepared, self.idata = prep, idata
        return idata

    # -- posterior ----------------------------------------------------------------------------
    def _require_fit(self) -> az.InferenceData:
        if self.idata is None:
            raise CbcvError(f"{self.name}: the model has not been fitted")
        return self.idata

    def _require_prepared(self) -> Prepared:
        self._require_fit()
        assert self.prepared is not None
        return self.prepared

    def summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Per parameter (population and per cohort, e.g. ``mu[2019-03]``): mean, sd, hdi
        low/high, r_hat, ess_bulk, ess_tail; a MAP fit: its point (``mean``) only."""
        idata = self._require_fit()
        post = idata.posterior
        if post.sizes["chain"] * post.sizes["draw"] == 1:
            rows: dict[str, float] = {}
            for name in self.param_names:
                var = post[name]
                if var.ndim == 2:
                    rows[name] = float(var.values.reshape(-1)[0])
                else:
                    labels = var.coords[var.dims[-1]].values
                    rows.update({f"{name}[{k}]": float(v) for k, v in zip(labels, var.values.reshape(-1), strict=True)})
            return pd.DataFrame({"mean": pd.Series(rows, dtype=float)})
        return posterior_summary(idata, self.param_names, hdi_prob)

    def verdict(self) -> FitVerdict:
        """The fit's diagnostics verdict (:func:`cbcv.models.base.posterior_verdict`)."""
        return posterior_verdict(self.name, self._require_fit(), self.param_names)

    def divergences(self) -> int:
        """Divergent NUTS transitions of the fit."""
        return count_divergences(self._require_fit())

    def _flat(self, name: str, max_draws: int | None = None) -> np.ndarray:
        """A posterior variable flattened over (chain, draw): ``(draws, ...)``, evenly thinned."""
        var = self._require_fit().posterior[name]
        values = var.values.reshape(-1, *var.shape[2:])
        return values[_thin(len(values), max_draws)]

    def _cohort_shapes(self, max_draws: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per draw and fitted cohort: ``logit(mu_k)``, ``kappa_k`` (``(draws, K)``), the
        coefficients ``(draws, terms)`` and ``c`` ``(draws,)``."""
        a, b = (self._flat(n, max_draws) for n in self.shapes)
        k = len(self.cohorts)
        if a.ndim == 1:
            a, b = np.repeat(a[:, None], k, axis=1), np.repeat(b[:, None], k, axis=1)
        coef = self._flat("retention", max_draws) if self.covariates else np.zeros((len(a), 0))
        c = self._flat("c", max_draws) if self.family == "bdw" else np.ones(len(a))
        return np.log(a) - np.log(b), a + b, coef, c

    def _shapes_out(self, logit_mu: np.ndarray, kappa: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        a, b = self.shapes
        out = {a: _sigmoid_np(logit_mu) * kappa, b: _sigmoid_np(-logit_mu) * kappa}
        if self.family == "bdw":
            out["c"] = np.broadcast_to(c[:, None], logit_mu.shape).copy()
        return out

    def cohort_params(self, cohorts: Sequence[str], covariates: pd.DataFrame | None = None,
                      max_draws: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Parameter draws of subscribers of ``cohorts`` (one label per column; with the rows of
        ``covariates``, or at the baseline when None): ``alpha``, ``beta`` (sBG) or ``gamma``,
        ``delta``, ``c`` (BdW), each ``(draws, len(cohorts))``, thinned evenly to ``max_draws``.

        A fitted cohort gets its own draws. A cohort not in the fit (a future one) gets, per
        draw and per distinct label: partial pooling, a fresh ``z, w ~ Normal(0, 1)`` (a new
        cohort from the population); complete, the common parameters; unpooled, the parameters
        of a fitted cohort chosen uniformly at random for each draw. ``seed`` fixes those draws
        (tests/test_cohort_retention.py::test_unseen_cohorts_behave_as_documented). A covariate
        level not seen in the fit is a DataError."""
        prep = self._require_prepared()
        labels = [str(c) for c in cohorts]
        x = prep.design.matrix(covariates, len(labels), f"{self.name} cohort_params")
        if covariates is not None and len(covariates) != len(labels):
            raise CbcvError(f"{self.name}: {len(labels)} cohort(s) but {len(covariates)} covariate row(s)")
        logit_k, kappa_k, coef, c = self._cohort_shapes(max_draws)
        n_draws, index = len(c), {k: i for i, k in enumerate(prep.cohorts)}
        rng = np.random.default_rng(seed)
        new: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for label in dict.fromkeys(lb for lb in labels if lb not in index):
            if self.pooling == "partial":
                z, w = rng.standard_normal(n_draws), rng.standard_normal(n_draws)
                f = {n: self._flat(n, max_draws) for n in HYPER_PRIORS}
                new[label] = (f["m_mu"] + f["sigma_mu"] * z, np.exp(f["m_kappa"] + f["sigma_kappa"] * w))
            else:
                j = rng.integers(len(prep.cohorts), size=n_draws) if self.pooling == "unpooled" else np.zeros(n_draws, int)
                new[label] = (logit_k[np.arange(n_draws), j], kappa_k[np.arange(n_draws), j])
        logit = np.column_stack([logit_k[:, index[lb]] if lb in index else new[lb][0] for lb in labels])
        kappa = np.column_stack([kappa_k[:, index[lb]] if lb in index else new[lb][1] for lb in labels])
        return self._shapes_out(logit + coef @ x.T, kappa, c)

    # -- log-likelihood, LOO ------------------------------------------------------------------
    def log_likelihood(self, expand: bool = True, max_draws: int | None = None) -> xr.DataArray:
        """Pointwise log-likelihood over the posterior, ``(chain, draw, customer)`` when
        ``expand`` (each subscriber, in input-row order with each row repeated ``count`` times,
        gets its distinct row's term), else ``(chain, draw, row)``; draws thinned evenly within
        each chain to at most ``max_draws`` in all. Evaluated in chunks of draws."""
        prep, post = self._require_prepared(), self._require_fit().posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        keep = _thin(n_draw, None if max_draws is None else max(1, max_draws // n_chain))
        flat_index = (np.arange(n_chain)[:, None] * n_draw + keep[None, :]).reshape(-1)
        logit_k, kappa_k, coef, c = self._cohort_shapes(None)
        rows = prep.arrays
        cell = rows["cell"].astype(np.int64)
        sym = [pt.matrix("a"), pt.matrix("b"), pt.matrix("c")]
        fn = pytensor.function(sym, row_logp(self.family, *sym, pt.as_tensor_variable(rows["t"][None, :]),
                                             pt.as_tensor_variable(rows["churned"][None, :])),
                             on_unused_input="ignore")
        step = max(1, LOGLIKE_CHUNK_ELEMENTS // len(cell))
        parts = []
        for i in range(0, len(flat_index), step):
            d = flat_index[i : i + step]
            eta = logit_k[d][:, prep.cell_cohort] + coef[d] @ prep.cell_x.T
            shapes = self._shapes_out(eta[:, cell], kappa_k[d][:, prep.cell_cohort][:, cell], c[d])
            a, b = (shapes[n] for n in self.shapes)
            parts.append(fn(a, b, np.broadcast_to(c[d][:, None], a.shape)))
        values = np.concatenate(parts, axis=0)
        if expand:
            values = values[:, prep.inverse]
        return xr.DataArray(values.reshape(n_chain, len(keep), -1),
                            dims=("chain", "draw", "customer" if expand else "row"),
                            coords={"chain": post["chain"].values, "draw": post["draw"].values[keep]})

    def loo(self) -> az.ELPDData:
        """PSIS-LOO (``az.loo``) on the per-subscriber log-likelihood, draws thinned so that
        draws × subscribers stays within :data:`LOO_MAX_ELEMENTS`; needs a NUTS fit."""
        idata = self._require_fit()
        if idata.attrs.get("method") != "nuts":
            raise CbcvError(f"{self.name}: LOO needs posterior draws (a NUTS fit), not a {idata.attrs.get('method')} point")
        n_sub = int(round(float(self._require_prepared().input_count.sum())))
        ll = self.log_likelihood(max_draws=max(1, LOO_MAX_ELEMENTS // max(n_sub, 1)))
        thin = az.InferenceData(posterior=idata.posterior.sel(draw=ll["draw"].values),
                                log_likelihood=xr.Dataset({"durations": ll}))
        return az.loo(thin)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save the posterior, the fit's metadata (attrs) and the compressed data (netCDF)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._require_fit().to_netcdf(str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> CohortRetentionModel:
        """A fitted model from a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"cohort retention: no posterior file {path}")
        idata = az.from_netcdf(str(path))
        attrs = idata.attrs
        if not str(attrs.get("cbcv_model", "")).startswith("cohort_") or "constant_data" not in idata.groups():
            raise ConfigError(f"cohort retention: {path} is not a saved cohort retention model")
        design = CovariateDesign.from_json(attrs["covariates"])
        priors = {k: prior_from_dict(v) for k, v in json.loads(attrs["priors"]).items()}
        model = cls(attrs["family"], attrs["pooling"], design.columns, priors)
        model.prepared = _prepared_from(idata.constant_data, tuple(json.loads(attrs["cohorts"])), design)
        model.idata = idata
        model.fit_seconds = float(attrs.get("fit_seconds", float("nan")))
        return model


def _thin(n: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced indices of at most ``max_draws`` of ``n`` draws (all when None)."""
    if max_draws is None or max_draws >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_draws).round().astype(np.int64))


def _data_dataset(prep: Prepared) -> xr.Dataset:
    data: dict[str, Any] = {f"row_{k}": ("row", v) for k, v in prep.arrays.items()}
    data["cell_cohort"] = ("cell", prep.cell_cohort)
    data["input_code"] = ("input_row", prep.input_code)
    data["input_count"] = ("input_row", prep.input_count)
    if prep.cell_x.shape[1]:
        data["cell_x"] = (("cell", _TERM), prep.cell_x)
    return xr.Dataset(data)


def _prepared_from(ds: xr.Dataset, cohorts: tuple[str, ...], design: CovariateDesign) -> Prepared:
    arrays = {k: ds[f"row_{k}"].values.astype(float) for k in ("cell", "t", "churned", "weight")}
    cell_cohort = ds["cell_cohort"].values.astype(np.int64)
    cell_x = ds["cell_x"].values if "cell_x" in ds else np.zeros((len(cell_cohort), 0))
    return Prepared(cohorts, design, arrays, cell_cohort, cell_x, ds["input_code"].values.astype(np.int64),
                    ds["input_count"].values.astype(float))
