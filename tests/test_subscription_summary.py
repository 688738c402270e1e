"""Summaries of subscription spells (:mod:`cbcv.data.subscription_summary`): the duration rules
on hand-made spells (month-end clamping, an end on a renewal date, actives in their first
period), the SQL against a brute-force Python count on random spells for monthly and quarterly
billing, the acquisition history's complete periods and zero fill, and the argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import ConfigError, DataError
from cbcv.data.subscription_summary import (
    acquisition_history,
    active_subscribers,
    holdout_durations,
    retention_durations,
)
from cbcv.data.subscriptions import SPELL_COLUMNS, load_subscriptions

MONTHS = {"month": 1, "quarter": 3}


def _spells(rows: list[tuple[str, str | None]], period: str = "month", **extra) -> pd.DataFrame:
    """Spells of one customer each from (start, end) pairs."""
    n = len(rows)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "spell": np.ones(n, dtype=np.int64),
        "start": pd.Series(pd.to_datetime([s for s, _ in rows]), dtype="datetime64[ns]"),
        "end": pd.Series(pd.to_datetime([e for _, e in rows]), dtype="datetime64[ns]"),
        "price": np.full(n, 10.0), "plan": [None] * n, "billing_period": [period] * n, **extra,
    })


def _one(spells: pd.DataFrame, end: str) -> tuple[int, bool]:
    out = retention_durations(spells, end=end)
    assert len(out) == 1 and out["count"].tolist() == [1]
    return int(out["t"].iloc[0]), bool(out["churned"].iloc[0])


@pytest.mark.parametrize(("start", "stop", "at", "expected"), [
    # end on a renewal date: paid on Jan 15, Feb 15, Mar 15; churned by Apr 15 with T = 3
    ("2019-01-15", "2019-04-15", "2019-06-30", (3, True)),
    ("2019-01-15", "2019-04-15", "2019-04-15", (3, True)),
    ("2019-01-15", "2019-04-16", "2019-06-30", (4, True)),  # one day past it: a 4th payment
    ("2019-01-15", "2019-04-15", "2019-04-14", (2, False)),  # the day before: 2 renewals made
    # month-end clamping: Jan 31 renews on Feb 28 (Feb 29 in 2020), then on Mar 31
    ("2019-01-31", None, "2019-02-27", (0, False)),  # active in its first period: t = 0
    ("2019-01-31", None, "2019-02-28", (1, False)),
    ("2020-01-31", None, "2020-02-29", (1, False)),
    ("2019-01-31", None, "2019-03-30", (1, False)),
    ("2019-01-31", None, "2019-03-31", (2, False)),
    ("2019-01-31", "2019-02-28", "2019-12-31", (1, True)),  # ends on its first renewal date
    ("2019-01-31", "2019-03-01", "2019-12-31", (2, True)),
    ("2019-08-31", "2019-09-30", "2019-12-31", (1, True)),  # Aug 31 renews on Sep 30
    ("2019-03-10", None, "2019-03-10", (0, False)),  # starts on the day: t = 0
    ("2019-03-10", "2019-03-11", "2019-03-11", (1, True)),  # one day of service, paid once
])
def test_duration_rules_on_hand_made_spells(start, stop, at, expected) -> None:
    assert _one(_spells([(start, stop)]), at) == expected


def test_quarterly_and_yearly_renewals_clamp_too() -> None:
    quarterly = _spells([("2019-11-30", "2020-02-29"), ("2019-11-30", "2020-03-01")], "quarter")
    out = retention_durations(quarterly, end="2020-12-31", cohort_period="quarter")
    assert out[["cohort", "t", "churned", "count"]].values.tolist() == [["2019Q4", 1, True, 1],
                                                                        ["2019Q4", 2, True, 1]]
    yearly = _spells([("2020-02-29", None)], "year")
    assert retention_durations(yearly, end="2021-02-27")["t"].tolist() == [0]
    assert retention_durations(yearly, end="2021-02-28", cohort_period="year")[
        ["cohort", "t"]].values.tolist() == [["2020", 1]]


def test_spells_starting_after_the_end_are_left_out_and_by_groups() -> None:
    spells = _spells([("2019-01-01", "2019-03-01"), ("2019-01-20", None), ("2019-02-01", None),
                      ("2020-01-01", None)], channel=["web", "shop", "web", "web"])
    out = retention_durations(spells, end="2019-03-31", by=["channel"])
    assert list(out.columns) == ["cohort", "channel", "t", "churned", "count"]
    assert out.values.tolist() == [["2019-01", "shop", 2, False, 1], ["2019-01", "web", 2, True, 1],
                                   ["2019-02", "web", 1, False, 1]]
    assert out["t"].dtype == np.int64 and out["count"].dtype == np.int64
    assert out["churned"].dtype == bool
    # any spell column may group, also one the query reads itself
    priced = retention_durations(spells, end="2019-03-31", by=["billing_period", "price"])
    assert priced[["billing_period", "price", "count"]].values.tolist() == [
        ["month", "10.0", 1], ["month", "10.0", 1], ["month", "10.0", 1]]


# --------------------------------------------------------------------------- brute force


def _random_spells(period: str, n: int = 2000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    starts = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D")
    month_end = rng.random(n) < 0.25  # many month ends, to exercise the clamping
    starts = pd.Series(np.where(month_end, starts + pd.offsets.MonthEnd(0), starts))
    ends = starts + pd.to_timedelta(rng.integers(1, 1200, n), unit="D")
    on_renewal = rng.random(n) < 0.25  # ends exactly on a renewal date
    k = rng.integers(1, 12, n)
    renewal = pd.Series([s + pd.DateOffset(months=int(m) * MONTHS[period])
                         for s, m in zip(starts, k, strict=True)])
    ends = ends.where(~on_renewal, renewal).where(rng.random(n) > 0.3)  # 30% active
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "spell": np.ones(n, dtype=np.int64),
        "start": starts.astype("datetime64[ns]"), "end": ends.astype("datetime64[ns]"),
        "price": rng.choice([9.99, 19.99, 49.0], n), "plan": rng.choice(["A", "B"], n).astype(object),
        "billing_period": period,
    })


def _renewal_dates(spells: pd.DataFrame, months: int, upto: int = 60) -> np.ndarray:
    """start + k periods for k = 0..upto, as an (n, upto + 1) datetime array."""
    return np.stack([(spells["start"] + pd.DateOffset(months=k * months)).to_numpy()
                     for k in range(upto + 1)], axis=1)


def _count(dates: np.ndarray, bound: np.ndarray, strict: bool) -> np.ndarray:
    return ((dates < bound[:, None]) if strict else (dates <= bound[:, None])).sum(axis=1)


def _brute(spells: pd.DataFrame, period: str) -> dict[str, np.ndarray]:
    dates = _renewal_dates(spells, MONTHS[period])
    end = spells["end"].fillna(pd.Timestamp("2200-01-01")).to_numpy()
    return {"dates": dates, "T": _count(dates, end, strict=True)}


def _cohort(starts: pd.Series, cohort_period: str) -> pd.Series:
    return starts.dt.to_period({"month": "M", "quarter": "Q"}[cohort_period]).astype(str)


def _tally(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame.groupby(keys, dropna=False).size().rename("count").reset_index()
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize(("period", "cohort_period"), [("month", "month"), ("quarter", "quarter")])
def test_durations_match_a_brute_force_count(period: str, cohort_period: str) -> None:
    spells = _random_spells(period)
    brute = _brute(spells, period)
    for end in ("2019-06-30", "2020-02-29", "2021-05-17"):
        day = pd.Timestamp(end)
        seen = (spells["start"] <= day).to_numpy()
        churned = (spells["end"] <= day).to_numpy()
        renewals = _count(brute["dates"], np.full(len(spells), day.to_datetime64()), strict=False) - 1
        t = np.where(churned, brute["T"], renewals)
        expected = _tally(pd.DataFrame({
            "cohort": _cohort(spells["start"], cohort_period), "plan": spells["plan"], "t": t,
            "churned": churned})[seen], ["cohort", "plan", "t", "churned"])
        got = retention_durations(spells, end=end, cohort_period=cohort_period, by=["plan"])
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert got["count"].sum() == seen.sum()


@pytest.mark.parametrize("period", ["month", "quarter"])
def test_holdout_durations_and_actives_match_a_brute_force_count(period: str) -> None:
    spells = _random_spells(period, seed=11)
    brute = _brute(spells, period)
    n = len(spells)
    cal, stop = pd.Timestamp("2019-12-31"), pd.Timestamp("2020-09-30")
    active = ((spells["start"] <= cal) & ~(spells["end"] <= cal)).to_numpy()
    churned = (spells["end"] <= stop).to_numpy()
    renewals_cal = _count(brute["dates"], np.full(n, cal.to_datetime64()), strict=False) - 1
    renewals_end = _count(brute["dates"], np.full(n, stop.to_datetime64()), strict=False) - 1
    keys = ["cohort", "renewals_cal", "renewals_end", "churned_holdout", "t_holdout"]
    expected = _tally(pd.DataFrame({
        "cohort": _cohort(spells["start"], "month"), "renewals_cal": renewals_cal,
        "renewals_end": renewals_end, "churned_holdout": churned,
        "t_holdout": np.where(churned, brute["T"], renewals_end)})[active], keys)
    got = holdout_durations(spells, calibration_end=cal, holdout_end=stop)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    at = pd.Timestamp("2020-03-31")
    alive = ((spells["start"] <= at) & ~(spells["end"] <= at)).to_numpy()
    frame = pd.DataFrame({"cohort": _cohort(spells["start"], "quarter"),
                          "renewals": _count(brute["dates"], np.full(n, at.to_datetime64()), strict=False) - 1,
                          "price": spells["price"]})[alive]
    expected = frame.groupby(["cohort", "renewals"]).agg(
        subscribers=("price", "size"), revenue_per_period=("price", "sum")).reset_index()
    got = active_subscribers(spells, at=at, cohort_period="quarter")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["subscribers"].dtype == np.int64


def test_parquet_spells_from_the_loader_give_the_same_summaries(tmp_path: Path) -> None:
    from cbcv.data.subscriptions import validate_subscriptions_to_parquet

    spells = _random_spells("month", n=300, seed=3)
    path = tmp_path / "spells.parquet"
    validate_subscriptions_to_parquet(spells, path, as_of="2021-12-31")
    loaded = load_subscriptions(spells, as_of="2021-12-31").spells
    assert list(loaded.columns) == list(SPELL_COLUMNS)
    for fn, kwargs in ((retention_durations, {"end": "2020-06-30"}),
                       (active_subscribers, {"at": "2020-06-30"}),
                       (holdout_durations, {"calibration_end": "2020-06-30",
                                            "holdout_end": "2020-12-31"})):
        pd.testing.assert_frame_equal(fn(path, **kwargs), fn(loaded, **kwargs))
        pd.testing.assert_frame_equal(fn(loaded, **kwargs), fn(spells, **kwargs))


def test_holdout_with_hand_made_spells() -> None:
    spells = _spells([("2019-01-31", None), ("2019-01-31", "2019-04-30"),
                      ("2019-03-01", "2019-03-15"), ("2019-04-01", None)])
    out = holdout_durations(spells, calibration_end="2019-03-31", holdout_end="2019-06-30")
    # active at Mar 31: the first two (2 renewals: Feb 28, Mar 31); the third ended, the last
    # starts later. By Jun 30 the first would have made 5 renewals; the second paid 3 times.
    assert out.values.tolist() == [["2019-01", 2, 5, False, 5, 1], ["2019-01", 2, 5, True, 3, 1]]


def test_active_subscribers_revenue_and_empty() -> None:
    spells = _spells([("2019-01-10", None), ("2019-01-20", "2019-02-05"), ("2019-02-01", None)])
    spells.loc[2, "price"] = 25.0
    out = active_subscribers(spells, at="2019-02-10")
    assert out.values.tolist() == [["2019-01", 1, 1, 10.0], ["2019-02", 0, 1, 25.0]]
    spells.loc[2, "price"] = np.nan
    assert np.isnan(active_subscribers(spells, at="2019-02-10")["revenue_per_period"].iloc[1])
    empty = active_subscribers(spells, at="2018-01-01")
    assert empty.empty and list(empty.columns) == ["cohort", "renewals", "subscribers",
                                                   "revenue_per_period"]


# --------------------------------------------------------------------------- acquisitions


def test_acquisition_history_complete_periods_and_zero_fill() -> None:
    spells = _spells([("2019-01-05", "2019-02-01"), ("2019-01-20", None), ("2019-04-02", None),
                      ("2019-06-30", None), ("2019-07-01", None)])
    spells.loc[1, "spell"] = 2  # a reactivation is no new customer
    out = acquisition_history(spells, end="2019-07-15")  # July is not complete
    assert out["period"].astype(str).tolist() == ["2019-01", "2019-02", "2019-03", "2019-04",
                                                  "2019-05", "2019-06"]
    assert out["new_customers"].tolist() == [1, 0, 0, 1, 0, 1]
    assert isinstance(out["period"].dtype, pd.PeriodDtype) and out["new_customers"].dtype == np.int64
    assert acquisition_history(spells, end="2019-06-30")["period"].astype(str).tolist()[-1] == "2019-06"
    quarters = acquisition_history(spells, end="2019-12-31", period="quarter", start="2018-08-01")
    assert quarters.astype({"period": str}).values.tolist() == [
        ["2018Q3", 0], ["2018Q4", 0], ["2019Q1", 1], ["2019Q2", 2], ["2019Q3", 1], ["2019Q4", 0]]
    with pytest.raises(DataError, match="no complete year"):
        acquisition_history(spells, end="2019-12-30", period="year")
    with pytest.raises(ConfigError, match="period must be one of"):
        acquisition_history(spells, end="2019-12-31", period="week")


# --------------------------------------------------------------------------- arguments


def test_mixed_billing_periods_and_bad_arguments(tmp_path: Path) -> None:
    mixed = pd.concat([_spells([("2019-01-01", None)] * 3), _spells([("2019-01-01", None)], "year")])
    with pytest.raises(DataError, match=r"spells DataFrame: the spells mix billing periods "
                                        r"\(month: 3, year: 1\); the retention model needs one"):
        retention_durations(mixed, end="2019-12-31")
    for fn, kwargs in ((holdout_durations, {"calibration_end": "2019-06-30",
                                            "holdout_end": "2019-12-31"}),
                       (active_subscribers, {"at": "2019-06-30"})):
        with pytest.raises(DataError, match="mix billing periods"):
            fn(mixed, **kwargs)
    spells = _spells([("2019-01-01", None)])
    with pytest.raises(ConfigError, match="cohort_period must be one of"):
        retention_durations(spells, end="2019-12-31", cohort_period="week")
    with pytest.raises(ConfigError, match="holdout_end 2019-06-30 must be after"):
        holdout_durations(spells, calibration_end="2019-06-30", holdout_end="2019-06-30")
    with pytest.raises(DataError, match=r"missing column\(s\) end, billing_period"):
        retention_durations(spells.drop(columns=["end", "billing_period"]), end="2019-12-31")
    with pytest.raises(DataError, match=r"missing column\(s\) channel"):
        retention_durations(spells, end="2019-12-31", by=["channel"])
    with pytest.raises(ConfigError, match="by must be a list"):
        retention_durations(spells, end="2019-12-31", by="plan")
    with pytest.raises(DataError, match="no spell starts on or before 2018-12-31"):
        retention_durations(spells, end="2018-12-31")
    with pytest.raises(DataError, match="no spell is active at calibration_end"):
        holdout_durations(spells, calibration_end="2018-06-30", holdout_end="2018-12-31")
    with pytest.raises(DataError, match=r"nope\.parquet: file not found"):
        retention_durations(tmp_path / "nope.parquet", end="2019-12-31")
    bad = spells.assign(end=pd.Timestamp("2018-01-01"))
    with pytest.raises(DataError, match="end on or before the start"):
        retention_durations(bad, end="2019-12-31")


@pytest.mark.parametrize("period", ["month", "quarter"])
def test_next_due_matches_the_truths_renewal_calendar(period: str) -> None:
    """``next_due`` (the price-weighted time to the next renewal of each group) against a
    per-subscriber count with pandas' calendar (:func:`cbcv.valuation.subscription_truth.renewals_and_next_due`)."""
    from cbcv.data.subscription_summary import active_subscribers as active
    from cbcv.valuation.subscription_truth import renewals_and_next_due

    spells = _random_spells(period)
    at = pd.Timestamp("2020-06-30")
    live = spells[(spells["start"] <= at) & (spells["end"].isna() | (spells["end"] > at))]
    n, frac = renewals_and_next_due(live["start"], at, MONTHS[period])
    want = (live.assign(cohort=_cohort(live["start"], "month"), renewals=n, w=live["price"] * frac)
            .groupby(["cohort", "renewals"]).agg(w=("w", "sum"), p=("price", "sum")).reset_index())
    got = active(spells, at=at.date(), cohort_period="month", next_due=True)
    np.testing.assert_array_equal(got["renewals"], want["renewals"])
    np.testing.assert_allclose(got["next_due"], want["w"] / want["p"], rtol=1e-12)


def test_new_subscribers_counts_first_spells_in_the_window() -> None:
    from cbcv.data.subscription_summary import new_subscribers

    spells = _spells([("2023-05-31", None), ("2023-06-01", "2023-08-01"), ("2023-12-31", None), ("2024-01-01", None)])
    spells["plan"] = ["A", "B", "A", "A"]
    spells.loc[2, "spell"] = 2  # a reactivation is not a new customer
    got = new_subscribers(spells, since="2023-06-01", until="2023-12-31", by=["plan"])
    assert got.to_dict("list") == {"plan": ["B"], "subscribers": [1], "revenue_per_period": [float(spells["price"][1])]}
    assert new_subscribers(spells, since="2025-01-01", until="2025-02-01").empty
    with pytest.raises(ConfigError, match="before since"):
        new_subscribers(spells, since="2024-01-01", until="2023-01-01")
