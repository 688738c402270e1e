"""Time units: the one table of them.

A model's time unit (``day``, ``week``, ``month``: what ``t_x`` and ``T`` of a summary count)
and a calendar period of the valuation (``month``, ``quarter``, ``year``) are both read here: a
year is 365.25 days, a month a twelfth of it, a quarter a quarter of it.
"""

from __future__ import annotations

from typing import Literal

from cbcv.core.errors import ConfigError

Unit = Literal["day", "week", "month", "quarter", "year"]

#: Days per year, the basis of every unit below.
DAYS_PER_YEAR = 365.25

#: Days in one period of each unit.
UNIT_DAYS: dict[str, float] = {
    "day": 1.0,
    "week": 7.0,
    "month": DAYS_PER_YEAR / 12,
    "quarter": DAYS_PER_YEAR / 4,
    "year": DAYS_PER_YEAR,
}

#: The time units a customer summary (``t_x``, ``T``) may count in, with their days.
TIME_UNIT_DAYS: dict[str, float] = {u: UNIT_DAYS[u] for u in ("day", "week", "month")}

#: The pandas frequency of each calendar period (acquisition periods, panel periods, forecasts).
PANDAS_FREQ: dict[str, str] = {"month": "M", "quarter": "Q", "year": "Y"}

#: Periods per year of each unit (365.25 days, 365.25 / 7 weeks, 12 months, 4 quarters, 1 year).
PERIODS_PER_YEAR: dict[str, float] = {u: DAYS_PER_YEAR / d for u, d in UNIT_DAYS.items()}


def unit_days(time_unit: str) -> float:
    """Days in one model ``time_unit`` (``day``, ``week``, ``month``); ConfigError for others."""
    try:
        return TIME_UNIT_DAYS[time_unit]
    except (KeyError, TypeError):
        raise ConfigError(f"time_unit {time_unit!r} is not one of {', '.join(TIME_UNIT_DAYS)}") from None


def periods_per_year(unit: str) -> float:
    """Number of periods of ``unit`` in a year (day, week, month, quarter, year)."""
    try:
        return PERIODS_PER_YEAR[unit]
    except KeyError:
        raise ConfigError(f"time unit {unit!r} unknown; choose from {', '.join(PERIODS_PER_YEAR)}") from None


def horizon_periods(horizon_years: float, unit: str) -> int:
    """Whole periods of ``unit`` in ``horizon_years`` (rounded to the nearest; at least 1)."""
    return max(1, round(float(horizon_years) * periods_per_year(unit)))
