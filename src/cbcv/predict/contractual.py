"""Predictions over posterior draws for the contractual models: sBG and beta-discrete-Weibull.

Every function returns an array whose first axis is the posterior draw (see
:func:`cbcv.predict.posterior_draws`), so each prediction keeps its uncertainty; summarise it with
:func:`cbcv.predict.summarise`.

Timing (as in the papers and in the models' data forms). A customer pays at acquisition
(``t = 0``) and at each renewal; ``T`` is the period in which they churn, and ``S(t) = P(T > t)``
is the share still active after ``t`` periods, i.e. who has made ``t`` renewals. "A customer who
has made ``n`` renewals" is one with ``T > n``: a row of a survivor table at ``t = n``, or an
individual duration ``t = n`` with ``churned`` False. Discount rates ``d`` are per period (the
model's period: a month, a year), compounded once per period.

Formulas (``B`` the beta function, ``z = 1 / (1 + d)``):

* sBG — Fader & Hardie (2007), "How to Project Customer Retention", *Journal of Interactive
  Marketing* 21 (1): the survivor function ``S(t) = B(alpha, beta + t) / B(alpha, beta)`` and the
  retention rate ``r(t) = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``.
* BdW — Fader, Hardie, Liu, Davin & Steenburgh (2018), '"How to Project Customer Retention"
  Revisited', *Journal of Interactive Marketing* 43: ``S(t) = B(gamma, delta + t^c) /
  B(gamma, delta)``, ``r(t) = S(t) / S(t - 1)``. With ``c = 1`` it is the sBG.
* DERL — Fader & Hardie (2010), "Customer-Base Valuation in a Contractual Setting: The Perils of
  Ignoring Heterogeneity", *Marketing Science* 29 (1), eq. 6: standing just before the renewal
  decision of a customer who has made ``n`` renewals (the paper's "n - 1 renewals" with its ``n``
  one larger), the discounted expected number of further payments is
  ``DERL(d | n) = sum_{t > n} S(t) / S(n) * z^(t - n - 1)``; for the sBG
  ``DERL = (beta + n) / (alpha + beta + n) * 2F1(1, beta + n + 1; alpha + beta + n + 1; z)``.
  SciPy's ``hyp2f1`` returns NaN for part of the parameter space (large ``beta + n`` with ``z``
  near 1); there, and for the BdW (no closed form), the sum is evaluated by the backward
  recursion ``DERL(m) = r(m + 1) (1 + z DERL(m + 1))`` started at zero far enough out that the
  neglected tail, at most ``S(T) / S(n + 1) * z^(T - n) / (1 - z)`` relative to the result
  (``S`` decreases), is below ``tol``.
* Expected residual lifetime (undiscounted, ``d = 0``): ``sum_{t > n} S(t) / S(n)``. For the sBG
  it is ``(beta + n) / (alpha - 1)`` when ``alpha > 1`` and infinite otherwise (the mean of
  ``(1 - theta) / theta`` under ``theta ~ Beta(alpha, beta + n)``); for the BdW ``S(t)`` falls as
  ``t^(-c gamma)``, so it is infinite when ``c gamma <= 1``. ``horizon`` caps the sum at that
  many periods (always finite).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from cbcv.core.chunks import Params
from cbcv.core.errors import CbcvError
from cbcv.models import BetaDiscreteWeibullModel, CLVModel, ShiftedBetaGeoModel
from cbcv.predict.engine import MAX_BYTES, distinct_rows, posterior_draws, registered, run

#: Default relative tolerance of the truncated DERL sum (rigorous bound on the neglected tail).
DERL_TOL = 1e-10
#: Default relative tolerance of the undiscounted BdW sum's tail estimate.
LIFETIME_TOL = 1e-6

LogSurvival = Callable[[float], np.ndarray]


def per_period_rate(annual_rate: float, periods_per_year: float) -> float:
    """The per-period discount rate ``(1 + annual)^(1 / periods_per_year) - 1`` equivalent to an
    annual effective rate (e.g. 12 for monthly contracts)."""
    if periods_per_year <= 0:
        raise CbcvError(f"periods_per_year must be positive, got {periods_per_year}")
    return float(np.expm1(np.log1p(annual_rate) / periods_per_year))


def contractual_family(model: Any) -> BetaDiscreteWeibull:
    """The contractual family of ``model`` (a model, a class, a stand-in with a ``name``, or a
    name); CbcvError for any other model."""
    try:
        return registered(FAMILIES, model, "contract durations")
    except CbcvError:
        name = model if isinstance(model, str) else getattr(model, "name", model)
        raise CbcvError(f"model {name!r} is not a contractual model ({', '.join(CONTRACTUAL)})") from None


def contractual_draws(model: CLVModel, max_draws: int | None = None) -> Params:
    """Posterior draws as the BdW's ``gamma``, ``delta``, ``c`` (shape ``(draws, 1)``): the sBG's
    ``alpha``, ``beta`` become ``gamma``, ``delta`` with ``c = 1``."""
    return contractual_family(model).as_bdw(posterior_draws(model, max_draws))


def _whole(values: np.ndarray | float | list[float], name: str, minimum: int = 0) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < minimum):
        raise CbcvError(f"{name} must be whole numbers >= {minimum}, got {values!r}")
    return arr


def _check_rate(discount_rate: float) -> float:
    if not np.isfinite(discount_rate) or discount_rate <= 0:
        raise CbcvError(f"the discount rate must be positive (per period), got {discount_rate}")
    return float(discount_rate)


def _log_survival(p: Params, t: np.ndarray | float) -> np.ndarray:
    """``log S(t) = log B(gamma, delta + t^c) - log B(gamma, delta)`` (BdW; sBG with ``c = 1``)."""
    gamma, delta, c = p["gamma"], p["delta"], p["c"]
    return special.betaln(gamma, delta + np.power(t, c)) - special.betaln(gamma, delta)


# -- survival and retention -----------------------------------------------------------------------
def survival(model: CLVModel, t: np.ndarray | list[float], *, max_draws: int | None = None) -> np.ndarray:
    """``S(t)``, the share of a new cohort still active after ``t`` periods, per draw:
    shape ``(draws, len(t))`` (sBG: Fader & Hardie 2007; BdW: Fader et al. 2018;
    tests/test_predict_contractual.py::test_survival_and_retention_closed_forms)."""
    p = contractual_draws(model, max_draws)
    return np.exp(_log_survival(p, _whole(t, "t")[None, :]))


def retention_rate(model: CLVModel, t: np.ndarray | list[float], *, max_draws: int | None = None) -> np.ndarray:
    """``r(t) = S(t) / S(t - 1)`` for ``t >= 1``, the share of those active after ``t - 1``
    periods who renew once more, per draw: shape ``(draws, len(t))``. sBG:
    ``(beta + t - 1) / (alpha + beta + t - 1)`` (Fader & Hardie 2007)
    (tests/test_predict_contractual.py::test_survival_and_retention_closed_forms)."""
    family = contractual_family(model)
    p = contractual_draws(model, max_draws)
    return family.retention(p, _whole(t, "t", minimum=1)[None, :])


# -- residual sums ------------------------------------------------------------------------------
def _first_top(
    log_s: LogSurvival, n_max: int, log_tail: Callable[[int], np.ndarray], tol: float, max_terms: int
) -> tuple[int, bool]:
    """Smallest ``T = n_max + K`` (``K`` doubling from 32) at which ``log_tail(T)`` (the log of
    the neglected tail relative to ``S(n_max + 1)``) is below ``log(tol)`` for every draw; the
    flag says whether it got there before ``max_terms``."""
    start = log_s(n_max + 1.0)
    k = 32
    while True:
        top = n_max + k
        if np.all(log_s(float(top)) - start + log_tail(top) <= np.log(tol)):
            return top, True
        if k >= max_terms:
            return top, False
        k = min(2 * k, max_terms)


def _residual_sums(
    log_s: LogSurvival, n_values: np.ndarray, z: float, top: int, init: np.ndarray | float
) -> np.ndarray:
    """``R(m) = sum_{k >= 0} S(m + 1 + k) / S(m) z^k`` for the sorted distinct whole numbers
    ``n_values``, by ``R(m) = r(m + 1) (1 + z R(m + 1))`` from ``R(top) = init`` down."""
    ls_next = log_s(float(top))
    resid = np.broadcast_to(np.asarray(init, dtype=float), ls_next.shape).copy()
    out = np.empty((ls_next.shape[0], len(n_values)))
    j = len(n_values) - 1
    for m in range(top - 1, int(n_values[0]) - 1, -1):
        ls = log_s(float(m))
        resid = np.exp(ls_next - ls) * (1.0 + z * resid)
        ls_next = ls
        while j >= 0 and n_values[j] == m:
            out[:, j] = resid[:, 0]
            j -= 1
    return out


def _by_distinct(fn: Callable[[np.ndarray], np.ndarray], n: np.ndarray) -> np.ndarray:
    """Evaluate ``fn`` (sorted distinct whole numbers → ``(draws, k)``) on the distinct values of
    ``n`` (any shape ``(1, r)``) and expand back to ``(draws, r)``."""
    values, inverse = np.unique(np.asarray(n, dtype=float).ravel(), return_inverse=True)
    return fn(values)[:, inverse]


def _derl_sum(p: Params, n: np.ndarray, d: float, tol: float, max_terms: int) -> np.ndarray:
    """DERL by the truncated sum (see the module docstring); ``n`` of shape ``(1, r)``."""
    z = 1.0 / (1.0 + d)

    def log_s(t: float) -> np.ndarray:
        return _log_survival(p, t)

    def fn(values: np.ndarray) -> np.ndarray:
        top, ok = _first_top(
            log_s, int(values[-1]), lambda top: (top - values[-1]) * np.log(z) - np.log1p(-z), tol, max_terms
        )
        if not ok:
            raise CbcvError(
                f"DERL: the sum needs more than {max_terms} periods at discount rate {d}; "
                "raise max_terms or use a larger per-period rate"
            )
        return _residual_sums(log_s, values, z, top, 0.0)

    return _by_distinct(fn, n)


def derl_sbg(alpha: np.ndarray, beta: np.ndarray, n: np.ndarray, d: float | np.ndarray, tol: float,
             max_terms: int) -> np.ndarray:
    """sBG DERL in closed form (Fader & Hardie 2010, eq. 6), with the truncated sum where SciPy's
    ``hyp2f1`` fails. ``alpha``, ``beta`` of shape ``(draws, 1)``, ``n`` of shape ``(1, r)``, the
    per-period rate ``d`` one number or one per draw (``(draws, 1)``)
    (tests/test_predict_contractual.py::test_sbg_derl_reference_values_and_del_identity)."""
    z = 1.0 / (1.0 + d)
    with np.errstate(all="ignore"):
        out = (beta + n) / (alpha + beta + n) * special.hyp2f1(1.0, beta + n + 1.0, alpha + beta + n + 1.0, z)
    bad = ~np.isfinite(out)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        p = {"gamma": alpha, "delta": beta, "c": np.ones_like(alpha)}
        fallback = _derl_sum(p, n[:, cols], d, tol, max_terms)
        out[:, cols] = np.where(bad[:, cols], fallback, out[:, cols])
    return out


@dataclass(frozen=True)
class BetaDiscreteWeibull:
    """The BdW's predictions (Fader, Hardie, Liu, Davin & Steenburgh 2018): every quantity from
    ``S(t)`` by sums (module docstring); parameter draws as ``gamma``, ``delta``, ``c``."""

    name: str
    #: Whether DERL has a closed form (``method="closed"``).
    closed_derl: bool = False

    def as_bdw(self, p: Params) -> Params:
        """The family's parameter draws as the BdW's ``gamma``, ``delta``, ``c``."""
        return p

    def retention(self, p: Params, t: np.ndarray) -> np.ndarray:
        """``r(t) = S(t) / S(t - 1)``."""
        return np.exp(_log_survival(p, t) - _log_survival(p, t - 1.0))

    def derl(self, p: Params, n: np.ndarray, d: float, method: str, tol: float, max_terms: int) -> np.ndarray:
        """DERL by the truncated sum (tests/test_predict_contractual.py::test_bdw_derl_against_high_precision_sum)."""
        return _derl_sum(p, n, d, tol, max_terms)

    def lifetime(self, p: Params, n: np.ndarray, tol: float, max_terms: int) -> np.ndarray:
        """Undiscounted expected residual lifetime: the sum with its asymptotic tail
        (:func:`_lifetime_bdw`; tests/test_predict_contractual.py::test_expected_residual_lifetime)."""
        return _lifetime_bdw(p, n, tol, max_terms)


@dataclass(frozen=True)
class ShiftedBeta(BetaDiscreteWeibull):
    """The sBG (Fader & Hardie 2007), the BdW with ``c = 1``, and its closed forms."""

    closed_derl: bool = True

    def as_bdw(self, p: Params) -> Params:
        return {"gamma": p["alpha"], "delta": p["beta"], "c": np.ones_like(p["alpha"])}

    def retention(self, p: Params, t: np.ndarray) -> np.ndarray:
        """``r(t) = (beta + t - 1) / (alpha + beta + t - 1)`` (Fader & Hardie 2007)."""
        return (p["delta"] + t - 1.0) / (p["gamma"] + p["delta"] + t - 1.0)

    def derl(self, p: Params, n: np.ndarray, d: float, method: str, tol: float, max_terms: int) -> np.ndarray:
        """Closed form (:func:`derl_sbg`) unless ``method="sum"``
        (tests/test_predict_contractual.py::test_sbg_derl_reference_values_and_del_identity)."""
        if method == "sum":
            return _derl_sum(p, n, d, tol, max_terms)
        return derl_sbg(p["gamma"], p["delta"], n, d, tol, max_terms)

    def lifetime(self, p: Params, n: np.ndarray, tol: float, max_terms: int) -> np.ndarray:
        """``(beta + n) / (alpha - 1)``, infinite where ``alpha <= 1`` (module docstring)."""
        alpha, beta = p["gamma"], p["delta"]
        with np.errstate(divide="ignore"):
            return np.where(alpha > 1.0, (beta + n) / (alpha - 1.0), np.inf)


#: The contractual families by model class.
FAMILIES: dict[type[CLVModel], BetaDiscreteWeibull] = {
    ShiftedBetaGeoModel: ShiftedBeta(ShiftedBetaGeoModel.name),
    BetaDiscreteWeibullModel: BetaDiscreteWeibull(BetaDiscreteWeibullModel.name),
}
#: Names of the contractual models.
CONTRACTUAL = tuple(family.name for family in FAMILIES.values())


def _method(family: BetaDiscreteWeibull, method: str) -> str:
    if method not in ("auto", "closed", "sum"):
        raise CbcvError(f"method must be 'auto', 'closed' or 'sum', got {method!r}")
    if method == "closed" and not family.closed_derl:
        raise CbcvError(f"{family.name}: no closed-form DERL; use method='sum'")
    return method


def derl(
    model: CLVModel,
    discount_rate: float,
    renewals: np.ndarray | list[float] | float,
    *,
    max_draws: int | None = None,
    method: str = "auto",
    tol: float = DERL_TOL,
    max_terms: int = 1_000_000,
) -> np.ndarray:
    """Discounted expected residual lifetime of a customer who has made ``renewals`` renewals,
    at ``discount_rate`` per period (Fader & Hardie 2010, eq. 6), per draw: shape
    ``(draws, len(renewals))``. Multiply by the margin per period for the residual CLV.

    ``method``: "closed" (sBG only), "sum" (truncated sum, relative error below ``tol``) or
    "auto" (closed form where there is one)
    (tests/test_predict_contractual.py::test_sbg_derl_reference_values_and_del_identity)."""
    family = contractual_family(model)
    method = _method(family, method)
    d = _check_rate(discount_rate)
    n = _whole(renewals, "renewals")[None, :]
    return family.derl(contractual_draws(model, max_draws), n, d, method, tol, max_terms)


def customer_derl(
    model: CLVModel,
    data: pd.DataFrame,
    discount_rate: float,
    *,
    column: str = "t",
    max_draws: int | None = None,
    max_bytes: int = MAX_BYTES,
    method: str = "auto",
    tol: float = DERL_TOL,
) -> np.ndarray:
    """DERL per draw and customer (row of ``data``): shape ``(draws, rows)``.

    ``data[column]`` holds each active customer's renewals so far (periods survived; the
    individual-durations form's ``t``). Rows with a true ``churned`` column, if there is one,
    get 0. Customers sharing a value share the computation; chunks of distinct values keep the
    working memory near ``max_bytes``
    (tests/test_predict_contractual.py::test_customer_derl_chunks_and_churned)."""
    family = contractual_family(model)
    method = _method(family, method)
    d = _check_rate(discount_rate)
    if column not in data:
        raise CbcvError(f"customer DERL needs column {column!r} (renewals so far)")
    _whole(data[column].to_numpy(dtype=float), f"column {column!r}")
    frame = data[[column]].reset_index(drop=True)

    def fn(p: Params, rows: dict[str, np.ndarray]) -> np.ndarray:
        return family.derl(p, rows[column], d, method, tol, 1_000_000)

    rows, inverse = distinct_rows(frame, (column,))
    params = contractual_draws(model, max_draws)
    out = run(fn, model, rows, inverse, max_draws=max_draws, max_bytes=max_bytes, params=params)
    if "churned" in data:
        out[:, data["churned"].to_numpy(dtype=bool)] = 0.0
    return out


def derl_at_rates(
    family: BetaDiscreteWeibull, params: Params, renewals: np.ndarray | list[float], rates: np.ndarray, *,
    tol: float = DERL_TOL, max_terms: int = 1_000_000,
) -> np.ndarray:
    """DERL (Fader & Hardie 2010, eq. 6) with each draw at its own per-period discount rate:
    ``params`` the BdW-named draws (``gamma``, ``delta``, ``c``; ``(draws, 1)``; the sBG's
    ``alpha``, ``beta`` as ``gamma``, ``delta`` with ``c = 1``), ``rates`` ``(draws,)`` per-period
    rates (a draw of the discount rate beside each posterior draw), ``renewals`` ``(r,)``; shape
    ``(draws, r)``. The sBG by its closed form (``hyp2f1`` broadcast over the draws' ``z``), the
    truncated sum where SciPy fails and for the BdW, exactly as :func:`derl`
    (tests/test_predict_contractual.py::test_derl_at_rates_is_derl_draw_by_draw)."""
    d = np.asarray(rates, dtype=float).reshape(-1, 1)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise CbcvError("the discount rates must be positive (per period)")
    n = _whole(renewals, "renewals")[None, :]
    if not family.closed_derl:
        return _derl_sum(params, n, d, tol, max_terms)  # type: ignore[arg-type]
    return derl_sbg(params["gamma"], params["delta"], n, d, tol, max_terms)


# -- undiscounted residual lifetime ---------------------------------------------------------------
def _lifetime_horizon(p: Params, n: np.ndarray, horizon: int) -> np.ndarray:
    """``sum_{k=1}^{horizon} S(n + k) / S(n)``; ``n`` of shape ``(1, r)``."""
    base = _log_survival(p, n)
    total = np.zeros(np.broadcast_shapes(base.shape, p["gamma"].shape))
    for k in range(1, horizon + 1):
        total += np.exp(_log_survival(p, n + k) - base)
    return total


def _lifetime_bdw(p: Params, n: np.ndarray, tol: float, max_terms: int) -> np.ndarray:
    """BdW ``sum_{t > n} S(t) / S(n)`` for draws with ``c gamma > 1`` (inf elsewhere): the sum to
    ``T`` by the recursion with ``z = 1``, started from the tail's asymptotic value. For large
    ``t``, ``S(t) ∝ (delta' + t^c)^(-gamma)`` with ``delta' = delta + (gamma - 1)/2`` (the
    expansion of ``Γ(y)/Γ(y + gamma)``, relative error O(y^-2)); its integral from ``T``, expanded
    to second order in ``delta'/T^c``, with the Euler–Maclaurin terms ``-1/2 + c gamma/(12 T)``
    gives ``sum_{k >= 1} S(T + k) / S(T)``. ``T`` doubles until the tail is below ``tol`` of
    ``S(n + 1) / S(n)``, or reaches ``n + max_terms`` (the tail is then taken as estimated)."""
    gamma, delta, c = p["gamma"], p["delta"], p["c"]
    power = c * gamma
    finite = power > 1.0
    # draws with an infinite mean get harmless values here and inf at the end
    safe = {"gamma": np.where(finite, gamma, 2.0), "delta": delta, "c": np.where(finite, c, 2.0)}

    def log_s(t: float) -> np.ndarray:
        return _log_survival(safe, t)

    def tail(top: int) -> np.ndarray:
        g, c_, t = safe["gamma"], safe["c"], float(top)
        shift = delta + (g - 1.0) / 2.0
        t_c = np.power(t, c_)
        scale = t * np.power(1.0 + shift / t_c, g)
        integral = scale * (1.0 / (c_ * g - 1.0) - g * shift / (t_c * (c_ * g + c_ - 1.0)))
        return integral - 0.5 + c_ * g / (12.0 * t)

    def fn(values: np.ndarray) -> np.ndarray:
        top, _ = _first_top(log_s, int(values[-1]), lambda top: np.log(np.maximum(tail(top), 1e-300)), tol, max_terms)
        return _residual_sums(log_s, values, 1.0, top, np.maximum(tail(top), 0.0))

    out = _by_distinct(fn, n)
    return np.where(finite, out, np.inf)


def expected_residual_lifetime(
    model: CLVModel,
    renewals: np.ndarray | list[float] | float,
    *,
    horizon: int | None = None,
    max_draws: int | None = None,
    tol: float = LIFETIME_TOL,
    max_terms: int = 20_000,
) -> np.ndarray:
    """Undiscounted expected number of further renewals of a customer who has made ``renewals``
    renewals, per draw: shape ``(draws, len(renewals))``.

    Without ``horizon``: sBG ``(beta + n) / (alpha - 1)``, ``inf`` for draws with ``alpha <= 1``
    (the mean of ``(1 - theta) / theta`` under ``Beta(alpha, beta + n)`` diverges); BdW: ``inf`` where
    ``c gamma <= 1``, else the sum with an asymptotic tail estimate (see
    :func:`_lifetime_bdw`). With ``horizon``: the expected renewals within the next ``horizon``
    periods, always finite (tests/test_predict_contractual.py::test_expected_residual_lifetime)."""
    family = contractual_family(model)
    p = contractual_draws(model, max_draws)
    n = _whole(renewals, "renewals")[None, :]
    if horizon is not None:
        return _lifetime_horizon(p, n, int(_whole(horizon, "horizon", minimum=1)[0]))
    return family.lifetime(p, n, tol, max_terms)
