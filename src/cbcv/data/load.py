"""Load a transaction log, validate every row, quarantine the bad ones and reconcile the counts.

:func:`load_transactions` reads a CSV file, a Parquet file, a table of a DuckDB database file or a
pandas DataFrame. All the work is done in DuckDB SQL on a scratch connection that spills to disk,
so a file larger than memory can be validated; only the accepted rows come back as a DataFrame.

Reading
    Every column is read as text (CSV: ``all_varchar``; typed sources are cast to text) so that a
    bad value is kept verbatim for the quarantine instead of failing the read. CSV files need a
    header row. The delimiter is taken from the header line (the most frequent of ``,`` ``;``
    tab ``|``) unless ``delimiter`` is given; quotes are ``"``. Blank lines are skipped.

Row numbers
    ``source_row`` is the 1-based number of the data record in the source, the header excluded
    and blank lines not counted: the first record under the header is row 1. For a DataFrame it
    is the 1-based position, for Parquet the 1-based row of the file, for a DuckDB table the
    1-based position in scan order. For CSV files the rejections also give ``line``, the
    physical line of the file (1-based, header included), whenever every record occupies one
    line. If a record spans several lines (a quoted line break, or an unterminated quote that
    runs on to the end of the file), ``line`` is left empty and a note in the reconciliation
    says so.

Validation
    Each row is accepted or rejected exactly once. Reasons, in the fixed order in which the
    first failing one is chosen (:data:`REJECTION_REASONS`):

    ``malformed_row``
        a CSV record the parser cannot split into the header's columns (too many or too few
        fields, an unterminated quote, a bad encoding).
    ``missing_customer_id``
        the id is empty or blank.
    ``unparseable_date``
        the date is not an ISO date or timestamp (``1997-01-31``, ``1997-01-31 14:05:00``,
        ``1997-01-31T14:05:00+01:00``: the calendar date as written is kept, the time and
        offset are ignored) nor ``YYYYMMDD``; with ``date_format`` (strptime, e.g.
        ``%d/%m/%Y``) only that format is accepted. Typed date/timestamp columns of a Parquet
        file, DuckDB table or DataFrame are always read as dates.
    ``date_after_as_of``
        the date is later than ``as_of``.
    ``non_numeric_amount``
        the amount is missing, not a plain number (``12.50``, ``-3``, ``1e3``; no thousands
        separators, currency signs or decimal commas) or not finite.
    ``duplicate_row``
        every raw field of the row (all columns, not only the mapped ones) equals those of an
        earlier row; the first occurrence is accepted. Only rows that pass every other check
        are marked duplicates. Disable with ``reject_duplicates=False`` for sources without an
        order id, where identical rows are distinct purchases (the CDNOW files are such).

    The rejections table lists every failing check of a rejected row (one line per failing
    column), so a row with a missing id and a bad amount appears twice; ``primary`` is True on
    exactly one line per rejected row, the one whose reason the reconciliation counts.

Returns
    Negative amounts are returns. They are accepted; downstream, a customer's rows of one day
    are netted into one customer-day and a day with only returns is dropped
    (:mod:`cbcv.data.transactions`). The reconciliation counts return rows, the returned amount,
    the customer-days where a return was netted against a purchase and the return-only days.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pandas as pd

from cbcv.data._sql import first_line, ident, literal, parse_day, scratch_connection
from cbcv.data.transactions import TRANSACTION_COLUMNS, daily_sql
from cbcv.errors import ConfigError, DataError

#: Rejection reasons in the order in which the first failing one is chosen.
REJECTION_REASONS: tuple[str, ...] = (
    "malformed_row",
    "missing_customer_id",
    "unparseable_date",
    "date_after_as_of",
    "non_numeric_amount",
    "duplicate_row",
)

#: Columns of :attr:`LoadResult.rejections`.
REJECTION_COLUMNS: tuple[str, ...] = (
    "source_row",
    "line",
    "column",
    "raw_value",
    "reason",
    "primary",
    "detail",
)

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
DUCKDB_SUFFIXES: tuple[str, ...] = (".duckdb", ".db")
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

_ROW = "__cbcv_row"
_WS = "' ' || chr(9) || chr(10) || chr(13)"
_ISO_DATE = (
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?( ?(Z|[+-]\d{2}(:?\d{2})?))?)?"
)
_BLANK_LINE = re.compile(rb"(?<![^\n])\r?\n")
_CHUNK = 1 << 20
_MAX_RAW_LINE = 500


@dataclass(frozen=True)
class ReturnsSummary:
    """Returns (negative amounts) among the accepted rows.

    ``amount`` is the total returned, as a positive number. ``customer_days_netted`` counts the
    customer-days on which a return was netted against a purchase of the same day;
    ``return_only_days`` counts customer-days with only returns, which are not purchase occasions
    and are dropped from the customer-day view.
    """

    rows: int
    amount: float
    customer_days_netted: int
    return_only_days: int


@dataclass(frozen=True)
class Reconciliation:
    """What was read, what was kept and why the rest was rejected.

    ``rows_read == rows_accepted + rows_rejected`` holds exactly, and ``rejected_by_reason``
    (every reason present, zeros included) sums to ``rows_rejected``.
    """

    source: str
    source_type: str
    sha256: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    returns: ReturnsSummary
    n_customers: int
    customer_days: int
    first_date: date | None
    last_date: date | None
    total_amount: float
    as_of: date | None
    columns: dict[str, str]
    duplicate_check: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, ReturnsSummary):
                value = dataclasses.asdict(value)
            elif isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reconciliation:
        """The inverse of :meth:`to_dict`."""
        values = dict(data)
        for key in ("first_date", "last_date", "as_of"):
            if values.get(key) is not None:
                values[key] = date.fromisoformat(values[key])
        values["returns"] = ReturnsSummary(**values["returns"])
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


@dataclass(frozen=True)
class LoadResult:
    """Accepted transactions, the quarantined rows and the reconciliation between them.

    ``transactions``: ``customer_id`` (str), ``date`` (datetime64[ns], midnight), ``amount``
    (float), ``source_row`` (int64), in source order. ``rejections``: the columns of
    :data:`REJECTION_COLUMNS`.
    """

    transactions: pd.DataFrame
    rejections: pd.DataFrame
    reconciliation: Reconciliation


@dataclass(frozen=True)
class _Checked:
    rejections: pd.DataFrame
    reconciliation: Reconciliation


#: The accepted rows of the ``checked`` table, in source order.
_ACCEPTED_SQL = (
    "SELECT customer_id, CAST(date AS TIMESTAMP) AS date, amount, source_row "
    "FROM checked WHERE reason IS NULL ORDER BY source_row"
)


@dataclass(frozen=True)
class _Staged:
    """A source copied into the scratch database as text, with a ``__cbcv_row`` view ``rows``."""

    name: str
    kind: str
    sha256: str | None
    columns: dict[str, str]  # contract name -> source column
    all_columns: tuple[str, ...]
    temporal: frozenset[str]
    malformed: pd.DataFrame  # source_row, line, raw_value, detail
    line_of: Callable[[np.ndarray], np.ndarray] | None
    notes: tuple[str, ...]


def load_transactions(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    as_of: str | date | datetime | pd.Timestamp | None = None,
    date_format: str | None = None,
    delimiter: str | None = None,
    table: str | None = None,
    source_name: str | None = None,
    reject_duplicates: bool = True,
) -> LoadResult:
    """Read a transaction log, validate each row and reconcile accepted against rejected rows.

    Parameters
    ----------
    source
        A CSV file (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``), a Parquet file
        (``.parquet``, ``.pq``), a DuckDB database file (``.duckdb``, ``.db``; name the table
        with ``table``, optional when the file holds one table) or a DataFrame.
    columns
        Maps contract names (``customer_id``, ``date``, ``amount``) to the source's column
        names; unmapped names default to themselves. A column is found by exact name first,
        then by a unique case- and space-insensitive match.
    as_of
        Rows dated after this day are rejected (``date_after_as_of``).
    date_format
        A strptime format (e.g. ``%d/%m/%Y``) that replaces the default ISO/YYYYMMDD parsing.
    delimiter
        CSV delimiter; by default the most frequent of ``,`` ``;`` tab ``|`` in the header line.
    table
        The table (or view; ``schema.table`` accepted) of a DuckDB database file.
    source_name
        The name reported in messages and the reconciliation (default: the file name).
    reject_duplicates
        Reject exact duplicates of an earlier row (see the module notes).

    Raises
    ------
    DataError
        The file is missing, unreadable, empty (no data rows) or of an unsupported type; a
        required column is missing; the delimiter is wrong; the DuckDB table does not exist.
    ConfigError
        ``columns``, ``as_of``, ``date_format`` or ``delimiter`` is invalid.
    """
    with _checked_rows(
        source, columns, as_of, date_format, delimiter, table, source_name, reject_duplicates
    ) as (con, checked):
        return LoadResult(
            transactions=_accepted_frame(con),
            rejections=checked.rejections,
            reconciliation=checked.reconciliation,
        )


@contextlib.contextmanager
def _checked_rows(
    source: str | os.PathLike[str] | pd.DataFrame,
    columns: Mapping[str, str] | None,
    as_of: Any,
    date_format: str | None,
    delimiter: str | None,
    table: str | None,
    source_name: str | None,
    reject_duplicates: bool,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, _Checked]]:
    """A scratch connection whose table ``checked`` holds every row with its verdict."""
    col_map = _column_map(columns)
    as_of_day = parse_day(as_of, "as_of")
    delim = _parse_delimiter(delimiter)
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        if date_format is not None:
            _check_date_format(con, date_format)
        staged = _stage(con, source, col_map, delim, table, source_name)
        yield con, _validate(con, staged, as_of_day, date_format, reject_duplicates)


@dataclass(frozen=True)
class ValidatedLog:
    """What :func:`validate_to_parquet` wrote: the accepted rows as a Parquet file (the columns
    of :attr:`LoadResult.transactions`, in source order), the rejections and the reconciliation."""

    accepted: Path
    rejections: pd.DataFrame
    reconciliation: Reconciliation


def validate_to_parquet(
    source: str | os.PathLike[str] | pd.DataFrame,
    accepted: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    as_of: str | date | datetime | pd.Timestamp | None = None,
    date_format: str | None = None,
    delimiter: str | None = None,
    table: str | None = None,
    source_name: str | None = None,
    reject_duplicates: bool = True,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> ValidatedLog:
    """:func:`load_transactions` for logs larger than memory: the accepted rows go straight from
    DuckDB to the Parquet file ``accepted`` and never into pandas.

    The rules, reasons and reconciliation are those of :func:`load_transactions` (same arguments).
    ``memory_limit`` (DuckDB syntax, e.g. ``"4GB"``) caps DuckDB's memory; beyond it DuckDB
    spills to a private temporary folder. ``threads`` caps its worker threads. Only the
    rejections come back as a DataFrame (one or a few lines per rejected row).
    """
    out = Path(accepted).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    with _checked_rows(
        source, columns, as_of, date_format, delimiter, table, source_name, reject_duplicates,
        memory_limit, threads,
    ) as (con, checked):
        try:
            con.execute(
                f"COPY ({_ACCEPTED_SQL}) TO {literal(str(out))} "
                "(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE 1000000)"
            )
        except duckdb.Error as exc:
            raise DataError(f"{out.name}: cannot write accepted rows ({first_line(exc)})") from exc
    return ValidatedLog(
        accepted=out, rejections=checked.rejections, reconciliation=checked.reconciliation
    )


# --------------------------------------------------------------------------- arguments


def _column_map(columns: Mapping[str, str] | None) -> dict[str, str]:
    mapping = {key: key for key in TRANSACTION_COLUMNS}
    if columns is None:
        return mapping
    unknown = [key for key in columns if key not in mapping]
    if unknown:
        raise ConfigError(
            f"columns: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(TRANSACTION_COLUMNS)}"
        )
    for key, value in columns.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"columns.{key} must be a column name, got {value!r}")
        mapping[key] = value
    return mapping


def _parse_delimiter(delimiter: str | None) -> str | None:
    if delimiter is None:
        return None
    aliases = {"\\t": "\t", "tab": "\t"}
    delimiter = aliases.get(delimiter, delimiter)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ConfigError(
            f"delimiter must be one character such as ',' ';' '\\t' '|', got {delimiter!r}"
        )
    return delimiter


def _check_date_format(con: duckdb.DuckDBPyConnection, date_format: str) -> None:
    try:
        con.execute("SELECT try_strptime('2000-01-01', ?)", [date_format]).fetchall()
    except duckdb.Error as exc:
        raise ConfigError(
            f"date_format {date_format!r} is not a strptime format: {first_line(exc)}"
        ) from exc


# --------------------------------------------------------------------------- staging


def _stage(
    con: duckdb.DuckDBPyConnection,
    source: str | os.PathLike[str] | pd.DataFrame,
    col_map: dict[str, str],
    delimiter: str | None,
    table: str | None,
    source_name: str | None,
) -> _Staged:
    if isinstance(source, pd.DataFrame):
        if table is not None:
            raise DataError(
                f"{source_name or 'DataFrame'}: table= applies only to DuckDB database files"
            )
        return _stage_frame(con, source, col_map, source_name or "DataFrame")
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"unsupported source {type(source).__name__}: pass a file path or a DataFrame"
        )
    path = Path(source).expanduser()
    name = source_name or path.name
    if not path.exists():
        hint = ""
        if isinstance(source, str) and _is_dataset_name(source):
            hint = f"; for the bundled data set use cbcv.data.datasets.load_dataset({source!r})"
        raise DataError(f"{name}: file not found ({path}){hint}")
    if not path.is_file():
        raise DataError(f"{name}: not a file ({path})")
    kind = _file_kind(path)
    if kind is None:
        raise DataError(
            f"{name}: unsupported file type {''.join(path.suffixes) or '(no suffix)'!r}; use CSV "
            "(.csv .tsv .txt, optionally .gz), Parquet (.parquet .pq) or a DuckDB database "
            "(.duckdb .db)"
        )
    if table is not None and kind != "duckdb":
        raise DataError(f"{name}: table= applies only to DuckDB database files (.duckdb, .db)")
    if kind == "csv":
        return _stage_csv(con, path, name, col_map, delimiter)
    sha = file_sha256(path, name)
    if kind == "parquet":
        return _stage_parquet(con, path, name, sha, col_map)
    return _stage_duckdb(con, path, name, sha, col_map, table)


def _is_dataset_name(text: str) -> bool:
    from cbcv.data.datasets import is_dataset  # local import: datasets imports this module

    return is_dataset(text)


def _file_kind(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        return "csv" if suffixes and suffixes[-1] in CSV_SUFFIXES else None
    last = suffixes[-1] if suffixes else ""
    if last in CSV_SUFFIXES:
        return "csv"
    if last in PARQUET_SUFFIXES:
        return "parquet"
    if last in DUCKDB_SUFFIXES:
        return "duckdb"
    return None


def file_sha256(path: Path, name: str) -> str:
    """The sha256 of a file, read in chunks (DataError naming the file when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def _resolve_columns(found: list[str], col_map: dict[str, str], name: str) -> dict[str, str]:
    """Contract name -> source column; DataError naming the key, the column and what was found."""
    resolved: dict[str, str] = {}
    for key, wanted in col_map.items():
        if wanted in found:
            resolved[key] = wanted
            continue
        folded = [c for c in found if c.strip().lower() == wanted.strip().lower()]
        if len(folded) == 1:
            resolved[key] = folded[0]
            continue
        shown = ", ".join(repr(c) for c in found) or "(none)"
        raise DataError(
            f"{name}: required column {wanted!r} (columns.{key}) not found; columns found: {shown}"
        )
    return resolved


def _temporal(types: dict[str, str]) -> frozenset[str]:
    return frozenset(c for c, t in types.items() if t.upper().startswith(("DATE", "TIMESTAMP")))


def _empty_malformed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_row": pd.Series(dtype="Int64"),
            "line": pd.Series(dtype="Int64"),
            "raw_value": pd.Series(dtype=object),
            "detail": pd.Series(dtype=object),
        }
    )


def _stage_typed(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    row_expr: str | None,
    name: str,
    kind: str,
    sha: str | None,
    col_map: dict[str, str],
) -> _Staged:
    """Copy a typed relation into ``raw`` with every column cast to text, and number its rows."""
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
    resolved = _resolve_columns(found, col_map, name)
    casts = ", ".join(f"CAST({ident(c)} AS VARCHAR) AS {ident(c)}" for c in found)
    try:
        if row_expr is None:
            con.execute(f"CREATE TABLE raw AS SELECT {casts} FROM {relation}")
            con.execute(f"CREATE VIEW rows AS SELECT rowid + 1 AS {_ROW}, * FROM raw")
        else:
            con.execute(f"CREATE TABLE raw AS SELECT {row_expr} AS {_ROW}, {casts} FROM {relation}")
            con.execute("CREATE VIEW rows AS SELECT * FROM raw")
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read {kind} source ({first_line(exc)})") from exc
    return _Staged(
        name=name,
        kind=kind,
        sha256=sha,
        columns=resolved,
        all_columns=tuple(found),
        temporal=_temporal(types),
        malformed=_empty_malformed(),
        line_of=None,
        notes=(),
    )


def _stage_frame(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, col_map: dict[str, str], name: str
) -> _Staged:
    frame = frame.rename(columns=str)
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"{name}: duplicate column name(s) {', '.join(map(repr, dupes))}")
    con.register("cbcv_frame", frame)
    return _stage_typed(con, "cbcv_frame", None, name, "dataframe", None, col_map)


def _stage_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, sha: str, col_map: dict[str, str]
) -> _Staged:
    relation = f"read_parquet({literal(str(path))}, file_row_number = true)"
    return _stage_typed(con, relation, "file_row_number + 1", name, "parquet", sha, col_map)


def _stage_duckdb(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    sha: str,
    col_map: dict[str, str],
    table: str | None,
) -> _Staged:
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
    return _stage_typed(con, relation, None, f"{name}:{tbl}", "duckdb", sha, col_map)


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class _CsvLayout:
    sha256: str
    n_lines: int
    header_line: int  # 1-based; 0 when the file has no non-blank line
    header: str
    blank_after_header: np.ndarray  # sorted 1-based numbers of blank lines after the header


def _scan_lines(stream: BinaryIO, digest: Any | None) -> tuple[int, list[int]]:
    """Count the lines of a byte stream and find the blank ones (empty or a lone CR)."""
    n_done = 0
    blanks: list[int] = []
    tail = b""
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        if digest is not None:
            digest.update(chunk)
        data = tail + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            tail = data
            continue
        complete, tail = data[:cut], data[cut:]
        counted, pos = n_done, 0
        for match in _BLANK_LINE.finditer(complete):
            counted += complete.count(b"\n", pos, match.start())
            pos = match.start()
            blanks.append(counted + 1)
        n_done += complete.count(b"\n")
    if tail:
        n_done += 1
        if tail == b"\r":
            blanks.append(n_done)
    return n_done, blanks


def _csv_layout(path: Path, name: str) -> _CsvLayout:
    gz = path.suffix.lower() == ".gz"
    try:
        if gz:
            sha = file_sha256(path, name)
            with gzip.open(path, "rb") as stream:
                n_lines, blanks = _scan_lines(stream, None)  # type: ignore[arg-type]
        else:
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                n_lines, blanks = _scan_lines(stream, digest)
            sha = digest.hexdigest()
        header_line, header = 0, b""
        opener = gzip.open if gz else open
        with opener(path, "rb") as stream:
            for number, raw_line in enumerate(stream, start=1):
                if raw_line.strip(b"\r\n"):
                    header_line, header = number, raw_line
                    break
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{name}: cannot read file ({getattr(exc, 'strerror', None) or exc})"
        ) from exc
    text = header.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    after = np.asarray([b for b in blanks if b > header_line], dtype=np.int64)
    return _CsvLayout(sha, n_lines, header_line, text, after)


def _header_names(header: str, delimiter: str) -> list[str]:
    fields = next(csv.reader([header], delimiter=delimiter, quotechar='"'), [])
    names: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(fields, start=1):
        base = raw.strip() or f"column{i}"
        candidate, k = base, 1
        while candidate.lower() in seen:
            candidate, k = f"{base}_{k}", k + 1
        seen.add(candidate.lower())
        names.append(candidate)
    return names


def _guess_delimiter(header: str) -> str:
    counts = [(header.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    col_map: dict[str, str],
    delimiter: str | None,
) -> _Staged:
    layout = _csv_layout(path, name)
    if layout.header_line == 0:
        raise DataError(f"{name}: empty file (no header, no data rows)")
    delim = delimiter or _guess_delimiter(layout.header)
    names = _header_names(layout.header, delim)
    if len(names) == 1:
        others = [d for d in DELIMITERS if d != delim and d in names[0]]
        if others:
            raise DataError(
                f"{name}: the header parses into one column {names[0]!r} with delimiter "
                f"{delim!r}; the file looks {others[0]!r}-delimited: pass delimiter={others[0]!r}"
            )
    resolved = _resolve_columns(names, col_map, name)
    struct = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in names) + "}"
    read = (
        f"read_csv({literal(str(path))}, auto_detect = false, columns = {struct}, header = true, "
        f"delim = {literal(delim)}, quote = '\"', escape = '\"', comment = '', "
        f"skip = {layout.header_line - 1}, ignore_errors = true, store_rejects = true, "
        "compression = 'auto')"
    )
    try:
        con.execute(f"CREATE TABLE raw AS SELECT * FROM {read}")
        rejected = con.execute(
            "SELECT line, string_agg(DISTINCT lower(error_type), '; ' ORDER BY lower(error_type)), "
            "first(csv_line) FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall()
        n_parsed = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot parse CSV ({first_line(exc)})") from exc

    n_data_lines = layout.n_lines - layout.header_line - len(layout.blank_after_header)
    exact = n_data_lines == n_parsed + len(rejected)
    notes: list[str] = []
    bad_lines = np.asarray([int(r[0]) for r in rejected], dtype=np.int64)
    raw_lines = [str(r[2] or "").strip("\r\n")[:_MAX_RAW_LINE] for r in rejected]
    details = [str(r[1]) for r in rejected]
    blanks = layout.blank_after_header
    # a_j: number of data lines before the j-th blank line (j = 1..); used in both directions.
    blank_shift = blanks - layout.header_line - np.arange(1, len(blanks) + 1)

    def line_of(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return layout.header_line + rows + np.searchsorted(blank_shift, rows, side="left")

    # DuckDB numbers a malformed record by the line it starts on, counting one line per record.
    ordinals = bad_lines - layout.header_line - np.searchsorted(blanks, bad_lines, side="left")
    placed = bool(
        len(ordinals) == 0
        or (
            ordinals[0] >= 1
            and ordinals[-1] <= n_parsed + len(rejected)
            and np.all(np.diff(ordinals) > 0)
        )
    )
    malformed_rows: list[int | None] = (
        [int(k) for k in ordinals] if placed else [None] * len(rejected)
    )
    malformed_lines: list[int | None] = (
        [int(v) for v in bad_lines] if exact else [None] * len(rejected)
    )
    if not exact:
        notes.append(
            "some CSV records span several lines (quoted line breaks or an unterminated quote): "
            "file line numbers are not reported"
            + ("" if placed else "; source_row counts well-formed records only")
        )

    if placed and len(rejected):
        # Good record i (0-based, parse order) is preceded by malformed record j when
        # g_j = ordinal_j - j <= i; shift it by the number of such j.
        g = np.asarray(malformed_rows, dtype=np.int64) - np.arange(1, len(rejected) + 1)
        shift = pd.DataFrame({"g": g, "cnt": np.arange(1, len(rejected) + 1)})
        shift = shift.groupby("g", as_index=False)["cnt"].max()
        con.register("cbcv_shift", shift)
        con.execute("CREATE VIEW raw_indexed AS SELECT rowid AS cbcv_idx, * FROM raw")
        cols = ", ".join(f"r.{ident(n)}" for n in names)
        con.execute(
            f"CREATE VIEW rows AS SELECT r.cbcv_idx + 1 + coalesce(s.cnt, 0) AS {_ROW}, {cols} "
            "FROM raw_indexed r ASOF LEFT JOIN cbcv_shift s ON r.cbcv_idx >= s.g"
        )
    else:
        con.execute(f"CREATE VIEW rows AS SELECT rowid + 1 AS {_ROW}, * FROM raw")

    malformed = pd.DataFrame(
        {
            "source_row": pd.array(malformed_rows, dtype="Int64"),
            "line": pd.array(malformed_lines, dtype="Int64"),
            "raw_value": pd.Series(raw_lines, dtype=object),
            "detail": pd.Series(details, dtype=object),
        }
    )
    return _Staged(
        name=name,
        kind="csv",
        sha256=layout.sha256,
        columns=resolved,
        all_columns=tuple(names),
        temporal=frozenset(),
        malformed=malformed,
        line_of=line_of if exact else None,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- validation


def _date_expr(column: str, date_format: str | None, typed: bool) -> str:
    value = f"trim({ident(column)}, {_WS})"
    if date_format is not None and not typed:
        return f"CAST(try_strptime({value}, {literal(date_format)}) AS DATE)"
    return (
        f"CASE WHEN regexp_full_match({value}, '\\d{{8}}') "
        f"THEN CAST(try_strptime({value}, '%Y%m%d') AS DATE) "
        f"WHEN regexp_full_match({value}, {literal(_ISO_DATE)}) "
        f"THEN try_cast(left({value}, 10) AS DATE) END"
    )


def _validate(
    con: duckdb.DuckDBPyConnection,
    staged: _Staged,
    as_of: date | None,
    date_format: str | None,
    reject_duplicates: bool,
) -> _Checked:
    """Check every staged row into the table ``checked`` (``reason`` NULL when accepted)."""
    id_col, date_col, amount_col = (staged.columns[k] for k in TRANSACTION_COLUMNS)
    everything = ", ".join(ident(c) for c in staged.all_columns)
    if reject_duplicates:
        dup_rank = f"row_number() OVER (PARTITION BY {everything} ORDER BY {_ROW})"
        first_row = f"min({_ROW}) OVER (PARTITION BY {everything})"
    else:
        dup_rank, first_row = "1", f"{_ROW}"
    as_of_sql = f"DATE {literal(as_of.isoformat())}" if as_of else "NULL::DATE"
    typed = date_col in staged.temporal
    notes = list(staged.notes)
    if date_format is not None and typed:
        notes.append(f"date column {date_col!r} is typed as a date: date_format was not needed")
    bad_amount = "(amount IS NULL OR NOT isfinite(amount))"
    try:
        con.execute(
            f"""
            CREATE TABLE checked AS
            SELECT *,
                   CASE WHEN customer_id IS NULL THEN 'missing_customer_id'
                        WHEN date IS NULL THEN 'unparseable_date'
                        WHEN date > {as_of_sql} THEN 'date_after_as_of'
                        WHEN {bad_amount} THEN 'non_numeric_amount'
                        WHEN dup_rank > 1 THEN 'duplicate_row' END AS reason
            FROM (
                SELECT {_ROW} AS source_row,
                       {ident(id_col)} AS id_raw,
                       {ident(date_col)} AS date_raw,
                       {ident(amount_col)} AS amount_raw,
                       NULLIF(trim({ident(id_col)}, {_WS}), '') AS customer_id,
                       {_date_expr(date_col, date_format, typed)} AS date,
                       try_cast(trim({ident(amount_col)}, {_WS}) AS DOUBLE) AS amount,
                       {dup_rank} AS dup_rank,
                       {first_row} AS first_row
                FROM rows
            )
            """
        )
        con.execute("DROP VIEW IF EXISTS rows")
        con.execute(
            "CREATE VIEW accepted AS SELECT customer_id, date, amount FROM checked WHERE reason IS NULL"
        )
    except duckdb.Error as exc:
        raise DataError(f"{staged.name}: cannot validate rows ({first_line(exc)})") from exc

    n_checked, n_accepted = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM checked"
    ).fetchall()[0]
    n_malformed = len(staged.malformed)
    rows_read = int(n_checked) + n_malformed
    if rows_read == 0:
        raise DataError(f"{staged.name}: empty file (no data rows)")

    by_reason = dict.fromkeys(REJECTION_REASONS, 0)
    by_reason["malformed_row"] = n_malformed
    for reason, count in con.execute(
        "SELECT reason, count(*) FROM checked WHERE reason IS NOT NULL GROUP BY reason"
    ).fetchall():
        by_reason[str(reason)] = int(count)
    rows_accepted = int(n_accepted)
    rows_rejected = sum(by_reason.values())
    if rows_accepted + rows_rejected != rows_read:  # pragma: no cover - an internal invariant
        raise RuntimeError(
            f"reconciliation does not add up: {rows_accepted} + {rows_rejected} != {rows_read}"
        )

    rejections = _rejections_frame(con, staged, as_of, bad_amount)
    if int(rejections["primary"].sum()) != rows_rejected:  # pragma: no cover - invariant
        raise RuntimeError("rejections table does not match the reconciliation")
    reconciliation = _reconcile(
        con,
        staged,
        rows_read,
        rows_accepted,
        rows_rejected,
        by_reason,
        as_of,
        reject_duplicates,
        tuple(notes),
    )
    return _Checked(rejections=rejections, reconciliation=reconciliation)


def _accepted_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    out = con.execute(_ACCEPTED_SQL).df()
    return pd.DataFrame(
        {
            "customer_id": out["customer_id"].astype(str),
            "date": pd.to_datetime(out["date"]).astype("datetime64[ns]"),
            "amount": out["amount"].astype("float64"),
            "source_row": out["source_row"].astype("int64"),
        }
    )


def _rejections_frame(
    con: duckdb.DuckDBPyConnection, staged: _Staged, as_of: date | None, bad_amount: str
) -> pd.DataFrame:
    id_col, date_col, amount_col = (staged.columns[k] for k in TRANSACTION_COLUMNS)
    parts = [
        (1, "missing_customer_id", id_col, "id_raw", "NULL", "customer_id IS NULL"),
        (2, "unparseable_date", date_col, "date_raw", "NULL", "date IS NULL"),
        (4, "non_numeric_amount", amount_col, "amount_raw", "NULL", bad_amount),
        (
            5,
            "duplicate_row",
            "*",
            "NULL",
            "'same fields as source row ' || first_row",
            "reason = 'duplicate_row'",
        ),
    ]
    if as_of is not None:
        parts.append(
            (
                3,
                "date_after_as_of",
                date_col,
                "date_raw",
                literal(f"after as-of date {as_of.isoformat()}"),
                f"date > DATE {literal(as_of.isoformat())}",
            )
        )
    sql = " UNION ALL ".join(
        f"SELECT source_row, {literal(column)} AS col, CAST({raw} AS VARCHAR) AS raw_value, "
        f"{literal(reason)} AS reason, coalesce(reason = {literal(reason)}, false) AS is_primary, "
        f"CAST({detail} AS VARCHAR) AS detail, {order} AS ord FROM checked WHERE {where}"
        for order, reason, column, raw, detail, where in parts
    )
    field_level = con.execute(f"SELECT * FROM ({sql}) ORDER BY source_row, ord").df()
    field_level = field_level.rename(columns={"col": "column", "is_primary": "primary"})
    field_level["source_row"] = field_level["source_row"].astype("Int64")
    field_level["line"] = pd.array([None] * len(field_level), dtype="Int64")
    if staged.line_of is not None and len(field_level):
        field_level["line"] = pd.array(
            staged.line_of(field_level["source_row"].to_numpy(dtype=np.int64)), dtype="Int64"
        )
    malformed = staged.malformed.assign(column="*", reason="malformed_row", primary=True, ord=0)
    frames = [f for f in (malformed, field_level) if len(f)]
    if not frames:
        frames = [field_level]
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    combined = combined.sort_values(["source_row", "ord"], na_position="last", kind="stable")
    return rejections_table(combined)


def rejections_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s :data:`REJECTION_COLUMNS` with the table's dtypes (nullable integer rows and
    lines, text with None for missing, a boolean ``primary``), in ``frame``'s order."""

    def text(column: str) -> pd.Series:
        values = frame[column].astype(object)
        return values.where(values.notna(), None)

    return pd.DataFrame(
        {
            "source_row": frame["source_row"].astype("Int64"),
            "line": frame["line"].astype("Int64"),
            "column": text("column"),
            "raw_value": text("raw_value"),
            "reason": text("reason"),
            "primary": frame["primary"].astype(bool),
            "detail": text("detail"),
        }
    ).reset_index(drop=True)


def _reconcile(
    con: duckdb.DuckDBPyConnection,
    staged: _Staged,
    rows_read: int,
    rows_accepted: int,
    rows_rejected: int,
    by_reason: dict[str, int],
    as_of: date | None,
    reject_duplicates: bool,
    notes: tuple[str, ...],
) -> Reconciliation:
    n_customers, first_day, last_day, total, return_rows, returned = con.execute(
        "SELECT count(DISTINCT customer_id), min(date), max(date), coalesce(fsum(amount), 0), "
        "count(*) FILTER (WHERE amount < 0), coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) "
        "FROM accepted"
    ).fetchall()[0]
    daily = daily_sql("accepted")
    all_days = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT customer_id, CAST(date AS DATE) FROM accepted)"
    ).fetchall()[0][0]
    customer_days = con.execute(f"SELECT count(*) FROM ({daily})").fetchall()[0][0]
    netted = con.execute(
        f"SELECT count(*) FROM ({daily}) d JOIN (SELECT DISTINCT customer_id, CAST(date AS DATE) "
        "AS date FROM accepted WHERE amount < 0) r USING (customer_id, date)"
    ).fetchall()[0][0]
    returns = ReturnsSummary(
        rows=int(return_rows),
        amount=float(returned),
        customer_days_netted=int(netted),
        return_only_days=int(all_days) - int(customer_days),
    )
    return Reconciliation(
        source=staged.name,
        source_type=staged.kind,
        sha256=staged.sha256,
        rows_read=rows_read,
        rows_accepted=rows_accepted,
        rows_rejected=rows_rejected,
        rejected_by_reason=by_reason,
        returns=returns,
        n_customers=int(n_customers),
        customer_days=int(customer_days),
        first_date=first_day,
        last_date=last_day,
        total_amount=float(total),
        as_of=as_of,
        columns=dict(staged.columns),
        duplicate_check=reject_duplicates,
        notes=notes,
    )
