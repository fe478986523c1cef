"""Errors that say what is wrong and how to fix it.

Every error raised on bad input names the file (when there is one), the field
path (``designs[1].skeleton``), the offending value, and what is allowed.
Exceptions carry these as attributes so that callers (the CLI, tests) can use
them without parsing the message. :class:`EscaladeError`, :class:`ConfigError`
and :func:`did_you_mean` are defined in :mod:`escalade.design.errors` (design/
imports nothing above it) and re-exported here.
"""

from __future__ import annotations

from typing import Any

from escalade.design.errors import ConfigError, EscaladeError, _short, did_you_mean

__all__ = ["EscaladeError", "ConfigError", "StudyError", "did_you_mean"]


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
