"""Figures of the valuation (:mod:`cbcv.valuation`): the bridge from customer equity to equity
value (waterfall), the tornado of sensitivities, the posterior of the value per share against
the market price, and the forward revenue by layer (existing customers and future cohorts).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot in the house
style (:mod:`cbcv.plots.style`); single-panel functions accept ``ax`` to draw into an existing
axes (its figure is returned).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cbcv.core.draws import draw_stats, interval_bounds
from cbcv.plots.style import (
    COLORS,
    axes_or_new,
    finish_axes,
    money_formatter,
    money_label,
    sequential_colors,
    style_context,
)
from cbcv.valuation.bridge import BRIDGE, ValuationResult
from cbcv.valuation.equity import RevenueLayers

#: Most cohort layers drawn in the forward revenue chart (more are merged).
_MAX_LEGEND = 12


def waterfall_data(result: ValuationResult, *, per_share: bool = False, drop_zero: bool = True) -> pd.DataFrame:
    """The bars of the bridge waterfall: one row per line with ``label``, ``kind``, ``mean``
    (the bar's height: posterior means add up along the bridge, medians do not), ``bottom`` and
    ``top`` (where the bar floats), and ``whisker_low``/``whisker_high`` (the line's credible
    interval placed at the bar's moving end). Lines that are zero in every draw are dropped
    when ``drop_zero`` (sub-totals are kept)."""
    scale = result.shares_outstanding if per_share else 1.0
    lo_q, hi_q = interval_bounds(result.interval)
    rows = []
    running = 0.0
    for name, label, kind in BRIDGE:
        draws = getattr(result, name) / scale
        mean = float(draws.mean())
        lo, hi = (float(v) for v in np.quantile(draws, [lo_q, hi_q]))
        if kind in ("subtotal", "total"):
            bottom, top, w_lo, w_hi = 0.0, mean, lo, hi
            running = mean
        else:
            if drop_zero and not np.any(draws):
                continue
            sign = 1.0 if kind == "add" else -1.0
            start = running
            running = running + sign * mean
            bottom, top = start, running
            w_lo, w_hi = sorted((start + sign * lo, start + sign * hi))
        rows.append(
            {"component": name, "label": label, "kind": kind, "mean": mean, "bottom": bottom,
             "top": top, "whisker_low": w_lo, "whisker_high": w_hi}
        )
    return pd.DataFrame(rows).set_index("component")


def plot_bridge_waterfall(
    result: ValuationResult,
    *,
    per_share: bool = False,
    drop_zero: bool = True,
    ax: Axes | None = None,
    title: str | None = "From customer equity to equity value",
) -> Figure:
    """Waterfall of the valuation bridge: floating bars for the additions (green) and
    deductions (vermillion), full bars for operating value and equity value (blue). Bar heights
    are posterior means (which add up); whiskers are each line's credible interval
    (``result.interval``). ``per_share=True`` divides by the shares outstanding. One bar
    container (``ax.containers[0]``) holds all bars, in bridge order."""
    data = waterfall_data(result, per_share=per_share, drop_zero=drop_zero)
    colors = {
        "add": COLORS["positive"],
        "subtract": COLORS["accent"],
        "subtotal": COLORS["primary"],
        "total": COLORS["primary"],
    }
    x = np.arange(len(data))
    with style_context():
        fig, ax = axes_or_new(ax, "wide")
        low = np.minimum(data["bottom"], data["top"]).to_numpy()
        height = np.abs(data["top"] - data["bottom"]).to_numpy()
        ax.bar(x, height, bottom=low, color=[colors[k] for k in data["kind"]], width=0.65)
        mid = data["top"].to_numpy()
        ax.errorbar(
            x,
            mid,
            yerr=[np.maximum(mid - data["whisker_low"], 0), np.maximum(data["whisker_high"] - mid, 0)],
            fmt="none",
            ecolor="#333333",
            elinewidth=1.0,
            capsize=3,
        )
        # connectors between consecutive bars at the running total
        for i in range(len(data) - 1):
            ax.plot([i + 0.33, i + 0.67], [mid[i], mid[i]], color=COLORS["reference"], linewidth=0.8)
        fmt = money_formatter(decimals=2 if per_share else 0)
        signs = {"add": "+", "subtract": "\u2212", "subtotal": "", "total": ""}
        # value labels: inside tall bars, beside short ones
        span = max(float(np.max(data[["top", "bottom", "whisker_high"]].to_numpy())), 0.0) - min(
            float(np.min(data[["top", "bottom", "whisker_low"]].to_numpy())), 0.0
        )
        for xi, (kind, mean, lo_i, h) in enumerate(zip(data["kind"], data["mean"], low, height, strict=True)):
            text = f"{signs[kind]}{fmt(abs(mean) if kind in ('add', 'subtract') else mean)}"
            if span > 0 and h >= 0.08 * span:
                ax.text(xi, lo_i + h / 2, text, ha="center", va="center", fontsize=8, color="white")
            else:
                ax.text(xi + 0.36, lo_i + h / 2, text, ha="left", va="center", fontsize=7, color="#333333")
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_xticks(x, list(data["label"]), rotation=20, ha="right")
        ax.yaxis.set_major_formatter(fmt)
        ax.set_ylabel(money_label("Value per share" if per_share else "Value", result.currency))
        ax.grid(axis="x", visible=False)
        if title:
            ax.set_title(title)
        ax.text(
            0.99, 0.98,
            f"bars: posterior means; whiskers: {result.interval:.0%} intervals",
            transform=ax.transAxes, ha="right", va="top", fontsize=8, color=COLORS["reference"],
        )
    return fig


def plot_tornado(
    table: pd.DataFrame,
    *,
    currency: str | None = None,
    ax: Axes | None = None,
    title: str | None = "Sensitivity of the value per share",
) -> Figure:
    """Tornado chart from :func:`cbcv.valuation.sensitivity.tornado`: for each input (in the
    table's order, top down: largest swing first) a bar from the base value to the value at the input's low setting and one
    to the value at its high setting. Two bar containers: low settings, then high settings."""
    if table.empty:
        raise ValueError("tornado table is empty: nothing to plot")
    t = table.iloc[::-1]  # the table's first row (largest swing) is drawn at the top
    base = float(t["base"].iloc[0])
    y = np.arange(len(t))
    with style_context():
        fig, ax = axes_or_new(ax, "single")
        ax.barh(y, t["value_low"] - base, left=base, color=COLORS["secondary"], height=0.6, label="low setting")
        ax.barh(y, t["value_high"] - base, left=base, color=COLORS["primary"], height=0.6, label="high setting")
        labels = [f"{name}\n({_setting(lo, name)} / {_setting(hi, name)})" for name, lo, hi in zip(t.index, t["low"], t["high"], strict=True)]
        ax.set_yticks(y, labels)
        ax.axvline(base, color="#333333", linewidth=1.0)
        ax.xaxis.set_major_formatter(money_formatter(decimals=2))
        ax.grid(axis="y", visible=False)
        xlabel = money_label(f"Value per share ({t.attrs.get('statistic', 'median')})", currency)
        finish_axes(ax, xlabel, "", title, legend={"loc": "lower right"})
    return fig


def _setting(value: float, name: str) -> str:
    if name == "discount_rate_shift":
        return f"{value:+.1%}"
    return f"\u00d7{value:g}"


def plot_value_per_share(
    result: ValuationResult,
    *,
    market_price: float | None = None,
    bins: int = 60,
    ax: Axes | None = None,
    title: str | None = "Value per share",
) -> Figure:
    """Histogram (density) of the value per share over draws, with its median, the shaded
    credible interval (``result.interval``) and, when there is one, the market price as a
    dashed line with ``P(value > price)`` written beside it."""
    draws = np.asarray(result.value_per_share, dtype=float)
    price = result.market_price if market_price is None else market_price
    st = draw_stats(draws, result.interval)
    with style_context():
        fig, ax = axes_or_new(ax, "single")
        ax.hist(draws, bins=bins, density=True, color=COLORS["primary"], alpha=0.55, edgecolor="white", linewidth=0.3)
        ax.axvspan(float(st["low"]), float(st["high"]), color=COLORS["primary"], alpha=0.12,
                   label=f"{result.interval:.0%} interval")
        ax.axvline(float(st["median"]), color=COLORS["primary"], linewidth=1.8,
                   label=f"median {float(st['median']):,.2f}")
        if price is not None:
            p = float(np.mean(draws > price))
            ax.axvline(price, color=COLORS["accent"], linestyle="--", linewidth=1.6,
                       label=f"market price {price:,.2f}")
            ax.text(0.98, 0.95, f"P(value > price) = {p:.0%}", transform=ax.transAxes, ha="right",
                    va="top", fontsize=9, color=COLORS["accent"])
        ax.xaxis.set_major_formatter(money_formatter(decimals=2))
        ax.set_yticks([])
        finish_axes(
            ax, money_label("Value per share", result.currency), "Posterior density", title,
            legend={"loc": "upper left"},
        )
    return fig


def plot_revenue_layers(
    layers: RevenueLayers,
    *,
    currency: str | None = None,
    max_layers: int = _MAX_LEGEND,
    ax: Axes | None = None,
    title: str | None = "Forward revenue: existing customers and future cohorts",
) -> Figure:
    """Stacked areas of mean revenue per future period (means add up across layers, medians do
    not): existing customers at the bottom, then each acquisition cohort (oldest darkest).
    With more than ``max_layers`` cohorts, consecutive cohorts are merged
    (:meth:`~cbcv.valuation.equity.RevenueLayers.grouped`) so that at most ``max_layers``
    cohort layers remain. Dashed lines bound the credible interval of the total. One
    ``PolyCollection`` per layer drawn."""
    n_all = len(layers.layers) - 1
    if n_all > max_layers:
        layers = layers.grouped(int(np.ceil(n_all / max_layers)))
    means = layers.mean_table()
    x = np.arange(len(means))
    st = draw_stats(layers.total, layers.interval)
    n_coh = means.shape[1] - 1
    colors = [COLORS["reference"], *sequential_colors(n_coh)]
    labels = [str(c) for c in means.columns]
    with style_context():
        fig, ax = axes_or_new(ax, "wide")
        ax.stackplot(x, means.to_numpy(dtype=float).T, labels=labels, colors=colors, linewidth=0.3, edgecolor="white")
        ax.plot(x, st["low"], linestyle="--", color="#333333", linewidth=1.0, label=f"total, {layers.interval:.0%} interval")
        ax.plot(x, st["high"], linestyle="--", color="#333333", linewidth=1.0)
        step = max(1, len(x) // 12)
        ax.set_xticks(x[::step], [str(p) for p in means.index[::step]])
        if len(x) > 1:
            ax.set_xlim(x[0], x[-1])
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(money_formatter())
        legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": "small",
                  "title": "Layer", "title_fontsize": "small"}
        finish_axes(
            ax, "Forecast period", money_label("Expected revenue", currency), title, legend=legend
        )
    return fig
