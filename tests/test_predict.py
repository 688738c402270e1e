"""Predictions over posterior draws against published values and independent references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from cbcv import predict as P
from cbcv.core.discount import continuous_rate
from cbcv.models import BetaGeoModel, GammaGammaModel, ParetoNBDModel, Prior, SamplerSettings
from cbcv.predict import dert_rate as R
from cbcv.predict import hyp_negative as H

FLAT = {"dist": "HalfFlat"}


def _fixed(cls, **values):
    """A model 'fitted' to fixed parameter values (one draw), to test formulas in isolation."""
    import arviz as az

    model = cls()
    model.idata = az.from_dict(posterior={k: np.array([[v]]) for k, v in values.items()})
    return model


BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)  # Fader, Hardie & Lee (2005a), CDNOW
PN = dict(r=0.553, alpha=10.578, s=0.606, beta=11.669)  # Fader, Hardie & Lee (2005b), CDNOW
ONE = pd.DataFrame({"x": [2], "t_x": [30.43], "T": [38.86]})


def test_bgnbd_published_conditional_expectation() -> None:
    # Fader, Hardie & Lee (2005a), section 5: E[Y(39) | x=2, t_x=30.43, T=38.86] = 1.226
    assert P.expected_purchases(_fixed(BetaGeoModel, **BG), 39.0, ONE)[0, 0] == pytest.approx(1.226, abs=5e-4)


def test_p_alive_against_bayes_by_quadrature() -> None:
    # P(alive) for Pareto/NBD by integrating the posterior over (lambda, mu) numerically
    r, alpha, s, beta = PN.values()
    x, t_x, T = 3, 20.0, 38.0
    from scipy.stats import gamma as G

    def lik(lam, mu, alive):
        if alive:
            return lam**x * np.exp(-(lam + mu) * T)
        return lam**x * mu / (lam + mu) * (np.exp(-(lam + mu) * t_x) - np.exp(-(lam + mu) * T))

    def post(alive):
        f = lambda mu, lam: lik(lam, mu, alive) * G.pdf(lam, r, scale=1 / alpha) * G.pdf(mu, s, scale=1 / beta)  # noqa: E731
        return integrate.dblquad(f, 1e-12, 5.0, 1e-12, 5.0, epsabs=1e-14)[0]

    ref = post(True) / (post(True) + post(False))
    got = P.p_alive(_fixed(ParetoNBDModel, **PN), pd.DataFrame({"x": [x], "t_x": [t_x], "T": [T]}))[0, 0]
    assert got == pytest.approx(ref, rel=2e-3)


def test_bgnbd_expectation_matches_monte_carlo() -> None:
    # E[Y(t)|data] for BG/NBD by simulating from the posterior of (lambda, p) given the data
    rng = np.random.default_rng(1)
    r, alpha, a, b = BG.values()
    x, T, t = 2, 38.86, 39.0
    n = 400_000
    lam = rng.gamma(r + x, 1 / (alpha + T), n)
    p = rng.beta(a, b + x, n)
    pa = P.p_alive(_fixed(BetaGeoModel, **BG), ONE)[0, 0]
    alive = rng.random(n) < pa
    # simulate purchases in (T, T+t]: exponential gaps; drop out after each purchase w.p. p
    count = np.zeros(n)
    clock = np.zeros(n)
    active = alive.copy()
    for _ in range(60):
        clock = clock + rng.exponential(1 / lam)
        buy = active & (clock <= t)
        count += buy
        active = buy & (rng.random(n) >= p)
    mc, se = count.mean(), count.std() / np.sqrt(n)
    got = P.expected_purchases(_fixed(BetaGeoModel, **BG), t, ONE)[0, 0]
    assert abs(got - mc) < 4 * se


def test_dert_closed_form_equals_quadrature_and_discounted_sum() -> None:
    pn = _fixed(ParetoNBDModel, **PN)
    delta = continuous_rate(0.15, "week")
    data = pd.DataFrame({"x": [0, 2, 10, 1], "t_x": [0.0, 30.43, 37.0, 0.5], "T": [38.86, 38.86, 38.0, 20.0]})
    closed = P.dert(pn, data, delta=delta, method="closed")
    quad = P.dert(pn, data, delta=delta, method="quadrature", n_nodes=60)
    np.testing.assert_allclose(closed, quad, rtol=1e-8)
    default = P.dert(pn, data, delta=delta, method="quadrature")
    np.testing.assert_allclose(closed, default, rtol=1e-11)
    # BG/NBD: quadrature against a fine discounted sum of expected increments (10 years weekly/10)
    bg = _fixed(BetaGeoModel, **BG)
    grid = np.linspace(0.0, 3000.0, 30001)
    ey = np.array([P.expected_purchases(bg, t, ONE)[0, 0] if t > 0 else 0.0 for t in grid[::100]])
    coarse = grid[::100]
    mid = (coarse[1:] + coarse[:-1]) / 2
    approx = float((np.diff(ey) * np.exp(-delta * mid)).sum())
    assert P.dert(bg, ONE, delta=delta, method="quadrature", n_nodes=60)[0, 0] == pytest.approx(approx, rel=2e-3)
    assert P.dert(bg, ONE, delta=delta)[0, 0] == pytest.approx(approx, rel=2e-3)


def _bg_dert_mpmath(r, alpha, a, b, x, t_x, T, delta, mbg=False):
    """P(alive) · E[λ / (p λ + δ)] with λ ~ Gamma(r + x, α + T), p ~ Beta(a, b + x (+1)): the
    p-expectation as mpmath's ₂F₁(1, a; a + b'; −λ/δ) / δ, the λ-expectation by mpmath
    quadrature, and P(alive) from the likelihood's two terms (Fader, Hardie & Lee 2005, eq. 3)."""
    import mpmath as mp

    mp.mp.dps = 20
    bp = b + x + (1 if mbg else 0)
    k, rate = r + x, mp.mpf(alpha + T)
    gam = mp.gamma(k)

    def f(lam):
        return (lam / delta * mp.hyp2f1(1, a, a + bp, -lam / delta)
                * lam ** (k - 1) * mp.e ** (-rate * lam) * rate**k / gam)

    e_alive = mp.quad(f, [0, 1e-6, 1e-4, 1e-2, 0.1 / rate, 1 / rate, 10 / rate, mp.inf])
    head = mp.beta(a, b + x + (1 if mbg else 0)) / mp.beta(a, b) * rate ** -(r + x)
    dead = 0 if (x == 0 and not mbg) else mp.beta(a + 1, b + x - (0 if mbg else 1)) / mp.beta(a, b) * mp.mpf(alpha + t_x) ** -(r + x)
    return float(e_alive * head / (head + dead))


@pytest.mark.parametrize("name, params", [("bgnbd", BG), ("bgnbd", dict(r=0.8, alpha=8.0, a=0.8, b=3.0)),
                                          ("mbgnbd", dict(r=1.0, alpha=6.0, a=2.0, b=8.0))])
def test_bg_dert_by_rate_quadrature_matches_mpmath(name, params) -> None:
    # a < 1 (CDNOW: 0.793) is the case where the time-domain quadrature overflowed for x = 0
    from cbcv.valuation.drivers import DrawSet

    delta = continuous_rate(0.10, "week")
    data = pd.DataFrame({"x": [0, 0, 2, 7], "t_x": [0.0, 0.0, 30.43, 35.0], "T": [0.0, 38.86, 38.86, 52.0]})
    got = P.dert(DrawSet(name, {k: [v] for k, v in params.items()}), data, delta=delta)[0]
    for i, row in enumerate(data.itertuples()):
        ref = _bg_dert_mpmath(**params, x=row.x, t_x=row.t_x, T=row.T, delta=delta, mbg=name == "mbgnbd")
        # a customer just acquired (T = 0) was 2e-3 off with the former 64-node Gauss–Laguerre rule
        assert got[i] == pytest.approx(ref, rel=1e-9), (name, row)


def _dert_like_arguments(seed: int, draws: int = 50) -> tuple[np.ndarray, ...]:
    """(a, c, y) as the BG/NBD DERT builds them for one x: its trapezoidal lattice in log y
    (cbcv.predict.dert_rate.lattice) for 16 ages from 1 to 800 days and rates from 5% to 30% a year,
    each draw's y scaled by its own factor so that the draws' ranges differ."""
    rng = np.random.default_rng(seed)
    x = float(rng.choice([5.0, 12.0, 40.0, 170.0, 400.0]))
    a = rng.uniform(0.2, 3.0, (draws, 1))
    c = a + rng.uniform(0.5, 12.0, (draws, 1)) + x
    r, alpha = rng.uniform(0.3, 2.0, draws), rng.uniform(1.0, 20.0, (draws, 1))
    ages = np.exp(np.linspace(0.0, np.log(rng.uniform(20.0, 800.0)), 16))[None, :]
    delta = continuous_rate(float(rng.choice([0.05, 0.1, 0.3])), str(rng.choice(["day", "week"])))
    k = (r + x)[:, None]
    w = R.lattice(k, (alpha + ages) * delta, min(R.STEP_MAX, R.STEP_SCALE / np.sqrt(k.max() + 1.0)))
    y = np.exp(w)[None, :] * np.exp(rng.uniform(-1.0, 1.0, (draws, 1)))
    return a, c, y


def test_hyp2f1_interpolated_in_log_y_matches_the_integral_and_mpmath() -> None:
    import mpmath as mp

    mp.mp.dps = 30
    for seed in range(12):
        a, c, y = _dert_like_arguments(seed)
        c = np.maximum(c, H.HYP_DIRECT_MAX_C + 0.5)  # the 200-node integral: 1e-14 from mpmath
        got = H.hyp2f1_one_negative_interpolated(a, c, y)
        np.testing.assert_allclose(got, H.hyp2f1_one_negative(a, c, y), rtol=2e-12)
        for i, j in [(0, 0), (7, y.shape[1] // 2), (-1, -1)]:
            ref = float(mp.hyp2f1(1, a[i, 0], c[i, 0], -y[i, j]))
            assert got[i, j] == pytest.approx(ref, rel=2e-12)
    # the DERT given alive with the interpolation equals the one evaluating every ₂F₁
    params = dict(r=np.full((30, 1), 0.9), alpha=np.full((30, 1), 4.3),
                  a=np.linspace(0.3, 2.5, 30)[:, None], b=np.full((30, 1), 3.8))
    x = np.repeat([3.0, 8.0, 40.0, 170.0], 16)[None, :]
    T = np.tile(np.linspace(20.0, 104.0, 16), 4)[None, :]
    delta = continuous_rate(0.1, "week")
    got = P.dert_given_alive("bgnbd", params, x, T, delta)
    direct = np.concatenate([P.dert_given_alive("bgnbd", params, x[:, [j]], T[:, [j]], delta)
                             for j in range(x.shape[1])], axis=1)  # one T per x: its own lattice
    np.testing.assert_allclose(got, direct, rtol=1e-11)


def test_hyp2f1_interpolation_falls_back_where_its_check_fails(monkeypatch) -> None:
    # too few points for the widest ranges: the end check must catch those draws
    a, c, y = _dert_like_arguments(3, draws=40)
    c = np.maximum(c, H.HYP_DIRECT_MAX_C + 0.5)
    monkeypatch.setattr(H, "hyp_interp_points", lambda width: 6)
    got = H.hyp2f1_one_negative_interpolated(a, c, y)
    np.testing.assert_allclose(got, H.hyp2f1_one_negative(a, c, y), rtol=2e-11)


def test_heavy_buyers_stay_finite_and_accurate() -> None:
    """Hundreds of purchases: scipy's ₂F₁ overflows or returns nan for the direct forms (the
    scale benchmark's simulated heavy buyers hit it); the Euler-transformed expectation and the
    integral form of ₂F₁(1, a; c; −y) must match mpmath."""
    import mpmath as mp

    mp.mp.dps = 30
    for a, c, y in [(0.48, 174.78, 2700.0), (5.0, 1000.0, 2000.0), (0.48, 31.0, 1e7), (1.7, 25.0, 3.0), (0.8, 3.0, 50.0)]:
        assert H.hyp2f1_one_negative(a, c, y) == pytest.approx(float(mp.hyp2f1(1, a, c, -y)), rel=1e-12)
    params = dict(r=0.925, alpha=4.278, a=0.48, b=3.813)
    p = {k: np.array([[v]]) for k, v in params.items()}
    for x, T in [(0, 10.0), (3, 50.0), (170, 98.857), (400, 100.0)]:
        r, al, a, b, t = *params.values(), 52.0
        ref = (a + b + x - 1) / (a - 1) * (1 - ((al + T) / (al + T + t)) ** (r + x) * mp.hyp2f1(r + x, b + x, a + b + x - 1, t / (al + T + t)))
        got = P.expected_given_alive("bgnbd", t, p, np.array([[float(x)]]), np.array([[T]]))[0, 0]
        assert got == pytest.approx(float(ref), rel=1e-10), x
    from cbcv.valuation.drivers import DrawSet

    delta = continuous_rate(0.10, "week")
    data = pd.DataFrame({"x": [170, 400], "t_x": [98.5714, 99.0], "T": [98.857, 100.0]})
    got = P.dert(DrawSet("bgnbd", {k: [v] for k, v in params.items()}), data, delta=delta)[0]
    assert np.isfinite(got).all()
    for i, row in enumerate(data.itertuples()):
        ref = _bg_dert_mpmath(**params, x=row.x, t_x=row.t_x, T=row.T, delta=delta)
        assert got[i] == pytest.approx(ref, rel=1e-9)


def test_population_expectation_and_spend() -> None:
    bg = _fixed(BetaGeoModel, **BG)
    t = np.array([39.0])
    # E[X(t)] is the average over customers of age t of the conditional E[Y(t)] at x=0,T=0
    zero = pd.DataFrame({"x": [0], "t_x": [0.0], "T": [0.0]})
    assert P.expected_purchases_population(bg, t)[0, 0] == pytest.approx(
        P.expected_purchases(bg, 39.0, zero)[0, 0], rel=1e-9
    )
    gg = _fixed(GammaGammaModel, p=6.25, q=3.74, gamma=15.44)
    spend = P.expected_spend(gg, pd.DataFrame({"x": [0, 2], "mean_repeat_spend": [np.nan, 50.0]}))
    assert spend[0, 0] == pytest.approx(6.25 * 15.44 / 2.74)
    w = 6.25 * 2 / (6.25 * 2 + 3.74 - 1)
    assert spend[0, 1] == pytest.approx((1 - w) * 6.25 * 15.44 / 2.74 + w * 50.0)


def test_chunking_is_exact_and_draws_are_kept(cdnow_weekly) -> None:
    model = BetaGeoModel(priors={k: Prior("HalfFlat") for k in BG})
    model.fit(cdnow_weekly, SamplerSettings(method="map"))
    import arviz as az

    base = model.draws()
    rng = np.random.default_rng(0)
    model.idata = az.from_dict(
        posterior={k: (v[0] * (1 + 0.01 * rng.standard_normal(50)))[None, :] for k, v in base.items()}
    )
    full = P.expected_purchases(model, 39.0, cdnow_weekly)
    tiny = P.expected_purchases(model, 39.0, cdnow_weekly, max_bytes=50 * 8 * 24 * 7)
    assert full.shape == (50, 2357)
    np.testing.assert_array_equal(full, tiny)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd"])
def test_p_alive_from_log_tables_equals_the_closed_form(name) -> None:
    # the closed form written directly, against P(alive) from per-draw log tables (one exp a row)
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.integers(0, 60, n).astype(float)
    T = rng.integers(0, 120, n) + rng.choice([0.0, 1 / 7, 4 / 7], n)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    t_x[np.flatnonzero(x > 0)[:20]] = T[np.flatnonzero(x > 0)[:20]]  # no silence since the last purchase
    ranges = {"r": (0.1, 3.0), "alpha": (0.5, 20.0), "a": (0.1, 3.0), "b": (0.5, 10.0)}
    p = {k: rng.uniform(lo, hi, (40, 1)) for k, (lo, hi) in ranges.items()}
    log_odds_t = (p["r"] + x) * np.log1p((T - t_x) / (p["alpha"] + t_x))
    if name == "bgnbd":
        ratio = np.where(x > 0, np.exp(np.log(p["a"]) - np.log(p["b"] + np.maximum(x, 1) - 1) + log_odds_t), 0.0)
    else:
        ratio = np.exp(np.log(p["a"]) - np.log(p["b"] + x) + log_odds_t)
    ref = 1.0 / (1.0 + ratio)
    got = P.p_alive_rows(name, p, {"x": x[None], "t_x": t_x[None], "T": T[None]})
    assert got.shape == (40, n)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-300)



@pytest.mark.parametrize("s", [1.0, 1.0 + 1e-9, 1.0 - 1e-7, 1.0 + 1e-4])
def test_pareto_expectations_are_continuous_through_s_equal_one(s) -> None:
    # At s = 1 the closed forms divide 0 by 0; the limit is r/α·β·log(1 + t/β) for E[X(t)] and
    # (r + x)/(α + T)·(β + T)·log(1 + t/(β + T)) given alive (the integral of the s = 1
    # survival (β+T)/(β+T+τ) over τ in (0, t]), checked here by quadrature.
    pn = _fixed(ParetoNBDModel, **{**PN, "s": s})
    r, alpha, beta = PN["r"], PN["alpha"], PN["beta"]
    t, x, T = 39.0, 2, 38.86
    pop = integrate.quad(lambda u: r / alpha * (beta / (beta + u)) ** s, 0.0, t)[0]
    alive = integrate.quad(lambda u: (r + x) / (alpha + T) * ((beta + T) / (beta + T + u)) ** s,
                           0.0, t)[0]
    got = P.expected_purchases_population(pn, np.array([t]))[0, 0]
    assert got == pytest.approx(pop, rel=1e-9)
    given = P.expected_given_alive("pareto_nbd", t, P.posterior_draws(pn),
                                   np.array([[x]]), np.array([[T]]))
    assert given[0, 0] == pytest.approx(alive, rel=1e-9)


def _bg_given_alive_by_integral(r, alpha, a, b, x, T, t, mbg=False) -> float:
    """E[Y(t) | x, T, alive] from its definition: alive at T, λ ~ Gamma(r + x, α + T) and the
    dropout probability p ~ Beta(a, b + x) (MBG/NBD: b + x + 1); a customer buying at λ who
    drops out with probability p after each purchase makes (1 − e^(−λ p t)) / p in t."""
    import mpmath as mp

    with mp.workdps(30):
        bb = b + x + (1 if mbg else 0)
        rate = mp.mpf(alpha) + T

        def h(q):  # the integrand over q ** (a - 1): finite at q = 0
            return (1 - q) ** (bb - 1) * -mp.expm1(-(r + x) * mp.log1p(q * t / rate)) / q

        # q = u ** (1 / a) absorbs the weight q ** (a − 1) dq = du / a, singular for small a
        total = mp.quad(lambda u: h(u ** (1 / mp.mpf(a))), [0, 0.5, 0.9, 0.99, 1]) / a
        return float(total / mp.beta(a, bb))


@pytest.mark.parametrize("mbg", [False, True])
def test_bgnbd_given_alive_with_a_plus_b_below_one(mbg) -> None:
    """Posteriors where hardly anyone leaves (Madrigal's: a near 0, b below 1) put ₂F₁ below 0
    for customers without repeat purchases; the expectation must stay finite and exact, and the
    ordinary cases keep agreeing with the definition."""
    cases = [(0.56, 84.0, 6e-4, 0.98), (0.56, 84.0, 0.2, 0.5), (0.24, 4.41, 0.79, 2.43), (0.8, 8.0, 0.05, 30.0)]
    name = "mbgnbd" if mbg else "bgnbd"
    for r, alpha, a, b in cases:
        p = {k: np.array([[v]]) for k, v in dict(r=r, alpha=alpha, a=a, b=b).items()}
        for x, T in [(0, 13.0), (0, 150.0), (2, 150.0)]:
            got = P.expected_given_alive(name, 52.0, p, np.array([[float(x)]]), np.array([[T]]))[0, 0]
            ref = _bg_given_alive_by_integral(r, alpha, a, b, x, T, 52.0, mbg)
            assert got == pytest.approx(ref, rel=1e-7), (r, alpha, a, b, x, T)
