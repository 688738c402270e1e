"""Holdout validation with and without the customer covariates: do they earn their place?

The company's models fitted with its covariates (:func:`cbcv.pipeline.workflow.fit_company_models`)
and the same models fitted without them on the same calibration data are compared on the
holdout period, in total and per covariate level (:func:`cbcv.valuation.holdout.compare_models`
and :func:`cbcv.valuation.holdout.holdout_by_group`). A model without covariates predicts a
group from the whole base's history, so its errors by group show what the covariates add even
when the totals agree; LOO (elpd) compares the two fits on the same customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from cbcv.config import LoadedConfig
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.workflow import CompanyFits, fit_company_models
from cbcv.valuation import holdout as V

#: How the fit without covariates is named in the comparison tables.
PLAIN = "{name} without covariates"
COVARIATES = "{name} with covariates"


@dataclass(frozen=True)
class CovariateHoldout:
    """The comparison: ``table`` (one row per fit, :func:`cbcv.valuation.holdout.compare_models`)
    and ``by_group`` (per purchase model and categorical covariate: actual and predicted holdout
    transactions per level, with and without the covariates)."""

    table: pd.DataFrame
    by_group: pd.DataFrame


def covariate_holdout(loaded: LoadedConfig, data: CompanyData, fits: CompanyFits,
                      progress: Any = None) -> CovariateHoldout:
    """Compare the purchase models of ``fits`` (:func:`fit_company_models` with the company's
    covariates, on the calibration ``data`` with a holdout period) with the same models fitted
    without them on the same data."""
    if data.covariates is None or data.settings.holdout_end is None:
        raise ValueError("covariate holdout: needs customer covariates and a holdout period")
    freq, summary = fits.frequency_models(), fits.summary
    plain = fit_company_models(loaded, data.without_covariates(), None, progress).models
    fits = {**{COVARIATES.format(name=n): m for n, m in freq.items()},
            **{PLAIN.format(name=n): plain[n] for n in freq}}
    table = V.compare_models(fits, summary)
    columns = [c.name for c in next(iter(freq.values())).design.covariates if c.kind == "categorical"]  # type: ignore[attr-defined]
    rows = []
    for name in freq:
        for column in columns:
            with_cov = V.holdout_by_group(freq[name], summary, column).set_index(column)
            without = V.holdout_by_group(plain[name], summary, column).set_index(column)
            for level in with_cov.index:
                rows.append({
                    "model": name, "covariate": column, "level": str(level),
                    "actual": float(with_cov.loc[level, "actual"]),
                    "predicted_without": float(without.loc[level, "predicted_mean"]),
                    "error_pct_without": float(without.loc[level, "error_pct"]),
                    "predicted_with": float(with_cov.loc[level, "predicted_mean"]),
                    "predicted_with_low": float(with_cov.loc[level, "predicted_low"]),
                    "predicted_with_high": float(with_cov.loc[level, "predicted_high"]),
                    "error_pct_with": float(with_cov.loc[level, "error_pct"]),
                })
    return CovariateHoldout(table, pd.DataFrame(rows))
