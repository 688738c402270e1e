"""A customer covariates file: one row per customer, one column per time-invariant covariate.

:func:`read_covariates` reads a CSV or Parquet file (or a DataFrame) with ``customer_id`` and
the covariate columns, checked in DuckDB: every row has an id, no id appears twice, no used
column is empty; each failure is one line naming the file, the row and the column. A column
whose every value parses as a number is numeric, any other is categorical (text).
:func:`attach_covariates` joins them to the calibration summary: every calibration customer
needs a row (one line naming how many lack one and the first), rows of other customers
(prospects, customers acquired after the calibration end) are counted, not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from cbcv.core.errors import DataError
from cbcv.data._sql import first_line, ident, literal, scratch_connection
from cbcv.data.load import stage_table
from cbcv.data.staged import ROW, resolve_columns


@dataclass(frozen=True)
class CovariateTable:
    """The covariates by customer (``customer_id`` as text, then the used columns, numeric ones
    as float) and where they came from."""

    frame: pd.DataFrame
    source: str
    sha256: str | None
    rows_read: int

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.frame.columns if c != "customer_id")


@dataclass(frozen=True)
class AttachedCovariates:
    """A summary with its customers' covariates, and how the covariate rows were used."""

    summary: pd.DataFrame
    rows_used: int
    rows_not_in_summary: int


def read_covariates(
    source: Any, columns: Sequence[str] | None = None, *, id_column: str = "customer_id",
    source_name: str | None = None, as_text: bool = False,
) -> CovariateTable:
    """The covariates file ``source`` (CSV, Parquet or a DataFrame) with the ``columns`` to use
    (default: every column but the id), checked as the module docstring says; ``as_text`` keeps
    every column as text (labels such as owners, even when they look like numbers)."""
    with scratch_connection() as con:
        staged = stage_table(con, source, {"customer_id": id_column}, source_name)
        name = staged.name
        staged.refuse_malformed()
        found = [c for c in staged.all_columns if c != staged.columns["customer_id"]]
        use = list(columns) if columns else found
        if not use:
            raise DataError(f"{name}: no covariate columns beside {staged.columns['customer_id']!r}")
        cols = resolve_columns(list(staged.all_columns), {c: c for c in use}, name)
        try:
            return _checked(con, name, staged.sha256, staged.columns["customer_id"], cols, as_text)
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot read the covariates ({first_line(exc)})") from exc


def _checked(con: duckdb.DuckDBPyConnection, name: str, sha256: str | None, id_col: str,
             cols: dict[str, str], as_text: bool) -> CovariateTable:
    cid = f"nullif(trim({ident(id_col)}), '')"
    first = con.execute(f"SELECT min({ROW}) FROM rows WHERE {cid} IS NULL").fetchone()
    if first and first[0] is not None:
        raise DataError(f"{name}: row {first[0]} column {id_col!r}: missing customer id")
    dup = con.execute(
        f"SELECT {cid} AS id, min({ROW}) AS first_row, max({ROW}) AS last_row FROM rows GROUP BY 1 "
        "HAVING count(*) > 1 ORDER BY last_row LIMIT 1"
    ).fetchone()
    if dup:
        raise DataError(f"{name}: row {dup[2]} column {id_col!r}: customer {dup[0]!r} already has a row "
                        f"(row {dup[1]}); give one row per customer")
    select = [f"{cid} AS customer_id"]
    for key, col in cols.items():
        value = f"nullif(trim({ident(col)}), '')"
        missing = con.execute(f"SELECT min({ROW}) FROM rows WHERE {value} IS NULL").fetchone()
        if missing and missing[0] is not None:
            raise DataError(f"{name}: row {missing[0]} column {col!r}: missing value (give every customer a "
                            "value, or a level such as 'unknown')")
        numeric = not as_text and con.execute(
            f"SELECT bool_and(try_cast({value} AS DOUBLE) IS NOT NULL) FROM rows").fetchone()[0]  # type: ignore[index]
        cast = f"CAST({value} AS DOUBLE)" if numeric else value
        select.append(f"{cast} AS {ident(key)}")
    frame = con.execute(f"SELECT {', '.join(select)} FROM rows ORDER BY {ROW}").df()
    return CovariateTable(frame, name, sha256, len(frame))


def attach_covariates(summary: pd.DataFrame, table: CovariateTable) -> AttachedCovariates:
    """``summary`` (with ``customer_id``) with each customer's covariates beside it, in its order."""
    if "customer_id" not in summary.columns:
        raise DataError(f"{table.source}: the summary has no customer_id to join the covariates on")
    clash = [c for c in table.columns if c in summary.columns]
    if clash:
        raise DataError(f"{table.source}: covariate column {clash[0]!r} is also a summary column; rename it")
    ids = summary["customer_id"].astype(str)
    joined = summary.assign(customer_id=ids).merge(table.frame, on="customer_id", how="left", validate="m:1",
                                                   indicator=True)
    lacking = joined["_merge"].to_numpy() == "left_only"
    if lacking.any():
        raise DataError(f"{table.source}: {int(lacking.sum()):,} of {len(summary):,} calibration customers have no "
                        f"covariate row (the first: customer_id {ids[lacking].iloc[0]!r}); give every customer a row")
    joined = joined.drop(columns="_merge")
    joined.index = summary.index
    joined["customer_id"] = summary["customer_id"].to_numpy()
    used = int(ids.isin(table.frame["customer_id"]).sum())
    return AttachedCovariates(joined, used, table.rows_read - used)


def write_with_covariates(summary_file: str | Path, table: CovariateTable, out: str | Path, *,
                          memory_limit: str | None = None, threads: int | None = None) -> Path:
    """The summary file (Parquet, one row per customer) with each customer's covariates beside
    it, written to ``out`` in DuckDB (out of core past ``memory_limit``); every customer of the
    summary needs a covariate row (:func:`attach_covariates` says the same in memory)."""
    clash = [c for c in table.columns if c in pq.read_schema(summary_file).names]
    if clash:
        raise DataError(f"{table.source}: covariate column {clash[0]!r} is also a summary column; rename it")
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        con.register("covariates", table.frame)
        src = f"read_parquet({literal(str(summary_file))})"
        n, lacking, first = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE c.customer_id IS NULL), "
            f"min(CAST(s.customer_id AS VARCHAR)) FILTER (WHERE c.customer_id IS NULL) "
            f"FROM {src} s LEFT JOIN covariates c ON CAST(s.customer_id AS VARCHAR) = c.customer_id"
        ).fetchone()  # type: ignore[misc]
        if lacking:
            raise DataError(f"{table.source}: {lacking:,} of {n:,} customers have no covariate row (the first: "
                            f"customer_id {first!r}); give every customer a row")
        cols = ", ".join(f"c.{ident(c)}" for c in table.columns)
        con.execute(
            f"COPY (SELECT s.*, {cols} FROM {src} s JOIN covariates c ON CAST(s.customer_id AS VARCHAR) = "
            f"c.customer_id ORDER BY s.customer_id) TO {literal(str(out))} (FORMAT parquet, COMPRESSION zstd)"
        )
    return Path(out)
