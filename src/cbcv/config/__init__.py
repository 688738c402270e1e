"""Company and run configuration: a YAML file validated by a pydantic schema.

One file describes one company: where its transactions are and how their columns are named,
the as-of (valuation) date, the calibration/holdout split, the time unit, the models to fit and
the sampler settings, the financial inputs of the valuation, what the report contains, and the
engine that runs the data layer's SQL (``engine``: DuckDB by default, or Spark).

A wrong, missing or unknown field gives one :class:`~cbcv.core.errors.ConfigError` line naming the
file and the field (``configs/acme.yaml: data.columns.amount: field required``). Everything is
checked when the file is loaded, before any data is read or model fitted: the YAML itself
(:mod:`cbcv.core.yaml_loader`: UTF-8, no duplicate keys, no YAML 1.1 octal), the types and limits
(no ``.inf``/``.nan`` anywhere, ``seed`` in [0, 2**32), ``horizon_years`` <= 100) and the meaning
of the financial inputs (:mod:`cbcv.core.config_checks`: rates as fractions, distributions inside
their valid range, growth below the discount rate, known scenario inputs). The sections of
issue 17 (``covariates``, ``survey``, ``attributes``, ``movement``) are in :mod:`cbcv.config.customers`.
May import :mod:`cbcv.data` and :mod:`cbcv.core` only.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path, PurePath
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cbcv.config.customers import (
    CX_NOTEBOOKS,
    AttributesSettings,
    CovariateSettings,
    MovementSettings,
    SurveySettings,
    check_customer_management,
)
from cbcv.core.config_checks import financial_problems, timezone_problem
from cbcv.core.errors import ConfigError
from cbcv.core.schema_errors import bool_numbers, retired_fields, schema_errors
from cbcv.core.yaml_loader import read_yaml

TimeUnit = Literal["day", "week", "month", "quarter", "year"]
CohortPeriod = Literal["month", "quarter", "year"]
ModelName = Literal["bgnbd", "mbgnbd", "pareto_nbd", "gamma_gamma", "bgbb", "sbg", "bdw"]
Business = Literal["transactions", "panel", "subscription", "disclosures"]
#: The notebooks of a purchase-log or revenue-panel company (``business: transactions`` or
#: ``panel``), in report order.
NOTEBOOKS: tuple[str, ...] = ("01_customer_base_audit", "02_model_fit_and_validation", "03_customer_lifetime_value",
                              "04_company_valuation", "05_backtests")
#: The notebooks of a subscription company (``business: subscription``), in report order.
SUBSCRIPTION_NOTEBOOKS: tuple[str, ...] = ("11_subscription_audit", "12_retention_models",
                                           "13_subscriber_equity_and_valuation")
#: The notebooks of a company known from its disclosed customer metrics (``business:
#: disclosures``), in report order.
DISCLOSURE_NOTEBOOKS: tuple[str, ...] = ("21_disclosed_metrics", "22_disclosure_models",
                                         "23_disclosure_holdout", "24_disclosure_valuation")
#: Notebooks by business.
BUSINESS_NOTEBOOKS: dict[str, tuple[str, ...]] = {
    "transactions": NOTEBOOKS + CX_NOTEBOOKS, "panel": NOTEBOOKS + CX_NOTEBOOKS, "subscription": SUBSCRIPTION_NOTEBOOKS,
    "disclosures": DISCLOSURE_NOTEBOOKS,
}
#: Time units of a purchase model's summaries; a subscription company's retention period is its
#: billing period (month, quarter or year).
SUMMARY_TIME_UNITS = ("day", "week", "month")
#: The retention model families, and the default models of each business.
RETENTION_MODELS: tuple[str, ...] = ("sbg", "bdw")
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "transactions": ("bgnbd", "pareto_nbd", "gamma_gamma"),
    "panel": ("bgnbd", "pareto_nbd", "gamma_gamma"),
    "subscription": RETENTION_MODELS,
    "disclosures": ("sbg",),
}


#: Longest forecast horizon: at a 10% discount rate a cash flow 100 years out is worth 1/13,780
#: of today's, and the work grows with the number of periods (5,218 weeks in 100 years).
MAX_HORIZON_YEARS = 100.0
#: Largest sampler settings accepted (beyond them a fit runs for hours or exhausts memory).
MAX_DRAWS, MAX_CHAINS = 100_000, 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Company(_Strict):
    name: str
    slug: str | None = Field(
        default=None, description="folder name under reports/; derived from the name if omitted"
    )
    currency: str = "USD"

    @field_validator("slug")
    @classmethod
    def _slug_ok(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", v):
            raise ValueError("use lower-case letters, digits, '-' and '_' only")
        return v

    @property
    def folder(self) -> str:
        return self.slug or re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "company"


class ColumnMap(_Strict):
    """Source column names for the contract's fields: a purchase log's (``customer_id``,
    ``date``, ``amount``; a billing log's too) or subscription records' (``customer_id``,
    ``start``, ``end``, optional ``price``, ``plan``, ``billing_period``:
    :mod:`cbcv.data.subscriptions`)."""

    customer_id: str = "customer_id"
    date: str = "date"
    amount: str = "amount"
    start: str | None = None
    end: str | None = None
    price: str | None = None
    plan: str | None = None
    billing_period: str | None = None
    period: str | None = None
    new_customers: str | None = None
    lost_customers: str | None = None
    customers_end: str | None = None
    active_customers: str | None = None
    orders: str | None = None
    revenue: str | None = None
    marketing_spend: str | None = None

    #: The fields of a disclosures table only (:mod:`cbcv.data.disclosures`).
    DISCLOSURE_FIELDS: ClassVar[tuple[str, ...]] = (
        "period", "new_customers", "lost_customers", "customers_end", "active_customers", "orders", "revenue",
        "marketing_spend",
    )
    #: The fields of subscription records only.
    SUBSCRIPTION_FIELDS: ClassVar[tuple[str, ...]] = ("start", "end", "price", "plan", "billing_period")

    def transaction_columns(self) -> dict[str, str]:
        """Contract name -> source column of a purchase log (or a billing log)."""
        return {"customer_id": self.customer_id, "date": self.date, "amount": self.amount}

    def subscription_columns(self) -> dict[str, str]:
        """Contract name -> source column of subscription records (``start`` and ``end`` by
        default; the optional ones only where given)."""
        out = {"customer_id": self.customer_id, "start": self.start or "start", "end": self.end or "end"}
        out.update({k: getattr(self, k) for k in ("price", "plan", "billing_period") if getattr(self, k)})
        return out

    def disclosure_columns(self) -> dict[str, str]:
        """Contract name -> source column of a disclosures table, for the names mapped (the
        others are looked up by their own name)."""
        return {k: getattr(self, k) for k in self.DISCLOSURE_FIELDS if getattr(self, k)}


class DataSource(_Strict):
    source: str = Field(
        description="a bundled data set (cdnow, cdnow-sample) or a CSV/Parquet/DuckDB path"
    )
    table: str | None = Field(default=None, description="table name when source is a DuckDB file")
    columns: ColumnMap = ColumnMap()
    date_format: str | None = Field(default=None, description="strptime format, e.g. %Y%m%d")
    delimiter: str | None = None
    reject_duplicates: bool = Field(
        default=True,
        description="reject exact duplicate rows; turn off when the source has no order id and "
        "identical rows are genuine repeat purchases (as in CDNOW)",
    )
    zero_amount_purchases: bool | None = Field(
        default=None,
        description="count days of zero-priced purchases (no return) as purchases, as the CDNOW "
        "papers do; by default (null) only for the bundled CDNOW data sets: elsewhere a purchase "
        "is a customer-day with a positive net amount",
    )
    null_tokens: list[str] | None = Field(
        default=None,
        description="id values that mean 'no id' (case-insensitive); default NULL, None, NaN, "
        "N/A, NA, #N/A, nil, \\N, -",
    )
    earliest_date: dt.date | None = Field(
        default=None,
        description="rows dated before this day are rejected as sentinels (default 1970-01-01)",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone in which zone-aware timestamps are read (default: their own)",
    )
    layout: Literal["transactions", "panel_wide", "panel_long", "subscriptions", "billing_log", "disclosures"] = Field(
        default="transactions",
        description="transactions: a purchase log; panel_wide / panel_long: a customer x period "
        "revenue panel (cbcv.data.panel), one purchase occasion per active customer-period; "
        "subscriptions: subscription records (customer_id, start, end, price: the default of "
        "business: subscription); billing_log: a subscription's charges (customer_id, date, amount) "
        "from which the spells are derived; disclosures: a table of periods with the disclosed customer "
        "metrics (the default of business: disclosures)",
    )
    scale: dict[str, float] = Field(
        default_factory=dict,
        description="disclosures: multipliers that bring a column into customers or currency units, by "
        "contract name (e.g. revenue: 1000 for a column in thousands)",
    )
    billing_period: Literal["month", "quarter", "year"] | None = Field(
        default=None,
        description="subscriptions: the billing period of records without a billing_period column "
        "(default: the config's time_unit)",
    )
    plans: list[str] | None = Field(
        default=None, description="subscriptions: the known plans; a record of another plan is rejected"
    )
    extra_columns: list[str] = Field(
        default_factory=list,
        description="subscriptions: further subscriber columns kept with each spell (e.g. channel), "
        "for the retention model's covariates",
    )
    grace_days: int = Field(
        default=7, ge=0, le=366,
        description="billing_log: days a charge may be late and still continue the subscription",
    )
    panel_period: Literal["quarter", "month", "year"] = Field(
        default="quarter", description="the period of a revenue panel's columns or labels"
    )
    panel_columns: dict[str, str] | None = Field(
        default=None,
        description="a revenue panel's column names (customer_id, cohort; long: period, revenue)",
    )
    pre_start_labels: list[str] | None = Field(
        default=None,
        description="cohort labels of customers acquired before the panel starts (e.g. pre_y2016)",
    )

    @property
    def is_panel(self) -> bool:
        return self.layout in ("panel_wide", "panel_long")

    @property
    def display_name(self) -> str:
        """The source as an investor page names it: its file name (or the bundled data set's
        name), never the folders it sits in on this machine."""
        return PurePath(self.source).name or self.source

    @field_validator("timezone")
    @classmethod
    def _zone_ok(cls, v: str | None) -> str | None:
        problem = None if v is None else timezone_problem(v)
        if problem:
            raise ValueError(problem)
        return v


_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|[KMGT]i?B)", re.IGNORECASE)


class SparkSettings(_Strict):
    """Where Spark runs: ``master`` as ``spark-submit --master`` takes it (``local[2]``,
    ``local[*]``, ``spark://host:7077``, ``yarn``, ``k8s://https://host:443``) and extra Spark
    properties (``spark.executor.memory: 8g``); numbers and booleans are passed as text."""

    master: str = Field(default="local[2]", min_length=1)
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_as_text(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[Any, Any] = {}
        for key, value in v.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, int | float):
                value = str(value)
            out[key] = value
        return out

    @field_validator("conf")
    @classmethod
    def _keys_ok(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not k or k != k.strip()]
        if bad:
            raise ValueError(f"Spark property names must be non-empty without spaces: {bad}")
        return v


class EngineSettings(_Strict):
    """The engine of the data layer (validation and summaries).

    ``duckdb`` (default) runs embedded on this machine; ``memory_limit`` (DuckDB's syntax, e.g.
    ``8GB``; beyond it DuckDB spills to disk) and ``threads`` cap it, ``null`` keeps DuckDB's
    defaults. ``spark`` runs the same SQL on the Spark cluster named by ``spark.master``.
    Every company, whatever its size, runs one path: the log is validated into a Parquet file
    under ``data/processed/<company>/`` and the report reads it through
    :class:`cbcv.pipeline.company_data.CompanyData`, with no pandas row per customer; these
    caps are all that "large" changes. (The former ``out_of_core`` switch is refused with one
    line saying it is no longer needed: :data:`cbcv.core.schema_errors.RETIRED_ENGINE_FIELDS`.)
    """

    name: Literal["duckdb", "spark"] = "duckdb"
    memory_limit: str | None = Field(default=None, description="DuckDB memory limit, e.g. 8GB")
    threads: int | None = Field(default=None, ge=1, le=1024)
    spark: SparkSettings = SparkSettings()

    @field_validator("memory_limit")
    @classmethod
    def _memory_ok(cls, v: str | None) -> str | None:
        if v is not None and not _MEMORY.fullmatch(v.strip()):
            raise ValueError(f"{v!r} is not a memory size such as 8GB, 512MB or 16GiB")
        return None if v is None else v.strip()


class Sampler(_Strict):
    method: Literal["nuts", "map"] = "nuts"
    draws: int = Field(default=1000, ge=1, le=MAX_DRAWS)
    tune: int = Field(default=1000, ge=0, le=MAX_DRAWS)
    chains: int = Field(default=4, ge=1, le=MAX_CHAINS)
    cores: int | None = Field(default=None, ge=1, le=1024)
    #: None: each model's default (0.9; 0.95 for the Pareto/NBD, see its docstring); a number
    #: for every model, or one per model by name (``{bgnbd: 0.98}``; ``acquisition``, ``bgbb``
    #: for the acquisition model and the discrete-time check), the others at their default
    target_accept: float | dict[str, float] | None = None
    nuts_sampler: Literal["pymc", "nutpie"] = "pymc"

    @field_validator("target_accept")
    @classmethod
    def _target_accept(cls, v: float | dict[str, float] | None) -> float | dict[str, float] | None:
        values = v.values() if isinstance(v, dict) else [] if v is None else [v]
        if any(not 0 < float(x) < 1 for x in values):
            raise ValueError(f"target_accept must be between 0 and 1 (exclusive), got {v!r}")
        known = {*get_args(ModelName), "acquisition", "disclosures"}
        if isinstance(v, dict) and (unknown := sorted(set(v) - known)):
            raise ValueError(f"target_accept: unknown model(s) {unknown}; choose from {sorted(known)}")
        return v

    def target_accept_for(self, model: str | None) -> float | None:
        """The step-size target of ``model`` (None: the model's own default)."""
        if isinstance(self.target_accept, dict):
            return self.target_accept.get(model) if model is not None else None
        return self.target_accept


class Distribution(_Strict):
    """An uncertain input: ``{dist: normal, mean: 0.3, sd: 0.05}`` and the like."""

    dist: Literal["normal", "lognormal", "uniform", "triangular", "beta"]
    mean: float | None = None
    sd: float | None = None
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    alpha: float | None = None
    beta: float | None = None

    @model_validator(mode="after")
    def _params_present(self) -> Distribution:
        need = {
            "normal": ("mean", "sd"),
            "lognormal": ("mean", "sd"),
            "uniform": ("low", "high"),
            "triangular": ("low", "mode", "high"),
            "beta": ("alpha", "beta"),
        }[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(
                f"a {self.dist} distribution needs {', '.join(need)} (missing {', '.join(missing)})"
            )
        if self.sd is not None and self.sd <= 0:
            raise ValueError("sd must be positive")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("low must be below high")
        return self


Quantity = Annotated[float | Distribution, Field(union_mode="left_to_right")]


class MarketSizeSpec(_Strict):
    """The addressable market for the acquisition model: a median number of prospects and the
    standard deviation of its logarithm (0: known exactly; at most 3, a factor of 20 either way
    at one standard deviation: beyond that the market size is not an estimate)."""

    median: float = Field(gt=0)
    log_sd: float = Field(default=0.0, ge=0, le=3)


class Financials(_Strict):
    """Financial inputs of the valuation; each may be a number or a distribution.

    Rates are annual fractions (0.1 = 10%); money is in the company's currency; costs are per year.
    """

    contribution_margin: Quantity
    discount_rate: Quantity
    acquisition_cost: Quantity = 0.0
    fixed_costs: Quantity = 0.0
    capex: Quantity = 0.0
    tax_rate: Quantity = 0.0
    net_debt: Quantity = 0.0
    non_operating_assets: Quantity = 0.0
    shares_outstanding: float = Field(gt=0)
    market_price: float | None = Field(default=None, gt=0)
    horizon_years: float = Field(default=10.0, gt=0, le=MAX_HORIZON_YEARS)
    acquisition_period: Literal["month", "quarter"] = "quarter"
    acquisition_seasonality: bool = Field(
        default=False,
        description="a hazard ratio per quarter (or month) of the year in the acquisition model, for "
        "acquisitions with a seasonal pattern (e.g. a Q4 peak)",
    )
    market_size: MarketSizeSpec | None = Field(
        default=None,
        description="addressable market (prospects) for the acquisition model of future customers; "
        "without it future customers are valued at zero",
    )
    terminal_value: Literal["none", "gordon"] = Field(
        default="none", description="value of customers acquired after the horizon"
    )
    terminal_growth: float = Field(default=0.0, ge=-0.5, lt=0.5)
    cost_growth: float = Field(default=0.0, ge=-0.5, lt=0.5)
    capex_deductible: bool = True
    scenarios: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='named scenarios: multipliers of inputs, e.g. {"CAC +20%": {"acquisition_cost": 1.2}}',
    )
    assumptions_note: str | None = Field(
        default=None, description="shown in the report wherever these figures appear"
    )


class ReportSettings(_Strict):
    notebooks: tuple[str, ...] = NOTEBOOKS[:1]
    title: str | None = None
    strict: bool = False

    @field_validator("notebooks")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        known = NOTEBOOKS + CX_NOTEBOOKS + SUBSCRIPTION_NOTEBOOKS + DISCLOSURE_NOTEBOOKS
        unknown = [n for n in v if n not in known]
        if unknown:
            raise ValueError(f"unknown notebook(s) {unknown}; choose from {list(known)}")
        if not v:
            raise ValueError("list at least one notebook")
        return v


class RetentionSettings(_Strict):
    """A subscription company's retention models (:mod:`cbcv.models.cohort_retention`).

    ``pooling``: how each cohort's retention parameters relate: ``partial`` (drawn from a
    population distribution: a young cohort borrows strength from the others), ``unpooled``
    (each cohort alone), ``complete`` (one set for all), or ``auto`` (default): all three are
    fitted on the calibration period and the one with the smallest holdout survival error is
    valued (ties to the partially pooled one). ``covariates``: subscriber columns (``plan`` or
    ``data.extra_columns``) on the churn propensity."""

    pooling: Literal["auto", "partial", "unpooled", "complete"] = "auto"
    covariates: list[str] = Field(default_factory=list)


class DisclosureSettings(_Strict):
    """A company valued from its disclosures (:mod:`cbcv.models.disclosures`).

    ``setting``: ``contractual`` (subscribers: customers_end, new and lost customers) or
    ``noncontractual`` (active customers and orders); ``auto`` decides from the series disclosed.
    ``marketing``: log marketing spend as the acquisition covariate (default: when disclosed);
    ``marketing_growth``: annual growth of the future marketing plan (each future period spends
    what the same period of the last disclosed year did, grown); ``backtest_method``: how the
    rolling-origin refits are fitted (``map``: the posterior mode, quick; ``nuts``: the full
    posterior); ``backtest_horizon``: periods ahead; ``backtest_origins``: refit at the last this
    many origins only (default: every period from the fifth report on); ``tail_years``: years after the acquisition
    horizon over which the customers already acquired run off in the valuation."""

    setting: Literal["auto", "contractual", "noncontractual"] = "auto"
    marketing: bool | None = None
    marketing_growth: float = Field(default=0.0, ge=-0.5, le=1.0)
    backtest_method: Literal["map", "nuts"] = "map"
    backtest_horizon: int = Field(default=8, ge=1, le=16)
    backtest_origins: int | None = Field(default=None, ge=1)
    tail_years: float = Field(default=20.0, ge=0, le=MAX_HORIZON_YEARS)


class CompanyConfig(_Strict):
    company: Company
    data: DataSource
    business: Business = Field(
        default="transactions",
        description="transactions (a purchase log), panel (a customer x period revenue panel) or "
        "subscription (subscription records or a billing log): which notebooks the report runs",
    )
    as_of: dt.date | None = Field(
        default=None, description="valuation date; later rows are rejected"
    )
    calibration_end: dt.date
    holdout_end: dt.date | None = None
    time_unit: TimeUnit = "week"
    cohort_period: CohortPeriod = "quarter"
    models: tuple[ModelName, ...] = ("bgnbd", "pareto_nbd", "gamma_gamma")
    sampler: Sampler = Sampler()
    seed: int = Field(default=42, ge=0, lt=2**32)
    financials: Financials | None = None
    report: ReportSettings = ReportSettings()
    engine: EngineSettings = EngineSettings()
    retention: RetentionSettings = RetentionSettings()
    period: Literal["quarter", "month"] = Field(
        default="quarter", description="disclosures: the period of the table's rows (quarter or month)"
    )
    disclosures: DisclosureSettings = DisclosureSettings()
    covariates: CovariateSettings | None = None
    survey: SurveySettings | None = None
    attributes: AttributesSettings | None = None
    movement: MovementSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _business_defaults(cls, raw: Any) -> Any:
        """The models and notebooks a business runs by default, where the config names none."""
        if not isinstance(raw, dict):
            return raw
        business = raw.get("business", "transactions")
        if business not in BUSINESS_NOTEBOOKS:
            return raw  # the field's own check names it
        out = dict(raw)
        out.setdefault("models", list(DEFAULT_MODELS[business]))
        if business == "subscription":
            data = out.get("data")
            billing = data.get("billing_period") if isinstance(data, dict) else None
            out.setdefault("time_unit", billing or "month")
            unit = out["time_unit"]
            out.setdefault("cohort_period", unit if unit in ("month", "quarter", "year") else "month")
        if business == "disclosures":
            period = out.get("period", "quarter")
            out.setdefault("time_unit", period if period in ("quarter", "month") else "quarter")
            out.setdefault("cohort_period", out["time_unit"] if out["time_unit"] in ("month", "quarter") else "quarter")
            if "calibration_end" not in out and out.get("as_of") is not None:
                out["calibration_end"] = out["as_of"]
            data = out.get("data")
            if isinstance(data, dict) and "layout" not in data:
                out["data"] = {**data, "layout": "disclosures"}
        if business in ("subscription", "disclosures"):
            report = out.get("report")
            if report is None or (isinstance(report, dict) and "notebooks" not in report):
                out["report"] = {**(report or {}), "notebooks": list(BUSINESS_NOTEBOOKS[business])}
        return out

    @property
    def is_disclosures(self) -> bool:
        return self.business == "disclosures"

    @property
    def is_subscription(self) -> bool:
        return self.business == "subscription"

    @model_validator(mode="after")
    def _business_fits(self) -> CompanyConfig:
        """The data layout, time unit, models and notebooks must suit the business."""
        sub = self.is_subscription
        layout = self.data.layout
        if self.is_disclosures:
            return self._disclosures_fit()
        if layout == "disclosures":
            raise ValueError("data.layout 'disclosures' needs business: disclosures")
        if given := [k for k in ColumnMap.DISCLOSURE_FIELDS if getattr(self.data.columns, k)]:
            raise ValueError(f"data.columns.{given[0]} is a disclosures field (business: disclosures)")
        if self.data.scale:
            raise ValueError("data.scale: only for business: disclosures")
        if self.disclosures != DisclosureSettings():
            raise ValueError("disclosures: only for business: disclosures")
        if sub and layout not in ("transactions", "subscriptions", "billing_log"):
            raise ValueError(f"data.layout {layout!r} is not for business: subscription "
                             "(use subscriptions or billing_log)")
        if not sub and layout in ("subscriptions", "billing_log"):
            raise ValueError(f"data.layout {layout!r} needs business: subscription")
        if self.business == "panel" and not self.data.is_panel:
            raise ValueError("business: panel needs data.layout panel_wide or panel_long")
        given = [k for k in ColumnMap.SUBSCRIPTION_FIELDS if getattr(self.data.columns, k)]
        if given and not sub:
            raise ValueError(f"data.columns.{given[0]} is a subscription field (business: subscription)")
        if sub:
            if self.time_unit not in ("month", "quarter", "year"):
                raise ValueError(f"time_unit {self.time_unit!r}: a subscription company's time unit is its "
                                 "billing period (month, quarter or year)")
            if bad := [m for m in self.models if m not in RETENTION_MODELS]:
                raise ValueError(f"models: {bad[0]!r} is not a retention model; business: subscription "
                                 f"fits {', '.join(RETENTION_MODELS)}")
            if self.data.billing_period is not None and self.data.billing_period != self.time_unit:
                raise ValueError(f"data.billing_period {self.data.billing_period!r} differs from time_unit "
                                 f"{self.time_unit!r}: the retention model counts billing periods")
        else:
            if self.time_unit not in SUMMARY_TIME_UNITS:
                raise ValueError(f"time_unit {self.time_unit!r}: a purchase model counts time in "
                                 f"{', '.join(SUMMARY_TIME_UNITS)}")
            if self.retention != RetentionSettings():
                raise ValueError("retention: only for business: subscription")
        check_customer_management(self)
        allowed = BUSINESS_NOTEBOOKS[self.business]
        if wrong := [n for n in self.report.notebooks if n not in allowed]:
            raise ValueError(f"report.notebooks: {wrong[0]!r} is not a notebook of business: {self.business} "
                             f"(choose from {', '.join(allowed)})")
        return self

    @property
    def has_covariates(self) -> bool:
        """Whether the summary models are fitted with customer covariates (``covariates`` or ``survey``)."""
        return self.covariates is not None or self.survey is not None

    def _disclosures_fit(self) -> CompanyConfig:
        """A disclosures company: its own layout, a valuation date, period = time unit,
        retention families as models and its notebooks."""
        check_customer_management(self)
        if self.data.layout != "disclosures":
            raise ValueError(f"data.layout {self.data.layout!r} is not for business: disclosures (use disclosures)")
        if self.as_of is None:
            raise ValueError("as_of: field required for business: disclosures (the valuation date)")
        if self.time_unit != self.period:
            raise ValueError(f"time_unit {self.time_unit!r} differs from period {self.period!r}: a disclosures "
                             "company's time unit is its reporting period")
        if bad := [m for m in self.models if m not in RETENTION_MODELS]:
            raise ValueError(f"models: {bad[0]!r} is not a retention model; business: disclosures fits "
                             f"{', '.join(RETENTION_MODELS)} (the retention of its latent cohorts)")
        if len(self.models) != 1:
            raise ValueError("models: list one retention family (sbg or bdw) for business: disclosures")
        if given := [k for k in ColumnMap.SUBSCRIPTION_FIELDS if getattr(self.data.columns, k)]:
            raise ValueError(f"data.columns.{given[0]} is a subscription field (business: subscription)")
        if unknown := [k for k in self.data.scale if k not in ColumnMap.DISCLOSURE_FIELDS[1:]]:
            raise ValueError(f"data.scale.{unknown[0]}: not a disclosed series "
                             f"({', '.join(ColumnMap.DISCLOSURE_FIELDS[1:])})")
        if bad_scale := [k for k, v in self.data.scale.items() if not v > 0]:
            raise ValueError(f"data.scale.{bad_scale[0]}: must be a positive multiplier")
        if self.retention != RetentionSettings():
            raise ValueError("retention: only for business: subscription")
        if wrong := [n for n in self.report.notebooks if n not in DISCLOSURE_NOTEBOOKS]:
            raise ValueError(f"report.notebooks: {wrong[0]!r} is not a notebook of business: disclosures "
                             f"(choose from {', '.join(DISCLOSURE_NOTEBOOKS)})")
        return self

    @property
    def valuation_date(self) -> dt.date:
        """The date the company is valued at: ``as_of``, else the end of the data the config
        reads (``holdout_end``, else ``calibration_end``). The calibration fit validates the
        models on the holdout; the valuation refits them on all data to this date."""
        return self.as_of or self.holdout_end or self.calibration_end

    @model_validator(mode="after")
    def _dates_ordered(self) -> CompanyConfig:
        if self.holdout_end is not None and self.holdout_end <= self.calibration_end:
            raise ValueError("holdout_end must be after calibration_end")
        if self.as_of is not None:
            last = self.holdout_end or self.calibration_end
            if last > self.as_of:
                raise ValueError("as_of must not be before holdout_end / calibration_end")
        return self


class LoadedConfig(BaseModel):
    """A validated config with the file it came from (relative paths resolve against its folder)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: CompanyConfig
    path: Path
    raw: dict[str, Any]

    def resolve_source(self) -> str:
        """The data source as given when it is a bundled data set's name, else an absolute path
        (relative paths are taken relative to the config file's folder)."""
        from cbcv.data.catalog import is_dataset

        src = self.config.data.source
        return src if is_dataset(src) else self.resolve(src)

    def resolve(self, source: str) -> str:
        """A path the config gives, absolute (a relative one is relative to the config's folder)."""
        p = Path(source).expanduser()
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())


def parse_config(raw: Any, path: str | Path = "<config>") -> CompanyConfig:
    """Validate a parsed YAML mapping, its types and then its meaning
    (:mod:`cbcv.core.config_checks`); errors name the file and the field."""
    if raw is None:
        raise ConfigError(f"{path}: the config is empty (expected a mapping of fields: company, data, ...)")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of fields at the top level, not a {type(raw).__name__}"
        )
    flagged = retired_fields(raw) or bool_numbers(raw, CompanyConfig)
    if flagged:
        raise ConfigError(f"{path}: " + "; ".join(flagged))
    try:
        cfg = CompanyConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(schema_errors(exc, CompanyConfig, {"Distribution": Distribution}))) from None
    problems = list(financial_problems(cfg.financials)) if cfg.financials is not None else []
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return cfg


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a company config YAML file (UTF-8; duplicate keys, ambiguous
    numbers and excessive nesting are rejected: :mod:`cbcv.core.yaml_loader`)."""
    p, raw = read_yaml(path)
    cfg = parse_config(raw, p)
    return LoadedConfig(config=cfg, path=p.resolve(), raw=raw)
