"""The paired posterior draws that CLV is computed over: :class:`ScoringDraws`.

Draw ``d`` of the purchase model meets draw ``d`` of the spend model, both thinned evenly to the
same number of draws (the smaller of the two and ``max_draws``). The two models are fitted
separately, on likelihoods that share no parameter (gamma-gamma assumes spend independent of the
purchase process), so their posteriors are independent and pairing by index is an independent
pairing: the product carries both uncertainties. The margin and the discount rate are a number
or one value per draw; with one rate per draw, DERT is evaluated at each draw's own rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from cbcv import predict as P
from cbcv.core.discount import continuous_rate
from cbcv.core.draws import per_draw
from cbcv.core.errors import CbcvError
from cbcv.core.units import periods_per_year
from cbcv.models.base import CLVModel
from cbcv.models.covariate_design import design_groups
from cbcv.models.covariates import CovariateModel
from cbcv.predict.covariates import covariate_groups

#: How the two posteriors are paired (kept in the results' ``meta``).
PAIRING = "draw d of the purchase model with draw d of the spend model (independent posteriors)"


def n_model_draws(model: CLVModel) -> int:
    """Number of posterior draws of a fitted model (chains × draws)."""
    return len(next(iter(model.draws().values())))


@covariate_groups
def dert_draws(
    model: CLVModel, data: pd.DataFrame, delta: np.ndarray, n_draws: int, max_bytes: int = P.MAX_BYTES
) -> np.ndarray:
    """DERT per draw and customer with one discount rate per draw (``delta``: ``(n_draws,)``,
    continuous per time unit); draws of ``model`` thinned evenly to ``n_draws`` as in
    :func:`cbcv.predict.posterior_draws`. A constant ``delta`` uses :func:`cbcv.predict.dert`. A
    model with covariates: each customer at its own (:func:`cbcv.predict.covariates.covariate_groups`)."""
    delta = np.asarray(delta, dtype=float)
    if np.any(~np.isfinite(delta)) or np.any(delta <= 0):
        raise CbcvError("DERT needs a positive discount rate in every draw")
    if np.all(delta == delta[0]):
        return P.dert(model, data, delta=float(delta[0]), max_draws=n_draws, max_bytes=max_bytes)
    rows, inverse = P.distinct_rows(data, ("x", "t_x", "T"))
    fn, temps = P.dert_kernel(model, delta[:, None])
    return P.chunked(fn, P.posterior_draws(model, n_draws), rows, inverse, max_bytes, temps)


@dataclass(frozen=True)
class ScoringDraws:
    """Everything scoring needs from the posteriors and the financial inputs, as plain arrays
    (small: a few numbers per draw), so it can be shipped to workers (e.g. a Spark broadcast).

    ``freq``: the purchase model's name; ``params``: its parameters, ``(draws, 1)`` each;
    ``spend``: gamma-gamma ``p``, ``q``, ``gamma``, ``(draws, 1)`` each; ``margin`` and ``delta``
    (continuous discount rate per time unit): ``(draws,)``.
    """

    freq: str
    params: dict[str, np.ndarray]
    spend: dict[str, np.ndarray]
    margin: np.ndarray
    delta: np.ndarray
    time_unit: str

    @property
    def n_draws(self) -> int:
        return int(self.margin.size)

    @classmethod
    def from_models(
        cls,
        freq_model: CLVModel,
        spend_model: CLVModel,
        *,
        margin: Any,
        annual_discount_rate: Any,
        time_unit: str,
        max_draws: int | None = None,
    ) -> ScoringDraws:
        """Pair the two posteriors (thinned evenly to the smaller of the two and ``max_draws``);
        ``margin`` and ``annual_discount_rate`` a number or one value per draw."""
        if spend_model.name != "gamma_gamma":
            raise CbcvError(f"spend model must be gamma_gamma, got {spend_model.name!r}")
        name = P.frequency_name(freq_model)
        n = min(n_model_draws(freq_model), n_model_draws(spend_model))
        if max_draws is not None:
            n = min(n, int(max_draws))
        periods_per_year(time_unit)  # a clear error for an unknown unit
        delta = per_draw(continuous_rate(annual_discount_rate, time_unit), n, "annual_discount_rate")
        if np.any(~np.isfinite(delta)) or np.any(delta <= 0):
            raise CbcvError("DERT needs a positive discount rate in every draw")
        return cls(
            freq=name,
            params=P.posterior_draws(freq_model, n),
            spend=P.posterior_draws(spend_model, n),
            margin=per_draw(margin, n, "margin"),
            delta=delta,
            time_unit=time_unit,
        )

    def thinned(self, n: int) -> ScoringDraws:
        """The same draws thinned evenly to at most ``n``."""
        if n >= self.n_draws:
            return self
        idx = np.linspace(0, self.n_draws - 1, n).round().astype(int)
        return ScoringDraws(
            freq=self.freq,
            params={k: v[idx] for k, v in self.params.items()},
            spend={k: v[idx] for k, v in self.spend.items()},
            margin=self.margin[idx],
            delta=self.delta[idx],
            time_unit=self.time_unit,
        )


def segment_draws(
    freq_model: CLVModel,
    spend_model: CLVModel,
    covariates: pd.DataFrame,
    *,
    margin: Any,
    annual_discount_rate: Any,
    time_unit: str,
    max_draws: int | None = None,
) -> tuple[tuple[ScoringDraws, ...], np.ndarray]:
    """The paired draws of each covariate segment and each customer's segment.

    A segment is a distinct pair of design rows of the two models
    (:class:`~cbcv.models.covariates.CovariateModel`; a model without covariates has one row for
    everyone): its draws are the groups' posteriors (:meth:`CovariateModel.group`), paired and
    thinned as :meth:`ScoringDraws.from_models` does, so draw ``d`` is the same joint posterior draw
    in every segment. ``covariates``: one row per customer with the models' covariate columns.
    """
    plain = ScoringDraws.from_models(_standin(freq_model), _standin(spend_model), margin=margin,
                                     annual_discount_rate=annual_discount_rate, time_unit=time_unit,
                                     max_draws=max_draws)
    n = plain.n_draws
    parts = [m.design.matrix(covariates.reset_index(drop=True), "scoring") if isinstance(m, CovariateModel)
             else np.zeros((len(covariates), 0)) for m in (freq_model, spend_model)]
    rows, codes = design_groups(np.hstack(parts))
    k = parts[0].shape[1]
    out = []
    for row in rows:
        freq = freq_model.group(row[:k]) if isinstance(freq_model, CovariateModel) else freq_model
        spend = spend_model.group(row[k:]) if isinstance(spend_model, CovariateModel) else spend_model
        out.append(replace(plain, params=P.posterior_draws(freq, n), spend=P.posterior_draws(spend, n)))
    return tuple(out), codes


def _standin(model: CLVModel) -> Any:
    """``model``, or for a covariate model its reference group (the pairing needs only the names
    and the number of draws)."""
    if not isinstance(model, CovariateModel):
        return model
    return model.group(np.zeros(len(model.design.effects)))
