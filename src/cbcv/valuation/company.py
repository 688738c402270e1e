"""A company's valuation from its config: the glue behind ``cbcv value CONFIG --out DIR``.

Steps (every one reuses a tested piece; no statistics of its own):

1. load the config (its ``financials`` are required) and the transaction log;
2. fit the configured summary models (:func:`cbcv.workflow.fit_company_models`);
3. pick the purchase model: with a holdout period and several frequency models, the one that
   :func:`cbcv.validation.choose_default` prefers; otherwise the first one configured;
4. draw the financial inputs, one per posterior draw (:func:`cbcv.valuation.inputs.draw_financials`);
5. existing customer equity = total residual CLV per draw (:func:`cbcv.clv.customer_clv`, margin
   and discount rate per draw);
6. future customer equity from the acquisition model when the acquisition history has at
   least :data:`MIN_ACQUISITION_PERIODS` periods with new customers **and** a market size is
   given; otherwise zero, with the reason written into ``valuation.json``. A single acquisition
   cohort (CDNOW: all customers first bought in Q1 1997) identifies no acquisition process, so
   its future customer equity is zero — the value of the existing customers only;
7. the bridge to value per share (:func:`cbcv.valuation.bridge.value_bridge`), written as
   ``valuation.json``.

CLV at acquisition of a future customer (step 6) is ``margin × p γ / (q − 1) × DERT(x=0, t_x=0,
T=0)`` per draw: the population-mean spend times the discounted expected repeat transactions
of a customer just acquired (the first purchase's own margin is not counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv import predict as P
from cbcv.clv import CustomerCLV, customer_clv, dert_draws, n_model_draws
from cbcv.config import LoadedConfig, load_config
from cbcv.errors import ConfigError
from cbcv.models.base import CLVModel, SamplerSettings
from cbcv.valuation.acquisition import AcquisitionModel, MarketSize, acquisitions_from_transactions
from cbcv.valuation.bridge import ValuationResult, value_bridge
from cbcv.valuation.equity import FutureEquity, future_customer_equity
from cbcv.valuation.inputs import FinancialDraws, continuous_rate, draw_financials, horizon_periods

#: Periods with new customers needed before the acquisition model is fitted.
MIN_ACQUISITION_PERIODS = 8


@dataclass(frozen=True)
class CompanyValuation:
    """Everything ``valuation.json`` reports, with the arrays behind it."""

    result: ValuationResult
    clv: CustomerCLV
    financials: FinancialDraws
    purchase_model: str
    choice_reason: str
    future: FutureEquity | None
    future_note: str
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        out = self.result.to_json_dict()
        out["models"] = {
            "purchase": self.purchase_model,
            "spend": "gamma_gamma",
            "choice_reason": self.choice_reason,
            "fits": self.models,
            "n_draws": self.result.n_draws,
            "pairing": self.clv.meta.get("pairing"),
        }
        out["existing_customers"] = {
            "customers": self.clv.n_customers,
            **{k: float(v) for k, v in self.clv.summary().loc["clv_per_customer"].items()},
        }
        out["future_customers"] = {"included": self.future is not None, "note": self.future_note}
        out["financial_inputs"] = {
            name: {k: float(v) for k, v in row.items()} for name, row in self.financials.summary().iterrows()
        }
        out["assumptions_note"] = self.result.conventions.get("assumptions_note")
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
    from cbcv import validation as V

    return V.choose_default(V.compare_models(frequency, summary))


def _to_draws(arr: np.ndarray, n: int) -> np.ndarray:
    """Rows of a (draws, periods) array repeated or cut to ``n`` draws."""
    return arr[np.arange(n) % arr.shape[0]]


def future_equity(
    transactions: pd.DataFrame,
    freq_model: CLVModel,
    spend_model: CLVModel,
    fin: FinancialDraws,
    *,
    time_unit: str,
    period: str,
    end: Any,
    market: MarketSize | float | None,
    settings: SamplerSettings,
    terminal: str = "none",
    terminal_growth: float = 0.0,
) -> tuple[FutureEquity | None, str]:
    """Future customer equity, or ``None`` and the reason it is left out (step 6)."""
    history = acquisitions_from_transactions(transactions, freq=period, end=end)  # type: ignore[arg-type]
    active = int((history["new_customers"] > 0).sum())
    if active < MIN_ACQUISITION_PERIODS:
        return None, (
            f"future customers valued at zero: the acquisition history has {active} {period}(s) with new "
            f"customers (at least {MIN_ACQUISITION_PERIODS} are needed to fit an acquisition model); "
            "the value is that of the existing customers only"
        )
    if market is None:
        return None, (
            "future customers valued at zero: no market size was given for the acquisition model; "
            "the value is that of the existing customers only"
        )
    n = fin.n_draws
    model = AcquisitionModel(market)
    model.fit(history, settings)
    steps = horizon_periods(fin.horizon_years, period)
    expected = _to_draws(model.forecast(steps, seed=0).expected.to_numpy(), n)
    new = pd.DataFrame({"x": [0.0], "t_x": [0.0], "T": [0.0], "mean_repeat_spend": [np.nan]})
    delta = continuous_rate(fin.discount_rate, time_unit)
    clv_new = fin.contribution_margin * (
        dert_draws(freq_model, new, np.broadcast_to(delta, (n,)), n)[:, 0]
        * _to_draws(P.expected_spend(spend_model, new, max_draws=n), n)[:, 0]
    )
    fe = future_customer_equity(
        expected, clv_new, fin.acquisition_cost, fin.discount_rate, unit=period,
        terminal=terminal, terminal_growth=terminal_growth,  # type: ignore[arg-type]
    )
    return fe, (
        f"future customers from an acquisition model ({model.distribution}, market {model.market.to_dict()}) "
        f"fitted to {len(history)} {period}s, over {steps} {period}s"
    )


def value_loaded(
    loaded: LoadedConfig,
    *,
    market: MarketSize | float | None = None,
    max_draws: int | None = 1000,
    progress: Any = None,
) -> CompanyValuation:
    """Value the company a loaded config describes (module docstring, steps 2-7)."""
    from cbcv.workflow import fit_company_models, load_company

    cfg = loaded.config
    if cfg.financials is None:
        raise ConfigError(
            f"{loaded.path}: financials: required for a valuation (contribution_margin, discount_rate, "
            "shares_outstanding at least)"
        )
    if "gamma_gamma" not in cfg.models:
        raise ConfigError(f"{loaded.path}: models: a valuation needs gamma_gamma for the spend per transaction")
    result = load_company(loaded)
    fits = fit_company_models(loaded, result, None, progress)
    name, reason = choose_purchase_model(fits.frequency_models(), fits.summary)
    freq, spend = fits.models[name], fits.models["gamma_gamma"]
    n = min(n_model_draws(freq), n_model_draws(spend), max_draws or np.iinfo(np.int64).max)
    fin_cfg = cfg.financials
    fin = draw_financials(fin_cfg, n, seed=cfg.seed)
    if progress:
        progress(f"customer lifetime value over {n} draws ...")
    clv = customer_clv(
        freq, spend, fits.summary, margin=fin.contribution_margin, annual_discount_rate=fin.discount_rate,
        time_unit=cfg.time_unit, max_draws=n, keep_draws=False,
    )
    s = cfg.sampler
    settings = SamplerSettings(
        method=s.method, draws=s.draws, tune=s.tune, chains=s.chains, cores=s.cores, seed=cfg.seed,
        target_accept=s.target_accept, nuts_sampler=s.nuts_sampler,
    )
    future, note = future_equity(
        result.transactions, freq, spend, fin, time_unit=cfg.time_unit, period=fin_cfg.acquisition_period,
        end=cfg.calibration_end, market=market, settings=settings, terminal=fin_cfg.terminal_value,
        terminal_growth=fin_cfg.terminal_growth,
    )
    valuation = value_bridge(
        clv.total, future, fin, cost_growth=fin_cfg.cost_growth, capex_deductible=fin_cfg.capex_deductible,
        currency=cfg.company.currency,
    )
    valuation.conventions["assumptions_note"] = fin_cfg.assumptions_note
    valuation.conventions["future_customers"] = note
    return CompanyValuation(
        result=valuation, clv=clv, financials=fin, purchase_model=name, choice_reason=reason,
        future=future, future_note=note,
        models={k: {"method": r["method"], "n_customers": r["n_customers"], "divergences": r["divergences"],
                    "diagnostics_ok": r["diagnostics"]["ok"]} for k, r in fits.records.items()},
    )


def value_company(config_path: str | Path, out_dir: str | Path, *, progress: Any = None) -> Path:
    """``cbcv value CONFIG --out DIR``: value the company and write ``DIR/valuation.json``."""
    loaded = load_config(config_path)
    valuation = value_loaded(loaded, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "valuation.json"
    record = {"company": loaded.config.company.name, "config": str(loaded.path), **valuation.to_json_dict()}
    path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return path


#: Used by :func:`company_clv` when the config has no financials (shown as an assumption).
DEFAULT_CLV_INPUTS = {"contribution_margin": 1.0, "discount_rate": 0.10}


def company_models(
    loaded: LoadedConfig, result: Any, run_dir: str | Path | None = None, progress: Any = None
) -> tuple[pd.DataFrame, dict[str, CLVModel], str]:
    """The company's calibration summary and fitted models (``result``: the LoadResult of
    :func:`cbcv.workflow.load_company`): the posteriors saved under
    ``run_dir/models/<name>/posterior.nc`` (by notebook 02 / ``fit_company_models``) when every
    configured summary model has one fitted to the same calibration end, else fresh fits.
    Returns the summary, the models by name and where they came from."""
    from cbcv.models import SUMMARY_MODELS
    from cbcv.workflow import company_summary, fit_company_models, load_fit

    cfg = loaded.config
    names = [n for n in cfg.models if n in SUMMARY_MODELS]
    if run_dir is not None:
        folder = Path(run_dir) / "models"
        if all((folder / n / "posterior.nc").is_file() for n in names):
            models: dict[str, CLVModel] = {}
            for n in names:
                model, meta = load_fit(folder / n)
                if meta.get("calibration_end") != cfg.calibration_end.isoformat():
                    break
                models[n] = model
            else:
                summary = company_summary(loaded, _check_result(result))
                for model in models.values():  # the data it was fitted on, for LOO
                    model.arrays, model.inverse = model.prepare(summary)
                return summary, models, f"posteriors loaded from {folder}"
    fits = fit_company_models(loaded, _check_result(result), None, progress)
    return fits.summary, fits.models, f"fitted now ({cfg.sampler.method})"


def _check_result(result: Any) -> Any:
    """``company_summary``/``fit_company_models`` need the :class:`~cbcv.data.load.LoadResult`."""
    if hasattr(result, "transactions"):
        return result
    raise TypeError("pass the LoadResult of load_company")


def company_clv(
    loaded: LoadedConfig, result: Any, run_dir: str | Path | None = None, *, max_draws: int | None = 1000,
    progress: Any = None,
) -> tuple[CustomerCLV, dict[str, Any]]:
    """Residual CLV of the company's customers with the purchase model of step 3 and the
    config's margin and discount rate (one draw of each per posterior draw). Without financials
    in the config, CLV is in revenue (margin 1) at a 10% discount rate, and ``info["note"]``
    says so. ``info`` also names the models, where they came from and why this purchase model."""
    cfg = loaded.config
    summary, models, source = company_models(loaded, result, run_dir, progress)
    if "gamma_gamma" not in models:
        raise ConfigError(f"{loaded.path}: models: CLV needs gamma_gamma for the spend per transaction")
    name, reason = choose_purchase_model({k: v for k, v in models.items() if k in P.FREQUENCY}, summary)
    freq, spend = models[name], models["gamma_gamma"]
    n = min(n_model_draws(freq), n_model_draws(spend), max_draws or np.iinfo(np.int64).max)
    if cfg.financials is not None:
        fin = draw_financials(cfg.financials, n, seed=cfg.seed)
        margin, rate = fin.contribution_margin, fin.discount_rate
        note = cfg.financials.assumptions_note or "margin and discount rate from the config's financials"
    else:
        margin, rate = DEFAULT_CLV_INPUTS["contribution_margin"], DEFAULT_CLV_INPUTS["discount_rate"]
        note = ("no financials in the config: CLV is shown as revenue (margin 100%) discounted at 10% a "
                "year, an illustrative assumption")
    clv = customer_clv(freq, spend, summary, margin=margin, annual_discount_rate=rate,
                       time_unit=cfg.time_unit, max_draws=n)
    info = {"purchase_model": name, "choice_reason": reason, "spend_model": "gamma_gamma",
            "source": source, "n_draws": n, "note": note}
    return clv, info
