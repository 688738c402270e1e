"""The customer × period revenue panel reader (:mod:`cbcv.data.panel`): hand-made wide and long
panels with known answers for every rejection reason, the reconciliation invariant, wide and long
forms giving the same result, and the Madrigal sample of Fader, Hardie & Ross (2022) checked
against an independent pandas reading of the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import ConfigError, DataError
from cbcv.data.catalog import raw_data_dir
from cbcv.data.load import REJECTION_COLUMNS
from cbcv.data.panel import (
    PANEL_REJECTION_REASONS,
    PanelReconciliation,
    load_revenue_panel,
    panel_to_transactions,
    parse_period_label,
)

MADRIGAL = "cust_by_qtr_spend.csv"


def _write(tmp_path: Path, text: str, name: str = "panel.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _primary(result) -> dict[int, str]:
    """source_row -> the counted reason."""
    lines = result.rejections[result.rejections["primary"]]
    return dict(zip(lines["source_row"].astype(int), lines["reason"], strict=True))


def _labels(series: pd.Series) -> list[str]:
    """Periods as their labels, NaT as ``"NaT"``."""
    return [str(p) if pd.notna(p) else "NaT" for p in series]


def _assert_reconciles(result) -> None:
    rec = result.reconciliation
    assert rec.rows_read == rec.rows_accepted + rec.rows_rejected
    assert set(rec.rejected_by_reason) == set(PANEL_REJECTION_REASONS)
    assert sum(rec.rejected_by_reason.values()) == rec.rows_rejected
    assert int(result.rejections["primary"].sum()) == rec.rows_rejected
    assert result.rejections["source_row"].nunique() == rec.rows_rejected
    assert list(result.rejections.columns) == list(REJECTION_COLUMNS)
    assert rec.cells_active == len(result.panel)
    assert rec.customers == len(result.customers)
    assert math.isclose(rec.total_revenue, float(result.panel["revenue"].sum()), rel_tol=1e-12)
    json.dumps(rec.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- period labels


@pytest.mark.parametrize(
    ("label", "period", "expected"),
    [
        ("Y2016Q1", "quarter", "2016Q1"),
        ("2016Q1", "quarter", "2016Q1"),
        ("2016-Q3", "quarter", "2016Q3"),
        ("y2019_q4", "quarter", "2019Q4"),
        (" 2017 q2 ", "quarter", "2017Q2"),
        ("Q2 2018", "quarter", "2018Q2"),
        ("2016-03-31", "quarter", "2016Q1"),
        ("2016-03", "month", "2016-03"),
        ("2016_11", "month", "2016-11"),
        ("201612", "month", "2016-12"),
        ("Y2016M07", "month", "2016-07"),
        ("2016-03-15 00:00:00", "month", "2016-03"),
        ("2016", "year", "2016"),
        ("Y2017", "year", "2017"),
    ],
)
def test_period_labels_that_parse(label: str, period: str, expected: str) -> None:
    assert str(parse_period_label(label, period)) == expected


@pytest.mark.parametrize(
    ("label", "period"),
    [
        ("2016-03", "quarter"),  # a month is no quarter
        ("2016", "quarter"),
        ("2016Q1", "month"),
        ("2016Q5", "quarter"),
        ("2016-13", "month"),
        ("2016-02-30", "quarter"),  # not a day
        ("pre_y2016", "quarter"),
        ("", "quarter"),
        ("1500Q1", "quarter"),  # outside the representable years
    ],
)
def test_period_labels_that_do_not_parse(label: str, period: str) -> None:
    assert parse_period_label(label, period) is None


# --------------------------------------------------------------------------- wide layout

WIDE = (
    "CustomerID,Cohort,2016Q1,2016Q2,2016Q3\n"
    "a,pre_y2016,1,2,\n"  # 1 ok: acquired before the start, empty cell = 0
    ",2016Q1,1,,\n"  # 2 missing_customer_id
    "b,2016Q2,,5,x\n"  # 3 non_numeric_revenue
    "c,2016Q3,4,,\n"  # 4 cohort_after_first_active_period
    "d,2016Q1,3,-1,1e13\n"  # 5 revenue_out_of_range (and negative_revenue, not counted)
    "a,2016Q1,1,1,1\n"  # 6 duplicate_customer
    "e,zzz,,,\n"  # 7 unparseable_cohort
    "f,2017Q1,,,\n"  # 8 cohort_after_last_period
    "g,2016Q2,,0,3\n"  # 9 ok: no revenue in the cohort period, accepted and counted
    'h,2016Q1,1,"1,5"\n'  # 10 malformed_row (a quoted decimal comma leaves a field short)
    "i,2016Q2,,7.5,0\n"  # 11 ok
    "j,2016Q1,2,-0.5,\n"  # 12 negative_revenue
)


def test_wide_panel_every_row_accepted_or_rejected_with_its_reason(tmp_path: Path) -> None:
    result = load_revenue_panel(_write(tmp_path, WIDE), layout="wide")
    _assert_reconciles(result)
    assert _primary(result) == {
        2: "missing_customer_id", 3: "non_numeric_revenue",
        4: "cohort_after_first_active_period", 5: "revenue_out_of_range",
        6: "duplicate_customer", 7: "unparseable_cohort", 8: "cohort_after_last_period",
        10: "malformed_row", 12: "negative_revenue",
    }
    rec = result.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (12, 3, 9)
    assert rec.rejected_by_reason["duplicate_cell"] == 0
    assert rec.cells_read == 11 * 3  # the malformed line has no cells
    assert rec.cells_accepted == 3 * 3
    assert rec.customers_before_start == 1
    assert rec.customers_inactive_in_cohort_period == 1  # g
    assert rec.sha256 is not None and rec.source == "panel.csv" and rec.source_type == "csv"
    assert (rec.first_period, rec.last_period) == ("2016Q1", "2016Q3")
    assert rec.total_revenue == pytest.approx(1 + 2 + 3 + 7.5)

    rej = result.rejections
    # a row with two failing cells has two lines, each naming its column; one is primary
    five = rej[rej["source_row"] == 5]
    assert list(zip(five["column"], five["reason"], five["primary"], strict=True)) == [
        ("2016Q3", "revenue_out_of_range", True), ("2016Q2", "negative_revenue", False)
    ]
    assert five["raw_value"].tolist() == ["1e13", "-1"]
    # physical lines: the header is line 1
    assert rej.loc[rej["source_row"] == 3, "line"].tolist() == [4]
    assert rej.loc[rej["source_row"] == 10, "line"].tolist() == [11]
    dup = rej[rej["reason"] == "duplicate_customer"]
    assert dup["detail"].tolist() == ["same customer id as source row 1"]
    late = rej[rej["reason"] == "cohort_after_first_active_period"]
    assert late[["column", "raw_value", "detail"]].values.tolist() == [
        ["Cohort", "2016Q3", "first revenue in 2016Q1"]
    ]


def test_wide_panel_outputs(tmp_path: Path) -> None:
    result = load_revenue_panel(_write(tmp_path, WIDE), layout="wide")
    q = pd.PeriodIndex(["2016Q1", "2016Q2", "2016Q3"], freq="Q")
    pd.testing.assert_index_equal(result.periods, q)
    expected = pd.DataFrame({
        "customer_id": ["a", "a", "g", "i"],
        "period": pd.PeriodIndex(["2016Q1", "2016Q2", "2016Q3", "2016Q2"], freq="Q"),
        "revenue": [1.0, 2.0, 3.0, 7.5],
    })
    pd.testing.assert_frame_equal(result.panel, expected, check_dtype=False)
    assert result.panel["customer_id"].map(type).eq(str).all()
    assert isinstance(result.panel["period"].dtype, pd.PeriodDtype)
    customers = result.customers
    assert customers["customer_id"].tolist() == ["a", "g", "i"]
    assert _labels(customers["cohort"]) == ["NaT", "2016Q2", "2016Q2"]
    assert customers["acquired_before_start"].tolist() == [True, False, False]
    assert _labels(customers["first_active_period"]) == ["2016Q1", "2016Q3", "2016Q2"]


def test_wide_columns_that_cannot_be_reconciled_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bad\.csv: column 'Region' .*unknown_period_label"):
        load_revenue_panel(
            _write(tmp_path, "CustomerID,Cohort,2016Q1,Region\na,2016Q1,1,x\n", "bad.csv"),
            layout="wide",
        )
    with pytest.raises(DataError, match=r"column '2016-03' .*quarter label"):  # a month header
        load_revenue_panel(_write(tmp_path, "CustomerID,2016Q1,2016-03\na,1,2\n"), layout="wide")
    with pytest.raises(DataError, match=r"column 'Y2016Q1' is the same quarter as column '2016Q1'"):
        load_revenue_panel(_write(tmp_path, "CustomerID,2016Q1,Y2016Q1\na,1,2\n"), layout="wide")
    with pytest.raises(DataError, match=r"no column for quarter 2016Q2"):
        load_revenue_panel(_write(tmp_path, "CustomerID,2016Q1,2016Q3\na,1,2\n"), layout="wide")
    with pytest.raises(DataError, match=r"required column 'CustomerID'"):
        load_revenue_panel(_write(tmp_path, "id,2016Q1\na,1\n"), layout="wide")


def test_wide_header_order_and_id_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "cust,2016Q2,2016Q1\n7,5,\n8,0,2.5\n")
    result = load_revenue_panel(path, layout="wide", columns={"customer_id": "cust"})
    assert result.panel.astype({"period": str}).values.tolist() == [
        ["7", "2016Q2", 5.0], ["8", "2016Q1", 2.5]
    ]
    assert result.reconciliation.columns == {"customer_id": "cust"}


def test_without_a_cohort_column_the_cohort_is_the_first_active_period(tmp_path: Path) -> None:
    path = _write(tmp_path, "CustomerID,2016Q1,2016Q2,2016Q3\na,1,,\nb,0,2,1\nc,,,0\n")
    result = load_revenue_panel(path, layout="wide")
    customers = result.customers
    assert _labels(customers["cohort"]) == ["2016Q1", "2016Q2", "NaT"]
    # a, active in the first period, may have been acquired before it: unknown (left-censored)
    assert customers["acquired_before_start"].tolist() == [pd.NA, False, pd.NA]
    rec = result.reconciliation
    assert (rec.customers_start_unknown, rec.customers_before_start) == (2, 0)
    assert (rec.customers_never_active, rec.customers_inactive_in_cohort_period) == (1, 0)


def test_custom_pre_start_labels_and_cohorts_before_the_panel(tmp_path: Path) -> None:
    path = _write(tmp_path, "CustomerID,Cohort,2016Q1\na,legacy,1\nb,2015Q3,1\nc,pre_y2016,1\n")
    result = load_revenue_panel(path, layout="wide", pre_start_labels=("legacy",))
    assert _primary(result) == {3: "unparseable_cohort"}  # pre* is no longer a default
    customers = result.customers
    assert _labels(customers["cohort"]) == ["NaT", "2015Q3"]
    assert customers["acquired_before_start"].tolist() == [True, True]
    prefix = load_revenue_panel(path, layout="wide", pre_start_labels=("LEG*", "pre*"))
    assert prefix.reconciliation.rows_accepted == 3


def test_monthly_and_yearly_panels(tmp_path: Path) -> None:
    monthly = _write(tmp_path, "CustomerID,Cohort,2016-01,2016-02\na,2016-02,,3\n", "m.csv")
    result = load_revenue_panel(monthly, layout="wide", period="month")
    assert str(result.panel["period"].iloc[0]) == "2016-02"
    tx = panel_to_transactions(result)
    assert tx["date"].tolist() == [pd.Timestamp("2016-02-29")]
    yearly = pd.DataFrame({"CustomerID": [1, 2], "2016": [1.0, np.nan], "2017": [np.nan, 4.0]})
    result = load_revenue_panel(yearly, layout="wide", period="year")
    assert result.customers["customer_id"].tolist() == ["1", "2"]
    assert panel_to_transactions(result, date_rule="start")["date"].tolist() == [
        pd.Timestamp("2016-01-01"), pd.Timestamp("2017-01-01")
    ]


# --------------------------------------------------------------------------- long layout


def _long(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "period", "revenue", "cohort"])


def test_long_panel_every_row_accepted_or_rejected_with_its_reason() -> None:
    frame = _long([
        ("a", "2016Q1", "1", "2016Q1"),  # 1 ok
        ("a", "2016Q2", "2", "2016Q1"),  # 2 ok
        ("a", "2016Q2", "3", "2016Q1"),  # 3 duplicate_cell (the first row stands)
        ("b", "2016Q1", "1", "2016Q1"),  # 4 customer_rejected (row 5 is bad)
        ("b", "x", "1", "2016Q1"),  # 5 unknown_period_label
        ("c", "2016Q1", "-1", "2016Q1"),  # 6 negative_revenue
        ("c", "2016Q3", "4", "2016Q1"),  # 7 customer_rejected
        ("", "2016Q1", "1", "2016Q1"),  # 8 missing_customer_id
        ("d", "2016Q2", "", "2016Q2"),  # 9 non_numeric_revenue (empty is not zero here)
        ("e", "2016Q1", "1", "2016Q1"),  # 10 conflicting_cohort
        ("e", "2016Q2", "1", "2016Q2"),  # 11 conflicting_cohort
        ("f", "2016Q1", "5", "2016Q2"),  # 12 cohort_after_first_active_period
        ("g", "2016Q2", "1", "nope"),  # 13 unparseable_cohort
        ("h", "2016Q3", "2", "2016Q4"),  # 14 cohort_after_last_period
        ("i", "2016Q1", "1e13", "pre"),  # 15 revenue_out_of_range
        ("j", "2016Q3", "0", "PRE_Y2016"),  # 16 ok, never active
    ])
    result = load_revenue_panel(frame, layout="long")
    _assert_reconciles(result)
    assert _primary(result) == {
        3: "duplicate_cell", 4: "customer_rejected", 5: "unknown_period_label",
        6: "negative_revenue", 7: "customer_rejected", 8: "missing_customer_id",
        9: "non_numeric_revenue", 10: "conflicting_cohort", 11: "conflicting_cohort",
        12: "cohort_after_first_active_period", 13: "unparseable_cohort",
        14: "cohort_after_last_period", 15: "revenue_out_of_range",
    }
    rec = result.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (16, 3, 13)
    assert (rec.cells_read, rec.cells_accepted, rec.cells_active) == (16, 3, 2)
    assert rec.source_type == "dataframe" and rec.sha256 is None
    assert result.customers["customer_id"].tolist() == ["a", "j"]
    assert result.customers["acquired_before_start"].tolist() == [False, True]
    assert rec.customers_never_active == 1
    rej = result.rejections
    assert rej["line"].isna().all()  # no physical lines for a DataFrame
    detail = dict(zip(rej["source_row"], rej["detail"], strict=True))
    assert detail[3] == "same customer and period as source row 2"
    assert detail[4] == "source row 5 of this customer was rejected (unknown_period_label)"
    assert detail[10] == "the rows declare 2 cohorts"
    assert detail[14] == "after the last period 2016Q3"


def test_long_csv_with_mapped_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "Kunde;Quartal;Umsatz\nk1;2016Q1;1.5\nk1;2016Q3;2\n\nk2;2016Q2;0\n")
    result = load_revenue_panel(
        path, layout="long", columns={"customer_id": "Kunde", "period": "Quartal",
                                      "revenue": "Umsatz"},
    )
    _assert_reconciles(result)
    assert result.reconciliation.rows_accepted == 3
    pd.testing.assert_index_equal(result.periods, pd.period_range("2016Q1", "2016Q3", freq="Q"))
    # no cohort column: the cohort is the first period with revenue, unknown for k2 (never active)
    assert _labels(result.customers["cohort"]) == ["2016Q1", "NaT"]
    assert _labels(result.customers["first_active_period"]) == ["2016Q1", "NaT"]
    assert result.customers["acquired_before_start"].tolist() == [pd.NA, pd.NA]


def _melt(wide: pd.DataFrame, *, keep_empty: bool = False) -> pd.DataFrame:
    """The long form of a wide text panel, in source order (row, then period): an empty (zero)
    cell becomes a ``0`` row with ``keep_empty``, else no row."""
    ids = ["index", *(c for c in ("CustomerID", "Cohort") if c in wide.columns)]
    long = wide.reset_index().melt(id_vars=ids, var_name="period", value_name="revenue")
    long = long.replace({"revenue": {"": "0"}}) if keep_empty else long[long["revenue"] != ""]
    long = long.sort_values(["index", "period"], kind="stable")
    return long.drop(columns="index").reset_index(drop=True)


def _assert_same(wide, long) -> None:
    pd.testing.assert_frame_equal(wide.panel, long.panel)
    pd.testing.assert_frame_equal(wide.customers, long.customers)
    pd.testing.assert_index_equal(wide.periods, long.periods)
    for field in ("customers", "customers_before_start", "customers_start_unknown",
                  "customers_never_active", "customers_inactive_in_cohort_period",
                  "total_revenue", "cells_active", "first_period", "last_period"):
        assert getattr(wide.reconciliation, field) == getattr(long.reconciliation, field), field


LONG_NAMES = {"customer_id": "CustomerID", "cohort": "Cohort"}


def test_wide_and_long_forms_of_one_panel_give_the_same_result(tmp_path: Path) -> None:
    # the hand-made panel without its duplicate and malformed rows, which have no long form
    lines = WIDE.splitlines(keepends=True)
    text = "".join(line for i, line in enumerate(lines) if i not in (6, 10))
    wide = load_revenue_panel(_write(tmp_path, text), layout="wide")
    frame = pd.read_csv(tmp_path / "panel.csv", dtype=str, keep_default_na=False)
    long = load_revenue_panel(_melt(frame, keep_empty=True), layout="long", columns=LONG_NAMES)
    _assert_same(wide, long)
    assert wide.customers["customer_id"].tolist() == ["a", "g", "i"]
    # the same customers are rejected for the same reasons; in the long form the other rows of a
    # customer with a bad cell follow it
    wide_reasons = {
        "missing_customer_id", "non_numeric_revenue", "cohort_after_first_active_period",
        "revenue_out_of_range", "unparseable_cohort", "cohort_after_last_period",
        "negative_revenue",
    }
    assert set(_primary(wide).values()) == wide_reasons
    assert set(_primary(long).values()) == wide_reasons | {"customer_rejected"}
    # without zero rows the customers with only empty cells (e, f) are absent, not rejected
    sparse = load_revenue_panel(_melt(frame), layout="long", columns=LONG_NAMES)
    _assert_same(wide, sparse)
    assert "unparseable_cohort" not in set(_primary(sparse).values())
    no_cohort = frame.drop(columns="Cohort")
    _assert_same(load_revenue_panel(no_cohort, layout="wide"),
                 load_revenue_panel(_melt(no_cohort, keep_empty=True), layout="long",
                                    columns={"customer_id": "CustomerID"}))


def test_a_loaded_panel_reads_back_as_a_long_panel(tmp_path: Path) -> None:
    """``panel`` (Period dtype) is itself a valid long source: the panel comes back unchanged."""
    first = load_revenue_panel(_write(tmp_path, WIDE), layout="wide")
    again = load_revenue_panel(first.panel, layout="long")
    _assert_reconciles(again)
    assert again.reconciliation.rows_rejected == 0
    pd.testing.assert_frame_equal(first.panel, again.panel)


def test_parquet_source_reads_like_the_csv(tmp_path: Path) -> None:
    frame = pd.DataFrame({"CustomerID": [1, 2, 3], "Cohort": ["pre_y2016", "y2016_q2", "Y2016Q1"],
                          "Y2016Q1": [1.25, np.nan, 2.0], "Y2016Q2": [0.0, 3.0, -1.0]})
    frame.to_parquet(tmp_path / "p.parquet")
    result = load_revenue_panel(tmp_path / "p.parquet", layout="wide")
    assert result.reconciliation.source_type == "parquet"
    assert _primary(result) == {3: "negative_revenue"}
    assert result.panel["revenue"].tolist() == [1.25, 3.0]
    assert result.panel["customer_id"].tolist() == ["1", "2"]  # integral ids keep integer text


# --------------------------------------------------------------------------- the rest of the API


def test_panel_to_transactions_dates_each_active_period(tmp_path: Path) -> None:
    result = load_revenue_panel(_write(tmp_path, WIDE), layout="wide")
    end = panel_to_transactions(result)
    assert list(end.columns) == ["customer_id", "date", "amount"]
    assert end["date"].dtype == "datetime64[ns]"
    assert end["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2016-03-31", "2016-06-30", "2016-09-30", "2016-06-30"
    ]
    assert end["amount"].tolist() == result.panel["revenue"].tolist()
    start = panel_to_transactions(result, date_rule="start")
    assert start["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2016-01-01", "2016-04-01", "2016-07-01", "2016-04-01"
    ]
    with pytest.raises(ConfigError, match="date_rule"):
        panel_to_transactions(result, date_rule="middle")  # type: ignore[arg-type]


def test_reconciliation_invariant_and_json(tmp_path: Path) -> None:
    rec = load_revenue_panel(_write(tmp_path, WIDE), layout="wide").reconciliation
    data = json.loads(json.dumps(rec.to_dict(), allow_nan=False))
    assert data["rows_read"] == 12 and data["pre_start_labels"] == ["pre*"]
    with pytest.raises(ValueError, match="does not add up"):
        PanelReconciliation(**{**rec.__dict__, "rows_accepted": rec.rows_accepted + 1})


def test_argument_and_source_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "CustomerID,2016Q1\na,1\n")
    with pytest.raises(ConfigError, match="layout"):
        load_revenue_panel(path, layout="tall")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="period"):
        load_revenue_panel(path, layout="wide", period="week")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown key 'revenue'"):
        load_revenue_panel(path, layout="wide", columns={"revenue": "x"})
    with pytest.raises(ConfigError, match="pre_start_labels"):
        load_revenue_panel(path, layout="wide", pre_start_labels="pre*")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"required column 'Segment' \(columns.cohort\)"):
        load_revenue_panel(path, layout="wide", columns={"cohort": "Segment"})
    with pytest.raises(DataError, match="missing.csv: file not found"):
        load_revenue_panel(tmp_path / "missing.csv", layout="wide")
    with pytest.raises(DataError, match="empty file"):
        load_revenue_panel(_write(tmp_path, "CustomerID,2016Q1\n", "e.csv"), layout="wide")


# --------------------------------------------------------------------------- Madrigal


@pytest.fixture(scope="module")
def madrigal_raw() -> pd.DataFrame:
    """The file as text, read by pandas independently of the loader."""
    return pd.read_csv(raw_data_dir() / MADRIGAL, dtype=str, keep_default_na=False,
                       encoding="utf-8-sig")


@pytest.fixture(scope="module")
def madrigal():
    return load_revenue_panel(raw_data_dir() / MADRIGAL, layout="wide")


def test_madrigal_file_is_the_published_copy() -> None:
    import hashlib

    data = (raw_data_dir() / MADRIGAL).read_bytes()
    assert data.startswith(b"\xef\xbb\xbfCustomerID,Cohort,Y2016Q1,")
    assert hashlib.sha256(data).hexdigest() == (
        "91bd7271d47eca14793a3fc76f5d461490ea87f03f16fed2f498a4f62a640f40"
    )


def test_madrigal_counts_match_an_independent_reading(madrigal, madrigal_raw) -> None:
    raw = madrigal_raw
    values = raw.drop(columns=["CustomerID", "Cohort"])
    numbers = values.replace("", "0").astype(float)
    pre = raw["Cohort"].str.startswith("pre")
    assert len(raw) == 70_041 and raw["CustomerID"].is_unique
    assert int(pre.sum()) == 8_916
    assert values.shape[1] == 16

    _assert_reconciles(madrigal)
    rec = madrigal.reconciliation
    assert rec.rows_read == rec.rows_accepted == rec.customers == len(raw)
    assert rec.rows_rejected == 0 and len(madrigal.rejections) == 0
    assert rec.customers_before_start == int(pre.sum())
    assert rec.sha256 == "91bd7271d47eca14793a3fc76f5d461490ea87f03f16fed2f498a4f62a640f40"
    pd.testing.assert_index_equal(madrigal.periods,
                                  pd.period_range("2016Q1", "2019Q4", freq="Q"))
    assert rec.cells_read == rec.cells_accepted == values.size
    assert rec.cells_active == int((numbers > 0).to_numpy().sum()) == 130_774
    expected_total = math.fsum(numbers.to_numpy().ravel())
    assert rec.total_revenue == pytest.approx(expected_total, rel=1e-12)
    assert rec.total_revenue == pytest.approx(18_401_720.85, abs=1e-6)
    # per-customer revenue as pandas sees it
    by_customer = madrigal.panel.groupby("customer_id")["revenue"].sum()
    independent = pd.Series(numbers.sum(axis=1).to_numpy(), index=raw["CustomerID"])
    independent = independent[independent > 0]
    np.testing.assert_allclose(by_customer.reindex(independent.index).to_numpy(),
                               independent.to_numpy(), rtol=1e-12)


def test_madrigal_cohorts(madrigal, madrigal_raw) -> None:
    sizes = madrigal.customers["cohort"].dropna().astype(str).value_counts().sort_index()
    labels = madrigal_raw.loc[~madrigal_raw["Cohort"].str.startswith("pre"), "Cohort"]
    independent = labels.str.upper().str.replace("_", "").str.lstrip("Y").value_counts()
    pd.testing.assert_series_equal(sizes, independent.sort_index(), check_names=False)
    assert len(sizes) == 16
    assert sizes["2016Q1"] == 2_944 and sizes["2019Q4"] == 8_601
    customers = madrigal.customers
    assert customers.loc[customers["cohort"].isna(), "acquired_before_start"].all()
    assert not customers.loc[customers["cohort"].notna(), "acquired_before_start"].any()
    # no cohort is later than the first revenue; seven customers have none in the cohort quarter
    inside = customers[customers["cohort"].notna()]
    active = inside["first_active_period"].notna()
    assert (inside.loc[active, "cohort"] <= inside.loc[active, "first_active_period"]).all()
    quiet = inside[~active | (inside["first_active_period"] != inside["cohort"])]
    assert sorted(quiet["customer_id"].astype(int)) == [9412, 31466, 33068, 33849, 34347, 36173,
                                                        61231]
    assert madrigal.reconciliation.customers_inactive_in_cohort_period == 7
    assert madrigal.reconciliation.customers_never_active == 6


def test_madrigal_long_form_gives_the_same_result(madrigal, madrigal_raw) -> None:
    long = load_revenue_panel(_melt(madrigal_raw), layout="long", columns=LONG_NAMES)
    n_cells = int((madrigal_raw.drop(columns=["CustomerID", "Cohort"]) != "").to_numpy().sum())
    assert long.reconciliation.rows_read == long.reconciliation.rows_accepted == n_cells
    _assert_same(madrigal, long)


def test_madrigal_transactions(madrigal) -> None:
    tx = panel_to_transactions(madrigal)
    assert len(tx) == 130_774 and tx["customer_id"].nunique() == 70_041 - 6
    assert tx["date"].min() == pd.Timestamp("2016-03-31")
    assert tx["date"].max() == pd.Timestamp("2019-12-31")
    assert tx["amount"].sum() == pytest.approx(madrigal.reconciliation.total_revenue)
