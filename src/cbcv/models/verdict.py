"""The diagnostics verdict of a fit: pass, warn or fail, with every reason named.

A fit passes only when the sampler's diagnostics were met *and* the data could support the
model. Three groups of checks, all recorded in the posterior's attributes at fit time (so a
posterior loaded from ``posterior.nc`` keeps its verdict):

* **sampling** (NUTS): r̂ ≤ :data:`RHAT_MAX`, bulk and tail ESS ≥ :data:`ESS_MIN`, no divergent
  transitions; each miss fails. A MAP fit is a point estimate with no sampling diagnostics at
  all, so it never passes: it is at best ``warn``.
* **data** (:func:`data_checks`, on the prepared arrays): fewer than :data:`MIN_CUSTOMERS`
  customers fails (one customer cannot identify a distribution across customers); fewer than
  :data:`FEW_CUSTOMERS` warns. For purchase models (x, t_x, T or x, t_x, n) no repeat buyer,
  every purchase on one day (no repeat and one common T) or T = 0 for every customer fails,
  and fewer than :data:`FEW_REPEATERS` repeat buyers warns. For gamma-gamma one mean spend
  shared by every repeat buyer fails (no spread to estimate); for contractual models no churn
  at all, or every customer churning in the same period, fails.
* **estimates** (:func:`estimate_checks`): a parameter outside ``[BOUNDARY_LOW, BOUNDARY_HIGH]``
  (on its log scale: a → 0 or ∞) fails, as does a non-finite estimate (NUTS: the posterior
  median). At a MAP estimate (a mode) the log-likelihood alone is differentiated twice on the
  sampler's (log) scale by central differences: a direction with curvature below
  :data:`FLAT_CURVATURE` (the data leave it a standard deviation above 10 on the log scale,
  i.e. unidentified) or a non-finite Hessian fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cbcv.core.jsonio import dumps_strict

Status = Literal["pass", "warn", "fail"]
_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}

#: Sampling thresholds (NUTS).
RHAT_MAX = 1.01
ESS_MIN = 400.0
#: Customers below which a fit fails, and below which it warns.
MIN_CUSTOMERS = 2
FEW_CUSTOMERS = 100
#: Repeat buyers below which a purchase model's fit warns.
FEW_REPEATERS = 20
#: A parameter estimate outside this range is at a boundary of its (log) scale.
BOUNDARY_LOW = 1e-6
BOUNDARY_HIGH = 1e8
#: Least curvature of the log-likelihood (per unit of a log parameter) an identified direction has.
FLAT_CURVATURE = 1e-2
#: Step of the finite-difference Hessian on the sampler's scale.
HESSIAN_STEP = 1e-3
#: ``idata.attrs`` key holding the data and estimate checks (a JSON list of [severity, reason]).
CHECKS_ATTR = "cbcv_checks"

Check = tuple[str, str]


@dataclass(frozen=True)
class FitVerdict:
    """A fit's verdict: ``status`` pass/warn/fail and the ``reasons`` (empty only on pass)."""

    model: str
    method: str
    status: Status
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def problems(self) -> list[str]:
        """The reasons prefixed with the model's name (the report's and the gate's wording)."""
        return [f"{self.model}: {r}" for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "ok": self.ok, "method": self.method,
                "reasons": list(self.reasons), "problems": self.problems()}


def worst(statuses: Any) -> Status:
    """The worst of some statuses (``pass`` when there are none)."""
    out: Status = "pass"
    for s in statuses:
        if _RANK.get(str(s), 2) > _RANK[out]:
            out = s if s in _RANK else "fail"
    return out


def verdict_from_checks(model: str, method: str, checks: list[Check]) -> FitVerdict:
    """The verdict of some (severity, reason) checks, severities ``warn`` or ``fail``."""
    return FitVerdict(model, method, worst(s for s, _ in checks), tuple(r for _, r in checks))


# -- sampling ------------------------------------------------------------------------------------
def sampling_checks(method: str, params: Mapping[str, Mapping[str, float | None]], divergences: int) -> list[Check]:
    """r̂, bulk/tail ESS and divergences of a NUTS fit; MAP: no sampling diagnostics (warn)."""
    if method != "nuts":
        return [("warn", f"{method.upper()} fit: a point estimate has no sampling diagnostics "
                         "(r_hat, effective sample size, divergences), so it cannot pass")]
    out: list[Check] = []
    for p, s in params.items():
        rhat, bulk, tail = s.get("r_hat"), s.get("ess_bulk"), s.get("ess_tail")
        if rhat is None or bulk is None:
            out.append(("fail", f"r_hat / ESS of {p} could not be computed"))
            continue
        if rhat > RHAT_MAX:
            out.append(("fail", f"r_hat of {p} is {rhat:.3f} (> {RHAT_MAX})"))
        if bulk < ESS_MIN:
            out.append(("fail", f"bulk ESS of {p} is {bulk:.0f} (< {ESS_MIN:.0f})"))
        if tail is not None and tail < ESS_MIN:
            out.append(("fail", f"tail ESS of {p} is {tail:.0f} (< {ESS_MIN:.0f})"))
    if divergences:
        out.append(("fail", f"{divergences} divergent transitions"))
    return out


# -- data ----------------------------------------------------------------------------------------
def data_checks(arrays: Mapping[str, np.ndarray]) -> list[Check]:
    """Whether the prepared (compressed, weighted) data can support the model at all."""
    w = np.asarray(arrays["weight"], dtype=float)
    n = float(w.sum())
    out: list[Check] = []
    if n < MIN_CUSTOMERS:
        out.append(("fail", f"{n:.0f} customer(s): at least {MIN_CUSTOMERS} are needed to estimate "
                            "how customers differ"))
    elif n < FEW_CUSTOMERS:
        out.append(("warn", f"only {n:.0f} customers (fewer than {FEW_CUSTOMERS}): the estimates rest "
                            "mostly on the priors"))
    if "t_x" in arrays:
        out += _purchase_checks(arrays, w)
    elif "mean_repeat_spend" in arrays:
        out += _spend_checks(arrays)
    elif "churned" in arrays:
        out += _churn_checks(arrays, w)
    return out


def _purchase_checks(arrays: Mapping[str, np.ndarray], w: np.ndarray) -> list[Check]:
    x = np.asarray(arrays["x"], dtype=float)
    span = np.asarray(arrays["T"] if "T" in arrays else arrays["n"], dtype=float)
    label = "T" if "T" in arrays else "n"
    repeaters = float(w[x > 0].sum())
    if np.all(span <= 0):
        return [("fail", f"{label} = 0 for every customer: nobody was observed after the first purchase")]
    if repeaters == 0 and np.ptp(span) == 0:
        return [("fail", "every purchase is on one day (no repeat purchase, one common first-purchase "
                         "date): the data say nothing about purchase or dropout rates")]
    if repeaters == 0:
        return [("fail", "no customer made a repeat purchase: the purchase and dropout rates are not "
                         "identified")]
    if repeaters < FEW_REPEATERS:
        return [("warn", f"only {repeaters:.0f} repeat buyer(s) (fewer than {FEW_REPEATERS})")]
    return []


def _spend_checks(arrays: Mapping[str, np.ndarray]) -> list[Check]:
    z = np.asarray(arrays["mean_repeat_spend"], dtype=float)
    if len(z) and np.ptp(z) == 0 and np.ptp(np.asarray(arrays["x"], dtype=float)) == 0:
        return [("fail", "every repeat buyer has the same mean spend: no spread to estimate the "
                         "spend distribution from")]
    return []


def _churn_checks(arrays: Mapping[str, np.ndarray], w: np.ndarray) -> list[Check]:
    churned = np.asarray(arrays["churned"], dtype=float) > 0
    if not churned.any():
        return [("fail", "no customer churned: the churn probability is not identified")]
    if churned.all() and np.ptp(np.asarray(arrays["t"], dtype=float)) == 0:
        return [("fail", "every customer churned in the same period: the churn distribution is not "
                         "identified")]
    return []


# -- estimates -----------------------------------------------------------------------------------
def boundary_checks(point: Mapping[str, Any]) -> list[Check]:
    """Non-finite estimates and estimates at a boundary of their log scale."""
    out: list[Check] = []
    for p, raw in point.items():
        values = np.ravel(np.asarray(raw, dtype=float))
        bad = values[~np.isfinite(values)]
        if len(bad):
            out.append(("fail", f"the estimate of {p} is not finite ({bad[0]})"))
            continue
        edge = values[(np.abs(values) < BOUNDARY_LOW) | (np.abs(values) > BOUNDARY_HIGH)]
        if len(edge):
            out.append(("fail", f"the estimate of {p} is {edge[0]:.3g}, at the boundary of its scale "
                                f"(outside {BOUNDARY_LOW:g} to {BOUNDARY_HIGH:g}): the data cannot support it"))
    return out


def hessian(f: Callable[[np.ndarray], float], x0: np.ndarray, h: float = HESSIAN_STEP) -> np.ndarray:
    """The Hessian of ``f`` at ``x0`` by central differences."""
    n = len(x0)
    H = np.empty((n, n))
    f0 = f(x0)
    e = np.eye(n) * h
    for i in range(n):
        H[i, i] = (f(x0 + e[i]) - 2 * f0 + f(x0 - e[i])) / h**2
        for j in range(i):
            H[i, j] = H[j, i] = (
                f(x0 + e[i] + e[j]) - f(x0 + e[i] - e[j]) - f(x0 - e[i] + e[j]) + f(x0 - e[i] - e[j])
            ) / (4 * h**2)
    return H


def curvature_checks(H: np.ndarray, names: list[str]) -> list[Check]:
    """A non-finite Hessian, or a direction along which the log-likelihood is (nearly) flat."""
    if not np.all(np.isfinite(H)):
        return [("fail", "the log-likelihood's Hessian at the estimate is not finite")]
    vals, vecs = np.linalg.eigh(-0.5 * (H + H.T))
    if vals[0] >= FLAT_CURVATURE:
        return []
    lead = names[int(np.argmax(np.abs(vecs[:, 0])))]
    return [("fail", f"the data do not identify the estimate: the log-likelihood is flat (curvature "
                     f"{vals[0]:.2g} < {FLAT_CURVATURE:g} on the log scale), mostly along {lead}")]


def record_checks(attrs: dict[str, Any], checks: list[Check]) -> None:
    """Keep the data and estimate checks in a posterior's attributes (JSON, netCDF-safe)."""
    attrs[CHECKS_ATTR] = dumps_strict([list(c) for c in checks], indent=None)


def recorded_checks(attrs: Mapping[str, Any]) -> list[Check]:
    """The checks :func:`record_checks` kept; a posterior without them gets a warning."""
    raw = attrs.get(CHECKS_ATTR)
    if raw is None:
        return [("warn", "no data or estimate checks recorded with this posterior (fitted by an older cbcv)")]
    return [(str(s), str(r)) for s, r in json.loads(str(raw))]


def fit_verdict(name: str, method: str, params: Mapping[str, Mapping[str, float | None]],
                divergences: int, attrs: Mapping[str, Any]) -> FitVerdict:
    """The verdict of a fit from its ``fit.json`` parameter table and its posterior's attributes."""
    return verdict_from_checks(name, method, sampling_checks(method, params, divergences) + recorded_checks(attrs))


def estimate_checks(
    model: Any, point: Mapping[str, Any], param_names: tuple[str, ...], *, curvature: bool = True
) -> list[Check]:
    """Boundary checks at ``point`` (each free variable's and parameter's value) of a PyMC
    ``model`` whose log-likelihood is the Potential ``loglike``, and with ``curvature`` (at a
    mode: a MAP fit's estimate) the log-likelihood's curvature there. A posterior median is not
    a mode, so a NUTS fit is checked for boundaries only; its spread is what r̂ and ESS judge."""
    out = boundary_checks({p: point[p] for p in param_names})
    if out or not curvature:
        return out
    keys, names, x0 = _value_point(model, point)
    if not keys:
        return []
    (loglike_graph,) = model.replace_rvs_by_values([model["loglike"]])
    fn = model.compile_fn(loglike_graph, inputs=model.value_vars, point_fn=True, on_unused_input="ignore")

    def loglike(x: np.ndarray) -> float:
        return float(fn(dict(zip(keys, x, strict=True))))

    try:
        H = hessian(loglike, x0)
    except (ValueError, FloatingPointError, ArithmeticError) as exc:
        return [("fail", f"the log-likelihood could not be evaluated near the estimate ({exc})")]
    return curvature_checks(H, names)


def _value_point(model: Any, point: Mapping[str, Any]) -> tuple[list[str], list[str], np.ndarray]:
    """The free variables' value-variable names, their own names, and their values on the
    sampler's (transformed) scale."""
    keys, names, values = [], [], []
    for rv in model.free_RVs:
        value = np.asarray(point[rv.name], dtype=float)
        if value.ndim:
            return [], [], np.empty(0)  # vector parameters: no curvature check
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            value = np.asarray(transform.forward(value, *rv.owner.inputs).eval(), dtype=float)
        keys.append(model.rvs_to_values[rv].name)
        names.append(f"log {rv.name}" if transform is not None and "log" in type(transform).__name__.lower() else rv.name)
        values.append(float(value))
    return keys, names, np.asarray(values)


def verdict_line(diagnostics: Mapping[str, Any]) -> str | None:
    """One line for a verdict that is not a pass (a fit's, or a valuation's over its fits), from
    its ``to_dict`` form; None on pass (or with no fits at all)."""
    status = str(diagnostics.get("status", "fail" if not diagnostics.get("ok", False) else "pass"))
    if status in ("pass", "none"):
        return None
    problems = [str(p) for p in diagnostics.get("problems", [])] or ["no reason recorded"]
    return f"diagnostics {status}: " + "; ".join(problems)


def combined_diagnostics(per_model: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict over several fits, from each fit's ``to_dict`` form (``fit.json``'s
    ``diagnostics``): the worst status (``none`` without fits), every problem, and per model its
    status, method and reasons. A record from before statuses existed counts as pass or fail by
    its ``ok``."""
    models = {
        str(k): {"status": str(d.get("status") or ("pass" if d.get("ok") else "fail")),
                 "method": d.get("method"), "reasons": [str(r) for r in d.get("reasons", d.get("problems", []))]}
        for k, d in per_model.items()
    }
    status: str = worst(m["status"] for m in models.values()) if models else "none"
    problems = [str(p) for k, d in per_model.items()
                for p in (d.get("problems") or [f"{k}: {r}" for r in models[str(k)]["reasons"]])]
    return {"status": status, "ok": status in ("pass", "none"), "reasons": problems, "problems": problems,
            "models": models}
