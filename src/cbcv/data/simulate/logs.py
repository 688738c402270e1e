"""Simulated calendar transaction logs with staggered acquisition, in bounded-memory chunks.

:func:`simulate_transactions` (one frame), :func:`iter_simulated_transactions` (chunks) and
:func:`write_parquet` (chunks written to Parquet) draw the same rows for the same :class:`LogSpec`
settings: the calendar (``start``, ``acquisition_end``, ``end``, ``time_unit``, ``acquisition``),
the spend model, the seed and the chunk size. Calendar days and the same-day merge that follows
downstream are described in :mod:`cbcv.data.simulate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cbcv.core.errors import ConfigError
from cbcv.core.units import unit_days
from cbcv.data.simulate.draws import (
    ACQUISITION,
    EVENTS,
    LATENT,
    RNG_BLOCK,
    SPEND,
    block_streams,
    customer_ids,
    entropy_of,
    events,
    latent_draws,
    purchase_times,
    spend_rates,
)
from cbcv.data.simulate.params import (
    FrequencyParams,
    GammaGammaParams,
    check_params,
    positive_int,
)

#: Default customers per generated chunk (a multiple of :data:`RNG_BLOCK`).
DEFAULT_CHUNK_SIZE = 32 * RNG_BLOCK

_NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class SimulatedLog:
    """A simulated transaction log with its truth.

    ``transactions``: ``customer_id`` (str), ``date`` (datetime64[ns], midnight), ``amount``
    (float), sorted by customer and date, one row per simulated purchase (same-day purchases are
    separate rows; :func:`cbcv.data.transactions.to_daily` merges them).
    ``truth``: one row per customer: ``customer_id``, ``acquisition_date``, ``T`` (time units
    observed from the first purchase instant to the end of ``end``), ``lambda``, ``p`` (BG/NBD) or
    ``mu`` (Pareto/NBD), ``dropout`` (time units from the first purchase to dropout; may exceed
    ``T``), ``alive`` (at the end of ``end``), and ``nu`` when spend is simulated.
    """

    transactions: pd.DataFrame
    truth: pd.DataFrame
    params: FrequencyParams
    spend: GammaGammaParams | None
    start: pd.Timestamp
    acquisition_end: pd.Timestamp
    end: pd.Timestamp
    time_unit: str
    seed: int


@dataclass(frozen=True)
class WrittenLog:
    """What :func:`write_parquet` wrote."""

    path: Path
    truth_path: Path | None
    n_customers: int
    n_transactions: int
    seed: int



@dataclass(frozen=True, eq=False)
class LogSpec:
    """The settings of a simulated log: the keyword arguments of :func:`simulate_transactions`.

    ``start`` .. ``acquisition_end``: the days of first purchases (uniform, or with probabilities
    proportional to ``acquisition``, one weight per day of that range); ``end``: the last day
    observed; ``time_unit``: ``day``, ``week`` or ``month`` (the models' time unit); ``spend``:
    gamma-gamma amounts (None: every amount is 1.0); ``seed``: root seed (None: fresh entropy);
    ``chunk_size``: customers per generated chunk (never changes the draws).
    """

    start: Any
    acquisition_end: Any
    end: Any
    time_unit: str = "week"
    spend: GammaGammaParams | None = None
    acquisition: Literal["uniform"] | np.ndarray = "uniform"
    seed: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE


@dataclass(frozen=True)
class _Calendar:
    start: pd.Timestamp
    acquisition_end: pd.Timestamp
    end: pd.Timestamp
    days_per_unit: float
    weights: np.ndarray | None  # acquisition-day probabilities, or None for uniform

    @property
    def acquisition_days(self) -> int:
        return (self.acquisition_end - self.start).days + 1

    @property
    def total_days(self) -> int:
        return (self.end - self.start).days + 1


def _day(value: Any, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a date") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ConfigError(f"{name} {value!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def _calendar(spec: LogSpec) -> _Calendar:
    s, e = _day(spec.start, "start"), _day(spec.end, "end")
    a = _day(spec.acquisition_end, "acquisition_end")
    if not s <= a <= e:
        raise ConfigError(
            f"dates must satisfy start <= acquisition_end <= end, got {s.date()}, {a.date()}, "
            f"{e.date()}"
        )
    cal = _Calendar(s, a, e, unit_days(spec.time_unit), None)
    acquisition = spec.acquisition
    if isinstance(acquisition, str):
        if acquisition != "uniform":
            raise ConfigError(
                f"acquisition must be 'uniform' or an array of day weights, got {acquisition!r}"
            )
        return cal
    w = np.asarray(acquisition, dtype=float)
    if w.shape != (cal.acquisition_days,):
        raise ConfigError(
            f"acquisition weights must have one value per day from start to acquisition_end "
            f"({cal.acquisition_days}), got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("acquisition weights must be finite, non-negative and not all zero")
    return _Calendar(s, a, e, cal.days_per_unit, w / w.sum())


@dataclass(frozen=True)
class _Block:
    """One block of customers: purchases (customer index, day offset, amount) and truth arrays."""

    cust: np.ndarray
    day: np.ndarray
    amount: np.ndarray
    truth: dict[str, np.ndarray]


def _transaction_block(
    params: FrequencyParams,
    spend: GammaGammaParams | None,
    cal: _Calendar,
    streams: list[np.random.Generator],
    n: int,
) -> _Block:
    acq_rng = streams[ACQUISITION]
    if cal.weights is None:
        acq_day = acq_rng.integers(0, cal.acquisition_days, n)
    else:
        acq_day = np.minimum(
            np.searchsorted(np.cumsum(cal.weights), acq_rng.random(n), side="right"),
            cal.acquisition_days - 1,
        )
    instant = acq_rng.random(n)  # first purchase at this fraction of its day
    T = (cal.total_days - acq_day - instant) / cal.days_per_unit
    latent = latent_draws(params, n, streams[LATENT])
    win = events(params, latent, T, None, streams[EVENTS])
    cust, t = purchase_times(win, streams[EVENTS])
    day = acq_day[cust] + np.floor(instant[cust] + t * cal.days_per_unit).astype(np.int64)
    day = np.minimum(day, cal.total_days - 1)
    truth: dict[str, np.ndarray] = {"acquisition_day": acq_day, "T": T, **latent}
    truth["dropout"] = win.dropout
    truth["alive"] = win.dropout > T
    if spend is None:
        amount = np.ones(cust.shape[0])
    else:
        rng = streams[SPEND]
        nu = spend_rates(spend, n, rng)
        amount = rng.gamma(spend.p, 1.0 / nu[cust])
        truth["nu"] = nu
    return _Block(cust, day, amount, truth)


def _blocks_to_tables(
    pieces: list[tuple[int, _Block, int, int]], cal: _Calendar, n_total: int
) -> tuple[pa.Table, pa.Table]:
    """Assemble (global start, block, lo, hi) slices of blocks into transaction and truth tables."""
    cust_parts, day_parts, amount_parts, truth_parts = [], [], [], []
    for base, blk, lo, hi in pieces:
        r0, r1 = np.searchsorted(blk.cust, [lo, hi], side="left")
        cust_parts.append(blk.cust[r0:r1] + base)
        day_parts.append(blk.day[r0:r1])
        amount_parts.append(blk.amount[r0:r1])
        truth_parts.append({k: v[lo:hi] for k, v in blk.truth.items()})
    first = pieces[0][0] + pieces[0][2]
    last = pieces[-1][0] + pieces[-1][3]
    ids = pa.array(customer_ids(first, last, n_total), type=pa.string())
    cust = np.concatenate(cust_parts)
    start_ns = cal.start.as_unit("ns").value
    dates = (np.concatenate(day_parts) * _NS_PER_DAY + start_ns).view("datetime64[ns]")
    tx = pa.table(
        {
            "customer_id": ids.take(pa.array(cust - first)),
            "date": pa.array(dates, type=pa.timestamp("ns")),
            "amount": pa.array(np.concatenate(amount_parts), type=pa.float64()),
        }
    )
    truth = {k: np.concatenate([p[k] for p in truth_parts]) for k in truth_parts[0]}
    acq = (truth.pop("acquisition_day") * _NS_PER_DAY + start_ns).view("datetime64[ns]")
    truth_table = pa.table(
        {
            "customer_id": ids,
            "acquisition_date": pa.array(acq, type=pa.timestamp("ns")),
            **{k: pa.array(v) for k, v in truth.items()},
        }
    )
    return tx, truth_table




@dataclass(frozen=True)
class _Run:
    """A validated simulation: the settings, the customers, the calendar and the root entropy."""

    params: FrequencyParams
    spec: LogSpec
    n: int
    cal: _Calendar
    entropy: int


def _run(params: FrequencyParams, n_customers: int, settings: dict[str, Any]) -> _Run:
    """Check every argument eagerly (before any chunk is drawn) and fix the entropy."""
    spec = LogSpec(**settings)
    check_params(params, spec.spend)
    n = positive_int(n_customers, "n_customers")
    positive_int(spec.chunk_size, "chunk_size")
    cal = _calendar(spec)
    return _Run(params, spec, n, cal, entropy_of(spec.seed))


def _generate_tables(run: _Run) -> Iterator[tuple[pa.Table, pa.Table]]:
    """``(transactions, truth)`` Arrow tables, one pair per chunk of ``spec.chunk_size``."""
    n, chunk_size = run.n, int(run.spec.chunk_size)
    cache: dict[int, _Block] = {}

    def block(k: int) -> _Block:
        if k not in cache:
            cache.clear()  # chunks advance monotonically: only the boundary block is reused
            size = min(RNG_BLOCK, n - k * RNG_BLOCK)
            streams = block_streams(run.entropy, k)
            cache[k] = _transaction_block(run.params, run.spec.spend, run.cal, streams, size)
        return cache[k]

    for c0 in range(0, n, chunk_size):
        c1 = min(c0 + chunk_size, n)
        pieces = []
        for k in range(c0 // RNG_BLOCK, (c1 - 1) // RNG_BLOCK + 1):
            base = k * RNG_BLOCK
            pieces.append((base, block(k), max(c0, base) - base, min(c1, base + RNG_BLOCK) - base))
        yield _blocks_to_tables(pieces, run.cal, n)


def _frame(table: pa.Table, date_column: str) -> pd.DataFrame:
    df = table.to_pandas()
    df["customer_id"] = df["customer_id"].astype(str)
    df[date_column] = df[date_column].astype("datetime64[ns]")
    return df


def iter_simulated_transactions(
    params: FrequencyParams, n_customers: int, **settings: Any
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield ``(transactions, truth)`` for consecutive chunks of ``chunk_size`` customers.

    The arguments are those of :func:`simulate_transactions` (``settings``: the fields of
    :class:`LogSpec`); the concatenated chunks equal its result for the same seed, whatever
    ``chunk_size``. Memory is bounded by one chunk (about ``chunk_size * (1 + mean purchases)``
    rows). Every argument is checked at the call, before the first chunk is drawn.
    """
    tables = _generate_tables(_run(params, n_customers, settings))
    return ((_frame(tx, "date"), _frame(truth, "acquisition_date")) for tx, truth in tables)


def simulate_transactions(
    params: FrequencyParams, n_customers: int, **settings: Any
) -> SimulatedLog:
    """Simulate a calendar transaction log with staggered acquisition.

    ``settings`` are the fields of :class:`LogSpec`: ``start``, ``acquisition_end`` and ``end``
    (required), ``time_unit="week"``, ``spend=None``, ``acquisition="uniform"``, ``seed=None``,
    ``chunk_size=DEFAULT_CHUNK_SIZE``. Each customer's first purchase is on a day between
    ``start`` and ``acquisition_end`` (inclusive), uniformly, or with probabilities proportional
    to ``acquisition`` (one weight per day of that range), at a uniform instant of that day. Later
    purchases follow ``params`` in continuous time (``time_unit``: ``day``, ``week`` or
    ``month``) and are recorded on their calendar day, up to the end of ``end``. Amounts follow
    ``spend`` (gamma-gamma, the first purchase included) or are 1.0. Purchases of one customer on
    one day stay separate rows here and merge into one transaction downstream; see the module
    notes of :mod:`cbcv.data.simulate` for the size of that effect.

    Returns a :class:`SimulatedLog` (transactions sorted by customer and date, and the truth).
    ``seed=None`` draws fresh entropy; the seed actually used is in ``SimulatedLog.seed``.
    """
    run = _run(params, n_customers, settings)
    chunks = list(_generate_tables(run))
    return SimulatedLog(
        transactions=_frame(pa.concat_tables([c[0] for c in chunks]), "date"),
        truth=_frame(pa.concat_tables([c[1] for c in chunks]), "acquisition_date"),
        params=params, spend=run.spec.spend, start=run.cal.start,
        acquisition_end=run.cal.acquisition_end, end=run.cal.end,
        time_unit=run.spec.time_unit, seed=run.entropy,
    )


def write_parquet(
    path: str | Path,
    params: FrequencyParams,
    n_customers: int,
    *,
    truth_path: str | Path | None = None,
    compression: str = "zstd",
    **settings: Any,
) -> WrittenLog:
    """Write a simulated log to Parquet chunk by chunk, never holding it all in memory.

    ``settings`` are those of :func:`simulate_transactions` (the fields of :class:`LogSpec`). The
    file has the transaction contract's columns (``customer_id`` string, ``date``
    timestamp[ns], ``amount`` double), one row group per chunk; ``truth_path`` also writes the
    per-customer truth. The rows equal :func:`simulate_transactions`' for the same arguments.
    """
    path = Path(path)
    tpath = None if truth_path is None else Path(truth_path)
    run = _run(params, n_customers, settings)
    n_rows = 0
    writer: pq.ParquetWriter | None = None
    twriter: pq.ParquetWriter | None = None
    try:
        for tx, truth in _generate_tables(run):
            if writer is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, tx.schema, compression=compression)
                if tpath is not None:
                    tpath.parent.mkdir(parents=True, exist_ok=True)
                    twriter = pq.ParquetWriter(tpath, truth.schema, compression=compression)
            writer.write_table(tx)
            if twriter is not None:
                twriter.write_table(truth)
            n_rows += tx.num_rows
    finally:
        if writer is not None:
            writer.close()
        if twriter is not None:
            twriter.close()
    return WrittenLog(
        path=path, truth_path=tpath, n_customers=run.n, n_transactions=n_rows,
        seed=run.entropy,
    )
