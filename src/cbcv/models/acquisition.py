"""Acquisition of future customers: a Bayesian finite-market model of new customers per period.

The model
---------
A market of ``M`` prospects is open from period 1 (the first row of the input: the firm's
launch, or the first period of its acquisition history). Each prospect

* never becomes a customer with probability ``pi`` (the "never-acquirers" spike);
* otherwise has a time to acquisition with a proportional-hazards Weibull distribution whose
  covariates are constant within a period, so the cumulative hazard to the end of period ``t``
  is ``lam * B(t)`` with

  ``B(t) = sum_{s<=t} [s**c - (s-1)**c] * exp(beta' x_s)``

  (the discrete-period Weibull-with-covariates form of Fader, Hardie & Huang 2004, eq. 3, and
  Schweidel, Fader & Bradlow 2008); with gamma heterogeneity in ``lam`` (shape ``r``, rate
  ``alpha``) the survivor becomes ``(alpha / (alpha + B(t)))**r`` (the "exponential-gamma",
  ``c = 1``, and "Weibull-gamma" cases; Fader, Hardie & Zeithammer 2003, the trial model with a
  never-trier spike, eqs. 4-6).

So ``P(acquired by t) = F(t) = (1 - pi) * F0(t)`` and a prospect's chance of being acquired in
period ``t`` is ``p_t = F(t) - F(t-1)``. This is the structure of the acquisition process in
McCarthy, Fader & Hardie (2017, J. Marketing 81(1), "Valuing Subscription-Based Businesses Using
Publicly Disclosed Customer Data") and McCarthy & Fader (2018, J. Marketing Research 55(5),
"Customer-Based Corporate Valuation for Publicly Traded Noncontractual Firms"): a finite
population of prospects, a share that never adopts, heterogeneity and duration dependence in
the time to acquisition, and time-varying covariates (marketing spend, seasonality, macro
variables) entering through a proportional-hazards term. Their models also let the prospect pool
grow with the population (new prospects start their own clock); this module keeps ``M`` fixed.

Likelihood (``likelihood=``)
----------------------------
* ``"binomial"``: exact when ``M`` is a known whole number. The counts over periods are a
  multinomial draw from ``M`` prospects, written as a chain of binomials on the remaining
  population: ``n_t ~ Binomial(M - C_{t-1}, h_t)`` with ``C_{t-1}`` the customers acquired before
  ``t`` and ``h_t = p_t / (1 - F(t-1))`` the population's acquisition hazard in ``t``.
* ``"poisson"`` (default): ``n_t ~ Poisson(M * p_t)``. Exact if the market size is itself
  Poisson distributed with mean ``M`` (Poissonisation of the multinomial), and otherwise the
  large-``M`` limit of the binomial chain (the two differ by the factor ``1 - p_t`` in the
  variance, negligible when each period acquires a small share of the market). It is the choice
  when ``M`` is uncertain (a prior), where a binomial in an unknown population is awkward.
* ``"negbin"``: ``n_t ~ NegativeBinomial(mean M * p_t, var mean + kappa * mean**2)`` for
  publicly reported series noisier than a Poisson process (restatements, rounding, shocks).

What the data identify
----------------------
The counts inform the number of eventual adopters ``M * (1 - pi)`` (reported as
``ultimate_adopters``) and the timing parameters; ``M`` and ``pi`` separately are identified only
through ``M`` itself: with a known ``M``, ``pi = 1 - ultimate_adopters / M``; with a prior on
``M``, the posterior of ``pi`` trades off against it. Forecasts depend on the identified
quantities only. The ceiling is weakly identified while acquisitions still grow; the priors then
matter and should be reported with the forecast.

Default priors (weakly informative; periods are the data's own unit, e.g. quarters)
-------------------------------------------------------------------------------------
* ``pi ~ Beta(1, 1)``: no view on the never-acquirer share.
* ``lam ~ LogNormal(log 0.1, 1.5)``: the per-period hazard of eventual adopters, 94% between
  about 0.006 and 1.7 (half of them acquired within ~0.4 to ~100 periods).
* ``c ~ LogNormal(0, 0.5)``: Weibull shape centred on the exponential (no duration dependence),
  94% in about (0.39, 2.6).
* ``r ~ LogNormal(0, 1)``, ``alpha ~ LogNormal(log 10, 1.5)``: gamma heterogeneity with mean rate
  ``r / alpha`` around 0.1 per period.
* ``beta ~ Normal(0, 1)`` per covariate, on the covariate standardised to mean 0 and sd 1 over the
  fitted periods (reported as ``beta_std``: a one-sd change multiplies the hazard by
  e^beta_std, 94% within 1/6.6 to 6.6); the posterior also reports ``beta`` in the covariate's
  own units. Because the covariates are centred, ``lam`` (Weibull) and ``alpha`` (gamma
  mixtures) describe the hazard at the covariates' mean over the fitted periods:
  ``lam_at_zero = lam * exp(-beta' xbar)``, ``alpha_at_zero = alpha * exp(beta' xbar)``.
* ``season ~ Normal(0, 0.5)``: log hazard ratio of each quarter/month against the first one.
* ``kappa ~ HalfNormal(0.2)`` (negative binomial only): squared coefficient of variation of the
  extra noise.
* ``M``: a known number, or :class:`MarketSize` (log-normal with a median and a log-sd, truncated
  below at the customers already acquired, since the market contains them).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from cbcv.core.errors import ConfigError, DataError
from cbcv.core.jsonio import dumps_strict
from cbcv.models.acquisition_terms import (
    DEFAULT_PRIORS,
    DISTRIBUTIONS,
    LIKELIHOODS,
    AcquisitionForecast,
    Design,
    Distribution,
    Likelihood,
    MarketSize,
    Seasonality,
    covariate_matrix,
    create_prior,
    cumulative_exposure,
    future_labels,
    log_survival,
    period_log_probs,
    prepare_design,
    season_dummies,
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
from cbcv.models.verdict import record_checks


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
class AcquisitionModel:
    """New customers per period from a finite market (see the module docstring for the model).

    Parameters
    ----------
    market:
        ``M``, the addressable market: a number (known) or a :class:`MarketSize` prior.
    distribution:
        time to acquisition of eventual adopters: ``"weibull"`` (``lam``, ``c``),
        ``"exponential-gamma"`` (``r``, ``alpha``) or ``"weibull-gamma"`` (``r``, ``alpha``, ``c``).
    likelihood:
        ``"poisson"`` (default), ``"negbin"`` or ``"binomial"`` (needs a known ``M``).
    covariates:
        names of covariate columns entering the hazard as ``exp(beta' x_t)``; the future values
        must be given to :meth:`forecast`.
    seasonality:
        ``"quarter"`` or ``"month"`` adds a dummy per season but the first (needs dated periods).
    priors:
        overrides of :data:`DEFAULT_PRIORS` by name (``pi``, ``lam``, ``c``, ``r``, ``alpha``,
        ``beta`` for every covariate, ``season`` for every season dummy, ``kappa``).
    """

    name = "acquisition"

    def __init__(
        self,
        market: float | MarketSize,
        *,
        distribution: Distribution = "weibull",
        likelihood: Likelihood = "poisson",
        covariates: Sequence[str] = (),
        seasonality: Seasonality | None = None,
        priors: Mapping[str, Prior] | None = None,
    ) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"acquisition: distribution must be one of {list(DISTRIBUTIONS)}, got {distribution!r}"
            )
        if likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"acquisition: likelihood must be one of {list(LIKELIHOODS)}, got {likelihood!r}"
            )
        if seasonality is not None and seasonality not in ("quarter", "month"):
            raise ConfigError(
                f"acquisition: seasonality must be 'quarter', 'month' or None, got {seasonality!r}"
            )
        self.market = market if isinstance(market, MarketSize) else MarketSize(float(market))
        if likelihood == "binomial" and not self.market.known:
            raise ConfigError(
                "acquisition: likelihood='binomial' needs a known market size; use 'poisson' with a prior"
            )
        if likelihood == "binomial" and self.market.median != round(self.market.median):
            raise ConfigError(
                f"acquisition: likelihood='binomial' needs a whole market size, got {self.market.median}"
            )
        self.distribution = distribution
        self.likelihood = likelihood
        self.covariates = tuple(covariates)
        if len(set(self.covariates)) != len(self.covariates):
            raise ConfigError(f"acquisition: covariates listed twice in {list(self.covariates)}")
        self.seasonality = seasonality
        unknown = set(priors or {}) - set(DEFAULT_PRIORS)
        if unknown:
            raise ConfigError(
                f"acquisition: unknown prior(s) {sorted(unknown)}; known: {sorted(DEFAULT_PRIORS)}"
            )
        self.priors: dict[str, Prior] = {**DEFAULT_PRIORS, **dict(priors or {})}
        self.design: Design | None = None
        self.idata: az.InferenceData | None = None
        self.fit_seconds: float | None = None

    # -- parameters -----------------------------------------------------------------------
    @property
    def timing_params(self) -> tuple[str, ...]:
        return {
            "weibull": ("lam", "c"),
            "exponential-gamma": ("r", "alpha"),
            "weibull-gamma": ("r", "alpha", "c"),
        }[self.distribution]

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the posterior variables :meth:`summary` reports."""
        names: list[str] = ["pi", *self.timing_params]
        if self.covariates:
            names.extend(["beta_std", "beta"])
        if self.seasonality:
            names.append("season")
        if self.likelihood == "negbin":
            names.append("kappa")
        if not self.market.known:
            names.append("M")
        names.append("ultimate_adopters")
        return tuple(names)

    # -- fitting --------------------------------------------------------------------------
    def build_model(self, design: Design) -> pm.Model:
        """The PyMC model for a prepared history (see the module docstring): the finite-market
        Weibull-gamma trial model with a never-acquirer spike (Fader, Hardie & Zeithammer 2003,
        eqs. 4-6; covariates as in Fader, Hardie & Huang 2004, eq. 3); pinned by
        tests/test_acquisition.py::test_weibull_period_probabilities_hand_worked and
        tests/test_acquisition.py::test_closed_form_matches_individual_simulation."""
        n_periods = len(design.counts)
        coords: dict[str, Any] = {"period": np.arange(n_periods)}
        if self.covariates:
            coords["covariate"] = list(self.covariates)
        if design.season_names:
            coords["season_label"] = list(design.season_names)
        total = int(design.counts.sum())
        with pm.Model(coords=coords) as model:
            if self.market.known:
                pi = create_prior(self.priors["pi"], "pi")
                market = pt.as_tensor_variable(np.float64(self.market.median))
                pm.Deterministic("ultimate_adopters", market * (1.0 - pi))
            else:
                pi, market = self._uncertain_market(total)
            params = {n: create_prior(self.priors[n], n) for n in self.timing_params}
            c = params.get("c", 1.0)
            eta = pt.zeros(n_periods)
            if self.covariates:
                beta_std = create_prior(self.priors["beta"], "beta_std", dims="covariate")
                pm.Deterministic("beta", beta_std / design.x_sd, dims="covariate")
                eta = eta + pt.dot(pt.as_tensor_variable(design.x), beta_std)
            if design.season_names:
                season = create_prior(self.priors["season"], "season", dims="season_label")
                eta = eta + pt.dot(pt.as_tensor_variable(design.seasons), season)
            t = pt.as_tensor_variable(np.arange(1, n_periods + 1, dtype=float))
            log_s0 = log_survival(pt, self.distribution, cumulative_exposure(pt, t, c, eta), params)
            log_p, log_alive_prev = period_log_probs(pt, log_s0, pi)
            mu = pt.exp(pt.log(market) + log_p)
            if self.likelihood == "poisson":
                pm.Poisson("new_customers", mu=mu, observed=design.counts, dims="period")
            elif self.likelihood == "negbin":
                kappa = create_prior(self.priors["kappa"], "kappa")
                pm.NegativeBinomial(
                    "new_customers", mu=mu, alpha=1.0 / kappa, observed=design.counts, dims="period"
                )
            else:
                before = np.concatenate([[0], np.cumsum(design.counts)[:-1]])
                hazard = pt.clip(pt.exp(log_p - log_alive_prev), 0.0, 1.0)
                pm.Binomial(
                    "new_customers",
                    n=int(self.market.median) - before,
                    p=hazard,
                    observed=design.counts,
                    dims="period",
                )
        return model

    def _uncertain_market(self, acquired: int) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """``pi`` and ``M`` when ``M`` has a prior, sampled as eventual adopters ``u = M (1 - pi)``
        and never-acquirers ``e = M pi`` on the log scale.

        The counts pin down ``u``; ``e`` follows the priors. Sampling ``(M, pi)`` directly puts
        the posterior on a curved ridge ``M (1 - pi) = u`` that NUTS crosses slowly and with
        divergences. The joint prior is unchanged: ``p(u, e) = p_M(u + e) p_pi(e / (u + e)) / (u + e)``
        (the Jacobian of ``(u, e) -> (M, pi)`` is ``1 / M``), times ``u e`` for the log scale;
        ``M`` is truncated below at the customers already acquired.
        """
        median = self.market.median
        # flat on the log scale, centred so that the sampler starts at a plausible point
        log_u0 = math.log(max(acquired, 1) * 1.5)
        log_e0 = math.log(max(median - 1.5 * acquired, 0.1 * median))
        log_u = pm.Flat("log_ultimate_adopters_c") + log_u0
        log_e = pm.Flat("log_never_acquirers_c") + log_e0
        u, e = pt.exp(log_u), pt.exp(log_e)
        market = pm.Deterministic("M", u + e)
        pi = pm.Deterministic("pi", e / market)
        pm.Deterministic("ultimate_adopters", u)
        prior_pi = self.priors["pi"]
        pi_dist = getattr(pm, prior_pi.dist).dist(**dict(prior_pi.kwargs))
        m_dist = pm.LogNormal.dist(mu=math.log(median), sigma=self.market.log_sd)
        log_prior = pm.logp(m_dist, market) + pm.logp(pi_dist, pi) - pt.log(market) + log_u + log_e
        pm.Potential("market_prior", pt.switch(pt.ge(market, acquired), log_prior, -np.inf))
        return pi, market

    def fit(
        self, periods: pd.DataFrame, settings: SamplerSettings | None = None
    ) -> az.InferenceData:
        """Fit to an acquisition history and return (and keep) the posterior.

        ``periods``: one row per period in order from the market's opening, with ``period``
        (label: pandas Period, date or integer), ``new_customers`` (whole numbers) and the
        covariate columns. ``settings``: NUTS (default) or MAP, draws, chains, seed.
        """
        settings = settings or SamplerSettings()
        design = prepare_design(periods, self.covariates, self.seasonality)
        total = int(design.counts.sum())
        if self.market.known and total > self.market.median:
            raise DataError(
                f"acquisition: {total} customers acquired in the history exceed the market size {self.market.median:g}"
            )
        model = self.build_model(design)
        start = time.perf_counter()
        idata, _ = sample_model(model, settings)
        self.fit_seconds = time.perf_counter() - start
        idata.attrs.update(
            {
                "cbcv_model": self.name,
                "method": settings.method,
                "settings": dumps_strict(asdict(settings), indent=None),
                "priors": dumps_strict({k: v.to_dict() for k, v in self.priors.items()}, indent=None),
                "market": dumps_strict(self.market.to_dict(), indent=None),
                "distribution": self.distribution,
                "likelihood": self.likelihood,
                "covariates": dumps_strict(list(self.covariates), indent=None),
                "seasonality": self.seasonality or "",
                "n_periods": int(len(design.counts)),
                "n_acquired": total,
                "fit_seconds": float(self.fit_seconds),
            }
        )
        # the history's own checks raise in prepare_design; the customer-data and log-scale
        # boundary checks of the customer models do not apply (covariate effects and the
        # never-acquirer share may rightly be near 0), so none are recorded for the verdict
        record_checks(idata.attrs, [])
        idata.add_groups(constant_data=_history_dataset(periods, design, self.covariates))
        self.design = design
        self.idata = idata
        return idata

    # -- posterior ------------------------------------------------------------------------
    def _require_fit(self) -> tuple[az.InferenceData, Design]:
        if self.idata is None or self.design is None:
            raise ConfigError(f"{self.name}: the model has not been fitted")
        return self.idata, self.design

    def draws(self) -> dict[str, np.ndarray]:
        """Posterior draws flattened over chains: scalars (n,), ``beta_std``/``season`` (n, k), ``M`` (n,)."""
        idata, design = self._require_fit()
        post = idata.posterior
        n = post.sizes["chain"] * post.sizes["draw"]
        out: dict[str, np.ndarray] = {"pi": post["pi"].values.reshape(n)}
        for name in self.timing_params:
            out[name] = post[name].values.reshape(n)
        out["c"] = out["c"] if "c" in out else np.ones(n)
        out["beta_std"] = (
            post["beta_std"].values.reshape(n, -1) if self.covariates else np.zeros((n, 0))
        )
        out["season"] = (
            post["season"].values.reshape(n, -1) if design.season_names else np.zeros((n, 0))
        )
        out["M"] = post["M"].values.reshape(n) if "M" in post else np.full(n, self.market.median)
        if self.likelihood == "negbin":
            out["kappa"] = post["kappa"].values.reshape(n)
        return out

    def summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Per parameter: mean, sd, hdi low/high (and r_hat, ESS for NUTS fits)."""
        idata, _ = self._require_fit()
        if idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] == 1:  # MAP: a point
            rows = {}
            for name in self.param_names:
                values = idata.posterior[name].values.reshape(-1)
                labels = (
                    [name]
                    if idata.posterior[name].ndim == 2
                    else [
                        f"{name}[{k}]"
                        for k in idata.posterior[name].coords[idata.posterior[name].dims[-1]].values
                    ]
                )
                rows.update(dict(zip(labels, values, strict=True)))
            return pd.DataFrame({"mean": pd.Series(rows, dtype=float)})
        return posterior_summary(idata, self.param_names, hdi_prob)

    def log_likelihood(self) -> az.InferenceData:
        """Add the pointwise (per period) log-likelihood to the posterior, for LOO/WAIC
        (``az.loo(model.log_likelihood())``); computed on demand, as it compiles a function."""
        idata, design = self._require_fit()
        if "log_likelihood" not in idata.groups():
            with self.build_model(design):
                pm.compute_log_likelihood(idata, progressbar=False)
        return idata

    def divergences(self) -> int:
        """Divergent NUTS transitions of the fit (:func:`cbcv.models.base.count_divergences`)."""
        return count_divergences(self._require_fit()[0])

    def verdict(self) -> FitVerdict:
        """The fit's diagnostics verdict, as every cbcv model's
        (:func:`cbcv.models.base.posterior_verdict`): pass, warn or fail."""
        return posterior_verdict(self.name, self._require_fit()[0], self.param_names)

    def _curves(
        self, d: Mapping[str, np.ndarray], x: np.ndarray, seasons: np.ndarray
    ) -> np.ndarray:
        """``log S0(t)`` per draw for the periods whose design rows are given: (draws, periods)."""
        eta = d["beta_std"] @ x.T + d["season"] @ seasons.T
        t = np.arange(1, x.shape[0] + 1, dtype=float)[None, :]
        exposure = cumulative_exposure(np, t, d["c"][:, None], eta)
        params = {k: d[k][:, None] for k in self.timing_params}
        return log_survival(np, self.distribution, exposure, params)

    def fitted(self, interval: float = 0.9, seed: int | None = 0) -> pd.DataFrame:
        """In-sample check per period: actual new customers, the posterior mean of the expected
        count under the likelihood, and an equal-tailed posterior predictive interval."""
        _, design = self._require_fit()
        d = self.draws()
        log_s0 = self._curves(d, design.x, design.seasons)
        log_p, log_alive_prev = period_log_probs(np, log_s0, d["pi"][:, None])
        rng = np.random.default_rng(seed)
        if self.likelihood == "binomial":
            before = np.concatenate([[0], np.cumsum(design.counts)[:-1]])
            n = (np.floor(d["M"])[:, None] - before[None, :]).astype(np.int64)
            hazard = np.clip(np.exp(log_p - log_alive_prev), 0.0, 1.0)
            mean = n * hazard
            sims = rng.binomial(n, hazard)
        else:
            mean = d["M"][:, None] * np.exp(log_p)
            sims = self._count_noise(rng, mean, d)
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        return pd.DataFrame(
            {
                "period": design.periods,
                "actual": design.counts,
                "expected": mean.mean(axis=0),
                "low": np.quantile(sims, lo, axis=0),
                "high": np.quantile(sims, hi, axis=0),
            }
        )

    def _count_noise(
        self, rng: np.random.Generator, mean: np.ndarray, d: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        if self.likelihood == "negbin":
            kappa = np.broadcast_to(d["kappa"].reshape(-1, *([1] * (mean.ndim - 1))), mean.shape)
            lam = rng.gamma(1.0 / kappa, kappa * mean)
            return rng.poisson(lam)
        return rng.poisson(mean)

    # -- forecasting ----------------------------------------------------------------------
    def _future_design(
        self, horizon: int, future_covariates: pd.DataFrame | None
    ) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        _, design = self._require_fit()
        labels = future_labels(design.periods, horizon)
        if self.covariates:
            if future_covariates is None:
                raise DataError(
                    f"acquisition: forecast needs future values of covariate(s) {list(self.covariates)} "
                    f"for {horizon} period(s)"
                )
            missing = [c for c in self.covariates if c not in future_covariates.columns]
            if missing:
                raise DataError(f"acquisition: future_covariates lack column(s) {missing}")
            if len(future_covariates) != horizon:
                raise DataError(
                    f"acquisition: future_covariates has {len(future_covariates)} row(s); the horizon is {horizon}"
                )
            raw = covariate_matrix(future_covariates, self.covariates, "future_covariates")
            x = (raw - design.x_mean) / design.x_sd
        else:
            x = np.zeros((horizon, 0))
        if self.seasonality:
            if isinstance(labels.dtype, pd.PeriodDtype) or pd.api.types.is_datetime64_any_dtype(
                labels.dtype
            ):
                seasons, _ = season_dummies(labels, self.seasonality)
            else:
                raise ConfigError(
                    "acquisition: cannot tell the seasons of the future periods; give 'period' as pandas "
                    "Periods or regularly spaced dates"
                )
        else:
            seasons = np.zeros((horizon, 0))
        return labels, x, seasons

    def forecast(
        self,
        horizon: int,
        future_covariates: pd.DataFrame | None = None,
        *,
        interval: float = 0.9,
        seed: int | None = 0,
        max_draws: int | None = None,
    ) -> AcquisitionForecast:
        """Forecast the ``horizon`` periods after the history, per posterior draw.

        Conditional on the history, the ``M - C_T`` prospects not yet acquired are subject,
        period by period, to the population hazard ``h_t = p_t / (1 - F(t-1))``: the expected
        count in ``T + h`` is ``(M - C_T) * p_{T+h} / (1 - F(T))``. Simulated counts are drawn on
        the remaining market from the fitted likelihood's family (binomial for ``binomial`` and
        ``poisson``, whose large-market limit it is; a gamma-Poisson for ``negbin``), capped at
        what remains, so cumulative acquisitions never exceed ``M``.

        ``future_covariates``: ``horizon`` rows with the covariate columns (in their own units).
        """
        if not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ConfigError(
                f"acquisition: horizon must be a positive whole number of periods, got {horizon!r}"
            )
        if not 0 < interval < 1:
            raise ConfigError(f"acquisition: interval must be in (0, 1), got {interval!r}")
        _, design = self._require_fit()
        labels, x_future, s_future = self._future_design(int(horizon), future_covariates)
        d = self.draws()
        n_all = len(d["pi"])
        if max_draws is not None and max_draws < n_all:
            keep = np.random.default_rng(seed).choice(n_all, size=max_draws, replace=False)
            d = {k: v[keep] for k, v in d.items()}
        x_all = np.vstack([design.x, x_future])
        s_all = np.vstack([design.seasons, s_future])
        log_s0 = self._curves(d, x_all, s_all)
        pi = d["pi"][:, None]
        log_p, log_alive_prev = period_log_probs(np, log_s0, pi)
        n_hist = len(design.counts)
        hazard = np.clip(np.exp(log_p - log_alive_prev), 0.0, 1.0)[:, n_hist:]
        acquired = int(design.counts.sum())
        market = np.floor(d["M"])
        remaining0 = np.maximum(market - acquired, 0.0)
        # expected: (M - C_T) * p_{T+h} / (1 - F(T)); 1 - F(T) = alive probability before T+1
        expected = remaining0[:, None] * np.exp(log_p[:, n_hist:] - log_alive_prev[:, [n_hist]])
        rng = np.random.default_rng(seed)
        new = np.zeros_like(expected)
        remaining = remaining0.astype(np.int64)
        for h in range(int(horizon)):
            if self.likelihood == "negbin":
                draw = self._count_noise(rng, remaining * hazard[:, h], d)
            else:
                draw = rng.binomial(remaining, hazard[:, h])
            draw = np.minimum(draw, remaining)
            new[:, h] = draw
            remaining = remaining - draw
        cumulative = acquired + np.cumsum(new, axis=1)
        left = market[:, None] - cumulative
        cols = labels
        frames = {
            "new_customers": pd.DataFrame(new, columns=cols),
            "expected": pd.DataFrame(expected, columns=cols),
            "cumulative": pd.DataFrame(cumulative, columns=cols),
            "remaining": pd.DataFrame(left, columns=cols),
        }
        for f in frames.values():
            f.index.name = "draw"
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        summary = pd.DataFrame({"period": labels, "horizon": np.arange(1, int(horizon) + 1)})
        for key, arr in (
            ("new", new),
            ("expected", expected),
            ("cumulative", cumulative),
            ("remaining", left),
        ):
            summary[f"{key}_mean"] = arr.mean(axis=0)
            summary[f"{key}_low"] = np.quantile(arr, lo, axis=0)
            summary[f"{key}_high"] = np.quantile(arr, hi, axis=0)
        return AcquisitionForecast(periods=labels, summary=summary, interval=interval, **frames)

    def save(self, path: str | Path) -> Path:
        """Save the posterior, the fitted history (``constant_data``) and the model's settings
        (attrs) as netCDF; :meth:`load` restores a model that forecasts like this one."""
        idata, _ = self._require_fit()
        return write_posterior(idata, path)

    @classmethod
    def load(cls, path: str | Path) -> AcquisitionModel:
        """A fitted model from a file written by :meth:`save`."""
        idata = read_posterior(path, cls.name, groups=("constant_data",))
        attrs = idata.attrs
        priors = recorded_priors(attrs)
        model = cls(
            MarketSize(**json.loads(attrs["market"])),
            distribution=attrs["distribution"],
            likelihood=attrs["likelihood"],
            covariates=json.loads(attrs["covariates"]),
            seasonality=attrs["seasonality"] or None,
            priors=priors,
        )
        history = _history_frame(idata.constant_data, model.covariates)
        model.design = prepare_design(history, model.covariates, model.seasonality)
        model.idata = idata
        model.fit_seconds = float(attrs.get("fit_seconds", float("nan")))
        return model


def _history_dataset(
    periods: pd.DataFrame, design: Design, covariates: Sequence[str]
) -> xr.Dataset:
    """The fitted history as a netCDF-friendly dataset (period labels kept with their kind)."""
    labels = design.periods
    attrs: dict[str, str] = {}
    if isinstance(labels.dtype, pd.PeriodDtype):
        values: np.ndarray = np.asarray(labels.astype(str))
        attrs["period_freq"] = labels.freqstr
    elif pd.api.types.is_datetime64_any_dtype(labels.dtype) or pd.api.types.is_integer_dtype(
        labels.dtype
    ):
        values = np.asarray(labels)
    else:
        values = np.asarray(labels.astype(str))
    data = {
        "period_label": ("period", values),
        "new_customers": ("period", design.counts),
    }
    for name in covariates:
        data[f"covariate_{name}"] = ("period", periods[name].to_numpy(dtype=float))
    return xr.Dataset(data, coords={"period": np.arange(len(labels))}, attrs=attrs)


def _history_frame(ds: xr.Dataset, covariates: Sequence[str]) -> pd.DataFrame:
    values = ds["period_label"].values
    if "period_freq" in ds.attrs:
        labels: Any = pd.PeriodIndex(
            [pd.Period(str(v), freq=ds.attrs["period_freq"]) for v in values]
        )
    else:
        labels = values
    frame = pd.DataFrame({"period": labels, "new_customers": ds["new_customers"].values})
    for name in covariates:
        frame[name] = ds[f"covariate_{name}"].values
    return frame


def compare_holdout(forecast: AcquisitionForecast, actual: pd.DataFrame) -> pd.DataFrame:
    """Forecast against actual new customers for the holdout periods both have.

    ``actual``: ``period``, ``new_customers``. Returns per period: actual, predicted mean,
    the forecast's interval, whether the actual lies inside it, and the error in percent.
    """
    missing = [c for c in ("period", "new_customers") if c not in actual.columns]
    if missing:
        raise DataError(f"acquisition: holdout data lack column(s) {missing}")
    s = forecast.summary.set_index("period")
    a = actual.set_index("period")["new_customers"].astype(float)
    common = [p for p in s.index if p in a.index]
    if not common:
        raise DataError("acquisition: no holdout period matches a forecast period")
    out = pd.DataFrame(
        {
            "period": common,
            "actual": a.loc[common].to_numpy(),
            "predicted": s.loc[common, "new_mean"].to_numpy(),
            "low": s.loc[common, "new_low"].to_numpy(),
            "high": s.loc[common, "new_high"].to_numpy(),
        }
    )
    out["inside"] = (out["actual"] >= out["low"]) & (out["actual"] <= out["high"])
    out["error_pct"] = (
        100.0 * (out["predicted"] - out["actual"]) / out["actual"].where(out["actual"] != 0)
    )
    return out


