"""Stage a CSV file into the scratch database, accounting for every physical line.

Rules
    A CSV file is UTF-8 text (a UTF-8 byte-order mark is allowed) with LF or CRLF line endings,
    optionally gzip-compressed (``.gz``). **One record per physical line**: a line whose count of
    the quote character ``"`` is odd (an unterminated quote, or a quoted line break) or that
    holds a lone carriage return cannot be a complete record; it is rejected as
    ``malformed_row`` with its line number and reading resumes on the next line. So every line
    after the header is blank, a record read, or a record rejected, and ``line`` is always the
    physical line of the file.

Refused files
    Before anything is read, a file that is not UTF-8 CSV text is refused with one line naming
    the file and what it is: UTF-16 or UTF-32 text, an Excel workbook (``.xlsx``, ``.xls``), a
    zip or gzip archive under a CSV name, other binary data, CR-only (classic Mac) line endings,
    or bytes that are not UTF-8 (Latin-1, Windows-1252), with the first such line and byte.

The pre-scan is vectorised over 1 MiB chunks and also computes the file's sha256; only when
some lines must be rejected is a copy with those lines blanked written to a temporary folder
for DuckDB to read, so that DuckDB never sees a record spanning lines.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.errors import DataError
from cbcv.data._sql import first_line, ident, literal
from cbcv.data.staged import (
    CHUNK,
    MAX_RAW_LINE,
    ROW,
    Staged,
    file_sha256,
    malformed_frame,
    resolve_columns,
)

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

UNBALANCED_QUOTE = "unbalanced quote: a record must be on one line"
LONE_CR = "carriage return inside the line: a record must be on one line"

_LF, _CR, _QUOTE = 10, 13, 34
_SAVE_UTF8 = "cbcv reads UTF-8 CSV: save it as 'CSV UTF-8'"


@dataclass
class CsvLayout:
    """What the pre-scan found: line counts, the header and the lines that are not records."""

    sha256: str = ""
    n_lines: int = 0
    header_line: int = 0  # 1-based; 0 when the file has no non-blank line
    header: bytes = b""
    n_crlf: int = 0  # lines ending CR LF
    n_lf: int = 0  # lines ending with a bare LF
    blank_parts: list[np.ndarray] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    bad_raw: list[str] = field(default_factory=list)
    bad_detail: list[str] = field(default_factory=list)

    @property
    def blanks(self) -> np.ndarray:
        """Sorted 1-based numbers of the blank lines after the header."""
        if not self.blank_parts:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.blank_parts).astype(np.int64)

    @property
    def n_data_lines(self) -> int:
        """Lines after the header that are not blank: each is one record, read or rejected."""
        return self.n_lines - self.header_line - int(sum(len(b) for b in self.blank_parts))

    @property
    def needs_copy(self) -> bool:
        """Whether DuckDB must read a normalised copy: some lines are no record, blank lines
        precede the header, or LF and CR LF line endings are mixed (DuckDB misreads those)."""
        return bool(self.bad_lines) or self.header_line != 1 or bool(self.n_crlf and self.n_lf)


# --------------------------------------------------------------------------- file kind


def check_text_kind(head: bytes, name: str, gz: bool) -> None:
    """DataError naming the file when its first bytes show it is not UTF-8 CSV text."""
    kind = _binary_kind(head, gz) or _wide_text(head)
    if kind is not None:
        raise DataError(f"{name}: {kind}")
    if b"\r" in head and b"\n" not in head:
        raise DataError(_cr_only(name))


def _binary_kind(head: bytes, gz: bool) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        if b"[Content_Types].xml" in head or b"xl/" in head:
            return "an Excel workbook (.xlsx), not CSV text: export it as CSV UTF-8"
        return "a zip archive (an Excel .xlsx workbook?), not CSV text: export it as CSV UTF-8"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "an Excel 97-2003 workbook (.xls), not CSV text: export it as CSV UTF-8"
    if head.startswith(b"\x1f\x8b") and not gz:
        return "gzip-compressed data under a plain name: name it .csv.gz"
    return None


def _wide_text(head: bytes) -> str | None:
    """UTF-16/UTF-32 (by byte-order mark or by the pattern of NUL bytes) or binary data."""
    boms = (
        (b"\xff\xfe\x00\x00", "UTF-32 LE", "FF FE 00 00"),
        (b"\x00\x00\xfe\xff", "UTF-32 BE", "00 00 FE FF"),
        (b"\xff\xfe", "UTF-16 LE", "FF FE"),
        (b"\xfe\xff", "UTF-16 BE", "FE FF"),
    )
    for bom, encoding, shown in boms:
        if head.startswith(bom):
            return f"{encoding} text (a byte-order mark {shown}); {_SAVE_UTF8}"
    sample = np.frombuffer(head[: 1 << 16], dtype=np.uint8)
    if not len(sample) or np.count_nonzero(sample == 0) == 0:
        return None
    encoding = _nul_pattern(sample)
    if encoding is not None:
        return f"{encoding} text (no byte-order mark; NUL bytes between characters); {_SAVE_UTF8}"
    first = head.split(b"\n", 1)[0]
    if b"\x00" in first or np.count_nonzero(sample == 0) * 10 > len(sample):
        return "binary data (NUL bytes), not CSV text: export the data as CSV UTF-8"
    return None


def _nul_pattern(sample: np.ndarray) -> str | None:
    """The UTF-16/UTF-32 variant whose NUL-byte pattern ``sample`` shows, if any."""
    zero4 = [float(np.mean(sample[k::4] == 0)) if len(sample[k::4]) else 0.0 for k in range(4)]
    if zero4[0] < 0.1 and min(zero4[1:]) > 0.9:
        return "UTF-32 LE"
    if zero4[3] < 0.1 and min(zero4[:3]) > 0.9:
        return "UTF-32 BE"
    even, odd = float(np.mean(sample[0::2] == 0)), float(np.mean(sample[1::2] == 0))
    if odd > 0.6 and even < 0.1:
        return "UTF-16 LE"
    if even > 0.6 and odd < 0.1:
        return "UTF-16 BE"
    return None


def _cr_only(name: str) -> str:
    return f"{name}: CR-only (classic Mac) line endings: save with LF or CRLF line endings"


# --------------------------------------------------------------------------- pre-scan


def _complete_lines(stream: BinaryIO, digest: Any) -> Iterator[tuple[bytes, bool]]:
    """The stream in pieces of whole lines, each ending with LF, and whether that LF was added
    (to a last line without one)."""
    tail = b""
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        if digest is not None:
            digest.update(chunk)
        data = tail + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            tail = data
            continue
        yield data[:cut], False
        tail = data[cut:]
    if tail:
        yield tail + b"\n", True


def _check_utf8(piece: bytes, first: int, name: str) -> None:
    if piece.isascii():
        return
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first + piece.count(b"\n", 0, exc.start)
        byte = piece[exc.start]
        raise DataError(
            f"{name}: not UTF-8: line {line} has byte 0x{byte:02X} (the file looks "
            "Latin-1/Windows-1252): save it as UTF-8"
        ) from None


def _raw_text(line: bytes) -> str:
    return line.rstrip(b"\r")[: 4 * MAX_RAW_LINE].decode("utf-8", "ignore")[:MAX_RAW_LINE]


def _scan_piece(piece: bytes, added: bool, layout: CsvLayout, name: str) -> None:
    """Add a piece of whole lines to ``layout`` (blank lines, header, lines that are no record,
    line endings); ``added``: the piece's final LF is not in the file."""
    first = layout.n_lines + 1  # line number of the piece's first line
    _check_utf8(piece, first, name)
    a = np.frombuffer(piece, dtype=np.uint8)
    ends = np.flatnonzero(a == _LF)
    starts = np.concatenate(([0], ends[:-1] + 1))
    length = ends - starts
    crlf = a[ends - 1] == _CR
    n_crlf = int(np.count_nonzero(crlf))
    layout.n_crlf += n_crlf
    layout.n_lf += len(ends) - n_crlf - int(added and not crlf[-1])
    blank = (length == 0) | ((length == 1) & crlf)
    skip = 0  # lines of the piece up to and including the header
    if layout.header_line == 0:
        filled = np.flatnonzero(~blank)
        if not len(filled):
            layout.n_lines += len(ends)
            return
        skip = int(filled[0]) + 1
        layout.header_line = first + skip - 1
        layout.header = piece[starts[skip - 1] : ends[skip - 1]]
    bad = np.zeros(len(ends), dtype=np.int8)  # 1: unbalanced quote, 2: lone CR
    if b'"' in piece:
        quotes = np.flatnonzero(a == _QUOTE)
        odd = np.bincount(np.searchsorted(ends, quotes), minlength=len(ends)) % 2 == 1
        bad[odd] = 1
    if b"\r" in piece:
        cr = np.flatnonzero(a == _CR)
        lone = cr[a[cr + 1] != _LF]
        bad[np.searchsorted(ends, lone)] = 2
    if skip and bad[skip - 1]:
        if bad[skip - 1] == 2:
            raise DataError(_cr_only(name))
        raise DataError(f"{name}: line {layout.header_line} (the header): {UNBALANCED_QUOTE}")
    layout.blank_parts.append(first + skip + np.flatnonzero(blank[skip:]))
    for i in np.flatnonzero(bad[skip:]) + skip:
        layout.bad_lines.append(first + int(i))
        layout.bad_raw.append(_raw_text(piece[starts[i] : ends[i]]))
        layout.bad_detail.append(UNBALANCED_QUOTE if bad[i] == 1 else LONE_CR)
    layout.n_lines += len(ends)


def _open(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def csv_layout(path: Path, name: str) -> CsvLayout:
    """Pre-scan a CSV file (DataError naming the file when it is not UTF-8 CSV text)."""
    gz = path.suffix.lower() == ".gz"
    layout = CsvLayout()
    try:
        digest = None if gz else hashlib.sha256()
        with _open(path) as stream:
            head = stream.read(CHUNK)
            check_text_kind(head, name, gz)
            stream.seek(0)
            for piece, added in _complete_lines(stream, digest):
                _scan_piece(piece, added, layout, name)
        layout.sha256 = file_sha256(path, name) if digest is None else digest.hexdigest()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{name}: cannot read file ({getattr(exc, 'strerror', None) or exc})"
        ) from exc
    return layout


@contextlib.contextmanager
def readable_copy(path: Path, layout: CsvLayout) -> Iterator[Path]:
    """``path`` itself when DuckDB can read it as it is; else a temporary copy starting at the
    header, with LF line endings and the lines that are no record blanked (so line L of the copy
    is line L + header_line - 1 of the file), removed afterwards."""
    if not layout.needs_copy:
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="cbcv-csv-"))
    try:
        copy = folder / "clean.csv"
        with _open(path) as stream, copy.open("wb") as out:
            _write_copy(stream, out, layout)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_copy(stream: BinaryIO, out: BinaryIO, layout: CsvLayout) -> None:
    bad = np.asarray(layout.bad_lines, dtype=np.int64)
    first = 1  # line number of the piece's first line
    for piece, _ in _complete_lines(stream, None):
        end = first + piece.count(b"\n")  # first line of the next piece
        if end <= layout.header_line:
            first = end
            continue
        lo, hi = np.searchsorted(bad, [first, end])
        if lo != hi or first < layout.header_line:
            lines = piece.split(b"\n")
            for number in bad[lo:hi]:
                lines[int(number) - first] = b""
            piece = b"\n".join(lines[max(layout.header_line - first, 0) :])
        out.write(piece.replace(b"\r\n", b"\n"))
        first = end


# --------------------------------------------------------------------------- header


def header_names(header: str, delimiter: str, name: str = "CSV") -> list[str]:
    """The column names of a header line (blank names become ``columnN``, repeats ``_1``...)."""
    try:
        fields = next(csv.reader([header], delimiter=delimiter, quotechar='"'), [])
    except csv.Error as exc:
        raise DataError(f"{name}: cannot parse the header line ({exc})") from None
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


def guess_delimiter(header: str) -> str:
    """The most frequent of :data:`DELIMITERS` in the header line (``,`` when none occurs)."""
    counts = [(header.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def _columns_of(layout: CsvLayout, name: str, delimiter: str | None) -> tuple[str, list[str]]:
    header = layout.header.decode("utf-8").lstrip("\ufeff").rstrip("\r")
    delim = delimiter or guess_delimiter(header)
    names = header_names(header, delim, name)
    if len(names) == 1:
        others = [d for d in DELIMITERS if d != delim and d in names[0]]
        if others:
            raise DataError(
                f"{name}: the header parses into one column {names[0]!r} with delimiter "
                f"{delim!r}; the file looks {others[0]!r}-delimited: pass delimiter={others[0]!r}"
            )
    return delim, names


# --------------------------------------------------------------------------- staging


def stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    col_map: dict[str, str],
    delimiter: str | None,
) -> Staged:
    """Copy a CSV file into ``raw`` (every column as text) with the view ``rows`` numbering its
    records; the lines that are no record go to ``malformed`` with their line numbers."""
    layout = csv_layout(path, name)
    if layout.header_line == 0:
        raise DataError(f"{name}: empty file (no header, no data rows)")
    delim, names = _columns_of(layout, name, delimiter)
    resolved = resolve_columns(names, col_map, name)
    with readable_copy(path, layout) as readable:
        rejected = _read_csv(con, readable, name, names, delim)
    n_parsed = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
    # DuckDB numbers the lines of what it read, whose first line is the header
    lines = layout.bad_lines + [int(r[0]) + layout.header_line - 1 for r in rejected]
    raw = layout.bad_raw + [str(r[2] or "").strip("\r\n")[:MAX_RAW_LINE] for r in rejected]
    details = layout.bad_detail + [str(r[1]) for r in rejected]
    if n_parsed + len(lines) != layout.n_data_lines:
        raise DataError(
            f"{name}: cannot account for every line: {layout.n_data_lines} data lines, "
            f"{n_parsed} records read and {len(lines)} rejected"
        )
    order = np.argsort(np.asarray(lines, dtype=np.int64), kind="stable")
    bad_lines = np.asarray(lines, dtype=np.int64)[order]
    blanks = layout.blanks
    header_line = layout.header_line
    # record ordinal (1-based, blank lines not counted) of each malformed line
    ordinals = bad_lines - header_line - np.searchsorted(blanks, bad_lines, side="left")
    _number_rows(con, names, ordinals)
    # a_j: number of data lines before the j-th blank line (j = 1..)
    blank_shift = blanks - header_line - np.arange(1, len(blanks) + 1)

    def line_of(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return header_line + rows + np.searchsorted(blank_shift, rows, side="left")

    malformed = malformed_frame(
        [int(k) for k in ordinals],
        [int(v) for v in bad_lines],
        [raw[i] for i in order],
        [details[i] for i in order],
    )
    return Staged(
        name=name,
        kind="csv",
        sha256=layout.sha256,
        columns=resolved,
        all_columns=tuple(names),
        temporal=frozenset(),
        malformed=malformed,
        line_of=line_of,
        notes=(),
    )


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    names: list[str],
    delim: str,
) -> list[tuple[int, str, str]]:
    """Read the file into ``raw``; DuckDB's rejected lines as (line, error types, text)."""
    struct = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in names) + "}"
    read = (
        f"read_csv({literal(str(path))}, auto_detect = false, columns = {struct}, header = true, "
        f"delim = {literal(delim)}, quote = '\"', escape = '\"', comment = '', "
        "ignore_errors = true, store_rejects = true, "
        "compression = 'auto')"
    )
    try:
        con.execute(f"CREATE TABLE raw AS SELECT * FROM {read}")
        return con.execute(
            "SELECT line, string_agg(DISTINCT lower(error_type), '; ' ORDER BY lower(error_type)), "
            "first(csv_line) FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall()
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot parse CSV ({first_line(exc)})") from exc


def _number_rows(con: duckdb.DuckDBPyConnection, names: list[str], ordinals: np.ndarray) -> None:
    """The view ``rows``: ``raw`` numbered by record ordinal, malformed records left out."""
    if not len(ordinals):
        con.execute(f"CREATE VIEW rows AS SELECT rowid + 1 AS {ROW}, * FROM raw")
        return
    # Good record i (0-based, parse order) is preceded by malformed record j when
    # g_j = ordinal_j - j <= i; shift it by the number of such j.
    counts = np.arange(1, len(ordinals) + 1)
    shift = pd.DataFrame({"g": ordinals - counts, "cnt": counts})
    shift = shift.groupby("g", as_index=False)["cnt"].max()
    con.register("cbcv_shift", shift)
    con.execute("CREATE VIEW raw_indexed AS SELECT rowid AS cbcv_idx, * FROM raw")
    cols = ", ".join(f"r.{ident(n)}" for n in names)
    con.execute(
        f"CREATE VIEW rows AS SELECT r.cbcv_idx + 1 + coalesce(s.cnt, 0) AS {ROW}, {cols} "
        "FROM raw_indexed r ASOF LEFT JOIN cbcv_shift s ON r.cbcv_idx >= s.g"
    )
