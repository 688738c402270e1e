"""Scale benchmark (``make bench-scale``): a simulated company of 1M or 10M customers, end to end.

Each stage runs in its own process (so its peak memory is its own) on files the previous stage
wrote, exactly as a scheduler would run the pipeline on a data room:

``simulate``  a BG/NBD + gamma-gamma transaction log written to Parquet chunk by chunk
              (~10 transactions per customer; not part of the pipeline's time);
``load``      validate every row (:func:`cbcv.data.load.validate_to_parquet`; duplicates checked),
              accepted rows to Parquet, rejections and reconciliation kept;
``summarise`` per-customer summaries in DuckDB SQL to Parquet
              (:func:`cbcv.data.summary_files.write_summaries`);
``fit``       BG/NBD by NUTS (nutpie) on the counted distinct (x, t_x, T) summaries
              (:func:`cbcv.data.summary_files.summary_counts`), gamma-gamma by NUTS on a seeded
              random sample of repeat buyers (its likelihood cannot be compressed);
              t_x and T rounded to whole weeks (``--resolution``), with the MAP on exact and
              rounded counts reported side by side;
``score``     CLV, P(alive), DERT and 52-week expected transactions of every customer over every
              posterior draw (:func:`cbcv.clv.scoring.score_customers`), per-customer Parquet;
``value``     the bridge to value per share (:func:`cbcv.valuation.bridge.value_bridge`);
``render``    an HTML page of aggregates (:func:`cbcv.report.scale.scored_base_html`): no
              per-customer data beyond an anonymised, capped top-customer table;
``report``    (with ``--report``; not part of end to end) the full ``cbcv report`` — all four
              notebooks — on the simulated log, the one path of every size (validation,
              audit, BG/NBD and gamma-gamma fits with holdout validation, CLV, valuation and
              sensitivities), timed and measured like the other stages;
``history``   (with ``--history``; not part of end to end) ``cbcv score --as-of`` with a
              categorical covariate: validation, summaries, covariates joined, MAP fits with
              the covariate, every customer scored at its own, one history partition; then
              the date again with the fits reused (the scoring alone).

Targets (issue "Scale"): 10M customers end to end under 15 minutes and 8 GB peak on 2 cores;
1M under 3 minutes. End to end = load + summarise + fit + score + value + render.

    .venv/bin/python benchmarks/scale.py                  # 1M, then 10M
    .venv/bin/python benchmarks/scale.py --sizes 1m       # 1M only
    .venv/bin/python benchmarks/scale.py --sizes 100k --draws 200 --tune 200   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fit_speed as fs  # noqa: E402  (run_child, PeakRSS: the process-tree memory probe)

SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
STAGES = ("simulate", "load", "summarise", "fit", "score", "value", "render", "report", "history")
PIPELINE = ("load", "summarise", "fit", "score", "value", "render")  # end to end
TARGETS = {"1m": (180.0, None), "10m": (900.0, 8 * 1024.0)}  # seconds, peak MB
#: Simulation truth: ~10 transactions per customer over two years (acquisition in the first).
TRUTH = {"r": 0.9, "alpha": 4.0, "a": 0.5, "b": 4.0}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}
START, ACQUISITION_END, END = "2024-01-01", "2024-12-31", "2025-12-31"


@dataclass(frozen=True)
class ScaleSettings:
    n_customers: int
    chains: int = 2
    draws: int = 500
    tune: int = 500
    seed: int = 7
    memory_limit: str = "6GB"
    threads: int | None = None
    spend_sample: int = 50_000
    #: t_x and T rounded to this many weeks for the NUTS fit (None: exact; see summary_counts)
    resolution: float | None = 1.0
    #: nutpie (the `nutpie` extra, in dev) adapts with far fewer gradients than PyMC's NUTS:
    #: BG/NBD on 100k customers 60 s against 391 s, same posterior
    sampler: str = "nutpie"
    interval_draws: int = 400
    chunk_size: int = 250_000
    #: run the full out-of-core report as a last stage
    report: bool = False
    #: run ``cbcv score --as-of`` with a covariate as a last stage
    history: bool = False


def stage_simulate(d: Path, s: ScaleSettings) -> dict[str, Any]:
    from cbcv.data.simulate import BGNBDParams, GammaGammaParams, write_parquet

    w = write_parquet(
        d / "transactions.parquet", BGNBDParams(**TRUTH), s.n_customers, start=START,
        acquisition_end=ACQUISITION_END, end=END, time_unit="week",
        spend=GammaGammaParams(**SPEND), seed=s.seed, chunk_size=s.chunk_size,
    )
    return {"n_customers": w.n_customers, "n_transactions": w.n_transactions}


def stage_load(d: Path, s: ScaleSettings) -> dict[str, Any]:
    from cbcv.data.load import validate_to_parquet

    v = validate_to_parquet(
        d / "transactions.parquet", d / "accepted.parquet", as_of=END,
        memory_limit=s.memory_limit, threads=s.threads,
    )
    rec = v.reconciliation
    v.rejections.to_csv(d / "rejections.csv", index=False)
    (d / "reconciliation.json").write_text(json.dumps(rec.to_dict(), indent=2))
    return {"rows_read": rec.rows_read, "rows_accepted": rec.rows_accepted,
            "rows_rejected": rec.rows_rejected, "n_customers": rec.n_customers}


def stage_summarise(d: Path, s: ScaleSettings) -> dict[str, Any]:
    from cbcv.data.summary_files import write_summaries

    w = write_summaries(
        d / "accepted.parquet", d / "summary.parquet", calibration_end=END, time_unit="week",
        memory_limit=s.memory_limit, threads=s.threads,
    )
    return {"n_customers": w.n_customers}


def stage_fit(d: Path, s: ScaleSettings) -> dict[str, Any]:
    from cbcv.data.summary_files import sample_rows, summary_counts
    from cbcv.models import BetaGeoModel, GammaGammaModel, SamplerSettings

    settings = SamplerSettings(draws=s.draws, tune=s.tune, chains=s.chains, seed=s.seed,
                               nuts_sampler=s.sampler)
    summary = d / "summary.parquet"
    counts = summary_counts(summary, resolution=s.resolution, memory_limit=s.memory_limit)
    bg = BetaGeoModel()
    t0 = time.perf_counter()
    bg.fit(counts, settings)
    t_bg = time.perf_counter() - t0
    bg.save(d / "bgnbd.nc")
    # the effect of rounding, as the fit must report it: MAP on the exact and the rounded counts
    map_ = SamplerSettings(method="map", seed=s.seed)
    effect: dict[str, Any] = {}
    if s.resolution is not None:
        t0 = time.perf_counter()
        exact, rounded = BetaGeoModel(), BetaGeoModel()
        exact.fit(summary_counts(summary, memory_limit=s.memory_limit), map_)
        rounded.fit(counts, map_)
        effect = {
            "map_exact": {k: float(exact.idata.posterior[k].mean()) for k in bg.param_names},
            "map_rounded": {k: float(rounded.idata.posterior[k].mean()) for k in bg.param_names},
            "seconds": time.perf_counter() - t0,
        }
    repeat = sample_rows(d / "summary.parquet", s.spend_sample, columns=("x", "mean_repeat_spend"),
                         where="x > 0", seed=s.seed, memory_limit=s.memory_limit)
    gg = GammaGammaModel()
    t0 = time.perf_counter()
    gg.fit(repeat, settings)
    t_gg = time.perf_counter() - t0
    gg.save(d / "gamma_gamma.nc")
    out: dict[str, Any] = {
        "n_distinct": int(len(counts)), "n_customers": int(counts["count"].sum()),
        "spend_sample": int(len(repeat)), "bgnbd_s": t_bg, "gamma_gamma_s": t_gg,
        "n_distinct_exact": int(counts.attrs["n_distinct_exact"]), "resolution": s.resolution,
        "rounding_effect": effect,
    }
    for name, model in (("bgnbd", bg), ("gamma_gamma", gg)):
        summ = model.summary()
        out[name] = {
            "mean": summ["mean"].to_dict(), "r_hat_max": float(summ["r_hat"].max()),
            "ess_bulk_min": float(summ["ess_bulk"].min()), "divergences": model.divergences(),
        }
    return out


def _models(d: Path) -> tuple[Any, Any]:
    import arviz as az

    from cbcv.models import BetaGeoModel, GammaGammaModel

    bg, gg = BetaGeoModel(), GammaGammaModel()
    bg.idata = az.from_netcdf(str(d / "bgnbd.nc"))
    gg.idata = az.from_netcdf(str(d / "gamma_gamma.nc"))
    return bg, gg


def stage_score(d: Path, s: ScaleSettings) -> dict[str, Any]:
    import numpy as np

    from cbcv.clv.scoring import score_customers

    bg, gg = _models(d)
    scored = score_customers(
        bg, gg, d / "summary.parquet", d / "customers.parquet", margin=0.3,
        annual_discount_rate=0.1, time_unit="week", horizon=52.0,
        interval_draws=s.interval_draws, memory_limit=s.memory_limit, threads=s.threads,
    )
    scored.write_aggregates(d / "aggregates")
    return {
        "n_customers": scored.n_customers, "n_keys": scored.n_keys, "n_pairs": scored.n_pairs,
        "n_draws": scored.n_draws, "clv_total_median": float(np.median(scored.total)),
    }


def stage_value(d: Path, s: ScaleSettings) -> dict[str, Any]:
    import numpy as np

    from cbcv.valuation.bridge import value_bridge
    from cbcv.valuation.inputs import FinancialDraws

    total = np.load(d / "aggregates" / "clv_total.npy")
    fin = FinancialDraws.from_values(
        total.size, contribution_margin=0.3, discount_rate=0.1, shares_outstanding=1_000_000.0,
        fixed_costs=0.05 * float(np.median(total)), tax_rate=0.25,
    )
    result = value_bridge(total, None, fin, currency="USD")
    payload = result.to_json_dict()
    (d / "valuation.json").write_text(json.dumps(payload, indent=2, default=float))
    vps = np.quantile(result.value_per_share, [0.05, 0.5, 0.95])
    return {"value_per_share": [float(v) for v in vps]}


def stage_render(d: Path, s: ScaleSettings) -> dict[str, Any]:
    from cbcv.report.scale import scored_base_html

    path = scored_base_html(
        d / "aggregates", d / "index.html", valuation=d / "valuation.json",
        title=f"Simulated company, {s.n_customers:,} customers (benchmark data)",
    )
    return {"html_bytes": path.stat().st_size}


#: The report stage's calibration end: half a year of holdout for the validation pages.
REPORT_CALIBRATION_END = "2025-06-30"


def report_config(d: Path, s: ScaleSettings, name: str = "report.yaml", **changes: Any) -> Path:
    """A company config for the simulated log with the benchmark's DuckDB caps (illustrative
    financials), written into ``d`` as ``name``; ``changes`` replace its top-level fields."""
    import yaml

    label = f"{s.n_customers:,}".replace(",", "_")
    cfg = {
        "company": {"name": f"Simulated company, {s.n_customers:,} customers (benchmark data)",
                    "slug": f"bench-scale-{label}", "currency": "USD"},
        "data": {"source": str(d / "transactions.parquet")},
        "as_of": END, "calibration_end": REPORT_CALIBRATION_END, "holdout_end": END,
        "time_unit": "week", "cohort_period": "quarter",
        "models": ["bgnbd", "gamma_gamma"],
        "sampler": {"method": "nuts", "draws": s.draws, "tune": s.tune, "chains": s.chains,
                    "nuts_sampler": s.sampler},
        "seed": s.seed,
        "engine": {"memory_limit": s.memory_limit, "threads": s.threads},
        "report": {"notebooks": ["01_customer_base_audit", "02_model_fit_and_validation",
                                 "03_customer_lifetime_value", "04_company_valuation"]},
        "financials": {"contribution_margin": {"dist": "normal", "mean": 0.3, "sd": 0.03},
                       "discount_rate": 0.1, "shares_outstanding": 1_000_000, "horizon_years": 10,
                       "assumptions_note": "illustrative figures for a simulated benchmark company"},
    }
    cfg.update(changes)
    path = d / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def stage_report(d: Path, s: ScaleSettings) -> dict[str, Any]:
    import shutil

    from cbcv.config import load_config
    from cbcv.pipeline.workflow import work_folder
    from cbcv.report.runner import run_report

    config = report_config(d, s)
    work = work_folder(load_config(config))
    try:
        result = run_report(config, d / "reports", progress=lambda m: print(m, flush=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the validated copy and the per-customer scores
    prov = json.loads(result.provenance.read_text())
    return {"status_report": prov["status"], "seconds_by_notebook": prov["seconds_by_notebook"],
            "diagnostics_ok": prov["diagnostics"]["ok"], "html_bytes": sum(
                f.stat().st_size for f in result.run_dir.glob("*.html"))}


def stage_history(d: Path, s: ScaleSettings) -> dict[str, Any]:
    """``cbcv score CONFIG --as-of END`` (:func:`cbcv.pipeline.value_history.score_as_of`) on the
    simulated log with one categorical covariate, ``region`` (four levels assigned by a hash of
    the id, so without effect): validation, summaries, the covariates joined in DuckDB, BG/NBD and
    gamma-gamma fitted with the covariate by MAP (the ``fit`` stage times NUTS; a MAP fit is one
    draw, so the scoring's cost per draw is the ``score`` stage's), every customer scored at its
    covariates and the partition written. Then the same date again, the fits reused: the scoring
    and the partition alone."""
    import datetime as dt
    import shutil

    import duckdb

    from cbcv.config import load_config
    from cbcv.pipeline.value_history import score_as_of
    from cbcv.pipeline.workflow import load_company, work_folder

    covariates = d / "covariates.parquet"
    duckdb.execute(
        f"COPY (SELECT customer_id, CASE hash(customer_id) % 4 WHEN 0 THEN 'north' WHEN 1 THEN 'south' "
        f"WHEN 2 THEN 'east' ELSE 'west' END AS region FROM read_parquet('{d / 'summary.parquet'}')) "
        f"TO '{covariates}' (FORMAT parquet)"
    )
    config = report_config(
        d, s, "history.yaml", calibration_end=END, holdout_end=None, sampler={"method": "map"},
        covariates={"source": str(covariates), "columns": {"customer_id": "customer_id"}, "use": ["region"]},
        report={"notebooks": ["01_customer_base_audit"]},
    )
    loaded = load_config(config)
    work, history = work_folder(loaded), d / "history"
    day = dt.date.fromisoformat(END)
    try:
        t0 = time.perf_counter()
        result = load_company(loaded)
        t_load = time.perf_counter() - t0
        first = score_as_of(loaded, result, day, history)
        t_first = time.perf_counter() - t0 - t_load
        (result.folder / "scored.npz").unlink(missing_ok=True)  # score again, not from the cache
        t1 = time.perf_counter()
        again = score_as_of(loaded, result, day, history)
        t_again = time.perf_counter() - t1
        size = (again.path / "part-0.parquet").stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(history, ignore_errors=True)
    return {"validate_s": t_load, "fit_and_score_s": t_first, "rescore_s": t_again, "customers": first.customers,
            "n_draws": first.meta["n_draws"], "partition_mb": size / 2**20,
            "same_model_version": first.meta["model_version"] == again.meta["model_version"]}


RUNNERS = {
    "simulate": stage_simulate, "load": stage_load, "summarise": stage_summarise,
    "fit": stage_fit, "score": stage_score, "value": stage_value, "render": stage_render,
    "report": stage_report, "history": stage_history,
}


def child(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--settings", required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    s = ScaleSettings(**json.loads(a.settings))
    t0 = time.perf_counter()
    result = RUNNERS[a.stage](a.dir, s)
    result["seconds_in_process"] = time.perf_counter() - t0
    result["maxrss_mb"] = fs._maxrss_bytes(0) / 2**20
    a.out.write_text(json.dumps(result, default=float))
    return 0


def run_size(label: str, s: ScaleSettings, root: Path, timeout: float) -> dict[str, Any]:
    d = root / label
    d.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    for stage in STAGES:
        if (stage == "report" and not s.report) or (stage == "history" and not s.history):
            continue
        out = d / f"{stage}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "child", stage, "--dir", str(d),
               "--settings", json.dumps(asdict(s)), "--out", str(out)]
        run = fs.run_child(cmd, out, timeout)
        rows[stage] = {"status": run.status, "seconds": run.seconds,
                       "peak_mb": run.peak_rss_bytes / 2**20, "error": run.error, **run.result}
        r = rows[stage]
        print(f"  {label:>4} {stage:<9} {r['status']:<7} {r['seconds']:8.1f} s  peak {r['peak_mb']:7.0f} MB"
              + (f"  {r['error']}" if r["error"] else ""), flush=True)
        if run.status != "ok":
            break
    return rows


def report(label: str, rows: dict[str, Any]) -> list[str]:
    done = [st for st in PIPELINE if rows.get(st, {}).get("status") == "ok"]
    wall = sum(rows[st]["seconds"] for st in done)
    peak = max((rows[st]["peak_mb"] for st in done), default=0.0)
    lines = [f"{label}: end to end {wall:.0f} s ({wall / 60:.1f} min), peak {peak:.0f} MB"
             + ("" if len(done) == len(PIPELINE) else f" — INCOMPLETE ({len(done)}/{len(PIPELINE)} stages)")]
    sim, fit, score = rows.get("simulate", {}), rows.get("fit", {}), rows.get("score", {})
    if sim.get("n_transactions"):
        lines.append(f"  {sim['n_customers']:,} customers, {sim['n_transactions']:,} transactions")
    if fit.get("n_distinct"):
        lines.append(f"  distinct (x, t_x, T), exact: {fit['n_distinct_exact']:,} of {fit['n_customers']:,} customers "
                     f"({fit['n_distinct_exact'] / fit['n_customers']:.1%}); distinct (x, T): {score.get('n_pairs', 0):,}")
        if fit.get("resolution"):
            eff = fit["rounding_effect"]
            shift = ", ".join(f"{k} {eff['map_exact'][k]:.3f}→{eff['map_rounded'][k]:.3f}" for k in eff["map_exact"])
            lines.append(f"  NUTS fitted on t_x, T rounded to {fit['resolution']:g} week(s): {fit['n_distinct']:,} "
                         f"distinct rows; MAP exact→rounded: {shift}")
        for m in ("bgnbd", "gamma_gamma"):
            means = ", ".join(f"{k} {v:.3f}" for k, v in fit[m]["mean"].items())
            lines.append(f"  {m}: {means}; r_hat ≤ {fit[m]['r_hat_max']:.3f}, ESS ≥ {fit[m]['ess_bulk_min']:.0f}, "
                         f"{fit[m]['divergences']} divergences")
        lines.append(f"  truth: {TRUTH} / {SPEND}")
    rep = rows.get("report", {})
    if rep.get("status") == "ok":
        nbs = ", ".join(f"{k.split('_')[0]} {v:.0f} s" for k, v in rep["seconds_by_notebook"].items())
        lines.append(f"  cbcv report out of core: {rep['seconds']:.0f} s ({nbs}), peak {rep['peak_mb']:.0f} MB, "
                     f"diagnostics {'ok' if rep['diagnostics_ok'] else 'FAILED'}")
    elif rep:
        lines.append(f"  cbcv report out of core: {rep.get('status')} {rep.get('error') or ''}")
    hist = rows.get("history", {})
    if hist.get("status") == "ok":
        lines.append(f"  cbcv score --as-of with a covariate: {hist['seconds']:.0f} s in all, peak {hist['peak_mb']:.0f} MB "
                     f"(validate {hist['validate_s']:.0f} s, fit and score {hist['fit_and_score_s']:.0f} s, the date "
                     f"again {hist['rescore_s']:.0f} s; {hist['customers']:,} rows, {hist['partition_mb']:.0f} MB)")
    elif hist:
        lines.append(f"  cbcv score --as-of with a covariate: {hist.get('status')} {hist.get('error') or ''}")
    if label in TARGETS and len(done) == len(PIPELINE):
        secs, mb = TARGETS[label]
        lines.append(f"  target < {secs / 60:g} min: {'MET' if wall < secs else 'MISSED'}")
        if mb is not None:
            lines.append(f"  target < {mb / 1024:g} GB peak: {'MET' if peak < mb else 'MISSED'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        return child(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1m,10m", help="comma-separated: " + ", ".join(SIZES))
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--memory-limit", default="6GB", help="DuckDB's memory limit per stage")
    p.add_argument("--spend-sample", type=int, default=50_000,
                   help="repeat buyers sampled for the gamma-gamma fit")
    p.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    p.add_argument("--resolution", type=float, default=1.0,
                   help="round t_x and T to this many weeks for the BG/NBD fit; 0: exact")
    p.add_argument("--interval-draws", type=int, default=400)
    p.add_argument("--workdir", type=Path, default=HERE / "results" / "scale")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per stage")
    p.add_argument("--report", action="store_true",
                   help="also run the full cbcv report out of core on the simulated log")
    p.add_argument("--history", action="store_true",
                   help="also run cbcv score --as-of with a covariate on the simulated log")
    a = p.parse_args(argv)
    labels = [x.strip().lower() for x in a.sizes.split(",") if x.strip()]
    unknown = [x for x in labels if x not in SIZES]
    if unknown:
        p.error(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    results: dict[str, Any] = {}
    lines: list[str] = []
    for label in labels:
        s = ScaleSettings(n_customers=SIZES[label], chains=a.chains, draws=a.draws, tune=a.tune,
                          memory_limit=a.memory_limit, spend_sample=a.spend_sample,
                          interval_draws=a.interval_draws, resolution=a.resolution or None,
                          sampler=a.sampler, report=a.report, history=a.history)
        print(f"{label}: {s}", flush=True)
        results[label] = {"settings": asdict(s), "stages": run_size(label, s, a.workdir, a.timeout)}
        lines += report(label, results[label]["stages"])
    print("\n".join(lines))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = HERE / "results" / f"scale-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "versions": fs.versions(), "summary": lines}, indent=2, default=float))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
