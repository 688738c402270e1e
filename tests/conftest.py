"""Shared fixtures: the bundled CDNOW sample, loaded and summarised once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Compiled PyTensor code is cached across runs (default ~/.pytensor); keep CI quiet and fast.
os.environ.setdefault("PYTENSOR_FLAGS", "floatX=float64")

CDNOW_CALIBRATION_END = "1997-09-30"
CDNOW_HOLDOUT_END = "1998-06-30"


@pytest.fixture(scope="session")
def cdnow_sample_load():
    """LoadResult of the bundled CDNOW 1/10 sample (2,357 customers)."""
    from cbcv.data.datasets import load_dataset

    return load_dataset("cdnow-sample")


@pytest.fixture(scope="session")
def cdnow_sample_tx(cdnow_sample_load):
    return cdnow_sample_load.transactions


@pytest.fixture(scope="session")
def cdnow_weekly(cdnow_sample_tx):
    """CDNOW sample, weekly, calibration to 1997-09-30, with the holdout to 1998-06-30."""
    from cbcv.data.summary import calibration_holdout

    return calibration_holdout(
        cdnow_sample_tx,
        calibration_end=CDNOW_CALIBRATION_END,
        holdout_end=CDNOW_HOLDOUT_END,
        time_unit="week",
        zero_amount_purchases=True,  # the papers count CDNOW's $0 purchases
    )


def run_cbcv(*args: str, cwd: Path | None = None, timeout: float = 1500):
    """``python -m cbcv.cli ARGS`` in a subprocess (stdout, stderr and the exit code)."""
    return subprocess.run(
        [sys.executable, "-m", "cbcv.cli", *args], cwd=cwd or ROOT, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cbcv report`` on the shipped CDNOW config (all four notebooks) with a small sampler
    (the CI budget); run once per session and shared by the report tests."""
    out = tmp_path_factory.mktemp("reports")
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "nuts", "draws": 300, "tune": 300, "chains": 2}
    config = out / "cdnow.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = run_cbcv("report", str(config), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    assert run_dir.parent == out / "cdnow"
    return run_dir


@pytest.fixture(scope="session")
def madrigal_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cbcv report`` on the shipped Madrigal config (the default report: a revenue panel, all
    five notebooks, backtests included) with MAP fits (the CI budget)."""
    out = tmp_path_factory.mktemp("madrigal-reports")
    cfg = yaml.safe_load((ROOT / "configs" / "madrigal.yaml").read_text())
    cfg["data"]["source"] = str(ROOT / "data" / "raw" / "cust_by_qtr_spend.csv")
    cfg["sampler"] = {"method": "map"}
    config = out / "madrigal.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = run_cbcv("report", str(config), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return Path(json.loads(res.stdout)["run_dir"])


def assert_same_likelihood(fit_total, reference, sym, arrays, point, grad_atol):
    """A fit's compiled total log-likelihood against Σ weight × the pointwise ``reference``
    (a model's ``*_logp``) at ``point``: value to 1e-13 relative, gradients to 1e-8 relative
    (``grad_atol`` absolute: near a mode they are small differences of large sums)."""
    import numpy as np
    import pytensor
    import pytensor.tensor as pt

    a = {k: pt.as_tensor_variable(v) for k, v in arrays.items()}
    ref_total = pt.sum(a["weight"] * reference(sym, a))
    inputs = list(sym.values())
    grads = [*pytensor.grad(fit_total, inputs), *pytensor.grad(ref_total, inputs)]
    out = pytensor.function(inputs, [fit_total, ref_total, *grads])(*point)
    assert out[0] == pytest.approx(out[1], rel=1e-13, abs=1e-9)
    np.testing.assert_allclose(out[2:6], out[6:10], rtol=1e-8, atol=grad_atol)


def assert_numba_backend_agrees(total, sym, point):
    """nutpie compiles a model with PyTensor's Numba backend: the compiled Op must give the C
    backend's value and gradient there too."""
    import numpy as np
    import pytensor

    outputs = [total, *pytensor.grad(total, sym)]
    c_mode = pytensor.function(sym, outputs)(*point)
    numba_mode = pytensor.function(sym, outputs, mode="NUMBA")(*point)
    np.testing.assert_allclose(numba_mode, c_mode, rtol=1e-12, atol=1e-9)


def stand_in_posterior(model, params: dict, coefs: dict, seed: int = 7):
    """A small stand-in posterior of a covariate model: 2 chains x 3 draws around ``params`` (the
    family's) and ``coefs`` (one array per process, one value per effect), with the reported
    effects as the fits derive them."""
    import arviz as az
    import numpy as np

    from cbcv.models.covariates import beta_mean_effect

    rng = np.random.default_rng(seed)
    post = {k: v * np.exp(rng.normal(0.0, 0.05, (2, 3))) for k, v in params.items()}
    k = len(model.design.effects)
    for process, c in coefs.items():
        post[f"{process}_coef"] = c + rng.normal(0.0, 0.05, (2, 3, k))
    for link in model.links:
        c = post[f"{link.process}_coef"]
        post[link.process] = c if link.partner is None else beta_mean_effect(
            post[link.param][..., None], post[link.partner][..., None], c)
    dims = {n: ["effect"] for p in model.processes for n in (p, f"{p}_coef")}
    return az.from_dict(posterior=post, coords={"effect": list(model.design.effects)}, dims=dims)
