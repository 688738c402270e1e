"""Published customer-based valuation benchmarks: Gupta, Lehmann & Stuart (2004).

Gupta, S., Lehmann, D. R. and Stuart, J. A. (2004), "Valuing Customers", *Journal of Marketing
Research* 41(1), 7-18 (GLS below) value a firm as the value of its current customers plus the
value of the customers it will acquire, net of what acquiring them costs.

The model
---------
Per period (GLS work in quarters), a customer brings a margin ``m`` while alive and survives
each period with probability ``r`` (constant retention); cash flows are discounted at ``i`` per
period. GLS's lifetime value of a customer (their eq. 2 in closed form, with the first margin
one period after acquisition, the convention their numbers use) is

    LV = sum_{t>=1} m r^t / (1+i)^t = m r / (1 + i - r)

(their worked example: m = $100 a year, r = 0.8, i = 12 %, LV = $250). Customers acquired in
cohort ``k`` (``n_k`` of them, each costing ``c``) add, discounted to today (their eq. 7),

    sum_k n_k / (1+i)^k * [ LV - c ].

(Eq. 7 as transcribed starts each cohort's margins in its acquisition period, our discrete
``first_margin="at_acquisition"``; their worked example and the continuous-time version behind
their numbers start one period later. Equation numbers are as given by the secondary source
below.)

For the published numbers GLS move to continuous time: a cohort's survival and discounting
``r^t/(1+i)^t`` become ``exp(-(1+i-r)/r * t)`` (chosen so that its integral over a lifetime,
``r/(1+i-r)``, equals the discrete sum above exactly) and the discount of cohort ``k`` is
``exp(-i k)``. Acquisitions follow a logistic (Fisher-Pry; the internal-influence Bass) curve of
*cumulative* customers acquired,

    N(t) = alpha / (1 + exp(-beta - gamma t)),    n(t) = dN/dt = alpha gamma e^{-beta-gamma t} / (1 + e^{-beta-gamma t})^2,

with its peak at ``t = -beta/gamma``. The firm's customer value is then

    V = (1 - tax) * [ N0 * LV  +  A * (LV - c) ],    A = integral_0^inf n(t0 + u) e^{-i u} du,

``N0`` the customers at the valuation date ``t0`` (on the curve's clock) and ``A`` the
present-value-weighted number of future customers. The acquisition cost is charged only to
customers not yet acquired (it is sunk for ``N0``). :func:`gls_customer_value` computes this
(``time="continuous"``, the default) or the discrete-period version (``time="discrete"``: cohort
``k = 1, 2, ...`` acquires ``N(t0+k) - N(t0+k-1)`` customers discounted by ``(1+i)^-k``), with an
optional margin growth ``g`` per period of customer age (Gupta & Lehmann 2003, "Customers as
Assets": ``LV = m r / (1 + i - r(1+g))``), finite customer and acquisition horizons, and in
discrete time the alternative convention of a first margin at acquisition
(``LV = m (1+i) / (1+i-r)``).

What the published figures use (and how we know)
-------------------------------------------------
* **Quarterly periods; 12 % a year.** Margins are quarterly; retention is an *annual* rate
  converted to a quarter as ``r_q = r_a ** (1/4)``; the 12 % annual discount rate is compounded
  to ``(1.12) ** (1/4) - 1 = 2.874 %`` a quarter. The evidence: with exactly these conversions
  the model reproduces the five published retention elasticities (Amazon 2.45, Ameritrade 6.75,
  Capital One 5.12, eBay 3.42, E*Trade 6.67 % per 1 % of annual retention) to within 0.03,
  whereas 3 % (12/4) a quarter misses three of them by 0.1-0.2, a model in years by about 0.5
  and the annual retention used as a quarterly one by 1-8.5 points.
* **Continuous time** as above.
* **Tax.** The tax rate GLS applied could not be found in the sources reachable when this was
  written. The published values and the published acquisition-cost and margin elasticities
  together imply that every firm's value is the pre-tax formula times a common factor
  ``0.610-0.622`` (one firm each end), i.e. an after-tax value at a tax rate of about 38.4 %
  (:data:`GLS_2004_IMPLIED_TAX_RATE`, the geometric-mean factor; a 35 % rate misses every firm
  by more than 4 %, a 40 % rate four of them by more than 2 %). Treat this as inferred, not
  published.
* **Acquisition curves.** GLS's estimated ``alpha, beta, gamma`` per firm could not be found in
  the searchable sources either. For the published firms the future-customer term ``A`` is
  therefore not computed from a curve but recovered from the published elasticities: with
  ``V ∝ (N0 + A) LV - A c`` the margin elasticity is ``(N0 + A) LV / V`` and the
  acquisition-cost elasticity ``A c / V``, so ``A = N0 e_c LV / (e_m c - e_c LV)``
  (:func:`future_acquisitions_pv_from_elasticities`; independent of the tax factor and of the
  published value itself). :class:`GLSInputs` takes either a logistic curve or ``A`` directly.
* **Not reproduced: the discount-rate elasticities** (Amazon .46, Ameritrade 1.17, Capital One
  1.11, eBay .63, E*Trade 1.14). They depend on when future customers arrive (the missing
  curves); but with the future-customer term held fixed the formula gives 0.26-0.68, and for
  E*Trade and Ameritrade, valued almost entirely on their current customers, 0.68 against 1.14
  and 1.17: 1.7 times less, a gap we could not explain without the article's text.

Published inputs and results (:data:`GLS_2004_TABLE`): customers as of March 2002, quarterly
margin and acquisition cost per customer, annual retention, customer value and market value
($ billions, March 2002) and the elasticities of customer value to a 1 % improvement in each
driver. These were transcribed from a secondary source (a reading summary of the JMR article,
``references/papers/valuation/valuation-summary.md`` in the public repository
``abdullahau/customer-analytics``) because the article's own text could not be read through the
search tools; the table numbers of the article are therefore not cited here. Published
customer values: Amazon $0.82 B, Ameritrade $1.62 B, Capital One $11.00 B, eBay $1.89 B,
E*Trade $2.69 B.

Units: money in dollars, customers as counts, rates per period unless a name says ``annual``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy import integrate, special

from cbcv.core.errors import ConfigError

Timing = Literal["continuous", "discrete"]
FirstMargin = Literal["after_one_period", "at_acquisition"]

TIMINGS: tuple[str, ...] = ("continuous", "discrete")
FIRST_MARGINS: tuple[str, ...] = ("after_one_period", "at_acquisition")

#: Logistic arguments beyond this are saturated: expit(40) = 1 - 4e-18.
_SATURATED = 40.0
#: Largest number of periods summed explicitly in discrete time.
_MAX_PERIODS = 10_000_000


# --------------------------------------------------------------------------------------------
# Conversions and building blocks
# --------------------------------------------------------------------------------------------
def period_retention(annual_retention: float, periods_per_year: int = 4) -> float:
    """Retention per period from an annual rate: ``r_p = r_a ** (1 / periods_per_year)``.

    The conversion GLS (2004) apply to their annual retention rates to work in quarters.
    """
    _check_periods_per_year(periods_per_year)
    if not (np.isfinite(annual_retention) and 0.0 <= annual_retention <= 1.0):
        raise ConfigError(f"annual retention must be in [0, 1], got {annual_retention!r}")
    return float(annual_retention) ** (1.0 / periods_per_year)


def period_discount_rate(annual_rate: float, periods_per_year: int = 4) -> float:
    """Discount rate per period from an annual rate, compounded: ``(1 + i_a) ** (1/p) - 1``.

    GLS (2004): 12 % a year is 2.874 % a quarter.
    """
    _check_periods_per_year(periods_per_year)
    if not (np.isfinite(annual_rate) and annual_rate >= 0.0):
        raise ConfigError(f"annual discount rate must be >= 0, got {annual_rate!r}")
    return (1.0 + float(annual_rate)) ** (1.0 / periods_per_year) - 1.0


def _check_periods_per_year(periods_per_year: int) -> None:
    if (
        isinstance(periods_per_year, bool)
        or not isinstance(periods_per_year, int)
        or periods_per_year < 1
    ):
        raise ConfigError(f"periods_per_year must be a whole number >= 1, got {periods_per_year!r}")


def logistic_customers(t: Any, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """Cumulative customers acquired by time ``t``: ``alpha / (1 + exp(-beta - gamma t))``.

    GLS (2004)'s acquisition curve (Fisher-Pry technological substitution). Vectorised.
    """
    return alpha * special.expit(beta + gamma * np.asarray(t, dtype=float))


def logistic_acquisition_rate(t: Any, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """New customers per unit time, ``n(t) = dN/dt = alpha gamma s (1 - s)`` with
    ``s = expit(beta + gamma t)`` (GLS 2004); computed without overflow. Vectorised."""
    z = beta + gamma * np.asarray(t, dtype=float)
    return alpha * gamma * special.expit(z) * special.expit(-z)


def gls_lifetime_value(
    margin: float,
    retention: float,
    discount_rate: float,
    *,
    margin_growth: float = 0.0,
    time: Timing = "continuous",
    first_margin: FirstMargin = "after_one_period",
    horizon: float = math.inf,
) -> float:
    """Value of one customer at acquisition, acquisition cost excluded (GLS 2004, eq. 2).

    * ``first_margin="after_one_period"`` (GLS; Gupta & Lehmann 2003): margins at ages
      ``1..H``, ``m (1+g)^(s-1)`` at age ``s`` with survival ``r^s``:
      ``m r / (1 + i - r(1+g)) * (1 - Q^H)``, ``Q = r(1+g)/(1+i)``. Retention 0 gives 0.
    * ``first_margin="at_acquisition"`` (discrete only): margins at ages ``0..H-1``:
      ``m (1+i) / (1 + i - r(1+g)) * (1 - Q^H)``. Retention 0 gives one margin, ``m``.
    * ``time="continuous"``: GLS's approximation, survival-and-discount
      ``exp(-lambda s)`` with ``lambda = (1 + i - r(1+g)) / r``, integrated over ``[0, H]``:
      ``m (1 - exp(-lambda H)) / lambda``; equal to the discrete value when ``H`` is infinite.
    """
    _validate_lv_args(margin, retention, discount_rate, margin_growth, time, first_margin, horizon)
    m, r, i, g, h = (
        float(margin),
        float(retention),
        float(discount_rate),
        float(margin_growth),
        float(horizon),
    )
    if time == "continuous":
        if r == 0.0:
            return 0.0
        lam = (1.0 + i - r * (1.0 + g)) / r
        if lam == 0.0:
            return m * h
        return m * (-math.expm1(-lam * h)) / lam if math.isfinite(h) else m / lam
    q = r * (1.0 + g) / (1.0 + i)
    scale = r / (1.0 + i) if first_margin == "after_one_period" else 1.0
    if q == 1.0:
        return m * scale * h
    # sum_{s=0}^{H-1} q^s = (1 - q^H) / (1 - q); the "after" convention multiplies by r/(1+i).
    # 1 - q^H; 1 for an infinite horizon (q < 1 was checked) or q = 0
    partial = -math.expm1(h * math.log(q)) if math.isfinite(h) and q > 0.0 else 1.0
    return m * scale * partial / (1.0 - q)


def _validate_lv_args(
    margin: float,
    retention: float,
    discount_rate: float,
    margin_growth: float,
    time: str,
    first_margin: str,
    horizon: float,
) -> None:
    if time not in TIMINGS:
        raise ConfigError(f"GLS valuation: time must be one of {list(TIMINGS)}, got {time!r}")
    if first_margin not in FIRST_MARGINS:
        raise ConfigError(
            f"GLS valuation: first_margin must be one of {list(FIRST_MARGINS)}, got {first_margin!r}"
        )
    if time == "continuous" and first_margin != "after_one_period":
        raise ConfigError(
            "GLS valuation: first_margin='at_acquisition' is a discrete-time convention; use time='discrete'"
        )
    if not np.isfinite(margin):
        raise ConfigError(f"GLS valuation: margin must be a finite number, got {margin!r}")
    if not (np.isfinite(retention) and 0.0 <= retention <= 1.0):
        raise ConfigError(
            f"GLS valuation: retention per period must be in [0, 1], got {retention!r}"
        )
    if not (np.isfinite(discount_rate) and discount_rate >= 0.0):
        raise ConfigError(
            f"GLS valuation: discount rate per period must be >= 0, got {discount_rate!r}"
        )
    if not (np.isfinite(margin_growth) and margin_growth > -1.0):
        raise ConfigError(
            f"GLS valuation: margin growth per period must be > -1, got {margin_growth!r}"
        )
    _check_horizon("customer horizon", horizon, time)
    if (
        math.isinf(horizon)
        and retention * (1.0 + margin_growth) >= 1.0 + discount_rate
        and retention > 0.0
    ):
        raise ConfigError(
            "GLS valuation: the lifetime value diverges (retention * (1 + margin growth) >= 1 + discount "
            f"rate: {retention} * {1 + margin_growth} >= {1 + discount_rate}); give a finite customer horizon"
        )


def _check_horizon(what: str, horizon: float, time: str) -> None:
    if not (horizon > 0.0) or math.isnan(horizon):
        raise ConfigError(f"GLS valuation: {what} must be > 0 periods or inf, got {horizon!r}")
    if time == "discrete" and math.isfinite(horizon) and horizon != round(horizon):
        raise ConfigError(
            f"GLS valuation: {what} must be a whole number of periods in discrete time, got {horizon!r}"
        )


# --------------------------------------------------------------------------------------------
# Inputs and result
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GLSInputs:
    """Inputs of the GLS (2004) customer valuation; every rate is per period (GLS: a quarter).

    Attributes
    ----------
    margin: margin per customer per period, constant (GLS) or growing at ``margin_growth`` per
        period of customer age; pre-tax.
    retention: probability a customer alive this period is alive next period.
    discount_rate: per period (use :meth:`from_annual` to convert annual rates).
    acquisition_cost: cost of acquiring one new customer, charged to future customers only.
    current_customers: ``N0``, customers at the valuation date.
    alpha, beta, gamma: logistic curve of cumulative customers acquired,
        ``N(t) = alpha / (1 + exp(-beta - gamma t))`` (all three or none).
    valuation_time: ``t0``, the valuation date on the curve's clock (periods); future cohorts
        are those acquired after ``t0``.
    future_acquisitions_pv: instead of a curve, ``A``: the present-value-weighted number of
        future customers (continuous: ``integral n(t0+u) e^{-iu} du``; discrete:
        ``sum_k n_k (1+i)^-k``). ``0`` values the current customers only.
    tax_rate: applied to the whole value, ``V = (1 - tax) * pre-tax value``.
    margin_growth: per period of customer age (Gupta & Lehmann 2003); GLS use 0.
    time: ``"continuous"`` (GLS's published numbers) or ``"discrete"``.
    first_margin: ``"after_one_period"`` (GLS) or ``"at_acquisition"`` (discrete only).
    customer_horizon: periods of margin counted per customer (``inf``: GLS).
    acquisition_horizon: periods after ``t0`` over which acquisitions are counted (``inf``: GLS).
    """

    margin: float
    retention: float
    discount_rate: float
    acquisition_cost: float
    current_customers: float
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    valuation_time: float = 0.0
    future_acquisitions_pv: float | None = None
    tax_rate: float = 0.0
    margin_growth: float = 0.0
    time: Timing = "continuous"
    first_margin: FirstMargin = "after_one_period"
    customer_horizon: float = math.inf
    acquisition_horizon: float = math.inf

    def __post_init__(self) -> None:
        _validate_lv_args(
            self.margin,
            self.retention,
            self.discount_rate,
            self.margin_growth,
            self.time,
            self.first_margin,
            self.customer_horizon,
        )
        if not (np.isfinite(self.acquisition_cost) and self.acquisition_cost >= 0.0):
            raise ConfigError(
                f"GLS valuation: acquisition cost must be >= 0, got {self.acquisition_cost!r}"
            )
        if not (np.isfinite(self.current_customers) and self.current_customers >= 0.0):
            raise ConfigError(
                f"GLS valuation: current customers must be >= 0, got {self.current_customers!r}"
            )
        if not (np.isfinite(self.tax_rate) and 0.0 <= self.tax_rate < 1.0):
            raise ConfigError(f"GLS valuation: tax rate must be in [0, 1), got {self.tax_rate!r}")
        if not np.isfinite(self.valuation_time):
            raise ConfigError(
                f"GLS valuation: valuation time must be finite, got {self.valuation_time!r}"
            )
        _check_horizon("acquisition horizon", self.acquisition_horizon, self.time)
        curve = (self.alpha, self.beta, self.gamma)
        given = [v is not None for v in curve]
        if any(given) and not all(given):
            raise ConfigError(
                "GLS valuation: give all of alpha, beta, gamma for the acquisition curve, or none"
            )
        if all(given) and self.future_acquisitions_pv is not None:
            raise ConfigError(
                "GLS valuation: give either the acquisition curve (alpha, beta, gamma) or future_acquisitions_pv, not both"
            )
        if not all(given) and self.future_acquisitions_pv is None:
            raise ConfigError(
                "GLS valuation: future customers need an acquisition curve (alpha, beta, gamma) or "
                "future_acquisitions_pv (0 to value current customers only)"
            )
        if all(given):
            alpha, beta, gamma = (float(v) for v in curve)  # type: ignore[arg-type]
            if not (np.isfinite(alpha) and alpha >= 0.0):
                raise ConfigError(
                    f"GLS valuation: alpha (market ceiling) must be >= 0, got {alpha!r}"
                )
            if not np.isfinite(beta):
                raise ConfigError(f"GLS valuation: beta must be finite, got {beta!r}")
            if not (np.isfinite(gamma) and gamma > 0.0):
                raise ConfigError(f"GLS valuation: gamma must be > 0, got {gamma!r}")
        elif not (np.isfinite(self.future_acquisitions_pv) and self.future_acquisitions_pv >= 0.0):  # type: ignore[arg-type]
            raise ConfigError(
                f"GLS valuation: future_acquisitions_pv must be >= 0, got {self.future_acquisitions_pv!r}"
            )

    @classmethod
    def from_annual(
        cls,
        *,
        margin: float,
        annual_retention: float,
        annual_discount_rate: float,
        periods_per_year: int = 4,
        **kwargs: Any,
    ) -> GLSInputs:
        """Build inputs from annual retention and discount rates, converted as GLS (2004) do
        (:func:`period_retention`, :func:`period_discount_rate`); ``margin`` is per period."""
        return cls(
            margin=margin,
            retention=period_retention(annual_retention, periods_per_year),
            discount_rate=period_discount_rate(annual_discount_rate, periods_per_year),
            **kwargs,
        )

    @property
    def has_curve(self) -> bool:
        """Whether future acquisitions come from a logistic curve (else from ``future_acquisitions_pv``)."""
        return self.alpha is not None


@dataclass(frozen=True)
class GLSResult:
    """Customer value of a firm (GLS 2004), in the inputs' money unit.

    ``total_value = current_customers_value + future_customers_value`` (after tax);
    ``pre_tax_value`` is the same before tax. ``lifetime_value`` is one customer's pre-tax value
    at acquisition, acquisition cost excluded; ``future_acquisitions_pv`` the
    present-value-weighted number of future customers.
    """

    total_value: float
    current_customers_value: float
    future_customers_value: float
    pre_tax_value: float
    lifetime_value: float
    future_acquisitions_pv: float
    acquisition_cost: float
    tax_rate: float
    time: str

    @property
    def net_value_per_new_customer(self) -> float:
        """Pre-tax value of a customer still to be acquired: ``LV - c``."""
        return self.lifetime_value - self.acquisition_cost

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for JSON output."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Valuation
# --------------------------------------------------------------------------------------------
def future_acquisitions_pv(inputs: GLSInputs) -> float:
    """Present-value-weighted number of customers acquired after ``t0`` (GLS 2004, eq. 7).

    Continuous: ``integral_0^H n(t0 + u) e^{-i u} du`` (GLS discount a cohort by ``e^{-ik}``);
    discrete: ``sum_{k=1}^H [N(t0+k) - N(t0+k-1)] (1+i)^-k``. Returns
    ``inputs.future_acquisitions_pv`` when no curve is given.
    """
    if not inputs.has_curve:
        return float(inputs.future_acquisitions_pv)  # type: ignore[arg-type]
    alpha, beta, gamma = float(inputs.alpha), float(inputs.beta), float(inputs.gamma)  # type: ignore[arg-type]
    if alpha == 0.0:
        return 0.0
    t0, i, h = (
        float(inputs.valuation_time),
        float(inputs.discount_rate),
        float(inputs.acquisition_horizon),
    )
    if inputs.time == "continuous":
        return _continuous_acquisitions_pv(alpha, beta, gamma, t0, i, h)
    return _discrete_acquisitions_pv(alpha, beta, gamma, t0, i, h)


def _continuous_acquisitions_pv(
    alpha: float, beta: float, gamma: float, t0: float, i: float, h: float
) -> float:
    def integrand(u: float) -> float:
        return float(logistic_acquisition_rate(t0 + u, alpha, beta, gamma)) * math.exp(-i * u)

    # Past the point where the curve is saturated nothing is left to acquire, and past
    # u = 40 / i the discount factor is below 4e-18.
    saturated = (_SATURATED - beta) / gamma - t0
    end = min(h, saturated, _SATURATED / i) if i > 0.0 else min(h, saturated)
    if end <= 0.0:
        return 0.0
    peak = -beta / gamma - t0  # acquisitions peak here; split the integral there for accuracy
    edges = [0.0] + ([peak] if 0.0 < peak < end else []) + [end]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        value, _ = integrate.quad(integrand, lo, hi, limit=200, epsabs=0.0, epsrel=1e-11)
        total += value
    return total


def _discrete_acquisitions_pv(
    alpha: float, beta: float, gamma: float, t0: float, i: float, h: float
) -> float:
    n_sat = max(math.ceil((_SATURATED - beta) / gamma - t0), 1)
    n_disc = math.ceil(_SATURATED / math.log1p(i)) if i > 0.0 else n_sat
    n = min(n_sat, n_disc, h) if math.isfinite(h) else min(n_sat, n_disc)
    n = int(n)
    if n > _MAX_PERIODS:
        raise ConfigError(
            f"GLS valuation: {n} acquisition periods to sum in discrete time; give a finite acquisition horizon"
        )
    k = np.arange(0, n + 1, dtype=float)
    cumulative = logistic_customers(t0 + k, alpha, beta, gamma)
    cohorts = np.diff(cumulative)
    return float(np.sum(cohorts * np.exp(-k[1:] * math.log1p(i))))


def gls_customer_value(inputs: GLSInputs) -> GLSResult:
    """Customer value of a firm after Gupta, Lehmann & Stuart (2004).

    ``V = (1 - tax) [ N0 LV + A (LV - c) ]`` with ``LV`` from :func:`gls_lifetime_value` and
    ``A`` from :func:`future_acquisitions_pv` (see the module docstring for the conventions).
    """
    lv = gls_lifetime_value(
        inputs.margin,
        inputs.retention,
        inputs.discount_rate,
        margin_growth=inputs.margin_growth,
        time=inputs.time,
        first_margin=inputs.first_margin,
        horizon=inputs.customer_horizon,
    )
    a = future_acquisitions_pv(inputs)
    current = float(inputs.current_customers) * lv
    future = a * (lv - float(inputs.acquisition_cost))
    keep = 1.0 - float(inputs.tax_rate)
    return GLSResult(
        total_value=keep * (current + future),
        current_customers_value=keep * current,
        future_customers_value=keep * future,
        pre_tax_value=current + future,
        lifetime_value=lv,
        future_acquisitions_pv=a,
        acquisition_cost=float(inputs.acquisition_cost),
        tax_rate=float(inputs.tax_rate),
        time=inputs.time,
    )


def future_acquisitions_pv_from_elasticities(
    current_customers: float,
    lifetime_value: float,
    acquisition_cost: float,
    acquisition_cost_elasticity: float,
    margin_elasticity: float,
) -> float:
    """Recover ``A`` from published elasticities of customer value.

    With ``V = k [(N0 + A) LV - A c]`` (any constant ``k``, e.g. ``1 - tax``), the elasticity to
    margin is ``e_m = k (N0 + A) LV / V`` and to acquisition cost ``e_c = k A c / V``; their
    ratio gives ``A = N0 e_c LV / (e_m c - e_c LV)``, free of ``k`` and of ``V``.
    """
    denominator = (
        margin_elasticity * acquisition_cost - acquisition_cost_elasticity * lifetime_value
    )
    if not denominator > 0.0:
        raise ConfigError(
            "GLS valuation: these elasticities imply no positive number of future customers "
            f"(e_m c - e_c LV = {denominator:.6g})"
        )
    return current_customers * acquisition_cost_elasticity * lifetime_value / denominator


# --------------------------------------------------------------------------------------------
# Published inputs and results (GLS 2004; March 2002, quarterly data)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GLS2004Firm:
    """One firm's published inputs and results in GLS (2004), as of March 2002.

    Elasticities are % change in customer value for a 1 % improvement in the driver (retention:
    the annual rate; acquisition cost: a 1 % reduction); values in dollars.
    """

    customers: float
    quarterly_margin: float
    acquisition_cost: float
    annual_retention: float
    customer_value: float
    market_value: float
    retention_elasticity: float
    acquisition_cost_elasticity: float
    margin_elasticity: float
    discount_rate_elasticity: float


#: GLS (2004): annual discount rate used for every firm.
GLS_2004_ANNUAL_DISCOUNT_RATE = 0.12
#: GLS (2004) work in quarters.
GLS_2004_PERIODS_PER_YEAR = 4
#: Inferred, not published: the common after-tax factor the published values imply (0.6156,
#: geometric mean over the five firms; the firms' own factors span 0.610-0.622).
GLS_2004_IMPLIED_TAX_RATE = 0.384

_B = 1e9
_M = 1e6

#: GLS (2004)'s five firms: inputs, customer and market values, elasticities (secondary
#: transcription; see the module docstring).
GLS_2004_TABLE: Mapping[str, GLS2004Firm] = MappingProxyType(
    {
        "Amazon": GLS2004Firm(
            33.8 * _M, 3.87, 7.70, 0.70, 0.82 * _B, 5.36 * _B, 2.45, 0.07, 1.07, 0.46
        ),
        "Ameritrade": GLS2004Firm(
            1.88 * _M, 50.39, 203.44, 0.95, 1.62 * _B, 1.40 * _B, 6.75, 0.03, 1.03, 1.17
        ),
        "Capital One": GLS2004Firm(
            46.6 * _M, 13.71, 75.49, 0.85, 11.00 * _B, 14.08 * _B, 5.12, 0.32, 1.32, 1.11
        ),
        "eBay": GLS2004Firm(
            46.1 * _M, 4.31, 11.26, 0.80, 1.89 * _B, 15.85 * _B, 3.42, 0.08, 1.08, 0.63
        ),
        "E*Trade": GLS2004Firm(
            4.12 * _M, 43.02, 391.00, 0.95, 2.69 * _B, 3.35 * _B, 6.67, 0.02, 1.02, 1.14
        ),
    }
)

#: Published customer value of each firm, dollars (March 2002).
GLS_2004_PUBLISHED_VALUE: Mapping[str, float] = MappingProxyType(
    {name: firm.customer_value for name, firm in GLS_2004_TABLE.items()}
)

#: Published market value of each firm, dollars (March 2002).
GLS_2004_MARKET_VALUE: Mapping[str, float] = MappingProxyType(
    {name: firm.market_value for name, firm in GLS_2004_TABLE.items()}
)


def gls_2004_inputs(firm: GLS2004Firm, *, tax_rate: float = GLS_2004_IMPLIED_TAX_RATE) -> GLSInputs:
    """Quarterly :class:`GLSInputs` for a published firm: GLS's conversions of annual retention and
    the 12 % discount rate, continuous time, and ``A`` recovered from the published margin and
    acquisition-cost elasticities (the logistic estimates were not available)."""
    r = period_retention(firm.annual_retention, GLS_2004_PERIODS_PER_YEAR)
    i = period_discount_rate(GLS_2004_ANNUAL_DISCOUNT_RATE, GLS_2004_PERIODS_PER_YEAR)
    lv = gls_lifetime_value(firm.quarterly_margin, r, i)
    a = future_acquisitions_pv_from_elasticities(
        firm.customers,
        lv,
        firm.acquisition_cost,
        firm.acquisition_cost_elasticity,
        firm.margin_elasticity,
    )
    return GLSInputs(
        margin=firm.quarterly_margin,
        retention=r,
        discount_rate=i,
        acquisition_cost=firm.acquisition_cost,
        current_customers=firm.customers,
        future_acquisitions_pv=a,
        tax_rate=tax_rate,
    )


#: Quarterly inputs reproducing GLS (2004)'s customer values (see :func:`gls_2004_inputs`).
GLS_2004_FIRMS: Mapping[str, GLSInputs] = MappingProxyType(
    {name: gls_2004_inputs(firm) for name, firm in GLS_2004_TABLE.items()}
)
