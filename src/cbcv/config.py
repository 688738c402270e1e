"""Company and run configuration: a YAML file validated by a pydantic schema.

One file describes one company: where its transactions are and how their columns are named,
the as-of (valuation) date, the calibration/holdout split, the time unit, the models to fit and
the sampler settings, the financial inputs of the valuation, what the report contains, and the
engine that runs the data layer's SQL (``engine``: DuckDB by default, or Spark).

A wrong, missing or unknown field gives one :class:`~cbcv.errors.ConfigError` line naming the
file and the field (``configs/acme.yaml: data.columns.amount: field required``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cbcv.errors import ConfigError

TimeUnit = Literal["day", "week", "month"]
CohortPeriod = Literal["month", "quarter", "year"]
ModelName = Literal["bgnbd", "mbgnbd", "pareto_nbd", "gamma_gamma", "bgbb", "sbg", "bdw"]
NOTEBOOKS: tuple[str, ...] = (
    "01_customer_base_audit",
    "02_model_fit_and_validation",
    "03_customer_lifetime_value",
    "04_company_valuation",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    """Source column names for the transaction contract's fields."""

    customer_id: str = "customer_id"
    date: str = "date"
    amount: str = "amount"


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
    ``out_of_core`` (DuckDB): validate the log into a Parquet file under
    ``data/processed/<company>/`` and run the report on it without one pandas row per
    customer: the audit in SQL (:mod:`cbcv.audit.sql`), the fits on counted summaries, CLV
    scored to Parquet and the valuation over distinct summaries (:mod:`cbcv.outofcore`).
    """

    name: Literal["duckdb", "spark"] = "duckdb"
    out_of_core: bool = False
    memory_limit: str | None = Field(default=None, description="DuckDB memory limit, e.g. 8GB")
    threads: int | None = Field(default=None, ge=1)
    spark: SparkSettings = SparkSettings()

    @field_validator("memory_limit")
    @classmethod
    def _memory_ok(cls, v: str | None) -> str | None:
        if v is not None and not _MEMORY.fullmatch(v.strip()):
            raise ValueError(f"{v!r} is not a memory size such as 8GB, 512MB or 16GiB")
        return None if v is None else v.strip()


class Sampler(_Strict):
    method: Literal["nuts", "map"] = "nuts"
    draws: int = Field(default=1000, ge=1)
    tune: int = Field(default=1000, ge=0)
    chains: int = Field(default=4, ge=1)
    cores: int | None = Field(default=None, ge=1)
    #: None: each model's default (0.9; 0.95 for the Pareto/NBD, see its docstring)
    target_accept: float | None = Field(default=None, gt=0, lt=1)
    nuts_sampler: Literal["pymc", "nutpie"] = "pymc"


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
    standard deviation of its logarithm (0: known exactly)."""

    median: float = Field(gt=0)
    log_sd: float = Field(default=0.0, ge=0)


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
    horizon_years: float = Field(default=10.0, gt=0)
    acquisition_period: Literal["month", "quarter"] = "quarter"
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
        unknown = [n for n in v if n not in NOTEBOOKS]
        if unknown:
            raise ValueError(f"unknown notebook(s) {unknown}; choose from {list(NOTEBOOKS)}")
        if not v:
            raise ValueError("list at least one notebook")
        return v


class CompanyConfig(_Strict):
    company: Company
    data: DataSource
    as_of: dt.date | None = Field(
        default=None, description="valuation date; later rows are rejected"
    )
    calibration_end: dt.date
    holdout_end: dt.date | None = None
    time_unit: TimeUnit = "week"
    cohort_period: CohortPeriod = "quarter"
    models: tuple[ModelName, ...] = ("bgnbd", "pareto_nbd", "gamma_gamma")
    sampler: Sampler = Sampler()
    seed: int = 42
    financials: Financials | None = None
    report: ReportSettings = ReportSettings()
    engine: EngineSettings = EngineSettings()

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
        from cbcv.data.datasets import is_dataset

        src = self.config.data.source
        if is_dataset(src):
            return src
        p = Path(src).expanduser()
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(
        str(p) for p in loc if not str(p).startswith(("function-", "float", "Distribution"))
    )


def parse_config(raw: Any, path: str | Path = "<config>") -> CompanyConfig:
    """Validate a parsed YAML mapping; errors name the file and the field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    try:
        return CompanyConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A number-or-distribution field given a mapping fails both branches: report the
        # distribution's complaint, not "should be a number".
        branches = {(_field_path(tuple(e["loc"])), "float" in e["loc"]) for e in errors}
        msgs = []
        seen: set[str] = set()
        for err in errors:
            where = _field_path(tuple(err["loc"])) or "(top level)"
            if "float" in err["loc"] and (where, False) in branches:
                continue
            if where in seen:
                continue
            seen.add(where)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "field required"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field"
            msgs.append(f"{where}: {msg}")
        raise ConfigError(f"{path}: " + "; ".join(msgs)) from None


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a company config YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None
    cfg = parse_config(raw, p)
    return LoadedConfig(config=cfg, path=p.resolve(), raw=raw)
