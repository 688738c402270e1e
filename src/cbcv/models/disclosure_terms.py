"""The terms of :mod:`cbcv.models.disclosures`: the series each setting models, the expected
disclosures from the cohort sizes and the survivor (written once for NumPy and PyTensor), the
AR(1) likelihood's index arrays, the season dummies and the fitted table as arrays
(:class:`DisclosureDesign`). The model, its priors and its predictions are in
:mod:`cbcv.models.disclosures`, whose docstring states the equations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from scipy import special

from cbcv.core.errors import DataError

Setting = Literal["contractual", "noncontractual"]
RetentionFamily = Literal["sbg", "bdw"]
SETTINGS: tuple[str, ...] = ("contractual", "noncontractual")
#: The series each setting models (``marketing_spend`` is a covariate, not modelled).
MODELLED: dict[str, tuple[str, ...]] = {
    "contractual": ("new_customers", "lost_customers", "customers_end", "revenue"),
    "noncontractual": ("new_customers", "active_customers", "orders", "revenue"),
}
COVARIATE = "marketing_spend"
#: Mean remaining exposure of a customer in its acquisition period (uniform acquisition times).
FIRST_PERIOD_EXPOSURE = 0.5

#: The array backends :func:`survivor` and :func:`expected_series` are written for: NumPy
#: (forecasts) and PyTensor (the fitted model).
NUMPY_BACKEND = SimpleNamespace(xp=np, gammaln=special.gammaln)
PYTENSOR_BACKEND = SimpleNamespace(xp=pt, gammaln=pt.gammaln)


def choose_setting(series: Sequence[str]) -> Setting:
    """``contractual`` when subscribers (``customers_end`` or ``lost_customers``) are disclosed and
    no purchasing series (``active_customers``, ``orders``) is; otherwise ``noncontractual``."""
    names = set(series)
    if names & {"active_customers", "orders"}:
        return "noncontractual"
    if names & {"customers_end", "lost_customers"}:
        return "contractual"
    raise DataError("disclosures: no customer series to model (give customers_end or lost_customers for a "
                    "subscription firm, active_customers or orders for a retailer)")


# --------------------------------------------------------------------------------------------
# The expected series, written once for NumPy (forecasts) and PyTensor (fitting)
# --------------------------------------------------------------------------------------------
def survivor(bk: Any, churn: Any, kappa: Any, c_ret: Any, ages: np.ndarray) -> Any:
    """``S(k)`` at the ``ages`` (periods since acquisition, >= 0): ``B(a, b + k^c) / B(a, b)``
    with ``a = churn * kappa``, ``b = (1 - churn) * kappa`` (``c_ret = 1``: the sBG)."""
    a, b = churn * kappa, (1.0 - churn) * kappa
    k = ages if c_ret is None else ages**c_ret
    return bk.xp.exp(bk.gammaln(b + k) - bk.gammaln(b) + bk.gammaln(a + b) - bk.gammaln(a + b + k))


def cohort_ages(n_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ages, mask)``: ``ages[t, c] = t - c`` where ``t >= c`` (else 0) and the mask of those cells."""
    t = np.arange(n_periods)
    diff = t[:, None] - t[None, :]
    return np.maximum(diff, 0).astype(float), (diff >= 0).astype(float)


def ar1_terms(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays of a series' AR(1) likelihood: ``first`` (the reported periods whose previous
    period is unreported: a run's start), ``follow`` (the others) and ``prev`` (the period before
    each of ``follow``)."""
    seen = np.isfinite(np.asarray(values, dtype=float))
    before = np.concatenate([[False], seen[:-1]])
    return np.flatnonzero(seen & ~before), np.flatnonzero(seen & before), np.flatnonzero(seen & before) - 1


def expected_series(
    bk: Any, setting: str, acquired: Any, surv: Any, mask: np.ndarray, rate: Any, purchase_shape: Any, spend: Any,
) -> dict[str, Any]:
    """The model's expected disclosures (module docstring) from the cohort sizes ``acquired``
    ``(..., P)``, the survivor at each cell ``surv`` ``(..., P, P)`` (rows: periods, columns:
    cohorts), ``mask`` of the cells with ``t >= c``, the mean orders per alive customer in each
    period ``rate`` ``(..., P)`` (non-contractual; ``m e^{g_t}``), the gamma shape ``r`` and the
    spend per order (or per subscriber) ``spend`` ``(..., P)``. Checked against a simulation of
    individual customers (tests/test_disclosure_model.py::test_expected_series_match_a_simulation_of_customers)
    and the accounting identity (tests/test_disclosure_model.py::test_contractual_series_keep_the_accounting_identity)."""
    xp = bk.xp
    cells = surv * mask * xp.expand_dims(acquired, -2)
    alive = cells.sum(axis=-1)
    out: dict[str, Any] = {"new_customers": acquired}
    if setting == "contractual":
        previous = xp.concatenate([xp.zeros_like(alive[..., :1]), alive[..., :-1]], axis=-1)
        out.update(customers_end=alive, lost_customers=previous + acquired - alive, revenue=alive * spend)
        return out
    earlier = alive - acquired  # alive since an earlier period (the diagonal is A_t * S(0))
    p_buy = 1.0 - (purchase_shape / (purchase_shape + rate)) ** purchase_shape
    orders = acquired * (1.0 + FIRST_PERIOD_EXPOSURE * rate) + earlier * rate
    out.update(active_customers=acquired + earlier * p_buy, orders=orders, revenue=orders * spend, alive=alive)
    return out


def season_numbers(periods: pd.PeriodIndex) -> np.ndarray:
    """Quarter (1-4) or month (1-12) of the year of each period."""
    return np.asarray(periods.quarter if periods.freqstr.startswith("Q") else periods.month, dtype=int)


def season_design(periods: pd.PeriodIndex) -> np.ndarray:
    """``(P, S-1)`` dummies of every season but the first (S = 4 quarters or 12 months)."""
    n = 4 if periods.freqstr.startswith("Q") else 12
    return (season_numbers(periods)[:, None] == np.arange(2, n + 1)[None, :]).astype(float)


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DisclosureDesign:
    """The fitted table in arrays: the periods, each modelled series (NaN where not reported),
    the standardised log marketing spend, the season dummies and the spend's reference level."""

    periods: pd.PeriodIndex
    observed: dict[str, np.ndarray]
    log_marketing: np.ndarray | None
    x_mean: float
    x_sd: float
    seasons: np.ndarray
    spend_ref: float
    scale: float

    @property
    def n_periods(self) -> int:
        return len(self.periods)

    def cohort_sizes(self, expected: Any, xp: Any = np) -> Any:
        """The cohort sizes the other series are built on: the disclosed ``new_customers`` where
        reported (the realised acquisitions), the model's ``expected`` acquisitions ``A_t``
        elsewhere (``expected``: ``(..., P)``, NumPy or PyTensor as ``xp``)."""
        new = self.observed.get("new_customers")
        if new is None or not np.isfinite(new).any():
            return expected
        seen = np.isfinite(new)
        return xp.where(seen, np.where(seen, new, 0.0), expected)

    def covariate(self, log_marketing: np.ndarray | None) -> np.ndarray:
        """Standardised log marketing spend (zeros without the covariate)."""
        if self.log_marketing is None or log_marketing is None:
            return np.zeros(0 if log_marketing is None else len(log_marketing))
        return (np.asarray(log_marketing, dtype=float) - self.x_mean) / self.x_sd


def _spend_reference(table: pd.DataFrame, setting: str) -> float:
    """Revenue per order (non-contractual) or per subscriber (contractual) over the periods that
    report both: the centre of the spend level's prior."""
    base = "orders" if setting == "noncontractual" else "customers_end"
    if "revenue" not in table or base not in table:
        if "revenue" in table and "active_customers" in table:
            base = "active_customers"
        else:
            return 1.0
    both = table[["revenue", base]].dropna()
    both = both[both[base] > 0]
    return float(both["revenue"].sum() / both[base].sum()) if len(both) and both["revenue"].sum() > 0 else 1.0


def _acquisition_scale(observed: Mapping[str, np.ndarray]) -> float:
    """New customers per period in the data's own scale (the centre of ``log h1``'s prior): the
    median reported ``new_customers``, else the first reported customer count spread over the
    periods since launch."""
    new = observed.get("new_customers")
    if new is not None and (new[np.isfinite(new)] > 0).any():
        return float(np.median(new[np.isfinite(new) & (new > 0)]))
    for series in ("customers_end", "active_customers", "orders"):
        values = observed.get(series)
        if values is not None:
            seen = np.flatnonzero(np.isfinite(values) & (values > 0))
            if seen.size:
                return float(values[seen[0]] / (seen[0] + 1))
    return 1.0


def prepare_design(table: pd.DataFrame, setting: str, marketing: bool) -> DisclosureDesign:
    """Validate a disclosures table (:class:`cbcv.data.disclosures.Disclosures` ``.table``: a
    contiguous PeriodIndex, the series as columns) for a fit."""
    if not isinstance(table.index, pd.PeriodIndex):
        raise DataError("disclosures: the table must be indexed by a PeriodIndex (one row per period)")
    if len(table) < 4:
        raise DataError(f"disclosures: at least 4 periods are needed to fit, got {len(table)}")
    periods = table.index
    if not (periods[1:] == periods[:-1] + 1).all():
        raise DataError("disclosures: the periods must be contiguous and increasing")
    observed = {s: table[s].to_numpy(dtype=float) for s in MODELLED[setting] if s in table}
    observed = {s: v for s, v in observed.items() if np.isfinite(v).any()}
    if not set(observed) - {"revenue", "new_customers"}:
        raise DataError(f"disclosures: a {setting} fit needs one of "
                        f"{', '.join(s for s in MODELLED[setting] if s not in ('revenue', 'new_customers'))}")
    log_m, mean, sd = None, 0.0, 1.0
    if marketing:
        if COVARIATE not in table:
            raise DataError("disclosures: marketing_spend is not disclosed; fit without the covariate")
        spend = table[COVARIATE].to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(spend) | (spend <= 0))
        if bad.size:
            raise DataError(f"disclosures: marketing_spend in {periods[int(bad[0])]} is missing or not positive; "
                            "the covariate needs every period from the first")
        log_m = np.log(spend)
        mean, sd = float(log_m.mean()), float(log_m.std())
        if sd == 0:
            raise DataError("disclosures: marketing_spend is constant; fit without the covariate")
    return DisclosureDesign(periods, observed, log_m, mean, sd, season_design(periods),
                            _spend_reference(table, setting), _acquisition_scale(observed))
