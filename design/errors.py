"""Errors of the design layer: a parameter that is not allowed, and what to do instead.

design/ depends on numpy and scipy only, so its errors live here, at the
bottom: :class:`ConfigError` names the parameter (``field``), the value given
and the fix (``allowed``); the study loader (:mod:`escalade.scenarios.errors`)
wraps it with the file and the field's full path
(``scenarios/cart.yaml: designs[1].params.skeleton ...``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["EscaladeError", "ConfigError", "DesignError", "did_you_mean"]


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

    Attributes
    ----------
    field, value, allowed
        As given; :attr:`fix` is another name for ``allowed``.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field} = {_short(value)} is not allowed: {allowed}")

    @property
    def fix(self) -> str:
        """What is allowed, phrased as the fix."""
        return self.allowed


class DesignError(EscaladeError, ValueError):
    """A design cannot work with the data it is given (one line: what is missing and the fix).

    Raised, e.g., by a graded design's ``patient_scores`` when its weights name
    an adverse-event type or response category that the scenario lacks.
    """


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``.

    Examples
    --------
    >>> did_you_mean("skeletn", ["skeleton", "target"])
    " (did you mean 'skeleton'?)"
    """
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
