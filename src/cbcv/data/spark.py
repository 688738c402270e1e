"""The data layer on Apache Spark: the same validation and the same summary SQL as DuckDB.

DuckDB (embedded, the default) handles ten million customers on one machine. Use Spark when the
log no longer fits one machine's disk or time budget: the rules below are those of
:mod:`cbcv.data.load` and :mod:`cbcv.data.summary`, and the results are identical (tests compare
both engines on CDNOW and on simulated logs). ``pip install 'cbcv[spark]'`` and Java 17+.

Session
    :func:`spark_session` builds (or gets) a SparkSession: ``local[2]`` for a laptop or tests, or a
    cluster master (``spark://host:7077``, ``yarn``, ``k8s://https://host:443``) with Spark
    properties in ``conf`` (``spark.executor.memory`` and so on). It sets the session time zone
    to UTC and reads Parquet nanosecond timestamps (which Spark cannot type) as integers, which
    the readers here turn back into days.

Validation (:func:`load_transactions_spark`)
    CSV and Parquet files, with the rejection reasons, their order, the duplicate rule, the date
    and amount rules and the reconciliation of :func:`cbcv.data.load.load_transactions`. Nothing
    is collected to the driver but counts: the accepted rows and the rejections come back as
    Spark DataFrames or are written to Parquet (``out_dir``). :func:`load_result_to_pandas`
    collects a small result into the pandas :class:`~cbcv.data.load.LoadResult`.

    ``source_row`` is exact: CSV files are read as lines, numbered in file order across Spark's
    splits (a per-split count, no global sort), the header and blank lines excluded; ``line`` is
    the physical line. Parquet rows are numbered by Spark's ``_metadata.row_index``.

    Differences from DuckDB, all on malformed input: a CSV record is one line here (a quoted line
    break splits a record into two malformed ones, where DuckDB reads one record and stops giving
    line numbers); pathological quoting (a quote inside an unquoted field, an unterminated quote)
    may be counted differently, since Spark's CSV parser (PERMISSIVE mode, corrupt-record column)
    is more lenient than DuckDB's; invalid UTF-8 is replaced (U+FFFD) rather than rejected;
    ``detail`` of a malformed row is generic; lines end at CR as well as LF. ``date_format`` is
    translated from strptime to Spark's pattern for the common directives (``%Y %m %d %H %M %S
    %I %p %f %b %B %a %A %j %y %%``; ``%y`` reads 00-99 as 2000-2099). Sums are plain ``sum``,
    not DuckDB's error-compensated ``fsum``: totals may differ in the last bits.

Summaries (:func:`customer_summary_spark`, :func:`calibration_holdout_spark`)
    Run :func:`cbcv.data.summary.summary_sql` in its Spark dialect on a temporary view and return
    a Spark DataFrame with the columns of :data:`cbcv.data.summary.SUMMARY_COLUMNS` (days as
    DATE); :func:`summary_to_pandas` gives the frame DuckDB gives.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

try:
    from pyspark import StorageLevel
    from pyspark.errors import PySparkException
    from pyspark.sql import Column, DataFrame, SparkSession, Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "cbcv.data.spark needs pyspark and Java 17+: pip install 'cbcv[spark]'"
    ) from exc

from cbcv.data._sql import SPARK, first_line, parse_day
from cbcv.data.load import (
    _ISO_DATE,
    _MAX_RAW_LINE,
    REJECTION_COLUMNS,
    REJECTION_REASONS,
    LoadResult,
    Reconciliation,
    ReturnsSummary,
    _column_map,
    _file_kind,
    _guess_delimiter,
    _header_names,
    _parse_delimiter,
    _resolve_columns,
    file_sha256,
    rejections_table,
)
from cbcv.data.summary import (
    HOLDOUT_COLUMNS,
    SUMMARY_COLUMNS,
    _check_columns,
    _required_day,
    summary_frame,
    summary_period,
    summary_sql,
)
from cbcv.data.transactions import TRANSACTION_COLUMNS, daily_sql
from cbcv.errors import ConfigError, DataError

__all__ = [
    "SparkLoadResult",
    "calibration_holdout_spark",
    "customer_summary_spark",
    "load_result_to_pandas",
    "load_transactions_spark",
    "spark_date_pattern",
    "spark_session",
    "summary_to_pandas",
    "to_spark_transactions",
]

#: Settings of every session built by :func:`spark_session` (``conf`` overrides them).
SESSION_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Spark cannot type Parquet TIMESTAMP(NANOS) (pandas' and cbcv.data.simulate's default):
    # read them as int64 nanoseconds, which the readers here turn into days.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
#: Added for ``local`` masters only.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}

_WS = " \t\n\r"
_CORRUPT = "_cbcv_corrupt"
_NUMBER = r"^[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+(_\d+)*)?\z"
_YYYYMMDD = r"^\d{8}\z"
_ISO = "^(?:" + _ISO_DATE + r")\z"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")
_NANOS_PER_DAY = 86_400_000_000_000


# --------------------------------------------------------------------------- session


def spark_session(
    master: str = "local[2]",
    app_name: str = "cbcv",
    conf: Mapping[str, Any] | None = None,
) -> SparkSession:
    """Build a SparkSession, or get the running one, with settings suited to cbcv.

    Parameters
    ----------
    master
        As ``spark-submit --master`` takes it: ``local[2]`` (two threads on this machine; the
        default, for tests and small data), ``local[*]``, ``spark://host:7077`` (a standalone
        cluster), ``yarn``, ``k8s://https://host:443``.
    app_name
        The application's name in the cluster's UI.
    conf
        Spark properties, e.g. ``{"spark.driver.memory": "8g", "spark.executor.memory":
        "16g", "spark.executor.instances": "20"}``; values are passed as text. They override
        :data:`SESSION_DEFAULTS` (UTC session time zone, Parquet nanosecond timestamps as
        integers, Arrow transfers) and, for ``local`` masters, :data:`LOCAL_DEFAULTS` (no UI)
        and ``spark.sql.shuffle.partitions`` = twice the local threads (Spark's 200 is for
        clusters), with the Python workers running this interpreter (``spark.pyspark.python``;
        on a cluster, point it at an environment with cbcv installed on every executor).

    Notes
    -----
    No state is kept here: Spark itself holds the active session. Properties that configure the
    JVM (``spark.driver.memory``, ``spark.driver.extraJavaOptions``, ``spark.jars.packages``)
    take effect only when this call starts it, i.e. for the first session of the Python process;
    when a session is already running, ``getOrCreate`` returns it, applies the SQL properties of
    ``conf`` and ignores ``master``. Stop it with ``session.stop()``.
    """
    if not isinstance(master, str) or not master.strip():
        raise ConfigError(f"spark master must be a non-empty string, got {master!r}")
    settings: dict[str, str] = dict(SESSION_DEFAULTS)
    if master.startswith("local"):
        settings.update(LOCAL_DEFAULTS)
        partitions = str(2 * _local_threads(master))
        settings["spark.sql.shuffle.partitions"] = partitions
        settings["spark.default.parallelism"] = partitions
        # Python workers run this interpreter (and so see cbcv and its dependencies). PySpark
        # takes the workers' interpreter from PYSPARK_PYTHON when it starts the context; an
        # explicit setting (environment or conf) wins. On a cluster, point spark.pyspark.python
        # (or PYSPARK_PYTHON) at an environment with cbcv installed on every executor.
        os.environ.setdefault(
            "PYSPARK_PYTHON", str((conf or {}).get("spark.pyspark.python", sys.executable))
        )
    for key, value in (conf or {}).items():
        settings[str(key)] = _conf_text(value)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _conf_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _local_threads(master: str) -> int:
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if m is None or m.group(1) is None:
        return 1
    if m.group(1) == "*":
        return os.cpu_count() or 1
    return max(1, int(m.group(1)))


@contextlib.contextmanager
def _spark_errors(name: str, what: str) -> Iterator[None]:
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
class _Source:
    name: str
    uri: str  # what Spark reads
    local: Path | None  # the local file, when it is one
    kind: str  # csv | parquet


def _source(source: str | os.PathLike[str], source_name: str | None) -> _Source:
    if not isinstance(source, str | os.PathLike):
        raise DataError(
            f"unsupported source {type(source).__name__}: pass the path or URI of a CSV or "
            "Parquet file"
        )
    text = os.fspath(source)
    if _URI.match(text) and not text.lower().startswith("file:"):
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
    kind = _file_kind(path_for_kind)
    if kind == "duckdb":
        raise DataError(f"{name}: DuckDB database files are read by the DuckDB engine only")
    if kind is None:
        raise DataError(
            f"{name}: unsupported file type {''.join(path_for_kind.suffixes) or '(no suffix)'!r}; "
            "use CSV (.csv .tsv .txt, optionally .gz) or Parquet (.parquet .pq)"
        )
    return _Source(name=name, uri=uri, local=local, kind=kind)


def _nanos_columns(local: Path | None) -> frozenset[str]:
    """Columns of a local Parquet file typed TIMESTAMP(NANOS), which Spark reads as int64."""
    if local is None:
        return frozenset()
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(local)
    except (OSError, pa.ArrowException):
        return frozenset()
    return frozenset(
        f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    )


def _read_parquet(spark: SparkSession, src: _Source) -> tuple[DataFrame, frozenset[str]]:
    with _spark_errors(src.name, "cannot read as Parquet"):
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


def _is_temporal(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.DateType | T.TimestampType | T.TimestampNTZType)


def _nanos_to_day(column: Column) -> Column:
    return F.date_from_unix_date(F.floor(column / F.lit(_NANOS_PER_DAY)).cast("int"))


def _nanos_to_text(column: Column) -> Column:
    micros = F.floor(column / F.lit(1000))
    return F.timestamp_micros(micros).cast("timestamp_ntz").cast("string")


# --------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class _Staged:
    """Rows of a source: ``source_row``, ``line``, raw text columns ``c0..cN``, ``malformed``,
    ``raw_line`` and, for typed sources, ``date_typed`` / ``amount_typed``."""

    name: str
    kind: str
    sha256: str | None
    columns: dict[str, str]  # contract name -> source column
    internal: dict[str, str]  # contract name -> c<i>
    all_internal: tuple[str, ...]
    typed_date: bool
    typed_amount: bool
    rows: DataFrame


def _stage_csv(
    spark: SparkSession, src: _Source, col_map: dict[str, str], delim: str | None
) -> _Staged:
    name = src.name
    with _spark_errors(name, "cannot read file"):
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
    delimiter = delim or _guess_delimiter(header)
    names = _header_names(header, delimiter)
    if len(names) == 1:
        others = [d for d in (",", ";", "\t", "|") if d != delimiter and d in names[0]]
        if others:
            raise DataError(
                f"{name}: the header parses into one column {names[0]!r} with delimiter "
                f"{delimiter!r}; the file looks {others[0]!r}-delimited: pass "
                f"delimiter={others[0]!r}"
            )
    resolved = _resolve_columns(names, col_map, name)
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
        F.substring("value", 1, _MAX_RAW_LINE).alias("raw_line"),
    )
    position = {n: internal[i] for i, n in enumerate(names)}
    return _Staged(
        name=name,
        kind="csv",
        sha256=file_sha256(src.local, name) if src.local is not None else None,
        columns=resolved,
        internal={k: position[v] for k, v in resolved.items()},
        all_internal=tuple(internal),
        typed_date=False,
        typed_amount=False,
        rows=rows,
    )


def _stage_parquet(spark: SparkSession, src: _Source, col_map: dict[str, str]) -> _Staged:
    frame, nanos = _read_parquet(spark, src)
    names = [f.name for f in frame.schema.fields]
    resolved = _resolve_columns(names, col_map, src.name)
    internal = {n: f"c{i}" for i, n in enumerate(names)}
    kinds = {f.name: f.dataType for f in frame.schema.fields}

    def text(column: str) -> Column:
        if column in nanos:
            return _nanos_to_text(F.col(column))
        return F.col(column).cast("string")

    date_col, amount_col = resolved["date"], resolved["amount"]
    typed_date = date_col in nanos or _is_temporal(kinds[date_col])
    typed_amount = isinstance(kinds[amount_col], T.DoubleType)
    extra: list[Column] = []
    if typed_date:
        day = _nanos_to_day(F.col(date_col)) if date_col in nanos else F.col(date_col).cast("date")
        extra.append(day.alias("date_typed"))
    if typed_amount:
        extra.append(F.col(amount_col).alias("amount_typed"))
    with _spark_errors(src.name, "cannot read as Parquet"):
        rows = frame.select(
            (F.col("_metadata.row_index") + F.lit(1)).alias("source_row"),
            F.lit(None).cast("long").alias("line"),
            *[text(n).alias(internal[n]) for n in names],
            F.lit(False).alias("malformed"),
            F.lit(None).cast("string").alias("raw_line"),
            *extra,
        )
    return _Staged(
        name=src.name,
        kind="parquet",
        sha256=file_sha256(src.local, src.name) if src.local is not None else None,
        columns=resolved,
        internal={k: internal[v] for k, v in resolved.items()},
        all_internal=tuple(internal.values()),
        typed_date=typed_date,
        typed_amount=typed_amount,
        rows=rows,
    )


# --------------------------------------------------------------------------- rules


_STRPTIME: dict[str, tuple[str, str] | str] = {
    # directive -> Spark pattern, or (unpadded, padded) for variable-width numbers: unpadded
    # (1 or 2 digits, as strptime reads them) unless it touches another directive (%Y%m%d).
    "Y": "yyyy",
    "y": "yy",
    "m": ("M", "MM"),
    "d": ("d", "dd"),
    "H": ("H", "HH"),
    "I": ("h", "hh"),
    "M": ("m", "mm"),
    "S": ("s", "ss"),
    "j": ("D", "DDD"),
    "f": "SSSSSS",
    "p": "a",
    "b": "MMM",
    "B": "MMMM",
    "a": "EEE",
    "A": "EEEE",
}


def spark_date_pattern(date_format: str) -> str:
    """The Spark datetime pattern for a strptime ``date_format`` (``%d/%m/%Y`` -> ``d'/'M'/'yyyy``).

    ConfigError naming the directive when it has no Spark equivalent here.
    """
    if not isinstance(date_format, str) or not date_format:
        raise ConfigError(f"date_format must be a strptime format, got {date_format!r}")
    tokens: list[tuple[str, str]] = []  # ("d", directive) | ("t", literal text)
    i = 0
    while i < len(date_format):
        ch = date_format[i]
        if ch == "%":
            if i + 1 >= len(date_format):
                raise ConfigError(f"date_format {date_format!r} ends with a lone '%'")
            code = date_format[i + 1]
            if code == "%":
                tokens.append(("t", "%"))
            elif code in _STRPTIME:
                tokens.append(("d", code))
            else:
                raise ConfigError(
                    f"date_format {date_format!r}: directive %{code} is not supported on Spark "
                    f"(supported: {' '.join('%' + c for c in _STRPTIME)} %%)"
                )
            i += 2
        else:
            tokens.append(("t", ch))
            i += 1
    out: list[str] = []
    text = ""
    for k, (kind, value) in enumerate(tokens):
        if kind == "t":
            text += value
            continue
        if text:
            out.append("'" + text.replace("'", "''") + "'")
            text = ""
        spec = _STRPTIME[value]
        if isinstance(spec, tuple):
            adjacent = (k + 1 < len(tokens) and tokens[k + 1][0] == "d") or (
                k > 0 and tokens[k - 1][0] == "d"
            )
            out.append(spec[1] if adjacent else spec[0])
        else:
            out.append(spec)
    if text:
        out.append("'" + text.replace("'", "''") + "'")
    return "".join(out)


def _trimmed(column: str) -> str:
    """SQL: the column without leading/trailing blanks (DuckDB's ``trim(x, ' \\t\\n\\r')``)."""
    return f"btrim({column}, {SPARK.literal(_WS)})"


def _date_rule(column: str, pattern: str | None) -> Column:
    """The calendar day of a text date: ISO date/timestamp (the date as written) or YYYYMMDD;
    with a pattern, only that pattern. NULL when unparseable."""
    v = _trimmed(column)
    if pattern is not None:
        return F.expr(f"CAST(try_to_timestamp({v}, {SPARK.literal(pattern)}) AS DATE)")
    compact = f"concat_ws('-', substr({v}, 1, 4), substr({v}, 5, 2), substr({v}, 7, 2))"
    return F.expr(
        f"CASE WHEN {v} RLIKE {SPARK.literal(_YYYYMMDD)} THEN try_cast({compact} AS DATE) "
        f"WHEN {v} RLIKE {SPARK.literal(_ISO)} THEN try_cast(left({v}, 10) AS DATE) END"
    )


def _amount_rule(column: str) -> Column:
    """A plain number (digits with single ``_`` separators, as DuckDB reads them; optional sign,
    decimal point and exponent), else NULL. Infinities and NaN are rejected later."""
    v = _trimmed(column)
    return F.expr(
        f"CASE WHEN {v} RLIKE {SPARK.literal(_NUMBER)} "
        f"THEN try_cast(replace({v}, '_', '') AS DOUBLE) END"
    )


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class SparkLoadResult:
    """Accepted transactions, the quarantined rows and the reconciliation, on Spark.

    ``transactions``: ``customer_id`` string, ``date`` DATE, ``amount`` double, ``source_row``
    long, in source order. ``rejections``: the columns of :data:`cbcv.data.load.REJECTION_COLUMNS`
    (``line``: the CSV file's line; NULL for Parquet), ordered by source row and reason. With
    ``out_dir`` they are read back from ``transactions_path`` / ``rejections_path``; without it
    they rest on a persisted (memory and disk) intermediate that :meth:`unpersist` releases.
    """

    transactions: DataFrame
    rejections: DataFrame
    reconciliation: Reconciliation
    transactions_path: str | None = None
    rejections_path: str | None = None
    _persisted: DataFrame | None = field(default=None, repr=False, compare=False)

    def unpersist(self) -> None:
        """Release the persisted intermediate (the DataFrames then recompute from the source)."""
        if self._persisted is not None:
            self._persisted.unpersist()


def load_transactions_spark(
    spark: SparkSession,
    source: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    as_of: str | date | datetime | pd.Timestamp | None = None,
    date_format: str | None = None,
    reject_duplicates: bool = True,
    source_name: str | None = None,
    delimiter: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
) -> SparkLoadResult:
    """Read a CSV or Parquet transaction log on Spark, validate each row and reconcile.

    The arguments and rules are those of :func:`cbcv.data.load.load_transactions` (see the
    module notes for the few differences on malformed CSV). ``source`` is a local path or a URI
    Spark reads (``hdfs://``, ``s3a://``, ...; no sha256 is computed for those). ``out_dir``
    writes ``transactions.parquet`` and ``rejections.parquet`` there (Spark folders, replaced
    if present) and returns DataFrames reading them.

    Raises
    ------
    DataError
        Missing or unreadable file, unsupported type, empty file, missing column.
    ConfigError
        ``columns``, ``as_of``, ``date_format`` or ``delimiter`` is invalid.
    """
    col_map = _column_map(columns)
    as_of_day = parse_day(as_of, "as_of")
    delim = _parse_delimiter(delimiter)
    pattern = spark_date_pattern(date_format) if date_format is not None else None
    src = _source(source, source_name)
    if src.kind == "csv":
        staged = _stage_csv(spark, src, col_map, delim)
    else:
        staged = _stage_parquet(spark, src, col_map)
    notes: list[str] = []
    if date_format is not None and staged.typed_date:
        notes.append(
            f"date column {staged.columns['date']!r} is typed as a date: date_format was not needed"
        )
    checked = _check(staged, as_of_day, pattern, reject_duplicates).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    with _spark_errors(staged.name, "cannot validate rows"):
        counts = {r["reason"]: int(r["count"]) for r in checked.groupBy("reason").count().collect()}
    rows_read = sum(counts.values())
    if rows_read == 0:
        checked.unpersist()
        raise DataError(f"{staged.name}: empty file (no data rows)")
    by_reason = {reason: counts.get(reason, 0) for reason in REJECTION_REASONS}
    rows_accepted = counts.get(None, 0)
    rows_rejected = sum(by_reason.values())
    if rows_accepted + rows_rejected != rows_read:  # pragma: no cover - an internal invariant
        raise RuntimeError(
            f"reconciliation does not add up: {rows_accepted} + {rows_rejected} != {rows_read}"
        )
    accepted = checked.filter(F.col("reason").isNull()).select(
        "customer_id", "date", "amount", "source_row"
    )
    with _spark_errors(staged.name, "cannot reconcile"):
        reconciliation = _reconcile(
            spark,
            accepted,
            staged,
            rows_read,
            rows_accepted,
            rows_rejected,
            by_reason,
            as_of_day,
            reject_duplicates,
            tuple(notes),
        )
    transactions = accepted.orderBy("source_row")
    rejections = _rejections(checked, staged, as_of_day)
    if out_dir is None:
        return SparkLoadResult(transactions, rejections, reconciliation, _persisted=checked)
    folder = str(out_dir)
    if not _URI.match(folder):
        Path(folder).expanduser().mkdir(parents=True, exist_ok=True)
        folder = str(Path(folder).expanduser().resolve())
    tx_path, rej_path = f"{folder}/transactions.parquet", f"{folder}/rejections.parquet"
    with _spark_errors(staged.name, f"cannot write to {folder}"):
        transactions.write.mode("overwrite").parquet(tx_path)
        rejections.write.mode("overwrite").parquet(rej_path)
        checked.unpersist()
        transactions = spark.read.parquet(tx_path)
        rejections = spark.read.parquet(rej_path)
    return SparkLoadResult(transactions, rejections, reconciliation, tx_path, rej_path)


def _check(
    staged: _Staged, as_of: date | None, pattern: str | None, reject_duplicates: bool
) -> DataFrame:
    """Every row with ``reason`` (NULL when accepted), as :func:`cbcv.data.load._validate`."""
    rows = staged.rows
    good = rows.filter(~F.col("malformed"))
    id_name, date_name, amount_name = (staged.internal[k] for k in TRANSACTION_COLUMNS)
    id_c, date_c, amount_c = F.col(id_name), F.col(date_name), F.col(amount_name)
    day = F.col("date_typed") if staged.typed_date else _date_rule(date_name, pattern)
    amount = F.col("amount_typed") if staged.typed_amount else _amount_rule(amount_name)
    if reject_duplicates:
        window = Window.partitionBy(*[F.col(c) for c in staged.all_internal]).orderBy("source_row")
        dup_rank, first_row = F.row_number().over(window), F.min("source_row").over(window)
    else:
        dup_rank, first_row = F.lit(1), F.col("source_row")
    fields = good.select(
        "source_row",
        "line",
        id_c.alias("id_raw"),
        date_c.alias("date_raw"),
        amount_c.alias("amount_raw"),
        F.expr(f"nullif({_trimmed(id_name)}, '')").alias("customer_id"),
        day.alias("date"),
        amount.alias("amount"),
        dup_rank.alias("dup_rank"),
        first_row.alias("first_row"),
        F.col("raw_line"),
    )
    after = F.col("date") > F.lit(as_of) if as_of is not None else F.lit(False)
    reason = (
        F.when(F.col("customer_id").isNull(), "missing_customer_id")
        .when(F.col("date").isNull(), "unparseable_date")
        .when(after, "date_after_as_of")
        .when(_bad_amount(), "non_numeric_amount")
        .when(F.col("dup_rank") > 1, "duplicate_row")
    )
    checked = fields.withColumn("reason", reason).drop("dup_rank")
    malformed = rows.filter(F.col("malformed")).select(
        "source_row",
        "line",
        *[
            F.lit(None).cast("string").alias(c)
            for c in ("id_raw", "date_raw", "amount_raw", "customer_id")
        ],
        F.lit(None).cast("date").alias("date"),
        F.lit(None).cast("double").alias("amount"),
        F.lit(None).cast("long").alias("first_row"),
        "raw_line",
        F.lit("malformed_row").alias("reason"),
    )
    return checked.unionByName(malformed)


def _bad_amount() -> Column:
    amount = F.col("amount")
    return amount.isNull() | F.isnan(amount) | (F.abs(amount) == F.lit(float("inf")))


def _rejections(checked: DataFrame, staged: _Staged, as_of: date | None) -> DataFrame:
    id_col, date_col, amount_col = (staged.columns[k] for k in TRANSACTION_COLUMNS)
    is_malformed = F.col("reason").eqNullSafe("malformed_row")
    parts: list[tuple[int, str, str, Column, Column, Column]] = [
        (
            1,
            "missing_customer_id",
            id_col,
            F.col("id_raw"),
            F.lit(None),
            F.col("customer_id").isNull(),
        ),
        (2, "unparseable_date", date_col, F.col("date_raw"), F.lit(None), F.col("date").isNull()),
        (4, "non_numeric_amount", amount_col, F.col("amount_raw"), F.lit(None), _bad_amount()),
        (
            5,
            "duplicate_row",
            "*",
            F.lit(None),
            F.concat(F.lit("same fields as source row "), F.col("first_row").cast("string")),
            F.col("reason").eqNullSafe("duplicate_row"),
        ),
    ]
    if as_of is not None:
        parts.append(
            (
                3,
                "date_after_as_of",
                date_col,
                F.col("date_raw"),
                F.lit(f"after as-of date {as_of.isoformat()}"),
                F.col("date") > F.lit(as_of),
            )
        )
    fields = checked.filter(~is_malformed)
    frames = [
        fields.filter(where).select(
            "source_row",
            "line",
            F.lit(column).alias("column"),
            raw.cast("string").alias("raw_value"),
            F.lit(reason).alias("reason"),
            F.col("reason").eqNullSafe(reason).alias("primary"),
            detail.cast("string").alias("detail"),
            F.lit(order).alias("_ord"),
        )
        for order, reason, column, raw, detail, where in parts
    ]
    frames.append(
        checked.filter(is_malformed).select(
            "source_row",
            "line",
            F.lit("*").alias("column"),
            F.col("raw_line").alias("raw_value"),
            F.lit("malformed_row").alias("reason"),
            F.lit(True).alias("primary"),
            F.lit("cannot split into the header's columns (Spark CSV parser)").alias("detail"),
            F.lit(0).alias("_ord"),
        )
    )
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union.orderBy("source_row", "_ord").select(*REJECTION_COLUMNS)


def _reconcile(
    spark: SparkSession,
    accepted: DataFrame,
    staged: _Staged,
    rows_read: int,
    rows_accepted: int,
    rows_rejected: int,
    by_reason: dict[str, int],
    as_of: date | None,
    reject_duplicates: bool,
    notes: tuple[str, ...],
) -> Reconciliation:
    view = f"cbcv_accepted_{uuid.uuid4().hex}"
    accepted.createOrReplaceTempView(view)
    try:
        total = SPARK.exact_sum
        row = spark.sql(
            f"""
            WITH d AS ({daily_sql(view)}),
            r AS (SELECT DISTINCT customer_id, CAST(date AS DATE) AS date FROM {view}
                  WHERE amount < 0)
            SELECT count(DISTINCT customer_id) AS n_customers, min(date) AS first_day,
                   max(date) AS last_day, coalesce({total}(amount), 0) AS total,
                   count(*) FILTER (WHERE amount < 0) AS return_rows,
                   coalesce(-{total}(amount) FILTER (WHERE amount < 0), 0) AS returned,
                   (SELECT count(*) FROM (SELECT DISTINCT customer_id, CAST(date AS DATE)
                                          FROM {view})) AS all_days,
                   (SELECT count(*) FROM d) AS customer_days,
                   (SELECT count(*) FROM d JOIN r USING (customer_id, date)) AS netted
            FROM {view}
            """
        ).collect()[0]
    finally:
        spark.catalog.dropTempView(view)
    returns = ReturnsSummary(
        rows=int(row["return_rows"]),
        amount=float(row["returned"]),
        customer_days_netted=int(row["netted"]),
        return_only_days=int(row["all_days"]) - int(row["customer_days"]),
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
        n_customers=int(row["n_customers"]),
        customer_days=int(row["customer_days"]),
        first_date=row["first_day"],
        last_date=row["last_day"],
        total_amount=float(row["total"]),
        as_of=as_of,
        columns=dict(staged.columns),
        duplicate_check=reject_duplicates,
        notes=notes,
    )


def load_result_to_pandas(result: SparkLoadResult) -> LoadResult:
    """Collect a (small) Spark load result into the pandas :class:`~cbcv.data.load.LoadResult`
    that :func:`cbcv.data.load.load_transactions` returns: same columns, dtypes and order."""
    tx = result.transactions.toPandas().sort_values("source_row", kind="stable")
    transactions = pd.DataFrame(
        {
            "customer_id": tx["customer_id"].astype(str),
            "date": pd.to_datetime(tx["date"]).astype("datetime64[ns]"),
            "amount": tx["amount"].astype("float64"),
            "source_row": tx["source_row"].astype("int64"),
        }
    ).reset_index(drop=True)
    rej = result.rejections.toPandas()
    order = {reason: i for i, reason in enumerate(REJECTION_REASONS)}
    rej = rej.assign(_ord=rej["reason"].map(order)).sort_values(
        ["source_row", "_ord"], na_position="last", kind="stable"
    )
    rejections = rejections_table(rej)
    return LoadResult(
        transactions=transactions, rejections=rejections, reconciliation=result.reconciliation
    )


# --------------------------------------------------------------------------- summaries


SparkTransactions = DataFrame | str | os.PathLike[str]


def to_spark_transactions(spark: SparkSession, transactions: pd.DataFrame) -> DataFrame:
    """A pandas transaction log (``customer_id``, ``date``, ``amount``) as a Spark DataFrame with
    ``date`` as DATE (no time-zone conversion). For data that fits the driver's memory."""
    _check_columns([str(c) for c in transactions.columns], "transactions DataFrame")
    frame = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"]
            .astype(object)
            .where(transactions["customer_id"].notna(), None)
            .map(lambda v: None if v is None else str(v)),
            "date": pd.to_datetime(transactions["date"]).dt.date,
            "amount": pd.to_numeric(transactions["amount"], errors="coerce").astype("float64"),
        }
    )
    return spark.createDataFrame(frame, "customer_id string, date date, amount double")


def _normalised(spark: SparkSession, transactions: SparkTransactions) -> tuple[DataFrame, str]:
    """``customer_id`` string, ``date`` DATE, ``amount`` double; a display name."""
    nanos: frozenset[str] = frozenset()
    if isinstance(transactions, DataFrame):
        name = "transactions DataFrame"
        frame = transactions
    elif isinstance(transactions, str | os.PathLike):
        src = _source(transactions, None)
        name = src.name
        if src.kind != "parquet":
            raise DataError(
                f"{name}: summaries read validated transactions from Parquet; validate a CSV "
                "with load_transactions_spark(..., out_dir=...) first"
            )
        frame, nanos = _read_parquet(spark, src)
    else:
        raise DataError(
            "transactions must be a Spark DataFrame or a Parquet path, got "
            f"{type(transactions).__name__}"
        )
    _check_columns(list(frame.columns), name)
    kinds = {f.name: f.dataType for f in frame.schema.fields}
    if "date" in nanos:
        day = _nanos_to_day(F.col("date"))
    elif _is_temporal(kinds["date"]):
        day = F.col("date").cast("date")
    else:
        day = F.expr(f"try_cast({SPARK.ident('date')} AS DATE)")
    tx = frame.select(
        F.col("customer_id").cast("string").alias("customer_id"),
        day.alias("date"),
        F.expr(f"try_cast({SPARK.ident('amount')} AS DOUBLE)").alias("amount"),
    )
    with _spark_errors(name, "cannot read transactions"):
        missing = tx.filter(
            F.col("customer_id").isNull() | F.col("date").isNull() | F.col("amount").isNull()
        ).count()
    if missing:
        raise DataError(
            f"{name}: {missing} row(s) with a missing customer_id, date or amount; load the "
            "data with cbcv.data.spark.load_transactions_spark first"
        )
    return tx, name


def _summarise(
    spark: SparkSession,
    transactions: SparkTransactions,
    end: date,
    stop: date | None,
    time_unit: str,
    cohort_period: str,
    start: date | None,
) -> DataFrame:
    view = f"cbcv_tx_{uuid.uuid4().hex}"
    sql = summary_sql(end, stop, time_unit, cohort_period, start, dialect="spark", source=view)
    tx, name = _normalised(spark, transactions)
    tx.createOrReplaceTempView(view)
    try:
        with _spark_errors(name, "cannot summarise"):
            out = spark.sql(sql)
    finally:
        spark.catalog.dropTempView(view)  # the DataFrame keeps the view's plan
    columns = [
        F.col("customer_id").cast("string").alias("customer_id"),
        F.col("cohort").cast("string").alias("cohort"),
        F.col("first_purchase_ts").cast("date").alias("first_purchase"),
        F.col("last_purchase_ts").cast("date").alias("last_purchase"),
        F.col("x").cast("long").alias("x"),
        F.col("t_x").cast("double").alias("t_x"),
        F.col("T").cast("double").alias("T"),
        F.col("n_transactions").cast("long").alias("n_transactions"),
        *[F.col(c).cast("double").alias(c) for c in SUMMARY_COLUMNS[8:]],
    ]
    if stop is not None:
        columns += [
            F.col("x_holdout").cast("long").alias("x_holdout"),
            F.col("spend_holdout").cast("double").alias("spend_holdout"),
            F.col("T_holdout").cast("double").alias("T_holdout"),
        ]
    return out.select(*columns)


def customer_summary_spark(
    spark: SparkSession,
    transactions: SparkTransactions,
    *,
    calibration_end: Any,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
) -> DataFrame:
    """:func:`cbcv.data.summary.customer_summary` on Spark, as a (lazy) Spark DataFrame.

    ``transactions`` is a Spark DataFrame or the path/URI of a Parquet file of validated
    transactions (``customer_id``, ``date``, ``amount``; other columns ignored). The columns are
    :data:`~cbcv.data.summary.SUMMARY_COLUMNS` with ``first_purchase`` / ``last_purchase`` as
    DATE, ``x`` / ``n_transactions`` long and the rest double, sorted by ``customer_id``. The
    input is checked for missing values (one pass); an empty result is reported by
    :func:`summary_to_pandas`.
    """
    end, _, start = summary_period(calibration_end, None, observation_start)
    return _summarise(spark, transactions, end, None, time_unit, cohort_period, start)


def calibration_holdout_spark(
    spark: SparkSession,
    transactions: SparkTransactions,
    *,
    calibration_end: Any,
    holdout_end: Any,
    time_unit: str = "week",
    cohort_period: str = "quarter",
    observation_start: Any = None,
) -> DataFrame:
    """:func:`customer_summary_spark` plus ``x_holdout`` (long), ``spend_holdout`` and
    ``T_holdout`` (double), as :func:`cbcv.data.summary.calibration_holdout`."""
    end, stop, start = summary_period(
        calibration_end, _required_day(holdout_end, "holdout_end"), observation_start
    )
    return _summarise(spark, transactions, end, stop, time_unit, cohort_period, start)


def summary_to_pandas(summary: DataFrame, *, name: str = "Spark summary") -> pd.DataFrame:
    """Collect a Spark summary into the frame DuckDB's summaries give: the same columns and
    dtypes, sorted by ``customer_id``. DataError when it has no row. For data that fits the
    driver (CDNOW-sized); write large summaries with ``summary.write.parquet(...)`` instead."""
    out = summary.toPandas()
    holdout = all(c in out.columns for c in HOLDOUT_COLUMNS)
    return summary_frame(out, name, None, holdout=holdout)
