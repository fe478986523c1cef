"""Errors that say what is wrong and how to fix it.

Every error raised on bad input names the file (when there is one), the field
path (``designs[1].skeleton``), the offending value, and what is allowed.
Exceptions carry these as attributes so that callers (the CLI, tests) can use
them without parsing the message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["EscaladeError", "ConfigError", "StudyError", "did_you_mean"]


class EscaladeError(Exception):
    """Base class of every error escalade raises on purpose."""


class ConfigError(EscaladeError, ValueError):
    """A configuration value is not allowed.

    Parameters
    ----------
    field
        Name (or dotted path) of the offending field, e.g. ``"target"``.
    value
        The value that was given.
    allowed
        What is allowed, phrased as a fix, e.g. ``"a number in (0, 1)"``.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field} = {_short(value)} is not allowed: {allowed}")


class StudyError(EscaladeError, ValueError):
    """An input file is malformed; the message names file, field, value and fix."""

    def __init__(self, file: str | None, field: str, value: Any, allowed: str) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.allowed = allowed
        where = f"{file}: " if file else ""
        shown = "" if value is _MISSING else f" = {_short(value)}"
        super().__init__(f"{where}{field}{shown}: {allowed}")

    @classmethod
    def from_config(cls, file: str | None, prefix: str, err: ConfigError) -> "StudyError":
        """Re-raise a :class:`ConfigError` with the file and the field's full path."""
        field = f"{prefix}.{err.field}" if prefix else err.field
        return cls(file, field, err.value, err.allowed)


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "<missing>"


_MISSING: Any = _Missing()
StudyError.MISSING = _MISSING  # type: ignore[attr-defined]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
