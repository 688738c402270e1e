"""Customer lifetime value over posterior draws: hand-computed values, sums, concentration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbcv import clv as C
from cbcv import predict as P
from cbcv.core.errors import CbcvError, DataError
from cbcv.models import BetaGeoModel, GammaGammaModel, ParetoNBDModel

BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)  # Fader, Hardie & Lee (2005a), CDNOW
PN = dict(r=0.553, alpha=10.578, s=0.606, beta=11.669)  # Fader, Hardie & Lee (2005b), CDNOW
GG = dict(p=6.25, q=3.74, gamma=15.44)  # Fader, Hardie & Lee (2005b), CDNOW spend

SUMMARY = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e"],
        "cohort": ["1997Q1", "1997Q1", "1997Q2", "1997Q2", "1997Q3"],
        "x": [0, 2, 5, 1, 7],
        "t_x": [0.0, 30.43, 35.0, 10.0, 20.0],
        "T": [38.86, 38.86, 38.0, 20.0, 25.0],
        "mean_repeat_spend": [np.nan, 40.0, 20.0, 100.0, 12.5],
    }
)


def _fixed(cls, **values):
    """A model 'fitted' to fixed values: one draw per value (a list gives several draws)."""
    import arviz as az

    model = cls()
    model.idata = az.from_dict(posterior={k: np.atleast_1d(np.asarray(v, dtype=float))[None, :] for k, v in values.items()})
    return model


def _gg_by_hand(p, q, gamma, x, zbar):
    """Fader, Hardie & Lee (2005b), eq. 5."""
    zbar = np.where(x > 0, zbar, 0.0)
    return p * (gamma + x * zbar) / (p * x + q - 1)


@pytest.mark.parametrize("cls, params", [(BetaGeoModel, BG), (ParetoNBDModel, PN)])
def test_one_draw_clv_is_margin_times_spend_times_dert(cls, params) -> None:
    freq, spend = _fixed(cls, **params), _fixed(GammaGammaModel, **GG)
    res = C.customer_clv(freq, spend, SUMMARY, margin=0.3, annual_discount_rate=0.15, time_unit="week")
    delta = np.log(1.15) * 7 / 365.25
    dert = P.dert(freq, SUMMARY, delta=delta)[0]
    spend_hand = _gg_by_hand(6.25, 3.74, 15.44, SUMMARY["x"].to_numpy(), SUMMARY["mean_repeat_spend"].to_numpy())
    assert spend_hand[0] == pytest.approx(6.25 * 15.44 / 2.74)  # no repeat purchase: population mean
    expected = 0.3 * spend_hand * dert
    np.testing.assert_allclose(res.customers["clv_mean"], expected, rtol=1e-12)
    np.testing.assert_allclose(res.draws[0], expected, rtol=1e-12)
    assert res.total[0] == pytest.approx(expected.sum())
    np.testing.assert_allclose(res.customers["p_alive_mean"], P.p_alive(freq, SUMMARY)[0])
    # the customer id is kept in the per-customer table but never in the top-customer table
    assert list(res.customers["customer_id"]) == list("abcde")
    top = res.top_customers(3)
    assert "customer_id" not in top.columns
    assert list(top["rank"]) == [1, 2, 3]
    assert top["clv_mean"].iloc[0] == pytest.approx(expected.max())


def test_concentration_on_a_hand_made_base() -> None:
    # p=1, q=2, gamma=0 and x=1: expected spend = zbar / 2; identical (x, t_x, T) so equal DERT.
    # One customer spends 100, 99 spend 1: top 1% holds 100/199, top 10% (10 customers) 109/199.
    zbar = np.r_[1.0 * np.ones(50), 100.0, np.ones(49)]
    base = pd.DataFrame({"x": 1, "t_x": 10.0, "T": 30.0, "mean_repeat_spend": zbar})
    res = C.customer_clv(
        _fixed(BetaGeoModel, **BG), _fixed(GammaGammaModel, p=1.0, q=2.0, gamma=0.0), base,
        margin=0.5, annual_discount_rate=0.1, time_unit="week",
    )
    conc = res.concentration().set_index("customers")
    assert conc.loc["top 1%", "mean"] == pytest.approx(100 / 199)
    assert conc.loc["top 10%", "mean"] == pytest.approx(109 / 199)
    assert res.customers["rank"].iloc[50] == 1
    dec = res.by_decile()
    assert dec["customers"].tolist() == [10] * 10
    assert dec["share"].iloc[0] == pytest.approx(109 / 199)


def test_groups_deciles_and_concentration_by_hand() -> None:
    # One summary (x=1, t_x=10, T=30) so one DERT D per draw; p=1, q=2, gamma=0: spend = zbar / 2.
    # Customer i (1..100) has zbar = 2i, so it is worth margin * D * i: proportional to i.
    n = 100
    values = np.arange(1, n + 1, dtype=float)
    base = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "cohort": np.where(values <= 40, "A", "B"),
                         "x": 1, "t_x": 10.0, "T": 30.0, "mean_repeat_spend": 2 * values})
    freq = _fixed(BetaGeoModel, **BG)
    res = C.customer_clv(freq, _fixed(GammaGammaModel, p=1.0, q=2.0, gamma=0.0), base,
                         margin=0.5, annual_discount_rate=0.1, time_unit="week")
    unit = 0.5 * P.dert(freq, base.head(1), delta=np.log(1.1) * 7 / 365.25)[0, 0]
    total = values.sum()  # 5050
    np.testing.assert_allclose(res.total, unit * total, rtol=1e-12)
    by = res.by("cohort").set_index("cohort")
    assert by.loc["A", "median"] == pytest.approx(unit * values[:40].sum())
    assert by.loc["B", "median"] == pytest.approx(unit * values[40:].sum())
    assert by.loc["A", "customers"] == 40 and by["share"].sum() == pytest.approx(1.0)
    assert by.loc["A", "per_customer"] == pytest.approx(unit * values[:40].mean())
    dec = res.by("value_decile").set_index("value_decile")
    assert dec.loc[1, "mean"] == pytest.approx(unit * values[90:].sum())  # the ten most valuable
    assert dec.loc[10, "mean"] == pytest.approx(unit * values[:10].sum())
    assert (dec["customers"] == 10).all()
    conc = res.concentration().set_index("customers")
    assert conc.loc["top 1%", "median"] == pytest.approx(100 / total)
    assert conc.loc["top 10%", "median"] == pytest.approx(values[90:].sum() / total)
    cust = res.customers.set_index("customer_id")
    assert cust.loc["c99", "value_decile"] == 1 and cust.loc["c0", "value_decile"] == 10
    assert cust.loc["c99", "rank"] == 1 and cust.loc["c0", "rank"] == 100
    np.testing.assert_allclose(cust["clv_mean"], unit * values, rtol=1e-12)
    lorenz = res.lorenz()
    assert len(lorenz) == n + 1 and lorenz["clv_share"].iloc[10] == pytest.approx(values[90:].sum() / total)


def _multi_draw_models():
    bg = _fixed(BetaGeoModel, r=[0.24, 0.26, 0.22, 0.25], alpha=[4.4, 4.0, 4.8, 4.2],
                a=[0.79, 0.85, 0.7, 0.9], b=[2.4, 2.6, 2.2, 2.5])
    gg = _fixed(GammaGammaModel, p=[6.25, 6.0, 6.5, 6.1], q=[3.74, 3.9, 3.6, 3.8], gamma=[15.4, 16.0, 15.0, 15.8])
    return bg, gg


def test_per_draw_margin_and_rate_pair_draws_by_index() -> None:
    bg, gg = _multi_draw_models()
    margin = np.array([0.2, 0.25, 0.3, 0.35])
    rate = np.array([0.08, 0.10, 0.12, 0.15])
    res = C.customer_clv(bg, gg, SUMMARY, margin=margin, annual_discount_rate=rate, time_unit="week")
    assert res.n_draws == 4
    for d in range(4):  # draw d of each model, by hand, with draw d's margin and rate
        one_bg = _fixed(BetaGeoModel, **{k: v[d] for k, v in bg.draws().items()})
        one_gg = {k: v[d] for k, v in gg.draws().items()}
        dert = P.dert(one_bg, SUMMARY, delta=np.log1p(rate[d]) * 7 / 365.25)[0]
        spend = _gg_by_hand(one_gg["p"], one_gg["q"], one_gg["gamma"], SUMMARY["x"].to_numpy(),
                            SUMMARY["mean_repeat_spend"].to_numpy())
        np.testing.assert_allclose(res.draws[d], margin[d] * spend * dert, rtol=1e-10)
    np.testing.assert_allclose(res.total, res.draws.sum(axis=1))


def test_groups_sum_to_total_and_chunking_changes_nothing() -> None:
    bg, gg = _multi_draw_models()
    big = pd.concat([SUMMARY] * 7, ignore_index=True)
    big["channel"] = np.where(np.arange(len(big)) % 3 == 0, "web", "store")
    big.loc[::4, "mean_repeat_spend"] *= 1.5  # customers of one summary that spend differently
    kept = C.customer_clv(bg, gg, big, margin=0.3, annual_discount_rate=0.1, time_unit="week",
                          group_by=("cohort", "channel"), keep_draws=True)
    # one key (x, t_x, T) a chunk: many chunks in both passes
    streamed = C.customer_clv(bg, gg, big, margin=0.3, annual_discount_rate=0.1, time_unit="week",
                              group_by=("cohort", "channel"), keep_draws=False, max_bytes=1, threads=1)
    assert streamed.draws is None
    np.testing.assert_allclose(streamed.total, kept.total, rtol=1e-12)
    np.testing.assert_allclose(kept.total, kept.draws.sum(axis=1), rtol=1e-12)
    for col in ("cohort", "channel", "value_decile"):
        np.testing.assert_allclose(kept.group_draws[col].sum(axis=1), kept.total, rtol=1e-12)
        np.testing.assert_allclose(streamed.group_draws[col].to_numpy(), kept.group_draws[col].to_numpy(), rtol=1e-12)
        assert kept.by(col)["share"].sum() == pytest.approx(1.0)
    pd.testing.assert_frame_equal(streamed.concentration(), kept.concentration())
    pd.testing.assert_frame_equal(streamed.customers, kept.customers, rtol=1e-12)
    by_cohort = kept.by_cohort().set_index("cohort")
    assert by_cohort.loc["1997Q1", "customers"] == 14
    # the per-draw group, decile and top-customer sums, by hand from the kept draws
    v = kept.draws
    for c, label in (("cohort", "1997Q2"), ("channel", "web")):
        np.testing.assert_allclose(kept.group_draws[c][label], v[:, (big[c] == label).to_numpy()].sum(axis=1), rtol=1e-12)
    order = np.argsort(-v.mean(axis=0), kind="stable")
    np.testing.assert_array_equal(kept.customers["rank"].to_numpy()[order], np.arange(1, len(big) + 1))
    decile = 10 * np.argsort(order) // len(big) + 1
    np.testing.assert_array_equal(kept.customers["value_decile"], decile)
    for d in (1, 5, 10):
        np.testing.assert_allclose(kept.group_draws["value_decile"][d], v[:, decile == d].sum(axis=1), rtol=1e-12)
    top = order[: int(np.ceil(0.1 * len(big)))]
    np.testing.assert_allclose(kept.top_share_draws["top 10%"], v[:, top].sum(axis=1) / v.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(kept.customers["clv_mean"], v.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(kept.customers["clv_low"], np.quantile(v, 0.05, axis=0), rtol=1e-12)


def test_p_alive_histogram() -> None:
    # BG/NBD: a customer without repeat purchases is alive with probability 1 (Fader, Hardie &
    # Lee 2005a: dropout happens only after a purchase), so those land in the top bin.
    base = pd.DataFrame({"x": [0, 0, 0, 1, 4], "t_x": [0, 0, 0, 2.0, 5.0], "T": [30.0] * 5,
                         "mean_repeat_spend": [np.nan, np.nan, np.nan, 20.0, 30.0]})
    freq = _fixed(BetaGeoModel, **BG)
    res = C.customer_clv(freq, _fixed(GammaGammaModel, **GG), base, margin=1.0, annual_discount_rate=0.1, time_unit="week")
    hist = res.p_alive_distribution()
    pa = P.p_alive(freq, base)[0]
    expected = np.bincount(np.minimum((pa * 10).astype(int), 9), minlength=10)
    assert hist["customers"].tolist() == expected.tolist()
    assert hist["customers"].iloc[-1] >= 3
    assert hist["customers"].sum() == 5
    assert hist["share"].sum() == pytest.approx(1.0)


def test_clear_errors() -> None:
    bg, gg = _fixed(BetaGeoModel, **BG), _fixed(GammaGammaModel, **GG)
    with pytest.raises(CbcvError, match="gamma_gamma"):
        C.customer_clv(bg, bg, SUMMARY, margin=0.3, annual_discount_rate=0.1, time_unit="week")
    with pytest.raises(DataError, match="region"):
        C.customer_clv(bg, gg, SUMMARY, margin=0.3, annual_discount_rate=0.1, time_unit="week", group_by=("region",))
    res = C.customer_clv(bg, gg, SUMMARY, margin=0.3, annual_discount_rate=0.1, time_unit="week")
    with pytest.raises(CbcvError, match="group_by"):
        res.by("region")
    with pytest.raises(ValueError, match="margin"):
        C.customer_clv(bg, gg, SUMMARY, margin=np.ones(4), annual_discount_rate=0.1, time_unit="week")
    with pytest.raises(DataError, match="not finite"):  # q = 1: no finite mean spend without repeat purchases
        C.customer_clv(bg, _fixed(GammaGammaModel, p=6.25, q=1.0, gamma=15.44), SUMMARY, margin=0.3,
                       annual_discount_rate=0.1, time_unit="week")
    with pytest.raises(DataError, match="t_x"):
        C.customer_clv(bg, gg, SUMMARY.assign(t_x=SUMMARY["T"] + 1), margin=0.3, annual_discount_rate=0.1,
                       time_unit="week")
