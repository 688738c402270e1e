"""The terms of the acquisition model (:mod:`cbcv.models.acquisition`): its types and default
priors, the market size, the forecast it returns, the cumulative exposure and survival of the
time-to-trial distributions (written once for numpy and PyTensor), and the design of its input
(periods, seasons, covariates)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from cbcv.core.errors import ConfigError, DataError
from cbcv.core.units import PANDAS_FREQ
from cbcv.models.base import Prior

Distribution = Literal["weibull", "exponential-gamma", "weibull-gamma"]
Likelihood = Literal["poisson", "negbin", "binomial"]
Seasonality = Literal["quarter", "month"]
Frequency = Literal["month", "quarter", "year"]

DISTRIBUTIONS: tuple[str, ...] = ("weibull", "exponential-gamma", "weibull-gamma")
LIKELIHOODS: tuple[str, ...] = ("poisson", "negbin", "binomial")

DEFAULT_PRIORS: Mapping[str, Prior] = {
    "pi": Prior("Beta", {"alpha": 1.0, "beta": 1.0}),
    "lam": Prior("LogNormal", {"mu": math.log(0.1), "sigma": 1.5}),
    "c": Prior("LogNormal", {"mu": 0.0, "sigma": 0.5}),
    "r": Prior("LogNormal", {"mu": 0.0, "sigma": 1.0}),
    "alpha": Prior("LogNormal", {"mu": math.log(10.0), "sigma": 1.5}),
    "beta": Prior("Normal", {"mu": 0.0, "sigma": 1.0}),
    "season": Prior("Normal", {"mu": 0.0, "sigma": 0.5}),
    "kappa": Prior("HalfNormal", {"sigma": 0.2}),
}

PERIOD_FREQ = PANDAS_FREQ


@dataclass(frozen=True)
class MarketSize:
    """The addressable market ``M`` (number of prospects, acquired customers included).

    ``log_sd == 0`` means ``M`` is known and equal to ``median``; otherwise its prior is
    log-normal with that median and standard deviation of ``log M`` (e.g. ``log_sd=0.5``: 94% of
    the prior mass within a factor of about 2.6 of the median).
    """

    median: float
    log_sd: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.median) and self.median > 0):
            raise ConfigError(f"market size: median must be a positive number, got {self.median!r}")
        if not (np.isfinite(self.log_sd) and self.log_sd >= 0):
            raise ConfigError(f"market size: log_sd must be >= 0, got {self.log_sd!r}")

    @property
    def known(self) -> bool:
        return self.log_sd == 0.0

    def to_dict(self) -> dict[str, float]:
        return {"median": float(self.median), "log_sd": float(self.log_sd)}


@dataclass(frozen=True)
class AcquisitionForecast:
    """Forecast acquisitions for the periods after the fitted history.

    Every frame but ``summary`` is (posterior draw × future period):

    * ``new_customers``: simulated new customers (counts from the fitted likelihood on the
      remaining market, never more than what remains);
    * ``expected``: the expected new customers given each draw's parameters (no count noise;
      what a valuation multiplies by CLV);
    * ``cumulative``: customers acquired to date (history included) after each period;
    * ``remaining``: prospects not yet acquired (never-acquirers included), ``M - cumulative``.

    ``summary`` has one row per future period: the mean and the equal-tailed ``interval``
    (``*_low``, ``*_high``) of each quantity.
    """

    periods: pd.Index
    new_customers: pd.DataFrame
    expected: pd.DataFrame
    cumulative: pd.DataFrame
    remaining: pd.DataFrame
    summary: pd.DataFrame
    interval: float


# --------------------------------------------------------------------------------------------
# The likelihood's building blocks, written once for NumPy (forecasts) and PyTensor (fitting).
# --------------------------------------------------------------------------------------------
def cumulative_exposure(xp: ModuleType, t: Any, c: Any, eta: Any) -> Any:
    """``B(t) = sum_{s<=t} (s**c - (s-1)**c) * exp(eta_s)`` along the last axis.

    The Weibull baseline's cumulative hazard with covariates constant within each period
    (Fader, Hardie & Huang 2004, eq. 3; ``c = 1`` gives the exponential's ``sum exp(eta_s)``).
    ``t`` holds the period numbers 1..T; ``eta`` the linear predictor ``beta' x_s``.
    """
    return xp.cumsum((t**c - (t - 1.0) ** c) * xp.exp(eta), axis=-1)


def log_survival(
    xp: ModuleType, distribution: str, exposure: Any, params: Mapping[str, Any]
) -> Any:
    """``log S0(t)``: log probability that an eventual adopter is not acquired by the end of ``t``.

    Weibull: ``-lam * B(t)``. Gamma mixtures: ``-r * log(1 + B(t) / alpha)``, the survivor
    ``(alpha / (alpha + B(t)))**r`` (Fader, Hardie & Zeithammer 2003, eq. 5).
    """
    if distribution == "weibull":
        return -params["lam"] * exposure
    return -params["r"] * xp.log1p(exposure / params["alpha"])


def period_log_probs(xp: ModuleType, log_s0: Any, pi: Any) -> tuple[Any, Any]:
    """Per period ``t``: ``log p_t`` (a prospect is acquired in ``t``) and ``log(1 - F(t-1))``.

    ``p_t = (1 - pi) * (S0(t-1) - S0(t))`` computed as
    ``log(1 - pi) + log S0(t-1) + log(1 - exp(log S0(t) - log S0(t-1)))`` so tiny hazards and
    long horizons stay accurate; ``1 - F(t-1) = pi + (1 - pi) * S0(t-1)``.
    """
    prev = xp.concatenate([xp.zeros_like(log_s0[..., :1]), log_s0[..., :-1]], axis=-1)
    log_p = xp.log1p(-pi) + prev + xp.log(-xp.expm1(log_s0 - prev))
    log_alive_prev = xp.log(pi + (1.0 - pi) * xp.exp(prev))
    return log_p, log_alive_prev


# --------------------------------------------------------------------------------------------
# Input preparation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """The fitted history in arrays: counts, standardised covariates, season dummies."""

    periods: pd.Index
    counts: np.ndarray
    x: np.ndarray  # (T, K) standardised covariates
    x_mean: np.ndarray
    x_sd: np.ndarray
    seasons: np.ndarray  # (T, S-1) dummies
    season_names: tuple[str, ...]


def _season_numbers(periods: pd.Index, seasonality: str) -> np.ndarray:
    """Quarter (1-4) or month (1-12) of each period label (pandas Periods or dates)."""
    values = periods
    if isinstance(values.dtype, pd.PeriodDtype):
        pass
    elif pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.DatetimeIndex(values).to_period("M")
    else:
        raise ConfigError(
            f"acquisition: seasonality={seasonality!r} needs the 'period' column as dates or pandas "
            f"Periods, got {values.dtype}"
        )
    return np.asarray(values.quarter if seasonality == "quarter" else values.month, dtype=int)


def season_dummies(
    periods: pd.Index, seasonality: str | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    if seasonality is None:
        return np.zeros((len(periods), 0)), ()
    if seasonality not in ("quarter", "month"):
        raise ConfigError(
            f"acquisition: seasonality must be 'quarter', 'month' or None, got {seasonality!r}"
        )
    n = 4 if seasonality == "quarter" else 12
    prefix = "Q" if seasonality == "quarter" else "M"
    season = _season_numbers(periods, seasonality)
    dummies = (season[:, None] == np.arange(2, n + 1)[None, :]).astype(float)
    return dummies, tuple(f"{prefix}{k}" for k in range(2, n + 1))


def _validate_periods(df: pd.DataFrame, covariates: Sequence[str]) -> tuple[pd.Index, np.ndarray]:
    if not isinstance(df, pd.DataFrame):
        raise DataError("acquisition: periods must be a pandas DataFrame")
    missing = [c for c in ("period", "new_customers", *covariates) if c not in df.columns]
    if missing:
        raise DataError(
            f"acquisition: periods lack column(s) {missing}; need 'period', 'new_customers' and the covariates"
        )
    if len(df) < 2:
        raise DataError(f"acquisition: need at least 2 periods to fit, got {len(df)}")
    periods = pd.Index(df["period"])
    if periods.hasnans:
        raise DataError(
            f"acquisition: column 'period' row {int(np.flatnonzero(periods.isna())[0])}: missing period"
        )
    if not periods.is_unique:
        dup = periods[periods.duplicated()][0]
        raise DataError(f"acquisition: column 'period': period {dup!r} appears more than once")
    try:
        ordered = periods.is_monotonic_increasing
    except TypeError:
        ordered = False
    if not ordered:
        raise DataError(
            "acquisition: column 'period' must be in increasing order, one row per period"
        )
    raw = pd.to_numeric(df["new_customers"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(raw) | (raw < 0) | (np.abs(raw - np.round(raw)) > 1e-9))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"acquisition: column 'new_customers' row {i}: {df['new_customers'].iloc[i]!r} is not a "
            "non-negative whole number (round or rescale the counts)"
        )
    return periods, np.round(raw).astype(np.int64)


def covariate_matrix(df: pd.DataFrame, covariates: Sequence[str], what: str) -> np.ndarray:
    out = np.zeros((len(df), len(covariates)))
    for k, name in enumerate(covariates):
        col = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(col))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"acquisition: {what} column {name!r} row {i}: {df[name].iloc[i]!r} is not a number"
            )
        out[:, k] = col
    return out


def prepare_design(df: pd.DataFrame, covariates: Sequence[str], seasonality: str | None) -> Design:
    periods, counts = _validate_periods(df, covariates)
    raw_x = covariate_matrix(df, covariates, "periods")
    x_mean = raw_x.mean(axis=0)
    x_sd = raw_x.std(axis=0)
    flat = [covariates[k] for k in np.flatnonzero(x_sd == 0)]
    if flat:
        raise DataError(
            f"acquisition: covariate column(s) {flat} are constant over the fitted periods"
        )
    seasons, season_names = season_dummies(periods, seasonality)
    return Design(
        periods=periods,
        counts=counts,
        x=(raw_x - x_mean) / np.where(x_sd > 0, x_sd, 1.0),
        x_mean=x_mean,
        x_sd=x_sd,
        seasons=seasons,
        season_names=season_names,
    )


def future_labels(periods: pd.Index, horizon: int) -> pd.Index:
    """Labels of the ``horizon`` periods after ``periods``: next Periods, dates or integers."""
    last = periods[-1]
    if isinstance(periods.dtype, pd.PeriodDtype):
        return pd.PeriodIndex([last + h for h in range(1, horizon + 1)])
    if pd.api.types.is_datetime64_any_dtype(periods.dtype):
        freq = pd.infer_freq(periods) if len(periods) >= 3 else None
        if freq is not None:
            return pd.date_range(start=last, periods=horizon + 1, freq=freq)[1:]
    elif pd.api.types.is_integer_dtype(periods.dtype):
        return pd.Index(np.arange(int(last) + 1, int(last) + horizon + 1))
    return pd.Index([f"+{h}" for h in range(1, horizon + 1)])


def create_prior(prior: Prior, name: str, dims: str | None = None) -> pt.TensorVariable:
    try:
        factory = getattr(pm, prior.dist)
    except AttributeError as exc:
        raise ConfigError(f"prior for {name!r}: PyMC has no distribution {prior.dist!r}") from exc
    return factory(name, **dict(prior.kwargs), dims=dims)


