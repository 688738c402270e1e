"""Staging of typed sources (a DataFrame, a Parquet file, a DuckDB table) for validation: every
column as text, as a CSV file's would be, with integral float ids as integer text and zone-aware
timestamps as the calendar date in their own zone or the configured one
(:mod:`cbcv.data.rules`; :mod:`cbcv.data.load` validates what is staged here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from cbcv.core.errors import DataError
from cbcv.data._sql import first_line, ident, literal
from cbcv.data.rules import integral_text_sql
from cbcv.data.staged import ROW, Staged, malformed_frame, resolve_columns


def _temporal(types: dict[str, str]) -> frozenset[str]:
    return frozenset(c for c, t in types.items() if t.upper().startswith(("DATE", "TIMESTAMP")))


def _stage_typed(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    row_expr: str | None,
    name: str,
    kind: str,
    sha: str | None,
    col_map: dict[str, str],
    zones: Mapping[str, str],
    default_zone: str = "UTC",
) -> Staged:
    """Copy a typed relation into ``raw`` with every column cast to text, and number its rows.

    ``zones`` gives the zone in which each zone-aware timestamp column is read
    (``default_zone`` for one not listed); floating-point columns keep integral values' integer text (:mod:`cbcv.data.rules`).
    """
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read {kind} source ({first_line(exc)})") from exc
    types = {
        str(row[0]): str(row[1])
        for row in described
        if row_expr is None or row[0] != "file_row_number"
    }
    found = list(types)
    resolved = resolve_columns(found, col_map, name)
    casts = ", ".join(
        f"{_text_of(ident(c), types[c], zones.get(c, default_zone))} AS {ident(c)}" for c in found
    )
    try:
        if row_expr is None:
            con.execute(f"CREATE TABLE raw AS SELECT {casts} FROM {relation}")
            con.execute(f"CREATE VIEW rows AS SELECT rowid + 1 AS {ROW}, * FROM raw")
        else:
            con.execute(f"CREATE TABLE raw AS SELECT {row_expr} AS {ROW}, {casts} FROM {relation}")
            con.execute("CREATE VIEW rows AS SELECT * FROM raw")
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read {kind} source ({first_line(exc)})") from exc
    return Staged(
        name=name,
        kind=kind,
        sha256=sha,
        columns=resolved,
        all_columns=tuple(found),
        temporal=_temporal(types),
        malformed=malformed_frame(),
        line_of=None,
        notes=(),
    )


def _text_of(column: str, sql_type: str, zone: str) -> str:
    """SQL: a typed column as text (see :func:`_stage_typed`)."""
    kind = sql_type.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL"):
        return integral_text_sql(column)
    if kind.startswith("TIMESTAMP") and ("TZ" in kind or "TIME ZONE" in kind):
        return f"CAST(timezone({literal(zone)}, {column}) AS VARCHAR)"
    return f"CAST({column} AS VARCHAR)"


def stage_frame(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    col_map: dict[str, str],
    name: str,
    timezone: str | None = None,
) -> Staged:
    frame = frame.rename(columns=str)
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"{name}: duplicate column name(s) {', '.join(map(repr, dupes))}")
    con.register("cbcv_frame", frame)
    zones = {
        c: timezone or str(getattr(frame[c].dtype, "tz", None) or "UTC")
        for c in frame.columns
        if getattr(frame[c].dtype, "tz", None) is not None or timezone
    }
    return _stage_typed(con, "cbcv_frame", None, name, "dataframe", None, col_map, zones)


def stage_parquet(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    sha: str,
    col_map: dict[str, str],
    timezone: str | None = None,
) -> Staged:
    relation = f"read_parquet({literal(str(path))}, file_row_number = true)"
    zones = _parquet_zones(path, timezone)
    return _stage_typed(
        con, relation, "file_row_number + 1", name, "parquet", sha, col_map, zones
    )


def _parquet_zones(path: Path, timezone: str | None) -> dict[str, str]:
    """The zone of each zone-aware timestamp column of a Parquet file: ``timezone`` when given,
    else the zone stored with the column (UTC when it has none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return {}  # DuckDB's read reports the problem with the file
    zones: dict[str, str] = {}
    for fld in schema:
        if pa.types.is_timestamp(fld.type) and fld.type.tz is not None:
            zones[fld.name] = timezone or _zone_name(fld.type.tz)
    return zones


def _zone_name(tz: str) -> str:
    """An Arrow zone (``'America/New_York'``, ``'+01:00'``, ``'UTC'``) as a DuckDB zone name."""
    if tz[:1] in "+-" and len(tz) >= 3:
        sign = "-" if tz[0] == "+" else "+"  # POSIX Etc/GMT zones have the sign inverted
        hours, _, minutes = tz[1:].partition(":")
        if int(minutes or 0) == 0:
            return f"Etc/GMT{sign}{int(hours)}"
    return tz


def stage_duckdb(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    sha: str,
    col_map: dict[str, str],
    table: str | None,
    timezone: str | None = None,
) -> Staged:
    try:
        con.execute(f"ATTACH {literal(str(path))} AS cbcv_src (READ_ONLY)")
    except duckdb.Error as exc:
        raise DataError(f"{name}: not a readable DuckDB database ({first_line(exc)})") from exc
    found = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'cbcv_src' "
        "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE database_name = 'cbcv_src' AND NOT internal ORDER BY 1, 2"
    ).fetchall()
    listing = ", ".join(t if s == "main" else f"{s}.{t}" for s, t in found) or "(none)"
    if table is None:
        if len(found) != 1:
            raise DataError(f"{name}: pass table= to choose one of the tables found: {listing}")
        schema, tbl = found[0]
    else:
        wanted = table.strip().lower()
        matches = [(s, t) for s, t in found if t.lower() == wanted or f"{s}.{t}".lower() == wanted]
        if len(matches) != 1:
            raise DataError(f"{name}: table {table!r} not found; tables found: {listing}")
        schema, tbl = matches[0]
    relation = f"cbcv_src.{ident(schema)}.{ident(tbl)}"
    return _stage_typed(
        con, relation, None, f"{name}:{tbl}", "duckdb", sha, col_map, {}, timezone or "UTC"
    )
