"""Every customer's value, every period: the history behind ``cbcv score CONFIG --as-of DATE``.

:func:`score_as_of` scores every customer of the company on its data up to the as-of date with
the models fitted on those data (:func:`cbcv.pipeline.dated_fits.fits_at`) and writes one
partition of the history, a folder of Parquet partitions (hive layout, one per as-of date)::

    <history>/as_of=2025-10-31/part-0.parquet
    <history>/as_of=2025-10-31/_partition.json

Each row: ``customer_id``, the posterior mean and interval of the residual CLV (``clv_mean``,
``clv_low``, ``clv_high``), of P(alive) and of the expected transactions in the next
``horizon`` time units (a year by default), and the partition's ``model_version`` and
``config_hash``. ``_partition.json`` is written last and names what the partition holds
(customers, the model version, the config hash, the interval, the horizon, the seconds taken); a
partition without it is incomplete, and :func:`read_history` refuses it.

Idempotent per date: scoring a date again builds the partition beside the old one and swaps it
in, so the history never holds two partitions of one date nor a half-written one; with the same
config the fits are reused and the rows are identical. The scoring runs out of core (DuckDB and
the chunked engine: :mod:`cbcv.clv.scoring`), and the partition is copied from the engine's
Parquet file by DuckDB, so no step holds a row per customer in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from cbcv.config import LoadedConfig
from cbcv.core.cache import atomic_write_json
from cbcv.core.errors import DataError
from cbcv.core.units import periods_per_year
from cbcv.data._sql import literal, scratch_connection
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.dated_fits import config_hash, fits_at
from cbcv.pipeline.valuation import clv_inputs

#: Columns of a history partition (besides the partition key ``as_of``).
HISTORY_COLUMNS = (
    "customer_id", "clv_mean", "clv_low", "clv_high", "p_alive_mean", "p_alive_low", "p_alive_high",
    "expected_mean", "expected_low", "expected_high", "model_version", "config_hash",
)
#: The file that marks a partition complete.
DONE = "_partition.json"
#: Posterior draws scored per date (the fits' draws when they have fewer).
HISTORY_DRAWS = 1000


@dataclass(frozen=True)
class Partition:
    """One as-of date of the history: where it is and what ``_partition.json`` says."""

    path: Path
    meta: dict[str, Any]

    @property
    def customers(self) -> int:
        return int(self.meta["customers"])


def history_folder(result: CompanyData) -> Path:
    """The default history folder: ``history/`` in the company's work folder (derived,
    customer-level data: git-ignored, never in a report folder)."""
    return result.accepted.parent / "history"


def partition_path(history: str | Path, day: dt.date) -> Path:
    return Path(history) / f"as_of={day.isoformat()}"


def score_as_of(
    loaded: LoadedConfig, result: CompanyData, day: dt.date, history: str | Path, *,
    horizon: float | None = None, interval: float = 0.9, progress: Any = None,
) -> Partition:
    """Score every customer at ``day`` and write (or replace) its partition of ``history``."""
    start = time.perf_counter()
    unit = loaded.config.time_unit
    horizon = float(periods_per_year(unit)) if horizon is None else float(horizon)
    folder = Path(history)
    fits = fits_at(loaded, result, day, folder / "_models", progress)
    n = min(fits.n_draws, HISTORY_DRAWS)
    margin, rate, note = clv_inputs(loaded, n)
    if progress:
        progress(f"scoring every customer at {day} over {n} draws ...")
    scored = fits.data.score(fits.freq, fits.spend, margin=margin, rate=rate, n=n, horizon=horizon)
    cfg_hash = config_hash(loaded)
    target = partition_path(folder, day)
    staging = folder / f".{target.name}.{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        cols = ", ".join(f'"{c}"' for c in HISTORY_COLUMNS[1:-2])
        with scratch_connection(memory_limit=loaded.config.engine.memory_limit,
                                threads=loaded.config.engine.threads) as con:
            con.execute(
                f"COPY (SELECT customer_id, {cols}, {literal(fits.version)} AS model_version, "
                f"{literal(cfg_hash)} AS config_hash FROM read_parquet({literal(str(scored.path))}) "
                f"ORDER BY customer_id) TO {literal(str(staging / 'part-0.parquet'))} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
        meta = {
            "as_of": day.isoformat(), "customers": scored.n_customers, "model_version": fits.version,
            "config_hash": cfg_hash, "config": loaded.path.name, "purchase_model": fits.freq.name,
            "spend_model": fits.spend.name, "covariates": list(fits.data.covariate_table.columns)
            if fits.data.covariates is not None else [], "n_draws": n, "interval": interval,
            "horizon": horizon, "time_unit": unit, "fits": fits.source, "inputs_note": note,
            "input_sha256": result.reconciliation.sha256, "seconds": round(time.perf_counter() - start, 3),
        }
        atomic_write_json(staging / DONE, meta)
        _swap(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Partition(target, meta)


def _swap(staging: Path, target: Path) -> None:
    """Put the complete ``staging`` folder at ``target``, the old partition (if any) removed."""
    old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex[:8]}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def partitions(history: str | Path) -> list[Partition]:
    """The complete partitions of ``history``, by date; an incomplete one is a DataError."""
    out = []
    for path in sorted(Path(history).glob("as_of=*")):
        done = path / DONE
        if not done.is_file():
            raise DataError(f"{path.name}: incomplete history partition (no {DONE}); score the date again")
        out.append(Partition(path, json.loads(done.read_text(encoding="utf-8"))))
    return out


def read_history(history: str | Path, con: duckdb.DuckDBPyConnection) -> str:
    """SQL of the whole history (every complete partition, with ``as_of`` a DATE column) on
    ``con``, for queries that stay out of core."""
    parts = partitions(history)
    if not parts:
        raise DataError(f"{history}: no history partitions (run cbcv score CONFIG --as-of DATE)")
    files = ", ".join(literal(str(p.path / "part-0.parquet")) for p in parts)
    return f"SELECT * REPLACE (CAST(as_of AS DATE) AS as_of) FROM read_parquet([{files}], hive_partitioning = true)"


def month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    """The month ends from ``start``'s month to ``end``'s, those in ``[start, end]``."""
    days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="ME")
    return [d.date() for d in days]


@dataclass(frozen=True)
class History:
    """A history folder, the fits' store beside it, and the partitions just written."""

    folder: Path
    written: tuple[Partition, ...]

    @property
    def store(self) -> Path:
        return self.folder / "_models"


def score_months(loaded: LoadedConfig, result: CompanyData, start: dt.date, end: dt.date,
                 history: str | Path | None = None, progress: Any = None) -> History:
    """:func:`score_as_of` at every month end from ``start`` to ``end`` (and at ``start`` and
    ``end`` themselves when they are not month ends)."""
    folder = Path(history) if history is not None else history_folder(result)
    days = sorted({start, *month_ends(start, end), end})
    return History(folder, tuple(score_as_of(loaded, result, d, folder, progress=progress) for d in days))


def history_summary(history: History | str | Path) -> pd.DataFrame:
    """Per as-of date of the history: customers, customer equity (the sum of the customers'
    mean CLV), mean P(alive), mean expected transactions and the model version (SQL over the
    partitions)."""
    folder = history.folder if isinstance(history, History) else Path(history)
    with scratch_connection() as con:
        return con.execute(
            f"""SELECT as_of, count(*) AS customers, sum(clv_mean) AS customer_equity,
                       avg(p_alive_mean) AS mean_p_alive, avg(expected_mean) AS mean_expected_transactions,
                       min(model_version) AS model_version
                FROM ({read_history(folder, con)}) GROUP BY as_of ORDER BY as_of"""
        ).df().assign(as_of=lambda f: pd.to_datetime(f["as_of"]).dt.strftime("%Y-%m-%d"))
