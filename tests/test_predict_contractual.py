"""sBG and BdW predictions over draws: published/reference values, closed forms against sums and
high-precision arithmetic, and Monte-Carlo simulation of the generative models."""

from __future__ import annotations

import arviz as az
import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import CbcvError
from cbcv.data.research_sets import read_two_segment_retention
from cbcv.models import BetaDiscreteWeibullModel, BetaGeoModel, ShiftedBetaGeoModel
from cbcv.predict import contractual as C

REGULAR = dict(alpha=0.704, beta=1.182)  # Fader & Hardie (2007), years 1-7
HIGH_END = dict(alpha=0.668, beta=3.806)


def _fixed(cls, **values):
    """A model 'fitted' to fixed parameter values (one draw per entry of each value)."""
    model = cls()
    model.idata = az.from_dict(posterior={k: np.atleast_1d(np.asarray(v, dtype=float))[None, :] for k, v in values.items()})
    return model


def _mp_derl(gamma: float, delta: float, c: float, n: int, d: float) -> float:
    """sum_{t>n} S(t)/S(n) z^(t-n-1) with mpmath, summed until the terms vanish."""
    mp.mp.dps = 30
    z = 1 / (1 + mp.mpf(d))

    def s(t: int) -> mp.mpf:
        return mp.beta(gamma, delta + mp.mpf(t) ** c)

    total, t, base = mp.mpf(0), n + 1, s(n)
    while True:
        term = s(t) / base * z ** (t - n - 1)
        total += term
        if term < mp.mpf(10) ** -16 * total:
            return float(total)
        t += 1


def test_survival_and_retention_closed_forms() -> None:
    sbg = _fixed(ShiftedBetaGeoModel, **REGULAR)
    t = np.arange(0, 15)
    mp.mp.dps = 30
    ref = [float(mp.beta(0.704, 1.182 + k) / mp.beta(0.704, 1.182)) for k in t]
    np.testing.assert_allclose(C.survival(sbg, t)[0], ref, rtol=1e-12)
    # r(t) = (beta + t - 1)/(alpha + beta + t - 1) equals S(t)/S(t-1), and S(t) = prod r
    r = C.retention_rate(sbg, t[1:])[0]
    np.testing.assert_allclose(r, np.array(ref[1:]) / np.array(ref[:-1]), rtol=1e-12)
    np.testing.assert_allclose(np.cumprod(r), ref[1:], rtol=1e-12)
    # the BdW with c = 1 is the sBG; with c != 1 its survivor function is B(gamma, delta + t^c)/B
    bdw1 = _fixed(BetaDiscreteWeibullModel, gamma=0.704, delta=1.182, c=1.0)
    np.testing.assert_allclose(C.retention_rate(bdw1, t[1:])[0], r, rtol=1e-12)
    bdw = _fixed(BetaDiscreteWeibullModel, gamma=0.9, delta=2.5, c=1.6)
    ref_w = [float(mp.beta(0.9, 2.5 + mp.mpf(k) ** 1.6) / mp.beta(0.9, 2.5)) for k in t]
    np.testing.assert_allclose(C.survival(bdw, t)[0], ref_w, rtol=1e-10)


def test_projections_of_the_two_segments() -> None:
    # Fader & Hardie (2007): parameters from years 1-7, projected over years 8-12. The High-end
    # projection reproduces the independent implementation jdmaturen/shifted_beta_geometric_py
    # (README: survival at t = 8..12 of 0.460, 0.436, 0.414, 0.395, 0.378) and both segments
    # track the held-out survivors within 2% (Regular) and 4.5% (High-end).
    high = C.survival(_fixed(ShiftedBetaGeoModel, **HIGH_END), np.arange(8, 13))[0]
    np.testing.assert_allclose(high, [0.460, 0.436, 0.414, 0.395, 0.378], atol=6e-4)
    data = read_two_segment_retention()
    for segment, params, tol in (("Regular", REGULAR, 0.02), ("High-end", HIGH_END, 0.045)):
        actual = data[(data["cohort"] == segment) & (data["t"] >= 8)]["alive"].to_numpy() / 1000
        pred = C.survival(_fixed(ShiftedBetaGeoModel, **params), np.arange(8, 13))[0]
        assert np.all(np.abs(pred / actual - 1) < tol), segment


def test_sbg_derl_reference_values_and_del_identity() -> None:
    sbg = _fixed(ShiftedBetaGeoModel, **HIGH_END)
    # jdmaturen/shifted_beta_geometric_py README: DERL at d = 10% after 7 renewals = 7.530
    assert C.derl(sbg, 0.10, 7)[0, 0] == pytest.approx(7.530, abs=5e-4)
    # Fader & Hardie (2010): DEL = 2F1(1, beta; alpha + beta; z) counts the payment at t = 0,
    # so DEL = 1 + z DERL(0 renewals)
    z = 1 / 1.1
    del_ = float(mp.hyp2f1(1, 3.806, 0.668 + 3.806, z))
    assert 1 + z * C.derl(sbg, 0.10, 0)[0, 0] == pytest.approx(del_, rel=1e-12)
    for n in (0, 3, 12):
        assert C.derl(sbg, 0.10, n)[0, 0] == pytest.approx(_mp_derl(0.668, 3.806, 1.0, n, 0.10), rel=1e-11)


@pytest.mark.parametrize(
    ("alpha", "beta", "d"),
    [(0.704, 1.182, 0.1), (2.5, 0.5, 0.001), (50.0, 200.0, 0.01), (0.3, 50.0, 0.005), (6.0, 0.2, 0.03)],
)
def test_closed_form_equals_sum_and_bdw_with_c_one(alpha, beta, d) -> None:
    # several of these make scipy's hyp2f1 return NaN; the closed form then falls back to the sum
    renewals = [0, 1, 5, 40, 600, 2000]
    sbg = _fixed(ShiftedBetaGeoModel, alpha=alpha, beta=beta)
    closed = C.derl(sbg, d, renewals)
    assert np.all(np.isfinite(closed))
    np.testing.assert_allclose(closed, C.derl(sbg, d, renewals, method="sum"), rtol=1e-9)
    bdw = _fixed(BetaDiscreteWeibullModel, gamma=alpha, delta=beta, c=1.0)
    np.testing.assert_allclose(C.derl(bdw, d, renewals), closed, rtol=1e-9)
    mp.mp.dps = 30
    z = 1 / (1 + mp.mpf(d))
    for j, n in enumerate(renewals[:4]):
        ref = (beta + n) / (alpha + beta + n) * mp.hyp2f1(1, beta + n + 1, alpha + beta + n + 1, z)
        assert closed[0, j] == pytest.approx(float(ref), rel=1e-10)


def test_bdw_derl_against_high_precision_sum() -> None:
    for c in (0.5, 1.7):
        bdw = _fixed(BetaDiscreteWeibullModel, gamma=0.8, delta=3.0, c=c)
        got = C.derl(bdw, 0.08, [0, 4, 10])[0]
        np.testing.assert_allclose(got, [_mp_derl(0.8, 3.0, c, n, 0.08) for n in (0, 4, 10)], rtol=1e-9)


def _simulate_durations(gamma: float, delta: float, c: float, size: int, seed: int) -> np.ndarray:
    """theta ~ Beta(gamma, delta); P(T > t | theta) = (1 - theta)^(t^c), drawn by inversion:
    T > t iff t < (log U / log(1 - theta))^(1/c)."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(gamma, delta, size)
    scale = np.log(rng.uniform(size=size)) / np.log1p(-theta)
    return np.floor(scale ** (1.0 / c)) + 1.0


@pytest.mark.parametrize(("gamma", "delta", "c"), [(0.704, 1.182, 1.0), (1.2, 4.0, 0.6), (0.8, 6.0, 1.8)])
def test_monte_carlo_survival_and_derl(gamma, delta, c) -> None:
    durations = _simulate_durations(gamma, delta, c, 400_000, seed=3)
    model = (
        _fixed(ShiftedBetaGeoModel, alpha=gamma, beta=delta)
        if c == 1.0
        else _fixed(BetaDiscreteWeibullModel, gamma=gamma, delta=delta, c=c)
    )
    t = np.arange(0, 9)
    surv_mc = (durations[:, None] > t[None, :]).mean(axis=0)
    se = np.sqrt(surv_mc * (1 - surv_mc) / len(durations)) + 1e-12
    assert np.all(np.abs(C.survival(model, t)[0] - surv_mc) < 4.5 * se)
    d, z = 0.12, 1 / 1.12
    for n in (0, 3):
        active = durations[durations > n]
        # payments after the current one: at t = n+1 .. T-1, the first undiscounted
        value = (1.0 - z ** (active - 1.0 - n)) / (1.0 - z)
        got = C.derl(model, d, n)[0, 0]
        assert abs(got - value.mean()) < 4.5 * value.std() / np.sqrt(len(value))


def test_expected_residual_lifetime() -> None:
    sbg = _fixed(ShiftedBetaGeoModel, alpha=[1.5, 0.8], beta=[3.0, 2.0])
    erl = C.expected_residual_lifetime(sbg, [0, 5, 20])
    np.testing.assert_allclose(erl[0], [(3.0 + n) / 0.5 for n in (0, 5, 20)], rtol=1e-12)
    assert np.all(np.isinf(erl[1]))  # alpha <= 1: infinite mean
    # a horizon gives the finite sum of S(n+k)/S(n)
    capped = C.expected_residual_lifetime(sbg, [0, 5], horizon=10)
    surv = C.survival(sbg, np.arange(0, 16))
    np.testing.assert_allclose(capped[:, 0], surv[:, 1:11].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(capped[:, 1], surv[:, 6:16].sum(axis=1) / surv[:, 5], rtol=1e-12)
    # BdW without horizon: sum plus asymptotic tail; with c = 1 its t^-1.5 tail is slow
    bdw1 = _fixed(BetaDiscreteWeibullModel, gamma=1.5, delta=3.0, c=1.0)
    np.testing.assert_allclose(C.expected_residual_lifetime(bdw1, [0, 5, 20])[0], erl[0], rtol=1e-6)
    bdw = _fixed(BetaDiscreteWeibullModel, gamma=[1.5, 0.9], delta=[2.0, 2.0], c=[1.8, 1.0])
    got = C.expected_residual_lifetime(bdw, [0, 3])
    assert np.all(np.isinf(got[1]))  # c gamma = 0.9 <= 1
    # S(t) ~ t^-2.7: a direct sum over two million periods leaves a tail below 1e-10
    t = np.arange(1, 2_000_001, dtype=float)
    surv_w = np.exp(C._log_survival({"gamma": 1.5, "delta": 2.0, "c": 1.8}, t))
    direct = [surv_w.sum(), surv_w[3:].sum() / surv_w[2]]
    np.testing.assert_allclose(got[0], direct, rtol=1e-6)


def test_customer_derl_chunks_and_churned() -> None:
    rng = np.random.default_rng(0)
    model = _fixed(BetaDiscreteWeibullModel, gamma=rng.uniform(0.5, 2, 30), delta=rng.uniform(1, 5, 30), c=rng.uniform(0.7, 1.5, 30))
    data = pd.DataFrame({"t": rng.integers(0, 12, 200), "churned": rng.random(200) < 0.2})
    full = C.customer_derl(model, data, 0.05)
    tiny = C.customer_derl(model, data, 0.05, max_bytes=30 * 8 * 24 * 3)
    assert full.shape == (30, 200)
    # chunks truncate the sum at their own largest value: equal within the sum's tolerance
    np.testing.assert_allclose(full, tiny, rtol=1e-9)
    churned = data["churned"].to_numpy()
    assert np.all(full[:, churned] == 0.0)
    by_value = C.derl(model, 0.05, np.arange(12))
    np.testing.assert_allclose(full[:, ~churned], by_value[:, data["t"].to_numpy()[~churned]], rtol=1e-13)
    sbg = _fixed(ShiftedBetaGeoModel, **REGULAR)
    active = pd.DataFrame({"tenure": [0, 3, 3]})
    np.testing.assert_allclose(C.customer_derl(sbg, active, 0.1, column="tenure")[0], C.derl(sbg, 0.1, [0, 3, 3])[0])


def test_errors() -> None:
    sbg = _fixed(ShiftedBetaGeoModel, **REGULAR)
    bdw = _fixed(BetaDiscreteWeibullModel, gamma=1.0, delta=2.0, c=1.2)
    with pytest.raises(CbcvError, match="not a contractual model"):
        C.survival(_fixed(BetaGeoModel, r=0.2, alpha=4.0, a=0.8, b=2.4), [1])
    with pytest.raises(CbcvError, match="discount rate must be positive"):
        C.derl(sbg, 0.0, 1)
    with pytest.raises(CbcvError, match="renewals must be whole numbers"):
        C.derl(sbg, 0.1, [1.5])
    with pytest.raises(CbcvError, match="no closed-form DERL"):
        C.derl(bdw, 0.1, 1, method="closed")
    with pytest.raises(CbcvError, match="column 'tenure'"):
        C.customer_derl(sbg, pd.DataFrame({"t": [1]}), 0.1, column="tenure")
    assert C.per_period_rate(0.1, 12) == pytest.approx(1.1 ** (1 / 12) - 1, rel=1e-12)


def test_derl_at_rates_is_derl_draw_by_draw() -> None:
    """Each draw at its own discount rate gives, draw by draw, the DERL of that draw at that
    rate (closed form for the sBG, the sum for the BdW), including draws where SciPy's hyp2f1
    fails (beta + n large with z near 1)."""
    from cbcv.predict.contractual import FAMILIES, derl_at_rates

    rng = np.random.default_rng(3)
    draws = 40
    gamma, delta = rng.uniform(0.2, 2.0, (draws, 1)), rng.uniform(0.5, 20.0, (draws, 1))
    delta[0, 0] = 5e4  # hyp2f1 territory where SciPy returns NaN at a small rate
    c = rng.uniform(0.6, 1.5, (draws, 1))
    rates = rng.uniform(0.0005, 0.01, draws)
    n = np.arange(0, 30, dtype=float)
    sbg, bdw = (f for f in FAMILIES.values())
    for family, params in ((sbg, {"gamma": gamma, "delta": delta, "c": np.ones_like(c)}),
                           (bdw, {"gamma": gamma, "delta": delta, "c": c})):
        got = derl_at_rates(family, params, n, rates)
        for i in range(draws):
            one = {k: v[i : i + 1] for k, v in params.items()}
            want = family.derl(one, n[None, :], float(rates[i]), "sum", 1e-12, 10**7)[0]
            np.testing.assert_allclose(got[i], want, rtol=1e-9)
    with pytest.raises(CbcvError, match="positive"):
        derl_at_rates(sbg, {"gamma": gamma, "delta": delta, "c": c}, n, -rates)
