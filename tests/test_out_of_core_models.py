"""The model, CLV and valuation steps on a log validated out of core (``engine.out_of_core``)
give the figures of the in-memory steps: same fits, validation, CLV tables and valuation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cbcv.clv.scoring import ScoredBase
from cbcv.config import load_config
from cbcv.data.load import ValidatedLog
from cbcv.models import get_model
from cbcv.pipeline import valuation as VC
from cbcv.pipeline.outofcore import company_summaries, valuation_units
from cbcv.pipeline.workflow import (
    company_summary,
    company_tracking,
    fit_company_models,
    load_company,
    save_fit,
)
from cbcv.valuation import holdout as V

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {  # CDNOW estimates (Fader, Hardie & Lee 2005a, 2005b)
    "bgnbd": dict(r=0.243, alpha=4.414, a=0.793, b=2.426),
    "pareto_nbd": dict(r=0.553, alpha=10.578, s=0.606, beta=11.669),
    "gamma_gamma": dict(p=6.25, q=3.74, gamma=15.44),
}
N_DRAWS = 12


def _config(tmp: Path, out_of_core: bool) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "map"}
    cfg["engine"] = {"out_of_core": out_of_core, "memory_limit": "1GB", "threads": 1}
    path = tmp / f"cdnow-{'ooc' if out_of_core else 'mem'}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _posteriors(run: Path) -> None:
    """Posteriors of N_DRAWS draws scattered around the published estimates, saved where
    notebook 02 puts them, so both paths value with the same draws."""
    import arviz as az

    rng = np.random.default_rng(11)
    for name, values in PUBLISHED.items():
        model = get_model(name)()
        model.idata = az.from_dict(posterior={
            k: (v * np.exp(rng.normal(0, 0.05, N_DRAWS)))[None, :] for k, v in values.items()
        })
        model.idata.attrs.update({"cbcv_model": name, "method": "map"})
        save_fit(model, pd.DataFrame({"x": [1.0], "t_x": [1.0], "T": [2.0], "count": [1]}),
                 run / "models" / name, {"calibration_end": "1997-09-30", "time_unit": "week"})


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ooc-models")
    mem, ooc = load_config(_config(tmp, False)), load_config(_config(tmp, True))
    run = tmp / "run"
    _posteriors(run)
    return mem, load_company(mem), ooc, load_company(ooc, tmp / "work"), run


def test_counted_summary_and_cache(pair) -> None:
    _, mem_result, ooc, ooc_result, _ = pair
    assert isinstance(ooc_result, ValidatedLog)
    base = company_summaries(ooc, ooc_result)
    per_customer = company_summary(pair[0], mem_result)
    assert base.n_customers == len(per_customer) == 2357
    expected = per_customer.groupby(["x", "t_x", "T", "x_holdout", "T_holdout"]).size()
    got = base.counts.set_index(["x", "t_x", "T", "x_holdout", "T_holdout"])["count"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False, check_dtype=False)
    mtime = base.path.stat().st_mtime_ns
    assert company_summaries(ooc, ooc_result).path.stat().st_mtime_ns == mtime  # reused
    units = valuation_units(base.path)
    assert units["count"].sum() == 2357
    # each unit's mean repeat spend is its customers' (x = 0 counted as 0, as expected_spend reads it)
    z = per_customer.assign(z=per_customer["mean_repeat_spend"].where(per_customer["x"] > 0, 0).fillna(0))
    ref = z.groupby(["x", "t_x", "T"])["z"].mean().to_numpy()
    np.testing.assert_allclose(units["mean_repeat_spend"].to_numpy(), ref, rtol=1e-12)


def test_fits_on_counted_summaries_equal_the_per_customer_fits(pair, tmp_path) -> None:
    mem, mem_result, ooc, ooc_result, _ = pair
    a = fit_company_models(mem, mem_result)
    b = fit_company_models(ooc, ooc_result, tmp_path / "models")
    assert a.n_customers == b.n_customers == 2357
    assert "count" in b.summary and len(b.summary) < 2357
    for name in ("bgnbd", "pareto_nbd", "gamma_gamma"):
        for p, stats in a.records[name]["parameters"].items():
            assert b.records[name]["parameters"][p]["mean"] == pytest.approx(stats["mean"], rel=1e-4), (name, p)
    # gamma-gamma saw every repeat buyer (fewer than the sample size) and says so
    assert b.models["gamma_gamma"].idata.attrs["repeat_buyers"] == 946
    assert b.records["bgnbd"]["n_customers"] == 2357
    assert (tmp_path / "models" / "bgnbd" / "posterior.nc").is_file()
    # validation on the counted summary equals the per-customer one
    pd.testing.assert_frame_equal(V.compare_models(b.frequency_models(), b.summary),
                                  V.compare_models(b.frequency_models(), a.summary), rtol=1e-9)
    ta, tb = company_tracking(mem, mem_result, b.models), company_tracking(ooc, ooc_result, b.models)
    assert set(ta) == {"bgnbd", "pareto_nbd"}
    for n in ta:
        pd.testing.assert_frame_equal(ta[n], tb[n])


def test_clv_out_of_core_equals_the_in_memory_clv(pair) -> None:
    from cbcv.plots.clv import lorenz_data, plot_clv_distribution, plot_concentration

    mem, mem_result, ooc, ooc_result, run = pair
    a, info_a = VC.company_clv(mem, mem_result, run)
    b, info_b = VC.company_clv(ooc, ooc_result, run)
    assert isinstance(b, ScoredBase) and b.path.is_file()
    assert info_a["purchase_model"] == info_b["purchase_model"] and info_b["n_draws"] == N_DRAWS
    np.testing.assert_allclose(b.total, a.total, rtol=1e-7)
    for table in ("by_decile", "by_cohort"):
        ta, tb = getattr(a, table)(), getattr(b, table)()
        assert ta["customers"].tolist() == tb["customers"].tolist()
        np.testing.assert_allclose(tb["mean"], ta["mean"], rtol=1e-6)
    np.testing.assert_allclose(b.concentration()["mean"], a.concentration()["mean"], rtol=1e-6)
    pd.testing.assert_frame_equal(a.p_alive_distribution(), b.p_alive_distribution(), check_dtype=False)
    np.testing.assert_allclose(b.top_customers(10)["clv_mean"], a.top_customers(10)["clv_mean"], rtol=1e-6)
    ea, ca = a.mean_clv_histogram(30)
    eb, cb = b.mean_clv_histogram(30)
    np.testing.assert_allclose(eb, ea, rtol=1e-6)
    assert np.abs(ca - cb).sum() <= 2 and cb.sum() == 2357  # a value on an edge may move by a rounding
    la, lb = lorenz_data(a), lorenz_data(b)
    assert len(la) == 2358 and len(lb) == 2001  # the file's curve at 2,001 evenly spaced ranks
    ranks = np.rint(lb["customer_share"].to_numpy() * 2357).astype(int)
    np.testing.assert_allclose(lb["clv_share"], la["clv_share"].to_numpy()[ranks], atol=1e-7)
    plot_clv_distribution(b)
    plot_concentration(b)


def test_valuation_out_of_core_equals_the_in_memory_valuation(pair) -> None:
    mem, mem_result, ooc, ooc_result, run = pair
    a = VC.value_loaded(mem, result=mem_result, run_dir=run)
    b = VC.value_loaded(ooc, result=ooc_result, run_dir=run)
    assert isinstance(b.clv, ScoredBase)
    np.testing.assert_allclose(b.result.value_per_share, a.result.value_per_share, rtol=1e-7)
    assert b.future_note == a.future_note
    np.testing.assert_allclose(b.tornado.drop(columns=[c for c in b.tornado if b.tornado[c].dtype == object]),
                               a.tornado.drop(columns=[c for c in a.tornado if a.tornado[c].dtype == object]), rtol=1e-7)
    np.testing.assert_allclose(b.scenarios.select_dtypes("number"), a.scenarios.select_dtypes("number"), rtol=1e-7)
    np.testing.assert_allclose(b.revenue.mean_table().to_numpy(), a.revenue.mean_table().to_numpy(), rtol=1e-7)
    record = b.to_json_dict()
    assert record["existing_customers"]["customers"] == 2357


@pytest.mark.parametrize("period", ["month", "quarter"])
def test_acquisition_history_from_the_summary_file(pair, period) -> None:
    mem, mem_result, ooc, ooc_result, _ = pair
    pd.testing.assert_frame_equal(VC.acquisition_history(ooc, ooc_result, period),
                                  VC.acquisition_history(mem, mem_result, period))


def test_scores_are_reused_while_the_inputs_are_the_same(pair) -> None:
    mem, mem_result, ooc, ooc_result, run = pair
    a, _ = VC.company_clv(ooc, ooc_result, run)
    stamp = a.path.stat().st_mtime_ns
    b, _ = VC.company_clv(ooc, ooc_result, run)
    assert b.path.stat().st_mtime_ns == stamp  # not scored again
    np.testing.assert_array_equal(a.total, b.total)
    # other inputs (no financials: margin 1 at 10%) score again
    bare = ooc.model_copy(update={"config": ooc.config.model_copy(update={"financials": None})})
    c, _ = VC.company_clv(bare, ooc_result, run)
    assert c.path.stat().st_mtime_ns != stamp and c.total.mean() > 2 * a.total.mean()
