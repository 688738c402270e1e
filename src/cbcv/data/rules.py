"""The row rules of a transaction log, written once as SQL text for DuckDB and Spark.

Each rule turns one raw text field into a clean value, or NULL when the field fails; the loaders
(:mod:`cbcv.data.load` on DuckDB, :mod:`cbcv.data.spark`) turn a NULL into the rejection reason
named beside it. The settings that users may change travel in :class:`RowRules`.

Customer ids (``missing_customer_id``)
    Leading and trailing blanks are removed, Unicode ones included (no-break space U+00A0,
    ideographic space U+3000, zero-width space U+200B, byte-order mark U+FEFF and the other
    Unicode space separators). An id that is then empty, that equals one of the null tokens
    (case-insensitive; :data:`NULL_TOKENS` by default: ``NULL``, ``None``, ``NaN``, ``N/A``,
    ``NA``, ``#N/A``, ``nil``, ``\\N``, ``-``) or that contains a control character (a NUL byte,
    a tab, ...) is missing. Integral numbers in a typed id column (a Parquet or DataFrame float
    column) keep their integer text: ``7.0`` is customer ``7``; a NaN id is missing.

Dates (``unparseable_date``, ``date_out_of_range``, ``date_before_earliest``)
    Text dates: ISO dates or timestamps (the calendar date as written) or ``YYYYMMDD``, or the
    configured ``date_format``. Time-zone-aware timestamps (Parquet ``TIMESTAMP`` with a zone,
    pandas ``datetime64[ns, tz]``) take their calendar date in their own zone, or in the
    configured ``timezone`` when one is set, never in the machine's; a zone-aware timestamp with
    no zone of its own is read in UTC. Dates outside 1677-09-22 .. 2262-04-11 (the range of
    nanosecond timestamps) are ``date_out_of_range``; dates before the earliest date
    (:data:`EARLIEST_DATE`, 1970-01-01, by default) are ``date_before_earliest``: sentinels such
    as 1899-12-30 (a spreadsheet's day zero) or 1900-01-01 are not purchases.

Amounts (``non_numeric_amount``, ``amount_out_of_range``)
    A plain decimal number: optional sign, digits with an optional decimal point, optional
    exponent (``12.50``, ``-3``, ``1e3``). Thousands separators (``1,234.50``, ``1_234.50``,
    ``1 234``), currency signs, decimal commas, NaN and infinities are ``non_numeric_amount``.
    An amount whose magnitude exceeds :data:`MAX_ABS_AMOUNT` (10^12) is ``amount_out_of_range``,
    so that sums over any realistic number of rows stay finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from cbcv.core.errors import ConfigError
from cbcv.data._sql import DIALECTS

#: Changes whenever a rule changes, so that caches of validated logs are not reused across it.
RULES_VERSION = 2
#: Case-insensitive id values that mean "no id".
NULL_TOKENS: tuple[str, ...] = ("null", "none", "nan", "n/a", "na", "#n/a", "nil", "\\n", "-")
#: Dates before this day are rejected as ``date_before_earliest`` unless configured otherwise.
EARLIEST_DATE = date(1970, 1, 1)
#: The days a nanosecond timestamp can hold (pandas' range); others are ``date_out_of_range``.
FIRST_REPRESENTABLE_DAY = date(1677, 9, 22)
LAST_REPRESENTABLE_DAY = date(2262, 4, 11)
#: Largest accepted magnitude of one amount.
MAX_ABS_AMOUNT = 1e12

#: Unicode blanks stripped from ids besides ASCII white space (code points).
UNICODE_BLANKS: tuple[int, ...] = (
    0x00A0, 0x1680, *range(0x2000, 0x200C), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF,
)
#: A plain decimal number, as a regular expression both engines accept.
NUMBER_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: Control characters (C0 and DEL) that no id may contain.
CONTROL_PATTERN = r"[\x00-\x1f\x7f]"
#: An ISO date or timestamp, as written (its calendar date is its first ten characters).
ISO_DATE = (
    r"\d{4}-\d{2}-\d{2}"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?( ?(Z|[+-]\d{2}(:?\d{2})?))?)?"
)
#: ASCII blanks trimmed around a text date.
DATE_BLANKS = " \t\n\r"
#: The detail written beside a rejection reason in the rejections table (the reasons whose
#: detail depends on the settings are added by :func:`rejection_details`).
REJECTION_DETAILS: dict[str, str] = {
    "date_out_of_range": "outside 1677-09-22 .. 2262-04-11",
    "amount_out_of_range": "magnitude above 1e12",
}


@dataclass(frozen=True)
class RowRules:
    """The configurable part of the row rules (see the module notes)."""

    null_tokens: tuple[str, ...] = NULL_TOKENS
    earliest_date: date = EARLIEST_DATE
    timezone: str | None = None
    zero_amount_purchases: bool = False

    @classmethod
    def of(
        cls,
        null_tokens: Sequence[str] | None = None,
        earliest_date: date | None = None,
        timezone: str | None = None,
        zero_amount_purchases: bool = False,
    ) -> RowRules:
        """Rules with the given settings; None keeps a default."""
        tokens = NULL_TOKENS if null_tokens is None else tuple(str(t) for t in null_tokens)
        return cls(
            null_tokens=tuple(t.strip().lower() for t in tokens),
            earliest_date=EARLIEST_DATE if earliest_date is None else earliest_date,
            timezone=timezone,
            zero_amount_purchases=zero_amount_purchases,
        )


def _quote(value: str, engine: str = "duckdb") -> str:
    """A string literal for ``engine`` (Spark SQL unescapes backslashes, DuckDB does not)."""
    return DIALECTS[engine].literal(value)


def _blank_class(engine: str) -> str:
    """A regex character class of ASCII white space (RE2's ``\\s``, spelt out so that Java's
    regex, whose ``\\s`` adds U+000B, matches the same) and the Unicode blanks, for ``engine``."""
    if engine == "spark":  # Java regex
        extra = "".join(f"\\u{cp:04X}" for cp in UNICODE_BLANKS)
    else:  # RE2
        extra = "".join(f"\\x{{{cp:04X}}}" for cp in UNICODE_BLANKS)
    return f"[ \\t\\n\\f\\r{extra}]"


def id_sql(raw: str, rules: RowRules, engine: str = "duckdb") -> str:
    """SQL: the customer id of the text expression ``raw``, NULL when it is missing."""
    blank = _blank_class(engine)
    strip = _quote(f"^{blank}+|{blank}+$", engine)
    if engine == "spark":
        trimmed = f"regexp_replace({raw}, {strip}, '')"
        has_control = f"{trimmed} RLIKE {_quote(CONTROL_PATTERN, engine)}"  # Java reads \\xhh
    else:
        trimmed = f"regexp_replace({raw}, {strip}, '', 'g')"
        has_control = f"regexp_matches({trimmed}, {_quote(CONTROL_PATTERN)})"
    tokens = ", ".join(_quote(t, engine) for t in ("", *rules.null_tokens))
    return (
        f"CASE WHEN {raw} IS NULL OR lower({trimmed}) IN ({tokens}) OR {has_control} "
        f"THEN NULL ELSE {trimmed} END"
    )


def amount_sql(raw: str, engine: str = "duckdb") -> str:
    """SQL: the amount of the text expression ``raw`` as a double, NULL unless a plain number."""
    v = f"trim({raw})"
    if engine == "spark":
        return (
            f"CASE WHEN {v} RLIKE {_quote(NUMBER_PATTERN, engine)} "
            f"THEN try_cast({v} AS DOUBLE) END"
        )
    return (
        f"CASE WHEN regexp_full_match({v}, {_quote(NUMBER_PATTERN[1:-1])}) "
        f"THEN try_cast({v} AS DOUBLE) END"
    )


def _full_match(value: str, pattern: str, engine: str) -> str:
    """SQL: ``value`` matches the regular expression ``pattern`` as a whole (on Spark anchored
    with ``\\z``: Java's ``$`` also matches before a final line terminator)."""
    if engine == "spark":
        anchored = "^(?:" + pattern + r")\z"
        return f"{value} RLIKE {_quote(anchored, engine)}"
    return f"regexp_full_match({value}, {_quote(pattern)})"


def date_sql(raw: str, date_format: str | None = None, engine: str = "duckdb") -> str:
    """SQL: the calendar day of the text expression ``raw`` (blanks around it trimmed): an ISO
    date or timestamp (:data:`ISO_DATE`; the date as written, whatever the time or offset) or
    ``YYYYMMDD``; with ``date_format`` (a strptime format, on Spark its pattern by
    :func:`spark_date_pattern`) only that format. NULL when unparseable or not a real day."""
    blanks = _quote(DATE_BLANKS, engine)
    value = f"btrim({raw}, {blanks})" if engine == "spark" else f"trim({raw}, {blanks})"
    if date_format is not None:
        if engine == "spark":
            pattern = _quote(spark_date_pattern(date_format), engine)
            return f"CAST(try_to_timestamp({value}, {pattern}) AS DATE)"
        return f"CAST(try_strptime({value}, {_quote(date_format)}) AS DATE)"
    compact = f"concat_ws('-', substr({value}, 1, 4), substr({value}, 5, 2), substr({value}, 7, 2))"
    return (
        f"CASE WHEN {_full_match(value, '[0-9]{8}', engine)} THEN try_cast({compact} AS DATE) "
        f"WHEN {_full_match(value, ISO_DATE, engine)} THEN try_cast(left({value}, 10) AS DATE) END"
    )


def day_checks(day: str, rules: RowRules, as_of: date | None) -> list[tuple[str, str]]:
    """(reason, SQL condition) pairs for a parsed day, in the order they are checked."""
    def d(value: date) -> str:
        return f"DATE {_quote(value.isoformat())}"

    out = [
        (
            "date_out_of_range",
            f"({day} < {d(FIRST_REPRESENTABLE_DAY)} OR {day} > {d(LAST_REPRESENTABLE_DAY)})",
        ),
        ("date_before_earliest", f"{day} < {d(rules.earliest_date)}"),
    ]
    if as_of is not None:
        out.append(("date_after_as_of", f"{day} > {d(as_of)}"))
    return out


def amount_checks(amount: str, engine: str = "duckdb") -> list[tuple[str, str]]:
    """(reason, SQL condition) pairs for a parsed amount, in the order they are checked."""
    if engine == "spark":  # no isfinite in Spark SQL
        finite = f"NOT (isnan({amount}) OR abs({amount}) = double('inf'))"
    else:
        finite = f"isfinite({amount})"
    return [
        ("non_numeric_amount", f"({amount} IS NULL OR NOT {finite})"),
        ("amount_out_of_range", f"abs({amount}) > {MAX_ABS_AMOUNT!r}"),
    ]


def integral_text_sql(column: str, engine: str = "duckdb") -> str:
    """SQL: a floating-point column as text, integral values without a fraction (``7.0`` ->
    ``7``) and NaN as NULL (infinities as DuckDB writes them, ``inf`` / ``-inf``)."""
    if engine == "spark":
        return (
            f"CASE WHEN isnan({column}) THEN NULL "
            f"WHEN abs({column}) = double('inf') THEN IF({column} > 0, 'inf', '-inf') "
            f"WHEN {column} = floor({column}) AND abs({column}) < 9007199254740992 "
            f"THEN CAST(CAST({column} AS BIGINT) AS STRING) ELSE CAST({column} AS STRING) END"
        )
    return (
        f"CASE WHEN isnan({column}) THEN NULL "
        f"WHEN {column} = trunc({column}) AND abs({column}) < 9007199254740992 "
        f"THEN CAST(try_cast({column} AS BIGINT) AS VARCHAR) ELSE CAST({column} AS VARCHAR) END"
    )


def row_checks(
    rules: RowRules, as_of: date | None, engine: str = "duckdb"
) -> list[tuple[str, str, str]]:
    """(reason, field, SQL condition) of every row check, in the order they are checked, over
    the parsed columns ``customer_id``, ``date``, ``amount`` and the duplicate rank ``dup_rank``;
    ``field`` is the contract column whose raw value a rejection shows (``*`` for the row)."""
    return [
        ("missing_customer_id", "customer_id", "customer_id IS NULL"),
        ("unparseable_date", "date", "date IS NULL"),
        *((reason, "date", cond) for reason, cond in day_checks("date", rules, as_of)),
        *((reason, "amount", cond) for reason, cond in amount_checks("amount", engine)),
        ("duplicate_row", "*", "dup_rank > 1"),
    ]


def rejection_details(rules: RowRules, as_of: date | None) -> dict[str, str]:
    """The ``detail`` of each rejection reason that has one, under ``rules`` and ``as_of``."""
    details = dict(REJECTION_DETAILS)
    details["date_before_earliest"] = f"before {rules.earliest_date.isoformat()}, the earliest date"
    if as_of is not None:
        details["date_after_as_of"] = f"after as-of date {as_of.isoformat()}"
    return details


# --------------------------------------------------------------------------- strptime on Spark


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


def _strptime_tokens(date_format: str) -> list[tuple[str, str]]:
    """("d", directive) | ("t", literal text) tokens of a strptime format."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(date_format):
        ch = date_format[i]
        if ch != "%":
            tokens.append(("t", ch))
            i += 1
            continue
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
    return tokens


def spark_date_pattern(date_format: str) -> str:
    """The Spark datetime pattern for a strptime ``date_format`` (``%d/%m/%Y`` -> ``d'/'M'/'yyyy``).

    ConfigError naming the directive when it has no Spark equivalent here.
    """
    if not isinstance(date_format, str) or not date_format:
        raise ConfigError(f"date_format must be a strptime format, got {date_format!r}")
    tokens = _strptime_tokens(date_format)
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
