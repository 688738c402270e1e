"""Rates and discount factors, from an annual rate to a time unit's.

A rate is an annual effective rate ``r`` (a fraction; one value or one per draw); ``k`` is the
number of periods of the unit in a year (:func:`cbcv.core.units.periods_per_year`). The
continuous rate ``δ = log(1 + r) / k`` is the force of interest of the DERT formulas.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from cbcv.core.errors import ConfigError
from cbcv.core.units import periods_per_year

Timing = Literal["mid", "end", "start"]
#: Where in its period a cash flow falls: the shift ``s`` of :func:`discount_factors`.
TIMING_SHIFT = {"mid": 0.5, "end": 0.0, "start": 1.0}


def check_rate(rate: np.ndarray, what: str = "discount_rate") -> np.ndarray:
    if not np.all(np.isfinite(rate)) or np.any(rate <= -1):
        raise ConfigError(f"financials.{what}: every rate must be a finite number above -1 (-100%)")
    return rate


def period_rate(annual_rate: Any, unit: str) -> np.ndarray:
    """Per-period rate equivalent to an annual rate under compounding: ``(1 + r)**(1/k) - 1``."""
    r = check_rate(np.asarray(annual_rate, dtype=float))
    return np.expm1(np.log1p(r) / periods_per_year(unit))


def continuous_rate(annual_rate: Any, unit: str) -> np.ndarray:
    """Per-period force of interest ``log(1 + r) / k`` (the continuous discount rate ``delta`` of
    DERT formulas, in the model's time unit)."""
    r = check_rate(np.asarray(annual_rate, dtype=float))
    return np.log1p(r) / periods_per_year(unit)


def discount_factors(annual_rate: Any, n_periods: int, unit: str, timing: Timing = "mid") -> np.ndarray:
    """Discount factors of periods ``1..n_periods`` of ``unit`` at an annual rate.

    ``annual_rate`` is a scalar (returns shape ``(n_periods,)``) or one rate per draw (returns
    ``(draws, n_periods)``). Factor of period ``t``: ``(1 + r) ** (-(t - s) / k)`` with ``s`` 0.5
    (``timing="mid"``), 0 (``"end"``) or 1 (``"start"``).
    """
    if timing not in TIMING_SHIFT:
        raise ConfigError(f"timing {timing!r} unknown; choose from mid, end, start")
    r = check_rate(np.asarray(annual_rate, dtype=float))
    t = (np.arange(1, int(n_periods) + 1) - TIMING_SHIFT[timing]) / periods_per_year(unit)
    return np.exp(-np.multiply.outer(np.log1p(r), t))
