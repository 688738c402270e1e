"""Readers of the bundled research data: contents against the files' published facts and an
independent parse, a hand-worked donation summary, and the errors for malformed files."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import DataError
from cbcv.data.catalog import raw_data_dir
from cbcv.data.research_sets import (
    DONATION_YEARS,
    donation_summary,
    read_donations,
    read_donations_binary,
    read_hardie_sample_retention,
    read_multi_cohort_retention,
    read_two_segment_retention,
)

BOM = "\ufeff"


def test_two_segment_series() -> None:
    table = read_two_segment_retention()
    assert list(table.columns) == ["cohort", "t", "alive"]
    assert table["cohort"].unique().tolist() == ["Regular", "High-end"]
    for cohort, last in [("Regular", 173), ("High-end", 394)]:
        series = table[table["cohort"] == cohort]
        assert series["t"].tolist() == list(range(13))
        assert series["alive"].iloc[0] == 1000
        assert series["alive"].iloc[-1] == last
        assert (np.diff(series["alive"]) <= 0).all()
    assert len(table.attrs["sha256"]) == 64
    assert table.attrs["source"] == "2-segment-retention.csv"


def test_hardie_sample_is_the_regular_segment() -> None:
    sample = read_hardie_sample_retention()
    regular = read_two_segment_retention().query("cohort == 'Regular'").reset_index(drop=True)
    pd.testing.assert_frame_equal(sample, regular, check_like=False, check_dtype=False)


def test_multi_cohort_table() -> None:
    table = read_multi_cohort_retention()
    sizes = table.groupby("cohort", sort=False).size()
    assert sizes.to_dict() == {f"Cohort {k}": 6 - k for k in range(1, 6)}
    starts = table[table["t"] == 0]
    assert starts["year"].tolist() == [2003, 2004, 2005, 2006, 2007]
    assert (starts["alive"] == 10_000).all()
    assert table.groupby("cohort")["year"].max().eq(2007).all()


def test_donation_summary_hand_worked() -> None:
    binary = pd.DataFrame(
        [
            ["a", 1, 0, 1, 1, 0, 1],  # calibration (3): 0,1,1 -> x 2, t_x 3; holdout 0,1 -> 1
            ["b", 1, 1, 0, 0, 0, 0],  # x 1, t_x 1; holdout 0
            ["c", 1, 0, 0, 0, 1, 1],  # x 0, t_x 0; holdout 2
            ["d", 1, 1, 0, 0, 1, 0],  # x 1, t_x 1; holdout 1
        ],
        columns=["donor_id", "p0", "p1", "p2", "p3", "p4", "p5"],
    )
    per_donor = donation_summary(binary, n_calibration=3, aggregate=False)
    assert per_donor["x"].tolist() == [2, 1, 0, 1]
    assert per_donor["t_x"].tolist() == [3, 1, 0, 1]
    assert per_donor["n"].tolist() == [3] * 4
    assert per_donor["x_holdout"].tolist() == [1, 0, 2, 1]
    assert per_donor["n_holdout"].tolist() == [2] * 4
    counted = donation_summary(binary, n_calibration=3)
    assert counted.to_dict("records") == [
        {"x": 2, "t_x": 3, "n": 3, "count": 1},
        {"x": 1, "t_x": 1, "n": 3, "count": 2},
        {"x": 0, "t_x": 0, "n": 3, "count": 1},
    ]


def test_donations_against_an_independent_parse() -> None:
    path = raw_data_dir() / "1995_cohort_binary.csv"
    expected: Counter[tuple[int, int]] = Counter()
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.reader(fh):
            years = [int(v) for v in row[2:8]]  # 1996-2001
            x = sum(years)
            t_x = max((k + 1 for k, v in enumerate(years) if v), default=0)
            expected[(x, t_x)] += 1
    summary = read_donations(n_calibration=6)
    got = {(r.x, r.t_x): r.count for r in summary.itertuples()}
    assert got == dict(expected)
    assert summary["count"].sum() == 11_104  # the 1995 cohort of Fader, Hardie & Shang (2010)
    assert len(summary) == 22  # every (x, t_x) possible with 6 opportunities occurs
    assert (summary["n"] == 6).all()
    binary = read_donations_binary()
    assert list(binary.columns) == ["donor_id", *map(str, DONATION_YEARS)]
    assert binary["donor_id"].iloc[0] == "100001"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOM + "Year,Regular,High-end\n1,1000,1000\n2,abc,900\n", r"row 3, column 'Regular'"),
        (BOM + "Year,Regular,High-end\n1,1000,1000\n2,900\n", r"row 3: expected 3 fields"),
        (BOM + "Year,Regular\n1,1000\n", r"row 1: expected the header"),
        (BOM + "Year,Regular,High-end\n1,1000,1000\n2,1100,900\n", r"'Regular'.*rises at t = 1"),
        ("Year,Regular,High-end\n1,1000,1000\n3,900,900\n", r"without gaps"),
    ],
)
def test_two_segment_errors(tmp_path, text, message) -> None:
    with pytest.raises(DataError, match=message):
        read_two_segment_retention(_write(tmp_path, "seg.csv", text))


def test_reader_accepts_a_file_without_bom(tmp_path) -> None:
    table = read_two_segment_retention(
        _write(tmp_path, "seg.csv", "Year,Regular,High-end\n1,1000,1000\n2,600,800\n")
    )
    assert table["alive"].tolist() == [1000, 600, 1000, 800]


def test_multi_cohort_errors(tmp_path) -> None:
    text = BOM + "Year,Cohort 1,Cohort 2\n2003,100,\n2004,,100\n"
    with pytest.raises(DataError, match=r"row 3, column 'Cohort 1': empty after the cohort began"):
        read_multi_cohort_retention(_write(tmp_path, "mc.csv", text))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("100002,1,0,2,0,0,0,0,0,0,0,0,0", r"row 2, column '1997': expected 0 or 1"),
        ("100002,0,0,0,0,0,0,0,0,0,0,0,0", r"row 2, column '1995': every donor's first gift"),
        ("100002,1,0,0", r"row 2: expected 13 fields"),
        ("100001,1,0,0,0,0,0,0,0,0,0,0,0", r"row 2, column 'donor_id': duplicate"),
    ],
)
def test_donation_errors(tmp_path, line, message) -> None:
    text = "100001,1,0,0,0,0,0,0,0,0,0,0,1\n" + line + "\n"
    with pytest.raises(DataError, match=message):
        read_donations_binary(_write(tmp_path, "don.csv", text))


def test_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_two_segment_retention(tmp_path / "nope.csv")
