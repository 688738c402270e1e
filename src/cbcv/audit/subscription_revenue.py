"""Revenue tables of the subscription audit: revenue retention by cohort (net and gross), the
company's trailing 12-month net and gross revenue retention (NRR, GRR), revenue per subscriber
by period and revenue concentration (top shares, deciles, Gini).

Revenue is the payments table of :mod:`cbcv.audit.subscription_base` (one ``price`` at each
renewal date made by ``as_of``); customers, not spells, are the unit here, so a reactivated
customer's later spells count with the customer.

Revenue retention by cohort
    A customer's *acquisition cohort* is the ``cohort_period`` of their first spell's start and
    their *base* the revenue they paid in it (age 0). At age a (whole cohort periods after the
    acquisition period) the cohort's net revenue is everything its customers paid in that
    period, reactivations and price changes included; NRR(a) = net(a) / base, base the
    cohort's age-0 revenue. Gross revenue counts for each customer only the spells started in
    the acquisition period (a reactivation excluded) and caps it at the customer's base:
    GRR(a) = sum_i min(revenue_i(a), base_i) / base, so GRR <= NRR and both are 1 at age 0.
    With a billing period longer than the cohort period, revenue arrives only in renewal
    periods (annual plans by month: age 0, 12, 24 ...): compare cohorts at those ages, or use a
    coarser ``cohort_period``.

Trailing revenue retention (company level)
    The customers who paid in the 12 months before the last 12 (``(as_of - 24 months, as_of -
    12 months]``); NRR = their revenue in the last 12 months ``(as_of - 12 months, as_of]`` over
    their revenue in the earlier window; GRR caps each customer's later revenue at their
    earlier revenue (reactivated spells included: the company view has no acquisition period).
    NaN when nobody paid in the earlier window.

Revenue concentration
    Customers ranked by their revenue to ``as_of`` (all spells), as the transaction audit ranks
    buyers (:meth:`cbcv.audit.engine.Sequence.ranked`, over the payments as purchases), with the
    top shares read off the exact whale curve (:func:`cbcv.audit.concentration.top_share`) and
    the Gini coefficient of :mod:`cbcv.audit.concentration`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike
from cbcv.audit.concentration import WHALE_SQL, concentration_of, top_share
from cbcv.audit.deciles import decile_shares, deciles_of
from cbcv.audit.engine import Sequence, as_int64, ladder
from cbcv.audit.subscription_base import SUBSCRIBER_DELTAS_SQL, SpellSource, open_spells
from cbcv.data._sql import DUCKDB

if TYPE_CHECKING:
    from cbcv.audit.subscription_base import SpellBook

REVENUE_RETENTION_COLUMNS: tuple[str, ...] = (
    "cohort",
    "age",
    "customers",
    "paying_customers",
    "revenue",
    "gross_revenue",
    "base_revenue",
    "nrr",
    "grr",
    "partial",
)
TRAILING_COLUMNS: tuple[str, ...] = (
    "window_start",
    "window_end",
    "previous_start",
    "previous_end",
    "customers",
    "previous_revenue",
    "retained_revenue",
    "retained_gross_revenue",
    "nrr",
    "grr",
)
ARPU_COLUMNS: tuple[str, ...] = (
    "period",
    "period_end",
    "partial",
    "revenue",
    "payments",
    "paying_customers",
    "opening_subscribers",
    "new_spells",
    "subscribers",
    "served_subscribers",
    "arpu",
)
#: Customer shares from the top whose revenue share :func:`revenue_concentration` reports.
TOP_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20)
CONCENTRATION_COLUMNS: tuple[str, ...] = (
    "customers",
    "revenue",
    "top_1pct",
    "top_5pct",
    "top_10pct",
    "top_20pct",
    "gini",
)
#: The decile table of :mod:`cbcv.audit.deciles`, in the words of payments and revenue.
DECILE_RENAMES: dict[str, str] = {
    "transactions": "payments",
    "transaction_share": "payment_share",
    "mean_spend": "mean_revenue",
    "mean_transactions": "mean_payments",
    "min_spend": "min_revenue",
    "max_spend": "max_revenue",
}

#: Per acquisition cohort and age: net and gross revenue and paying customers.
RETENTION_SQL = """
WITH acq AS (SELECT customer_id, min(cohort) AS acq FROM spells GROUP BY customer_id),
cust AS (
    SELECT p.customer_id, a.acq, p.cperiod - a.acq AS age, fsum(p.price) AS net,
           coalesce(fsum(p.price) FILTER (WHERE p.cohort = a.acq), 0.0) AS original
    FROM payments AS p JOIN acq AS a USING (customer_id)
    WHERE p.price IS NOT NULL
    GROUP BY p.customer_id, a.acq, p.cperiod
),
base AS (SELECT customer_id, net AS base FROM cust WHERE age = 0)
SELECT acq AS cohort, age, count(*) AS paying_customers, fsum(net) AS revenue,
       fsum(least(original, coalesce(base, 0.0))) AS gross_revenue
FROM cust LEFT JOIN base USING (customer_id)
GROUP BY acq, age
"""
ACQUISITIONS_SQL = """
SELECT acq AS cohort, count(*) AS customers
FROM (SELECT customer_id, min(cohort) AS acq FROM spells GROUP BY customer_id) GROUP BY acq
"""
TRAILING_SQL = """
WITH w AS (
    SELECT customer_id,
           coalesce(fsum(price) FILTER (WHERE pay_date > {mid}), 0.0) AS now,
           coalesce(fsum(price) FILTER (WHERE pay_date <= {mid}), 0.0) AS before
    FROM payments WHERE price IS NOT NULL AND pay_date > {low} GROUP BY customer_id
)
SELECT count(*) FILTER (WHERE before > 0) AS customers,
       coalesce(fsum(before) FILTER (WHERE before > 0), 0.0) AS previous_revenue,
       coalesce(fsum(now) FILTER (WHERE before > 0), 0.0) AS retained_revenue,
       coalesce(fsum(least(now, before)) FILTER (WHERE before > 0), 0.0)
           AS retained_gross_revenue,
       fsum(now) AS revenue_12m
FROM w
"""
NEW_SPELLS_SQL = "SELECT start_period AS period, count(*) AS new_spells FROM spells GROUP BY 1"
PERIOD_REVENUE_SQL = """
SELECT period, fsum(price) AS revenue, count(*) AS payments,
       count(DISTINCT customer_id) AS paying_customers
FROM payments GROUP BY period
"""
#: The customers' payments as the purchases of the transaction audit's ranking.
PURCHASES_SQL = """
CREATE OR REPLACE TEMP VIEW seq AS
SELECT customer_id, pay_date AS date, price AS amount FROM payments WHERE price IS NOT NULL
"""


def revenue_retention(
    spells: SpellSource, *, as_of: DateLike, cohort_period: str = "month"
) -> pd.DataFrame:
    """Net and gross revenue retention by acquisition cohort and age (module docstring).

    One row per ``cohort`` (``pd.Period`` of ``cohort_period``) and ``age`` = 0 .. the periods
    to ``as_of``'s: ``customers`` acquired, ``paying_customers`` (paying at that age),
    ``revenue`` (net), ``gross_revenue`` (capped, reactivations excluded), ``base_revenue``
    (the cohort's age-0 revenue), ``nrr`` = revenue / base, ``grr`` = gross / base, and
    ``partial`` (the period holding ``as_of``, not yet over). Revenue is NaN without prices.
    """
    with open_spells(spells, as_of=as_of, cohort_period=cohort_period) as book:
        return revenue_retention_of(book)


def revenue_retention_of(book: SpellBook) -> pd.DataFrame:
    """:func:`revenue_retention` of an open :class:`SpellBook`."""
    cohorts = book.df(ACQUISITIONS_SQL).sort_values("cohort")
    cells = book.df(RETENTION_SQL)
    now = pd.Period(book.as_of, book.cfreq)
    last = int(now.ordinal)
    starts = cohorts["cohort"].to_numpy(dtype="int64")
    owner, ordinals = ladder(starts, last)
    grid = pd.DataFrame({"cohort": starts[owner], "age": ordinals - starts[owner]})
    out = grid.merge(cohorts, on="cohort", how="left").merge(
        cells, on=["cohort", "age"], how="left"
    )
    out["paying_customers"] = out["paying_customers"].fillna(0)
    as_int64(out, "age", "customers", "paying_customers")
    for col in ("revenue", "gross_revenue"):
        out[col] = out[col].fillna(0.0) if book.priced else np.nan
    base = out["revenue"].where(out["age"] == 0).groupby(out["cohort"]).transform("max")
    out["base_revenue"] = base
    positive = base.where(base > 0)
    out["nrr"] = out["revenue"] / positive
    out["grr"] = out["gross_revenue"] / positive
    complete = now.end_time.normalize() <= book.as_of
    out["partial"] = (out["cohort"] + out["age"] == last) & (not complete)
    out["cohort"] = book.cohorts(out["cohort"])
    return out[list(REVENUE_RETENTION_COLUMNS)]


def trailing_revenue_retention(spells: SpellSource, *, as_of: DateLike) -> pd.DataFrame:
    """The company's trailing 12-month NRR and GRR at ``as_of`` (module docstring), one row:
    the windows (``window_start``/``window_end`` the last 12 months, ``previous_start``/
    ``previous_end`` the 12 before; first and last days, inclusive), ``customers`` who paid in
    the earlier window, their ``previous_revenue``, ``retained_revenue`` (theirs in the last 12
    months), ``retained_gross_revenue`` (capped per customer at their earlier revenue), ``nrr``
    and ``grr``."""
    with open_spells(spells, as_of=as_of) as book:
        return trailing_revenue_retention_of(book)[0]


def trailing_revenue_retention_of(book: SpellBook) -> tuple[pd.DataFrame, float]:
    """:func:`trailing_revenue_retention` of an open book, and the revenue of the last 12
    months (all customers; NaN without prices)."""
    mid = (book.as_of - pd.DateOffset(months=12)).normalize()
    low = (book.as_of - pd.DateOffset(months=24)).normalize()
    sql = TRAILING_SQL.format(mid=_day(mid), low=_day(low))
    customers, previous, retained, gross, revenue_12m = book.one(sql)
    ok = book.priced and previous > 0
    row = {
        "window_start": mid + pd.Timedelta(days=1),
        "window_end": book.as_of,
        "previous_start": low + pd.Timedelta(days=1),
        "previous_end": mid,
        "customers": int(customers),
        "previous_revenue": float(previous) if book.priced else math.nan,
        "retained_revenue": float(retained) if book.priced else math.nan,
        "retained_gross_revenue": float(gross) if book.priced else math.nan,
        "nrr": float(retained) / float(previous) if ok else math.nan,
        "grr": float(gross) / float(previous) if ok else math.nan,
    }
    twelve = float(revenue_12m or 0.0) if book.priced else math.nan
    return pd.DataFrame([row])[list(TRAILING_COLUMNS)], twelve


def revenue_per_subscriber(
    spells: SpellSource, *, as_of: DateLike, period: str = "month"
) -> pd.DataFrame:
    """Revenue per subscriber (ARPU) by calendar ``period``, from the first spell's to
    ``as_of``'s.

    ``period_end``: the day at whose end subscribers are counted (the period's last day, or
    ``as_of`` in the last period, then ``partial``); ``revenue`` and ``payments`` made in the
    period; ``paying_customers`` (distinct customers paying in it); ``subscribers``: spells
    active at ``period_end`` (as in :func:`~cbcv.audit.subscriptions.layer_cake`);
    ``opening_subscribers``: those active at the end of the previous period (0 in the first);
    ``new_spells`` started in the period; ``served_subscribers`` = opening + new: every spell
    active at some time in the period; ``arpu`` = revenue / served_subscribers (NaN without
    any), the revenue per subscriber served. Each served spell pays at most once per billing
    period, so with monthly billing and periods ARPU is at most the price, and the first
    period of a young company is not inflated as an average of opening and closing counts
    would inflate it. A partial period's ARPU covers part of a period only.
    """
    with open_spells(spells, as_of=as_of, period=period) as book:
        return revenue_per_subscriber_of(book)


def revenue_per_subscriber_of(book: SpellBook) -> pd.DataFrame:
    """:func:`revenue_per_subscriber` of an open :class:`SpellBook`."""
    calendar = book.calendar()
    deltas = book.df(
        f"SELECT period, sum(delta) AS delta FROM ({SUBSCRIBER_DELTAS_SQL}) GROUP BY period"
    )
    out = (
        calendar.merge(deltas, on="period", how="left")
        .merge(book.df(NEW_SPELLS_SQL), on="period", how="left")
        .merge(book.df(PERIOD_REVENUE_SQL), on="period", how="left")
    )
    out["subscribers"] = out["delta"].fillna(0).cumsum()
    out["opening_subscribers"] = out["subscribers"].shift(1, fill_value=0)
    for col in ("payments", "paying_customers", "new_spells"):
        out[col] = out[col].fillna(0)
    as_int64(out, "subscribers", "opening_subscribers", "payments", "paying_customers")
    as_int64(out, "new_spells")
    out["served_subscribers"] = out["opening_subscribers"] + out["new_spells"]
    out["revenue"] = out["revenue"].fillna(0.0) if book.priced else np.nan
    served = out["served_subscribers"].where(out["served_subscribers"] > 0)
    out["arpu"] = out["revenue"] / served
    out["period_end"] = pd.to_datetime(out["end_day"])
    out["partial"] = out["partial"].astype(bool)
    out["period"] = book.periods(out["period"])
    return out[list(ARPU_COLUMNS)]


def revenue_concentration(
    spells: SpellSource, *, as_of: DateLike
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Revenue concentration over customers ranked by their revenue to ``as_of`` (module
    docstring): a one-row table (``customers`` with revenue, ``revenue``, ``top_1pct``,
    ``top_5pct``, ``top_10pct``, ``top_20pct``: the shares, 0-1, of revenue from that top share
    of customers, a fraction of a customer counted pro rata; ``gini``) and the ten-row decile
    table (``decile`` 1 = top, ``customers``, ``customer_share``, ``revenue``,
    ``revenue_share``, ``payments``, ``payment_share``, ``mean_revenue``, ``mean_payments``,
    ``min_revenue``, ``max_revenue``). NaN (and empty deciles) without prices."""
    with open_spells(spells, as_of=as_of) as book:
        return revenue_concentration_of(book)


def revenue_concentration_of(book: SpellBook) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`revenue_concentration` of an open :class:`SpellBook`."""
    book.con.execute(PURCHASES_SQL)
    seq = Sequence(book.con, book.name, book.freq, book.cfreq)
    if not book.priced:
        empty = {c: [math.nan] for c in CONCENTRATION_COLUMNS} | {"customers": [0]}
        deciles = deciles_of_empty()
        return pd.DataFrame(empty)[list(CONCENTRATION_COLUMNS)], deciles
    _, summary = concentration_of(seq, None, whale_points=1)
    n = summary.customers
    ks = sorted(
        {min(max(math.floor(f * n) + d, 1), n) for f in TOP_FRACTIONS for d in (-1, 0, 1, 2)}
    )
    book.con.register("top_ks", pd.DataFrame({"k": np.asarray(ks, dtype="int64")}))
    points = seq.df(
        WHALE_SQL.format(table=seq.ranked(None), keep="WHERE k IN (SELECT k FROM top_ks)")
    )
    book.con.unregister("top_ks")
    k = np.concatenate([[0], points["k"].to_numpy(dtype="int64")])
    cum = np.concatenate([[0.0], points["cum"].to_numpy(dtype=float)])
    total = summary.revenue
    curve = pd.DataFrame(
        {
            "customer_share": k / n,
            "revenue_share": cum / total if total > 0 else np.full(k.size, np.nan),
        }
    )
    row = {
        "customers": n,
        "revenue": summary.net_revenue,
        **{f"top_{round(f * 100)}pct": top_share(curve, f) for f in TOP_FRACTIONS},
        "gini": summary.gini,
    }
    deciles = deciles_of(seq).rename(columns=DECILE_RENAMES)
    return pd.DataFrame([row])[list(CONCENTRATION_COLUMNS)], deciles


def deciles_of_empty() -> pd.DataFrame:
    """The decile table without revenue: ten rows, no customers, revenue figures NaN."""
    columns = ["customers", "revenue", "transactions", "min_spend", "max_spend"]
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    empty.index.name = "decile"
    out = decile_shares(empty).rename(columns=DECILE_RENAMES)
    out[["revenue", "revenue_share"]] = np.nan
    return out


def _day(value: pd.Timestamp) -> str:
    return DUCKDB.day(value.date())
