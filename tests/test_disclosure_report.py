"""A simulated listed company valued from its disclosures alone by ``cbcv report`` (issue 16,
"done when"): customers acquired from a finite market quarter by quarter, each with its own
churn probability (leaving at a quarter's end) and Poisson order rate, and gamma-gamma order
values, simulated order by order into a transaction log
(:func:`cbcv.data.simulate.disclosures.simulate_period_company`) and aggregated to the quarterly
new customers, active customers, orders and revenue it would disclose.

* the true expected equity of its existing customers given their cohorts
  (:func:`cbcv.valuation.disclosure_truth.true_existing_equity`, at the known parameters) lies
  inside the 90% interval of ``valuation.json``;
* that interval is at most three times as wide as the one from the customer-level log (Pareto/NBD
  and gamma-gamma fitted to every customer's history, :func:`cbcv.clv.customer_clv`);
* the report renders the four disclosures pages (data checks, fits and tracking, the holdout MAPE
  table against the baselines, the valuation) as an investor's pages, also in headless Chromium.

The seed is the one fixed before the check was first run. It is the issue's check, not a
coverage guarantee: over eight seeds of this company the interval covered the truth three times
(README, "Not yet reliable"; ``benchmarks/disclosure_width.py --story period``). A Pareto/NBD
company, outside the aggregate model's family, is the benchmark's other story.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from bs4 import BeautifulSoup

from cbcv.clv import customer_clv
from cbcv.data.simulate import GammaGammaParams, ParetoNBDParams
from cbcv.data.simulate.acquisitions import AcquisitionParams
from cbcv.data.simulate.disclosures import (
    PeriodCustomers,
    SimulatedPeriodCompany,
    disclosed_metrics,
    simulate_disclosing_company,
    simulate_period_company,
)
from cbcv.data.summary import customer_summary
from cbcv.models import GammaGammaModel, ParetoNBDModel, SamplerSettings
from cbcv.models.disclosure_terms import NUMPY_BACKEND, cohort_ages, expected_series, survivor
from cbcv.valuation.backtest import GLS, MODEL, TRAILING
from cbcv.valuation.disclosure_truth import true_existing_equity, true_existing_revenue
from conftest import run_cbcv

SEED = 20261207
#: 100,000 prospects, a fifth of whom ever buy, about 6% of the rest a quarter: about 12,000
#: customers over four years.
ACQUISITION = AcquisitionParams(market=100_000, never=0.8, rate=0.06)
#: Mean churn 20% a quarter, a + b = 8 (a mean lifetime of about 12 quarters, a long tail);
#: 1.5 orders a quarter while a customer, r = 1 across customers.
BEHAVIOUR = PeriodCustomers(a=1.6, b=6.4, m=1.5, r=1.0)
SPEND = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)  # mean order value 30
START, QUARTERS, AS_OF = "2015-01-01", 16, "2018-12-31"
MARGIN, RATE, UNIT = 0.3, 0.10, "week"
HORIZON_YEARS, TAIL_YEARS = 10, 40
#: The issue's bound on the width of the disclosures valuation's interval against the customer-level one.
MAX_WIDTH_RATIO = 3.0


def simulated_company(folder: Path) -> tuple[Path, SimulatedPeriodCompany]:
    sim = simulate_period_company(ACQUISITION, BEHAVIOUR, SPEND, start=START, n_periods=QUARTERS, seed=SEED)
    sim.disclosures.to_csv(folder / "disclosures.csv", index=False)
    config = {
        "company": {"name": "Simulated listed retailer", "slug": "simulated-disclosures", "currency": "USD"},
        "business": "disclosures", "period": "quarter",
        "data": {"source": "disclosures.csv"},
        "as_of": AS_OF, "models": ["sbg"],
        "disclosures": {"backtest_method": "map", "backtest_horizon": 4, "backtest_origins": 4, "tail_years": TAIL_YEARS},
        "sampler": {"method": "nuts", "nuts_sampler": "nutpie", "draws": 500, "tune": 1000, "chains": 2,
                    "target_accept": 0.95},
        "seed": SEED,
        "financials": {
            "contribution_margin": MARGIN, "discount_rate": RATE, "acquisition_cost": 20.0,
            "fixed_costs": 5.0e4, "shares_outstanding": 1.0e5, "market_price": 3.0, "horizon_years": HORIZON_YEARS,
            "acquisition_period": "quarter", "market_size": {"median": ACQUISITION.market, "log_sd": 0},
            "assumptions_note": "A simulated company: every input is known and labelled as simulated.",
        },
    }
    path = folder / "simulated.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, sim


@pytest.fixture(scope="module")
def disclosure_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("disclosures")
    config, sim = simulated_company(folder)
    res = run_cbcv("report", str(config), "--out", str(folder / "reports"))
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    summary = customer_summary(sim.transactions, calibration_end=AS_OF, time_unit=UNIT)
    periods = 4 * (HORIZON_YEARS + TAIL_YEARS)  # as the valuation runs the existing customers off
    return {"run_dir": run_dir, "sim": sim, "summary": summary,
            "truth": true_existing_equity(sim, margin=MARGIN, annual_discount_rate=RATE, periods=periods),
            "valuation": json.loads((run_dir / "valuation.json").read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def customer_level(disclosure_report: dict) -> np.ndarray:
    """The same company valued from its customer-level log: Pareto/NBD and gamma-gamma by NUTS,
    the existing customers' equity per posterior draw."""
    summary = disclosure_report["summary"]
    settings = SamplerSettings(draws=300, tune=300, chains=2, seed=SEED, nuts_sampler="nutpie")
    freq = ParetoNBDModel()
    freq.fit(summary[["x", "t_x", "T"]], settings)
    spend = GammaGammaModel()
    spend.fit(summary, SamplerSettings(draws=500, tune=500, chains=2, seed=SEED))
    res = customer_clv(freq, spend, summary, margin=MARGIN, annual_discount_rate=RATE, time_unit=UNIT,
                       max_draws=100, keep_draws=False)
    return np.asarray(res.total)


def test_disclosed_metrics_count_the_log() -> None:
    log = pd.DataFrame({
        "customer_id": ["a", "a", "b", "a", "c", "b"],
        "date": pd.to_datetime(["2020-01-05", "2020-02-01", "2020-03-31", "2020-04-01", "2020-09-30", "2020-09-01"]),
        "amount": [10.0, 5.0, 7.0, 3.0, 1.0, 2.0],
    })
    got = disclosed_metrics(log, "quarter")
    assert got["period"].tolist() == ["2020Q1", "2020Q2", "2020Q3"]
    assert got["new_customers"].tolist() == [2, 0, 1]
    assert got["active_customers"].tolist() == [2, 1, 2]
    assert got["orders"].tolist() == [3, 1, 2]
    assert got["revenue"].tolist() == pytest.approx([22.0, 3.0, 3.0])
    monthly = disclosed_metrics(log, "month")
    assert monthly["period"].tolist()[:3] == ["2020-01", "2020-02", "2020-03"] and len(monthly) == 9
    assert monthly["orders"].sum() == len(log)


def test_the_simulated_company_is_as_designed() -> None:
    sim = simulate_period_company(ACQUISITION, BEHAVIOUR, SPEND, start=START, n_periods=QUARTERS, seed=SEED)
    d, log, customers = sim.disclosures, sim.transactions, sim.customers
    assert len(d) == QUARTERS and d["period"].iloc[-1] == "2018Q4"
    assert 10_000 < len(customers) < 15_000
    assert d["new_customers"].tolist() == sim.cohort_sizes().tolist()  # the first order falls in its cohort
    assert d["orders"].sum() == len(log) and d["revenue"].sum() == pytest.approx(log["amount"].sum())
    assert log["date"].between(pd.Timestamp(START), pd.Timestamp(AS_OF)).all()
    # the latent draws are the stated populations'
    assert customers["theta"].mean() == pytest.approx(BEHAVIOUR.a / (BEHAVIOUR.a + BEHAVIOUR.b), rel=0.03)
    assert customers["lambda"].mean() == pytest.approx(BEHAVIOUR.m, rel=0.03)
    assert (1 / customers["nu"]).mean() * SPEND.p == pytest.approx(SPEND.p * SPEND.gamma / (SPEND.q - 1), rel=0.05)


def test_the_aggregate_model_describes_the_simulated_log() -> None:
    """The disclosures model's expected series at the true parameters (on the realised cohorts)
    against what the customer-by-customer simulation aggregated to: within sampling noise, and
    the truth's own revenue the same sum written independently."""
    sim = simulate_period_company(ACQUISITION, BEHAVIOUR, SPEND, start=START, n_periods=QUARTERS, seed=SEED)
    ages, mask = cohort_ages(QUARTERS)
    churn, kappa = BEHAVIOUR.a / (BEHAVIOUR.a + BEHAVIOUR.b), BEHAVIOUR.a + BEHAVIOUR.b
    spend = np.full(QUARTERS, SPEND.p * SPEND.gamma / (SPEND.q - 1))
    series = expected_series(NUMPY_BACKEND, "noncontractual", sim.cohort_sizes().astype(float),
                             survivor(NUMPY_BACKEND, churn, kappa, None, ages), mask, np.full(QUARTERS, BEHAVIOUR.m),
                             BEHAVIOUR.r, spend)
    for name, tolerance in (("active_customers", 0.04), ("orders", 0.05), ("revenue", 0.07)):
        rel = series[name][1:] / sim.disclosures[name].to_numpy()[1:] - 1
        assert np.abs(rel).max() < tolerance, (name, rel.round(3))
    # the truth's first future quarter: the cohorts' customers still there, at m orders of E[Z]
    first = true_existing_revenue(sim, 1)[0]
    sizes = sim.cohort_sizes().astype(float)
    alive_next = (sizes * BEHAVIOUR.survivor(QUARTERS - np.arange(QUARTERS))).sum()
    assert first == pytest.approx(alive_next * BEHAVIOUR.m * spend[0])


@pytest.mark.slow
def test_true_existing_equity_inside_the_90_interval(disclosure_report: dict) -> None:
    e, truth = disclosure_report["valuation"]["bridge"]["existing_customer_equity"], disclosure_report["truth"]
    assert disclosure_report["valuation"]["interval"] == pytest.approx(0.9)
    assert e["low"] <= truth <= e["high"], (truth, e)
    # and it says something: a company worth two thirds as much is outside
    assert not e["low"] <= 2 / 3 * truth <= e["high"], (truth, e)


@pytest.mark.slow
def test_interval_at_most_three_times_the_customer_level_one(disclosure_report: dict, customer_level: np.ndarray) -> None:
    e = disclosure_report["valuation"]["bridge"]["existing_customer_equity"]
    lo, hi = np.quantile(customer_level, [0.05, 0.95])
    ratio = (e["high"] - e["low"]) / (hi - lo)
    assert ratio <= MAX_WIDTH_RATIO, (ratio, e, lo, hi)


def test_a_pareto_nbd_company_aggregates_to_its_log() -> None:
    """The other story (the benchmark's): a Pareto/NBD log aggregated the same way."""
    sim = simulate_disclosing_company(ACQUISITION, ParetoNBDParams(r=0.8, alpha=6.4, s=2.0, beta=80.0), SPEND,
                                      start=START, n_periods=8, seed=SEED)
    d = sim.disclosures
    assert len(d) == 8 and d["new_customers"].sum() == sim.n_customers == sim.acquisitions["new_customers"].sum()
    assert d["orders"].sum() == len(sim.log.transactions)
    assert (d["active_customers"] >= d["new_customers"]).all() and (d["orders"] >= d["active_customers"]).all()


@pytest.mark.slow
def test_valuation_json_has_every_companys_fields_and_the_forecasts(disclosure_report: dict) -> None:
    val = disclosure_report["valuation"]
    for key in ("valuation_date", "data_window", "currency", "n_draws", "interval", "value_per_share", "market_price",
                "prob_value_above_price", "shares_outstanding", "bridge", "conventions", "models", "diagnostics",
                "existing_customers", "future_customers", "financial_inputs", "unit_economics", "tornado", "scenarios",
                "assumptions_note", "business", "data_checks", "forecasts", "backtest"):
        assert key in val, key
    assert val["business"] == "disclosures" and val["valuation_date"] == AS_OF
    assert val["models"]["setting"] == "noncontractual"
    assert set(val["forecasts"]) == {"new_customers", "active_customers", "orders", "revenue"}
    future = [row for row in val["forecasts"]["revenue"] if row["horizon"] > 0]
    assert len(future) >= 8 and all(r["low"] <= r["mean"] <= r["high"] and r["actual"] is None for r in future)
    assert val["backtest"]["period"] == "quarter" and len(val["backtest"]["origins"]) == 4
    mape = val["backtest"]["mape_pct"]
    assert set(mape) == {"new_customers", "active_customers", "orders", "revenue"}
    for series, by_method in mape.items():
        assert set(by_method) == {MODEL, GLS, TRAILING}, (series, by_method)
        assert set(by_method[MODEL]) == {"1", "2", "3", "4"}, series
    assert 0 <= val["prob_value_above_price"] <= 1


@pytest.mark.slow
def test_disclosure_pages_read_as_an_investors(disclosure_report: dict) -> None:
    run = disclosure_report["run_dir"]
    pages = sorted(p.name for p in run.glob("2*.html"))
    assert pages == ["21_disclosed_metrics.html", "22_disclosure_models.html", "23_disclosure_holdout.html",
                     "24_disclosure_valuation.html"]
    for page in pages:
        body = BeautifulSoup((run / page).read_text(encoding="utf-8"), "html.parser").body
        assert not body.select(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .highlight"), page
        text = body.get_text(" ")
        assert re.search(r"[Vv]aluation date:?\s+2018-12-31", text), page
        assert "validated by refits at rolling calibration ends" in text, page
        assert "Traceback" not in text and "Warning" not in text and "/tmp" not in text, page
        assert len(body.select('img[src^="data:image/png;base64,"]')) >= 1, page
    holdout = (run / "23_disclosure_holdout.html").read_text(encoding="utf-8")
    assert "MAPE by horizon" in holdout and "Gupta" in holdout
    valuation = (run / "24_disclosure_valuation.html").read_text(encoding="utf-8")
    assert "Value per share" in valuation and "From customer equity to equity value" in valuation


@pytest.mark.slow
def test_disclosure_report_in_headless_chromium(disclosure_report: dict, tmp_path: Path) -> None:
    from test_report_browser import (
        _assert_investor_pages,
        _check_in_chromium,
        _install_chromium,
        _serve,
    )

    chromium = _install_chromium()
    assert chromium is not None, "headless Chromium is needed for the report check"
    report = disclosure_report["run_dir"]
    with _serve(report, tmp_path) as (url, pages):
        seen, urls = _check_in_chromium(chromium, url, tmp_path)
    assert len(pages) == 5
    for page, info in seen.items():
        assert info["broken"] == [] and info["code"] == 0, page
    summary = seen["index.html"]["summary"]
    assert summary is not None and "Value per share" in summary["text"]
    _assert_investor_pages(seen, pages, report, urls)
