"""A company known from its disclosed customer metrics (``business: disclosures``), from the table
to ``valuation.json``.

1. **Read** the disclosures (:func:`cbcv.data.disclosures.load_disclosures`): every row accepted
   or rejected with a reason, the accounting identity checked and its violations reported, gaps
   and restatements stated, units scaled (``data.scale``).
2. **Fit** the disclosures model (:class:`cbcv.models.disclosures.DisclosureModel`) to every
   period to the valuation date: acquisition of the config's market (``financials.market_size``)
   with marketing spend as covariate, the retention family of ``models`` (sBG or BdW), the
   setting of ``disclosures.setting``, NUTS with the config's sampler.
3. **Validate** by rolling origins (:func:`cbcv.valuation.disclosure_backtest.disclosure_backtest`):
   refits to each past period (``disclosures.backtest_method``), every disclosed series forecast
   1 to ``disclosures.backtest_horizon`` periods ahead against the actuals and two baselines.
4. **Value** at the end of the last disclosed period (:mod:`cbcv.valuation.disclosures`): the
   latent cohorts' future revenue after the margin, existing and future customers, the bridge,
   tornado and scenarios of every cbcv company.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv.config import DataSource, LoadedConfig, load_config
from cbcv.core.cache import atomic_write_json, write_fit_folder
from cbcv.core.draws import draw_stats
from cbcv.core.errors import ConfigError
from cbcv.core.units import horizon_periods, periods_per_year
from cbcv.data.disclosures import Disclosures, load_disclosures
from cbcv.models.acquisition_terms import MarketSize
from cbcv.models.base import SamplerSettings
from cbcv.models.disclosure_terms import COVARIATE
from cbcv.models.disclosures import DisclosureModel
from cbcv.models.verdict import combined_diagnostics
from cbcv.pipeline.valuation import iso_day, json_records, market_size
from cbcv.pipeline.workflow import sampler_settings
from cbcv.valuation.backtest import Backtest
from cbcv.valuation.bridge import ValuationResult
from cbcv.valuation.disclosure_backtest import disclosure_backtest, origins
from cbcv.valuation.disclosures import DisclosureEquity, future_marketing_plan
from cbcv.valuation.drivers import UnitEconomics
from cbcv.valuation.inputs import FinancialDraws, draw_financials
from cbcv.valuation.sensitivity import scenarios, tornado

#: Run-folder subfolder of the fit, and the backtest's file beside it.
FIT_DIR = "models/disclosures"
BACKTEST_FILE = "disclosure_backtest.json"
#: Shocks of the tornado chart: each input at 90% and 110% of its value.
TORNADO_STEP = 0.10
TORNADO_INPUTS = ("retention", "margin", "discount_rate", "acquisition_cost", "acquisition_volume")
#: Periods the forecast pages show after the last disclosed one.
FORECAST_PERIODS = 8


def load_company_disclosures(loaded: LoadedConfig) -> Disclosures:
    """Step 1 with the config's source, column map, scale, period and valuation date."""
    cfg = loaded.config
    if not cfg.is_disclosures:
        raise ConfigError(f"{loaded.path}: business: {cfg.business} is not a disclosures company")
    return read_disclosures(loaded.resolve_source(), cfg.data, period=cfg.period, as_of=cfg.as_of)


def read_disclosures(source: str | Path, data: DataSource, *, period: str, as_of: dt.date | None) -> Disclosures:
    """A disclosures file read with a config's ``data`` section (column map and scale)."""
    return load_disclosures(source, period=period, as_of=as_of,  # type: ignore[arg-type]
                            columns=data.columns.disclosure_columns(), scale=dict(data.scale))


def disclosure_model(loaded: LoadedConfig) -> DisclosureModel:
    """The (unfitted) model the config describes (module docstring, step 2)."""
    cfg = loaded.config
    fin = cfg.financials
    market = market_size(fin) if fin is not None else None
    if market is None:
        raise ConfigError(f"{loaded.path}: financials.market_size: required for business: disclosures (the "
                          "prospects the acquisition model draws from)")
    setting = None if cfg.disclosures.setting == "auto" else cfg.disclosures.setting
    return DisclosureModel(market, setting=setting, retention=cfg.models[0],  # type: ignore[arg-type]
                           marketing=cfg.disclosures.marketing,
                           acquisition_seasonality=bool(fin and fin.acquisition_seasonality))


def fit_disclosures(loaded: LoadedConfig, disclosures: Disclosures, *, progress: Any = None) -> DisclosureModel:
    """Step 2."""
    model = disclosure_model(loaded)
    if progress:
        progress(f"fitting the disclosures model to {len(disclosures.table)} {loaded.config.period}s ...")
    model.fit(disclosures.table, sampler_settings(loaded, "disclosures"))
    return model


def disclosure_fit_record(model: DisclosureModel, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``fit.json`` contract: per parameter mean, sd, 94% HDI, r_hat, ess; divergences;
    periods; seconds; the diagnostics verdict."""
    idata = model.idata
    assert idata is not None

    def num(v: Any) -> float | None:
        v = float(v)
        return v if np.isfinite(v) else None

    cols = ("sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail")
    params = {str(k): {"mean": num(row["mean"]), **{c: num(row[c]) if c in row else None for c in cols}}
              for k, row in model.summary().iterrows()}
    out = {"model": "disclosures", "setting": model.setting, "retention": model.retention,
           "market": model.market.to_dict(), "method": str(idata.attrs.get("method", "nuts")), "parameters": params,
           "divergences": model.divergences(), "n_periods": int(idata.attrs.get("n_periods", 0)),
           "series": list(model.design.observed) if model.design is not None else [],
           "seconds": round(float(idata.attrs.get("fit_seconds", 0.0)), 3),
           "diagnostics": model.verdict().to_dict()}
    return out | ({"meta": meta} if meta else {})


def save_disclosure_fit(model: DisclosureModel, out: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """``out/fit.json`` and ``out/posterior.nc``; ``fit.json`` removed first and written last, so a
    fit that stopped half-way has none."""
    return write_fit_folder(out, model.save, disclosure_fit_record(model, meta))


def load_disclosure_fit(run_dir: str | Path) -> DisclosureModel | None:
    """The fit :func:`save_disclosure_fit` wrote into a run folder, or None."""
    base = Path(run_dir) / FIT_DIR
    if not (base / "fit.json").is_file():
        return None
    return DisclosureModel.load(base / "posterior.nc")


def run_backtest(loaded: LoadedConfig, disclosures: Disclosures, *, progress: Any = None) -> Backtest:
    """Step 3."""
    cfg = loaded.config
    settings = sampler_settings(loaded, "disclosures")
    method = cfg.disclosures.backtest_method
    if method == "map":
        settings = dataclasses.replace(settings, method="map")

    def fit(model: DisclosureModel, history: pd.DataFrame) -> None:
        model.fit(history, settings)

    note = (f"refitted by {'MAP (the posterior mode)' if method == 'map' else 'NUTS'} on the disclosures to each "
            "origin; marketing spend at its actual values (a conditional forecast)")
    keep = cfg.disclosures.backtest_origins
    at = origins(disclosures.table)[-keep:] if keep else None
    return disclosure_backtest(lambda: disclosure_model(loaded), fit, disclosures.table, at=at,
                               horizon=cfg.disclosures.backtest_horizon, method_note=note, progress=progress)


def write_backtest(backtest: Backtest, run_dir: str | Path) -> Path:
    """``run_dir/disclosure_backtest.json`` (strict JSON)."""
    return atomic_write_json(Path(run_dir) / BACKTEST_FILE, backtest.to_json_dict())


def _read_backtest(run_dir: str | Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    try:
        return json.loads((Path(run_dir) / BACKTEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def future_plan(loaded: LoadedConfig, disclosures: Disclosures, model: DisclosureModel, horizon: int) -> np.ndarray | None:
    """Marketing spend for the ``horizon`` periods after the last disclosed one (None when the
    model has no marketing covariate): the same period of the last disclosed year, grown by
    ``disclosures.marketing_growth`` a year."""
    if model.design is None or model.design.log_marketing is None:
        return None
    cfg = loaded.config
    return future_marketing_plan(disclosures.table[COVARIATE].to_numpy(dtype=float), horizon,
                                 int(periods_per_year(cfg.period)), cfg.disclosures.marketing_growth)


@dataclass(frozen=True)
class DisclosureValuation:
    """Everything a disclosures company's ``valuation.json`` reports, with the arrays behind it."""

    result: ValuationResult
    financials: FinancialDraws
    model: DisclosureModel
    record: dict[str, Any]
    forecast: pd.DataFrame
    unit_economics: UnitEconomics
    tornado: pd.DataFrame
    scenarios: pd.DataFrame
    future_note: str
    valuation_date: dt.date
    last_period: str
    first_period: str
    period: str
    marketing_plan: np.ndarray | None
    checks: dict[str, Any]
    backtest: dict[str, Any] | None = None

    def diagnostics(self) -> dict[str, Any]:
        return combined_diagnostics({"disclosures": self.record.get("diagnostics", {})})

    def to_json_dict(self) -> dict[str, Any]:
        """The fields of every company's ``valuation.json`` (``models.purchase`` names the
        disclosures model), plus ``business``, the data checks, the forecasts and the backtest."""
        out: dict[str, Any] = {
            "business": "disclosures",
            "valuation_date": iso_day(self.valuation_date),
            "data_window": {"first_period": self.first_period, "last_period": self.last_period,
                            "calibration_end": iso_day(self.valuation_date)},
        }
        out.update(self.result.to_json_dict())
        setting = str(self.model.setting)
        out["models"] = {
            "purchase": f"disclosures ({setting}, {self.model.retention} retention)",
            "retention": self.model.retention, "setting": setting,
            "spend": "revenue per order" if setting == "noncontractual" else "revenue per subscriber",
            "choice_reason": f"the {setting} disclosures model with {self.model.retention} retention (config)",
            "source": "fitted to every disclosed period to the valuation date",
            "fits": {"disclosures": {"method": self.record["method"], "n_periods": self.record["n_periods"],
                                     "divergences": self.record["divergences"],
                                     "diagnostics_status": self.record["diagnostics"].get("status"),
                                     "diagnostics_ok": self.record["diagnostics"]["ok"],
                                     "problems": self.record["diagnostics"]["problems"]}},
            "n_draws": self.result.n_draws, "parameters": self.record["parameters"],
        }
        out["diagnostics"] = self.diagnostics()
        existing = self.result.existing_customer_equity
        out["existing_customers"] = {"note": "the latent cohorts acquired to the last disclosed period",
                                     **{k: float(v) for k, v in draw_stats(existing, self.result.interval).items()}}
        out["future_customers"] = {"included": True, "note": self.future_note}
        out["financial_inputs"] = {name: {k: float(v) for k, v in row.items()}
                                   for name, row in self.financials.summary().iterrows()}
        out["unit_economics"] = self.unit_economics.to_json_dict(self.result.interval)
        out["tornado"] = json_records(self.tornado)
        out["scenarios"] = json_records(self.scenarios)
        out["assumptions_note"] = self.result.conventions.get("assumptions_note")
        out["data_checks"] = self.checks
        out["forecasts"] = forecast_records(self.forecast)
        out["backtest"] = self.backtest
        return out


def forecast_records(forecast: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """The forecast table by series, JSON-safe (NaN and None as null)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for series, rows in forecast.groupby("series", sort=False):
        out[str(series)] = [{k: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v)
                             for k, v in row.items() if k != "series"} for row in rows.to_dict("records")]
    return out


def value_disclosures(
    loaded: LoadedConfig, *, disclosures: Disclosures | None = None, model: DisclosureModel | None = None,
    run_dir: str | Path | None = None, max_draws: int | None = 1000, progress: Any = None,
) -> DisclosureValuation:
    """Value a disclosures company (module docstring, step 4). ``run_dir``: reuse the fit the
    models notebook saved there and the backtest it wrote."""
    cfg = loaded.config
    fin_cfg = cfg.financials
    if fin_cfg is None:
        raise ConfigError(f"{loaded.path}: financials: required for a valuation (contribution_margin, "
                          "discount_rate, shares_outstanding, market_size at least)")
    disclosures = disclosures or load_company_disclosures(loaded)
    model = model or (load_disclosure_fit(run_dir) if run_dir is not None else None)
    model = model or fit_disclosures(loaded, disclosures, progress=progress)
    assert model.idata is not None and model.design is not None
    post = model.idata.posterior
    n_post = int(post.sizes["chain"] * post.sizes["draw"])
    n = min(n_post, max_draws or n_post)
    fin = draw_financials(fin_cfg, n, seed=cfg.seed)
    period = cfg.period
    per_year = int(periods_per_year(period))
    horizon = horizon_periods(fin_cfg.horizon_years, period)
    tail = int(round(cfg.disclosures.tail_years * per_year))
    plan = future_plan(loaded, disclosures, model, horizon)
    equity = DisclosureEquity(model, horizon, tail, period, plan, n, cfg.seed)
    if progress:
        progress(f"customer equity over {n} draws ...")
    sens = equity.valuation_model(
        fin, terminal=fin_cfg.terminal_value, terminal_growth=fin_cfg.terminal_growth,
        bridge_options={"cost_growth": fin_cfg.cost_growth, "capex_deductible": fin_cfg.capex_deductible},
        currency=cfg.company.currency)
    result = sens.evaluate()
    last = disclosures.table.index[-1]
    plan_note = ("marketing spend each period as in the same period of the last disclosed year"
                 + (f", grown {cfg.disclosures.marketing_growth:.0%} a year" if cfg.disclosures.marketing_growth else "")
                 if plan is not None else "no marketing covariate")
    note = (f"customers acquired over {horizon} {period}s after {last}, continuing the fitted acquisition curve of "
            f"a market of {model.market.median:,.0f} prospects ({plan_note}); each valued over its life, less "
            "the acquisition cost")
    result.conventions["assumptions_note"] = fin_cfg.assumptions_note
    result.conventions["future_customers"] = note
    result.conventions["existing_customers"] = (f"the latent cohorts' expected revenue after {last}, run off over "
                                                f"{horizon + tail} {period}s, after the margin, discounted")
    forecast = model.forecast(FORECAST_PERIODS, plan[:FORECAST_PERIODS] if plan is not None else None,
                              max_draws=n, seed=cfg.seed)
    inputs = {i: (1 - TORNADO_STEP, 1 + TORNADO_STEP) for i in TORNADO_INPUTS}
    return DisclosureValuation(
        result=result, financials=fin, model=model, record=disclosure_fit_record(model), forecast=forecast,
        unit_economics=equity.unit_economics(fin, cfg.company.currency), tornado=tornado(sens, inputs),
        scenarios=scenarios(sens, fin_cfg.scenarios), future_note=note, valuation_date=cfg.valuation_date,
        last_period=str(last), first_period=str(disclosures.table.index[0]), period=period,
        marketing_plan=plan, checks=disclosures.to_json_dict(), backtest=_read_backtest(run_dir),
    )


def write_disclosure_valuation(valuation: DisclosureValuation, out_dir: str | Path) -> Path:
    """``out_dir/valuation.json`` (strict JSON)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(out / "valuation.json", valuation.to_json_dict())


def value_disclosure_company(config_path: str | Path, out_dir: str | Path, *, progress: Any = None) -> Path:
    """``cbcv value CONFIG --out DIR`` for a disclosures company."""
    return write_disclosure_valuation(value_disclosures(load_config(config_path), progress=progress), out_dir)


def fit_disclosure_file(
    source: str | Path, *, market: float, settings: SamplerSettings, period: str = "quarter",
    retention: str = "sbg", loaded: LoadedConfig | None = None,
) -> tuple[DisclosureModel, dict[str, Any]]:
    """``cbcv fit`` on a disclosures file: read it (with the config's column map and scale when
    given), fit the model with ``market`` prospects (or the config's) and return it with the
    fit's metadata."""
    cfg = loaded.config if loaded is not None else None
    data = cfg.data if cfg is not None else DataSource(source=str(source), layout="disclosures")
    disclosures = read_disclosures(source, data, period=cfg.period if cfg is not None else period,
                                   as_of=cfg.as_of if cfg is not None else None)
    model = disclosure_model(loaded) if loaded is not None else DisclosureModel(market, retention=retention)  # type: ignore[arg-type]
    if loaded is not None and market > 0:  # --market overrides the config's financials.market_size
        model.market = MarketSize(float(market))
    model.fit(disclosures.table, settings)
    meta = {"source": Path(source).name, "sha256": disclosures.sha256, "period": disclosures.period,
            "first_period": str(disclosures.table.index[0]), "last_period": str(disclosures.table.index[-1]),
            "rows_read": disclosures.reconciliation.rows_read, "rows_rejected": disclosures.reconciliation.rows_rejected,
            "seed": settings.seed}
    return model, meta


# -- tables the notebooks show ------------------------------------------------------------
def parameter_table(record: dict[str, Any]) -> pd.DataFrame:
    """A fit's parameters from its ``fit.json`` record: one row each with mean, sd, 94% HDI,
    r_hat and ESS."""
    rows = [{"parameter": k, **v} for k, v in record["parameters"].items()]
    return pd.DataFrame(rows, columns=["parameter", "mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"])


def mape_table(backtest: Backtest) -> pd.DataFrame:
    """MAPE (percent) by series and method (rows) and horizon (columns), with the number of
    origins behind each horizon in a last row per series."""
    table = backtest.mape()
    wide = table.pivot_table(index=["series", "method"], columns="horizon", values="mape", sort=False)
    wide.columns = [f"{int(h)} ahead" for h in wide.columns]
    return wide.reset_index()


def forecast_table(forecast: pd.DataFrame, series: str) -> pd.DataFrame:
    """One series of :meth:`DisclosureModel.forecast`: the periods after the last disclosed one."""
    rows = forecast[(forecast["series"] == series) & (forecast["horizon"] > 0)]
    return rows[["period", "mean", "low", "high", "pred_low", "pred_high"]].reset_index(drop=True)


def disclosure_reconciliation_table(disclosures: Disclosures) -> pd.DataFrame:
    """The reconciliation as a two-column table (``item``, ``value``): rows read = accepted +
    rejected, the rejections by reason, the periods, gaps and restatements."""
    rec = disclosures.reconciliation
    rows: list[tuple[str, str]] = [
        ("source", rec.source), ("rows read", f"{rec.rows_read:,}"), ("rows accepted", f"{rec.rows_accepted:,}"),
        ("rows rejected", f"{rec.rows_rejected:,}"),
    ]
    rows += [(f"  rejected: {k.replace('_', ' ')}", f"{v:,}") for k, v in rec.rejected_by_reason.items()]
    table = disclosures.table
    rows += [("periods", f"{len(table)} ({table.index[0]} to {table.index[-1]})"),
             ("periods missing", f"{len(disclosures.gaps)}"),
             ("figures restated", f"{len(disclosures.restatements)}"),
             ("identity checks (violated)", f"{len(disclosures.identities)} ({len(disclosures.violations)})")]
    return pd.DataFrame(rows, columns=["item", "value"])


def write_disclosure_checks(disclosures: Disclosures, out: str | Path) -> list[Path]:
    """Beside a report: ``reconciliation.json`` (the checks: reconciliation, series, units, gaps,
    restatements, identity; strict JSON), ``rejections.csv`` (source row, line, column, reason,
    detail of every failing check) and ``disclosures.csv`` (the table as read and scaled)."""
    from cbcv.core.safe_csv import write_csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out / "reconciliation.json", disclosures.to_json_dict())]
    keep = [c for c in ("source_row", "line", "column", "raw_value", "reason", "primary", "detail")
            if c in disclosures.rejections.columns]
    write_csv(disclosures.rejections[keep], out / "rejections.csv")
    written.append(out / "rejections.csv")
    table = disclosures.table.reset_index()
    table["period"] = table["period"].astype(str)
    write_csv(table, out / "disclosures.csv")
    written.append(out / "disclosures.csv")
    return written
