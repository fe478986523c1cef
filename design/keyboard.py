"""Keyboard design (Yan, Mandrekar & Yuan 2017, Clin Cancer Res 23:3994-4003) as a decision table.

The "target key" is :math:`(p_T - \\delta_L, p_T + \\delta_R)` (the package's
``marginL``/``marginR``, 0.05 each: a key width of 0.1); keys of the same width
are laid side by side down to 0 and up to 1, the two end keys cut at 0 and 1.
With ``y`` DLTs in ``n`` patients at the current dose the posterior is
Beta(1 + y, 1 + n - y); the "strongest key" is the one with the largest
posterior probability, the two end keys' probabilities scaled up by
(key width)/(their width). Strongest key left of the target key: escalate;
the target key: stay; right of it: de-escalate; among equally strong keys the
highest wins. Elimination (``DU``): :math:`\\Pr(p > p_T \\mid y, n) >`
``cutoff_eli`` with at least 3 patients. This is the table of
``Keyboard::get.boundary.kb`` (rule as documented and implemented in the
package, https://rdrr.io/cran/Keyboard/src/R/get.boundary.kb.R), equal entry
for entry to Keyboard 0.1.3's (validation/reference/keyboard/). Where we
differ: the package's table writes ``DU`` from n = 1 (2 DLTs of 2 at target
0.3), while its simulator ``get.oc.kb`` and its documentation eliminate from
3 patients; escalade follows the simulator (``elim_min_n = 3``; 1 gives the
package's table). Final selection by isotonic regression as ``select.mtd.kb``
(= ``BOIN::select.mtd``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import stats

from escalade.design.base import DesignEntry
from escalade.design.decision_table import (D, DecisionTable, E, IntervalConfig, S, TableDesign, TableExplanation,
                                            mark_elimination)
from escalade.design.rules import Rule

__all__ = ["KeyboardConfig", "KeyboardDesign", "keyboard_keys", "keyboard_table", "ENTRY"]


def keyboard_keys(target: float, margin_l: float, margin_r: float) -> tuple[np.ndarray, int]:
    """Cut points of the keys and the index of the target key (as ``get.boundary.kb``'s ``getkey``).

    Keys of width ``(target + margin_r) - (target - margin_l)`` from the target
    key outwards, the outermost cut at 0 and 1.
    """
    a1, a2 = target - margin_l, target + margin_r
    delta = a2 - a1
    left, i = [], 0
    while True:
        i += 1
        c = a1 - i * delta
        left.insert(0, max(c, 0.0))
        if c <= 0:
            break
    right, i = [], 0
    while True:
        i += 1
        c = a2 + i * delta
        right.append(min(c, 1.0))
        if c >= 1:
            break
    cuts = np.array(left + [a1, a2] + right)
    return cuts, len(left)


@functools.cache
def keyboard_table(target: float, n_max: int, margin_l: float = 0.05, margin_r: float = 0.05,
                   cutoff_eli: float = 0.95, elim_min_n: int = 3) -> DecisionTable:
    """Keyboard decision table for ``n = 1 .. n_max`` (``Keyboard::get.boundary.kb``'s rule).

    Each key's posterior probability under Beta(1 + y, 1 + n - y), the end keys
    times (key width)/(their width); the highest key of maximal score is the
    strongest; ``DU`` by :func:`~escalade.design.decision_table.mark_elimination`
    (``n >= elim_min_n``).
    """
    cuts, tk = keyboard_keys(target, margin_l, margin_r)
    nk = len(cuts) - 1
    comp = np.ones(nk)
    comp[0] = (margin_l + margin_r) / (cuts[1] - cuts[0])
    comp[-1] = (margin_l + margin_r) / (cuts[-1] - cuts[-2])
    rows: dict[int, list[str]] = {}
    for n in range(1, n_max + 1):
        ys = np.arange(n + 1)[:, None]
        cdf = stats.beta.cdf(cuts[None, :], ys + 1.0, n - ys + 1.0)
        score = (cdf[:, 1:] - cdf[:, :-1]) * comp[None, :]
        top = score.max(axis=1, keepdims=True)
        high = nk - 1 - np.argmax((score == top)[:, ::-1], axis=1)  # the highest key of maximal score
        rows[n] = [E if h < tk else (S if h == tk else D) for h in high]
    return DecisionTable.from_rows(mark_elimination(rows, target, cutoff_eli, elim_min_n))


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyboardConfig(IntervalConfig):
    """Keyboard parameters, with the ``Keyboard`` package's defaults.

    Attributes
    ----------
    margin_l, margin_r
        The target key is ``(target - margin_l, target + margin_r)`` (``marginL``, ``marginR``; 0.05 each, a
        key width of 0.1); every other key has the same width.
    """

    margin_l: float = 0.05
    margin_r: float = 0.05

    def __post_init__(self) -> None:
        self.check_interval()
        self.check_band("margin_l", "margin_r", "target key")


@dataclass(frozen=True, slots=True)
class KeyboardDesign(TableDesign):
    """Keyboard (Yan et al. 2017): its decision table (:func:`keyboard_table`) drives a
    :class:`~escalade.design.decision_table.TableDesign`."""

    config: KeyboardConfig
    kind: ClassVar[str] = "keyboard"
    label: ClassVar[str] = "Keyboard (Yan, Mandrekar & Yuan 2017)"
    table: DecisionTable = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._setup()

    def build_table(self) -> DecisionTable:
        c = self.config
        return keyboard_table(c.target, max(c.max_n, 3), c.margin_l, c.margin_r, c.cutoff_eli, c.elim_min_n)


ENTRY = DesignEntry(
    kind="keyboard", name="Keyboard design", config=KeyboardConfig, design=KeyboardDesign,
    explanation=TableExplanation, methods="escalade.reports.methods_tables:keyboard_methods",
    citation="Yan F, Mandrekar SJ, Yuan Y (2017). Keyboard: a novel Bayesian toxicity probability interval design "
             "for phase I clinical trials. Clin Cancer Res 23:3994-4003.")
