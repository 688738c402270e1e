"""The row rules (ids, dates, time zones, amounts) and the purchase rule, through every way a log
is read: a DataFrame, CSV and Parquet in memory (``load_transactions``) and out of core
(``validate_to_parquet``), and the customer summaries built on the accepted rows."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cbcv.data.load import load_transactions, validate_to_parquet
from cbcv.data.rules import NULL_TOKENS
from cbcv.data.summary import customer_summary

GOOD = ("c1", "1997-03-01", "10.00")


def _csv(tmp_path: Path, rows: list[tuple[str, str, str]], name: str = "log.csv") -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("customer_id", "date", "amount"))
        writer.writerows(rows)
    return path


def _both(source, tmp_path: Path, **kwargs):
    """The load result in memory and out of core, checked to agree on what was rejected."""
    mem = load_transactions(source, reject_duplicates=False, **kwargs)
    ooc = validate_to_parquet(
        source, tmp_path / "accepted.parquet", reject_duplicates=False, **kwargs
    )
    assert ooc.reconciliation.rejected_by_reason == mem.reconciliation.rejected_by_reason
    assert ooc.reconciliation.total_amount == pytest.approx(mem.reconciliation.total_amount)
    accepted = pd.read_parquet(ooc.accepted)
    assert sorted(accepted["customer_id"]) == sorted(mem.transactions["customer_id"])
    rc = mem.reconciliation
    assert rc.rows_accepted + rc.rows_rejected == rc.rows_read
    assert sum(rc.rejected_by_reason.values()) == rc.rows_rejected
    return mem


def _reasons(result) -> dict[int, str]:
    """Source row -> the reason it was rejected for (its first failing check)."""
    rej = result.rejections[result.rejections["primary"]]
    assert not rej["source_row"].duplicated().any()
    return dict(zip(rej["source_row"].astype(int), rej["reason"], strict=True))


# --------------------------------------------------------------------------- customer ids

MISSING_IDS = [
    *NULL_TOKENS,
    "NULL", "Null", "None", "NaN", "N/A", "NA", "#N/A", "\\N", " - ", "  ",
    "\u00a0", "\u3000", "\u200b", "\ufeff", "\u00a0\u3000\u200b",
    "ab\x00cd", "a\x01b", "x\x7fy",
]


def test_missing_and_null_token_ids_are_rejected_in_csv(tmp_path):
    rows = [GOOD] + [(i, "1997-03-02", "5") for i in MISSING_IDS]
    result = _both(_csv(tmp_path, rows), tmp_path)
    reasons = _reasons(result)
    assert len(reasons) == len(MISSING_IDS)
    assert set(reasons.values()) == {"missing_customer_id"}
    assert list(result.transactions["customer_id"]) == ["c1"]


def test_unicode_blanks_around_an_id_are_trimmed(tmp_path):
    ids = ["\u00a0c7", "c7\u3000", "\u200bc7\u200b", " c7\t", "\ufeffc7"]
    result = _both(_csv(tmp_path, [(i, f"1997-03-0{k + 1}", "5") for k, i in enumerate(ids)]),
                   tmp_path)
    assert result.reconciliation.rows_rejected == 0
    assert set(result.transactions["customer_id"]) == {"c7"}
    assert result.reconciliation.n_customers == 1


def test_null_tokens_are_configurable(tmp_path):
    path = _csv(tmp_path, [GOOD, ("unknown", "1997-03-02", "5"), ("NULL", "1997-03-03", "5")])
    result = _both(path, tmp_path, null_tokens=["Unknown"])
    # the configured list replaces the default one: "NULL" is then a customer's id
    assert _reasons(result) == {2: "missing_customer_id"}
    assert sorted(result.transactions["customer_id"]) == ["NULL", "c1"]


def test_a_dataframe_with_null_token_ids_is_rejected_too(tmp_path):
    frame = pd.DataFrame({
        "customer_id": ["a", None, "nan", "N/A", "\u00a0", "b"],
        "date": pd.to_datetime(["1997-01-01"] * 6),
        "amount": [1.0] * 6,
    })
    result = _both(frame, tmp_path)
    assert sorted(result.transactions["customer_id"]) == ["a", "b"]
    assert result.reconciliation.rejected_by_reason["missing_customer_id"] == 4


@pytest.mark.parametrize("kind", ["frame", "parquet"])
def test_float_ids_keep_their_integer_text_and_nan_is_missing(tmp_path, kind):
    ids = np.array([7.0, 7.0, 12.0, np.nan, 3.5, 1e15], dtype="float64")
    frame = pd.DataFrame({
        "customer_id": ids,
        "date": pd.to_datetime(["1997-01-01", "1997-02-01", "1997-01-03", "1997-01-04",
                                "1997-01-05", "1997-01-06"]),
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    source = frame
    if kind == "parquet":
        source = tmp_path / "ids.parquet"
        frame.to_parquet(source)
    result = _both(source, tmp_path)
    assert _reasons(result) == {4: "missing_customer_id"}
    assert list(result.transactions["customer_id"]) == [
        "7", "7", "12", "3.5", "1000000000000000"
    ]


# --------------------------------------------------------------------------- dates


def test_dates_outside_the_representable_range_are_rejected_not_crashing(tmp_path):
    rows = [GOOD, ("c2", "0001-01-01", "5"), ("c3", "9999-12-31", "5"),
            ("c4", "1677-09-21", "5"), ("c5", "2262-04-12", "5"), ("c6", "00010101", "5")]
    result = _both(_csv(tmp_path, rows), tmp_path)
    assert _reasons(result) == {k: "date_out_of_range" for k in (2, 3, 4, 5, 6)}
    assert result.reconciliation.first_date == date(1997, 3, 1)


def test_typed_out_of_range_dates_in_parquet_are_rejected(tmp_path):
    table = pa.table({
        "customer_id": ["a", "b", "c"],
        "date": pa.array([date(1997, 1, 1), date(1, 1, 1), date(9999, 12, 31)], pa.date32()),
        "amount": [1.0, 2.0, 3.0],
    })
    path = tmp_path / "dates.parquet"
    pq.write_table(table, path)
    result = _both(path, tmp_path)
    assert _reasons(result) == {2: "date_out_of_range", 3: "date_out_of_range"}
    # the C3 table, built from accepted rows only, spans one cohort
    summary = customer_summary(result.transactions, calibration_end="1997-12-31")
    assert len(summary) == 1


def test_sentinel_dates_before_the_earliest_date_have_their_own_reason(tmp_path):
    rows = [GOOD, ("c2", "1899-12-30", "5"), ("c3", "1900-01-01", "5"),
            ("c4", "1969-12-31", "5"), ("c5", "1970-01-01", "5")]
    path = _csv(tmp_path, rows)
    result = _both(path, tmp_path)
    assert _reasons(result) == {2: "date_before_earliest", 3: "date_before_earliest",
                                4: "date_before_earliest"}
    detail = result.rejections.set_index("source_row").loc[2, "detail"]
    assert "1970-01-01" in detail
    moved = _both(path, tmp_path, earliest_date="1900-01-01")
    assert _reasons(moved) == {2: "date_before_earliest"}


TZ_SCRIPT = """
import sys
from cbcv.data.load import load_transactions
r = load_transactions(sys.argv[1], reject_duplicates=False, timezone=sys.argv[2] or None)
print(",".join(str(d.date()) for d in r.transactions["date"]))
"""


def _dates_under_tz(path: Path, machine_tz: str, configured: str = "") -> str:
    env = dict(os.environ, TZ=machine_tz)
    out = subprocess.run([sys.executable, "-c", TZ_SCRIPT, str(path), configured], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_zone_aware_timestamps_take_their_own_zone_never_the_machines(tmp_path):
    # 1997-01-31 20:00 in New York is 1997-02-01 01:00 UTC and 1997-02-01 10:00 in Tokyo
    stamps = pd.to_datetime(["1997-01-31 20:00", "1997-03-01 09:00"]).tz_localize(
        "America/New_York")
    frame = pd.DataFrame({"customer_id": ["a", "b"], "date": stamps, "amount": [1.0, 2.0]})
    path = tmp_path / "tz.parquet"
    frame.to_parquet(path)
    for machine in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        assert _dates_under_tz(path, machine) == "1997-01-31,1997-03-01", machine
        assert _dates_under_tz(path, machine, "Asia/Tokyo") == "1997-02-01,1997-03-01", machine
    # a DataFrame's zone-aware column follows the same rule, in memory and out of core
    result = _both(frame, tmp_path)
    assert [d.date() for d in result.transactions["date"]] == [date(1997, 1, 31),
                                                                date(1997, 3, 1)]
    in_utc = _both(frame, tmp_path, timezone="UTC")
    assert [d.date() for d in in_utc.transactions["date"]] == [date(1997, 2, 1),
                                                                date(1997, 3, 1)]


def test_an_unknown_timezone_is_a_config_error(tmp_path):
    from cbcv.core.errors import ConfigError

    with pytest.raises(ConfigError, match="Mars/Olympus"):
        load_transactions(_csv(tmp_path, [GOOD]), timezone="Mars/Olympus")


# --------------------------------------------------------------------------- amounts

BAD_AMOUNTS = ["1_234.50", "1,234.50", "1 234", "$5", "5$", "12,50", "nan", "NaN", "inf",
               "-inf", "Infinity", "1e400", "0x10", "--5", "5-", "1.2.3", "", "e5", "."]
GOOD_AMOUNTS = {"-3": -3.0, "+3.5": 3.5, ".5": 0.5, "5.": 5.0, "1e3": 1000.0, " 7 ": 7.0,
                "1E-2": 0.01, "0012": 12.0}


def test_amounts_must_be_plain_numbers(tmp_path):
    rows = [(f"c{i}", "1997-03-01", a) for i, a in enumerate(BAD_AMOUNTS)]
    rows += [(f"g{i}", "1997-03-02", a) for i, a in enumerate(GOOD_AMOUNTS)]
    result = _both(_csv(tmp_path, rows), tmp_path)
    reasons = _reasons(result)
    assert reasons == {k: "non_numeric_amount" for k in range(1, len(BAD_AMOUNTS) + 1)}
    got = dict(zip(result.transactions["customer_id"], result.transactions["amount"],
                   strict=True))
    assert got == pytest.approx({f"g{i}": v for i, v in enumerate(GOOD_AMOUNTS.values())})


def test_amounts_beyond_the_limit_are_out_of_range_and_sums_stay_finite(tmp_path):
    rows = [GOOD, ("c2", "1997-03-01", "2e12"), ("c3", "1997-03-01", "-1e300"),
            ("c4", "1997-03-01", "1e12")]
    result = _both(_csv(tmp_path, rows), tmp_path)
    assert _reasons(result) == {2: "amount_out_of_range", 3: "amount_out_of_range"}
    assert np.isfinite(result.reconciliation.total_amount)
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"],
                          "date": pd.to_datetime(["1997-01-01"] * 3),
                          "amount": [1.0, np.inf, 1e13]})
    typed = _both(frame, tmp_path)
    assert _reasons(typed) == {2: "non_numeric_amount", 3: "amount_out_of_range"}


# --------------------------------------------------------------------------- the purchase rule


def _purchase_log() -> pd.DataFrame:
    rows = [
        ("a", "1997-01-01", 100.0),  # first purchase
        ("a", "1997-01-10", 60.0),   # a day netting -40: not a purchase
        ("a", "1997-01-10", -100.0),
        ("a", "1997-01-20", 0.0),    # a zero-amount day: not a purchase by default
        ("a", "1997-02-01", 30.0),   # the one repeat purchase
        ("b", "1997-01-05", -40.0),  # only a return: never a customer
        ("z", "1997-01-07", 0.0),    # only a free order
        ("z", "1997-01-08", 0.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


@pytest.mark.parametrize("kind", ["frame", "parquet"])
def test_a_purchase_is_a_day_with_a_positive_net_amount(tmp_path, kind):
    source = _purchase_log()
    if kind == "parquet":
        source.to_parquet(tmp_path / "log.parquet")
        source = tmp_path / "log.parquet"
    result = _both(source, tmp_path)
    rc = result.reconciliation
    assert rc.rows_rejected == 0  # the rule drops days, not rows: every row is accepted
    assert rc.customer_days == 2  # a's two purchase days
    assert rc.returns.non_positive_days == 5  # a's -40 and 0 days, b's, z's two
    assert rc.customer_days + rc.returns.non_positive_days == 7  # distinct customer-days
    assert rc.n_customers == 3  # customers among accepted rows, buyers or not
    assert rc.zero_amount_purchases is False
    for tx in (result.transactions, tmp_path / "accepted.parquet"):
        summary = customer_summary(tx, calibration_end="1997-03-31", time_unit="day")
        assert list(summary["customer_id"]) == ["a"]
        row = summary.iloc[0]
        assert (row["x"], row["t_x"]) == (1, 31)
        assert row["first_spend"] == pytest.approx(100.0)
        assert row["mean_repeat_spend"] == pytest.approx(30.0)


def test_zero_amount_purchases_can_be_counted_as_purchases(tmp_path):
    result = _both(_purchase_log(), tmp_path, zero_amount_purchases=True)
    rc = result.reconciliation
    assert rc.zero_amount_purchases is True
    assert rc.customer_days == 5  # a: 01-01, 01-20, 02-01; z: 01-07, 01-08
    assert rc.returns.non_positive_days == 2  # a's -40 day and b's return
    summary = customer_summary(result.transactions, calibration_end="1997-03-31",
                               time_unit="day", zero_amount_purchases=True)
    by_id = summary.set_index("customer_id")
    assert list(by_id.index) == ["a", "z"]
    assert by_id.loc["a", "x"] == 2
    assert by_id.loc["z", "x"] == 1
    assert by_id.loc["z", "mean_repeat_spend"] == 0.0
