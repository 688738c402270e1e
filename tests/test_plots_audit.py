"""Audit figures: each is a pyplot-free Figure with one artist per series, and saves to PNG."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from cbcv.audit import (
    c3_table,
    concentration,
    decile_migration,
    decile_table,
    interpurchase_histogram,
    interpurchase_summary,
    interpurchase_times,
    repeat_rates,
    whale_curve,
)
from cbcv.plots.audit import (
    plot_c3,
    plot_decile_migration,
    plot_deciles,
    plot_interpurchase,
    plot_repeat_curves,
    plot_whale_curve,
)
from cbcv.plots.style import (
    RC,
    money_formatter,
    new_figure,
    savefig,
    style_context,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """Three quarterly cohorts over 1997Q1-1998Q1, 60 customers, deterministic."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(60):
        first = pd.Timestamp("1997-01-01") + pd.Timedelta(days=int(i * 4.5))
        dates = [first]
        for _ in range(int(rng.integers(0, 4))):
            dates.append(dates[-1] + pd.Timedelta(days=int(rng.integers(1, 120))))
        rows += [(f"c{i:03d}", d, float(rng.gamma(2.0, 20.0))) for d in dates]
    out = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    return out[out["date"] <= "1998-03-31"].reset_index(drop=True)


def _saved_png(fig: Figure, path) -> None:
    written = savefig(fig, path)
    assert written == [path]
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_c3_one_area_per_cohort(log, tmp_path):
    c3 = c3_table(log, "quarter")
    n_cohorts = c3["cohort"].nunique()
    assert n_cohorts == 3
    fig = plot_c3(c3, values=("revenue", "active_customers"))
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax in axes:
        areas = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(areas) == n_cohorts
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["1997Q1", "1997Q2", "1997Q3"]
    # the stacked top of the last area is the period total (steps: one point per period + end)
    top = axes[0].collections[n_cohorts - 1].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(c3.groupby("period")["revenue"].sum().max())
    _saved_png(fig, tmp_path / "c3.png")


def test_plot_repeat_curves_one_line_per_cohort(log, tmp_path):
    r = repeat_rates(log, "quarter")
    fig = plot_repeat_curves(r)
    ax = fig.get_axes()[0]
    assert len(ax.get_lines()) == r["cohort"].nunique()
    first = ax.get_lines()[0]
    q1 = r[r["cohort"] == r["cohort"].min()]
    np.testing.assert_allclose(first.get_ydata(), q1["repeat_share"])
    _saved_png(fig, tmp_path / "repeat.png")
    fig2 = plot_repeat_curves(r, value="active_share")
    assert len(fig2.get_axes()[0].get_lines()) == 3


def test_plot_deciles_two_bar_series(log, tmp_path):
    d = decile_table(log, "1997")
    fig = plot_deciles(d)
    ax = fig.get_axes()[0]
    assert len(ax.containers) == 2
    assert all(len(c.patches) == 10 for c in ax.containers)
    heights = [p.get_height() for p in ax.containers[1].patches]
    np.testing.assert_allclose(heights, d["revenue_share"])
    _saved_png(fig, tmp_path / "deciles.png")


def test_plot_decile_migration_heatmap(log, tmp_path):
    m = decile_migration(log, "1997Q1", ("1997-04-01", "1997-12-31"))
    fig = plot_decile_migration(m)
    ax = fig.get_axes()[0]
    assert len(ax.images) == 1
    assert ax.images[0].get_array().shape == (10, 11)
    assert len(ax.texts) == int(np.isfinite(m.row_shares.to_numpy()).sum())
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "inactive"
    _saved_png(fig, tmp_path / "migration.png")


def test_plot_whale_curve_annotates_top_shares(log, tmp_path):
    curve, summary = whale_curve(log, "1997"), concentration(log, "1997")
    fig = plot_whale_curve(curve, summary)
    ax = fig.get_axes()[0]
    assert len(ax.get_lines()) == 2  # curve and the line of equal spend
    annotations = [t.get_text() for t in ax.texts if t.get_text().startswith("top")]
    assert annotations == [
        f"top 1%: {summary.top_1pct:.0%} of revenue",
        f"top 10%: {summary.top_10pct:.0%} of revenue",
        f"top 20%: {summary.top_20pct:.0%} of revenue",
    ]
    assert any(f"Gini = {summary.gini:.2f}" in t.get_text() for t in ax.texts)
    _saved_png(fig, tmp_path / "whale.png")
    assert len(plot_whale_curve(curve).get_axes()[0].texts) == 0


def test_plot_interpurchase_one_bar_per_bin(log, tmp_path):
    t = interpurchase_times(log)
    h = interpurchase_histogram(t, bin_days=14, max_days=84)
    fig = plot_interpurchase(h, interpurchase_summary(t))
    ax = fig.get_axes()[0]
    assert len(ax.patches) == len(h)
    assert len(ax.get_lines()) == 2  # median and mean
    assert ax.patches[-1].get_hatch() == "///"  # open last bin
    _saved_png(fig, tmp_path / "ipt.png")


def test_plots_draw_into_given_axes_and_leave_pyplot_alone(log):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with style_context():
        fig, axes = new_figure("wide", ncols=2)
    out = plot_deciles(decile_table(log), ax=axes[0])
    plot_whale_curve(whale_curve(log), ax=axes[1])
    assert out is fig
    assert len(axes[1].get_lines()) == 2
    assert plt.get_fignums() == before


def test_style_is_scoped_and_savefig_writes_formats(tmp_path):
    before = mpl.rcParams["axes.spines.top"]
    with style_context():
        assert mpl.rcParams["axes.spines.top"] is RC["axes.spines.top"]
        fig, ax = new_figure()
        ax.plot([0, 1], [0, 1])
    assert mpl.rcParams["axes.spines.top"] == before
    written = savefig(fig, tmp_path / "sub" / "figure", formats=("png", "svg"))
    assert [p.name for p in written] == ["figure.png", "figure.svg"]
    assert all(p.stat().st_size > 0 for p in written)


def test_money_formatter():
    fmt = money_formatter()
    assert fmt(950, None) == "950"
    assert fmt(12_400, None) == "12k"
    assert fmt(3_400_000, None) == "3.4M"
    assert money_formatter("USD")(-2_000_000_000, None) == "-USD 2.0bn"
