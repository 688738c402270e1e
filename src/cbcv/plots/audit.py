"""Figures of the customer-base audit (:mod:`cbcv.audit`): the customer cohort chart (C3),
repeat-purchase curves by cohort, decile bars, the decile-migration heatmap, the whale curve and
the inter-purchase-time histogram.

Each function takes the DataFrame (or dataclass) produced by the matching :mod:`cbcv.audit`
function and returns a :class:`matplotlib.figure.Figure` built without pyplot (see
:mod:`cbcv.plots.style`); none calls ``plt.show``. Single-panel functions accept ``ax`` to draw
into an existing axes (its figure is returned).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from cbcv.audit.cohorts import c3_wide
from cbcv.audit.concentration import Concentration
from cbcv.audit.deciles import DecileMigration
from cbcv.core.escape import plot_text
from cbcv.plots.style import (
    COLORS,
    HEATMAP_CMAP,
    money_formatter,
    new_figure,
    percent_axis,
    sequential_colors,
    style_context,
)

_C3_LABELS = {
    "revenue": "Revenue",
    "active_customers": "Active customers",
    "transactions": "Transactions",
}
_SHARE_LABELS = {
    "customer_share": "Share of customers",
    "revenue_share": "Share of revenue",
    "transaction_share": "Share of transactions",
}
#: Whale curves with more points than this are drawn through this many interpolated points.
_MAX_CURVE_POINTS = 4000


def _axes(ax: Axes | None, size: str) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    return new_figure(size)


def _legend(ax: Axes, n: int, title: str) -> None:
    """Legend outside the axes on the right; several columns for many entries."""
    ax.legend(
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        ncols=1 if n <= 14 else int(np.ceil(n / 14)),
        fontsize="small",
        title_fontsize="small",
    )


def plot_c3(
    c3: pd.DataFrame,
    *,
    values: Sequence[str] = ("revenue",),
    currency: str | None = None,
    title: str | None = "Customer cohort chart (C3)",
) -> Figure:
    """Stacked areas of each cohort's contribution per calendar period, oldest cohort at the
    bottom (darkest), from :func:`cbcv.audit.c3_table`. One panel per entry of ``values``
    (``"revenue"``, ``"active_customers"``, ``"transactions"``), sharing the time axis.

    Each panel holds one area (``PolyCollection``) per cohort.
    """
    if not values:
        raise ValueError("values must name at least one of revenue, active_customers, transactions")
    with style_context():
        fig, axes = new_figure(
            "wide" if len(values) == 1 else "tall", nrows=len(values), sharex=True
        )
        axes = np.atleast_1d(axes)
        for i, (ax, value) in enumerate(zip(axes, values, strict=True)):
            wide = c3_wide(c3, value)
            # Each period is drawn as a flat step over its whole span (a period's total is not
            # a point in time), so the x values run to the end of the last period.
            starts = wide.index.to_timestamp(how="start")
            x = starts.append(pd.DatetimeIndex([(wide.index[-1] + 1).to_timestamp(how="start")]))
            ys = wide.to_numpy(dtype=float).T
            ys = np.concatenate([ys, ys[:, -1:]], axis=1)
            colors = sequential_colors(wide.shape[1])
            labels = [str(c) for c in wide.columns]
            ax.stackplot(
                x,
                ys,
                labels=labels,
                colors=colors,
                step="post",
                linewidth=0.3,
                edgecolor="white",
            )
            ax.set_ylabel(
                _C3_LABELS[value] + (f" ({plot_text(currency)})" if value == "revenue" and currency else "")
            )
            if value == "revenue":
                ax.yaxis.set_major_formatter(money_formatter())
            ax.set_xlim(x.min(), x.max())
            ax.set_ylim(bottom=0)
            if i == 0:
                _legend(ax, len(labels), "Cohort")
                if title:
                    ax.set_title(title)
        axes[-1].set_xlabel(f"Period (start, {_freq_word(c3['period'])})")
    return fig


def _freq_word(periods: pd.Series) -> str:
    """``monthly``, ``quarterly``, ... for a period Series (its pandas alias otherwise)."""
    freq = str(periods.dtype).removeprefix("period[").removesuffix("]")
    base = freq.split("-")[0]
    return {"M": "monthly", "Q": "quarterly", "Y": "yearly", "W": "weekly", "D": "daily"}.get(
        base, freq
    )


def plot_repeat_curves(
    repeat: pd.DataFrame,
    *,
    value: str = "repeat_share",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """One line per cohort against cohort age, from :func:`cbcv.audit.repeat_rates`:
    ``value="repeat_share"`` (cumulative share with a repeat purchase) or ``"active_share"``
    (share buying in the period)."""
    if value not in ("repeat_share", "active_share"):
        raise ValueError(f"value must be repeat_share or active_share, got {value!r}")
    cohorts = sorted(repeat["cohort"].unique())
    with style_context():
        fig, ax = _axes(ax, "single")
        for cohort, color in zip(cohorts, sequential_colors(len(cohorts)), strict=True):
            part = repeat[repeat["cohort"] == cohort].sort_values("age")
            ax.plot(
                part["age"], part[value], marker="o", markersize=3, color=color, label=str(cohort)
            )
        percent_axis(ax)
        ax.set_ylim(0, None)
        ax.set_xlabel(f"Cohort age ({_freq_word(repeat['period'])} periods since acquisition)")
        ax.set_ylabel(
            "Cumulative share with a repeat purchase"
            if value == "repeat_share"
            else "Share of cohort active in period"
        )
        ax.set_title(
            title
            or ("Repeat buying by cohort" if value == "repeat_share" else "Activity by cohort")
        )
        _legend(ax, len(cohorts), "Cohort")
    return fig


def plot_deciles(
    deciles: pd.DataFrame,
    *,
    shares: Sequence[str] = ("customer_share", "revenue_share"),
    ax: Axes | None = None,
    title: str | None = "Decile analysis",
) -> Figure:
    """Grouped bars per decile (1 = top spenders) of the shares in ``shares`` from
    :func:`cbcv.audit.decile_table`, each bar labelled with its percentage. One bar container
    per share."""
    d = deciles.sort_values("decile")
    x = np.arange(len(d))
    width = 0.8 / len(shares)
    palette = [COLORS["reference"], COLORS["primary"], COLORS["secondary"]]
    with style_context():
        fig, ax = _axes(ax, "single")
        for i, share in enumerate(shares):
            bars = ax.bar(
                x + (i - (len(shares) - 1) / 2) * width,
                d[share].to_numpy(dtype=float),
                width=width,
                label=_SHARE_LABELS.get(share, share),
                color=palette[i % len(palette)],
            )
            ax.bar_label(bars, labels=[f"{v:.0%}" for v in d[share]], fontsize=7, padding=1)
        ax.set_xticks(x, [str(v) for v in d["decile"]])
        ax.set_xlabel("Decile (1 = highest spend)")
        percent_axis(ax)
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper right")
        if title:
            ax.set_title(title)
    return fig


def plot_decile_migration(
    migration: DecileMigration,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Heatmap of :class:`cbcv.audit.DecileMigration` row shares: period-1 decile (rows) by
    period-2 decile or inactive (columns), each cell labelled with its percentage."""
    shares = migration.row_shares
    data = shares.to_numpy(dtype=float)
    with style_context():
        fig, ax = _axes(ax, "square")
        image = ax.imshow(np.nan_to_num(data), cmap=HEATMAP_CMAP, vmin=0.0, vmax=1.0, aspect="auto")
        ax.grid(False)
        for (r, c), v in np.ndenumerate(data):
            if np.isfinite(v):
                ax.text(
                    c,
                    r,
                    f"{v:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > 0.55 else "black",
                )
        ax.set_xticks(np.arange(data.shape[1]), [str(c) for c in shares.columns])
        ax.set_yticks(np.arange(data.shape[0]), [str(i) for i in shares.index])
        ax.set_xlabel(f"Decile in {migration.period_2}")
        ax.set_ylabel(f"Decile in {migration.period_1}")
        ax.set_title(title or f"Decile migration: {migration.period_1} \u2192 {migration.period_2}")
        colorbar = fig.colorbar(image, ax=ax, shrink=0.8)
        colorbar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        colorbar.set_label("Share of row")
    return fig


def plot_whale_curve(
    curve: pd.DataFrame,
    summary: Concentration | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = "Whale curve",
) -> Figure:
    """Cumulative share of revenue against cumulative share of customers ranked from the best,
    from :func:`cbcv.audit.whale_curve`, with the line of equal spend for reference. With
    ``summary`` (:func:`cbcv.audit.concentration`) the top 1%, 10% and 20% points are marked
    and annotated and the Gini coefficient is shown."""
    x = curve["customer_share"].to_numpy(dtype=float)
    y = curve["revenue_share"].to_numpy(dtype=float)
    if x.size > _MAX_CURVE_POINTS:
        grid = np.linspace(0.0, 1.0, _MAX_CURVE_POINTS)
        x, y = grid, np.interp(grid, x, y)
    with style_context():
        fig, ax = _axes(ax, "single")
        ax.plot(x, y, color=COLORS["primary"], label="Customers ranked by spend")
        ax.plot(
            [0, 1],
            [0, 1],
            linestyle="--",
            linewidth=1.0,
            color=COLORS["reference"],
            label="Equal spend",
        )
        if summary is not None:
            points = [
                (0.01, summary.top_1pct),
                (0.10, summary.top_10pct),
                (0.20, summary.top_20pct),
            ]
            ax.scatter(
                [p for p, _ in points],
                [s for _, s in points],
                color=COLORS["accent"],
                zorder=3,
                s=18,
            )
            for p, s in points:
                ax.annotate(
                    f"top {p:.0%}: {s:.0%} of revenue",
                    xy=(p, s),
                    xytext=(12, -14),
                    textcoords="offset points",
                    fontsize=8,
                    color=COLORS["accent"],
                    arrowprops={"arrowstyle": "-", "color": COLORS["accent"], "lw": 0.6},
                )
            ax.text(
                0.98,
                0.04,
                f"Gini = {summary.gini:.2f}\n{summary.customers:,} buyers",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=9,
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        percent_axis(ax, "x")
        percent_axis(ax, "y")
        ax.set_xlabel("Cumulative share of customers (from the best)")
        ax.set_ylabel("Cumulative share of revenue")
        ax.legend(loc="center right")
        if title:
            ax.set_title(
                title + (f", {summary.window}" if summary is not None and summary.window else "")
            )
    return fig


def plot_interpurchase(
    histogram: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = "Inter-purchase times",
) -> Figure:
    """Bars of the share of repeat purchases per bin of days since the previous purchase, from
    :func:`cbcv.audit.interpurchase_histogram` (ungrouped). With ``summary``
    (:func:`cbcv.audit.interpurchase_summary`, one row) the median and mean are marked. One bar
    per bin; an open last bin is hatched."""
    if "cohort" in histogram.columns and histogram["cohort"].nunique() > 1:
        raise ValueError("plot_interpurchase takes an ungrouped histogram (by=None)")
    h = histogram.sort_values("bin")
    width = (
        float((h["days_to"] - h["days_from"] + 1).dropna().iloc[0])
        if h["days_to"].notna().any()
        else 1.0
    )
    left = h["days_from"].to_numpy(dtype=float) - 1.0
    is_open = h["days_to"].isna().to_numpy()
    with style_context():
        fig, ax = _axes(ax, "single")
        bars = ax.bar(
            left,
            h["share"].to_numpy(dtype=float),
            width=width,
            align="edge",
            color=COLORS["primary"],
            edgecolor="white",
            linewidth=0.4,
        )
        for bar, open_bin in zip(bars, is_open, strict=True):
            if open_bin:
                bar.set_hatch("///")
                bar.set_facecolor(COLORS["reference"])
        if summary is not None and len(summary):
            row = summary.iloc[0]
            ax.axvline(
                row["median"],
                color=COLORS["accent"],
                linestyle="-",
                linewidth=1.2,
                label=f"median {row['median']:.0f} days",
            )
            ax.axvline(
                row["mean"],
                color=COLORS["secondary"],
                linestyle="--",
                linewidth=1.2,
                label=f"mean {row['mean']:.0f} days",
            )
            ax.legend(loc="upper right")
        percent_axis(ax)
        ax.set_xlim(0, None)
        ax.set_xlabel(
            f"Days since previous purchase (bins of {width:.0f} days"
            + ("; last bin open" if is_open.any() else "")
            + ")"
        )
        ax.set_ylabel("Share of repeat purchases")
        ax.grid(axis="x", visible=False)
        if title:
            ax.set_title(title)
    return fig
