"""Holdout validation and model comparison for the purchase-frequency models.

Fader, Hardie & Lee (2005, "Counting Your Customers the Easy Way") judge a model by how well it
predicts the holdout period it never saw: total repeat transactions, the conditional
expectations (mean holdout transactions by calibration frequency), and the weekly cumulative
tracking of repeat transactions. To these we add a P(alive) calibration table, a posterior
predictive check of the calibration frequency histogram, and LOO (Vehtari, Gelman & Gabry 2017).

Every function takes a fitted model and the calibration/holdout summary
(:func:`cbcv.data.summary.calibration_holdout`) and returns a DataFrame or a frozen dataclass;
predictions come from :mod:`cbcv.predict` and keep their posterior draws.

The summary may also be *counted*: one row per distinct ``(x, t_x, T, x_holdout, T_holdout)``
with a ``count`` column (:func:`cbcv.data.summary_files.summary_counts`, as the report
builds it). Every figure is then weighted by ``count`` and equals the per-customer one, since
customers with the same summary have the same predictions and the same pointwise likelihood
(for LOO too: PSIS-LOO treats each observation on its own). Predictions are taken in blocks of
at most :data:`BLOCK_ELEMENTS` draws × rows, so memory does not grow with the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import logsumexp

from cbcv.clv import n_model_draws
from cbcv.core.errors import CbcvError
from cbcv.core.units import unit_days
from cbcv.data.simulate import BGNBDParams, ParetoNBDParams, simulate_summaries
from cbcv.data.summary import Transactions, purchase_days
from cbcv.models.base import CLVModel
from cbcv.models.covariates import CovariateModel
from cbcv.predict import (
    expected_given_alive,
    expected_purchases,
    expected_purchases_population,
    p_alive,
    posterior_draws,
)
from cbcv.predict.bgbb import expected_transactions as bgbb_expected_transactions
from cbcv.predict.covariates import covariate_parts

INTERVAL = 0.9
#: Largest (draws × rows) block of predictions held at once.
BLOCK_ELEMENTS = 2**22
#: Largest (draws × distinct rows) pointwise log-likelihood for LOO: beyond it the draws are
#: thinned evenly (to no fewer than :data:`LOO_MIN_DRAWS`; below that LOO is not computed).
LOO_ELEMENTS = 2**25
LOO_MIN_DRAWS = 200
#: Customers simulated per replicated data set by :func:`frequency_ppc`; a larger (counted)
#: base is checked on a seeded random sample of this many customers.
PPC_CUSTOMERS = 200_000


def _interval(draws: np.ndarray, prob: float = INTERVAL) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
    return float(lo), float(hi)


def _require(cal_hold: pd.DataFrame, cols: tuple[str, ...]) -> None:
    missing = [c for c in cols if c not in cal_hold]
    if missing:
        raise CbcvError(f"holdout validation needs columns {missing} (use calibration_holdout)")


def customer_weights(cal_hold: pd.DataFrame) -> np.ndarray:
    """Customers each row stands for: the ``count`` column of a counted summary, else 1."""
    if "count" in cal_hold:
        return cal_hold["count"].to_numpy(dtype=float)
    return np.ones(len(cal_hold))


def _blocks(n_rows: int, n_draws: int) -> list[slice]:
    step = max(1, BLOCK_ELEMENTS // max(n_draws, 1))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _grouped_predictions(
    predict: Callable[[pd.DataFrame, slice], np.ndarray],
    cal_hold: pd.DataFrame,
    groups: np.ndarray,
    n_groups: int,
    n_draws: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(draws, n_groups)`` count-weighted sums of ``predict`` over each group's rows, and each
    row's posterior mean, computed block by block."""
    w = customer_weights(cal_hold)
    sums = np.zeros((n_draws, n_groups))
    means = np.empty(len(cal_hold))
    for rows in _blocks(len(cal_hold), n_draws):
        pred = predict(cal_hold.iloc[rows], rows)
        k = rows.stop - rows.start
        onehot = sparse.csr_matrix((w[rows], (np.arange(k), groups[rows])), shape=(k, n_groups))
        sums += np.asarray((onehot.T @ pred.T).T)
        means[rows] = pred.mean(axis=0)
    return sums, means


@dataclass(frozen=True)
class HoldoutTotals:
    """Predicted (posterior draws) against actual total holdout repeat transactions."""

    model: str
    actual: float
    predicted: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.predicted.mean())

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.mean - self.actual) / self.actual

    def to_dict(self) -> dict[str, float | str]:
        lo, hi = _interval(self.predicted)
        return {
            "model": self.model,
            "actual": self.actual,
            "predicted_mean": self.mean,
            "predicted_low": lo,
            "predicted_high": hi,
            "error_pct": self.error_pct,
        }


def _holdout_predictions(
    model: CLVModel, cal_hold: pd.DataFrame, groups: np.ndarray, n_groups: int, max_draws: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Expected holdout transactions: per-draw weighted sums by group and per-row means. The
    factor given alive (:func:`cbcv.predict.expected_given_alive`, a hypergeometric function
    for BG/NBD) depends on (x, T) alone, so it is evaluated once per distinct pair and each row
    multiplies its pair's column by its own P(alive)."""
    _require(cal_hold, ("x", "t_x", "T", "x_holdout", "T_holdout"))
    t = float(cal_hold["T_holdout"].iloc[0])
    if isinstance(model, CovariateModel):  # each customer at its covariates' parameters
        n_draws = min(n_model_draws(model), max_draws or n_model_draws(model))
        return _grouped_predictions(
            lambda rows, cols: expected_purchases(model, t, rows, max_draws=max_draws),
            cal_hold, groups, n_groups, n_draws,
        )
    x, T = cal_hold["x"].to_numpy(dtype=float), cal_hold["T"].to_numpy(dtype=float)
    pairs, index = np.unique(np.stack([x, T]), axis=1, return_inverse=True)
    index = np.asarray(index).ravel()
    draws = posterior_draws(model, max_draws)
    given = expected_given_alive(model.name, t, draws, pairs[0][None, :], pairs[1][None, :])
    return _grouped_predictions(
        lambda rows, cols: p_alive(model, rows, max_draws=max_draws) * given[:, index[cols]],
        cal_hold, groups, n_groups, given.shape[0],
    )


def _actual_total(cal_hold: pd.DataFrame) -> float:
    return float(customer_weights(cal_hold) @ cal_hold["x_holdout"].to_numpy(dtype=float))


def holdout_totals(model: CLVModel, cal_hold: pd.DataFrame, max_draws: int = 1000) -> HoldoutTotals:
    """Total expected holdout repeat transactions per posterior draw against the actual total."""
    sums, _ = _holdout_predictions(model, cal_hold, np.zeros(len(cal_hold), dtype=np.int64), 1, max_draws)
    return HoldoutTotals(model.name, _actual_total(cal_hold), sums[:, 0])


def holdout_by_group(model: CLVModel, cal_hold: pd.DataFrame, column: str, max_draws: int = 1000) -> pd.DataFrame:
    """Predicted (posterior mean and 90% interval) against actual holdout repeat transactions
    by the levels of ``column`` (a covariate, a segment): whether a model gets each group right,
    not only the total. One row per level: ``actual``, ``predicted_mean``, ``predicted_low``,
    ``predicted_high``, ``error_pct``."""
    _require(cal_hold, (column,))
    codes, levels = pd.factorize(cal_hold[column].astype(str), sort=True)
    sums, _ = _holdout_predictions(model, cal_hold, codes, len(levels), max_draws)
    actual = np.bincount(codes, weights=customer_weights(cal_hold) * cal_hold["x_holdout"].to_numpy(dtype=float),
                         minlength=len(levels))
    lo, hi = np.quantile(sums, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    mean = sums.mean(axis=0)
    return pd.DataFrame({column: list(levels), "actual": actual, "predicted_mean": mean, "predicted_low": lo,
                         "predicted_high": hi, "error_pct": 100.0 * (mean - actual) / actual})


def discrete_holdout_totals(model: CLVModel, periods: pd.DataFrame, max_draws: int = 1000) -> HoldoutTotals:
    """A BG/BB fit's total expected active periods in the holdout (Fader, Hardie & Shang 2010,
    eq. 13, :func:`cbcv.predict.bgbb.expected_transactions` over ``n_holdout`` opportunities) per
    posterior draw, against the actual total; ``periods``: a counted
    :func:`cbcv.data.summary.period_summary` with its holdout columns."""
    _require(periods, ("x", "t_x", "n", "x_holdout", "n_holdout"))
    n_star = int(periods["n_holdout"].iloc[0])
    expected = bgbb_expected_transactions(model, n_star, periods[["x", "t_x", "n"]], max_draws=max_draws)
    weights = customer_weights(periods)
    return HoldoutTotals(model.name, _actual_total(periods), expected @ weights)


def conditional_expectations(
    model: CLVModel, cal_hold: pd.DataFrame, max_x: int = 7, max_draws: int = 1000
) -> pd.DataFrame:
    """Mean holdout transactions by calibration frequency x = 0, 1, …, ``max_x``+ : actual and
    predicted (posterior mean and 90% interval of the group mean) — Fader, Hardie & Lee (2005),
    Figure 4."""
    group = np.minimum(cal_hold["x"].to_numpy(dtype=np.int64), max_x)
    sums, _ = _holdout_predictions(model, cal_hold, group, max_x + 1, max_draws)
    w = customer_weights(cal_hold)
    customers = np.bincount(group, weights=w, minlength=max_x + 1)
    actual = np.bincount(group, weights=w * cal_hold["x_holdout"].to_numpy(dtype=float), minlength=max_x + 1)
    rows = []
    for g in range(max_x + 1):
        if customers[g] == 0:
            continue
        means = sums[:, g] / customers[g]
        lo, hi = _interval(means)
        rows.append(
            {
                "x": f"{g}+" if g == max_x else str(g),
                "customers": int(round(customers[g])),
                "actual": float(actual[g] / customers[g]),
                "predicted": float(means.mean()),
                "predicted_low": lo,
                "predicted_high": hi,
            }
        )
    return pd.DataFrame(rows)


def tracking(
    model: CLVModel,
    transactions: Transactions,
    *,
    calibration_end: str | pd.Timestamp,
    holdout_end: str | pd.Timestamp,
    time_unit: str = "week",
    max_draws: int = 200,
    memory_limit: str | None = None,
    zero_amount_purchases: bool = False,
    cohorts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cumulative repeat transactions per period, actual against expected, over calibration and
    holdout (Fader, Hardie & Lee 2005, Figure 2), for the customers acquired by
    ``calibration_end``. ``transactions``: the validated log, a DataFrame or a Parquet file
    (counted by date in DuckDB, :func:`cbcv.data.summary.purchase_days`, out of core). The
    expectation sums, over customers, the population mean E[X(t − t_i)] since each customer's
    first purchase t_i. A model with covariates needs ``cohorts``: the customers per first
    purchase date (``first_purchase``) and covariate row (``count``), each such cohort at its
    group's parameters."""
    days = unit_days(time_unit)
    by_date = purchase_days(
        transactions, calibration_end=calibration_end, memory_limit=memory_limit,
        zero_amount_purchases=zero_amount_purchases,
    )
    dates = by_date["date"].to_numpy(dtype="datetime64[ns]")
    acquired = by_date["new_customers"].to_numpy(dtype=float)
    first_dates = dates[acquired > 0]
    start = first_dates.min()
    end = pd.Timestamp(holdout_end)
    n_periods = int(np.ceil(((end - start) / pd.Timedelta(days=1) + 1) / days))
    edges = start + pd.to_timedelta(np.arange(1, n_periods + 1) * days, unit="D")
    # repeat transactions dated before each period's end (the next period's start)
    cumulative = np.concatenate([[0.0], np.cumsum(by_date["repeat_days"].to_numpy(dtype=float))])
    actual = cumulative[np.searchsorted(dates, edges.to_numpy(), side="left")]

    # expected: one term per acquisition date (and covariate row), weighted by its customers
    period_ends = np.arange(1, n_periods + 1, dtype=float)

    def since(part: Any, dates: np.ndarray, counts: np.ndarray) -> np.ndarray:
        t_unique = (dates - start) / np.timedelta64(1, "D") / days
        ages = np.clip(period_ends[:, None] - t_unique[None, :], 0.0, None)  # (periods, cohorts)
        flat = expected_purchases_population(part, ages.ravel(), max_draws=max_draws)  # (draws, n)
        return (flat.reshape(flat.shape[0], *ages.shape) * counts[None, None, :]).sum(axis=2)

    if isinstance(model, CovariateModel):
        if cohorts is None:
            raise CbcvError(f"{model.name} with covariates: tracking needs the cohorts by first purchase and covariates")
        dates = pd.to_datetime(cohorts["first_purchase"]).to_numpy(dtype="datetime64[ns]")
        counts = cohorts["count"].to_numpy(dtype=float)
        expected = sum(since(part, dates[rows], counts[rows]) for rows, part in covariate_parts(model, cohorts))
    else:
        expected = since(model, first_dates, acquired[acquired > 0])
    lo, hi = np.quantile(expected, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    cal_end = pd.Timestamp(calibration_end)
    return pd.DataFrame(
        {
            "period": np.arange(1, n_periods + 1),
            "period_end": edges - pd.Timedelta(days=1),
            "actual": actual,
            "expected": expected.mean(axis=0),
            "expected_low": lo,
            "expected_high": hi,
            "holdout": (edges - pd.Timedelta(days=1)) > cal_end,
        }
    )


def p_alive_calibration(model: CLVModel, cal_hold: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Customers grouped by predicted P(alive) at the end of calibration: mean P(alive) against
    the share who bought in the holdout. Buying in the holdout implies being alive, so for a
    well-calibrated model the observed share sits below P(alive) (by the chance that a live
    customer happens not to buy). On CDNOW, BG/NBD's low-P(alive) bins hold frequent buyers with
    a long silence, many of whom buy again: the table shows where P(alive) is too pessimistic."""
    _require(cal_hold, ("x", "t_x", "T", "x_holdout"))
    zeros = np.zeros(len(cal_hold), dtype=np.int64)
    _, pa = _grouped_predictions(lambda rows, _: p_alive(model, rows), cal_hold, zeros, 1, n_model_draws(model))
    edges = np.linspace(0.0, 1.0, bins + 1)
    group = np.clip(np.digitize(pa, edges[1:-1]), 0, bins - 1)
    w = customer_weights(cal_hold)
    active = (cal_hold["x_holdout"].to_numpy() > 0).astype(float)
    customers = np.bincount(group, weights=w, minlength=bins)
    sum_pa = np.bincount(group, weights=w * pa, minlength=bins)
    sum_active = np.bincount(group, weights=w * active, minlength=bins)
    rows = []
    for g in range(bins):
        if customers[g] > 0:
            rows.append(
                {
                    "p_alive_bin": f"{edges[g]:.1f}–{edges[g + 1]:.1f}",
                    "customers": int(round(customers[g])),
                    "mean_p_alive": float(sum_pa[g] / customers[g]),
                    "share_active_in_holdout": float(sum_active[g] / customers[g]),
                }
            )
    return pd.DataFrame(rows)


def frequency_ppc(
    model: CLVModel, cal_hold: pd.DataFrame, *, max_x: int = 7, n_draws: int = 100, seed: int = 0
) -> pd.DataFrame:
    """Posterior predictive check of the calibration repeat-frequency histogram: customers with
    x = 0, 1, …, ``max_x``+ observed, against replicated data sets simulated from ``n_draws``
    posterior draws with each customer's own T. A counted base of more than
    :data:`PPC_CUSTOMERS` customers is checked on a seeded random sample of that many
    (``attrs["sampled"]`` is then True). A model with covariates simulates each customer at its
    covariate group's parameters (``cal_hold`` holds the covariate columns)."""
    if model.name not in ("bgnbd", "pareto_nbd"):
        raise CbcvError(f"frequency_ppc: no simulator for model {model.name!r}")
    parts = [(rows, part.draws()) for rows, part in covariate_parts(model, cal_hold)]
    rng = np.random.default_rng(seed)
    n_total = len(next(iter(parts[0][1].values())))
    idx = rng.choice(n_total, size=min(n_draws, n_total), replace=False)
    w = customer_weights(cal_hold)
    sampled = w.sum() > PPC_CUSTOMERS
    times = np.rint(w).astype(np.int64)
    if sampled:  # customers drawn without replacement, so each row gives at most its count
        times = rng.multivariate_hypergeometric(times, PPC_CUSTOMERS)
    T_all, x_all = cal_hold["T"].to_numpy(dtype=float), cal_hold["x"].to_numpy(dtype=np.int64)
    x_observed = np.repeat(x_all, times)
    counts = np.zeros((len(idx), max_x + 1))
    for k, i in enumerate(idx):
        for j, (rows, post) in enumerate(parts):
            T = np.repeat(T_all[rows], times[rows])
            if T.size == 0:
                continue
            if model.name == "bgnbd":
                params: BGNBDParams | ParetoNBDParams = BGNBDParams(
                    r=post["r"][i], alpha=post["alpha"][i], a=post["a"][i], b=post["b"][i]
                )
            else:
                params = ParetoNBDParams(r=post["r"][i], alpha=post["alpha"][i], s=post["s"][i], beta=post["beta"][i])
            sim = simulate_summaries(params, len(T), T, seed=int(seed * 100_003 + k) + 7919 * j)
            counts[k] += np.bincount(np.minimum(sim["x"].to_numpy(dtype=int), max_x), minlength=max_x + 1)
    observed = np.bincount(np.minimum(x_observed, max_x), minlength=max_x + 1)
    lo, hi = np.quantile(counts, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    out = pd.DataFrame(
        {
            "x": [str(i) if i < max_x else f"{max_x}+" for i in range(max_x + 1)],
            "observed": observed.astype(float),
            "replicated_mean": counts.mean(axis=0),
            "replicated_low": lo,
            "replicated_high": hi,
        }
    )
    out.attrs["sampled"] = bool(sampled)
    return out


def weighted_loo(model: CLVModel, max_elements: int | None = None) -> dict[str, float] | None:
    """PSIS-LOO (Vehtari, Gelman & Gabry 2017) of a sampled fit over its customers, computed
    once per distinct row of the data it was fitted on and weighted by the row's customers:
    ``elpd_loo``, its standard error ``se`` (√n × the population sd of the pointwise elpd, as
    ArviZ), ``p_loo`` and the ``draws`` used. Equal to ``az.loo`` on the per-customer
    log-likelihood. Draws are thinned evenly so that draws × rows stays within
    ``max_elements`` (default :data:`LOO_ELEMENTS`); ``None`` when that leaves fewer than
    :data:`LOO_MIN_DRAWS`."""
    max_elements = LOO_ELEMENTS if max_elements is None else max_elements
    if model.arrays is None or model.idata is None:
        raise CbcvError(f"{model.name}: LOO needs the data the model was fitted on")
    post = model.idata.posterior
    rows, total = len(model.arrays["weight"]), post.sizes["chain"] * post.sizes["draw"]
    keep = min(post.sizes["draw"], max_elements // (rows * post.sizes["chain"]))
    if keep * post.sizes["chain"] < min(LOO_MIN_DRAWS, total):
        return None
    if keep < post.sizes["draw"]:
        post = post.isel(draw=np.linspace(0, post.sizes["draw"] - 1, keep).round().astype(int))
    ll = model.log_likelihood(az.InferenceData(posterior=post), expand=False)
    w = np.asarray(model.arrays["weight"], dtype=float)
    loo = az.loo(az.InferenceData(posterior=post, log_likelihood=ll.to_dataset(name="obs")), pointwise=True)
    elpd_i = np.asarray(loo.loo_i, dtype=float)
    values = ll.values.reshape(-1, ll.shape[-1])
    lppd_i = logsumexp(values, axis=0) - np.log(values.shape[0])
    n = w.sum()
    elpd = float(w @ elpd_i)
    var = float(w @ (elpd_i - elpd / n) ** 2) / n
    return {"elpd_loo": elpd, "se": float(np.sqrt(n * var)), "p_loo": float(w @ (lppd_i - elpd_i)),
            "draws": int(ll.shape[0] * ll.shape[1])}


def compare_models(models: Mapping[str, CLVModel], cal_hold: pd.DataFrame) -> pd.DataFrame:
    """One row per model: holdout total error, per-customer mean absolute error of holdout
    transactions, and LOO (elpd, its standard error, p_loo; :func:`weighted_loo`) where the fit
    was sampled; ``attrs["loo_skipped"]`` names the sampled fits whose LOO was left out (more
    distinct summaries than :data:`LOO_ELEMENTS` allows)."""
    rows, skipped = [], []
    w = customer_weights(cal_hold)
    actual = cal_hold["x_holdout"].to_numpy(dtype=float) if "x_holdout" in cal_hold else None
    for name, model in models.items():
        sums, per_row = _holdout_predictions(model, cal_hold, np.zeros(len(cal_hold), dtype=np.int64), 1, 1000)
        totals = HoldoutTotals(model.name, _actual_total(cal_hold), sums[:, 0])
        assert actual is not None
        row = {
            "model": name,
            "holdout_actual": totals.actual,
            "holdout_predicted": totals.mean,
            "holdout_error_pct": totals.error_pct,
            "mae_per_customer": float(w @ np.abs(per_row - actual) / w.sum()),
            "elpd_loo": np.nan,
            "elpd_loo_se": np.nan,
            "p_loo": np.nan,
        }
        idata = model.idata
        if idata is not None and idata.attrs.get("method") == "nuts":
            loo = weighted_loo(model)
            if loo is not None:
                row.update({"elpd_loo": loo["elpd_loo"], "elpd_loo_se": loo["se"], "p_loo": loo["p_loo"]})
            else:
                skipped.append(name)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["loo_skipped"] = skipped
    return out


def choose_default(comparison: pd.DataFrame) -> tuple[str, str]:
    """The default purchase model and the reason: the best LOO (elpd) when every model has one
    and the difference exceeds twice its standard error, else the smallest absolute holdout
    error of total transactions."""
    table = comparison.set_index("model")
    if table["elpd_loo"].notna().all() and len(table) > 1:
        ranked = table.sort_values("elpd_loo", ascending=False)
        best, second = ranked.index[0], ranked.index[1]
        gap = ranked.loc[best, "elpd_loo"] - ranked.loc[second, "elpd_loo"]
        se = float(np.hypot(ranked.loc[best, "elpd_loo_se"], ranked.loc[second, "elpd_loo_se"]))
        if gap > 2 * se:
            return str(best), f"{best} has the best LOO (elpd {ranked.loc[best, 'elpd_loo']:.1f}, {gap:.1f} ahead of {second}, more than twice the standard error {se:.1f})"
    best = str(table["holdout_error_pct"].abs().idxmin())
    return best, (
        f"{best} predicts the holdout total best ({table.loc[best, 'holdout_predicted']:,.0f} against "
        f"{table.loc[best, 'holdout_actual']:,.0f} actual, {table.loc[best, 'holdout_error_pct']:+.1f}%); "
        "LOO does not separate the models by more than twice its standard error"
        if table["elpd_loo"].notna().all() else
        f"{best} predicts the holdout total best ({table.loc[best, 'holdout_error_pct']:+.1f}%)"
    )
