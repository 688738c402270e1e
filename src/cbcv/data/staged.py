"""What every source is staged into before validation, and helpers all stagings share.

:mod:`cbcv.data.load` (typed sources) and :mod:`cbcv.data.csv_stage` (CSV files) both build a
:class:`Staged`; this module keeps them free of an import cycle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cbcv.core.errors import DataError

#: The column of the ``rows`` view that numbers the source's records (1-based).
ROW = "__cbcv_row"
#: Bytes read at a time when a file is hashed or scanned.
CHUNK = 1 << 20
#: A rejected line's raw text is cut to this many characters.
MAX_RAW_LINE = 500


@dataclass(frozen=True)
class Staged:
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

    def refuse_malformed(self) -> None:
        """A table read whole, not row by row (covariates, survey answers): its first malformed
        row is one DataError line naming the file and the row."""
        if len(self.malformed):
            bad = self.malformed.iloc[0]
            raise DataError(f"{self.name}: row {int(bad['source_row'])}: malformed ({bad['detail']})")


def file_sha256(path: Path, name: str) -> str:
    """The sha256 of a file, read in chunks (DataError naming the file when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def resolve_columns(found: list[str], col_map: dict[str, str], name: str) -> dict[str, str]:
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


def malformed_frame(
    rows: Sequence[int] = (),
    lines: Sequence[int] = (),
    raw: Sequence[str] = (),
    details: Sequence[str] = (),
) -> pd.DataFrame:
    """The ``malformed`` table of a :class:`Staged`: one line per record that could not be read
    (empty by default)."""
    return pd.DataFrame(
        {
            "source_row": pd.array(list(rows), dtype="Int64"),
            "line": pd.array(list(lines), dtype="Int64"),
            "raw_value": pd.Series(list(raw), dtype=object),
            "detail": pd.Series(list(details), dtype=object),
        }
    )
