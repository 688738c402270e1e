"""BG/BB predictions over posterior draws: P(alive), conditional and population expected
transactions, DERT.

Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-Base Analysis in a Discrete-Time
Noncontractual Setting", *Marketing Science* 29 (6), 1086-1108.

Data as for :class:`cbcv.models.bgbb.BetaGeoBetaBinomModel`: columns ``x`` (repeat
transactions), ``t_x`` (opportunity of the last one, 0 when ``x = 0``) and ``n`` (opportunities
observed). Each function returns ``(draws, rows)``: one column per row of the frame (with an
aggregated frame, a row's prediction applies to each of its ``count`` customers). Rows sharing
``(x, t_x, n)`` share the computation, done in chunks as in :mod:`cbcv.predict`.

Formulas (``B`` the beta function; ``L`` the likelihood of ``(x, t_x, n)``, see
:mod:`cbcv.models.bgbb`, evaluated here on the log scale over the ``n - t_x + 1`` terms;
``z = 1 / (1 + d)`` with ``d`` the discount rate per opportunity):

* P(alive at opportunity ``n + 1``) (the paper's eq. 11)
  ``= B(alpha + x, beta + n - x) / B(alpha, beta) * B(gamma, delta + n + 1) / B(gamma, delta) / L``.
* Expected transactions in the next ``n*`` opportunities (eq. 13)
  ``= B(alpha + x + 1, beta + n - x) / B(alpha, beta) / L * sum_{k=1}^{n*} B(gamma, delta + n + k) / B(gamma, delta)``
  with the sum in closed form
  ``delta / (gamma - 1) * Γ(gamma + delta) / Γ(1 + delta) * [Γ(1 + delta + n) / Γ(gamma + delta + n) - Γ(1 + delta + n + n*) / Γ(gamma + delta + n + n*)]``
  (near ``gamma = 1`` by its Taylor series in ``gamma - 1``, whose limit at ``gamma = 1`` is
  ``delta [ψ(1 + delta + n + n*) - ψ(1 + delta + n)]``).
* Population: ``E[X(n)] = alpha / (alpha + beta) * sum_{t=1}^{n} B(gamma, delta + t) / B(gamma, delta)``
  (the same sum from 0).
* DERT ``= sum_{k >= 1} z^k E[transaction at n + k | x, t_x, n]``
  ``= B(alpha + x + 1, beta + n - x) / B(alpha, beta) * B(gamma, delta + n + 1) / B(gamma, delta) * z * 2F1(1, delta + n + 1; gamma + delta + n + 1; z) / L``
  (the paper's DERT). The dropout process is an sBG in ``(gamma, delta)``, so
  ``B(gamma, delta + n + 1) / B(gamma, delta + n) * 2F1(...)`` is the sBG's DERL after ``n``
  renewals: it is taken from :func:`cbcv.predict.contractual` (closed form, with the truncated
  sum where SciPy's ``hyp2f1`` fails).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from cbcv.core.chunks import Params
from cbcv.core.errors import CbcvError
from cbcv.models import BetaGeoBetaBinomModel, CLVModel
from cbcv.models.bgbb import BGBB_COLUMNS
from cbcv.predict.contractual import DERL_TOL, derl_sbg
from cbcv.predict.covariates import covariate_groups
from cbcv.predict.engine import (
    MAX_BYTES,
    Kernel,
    Rows,
    distinct_rows,
    model_class,
    posterior_draws,
    run,
)


def _bgbb(model: CLVModel) -> None:
    cls = model_class(model)
    if cls is None or not issubclass(cls, BetaGeoBetaBinomModel):
        raise CbcvError(f"model {getattr(model, 'name', model)!r} is not the BG/BB model")


def _run(fn: Kernel, model: CLVModel, data: pd.DataFrame, max_draws: int | None, max_bytes: int) -> np.ndarray:
    """``fn`` over the model's draws and the distinct checked rows of ``data``."""
    _bgbb(model)
    rows, inverse = _check_rows(data)
    return run(fn, model, rows, inverse, max_draws=max_draws, max_bytes=max_bytes)


def _check_rows(data: pd.DataFrame) -> tuple[Rows, np.ndarray]:
    missing = [c for c in BGBB_COLUMNS if c not in data]
    if missing:
        raise CbcvError(f"BG/BB predictions need columns {list(BGBB_COLUMNS)}; missing {missing}")
    frame = data[list(BGBB_COLUMNS)].reset_index(drop=True)
    x, t_x, n = (frame[c].to_numpy(dtype=float) for c in BGBB_COLUMNS)
    if not (np.all(x >= 0) and np.all(x <= t_x) and np.all(t_x <= n)) or np.any(np.mod(frame.to_numpy(dtype=float), 1) != 0):
        raise CbcvError("BG/BB predictions need whole numbers with 0 <= x <= t_x <= n")
    return distinct_rows(frame, BGBB_COLUMNS)


def _log_lik(p: Params, d: Rows) -> np.ndarray:
    """log L(alpha, beta, gamma, delta | x, t_x, n) per (draw, row), as a log-sum-exp of the
    "alive throughout" term and the ``n - t_x`` dropout terms."""
    a, b, g, dl = p["alpha"], p["beta"], p["gamma"], p["delta"]
    x, t_x, n = d["x"], d["t_x"], d["n"]
    base = special.betaln(a, b) + special.betaln(g, dl)
    total = special.betaln(a + x, b + n - x) + special.betaln(g, dl + n) - base
    gap = n - t_x
    for i in range(int(gap.max(initial=0))):
        term = special.betaln(a + x, b + t_x - x + i) + special.betaln(g + 1.0, dl + t_x + i) - base
        total = np.where(i < gap, np.logaddexp(total, term), total)
    return total


def _log_alive_part(p: Params, d: Rows) -> np.ndarray:
    """log [B(alpha + x, beta + n - x) / B(alpha, beta) * B(gamma, delta + n + 1) / B(gamma, delta)]."""
    a, b, g, dl = p["alpha"], p["beta"], p["gamma"], p["delta"]
    x, n = d["x"], d["n"]
    return special.betaln(a + x, b + n - x) - special.betaln(a, b) + special.betaln(g, dl + n + 1.0) - special.betaln(g, dl)


def p_alive_rows(p: Params, d: Rows) -> np.ndarray:
    """P(alive at opportunity ``n + 1``) per draw and distinct row (Fader, Hardie & Shang 2010,
    eq. 11; tests/test_predict_bgbb.py::test_published_p_alive_table_6)."""
    return np.exp(_log_alive_part(p, d) - _log_lik(p, d))


@covariate_groups
def p_alive(model: CLVModel, data: pd.DataFrame, *, max_draws: int | None = None, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """P(alive at opportunity ``n + 1`` | x, t_x, n) (Fader, Hardie & Shang 2010, eq. 11) per
    draw and row (tests/test_predict_bgbb.py::test_published_p_alive_table_6)."""
    return _run(p_alive_rows, model, data, max_draws, max_bytes)


#: Below this |gamma - 1| the dropout sum uses its Taylor series in gamma - 1 (the closed form
#: divides a difference of log-gamma values by gamma - 1 and would lose digits).
_NEAR_ONE = 1e-3


def _dropout_sum(g: np.ndarray, dl: np.ndarray, n: np.ndarray, n_star: np.ndarray | float) -> np.ndarray:
    """``sum_{k=1}^{n*} B(gamma, delta + n + k) / B(gamma, delta)`` in closed form (module
    docstring). Near ``gamma = 1``, with ``h = gamma - 1`` and ``f(s) = log Γ(s + delta + n + n*) -
    log Γ(s + delta + n)``, the bracket over ``h`` is ``Γ(1 + delta + n) / Γ(gamma + delta + n)
    * Q * exprel(-h Q)`` with ``Q = (f(gamma) - f(1)) / h = sum_k h^(k-1) / k! f^(k)(1)``
    (polygamma differences, five terms); at ``h = 0`` this is the digamma limit."""
    u1 = special.gammaln(1.0 + dl + n) - special.gammaln(g + dl + n)
    lead = dl * np.exp(special.gammaln(g + dl) - special.gammaln(1.0 + dl) + u1)
    h = g - 1.0
    near = np.abs(h) < _NEAR_ONE
    h_safe = np.where(near, 1.0, h)
    u2 = special.gammaln(1.0 + dl + n + n_star) - special.gammaln(g + dl + n + n_star)
    general = lead / h_safe * -np.expm1(u2 - u1)
    h_near = np.where(near, h, 0.0)
    q = np.zeros(np.broadcast_shapes(np.shape(u1), np.shape(u2)))
    for k in range(1, 6):
        diff = special.polygamma(k - 1, 1.0 + dl + n + n_star) - special.polygamma(k - 1, 1.0 + dl + n)
        q = q + h_near ** (k - 1) / special.factorial(k) * diff
    series = lead * q * special.exprel(-h_near * q)
    return np.where(near, series, general)


def _log_buy_part(p: Params, d: Rows) -> np.ndarray:
    """log [B(alpha + x + 1, beta + n - x) / B(alpha, beta) / L]."""
    a, b = p["alpha"], p["beta"]
    x, n = d["x"], d["n"]
    return special.betaln(a + x + 1.0, b + n - x) - special.betaln(a, b) - _log_lik(p, d)


@covariate_groups
def expected_transactions(
    model: CLVModel, n_star: int, data: pd.DataFrame, *, max_draws: int | None = None, max_bytes: int = MAX_BYTES
) -> np.ndarray:
    """E[transactions in opportunities ``n + 1 .. n + n_star`` | x, t_x, n] (Fader, Hardie &
    Shang 2010, eq. 13) per draw and row
    (tests/test_predict_bgbb.py::test_hardie_sheet_conditional_expectation_total)."""
    if n_star < 0 or n_star != int(n_star):
        raise CbcvError(f"n_star must be a whole number >= 0, got {n_star}")

    def fn(p: Params, d: Rows) -> np.ndarray:
        return np.exp(_log_buy_part(p, d)) * _dropout_sum(p["gamma"], p["delta"], d["n"], float(n_star))

    return _run(fn, model, data, max_draws, max_bytes)


def expected_transactions_population(
    model: CLVModel, n: np.ndarray | list[float], *, max_draws: int | None = None
) -> np.ndarray:
    """E[X(n)], the expected repeat transactions of a new customer in their first ``n``
    opportunities, per draw: shape ``(draws, len(n))`` (Fader, Hardie & Shang 2010, section on
    the model's aggregate expectations; tests/test_predict_bgbb.py::test_population_expectation_and_dert_against_sums)."""
    _bgbb(model)
    n = np.atleast_1d(np.asarray(n, dtype=float))[None, :]
    if np.any(n < 0) or np.any(n != np.round(n)):
        raise CbcvError(f"n must be whole numbers >= 0, got {n.ravel().tolist()}")
    p = posterior_draws(model, max_draws)
    return p["alpha"] / (p["alpha"] + p["beta"]) * _dropout_sum(p["gamma"], p["delta"], 0.0, n)


@covariate_groups
def dert(
    model: CLVModel, data: pd.DataFrame, *, discount_rate: float, max_draws: int | None = None,
    max_bytes: int = MAX_BYTES, tol: float = DERL_TOL,
) -> np.ndarray:
    """Discounted expected residual transactions at ``discount_rate`` per opportunity (the
    transaction at ``n + 1`` discounted once) per draw and row; see the module docstring
    (Fader, Hardie & Shang 2010, their DERT expression;
    tests/test_predict_bgbb.py::test_population_expectation_and_dert_against_sums)."""
    if not np.isfinite(discount_rate) or discount_rate <= 0:
        raise CbcvError(f"DERT needs a positive discount rate per opportunity, got {discount_rate}")
    z = 1.0 / (1.0 + discount_rate)

    def fn(p: Params, d: Rows) -> np.ndarray:
        g, dl, n = p["gamma"], p["delta"], d["n"]
        log_surv = special.betaln(g, dl + n) - special.betaln(g, dl)
        derl = derl_sbg(g, dl, n, discount_rate, tol, 1_000_000)
        return np.exp(_log_buy_part(p, d) + log_surv) * z * derl

    return _run(fn, model, data, max_draws, max_bytes)
