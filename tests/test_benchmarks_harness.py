"""The fit-speed benchmark's harness (benchmarks/fit_speed.py, benchmarks/run.py), without the peer.

Checked: the simulated data sets are CDNOW-like and recorded at day resolution; both tools read
bit-identical inputs; the shared priors mean what PyMC-Marketing's defaults mean; the agreement
statistic, speed ratios and tables; the memory probe and the subprocess runner (peak of a
process tree, timeouts, errors); and that the bounded-memory CLV reduction reproduces the
unchunked computation; a timed-out fit is reported with its gradient ratio, and the
gradient-only child runs (for cbcv). PyMC-Marketing is never imported; every test but the
gradient child (a subprocess, ~10 s) takes well under a second or two.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import fit_speed as fs  # noqa: E402


def _load_run_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- data -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pareto_sim():
    return fs.simulated_summary("pareto_nbd", 20_000, seed=3)


def test_simulated_times_are_whole_days_in_a_13_week_acquisition_window(pareto_sim):
    d = pareto_sim
    days_T, days_tx = d["T"].to_numpy() * 7, d["t_x"].to_numpy() * 7
    np.testing.assert_allclose(days_T, np.rint(days_T), atol=1e-9)
    np.testing.assert_allclose(days_tx, np.rint(days_tx), atol=1e-9)
    # acquired on one of 91 days; observed to a common end 272 days after the first
    assert d["T"].nunique() == 91
    assert d["T"].max() == pytest.approx(272 / 7) and d["T"].min() == pytest.approx(182 / 7)
    assert (d["t_x"] <= d["T"]).all()
    assert (d.loc[d["x"] == 0, "t_x"] == 0).all()
    assert d["customer_id"].is_unique


def test_simulated_repeat_purchases_match_the_pareto_nbd_expectation(pareto_sim):
    """Mean x over customers vs E[X(T)] = rβ/(α(s−1)) [1 − (β/(β+T))^(s−1)] (Schmittlein,
    Morrison & Colombo 1987; Fader & Hardie 2005 note, eq. 17) at CDNOW's estimates."""
    from cbcv.data.simulate import CDNOW_PARETO_NBD as q

    T = pareto_sim["T"].to_numpy()
    expected = q.r * q.beta / (q.alpha * (q.s - 1)) * (1 - (q.beta / (q.beta + T)) ** (q.s - 1))
    x = pareto_sim["x"].to_numpy()
    se = x.std() / math.sqrt(len(x))
    assert abs(x.mean() - expected.mean()) < 4 * se


def test_day_resolution_lets_customers_share_likelihood_terms(pareto_sim):
    distinct = fs.n_distinct(pareto_sim)
    # everyone without a repeat purchase shares one row per acquisition day (91 rows)
    n_zero = int((pareto_sim["x"] == 0).sum())
    assert distinct <= len(pareto_sim) - n_zero + 91
    assert distinct < 0.5 * len(pareto_sim)


def test_cdnow_summary_is_the_classic_calibration_sample():
    d = fs.cdnow_summary()
    assert len(d) == 2357
    assert list(d.columns) == ["customer_id", "x", "t_x", "T"]
    # first purchases 1997-01-01 .. 1997-03-25, calibration to 1997-09-30
    assert d["T"].max() == pytest.approx(272 / 7) and d["T"].min() == pytest.approx(27.0)
    assert fs.n_distinct(d) < len(d)


def test_both_tools_read_bit_identical_inputs(tmp_path, pareto_sim):
    path = fs.write_data(pareto_sim, tmp_path / "data.parquet")
    back = fs.read_data(path)
    ours, peer = fs.cbcv_frame(back), fs.peer_frame(back)
    assert list(peer.columns) == ["customer_id", "frequency", "recency", "T"]
    assert np.array_equal(ours["customer_id"], peer["customer_id"])
    assert np.array_equal(ours["x"].to_numpy(dtype=float), peer["frequency"].to_numpy())
    assert np.array_equal(ours["t_x"].to_numpy(), peer["recency"].to_numpy())
    assert np.array_equal(ours["T"].to_numpy(), peer["T"].to_numpy())
    # the Parquet round trip loses nothing
    for col in ("x", "t_x", "T"):
        assert np.array_equal(back[col].to_numpy(), pareto_sim[col].to_numpy())


# -- priors ---------------------------------------------------------------------------------------
def test_shared_priors_are_pymc_marketing_defaults_where_it_has_them():
    # PyMC-Marketing 0.19.2 ParetoNBDModel.default_model_config, and BetaGeoModel's for r, alpha
    weibull = {"r": {"alpha": 2.0, "beta": 1.0}, "alpha": {"alpha": 2.0, "beta": 10.0}}
    for model in fs.MODELS:
        for name, kw in weibull.items():
            assert fs.PRIORS[model][name] == ("Weibull", kw)
    assert fs.PRIORS["pareto_nbd"]["s"] == ("Weibull", {"alpha": 2.0, "beta": 1.0})
    assert fs.PRIORS["pareto_nbd"]["beta"] == ("Weibull", {"alpha": 2.0, "beta": 10.0})
    assert set(fs.PRIORS["bgnbd"]) == {"r", "alpha", "a", "b"}


def test_cbcv_priors_build_the_intended_densities():
    """PyMC's Weibull(alpha, beta) is shape alpha, scale beta: check against scipy."""
    import pymc as pm
    from scipy import stats

    from cbcv.models.bgnbd import BetaGeoModel
    from cbcv.models.pareto_nbd import ParetoNBDModel

    priors = fs.cbcv_priors("pareto_nbd")
    with pm.Model():
        alpha = priors["alpha"].create("alpha")
    logp = pm.logp(alpha, 7.0).eval(mode="FAST_COMPILE")  # no C compilation
    assert logp == pytest.approx(stats.weibull_min(c=2, scale=10).logpdf(7.0), rel=1e-6)
    # every prior names a parameter of the cbcv model, which takes them all
    assert ParetoNBDModel(priors=priors).priors == priors
    assert BetaGeoModel(priors=fs.cbcv_priors("bgnbd")).priors == fs.cbcv_priors("bgnbd")


# -- statistics and formatting --------------------------------------------------------------------
def test_agreement_z_is_the_difference_over_the_combined_mc_error():
    a = {"mean": 1.0, "mcse_mean": 0.03}
    b = {"mean": 1.1, "mcse_mean": 0.04}
    assert fs.agreement_z(a, b) == pytest.approx(2.0)  # 0.1 / sqrt(0.03² + 0.04²)
    assert fs.agreement_z(a, {"mean": 1.0, "mcse_mean": 0.0}) == 0.0
    assert fs.agreement_z({"mean": 1, "mcse_mean": 0}, {"mean": 2, "mcse_mean": 0}) == math.inf


def _row(tool: str, fit_s: float | None, status: str = "ok", **kw) -> fs.Row:
    post = {
        p: {
            "mean": 1.0 + (0.1 if tool == "pymc-marketing" else 0.0),
            "mcse_mean": 0.03 if tool == "cbcv" else 0.04,
        }
        for p in fs.PARAMS["bgnbd"]
    }
    return fs.Row(
        "cdnow",
        "bgnbd",
        tool,
        2357,
        1016,
        status,
        fit_s=fit_s,
        posterior=post if fit_s else {},
        **kw,
    )


def test_speed_ratio_text():
    ours = _row("cbcv", 10.0)
    assert fs.speed_ratio(_row("pymc-marketing", 120.0), ours) == "12.0×"
    timed_out = _row("pymc-marketing", None, "timeout", process_s=900.0)
    assert fs.speed_ratio(timed_out, _row("cbcv", 30.0)) == "> 30×"
    assert fs.speed_ratio(None, ours) == "n/a"
    assert fs.speed_ratio(_row("pymc-marketing", None, "error"), ours) == "n/a"


def test_table_shows_counts_ratio_and_means_side_by_side():
    text = fs.format_table([_row("cbcv", 10.0), _row("pymc-marketing", 120.0)])
    lines = text.splitlines()
    peer_line = next(line for line in lines if "pymc-marketing" in line and "BG/NBD" in line)
    assert "2,357" in peer_line and "1,016" in peer_line and peer_line.rstrip().endswith("12.0×")
    r_line = next(line for line in lines if line.split()[2:3] == ["r"])
    assert "1 ± 0.03" in r_line and "1.1 ± 0.04" in r_line and r_line.rstrip().endswith("2.00")


def test_targets_report_met_and_missed():
    run = _load_run_module()
    rows = [_row("cbcv", 10.0), _row("pymc-marketing", 20.0)]
    lines = run.targets(rows, None, fs.FULL)
    assert any(line.startswith("MISSED cdnow BG/NBD") and "2.0×" in line for line in lines)
    assert any(line.startswith("MET    same posterior") for line in lines)
    clv = {"status": "ok", "peak_rss_mb": 1500.0, "n_customers": 10**6, "n_draws": 4000}
    assert any(line.startswith("MET    CLV") for line in run.targets([], clv, fs.FULL))


def test_a_timed_out_peer_is_reported_with_its_gradient_ratio():
    run = _load_run_module()
    rows = [
        _row("cbcv", 60.0, grad_cpu_ms=1.5),
        _row("pymc-marketing", None, "timeout", fit_lower_s=900.0, grad_cpu_ms=16.5),
    ]
    lines = run.targets(rows, None, fs.FULL)
    line = next(line for line in lines if "cdnow BG/NBD" in line)
    assert line.startswith("MET") and "> 15×" in line and "per gradient 11.0×" in line


def test_gradient_only_child_times_one_gradient(tmp_path, pareto_sim):
    # what measure() runs for a tool whose fit timed out (here cbcv, the peer is not installed)
    path = fs.write_data(pareto_sim, tmp_path / "data.parquet")
    out = tmp_path / "grad.json"
    cmd = [sys.executable, str(BENCH / "fit_speed.py"), "child-grad", "--tool", "cbcv",
           "--model", "pareto_nbd", "--data", str(path), "--out", str(out)]
    result = fs.run_child(cmd, out, timeout=300)
    assert result.status == "ok", result.error
    assert 0 < result.result["grad_cpu_ms"] < 1000


def test_settings_from_the_command_line():
    run = _load_run_module()
    quick = run.settings_from(run.parse_args(["--quick", "--peer-init", "same"]))
    assert (quick.chains, quick.draws, quick.tune, quick.cores) == (2, 300, 300, 2)
    assert quick.peer_init == "same"
    full = run.settings_from(run.parse_args(["--draws", "500"]))
    assert (full.chains, full.draws, full.tune) == (4, 500, 1000)


def test_results_are_saved_as_timestamped_json(tmp_path):
    path = fs.save_results({"rows": [], "x": 1}, tmp_path / "results")
    assert path.name.startswith("fit_speed-") and path.suffix == ".json"
    assert json.loads(path.read_text())["x"] == 1


# -- the memory probe and the subprocess runner ---------------------------------------------------
def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_peak_rss_sums_a_process_tree(tmp_path):
    """A child holding 150 MB while its own child holds another 150 MB: the probe sees both."""
    out = tmp_path / "out.json"
    cmd = _script(
        tmp_path,
        f"""
        import json, subprocess, sys, time
        import numpy as np
        hold = "import numpy as np, time; a = np.ones(150 * 2**20 // 8); time.sleep(0.8)"
        grandchild = subprocess.Popen([sys.executable, "-c", hold])
        a = np.ones(150 * 2**20 // 8)
        grandchild.wait()
        open({str(out)!r}, "w").write(json.dumps({{"done": True}}))
        """,
    )
    run = fs.run_child(cmd, out, timeout=30)
    assert run.status == "ok" and run.result == {"done": True}
    assert run.peak_rss_bytes > 300 * 2**20
    assert run.peak_rss_bytes < 1.5 * 2**30
    assert run.cpu_s > 0


def test_run_child_kills_the_whole_group_on_timeout(tmp_path):
    out, pid_file = tmp_path / "out.json", tmp_path / "pid"
    cmd = _script(
        tmp_path,
        f"""
        import subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(g.pid))
        time.sleep(60)
        """,
    )
    start = time.perf_counter()
    run = fs.run_child(cmd, out, timeout=1.5)
    assert run.status == "timeout" and "timed out > 2 s" in run.error
    assert time.perf_counter() - start < 15
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the killed grandchild is reparented and reaped by init
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with open(f"/proc/{grandchild}/stat") as f:
            assert f.read().split()[2] == "Z"  # a zombie awaiting its reaper is dead too


def test_run_child_reports_a_failure(tmp_path):
    out = tmp_path / "out.json"
    run = fs.run_child(_script(tmp_path, "import sys; print('boom'); sys.exit(3)"), out, timeout=30)
    assert run.status == "error" and "exit 3" in run.error and "boom" in run.error


# -- CLV at scale ---------------------------------------------------------------------------------
def test_chunked_clv_reduction_equals_the_unchunked_computation(pareto_sim):
    """Per-customer means and per-draw totals from compressed, chunked rows equal those of the
    full draws × customers matrices computed by cbcv.predict in one call."""
    import arviz as az

    from cbcv import predict
    from cbcv.models.pareto_nbd import ParetoNBDModel

    rng = np.random.default_rng(0)
    draws = {
        "r": rng.uniform(0.5, 0.6, (1, 7)),
        "alpha": rng.uniform(10, 11, (1, 7)),
        "s": rng.uniform(0.55, 0.65, (1, 7)),
        "beta": rng.uniform(11, 12, (1, 7)),
    }
    model = ParetoNBDModel()
    model.idata = az.from_dict(posterior=draws)
    frame = fs.cbcv_frame(pareto_sim.iloc[:3000])
    got = fs.clv_summary(model, frame, horizon=52.0, chunk_elements=7 * 100)
    alive = predict.p_alive(model, frame)
    expected = predict.expected_purchases(model, 52.0, frame)
    assert got["n_draws"] == 7 and got["chunk_rows"] == 100 and got["n_customers"] == 3000
    assert got["mean_p_alive"] == pytest.approx(alive.mean(), rel=1e-12)
    assert got["mean_expected"] == pytest.approx(expected.mean(), rel=1e-12)
    assert got["expected_total_mean"] == pytest.approx(expected.sum(axis=1).mean(), rel=1e-12)
    assert got["expected_total_sd"] == pytest.approx(expected.sum(axis=1).std(), rel=1e-9)
    assert got["alive_total_mean"] == pytest.approx(alive.sum(axis=1).mean(), rel=1e-12)
