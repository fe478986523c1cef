"""Dose-finding rules: pure functions of the trial's per-dose counts.

Every design is a frozen config plus a frozen design object with
``start()``, ``decide(states)`` and ``select(states)`` (see
:mod:`escalade.design.base`). :mod:`escalade.design.registry` maps the names
used in study files to them.
"""

from escalade._checkout import refuse_bare_import as _refuse_bare_import

_refuse_bare_import(__name__)


from escalade.design.base import NO_DOSE, Decisions, Design, States, StopReason

__all__ = ["NO_DOSE", "Decisions", "Design", "States", "StopReason"]
