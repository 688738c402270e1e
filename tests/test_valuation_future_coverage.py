"""A simulated multi-cohort company valued end to end by ``cbcv value``: twelve quarters of
seasonal finite-market acquisitions (a Q4 peak), BG/NBD purchases and gamma-gamma spend, as a
CSV transaction log; validated on the last half-year, refitted to the valuation date. The true
expected equity of its existing customers and of those still to be acquired, computed at the
known parameters (:mod:`cbcv.valuation.truth`), must lie inside the 90% intervals of
``valuation.json``; the equity of a company with half the market must not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from cbcv.data.simulate import BGNBDParams, GammaGammaParams, simulate_transactions
from cbcv.data.simulate.acquisitions import (
    AcquisitionParams,
    acquisition_day_weights,
    simulate_acquisitions,
)
from cbcv.data.summary import customer_summary
from cbcv.valuation.truth import true_customer_equity, true_future_customer_equity
from conftest import run_cbcv

SEED = 20261204
PERIODS = pd.period_range("2020Q1", "2022Q4", freq="Q")
ACQUISITION = AcquisitionParams(market=10_000, never=0.3, rate=0.06, season=(0.0, -0.1, 0.0, 0.9))
FREQ = BGNBDParams(r=0.8, alpha=8.0, a=0.6, b=3.0)
SPEND = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)
MARGIN, RATE, CAC, HORIZON = 0.3, 0.10, 20.0, 10.0


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi-cohort")
    counts = simulate_acquisitions(ACQUISITION, PERIODS, seed=SEED)
    n = int(counts["new_customers"].sum())
    log = simulate_transactions(
        FREQ, n, start="2020-01-01", acquisition_end="2022-12-31", end="2022-12-31", time_unit="week",
        spend=SPEND, acquisition=acquisition_day_weights(counts), seed=SEED,
    )
    log.transactions.assign(date=log.transactions["date"].dt.strftime("%Y-%m-%d")).to_csv(
        tmp / "transactions.csv", index=False)
    config = {
        "company": {"name": "Simulated multi-cohort retailer", "slug": "simulated", "currency": "USD"},
        "data": {"source": "transactions.csv"},
        "as_of": "2022-12-31", "calibration_end": "2022-06-30", "holdout_end": "2022-12-31",
        "time_unit": "week", "cohort_period": "quarter", "models": ["bgnbd", "gamma_gamma"],
        "sampler": {"method": "nuts", "draws": 300, "tune": 300, "chains": 2}, "seed": SEED,
        "financials": {
            "contribution_margin": MARGIN, "discount_rate": RATE, "acquisition_cost": CAC,
            "shares_outstanding": 1.0, "horizon_years": HORIZON, "acquisition_period": "quarter",
            "acquisition_seasonality": True, "market_size": {"median": 10_000, "log_sd": 0.3},
        },
    }
    path = tmp / "simulated.yaml"
    path.write_text(yaml.safe_dump(config))
    res = run_cbcv("value", str(path), "--out", str(tmp / "out"))
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((tmp / "out" / "valuation.json").read_text())
    summary = customer_summary(log.transactions, calibration_end="2022-12-31", time_unit="week")
    return {"record": record, "summary": summary, "acquired": n, "log": log}


@pytest.mark.slow
def test_the_company_is_as_designed(company) -> None:
    first = company["log"].truth["acquisition_date"].dt.to_period("Q").value_counts().sort_index()
    assert len(first) == 12
    q4 = first[[p.quarter == 4 for p in first.index]].mean()
    assert q4 > 1.6 * first[[p.quarter != 4 for p in first.index]].mean()  # the Q4 peak
    assert first.iloc[-4:].sum() < first.iloc[:4].sum() * 1.2  # a finite market: no runaway growth
    assert company["record"]["valuation_date"] == "2022-12-31"
    assert company["record"]["future_customers"]["included"] is True


@pytest.mark.slow
def test_true_existing_and_future_equity_inside_the_90_intervals(company) -> None:
    bridge = company["record"]["bridge"]
    existing = true_customer_equity(company["summary"], FREQ, SPEND, MARGIN, RATE, "week")
    future = true_future_customer_equity(
        ACQUISITION, PERIODS, company["acquired"], FREQ, SPEND, margin=MARGIN, annual_discount_rate=RATE,
        acquisition_cost=CAC, time_unit="week", horizon_years=HORIZON,
    )
    e, f = bridge["existing_customer_equity"], bridge["future_customer_equity"]
    assert e["low"] <= existing <= e["high"], (existing, e)
    assert f["low"] <= future <= f["high"], (future, f)
    assert future > 0
    # the intervals say something: a market half the size is outside
    half = AcquisitionParams(5_000 + company["acquired"] // 2, ACQUISITION.never, ACQUISITION.rate,
                             season=ACQUISITION.season)
    smaller = true_future_customer_equity(
        half, PERIODS, company["acquired"], FREQ, SPEND, margin=MARGIN, annual_discount_rate=RATE,
        acquisition_cost=CAC, time_unit="week", horizon_years=HORIZON,
    )
    assert not f["low"] <= smaller <= f["high"], (smaller, f)
    assert (e["high"] - e["low"]) / e["median"] < 0.5


def test_simulated_acquisitions_follow_their_expectation() -> None:
    """The binomial chain's mean per period, over many seeds, is the model's expectation."""
    draws = np.stack([simulate_acquisitions(ACQUISITION, PERIODS, seed=s)["new_customers"].to_numpy()
                      for s in range(400)])
    expected = ACQUISITION.expected_after(PERIODS, 0, 0)
    np.testing.assert_allclose(draws.mean(axis=0), expected, rtol=0.02)
    weights = acquisition_day_weights(simulate_acquisitions(ACQUISITION, PERIODS, seed=1))
    assert len(weights) == (pd.Timestamp("2022-12-31") - pd.Timestamp("2020-01-01")).days + 1
