"""Scoring a customer base of any size with the full posterior, out of core, to Parquet.

:func:`cbcv.clv.customer_clv` holds a ``(draws × customers)`` block per chunk and one pandas row
per customer: right for CDNOW, too slow and too large for ten million customers. This module
gives the same quantities with work that grows with the number of *distinct summaries*, using
two exact identities:

1. Every prediction of the frequency models (BG/NBD, MBG/NBD, Pareto/NBD) factors as
   ``P(alive | x, t_x, T) × f(x, T)``: the conditional expectation and DERT given alive depend
   on the customer's history only through ``x`` and ``T`` (:func:`cbcv.predict.dert_given_alive`,
   :func:`cbcv.predict.expected_given_alive`). ``f`` is evaluated once per distinct ``(x, T)``
   pair and per draw, P(alive) (closed form) once per distinct ``(x, t_x, T)`` key.
2. The gamma-gamma expected spend is linear in the customer's mean repeat spend ``z``
   (Fader, Hardie & Lee 2005, "RFM and CLV", eq. 5): ``E[Z | x, z] = A(x) + B(x) z`` with
   ``A = pγ/(px + q − 1)`` and ``B = px/(px + q − 1)`` (``B = 0`` without repeat purchases).

Hence, with ``m`` the margin and ``D`` DERT of draw ``d``, customer ``i``'s CLV is
``m_d D_d(k_i) (A_d(x_i) + B_d(x_i) z_i)``, its posterior mean is ``u_k + v_k z_i`` with
``u_k = mean_d(m D A)``, ``v_k = mean_d(m D B)``, and the per-draw total over any group of
customers is ``Σ_k m_d D_d(k) (A_d n_gk + B_d S_gk)``, where ``n_gk`` counts the group's customers
with key ``k`` and ``S_gk`` sums their ``z``. DuckDB computes the counts and sums out of core;
numpy evaluates the (x, T) factors once per distinct pair (:func:`pair_values`; for BG/NBD by
Chebyshev interpolation over each x's T, :data:`DERT_GRID` points), then the draws per key in
chunks of at most ``max_bytes``; the per-customer table
streams from DuckDB through numpy to a Parquet file chunk by chunk. Totals, group totals
(cohort, value decile), concentration and the P(alive) histogram use every draw; only the
per-customer interval (``clv_low``, ``clv_median``, ``clv_high``) is computed from
``interval_draws`` evenly spaced draws (all of them when there are fewer), since a quantile needs
the whole ``(draws × customers)`` block. Pairing of the purchase and spend posteriors is that of
:mod:`cbcv.clv` (draw ``d`` with draw ``d``).

Two passes over the keys: the first gives the per-key means (and so each customer's posterior
mean CLV, its rank and value decile); the second the value-decile and top-customer totals per
draw and the per-customer table. The output is ordered by key (customers with the same summary
are adjacent), not by customer id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit
from scipy import sparse

from cbcv import predict as P
from cbcv.clv import CLVTables, log_bins, lorenz_frame
from cbcv.core.cache import atomic_write_json
from cbcv.core.discount import continuous_rate
from cbcv.core.draws import N_DECILES, per_draw
from cbcv.core.errors import CbcvError, DataError
from cbcv.core.safe_csv import write_csv
from cbcv.data._sql import first_line, ident, literal, scratch_connection
from cbcv.models.base import CLVModel

#: Draws used for each customer's interval (means and all totals use every draw).
INTERVAL_DRAWS = 400
#: Working memory of one chunk of keys (bytes).
MAX_BYTES = 256 * 2**20
#: Customers per Parquet row group / interval block.
CUSTOMER_CHUNK = 250_000
P_ALIVE_BINS = 10
#: Points of the concentration (Lorenz) curve read back from the per-customer file.
LORENZ_POINTS = 2001
KEY = ("x", "t_x", "T")


@dataclass(frozen=True)
class ScoringDraws:
    """Everything scoring needs from the posteriors and the financial inputs, as plain arrays
    (small: a few numbers per draw), so it can be shipped to workers (e.g. a Spark broadcast).

    ``freq``: the purchase model's name; ``params``: its parameters, ``(draws, 1)`` each;
    ``spend``: gamma-gamma ``p``, ``q``, ``gamma``, ``(draws, 1)`` each; ``margin`` and ``delta``
    (continuous discount rate per time unit): ``(draws,)``.
    """

    freq: str
    params: dict[str, np.ndarray]
    spend: dict[str, np.ndarray]
    margin: np.ndarray
    delta: np.ndarray
    time_unit: str

    @property
    def n_draws(self) -> int:
        return int(self.margin.size)

    @classmethod
    def from_models(
        cls,
        freq_model: CLVModel,
        spend_model: CLVModel,
        *,
        margin: Any,
        annual_discount_rate: Any,
        time_unit: str,
        max_draws: int | None = None,
    ) -> ScoringDraws:
        """Pair the two posteriors (thinned evenly to the smaller of the two and ``max_draws``);
        ``margin`` and ``annual_discount_rate`` a number or one value per draw."""
        if spend_model.name != "gamma_gamma":
            raise CbcvError(f"spend model must be gamma_gamma, got {spend_model.name!r}")
        name = P._frequency(freq_model)
        n = min(len(next(iter(m.draws().values()))) for m in (freq_model, spend_model))
        if max_draws is not None:
            n = min(n, int(max_draws))
        delta = per_draw(continuous_rate(annual_discount_rate, time_unit), n, "annual_discount_rate")
        if np.any(delta <= 0):
            raise CbcvError("DERT needs a positive discount rate in every draw")
        return cls(
            freq=name,
            params=P.posterior_draws(freq_model, n),
            spend=P.posterior_draws(spend_model, n),
            margin=per_draw(margin, n, "margin"),
            delta=delta,
            time_unit=time_unit,
        )

    def thinned(self, n: int) -> ScoringDraws:
        """The same draws thinned evenly to at most ``n``."""
        if n >= self.n_draws:
            return self
        idx = np.linspace(0, self.n_draws - 1, n).round().astype(int)
        return ScoringDraws(
            freq=self.freq,
            params={k: v[idx] for k, v in self.params.items()},
            spend={k: v[idx] for k, v in self.spend.items()},
            margin=self.margin[idx],
            delta=self.delta[idx],
            time_unit=self.time_unit,
        )


@dataclass(frozen=True)
class KeyValues:
    """Per draw and key of one chunk: P(alive), DERT, expected transactions (or None) and the
    CLV coefficients ``U = m D A`` and ``V = m D B`` (CLV = U + V z), all ``(draws, keys)``;
    ``A``, ``B`` the spend coefficients."""

    p_alive: np.ndarray
    dert: np.ndarray
    expected: np.ndarray | None
    A: np.ndarray
    B: np.ndarray
    U: np.ndarray
    V: np.ndarray


#: Chebyshev points per x for DERT given alive of BG/NBD and MBG/NBD (see
#: :func:`cbcv.predict.dert_given_alive`).
DERT_GRID = 16


@dataclass(frozen=True)
class PairValues:
    """The (x, T)-dependent factors of the predictions, per draw and distinct pair: DERT and
    (with a horizon) expected transactions given alive, ``(draws, pairs)``; ``index`` gives each
    key's pair."""

    index: np.ndarray
    dert: np.ndarray
    expected: np.ndarray | None


def pair_values(
    draws: ScoringDraws,
    x: np.ndarray,
    T: np.ndarray,
    *,
    horizon: float | None = None,
    max_bytes: int = MAX_BYTES,
    grid: int | None = DERT_GRID,
) -> PairValues:
    """Evaluate the (x, T) factors once per distinct pair (1-d ``x``, ``T`` of the keys), in
    blocks of whole x values so that each x's T can be interpolated (``grid``)."""
    pairs, index = np.unique(np.stack([x, T]), axis=1, return_inverse=True)
    px, pT = pairs[0], pairs[1]
    n_draws, n_pairs = draws.n_draws, pairs.shape[1]
    dert = np.empty((n_draws, n_pairs))
    expected = np.empty((n_draws, n_pairs)) if horizon is not None else None
    starts = np.flatnonzero(np.r_[True, px[1:] != px[:-1]])
    bounds = np.r_[starts, n_pairs]
    per_x = (grid or 64) * 8 * (P._TEMPS + 8 * P.BG_DERT_NODES) * n_draws
    step = max(1, int(max_bytes // max(per_x, 1)))
    rules: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(0, len(starts), step):
        cols = slice(int(bounds[i]), int(bounds[min(i + step, len(starts))]))
        bx, bT = px[None, cols], pT[None, cols]
        dert[:, cols] = P.dert_given_alive(draws.freq, draws.params, bx, bT, draws.delta[:, None], rules, grid=grid)
        if expected is not None:
            expected[:, cols] = P.expected_given_alive(draws.freq, float(horizon), draws.params, bx, bT)
    return PairValues(index=np.asarray(index).ravel(), dert=dert, expected=expected)


def key_values(
    draws: ScoringDraws,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    *,
    horizon: float | None = None,
    pairs: PairValues | None = None,
    index: np.ndarray | None = None,
) -> KeyValues:
    """Predictions for the keys ``(x, t_x, T)`` (1-d arrays), per draw (see the module notes).
    ``pairs``: the (x, T) factors when already evaluated (:func:`pair_values`), with ``index``
    the keys' columns in them; otherwise they are evaluated here. The products run in one
    compiled loop (:func:`clv_terms`: on the scale benchmark's 1M base, cProfile of the score
    stage, 7.6 s over both passes of 722,596 keys × 1,000 draws, where the NumPy products took
    17.7 s of the function's own time)."""
    p = draws.params
    alive = P._p_alive(draws.freq, p, {"x": x[None, :], "t_x": t_x[None, :], "T": T[None, :]})
    if pairs is None:
        pairs = pair_values(draws, x, T, horizon=horizon, grid=None)
        index = pairs.index
    assert index is not None
    factor = pairs.expected if horizon is not None else None
    dert, A, B, U, V, expected = clv_terms(alive, pairs.dert, factor, index, x, draws.spend, draws.margin)
    return KeyValues(alive, dert, expected, A, B, U, V)


@njit(cache=True)
def _clv_terms(alive, pair_dert, pair_expected, index, x, p, q, gamma, margin, with_expected):  # type: ignore[no-untyped-def]
    n_draws, n_keys = alive.shape
    dert, A, B = np.empty((n_draws, n_keys)), np.empty((n_draws, n_keys)), np.empty((n_draws, n_keys))
    U, V = np.empty((n_draws, n_keys)), np.empty((n_draws, n_keys))
    expected = np.empty((n_draws, n_keys if with_expected else 0))
    for d in range(n_draws):
        for k in range(n_keys):
            j = index[k]
            dd = alive[d, k] * pair_dert[d, j]
            denom = p[d] * x[k] + q[d] - 1.0
            a_ = p[d] * gamma[d] / denom
            b_ = p[d] * x[k] / denom
            md = margin[d] * dd
            dert[d, k], A[d, k], B[d, k], U[d, k], V[d, k] = dd, a_, b_, md * a_, md * b_
            if with_expected:
                expected[d, k] = alive[d, k] * pair_expected[d, j]
    return dert, A, B, U, V, expected


def clv_terms(
    alive: np.ndarray,
    pair_dert: np.ndarray,
    pair_expected: np.ndarray | None,
    index: np.ndarray,
    x: np.ndarray,
    spend: dict[str, np.ndarray],
    margin: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per (draw, key): DERT = P(alive) × the key's pair factor (``pair_dert[:, index]``), the
    gamma-gamma coefficients A = pγ/(px + q − 1), B = px/(px + q − 1), and U = m·DERT·A,
    V = m·DERT·B; with ``pair_expected``, expected transactions = P(alive) × its factor."""
    with_expected = pair_expected is not None
    f = np.ascontiguousarray
    out = _clv_terms(
        f(alive, dtype=np.float64), f(pair_dert, dtype=np.float64),
        f(pair_expected if with_expected else np.zeros((1, 1)), dtype=np.float64),
        f(index, dtype=np.int64), f(x, dtype=np.float64),
        *(f(np.ravel(spend[k]), dtype=np.float64) for k in ("p", "q", "gamma")),
        f(np.ravel(margin), dtype=np.float64), with_expected,
    )
    return (*out[:5], out[5] if with_expected else None)


#: float64 temporaries per (draw, key) in a pass over the keys (the pair factors are ready).
KEY_TEMPS = 40


def _key_chunks(n_keys: int, draws: ScoringDraws, max_bytes: int) -> list[slice]:
    step = max(1, int(max_bytes // (8 * KEY_TEMPS * draws.n_draws)))
    return [slice(i, min(i + step, n_keys)) for i in range(0, n_keys, step)]


@dataclass(frozen=True)
class KeyPass:
    """The first pass over the keys: per-key means and the per-draw totals."""

    means: pd.DataFrame  # key columns + n, sz + p_alive_mean, dert_mean, expected_mean, a, b, u, v
    total: np.ndarray  # (draws,) CLV of all customers
    expected_total: np.ndarray | None  # (draws,) expected transactions of all customers
    p_alive_counts: np.ndarray  # (draws, bins) customers per P(alive) bin
    group_draws: dict[str, np.ndarray]  # name -> (draws, groups)


def key_pass(
    draws: ScoringDraws,
    keys: pd.DataFrame,
    *,
    horizon: float | None = None,
    groups: dict[str, tuple[sparse.csc_matrix, sparse.csc_matrix]] | None = None,
    p_alive_bins: int = P_ALIVE_BINS,
    max_bytes: int = MAX_BYTES,
    progress: Callable[[int, int], None] | None = None,
    pairs: PairValues | None = None,
) -> KeyPass:
    """Evaluate every key (``x``, ``t_x``, ``T``, ``n`` customers, ``sz`` their summed mean
    repeat spend) over every draw. ``groups`` maps a name to sparse ``(groups × keys)`` matrices
    of customer counts and of summed ``z``, whose per-draw CLV totals are returned."""
    x, t_x, T = (keys[c].to_numpy(dtype=float) for c in KEY)
    n = keys["n"].to_numpy(dtype=float)
    sz = keys["sz"].to_numpy(dtype=float)
    groups = groups or {}
    n_draws, n_keys = draws.n_draws, len(keys)
    stats = {k: np.empty(n_keys) for k in ("p_alive_mean", "dert_mean", "a", "b", "u", "v")}
    if horizon is not None:
        stats["expected_mean"] = np.empty(n_keys)
    total = np.zeros(n_draws)
    exp_total = np.zeros(n_draws) if horizon is not None else None
    pa_counts = np.zeros((n_draws, p_alive_bins))
    sums = {g: np.zeros((n_draws, gn.shape[0])) for g, (gn, _) in groups.items()}
    if pairs is None:
        pairs = pair_values(draws, x, T, horizon=horizon, max_bytes=max_bytes)
    chunks = _key_chunks(n_keys, draws, max_bytes)
    for j, c in enumerate(chunks):
        kv = key_values(draws, x[c], t_x[c], T[c], horizon=horizon, pairs=pairs, index=pairs.index[c])
        if not (np.isfinite(kv.U).all() and np.isfinite(kv.V).all()):
            bad = c.start + int(np.argmin(np.isfinite(kv.U + kv.V).all(axis=0)))
            raise DataError(f"scoring: CLV not finite for x={x[bad]:g}, t_x={t_x[bad]:g}, T={T[bad]:g}")
        total += kv.U @ n[c] + kv.V @ sz[c]
        for g, (gn, gs) in groups.items():
            sums[g] += _group_sums(gn, gs, c, kv.U, kv.V)
        for name, arr in (("p_alive_mean", kv.p_alive), ("dert_mean", kv.dert), ("a", kv.A),
                          ("b", kv.B), ("u", kv.U), ("v", kv.V)):
            stats[name][c] = arr.mean(axis=0)
        if kv.expected is not None and exp_total is not None:
            stats["expected_mean"][c] = kv.expected.mean(axis=0)
            exp_total += kv.expected @ n[c]
        idx = np.clip((kv.p_alive * p_alive_bins).astype(np.int64), 0, p_alive_bins - 1)
        for b in range(p_alive_bins):
            pa_counts[:, b] += (idx == b) @ n[c]
        if progress is not None:
            progress(j + 1, len(chunks))
    means = keys.reset_index(drop=True).copy()
    for k, v in stats.items():
        means[k] = v
    return KeyPass(means, total, exp_total, pa_counts, sums)


@dataclass(frozen=True)
class ScoredBase(CLVTables):
    """Result of :func:`score_customers`: per-draw figures in memory, customers on disk.

    * ``path``: the per-customer Parquet file (see :data:`OUTPUT_COLUMNS`);
    * ``total``: ``(draws,)`` total residual CLV of the base (the existing-customer equity);
    * ``expected_total``: ``(draws,)`` expected transactions in the horizon (when given);
    * ``group_draws``: per grouping (``value_decile`` and each ``group_by`` column) a
      ``(draws × groups)`` DataFrame of CLV totals; ``group_counts`` their customers;
    * ``top_share_draws``: ``(draws × fractions)`` share of the total held by the top customers;
    * ``p_alive_counts``: ``(draws × bins)`` customers per P(alive) bin; ``p_alive_by_mean``
      customers per bin of their posterior-mean P(alive).
    """

    path: Path
    n_customers: int
    n_keys: int
    n_pairs: int
    total: np.ndarray
    expected_total: np.ndarray | None
    group_draws: dict[str, pd.DataFrame]
    group_counts: dict[str, pd.Series]
    top_share_draws: pd.DataFrame
    p_alive_counts: np.ndarray
    p_alive_by_mean: np.ndarray
    interval: float = 0.9
    meta: dict[str, Any] = field(default_factory=dict)

    def _group_sizes(self, column: str) -> pd.Series:
        return self.group_counts[column]

    def _p_alive_by_mean(self) -> np.ndarray:
        return self.p_alive_by_mean.astype(np.int64)

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

    def lorenz(self, points: int = LORENZ_POINTS) -> pd.DataFrame:
        """As :meth:`cbcv.clv.CLVTables.lorenz`, at ``points`` evenly spaced ranks (every rank
        for a smaller base), from a running sum in DuckDB over the Parquet file."""
        n = self.n_customers
        ranks = np.unique(np.linspace(0, n, min(points, n + 1)).round().astype(np.int64))
        rel = f"read_parquet({literal(str(self.path))})"
        with duckdb.connect() as con:
            con.register("wanted", pd.DataFrame({"rank": ranks[ranks > 0]}))
            cum = con.execute(
                f"SELECT c.rank, c.cum FROM (SELECT rank, sum(clv_mean) OVER (ORDER BY rank) AS cum FROM {rel}) c "
                "JOIN wanted USING (rank) ORDER BY c.rank"
            ).fetchnumpy()["cum"]
        return lorenz_frame(ranks, np.r_[0.0, np.asarray(cum, dtype=float)], n)

    def mean_clv_histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`cbcv.clv.CLVTables.mean_clv_histogram`, counted in DuckDB over the Parquet
        file with the same comparisons against the edges as ``numpy.histogram``."""
        rel = f"read_parquet({literal(str(self.path))})"
        with duckdb.connect() as con:
            lo, hi = con.execute(f"SELECT min(clv_mean) FILTER (WHERE clv_mean > 0), max(clv_mean) FROM {rel}").fetchone()
            edges = log_bins(None if lo is None else float(lo), float(hi), bins)
            v = f"greatest(least(clv_mean, {float(edges[-1])!r}), {float(edges[0])!r})"
            below = ", ".join(f"count(*) FILTER (WHERE {v} < {float(e)!r})" for e in edges[1:-1])
            cumulative = con.execute(f"SELECT {below}, count(*) FROM {rel}").fetchone()
        return edges, np.diff(np.concatenate([[0], np.asarray(cumulative, dtype=np.int64)]))

    def top_customers(self, n: int = 20) -> pd.DataFrame:
        """The ``n`` most valuable customers, without their ids (read from the Parquet file)."""
        cols = ["rank", "cohort", "x", "clv_mean", "clv_low", "clv_high", "p_alive_mean", "spend_mean", "dert_mean"]
        with duckdb.connect() as con:
            have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(self.path))})").fetchall()]
            sel = ", ".join(ident(c) for c in cols if c in have)
            return con.execute(
                f"SELECT {sel} FROM read_parquet({literal(str(self.path))}) ORDER BY rank LIMIT {int(n)}"
            ).df()


#: Columns of the per-customer Parquet file (``cohort`` and ``expected_mean`` when available).
OUTPUT_COLUMNS = (
    "customer_id", "cohort", "x", "t_x", "T", "mean_repeat_spend", "clv_mean", "clv_median",
    "clv_low", "clv_high", "p_alive_mean", "expected_mean", "dert_mean", "spend_mean", "rank",
    "value_decile",
)


def _group_matrix(con: duckdb.DuckDBPyConnection, label: str, n_keys: int, where: str = "") -> tuple[list[Any], sparse.csc_matrix, sparse.csc_matrix]:
    """Sparse (groups × keys) customer counts and summed z of ``label`` over table ``cust``."""
    agg = con.execute(
        f"SELECT {label} AS g, key, count(*) AS n, sum(z) AS sz FROM cust {where} GROUP BY ALL"
    ).df()
    codes, labels = pd.factorize(agg["g"], sort=True, use_na_sentinel=False)
    shape = (len(labels), n_keys)
    key = agg["key"].to_numpy(dtype=np.int64)
    gn = sparse.csc_matrix((agg["n"].to_numpy(dtype=float), (codes, key)), shape=shape)
    gs = sparse.csc_matrix((agg["sz"].to_numpy(dtype=float), (codes, key)), shape=shape)
    return list(labels), gn, gs


def _group_sums(gn: sparse.csc_matrix, gs: sparse.csc_matrix, c: slice, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """(draws, groups) CLV totals over the keys ``c`` of a chunk: U @ customers + V @ summed z,
    with the chunk's (groups × keys) block made dense (a chunk has a few hundred keys)."""
    return U @ gn[:, c].toarray().T + V @ gs[:, c].toarray().T


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


def score_customers(
    freq_model: CLVModel | None,
    spend_model: CLVModel | None,
    summaries: str | os.PathLike[str] | pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    margin: Any = 1.0,
    annual_discount_rate: Any = 0.1,
    time_unit: str = "week",
    horizon: float | None = None,
    max_draws: int | None = None,
    draws: ScoringDraws | None = None,
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
    customer in ``summaries`` (a Parquet file of :func:`cbcv.data.streaming.write_summaries` or
    a DataFrame with ``customer_id``, ``x``, ``t_x``, ``T``, ``mean_repeat_spend`` and optional
    ``cohort``), written to the Parquet file ``out``; see the module notes.

    Pass the fitted models (with ``margin``, ``annual_discount_rate``, ``time_unit`` and
    ``max_draws``, as in :func:`cbcv.clv.customer_clv`) or ready ``draws``. ``group_by``
    defaults to ``cohort`` when the summaries have it.
    """
    start = time.perf_counter()
    if draws is None:
        if freq_model is None or spend_model is None:
            raise CbcvError("score_customers: pass the two fitted models or draws=")
        draws = ScoringDraws.from_models(
            freq_model, spend_model, margin=margin, annual_discount_rate=annual_discount_rate,
            time_unit=time_unit, max_draws=max_draws,
        )
    fractions = [float(f) for f in top_fractions]
    if any(not 0 < f <= 1 for f in fractions):
        raise ValueError("top_fractions must be in (0, 1]")
    say = progress or (lambda _msg: None)
    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch_connection(memory_limit=memory_limit, threads=threads) as con:
        if isinstance(summaries, pd.DataFrame):
            con.register("summary_input", summaries)
            relation, name = "summary_input", "summaries DataFrame"
        else:
            src = Path(summaries)
            if not src.is_file():
                raise DataError(f"{src.name}: file not found ({src})")
            relation, name = f"read_parquet({literal(str(src))})", src.name
        try:
            have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        except duckdb.Error as exc:
            raise DataError(f"{name}: cannot read ({first_line(exc)})") from exc
        needed = ["customer_id", *KEY, "mean_repeat_spend"]
        missing = [c for c in needed if c not in have]
        if missing:
            raise DataError(f"{name}: missing column(s) {', '.join(missing)}; columns found: {', '.join(have)}")
        if group_by is None:
            group_by = ("cohort",) if "cohort" in have else ()
        for col in group_by:
            if col not in have:
                raise DataError(f"{name}: no column {col!r} to group by")
        extra = [c for c in dict.fromkeys(("cohort", *group_by)) if c in have]
        carried = "".join(f", {ident(c)}" for c in extra)
        say("scoring: counting distinct summaries")
        con.execute(
            f"""CREATE TABLE src AS SELECT row_number() OVER () AS row, CAST(customer_id AS VARCHAR) AS customer_id,
                CAST(x AS DOUBLE) AS x, CAST(t_x AS DOUBLE) AS t_x, CAST("T" AS DOUBLE) AS "T",
                CAST(mean_repeat_spend AS DOUBLE) AS mean_repeat_spend,
                CASE WHEN x > 0 THEN coalesce(CAST(mean_repeat_spend AS DOUBLE), 0) ELSE 0 END AS z
                {carried} FROM {relation}"""
        )
        keys = con.execute(
            'SELECT x, t_x, "T", count(*) AS n, sum(z) AS sz FROM src GROUP BY x, t_x, "T" '
            'ORDER BY x, "T", t_x'
        ).df()
        if keys.empty:
            raise DataError(f"{name}: no customers to score")
        bad = keys[[*KEY]].isna().any(axis=1) | (keys["x"] < 0) | (keys["t_x"] > keys["T"]) | (keys["t_x"] < 0)
        if bad.any():
            row = keys[bad].iloc[0]
            raise DataError(f"{name}: invalid summary x={row['x']}, t_x={row['t_x']}, T={row['T']} (need 0 ≤ t_x ≤ T)")
        keys.insert(0, "key", np.arange(len(keys), dtype=np.int64))
        con.register("keys_df", keys[["key", *KEY]])
        con.execute(
            'CREATE TABLE cust AS SELECT s.*, k.key FROM src s JOIN keys_df k '
            'ON s.x = k.x AND s.t_x = k.t_x AND s."T" = k."T"'
        )
        con.execute("DROP TABLE src")
        n_cust = int(con.execute("SELECT count(*) FROM cust").fetchone()[0])  # type: ignore[index]
        n_keys = len(keys)
        groups = {c: _group_matrix(con, ident(c), n_keys) for c in group_by}

        say(f"scoring: DERT over the distinct (x, T) pairs × {draws.n_draws} draws")
        pairs = pair_values(
            draws, keys["x"].to_numpy(dtype=float), keys["T"].to_numpy(dtype=float),
            horizon=horizon, max_bytes=max_bytes,
        )
        say(f"scoring: pass 1 over {n_keys:,} distinct summaries × {draws.n_draws} draws")
        first = key_pass(
            draws, keys, horizon=horizon, groups={c: (g[1], g[2]) for c, g in groups.items()},
            p_alive_bins=p_alive_bins, max_bytes=max_bytes, pairs=pairs,
        )
        kstats = first.means[["key", "p_alive_mean", "dert_mean", "a", "b", "u", "v",
                              *(["expected_mean"] if horizon is not None else [])]]
        con.register("kstats", kstats)
        n_top = [max(1, int(np.ceil(f * n_cust - 1e-9))) for f in fractions]
        con.execute(
            """CREATE TABLE ranked AS
                SELECT c.*, k.u + k.v * c.z AS clv_mean,
                       row_number() OVER (ORDER BY k.u + k.v * c.z DESC, c.row) AS rank
                FROM cust c JOIN kstats k USING (key)"""
        )
        con.execute("DROP TABLE cust")
        con.execute(
            f"CREATE VIEW cust AS SELECT *, ({N_DECILES} * (rank - 1)) // {n_cust} + 1 AS value_decile FROM ranked"
        )
        dec_labels, dec_n, dec_s = _group_matrix(con, "value_decile", n_keys)
        second_groups = {"value_decile": (dec_n, dec_s)}
        for f, k in zip(fractions, n_top, strict=True):
            _, tn, ts = _group_matrix(con, "1", n_keys, f"WHERE rank <= {k}")
            second_groups[f"top {100 * f:g}%"] = (tn, ts)
        by_mean = con.execute(
            f"SELECT least(CAST(floor(p_alive_mean * {p_alive_bins}) AS BIGINT), {p_alive_bins - 1}) AS b, "
            "count(*) FROM cust JOIN kstats USING (key) GROUP BY 1"
        ).fetchall()
        pa_by_mean = np.zeros(p_alive_bins)
        for b, cnt in by_mean:
            pa_by_mean[int(b)] = cnt

        say(f"scoring: pass 2, writing {n_cust:,} customers to {path.name}")
        sums2 = _second_pass(
            con, draws, keys, second_groups, path, extra, horizon, interval, interval_draws, max_bytes,
            pairs,
        )
    group_draws = {
        c: pd.DataFrame(first.group_draws[c], columns=pd.Index(labels, name=c))
        for c, (labels, _, _) in groups.items()
    }
    group_counts = {c: pd.Series(np.asarray(gn.sum(axis=1)).ravel(), index=labels) for c, (labels, gn, _) in groups.items()}
    dec_cols = pd.Index([int(v) for v in dec_labels], name="value_decile")
    group_draws["value_decile"] = pd.DataFrame(sums2["value_decile"], columns=dec_cols)
    group_counts["value_decile"] = pd.Series(np.asarray(dec_n.sum(axis=1)).ravel(), index=dec_cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = {
            f"top {100 * f:g}%": np.where(first.total > 0, sums2[f"top {100 * f:g}%"][:, 0] / first.total, np.nan)
            for f in fractions
        }
    n_pairs = int(pairs.dert.shape[1])
    meta = {
        "purchase_model": draws.freq,
        "n_draws": draws.n_draws,
        "interval_draws": min(interval_draws, draws.n_draws),
        "time_unit": draws.time_unit,
        "horizon": horizon,
        "seconds": time.perf_counter() - start,
        "pairing": "draw d of the purchase model with draw d of the spend model (independent posteriors)",
    }
    return ScoredBase(
        path=path, n_customers=n_cust, n_keys=n_keys, n_pairs=n_pairs, total=first.total,
        expected_total=first.expected_total, group_draws=group_draws, group_counts=group_counts,
        top_share_draws=pd.DataFrame(shares), p_alive_counts=first.p_alive_counts,
        p_alive_by_mean=pa_by_mean, interval=interval, meta=meta,
    )


def _second_pass(
    con: duckdb.DuckDBPyConnection,
    draws: ScoringDraws,
    keys: pd.DataFrame,
    groups: dict[str, tuple[sparse.csc_matrix, sparse.csc_matrix]],
    path: Path,
    extra: list[str],
    horizon: float | None,
    interval: float,
    interval_draws: int,
    max_bytes: int,
    pairs: PairValues,
) -> dict[str, np.ndarray]:
    """Group totals that need the ranks, and the per-customer table with intervals."""
    x, t_x, T = (keys[c].to_numpy(dtype=float) for c in KEY)
    n = keys["n"].to_numpy(dtype=np.int64)
    sub = np.linspace(0, draws.n_draws - 1, min(interval_draws, draws.n_draws)).round().astype(int)
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    sums = {g: np.zeros((draws.n_draws, gn.shape[0])) for g, (gn, _) in groups.items()}
    chunks = _key_chunks(len(keys), draws, max_bytes)
    cols = ["customer_id", *[c for c in extra if c == "cohort"], *KEY, "mean_repeat_spend", "z", "key", "rank",
            "value_decile", "p_alive_mean", "dert_mean", "a", "b", "u", "v",
            *(["expected_mean"] if horizon is not None else [])]
    sql = f"SELECT {', '.join(ident(c) for c in cols)} FROM cust JOIN kstats USING (key) ORDER BY key, rank"
    sizes = [int(n[c].sum()) for c in chunks]
    writer: pq.ParquetWriter | None = None
    try:
        for c, table in zip(chunks, _batches(con, sql, sizes), strict=True):
            kv = key_values(draws, x[c], t_x[c], T[c], pairs=pairs, index=pairs.index[c])
            for g, (gn, gs) in groups.items():
                sums[g] += _group_sums(gn, gs, c, kv.U, kv.V)
            frame = table.to_pandas()
            local = frame["key"].to_numpy(dtype=np.int64) - c.start
            z = frame["z"].to_numpy(dtype=float)
            U, V = kv.U[sub], kv.V[sub]
            qs = np.empty((3, len(frame)))
            step = max(1, int(max_bytes // (8 * 4 * len(sub))))
            for i in range(0, len(frame), step):
                block = U[:, local[i : i + step]] + V[:, local[i : i + step]] * z[None, i : i + step]
                qs[:, i : i + step] = np.quantile(block, [0.5, lo, hi], axis=0)
            out = pd.DataFrame({k: frame[k] for k in ["customer_id", *[e for e in extra if e == "cohort"], *KEY, "mean_repeat_spend"]})
            out["clv_mean"] = frame["u"] + frame["v"] * z
            out["clv_median"], out["clv_low"], out["clv_high"] = qs[0], qs[1], qs[2]
            out["p_alive_mean"] = frame["p_alive_mean"]
            if horizon is not None:
                out["expected_mean"] = frame["expected_mean"]
            out["dert_mean"] = frame["dert_mean"]
            out["spend_mean"] = frame["a"] + frame["b"] * z
            out["rank"] = frame["rank"].astype("int64")
            out["value_decile"] = frame["value_decile"].astype("int64")
            arrow = pa.Table.from_pandas(out, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, arrow.schema, compression="zstd")
            writer.write_table(arrow)
    finally:
        if writer is not None:
            writer.close()
    return sums


# -- Spark ---------------------------------------------------------------------------------------
_KEY_STATS = ("p_alive_mean", "dert_mean", "expected_mean", "a", "b", "u", "v")


@dataclass(frozen=True)
class SparkScored:
    """Result of :func:`score_spark`: ``customers`` is a lazy Spark DataFrame (the summary's
    ``customer_id``, ``cohort`` when present, ``x``, ``t_x``, ``T``, then ``clv_mean``,
    ``p_alive_mean``, ``expected_mean`` (with a horizon), ``dert_mean``, ``spend_mean``);
    ``total`` and ``expected_total`` are the per-draw totals, collected."""

    customers: Any
    total: np.ndarray
    expected_total: np.ndarray | None
    n_keys: int


def score_spark(
    spark: Any,
    summaries: Any,
    draws: ScoringDraws,
    *,
    horizon: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> SparkScored:
    """:func:`score_customers` on Spark, for bases spread over a cluster.

    ``summaries``: a Spark DataFrame with the summary columns (e.g. from
    :func:`cbcv.data.spark.customer_summary_spark`). The distinct keys and their counts are
    aggregated in Spark; ``mapInPandas`` evaluates each partition of keys over every draw with
    :func:`key_pass` (the posterior, a few numbers per draw, is broadcast); the per-key means are
    joined back to the customers. Per-draw totals come back to the driver, one array per
    partition. Ranks, value deciles and per-customer intervals need a global order or the draws
    per customer: use :func:`score_customers` on the Parquet output for those.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T_

    cols = summaries.columns
    missing = [c for c in ("customer_id", *KEY, "mean_repeat_spend") if c not in cols]
    if missing:
        raise DataError(f"Spark summaries: missing column(s) {', '.join(missing)}")
    z = F.when(F.col("x") > 0, F.coalesce(F.col("mean_repeat_spend").cast("double"), F.lit(0.0))).otherwise(F.lit(0.0))
    cust = summaries.select(
        "customer_id", *(["cohort"] if "cohort" in cols else []),
        *[F.col(c).cast("double").alias(c) for c in KEY], z.alias("z"),
    )
    keys = cust.groupBy(*KEY).agg(F.count(F.lit(1)).cast("double").alias("n"), F.sum("z").alias("sz"))
    shipped = spark.sparkContext.broadcast(draws)
    stats = [s for s in _KEY_STATS if horizon is not None or s != "expected_mean"]
    schema = T_.StructType(
        [T_.StructField(c, T_.DoubleType()) for c in (*KEY, *stats)]
        + [T_.StructField("total", T_.ArrayType(T_.DoubleType())),
           T_.StructField("expected_total", T_.ArrayType(T_.DoubleType()))]
    )

    def evaluate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        d = shipped.value
        for batch in batches:
            if batch.empty:
                continue
            res = key_pass(d, batch.reset_index(drop=True), horizon=horizon, max_bytes=max_bytes)
            out = res.means[[*KEY, *stats]].copy()
            out["total"] = None
            out["expected_total"] = None
            extra = {c: [np.nan] for c in (*KEY, *stats)}
            extra["total"] = [res.total.tolist()]
            extra["expected_total"] = [None if res.expected_total is None else res.expected_total.tolist()]
            yield pd.concat([out, pd.DataFrame(extra)], ignore_index=True)

    evaluated = keys.mapInPandas(evaluate, schema).cache()
    try:
        parts = evaluated.where(F.col("total").isNotNull()).select("total", "expected_total").collect()
        total = np.sum([np.asarray(r["total"]) for r in parts], axis=0)
        expected_total = (
            np.sum([np.asarray(r["expected_total"]) for r in parts], axis=0) if horizon is not None else None
        )
        key_stats = evaluated.where(F.col("total").isNull()).drop("total", "expected_total")
        n_keys = key_stats.count()
    finally:
        shipped.unpersist()
    joined = cust.join(F.broadcast(key_stats) if n_keys < 1_000_000 else key_stats, on=list(KEY))
    customers = joined.select(
        "customer_id", *(["cohort"] if "cohort" in cols else []), *KEY,
        (F.col("u") + F.col("v") * F.col("z")).alias("clv_mean"),
        "p_alive_mean", *(["expected_mean"] if horizon is not None else []), "dert_mean",
        (F.col("a") + F.col("b") * F.col("z")).alias("spend_mean"),
    )
    return SparkScored(customers=customers, total=total, expected_total=expected_total, n_keys=int(n_keys))
