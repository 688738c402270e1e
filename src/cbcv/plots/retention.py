"""Figures of the retention models' holdout validation (:mod:`cbcv.predict.cohort_retention`):
each cohort's survivors through the holdout period, predicted against actual, and the holdout
survival error of each pooling by cohort, youngest last.

Built without pyplot in the house style (:mod:`cbcv.plots.style`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbcv.plots.style import (
    COLORS,
    PALETTE,
    axes_or_new,
    finish_axes,
    percent_axis,
    sequential_colors,
    style_context,
)

#: Cohorts drawn at most in :func:`plot_holdout_survival` (evenly spread, the youngest kept).
MAX_COHORTS = 8


def _spread(labels: list[str], k: int) -> list[str]:
    """At most ``k`` labels evenly spread over ``labels`` (sorted), the last one kept."""
    if len(labels) <= k:
        return labels
    idx = np.unique(np.linspace(0, len(labels) - 1, k).round().astype(int))
    return [labels[i] for i in idx]


def plot_holdout_survival(table: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None,
                          max_cohorts: int = MAX_COHORTS) -> Figure:
    """Share of each cohort's subscribers active at the calibration end who are still subscribed
    at each holdout renewal: actual (markers) against predicted (line, with its interval band).
    ``table``: :func:`cbcv.predict.cohort_retention.holdout_survival`; at most ``max_cohorts``
    cohorts, evenly spread, drawn."""
    cohorts = _spread(sorted(table["cohort"].astype(str).unique()), max_cohorts)
    colors = sequential_colors(len(cohorts))
    with style_context():
        fig, ax = axes_or_new(ax, "wide")
        for color, cohort in zip(colors, cohorts, strict=True):
            rows = table[table["cohort"].astype(str) == cohort].sort_values("tenure")
            share = rows["eligible"].to_numpy(dtype=float)
            share = np.where(share > 0, share, np.nan)
            x = rows["tenure"].to_numpy()
            ax.fill_between(x, rows["low"] / share, rows["high"] / share, color=color, alpha=0.2, linewidth=0)
            ax.plot(x, rows["predicted"] / share, color=color, label=f"{cohort}")
            ax.plot(x, rows["actual"] / share, "o", color=color, markersize=4)
        percent_axis(ax)
        finish_axes(ax, "Renewals since acquisition", "Still subscribed (of those who could renew)",
                    title if title is not None else "Holdout survival by cohort: predicted (line, 90% band) "
                    "and actual (dots)", legend={"loc": "lower left", "fontsize": "small", "ncol": 2, "title": "cohort"})
    return fig


def plot_pooling_errors(errors: Mapping[str, pd.DataFrame], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """The holdout survival error of each fit by cohort (percentage points of the cohort's
    subscribers active at the calibration end), oldest cohort first: where pooling pays, the
    youngest cohorts on the right. ``errors``: fit name → :func:`cbcv.predict.cohort_retention.survival_error`'s
    ``by_cohort``."""
    with style_context():
        fig, ax = axes_or_new(ax, "wide")
        cohorts = sorted({str(c) for e in errors.values() for c in e["cohort"]})
        x = np.arange(len(cohorts))
        for i, (name, table) in enumerate(errors.items()):
            by = table.assign(cohort=table["cohort"].astype(str)).set_index("cohort")["error_pp"].reindex(cohorts)
            ax.plot(x, by.to_numpy(), marker="o", markersize=3, color=PALETTE[i % len(PALETTE)], label=name)
        step = max(1, len(cohorts) // 12)
        ax.set_xticks(x[::step], cohorts[::step], rotation=45, ha="right")
        ax.axhline(0, color=COLORS["reference"], linewidth=0.8)
        finish_axes(ax, "Cohort (oldest first)", "Absolute error (percentage points)",
                    title if title is not None else "Holdout survival error at each cohort's last renewal",
                    legend={"loc": "upper left", "fontsize": "small"})
    return fig
