"""Charts of the customer-management pages: intervals by group or owner, and the movement of
customer equity as a waterfall."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbcv.plots.style import (
    COLORS,
    axes_or_new,
    finish_axes,
    money_formatter,
    money_label,
    style_context,
)


def plot_interval_bars(
    labels: list[str], mean: np.ndarray, low: np.ndarray, high: np.ndarray, *, xlabel: str,
    currency: str | None = None, ax: Axes | None = None, title: str | None = None,
) -> Figure:
    """Horizontal bars of ``mean`` per label with the interval ``low``-``high`` as whiskers
    (money on the axis when ``currency`` is given); a line at zero."""
    with style_context():
        fig, ax = axes_or_new(ax)
        y = np.arange(len(labels))[::-1]
        mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
        colors = [COLORS["primary"] if m >= 0 else COLORS["reference"] for m in mean]
        ax.barh(y, mean, xerr=np.vstack([np.maximum(mean - low, 0), np.maximum(high - mean, 0)]), color=colors,
                ecolor="black", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, labels)
        if currency is not None:
            ax.xaxis.set_major_formatter(money_formatter())
        finish_axes(ax, money_label(xlabel, currency) if currency is not None else xlabel, "", title)
    return fig


def plot_movement(table: pd.DataFrame, *, currency: str | None = None, ax: Axes | None = None,
                  title: str | None = None) -> Figure:
    """The movement of customer equity as a waterfall: the opening bar, each line up or down
    (``sign``: how it enters), the closing bar (:meth:`cbcv.pipeline.equity_movement.Movement.table`)."""
    with style_context():
        fig, ax = axes_or_new(ax, "wide")
        level = 0.0
        for i, (line, row) in enumerate(table.iterrows()):
            value = float(row["mean"])
            if line in ("opening", "closing"):
                ax.bar(i, value, color=COLORS["primary"])
                level = value
                continue
            step = value * int(row["sign"])
            ax.bar(i, step, bottom=level, color=COLORS["primary"] if step >= 0 else COLORS["reference"])
            level += step
        ax.set_xticks(np.arange(len(table)), [str(s).split(" (")[0] for s in table["label"]], rotation=30, ha="right")
        ax.yaxis.set_major_formatter(money_formatter())
        finish_axes(ax, "", money_label("customer equity", currency), title)
    return fig
