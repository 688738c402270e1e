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
