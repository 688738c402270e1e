"""Subscriber equity per posterior draw: today's subscribers' discounted expected residual
revenue, a new subscriber's value at acquisition, and the valuation of a subscription company
through the same bridge, sensitivities and scenarios as a transaction company
(:class:`cbcv.valuation.sensitivity.ValuationModel`).

**Existing subscribers** (Fader & Hardie 2010, "Customer-Base Valuation in a Contractual
Setting: The Perils of Ignoring Heterogeneity", Marketing Science 29(1)). A subscriber of cohort
``k`` (with its covariates) active at the valuation date after ``n`` renewals pays its price at
each renewal it makes; the next is due a fraction ``f`` of a billing period after the date. Per
posterior draw of its cohort's retention parameters and draw ``d`` of the discount rate per
billing period, its expected discounted residual revenue is ``price * z**f * DERL(d | n)``,
``z = 1 / (1 + d)``, with DERL the paper's eq. 6 (its first term, the next renewal, undiscounted;
``z**f`` moves it to its due date). Subscribers are grouped by (cohort, covariates, renewals):
a group's value is its total price per period times ``z**f`` at the group's price-weighted mean
``f`` (exact to second order in ``f log z``) times its DERL, so the work grows with the groups,
not the subscribers. Customer equity is the contribution margin times the sum.

**A new subscriber** pays at its start and at each renewal: at acquisition it is worth
``margin * price * (1 + z * DERL(d | 0))``. Its cohort is not yet observed, so its retention
parameters are those of a new cohort (:meth:`cbcv.models.cohort_retention.CohortRetentionModel.cohort_params`:
from the population under partial pooling); the value is averaged over :data:`NEW_COHORT_DRAWS`
such cohorts per posterior draw (the expectation over future cohorts, not one cohort's luck),
and over the plan/covariate mix and prices of the recent new subscribers.

**Retention shock** (``retention`` of :mod:`cbcv.valuation.sensitivity`): every cohort's mean
churn probability ``mu = alpha / (alpha + beta)`` divided by the factor, its polarisation
``1 / (alpha + beta + 1)`` kept (Fader & Hardie 2007's parametrisation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cbcv.core.discount import period_rate
from cbcv.core.errors import ConfigError
from cbcv.models.cohort_retention import CohortRetentionModel
from cbcv.predict.contractual import FAMILIES, BetaDiscreteWeibull, derl_at_rates

Params = dict[str, np.ndarray]
#: New cohorts drawn per posterior draw for a new subscriber's value.
NEW_COHORT_DRAWS = 64
#: Mean churn after a retention shock is capped below 1.
_MAX_CHURN = 1.0 - 1e-9


def _family(model: CohortRetentionModel) -> BetaDiscreteWeibull:
    return next(f for f in FAMILIES.values() if f.name == model.family)


def _bdw(model: CohortRetentionModel, p: Params) -> Params:
    """Parameter draws in the BdW's names (the sBG's with ``c = 1``)."""
    if model.family == "bdw":
        return p
    return {"gamma": p["alpha"], "delta": p["beta"], "c": np.ones_like(p["alpha"])}


def _draws(p: Params, n: int) -> Params:
    """Rows repeated or cut to ``n`` draws (a MAP fit has one)."""
    rows = np.arange(n) % next(iter(p.values())).shape[0]
    return {k: v[rows] for k, v in p.items()}


def shock_retention(p: Params, factor: float) -> Params:
    """Mean churn ``gamma / (gamma + delta)`` divided by ``factor``, ``gamma + delta`` kept
    (module docstring)."""
    if factor == 1.0:
        return p
    kappa = p["gamma"] + p["delta"]
    mu = np.minimum(p["gamma"] / kappa / float(factor), _MAX_CHURN)
    return {**p, "gamma": mu * kappa, "delta": (1.0 - mu) * kappa}


def _covariate_frame(model: CohortRetentionModel, frame: pd.DataFrame) -> pd.DataFrame | None:
    return frame[list(model.covariates)].reset_index(drop=True) if model.covariates else None


@dataclass(frozen=True)
class ExistingSubscribers:
    """Today's subscribers grouped by (cohort, covariates, renewals): ``groups`` with columns
    ``cohort``, the model's covariates, ``renewals``, ``subscribers``, ``revenue_per_period``
    (their total price per billing period) and ``next_due`` (price-weighted mean fraction of a
    period to the next renewal), and the groups' parameter draws ``(draws, groups)``."""

    groups: pd.DataFrame
    params: Params
    family: BetaDiscreteWeibull
    period: str
    _memo: dict[bytes, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, model: CohortRetentionModel, groups: pd.DataFrame, n_draws: int, *, period: str,
           seed: int = 0) -> ExistingSubscribers:
        """The groups' parameters from ``model`` (its cohorts'; a cohort it did not fit, as a new
        one); ``period``: the billing period the model counts."""
        if len(groups) == 0:
            raise ConfigError("subscriber equity: no subscriber is active at the valuation date")
        p = model.cohort_params(groups["cohort"].astype(str).tolist(), _covariate_frame(model, groups), seed=seed)
        return cls(groups.reset_index(drop=True), _draws(_bdw(model, p), n_draws), _family(model), period)

    def value_per_price(self, retention: float, annual_rates: np.ndarray) -> np.ndarray:
        """``z**f * DERL`` per draw and group at each draw's rate: ``(draws, groups)``; kept per
        (retention, rates), so the valuation, its sensitivities and the table by cohort share
        one evaluation of each."""
        key = _key(retention, annual_rates)
        if key not in self._memo:
            self._memo[key] = self._value_per_price(retention, annual_rates)
        return self._memo[key]

    def _value_per_price(self, retention: float, annual_rates: np.ndarray) -> np.ndarray:
        d = period_rate(np.asarray(annual_rates, dtype=float), self.period)
        p = shock_retention(self.params, retention)
        renewals = self.groups["renewals"].to_numpy(dtype=float)
        out = np.empty((len(d), len(self.groups)))
        # one DERL evaluation per distinct parameter column: the groups of a (cohort, covariates)
        # cell share their draws and differ in renewals only
        cells = pd.MultiIndex.from_arrays([self.groups[c].astype(str) for c in self.groups.columns
                                           if c not in ("renewals", "subscribers", "revenue_per_period", "next_due")])
        codes, _ = cells.factorize()
        for j in np.unique(codes):
            cols = np.flatnonzero(codes == j)
            pj = {k: v[:, [cols[0]]] for k, v in p.items()}
            out[:, cols] = derl_at_rates(self.family, pj, renewals[cols], d)
        due = self.groups["next_due"].to_numpy(dtype=float)[None, :]
        return out * np.exp(-np.log1p(d)[:, None] * due)

    def function(self) -> Callable[[float, np.ndarray], np.ndarray]:
        """The ``dert`` source of :class:`cbcv.valuation.sensitivity.ValuationModel`:
        ``f(retention, annual_rates)`` (its ``spend`` is ``revenue_per_period``)."""
        return self.value_per_price

    def equity_by_cohort(self, margin: np.ndarray, annual_rates: np.ndarray, interval: float = 0.9) -> pd.DataFrame:
        """Per cohort: subscribers, revenue per period and the customer equity's median, mean,
        low and high (margin times discounted residual revenue)."""
        from cbcv.core.draws import draw_stats

        value = self.value_per_price(1.0, annual_rates) * self.groups["revenue_per_period"].to_numpy()[None, :]
        value = value * np.asarray(margin, dtype=float)[:, None]
        rows = []
        for cohort, idx in self.groups.groupby("cohort", sort=True).indices.items():
            st = draw_stats(value[:, idx].sum(axis=1), interval)
            rows.append({"cohort": str(cohort), "subscribers": int(self.groups["subscribers"].iloc[idx].sum()),
                         "revenue_per_period": float(self.groups["revenue_per_period"].iloc[idx].sum()),
                         **{k: float(v) for k, v in st.items()}})
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class NewSubscriber:
    """A new subscriber's value at acquisition: ``mix`` (rows: the covariate levels of recent new
    subscribers with ``share`` and mean ``price``) and ``params`` of :data:`NEW_COHORT_DRAWS` new
    cohorts per mix row, ``(draws, rows * NEW_COHORT_DRAWS)``."""

    mix: pd.DataFrame
    params: Params
    family: BetaDiscreteWeibull
    period: str
    cohorts_per_row: int
    _memo: dict[bytes, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, model: CohortRetentionModel, mix: pd.DataFrame, n_draws: int, *, period: str, seed: int = 0,
           cohorts: int = NEW_COHORT_DRAWS) -> NewSubscriber:
        if len(mix) == 0 or not np.isclose(mix["share"].sum(), 1.0):
            raise ConfigError("new subscribers: the mix needs rows whose shares add up to 1")
        labels = [f"new cohort {i}" for i in range(cohorts)] * len(mix)
        cov = _covariate_frame(model, mix)
        rows = None if cov is None else cov.loc[np.repeat(np.arange(len(mix)), cohorts)].reset_index(drop=True)
        p = model.cohort_params(labels, rows, seed=seed)
        return cls(mix.reset_index(drop=True), _draws(_bdw(model, p), n_draws), _family(model), period, cohorts)

    @property
    def first_payment(self) -> float:
        """The mean price paid at acquisition."""
        return float(np.sum(self.mix["share"] * self.mix["price"]))

    def renewal_value(self, retention: float, annual_rates: np.ndarray) -> np.ndarray:
        """``sum_rows share * price * z * E[DERL(0)]`` per draw: the discounted expected renewal
        payments of a new subscriber, at acquisition (``(draws,)``; kept per (retention, rates))."""
        key = _key(retention, annual_rates)
        if key in self._memo:
            return self._memo[key]
        d = period_rate(np.asarray(annual_rates, dtype=float), self.period)
        p = shock_retention(self.params, retention)
        derl0 = np.column_stack([derl_at_rates(self.family, {k: v[:, [j]] for k, v in p.items()}, [0.0], d)[:, 0]
                                 for j in range(p["gamma"].shape[1])])
        per_row = derl0.reshape(len(d), len(self.mix), self.cohorts_per_row).mean(axis=2)
        weights = (self.mix["share"] * self.mix["price"]).to_numpy(dtype=float)
        self._memo[key] = (per_row @ weights) / (1.0 + d)
        return self._memo[key]

    def survival(self, periods: int) -> np.ndarray:
        """The price-weighted expected share still paying after ``t`` renewals, ``t = 0 ..
        periods - 1``, per draw (``(draws, periods)``): for the payback period."""
        from scipy import special

        t = np.arange(periods, dtype=float)[None, None, :]
        g, dl, c = (self.params[k][:, :, None] for k in ("gamma", "delta", "c"))
        s = np.exp(special.betaln(g, dl + np.power(t, c)) - special.betaln(g, dl))
        n = s.shape[0]
        per_row = s.reshape(n, len(self.mix), self.cohorts_per_row, periods).mean(axis=2)
        weights = (self.mix["share"] * self.mix["price"]).to_numpy(dtype=float)
        return np.einsum("drt,r->dt", per_row, weights) / weights.sum()


def _key(retention: float, annual_rates: np.ndarray) -> bytes:
    """A memo key of a retention factor and an array of rates."""
    return np.float64(retention).tobytes() + np.ascontiguousarray(annual_rates, dtype=float).tobytes()


def payback_periods(survival: np.ndarray, margin_per_payment: np.ndarray, acquisition_cost: np.ndarray) -> np.ndarray:
    """Billing periods until the undiscounted cumulative expected margin (``margin * price *
    sum_{t < k} S(t)``) covers the acquisition cost, per draw; ``inf`` when not within the
    periods of ``survival``."""
    cum = np.cumsum(survival * np.asarray(margin_per_payment, dtype=float)[:, None], axis=1)
    covered = cum >= np.asarray(acquisition_cost, dtype=float)[:, None]
    first = np.argmax(covered, axis=1).astype(float) + 1.0
    return np.where(covered.any(axis=1), first, np.inf)


def new_subscriber_mix(new: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """The mix of recent new subscribers: rows of the covariate levels (one row without
    covariates) with ``share`` (of subscribers) and mean ``price``, from ``new`` (one row per
    group of new subscribers: the covariates, ``subscribers``, ``revenue_per_period``)."""
    cols = list(covariates)
    grouped = new.groupby(cols, sort=True)[["subscribers", "revenue_per_period"]].sum().reset_index() if cols \
        else new[["subscribers", "revenue_per_period"]].sum().to_frame().T
    total = float(grouped["subscribers"].sum())
    if total <= 0:
        raise ConfigError("new subscribers: none in the recent periods to take their mix and prices from")
    out = grouped.assign(share=grouped["subscribers"] / total,
                         price=grouped["revenue_per_period"] / grouped["subscribers"])
    return out[[*cols, "share", "price"]].reset_index(drop=True)
