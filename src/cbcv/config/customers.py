"""The customer-management sections of a company config (issue 17): ``covariates``, ``survey``,
``attributes`` and ``movement``, and the checks that tie them to the business and the notebooks."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The customer-management notebooks of a purchase-log company: what customer experience is worth
#: (``survey``) and the movement of customer equity between two dates by owner (``movement``).
CX_NOTEBOOKS: tuple[str, ...] = ("06_customer_experience", "07_customer_value_movement")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CustomerFile(_Strict):
    """A file with one row per customer (CSV or Parquet; relative to the config's folder):
    ``columns.customer_id`` names its id column."""

    source: str = Field(min_length=1)
    columns: dict[Literal["customer_id"], str] = Field(default_factory=lambda: {"customer_id": "customer_id"})

    @property
    def id_column(self) -> str:
        return self.columns.get("customer_id", "customer_id")


class CovariateSettings(CustomerFile):
    """Time-invariant customer covariates (:mod:`cbcv.models.covariates`): ``use`` the columns
    (default: all but the id), ``reference`` the reference level of a categorical one (default:
    its most common level)."""

    use: list[str] | None = None
    reference: dict[str, str] = Field(default_factory=dict)


class SurveyColumns(_Strict):
    customer_id: str = "customer_id"
    date: str = "date"
    score: str = "score"
    touchpoint: str = "touchpoint"


class SurveySettings(_Strict):
    """Survey answers (``customer_id``, ``date``, ``score`` 0-10, optional ``touchpoint``): each
    customer's latest answer on or before the end of a fit's data becomes its Net Promoter group
    (:mod:`cbcv.data.survey`), the covariate ``column`` (reference ``passive``).
    ``programme_share``: the share of detractors a programme moves to promoter, valued on the
    customer-experience page."""

    source: str = Field(min_length=1)
    columns: SurveyColumns = SurveyColumns()
    column: str = Field(default="nps", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    programme_share: float = Field(default=0.25, gt=0, le=1)


class AttributesSettings(CustomerFile):
    """Customer attributes for the value-by-owner tables: ``owners``, the columns a customer's
    value is attributed by (sales rep, region, channel)."""

    owners: list[str] = Field(min_length=1)


class MovementSettings(_Strict):
    """The movement of customer equity on the report's page: from ``start`` to ``end`` (each a
    fit's data end), by each of ``by`` (columns of ``attributes.owners``)."""

    start: dt.date
    end: dt.date
    by: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> MovementSettings:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def check_customer_management(cfg: Any) -> None:
    """``covariates``, ``survey``, ``attributes`` and ``movement`` (issue 17) are for a
    purchase log; their notebooks need them."""
    given = [k for k in ("covariates", "survey", "attributes", "movement") if getattr(cfg, k) is not None]
    if given and (cfg.is_subscription or cfg.is_disclosures):
        raise ValueError(f"{given[0]}: only for a purchase log (business: transactions or panel)")
    notebooks = cfg.report.notebooks
    if "06_customer_experience" in notebooks and cfg.survey is None:
        raise ValueError("report.notebooks: 06_customer_experience needs survey: (the survey answers)")
    if "07_customer_value_movement" in notebooks and cfg.movement is None:
        raise ValueError("report.notebooks: 07_customer_value_movement needs movement: {start, end}")
    if cfg.has_covariates and (bad := [m for m in cfg.models if m not in ("bgnbd", "mbgnbd", "pareto_nbd",
                                                                             "gamma_gamma")]):
        raise ValueError(f"models: {bad[0]!r} is not fitted with covariates from a config (bgnbd, mbgnbd, "
                         "pareto_nbd, gamma_gamma)")
    if cfg.movement is not None:
        owners = cfg.attributes.owners if cfg.attributes is not None else []
        if unknown := [b for b in cfg.movement.by if b not in owners]:
            raise ValueError(f"movement.by: {unknown[0]!r} is not one of attributes.owners "
                             f"({', '.join(owners) or 'no attributes: given'})")
        last = cfg.as_of or cfg.holdout_end or cfg.calibration_end
        if cfg.movement.end > last:
            raise ValueError(f"movement.end {cfg.movement.end} is after the data's end {last}")
