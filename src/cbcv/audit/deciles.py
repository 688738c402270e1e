"""Decile analysis and decile migration (Fader, Hardie & Ross 2022, *The Customer-Base Audit*,
ch. 3 "How different are your customers?" and ch. 4 "What changed since last period?").

The buyers of a window (customers with at least one purchase day in it) are ranked by their net
spend in the window and cut into ten groups of equal count; decile 1 holds the top spenders.

Ranking and ties
    Buyers are sorted by spend descending; ties in spend are broken by the number of purchase
    days in the window (more first), then by ``customer_id`` ascending (string order). The order
    is therefore total and reproducible, so the same log always gives the same deciles; tied
    customers can fall on both sides of a decile boundary. Spends are compared rounded to
    :data:`SPEND_RESOLUTION` (a millionth of the currency unit), so that spends that are equal
    but for floating-point rounding (which depends on the order of summation: pandas version,
    DuckDB's plan) tie, and the ranking is reproducible. The ranking is made once per window,
    in SQL (:meth:`cbcv.audit.engine.Sequence.ranked`).

Equal-count groups
    With n buyers and 0-based rank r, the decile is ``floor(10 r / n) + 1``. Group sizes are
    ``floor(n / 10)`` or ``ceil(n / 10)`` (exactly n / 10 when 10 divides n). With fewer than ten
    buyers some deciles are empty; their rows are kept with zeros (means are NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbcv.audit._common import Window, window_label
from cbcv.audit.engine import (
    N_DECILES,
    SPEND_RESOLUTION,
    Sequence,
    Source,
    as_int64,
    open_sequence,
)

__all__ = [
    "DECILE_COLUMNS",
    "INACTIVE",
    "N_DECILES",
    "SPEND_RESOLUTION",
    "DecileMigration",
    "customer_deciles",
    "decile_migration",
    "decile_shares",
    "decile_table",
    "deciles_of",
    "migration_of",
]

INACTIVE = "inactive"

DECILE_COLUMNS: tuple[str, ...] = (
    "decile",
    "customers",
    "customer_share",
    "revenue",
    "revenue_share",
    "transactions",
    "transaction_share",
    "mean_spend",
    "mean_transactions",
    "min_spend",
    "max_spend",
)

#: One row per buyer of a ranked table, best first.
CUSTOMERS_SQL = """
SELECT customer_id, spend, transactions, r + 1 AS rank, decile FROM {table} ORDER BY r
"""

#: Per decile of a ranked table: buyers, revenue, purchase days, smallest and largest spend.
DECILES_SQL = """
SELECT decile, count(*) AS customers, fsum(spend) AS revenue,
       CAST(sum(transactions) AS BIGINT) AS transactions,
       min(spend) AS min_spend, max(spend) AS max_spend
FROM {table} GROUP BY decile
"""

#: Buyers of window 1 by their decile there and their decile (or inactivity) in window 2.
MIGRATION_SQL = """
SELECT a.decile AS decile_1, coalesce(CAST(b.decile AS VARCHAR), '{inactive}') AS decile_2,
       count(*) AS n
FROM {first} AS a LEFT JOIN {second} AS b USING (customer_id)
GROUP BY ALL
"""


def customer_deciles(
    transactions: Source, window: Window = None, *, zero_amount_purchases: bool = False
) -> pd.DataFrame:
    """Per-customer spend, transactions, rank and decile among the buyers of ``window``
    (explicitly per customer: not for the report).

    ``transactions`` is a DataFrame, an Arrow table or a Parquet file or glob; ``window`` a
    pandas period string (``"1997"``, ``"1997Q1"``), a ``pd.Period``, an inclusive
    ``(start, end)`` pair of dates, or ``None`` for the whole log. Returns ``customer_id``
    (text), ``spend`` (net), ``transactions`` (purchase days), ``rank`` (1 = top) and ``decile``
    (1 = top), sorted by rank. Raises :class:`DataError` if nobody bought in the window.
    """
    with open_sequence(transactions, zero_amount_purchases=zero_amount_purchases) as seq:
        out = seq.df(CUSTOMERS_SQL.format(table=seq.ranked(window)))
    as_int64(out, "transactions", "rank", "decile")
    return out


def decile_table(
    transactions: Source, window: Window = None, *, zero_amount_purchases: bool = False
) -> pd.DataFrame:
    """Ten rows, decile 1 (top spenders) to 10, for the buyers of ``window``.

    Columns: ``decile``, ``customers``, ``customer_share``, ``revenue`` (net spend),
    ``revenue_share``, ``transactions`` (purchase days), ``transaction_share``, ``mean_spend``
    and ``mean_transactions`` (per customer of the decile), ``min_spend`` and ``max_spend``.
    Shares are fractions (0-1) of the window's totals and sum to 1 over the deciles.
    """
    with open_sequence(transactions, zero_amount_purchases=zero_amount_purchases) as seq:
        return deciles_of(seq, window)


def deciles_of(seq: Sequence, window: Window = None) -> pd.DataFrame:
    """:func:`decile_table` of the buyers of ``window`` in an open :class:`Sequence`."""
    table = seq.ranked(window)
    return decile_shares(seq.df(DECILES_SQL.format(table=table)).set_index("decile"))


def decile_shares(grouped: pd.DataFrame) -> pd.DataFrame:
    """The ten-row decile table from per-decile ``customers``, ``revenue``, ``transactions``,
    ``min_spend`` and ``max_spend`` (indexed by decile; missing deciles become empty rows):
    shares of the totals and means per customer added."""
    deciles = pd.Index(np.arange(1, N_DECILES + 1), name="decile")
    out = grouped.reindex(deciles)
    for col in ("customers", "transactions"):
        out[col] = out[col].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0)
    out["customer_share"] = out["customers"] / out["customers"].sum()
    out["revenue_share"] = out["revenue"] / out["revenue"].sum()
    out["transaction_share"] = out["transactions"] / out["transactions"].sum()
    has = out["customers"] > 0
    out["mean_spend"] = (out["revenue"] / out["customers"]).where(has)
    out["mean_transactions"] = (out["transactions"] / out["customers"]).where(has)
    return out.reset_index()[list(DECILE_COLUMNS)]


@dataclass(frozen=True)
class DecileMigration:
    """Where the buyers of each decile in period 1 are in period 2.

    ``counts``: index ``decile_1`` (1-10), columns ``"1"`` ... ``"10"`` and ``"inactive"`` (no
    purchase in period 2), customer counts. ``row_shares``: the same divided by the row total
    (each non-empty row sums to 1). Period-2 deciles rank all period-2 buyers, including those
    who did not buy in period 1. ``period_1`` and ``period_2`` label the windows.
    """

    counts: pd.DataFrame
    row_shares: pd.DataFrame
    period_1: str
    period_2: str


def decile_migration(
    transactions: Source,
    period_1: Window,
    period_2: Window,
    *,
    zero_amount_purchases: bool = False,
) -> DecileMigration:
    """Cross-tabulate period-1 deciles (rows) against period-2 deciles or inactivity (columns).

    Each window is a pandas period string, a ``pd.Period`` or an inclusive ``(start, end)`` pair;
    deciles in each are those of :func:`customer_deciles` (top = 1). :class:`DataError` when
    nobody bought in ``period_1``; nobody in ``period_2`` makes every buyer inactive.
    """
    with open_sequence(transactions, zero_amount_purchases=zero_amount_purchases) as seq:
        return migration_of(seq, period_1, period_2)


def migration_of(seq: Sequence, period_1: Window, period_2: Window) -> DecileMigration:
    """:func:`decile_migration` in an open :class:`Sequence`."""
    first = seq.ranked(period_1)
    second = seq.ranked(period_2, required=False)
    cells = seq.df(MIGRATION_SQL.format(first=first, second=second, inactive=INACTIVE))
    index = pd.Index(np.arange(1, N_DECILES + 1), name="decile_1")
    columns = pd.Index([str(d) for d in range(1, N_DECILES + 1)] + [INACTIVE], name="decile_2")
    counts = (
        cells.pivot(index="decile_1", columns="decile_2", values="n")
        .reindex(index=index, columns=columns)
        .fillna(0)
        .astype("int64")
    )
    totals = counts.sum(axis=1).replace(0, np.nan)
    return DecileMigration(
        counts=counts,
        row_shares=counts.div(totals, axis=0),
        period_1=window_label(period_1),
        period_2=window_label(period_2),
    )
