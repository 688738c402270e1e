"""Reading a transaction log's file into Spark for validation: the file's source (local path or
URI), Spark's errors as one-line DataErrors, and the staging of CSV and Parquet files as text
columns with exact source rows and file lines (:mod:`cbcv.data.spark`, which validates them)."""

from __future__ import annotations

import contextlib
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cbcv.core.errors import ConfigError, DataError
from cbcv.data._sql import SPARK, first_line
from cbcv.data.csv_stage import csv_layout, guess_delimiter, header_names
from cbcv.data.load import file_kind, file_sha256
from cbcv.data.spark_rules import (
    SparkStaged,
    float_text,
    nanos_text,
    wall_clock_text,
    zoned_micros,
)
from cbcv.data.staged import MAX_RAW_LINE, resolve_columns

_CORRUPT = "_cbcv_corrupt"
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")
_NANOS_PER_DAY = 86_400_000_000_000


@contextlib.contextmanager
def spark_errors(name: str, what: str) -> Iterator[None]:
    """Turn Spark's (often multi-line, JVM-side) errors into one-line DataErrors."""
    try:
        yield
    except (DataError, ConfigError):
        raise
    except PySparkException as exc:
        text = first_line(exc)
        if "PATH_NOT_FOUND" in text or "does not exist" in text.lower():
            raise DataError(f"{name}: file not found ({text})") from exc
        raise DataError(f"{name}: {what} ({text})") from exc
    except Exception as exc:  # py4j errors carry the JVM's exception
        if type(exc).__name__ not in {"Py4JJavaError", "Py4JError"}:
            raise
        raise DataError(f"{name}: {what} ({first_line(exc)})") from exc


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    name: str
    uri: str  # what Spark reads
    local: Path | None  # the local file, when it is one
    kind: str  # csv | parquet


def spark_source(source: str | os.PathLike[str], source_name: str | None) -> Source:
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"unsupported source {type(source).__name__}: pass the path or URI of a CSV or "
            "Parquet file"
        )
    text = os.fspath(source)
    if URI.match(text) and not text.lower().startswith("file:"):
        name = source_name or text.rstrip("/").rsplit("/", 1)[-1]
        path_for_kind = Path(text.split("://", 1)[-1])
        local = None
        uri = text
    else:
        if text.lower().startswith("file:"):
            text = re.sub(r"^file:(//)?", "", text)
        path = Path(text).expanduser()
        name = source_name or path.name
        if not path.exists():
            raise DataError(f"{name}: file not found ({path})")
        if not path.is_file():
            raise DataError(f"{name}: not a file ({path}); pass one CSV or Parquet file")
        path_for_kind, local, uri = path, path.resolve(), path.resolve().as_uri()
    kind = file_kind(path_for_kind)
    if kind == "duckdb":
        raise DataError(f"{name}: DuckDB database files are read by the DuckDB engine only")
    if kind is None:
        raise DataError(
            f"{name}: unsupported file type {''.join(path_for_kind.suffixes) or '(no suffix)'!r}; "
            "use CSV (.csv .tsv .txt, optionally .gz) or Parquet (.parquet .pq)"
        )
    return Source(name=name, uri=uri, local=local, kind=kind)


def _parquet_schema(local: Path | None) -> Any:
    """The Arrow schema of a local Parquet file; None for a remote or unreadable one."""
    if local is None:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(local)
    except (OSError, pa.ArrowException):
        return None


def _nanos_columns(local: Path | None) -> frozenset[str]:
    """Columns of a local Parquet file typed TIMESTAMP(NANOS), which Spark reads as int64."""
    import pyarrow as pa

    schema = _parquet_schema(local)
    return frozenset(
        f.name for f in schema or () if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    )


def _parquet_timestamps(local: Path | None) -> dict[str, str | None]:
    """The stored zone of each timestamp column of a local Parquet file (None: naive)."""
    import pyarrow as pa

    schema = _parquet_schema(local)
    return {f.name: f.type.tz for f in schema or () if pa.types.is_timestamp(f.type)}


def read_parquet(spark: SparkSession, src: Source) -> tuple[DataFrame, frozenset[str]]:
    with spark_errors(src.name, "cannot read as Parquet"):
        frame = spark.read.parquet(src.uri)
    nanos = _nanos_columns(src.local)
    if nanos and spark.conf.get("spark.sql.legacy.parquet.nanosAsLong", "false") != "true":
        raise DataError(
            f"{src.name}: column(s) {', '.join(sorted(nanos))} hold nanosecond timestamps, "
            "which Spark reads only with spark.sql.legacy.parquet.nanosAsLong=true (set by "
            "cbcv.data.spark.spark_session)"
        )
    nanos = frozenset(c for c in nanos if isinstance(frame.schema[c].dataType, T.LongType))
    return frame, nanos


def is_temporal(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.DateType | T.TimestampType | T.TimestampNTZType)


def nanos_to_day(column: Column) -> Column:
    return F.date_from_unix_date(F.floor(column / F.lit(_NANOS_PER_DAY)).cast("int"))


# --------------------------------------------------------------------------- staging


def stage_csv_spark(
    spark: SparkSession, src: Source, col_map: dict[str, str], delim: str | None
) -> SparkStaged:
    name = src.name
    if src.local is not None:  # refuses other encodings and file kinds, as DuckDB's reader
        csv_layout(src.local, name)
    with spark_errors(name, "cannot read file"):
        lines = spark.read.text(src.uri).select(
            F.col("value"),
            F.col("_metadata.file_block_start").alias("_blk"),
            F.monotonically_increasing_id().alias("_all"),
        )
        nonblank = F.col("value") != F.lit("")
        blocks = (
            lines.groupBy("_blk")
            .agg(
                F.count(F.lit(1)).alias("n_all"),
                F.min("_all").alias("m_all"),
                F.count(F.when(nonblank, F.lit(1))).alias("n_nb"),
                F.min(F.when(nonblank, F.struct("_all", "value"))).alias("first"),
            )
            .collect()
        )
    blocks = sorted(blocks, key=lambda b: b["_blk"])
    # Each split of the file is read by one task in order, so within a split the ids count up
    # by one per line. Number the lines (all, and non-blank ones) across splits in file order.
    shifts: list[tuple[int, int, int]] = []
    header: str | None = None
    all_off = nb_off = 0
    nb_base: dict[int, int] = {}
    running: defaultdict[int, int] = defaultdict(int)
    for b in sorted(blocks, key=lambda b: b["m_all"]):
        pid = int(b["m_all"]) >> 33
        nb_base[b["_blk"]] = (pid << 33) + running[pid]
        running[pid] += int(b["n_nb"])
    for b in blocks:
        if header is None and b["n_nb"]:
            header = b["first"]["value"]
        shifts.append((b["_blk"], all_off - int(b["m_all"]), nb_off - nb_base[b["_blk"]]))
        all_off += int(b["n_all"])
        nb_off += int(b["n_nb"])
    if header is None:
        raise DataError(f"{name}: empty file (no header, no data rows)")
    header = header.lstrip("\ufeff")
    delimiter = delim or guess_delimiter(header)
    names = header_names(header, delimiter)
    if len(names) == 1:
        others = [d for d in (",", ";", "\t", "|") if d != delimiter and d in names[0]]
        if others:
            raise DataError(
                f"{name}: the header parses into one column {names[0]!r} with delimiter "
                f"{delimiter!r}; the file looks {others[0]!r}-delimited: pass "
                f"delimiter={others[0]!r}"
            )
    resolved = resolve_columns(names, col_map, name)
    internal = [f"c{i}" for i in range(len(names))]
    shift_frame = spark.createDataFrame(shifts, "_blk long, a_shift long, n_shift long")
    numbered = (
        lines.filter(nonblank)
        .select("*", F.monotonically_increasing_id().alias("_nb"))
        .join(F.broadcast(shift_frame), "_blk")
        .select(
            (F.col("_nb") + F.col("n_shift")).alias("source_row"),
            (F.col("_all") + F.col("a_shift") + F.lit(1)).alias("line"),
            F.col("value"),
        )
        .filter(F.col("source_row") >= 1)  # 0 is the header
    )
    ddl = ", ".join(f"{c} STRING" for c in internal) + f", {_CORRUPT} STRING"
    options = {
        "sep": delimiter,
        "quote": '"',
        "escape": '"',
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": _CORRUPT,
    }
    parsed = numbered.select(
        "source_row", "line", "value", F.from_csv("value", ddl, options).alias("r")
    )
    rows = parsed.select(
        "source_row",
        "line",
        *[F.col(f"r.{c}").alias(c) for c in internal],
        F.col(f"r.{_CORRUPT}").isNotNull().alias("malformed"),
        F.substring("value", 1, MAX_RAW_LINE).alias("raw_line"),
    )
    position = {n: internal[i] for i, n in enumerate(names)}
    return SparkStaged(
        name=name,
        kind="csv",
        sha256=file_sha256(src.local, name) if src.local is not None else None,
        columns=resolved,
        internal={k: position[v] for k, v in resolved.items()},
        all_internal=tuple(internal),
        typed_date=False,
        rows=rows,
    )


def stage_parquet_spark(
    spark: SparkSession, src: Source, col_map: dict[str, str], timezone: str | None
) -> SparkStaged:
    """Every column as text, as DuckDB stages a Parquet file (:mod:`cbcv.data.spark_rules`)."""
    frame, nanos = read_parquet(spark, src)
    names = [f.name for f in frame.schema.fields]
    resolved = resolve_columns(names, col_map, src.name)
    internal = {n: f"c{i}" for i, n in enumerate(names)}
    kinds = {f.name: f.dataType for f in frame.schema.fields}
    stored = _parquet_timestamps(src.local)
    date_col = resolved["date"]
    with spark_errors(src.name, "cannot read as Parquet"):
        rows = frame.select(
            (F.col("_metadata.row_index") + F.lit(1)).alias("source_row"),
            F.lit(None).cast("long").alias("line"),
            *[
                _column_text(n, kinds[n], n in nanos, stored, timezone).alias(internal[n])
                for n in names
            ],
            F.lit(False).alias("malformed"),
            F.lit(None).cast("string").alias("raw_line"),
        )
    return SparkStaged(
        name=src.name,
        kind="parquet",
        sha256=file_sha256(src.local, src.name) if src.local is not None else None,
        columns=resolved,
        internal={k: internal[v] for k, v in resolved.items()},
        all_internal=tuple(internal.values()),
        typed_date=date_col in nanos or is_temporal(kinds[date_col]),
        rows=rows,
    )


def _column_text(
    name: str,
    data_type: T.DataType,
    is_nanos: bool,
    stored: Mapping[str, str | None],
    timezone: str | None,
) -> Column:
    """A Parquet column as text. A zone-aware timestamp shows its wall-clock time in
    ``timezone``, else in its stored zone (UTC for a file whose schema cannot be read here)."""
    column = SPARK.ident(name)
    aware = name not in stored or stored[name] is not None
    zone = timezone or stored.get(name) or "UTC"
    if is_nanos:
        return F.expr(nanos_text(column, zone if aware else None))
    if isinstance(data_type, T.TimestampType):
        # a naive column that Spark reads as an instant holds its wall clock in UTC
        return F.expr(wall_clock_text(zoned_micros(column, zone if aware else "UTC")))
    if isinstance(data_type, T.FloatType | T.DoubleType):
        return F.expr(float_text(column))
    return F.col(column).cast("string")
