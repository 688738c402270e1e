"""Holdout validation on the CDNOW sample (Fader, Hardie & Lee 2005a, section 5)."""

from __future__ import annotations

import numpy as np
import pytest

from cbcv import validation as V
from cbcv.models import BetaGeoModel, ParetoNBDModel, SamplerSettings


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
    track = V.tracking(
        bg_map, cdnow_sample_tx, cdnow_weekly, calibration_end="1997-09-30", holdout_end="1998-06-30"
    )
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
