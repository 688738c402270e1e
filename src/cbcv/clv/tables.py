"""The per-draw CLV tables of a scored customer base: :class:`CLVTables`.

One set of tables, whatever holds the customers: :class:`cbcv.clv.CustomerCLV` keeps its
per-customer table in memory, :class:`cbcv.clv.scoring.ScoredBase` in a Parquet file; both come
from the one scoring engine (:func:`cbcv.clv.scoring.score_base`). The per-draw figures (totals,
group totals, top-customer shares, P(alive) histogram) are small arrays held here; the tables
that need every customer (Lorenz curve, CLV histogram, most valuable customers) are one DuckDB
query over the per-customer relation, a registered DataFrame or a Parquet file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.draws import draw_stats, summarize_draws
from cbcv.core.errors import CbcvError
from cbcv.data._sql import ident

#: Bins of the P(alive) histogram.
P_ALIVE_BINS = 10
#: Points of the concentration (Lorenz) curve of a base on disk (every rank for a smaller base).
LORENZ_POINTS = 2001
#: Smallest edge of the CLV histogram (currency units): customers below it share the first bin.
MIN_CLV_EDGE = 0.01
#: Columns of the table of the most valuable customers (those present), never the customer id.
TOP_COLUMNS = ("rank", "cohort", "x", "clv_mean", "clv_low", "clv_high", "p_alive_mean", "spend_mean", "dert_mean")


def log_bins(min_positive: float | None, max_value: float, bins: int) -> np.ndarray:
    """``bins + 1`` log-spaced edges from the smallest positive value (at least
    :data:`MIN_CLV_EDGE`) to the largest (at least ten times the first edge)."""
    lo = max(min_positive if min_positive is not None else MIN_CLV_EDGE, MIN_CLV_EDGE)
    return np.geomspace(lo, max(max_value, lo * 10), bins + 1)


def lorenz_frame(ranks: np.ndarray, cumulative: np.ndarray, n: int) -> pd.DataFrame:
    """The curve of :meth:`CLVTables.lorenz` from the cumulative mean CLV at some ranks."""
    total = float(cumulative[-1])
    return pd.DataFrame({
        "customer_share": np.asarray(ranks, dtype=float) / n,
        "clv_share": np.asarray(cumulative, dtype=float) / total if total > 0 else np.zeros(len(ranks)),
    })


@dataclass(frozen=True, kw_only=True)
class CLVTables:
    """Per-draw CLV figures of a customer base and the tables made from them.

    * ``total``: ``(draws,)`` total residual CLV of the base (the existing-customer equity);
    * ``n_customers``: customers scored;
    * ``group_draws``: per grouping (``value_decile`` always, 1 = top 10% by posterior mean CLV,
      and each ``group_by`` column) a ``(draws × groups)`` DataFrame of CLV totals;
      ``group_counts`` the customers of each group;
    * ``top_share_draws``: ``(draws × fractions)`` share of the total held by the top customers
      (ranked by posterior mean CLV; columns ``"top 1%"``, ``"top 10%"``);
    * ``p_alive_counts``: ``(draws × bins)`` customers per P(alive) bin; ``p_alive_by_mean``
      customers per bin of their posterior-mean P(alive).

    A subclass says where the per-customer rows are (:meth:`customer_relation`): a table with
    ``rank`` (1 = most valuable), ``clv_mean`` and the columns of :data:`TOP_COLUMNS`.
    """

    total: np.ndarray
    n_customers: int
    group_draws: dict[str, pd.DataFrame]
    group_counts: dict[str, pd.Series]
    top_share_draws: pd.DataFrame
    p_alive_counts: np.ndarray
    p_alive_by_mean: np.ndarray
    interval: float = 0.9
    meta: dict[str, Any] = field(default_factory=dict)
    #: Points of :meth:`lorenz` by default (None: every rank).
    lorenz_points: ClassVar[int | None] = None

    def customer_relation(self, con: duckdb.DuckDBPyConnection) -> str:
        """SQL naming the per-customer rows on ``con`` (registering them there if need be)."""
        raise NotImplementedError

    @property
    def n_draws(self) -> int:
        return int(self.total.size)

    def totals(self) -> np.ndarray:
        """Total CLV of the base per draw, ``(draws,)``."""
        return self.total

    def summary(self, interval: float | None = None) -> pd.DataFrame:
        """Total and mean-per-customer CLV: median, mean, low, high."""
        return summarize_draws(
            {"total_clv": self.total, "clv_per_customer": self.total / self.n_customers},
            interval or self.interval,
        )

    def by(self, column: str, interval: float | None = None) -> pd.DataFrame:
        """CLV by group of ``column`` (``"value_decile"`` or a column passed in ``group_by``):
        customers, median, mean, low, high of the group's total, ``per_customer`` (mean / size)
        and ``share`` of the base's mean total (shares add to 1)."""
        if column not in self.group_draws:
            raise CbcvError(
                f"no grouping {column!r}; computed: {', '.join(self.group_draws)} "
                "(pass it in group_by)"
            )
        draws = self.group_draws[column]
        st = draw_stats(draws.to_numpy(), interval or self.interval)
        counts = self.group_counts[column]
        out = pd.DataFrame(st, index=draws.columns)
        out.insert(0, "customers", counts.reindex(draws.columns).fillna(0).astype(int).to_numpy())
        out["per_customer"] = out["mean"] / out["customers"].where(out["customers"] > 0)
        mean_total = float(self.total.mean())
        out["share"] = out["mean"] / mean_total if mean_total != 0 else np.nan
        out.index.name = column
        return out.reset_index()

    def by_cohort(self, interval: float | None = None) -> pd.DataFrame:
        """CLV by acquisition cohort (see :meth:`by`)."""
        return self.by("cohort", interval)

    def by_decile(self, interval: float | None = None) -> pd.DataFrame:
        """CLV by value decile, 1 = the top 10% by posterior mean CLV (see :meth:`by`)."""
        return self.by("value_decile", interval)

    def concentration(self, interval: float | None = None) -> pd.DataFrame:
        """Share of the total held by the top customers (ranked by posterior mean CLV): one row
        per fraction with the median, mean, low, high of the per-draw share."""
        out = summarize_draws(dict(self.top_share_draws.items()), interval or self.interval)
        out.index.name = "customers"
        return out.reset_index()

    def p_alive_distribution(self, interval: float | None = None) -> pd.DataFrame:
        """Histogram table of P(alive at the end of calibration): per bin of width 1/bins,
        ``customers`` by posterior-mean P(alive), the per-draw count (median, low, high) and
        ``share`` of customers (by posterior mean)."""
        bins = self.p_alive_counts.shape[1]
        edges = np.linspace(0.0, 1.0, bins + 1)
        by_mean = self.p_alive_by_mean.astype(np.int64)
        st = draw_stats(self.p_alive_counts, interval or self.interval)
        return pd.DataFrame(
            {
                "bin": [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)],
                "low_edge": edges[:-1],
                "high_edge": edges[1:],
                "customers": by_mean,
                "customers_median": st["median"],
                "customers_low": st["low"],
                "customers_high": st["high"],
                "share": by_mean / max(self.n_customers, 1),
            }
        )

    def lorenz(self, points: int | None = None) -> pd.DataFrame:
        """Cumulative share of customers (ranked by posterior mean CLV, most valuable first),
        ``customer_share``, against their cumulative share of the total posterior mean CLV,
        ``clv_share``, starting at (0, 0); at ``points`` evenly spaced ranks (default
        :attr:`lorenz_points`; every rank when None or for a smaller base), from a running sum
        in DuckDB."""
        n = self.n_customers
        points = points or self.lorenz_points or n + 1
        ranks = np.unique(np.linspace(0, n, min(points, n + 1)).round().astype(np.int64))
        with duckdb.connect() as con:
            rel = self.customer_relation(con)
            con.register("wanted", pd.DataFrame({"rank": ranks[ranks > 0]}))
            cum = con.execute(
                f"SELECT c.rank, c.cum FROM (SELECT rank, sum(clv_mean) OVER (ORDER BY rank) AS cum FROM {rel}) c "
                "JOIN wanted USING (rank) ORDER BY c.rank"
            ).fetchnumpy()["cum"]
        return lorenz_frame(ranks, np.r_[0.0, np.asarray(cum, dtype=float)], n)

    def mean_clv_histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """Customers by posterior-mean CLV: ``bins`` log-spaced bins (:func:`log_bins`) and the
        customers in each, values outside clipped into the end bins; counted in DuckDB with the
        same comparisons against the edges as ``numpy.histogram``."""
        with duckdb.connect() as con:
            rel = self.customer_relation(con)
            lo, hi = con.execute(f"SELECT min(clv_mean) FILTER (WHERE clv_mean > 0), max(clv_mean) FROM {rel}").fetchall()[0]
            edges = log_bins(None if lo is None else float(lo), float(hi), bins)
            v = f"greatest(least(clv_mean, {float(edges[-1])!r}), {float(edges[0])!r})"
            below = ", ".join(f"count(*) FILTER (WHERE {v} < {float(e)!r})" for e in edges[1:-1])
            cumulative = con.execute(f"SELECT {below}, count(*) FROM {rel}").fetchall()[0]
        return edges, np.diff(np.concatenate([[0], np.asarray(cumulative, dtype=np.int64)]))

    def top_customers(self, n: int = 20) -> pd.DataFrame:
        """The ``n`` most valuable customers by posterior mean CLV, **without their ids**: the
        columns of :data:`TOP_COLUMNS` that the per-customer rows have."""
        with duckdb.connect() as con:
            rel = self.customer_relation(con)
            have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
            sel = ", ".join(ident(c) for c in TOP_COLUMNS if c in have)
            return con.execute(f"SELECT {sel} FROM {rel} ORDER BY rank LIMIT {int(n)}").df()
