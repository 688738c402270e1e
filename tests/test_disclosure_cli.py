"""``cbcv fit --model disclosures``, ``cbcv value`` and the config of a company known from its
disclosures (issue 16, deliverables 6 and 7): what a user types, what comes back, and one clear
line for each mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cbcv.config import load_config
from cbcv.core.errors import ConfigError
from conftest import ROOT, run_cbcv

COSTNER = ROOT / "configs" / "costner.yaml"


def _stylised_file(folder: Path) -> Path:
    """The stylised subscription company's quarterly table under the contract's names."""
    lines = (ROOT / "data" / "raw" / "quarterly-data.csv").read_text(encoding="utf-8-sig").splitlines()
    out = ["period,customers_end,revenue,marketing_spend"]
    for line in lines[1:]:
        t, customers, revenue, spend = line.split(",")
        year, quarter = 2015 + (int(t) - 1) // 4, (int(t) - 1) % 4 + 1
        out.append(f"{year}Q{quarter},{customers},{revenue},{spend}")
    path = folder / "stylised.csv"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _config(folder: Path, **changes: object) -> Path:
    cfg = yaml.safe_load(COSTNER.read_text(encoding="utf-8"))
    cfg["data"]["source"] = str(ROOT / "data" / "raw" / "costner-data.csv")
    for key, value in changes.items():
        cfg[key] = value
    path = folder / "costner.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_cbcv_fit_on_a_disclosures_file(tmp_path: Path) -> None:
    source = _stylised_file(tmp_path)
    res = run_cbcv("fit", str(source), "--model", "disclosures", "--market", "2000", "--method", "map",
                   "--out", str(tmp_path / "fit"))
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads((tmp_path / "fit" / "fit.json").read_text(encoding="utf-8"))
    assert record["model"] == "disclosures" and record["setting"] == "contractual"
    assert record["meta"]["first_period"] == "2015Q1" and record["meta"]["rows_rejected"] == 0
    names = set(record["parameters"])
    assert {"pi", "lam", "churn", "kappa", "spend_level"} <= names, names
    assert 0 < record["parameters"]["churn"]["mean"] < 1
    assert (tmp_path / "fit" / "posterior.nc").is_file()


def test_cbcv_fit_with_a_config_reads_its_columns_and_market(tmp_path: Path) -> None:
    config = _config(tmp_path)
    source = str(ROOT / "data" / "raw" / "costner-data.csv")
    res = run_cbcv("fit", source, "--model", "disclosures", "--config", str(config), "--method", "map",
                   "--out", str(tmp_path / "fit"))
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads((tmp_path / "fit" / "fit.json").read_text(encoding="utf-8"))
    assert record["setting"] == "noncontractual" and record["market"]["median"] == 317_883_000
    assert record["series"] == ["active_customers", "orders", "revenue"]
    assert "beta_marketing" in record["parameters"]  # the config's marketing column is the covariate
    res = run_cbcv("fit", source, "--model", "disclosures", "--config", str(config), "--method", "map",
                   "--market", "1e8", "--out", str(tmp_path / "fit2"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "fit2" / "fit.json").read_text(encoding="utf-8"))["market"]["median"] == 1e8


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "map"], "--market: required without --config"),
    (["--market", "2000", "--period", "week"], "--period: 'week' is not quarter or month"),
    (["--market", "2000", "--retention", "weibull"], "--retention: 'weibull' is not sbg or bdw"),
    (["--market", "-5"], "--market: -5 is not a positive number of prospects"),
])
def test_cbcv_fit_disclosures_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    source = _stylised_file(tmp_path)
    res = run_cbcv("fit", str(source), "--model", "disclosures", "--out", str(tmp_path / "fit"), *args)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "fit" / "fit.json").exists()


def test_a_bad_disclosures_row_names_the_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("period,customers_end,revenue\n2019Q1,100,500\n2019Q2,abc,600\n", encoding="utf-8")
    res = run_cbcv("fit", str(path), "--model", "disclosures", "--market", "1000", "--method", "map", "--strict",
                   "--out", str(tmp_path / "fit"))
    # a rejected row is reported, not fatal: one row of two remains, below the 4 periods a fit needs
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()[-1]
    assert "at least 4 periods" in err, res.stderr[-1500:]


def test_the_disclosures_config_defaults_and_mistakes(tmp_path: Path) -> None:
    loaded = load_config(_config(tmp_path))
    cfg = loaded.config
    assert cfg.is_disclosures and cfg.period == "quarter"
    assert cfg.calibration_end == cfg.as_of  # every disclosed period is fitted
    assert cfg.disclosures.backtest_horizon == 8
    with pytest.raises(ConfigError, match=r"period"):
        load_config(_config(tmp_path, period="week"))
    with pytest.raises(ConfigError, match=r"disclosures\.backtest_horizon"):
        load_config(_config(tmp_path, disclosures={"backtest_horizon": 40}))
    with pytest.raises(ConfigError, match=r"disclosures\.setting"):
        load_config(_config(tmp_path, disclosures={"setting": "retail"}))


@pytest.mark.slow
def test_cbcv_value_on_costner(tmp_path: Path) -> None:
    config = _config(tmp_path, sampler={"method": "nuts", "draws": 100, "tune": 200, "chains": 2})
    res = run_cbcv("value", str(config), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr[-3000:]
    val = json.loads((tmp_path / "out" / "valuation.json").read_text(encoding="utf-8"))
    assert val["business"] == "disclosures" and val["valuation_date"] == "2018-03-31"
    assert val["data_window"] == {"first_period": "2014Q1", "last_period": "2018Q1", "calibration_end": "2018-03-31"}
    bridge = val["bridge"]
    assert bridge["existing_customer_equity"]["median"] > 0 and bridge["future_customer_equity"]["median"] != 0
    assert val["value_per_share"]["low"] <= val["value_per_share"]["median"] <= val["value_per_share"]["high"]
    assert set(val["forecasts"]) == {"new_customers", "active_customers", "orders", "revenue"}
    assert val["data_checks"]["reconciliation"]["rows_read"] == 17
