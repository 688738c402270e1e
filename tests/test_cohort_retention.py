"""Retention pooled across cohorts (cbcv.models.cohort_retention, cbcv.predict.cohort_retention):
the single-cohort sBG / BdW and the published estimates reproduced, the hierarchical likelihood
against a SciPy re-implementation, parameter and covariate recovery by NUTS, borrowing strength
for young cohorts, predictions against the single-cohort ones, and the documented behaviour of
future cohorts."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import betaln as sp_betaln
from scipy.special import expit, logit

from cbcv.core.errors import CbcvError, ConfigError, DataError
from cbcv.data.research_sets import read_multi_cohort_retention, read_two_segment_retention
from cbcv.models import BetaDiscreteWeibullModel, ShiftedBetaGeoModel
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.cohort_retention import CohortRetentionModel, prepare_durations
from cbcv.models.sbg import survivor_table_to_durations
from cbcv.predict import cohort_retention as P
from cbcv.predict import contractual as C

MAP = SamplerSettings(method="map")
FLAT = {"alpha": Prior("HalfFlat"), "beta": Prior("HalfFlat")}


# -- helpers ------------------------------------------------------------------------------------
def simulate_company(seed: int, n_cohorts: int = 24, holdout: int = 12, mean_churn: float = 0.08,
                     s_mu: float = 0.3, kappa: float = 2.0, s_kappa: float = 0.3, min_renewals: int = 2,
                     plan_effect: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly cohorts of 300-800 subscribers observed to a common calibration end (cohort k of
    ``n_cohorts`` has made up to ``min_renewals + n_cohorts - 1 - k`` renewals), then ``holdout``
    more periods. Per cohort ``logit(mu_k) ~ N(logit(mean_churn), s_mu)`` and
    ``log(kappa_k) ~ N(log(kappa), s_kappa)``; a 40% "pro" plan adds ``plan_effect`` to logit(mu).
    Returns the calibration durations and the holdout frame, both compressed with counts."""
    rng = np.random.default_rng(seed)
    cal, hold = [], []
    for k in range(n_cohorts):
        size = int(rng.integers(300, 801))
        lm = logit(mean_churn) + s_mu * rng.standard_normal()
        kap = np.exp(np.log(kappa) + s_kappa * rng.standard_normal())
        n_k = min_renewals + n_cohorts - 1 - k
        pro = rng.random(size) < 0.4 if plan_effect is not None else np.zeros(size, bool)
        eta = lm + (plan_effect or 0.0) * pro
        duration = rng.geometric(rng.beta(expit(eta) * kap, expit(-eta) * kap))
        churned = duration <= n_k
        plan = np.where(pro, "pro", "basic")
        cal.append(pd.DataFrame({"cohort": f"c{k:02d}", "plan": plan, "t": np.where(churned, duration, n_k),
                                 "churned": churned}))
        active, n_end = ~churned, n_k + holdout
        gone = active & (duration <= n_end)
        hold.append(pd.DataFrame({"cohort": f"c{k:02d}", "plan": plan[active], "renewals_cal": n_k,
                                  "renewals_end": n_end, "churned_holdout": gone[active],
                                  "t_holdout": np.where(gone, duration, n_end)[active]}))

    def counted(frames: list[pd.DataFrame]) -> pd.DataFrame:
        df = pd.concat(frames)
        return df.groupby(list(df.columns), as_index=False).size().rename(columns={"size": "count"})

    return counted(cal), counted(hold)


def _fixed(pooling: str, data: pd.DataFrame, family: str = "sbg", covariates: tuple[str, ...] = (),
           **values: np.ndarray) -> CohortRetentionModel:
    """A model 'fitted' to fixed posterior draws (``values``: arrays (draws,) or (draws, cohorts))."""
    model = CohortRetentionModel(family, pooling, covariates)
    model.prepared = prepare_durations(data, covariates, model.name)
    coords = {"cohort": list(model.prepared.cohorts), "retention_term": list(model.prepared.design.terms)}
    dims = {k: ["retention_term" if k == "retention" else "cohort"] for k, v in values.items() if np.ndim(v) == 2}
    model.idata = az.from_dict(posterior={k: np.asarray(v, dtype=float)[None] for k, v in values.items()},
                               coords=coords, dims=dims)
    return model


def _point(model: CohortRetentionModel, values: dict) -> dict[str, float]:
    return {k: float(np.asarray(model.idata.posterior[k]).ravel()[0]) for k in values}


@pytest.fixture(scope="module")
def five_cohorts() -> pd.DataFrame:
    return survivor_table_to_durations(read_multi_cohort_retention())


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    table = read_two_segment_retention()
    return survivor_table_to_durations(table[table["t"] <= 7])


# -- the single-cohort model and published estimates -------------------------------------------
def test_complete_pooling_is_the_single_cohort_model(five_cohorts) -> None:
    # same priors as ShiftedBetaGeoModel: the MAP of the five cohorts pooled is the same point
    pooled = CohortRetentionModel(pooling="complete")
    pooled.fit(five_cohorts, MAP)
    single = ShiftedBetaGeoModel()
    single.fit(read_multi_cohort_retention(), MAP)
    for k in ("alpha", "beta"):
        assert float(pooled.idata.posterior[k].values.ravel()[0]) == pytest.approx(float(single.draws()[k][0]), rel=1e-5)
    assert pooled.idata.attrs["n_customers"] == 50_000
    assert pooled.idata.attrs["pooling"] == "complete"
    assert pooled.cohorts == tuple(f"Cohort {i}" for i in range(1, 6))

    # with flat priors: the pooled maximum-likelihood estimate, written out with scipy
    flat = CohortRetentionModel(pooling="complete", priors=FLAT)
    flat.fit(five_cohorts, MAP)
    table = read_multi_cohort_retention()

    def negll(v: np.ndarray) -> float:
        a, b = np.exp(v)
        total = 0.0
        for _, g in table.groupby("cohort"):
            alive = g.sort_values("t")["alive"].to_numpy(dtype=float)
            t = np.arange(1, len(alive))
            total += np.sum((alive[:-1] - alive[1:]) * (sp_betaln(a + 1, b + t - 1) - sp_betaln(a, b)))
            total += alive[-1] * (sp_betaln(a, b + len(alive) - 1) - sp_betaln(a, b))
        return -total

    res = minimize(negll, x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-9})
    est = _point(flat, {"alpha": 0, "beta": 0})
    np.testing.assert_allclose([est["alpha"], est["beta"]], np.exp(res.x), rtol=1e-3)


def test_published_two_segment_estimates(segments) -> None:
    # Fader & Hardie (2007), t <= 7: Regular alpha 0.704, beta 1.182; High-end 0.668, 3.806.
    published = {"Regular": (0.704, 1.182), "High-end": (0.668, 3.806)}
    for segment, (alpha, beta) in published.items():
        alone = CohortRetentionModel(pooling="complete", priors=FLAT)
        alone.fit(segments[segments["cohort"] == segment], MAP)
        est = _point(alone, {"alpha": 0, "beta": 0})
        assert est["alpha"] == pytest.approx(alpha, rel=0.01)
        assert est["beta"] == pytest.approx(beta, rel=0.01)
    # unpooled, both segments in one fit: the same per-segment estimates
    unpooled = CohortRetentionModel(pooling="unpooled", priors=FLAT)
    unpooled.fit(segments, MAP)
    post = unpooled.idata.posterior
    for segment, (alpha, beta) in published.items():
        assert float(post["alpha"].sel(cohort=segment).values.ravel()[0]) == pytest.approx(alpha, rel=0.01)
        assert float(post["beta"].sel(cohort=segment).values.ravel()[0]) == pytest.approx(beta, rel=0.01)


def test_partial_pooling_lets_the_published_estimates_through(segments) -> None:
    # two cohorts only, so the hierarchy shrinks them a little towards each other (~3%)
    model = CohortRetentionModel(pooling="partial")
    model.fit(segments, MAP)
    post = model.idata.posterior
    for segment, (alpha, beta) in {"Regular": (0.704, 1.182), "High-end": (0.668, 3.806)}.items():
        assert float(post["alpha"].sel(cohort=segment).values.ravel()[0]) == pytest.approx(alpha, rel=0.05)
        assert float(post["beta"].sel(cohort=segment).values.ravel()[0]) == pytest.approx(beta, rel=0.05)
    summary = model.summary()
    assert {"m_mu", "sigma_mu", "mu_pop", "phi_pop", "mu[Regular]", "alpha[High-end]"} <= set(summary.index)
    assert model.verdict().status == "warn"  # MAP never passes


def test_bdw_complete_pooling_is_the_single_cohort_bdw(segments) -> None:
    high = segments[segments["cohort"] == "High-end"]
    pooled = CohortRetentionModel(family="bdw", pooling="complete")
    pooled.fit(high, MAP)
    single = BetaDiscreteWeibullModel()
    single.fit(high.drop(columns="cohort"), MAP)
    for k in ("gamma", "delta", "c"):
        assert float(pooled.idata.posterior[k].values.ravel()[0]) == pytest.approx(float(single.draws()[k][0]), rel=1e-4)


# -- the likelihood -----------------------------------------------------------------------------
def _sample_data(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 40
    churned = rng.random(n) < 0.6
    return pd.DataFrame({"cohort": rng.choice(["2020-01", "2020-02", "2020-03"], n),
                         "plan": rng.choice(["basic", "pro", "team"], n), "age": rng.normal(40, 10, n).round(),
                         "t": np.where(churned, rng.integers(1, 30, n), rng.integers(0, 30, n)),
                         "churned": churned, "count": rng.integers(1, 50, n)})


@pytest.mark.parametrize("family", ["sbg", "bdw"])
def test_hierarchical_likelihood_against_scipy(family) -> None:
    data = _sample_data()
    model = CohortRetentionModel(family, "partial", ("plan", "age"))
    prep = prepare_durations(data, model.covariates, model.name)
    assert prep.design.terms == ("plan=pro", "plan=team", "age")
    values = {"m_mu": -1.2, "sigma_mu": 0.4, "m_kappa": 0.8, "sigma_kappa": 0.6,
              "z": np.array([0.3, -1.1, 0.7]), "w": np.array([-0.4, 0.9, 0.2]),
              "retention": np.array([0.5, -0.3, 0.2]), "c": 1.4}
    pm_model = model.build_model(prep)
    point = {}
    for rv in pm_model.free_RVs:
        key = rv.name.removeprefix("log_")
        v = np.log(values[key]) if rv.name.startswith("log_") else np.asarray(values[key], dtype=float)
        transform = pm_model.rvs_to_transforms.get(rv)
        if transform is not None:
            v = transform.forward(v, *rv.owner.inputs).eval()
        point[pm_model.rvs_to_values[rv].name] = v
    (graph,) = pm_model.replace_rvs_by_values([pm_model["loglike"]])
    fn = pm_model.compile_fn(graph, inputs=pm_model.value_vars, on_unused_input="ignore")

    # the same log-likelihood, one input row at a time, with scipy
    w = data["count"].to_numpy(float)
    age_mean = np.sum(w * data["age"]) / w.sum()
    age_sd = np.sqrt(np.sum(w * (data["age"] - age_mean) ** 2) / w.sum())
    k = data["cohort"].map({"2020-01": 0, "2020-02": 1, "2020-03": 2}).to_numpy()
    eta = (values["m_mu"] + values["sigma_mu"] * values["z"][k] + 0.5 * (data["plan"] == "pro")
           - 0.3 * (data["plan"] == "team") + 0.2 * (data["age"] - age_mean) / age_sd).to_numpy()
    kappa = np.exp(values["m_kappa"] + values["sigma_kappa"] * values["w"][k])
    a, b, t = expit(eta) * kappa, expit(-eta) * kappa, data["t"].to_numpy(float)
    c = values["c"] if family == "bdw" else 1.0

    def log_s(tt: np.ndarray) -> np.ndarray:
        return sp_betaln(a, b + tt**c) - sp_betaln(a, b)

    pmf = np.log(np.exp(log_s(np.maximum(t - 1, 0))) - np.exp(log_s(t)))
    expected = np.sum(w * np.where(data["churned"], pmf, log_s(t)))
    assert float(fn(point)) == pytest.approx(expected, rel=1e-9)

    # the pointwise log-likelihood (from the per-cohort alpha/beta of a posterior) sums to it
    shapes = ("alpha", "beta") if family == "sbg" else ("gamma", "delta")
    lm, kap = values["m_mu"] + values["sigma_mu"] * values["z"], np.exp(values["m_kappa"] + values["sigma_kappa"] * values["w"])
    draws = {shapes[0]: (expit(lm) * kap)[None], shapes[1]: (expit(-lm) * kap)[None],
             "retention": values["retention"][None], **({"c": np.array([c])} if family == "bdw" else {})}
    fixed = _fixed("partial", data, family, ("plan", "age"), **draws)
    ll = fixed.log_likelihood()
    assert ll.shape == (1, 1, int(w.sum()))
    assert float(ll.sum()) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("family", ["sbg", "bdw"])
def test_likelihood_is_finite_for_long_tenures(family) -> None:
    data = pd.DataFrame({"cohort": ["a", "a", "b"], "t": [10_000, 9_999, 10_000], "churned": [True, False, True]})
    a, b = ("alpha", "beta") if family == "sbg" else ("gamma", "delta")
    extra = {"c": np.array([2.0])} if family == "bdw" else {}
    model = _fixed("unpooled", data, family, **{a: np.array([[0.7, 1.3]]), b: np.array([[1.2, 3.0]])}, **extra)
    values = model.log_likelihood(expand=False).values.ravel()
    assert np.all(np.isfinite(values))
    if family == "sbg":  # against scipy
        expected = [sp_betaln(1.7, 1.2 + 9_999) - sp_betaln(0.7, 1.2), sp_betaln(0.7, 1.2 + 9_999) - sp_betaln(0.7, 1.2),
                    sp_betaln(2.3, 3.0 + 9_999) - sp_betaln(1.3, 3.0)]
        np.testing.assert_allclose(np.sort(values), np.sort(expected), rtol=1e-10)


# -- recovery by NUTS ---------------------------------------------------------------------------
def test_nuts_recovers_the_population_and_a_covariate(tmp_path) -> None:
    cal, hold = simulate_company(0, holdout=6, kappa=4.0, plan_effect=0.6)
    model = CohortRetentionModel(pooling="partial", covariates=("plan",))
    idata = model.fit(cal, SamplerSettings(draws=300, tune=500, chains=2, cores=2, seed=1))
    assert model.divergences() == 0
    hdi = az.hdi(idata, hdi_prob=0.94)
    for name, truth in (("mu_pop", 0.08), ("phi_pop", 1 / (4.0 + 1))):
        low, high = hdi[name].values
        assert low <= truth <= high, (name, low, high)
    low, high = hdi["retention"].sel(retention_term="plan=pro").values
    assert low <= 0.6 <= high
    summary = model.summary()
    assert "retention[plan=pro]" in summary.index and summary.loc["m_mu", "r_hat"] < 1.05
    assert idata.attrs["n_customers"] == int(cal["count"].sum())
    loo = model.loo()
    assert np.isfinite(loo.elpd_loo) and loo.se > 0

    # saved and loaded: the same draws, the same predictions
    loaded = CohortRetentionModel.load(model.save(tmp_path / "posterior.nc"))
    assert loaded.cohorts == model.cohorts and loaded.covariates == ("plan",)
    frame = pd.DataFrame({"cohort": ["c05", "c23"], "plan": ["pro", "basic"]})
    np.testing.assert_allclose(loaded.cohort_params(frame["cohort"], frame)["alpha"],
                               model.cohort_params(frame["cohort"], frame)["alpha"])
    np.testing.assert_allclose(loaded.log_likelihood(max_draws=50).values, model.log_likelihood(max_draws=50).values)
    table = P.holdout_survival(loaded, hold)
    assert (table["low"] <= table["predicted"]).all() and (table["predicted"] <= table["high"]).all()


# -- borrowing strength -------------------------------------------------------------------------
def test_partial_pooling_borrows_strength_for_young_cohorts() -> None:
    """The youngest cohorts (2 and 3 renewals observed) cannot tell their polarisation ``kappa``;
    partial pooling takes it from the older cohorts. Their survival error at the last of 12
    holdout periods is smaller with partial pooling than unpooled (MAP fits): it held on 18 of
    the 20 seeds tried (0-19; seeds 7 and 13 the exceptions, both fits within 0.6 pp there);
    over cohorts of every age (``mae_pp``) the gain is smaller, and held on the same 18 seeds."""
    cal, hold = simulate_company(0)
    fits = {}
    for pooling in ("partial", "unpooled", "complete"):
        fits[pooling] = CohortRetentionModel(pooling=pooling)
        fits[pooling].fit(cal, MAP)
    young = P.youngest_cohorts(hold, share=2 / 24)
    assert young == ["c23", "c22"]
    err = {k: P.survival_error(P.holdout_survival(m, hold)).by_cohort for k, m in fits.items()}
    young_err = {k: float(e[e["cohort"].isin(young)]["error_pp"].mean()) for k, e in err.items()}
    assert young_err["partial"] < young_err["unpooled"]
    table = P.compare_pooling(fits, hold)
    assert list(table.index) == ["partial", "unpooled", "complete"]
    assert table.loc["partial", "mae_pp"] < table.loc["unpooled", "mae_pp"]
    assert table.loc["partial", "mae_pp"] < table.loc["complete", "mae_pp"]
    assert table["n_young"].iloc[0] == 8 and table["elpd_loo"].isna().all()  # MAP: no LOO


# -- predictions --------------------------------------------------------------------------------
def test_derl_and_survival_match_the_single_cohort_predictions() -> None:
    data = pd.DataFrame({"cohort": ["A", "B"], "t": [3, 4], "churned": [True, False]})
    rng = np.random.default_rng(0)
    alpha, beta = rng.uniform(0.5, 2, (20, 2)), rng.uniform(1, 5, (20, 2))
    model = _fixed("unpooled", data, alpha=alpha, beta=beta)
    frame = pd.DataFrame({"cohort": ["B", "A", "B", "A"], "renewals": [0, 7, 12, 7]})
    got = P.derl(model, frame, 0.1)
    for j, cohort in enumerate(("A", "B")):
        single = ShiftedBetaGeoModel()
        single.idata = az.from_dict(posterior={"alpha": alpha[None, :, j], "beta": beta[None, :, j]})
        rows = np.flatnonzero(frame["cohort"] == cohort)
        np.testing.assert_allclose(got[:, rows], C.derl(single, 0.1, frame["renewals"][rows]), rtol=1e-12)
        np.testing.assert_allclose(P.survival(model, [cohort], np.arange(10))[:, 0], C.survival(single, np.arange(10)),
                                   rtol=1e-12)
    # conditional survival: S(n + k) / S(n)
    s = P.survival(model, ["A", "B"], np.arange(20))
    cond = P.conditional_survival(model, frame, 3)
    np.testing.assert_allclose(cond[:, 1], s[:, 0, 10] / s[:, 0, 7], rtol=1e-12)
    np.testing.assert_allclose(cond[:, 2], s[:, 1, 15] / s[:, 1, 12], rtol=1e-12)
    # the BdW: against the single-cohort BdW's sum
    bdw = _fixed("unpooled", data, "bdw", gamma=alpha, delta=beta, c=np.full(20, 1.5))
    single = BetaDiscreteWeibullModel()
    single.idata = az.from_dict(posterior={"gamma": alpha[None, :, 0], "delta": beta[None, :, 0], "c": np.full((1, 20), 1.5)})
    np.testing.assert_allclose(P.derl(bdw, frame, 0.1)[:, [1, 3]], C.derl(single, 0.1, [7, 7]), rtol=1e-9)


def test_holdout_survival_counts_by_hand() -> None:
    data = pd.DataFrame({"cohort": ["A", "B"], "t": [3, 4], "churned": [True, False]})
    model = _fixed("complete", data, alpha=np.array([1.0]), beta=np.array([1.0]))  # S(t) = 1/(t+1)
    holdout = pd.DataFrame({
        "cohort": ["A", "A", "A", "B"], "renewals_cal": [2, 2, 3, 1], "renewals_end": [4, 4, 5, 2],
        "churned_holdout": [False, True, True, False], "t_holdout": [4, 4, 4, 2], "count": [10, 5, 2, 7]})
    table = P.holdout_survival(model, holdout).set_index(["cohort", "tenure"])
    # A, m = 3: eligible 10 + 5 + 0; survivors 10 + 5 (t_holdout 4 > 3); predicted 15 * S(3)/S(2)
    assert table.loc[("A", 3), "eligible"] == 15 and table.loc[("A", 3), "actual"] == 15
    assert table.loc[("A", 3), "predicted"] == pytest.approx(15 * 3 / 4)
    # A, m = 4: 17 eligible; survivors 10 (the 5 paid 4 times: made renewal 3, not 4) + 0
    assert table.loc[("A", 4), "eligible"] == 17 and table.loc[("A", 4), "actual"] == 10
    assert table.loc[("A", 4), "predicted"] == pytest.approx(15 * 3 / 5 + 2 * 4 / 5)
    assert table.loc[("A", 5), "eligible"] == 2 and table.loc[("A", 5), "actual"] == 0
    assert table.loc[("B", 2), "predicted"] == pytest.approx(7 * 2 / 3)
    err = P.survival_error(table.reset_index())
    by = err.by_cohort.set_index("cohort")
    assert by.loc["A", "tenure"] == 5
    assert by.loc["A", "error_pp"] == pytest.approx(100 * abs(2 * 4 / 6 - 0) / 17)
    assert err.mean_pp == pytest.approx(by["error_pp"].mean())
    sized = P.survival_error(table.reset_index(), {"A": 100, "B": 70}).by_cohort.set_index("cohort")
    assert sized.loc["B", "error_pp"] == pytest.approx(100 * abs(7 * 2 / 3 - 7) / 70)
    with pytest.raises(DataError, match="t_holdout"):
        P.holdout_survival(model, holdout.assign(t_holdout=[4, 2, 4, 2]))


def test_unseen_cohorts_behave_as_documented() -> None:
    data = pd.DataFrame({"cohort": ["A", "B", "C"], "plan": ["x", "y", "x"], "t": [3, 4, 2],
                         "churned": [True, False, True]})
    n = 4000
    rng = np.random.default_rng(1)
    hyper = {"m_mu": np.full(n, -2.0), "sigma_mu": np.full(n, 0.5), "m_kappa": np.full(n, 1.0),
             "sigma_kappa": np.full(n, 0.3)}
    alpha, beta = rng.uniform(0.5, 2, (n, 3)), rng.uniform(1, 5, (n, 3))
    model = _fixed("partial", data, covariates=("plan",), alpha=alpha, beta=beta,
                   retention=np.full((n, 1), 0.4), **hyper)
    p = model.cohort_params(["A", "new", "new", "later"])
    np.testing.assert_allclose(p["alpha"][:, 0], alpha[:, 0])  # a fitted cohort: its own draws
    np.testing.assert_array_equal(p["alpha"][:, 1], p["alpha"][:, 2])  # one label, one new cohort
    lm, lk = np.log(p["alpha"] / p["beta"]), np.log(p["alpha"] + p["beta"])
    assert lm[:, 1].mean() == pytest.approx(-2.0, abs=0.03) and lm[:, 1].std() == pytest.approx(0.5, rel=0.05)
    assert lk[:, 3].mean() == pytest.approx(1.0, abs=0.02) and lk[:, 3].std() == pytest.approx(0.3, rel=0.05)
    assert np.corrcoef(lm[:, 1], lm[:, 3])[0, 1] == pytest.approx(0.0, abs=0.05)  # independent new cohorts
    again = model.cohort_params(["A", "new", "new", "later"])
    np.testing.assert_array_equal(again["alpha"], p["alpha"])  # fixed by the seed
    # covariates shift logit(mu) at the cohort's kappa; an unseen level is refused
    pro = model.cohort_params(["A"], pd.DataFrame({"plan": ["y"]}))
    np.testing.assert_allclose(np.log(pro["alpha"] / pro["beta"])[:, 0], np.log(alpha[:, 0] / beta[:, 0]) + 0.4)
    np.testing.assert_allclose((pro["alpha"] + pro["beta"])[:, 0], alpha[:, 0] + beta[:, 0])
    with pytest.raises(DataError, match=r"column 'plan' row 0: level 'z' was not seen in the fit \(levels: x, y\)"):
        model.cohort_params(["A"], pd.DataFrame({"plan": ["z"]}))
    assert model.cohort_params(["A"], max_draws=10)["alpha"].shape == (10, 1)

    # complete: the common parameters; unpooled: per draw those of a fitted cohort, uniformly
    common = _fixed("complete", data, alpha=alpha[:, 0], beta=beta[:, 0])
    np.testing.assert_allclose(common.cohort_params(["new"])["alpha"][:, 0], alpha[:, 0])
    unpooled = _fixed("unpooled", data, alpha=alpha, beta=beta)
    got = unpooled.cohort_params(["new"])["alpha"][:, 0]
    which = np.argmin(np.abs(alpha - got[:, None]), axis=1)
    np.testing.assert_allclose(got, alpha[np.arange(n), which])
    np.testing.assert_allclose(np.bincount(which) / n, 1 / 3, atol=0.03)


def test_errors() -> None:
    with pytest.raises(ConfigError, match="pooling must be one of"):
        CohortRetentionModel(pooling="hierarchical")
    with pytest.raises(ConfigError, match="family must be one of"):
        CohortRetentionModel(family="weibull")
    with pytest.raises(ConfigError, match=r"unknown prior\(s\) \['alpha'\]"):
        CohortRetentionModel(pooling="partial", priors={"alpha": Prior("HalfFlat")})
    model = CohortRetentionModel(covariates=("plan",))
    with pytest.raises(DataError, match="column 'plan' is missing"):
        model.fit(pd.DataFrame({"cohort": ["a"], "t": [1], "churned": [True]}), MAP)
    with pytest.raises(DataError, match="row 1: a churned subscriber needs t >= 1"):
        prepare_durations(pd.DataFrame({"cohort": ["a", "b"], "t": [1, 0], "churned": [1, 1]}), (), "m")
    with pytest.raises(CbcvError, match="not been fitted"):
        model.cohort_params(["a"])
