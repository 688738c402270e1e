"""Figures of the subscription audit (:mod:`cbcv.audit.subscriptions`): the layer cake, survival
by cohort, churn by tenure, revenue retention by cohort and revenue per subscriber.

Each function takes the :class:`~cbcv.audit.subscriptions.SubscriptionAudit` or the matching
table and returns a :class:`matplotlib.figure.Figure` built without pyplot
(:mod:`cbcv.plots.style`). Cohorts are coloured along the house sequential map, oldest darkest;
with up to :data:`MAX_LEGEND_COHORTS` cohorts they are named in a legend, with more (40 monthly
cohorts) a colour bar keys them, its ticks at the first cohort of each year.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cbcv.audit.subscriptions import SubscriptionAudit
from cbcv.plots.style import (
    COLORS,
    PALETTE,
    axes_or_new,
    money_formatter,
    money_label,
    new_figure,
    percent_axis,
    sequential_colors,
    style_context,
)

#: Cohorts named one by one in a legend; beyond this a colour bar keys them.
MAX_LEGEND_COHORTS = 12
LAYER_VALUES: dict[str, str] = {
    "subscribers": "Active subscribers (spells active at period end)",
    "revenue": "Revenue per period",
    "payments": "Payments per period",
}
RETENTION_MEASURES: dict[str, str] = {
    "nrr": "Net revenue retention\n(share of first-period revenue)",
    "grr": "Gross revenue retention\n(share of first-period revenue)",
}
_FREQ_WORDS = {"M": "monthly", "Q": "quarterly", "Y": "yearly", "A": "yearly"}
_BILLING_WORDS = {"month": "monthly", "quarter": "quarterly", "year": "yearly"}


def _table(data: SubscriptionAudit | pd.DataFrame, name: str) -> pd.DataFrame:
    table = getattr(data, name) if isinstance(data, SubscriptionAudit) else data
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError(f"no {name.replace('_', ' ')} table to plot")
    return table


def _freq_word(values: pd.Series) -> str:
    """``monthly``, ``quarterly`` or ``yearly`` for a period Series."""
    freq = str(values.dtype).removeprefix("period[").removesuffix("]")
    return _FREQ_WORDS.get(freq.split("-")[0][:1].upper(), freq)


def _cohort_key(fig: Figure, ax: Axes | Sequence[Axes], cohorts: Sequence[pd.Period]) -> None:
    """Name the cohorts: a legend (drawn from the artists' labels) or, beyond
    :data:`MAX_LEGEND_COHORTS`, a colour bar of the cohort colours with a tick per year."""
    axes = list(ax) if isinstance(ax, Sequence | np.ndarray) else [ax]
    n = len(cohorts)
    if n <= MAX_LEGEND_COHORTS:
        axes[-1].legend(
            title="Cohort",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            title_fontsize="small",
        )
        return
    cmap = ListedColormap(sequential_colors(n))
    mappable = ScalarMappable(norm=BoundaryNorm(np.arange(n + 1) - 0.5, n), cmap=cmap)
    years = [c.year for c in cohorts]
    ticks = [i for i in range(n) if i == 0 or years[i] != years[i - 1]]
    if len(ticks) < 2:  # cohorts within one year: every few cohorts
        ticks = list(range(0, n, max(1, n // 8)))
        labels = [str(cohorts[i]) for i in ticks]
    else:
        labels = [str(cohorts[i]) if i == 0 else str(years[i]) for i in ticks]
    bar = fig.colorbar(mappable, ax=axes, pad=0.02, fraction=0.04)
    bar.set_ticks(ticks, labels=labels)
    bar.set_label(f"Cohort ({n}; oldest dark)")
    bar.ax.tick_params(labelsize="small")


def plot_layer_cake(
    data: SubscriptionAudit | pd.DataFrame,
    value: str = "subscribers",
    *,
    currency: str | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """The layer cake: stacked areas of each cohort's ``value`` per calendar period (oldest
    cohort at the bottom), from :func:`cbcv.audit.subscriptions.layer_cake` (or the audit).
    ``value`` is ``"subscribers"`` (spells active at each period's end), ``"revenue"`` or
    ``"payments"``; ``ylabel`` replaces its axis label (e.g. the alive customers of a latent
    cohort matrix). Each period is drawn as a flat step over its span; one area per cohort."""
    if value not in LAYER_VALUES:
        raise ValueError(f"value must be one of {', '.join(LAYER_VALUES)}, got {value!r}")
    table = _table(data, "layer_cake")
    wide = table.pivot(index="period", columns="cohort", values=value).sort_index()
    wide = wide.reindex(columns=sorted(wide.columns)).fillna(0.0)
    cohorts = list(wide.columns)
    starts = wide.index.to_timestamp(how="start")
    x = starts.append(pd.DatetimeIndex([(wide.index[-1] + 1).to_timestamp(how="start")]))
    ys = wide.to_numpy(dtype=float).T
    ys = np.concatenate([ys, ys[:, -1:]], axis=1)
    with style_context():
        fig, ax = axes_or_new(ax, "wide")
        ax.stackplot(
            x,
            ys,
            labels=[str(c) for c in cohorts],
            colors=sequential_colors(len(cohorts)),
            step="post",
            linewidth=0.3,
            edgecolor="white",
        )
        ylabel = ylabel or LAYER_VALUES[value]
        if value == "revenue":
            ylabel = money_label(ylabel, currency)
            ax.yaxis.set_major_formatter(money_formatter())
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"Calendar period ({_freq_word(table['period'])}, start date)")
        ax.set_ylabel(ylabel)
        default = "Subscribers by cohort" if value == "subscribers" else "Revenue by cohort"
        ax.set_title(title or f"Layer cake: {default.lower()}")
        _cohort_key(fig, ax, cohorts)
    return fig


def plot_survival_by_cohort(
    data: SubscriptionAudit | pd.DataFrame,
    *,
    billing_period: str | None = None,
    complete_only: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """One survival curve per cohort against renewals t, from
    :func:`cbcv.audit.subscriptions.survival_by_cohort` (or the audit). ``billing_period``
    picks one where the table has several (default: the one with most spells);
    ``complete_only`` (default) drops each cohort's rows where some of its spells are not yet
    observable (``complete`` False)."""
    table = _pick_billing(_table(data, "survival"), billing_period)
    if complete_only:
        table = table[table["complete"]]
    cohorts = sorted(table["cohort"].unique())
    bp = str(table["billing_period"].iloc[0]) if len(table) else str(billing_period)
    with style_context():
        fig, ax = axes_or_new(ax, "single")
        for cohort, color in zip(cohorts, sequential_colors(len(cohorts)), strict=True):
            part = table[table["cohort"] == cohort].sort_values("t")
            ax.plot(
                part["t"],
                part["survival"],
                color=color,
                linewidth=1.2,
                label=str(cohort),
                **_markers(table["t"]),
            )
        percent_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"Renewals t ({_BILLING_WORDS.get(bp, bp)} billing periods since start)")
        ax.set_ylabel("Share of cohort's spells surviving t renewals")
        ax.set_title(title or "Survival by cohort")
        _cohort_key(fig, ax, cohorts)
    return fig


def _markers(steps: pd.Series) -> dict[str, object]:
    """Point markers on curves over few steps (a single point shows), none over many."""
    return {"marker": "o", "markersize": 3} if steps.nunique() <= 12 else {}


def _pick_billing(table: pd.DataFrame, billing_period: str | None) -> pd.DataFrame:
    """The rows of ``billing_period``, by default the one with most spells."""
    if billing_period is None:
        sizes = table[table["t"] == 0].groupby("billing_period")["spells"].sum()
        billing_period = str(sizes.idxmax())
    picked = table[table["billing_period"] == billing_period]
    if picked.empty:
        raise ValueError(f"no rows for billing period {billing_period!r}")
    return picked


def plot_churn_by_tenure(
    data: SubscriptionAudit | pd.DataFrame,
    *,
    min_at_risk: int = 1,
    ax: Axes | None = None,
    title: str | None = "Churn by tenure",
) -> Figure:
    """The churn rate (hazard) at each renewal t with its Wilson interval (shaded), one line per
    billing period, from :func:`cbcv.audit.subscriptions.churn_by_tenure` (or the audit); rows
    with fewer than ``min_at_risk`` spells at risk are left out."""
    table = _table(data, "churn")
    table = table[table["at_risk"] >= max(min_at_risk, 1)]
    periods = sorted(table["billing_period"].unique())
    with style_context():
        fig, ax = axes_or_new(ax, "single")
        for bp, color in zip(periods, PALETTE, strict=False):
            part = table[table["billing_period"] == bp].sort_values("t")
            ax.fill_between(
                part["t"],
                part["churn_rate_low"],
                part["churn_rate_high"],
                color=color,
                alpha=0.2,
                linewidth=0,
            )
            ax.plot(
                part["t"],
                part["churn_rate"],
                color=color,
                marker="o",
                markersize=3,
                label=f"{_BILLING_WORDS.get(bp, bp)} billing",
            )
        percent_axis(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("Tenure t (billing periods paid)")
        ax.set_ylabel("Churn rate at renewal t\n(share of spells at risk)")
        if len(periods) > 1:
            ax.legend(loc="upper right")
        if title:
            ax.set_title(title)
    return fig


def plot_revenue_retention(
    data: SubscriptionAudit | pd.DataFrame,
    *,
    measures: Sequence[str] = ("nrr", "grr"),
    include_partial: bool = False,
    title: str | None = "Revenue retention by cohort",
) -> Figure:
    """Net and/or gross revenue retention curves by acquisition cohort against cohort age, one
    panel per entry of ``measures`` (``"nrr"``, ``"grr"``), from
    :func:`cbcv.audit.subscription_revenue.revenue_retention` (or the audit); the period holding
    ``as_of`` is left out unless ``include_partial``. A reference line marks 100%."""
    if not measures or any(m not in RETENTION_MEASURES for m in measures):
        raise ValueError(
            f"measures must be among {', '.join(RETENTION_MEASURES)}, got {measures!r}"
        )
    table = _table(data, "revenue_retention")
    if not include_partial:
        table = table[~table["partial"]]
    cohorts = sorted(table["cohort"].unique())
    word = _freq_word(table["cohort"])
    with style_context():
        fig, axes = new_figure(
            "wide" if len(measures) > 1 else "single", ncols=len(measures), sharey=True
        )
        axes = list(np.atleast_1d(axes))
        colors = sequential_colors(len(cohorts))
        for ax, measure in zip(axes, measures, strict=True):
            for cohort, color in zip(cohorts, colors, strict=True):
                part = table[table["cohort"] == cohort].sort_values("age")
                ax.plot(
                    part["age"],
                    part[measure],
                    color=color,
                    linewidth=1.2,
                    label=str(cohort),
                    **_markers(table["age"]),
                )
            ax.axhline(1.0, color=COLORS["reference"], linewidth=0.8, linestyle="--")
            percent_axis(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(bottom=0)
            ax.set_xlabel(f"Cohort age ({word} periods since acquisition)")
            ax.set_ylabel(RETENTION_MEASURES[measure])
        if title:
            axes[0].set_title(title)
        _cohort_key(fig, axes, cohorts)
    return fig


def plot_revenue_per_subscriber(
    data: SubscriptionAudit | pd.DataFrame,
    *,
    currency: str | None = None,
    title: str | None = "Revenue per subscriber",
) -> Figure:
    """Two panels over calendar periods, from
    :func:`cbcv.audit.subscription_revenue.revenue_per_subscriber` (or the audit): ARPU
    (revenue per subscriber served in the period) on top, subscribers served and active at the
    period's end below; a partial last period (``as_of`` inside it) has an open marker."""
    table = _table(data, "revenue_per_subscriber").sort_values("period")
    x = table["period"].dt.to_timestamp(how="start")
    partial = table["partial"].to_numpy(dtype=bool)
    word = _freq_word(table["period"])
    with style_context():
        fig, (top, bottom) = new_figure("tall", nrows=2, sharex=True)
        top.plot(x, table["arpu"], color=COLORS["primary"], marker="o", markersize=3, label="ARPU")
        if partial.any():
            top.plot(
                x[partial],
                table["arpu"][partial],
                linestyle="none",
                marker="o",
                markersize=7,
                markerfacecolor="white",
                color=COLORS["primary"],
                label="partial period",
            )
            top.legend(loc="best")
        top.yaxis.set_major_formatter(money_formatter(decimals=2))
        top.set_ylabel(money_label(f"Revenue per subscriber\nper {word} period", currency))
        top.set_ylim(bottom=0)
        if title:
            top.set_title(title)
        bottom.plot(
            x, table["served_subscribers"], color=COLORS["secondary"], label="served in the period"
        )
        bottom.plot(
            x,
            table["subscribers"],
            color=COLORS["primary"],
            linestyle="--",
            label="active at period end",
        )
        bottom.legend(loc="best")
        bottom.set_ylabel("Subscribers (spells)")
        bottom.set_ylim(bottom=0)
        bottom.set_xlabel(f"Calendar period ({word}, start date)")
    return fig
