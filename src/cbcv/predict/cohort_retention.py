"""Predictions of a fitted :class:`~cbcv.models.cohort_retention.CohortRetentionModel` over
posterior draws: survival per cohort, conditional survival and DERL of active subscribers, the
holdout check of survivors per cohort and tenure, and the comparison of poolings.

Each subscriber's parameters come from :meth:`CohortRetentionModel.cohort_params` (their cohort's
draws, or a future cohort's as that method documents, shifted by their covariates), as the BdW's
``gamma, delta, c`` (the sBG: ``alpha, beta`` and ``c = 1``). Timing as in
:mod:`cbcv.predict.contractual`: ``S(t) = P(T > t)`` is the share that has made ``t`` renewals.

Formulas (``B`` the beta function):

* survival: sBG ``S(t) = B(alpha, beta + t) / B(alpha, beta)`` (Fader & Hardie 2007, "How to
  Project Customer Retention", *Journal of Interactive Marketing* 21 (1)); BdW
  ``S(t) = B(gamma, delta + t^c) / B(gamma, delta)`` (Fader, Hardie, Liu, Davin & Steenburgh 2018,
  *Journal of Interactive Marketing* 43);
* conditional survival of a subscriber who has made ``n`` renewals, ``k`` renewals on:
  ``S(n + k) / S(n)`` (Fader & Hardie 2007, the retention rates' product);
* DERL: Fader & Hardie (2010), "Customer-Base Valuation in a Contractual Setting: The Perils of
  Ignoring Heterogeneity", *Marketing Science* 29 (1), eq. 6, evaluated by
  :data:`cbcv.predict.contractual.FAMILIES` (closed form for the sBG, the bounded sum for the BdW).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from cbcv.core.errors import CbcvError, DataError
from cbcv.models.cohort_retention import CohortRetentionModel
from cbcv.predict.contractual import DERL_TOL, contractual_family

HOLDOUT_COLUMNS: tuple[str, ...] = (
    "cohort", "renewals_cal", "renewals_end", "churned_holdout", "t_holdout", "count",
)
Params = dict[str, np.ndarray]


def _whole(frame: pd.DataFrame, column: str, source: str, minimum: int = 0) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < minimum)
    if bad.any():
        row = frame.index[int(np.flatnonzero(bad)[0])]
        raise DataError(f"{source}: column {column!r} row {row}: expected a whole number >= {minimum}, "
                        f"got {frame[column][row]!r}")
    return values


def _require(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: column {missing[0]!r} is missing; needed: {list(columns)}")


def _as_bdw(model: CohortRetentionModel, p: Params) -> Params:
    return contractual_family(model.family).as_bdw(p)


def _groups(model: CohortRetentionModel, frame: pd.DataFrame, max_draws: int | None,
            seed: int) -> tuple[Params, np.ndarray]:
    """BdW-form parameter draws ``(draws, groups)`` of the distinct (cohort, covariates) rows of
    ``frame``, and each row's group."""
    cols = ["cohort", *model.covariates]
    keys = frame[cols].astype({"cohort": str}).reset_index(drop=True)
    codes, _ = pd.MultiIndex.from_frame(keys).factorize()
    first = np.unique(codes, return_index=True)[1]
    cells = frame.iloc[first].reset_index(drop=True)
    p = model.cohort_params(cells["cohort"].astype(str).tolist(), cells if model.covariates else None,
                            max_draws=max_draws, seed=seed)
    return _as_bdw(model, p), np.asarray(codes, dtype=np.int64)


def _log_s(p: Params, t: np.ndarray) -> np.ndarray:
    """``log S(t) = log B(gamma, delta + t^c) - log B(gamma, delta)``, broadcasting ``t``."""
    return special.betaln(p["gamma"], p["delta"] + np.power(t, p["c"])) - special.betaln(p["gamma"], p["delta"])


def survival(model: CohortRetentionModel, cohorts: Sequence[str], t: Sequence[float] | np.ndarray,
             covariates: pd.DataFrame | None = None, *, max_draws: int | None = None, seed: int = 0) -> np.ndarray:
    """``S(t)`` of a new subscriber of each cohort (with ``covariates``' rows, else at the
    baseline), per draw: shape ``(draws, len(cohorts), len(t))`` (Fader & Hardie 2007; Fader et
    al. 2018; tests/test_cohort_retention.py::test_derl_and_survival_match_the_single_cohort_predictions)."""
    tt = np.atleast_1d(np.asarray(t, dtype=float))
    if tt.ndim != 1 or np.any(tt < 0) or np.any(tt != np.round(tt)):
        raise CbcvError(f"t must be whole numbers >= 0, got {t!r}")
    p = _as_bdw(model, model.cohort_params(list(cohorts), covariates, max_draws=max_draws, seed=seed))
    return np.exp(_log_s({k: v[:, :, None] for k, v in p.items()}, tt[None, None, :]))


def conditional_survival(model: CohortRetentionModel, frame: pd.DataFrame, k: int, *,
                         max_draws: int | None = None, seed: int = 0) -> np.ndarray:
    """``P(alive after k more renewals | made renewals) = S(renewals + k) / S(renewals)`` per draw
    and row of ``frame`` (columns ``cohort``, the covariates, ``renewals``): ``(draws, rows)``
    (Fader & Hardie 2007; tests/test_cohort_retention.py::test_derl_and_survival_match_the_single_cohort_predictions)."""
    source = f"{model.name} conditional_survival"
    _require(frame, ("cohort", *model.covariates, "renewals"), source)
    if int(k) != k or k < 0:
        raise CbcvError(f"k must be a whole number >= 0, got {k!r}")
    n = _whole(frame, "renewals", source)
    p, group = _groups(model, frame, max_draws, seed)
    rows = {key: v[:, group] for key, v in p.items()}
    return np.exp(_log_s(rows, n[None, :] + float(k)) - _log_s(rows, n[None, :]))


def derl(model: CohortRetentionModel, frame: pd.DataFrame, discount_rate_per_period: float, *,
         max_draws: int | None = None, method: str = "auto", tol: float = DERL_TOL,
         max_terms: int = 1_000_000, seed: int = 0) -> np.ndarray:
    """Discounted expected residual lifetime of each row of ``frame`` (columns ``cohort``, the
    covariates, ``renewals``: renewals made so far), at ``discount_rate_per_period``, per draw:
    ``(draws, rows)`` (Fader & Hardie 2010, eq. 6). Evaluated by the family of
    :data:`cbcv.predict.contractual.FAMILIES` on each distinct (cohort, covariates) group;
    ``method``: "auto", "closed" (sBG) or "sum" as in :func:`cbcv.predict.contractual.derl`
    (tests/test_cohort_retention.py::test_derl_and_survival_match_the_single_cohort_predictions)."""
    source = f"{model.name} derl"
    _require(frame, ("cohort", *model.covariates, "renewals"), source)
    if method not in ("auto", "closed", "sum") or (method == "closed" and not contractual_family(model.family).closed_derl):
        raise CbcvError(f"method must be 'auto', 'sum' or (sBG) 'closed', got {method!r}")
    d = float(discount_rate_per_period)
    if not np.isfinite(d) or d <= 0:
        raise CbcvError(f"the discount rate must be positive (per period), got {discount_rate_per_period}")
    n = _whole(frame, "renewals", source)
    family = contractual_family(model.family)
    p, group = _groups(model, frame, max_draws, seed)
    out = np.empty((p["gamma"].shape[0], len(frame)))
    for j in range(p["gamma"].shape[1]):
        cols = np.flatnonzero(group == j)
        pj = {key: v[:, [j]] for key, v in p.items()}
        out[:, cols] = family.derl(pj, n[None, cols], d, method, tol, max_terms)
    return out


# -- the holdout check --------------------------------------------------------------------------
def holdout_survival(model: CohortRetentionModel, holdout: pd.DataFrame, interval: float = 0.9, *,
                     max_draws: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Survivors per cohort and holdout tenure, predicted against actual.

    ``holdout``: the spells active at the calibration end, columns ``cohort``, the covariates,
    ``renewals_cal`` (renewals made by the calibration end), ``renewals_end`` (renewals each would
    have made by the holdout end), ``churned_holdout``, ``t_holdout`` (payments made if churned in
    the holdout, else ``renewals_end``) and ``count``. For each cohort and tenure ``m`` with
    ``renewals_cal < m <= renewals_end``: ``eligible`` (subscribers who could have made renewal
    ``m`` by the holdout end), ``actual`` (those who did: not churned, or ``t_holdout > m``) and
    the predicted survivors ``sum count * S(m) / S(renewals_cal)`` (Fader & Hardie 2007): the
    posterior mean (``predicted``) and equal-tailed ``interval`` (``low``, ``high``) of that
    expectation over draws; ``active`` is the cohort's calibration-active subscribers
    (tests/test_cohort_retention.py::test_holdout_survival_counts_by_hand)."""
    source = f"{model.name} holdout"
    _require(holdout, (*HOLDOUT_COLUMNS, *model.covariates), source)
    if not 0 < interval < 1:
        raise CbcvError(f"interval must be in (0, 1), got {interval!r}")
    n = _whole(holdout, "renewals_cal", source)
    n_end = _whole(holdout, "renewals_end", source)
    t_h = _whole(holdout, "t_holdout", source)
    count = _whole(holdout, "count", source)
    churned = holdout["churned_holdout"].astype(bool).to_numpy()
    bad = (n_end < n) | (churned & ((t_h <= n) | (t_h > n_end + 1)))
    if bad.any():
        row = holdout.index[int(np.flatnonzero(bad)[0])]
        raise DataError(f"{source}: row {row}: needs renewals_cal <= renewals_end and, when churned, "
                        "renewals_cal < t_holdout <= renewals_end + 1")
    last = np.where(churned, np.minimum(t_h - 1.0, n_end), n_end)  # the last renewal made
    p, group = _groups(model, holdout, max_draws, seed)
    n_draws = p["gamma"].shape[0]
    labels = holdout["cohort"].astype(str).to_numpy()
    lo, hi = (1 - interval) / 2, (1 + interval) / 2
    out = []
    for cohort in sorted(set(labels)):
        rows = np.flatnonzero(labels == cohort)
        tenures = np.arange(int(n[rows].min()) + 1, int(n_end[rows].max()) + 1)
        if not len(tenures):
            continue
        pred = np.zeros((n_draws, len(tenures)))
        # distinct (group, renewals_cal, renewals_end) with summed counts
        keys = pd.DataFrame({"g": group[rows], "n": n[rows], "e": n_end[rows], "w": count[rows]})
        for (g, n0, e), w in keys.groupby(["g", "n", "e"])["w"].sum().items():
            if e <= n0 or w == 0:
                continue
            pg = {k: v[:, [int(g)]] for k, v in p.items()}
            ts = np.arange(n0, e + 1)[None, :]
            ls = _log_s(pg, ts)
            m_idx = np.arange(int(n0) + 1, int(e) + 1) - tenures[0]
            pred[:, m_idx] += w * np.exp(ls[:, 1:] - ls[:, :1])
        m = tenures[None, :]
        eligible = (n[rows, None] < m) & (m <= n_end[rows, None])
        survived = eligible & (m <= last[rows, None])
        out.append(pd.DataFrame({
            "cohort": cohort, "tenure": tenures, "eligible": count[rows] @ eligible,
            "actual": count[rows] @ survived, "predicted": pred.mean(axis=0),
            "low": np.quantile(pred, lo, axis=0), "high": np.quantile(pred, hi, axis=0),
            "active": float(count[rows].sum()),
        }))
    columns = ["cohort", "tenure", "eligible", "actual", "predicted", "low", "high", "active"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


@dataclass(frozen=True)
class SurvivalError:
    """Per cohort (``by_cohort``: cohort, tenure, actual, predicted, active, error_pp) the
    absolute error of survivors at its last holdout tenure in percentage points of its
    calibration-active subscribers, and their mean over cohorts (``mean_pp``)."""

    by_cohort: pd.DataFrame
    mean_pp: float


def survival_error(table: pd.DataFrame, cohort_sizes: Mapping[str, float] | None = None) -> SurvivalError:
    """The holdout survival error of :func:`holdout_survival`'s ``table`` per cohort (its last
    tenure), as a share of the cohort's calibration-active subscribers (``cohort_sizes``, when
    given, replaces them: e.g. the cohorts' sizes at acquisition), and the mean over cohorts, so
    that poolings can be compared (tests/test_cohort_retention.py::test_holdout_survival_counts_by_hand)."""
    _require(table, ("cohort", "tenure", "actual", "predicted", "active"), "survival_error")
    last = table.sort_values(["cohort", "tenure"]).groupby("cohort", sort=True).tail(1).reset_index(drop=True)
    size = last["active"].astype(float)
    if cohort_sizes is not None:
        missing = [c for c in last["cohort"] if c not in cohort_sizes]
        if missing:
            raise CbcvError(f"survival_error: cohort_sizes lacks cohort {missing[0]!r}")
        size = last["cohort"].map(lambda c: float(cohort_sizes[c]))
    last = last[["cohort", "tenure", "actual", "predicted"]].assign(active=size.to_numpy())
    last["error_pp"] = 100.0 * (last["predicted"] - last["actual"]).abs() / last["active"]
    return SurvivalError(last, float(last["error_pp"].mean()) if len(last) else float("nan"))


def youngest_cohorts(holdout: pd.DataFrame, share: float = 1 / 3) -> list[str]:
    """The youngest ``share`` of the holdout's cohorts (at least one): those with the fewest
    renewals made by the calibration end (their largest ``renewals_cal``)."""
    _require(holdout, ("cohort", "renewals_cal"), "youngest_cohorts")
    age = holdout.assign(cohort=holdout["cohort"].astype(str)).groupby("cohort")["renewals_cal"].max()
    age = age.sort_values(kind="stable")
    return list(age.index[: max(1, int(len(age) * share))])


def compare_pooling(fits: Mapping[str, CohortRetentionModel], holdout: pd.DataFrame, *,
                    max_draws: int | None = None) -> pd.DataFrame:
    """Per fit (same calibration data, different poolings or families): the holdout survival
    error (:func:`survival_error`, mean over cohorts, ``mae_pp``) overall and over the youngest
    third of the cohorts (``mae_young_pp``, :func:`youngest_cohorts`), and PSIS-LOO's
    ``elpd_loo`` with its ``elpd_se`` (NaN for a MAP fit)
    (tests/test_cohort_retention.py::test_partial_pooling_borrows_strength_for_young_cohorts)."""
    young = set(youngest_cohorts(holdout))
    rows = []
    for name, model in fits.items():
        err = survival_error(holdout_survival(model, holdout, max_draws=max_draws)).by_cohort
        elpd, se = float("nan"), float("nan")
        if model.idata is not None and model.idata.attrs.get("method") == "nuts":
            loo = model.loo()
            elpd, se = float(loo.elpd_loo), float(loo.se)
        rows.append({"fit": name, "family": model.family, "pooling": model.pooling,
                     "mae_pp": float(err["error_pp"].mean()),
                     "mae_young_pp": float(err[err["cohort"].isin(young)]["error_pp"].mean()),
                     "n_young": len(young), "elpd_loo": elpd, "elpd_se": se,
                     "fit_seconds": float(model.fit_seconds or float("nan"))})
    return pd.DataFrame(rows).set_index("fit")
