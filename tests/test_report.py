"""`cbcv report` end to end on the CDNOW sample, and the runner's failure handling."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from conftest import run_cbcv

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
    return run_cbcv(*args, cwd=cwd)


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
                    "Default purchase model", "Refit to the valuation date", "mean_calibration", "mean_refit"):
        assert section in text, section
    # validate, then refit: the calibration fits and the refits to the valuation date, side by side
    for name in ("bgnbd", "pareto_nbd", "gamma_gamma"):
        cal = json.loads((sample_report / "models" / name / "fit.json").read_text())
        ref = json.loads((sample_report / "refit" / name / "fit.json").read_text())
        assert (cal["meta"]["calibration_end"], ref["meta"]["calibration_end"]) == ("1997-09-30", "1998-06-30")
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
    assert set(prov["seconds_by_notebook"]) == {
        "01_customer_base_audit", "02_model_fit_and_validation", "03_customer_lifetime_value",
        "04_company_valuation",
    }
    assert prov["diagnostics"]["strict"] is False
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


@pytest.mark.slow
def test_report_valuation_sections_and_valuation_json(sample_report: Path) -> None:
    body = BeautifulSoup((sample_report / "04_company_valuation.html").read_text(), "html.parser").body
    text = body.get_text(" ")
    for section in ("Value per share", "From customer equity to equity value", "Unit economics",
                    "Revenue forecast", "Sensitivities", "Scenarios", "Illustrative financial assumptions"):
        assert section in text, section
    assert not body.select(".jp-CodeCell .jp-InputArea, .highlight")
    assert "Traceback" not in text and not re.search(r"\b0\d{4}\b", text)
    clv_page = BeautifulSoup((sample_report / "03_customer_lifetime_value.html").read_text(), "html.parser").body
    assert "The most valuable customers" in clv_page.get_text(" ")
    assert not re.search(r"\b0\d{4}\b", clv_page.get_text(" "))
    val = json.loads((sample_report / "valuation.json").read_text())
    vps = val["value_per_share"]
    assert 0 < vps["low"] < vps["median"] < vps["high"]
    assert val["n_draws"] == 600 and val["market_price"] == 5.0
    assert 0.0 <= val["prob_value_above_price"] <= 1.0
    bridge = val["bridge"]
    # CDNOW is one acquisition cohort: no acquisition model, future customers at zero
    assert bridge["future_customer_equity"]["mean"] == 0.0 and not val["future_customers"]["included"]
    assert bridge["equity_value"]["mean"] == pytest.approx(bridge["existing_customer_equity"]["mean"], rel=1e-9)
    assert set(val["scenarios"]) == {"base", "retention +5%", "retention -5%", "margin -10%", "discount rate +2 pts"}
    assert val["scenarios"]["retention +5%"]["median"] > val["scenarios"]["base"]["median"]
    assert val["scenarios"]["margin -10%"]["median"] == pytest.approx(0.9 * val["scenarios"]["base"]["median"], rel=0.02)
    assert {"margin", "retention", "discount_rate"} <= set(val["tornado"])
    assert val["unit_economics"]["CLV / CAC"]["median"] > 0
    layers = val["revenue_forecast"]["mean_by_layer"]
    assert list(layers) == ["existing"] and len(layers["existing"]) == 40
    # valued at the valuation date (as_of), the forecast starting in the quarter after it
    assert val["valuation_date"] == "1998-06-30"
    assert val["data_window"] == {"first_day": "1997-01-01", "last_day": "1998-06-30",
                                  "calibration_end": "1997-09-30"}
    assert val["revenue_forecast"]["periods"][0] == "1998Q3"


@pytest.mark.slow
def test_every_page_states_the_valuation_date(sample_report: Path) -> None:
    pages = sorted(sample_report.glob("0*.html")) + [sample_report / "index.html"]
    assert len(pages) == 5
    for page in pages:
        text = BeautifulSoup(page.read_text(), "html.parser").get_text(" ")
        assert re.search(r"[Vv]aluation date:? 1998-06-30", text), page.name
    index = BeautifulSoup((sample_report / "index.html").read_text(), "html.parser").get_text(" ")
    assert "1997-01-01 to 1998-06-30" in index  # the data window


@pytest.mark.slow
def test_report_index_opens_with_the_executive_summary(sample_report: Path) -> None:
    soup = BeautifulSoup((sample_report / "index.html").read_text(), "html.parser")
    summary = soup.select_one("#executive-summary")
    assert summary is not None
    text = summary.get_text(" ")
    assert "Value per share" in text and "90% interval" in text and "Market price" in text
    assert "illustrative" in text.lower()
    assert "Unit economics" in text and "CLV / CAC" in text
    captions = [f.get_text() for f in summary.select("figcaption")]
    for key in ("From customer equity to equity value", "C3", "Revenue forecast"):
        assert any(key in c for c in captions), (key, captions)
    assert len(summary.select('img[src^="data:image/png;base64,"]')) == len(captions) >= 4
    # the diagnostics verdict is there: a pass line or a banner naming each failing fit
    prov = json.loads((sample_report / "provenance.json").read_text())
    banner = summary.select_one(".banner")
    if prov["diagnostics"]["ok"]:
        assert banner is None and summary.select_one(".pass") is not None
    else:
        assert all(p in banner.get_text(" ") for p in prov["diagnostics"]["problems"])
    # the summary comes first, then the sections, the assumptions and the methodology
    page = str(soup)
    assert page.index("executive-summary") < page.index("<h2>Sections") < page.index('id="assumptions"') < page.index('id="methodology"')
    assert "contribution margin" in soup.select_one("#assumptions").find_next("table").get_text(" ")
    links = [a["href"] for a in soup.select("a[href$='.html']")]
    assert links == [f"{n}.html" for n in ("01_customer_base_audit", "02_model_fit_and_validation",
                                            "03_customer_lifetime_value", "04_company_valuation")]


@pytest.mark.slow
def test_strict_gate_fails_on_poor_diagnostics(tmp_path: Path) -> None:
    # far too few draws for r_hat and ESS: the banner names the failures; --strict exits 1
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "nuts", "draws": 15, "tune": 15, "chains": 2}
    cfg["models"] = ["bgnbd"]
    cfg["report"] = {"notebooks": ["02_model_fit_and_validation"]}
    config = tmp_path / "poor.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = cbcv("report", str(config), "--out", str(tmp_path / "r"), "--strict")
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("cbcv: error:")]
    assert len(lines) == 1 and "diagnostics gate" in lines[0] and "bgnbd" in lines[0]
    (run_dir,) = (tmp_path / "r" / "cdnow").iterdir()
    banner = BeautifulSoup((run_dir / "index.html").read_text(), "html.parser").select_one("#executive-summary .banner")
    assert banner is not None and "bgnbd" in banner.get_text(" ")
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["diagnostics"]["strict"] is True and not prov["diagnostics"]["ok"]
    assert prov["status"] == "ok"  # every notebook ran; the gate is about the fits


def test_summary_banner_and_gate_from_fit_records(tmp_path: Path) -> None:
    from cbcv.config import load_config
    from cbcv.report.summary import diagnostics_problems, executive_summary

    cfg = load_config(ROOT / "configs" / "cdnow.yaml").config
    good = {"diagnostics": {"ok": True, "problems": []}}
    bad = {"diagnostics": {"ok": False, "problems": ["pareto_nbd: 3 divergent transitions"]}}
    for name, rec in (("bgnbd", good), ("pareto_nbd", bad)):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "fit.json").write_text(json.dumps(rec))
    assert diagnostics_problems(tmp_path) == ["pareto_nbd: 3 divergent transitions"]
    html = BeautifulSoup(executive_summary(tmp_path, cfg), "html.parser")
    assert "pareto_nbd: 3 divergent transitions" in html.select_one(".banner").get_text()
    assert "no valuation" in html.get_text()
    (tmp_path / "models" / "pareto_nbd" / "fit.json").write_text(json.dumps(good))
    assert diagnostics_problems(tmp_path) == []
    html = BeautifulSoup(executive_summary(tmp_path, cfg), "html.parser")
    assert html.select_one(".banner") is None and "every fit passes" in html.select_one(".pass").get_text()
