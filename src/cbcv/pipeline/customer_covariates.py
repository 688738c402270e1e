"""A company's customer covariates from its config: the ``covariates`` file and the ``survey``.

:class:`CovariateSpec` is what the config says; :meth:`CovariateSpec.table` gives every customer's
covariates for a fit whose data end on a given day: the covariates file's columns (``use``) and,
with a survey, the customer's Net Promoter group from the latest answer on or before that day
(:func:`cbcv.data.survey.nps_groups`; ``not surveyed`` without one). The reference level of the
survey column is ``passive``, so each group's effects read against the passives. The owner
columns of ``attributes`` (sales rep, region, channel) are read by :func:`owner_table`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cbcv.config import AttributesSettings, CovariateSettings, LoadedConfig, SurveySettings
from cbcv.core.errors import ConfigError
from cbcv.data.covariates import CovariateTable, read_covariates
from cbcv.data.survey import NPS_LEVELS, SurveyGroups, nps_groups, survey_covariate


@dataclass(frozen=True)
class CovariateSpec:
    """The config's ``covariates`` and ``survey`` with their files resolved."""

    covariates: CovariateSettings | None
    covariates_path: str | None
    survey: SurveySettings | None
    survey_path: str | None
    _surveys: dict[dt.date, SurveyGroups] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, loaded: LoadedConfig) -> CovariateSpec | None:
        cfg = loaded.config
        if not cfg.has_covariates:
            return None
        return cls(cfg.covariates, loaded.resolve(cfg.covariates.source) if cfg.covariates else None,
                   cfg.survey, loaded.resolve(cfg.survey.source) if cfg.survey else None)

    @property
    def survey_column(self) -> str | None:
        return self.survey.column if self.survey is not None else None

    @property
    def reference(self) -> dict[str, str]:
        """Reference levels: the config's, and ``passive`` for the survey column."""
        ref = dict(self.covariates.reference) if self.covariates is not None else {}
        if self.survey is not None:
            ref[self.survey.column] = NPS_LEVELS[0]
        return ref

    def survey_groups(self, end: dt.date) -> SurveyGroups:
        """Each answering customer's latest answer on or before ``end`` (read once per day)."""
        assert self.survey is not None and self.survey_path is not None
        if end not in self._surveys:
            cols = self.survey.columns
            self._surveys[end] = nps_groups(self.survey_path, end, columns={
                "customer_id": cols.customer_id, "date": cols.date, "score": cols.score, "touchpoint": cols.touchpoint,
            })
        return self._surveys[end]

    def table(self, customers: pd.Series, end: dt.date) -> CovariateTable:
        """The covariates of ``customers`` (their ids) for a fit whose data end on ``end``."""
        parts: list[CovariateTable] = []
        if self.covariates is not None:
            assert self.covariates_path is not None
            parts.append(read_covariates(self.covariates_path, self.covariates.use,
                                         id_column=self.covariates.id_column))
        if self.survey is not None:
            parts.append(survey_covariate(customers, self.survey_groups(end), self.survey.column))
        if len(parts) == 1:
            return parts[0]
        first, second = parts
        if clash := [c for c in second.columns if c in first.columns]:
            raise ConfigError(f"survey.column: {clash[0]!r} is also a column of the covariates file; name it otherwise")
        frame = first.frame.merge(second.frame, on="customer_id", how="right")
        return CovariateTable(frame, f"{first.source} + {second.source}",
                              f"{first.sha256}+{second.sha256}", first.rows_read)


def covariate_record(table: CovariateTable, spec: CovariateSpec, end: dt.date) -> dict[str, Any]:
    """What a fit with covariates records of them (beside the design): sources, hashes and the
    survey's counts of answers used, superseded and after the data end."""
    out: dict[str, Any] = {"source": table.source, "sha256": table.sha256}
    if spec.survey is not None:
        out["survey"] = {"column": spec.survey.column, "data_end": end.isoformat(), **spec.survey_groups(end).counts()}
    return out


def owner_table(loaded: LoadedConfig) -> CovariateTable | None:
    """The config's ``attributes``: each customer's owner columns, as text (None without them)."""
    attrs: AttributesSettings | None = loaded.config.attributes
    if attrs is None:
        return None
    return read_covariates(loaded.resolve(attrs.source), attrs.owners, id_column=attrs.id_column, as_text=True)
