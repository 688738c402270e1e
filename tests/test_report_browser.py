"""The rendered report in a real browser: headless Chromium (Debian's package, installed here
when missing) opens ``index.html`` and every section page, and checks that the executive summary
renders, every image loads and no code cell shows."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bs4 import BeautifulSoup

from conftest import run_cbcv
from test_report_pages import assert_self_contained

ROOT = Path(__file__).resolve().parents[1]

#: Flags for a headless run on a machine without a display or outside network (no background
#: connections, a fresh profile).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--virtual-time-budget=60000",
    # no outside network: every host name but the local server's fails to resolve
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<img alt="control" src="http://control.invalid/pixel.png"><script>
const pages = %s;
const out = {};
let i = 0;
function next() {
  if (i >= pages.length) { document.getElementById("result").textContent = JSON.stringify(out); return; }
  const page = pages[i++];
  const f = document.createElement("iframe");
  f.style.width = "1280px"; f.style.height = "1000px";
  f.onload = () => setTimeout(() => {
    const d = f.contentDocument;
    const imgs = [...d.images];
    const visible = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
    const s = d.getElementById("executive-summary");
    out[page] = {
      images: imgs.length,
      broken: imgs.filter((im) => !(im.complete && im.naturalWidth > 0)).map((im) => im.alt || im.src.slice(0, 60)),
      code: [...d.querySelectorAll(".jp-CodeCell .jp-InputArea, .jp-CodeMirrorEditor, .highlight, .jp-InputPrompt")].filter(visible).length,
      summary: s ? {height: s.getBoundingClientRect().height, text: s.innerText} : null,
      title: d.title,
      text: d.body.innerText,
      pwned: f.contentWindow.__pwned === undefined ? null : String(f.contentWindow.__pwned),
      stderr: d.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
      scripts: d.scripts.length,
    };
    f.remove();
    next();
  }, 500);
  f.src = "report/" + page;
  document.body.appendChild(f);
}
next();
</script></body></html>"""


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt when missing (the test set-up the report check needs)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        res = subprocess.run([*sudo, *cmd], capture_output=True, text=True, env=env, timeout=900)
        if res.returncode != 0:
            return None
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _install_chromium()
    if path is None:
        pytest.fail("headless Chromium is needed for the report check and could not be installed with apt-get")
    return path


@contextlib.contextmanager
def _serve(report: Path, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The report folder and a checker page on a local HTTP server (same origin, so the checker
    can look inside each page's document)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "report").symlink_to(report, target_is_directory=True)
    pages = ["index.html", *sorted(p.name for p in report.glob("[0-9][0-9]_*.html"))]
    (root / "check.html").write_text(CHECK_PAGE % json.dumps(pages), encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/check.html", pages
    finally:
        server.shutdown()


@pytest.fixture()
def served(sample_report: Path, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    with _serve(sample_report, tmp_path) as site:
        yield site


#: An outside address the checker page itself asks for: it must show up in the NetLog (so the
#: check is not vacuous) and must not resolve (the network is blocked).
CONTROL_URL = "http://control.invalid/pixel.png"


def _page_requests(net_log: Path) -> list[str]:
    """Every URL that a page (the checker or a report page in it) asked the network stack for,
    from Chromium's NetLog: requests keyed to the local server's site. The browser's own
    background requests (keyed to other sites or none) are not the report's."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted({
        e["params"]["url"] for e in log["events"]
        if e["type"] == start_job and "url" in e.get("params", {})
        and str(e["params"].get("network_isolation_key", "")).startswith("http://127.0.0.1 ")
    })


def _external(urls: list[str]) -> list[str]:
    return [u for u in urls if not re.match(r"(https?|wss?)://127\.0\.0\.1[:/]", u) and u != CONTROL_URL]


def _check_in_chromium(chromium: str, url: str, tmp_path: Path) -> tuple[dict[str, Any], list[str]]:
    """Open the checker page: what it saw in each page, and every URL the browser requested."""
    net_log = tmp_path / "netlog.json"
    res = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={net_log}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    result = BeautifulSoup(res.stdout, "html.parser").select_one("#result").get_text()
    assert result != "pending", "the checker page did not finish"
    urls = _page_requests(net_log)
    assert any(u.endswith("/report/index.html") for u in urls) and CONTROL_URL in urls, urls
    return json.loads(result), urls


def _assert_investor_pages(seen: dict[str, Any], pages: list[str], report: Path, urls: list[str]) -> None:
    """Every page: no script, no stderr block, no machine path, nothing requested from outside."""
    assert _external(urls) == []
    leaks = ("/root", "/home/", "site-packages", "/tmp", str(ROOT), sys.prefix, str(report))
    for page, info in seen.items():
        assert info["pwned"] is None, (page, info["pwned"])
        assert info["scripts"] == 0 and info["stderr"] == 0, page
        assert [m for m in leaks if m in info["text"]] == [], page
        html = (report / page).read_text(encoding="utf-8")
        assert_self_contained(html)
        body = BeautifulSoup(html, "html.parser").body
        assert not body.select('[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-stderr'), page
        noise = ("Traceback", "UserWarning", "RuntimeWarning", "FutureWarning", "DeprecationWarning", "Sampling ")
        assert [n for n in noise if n in info["text"]] == [], page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(
    chromium: str, served: tuple[str, list[str]], sample_report: Path, tmp_path: Path
) -> None:
    url, pages = served
    seen, urls = _check_in_chromium(chromium, url, tmp_path)
    assert sorted(seen) == sorted(pages) and len(pages) == 5
    for page, info in seen.items():
        assert info["broken"] == [], (page, info["broken"])
        assert info["code"] == 0, (page, info["code"])
        assert info["images"] >= 1, page
    summary = seen["index.html"]["summary"]
    assert summary is not None and summary["height"] > 300
    assert "Value per share" in summary["text"] and "Unit economics" in summary["text"]
    assert seen["index.html"]["images"] >= 4
    _assert_investor_pages(seen, pages, sample_report, urls)


@pytest.mark.slow
def test_default_madrigal_report_in_headless_chromium(chromium: str, madrigal_report: Path, tmp_path: Path) -> None:
    """The default report (``make report``): six pages, the backtests among them, each stating
    the valuation date; the backtests' figures beside them in strict JSON."""
    with _serve(madrigal_report, tmp_path) as (url, pages):
        seen, urls = _check_in_chromium(chromium, url, tmp_path)
    assert len(pages) == 6 and "05_backtests.html" in pages
    for page, info in seen.items():
        assert info["broken"] == [] and info["code"] == 0, page
        assert re.search(r"[Vv]aluation date:?\s+2019-12-31", info["text"]), page
    text = seen["05_backtests.html"]["text"]
    assert "2019Q4" in text and "MAPE" in text and "trailing 4-period average" in text
    assert seen["05_backtests.html"]["images"] == 2
    _assert_investor_pages(seen, pages, madrigal_report, urls)
    record = json.loads((madrigal_report / "backtests.json").read_text(), parse_constant=_no_constant)
    assert record["rolling_origin"]["origins"] == ["2018Q4", "2019Q1", "2019Q2", "2019Q3"]
    assert [p["period"] for p in record["acquisition"]["periods"]] == ["2019Q1", "2019Q2", "2019Q3", "2019Q4"]
    valuation = json.loads((madrigal_report / "valuation.json").read_text(), parse_constant=_no_constant)
    assert valuation["valuation_date"] == "2019-12-31" and valuation["future_customers"]["included"] is True


def _no_constant(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


# -- a hostile config: every string an investor page shows from a config or a data file -----------

NAME = "Acme <Retail> Holdings <script>window.__pwned='name'</script>"
CURRENCY = "$<img src=x onerror=\"window.__pwned='currency'\">$"
SCENARIOS = ("<script>window.__pwned='scenario'</script>", "[x](javascript:window.__pwned='link') **b**")
NOTE = ("[click](javascript:window.__pwned='note') <b>bold</b> _x_ $a$ and $b$ `tick` "
        "<img src=x onerror=\"window.__pwned='note'\"> & done")
DATA_FILE = "tx `q1` <b>x.csv"
#: Where each string must be readable, as written.
SHOWN = {
    "index.html": (NAME, CURRENCY, DATA_FILE, NOTE, *SCENARIOS),
    "01_customer_base_audit.html": (NAME, CURRENCY, DATA_FILE),
    "03_customer_lifetime_value.html": (NOTE,),
    "04_company_valuation.html": (CURRENCY, NOTE, *SCENARIOS),
}


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``cbcv report`` (MAP fits, for speed) on the CDNOW sample as a CSV whose file name holds a
    backtick and a tag, under a config whose every free-text field is an injection attempt."""
    out = tmp_path_factory.mktemp("hostile")
    rows = ["customer_id,date,amount"]
    for line in (ROOT / "data" / "raw" / "CDNOW_sample.txt").read_text().splitlines():
        cid, _, day, _, amount = line.split()
        rows.append(f"{cid},{day[:4]}-{day[4:6]}-{day[6:]},{amount}")
    (out / DATA_FILE).write_text("\n".join(rows) + "\n")
    cfg = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    cfg["company"] = {"name": NAME, "slug": "acme", "currency": CURRENCY}
    cfg["data"]["source"] = DATA_FILE
    cfg["sampler"] = {"method": "map"}
    cfg["financials"]["scenarios"] = {SCENARIOS[0]: {"retention": 1.05}, SCENARIOS[1]: {"margin": 0.9}}
    cfg["financials"]["assumptions_note"] = NOTE
    config = out / "hostile.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    res = run_cbcv("report", str(config), "--out", str(out / "reports"))
    assert res.returncode == 0, res.stderr[-3000:]
    return Path(json.loads(res.stdout)["run_dir"])


@pytest.mark.slow
def test_hostile_config_runs_nothing_and_reads_as_written(
    chromium: str, hostile_report: Path, tmp_path: Path
) -> None:
    with _serve(hostile_report, tmp_path) as (url, pages):
        seen, urls = _check_in_chromium(chromium, url, tmp_path)
    assert sorted(seen) == sorted(pages) and len(pages) == 5
    _assert_investor_pages(seen, pages, hostile_report, urls)
    for page, strings in SHOWN.items():
        text = " ".join(seen[page]["text"].split())
        assert [s for s in strings if s not in text] == [], page
    for page in pages[1:]:
        assert seen[page]["title"].startswith(NAME + ": "), seen[page]["title"]
        assert seen[page]["broken"] == [], page
    assert seen["index.html"]["title"].startswith(NAME)
