"""The seam between a subscription company's report and its data: :class:`SubscriptionBook`.

A subscription company's records (``data.layout: subscriptions``, the default of ``business:
subscription``) or billing log (``billing_log``) are validated as its config says
(:mod:`cbcv.data.subscriptions`: every row accepted or rejected with a reason, the counts
reconciled) into its work folder, ``data/processed/<company>/``: ``spells.parquet`` (the accepted
spells, derived data, never in a report), the rejections and a manifest written last. A later
call reuses them while the manifest records the same key (the source's SHA-256, the data
settings and the as-of date) and the files' sizes and times; the folder is locked against a
concurrent run. Every figure the notebooks show is then one DuckDB query over that Parquet file
(:mod:`cbcv.data.subscription_summary`, :mod:`cbcv.audit.subscriptions`), capped by
``engine.memory_limit`` and ``engine.threads``: no pandas row per subscriber.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv.audit.subscriptions import SubscriptionAudit, subscription_audit
from cbcv.config import CompanyConfig, DataSource, LoadedConfig
from cbcv.core.cache import (
    FolderLock,
    atomic_write_json,
    content_key,
    file_stamps,
    read_json,
    temporary_path,
)
from cbcv.core.errors import ConfigError
from cbcv.data import subscription_summary as S
from cbcv.data.load import file_sha256
from cbcv.data.subscriptions import spells_from_billing_log, validate_subscriptions_to_parquet

#: The validation's files in the company's work folder: accepted spells, rejections, manifest.
SPELL_FILES = ("spells.parquet", "spell_rejections.parquet", "spells.json")
#: Bumped when the validation rules change, so that cached spells are validated again.
SPELL_RULES_VERSION = 1


@dataclass(frozen=True)
class SubscriptionBook:
    """A subscription company's validated spells and every summary the report reads of them."""

    spells: Path
    rejections: pd.DataFrame
    reconciliation: dict[str, Any]
    config: CompanyConfig

    @property
    def _caps(self) -> dict[str, Any]:
        return {"memory_limit": self.config.engine.memory_limit, "threads": self.config.engine.threads}

    @property
    def covariates(self) -> tuple[str, ...]:
        """The retention model's covariates (``retention.covariates``)."""
        return tuple(self.config.retention.covariates)

    @property
    def period(self) -> str:
        """The billing period, which the retention models count."""
        return self.config.time_unit

    @property
    def valuation_date(self) -> dt.date:
        return self.config.valuation_date

    @property
    def data_window(self) -> tuple[dt.date | None, dt.date]:
        """The first start and the valuation date."""
        first = self.reconciliation.get("first_start")
        return (dt.date.fromisoformat(first) if first else None), self.valuation_date

    def durations(self, end: dt.date) -> pd.DataFrame:
        """The retention models' duration data at ``end`` (:func:`cbcv.data.subscription_summary.retention_durations`)."""
        return S.retention_durations(self.spells, end=end, cohort_period=self.config.cohort_period,
                                     by=self.covariates, **self._caps)

    def holdout(self) -> pd.DataFrame | None:
        """The holdout check of the spells active at the calibration end, or None without a
        holdout period (:func:`cbcv.data.subscription_summary.holdout_durations`)."""
        cfg = self.config
        if cfg.holdout_end is None:
            return None
        return S.holdout_durations(self.spells, calibration_end=cfg.calibration_end, holdout_end=cfg.holdout_end,
                                   cohort_period=cfg.cohort_period, by=self.covariates, **self._caps)

    def active(self, at: dt.date | None = None) -> pd.DataFrame:
        """The subscribers active at ``at`` (default: the valuation date) by cohort, covariates
        and renewals, with their price per period and mean time to the next renewal."""
        return S.active_subscribers(self.spells, at=at or self.valuation_date, cohort_period=self.config.cohort_period,
                                    by=self.covariates, next_due=True, **self._caps)

    def new_subscribers(self, periods: int = 12) -> pd.DataFrame:
        """The first spells started in the last ``periods`` months before the valuation date, by
        covariates, with their price per period: the mix and prices of a future subscriber."""
        since = (pd.Timestamp(self.valuation_date) - pd.DateOffset(months=periods) + pd.Timedelta(days=1)).date()
        return S.new_subscribers(self.spells, since=since, until=self.valuation_date, by=self.covariates, **self._caps)

    def acquisitions(self, period: str, end: dt.date | None = None) -> pd.DataFrame:
        """New customers per ``period`` to ``end`` (default: the valuation date), complete periods only."""
        return S.acquisition_history(self.spells, period=period, end=end or self.valuation_date, **self._caps)

    def audit(self) -> SubscriptionAudit:
        """The subscription audit at the valuation date (:func:`cbcv.audit.subscriptions.subscription_audit`)."""
        cfg = self.config
        return subscription_audit(self.spells, as_of=self.valuation_date, cohort_period=cfg.cohort_period,
                                  period=cfg.time_unit, **self._caps)


def load_subscription_book(loaded: LoadedConfig, work_dir: str | Path | None = None) -> SubscriptionBook:
    """The company's spells validated into ``work_dir`` (default: its work folder), cached
    (module docstring)."""
    from cbcv.pipeline.workflow import work_folder

    cfg = loaded.config
    if not cfg.is_subscription:
        raise ConfigError(f"{loaded.path}: business: {cfg.business} is not a subscription company")
    work = Path(work_dir) if work_dir is not None else work_folder(loaded)
    source = Path(loaded.resolve_source())
    sha = file_sha256(source, source.name) if source.is_file() else None
    data = cfg.data
    key = content_key({"sha256": sha, "data": data.model_dump(mode="json", exclude={"source"}),
                       "as_of": cfg.valuation_date.isoformat(), "time_unit": cfg.time_unit,
                       "rules": SPELL_RULES_VERSION})
    spells, rejections, manifest = (work / n for n in SPELL_FILES)
    with FolderLock(work):
        saved = read_json(manifest)
        if (sha is not None and isinstance(saved, dict) and saved.get("key") == key and spells.is_file()
                and rejections.is_file() and saved.get("files") == file_stamps(spells, rejections)):
            return SubscriptionBook(spells, pd.read_parquet(rejections), saved["reconciliation"], cfg)
        manifest.unlink(missing_ok=True)  # invalidated first, written last
        caps = {"memory_limit": cfg.engine.memory_limit, "threads": cfg.engine.threads}
        with temporary_path(spells) as tmp:
            reconciliation, rejected = validate_spells(source, tmp, data, billing_period=cfg.time_unit,
                                                       as_of=cfg.valuation_date, **caps)
        with temporary_path(rejections) as tmp:
            rejected.to_parquet(tmp, index=False)
        rec = reconciliation.to_dict()
        if sha is not None:
            atomic_write_json(manifest, {"key": key, "files": file_stamps(spells, rejections), "reconciliation": rec})
    return SubscriptionBook(spells, rejected, rec, cfg)


def validate_spells(source: Path, target: Path, data: DataSource, *, billing_period: str, as_of: dt.date | None,
                    memory_limit: str | None = None, threads: int | None = None) -> tuple[Any, pd.DataFrame]:
    """``source`` validated as ``data`` says (its layout: subscription records, or a billing log
    turned into spells) into the Parquet file ``target``: the reconciliation and the rejections."""
    caps = {"memory_limit": memory_limit, "threads": threads}
    if data.layout == "billing_log":
        result = spells_from_billing_log(source, columns=data.columns.transaction_columns(), billing_period=billing_period,
                                         grace_days=data.grace_days, as_of=as_of, source_name=source.name, **caps)
        result.spells.to_parquet(target, index=False)
        return result.reconciliation, result.rejections
    return validate_subscriptions_to_parquet(
        source, target, columns=data.columns.subscription_columns(), as_of=as_of, billing_period=billing_period,
        plans=data.plans, extra_columns=tuple(data.extra_columns), date_format=data.date_format,
        source_name=source.name, **caps)


def write_subscription_audit(book: SubscriptionBook, out: str | Path, audit: SubscriptionAudit | None = None) -> list[Path]:
    """The audit beside a report: ``reconciliation.json``, ``rejections.csv`` (source row, line,
    column, reason and detail of every failing check: no raw values, which may be customer ids),
    one CSV per audit table and ``audit.json`` (strict JSON; no table holds customer ids)."""
    from cbcv.core.safe_csv import write_csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    audit = audit or book.audit()
    written = [atomic_write_json(out / "reconciliation.json", book.reconciliation)]
    keep = [c for c in ("source_row", "line", "column", "reason", "primary", "detail") if c in book.rejections.columns]
    path = out / "rejections.csv"
    write_csv(book.rejections[keep], path)
    written.append(path)
    for name, table in audit.tables().items():
        path = out / f"{name}.csv"
        write_csv(table, path)
        written.append(path)
    written.append(atomic_write_json(out / "audit.json", audit.to_json_dict()))
    return written


def reconciliation_table(rec: dict[str, Any]) -> pd.DataFrame:
    """The validation's reconciliation as a two-column table (``item``, ``value``): rows read =
    accepted + rejected, rejections by reason, spells, reactivations, active and churned."""
    rows: list[tuple[str, str]] = [
        ("source", str(rec["source"])), ("rows read", f"{rec['rows_read']:,}"),
        ("rows accepted", f"{rec['rows_accepted']:,}"), ("rows rejected", f"{rec['rows_rejected']:,}"),
    ]
    rows += [(f"  rejected: {k.replace('_', ' ')}", f"{v:,}") for k, v in rec["rejected_by_reason"].items()]
    rows += [
        ("customers", f"{rec['customers']:,}"), ("subscription spells", f"{rec['spells']:,}"),
        ("reactivations (a customer's later spells)", f"{rec['reactivations']:,}"),
        ("spells active at the valuation date", f"{rec['active_at_as_of']:,}"),
        ("spells ended", f"{rec['churned']:,}"),
        ("ending after the valuation date (active then)", f"{rec['ends_after_as_of']:,}"),
        ("billing periods", ", ".join(f"{k}: {v:,}" for k, v in rec["billing_periods"].items())),
        ("first start", str(rec["first_start"])), ("last start", str(rec["last_start"])),
    ]
    if rec.get("charges_in_spells") is not None:
        rows.append(("charges in spells", f"{rec['charges_in_spells']:,}"))
    return pd.DataFrame(rows, columns=["item", "value"])


def headline_table(audit: SubscriptionAudit, currency: str) -> pd.DataFrame:
    """The audit's headline figures as a two-column table (``figure``, ``value``)."""
    h = audit.headline

    def money(v: Any) -> str:
        return "n/a" if v is None or not np.isfinite(float(v)) else f"{currency} {float(v):,.0f}"

    def share(v: Any) -> str:
        return "n/a" if v is None or not np.isfinite(float(v)) else f"{float(v):.1%}"

    rows = [
        ("subscribers active at the valuation date", f"{h['subscribers']:,}"),
        ("customers (ever subscribed)", f"{h['customers']:,}"), ("reactivations", f"{h['reactivations']:,}"),
        ("revenue run-rate (active subscribers' prices, a year)", money(h["revenue_run_rate"])),
        ("revenue in the last 12 months", money(h["revenue_12m"])),
        ("monthly churn rate over the last 12 months", share(h["churn_rate_monthly_12m"])),
        ("net revenue retention, last 12 months", share(h["nrr_12m"])),
        ("gross revenue retention, last 12 months", share(h["grr_12m"])),
    ]
    return pd.DataFrame(rows, columns=["figure", "value"])
