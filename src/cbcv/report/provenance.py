"""Provenance of a run: what went in (input hash, config, seed), with what (package versions,
git commit), and how long each step took. Written as ``provenance.json`` beside every report."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGES: tuple[str, ...] = (
    "cbcv", "pymc", "pytensor", "arviz", "numpy", "scipy", "pandas", "duckdb", "pyarrow",
    "papermill", "nbconvert", "matplotlib", "pydantic",
)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def git_state(cwd: str | Path) -> dict[str, Any]:
    """Commit and whether the work tree has uncommitted changes; nulls outside a git clone."""

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
