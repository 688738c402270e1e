"""The one seam between the report and the data: :class:`CompanyData`.

Every company, whatever its size, is validated into a work folder
(:func:`cbcv.pipeline.workflow.validate_company`: ``accepted.parquet``, the rejections and a
manifest, cached) and the workflow, the valuation and the CLI ask one :class:`CompanyData`
for everything data-side. Each answer is computed by SQL over the validated Parquet log or
the summary file, in DuckDB capped by ``engine.memory_limit`` and ``engine.threads`` (spilling
to disk beyond them), so no step holds a pandas row per customer unless it asks for one
(:meth:`CompanyData.summaries`, for per-customer predictions):

* the per-customer calibration(/holdout) summaries, written once to ``summary.parquet``
  beside the validated log (:func:`cbcv.data.summary_files.write_summaries`; on Spark with
  ``engine.name: spark``, the same SQL) and reused while the log and the summary settings are
  the same (:meth:`~CompanyData.summary_file`);
* the **counted summary**: one row per distinct ``(x, t_x, T[, x_holdout, T_holdout])`` with
  its ``count`` of customers. The frequency models fit it exactly as the per-customer summary
  (their likelihood is a sum over customers), and every validation figure weights by it
  (:mod:`cbcv.valuation.holdout`);
* a seeded random sample of at most :data:`SPEND_SAMPLE` repeat buyers for the gamma-gamma
  spend model, whose likelihood does not compress (spend is continuous); every repeat buyer
  when there are fewer, so a base like CDNOW gets the exact fit;
* the **valuation units**: one row per distinct ``(x, t_x, T)`` with its customers and their
  mean repeat spend. Gamma-gamma's expected spend is linear in a customer's mean repeat spend
  (Fader, Hardie & Lee 2005, "RFM and CLV", eq. 5), so a unit's expected spend times its count
  is the sum over its customers, and DERT depends on the summary alone: the sensitivities and
  the revenue forecast over units equal those over customers;
* the first purchases by date, the acquisition history per period, and the mean and spread of
  the first purchases' spend (what a future customer spends at acquisition);
* the tracking table (purchase days by date, counted from the validated log);
* the scored customers (:func:`cbcv.clv.scoring.score_customers`), written with their ids to
  ``customers.parquet`` in the work folder (derived data, never in a report folder); the
  scored base is kept beside it (``scored.npz``, :mod:`cbcv.clv.scored_store`) and reused while
  the summaries, posteriors, margin and rate draws are the same.

The summaries end at the calibration end, for the fit that holdout validation judges;
:meth:`CompanyData.at` gives the seam over the same log with the summaries ending at another
date, the valuation date, for the refit on all data that the valuation uses. Its derived files
go to a subfolder of the work folder named for that date, so neither set evicts the other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cbcv.clv.scored_store import load_scored, save_scored
from cbcv.clv.scoring import ScoredBase, score_customers
from cbcv.config import CompanyConfig, EngineSettings
from cbcv.core import cache
from cbcv.core.errors import CbcvError
from cbcv.data._sql import literal
from cbcv.data.covariates import CovariateTable, write_with_covariates
from cbcv.data.load import Reconciliation, ValidatedLog
from cbcv.data.summary import period_summary, summary_frame
from cbcv.data.summary_files import (
    RFT,
    column_moments,
    sample_rows,
    summary_counts,
    write_summaries,
)
from cbcv.models.base import CLVModel, draws_sha256
from cbcv.models.covariates import CovariateModel
from cbcv.pipeline.customer_covariates import CovariateSpec
from cbcv.valuation.acquisition import acquisitions_from_first_purchases
from cbcv.valuation.drivers import FirstPurchaseSpend, NewCustomers

#: Repeat buyers sampled (seeded) for the gamma-gamma fit; all of them when there are fewer.
SPEND_SAMPLE = 100_000
#: Columns of the counted summary with a holdout period.
HOLDOUT_KEY = (*RFT, "x_holdout", "T_holdout")


@dataclass(frozen=True)
class SummarySettings:
    """What the summaries depend on besides the log: the calibration end, the optional holdout
    end, the time unit and the cohort period (:mod:`cbcv.data.summary`)."""

    calibration_end: dt.date
    holdout_end: dt.date | None = None
    time_unit: str = "week"
    cohort_period: str = "quarter"

    @classmethod
    def of(cls, cfg: CompanyConfig) -> SummarySettings:
        """A company config's summary settings."""
        return cls(cfg.calibration_end, cfg.holdout_end, cfg.time_unit, cfg.cohort_period)


#: Beside a revenue panel's validated occasions: the ids of the customers acquired before the
#: panel starts (derived data, never in a report), written by
#: :func:`cbcv.pipeline.workflow.validate_company`.
PRE_START_FILE = "pre_start.parquet"
#: Future customers arrive with the covariate mix of those acquired in this many days to the
#: summaries' end (:meth:`CompanyData.new_customers`): the latest year, a whole seasonal cycle.
NEW_CUSTOMER_DAYS = 365


class CompanyData:
    """A company's validated log and everything the report reads from it (module docstring).

    ``log``: the validated log (:class:`cbcv.data.load.ValidatedLog`); its folder is the work
    folder for the derived files. ``settings``: the summary settings. ``engine``: the config's
    engine section (DuckDB caps, or Spark for the summaries). ``seed``: the spend sample's."""

    def __init__(self, log: ValidatedLog, settings: SummarySettings,
                 engine: EngineSettings | None = None, seed: int = 0, *, subfolder: str | None = None,
                 covariates: CovariateSpec | None = None) -> None:
        self.log = log
        self.settings = settings
        self.engine = engine if engine is not None else EngineSettings()
        self.seed = seed
        self.subfolder = subfolder
        self.covariates = covariates

    def at(self, end: dt.date) -> CompanyData:
        """The seam over the same log with the summaries ending at ``end`` and no holdout
        period: the data the valuation refits the models on (module docstring). ``self`` when
        its summaries already end there without a holdout."""
        s = self.settings
        if s.calibration_end == end and s.holdout_end is None:
            return self
        settings = dataclasses.replace(s, calibration_end=end, holdout_end=None)
        return CompanyData(self.log, settings, self.engine, self.seed, subfolder=f"to_{end.isoformat()}",
                           covariates=self.covariates)

    def without_covariates(self) -> CompanyData:
        """The same data with no customer covariates: the fits to compare the covariates with."""
        return CompanyData(self.log, self.settings, self.engine, self.seed, subfolder=self.subfolder)

    @property
    def data_window(self) -> tuple[dt.date | None, dt.date]:
        """First day of the validated log and the last day the summaries count."""
        return self.reconciliation.first_date, self.settings.holdout_end or self.settings.calibration_end

    # --- the validated log ----------------------------------------------------------------

    @property
    def accepted(self) -> Path:
        """The validated Parquet log (``accepted.parquet``), which the audit reads."""
        return Path(self.log.accepted)

    @property
    def reconciliation(self) -> Reconciliation:
        return self.log.reconciliation

    @property
    def rejections(self) -> pd.DataFrame:
        return self.log.rejections

    @property
    def zero_amount_purchases(self) -> bool:
        """The log's purchase rule (:func:`cbcv.data.transactions.daily_sql`)."""
        return bool(self.log.reconciliation.zero_amount_purchases)

    @property
    def folder(self) -> Path:
        """Where the derived files go: the validated log's folder (the work folder), or its
        subfolder for summaries ending at another date (:meth:`at`)."""
        if self.subfolder is None:
            return self.accepted.parent
        folder = self.accepted.parent / self.subfolder
        folder.mkdir(exist_ok=True)
        return folder

    def _caps(self) -> dict[str, Any]:
        return {"memory_limit": self.engine.memory_limit}

    # --- summaries --------------------------------------------------------------------------

    @cached_property
    def summary_file(self) -> Path:
        """The per-customer summaries, written to ``summary.parquet`` in the work folder, or
        reused when ``summary.json`` records the same log, summary settings and engine."""
        s, folder = self.settings, self.folder
        path, manifest = folder / "summary.parquet", folder / "summary.json"
        stat = self.accepted.stat()
        key = cache.content_key({
            "accepted": {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            "reconciliation": self.reconciliation.to_dict(),
            "calibration_end": s.calibration_end.isoformat(),
            "holdout_end": s.holdout_end.isoformat() if s.holdout_end else None,
            "time_unit": s.time_unit, "cohort_period": s.cohort_period, "engine": self.engine.name,
        })
        return cache.cached_file(path, manifest, key, lambda tmp: write_summaries(
            self.accepted, tmp, calibration_end=s.calibration_end, holdout_end=s.holdout_end,
            time_unit=s.time_unit, cohort_period=s.cohort_period,
            memory_limit=self.engine.memory_limit, threads=self.engine.threads,
            zero_amount_purchases=self.zero_amount_purchases, engine=self.engine.name,
            spark_master=self.engine.spark.master, spark_conf=self.engine.spark.conf,
        ))

    def summaries(self) -> pd.DataFrame:
        """The per-customer summaries as a pandas frame (one row per customer: for per-customer
        predictions and analysts; the report's steps use the counted forms)."""
        return summary_frame(pd.read_parquet(self.summary_file), self.summary_file.name,
                             self.settings.calibration_end, holdout=self.settings.holdout_end is not None)

    @property
    def observed_birth(self) -> str | None:
        """SQL filter on the summaries keeping the customers whose acquisition the data show:
        ``None`` but for a revenue panel with customers acquired before it starts
        (:data:`PRE_START_FILE`). Those customers' first observed purchase
        is not their first, so they are left out of the fits, the acquisition history and the
        first-purchase spend; they are scored (valued) with the model fitted on the others, their
        observed history starting at their first purchase in the panel (an approximation: their
        earlier purchases and age are unknown)."""
        pre = self.accepted.parent / PRE_START_FILE
        if not pre.is_file():
            return None
        return f"customer_id NOT IN (SELECT customer_id FROM read_parquet({literal(str(pre))}))"

    def _where(self, *conditions: str | None) -> str | None:
        kept = [f"({c})" for c in conditions if c]
        return " AND ".join(kept) if kept else None

    @cached_property
    def counted(self) -> pd.DataFrame:
        """The counted summary: one row per distinct ``(x, t_x, T)`` (with the holdout columns
        when there is a holdout period) and its ``count`` of customers (those whose acquisition
        the data show: :attr:`observed_birth`)."""
        key = HOLDOUT_KEY if self.settings.holdout_end is not None else RFT
        return summary_counts(self.summary_file, key, where=self.observed_birth, **self._caps())

    @property
    def n_customers(self) -> int:
        return int(self.counted["count"].sum())

    def spend_sample(self, n: int = SPEND_SAMPLE) -> pd.DataFrame:
        """A seeded random sample of at most ``n`` repeat buyers (``x``, ``mean_repeat_spend``)
        for the gamma-gamma fit; ``attrs["repeat_buyers"]`` holds how many there are."""
        where = self._where("x > 0", self.observed_birth)
        rows = sample_rows(self.summary_file, n, columns=("x", "mean_repeat_spend"), where=where,
                           seed=self.seed, **self._caps())
        buyers = summary_counts(self.summary_file, ("x",), where=where, **self._caps())["count"].sum()
        rows.attrs["repeat_buyers"] = int(buyers)
        return rows

    def valuation_units(self) -> pd.DataFrame:
        """One row per distinct ``(x, t_x, T)`` (and covariates, for a company with customer
        covariates, :attr:`covariate_summary_file`): its ``count`` of customers and
        ``mean_repeat_spend``, the mean over them (missing as 0, as
        :func:`cbcv.predict.expected_spend` reads it); see the module docstring."""
        path, key = self.summary_file, RFT
        if self.covariates is not None:
            path, key = self.covariate_summary_file, (*RFT, *self.covariate_table.columns)
        units = summary_counts(path, key, sums=("mean_repeat_spend",), **self._caps())
        units["mean_repeat_spend"] = units.pop("mean_repeat_spend_sum") / units["count"]
        return units

    def new_customers(self) -> NewCustomers:
        """Who the future customers are (:class:`cbcv.valuation.drivers.NewCustomers`): with
        customer covariates, the covariate mix of the customers acquired in the
        :data:`NEW_CUSTOMER_DAYS` days to the summaries' end (of every customer when none
        was), their covariates as these summaries' fits see them (a survey group as of that
        end: recent customers are more often not yet surveyed); else the population's new
        customer."""
        if self.covariates is None:
            return NewCustomers()
        end, cols = self.settings.calibration_end, list(self.covariate_table.columns)
        start = end - dt.timedelta(days=NEW_CUSTOMER_DAYS)
        recent = self._where(f"first_purchase > DATE {literal(start.isoformat())}", self.observed_birth)
        counts = summary_counts(self.covariate_summary_file, cols, where=recent, **self._caps())
        basis = f"the {int(counts['count'].sum()):,} customers acquired from {start + dt.timedelta(days=1)} to {end}"
        if counts.empty:
            counts = summary_counts(self.covariate_summary_file, cols, where=self.observed_birth, **self._caps())
            basis = f"all {int(counts['count'].sum()):,} customers to {end} (none was acquired in the last year)"
        return NewCustomers.mix(counts, cols, f"the covariate mix of {basis}")

    def first_purchase_spend(self) -> FirstPurchaseSpend:
        """The spend of the customers' first purchases (their first purchase day), counted in
        SQL over the summary file: what a future customer is expected to spend at acquisition
        (:class:`cbcv.valuation.drivers.FirstPurchaseSpend`)."""
        n, mean, sd = column_moments(self.summary_file, "first_spend", where=self.observed_birth, **self._caps())
        return FirstPurchaseSpend(n, mean, sd)

    def first_purchases(self) -> pd.Series:
        """Customers by the date of their first purchase (index: dates, sorted)."""
        counts = summary_counts(self.summary_file, ("first_purchase",), where=self.observed_birth, **self._caps())
        index = pd.DatetimeIndex(pd.to_datetime(counts["first_purchase"]).dt.normalize())
        return pd.Series(counts["count"].to_numpy(dtype=np.int64), index=index, name="new_customers")

    def period_summary(self, period: str) -> pd.DataFrame:
        """The counted discrete-time summary (active ``period``s as purchase opportunities,
        :func:`cbcv.data.summary.period_summary`) of the customers whose acquisition the data
        show, to the calibration end and over the holdout: the data of a BG/BB fit."""
        s = self.settings
        return period_summary(self.accepted, period=period, calibration_end=s.calibration_end,
                              holdout_end=s.holdout_end, births=self.observed_birth,
                              zero_amount_purchases=self.zero_amount_purchases, **self._caps())

    def acquisition_history(self, period: str) -> pd.DataFrame:
        """New customers per ``period`` up to the calibration end, from the first purchases
        (:func:`cbcv.valuation.acquisition.acquisitions_from_first_purchases`)."""
        return acquisitions_from_first_purchases(
            self.first_purchases(), freq=period, end=self.settings.calibration_end,  # type: ignore[arg-type]
        )

    def tracking(self, model: CLVModel) -> pd.DataFrame:
        """The cumulative tracking table of a frequency model over the calibration and holdout
        periods (:func:`cbcv.valuation.holdout.tracking`, counted from the validated log; a model
        with covariates over the cohorts by first purchase and covariates of the summaries)."""
        from cbcv.valuation import holdout as V

        s = self.settings
        if s.holdout_end is None:
            raise CbcvError("tracking needs a holdout period (holdout_end)")
        cohorts = None
        if isinstance(model, CovariateModel):
            cohorts = summary_counts(self.covariate_summary_file, ("first_purchase", *self.covariate_table.columns),
                                     **self._caps())
        return V.tracking(model, self.accepted, calibration_end=s.calibration_end, holdout_end=s.holdout_end,
                          time_unit=s.time_unit, zero_amount_purchases=self.zero_amount_purchases,
                          cohorts=cohorts, **self._caps())

    # --- customer covariates ----------------------------------------------------------------

    @cached_property
    def covariate_table(self) -> CovariateTable:
        """Every customer's covariates for fits on these summaries (the survey's answers up to
        their end: :class:`cbcv.pipeline.customer_covariates.CovariateSpec`)."""
        if self.covariates is None:
            raise CbcvError("this company has no covariates (covariates: or survey: in its config)")
        ids = pq.read_table(self.summary_file, columns=["customer_id"]).column(0).to_pandas()
        return self.covariates.table(ids, self.settings.calibration_end)

    @cached_property
    def covariate_summary_file(self) -> Path:
        """The summaries with every customer's covariates beside them (``summary_covariates.parquet``),
        reused while ``summary_covariates.json`` records the same summaries and covariates (their
        content hashed), as each page of a report reads it."""
        summary, table, folder = self.summary_file, self.covariate_table, self.folder
        rows = pd.util.hash_pandas_object(table.frame, index=False).to_numpy()
        key = cache.content_key({"summary": (folder / "summary.json").read_text(encoding="utf-8"),
                                 "columns": list(table.frame.columns),
                                 "covariates": hashlib.sha256(rows.tobytes()).hexdigest()})
        return cache.cached_file(
            folder / "summary_covariates.parquet", folder / "summary_covariates.json", key,
            lambda tmp: write_with_covariates(summary, table, tmp, memory_limit=self.engine.memory_limit,
                                              threads=self.engine.threads),
        )

    def covariate_summaries(self) -> pd.DataFrame:
        """The per-customer summaries with their covariates (what a fit with covariates reads)."""
        table = self.covariate_table
        return self.summaries().merge(table.frame, on="customer_id", how="left", validate="1:1")

    # --- scoring ----------------------------------------------------------------------------

    def score(self, freq: CLVModel, spend: CLVModel, *, margin: Any, rate: Any, n: int,
              progress: Any = None, horizon: float | None = None) -> ScoredBase:
        """Residual CLV of every customer over ``n`` paired draws
        (:func:`cbcv.clv.scoring.score_customers`; with ``horizon``, the expected transactions in
        it too), per customer in ``customers.parquet`` in the work folder; reused from
        ``scored.npz`` while nothing it depends on has changed. A model with covariates scores
        each customer at its own (:attr:`covariate_summary_file`)."""
        with_covariates = isinstance(freq, CovariateModel) or isinstance(spend, CovariateModel)
        path = self.covariate_summary_file if with_covariates else self.summary_file
        out, store = self.folder / "customers.parquet", self.folder / "scored.npz"
        key = self._scoring_key(freq, spend, margin, rate, n)
        if with_covariates:
            key += f"|covariates:{self.covariate_table.sha256}"
        if horizon is not None:
            key += f"|horizon:{horizon!r}"
        if out.is_file() and (saved := load_scored(store, key)) is not None:  # notebook 04 reuses 03's
            return saved
        store.unlink(missing_ok=True)  # invalid while customers.parquet is rewritten
        scored = score_customers(
            freq, spend, path, out, margin=margin, annual_discount_rate=rate,
            time_unit=self.settings.time_unit, max_draws=n, memory_limit=self.engine.memory_limit,
            threads=self.engine.threads, progress=progress, horizon=horizon,
        )
        save_scored(store, key, scored)
        return scored

    def _scoring_key(self, freq: CLVModel, spend: CLVModel, margin: Any, rate: Any, n: int) -> str:
        """SHA-256 of everything a scoring depends on: the summaries (their manifest), both
        posteriors, the margin and discount-rate draws, the draws and time unit."""
        h = hashlib.sha256()
        h.update((self.folder / "summary.json").read_bytes())
        h.update(draws_sha256(freq, spend).encode())
        for values in (margin, rate):
            h.update(np.ascontiguousarray(np.atleast_1d(values), dtype=np.float64).tobytes())
        h.update(f"{n}|{self.settings.time_unit}".encode())
        return h.hexdigest()
