"""`cbcv report` end to end on the CDNOW sample, and the runner's failure handling."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
AUDIT_SECTIONS = (
    "Data reconciliation",
    "Acquisition cohorts",
    "Customer cohort chart",
    "Repeat buying",
    "Decile analysis",
    "Whale curve",
    "Inter-purchase times",
)


def cbcv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cbcv.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    # the shipped sample config with a small sampler (CI budget); everything else as shipped
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "nuts", "draws": 300, "tune": 300, "chains": 2}
    config = out / "cdnow.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = cbcv("report", str(config), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    assert run_dir.parent == out / "cdnow"
    return run_dir


@pytest.mark.slow
def test_report_renders_audit_without_code(sample_report: Path) -> None:
    index = (sample_report / "index.html").read_text()
    assert 'href="01_customer_base_audit.html"' in index
    page = (sample_report / "01_customer_base_audit.html").read_text()
    for section in AUDIT_SECTIONS:
        assert section in page, section
    body = BeautifulSoup(page, "html.parser").body
    # no code cells: nbconvert puts every code input in a jp-InputArea / highlighted <pre>
    assert not body.select(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .highlight")
    text = body.get_text(" ")
    assert "import cbcv" not in text and "load_company" not in text
    assert "Traceback" not in text and "Warning" not in text
    assert len(body.select('img[src^="data:image/png;base64,"]')) >= 7
    # an investor-facing page shows no customer ids (CDNOW ids are 5-digit zero-padded strings)
    assert not re.search(r"\b0\d{4}\b", text)


@pytest.mark.slow
def test_report_model_section(sample_report: Path) -> None:
    body = BeautifulSoup((sample_report / "02_model_fit_and_validation.html").read_text(), "html.parser").body
    text = body.get_text(" ")
    for section in ("Parameters", "Holdout validation", "Tracking cumulative repeat transactions",
                    "Conditional expectations", "Posterior predictive check", "P(alive) calibration",
                    "Default purchase model"):
        assert section in text, section
    assert not body.select(".jp-CodeCell .jp-InputArea, .highlight")
    assert "Traceback" not in text
    assert len(body.select('img[src^="data:image/png;base64,"]')) >= 4


@pytest.mark.slow
def test_report_provenance(sample_report: Path) -> None:
    prov = json.loads((sample_report / "provenance.json").read_text())
    assert prov["status"] == "ok"
    assert prov["input"]["file"] == "data/raw/CDNOW_sample.txt"
    assert prov["config"]["sampler"]["draws"] == 300
    assert re.fullmatch(r"[0-9a-f]{64}", prov["input"]["sha256"])
    assert prov["seed"] == prov["config"]["seed"]
    assert prov["packages"]["pymc"] and prov["packages"]["cbcv"]
    assert "commit" in prov["git"]
    assert set(prov["seconds_by_notebook"]) == {"01_customer_base_audit", "02_model_fit_and_validation"}
    fit = json.loads((sample_report / "models" / "bgnbd" / "fit.json").read_text())
    assert fit["n_customers"] == 2357 and set(fit["parameters"]) == {"r", "alpha", "a", "b"}
    assert (sample_report / "models" / "pareto_nbd" / "posterior.nc").is_file()
    rec = json.loads((sample_report / "audit" / "reconciliation.json").read_text())
    assert rec["rows_read"] == rec["rows_accepted"] + rec["rows_rejected"] == 6919


@pytest.mark.slow
def test_failing_notebook_keeps_copy_and_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "tx.csv").write_text("who,when,value\n1,2020-01-01,5\n")
    cfg = tmp_path / "broken.yaml"
    cfg.write_text(
        "company: {name: Broken Co}\n"
        "data: {source: tx.csv, columns: {customer_id: who, date: when, amount: spend}}\n"
        "calibration_end: 2020-06-30\n"
    )
    out = tmp_path / "reports"
    res = cbcv("report", str(cfg), "--out", str(out))
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("cbcv: error:")]
    assert len(lines) == 1
    assert "01_customer_base_audit failed in cell" in lines[0] and "amount" in lines[0]
    (run_dir,) = (out / "broken-co").iterdir()
    assert (run_dir / "01_customer_base_audit.ipynb").is_file()
    assert json.loads((run_dir / "provenance.json").read_text())["status"] == "failed"


def test_run_folders_are_never_reused(tmp_path: Path) -> None:
    import datetime as dt

    from cbcv.report.runner import new_run_dir

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    dirs = {new_run_dir(tmp_path, "acme", now) for _ in range(5)}
    assert len(dirs) == 5 and all(d.parent == tmp_path / "acme" for d in dirs)


def test_cli_help_and_usage_errors() -> None:
    res = cbcv("--help")
    assert res.returncode == 0 and "report" in res.stdout and "audit" in res.stdout
    res = cbcv("report", "no/such/config.yaml")
    assert res.returncode == 1
    assert res.stderr.strip() == "cbcv: error: no/such/config.yaml: config file not found"
