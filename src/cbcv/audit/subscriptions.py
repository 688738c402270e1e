"""The subscription audit: cohorts, the layer cake, survival and retention by cohort and tenure,
churn by tenure, revenue retention, revenue per subscriber and revenue concentration, from
accepted subscription spells (Fader & Hardie 2007, "How to Project Customer Retention"; Fader &
Hardie 2010, "Customer-Base Valuation in a Contractual Setting: The Perils of Ignoring
Heterogeneity"; Fader, Hardie & Ross 2022, *The Customer-Base Audit*).

Every table is a query of one :class:`~cbcv.audit.subscription_base.SpellBook` (spells with their
renewal counts and a payments table, in DuckDB; the conventions are stated there): each function
here computes one table, :func:`subscription_audit` all of them in one pass. No table holds
customer ids. This module has the counts of spells; :mod:`cbcv.audit.subscription_revenue` the
revenue tables.

Units
    A spell is the unit of the layer cake, the survival and the churn tables (a reactivation is
    a new unit in the cohort of its own start; a customer with two spells running at once counts
    twice among the subscribers); customers are the unit of the revenue retention and
    concentration tables. Survival and churn are by *billing period* (renewals), with a
    ``billing_period`` column so that a file mixing monthly and annual plans is never pooled
    across them; the layer cake and revenue per subscriber are by calendar ``period``; cohorts
    and revenue retention by ``cohort_period``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from cbcv.audit._common import DateLike, periods_as_text
from cbcv.audit.engine import as_int64, ladder
from cbcv.audit.subscription_base import (
    SUBSCRIBER_DELTAS_SQL,
    SpellBook,
    SpellSource,
    open_spells,
)
from cbcv.audit.subscription_revenue import (
    revenue_concentration_of,
    revenue_per_subscriber_of,
    revenue_retention_of,
    trailing_revenue_retention_of,
)
from cbcv.core.jsonio import to_strict

LAYER_CAKE_COLUMNS: tuple[str, ...] = (
    "period",
    "cohort",
    "age",
    "subscribers",
    "payments",
    "revenue",
)
SURVIVAL_COLUMNS: tuple[str, ...] = (
    "cohort",
    "billing_period",
    "t",
    "spells",
    "at_risk",
    "alive",
    "survival",
    "retention",
    "complete",
)
CHURN_COLUMNS: tuple[str, ...] = (
    "billing_period",
    "t",
    "at_risk",
    "churned",
    "censored",
    "churn_rate",
    "churn_rate_low",
    "churn_rate_high",
    "survival",
)
COHORT_COLUMNS: tuple[str, ...] = (
    "cohort",
    "new_spells",
    "new_customers",
    "reactivations",
    "active",
    "churned",
)
#: Level of the Wilson interval of the churn rate.
CHURN_INTERVAL = 0.95

LAYER_REVENUE_SQL = """
SELECT cohort, period, count(*) AS payments, fsum(price) AS revenue
FROM payments GROUP BY cohort, period
"""

COHORTS_SQL = """
SELECT cohort, count(*) AS new_spells, count(*) FILTER (WHERE spell = 1) AS new_customers,
       count(*) FILTER (WHERE spell >= 2) AS reactivations,
       count(*) FILTER (WHERE NOT churned) AS active, count(*) FILTER (WHERE churned) AS churned
FROM spells GROUP BY cohort
"""

#: Per cohort and billing period: spells by ``horizon`` (renewal dates reached) and by renewals.
HORIZON_SQL = """
SELECT cohort, billing_period, horizon AS t, count(*) AS n FROM spells GROUP BY ALL
"""
RENEWALS_SQL = """
SELECT cohort, billing_period, renewals AS t, count(*) AS n FROM spells GROUP BY ALL
"""
#: Per billing period: spells by duration (sBG datum) and churn flag.
DURATIONS_SQL = """
SELECT billing_period, duration AS t, count(*) FILTER (WHERE churned) AS churned,
       count(*) FILTER (WHERE NOT churned) AS censored
FROM spells GROUP BY ALL
"""

#: Headline counts at ``as_of``.
HEADLINE_SQL = """
SELECT count(*) FILTER (WHERE NOT churned) AS subscribers,
       count(DISTINCT customer_id) FILTER (WHERE NOT churned) AS active_customers,
       count(DISTINCT customer_id) AS customers, count(*) AS spells,
       count(*) FILTER (WHERE spell >= 2) AS reactivations,
       fsum(price * 12.0 / months) FILTER (WHERE NOT churned) AS revenue_run_rate
FROM spells
"""
MIX_SQL = """
SELECT billing_period, count(*) AS spells, count(*) FILTER (WHERE NOT churned) AS subscribers
FROM spells GROUP BY billing_period ORDER BY billing_period
"""
#: Churns in the 12 months to ``as_of`` and subscriber-months: spells active at the start of
#: each of the 12 month-long intervals (as_of - k months, as_of - (k - 1) months], k = 1..12.
MONTHLY_CHURN_SQL = """
WITH d AS (SELECT CAST({as_of} - INTERVAL (k) MONTH AS DATE) AS day FROM range(1, 13) t(k))
SELECT (SELECT count(*) FROM spells
        WHERE churned AND "end" > CAST({as_of} - INTERVAL 12 MONTH AS DATE)) AS churns,
       (SELECT count(*) FROM spells JOIN d ON start <= d.day AND ("end" IS NULL OR "end" > d.day))
           AS exposure
"""


def layer_cake(
    spells: SpellSource,
    *,
    as_of: DateLike,
    period: str = "month",
    cohort_period: str = "month",
) -> pd.DataFrame:
    """The subscription layer cake (C3): per calendar ``period`` and ``cohort``.

    ``subscribers``: the cohort's spells *active at the end of the period* (at the end of
    ``as_of`` in the last, partial period), so a spell counts in the periods from that of its
    ``start`` to the one before that of its ``end``, and one starting and ending within a
    period never counts. ``payments`` and ``revenue``: payments made in the period (at renewal
    dates) and their sum. ``age``: whole ``period`` s since the one holding the cohort's first
    day. Every cohort has a row for every period from its first to ``as_of``'s, zeros where
    nothing happened; sorted by period then cohort. ``period`` and ``cohort`` are ``pd.Period``.
    ``spells`` is a DataFrame, Arrow table or Parquet path of accepted spells.
    """
    with open_spells(spells, as_of=as_of, period=period, cohort_period=cohort_period) as book:
        return layer_cake_of(book)


def layer_cake_of(book: SpellBook) -> pd.DataFrame:
    """:func:`layer_cake` of an open :class:`SpellBook`."""
    calendar = book.calendar()
    first, last = int(calendar["period"].min()), int(calendar["period"].max())
    deltas = book.df(SUBSCRIBER_DELTAS_SQL)
    revenue = book.df(LAYER_REVENUE_SQL)
    cohorts = np.unique(deltas["cohort"].to_numpy(dtype="int64"))
    starts = pd.PeriodIndex(book.cohorts(cohorts)).start_time.to_period(book.freq).asi8
    owner, ordinals = ladder(np.maximum(starts, first), last)
    grid = pd.DataFrame({"cohort": cohorts[owner], "period": ordinals})
    grid["age"] = (
        grid["period"]
        - pd.PeriodIndex(book.cohorts(grid["cohort"])).start_time.to_period(book.freq).asi8
    )
    out = grid.merge(deltas, on=["cohort", "period"], how="left").merge(
        revenue, on=["cohort", "period"], how="left"
    )
    out["delta"] = out["delta"].fillna(0)
    out["subscribers"] = out.groupby("cohort", sort=False)["delta"].cumsum()
    out["payments"] = out["payments"].fillna(0)
    out["revenue"] = out["revenue"].fillna(0.0) if book.priced else np.nan
    as_int64(out, "age", "subscribers", "payments")
    out = out.sort_values(["period", "cohort"], kind="stable").reset_index(drop=True)
    out["period"] = book.periods(out["period"])
    out["cohort"] = book.cohorts(out["cohort"])
    return out[list(LAYER_CAKE_COLUMNS)]


def cohort_sizes(
    spells: SpellSource, *, as_of: DateLike, cohort_period: str = "month"
) -> pd.DataFrame:
    """One row per ``cohort_period`` from the first spell's to ``as_of``'s (zeros where nothing
    started): ``new_spells`` started in it, ``new_customers`` (first spells, ``spell == 1``:
    acquisitions), ``reactivations`` (later spells), and of its spells those ``active`` at
    ``as_of`` and ``churned`` by it."""
    with open_spells(spells, as_of=as_of, cohort_period=cohort_period) as book:
        return cohort_sizes_of(book)


def cohort_sizes_of(book: SpellBook) -> pd.DataFrame:
    """:func:`cohort_sizes` of an open :class:`SpellBook`."""
    out = book.df(COHORTS_SQL)
    first = int(out["cohort"].min())
    last = int(pd.Period(book.as_of, book.cfreq).ordinal)
    grid = pd.DataFrame({"cohort": np.arange(first, last + 1, dtype="int64")})
    out = grid.merge(out, on="cohort", how="left").fillna(0)
    as_int64(out, *COHORT_COLUMNS)
    out["cohort"] = book.cohorts(out["cohort"])
    return out[list(COHORT_COLUMNS)]


def survival_by_cohort(
    spells: SpellSource, *, as_of: DateLike, cohort_period: str = "month"
) -> pd.DataFrame:
    """Survival and retention by cohort and tenure (renewals), per billing period.

    For each ``cohort`` (of the spells' starts), ``billing_period`` and t = 0, 1, ... up to the
    most renewal dates any of its spells has reached: ``spells`` (the cohort's), ``at_risk``
    (spells whose t-th renewal date, start + t billing periods, is on or before ``as_of``: those
    observed long enough to tell), ``alive`` (those of them that made t renewals, i.e. paid t + 1
    times), ``survival`` = alive / at_risk (the share of the cohort surviving t renewals among
    those observable) and ``retention`` = survival(t) / survival(t - 1) (NaN at t = 0).

    Within a cohort, spells start on different days: where the cohort's later starters have
    not yet reached their t-th renewal date, at_risk(t) < spells and survival(t) is that of the
    earlier starters only (``complete`` is False there: the rows a model of the whole cohort
    should weigh with care). Survival is estimated on its own at-risk set at each t, so
    retention is a ratio of two shares, not a share of a fixed group, where ``complete`` is
    False. The pooled life table consistent with the sBG likelihood is :func:`churn_by_tenure`.
    """
    with open_spells(spells, as_of=as_of, cohort_period=cohort_period) as book:
        return survival_by_cohort_of(book)


def survival_by_cohort_of(book: SpellBook) -> pd.DataFrame:
    """:func:`survival_by_cohort` of an open :class:`SpellBook`."""
    keys = ["cohort", "billing_period"]
    horizon, renewals = book.df(HORIZON_SQL), book.df(RENEWALS_SQL)
    tops = horizon.groupby(keys)["t"].max().reset_index()
    grid = _t_grid(tops, keys, start=0)
    out = grid.copy()
    out["at_risk"] = _at_least(horizon, keys, grid)
    out["alive"] = _at_least(renewals, keys, grid)
    sizes = horizon.groupby(keys)["n"].sum().rename("spells").reset_index()
    out = out.merge(sizes, on=keys, how="left")
    as_int64(out, "t", "spells", "at_risk", "alive")
    out["survival"] = out["alive"] / out["at_risk"]
    previous = out.groupby(keys, sort=False)["survival"].shift(1)
    out["retention"] = out["survival"] / previous.where(previous > 0)
    out["complete"] = out["at_risk"] == out["spells"]
    out["cohort"] = book.cohorts(out["cohort"])
    return out[list(SURVIVAL_COLUMNS)]


def churn_by_tenure(spells: SpellSource, *, as_of: DateLike) -> pd.DataFrame:
    """The life table of churn by tenure, pooled over cohorts, per billing period: the
    individual durations of the sBG/BdW (Fader & Hardie 2007) counted.

    Each spell's datum is ``duration`` (payments made for a churned spell, renewals made for an
    active one; :mod:`cbcv.audit.subscription_base`). For t = 1, 2, ...: ``at_risk`` = spells
    with duration >= t (churned after paying t or more times, or active having made t or more
    renewals), ``churned`` = churned spells with duration t (paid t times, did not renew at
    the t-th renewal date), ``censored`` = active spells with duration t (made t renewals, the
    next one not yet due), ``churn_rate`` = churned / at_risk (the discrete hazard, the sBG's
    P(T = t | T >= t)) with a Wilson score interval at :data:`CHURN_INTERVAL`
    (``churn_rate_low``, ``churn_rate_high``), and ``survival`` = prod over s <= t of
    (1 - churn_rate(s)) (the Kaplan-Meier estimate of surviving t renewals).
    """
    with open_spells(spells, as_of=as_of) as book:
        return churn_by_tenure_of(book)


def churn_by_tenure_of(book: SpellBook) -> pd.DataFrame:
    """:func:`churn_by_tenure` of an open :class:`SpellBook`."""
    keys = ["billing_period"]
    durations = book.df(DURATIONS_SQL)
    durations["n"] = durations["churned"] + durations["censored"]
    tops = durations.groupby(keys)["t"].max().reset_index()
    tops = tops[tops["t"] >= 1]
    grid = _t_grid(tops, keys, start=1)
    out = grid.copy()
    out["at_risk"] = _at_least(durations, keys, grid)
    cells = durations[["billing_period", "t", "churned", "censored"]]
    out = out.merge(cells, on=["billing_period", "t"], how="left").fillna(
        {"churned": 0, "censored": 0}
    )
    as_int64(out, "t", "at_risk", "churned", "censored")
    rate = out["churned"] / out["at_risk"].where(out["at_risk"] > 0)
    low, high = wilson_interval(out["churned"].to_numpy(), out["at_risk"].to_numpy())
    out["churn_rate"], out["churn_rate_low"], out["churn_rate_high"] = rate, low, high
    out["survival"] = (1.0 - rate).groupby(out["billing_period"], sort=False).cumprod()
    return out[list(CHURN_COLUMNS)]


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, level: float = CHURN_INTERVAL
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion at ``level`` (NaN where ``trials`` is 0):
    (p + z^2 / 2n -/+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n), p = successes / n."""
    n = np.asarray(trials, dtype=float)
    k = np.asarray(successes, dtype=float)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    low, high = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    bad = ~(n > 0)
    low[bad], high[bad] = np.nan, np.nan
    return low, high


def _t_grid(tops: pd.DataFrame, keys: list[str], start: int) -> pd.DataFrame:
    """Rows ``keys`` + ``t`` for t = ``start`` .. each group's ``t`` in ``tops``."""
    lengths = np.maximum(tops["t"].to_numpy(dtype="int64") - start + 1, 0)
    owner = np.repeat(np.arange(len(tops)), lengths)
    offsets = np.arange(owner.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = tops[keys].iloc[owner].reset_index(drop=True)
    grid["t"] = start + offsets
    return grid


def _at_least(counts: pd.DataFrame, keys: list[str], grid: pd.DataFrame) -> np.ndarray:
    """For each row of ``grid`` (sorted by ``keys`` then ``t``, covering every ``t`` of
    ``counts`` at or above its start), the sum of ``counts.n`` over its group's t' >= t."""
    merged = grid.merge(counts[[*keys, "t", "n"]], on=[*keys, "t"], how="left")
    merged["n"] = merged["n"].fillna(0)
    tail = merged.iloc[::-1].groupby(keys, sort=False)["n"].cumsum().iloc[::-1]
    return tail.to_numpy(dtype="int64")


def headline_of(book: SpellBook, trailing: pd.DataFrame, revenue_12m: float) -> dict[str, Any]:
    """The headline figures of :class:`SubscriptionAudit` (its docstring) of an open book."""
    row = book.df(HEADLINE_SQL).iloc[0]
    churns, exposure = book.one(MONTHLY_CHURN_SQL.format(as_of=book.as_of_sql))
    mix = book.df(MIX_SQL)
    return {
        "as_of": book.as_of.date().isoformat(),
        "subscribers": int(row["subscribers"]),
        "active_customers": int(row["active_customers"]),
        "customers": int(row["customers"]),
        "spells": int(row["spells"]),
        "reactivations": int(row["reactivations"]),
        "spells_after_as_of": int(book.dropped),
        "revenue_run_rate": float(row["revenue_run_rate"]) if book.priced else float("nan"),
        "revenue_12m": revenue_12m,
        "churn_rate_monthly_12m": churns / exposure if exposure else float("nan"),
        "churned_12m": int(churns),
        "nrr_12m": float(trailing["nrr"].iloc[0]),
        "grr_12m": float(trailing["grr"].iloc[0]),
        "billing_periods": {
            str(r.billing_period): {"spells": int(r.spells), "subscribers": int(r.subscribers)}
            for r in mix.itertuples()
        },
    }


@dataclass(frozen=True)
class SubscriptionAudit:
    """The audit of accepted subscription spells at ``as_of``; no table holds customer ids.

    Tables: ``cohorts`` (:func:`cohort_sizes`), ``layer_cake`` (:func:`layer_cake`),
    ``survival`` (:func:`survival_by_cohort`), ``churn`` (:func:`churn_by_tenure`),
    ``revenue_retention`` (:func:`~cbcv.audit.subscription_revenue.revenue_retention`),
    ``trailing_retention`` (:func:`~cbcv.audit.subscription_revenue.trailing_revenue_retention`),
    ``revenue_per_subscriber`` (:func:`~cbcv.audit.subscription_revenue.revenue_per_subscriber`),
    ``concentration`` and ``revenue_deciles``
    (:func:`~cbcv.audit.subscription_revenue.revenue_concentration`).

    ``headline``: ``as_of``; ``subscribers`` (spells active at ``as_of``), ``active_customers``
    (distinct customers with one), ``customers``, ``spells``, ``reactivations`` (spells >= 2)
    and ``spells_after_as_of`` (left out); ``revenue_run_rate`` (active spells' price per billing
    period, annualised: x 12, 4 or 1); ``revenue_12m`` (payments in the 12 months to ``as_of``,
    (as_of - 12 months, as_of]); ``churn_rate_monthly_12m`` (``churned_12m``, the spells ending
    in those 12 months, per subscriber-month: the sum over the 12 month-long intervals of the
    spells active at each interval's start; NaN without exposure); ``nrr_12m`` and ``grr_12m``
    (the trailing revenue retention); ``billing_periods`` (per billing period: spells and
    subscribers, the mix). Revenue figures are NaN without prices.
    """

    as_of: str
    period: str
    cohort_period: str
    headline: dict[str, Any]
    cohorts: pd.DataFrame
    layer_cake: pd.DataFrame
    survival: pd.DataFrame
    churn: pd.DataFrame
    revenue_retention: pd.DataFrame
    trailing_retention: pd.DataFrame
    revenue_per_subscriber: pd.DataFrame
    concentration: pd.DataFrame
    revenue_deciles: pd.DataFrame = field(repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by a file-friendly name (periods as text), ready for ``to_csv``."""
        names = (
            "cohorts",
            "layer_cake",
            "survival",
            "churn",
            "revenue_retention",
            "trailing_retention",
            "revenue_per_subscriber",
            "concentration",
            "revenue_deciles",
        )
        return {name: periods_as_text(getattr(self, name)) for name in names}

    def to_json_dict(self, *, tables: bool = False) -> dict[str, Any]:
        """Strict-JSON values (:func:`cbcv.core.jsonio.to_strict`: NaN as null): the settings,
        ``headline``, ``concentration`` and ``trailing_retention`` as objects and, with
        ``tables``, every table as a list of records."""
        out: dict[str, Any] = {
            "as_of": self.as_of,
            "period": self.period,
            "cohort_period": self.cohort_period,
            "headline": self.headline,
            "concentration": _records(self.concentration)[0],
            "trailing_retention": _records(self.trailing_retention)[0],
        }
        if tables:
            out["tables"] = {name: _records(t) for name, t in self.tables().items()}
        return to_strict(out)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    table = periods_as_text(table)
    for col in table.columns:
        if pd.api.types.is_datetime64_any_dtype(table[col]):
            table[col] = table[col].dt.strftime("%Y-%m-%d")
    return [{str(k): v for k, v in row.items()} for row in table.to_dict(orient="records")]


def subscription_audit(
    spells: SpellSource,
    *,
    as_of: DateLike,
    cohort_period: str = "month",
    period: str = "month",
    memory_limit: str | None = None,
    threads: int | None = None,
) -> SubscriptionAudit:
    """The subscription audit of the accepted spells ``spells`` at ``as_of``: every table of
    this module and of :mod:`cbcv.audit.subscription_revenue`, in one scratch DuckDB.

    ``spells`` is a DataFrame or Arrow table (registered, not copied) or a Parquet file or glob
    in the accepted-spells schema; ``cohort_period`` (cohorts, revenue-retention ages) and
    ``period`` (layer cake, revenue per subscriber) are ``month``, ``quarter`` or ``year``;
    ``memory_limit`` (e.g. ``"4GB"``; DuckDB spills to disk beyond it) and ``threads`` are
    DuckDB's settings. :class:`DataError` for an unreadable source, a missing column, a bad row
    or no spell started by ``as_of``; :class:`ConfigError` for a bad period or date.
    """
    with open_spells(
        spells,
        as_of=as_of,
        period=period,
        cohort_period=cohort_period,
        memory_limit=memory_limit,
        threads=threads,
    ) as book:
        trailing, revenue_12m = trailing_revenue_retention_of(book)
        concentration, deciles = revenue_concentration_of(book)
        return SubscriptionAudit(
            as_of=book.as_of.date().isoformat(),
            period=book.period,
            cohort_period=book.cohort_period,
            headline=headline_of(book, trailing, revenue_12m),
            cohorts=cohort_sizes_of(book),
            layer_cake=layer_cake_of(book),
            survival=survival_by_cohort_of(book),
            churn=churn_by_tenure_of(book),
            revenue_retention=revenue_retention_of(book),
            trailing_retention=trailing,
            revenue_per_subscriber=revenue_per_subscriber_of(book),
            concentration=concentration,
            revenue_deciles=deciles,
        )
