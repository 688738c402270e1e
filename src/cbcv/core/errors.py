"""User-facing errors.

Every error a user can cause (a bad file, a missing column, a wrong config field) is raised as a
:class:`CbcvError` whose message is one line naming the file and, where there is one, the row and
column. The CLI prints that line to stderr and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class CbcvError(Exception):
    """An error caused by the user's input, with a one-line message that says what to fix."""


class DataError(CbcvError):
    """A transaction or subscription source cannot be read or lacks a required column."""


class ConfigError(CbcvError):
    """A company configuration file is missing, unreadable or invalid."""


class ReportError(CbcvError):
    """A report notebook failed; the executed copy with the error is kept."""
