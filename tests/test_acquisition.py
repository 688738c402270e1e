"""Tests of cbcv.valuation.acquisition: the finite-market acquisition model.

Known answers come from (a) hand-worked values of the closed forms, (b) an individual-level
simulation of prospects (each with its own never-acquirer draw, gamma rate and exponential
clock), which the aggregate closed form must match, (c) parameter recovery from such
simulations, and (d) the stylised subscription company of McCarthy's customer-based corporate
valuation teaching example (data/raw/cohort-data.csv, quarterly-data.csv).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import ConfigError, DataError
from cbcv.data.catalog import raw_data_dir
from cbcv.models.acquisition_terms import cumulative_exposure, log_survival, period_log_probs
from cbcv.models.base import SamplerSettings
from cbcv.valuation.acquisition import (
    AcquisitionModel,
    MarketSize,
    acquisitions_from_transactions,
    compare_holdout,
)

NUTS = SamplerSettings(draws=500, tune=500, chains=2, cores=1, seed=11)


def simulate_prospects(
    market: int,
    pi: float,
    eta: np.ndarray,
    *,
    lam: float | None = None,
    c: float = 1.0,
    r: float | None = None,
    alpha: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """New customers per period from ``market`` individual prospects.

    Each prospect never adopts with probability ``pi``; an adopter has a rate (``lam``, or a
    gamma(r, alpha) draw) and an Exp(1) threshold, and is acquired in the first period whose
    cumulative hazard ``rate * sum_s (s**c - (s-1)**c) exp(eta_s)`` passes the threshold (the
    integral of the Weibull hazard ``c u**(c-1)`` over each period times that period's
    proportional-hazards multiplier).
    """
    rng = np.random.default_rng(seed)
    adopters = rng.binomial(market, 1.0 - pi)
    rate = np.full(adopters, lam) if lam is not None else rng.gamma(r, 1.0 / alpha, size=adopters)
    threshold = rng.exponential(size=adopters)
    s = np.arange(1, len(eta) + 1, dtype=float)
    baseline = np.cumsum((s**c - (s - 1) ** c) * np.exp(eta))
    period = np.searchsorted(baseline, threshold / rate, side="left")  # len(eta): not yet
    return np.bincount(period, minlength=len(eta) + 1)[: len(eta)]


def hdi_contains(model: AcquisitionModel, name: str, value: float) -> bool:
    row = model.summary().loc[name]
    return bool(row["hdi_low"] <= value <= row["hdi_high"])


# ------------------------------------------------------------------------------------------
# Closed forms
# ------------------------------------------------------------------------------------------
def test_weibull_period_probabilities_hand_worked():
    # lam = 0.1, c = 2, no covariates: B(t) = t**2, S0 = exp(-0.1 t**2); pi = 0.25
    t = np.arange(1, 4, dtype=float)
    log_s0 = log_survival(np, "weibull", cumulative_exposure(np, t, 2.0, np.zeros(3)), {"lam": 0.1})
    log_p, log_alive_prev = period_log_probs(np, log_s0, 0.25)
    expected_p = [
        0.75 * (1 - math.exp(-0.1)),
        0.75 * (math.exp(-0.1) - math.exp(-0.4)),
        0.75 * (math.exp(-0.4) - math.exp(-0.9)),
    ]
    expected_alive = [1.0, 0.25 + 0.75 * math.exp(-0.1), 0.25 + 0.75 * math.exp(-0.4)]
    np.testing.assert_allclose(np.exp(log_p), expected_p, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_alive_prev), expected_alive, rtol=1e-12)


def test_exponential_gamma_with_covariate_hand_worked():
    # c = 1, hazard doubled in period 2: B = 1, 3, 4; S0 = (4 / (4 + B))**2
    t = np.arange(1, 4, dtype=float)
    exposure = cumulative_exposure(np, t, 1.0, np.array([0.0, math.log(2.0), 0.0]))
    np.testing.assert_allclose(exposure, [1.0, 3.0, 4.0])
    log_s0 = log_survival(np, "exponential-gamma", exposure, {"r": 2.0, "alpha": 4.0})
    log_p, _ = period_log_probs(np, log_s0, 0.0)
    s0 = [1.0, (4 / 5) ** 2, (4 / 7) ** 2, (4 / 8) ** 2]
    np.testing.assert_allclose(np.exp(log_p), np.diff(s0) * -1, rtol=1e-12)


def test_closed_form_matches_individual_simulation():
    # Weibull-gamma with a covariate and never-acquirers, 400,000 simulated prospects
    rng = np.random.default_rng(3)
    eta = 0.5 * rng.normal(size=12)
    market, pi, r, alpha, c = 400_000, 0.3, 0.8, 6.0, 1.3
    counts = simulate_prospects(market, pi, eta, r=r, alpha=alpha, c=c, seed=4)
    t = np.arange(1, 13, dtype=float)
    exposure = cumulative_exposure(np, t, c, eta)
    log_p, _ = period_log_probs(
        np, log_survival(np, "weibull-gamma", exposure, {"r": r, "alpha": alpha}), pi
    )
    expected = market * np.exp(log_p)
    z = (counts - expected) / np.sqrt(expected)
    assert np.max(np.abs(z)) < 4.5


# ------------------------------------------------------------------------------------------
# Parameter recovery (NUTS) and forecasts
# ------------------------------------------------------------------------------------------
TRUE_A = {
    "market": 200_000,
    "pi": 0.4,
    "lam": 0.04,
    "c": 1.2,
    "beta": 0.6,
    "season": [0.0, -0.3, 0.4],
}


@pytest.fixture(scope="module")
def weibull_case():
    """24 quarters simulated with spend and seasonality; fitted on the first 16 (binomial)."""
    rng = np.random.default_rng(5)
    periods = pd.period_range("2015Q1", periods=24, freq="Q")
    spend = rng.uniform(0.5, 2.0, size=24)
    season = np.array([0.0, *TRUE_A["season"]])[periods.quarter - 1]
    eta = TRUE_A["beta"] * spend + season
    counts = simulate_prospects(
        TRUE_A["market"], TRUE_A["pi"], eta, lam=TRUE_A["lam"], c=TRUE_A["c"], seed=7
    )
    df = pd.DataFrame({"period": periods, "new_customers": counts, "spend": spend})
    model = AcquisitionModel(
        TRUE_A["market"], likelihood="binomial", covariates=["spend"], seasonality="quarter"
    )
    model.fit(df.iloc[:16], NUTS)
    return model, df


def test_weibull_parameters_recovered(weibull_case):
    model, df = weibull_case
    assert model.divergences() == 0
    s = model.summary()
    assert (s["r_hat"] < 1.05).all()
    # lam is the hazard at the mean covariate over the fitted periods
    lam_at_mean = TRUE_A["lam"] * math.exp(TRUE_A["beta"] * df["spend"].iloc[:16].mean())
    assert hdi_contains(model, "pi", TRUE_A["pi"])
    assert hdi_contains(model, "lam", lam_at_mean)
    assert hdi_contains(model, "c", TRUE_A["c"])
    assert hdi_contains(model, "beta[spend]", TRUE_A["beta"])
    for name, value in zip(("Q2", "Q3", "Q4"), TRUE_A["season"], strict=True):
        assert hdi_contains(model, f"season[{name}]", value)
    adopters = TRUE_A["market"] * (1 - TRUE_A["pi"])
    assert abs(s.loc["ultimate_adopters", "mean"] / adopters - 1) < 0.02


def test_weibull_holdout_forecast_covers_simulated_future(weibull_case):
    model, df = weibull_case
    future = df.iloc[16:]
    fc = model.forecast(8, future[["spend"]], interval=0.9)
    assert list(fc.periods) == list(future["period"])
    check = compare_holdout(fc, future)
    assert check["inside"].sum() >= 6
    total = fc.new_customers.sum(axis=1)
    assert total.quantile(0.05) <= check["actual"].sum() <= total.quantile(0.95)
    assert abs(check["predicted"].sum() / check["actual"].sum() - 1) < 0.05


def test_forecast_never_exceeds_market_and_saturates(weibull_case):
    model, _ = weibull_case
    horizon = 60
    fc = model.forecast(horizon, pd.DataFrame({"spend": np.full(horizon, 1.25)}), max_draws=400)
    market = TRUE_A["market"]
    cumulative = fc.cumulative.to_numpy()
    assert (cumulative <= market).all()
    assert (fc.remaining.to_numpy() >= 0).all()
    assert (np.diff(cumulative, axis=1) >= 0).all()
    # adoption saturates at M (1 - pi), below the market: the never-acquirers remain
    adopters = model.idata.posterior["ultimate_adopters"].values.mean()
    assert fc.summary["cumulative_mean"].iloc[-1] == pytest.approx(adopters, rel=0.005)
    assert fc.summary["new_mean"].iloc[-1] < 0.001 * fc.summary["new_mean"].iloc[0]
    assert fc.summary["remaining_mean"].iloc[-1] == pytest.approx(market - adopters, rel=0.01)
    # simulated counts scatter around the per-draw expectation
    assert fc.summary["new_mean"].iloc[0] == pytest.approx(
        fc.summary["expected_mean"].iloc[0], rel=0.01
    )


TRUE_B = {"market": 250_000, "pi": 0.6, "r": 1.5, "alpha": 12.0, "beta": -0.8}


@pytest.fixture(scope="module")
def price_case() -> pd.DataFrame:
    """20 periods of an exponential-gamma market whose acquisitions fall with a price index."""
    rng = np.random.default_rng(21)
    price = rng.normal(0.0, 1.0, size=20)
    counts = simulate_prospects(
        TRUE_B["market"],
        TRUE_B["pi"],
        TRUE_B["beta"] * price,
        r=TRUE_B["r"],
        alpha=TRUE_B["alpha"],
        seed=22,
    )
    return pd.DataFrame({"period": np.arange(1, 21), "new_customers": counts, "price": price})


def price_model() -> AcquisitionModel:
    return AcquisitionModel(
        MarketSize(300_000, 0.5),
        distribution="exponential-gamma",
        likelihood="poisson",
        covariates=["price"],
    )


def test_covariate_effect_recovered_with_uncertain_market(price_case):
    """Exponential-gamma, Poisson likelihood, market size only known as a prior."""
    df, beta = price_case, TRUE_B["beta"]
    model = price_model()
    model.fit(df, NUTS)
    s = model.summary()
    assert model.divergences() == 0
    assert (s["r_hat"] < 1.05).all()
    b = s.loc["beta[price]"]
    assert b["hdi_high"] < 0  # sign
    assert abs(b["mean"] - beta) < 0.1 * abs(beta)  # magnitude
    assert hdi_contains(model, "beta[price]", beta)
    assert hdi_contains(model, "r", TRUE_B["r"])
    # alpha is the rate at the mean covariate over the fitted periods
    assert hdi_contains(model, "alpha", TRUE_B["alpha"] * math.exp(-beta * df["price"].mean()))
    assert hdi_contains(model, "ultimate_adopters", TRUE_B["market"] * (1 - TRUE_B["pi"]))
    # M >= customers already acquired in every draw; pi and M trade off along M (1 - pi)
    assert model.idata.posterior["M"].values.min() >= df["new_customers"].sum()


def test_map_fit_close_to_truth(price_case):
    df = price_case
    model = price_model()
    model.fit(df, SamplerSettings(method="map", seed=1))
    est = model.summary()["mean"]
    assert est["beta[price]"] == pytest.approx(TRUE_B["beta"], rel=0.1)
    assert est["r"] == pytest.approx(TRUE_B["r"], rel=0.15)
    assert est["ultimate_adopters"] == pytest.approx(
        TRUE_B["market"] * (1 - TRUE_B["pi"]), rel=0.02
    )
    fc = model.forecast(4, pd.DataFrame({"price": np.zeros(4)}))
    assert list(fc.periods) == [21, 22, 23, 24]
    assert fc.new_customers.shape == (1, 4)
    assert (fc.summary["new_mean"].diff().iloc[1:] < 0).all()  # constant price: adds decline
    # diagnosed by the same verdict as every customer model (cbcv.models.base.posterior_verdict)
    verdict = model.verdict()
    assert verdict.method == "map" and verdict.status == "warn", verdict.to_dict()
    assert len(verdict.reasons) == 1 and "MAP fit" in verdict.reasons[0]  # a point never passes


# ------------------------------------------------------------------------------------------
# A real series: the stylised subscription company (McCarthy's CBCV teaching example)
# ------------------------------------------------------------------------------------------
def stylised_company() -> pd.DataFrame:
    """Gross adds per quarter (each cohort's size in its first quarter) and marketing spend."""
    cohorts = pd.read_csv(raw_data_dir() / "cohort-data.csv", encoding="utf-8-sig", index_col=0)
    quarterly = pd.read_csv(raw_data_dir() / "quarterly-data.csv", encoding="utf-8-sig")
    adds = np.diag(cohorts.to_numpy(dtype=float))
    return pd.DataFrame(
        {
            "period": quarterly["calendar_time"].to_numpy(),
            "new_customers": np.round(adds).astype(int),
            "marketing_spend": quarterly["marketing_spend"].to_numpy(dtype=float),
        }
    )


def test_stylised_company_one_step_holdout():
    data = stylised_company()
    # the cohort table and the quarterly totals agree: customers = sum over cohorts
    cohorts = pd.read_csv(raw_data_dir() / "cohort-data.csv", encoding="utf-8-sig", index_col=0)
    quarterly = pd.read_csv(raw_data_dir() / "quarterly-data.csv", encoding="utf-8-sig")
    np.testing.assert_allclose(
        cohorts.sum(axis=1).to_numpy(), quarterly["total_customers"], rtol=1e-6
    )
    assert data["new_customers"].tolist() == [50, 53, 56, 60, 65, 70, 76, 83]

    model = AcquisitionModel(
        MarketSize(2_000, 1.0), likelihood="poisson", covariates=["marketing_spend"]
    )
    model.fit(data.iloc[:7], NUTS)
    s = model.summary()
    assert (s["r_hat"] < 1.05).all()
    beta = model.idata.posterior["beta"].values.reshape(-1)
    assert (beta > 0).mean() > 0.9  # more spend, more acquisitions
    fitted = model.fitted(interval=0.9)
    assert ((fitted["actual"] >= fitted["low"]) & (fitted["actual"] <= fitted["high"])).all()
    check = compare_holdout(model.forecast(1, data.iloc[7:][["marketing_spend"]]), data.iloc[7:])
    row = check.iloc[0]
    assert row["period"] == 8 and row["actual"] == 83
    assert row["inside"]
    assert abs(row["error_pct"]) < 15


# ------------------------------------------------------------------------------------------
# Acquisition history from a transaction log
# ------------------------------------------------------------------------------------------
def small_log() -> pd.DataFrame:
    rows = [
        ("A", "2020-01-15", 10.0),
        ("A", "2020-02-01", 5.0),
        ("B", "2020-01-20", -3.0),  # a return only: not a purchase, B is acquired in March
        ("B", "2020-03-05", 8.0),
        ("C", "2020-05-02", 4.0),
        ("D", "2020-05-31", 1.0),
        ("A", "2020-06-10", 2.0),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def test_acquisitions_hand_worked_monthly():
    out = acquisitions_from_transactions(small_log(), freq="month")
    assert [str(p) for p in out["period"]] == [
        "2020-01",
        "2020-02",
        "2020-03",
        "2020-04",
        "2020-05",
    ]
    assert out["new_customers"].tolist() == [1, 0, 1, 0, 2]  # June is incomplete (ends 10 June)
    full = acquisitions_from_transactions(small_log(), freq="month", complete_periods_only=False)
    assert full["new_customers"].tolist() == [1, 0, 1, 0, 2, 0]


def test_acquisitions_hand_worked_quarterly_with_end():
    out = acquisitions_from_transactions(small_log(), freq="quarter", end="2020-06-30")
    assert [str(p) for p in out["period"]] == ["2020Q1", "2020Q2"]
    assert out["new_customers"].tolist() == [2, 2]
    early = acquisitions_from_transactions(small_log(), freq="quarter", end="2020-03-31")
    assert early["new_customers"].tolist() == [2]


def test_acquisitions_cdnow_sample(cdnow_sample_tx):
    # every CDNOW customer made a first purchase in 1997Q1; the log runs to 1998-06-30. CDNOW's
    # convention counts its eight customers whose only purchases are $0 (2,357 in all; 2,349
    # under the default rule, a purchase being a day with a positive net amount)
    strict = acquisitions_from_transactions(cdnow_sample_tx, freq="quarter")
    assert strict["new_customers"].tolist() == [2349, 0, 0, 0, 0, 0]
    quarterly = acquisitions_from_transactions(
        cdnow_sample_tx, freq="quarter", zero_amount_purchases=True
    )
    assert str(quarterly["period"].iloc[0]) == "1997Q1"
    assert str(quarterly["period"].iloc[-1]) == "1998Q2"
    assert quarterly["new_customers"].tolist() == [2357, 0, 0, 0, 0, 0]
    monthly = acquisitions_from_transactions(
        cdnow_sample_tx, freq="month", zero_amount_purchases=True
    )
    assert len(monthly) == 18
    assert monthly["new_customers"].iloc[:3].sum() == 2357
    assert (monthly["new_customers"].iloc[:3] > 0).all()
    assert (monthly["new_customers"].iloc[3:] == 0).all()


# ------------------------------------------------------------------------------------------
# User errors
# ------------------------------------------------------------------------------------------
def test_input_errors():
    good = pd.DataFrame({"period": [1, 2, 3], "new_customers": [5, 4, 3], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="new_customers"):
        AcquisitionModel(100).fit(
            good.assign(new_customers=[5, 4.5, 3]), SamplerSettings(method="map")
        )
    with pytest.raises(DataError, match="increasing order"):
        AcquisitionModel(100).fit(good.assign(period=[3, 2, 1]), SamplerSettings(method="map"))
    with pytest.raises(DataError, match=r"lack column\(s\) \['x'\]"):
        AcquisitionModel(100, covariates=["x"]).fit(
            good.drop(columns="x"), SamplerSettings(method="map")
        )
    with pytest.raises(DataError, match="exceed the market size"):
        AcquisitionModel(10).fit(good, SamplerSettings(method="map"))
    with pytest.raises(ConfigError, match="known market size"):
        AcquisitionModel(MarketSize(100, 0.5), likelihood="binomial")
    with pytest.raises(ConfigError, match="seasonality"):
        AcquisitionModel(100, seasonality="quarter").fit(good, SamplerSettings(method="map"))
    with pytest.raises(ConfigError, match="distribution"):
        AcquisitionModel(100, distribution="gompertz")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="transactions lack"):
        acquisitions_from_transactions(pd.DataFrame({"customer_id": ["a"], "date": ["2020-01-01"]}))


def test_forecast_needs_future_covariates(weibull_case):
    model, _ = weibull_case
    with pytest.raises(DataError, match="future values"):
        model.forecast(2)
    with pytest.raises(DataError, match="horizon is 2"):
        model.forecast(2, pd.DataFrame({"spend": [1.0]}))
    with pytest.raises(DataError, match="lack column"):
        model.forecast(2, pd.DataFrame({"price": [1.0, 1.0]}))
    with pytest.raises(ConfigError, match="horizon"):
        model.forecast(0)


def test_save_and_load_round_trip(weibull_case, tmp_path):
    model, df = weibull_case
    future = df.iloc[16:20][["spend"]]
    path = model.save(tmp_path / "acquisition.nc")
    loaded = AcquisitionModel.load(path)
    assert loaded.distribution == "weibull" and loaded.likelihood == "binomial"
    assert loaded.seasonality == "quarter" and loaded.covariates == ("spend",)
    assert list(loaded.design.periods) == list(df["period"].iloc[:16])
    a = model.forecast(4, future, seed=3).summary
    b = loaded.forecast(4, future, seed=3).summary
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ConfigError, match="no posterior file"):
        AcquisitionModel.load(tmp_path / "missing.nc")
