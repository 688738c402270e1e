"""The subscription audit: every table on hand-counted spells (the counts worked out in the
comments), survival and churn against a brute-force count on ~2,000 random spells, revenue
concentration against numpy, the same audit from a Parquet file, no customer id in any table,
strict JSON, and the figures (pyplot-free, labelled, no warnings)."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from scipy.stats import binomtest

from cbcv.audit.subscription_revenue import (
    revenue_concentration,
    revenue_per_subscriber,
    revenue_retention,
    trailing_revenue_retention,
)
from cbcv.audit.subscriptions import (
    SubscriptionAudit,
    churn_by_tenure,
    cohort_sizes,
    layer_cake,
    subscription_audit,
    survival_by_cohort,
)
from cbcv.core.errors import ConfigError, DataError
from cbcv.core.jsonio import dumps_strict
from cbcv.plots.style import savefig
from cbcv.plots.subscriptions import (
    plot_churn_by_tenure,
    plot_layer_cake,
    plot_revenue_per_subscriber,
    plot_revenue_retention,
    plot_survival_by_cohort,
)

MONTHS = {"month": 1, "quarter": 3, "year": 12}


def spells_frame(rows: list[tuple]) -> pd.DataFrame:
    """Accepted spells from (customer_id, spell, start, end or None, price, billing_period)."""
    out = pd.DataFrame(
        rows, columns=["customer_id", "spell", "start", "end", "price", "billing_period"]
    )
    out["spell"] = out["spell"].astype("int64")
    out["start"] = pd.to_datetime(out["start"])
    out["end"] = pd.to_datetime(out["end"])
    out["price"] = out["price"].astype(float)
    out["plan"] = None
    return out


# ---------------------------------------------------------------------------------------------
# SMALL: five monthly spells of four customers (and one starting after as_of), as_of 2020-07-20.
#   a  2020-01-15 .. 2020-04-15  10/month: pays Jan15 Feb15 Mar15 (Apr15 is not < end): T = 3,
#      churned, renewals 2, renewal dates reached by as_of Feb15..Jul15: horizon 6, duration 3.
#   b  2020-01-31 .. active      20/month: pays Jan31 Feb29 Mar31 Apr30 May31 Jun30 (Jul31 is
#      after as_of): horizon 5 = renewals 5, duration 5 (censored).
#   c1 2020-02-10 .. 2020-03-10   5/month: pays Feb10 only: T = 1, horizon 5, renewals 0.
#   c2 2020-06-01 .. active       7/month (c's reactivation): pays Jun1 Jul1: horizon 1.
#   e  2020-05-05 .. 2020-09-05  12/month: the end is after as_of, so active (censored) there:
#      pays May5 Jun5 Jul5, horizon 2 = renewals 2, duration 2.
#   f  2020-08-01: starts after as_of, left out.
# Revenue to as_of: a 30, b 120, c 5 + 14 = 19, e 36: 205.
# ---------------------------------------------------------------------------------------------
AS_OF = "2020-07-20"
SMALL = spells_frame(
    [
        ("cust-a", 1, "2020-01-15", "2020-04-15", 10.0, "month"),
        ("cust-b", 1, "2020-01-31", None, 20.0, "month"),
        ("cust-c", 1, "2020-02-10", "2020-03-10", 5.0, "month"),
        ("cust-c", 2, "2020-06-01", None, 7.0, "month"),
        ("cust-e", 1, "2020-05-05", "2020-09-05", 12.0, "month"),
        ("cust-f", 1, "2020-08-01", None, 9.0, "month"),
    ]
)

# ---------------------------------------------------------------------------------------------
# MIXED: billing periods mixed, as_of 2021-12-31 (windows: 2020 and 2021 exactly).
#   g  monthly 10 from 2020-01-01, active: 12 payments in 2020 (120) and 12 in 2021 (120);
#      renewals to 2021-12-01: 23 (duration 23, censored).
#   h  yearly 100 from 2020-03-01 to 2021-02-01: pays 2020-03-01 only (T = 1, churned).
#   i1 quarterly 30 from 2020-10-01 to 2021-04-01: pays 2020-10-01, 2021-01-01 (T = 2).
#   i2 quarterly 60 from 2021-07-01 (i's reactivation), active: pays 2021-07-01, 2021-10-01
#      (horizon 1, duration 1 censored).
#   j  monthly 50 from 2021-06-15, active: pays Jun15..Dec15 2021: 7 x 50 = 350 (renewals 6).
# 2020 revenue 250 (g 120, h 100, i 30); 2021 revenue 620 (g 120, i 30 + 120, j 350).
# ---------------------------------------------------------------------------------------------
MIXED_AS_OF = "2021-12-31"
MIXED = spells_frame(
    [
        ("cust-g", 1, "2020-01-01", None, 10.0, "month"),
        ("cust-h", 1, "2020-03-01", "2021-02-01", 100.0, "year"),
        ("cust-i", 1, "2020-10-01", "2021-04-01", 30.0, "quarter"),
        ("cust-i", 2, "2021-07-01", None, 60.0, "quarter"),
        ("cust-j", 1, "2021-06-15", None, 50.0, "month"),
    ]
)


@pytest.fixture(scope="module")
def small_audit() -> SubscriptionAudit:
    return subscription_audit(SMALL, as_of=AS_OF)


@pytest.fixture(scope="module")
def mixed_audit() -> SubscriptionAudit:
    return subscription_audit(MIXED, as_of=MIXED_AS_OF, cohort_period="year", period="quarter")


def _rows(table: pd.DataFrame, cols: list[str]) -> list[tuple]:
    return [tuple(r) for r in table[cols].astype(object).itertuples(index=False)]


# --- 6. cohort sizes -------------------------------------------------------------------------
def test_cohort_sizes_small():
    # Jan: a, b (2 new customers, b active, a churned); Feb: c1 (churned); May: e (active, its
    # end is after as_of); Jun: c2, a reactivation (active); Mar, Apr, Jul: nothing started.
    out = cohort_sizes(SMALL, as_of=AS_OF)
    assert [str(c) for c in out["cohort"]] == [f"2020-0{m}" for m in range(1, 8)]
    assert _rows(out, ["new_spells", "new_customers", "reactivations", "active", "churned"]) == [
        (2, 2, 0, 1, 1),
        (1, 1, 0, 0, 1),
        (0, 0, 0, 0, 0),
        (0, 0, 0, 0, 0),
        (1, 1, 0, 1, 0),
        (1, 0, 1, 1, 0),
        (0, 0, 0, 0, 0),
    ]


# --- 1. layer cake ---------------------------------------------------------------------------
def test_layer_cake_small(small_audit):
    # Subscribers at each month's end (Jul: at as_of): Jan a, b; Feb a, b | c1; Mar a, b (c1
    # ended Mar10); Apr b; May b | e; Jun b | e | c2; Jul b | e | c2.
    # Revenue: Jan 30 (10 + 20); Feb 30 | 5; Mar 30 | 0; Apr-Jun 20 (b) | e 12 | c2 7;
    # Jul: b nothing (Jul31 > as_of), e 12 (Jul5), c2 7 (Jul1).
    cake = small_audit.layer_cake
    pd.testing.assert_frame_equal(cake, layer_cake(SMALL, as_of=AS_OF))
    got = {
        (str(r.period), str(r.cohort)): (r.subscribers, r.payments, r.revenue, r.age)
        for r in cake.itertuples()
    }
    assert got == {
        ("2020-01", "2020-01"): (2, 2, 30.0, 0),
        ("2020-02", "2020-01"): (2, 2, 30.0, 1),
        ("2020-02", "2020-02"): (1, 1, 5.0, 0),
        ("2020-03", "2020-01"): (2, 2, 30.0, 2),
        ("2020-03", "2020-02"): (0, 0, 0.0, 1),
        ("2020-04", "2020-01"): (1, 1, 20.0, 3),
        ("2020-04", "2020-02"): (0, 0, 0.0, 2),
        ("2020-05", "2020-01"): (1, 1, 20.0, 4),
        ("2020-05", "2020-02"): (0, 0, 0.0, 3),
        ("2020-05", "2020-05"): (1, 1, 12.0, 0),
        ("2020-06", "2020-01"): (1, 1, 20.0, 5),
        ("2020-06", "2020-02"): (0, 0, 0.0, 4),
        ("2020-06", "2020-05"): (1, 1, 12.0, 1),
        ("2020-06", "2020-06"): (1, 1, 7.0, 0),
        ("2020-07", "2020-01"): (1, 0, 0.0, 6),
        ("2020-07", "2020-02"): (0, 0, 0.0, 5),
        ("2020-07", "2020-05"): (1, 1, 12.0, 2),
        ("2020-07", "2020-06"): (1, 1, 7.0, 1),
    }
    assert cake["revenue"].sum() == pytest.approx(205.0)


def test_layer_cake_quarterly_with_yearly_cohorts(mixed_audit):
    # Quarter ends: 2020Q1-Q3 g, h (2020 cohort: 2); Q4 g, h, i1 (3); 2021Q1 g, i1 (h ended
    # Feb1; i1 ends Apr1 > Mar31): 2; Q2 g | j (2021 cohort); Q3, Q4 g | j, i2 (i2 is in the
    # cohort of its own start, 2021). Revenue: 2020Q1 g 30 + h 100; Q2, Q3 30; Q4 g 30 + i1 30;
    # 2021Q1 g 30 + i1 30; Q2 30 | j 50; Q3 and Q4 30 | j 150 + i2 60.
    cake = mixed_audit.layer_cake
    got = {(str(r.period), str(r.cohort)): (r.subscribers, r.revenue) for r in cake.itertuples()}
    assert got == {
        ("2020Q1", "2020"): (2, 130.0),
        ("2020Q2", "2020"): (2, 30.0),
        ("2020Q3", "2020"): (2, 30.0),
        ("2020Q4", "2020"): (3, 60.0),
        ("2021Q1", "2020"): (2, 60.0),
        ("2021Q1", "2021"): (0, 0.0),
        ("2021Q2", "2020"): (1, 30.0),
        ("2021Q2", "2021"): (1, 50.0),
        ("2021Q3", "2020"): (1, 30.0),
        ("2021Q3", "2021"): (2, 210.0),
        ("2021Q4", "2020"): (1, 30.0),
        ("2021Q4", "2021"): (2, 210.0),
    }
    # age in quarters from the cohort's first quarter
    assert cake.loc[cake["cohort"].astype(str) == "2021", "age"].tolist() == [0, 1, 2, 3]


# --- 2. survival by cohort -------------------------------------------------------------------
def test_survival_by_cohort_small(small_audit):
    # Jan cohort (a, b): horizons 6, 5, renewals 2, 5: at_risk 2 for t <= 5, 1 at t = 6 (b has
    # not reached its 6th renewal date, Jul31); alive 2, 2, 2, 1, 1, 1, 0.
    # Feb (c1): horizon 5, renewals 0. May (e): horizon 2 = renewals. Jun (c2): horizon 1.
    surv = small_audit.survival
    pd.testing.assert_frame_equal(surv, survival_by_cohort(SMALL, as_of=AS_OF))
    jan = surv[surv["cohort"].astype(str) == "2020-01"]
    assert jan["t"].tolist() == list(range(7))
    assert jan["at_risk"].tolist() == [2, 2, 2, 2, 2, 2, 1]
    assert jan["alive"].tolist() == [2, 2, 2, 1, 1, 1, 0]
    assert jan["survival"].tolist() == [1, 1, 1, 0.5, 0.5, 0.5, 0]
    np.testing.assert_allclose(jan["retention"], [np.nan, 1, 1, 0.5, 1, 1, 0])
    assert jan["complete"].tolist() == [True] * 6 + [False]
    assert (jan["spells"] == 2).all() and (jan["billing_period"] == "month").all()
    feb = surv[surv["cohort"].astype(str) == "2020-02"]
    assert feb["at_risk"].tolist() == [1] * 6 and feb["alive"].tolist() == [1, 0, 0, 0, 0, 0]
    assert feb["retention"].iloc[1] == 0 and feb["retention"].iloc[2:].isna().all()  # 0 / 0
    may = surv[surv["cohort"].astype(str) == "2020-05"]
    assert may["alive"].tolist() == [1, 1, 1] and may["survival"].tolist() == [1, 1, 1]
    jun = surv[surv["cohort"].astype(str) == "2020-06"]
    assert jun["t"].tolist() == [0, 1] and jun["alive"].tolist() == [1, 1]


# --- 3. churn by tenure ----------------------------------------------------------------------
def test_churn_by_tenure_small(small_audit):
    # Durations: a 3 churned, b 5 censored, c1 1 churned, c2 1 censored, e 2 censored.
    # t = 1: at risk 5, churned 1 (c1), censored 1 (c2); t = 2: at risk 3 (a, b, e), censored 1
    # (e); t = 3: at risk 2, churned 1 (a); t = 4: 1; t = 5: 1, censored 1 (b).
    # Kaplan-Meier: 0.8, 0.8, 0.4, 0.4, 0.4.
    churn = small_audit.churn
    pd.testing.assert_frame_equal(churn, churn_by_tenure(SMALL, as_of=AS_OF))
    assert _rows(churn, ["t", "at_risk", "churned", "censored"]) == [
        (1, 5, 1, 1),
        (2, 3, 0, 1),
        (3, 2, 1, 0),
        (4, 1, 0, 0),
        (5, 1, 0, 1),
    ]
    np.testing.assert_allclose(churn["churn_rate"], [0.2, 0, 0.5, 0, 0])
    np.testing.assert_allclose(churn["survival"], [0.8, 0.8, 0.4, 0.4, 0.4])
    # Wilson, 1 of 5 at 95%: z = 1.95996, centre (0.2 + z^2/10) / (1 + z^2/5) = 0.33034,
    # half-width z sqrt(0.032 + z^2/100) / (1 + z^2/5) = 0.29412: [0.0362, 0.6245].
    assert churn["churn_rate_low"].iloc[0] == pytest.approx(0.03622, abs=1e-4)
    assert churn["churn_rate_high"].iloc[0] == pytest.approx(0.62449, abs=1e-4)
    for row in churn.itertuples():
        ci = binomtest(int(row.churned), int(row.at_risk)).proportion_ci(method="wilson")
        assert (row.churn_rate_low, row.churn_rate_high) == pytest.approx((ci.low, ci.high))


def test_churn_by_tenure_keeps_billing_periods_apart(mixed_audit):
    # year: h paid once and churned (t = 1: 1 at risk, 1 churned). quarter: i1 paid twice and
    # churned, i2 made 1 renewal (censored): t = 1: 2 at risk, 0 churned, 1 censored; t = 2: 1,
    # 1 churned. month: g 23 renewals, j 6 (both censored): at risk 2 to t = 6, then 1 to 23.
    churn = mixed_audit.churn
    year = churn[churn["billing_period"] == "year"]
    assert _rows(year, ["t", "at_risk", "churned"]) == [(1, 1, 1)]
    quarter = churn[churn["billing_period"] == "quarter"]
    assert _rows(quarter, ["t", "at_risk", "churned", "censored"]) == [(1, 2, 0, 1), (2, 1, 1, 0)]
    month = churn[churn["billing_period"] == "month"]
    assert month["t"].tolist() == list(range(1, 24))
    assert month["at_risk"].tolist() == [2] * 6 + [1] * 17
    assert month["churned"].sum() == 0 and month["censored"].sum() == 2


# --- 4. revenue retention --------------------------------------------------------------------
def test_revenue_retention_small(small_audit):
    # Jan cohort (a, b): base 30; revenue by month 30, 30, 30, 20, 20, 20, 0 (Jul partial).
    # Feb (c): base 5; Feb 5, then 0, 0, 0, and c2's 7 in Jun and Jul: NRR 1.4 there, but gross
    # excludes the reactivation: GRR 0. May (e): base 12, 12, 12, 12. No Jun cohort: c2 is not
    # an acquisition.
    rr = small_audit.revenue_retention
    pd.testing.assert_frame_equal(rr, revenue_retention(SMALL, as_of=AS_OF))
    assert sorted({str(c) for c in rr["cohort"]}) == ["2020-01", "2020-02", "2020-05"]
    jan = rr[rr["cohort"].astype(str) == "2020-01"]
    assert jan["revenue"].tolist() == [30, 30, 30, 20, 20, 20, 0]
    np.testing.assert_allclose(jan["nrr"], [1, 1, 1, 2 / 3, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(jan["grr"], jan["nrr"])
    assert jan["partial"].tolist() == [False] * 6 + [True]
    assert (jan["customers"] == 2).all() and jan["paying_customers"].tolist() == [
        2,
        2,
        2,
        1,
        1,
        1,
        0,
    ]
    feb = rr[rr["cohort"].astype(str) == "2020-02"]
    np.testing.assert_allclose(feb["nrr"], [1, 0, 0, 0, 1.4, 1.4])
    np.testing.assert_allclose(feb["grr"], [1, 0, 0, 0, 0, 0])
    assert (feb["base_revenue"] == 5).all()
    may = rr[rr["cohort"].astype(str) == "2020-05"]
    assert may["nrr"].tolist() == [1, 1, 1] and may["grr"].tolist() == [1, 1, 1]


def test_revenue_retention_yearly_and_trailing(mixed_audit):
    # 2020 cohort (g, h, i): base 250; 2021: g 120 + h 0 + i 150 = 270 (NRR 1.08); gross: g
    # min(120, 120) + h 0 + i's 2020 spell only, 30, capped at 30: 150 (GRR 0.6). 2021 (j):
    # base 350. as_of is a year end: nothing partial. The trailing windows are the same two
    # calendar years, so NRR 1.08 and GRR 0.6 there too (GRR capping i at 30 with i2 included).
    rr = mixed_audit.revenue_retention
    assert _rows(rr, ["age", "customers", "revenue", "gross_revenue", "base_revenue"]) == [
        (0, 3, 250.0, 250.0, 250.0),
        (1, 3, 270.0, 150.0, 250.0),
        (0, 1, 350.0, 350.0, 350.0),
    ]
    np.testing.assert_allclose(rr["nrr"], [1, 1.08, 1])
    np.testing.assert_allclose(rr["grr"], [1, 0.6, 1])
    assert not rr["partial"].any()
    tr = mixed_audit.trailing_retention
    pd.testing.assert_frame_equal(tr, trailing_revenue_retention(MIXED, as_of=MIXED_AS_OF))
    row = tr.iloc[0]
    assert (row.window_start, row.window_end) == (
        pd.Timestamp("2021-01-01"),
        pd.Timestamp("2021-12-31"),
    )
    assert (row.previous_start, row.previous_end) == (
        pd.Timestamp("2020-01-01"),
        pd.Timestamp("2020-12-31"),
    )
    assert (row.customers, row.previous_revenue, row.retained_revenue) == (3, 250.0, 270.0)
    assert row.retained_gross_revenue == 150.0
    assert (row.nrr, row.grr) == pytest.approx((1.08, 0.6))


# --- 5. revenue per subscriber ---------------------------------------------------------------
def test_revenue_per_subscriber_small(small_audit):
    # Closing subscribers 2, 3, 2, 1, 2, 3, 3 (as in the layer cake), opening the month before
    # (0 first); new spells 2 (a, b), 1 (c1), 0, 0, 1 (e), 1 (c2), 0; served = opening + new:
    # 2, 3, 3, 2, 2, 3, 3. Revenue 30, 35, 30, 20, 32, 39, 19; paying customers 2, 3, 2, 1,
    # 2 (b, e), 3 (b, e, c), 2 (e, c). ARPU = revenue / served: Mar 30 / 3 = 10 (c1 ended
    # Mar10 without paying), Apr 20 / 2 (a ended on its renewal date Apr15, unpaid).
    arpu = small_audit.revenue_per_subscriber
    pd.testing.assert_frame_equal(arpu, revenue_per_subscriber(SMALL, as_of=AS_OF))
    assert arpu["subscribers"].tolist() == [2, 3, 2, 1, 2, 3, 3]
    assert arpu["opening_subscribers"].tolist() == [0, 2, 3, 2, 1, 2, 3]
    assert arpu["new_spells"].tolist() == [2, 1, 0, 0, 1, 1, 0]
    assert arpu["served_subscribers"].tolist() == [2, 3, 3, 2, 2, 3, 3]
    assert arpu["revenue"].tolist() == [30, 35, 30, 20, 32, 39, 19]
    assert arpu["payments"].tolist() == [2, 3, 2, 1, 2, 3, 2]
    assert arpu["paying_customers"].tolist() == [2, 3, 2, 1, 2, 3, 2]
    np.testing.assert_allclose(arpu["arpu"], [15, 35 / 3, 10, 10, 16, 13, 19 / 3])
    assert arpu["partial"].tolist() == [False] * 6 + [True]
    assert arpu["period_end"].iloc[-1] == pd.Timestamp(AS_OF)
    assert arpu["period_end"].iloc[1] == pd.Timestamp("2020-02-29")


# --- 7. concentration ------------------------------------------------------------------------
def test_concentration_small(small_audit):
    # Revenue per customer: b 120, a 30, c 19, e 36 -> sorted 19, 30, 36, 120, total 205.
    # Top 1% of 4 customers = 0.04 of b: 0.04 * 120 / 205; top 20% = 0.8 of b: 96 / 205.
    # Gini = 2 (1*19 + 2*30 + 3*36 + 4*120) / (4 * 205) - 5/4 = 1334 / 820 - 1.25 = 0.37683.
    conc = small_audit.concentration.iloc[0]
    assert conc["customers"] == 4 and conc["revenue"] == 205.0
    assert conc["top_1pct"] == pytest.approx(0.04 * 120 / 205)
    assert conc["top_5pct"] == pytest.approx(0.2 * 120 / 205)
    assert conc["top_10pct"] == pytest.approx(0.4 * 120 / 205)
    assert conc["top_20pct"] == pytest.approx(0.8 * 120 / 205)
    assert conc["gini"] == pytest.approx(1334 / 820 - 1.25)
    deciles = small_audit.revenue_deciles
    # 4 customers: ranks 0-3 fall in deciles floor(10 r / 4) + 1 = 1, 3, 6, 8.
    assert deciles.loc[deciles["customers"] > 0, "decile"].tolist() == [1, 3, 6, 8]
    assert deciles.loc[deciles["customers"] > 0, "revenue"].tolist() == [120, 36, 30, 19]
    assert deciles["payments"].sum() == 15 and deciles["revenue_share"].sum() == pytest.approx(1)
    table, dec = revenue_concentration(SMALL, as_of=AS_OF)
    pd.testing.assert_frame_equal(table, small_audit.concentration)
    pd.testing.assert_frame_equal(dec, deciles)


# --- headline --------------------------------------------------------------------------------
def test_headline_small(small_audit):
    # Active at as_of: b, c2, e (e's end is after as_of). Run rate (20 + 7 + 12) x 12 = 468.
    # Churns in (2019-07-20, 2020-07-20]: a (Apr15), c1 (Mar10). Spells active at as_of - k
    # months, k = 1..12: Jun20 b, c2, e (3); May20 b, e (2); Apr20 b (1, a ended Apr15); Mar20
    # a, b (2); Feb20 a, b, c1 (3); Jan20 a (1); before: 0 -> 12 subscriber-months; 2 / 12.
    head = small_audit.headline
    assert head == {
        "as_of": "2020-07-20",
        "subscribers": 3,
        "active_customers": 3,
        "customers": 4,
        "spells": 5,
        "reactivations": 1,
        "spells_after_as_of": 1,
        "revenue_run_rate": 468.0,
        "revenue_12m": 205.0,
        "churn_rate_monthly_12m": pytest.approx(2 / 12),
        "churned_12m": 2,
        "nrr_12m": head["nrr_12m"],
        "grr_12m": head["grr_12m"],
        "billing_periods": {"month": {"spells": 5, "subscribers": 3}},
    }
    assert math.isnan(head["nrr_12m"]) and math.isnan(head["grr_12m"])  # nobody paid 2018-19


def test_headline_mixed(mixed_audit):
    # Active at as_of: g, i2, j: run rate 10 x 12 + 60 x 4 + 50 x 12 = 960. 2021 revenue 620.
    # Churns in 2021: h (Feb1), i1 (Apr1). Active at 2020-12-31 and the 11 month-ends of 2021
    # before December: g 12, h 2 (Dec31, Jan31), i1 4 (Dec31 .. Mar31), i2 5 (Jul31 .. Nov30),
    # j 6 (Jun30 .. Nov30): 29 subscriber-months.
    head = mixed_audit.headline
    assert head["subscribers"] == 3 and head["customers"] == 4 and head["reactivations"] == 1
    assert head["revenue_run_rate"] == 960.0 and head["revenue_12m"] == 620.0
    assert head["churn_rate_monthly_12m"] == pytest.approx(2 / 29)
    assert (head["nrr_12m"], head["grr_12m"]) == pytest.approx((1.08, 0.6))
    assert head["billing_periods"] == {
        "month": {"spells": 2, "subscribers": 2},
        "quarter": {"spells": 2, "subscribers": 1},
        "year": {"spells": 1, "subscribers": 0},
    }


# --- brute force on random spells ------------------------------------------------------------
def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, the day clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def random_spells(seed: int = 3, n_customers: int = 1200) -> pd.DataFrame:
    """~2,000 spells: 1-3 per customer, starts 2018-2021 on any day (the 29th-31st included),
    lengths geometric in billing periods with ends on and off the renewal dates, some ends
    after the as-of date; mostly monthly billing, some quarterly and yearly."""
    rng = np.random.default_rng(seed)
    rows = []
    base = dt.date(2018, 1, 1)
    for i in range(n_customers):
        day = base + dt.timedelta(days=int(rng.integers(0, 1250)))
        bp = str(rng.choice(["month", "quarter", "year"], p=[0.7, 0.2, 0.1]))
        for spell in range(1, int(rng.integers(1, 4)) + 1):
            n = MONTHS[bp]
            length = int(rng.geometric(0.15))
            end: dt.date | None = add_months(day, length * n)
            if rng.random() < 0.3:  # cancelled between renewal dates
                end = end - dt.timedelta(days=int(rng.integers(0, 28)))
            if end < day:
                end = day
            if rng.random() < 0.15:
                end = None
            price = float(rng.choice([9.99, 15.0, 29.0, 99.0]))
            rows.append(
                (f"cust-{i:05d}", spell, day.isoformat(), end and end.isoformat(), price, bp)
            )
            if end is None:
                break
            day = end + dt.timedelta(days=int(rng.integers(1, 200)))
    return spells_frame(rows)


def brute_force(spells: pd.DataFrame, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Survival and churn tables and customer revenue counted spell by spell in Python."""
    surv: dict[tuple, list[int]] = {}
    churn: dict[tuple, list[int]] = {}
    revenue: dict[str, float] = {}
    for r in spells.itertuples():
        start = r.start.date()
        if start > as_of:
            continue
        n = MONTHS[r.billing_period]
        end = None if pd.isna(r.end) or r.end.date() > as_of else r.end.date()
        dates = [start]  # payments: renewal dates before end, on or before as_of
        k = 1
        while add_months(start, k * n) <= as_of and (end is None or add_months(start, k * n) < end):
            dates.append(add_months(start, k * n))
            k += 1
        revenue[r.customer_id] = revenue.get(r.customer_id, 0.0) + r.price * len(dates)
        cohort = str(pd.Period(start, "M"))
        t = 0
        while add_months(start, t * n) <= as_of:  # t-th renewal date observed
            cell = surv.setdefault((cohort, r.billing_period, t), [0, 0])
            cell[0] += 1
            cell[1] += add_months(start, t * n) in dates
            t += 1
        duration = len(dates) if end is not None else len(dates) - 1
        for t in range(1, duration + 1):
            cell = churn.setdefault((r.billing_period, t), [0, 0])
            cell[0] += 1
            cell[1] += end is not None and t == duration
    return {
        "survival": pd.DataFrame(
            [(*k, *v) for k, v in surv.items()],
            columns=["cohort", "billing_period", "t", "at_risk", "alive"],
        ),
        "churn": pd.DataFrame(
            [(*k, *v) for k, v in churn.items()],
            columns=["billing_period", "t", "at_risk", "churned"],
        ),
        "revenue": pd.Series(revenue),
    }


@pytest.fixture(scope="module")
def random_book(tmp_path_factory):
    spells = random_spells()
    path = tmp_path_factory.mktemp("spells") / "spells.parquet"
    spells.to_parquet(path, index=False)
    return spells, path


@pytest.mark.parametrize("as_of", ["2021-06-30", "2021-03-17"])
def test_survival_and_churn_match_brute_force(random_book, as_of):
    spells, _ = random_book
    assert len(spells) >= 1800
    want = brute_force(spells, dt.date.fromisoformat(as_of))
    surv = survival_by_cohort(spells, as_of=as_of)
    got = surv.assign(cohort=surv["cohort"].astype(str))
    keys = ["cohort", "billing_period", "t"]
    merged = got.merge(want["survival"], on=keys, how="outer", suffixes=("", "_bf"), indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["at_risk"] == merged["at_risk_bf"]).all()
    assert (merged["alive"] == merged["alive_bf"]).all()
    churn = churn_by_tenure(spells, as_of=as_of)
    merged = churn.merge(
        want["churn"], on=["billing_period", "t"], how="outer", suffixes=("", "_bf"), indicator=True
    )
    assert (merged["_merge"] == "both").all()
    assert (merged["at_risk"] == merged["at_risk_bf"]).all()
    assert (merged["churned"] == merged["churned_bf"]).all()
    assert set(churn["billing_period"]) == {"month", "quarter", "year"}


def test_concentration_matches_numpy(random_book):
    spells, _ = random_book
    as_of = "2021-06-30"
    x = np.sort(brute_force(spells, dt.date.fromisoformat(as_of))["revenue"].to_numpy())
    n, total = x.size, x.sum()
    top = np.concatenate([[0.0], np.cumsum(x[::-1])]) / total
    gini = np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean())
    table, deciles = revenue_concentration(spells, as_of=as_of)
    row = table.iloc[0]
    assert row["customers"] == n and row["revenue"] == pytest.approx(total, rel=1e-12)
    for f in (0.01, 0.05, 0.10, 0.20):
        want = np.interp(f * n, np.arange(n + 1), top)
        assert row[f"top_{round(f * 100)}pct"] == pytest.approx(want, rel=1e-10)
    assert row["gini"] == pytest.approx(gini, rel=1e-10)
    ranks = np.arange(n)
    decile_of = (10 * ranks) // n + 1
    desc = x[::-1]
    want_rev = [desc[decile_of == d].sum() for d in range(1, 11)]
    np.testing.assert_allclose(deciles["revenue"], want_rev, rtol=1e-10)


def test_parquet_path_memory_cap_and_one_thread_give_the_same_audit(random_book):
    spells, path = random_book
    a = subscription_audit(spells, as_of="2021-06-30")
    b = subscription_audit(path, as_of="2021-06-30", memory_limit="256MB", threads=1)
    for name, table in a.tables().items():
        pd.testing.assert_frame_equal(b.tables()[name], table, rtol=1e-9, obj=name)
    assert a.headline == b.headline
    # the layer cake's subscribers at each month's end, brute force
    cake = a.layer_cake.groupby("period")["subscribers"].sum()
    for period in cake.index[::7]:
        end = min(period.end_time.normalize(), pd.Timestamp("2021-06-30"))
        ends = spells["end"].where(spells["end"] <= pd.Timestamp("2021-06-30"))
        active = (spells["start"] <= end) & (ends.isna() | (ends > end))
        assert cake[period] == int(active.sum()), period


# --- outputs: no ids, strict JSON, no prices, errors -----------------------------------------
def test_no_customer_id_in_any_table(small_audit, mixed_audit):
    for audit, spells in ((small_audit, SMALL), (mixed_audit, MIXED)):
        ids = set(spells["customer_id"])
        for name, table in audit.tables().items():
            assert "customer_id" not in table.columns, name
            cells = set(table.astype(str).to_numpy().ravel())
            assert not ids & cells, name
        assert not any(i in json.dumps(audit.to_json_dict(tables=True)) for i in ids)


def test_to_json_dict_is_strict(small_audit):
    text = dumps_strict(small_audit.to_json_dict(tables=True))
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert back["headline"]["nrr_12m"] is None  # NaN written as null
    assert back["headline"]["subscribers"] == 3
    assert back["concentration"]["customers"] == 4
    assert back["tables"]["layer_cake"][0]["period"] == "2020-01"
    assert back["trailing_retention"]["window_end"] == "2020-07-20"
    assert set(back["tables"]) == set(small_audit.tables())


def test_without_prices_revenue_is_nan_not_zero():
    spells = SMALL.assign(price=np.nan)
    audit = subscription_audit(spells, as_of=AS_OF)
    assert audit.layer_cake["revenue"].isna().all()
    assert (
        audit.layer_cake["subscribers"].tolist()
        == subscription_audit(SMALL, as_of=AS_OF).layer_cake["subscribers"].tolist()
    )
    assert audit.revenue_per_subscriber["arpu"].isna().all()
    assert audit.concentration["gini"].isna().all()
    assert math.isnan(audit.headline["revenue_run_rate"])
    assert math.isnan(audit.headline["revenue_12m"])
    json.loads(dumps_strict(audit.to_json_dict(tables=True)))


def test_bad_inputs():
    with pytest.raises(DataError, match="missing column"):
        subscription_audit(SMALL.drop(columns="price"), as_of=AS_OF)
    bad = SMALL.copy()
    bad.loc[2, "end"] = pd.Timestamp("2020-01-01")
    with pytest.raises(DataError, match="row 3, column end"):
        subscription_audit(bad, as_of=AS_OF)
    bad = SMALL.assign(billing_period=["month", "week", "month", "month", "month", "month"])
    with pytest.raises(DataError, match="row 2, column billing_period"):
        subscription_audit(bad, as_of=AS_OF)
    with pytest.raises(DataError, match="no subscription spell"):
        subscription_audit(SMALL, as_of="2019-12-31")
    with pytest.raises(DataError, match="file not found"):
        subscription_audit("/nonexistent/spells.parquet", as_of=AS_OF)
    with pytest.raises(ConfigError, match="period"):
        subscription_audit(SMALL, as_of=AS_OF, period="fortnight")
    with pytest.raises(ConfigError, match="as_of"):
        subscription_audit(SMALL, as_of="not a date")


# --- figures ---------------------------------------------------------------------------------
def _labelled(fig: Figure) -> None:
    for ax in fig.get_axes():
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_ylabel(), "unlabelled y axis"
    assert any(ax.get_xlabel() for ax in fig.get_axes())


def test_figures_build_labelled(small_audit, mixed_audit, tmp_path):
    figs = {
        "cake_subs": plot_layer_cake(small_audit),
        "cake_rev": plot_layer_cake(mixed_audit.layer_cake, "revenue", currency="USD"),
        "survival": plot_survival_by_cohort(small_audit),
        "churn": plot_churn_by_tenure(mixed_audit),
        "retention": plot_revenue_retention(small_audit),
        "arpu": plot_revenue_per_subscriber(small_audit, currency="EUR"),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        _labelled(fig)
    cake = figs["cake_subs"].get_axes()[0]
    areas = [c for c in cake.collections if isinstance(c, PolyCollection)]
    assert len(areas) == small_audit.layer_cake["cohort"].nunique()
    assert [t.get_text() for t in cake.get_legend().get_texts()][:2] == ["2020-01", "2020-02"]
    churn = figs["churn"].get_axes()[0]
    assert len(churn.get_lines()) == 3  # one per billing period
    assert len(figs["retention"].get_axes()) == 2  # net and gross
    (written,) = savefig(figs["arpu"], tmp_path / "arpu.png")
    assert written.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        plot_layer_cake(small_audit, "customers")


def test_many_cohorts_get_a_colour_bar(random_book):
    spells, _ = random_book
    audit = subscription_audit(spells, as_of="2021-06-30")
    assert audit.layer_cake["cohort"].nunique() >= 40
    for fig in (
        plot_layer_cake(audit, "revenue"),
        plot_survival_by_cohort(audit),
        plot_revenue_retention(audit, measures=("nrr",)),
    ):
        _labelled(fig)
        bars = [ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]
        assert len(bars) == 1
        assert all(ax.get_legend() is None for ax in fig.get_axes())
        labels = [t.get_text() for t in bars[0].get_yticklabels()]
        assert "2019" in labels and "2020" in labels
