"""Spreadsheet-safe CSV: the one place cbcv writes a table that may hold user text as CSV.

A cell that a spreadsheet would run as a formula (OWASP "CSV injection") is written as text by
prefixing a single quote ``'``: text whose first character is ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return, also after leading spaces or line feeds, and their full-width forms
(``＝``, ``＋``, ``－``, ``＠``). A plain number such as ``-40``, ``+3.5`` or ``-1.2e3`` is left
as it is: a spreadsheet reads it as a number, never a formula (``-1+2`` is not a plain number
and is prefixed). Numeric columns are never changed; string cells and column names are.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pandas as pd

from cbcv.core.cache import temporary_path

#: First characters that make a spreadsheet read a cell as a formula (or a DDE command).
FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠")
#: Text that may come before a formula character and still let it run.
_LEADING = " \n\u00a0"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with a ``'`` in front when it is text a spreadsheet would run as a formula;
    anything else (numbers, missing values, harmless text) unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if _PLAIN_NUMBER.fullmatch(value.strip(_LEADING)):
        return value
    first = value[:1] if value[:1] in "\t\r" else value.lstrip(_LEADING)[:1]
    return "'" + value if first in FORMULA_STARTS else value


def _is_text(series: pd.Series) -> bool:
    return bool(
        pd.api.types.is_object_dtype(series.dtype)
        or pd.api.types.is_string_dtype(series.dtype)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are :func:`spreadsheet_safe`."""
    out = frame.copy()
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if _is_text(column):
            out.isetitem(i, column.map(spreadsheet_safe, na_action="ignore"))
    out.columns = [spreadsheet_safe(c) for c in out.columns]
    return out


def _has_carriage_return(frame: pd.DataFrame) -> bool:
    """A text cell or column name holds ``\\r`` (Python's CSV writer leaves it unquoted with
    ``\\n`` line ends, which splits the row for a reader)."""
    names = any(isinstance(c, str) and "\r" in c for c in frame.columns)
    return names or any(
        frame.iloc[:, i].astype(str).str.contains("\r", regex=False).any()
        for i in range(frame.shape[1]) if _is_text(frame.iloc[:, i])
    )


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (without its index) to ``path`` as spreadsheet-safe CSV, atomically;
    every field is quoted when some text holds a carriage return, so each row stays one record."""
    safe = safe_frame(frame)
    quoting = csv.QUOTE_ALL if _has_carriage_return(safe) else csv.QUOTE_MINIMAL
    with temporary_path(path) as tmp:
        safe.to_csv(tmp, index=False, quoting=quoting)
    return Path(path)
