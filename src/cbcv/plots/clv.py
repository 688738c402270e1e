"""Figures of customer lifetime value (:mod:`cbcv.clv`): the distribution of CLV across customers
and of the base's total, the P(alive) histogram, CLV by group (cohort, value decile, any
attribute) and the concentration of equity (Lorenz curve).

Every function takes a :class:`cbcv.clv.CustomerCLV` (or the out-of-core
:class:`cbcv.clv.scoring.ScoredBase`) or one of its tables and returns a
:class:`matplotlib.figure.Figure` built without pyplot in the house style; single-panel
functions accept ``ax``. Intervals are the result's equal-tailed credible intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbcv.clv import CLVTables
from cbcv.core.draws import draw_stats
from cbcv.plots.style import (
    COLORS,
    axes_or_new,
    finish_axes,
    money_formatter,
    money_label,
    new_figure,
    style_context,
)


def plot_clv_distribution(
    clv: CLVTables, *, currency: str | None = None, bins: int = 40, title: str | None = None
) -> Figure:
    """Two panels: the histogram of customers' posterior-mean CLV (log-spaced bins; customers
    with a CLV below one cent are counted in the first bin), and the posterior of the base's
    total CLV with its median and credible interval."""
    with style_context():
        fig, (left, right) = new_figure("wide", ncols=2)
        edges, counts = clv.mean_clv_histogram(bins)
        left.hist(edges[:-1], bins=edges, weights=counts, color=COLORS["primary"])
        left.set_xscale("log")
        left.xaxis.set_major_formatter(money_formatter())
        finish_axes(
            left, money_label("posterior mean CLV per customer", currency), "customers",
            "CLV across customers",
        )
        total = clv.total
        st = draw_stats(total, clv.interval)
        right.hist(total, bins=min(40, max(5, total.size // 10)), color=COLORS["secondary"])
        for k, style in (("median", "-"), ("low", "--"), ("high", "--")):
            right.axvline(float(st[k]), color=COLORS["reference"], linestyle=style)
        right.xaxis.set_major_formatter(money_formatter())
        finish_axes(
            right, money_label("total CLV of the base", currency), "draws",
            f"Total: median and {clv.interval:.0%} interval",
        )
        if title:
            fig.suptitle(title)
    return fig


def plot_p_alive(table: pd.DataFrame, *, ax: Axes | None = None, title: str | None = "P(alive) at the end of calibration") -> Figure:
    """Bars of customers per P(alive) bin (by posterior mean) with whiskers from the per-draw
    counts' interval (:meth:`CustomerCLV.p_alive_distribution`)."""
    with style_context():
        fig, ax = axes_or_new(ax)
        width = (table["high_edge"] - table["low_edge"]).to_numpy()
        mid = ((table["high_edge"] + table["low_edge"]) / 2).to_numpy()
        err = np.vstack([
            np.maximum(table["customers"] - table["customers_low"], 0),
            np.maximum(table["customers_high"] - table["customers"], 0),
        ])
        ax.bar(mid, table["customers"], width=0.9 * width, yerr=err, color=COLORS["primary"],
               ecolor=COLORS["reference"], capsize=2)
        ax.set_xlim(0, 1)
        finish_axes(ax, "P(alive)", "customers", title, percent="x")
    return fig


def plot_clv_by_group(
    table: pd.DataFrame,
    column: str,
    *,
    per_customer: bool = False,
    currency: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Bars of each group's CLV (posterior mean) with the credible interval as whiskers, from
    :meth:`CustomerCLV.by` (``column`` its group column). ``per_customer=True`` divides by the
    group's customers. Bars in the table's order (``ax.patches``), whiskers in an errorbar container."""
    with style_context():
        fig, ax = axes_or_new(ax)
        size = table["customers"].where(table["customers"] > 0).to_numpy(dtype=float) if per_customer else 1.0
        mean = table["mean"].to_numpy() / size
        low = table["low"].to_numpy() / size
        high = table["high"].to_numpy() / size
        x = np.arange(len(table))
        ax.bar(x, mean, yerr=np.vstack([np.maximum(mean - low, 0), np.maximum(high - mean, 0)]),
               color=COLORS["primary"], ecolor=COLORS["reference"], capsize=3)
        ax.set_xticks(x, [str(v) for v in table[column]], rotation=45 if len(table) > 8 else 0)
        ax.yaxis.set_major_formatter(money_formatter())
        ylabel = money_label("CLV per customer" if per_customer else "total CLV", currency)
        finish_axes(ax, column.replace("_", " "), ylabel, title)
    return fig


def lorenz_data(clv: CLVTables) -> pd.DataFrame:
    """Cumulative share of customers (ranked by posterior mean CLV, most valuable first) against
    their cumulative share of the total posterior mean CLV (:meth:`cbcv.clv.CLVTables.lorenz`)."""
    return clv.lorenz()


def plot_concentration(clv: CLVTables, *, ax: Axes | None = None, title: str | None = "Concentration of customer equity") -> Figure:
    """The Lorenz-type curve of :func:`lorenz_data`, with the share held by the top 1% and 10%
    (posterior mean and credible interval, from :meth:`CustomerCLV.concentration`) marked."""
    with style_context():
        fig, ax = axes_or_new(ax)
        curve = lorenz_data(clv)
        ax.plot(curve["customer_share"], curve["clv_share"], color=COLORS["primary"], label="mean CLV")
        ax.plot([0, 1], [0, 1], color=COLORS["reference"], linestyle=":", label="equal value")
        conc = clv.concentration()
        for _, row in conc.iterrows():
            frac = float(str(row["customers"]).removeprefix("top ").removesuffix("%")) / 100
            ax.errorbar([frac], [row["mean"]], yerr=[[row["mean"] - row["low"]], [row["high"] - row["mean"]]],
                        fmt="o", color=COLORS["accent"], capsize=3)
            ax.annotate(f"{row['customers']}: {row['mean']:.0%}", (frac, row["mean"]),
                        textcoords="offset points", xytext=(8, -12))
        finish_axes(
            ax, "share of customers (most valuable first)", "share of total CLV", title,
            percent="xy", legend={"loc": "lower right"},
        )
    return fig
