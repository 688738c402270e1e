"""The steps that the CLI and the notebooks share: load a company's transactions as its config
says, and write the audit's machine-readable outputs. Thin glue over ``cbcv.data`` and
``cbcv.audit``; no statistics here."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cbcv.audit import CustomerBaseAudit, customer_base_audit
from cbcv.config import LoadedConfig
from cbcv.data.datasets import is_dataset, load_dataset
from cbcv.data.load import LoadResult, load_transactions


def load_transactions_for(
    source: str, loaded: LoadedConfig | None = None, *, as_of: dt.date | None = None
) -> LoadResult:
    """Load ``source`` (a bundled data set's name or a path) with the config's column map, date
    format and delimiter; ``as_of`` defaults to the config's."""
    if loaded is not None and as_of is None:
        as_of = loaded.config.as_of
    if is_dataset(source):
        return load_dataset(source, as_of=as_of)
    data = loaded.config.data if loaded is not None else None
    return load_transactions(
        source,
        columns=data.columns.model_dump() if data else None,
        as_of=as_of,
        date_format=data.date_format if data else None,
        delimiter=data.delimiter if data else None,
        table=data.table if data else None,
        reject_duplicates=data.reject_duplicates if data else True,
    )


def load_company(loaded: LoadedConfig) -> LoadResult:
    """The company's validated transaction log, as its config describes it."""
    return load_transactions_for(loaded.resolve_source(), loaded)


def write_load_outputs(result: LoadResult, out: str | Path) -> list[Path]:
    """``reconciliation.json`` and ``rejections.csv`` (source row, column, raw value, reason)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rec = out / "reconciliation.json"
    rec.write_text(json.dumps(result.reconciliation.to_dict(), indent=2, default=str), encoding="utf-8")
    rej = out / "rejections.csv"
    result.rejections.to_csv(rej, index=False)
    return [rec, rej]


def audit_windows(
    loaded: LoadedConfig | None, result: LoadResult
) -> tuple[tuple[dt.date, dt.date] | None, tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]] | None]:
    """The audit's decile window (the calibration period) and migration windows (calibration
    period → holdout period) from the config; whole log and no migration without one."""
    if loaded is None:
        return None, None
    cfg = loaded.config
    first = result.transactions["date"].min().date()
    calibration = (first, cfg.calibration_end)
    if cfg.holdout_end is None:
        return calibration, None
    holdout = (cfg.calibration_end + dt.timedelta(days=1), cfg.holdout_end)
    return calibration, (calibration, holdout)


def run_audit(
    result: LoadResult,
    loaded: LoadedConfig | None = None,
    *,
    period: str = "quarter",
    cohort_period: str | None = None,
) -> CustomerBaseAudit:
    """The customer-base audit of a loaded log. With a config, its cohort period is also the C3
    chart's calendar period, deciles cover the calibration period and migration runs from the
    calibration period to the holdout period."""
    window, migration = audit_windows(loaded, result)
    if loaded is not None:
        cohort_period = cohort_period or loaded.config.cohort_period
        period = cohort_period
    return customer_base_audit(
        result.transactions,
        period=period,
        cohort_period=cohort_period or period,
        window=window,
        migration=migration,
    )


def write_audit(
    result: LoadResult,
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
        table.to_csv(path, index=False)
        written.append(path)
    return written
