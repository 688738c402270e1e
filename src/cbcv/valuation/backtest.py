"""Backtests: would the method have worked before? Forecasts made at past dates against what
then happened, beside two naive baselines.

Rolling origin (McCarthy & Fader 2018, J. Marketing Research 55(5), Table 2): for each origin
(a calibration end), the models fitted on the data to it forecast, for the periods after it,

* ``new_customers``: the acquisition model's expected new customers;
* ``transactions``: purchase occasions (customer-days; for a revenue panel, active
  customer-periods): today's customers' expected purchases per period
  (:func:`cbcv.valuation.drivers.existing_purchases_by_period`) plus each forecast cohort's
  (:func:`cbcv.valuation.drivers.new_customer_purchases_by_age`, its first purchase included);
* ``active_customers``: for a revenue panel only, where each active customer-period is one
  occasion, the expected transactions themselves (a purchase log would need the probability of
  at least one purchase in the period, which is not computed);
* ``revenue``: the same layers priced (:func:`cbcv.valuation.drivers.existing_revenue_by_period`,
  :func:`cbcv.valuation.drivers.new_customer_revenue_by_age`).

Baselines, from the actual series to the origin alone:

* ``constant retention`` (Gupta, Lehmann & Stuart 2004): new customers from the logistic curve
  of cumulative customers fitted to the history (:func:`cbcv.valuation.benchmarks.logistic_customers`);
  active customers ``A_t = r A_{t-1} + n_t`` with the retention ``r`` the mean of
  ``(A_t - n_t) / A_{t-1}`` over the last four periods; transactions and revenue per active
  customer held at their last-four-period means;
* ``trailing average``: every series at its mean over the last four periods.

The error of a forecast is its absolute percentage error against the actual; MAPE by horizon
averages it over the origins that reach that horizon (:func:`mape_by_horizon`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from cbcv.core.errors import DataError
from cbcv.models.acquisition import compare_holdout
from cbcv.valuation.benchmarks import logistic_customers
from cbcv.valuation.drivers import (
    NewCustomers,
    existing_purchases_by_period,
    existing_revenue_by_period,
    new_customer_purchases_by_age,
    new_customer_revenue_by_age,
)
from cbcv.valuation.equity import revenue_layers

#: The series a backtest forecasts, in the order the report shows them.
SERIES: tuple[str, ...] = ("new_customers", "active_customers", "transactions", "revenue")
#: Names of the methods compared (the model first).
MODEL, GLS, TRAILING = "model", "constant retention (GLS 2004)", "trailing 4-period average"
METHODS: tuple[str, ...] = (MODEL, GLS, TRAILING)
#: Periods the baselines average over.
WINDOW = 4


def model_forecast(
    freq_model: Any,
    spend_model: Any,
    units: pd.DataFrame,
    *,
    weights: np.ndarray,
    acquisitions: np.ndarray,
    first_spend: float,
    period: str,
    time_unit: str,
    n_draws: int,
    panel: bool,
    new: NewCustomers | None = None,
) -> dict[str, np.ndarray]:
    """``series -> (horizon,)`` mean forecasts of the models fitted at an origin (module
    notes). ``units``/``weights``: today's customers as valuation units and their counts;
    ``acquisitions``: ``(draws, horizon)`` expected new customers per forecast period; ``new``:
    their covariate mix (:class:`cbcv.valuation.drivers.NewCustomers`)."""
    acq = np.atleast_2d(np.asarray(acquisitions, dtype=float))
    horizon = acq.shape[1]
    common = {"period": period, "n_periods": horizon, "time_unit": time_unit, "n_draws": n_draws}
    purchases = revenue_layers(
        existing_purchases_by_period(freq_model, units, weights=weights, **common),
        new_customer_purchases_by_age(freq_model, new=new, **common), acq,
    ).total
    revenue = revenue_layers(
        existing_revenue_by_period(freq_model, spend_model, units, weights=weights, **common),
        new_customer_revenue_by_age(freq_model, spend_model, first_spend=first_spend, new=new, **common), acq,
    ).total
    out = {"new_customers": acq.mean(axis=0), "transactions": purchases.mean(axis=0),
           "revenue": revenue.mean(axis=0)}
    if panel:
        out["active_customers"] = out["transactions"]
    return out


def _since_start(t: np.ndarray, alpha: float, beta: float, gamma: float) -> np.ndarray:
    return logistic_customers(t, alpha, beta, gamma) - logistic_customers(0.0, alpha, beta, gamma)


def logistic_new_customers(new: np.ndarray, horizon: int) -> np.ndarray:
    """GLS's acquisitions: the logistic curve of cumulative customers, ``N(t) − N(0)`` with
    the clock at the start of the first period, fitted by least squares to periods ``1..k``
    and differenced over the ``horizon`` periods after ``k``."""
    k = len(new)
    t = np.arange(1, k + 1, dtype=float)
    cumulative = np.cumsum(new, dtype=float)
    total = cumulative[-1]
    start = (2.0 * total, 0.0, 0.3)
    try:
        params, _ = curve_fit(_since_start, t, cumulative, p0=start, maxfev=20_000,
                              bounds=([total, -50.0, 1e-6], [1e3 * max(total, 1.0), 50.0, 10.0]))
    except (RuntimeError, ValueError) as exc:
        raise DataError(f"backtest: the logistic acquisition curve does not fit ({exc})") from exc
    future = logistic_customers(np.arange(k, k + horizon + 1, dtype=float), *params)
    return np.diff(future)


def baseline_forecasts(history: pd.DataFrame, horizon: int, *, panel: bool) -> dict[str, dict[str, np.ndarray]]:
    """``method -> series -> (horizon,)`` forecasts of the two baselines (module notes) from
    ``history``: the actual series (:func:`cbcv.data.summary.period_activity`) to the origin."""
    if len(history) < WINDOW + 1:
        raise DataError(f"backtest: the baselines need {WINDOW + 1} periods of history, got {len(history)}")
    last = history.iloc[-WINDOW:]
    trailing = {s: np.full(horizon, float(last[s].mean())) for s in SERIES}
    active = history["active_customers"].to_numpy(dtype=float)
    new_hist = history["new_customers"].to_numpy(dtype=float)
    retained = (active[1:] - new_hist[1:]) / np.where(active[:-1] > 0, active[:-1], np.nan)
    r = float(np.nanmean(retained[-WINDOW:]))
    new = logistic_new_customers(new_hist, horizon)
    a, forecast_active = active[-1], np.empty(horizon)
    for h in range(horizon):
        a = r * a + new[h]
        forecast_active[h] = a
    per_active = {s: float((last[s] / last["active_customers"].where(last["active_customers"] > 0)).mean())
                  for s in ("transactions", "revenue")}
    gls = {"new_customers": new, "active_customers": forecast_active,
           **{s: forecast_active * v for s, v in per_active.items()}}
    if not panel:
        trailing.pop("active_customers")
        gls.pop("active_customers")
    return {GLS: gls, TRAILING: trailing}


@dataclass(frozen=True)
class Backtest:
    """Forecasts made at past origins against the actuals: ``errors`` has a row per (origin,
    horizon, series, method) with ``period``, ``forecast``, ``actual`` and ``ape`` (absolute
    percentage error, NaN where the actual is 0). ``method_note``: how the models were fitted."""

    errors: pd.DataFrame
    period: str
    method_note: str

    def mape(self) -> pd.DataFrame:
        """MAPE by horizon (:func:`mape_by_horizon`)."""
        return mape_by_horizon(self.errors)

    def to_json_dict(self) -> dict[str, Any]:
        """Strict-JSON dict: the MAPE table by series, method and horizon, and the origins."""
        table = self.mape()
        out: dict[str, Any] = {"period": self.period, "method_note": self.method_note,
                               "origins": sorted({str(o) for o in self.errors["origin"]})}
        mape: dict[str, dict[str, dict[str, float | None]]] = {}
        for (series, method), rows in table.groupby(["series", "method"], sort=False):
            mape.setdefault(str(series), {})[str(method)] = {
                str(int(h)): (None if not math.isfinite(v) else float(v))
                for h, v in zip(rows["horizon"], rows["mape"], strict=True)}
        out["mape_pct"] = mape
        return out


def error_rows(origin: Any, periods: pd.PeriodIndex, actual: pd.DataFrame,
               forecasts: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """Rows of :attr:`Backtest.errors` for one origin: ``forecasts`` by method and series over
    ``periods`` (the first ones after ``origin``), ``actual`` indexed by period."""
    rows = []
    for method, by_series in forecasts.items():
        for series, values in by_series.items():
            for h, (p, f) in enumerate(zip(periods, values, strict=False), start=1):
                a = float(actual.loc[p, series])
                rows.append({"origin": origin, "horizon": h, "period": p, "series": series, "method": method,
                             "forecast": float(f), "actual": a,
                             "ape": 100.0 * abs(float(f) - a) / a if a != 0 else np.nan})
    return pd.DataFrame(rows)


def mape_by_horizon(errors: pd.DataFrame) -> pd.DataFrame:
    """Per series, method and horizon: ``mape`` (mean absolute percentage error over the
    origins, in percent) and ``origins`` (how many reach that horizon)."""
    extra = [s for s in dict.fromkeys(errors["series"]) if s not in SERIES]
    order = {s: i for i, s in enumerate((*SERIES, *extra))} | {m: i for i, m in enumerate(METHODS)}
    out = (errors.groupby(["series", "method", "horizon"], sort=False)
           .agg(mape=("ape", "mean"), origins=("ape", "size")).reset_index())
    out = out.sort_values(["series", "method", "horizon"], key=lambda c: c.map(order) if c.name != "horizon" else c,
                          kind="stable")
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class AcquisitionBacktest:
    """New customers forecast from an origin against the actuals: ``table`` as
    :func:`cbcv.models.acquisition.compare_holdout` (period, actual, predicted, low, high,
    inside, error_pct) over the periods after ``origin`` (the calibration end)."""

    origin: str
    table: pd.DataFrame
    interval: float
    method: str

    @property
    def mape(self) -> float:
        """Mean absolute percentage error over the forecast periods (percent)."""
        return float(self.table["error_pct"].abs().mean())

    def to_json_dict(self) -> dict[str, Any]:
        rows = [{"period": str(r.period), "actual": float(r.actual), "predicted": float(r.predicted),
                 "low": float(r.low), "high": float(r.high), "inside": bool(r.inside),
                 "error_pct": None if not math.isfinite(r.error_pct) else float(r.error_pct)}
                for r in self.table.itertuples()]
        mape = self.mape
        return {"origin": self.origin, "interval": self.interval, "method": self.method, "periods": rows,
                "mape_pct": mape if math.isfinite(mape) else None}


def acquisition_backtest(model: Any, history: pd.DataFrame, actual: pd.DataFrame, *, horizon: int,
                         settings: Any, interval: float = 0.9) -> AcquisitionBacktest:
    """Fit the (unfitted) acquisition ``model`` to ``history`` (new customers per period to the
    origin) and forecast the ``horizon`` periods after it against ``actual`` (``period``,
    ``new_customers``)."""
    model.fit(history, settings)
    forecast = model.forecast(horizon, interval=interval)
    table = compare_holdout(forecast, actual[["period", "new_customers"]])
    return AcquisitionBacktest(origin=str(history["period"].iloc[-1]), table=table, interval=interval,
                               method=str(settings.method))
