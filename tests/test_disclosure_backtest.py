"""The holdout validation of a disclosures model (cbcv.valuation.disclosure_backtest): the rolling
origins, the two baselines against their definitions, and the refits' error table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbcv.data.research_sets import raw_data_dir
from cbcv.models import SamplerSettings
from cbcv.models.disclosures import DisclosureModel
from cbcv.valuation.backtest import GLS, MODEL, TRAILING
from cbcv.valuation.benchmarks import logistic_customers
from cbcv.valuation.disclosure_backtest import baseline_forecasts, disclosure_backtest, origins

PERIODS = pd.period_range("2014Q1", periods=17, freq="Q")


def _table() -> pd.DataFrame:
    t = np.arange(1, 18, dtype=float)
    active = logistic_customers(t, 1.0e6, -4.0, 0.45)
    active[:4] = np.nan  # reported from the fifth quarter, as Costner's
    return pd.DataFrame({"active_customers": active, "revenue": 250.0 * active}, index=PERIODS)


def test_origins_start_at_the_fifth_report_and_stop_before_the_last_period() -> None:
    got = origins(_table())
    assert got[0] == pd.Period("2016Q1", "Q") and got[-1] == pd.Period("2017Q4", "Q")
    assert len(got) == 8


def test_baselines_follow_their_definitions() -> None:
    table = _table()
    history = table.loc[:"2016Q4"]
    out = baseline_forecasts(history, ["active_customers", "revenue"], 4)
    t_future = np.arange(13, 17, dtype=float)
    # GLS: the logistic curve fitted to the count, extrapolated (exact on an exactly logistic series)
    np.testing.assert_allclose(out[GLS]["active_customers"], logistic_customers(t_future, 1.0e6, -4.0, 0.45),
                               rtol=1e-3)
    # every other series at its recent ratio to the count
    np.testing.assert_allclose(out[GLS]["revenue"], 250.0 * out[GLS]["active_customers"], rtol=1e-9)
    # trailing: the mean of the last four reports
    last4 = history["active_customers"].iloc[-4:].mean()
    np.testing.assert_allclose(out[TRAILING]["active_customers"], np.full(4, last4))


def test_refits_at_two_origins_give_the_error_table() -> None:
    """The stylised subscription company's totals, refitted by MAP at two origins."""
    q = pd.read_csv(raw_data_dir() / "quarterly-data.csv", encoding="utf-8-sig")
    index = pd.period_range("2015Q1", periods=len(q), freq="Q")
    table = pd.DataFrame({"customers_end": q["total_customers"].to_numpy(dtype=float),
                          "revenue": q["total_revenue"].to_numpy(dtype=float),
                          "marketing_spend": q["marketing_spend"].to_numpy(dtype=float)}, index=index)
    at = [index[4], index[5]]  # eight quarters in all
    backtest = disclosure_backtest(lambda: DisclosureModel(2000.0), lambda m, h: m.fit(h, SamplerSettings(method="map")),
                                   table, horizon=2, at=at)
    errors = backtest.errors
    assert backtest.period == "quarter"
    assert set(errors["origin"]) == {str(o) for o in at}
    assert set(errors["method"]) == {MODEL, GLS, TRAILING}
    assert set(errors["series"]) == {"customers_end", "revenue"}
    assert errors["horizon"].between(1, 2).all()
    row = errors.iloc[0]
    assert row["ape"] == pytest.approx(100 * abs(row["forecast"] - row["actual"]) / row["actual"])
    mape = backtest.to_json_dict()["mape_pct"]
    assert set(mape["customers_end"][MODEL]) == {"1", "2"}
    # the model, which knows the cohorts' retention, beats holding the last four quarters' mean
    model_err = errors[errors["method"] == MODEL]["ape"].mean()
    trailing_err = errors[errors["method"] == TRAILING]["ape"].mean()
    assert model_err < trailing_err, (model_err, trailing_err)
