"""A company's valuation from its config: the glue behind ``cbcv value CONFIG --out DIR``.

Steps (every one reuses a tested piece; no statistics of its own):

1. load the config (its ``financials`` are required) and the transaction log;
2. fit the configured summary models to the calibration period
   (:func:`cbcv.pipeline.workflow.fit_company_models`);
3. pick the purchase model: with a holdout period and several frequency models, the one that
   :func:`cbcv.valuation.holdout.choose_default` prefers; otherwise the first one configured;
   then refit every model on all data to the valuation date
   (:attr:`cbcv.config.CompanyConfig.valuation_date`, :func:`valuation_fits`): validate, then
   refit, then value. Every later step (CLV, acquisitions, revenue forecast, unit economics)
   is as of that date;
4. draw the financial inputs, one per posterior draw (:func:`cbcv.valuation.inputs.draw_financials`);
5. existing customer equity = total residual CLV per draw, every customer scored
   (:meth:`cbcv.pipeline.company_data.CompanyData.score`, margin and discount rate per draw);
6. future customer equity from the acquisition model when the acquisition history has at
   least :data:`MIN_ACQUISITION_PERIODS` periods with new customers **and** a market size is
   given; otherwise zero, with the reason written into ``valuation.json``. A single acquisition
   cohort (CDNOW: all customers first bought in Q1 1997) identifies no acquisition process, so
   its future customer equity is zero — the value of the existing customers only;
7. the bridge to value per share (:func:`cbcv.valuation.bridge.value_bridge`), written as
   ``valuation.json``.

Whatever the size, every data-side input comes from the one seam
(:class:`cbcv.pipeline.company_data.CompanyData`): fits on counted summaries, CLV scored to
Parquet, acquisitions from the first purchases in the summary file, and the sensitivities and
revenue forecast over the valuation units (distinct summaries weighted by their customers).

CLV at acquisition of a future customer (step 6) is ``margin × (E[first spend] + p γ / (q − 1) ×
DERT(x=0, t_x=0, T=0))`` per draw: its first purchase, whose mean is estimated from the first
purchases in the data with its posterior uncertainty
(:class:`cbcv.valuation.drivers.FirstPurchaseSpend`), plus the population-mean repeat spend
times the discounted expected repeat transactions of a customer just acquired. The revenue
forecast of future cohorts counts their first purchases in their acquisition period.

With customer covariates (``covariates`` or ``survey`` in the config) every model is fitted with
them, every existing customer is valued at its own, and a future customer is the covariate mix
of the customers acquired in the last year to the valuation date
(:meth:`cbcv.pipeline.company_data.CompanyData.new_customers`): its CLV at acquisition is the
mix's average of each group's, ``margin × (E[first spend] + Σ_g share_g E[spend_g] DERT_g)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv import predict as P
from cbcv.clv import n_model_draws
from cbcv.clv.scoring import DERT_GRID, ScoredBase
from cbcv.config import LoadedConfig, load_config
from cbcv.core.cache import atomic_write_json
from cbcv.core.discount import continuous_rate
from cbcv.core.errors import ConfigError
from cbcv.core.units import PANDAS_FREQ, horizon_periods
from cbcv.models.base import CLVModel, SamplerSettings
from cbcv.models.verdict import combined_diagnostics
from cbcv.pipeline.company_data import CompanyData
from cbcv.valuation.acquisition import (
    MIN_ACQUISITION_PERIODS,
    AcquisitionModel,
    MarketSize,
    active_periods,
)
from cbcv.valuation.bridge import ValuationResult, value_bridge
from cbcv.valuation.drivers import (
    NewCustomers,
    UnitEconomics,
    dert_function,
    existing_revenue_by_period,
    new_customer_dert_function,
    new_customer_revenue_by_age,
    population_spend,
    unit_economics,
)
from cbcv.valuation.equity import (
    FutureEquity,
    RevenueLayers,
    future_customer_equity,
    revenue_layers,
)
from cbcv.valuation.holdout import customer_weights
from cbcv.valuation.inputs import FinancialDraws, draw_financials
from cbcv.valuation.sensitivity import ValuationModel, elasticities, scenarios, tornado


@dataclass(frozen=True)
class CompanyValuation:
    """Everything ``valuation.json`` reports, with the arrays behind it."""

    result: ValuationResult
    clv: ScoredBase
    financials: FinancialDraws
    purchase_model: str
    choice_reason: str
    future: FutureEquity | None
    future_note: str
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensitivity: ValuationModel | None = None
    tornado: pd.DataFrame | None = None
    elasticities: pd.DataFrame | None = None
    scenarios: pd.DataFrame | None = None
    revenue: RevenueLayers | None = None
    unit_economics: UnitEconomics | None = None
    source: str = ""
    valuation_date: dt.date | None = None
    data_window: tuple[dt.date | None, dt.date] | None = None
    calibration_end: dt.date | None = None
    new_customers: NewCustomers | None = None

    def diagnostics(self) -> dict[str, Any]:
        """The verdict over every fit behind the valuation (:func:`cbcv.models.verdict.combined_diagnostics`):
        ``status`` pass/warn/fail, ``reasons`` and the verdict of each model."""
        return combined_diagnostics({k: r.get("diagnostics", {}) for k, r in self.models.items()})

    def diagnostics_problems(self) -> list[str]:
        """The diagnostics gate's findings over every fit (empty when all pass)."""
        return list(self.diagnostics()["problems"])

    def to_json_dict(self) -> dict[str, Any]:
        first, last = self.data_window or (None, None)
        out: dict[str, Any] = {
            "valuation_date": iso_day(self.valuation_date),
            "data_window": {"first_day": iso_day(first), "last_day": iso_day(last),
                            "calibration_end": iso_day(self.calibration_end)},
        }
        out.update(self.result.to_json_dict())
        out["models"] = {
            "purchase": self.purchase_model,
            "spend": "gamma_gamma",
            "choice_reason": self.choice_reason,
            "source": self.source,
            "fits": {
                k: {"method": r["method"], "n_customers": r["n_customers"], "divergences": r["divergences"],
                    "diagnostics_status": r["diagnostics"].get("status"),
                    "diagnostics_ok": r["diagnostics"]["ok"], "problems": r["diagnostics"]["problems"]}
                for k, r in self.models.items()
            },
            "n_draws": self.result.n_draws,
            "pairing": self.clv.meta.get("pairing"),
        }
        out["diagnostics"] = self.diagnostics()
        out["existing_customers"] = {
            "customers": self.clv.n_customers,
            **{k: float(v) for k, v in self.clv.summary().loc["clv_per_customer"].items()},
        }
        out["future_customers"] = {"included": self.future is not None, "note": self.future_note}
        if self.new_customers is not None and len(self.new_customers.frame) > 1:
            out["future_customers"]["covariate_mix"] = {"basis": self.new_customers.basis,
                                                        "rows": list(json_records(self.new_customers.table()).values())}
        out["financial_inputs"] = {
            name: {k: float(v) for k, v in row.items()} for name, row in self.financials.summary().iterrows()
        }
        if self.unit_economics is not None:
            out["unit_economics"] = self.unit_economics.to_json_dict(self.result.interval)
        if self.tornado is not None:
            out["tornado"] = json_records(self.tornado)
        if self.elasticities is not None:
            out["elasticities"] = json_records(self.elasticities)
        if self.scenarios is not None:
            out["scenarios"] = json_records(self.scenarios)
        if self.revenue is not None:
            out["revenue_forecast"] = {
                "unit": self.unit_economics.period if self.unit_economics else None,
                "periods": [str(p) for p in self.revenue.periods],
                "mean_by_layer": {str(k): [float(v) for v in col] for k, col in self.revenue.mean_table().items()},
            }
        out["assumptions_note"] = self.result.conventions.get("assumptions_note")
        return out


def iso_day(day: dt.date | None) -> str | None:
    """A day as ISO text for ``valuation.json`` (None stays None)."""
    return day.isoformat() if day is not None else None


def json_records(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """A table by row label with JSON-safe numbers (NaN and inf become null)."""
    out: dict[str, dict[str, Any]] = {}
    for k, row in table.iterrows():
        out[str(k)] = {
            c: (float(v) if np.isfinite(float(v)) else None) if isinstance(v, int | float | np.number) else v
            for c, v in row.items()
        }
    return out


def choose_purchase_model(frequency: dict[str, CLVModel], summary: pd.DataFrame) -> tuple[str, str]:
    """The purchase model to value with, and why (see the module docstring, step 3)."""
    if not frequency:
        raise ConfigError("models: a valuation needs a purchase model (bgnbd, mbgnbd or pareto_nbd)")
    names = list(frequency)
    if len(names) == 1:
        return names[0], "the only purchase model configured"
    if "x_holdout" not in summary:
        return names[0], "no holdout period to compare the models: the first one configured"
    from cbcv.valuation import holdout as V

    return V.choose_default(V.compare_models(frequency, summary))


def _to_draws(arr: np.ndarray, n: int) -> np.ndarray:
    """Rows of a (draws, periods) array repeated or cut to ``n`` draws."""
    return arr[np.arange(n) % arr.shape[0]]


def future_equity(
    history: pd.DataFrame,
    freq_model: CLVModel,
    spend_model: CLVModel,
    fin: FinancialDraws,
    *,
    time_unit: str,
    period: str,
    market: MarketSize | float | None,
    settings: SamplerSettings,
    terminal: str = "none",
    terminal_growth: float = 0.0,
    first_spend: Any = 0.0,
    seasonality: bool = False,
    new: NewCustomers | None = None,
) -> tuple[FutureEquity | None, str, np.ndarray | None]:
    """Future customer equity, or ``None`` and the reason it is left out (step 6), and the
    ``(draws, periods)`` forecast acquisitions (``None`` without future customers). ``history``:
    new customers per ``period`` (:func:`acquisition_history`); ``first_spend``: the expected
    spend of a new customer's first purchase (scalar or ``(draws,)``); ``new``: the covariate mix
    new customers arrive with (:meth:`CompanyData.new_customers`; none without covariates)."""
    active = active_periods(history)
    if active < MIN_ACQUISITION_PERIODS:
        return None, (
            f"future customers valued at zero: the acquisition history has {active} {period}(s) with new "
            f"customers (at least {MIN_ACQUISITION_PERIODS} are needed to fit an acquisition model); "
            "the value is that of the existing customers only"
        ), None
    if market is None:
        return None, (
            "future customers valued at zero: no market size (financials.market_size) was given for the "
            "acquisition model; the value is that of the existing customers only"
        ), None
    n = fin.n_draws
    model = acquisition_model(market, period, seasonality)
    model.fit(history, settings)
    steps = horizon_periods(fin.horizon_years, period)
    expected = _to_draws(model.forecast(steps, seed=0).expected.to_numpy(), n)
    new = new if new is not None else NewCustomers()
    delta = np.broadcast_to(continuous_rate(fin.discount_rate, time_unit), (n,))
    clv_new = fin.contribution_margin * (
        np.broadcast_to(np.asarray(first_spend, dtype=float), (n,)) + new.repeat_value(freq_model, spend_model, delta, n)
    )
    fe = future_customer_equity(
        expected, clv_new, fin.acquisition_cost, fin.discount_rate, unit=period,
        terminal=terminal, terminal_growth=terminal_growth,  # type: ignore[arg-type]
    )
    return fe, (
        f"future customers from an acquisition model ({model.distribution}, market {model.market.to_dict()}) "
        f"fitted to {len(history)} {period}s, over {steps} {period}s"
    ), expected


#: Shocks of the tornado chart: each input at 90% and 110% of its value.
TORNADO_STEP = 0.10
#: Posterior draws used for the period-by-period revenue forecast (a chart; the value itself
#: uses every draw up to ``max_draws``).
REVENUE_DRAWS = 200
#: Posterior draws (evenly thinned, each paired with a fresh draw of the financial inputs) used
#: for the tornado, elasticities and scenarios: each shock recomputes DERT for every customer,
#: and all shocks share these draws, so their differences carry no Monte Carlo noise.
SENSITIVITY_DRAWS = 250
#: Largest (draws × customers or valuation units) array of the sensitivities and the revenue
#: forecast: beyond it they use fewer draws (at least 2), so memory stays bounded.
UNIT_ELEMENTS = 2**24


def market_size(fin_cfg: Any) -> MarketSize | None:
    """The config's ``financials.market_size`` as the acquisition model's :class:`MarketSize`."""
    m = fin_cfg.market_size
    return None if m is None else MarketSize(m.median, m.log_sd)


def acquisition_model(market: MarketSize | float, period: str, seasonal: bool) -> AcquisitionModel:
    """The (unfitted) acquisition model of future customers: a hazard ratio per ``period`` of the
    year when ``seasonal`` (``financials.acquisition_seasonality``)."""
    return AcquisitionModel(market, seasonality=period if seasonal else None)  # type: ignore[arg-type]


def value_loaded(
    loaded: LoadedConfig,
    *,
    result: CompanyData | None = None,
    run_dir: str | Path | None = None,
    market: MarketSize | float | None = None,
    max_draws: int | None = 1000,
    progress: Any = None,
) -> CompanyValuation:
    """Value the company a loaded config describes (module docstring, steps 2-7), with the
    sensitivities (tornado, elasticities, the config's scenarios), the forward revenue by layer
    and the unit economics of a new customer. ``run_dir``: reuse the posteriors that notebook 02
    saved there (:func:`company_models`); ``market`` overrides ``financials.market_size``;
    ``result``: the company's data (:func:`cbcv.pipeline.workflow.load_company` by default)."""
    from cbcv.pipeline.workflow import fit_record, load_company, sampler_settings

    cfg = loaded.config
    if cfg.financials is None:
        raise ConfigError(
            f"{loaded.path}: financials: required for a valuation (contribution_margin, discount_rate, "
            "shares_outstanding at least)"
        )
    if "gamma_gamma" not in cfg.models:
        raise ConfigError(f"{loaded.path}: models: a valuation needs gamma_gamma for the spend per transaction")
    result = result if result is not None else load_company(loaded)
    fits = valuation_fits(loaded, result, run_dir, progress)
    freq, spend, data = fits.freq, fits.spend, fits.data
    n = min(n_model_draws(freq), n_model_draws(spend), max_draws or np.iinfo(np.int64).max)
    fin_cfg = cfg.financials
    fin = draw_financials(fin_cfg, n, seed=cfg.seed)
    unit, period = cfg.time_unit, fin_cfg.acquisition_period
    if progress:
        progress(f"customer lifetime value over {n} draws ...")
    clv = data.score(freq, spend, margin=fin.contribution_margin, rate=fin.discount_rate, n=n)
    first = data.first_purchase_spend()
    first_draws = first.draws(n, seed=cfg.seed)
    new = data.new_customers()
    future, note, acquisitions = future_equity(
        data.acquisition_history(period), freq, spend, fin, time_unit=unit, period=period,
        market=market if market is not None else market_size(fin_cfg),
        settings=sampler_settings(loaded, "acquisition"), terminal=fin_cfg.terminal_value,
        terminal_growth=fin_cfg.terminal_growth, first_spend=first_draws,
        seasonality=fin_cfg.acquisition_seasonality, new=new,
    )
    if future is not None and cfg.has_covariates:
        note += f"; new customers valued at {new.basis}"
    valuation = value_bridge(
        clv.total, future, fin, cost_growth=fin_cfg.cost_growth, capex_deductible=fin_cfg.capex_deductible,
        currency=cfg.company.currency,
    )
    valuation.conventions["assumptions_note"] = fin_cfg.assumptions_note
    valuation.conventions["future_customers"] = note
    if progress:
        progress("sensitivities, scenarios, revenue forecast and unit economics ...")
    units = data.valuation_units()
    weights = customer_weights(units)
    n_s = min(n, SENSITIVITY_DRAWS, max(2, UNIT_ELEMENTS // len(units)))
    thin_s = np.linspace(0, n - 1, n_s).round().astype(int)
    sens = ValuationModel(
        financials=draw_financials(fin_cfg, n_s, seed=cfg.seed),
        dert=dert_function(freq, units, unit, n_s, grid=DERT_GRID),
        spend=P.expected_spend(spend, units, max_draws=n_s) * weights,
        acquisitions=acquisitions[thin_s] if acquisitions is not None else None,
        new_customer_dert=new_customer_dert_function(freq, unit, n_s, new, spend) if acquisitions is not None else None,
        new_customer_spend=population_spend(spend, n_s, new),
        new_customer_first_spend=first_draws[thin_s],
        acquisition_unit=period,
        terminal=fin_cfg.terminal_value,  # type: ignore[arg-type]
        terminal_growth=fin_cfg.terminal_growth,
        bridge_options={"cost_growth": fin_cfg.cost_growth, "capex_deductible": fin_cfg.capex_deductible},
        currency=cfg.company.currency,
    )
    steps = horizon_periods(fin.horizon_years, period)
    n_rev = min(n, REVENUE_DRAWS, max(2, UNIT_ELEMENTS // len(units)))
    thin = np.linspace(0, n - 1, n_rev).round().astype(int)
    existing_rev = existing_revenue_by_period(
        freq, spend, units, period=period, n_periods=steps, time_unit=unit, n_draws=n_rev, weights=weights
    )
    new_rev = new_customer_revenue_by_age(freq, spend, period=period, n_periods=steps, time_unit=unit, n_draws=n_rev,
                                          first_spend=first_draws[thin], new=new)
    acq = acquisitions[thin] if acquisitions is not None else np.zeros((n_rev, 0))
    labels = forecast_periods(fits.valuation_date, period, steps)
    revenue = revenue_layers(existing_rev, new_rev, acq, periods=labels.astype(str),
                             cohort_labels=[f"acquired {p}" for p in labels.astype(str)])
    ue = unit_economics(
        freq, spend, margin=fin.contribution_margin, annual_discount_rate=fin.discount_rate,
        acquisition_cost=fin.acquisition_cost, period=period, horizon_periods=steps, time_unit=unit,
        n_draws=n, currency=cfg.company.currency, first_spend=first_draws, new=new,
    )
    return CompanyValuation(
        result=valuation, clv=clv, financials=fin, purchase_model=fits.purchase_model,
        choice_reason=fits.choice_reason, future=future, future_note=note,
        models={k: fit_record(m) for k, m in fits.models.items()},
        sensitivity=sens, tornado=tornado(sens, step=TORNADO_STEP), elasticities=elasticities(sens),
        scenarios=scenarios(sens, fin_cfg.scenarios), revenue=revenue, unit_economics=ue, source=fits.source,
        valuation_date=fits.valuation_date, data_window=data.data_window,
        calibration_end=fits.calibration_end, new_customers=new,
    )


def forecast_periods(valuation_date: dt.date, period: str, steps: int) -> pd.PeriodIndex:
    """The ``steps`` periods of the forecast: from the first ``period`` that starts after the
    valuation date (the next one when the date ends a period, as 1998-06-30 ends 1998Q2; the one
    after the date's own period otherwise, which the data cover in part)."""
    freq = PANDAS_FREQ[period]
    current = pd.Period(valuation_date, freq=freq)
    return pd.period_range(current + 1, periods=steps)


def write_valuation(valuation: CompanyValuation, loaded: LoadedConfig, out_dir: str | Path) -> Path:
    """Write ``out_dir/valuation.json`` (see :meth:`CompanyValuation.to_json_dict`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "valuation.json"
    record = {"company": loaded.config.company.name, "config": loaded.path.name, **valuation.to_json_dict()}
    return atomic_write_json(path, record)


def value_company(config_path: str | Path, out_dir: str | Path, *, progress: Any = None) -> Path:
    """``cbcv value CONFIG --out DIR``: value the company and write ``DIR/valuation.json``."""
    loaded = load_config(config_path)
    return write_valuation(value_loaded(loaded, progress=progress), loaded, out_dir)


#: Used by :func:`company_clv` when the config has no financials (shown as an assumption).
DEFAULT_CLV_INPUTS = {"contribution_margin": 1.0, "discount_rate": 0.10}


def company_models(
    loaded: LoadedConfig, result: CompanyData, run_dir: str | Path | None = None, progress: Any = None,
    *, folder: str = "models",
) -> tuple[pd.DataFrame, dict[str, CLVModel], str]:
    """The company's counted summary and fitted models (``result``: the company's data,
    :func:`cbcv.pipeline.workflow.load_company`, or its data to the valuation date): the
    posteriors saved under ``run_dir/<folder>/<name>/posterior.nc`` (by notebook 02 /
    ``fit_company_models``) when every configured summary model has one fitted to the same
    summary end, else fresh fits, saved there. Returns the summary, the models by name and where
    they came from."""
    from cbcv.models import SUMMARY_MODELS
    from cbcv.pipeline.workflow import fit_company_models, load_fit

    cfg = loaded.config
    names = [n for n in cfg.models if n in SUMMARY_MODELS]
    end = result.settings.calibration_end.isoformat()
    if run_dir is not None:
        saved = Path(run_dir) / folder
        if all((saved / n / "posterior.nc").is_file() for n in names):
            models: dict[str, CLVModel] = {}
            for n in names:
                model, meta = load_fit(saved / n)
                if meta.get("calibration_end") != end:
                    break
                models[n] = model
            else:
                summary = result.covariate_summaries() if result.covariates is not None else result.counted
                for name, model in models.items():  # the data it was fitted on, for LOO
                    if name in P.FREQUENCY:
                        model.arrays, model.inverse = model.prepare(summary)
                return summary, models, f"posteriors loaded from this run's {folder}/ folder (saved by an earlier notebook)"
    # saved into the run (as notebook 02 does): the next notebook reuses them, and the run's
    # provenance and index see their diagnostics verdict
    fits = fit_company_models(loaded, result, Path(run_dir) / folder if run_dir else None, progress)
    return fits.summary, fits.models, f"fitted now ({cfg.sampler.method})"


@dataclass(frozen=True)
class ValuationFits:
    """Validate, then refit (module docstring, steps 2-3): the purchase model chosen on the
    calibration fits (``calibration_models``, validated on the holdout), and the data and models
    to the valuation date that everything valued uses."""

    purchase_model: str
    choice_reason: str
    calibration_end: dt.date
    calibration_models: dict[str, CLVModel]
    data: CompanyData
    models: dict[str, CLVModel]
    source: str

    @property
    def freq(self) -> CLVModel:
        return self.models[self.purchase_model]

    @property
    def spend(self) -> CLVModel:
        return self.models["gamma_gamma"]

    @property
    def valuation_date(self) -> dt.date:
        return self.data.settings.calibration_end


def valuation_fits(
    loaded: LoadedConfig, result: CompanyData, run_dir: str | Path | None = None, progress: Any = None
) -> ValuationFits:
    """The calibration fits (:func:`company_models`), the purchase model they choose
    (:func:`choose_purchase_model`), and every model refitted on all data to the valuation date
    (saved under ``run_dir/refit/``); the calibration fits themselves when the calibration ends
    at the valuation date without a holdout period."""
    from cbcv.pipeline.workflow import REFIT_DIR

    cfg = loaded.config
    summary, models, source = company_models(loaded, result, run_dir, progress)
    if "gamma_gamma" not in models:
        raise ConfigError(f"{loaded.path}: models: CLV and valuation need gamma_gamma for the spend per transaction")
    name, reason = choose_purchase_model({k: v for k, v in models.items() if k in P.FREQUENCY}, summary)
    data = result.at(cfg.valuation_date)
    refits = models
    if data is not result:
        if progress:
            progress(f"refitting on all data to the valuation date {cfg.valuation_date} ...")
        _, refits, refit_source = company_models(loaded, data, run_dir, progress, folder=REFIT_DIR)
        source = f"calibration fits {source}; refits to {cfg.valuation_date} {refit_source}"
    return ValuationFits(
        purchase_model=name, choice_reason=reason, calibration_end=result.settings.calibration_end,
        calibration_models=models, data=data, models=refits, source=source,
    )


def clv_inputs(loaded: LoadedConfig, n: int) -> tuple[Any, Any, str]:
    """Margin and discount rate per draw (the config's financials, one draw each per posterior
    draw, seeded), or :data:`DEFAULT_CLV_INPUTS` without financials; and the note that says which."""
    cfg = loaded.config
    if cfg.financials is None:
        return (DEFAULT_CLV_INPUTS["contribution_margin"], DEFAULT_CLV_INPUTS["discount_rate"],
                "no financials in the config: CLV is shown as revenue (margin 100%) discounted at 10% a year, "
                "an illustrative assumption")
    fin = draw_financials(cfg.financials, n, seed=cfg.seed)
    return (fin.contribution_margin, fin.discount_rate,
            cfg.financials.assumptions_note or "margin and discount rate from the config's financials")


def company_clv(
    loaded: LoadedConfig, result: CompanyData, run_dir: str | Path | None = None, *,
    max_draws: int | None = 1000, progress: Any = None,
) -> tuple[ScoredBase, dict[str, Any]]:
    """Residual CLV of the company's customers with the purchase model of step 3 and the
    config's margin and discount rate (one draw of each per posterior draw). Without financials
    in the config, CLV is in revenue (margin 1) at a 10% discount rate, and ``info["note"]``
    says so. ``info`` also names the models, where they came from and why this purchase model."""
    fits = valuation_fits(loaded, result, run_dir, progress)
    freq, spend, data = fits.freq, fits.spend, fits.data
    n = min(n_model_draws(freq), n_model_draws(spend), max_draws or np.iinfo(np.int64).max)
    margin, rate, note = clv_inputs(loaded, n)
    clv = data.score(freq, spend, margin=margin, rate=rate, n=n, progress=progress)
    info = {"purchase_model": fits.purchase_model, "choice_reason": fits.choice_reason,
            "spend_model": "gamma_gamma", "source": fits.source, "n_draws": n, "note": note,
            "valuation_date": fits.valuation_date, "data_window": data.data_window,
            "calibration_end": fits.calibration_end,
            "diagnostics": combined_diagnostics({k: m.verdict().to_dict() for k, m in fits.models.items()})}
    return clv, info
