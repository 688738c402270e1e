"""The steps that the CLI and the notebooks share: validate a company's log as its config says
into its work folder (:func:`load_company`, returning the one seam,
:class:`cbcv.pipeline.company_data.CompanyData`), audit it, fit the configured models and
predict per customer. Thin glue over ``cbcv.data``, ``cbcv.audit`` and ``cbcv.models``; no
statistics here, and one path whatever the data's size (``engine.memory_limit`` and
``engine.threads`` cap DuckDB, which spills to disk beyond them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cbcv.audit import CustomerBaseAudit, customer_base_audit
from cbcv.config import LoadedConfig
from cbcv.core import interrupt
from cbcv.core.cache import (
    FolderLock,
    atomic_write_json,
    content_key,
    file_stamps,
    read_json,
    temporary_path,
    write_fit_folder,
)
from cbcv.core.errors import CbcvError
from cbcv.core.jsonio import dumps_strict
from cbcv.core.paths import repo_root
from cbcv.core.safe_csv import write_csv
from cbcv.data.catalog import is_dataset
from cbcv.data.covariates import CovariateTable, attach_covariates
from cbcv.data.datasets import load_dataset, purchase_rule
from cbcv.data.load import (
    LoadResult,
    Reconciliation,
    ValidatedLog,
    load_transactions,
    validate_to_parquet,
)
from cbcv.data.rules import RULES_VERSION
from cbcv.models import FREQUENCY_MODELS, SUMMARY_MODELS, CLVModel, SamplerSettings, get_model
from cbcv.models.covariate_design import CovariateDesign
from cbcv.models.covariates import CovariateModel
from cbcv.models.covariates import restore as restore_covariates
from cbcv.pipeline.company_data import PRE_START_FILE, CompanyData, SummarySettings
from cbcv.pipeline.customer_covariates import CovariateSpec


def load_transactions_for(
    source: str, loaded: LoadedConfig | None = None, *, as_of: dt.date | None = None
) -> LoadResult:
    """Load ``source`` (a bundled data set's name or a path) into pandas with the config's column
    map, date format and delimiter; ``as_of`` defaults to the config's. For an analyst's
    notebook: the report's steps read :func:`load_company` instead."""
    if loaded is not None and as_of is None:
        as_of = loaded.config.as_of
    if is_dataset(source):
        return load_dataset(source, as_of=as_of)
    data = loaded.config.data if loaded is not None else None
    return load_transactions(
        source,
        columns=data.columns.transaction_columns() if data else None,
        as_of=as_of,
        date_format=data.date_format if data else None,
        delimiter=data.delimiter if data else None,
        table=data.table if data else None,
        reject_duplicates=data.reject_duplicates if data else True,
        **(row_rule_settings(data) if data else {}),
    )


def row_rule_settings(data: Any) -> dict[str, Any]:
    """A config ``data`` section's row-rule settings as loader keywords (:mod:`cbcv.data.rules`)."""
    return {
        "null_tokens": data.null_tokens,
        "earliest_date": data.earliest_date,
        "timezone": data.timezone,
        "zero_amount_purchases": purchase_rule(data.source, data.zero_amount_purchases),
    }



def load_company(loaded: LoadedConfig, work_dir: str | Path | None = None) -> CompanyData:
    """The company's data as its config describes it: the log validated into ``work_dir``
    (default :func:`work_folder`; :func:`validate_company`, cached) behind the one seam that
    the report's steps ask for summaries, counts and scores (:class:`CompanyData`)."""
    cfg = loaded.config
    return CompanyData(validate_company(loaded, work_dir), SummarySettings.of(cfg), cfg.engine, seed=cfg.seed,
                       covariates=CovariateSpec.of(loaded))


def work_folder(loaded: LoadedConfig) -> Path:
    """Where a company's derived data is kept: ``data/processed/<company folder>/``
    (git-ignored, regenerated)."""
    return repo_root() / "data" / "processed" / loaded.config.company.folder


def validate_company(loaded: LoadedConfig, work_dir: str | Path | None = None) -> ValidatedLog:
    """Validate the company's log into ``work_dir`` (default :func:`work_folder`), see
    :func:`validate_source`."""
    work = Path(work_dir) if work_dir is not None else work_folder(loaded)
    return validate_source(loaded.resolve_source(), work, loaded)


def validate_source(
    source: str, work: str | Path, loaded: LoadedConfig | None = None, *, as_of: dt.date | None = None
) -> ValidatedLog:
    """Validate ``source`` (a bundled data set's name or a path)
    (:func:`cbcv.data.load.validate_to_parquet`, with the config's column map, date format,
    delimiter, as-of date and DuckDB caps) into ``work/accepted.parquet``, with the rejections
    beside it; ``as_of`` defaults to the config's.

    A later call (the next notebook of the same report, say) reuses the files while
    ``validated.json`` records the same key (:func:`cbcv.core.cache.content_key` of the source
    SHA-256, data settings and as-of date) and the files' sizes and times. The folder is locked
    against a concurrent run (:class:`cbcv.core.cache.FolderLock`); the manifest is removed before
    anything is rewritten, each file is written under a temporary name and renamed, and the
    manifest is written last, so a run killed half way leaves nothing that the next one trusts.
    """
    from cbcv.config import DataSource
    from cbcv.data.catalog import dataset_path
    from cbcv.data.load import file_sha256

    cfg = loaded.config if loaded is not None else None
    data = cfg.data if cfg is not None else DataSource(source=str(source))
    as_of = as_of if as_of is not None else (cfg.as_of if cfg is not None else None)
    work = Path(work)
    path = dataset_path(source) if is_dataset(source) else Path(source)
    sha = file_sha256(path, path.name) if path.is_file() else None
    key = content_key({"source": str(source), "sha256": sha, "data": data.model_dump(mode="json", exclude={"source"}),
                       "as_of": as_of.isoformat() if as_of else None, "rules": RULES_VERSION})
    accepted, rejections, manifest = (work / n for n in VALIDATED_FILES)
    with FolderLock(work):
        if sha is not None and (cached := _cached_validation(manifest, key)) is not None:
            return cached
        manifest.unlink(missing_ok=True)  # invalidated first, written last
        with temporary_path(accepted) as tmp:
            log = _validate(source, tmp, data, cfg.engine if cfg is not None else None, as_of, path.name, sha)
        log = dataclasses.replace(log, accepted=accepted)
        with temporary_path(rejections) as tmp:
            log.rejections.to_parquet(tmp, index=False)
        if sha is not None:
            atomic_write_json(manifest, {"key": key, "files": file_stamps(accepted, rejections),
                                         "reconciliation": log.reconciliation.to_dict()})
    return log


#: The validation's files in its work folder: accepted rows, rejections, manifest.
VALIDATED_FILES = ("accepted.parquet", "rejections.parquet", "validated.json")


def _cached_validation(manifest: Path, key: str) -> ValidatedLog | None:
    """The validated log that ``manifest`` describes, when its key is ``key`` and the files
    beside it are the ones it was written with; None otherwise (validate again)."""
    saved = read_json(manifest)
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    accepted, rejections = (manifest.parent / n for n in VALIDATED_FILES[:2])
    if not (accepted.is_file() and rejections.is_file()) or saved.get("files") != file_stamps(accepted, rejections):
        return None
    return ValidatedLog(accepted, pd.read_parquet(rejections), Reconciliation.from_dict(saved["reconciliation"]))


def _validate(source: str, accepted: Path, data: Any, engine: Any, as_of: dt.date | None,
              name: str, sha: str | None) -> ValidatedLog:
    """One validation of ``source`` into ``accepted`` (no caching)."""
    from cbcv.data.datasets import read_dataset_frame

    caps = {"memory_limit": engine.memory_limit if engine else None,
            "threads": engine.threads if engine else None}
    if data is not None and data.is_panel:
        return _validate_panel(source, accepted, data, caps, as_of, name, sha)
    if is_dataset(source):
        # as load_dataset: the bundled files have no order id, so no duplicate check
        rule = purchase_rule(source, data.zero_amount_purchases if data else None)
        log = validate_to_parquet(read_dataset_frame(source), accepted, as_of=as_of,
                                  source_name=name, reject_duplicates=False,
                                  zero_amount_purchases=rule, **caps)
        return dataclasses.replace(log, reconciliation=dataclasses.replace(
            log.reconciliation, source_type="dataset", sha256=sha))
    return validate_to_parquet(source, accepted, columns=data.columns.transaction_columns(), as_of=as_of,
                               date_format=data.date_format, delimiter=data.delimiter, table=data.table,
                               reject_duplicates=data.reject_duplicates, **row_rule_settings(data),
                               **caps)


#: Beside a revenue panel's validated occasions (and :data:`PRE_START_FILE`): the panel's own
#: reconciliation and rejections.
PANEL_FILES = ("panel_reconciliation.json", "panel_rejections.parquet")


def _validate_panel(source: str, accepted: Path, data: Any, caps: dict[str, Any], as_of: dt.date | None,
                    name: str, sha: str | None) -> ValidatedLog:
    """A revenue panel (:func:`cbcv.data.panel.load_revenue_panel`) validated cell by cell, then
    one purchase occasion per active customer-period, dated at the period's first day
    (:func:`cbcv.data.panel.panel_to_transactions`), validated as a transaction log. The
    customers acquired before the panel starts go to :data:`PRE_START_FILE`."""
    from cbcv.data.panel import DEFAULT_PRE_START_LABELS, load_revenue_panel, panel_to_transactions

    labels = tuple(data.pre_start_labels) if data.pre_start_labels else DEFAULT_PRE_START_LABELS
    panel = load_revenue_panel(source, layout=data.layout.removeprefix("panel_"), columns=data.panel_columns,
                               period=data.panel_period, pre_start_labels=labels, source_name=name)
    folder = accepted.parent
    customers = panel.customers
    before = customers.loc[customers["acquired_before_start"].fillna(False).astype(bool), ["customer_id"]]
    before.astype(str).to_parquet(folder / PRE_START_FILE, index=False)
    atomic_write_json(folder / PANEL_FILES[0], panel.reconciliation.to_dict())
    panel.rejections.to_parquet(folder / PANEL_FILES[1], index=False)
    log = validate_to_parquet(panel_to_transactions(panel, date_rule="start"), accepted, as_of=as_of,
                              source_name=name, reject_duplicates=False, **caps)
    rec = panel.reconciliation
    note = (f"revenue panel ({data.layout}, {data.panel_period}ly): {rec.rows_read} customer rows read, "
            f"{rec.rows_accepted} accepted, {rec.rows_rejected} rejected; each active customer-{data.panel_period} "
            f"is one purchase occasion dated at the {data.panel_period}'s first day; {len(before)} customers "
            "acquired before the panel starts are scored but left out of the model fits, the acquisition "
            "history and the first-purchase spend")
    return dataclasses.replace(log, reconciliation=dataclasses.replace(
        log.reconciliation, source_type="panel", sha256=sha, notes=(*log.reconciliation.notes, note)))


def write_load_outputs(result: LoadResult | ValidatedLog | CompanyData, out: str | Path) -> list[Path]:
    """``reconciliation.json`` (strict JSON) and ``rejections.csv`` (source row, column, raw
    value, reason; spreadsheet-safe: :func:`cbcv.core.safe_csv.write_csv`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rec = out / "reconciliation.json"
    atomic_write_json(rec, result.reconciliation.to_dict())
    rej = out / "rejections.csv"
    write_csv(result.rejections, rej)
    return [rec, rej]


def audit_windows(
    loaded: LoadedConfig | None, result: ValidatedLog | CompanyData
) -> tuple[tuple[dt.date, dt.date] | None, tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]] | None]:
    """The audit's decile window (the calibration period) and migration windows (calibration
    period → holdout period) from the config; whole log and no migration without one."""
    if loaded is None:
        return None, None
    cfg = loaded.config
    first = result.reconciliation.first_date
    calibration = (first, cfg.calibration_end)
    if cfg.holdout_end is None:
        return calibration, None
    holdout = (cfg.calibration_end + dt.timedelta(days=1), cfg.holdout_end)
    return calibration, (calibration, holdout)


#: Points of the whale curve kept by the audit (every buyer's below this count).
WHALE_POINTS = 10_001


def run_audit(
    result: ValidatedLog | CompanyData,
    loaded: LoadedConfig | None = None,
    *,
    period: str = "quarter",
    cohort_period: str | None = None,
) -> CustomerBaseAudit:
    """The customer-base audit of a validated log (or a company's data), in SQL over its
    Parquet file (:func:`cbcv.audit.customer_base_audit`), the whale curve cut to
    :data:`WHALE_POINTS` exact points when there are more buyers. With a config, its cohort
    period is also the C3 chart's calendar period, deciles cover the calibration period,
    migration runs from the calibration period to the holdout period, and its engine caps
    DuckDB."""
    window, migration = audit_windows(loaded, result)
    if loaded is not None:
        cohort_period = cohort_period or loaded.config.cohort_period
        period = cohort_period
    engine = loaded.config.engine if loaded is not None else None
    return customer_base_audit(
        result.accepted, period=period, cohort_period=cohort_period or period, window=window,
        migration=migration, whale_points=WHALE_POINTS,
        memory_limit=engine.memory_limit if engine else None,
        threads=engine.threads if engine else None,
        zero_amount_purchases=result.reconciliation.zero_amount_purchases,
    )


def write_audit(
    result: ValidatedLog | CompanyData,
    out: str | Path,
    loaded: LoadedConfig | None = None,
    *,
    period: str = "quarter",
    cohort_period: str | None = None,
    audit: CustomerBaseAudit | None = None,
) -> list[Path]:
    """Write the audit tables (one CSV each), ``reconciliation.json`` and ``rejections.csv``."""
    out = Path(out)
    written = write_load_outputs(result, out)
    audit = audit or run_audit(result, loaded, period=period, cohort_period=cohort_period)
    for name, table in audit.tables().items():
        path = out / f"{name}.csv"
        write_csv(table, path)
        written.append(path)
    return written


def fit_summary_model(
    summary: pd.DataFrame, name: str, settings: SamplerSettings, priors: dict | None = None
) -> CLVModel:
    """Fit one of the summary-based models (``SUMMARY_MODELS``) to a customer summary."""
    model = summary_model(name)(priors=priors)
    model.fit(summary, settings)
    return model


def fit_company_model(data: CompanyData, name: str, settings: SamplerSettings) -> CLVModel:
    """One summary model fitted to the company's data as :func:`fit_company_models` fits it: the
    counted summary (gamma-gamma: the spend sample), or with the company's customer covariates
    when it has them (:func:`fit_with_covariates`)."""
    if data.covariates is not None:
        return fit_with_covariates(data.summaries(), name, settings, data.covariate_table,
                                   data.covariates.reference)[0]
    return fit_summary_model(data.spend_sample() if name == "gamma_gamma" else data.counted, name, settings)


def fit_with_covariates(
    summary: pd.DataFrame, name: str, settings: SamplerSettings, table: CovariateTable,
    reference: dict[str, str] | None = None,
) -> tuple[CLVModel, dict[str, Any]]:
    """Fit ``name`` with the customers' covariates of ``table`` (every calibration customer needs
    a row, :func:`cbcv.data.covariates.attach_covariates`), coded on the calibration customers;
    the model and the covariates' record for ``fit.json`` (source, sha256, rows used and not)."""
    attached = attach_covariates(summary, table)
    design = CovariateDesign.from_frame(attached.summary, table.columns, reference=reference, source=table.source)
    model = CovariateModel(summary_model(name)(), design)
    model.fit(attached.summary, settings)
    record = {"source": table.source, "sha256": table.sha256, "rows_read": table.rows_read,
              "rows_used": attached.rows_used, "rows_not_in_calibration": attached.rows_not_in_summary,
              **design.to_dict()}
    return model, record


def summary_model(name: str) -> type[CLVModel]:
    """The class of a model fitted from a transaction summary; one clear error otherwise."""
    cls = get_model(name)
    if name not in SUMMARY_MODELS:
        raise CbcvError(
            f"model {name!r} is not fitted from a transaction summary; choose from "
            f"{', '.join(SUMMARY_MODELS)} (fit bgbb, sbg and bdw from Python with their data forms)"
        )
    return cls


def fit_record(model: CLVModel) -> dict[str, Any]:
    """The ``fit.json`` contract: per parameter mean, sd, 94% HDI, r_hat, ess_bulk; divergences;
    customers; seconds; and whether the fit passes the diagnostic thresholds."""
    idata = model.idata
    assert idata is not None
    method = idata.attrs.get("method", "nuts")
    if method == "nuts":
        table = model.summary()
    else:  # a MAP point: no spread, no sampling diagnostics
        table = pd.DataFrame({"mean": {n: float(v[0]) for n, v in model.draws().items()}})

    def num(v: Any) -> float | None:
        v = float(v)
        return v if np.isfinite(v) else None

    params = {
        str(name): {
            "mean": num(row["mean"]),
            "sd": num(row["sd"]) if method == "nuts" else None,
            "hdi_low": num(row["hdi_low"]) if method == "nuts" else None,
            "hdi_high": num(row["hdi_high"]) if method == "nuts" else None,
            "r_hat": num(row.get("r_hat", np.nan)) if method == "nuts" else None,
            "ess_bulk": num(row.get("ess_bulk", np.nan)) if method == "nuts" else None,
            "ess_tail": num(row.get("ess_tail", np.nan)) if method == "nuts" else None,
        }
        for name, row in table.iterrows()
    }
    return {
        "model": model.name,
        "method": method,
        "parameters": params,
        "divergences": model.divergences(),
        "n_customers": int(idata.attrs.get("n_customers", 0)),
        "n_distinct": int(idata.attrs.get("n_distinct", 0)),
        "seconds": round(float(idata.attrs.get("fit_seconds", 0.0)), 3),
        "diagnostics": diagnostics_verdict(model.name, method, params, model.divergences(), idata.attrs),
        **({"effects": effects_note(model)} if isinstance(model, CovariateModel) else {}),
    }


def effects_note(model: CovariateModel) -> dict[str, str]:
    """What each process's effects in ``fit.json`` measure (:attr:`cbcv.models.covariates.Link.description`)."""
    return {link.process: link.description for link in model.links}


def diagnostics_verdict(
    name: str, method: str, params: dict[str, dict[str, float | None]], divergences: int,
    attrs: Any = None,
) -> dict[str, Any]:
    """The fit's verdict (:func:`cbcv.models.verdict.fit_verdict`: sampling thresholds, and the
    data and estimate checks kept in the posterior's ``attrs``) as ``fit.json`` records it:
    ``status`` pass/warn/fail, ``ok`` (pass only), ``reasons`` and ``problems`` (named by model)."""
    from cbcv.models.verdict import fit_verdict

    return fit_verdict(name, method, params, divergences, attrs or {}).to_dict()


def save_fit(
    model: CLVModel, summary: pd.DataFrame, out: str | Path, meta: dict[str, Any], *, customer_data: bool = True
) -> list[Path]:
    """Write ``fit.json`` and ``posterior.nc`` (the posterior with ``meta`` in the attributes).
    With ``customer_data`` (``cbcv fit``) the summary it was fitted on goes in as
    ``constant_data``, by customer id, or by row for a counted summary; without it (a report's
    run folder, read by investors) the file holds no customer-level data.

    Nothing is saved after an interrupt (:func:`cbcv.core.interrupt.check`); ``fit.json`` is removed
    first and written last, each file under a temporary name and renamed, so a folder holds a
    complete fit or no ``fit.json``."""
    interrupt.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    idata = model.idata
    assert idata is not None
    if "constant_data" in idata.groups():
        del idata.constant_data
    if customer_data:
        idata.add_groups({"constant_data": _summary_dataset(summary)})
    idata.attrs.update({k: dumps_strict(v, indent=None) if isinstance(v, dict | list) else str(v) for k, v in meta.items()})
    fj = write_fit_folder(out, model.save, fit_record(model) | {"meta": meta})
    return [fj, out / "posterior.nc"]


def _summary_dataset(summary: pd.DataFrame) -> xr.Dataset:
    """The fitted summary's columns by customer id (by row for a counted summary or a sample)."""
    cols = [c for c in ("x", "t_x", "T", "mean_repeat_spend", "total_spend", "count") if c in summary]
    if "customer_id" in summary:
        dim, labels = "customer", summary["customer_id"].astype(str).to_numpy()
    else:  # a counted summary or a spend sample: rows, not customer ids
        dim, labels = "row", np.arange(len(summary))
    return xr.Dataset({c: (dim, summary[c].to_numpy(dtype=float)) for c in cols}, coords={dim: labels})


@dataclass(frozen=True)
class CompanyFits:
    """The counted calibration(/holdout) summary of a company (:attr:`CompanyData.counted`)
    and its fitted models, by name."""

    summary: pd.DataFrame
    models: dict[str, CLVModel]
    records: dict[str, dict[str, Any]]

    def frequency_models(self) -> dict[str, CLVModel]:
        return {k: v for k, v in self.models.items() if k in FREQUENCY_MODELS}

    @property
    def n_customers(self) -> int:
        """Customers in the summary (the sum of ``count`` for a counted summary)."""
        if "count" in self.summary:
            return int(self.summary["count"].sum())
        return len(self.summary)


def sampler_settings(loaded: LoadedConfig, model: str | None = None) -> SamplerSettings:
    """The config's sampler section and seed as :class:`SamplerSettings` for ``model`` (its
    step-size target when the config gives one per model)."""
    cfg = loaded.config
    s = cfg.sampler
    return SamplerSettings(
        method=s.method, draws=s.draws, tune=s.tune, chains=s.chains, cores=s.cores,
        seed=cfg.seed, target_accept=s.target_accept_for(model), nuts_sampler=s.nuts_sampler,
    )


def fit_company_models(
    loaded: LoadedConfig, data: CompanyData, out: str | Path | None = None, progress: Any = None
) -> CompanyFits:
    """Fit every model the config names (summary-based ones) with its sampler settings and seed;
    with ``out``, save each fit's ``fit.json`` and ``posterior.nc`` under ``out/<model>/``, without
    customer-level data (``out`` is a report's run folder).

    The frequency models fit the counted summary (:attr:`CompanyData.counted`: the same
    likelihood as per customer) and gamma-gamma a seeded sample of at most
    :data:`cbcv.pipeline.company_data.SPEND_SAMPLE` repeat buyers (all of them when there are
    fewer: :meth:`CompanyData.spend_sample`).

    With customer covariates (``covariates`` or ``survey`` in the config), every model is fitted
    with them (:func:`fit_with_covariates`) on the per-customer summaries and their covariates
    (:meth:`CompanyData.covariate_summaries`), which the covariate models compress themselves."""
    cfg = loaded.config
    settings = sampler_settings(loaded)
    if data.covariates is not None:
        return _fit_with_company_covariates(loaded, data, out, progress)
    summary = data.counted
    spend_data = data.spend_sample() if "gamma_gamma" in cfg.models else None
    models: dict[str, CLVModel] = {}
    records: dict[str, dict[str, Any]] = {}
    meta = {
        "source": cfg.data.source, "sha256": data.reconciliation.sha256,
        "calibration_end": data.settings.calibration_end.isoformat(), "time_unit": cfg.time_unit,
        "seed": cfg.seed,
    }
    for name in cfg.models:
        if name not in SUMMARY_MODELS:
            continue
        if progress:
            progress(f"fitting {name} ({settings.method}) ...")
        fitted = spend_data if name == "gamma_gamma" and spend_data is not None else summary
        model = fit_summary_model(fitted, name, sampler_settings(loaded, name))
        interrupt.check()
        if fitted is spend_data:
            model.idata.attrs["repeat_buyers"] = int(fitted.attrs["repeat_buyers"])
        models[name] = model
        records[name] = fit_record(model)
        if out is not None:
            save_fit(model, fitted, Path(out) / name, meta, customer_data=False)
    return CompanyFits(summary=summary, models=models, records=records)


def _fit_with_company_covariates(loaded: LoadedConfig, data: CompanyData, out: str | Path | None,
                                 progress: Any) -> CompanyFits:
    """:func:`fit_company_models` with the company's customer covariates."""
    from cbcv.pipeline.customer_covariates import covariate_record

    cfg = loaded.config
    assert data.covariates is not None
    summary = data.covariate_summaries()
    table = data.covariate_table
    end = data.settings.calibration_end
    meta = {"source": cfg.data.source, "sha256": data.reconciliation.sha256, "calibration_end": end.isoformat(),
            "time_unit": cfg.time_unit, "seed": cfg.seed}
    models: dict[str, CLVModel] = {}
    records: dict[str, dict[str, Any]] = {}
    plain = summary.drop(columns=list(table.columns))
    for name in cfg.models:
        if name not in SUMMARY_MODELS:
            continue
        if progress:
            progress(f"fitting {name} with covariates {', '.join(table.columns)} ({cfg.sampler.method}) ...")
        model, record = fit_with_covariates(plain, name, sampler_settings(loaded, name), table,
                                            data.covariates.reference)
        interrupt.check()
        models[name] = model
        records[name] = fit_record(model)
        if out is not None:
            record.update(covariate_record(table, data.covariates, end))
            save_fit(model, summary, Path(out) / name, {**meta, "covariates": record}, customer_data=False)
    return CompanyFits(summary=summary, models=models, records=records)


#: Run-folder subfolder of the refits on all data to the valuation date (``models/`` holds the
#: calibration fits that holdout validation judges).
REFIT_DIR = "refit"


def refit_company_models(
    loaded: LoadedConfig, data: CompanyData, fits: CompanyFits, out: str | Path | None = None,
    progress: Any = None,
) -> tuple[CompanyData, CompanyFits]:
    """Validate, then refit: the company's data to its valuation date
    (:attr:`cbcv.config.CompanyConfig.valuation_date`, :meth:`CompanyData.at`) and every model
    refitted on it (:func:`fit_company_models`, saved under ``out`` when given), for the CLV and
    the valuation. ``data`` and ``fits`` themselves when the calibration already ends at the
    valuation date without a holdout period."""
    target = data.at(loaded.config.valuation_date)
    if target is data:
        return data, fits
    return target, fit_company_models(loaded, target, out, progress)


def fit_comparison(calibration: CompanyFits, refit: CompanyFits) -> pd.DataFrame:
    """The two fits side by side, one row per (model, parameter): posterior mean and 94% HDI of
    the calibration fit and of the refit to the valuation date, and the refit's r̂."""
    cols = ["model", "parameter", "mean", "hdi_low", "hdi_high"]
    left = parameter_table(calibration.records).reindex(columns=cols)
    right = parameter_table(refit.records).reindex(columns=[*cols, "r_hat"])
    return left.merge(right, on=["model", "parameter"], how="outer", suffixes=("_calibration", "_refit"))


def company_tracking(
    loaded: LoadedConfig, data: CompanyData, models: dict[str, CLVModel]
) -> dict[str, pd.DataFrame]:
    """The cumulative tracking table (:meth:`CompanyData.tracking`) of each frequency model over
    the config's calibration and holdout periods."""
    if loaded.config.holdout_end is None:
        raise CbcvError(f"{loaded.path.name}: tracking needs holdout_end")
    return {n: data.tracking(m) for n, m in models.items() if n in FREQUENCY_MODELS}


def parameter_table(records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, parameter): mean, sd, 94% HDI, r_hat, bulk ESS."""
    rows = [
        {"model": m, "parameter": p, **stats}
        for m, rec in records.items()
        for p, stats in rec["parameters"].items()
    ]
    return pd.DataFrame(rows)


def load_fit(fit_dir: str | Path) -> tuple[CLVModel, dict[str, str]]:
    """A model object holding the posterior saved by :func:`save_fit`, and the fit's metadata."""
    import arviz as az

    path = Path(fit_dir) / "posterior.nc"
    if not path.is_file():
        raise CbcvError(f"{path}: no posterior here (run cbcv fit first)")
    idata = az.from_netcdf(str(path))
    name = idata.attrs.get("cbcv_model")
    if name is None:
        raise CbcvError(f"{path}: not a cbcv posterior (no cbcv_model attribute)")
    model = get_model(str(name))()
    if "covariates" in idata.attrs:
        model = restore_covariates(model, idata)
    model.idata = idata
    return model, {k: str(v) for k, v in idata.attrs.items()}


def fit_data(
    meta: dict[str, str], log: ValidatedLog, *, holdout_end: dt.date | None = None,
    loaded: LoadedConfig | None = None,
) -> CompanyData:
    """The seam over a validated log with a saved fit's calibration end and time unit (its
    ``meta``, :func:`load_fit`), the holdout to ``holdout_end`` and the config's engine."""
    cal_end = meta.get("calibration_end")
    if cal_end is None:
        raise CbcvError("the posterior does not record its calibration end")
    settings = SummarySettings(dt.date.fromisoformat(cal_end), holdout_end, meta.get("time_unit", "week"))
    return CompanyData(log, settings, loaded.config.engine if loaded is not None else None)


def predict_customers(model: CLVModel, data: CompanyData, horizon: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-customer predictions (posterior mean and 90% interval) for the customers of the
    calibration period of ``data`` (:func:`fit_data`), and the per-customer summary they were
    computed from (:meth:`CompanyData.summaries`)."""
    from cbcv import predict as P

    summary = data.summaries()
    table = summary[["customer_id", "x", "t_x", "T"]].copy()
    if model.name == "gamma_gamma":
        s = P.summarise(P.expected_spend(model, summary))
        table[["expected_spend", "expected_spend_low", "expected_spend_high"]] = s.to_numpy()
    else:
        s = P.summarise(P.expected_purchases(model, horizon, summary))
        table[["expected_purchases", "expected_purchases_low", "expected_purchases_high"]] = s.to_numpy()
        table["p_alive"] = P.p_alive(model, summary).mean(axis=0)
    table.attrs["horizon"] = horizon
    return table, summary


def write_forecast(model: CLVModel, summary: pd.DataFrame, path: str | Path) -> Path:
    """``forecast.json``: predicted (mean, 90% interval) against actual holdout transactions,
    in total and by calibration frequency."""
    from cbcv.valuation import holdout as V

    path = Path(path)
    totals = V.holdout_totals(model, summary)
    record = {
        "model": model.name,
        "holdout_length": float(summary["T_holdout"].iloc[0]),
        "total": totals.to_dict(),
        "by_frequency": V.conditional_expectations(model, summary).to_dict(orient="records"),
    }
    atomic_write_json(path, record)
    return path
