"""House style for cbcv figures: sizes, colours, number formats and saving.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no
global figure registry, no ``plt.show``, and the code runs unchanged on a headless machine (Agg).
In a notebook, show one with ``display(fig)`` or as a cell's last expression after
``%matplotlib inline``; in scripts, save it with :func:`savefig`.

The style is applied through :func:`style_context` (a :func:`matplotlib.rc_context`), so the
caller's rcParams are never changed; every plotting function creates and draws its figure inside
it, and :func:`savefig` saves inside it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from cbcv.core.escape import plot_text

#: Figure sizes in inches (width, height): one column of a report page, the full text width,
#: a square panel (heatmaps), and a tall two-panel figure.
FIGSIZES: dict[str, tuple[float, float]] = {
    "single": (6.4, 4.0),
    "wide": (9.6, 4.6),
    "square": (6.0, 5.4),
    "tall": (8.0, 7.0),
}

#: Qualitative palette (Okabe & Ito 2008, distinguishable with colour-vision deficiencies).
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Named roles, so that the same quantity has the same colour in every figure.
COLORS: dict[str, str] = {
    "primary": PALETTE[0],
    "secondary": PALETTE[1],
    "accent": PALETTE[3],
    "positive": PALETTE[2],
    "reference": "#7f7f7f",
    "grid": "#d9d9d9",
}
#: Sequential colour map for ordered groups (cohorts: oldest dark, newest light).
SEQUENTIAL_CMAP = "viridis"
#: Colour map for shares in [0, 1] (heatmaps).
HEATMAP_CMAP = "Blues"
DPI = 150

RC: dict[str, Any] = {
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
    "grid.color": COLORS["grid"],
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.8,
}


@contextmanager
def style_context(**overrides: Any) -> Iterator[None]:
    """Apply the house rcParams (plus ``overrides``) inside a ``with`` block only."""
    with mpl.rc_context({**RC, **overrides}):
        yield


def new_figure(
    size: str | tuple[float, float] = "single", *, nrows: int = 1, ncols: int = 1, **subplot_kw: Any
) -> tuple[Figure, Any]:
    """A pyplot-free figure with constrained layout and its axes (one :class:`Axes`, or an array
    for several). Call inside :func:`style_context` so the axes take the house style."""
    figsize = FIGSIZES[size] if isinstance(size, str) else size
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows=nrows, ncols=ncols, squeeze=True, **subplot_kw)
    return fig, axes


def axes_or_new(ax: Axes | None, size: str = "single") -> tuple[Figure, Axes]:
    """The figure of ``ax``, or a new figure of ``size`` (see :func:`new_figure`) and its axes:
    how a single-panel plotting function that accepts ``ax`` starts."""
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    return new_figure(size)


def finish_axes(
    ax: Axes,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    *,
    percent: str = "",
    legend: Mapping[str, Any] | None = None,
    title_style: Mapping[str, Any] | None = None,
) -> None:
    """How a panel ends: the axes named in ``percent`` (``"x"``, ``"y"``, ``"xy"``) shown as
    percentages (:func:`percent_axis`), the axis labels, a legend drawn with the keywords
    ``legend`` (None: no legend) and ``title`` (drawn with ``title_style``) when given."""
    for axis in percent:
        percent_axis(ax, axis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend is not None:
        ax.legend(**legend)
    if title:
        ax.set_title(title, **(title_style or {}))


def money_label(text: str, currency: str | None) -> str:
    """An axis label with the currency code in brackets when there is one."""
    return f"{text} ({plot_text(currency)})" if currency else text


def sequential_colors(n: int, cmap: str = SEQUENTIAL_CMAP) -> list[tuple[float, ...]]:
    """``n`` colours along a sequential map, from dark (first) to light (last), avoiding the
    map's palest end so that every colour shows on white."""
    colormap = mpl.colormaps[cmap]
    if n <= 0:
        return []
    return [tuple(colormap(v)) for v in np.linspace(0.05, 0.9, n)] if n > 1 else [colormap(0.3)]


def money_formatter(currency: str | None = None, *, decimals: int = 0) -> FuncFormatter:
    """Tick formatter for money: thousands separators and k/M suffixes, optional currency code
    (``"USD"`` gives ``USD 12k``)."""
    prefix = f"{plot_text(currency)} " if currency else ""

    def fmt(value: float, _pos: int | None = None) -> str:
        sign = "-" if value < 0 else ""
        v = abs(value)
        if v >= 1e9:
            body = f"{v / 1e9:.{max(decimals, 1)}f}bn"
        elif v >= 1e6:
            body = f"{v / 1e6:.{max(decimals, 1)}f}M"
        elif v >= 1e4:
            body = f"{v / 1e3:.{decimals}f}k"
        else:
            body = f"{v:,.{decimals}f}"
        return f"{sign}{prefix}{body}"

    return FuncFormatter(fmt)


def percent_axis(ax: Axes, axis: str = "y", *, decimals: int = 0) -> None:
    """Show a 0-1 share axis as percentages."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))


def savefig(
    fig: Figure,
    path: str | Path,
    *,
    formats: Sequence[str] | None = None,
    dpi: int = DPI,
) -> list[Path]:
    """Save ``fig`` to ``path`` (parent folders created) in the house style.

    The format is ``path``'s suffix (PNG when it has none); ``formats`` (e.g. ``("png", "pdf")``)
    writes one file per format next to each other with ``path``'s stem. Returns the paths written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if formats is None:
        targets = [path if path.suffix else path.with_suffix(".png")]
    else:
        targets = [path.with_suffix("." + f.lstrip(".")) for f in formats]
    with style_context():
        for target in targets:
            fig.savefig(target, dpi=dpi)
    return targets
