"""mTPI-2 (Guo, Wang, Yang, Lin & Ji 2017, Contemp Clin Trials 58:23-33) as a decision table.

The unit interval is cut into the equivalence interval
:math:`EI = (p_T - \\epsilon_1, p_T + \\epsilon_2)` and, on each side,
intervals of the same length :math:`\\epsilon_1 + \\epsilon_2` (the end ones
cut at 0 and 1). With ``y`` DLTs in ``n`` patients at the current dose and a
Beta(:math:`\\alpha + y`, :math:`\\beta + n - y`) posterior, each interval's
unit probability mass (UPM) is its posterior probability divided by its
length; the interval of largest UPM decides: below EI escalate, EI stay, above
EI de-escalate (ties: escalate before stay before de-escalate, as the R
package ``escalation``'s ``get_mtpi2``, whose interval construction this
follows: https://rdrr.io/github/brockk/escalation/src/R/mtpi2_selector.R).
Elimination (``DU``): :math:`\\Pr(p > p_T \\mid y, n) > \\xi` (``cutoff_eli``)
with at least ``elim_min_n`` patients (3; ``escalation`` uses 2, with which
the table equals escalation 0.2.3's decisions and exclusions entry for entry,
validation/reference/mtpi2/). Final selection by isotonic regression as
``BOIN::select.mtd``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import ClassVar

from scipy import stats

from escalade.design.base import DesignEntry
from escalade.design.config import check_positive
from escalade.design.decision_table import (D, DecisionTable, E, IntervalConfig, S, TableDesign, TableExplanation,
                                            mark_elimination)
from escalade.design.rules import Rule

__all__ = ["Mtpi2Config", "Mtpi2Design", "mtpi2_intervals", "mtpi2_table", "ENTRY"]


def mtpi2_intervals(target: float, epsilon1: float, epsilon2: float
                    ) -> tuple[list[tuple[float, float]], tuple[float, float], list[tuple[float, float]]]:
    """(intervals below EI, EI, intervals above EI), as ``escalation``'s ``mtpi2_selector`` builds them."""
    delta = epsilon1 + epsilon2
    lo, hi = max(target - epsilon1, 0.0), min(target + epsilon2, 1.0)
    below = []
    for k in range(int(math.floor(lo / delta + 1e-10)) + 1):  # R's seq(lo, 0, by = -delta)
        u = lo - k * delta
        lower = max(u - delta, 0.0)
        if u - lower != 0:
            below.append((lower, u))
    above = []
    for k in range(int(math.floor((1.0 - hi) / delta + 1e-10)) + 1):  # seq(hi, 1, by = delta)
        low = hi + k * delta
        upper = min(low + delta, 1.0)
        if upper - low != 0:
            above.append((low, upper))
    return below, (lo, hi), above


@functools.cache
def mtpi2_table(target: float, n_max: int, epsilon1: float = 0.05, epsilon2: float = 0.05,
                cutoff_eli: float = 0.95, alpha: float = 1.0, beta: float = 1.0, elim_min_n: int = 3
                ) -> DecisionTable:
    """mTPI-2 decision table for ``n = 1 .. n_max`` (largest UPM; ties E, then S, then D)."""
    below, ei, above = mtpi2_intervals(target, epsilon1, epsilon2)
    rows: dict[int, list[str]] = {}

    def upm(ivs: list[tuple[float, float]], a: float, b: float) -> float:
        if not ivs:
            return -math.inf
        return max((stats.beta.cdf(u, a, b) - stats.beta.cdf(lo, a, b)) / (u - lo) for lo, u in ivs)

    for n in range(1, n_max + 1):
        row = []
        for y in range(n + 1):
            a, b = alpha + y, beta + n - y
            u_e, u_s, u_d = upm(below, a, b), upm([ei], a, b), upm(above, a, b)
            best = max(u_e, u_s, u_d)
            row.append(E if u_e == best else (S if u_s == best else D))
        rows[n] = row
    return DecisionTable.from_rows(mark_elimination(rows, target, cutoff_eli, elim_min_n, (alpha, beta)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Mtpi2Config(IntervalConfig):
    """mTPI-2 parameters, with the names of Guo et al. (2017) and of ``escalation::get_mtpi2``.

    Attributes
    ----------
    epsilon1, epsilon2
        The equivalence interval is ``(target - epsilon1, target + epsilon2)``; 0.05 each.
    alpha, beta
        Beta prior of the DLT probability at a dose (Beta(1, 1)), for the UPMs and the elimination rule.
    """

    epsilon1: float = 0.05
    epsilon2: float = 0.05
    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        self.check_interval()
        self.check_band("epsilon1", "epsilon2", "equivalence interval")
        check_positive("alpha", self.alpha)
        check_positive("beta", self.beta)


@dataclass(frozen=True, slots=True)
class Mtpi2Design(TableDesign):
    """mTPI-2 (Guo et al. 2017): its decision table (:func:`mtpi2_table`) drives a
    :class:`~escalade.design.decision_table.TableDesign`."""

    config: Mtpi2Config
    kind: ClassVar[str] = "mtpi2"
    label: ClassVar[str] = "mTPI-2 (Guo et al. 2017)"
    table: DecisionTable = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._setup()

    def build_table(self) -> DecisionTable:
        c = self.config
        return mtpi2_table(c.target, max(c.max_n, 3), c.epsilon1, c.epsilon2, c.cutoff_eli, c.alpha, c.beta,
                           c.elim_min_n)


ENTRY = DesignEntry(
    kind="mtpi2", name="Modified toxicity probability interval-2 (mTPI-2) design", config=Mtpi2Config,
    design=Mtpi2Design, explanation=TableExplanation, methods="escalade.reports.methods_tables:mtpi2_methods",
    citation="Guo W, Wang SJ, Yang S, Lynn H, Ji Y (2017). A Bayesian interval dose-finding design addressing "
             "Ockham's razor: mTPI-2. Contemp Clin Trials 58:23-33.",
    aliases=("mtpi-2",))
