"""``make bench``: cbcv's fitting speed and memory against PyMC-Marketing, and CLV at scale.

    python benchmarks/run.py                 # everything, full settings (4 chains × 1000/1000)
    python benchmarks/run.py --quick         # 2 chains × 300/300
    python benchmarks/run.py --only cdnow    # one data set (repeatable: --only cdnow --only 100k)
    python benchmarks/run.py --no-peer       # cbcv only (no PyMC-Marketing environment needed)

PyMC-Marketing never enters the main ``.venv``: when it is not importable here, this script
creates ``.venv-bench`` (``$CBCV_BENCH_VENV`` to put it elsewhere) with cbcv's dev install plus
the pinned peer from ``benchmarks/requirements-peer.txt``, and re-runs itself with that
interpreter, so both tools run on the same PyMC. Results: a table on stdout and
``benchmarks/results/fit_speed-<timestamp>.json``. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import fit_speed as fs  # noqa: E402

REEXEC_ENV = "CBCV_BENCH_REEXEC"
VENV_ENV = "CBCV_BENCH_VENV"
#: Horizon of the CLV-at-scale predictions, in weeks.
CLV_HORIZON = 52.0

# Targets from the issue (checked and reported, never asserted).
TARGET_RATIO_CDNOW = 3.0
TARGET_RATIO_LARGE = 10.0
TARGET_PARETO_CDNOW_S = 15.0
TARGET_CLV_PEAK_MB = 2048.0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="2 chains × 300 draws / 300 tune")
    p.add_argument("--only", action="append", choices=fs.DATASETS, help="data set(s) to run")
    p.add_argument("--models", default=",".join(fs.MODELS), help="comma list of bgnbd,pareto_nbd")
    p.add_argument("--no-peer", action="store_true", help="cbcv only")
    p.add_argument(
        "--peer-timeout", type=float, default=900.0, help="seconds per PyMC-Marketing fit"
    )
    p.add_argument(
        "--peer-init",
        choices=("default", "same"),
        default="default",
        help="PyMC-Marketing's NUTS init: PyMC's default or cbcv's (dense mass matrix)",
    )
    p.add_argument("--no-clv", action="store_true", help="skip the CLV-at-scale check")
    p.add_argument(
        "--clv-customers",
        type=int,
        default=1_000_000,
        help="simulated customers scored by the CLV-at-scale check",
    )
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up fits")
    p.add_argument(
        "--compiledir",
        type=Path,
        help="PyTensor compile cache for the fits (default: a fresh one in the work folder)",
    )
    for name in ("draws", "tune", "chains", "cores", "seed"):
        p.add_argument(f"--{name}", type=int, help=f"override the sampler's {name}")
    p.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON goes")
    p.add_argument("--keep", action="store_true", help="keep the work folder (data, posteriors)")
    return p.parse_args(argv)


# -- the peer's environment ----------------------------------------------------------------------
def peer_available() -> bool:
    return importlib.util.find_spec("pymc_marketing") is not None


def bench_venv() -> Path:
    return Path(os.environ.get(VENV_ENV, ROOT / ".venv-bench"))


def ensure_peer_python() -> Path:
    """The bench environment's interpreter, creating the environment when it lacks the peer."""
    venv = bench_venv()
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import pymc_marketing, cbcv"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(
        f"creating {venv} (cbcv dev install + {HERE / 'requirements-peer.txt'}) ...",
        file=sys.stderr,
    )
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-e",
            f"{ROOT}[dev]",
            "-r",
            str(HERE / "requirements-peer.txt"),
        ],
        check=True,
    )
    return python


def reexec_with_peer(argv: Sequence[str]) -> None:
    """Re-run this script under the bench environment (once)."""
    if os.environ.get(REEXEC_ENV):
        raise SystemExit("error: pymc_marketing is still not importable in the bench environment")
    python = ensure_peer_python()
    os.environ[REEXEC_ENV] = "1"
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])


# -- the run -------------------------------------------------------------------------------------
def settings_from(args: argparse.Namespace) -> fs.BenchSettings:
    base = fs.QUICK if args.quick else fs.FULL
    overrides = {k: getattr(args, k) for k in ("draws", "tune", "chains", "cores", "seed")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, peer_init=args.peer_init, **overrides)


def targets(
    rows: Sequence[fs.Row], clv: dict[str, Any] | None, settings: fs.BenchSettings
) -> list[str]:
    """One line per target of the issue: met, missed or not measured."""
    index = {(r.dataset, r.model, r.tool): r for r in rows}
    full = settings.chains == 4 and settings.draws == 1000 and settings.tune == 1000
    out = []

    def ratio_line(dataset: str, need: float) -> None:
        for model in fs.MODELS:
            ours, peer = (
                index.get((dataset, model, "cbcv")),
                index.get((dataset, model, "pymc-marketing")),
            )
            if not ours or not peer or ours.fit_s is None:
                continue
            label = f"{dataset} {fs.MODEL_LABELS[model]}: peer/cbcv ≥ {need:g}×"
            if peer.status == "ok" and peer.fit_s is not None:
                r = peer.fit_s / ours.fit_s
                out.append(f"{'MET   ' if r >= need else 'MISSED'} {label}: {r:.1f}×")
            elif peer.status == "timeout":
                lower = (peer.fit_lower_s or peer.process_s or 0.0) / ours.fit_s
                grad = (f"; per gradient {peer.grad_cpu_ms / ours.grad_cpu_ms:.1f}×"
                        if peer.grad_cpu_ms and ours.grad_cpu_ms else "")
                out.append(
                    f"{'MET   ' if lower >= need else 'OPEN  '} {label}: > {lower:.0f}× (peer timed out{grad})"
                )

    ratio_line("cdnow", TARGET_RATIO_CDNOW)
    for ds in ("100k", "1m"):
        ratio_line(ds, TARGET_RATIO_LARGE)
    pareto = index.get(("cdnow", "pareto_nbd", "cbcv"))
    if pareto and pareto.fit_s is not None:
        ok = pareto.fit_s < TARGET_PARETO_CDNOW_S
        note = "" if full else " (not at the target's 4×1000/1000 settings)"
        out.append(
            f"{'MET   ' if ok else 'MISSED'} CDNOW Pareto/NBD cbcv NUTS < {TARGET_PARETO_CDNOW_S:g} s: {pareto.fit_s:.1f} s{note}"
        )
    if clv and clv.get("status") == "ok":
        ok = clv["peak_rss_mb"] < TARGET_CLV_PEAK_MB
        out.append(
            f"{'MET   ' if ok else 'MISSED'} CLV for {clv['n_customers']:,} customers × {clv['n_draws']:,} draws "
            f"< {TARGET_CLV_PEAK_MB / 1024:g} GB peak: {clv['peak_rss_mb']:.0f} MB"
        )
    zs = [
        fs.agreement_z(index[(r.dataset, r.model, "cbcv")].posterior[p], r.posterior[p])
        for r in rows
        if r.tool == "pymc-marketing" and r.status == "ok" and (r.dataset, r.model, "cbcv") in index
        for p in fs.PARAMS[r.model]
        if p in index[(r.dataset, r.model, "cbcv")].posterior
    ]
    if zs:
        worst = max(zs)
        out.append(
            f"{'MET   ' if worst < fs.AGREEMENT_Z else 'MISSED'} same posterior (all |Δmean|/mcse < {fs.AGREEMENT_Z:g}): worst {worst:.2f}"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    tools = ("cbcv",) if args.no_peer else fs.TOOLS
    if "pymc-marketing" in tools and not peer_available():
        reexec_with_peer(argv)
    datasets = tuple(d for d in fs.DATASETS if d in (args.only or fs.DATASETS))
    models = tuple(m for m in fs.MODELS if m in args.models.split(","))
    settings = settings_from(args)
    workdir = Path(tempfile.mkdtemp(prefix="cbcv-bench-"))
    compiledir = args.compiledir or workdir / "pytensor"
    flags = ",".join(
        f for f in (os.environ.get("PYTENSOR_FLAGS", ""), f"compiledir={compiledir}") if f
    )
    env = {"PYTENSOR_FLAGS": flags}
    meta: dict[str, Any] = {
        "versions": fs.versions(),
        "python": sys.executable,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "settings": dataclasses.asdict(settings),
        "peer_timeout_s": args.peer_timeout,
        "pytensor_flags": flags,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    log = partial(print, flush=True)
    log(f"cbcv fit-speed benchmark: {meta['versions']}")
    log(f"settings {meta['settings']}; {meta['cpus']} CPUs; load {meta['loadavg_start']}")
    try:
        if not args.no_warmup:
            log("[warm-up] filling a fresh PyTensor compile cache (cold-start cost)")
            meta["warmup"] = fs.warm_up(models, tools, workdir, env, log=log)
        rows = fs.run_benchmark(
            datasets, models, tools, settings, args.peer_timeout, workdir, env, log=log
        )
        clv = None
        if not args.no_clv:
            clv = run_clv_check(datasets, args.clv_customers, settings.seed, workdir, env)
        log("\n" + fs.format_table(rows))
        if clv:
            log("\n" + format_clv(clv))
        lines = targets(rows, clv, settings)
        if lines:
            log("\nTargets (issue):\n" + "\n".join(f"  {line}" for line in lines))
        meta["loadavg_end"] = os.getloadavg()
        payload = {
            **meta,
            "rows": [dataclasses.asdict(r) for r in rows],
            "clv": clv,
            "targets": lines,
        }
        path = fs.save_results(payload, args.results)
        log(f"\nresults: {path}; load average at the end {meta['loadavg_end']}")
    finally:
        if args.keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_clv_check(
    datasets: Sequence[str], n_customers: int, seed: int, workdir: Path, env: dict[str, str]
) -> dict[str, Any] | None:
    """P(alive) and expected purchases for ``n_customers`` simulated CDNOW-like customers over
    the full posterior of cbcv's Pareto/NBD fit on the largest data set fitted (the number of
    draws, not the customers it was fitted to, decides the work per customer)."""
    candidates = [
        workdir / f"{d}-pareto_nbd-cbcv.nc" for d in ("1m", "100k", "cdnow") if d in datasets
    ]
    posterior = next((p for p in candidates if p.exists()), None)
    if posterior is None:
        print("[CLV] skipped: no cbcv Pareto/NBD posterior was fitted", flush=True)
        return None
    data = workdir / "1m-pareto_nbd.parquet"
    if n_customers != fs.SIMULATED_SIZES["1m"] or not data.exists():
        frame = fs.simulated_summary("pareto_nbd", n_customers, seed)
        data = fs.write_data(frame, workdir / "clv-customers.parquet")
    print(
        f"[CLV] {n_customers:,} customers, posterior {posterior.name}, {CLV_HORIZON:g} weeks",
        flush=True,
    )
    result = fs.run_clv("pareto_nbd", data, posterior, CLV_HORIZON, workdir, env)
    result["posterior_from"] = posterior.name
    print(
        f"  {result['status']} {result['process_s']:.1f} s, peak {result['peak_rss_mb']:.0f} MB "
        f"{result['error']}",
        flush=True,
    )
    return result


def format_clv(clv: dict[str, Any]) -> str:
    """The CLV-at-scale result in two lines."""
    if clv.get("status") != "ok":
        return f"CLV at scale: {clv.get('status')} {clv.get('error', '')}"
    return (
        f"CLV at scale (Pareto/NBD, posterior of {clv['posterior_from']}): {clv['n_customers']:,} "
        f"customers ({clv['n_distinct']:,} distinct) × {clv['n_draws']:,} draws, "
        f"{CLV_HORIZON:g}-week horizon, P(alive) and expected purchases with 90% intervals per "
        f"customer and per-draw totals: {clv['seconds']:.1f} s, peak {clv['peak_rss_mb']:.0f} MB "
        f"(process tree; getrusage {clv['maxrss_bytes'] / 2**20:.0f} MB). One unchunked draws × "
        f"customers matrix would be {clv['unchunked_output_bytes'] / 2**30:.1f} GB per quantity.\n"
        f"  expected purchases in the horizon, all customers: {clv['expected_total_mean']:,.0f} ± "
        f"{clv['expected_total_sd']:,.0f}; expected alive now: {clv['alive_total_mean']:,.0f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
