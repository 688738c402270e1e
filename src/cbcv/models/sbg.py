"""The shifted-beta-geometric (sBG) model of contract duration, and the contractual data forms.

Fader, P. S. and Hardie, B. G. S. (2007), "How to Project Customer Retention", *Journal of
Interactive Marketing* 21 (1), 76-90.

Each customer, while active, cancels at the end of any period with a probability ``theta`` that
stays constant over their lifetime (a geometric duration, counted from 1); ``theta`` varies across
customers as Beta(``alpha``, ``beta``). The duration ``T`` of a new customer then has (the paper's
probability mass and survivor functions of the sBG, written with beta functions)

    P(T = t | alpha, beta) = B(alpha + 1, beta + t - 1) / B(alpha, beta),     t = 1, 2, ...
    S(t | alpha, beta)     = B(alpha, beta + t) / B(alpha, beta),            t = 0, 1, ...

and the paper's log-likelihood of a cohort's survivor counts adds ``log P(T = t)`` for every
customer seen to churn in period ``t`` and ``log S(t)`` for every customer still active after
``t`` observed periods (right-censored).

Contractual data come in two forms, both accepted by :meth:`ShiftedBetaGeoModel.fit`:

* a **survivor table** (one or several cohorts): columns ``t`` (periods since acquisition,
  0, 1, 2, ... consecutive within a cohort), ``alive`` (customers still active at ``t``; at
  ``t = 0`` the cohort's size) and optionally ``cohort``. Cohorts may have different numbers of
  observed periods. The churners of period ``t`` are ``alive[t - 1] - alive[t]``; the customers
  alive at a cohort's last observed ``t`` are right-censored there;
* **individual durations**: columns ``t`` (the period in which the customer churned, or the
  number of periods observed while still active) and ``churned`` (1/True: churned in period
  ``t``; 0/False: still active after ``t`` periods), optionally ``count`` (how many customers
  the row stands for).

Both reduce to the same distinct ``(t, churned)`` rows with a weight each, so a survivor table and
the individual durations behind it give exactly the same likelihood.

This module also holds the small validation and compression helpers the other model families of
this package use (``require_columns``, ``whole_numbers``, ``optional_counts``,
``compress_counts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import arviz as az
import numpy as np
import pandas as pd
import pytensor.tensor as pt

from cbcv.core.errors import DataError
from cbcv.models.base import CLVModel, Prior, SamplerSettings
from cbcv.models.inputs import (
    compress_counts,
    first_bad_row,
    optional_counts,
    require_columns,
    whole_numbers,
)
from cbcv.models.priors import log_normal_priors

#: Columns of a survivor table (``cohort`` optional) and of individual durations (``count``
#: optional).
SURVIVOR_COLUMNS: tuple[str, ...] = ("t", "alive")
DURATION_COLUMNS: tuple[str, ...] = ("t", "churned")


_STIRLING_FROM = 1e5


def betaln(a: Any, b: Any) -> pt.TensorVariable:
    """log B(a, b) through log-gamma functions (PyTensor): accurate to ~1e-9 absolute while
    both arguments stay below ~1e6 (the sBG's ``beta + t``, the BG/BB's arguments)."""
    return pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b)


def betaln_large(a: Any, b: Any) -> pt.TensorVariable:
    """log B(a, b) (PyTensor), accurate also when one argument is huge (e.g. the BdW's
    ``delta + t^c``, which passes 1e10 for long tenures and large ``c``): with ``s = min(a, b)`` and ``L = max(a, b)``,
    ``log B = log Γ(s) + [log Γ(L) - log Γ(s + L)]`` and, for ``L > 1e5``, the bracket is
    ``-(L - 1/2) log1p(s/L) - s log(s + L) + s + 1/(12 L) - 1/(12 (s + L))`` (Stirling)."""
    # switch, not minimum/maximum: their gradients count a tie (a == b) twice
    first_smaller = pt.le(a, b)
    small, large = pt.switch(first_smaller, a, b), pt.switch(first_smaller, b, a)
    direct = pt.gammaln(large) - pt.gammaln(small + large)
    stirling = (
        -(large - 0.5) * pt.log1p(small / large)
        - small * pt.log(small + large)
        + small
        + 1.0 / (12.0 * large)
        - 1.0 / (12.0 * (small + large))
    )
    return pt.gammaln(small) + pt.switch(large > _STIRLING_FROM, stirling, direct)


# -- contractual data ---------------------------------------------------------------------------
def survivor_table_to_durations(table: pd.DataFrame, model: str = "survivor table") -> pd.DataFrame:
    """Turn a survivor table into aggregated individual durations.

    ``table`` has columns ``t``, ``alive`` and optionally ``cohort`` (see the module docstring).
    Returns one row per cohort and period with columns ``cohort``, ``t``, ``churned`` (bool),
    ``count``: the churners of each period ``t >= 1`` and, at each cohort's last ``t``, the
    customers still active there (``churned`` False). Raises a DataError naming the cohort and
    row when ``t`` does not run 0, 1, 2, ... within a cohort or ``alive`` increases.
    """
    require_columns(table, SURVIVOR_COLUMNS, model)
    if len(table) == 0:
        raise DataError(f"{model}: the survivor table has no rows")
    t = whole_numbers(table, "t", model)
    alive = whole_numbers(table, "alive", model)
    cohorts = table["cohort"].astype(str).to_numpy() if "cohort" in table.columns else None
    frame = pd.DataFrame(
        {"cohort": cohorts if cohorts is not None else "all", "t": t, "alive": alive},
        index=table.index,
    )
    rows: list[tuple[str, float, bool, float]] = []
    for cohort, group in frame.groupby("cohort", sort=False):
        group = group.sort_values("t", kind="stable")
        ts, al = group["t"].to_numpy(), group["alive"].to_numpy()
        expected = np.arange(len(ts), dtype=float)
        if not np.array_equal(ts, expected):
            row = group.index[int(np.flatnonzero(ts != expected)[0])]
            raise DataError(
                f"{model}: cohort {cohort!r} row {row}: column 't' must run 0, 1, 2, ... without "
                f"gaps or repeats (got {group['t'].tolist()})"
            )
        lost = al[:-1] - al[1:]
        if (lost < 0).any():
            row = group.index[int(np.flatnonzero(lost < 0)[0]) + 1]
            raise DataError(
                f"{model}: cohort {cohort!r} row {row}: column 'alive' increases over time"
            )
        rows.extend((str(cohort), float(k + 1), True, float(n)) for k, n in enumerate(lost))
        rows.append((str(cohort), float(ts[-1]), False, float(al[-1])))
    return pd.DataFrame(rows, columns=["cohort", "t", "churned", "count"])


def _durations(data: pd.DataFrame, model: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Validated individual durations as a frame (t, churned) and their optional counts."""
    require_columns(data, DURATION_COLUMNS, model)
    if len(data) == 0:
        raise DataError(f"{model}: the data have no rows")
    t = whole_numbers(data, "t", model)
    churned_raw = data["churned"]
    if churned_raw.dtype == bool:
        churned = churned_raw.to_numpy()
    else:
        flags = whole_numbers(data, "churned", model)
        if (flags > 1).any():
            row = first_bad_row(data, flags > 1)
            raise DataError(
                f"{model}: column 'churned' row {row}: expected 0/1 or True/False, "
                f"got {churned_raw[row]!r}"
            )
        churned = flags.astype(bool)
    bad = churned & (t < 1)
    if bad.any():
        row = first_bad_row(data, bad)
        raise DataError(f"{model}: column 't' row {row}: a churned customer needs t >= 1")
    frame = pd.DataFrame({"t": t, "churned": churned.astype(float)})
    return frame, optional_counts(data, model)


def contractual_arrays(data: pd.DataFrame, model: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Either contractual data form → distinct ``(t, churned)`` arrays with ``weight``, and the
    distinct row of each customer (customers of a survivor table expanded one by one)."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{model}: data must be a pandas DataFrame, got {type(data).__name__}")
    if "alive" in data.columns:
        durations = survivor_table_to_durations(data, model)
        frame = durations[["t"]].assign(churned=durations["churned"].astype(float))
        counts: np.ndarray | None = durations["count"].to_numpy(dtype=float)
    elif "churned" in data.columns:
        frame, counts = _durations(data, model)
    else:
        raise DataError(
            f"{model}: give a survivor table (columns 't', 'alive', optional 'cohort') or "
            "individual durations (columns 't', 'churned', optional 'count')"
        )
    distinct, inverse = compress_counts(frame, ["t", "churned"], counts)
    arrays = {k: distinct[k].to_numpy(dtype=float) for k in ("t", "churned", "weight")}
    return arrays, inverse


class ContractualModel(CLVModel):
    """Shared data handling of the contractual duration models (sBG, BdW)."""

    def prepare(self, data: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return contractual_arrays(data, self.name)

    def fit(self, data: pd.DataFrame, settings: SamplerSettings | None = None) -> az.InferenceData:
        """Fit to a survivor table or to individual durations (see the module docstring); the
        fit records the number of customers (not of table rows) in ``attrs['n_customers']``."""
        idata = super().fit(data, settings)
        if self.inverse is not None:
            idata.attrs["n_customers"] = int(len(self.inverse))
            idata.attrs["n_rows"] = int(len(data))
        return idata


class ShiftedBetaGeoModel(ContractualModel):
    """Shifted-beta-geometric model of contract duration (Fader & Hardie 2007).

    Parameters ``alpha`` and ``beta``: the Beta distribution of the per-period churn probability
    across customers (mean churn probability ``alpha / (alpha + beta)``).

    Default priors (override with ``priors={"alpha": Prior(...)}``): ``log θ ~ Normal(0, 3)`` for
    both (:mod:`cbcv.models.priors`; the fit samples log θ and MAP is the mode in log θ):
    median 1, 95% of the mass between 0.003 and 360, which covers very polarised (small) to
    nearly homogeneous (large) churn propensities without allowing absurd values. On Fader &
    Hardie's (2007) two segments MAP lands within 0.5% of the published estimates; with
    ``HalfFlat`` priors the MAP is the maximum-likelihood estimate of the paper.
    """

    name: ClassVar[str] = "sbg"
    param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    default_priors: ClassVar[Mapping[str, Prior]] = log_normal_priors(("alpha", "beta"))

    def logp(self, params: Mapping[str, Any], arrays: Mapping[str, Any]) -> pt.TensorVariable:
        """Per distinct row: ``log P(T = t)`` if churned, else ``log S(t)`` (Fader & Hardie
        2007: the sBG's P(T = t), S(t) and log-likelihood;
        tests/test_models_sbg.py::test_published_estimates_first_seven_years, the paper's
        estimates for the two segments)."""
        alpha, beta = params["alpha"], params["beta"]
        t, churned = arrays["t"], arrays["churned"]
        base = betaln(alpha, beta)
        log_pmf = betaln(alpha + 1.0, beta + pt.maximum(t - 1.0, 0.0)) - base
        log_surv = betaln(alpha, beta + t) - base
        return pt.switch(churned > 0.5, log_pmf, log_surv)
