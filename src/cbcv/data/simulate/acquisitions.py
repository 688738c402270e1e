"""Simulated acquisitions of a finite market with seasonality, the process of
:class:`cbcv.models.acquisition.AcquisitionModel` (Weibull timing, a never-acquirer share, a
log hazard ratio per quarter or month of the year), with its known parameters.

``market`` prospects; each never becomes a customer with probability ``never`` and is otherwise
acquired with cumulative hazard ``rate * B(t)`` to the end of period ``t``,
``B(t) = sum_{s<=t} [s**shape - (s-1)**shape] * exp(season[season_of(s)])``, so
``F(t) = (1 - never) * (1 - exp(-rate * B(t)))``. Period by period the prospects not yet acquired
are acquired with the population hazard ``h_t = (F(t) - F(t-1)) / (1 - F(t-1))``:
``n_t ~ Binomial(market - C_{t-1}, h_t)`` (:func:`simulate_acquisitions`), exactly the model's
binomial likelihood. :meth:`AcquisitionParams.expected_after` gives the expected new customers
after a history, the quantity the fitted model's ``forecast(...).expected`` estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError


@dataclass(frozen=True)
class AcquisitionParams:
    """``season``: log hazard ratio of each quarter (or month) of the year against the first
    (``season[0]`` is 0 or the tuple empty for none)."""

    market: int
    never: float
    rate: float
    shape: float = 1.0
    season: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.market < 1 or not 0 <= self.never < 1 or self.rate <= 0 or self.shape <= 0:
            raise ConfigError(f"acquisition parameters out of range: {self}")
        if self.season and self.season[0] != 0:
            raise ConfigError("season: the first season is the reference (0)")

    def acquired_share(self, periods: pd.PeriodIndex) -> np.ndarray:
        """``F(t)`` at the end of each of ``periods`` (the first one is period 1, the market's
        opening), and ``F(0) = 0`` first: ``len(periods) + 1`` values."""
        s = np.arange(1, len(periods) + 1, dtype=float)
        weights = s**self.shape - (s - 1) ** self.shape
        if self.season:
            of_year = (periods.month - 1) // (12 // len(self.season))
            weights = weights * np.exp(np.asarray(self.season)[of_year])
        exposure = np.concatenate([[0.0], np.cumsum(weights)])
        return (1 - self.never) * -np.expm1(-self.rate * exposure)

    def expected_after(self, periods: pd.PeriodIndex, history: int, acquired: int) -> np.ndarray:
        """Expected new customers in each period of ``periods`` after the first ``history``, given
        ``acquired`` customers in those: ``(market - acquired) * p_t / (1 - F(history))``."""
        f = self.acquired_share(periods)
        p = np.diff(f)[history:]
        return (self.market - acquired) * p / (1 - f[history])


def simulate_acquisitions(params: AcquisitionParams, periods: pd.PeriodIndex, seed: int) -> pd.DataFrame:
    """New customers per period (``period``, ``new_customers``) drawn by the binomial chain."""
    f = params.acquired_share(periods)
    hazard = np.diff(f) / (1 - f[:-1])
    rng = np.random.default_rng(seed)
    left, counts = params.market, []
    for h in hazard:
        n = int(rng.binomial(left, min(max(h, 0.0), 1.0)))
        counts.append(n)
        left -= n
    return pd.DataFrame({"period": periods, "new_customers": np.asarray(counts, dtype=np.int64)})


def acquisition_day_weights(acquisitions: pd.DataFrame) -> np.ndarray:
    """One weight per day from the first period's first day to the last period's last day, each
    period's new customers spread evenly over its days: the ``acquisition`` argument of
    :func:`cbcv.data.simulate.simulate_transactions` for a log whose first purchases follow the
    simulated counts (in expectation: the days are drawn with these probabilities)."""
    parts = []
    for period, n in zip(acquisitions["period"], acquisitions["new_customers"], strict=True):
        days = (period.end_time.normalize() - period.start_time).days + 1
        parts.append(np.full(days, float(n) / days))
    return np.concatenate(parts)
