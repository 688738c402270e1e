"""The diagnostics verdict of a fit (issue 13, items 11-12): a fit the data cannot support is not
a pass, MAP never passes, and the verdict follows the figures into fit.json, valuation.json,
provenance, the index and pages 03/04; ``--strict`` fails on anything but pass."""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import yaml
from bs4 import BeautifulSoup

from cbcv.models import SamplerSettings, get_model
from cbcv.models.verdict import (
    FLAT_CURVATURE,
    FitVerdict,
    combined_diagnostics,
    curvature_checks,
    hessian,
    verdict_line,
)
from conftest import run_cbcv

ROOT = Path(__file__).resolve().parents[1]
MAP = SamplerSettings(method="map", seed=1)


def _map_verdict(name: str, data: pd.DataFrame) -> FitVerdict:
    model = get_model(name)()
    model.fit(data, MAP)
    return model.verdict()


def _rft(x: list[float], t_x: list[float], T: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"x": x, "t_x": t_x, "T": T}, dtype=float)


def _has(verdict: FitVerdict, text: str) -> bool:
    return any(text in r for r in verdict.reasons)


# -- uninformative data ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bgnbd", "pareto_nbd"])
def test_one_customer_fails(name: str) -> None:
    v = _map_verdict(name, _rft([3], [20], [30]))
    assert v.status == "fail" and not v.ok
    assert _has(v, "1 customer(s)")
    assert _has(v, "at the boundary") or _has(v, "log-likelihood is flat")  # a dropout parameter unidentified


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_customers_who_never_repeat_fail(name: str) -> None:
    n = 150  # enough customers: the failure is the lack of repeat purchases, not the sample size
    v = _map_verdict(name, _rft([0] * n, [0] * n, list(np.linspace(5, 40, n))))
    assert v.status == "fail"
    assert _has(v, "no customer made a repeat purchase")
    assert not _has(v, "fewer than")


def test_all_purchases_on_one_day_fail() -> None:
    v = _map_verdict("bgnbd", _rft([0] * 150, [0] * 150, [30] * 150))
    assert v.status == "fail" and _has(v, "every purchase is on one day")


def test_nobody_observed_after_first_purchase_fails() -> None:
    v = _map_verdict("pareto_nbd", _rft([0] * 150, [0] * 150, [0] * 150))
    assert v.status == "fail" and _has(v, "T = 0 for every customer")
    # the likelihood is constant: the Hessian check finds it flat
    assert _has(v, "log-likelihood is flat")


def test_too_few_customers_and_repeaters_warn_at_the_stated_thresholds(cdnow_weekly: pd.DataFrame) -> None:
    from cbcv.models.verdict import FEW_CUSTOMERS, FEW_REPEATERS, data_checks

    few = cdnow_weekly.head(FEW_CUSTOMERS - 1)
    arrays, _ = get_model("bgnbd")().prepare(few)
    assert any(s == "warn" and f"only {FEW_CUSTOMERS - 1} customers" in r for s, r in data_checks(arrays))
    arrays, _ = get_model("bgnbd")().prepare(cdnow_weekly)
    assert data_checks(arrays) == []  # 2,357 customers, 946 repeat buyers
    repeaters = few[few["x"] > 0].head(FEW_REPEATERS - 1)
    arrays, _ = get_model("bgnbd")().prepare(pd.concat([repeaters, few[few["x"] == 0]]))
    assert any(s == "warn" and f"only {FEW_REPEATERS - 1} repeat buyer" in r for s, r in data_checks(arrays))


def test_identical_spend_fails_gamma_gamma_at_the_boundary() -> None:
    v = _map_verdict("gamma_gamma", pd.DataFrame({"x": [2.0] * 150, "mean_repeat_spend": [10.0] * 150}))
    assert v.status == "fail"
    assert _has(v, "same mean spend") and _has(v, "at the boundary")


def test_contractual_data_without_churn_fails() -> None:
    from cbcv.models.verdict import data_checks

    arrays, _ = get_model("sbg")().prepare(pd.DataFrame({"t": [1.0, 2.0, 3.0], "churned": [0, 0, 0], "count": [50, 50, 50]}))
    assert [s for s, r in data_checks(arrays) if "no customer churned" in r] == ["fail"]


# -- estimates: boundary and curvature --------------------------------------------------------------
def test_flat_or_singular_hessian_fails_and_curved_passes() -> None:
    quad = hessian(lambda x: float(-(x[0] ** 2) - 3 * x[1] ** 2 - x[0] * x[1]), np.array([0.3, -0.2]))
    np.testing.assert_allclose(quad, [[-2, -1], [-1, -6]], atol=1e-6)
    assert curvature_checks(quad, ["a", "b"]) == []
    flat = np.array([[-4.0, 0.0], [0.0, -FLAT_CURVATURE / 10]])
    ((status, reason),) = curvature_checks(flat, ["a", "b"])
    assert status == "fail" and "flat" in reason and "along b" in reason
    ((status, _),) = curvature_checks(np.array([[np.nan, 0.0], [0.0, -1.0]]), ["a", "b"])
    assert status == "fail"


def test_a_well_supported_map_fit_is_warn_never_pass(cdnow_weekly: pd.DataFrame) -> None:
    v = _map_verdict("bgnbd", cdnow_weekly)
    assert v.status == "warn" and not v.ok
    assert v.reasons == (v.reasons[0],) and "no sampling diagnostics" in v.reasons[0]
    assert v.problems() == [f"bgnbd: {v.reasons[0]}"]


# -- sampling diagnostics from a crafted posterior --------------------------------------------------
def _crafted_nuts(model_name: str, draws: dict[str, np.ndarray], diverging: np.ndarray) -> az.InferenceData:
    idata = az.from_dict(posterior=draws, sample_stats={"diverging": diverging})
    idata.attrs.update({"cbcv_model": model_name, "method": "nuts", "cbcv_checks": "[]"})
    return idata


def test_poor_ess_rhat_and_divergences_fail() -> None:
    rng = np.random.default_rng(0)
    # two chains stuck in different places, each a slow random walk: ESS of a few, r_hat >> 1.01
    walk = np.cumsum(rng.normal(0, 0.01, size=(2, 200)), axis=1) + np.array([[1.0], [2.0]])
    good = rng.gamma(50, 0.02, size=(2, 200))
    draws = {"r": walk, "alpha": good, "a": good[::-1], "b": good}
    diverging = np.zeros((2, 200), dtype=bool)
    diverging[0, :3] = True
    model = get_model("bgnbd")()
    v = model.verdict(_crafted_nuts("bgnbd", draws, diverging))
    assert v.status == "fail"
    assert _has(v, "r_hat of r") and _has(v, "bulk ESS of r") and _has(v, "tail ESS of r")
    assert _has(v, "3 divergent transitions")


def test_a_converged_posterior_with_sound_data_passes() -> None:
    rng = np.random.default_rng(1)
    draws = {p: rng.gamma(50, 0.02, size=(4, 1000)) for p in ("r", "alpha", "a", "b")}
    v = get_model("bgnbd")().verdict(_crafted_nuts("bgnbd", draws, np.zeros((4, 1000), dtype=bool)))
    assert v.status == "pass" and v.ok and v.reasons == ()
    assert verdict_line(v.to_dict()) is None


def test_posterior_without_recorded_checks_does_not_pass() -> None:
    rng = np.random.default_rng(2)
    draws = {p: rng.gamma(50, 0.02, size=(4, 1000)) for p in ("r", "alpha", "a", "b")}
    idata = _crafted_nuts("bgnbd", draws, np.zeros((4, 1000), dtype=bool))
    del idata.attrs["cbcv_checks"]
    assert get_model("bgnbd")().verdict(idata).status == "warn"


def test_a_small_nuts_run_records_its_checks_and_fails_on_tiny_ess(cdnow_weekly: pd.DataFrame) -> None:
    model = get_model("bgnbd")()
    idata = model.fit(cdnow_weekly.head(300), SamplerSettings(draws=20, tune=20, chains=2, cores=1, seed=3))
    assert json.loads(idata.attrs["cbcv_checks"]) == []  # the data and estimates are fine
    v = model.verdict()
    assert v.status == "fail" and _has(v, "bulk ESS")


# -- the verdict across outputs ----------------------------------------------------------------------
def test_combined_diagnostics_and_the_page_warning() -> None:
    from cbcv.report.summary import diagnostics_note

    warn = FitVerdict("bgnbd", "map", "warn", ("MAP fit: no sampling diagnostics",)).to_dict()
    ok = FitVerdict("gamma_gamma", "nuts", "pass").to_dict()
    both = combined_diagnostics({"bgnbd": warn, "gamma_gamma": ok})
    assert both["status"] == "warn" and not both["ok"]
    assert both["problems"] == ["bgnbd: MAP fit: no sampling diagnostics"]
    assert both["models"]["gamma_gamma"]["status"] == "pass"
    assert combined_diagnostics({})["status"] == "none"
    assert "Diagnostics warning (warn)" in diagnostics_note(both) and "bgnbd" in diagnostics_note(both)
    assert diagnostics_note(combined_diagnostics({"gamma_gamma": ok})) == ""
    # the index says when the valuation's figures rest on point estimates
    from cbcv.report.summary import point_estimate_note

    fits = {"bgnbd": {"method": "map"}, "gamma_gamma": {"method": "nuts"}}
    assert "bgnbd fitted by MAP" in point_estimate_note({"models": {"fits": fits}})
    assert point_estimate_note({"models": {"fits": {"gamma_gamma": {"method": "nuts"}}}}) == ""
    # an old fit.json with only ok/problems is read by its ok
    assert combined_diagnostics({"x": {"ok": False, "problems": ["x: 3 divergent transitions"]}})["status"] == "fail"


def test_index_and_provenance_verdict_includes_map_and_valuation_fits(tmp_path: Path) -> None:
    from cbcv.config import load_config
    from cbcv.report.summary import diagnostics_problems, executive_summary, run_diagnostics

    cfg = load_config(ROOT / "configs" / "cdnow.yaml").config
    warn = FitVerdict("bgnbd", "map", "warn", ("MAP fit: a point estimate has no sampling diagnostics",)).to_dict()
    (tmp_path / "models" / "bgnbd").mkdir(parents=True)
    (tmp_path / "models" / "bgnbd" / "fit.json").write_text(json.dumps({"diagnostics": warn}))
    html = BeautifulSoup(executive_summary(tmp_path, cfg), "html.parser")
    assert html.select_one(".pass") is None
    assert "no sampling diagnostics" in html.select_one(".banner").get_text()
    # fits made by notebook 04 itself (no fit.json): their verdict comes from valuation.json
    (tmp_path / "models" / "bgnbd" / "fit.json").unlink()
    failed = FitVerdict("gamma_gamma", "nuts", "fail", ("bulk ESS of p is 4 (< 400)",)).to_dict()
    (tmp_path / "valuation.json").write_text(json.dumps({"diagnostics": combined_diagnostics({"gamma_gamma": failed})}))
    assert run_diagnostics(tmp_path)["status"] == "fail"
    assert diagnostics_problems(tmp_path) == ["gamma_gamma: bulk ESS of p is 4 (< 400)"]


def _one_day_log(path: Path, n: int = 150) -> Path:
    rows = [f"c{i},2020-03-02,{10 + i % 7}.00" for i in range(n)]
    path.write_text("customer_id,date,amount\n" + "\n".join(rows) + "\n")
    return path


def test_cli_fit_warns_and_strict_fails_under_map(tmp_path: Path) -> None:
    log = _one_day_log(tmp_path / "tx.csv")
    args = ("fit", str(log), "--model", "bgnbd", "--calibration-end", "2020-06-30", "--method", "map")
    res = run_cbcv(*args, "--out", str(tmp_path / "a"))
    assert res.returncode == 0, res.stderr
    assert [ln for ln in res.stderr.splitlines() if "warning: diagnostics fail" in ln]
    rec = json.loads((tmp_path / "a" / "fit.json").read_text())
    assert rec["diagnostics"]["status"] == "fail" and not rec["diagnostics"]["ok"]
    assert any("every purchase is on one day" in r for r in rec["diagnostics"]["reasons"])
    # the verdict's checks travel with the posterior
    from cbcv.pipeline.workflow import load_fit

    model, _ = load_fit(tmp_path / "a")
    assert model.verdict().status == "fail"
    res = run_cbcv(*args, "--out", str(tmp_path / "b"), "--strict")
    assert res.returncode == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("cbcv: error:")]
    assert len(errors) == 1 and "diagnostics fail" in errors[0] and "--strict" in errors[0]
    assert "Traceback" not in res.stderr


def test_cli_value_records_the_verdict_and_strict_fails(tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "map"}
    cfg["models"] = ["bgnbd", "gamma_gamma"]
    config = tmp_path / "map.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = run_cbcv("value", str(config), "--out", str(tmp_path / "v"), "--strict")
    assert res.returncode == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("cbcv: error:")]
    assert len(errors) == 1 and "diagnostics warn" in errors[0] and "no sampling diagnostics" in errors[0]
    text = (tmp_path / "v" / "valuation.json").read_text()
    val = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    diag = val["diagnostics"]
    assert diag["status"] == "warn" and not diag["ok"]
    assert set(diag["models"]) == {"bgnbd", "gamma_gamma"}
    assert all(m["status"] == "warn" and m["method"] == "map" for m in diag["models"].values())
    assert val["models"]["fits"]["bgnbd"]["diagnostics_status"] == "warn"


def test_page_03_fits_carry_their_verdict_into_the_run(tmp_path: Path, cdnow_sample_load) -> None:
    from cbcv.config import load_config
    from cbcv.pipeline.valuation import company_clv
    from cbcv.report.summary import diagnostics_note, run_diagnostics

    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg.update({"sampler": {"method": "map"}, "models": ["bgnbd", "gamma_gamma"]})
    config = tmp_path / "map.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    from cbcv.pipeline.workflow import load_company

    loaded = load_config(config)
    _, info = company_clv(loaded, load_company(loaded, tmp_path / "work"), run)
    assert info["diagnostics"]["status"] == "warn"
    assert "no sampling diagnostics" in diagnostics_note(info["diagnostics"])
    # the fits made for page 03 are saved into the run: provenance and the index see them
    # (the calibration fits and the refits to the valuation date, each with its own verdict)
    refit = " (refit to the valuation date)"
    assert run_diagnostics(run)["models"].keys() == {"bgnbd", "gamma_gamma", "bgnbd" + refit, "gamma_gamma" + refit}
    assert run_diagnostics(run)["status"] == "warn"
