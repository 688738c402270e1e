"""Figures of model fit and holdout validation (tables from :mod:`cbcv.valuation.holdout`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cbcv.core.escape import plot_text
from cbcv.plots.style import COLORS, PALETTE, new_figure, style_context


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
        ax.set_xlabel("period since the first acquisition")
        ax.set_ylabel("cumulative repeat transactions")
        ax.legend(frameon=False)
        if title:
            ax.set_title(title, loc="left", fontweight="bold")
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
        ax.set_xlabel("repeat transactions in the calibration period")
        ax.set_ylabel("mean transactions in the holdout")
        ax.legend(frameon=False)
        if title:
            ax.set_title(title, loc="left", fontweight="bold")
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
        ax.set_xlabel("repeat transactions in the calibration period")
        ax.set_ylabel("customers")
        ax.legend(frameon=False)
        ax.set_title(title or f"Posterior predictive check: {plot_text(model)}", loc="left", fontweight="bold")
    return fig
