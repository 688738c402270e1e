"""Spend predictions over posterior draws: the gamma-gamma model's expected spend per future
transaction (Fader, Hardie & Lee 2005b, "RFM and CLV: Using Iso-Value Curves for Customer Base
Analysis", *JMR* 42 (4), eq. 5; Colombo & Jiang 1999, "A stochastic RFM model")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cbcv.core.chunks import Params
from cbcv.core.errors import CbcvError
from cbcv.models import CLVModel, GammaGammaModel
from cbcv.predict.covariates import covariate_groups
from cbcv.predict.engine import MAX_BYTES, Rows, distinct_rows, model_class, run

SPEND_COLUMNS = ("x", "mean_repeat_spend")


def spend_given_history(p: Params, d: Rows) -> np.ndarray:
    """E[Z | x, z̄] = p(γ + x z̄)/(p x + q − 1), per draw and row; p γ/(q − 1), the population
    mean, where x = 0 (z̄ = 0) (Fader, Hardie & Lee 2005b, eq. 5;
    tests/test_predict.py::test_population_expectation_and_spend)."""
    x, z = d["x"], d["mean_repeat_spend"]
    return p["p"] * (p["gamma"] + x * z) / (p["p"] * x + p["q"] - 1.0)


@covariate_groups
def expected_spend(
    model: CLVModel, data: pd.DataFrame, *, max_draws: int | None = None, max_bytes: int = MAX_BYTES
) -> np.ndarray:
    """Expected spend per future transaction under gamma-gamma, per draw and customer
    (:func:`spend_given_history`); the population mean p γ/(q − 1) for customers without repeat
    purchases (tests/test_predict.py::test_population_expectation_and_spend)."""
    cls = model_class(model)
    if cls is None or not issubclass(cls, GammaGammaModel):
        raise CbcvError(f"model {getattr(model, 'name', model)!r} does not predict spend")
    frame = data[list(SPEND_COLUMNS)].copy()
    frame["mean_repeat_spend"] = frame["mean_repeat_spend"].where(frame["x"] > 0, 0.0).fillna(0.0)
    rows, inverse = distinct_rows(frame, SPEND_COLUMNS)
    return run(spend_given_history, model, rows, inverse, max_draws=max_draws, max_bytes=max_bytes)
