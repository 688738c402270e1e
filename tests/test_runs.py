"""Run folders, caches and interrupts: a rerun leaves no earlier run's files, a killed run leaves
nothing the next one trusts, an interrupted command says so and exits 130/143, and the report
folder holds no customer-level data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import CbcvError

ROOT = Path(__file__).resolve().parents[1]


def cbcv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cbcv.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


# --- item 9: the validation cache -------------------------------------------------------------

def distinct_rows(path: Path) -> int:
    return len(pd.read_parquet(path))


def test_a_run_killed_before_its_manifest_leaves_nothing_trusted(tmp_path, monkeypatch):
    import cbcv.pipeline.workflow as W

    work = tmp_path / "work"
    full = W.validate_source("cdnow-sample", work)
    assert distinct_rows(work / "accepted.parquet") == full.reconciliation.rows_accepted
    real = W.validate_to_parquet

    def killed(*args, **kwargs):  # the accepted rows are written, then the process dies
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(W, "validate_to_parquet", killed)
    with pytest.raises(KeyboardInterrupt):
        W.validate_source("cdnow-sample", work, as_of=pd.Timestamp("1997-03-31").date())
    monkeypatch.undo()
    again = W.validate_source("cdnow-sample", work)
    assert again.reconciliation.rows_accepted == full.reconciliation.rows_accepted
    assert distinct_rows(again.accepted) == again.reconciliation.rows_accepted
    assert not list(work.glob(".*tmp-*")), "temporary files are cleaned up"


def test_a_cached_file_replaced_behind_the_manifest_is_validated_again(tmp_path):
    import cbcv.pipeline.workflow as W

    work = tmp_path / "work"
    full = W.validate_source("cdnow-sample", work)
    pd.read_parquet(work / "accepted.parquet").iloc[:10].to_parquet(work / "accepted.parquet")
    again = W.validate_source("cdnow-sample", work)
    assert distinct_rows(again.accepted) == again.reconciliation.rows_accepted == full.reconciliation.rows_accepted


def test_the_cache_key_includes_the_as_of_date(tmp_path):
    import cbcv.pipeline.workflow as W

    work = tmp_path / "work"
    W.validate_source("cdnow-sample", work)
    early = W.validate_source("cdnow-sample", work, as_of=pd.Timestamp("1997-03-31").date())
    assert distinct_rows(early.accepted) == early.reconciliation.rows_accepted
    assert json.loads((work / "validated.json").read_text())["reconciliation"]["rows_accepted"] == distinct_rows(early.accepted)


def test_a_live_lock_blocks_and_a_stale_one_is_taken_over(tmp_path):
    from cbcv.core.cache import FolderLock

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".cbcv.lock").write_text(str(sleeper.pid))
        with pytest.raises(CbcvError, match=f"in use by another cbcv run \\(pid {sleeper.pid}"):
            FolderLock(tmp_path, timeout=0.3).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with FolderLock(tmp_path, timeout=0.3):  # its owner is gone: stale
        assert (tmp_path / ".cbcv.lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".cbcv.lock").exists()


def _scored(path: Path):
    from cbcv.clv.scoring import ScoredBase

    path.write_bytes(b"")
    dec = pd.Index([1, 2], name="value_decile")
    return ScoredBase(
        path=path, n_customers=5, n_keys=3, n_pairs=2, total=np.array([1.0, 2.0, 3.0]), expected_total=None,
        group_draws={"value_decile": pd.DataFrame(np.ones((3, 2)), columns=dec),
                     "cohort": pd.DataFrame(np.ones((3, 2)), columns=pd.Index(["1997-01", "1997-02"], name="cohort"))},
        group_counts={"value_decile": pd.Series([3.0, 2.0], index=dec),
                      "cohort": pd.Series([4.0, 1.0], index=["1997-01", "1997-02"])},
        top_share_draws=pd.DataFrame({"top 10%": [0.5, 0.6, 0.7]}), p_alive_counts=np.ones((3, 4)),
        p_alive_by_mean=np.array([1.0, 2.0, 1.0, 1.0]), meta={"purchase_model": "bgnbd", "horizon": None},
    )


def test_the_scored_base_is_kept_without_pickle(tmp_path):
    from cbcv.clv.scored_store import load_scored, save_scored

    scored = _scored(tmp_path / "customers.parquet")
    path = save_scored(tmp_path / "scored.npz", "k1", scored)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)
    back = load_scored(path, "k1")
    assert back is not None and back.n_customers == 5 and back.meta == scored.meta
    np.testing.assert_array_equal(back.total, scored.total)
    pd.testing.assert_frame_equal(back.by("cohort"), scored.by("cohort"))
    pd.testing.assert_frame_equal(back.by("value_decile"), scored.by("value_decile"))
    assert load_scored(path, "another key") is None


def test_a_pickled_cache_file_is_never_unpickled(tmp_path):
    from cbcv.clv.scored_store import load_scored

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    np.savez(tmp_path / "scored.npz", header=np.array([Payload()], dtype=object))
    assert load_scored(tmp_path / "scored.npz", "k") is None
    assert not marker.exists()
    for module in ("pipeline/company_data.py", "clv/scored_store.py"):
        source = (ROOT / "src" / "cbcv" / module).read_text()
        assert "import pickle" not in source and "pickle.loads" not in source, module


# --- item 7: the audit's --out folder ------------------------------------------------------

def test_audit_rerun_leaves_no_earlier_files_and_refuses_foreign_ones(tmp_path):
    out = tmp_path / "audit"
    res = cbcv("audit", "cdnow-sample", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert (out / "accepted.parquet").is_file()
    res = cbcv("audit", "cdnow-sample", "--out", str(out), "--as-of", "1997-02-28")  # fewer rows
    assert res.returncode == 0, res.stderr
    rec = json.loads((out / "reconciliation.json").read_text())
    assert distinct_rows(out / "accepted.parquet") == rec["rows_accepted"] < 6919  # not the earlier run's
    (out / "notes.txt").write_text("mine")
    res = cbcv("audit", "cdnow-sample", "--out", str(out))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"cbcv: error: --out {out}: not empty and not written by cbcv audit (notes.txt); "
        "choose a new or empty folder")
    assert (out / "notes.txt").read_text() == "mine" and (out / "reconciliation.json").is_file()


def test_an_interrupted_audit_folder_is_cleared_by_the_next_run(tmp_path):
    from cbcv.core import outputs

    out = tmp_path / "audit"
    outputs.claim(out, "audit")
    (out / "cohorts.csv").write_text("half written")  # killed before outputs.record
    outputs.claim(out, "audit")
    assert not (out / "cohorts.csv").exists()


# --- item 10: interrupts ---------------------------------------------------------------------

def _interrupt(args: list[str], sig: int, wait_for: str, delay: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, "-m", "cbcv.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if wait_for in line:
            break
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, "".join(seen) + err)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_fit_saves_nothing_and_says_so(tmp_path, sig, code):
    out = tmp_path / "fit"
    res = _interrupt(["fit", "cdnow-sample", "--model", "bgnbd", "--calibration-end", "1997-09-30",
                      "--draws", "200000", "--tune", "200", "--chains", "1", "--out", str(out)],
                     sig, "fitting", 4.0)
    assert res.returncode == code, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "cbcv: interrupted"
    assert "Traceback" not in res.stderr and "done" not in res.stderr
    assert not (out / "fit.json").exists() and not (out / "posterior.nc").exists()


def test_an_interrupted_audit_has_no_duckdb_traceback(tmp_path):
    import duckdb

    src = tmp_path / "big.csv"
    duckdb.sql(f"COPY (SELECT 'c' || (i % 200000) AS customer_id, DATE '1997-01-01' + CAST(i % 500 AS INTEGER) "
               f"AS date, (i % 97) * 1.5 AS amount FROM range(4000000) t(i)) TO '{src}' (HEADER)")
    res = _interrupt(["audit", str(src), "--out", str(tmp_path / "out")],
                     signal.SIGINT, "validating", 1.5)
    assert res.returncode == 130, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "cbcv: interrupted"
    assert "Traceback" not in res.stderr and "duckdb" not in res.stderr.lower()
    assert not (tmp_path / "out" / "reconciliation.json").exists()


def _fake_report(tmp_path: Path, monkeypatch, fail_at: str | None):
    import shutil

    import cbcv.report.runner as R

    def execute(src, dst, **kwargs):
        if fail_at and fail_at in src:
            raise KeyboardInterrupt
        shutil.copy(src, dst)

    monkeypatch.setattr(R.pm, "execute_notebook", execute)
    monkeypatch.setattr(R, "ensure_kernel", lambda: "python3")
    cfg = tmp_path / "co.yaml"
    cfg.write_text((ROOT / "configs" / "cdnow.yaml").read_text())
    return R, cfg


def test_an_interrupted_report_stays_marked_in_progress(tmp_path, monkeypatch):
    from cbcv.report.runfolder import IN_PROGRESS, is_complete

    R, cfg = _fake_report(tmp_path, monkeypatch, fail_at="02_")
    with pytest.raises(KeyboardInterrupt):
        R.run_report(cfg, tmp_path / "reports", progress=lambda m: None)
    (company,) = (tmp_path / "reports").iterdir()
    (run,) = company.iterdir()
    assert run.name.endswith(".partial") and (run / IN_PROGRESS).is_file() and not is_complete(run)
    assert (run / "01_customer_base_audit.html").is_file() and not (run / "index.html").exists()


def test_a_finished_report_is_renamed_complete(tmp_path, monkeypatch):
    from cbcv.report.runfolder import IN_PROGRESS, is_complete

    R, cfg = _fake_report(tmp_path, monkeypatch, fail_at=None)
    result = R.run_report(cfg, tmp_path / "reports", notebooks=["01_customer_base_audit"], progress=lambda m: None)
    assert is_complete(result.run_dir) and not (result.run_dir / IN_PROGRESS).exists()
    assert result.index.is_file() and result.provenance.is_file()
    assert json.loads(result.provenance.read_text())["run_id"] == result.run_dir.name
    assert [p.name for p in result.run_dir.parent.iterdir()] == [result.run_dir.name]


# --- item 18: no customer-level data in the report folder -----------------------------------

def test_report_posteriors_hold_no_customer_level_data(tmp_path):
    import arviz as az

    from cbcv.config import load_config
    from cbcv.pipeline.workflow import fit_company_models, load_company

    cfg = tmp_path / "co.yaml"
    text = (ROOT / "configs" / "cdnow.yaml").read_text()
    cfg.write_text(text.replace("method: nuts", "method: map").replace(
        "models: [bgnbd, pareto_nbd, gamma_gamma]", "models: [bgnbd, gamma_gamma]"))
    loaded = load_config(cfg)
    fit_company_models(loaded, load_company(loaded), tmp_path / "models")
    for nc in (tmp_path / "models").glob("*/posterior.nc"):
        idata = az.from_netcdf(nc)
        assert "constant_data" not in idata.groups() and "observed_data" not in idata.groups(), nc
        for group in idata.groups():
            dims = set(getattr(idata, group).dims)
            assert not dims & {"customer", "row"}, (nc, group, dims)


def test_a_report_stopped_by_sigterm_says_so_and_stays_partial(tmp_path):
    import psutil
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["sampler"] = {"method": "map"}
    cfg["report"] = {"notebooks": ["01_customer_base_audit", "02_model_fit_and_validation"]}
    config = tmp_path / "cdnow.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "cbcv.cli", "report", str(config), "--out", str(tmp_path / "r")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # page 01 is written; notebook 02 is running
        seen.append(line)
        if line.startswith("[2/2]"):
            break
    time.sleep(2.0)
    kernels = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen) + err
    assert err.strip().splitlines()[-1] == "cbcv: interrupted" and "Traceback" not in err
    (run,) = (tmp_path / "r" / "cdnow").iterdir()
    assert run.name.endswith(".partial") and (run / "RUN_IN_PROGRESS.txt").is_file()
    assert (run / "01_customer_base_audit.html").is_file() and not (run / "index.html").exists()
    _, alive = psutil.wait_procs(kernels, timeout=20)
    assert not alive, "the notebook kernel is shut down"
