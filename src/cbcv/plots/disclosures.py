"""Figures of a company known from its disclosures: the disclosed series, the model's tracking of
them (fitted and forecast against the actuals, McCarthy & Fader 2018, Figure 3 style) and the
retention curve recovered from the aggregates.

Built without pyplot in the house style (:mod:`cbcv.plots.style`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbcv.plots.style import COLORS, finish_axes, money_formatter, new_figure, style_context

#: Series names as the figures label them.
LABELS = {"new_customers": "New customers", "lost_customers": "Lost customers", "customers_end": "Customers (end)",
          "active_customers": "Active customers", "orders": "Orders", "revenue": "Revenue",
          "marketing_spend": "Marketing spend"}
MONEY = ("revenue", "marketing_spend")


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 2)
    return (n + cols - 1) // cols, cols


def _period_ticks(ax: Axes, labels: list[str], cols: int) -> None:
    """Period labels on the x axis, few enough not to touch (four per panel beside another,
    eight alone), every year at the same quarter when quarterly."""
    step = max(1, math.ceil(len(labels) / (4 if cols > 1 else 8)))
    if step > 1 and labels and "Q" in labels[0]:
        step = 4 * math.ceil(step / 4)
    ax.set_xticks(np.arange(len(labels))[::step], labels[::step])


def plot_disclosed_series(table: pd.DataFrame, *, currency: str | None = None) -> Figure:
    """One panel per disclosed series: its reported values by period (gaps where not reported)."""
    series = [c for c in table.columns if table[c].notna().any()]
    rows, cols = _grid(len(series))
    x = np.arange(len(table))
    labels = [str(p) for p in table.index]
    with style_context():
        fig, axes = new_figure("tall", nrows=rows, ncols=cols)
        flat = np.atleast_1d(axes).ravel()
        for ax, s in zip(flat, series, strict=False):
            ax.plot(x, table[s].to_numpy(dtype=float), marker="o", color=COLORS["primary"])
            if s in MONEY:
                ax.yaxis.set_major_formatter(money_formatter(currency))
            ax.set_ylim(bottom=0)
            _period_ticks(ax, labels, cols)
            finish_axes(ax, "", "", LABELS.get(s, s))
        for ax in flat[len(series):]:
            ax.set_visible(False)
    return fig


def plot_tracking(forecast: pd.DataFrame, *, currency: str | None = None) -> Figure:
    """Per modelled series: the actuals (dots), the model's expectation over the fitted periods
    and the forecast after them (line) with its interval of a new report (band), and a line at
    the last disclosed period. ``forecast``: :meth:`cbcv.models.disclosures.DisclosureModel.forecast`."""
    series = [s for s in forecast["series"].unique() if forecast.loc[forecast["series"] == s, "actual"].notna().any()]
    rows, cols = _grid(len(series))
    with style_context():
        fig, axes = new_figure("tall", nrows=rows, ncols=cols)
        flat = np.atleast_1d(axes).ravel()
        for ax, s in zip(flat, series, strict=False):
            t = forecast[forecast["series"] == s].reset_index(drop=True)
            x = np.arange(len(t))
            ax.fill_between(x, t["pred_low"], t["pred_high"], color=COLORS["primary"], alpha=0.18, linewidth=0,
                            label="interval of a report")
            ax.plot(x, t["mean"], color=COLORS["primary"], label="model")
            actual = pd.to_numeric(t["actual"], errors="coerce")
            ax.plot(x, actual, "o", color=COLORS["secondary"], markersize=4, label="disclosed")
            fitted = t["horizon"].eq(0)
            if fitted.any() and not fitted.all():
                ax.axvline(int(np.flatnonzero(fitted)[-1]), color=COLORS["reference"], linestyle=":")
            if s in MONEY:
                ax.yaxis.set_major_formatter(money_formatter(currency))
            _period_ticks(ax, [str(p) for p in t["period"]], cols)
            ax.set_ylim(bottom=0)
            finish_axes(ax, "", "", LABELS.get(s, s))
        flat[0].legend(loc="upper left", fontsize="small")
        for ax in flat[len(series):]:
            ax.set_visible(False)
    return fig


def plot_retention_curve(curve: pd.DataFrame, *, reference: pd.DataFrame | None = None, period: str = "period") -> Figure:
    """The share of a cohort still a customer ``k`` periods after acquisition, with its credible
    interval (:meth:`cbcv.models.disclosures.DisclosureModel.retention_curve`); ``reference``: a
    second curve (same columns) to compare, e.g. a fit on the known cohorts."""
    with style_context():
        fig, axes = new_figure("single")
        ax = np.atleast_1d(axes)[0]
        ax.fill_between(curve["age"], curve["low"], curve["high"], color=COLORS["primary"], alpha=0.2, linewidth=0)
        ax.plot(curve["age"], curve["mean"], color=COLORS["primary"], marker="o", label="from the disclosures")
        if reference is not None:
            ax.errorbar(reference["age"], reference["mean"],
                        yerr=np.vstack([reference["mean"] - reference["low"], reference["high"] - reference["mean"]]),
                        color=COLORS["secondary"], marker="s", linestyle="--", capsize=3, label="reference")
            ax.legend(loc="upper right", fontsize="small")
        ax.set_ylim(0, 1.02)
        finish_axes(ax, f"{period.capitalize()}s since acquisition", "Share still a customer",
                    "Retention recovered from the aggregates")
    return fig
