"""Customer-base audit on hand-made logs with answers worked out by hand, and a smoke check on the
bundled CDNOW sample against properties that must hold and a published count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbcv.audit import (
    c3_table,
    c3_wide,
    cohort_table,
    concentration,
    customer_base_audit,
    customer_deciles,
    decile_migration,
    decile_table,
    interpurchase_histogram,
    interpurchase_summary,
    interpurchase_times,
    repeat_rates,
    whale_curve,
)
from cbcv.core.errors import CbcvError, ConfigError, DataError
from cbcv.data.transactions import to_daily


def _log(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"]).assign(
        date=lambda d: pd.to_datetime(d["date"])
    )


@pytest.fixture()
def three_customers() -> pd.DataFrame:
    """A and B acquired in 1997Q1, C in 1997Q2.

    A: 10 + 5 on 1997-01-10 (one day, 15), 20 on 1997-04-05.
    B: 30 and a return of 10 on 1997-02-01 (one day, net 20), 7 on 1997-07-15.
    C: 40 on 1997-05-20, a return-only day 1997-05-25 (dropped), 8 on 1997-05-30.
    """
    return _log(
        [
            ("A", "1997-01-10", 10.0),
            ("A", "1997-01-10", 5.0),
            ("A", "1997-04-05", 20.0),
            ("B", "1997-02-01", 30.0),
            ("B", "1997-02-01", -10.0),
            ("B", "1997-07-15", 7.0),
            ("C", "1997-05-20", 40.0),
            ("C", "1997-05-25", -5.0),
            ("C", "1997-05-30", 8.0),
        ]
    )


@pytest.fixture()
def spends_1_to_10() -> pd.DataFrame:
    """Ten customers c01..c10 with one purchase each in 1997, customer ci spending i."""
    return _log([(f"c{i:02d}", f"1997-03-{i:02d}", float(i)) for i in range(1, 11)])


# --- cohorts and the C3 ------------------------------------------------------------------------


def test_c3_table_by_hand(three_customers):
    c3 = c3_table(three_customers, "quarter")
    got = [
        (str(r.period), str(r.cohort), r.age, r.revenue, r.active_customers, r.transactions)
        for r in c3.itertuples()
    ]
    assert got == [
        ("1997Q1", "1997Q1", 0, 35.0, 2, 2),  # A 15 (merged day) + B 20 (return netted)
        ("1997Q2", "1997Q1", 1, 20.0, 1, 1),
        ("1997Q2", "1997Q2", 0, 48.0, 1, 2),  # C 40 + 8; the return-only day is not a purchase
        ("1997Q3", "1997Q1", 2, 7.0, 1, 1),
        ("1997Q3", "1997Q2", 1, 0.0, 0, 0),  # inactive cohort kept as zeros
    ]


def test_c3_wide_stacks_to_period_totals(three_customers):
    wide = c3_wide(c3_table(three_customers, "Q"))
    assert [str(c) for c in wide.columns] == ["1997Q1", "1997Q2"]
    np.testing.assert_allclose(wide.to_numpy(), [[35.0, 0.0], [20.0, 48.0], [7.0, 0.0]])
    active = c3_wide(c3_table(three_customers, "Q"), "active_customers")
    assert active.to_numpy().tolist() == [[2, 0], [1, 1], [1, 0]]


def test_c3_coarser_cohorts_and_as_of(three_customers):
    c3 = c3_table(three_customers, "quarter", cohort_period="year")
    assert c3["cohort"].astype(str).unique().tolist() == ["1997"]
    assert c3["revenue"].tolist() == [35.0, 68.0, 7.0]
    cut = c3_table(three_customers, "quarter", as_of="1997-06-30")
    assert cut["period"].astype(str).tolist() == ["1997Q1", "1997Q2", "1997Q2"]
    assert cut["revenue"].sum() == 35.0 + 20.0 + 48.0


def test_c3_monthly_keeps_zero_months(three_customers):
    c3 = c3_table(three_customers, "month")
    jan = c3[c3["cohort"].astype(str) == "1997-01"]  # A only
    assert jan["period"].astype(str).tolist()[:4] == ["1997-01", "1997-02", "1997-03", "1997-04"]
    assert jan["revenue"].tolist() == [15.0, 0.0, 0.0, 20.0, 0.0, 0.0, 0.0]
    assert jan["age"].tolist() == list(range(7))


def test_cohort_table_by_hand(three_customers):
    t = cohort_table(three_customers, "quarter").set_index(
        cohort_table(three_customers, "quarter")["cohort"].astype(str)
    )
    q1, q2 = t.loc["1997Q1"], t.loc["1997Q2"]
    assert q1["customers"] == 2 and q2["customers"] == 1
    assert q1["first_purchase_revenue"] == 35.0 and q2["first_purchase_revenue"] == 40.0
    assert q1["revenue"] == 62.0 and q2["revenue"] == 48.0
    assert q1["revenue_per_customer"] == 31.0
    assert q1["repeat_share"] == 1.0 and q2["repeat_share"] == 1.0
    assert q1["transactions"] == 4 and q1["transactions_per_customer"] == 2.0
    assert q2["transactions"] == 2

    early = cohort_table(three_customers, "quarter", as_of="1997-03-31")
    assert early["customers"].tolist() == [2]
    assert early["repeat_share"].tolist() == [0.0]  # neither A nor B repeated by then


# --- repeat buying -----------------------------------------------------------------------------


def test_repeat_rates_by_hand(three_customers):
    r = repeat_rates(three_customers, "quarter")
    q1 = r[r["cohort"].astype(str) == "1997Q1"]
    assert q1["age"].tolist() == [0, 1, 2]
    assert q1["period"].astype(str).tolist() == ["1997Q1", "1997Q2", "1997Q3"]
    assert q1["repeat_customers"].tolist() == [0, 1, 2]  # A repeats at age 1, B at age 2
    assert q1["repeat_share"].tolist() == [0.0, 0.5, 1.0]
    assert q1["active_customers"].tolist() == [2, 1, 1]
    assert q1["active_share"].tolist() == [1.0, 0.5, 0.5]
    q2 = r[r["cohort"].astype(str) == "1997Q2"]
    assert q2["repeat_customers"].tolist() == [1, 1]  # C's second purchase is in its first quarter
    assert q2["active_customers"].tolist() == [1, 0]


# --- deciles -----------------------------------------------------------------------------------


def test_deciles_of_spends_1_to_10(spends_1_to_10):
    d = decile_table(spends_1_to_10, "1997")
    assert d["decile"].tolist() == list(range(1, 11))
    assert d["customers"].tolist() == [1] * 10
    np.testing.assert_allclose(d["customer_share"], 0.1)
    np.testing.assert_allclose(d["revenue"], np.arange(10, 0, -1))
    np.testing.assert_allclose(d["revenue_share"], np.arange(10, 0, -1) / 55.0)
    np.testing.assert_allclose(d["transaction_share"], 0.1)
    np.testing.assert_allclose(d["mean_spend"], np.arange(10, 0, -1))
    np.testing.assert_allclose(d["mean_transactions"], 1.0)
    assert "customer_id" not in d.columns


def test_decile_group_sizes_are_equal_count():
    log = _log([(f"c{i:02d}", "1997-01-01", float(i + 1)) for i in range(25)])
    d = decile_table(log)
    # floor(10 r / 25) + 1 for ranks r = 0..24
    assert d["customers"].tolist() == [3, 2, 3, 2, 3, 2, 3, 2, 3, 2]
    assert d["customer_share"].sum() == pytest.approx(1.0)
    assert d["revenue_share"].sum() == pytest.approx(1.0)
    few = decile_table(log.head(4))
    # n = 4: ranks 0, 1, 2, 3 -> deciles 1, 3 (10/4), 6 (20/4), 8 (30/4)
    assert few["customers"].tolist() == [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]
    assert few["mean_spend"].isna().sum() == 6


def test_decile_ties_broken_by_transactions_then_id():
    log = _log(
        [
            ("c", "1997-01-01", 5.0),
            ("a", "1997-01-01", 5.0),
            ("b", "1997-01-01", 2.0),
            ("b", "1997-01-02", 3.0),  # b also spends 5, on two days
            ("d", "1997-01-01", 9.0),
        ]
    )
    ranked = customer_deciles(log)
    assert ranked["customer_id"].tolist() == ["d", "b", "a", "c"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    # a shuffled log gives the same ranking
    again = customer_deciles(log.sample(frac=1.0, random_state=3))
    assert again["customer_id"].tolist() == ["d", "b", "a", "c"]


def test_decile_windows_are_inclusive(spends_1_to_10):
    by_period = decile_table(spends_1_to_10, "1997-03")
    by_range = decile_table(spends_1_to_10, ("1997-03-01", "1997-03-31"))
    pd.testing.assert_frame_equal(by_period, by_range)
    part = decile_table(spends_1_to_10, ("1997-03-02", "1997-03-10"))  # c01 is outside
    assert part["customers"].sum() == 9
    assert part["revenue"].sum() == 54.0


def test_decile_migration_by_hand(spends_1_to_10):
    later = _log(
        [
            ("c10", "1998-02-01", 1.0),
            ("c09", "1998-02-01", 100.0),
            ("new", "1998-03-01", 50.0),
        ]
    )
    m = decile_migration(pd.concat([spends_1_to_10, later]), "1997", "1998")
    assert list(m.counts.columns) == [str(i) for i in range(1, 11)] + ["inactive"]
    assert m.counts.index.tolist() == list(range(1, 11))
    # 1998 buyers ranked: c09 (rank 0 -> decile 1), new (rank 1 -> 4), c10 (rank 2 -> 7)
    assert m.counts.loc[1].to_dict() == {**{str(i): 0 for i in range(1, 11)}, "7": 1, "inactive": 0}
    assert m.counts.loc[2, "1"] == 1 and m.counts.loc[2].sum() == 1
    assert (m.counts.loc[3:, "inactive"] == 1).all()
    assert m.counts.to_numpy().sum() == 10
    np.testing.assert_allclose(m.row_shares.sum(axis=1), 1.0)
    assert m.row_shares.loc[1, "7"] == 1.0
    assert m.period_1 == "1997" and m.period_2 == "1998"


def test_decile_migration_to_an_empty_period(spends_1_to_10):
    m = decile_migration(spends_1_to_10, "1997", "1999")
    assert (m.counts["inactive"] == 1).all()


# --- concentration -----------------------------------------------------------------------------


def test_gini_and_top_shares_of_spends_1_to_10(spends_1_to_10):
    s = concentration(spends_1_to_10, "1997")
    # Gini of 1..n is (n - 1) / (3 n) = 0.3 for n = 10
    assert s.gini == pytest.approx(0.3)
    assert s.customers == 10 and s.revenue == 55.0
    assert s.top_10pct == pytest.approx(10 / 55)
    assert s.top_20pct == pytest.approx(19 / 55)
    assert s.top_1pct == pytest.approx(0.1 * 10 / 55)  # a tenth of the best customer
    curve = whale_curve(spends_1_to_10)
    assert len(curve) == 11
    assert curve.iloc[0].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(curve["revenue_share"], np.cumsum([0] + list(range(10, 0, -1))) / 55)
    np.testing.assert_allclose(curve["customer_share"], np.arange(11) / 10)


def _gini(spends: list[float]) -> float:
    """The Gini coefficient the SQL audit computes for buyers spending ``spends`` (one purchase
    day each; zero-priced days count as purchases so that a buyer may spend nothing)."""
    log = _log([(f"c{i:02d}", "1997-01-01", x) for i, x in enumerate(spends)])
    return concentration(log, zero_amount_purchases=True).gini


def test_gini_limits():
    assert _gini([4.0, 4.0, 4.0]) == pytest.approx(0.0)
    assert _gini([0.0, 0.0, 0.0, 10.0]) == pytest.approx(0.75)  # (n - 1) / n
    assert np.isnan(_gini([0.0, 0.0]))
    # mean-absolute-difference form: sum_ij |xi - xj| / (2 n^2 mean)
    x = np.array([3.0, 1.0, 7.5, 2.0, 0.0, 11.0])
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert _gini(list(x)) == pytest.approx(mad)


def test_a_day_netting_below_zero_is_not_a_buyer():
    log = _log(
        [
            ("neg", "1997-01-01", 10.0),
            ("neg", "1997-01-01", -15.0),  # same day: net -5, not a purchase day
            ("mid", "1997-01-01", 5.0),
            ("top", "1997-01-01", 15.0),
        ]
    )
    s = concentration(log)
    assert s.customers == 2 and s.negative_customers == 0
    assert s.net_revenue == 20.0 and s.revenue == 20.0
    # spends 5, 15: G = 2 (1*5 + 2*15) / (2 * 20) - 3 / 2 = 0.25
    assert s.gini == pytest.approx(0.25)
    curve = whale_curve(log)
    np.testing.assert_allclose(curve["revenue_share"], [0.0, 0.75, 1.0])


# --- inter-purchase times ----------------------------------------------------------------------


def test_interpurchase_times_by_hand(three_customers):
    t = interpurchase_times(three_customers)
    # A: 1997-01-10 -> 04-05 = 85 days; B: 02-01 -> 07-15 = 164; C: 05-20 -> 05-30 = 10
    # (C's return-only day on 05-25 is not a purchase)
    assert t["customer_id"].tolist() == ["A", "B", "C"]
    assert t["days"].tolist() == [85, 164, 10]
    assert t["purchase_number"].tolist() == [2, 2, 2]
    assert t["cohort"].astype(str).tolist() == ["1997Q1", "1997Q1", "1997Q2"]

    s = interpurchase_summary(t).iloc[0]
    assert s["repeat_purchases"] == 3 and s["customers"] == 3
    assert s["median"] == 85.0 and s["mean"] == pytest.approx(259 / 3)
    assert s["min"] == 10.0 and s["max"] == 164.0

    h = interpurchase_histogram(t, bin_days=30)
    assert h["days_from"].tolist() == [1, 31, 61, 91, 121, 151]
    assert h["days_to"].tolist() == [30, 60, 90, 120, 150, 180]
    assert h["count"].tolist() == [1, 0, 1, 0, 0, 1]
    assert h["cumulative_share"].iloc[-1] == pytest.approx(1.0)

    capped = interpurchase_histogram(t, bin_days=30, max_days=90)
    assert capped["count"].tolist() == [1, 0, 1, 1]
    assert np.isnan(capped["days_to"].iloc[-1])

    by = interpurchase_histogram(t, bin_days=30, by="cohort")
    assert by.groupby(by["cohort"].astype(str))["count"].sum().to_dict() == {
        "1997Q1": 2,
        "1997Q2": 1,
    }
    # every group has the same bins, the open one included where only 1997Q1 reaches it
    capped_by = interpurchase_histogram(t, bin_days=30, max_days=90, by="cohort")
    counts = capped_by.groupby(capped_by["cohort"].astype(str))["count"].apply(list).to_dict()
    assert counts == {"1997Q1": [0, 0, 1, 1], "1997Q2": [1, 0, 0, 0]}
    per_cohort = interpurchase_summary(t, by="cohort")
    assert per_cohort["cohort"].astype(str).tolist() == ["1997Q1", "1997Q2"]
    assert per_cohort["median"].tolist() == [124.5, 10.0]  # (85 + 164) / 2 and C's 10


def test_interpurchase_without_repeat_buyers(spends_1_to_10):
    t = interpurchase_times(spends_1_to_10)
    assert t.empty
    assert interpurchase_summary(t)["repeat_purchases"].tolist() == [0]


# --- user errors -------------------------------------------------------------------------------


def test_user_errors_are_cbcv_errors(three_customers):
    with pytest.raises(DataError, match="amount"):
        cohort_table(three_customers.drop(columns="amount"))
    with pytest.raises(ConfigError, match="fortnight"):
        c3_table(three_customers, "fortnight")
    with pytest.raises(ConfigError, match="not a period"):
        decile_table(three_customers, "next year")
    with pytest.raises(ConfigError, match="before start"):
        decile_table(three_customers, ("1997-05-01", "1997-01-01"))
    with pytest.raises(DataError, match="no purchases"):
        concentration(three_customers, "2001")
    with pytest.raises(CbcvError):
        cohort_table(three_customers, as_of="1996-01-01")


# --- CDNOW sample smoke check ------------------------------------------------------------------


def test_cdnow_sample_audit(cdnow_sample_tx):
    tx = cdnow_sample_tx
    rule = {"zero_amount_purchases": True}  # the papers count CDNOW's $0 purchases
    days = to_daily(tx, **rule)
    c3 = c3_table(tx, "month", **rule)
    assert c3["revenue"].sum() == pytest.approx(days["amount"].sum())
    assert c3["transactions"].sum() == len(days)
    # every customer is active in the period of acquisition
    first = days.groupby("customer_id")["date"].min().dt.to_period("M").value_counts()
    at_birth = c3[c3["age"] == 0].set_index("cohort")["active_customers"]
    assert at_birth.to_dict() == first.to_dict()

    cohorts = cohort_table(tx, "quarter", **rule)
    assert cohorts["customers"].sum() == 2357
    # under the default rule (a purchase nets to more than 0) the 8 customers whose only
    # purchases cost $0 are not customers
    assert cohort_table(tx, "quarter")["customers"].sum() == 2349
    assert cohorts["cohort"].astype(str).tolist() == ["1997Q1"]

    d = decile_table(tx, "1997", **rule)
    assert d["customer_share"].sum() == pytest.approx(1.0)
    assert d["revenue_share"].sum() == pytest.approx(1.0)
    assert d["transaction_share"].sum() == pytest.approx(1.0)
    assert d["customers"].sum() == days.loc[days["date"].dt.year == 1997, "customer_id"].nunique()
    assert (d["mean_spend"].diff().dropna() <= 0).all()

    s = concentration(tx, "1997", **rule)
    assert 0.0 < s.top_1pct < s.top_10pct < s.top_20pct < 1.0
    # decile 1 holds 236 of 2,357 buyers, the top 10% 235.7 of them: nearly the same share
    assert s.top_10pct == pytest.approx(d.loc[0, "revenue_share"], abs=2e-3)
    assert 0.0 < s.gini < 1.0

    # Fader, Hardie & Lee (2005): 1,411 of the 2,357 customers made no repeat purchase in the
    # calibration period (to 1997-09-30).
    r = repeat_rates(tx, "quarter", as_of="1997-09-30", **rule)
    assert r["repeat_customers"].iloc[-1] == 2357 - 1411


def test_customer_base_audit_bundles_the_tables(three_customers):
    a = customer_base_audit(
        three_customers, period="quarter", window="1997", migration=("1997Q1", "1997Q2")
    )
    pd.testing.assert_frame_equal(a.c3, c3_table(three_customers, "quarter"))
    assert a.concentration == concentration(three_customers, "1997")
    tables = a.tables()
    assert set(tables) >= {"cohorts", "c3", "deciles", "whale_curve", "decile_migration_counts"}
    assert tables["c3"]["period"].tolist() == ["1997Q1", "1997Q2", "1997Q2", "1997Q3", "1997Q3"]
    assert all("customer_id" not in t.columns for t in tables.values())
    # as_of cuts the log before every table
    early = customer_base_audit(three_customers, as_of="1997-03-31")
    assert early.cohorts["revenue"].tolist() == [35.0]
    assert early.interpurchase_stats["repeat_purchases"].tolist() == [0]


def test_as_of_applies_the_customer_day_rule_once():
    # a day whose return exceeds its purchase nets below zero and is not a purchase occasion;
    # cutting the log with as_of must apply the same rule
    tx = _log(
        [
            ("A", "1997-01-10", 10.0),
            ("A", "1997-02-10", 5.0),
            ("A", "1997-02-10", -12.0),
            ("B", "1997-03-01", 8.0),
            ("B", "1997-06-01", 9.0),
        ]
    )
    whole = customer_base_audit(tx)
    cut = customer_base_audit(tx, as_of="1997-12-31")
    for name, table in whole.tables().items():
        pd.testing.assert_frame_equal(cut.tables()[name], table, obj=name)
    assert whole.cohorts["transactions"].sum() == 3  # A's 02-10 nets to -7
