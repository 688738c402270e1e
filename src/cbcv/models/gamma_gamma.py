"""The gamma-gamma model of the monetary value of a customer's transactions.

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: Using Iso-Value Curves for
Customer Base Analysis", *Journal of Marketing Research* 42 (4), 415-430; and Fader, P. S. and
Hardie, B. G. S. (2013), "The Gamma-Gamma Model of Monetary Value" (note).

A customer's transaction values are i.i.d. Gamma(``p``, ``nu``) (shape ``p``, rate ``nu``); across
customers ``nu ~ Gamma(q, gamma)`` (shape ``q``, rate ``gamma``). Given ``x`` transactions, their
mean ``zbar`` is Gamma(``p x``, ``nu x``), and integrating over ``nu`` gives the note's marginal
density of the observed mean (the note's marginal distribution of ``zbar``)

    f(zbar | p, q, gamma; x) = Gamma(p x + q) / (Gamma(p x) Gamma(q))
                               * gamma^q * zbar^(p x - 1) * x^(p x) / (gamma + x zbar)^(p x + q)

which this module evaluates on the log scale. As in the papers, the model is fitted to the
*repeat* transactions: ``x`` is the number of repeat transactions in the calibration period and
``mean_repeat_spend`` their mean value; customers without repeat transactions carry no
information on spend per transaction and are left out of the fit (their number is reported).
The population mean spend per transaction is ``p gamma / (q - 1)`` (finite for ``q > 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt

from cbcv.core.errors import DataError
from cbcv.models.base import CLVModel, Prior, SamplerSettings
from cbcv.models.inputs import compress_counts, numeric_column, require_columns, whole_numbers
from cbcv.models.priors import log_normal_priors

#: Required columns.
GAMMA_GAMMA_COLUMNS: tuple[str, ...] = ("x", "mean_repeat_spend")

NonPositive = Literal["drop", "error"]


def gamma_gamma_rows(
    data: pd.DataFrame, nonpositive: NonPositive = "drop", model: str = "gamma_gamma"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows the gamma-gamma model is fitted on, and how many were left out and why.

    Keeps rows with ``x > 0`` and a positive mean repeat spend. Rows with ``x == 0`` are left
    out (``no_repeat``). A non-positive mean (possible when returns are netted) is left out
    (``nonpositive_spend``) or, with ``nonpositive="error"``, raises. A missing or non-finite
    mean where ``x > 0``, or an ``x`` that is not a whole number >= 0, raises a DataError
    naming the row.
    """
    require_columns(data, GAMMA_GAMMA_COLUMNS, model)
    x = whole_numbers(data, "x", model)
    spend = numeric_column(data, "mean_repeat_spend", model)
    repeat = x > 0
    bad = repeat & ~np.isfinite(spend)
    if bad.any():
        row = data.index[int(np.flatnonzero(bad)[0])]
        raise DataError(
            f"{model}: column 'mean_repeat_spend' row {row}: missing or not finite for a "
            f"customer with x = {int(x[np.flatnonzero(bad)[0]])} repeat transactions"
        )
    nonpos = repeat & (spend <= 0)
    if nonpos.any() and nonpositive == "error":
        row = data.index[int(np.flatnonzero(nonpos)[0])]
        raise DataError(
            f"{model}: column 'mean_repeat_spend' row {row}: must be positive, got "
            f"{spend[np.flatnonzero(nonpos)[0]]!r}"
        )
    keep = repeat & ~nonpos
    if not keep.any():
        raise DataError(f"{model}: no customer with x > 0 and a positive mean_repeat_spend to fit")
    kept = pd.DataFrame({"x": x[keep], "mean_repeat_spend": spend[keep]}, index=data.index[keep])
    dropped = {"no_repeat": int((~repeat).sum()), "nonpositive_spend": int(nonpos.sum())}
    return kept, dropped


class GammaGammaModel(CLVModel):
    """Gamma-gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie 2013).

    Parameters: ``p`` (shape of a transaction's value), ``q`` and ``gamma`` (shape and rate of
    the Gamma distribution of the per-customer rate ``nu``). Data: columns ``x`` and
    ``mean_repeat_spend`` (as :func:`cbcv.data.summary.customer_summary` returns them).

    Default priors (override with ``priors={...}``), normal on the log scale
    (:mod:`cbcv.models.priors`; the fit samples log θ and MAP is the mode in log θ):
    ``log p, log q ~ Normal(0, 3)`` (median 1, 95% between 0.003 and 360; 1/√p is the
    coefficient of variation of a customer's transaction values) and ``log gamma ~ Normal(0, 5)``,
    whose size scales with the currency unit (95% between 5e-5 and 2e4). On CDNOW MAP lands
    within 0.1% of the published p, q, gamma. With ``HalfFlat`` priors the MAP is the
    maximum-likelihood estimate.

    ``nonpositive``: what to do with a customer whose mean repeat spend is zero or negative
    (``"drop"``, reported in ``attrs['n_dropped_nonpositive_spend']``, or ``"error"``).
    After a fit, ``n_dropped`` says how many input rows were left out and why, and the
    pointwise log-likelihood has one entry per *fitted* customer (``fitted_index`` holds their
    labels in the input frame).
    """

    name: ClassVar[str] = "gamma_gamma"
    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")
    default_priors: ClassVar[Mapping[str, Prior]] = log_normal_priors(("p", "q"), ("gamma",))

    def __init__(
        self, priors: Mapping[str, Prior] | None = None, nonpositive: NonPositive = "drop"
    ) -> None:
        super().__init__(priors)
        if nonpositive not in ("drop", "error"):
            raise DataError(
                f"{self.name}: nonpositive must be 'drop' or 'error', got {nonpositive!r}"
            )
        self.nonpositive: NonPositive = nonpositive
        self.n_dropped: dict[str, int] | None = None
        self.fitted_index: pd.Index | None = None

    def prepare(self, data: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
        kept, _ = gamma_gamma_rows(data, self.nonpositive, self.name)
        distinct, inverse = compress_counts(kept, list(GAMMA_GAMMA_COLUMNS))
        arrays = {k: distinct[k].to_numpy(dtype=float) for k in (*GAMMA_GAMMA_COLUMNS, "weight")}
        return arrays, inverse

    def fitted_rows(self, data: pd.DataFrame) -> np.ndarray:
        """The rows with repeat transactions and a positive mean spend (:func:`gamma_gamma_rows`)."""
        kept, _ = gamma_gamma_rows(data.reset_index(drop=True), self.nonpositive, self.name)
        mask = np.zeros(len(data), dtype=bool)
        mask[kept.index.to_numpy()] = True
        return mask

    def logp(self, params: Mapping[str, Any], arrays: Mapping[str, Any]) -> pt.TensorVariable:
        """Per distinct row: log f(zbar | p, q, gamma; x), the marginal density of the mean in
        Fader & Hardie (2013) (the model of Colombo & Jiang 1999, as used in Fader, Hardie & Lee
        2005, "RFM and CLV"; tests/test_models_gamma_gamma.py::test_published_estimates_cdnow and
        tests/test_models_gamma_gamma.py::test_density_is_the_gamma_mixture)."""
        p, q, gamma = params["p"], params["q"], params["gamma"]
        x, z = arrays["x"], arrays["mean_repeat_spend"]
        px = p * x
        return (
            pt.gammaln(px + q)
            - pt.gammaln(px)
            - pt.gammaln(q)
            + q * pt.log(gamma)
            + (px - 1.0) * pt.log(z)
            + px * pt.log(x)
            - (px + q) * pt.log(gamma + x * z)
        )

    def total_logp(self, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> pt.TensorVariable:
        """Σ weight × :meth:`logp` with the terms in x alone (log-gammas, px·log x) summed once
        per distinct x and the data-only sums of log z̄ taken outside the graph; only
        (px + q)·log(γ + x z̄) stays per row (one log instead of three log-gammas and three
        logs). Equal to the pointwise sum up to rounding (tests/test_models_gamma_gamma.py)."""
        p, q, gamma = params["p"], params["q"], params["gamma"]
        x = np.asarray(arrays["x"], dtype=float)
        z = np.asarray(arrays["mean_repeat_spend"], dtype=float)
        w = np.asarray(arrays["weight"], dtype=float)
        ux, ix = np.unique(x, return_inverse=True)
        ix = ix.ravel()
        wx = np.bincount(ix, weights=w, minlength=len(ux))
        log_z = np.log(z)
        # Σ w (px − 1) log z = p Σ_x x Σ_rows w log z − Σ w log z
        wlogz_x = np.bincount(ix, weights=w * log_z, minlength=len(ux))
        xs, wx_t = pt.as_tensor_variable(ux), pt.as_tensor_variable(wx)
        px = p * xs
        per_x = pt.sum(
            wx_t * (pt.gammaln(px + q) - pt.gammaln(px) + px * pt.log(xs))
            + px * pt.as_tensor_variable(wlogz_x)
        )
        # shared, not constants: a scalar constant is written into the compiled C code, which would
        # then be compiled anew for every data set
        total_weight = pytensor.shared(np.float64(w.sum()), name="sum_weight")
        sum_log_z = pytensor.shared(np.float64(np.sum(w * log_z)), name="sum_weight_log_z")
        constant = total_weight * (q * pt.log(gamma) - pt.gammaln(q)) - sum_log_z
        rows = pt.sum(
            pt.as_tensor_variable(w)
            * (p * pt.as_tensor_variable(x) + q)
            * pt.log(gamma + pt.as_tensor_variable(x * z))
        )
        return per_x + constant - rows

    def dropped_rows(self, data: pd.DataFrame) -> dict[str, int]:
        """Input rows the fit leaves out, by reason (``no_repeat``, ``nonpositive_spend``)."""
        return gamma_gamma_rows(data, self.nonpositive, self.name)[1]

    def fit(self, data: pd.DataFrame, settings: SamplerSettings | None = None) -> az.InferenceData:
        """Fit on the customers with repeat transactions; the others are counted in
        ``attrs['n_dropped_no_repeat']`` (and ``attrs['n_dropped_nonpositive_spend']``)."""
        kept, dropped = gamma_gamma_rows(data, self.nonpositive, self.name)
        idata = super().fit(data, settings)
        self.n_dropped = dropped
        self.fitted_index = kept.index
        idata.attrs["n_customers"] = int(len(kept))
        idata.attrs["n_rows"] = int(len(data))
        for reason, count in dropped.items():
            idata.attrs[f"n_dropped_{reason}"] = count
        return idata

