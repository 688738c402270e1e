"""Interrupts (Ctrl-C, SIGTERM) as one clear outcome: ``cbcv: interrupted``, exit 130 or 143.

:func:`install` replaces the SIGINT and SIGTERM handlers with one that records the signal and
raises :class:`Interrupted` (a :class:`KeyboardInterrupt`, so libraries that clean up on Ctrl-C
still do). Some libraries swallow it: PyMC returns the draws sampled so far, DuckDB turns it into
its own exception. So the command does not trust what comes back: :func:`check` raises again
whenever a signal has been received, and is called before anything is saved.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

#: Exit status for each handled signal: 128 + its number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """Raised when the command received SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(signal.Signals(self.signum), 128 + self.signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM in this (main) thread as :class:`Interrupted`."""
    for sig in EXIT_CODES:
        signal.signal(sig, _handler)


def received() -> int | None:
    """The first signal received since :func:`install` (None when none was)."""
    return _received[0] if _received else None


def exit_code() -> int:
    """The exit status for the first signal received (130 for Ctrl-C when none was recorded)."""
    signum = received()
    return Interrupted(signum).exit_code if signum is not None else EXIT_CODES[signal.SIGINT]


def check() -> None:
    """Raise :class:`Interrupted` again when a signal was received, even if a library caught the
    first one (call it before saving results)."""
    signum = received()
    if signum is not None:
        raise Interrupted(signum)


def in_worker_thread(fn: Callable[[], T]) -> T:
    """``fn()`` run in a daemon worker thread while this (main) thread waits, so that the main
    thread keeps these signal handlers: papermill's notebook client otherwise installs its own
    for SIGINT and SIGTERM (it shuts the kernel down and carries on) and leaves the defaults
    behind. An interrupt then raises :class:`Interrupted` here; the worker is abandoned, and its
    kernel is shut down at exit (the kernel also exits when its parent process does)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="cbcv-worker", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _child_pids() -> list[int]:
    """This process's child processes (notebook kernels, sampler workers); Linux only (elsewhere
    none, and a kernel exits by itself once its parent has)."""
    me, pids = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            pids.append(int(stat.parent.name))
    return pids


def stop_children(timeout: float = 5.0) -> None:
    """Send SIGTERM to the child processes and wait up to ``timeout`` seconds for them, so that
    none outlives an interrupted command (or writes to its stderr after it)."""
    pids = _child_pids()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                done = pid
            if done:
                pids.remove(pid)
        time.sleep(0.05)
