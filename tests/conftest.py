"""Shared fixtures: the bundled CDNOW sample, loaded and summarised once per test session."""

from __future__ import annotations

import os

import pytest

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
