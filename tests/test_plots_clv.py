"""CLV figures: pyplot-free Figures whose bars and whiskers show the tables' numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cbcv import clv as C
from cbcv.models import BetaGeoModel, GammaGammaModel
from cbcv.plots.clv import (
    lorenz_data,
    plot_clv_by_group,
    plot_clv_distribution,
    plot_concentration,
    plot_p_alive,
)
from cbcv.plots.style import savefig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fixed(cls, **values):
    import arviz as az

    model = cls()
    model.idata = az.from_dict(posterior={k: np.asarray(v, dtype=float)[None, :] for k, v in values.items()})
    return model


@pytest.fixture(scope="module")
def clv():
    rng = np.random.default_rng(3)
    n = 60
    x = rng.integers(0, 8, n)
    t_x = np.where(x > 0, rng.uniform(1, 30, n), 0.0)
    base = pd.DataFrame({
        "cohort": np.where(np.arange(n) < 30, "1997Q1", "1997Q2"), "x": x, "t_x": t_x,
        "T": t_x + rng.uniform(0, 10, n), "mean_repeat_spend": np.where(x > 0, rng.uniform(5, 80, n), np.nan),
    })
    bg = _fixed(BetaGeoModel, r=[0.24, 0.25, 0.23], alpha=[4.4, 4.2, 4.6], a=[0.79, 0.8, 0.75], b=[2.4, 2.5, 2.3])
    gg = _fixed(GammaGammaModel, p=[6.25, 6.1, 6.4], q=[3.74, 3.8, 3.7], gamma=[15.4, 15.0, 15.9])
    return C.customer_clv(bg, gg, base, margin=0.3, annual_discount_rate=0.1, time_unit="week")


def test_group_bars_and_whiskers_match_the_table(clv) -> None:
    table = clv.by_decile()
    fig = plot_clv_by_group(table, "value_decile", currency="USD")
    assert isinstance(fig, Figure)
    np.testing.assert_allclose([b.get_height() for b in fig.axes[0].patches], table["mean"])
    (whiskers,) = [c for c in fig.axes[0].containers if hasattr(c, "has_yerr")]
    segments = whiskers.lines[2][0].get_segments()
    np.testing.assert_allclose([seg[0][1] for seg in segments], table["low"])
    np.testing.assert_allclose([seg[1][1] for seg in segments], table["high"])
    per = plot_clv_by_group(clv.by_cohort(), "cohort", per_customer=True)
    heights = [b.get_height() for b in per.axes[0].patches]
    np.testing.assert_allclose(heights, clv.by_cohort()["mean"] / 30)


def test_p_alive_bars(clv) -> None:
    table = clv.p_alive_distribution()
    fig = plot_p_alive(table)
    heights = [b.get_height() for b in fig.axes[0].patches]
    assert heights == table["customers"].tolist()
    assert sum(heights) == 60


def test_lorenz_curve_and_concentration(clv, tmp_path) -> None:
    curve = lorenz_data(clv)
    assert curve["clv_share"].iloc[-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve["clv_share"]) >= 0)
    # concave from the top: the first 10% of customers hold at least 10% of the value
    assert curve["clv_share"].iloc[6] >= 0.1
    # 60 customers: the top 10% are 6, so the curve at 10% equals the mean top-10% share
    top10 = clv.concentration().set_index("customers").loc["top 10%", "mean"]
    assert curve["clv_share"].iloc[6] == pytest.approx(top10, rel=0.05)
    fig = plot_concentration(clv)
    dist = plot_clv_distribution(clv, currency="USD")
    assert len(dist.axes) == 2
    for f, name in ((fig, "conc.png"), (dist, "dist.png")):
        (path,) = savefig(f, tmp_path / name)
        assert path.read_bytes()[:8] == PNG_MAGIC
