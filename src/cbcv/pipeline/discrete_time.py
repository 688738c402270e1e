"""Discrete time or period-stamped purchases? The modelling choice for a revenue panel, judged
on the holdout.

A customer × period panel can be modelled in discrete time, each period after a customer's
first an opportunity to be active (BG/BB, Fader, Hardie & Shang 2010), or, as cbcv values it,
as period-stamped purchase occasions in continuous time (each active customer-period one
purchase dated at the period's first day; BG/NBD or Pareto/NBD with gamma-gamma spend). The
second keeps the whole valuation (DERT, spend, scoring at any size, the acquisition model, the
revenue forecast) on one set of models; :func:`discrete_time_comparison` checks that it loses
nothing where the two can be compared: the total active customer-periods of the holdout, for
the customers acquired by the calibration end (those whose acquisition the data show).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cbcv.config import LoadedConfig
from cbcv.models import BetaGeoBetaBinomModel
from cbcv.models.base import CLVModel, SamplerSettings
from cbcv.pipeline.company_data import CompanyData
from cbcv.valuation.holdout import HoldoutTotals, discrete_holdout_totals, holdout_totals


def discrete_time_comparison(
    loaded: LoadedConfig, data: CompanyData, frequency: dict[str, CLVModel], *, settings: SamplerSettings,
    progress: Any = None,
) -> pd.DataFrame:
    """One row per model: ``model``, ``time`` (how it reads the panel), the holdout's predicted
    active periods (``predicted``, ``low``, ``high``: 90% interval), ``actual`` and ``error_pct``:
    the period-stamped purchase models (``frequency``, fitted to the calibration period) and a
    BG/BB fitted now with ``settings`` to the same customers' active periods."""
    period = loaded.config.data.panel_period
    periods = data.period_summary(period)
    if progress:
        progress(f"fitting bgbb on active {period}s ({settings.method}) ...")
    bgbb = BetaGeoBetaBinomModel()
    bgbb.fit(periods[["x", "t_x", "n", "count"]], settings)
    rows: list[tuple[str, str, HoldoutTotals]] = [
        (name, f"period-stamped purchases (continuous time, each active {period} one occasion)",
         holdout_totals(model, data.counted)) for name, model in frequency.items()
    ]
    rows.append(("bgbb", f"discrete time (each {period} after the first an opportunity)",
                 discrete_holdout_totals(bgbb, periods)))
    out = []
    for name, time, totals in rows:
        d = totals.to_dict()
        out.append({"model": name, "time": time, "predicted": d["predicted_mean"], "low": d["predicted_low"],
                    "high": d["predicted_high"], "actual": d["actual"], "error_pct": d["error_pct"]})
    return pd.DataFrame(out)
