"""A company's log through the pipeline: validated to Parquet (cached across calls) and audited
in SQL, with the same reconciliation and tables as the analyst's in-memory load
(:func:`cbcv.data.load.load_transactions`), and the whole report runs on it
(tests/test_company_data.py checks the model steps' figures)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cbcv.config import load_config
from cbcv.data.load import LoadResult
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.workflow import load_company, load_transactions_for, write_audit

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, name: str, source: str = "cdnow-sample") -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["data"]["source"] = source
    cfg["engine"] = {"memory_limit": "1GB", "threads": 1}
    path = tmp_path / f"cdnow-{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ooc")
    mem = load_config(_config(tmp, "mem"))
    ooc = load_config(_config(tmp, "ooc"))
    return mem, load_transactions_for(mem.resolve_source(), mem), ooc, load_company(ooc, tmp / "work"), tmp


def test_validated_log_reconciles_like_the_in_memory_load(both):
    _, mem_result, _, ooc_result, tmp = both
    assert isinstance(mem_result, LoadResult) and isinstance(ooc_result, CompanyData)
    assert ooc_result.accepted == tmp / "work" / "accepted.parquet"
    assert ooc_result.reconciliation == mem_result.reconciliation
    accepted = pd.read_parquet(ooc_result.accepted)
    assert len(accepted) == mem_result.reconciliation.rows_accepted
    pd.testing.assert_frame_equal(
        accepted[["customer_id", "date", "amount"]].reset_index(drop=True),
        mem_result.transactions[["customer_id", "date", "amount"]].reset_index(drop=True),
        check_dtype=False,
    )


def test_second_call_reuses_the_validated_file(both):
    _, _, ooc, first, tmp = both
    stamp = first.accepted.stat().st_mtime_ns
    again = load_company(ooc, tmp / "work")
    assert again.accepted.stat().st_mtime_ns == stamp
    assert again.reconciliation == first.reconciliation
    pd.testing.assert_frame_equal(again.rejections, first.rejections, check_dtype=False)


def test_a_changed_source_is_validated_again(tmp_path):
    tx = pd.DataFrame({"customer_id": ["a", "a", "b"], "date": ["1997-01-02", "1997-03-01", "1997-02-01"],
                       "amount": [10.0, 5.0, 7.0]})
    src = tmp_path / "orders.csv"
    tx.to_csv(src, index=False)
    loaded = load_config(_config(tmp_path, "src", source=str(src)))
    first = load_company(loaded, tmp_path / "work")
    assert first.reconciliation.rows_accepted == 3
    tx.iloc[:2].to_csv(src, index=False)
    second = load_company(loaded, tmp_path / "work")
    assert second.reconciliation.rows_accepted == 2


def test_write_audit_writes_the_tables_of_the_validated_log(both):
    _, _, ooc, ooc_result, tmp = both
    written = write_audit(ooc_result, tmp / "audit", ooc)
    assert {p.name for p in written} >= {"reconciliation.json", "rejections.csv", "c3.csv", "deciles.csv"}


@pytest.mark.slow
def test_report_runs_every_notebook_out_of_core(tmp_path):
    import json
    import re
    import shutil

    from bs4 import BeautifulSoup

    from cbcv.pipeline.workflow import work_folder
    from cbcv.report.runner import run_report

    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["company"]["slug"] = "cdnow-out-of-core-test"
    cfg["engine"] = {"memory_limit": "1GB"}
    cfg["models"] = ["bgnbd", "gamma_gamma"]
    cfg["sampler"] = {"method": "nuts", "draws": 100, "tune": 100, "chains": 2}
    config = tmp_path / "cdnow.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = work_folder(load_config(config))
    try:
        result = run_report(config, tmp_path / "reports", progress=lambda _m: None)
        # per-customer scores stay in data/processed, scored at the valuation date
        assert (work / "to_1998-06-30" / "customers.parquet").is_file()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prov = json.loads(result.provenance.read_text())
    assert prov["status"] == "ok"
    assert list(prov["seconds_by_notebook"]) == [
        "01_customer_base_audit", "02_model_fit_and_validation", "03_customer_lifetime_value", "04_company_valuation",
    ]
    audit = result.run_dir / "audit"
    assert (audit / "c3.csv").is_file() and (audit / "reconciliation.json").is_file()
    assert (result.run_dir / "summary" / "c3.png").is_file()
    assert (result.run_dir / "valuation.json").is_file()
    assert not list(result.run_dir.rglob("*.parquet"))
    for page in result.run_dir.glob("0*.html"):
        text = BeautifulSoup(page.read_text(), "html.parser").body.get_text(" ")
        assert "Traceback" not in text, page.name
        assert not re.search(r"\b0\d{4}\b", text), page.name  # no CDNOW customer id
    model_page = (result.run_dir / "02_model_fit_and_validation.html").read_text()
    assert "distinct summaries" in model_page and "Default purchase model: bgnbd" in model_page
