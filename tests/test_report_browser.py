"""The rendered report in a real browser: headless Chromium (Debian's package, installed here
when missing) opens ``index.html`` and every section page, and checks that the executive summary
renders, every image loads and no code cell shows."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

#: Flags for a headless run on a machine without a display or outside network (no background
#: connections, a fresh profile).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--virtual-time-budget=60000",
)

CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="result">pending</pre><script>
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


@pytest.fixture()
def served(sample_report: Path, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The report folder and a checker page on a local HTTP server (same origin, so the checker
    can look inside each page's document)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "report").symlink_to(sample_report, target_is_directory=True)
    pages = ["index.html", *sorted(p.name for p in sample_report.glob("0*.html"))]
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


@pytest.mark.slow
def test_report_renders_in_headless_chromium(chromium: str, served: tuple[str, list[str]], tmp_path: Path) -> None:
    url, pages = served
    res = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    result = BeautifulSoup(res.stdout, "html.parser").select_one("#result").get_text()
    assert result != "pending", "the checker page did not finish"
    seen = json.loads(result)
    assert sorted(seen) == sorted(pages) and len(pages) == 5
    for page, info in seen.items():
        assert info["broken"] == [], (page, info["broken"])
        assert info["code"] == 0, (page, info["code"])
        assert info["images"] >= 1, page
    summary = seen["index.html"]["summary"]
    assert summary is not None and summary["height"] > 300
    assert "Value per share" in summary["text"] and "Unit economics" in summary["text"]
    assert seen["index.html"]["images"] >= 4
