"""Small private helpers for building DuckDB SQL safely and opening a scratch connection."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd

from cbcv.errors import ConfigError


def ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier (double quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote ``value`` as a SQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


@contextlib.contextmanager
def scratch_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that spills to a private temporary folder.

    DuckDB keeps intermediate tables in memory and writes them to ``temp_directory`` when they
    outgrow its memory limit, so a file larger than memory can still be validated. The folder is
    removed when the block ends.
    """
    with tempfile.TemporaryDirectory(prefix="cbcv-duckdb-") as spill:
        con = duckdb.connect(config={"temp_directory": spill, "preserve_insertion_order": True})
        try:
            yield con
        finally:
            con.close()


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (DuckDB's messages span many lines)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def parse_day(value: Any, what: str) -> date | None:
    """A calendar day from a str/date/datetime/Timestamp, or None; ConfigError when unparseable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: {value!r} is not a date (use YYYY-MM-DD)") from exc
    if pd.isna(stamp):
        raise ConfigError(f"{what}: {value!r} is not a date (use YYYY-MM-DD)")
    return stamp.date()
