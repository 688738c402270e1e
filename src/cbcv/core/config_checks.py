"""Checks of a company config's meaning, run when it is loaded, before any data is read.

The schema (:mod:`cbcv.config`) checks types; these check that the financial inputs make sense:

* every rate is a fraction in its range (:data:`VALID`): a margin of ``30`` or a discount rate of
  ``10`` is an error that says to write ``0.3`` / ``0.1``;
* every distribution has valid parameters and at most :data:`MAX_MASS_OUTSIDE` (0.1%) of its
  probability outside its input's valid range; the draws are then kept inside the range (the
  few outside are drawn again: :func:`cbcv.valuation.inputs.draw_financials`);
* the terminal growth is below the discount rate (in every draw), and so is the cost growth when
  costs run in perpetuity (a Gordon terminal value);
* every scenario names known inputs (:data:`SHOCKS`) with valid factors.

Each problem is one line ``field.path: what is wrong (what was expected)``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Largest share of a distribution's probability allowed outside its input's valid range.
MAX_MASS_OUTSIDE = 0.001

#: The shocks a valuation can be recomputed under (named scenarios, tornado), and what each does.
SHOCKS: dict[str, str] = {
    "retention": "dropout/churn rates divided by this factor (DERT recomputed)",
    "churn": "dropout/churn rates multiplied by this factor",
    "margin": "contribution margin multiplied",
    "spend": "expected spend per transaction multiplied",
    "price": "price per billing period multiplied (a subscription company's existing and new subscribers)",
    "discount_rate": "annual discount rate multiplied (DERT recomputed)",
    "discount_rate_shift": "annual discount rate plus this amount",
    "acquisition_cost": "cost per new customer multiplied",
    "acquisition_volume": "new customers per period multiplied",
    "fixed_costs": "fixed operating costs multiplied",
    "capex": "capital expenditure multiplied",
}
#: Shocks that add an amount (neutral 0) rather than multiply (neutral 1).
ADDITIVE = frozenset({"discount_rate_shift"})

_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # dist: (required, optional)
    "normal": (("mean", "sd"), ("low", "high")),
    "lognormal": (("mean", "sd"), ()),
    "uniform": (("low", "high"), ()),
    "triangular": (("low", "mode", "high"), ()),
    "beta": (("alpha", "beta"), ("low", "high")),
}
_ALL_PARAMS = ("mean", "sd", "low", "high", "mode", "alpha", "beta")


@dataclass(frozen=True)
class Range:
    """The valid values of an input: ``low < x`` (or ``<=``) and ``x < high`` (or ``<=``)."""

    low: float
    high: float
    what: str
    low_open: bool = False
    high_open: bool = True
    fraction: bool = False

    def contains(self, x: Any) -> Any:
        """Whether ``x`` (a number, or elementwise an array) lies in the range."""
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above & below

    def describe(self) -> str:
        lo = None if self.low == -math.inf else f"{self.low:g} {'<' if self.low_open else '<='} x"
        hi = None if self.high == math.inf else f"x {'<' if self.high_open else '<='} {self.high:g}"
        if lo and hi:
            return lo + hi[1:]
        if lo:
            return f"x {'>' if self.low_open else '>='} {self.low:g}"
        return hi or "any finite number"


_MONEY = math.inf
#: The valid range of each number-or-distribution financial input.
VALID: dict[str, Range] = {
    "contribution_margin": Range(0.0, 1.0, "a contribution margin, a fraction of revenue", True, False, True),
    "discount_rate": Range(0.0, 1.0, "an annual discount rate, a fraction", True, True, True),
    "acquisition_cost": Range(0.0, _MONEY, "a cost per new customer"),
    "fixed_costs": Range(0.0, _MONEY, "fixed costs per year"),
    "capex": Range(0.0, _MONEY, "capital expenditure per year"),
    "tax_rate": Range(0.0, 1.0, "a tax rate, a fraction", False, True, True),
    "net_debt": Range(-_MONEY, _MONEY, "net debt (negative for net cash)", True, True),
    "non_operating_assets": Range(0.0, _MONEY, "non-operating assets"),
}


# --------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------
def distribution_problem(dist: Any) -> str | None:
    """What is wrong with a distribution's parameters, or ``None``."""
    required, optional = _PARAMS[dist.dist]
    given = {k for k in _ALL_PARAMS if getattr(dist, k) is not None}
    extra = sorted(given - set(required) - set(optional))
    if extra:
        return (f"a {dist.dist} distribution does not use {', '.join(extra)} "
                f"(it takes {', '.join(required + optional)})")
    if dist.dist == "lognormal" and dist.mean <= 0:
        return "a lognormal distribution needs a positive mean"
    if dist.dist == "triangular" and not dist.low <= dist.mode <= dist.high:
        return "a triangular distribution needs low <= mode <= high"
    if dist.dist == "beta" and (dist.alpha <= 0 or dist.beta <= 0):
        return "a beta distribution needs positive alpha and beta"
    if dist.low is not None and dist.high is not None and dist.low >= dist.high:
        return "low must be below high"
    if dist.dist == "normal" and _normal_mass(dist, dist.low, dist.high) < 1e-12:
        return "the truncation range holds no probability mass"
    return None


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _normal_mass(dist: Any, a: float | None, b: float | None) -> float:
    """Untruncated normal probability of ``[a, b]`` (``None``: unbounded)."""
    lo = 0.0 if a is None else _phi((a - dist.mean) / dist.sd)
    hi = 1.0 if b is None else _phi((b - dist.mean) / dist.sd)
    return max(hi - lo, 0.0)


def cdf(dist: Any, x: float) -> float:
    """P(X <= x) of a distribution as :mod:`cbcv.valuation.inputs` draws it (truncation and
    rescaling by ``low``/``high`` included)."""
    kind = dist.dist
    if kind == "normal":
        if (dist.low is not None and x <= dist.low) or x == -math.inf:
            return 0.0
        if (dist.high is not None and x >= dist.high) or x == math.inf:
            return 1.0
        return _normal_mass(dist, dist.low, x) / _normal_mass(dist, dist.low, dist.high)
    if kind == "lognormal":
        if x <= 0:
            return 0.0
        if math.isinf(x):
            return 1.0
        s2 = math.log1p((dist.sd / dist.mean) ** 2)
        return _phi((math.log(x) - (math.log(dist.mean) - s2 / 2)) / math.sqrt(s2))
    low = dist.low if dist.low is not None else 0.0
    high = dist.high if dist.high is not None else 1.0
    u = min(max((x - low) / (high - low), 0.0), 1.0) if not math.isinf(x) else float(x > 0)
    if kind == "uniform":
        return u
    if kind == "triangular":
        c = (dist.mode - low) / (high - low)
        if u <= c:
            return u * u / c if c > 0 else 0.0
        return 1.0 - (1.0 - u) ** 2 / (1.0 - c)
    from scipy.special import betainc

    return float(betainc(dist.alpha, dist.beta, u))


def mass_outside(dist: Any, valid: Range) -> tuple[float, float]:
    """Probability below and above the valid range."""
    return cdf(dist, valid.low), 1.0 - cdf(dist, valid.high)


def _center(dist: Any) -> float:
    if dist.dist in ("normal", "lognormal"):
        return float(dist.mean)
    if dist.dist == "beta":
        return 0.5 * ((dist.low or 0.0) + (1.0 if dist.high is None else dist.high))
    return 0.5 * (dist.low + dist.high)


def _percent_hint(valid: Range, x: float) -> str:
    if valid.fraction and 1 < abs(x) <= 100:
        return f"; rates are fractions: write {x / 100:g} for {x:g}%"
    return ""


def input_problem(spec: Any, valid: Range) -> str | None:
    """What is wrong with a number-or-distribution input against its valid range, or ``None``."""
    expected = f"expected {valid.describe()}: {valid.what}"
    if isinstance(spec, int | float):
        if valid.contains(float(spec)):
            return None
        return f"{spec:g} is out of range ({expected}{_percent_hint(valid, float(spec))})"
    problem = distribution_problem(spec)
    if problem:
        return problem
    below, above = mass_outside(spec, valid)
    if below + above <= MAX_MASS_OUTSIDE:
        return None
    side = "below" if below >= above else "above"
    edge = valid.low if side == "below" else valid.high
    return (
        f"{100 * (below + above):.3g}% of the {spec.dist} distribution lies outside the valid range "
        f"(most of it {side} {edge:g}); at most {100 * MAX_MASS_OUTSIDE:g}% may ({expected}"
        f"{_percent_hint(valid, _center(spec))}; narrow it or set low/high)"
    )


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------
def did_you_mean(name: str, choices: Any) -> str:
    """``"did you mean 'x'; "`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def shock_problem(name: str, value: float) -> str | None:
    """What is wrong with one scenario/sensitivity input, or ``None``."""
    if name not in SHOCKS:
        return f"unknown sensitivity input {name!r} ({did_you_mean(name, SHOCKS)}choose from {', '.join(SHOCKS)})"
    v = float(value)
    if not math.isfinite(v) or (name not in ADDITIVE and v < 0) or (name in ("retention", "churn") and v <= 0):
        what = "an amount" if name in ADDITIVE else f"a factor {'>' if name in ('retention', 'churn') else '>='} 0; 1 is no change"
        return f"{v!r} is not a valid value (expected {what})"
    return None


# --------------------------------------------------------------------------------------------
# The financials section
# --------------------------------------------------------------------------------------------
def discount_range(fin: Any) -> Range:
    """The discount rate's valid range: above 0 and above the terminal growth (and, with a
    Gordon terminal value, above the cost growth, as costs then run in perpetuity)."""
    floor = max(0.0, float(fin.terminal_growth))
    if fin.terminal_value == "gordon":
        floor = max(floor, float(fin.cost_growth))
    base = VALID["discount_rate"]
    what = base.what + ("" if floor == 0 else ", above the terminal (and perpetual cost) growth")
    return Range(floor, base.high, what, True, True, True)


def valid_ranges(fin: Any) -> dict[str, Range]:
    """The valid range of each drawn input of a ``Financials`` section."""
    return {**VALID, "discount_rate": discount_range(fin)}


def _scenario_rate_problem(fin: Any, shock: dict[str, float], valid: Range) -> str | None:
    """Whether a scenario's discount rate (base × factor + shift) stays in its valid range."""
    mult, shift = float(shock.get("discount_rate", 1.0)), float(shock.get("discount_rate_shift", 0.0))
    if mult <= 0:
        return None
    base = Range((valid.low - shift) / mult, (valid.high - shift) / mult, valid.what, True, True, True)
    if input_problem(fin.discount_rate, base) is None:
        return None
    spec = fin.discount_rate
    got = f"{spec * mult + shift:g}" if isinstance(spec, int | float) else "a distribution with >0.1% of it"
    return f"the discount rate under this scenario is {got} outside {valid.describe()} ({valid.what})"


def _growth_problems(fin: Any) -> Iterator[str]:
    """Terminal (and perpetual cost) growth at or above the discount rate, in too many draws."""
    growths = {"terminal_growth": fin.terminal_growth}
    if fin.terminal_value == "gordon":
        growths["cost_growth"] = fin.cost_growth
    for name, g in growths.items():
        valid = Range(max(0.0, float(g)), 1.0, "", True, True, True)
        if input_problem(fin.discount_rate, valid) is not None:
            yield (
                f"financials.{name}: {g:g} is not below the discount rate "
                f"{'in every draw ' if not isinstance(fin.discount_rate, int | float) else ''}"
                f"(expected growth < discount rate; a Gordon terminal value is then finite)"
            )


def financial_problems(fin: Any) -> Iterator[str]:
    """Every problem of a ``Financials`` section, as ``field.path: message``."""
    problems = [
        f"financials.{name}: {problem}"
        for name, valid in VALID.items()
        if (problem := input_problem(getattr(fin, name), valid))
    ]
    yield from problems
    if not any(p.startswith("financials.discount_rate:") for p in problems):
        yield from _growth_problems(fin)
    rate_range = discount_range(fin)
    for scenario, shock in fin.scenarios.items():
        for key, value in shock.items():
            problem = shock_problem(key, value)
            if problem:
                yield f"financials.scenarios.{scenario}.{key}: {problem}"
        if {"discount_rate", "discount_rate_shift"} & set(shock) and all(k in SHOCKS for k in shock):
            problem = _scenario_rate_problem(fin, shock, rate_range)
            if problem:
                yield f"financials.scenarios.{scenario}: {problem}"


def timezone_problem(zone: str) -> str | None:
    """Why ``zone`` is not an IANA time zone, or None when it is one."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"{zone!r} is not an IANA time zone such as 'UTC' or 'Europe/Paris'"
    return None


#: pydantic's bound errors: the operator and the context key of the bound, for the messages.
BOUND_OPERATORS: dict[str, tuple[str, str]] = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def number_text(x: Any) -> str:
    """A number as a message shows it (``2.0`` as ``2``)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a finite number."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
