"""Errors of the reports layer: one line naming the file and the fix.

The CLI prints them as ``escalade: error: <message>`` (exit status 2), never
as a traceback. Each carries the offending ``path`` as an attribute.
"""

from __future__ import annotations

from pathlib import Path

from escalade.scenarios.errors import EscaladeError

__all__ = ["ReportError", "RunDirNotFoundError", "RunFileMissingError", "RunFileCorruptError",
           "RunInProgressError", "ReportDependencyError"]


class ReportError(EscaladeError):
    """Base class of the errors raised while reading a run or writing a report.

    Parameters
    ----------
    path
        The file or directory the problem is about.
    message
        What is wrong and how to fix it (one line).
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


class RunDirNotFoundError(ReportError):
    """The run directory does not exist (or is not a directory)."""


class RunFileMissingError(ReportError):
    """A file every finished run directory holds is missing."""


class RunFileCorruptError(ReportError):
    """A run file exists but cannot be parsed, or lacks a required field."""


class RunInProgressError(ReportError):
    """An ``escalade run`` holds the directory's lock: its files may be replaced while they are read."""


class ReportDependencyError(ReportError):
    """An optional package needed for an output format is not installed."""
