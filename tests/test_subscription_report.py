"""A simulated subscription company valued end to end by ``cbcv report`` (issue: subscription
businesses, "done when"): 36 monthly cohorts whose churn varies from cohort to cohort around a
population (Fader & Hardie's sBG drawn per cohort), two plans with their own prices, seasonal
finite-market acquisitions (a December peak), written as subscription records (CSV, an empty end
while subscribed). Validated on 2023, refitted to 2023-12-31. The true expected residual equity
of its subscribers and of those still to be acquired (:mod:`cbcv.valuation.subscription_truth`)
must lie inside the 90% intervals of ``valuation.json``; the partially pooled model must
forecast the youngest cohorts' holdout survival better than the per-cohort fits; the pages must
read as an investor's (no code, warnings, paths or subscriber ids; in headless Chromium)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from bs4 import BeautifulSoup

from cbcv.data.simulate.acquisitions import AcquisitionParams, simulate_acquisitions
from cbcv.data.simulate.subscriptions import (
    Plan,
    RetentionPopulation,
    SubscriptionSpec,
    simulate_subscriptions,
)
from cbcv.valuation.subscription_truth import true_future_subscriber_equity, true_subscriber_equity
from conftest import run_cbcv

SEED = 20261205
PERIODS = pd.period_range("2021-01", "2023-12", freq="M")
ACQUISITION = AcquisitionParams(market=30_000, never=0.3, rate=0.03, season=(0.0,) * 11 + (0.7,))
SPEC = SubscriptionSpec(RetentionPopulation(mean_churn=0.07, logit_sd=0.4, kappa=5.0, log_kappa_sd=0.25),
                        plans={"basic": Plan(9.0, 0.7), "plus": Plan(19.0, 0.3)})
MARGIN, RATE, CAC, HORIZON = 0.6, 0.10, 25.0, 10.0


def simulated_company(folder: Path) -> tuple[Path, dict]:
    """The company's records and config in ``folder``, with its truth."""
    counts = simulate_acquisitions(ACQUISITION, PERIODS, seed=SEED)
    sim = simulate_subscriptions(counts, SPEC, as_of="2023-12-31", seed=SEED)
    sim.to_csv(str(folder / "subscriptions.csv"))
    config = {
        "company": {"name": "Simulated subscription company", "slug": "simulated-subscriptions", "currency": "USD"},
        "business": "subscription",
        "data": {"source": "subscriptions.csv", "columns": {"customer_id": "customer_id", "start": "start",
                                                             "end": "end", "price": "price", "plan": "plan"}},
        "as_of": "2023-12-31", "calibration_end": "2022-12-31", "holdout_end": "2023-12-31",
        "time_unit": "month", "cohort_period": "month", "models": ["sbg"],
        "sampler": {"method": "nuts", "draws": 500, "tune": 500, "chains": 2}, "seed": SEED,
        "financials": {
            "contribution_margin": MARGIN, "discount_rate": RATE, "acquisition_cost": CAC, "shares_outstanding": 1.0e6,
            "market_price": 10.0, "horizon_years": HORIZON, "acquisition_period": "month",
            "acquisition_seasonality": True, "market_size": {"median": 30_000, "log_sd": 0.3},
            "assumptions_note": "A simulated company: every input is known and labelled as simulated.",
        },
    }
    path = folder / "simulated.yaml"
    path.write_text(yaml.safe_dump(config))
    truth = {
        "existing": true_subscriber_equity(sim, margin=MARGIN, annual_discount_rate=RATE),
        "future": true_future_subscriber_equity(sim, ACQUISITION, PERIODS, int(counts["new_customers"].sum()),
                                                margin=MARGIN, annual_discount_rate=RATE, acquisition_cost=CAC,
                                                horizon_years=HORIZON),
        "ids": sim.records["customer_id"].head(50).tolist(),
    }
    return path, truth


@pytest.fixture(scope="module")
def subscription_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("subscriptions")
    config, truth = simulated_company(folder)
    res = run_cbcv("report", str(config), "--out", str(folder / "reports"))
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    return {"run_dir": run_dir, "truth": truth,
            "valuation": json.loads((run_dir / "valuation.json").read_text(encoding="utf-8"))}


@pytest.mark.slow
def test_true_subscriber_equity_inside_the_90_intervals(subscription_report: dict) -> None:
    bridge, truth = subscription_report["valuation"]["bridge"], subscription_report["truth"]
    e, f = bridge["existing_customer_equity"], bridge["future_customer_equity"]
    assert e["low"] <= truth["existing"] <= e["high"], (truth["existing"], e)
    assert f["low"] <= truth["future"] <= f["high"], (truth["future"], f)
    assert truth["future"] > 0
    # the intervals say something
    assert (e["high"] - e["low"]) / e["median"] < 0.4
    assert not e["low"] <= 1.25 * truth["existing"] <= e["high"]


@pytest.mark.slow
def test_pooling_borrows_strength_for_the_youngest_cohorts(subscription_report: dict) -> None:
    val = subscription_report["valuation"]
    table = val["models"]["holdout_comparison"]
    assert set(table) == {"sbg_partial", "sbg_unpooled", "sbg_complete"}
    assert table["sbg_partial"]["mae_young_pp"] < table["sbg_unpooled"]["mae_young_pp"]
    assert table["sbg_partial"]["elpd_loo"] > table["sbg_unpooled"]["elpd_loo"]
    assert val["models"]["retention"] in table and val["business"] == "subscription"
    choice = json.loads((subscription_report["run_dir"] / "models" / "retention_choice.json").read_text())
    assert choice["chosen"] == val["models"]["retention"]


@pytest.mark.slow
def test_valuation_json_has_the_fields_of_a_transaction_company(subscription_report: dict) -> None:
    val = subscription_report["valuation"]
    for key in ("valuation_date", "data_window", "currency", "n_draws", "interval", "value_per_share", "market_price",
                "prob_value_above_price", "shares_outstanding", "bridge", "conventions", "models", "diagnostics",
                "existing_customers", "future_customers", "financial_inputs", "unit_economics", "tornado", "scenarios",
                "assumptions_note"):
        assert key in val, key
    assert val["valuation_date"] == "2023-12-31" and val["future_customers"]["included"] is True
    assert val["existing_customers"]["customers"] == sum(
        c["subscribers"] for c in val["existing_customers_by_cohort"].values())
    assert {"retention", "price", "margin"} <= set(val["tornado"])


@pytest.mark.slow
def test_subscription_pages_read_as_an_investors(subscription_report: dict) -> None:
    run = subscription_report["run_dir"]
    pages = sorted(p.name for p in run.glob("1*.html"))
    assert pages == ["11_subscription_audit.html", "12_retention_models.html", "13_subscriber_equity_and_valuation.html"]
    for page in pages:
        body = BeautifulSoup((run / page).read_text(encoding="utf-8"), "html.parser").body
        assert not body.select(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .highlight"), page
        text = body.get_text(" ")
        assert re.search(r"[Vv]aluation date:?\s+2023-12-31", text), page
        assert "Traceback" not in text and "UserWarning" not in text and "/tmp" not in text, page
        assert not re.search(r"\bS\d{6}\b", text), page  # no subscriber id
        assert len(body.select('img[src^="data:image/png;base64,"]')) >= 1, page
    audit = (run / "11_subscription_audit.html").read_text(encoding="utf-8")
    for section in ("Data reconciliation", "Subscriber cohorts over time (C3)", "Survival and retention by cohort",
                    "Churn by tenure", "Revenue retention", "Revenue concentration"):
        assert section in audit, section
    models = (run / "12_retention_models.html").read_text(encoding="utf-8")
    assert "Holdout validation" in models and "Retention model valued" in models
    # no subscriber id in any file beside the pages
    ids = subscription_report["truth"]["ids"]
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".html", ".yaml"):
            content = path.read_text(encoding="utf-8", errors="replace")
            assert not [i for i in ids if i in content], path


@pytest.mark.slow
def test_subscription_report_in_headless_chromium(subscription_report: dict, tmp_path: Path) -> None:
    from test_report_browser import (
        _assert_investor_pages,
        _check_in_chromium,
        _install_chromium,
        _serve,
    )

    chromium = _install_chromium()
    assert chromium is not None, "headless Chromium is needed for the report check"
    report = subscription_report["run_dir"]
    with _serve(report, tmp_path) as (url, pages):
        seen, urls = _check_in_chromium(chromium, url, tmp_path)
    assert len(pages) == 4
    for page, info in seen.items():
        assert info["broken"] == [] and info["code"] == 0, page
    summary = seen["index.html"]["summary"]
    assert summary is not None and "Value per share" in summary["text"] and "Retention model" in summary["text"]
    _assert_investor_pages(seen, pages, report, urls)
