"""Crash-safe files for caches and outputs: atomic writes and a per-folder lock.

* :func:`temporary_path` / :func:`atomic_write_text`: write to a temporary name in the same
  folder, then :func:`os.replace` it onto the final name, so a reader sees the old file or the
  new one, never half of one; a failed or interrupted write leaves only the temporary file,
  which is removed.
* :class:`FolderLock`: an ``O_EXCL`` lock file (``.cbcv.lock``, holding the owner's pid) so
  two runs do not rebuild one company's cache at the same time. A lock whose process is gone
  (killed) is stale and taken over.
* :func:`content_key`: a SHA-256 of a JSON-able key (source hash and the settings that matter).
* :func:`cached_file`: a derived file and its manifest, rebuilt when the key changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from cbcv.core.errors import CbcvError
from cbcv.core.jsonio import dumps_strict

LOCK_NAME = ".cbcv.lock"


def content_key(key: Any) -> str:
    """SHA-256 of ``key`` as canonical JSON."""
    text = dumps_strict(key, indent=None, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def temporary_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an exception, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # keeps the extension
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with temporary_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, record: Any) -> Path:
    """Write ``record`` as strict JSON to ``path`` atomically: every JSON file cbcv writes goes
    through here (:func:`cbcv.core.jsonio.dumps_strict`: non-finite numbers as null, listed under
    ``"non_finite"`` in a dict record; NumPy scalars, dates and dataclasses converted)."""
    return atomic_write_text(path, dumps_strict(record, note=True))


def write_fit_folder(out: str | Path, save_posterior: Callable[[Path], Any], record: Any) -> Path:
    """A fitted model's folder: ``out/posterior.nc`` (written by ``save_posterior`` to a
    temporary name, then renamed) and ``out/fit.json`` (``record``), the latter removed first and
    written last, so a folder holds a complete fit or no ``fit.json``. Returns ``fit.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fj = out / "fit.json"
    fj.unlink(missing_ok=True)
    with temporary_path(out / "posterior.nc") as tmp:
        save_posterior(tmp)
    return atomic_write_json(fj, record)


def read_json(path: str | Path) -> Any | None:
    """The JSON in ``path``; None when it is missing or not valid JSON (a cache to rebuild)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def file_stamps(*paths: Path) -> dict[str, list[int]]:
    """Size and modification time (ns) of each file, by name: what a manifest vouches for."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}


def cached_file(path: Path, manifest: Path, key: str, write: Callable[[Path], Any]) -> Path:
    """``path``, reused while ``manifest`` records ``key`` and the file's size and time; else
    rebuilt by ``write(tmp)`` (a temporary name, renamed onto ``path``) under the folder's lock,
    the manifest removed first and written last, so a half-written cache is never reused."""
    with FolderLock(path.parent):
        saved = read_json(manifest)
        if (path.is_file() and isinstance(saved, dict) and saved.get("key") == key
                and saved.get("files") == file_stamps(path)):
            return path
        manifest.unlink(missing_ok=True)
        with temporary_path(path) as tmp:
            write(tmp)
        atomic_write_json(manifest, {"key": key, "files": file_stamps(path)})
    return path


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """Exclusive lock on a folder for one process: ``with FolderLock(folder): ...``.

    Waits up to ``timeout`` seconds for another live process's lock, then raises
    :class:`~cbcv.core.errors.CbcvError` naming the folder and the pid; a lock left by a process
    that no longer exists is removed. Re-entrant within one process."""

    _held: dict[Path, int] = {}

    def __init__(self, folder: str | Path, timeout: float = 600.0, poll: float = 0.2) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.timeout, self.poll = timeout, poll

    def _try(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _stale(self, owner: int | None) -> bool:
        """The owner is gone, or wrote no pid (killed while taking the lock) seconds ago."""
        if owner is not None:
            return not _pid_alive(owner)
        try:
            return time.time() - self.path.stat().st_mtime > 5.0
        except FileNotFoundError:
            return True

    def acquire(self) -> None:
        key = self.path.resolve()
        if key in self._held:
            self._held[key] += 1
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        while not self._try():
            owner = self._owner()
            if self._stale(owner):
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process was killed
                continue
            if time.monotonic() > deadline:
                raise CbcvError(f"{self.folder}: in use by another cbcv run (pid {owner}, lock {self.path.name})")
            time.sleep(self.poll)
        self._held[key] = 1

    def release(self) -> None:
        key = self.path.resolve()
        self._held[key] -= 1
        if self._held[key] == 0:
            del self._held[key]
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
