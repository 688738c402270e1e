"""Small private helpers for building SQL safely (DuckDB, or Spark SQL through :class:`Dialect`)
and opening a scratch DuckDB connection."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd

from cbcv.core.errors import ConfigError


def ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier (double quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote ``value`` as a SQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Dialect:
    """The few places where DuckDB SQL and Spark SQL differ in the queries cbcv writes.

    One query builder takes a dialect and asks it for these pieces; everything else (CTEs,
    window functions, ``FILTER (WHERE ...)`` aggregates, ``CAST(x AS DATE)``, ``DATE '...'``
    literals, ``USING`` joins, ``||``) is written once and is valid in both.
    """

    name: str
    #: identifier quote character (``"`` in DuckDB, a backtick in Spark)
    quote: str
    #: the text type in ``CAST(... AS <type>)``
    text_type: str
    #: the sum of a DOUBLE column: DuckDB's error-compensated ``fsum``; Spark has plain ``sum``
    exact_sum: str
    #: label ``YYYY-MM`` of a DATE expression ``{d}``
    month_label: str

    def ident(self, name: str) -> str:
        """Quote ``name`` as an identifier (the quote character doubled inside)."""
        return self.quote + str(name).replace(self.quote, self.quote * 2) + self.quote

    def literal(self, value: str) -> str:
        """Quote ``value`` as a string literal."""
        if self.name == "spark":  # Spark SQL unescapes backslashes in literals
            return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + str(value).replace("'", "''") + "'"

    def day(self, value: date) -> str:
        """A DATE literal."""
        return f"DATE {self.literal(value.isoformat())}"

    def days_between(self, start: str, end: str) -> str:
        """Whole days from the DATE expression ``start`` to ``end`` (``end - start``)."""
        if self.name == "spark":
            return f"datediff({end}, {start})"
        return f"datediff('day', {start}, {end})"

    def double(self, value: float) -> str:
        """A DOUBLE literal (a bare ``7.0`` is a DECIMAL in Spark and would make ``/`` exact-decimal)."""
        if self.name == "spark":
            return f"CAST({float(value)!r} AS DOUBLE)"
        return repr(value)

    def day_to_timestamp(self, expr: str) -> str:
        """A DATE expression as the engine's output type for a day: DuckDB gives a TIMESTAMP
        (pandas ``datetime64``), Spark keeps the DATE (no session-time-zone arithmetic)."""
        if self.name == "spark":
            return expr
        return f"CAST({expr} AS TIMESTAMP)"


#           name      quote  text_type  exact_sum  month_label
DUCKDB = Dialect("duckdb", '"', "VARCHAR", "fsum", "strftime({d}, '%Y-%m')")
SPARK = Dialect("spark", "`", "STRING", "sum", "date_format({d}, 'yyyy-MM')")
DIALECTS: dict[str, Dialect] = {"duckdb": DUCKDB, "spark": SPARK}


def dialect(name: str | Dialect) -> Dialect:
    """The :class:`Dialect` called ``name`` (``duckdb`` or ``spark``); ConfigError for others."""
    if isinstance(name, Dialect):
        return name
    try:
        return DIALECTS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"SQL dialect {name!r} is not one of {', '.join(DIALECTS)}") from None


@contextlib.contextmanager
def scratch_connection(
    *, memory_limit: str | None = None, threads: int | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that spills to a private temporary folder.

    DuckDB keeps intermediate tables in memory and writes them to ``temp_directory`` when they
    outgrow its memory limit, so a file larger than memory can still be validated. The folder is
    removed when the block ends.

    ``memory_limit`` (DuckDB's syntax, e.g. ``"8GB"``) and ``threads`` cap DuckDB's memory and
    worker threads; ``None`` keeps DuckDB's defaults (80% of RAM, one thread per core). A value
    DuckDB refuses is a :class:`~cbcv.core.errors.ConfigError`.
    """
    config: dict[str, Any] = {"temp_directory": "", "preserve_insertion_order": True}
    if memory_limit is not None:
        config["memory_limit"] = str(memory_limit)
    if threads is not None:
        config["threads"] = int(threads)
    with tempfile.TemporaryDirectory(prefix="cbcv-duckdb-") as spill:
        config["temp_directory"] = spill
        try:
            con = duckdb.connect(config=config)
        except duckdb.Error as exc:
            raise ConfigError(
                f"DuckDB settings memory_limit={memory_limit!r}, threads={threads!r}: "
                f"{first_line(exc)}"
            ) from exc
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


def relation_of(con: duckdb.DuckDBPyConnection, source: Any, view: str, default_name: str) -> tuple[str, str, list[str]]:
    """``source`` (a pandas DataFrame or Arrow table, registered as ``view`` without a copy; or a
    Parquet file or glob, read by DuckDB out of core) as a SQL relation: the relation, the name
    that messages give it (the file's name, or ``default_name``) and its column names. DataError
    naming the file when it is missing or not Parquet."""
    from pathlib import Path

    from cbcv.core.errors import DataError

    if isinstance(source, pd.DataFrame) or hasattr(source, "column_names"):
        found = [str(c) for c in source.columns] if isinstance(source, pd.DataFrame) else list(source.column_names)
        con.register(view, source)
        return view, default_name, found
    text = str(Path(source).expanduser())
    name = Path(text).name
    if not (any(c in text for c in "*?[") or Path(text).is_file()):
        raise DataError(f"{name}: file not found ({text})")
    relation = f"read_parquet({literal(text)})"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read as Parquet ({first_line(exc)})") from exc
    return relation, name, [str(r[0]) for r in described]
