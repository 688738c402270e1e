"""PyTensor links a BLAS in a pip install: ``cbcv.models`` points it at scipy-openblas32, so no
fit warns "could not link to a BLAS" and matrix products run in OpenBLAS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy_openblas32")

PROBE = """
import warnings
warnings.filterwarnings("error", message=".*could not link to a BLAS")
import numpy as np
import cbcv.models  # noqa: F401
import pytensor
import pytensor.tensor as pt

A, B, v = pt.matrix(), pt.matrix(), pt.vector()
f = pytensor.function([A, B, v], [A @ B, A @ v, pt.outer(v, v) + A])
ops = {type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}
rng = np.random.default_rng(0)
a, b, x = rng.random((60, 60)), rng.random((60, 60)), rng.random(60)
out = f(a, b, x)
assert np.allclose(out[0], a @ b) and np.allclose(out[1], a @ x)
assert np.allclose(out[2], np.outer(x, x) + a)
print("OPS", sorted(ops))
print("FLAGS", pytensor.config.blas__ldflags)
"""


def _probe(tmp_path: Path, rc: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTENSOR_FLAGS", "PYTENSORRC")}
    env["PYTENSOR_FLAGS"] = f"compiledir={tmp_path / 'cache'}"
    rc_file = tmp_path / "pytensorrc"
    rc_file.write_text(rc)
    env["PYTENSORRC"] = str(rc_file)
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=600
    )


def test_pip_install_links_openblas_without_a_warning(tmp_path: Path) -> None:
    run = _probe(tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "could not link to a BLAS" not in run.stderr
    assert "scipy_openblas" in run.stdout
    # the matrix products compiled to PyTensor's BLAS-backed C ops, not the NumPy fallback
    ops = run.stdout.split("OPS", 1)[1].splitlines()[0]
    assert "Gemm" in ops or "Dot22" in ops, ops
    assert "CGemv" in ops and "CGer" in ops, ops


def test_a_blas_the_user_configured_is_kept(tmp_path: Path) -> None:
    from cbcv.models.blas import openblas_ldflags

    flags = openblas_ldflags()
    assert flags is not None
    user_flags = flags + " -DCBCV_USER_CHOSE_THIS=1"
    run = _probe(tmp_path, rc=f"[blas]\nldflags = {user_flags}\n")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("FLAGS ", 1)[1].strip() == user_flags


def test_reading_the_flags_leaves_them_whole(tmp_path: Path) -> None:
    """A caller (a test, a notebook) that asks ``openblas_ldflags`` for the flags
    must not leave PyTensor linking OpenBLAS without the symbol renames (every later compile
    would then fail with an undefined ``ddot_``)."""
    probe = (
        "import cbcv.models, pytensor\n"
        "from cbcv.models.blas import openblas_ldflags\n"
        "set_ = pytensor.config.blas__ldflags\n"
        "assert openblas_ldflags() == set_\n"
        "assert pytensor.config.blas__ldflags == set_ and '-Dddot_=scipy_ddot_' in set_\n"
        "print('OK')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTENSOR_FLAGS", "PYTENSORRC")}
    env["PYTENSOR_FLAGS"] = f"compiledir={tmp_path / 'cache'}"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "OK" in run.stdout, run.stderr[-2000:]
