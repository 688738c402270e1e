"""A subscription company's steps: the records validated into the work folder (cached), ``cbcv
fit`` on subscription records, the retention model chosen on the holdout, the subscriber equity
against its formula, and ``cbcv value`` with and without future subscribers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbcv.config import load_config
from cbcv.core.errors import ConfigError
from cbcv.data.research_sets import read_multi_cohort_retention
from cbcv.models import ShiftedBetaGeoModel
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.cohort_retention import CohortRetentionModel
from cbcv.pipeline.subscription_book import load_subscription_book, reconciliation_table
from cbcv.pipeline.subscription_valuation import choose_retention
from cbcv.predict.contractual import DERL_TOL, derl_sbg
from cbcv.valuation.subscription import ExistingSubscribers, NewSubscriber, new_subscriber_mix
from conftest import run_cbcv

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "raw" / "subscriptions-demo.csv"
FLAT = {"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}


def _config(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "subscriptions-demo.yaml").read_text())
    raw["data"]["source"] = str(DEMO)
    raw["sampler"] = {"method": "map"}
    raw["models"] = ["sbg"]
    raw.update(changes)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cbcv_fit_on_the_demo_records_is_the_survivor_tables_fit(tmp_path: Path) -> None:
    """The demo's records are the five-cohort table (data/README.md): completely pooled, the sBG
    fitted to them through ``cbcv fit`` is the sBG fitted to the table itself."""
    out = tmp_path / "fit"
    res = run_cbcv("fit", str(DEMO), "--model", "sbg", "--pooling", "complete", "--method", "map",
                   "--time-unit", "year", "--cohort-period", "year", "--calibration-end", "2007-12-31", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads((out / "fit.json").read_text())
    assert record["n_customers"] == 50_000 and record["cohorts"] == ["2003", "2004", "2005", "2006", "2007"]
    assert record["meta"]["rows_read"] == 50_000 and record["meta"]["rows_rejected"] == 0
    table = ShiftedBetaGeoModel()
    table.fit(read_multi_cohort_retention(), SamplerSettings(method="map"))
    for name in ("alpha", "beta"):
        assert record["parameters"][name]["mean"] == pytest.approx(float(table.draws()[name][0]), rel=1e-4)
    assert (out / "posterior.nc").is_file()
    assert "cbcv fit: warning" in res.stderr  # a MAP point never passes the diagnostics


def test_cbcv_fit_refuses_a_bad_subscription_request(tmp_path: Path) -> None:
    res = run_cbcv("fit", str(DEMO), "--model", "sbg", "--time-unit", "week", "--calibration-end", "2006-12-31",
                   "--out", str(tmp_path / "x"))
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1].startswith("cbcv: error: --time-unit: 'week'")
    res = run_cbcv("fit", str(DEMO), "--model", "bdw", "--pooling", "some", "--time-unit", "year",
                   "--calibration-end", "2006-12-31", "--out", str(tmp_path / "x"))
    assert res.returncode == 1 and "--pooling: 'some'" in res.stderr


def test_the_book_is_validated_once_and_again_when_the_file_changes(tmp_path: Path) -> None:
    records = pd.read_csv(DEMO).head(3000)
    records.loc[5, "end"] = "1999-01-01"  # before its start
    records.loc[6, "plan"] = "gold"  # not a configured plan
    csv = tmp_path / "subs.csv"
    records.to_csv(csv, index=False)
    loaded = load_config(_config(tmp_path, data={**yaml.safe_load(_config(tmp_path).read_text())["data"],
                                                 "source": str(csv)}))
    work = tmp_path / "work"
    book = load_subscription_book(loaded, work)
    rec = book.reconciliation
    assert rec["rows_read"] == 3000 and rec["rows_rejected"] == 2
    assert rec["rejected_by_reason"]["end_not_after_start"] == 1 and rec["rejected_by_reason"]["unknown_plan"] == 1
    table = reconciliation_table(rec)
    assert table.loc[table["item"] == "rows read", "value"].item() == "3,000"
    stamp = (work / "spells.parquet").stat().st_mtime_ns
    again = load_subscription_book(loaded, work)
    assert (work / "spells.parquet").stat().st_mtime_ns == stamp and again.reconciliation == rec
    active = book.active()
    assert {"cohort", "renewals", "subscribers", "revenue_per_period", "next_due"} <= set(active.columns)
    assert int(active["subscribers"].sum()) == rec["active_at_as_of"]
    records.head(2000).to_csv(csv, index=False)
    assert load_subscription_book(loaded, work).reconciliation["rows_read"] == 2000


def test_choose_retention_by_holdout_error_then_loo() -> None:
    table = pd.DataFrame({"mae_pp": [1.0, 0.5, 0.52], "elpd_loo": [-10.0, -30.0, -20.0]},
                         index=["sbg_partial", "sbg_unpooled", "sbg_complete"])
    chosen, why = choose_retention(table, list(table.index))
    assert chosen == "sbg_complete" and "PSIS-LOO" in why  # within 0.05 pts of the best: the better LOO
    chosen, why = choose_retention(table.assign(mae_pp=[1.0, 0.5, 0.8]), list(table.index))
    assert chosen == "sbg_unpooled" and "smallest holdout survival error" in why
    assert choose_retention(None, ["a", "b"])[0] == "a"


def test_subscriber_equity_is_price_times_discounted_derl() -> None:
    """``ExistingSubscribers`` against its formula, draw by draw: price x (1 + d)^-f x DERL
    (Fader & Hardie 2010, eq. 6) at each cohort's parameters, and a retention shock divides the
    mean churn by the factor."""
    durations = pd.DataFrame({"cohort": ["A", "A", "A", "B", "B"], "t": [1, 2, 3, 1, 2],
                              "churned": [True, True, False, True, False], "count": [30, 20, 50, 40, 60]})
    model = CohortRetentionModel("sbg", "unpooled")
    model.fit(durations, SamplerSettings(method="map"))
    groups = pd.DataFrame({"cohort": ["A", "B", "B"], "renewals": [3, 2, 5], "subscribers": [50, 60, 1],
                           "revenue_per_period": [500.0, 1200.0, 20.0], "next_due": [0.5, 0.0, 0.9]})
    existing = ExistingSubscribers.of(model, groups, 3, period="year")
    rates = np.array([0.08, 0.10, 0.12])
    got = existing.value_per_price(1.0, rates)
    p = model.cohort_params(["A", "B", "B"])
    for i, r in enumerate(rates):
        for j, (n, f) in enumerate(zip(groups["renewals"], groups["next_due"], strict=True)):
            want = derl_sbg(p["alpha"][:1, [j]], p["beta"][:1, [j]], np.array([[float(n)]]), r, DERL_TOL, 10**6)[0, 0]
            assert got[i, j] == pytest.approx(want * (1 + r) ** -f, rel=1e-10)
    shocked = existing.value_per_price(1.25, rates)
    a, b = p["alpha"][0, 0], p["beta"][0, 0]
    mu = a / (a + b) / 1.25
    want = derl_sbg(np.array([[mu * (a + b)]]), np.array([[(1 - mu) * (a + b)]]), np.array([[3.0]]), 0.08, DERL_TOL, 10**6)
    assert shocked[0, 0] == pytest.approx(want[0, 0] * 1.08**-0.5, rel=1e-10)
    assert (shocked > got).all()
    # a new subscriber of the completely pooled model: its first payment plus z x DERL(0)
    pooled = CohortRetentionModel("sbg", "complete")
    pooled.fit(durations, SamplerSettings(method="map"))
    mix = new_subscriber_mix(pd.DataFrame({"subscribers": [10, 30], "revenue_per_period": [100.0, 600.0]}), ())
    assert mix["price"].tolist() == [17.5] and mix["share"].tolist() == [1.0]
    new = NewSubscriber.of(pooled, mix, 2, period="month", cohorts=4)
    q = pooled.cohort_params(["x"])
    d = 1.1 ** (1 / 12) - 1
    want = 17.5 * derl_sbg(q["alpha"][:1], q["beta"][:1], np.zeros((1, 1)), d, DERL_TOL, 10**6)[0, 0] / (1 + d)
    assert new.renewal_value(1.0, np.array([0.1, 0.1])) == pytest.approx([want, want], rel=1e-10)
    assert new.first_payment == 17.5


def test_cbcv_value_on_the_demo_and_without_a_market(tmp_path: Path) -> None:
    res = run_cbcv("value", str(_config(tmp_path)), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr[-2000:]
    val = json.loads((tmp_path / "out" / "valuation.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert val["business"] == "subscription" and val["valuation_date"] == "2007-12-31"
    assert val["existing_customers"]["customers"] == 26_569
    assert val["future_customers"]["included"] is True
    assert val["bridge"]["existing_customer_equity"]["median"] > 0
    assert set(val["scenarios"]) == {"base", "price +5%", "retention +5%", "retention -5%", "CAC +20%",
                                     "discount rate +2 pts"}
    assert val["scenarios"]["price +5%"]["median"] > val["scenarios"]["base"]["median"]
    raw = yaml.safe_load(_config(tmp_path).read_text())
    raw["financials"].pop("market_size")
    (tmp_path / "nomarket.yaml").write_text(yaml.safe_dump(raw))
    res = run_cbcv("value", str(tmp_path / "nomarket.yaml"), "--out", str(tmp_path / "out2"))
    assert res.returncode == 0, res.stderr[-2000:]
    val = json.loads((tmp_path / "out2" / "valuation.json").read_text())
    assert val["future_customers"]["included"] is False and "no market size" in val["future_customers"]["note"]
    assert val["bridge"]["future_customer_equity"]["median"] == 0.0


def test_a_subscription_config_is_refused_by_the_transaction_steps(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a subscription company"):
        load_subscription_book(load_config(ROOT / "configs" / "cdnow.yaml"))


def test_plan_as_a_covariate_through_the_valuation(tmp_path: Path) -> None:
    """``retention.covariates: [plan]``: the effect is estimated (the demo's plans were drawn
    independently of duration, so it is near zero), each cohort and plan valued, and a new
    subscriber's value mixes the recent plans."""
    from cbcv.pipeline.subscription_valuation import value_subscriptions

    loaded = load_config(_config(tmp_path, retention={"pooling": "complete", "covariates": ["plan"]}))
    val = value_subscriptions(loaded, book=load_subscription_book(loaded, tmp_path / "work"), max_draws=50)
    fit = val.models["sbg_complete"]
    effect = fit["parameters"]["retention[plan=standard]"]["mean"]
    assert abs(effect) < 0.05
    assert val.future is not None and val.result.existing_customer_equity.mean() > 0
    assert set(val.by_cohort["cohort"]) == {"2003", "2004", "2005", "2006", "2007"}
