"""The subscription loaders (:mod:`cbcv.data.subscriptions`): a hand-made file with every
rejection reason and its row, line and column, the reconciliation, ends after the as-of date,
reactivations, CSV / Parquet / DataFrame sources giving the same spells, the Parquet writer, and
spells derived from a billing log (gaps, grace, same-day charges, active against ended spells)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import ConfigError, DataError
from cbcv.data.load import REJECTION_COLUMNS
from cbcv.data.subscriptions import (
    BILLING_LOG_REJECTION_REASONS,
    SPELL_COLUMNS,
    SUBSCRIPTION_REJECTION_REASONS,
    load_subscriptions,
    spells_from_billing_log,
    validate_subscriptions_to_parquet,
)

HEADER = "customer_id,start,end,price,plan,billing_period,channel\n"
#: source row: record -> the counted reason (None: accepted). A blank line follows row 2, so
#: row r >= 3 is on line r + 2 (the header is line 1).
RECORDS = [
    "a,2019-01-31,2019-04-30,10,basic,month,web",  # 1 ok: plan spelt as listed, churned
    "a,2019-06-01,,10,Basic,monthly,web",  # 2 ok: a reactivation, active
    ",2019-01-01,,10,Basic,month,web",  # 3 missing_customer_id
    "b,2019-13-01,,10,Basic,month,",  # 4 unparseable_start
    "b,2019-01-01,soon,10,Basic,month,",  # 5 unparseable_end
    "b,2021-01-01,,10,Basic,month,",  # 6 start_after_as_of
    "b,2019-05-01,2019-05-01,10,Basic,month,",  # 7 end_not_after_start
    "c,2019-01-01,,1 000,Basic,month,",  # 8 non_numeric_price
    "c,2019-02-01,,,Basic,month,",  # 9 missing_price
    "c,2019-03-01,,-5,Basic,month,",  # 10 non_positive_price
    "c,2019-04-01,,5,gold,month,",  # 11 unknown_plan
    "c,2019-05-01,,5,Basic,weekly,",  # 12 unknown_billing_period
    "d,2019-02-15,2021-06-01,20,Pro,Quarterly,shop",  # 13 ok: ends after as_of -> active
    "d,2019-02-15,2019-09-01,20,Pro,quarter,shop",  # 14 duplicate_spell (of 13)
    "d,2019-05-15,2019-08-15,20,Pro,quarter,shop",  # 15 overlapping_spell (13 is active)
    " e ,2019-03-01,2020-03-01,120,Basic,Annual,",  # 16 ok: yearly
    'e,"2019-04-01,,5,Basic,month,',  # 17 malformed_row (unbalanced quote)
    "f,2019-13-40,soon,abc,gold,weekly,x",  # 18 five failing checks; the first counted
]
EXPECTED = {
    3: "missing_customer_id", 4: "unparseable_start", 5: "unparseable_end",
    6: "start_after_as_of", 7: "end_not_after_start", 8: "non_numeric_price",
    9: "missing_price", 10: "non_positive_price", 11: "unknown_plan",
    12: "unknown_billing_period", 14: "duplicate_spell", 15: "overlapping_spell",
    17: "malformed_row", 18: "unparseable_start",
}
OPTIONS = {"as_of": "2020-12-31", "plans": ["Basic", "Pro"], "extra_columns": ["channel"]}


def _csv(tmp_path: Path, records: list[str] = RECORDS, name: str = "subs.csv",
         header: str = HEADER) -> Path:
    lines = [*records[:2], "", *records[2:]]
    path = tmp_path / name
    path.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _days(days: list[str | None]) -> pd.Series:
    return pd.Series(pd.to_datetime(days), dtype="datetime64[ns]")


def _primary(result) -> dict[int, str]:
    lines = result.rejections[result.rejections["primary"]]
    return dict(zip(lines["source_row"].astype(int), lines["reason"], strict=True))


def _assert_reconciles(result, reasons=SUBSCRIPTION_REJECTION_REASONS) -> None:
    rec = result.reconciliation
    assert rec.rows_read == rec.rows_accepted + rec.rows_rejected
    assert list(rec.rejected_by_reason) == list(reasons)
    assert sum(rec.rejected_by_reason.values()) == rec.rows_rejected
    assert int(result.rejections["primary"].sum()) == rec.rows_rejected
    assert result.rejections["source_row"].nunique() == rec.rows_rejected
    assert list(result.rejections.columns) == list(REJECTION_COLUMNS)
    spells = result.spells
    assert rec.spells == len(spells) and rec.customers == spells["customer_id"].nunique()
    assert rec.reactivations == int((spells["spell"] >= 2).sum())
    assert rec.active_at_as_of == int(spells["end"].isna().sum())
    assert rec.billing_periods == spells["billing_period"].value_counts().sort_index().to_dict()
    json.dumps(rec.to_dict(), allow_nan=False)


def test_every_row_is_accepted_or_rejected_with_its_reason(tmp_path: Path) -> None:
    result = load_subscriptions(_csv(tmp_path), **OPTIONS)
    _assert_reconciles(result)
    assert _primary(result) == EXPECTED
    rec = result.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (18, 4, 14)
    assert rec.rejected_by_reason["unparseable_start"] == 2
    assert (rec.customers, rec.spells, rec.reactivations) == (3, 4, 1)
    assert (rec.active_at_as_of, rec.churned, rec.ends_after_as_of) == (2, 2, 1)
    assert rec.billing_periods == {"month": 2, "quarter": 1, "year": 1}
    assert (rec.first_start, rec.last_start, rec.as_of) == ("2019-01-31", "2019-06-01", "2020-12-31")
    assert (rec.source, rec.source_type, rec.kind) == ("subs.csv", "csv", "spells")
    assert rec.sha256 is not None and rec.charges_in_spells is None
    assert rec.columns == {k: k for k in (*SPELL_COLUMNS[:1], "start", "end", "price", "plan",
                                          "billing_period", "channel")}

    rej = result.rejections.set_index(["source_row", "reason"])
    assert rej.loc[(3, "missing_customer_id"), "line"] == 5  # the blank line 4 is skipped
    assert rej.loc[(17, "malformed_row"), "line"] == 19
    expected_cells = {  # (row, reason): (column, raw value, detail)
        (4, "unparseable_start"): ("start", "2019-13-01", "not a date (ISO YYYY-MM-DD or YYYYMMDD)"),
        (5, "unparseable_end"): ("end", "soon", "not a date (ISO YYYY-MM-DD or YYYYMMDD)"),
        (6, "start_after_as_of"): ("start", "2021-01-01", "after as-of date 2020-12-31"),
        (7, "end_not_after_start"): ("end", "2019-05-01", "on or before the start 2019-05-01"),
        (8, "non_numeric_price"): ("price", "1 000", "not a plain number"),
        (10, "non_positive_price"): ("price", "-5", "a price per period must be > 0"),
        (11, "unknown_plan"): ("plan", "gold", "not one of the plans Basic, Pro"),
        (12, "unknown_billing_period"): ("billing_period", "weekly", None),
        (14, "duplicate_spell"): ("start", "2019-02-15", "same customer and start as source row 13"),
        (15, "overlapping_spell"): (
            "start", "2019-05-15", "starts before the spell of source row 13 ends on 2021-06-01"),
    }
    for key, (column, raw, detail) in expected_cells.items():
        line = rej.loc[key]
        assert (line["column"], line["raw_value"]) == (column, raw), key
        assert line["line"] == key[0] + 2
        if detail is not None:
            assert line["detail"] == detail, key
    assert rej.loc[(9, "missing_price"), "raw_value"] is None
    # a row failing several checks has a line each, in the reasons' order; one is primary
    six = result.rejections[result.rejections["source_row"] == 18]
    assert six["reason"].tolist() == ["unparseable_start", "unparseable_end", "non_numeric_price",
                                      "unknown_plan", "unknown_billing_period"]
    assert six["column"].tolist() == ["start", "end", "price", "plan", "billing_period"]
    assert six["primary"].tolist() == [True, False, False, False, False]
    assert six["line"].tolist() == [20] * 5


def test_the_accepted_spells(tmp_path: Path) -> None:
    spells = load_subscriptions(_csv(tmp_path), **OPTIONS).spells
    assert list(spells.columns) == [*SPELL_COLUMNS, "channel"]
    ts = pd.Timestamp
    expected = pd.DataFrame({
        "customer_id": ["a", "a", "d", "e"],
        "spell": np.array([1, 2, 1, 1], dtype=np.int64),
        "start": _days(["2019-01-31", "2019-06-01", "2019-02-15", "2019-03-01"]),
        "end": _days(["2019-04-30", None, None, "2020-03-01"]),  # d ends after as_of
        "price": [10.0, 10.0, 20.0, 120.0],
        "plan": ["Basic", "Basic", "Pro", "Basic"],
        "billing_period": ["month", "month", "quarter", "year"],
        "channel": pd.Series(["web", "web", "shop", None], dtype=object),
    })
    pd.testing.assert_frame_equal(spells, expected, check_dtype=False)
    assert spells["start"].dtype == spells["end"].dtype == np.dtype("datetime64[ns]")
    assert spells["spell"].dtype == np.int64 and spells["price"].dtype == np.float64
    assert spells["plan"].dtype == object
    assert spells["customer_id"].map(type).eq(str).all()
    # without as_of the end is kept as given and no start is too late
    late = load_subscriptions(_csv(tmp_path))
    assert late.reconciliation.ends_after_as_of == 0 and late.reconciliation.as_of is None
    assert _primary(late).get(6) is None
    d = late.spells[late.spells["customer_id"] == "d"]
    assert d["end"].tolist() == [ts("2021-06-01")]
    # without plans any plan is accepted as written
    assert late.spells["plan"].tolist() == ["basic", "Basic", "Basic", "gold", "Pro", "Basic"]


def test_overlaps_are_judged_against_every_earlier_starting_spell(tmp_path: Path) -> None:
    records = [
        "x,2019-01-01,2019-03-01",  # 1 kept
        "x,2019-01-15,2019-12-01",  # 2 overlapping (1 has not ended)
        "x,2019-03-01,2019-04-01",  # 3 overlapping: 2, rejected, had not ended either
        "x,2020-01-01,",  # 4 kept: everything before has ended
        "x,2020-06-01,2020-07-01",  # 5 overlapping: 4 is active
        "y,2019-01-01,2019-02-01",  # 6 kept
        "y,2019-02-01,",  # 7 kept: starts on the day 6 ends
    ]
    result = load_subscriptions(_csv(tmp_path, records, header="customer_id,start,end\n"))
    _assert_reconciles(result)
    assert _primary(result) == {2: "overlapping_spell", 3: "overlapping_spell",
                                5: "overlapping_spell"}
    details = result.rejections.set_index("source_row")["detail"]
    assert details[3] == "starts before the spell of source row 2 ends on 2019-12-01"
    assert details[5] == "starts before the spell of source row 4 ends (it is active)"
    spells = result.spells
    assert spells[["customer_id", "spell"]].values.tolist() == [["x", 1], ["x", 2], ["y", 1],
                                                                ["y", 2]]
    assert result.reconciliation.reactivations == 2
    # no price column: price NaN, no plan, the default billing period
    assert spells["price"].isna().all() and spells["plan"].isna().all()
    assert set(spells["billing_period"]) == {"month"}
    yearly = load_subscriptions(_csv(tmp_path, records, header="customer_id,start,end\n"),
                                billing_period="annually")
    assert set(yearly.spells["billing_period"]) == {"year"}


def test_csv_parquet_and_dataframe_sources_agree(tmp_path: Path) -> None:
    records = [r for r in RECORDS if '"' not in r]  # no malformed line: every source has it all
    path = _csv(tmp_path, records)
    from_csv = load_subscriptions(path, **OPTIONS)
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    from_frame = load_subscriptions(text, **OPTIONS)
    text.to_parquet(tmp_path / "subs.parquet")
    from_parquet = load_subscriptions(tmp_path / "subs.parquet", **OPTIONS)
    for other in (from_frame, from_parquet):
        _assert_reconciles(other)
        pd.testing.assert_frame_equal(other.spells, from_csv.spells)
        cols = ["source_row", "column", "raw_value", "reason", "primary", "detail"]
        pd.testing.assert_frame_equal(other.rejections[cols], from_csv.rejections[cols])
        a, b = other.reconciliation.to_dict(), from_csv.reconciliation.to_dict()
        for key in ("source", "source_type", "sha256"):
            a.pop(key), b.pop(key)
        assert a == b
    assert from_frame.rejections["line"].isna().all()
    assert from_parquet.reconciliation.source_type == "parquet"
    # typed columns: datetimes with NaT for active spells, float prices
    good = from_csv.spells
    typed = pd.DataFrame({
        "customer_id": ["a", "a", "d", "e"], "start": good["start"],
        "end": pd.to_datetime(["2019-04-30", None, "2021-06-01", "2020-03-01"]),
        "price": good["price"], "plan": good["plan"], "billing_period": good["billing_period"],
        "channel": good["channel"],
    })
    pd.testing.assert_frame_equal(load_subscriptions(typed, **OPTIONS).spells, good)


def test_the_parquet_writer_matches_the_loader(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    loaded = load_subscriptions(path, **OPTIONS)
    rec, rejections = validate_subscriptions_to_parquet(
        path, tmp_path / "out" / "spells.parquet", memory_limit="256MB", threads=1, **OPTIONS)
    assert rec == loaded.reconciliation
    pd.testing.assert_frame_equal(rejections, loaded.rejections)
    back = pd.read_parquet(tmp_path / "out" / "spells.parquet")
    back[["start", "end"]] = back[["start", "end"]].astype("datetime64[ns]")
    for column in ("plan", "channel"):
        back[column] = back[column].astype(object).where(back[column].notna(), None)
    pd.testing.assert_frame_equal(back, loaded.spells, check_dtype=False)


def test_mapped_columns_and_date_format(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("Kunde;Beginn;Ende;Preis\nk1;31/01/2019;;9.5\nk2;01/02/2019;01/03/2019;3\n"
                    "k3;2019-02-01;;3\n", encoding="utf-8")
    result = load_subscriptions(path, columns={"customer_id": "Kunde", "start": "beginn",
                                               "end": "Ende", "price": "Preis"},
                                date_format="%d/%m/%Y", billing_period="quarter")
    assert result.spells["start"].tolist() == [pd.Timestamp("2019-01-31"),
                                               pd.Timestamp("2019-02-01")]
    assert result.spells["end"].tolist()[1] == pd.Timestamp("2019-03-01")
    assert _primary(result) == {3: "unparseable_start"}
    assert result.rejections["detail"].tolist() == ["not a date (format %d/%m/%Y)"]
    assert result.reconciliation.columns == {"customer_id": "Kunde", "start": "Beginn",
                                             "end": "Ende", "price": "Preis"}


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^s\.csv: required column 'end' \(columns\.end\) not found"):
        load_subscriptions(_csv(tmp_path, ["a,2019-01-01"], "s.csv", "customer_id,start\n"))
    ok = _csv(tmp_path, ["a,2019-01-01,"], "ok.csv", "customer_id,start,end\n")
    with pytest.raises(DataError, match=r"ok\.csv: required column 'fee' \(columns\.price\)"):
        load_subscriptions(ok, columns={"price": "fee"})
    with pytest.raises(DataError, match=r"ok\.csv: extra column 'channel' not found"):
        load_subscriptions(ok, extra_columns=["channel"])
    with pytest.raises(DataError, match=r"ok\.csv: plans are given but there is no plan column"):
        load_subscriptions(ok, plans=["a"])
    empty = tmp_path / "empty.csv"
    empty.write_text("customer_id,start,end\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^empty\.csv: empty file"):
        load_subscriptions(empty)
    other = tmp_path / "subs.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match=r"^subs\.json: unsupported file type '\.json'"):
        load_subscriptions(other)
    with pytest.raises(DataError, match=r"missing\.csv: file not found"):
        load_subscriptions(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="billing_period must be one of"):
        load_subscriptions(ok, billing_period="weekly")
    with pytest.raises(ConfigError, match="columns: unknown key 'amount'"):
        load_subscriptions(ok, columns={"amount": "x"})
    with pytest.raises(ConfigError, match="as_of"):
        load_subscriptions(ok, as_of="soon")
    with pytest.raises(ConfigError, match="extra_columns plan would replace"):
        load_subscriptions(ok, extra_columns=["plan"])
    with pytest.raises(ConfigError, match="memory_limit"):
        load_subscriptions(ok, memory_limit="lots")
    with pytest.raises(ValueError, match="does not add up"):
        dataclasses.replace(load_subscriptions(ok).reconciliation, rows_accepted=2)
    with pytest.raises(DataError, match=r"^DataFrame: required column 'start'"):
        load_subscriptions(pd.DataFrame({"customer_id": ["a"], "end": [None]}))


# --------------------------------------------------------------------------- billing logs

CHARGES = [  # source row: customer, date, amount
    "a,2019-01-31,10",  # 1  spell 1 starts
    "a,2019-03-07,10",  # 2  Feb 28 (Jan 31 + 1 month, clamped) + 7 days: still spell 1
    "a,2019-03-07,5",  # 3  the same day: one charge of 15
    "a,2019-05-20,12",  # 4  > Apr 7 + 7 days after Mar 7: spell 2 (a reactivation), active
    "b,2019-01-01,-5",  # 5  non_positive_amount (a refund)
    "b,2019-01-02,7",  # 6  b's only spell: ends Feb 2, on or before as_of: churned
    ",2019-01-02,7",  # 7  missing_customer_id
    "c,2019-02-30,7",  # 8  unparseable_date
    "c,2019-07-01,7",  # 9  date_after_as_of
    "c,7 EUR,seven",  # 10 unparseable_date, non_numeric_amount
    "c,2019-05-05,0",  # 11 non_positive_amount (a zero charge)
    "c,2019-05-06,1e13",  # 12 non_numeric_amount (magnitude)
]


def _log(tmp_path: Path, rows: list[str] = CHARGES) -> Path:
    path = tmp_path / "charges.csv"
    path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_spells_from_a_billing_log(tmp_path: Path) -> None:
    result = spells_from_billing_log(_log(tmp_path), as_of="2019-06-01")
    _assert_reconciles(result, BILLING_LOG_REJECTION_REASONS)
    assert _primary(result) == {5: "non_positive_amount", 7: "missing_customer_id",
                                8: "unparseable_date", 9: "date_after_as_of",
                                10: "unparseable_date", 11: "non_positive_amount",
                                12: "non_numeric_amount"}
    rej = result.rejections
    assert rej.loc[rej["source_row"] == 10, "reason"].tolist() == ["unparseable_date",
                                                                   "non_numeric_amount"]
    assert rej.loc[rej["source_row"] == 5, "detail"].tolist() == ["a refund: charges must be > 0"]
    assert rej.loc[rej["source_row"] == 12, "detail"].tolist() == ["magnitude above 1e12"]
    assert rej.loc[rej["source_row"] == 12, "line"].tolist() == [13]
    expected = pd.DataFrame({
        "customer_id": ["a", "a", "b"], "spell": [1, 2, 1],
        "start": _days(["2019-01-31", "2019-05-20", "2019-01-02"]),
        "end": _days(["2019-04-07", None, "2019-02-02"]),
        "price": [15.0, 12.0, 7.0], "plan": [None, None, None],
        "billing_period": ["month"] * 3,
    })
    pd.testing.assert_frame_equal(result.spells, expected, check_dtype=False)
    rec = result.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (12, 5, 7)
    assert (rec.charges_in_spells, rec.spells, rec.reactivations) == (4, 3, 1)
    assert (rec.active_at_as_of, rec.churned, rec.kind) == (1, 2, "billing_log")


def test_billing_log_grace_period_and_as_of(tmp_path: Path) -> None:
    path = _log(tmp_path, CHARGES[:4])
    # one day less of grace: Mar 7 is after Feb 28 + 6 days, so a's second charge starts a spell
    strict = spells_from_billing_log(path, as_of="2019-06-01", grace_days=6).spells
    assert strict["start"].tolist() == [pd.Timestamp(d) for d in ("2019-01-31", "2019-03-07",
                                                                  "2019-05-20")]
    assert strict["end"].tolist()[:2] == [pd.Timestamp("2019-02-28"), pd.Timestamp("2019-04-07")]
    assert strict["price"].tolist() == [10.0, 15.0, 12.0]
    # without as_of the log is read at its last charge: the last spell is active
    rec = spells_from_billing_log(path).reconciliation
    assert (rec.as_of, rec.active_at_as_of, rec.churned) == ("2019-05-20", 1, 1)
    # exactly one period after the last charge on as_of: ended that day
    ended = spells_from_billing_log(path, as_of="2019-06-20").spells
    assert ended["end"].tolist()[-1] == pd.Timestamp("2019-06-20")
    # quarterly billing: charges three months apart are one spell
    quarterly = spells_from_billing_log(
        pd.DataFrame({"id": ["q"] * 3, "day": pd.to_datetime(["2019-01-15", "2019-04-15",
                                                               "2019-07-20"]),
                      "fee": [30.0, 30.0, 33.0]}),
        columns={"customer_id": "id", "date": "day", "amount": "fee"}, billing_period="quarter",
        as_of="2019-12-31")
    assert quarterly.spells[["start", "end", "price"]].values.tolist() == [
        [pd.Timestamp("2019-01-15"), pd.Timestamp("2019-10-20"), 33.0]]
    with pytest.raises(ConfigError, match="grace_days"):
        spells_from_billing_log(path, grace_days=-1)
