"""Simulated subscription companies with known parameters: cohorts whose retention varies from
cohort to cohort around a population, prices per subscriber, acquisitions from
:mod:`cbcv.data.simulate.acquisitions`, written as subscription records.

The generative story is the one :mod:`cbcv.models.cohort_retention` fits (the shifted-beta-
geometric model of Fader & Hardie 2007, "How to Project Customer Retention", J. Interactive
Marketing 21(1), with its parameters drawn per cohort):

* cohort ``k`` (the subscribers starting in one calendar period) has a mean churn probability
  ``mu_k`` with ``logit(mu_k) ~ Normal(logit(mean_churn), logit_sd)`` and a concentration
  ``kappa_k = alpha_k + beta_k`` with ``log(kappa_k) ~ Normal(log(kappa), log_kappa_sd)``, so
  ``alpha_k = mu_k kappa_k`` and ``beta_k = (1 - mu_k) kappa_k`` (a subscriber on plan ``j``
  has ``logit(mu)`` shifted by the plan's ``churn_effect``);
* each subscriber draws a churn probability ``theta ~ Beta(alpha_k, beta_k)`` and pays
  ``T ~ Geometric(theta)`` times (``T = 1, 2, ...``): at its start and at each of the next
  ``T - 1`` renewal dates ``start + k`` billing periods (calendar months, month-ends clamped as
  pandas and DuckDB clamp them), ending service at ``start + T`` periods;
* starts are uniform over the days of their acquisition period; a subscription that has not
  ended by ``as_of`` is written with an empty ``end`` (right-censored), as a company would report it.

The truth the valuation is tested against (``cohorts``: each cohort's ``alpha``, ``beta``) is
returned beside the records; :mod:`cbcv.valuation.subscription_truth` turns it into the true
expected subscriber equity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError
from cbcv.core.safe_csv import write_csv
from cbcv.data.subscriptions import PERIOD_MONTHS


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Plan:
    """A plan: its ``price`` per billing period, its ``share`` of new subscribers and the shift
    of the logit mean churn of its subscribers (0: the cohort's own)."""

    price: float
    share: float
    churn_effect: float = 0.0

    def __post_init__(self) -> None:
        if not (self.price > 0 and 0 < self.share <= 1 and math.isfinite(self.churn_effect)):
            raise ConfigError(f"plan out of range: {self}")


@dataclass(frozen=True)
class RetentionPopulation:
    """The population the cohorts' sBG parameters are drawn from (module docstring)."""

    mean_churn: float
    logit_sd: float
    kappa: float
    log_kappa_sd: float = 0.0

    def __post_init__(self) -> None:
        if not (0 < self.mean_churn < 1 and self.logit_sd >= 0 and self.kappa > 0 and self.log_kappa_sd >= 0):
            raise ConfigError(f"retention population out of range: {self}")

    def cohort_parameters(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` cohorts' ``(logit mu, log kappa)``."""
        logit_mu = _logit(self.mean_churn) + self.logit_sd * rng.standard_normal(n)
        log_kappa = math.log(self.kappa) + self.log_kappa_sd * rng.standard_normal(n)
        return logit_mu, log_kappa


def alpha_beta(logit_mu: np.ndarray | float, log_kappa: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """The sBG's ``(alpha, beta)`` of a mean churn ``logit_mu`` and concentration ``log_kappa``."""
    mu = 1.0 / (1.0 + np.exp(-np.asarray(logit_mu, dtype=float)))
    kappa = np.exp(np.asarray(log_kappa, dtype=float))
    return mu * kappa, (1.0 - mu) * kappa


@dataclass(frozen=True)
class SubscriptionSpec:
    """A simulated subscription company: its retention population, plans and billing period."""

    population: RetentionPopulation
    plans: Mapping[str, Plan] = field(default_factory=lambda: {"standard": Plan(10.0, 1.0)})
    billing_period: str = "month"

    def __post_init__(self) -> None:
        if self.billing_period not in PERIOD_MONTHS:
            raise ConfigError(f"billing_period must be one of {', '.join(PERIOD_MONTHS)}")
        if not self.plans or not math.isclose(sum(p.share for p in self.plans.values()), 1.0, abs_tol=1e-9):
            raise ConfigError("plans: the shares must add up to 1")


@dataclass(frozen=True)
class SimulatedSubscriptions:
    """``records``: ``customer_id``, ``start``, ``end`` (NaT while active at ``as_of``),
    ``price``, ``plan`` (one spell per customer). ``cohorts``: ``cohort`` (Period), ``alpha``,
    ``beta`` (of a subscriber on a plan without churn effect), ``logit_mu``, ``log_kappa`` and
    ``subscribers``: the true parameters of each acquisition period's cohort."""

    records: pd.DataFrame
    cohorts: pd.DataFrame
    spec: SubscriptionSpec
    as_of: pd.Timestamp

    def to_csv(self, path: str) -> None:
        """The records as a company would export them: ISO dates, an empty ``end`` while active."""
        out = self.records.assign(
            start=self.records["start"].dt.strftime("%Y-%m-%d"),
            end=self.records["end"].dt.strftime("%Y-%m-%d"),
        )
        write_csv(out, path)


def simulate_subscriptions(
    acquisitions: pd.DataFrame, spec: SubscriptionSpec, *, as_of: str | pd.Timestamp, seed: int,
) -> SimulatedSubscriptions:
    """Subscription records of the subscribers acquired in ``acquisitions`` (``period``: pandas
    Periods, ``new_customers``), each period one cohort, observed to ``as_of`` (module docstring)."""
    as_of_ts = pd.Timestamp(as_of).normalize()
    periods = pd.PeriodIndex(acquisitions["period"])
    counts = acquisitions["new_customers"].to_numpy(dtype=np.int64)
    if len(periods) == 0 or (counts < 0).any():
        raise ConfigError("acquisitions: give one row per period with new_customers >= 0")
    if periods[-1].end_time.normalize() > as_of_ts:
        raise ConfigError(f"acquisitions run past as_of {as_of_ts.date()}")
    rng = np.random.default_rng(seed)
    logit_mu, log_kappa = spec.population.cohort_parameters(len(periods), rng)
    names = list(spec.plans)
    shares = np.array([spec.plans[n].share for n in names])
    effects = np.array([spec.plans[n].churn_effect for n in names])
    prices = np.array([spec.plans[n].price for n in names])
    months = PERIOD_MONTHS[spec.billing_period]
    frames = []
    for k, (period, n) in enumerate(zip(periods, counts, strict=True)):
        if n == 0:
            continue
        first, days = period.start_time.normalize(), period.end_time.normalize() - period.start_time.normalize()
        start = first + pd.to_timedelta(rng.integers(0, days.days + 1, n), unit="D")
        plan = rng.choice(len(names), size=n, p=shares)
        a, b = alpha_beta(logit_mu[k] + effects[plan], log_kappa[k])
        theta = rng.beta(a, b)
        payments = rng.geometric(np.clip(theta, 1e-12, 1.0))
        frames.append(pd.DataFrame({"start": start, "payments": payments, "plan": np.asarray(names)[plan],
                                    "price": prices[plan]}))
    data = pd.concat(frames, ignore_index=True).sort_values("start", kind="stable").reset_index(drop=True)
    # a subscription still paying at as_of is censored there: its payments beyond are not needed
    span = (as_of_ts.year - data["start"].dt.year) * 12 + as_of_ts.month - data["start"].dt.month
    payments = np.minimum(data["payments"].to_numpy(), span.to_numpy() // months + 2)
    end = add_months(data["start"], payments * months)
    width = max(6, len(str(len(data))))
    records = pd.DataFrame({
        "customer_id": [f"S{i:0{width}d}" for i in range(1, len(data) + 1)],
        "start": data["start"],
        "end": end.where(end <= as_of_ts),
        "price": data["price"].astype(float),
        "plan": data["plan"].astype(str),
    })
    a, b = alpha_beta(logit_mu, log_kappa)
    cohorts = pd.DataFrame({"cohort": periods, "alpha": a, "beta": b, "logit_mu": logit_mu,
                            "log_kappa": log_kappa, "subscribers": counts})
    return SimulatedSubscriptions(records, cohorts, spec, as_of_ts)


def add_months(days: pd.Series | pd.DatetimeIndex, months: np.ndarray) -> pd.Series:
    """``days + months`` calendar months each (vectorised), the month-end clamped as pandas and
    DuckDB clamp it (Jan 31 + 1 month = Feb 28/29)."""
    days = pd.Series(days)
    start = pd.DatetimeIndex(days)
    total = start.year.to_numpy() * 12 + start.month.to_numpy() - 1 + months.astype(np.int64)
    year, month = total // 12, total % 12 + 1
    first = pd.to_datetime({"year": year, "month": month, "day": 1})
    last_day = (first + pd.offsets.MonthEnd(0)).dt.day.to_numpy()
    day = np.minimum(start.day.to_numpy(), last_day)
    return pd.Series(first.to_numpy() + pd.to_timedelta(day - 1, unit="D").to_numpy(), index=days.index)
