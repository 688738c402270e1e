"""What customer experience is worth: the figures of the customer-experience page.

From the company's survey (``survey`` in the config: each customer's latest answer on or before
the valuation date gives its Net Promoter group, :mod:`cbcv.data.survey`) and the models fitted
with it on all data to the valuation date (:func:`cbcv.pipeline.dated_fits.fits_at`):

* the **effects** of each group against the passives on the purchase rate, the dropout and the
  spend per transaction, as ``fit.json`` names them (log ratios of the means), with their 94% HDI;
* **CLV by group**: customers, residual CLV per customer and in total, with intervals;
* the value of **moving one detractor to a promoter**: every detractor scored again as a
  promoter, keeping its history, and the difference in customer equity per detractor, per draw;
  a **programme** that moves ``survey.programme_share`` of the detractors is worth that share of
  the detractors times it (in expectation over which detractors it reaches). Both in customer
  equity and in value per share through the valuation bridge (taxes included; the future
  customers are left out, as moving today's detractors does not change them).

These are **associations**, not causal effects, unless the survey groups come from an
experiment: customers who would have bought more anyway may also be the ones who answer 9 or 10.
:data:`CAUSAL_CAVEAT` says so on the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv.clv.scoring import ScoredBase
from cbcv.config import LoadedConfig
from cbcv.core.draws import interval_bounds
from cbcv.core.errors import ConfigError
from cbcv.data._sql import ident, literal, scratch_connection
from cbcv.data.survey import NPS_LEVELS
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.dated_fits import DatedFits, fits_at
from cbcv.pipeline.valuation import clv_inputs
from cbcv.pipeline.value_history import history_folder
from cbcv.pipeline.workflow import fit_record
from cbcv.valuation.bridge import value_bridge
from cbcv.valuation.inputs import draw_financials

CAUSAL_CAVEAT = (
    "The survey effects are associations: customers who answer 9 or 10 may be those who would have "
    "bought more anyway. Read the value of moving a detractor to a promoter as causal only if the "
    "survey groups (or the programme) come from an experiment."
)
#: Posterior draws of the page's figures (the fits' draws when they have fewer).
EXPERIENCE_DRAWS = 1000


@dataclass(frozen=True)
class ExperienceValue:
    """The page's figures (module docstring); per-draw arrays ``(draws,)``."""

    column: str
    effects: pd.DataFrame
    by_group: pd.DataFrame
    n_detractors: int
    uplift_per_detractor: np.ndarray
    uplift_per_share: np.ndarray
    programme_share: float
    programme_value: np.ndarray
    programme_per_share: np.ndarray
    survey_counts: dict[str, int]
    valuation_date: str
    currency: str
    interval: float = 0.9

    def value_table(self) -> pd.DataFrame:
        """The value of one detractor moved and of the programme, in customer equity and per share."""
        lo, hi = interval_bounds(self.interval)
        rows = {
            "one detractor moved to promoter: customer equity": self.uplift_per_detractor,
            "one detractor moved to promoter: value per share": self.uplift_per_share,
            f"programme ({self.programme_share:.0%} of {self.n_detractors:,} detractors): customer equity":
                self.programme_value,
            f"programme ({self.programme_share:.0%} of {self.n_detractors:,} detractors): value per share":
                self.programme_per_share,
        }
        return pd.DataFrame({k: {"mean": float(np.mean(v)), "low": float(np.quantile(v, lo)),
                                 "high": float(np.quantile(v, hi))} for k, v in rows.items()}).T

    def to_json_dict(self) -> dict[str, Any]:
        """The figures as records; numbers are made strict JSON by the writer
        (:func:`cbcv.core.cache.atomic_write_json`)."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return frame.reset_index().to_dict("records")

        return {"column": self.column, "valuation_date": self.valuation_date, "currency": self.currency,
                "interval": self.interval, "effects": records(self.effects), "by_group": records(self.by_group),
                "value": records(self.value_table()), "survey": self.survey_counts,
                "n_detractors": self.n_detractors, "caveat": CAUSAL_CAVEAT}


def effects_table(fits: DatedFits, column: str) -> pd.DataFrame:
    """Each group's effects (``purchase``, ``dropout``, ``spend``) with the 94% HDI, and the
    ratio of the means they imply (exp of the log ratio)."""
    rows = []
    for model in (fits.freq, fits.spend):
        for name, p in fit_record(model)["parameters"].items():
            process, _, rest = name.partition("[")
            if not rest.startswith(f"{column}="):
                continue
            rows.append({"group": rest[len(column) + 1:-1], "process": process, "effect": p["mean"],
                         "hdi_low": p["hdi_low"], "hdi_high": p["hdi_high"],
                         "ratio": float(np.exp(p["mean"])) if p["mean"] is not None else None})
    return pd.DataFrame(rows)


def customer_experience(loaded: LoadedConfig, result: CompanyData, *, store: str | Path | None = None,
                        interval: float = 0.9, progress: Any = None) -> ExperienceValue:
    """The customer-experience page's figures at the valuation date (module docstring)."""
    cfg = loaded.config
    if cfg.survey is None:
        raise ConfigError(f"{loaded.path}: survey: required for the customer-experience figures")
    if cfg.financials is None:
        raise ConfigError(f"{loaded.path}: financials: required to value customer experience per share")
    column = cfg.survey.column
    day = cfg.valuation_date
    store = Path(store) if store is not None else history_folder(result) / "_models"
    fits = fits_at(loaded, result, day, store, progress)
    data = fits.data
    n = min(fits.n_draws, EXPERIENCE_DRAWS)
    margin, rate, _ = clv_inputs(loaded, n)
    folder = data.folder / "experience"
    folder.mkdir(exist_ok=True)

    def score(path: Path, name: str) -> ScoredBase:
        if progress:
            progress(f"customer experience: {name} ...")
        return fits.score_file(path, folder / f"{name}_scored.parquet", margin=margin, rate=rate, n=n,
                               group_by=[column])

    moved_file, n_det = _detractors_as_promoters(data, column, folder)
    if n_det == 0:
        raise ConfigError(f"{loaded.path}: survey: no detractor at {day}; nothing to move")
    actual = score(data.covariate_summary_file, "customers")
    moved = score(moved_file, "detractors_as_promoters")  # the same draws: the difference is paired
    uplift = (moved.total - actual.group_draws[column]["detractor"].to_numpy()) / n_det
    fin = draw_financials(cfg.financials, n, seed=cfg.seed)
    options = {"cost_growth": cfg.financials.cost_growth, "capex_deductible": cfg.financials.capex_deductible}
    base = value_bridge(actual.total, None, fin, **options).value_per_share  # type: ignore[arg-type]
    share = cfg.survey.programme_share

    def per_share(delta: np.ndarray) -> np.ndarray:
        return value_bridge(actual.total + delta, None, fin, **options).value_per_share - base  # type: ignore[arg-type]

    return ExperienceValue(
        column=column, effects=effects_table(fits, column), by_group=_by_group(actual, column, interval),
        n_detractors=n_det, uplift_per_detractor=uplift, uplift_per_share=per_share(uplift),
        programme_share=share, programme_value=share * n_det * uplift,
        programme_per_share=per_share(share * n_det * uplift),
        survey_counts=data.covariates.survey_groups(day).counts() if data.covariates else {},
        valuation_date=day.isoformat(), currency=cfg.company.currency, interval=interval,
    )


def _by_group(scored: ScoredBase, column: str, interval: float) -> pd.DataFrame:
    """Customers, CLV per customer and in total by group with intervals (:meth:`CLVTables.by`;
    a group's size is fixed, so its per-customer interval is its total's divided by it), in the
    levels' order."""
    table = scored.by(column, interval).set_index(column)
    size = table["customers"]
    out = pd.DataFrame({
        "customers": size, "clv_per_customer": table["mean"] / size, "per_customer_low": table["low"] / size,
        "per_customer_high": table["high"] / size, "clv_total": table["mean"], "total_low": table["low"],
        "total_high": table["high"],
    })
    order = [g for g in (*NPS_LEVELS[1:3], NPS_LEVELS[0], NPS_LEVELS[3]) if g in out.index]
    return out.loc[[*order, *[g for g in out.index if g not in order]]].rename_axis("group")


def _detractors_as_promoters(data: CompanyData, column: str, folder: Path) -> tuple[Path, int]:
    """The detractors' summaries with the survey column set to ``promoter`` (a Parquet file, in
    DuckDB), and how many detractors there are."""
    col = ident(column)
    moved = folder / "detractors_as_promoters.parquet"
    with scratch_connection(memory_limit=data.engine.memory_limit, threads=data.engine.threads) as con:
        where = f"FROM read_parquet({literal(str(data.covariate_summary_file))}) WHERE {col} = 'detractor'"
        n = int(con.execute(f"SELECT count(*) {where}").fetchone()[0])  # type: ignore[index]
        con.execute(f"COPY (SELECT * REPLACE ('promoter' AS {col}) {where}) TO {literal(str(moved))} (FORMAT parquet)")
    return moved, n
