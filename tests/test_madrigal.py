"""Madrigal (Fader, Hardie & Ross 2022): a customer x quarter revenue panel through the one
pipeline; customers acquired before the panel starts handled explicitly; the valuation with
future customers (MAP fits: the CI budget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbcv.config import load_config
from cbcv.pipeline import valuation as VC
from cbcv.pipeline.workflow import PRE_START_FILE, load_company

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw" / "cust_by_qtr_spend.csv"


@pytest.fixture(scope="module")
def madrigal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("madrigal")
    cfg = yaml.safe_load((ROOT / "configs" / "madrigal.yaml").read_text())
    cfg["data"]["source"] = str(RAW)
    cfg["sampler"] = {"method": "map"}
    path = tmp / "madrigal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_config(path)
    return loaded, load_company(loaded, tmp / "work"), tmp


@pytest.fixture(scope="module")
def cube() -> pd.DataFrame:
    """The panel read independently with pandas."""
    return pd.read_csv(RAW, encoding="utf-8-sig")


def test_the_panel_becomes_one_occasion_per_active_customer_quarter(madrigal, cube) -> None:
    _, data, _ = madrigal
    quarters = [c for c in cube.columns if c.startswith("Y")]
    rec = data.reconciliation
    assert rec.rows_accepted == int((cube[quarters] > 0).to_numpy().sum())
    assert rec.total_amount == pytest.approx(float(np.nansum(cube[quarters].to_numpy())), rel=1e-12)
    assert rec.source_type == "panel" and "revenue panel" in rec.notes[-1]
    assert str(rec.first_date) == "2016-01-01" and str(rec.last_date) == "2019-10-01"


def test_customers_acquired_before_the_panel_are_not_new_customers(madrigal, cube) -> None:
    loaded, data, _ = madrigal
    pre = pd.read_parquet(data.accepted.parent / PRE_START_FILE)
    assert len(pre) == int((cube["Cohort"] == "pre_y2016").sum()) == 8916
    valued = data.at(loaded.config.valuation_date)
    history = valued.acquisition_history("quarter")
    assert len(history) == 16
    # new customers per quarter: by each customer's first quarter with revenue (a few declared
    # cohorts have none in their own quarter), the pre-2016 customers not among 2016Q1's
    spend = cube[[c for c in cube.columns if c.startswith("Y")]].fillna(0)
    active = spend.gt(0).any(axis=1)
    own = active & (cube["Cohort"] != "pre_y2016")
    expected = spend[own].gt(0).idxmax(axis=1).value_counts().sort_index()
    assert history["new_customers"].tolist() == expected.tolist()
    assert history["new_customers"].iloc[0] < 3000  # not 2,944 + 8,916
    # the fits see the customers whose acquisition the data show; everyone is valued
    assert valued.n_customers == int(own.sum())
    assert int(valued.valuation_units()["count"].sum()) == int(active.sum())


def test_valued_with_future_customers_at_the_end_of_2019(madrigal) -> None:
    loaded, data, tmp = madrigal
    v = VC.value_loaded(loaded, result=data, run_dir=tmp / "run", max_draws=50)
    record = v.to_json_dict()
    assert record["valuation_date"] == "2019-12-31"
    assert record["revenue_forecast"]["periods"][0] == "2020Q1"
    assert record["future_customers"]["included"] is True
    future = record["bridge"]["future_customer_equity"]
    assert future["mean"] > 0
    # the revenue forecast's future cohorts bring their first purchases: the first quarter of
    # the first future cohort earns more than a repeat quarter of the same cohort
    layers = v.revenue.mean_table()
    first_cohort = [c for c in layers.columns if c != "existing"][0]
    assert layers[first_cohort].iloc[0] > layers[first_cohort].iloc[1] > 0
    assert np.isfinite(record["value_per_share"]["mean"])


def test_backtests_against_the_panel_and_the_baselines(madrigal, cube) -> None:
    """Acquisition fitted to 2018Q4 and forecast for 2019; rolling origins 2018Q4-2019Q3 (MAP)."""
    import json

    from cbcv.models.base import SamplerSettings
    from cbcv.pipeline.backtests import company_backtests, mape_table
    from cbcv.valuation.backtest import GLS, MODEL, TRAILING

    loaded, data, _ = madrigal
    bt = company_backtests(loaded, data, "pareto_nbd", settings=SamplerSettings(method="map", seed=1))
    quarters = [c for c in cube.columns if c.startswith("Y")]
    spend = cube[quarters].fillna(0)
    actual = bt.actual.set_index(bt.actual["period"].astype(str))
    assert list(actual.index) == [f"{c[1:5]}Q{c[-1]}" for c in quarters]
    np.testing.assert_allclose(actual["revenue"], spend.sum().to_numpy(), rtol=1e-12)
    assert actual["active_customers"].tolist() == spend.gt(0).sum().tolist()
    assert actual["transactions"].tolist() == actual["active_customers"].tolist()  # one occasion each
    acq = bt.acquisition
    assert [str(p) for p in acq.table["period"]] == ["2019Q1", "2019Q2", "2019Q3", "2019Q4"]
    assert acq.table["actual"].tolist() == actual.loc["2019Q1":, "new_customers"].tolist()
    assert acq.mape == pytest.approx(acq.table["error_pct"].abs().mean())
    errors = bt.rolling.errors
    assert sorted(set(errors["origin"])) == ["2018Q4", "2019Q1", "2019Q2", "2019Q3"]
    mape = bt.rolling.mape()
    reach = mape.drop_duplicates("horizon").set_index("horizon")["origins"].to_dict()
    assert reach == {1: 4, 2: 3, 3: 2, 4: 1}
    one = mape[mape["horizon"] == 1].set_index(["series", "method"])["mape"]
    # one quarter ahead, the customer models beat both naive baselines on every series
    for series in ("new_customers", "active_customers", "revenue"):
        assert one[(series, MODEL)] < min(one[(series, GLS)], one[(series, TRAILING)]), series
    table = mape_table(bt.rolling)
    assert list(table.columns[-4:]) == ["1 ahead", "2 ahead", "3 ahead", "4 ahead"]
    json.dumps(bt.to_json_dict(), allow_nan=False)


def test_period_stamped_purchases_predict_the_holdout_better_than_bgbb(madrigal) -> None:
    """The modelling choice for the panel, justified on the holdout: 2019's active
    customer-quarters of the customers acquired by 2018 (MAP fits here; the report uses NUTS)."""
    from cbcv.models.base import SamplerSettings
    from cbcv.pipeline.discrete_time import discrete_time_comparison
    from cbcv.pipeline.workflow import fit_summary_model

    loaded, data, _ = madrigal
    settings = SamplerSettings(method="map", seed=1)
    freq = {"pareto_nbd": fit_summary_model(data.counted, "pareto_nbd", settings)}
    table = discrete_time_comparison(loaded, data, freq, settings=settings).set_index("model")
    assert table.loc["bgbb", "actual"] == table.loc["pareto_nbd", "actual"]
    periods = data.period_summary("quarter")
    assert int(periods["count"].sum()) == data.n_customers  # the same customers
    assert abs(table.loc["pareto_nbd", "error_pct"]) < 3 < abs(table.loc["bgbb", "error_pct"])
