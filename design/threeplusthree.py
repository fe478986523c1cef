"""The 3+3 design, with and without de-escalation.

Storer (1989), Biometrics 45:925-937; de-escalation as in Korn, Midthune,
Chen, Rubinstein, Christian & Simon (1994), Stat Med 13:1799-1806.

Cohorts of three at the current dose ``d`` with ``y`` DLTs in ``n`` patients:

* ``n = 3``: ``y = 0`` escalate (at the top dose: stop, MTD = top);
  ``y = 1`` treat three more at ``d``; ``y >= 2`` dose ``d`` is too toxic.
* ``n = 6``: ``y <= 1`` escalate (at the top dose, or when ``d + 1`` was
  found too toxic: stop, MTD = ``d``); ``y >= 2`` dose ``d`` is too toxic.
* ``d`` too toxic: without de-escalation stop with MTD = ``d - 1`` (none at
  the lowest dose). With de-escalation (Korn et al.) the MTD must have six
  patients: if ``d - 1`` has only three, treat three more there and apply the
  rules; if it already has six, stop with MTD = ``d - 1``.

The MTD is therefore the highest dose with at most one DLT in six patients
(de-escalation) or the dose below the first one with two or more DLTs (none).

``six_at_top`` (off by default): 0/3 at the top dose does not end the trial;
three more patients are treated there, and the top dose is declared the MTD
only with at most one DLT in six (as the usual protocol wording "the MTD is
the highest dose at which at most one of six patients has a DLT" requires;
Le Tourneau, Lee & Siu (2009), J Natl Cancer Inst 101:708-720, describe the
MTD of the 3+3 as a dose with six patients). With two or more DLTs in those
six the top dose is too toxic and the ordinary rules above apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from escalade.design.base import NO_DOSE, ConfigDesign, Decisions, DesignEntry, ExplanationMixin, IntArray, States, StopReason
from escalade.design.config import check_fraction, check_int, check_start_dose
from escalade.design.rules import Rule, RuleContext, SharedRules, apply_rules, select_with_rules, shared_rules
from escalade.design.rules import state_fields as rules_state_fields

__all__ = ["ENTRY", "ThreePlusThreeConfig", "ThreePlusThreeDesign", "ThreePlusThreeExplanation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreePlusThreeConfig(SharedRules):
    """3+3 parameters.

    Attributes
    ----------
    n_doses, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    allow_deescalation
        Korn et al. (1994)'s variant: after two or more DLTs, de-escalate to the
        dose below unless it already has six patients; an MTD needs six patients.
    max_n
        Maximum sample size; defaults to six patients per dose (never binding).
    target
        Used only by the shared rules that need one (filled from the study file).
    six_at_top
        Treat six patients at the top dose before declaring it the MTD: 0/3 there
        expands to six instead of ending the trial (default False: 0/3 at the top
        dose ends the trial with the top dose as MTD, as Storer and
        ``escalation::get_three_plus_three``).

    The shared trial rules (:class:`~escalade.design.rules.SharedRules`) are
    available; the all-DLT guardrail, on by default, never binds (3+3 never
    escalates after two or more DLTs).
    """

    n_doses: int
    start_dose: int = 0
    allow_deescalation: bool = False
    max_n: int | None = None
    target: float | None = None
    six_at_top: bool = False

    def __post_init__(self) -> None:
        check_int("n_doses", self.n_doses, low=1)
        if not isinstance(self.six_at_top, bool):
            from escalade.design.errors import ConfigError
            raise ConfigError("six_at_top", self.six_at_top, "must be true or false")
        check_start_dose(self.start_dose, self.n_doses)
        if self.max_n is None:
            object.__setattr__(self, "max_n", 6 * self.n_doses)
        check_int("max_n", self.max_n, low=3)
        if self.target is not None:
            check_fraction("target", self.target)
        self.check_rules()


@dataclass(frozen=True, slots=True)
class ThreePlusThreeDesign(ConfigDesign):
    """3+3 as a pure function of the counts at the current dose."""

    config: ThreePlusThreeConfig
    kind: ClassVar[str] = "3+3"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", shared_rules(self.config, self.config.target))

    @property
    def state_fields(self) -> str:
        return rules_state_fields(self.rules)

    def start(self) -> tuple[int, int]:
        return self.config.start_dose, 3

    def decide(self, states: States) -> Decisions:
        d = states.current
        top = self.n_doses - 1
        n = states.at_current(states.n)
        y = states.at_current(states.tox)
        above = np.take_along_axis(states.n, np.minimum(d + 1, top)[:, None], axis=1)[:, 0]
        above_tried = (d < top) & (above > 0)
        below_n = np.take_along_axis(states.n, np.maximum(d - 1, 0)[:, None], axis=1)[:, 0]

        toxic = y >= 2
        expand = (n == 3) & (y == 1)
        incomplete = (n % 3 != 0) | (n == 0)
        ok = ~toxic & ~expand & ~incomplete  # 0/3 or <=1/6
        if self.config.six_at_top:  # 0/3 at the top dose: three more there before it can be the MTD
            top_expand = ok & (d == top) & (n < 6)
            expand = expand | top_expand
            ok = ok & ~top_expand
        if self.config.allow_deescalation:
            # Korn et al.: an MTD reached by de-escalation needs six patients; 0/3 at the
            # top dose ends the trial at once (as escalation::get_three_plus_three)
            ok_done = ok & ((d == top) | (above_tried & (n >= 6)))
            ok_expand = ok & above_tried & (n < 6)
            deesc = toxic & (d > 0) & (below_n < 6)
        else:
            ok_done = ok & ((d == top) | above_tried)
            ok_expand = np.zeros_like(ok)
            deesc = np.zeros_like(ok)
        escalate = ok & ~ok_done & ~ok_expand
        nxt = np.where(escalate, d + 1, np.where(deesc, d - 1, d))
        out = Decisions.go(nxt, 3)
        out = out.with_stop(toxic & (d == 0), StopReason.ALL_TOXIC)
        out = out.with_stop(ok_done | (toxic & ~deesc), StopReason.RULE_COMPLETE)
        return apply_rules(self.rules, RuleContext(states, out.dose, self.config.target), out)

    def explain(self, states: States, **options: object) -> "ThreePlusThreeExplanation":
        """The counts at the current dose of the first state, and the rule they meet."""
        d = int(states.current[0])
        n, y = int(states.n[0, d]), int(states.tox[0, d])
        return ThreePlusThreeExplanation(current_dose=d + 1, n_at_current=n, dlt_at_current=y,
                                         n=tuple(int(v) for v in states.n[0]),
                                         dlt=tuple(int(v) for v in states.tox[0]),
                                         allow_deescalation=bool(self.config.allow_deescalation),
                                         six_at_top=bool(self.config.six_at_top))

    def select(self, states: States) -> IntArray:
        """MTD of the final state: ``d`` if it passed, else ``d - 1`` (none below dose 1)."""
        d = states.current
        y = states.at_current(states.tox)
        n = states.at_current(states.n)
        passed = (y <= 1) & ~((n == 3) & (y == 1))
        sel = np.where(passed, d, d - 1)
        if self.config.six_at_top:  # the top dose is the MTD only with six patients
            top = self.n_doses - 1
            sel = np.where(passed & (d == top) & (n < 6), d - 1, sel)
        if self.config.allow_deescalation:
            # the dose below must itself have six patients with at most one DLT
            below = np.maximum(sel, 0)
            nb = np.take_along_axis(states.n, below[:, None], axis=1)[:, 0]
            yb = np.take_along_axis(states.tox, below[:, None], axis=1)[:, 0]
            sel = np.where((sel >= 0) & ~passed & ((nb < 6) | (yb > 1)), NO_DOSE, sel)
        sel = np.where(sel < 0, NO_DOSE, sel).astype(np.int64)
        return select_with_rules(self.rules, RuleContext(states, sel, self.config.target))


@dataclass(frozen=True, slots=True)
class ThreePlusThreeExplanation(ExplanationMixin):
    """What a 3+3 decision rests on: the DLTs among the patients at the current dose (1-based)."""

    current_dose: int
    n_at_current: int
    dlt_at_current: int
    n: tuple[int, ...]
    dlt: tuple[int, ...]
    allow_deescalation: bool
    six_at_top: bool = False

    @property
    def rule(self) -> str:
        text = ("3+3: 0/3 DLTs escalate; 1/3 expand to 6 at the same dose; <= 1/6 escalate; "
                ">= 2 DLTs: the MTD is the dose below")
        text += " (with de-escalation until six patients confirm it)" if self.allow_deescalation else ""
        return text + ("; the top dose needs six patients" if self.six_at_top else "")

    def table(self) -> dict[str, list]:
        return {"n": list(self.n), "dlt": list(self.dlt)}

    def details(self) -> dict[str, object]:
        return {"rule": self.rule, "current_dose": self.current_dose, "n_at_current": self.n_at_current,
                "dlt_at_current": self.dlt_at_current}


ENTRY = DesignEntry(
    kind="3+3", name="3+3 design", config=ThreePlusThreeConfig, design=ThreePlusThreeDesign,
    explanation=ThreePlusThreeExplanation, methods="escalade.reports.methods_threeplusthree:threeplusthree_methods",
    citation="Storer BE (1989). Design and analysis of phase I clinical trials. Biometrics 45:925-937.",
    aliases=("3plus3", "three_plus_three", "threeplusthree"))
