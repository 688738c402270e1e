"""The one CLV scoring engine: every customer over every posterior draw, in bounded memory.

Residual CLV of customer ``i`` under draw ``d`` (Fader, Hardie & Lee 2005, "RFM and CLV: Using
Iso-Value Curves for Customer Base Analysis", J. Marketing Research 42(4), eq. 2 and eq. 5)::

    CLV[d, i] = margin[d] * E[Z | x_i, z̄_i; p, q, γ (draw d)] * DERT(δ[d] | x_i, t_x_i, T_i; draw d)

with the draws paired as :mod:`cbcv.clv.pairing` says. :func:`score_base` runs it with DuckDB
over the customers' summaries, whatever holds them: a pandas DataFrame or Arrow table (registered
as a relation) or a Parquet file. Its work grows with the number of *distinct summaries*
(:mod:`cbcv.clv.keys`): DuckDB counts the customers and sums their mean repeat spend ``z`` per key
``(x, t_x, T)`` and per group, out of core past ``memory_limit``; numpy evaluates the draws per
key in chunks of at most ``max_bytes``, and the customer ``i`` with key ``k`` has posterior mean
CLV ``u_k + v_k z_i`` (``u``, ``v`` the means over draws of ``U``, ``V``). "In memory" and "out of
core" are the same path with other memory settings.

Two passes over the keys: the first gives the per-draw totals, the attribute groups, the P(alive)
histogram and the per-key means (and so each customer's posterior mean CLV, its rank, ties by
input row, and value decile, 1 = top 10%); the second the value-decile and top-customer totals
per draw and the per-customer rows, streamed chunk by chunk to a sink (a Parquet file in
:func:`score_customers`, a DataFrame in :func:`cbcv.clv.customer_clv`). Totals, group totals,
concentration and the P(alive) histogram use every draw; the per-customer intervals
(``clv_low``, ``clv_median``, ``clv_high``; ``p_alive_low``, ``p_alive_high``; with a horizon
``expected_low``, ``expected_high``) use ``interval_draws`` evenly spaced draws (all of
them when there are fewer, or when ``interval_draws`` is None).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from cbcv.clv.keys import (
    DERT_GRID,
    INTERVAL_DRAWS,
    KEY,
    MAX_BYTES,
    KeyValues,
    group_sums,
    interval_draws_index,
    key_bounds,
    key_chunks,
    key_pass,
    key_values,
    pair_values,
)
from cbcv.clv.pairing import PAIRING, ScoringDraws, segment_draws
from cbcv.clv.spark import SparkScored, score_spark
from cbcv.clv.tables import LORENZ_POINTS, P_ALIVE_BINS, CLVTables
from cbcv.core.cache import atomic_write_json
from cbcv.core.draws import N_DECILES, interval_bounds
from cbcv.core.errors import CbcvError, DataError
from cbcv.core.safe_csv import write_csv
from cbcv.data._sql import first_line, ident, literal, scratch_connection
from cbcv.models.base import CLVModel
from cbcv.models.covariates import CovariateModel

__all__ = [
    "DERT_GRID", "INTERVAL_DRAWS", "MAX_BYTES", "OUTPUT_COLUMNS", "BaseScores", "CustomerChunk", "ScoredBase",
    "ScoringDraws", "SparkScored", "pair_values", "score_base", "score_customers", "score_spark",
]

#: Customers per Parquet row group / interval block.
CUSTOMER_CHUNK = 250_000
#: Columns of the per-customer rows (``customer_id``, ``cohort`` when carried, ``expected_mean``
#: with a horizon); the engine's sink also gets ``row``, the customer's position in the input.
OUTPUT_COLUMNS = (
    "customer_id", "cohort", "x", "t_x", "T", "mean_repeat_spend", "clv_mean", "clv_median",
    "clv_low", "clv_high", "p_alive_mean", "p_alive_low", "p_alive_high", "expected_mean", "expected_low",
    "expected_high", "dert_mean", "spend_mean", "rank", "value_decile",
)
#: What the engine scores: a DataFrame or Arrow table in memory, or a Parquet file.
Summaries = str | os.PathLike[str] | pd.DataFrame | pa.Table


@dataclass(frozen=True)
class CustomerChunk:
    """One block of per-customer rows for the engine's sink: ``rows`` (``row`` and the
    :data:`OUTPUT_COLUMNS`), and what gives each row's CLV per draw (:meth:`clv_draws`)."""

    rows: pd.DataFrame
    values: KeyValues
    local: np.ndarray  # each row's key within the chunk's keys
    z: np.ndarray  # each row's mean repeat spend (0 without repeat purchases)

    def clv_draws(self) -> np.ndarray:
        """CLV per draw of the chunk's customers, ``(draws, rows)``."""
        return self.values.U[:, self.local] + self.values.V[:, self.local] * self.z[None, :]


@dataclass(frozen=True)
class BaseScores:
    """What :func:`score_base` returns: ``tables``, the fields of :class:`~cbcv.clv.tables.CLVTables`,
    and the engine's counts of distinct keys and (x, T) pairs, and the horizon's expected
    transactions per draw (or None)."""

    tables: dict[str, Any]
    n_keys: int
    n_pairs: int
    expected_total: np.ndarray | None


def _columns(con: duckdb.DuckDBPyConnection, summaries: Summaries) -> tuple[str, list[str]]:
    """The name of ``summaries`` for messages and its columns."""
    if isinstance(summaries, pd.DataFrame):
        return "summaries DataFrame", [str(c) for c in summaries.columns]
    if isinstance(summaries, pa.Table):
        return "summaries table", list(summaries.column_names)
    src = Path(summaries)
    if not src.is_file():
        raise DataError(f"{src.name}: file not found ({src})")
    try:
        return src.name, [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(src))})").fetchall()]
    except duckdb.Error as exc:
        raise DataError(f"{src.name}: cannot read ({first_line(exc)})") from exc


def _relation(con: duckdb.DuckDBPyConnection, summaries: Summaries, columns: list[str]) -> str:
    """SQL of the ``columns`` of ``summaries`` on ``con`` with ``row``, the 0-based input position
    (a DataFrame or Arrow table is registered as a relation, a Parquet file read in place)."""
    if isinstance(summaries, pd.DataFrame | pa.Table):
        table = (summaries.select(columns) if isinstance(summaries, pa.Table)
                 else pa.Table.from_pandas(summaries[columns], preserve_index=False))
        con.register("summary_input", table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64))))
        return "SELECT * FROM summary_input"
    return f"SELECT *, file_row_number AS row FROM read_parquet({literal(str(summaries))}, file_row_number = true)"


def score_base(
    summaries: Summaries,
    draws: ScoringDraws | Sequence[ScoringDraws],
    sink: Callable[[CustomerChunk], None],
    *,
    segments: np.ndarray | None = None,
    carry: Sequence[str] = (),
    group_by: Sequence[str] | None = None,
    top_fractions: Sequence[float] = (0.01, 0.10),
    horizon: float | None = None,
    interval: float = 0.9,
    interval_draws: int | None = INTERVAL_DRAWS,
    p_alive_bins: int = P_ALIVE_BINS,
    max_bytes: int = MAX_BYTES,
    memory_limit: str | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BaseScores:
    """Score every customer of ``summaries`` (``x``, ``t_x``, ``T``, ``mean_repeat_spend``, and
    the ``carry`` and ``group_by`` columns) over ``draws``; see the module notes. The per-customer
    rows go to ``sink`` in blocks, ordered by key then rank; ``carry`` names the input columns
    they keep (``cohort`` is kept when present). ``group_by`` defaults to ``cohort`` when the
    summaries have it.

    Customers in covariate segments (:func:`cbcv.clv.pairing.segment_draws`): ``draws`` one
    :class:`ScoringDraws` per segment and ``segments`` each input row's segment; a key is then
    (segment, x, t_x, T), and each segment's keys are evaluated with its own draws."""
    start = time.perf_counter()
    segs = (draws,) if isinstance(draws, ScoringDraws) else tuple(draws)
    if len(segs) > 1 and segments is None:
        raise CbcvError("score_base: give each row's segment with draws for several segments")
    draws = segs[0]
    fractions = [float(f) for f in top_fractions]
    if any(not 0 < f <= 1 for f in fractions):
        raise ValueError("top_fractions must be in (0, 1]")
    say = progress or (lambda _msg: None)
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        name, have = _columns(con, summaries)
        missing = [c for c in (*carry, *KEY, "mean_repeat_spend") if c not in have]
        if missing:
            raise DataError(f"{name}: missing column(s) {', '.join(missing)}; columns found: {', '.join(have)}")
        if group_by is None:
            group_by = ("cohort",) if "cohort" in have else ()
        for col in group_by:
            if col not in have:
                raise DataError(f"{name}: no column {col!r} to group by")
        kept = [*carry, *(["cohort"] if "cohort" in have and "cohort" not in carry else [])]
        extra = [c for c in dict.fromkeys((*kept, *group_by)) if c not in (*KEY, "mean_repeat_spend")]
        relation = _relation(con, summaries, [*KEY, "mean_repeat_spend", *extra])
        segment_sql = "0"
        if segments is not None:
            con.register("segment_input", pa.table({"srow": pa.array(np.arange(len(segments), dtype=np.int64)),
                                                    "segment": pa.array(np.asarray(segments, dtype=np.int64))}))
            relation = f"SELECT r.*, s.segment FROM ({relation}) r JOIN segment_input s ON r.row = s.srow"
            segment_sql = "segment"
        carried = "".join(
            ", CAST(customer_id AS VARCHAR) AS customer_id" if c == "customer_id" else f", {ident(c)}" for c in extra
        )
        say("scoring: counting distinct summaries")
        con.execute(
            f"""CREATE TABLE src AS SELECT row, CAST(x AS DOUBLE) AS x, CAST(t_x AS DOUBLE) AS t_x,
                CAST("T" AS DOUBLE) AS "T", CAST(mean_repeat_spend AS DOUBLE) AS mean_repeat_spend,
                CAST({segment_sql} AS BIGINT) AS segment,
                CASE WHEN x > 0 THEN coalesce(CAST(mean_repeat_spend AS DOUBLE), 0) ELSE 0 END AS z
                {carried} FROM ({relation})"""
        )
        keys = con.execute(
            'SELECT segment, x, t_x, "T", count(*) AS n, sum(z) AS sz FROM src GROUP BY segment, x, t_x, "T" '
            'ORDER BY segment, x, "T", t_x'
        ).df()
        if keys.empty:
            raise DataError(f"{name}: no customers to score")
        bad = keys[[*KEY]].isna().any(axis=1) | (keys["x"] < 0) | (keys["t_x"] > keys["T"]) | (keys["t_x"] < 0)
        if bad.any():
            row = keys[bad].iloc[0]
            raise DataError(f"{name}: invalid summary x={row['x']}, t_x={row['t_x']}, T={row['T']} (need 0 ≤ t_x ≤ T)")
        keys.insert(0, "key", np.arange(len(keys), dtype=np.int64))
        con.register("keys_df", keys[["key", "segment", *KEY]])
        con.execute(
            'CREATE TABLE cust AS SELECT s.*, k.key FROM src s JOIN keys_df k ON s.segment = k.segment AND s.x = k.x '
            'AND s.t_x = k.t_x AND s."T" = k."T"'
        )
        if (keys["segment"] >= len(segs)).any() or (keys["segment"] < 0).any():
            raise CbcvError(f"score_base: segments run to {int(keys['segment'].max())}, draws given for {len(segs)}")
        con.execute("DROP TABLE src")
        n_cust = int(con.execute("SELECT count(*) FROM cust").fetchall()[0][0])
        n_keys = len(keys)
        groups = {c: _group_matrix(con, ident(c), n_keys) for c in group_by}

        say(f"scoring: DERT over the distinct (x, T) pairs × {draws.n_draws} draws")
        parts = _segment_parts(segs, keys, horizon, max_bytes)
        say(f"scoring: pass 1 over {n_keys:,} distinct summaries × {draws.n_draws} draws")
        first = _first_pass(parts, keys, horizon, {c: (g[1], g[2]) for c, g in groups.items()}, p_alive_bins,
                            max_bytes)
        con.register("kstats", first.means[["key", "p_alive_mean", "dert_mean", "a", "b", "u", "v",
                                            *(["expected_mean"] if horizon is not None else [])]])
        con.execute(
            """CREATE TABLE ranked AS SELECT c.*, k.u + k.v * c.z AS clv_mean,
                   row_number() OVER (ORDER BY k.u + k.v * c.z DESC, c.row) AS rank
               FROM cust c JOIN kstats k USING (key)"""
        )
        con.execute("DROP TABLE cust")
        con.execute(f"CREATE VIEW cust AS SELECT *, ({N_DECILES} * (rank - 1)) // {n_cust} + 1 AS value_decile FROM ranked")
        dec_labels, dec_n, dec_s = _group_matrix(con, "value_decile", n_keys)
        second = {"value_decile": (dec_n, dec_s)}
        for f in fractions:
            k = max(1, int(np.ceil(f * n_cust - 1e-9)))
            second[f"top {100 * f:g}%"] = _group_matrix(con, "1", n_keys, f"WHERE rank <= {k}")[1:]
        pa_by_mean = np.zeros(p_alive_bins)
        for b, cnt in con.execute(
            f"SELECT least(CAST(floor(p_alive_mean * {p_alive_bins}) AS BIGINT), {p_alive_bins - 1}), count(*) "
            "FROM cust JOIN kstats USING (key) GROUP BY 1"
        ).fetchall():
            pa_by_mean[int(b)] = cnt

        say(f"scoring: pass 2 over {n_cust:,} customers")
        cols = [c for c in kept if c in extra]
        n_sub = draws.n_draws if interval_draws is None else min(interval_draws, draws.n_draws)
        sums2 = _second_pass(con, parts, keys, second, sink, cols, horizon, interval, n_sub, max_bytes)
    group_draws = {c: pd.DataFrame(first.group_draws[c], columns=pd.Index(lab, name=c)) for c, (lab, _, _) in groups.items()}
    group_counts = {c: pd.Series(np.asarray(gn.sum(axis=1)).ravel(), index=lab) for c, (lab, gn, _) in groups.items()}
    deciles = pd.Index(np.arange(1, N_DECILES + 1), name="value_decile")  # all ten, empty ones too
    found = [int(v) for v in dec_labels]
    group_draws["value_decile"] = pd.DataFrame(sums2["value_decile"], columns=found).reindex(columns=deciles, fill_value=0.0)
    group_counts["value_decile"] = pd.Series(np.asarray(dec_n.sum(axis=1)).ravel(), index=found).reindex(deciles, fill_value=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = {f"top {100 * f:g}%": np.where(first.total > 0, sums2[f"top {100 * f:g}%"][:, 0] / first.total, np.nan)
                  for f in fractions}
    meta = {
        "purchase_model": draws.freq, "n_draws": draws.n_draws, "interval_draws": n_sub, "time_unit": draws.time_unit,
        "horizon": horizon, "seconds": time.perf_counter() - start, "pairing": PAIRING,
    }
    tables = dict(
        total=first.total, n_customers=n_cust, group_draws=group_draws, group_counts=group_counts,
        top_share_draws=pd.DataFrame(shares), p_alive_counts=first.p_alive_counts, p_alive_by_mean=pa_by_mean,
        interval=interval, meta=meta,
    )
    if len(segs) > 1:
        meta["segments"] = len(segs)
    return BaseScores(tables, n_keys, sum(int(p.pairs.dert.shape[1]) for p in parts), first.expected_total)


@dataclass(frozen=True)
class _Part:
    """The keys ``keys`` (a slice of the key table, one segment's) with their draws and pair factors."""

    keys: slice
    draws: ScoringDraws
    pairs: Any


def _segment_parts(segs: Sequence[ScoringDraws], keys: pd.DataFrame, horizon: float | None,
                   max_bytes: int) -> list[_Part]:
    """Each segment's run of keys (they are ordered by segment) with its pair factors."""
    seg = keys["segment"].to_numpy(dtype=np.int64)
    bounds = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1], True])
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        d = segs[int(seg[a])]
        pv = pair_values(d, keys["x"].to_numpy(dtype=float)[a:b], keys["T"].to_numpy(dtype=float)[a:b],
                         horizon=horizon, max_bytes=max_bytes)
        parts.append(_Part(slice(int(a), int(b)), d, pv))
    return parts


def _first_pass(parts: list[_Part], keys: pd.DataFrame, horizon: float | None,
                groups: dict[str, tuple[sparse.csc_matrix, sparse.csc_matrix]], p_alive_bins: int,
                max_bytes: int) -> Any:
    """:func:`key_pass` over each segment's keys with its draws, the totals added up (every
    segment's draw ``d`` is the same joint posterior draw)."""
    results = [
        key_pass(p.draws, keys.iloc[p.keys], horizon=horizon, p_alive_bins=p_alive_bins, max_bytes=max_bytes,
                 groups={c: (gn[:, p.keys], gs[:, p.keys]) for c, (gn, gs) in groups.items()}, pairs=p.pairs)
        for p in parts
    ]
    if len(results) == 1:
        return results[0]
    expected = [r.expected_total for r in results]
    return replace(
        results[0],
        means=pd.concat([r.means for r in results], ignore_index=True),
        total=sum(r.total for r in results),
        expected_total=None if expected[0] is None else sum(expected),
        p_alive_counts=sum(r.p_alive_counts for r in results),
        group_draws={g: sum(r.group_draws[g] for r in results) for g in results[0].group_draws},
    )


def _group_matrix(
    con: duckdb.DuckDBPyConnection, label: str, n_keys: int, where: str = ""
) -> tuple[list[Any], sparse.csc_matrix, sparse.csc_matrix]:
    """Sparse (groups × keys) customer counts and summed z of ``label`` over table ``cust``."""
    agg = con.execute(f"SELECT {label} AS g, key, count(*) AS n, sum(z) AS sz FROM cust {where} GROUP BY ALL").df()
    codes, labels = pd.factorize(agg["g"], sort=True, use_na_sentinel=False)
    shape = (len(labels), n_keys)
    key = agg["key"].to_numpy(dtype=np.int64)
    gn = sparse.csc_matrix((agg["n"].to_numpy(dtype=float), (codes, key)), shape=shape)
    gs = sparse.csc_matrix((agg["sz"].to_numpy(dtype=float), (codes, key)), shape=shape)
    return list(labels), gn, gs


def _batches(con: duckdb.DuckDBPyConnection, sql: str, sizes: Sequence[int]) -> Iterator[pa.Table]:
    """The rows of ``sql`` cut into consecutive tables of exactly ``sizes`` rows."""
    rel = con.sql(sql)
    # DuckDB >= 2 names it to_arrow_reader, 1.x fetch_arrow_reader
    reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    reader = reader(CUSTOMER_CHUNK)
    buffer: list[pa.RecordBatch] = []
    held = 0
    for size in sizes:
        while held < size:
            batch = reader.read_next_batch()
            buffer.append(batch)
            held += batch.num_rows
        table = pa.Table.from_batches(buffer)
        yield table.slice(0, size)
        rest = table.slice(size)
        buffer, held = rest.to_batches(), rest.num_rows


def _second_pass(
    con: duckdb.DuckDBPyConnection,
    parts: list[_Part],
    keys: pd.DataFrame,
    groups: dict[str, tuple[sparse.csc_matrix, sparse.csc_matrix]],
    sink: Callable[[CustomerChunk], None],
    carry: list[str],
    horizon: float | None,
    interval: float,
    n_sub: int,
    max_bytes: int,
) -> dict[str, np.ndarray]:
    """Group totals that need the ranks, and the per-customer rows with intervals to ``sink``
    (chunks of keys within one segment, each with its segment's draws)."""
    x, t_x, T = (keys[c].to_numpy(dtype=float) for c in KEY)
    n = keys["n"].to_numpy(dtype=np.int64)
    n_draws = parts[0].draws.n_draws
    sub = interval_draws_index(n_draws, n_sub)
    lo, hi = interval_bounds(interval)
    sums = {g: np.zeros((n_draws, gn.shape[0])) for g, (gn, _) in groups.items()}
    chunks = [(slice(p.keys.start + c.start, p.keys.start + c.stop), p)
              for p in parts for c in key_chunks(p.keys.stop - p.keys.start, p.draws, max_bytes)]
    expected = ["expected_mean"] if horizon is not None else []
    cols = ["row", *carry, *KEY, "mean_repeat_spend", "z", "key", "rank", "value_decile", "p_alive_mean",
            "dert_mean", "a", "b", "u", "v", *expected]
    sql = f"SELECT {', '.join(ident(c) for c in cols)} FROM cust JOIN kstats USING (key) ORDER BY key, rank"
    for (c, part), table in zip(chunks, _batches(con, sql, [int(n[c].sum()) for c, _ in chunks]), strict=True):
        local_keys = slice(c.start - part.keys.start, c.stop - part.keys.start)
        kv = key_values(part.draws, x[c], t_x[c], T[c], horizon=horizon, pairs=part.pairs,
                        index=part.pairs.index[local_keys])
        for g, (gn, gs) in groups.items():
            sums[g] += group_sums(gn, gs, c, kv.U, kv.V)
        frame = table.to_pandas()
        local = frame["key"].to_numpy(dtype=np.int64) - c.start
        z = frame["z"].to_numpy(dtype=float)
        U, V = kv.U[sub], kv.V[sub]
        qs = np.empty((3, len(frame)))
        step = max(1, int(max_bytes // (8 * 4 * len(sub))))
        for i in range(0, len(frame), step):
            block = U[:, local[i : i + step]] + V[:, local[i : i + step]] * z[None, i : i + step]
            qs[:, i : i + step] = np.quantile(block, [0.5, lo, hi], axis=0)
        out = frame[["row", *carry, *KEY, "mean_repeat_spend"]].copy()
        out["clv_mean"] = frame["u"] + frame["v"] * z
        out["clv_median"], out["clv_low"], out["clv_high"] = qs[0], qs[1], qs[2]
        out["p_alive_mean"] = frame["p_alive_mean"]
        low, high = key_bounds(kv.p_alive[sub], lo, hi)
        out["p_alive_low"], out["p_alive_high"] = low[local], high[local]
        for e in expected:
            out[e] = frame[e]
            assert kv.expected is not None
            low, high = key_bounds(kv.expected[sub], lo, hi)
            out["expected_low"], out["expected_high"] = low[local], high[local]
        out["dert_mean"] = frame["dert_mean"]
        out["spend_mean"] = frame["a"] + frame["b"] * z
        out["rank"] = frame["rank"].astype("int64")
        out["value_decile"] = frame["value_decile"].astype("int64")
        sink(CustomerChunk(out, kv, local, z))
    return sums


@dataclass(frozen=True, kw_only=True)
class ScoredBase(CLVTables):
    """Result of :func:`score_customers`: the per-draw tables (:class:`~cbcv.clv.tables.CLVTables`)
    in memory, the customers on disk.

    * ``path``: the per-customer Parquet file (see :data:`OUTPUT_COLUMNS`);
    * ``n_keys``, ``n_pairs``: distinct summaries and distinct (x, T) pairs scored;
    * ``expected_total``: ``(draws,)`` expected transactions in the horizon (when given).
    """

    path: Path
    n_keys: int
    n_pairs: int
    expected_total: np.ndarray | None
    lorenz_points: ClassVar[int | None] = LORENZ_POINTS

    def customer_relation(self, con: duckdb.DuckDBPyConnection) -> str:
        return f"read_parquet({literal(str(self.path))})"

    def write_aggregates(self, folder: str | os.PathLike[str], top: int = 20) -> dict[str, Path]:
        """Everything a report needs, as small files in ``folder``: ``clv_total.npy`` (the
        per-draw total), ``summary.csv``, ``by_<group>.csv``, ``concentration.csv``,
        ``p_alive.csv``, ``top_customers.csv`` (anonymised, ``top`` rows) and ``scoring.json``
        (counts and metadata). Their size does not grow with the number of customers."""
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        files = {"clv_total": d / "clv_total.npy"}
        np.save(files["clv_total"], self.total)
        tables = {
            "summary": self.summary().reset_index(),
            **{f"by_{g}": self.by(g) for g in self.group_draws},
            "concentration": self.concentration(),
            "p_alive": self.p_alive_distribution(),
            "top_customers": self.top_customers(top),
        }
        for name, frame in tables.items():
            files[name] = d / f"{name}.csv"
            write_csv(frame, files[name])
        files["scoring"] = d / "scoring.json"
        meta = {"n_customers": self.n_customers, "n_keys": self.n_keys, "n_pairs": self.n_pairs,
                "n_draws": self.n_draws, "customers_file": self.path.name, **self.meta}
        atomic_write_json(files["scoring"], meta)
        return files


def score_customers(
    freq_model: CLVModel | None,
    spend_model: CLVModel | None,
    summaries: Summaries,
    out: str | os.PathLike[str],
    *,
    margin: Any = 1.0,
    annual_discount_rate: Any = 0.1,
    time_unit: str = "week",
    horizon: float | None = None,
    max_draws: int | None = None,
    draws: ScoringDraws | Sequence[ScoringDraws] | None = None,
    group_by: Sequence[str] | None = None,
    top_fractions: Sequence[float] = (0.01, 0.10),
    interval: float = 0.9,
    interval_draws: int = INTERVAL_DRAWS,
    p_alive_bins: int = P_ALIVE_BINS,
    max_bytes: int = MAX_BYTES,
    memory_limit: str | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScoredBase:
    """Residual CLV, P(alive), DERT, spend and (with ``horizon``) expected transactions of every
    customer in ``summaries`` (a Parquet file of :func:`cbcv.data.summary_files.write_summaries`, or
    a DataFrame or Arrow table, with ``customer_id``, ``x``, ``t_x``, ``T``,
    ``mean_repeat_spend`` and optional ``cohort``), written to the Parquet file ``out`` in key
    order (customers with the same summary adjacent); see the module notes.

    Pass the fitted models (with ``margin``, ``annual_discount_rate``, ``time_unit`` and
    ``max_draws``, as in :func:`cbcv.clv.customer_clv`) or ready ``draws``. A model with
    covariates (:class:`~cbcv.models.covariates.CovariateModel`) scores each customer at its own
    covariates, which ``summaries`` must carry (:func:`cbcv.clv.pairing.segment_draws`).
    """
    segments = None
    if draws is None:
        if freq_model is None or spend_model is None:
            raise CbcvError("score_customers: pass the two fitted models or draws=")
        if isinstance(freq_model, CovariateModel) or isinstance(spend_model, CovariateModel):
            draws, segments = segment_draws(
                freq_model, spend_model, _covariate_columns(summaries, (freq_model, spend_model)), margin=margin,
                annual_discount_rate=annual_discount_rate, time_unit=time_unit, max_draws=max_draws,
            )
        else:
            draws = ScoringDraws.from_models(
                freq_model, spend_model, margin=margin, annual_discount_rate=annual_discount_rate,
                time_unit=time_unit, max_draws=max_draws,
            )
    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: list[pq.ParquetWriter] = []

    def write(chunk: CustomerChunk) -> None:
        arrow = pa.Table.from_pandas(chunk.rows.drop(columns="row"), preserve_index=False)
        if not writer:
            writer.append(pq.ParquetWriter(path, arrow.schema, compression="zstd"))
        writer[0].write_table(arrow)

    try:
        scores = score_base(
            summaries, draws, write, segments=segments, carry=("customer_id",), group_by=group_by,
            top_fractions=top_fractions, horizon=horizon, interval=interval, interval_draws=interval_draws,
            p_alive_bins=p_alive_bins, max_bytes=max_bytes, memory_limit=memory_limit, threads=threads,
            progress=progress,
        )
    finally:
        for w in writer:
            w.close()
    return ScoredBase(
        path=path, n_keys=scores.n_keys, n_pairs=scores.n_pairs, expected_total=scores.expected_total, **scores.tables
    )


def _covariate_columns(summaries: Summaries, models: Sequence[CLVModel]) -> pd.DataFrame:
    """The covariate columns the ``models`` need, one row per customer of ``summaries`` (only
    those columns are read from a file)."""
    columns = list(dict.fromkeys(c for m in models if isinstance(m, CovariateModel) for c in m.design.columns))
    if isinstance(summaries, pd.DataFrame):
        missing = [c for c in columns if c not in summaries.columns]
        frame = summaries
    else:
        table = summaries if isinstance(summaries, pa.Table) else pq.read_schema(Path(summaries))
        names = table.column_names if isinstance(table, pa.Table) else table.names
        missing = [c for c in columns if c not in names]
        if missing:
            frame = pd.DataFrame()
        elif isinstance(summaries, pa.Table):
            frame = summaries.select(columns).to_pandas()
        else:
            frame = pq.read_table(Path(summaries), columns=columns).to_pandas()
    if missing:
        raise DataError(f"scoring: the summaries have no covariate column {missing[0]!r}, which the model was "
                        "fitted with")
    return frame[columns]
