"""Reading disclosed customer metrics (cbcv.data.disclosures): the Costner case, the stylised
subscription company with its accounting identity, and a crafted file with every kind of
problem: each row accepted or rejected with its reason, identities reported not fixed, gaps and
restatements stated, counts reconciled, strict JSON."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import DataError
from cbcv.data.catalog import raw_data_dir
from cbcv.data.disclosures import DISCLOSURE_REJECTION_REASONS, load_disclosures

COSTNER = {"period": "quarter", "marketing_spend": "marketing", "active_customers": "customers",
           "orders": "ordertotal", "revenue": "revtotal"}


def test_costner_reads_as_disclosed() -> None:
    d = load_disclosures(raw_data_dir() / "costner-data.csv", columns=COSTNER, scale={"orders": 1000, "revenue": 1000},
                         as_of=dt.date(2018, 3, 31))
    t = d.table
    assert list(t.index.astype(str)) == [f"{y}Q{q}" for y in range(2014, 2018) for q in range(1, 5)] + ["2018Q1"]
    assert t["marketing_spend"].notna().all() and t.loc["2014Q1":"2014Q4", "active_customers"].isna().all()
    assert t.loc["2015Q1", "active_customers"] == 213_000 and t.loc["2015Q1", "revenue"] == 48_586_000
    assert t.loc["2018Q1", "orders"] == 3_473_000
    rec = d.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (17, 17, 0)
    assert d.gaps == () and d.identities.empty and d.scale["revenue"] == 1000
    assert d.series == ("active_customers", "orders", "revenue", "marketing_spend")
    # revenue per active customer as the case reports it (revpc): within 1.5% (the case rounds its inputs)
    raw = pd.read_csv(raw_data_dir() / "costner-data.csv").dropna()
    np.testing.assert_allclose((t["revenue"] / t["active_customers"]).dropna().to_numpy(), raw["revpc"], rtol=0.015)


def test_stylised_identities_hold(tmp_path) -> None:
    cohorts = pd.read_csv(raw_data_dir() / "cohort-data.csv", encoding="utf-8-sig", index_col=0).to_numpy(dtype=float)
    q = pd.read_csv(raw_data_dir() / "quarterly-data.csv", encoding="utf-8-sig")
    new = np.diag(cohorts)
    end = q["total_customers"].to_numpy()
    lost = np.concatenate([[0.0], end[:-1] + new[1:] - end[1:]])
    frame = pd.DataFrame({"period": [f"2001Q{k}" if k <= 4 else f"2002Q{k - 4}" for k in range(1, 9)],
                          "new_customers": new, "lost_customers": lost, "customers_end": end,
                          "revenue": q["total_revenue"], "marketing_spend": q["marketing_spend"]})
    path = tmp_path / "stylised.csv"
    frame.to_csv(path, index=False)
    d = load_disclosures(path)
    assert len(d.identities) == 7 and d.identities["holds"].all() and d.violations.empty
    np.testing.assert_allclose(d.table["customers_end"].to_numpy(), end)


CRAFTED = """period,new_customers,lost_customers,customers_end,revenue,marketing_spend
2020Q1,100,0,100,"1,000",50
2020-Q2,50,10,140,1500,60
Q3 2020,40,10,175,1800,55
2020Q3,40,10,170,1800,55
2021Q1,30,20,200,abc,70
2021Q2,-5,10,190,2100,70
2021 Q2,30,10,200,2100,70
2021-06-30,30,10,200,2100,70
next year,30,10,200,2100,70
2022Q1,30,10,200,2100,70
2021-09-30,,,,2300,
"""


def test_crafted_file_every_row_judged(tmp_path) -> None:
    path = tmp_path / "crafted.csv"
    path.write_text(CRAFTED, encoding="utf-8")
    d = load_disclosures(path, as_of=dt.date(2021, 12, 31))
    rec = d.reconciliation
    assert rec.rows_read == 11 and rec.rows_accepted + rec.rows_rejected == rec.rows_read
    by = rec.rejected_by_reason
    assert set(by) == set(DISCLOSURE_REJECTION_REASONS)
    assert by["non_numeric_value"] == 1 and by["negative_value"] == 1 and by["unparseable_period"] == 1
    assert by["period_after_as_of"] == 1 and by["duplicate_period"] == 1 and by["restated_period"] == 1
    rej = d.rejections[d.rejections["primary"]]
    bad = rej.set_index("reason")
    assert bad.loc["non_numeric_value", "column"] == "revenue" and bad.loc["non_numeric_value", "raw_value"] == "abc"
    assert bad.loc["negative_value", "column"] == "new_customers" and int(bad.loc["negative_value", "line"]) == 7
    assert bad.loc["unparseable_period", "raw_value"] == "next year"
    assert bad.loc["period_after_as_of", "raw_value"] == "2022Q1"
    # the 2020Q3 restatement: the later row (customers_end 170) is used, the earlier figure listed
    assert d.table.loc["2020Q3", "customers_end"] == 170
    r = d.restatements
    assert list(r["column"]) == ["customers_end"] and r["earlier"].iloc[0] == 175 and r["restated"].iloc[0] == 170
    # thousands separators; a gap (2020Q4, and 2021Q1 whose only row is rejected); unreported cells
    assert d.table.loc["2020Q1", "revenue"] == 1000
    assert d.gaps == ("2020Q4", "2021Q1")
    assert np.isnan(d.table.loc["2021Q3", "customers_end"]) and d.table.loc["2021Q3", "revenue"] == 2300
    # the identity: 2020Q2 holds (100 + 50 - 10 = 140), 2020Q3 does not (140 + 40 - 10 = 170 holds after the
    # restatement), 2021Q2 cannot be checked (2021Q1 missing); the violation is reported, the value kept
    ids = d.identities.set_index(d.identities["period"].astype(str))
    assert ids.loc["2020Q2", "holds"] and ids.loc["2020Q3", "holds"] and "2021Q2" not in ids.index
    json.dumps(d.to_json_dict(), allow_nan=False)


def test_identity_violation_reported_not_fixed(tmp_path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("period,new_customers,lost_customers,customers_end\n2020Q1,10,0,10\n2020Q2,5,1,20\n",
                    encoding="utf-8")
    d = load_disclosures(path)
    v = d.violations
    assert len(v) == 1 and v["implied"].iloc[0] == 14 and v["reported"].iloc[0] == 20 and v["difference"].iloc[0] == 6
    assert d.table.loc["2020Q2", "customers_end"] == 20
    out = d.to_json_dict()["identity"]
    assert out["checked"] == 1 and out["violated"] == 1


def test_months_and_dataframes() -> None:
    frame = pd.DataFrame({"month": ["2021-01", "2021M2", "2021-03-31", "2021-05-15"], "subs": [10, 12, 13, 15]})
    d = load_disclosures(frame, period="month", columns={"period": "month", "customers_end": "subs"})
    assert list(d.table.index.astype(str)) == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05"]
    assert d.gaps == ("2021-04",) and d.sha256 is None and d.source_name == "DataFrame"
    quarterly_label = pd.DataFrame({"period": ["2021Q1"], "customers_end": [1]})
    with pytest.raises(DataError, match="no period accepted"):
        load_disclosures(quarterly_label, period="month")


def test_missing_period_column_is_one_clear_line(tmp_path) -> None:
    path = tmp_path / "np.csv"
    path.write_text("quarter,customers_end\n2020Q1,1\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_disclosures(path)
    msg = str(err.value)
    assert "np.csv" in msg and "period" in msg and "\n" not in msg
    path.write_text("period,visitors\n2020Q1,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="no disclosed series"):
        load_disclosures(path)


def test_through_recomputes_identities_and_gaps(tmp_path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("period,new_customers,lost_customers,customers_end\n2020Q1,10,0,10\n2020Q2,5,1,14\n"
                    "2020Q4,5,1,30\n", encoding="utf-8")
    d = load_disclosures(path)
    assert d.gaps == ("2020Q3",)
    early = d.through(pd.Period("2020Q2", freq="Q"))
    assert len(early.table) == 2 and early.gaps == () and len(early.identities) == 1
