"""Holdout validation on the CDNOW sample (Fader, Hardie & Lee 2005a, section 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbcv.models import BetaGeoModel, ParetoNBDModel, SamplerSettings
from cbcv.valuation import holdout as V


@pytest.fixture(scope="module")
def bg_map(cdnow_weekly):
    model = BetaGeoModel()
    model.fit(cdnow_weekly, SamplerSettings(method="map"))
    return model


def test_holdout_totals_and_conditional_expectations(bg_map, cdnow_weekly) -> None:
    totals = V.holdout_totals(bg_map, cdnow_weekly)
    assert totals.actual == cdnow_weekly["x_holdout"].sum()
    # BG/NBD at its MLE under-predicts CDNOW's holdout by about a tenth (FHL 2005a, Fig. 2)
    assert -15 < totals.error_pct < 0
    ce = V.conditional_expectations(bg_map, cdnow_weekly)
    assert list(ce["x"]) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert ce["customers"].sum() == 2357
    by_x = cdnow_weekly.assign(g=np.minimum(cdnow_weekly["x"], 7)).groupby("g")["x_holdout"].mean()
    np.testing.assert_allclose(ce["actual"], by_x.to_numpy())
    # the model's conditional expectations rise with calibration frequency, as in the paper
    assert np.all(np.diff(ce["predicted"].to_numpy()[:7]) > 0)
    assert ce.loc[0, "predicted"] == pytest.approx(ce.loc[0, "actual"], abs=0.1)


def test_tracking_and_p_alive_and_ppc(bg_map, cdnow_sample_tx, cdnow_weekly) -> None:
    track = V.tracking(bg_map, cdnow_sample_tx, calibration_end="1997-09-30", holdout_end="1998-06-30",
                       zero_amount_purchases=True)
    assert len(track) == 78 and track["holdout"].sum() == 39
    cal = track[~track["holdout"]].iloc[-1]
    assert cal["actual"] == 2457  # calibration repeat transactions
    assert track["actual"].iloc[-1] == 2457 + cdnow_weekly["x_holdout"].sum()
    assert cal["expected"] == pytest.approx(2457, rel=0.05)
    assert np.all(np.diff(track["expected"]) >= 0)

    cal_table = V.p_alive_calibration(bg_map, cdnow_weekly)
    assert cal_table["customers"].sum() == 2357
    lows = cal_table["p_alive_bin"].str.split("–").str[0].astype(float)
    assert ((cal_table["mean_p_alive"] >= lows) & (cal_table["mean_p_alive"] <= lows + 0.1)).all()
    # customers with no repeat purchase have P(alive) = 1 under BG/NBD: all in the top bin
    top = cal_table.iloc[-1]
    assert top["customers"] >= (cdnow_weekly["x"] == 0).sum()

    ppc = V.frequency_ppc(bg_map, cdnow_weekly, n_draws=20)
    assert ppc["observed"].sum() == 2357
    # the observed histogram lies within (a slightly widened) replicated range
    assert ((ppc["observed"] >= 0.9 * ppc["replicated_low"] - 10) & (ppc["observed"] <= 1.1 * ppc["replicated_high"] + 10)).all()


def test_compare_models_with_loo(cdnow_weekly) -> None:
    bg = BetaGeoModel()
    bg.fit(cdnow_weekly, SamplerSettings(draws=200, tune=200, chains=1, seed=3))
    pn = ParetoNBDModel()
    pn.fit(cdnow_weekly, SamplerSettings(method="map"))
    table = V.compare_models({"bgnbd": bg, "pareto_nbd": pn}, cdnow_weekly)
    assert list(table["model"]) == ["bgnbd", "pareto_nbd"]
    row = table.iloc[0]
    # elpd_loo is close to the maximised log-likelihood (-9582.4) less the effective parameters
    assert -9600 < row["elpd_loo"] < -9582 and 0 < row["p_loo"] < 10
    assert np.isnan(table.iloc[1]["elpd_loo"])  # a MAP fit has no LOO


def _counted(cal_hold):
    """One row per distinct calibration/holdout summary with its customers, as out of core."""
    keys = ["x", "t_x", "T", "x_holdout", "T_holdout"]
    return cal_hold.groupby(keys, as_index=False).size().rename(columns={"size": "count"})


def test_counted_summary_gives_the_per_customer_figures(bg_map, cdnow_weekly, monkeypatch) -> None:
    counted = _counted(cdnow_weekly)
    assert len(counted) < len(cdnow_weekly) and counted["count"].sum() == 2357
    monkeypatch.setattr(V, "BLOCK_ELEMENTS", 97)  # many small blocks: the sums run across them
    a, b = V.holdout_totals(bg_map, cdnow_weekly), V.holdout_totals(bg_map, counted)
    assert a.actual == b.actual
    np.testing.assert_allclose(a.predicted, b.predicted, rtol=1e-12)
    ce_a, ce_b = V.conditional_expectations(bg_map, cdnow_weekly), V.conditional_expectations(bg_map, counted)
    np.testing.assert_allclose(ce_a[["customers", "actual", "predicted"]], ce_b[["customers", "actual", "predicted"]], rtol=1e-12)
    pa_a, pa_b = V.p_alive_calibration(bg_map, cdnow_weekly), V.p_alive_calibration(bg_map, counted)
    assert pa_a["p_alive_bin"].tolist() == pa_b["p_alive_bin"].tolist()
    np.testing.assert_allclose(pa_a.drop(columns="p_alive_bin"), pa_b.drop(columns="p_alive_bin"), rtol=1e-12)
    pp_a = V.frequency_ppc(bg_map, cdnow_weekly, n_draws=5)
    pp_b = V.frequency_ppc(bg_map, counted, n_draws=5)
    assert pp_a["observed"].tolist() == pp_b["observed"].tolist() and not pp_b.attrs["sampled"]
    monkeypatch.setattr(V, "PPC_CUSTOMERS", 1000)
    sampled = V.frequency_ppc(bg_map, counted, n_draws=5)
    assert sampled.attrs["sampled"] and sampled["observed"].sum() == 1000


def test_weighted_loo_equals_arviz_per_customer(cdnow_weekly) -> None:
    import arviz as az

    bg = BetaGeoModel()
    bg.fit(_counted(cdnow_weekly), SamplerSettings(draws=150, tune=150, chains=1, seed=5))
    ours = V.weighted_loo(bg)
    ll = bg.log_likelihood(expand=True)  # one column per customer
    assert ll.shape[-1] == 2357
    ref = az.loo(az.InferenceData(posterior=bg.idata.posterior, log_likelihood=ll.to_dataset(name="obs")))
    assert ours["elpd_loo"] == pytest.approx(float(ref.elpd_loo), rel=1e-9)
    assert ours["se"] == pytest.approx(float(ref.se), rel=1e-6)
    assert ours["p_loo"] == pytest.approx(float(ref.p_loo), rel=1e-6)
    table = V.compare_models({"bgnbd": bg}, _counted(cdnow_weekly))
    per_customer = V.compare_models({"bgnbd": bg}, cdnow_weekly)
    np.testing.assert_allclose(table.drop(columns="model"), per_customer.drop(columns="model"), rtol=1e-9)


def test_tracking_reads_a_parquet_log_out_of_core(bg_map, cdnow_sample_tx, tmp_path) -> None:
    path = tmp_path / "accepted.parquet"
    cdnow_sample_tx.to_parquet(path)
    kw = {"calibration_end": "1997-09-30", "holdout_end": "1998-06-30"}
    a = V.tracking(bg_map, cdnow_sample_tx, **kw)
    b = V.tracking(bg_map, path, **kw)
    assert a.equals(b)
    # customers acquired after the calibration end are left out of both series
    late = cdnow_sample_tx.assign(customer_id="late", date=np.datetime64("1997-12-01"))
    c = V.tracking(bg_map, pd.concat([cdnow_sample_tx, late.head(3)]), **kw)
    assert c["actual"].equals(a["actual"])


def test_loo_thins_draws_to_its_memory_cap(cdnow_weekly) -> None:
    bg = BetaGeoModel()
    bg.fit(_counted(cdnow_weekly), SamplerSettings(draws=300, tune=150, chains=1, seed=5))
    rows = len(bg.arrays["weight"])
    full = V.weighted_loo(bg)
    thinned = V.weighted_loo(bg, max_elements=250 * rows)
    assert full["draws"] == 300 and thinned["draws"] == 250
    assert thinned["elpd_loo"] == pytest.approx(full["elpd_loo"], rel=1e-3)
    assert V.weighted_loo(bg, max_elements=100 * rows) is None  # fewer than LOO_MIN_DRAWS: not computed


def test_compare_models_names_the_fits_without_loo(cdnow_weekly, monkeypatch) -> None:
    bg = BetaGeoModel()
    bg.fit(_counted(cdnow_weekly), SamplerSettings(draws=100, tune=100, chains=1, seed=5))
    assert V.compare_models({"bgnbd": bg}, _counted(cdnow_weekly)).attrs["loo_skipped"] == []
    monkeypatch.setattr(V, "LOO_ELEMENTS", 1000)
    table = V.compare_models({"bgnbd": bg}, _counted(cdnow_weekly))
    assert table.attrs["loo_skipped"] == ["bgnbd"] and np.isnan(table.loc[0, "elpd_loo"])
