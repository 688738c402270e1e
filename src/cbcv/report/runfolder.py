"""A report's run folder, built so that an interrupted run cannot pass for a complete one.

A run is built in ``<out>/<company>/<run-id>.partial/`` holding an :data:`IN_PROGRESS` note;
only when the whole suite has run (and provenance and the index are written) is the note
removed and the folder renamed to ``<run-id>/``. A run killed on the way (Ctrl-C, SIGTERM,
SIGKILL, a crash) stays ``.partial`` with the note: its first pages are not a report.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from cbcv.core.errors import ReportError

PARTIAL_SUFFIX = ".partial"
IN_PROGRESS = "RUN_IN_PROGRESS.txt"
_NOTE = ("This run did not finish (it is still running, or was interrupted or killed).\n"
         "Its pages are not a report; run cbcv report again.\n")


def start_run(out: str | Path, company_folder: str, now: dt.datetime | None = None) -> Path:
    """Create and return a fresh ``out/<company>/<run-id>.partial`` folder, with its note; the
    run id is never that of another run, finished or not."""
    now = now or dt.datetime.now(dt.UTC)
    base = Path(out) / company_folder
    base.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        if (base / run_id).exists():
            continue
        path = base / f"{run_id}{PARTIAL_SUFFIX}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / IN_PROGRESS).write_text(_NOTE + f"pid {os.getpid()}, started {now.isoformat(timespec='seconds')}\n",
                                        encoding="utf-8")
        return path
    raise ReportError(f"{base}: could not create a new run folder")


def run_id(folder: str | Path) -> str:
    """The run id of a run folder, finished or not."""
    name = Path(folder).name
    return name.removesuffix(PARTIAL_SUFFIX)


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a finished run (renamed, no in-progress note)."""
    folder = Path(folder)
    return not folder.name.endswith(PARTIAL_SUFFIX) and not (folder / IN_PROGRESS).exists()


def finish_run(folder: str | Path) -> Path:
    """Mark the run complete: remove the note and rename ``<run-id>.partial`` to ``<run-id>``."""
    folder = Path(folder)
    final = folder.with_name(run_id(folder))
    (folder / IN_PROGRESS).unlink(missing_ok=True)
    os.rename(folder, final)
    return final
