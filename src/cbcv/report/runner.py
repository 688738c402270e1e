"""``cbcv report``: execute the notebook suite through papermill into a new, versioned run folder.

Each run writes ``reports/<company>/<run-id>/`` (never reusing a folder; built as
``<run-id>.partial/`` and renamed only when the suite has run, :mod:`cbcv.report.runfolder`) with the executed
notebooks, their HTML renderings without code, ``index.html`` linking them, the config used, and
``provenance.json``. When a notebook fails, its executed copy (with the error) is kept and
rendered, provenance records the failure, and :class:`~cbcv.core.errors.ReportError` carries a
one-line message naming the notebook, the cell and the error.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import papermill as pm
from papermill.exceptions import PapermillExecutionError

from cbcv.config import LoadedConfig, load_config
from cbcv.core import interrupt
from cbcv.core.cache import atomic_write_json
from cbcv.core.errors import CbcvError, ReportError
from cbcv.core.paths import notebooks_dir, repo_root
from cbcv.report.provenance import git_state, package_versions, sha256_file
from cbcv.report.render import IndexEntry, render_notebook_html, write_index
from cbcv.report.runfolder import finish_run, run_id, start_run
from cbcv.report.summary import STYLE as SUMMARY_STYLE
from cbcv.report.summary import (
    assumptions_table,
    executive_summary,
    methodology_appendix,
    run_diagnostics,
    valuation_banner,
)

KERNEL_NAME = "cbcv-python3"
SECTION_TITLES = {
    "01_customer_base_audit": "1. Customer-base audit",
    "02_model_fit_and_validation": "2. Model fit and validation",
    "03_customer_lifetime_value": "3. Customer lifetime value",
    "04_company_valuation": "4. Company valuation",
    "05_backtests": "5. Backtests",
    "06_customer_experience": "What customer experience is worth",
    "07_customer_value_movement": "Customer value over time and by owner",
    "11_subscription_audit": "1. Subscription audit",
    "12_retention_models": "2. Retention models and validation",
    "13_subscriber_equity_and_valuation": "3. Subscriber equity and valuation",
    "21_disclosed_metrics": "1. Disclosed customer metrics",
    "22_disclosure_models": "2. The disclosures model",
    "23_disclosure_holdout": "3. Holdout validation",
    "24_disclosure_valuation": "4. Customer equity and valuation",
}

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ReportResult:
    run_dir: Path
    index: Path
    provenance: Path
    seconds: float


def new_run_dir(out: str | Path, company_folder: str, now: dt.datetime | None = None) -> Path:
    """Create and return a fresh ``out/<company>/<run-id>.partial`` folder, marked in progress
    (:func:`cbcv.report.runfolder.start_run`); never reuses a run id."""
    return start_run(out, company_folder, now)


def ensure_kernel() -> str:
    """Install (once) a Jupyter kernel spec for *this* interpreter inside its own prefix, so the
    notebooks run with the same environment as the command, whatever kernels the user has."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python 3 (cbcv)", prefix=sys.prefix)
    return KERNEL_NAME


def input_fingerprint(loaded: LoadedConfig) -> dict[str, Any]:
    """Name, path (relative to the repo where possible) and SHA-256 of the transaction source."""
    from cbcv.data.catalog import dataset_path, is_dataset

    source = loaded.resolve_source()
    path = dataset_path(source) if is_dataset(source) else Path(source)
    info: dict[str, Any] = {"source": loaded.config.data.source}
    try:
        info["file"] = str(path.resolve().relative_to(repo_root()))
    except ValueError:
        info["file"] = path.name
    info["sha256"] = sha256_file(path) if path.is_file() else None
    info["bytes"] = path.stat().st_size if path.is_file() else None
    return info


def data_first_day(loaded: LoadedConfig) -> dt.date | None:
    """The first day of the company's validated log (validated now, and cached for the
    notebooks: :func:`cbcv.pipeline.workflow.validate_company`); None when it cannot be read,
    which the first notebook then reports."""
    from cbcv.pipeline.workflow import validate_company

    try:
        if loaded.config.is_subscription:
            from cbcv.pipeline.subscription_book import load_subscription_book

            return load_subscription_book(loaded).data_window[0]
        if loaded.config.is_disclosures:
            from cbcv.pipeline.disclosure_valuation import load_company_disclosures

            return load_company_disclosures(loaded).table.index[0].start_time.date()
        return validate_company(loaded).reconciliation.first_date
    except CbcvError:
        return None


def _one_line_error(exc: PapermillExecutionError, notebook: str) -> str:
    evalue = " ".join(str(exc.evalue).split())
    return f"notebook {notebook} failed in cell {exc.exec_count}: {exc.ename}: {evalue}"


def run_report(
    config_path: str | Path,
    out: str | Path = "reports",
    *,
    notebooks: Sequence[str] | None = None,
    progress: Progress = _stderr,
    extra_parameters: dict[str, Any] | None = None,
    strict: bool | None = None,
) -> ReportResult:
    """Run the report suite for one company config. Raises ReportError on a failing notebook,
    and, when ``strict`` (default: the config's ``report.strict``), on a fit that misses the
    diagnostics thresholds (after the whole report has been written, with its warning banner)."""
    started = time.perf_counter()
    t0 = dt.datetime.now(dt.UTC)
    loaded = load_config(config_path)
    cfg = loaded.config
    names = list(notebooks or cfg.report.notebooks)
    nb_dir = notebooks_dir()
    missing = [n for n in names if not (nb_dir / f"{n}.ipynb").is_file()]
    if missing:
        raise ReportError(f"{nb_dir}: notebook(s) not found: {', '.join(missing)}")

    run_dir = new_run_dir(out, cfg.company.folder, t0)
    progress(f"cbcv report: {cfg.company.name} -> {run_dir}")
    (run_dir / "config.yaml").write_text(loaded.path.read_text(encoding="utf-8"), encoding="utf-8")
    kernel = ensure_kernel()
    fingerprint = input_fingerprint(loaded)
    first_day = data_first_day(loaded)

    parameters = {"config_path": str(loaded.path), "run_dir": str(run_dir.resolve())}
    parameters.update(extra_parameters or {})
    entries: list[IndexEntry] = []
    timings: dict[str, float] = {}
    failure: str | None = None
    for i, name in enumerate(names, 1):
        progress(f"[{i}/{len(names)}] {name} ...")
        t = time.perf_counter()
        executed = run_dir / f"{name}.ipynb"
        status = "ok"
        try:
            interrupt.in_worker_thread(functools.partial(
                pm.execute_notebook,
                str(nb_dir / f"{name}.ipynb"),
                str(executed),
                parameters=parameters,
                kernel_name=kernel,
                progress_bar=False,
                cwd=str(run_dir),
            ))
        except PapermillExecutionError as exc:
            status, failure = "failed", _one_line_error(exc, name)
        seconds = time.perf_counter() - t
        timings[name] = round(seconds, 2)
        title = SECTION_TITLES.get(name, name)
        html_name = f"{name}.html"
        render_notebook_html(executed, run_dir / html_name, title=f"{cfg.company.name}: {title}",
                             banner=valuation_banner(cfg, first_day))
        entries.append(IndexEntry(title=title, href=html_name, status=status, seconds=seconds))
        progress(f"[{i}/{len(names)}] {name} {status} in {seconds:.1f} s")
        interrupt.check()  # a notebook stopped by the same Ctrl-C is not a failed report
        if failure:
            break

    git = git_state(repo_root())
    diagnostics = run_diagnostics(run_dir)
    problems = diagnostics["problems"]
    strict = cfg.report.strict if strict is None else strict
    provenance = {
        "run_id": run_id(run_dir),
        "company": cfg.company.name,
        "status": "failed" if failure else "ok",
        "error": failure,
        "diagnostics": {**diagnostics, "strict": strict},
        "started_utc": t0.isoformat(timespec="seconds"),
        "seconds_total": round(time.perf_counter() - started, 2),
        "seconds_by_notebook": timings,
        "input": fingerprint,
        "config_file": loaded.path.name,
        "config": cfg.model_dump(mode="json"),
        "seed": cfg.seed,
        "git": git,
        "packages": package_versions(),
    }
    prov_path = run_dir / "provenance.json"
    atomic_write_json(prov_path, provenance)
    facts = [
        ("valuation date", cfg.valuation_date.isoformat()),
        ("data window", f"{first_day or 'start'} to {cfg.valuation_date}"),
        ("input", f"{fingerprint['file']} (sha256 {str(fingerprint['sha256'])[:16]}…)"),
        ("config", loaded.path.name),
        ("seed", str(cfg.seed)),
        ("git commit", f"{git['commit'] or 'n/a'}{' (uncommitted changes)' if git['dirty'] else ''}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in provenance["packages"].items() if v)),
    ]
    title = cfg.report.title or f"{cfg.company.name}: customer-based valuation report"
    index = write_index(
        run_dir, title=title, entries=entries, facts=facts, summary_html=executive_summary(run_dir, cfg),
        appendix_html=assumptions_table(cfg) + methodology_appendix(cfg.business), extra_style=SUMMARY_STYLE,
    )
    interrupt.check()
    run_dir = finish_run(run_dir)
    index, prov_path = run_dir / index.name, run_dir / prov_path.name
    if failure:
        raise ReportError(f"{failure} (executed copy kept in {run_dir / (names[len(entries) - 1] + '.ipynb')})")
    if problems:
        progress(f"cbcv report: diagnostics warning: {'; '.join(problems)}")
        if strict:
            raise ReportError(f"diagnostics gate (--strict): {'; '.join(problems)} (report written to {index})")
    seconds = time.perf_counter() - started
    progress(f"cbcv report: done in {seconds:.1f} s -> {index}")
    return ReportResult(run_dir=run_dir, index=index, provenance=prov_path, seconds=seconds)
