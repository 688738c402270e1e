"""Periods and windows of the audit: the pandas frequency of a period name, a day, and the
inclusive bounds and label of a window."""

from __future__ import annotations

import datetime as dt
from typing import TypeAlias

import pandas as pd

from cbcv.core.errors import ConfigError

DateLike: TypeAlias = str | dt.date | pd.Timestamp
#: A calendar window: a pandas period (``"1997"``, ``"1997Q3"``, ``"1997-03"``, a ``pd.Period``)
#: or an inclusive ``(start, end)`` pair of days; ``None`` is the whole log.
Window: TypeAlias = str | pd.Period | tuple[DateLike, DateLike] | None

#: Plain-word period names accepted next to pandas period aliases.
PERIOD_ALIASES: dict[str, str] = {
    "day": "D",
    "week": "W",
    "month": "M",
    "quarter": "Q",
    "year": "Y",
}


def resolve_freq(period: str) -> str:
    """The pandas period frequency for ``period``.

    Accepts ``"month"``/``"quarter"``/``"year"`` (as in the company config), ``"week"``,
    ``"day"``, and any pandas *period* alias: ``"M"``, ``"Q"``, ``"Y"``, ``"W"``, ``"D"`` or an
    anchored one such as ``"Q-JUN"`` / ``"Y-JUN"`` for a fiscal year ending in June.
    """
    freq = PERIOD_ALIASES.get(str(period).strip().lower(), str(period).strip())
    try:
        pd.Period("2000-01-01", freq=freq)
    except (ValueError, TypeError):
        raise ConfigError(
            f"period {period!r} is not a period frequency (use month, quarter, year or a pandas "
            "period alias such as M, Q, Y, Q-JUN)"
        ) from None
    return freq


def as_day(value: DateLike, name: str) -> pd.Timestamp:
    """``value`` as a midnight timestamp; a bad value raises :class:`ConfigError` naming ``name``."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: {value!r} is not a date (use YYYY-MM-DD)") from None
    if pd.isna(ts):
        raise ConfigError(f"{name}: {value!r} is not a date (use YYYY-MM-DD)")
    return ts.normalize().tz_localize(None) if ts.tzinfo is not None else ts.normalize()


def resolve_window(
    window: Window, name: str = "window"
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The inclusive first and last day of ``window``, or ``None`` for the whole log.

    A string is read as a pandas period (``"1997"`` is the year, ``"1997Q3"`` a quarter,
    ``"1997-03"`` a month); a pair is ``(start, end)``, both days included.
    """
    if window is None:
        return None
    if isinstance(window, tuple | list):
        if len(window) != 2:
            raise ConfigError(f"{name}: a date range is a pair (start, end), got {window!r}")
        start, end = as_day(window[0], f"{name} start"), as_day(window[1], f"{name} end")
    else:
        try:
            period = window if isinstance(window, pd.Period) else pd.Period(str(window))
        except (ValueError, TypeError):
            raise ConfigError(
                f"{name}: {window!r} is not a period (e.g. 1997, 1997Q3, 1997-03) "
                "nor a (start, end) pair"
            ) from None
        start, end = period.start_time.normalize(), period.end_time.normalize()
    if end < start:
        raise ConfigError(f"{name}: end {end.date()} is before start {start.date()}")
    return start, end


def window_label(window: Window) -> str:
    """A short human label for ``window`` (used in figure titles and table captions)."""
    bounds = resolve_window(window)
    if bounds is None:
        return "all periods"
    if not isinstance(window, tuple | list):
        return str(window)
    return f"{bounds[0].date()} to {bounds[1].date()}"


def periods_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with its Period columns as their labels (for CSV and JSON)."""
    table = table.copy()
    for col in table.columns:
        if isinstance(table[col].dtype, pd.PeriodDtype):
            table[col] = table[col].astype(str)
    return table
