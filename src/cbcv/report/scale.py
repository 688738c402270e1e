"""A report page for a customer base of any size, built from aggregates only.

:meth:`cbcv.clv.scoring.ScoredBase.write_aggregates` leaves a handful of small files whose size does
not depend on the number of customers (per-draw totals, tables by cohort and value decile,
concentration, the P(alive) distribution, an anonymised top-customer table capped at a few
rows). :func:`scored_base_html` turns them, and optionally a ``valuation.json``, into one
self-contained HTML page with its charts embedded, so rendering ten million customers takes the
same memory as rendering ten thousand. No customer id is read or written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from cbcv.core.errors import DataError  # noqa: E402
from cbcv.report.summary import STYLE  # noqa: E402

_FORBIDDEN = ("customer_id",)


def _figure_tag(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _table(frame: pd.DataFrame, floats: str = "{:,.2f}") -> str:
    bad = [c for c in frame.columns if c in _FORBIDDEN]
    if bad:
        raise DataError(f"refusing to render customer-level identifiers: {bad}")
    return frame.to_html(index=False, border=0, float_format=lambda v: floats.format(v), classes="tbl")


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / f"{name}.csv"
    if not path.is_file():
        raise DataError(f"{path.name}: missing from {folder.name} (write it with ScoredBase.write_aggregates)")
    return pd.read_csv(path)


def scored_base_html(
    aggregates: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    valuation: str | os.PathLike[str] | None = None,
    title: str = "Customer base",
    currency: str = "USD",
) -> Path:
    """Write the HTML page for the aggregates in the folder ``aggregates`` to ``out``."""
    folder = Path(aggregates)
    meta = json.loads((folder / "scoring.json").read_text()) if (folder / "scoring.json").is_file() else {}
    summary = _read(folder, "summary")
    deciles = _read(folder, "by_value_decile")
    concentration = _read(folder, "concentration")
    p_alive = _read(folder, "p_alive")
    top = _read(folder, "top_customers")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if meta:
        parts.append(
            f"<p>{int(meta.get('n_customers', 0)):,} customers scored over {int(meta.get('n_draws', 0)):,} "
            f"posterior draws ({html.escape(str(meta.get('purchase_model', '')))} with gamma-gamma spend); "
            f"{int(meta.get('n_keys', 0)):,} distinct (x, t<sub>x</sub>, T) summaries.</p>"
        )
    if valuation is not None and Path(valuation).is_file():
        val = json.loads(Path(valuation).read_text())
        vps = val["value_per_share"]
        parts.append(
            f"<h2>Value per share</h2><p class='headline'>{currency} {vps['median']:,.2f} "
            f"(90% interval {vps['low']:,.2f} – {vps['high']:,.2f})</p>"
        )
        bridge = pd.DataFrame(
            [{"line": v["label"], "median": v["median"], "low": v["low"], "high": v["high"]} for v in val["bridge"].values()]
        )
        parts.append(_table(bridge, "{:,.0f}"))
    parts.append("<h2>Residual customer lifetime value</h2>" + _table(summary))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(deciles["value_decile"].astype(str), deciles["mean"], yerr=[deciles["mean"] - deciles["low"], deciles["high"] - deciles["mean"]], color="#2b6cb0")
    ax.set_xlabel("value decile (1 = top 10% of customers)")
    ax.set_ylabel(f"residual CLV ({currency})")
    parts.append("<h2>By value decile</h2>" + _figure_tag(fig, "CLV by value decile") + _table(deciles))
    parts.append("<h2>Concentration</h2>" + _table(concentration, "{:.3f}"))
    fig, ax = plt.subplots(figsize=(7, 3.0))
    ax.bar(p_alive["bin"], p_alive["customers"], color="#4a5568")
    ax.set_xlabel("P(alive) at the end of the calibration period")
    ax.set_ylabel("customers")
    ax.tick_params(axis="x", labelrotation=45)
    parts.append("<h2>P(alive)</h2>" + _figure_tag(fig, "P(alive) distribution") + _table(p_alive, "{:,.3f}"))
    parts.append(
        f"<h2>Most valuable customers (anonymised, top {len(top)})</h2>" + _table(top)
    )
    for name in sorted(p.stem for p in folder.glob("by_*.csv")):
        if name != "by_value_decile":
            parts.append(f"<h2>By {html.escape(name[3:])}</h2>" + _table(_read(folder, name)))
    body = "\n".join(parts)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}"
        " table.tbl{border-collapse:collapse;font-size:0.85em} .tbl td,.tbl th{padding:2px 8px;text-align:right}"
        f"</style></head><body>{body}</body></html>"
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
