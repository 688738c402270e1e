"""Figures of model fit and holdout validation (tables from :mod:`cbcv.valuation.holdout`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cbcv.core.escape import plot_text
from cbcv.plots.style import COLORS, PALETTE, finish_axes, new_figure, style_context

#: The title of these figures: left-aligned, bold.
_TITLE = {"loc": "left", "fontweight": "bold"}
_LEGEND = {"frameon": False}


def plot_tracking(tracks: Mapping[str, pd.DataFrame], title: str | None = "Cumulative repeat transactions") -> Figure:
    """Actual against expected cumulative repeat transactions per period, one line per model,
    with the calibration/holdout boundary marked (Fader, Hardie & Lee 2005a, Fig. 2)."""
    with style_context():
        fig, ax = new_figure("wide")
        first = next(iter(tracks.values()))
        ax.plot(first["period"], first["actual"], color="black", lw=2, label="actual")
        for (name, track), color in zip(tracks.items(), PALETTE, strict=False):
            ax.plot(track["period"], track["expected"], color=color, ls="--", label=plot_text(name))
            ax.fill_between(track["period"], track["expected_low"], track["expected_high"], color=color, alpha=0.15)
        boundary = first.loc[~first["holdout"], "period"].max()
        ax.axvline(boundary, color=COLORS["reference"], ls=":")
        ax.text(boundary, ax.get_ylim()[1] * 0.97, " holdout →", va="top", color=COLORS["reference"])
        finish_axes(
            ax, "period since the first acquisition", "cumulative repeat transactions", title,
            legend=_LEGEND, title_style=_TITLE,
        )
    return fig


def plot_conditional_expectations(tables: Mapping[str, pd.DataFrame], title: str | None = "Holdout transactions by calibration frequency") -> Figure:
    """Mean holdout transactions by calibration frequency, actual against each model (with the
    90% interval of the group mean)."""
    with style_context():
        fig, ax = new_figure("single")
        first = next(iter(tables.values()))
        xs = np.arange(len(first))
        ax.plot(xs, first["actual"], color="black", marker="o", lw=2, label="actual")
        for (name, table), color in zip(tables.items(), PALETTE, strict=False):
            ax.errorbar(
                xs, table["predicted"],
                yerr=[table["predicted"] - table["predicted_low"], table["predicted_high"] - table["predicted"]],
                color=color, marker="s", ls="--", capsize=3, label=plot_text(name),
            )
        ax.set_xticks(xs, first["x"])
        finish_axes(
            ax, "repeat transactions in the calibration period", "mean transactions in the holdout",
            title, legend=_LEGEND, title_style=_TITLE,
        )
    return fig


def plot_frequency_ppc(ppc: pd.DataFrame, model: str, title: str | None = None) -> Figure:
    """Observed calibration frequency histogram against replicated data (posterior predictive)."""
    with style_context():
        fig, ax = new_figure("single")
        xs = np.arange(len(ppc))
        ax.bar(xs - 0.2, ppc["observed"], width=0.4, color=COLORS["primary"], label="observed")
        ax.bar(
            xs + 0.2, ppc["replicated_mean"], width=0.4, color=COLORS["secondary"],
            yerr=[ppc["replicated_mean"] - ppc["replicated_low"], ppc["replicated_high"] - ppc["replicated_mean"]],
            capsize=3, label="replicated (90% interval)",
        )
        ax.set_xticks(xs, ppc["x"])
        finish_axes(
            ax, "repeat transactions in the calibration period", "customers",
            title or f"Posterior predictive check: {plot_text(model)}",
            legend=_LEGEND, title_style=_TITLE,
        )
    return fig
