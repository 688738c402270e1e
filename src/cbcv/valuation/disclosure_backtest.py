"""Holdout validation of a disclosures model, as McCarthy & Fader (2018, J. Marketing Research
55(5), Table 2): rolling calibration ends, each disclosed series forecast 1 to 8 periods ahead,
the mean absolute percentage error (MAPE) by horizon beside two baselines.

For each origin ``o`` (a period from which at least :data:`MIN_REPORTED` periods of a customer
series are reported, up to the second-last period), the model is refitted on the table truncated
at ``o`` and forecasts its expected series for the periods after ``o``; marketing spend, where it
is the acquisition covariate, takes its actual values (a conditional forecast, as in the paper:
the plan is the firm's decision, not the model's). Baselines, from each series' reported values
to ``o`` alone:

* ``constant retention (GLS 2004)``: Gupta, Lehmann & Stuart's logistic curve
  ``N(t) = alpha / (1 + exp(-beta - gamma t))`` (:func:`cbcv.valuation.benchmarks.logistic_customers`)
  fitted by least squares to the customer count (``customers_end`` or ``active_customers``) and
  extrapolated; new customers from the logistic curve of their cumulative sum
  (:func:`cbcv.valuation.backtest.logistic_new_customers`); every other series at its last four
  periods' mean ratio to the count;
* ``trailing 4-period average``: every series at the mean of its last four reported values.

Errors are ``|forecast - actual| / actual`` in percent over the reported actuals
(:class:`cbcv.valuation.backtest.Backtest`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from cbcv.core.errors import DataError
from cbcv.models.disclosure_terms import COVARIATE, MODELLED
from cbcv.models.disclosures import DisclosureModel
from cbcv.valuation.backtest import GLS, MODEL, TRAILING, WINDOW, Backtest, logistic_new_customers
from cbcv.valuation.benchmarks import logistic_customers

#: Reported periods of a customer series before the first origin.
MIN_REPORTED = 5
#: Longest horizon compared.
MAX_HORIZON = 8
#: The customer counts the GLS baseline extrapolates, in order of preference.
COUNTS: tuple[str, ...] = ("customers_end", "active_customers")


def origins(table: pd.DataFrame, min_reported: int = MIN_REPORTED) -> list[pd.Period]:
    """The rolling origins: every period from the ``min_reported``-th reported value of a
    customer count on, except the last (nothing after it to compare)."""
    count = next((c for c in COUNTS if c in table and table[c].notna().any()), None)
    if count is None:
        raise DataError("disclosures backtest: no customer count (customers_end or active_customers) is disclosed")
    reported = table.index[table[count].notna()]
    if len(reported) < min_reported + 1:
        raise DataError(f"disclosures backtest: {count} is reported in {len(reported)} periods; at least "
                        f"{min_reported + 1} are needed")
    first = reported[min_reported - 1]
    return [p for p in table.index if first <= p < table.index[-1]]


def _logistic_count(values: np.ndarray, horizon: int) -> np.ndarray:
    """The logistic curve fitted to a count series' reported values (NaN-free, in order, at
    their period numbers) and evaluated ``1..horizon`` periods after the last."""
    t = np.flatnonzero(np.isfinite(values)).astype(float) + 1.0
    y = values[np.isfinite(values)]
    top = float(y.max())
    try:
        params, _ = curve_fit(logistic_customers, t, y, p0=(2.0 * top, -2.0, 0.3), maxfev=20_000,
                              bounds=([top * 0.5, -50.0, 1e-6], [1e3 * max(top, 1.0), 50.0, 10.0]))
    except (RuntimeError, ValueError):  # the curve does not fit: hold the last value
        return np.full(horizon, y[-1])
    return logistic_customers(len(values) + np.arange(1, horizon + 1, dtype=float), *params)


def baseline_forecasts(history: pd.DataFrame, series: Sequence[str], horizon: int) -> dict[str, dict[str, np.ndarray]]:
    """``method -> series -> (horizon,)`` forecasts of the two baselines (module docstring)."""
    trailing = {s: np.full(horizon, float(history[s].dropna().iloc[-WINDOW:].mean())) for s in series}
    count = next(c for c in COUNTS if c in history and history[c].notna().any())
    counts = history[count].to_numpy(dtype=float)
    forecast_count = _logistic_count(counts, horizon)
    gls: dict[str, np.ndarray] = {}
    for s in series:
        if s == count:
            gls[s] = forecast_count
        elif s == "new_customers":
            new = history[s].to_numpy(dtype=float)
            gls[s] = logistic_new_customers(np.nan_to_num(new), horizon) if np.isfinite(new).sum() >= 3 else trailing[s]
        else:
            both = history[[s, count]].dropna()
            ratio = (both[s] / both[count].where(both[count] > 0)).iloc[-WINDOW:].mean()
            gls[s] = forecast_count * float(ratio)
    return {GLS: gls, TRAILING: trailing}


def disclosure_backtest(
    make_model: Callable[[], DisclosureModel], fit: Callable[[DisclosureModel, pd.DataFrame], None],
    table: pd.DataFrame, *, horizon: int = MAX_HORIZON, at: Sequence[pd.Period] | None = None,
    method_note: str = "", progress: Callable[[str], None] | None = None,
) -> Backtest:
    """Rolling-origin forecasts of every modelled, disclosed series against the actuals
    (module docstring). ``make_model()`` returns an unfitted model, ``fit(model, table)`` fits
    it; ``at``: the origins (default :func:`origins`)."""
    rows = []
    for origin in (list(at) if at is not None else origins(table)):
        history = table.loc[:origin]
        future = table.loc[origin + 1:].iloc[:horizon]
        if future.empty:
            continue
        model = make_model()
        if progress:
            progress(f"backtest: refitting to {origin} ...")
        fit(model, history)
        series = [s for s in MODELLED[str(model.setting)] if s in history and history[s].notna().sum() >= WINDOW
                  and future[s].notna().any()]
        marketing = future[COVARIATE].to_numpy(dtype=float) if COVARIATE in future else None
        paths = model.cohort_paths(len(future), marketing, max_draws=200)
        forecasts = {MODEL: {s: paths.total(s)[:, paths.n_fitted:].mean(axis=0) for s in series}}
        forecasts.update(baseline_forecasts(history, series, len(future)))
        for method, by_series in forecasts.items():
            for s, values in by_series.items():
                for h, (period, f) in enumerate(zip(future.index, values, strict=True), start=1):
                    a = future.loc[period, s]
                    if np.isfinite(a):
                        rows.append({"origin": str(origin), "horizon": h, "period": str(period), "series": s,
                                     "method": method, "forecast": float(f), "actual": float(a),
                                     "ape": 100.0 * abs(float(f) - a) / a if a != 0 else np.nan})
    if not rows:
        raise DataError("disclosures backtest: no origin has reported actuals after it")
    unit = "quarter" if table.index.freqstr.startswith("Q") else "month"  # a word, not pandas' "Q-DEC"
    return Backtest(pd.DataFrame(rows), unit, method_note)
