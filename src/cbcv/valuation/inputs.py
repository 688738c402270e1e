"""Financial inputs of the valuation as Monte Carlo draws, and discounting conventions.

Every input of :class:`cbcv.config.Financials` is a number or a
:class:`~cbcv.config.Distribution`. :func:`draw_financials` turns them into one value per draw
(constants are repeated), so that draw ``d`` of every financial input is paired with posterior
draw ``d`` of the customer models and every figure of the valuation gets an interval. Financial
draws are independent of the posterior draws and of each other.

Distributions (parameters are those of the variable itself)
-----------------------------------------------------------
* ``normal``: ``mean``, ``sd``; optional ``low`` and/or ``high`` truncate it (e.g. a margin
  ``{dist: normal, mean: 0.3, sd: 0.05, low: 0, high: 1}``).
* ``lognormal``: ``mean`` and ``sd`` **of the variable**, not of its logarithm: with
  ``s2 = log(1 + sd**2 / mean**2)`` the log is normal with mean ``log(mean) - s2 / 2`` and
  variance ``s2``, so the draws have mean ``mean`` and standard deviation ``sd``. ``mean > 0``.
* ``uniform``: ``low``, ``high``.
* ``triangular``: ``low``, ``mode``, ``high`` (``low <= mode <= high``).
* ``beta``: ``alpha``, ``beta``; optional ``low``/``high`` rescale it from [0, 1] to
  [low, high].

A parameter that the distribution does not use is an error (it would be silently ignored).
Every input has a valid range (:data:`cbcv.core.config_checks.VALID`: a margin in (0, 1], a
discount rate in (0, 1) and above the terminal growth, costs >= 0, ...): a distribution with more
than 0.1% of its probability outside it is an error, and the few draws outside are drawn again,
so every draw is valid (the distribution truncated to the range).
Each input has its own random stream derived from ``seed`` and the input's name, so an input's
draws do not change when another input becomes uncertain.

Time and discounting
--------------------
Rates in the config are annual. A period of a ``unit`` is ``1 / k`` years, with
``k = periods_per_year(unit)``: 365.25 days, 365.25 / 7 weeks, 12 months, 4 quarters, 1 year.

* per-period discount rate: ``(1 + r) ** (1 / k) - 1`` (compounding-consistent, so twelve
  monthly discounts equal one annual discount);
* per-period continuous rate (force of interest, the ``delta`` of the DERT formulas of Fader,
  Hardie & Lee 2005 and Fader, Hardie & Shang 2010): ``log(1 + r) / k``;
* discount factor of period ``t = 1, 2, ...`` (today is the start of period 1):
  ``(1 + r) ** (-(t - s) / k)`` with ``s = 0.5`` for **mid-period** discounting (the default: the
  cash flows of a period arrive spread over it, on average in its middle), ``s = 0`` for
  end-of-period and ``s = 1`` for start-of-period timing.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cbcv.config import Distribution, Financials
from cbcv.core.config_checks import Range, distribution_problem, input_problem, valid_ranges
from cbcv.core.discount import check_rate
from cbcv.core.draws import summarize_draws
from cbcv.core.errors import ConfigError

#: The uncertain (number-or-distribution) financial inputs, in config order.
DRAWN_INPUTS: tuple[str, ...] = (
    "contribution_margin",
    "discount_rate",
    "acquisition_cost",
    "fixed_costs",
    "capex",
    "tax_rate",
    "net_debt",
    "non_operating_assets",
)

#: Times the draws of an input outside its valid range are drawn again before giving up.
_REDRAWS = 50


# --------------------------------------------------------------------------------------------
# Summaries of draws
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# Rates and discount factors
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# Financial draws
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinancialDraws:
    """One value per draw of every financial input (arrays of shape ``(n_draws,)``).

    Money is in the company's currency, rates are annual fractions, ``fixed_costs`` and
    ``capex`` are per year (as in :class:`cbcv.config.Financials`). Build it with
    :func:`draw_financials` from a config, or directly: scalars are broadcast to the length of
    the array inputs (or to ``n_draws`` with :meth:`from_values`).
    """

    contribution_margin: np.ndarray
    discount_rate: np.ndarray
    acquisition_cost: np.ndarray
    fixed_costs: np.ndarray
    capex: np.ndarray
    tax_rate: np.ndarray
    net_debt: np.ndarray
    non_operating_assets: np.ndarray
    shares_outstanding: float
    market_price: float | None = None
    horizon_years: float = 10.0
    uncertain: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        arrays = {k: np.atleast_1d(np.asarray(getattr(self, k), dtype=float)) for k in DRAWN_INPUTS}
        sizes = {a.size for a in arrays.values() if a.size != 1}
        if any(a.ndim != 1 for a in arrays.values()) or len(sizes) > 1:
            raise ValueError("financial draws must be scalars or 1-d arrays of one common length")
        n = sizes.pop() if sizes else 1
        for k, a in arrays.items():
            a = np.broadcast_to(a, (n,)).copy() if a.size != n else a.copy()
            a.setflags(write=False)
            object.__setattr__(self, k, a)
        check_rate(self.discount_rate)
        if not self.shares_outstanding > 0:
            raise ConfigError("financials.shares_outstanding: must be positive")
        if self.market_price is not None and not self.market_price > 0:
            raise ConfigError("financials.market_price: must be positive")
        if not self.horizon_years > 0:
            raise ConfigError("financials.horizon_years: must be positive")
        if np.any((self.tax_rate < 0) | (self.tax_rate > 1)):
            raise ConfigError(
                "financials.tax_rate: draws must lie in [0, 1]; truncate the distribution "
                "(low: 0, high: 1) or use a beta"
            )

    @classmethod
    def from_values(cls, n_draws: int, **values: Any) -> FinancialDraws:
        """Inputs at the given values for ``n_draws`` draws: scalars are repeated, arrays of
        ``n_draws`` are used as they are. ``contribution_margin``, ``discount_rate`` and
        ``shares_outstanding`` are required; the other drawn inputs default to 0."""
        defaults: dict[str, Any] = {k: 0.0 for k in DRAWN_INPUTS}
        defaults.update(values)
        for k in DRAWN_INPUTS:
            defaults[k] = np.broadcast_to(np.asarray(defaults[k], dtype=float), (int(n_draws),))
        return cls(**defaults)

    @property
    def n_draws(self) -> int:
        return int(self.discount_rate.size)

    def replace(self, **changes: Any) -> FinancialDraws:
        """A copy with some fields replaced (arrays or scalars)."""
        return dataclasses.replace(self, **changes)

    def summary(self, interval: float = 0.9) -> pd.DataFrame:
        """Median, mean and interval of each drawn input (constants show as a point)."""
        return summarize_draws({k: getattr(self, k) for k in DRAWN_INPUTS}, interval)


def sample_distribution(dist: Distribution, n: int, rng: np.random.Generator, name: str = "input") -> np.ndarray:
    """``n`` draws of one :class:`~cbcv.config.Distribution` (see the module docstring for each
    kind's parametrisation). Invalid parameters raise :class:`ConfigError` naming ``name``."""
    problem = distribution_problem(dist)
    if problem:
        raise ConfigError(f"financials.{name}: {problem}")
    kind = dist.dist
    if kind == "normal":
        mean, sd = float(dist.mean), float(dist.sd)  # type: ignore[arg-type]
        if dist.low is None and dist.high is None:
            return rng.normal(mean, sd, size=n)
        a = -np.inf if dist.low is None else (dist.low - mean) / sd
        b = np.inf if dist.high is None else (dist.high - mean) / sd
        return stats.truncnorm.rvs(a, b, loc=mean, scale=sd, size=n, random_state=rng)
    if kind == "lognormal":
        mean, sd = float(dist.mean), float(dist.sd)  # type: ignore[arg-type]
        s2 = np.log1p((sd / mean) ** 2)
        return rng.lognormal(np.log(mean) - s2 / 2, np.sqrt(s2), size=n)
    if kind == "uniform":
        return rng.uniform(dist.low, dist.high, size=n)
    if kind == "triangular":
        return rng.triangular(float(dist.low), float(dist.mode), float(dist.high), size=n)  # type: ignore[arg-type]
    low = 0.0 if dist.low is None else float(dist.low)
    high = 1.0 if dist.high is None else float(dist.high)
    return low + (high - low) * rng.beta(float(dist.alpha), float(dist.beta), size=n)  # type: ignore[arg-type]


def sample_within(dist: Distribution, n: int, rng: np.random.Generator, name: str, valid: Range) -> np.ndarray:
    """Draws of ``dist`` kept inside ``valid``: it must hold all but
    :data:`~cbcv.core.config_checks.MAX_MASS_OUTSIDE` of the probability (else :class:`ConfigError`),
    and the few draws outside are drawn again (the distribution truncated to the range)."""
    problem = input_problem(dist, valid)
    if problem:
        raise ConfigError(f"financials.{name}: {problem}")
    draws = sample_distribution(dist, n, rng, name)
    for _ in range(_REDRAWS):
        outside = ~valid.contains(draws)
        if not outside.any():
            return draws
        draws[outside] = sample_distribution(dist, int(outside.sum()), rng, name)
    raise ConfigError(f"financials.{name}: draws keep falling outside {valid.describe()}")


def _stream(seed: int | None, name: str) -> np.random.Generator:
    """An input's own random stream: the same seed and name always give the same draws."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(name.encode()),)))


def draw_financials(financials: Financials, n_draws: int, seed: int | None = None) -> FinancialDraws:
    """Draw every financial input ``n_draws`` times (constants repeated).

    ``n_draws`` is normally the number of posterior draws (chains × draws), so that draw ``d``
    of the financial inputs pairs with posterior draw ``d``. ``seed`` makes the draws
    reproducible; each input has its own stream (see the module docstring).
    """
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws!r}")
    n = int(n_draws)
    values: dict[str, Any] = {}
    uncertain = []
    ranges = valid_ranges(financials)
    for name in DRAWN_INPUTS:
        spec = getattr(financials, name)
        if isinstance(spec, Distribution):
            values[name] = sample_within(spec, n, _stream(seed, name), name, ranges[name])
            uncertain.append(name)
        else:
            values[name] = np.full(n, float(spec))
    return FinancialDraws(
        **values,
        shares_outstanding=float(financials.shares_outstanding),
        market_price=None if financials.market_price is None else float(financials.market_price),
        horizon_years=float(financials.horizon_years),
        uncertain=tuple(uncertain),
    )
