"""What a notebook's kernel wrote to stdout/stderr (sampler progress, library warnings with this
machine's install paths) and the tracebacks of a failed cell belong in the run's log, not on an
investor page. :func:`move_to_log` takes them out of an executed notebook and writes them to
``logs/<notebook>.log`` in the run folder; a failed cell keeps a one-line notice on the page, and a
closing sentence says where the messages went. What matters to an investor (divergent
transitions, failed diagnostics) is said on the page by the notebook itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from cbcv.core.escape import md

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _log_text(cell_no: int, out: Any) -> str:
    if out.output_type == "stream":
        return f"[cell {cell_no}] {out.name}:\n{out.text.rstrip()}\n"
    trace = _ANSI.sub("", "\n".join(out.get("traceback") or []))
    return f"[cell {cell_no}] error {out.ename}: {out.evalue}\n{trace}\n"


def _failure_notice(out: Any, log_name: str) -> Any:
    text = (f"**This section stopped with an error:** {md(out.ename)}: {md(out.evalue)}. "
            f"The details are in {md(log_name)} in the run folder.")
    return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": text})


def move_to_log(nb: Any, log_path: Path) -> int:
    """Remove every stream output and replace every error output of ``nb`` (in place), writing
    them to ``log_path`` (rendering the same notebook again writes the same log); returns how
    many outputs were moved."""
    lines: list[str] = []
    log_name = f"{log_path.parent.name}/{log_path.name}"
    for i, cell in enumerate(nb.cells):
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type in ("stream", "error"):
                lines.append(_log_text(i, out))
            if out.output_type == "error":
                kept.append(_failure_notice(out, log_name))
            elif out.output_type != "stream":
                kept.append(out)
        if "outputs" in cell:
            cell.outputs = kept
    if lines:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("".join(lines), encoding="utf-8")
        nb.cells.append(nbformat.v4.new_markdown_cell(
            f"_Progress and technical messages of this computation are kept in {md(log_name)} in "
            "the run folder._"))
    return len(lines)
