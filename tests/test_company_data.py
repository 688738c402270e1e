"""The one seam between the report and the data (:class:`cbcv.pipeline.company_data.CompanyData`)
on the CDNOW sample: counted summaries and their cache, fits on them (the published estimates),
the holdout tracking, every customer scored, acquisitions from first purchases, the valuation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbcv.clv.scoring import ScoredBase
from cbcv.config import load_config
from cbcv.data.datasets import load_dataset
from cbcv.data.summary import calibration_holdout
from cbcv.models import get_model
from cbcv.pipeline import valuation as VC
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.workflow import company_tracking, fit_company_models, load_company, save_fit

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {  # CDNOW estimates (Fader, Hardie & Lee 2005a, 2005b)
    "bgnbd": dict(r=0.243, alpha=4.414, a=0.793, b=2.426),
    "pareto_nbd": dict(r=0.553, alpha=10.578, s=0.606, beta=11.669),
    "gamma_gamma": dict(p=6.25, q=3.74, gamma=15.44),
}
N_DRAWS = 12
KEY = ["x", "t_x", "T", "x_holdout", "T_holdout"]


def _config(tmp: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "map"}
    cfg["engine"] = {"memory_limit": "1GB", "threads": 1}
    path = tmp / "cdnow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _posteriors(run: Path) -> None:
    """Posteriors of N_DRAWS draws scattered around the published estimates, saved where
    notebook 02 puts them: the calibration fits (``models/``) and the refits to the valuation
    date (``refit/``, the same draws here)."""
    import arviz as az

    rng = np.random.default_rng(11)
    for name, values in PUBLISHED.items():
        model = get_model(name)()
        model.idata = az.from_dict(posterior={
            k: (v * np.exp(rng.normal(0, 0.05, N_DRAWS)))[None, :] for k, v in values.items()
        })
        model.idata.attrs.update({"cbcv_model": name, "method": "map"})
        for folder, end in (("models", "1997-09-30"), ("refit", "1998-06-30")):
            save_fit(model, pd.DataFrame({"x": [1.0], "t_x": [1.0], "T": [2.0], "count": [1]}),
                     run / folder / name, {"calibration_end": end, "time_unit": "week"})


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("company-data")
    loaded = load_config(_config(tmp))
    run = tmp / "run"
    _posteriors(run)
    return loaded, load_company(loaded, tmp / "work"), run


@pytest.fixture(scope="module")
def per_customer() -> pd.DataFrame:
    """The analyst's per-customer summary of the same log (the reference for the counts)."""
    return calibration_holdout(load_dataset("cdnow-sample").transactions, calibration_end="1997-09-30",
                               holdout_end="1998-06-30", time_unit="week", cohort_period="month",
                               zero_amount_purchases=True)


def test_counted_summary_units_and_cache(company, per_customer) -> None:
    _, data, _ = company
    assert isinstance(data, CompanyData) and data.accepted.name == "accepted.parquet"
    assert data.n_customers == len(per_customer) == 2357
    expected = per_customer.groupby(KEY).size()
    got = data.counted.set_index(KEY)["count"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False, check_dtype=False)
    stamp = data.summary_file.stat().st_mtime_ns
    again = CompanyData(data.log, data.settings, data.engine)
    assert again.summary_file.stat().st_mtime_ns == stamp  # reused from summary.json
    pd.testing.assert_frame_equal(again.summaries(), per_customer, check_dtype=False)
    units = data.valuation_units()
    assert units["count"].sum() == 2357
    # each unit's mean repeat spend is its customers' (x = 0 counted as 0, as expected_spend reads it)
    z = per_customer.assign(z=per_customer["mean_repeat_spend"].where(per_customer["x"] > 0, 0).fillna(0))
    ref = z.groupby(["x", "t_x", "T"])["z"].mean().to_numpy()
    np.testing.assert_allclose(units["mean_repeat_spend"].to_numpy(), ref, rtol=1e-12)


def test_fits_on_counted_summaries_give_the_published_estimates(company, tmp_path) -> None:
    loaded, data, _ = company
    fits = fit_company_models(loaded, data, tmp_path / "models")
    assert fits.n_customers == 2357 and "count" in fits.summary and len(fits.summary) < 2357
    for name, published in PUBLISHED.items():
        for p, value in published.items():
            got = fits.records[name]["parameters"][p]["mean"]
            assert got == pytest.approx(value, rel=0.03), (name, p)
    # gamma-gamma saw every repeat buyer (fewer than the sample size) and says so
    assert fits.models["gamma_gamma"].idata.attrs["repeat_buyers"] == 946
    assert fits.records["bgnbd"]["n_customers"] == 2357
    assert (tmp_path / "models" / "bgnbd" / "posterior.nc").is_file()
    track = company_tracking(loaded, data, fits.models)
    assert set(track) == {"bgnbd", "pareto_nbd"}
    # the tracking table ends at every repeat transaction of calibration and holdout
    summary = fits.summary
    total = float(((summary["x"] + summary["x_holdout"]) * summary["count"]).sum())
    assert track["bgnbd"]["actual"].iloc[-1] == pytest.approx(total)


def test_every_customer_is_scored_to_the_work_folder(company) -> None:
    from cbcv.plots.clv import plot_clv_distribution, plot_concentration

    loaded, data, run = company
    clv, info = VC.company_clv(loaded, data, run)
    valued = data.at(loaded.config.valuation_date)  # scored at the valuation date
    assert isinstance(clv, ScoredBase) and clv.path == valued.folder / "customers.parquet"
    assert valued.folder == data.folder / "to_1998-06-30"
    assert "posteriors loaded" in info["source"] and info["n_draws"] == N_DRAWS
    assert clv.n_customers == 2357 and clv.total.shape == (N_DRAWS,) and (clv.total > 0).all()
    assert clv.by_decile()["customers"].sum() == 2357
    assert clv.by_cohort()["customers"].tolist() == [781, 857, 719]  # CDNOW's Jan-Mar 1997 cohorts
    assert len(pd.read_parquet(clv.path)) == 2357
    plot_clv_distribution(clv)
    plot_concentration(clv)


@pytest.mark.parametrize(("period", "counts"), [
    ("month", [781, 857, 719, 0, 0, 0, 0, 0, 0]),
    ("quarter", [2357, 0, 0]),
])
def test_acquisition_history_from_first_purchases(company, period, counts) -> None:
    _, data, _ = company
    history = data.acquisition_history(period)
    assert history["new_customers"].tolist() == counts


def test_valuation_through_the_seam(company) -> None:
    loaded, data, run = company
    v = VC.value_loaded(loaded, result=data, run_dir=run)
    assert isinstance(v.clv, ScoredBase) and v.result.n_draws == N_DRAWS
    assert np.isfinite(v.result.value_per_share).all()
    assert "1 quarter(s) with new customers" in v.future_note  # one acquisition cohort: zero
    assert v.to_json_dict()["existing_customers"]["customers"] == 2357
    assert v.revenue is not None and np.isfinite(v.revenue.mean_table().to_numpy()).all()


def test_data_to_the_valuation_date_beside_the_calibration_data(company, per_customer) -> None:
    """:meth:`CompanyData.at`: the summaries to another date, with no holdout, in their own
    subfolder; the calibration summaries stay cached beside them."""
    from cbcv.data.summary import customer_summary

    loaded, data, _ = company
    stamp = data.summary_file.stat().st_mtime_ns
    valued = data.at(loaded.config.valuation_date)
    assert valued.settings.calibration_end.isoformat() == "1998-06-30"
    assert valued.settings.holdout_end is None and "x_holdout" not in valued.counted
    assert valued.data_window == (data.reconciliation.first_date, loaded.config.valuation_date)
    expected = customer_summary(load_dataset("cdnow-sample").transactions, calibration_end="1998-06-30",
                                time_unit="week", zero_amount_purchases=True)
    got = valued.summaries().set_index("customer_id").loc[expected["customer_id"]]
    np.testing.assert_allclose(got["x"], expected["x"])
    np.testing.assert_allclose(got["T"], expected["T"])
    assert int(valued.counted["count"].sum()) == 2357
    assert (valued.counted["x"] * valued.counted["count"]).sum() == pytest.approx(
        (per_customer["x"] + per_customer["x_holdout"]).sum())  # calibration + holdout purchases
    assert data.summary_file.stat().st_mtime_ns == stamp  # the calibration summaries not evicted
    assert valued.at(loaded.config.valuation_date) is valued


def test_first_purchase_spend_from_the_first_purchase_days(company) -> None:
    from cbcv.data.transactions import to_daily

    loaded, data, _ = company
    days = to_daily(load_dataset("cdnow-sample").transactions, zero_amount_purchases=True)
    first = days.sort_values(["customer_id", "date"]).groupby("customer_id")["amount"].first()
    est = data.at(loaded.config.valuation_date).first_purchase_spend()
    assert est.n == len(first) == 2357
    assert est.mean == pytest.approx(first.mean(), rel=1e-12)
    assert est.sd == pytest.approx(first.std(ddof=1), rel=1e-9)
    # first purchases are not repeat purchases: CDNOW's average first day is smaller
    repeat = days.sort_values(["customer_id", "date"]).groupby("customer_id").nth(slice(1, None))["amount"]
    assert est.mean < repeat.mean()


def test_scores_are_reused_while_the_inputs_are_the_same(company) -> None:
    loaded, data, run = company
    a, _ = VC.company_clv(loaded, data, run)
    stamp = a.path.stat().st_mtime_ns
    b, _ = VC.company_clv(loaded, data, run)
    assert b.path.stat().st_mtime_ns == stamp  # not scored again
    np.testing.assert_array_equal(a.total, b.total)
    # other inputs (no financials: margin 1 at 10%) score again
    bare = loaded.model_copy(update={"config": loaded.config.model_copy(update={"financials": None})})
    c, _ = VC.company_clv(bare, data, run)
    assert c.path.stat().st_mtime_ns != stamp and c.total.mean() > 2 * a.total.mean()
