"""What reaches an investor page: text from configs and data files shown as written (Markdown,
HTML tables, figures), pages without scripts or external resources, and the kernel's
stdout/stderr and tracebacks moved to the run's log. Fast: no notebook is executed."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import nbformat
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from matplotlib.cbook import is_math_text
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from cbcv.core.escape import md, md_code, plot_text
from cbcv.plots.style import money_formatter
from cbcv.report.render import render_notebook_html, write_index
from cbcv.report.sanitize import sanitize_page
from cbcv.report.tables import reconciliation_frame, styled, three_significant

matplotlib.use("Agg")

HOSTILE = [
    "Acme <Retail> Holdings",
    "<script>window.__pwned=1</script>",
    "<img src=x onerror=\"window.__pwned='x'\">",
    "[x](javascript:alert(1))",
    "[x]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<https://evil.example/x>",
    "https://evil.example/track.png",
    "![i](https://evil.example/i.png)",
    "**bold** _em_ *em* ~~s~~ `code` ``two``",
    "# heading",
    "- item",
    "1. item",
    "> quote",
    "    indented code",
    "a | b | c",
    "$x^2$ and $$y$$ and \\(z\\)",
    "back\\slash \\*not em\\* \\`",
    "&amp; &lt;b&gt; &#x3C;script&#x3E; &copy;",
    "line one\nline two\n\n- a list",
    "tx `q1` <b>x.csv",
    "C:\\data\\file_name_[1].csv",
    "US$ 5 and € and ¥",
]
ACTIVE = "script, img, a, iframe, object, embed, code, em, strong, h1, ul, ol, li, blockquote, pre, table, del, b"


def _rendered_text(markdown: str) -> tuple[str, BeautifulSoup]:
    soup = BeautifulSoup(markdown2html_mistune(markdown), "html.parser")
    return soup.get_text(), soup


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("value", HOSTILE)
def test_md_shows_any_string_as_written_and_as_plain_text(value: str) -> None:
    text, soup = _rendered_text(f"Company: {md(value)} · end")
    assert _squash(text) == _squash(f"Company: {value} · end")
    assert soup.select(ACTIVE) == [], soup


@pytest.mark.parametrize("value", HOSTILE)
def test_md_inside_emphasis_keeps_the_emphasis_and_the_text(value: str) -> None:
    text, soup = _rendered_text(f"**Assumptions:** _{md(value)}_")
    assert _squash(text) == _squash(f"Assumptions: {value}")
    assert [t.name for t in soup.select(ACTIVE)] == ["strong", "em"]
    assert soup.em.get_text() == _squash(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_md_code_shows_file_names_in_one_code_span(value: str) -> None:
    text, soup = _rendered_text(f"transactions from {md_code(value)} · cohorts by month")
    codes = soup.select("code")
    assert len(codes) == 1 and codes[0].get_text() == _squash(value)
    assert _squash(text) == _squash(f"transactions from {value} · cohorts by month")
    assert soup.select("script, img, a, iframe") == []


def test_styled_tables_escape_cells_index_and_column_labels() -> None:
    frame = pd.DataFrame(
        {"scenario": HOSTILE[:4], "<b>median</b>": [1.0, 2.0, 3.0, 4.0], "share": [0.1, 0.2, 0.3, 0.4]},
        index=pd.Index(HOSTILE[4:8], name="<i>id</i>"),
    )
    for hide in (True, False):
        html = styled(frame, money=["<b>median</b>"], pct=["share"], hide_index=hide).to_html()
        soup = BeautifulSoup(html, "html.parser")
        assert soup.select("script, img, a, b, i") == []
        assert [c.get_text() for c in soup.select("td")][-3:] == [HOSTILE[3], "4.00", "40.0%"]
        headers = [c.get_text() for c in soup.select("th")]
        assert "<b>median</b>" in headers
        assert (HOSTILE[7] in headers) is not hide


@pytest.mark.parametrize("value", ["$\\frac{1}{0$", "$<img src=x onerror=y>$", "US$ 5 and US$ 6", "\\$x$"])
def test_plot_text_is_never_parsed_as_mathtext(value: str) -> None:
    """Unescaped, each of these is invalid mathtext (drawing raises) or loses its dollar signs."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    title = ax.set_title(plot_text(value))
    ax.yaxis.set_major_formatter(money_formatter(value))
    ax.plot([0, 1], [0, 20000])
    fig.canvas.draw()
    assert title.get_text() == plot_text(value)
    assert not is_math_text(plot_text(value)) and not is_math_text(money_formatter(value)(20000))
    plt.close(fig)


SANITIZE_CASES = {
    "<script>window.__pwned=1</script>": "script",
    '<script src="https://cdn.example/require.js"></script>': "script",
    '<script type="module">import "https://cdn.example/m.mjs"</script>': "script",
    '<img src=x onerror="window.__pwned=1">': "onerror",
    '<body onload="window.__pwned=1">': "onload",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>': "javascript",
    '<a href="javascript:alert(1)">x</a>': "javascript",
    '<a href=" JaVaScRiPt:alert(1)">x</a>': "javascript",
    '<a href="java&#x09;script:alert(1)">x</a>': "alert",
    '<a href="data:text/html,<script>alert(1)</script>">x</a>': "data:text",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>': "iframe",
    '<object data="https://evil.example/x.swf"></object>': "object",
    '<embed src="https://evil.example/x">': "embed",
    '<form action="https://evil.example"><input name=a></form>': "form",
    '<meta http-equiv="refresh" content="0;url=https://evil.example">': "refresh",
    '<base href="https://evil.example/">': "base",
    '<link rel="stylesheet" href="https://cdn.example/x.css">': "link",
    '<img src="https://evil.example/pixel.png">': "evil",
    '<img src="//evil.example/pixel.png">': "evil",
    '<img srcset="https://evil.example/a.png 2x">': "evil",
    '<video poster="https://evil.example/p.png"></video>': "evil",
    '<div style="background:url(https://evil.example/p.png)">x</div>': "evil",
    '<style>@import url("https://evil.example/x.css"); p{color:red}</style>': "evil",
    "<style>body{background:url(https://evil.example/p.png)}</style>": "evil",
}


@pytest.mark.parametrize(("snippet", "gone"), SANITIZE_CASES.items())
def test_sanitize_page_removes_active_and_external_content(snippet: str, gone: str) -> None:
    page = f"<!DOCTYPE html><html><head><title>t</title></head><body><p>keep me</p>{snippet}</body></html>"
    out = sanitize_page(page)
    assert gone.lower() not in out.lower(), out
    assert "keep me" in out


def test_sanitize_page_keeps_what_the_report_needs() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    page = (f'<html><head><style>td{{color:#123}}</style></head><body><a href="#assumptions">a</a>'
            f'<a href="01_customer_base_audit.html">b</a><a href="provenance.json">c</a>'
            f'<img alt="c3" src="{png}"><table><tr><td class="x" style="color:red">1</td></tr></table></body></html>')
    soup = BeautifulSoup(sanitize_page(page), "html.parser")
    assert [a["href"] for a in soup.select("a")] == ["#assumptions", "01_customer_base_audit.html", "provenance.json"]
    assert soup.img["src"] == png and soup.td["style"] == "color:red"
    assert "td{color:#123}" in soup.style.get_text()


def _notebook_with_noise() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    sampler = nbformat.v4.new_code_cell("fit()")
    sampler.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="Sampling 2 chains for 300 tune\n"),
        nbformat.v4.new_output("stream", name="stderr", text=(
            "/root/.venv/lib/python3.11/site-packages/pymc/step_methods/hmc/quadpotential.py:713: "
            "RuntimeWarning: overflow encountered in dot\n")),
        nbformat.v4.new_output("stream", name="stdout", text="/tmp/run/progress 100%\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": "**Diagnostics: all fits pass.**",
                                                     "text/plain": "x"}),
    ]
    failed = nbformat.v4.new_code_cell("value()")
    failed.outputs = [nbformat.v4.new_output(
        "error", ename="ValueError", evalue="margin must be positive",
        traceback=["\x1b[0;31mValueError\x1b[0m Traceback", 'File /work/main/src/cbcv/x.py:3 in value'])]
    nb.cells = [nbformat.v4.new_markdown_cell("# Section\n\nText with $x$."), sampler, failed]
    return nb


def test_render_moves_kernel_streams_and_tracebacks_to_the_log(tmp_path: Path) -> None:
    src = tmp_path / "02_model_fit_and_validation.ipynb"
    nbformat.write(_notebook_with_noise(), src)
    page = render_notebook_html(src, tmp_path / "02_model_fit_and_validation.html", title="Acme <Retail>: 2.")
    html = page.read_text()
    soup = BeautifulSoup(html, "html.parser")
    text = soup.body.get_text(" ")
    assert "Diagnostics: all fits pass." in text and "Section" in text
    assert not soup.select('[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-stderr')
    for leak in ("Sampling", "RuntimeWarning", "site-packages", "/root", "/tmp", "/work", "Traceback"):
        assert leak not in text, leak
    assert "This section stopped with an error: ValueError: margin must be positive" in _squash(text)
    assert "logs/02_model_fit_and_validation.log in the run folder" in _squash(text)
    log = (tmp_path / "logs" / "02_model_fit_and_validation.log").read_text()
    for kept in ("Sampling 2 chains", "overflow encountered in dot", "/tmp/run/progress", "ValueError",
                 "File /work/main/src/cbcv/x.py:3"):
        assert kept in log, kept
    assert "\x1b[" not in log
    assert soup.title.get_text() == "Acme <Retail>: 2."
    assert_self_contained(html)


def test_render_of_a_quiet_notebook_adds_no_log(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "**quiet**", "text/plain": "q"})]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "01.ipynb")
    text = BeautifulSoup(render_notebook_html(tmp_path / "01.ipynb", tmp_path / "01.html").read_text(),
                         "html.parser").get_text()
    assert "quiet" in text and "logs/" not in text and not (tmp_path / "logs").exists()


def assert_self_contained(html: str) -> None:
    """No script at all and no resource from outside the page (src, stylesheet, CSS url())."""
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select("script, link, iframe, object, embed") == []
    loads = [t.get(a, "") for t in soup.find_all(True) for a in ("src", "srcset", "poster", "data")]
    assert [u for u in loads if u and not u.startswith("data:image/")] == []
    hrefs = [a.get("href", "") for a in soup.find_all(href=True)]
    assert [h for h in hrefs if re.match(r"\s*[a-z][a-z0-9+.-]*:|//", h, re.IGNORECASE)] == []
    css = " ".join(s.get_text() for s in soup.select("style"))
    assert not re.search(r"@import|url\(\s*['\"]?(?!data:)", css)
    assert not [t for t in soup.find_all(True) if any(a.lower().startswith("on") for a in t.attrs)]


def test_index_page_is_inert_whatever_the_summary_holds(tmp_path: Path) -> None:
    path = write_index(
        tmp_path, title="Acme <Retail> Holdings <script>window.__pwned=1</script>", entries=[],
        facts=[("input", "tx `q1` <b>x.csv")],
        summary_html='<section id="executive-summary"><img src=x onerror="window.__pwned=1"><p>USD 5</p></section>',
    )
    html = path.read_text()
    soup = BeautifulSoup(html, "html.parser")
    assert soup.h1.get_text() == "Acme <Retail> Holdings <script>window.__pwned=1</script>"
    assert "tx `q1` <b>x.csv" in soup.get_text() and "USD 5" in soup.get_text()
    assert_self_contained(html)


def test_prior_intervals_read_to_three_significant_digits() -> None:
    values = [4.54e-5, 0.00280, 0.0123, 1.0, 357.771, 18030.499, -2.5, 2.5e7, 9.9999e-4]
    assert [three_significant(v) for v in values] == [
        "4.54×10⁻⁵", "2.80×10⁻³", "0.0123", "1.00", "358", "18,030", "-2.50", "2.50×10⁷",
        "1.00×10⁻³",
    ]
    html = styled(pd.DataFrame({"low": [4.54e-5, float("nan")]}), significant=["low"]).to_html()
    assert "4.54×10⁻⁵" in html and "e-05" not in html


@pytest.mark.parametrize("zero_days", [False, True])
def test_the_reconciliation_table_states_the_purchase_rule(zero_days) -> None:
    rec = {"source": "log.csv", "rows_read": 3, "rows_accepted": 3, "rows_rejected": 0,
           "rejected_by_reason": {}, "n_customers": 1, "customer_days": 1, "first_date": "x",
           "last_date": "y", "total_amount": 1.0, "zero_amount_purchases": zero_days,
           "returns": {"rows": 1, "amount": 40.0, "customer_days_netted": 1,
                       "non_positive_days": 1}}
    table = reconciliation_frame(rec)
    rule = table.loc["purchase rule", "value"]
    assert rule.startswith("a customer-day with a positive net amount")
    assert ("zero-amount rows only" in rule) is zero_days
    assert table.loc["customer-days that are not purchases", "value"] == "1"
