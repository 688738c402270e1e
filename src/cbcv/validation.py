"""Holdout validation and model comparison for the purchase-frequency models.

Fader, Hardie & Lee (2005, "Counting Your Customers the Easy Way") judge a model by how well it
predicts the holdout period it never saw: total repeat transactions, the conditional
expectations (mean holdout transactions by calibration frequency), and the weekly cumulative
tracking of repeat transactions. To these we add a P(alive) calibration table, a posterior
predictive check of the calibration frequency histogram, and LOO (Vehtari, Gelman & Gabry 2017).

Every function takes a fitted model and the calibration/holdout summary
(:func:`cbcv.data.summary.calibration_holdout`) and returns a DataFrame or a frozen dataclass;
predictions come from :mod:`cbcv.predict` and keep their posterior draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd

from cbcv.data.simulate import BGNBDParams, ParetoNBDParams, simulate_summaries
from cbcv.data.summary import unit_days
from cbcv.errors import CbcvError
from cbcv.models.base import CLVModel
from cbcv.predict import expected_purchases, expected_purchases_population, p_alive

INTERVAL = 0.9


def _interval(draws: np.ndarray, prob: float = INTERVAL) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
    return float(lo), float(hi)


def _require(cal_hold: pd.DataFrame, cols: tuple[str, ...]) -> None:
    missing = [c for c in cols if c not in cal_hold]
    if missing:
        raise CbcvError(f"holdout validation needs columns {missing} (use calibration_holdout)")


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


def holdout_totals(model: CLVModel, cal_hold: pd.DataFrame, max_draws: int = 1000) -> HoldoutTotals:
    """Total expected holdout repeat transactions per posterior draw against the actual total."""
    _require(cal_hold, ("x", "t_x", "T", "x_holdout", "T_holdout"))
    t = float(cal_hold["T_holdout"].iloc[0])
    per = expected_purchases(model, t, cal_hold, max_draws=max_draws)
    return HoldoutTotals(model.name, float(cal_hold["x_holdout"].sum()), per.sum(axis=1))


def conditional_expectations(
    model: CLVModel, cal_hold: pd.DataFrame, max_x: int = 7, max_draws: int = 1000
) -> pd.DataFrame:
    """Mean holdout transactions by calibration frequency x = 0, 1, …, ``max_x``+ : actual and
    predicted (posterior mean and 90% interval of the group mean) — Fader, Hardie & Lee (2005),
    Figure 4."""
    _require(cal_hold, ("x", "t_x", "T", "x_holdout", "T_holdout"))
    t = float(cal_hold["T_holdout"].iloc[0])
    pred = expected_purchases(model, t, cal_hold, max_draws=max_draws)
    group = np.minimum(cal_hold["x"].to_numpy(dtype=int), max_x)
    rows = []
    for g in range(max_x + 1):
        mask = group == g
        if not mask.any():
            continue
        means = pred[:, mask].mean(axis=1)
        lo, hi = _interval(means)
        rows.append(
            {
                "x": f"{g}+" if g == max_x else str(g),
                "customers": int(mask.sum()),
                "actual": float(cal_hold["x_holdout"].to_numpy()[mask].mean()),
                "predicted": float(means.mean()),
                "predicted_low": lo,
                "predicted_high": hi,
            }
        )
    return pd.DataFrame(rows)


def tracking(
    model: CLVModel,
    transactions: pd.DataFrame,
    cal_hold: pd.DataFrame,
    *,
    calibration_end: str | pd.Timestamp,
    holdout_end: str | pd.Timestamp,
    time_unit: str = "week",
    max_draws: int = 200,
) -> pd.DataFrame:
    """Cumulative repeat transactions per period, actual against expected, over calibration and
    holdout (Fader, Hardie & Lee 2005, Figure 2). The expectation sums, over customers, the
    population mean E[X(t − t_i)] since each customer's first purchase t_i."""
    from cbcv.data.transactions import to_daily

    days = unit_days(time_unit)
    first = pd.to_datetime(cal_hold["first_purchase"]).to_numpy()
    start = first.min()
    end = pd.Timestamp(holdout_end)
    n_periods = int(np.ceil(((end - start) / pd.Timedelta(days=1) + 1) / days))
    edges = start + pd.to_timedelta(np.arange(1, n_periods + 1) * days, unit="D")
    t_i = (first - start) / np.timedelta64(1, "D") / days  # acquisition time in units

    daily = to_daily(transactions)
    daily = daily[daily["customer_id"].isin(set(cal_hold["customer_id"].astype(str)))]
    firsts = daily.groupby("customer_id")["date"].transform("min")
    repeat_dates = daily.loc[daily["date"] > firsts, "date"].to_numpy()
    actual = np.searchsorted(np.sort(repeat_dates), edges.to_numpy(), side="left")

    # expected: unique acquisition times, weighted, to keep it cheap
    t_unique, counts = np.unique(t_i, return_counts=True)
    period_ends = np.arange(1, n_periods + 1, dtype=float)
    age = period_ends[:, None] - t_unique[None, :]  # (periods, cohorts)
    ages = np.clip(age, 0.0, None)
    flat = expected_purchases_population(model, ages.ravel(), max_draws=max_draws)  # (draws, n)
    expected = (flat.reshape(flat.shape[0], *ages.shape) * counts[None, None, :]).sum(axis=2)
    lo, hi = np.quantile(expected, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    cal_end = pd.Timestamp(calibration_end)
    return pd.DataFrame(
        {
            "period": np.arange(1, n_periods + 1),
            "period_end": edges - pd.Timedelta(days=1),
            "actual": actual.astype(float),
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
    pa = p_alive(model, cal_hold).mean(axis=0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    group = np.clip(np.digitize(pa, edges[1:-1]), 0, bins - 1)
    active = cal_hold["x_holdout"].to_numpy() > 0
    rows = []
    for g in range(bins):
        m = group == g
        if m.any():
            rows.append(
                {
                    "p_alive_bin": f"{edges[g]:.1f}–{edges[g + 1]:.1f}",
                    "customers": int(m.sum()),
                    "mean_p_alive": float(pa[m].mean()),
                    "share_active_in_holdout": float(active[m].mean()),
                }
            )
    return pd.DataFrame(rows)


def frequency_ppc(
    model: CLVModel, cal_hold: pd.DataFrame, *, max_x: int = 7, n_draws: int = 100, seed: int = 0
) -> pd.DataFrame:
    """Posterior predictive check of the calibration repeat-frequency histogram: customers with
    x = 0, 1, …, ``max_x``+ observed, against replicated data sets simulated from ``n_draws``
    posterior draws with each customer's own T."""
    if model.name not in ("bgnbd", "pareto_nbd"):
        raise CbcvError(f"frequency_ppc: no simulator for model {model.name!r}")
    post = model.draws()
    rng = np.random.default_rng(seed)
    n_total = len(next(iter(post.values())))
    idx = rng.choice(n_total, size=min(n_draws, n_total), replace=False)
    T = cal_hold["T"].to_numpy(dtype=float)
    counts = np.zeros((len(idx), max_x + 1))
    for k, i in enumerate(idx):
        if model.name == "bgnbd":
            params: BGNBDParams | ParetoNBDParams = BGNBDParams(
                r=post["r"][i], alpha=post["alpha"][i], a=post["a"][i], b=post["b"][i]
            )
        else:
            params = ParetoNBDParams(r=post["r"][i], alpha=post["alpha"][i], s=post["s"][i], beta=post["beta"][i])
        sim = simulate_summaries(params, len(T), T, seed=int(seed * 100_003 + k))
        counts[k] = np.bincount(np.minimum(sim["x"].to_numpy(dtype=int), max_x), minlength=max_x + 1)
    observed = np.bincount(np.minimum(cal_hold["x"].to_numpy(dtype=int), max_x), minlength=max_x + 1)
    lo, hi = np.quantile(counts, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
    return pd.DataFrame(
        {
            "x": [str(i) if i < max_x else f"{max_x}+" for i in range(max_x + 1)],
            "observed": observed.astype(float),
            "replicated_mean": counts.mean(axis=0),
            "replicated_low": lo,
            "replicated_high": hi,
        }
    )


def compare_models(models: Mapping[str, CLVModel], cal_hold: pd.DataFrame) -> pd.DataFrame:
    """One row per model: holdout total error, per-customer mean absolute error of holdout
    transactions, and LOO (elpd, its standard error, p_loo) where the fit was sampled."""
    rows = []
    for name, model in models.items():
        totals = holdout_totals(model, cal_hold)
        t = float(cal_hold["T_holdout"].iloc[0])
        per_customer = expected_purchases(model, t, cal_hold).mean(axis=0)
        mae = float(np.abs(per_customer - cal_hold["x_holdout"].to_numpy()).mean())
        row = {
            "model": name,
            "holdout_actual": totals.actual,
            "holdout_predicted": totals.mean,
            "holdout_error_pct": totals.error_pct,
            "mae_per_customer": mae,
            "elpd_loo": np.nan,
            "elpd_loo_se": np.nan,
            "p_loo": np.nan,
        }
        idata = model.idata
        if idata is not None and idata.attrs.get("method") == "nuts":
            ll = model.log_likelihood()
            loo_data = az.InferenceData(posterior=idata.posterior, log_likelihood=ll.to_dataset(name="obs"))
            loo = az.loo(loo_data)
            row.update({"elpd_loo": float(loo.elpd_loo), "elpd_loo_se": float(loo.se), "p_loo": float(loo.p_loo)})
        rows.append(row)
    return pd.DataFrame(rows)


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
