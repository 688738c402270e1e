"""`cbcv audit`: the CLI contract (outputs, reconciliation, one-line errors, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cbcv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cbcv.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_audit_bundled_sample_with_config(tmp_path: Path) -> None:
    res = cbcv("audit", "cdnow-sample", "--config", "configs/cdnow.yaml", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    rec = json.loads((tmp_path / "reconciliation.json").read_text())
    assert rec["rows_read"] == 6919 == rec["rows_accepted"] + rec["rows_rejected"]
    assert set(rec["rejected_by_reason"]) >= {
        "missing_customer_id", "unparseable_date", "date_after_as_of", "non_numeric_amount", "duplicate_row",
    }
    cohorts = pd.read_csv(tmp_path / "cohorts.csv")
    assert list(cohorts["cohort"]) == ["1997-01", "1997-02", "1997-03"]
    assert cohorts["customers"].sum() == 2357
    assert (tmp_path / "decile_migration_counts.csv").is_file()
    assert "6919 rows read" in res.stderr


def test_audit_quarantines_bad_rows_and_reconciles(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    src.write_text(
        "client,day,value\n"
        "a,2024-01-02,10\n"
        ",2024-01-03,5\n"          # missing id
        "b,2024-13-40,5\n"         # bad date
        "c,2024-01-05,ten\n"       # non-numeric amount
        "d,2030-01-01,5\n"         # after as-of
        "a,2024-01-02,10\n"        # exact duplicate
        "a,2024-01-02,-4\n"        # a return, netted
        "e,2024-02-01,7\n"
    )
    cfg = tmp_path / "shop.yaml"
    cfg.write_text(
        "company: {name: Shop}\n"
        "data: {source: orders.csv, columns: {customer_id: client, date: day, amount: value}}\n"
        "as_of: 2024-12-31\ncalibration_end: 2024-06-30\n"
    )
    out = tmp_path / "out"
    res = cbcv("audit", str(src), "--config", str(cfg), "--out", str(out))
    assert res.returncode == 0, res.stderr
    rec = json.loads((out / "reconciliation.json").read_text())
    assert (rec["rows_read"], rec["rows_accepted"], rec["rows_rejected"]) == (8, 3, 5)
    assert {k: v for k, v in rec["rejected_by_reason"].items() if v} == {
        "missing_customer_id": 1, "unparseable_date": 1, "non_numeric_amount": 1,
        "date_after_as_of": 1, "duplicate_row": 1,
    }
    assert rec["returns"]["rows"] == 1 and rec["returns"]["amount"] == 4
    rej = pd.read_csv(out / "rejections.csv", keep_default_na=False)
    primary = rej[rej["primary"]]
    assert sorted(primary["source_row"]) == [2, 3, 4, 5, 6]
    assert dict(zip(primary["source_row"], primary["column"], strict=True))[4] == "value"
    assert dict(zip(primary["source_row"], primary["raw_value"], strict=True))[3] == "2024-13-40"



def test_audit_without_a_config_validates_into_the_output_folder(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    src.write_text("customer_id,date,amount\na,2024-01-02,10\na,2024-03-01,5\nb,2024-02-01,7\nb,bad,1\n")
    out = tmp_path / "out"
    res = cbcv("audit", str(src), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert len(pd.read_parquet(out / "accepted.parquet")) == 3  # the validated log the audit read
    rec = json.loads((out / "reconciliation.json").read_text())
    assert (rec["rows_read"], rec["rows_accepted"], rec["rows_rejected"]) == (4, 3, 1)
    cohorts = pd.read_csv(out / "cohorts.csv")
    assert cohorts["customers"].sum() == 2 and cohorts["transactions"].sum() == 3

def test_audit_missing_column_is_one_line_naming_file_and_column(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    src.write_text("customer_id,date,total\nx,2024-01-01,3\n")
    res = cbcv("audit", str(src), "--out", str(tmp_path / "out"))
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("cbcv: error:") and "orders.csv" in err and "amount" in err
    assert "Traceback" not in res.stderr


def test_audit_wrong_delimiter_and_empty_file(tmp_path: Path) -> None:
    src = tmp_path / "semi.csv"
    src.write_text("customer_id;date;amount\nx;2024-01-01;3\n")
    # the delimiter is detected from the header when the config does not name one ...
    res = cbcv("audit", str(src), "--out", str(tmp_path / "o0"))
    assert res.returncode == 0, res.stderr
    # ... and a configured delimiter that does not match the file is a one-line error
    cfg = tmp_path / "c.yaml"
    cfg.write_text("company: {name: C}\ndata: {source: semi.csv, delimiter: ','}\ncalibration_end: 2024-06-30\n")
    res = cbcv("audit", str(src), "--config", str(cfg), "--out", str(tmp_path / "o1"))
    assert res.returncode == 1 and "semi.csv" in res.stderr and "';'" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = cbcv("audit", str(empty), "--out", str(tmp_path / "o2"))
    assert res.returncode == 1 and "empty.csv" in res.stderr and "Traceback" not in res.stderr


def test_usage_error_exit_code() -> None:
    res = cbcv("audit")
    assert res.returncode == 2


def test_fit_map_writes_fit_json_and_posterior(tmp_path: Path) -> None:
    import arviz as az

    res = cbcv(
        "fit", "cdnow-sample", "--model", "bgnbd", "--calibration-end", "1997-09-30",
        "--method", "map", "--out", str(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    fit = json.loads((tmp_path / "fit.json").read_text())
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005)
    for name, value in published.items():
        assert abs(fit["parameters"][name]["mean"] / value - 1) < 0.01, name
    assert fit["n_customers"] == 2357 and fit["n_distinct"] < 2357 and fit["divergences"] == 0
    idata = az.from_netcdf(tmp_path / "posterior.nc")
    assert idata.constant_data.sizes["customer"] == 2357
    assert float(idata.constant_data["x"].sum()) == 2457  # repeat transactions in calibration
    assert idata.attrs["cbcv_model"] == "bgnbd" and idata.attrs["calibration_end"] == "1997-09-30"


def test_fit_rejects_unknown_model(tmp_path: Path) -> None:
    res = cbcv("fit", "cdnow-sample", "--model", "nbd2", "--calibration-end", "1997-09-30", "--out", str(tmp_path))
    assert res.returncode == 1 and "unknown model 'nbd2'" in res.stderr


def test_predict_with_holdout_writes_forecast(tmp_path: Path) -> None:
    fit_dir = tmp_path / "fit"
    res = cbcv("fit", "cdnow-sample", "--model", "bgnbd", "--calibration-end", "1997-09-30",
               "--method", "map", "--out", str(fit_dir))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "pred" / "customers.csv"
    res = cbcv("predict", str(fit_dir), "--transactions", "cdnow-sample", "--horizon", "39",
               "--holdout-end", "1998-06-30", "--out", str(out))
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out, dtype={"customer_id": str})
    assert len(table) == 2357 and table["p_alive"].between(0, 1).all()
    # Fader, Hardie & Lee (2005a): E[Y(39) | x=2, t_x=30.43, T=38.86] = 1.226 (customer 00004)
    assert table.set_index("customer_id").loc["00004", "expected_purchases"] == pytest.approx(1.226, abs=2e-3)
    forecast = json.loads((out.parent / "forecast.json").read_text())
    assert forecast["total"]["actual"] == 1882
    assert forecast["total"]["predicted_mean"] == pytest.approx(table["expected_purchases"].sum())
    res = cbcv("predict", str(tmp_path / "nofit"), "--transactions", "cdnow-sample", "--horizon", "39", "--out", str(out))
    assert res.returncode == 1 and "no posterior here" in res.stderr
