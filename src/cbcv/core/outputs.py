"""What a command owns in its ``--out`` folder, so a rerun leaves no earlier run's files behind.

A command that writes into a folder (``cbcv audit``) first calls :func:`claim`: a new or empty
folder is taken; a folder that this command wrote before (it holds :data:`MANIFEST`, listing
the files written) has those files removed; any other file there makes the command refuse,
with one line naming the folder and the files, before anything is written. :func:`record`
lists what the run wrote, at its end. A run that was interrupted leaves a manifest marked
incomplete: every file then in the folder is that run's, and the next run removes them.
"""

from __future__ import annotations

from pathlib import Path

from cbcv.core.cache import LOCK_NAME, atomic_write_json, read_json
from cbcv.core.errors import CbcvError

MANIFEST = ".cbcv-outputs.json"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in (MANIFEST, LOCK_NAME))


def _owned(folder: Path, command: str) -> set[str] | None:
    """The files of ``folder`` that an earlier run of ``command`` wrote; None when it did not."""
    saved = read_json(folder / MANIFEST)
    if not isinstance(saved, dict) or saved.get("command") != command:
        return None
    if not saved.get("complete"):
        return set(_files(folder))
    return {str(f) for f in saved.get("files", []) if isinstance(f, str) and Path(f).name == f}


def claim(folder: str | Path, command: str) -> Path:
    """Make ``folder`` ready for a run of ``command`` (see the module docstring)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CbcvError(f"--out {folder}: is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    present = _files(folder)
    owned = _owned(folder, command) or set()
    foreign = [f for f in present if f not in owned]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise CbcvError(f"--out {folder}: not empty and not written by cbcv {command} ({shown}); "
                        "choose a new or empty folder")
    for name in owned:
        path = folder / name
        if path.is_file() or path.is_symlink():
            path.unlink()
        elif path.is_dir():
            raise CbcvError(f"--out {folder}: {name} is a folder; choose a new or empty folder")
    atomic_write_json(folder / MANIFEST, {"command": command, "complete": False, "files": []})
    return folder


def record(folder: str | Path, command: str) -> Path:
    """Mark the run of ``command`` into ``folder`` complete, listing the files it wrote."""
    folder = Path(folder)
    return atomic_write_json(folder / MANIFEST, {"command": command, "complete": True, "files": _files(folder)})
