"""A company's backtests (:mod:`cbcv.valuation.backtest`) over its validated data: "would this
have worked before?"

* **Acquisition**: the acquisition model fitted, with the config's sampler, to the new customers
  up to the calibration end and forecast over the complete periods after it to the valuation
  date (for Madrigal: fitted to 2018Q4, the four quarters of 2019), each period's error, whether
  the actual lies in the forecast interval, and the MAPE.
* **Rolling origin** (McCarthy & Fader 2018, Table 2): for each origin from
  :data:`MIN_ORIGIN_PERIODS` periods of data on, the purchase model the holdout chose, gamma-gamma
  and the acquisition model fitted by **MAP** on the data to that origin
  (:meth:`cbcv.pipeline.company_data.CompanyData.at`; with the customer covariates when the
  company has them, new customers at the covariate mix of that origin's last year), forecasting new customers, active
  customers (revenue panels), transactions and revenue 1 to :data:`MAX_HORIZON` periods ahead,
  beside the two naive baselines. MAP keeps a dozen refits within the report's time; the
  forecasts are the models' expectations at the posterior mode.

The actual series are counted in DuckDB from the validated log
(:func:`cbcv.data.summary.period_activity`); new customers exclude those acquired before a
panel starts, as the acquisition history does. Only complete periods are compared.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cbcv.config import LoadedConfig
from cbcv.core import interrupt
from cbcv.core.cache import atomic_write_json
from cbcv.core.errors import CbcvError
from cbcv.data.summary import period_activity
from cbcv.models.acquisition_terms import MarketSize
from cbcv.models.base import SamplerSettings
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.valuation import acquisition_model, market_size
from cbcv.pipeline.workflow import fit_company_model
from cbcv.valuation.acquisition import MIN_ACQUISITION_PERIODS, active_periods
from cbcv.valuation.backtest import (
    MODEL,
    AcquisitionBacktest,
    Backtest,
    acquisition_backtest,
    baseline_forecasts,
    error_rows,
    model_forecast,
)
from cbcv.valuation.holdout import customer_weights

#: Periods of data before the first rolling origin (McCarthy & Fader: 12 quarters).
MIN_ORIGIN_PERIODS = 12
#: Longest horizon of the rolling-origin forecasts.
MAX_HORIZON = 8
#: Draws of the (MAP) fits behind each rolling-origin forecast.
ROLLING_DRAWS = 1
#: Written into the report's run folder by the backtests notebook.
BACKTESTS_FILE = "backtests.json"


@dataclass(frozen=True)
class CompanyBacktests:
    """The company's backtests; each is ``None`` with a note saying why when it cannot run.
    ``actual``: the actual series by period (aggregates only)."""

    period: str
    actual: pd.DataFrame
    acquisition: AcquisitionBacktest | None
    acquisition_note: str
    rolling: Backtest | None
    rolling_note: str

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "acquisition": self.acquisition.to_json_dict() if self.acquisition else None,
            "acquisition_note": self.acquisition_note,
            "rolling_origin": self.rolling.to_json_dict() if self.rolling else None,
            "rolling_origin_note": self.rolling_note,
        }


def complete_activity(data: CompanyData, period: str, end: dt.date) -> pd.DataFrame:
    """The actual series per complete ``period`` to ``end`` (a period that ``end`` cuts is left out)."""
    actual = period_activity(data.accepted, period=period, end=end, births=data.observed_birth,
                             memory_limit=data.engine.memory_limit,
                             zero_amount_purchases=data.zero_amount_purchases)
    if len(actual) and pd.Timestamp(end) < actual["period"].iloc[-1].end_time.normalize():
        actual = actual.iloc[:-1]
    return actual.reset_index(drop=True)


def company_backtests(
    loaded: LoadedConfig, data: CompanyData, purchase_model: str, *, settings: SamplerSettings,
    progress: Any = None,
) -> CompanyBacktests:
    """The backtests of the module notes. ``data``: the company's data to the calibration end;
    ``purchase_model``: the one the holdout chose; ``settings``: the config's sampler, for the
    acquisition backtest."""
    cfg = loaded.config
    fin = cfg.financials
    period = fin.acquisition_period if fin is not None else "quarter"
    actual = complete_activity(data, period, cfg.valuation_date)
    market = None if fin is None else market_size(fin)
    seasonal = bool(fin and fin.acquisition_seasonality)
    if market is None:
        note = "no market size in the config (financials.market_size): no acquisition model to test"
        return CompanyBacktests(period, actual, None, note, None, note)
    acq, acq_note = _acquisition(data, actual, market, period, seasonal, settings, progress)
    rolling, rolling_note = _rolling(loaded, data, actual, purchase_model, market, period, seasonal, progress)
    return CompanyBacktests(period, actual, acq, acq_note, rolling, rolling_note)


def _acquisition(data: CompanyData, actual: pd.DataFrame, market: MarketSize, period: str, seasonal: bool,
                 settings: SamplerSettings, progress: Any) -> tuple[AcquisitionBacktest | None, str]:
    history = data.acquisition_history(period)
    active = active_periods(history)
    if active < MIN_ACQUISITION_PERIODS:
        return None, (f"{active} {period}(s) with new customers to the calibration end: an acquisition model "
                      f"needs {MIN_ACQUISITION_PERIODS} (as for the valuation's future customers)")
    after = actual.loc[actual["period"] > history["period"].iloc[-1]]
    if after.empty:
        return None, f"no complete {period} after the calibration end to forecast"
    if progress:
        progress(f"acquisition backtest: fit to {history['period'].iloc[-1]}, forecast {len(after)} {period}s ...")
    model = acquisition_model(market, period, seasonal)
    test = acquisition_backtest(model, history, after, horizon=len(after), settings=settings)
    how = "NUTS" if settings.method == "nuts" else settings.method.upper()
    return test, (f"fitted by {how} to the new customers of {len(history)} {period}s to "
                  f"{test.origin}, forecast for the {len(after)} {period}s after it")


def _rolling(loaded: LoadedConfig, data: CompanyData, actual: pd.DataFrame, purchase_model: str,
             market: MarketSize, period: str, seasonal: bool, progress: Any) -> tuple[Backtest | None, str]:
    cfg = loaded.config
    origins = range(MIN_ORIGIN_PERIODS, len(actual))
    if not origins:
        return None, (f"{len(actual)} complete {period}s of data: the rolling origins start after "
                      f"{MIN_ORIGIN_PERIODS} {period}s and need one more to forecast")
    mapped = SamplerSettings(method="map", seed=cfg.seed)
    indexed = actual.set_index("period")
    frames = []
    for k in origins:
        origin = actual["period"].iloc[k - 1]
        horizon = min(MAX_HORIZON, len(actual) - k)
        if progress:
            progress(f"rolling origin {origin}: MAP fits, {horizon} {period}s ahead ...")
        at = data.at(origin.end_time.date())
        history = at.acquisition_history(period)
        if active_periods(history) < MIN_ACQUISITION_PERIODS:
            continue  # no acquisition model at this origin (the valuation would value none)
        freq = fit_company_model(at, purchase_model, mapped)
        spend = fit_company_model(at, "gamma_gamma", mapped)
        acq = acquisition_model(market, period, seasonal)
        acq.fit(history, mapped)
        units = at.valuation_units()
        forecast = model_forecast(
            freq, spend, units, weights=customer_weights(units),
            acquisitions=acq.forecast(horizon).expected.to_numpy(), first_spend=at.first_purchase_spend().mean,
            period=period, time_unit=cfg.time_unit, n_draws=ROLLING_DRAWS, panel=cfg.data.is_panel,
            new=at.new_customers(),
        )
        interrupt.check()
        baselines = baseline_forecasts(actual.iloc[:k], horizon, panel=cfg.data.is_panel)
        periods = actual["period"].iloc[k:k + horizon]
        frames.append(error_rows(str(origin), pd.PeriodIndex(periods), indexed, {MODEL: forecast, **baselines}))
    if not frames:
        return None, f"no origin has the {MIN_ACQUISITION_PERIODS} {period}s of acquisitions an acquisition model needs"
    errors = pd.concat(frames, ignore_index=True)
    if errors.empty:
        raise CbcvError("backtest: no forecast to compare")
    n = errors["origin"].nunique()
    note = (f"{n} origin{'s' if n > 1 else ''} ({errors['origin'].iloc[0]} to {errors['origin'].iloc[-1]}); the models refitted at each by MAP (posterior mode), "
            f"{purchase_model} for purchases as the holdout chose"
            + (", every model with the customer covariates" if data.covariates is not None else ""))
    return Backtest(errors=errors, period=period, method_note=note), note


def write_backtests(backtests: CompanyBacktests, run_dir: str | Path) -> Path:
    """``run_dir/backtests.json`` (strict JSON; aggregates only, no customer identifiers)."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(out / BACKTESTS_FILE, backtests.to_json_dict())


#: Series names as the report's tables show them.
SERIES_NAMES = {"new_customers": "new customers", "active_customers": "active customers",
                "transactions": "transactions", "revenue": "revenue"}


def mape_table(test: Backtest) -> pd.DataFrame:
    """The rolling-origin MAPE (percent) as the report shows it: a row per series and method, a
    column per horizon (``"1 ahead"`` ...)."""
    table = test.mape()
    wide = table.pivot_table(index=["series", "method"], columns="horizon", values="mape", sort=False)
    wide.columns = [f"{h} ahead" for h in wide.columns]
    out = wide.reset_index()
    out["series"] = out["series"].map(lambda s: SERIES_NAMES.get(s, s))
    return out


def origins_by_horizon(test: Backtest) -> str:
    """How many origins reach each horizon, as a sentence's end (``"1 ahead: 4, 2 ahead: 3"``)."""
    counts = test.mape().drop_duplicates("horizon")
    return ", ".join(f"{int(h)} ahead: {int(n)}" for h, n in zip(counts["horizon"], counts["origins"], strict=True))


def acquisition_table(test: AcquisitionBacktest) -> pd.DataFrame:
    """The acquisition backtest as the report shows it: period, actual and forecast new
    customers, the forecast's interval, whether the actual is inside it and the error (%)."""
    t = test.table
    pct = f"{test.interval:.0%}"
    return pd.DataFrame({
        "period": t["period"].astype(str), "actual": t["actual"], "forecast": t["predicted"],
        f"{pct} low": t["low"], f"{pct} high": t["high"],
        "inside": t["inside"].map({True: "yes", False: "no"}), "error (%)": t["error_pct"],
    })
