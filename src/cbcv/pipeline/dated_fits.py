"""The company's models fitted on its data up to a given day, kept and reused: :func:`fits_at`.

Every customer's value at an as-of date (:mod:`cbcv.pipeline.value_history`) and the movement of
customer equity between two dates (:mod:`cbcv.pipeline.equity_movement`) use the models fitted on
the data to that date: the config's first purchase model and gamma-gamma, with the customers'
covariates when the config has them, by the config's sampler and seed. The fits are saved under
``<store>/<config hash>/as_of=<day>/`` and reused while the config is the same, so scoring a
date twice gives the same numbers and a movement reuses the history's fits. Each fit pair has a
**model version**: the first 16 hex digits of the SHA-256 of both posteriors' draws.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbcv import predict as P
from cbcv.clv import n_model_draws
from cbcv.clv.scoring import ScoredBase, score_customers
from cbcv.config import LoadedConfig
from cbcv.core.errors import ConfigError
from cbcv.core.jsonio import dumps_strict
from cbcv.models.base import CLVModel, draws_sha256
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.valuation import company_models


def config_hash(loaded: LoadedConfig) -> str:
    """The first 16 hex digits of the SHA-256 of the config as parsed (keys sorted)."""
    text = dumps_strict(loaded.config.model_dump(mode="json"), indent=None, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_version(*models: CLVModel) -> str:
    """The first 16 hex digits of the SHA-256 of the models' names and posterior draws
    (:func:`cbcv.models.base.draws_sha256`)."""
    return draws_sha256(*models)[:16]


@dataclass(frozen=True)
class DatedFits:
    """The data to ``day`` and the models fitted on it: the purchase model ``freq`` and
    gamma-gamma ``spend``; ``version`` their model version."""

    day: dt.date
    data: CompanyData
    freq: CLVModel
    spend: CLVModel
    version: str
    source: str

    @property
    def n_draws(self) -> int:
        return min(n_model_draws(self.freq), n_model_draws(self.spend))

    def score_file(self, summaries: Path, out: Path, *, margin: Any, rate: Any, n: int,
                   group_by: list[str]) -> ScoredBase:
        """Every customer of the Parquet file ``summaries`` scored with these fits over ``n`` draws
        (:func:`cbcv.clv.scoring.score_customers`, the engine caps of the config), grouped by
        ``group_by``; the customers to ``out``."""
        engine = self.data.engine
        return score_customers(self.freq, self.spend, summaries, out, margin=margin, annual_discount_rate=rate,
                               time_unit=self.data.settings.time_unit, max_draws=n, group_by=group_by,
                               memory_limit=engine.memory_limit, threads=engine.threads)


def purchase_model_name(loaded: LoadedConfig) -> str:
    """The purchase model the dated fits value with: the config's first one."""
    names = [m for m in loaded.config.models if m in P.FREQUENCY]
    if not names or "gamma_gamma" not in loaded.config.models:
        raise ConfigError(f"{loaded.path}: models: customer values need a purchase model (bgnbd, mbgnbd or "
                          "pareto_nbd) and gamma_gamma")
    return names[0]


def fits_at(loaded: LoadedConfig, result: CompanyData, day: dt.date, store: str | Path,
            progress: Any = None) -> DatedFits:
    """The models fitted on ``result``'s log up to ``day`` (see the module docstring)."""
    first, last = result.data_window
    if first is not None and day < first:
        raise ConfigError(f"{loaded.path}: as-of date {day} is before the first purchase in the data ({first})")
    if day > loaded.config.valuation_date:
        raise ConfigError(f"{loaded.path}: as-of date {day} is after the data's end {loaded.config.valuation_date}")
    name = purchase_model_name(loaded)
    data = result.at(day)
    folder = Path(store) / config_hash(loaded)
    _, models, source = company_models(loaded, data, folder, progress, folder=f"as_of={day.isoformat()}")
    freq, spend = models[name], models["gamma_gamma"]
    return DatedFits(day, data, freq, spend, model_version(freq, spend), source)
