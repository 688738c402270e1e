"""Sensitivity of the value per share: elasticities, tornado data and named scenarios.

A :class:`ValuationModel` holds what is needed to recompute the whole valuation under a
*shock*: multiplicative changes to the drivers (and one additive change to the discount rate).
Every recomputation reuses the same posterior and financial draws (common random numbers), so
differences between scenarios are not Monte Carlo noise.

Shocks (:data:`SHOCKS`; 1 is neutral, 0 for ``discount_rate_shift``)
    ``retention``           every dropout/churn rate divided by this factor (1.05: 5% less
                            churn); DERT is recomputed (see below)
    ``churn``               every dropout/churn rate multiplied by this factor (``churn=x`` is
                            ``retention=1/x``)
    ``margin``              contribution margin ×
    ``spend``               expected spend per transaction × (existing and new customers)
    ``price``               a subscription's price per billing period × (existing and new
                            subscribers; the same multiplier as ``spend``, named for subscriptions)
    ``discount_rate``       annual discount rate × (DERT is recomputed)
    ``discount_rate_shift`` annual discount rate + (0.01 = one percentage point)
    ``acquisition_cost``    cost per new customer ×
    ``acquisition_volume``  new customers per period ×
    ``fixed_costs``, ``capex``  ×

Retention and the discount rate change DERT, which only the transaction model can recompute.
Give DERT (of the existing customers, ``dert``, and of a new customer at acquisition,
``new_customer_dert``) in one of three forms:

* a **function** ``f(retention, discount_rate) -> array``: ``retention`` is the factor above
  (divide the model's dropout probability/rate by it, draw by draw) and ``discount_rate`` the
  annual rate, one per draw; it returns ``(draws, customers)`` for existing customers and
  ``(draws,)`` for a new one. Any shock can then be evaluated.
* a **mapping** of precomputed draws ``{retention: array}`` or
  ``{(retention, discount_rate_multiplier): array}`` (e.g. at 0.95, 1 and 1.05): only the
  shocks whose keys are present can be evaluated.
* a plain **array**: DERT at the base retention and discount rate only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cbcv.core.config_checks import ADDITIVE, SHOCKS, shock_problem
from cbcv.core.discount import Timing
from cbcv.core.draws import draw_stats, per_draw
from cbcv.core.errors import ConfigError
from cbcv.core.units import horizon_periods
from cbcv.valuation.bridge import ValuationResult, value_bridge
from cbcv.valuation.equity import FutureEquity, Terminal, future_customer_equity
from cbcv.valuation.inputs import FinancialDraws

DertFunction = Callable[[float, np.ndarray], np.ndarray]
DertSource = DertFunction | Mapping[Any, Any] | np.ndarray

_ADDITIVE = ADDITIVE
#: Inputs of :func:`elasticities` and :func:`tornado` by default (those that cannot be
#: evaluated for a given model are skipped and listed in the result's ``attrs["skipped"]``).
DEFAULT_INPUTS: tuple[str, ...] = (
    "retention",
    "margin",
    "discount_rate",
    "acquisition_cost",
    "acquisition_volume",
)


def _neutral(name: str) -> float:
    return 0.0 if name in _ADDITIVE else 1.0


def normalise_shock(shock: Mapping[str, float] | None) -> dict[str, float]:
    """Every shock with its value (neutral where not given); unknown names raise."""
    out = {k: _neutral(k) for k in SHOCKS}
    for k, v in (shock or {}).items():
        problem = shock_problem(k, v)
        if problem:
            raise ConfigError(problem if k not in SHOCKS else f"sensitivity input {k}: {problem}")
        out[k] = float(v)
    return out


def _key(x: float) -> float:
    return round(float(x), 10)


@dataclass(frozen=True)
class ValuationModel:
    """Everything needed to recompute the valuation under a shock.

    Parameters
    ----------
    financials
        Financial draws (:func:`cbcv.valuation.inputs.draw_financials`).
    dert, spend
        Existing customers: DERT (a function, mapping or ``(draws, customers)`` array; see the
        module docstring) and expected spend per transaction (scalar, ``(customers,)`` or
        ``(draws, customers)``).
    acquisitions
        ``(draws, periods)`` new customers per future period (``None``: no future customers).
        The first ``horizon_periods(financials.horizon_years, acquisition_unit)`` are used.
    new_customer_dert, new_customer_spend, new_customer_first_spend
        A new customer's discounted expected repeat transactions from acquisition (``(draws,)``,
        or a function / mapping), its expected spend per repeat transaction and the expected
        spend of its first purchase (scalars or ``(draws,)``). CLV at acquisition =
        margin × (first spend + spend × DERT) (:mod:`cbcv.valuation.drivers`).
    acquisition_unit, timing, terminal, terminal_growth
        Passed to :func:`cbcv.valuation.equity.future_customer_equity`.
    bridge_options
        Keyword arguments of :func:`cbcv.valuation.bridge.value_bridge` (cost_unit,
        cost_horizon, cost_growth, capex_deductible).
    """

    financials: FinancialDraws
    dert: DertSource
    spend: Any
    acquisitions: Any = None
    new_customer_dert: DertSource | None = None
    new_customer_spend: Any = 0.0
    new_customer_first_spend: Any = 0.0
    acquisition_unit: str = "quarter"
    timing: Timing = "mid"
    terminal: Terminal = "none"
    terminal_growth: float = 0.0
    bridge_options: Mapping[str, Any] = field(default_factory=dict)
    currency: str | None = None
    interval: float = 0.9
    _cache: dict[Any, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.acquisitions is not None and self.new_customer_dert is None:
            raise ConfigError("valuation: acquisitions were given without new_customer_dert")

    @property
    def n_draws(self) -> int:
        return self.financials.n_draws

    # -- DERT ---------------------------------------------------------------------------------
    @staticmethod
    def _lookup(source: DertSource, retention: float, rate_mult: float, rate_shift: float) -> Any:
        """The precomputed draws for a shock, or ``None`` if ``source`` does not hold them."""
        if callable(source):
            return None
        base_rate = np.isclose(rate_mult, 1.0) and rate_shift == 0.0
        if isinstance(source, Mapping):
            if rate_shift != 0.0:
                return None
            for k, v in source.items():
                m, d = (k, 1.0) if np.ndim(k) == 0 else tuple(k)
                if np.isclose(m, retention, rtol=0, atol=1e-9) and np.isclose(d, rate_mult, rtol=0, atol=1e-9):
                    return v
            return None
        return source if np.isclose(retention, 1.0) and base_rate else None

    def can_evaluate(self, shock: Mapping[str, float] | None = None) -> bool:
        """Whether the DERT sources cover this shock."""
        s = normalise_shock(shock)
        m = s["retention"] / s["churn"]
        sources = [self.dert] + ([self.new_customer_dert] if self.acquisitions is not None else [])
        return all(
            callable(src) or self._lookup(src, m, s["discount_rate"], s["discount_rate_shift"]) is not None
            for src in sources
        )

    def _dert(self, which: str, source: DertSource, m: float, d: float, shift: float, rate: np.ndarray) -> np.ndarray:
        if callable(source):
            return np.asarray(source(m, rate), dtype=float)
        found = self._lookup(source, m, d, shift)
        if found is None:
            raise ConfigError(
                f"valuation: no DERT for {which} at retention x{m:g}, discount rate x{d:g}"
                + (f" {shift:+g}" if shift else "")
                + "; give DERT as a function of (retention, discount_rate) or precompute it for this shock"
            )
        return np.asarray(found, dtype=float)

    def _existing_revenue_value(self, m: float, d: float, shift: float, rate: np.ndarray) -> np.ndarray:
        """Per draw, ``sum_i spend_i * DERT_i`` (the existing customers' discounted revenue)."""
        key = ("existing", _key(m), _key(d), _key(shift))
        if key not in self._cache:
            dert = self._dert("existing customers", self.dert, m, d, shift, rate)
            if dert.ndim != 2 or dert.shape[0] != self.n_draws:
                raise ValueError(f"dert: expected ({self.n_draws}, customers) draws, got shape {dert.shape}")
            spend = np.asarray(self.spend, dtype=float)
            if spend.ndim == 2:
                value = np.einsum("dc,dc->d", spend, dert)
            elif spend.ndim == 1:
                value = dert @ spend
            else:
                value = dert.sum(axis=1) * float(spend)
            self._cache[key] = value
        return self._cache[key]

    def _new_dert(self, m: float, d: float, shift: float, rate: np.ndarray) -> np.ndarray:
        key = ("new", _key(m), _key(d), _key(shift))
        if key not in self._cache:
            assert self.new_customer_dert is not None
            dert = self._dert("a new customer", self.new_customer_dert, m, d, shift, rate)
            self._cache[key] = per_draw(dert, self.n_draws, "new_customer_dert")
        return self._cache[key]

    def _shocked(self, shock: Mapping[str, float] | None) -> tuple[dict[str, float], FinancialDraws]:
        """The shock with every input, and the financial draws under it."""
        s = normalise_shock(shock)
        fin = self.financials
        return s, fin.replace(
            contribution_margin=fin.contribution_margin * s["margin"],
            discount_rate=fin.discount_rate * s["discount_rate"] + s["discount_rate_shift"],
            acquisition_cost=fin.acquisition_cost * s["acquisition_cost"],
            fixed_costs=fin.fixed_costs * s["fixed_costs"],
            capex=fin.capex * s["capex"],
        )

    def _future(self, s: Mapping[str, float], fin: FinancialDraws) -> FutureEquity | None:
        """The future customers' equity under the shock ``s`` (None without acquisitions)."""
        if self.acquisitions is None:
            return None
        m, d, shift, rate = s["retention"] / s["churn"], s["discount_rate"], s["discount_rate_shift"], fin.discount_rate
        n_per = horizon_periods(fin.horizon_years, self.acquisition_unit)
        acq = np.asarray(self.acquisitions, dtype=float)
        if acq.ndim != 2 or acq.shape[0] != self.n_draws:
            raise ValueError(f"acquisitions: expected ({self.n_draws}, periods), got shape {acq.shape}")
        if acq.shape[1] < n_per:
            raise ConfigError(
                f"valuation: the horizon of {fin.horizon_years:g} years needs {n_per} "
                f"{self.acquisition_unit}s of acquisitions; {acq.shape[1]} were forecast"
            )
        spend_new = per_draw(self.new_customer_spend, self.n_draws, "new_customer_spend")
        first = per_draw(self.new_customer_first_spend, self.n_draws, "new_customer_first_spend")
        clv = fin.contribution_margin * s["spend"] * s["price"] * (first + spend_new * self._new_dert(m, d, shift, rate))
        return future_customer_equity(
            acq[:, :n_per] * s["acquisition_volume"],
            clv[:, None],
            fin.acquisition_cost[:, None],
            rate,
            unit=self.acquisition_unit,
            timing=self.timing,
            terminal=self.terminal,
            terminal_growth=self.terminal_growth,
            interval=self.interval,
        )

    def future_equity(self, shock: Mapping[str, float] | None = None) -> FutureEquity | None:
        """The future customers' equity (by period, with its parts) under ``shock``: the
        ``future_customer_equity`` line of :meth:`evaluate`; None without acquisitions."""
        s, fin = self._shocked(shock)
        return self._future(s, fin)

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, shock: Mapping[str, float] | None = None, **shocks: float) -> ValuationResult:
        """The valuation under ``shock`` (a mapping, or keyword arguments), e.g.
        ``model.evaluate(retention=1.05)``; no shock gives the base valuation."""
        s, fin = self._shocked({**(shock or {}), **shocks})
        m, d, shift = s["retention"] / s["churn"], s["discount_rate"], s["discount_rate_shift"]
        existing = fin.contribution_margin * s["spend"] * s["price"] * self._existing_revenue_value(
            m, d, shift, fin.discount_rate)
        return value_bridge(
            existing,
            self._future(s, fin),
            fin,
            timing=self.timing,
            currency=self.currency,
            interval=self.interval,
            **dict(self.bridge_options),
        )


# --------------------------------------------------------------------------------------------
# Elasticities, tornado, scenarios
# --------------------------------------------------------------------------------------------
def _inputs(model: ValuationModel, inputs: Iterable[str] | None, probe: float) -> tuple[list[str], list[str]]:
    """The inputs to vary, and the default ones skipped because the model cannot evaluate them."""
    if inputs is not None:
        chosen = list(inputs)
        normalise_shock({k: _neutral(k) for k in chosen})
        return chosen, []
    chosen, skipped = [], []
    for name in DEFAULT_INPUTS:
        if name.startswith("acquisition") and model.acquisitions is None or not all(model.can_evaluate({name: v}) for v in (1 - probe, 1 + probe)):
            skipped.append(name)
        else:
            chosen.append(name)
    return chosen, skipped


def elasticities(
    model: ValuationModel,
    inputs: Iterable[str] | None = None,
    *,
    step: float = 0.05,
    interval: float = 0.9,
) -> pd.DataFrame:
    """Finite-difference elasticities of the value per share to each input.

    Each input is moved to ``1 - step`` and ``1 + step`` times its value (all draws at once).

    * ``elasticity``: of the posterior median value per share,
      ``(med V(1+h) - med V(1-h)) / (2 h med V(1))`` (central difference; exact when the value
      is linear in the input);
    * ``change_per_pct_*``: the full-draw change, i.e. per draw the change of value per share
      for a +1% change of the input, ``(V_d(1+h) - V_d(1-h)) / (2h) / 100``, summarised by its
      median and ``interval``.

    ``retention``'s elasticity is with respect to the retention factor (churn divided by it).
    """
    if not 0 < step < 1:
        raise ValueError("step must be in (0, 1)")
    names, skipped = _inputs(model, inputs, step)
    base = model.evaluate().value_per_share
    med_base = float(np.median(base))
    rows = []
    for name in names:
        if name in _ADDITIVE:
            raise ConfigError(f"{name} is additive; vary discount_rate for an elasticity")
        lo = model.evaluate({name: 1 - step}).value_per_share
        hi = model.evaluate({name: 1 + step}).value_per_share
        med_lo, med_hi = float(np.median(lo)), float(np.median(hi))
        per_pct = (hi - lo) / (2 * step) / 100
        st = draw_stats(per_pct, interval)
        rows.append(
            {
                "input": name,
                "step": step,
                "value_base": med_base,
                "value_low": med_lo,
                "value_high": med_hi,
                "elasticity": (med_hi - med_lo) / (2 * step * med_base) if med_base != 0 else np.nan,
                "change_per_pct_median": float(st["median"]),
                "change_per_pct_low": float(st["low"]),
                "change_per_pct_high": float(st["high"]),
            }
        )
    out = pd.DataFrame(rows).set_index("input") if rows else pd.DataFrame()
    out.attrs["skipped"] = skipped
    out.attrs["interval"] = interval
    return out


def tornado(
    model: ValuationModel,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    *,
    step: float = 0.1,
    statistic: str = "median",
) -> pd.DataFrame:
    """Value per share with each input at a low and a high setting, the others at base.

    ``ranges`` maps inputs to their (low, high) shock values (factors; an amount for
    ``discount_rate_shift``); by default each of :data:`DEFAULT_INPUTS` the model can evaluate
    at ``(1 - step, 1 + step)``. Returns one row per input, largest ``swing`` first: ``low``,
    ``high`` (the settings), ``value_low``, ``value_high`` (the ``statistic``, median or mean,
    of the value per share), ``base``, ``swing`` (``|value_high - value_low|``).
    """
    if statistic not in ("median", "mean"):
        raise ValueError("statistic must be median or mean")
    stat = np.median if statistic == "median" else np.mean
    skipped: list[str] = []
    if ranges is None:
        names, skipped = _inputs(model, None, step)
        ranges = {n: (1 - step, 1 + step) for n in names}
    base = float(stat(model.evaluate().value_per_share))
    rows = []
    for name, (low, high) in ranges.items():
        v_lo = float(stat(model.evaluate({name: low}).value_per_share))
        v_hi = float(stat(model.evaluate({name: high}).value_per_share))
        rows.append(
            {"input": name, "low": low, "high": high, "value_low": v_lo, "value_high": v_hi,
             "base": base, "swing": abs(v_hi - v_lo)}
        )
    out = pd.DataFrame(rows, columns=["input", "low", "high", "value_low", "value_high", "base", "swing"])
    out = out.sort_values("swing", ascending=False, kind="stable").set_index("input")
    out.attrs["skipped"] = skipped
    out.attrs["statistic"] = statistic
    return out


def scenarios(
    model: ValuationModel,
    named: Mapping[str, Mapping[str, float]],
    *,
    interval: float = 0.9,
    include_base: bool = True,
) -> pd.DataFrame:
    """Value per share under named scenarios, e.g.
    ``{"retention +5%": {"retention": 1.05}, "CAC +20%": {"acquisition_cost": 1.2}}``.

    One row per scenario (``base`` first): ``median``, ``mean``, ``low``, ``high`` (the
    ``interval``), ``change`` and ``change_pct`` of the median against the base, and
    ``prob_above_price`` (NaN without a market price).
    """
    base = model.evaluate()
    runs: dict[str, ValuationResult] = {"base": base} if include_base else {}
    for name, shock in named.items():
        runs[str(name)] = model.evaluate(shock)
    med_base = float(np.median(base.value_per_share))
    rows = []
    for name, res in runs.items():
        st = {k: float(v) for k, v in draw_stats(res.value_per_share, interval).items()}
        p = res.prob_above()
        rows.append(
            {
                "scenario": name,
                **st,
                "change": st["median"] - med_base,
                "change_pct": (st["median"] - med_base) / abs(med_base) if med_base != 0 else np.nan,
                "prob_above_price": np.nan if p is None else p,
            }
        )
    out = pd.DataFrame(rows).set_index("scenario")
    out.attrs["interval"] = interval
    return out
