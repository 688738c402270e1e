"""Simulated customer bases checked against the models' published closed forms.

References: Fader, Hardie & Lee (2005a) "Counting Your Customers the Easy Way", Marketing Science
24(2) (BG/NBD: likelihood eq. 6, E[X(t)] eq. 7, P(X(t) = x) eq. 8); Fader & Hardie (2005) "A Note
on Deriving the Pareto/NBD Model and Related Expressions" (likelihood, E[X(t)]); Fader, Hardie &
Lee (2005b) "RFM and CLV", J. Marketing Research 42(4) and Fader & Hardie (2013) "The Gamma-Gamma
Model of Monetary Value" (marginal density of the mean spend, population mean p gamma / (q - 1)).
Every expected value here is computed in this file from those formulas, independently of the
simulator's code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats
from scipy.special import betaln, gammaln, hyp2f1

from cbcv.core.errors import ConfigError
from cbcv.data.simulate import (
    CDNOW_BGNBD,
    CDNOW_GAMMA_GAMMA,
    CDNOW_PARETO_NBD,
    RNG_BLOCK,
    BGNBDParams,
    GammaGammaParams,
    ParetoNBDParams,
    iter_simulated_transactions,
    simulate_summaries,
    simulate_transactions,
    write_parquet,
)
from cbcv.data.transactions import to_daily

#: 99.9 % point of chi-square with 4 and 3 degrees of freedom (likelihood-ratio tests).
CHI2_999_4DF = stats.chi2.ppf(0.999, 4)
CHI2_999_3DF = stats.chi2.ppf(0.999, 3)
Z = 4.0  # tolerance in standard errors for means


# ------------------------------------------------------------------------------- closed forms


def bgnbd_expected_x(par: BGNBDParams, t: np.ndarray | float) -> np.ndarray:
    """FHL (2005a) eq. 7."""
    r, alpha, a, b = par.r, par.alpha, par.a, par.b
    z = np.asarray(t) / (alpha + np.asarray(t))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))


def bgnbd_pmf(par: BGNBDParams, t: float, x: int) -> float:
    """FHL (2005a) eq. 8."""
    r, alpha, a, b = par.r, par.alpha, par.a, par.b
    nbd = lambda j: np.exp(  # noqa: E731
        gammaln(r + j) - gammaln(r) - gammaln(j + 1) + r * np.log(alpha / (alpha + t))
        + j * np.log(t / (alpha + t))
    )
    out = np.exp(betaln(a, b + x) - betaln(a, b)) * nbd(x)
    if x > 0:
        out += np.exp(betaln(a + 1, b + x - 1) - betaln(a, b)) * (
            1 - sum(nbd(j) for j in range(x))
        )
    return float(out)


def bgnbd_loglik(par: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """FHL (2005a) eq. 6, summed over customers."""
    r, alpha, a, b = par
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    l1 = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + T)
    l2 = np.where(
        x > 0,
        betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) + common
        - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return float(np.logaddexp(l1, l2).sum())


def pareto_expected_x(par: ParetoNBDParams, t: np.ndarray | float) -> np.ndarray:
    """Fader & Hardie (2005 note) E[X(t)] = r beta / (alpha (s - 1)) [1 - (beta / (beta + t))^(s-1)]."""
    r, alpha, s, beta = par.r, par.alpha, par.s, par.beta
    return r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + np.asarray(t))) ** (s - 1))


def pareto_loglik(par: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """Fader & Hardie (2005 note) Pareto/NBD likelihood, summed over customers."""
    r, alpha, s, beta = par
    rsx = r + s + x
    if alpha >= beta:
        big, other = alpha, s + 1
    else:
        big, other = beta, r + x
    gap = abs(alpha - beta)
    a0 = hyp2f1(rsx, other, rsx + 1, gap / (big + t_x)) / (big + t_x) ** rsx - hyp2f1(
        rsx, other, rsx + 1, gap / (big + T)
    ) / (big + T) ** rsx
    term1 = 1.0 / ((alpha + T) ** (r + x) * (beta + T) ** s)
    ll = (
        gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        + np.log(term1 + s / rsx * a0)
    )
    return float(ll.sum())


def gamma_gamma_loglik(par: np.ndarray, x: np.ndarray, zbar: np.ndarray) -> float:
    """Fader & Hardie (2013 note) eq. 4: density of the mean of x gamma-gamma values."""
    p, q, g = par
    px = p * x
    ll = (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + (px - 1) * np.log(zbar)
        + px * np.log(x) - (px + q) * np.log(g + x * zbar)
    )
    return float(ll.sum())


def lr_statistic(loglik, truth: np.ndarray, *data) -> float:
    """2 (max LL - LL at the truth), the optimum searched on the log scale from the truth."""
    neg = lambda lp: -loglik(np.exp(lp), *data)  # noqa: E731
    res = optimize.minimize(neg, np.log(truth), method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 4000})
    return 2.0 * (-res.fun - loglik(truth, *data))


def assert_mean_close(sample: np.ndarray, expected: float, z: float = Z) -> None:
    se = np.std(sample, ddof=1) / np.sqrt(len(sample))
    assert abs(np.mean(sample) - expected) < z * se, (np.mean(sample), expected, se)


# ------------------------------------------------------------------------------- BG/NBD


@pytest.fixture(scope="module")
def bg_summaries() -> pd.DataFrame:
    return simulate_summaries(CDNOW_BGNBD, 200_000, 39.0, T_holdout=39.0, seed=11,
                              spend=CDNOW_GAMMA_GAMMA)


def test_bgnbd_mean_transactions_match_eq7(bg_summaries):
    s = bg_summaries
    assert_mean_close(s["x"].to_numpy(), bgnbd_expected_x(CDNOW_BGNBD, 39.0))
    assert_mean_close((s["x"] + s["x_holdout"]).to_numpy(), bgnbd_expected_x(CDNOW_BGNBD, 78.0))


def test_bgnbd_count_distribution_matches_eq8(bg_summaries):
    x = bg_summaries["x"].to_numpy()
    n = len(x)
    for k in range(6):
        p = bgnbd_pmf(CDNOW_BGNBD, 39.0, k)
        se = np.sqrt(p * (1 - p) / n)
        assert abs(np.mean(x == k) - p) < Z * se, (k, np.mean(x == k), p)
    # P(X(t) = 0) = (alpha / (alpha + t))^r: a customer is alive until a repeat purchase.
    assert bgnbd_pmf(CDNOW_BGNBD, 39.0, 0) == pytest.approx((4.414 / 43.414) ** 0.243)


def test_bgnbd_dropout_truth():
    """Given lambda and p the dropout time is Exponential(lambda p) (a geometric number of
    exponential gaps), so P(alive at T) = E_p[(alpha / (alpha + p T))^r] over p ~ Beta(a, b)."""
    par = BGNBDParams(r=1.5, alpha=6.0, a=2.0, b=5.0)
    ages = np.linspace(5.0, 60.0, 100_000)
    s = simulate_summaries(par, ages.size, ages, seed=4)
    for lo, hi in [(5.0, 20.0), (40.0, 60.0)]:
        sel = (ages >= lo) & (ages < hi)
        expected = np.mean([
            integrate.quad(lambda p, t=t: (par.alpha / (par.alpha + p * t)) ** par.r
                           * stats.beta.pdf(p, par.a, par.b), 0, 1)[0]
            for t in np.linspace(lo, hi, 41)[:-1] + (hi - lo) / 80
        ])
        alive = s.loc[sel, "alive"].to_numpy()
        assert abs(alive.mean() - expected) < Z * np.sqrt(expected * (1 - expected) / alive.size)
    # dead customers dropped out right after their last purchase
    dead = s[~s["alive"]]
    assert (dead["x"] >= 1).all()
    np.testing.assert_allclose(dead["t_x"], dead["dropout"])
    assert (s["t_x"] <= s["T"]).all() and ((s["x"] == 0) == (s["t_x"] == 0)).all()
    # heterogeneous T: the sample mean matches eq. 7 averaged over the customers' T
    assert_mean_close(s["x"].to_numpy(), float(np.mean(bgnbd_expected_x(par, ages))))


def test_bgnbd_likelihood_ratio_at_truth():
    """The joint (x, t_x) law: the true parameters are not rejected by an LR test on eq. 6."""
    par = BGNBDParams(r=0.8, alpha=3.0, a=1.2, b=2.5)
    T = np.linspace(20.0, 52.0, 20_000)
    s = simulate_summaries(par, T.size, T, seed=21)
    stat = lr_statistic(bgnbd_loglik, np.array([par.r, par.alpha, par.a, par.b]),
                        s["x"].to_numpy(), s["t_x"].to_numpy(), T)
    assert 0.0 <= stat < CHI2_999_4DF


# ------------------------------------------------------------------------------- Pareto/NBD


def test_pareto_mean_transactions_and_survival():
    s = simulate_summaries(CDNOW_PARETO_NBD, 200_000, 39.0, T_holdout=39.0, seed=12)
    assert_mean_close(s["x"].to_numpy(), pareto_expected_x(CDNOW_PARETO_NBD, 39.0))
    assert_mean_close((s["x"] + s["x_holdout"]).to_numpy(),
                      pareto_expected_x(CDNOW_PARETO_NBD, 78.0))
    # P(tau > T) = (beta / (beta + T))^s
    surv = (CDNOW_PARETO_NBD.beta / (CDNOW_PARETO_NBD.beta + 39.0)) ** CDNOW_PARETO_NBD.s
    assert abs(s["alive"].mean() - surv) < Z * np.sqrt(surv * (1 - surv) / len(s))
    assert ((s["dropout"] > s["T"]) == s["alive"]).all()


def test_pareto_likelihood_ratio_at_truth():
    par = ParetoNBDParams(r=0.9, alpha=5.0, s=0.7, beta=9.0)
    T = np.linspace(20.0, 52.0, 20_000)
    s = simulate_summaries(par, T.size, T, seed=22)
    stat = lr_statistic(pareto_loglik, np.array([par.r, par.alpha, par.s, par.beta]),
                        s["x"].to_numpy(), s["t_x"].to_numpy(), T)
    assert 0.0 <= stat < CHI2_999_4DF


# ------------------------------------------------------------------------------- spend


def test_gamma_gamma_mean_and_likelihood(bg_summaries):
    s = bg_summaries[bg_summaries["x"] > 0]
    gg = CDNOW_GAMMA_GAMMA
    assert gg.mean_spend == pytest.approx(6.25 * 15.44 / 2.74)
    # nu is independent of x, so the per-customer mean spend averages to p gamma / (q - 1)
    assert_mean_close(s["mean_repeat_spend"].to_numpy(), gg.p * gg.gamma / (gg.q - 1))
    # ... and to p / nu given nu
    assert_mean_close((s["mean_repeat_spend"] * s["nu"] / gg.p).to_numpy(), 1.0)
    sub = s.iloc[:20_000]
    stat = lr_statistic(gamma_gamma_loglik, np.array([gg.p, gg.q, gg.gamma]),
                        sub["x"].to_numpy().astype(float), sub["mean_repeat_spend"].to_numpy())
    assert 0.0 <= stat < CHI2_999_3DF
    assert bg_summaries.loc[bg_summaries["x"] == 0, "mean_repeat_spend"].isna().all()


# ------------------------------------------------------------------------------- calendar logs

KW = dict(start="2020-01-01", acquisition_end="2020-03-31", end="2021-06-30")


@pytest.fixture(scope="module")
def bg_log():
    return simulate_transactions(CDNOW_BGNBD, 30_000, **KW, spend=CDNOW_GAMMA_GAMMA, seed=7)


def test_log_contract_and_acquisition_range(bg_log):
    tx, truth = bg_log.transactions, bg_log.truth
    assert list(tx.columns) == ["customer_id", "date", "amount"]
    assert tx["customer_id"].dtype == pd.Series(["a"]).astype(str).dtype
    assert tx["date"].dtype == "datetime64[ns]" and tx["amount"].dtype == "float64"
    assert (tx["date"] == tx["date"].dt.normalize()).all()
    assert truth["customer_id"].is_unique and len(truth) == 30_000
    assert set(tx["customer_id"]) == set(truth["customer_id"])
    acq = truth["acquisition_date"]
    assert acq.min() >= pd.Timestamp("2020-01-01") and acq.max() <= pd.Timestamp("2020-03-31")
    assert tx["date"].min() >= pd.Timestamp("2020-01-01")
    assert tx["date"].max() <= pd.Timestamp("2021-06-30")
    first = tx.groupby("customer_id", sort=True)["date"].min()
    pd.testing.assert_series_equal(
        first.reset_index(drop=True), truth.sort_values("customer_id")["acquisition_date"]
        .reset_index(drop=True), check_names=False,
    )
    # sorted by customer, then date
    assert tx["customer_id"].is_monotonic_increasing
    assert (tx.groupby("customer_id")["date"].diff().dropna() >= pd.Timedelta(0)).all()
    # uniform acquisition over 91 days: mean day offset 45, sd sqrt((91^2 - 1) / 12)
    offset = (acq - pd.Timestamp("2020-01-01")).dt.days.to_numpy()
    assert abs(offset.mean() - 45.0) < Z * np.sqrt((91**2 - 1) / 12 / offset.size)
    # T runs from the first purchase instant to the end of the last day, in weeks
    days_left = (pd.Timestamp("2021-07-01") - acq).dt.days.to_numpy()
    assert np.all((truth["T"] * 7 <= days_left) & (truth["T"] * 7 > days_left - 1))


def test_log_counts_match_eq7_before_merging(bg_log):
    """Rows per customer - 1 are the continuous-time repeat purchases: eq. 7 at each T."""
    rows = bg_log.transactions.groupby("customer_id").size()
    repeat = rows.reindex(bg_log.truth["customer_id"]).to_numpy() - 1
    assert_mean_close(repeat, float(np.mean(bgnbd_expected_x(CDNOW_BGNBD, bg_log.truth["T"]))))


def test_log_spend_mean(bg_log):
    gg = CDNOW_GAMMA_GAMMA
    amounts = bg_log.transactions["amount"].to_numpy()
    assert (amounts > 0).all()
    # per-customer means are i.i.d. given nothing; their mean over customers is p gamma / (q - 1)
    per_customer = bg_log.transactions.groupby("customer_id")["amount"].mean().to_numpy()
    assert_mean_close(per_customer, gg.p * gg.gamma / (gg.q - 1))


def test_same_day_merges_are_the_only_change_in_to_daily(bg_log):
    tx = bg_log.transactions
    daily = to_daily(tx)
    assert len(daily) == len(tx.drop_duplicates(["customer_id", "date"]))
    assert daily["n_rows"].sum() == len(tx)
    np.testing.assert_allclose(daily["amount"].sum(), tx["amount"].sum(), rtol=1e-12)
    lost = (len(tx) - len(daily)) / (len(tx) - len(bg_log.truth))
    assert 0.0 < lost < 0.02  # default CDNOW-like weekly setting: well under 2 % (~1.4 %)


def test_same_day_merge_rate_matches_calendar_rounding():
    """Pareto/NBD (lifetime independent of lambda): a purchase shares its day with an earlier one
    with probability 1 - (1 - e^-m) / m, m = lambda / 7, averaged over the purchase-weighted
    (size-biased, Gamma(r + 1, alpha)) rates. Purchases on the acquisition day after the first
    one add a little (~4 % relative here), hence the 10 % tolerance."""
    par = ParetoNBDParams(r=2.0, alpha=4.0, s=0.6, beta=12.0)
    log = simulate_transactions(par, 20_000, **KW, seed=5)
    tx = log.transactions
    lost = (len(tx) - len(to_daily(tx))) / (len(tx) - len(log.truth))
    expected = integrate.quad(
        lambda lam: (1 - (1 - np.exp(-lam / 7)) / (lam / 7))
        * stats.gamma.pdf(lam, par.r + 1, scale=1 / par.alpha),
        0, np.inf,
    )[0]
    assert lost == pytest.approx(expected, rel=0.10)


def test_acquisition_weights():
    weights = np.zeros(91)
    weights[[10, 50]] = [1.0, 3.0]
    log = simulate_transactions(CDNOW_PARETO_NBD, 8_000, **KW, acquisition=weights, seed=3)
    days = (log.truth["acquisition_date"] - pd.Timestamp("2020-01-01")).dt.days
    assert set(days) == {10, 50}
    share = np.mean(days == 50)
    assert abs(share - 0.75) < Z * np.sqrt(0.75 * 0.25 / days.size)


# ------------------------------------------------------------------------------- randomness


def test_seeds_reproduce_and_differ():
    a = simulate_summaries(CDNOW_BGNBD, 5_000, 30.0, seed=1)
    pd.testing.assert_frame_equal(a, simulate_summaries(CDNOW_BGNBD, 5_000, 30.0, seed=1))
    assert not a["lambda"].equals(simulate_summaries(CDNOW_BGNBD, 5_000, 30.0, seed=2)["lambda"])
    la = simulate_transactions(CDNOW_BGNBD, 3_000, **KW, seed=1)
    lb = simulate_transactions(CDNOW_BGNBD, 3_000, **KW, seed=1)
    pd.testing.assert_frame_equal(la.transactions, lb.transactions)
    pd.testing.assert_frame_equal(la.truth, lb.truth)
    unseeded = simulate_transactions(CDNOW_BGNBD, 100, **KW)
    again = simulate_transactions(CDNOW_BGNBD, 100, **KW, seed=unseeded.seed)
    pd.testing.assert_frame_equal(unseeded.transactions, again.transactions)


def test_chunking_does_not_change_the_draws():
    n = 2 * RNG_BLOCK + 1_234
    kw = dict(**KW, spend=CDNOW_GAMMA_GAMMA, seed=9)
    whole = simulate_transactions(CDNOW_PARETO_NBD, n, **kw, chunk_size=10 * n)
    chunks = list(iter_simulated_transactions(CDNOW_PARETO_NBD, n, **kw, chunk_size=1_000))
    assert [len(t) for _, t in chunks] == [1_000] * (n // 1_000) + [n % 1_000]
    tx = pd.concat([c[0] for c in chunks], ignore_index=True)
    truth = pd.concat([c[1] for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(tx, whole.transactions)
    pd.testing.assert_frame_equal(truth, whole.truth)
    # same latent parameters as the summaries for the same seed
    s = simulate_summaries(CDNOW_PARETO_NBD, n, 30.0, seed=9, spend=CDNOW_GAMMA_GAMMA)
    np.testing.assert_array_equal(s["lambda"], whole.truth["lambda"])
    np.testing.assert_array_equal(s["nu"], whole.truth["nu"])


def test_write_parquet_round_trip_and_loader(tmp_path):
    from cbcv.data.load import load_transactions

    kw = dict(**KW, spend=GammaGammaParams(p=4.0, q=3.0, gamma=20.0), seed=13)
    out = write_parquet(tmp_path / "log.parquet", CDNOW_BGNBD, 5_000, **kw, chunk_size=2_000,
                        truth_path=tmp_path / "truth.parquet")
    ref = simulate_transactions(CDNOW_BGNBD, 5_000, **kw)
    back = pd.read_parquet(out.path)
    back["customer_id"] = back["customer_id"].astype(str)
    pd.testing.assert_frame_equal(back, ref.transactions)
    assert out.n_transactions == len(ref.transactions) and out.n_customers == 5_000
    truth = pd.read_parquet(out.truth_path)
    np.testing.assert_array_equal(truth["lambda"], ref.truth["lambda"])
    loaded = load_transactions(out.path)
    assert loaded.reconciliation.rows_rejected == 0
    assert loaded.reconciliation.rows_accepted == len(ref.transactions)


def test_summary_pipeline_on_simulated_log(bg_log):
    """customer_summary on the log gives x <= the continuous-time count, off only by merges."""
    from cbcv.data.summary import customer_summary

    summ = customer_summary(bg_log.transactions, calibration_end="2021-06-30", time_unit="week")
    assert len(summ) == len(bg_log.truth)
    rows = bg_log.transactions.groupby("customer_id").size()
    cont = rows.reindex(summ["customer_id"]).to_numpy() - 1
    assert (summ["x"].to_numpy() <= cont).all()
    assert summ["x"].sum() >= 0.97 * cont.sum()
    truth_T = bg_log.truth.set_index("customer_id")["T"].reindex(summ["customer_id"]).to_numpy()
    assert np.all(np.abs(summ["T"].to_numpy() - truth_T) < 1 / 7)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call",
    [
        lambda: BGNBDParams(r=-1.0, alpha=1.0, a=1.0, b=1.0),
        lambda: ParetoNBDParams(r=1.0, alpha=float("nan"), s=1.0, beta=1.0),
        lambda: simulate_summaries(CDNOW_BGNBD, 0, 10.0, seed=1),
        lambda: simulate_summaries(CDNOW_BGNBD, 3, [1.0, 2.0], seed=1),
        lambda: simulate_summaries(CDNOW_BGNBD, 3, -1.0, seed=1),
        lambda: simulate_summaries(CDNOW_GAMMA_GAMMA, 3, 1.0, seed=1),
        lambda: simulate_transactions(CDNOW_BGNBD, 10, start="2020-02-01",
                                      acquisition_end="2020-01-01", end="2020-03-01", seed=1),
        lambda: simulate_transactions(CDNOW_BGNBD, 10, **KW, time_unit="fortnight", seed=1),
        lambda: simulate_transactions(CDNOW_BGNBD, 10, **KW, acquisition=np.ones(5), seed=1),
        lambda: simulate_transactions(CDNOW_BGNBD, 10, **KW, acquisition="linear", seed=1),
        lambda: simulate_transactions(CDNOW_BGNBD, 10, **KW, seed=1, chunk_size=0),
        lambda: simulate_transactions(CDNOW_BGNBD, 10, **KW, seed=-3),
        lambda: iter_simulated_transactions(CDNOW_BGNBD, 10, start="2020-01-01",
                                            acquisition_end="2020-03-31", end="2019-01-01"),
    ],
)
def test_bad_inputs_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()
