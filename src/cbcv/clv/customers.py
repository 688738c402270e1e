"""Residual CLV of a customer base held in memory: :func:`customer_clv` and :class:`CustomerCLV`.

The customers' summary DataFrame is registered with the one scoring engine
(:func:`cbcv.clv.scoring.score_base`) and the per-customer rows come back into memory, in the
summary's order, beside its attribute columns; each customer's interval uses every draw. For a
small base the full ``(draws, customers)`` CLV array can be kept too (``keep_draws``; by default
up to :data:`KEEP_CELLS` cells).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from cbcv.clv.keys import KEY, MAX_BYTES
from cbcv.clv.pairing import ScoringDraws
from cbcv.clv.scoring import CustomerChunk, score_base
from cbcv.clv.tables import P_ALIVE_BINS, CLVTables
from cbcv.core.errors import DataError
from cbcv.models.base import CLVModel

#: Up to this many cells the full (draws, customers) CLV array is kept by default (~200 MB).
KEEP_CELLS = 25_000_000
#: Columns of the summary carried into the per-customer table when present.
ATTRIBUTES = ("customer_id", "cohort", "first_purchase", "x", "t_x", "T", "total_spend", "mean_repeat_spend")
#: Columns the engine adds to the per-customer table, in this order.
SCORED = ("clv_median", "clv_mean", "clv_low", "clv_high", "p_alive_mean", "spend_mean", "dert_mean", "rank", "value_decile")


@dataclass(frozen=True, kw_only=True)
class CustomerCLV(CLVTables):
    """Residual CLV of the existing customers, per draw (see :mod:`cbcv.clv.scoring`): the
    per-draw tables of :class:`~cbcv.clv.tables.CLVTables` and

    * ``customers``: one row per customer in the summary's order (its attribute columns, then
      ``clv_median``, ``clv_mean``, ``clv_low``, ``clv_high``, ``p_alive_mean``, ``spend_mean``,
      ``dert_mean``, ``rank`` by posterior mean CLV, 1 = most valuable, and ``value_decile``,
      1 = top 10%);
    * ``draws``: the full ``(draws, customers)`` CLV array when kept, else ``None``.
    """

    customers: pd.DataFrame
    draws: np.ndarray | None = None

    def customer_relation(self, con: duckdb.DuckDBPyConnection) -> str:
        con.register("clv_customers", self.customers)
        return "clv_customers"


def customer_clv(
    freq_model: CLVModel,
    spend_model: CLVModel,
    summary: pd.DataFrame,
    *,
    margin: Any,
    annual_discount_rate: Any,
    time_unit: str,
    max_draws: int | None = 1000,
    group_by: Sequence[str] | None = None,
    top_fractions: Sequence[float] = (0.01, 0.10),
    keep_draws: bool | None = None,
    interval: float = 0.9,
    p_alive_bins: int = P_ALIVE_BINS,
    max_bytes: int = MAX_BYTES,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> CustomerCLV:
    """Residual CLV per draw and customer, summarised (see :mod:`cbcv.clv.scoring`).

    Parameters
    ----------
    freq_model, spend_model
        A fitted purchase model (BG/NBD, MBG/NBD, Pareto/NBD) and a fitted gamma-gamma model.
    summary
        The customers' calibration summary (``x``, ``t_x``, ``T``, ``mean_repeat_spend``; a
        ``cohort`` and other attributes are carried along).
    margin, annual_discount_rate
        A number or one value per draw (``(n_draws,)``, with ``n_draws`` the number of draws used:
        the smaller of the two models' and ``max_draws``).
    time_unit
        The models' time unit (``day``, ``week``, ``month``), to turn the annual rate into δ.
    group_by
        Attribute columns of ``summary`` to total CLV by (per draw); default ``cohort`` if present.
    keep_draws
        Keep the ``(draws, customers)`` array in the result; default: when it has at most
        :data:`KEEP_CELLS` cells.
    max_bytes, memory_limit, threads
        Working memory of one chunk of keys, and DuckDB's memory limit and threads.
    """
    draws = ScoringDraws.from_models(
        freq_model, spend_model, margin=margin, annual_discount_rate=annual_discount_rate,
        time_unit=time_unit, max_draws=max_draws,
    )
    summary = summary.reset_index(drop=True)
    n_cust = len(summary)
    if n_cust == 0:
        raise DataError("customer CLV: no customers")
    if group_by is None:
        group_by = ("cohort",) if "cohort" in summary else ()
    for col in group_by:
        if col not in summary:
            raise DataError(f"customer CLV: no column {col!r} in the summary to group by")
    missing = [c for c in (*KEY, "mean_repeat_spend") if c not in summary]
    if missing:
        raise DataError(f"customer CLV: the summary has no column(s) {', '.join(missing)}")
    if keep_draws is None:
        keep_draws = draws.n_draws * n_cust <= KEEP_CELLS
    kept = np.empty((draws.n_draws, n_cust)) if keep_draws else None
    blocks: list[pd.DataFrame] = []

    def collect(chunk: CustomerChunk) -> None:
        blocks.append(chunk.rows[["row", *SCORED]])
        if kept is not None:
            kept[:, chunk.rows["row"].to_numpy()] = chunk.clv_draws()

    # groups scored by code, labelled with the summary's own values (periods, categories, ...)
    coded = {c: pd.factorize(summary[c], sort=True, use_na_sentinel=False) for c in group_by}
    frame = summary[list(KEY)].assign(mean_repeat_spend=summary["mean_repeat_spend"], **{c: k for c, (k, _) in coded.items()})
    scores = score_base(
        frame, draws, collect, group_by=group_by, top_fractions=top_fractions, interval=interval,
        interval_draws=None, p_alive_bins=p_alive_bins, max_bytes=max_bytes, memory_limit=memory_limit,
        threads=threads,
    )
    scored = pd.concat(blocks, ignore_index=True).sort_values("row").set_index("row")
    customers = summary[[c for c in (*ATTRIBUTES, *group_by) if c in summary and c != "value_decile"]].copy()
    customers = customers.loc[:, ~customers.columns.duplicated()]
    for col in SCORED:
        customers[col] = scored[col].to_numpy()
    tables = dict(scores.tables, meta={**scores.tables["meta"], "spend_model": spend_model.name})
    for c, (_, labels) in coded.items():
        label = pd.Index(labels, name=c)
        tables["group_draws"][c] = tables["group_draws"][c].set_axis(label[tables["group_draws"][c].columns], axis=1)
        tables["group_counts"][c] = tables["group_counts"][c].set_axis(label[tables["group_counts"][c].index])
    return CustomerCLV(customers=customers, draws=kept, **tables)
