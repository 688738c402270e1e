"""A company's valuation from its config (``cbcv value``): CDNOW sample with MAP fits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cbcv import predict as P
from cbcv.clv.scoring import score_customers
from cbcv.core.errors import ConfigError
from cbcv.models import BetaGeoModel, GammaGammaModel, ParetoNBDModel, SamplerSettings
from cbcv.pipeline import valuation as VC
from cbcv.valuation.acquisition import acquisitions_from_transactions
from cbcv.valuation.inputs import FinancialDraws

BG = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)  # Fader, Hardie & Lee (2005a), CDNOW
PN = dict(r=0.553, alpha=10.578, s=0.606, beta=11.669)  # Fader, Hardie & Lee (2005b), CDNOW
GG = dict(p=6.25, q=3.74, gamma=15.44)  # Fader, Hardie & Lee (2005b), CDNOW spend

CONFIG = """
company: {{name: CDNOW sample (test), currency: USD}}
data: {{source: cdnow-sample}}
as_of: 1998-06-30
calibration_end: 1997-09-30
holdout_end: 1998-06-30
time_unit: week
models: [bgnbd, gamma_gamma]
sampler: {{method: map}}
seed: 7
{financials}
"""
FINANCIALS = """
financials:                    # illustrative assumptions for the test only
  contribution_margin: 0.3
  discount_rate: 0.10
  fixed_costs: 1000
  shares_outstanding: 1000
  market_price: 20
  horizon_years: 10
  assumptions_note: illustrative test figures
"""


def _fixed(cls, **values):
    import arviz as az

    model = cls()
    model.idata = az.from_dict(posterior={k: np.array([[v]]) for k, v in values.items()})
    return model


def test_missing_financials_is_a_clear_config_error(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(financials=""), encoding="utf-8")
    with pytest.raises(ConfigError, match="financials: required"):
        VC.value_company(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_value_company_cdnow_sample(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(financials=FINANCIALS), encoding="utf-8")
    path = VC.value_company(cfg, tmp_path / "out")
    assert path == tmp_path / "out" / "valuation.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    bridge = record["bridge"]
    # a single acquisition cohort (Q1 1997): future customers at zero, with the reason given
    assert bridge["future_customer_equity"]["mean"] == 0.0
    assert record["future_customers"]["included"] is False
    assert "1 quarter(s) with new customers" in record["future_customers"]["note"]
    assert record["models"]["purchase"] == "bgnbd"
    assert record["models"]["n_draws"] == record["n_draws"] == 1
    assert record["assumptions_note"] == "illustrative test figures"
    # fixed costs: 1000 a year for 10 years, paid mid-year, at 10%
    pv_fixed = sum(1000 * 1.1 ** -(t - 0.5) for t in range(1, 11))
    assert bridge["pv_fixed_costs"]["mean"] == pytest.approx(pv_fixed, rel=1e-9)
    ce = bridge["existing_customer_equity"]["mean"]
    assert record["value_per_share"]["mean"] == pytest.approx((ce - pv_fixed) / 1000, rel=1e-9)
    assert record["prob_value_above_price"] == float(record["value_per_share"]["mean"] > 20)
    assert record["existing_customers"]["customers"] == 2357
    assert record["valuation_date"] == "1998-06-30"


def test_validate_then_refit_then_value_at_the_valuation_date(tmp_path) -> None:
    """The purchase model is chosen on the calibration fits; every model is then refitted on all
    data to the valuation date (as_of), and the CLV, the acquisitions and the revenue forecast are
    as of that date."""
    from cbcv.config import load_config
    from cbcv.data.datasets import load_dataset
    from cbcv.data.summary import customer_summary
    from cbcv.pipeline.workflow import load_company, load_fit

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(financials=FINANCIALS), encoding="utf-8")
    loaded = load_config(cfg)
    run = tmp_path / "run"
    valuation = VC.value_loaded(loaded, result=load_company(loaded, tmp_path / "work"), run_dir=run)
    record = valuation.to_json_dict()
    assert record["valuation_date"] == "1998-06-30"
    assert record["data_window"] == {"first_day": "1997-01-01", "last_day": "1998-06-30",
                                     "calibration_end": "1997-09-30"}
    assert record["revenue_forecast"]["periods"][:2] == ["1998Q3", "1998Q4"]
    fits = {folder: {n: load_fit(run / folder / n) for n in ("bgnbd", "gamma_gamma")}
            for folder in ("models", "refit")}
    assert {m["calibration_end"] for _, m in fits["models"].values()} == {"1997-09-30"}
    assert {m["calibration_end"] for _, m in fits["refit"].values()} == {"1998-06-30"}
    # the refit is the fit of the 78-week summary, not the 39-week one
    summary = customer_summary(load_dataset("cdnow-sample").transactions, calibration_end="1998-06-30",
                               zero_amount_purchases=True)
    direct = BetaGeoModel()
    direct.fit(summary, SamplerSettings(method="map", seed=7))
    refit_bg, calibration_bg = fits["refit"]["bgnbd"][0].draws(), fits["models"]["bgnbd"][0].draws()
    for name, value in direct.draws().items():
        assert refit_bg[name][0] == pytest.approx(value[0], rel=1e-3), name
    assert any(abs(refit_bg[k][0] / calibration_bg[k][0] - 1) > 0.02 for k in refit_bg)
    # existing customer equity: the refits' CLV of every customer at the valuation date
    scored = score_customers(fits["refit"]["bgnbd"][0], fits["refit"]["gamma_gamma"][0], summary,
                             tmp_path / "scored.parquet", margin=0.3, annual_discount_rate=0.10,
                             time_unit="week")
    assert record["bridge"]["existing_customer_equity"]["mean"] == pytest.approx(scored.total[0], rel=1e-9)
    # the model page's side-by-side table (notebook 02) holds both fits of every parameter
    from cbcv.pipeline.workflow import CompanyFits, fit_comparison, fit_record

    def as_fits(folder: str) -> CompanyFits:
        models = {n: m for n, (m, _) in fits[folder].items()}
        return CompanyFits(summary=summary, models=models, records={n: fit_record(m) for n, m in models.items()})

    table = fit_comparison(as_fits("models"), as_fits("refit"))
    row = table.set_index(["model", "parameter"]).loc[("bgnbd", "r")]
    assert row["mean_calibration"] == pytest.approx(calibration_bg["r"][0])
    assert row["mean_refit"] == pytest.approx(refit_bg["r"][0])


def test_purchase_model_choice_uses_the_holdout(cdnow_weekly) -> None:
    models = {"bgnbd": _fixed(BetaGeoModel, **BG), "pareto_nbd": _fixed(ParetoNBDModel, **PN)}
    name, reason = VC.choose_purchase_model(models, cdnow_weekly)
    assert name in models and "holdout" in reason
    only, why = VC.choose_purchase_model({"pareto_nbd": models["pareto_nbd"]}, cdnow_weekly)
    assert only == "pareto_nbd" and "only" in why
    with pytest.raises(ConfigError, match="purchase model"):
        VC.choose_purchase_model({}, cdnow_weekly)


def _acquisition_log(n_quarters: int = 12, per_quarter: int = 40) -> pd.DataFrame:
    rows = []
    start = pd.Timestamp("2020-01-01")
    for q in range(n_quarters):
        for i in range(per_quarter - 2 * q):
            day = start + pd.DateOffset(months=3 * q) + pd.Timedelta(days=i % 80)
            rows.append({"customer_id": f"c{q}_{i}", "date": day, "amount": 10.0})
    return pd.DataFrame(rows)


def test_future_equity_is_zero_when_cac_equals_clv_at_acquisition() -> None:
    freq, spend = _fixed(BetaGeoModel, **BG), _fixed(GammaGammaModel, **GG)
    delta = np.log(1.1) * 7 / 365.25
    new = pd.DataFrame({"x": [0.0], "t_x": [0.0], "T": [0.0]})
    clv_new = 0.3 * 6.25 * 15.44 / 2.74 * P.dert(freq, new, delta=delta)[0, 0]
    fin = FinancialDraws.from_values(1, contribution_margin=0.3, discount_rate=0.1, shares_outstanding=1.0,
                                     acquisition_cost=clv_new, horizon_years=2.0)
    history = acquisitions_from_transactions(_acquisition_log(), freq="quarter", end="2022-12-31")
    kwargs = dict(time_unit="week", period="quarter", settings=SamplerSettings(method="map"))
    fe, note, acq = VC.future_equity(history, freq, spend, fin, market=5000.0, **kwargs)
    assert fe is not None and "acquisition model" in note
    assert fe.acquisitions.shape == (1, 8)
    assert fe.pv_clv[0] > 0
    assert fe.total[0] == pytest.approx(0.0, abs=1e-9 * fe.pv_clv[0])
    none, why, no_acq = VC.future_equity(history, freq, spend, fin, market=None, **kwargs)
    assert none is None and "no market size" in why


def test_company_clv_uses_saved_posteriors(tmp_path, cdnow_sample_load) -> None:
    # posteriors "fitted" at the published values, saved where notebook 02 puts them
    from cbcv.config import load_config
    from cbcv.pipeline.workflow import load_company, save_fit

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(financials=FINANCIALS).replace("[bgnbd, gamma_gamma]", "[pareto_nbd, gamma_gamma]"),
                   encoding="utf-8")
    loaded = load_config(cfg)
    models = {"pareto_nbd": _fixed(ParetoNBDModel, **PN), "gamma_gamma": _fixed(GammaGammaModel, **GG)}
    one = pd.DataFrame({"customer_id": ["a"], "x": [1.0], "t_x": [1.0], "T": [2.0]})
    for folder, end in (("models", "1997-09-30"), ("refit", "1998-06-30")):  # calibration fit, refit
        for name, model in models.items():
            model.idata.attrs.update({"cbcv_model": name, "method": "map"})
            save_fit(model, one, tmp_path / "run" / folder / name, {"calibration_end": end, "time_unit": "week"})
    clv, info = VC.company_clv(loaded, load_company(loaded, tmp_path / "work"), tmp_path / "run")
    assert info["source"].startswith("calibration fits posteriors loaded")
    assert "refits to 1998-06-30 posteriors loaded from this run's refit/ folder" in info["source"]
    assert info["purchase_model"] == "pareto_nbd" and info["n_draws"] == 1
    assert str(info["valuation_date"]) == "1998-06-30"
    from cbcv.data.summary import customer_summary

    # valued at the valuation date: every customer's summary to 1998-06-30
    summary = customer_summary(cdnow_sample_load.transactions, calibration_end="1998-06-30",
                               time_unit="week", zero_amount_purchases=True)
    delta = np.log(1.1) * 7 / 365.25
    dert = P.dert(models["pareto_nbd"], summary, delta=delta)[0]
    x = summary["x"].to_numpy()
    spend = 6.25 * (15.44 + x * summary["mean_repeat_spend"].fillna(0).to_numpy()) / (6.25 * x + 2.74)
    assert clv.total[0] == pytest.approx((0.3 * spend * dert).sum(), rel=1e-9)
    assert clv.n_customers == 2357
