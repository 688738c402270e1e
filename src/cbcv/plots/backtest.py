"""Figures of the backtests (:mod:`cbcv.valuation.backtest`): new customers forecast from the
calibration end against the actuals, and the rolling-origin MAPE by horizon of the model and
the two naive baselines, one panel per series.

Built without pyplot in the house style (:mod:`cbcv.plots.style`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbcv.plots.style import COLORS, PALETTE, axes_or_new, finish_axes, new_figure, style_context
from cbcv.valuation.backtest import METHODS, SERIES, AcquisitionBacktest, Backtest

#: Series names as the figures label them.
SERIES_LABELS = {"new_customers": "New customers", "active_customers": "Active customers",
                 "transactions": "Transactions", "revenue": "Revenue", "orders": "Orders",
                 "customers_end": "Customers (end)", "lost_customers": "Lost customers"}


def plot_acquisition_backtest(test: AcquisitionBacktest, *, ax: Axes | None = None,
                              title: str | None = None) -> Figure:
    """Bars of the actual new customers per forecast period beside the forecast mean with its
    credible interval (whiskers)."""
    t = test.table
    x = np.arange(len(t))
    with style_context():
        fig, ax = axes_or_new(ax, "single")
        ax.bar(x - 0.2, t["actual"], width=0.4, color=COLORS["reference"], label="actual")
        err = np.vstack([t["predicted"] - t["low"], t["high"] - t["predicted"]]).clip(min=0)
        ax.bar(x + 0.2, t["predicted"], width=0.4, color=COLORS["primary"], yerr=err, capsize=3,
               label=f"forecast from {test.origin} ({test.interval:.0%} interval)")
        ax.set_xticks(x, [str(p) for p in t["period"]])
        ax.set_ylim(bottom=0)
        finish_axes(ax, "Period", "New customers",
                    title if title is not None else f"New customers forecast from {test.origin}",
                    legend={"loc": "upper left", "fontsize": "small"})
    return fig


def plot_backtest_mape(test: Backtest) -> Figure:
    """MAPE by horizon, one panel per series, a line per method (the model solid)."""
    table = test.mape()
    present = list(dict.fromkeys(table["series"]))
    series = [s for s in SERIES if s in present] + [s for s in present if s not in SERIES]
    with style_context():
        fig, axes = new_figure("wide", ncols=len(series))
        for ax, s in zip(np.atleast_1d(axes), series, strict=True):
            rows = table[table["series"] == s]
            for i, method in enumerate(METHODS):
                m = rows[rows["method"] == method]
                if m.empty:
                    continue
                ax.plot(m["horizon"], m["mape"], marker="o", color=PALETTE[i],
                        linestyle="-" if i == 0 else "--", label=method)
            ax.set_xticks(sorted(set(rows["horizon"])))
            ax.set_ylim(bottom=0)
            finish_axes(ax, f"Horizon ({test.period}s)", "MAPE (%)", SERIES_LABELS.get(s, s))
        np.atleast_1d(axes)[0].legend(loc="best", fontsize="small")
    return fig
