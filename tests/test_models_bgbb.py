"""BG/BB model: hand-worked likelihoods, probabilities summing to one over all purchase strings,
the published estimates of Fader, Hardie & Shang (2010) on the 1995 donor cohort, errors, and
parameter recovery."""

from __future__ import annotations

import itertools
from collections import Counter

import arviz as az
import mpmath as mp
import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest

from cbcv.core.errors import DataError
from cbcv.data.research_sets import read_donations
from cbcv.models.base import Prior, SamplerSettings
from cbcv.models.bgbb import BetaGeoBetaBinomModel

PARAMS = ("alpha", "beta", "gamma", "delta")
FLAT = {k: Prior("HalfFlat") for k in PARAMS}
MAP = SamplerSettings(method="map")


def _map_estimates(model: BetaGeoBetaBinomModel, data: pd.DataFrame) -> dict[str, float]:
    model.fit(data, MAP)
    return {k: float(v[0]) for k, v in model.draws().items()}


def _row_loglike(params: dict[str, float], x: int, t_x: int, n: int) -> float:
    return BetaGeoBetaBinomModel().point_loglike(
        params, pd.DataFrame({"x": [x], "t_x": [t_x], "n": [n]})
    )


def test_hand_worked_one_opportunity() -> None:
    # alpha = beta = gamma = delta = 1 and n = 1:
    #  no purchase: alive and no purchase (1/2 * 1/2) or dropped out before it (1/2) = 3/4;
    #  a purchase: alive (1/2) and buys (1/2) = 1/4.
    ones = dict.fromkeys(PARAMS, 1.0)
    assert np.exp(_row_loglike(ones, 0, 0, 1)) == pytest.approx(0.75, rel=1e-12)
    assert np.exp(_row_loglike(ones, 1, 1, 1)) == pytest.approx(0.25, rel=1e-12)


def test_hand_worked_two_opportunities() -> None:
    # alpha=2, beta=1 (E p = 2/3), gamma=1, delta=3 (E theta = 1/4), n = 2, string "1 0"
    # (x = 1, t_x = 1): alive throughout  E[p (1-p)] E[(1-theta)^2]
    #                 + drops out before the 2nd  E[p] E[theta (1-theta)]
    e_p_1mp = 2 * 1 / (3 * 4)  # alpha beta / ((a+b)(a+b+1))
    e_1mth2 = 3 * 4 / (4 * 5)  # delta (delta+1) / ((g+d)(g+d+1))
    e_p = 2 / 3
    e_th_1mth = 1 * 3 / (4 * 5)
    expected = e_p_1mp * e_1mth2 + e_p * e_th_1mth
    ll = _row_loglike({"alpha": 2.0, "beta": 1.0, "gamma": 1.0, "delta": 3.0}, 1, 1, 2)
    assert np.exp(ll) == pytest.approx(expected, rel=1e-12)


def test_probabilities_of_all_purchase_strings_sum_to_one() -> None:
    # Each of the 2^n purchase strings has the likelihood of its (x, t_x); over all strings
    # the probabilities add up to one.
    params = {"alpha": 0.7, "beta": 1.9, "gamma": 0.4, "delta": 2.2}
    n = 6
    patterns: Counter[tuple[int, int]] = Counter()
    for string in itertools.product([0, 1], repeat=n):
        x = sum(string)
        t_x = max((k + 1 for k, bought in enumerate(string) if bought), default=0)
        patterns[(x, t_x)] += 1
    frame = pd.DataFrame(
        [(x, t_x, n, count) for (x, t_x), count in patterns.items()],
        columns=["x", "t_x", "n", "count"],
    )
    model = BetaGeoBetaBinomModel()
    arrays, _ = model.prepare(frame)
    tensors = {k: pt.as_tensor_variable(np.float64(v)) for k, v in params.items()}
    likelihood = np.exp(model.logp(tensors, arrays).eval())
    assert float(np.sum(arrays["weight"] * likelihood)) == pytest.approx(1.0, abs=1e-12)


def _mp_loglike(params: dict[str, float], x: int, t_x: int, n: int) -> float:
    """The BG/BB log-likelihood with 50-digit arithmetic (mpmath), term by term."""
    mp.mp.dps = 50
    a, b, g, d = (mp.mpf(params[k]) for k in PARAMS)
    total = mp.beta(a + x, b + n - x) / mp.beta(a, b) * mp.beta(g, d + n) / mp.beta(g, d)
    for i in range(n - t_x):
        total += (
            mp.beta(a + x, b + t_x - x + i)
            / mp.beta(a, b)
            * mp.beta(g + 1, d + t_x + i)
            / mp.beta(g, d)
        )
    return float(mp.log(total))


@pytest.mark.parametrize(
    ("params", "row"),
    [
        ({"alpha": 50.0, "beta": 0.5, "gamma": 0.3, "delta": 40.0}, (900, 950, 1000)),
        ({"alpha": 0.05, "beta": 30.0, "gamma": 8.0, "delta": 0.2}, (1, 3, 400)),
        ({"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.8}, (5, 5, 5)),
        ({"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.8}, (0, 0, 52)),
    ],
)
def test_extreme_inputs_against_high_precision(params, row) -> None:
    assert _row_loglike(params, *row) == pytest.approx(_mp_loglike(params, *row), rel=1e-9)


def test_published_estimates_donation_cohort() -> None:
    # Fader, Hardie & Shang (2010): 11,104 donors, 6 opportunities (1996-2001) for calibration;
    # alpha 1.204, beta 0.750, gamma 0.657, delta 2.783, LL = -33,225.6.
    data = read_donations(n_calibration=6)
    model = BetaGeoBetaBinomModel(priors=FLAT)
    est = _map_estimates(model, data)
    published = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
    for k, value in published.items():
        assert est[k] == pytest.approx(value, rel=0.01), k
    assert model.point_loglike(est) == pytest.approx(-33_225.6, abs=0.1)
    assert model.idata.attrs["n_customers"] == 11_104
    assert model.idata.attrs["n_distinct"] == 22
    assert model.log_likelihood().shape == (1, 1, 11_104)


def test_counts_equal_repeated_rows() -> None:
    params = {"alpha": 1.1, "beta": 0.8, "gamma": 0.6, "delta": 2.5}
    counted = pd.DataFrame({"x": [2, 0, 3], "t_x": [4, 0, 5], "n": [6, 6, 8], "count": [3, 2, 1]})
    repeated = counted.loc[counted.index.repeat(counted["count"])].drop(columns="count")
    model = BetaGeoBetaBinomModel()
    assert model.point_loglike(params, counted) == pytest.approx(
        model.point_loglike(params, repeated), rel=1e-12
    )


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"x": [1, 3], "t_x": [2, 2], "n": [5, 5]}, r"column 'x' row 1: x must not exceed t_x"),
        ({"x": [1], "t_x": [6], "n": [5]}, r"column 't_x' row 0: t_x must not exceed n"),
        ({"x": [0], "t_x": [2], "n": [5]}, r"column 't_x' row 0: t_x must be 0 when x is 0"),
        ({"x": [1.5], "t_x": [2], "n": [5]}, r"column 'x' row 0: expected a whole number"),
        ({"x": [1], "t_x": [2]}, r"column 'n' is missing"),
        ({"x": [1], "t_x": [1], "n": [3], "count": [-1]}, r"column 'count' row 0"),
    ],
)
def test_data_errors(frame, message) -> None:
    with pytest.raises(DataError, match=message):
        BetaGeoBetaBinomModel().prepare(pd.DataFrame(frame))


def simulate_bgbb(params: dict[str, float], n_customers: int, n: int, seed: int) -> pd.DataFrame:
    """p ~ Beta(alpha, beta), theta ~ Beta(gamma, delta); an active customer drops out at the
    start of each opportunity with probability theta and otherwise buys with probability p."""
    rng = np.random.default_rng(seed)
    p = rng.beta(params["alpha"], params["beta"], size=n_customers)
    theta = rng.beta(params["gamma"], params["delta"], size=n_customers)
    dropout = rng.geometric(theta)  # the opportunity at whose start the customer drops out
    active = np.arange(1, n + 1)[None, :] < dropout[:, None]
    buys = active & (rng.uniform(size=(n_customers, n)) < p[:, None])
    x = buys.sum(axis=1)
    t_x = np.where(x > 0, n - np.argmax(buys[:, ::-1], axis=1), 0)
    return pd.DataFrame({"x": x, "t_x": t_x, "n": n})


def test_large_sample_mle_is_consistent() -> None:
    truth = {"alpha": 1.0, "beta": 0.8, "gamma": 0.5, "delta": 2.5}
    data = simulate_bgbb(truth, n_customers=200_000, n=8, seed=1)
    model = BetaGeoBetaBinomModel(priors=FLAT)
    est = _map_estimates(model, data)
    assert model.idata.attrs["n_distinct"] <= 37  # 1 + 8 * 9 / 2 possible (x, t_x)
    for k, value in truth.items():
        assert est[k] == pytest.approx(value, rel=0.04), k


def test_parameter_recovery_nuts() -> None:
    truth = {"alpha": 1.0, "beta": 0.8, "gamma": 0.5, "delta": 2.5}
    data = simulate_bgbb(truth, n_customers=4000, n=8, seed=32)
    model = BetaGeoBetaBinomModel()
    idata = model.fit(data, SamplerSettings(draws=400, tune=400, chains=2, cores=1, seed=7))
    assert model.divergences() == 0
    hdi = az.hdi(idata, hdi_prob=0.94)
    for k, value in truth.items():
        low, high = hdi[k].values
        assert low <= value <= high, (k, low, high)
