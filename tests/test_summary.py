"""Customer summaries: a hand-worked example at every boundary, each time unit and cohort period,
the Parquet path, the errors, and the CDNOW sample against published figures and against an
independent pandas computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import CbcvError, ConfigError, DataError
from cbcv.core.units import TIME_UNIT_DAYS
from cbcv.data.catalog import dataset_path
from cbcv.data.summary import (
    HOLDOUT_COLUMNS,
    SUMMARY_COLUMNS,
    calibration_holdout,
    customer_summary,
)

CAL_END = "2020-02-12"
HOLDOUT_END = "2020-03-11"  # 28 days = 4 weeks after the calibration end


@pytest.fixture
def tx() -> pd.DataFrame:
    rows = [
        # A: two rows on 01-01 are one transaction (15); 01-29 is a return-only day (not a
        # transaction); a purchase on the calibration-end day counts in calibration.
        ("A", "2020-01-01", 10.0),
        ("A", "2020-01-01", 5.0),
        ("A", "2020-01-15", 20.0),
        ("A", "2020-01-29", -5.0),
        ("A", "2020-02-12", 30.0),
        ("A", "2020-02-20", 7.0),  # holdout, merged with the next row: one transaction of 10
        ("A", "2020-02-20", 3.0),
        ("A", "2020-03-01", 8.0),  # holdout
        ("A", "2020-03-12", 99.0),  # after the holdout end: ignored
        # B: acquired on the calibration-end day, buys the next day (holdout)
        ("B", "2020-02-12", 12.0),
        ("B", "2020-02-13", 4.0),
        # C: a return netted against a purchase of the same day (10 - 4 = 6)
        ("C", "2020-01-10", 40.0),
        ("C", "2020-01-20", 10.0),
        ("C", "2020-01-20", -4.0),
        # D: first purchase after the calibration end: not in the summary
        ("D", "2020-02-13", 50.0),
        # E: a return-only day before the first purchase does not acquire the customer
        ("E", "2020-01-05", -10.0),
        ("E", "2020-01-19", 15.0),
        ("E", "2020-03-11", 6.0),  # on the holdout-end day: in the holdout
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def test_hand_worked_weekly_summary(tx: pd.DataFrame) -> None:
    s = calibration_holdout(tx, calibration_end=CAL_END, holdout_end=HOLDOUT_END).set_index(
        "customer_id"
    )
    assert list(s.index) == ["A", "B", "C", "E"]
    assert s.loc["A", "x"] == 2 and s.loc["A", "n_transactions"] == 3
    assert s.loc["A", "t_x"] == pytest.approx(42 / 7) and s.loc["A", "T"] == pytest.approx(42 / 7)
    assert s.loc["A", "first_purchase"] == pd.Timestamp("2020-01-01")
    assert s.loc["A", "last_purchase"] == pd.Timestamp("2020-02-12")
    assert s.loc["A", "total_spend"] == pytest.approx(65.0)
    assert s.loc["A", "first_spend"] == pytest.approx(15.0)
    assert s.loc["A", "mean_repeat_spend"] == pytest.approx(25.0)
    assert s.loc["A", "mean_spend"] == pytest.approx(65.0 / 3)
    assert (s.loc["A", "x_holdout"], s.loc["A", "spend_holdout"]) == (2, pytest.approx(18.0))

    assert (s.loc["B", "x"], s.loc["B", "t_x"], s.loc["B", "T"]) == (0, 0.0, 0.0)
    assert np.isnan(s.loc["B", "mean_repeat_spend"])
    assert (s.loc["B", "x_holdout"], s.loc["B", "spend_holdout"]) == (1, pytest.approx(4.0))

    assert s.loc["C", "x"] == 1
    assert s.loc["C", "t_x"] == pytest.approx(10 / 7) and s.loc["C", "T"] == pytest.approx(33 / 7)
    assert s.loc["C", "mean_repeat_spend"] == pytest.approx(6.0)
    assert s.loc["C", "x_holdout"] == 0 and s.loc["C", "spend_holdout"] == 0.0

    assert s.loc["E", "first_purchase"] == pd.Timestamp("2020-01-19")
    assert (s.loc["E", "x"], s.loc["E", "T"]) == (0, pytest.approx(24 / 7))
    assert s.loc["E", "x_holdout"] == 1

    assert (s["T_holdout"] == 4.0).all()
    assert (s["cohort"] == "2020Q1").all()
    assert list(s.reset_index().columns) == list(SUMMARY_COLUMNS + HOLDOUT_COLUMNS)


def test_dtypes(tx: pd.DataFrame) -> None:
    s = calibration_holdout(tx, calibration_end=CAL_END, holdout_end=HOLDOUT_END)
    assert s["x"].dtype == np.int64 and s["x_holdout"].dtype == np.int64
    assert s["t_x"].dtype == np.float64 and s["T"].dtype == np.float64
    assert str(s["first_purchase"].dtype) == "datetime64[ns]"
    assert s["customer_id"].map(type).eq(str).all()


@pytest.mark.parametrize(("unit", "days"), [("day", 1.0), ("week", 7.0), ("month", 365.25 / 12)])
def test_time_units(tx: pd.DataFrame, unit: str, days: float) -> None:
    s = calibration_holdout(tx, calibration_end=CAL_END, holdout_end=HOLDOUT_END, time_unit=unit)
    s = s.set_index("customer_id")
    assert s.loc["A", "T"] == pytest.approx(42 / days)
    assert s.loc["C", "t_x"] == pytest.approx(10 / days)
    assert s.loc["E", "T"] == pytest.approx(24 / days)
    assert s.loc["A", "T_holdout"] == pytest.approx(28 / days)
    assert TIME_UNIT_DAYS[unit] == pytest.approx(days)


@pytest.mark.parametrize(
    ("period", "labels"),
    [
        ("month", {"A": "2020-01", "B": "2020-02", "C": "2020-01", "E": "2020-01"}),
        ("quarter", {"A": "2020Q1", "B": "2020Q1", "C": "2020Q1", "E": "2020Q1"}),
        ("year", {"A": "2020", "B": "2020", "C": "2020", "E": "2020"}),
    ],
)
def test_cohort_labels(tx: pd.DataFrame, period: str, labels: dict[str, str]) -> None:
    s = customer_summary(tx, calibration_end=CAL_END, cohort_period=period)
    assert dict(zip(s["customer_id"], s["cohort"], strict=True)) == labels


def test_quarter_labels_across_years() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "date": pd.to_datetime(["1996-12-31", "1997-04-01", "1997-09-30"]),
            "amount": [1.0, 1.0, 1.0],
        }
    )
    s = customer_summary(frame, calibration_end="1997-12-31")
    assert s["cohort"].tolist() == ["1996Q4", "1997Q2", "1997Q3"]


def test_observation_start_keeps_customers_acquired_from_that_day(tx: pd.DataFrame) -> None:
    s = customer_summary(tx, calibration_end=CAL_END, observation_start="2020-01-10")
    assert s["customer_id"].tolist() == ["B", "C", "E"]


def test_summary_alone_matches_the_holdout_version(tx: pd.DataFrame) -> None:
    alone = customer_summary(tx, calibration_end=CAL_END)
    both = calibration_holdout(tx, calibration_end=CAL_END, holdout_end=HOLDOUT_END)
    pd.testing.assert_frame_equal(alone, both[list(SUMMARY_COLUMNS)])


def test_parquet_path_gives_the_same_summary(tx: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    tx.assign(source_row=range(1, len(tx) + 1)).to_parquet(path)
    from_file = calibration_holdout(path, calibration_end=CAL_END, holdout_end=HOLDOUT_END)
    from_frame = calibration_holdout(tx, calibration_end=CAL_END, holdout_end=HOLDOUT_END)
    pd.testing.assert_frame_equal(from_file, from_frame)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"time_unit": "fortnight"}, ConfigError, "time_unit 'fortnight'"),
        ({"cohort_period": "decade"}, ConfigError, "cohort_period 'decade'"),
        ({"calibration_end": "someday"}, ConfigError, "calibration_end: 'someday' is not a date"),
        ({"calibration_end": "2019-12-31"}, DataError, "no customer made a purchase on or before"),
    ],
)
def test_summary_errors(tx: pd.DataFrame, kwargs: dict, error: type, pattern: str) -> None:
    args = {"calibration_end": CAL_END} | kwargs
    with pytest.raises(error, match=pattern):
        customer_summary(tx, **args)
    assert issubclass(error, CbcvError)


def test_holdout_must_end_after_calibration(tx: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="holdout_end 2020-02-12 must be after calibration_end"):
        calibration_holdout(tx, calibration_end=CAL_END, holdout_end=CAL_END)


def test_input_errors(tx: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column"):
        customer_summary(tx.drop(columns="amount"), calibration_end=CAL_END)
    with pytest.raises(DataError, match=r"nothing\.parquet: file not found"):
        customer_summary(tmp_path / "nothing.parquet", calibration_end=CAL_END)
    with pytest.raises(DataError, match="missing customer_id, date or amount"):
        customer_summary(tx.assign(amount=np.nan), calibration_end=CAL_END)


# ----------------------------------------------------------------------- CDNOW sample

# Rows of the per-customer CDNOW summary that Fader & Hardie distribute with their spreadsheet
# notes (e.g. "Implementing the BG/NBD Model in Excel"; also shipped by the lifetimes package as
# cdnow_customers_summary_with_transactions.csv): sample id -> (x, t_x, T, mean repeat spend),
# printed to two decimals (hence the 0.0051 tolerance). Ids 59, 584 and 1044 bought on 1997-09-30, the calibration-end day.
PUBLISHED_ROWS = {
    1: (2, 30.43, 38.86, 22.35),
    6: (7, 29.43, 38.86, 73.74),
    59: (1, 38.43, 38.43, 6.49),
    157: (29, 37.71, 38.00, 26.26),
    584: (1, 35.43, 35.43, 45.98),
    1044: (1, 33.29, 33.29, 19.49),
    1901: (21, 4.71, 29.29, 299.63),
    2357: (0, 0.00, 27.00, None),
}


@pytest.fixture(scope="module")
def sample_raw() -> pd.DataFrame:
    """The raw sample file read directly with pandas, independently of cbcv's loader."""
    raw = pd.read_csv(
        dataset_path("cdnow-sample"),
        sep=r"\s+",
        header=None,
        names=["master_id", "sample_id", "date", "cds", "dollars"],
        dtype={"master_id": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw


def test_cdnow_sample_matches_published_rows(
    cdnow_weekly: pd.DataFrame, sample_raw: pd.DataFrame
) -> None:
    by_master = cdnow_weekly.set_index("customer_id")
    ids = sample_raw.drop_duplicates("sample_id").set_index("sample_id")["master_id"]
    for sample_id, (x, t_x, T, zbar) in PUBLISHED_ROWS.items():
        row = by_master.loc[ids[sample_id]]
        assert row["x"] == x
        assert row["t_x"] == pytest.approx(t_x, abs=0.0051)
        assert row["T"] == pytest.approx(T, abs=0.0051)
        if zbar is None:
            assert np.isnan(row["mean_repeat_spend"])
        else:
            assert row["mean_repeat_spend"] == pytest.approx(zbar, abs=0.0051)


def test_cdnow_sample_published_aggregates(cdnow_weekly: pd.DataFrame) -> None:
    # Fader, Hardie & Lee (2005): 2,357 customers, 39-week calibration period; 946 of them made
    # at least one repeat purchase (the gamma-gamma sample of "RFM and CLV", JMR 42(4)), whose
    # average repeat-transaction values have a mean of $35.08.
    assert len(cdnow_weekly) == 2357
    assert (cdnow_weekly["x"] > 0).sum() == 946
    assert cdnow_weekly["mean_repeat_spend"].mean() == pytest.approx(35.078, abs=0.001)
    assert cdnow_weekly["x"].sum() == 2457
    assert (cdnow_weekly["cohort"] == "1997Q1").all()
    assert cdnow_weekly["T"].max() == pytest.approx(272 / 7)  # acquired 1997-01-01
    assert cdnow_weekly["T"].min() == pytest.approx(189 / 7)  # sample id 2357: T = 27.00
    assert (cdnow_weekly["T_holdout"] == 39.0).all()


def test_cdnow_sample_against_independent_pandas(
    cdnow_weekly: pd.DataFrame, sample_raw: pd.DataFrame
) -> None:
    """x, t_x, T and the holdout counts recomputed with plain pandas, day by day."""
    days = sample_raw.groupby(["master_id", "date"], as_index=False)["dollars"].sum()
    cal_end, hold_end = pd.Timestamp("1997-09-30"), pd.Timestamp("1998-06-30")
    cal = days[days["date"] <= cal_end]
    hold = days[(days["date"] > cal_end) & (days["date"] <= hold_end)]
    g = cal.groupby("master_id")["date"]
    expected = pd.DataFrame(
        {
            "x": g.count() - 1,
            "t_x": (g.max() - g.min()).dt.days / 7,
            "T": (cal_end - g.min()).dt.days / 7,
        }
    )
    expected["x_holdout"] = hold.groupby("master_id").size().reindex(expected.index, fill_value=0)
    got = cdnow_weekly.set_index("customer_id").loc[expected.index]
    np.testing.assert_array_equal(got["x"].to_numpy(), expected["x"].to_numpy())
    np.testing.assert_allclose(
        got["t_x"].to_numpy(), expected["t_x"].to_numpy(), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(got["T"].to_numpy(), expected["T"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got["x_holdout"].to_numpy(), expected["x_holdout"].to_numpy())
    # Weeks 40-78: repeat transactions (customer-days) in the holdout, every one by a customer
    # acquired in the calibration period.
    assert cdnow_weekly["x_holdout"].sum() == len(hold)


def test_period_summary_counts_active_periods_by_hand() -> None:
    """Discrete-time summaries (BG/BB's x, t_x, n) of a small log, counted by hand: a's two
    purchases in 2020Q1 are one active quarter; d, acquired in the holdout, is left out."""
    from cbcv.data.summary import period_summary

    tx = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c", "d"],
        "date": pd.to_datetime(["2020-01-05", "2020-02-01", "2020-08-01", "2020-02-01", "2021-02-01",
                                "2020-09-30", "2021-01-15"]),
        "amount": [10.0, 20, 5, 5, 7, 3, 4],
    })
    out = period_summary(tx, period="quarter", calibration_end="2020-12-31", holdout_end="2021-06-30")
    rows = {tuple(r) for r in out[["x", "t_x", "n", "x_holdout", "count"]].itertuples(index=False)}
    assert rows == {(1, 2, 3, 0, 1), (0, 0, 3, 1, 1), (0, 0, 1, 0, 1)}
    assert (out["n_holdout"] == 2).all()
    monthly = period_summary(tx, period="month", calibration_end="2020-12-31", births="customer_id <> 'c'")
    assert {tuple(r) for r in monthly[["x", "t_x", "n"]].itertuples(index=False)} == {(2, 7, 11), (0, 0, 10)}
    assert "x_holdout" not in monthly
