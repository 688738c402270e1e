"""The simulated subscription company (:mod:`cbcv.data.simulate.subscriptions`), its true
subscriber equity (:mod:`cbcv.valuation.subscription_truth`) and the demo company's records
derived from the five-cohort survivor table (:func:`cbcv.data.research_sets.multi_cohort_subscription_records`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from cbcv.data.catalog import raw_data_dir
from cbcv.data.research_sets import (
    SUBSCRIPTION_DEMO_FILE,
    multi_cohort_subscription_records,
    read_multi_cohort_retention,
    write_subscription_demo,
)
from cbcv.data.simulate.acquisitions import AcquisitionParams, simulate_acquisitions
from cbcv.data.simulate.subscriptions import (
    Plan,
    RetentionPopulation,
    SubscriptionSpec,
    alpha_beta,
    simulate_subscriptions,
)
from cbcv.valuation.subscription_truth import (
    new_subscriber_value,
    renewals_and_next_due,
    true_subscriber_equity,
)

PERIODS = pd.period_range("2021-01", "2023-12", freq="M")
ACQUISITION = AcquisitionParams(market=40_000, never=0.3, rate=0.02, season=(0.0,) * 11 + (0.8,))
SPEC = SubscriptionSpec(RetentionPopulation(0.06, 0.35, 6.0, 0.3),
                        plans={"basic": Plan(9.0, 0.7), "plus": Plan(19.0, 0.3)})
AS_OF = pd.Timestamp("2023-12-31")


def test_demo_records_are_the_survivor_table() -> None:
    """Every count of the five-cohort table is the count of the demo's subscribers of that
    cohort who made ``t`` renewals by the end of 2007; the shipped CSV is this derivation."""
    table = read_multi_cohort_retention()
    records = multi_cohort_subscription_records()
    assert len(records) == 50_000 and records["customer_id"].is_unique
    year = records["start"].dt.year
    for cohort, group in table.groupby("cohort"):
        first = int(group["year"].iloc[0])
        mine = records[year == first]
        paid = (mine["end"].dt.year - mine["start"].dt.year).where(mine["end"].notna())
        for t, alive in zip(group["t"], group["alive"], strict=True):
            made = int((paid.isna() | (paid > t)).sum())  # made renewal t: still subscribed or paid > t
            assert made == alive, (cohort, t)
        # the still subscribed have made every renewal up to 2007-12-31, and are censored there
        active = mine[mine["end"].isna()]
        n, _ = renewals_and_next_due(active["start"], pd.Timestamp("2007-12-31"), 12)
        assert (n == 2007 - first).all()
    assert records["end"].dropna().max() <= pd.Timestamp("2007-12-31")
    assert set(records["plan"]) == {"standard", "premium"}


def test_shipped_demo_csv_is_reproducible(tmp_path) -> None:
    fresh = write_subscription_demo(tmp_path / SUBSCRIPTION_DEMO_FILE)
    assert fresh.read_bytes() == (raw_data_dir() / SUBSCRIPTION_DEMO_FILE).read_bytes()


def test_simulated_cohorts_follow_their_parameters() -> None:
    counts = simulate_acquisitions(ACQUISITION, PERIODS, seed=1)
    sim = simulate_subscriptions(counts, SPEC, as_of=AS_OF, seed=2)
    rec = sim.records
    assert len(rec) == counts["new_customers"].sum()
    assert rec["end"].dropna().max() <= AS_OF and rec["start"].max() <= AS_OF
    by_cohort = rec["start"].dt.to_period("M").value_counts().sort_index()
    np.testing.assert_array_equal(by_cohort.to_numpy(), counts.loc[counts["new_customers"] > 0, "new_customers"])
    # pooled over the cohorts, the share renewing at least once matches E[1 - theta] = beta / (alpha + beta)
    first_year = rec[rec["start"] < pd.Timestamp("2022-01-01")]
    renewed = (first_year["end"].isna() | (first_year["end"] > first_year["start"] + pd.DateOffset(months=1)))
    cohorts = sim.cohorts[sim.cohorts["cohort"] < pd.Period("2022-01", "M")]
    expected = np.average(cohorts["beta"] / (cohorts["alpha"] + cohorts["beta"]), weights=cohorts["subscribers"])
    se = np.sqrt(expected * (1 - expected) / len(first_year))
    assert abs(renewed.mean() - expected) < 4 * se
    # the plans' shares and prices
    assert rec["plan"].value_counts(normalize=True)["basic"] == pytest.approx(0.7, abs=0.02)
    assert set(rec.groupby("plan")["price"].unique().map(tuple)) == {(9.0,), (19.0,)}


def test_true_equity_is_the_mean_of_the_realised_future() -> None:
    """Simulated to 2323 with the same seed, the same subscribers' realised discounted payments
    after 2023-12-31 average the true expected equity (each seed within 3%, their mean within 1%;
    seeds 2-7 gave -0.8% to +0.9%)."""
    counts = simulate_acquisitions(ACQUISITION, PERIODS, seed=1)
    z = 1.1 ** (-1 / 12)
    errors = []
    for seed in (2, 3, 4):
        sim = simulate_subscriptions(counts, SPEC, as_of=AS_OF, seed=seed)
        far = simulate_subscriptions(counts, SPEC, as_of="2323-12-31", seed=seed).records
        truth = true_subscriber_equity(sim, margin=0.5, annual_discount_rate=0.1)
        act = far[(far["start"] <= AS_OF) & (far["end"].isna() | (far["end"] > AS_OF))]
        n, frac = renewals_and_next_due(act["start"], AS_OF, 1)
        end = act["end"].fillna(pd.Timestamp("2323-12-31"))
        paid = (end.dt.year - act["start"].dt.year) * 12 + end.dt.month - act["start"].dt.month
        later = paid.to_numpy() - 1 - n  # renewals n + 1 ... paid - 1 fall after the date
        realised = 0.5 * np.sum(act["price"].to_numpy() * z**frac * (1 - z**later) / (1 - z))
        errors.append(realised / truth - 1)
    assert max(abs(e) for e in errors) < 0.03
    assert abs(np.mean(errors)) < 0.01


def test_renewals_and_next_due_by_hand() -> None:
    start = pd.Series(pd.to_datetime(["2023-01-31", "2023-12-31", "2023-06-15", "2022-12-15"]))
    n, frac = renewals_and_next_due(start, pd.Timestamp("2023-12-31"), 1)
    # Jan 31: renewals Feb 28, Mar 31, ..., Dec 31 (11), next Jan 31 2024: 30 days after the date's end
    # Dec 31: started that day, none yet, next Jan 31 (30 of 31 days); Jun 15: 6 (Jul..Dec 15), next Jan 15
    np.testing.assert_array_equal(n, [11, 0, 6, 12])
    np.testing.assert_allclose(frac, [30 / 31, 30 / 31, 14 / 31, 14 / 31])
    n_q, _ = renewals_and_next_due(start, pd.Timestamp("2023-12-31"), 3)
    np.testing.assert_array_equal(n_q, [3, 0, 2, 4])


def test_new_subscriber_value_against_monte_carlo() -> None:
    sim = simulate_subscriptions(simulate_acquisitions(ACQUISITION, PERIODS[:3], seed=1), SPEC,
                                 as_of="2021-03-31", seed=1)
    value = new_subscriber_value(sim, margin=1.0, annual_discount_rate=0.1)
    rng = np.random.default_rng(0)
    d = 1.1 ** (1 / 12) - 1
    mc = 0.0
    for plan in SPEC.plans.values():
        lm = np.log(0.06 / 0.94) + plan.churn_effect + 0.35 * rng.standard_normal(200_000)
        lk = np.log(6.0) + 0.3 * rng.standard_normal(200_000)
        a, b = alpha_beta(lm, lk)
        # value at acquisition: price * sum_{t>=0} S(t) z^t, S(t) = B(a, b + t) / B(a, b) (Fader & Hardie 2007)
        t = np.arange(0, 3000)[None, :]
        s = np.exp(special.betaln(a[:2000, None], b[:2000, None] + t) - special.betaln(a[:2000, None], b[:2000, None]))
        by_sum = (s * (1 + d) ** -t).sum(axis=1)
        mc += plan.share * plan.price * by_sum.mean()
    assert value == pytest.approx(mc, rel=0.03)
