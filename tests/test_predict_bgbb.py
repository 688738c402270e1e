"""BG/BB predictions over draws: the published values of Fader, Hardie & Shang (2010) on the 1995
donor cohort, closed forms against direct sums, and Monte-Carlo simulation of the model."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from scipy.optimize import minimize
from scipy.special import betaln

from cbcv.core.errors import CbcvError
from cbcv.data.research_sets import read_donations
from cbcv.models import BetaGeoBetaBinomModel, ShiftedBetaGeoModel
from cbcv.predict import bgbb as G

PUBLISHED = dict(alpha=1.204, beta=0.750, gamma=0.657, delta=2.783)  # Fader, Hardie & Shang (2010)
ROWS = pd.DataFrame({"x": [0, 2, 6, 3, 1], "t_x": [0, 4, 6, 5, 6], "n": [6, 6, 6, 9, 6]})


def _fixed(**values):
    model = BetaGeoBetaBinomModel()
    model.idata = az.from_dict(
        posterior={k: np.atleast_1d(np.asarray(v, dtype=float))[None, :] for k, v in values.items()}
    )
    return model


def test_published_p_alive_table_6() -> None:
    # Fader, Hardie & Shang (2010), Table 6, P(alive in 2002) by recency and frequency (n = 6):
    # 0.11 for (x=0), 0.59 for (x=2, t_x=4 i.e. last gift 1999), 0.93 for (x=6, t_x=6)
    got = G.p_alive(_fixed(**PUBLISHED), ROWS.iloc[:3])[0]
    np.testing.assert_allclose(got, [0.11, 0.59, 0.93], atol=5e-3)


def _mle(data: pd.DataFrame) -> dict[str, float]:
    """Maximum-likelihood estimates with scipy (the model's likelihood is checked against this
    module's in test_likelihood_matches_the_model)."""
    d = {c: data[c].to_numpy(dtype=float)[None, :] for c in ("x", "t_x", "n")}
    w = data["count"].to_numpy(dtype=float)

    def nll(log_params: np.ndarray) -> float:
        p = {k: np.array([[np.exp(v)]]) for k, v in zip(PUBLISHED, log_params, strict=True)}
        return -float((w * G._log_lik(p, d)[0]).sum())

    start = np.log(list(PUBLISHED.values()))
    res = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000})
    return dict(zip(PUBLISHED, np.exp(res.x), strict=True))


def test_hardie_sheet_conditional_expectation_total() -> None:
    # Hardie's BG/BB spreadsheet (brucehardie.com note 010, "Conditional Expectations (II)"): the
    # cohort's expected repeat gifts in the five years after 2001 sum to 12,884.2 at the
    # maximum-likelihood estimates.
    data = read_donations(n_calibration=6)
    mle = _mle(data)
    for k, v in PUBLISHED.items():
        assert mle[k] == pytest.approx(v, abs=1e-3), k
    total = (G.expected_transactions(_fixed(**mle), 5, data)[0] * data["count"].to_numpy()).sum()
    assert total == pytest.approx(12_884.2, abs=0.5)
    # the published (rounded) estimates give nearly the same total
    published = (G.expected_transactions(_fixed(**PUBLISHED), 5, data)[0] * data["count"]).sum()
    assert published == pytest.approx(12_884.2, rel=5e-4)


def test_likelihood_matches_the_model() -> None:
    p = {k: np.array([[v]]) for k, v in PUBLISHED.items()}
    d = {c: ROWS[c].to_numpy(dtype=float)[None, :] for c in ("x", "t_x", "n")}
    mine = G._log_lik(p, d)[0]
    # the model's pointwise PyTensor log-likelihood, evaluated once on all rows
    arrays = {k: pt.as_tensor_variable(v[0]) for k, v in d.items()}
    params = {k: pt.as_tensor_variable(np.float64(v)) for k, v in PUBLISHED.items()}
    ref = BetaGeoBetaBinomModel().logp(params, arrays).eval()
    np.testing.assert_allclose(mine, ref, rtol=1e-10)


@pytest.mark.parametrize("gamma", [0.657, 1.0, 1.0 + 1e-9, 1.0 - 2e-6, 1.0 + 9e-4, 1.0011, 3.2])
def test_dropout_sum_closed_form(gamma) -> None:
    delta, n = 2.783, np.array([[0.0, 6.0, 40.0]])
    for n_star in (1.0, 5.0, 30.0):
        got = G._dropout_sum(np.array([[gamma]]), np.array([[delta]]), n, n_star)[0]
        k = np.arange(1, int(n_star) + 1)
        direct = [np.exp(betaln(gamma, delta + m + k) - betaln(gamma, delta)).sum() for m in n[0]]
        np.testing.assert_allclose(got, direct, rtol=1e-9)


def test_population_expectation_and_dert_against_sums() -> None:
    model = _fixed(alpha=[1.204, 0.6], beta=[0.750, 2.0], gamma=[0.657, 1.8], delta=[2.783, 0.9])
    n = np.array([1.0, 6.0, 11.0])
    # E[X(n)] is the conditional expectation of a customer with no history (x = t_x = n = 0)
    zero = pd.DataFrame({"x": [0], "t_x": [0], "n": [0]})
    pop = G.expected_transactions_population(model, n)
    for j, m in enumerate(n):
        np.testing.assert_allclose(pop[:, j], G.expected_transactions(model, int(m), zero)[:, 0], rtol=1e-12)
    # DERT against the discounted sum of the expected transactions per future opportunity
    d = 0.1
    cum = np.stack([G.expected_transactions(model, k, ROWS) for k in range(0, 401)], axis=-1)
    per_opportunity = np.diff(cum, axis=-1)
    direct = (per_opportunity * (1 + d) ** -np.arange(1, 401)).sum(axis=-1)
    np.testing.assert_allclose(G.dert(model, ROWS, discount_rate=d), direct, rtol=1e-9)


def _simulate(params: dict[str, float], size: int, n: int, horizon: int, seed: int) -> pd.DataFrame:
    """theta: dropout at the start of each opportunity; while alive, a transaction w.p. p."""
    rng = np.random.default_rng(seed)
    p = rng.beta(params["alpha"], params["beta"], size)
    theta = rng.beta(params["gamma"], params["delta"], size)
    dropout = rng.geometric(theta)  # the opportunity at whose start the customer drops out
    opp = np.arange(1, n + horizon + 1)
    buys = (opp[None, :] < dropout[:, None]) & (rng.uniform(size=(size, n + horizon)) < p[:, None])
    calib = buys[:, :n]
    x = calib.sum(axis=1)
    t_x = np.where(x > 0, n - np.argmax(calib[:, ::-1], axis=1), 0)
    return pd.DataFrame(
        {"x": x, "t_x": t_x, "n": n, "alive_next": dropout > n + 1, "future": buys[:, n:].sum(axis=1)}
    )


def test_monte_carlo_p_alive_and_conditional_expectation() -> None:
    sims = _simulate(PUBLISHED, 1_000_000, n=6, horizon=5, seed=7)
    model = _fixed(**PUBLISHED)
    for x, t_x in ((0, 0), (2, 4), (6, 6), (3, 6), (1, 2)):
        group = sims[(sims["x"] == x) & (sims["t_x"] == t_x)]
        assert len(group) > 5_000
        row = pd.DataFrame({"x": [x], "t_x": [t_x], "n": [6]})
        alive = group["alive_next"].to_numpy(dtype=float)
        pa = G.p_alive(model, row)[0, 0]
        assert abs(pa - alive.mean()) < 4.5 * np.sqrt(pa * (1 - pa) / len(alive))
        future = group["future"].to_numpy(dtype=float)
        expected = G.expected_transactions(model, 5, row)[0, 0]
        assert abs(expected - future.mean()) < 4.5 * future.std() / np.sqrt(len(future))
    # population: mean calibration-period transactions of everyone
    x = sims["x"].to_numpy(dtype=float)
    pop = G.expected_transactions_population(model, [6])[0, 0]
    assert abs(pop - x.mean()) < 4.5 * x.std() / np.sqrt(len(x))


def test_rows_draws_chunks_and_errors() -> None:
    rng = np.random.default_rng(0)
    model = _fixed(**{k: v * rng.uniform(0.8, 1.2, 40) for k, v in PUBLISHED.items()})
    data = read_donations(n_calibration=6)
    full = G.dert(model, data, discount_rate=0.1)
    tiny = G.dert(model, data, discount_rate=0.1, max_bytes=40 * 8 * 24 * 4)
    assert full.shape == (40, len(data))
    np.testing.assert_allclose(full, tiny, rtol=1e-12)
    pa = G.p_alive(model, data)
    assert np.all((pa > 0) & (pa <= 1))
    with pytest.raises(CbcvError, match="not the BG/BB model"):
        sbg = ShiftedBetaGeoModel()
        sbg.idata = az.from_dict(posterior={"alpha": np.ones((1, 1)), "beta": np.ones((1, 1))})
        G.p_alive(sbg, ROWS)
    with pytest.raises(CbcvError, match="missing"):
        G.p_alive(model, ROWS.drop(columns="n"))
    with pytest.raises(CbcvError, match="0 <= x <= t_x <= n"):
        G.p_alive(model, pd.DataFrame({"x": [3], "t_x": [2], "n": [6]}))
    with pytest.raises(CbcvError, match="positive discount rate"):
        G.dert(model, ROWS, discount_rate=0.0)
