"""Backtests (cbcv.valuation.backtest, cbcv.data.summary.period_activity): the actual series
counted by hand, the baselines against series built from their own assumptions, the model's
forecast of a new cohort against the BG/NBD closed form (mpmath), MAPE by horizon."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import DataError
from cbcv.data.summary import period_activity
from cbcv.valuation.backtest import (
    GLS,
    MODEL,
    TRAILING,
    baseline_forecasts,
    error_rows,
    mape_by_horizon,
    model_forecast,
)
from cbcv.valuation.benchmarks import logistic_customers
from cbcv.valuation.drivers import DrawSet


def _log() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "a", "b", "b", "c", "d", "d"],
        "date": pd.to_datetime(["2020-01-05", "2020-05-01", "2020-02-01", "2020-02-01", "2020-09-30",
                                "2021-01-02", "2021-01-03"]),
        "amount": [10.0, 20.0, 5.0, 5.0, 7.0, 1.0, -1.0],
    })


def test_period_activity_counted_by_hand(tmp_path) -> None:
    out = period_activity(_log(), period="quarter", end="2020-12-31")
    assert [str(p) for p in out["period"]] == ["2020Q1", "2020Q2", "2020Q3", "2020Q4"]
    assert out["new_customers"].tolist() == [2, 0, 1, 0]
    assert out["active_customers"].tolist() == [2, 1, 1, 0]  # the empty quarter kept
    assert out["transactions"].tolist() == [2, 1, 1, 0]  # b's two rows are one customer-day
    assert out["revenue"].tolist() == [20.0, 20.0, 7.0, 0.0]
    # customers acquired before the data (not new), and a day netted to zero (no purchase)
    later = period_activity(_log(), period="quarter", end="2021-03-31", births="customer_id <> 'b'")
    assert later["new_customers"].tolist() == [1, 0, 1, 0, 1]
    assert later["transactions"].tolist() == [2, 1, 1, 0, 1]
    path = tmp_path / "log.parquet"
    _log().to_parquet(path)
    pd.testing.assert_frame_equal(period_activity(path, period="month", end="2020-12-31"),
                                  period_activity(_log(), period="month", end="2020-12-31"))
    with pytest.raises(DataError, match="no purchase"):
        period_activity(_log(), period="quarter", end="2019-12-31")


def _history(k: int = 14) -> pd.DataFrame:
    """Series that follow the GLS baseline's assumptions exactly: logistic acquisitions, active
    customers retained at r = 0.7, 1.5 transactions and 40 of revenue per active customer."""
    t = np.arange(0, k + 1, dtype=float)
    new = np.diff(logistic_customers(t, 10_000.0, -3.0, 0.5))
    active = np.empty(k)
    active[0] = new[0]
    for i in range(1, k):
        active[i] = 0.7 * active[i - 1] + new[i]
    return pd.DataFrame({"period": pd.period_range("2016Q1", periods=k, freq="Q"), "new_customers": new,
                         "active_customers": active, "transactions": 1.5 * active, "revenue": 40.0 * active})


def test_baselines_continue_series_built_on_their_assumptions() -> None:
    history, full = _history(10), _history(14)
    got = baseline_forecasts(history, 4, panel=True)
    np.testing.assert_allclose(got[GLS]["new_customers"], full["new_customers"].iloc[10:], rtol=1e-5)
    np.testing.assert_allclose(got[GLS]["active_customers"], full["active_customers"].iloc[10:], rtol=1e-5)
    np.testing.assert_allclose(got[GLS]["revenue"], 40.0 * full["active_customers"].iloc[10:], rtol=1e-5)
    for series in ("new_customers", "revenue"):
        np.testing.assert_allclose(got[TRAILING][series], np.full(4, history[series].iloc[-4:].mean()))
    assert "active_customers" not in baseline_forecasts(history, 2, panel=False)[GLS]
    with pytest.raises(DataError, match="5 periods"):
        baseline_forecasts(history.iloc[:4], 2, panel=True)


def _bgnbd_population(r: float, alpha: float, a: float, b: float, t: float) -> float:
    """E[X(t)] of BG/NBD (Fader, Hardie & Lee 2005, eq. 9), in mpmath."""
    with mp.workdps(30):
        z = mp.mpf(t) / (alpha + t)
        return float((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + mp.mpf(t))) ** r * mp.hyp2f1(r, b, a + b - 1, z)))


def test_a_new_cohort_forecast_against_the_closed_form() -> None:
    """100 customers acquired in the first forecast quarter, no one else: each brings its first
    purchase (priced at the first-purchase spend) and its repeat purchases."""
    r, alpha, a, b = 0.24, 4.41, 0.79, 2.43
    p, q, gamma = 6.25, 3.74, 15.44
    freq = DrawSet("bgnbd", {"r": [r], "alpha": [alpha], "a": [a], "b": [b]})
    spend = DrawSet("gamma_gamma", {"p": [p], "q": [q], "gamma": [gamma]})
    units = pd.DataFrame({"x": [2.0], "t_x": [20.0], "T": [30.0], "mean_repeat_spend": [30.0], "count": [1.0]})
    got = model_forecast(freq, spend, units, weights=np.zeros(1), acquisitions=np.array([[100.0, 0.0, 0.0]]),
                         first_spend=50.0, period="quarter", time_unit="week", n_draws=1, panel=False)
    weeks = 365.25 / 4 / 7
    cumulative = np.array([_bgnbd_population(r, alpha, a, b, k * weeks) for k in range(4)])
    repeats = np.diff(cumulative)
    np.testing.assert_allclose(got["transactions"], 100 * (repeats + [1, 0, 0]), rtol=1e-9)
    mean_spend = p * gamma / (q - 1)
    np.testing.assert_allclose(got["revenue"], 100 * (mean_spend * repeats + [50, 0, 0]), rtol=1e-9)
    np.testing.assert_allclose(got["new_customers"], [100, 0, 0])
    assert "active_customers" not in got


def test_mape_by_horizon_over_the_origins_that_reach_it() -> None:
    periods = pd.period_range("2019Q1", periods=3, freq="Q")
    actual = pd.DataFrame({"revenue": [100.0, 200.0, 0.0]}, index=periods)
    rows = pd.concat([
        error_rows("2018Q4", periods[:2], actual, {MODEL: {"revenue": np.array([110.0, 150.0])}}),
        error_rows("2019Q1", periods[1:], actual, {MODEL: {"revenue": np.array([180.0, 5.0])}}),
    ])
    m = mape_by_horizon(rows).set_index("horizon")
    assert m.loc[1, "mape"] == pytest.approx((10.0 + 10.0) / 2)
    assert m.loc[2, "mape"] == pytest.approx(25.0)  # the zero actual has no percentage error
    assert m["origins"].tolist() == [2, 2]


def test_a_one_cohort_company_says_why_it_has_no_backtest(tmp_path) -> None:
    """CDNOW (one acquisition cohort, six quarters): no acquisition model to test and too few
    periods for a rolling origin; the page says so instead of failing."""
    from pathlib import Path

    import yaml

    from cbcv.config import load_config
    from cbcv.models.base import SamplerSettings
    from cbcv.pipeline.backtests import company_backtests
    from cbcv.pipeline.workflow import load_company

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "configs" / "cdnow.yaml").read_text())
    assert cfg["data"]["source"] == "cdnow-sample"  # a bundled data set: no path to rewrite
    cfg["financials"]["market_size"] = {"median": 10_000, "log_sd": 0.5}
    path = tmp_path / "cdnow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_config(path)
    bt = company_backtests(loaded, load_company(loaded, tmp_path / "work"), "bgnbd",
                           settings=SamplerSettings(method="map"))
    assert bt.acquisition is None and "1 quarter(s) with new customers" in bt.acquisition_note
    assert bt.rolling is None and "6 complete quarters" in bt.rolling_note
    assert [str(p) for p in bt.actual["period"]][:1] == ["1997Q1"] and len(bt.actual) == 6


def test_backtest_figures_draw_what_the_tables_hold() -> None:
    from cbcv.plots.backtest import plot_acquisition_backtest, plot_backtest_mape
    from cbcv.valuation.backtest import AcquisitionBacktest, Backtest

    periods = pd.period_range("2019Q1", periods=2, freq="Q")
    actual = pd.DataFrame({"revenue": [100.0, 200.0], "new_customers": [10.0, 20.0]}, index=periods)
    rows = error_rows("2018Q4", periods, actual, {
        MODEL: {"revenue": np.array([110.0, 150.0]), "new_customers": np.array([9.0, 25.0])},
        GLS: {"revenue": np.array([120.0, 160.0]), "new_customers": np.array([5.0, 30.0])},
    })
    fig = plot_backtest_mape(Backtest(rows, "quarter", "MAP"))
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["New customers", "Revenue"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)  # the model and the one baseline given
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [10.0, 25.0])
    table = pd.DataFrame({"period": periods, "actual": [10.0, 20.0], "predicted": [9.0, 25.0], "low": [8.0, 22.0],
                          "high": [11.0, 27.0], "inside": [True, False], "error_pct": [-10.0, 25.0]})
    fig = plot_acquisition_backtest(AcquisitionBacktest("2018Q4", table, 0.9, "nuts"))
    assert len(fig.axes[0].containers) >= 2 and "2018Q4" in fig.axes[0].get_title(loc="left")
