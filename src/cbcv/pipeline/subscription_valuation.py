"""A subscription company (``business: subscription``) from its spells to ``valuation.json``.

1. **Validate** the records into the work folder (:mod:`cbcv.pipeline.subscription_book`).
2. **Fit** the retention models on the calibration period: every family of ``models`` (sBG,
   BdW) with every pooling of ``retention.pooling`` (``auto``: partial, unpooled and complete),
   each on the cohorts' duration data at the calibration end
   (:class:`cbcv.models.cohort_retention.CohortRetentionModel`).
3. **Choose** on the holdout: the fit whose predicted survivors per cohort, at each cohort's last
   holdout renewal, are nearest the actual ones (:func:`cbcv.predict.cohort_retention.compare_pooling`,
   ``mae_pp``: mean absolute error in percentage points of the cohort's subscribers active at the
   calibration end); ties within 0.05 points go to the larger ``elpd_loo``. Without a holdout
   period: the largest PSIS-LOO ``elpd_loo`` (NUTS fits), else the first configured.
4. **Refit** the chosen model on all data to the valuation date.
5. **Value** at the valuation date (:mod:`cbcv.valuation.subscription`): today's subscribers by
   cohort and tenure (DERL × price × margin), future subscribers from the acquisition model of
   ``financials`` (acquisitions of new customers per ``acquisition_period``, a new cohort's
   retention from the population), the same bridge, tornado and scenarios as a transaction
   company (:class:`cbcv.valuation.sensitivity.ValuationModel`; ``price`` scales every price).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv.config import LoadedConfig, load_config
from cbcv.core.cache import atomic_write_json, write_fit_folder
from cbcv.core.draws import draw_stats
from cbcv.core.errors import ConfigError
from cbcv.core.units import horizon_periods
from cbcv.models.base import SamplerSettings
from cbcv.models.cohort_retention import CohortRetentionModel
from cbcv.models.verdict import combined_diagnostics
from cbcv.pipeline.subscription_book import SubscriptionBook, load_subscription_book
from cbcv.pipeline.valuation import acquisition_model, iso_day, json_records, market_size
from cbcv.pipeline.workflow import sampler_settings
from cbcv.predict import cohort_retention as R
from cbcv.valuation.acquisition import MIN_ACQUISITION_PERIODS, active_periods
from cbcv.valuation.bridge import ValuationResult
from cbcv.valuation.drivers import UnitEconomics
from cbcv.valuation.equity import FutureEquity
from cbcv.valuation.inputs import FinancialDraws, draw_financials
from cbcv.valuation.sensitivity import ValuationModel, scenarios, tornado
from cbcv.valuation.subscription import (
    ExistingSubscribers,
    NewSubscriber,
    new_subscriber_mix,
    payback_periods,
)

#: Run-folder subfolders: the calibration fits and the refit to the valuation date.
FIT_DIR, REFIT_DIR = "models", "refit"
#: The holdout comparison and the choice, beside the fits.
CHOICE_FILE = "retention_choice.json"
#: Ties of the holdout survival error (percentage points) go to the better LOO.
TIE_PP = 0.05
#: Shocks of the tornado chart: each input at 90% and 110% of its value.
TORNADO_STEP = 0.10
#: The tornado's inputs.
TORNADO_INPUTS = ("retention", "price", "margin", "discount_rate", "acquisition_cost", "acquisition_volume")
#: Months of new subscribers whose mix and prices a future subscriber takes.
RECENT_MONTHS = 12


def fit_name(model: CohortRetentionModel) -> str:
    """``<family>_<pooling>``: a fit's folder and label."""
    return f"{model.family}_{model.pooling}"


@dataclass(frozen=True)
class RetentionFits:
    """The calibration fits by name, their holdout comparison (None without a holdout), the
    holdout survival per cohort and tenure of each, the chosen fit and why."""

    models: dict[str, CohortRetentionModel]
    comparison: pd.DataFrame | None
    survival: dict[str, pd.DataFrame]
    chosen: str
    reason: str
    calibration_end: dt.date

    @property
    def model(self) -> CohortRetentionModel:
        return self.models[self.chosen]


def choose_retention(comparison: pd.DataFrame | None, names: list[str]) -> tuple[str, str]:
    """The fit to value with, and why (module docstring, step 3)."""
    if comparison is None or comparison.empty:
        return names[0], "no holdout period to compare the fits: the first one configured"
    table = comparison.sort_values("mae_pp", kind="stable")
    best = float(table["mae_pp"].iloc[0])
    near = table[table["mae_pp"] <= best + TIE_PP]
    if len(near) > 1 and near["elpd_loo"].notna().all():
        pick = str(near["elpd_loo"].idxmax())
        return pick, (f"holdout survival error {float(near.loc[pick, 'mae_pp']):.2f} pts, within {TIE_PP} of the "
                      f"smallest, and the best PSIS-LOO among those ({float(near.loc[pick, 'elpd_loo']):.1f})")
    pick = str(table.index[0])
    return pick, f"the smallest holdout survival error ({best:.2f} percentage points, mean over cohorts)"


def fit_retention(loaded: LoadedConfig, book: SubscriptionBook, *, progress: Any = None) -> RetentionFits:
    """Steps 2 and 3 on the calibration period (module docstring)."""
    cfg = loaded.config
    durations = book.durations(cfg.calibration_end)
    poolings = ("partial", "unpooled", "complete") if cfg.retention.pooling == "auto" else (cfg.retention.pooling,)
    models: dict[str, CohortRetentionModel] = {}
    for family in cfg.models:
        for pooling in poolings:
            model = CohortRetentionModel(family, pooling, book.covariates)  # type: ignore[arg-type]
            if progress:
                progress(f"fitting {fit_name(model)} on {int(durations['count'].sum()):,} spells ...")
            model.fit(durations, sampler_settings(loaded, family))
            models[fit_name(model)] = model
    holdout = book.holdout()
    comparison, survival = None, {}
    if holdout is not None:
        comparison = R.compare_pooling(models, holdout, max_draws=1000)
        survival = {k: R.holdout_survival(m, holdout, max_draws=1000) for k, m in models.items()}
    chosen, reason = choose_retention(comparison, list(models))
    if comparison is None and all(m.idata is not None and m.idata.attrs.get("method") == "nuts" for m in models.values()):
        elpd = {k: float(m.loo().elpd_loo) for k, m in models.items()}
        chosen = max(elpd, key=lambda k: elpd[k])
        reason = f"no holdout period: the best PSIS-LOO (elpd {elpd[chosen]:.1f})"
    return RetentionFits(models, comparison, survival, chosen, reason, cfg.calibration_end)


def refit_retention(loaded: LoadedConfig, book: SubscriptionBook, fits: RetentionFits) -> CohortRetentionModel:
    """Step 4: the chosen model refitted on all data to the valuation date."""
    cfg = loaded.config
    chosen = fits.model
    if cfg.valuation_date == fits.calibration_end:
        return chosen
    model = CohortRetentionModel(chosen.family, chosen.pooling, chosen.covariates)  # type: ignore[arg-type]
    model.fit(book.durations(cfg.valuation_date), sampler_settings(loaded, chosen.family))
    return model


def retention_fit_record(model: CohortRetentionModel, label: str | None = None) -> dict[str, Any]:
    """The ``fit.json`` contract for a retention fit: per parameter mean, sd, 94% HDI, r_hat,
    ess; divergences; subscribers; seconds; the diagnostics verdict, its problems named by
    ``label`` (default: the fit's name, e.g. ``sbg_partial``)."""
    idata = model.idata
    assert idata is not None
    method = str(idata.attrs.get("method", "nuts"))
    table = model.summary()

    def num(v: Any) -> float | None:
        v = float(v)
        return v if np.isfinite(v) else None

    cols = ("sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail")
    params = {str(k): {"mean": num(row["mean"]), **{c: num(row[c]) if c in row else None for c in cols}}
              for k, row in table.iterrows()}
    return {
        "model": fit_name(model), "family": model.family, "pooling": model.pooling, "method": method,
        "parameters": params, "divergences": model.divergences(),
        "n_customers": int(idata.attrs.get("n_customers", 0)), "n_distinct": int(idata.attrs.get("n_distinct", 0)),
        "cohorts": json.loads(str(idata.attrs.get("cohorts", "[]"))),
        "seconds": round(float(idata.attrs.get("fit_seconds", 0.0)), 3),
        "diagnostics": dataclasses.replace(model.verdict(), model=label or fit_name(model)).to_dict(),
    }


def save_retention_fit(model: CohortRetentionModel, out: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """``out/fit.json`` (with ``meta``) and ``out/posterior.nc`` (compressed cohort data, no
    subscriber ids); nothing after an interrupt, ``fit.json`` removed first and written last."""
    from cbcv.core import interrupt

    interrupt.check()
    return write_fit_folder(out, model.save, retention_fit_record(model) | ({"meta": meta} if meta else {}))


def save_retention_fits(fits: RetentionFits, run_dir: str | Path) -> Path:
    """Every calibration fit under ``run_dir/models/<name>/`` and the comparison and choice in
    ``run_dir/models/retention_choice.json`` (written last: the notebook that values reads it)."""
    base = Path(run_dir) / FIT_DIR
    for name, model in fits.models.items():
        save_retention_fit(model, base / name)
    comparison = None if fits.comparison is None else json_records(fits.comparison)
    return atomic_write_json(base / CHOICE_FILE, {
        "chosen": fits.chosen, "reason": fits.reason, "calibration_end": fits.calibration_end.isoformat(),
        "comparison": comparison,
    })


def load_retention_fits(run_dir: str | Path) -> RetentionFits | None:
    """The fits that :func:`save_retention_fits` wrote, or None when there are none."""
    base = Path(run_dir) / FIT_DIR
    saved = _read(base / CHOICE_FILE)
    if saved is None:
        return None
    models = {p.parent.name: CohortRetentionModel.load(p) for p in sorted(base.glob("*/posterior.nc"))}
    if saved["chosen"] not in models:
        return None
    comparison = None if saved["comparison"] is None else pd.DataFrame(saved["comparison"]).T
    return RetentionFits(models, comparison, {}, saved["chosen"], saved["reason"],
                         dt.date.fromisoformat(saved["calibration_end"]))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class SubscriptionValuation:
    """Everything a subscription company's ``valuation.json`` reports, with the arrays behind it."""

    result: ValuationResult
    financials: FinancialDraws
    retention_model: str
    choice_reason: str
    future: FutureEquity | None
    future_note: str
    by_cohort: pd.DataFrame
    unit_economics: UnitEconomics | None
    tornado: pd.DataFrame
    scenarios: pd.DataFrame
    subscribers: int
    revenue_per_period: float
    valuation_date: dt.date
    data_window: tuple[dt.date | None, dt.date]
    calibration_end: dt.date
    period: str
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparison: pd.DataFrame | None = None
    acquisitions: pd.DataFrame | None = None

    def diagnostics(self) -> dict[str, Any]:
        return combined_diagnostics({k: r.get("diagnostics", {}) for k, r in self.models.items()})

    def to_json_dict(self) -> dict[str, Any]:
        """The fields of a transaction company's ``valuation.json`` (``models.purchase`` is the
        retention model here, ``models.spend`` the price per billing period), plus ``business``,
        the subscribers and the holdout comparison."""
        first, last = self.data_window
        out: dict[str, Any] = {
            "business": "subscription",
            "valuation_date": iso_day(self.valuation_date),
            "data_window": {"first_day": iso_day(first), "last_day": iso_day(last), "calibration_end": iso_day(self.calibration_end)},
        }
        out.update(self.result.to_json_dict())
        out["models"] = {
            "purchase": self.retention_model, "retention": self.retention_model, "spend": f"price per {self.period}",
            "choice_reason": self.choice_reason, "source": "refitted to the valuation date",
            "fits": {k: {"method": r["method"], "n_customers": r["n_customers"], "divergences": r["divergences"],
                         "diagnostics_status": r["diagnostics"].get("status"), "diagnostics_ok": r["diagnostics"]["ok"],
                         "problems": r["diagnostics"]["problems"]} for k, r in self.models.items()},
            "n_draws": self.result.n_draws,
            "holdout_comparison": None if self.comparison is None else json_records(self.comparison),
        }
        out["diagnostics"] = self.diagnostics()
        per = self.result.existing_customer_equity / max(self.subscribers, 1)
        out["existing_customers"] = {"customers": self.subscribers, "revenue_per_period": self.revenue_per_period,
                                     **{k: float(v) for k, v in draw_stats(per, self.result.interval).items()}}
        out["existing_customers_by_cohort"] = json_records(self.by_cohort.set_index("cohort"))
        out["future_customers"] = {"included": self.future is not None, "note": self.future_note}
        out["financial_inputs"] = {name: {k: float(v) for k, v in row.items()}
                                   for name, row in self.financials.summary().iterrows()}
        if self.unit_economics is not None:
            out["unit_economics"] = self.unit_economics.to_json_dict(self.result.interval)
        out["tornado"] = json_records(self.tornado)
        out["scenarios"] = json_records(self.scenarios)
        out["assumptions_note"] = self.result.conventions.get("assumptions_note")
        return out


def _future(book: SubscriptionBook, loaded: LoadedConfig, fin: FinancialDraws) -> tuple[np.ndarray | None, str, pd.DataFrame | None]:
    """Forecast acquisitions ``(draws, periods)`` of the acquisition model, or None and why."""
    cfg, fin_cfg = loaded.config, loaded.config.financials
    assert fin_cfg is not None
    period = fin_cfg.acquisition_period
    history = book.acquisitions(period)
    active = active_periods(history)
    if active < MIN_ACQUISITION_PERIODS:
        return None, (f"future subscribers valued at zero: the acquisition history has {active} {period}(s) with new "
                      f"customers (at least {MIN_ACQUISITION_PERIODS} are needed to fit an acquisition model)"), history
    market = market_size(fin_cfg)
    if market is None:
        return None, ("future subscribers valued at zero: no market size (financials.market_size) was given for "
                      "the acquisition model"), history
    model = acquisition_model(market, period, fin_cfg.acquisition_seasonality)
    model.fit(history, sampler_settings(loaded, "acquisition"))
    steps = horizon_periods(fin.horizon_years, period)
    expected = model.forecast(steps, seed=cfg.seed).expected.to_numpy()
    expected = expected[np.arange(fin.n_draws) % expected.shape[0]]
    note = (f"future subscribers from an acquisition model ({model.distribution}, market {model.market.to_dict()}) "
            f"fitted to {len(history)} {period}s of new customers, over {steps} {period}s; a new subscriber's "
            f"retention is a new cohort's, its plan mix and price those of the last {RECENT_MONTHS} months")
    return expected, note, history


def value_subscriptions(
    loaded: LoadedConfig, *, book: SubscriptionBook | None = None, run_dir: str | Path | None = None,
    max_draws: int | None = 1000, progress: Any = None,
) -> SubscriptionValuation:
    """Value a subscription company (module docstring). ``run_dir``: reuse the calibration fits
    that the retention notebook saved there."""
    cfg = loaded.config
    fin_cfg = cfg.financials
    if fin_cfg is None:
        raise ConfigError(f"{loaded.path}: financials: required for a valuation (contribution_margin, "
                          "discount_rate, shares_outstanding at least)")
    book = book or load_subscription_book(loaded)
    fits = load_retention_fits(run_dir) if run_dir is not None else None
    fits = fits or fit_retention(loaded, book, progress=progress)
    if progress:
        progress(f"refitting {fits.chosen} to the valuation date ...")
    model = refit_retention(loaded, book, fits)
    assert model.idata is not None
    post = model.idata.posterior
    n_post = int(post.sizes["chain"] * post.sizes["draw"])
    # posterior draws thinned to max_draws; a MAP point is paired with max_draws financial draws
    n = (max_draws or 1) if n_post == 1 else min(n_post, max_draws or n_post)
    fin = draw_financials(fin_cfg, n, seed=cfg.seed)
    active = book.active()
    if active["revenue_per_period"].isna().any():
        raise ConfigError(f"{loaded.path}: data.columns.price: a valuation needs each subscription's price per "
                          "billing period, and the records have none (or some are missing)")
    existing = ExistingSubscribers.of(model, active, n, period=book.period, seed=cfg.seed)
    acquisitions, note, history = _future(book, loaded, fin)
    recent = book.new_subscribers(RECENT_MONTHS)
    new = NewSubscriber.of(model, new_subscriber_mix(recent, book.covariates), n, period=book.period,
                           seed=cfg.seed) if len(recent) else None
    if new is None and acquisitions is not None:
        acquisitions, note = None, "future subscribers valued at zero: nobody subscribed in the last 12 months"
    sens = ValuationModel(
        financials=fin, dert=existing.function(), spend=active["revenue_per_period"].to_numpy(dtype=float),
        acquisitions=acquisitions, new_customer_dert=new.renewal_value if new is not None and acquisitions is not None else None,
        new_customer_spend=1.0, new_customer_first_spend=new.first_payment if new is not None else 0.0,
        acquisition_unit=fin_cfg.acquisition_period, terminal=fin_cfg.terminal_value,  # type: ignore[arg-type]
        terminal_growth=fin_cfg.terminal_growth,
        bridge_options={"cost_growth": fin_cfg.cost_growth, "capex_deductible": fin_cfg.capex_deductible},
        currency=cfg.company.currency,
    )
    if progress:
        progress(f"subscriber equity of {int(active['subscribers'].sum()):,} subscribers over {n} draws ...")
    result = sens.evaluate()
    result.conventions["assumptions_note"] = fin_cfg.assumptions_note
    result.conventions["future_customers"] = note
    result.conventions["existing_customers"] = ("price x z^f x DERL(renewals) per subscriber group (Fader & Hardie "
                                                "2010, eq. 6), f the time to the next renewal")
    ue = None
    if new is not None:
        renewals = new.renewal_value(1.0, fin.discount_rate)
        clv = fin.contribution_margin * (new.first_payment + renewals)
        steps = horizon_periods(fin.horizon_years, book.period)
        pay = payback_periods(new.survival(steps) * new.first_payment, fin.contribution_margin, fin.acquisition_cost)
        ue = UnitEconomics(clv, fin.acquisition_cost, pay, book.period, cfg.company.currency)
    inputs = [i for i in TORNADO_INPUTS if acquisitions is not None or i not in ("acquisition_cost", "acquisition_volume")]
    records = {k: retention_fit_record(m) for k, m in fits.models.items()}
    refit = f"{fits.chosen} (refit to the valuation date)"
    records[refit] = retention_fit_record(model, refit)
    return SubscriptionValuation(
        result=result, financials=fin, retention_model=fits.chosen, choice_reason=fits.reason,
        future=sens.future_equity(),
        future_note=note, by_cohort=existing.equity_by_cohort(fin.contribution_margin, fin.discount_rate),
        unit_economics=ue,
        tornado=tornado(sens, {i: (1 - TORNADO_STEP, 1 + TORNADO_STEP) for i in inputs}),
        scenarios=scenarios(sens, fin_cfg.scenarios), subscribers=int(active["subscribers"].sum()),
        revenue_per_period=float(active["revenue_per_period"].sum()), valuation_date=cfg.valuation_date,
        data_window=book.data_window, calibration_end=cfg.calibration_end, period=book.period, models=records,
        comparison=fits.comparison, acquisitions=history,
    )


def write_subscription_valuation(valuation: SubscriptionValuation, out_dir: str | Path) -> Path:
    """``out_dir/valuation.json`` (strict JSON)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(out / "valuation.json", valuation.to_json_dict())


def value_subscription_company(config_path: str | Path, out_dir: str | Path, *, progress: Any = None) -> Path:
    """``cbcv value CONFIG --out DIR`` for a subscription company."""
    loaded = load_config(config_path)
    return write_subscription_valuation(value_subscriptions(loaded, progress=progress), out_dir)


def fit_subscription_file(
    source: str | Path, *, model: str, pooling: str, calibration_end: dt.date, billing_period: str,
    cohort_period: str | None, settings: SamplerSettings, loaded: LoadedConfig | None = None,
) -> tuple[CohortRetentionModel, dict[str, Any]]:
    """``cbcv fit`` on subscription records: validate ``source`` (with the config's column map,
    plans and extra columns when given), fit ``model`` (sbg, bdw) with ``pooling`` to the cohorts'
    durations at ``calibration_end``, and return it with the fit's metadata."""
    import tempfile

    from cbcv.config import DataSource
    from cbcv.data.subscription_summary import retention_durations
    from cbcv.pipeline.subscription_book import validate_spells

    cfg = loaded.config if loaded is not None else None
    data = cfg.data if cfg is not None else DataSource(source=str(source))
    cohort = cohort_period or (cfg.cohort_period if cfg is not None else billing_period)
    covariates = tuple(cfg.retention.covariates) if cfg is not None else ()
    path = Path(source)
    with tempfile.TemporaryDirectory(prefix="cbcv-fit-") as work:
        spells = Path(work) / "spells.parquet"
        rec, _ = validate_spells(path, spells, data, billing_period=billing_period,
                                 as_of=cfg.as_of if cfg is not None else None)
        durations = retention_durations(spells, end=calibration_end, cohort_period=cohort, by=covariates)
    fitted = CohortRetentionModel(model, pooling, covariates)  # type: ignore[arg-type]
    fitted.fit(durations, settings)
    meta = {"source": path.name, "sha256": rec.sha256, "calibration_end": calibration_end.isoformat(),
            "billing_period": billing_period, "cohort_period": cohort, "rows_read": rec.rows_read,
            "rows_rejected": rec.rows_rejected, "seed": settings.seed}
    return fitted, meta


def retention_parameter_table(records: dict[str, dict[str, Any]], *, cohorts: bool = False) -> pd.DataFrame:
    """The fits' parameters from their ``fit.json`` records (:func:`retention_fit_record`): one
    row per fit and parameter with mean, sd, 94% HDI, r_hat and ESS. By default the
    population-level ones and the covariate effects; ``cohorts=True``: each cohort's mean churn
    ``mu[<cohort>]`` and polarisation ``phi[<cohort>]`` instead."""
    rows = []
    for fit, rec in records.items():
        for name, st in rec["parameters"].items():
            per_cohort = "[" in name and not name.startswith("retention[")
            if per_cohort != cohorts or (cohorts and not name.startswith(("mu[", "phi["))):
                continue
            rows.append({"fit": fit, "parameter": name, **st})
    columns = ["fit", "parameter", "mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk", "ess_tail"]
    return pd.DataFrame(rows, columns=columns)


def holdout_errors(fits: RetentionFits) -> dict[str, pd.DataFrame]:
    """Each fit's holdout survival error by cohort (:func:`cbcv.predict.cohort_retention.survival_error`)."""
    return {name: R.survival_error(table).by_cohort for name, table in fits.survival.items()}
