"""The report's executive summary, assumptions table, methodology appendix and diagnostics gate.

The notebooks leave machine-readable results in the run folder: notebook 01 the C3 chart
(``summary/c3.png``), notebook 02 each fit (``models/<name>/fit.json``), notebook 04 the
valuation (``valuation.json``) and its charts (``summary/*.png``, written by
:func:`write_valuation_assets`). :func:`executive_summary` turns whatever of these a run has into
the HTML block that opens ``index.html``: the value per share with its interval against the
market price, the bridge as a waterfall, unit economics, the C3 chart, the revenue forecast and
the diagnostics verdict, with a warning banner naming every fit that misses a threshold
(:func:`diagnostics_problems`, the gate behind ``cbcv report --strict``). Images are embedded,
so the page stands alone; no customer identifier appears in any of it.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from cbcv.config import CompanyConfig, Distribution
from cbcv.core.escape import md

SUMMARY_DIR = "summary"
#: Charts of the summary, in the order shown: (file stem, caption).
CHARTS: tuple[tuple[str, str], ...] = (
    ("waterfall", "From customer equity to equity value (posterior means; whiskers: 90% intervals)"),
    ("value_per_share", "Posterior distribution of the value per share"),
    ("c3", "Customer cohorts over time (C3), by acquisition cohort"),
    ("revenue", "Revenue forecast: existing customers and future cohorts"),
    ("tornado", "Sensitivity of the value per share (each input at 90% and 110%)"),
)

REFERENCES: tuple[str, ...] = (
    "Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), \u201cCounting Your Customers\u201d the Easy Way: "
    "An Alternative to the Pareto/NBD Model, Marketing Science 24(2), 275\u2013284 (BG/NBD).",
    "Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), Counting Your Customers: Who Are They and "
    "What Will They Do Next?, Management Science 33(1), 1\u201324 (Pareto/NBD).",
    "Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), RFM and CLV: Using Iso-Value Curves for Customer "
    "Base Analysis, Journal of Marketing Research 42(4), 415\u2013430 (gamma-gamma spend, DERT).",
    "Fader, P. S. and Hardie, B. G. S. (2007), How to Project Customer Retention, Journal of Interactive "
    "Marketing 21(1), 76\u201390 (shifted-beta-geometric).",
    "Fader, P. S., Hardie, B. G. S. and Ross, S. (2022), The Customer-Base Audit, Wharton School Press.",
    "Gupta, S., Lehmann, D. R. and Stuart, J. A. (2004), Valuing Customers, Journal of Marketing Research "
    "41(1), 7\u201318.",
    "McCarthy, D. M., Fader, P. S. and Hardie, B. G. S. (2017), Valuing Subscription-Based Businesses Using "
    "Publicly Disclosed Customer Data, Journal of Marketing 81(1), 17\u201335.",
    "McCarthy, D. M. and Fader, P. S. (2018), Customer-Based Corporate Valuation for Publicly Traded "
    "Non-Contractual Firms, Journal of Marketing Research 55(5), 617\u2013635.",
)
#: The references of a subscription company's report.
SUBSCRIPTION_REFERENCES: tuple[str, ...] = (
    REFERENCES[3],
    "Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. and Steenburgh, T. (2018), \u201cHow to Project Customer "
    "Retention\u201d Revisited: The Role of Duration Dependence, Journal of Interactive Marketing 43, 1\u201316 "
    "(beta-discrete-Weibull).",
    "Fader, P. S. and Hardie, B. G. S. (2010), Customer-Base Valuation in a Contractual Setting: The Perils of "
    "Ignoring Heterogeneity, Marketing Science 29(1), 85\u201393 (DERL).",
    REFERENCES[5], REFERENCES[6],
)

#: The references of a disclosures company's report.
DISCLOSURE_REFERENCES: tuple[str, ...] = (
    REFERENCES[6], REFERENCES[7], REFERENCES[3], REFERENCES[5],
    "Fader, P. S., Hardie, B. G. S. and Huang, C.-Y. (2004), A Dynamic Changepoint Model for New Product Sales "
    "Forecasting, Marketing Science 23(1), 50\u201365 (acquisition with covariates).",
)

STYLE = """
.summary{border:1px solid #dde3ea;border-radius:6px;padding:1rem 1.2rem;margin:1rem 0;background:#fbfcfd}
.headline{font-size:1.6rem;font-weight:600;margin:.2rem 0}.muted{color:#5b6b7c}
.banner{background:#fdecea;border:1px solid #b3261e;color:#7a1a14;padding:.7rem 1rem;border-radius:6px;
margin:1rem 0}.pass{background:#e8f5ec;border:1px solid #1b7f3b;color:#14532d;padding:.5rem 1rem;
border-radius:6px;margin:1rem 0}.assumption{color:#8a5a00;font-style:italic}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}figcaption{color:#5b6b7c;font-size:.9rem}
.grid td,.grid th{text-align:right}.grid td:first-child,.grid th:first-child{text-align:left}
"""


# -- assets written by notebook 04 ----------------------------------------------------------------
def write_valuation_assets(valuation: Any, loaded: Any, run_dir: str | Path) -> Path:
    """Write ``valuation.json`` and the summary's valuation charts into the run folder."""
    from cbcv.pipeline.valuation import write_valuation

    path = write_valuation(valuation, loaded, Path(run_dir))
    _save_valuation_charts(valuation.result, valuation.tornado, valuation.revenue, Path(run_dir) / SUMMARY_DIR,
                           loaded.config.company.currency)
    return path


def write_subscription_valuation_assets(valuation: Any, loaded: Any, run_dir: str | Path) -> Path:
    """A subscription company's ``valuation.json`` and the summary's valuation charts."""
    from cbcv.pipeline.subscription_valuation import write_subscription_valuation

    path = write_subscription_valuation(valuation, Path(run_dir))
    _save_valuation_charts(valuation.result, valuation.tornado, None, Path(run_dir) / SUMMARY_DIR,
                           loaded.config.company.currency)
    return path


def write_disclosure_valuation_assets(valuation: Any, loaded: Any, run_dir: str | Path) -> Path:
    """A disclosures company's ``valuation.json`` and the summary's valuation charts."""
    from cbcv.pipeline.disclosure_valuation import write_disclosure_valuation

    path = write_disclosure_valuation(valuation, Path(run_dir))
    _save_valuation_charts(valuation.result, valuation.tornado, None, Path(run_dir) / SUMMARY_DIR,
                           loaded.config.company.currency)
    return path


def _save_valuation_charts(result: Any, tornado: Any, revenue: Any, folder: Path, currency: str) -> None:
    """The executive summary's valuation charts (:data:`CHARTS`): the waterfall, the value per
    share, the revenue forecast (when there is one) and the tornado (when it has rows)."""
    from cbcv.plots.style import savefig
    from cbcv.plots.valuation import (
        plot_bridge_waterfall,
        plot_revenue_layers,
        plot_tornado,
        plot_value_per_share,
    )

    savefig(plot_bridge_waterfall(result, per_share=False), folder / "waterfall.png")
    savefig(plot_value_per_share(result), folder / "value_per_share.png")
    if revenue is not None:
        savefig(plot_revenue_layers(revenue, currency=currency), folder / "revenue.png")
    if tornado is not None and len(tornado):
        savefig(plot_tornado(tornado, currency=currency), folder / "tornado.png")


def valuation_banner(cfg: CompanyConfig, first_day: Any = None) -> str:
    """The line that opens every page (Markdown, escaped): the valuation date, the data window
    and the calibration the models were validated on."""
    window = f"data from {first_day} to {cfg.valuation_date}" if first_day else f"data to {cfg.valuation_date}"
    if cfg.is_disclosures:
        checked = (f"fitted to every disclosed {cfg.period} to the valuation date, validated by refits at rolling "
                   f"calibration ends up to {cfg.disclosures.backtest_horizon} {cfg.period}s ahead")
        return f"**Valuation date: {md(cfg.valuation_date)}** · {md(window)} · {md(checked)}."
    checked = f"models validated on a calibration period to {cfg.calibration_end}"
    if cfg.holdout_end is not None:
        checked += f" and a holdout period to {cfg.holdout_end}"
    refit = ", then refitted on all data to the valuation date" if cfg.valuation_date != cfg.calibration_end else ""
    return f"**Valuation date: {md(cfg.valuation_date)}** · {md(window)} · {md(checked + refit)}."


# -- reading a run --------------------------------------------------------------------------------
#: Run-folder subfolders holding fits: the calibration fits and the refits to the valuation date
#: (:data:`cbcv.pipeline.workflow.REFIT_DIR`), with the label their verdicts carry.
FIT_FOLDERS: tuple[tuple[str, str], ...] = (("models", ""), ("refit", " (refit to the valuation date)"))


def fit_records(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``models/<name>/fit.json`` and ``refit/<name>/fit.json`` of a run, by model name (the
    refits' names marked as such)."""
    out = {}
    for folder, label in FIT_FOLDERS:
        for fj in sorted(Path(run_dir).glob(f"{folder}/*/fit.json")):
            out[fj.parent.name + label] = json.loads(fj.read_text(encoding="utf-8"))
    return out


def run_diagnostics(run_dir: str | Path) -> dict[str, Any]:
    """The verdict over every fit behind a run's figures (:func:`cbcv.models.verdict.combined_diagnostics`):
    notebook 02's ``models/<name>/fit.json`` and, for fits the valuation made itself, the
    per-model verdicts in ``valuation.json``. ``status`` is ``none`` when the run has no fit."""
    from cbcv.models.verdict import combined_diagnostics  # imports PyMC: only when asked

    per_model = {name: rec.get("diagnostics", {}) for name, rec in fit_records(run_dir).items()}
    vj = Path(run_dir) / "valuation.json"
    if vj.is_file():
        saved = json.loads(vj.read_text(encoding="utf-8")).get("diagnostics", {}).get("models", {})
        per_model.update({k: v for k, v in saved.items() if k not in per_model})
    return combined_diagnostics(per_model)


def diagnostics_problems(run_dir: str | Path) -> list[str]:
    """Every reason a fit behind the run does not pass (sampling thresholds, MAP, data and
    estimate checks), naming the model; empty when every fit passes."""
    return list(run_diagnostics(run_dir)["problems"])


def diagnostics_note(diagnostics: dict[str, Any]) -> str:
    """A Markdown warning for a page whose figures come from fits that did not pass (empty on
    pass): the status and every reason, named by model."""
    status = str(diagnostics.get("status", "pass" if diagnostics.get("ok", True) else "fail"))
    if status in ("pass", "none"):
        return ""
    items = "\n".join(f"- {md(p)}" for p in diagnostics.get("problems", []))
    return (f"**Diagnostics warning ({md(status)}):** the model fits behind the figures on this page did not "
            "pass their diagnostics; treat every figure with caution.\n\n" + items)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _money(v: float | None, currency: str, decimals: int = 2) -> str:
    if v is None:
        return "n/a"
    return f"{html.escape(currency)} {v:,.{decimals}f}"


def _plain(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.1f}"


def _interval(stats: dict[str, Any], currency: str, decimals: int = 2) -> str:
    return (f"{_money(stats.get('median'), currency, decimals)} "
            f"<span class=\"muted\">(90% interval {_money(stats.get('low'), currency, decimals)} "
            f"to {_money(stats.get('high'), currency, decimals)})</span>")


def _headline(val: dict[str, Any], currency: str, illustrative: bool) -> str:
    vps = val["value_per_share"]
    tag = ' <span class="assumption">(illustrative financial assumptions)</span>' if illustrative else ""
    lines = [f'<p class="headline">Value per share: {_interval(vps, currency)}{tag}</p>']
    price = val.get("market_price")
    if price is not None:
        p = val.get("prob_value_above_price")
        lines.append(f"<p>Market price {_money(price, currency)}; P(value per share &gt; market price) = "
                     f"<strong>{p:.0%}</strong>.</p>")
    else:
        lines.append('<p class="muted">No market price was given, so no comparison is shown.</p>')
    bridge = val["bridge"]
    ex, fu = bridge["existing_customer_equity"], bridge["future_customer_equity"]
    lines.append(
        f"<p>Existing customer equity {_interval(ex, currency, 0)}; future customer equity "
        f"{_interval(fu, currency, 0)}. Equity value {_interval(bridge['equity_value'], currency, 0)}.</p>"
    )
    note = (val.get("future_customers") or {}).get("note")
    if note and not (val.get("future_customers") or {}).get("included"):
        lines.append(f'<p class="muted">{html.escape(note[0].upper() + note[1:])}.</p>')
    return "\n".join(lines)


def _unit_table(val: dict[str, Any], currency: str) -> str:
    ue = val.get("unit_economics")
    if not ue:
        return ""
    rows = []
    for name, st in ue.items():
        if not isinstance(st, dict):
            continue
        money = not (name.startswith("CLV /") or name.startswith("Payback"))
        cells = "".join(
            f"<td>{_money(st.get(k), currency) if money else _plain(st.get(k))}</td>" for k in ("median", "low", "high")
        )
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    never = ue.get("share_never_paid_back")
    foot = ('<p class="muted">CLV of a new customer counts its first purchase and its repeat purchases '
            "after the contribution margin, discounted; payback is the number of periods until the undiscounted cumulative margin "
            "covers the acquisition cost"
            + (f" ({never:.0%} of draws do not pay back within the horizon)" if never else "") + ".</p>")
    return ("<h3>Unit economics of a new customer</h3><table class=\"grid\"><tr><th>item</th><th>median</th>"
            "<th>5%</th><th>95%</th></tr>" + "".join(rows) + "</table>" + foot)


def _diagnostics_block(diagnostics: dict[str, Any]) -> str:
    status, models = diagnostics["status"], diagnostics["models"]
    if status == "none":
        return ""
    if status != "pass":
        items = "".join(f"<li>{html.escape(p)}</li>" for p in diagnostics["problems"])
        return (f'<div class="banner" role="alert"><strong>Diagnostics warning ({html.escape(status)}):</strong> '
                "some model fits did not pass their diagnostics (sampling thresholds, or data and estimates "
                f"that cannot support the model); treat their figures with caution.<ul>{items}</ul></div>")
    names = ", ".join(sorted(models))
    return ('<div class="pass">Diagnostics: every fit passes (r_hat, effective sample size, divergences, and '
            f"the data and estimate checks): {html.escape(names)}.</div>")


def point_estimate_note(val: dict[str, Any]) -> str:
    """Said when a fit behind the valuation is a point estimate (MAP): its intervals then carry
    no parameter uncertainty."""
    fits = (val.get("models") or {}).get("fits") or {}
    point = sorted(k for k, f in fits.items() if f.get("method") != "nuts")
    if not point:
        return ""
    return (f" {html.escape(', '.join(point))} fitted by MAP, a point estimate: the intervals carry no "
            "parameter uncertainty of those models, only that of the financial inputs.")


def executive_summary(run_dir: str | Path, cfg: CompanyConfig) -> str:
    """The HTML block that opens ``index.html`` (see the module docstring)."""
    run = Path(run_dir)
    currency = cfg.company.currency
    parts = ['<section class="summary" id="executive-summary"><h2>Executive summary</h2>',
             _diagnostics_block(run_diagnostics(run))]
    vj = run / "valuation.json"
    if vj.is_file():
        val = json.loads(vj.read_text(encoding="utf-8"))
        fin = cfg.financials
        illustrative = bool(fin and fin.assumptions_note)
        parts.append(_headline(val, currency, illustrative))
        if fin and fin.assumptions_note:
            parts.append(f'<p class="assumption">Assumptions: {html.escape(fin.assumptions_note)}</p>')
        parts.append(_unit_table(val, currency))
        models = val.get("models", {})
        if val.get("business") == "disclosures":
            parts.append(f"<p class=\"muted\">Model: {html.escape(str(models.get('purchase')))}, fitted to the "
                         f"disclosed series from {html.escape(str(val['data_window']['first_period']))} to "
                         f"{html.escape(str(val['data_window']['last_period']))}; "
                         f"{val['n_draws']:,} posterior draws.{point_estimate_note(val)}</p>")
        elif val.get("business") == "subscription":
            parts.append(f"<p class=\"muted\">Retention model: {html.escape(str(models.get('retention')))} "
                         f"({html.escape(str(models.get('choice_reason')))}); revenue: each subscriber's "
                         f"{html.escape(str(models.get('spend')))}; "
                         f"{val['n_draws']:,} posterior draws.{point_estimate_note(val)}</p>")
        else:
            parts.append(f"<p class=\"muted\">Purchase model: {html.escape(str(models.get('purchase')))} "
                         f"({html.escape(str(models.get('choice_reason')))}); spend model: gamma-gamma; "
                         f"{val['n_draws']:,} posterior draws.{point_estimate_note(val)}</p>")
    else:
        parts.append('<p class="muted">This run has no valuation (notebook 04 was not run).</p>')
    for stem, caption in CHARTS:
        png = run / SUMMARY_DIR / f"{stem}.png"
        if png.is_file():
            parts.append(_img(png, caption))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _fmt_quantity(v: Any) -> str:
    if isinstance(v, Distribution):
        d = v.model_dump(exclude_none=True)
        kind = d.pop("dist")
        return f"{kind}(" + ", ".join(f"{k}={x:g}" for k, x in d.items()) + ")"
    if isinstance(v, float | int):
        return f"{v:,.6g}"
    return html.escape(str(v))


def assumptions_table(cfg: CompanyConfig) -> str:
    """Every financial input as configured (numbers or distributions), flagged as assumptions."""
    fin = cfg.financials
    if fin is None:
        return "<h2>Assumptions</h2><p>No financial inputs are configured.</p>"
    rows = []
    for name, value in fin:
        if name in ("assumptions_note", "scenarios"):
            continue
        if name == "market_size" and value is not None:
            value = f"median {value.median:,.0f}, log sd {value.log_sd:g}"
        rows.append(f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{_fmt_quantity(value)}</td></tr>")
    for scen, shock in fin.scenarios.items():
        text = ", ".join(f"{k} \u00d7{v:g}" for k, v in shock.items())
        rows.append(f"<tr><td>scenario: {html.escape(scen)}</td><td>{html.escape(text)}</td></tr>")
    note = f'<p class="assumption">{html.escape(fin.assumptions_note)}</p>' if fin.assumptions_note else ""
    return (f"<h2 id=\"assumptions\">Assumptions</h2>{note}<table><tr><th>input</th><th>value</th></tr>"
            + "".join(rows) + "</table>"
            f"<p class=\"muted\">Rates are annual; money in {html.escape(cfg.company.currency)}; costs per year. "
            "Inputs given as distributions are drawn once per posterior draw, so their uncertainty is in "
            "every interval.</p>")


def methodology_appendix(business: str = "transactions") -> str:
    """How the figures are computed, with references (a subscription company's own account for
    ``business="subscription"``)."""
    if business == "disclosures":
        refs = "".join(f"<li>{html.escape(r)}</li>" for r in DISCLOSURE_REFERENCES)
        return (
            '<h2 id="methodology">Methodology</h2>'
            "<p>The company's disclosed customer metrics are modelled as sums over latent acquisition cohorts: "
            "prospects in a finite market are acquired at a rate driven by marketing spend (a proportional-hazards "
            "Weibull with a share of never-acquirers); each cohort stays with a shifted-beta-geometric (or "
            "beta-discrete-Weibull) survival; alive customers order at a gamma-distributed rate with seasons; spend "
            "per order (or per subscriber) has a level, a trend and seasons; where new customers are disclosed, the "
            "cohorts are those disclosed counts. Each disclosed figure is its expectation with a relative error "
            "per series, autoregressive from one period to the next, and the model is fitted by NUTS in PyMC. It is "
            "validated by refits at rolling calibration ends, forecasting each disclosed series 1 to 8 periods "
            "ahead, against the constant-retention model of Gupta, Lehmann and Stuart and a trailing average. "
            "Existing customer equity is the latent cohorts' expected future revenue after the contribution "
            "margin, discounted; future customer equity is the customers acquired over the horizon, each worth its "
            "expected margin over its life less the acquisition cost. Operating value deducts the present value "
            "of fixed costs, capital expenditure and taxes; equity value adds non-operating assets and subtracts "
            "net debt. Every step is computed per posterior draw, paired with a draw of each uncertain financial "
            "input, so each figure carries a credible interval (equal-tailed 90%). On companies simulated customer "
            "by customer and valued from their disclosures alone, these intervals covered the true customer equity "
            "less often than nine times in ten: read them as a lower bound on the uncertainty.</p>"
            f"<h3>References</h3><ol>{refs}</ol>"
        )
    if business == "subscription":
        refs = "".join(f"<li>{html.escape(r)}</li>" for r in SUBSCRIPTION_REFERENCES)
        return (
            '<h2 id="methodology">Methodology</h2>'
            "<p>Each acquisition cohort's renewals are described by a shifted-beta-geometric model (or its "
            "beta-discrete-Weibull extension with duration dependence), the cohorts' parameters partially "
            "pooled through a population distribution, unpooled or pooled completely; the fits are compared "
            "on the subscribers' survival through the holdout period and the best one, refitted on all data to "
            "the valuation date, is valued, by NUTS in PyMC. A subscriber's residual value is its price times "
            "its discounted expected residual lifetime (DERL) given the renewals it has made, after the "
            "contribution margin; existing customer equity is its sum over today's subscribers. Future "
            "customer equity is forecast acquisitions times (the value of a new subscriber, with a new "
            "cohort's retention, minus the acquisition cost). Operating value deducts the present value of "
            "fixed costs, capital expenditure and taxes; equity value adds non-operating assets and subtracts "
            "net debt. Every step is computed per posterior draw, paired with a draw of each uncertain "
            "financial input, so each figure carries a credible interval (equal-tailed 90%).</p>"
            f"<h3>References</h3><ol>{refs}</ol>"
        )
    refs = "".join(f"<li>{html.escape(r)}</li>" for r in REFERENCES)
    return (
        '<h2 id="methodology">Methodology</h2>'
        "<p>Each customer's future purchases are forecast by a Bayesian purchase model (BG/NBD or "
        "Pareto/NBD, chosen on the holdout period) and their spend per purchase by the gamma-gamma model, "
        "both fitted by NUTS in PyMC. A customer's residual lifetime value is the contribution margin times "
        "expected spend times discounted expected residual transactions (DERT). Existing customer equity "
        "is its sum over customers; future customer equity is forecast acquisitions times (the CLV of a new "
        "customer minus the acquisition cost), when the acquisition history identifies an acquisition "
        "model. Operating value deducts the present value of fixed costs, capital expenditure and taxes; "
        "equity value adds non-operating assets and subtracts net debt. Every step is computed per "
        "posterior draw, paired with a draw of each uncertain financial input, so each figure carries a "
        "credible interval (equal-tailed 90%). Costs and new customers are discounted mid-period.</p>"
        f"<h3>References</h3><ol>{refs}</ol>"
    )
