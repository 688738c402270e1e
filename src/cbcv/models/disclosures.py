"""A listed company's customers from its disclosures alone: acquisition, retention or repeat
purchasing, and spend, fitted in PyMC to the disclosed aggregates through the latent cohort matrix.

The structure is that of McCarthy, Fader & Hardie (2017, J. Marketing 81(1), "Valuing
Subscription-Based Businesses Using Publicly Disclosed Customer Data"; contractual) and McCarthy &
Fader (2018, J. Marketing Research 55(5), "Customer-Based Corporate Valuation for Publicly Traded
Noncontractual Firms"; non-contractual). Periods ``t = 1..P`` are the table's rows (quarters or
months); period 1 is the firm's first period of acquisition (its launch), so every customer
belongs to a cohort the model sees.

Acquisition (cohort sizes ``A_t``)
    A finite market of ``M`` prospects (known, or log-normal: :class:`MarketSize`), a share
    ``pi`` of whom never become customers; the others' time to acquisition is a proportional-
    hazards Weibull with ``log`` marketing spend (standardised) and optional season dummies as
    covariates: the acquisition model of :mod:`cbcv.models.acquisition` (its terms are reused:
    :func:`cbcv.models.acquisition_terms.cumulative_exposure`, ``log_survival``,
    ``period_log_probs``). ``A_t = M p_t`` is the expected number acquired in ``t``. Where the
    firm discloses its new customers, the other series are built on those *realised* cohort
    sizes and ``A_t`` is fitted to them (and forecasts the future cohorts): the likelihood
    factors as ``p(new | acquisition) p(other series | new, retention, purchasing, spend)``, so
    the noise of acquisition around its smooth curve does not blur the retention (the cohort
    sizes of McCarthy, Fader & Hardie 2017 are the disclosed gross adds). Elsewhere the cohorts
    are the expected ``A_t``.

Staying (both settings)
    A customer acquired in period ``c`` is a customer (contractual: subscribed at the end of the
    period; non-contractual: alive, able to buy) in period ``c + k`` with probability ``S(k)``,
    ``S(0) = 1``: the shifted-beta-geometric survivor ``S(k) = B(a, b + k) / B(a, b)`` (Fader &
    Hardie 2007, eq. 7) or the beta-discrete-Weibull's ``B(a, b + k**c) / B(a, b)`` (Fader,
    Hardie, Liu, Davin & Steenburgh 2018, eq. 4), a churn decision at each period's end. The
    cohort matrix is ``N[t, c] = A_c S(t - c)`` for ``t >= c``.

Contractual series
    ``customers_end_t = sum_c N[t, c]``, ``new_customers_t = A_t``, ``lost_customers_t =
    customers_end_{t-1} + A_t - customers_end_t`` (the accounting identity, by construction) and
    ``revenue_t = customers_end_t * s_t`` with ``s_t`` the revenue per subscriber in ``t``.

Non-contractual series (repeat purchasing while alive)
    An alive customer places orders as a Poisson process with rate ``lambda * e^{g_q}`` per
    period (``g_q`` a log multiplier per quarter or month of the year, the first fixed at 0);
    ``lambda ~ Gamma(shape r, rate r / m)`` across customers, so ``m`` is the mean orders per
    alive customer per period in the base season. The acquisition is the first order; in its
    acquisition period a customer's remaining exposure averages half a period (acquisition times
    uniform within the period). So, per period ``t`` with ``E_t = sum_{c<t} N[t, c]`` customers
    alive since an earlier period,

    * ``active_customers_t = A_t + E_t (1 - (r / (r + m e^{g_t}))**r)`` (a gamma-Poisson's
      probability of at least one order);
    * ``orders_t = A_t (1 + m e^{g_t} / 2) + E_t m e^{g_t}``;
    * ``revenue_t = orders_t * s_t``, ``s_t`` the spend per order.

    Expected active customers and orders need only the marginal of ``lambda`` and the survivor
    ``S``: no per-customer history enters, which is why the aggregates suffice.

Spend
    ``log s_t = log s_ref + z + delta (t - t_mid) + h_q``: a level (``z`` around the data's own
    revenue per order, or per subscriber, ``s_ref``), a trend per period, a season per quarter
    (or month) of the year (the first fixed at 0).

The likelihood of the disclosed aggregates
    Each reported value ``y_{j,t}`` of series ``j`` is its model expectation ``mu_{j,t}`` times
    ``1 + e_{j,t}``, a relative error that is autoregressive within each series, ``e_{j,t} =
    rho_j e_{j,t-1} + sigma_j eta_t`` (``eta`` standard normal; a run's first report has the
    stationary ``sigma_j / sqrt(1 - rho_j^2)``), with ``sigma_j`` and ``rho_j`` estimated per
    series (a period that a firm did not report simply has no term; the next report starts a
    new run). Why autoregressive: the same customers make every period's figures, so a cohort
    that happened to stay more than expected keeps the series above its expectation for many
    periods; independent errors would count each of those periods as new evidence and return an
    interval too narrow to cover the truth (it did not, on a company simulated customer by
    customer in this model's own story: tests/test_disclosure_report.py). Why not the counts' own sampling distribution
    (Poisson or multinomial, as for individual-level data)? The disclosed figures are sums over
    many thousands of customers, so their sampling noise is a fraction of a percent, far below
    what separates any tractable model from the firm's reality (rounding, restatements, shocks,
    the model's own simplifications); a count likelihood would treat the model as exact and
    return intervals too narrow to be believed. The relative-error likelihood lets each series
    say how well the structure fits it, and the posterior of the cohort matrix carries that
    uncertainty into every forecast. It is the probabilistic version of the papers' estimation
    (they minimise squared errors of the disclosed series, weighted per series).

Default priors (periods in the data's own unit)
    The acquisition model's (``pi ~ Beta(1, 1)``, ``lam ~ LogNormal(log 0.1, 1.5)``,
    ``c ~ LogNormal(0, 0.5)``, ``beta ~ Normal(0, 1)`` per standardised covariate, ``season ~
    Normal(0, 0.5)``); retention: mean churn ``a / (a + b) ~ Beta(1, 1)``, ``a + b ~
    LogNormal(log 2, 1.5)``, BdW ``c_ret ~ LogNormal(0, 0.5)``; purchasing: ``m ~ LogNormal(0,
    1.5)``, ``r ~ LogNormal(0, 1)``, ``purchase_season ~ Normal(0, 0.5)``; spend: ``z ~
    Normal(0, 1)``, ``delta ~ Normal(0, 0.02)``, ``spend_season ~ Normal(0, 0.2)``; errors:
    ``sigma_j ~ HalfNormal(0.1)``, ``rho_j ~ Uniform(0, 0.95)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from cbcv.core.errors import ConfigError, DataError
from cbcv.core.jsonio import dumps_strict
from cbcv.models.acquisition_terms import (
    MarketSize,
    cumulative_exposure,
    log_survival,
    period_log_probs,
)
from cbcv.models.base import (
    FitVerdict,
    Prior,
    SamplerSettings,
    count_divergences,
    posterior_summary,
    posterior_verdict,
    read_posterior,
    recorded_priors,
    sample_model,
    write_posterior,
)
from cbcv.models.disclosure_terms import (
    COVARIATE,
    MODELLED,
    NUMPY_BACKEND,
    PYTENSOR_BACKEND,
    SETTINGS,
    DisclosureDesign,
    RetentionFamily,
    Setting,
    ar1_terms,
    choose_setting,
    cohort_ages,
    expected_series,
    prepare_design,
    season_design,
    survivor,
)
from cbcv.models.verdict import record_checks

#: Draws x periods x cohorts evaluated at once by :meth:`DisclosureModel.cohort_paths` (bounds memory).
PATH_CELLS = 4_000_000

DEFAULT_PRIORS: Mapping[str, Prior] = {
    "share": Prior("Beta", {"alpha": 1.0, "beta": 1.0}),
    "h1": Prior("LogNormal", {"sigma": 2.0}),
    "c": Prior("LogNormal", {"mu": 0.0, "sigma": 0.5}),
    "beta": Prior("Normal", {"mu": 0.0, "sigma": 1.0}),
    "season": Prior("Normal", {"mu": 0.0, "sigma": 0.5}),
    "churn": Prior("Beta", {"alpha": 1.0, "beta": 1.0}),
    "kappa": Prior("LogNormal", {"mu": math.log(2.0), "sigma": 1.5}),
    "c_ret": Prior("LogNormal", {"mu": 0.0, "sigma": 0.5}),
    "m": Prior("LogNormal", {"mu": 0.0, "sigma": 1.5}),
    "r": Prior("LogNormal", {"mu": 0.0, "sigma": 1.0}),
    "purchase_season": Prior("Normal", {"mu": 0.0, "sigma": 0.5}),
    "z": Prior("Normal", {"mu": 0.0, "sigma": 1.0}),
    "delta": Prior("Normal", {"mu": 0.0, "sigma": 0.02}),
    "spend_season": Prior("Normal", {"mu": 0.0, "sigma": 0.2}),
    "sigma": Prior("HalfNormal", {"sigma": 0.1}),
    "rho": Prior("Uniform", {"lower": 0.0, "upper": 0.95}),
}

# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
class DisclosureModel:
    """The disclosed aggregates' model (module docstring).

    ``setting``: ``contractual`` or ``noncontractual`` (default: :func:`choose_setting` on the
    table at fit time); ``market``: the prospects ``M``; ``retention``: ``sbg`` or ``bdw``;
    ``marketing``: log marketing spend as the acquisition covariate (``None``: when disclosed);
    ``acquisition_seasonality``: season dummies on the acquisition hazard; ``priors``: overrides
    of :data:`DEFAULT_PRIORS`.
    """

    name = "disclosures"

    def __init__(
        self, market: float | MarketSize, *, setting: Setting | None = None, retention: RetentionFamily = "sbg",
        marketing: bool | None = None, acquisition_seasonality: bool = False,
        priors: Mapping[str, Prior] | None = None,
    ) -> None:
        if setting is not None and setting not in SETTINGS:
            raise ConfigError(f"disclosures: setting must be one of {list(SETTINGS)}, got {setting!r}")
        if retention not in ("sbg", "bdw"):
            raise ConfigError(f"disclosures: retention must be sbg or bdw, got {retention!r}")
        unknown = set(priors or {}) - set(DEFAULT_PRIORS)
        if unknown:
            raise ConfigError(f"disclosures: unknown prior(s) {sorted(unknown)}; known: {sorted(DEFAULT_PRIORS)}")
        self.market = market if isinstance(market, MarketSize) else MarketSize(float(market))
        self.setting = setting
        self.retention = retention
        self.marketing = marketing
        self.acquisition_seasonality = bool(acquisition_seasonality)
        self.priors: dict[str, Prior] = {**DEFAULT_PRIORS, **dict(priors or {})}
        self.design: DisclosureDesign | None = None
        self.idata: az.InferenceData | None = None

    # -- parameters -----------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """The posterior variables :meth:`summary` reports."""
        d = self._design()
        names = ["pi", "lam", "c", "share"]
        if d.log_marketing is not None:
            names += ["beta_marketing"]
        if self.acquisition_seasonality:
            names += ["season"]
        if not self.market.known:
            names += ["M"]
        names += ["churn", "kappa"] + (["c_ret"] if self.retention == "bdw" else [])
        if self.setting == "noncontractual":
            names += ["m", "r", "purchase_season"]
        if "revenue" in d.observed:
            names += ["spend_level", "delta", "spend_season"]
        return (*names, "sigma", "rho", "ultimate_adopters")

    def _design(self) -> DisclosureDesign:
        if self.design is None:
            raise ConfigError("disclosures: the model has not been fitted")
        return self.design

    def _prior(self, key: str, name: str, dims: str | None = None) -> Any:
        prior = self.priors[key]
        return getattr(pm, prior.dist)(name, **dict(prior.kwargs), dims=dims)

    def build_model(self, design: DisclosureDesign) -> pm.Model:
        """The PyMC model of the disclosed series (module docstring): the finite-market acquisition
        of Fader, Hardie & Huang (2004, eq. 3) through the sBG/BdW cohort matrix (Fader & Hardie
        2007, eq. 7) to the expected disclosures of McCarthy, Fader & Hardie (2017) and McCarthy &
        Fader (2018); pinned by tests/test_disclosure_model.py::test_expected_series_match_a_simulation_of_customers,
        tests/test_disclosure_model.py::test_numpy_and_pytensor_backends_agree and
        tests/test_disclosure_model.py::test_parameters_are_recovered_from_simulated_disclosures."""
        n = design.n_periods
        season_labels = [f"{'Q' if design.seasons.shape[1] == 3 else 'M'}{k}" for k in range(2, design.seasons.shape[1] + 2)]
        coords = {"period": [str(p) for p in design.periods], "season_label": season_labels,
                  "series": list(design.observed)}
        ages, mask = cohort_ages(n)
        with pm.Model(coords=coords) as model:
            if self.market.known:
                market = pt.as_tensor_variable(np.float64(self.market.median))
            else:
                log_m = pm.Normal("log_M", mu=math.log(self.market.median), sigma=self.market.log_sd)
                market = pm.Deterministic("M", pt.exp(log_m))
            # sampled as the eventual adopters' share and the first period's acquisition rate
            # h1 = M (1 - pi) lam (what the early data pin down), not as (pi, lam): a ridge
            share = self._prior("share", "share")
            log_h1 = pm.Normal("log_h1", mu=math.log(design.scale), sigma=self.priors["h1"].kwargs["sigma"])
            pi = pm.Deterministic("pi", 1.0 - share)
            lam = pm.Deterministic("lam", pt.exp(log_h1) / (market * share))
            pm.Deterministic("ultimate_adopters", market * share)
            c = self._prior("c", "c")
            eta = pt.zeros(n)
            if design.log_marketing is not None:
                beta = self._prior("beta", "beta_marketing")
                eta = eta + beta * pt.as_tensor_variable(design.covariate(design.log_marketing))
            if self.acquisition_seasonality:
                season = self._prior("season", "season", dims="season_label")
                eta = eta + pt.dot(pt.as_tensor_variable(design.seasons), season)
            t = pt.as_tensor_variable(np.arange(1, n + 1, dtype=float))
            log_s0 = log_survival(pt, "weibull", cumulative_exposure(pt, t, c, eta), {"lam": lam})
            log_p, _ = period_log_probs(pt, log_s0, pi)
            acquired = pm.Deterministic("acquired", market * pt.exp(log_p), dims="period")
            churn, kappa = self._prior("churn", "churn"), self._prior("kappa", "kappa")
            c_ret = self._prior("c_ret", "c_ret") if self.retention == "bdw" else None
            surv = survivor(PYTENSOR_BACKEND, churn, kappa, c_ret, ages)
            rate, shape = pt.zeros(n), pt.as_tensor_variable(1.0)
            if self.setting == "noncontractual":
                m, shape = self._prior("m", "m"), self._prior("r", "r")
                g = self._prior("purchase_season", "purchase_season", dims="season_label")
                rate = m * pt.exp(pt.dot(pt.as_tensor_variable(design.seasons), g))
            spend = pt.ones(n)
            if "revenue" in design.observed:
                z = self._prior("z", "z")
                delta = self._prior("delta", "delta")
                h = self._prior("spend_season", "spend_season", dims="season_label")
                pm.Deterministic("spend_level", design.spend_ref * pt.exp(z))
                trend = np.arange(n, dtype=float) - (n - 1) / 2.0
                spend = design.spend_ref * pt.exp(z + delta * trend + pt.dot(pt.as_tensor_variable(design.seasons), h))
            means = expected_series(PYTENSOR_BACKEND, str(self.setting), design.cohort_sizes(acquired, pt), surv, mask, rate,
                                    shape, spend)
            means["new_customers"] = acquired
            sigma = self._prior("sigma", "sigma", dims="series")
            rho = self._prior("rho", "rho", dims="series")
            for k, (series, values) in enumerate(design.observed.items()):
                first, follow, prev = ar1_terms(values)
                mu = means[series]
                scale = sigma[k] * pt.abs(mu) + 1e-9
                # a run's first report: the stationary relative error sigma / sqrt(1 - rho^2)
                pm.Normal(f"{series}_first", mu=mu[first], sigma=scale[first] / pt.sqrt(1.0 - rho[k] ** 2),
                          observed=values[first])
                if follow.size:  # each later report: mu (1 + rho e_{t-1}), e the previous relative error
                    lagged = values[prev] / mu[prev] - 1.0
                    pm.Normal(series, mu=mu[follow] * (1.0 + rho[k] * lagged), sigma=scale[follow],
                              observed=values[follow])
        return model

    def fit(self, table: pd.DataFrame, settings: SamplerSettings | None = None) -> az.InferenceData:
        """Fit to a disclosures table (a contiguous PeriodIndex; the series as columns, NaN where
        not reported; ``marketing_spend`` for the covariate) and keep the posterior."""
        settings = settings or SamplerSettings()
        series = [s for s in table.columns if np.isfinite(table[s].to_numpy(dtype=float)).any()]
        self.setting = self.setting or choose_setting(series)
        marketing = self.marketing if self.marketing is not None else COVARIATE in series
        design = prepare_design(table, self.setting, marketing)
        self.design = design
        model = self.build_model(design)
        start = time.perf_counter()
        idata, _ = sample_model(model, settings, init=settings.init)
        seconds = time.perf_counter() - start
        idata.attrs.update({
            "cbcv_model": self.name, "method": settings.method, "setting": self.setting, "retention": self.retention,
            "market": dumps_strict(self.market.to_dict(), indent=None),
            "acquisition_seasonality": int(self.acquisition_seasonality),
            "settings": dumps_strict(asdict(settings), indent=None),
            "priors": dumps_strict({k: v.to_dict() for k, v in self.priors.items()}, indent=None),
            "table": dumps_strict(_table_record(table), indent=None), "marketing": int(marketing),
            "n_periods": design.n_periods, "fit_seconds": float(seconds),
        })
        record_checks(idata.attrs, [])
        self.idata = idata
        return idata

    # -- posterior ------------------------------------------------------------------------
    def _require_fit(self) -> tuple[az.InferenceData, DisclosureDesign]:
        if self.idata is None or self.design is None:
            raise ConfigError("disclosures: the model has not been fitted")
        return self.idata, self.design

    def draws(self, max_draws: int | None = None, seed: int | None = 0) -> dict[str, np.ndarray]:
        """Posterior draws flattened over chains (thinned at random to ``max_draws``)."""
        idata, _ = self._require_fit()
        post = idata.posterior
        n = post.sizes["chain"] * post.sizes["draw"]
        out = {str(k): post[k].values.reshape(n, *post[k].shape[2:]) for k in post.data_vars}
        if max_draws is not None and max_draws < n:
            keep = np.sort(np.random.default_rng(seed).choice(n, size=max_draws, replace=False))
            out = {k: v[keep] for k, v in out.items()}
        return out

    def summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Per parameter: mean, sd, hdi low/high (and r_hat, ESS for NUTS fits)."""
        idata, _ = self._require_fit()
        names = [n for n in self.param_names if n in idata.posterior]
        if idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] == 1:
            rows: dict[str, float] = {}
            for name in names:
                arr = idata.posterior[name]
                values = arr.values.reshape(-1)
                labels = [name] if arr.ndim == 2 else [f"{name}[{k}]" for k in arr.coords[arr.dims[-1]].values]
                rows.update(dict(zip(labels, values, strict=True)))
            return pd.DataFrame({"mean": pd.Series(rows, dtype=float)})
        return posterior_summary(idata, names, hdi_prob)

    def divergences(self) -> int:
        return count_divergences(self._require_fit()[0])

    def verdict(self) -> FitVerdict:
        """The fit's diagnostics verdict (:func:`cbcv.models.base.posterior_verdict`)."""
        idata, _ = self._require_fit()
        return posterior_verdict(self.name, idata, [n for n in self.param_names if n in idata.posterior])

    # -- predictions ----------------------------------------------------------------------
    def cohort_paths(
        self, horizon: int = 0, future_marketing: np.ndarray | None = None, *, tail: int = 0,
        churn_factor: float = 1.0, max_draws: int | None = None, seed: int | None = 0,
    ) -> CohortPaths:
        """Per draw, the cohort sizes and every period's expected series over the fitted periods,
        ``horizon`` more with acquisitions and ``tail`` more without (the customers acquired by
        then, running off), split into the customers acquired by the last fitted period
        (``existing``) and those acquired after it (``future``). ``future_marketing``: the
        marketing spend of each of the ``horizon`` periods (needed when the fit used the
        covariate); ``churn_factor`` multiplies every customer's churn probability (a
        sensitivity: ``a / (a + b)`` scaled at the same ``a + b``).

        Future acquisitions continue the fitted curve: ``A_{T+h} = M p_{T+h}``, the expected
        acquisitions given each draw's parameters (the expectation conditional on the history
        differs only by the realised acquisitions to date, which are latent here)."""
        _, design = self._require_fit()
        if horizon < 0 or tail < 0:
            raise ConfigError(f"disclosures: horizon and tail must be >= 0, got {horizon} and {tail}")
        if not 0 < churn_factor < np.inf:
            raise ConfigError(f"disclosures: churn_factor must be positive, got {churn_factor}")
        d = self.draws(max_draws, seed)
        n_hist = design.n_periods
        total = n_hist + horizon + tail
        periods = pd.period_range(design.periods[0], periods=total, freq=design.periods.freq)
        x = np.zeros(n_hist + horizon)
        if design.log_marketing is not None:
            if horizon and (future_marketing is None or len(future_marketing) != horizon):
                raise DataError(f"disclosures: the forecast needs marketing spend for each of its {horizon} period(s)")
            fut = np.asarray(future_marketing if horizon else [], dtype=float)
            if horizon and not (np.isfinite(fut).all() and (fut > 0).all()):
                raise DataError("disclosures: future marketing spend must be positive")
            x = design.covariate(np.concatenate([design.log_marketing, np.log(fut)]))
        seasons = season_design(periods)
        acquired = self._acquisitions(d, x, seasons[: n_hist + horizon])
        acquired[:, :n_hist] = design.cohort_sizes(acquired[:, :n_hist])
        acquired = np.concatenate([acquired, np.zeros((acquired.shape[0], tail))], axis=1)
        is_old = (np.arange(total) < n_hist).astype(float)
        parts: dict[str, dict[str, list[np.ndarray]]] = {"existing": {}, "future": {}}
        ages, mask = cohort_ages(total)
        n = acquired.shape[0]
        step = max(1, PATH_CELLS // (total * total))
        for lo in range(0, n, step):
            chunk = {k: v[lo:lo + step] for k, v in d.items()}
            surv, rate, shape, spend = self._period_terms(chunk, ages, seasons, n_hist, churn_factor)
            for key, weight in (("existing", is_old), ("future", 1.0 - is_old)):
                series = expected_series(NUMPY_BACKEND, str(self.setting), acquired[lo:lo + step] * weight, surv, mask,
                                         rate, shape, spend)
                for name, values in series.items():
                    parts[key].setdefault(name, []).append(values)
        joined = {k: {name: np.concatenate(v, axis=0) for name, v in part.items()} for k, part in parts.items()}
        rho = d["rho"] if "rho" in d else np.zeros_like(d["sigma"])
        sigma = {s: d["sigma"][:, k] / np.sqrt(1.0 - rho[:, k] ** 2) for k, s in enumerate(design.observed)}
        return CohortPaths(periods, n_hist, acquired, joined["existing"], joined["future"], sigma, str(self.setting))

    def cohort_matrix(self, *, max_draws: int | None = 1000, seed: int | None = 0) -> pd.DataFrame:
        """The latent cohort matrix over the fitted periods, posterior mean: one row per
        (``period``, ``cohort``) with ``customers`` (``A_c S(t - c)``: subscribed at the end of
        ``t``, or alive in it) — the layer cake recovered from the aggregates."""
        _, design = self._require_fit()
        d = self.draws(max_draws, seed)
        n_hist = design.n_periods
        ages, mask = cohort_ages(n_hist)
        acquired = design.cohort_sizes(self._acquisitions(
            d, design.covariate(design.log_marketing) if design.log_marketing is not None else np.zeros(n_hist),
            design.seasons))
        surv, *_ = self._period_terms(d, ages, design.seasons, n_hist, 1.0)
        cells = (surv * mask * acquired[:, None, :]).mean(axis=0)
        t, c = np.nonzero(mask)
        return pd.DataFrame({"period": design.periods[t], "cohort": design.periods[c], "customers": cells[t, c]})

    def new_customer_revenue(
        self, ages: int, *, churn_factor: float = 1.0, max_draws: int | None = None, seed: int | None = 0,
    ) -> np.ndarray:
        """``(draws, ages)`` expected revenue of one customer acquired in the period after the
        fit, in each period of its life from its acquisition period on (its first order
        included): the payback's cash flows."""
        _, design = self._require_fit()
        if "revenue" not in design.observed:
            raise DataError("disclosures: revenue is not disclosed, so a customer's revenue is not modelled")
        d = self.draws(max_draws, seed)
        n_hist = design.n_periods
        total = n_hist + ages
        periods = pd.period_range(design.periods[0], periods=total, freq=design.periods.freq)
        ages_m, mask = cohort_ages(total)
        one = np.zeros((len(d["pi"]), total))
        one[:, n_hist] = 1.0
        surv, rate, shape, spend = self._period_terms(d, ages_m, season_design(periods), n_hist, churn_factor)
        return expected_series(NUMPY_BACKEND, str(self.setting), one, surv, mask, rate, shape, spend)["revenue"][:, n_hist:]

    def _acquisitions(self, d: Mapping[str, np.ndarray], x: np.ndarray, seasons: np.ndarray) -> np.ndarray:
        """``A_t = M p_t`` per draw for the periods of ``x`` (standardised covariate) and ``seasons``."""
        n = len(d["pi"])
        eta = np.zeros((n, len(x)))
        if "beta_marketing" in d:
            eta = eta + d["beta_marketing"][:, None] * x[None, :]
        if "season" in d:
            eta = eta + d["season"] @ seasons.T
        t = np.arange(1, len(x) + 1, dtype=float)[None, :]
        exposure = cumulative_exposure(np, t, d["c"][:, None], eta)
        log_p, _ = period_log_probs(np, log_survival(np, "weibull", exposure, {"lam": d["lam"][:, None]}),
                                    d["pi"][:, None])
        market = d["M"] if "M" in d else np.full(n, self.market.median)
        return market[:, None] * np.exp(log_p)

    def _period_terms(
        self, d: Mapping[str, np.ndarray], ages: np.ndarray, seasons: np.ndarray, n_hist: int, churn_factor: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The survivor at each cell, the order rate, the gamma shape and the spend per period."""
        n, total = len(d["pi"]), ages.shape[0]
        c_ret = d["c_ret"][:, None, None] if "c_ret" in d else None
        churn = np.clip(d["churn"] * churn_factor, 1e-12, 1 - 1e-12)
        surv = survivor(NUMPY_BACKEND, churn[:, None, None], d["kappa"][:, None, None], c_ret, ages[None])
        rate, shape = np.zeros((n, total)), np.ones((n, 1))
        if self.setting == "noncontractual":
            rate = d["m"][:, None] * np.exp(d["purchase_season"] @ seasons.T)
            shape = d["r"][:, None]
        spend = np.ones((n, total))
        if "z" in d:
            trend = np.arange(total, dtype=float) - (n_hist - 1) / 2.0
            spend = self._design().spend_ref * np.exp(
                d["z"][:, None] + d["delta"][:, None] * trend[None, :] + d["spend_season"] @ seasons.T)
        return surv, rate, shape, spend

    def forecast(
        self, horizon: int, future_marketing: np.ndarray | None = None, *, interval: float = 0.9,
        max_draws: int | None = 1000, seed: int | None = 0,
    ) -> pd.DataFrame:
        """Every modelled series over the fitted periods and ``horizon`` more: one row per
        (series, period) with ``mean``, the ``interval`` of the expectation (``low``, ``high``)
        and of a new report (``pred_low``, ``pred_high``: the relative error included), and
        ``actual`` where reported."""
        paths = self.cohort_paths(horizon, future_marketing, max_draws=max_draws, seed=seed)
        _, design = self._require_fit()
        rng = np.random.default_rng(seed)
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        rows = []
        for series in MODELLED[str(self.setting)]:
            draws = paths.total(series)
            noisy = draws
            if series in paths.sigma:
                noisy = draws * (1.0 + paths.sigma[series][:, None] * rng.standard_normal(draws.shape))
            actual = design.observed.get(series)
            for i, period in enumerate(paths.periods):
                rows.append({
                    "series": series, "period": str(period), "horizon": max(i - paths.n_fitted + 1, 0),
                    "mean": float(draws[:, i].mean()), "low": float(np.quantile(draws[:, i], lo)),
                    "high": float(np.quantile(draws[:, i], hi)), "pred_low": float(np.quantile(noisy[:, i], lo)),
                    "pred_high": float(np.quantile(noisy[:, i], hi)),
                    "actual": float(actual[i]) if actual is not None and i < len(actual) and np.isfinite(actual[i]) else None,
                })
        return pd.DataFrame(rows)

    def retention_curve(self, ages: int, *, interval: float = 0.9) -> pd.DataFrame:
        """``S(k)`` for ``k = 0..ages`` per the posterior: mean and equal-tailed interval."""
        d = self.draws()
        c_ret = d["c_ret"][:, None] if "c_ret" in d else None
        k = np.arange(ages + 1, dtype=float)[None, :]
        s = survivor(NUMPY_BACKEND, d["churn"][:, None], d["kappa"][:, None], c_ret, k)
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        return pd.DataFrame({"age": np.arange(ages + 1), "mean": s.mean(axis=0), "low": np.quantile(s, lo, axis=0),
                             "high": np.quantile(s, hi, axis=0)})

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """The posterior and the fitted table (attrs) as netCDF; :meth:`load` restores it."""
        idata, _ = self._require_fit()
        return write_posterior(idata, path)

    @classmethod
    def load(cls, path: str | Path) -> DisclosureModel:
        idata = read_posterior(path, cls.name)
        attrs = idata.attrs
        priors = recorded_priors(attrs)
        model = cls(MarketSize(**json.loads(attrs["market"])), setting=attrs["setting"], retention=attrs["retention"],
                    marketing=bool(attrs["marketing"]), acquisition_seasonality=bool(attrs["acquisition_seasonality"]),
                    priors=priors)
        table = _table_from_record(json.loads(attrs["table"]))
        model.design = prepare_design(table, str(model.setting), bool(attrs["marketing"]))
        model.idata = idata
        return model


@dataclass(frozen=True)
class CohortPaths:
    """Per draw (rows) and period (columns): the cohort sizes ``acquired`` and the expected series
    of today's customers (``existing``: acquired in the first ``n_fitted`` periods) and of the
    customers acquired after (``future``); ``sigma``: each fitted series' relative error (its
    stationary standard deviation, ``sigma / sqrt(1 - rho^2)``)."""

    periods: pd.PeriodIndex
    n_fitted: int
    acquired: np.ndarray
    existing: dict[str, np.ndarray]
    future: dict[str, np.ndarray]
    sigma: dict[str, np.ndarray]
    setting: str

    def total(self, series: str) -> np.ndarray:
        """Both groups' expected ``series``, ``(draws, periods)``."""
        return self.existing[series] + self.future[series]

    @property
    def n_draws(self) -> int:
        return int(self.acquired.shape[0])


def _table_record(table: pd.DataFrame) -> dict[str, Any]:
    return {"freq": table.index.freqstr, "periods": [str(p) for p in table.index],
            "columns": {c: [None if not np.isfinite(v) else float(v) for v in table[c].to_numpy(dtype=float)]
                        for c in table.columns}}


def _table_from_record(rec: Mapping[str, Any]) -> pd.DataFrame:
    index = pd.PeriodIndex(rec["periods"], freq=rec["freq"])
    return pd.DataFrame({c: np.array([np.nan if v is None else v for v in vals], dtype=float)
                         for c, vals in rec["columns"].items()}, index=index)
