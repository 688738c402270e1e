"""Load a transaction log, validate every row, quarantine the bad ones and reconcile the counts.

:func:`load_transactions` reads a CSV file, a Parquet file, a table of a DuckDB database file or a
pandas DataFrame. All the work is done in DuckDB SQL on a scratch connection that spills to disk,
so a file larger than memory can be validated; only the accepted rows come back as a DataFrame.

Reading
    Every column is read as text (CSV: ``all_varchar``; typed sources are cast to text) so that a
    bad value is kept verbatim for the quarantine instead of failing the read. CSV files need a
    header row. The delimiter is taken from the header line (the most frequent of ``,`` ``;``
    tab ``|``) unless ``delimiter`` is given; quotes are ``"``. Blank lines are skipped. A CSV
    file is UTF-8 text with LF or CRLF line endings and one record per physical line; other
    encodings and file kinds are refused in one line (:mod:`cbcv.data.csv_stage`).

Row numbers
    ``source_row`` is the 1-based number of the data record in the source, the header excluded
    and blank lines not counted: the first record under the header is row 1. For a DataFrame it
    is the 1-based position, for Parquet the 1-based row of the file, for a DuckDB table the
    1-based position in scan order. For CSV files the rejections also give ``line``, the
    physical line of the file (1-based, header included): every line after the header is
    blank, a record read, or a record rejected, so rows read + blank lines + the lines up to
    the header = the file's lines.

Validation
    Each row is accepted or rejected exactly once. Reasons, in the fixed order in which the
    first failing one is chosen (:data:`REJECTION_REASONS`):

    ``malformed_row``
        a CSV line the parser cannot split into the header's columns (too many or too few
        fields, a quote out of place), or a line with an odd number of ``"`` (an unterminated
        quote or a quoted line break) or a lone carriage return, which cannot be a record.
    ``missing_customer_id``
        the id is empty, blank (Unicode blanks included), a null token such as ``NULL`` or
        ``N/A`` (``null_tokens``), or contains a control character (:mod:`cbcv.data.rules`).
    ``unparseable_date``
        the date is not an ISO date or timestamp (``1997-01-31``, ``1997-01-31 14:05:00``,
        ``1997-01-31T14:05:00+01:00``: the calendar date as written is kept, the time and
        offset are ignored) nor ``YYYYMMDD``; with ``date_format`` (strptime, e.g.
        ``%d/%m/%Y``) only that format is accepted. Typed date/timestamp columns of a Parquet
        file, DuckDB table or DataFrame are always read as dates; zone-aware timestamps in their
        own zone (or ``timezone``), never the machine's.
    ``date_out_of_range``
        the date lies outside 1677-09-22 .. 2262-04-11.
    ``date_before_earliest``
        the date is before ``earliest_date`` (1970-01-01 by default): a sentinel, not a purchase.
    ``date_after_as_of``
        the date is later than ``as_of``.
    ``non_numeric_amount``
        the amount is missing, not a plain number (``12.50``, ``-3``, ``1e3``; no thousands
        separators — ``1,234.50``, ``1_234.50`` —, currency signs or decimal commas) or not
        finite.
    ``amount_out_of_range``
        the amount's magnitude exceeds 10^12.
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
    are netted into one customer-day, and a purchase is a customer-day with a positive net
    amount (or, with ``zero_amount_purchases``, one of zero-amount rows only): other days are
    dropped from the customer-day view (:func:`cbcv.data.transactions.daily_sql`). The
    reconciliation counts return rows, the returned amount, the customer-days where a return
    was netted against a purchase and the customer-days that are not purchases.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.config_checks import timezone_problem
from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import first_line, ident, literal, parse_day, scratch_connection
from cbcv.data.catalog import is_dataset
from cbcv.data.csv_stage import DELIMITERS as DELIMITERS
from cbcv.data.csv_stage import stage_csv
from cbcv.data.reconciliation import Reconciliation, RowCounts, reconciliation_of
from cbcv.data.rules import (
    RowRules,
    amount_sql,
    date_sql,
    id_sql,
    rejection_details,
    row_checks,
)
from cbcv.data.staged import ROW, Staged, file_sha256
from cbcv.data.transactions import TRANSACTION_COLUMNS, reconciliation_sql
from cbcv.data.typed_stage import stage_duckdb, stage_frame, stage_parquet

#: Rejection reasons in the order in which the first failing one is chosen.
REJECTION_REASONS: tuple[str, ...] = (
    "malformed_row",
    "missing_customer_id",
    "unparseable_date",
    "date_out_of_range",
    "date_before_earliest",
    "date_after_as_of",
    "non_numeric_amount",
    "amount_out_of_range",
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
class LoadOptions:
    """How a transaction log is read and validated: the keywords of :func:`load_transactions`,
    :func:`validate_to_parquet` and :func:`cbcv.data.spark.load_transactions_spark`.

    Fields
    ------
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
    null_tokens, earliest_date, timezone
        The id null tokens, the earliest accepted date and the zone in which zone-aware
        timestamps are read (:class:`cbcv.data.rules.RowRules`; None keeps the defaults).
    zero_amount_purchases
        The purchase rule the reconciliation counts customer-days with
        (:func:`cbcv.data.transactions.daily_sql`).
    """

    columns: Mapping[str, str] | None = None
    as_of: str | date | datetime | pd.Timestamp | None = None
    date_format: str | None = None
    delimiter: str | None = None
    table: str | None = None
    source_name: str | None = None
    reject_duplicates: bool = True
    null_tokens: Sequence[str] | None = None
    earliest_date: str | date | None = None
    timezone: str | None = None
    zero_amount_purchases: bool = False

    def parsed(self) -> ParsedOptions:
        """The options checked and parsed; ConfigError when one is invalid."""
        return ParsedOptions(
            rules=row_rules(
                self.null_tokens, self.earliest_date, self.timezone, self.zero_amount_purchases
            ),
            columns=column_map(self.columns),
            as_of=parse_day(self.as_of, "as_of"),
            delimiter=parse_delimiter(self.delimiter),
        )


@dataclass(frozen=True)
class ParsedOptions:
    """:class:`LoadOptions` checked: the contract-to-source column map, the as-of day, the CSV
    delimiter (None: from the header) and the row rules."""

    rules: RowRules
    columns: dict[str, str]
    as_of: date | None
    delimiter: str | None


def load_transactions(
    source: str | os.PathLike[str] | pd.DataFrame, **options: Any
) -> LoadResult:
    """Read a transaction log, validate each row and reconcile accepted against rejected rows.

    ``source`` is a CSV file (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``), a Parquet file
    (``.parquet``, ``.pq``), a DuckDB database file (``.duckdb``, ``.db``; name the table
    with ``table``, optional when the file holds one table) or a DataFrame. ``options`` are the
    fields of :class:`LoadOptions` (``columns``, ``as_of``, ``date_format``, ``delimiter``,
    ``table``, ``source_name``, ``reject_duplicates=True``, ``null_tokens``, ``earliest_date``,
    ``timezone``, ``zero_amount_purchases=False``).

    Raises
    ------
    DataError
        The file is missing, unreadable, empty (no data rows) or of an unsupported type; a
        required column is missing; the delimiter is wrong; the DuckDB table does not exist.
    ConfigError
        ``columns``, ``as_of``, ``date_format`` or ``delimiter`` is invalid.
    """
    with _checked_rows(source, LoadOptions(**options)) as (con, checked):
        return LoadResult(
            transactions=_accepted_frame(con),
            rejections=checked.rejections,
            reconciliation=checked.reconciliation,
        )


@contextlib.contextmanager
def _checked_rows(
    source: str | os.PathLike[str] | pd.DataFrame,
    options: LoadOptions,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, _Checked]]:
    """A scratch connection whose table ``checked`` holds every row with its verdict."""
    parsed = options.parsed()
    date_format = options.date_format
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        if date_format is not None:
            _check_date_format(con, date_format)
        rules = parsed.rules
        staged = _stage(
            con, source, parsed.columns, parsed.delimiter, options.table, options.source_name,
            rules.timezone,
        )
        checked = _validate(con, staged, parsed.as_of, date_format, options.reject_duplicates, rules)
        yield con, checked


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
    memory_limit: str | None = None,
    threads: int | None = None,
    **options: Any,
) -> ValidatedLog:
    """:func:`load_transactions` for logs larger than memory: the accepted rows go straight from
    DuckDB to the Parquet file ``accepted`` and never into pandas.

    The rules, reasons and reconciliation are those of :func:`load_transactions` (same
    ``options``: the fields of :class:`LoadOptions`).
    ``memory_limit`` (DuckDB syntax, e.g. ``"4GB"``) caps DuckDB's memory; beyond it DuckDB
    spills to a private temporary folder. ``threads`` caps its worker threads. Only the
    rejections come back as a DataFrame (one or a few lines per rejected row).
    """
    out = Path(accepted).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    with _checked_rows(source, LoadOptions(**options), memory_limit, threads) as (con, checked):
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


def column_map(columns: Mapping[str, str] | None) -> dict[str, str]:
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


def row_rules(
    null_tokens: Sequence[str] | None,
    earliest_date: Any,
    timezone: str | None,
    zero_amount_purchases: bool = False,
) -> RowRules:
    if null_tokens is not None and (
        isinstance(null_tokens, str) or not all(isinstance(t, str) for t in null_tokens)
    ):
        raise ConfigError(f"null_tokens must be a list of strings, got {null_tokens!r}")
    if timezone is not None:
        _check_timezone(timezone)
    earliest = parse_day(earliest_date, "earliest_date")
    return RowRules.of(null_tokens, earliest, timezone, zero_amount_purchases)


def _check_timezone(zone: str) -> None:
    problem = timezone_problem(zone)
    if problem:
        raise ConfigError(f"timezone {problem}")


def parse_delimiter(delimiter: str | None) -> str | None:
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
    timezone: str | None = None,
) -> Staged:
    if isinstance(source, pd.DataFrame):
        if table is not None:
            raise DataError(
                f"{source_name or 'DataFrame'}: table= applies only to DuckDB database files"
            )
        return stage_frame(con, source, col_map, source_name or "DataFrame", timezone)
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"unsupported source {type(source).__name__}: pass a file path or a DataFrame"
        )
    path = Path(source).expanduser()
    name = source_name or path.name
    if not path.exists():
        hint = ""
        if isinstance(source, str) and is_dataset(source):
            hint = f"; for the bundled data set use cbcv.data.datasets.load_dataset({source!r})"
        raise DataError(f"{name}: file not found ({path}){hint}")
    if not path.is_file():
        raise DataError(f"{name}: not a file ({path})")
    kind = file_kind(path)
    if kind is None:
        raise DataError(
            f"{name}: unsupported file type {''.join(path.suffixes) or '(no suffix)'!r}; use CSV "
            "(.csv .tsv .txt, optionally .gz), Parquet (.parquet .pq) or a DuckDB database "
            "(.duckdb .db)"
        )
    if table is not None and kind != "duckdb":
        raise DataError(f"{name}: table= applies only to DuckDB database files (.duckdb, .db)")
    if kind == "csv":
        return stage_csv(con, path, name, col_map, delimiter)
    sha = file_sha256(path, name)
    if kind == "parquet":
        return stage_parquet(con, path, name, sha, col_map, timezone)
    return stage_duckdb(con, path, name, sha, col_map, table, timezone)


def file_kind(path: Path) -> str | None:
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


def stage_table(con: duckdb.DuckDBPyConnection, source: Any, required: dict[str, str],
                source_name: str | None) -> Staged:
    """A CSV or Parquet file, or a DataFrame, staged as text in the view ``rows``
    (:mod:`cbcv.data.staged`): the reader of the tables that are not purchase logs
    (subscription records, disclosures). ``required``: contract name -> source column."""
    if isinstance(source, pd.DataFrame):
        return stage_frame(con, source, required, source_name or "DataFrame")
    if not isinstance(source, str | os.PathLike):
        raise DataError(f"unsupported source {type(source).__name__}: pass a path or a DataFrame")
    path = Path(source).expanduser()
    name = source_name or path.name
    if not path.is_file():
        raise DataError(f"{name}: file not found ({path})")
    kind = file_kind(path)
    if kind == "csv":
        return stage_csv(con, path, name, required, None)
    if kind == "parquet":
        return stage_parquet(con, path, name, file_sha256(path, name), required)
    raise DataError(f"{name}: unsupported file type {''.join(path.suffixes) or '(no suffix)'!r}; "
                    "use CSV (.csv .tsv .txt, optionally .gz) or Parquet (.parquet .pq)")


# --------------------------------------------------------------------------- validation


def _validate(
    con: duckdb.DuckDBPyConnection,
    staged: Staged,
    as_of: date | None,
    date_format: str | None,
    reject_duplicates: bool,
    rules: RowRules | None = None,
) -> _Checked:
    """Check every staged row into the table ``checked`` (``reason`` NULL when accepted)."""
    rules = rules or RowRules()
    id_col, date_col, amount_col = (staged.columns[k] for k in TRANSACTION_COLUMNS)
    everything = ", ".join(ident(c) for c in staged.all_columns)
    if reject_duplicates:
        dup_rank = f"row_number() OVER (PARTITION BY {everything} ORDER BY {ROW})"
        first_row = f"min({ROW}) OVER (PARTITION BY {everything})"
    else:
        dup_rank, first_row = "1", f"{ROW}"
    typed = date_col in staged.temporal
    notes = list(staged.notes)
    if date_format is not None and typed:
        notes.append(f"date column {date_col!r} is typed as a date: date_format was not needed")
    checks = row_checks(rules, as_of)
    verdict = " ".join(f"WHEN {cond} THEN {literal(reason)}" for reason, _, cond in checks)
    try:
        con.execute(
            f"""
            CREATE TABLE checked AS
            SELECT *, CASE {verdict} END AS reason
            FROM (
                SELECT {ROW} AS source_row,
                       {ident(id_col)} AS id_raw,
                       {ident(date_col)} AS date_raw,
                       {ident(amount_col)} AS amount_raw,
                       {id_sql(ident(id_col), rules)} AS customer_id,
                       {date_sql(ident(date_col), None if typed else date_format)} AS date,
                       {amount_sql(ident(amount_col))} AS amount,
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
    counts = RowCounts.tally(rows_read, int(n_accepted), by_reason)

    rejections = _rejections_frame(con, staged, checks, rejection_details(rules, as_of))
    if int(rejections["primary"].sum()) != counts.rejected:  # pragma: no cover - invariant
        raise RuntimeError("rejections table does not match the reconciliation")
    cursor = con.execute(reconciliation_sql("accepted", rules.zero_amount_purchases))
    names = [d[0] for d in cursor.description]
    reconciliation = reconciliation_of(
        staged, counts, dict(zip(names, cursor.fetchall()[0], strict=True)), as_of=as_of,
        duplicate_check=reject_duplicates, notes=tuple(notes),
        zero_amount_purchases=rules.zero_amount_purchases,
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
    con: duckdb.DuckDBPyConnection,
    staged: Staged,
    checks: Sequence[tuple[str, str, str]],
    details: Mapping[str, str],
) -> pd.DataFrame:
    """One line per failing check of each rejected row (``checks``: (reason, field, condition)
    in order); ``primary`` marks the reason counted for the row."""
    raw_of = {
        field: (staged.columns[field], raw)
        for field, raw in zip(TRANSACTION_COLUMNS, ("id_raw", "date_raw", "amount_raw"), strict=True)
    }
    parts = []
    for order, (reason, field, cond) in enumerate(checks, start=1):
        if reason == "duplicate_row":
            parts.append(
                (order, reason, "*", "NULL", "'same fields as source row ' || first_row",
                 "reason = 'duplicate_row'")
            )
            continue
        column, raw = raw_of[field]
        detail = literal(details[reason]) if reason in details else "NULL"
        parts.append((order, reason, column, raw, detail, cond))
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


def rejections_from_lines(con: duckdb.DuckDBPyConnection, staged: Staged, order: str = "source_row, rank") -> pd.DataFrame:
    """The rejections table of a validation that wrote its failing checks to the table ``lines``
    (``source_row``, ``col``, ``raw_value``, ``reason``, ``is_primary``, ``detail``, ``rank``,
    ordered by ``order``) and staged ``staged``: every check line with its source line, and the
    malformed records, by row (:mod:`cbcv.data.panel`, :mod:`cbcv.data.subscriptions`)."""
    lines = con.execute(
        "SELECT source_row, col AS column, raw_value, reason, is_primary AS primary, detail, rank "
        f"FROM lines ORDER BY {order}"
    ).df()
    rows = lines["source_row"].to_numpy(dtype=np.int64)
    found = staged.line_of(rows) if staged.line_of is not None and len(rows) else [None] * len(rows)
    lines["line"] = pd.array(found, dtype="Int64")
    malformed = staged.malformed.assign(column="*", reason="malformed_row", primary=True, rank=0)
    combined = pd.concat([f for f in (malformed, lines) if len(f)] or [lines], ignore_index=True)
    return rejections_table(combined.sort_values(["source_row", "rank"], kind="stable"))


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
