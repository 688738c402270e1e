"""A simulated listed company: customer-level acquisition, purchasing and spend with known
parameters, aggregated to the quarterly (or monthly) customer metrics it would disclose.

The check it serves (issue 16): a company valued from its disclosures alone
(:class:`cbcv.models.disclosures.DisclosureModel`) against the truth and against the valuation
from its customer-level log. So the two halves of the simulation are the existing, tested
simulators, chained:

* **acquisition** — a finite market opening in the first period
  (:func:`cbcv.data.simulate.acquisitions.simulate_acquisitions`: Weibull timing, a never-acquire
  share, binomial draws period by period); each period's new customers make their first purchase
  on a day drawn uniformly within it
  (:func:`cbcv.data.simulate.acquisitions.acquisition_day_weights`);
* **purchasing and spend** — from the first purchase on, a BG/NBD or Pareto/NBD purchase process
  with gamma-gamma amounts (:func:`cbcv.data.simulate.simulate_transactions`), in continuous time,
  each purchase on its calendar day.

The disclosures are then what a firm reports about that log, per period (one DuckDB query,
:func:`disclosed_metrics`): ``new_customers`` (customers whose first purchase falls in the period),
``active_customers`` (customers with at least one order in it), ``orders`` (purchases: each row of
the log is an order) and ``revenue`` (their amounts). The customer-level log is kept beside them,
so the same company can be summarised and valued customer by customer, and its true expected
equity computed from the known parameters (:func:`cbcv.valuation.truth.true_customer_equity`).

Two purchasing stories:

* :func:`simulate_disclosing_company` — the Pareto/NBD (continuous lifetimes, survivor
  ``(beta / (beta + t))^s``), which the aggregate model does *not* describe exactly: what a
  disclosures valuation gets wrong about a company outside its family
  (``benchmarks/disclosure_width.py``);
* :func:`simulate_period_company` — the aggregate model's own story told customer by customer
  (:class:`PeriodCustomers`): each customer draws a churn probability ``theta ~ Beta(a, b)``
  and leaves at the end of each period with probability ``theta`` (the sBG, Fader & Hardie
  2007), and while a customer places ``Poisson(lambda)`` orders a period (``lambda ~ Gamma(r,
  rate r / m)``), at uniform instants, the first at the acquisition instant and ``Poisson(lambda
  (1 - u))`` more in the rest of the acquisition period (``u`` its elapsed share); gamma-gamma
  amounts. The check of inference from aggregates (tests/test_disclosure_report.py), with its
  truth in :mod:`cbcv.valuation.disclosure_truth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from cbcv.core.errors import ConfigError
from cbcv.data.simulate.acquisitions import (
    AcquisitionParams,
    acquisition_day_weights,
    simulate_acquisitions,
)
from cbcv.data.simulate.draws import customer_ids
from cbcv.data.simulate.logs import SimulatedLog, simulate_transactions
from cbcv.data.simulate.params import FrequencyParams, GammaGammaParams

#: pandas period codes of the disclosure periods the simulator writes.
_FREQ = {"quarter": "Q", "month": "M"}

_METRICS_SQL = """
WITH orders AS (
    SELECT customer_id, CAST(date AS DATE) AS day, amount,
           CAST(date_trunc({unit}, CAST(date AS DATE)) AS DATE) AS period_start
    FROM log
),
firsts AS (
    SELECT customer_id, CAST(date_trunc({unit}, min(day)) AS DATE) AS period_start
    FROM orders GROUP BY customer_id
),
new AS (SELECT period_start, count(*) AS new_customers FROM firsts GROUP BY period_start),
activity AS (
    SELECT period_start, count(DISTINCT customer_id) AS active_customers, count(*) AS orders,
           fsum(amount) AS revenue
    FROM orders GROUP BY period_start
)
SELECT period_start, coalesce(new.new_customers, 0) AS new_customers, active_customers, orders, revenue
FROM activity LEFT JOIN new USING (period_start)
ORDER BY period_start
"""


def disclosed_metrics(transactions: pd.DataFrame, period: str = "quarter") -> pd.DataFrame:
    """Per period of a transaction log (``customer_id``, ``date``, ``amount``; one row per order),
    the metrics a firm discloses: ``period`` (``2019Q1`` or ``2019-01``), ``new_customers``,
    ``active_customers``, ``orders``, ``revenue``. Periods without orders are rows of zeros."""
    if period not in _FREQ:
        raise ConfigError(f"period {period!r}: choose quarter or month")
    missing = {"customer_id", "date", "amount"} - set(transactions.columns)
    if missing:
        raise ConfigError(f"disclosed_metrics: the log lacks {sorted(missing)}")
    con = duckdb.connect()
    try:
        con.register("log", transactions[["customer_id", "date", "amount"]])
        out = con.execute(_METRICS_SQL.format(unit="'" + period + "'")).df()
    finally:
        con.close()
    if out.empty:
        raise ConfigError("disclosed_metrics: the log has no orders")
    periods = pd.PeriodIndex(pd.to_datetime(out["period_start"]), freq=_FREQ[period])
    out = out.drop(columns="period_start").set_index(periods)
    full = pd.period_range(periods.min(), periods.max(), freq=_FREQ[period])
    out = out.reindex(full, fill_value=0)
    out.index.name = "period"
    table = out.reset_index()
    table["period"] = table["period"].astype(str)
    return table.astype({"new_customers": "int64", "active_customers": "int64", "orders": "int64",
                         "revenue": "float64"})


@dataclass(frozen=True)
class SimulatedDisclosures:
    """A simulated company: its ``disclosures`` (one row per period, :func:`disclosed_metrics`),
    the ``acquisitions`` drawn per period (``period``, ``new_customers``), the customer-level
    ``log`` (with each customer's latent truth) and the known parameters; ``as_of`` is the last
    day of the last period."""

    disclosures: pd.DataFrame
    acquisitions: pd.DataFrame
    log: SimulatedLog
    acquisition: AcquisitionParams
    purchasing: FrequencyParams
    spend: GammaGammaParams
    period: str
    as_of: pd.Timestamp

    @property
    def n_customers(self) -> int:
        return int(len(self.log.truth))


def simulate_disclosing_company(
    acquisition: AcquisitionParams,
    purchasing: FrequencyParams,
    spend: GammaGammaParams,
    *,
    start: str,
    n_periods: int,
    period: str = "quarter",
    time_unit: str = "week",
    seed: int = 0,
) -> SimulatedDisclosures:
    """Simulate the company (module docstring) from the period containing ``start`` (the
    market's opening) for ``n_periods`` periods; ``time_unit`` is the purchase parameters' unit."""
    if period not in _FREQ:
        raise ConfigError(f"period {period!r}: choose quarter or month")
    if n_periods < 2:
        raise ConfigError(f"n_periods must be at least 2, got {n_periods}")
    periods = pd.period_range(pd.Timestamp(start), periods=n_periods, freq=_FREQ[period])
    seeds = np.random.SeedSequence(seed).generate_state(2)
    acquired = simulate_acquisitions(acquisition, periods, seed=int(seeds[0]))
    n_customers = int(acquired["new_customers"].sum())
    if n_customers == 0:
        raise ConfigError("the simulated market acquired no customers; raise the rate or the market")
    first_day = periods[0].start_time.normalize()
    last_day = periods[-1].end_time.normalize()
    log = simulate_transactions(
        purchasing, n_customers, start=first_day, acquisition_end=last_day, end=last_day,
        time_unit=time_unit, spend=spend, acquisition=acquisition_day_weights(acquired), seed=int(seeds[1]),
    )
    return SimulatedDisclosures(
        disclosures=disclosed_metrics(log.transactions, period), acquisitions=acquired, log=log,
        acquisition=acquisition, purchasing=purchasing, spend=spend, period=period, as_of=last_day,
    )


@dataclass(frozen=True)
class PeriodCustomers:
    """Customers who churn at period ends and order at a Poisson rate per period (module
    docstring): ``theta ~ Beta(a, b)``, ``lambda ~ Gamma(r, rate r / m)`` (``m``: mean orders per
    alive customer per period)."""

    a: float
    b: float
    m: float
    r: float

    def __post_init__(self) -> None:
        if not min(self.a, self.b, self.m, self.r) > 0:
            raise ConfigError(f"period customers: every parameter must be positive, got {self}")

    def survivor(self, ages: np.ndarray) -> np.ndarray:
        """``S(k) = B(a, b + k) / B(a, b)``: the share of a cohort still a customer ``k`` periods on."""
        from scipy.special import betaln

        return np.exp(betaln(self.a, self.b + np.asarray(ages, dtype=float)) - betaln(self.a, self.b))


@dataclass(frozen=True)
class SimulatedPeriodCompany:
    """A company simulated by :func:`simulate_period_company`: its ``disclosures``, its customer-
    level ``transactions`` (``customer_id``, ``date``, ``amount``), ``customers`` (one row each:
    ``customer_id``, ``cohort`` (period index from 0), ``theta``, ``lambda``, ``nu``,
    ``periods_alive`` after the acquisition period) and the known parameters."""

    disclosures: pd.DataFrame
    transactions: pd.DataFrame
    customers: pd.DataFrame
    periods: pd.PeriodIndex
    acquisition: AcquisitionParams
    behaviour: PeriodCustomers
    spend: GammaGammaParams
    as_of: pd.Timestamp

    def cohort_sizes(self) -> np.ndarray:
        """Customers acquired in each period."""
        return np.bincount(self.customers["cohort"].to_numpy(), minlength=len(self.periods))


def simulate_period_company(
    acquisition: AcquisitionParams,
    behaviour: PeriodCustomers,
    spend: GammaGammaParams,
    *,
    start: str,
    n_periods: int,
    period: str = "quarter",
    seed: int = 0,
) -> SimulatedPeriodCompany:
    """Simulate the company of the module docstring's second story from the period containing
    ``start`` for ``n_periods`` periods."""
    if period not in _FREQ:
        raise ConfigError(f"period {period!r}: choose quarter or month")
    if n_periods < 2:
        raise ConfigError(f"n_periods must be at least 2, got {n_periods}")
    periods = pd.period_range(pd.Timestamp(start), periods=n_periods, freq=_FREQ[period])
    acq_seed, rng_seed = np.random.SeedSequence(seed).generate_state(2)
    counts = simulate_acquisitions(acquisition, periods, seed=int(acq_seed))["new_customers"].to_numpy()
    n = int(counts.sum())
    if n == 0:
        raise ConfigError("the simulated market acquired no customers; raise the rate or the market")
    rng = np.random.default_rng(int(rng_seed))
    cohort = np.repeat(np.arange(n_periods), counts)
    theta = rng.beta(behaviour.a, behaviour.b, n)
    lam = rng.gamma(behaviour.r, behaviour.m / behaviour.r, n)
    nu = rng.gamma(spend.q, 1.0 / spend.gamma, n)
    alive_after = rng.geometric(theta) - 1  # periods alive after the acquisition period
    u = rng.random(n)  # elapsed share of the acquisition period at the first order
    first_day = np.array([p.start_time.normalize() for p in periods], dtype="datetime64[D]")
    days = np.array([(p.end_time.normalize() - p.start_time.normalize()).days + 1 for p in periods])
    who, when = [np.arange(n)], [cohort + u]  # order times in periods from the first period's start
    extra = rng.poisson(lam * (1.0 - u))
    rows = np.repeat(np.arange(n), extra)
    who.append(rows)
    when.append(cohort[rows] + u[rows] + rng.random(rows.size) * (1.0 - u[rows]))
    for k in range(1, n_periods):
        here = np.flatnonzero((alive_after >= k) & (cohort + k < n_periods))
        orders = rng.poisson(lam[here])
        rows = np.repeat(here, orders)
        who.append(rows)
        when.append(cohort[rows] + k + rng.random(rows.size))
    customer = np.concatenate(who)
    t = np.concatenate(when)
    index = np.minimum(np.floor(t).astype(int), n_periods - 1)
    offset = np.minimum(np.floor((t - index) * days[index]).astype(int), days[index] - 1)
    date = first_day[index] + offset.astype("timedelta64[D]")
    amount = rng.gamma(spend.p, 1.0 / nu[customer])
    ids = np.char.add("P", customer_ids(0, n, n))
    order = np.lexsort((t, customer))
    transactions = pd.DataFrame({"customer_id": ids[customer[order]], "date": pd.to_datetime(date[order]),
                                 "amount": amount[order]})
    customers = pd.DataFrame({"customer_id": ids, "cohort": cohort, "theta": theta, "lambda": lam, "nu": nu,
                              "periods_alive": alive_after})
    return SimulatedPeriodCompany(
        disclosures=disclosed_metrics(transactions, period), transactions=transactions, customers=customers,
        periods=periods, acquisition=acquisition, behaviour=behaviour, spend=spend,
        as_of=periods[-1].end_time.normalize(),
    )
