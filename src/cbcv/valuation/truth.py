"""The true expected customer equity of a simulated company, from its known parameters.

A simulated customer base (:mod:`cbcv.data.simulate`) is drawn from known population parameters:
a purchase model (BG/NBD or Pareto/NBD) and the gamma-gamma spend model. cbcv's valuation of the
existing customers estimates, per posterior draw of those parameters,

    ``CE = sum_i margin * E[Z_i | x_i, z̄_i] * DERT_i(δ | x_i, t_x_i, T_i)``

(Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
J. Marketing Research 42(4), eq. 2 for DERT and eq. 5 for the gamma-gamma conditional mean;
:mod:`cbcv.clv`). The *true expected equity* is the same sum evaluated at the true parameters:
for each customer, the expectation of the discounted margin of all their future transactions
(after the end of calibration) over their unknown latent traits (``lambda``, ``p`` or ``mu``,
``nu``) and their future purchases, given the true population parameters and that customer's
own calibration history ``(x, t_x, T, z̄)``. It is the quantity cbcv's posterior estimates: with
the parameters known exactly, the posterior of ``CE`` would collapse to this number. It is not
the realised future margin of the simulated customers (which also carries the randomness of
their future purchases and of their latent traits), nor the expectation given their latent
traits (which the data cannot reveal).

The formulas are not reimplemented: the true parameters are wrapped as a model "fitted" to one
posterior draw (one chain, one draw) and passed to :func:`cbcv.predict.dert` and
:func:`cbcv.predict.expected_spend`, with the discount rate converted as :func:`cbcv.clv.customer_clv`
converts it (:func:`cbcv.core.discount.continuous_rate`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from cbcv import predict as P
from cbcv.core.discount import continuous_rate
from cbcv.core.errors import ConfigError, DataError
from cbcv.core.units import PANDAS_FREQ, horizon_periods
from cbcv.data.simulate import BGNBDParams, FrequencyParams, GammaGammaParams, ParetoNBDParams
from cbcv.data.simulate.acquisitions import AcquisitionParams
from cbcv.models import BetaGeoModel, CLVModel, GammaGammaModel, ParetoNBDModel
from cbcv.valuation.drivers import NEW_CUSTOMER
from cbcv.valuation.equity import future_customer_equity


def model_at(params: FrequencyParams | GammaGammaParams) -> CLVModel:
    """A cbcv model whose posterior is the single draw ``params`` (one chain, one draw).

    :class:`~cbcv.data.simulate.BGNBDParams` → :class:`~cbcv.models.BetaGeoModel`,
    :class:`~cbcv.data.simulate.ParetoNBDParams` → :class:`~cbcv.models.ParetoNBDModel`,
    :class:`~cbcv.data.simulate.GammaGammaParams` → :class:`~cbcv.models.GammaGammaModel`
    (the dataclasses use the models' parameter names).
    """
    classes: dict[type, type[CLVModel]] = {
        BGNBDParams: BetaGeoModel, ParetoNBDParams: ParetoNBDModel, GammaGammaParams: GammaGammaModel,
    }
    cls = classes.get(type(params))
    if cls is None:
        raise ConfigError(
            f"true parameters must be BGNBDParams, ParetoNBDParams or GammaGammaParams, "
            f"got {type(params).__name__}"
        )
    values = asdict(params)
    model = cls()
    model.idata = az.from_dict(
        posterior={n: np.array([[float(values[n])]]) for n in cls.param_names}
    )
    return model


def true_customer_clv(
    summary: pd.DataFrame,
    freq_params: FrequencyParams,
    spend_params: GammaGammaParams,
    margin: float,
    annual_discount_rate: float,
    time_unit: str,
) -> pd.DataFrame:
    """Per customer, the true expected residual CLV (see the module docstring).

    ``summary`` holds each customer's calibration ``x``, ``t_x``, ``T`` (in ``time_unit``) and
    ``mean_repeat_spend`` (ignored where ``x == 0``), as :func:`cbcv.data.summary.customer_summary`
    returns them. Returns one row per customer, in order: ``customer_id`` (when present),
    ``spend`` (gamma-gamma E[Z | x, z̄]), ``dert`` (at δ = log(1 + rate) per year in
    ``time_unit``) and ``clv = margin * spend * dert``.
    """
    if len(summary) == 0:
        raise DataError("true customer CLV: no customers")
    if spend_params.q <= 1.0:
        raise ConfigError(f"gamma-gamma q must exceed 1 for a finite expected spend, got {spend_params.q}")
    data = summary.reset_index(drop=True)
    delta = float(continuous_rate(annual_discount_rate, time_unit))
    dert = P.dert(model_at(freq_params), data, delta=delta)[0]
    spend = P.expected_spend(model_at(spend_params), data)[0]
    bad = ~(np.isfinite(dert) & np.isfinite(spend))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"true customer CLV: not finite for row {i} (x={data['x'].iloc[i]}, "
            f"t_x={data['t_x'].iloc[i]}, T={data['T'].iloc[i]}) at {freq_params}"
        )
    out = pd.DataFrame({"spend": spend, "dert": dert, "clv": float(margin) * spend * dert})
    if "customer_id" in data:
        out.insert(0, "customer_id", data["customer_id"].to_numpy())
    return out


def true_customer_equity(summary: pd.DataFrame, *truth: Any, **named: Any) -> float:
    """True expected residual equity of the existing customers, ``sum_i margin * E[Z_i | x_i,
    z̄_i] * DERT_i``, at the true parameters (the sum of :func:`true_customer_clv`'s ``clv``):
    the expectation, over each customer's future given the true parameters and their own
    calibration history, of the discounted margin of all their future transactions — the target
    of :func:`cbcv.clv.customer_clv`'s per-draw ``total``. The arguments are those of
    :func:`true_customer_clv` (``freq_params``, ``spend_params``, ``margin``,
    ``annual_discount_rate``, ``time_unit``)."""
    return float(true_customer_clv(summary, *truth, **named)["clv"].sum())


def true_future_customer_equity(
    acquisition: AcquisitionParams,
    history: pd.PeriodIndex,
    acquired: int,
    freq_params: FrequencyParams,
    spend_params: GammaGammaParams,
    *,
    margin: float,
    annual_discount_rate: float,
    acquisition_cost: float,
    time_unit: str,
    horizon_years: float,
) -> float:
    """True expected equity of the customers still to be acquired after ``history`` (the
    periods of data from the market's opening, ``acquired`` customers in them), over
    ``horizon_years``: ``sum_t E[n_t] (CLV_new - CAC) v_t`` with the true expected acquisitions
    (:meth:`cbcv.data.simulate.AcquisitionParams.expected_after`) and the true value of a new
    customer, ``margin × (E[Z] + E[Z] × DERT_new)`` (its first purchase and its repeat purchases,
    each of population mean spend ``p γ / (q − 1)``, as the simulator draws them), discounted as
    the valuation discounts them (:func:`cbcv.valuation.equity.future_customer_equity`)."""
    period = {code: name for name, code in PANDAS_FREQ.items()}[history.freqstr[0]]
    steps = horizon_periods(horizon_years, period)
    periods = pd.period_range(history[0], periods=len(history) + steps, freq=history.freq)
    expected = acquisition.expected_after(periods, len(history), acquired)
    delta = float(continuous_rate(annual_discount_rate, time_unit))
    dert_new = float(P.dert(model_at(freq_params), NEW_CUSTOMER, delta=delta)[0, 0])
    spend = spend_params.p * spend_params.gamma / (spend_params.q - 1.0)
    clv_new = margin * (spend + spend * dert_new)
    fe = future_customer_equity(expected[None, :], clv_new, acquisition_cost, annual_discount_rate, unit=period)
    return float(fe.total[0])
