"""The report's model, CLV and valuation steps on a log validated out of core.

With ``engine.out_of_core`` the validated log is a Parquet file
(:func:`cbcv.pipeline.workflow.validate_company`) and no step holds one pandas row per customer. This
module gives the steps what they read instead, all computed in DuckDB:

* the per-customer calibration(/holdout) summaries, written once to
  ``summary.parquet`` beside the validated log and reused while the log and the summary
  settings are the same (:func:`company_summaries`);
* the **counted summary**: one row per distinct ``(x, t_x, T[, x_holdout, T_holdout])`` with
  its ``count`` of customers. The frequency models fit it exactly as the per-customer summary
  (their likelihood is a sum over customers), and every validation figure weights by it
  (:mod:`cbcv.valuation.holdout`);
* a seeded random sample of at most :data:`SPEND_SAMPLE` repeat buyers for the gamma-gamma
  spend model, whose likelihood does not compress (spend is continuous); every repeat buyer
  when there are fewer, so a base like CDNOW gets the exact fit;
* the **valuation units**: one row per distinct ``(x, t_x, T)`` with its customers and their
  summed mean repeat spend. Gamma-gamma's expected spend is linear in a customer's mean
  repeat spend (Fader, Hardie & Lee 2005, "RFM and CLV", eq. 5), so a unit's expected spend
  times its count is the sum over its customers, and DERT depends on the summary alone: the
  sensitivities and the revenue forecast over units equal those over customers;
* the first purchases by date (the acquisition history) and the purchase days by date
  (the tracking plot).

Scoring every customer goes through :func:`cbcv.clv.scoring.score_customers`, which writes the
per-customer results (with customer ids: derived data, not for a report) to
``customers.parquet`` in the same folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cbcv.config import LoadedConfig
from cbcv.core.cache import (
    FolderLock,
    atomic_write_json,
    content_key,
    file_stamps,
    read_json,
    temporary_path,
)
from cbcv.data.datasets import purchase_rule
from cbcv.data.load import ValidatedLog
from cbcv.data.streaming import RFT, sample_rows, summary_counts, write_summaries

#: Repeat buyers sampled (seeded) for the gamma-gamma fit; all of them when there are fewer.
SPEND_SAMPLE = 100_000
#: Columns of the counted summary with a holdout period.
HOLDOUT_KEY = (*RFT, "x_holdout", "T_holdout")


@dataclass(frozen=True)
class CountedBase:
    """A company's summaries on disk and the counted summary in memory.

    ``path``: the per-customer summary Parquet file (:func:`summary_file`); ``counts``: one row
    per distinct ``(x, t_x, T)`` (with the holdout columns when the config has a holdout period)
    and its ``count``; ``n_customers``: the customers behind it."""

    path: Path
    counts: pd.DataFrame
    n_customers: int
    holdout: bool


def summary_file(loaded: LoadedConfig, log: ValidatedLog) -> Path:
    """The per-customer summaries of a validated log, written to ``summary.parquet`` beside it,
    or reused when ``summary.json`` records the same log and summary settings. The steps that
    need only the file (scoring, valuation units, first purchases) call this, not
    :func:`company_summaries`, so they do not count the summaries again."""
    cfg = loaded.config
    folder = Path(log.accepted).parent
    path, manifest = folder / "summary.parquet", folder / "summary.json"
    stat = Path(log.accepted).stat()
    key = {
        "accepted": {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "reconciliation": log.reconciliation.to_dict(),
        "calibration_end": cfg.calibration_end.isoformat(),
        "holdout_end": cfg.holdout_end.isoformat() if cfg.holdout_end else None,
        "time_unit": cfg.time_unit,
        "cohort_period": cfg.cohort_period,
        "zero_amount_purchases": purchase_rule(cfg.data.source, cfg.data.zero_amount_purchases),
    }
    key = content_key(key)
    with FolderLock(folder):
        saved = read_json(manifest)
        if (path.is_file() and isinstance(saved, dict) and saved.get("key") == key
                and saved.get("files") == file_stamps(path)):
            return path
        manifest.unlink(missing_ok=True)  # invalidated first, written last
        with temporary_path(path) as tmp:
            write_summaries(
                log.accepted, tmp, calibration_end=cfg.calibration_end, holdout_end=cfg.holdout_end,
                time_unit=cfg.time_unit, cohort_period=cfg.cohort_period, memory_limit=cfg.engine.memory_limit,
                threads=cfg.engine.threads,
                zero_amount_purchases=purchase_rule(cfg.data.source, cfg.data.zero_amount_purchases),
            )
        atomic_write_json(manifest, {"key": key, "files": file_stamps(path)})
    return path


def company_summaries(loaded: LoadedConfig, log: ValidatedLog) -> CountedBase:
    """The summary file of a validated log (:func:`summary_file`) and its counted summary."""
    path = summary_file(loaded, log)
    holdout = loaded.config.holdout_end is not None
    counts = summary_counts(path, HOLDOUT_KEY if holdout else RFT, memory_limit=loaded.config.engine.memory_limit)
    return CountedBase(path=path, counts=counts, n_customers=int(counts["count"].sum()), holdout=holdout)


def spend_sample(path: Path, seed: int, n: int = SPEND_SAMPLE, memory_limit: str | None = None) -> pd.DataFrame:
    """A seeded random sample of at most ``n`` repeat buyers (``x``, ``mean_repeat_spend``) of the
    summary file ``path`` for the gamma-gamma fit; ``attrs["repeat_buyers"]`` holds how many
    there are."""
    rows = sample_rows(path, n, columns=("x", "mean_repeat_spend"), where="x > 0", seed=seed,
                       memory_limit=memory_limit)
    buyers = summary_counts(path, ("x",), where="x > 0", memory_limit=memory_limit)["count"].sum()
    rows.attrs["repeat_buyers"] = int(buyers)
    return rows


def valuation_units(path: Path, memory_limit: str | None = None) -> pd.DataFrame:
    """One row per distinct ``(x, t_x, T)`` of the summary file ``path``: its ``count`` of
    customers and ``mean_repeat_spend``, the mean over them (missing as 0, as
    :func:`cbcv.predict.expected_spend` reads it); see the module docstring."""
    units = summary_counts(path, RFT, sums=("mean_repeat_spend",), memory_limit=memory_limit)
    units["mean_repeat_spend"] = units.pop("mean_repeat_spend_sum") / units["count"]
    return units


def first_purchases(path: Path, memory_limit: str | None = None) -> pd.Series:
    """Customers of the summary file ``path`` by the date of their first purchase (index:
    dates, sorted)."""
    counts = summary_counts(path, ("first_purchase",), memory_limit=memory_limit)
    index = pd.DatetimeIndex(pd.to_datetime(counts["first_purchase"]).dt.normalize())
    return pd.Series(counts["count"].to_numpy(dtype=np.int64), index=index, name="new_customers")
