"""Model-based drivers of a valuation: DERT under a retention shock, a new customer's value,
revenue by future period, and unit economics, all per posterior draw.

Retention shocks (used by :mod:`cbcv.valuation.sensitivity` for the elasticity to retention and
for scenarios such as "retention +5%") scale the population's dropout process, draw by draw:

* Pareto/NBD: each customer's dropout rate ``μ ~ Gamma(s, β)``; dividing every ``μ`` by ``k``
  gives ``Gamma(s, k β)``, so ``β → k β`` (exact);
* BG/NBD and MBG/NBD: the dropout probability after each purchase ``p ~ Beta(a, b)``; dividing
  it by ``k`` keeps ``a`` and sets ``b → k (a + b) − a``, which divides the mean ``a / (a + b)``
  by ``k`` exactly (the shape of the distribution otherwise changes little for small shocks).

The shocked parameters then feed the same prediction code as the fitted ones (P(alive) and DERT
given each customer's history), so a shock moves today's P(alive) as well as the future.

A new customer's CLV at acquisition counts its first purchase and its repeat purchases:
``margin × (E[first spend] + E[spend] × DERT(x = 0, t_x = 0, T = 0))``. ``E[spend] =
p γ / (q − 1)`` is the gamma-gamma population mean of repeat spend (Fader, Hardie & Lee 2005,
"RFM and CLV", eq. 5 with x = 0), and DERT counts repeat transactions only. The first purchase
is made at acquisition, so it is not discounted within the customer's life; its expected spend
is estimated from the first purchases in the data (:class:`FirstPurchaseSpend`), which differ
from repeat purchases (gamma-gamma is fitted to repeat spend only) and are real revenue of
every future cohort, in its acquisition period.

With customer covariates (:class:`~cbcv.models.covariates.CovariateModel`), every driver runs
each covariate group at its own parameters (:func:`cbcv.predict.covariates.covariate_parts`):
existing customers at their own covariates, a retention shock applied to each group's dropout
process, and future customers as a mix of covariate rows (:class:`NewCustomers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cbcv import predict as P
from cbcv.clv import dert_draws
from cbcv.core.discount import continuous_rate
from cbcv.core.draws import draw_stats
from cbcv.core.units import periods_per_year, unit_days
from cbcv.models.base import CLVModel
from cbcv.models.covariates import CovariateModel
from cbcv.predict.covariates import covariate_parts


@dataclass(frozen=True)
class FirstPurchaseSpend:
    """The mean spend of a customer's first purchase, estimated from ``n`` first purchases with
    sample mean ``mean`` and standard deviation ``sd`` (:meth:`CompanyData.first_purchase_spend`).

    Its uncertainty is the posterior of a population mean under the reference prior
    p(μ, σ) ∝ 1/σ: ``μ | data ~ mean + sd / √n × t(n − 1)`` (Gelman et al., *Bayesian Data
    Analysis*, 3rd ed., §3.2), exact for normal data and, by the central limit theorem, for any
    spend distribution with finite variance when ``n`` is large, as it is for a customer base."""

    n: int
    mean: float
    sd: float

    def draws(self, n_draws: int, seed: int = 0) -> np.ndarray:
        """``(n_draws,)`` posterior draws of the mean first-purchase spend (seeded)."""
        if self.n < 1 or not np.isfinite(self.mean):
            raise ValueError("first-purchase spend: no first purchases to estimate it from")
        if self.n < 2 or not np.isfinite(self.sd):
            return np.full(n_draws, self.mean)
        t = np.random.default_rng(seed).standard_t(self.n - 1, size=n_draws)
        return self.mean + self.sd / np.sqrt(self.n) * t


#: A customer just acquired: no repeat purchase yet, age 0.
NEW_CUSTOMER = pd.DataFrame({"x": [0.0], "t_x": [0.0], "T": [0.0], "mean_repeat_spend": [np.nan]})


def _plain() -> pd.DataFrame:
    return NEW_CUSTOMER.copy()


@dataclass(frozen=True)
class NewCustomers:
    """Who the future customers are: the covariate rows they arrive with (``frame``: one row
    per row of covariates, each a customer just acquired, :data:`NEW_CUSTOMER`) and each row's
    ``share`` of them (summing to 1); ``basis`` says where the mix comes from. Without customer
    covariates: one row of share 1, the population's new customer.

    A new customer's expected repeat value is the mix's average, Σ_g share_g × E[spend_g] ×
    DERT_g, each group at its own parameters: with covariates on both purchasing and spend,
    groups that buy more also spend more, and the average of the products is not the product
    of the averages."""

    frame: pd.DataFrame = field(default_factory=_plain)
    shares: np.ndarray = field(default_factory=lambda: np.ones(1))
    basis: str = "every new customer alike (no customer covariates)"

    def __post_init__(self) -> None:
        shares = np.asarray(self.shares, dtype=float)
        if shares.shape != (len(self.frame),) or np.any(shares < 0) or not np.isclose(shares.sum(), 1.0):
            raise ValueError("new customers: one non-negative share per row of the mix, summing to 1")

    @classmethod
    def mix(cls, counts: pd.DataFrame, columns: list[str], basis: str) -> NewCustomers:
        """The mix of ``counts`` (one row per combination of the covariate ``columns`` and its
        ``count`` of customers)."""
        counts = counts[counts["count"] > 0].reset_index(drop=True)
        if counts.empty:
            raise ValueError(f"new customers: no customers to take the covariate mix from ({basis})")
        frame = pd.concat([NEW_CUSTOMER] * len(counts), ignore_index=True)
        for c in columns:
            frame[c] = counts[c].to_numpy()
        total = counts["count"].to_numpy(dtype=float)
        return cls(frame, total / total.sum(), basis)

    def table(self) -> pd.DataFrame:
        """The mix as a table: the covariate columns and each row's share."""
        out = self.frame.drop(columns=list(NEW_CUSTOMER.columns)).copy()
        out["share"] = self.shares
        return out

    def spend(self, spend_model: CLVModel, n_draws: int) -> np.ndarray:
        """``(draws, rows)`` expected spend per repeat transaction of each row, ``p γ_g / (q − 1)``."""
        return P.expected_spend(spend_model, self.frame, max_draws=n_draws)

    def mean_spend(self, spend_model: CLVModel, n_draws: int) -> np.ndarray:
        """``(draws,)`` the mix's mean spend per repeat transaction."""
        return self.spend(spend_model, n_draws) @ self.shares

    def repeat_value(self, freq_model: CLVModel, spend_model: CLVModel, delta: np.ndarray, n_draws: int) -> np.ndarray:
        """``(draws,)`` Σ_g share_g × E[spend_g] × DERT_g at continuous rate ``delta`` per draw
        (the repeat purchases' discounted revenue of one new customer)."""
        return (dert_draws(freq_model, self.frame, delta, n_draws) * self.spend(spend_model, n_draws)) @ self.shares


@dataclass(frozen=True)
class DrawSet:
    """Parameter draws of a model family without a fit of its own (shocked posteriors, or
    known parameters as a single draw); it predicts like the fitted model (``name``, ``draws``)."""

    name: str
    params: Mapping[str, Any]

    def draws(self) -> dict[str, np.ndarray]:
        return {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in self.params.items()}


def with_retention(model: CLVModel | DrawSet, factor: float, n_draws: int | None = None) -> DrawSet:
    """The purchase model's draws with every dropout rate/probability divided by ``factor``
    (module docstring); ``n_draws`` thins the draws as :func:`cbcv.predict.posterior_draws`."""
    if not factor > 0:
        raise ValueError("retention factor must be positive")
    name = P.frequency_name(model)  # type: ignore[arg-type]
    p = {k: v[:, 0] for k, v in P.posterior_draws(model, n_draws).items()}  # type: ignore[arg-type]
    if name == "pareto_nbd":
        p["beta"] = p["beta"] * factor
    else:
        p["b"] = factor * (p["a"] + p["b"]) - p["a"]
    return DrawSet(name, p)


def _rate_draws(annual_rate: Any, n: int, time_unit: str) -> np.ndarray:
    return np.broadcast_to(np.asarray(continuous_rate(annual_rate, time_unit), dtype=float), (n,)).copy()


def dert_function(
    model: CLVModel, data: pd.DataFrame, time_unit: str, n_draws: int, *, grid: int | None = None
) -> Any:
    """``f(retention, annual_rate) -> (draws, customers)`` DERT of the customers in ``data``,
    the form :class:`cbcv.valuation.sensitivity.ValuationModel` takes. ``grid`` (BG/NBD and
    MBG/NBD): DERT given alive, which depends on (x, T) only, is evaluated once per distinct
    pair and interpolated over each x's T at ``grid`` Chebyshev points, as scoring does
    (:func:`cbcv.clv.scoring.pair_values`; within 2e-7 of the direct quadrature on CDNOW, tested): for a large base with
    hundreds of distinct T per x. A model with covariates: each covariate group of ``data`` at
    its own parameters, the retention shock applied to each group's dropout process."""

    if isinstance(model, CovariateModel):  # each covariate group at its own parameters
        parts = [(rows, dert_function(stand_in, data.iloc[rows], time_unit, n_draws, grid=grid))
                 for rows, stand_in in covariate_parts(model, data)]

        def by_group(retention: float, annual_rate: np.ndarray) -> np.ndarray:
            values = [(rows, g(retention, annual_rate)) for rows, g in parts]
            out = np.empty((values[0][1].shape[0], len(data)))
            for rows, v in values:
                out[:, rows] = v
            return out

        return by_group

    def f(retention: float, annual_rate: np.ndarray) -> np.ndarray:
        shocked = with_retention(model, retention, n_draws)
        rates = _rate_draws(annual_rate, n_draws, time_unit)
        if grid is None or shocked.name == "pareto_nbd":
            return dert_draws(shocked, data, rates, n_draws)  # type: ignore[arg-type]
        from cbcv.clv.scoring import ScoringDraws, pair_values

        p = P.posterior_draws(shocked, n_draws)  # type: ignore[arg-type]
        draws = ScoringDraws(freq=shocked.name, params=p, spend={}, margin=np.ones(n_draws), delta=rates,
                             time_unit=time_unit)
        x, t_x, T = (data[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
        pairs = pair_values(draws, x, T, grid=grid)
        alive = P.p_alive_rows(shocked.name, p, {"x": x[None, :], "t_x": t_x[None, :], "T": T[None, :]})
        return alive * pairs.dert[:, pairs.index]

    return f


def new_customer_dert_function(model: CLVModel, time_unit: str, n_draws: int, new: NewCustomers | None = None,
                               spend_model: CLVModel | None = None) -> Any:
    """``f(retention, annual_rate) -> (draws,)``: DERT of a customer just acquired. With a mix
    of ``new`` customers, the spend-weighted mean DERT over the mix, Σ_g share_g s_g DERT_g /
    Σ_g share_g s_g (``spend_model`` gives s_g), so that :func:`population_spend` times it is
    the mix's repeat value exactly (:class:`NewCustomers`)."""
    new = new if new is not None else NewCustomers()
    inner = dert_function(model, new.frame, time_unit, n_draws)
    if len(new.frame) == 1:
        return lambda retention, annual_rate: inner(retention, annual_rate)[:, 0]
    if spend_model is None:
        raise ValueError("new customers: a covariate mix needs the spend model to weight DERT by spend")
    weights = new.spend(spend_model, n_draws) * new.shares
    return lambda retention, annual_rate: (inner(retention, annual_rate) * weights).sum(axis=1) / weights.sum(axis=1)


def population_spend(spend_model: CLVModel, n_draws: int, new: NewCustomers | None = None) -> np.ndarray:
    """``(draws,)`` expected spend per transaction of a new customer, ``p γ / (q − 1)`` (the
    mean over the mix of ``new`` customers)."""
    return (new if new is not None else NewCustomers()).mean_spend(spend_model, n_draws)


def period_length(period: str, time_unit: str) -> float:
    """Length of one ``period`` (month, quarter, year) in model time units."""
    return 365.25 / periods_per_year(period) / unit_days(time_unit)


def existing_revenue_by_period(
    freq_model: CLVModel,
    spend_model: CLVModel,
    summary: pd.DataFrame,
    *,
    period: str,
    n_periods: int,
    time_unit: str,
    n_draws: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``(draws, n_periods)`` expected revenue of today's customers in each future period:
    Σ_i E[spend_i] × (E[X_i(T_i, T_i + k L]] − E[X_i(T_i, T_i + (k − 1) L]]), with ``L`` the
    period's length (undiscounted, in the period it is earned). ``weights``: customers per row
    when ``summary`` holds valuation units (:meth:`cbcv.pipeline.company_data.CompanyData.valuation_units`)."""
    spend = P.expected_spend(spend_model, summary, max_draws=n_draws)
    if weights is not None:
        spend = spend * np.asarray(weights, dtype=float)
    return existing_purchases_by_period(freq_model, summary, period=period, n_periods=n_periods,
                                        time_unit=time_unit, n_draws=n_draws, weights=spend)


def existing_purchases_by_period(
    freq_model: CLVModel,
    summary: pd.DataFrame,
    *,
    period: str,
    n_periods: int,
    time_unit: str,
    n_draws: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``(draws, n_periods)`` expected purchases of today's customers in each future period,
    Σ_i w_i × (E[X_i(T_i, T_i + k L]] − E[X_i(T_i, T_i + (k − 1) L]]); ``weights`` ``w``: one
    per row (customers per valuation unit) or ``(draws, rows)`` (each draw's expected spend
    times them, for revenue), 1 when omitted."""
    w = np.ones(len(summary)) if weights is None else np.asarray(weights, dtype=float)
    if isinstance(freq_model, CovariateModel):  # a sum over the covariate groups, each at its parameters
        return sum(existing_purchases_by_period(stand_in, summary.iloc[rows], period=period, n_periods=n_periods,
                                                time_unit=time_unit, n_draws=n_draws, weights=w[..., rows])
                   for rows, stand_in in covariate_parts(freq_model, summary))
    length = period_length(period, time_unit)
    # E[X_i(T_i, T_i + t]] = P(alive)_i × g(x_i, T_i, t): sum each draw's weight × P(alive) per
    # distinct (x, T) pair once, then one g per pair and period
    name = P.frequency_name(freq_model)
    x, T = summary["x"].to_numpy(dtype=float), summary["T"].to_numpy(dtype=float)
    pairs, index = np.unique(np.stack([x, T]), axis=1, return_inverse=True)
    index = np.asarray(index).ravel()
    alive = P.p_alive(freq_model, summary, max_draws=n_draws)
    onehot = sparse.csr_matrix((np.ones(index.size), (np.arange(index.size), index)), shape=(index.size, pairs.shape[1]))
    weight = np.asarray(onehot.T @ (w * alive).T).T  # (draws, pairs)
    p = P.posterior_draws(freq_model, n_draws)
    cumulative = np.zeros((alive.shape[0], n_periods + 1))
    for k in range(1, n_periods + 1):
        given = P.expected_given_alive(name, k * length, p, pairs[0][None, :], pairs[1][None, :])
        cumulative[:, k] = np.einsum("dc,dc->d", weight, given)
    return np.diff(cumulative, axis=1)


def _repeat_curves(freq_model: CLVModel, new: NewCustomers, *, period: str, n_periods: int, time_unit: str,
                   n_draws: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per covariate group of the mix: its rows and ``(draws, n_periods)`` ΔE[X(t)], the
    expected repeat purchases of a customer just acquired in each period of its life."""
    t = np.arange(n_periods + 1) * period_length(period, time_unit)
    return [(rows, np.diff(P.expected_purchases_population(stand_in, t, max_draws=n_draws), axis=1))
            for rows, stand_in in covariate_parts(freq_model, new.frame)]


def new_customer_purchases_by_age(
    freq_model: CLVModel, *, period: str, n_periods: int, time_unit: str, n_draws: int,
    new: NewCustomers | None = None,
) -> np.ndarray:
    """``(draws, n_periods)`` expected purchases of one new customer in the period of its
    acquisition (age 0: its first purchase and any repeat within the period) and each later
    one: 1 at age 0 plus ΔE[X(t)] (the population's expected repeat purchases; the mix's mean
    over ``new`` customers)."""
    new = new if new is not None else NewCustomers()
    curves = _repeat_curves(freq_model, new, period=period, n_periods=n_periods, time_unit=time_unit, n_draws=n_draws)
    out = sum(new.shares[rows].sum() * curve for rows, curve in curves)
    out[:, 0] += 1.0
    return out


def new_customer_revenue_by_age(
    freq_model: CLVModel, spend_model: CLVModel, *, period: str, n_periods: int, time_unit: str, n_draws: int,
    first_spend: Any = 0.0, new: NewCustomers | None = None,
) -> np.ndarray:
    """``(draws, n_periods)`` expected revenue of one new customer in the period of its
    acquisition (age 0) and each later one: its first purchase, ``first_spend`` (scalar or
    ``(draws,)``), at age 0, and its repeat purchases E[spend] × ΔE[X(t)] (population E[X(t)];
    Σ_g share_g E[spend_g] ΔE[X_g(t)] over a mix of ``new`` customers)."""
    new = new if new is not None else NewCustomers()
    weights = new.spend(spend_model, n_draws) * new.shares  # (draws, rows)
    curves = _repeat_curves(freq_model, new, period=period, n_periods=n_periods, time_unit=time_unit, n_draws=n_draws)
    out = sum(weights[:, rows].sum(axis=1)[:, None] * curve for rows, curve in curves)
    out[:, 0] += np.broadcast_to(np.asarray(first_spend, dtype=float), (out.shape[0],))
    return out


@dataclass(frozen=True)
class UnitEconomics:
    """A new customer's economics per draw: CLV at acquisition (its first purchase and its repeat
    purchases, discounted, after the contribution margin), the acquisition cost, and the payback
    time (undiscounted cumulative margin ≥ acquisition cost, counting from the first purchase;
    ``inf`` when not reached within the horizon)."""

    clv: np.ndarray
    acquisition_cost: np.ndarray
    payback_periods: np.ndarray
    period: str
    currency: str | None = None

    def table(self, interval: float = 0.9) -> pd.DataFrame:
        """Rows CLV, CAC, CLV/CAC, payback; columns median, low, high (and notes)."""
        rows: dict[str, dict[str, Any]] = {
            "CLV of a new customer": draw_stats(self.clv, interval),
            "Acquisition cost (CAC)": draw_stats(self.acquisition_cost, interval),
        }
        if np.all(self.acquisition_cost > 0):
            rows["CLV / CAC"] = draw_stats(self.clv / self.acquisition_cost, interval)
            finite = np.isfinite(self.payback_periods)
            pb = np.where(finite, self.payback_periods, np.nan)
            stats = {k: float(np.nanquantile(pb, q, method="inverted_cdf")) if finite.any() else np.inf for k, q in
                     (("median", 0.5), ("low", (1 - interval) / 2), ("high", (1 + interval) / 2))}
            stats["mean"] = float(np.nanmean(pb)) if finite.any() else np.inf
            rows[f"Payback ({self.period}s)"] = stats
        out = pd.DataFrame(rows).T[["median", "mean", "low", "high"]]
        out.index.name = "item"
        return out

    def to_json_dict(self, interval: float = 0.9) -> dict[str, Any]:
        t = self.table(interval)
        out = {str(k): {c: _num(v) for c, v in row.items()} for k, row in t.iterrows()}
        out["share_never_paid_back"] = float(np.mean(~np.isfinite(self.payback_periods)))
        return out


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def unit_economics(
    freq_model: CLVModel,
    spend_model: CLVModel,
    *,
    margin: np.ndarray,
    annual_discount_rate: np.ndarray,
    acquisition_cost: np.ndarray,
    period: str,
    horizon_periods: int,
    time_unit: str,
    n_draws: int,
    currency: str | None = None,
    first_spend: Any = 0.0,
    new: NewCustomers | None = None,
) -> UnitEconomics:
    """Unit economics of a new customer per draw (see :class:`UnitEconomics`); ``first_spend``:
    the expected spend of its first purchase (scalar or ``(draws,)``); ``new``: the covariate
    mix of new customers (:class:`NewCustomers`; the mix's mean customer)."""
    dert_new = new_customer_dert_function(freq_model, time_unit, n_draws, new, spend_model)(1.0, annual_discount_rate)
    spend = population_spend(spend_model, n_draws, new)
    first = np.broadcast_to(np.asarray(first_spend, dtype=float), spend.shape)
    clv = margin * (first + spend * dert_new)
    by_age = new_customer_revenue_by_age(
        freq_model, spend_model, period=period, n_periods=horizon_periods, time_unit=time_unit, n_draws=n_draws,
        first_spend=first, new=new,
    )
    cum_margin = np.cumsum(margin[:, None] * by_age, axis=1)
    reached = cum_margin >= acquisition_cost[:, None]
    first = np.argmax(reached, axis=1).astype(float) + 1.0
    payback = np.where(reached.any(axis=1), first, np.inf)
    return UnitEconomics(clv, np.asarray(acquisition_cost, dtype=float), payback, period, currency)
