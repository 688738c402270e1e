"""The valuation with customer covariates (issue 17): every driver of the value runs each
covariate group at its own parameters, and future customers arrive with a covariate mix.

References are independent of the covariate code: each group's parameters written out from the
links' formulas (α·e^(−zβ), a·e^(zβ), γ·e^(zβ)) and run through the plain family; the BG/NBD
population expectation E[X(t)] in closed form (Fader, Hardie & Lee 2005a, eq. 7, with scipy's
2F1); the gamma-gamma mean spend p γ / (q − 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from cbcv import predict as P
from cbcv.clv import dert_draws
from cbcv.core.discount import continuous_rate
from cbcv.data.simulate import BGNBDParams, GammaGammaParams, simulate_summaries
from cbcv.models import BetaGeoModel, GammaGammaModel
from cbcv.models.covariate_design import CovariateDesign
from cbcv.models.covariates import CovariateModel
from cbcv.valuation.drivers import (
    NEW_CUSTOMER,
    DrawSet,
    NewCustomers,
    dert_function,
    existing_purchases_by_period,
    new_customer_dert_function,
    new_customer_purchases_by_age,
    new_customer_revenue_by_age,
    population_spend,
    unit_economics,
    with_retention,
)
from conftest import stand_in_posterior

LEVELS = ("a", "b", "c")
SHARES = np.array([0.5, 0.3, 0.2])
WEEK_RATE = continuous_rate(0.10, "week")


@pytest.fixture(scope="module")
def models() -> dict:
    data = simulate_summaries(BGNBDParams(r=0.5, alpha=3.0, a=0.7, b=2.5), 120, 30.0, seed=3,
                              spend=GammaGammaParams(p=5.0, q=3.5, gamma=12.0))
    data["g"] = np.array(LEVELS)[np.arange(len(data)) % 3]
    freq = CovariateModel(BetaGeoModel(), CovariateDesign.from_frame(data, ["g"], reference={"g": "a"}))
    freq.idata = stand_in_posterior(freq, {"r": 0.5, "alpha": 3.0, "a": 0.7, "b": 2.5},
                                    {"purchase": np.array([0.4, -0.3]), "dropout": np.array([-0.5, 0.4])})
    spend = CovariateModel(GammaGammaModel(), CovariateDesign.from_frame(data, ["g"], reference={"g": "a"}))
    spend.idata = stand_in_posterior(spend, {"p": 5.0, "q": 3.5, "gamma": 12.0}, {"spend": np.array([0.3, -0.2])})
    new = NewCustomers.mix(pd.DataFrame({"g": list(LEVELS), "count": 1000 * SHARES}), ["g"], "test mix")
    return {"data": data, "freq": freq, "spend": spend, "new": new}


def _z(level: str) -> np.ndarray:
    return np.array([level == "b", level == "c"], dtype=float)


def _freq_group(freq: CovariateModel, level: str) -> DrawSet:
    """The group's BG/NBD draws from the link's formulas: α e^(−z·β_purchase), a e^(z·β_dropout)."""
    post, z = freq.idata.posterior, _z(level)
    coef = {p: post[f"{p}_coef"].values.reshape(-1, 2) for p in ("purchase", "dropout")}
    d = {n: post[n].values.reshape(-1) for n in ("r", "alpha", "a", "b")}
    return DrawSet("bgnbd", {"r": d["r"], "alpha": d["alpha"] * np.exp(-coef["purchase"] @ z),
                             "a": d["a"] * np.exp(coef["dropout"] @ z), "b": d["b"]})


def _mean_spend(spend: CovariateModel, level: str) -> np.ndarray:
    """p γ_g / (q − 1), γ_g = γ e^(z·β_spend): a new customer's (x = 0) mean spend."""
    post = spend.idata.posterior
    p, q, gamma = (post[n].values.reshape(-1) for n in ("p", "q", "gamma"))
    return p * gamma * np.exp(post["spend_coef"].values.reshape(-1, 2) @ _z(level)) / (q - 1)


def _population(group: DrawSet, t: np.ndarray) -> np.ndarray:
    """BG/NBD E[X(t)] (Fader, Hardie & Lee 2005a, eq. 7) per draw and time."""
    r, alpha, a, b = (np.asarray(group.params[k])[:, None] for k in ("r", "alpha", "a", "b"))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))


def test_the_mix_is_its_customers_shares() -> None:
    new = NewCustomers.mix(pd.DataFrame({"g": ["a", "b", "c"], "count": [6, 0, 2]}), ["g"], "counted")
    assert list(new.table()["g"]) == ["a", "c"]
    np.testing.assert_allclose(new.shares, [0.75, 0.25])
    assert (new.frame[["x", "t_x", "T"]] == 0).all().all()
    with pytest.raises(ValueError, match="no customers to take the covariate mix from"):
        NewCustomers.mix(pd.DataFrame({"g": ["a"], "count": [0]}), ["g"], "none")
    with pytest.raises(ValueError, match="summing to 1"):
        NewCustomers(NEW_CUSTOMER, np.array([0.5]))


def test_a_new_customers_value_is_the_mix_of_its_groups(models: dict) -> None:
    freq, spend, new = models["freq"], models["spend"], models["new"]
    n = 6
    delta = np.full(n, WEEK_RATE)
    derts = np.stack([P.dert(_freq_group(freq, g), NEW_CUSTOMER, delta=WEEK_RATE)[:, 0] for g in LEVELS], axis=1)
    spends = np.stack([_mean_spend(spend, g) for g in LEVELS], axis=1)
    expected = (derts * spends) @ SHARES
    np.testing.assert_allclose(new.repeat_value(freq, spend, delta, n), expected, rtol=1e-10)
    np.testing.assert_allclose(population_spend(spend, n, new), spends @ SHARES, rtol=1e-12)
    # the sensitivities' form: spend-weighted DERT times the mean spend is the same value
    dert_new = new_customer_dert_function(freq, "week", n, new, spend)(1.0, np.full(n, 0.10))
    np.testing.assert_allclose(dert_new * population_spend(spend, n, new), expected, rtol=1e-8)
    # the mean of the products is not the product of the means: the groups that buy more spend more
    assert not np.allclose(expected, (derts @ SHARES) * (spends @ SHARES), rtol=1e-3)
    with pytest.raises(ValueError, match="needs the spend model"):
        new_customer_dert_function(freq, "week", n, new)
    # a retention shock divides each group's own mean dropout probability
    shocked = new_customer_dert_function(freq, "week", n, new, spend)(1.1, np.full(n, 0.10))
    by_hand = np.stack([P.dert(with_retention(_freq_group(freq, g), 1.1), NEW_CUSTOMER, delta=WEEK_RATE)[:, 0]
                        for g in LEVELS], axis=1)
    np.testing.assert_allclose(shocked, (by_hand * spends) @ SHARES / (spends @ SHARES), rtol=1e-8)
    assert np.all(shocked > dert_new)


def test_new_customer_purchases_and_revenue_by_age_against_the_closed_form(models: dict) -> None:
    freq, spend, new = models["freq"], models["spend"], models["new"]
    kw = {"period": "quarter", "n_periods": 8, "time_unit": "week", "n_draws": 6}
    t = np.arange(9) * 365.25 / 4 / 7
    curves = {g: np.diff(_population(_freq_group(freq, g), t), axis=1) for g in LEVELS}
    purchases = sum(s * curves[g] for g, s in zip(LEVELS, SHARES, strict=True))
    purchases[:, 0] += 1.0
    np.testing.assert_allclose(new_customer_purchases_by_age(freq, new=new, **kw), purchases, rtol=1e-9)
    first = np.linspace(20.0, 25.0, 6)
    revenue = sum(s * _mean_spend(spend, g)[:, None] * curves[g] for g, s in zip(LEVELS, SHARES, strict=True))
    revenue[:, 0] += first
    np.testing.assert_allclose(new_customer_revenue_by_age(freq, spend, first_spend=first, new=new, **kw), revenue,
                               rtol=1e-9)
    ue = unit_economics(freq, spend, margin=np.full(6, 0.3), annual_discount_rate=np.full(6, 0.10),
                        acquisition_cost=np.full(6, 40.0), period="quarter", horizon_periods=8, time_unit="week",
                        n_draws=6, first_spend=first, new=new)
    np.testing.assert_allclose(ue.clv, 0.3 * (first + new.repeat_value(freq, spend, np.full(6, WEEK_RATE), 6)),
                               rtol=1e-8)


def test_existing_customers_drivers_run_each_group_at_its_parameters(models: dict) -> None:
    data, freq = models["data"], models["freq"]
    n = 6
    rates = np.linspace(0.08, 0.12, n)
    for retention in (1.0, 0.9):
        got = dert_function(freq, data, "week", n, grid=64)(retention, rates)
        for g in LEVELS:
            rows = np.flatnonzero(data["g"].to_numpy() == g)
            group = with_retention(_freq_group(freq, g), retention)
            ref = dert_draws(group, data.iloc[rows], continuous_rate(rates, "week"), n)
            np.testing.assert_allclose(got[:, rows], ref, rtol=1e-5)
    weights = np.arange(len(data), dtype=float) % 5 + 1
    got = existing_purchases_by_period(freq, data, period="quarter", n_periods=4, time_unit="week", n_draws=n,
                                       weights=weights)
    ref = sum(existing_purchases_by_period(_freq_group(freq, g), data[data["g"] == g], period="quarter", n_periods=4,
                                           time_unit="week", n_draws=n, weights=weights[data["g"].to_numpy() == g])
              for g in LEVELS)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # and the sum is each customer's expected purchases in the period, at its own covariates
    first = P.expected_purchases(freq, 365.25 / 4 / 7, data)
    np.testing.assert_allclose(got[:, 0], first @ weights, rtol=1e-8)


def test_priors_table_lists_the_family_and_every_coefficient(models: dict) -> None:
    from cbcv.models import priors_table

    table = priors_table(models["freq"]).set_index("parameter")
    assert list(table.index[:4]) == ["r", "alpha", "a", "b"]
    coefs = table.loc[[p for p in table.index if "_coef[" in p]]
    assert list(coefs.index) == ["purchase_coef[g=b]", "purchase_coef[g=c]", "dropout_coef[g=b]", "dropout_coef[g=c]"]
    np.testing.assert_allclose(coefs[["low", "high"]].to_numpy(), [[-1.959964, 1.959964]] * 4, rtol=1e-6)


def test_frequency_ppc_simulates_each_group_at_its_parameters() -> None:
    """Two groups, one buying five times as often: data simulated at the groups' own parameters
    lie inside the PPC of the covariate model, while the reference group's parameters alone
    (a plain model) miss the repeat buyers."""
    from cbcv.valuation.holdout import frequency_ppc

    frames = []
    for g, alpha in (("slow", 10.0), ("fast", 2.0)):
        f = simulate_summaries(BGNBDParams(r=0.8, alpha=alpha, a=0.7, b=2.5), 1500, 40.0, seed=len(frames) + 11)
        frames.append(f.assign(g=g))
    data = pd.concat(frames, ignore_index=True)
    model = CovariateModel(BetaGeoModel(), CovariateDesign.from_frame(data, ["g"], reference={"g": "slow"}))
    model.idata = stand_in_posterior(model, {"r": 0.8, "alpha": 10.0, "a": 0.7, "b": 2.5},
                                     {"purchase": np.array([np.log(5.0)]), "dropout": np.array([0.0])})
    ppc = frequency_ppc(model, data, n_draws=6, seed=1)
    np.testing.assert_allclose(ppc["replicated_mean"], ppc["observed"], rtol=0.15)  # every bin (worst: 13%)
    plain = BetaGeoModel()
    plain.idata = az_posterior(model.group(np.zeros(1)).draws())
    alone = frequency_ppc(plain, data, n_draws=6, seed=1)
    assert alone["replicated_mean"].iloc[0] > 1.4 * alone["observed"].iloc[0]  # too many with no repeat
    assert alone["replicated_high"].iloc[-1] < 0.5 * alone["observed"].iloc[-1]  # too few with 7+


def az_posterior(params: dict) -> object:
    import arviz as az

    return az.from_dict(posterior={k: np.asarray(v).reshape(2, -1) for k, v in params.items()})


def test_tracking_with_covariates_is_the_sum_of_its_cohorts_groups(cdnow_sample_tx, cdnow_weekly) -> None:
    """With every coefficient at 0 the covariate model is the plain one in every group: its
    tracking, summed over the cohorts by first purchase and group, is the plain model's; with a
    purchase effect, the fast group's customers add to the expectation."""
    from cbcv.valuation.holdout import tracking

    data = cdnow_weekly.assign(g=np.where(np.arange(len(cdnow_weekly)) % 3 == 0, "b", "a"))
    model = CovariateModel(BetaGeoModel(), CovariateDesign.from_frame(data, ["g"], reference={"g": "a"}))
    model.idata = stand_in_posterior(model, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
                                     {"purchase": np.zeros(1), "dropout": np.zeros(1)})
    plain = BetaGeoModel()
    plain.idata = az_posterior({k: model.idata.posterior[k].values for k in ("r", "alpha", "a", "b")})
    kw = {"calibration_end": "1997-09-30", "holdout_end": "1998-06-30", "zero_amount_purchases": True}
    cohorts = data.groupby(["first_purchase", "g"]).size().rename("count").reset_index()
    for process in ("purchase", "dropout"):
        model.idata.posterior[f"{process}_coef"][:] = 0.0
    with_groups = tracking(model, cdnow_sample_tx, cohorts=cohorts, **kw)
    alone = tracking(plain, cdnow_sample_tx, **kw)
    np.testing.assert_allclose(with_groups["expected"], alone["expected"], rtol=1e-10)
    np.testing.assert_array_equal(with_groups["actual"], alone["actual"])
    model.idata.posterior["purchase_coef"][:] = 0.5
    faster = tracking(model, cdnow_sample_tx, cohorts=cohorts, **kw)
    assert (faster["expected"].iloc[5:] > alone["expected"].iloc[5:]).all()
