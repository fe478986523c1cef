"""i3+3 (Liu, Wang & Ji 2020, J Biopharm Stat 30(2):294-304; arXiv:1901.01303) as a decision table.

With ``y`` DLTs in ``n`` patients at the current dose and the equivalence
interval :math:`EI = [p_T - \\epsilon_1, p_T + \\epsilon_2]`:

* :math:`y/n` below EI: escalate (E);
* :math:`y/n` in EI: stay (S);
* :math:`y/n` above EI: stay if :math:`(y - 1)/n` is below EI (one DLT fewer
  would have escalated), else de-escalate (D).

Safety (as mTPI-2): ``DU`` where :math:`\\Pr(p > p_T \\mid y, n) >` ``cutoff_eli``
under Beta(1, 1) with at least ``elim_min_n`` patients; the dose and all higher
ones are eliminated and, with the lowest eliminated, the trial stops. Final
selection by isotonic regression as ``BOIN::select.mtd``. The table equals,
entry for entry for n >= 3, ``get_decision_i3plus3`` of the R package FIND
0.1.1 (Ji & Zhang, the authors' group; validation/reference/i3plus3/).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

from escalade.design.base import DesignEntry
from escalade.design.decision_table import (D, DecisionTable, E, IntervalConfig, S, TableDesign, TableExplanation,
                                            mark_elimination)
from escalade.design.rules import Rule

__all__ = ["I3plus3Config", "I3plus3Design", "i3plus3_table", "ENTRY"]

_TOL = 1e-9  # y/n on an interval end (up to rounding of target - epsilon1) counts as inside


@functools.cache
def i3plus3_table(target: float, n_max: int, epsilon1: float = 0.05, epsilon2: float = 0.05,
                  cutoff_eli: float = 0.95, elim_min_n: int = 3) -> DecisionTable:
    """i3+3 decision table for ``n = 1 .. n_max`` (Liu, Wang & Ji 2020, the rules above)."""
    lo, hi = target - epsilon1, target + epsilon2
    rows: dict[int, list[str]] = {}
    for n in range(1, n_max + 1):
        row = []
        for y in range(n + 1):
            r = y / n
            if r < lo - _TOL:
                row.append(E)
            elif r <= hi + _TOL:
                row.append(S)
            else:
                row.append(S if (y - 1) / n < lo - _TOL else D)
        rows[n] = row
    return DecisionTable.from_rows(mark_elimination(rows, target, cutoff_eli, elim_min_n))


@dataclass(frozen=True, slots=True, kw_only=True)
class I3plus3Config(IntervalConfig):
    """i3+3 parameters, with the names of Liu, Wang & Ji (2020).

    Attributes
    ----------
    epsilon1, epsilon2
        The equivalence interval is ``[target - epsilon1, target + epsilon2]``; 0.05 each.
    """

    epsilon1: float = 0.05
    epsilon2: float = 0.05

    def __post_init__(self) -> None:
        self.check_interval()
        self.check_band("epsilon1", "epsilon2", "equivalence interval")


@dataclass(frozen=True, slots=True)
class I3plus3Design(TableDesign):
    """i3+3 (Liu et al. 2020): its decision table (:func:`i3plus3_table`) drives a
    :class:`~escalade.design.decision_table.TableDesign`."""

    config: I3plus3Config
    kind: ClassVar[str] = "i3+3"
    label: ClassVar[str] = "i3+3 (Liu, Wang & Ji 2020)"
    table: DecisionTable = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._setup()

    def build_table(self) -> DecisionTable:
        c = self.config
        return i3plus3_table(c.target, max(c.max_n, 3), c.epsilon1, c.epsilon2, c.cutoff_eli, c.elim_min_n)


ENTRY = DesignEntry(
    kind="i3+3", name="i3+3 design", config=I3plus3Config, design=I3plus3Design, explanation=TableExplanation,
    methods="escalade.reports.methods_tables:i3plus3_methods",
    citation="Liu M, Wang SJ, Ji Y (2020). The i3+3 design for phase I clinical trials. J Biopharm Stat "
             "30(2):294-304.",
    aliases=("i3plus3",))
