"""Valuation figures: pyplot-free Figures with the expected artists, that save to PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from cbcv.plots.style import savefig
from cbcv.plots.valuation import (
    plot_bridge_waterfall,
    plot_revenue_layers,
    plot_tornado,
    plot_value_per_share,
    waterfall_data,
)
from cbcv.valuation.bridge import value_bridge
from cbcv.valuation.equity import revenue_layers
from cbcv.valuation.inputs import FinancialDraws
from cbcv.valuation.sensitivity import ValuationModel, tornado

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
D = 400


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    fd = FinancialDraws.from_values(
        D, contribution_margin=0.3, discount_rate=0.1, fixed_costs=100.0, tax_rate=0.2,
        net_debt=300.0, shares_outstanding=100.0, market_price=20.0, horizon_years=5.0,
    )
    return value_bridge(rng.normal(3000, 400, D), rng.normal(1000, 300, D), fd, currency="USD")


def _bars(fig: Figure) -> list:
    return list(fig.axes[0].patches)


def test_waterfall(result, tmp_path):
    data = waterfall_data(result)
    # capex and non-operating assets are zero in every draw and dropped
    assert list(data.index) == [
        "existing_customer_equity", "future_customer_equity", "pv_fixed_costs", "taxes",
        "operating_value", "net_debt", "equity_value",
    ]
    # the floating bars end where the running total is: operating value, then equity value
    assert data.loc["taxes", "top"] == pytest.approx(result.operating_value.mean())
    assert data.loc["net_debt", "top"] == pytest.approx(result.equity_value.mean())
    fig = plot_bridge_waterfall(result)
    assert isinstance(fig, Figure)
    assert len(_bars(fig)) == len(data)
    heights = [p.get_height() for p in _bars(fig)]
    assert heights[0] == pytest.approx(result.existing_customer_equity.mean())
    assert heights[-1] == pytest.approx(result.equity_value.mean())
    path = savefig(fig, tmp_path / "bridge.png")[0]
    assert path.read_bytes()[:8] == PNG_MAGIC
    per_share = waterfall_data(result, per_share=True)
    assert per_share.loc["equity_value", "mean"] == pytest.approx(result.value_per_share.mean())


def test_value_per_share_with_price(result, tmp_path):
    fig = plot_value_per_share(result)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    p = float(np.mean(result.value_per_share > 20.0))
    assert f"P(value > price) = {p:.0%}" in texts
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("market price 20.00") for label in labels)
    assert savefig(fig, tmp_path / "vps.png")[0].read_bytes()[:8] == PNG_MAGIC
    no_price = plot_value_per_share(result, market_price=None, title=None)
    assert isinstance(no_price, Figure)


def test_tornado_chart(tmp_path):
    fd = FinancialDraws.from_values(10, contribution_margin=0.3, discount_rate=0.1, fixed_costs=1.0,
                                    shares_outstanding=1.0)
    dert = np.ones((10, 5))
    model = ValuationModel(fd, lambda m, r: dert * m * (0.1 / r)[:, None], np.full(5, 10.0))
    table = tornado(model)
    fig = plot_tornado(table)
    ax = fig.axes[0]
    assert len(ax.containers) == 2
    assert len(ax.containers[0]) == len(table)
    # the largest swing is drawn at the top
    assert ax.get_yticklabels()[-1].get_text().startswith(table.index[0])
    assert savefig(fig, tmp_path / "tornado.png")[0].read_bytes()[:8] == PNG_MAGIC


def test_revenue_layers_chart(tmp_path):
    rng = np.random.default_rng(1)
    periods = 8
    lay = revenue_layers(
        rng.gamma(5, 100, size=(50, periods)), 10 * 0.8 ** np.arange(periods), np.full((50, periods), 20.0)
    )
    fig = plot_revenue_layers(lay, currency="USD")
    polys = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(polys) == 1 + periods
    # with many cohorts, consecutive cohorts are merged to at most max_layers layers
    merged = plot_revenue_layers(lay, max_layers=3)
    polys = [c for c in merged.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(polys) == 1 + 3
    assert savefig(fig, tmp_path / "layers.png")[0].read_bytes()[:8] == PNG_MAGIC
