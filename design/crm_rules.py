"""Trial rules around a dose-finding model: small, composable, order-free.

Each rule looks at a batch of trial states (and at what the model recommends)
and returns an :class:`Effect`: an upper limit on the next dose, a stop with a
reason, a hold on stopping, or (the start-up rule only) a dose that replaces
the model's. :func:`apply_rules` combines the effects with operations that do
not depend on the order of the rules:

1. the next dose is the model's recommendation, or the start-up dose where the
   start-up stage is active (at most one rule may replace the dose);
2. it is lowered to the smallest of all limits (``min`` commutes);
3. stops are collected per reason; where several reasons apply, the first in
   :data:`STOP_PRIORITY` is reported (safety before the rest);
4. a hold (minimum sample size) cancels every stop except a safety stop
   (:attr:`~escalade.design.base.StopReason.ALL_TOXIC`), which has its own
   minimum number of patients.

Hence any permutation of the same rules gives the same decisions (tested). This
differs on purpose from the R package ``escalation``, whose selectors are
chained and where, e.g., ``demand_n_at_dose`` placed after or before
``stop_when_too_toxic`` changes whether a safety stop can be delayed: here the
answer is fixed by point 4 rather than by the order of the chain.

Rules (all from the literature on the CRM, all optional):

* :class:`NoSkip` -- no skipping of doses when escalating (dfcrm ``crmsim``
  ``restrict = TRUE``: at most one level above the current dose; or at most
  one level above the highest dose tried so far).
* :class:`Coherence` -- no escalation right after a cohort whose DLT fraction
  reaches the target (dfcrm ``crmsim``), or after any DLT; Cheung (2005),
  Biometrika 92:863-873.
* :class:`StartUp` -- a fixed escalation sequence until the first DLT, then the
  model (the two-stage CRM; Cheung 2011, section 3.3; dfcrm ``crmsim`` with a
  vector ``x0``).
* :class:`SafetyStop` -- stop when :math:`\\Pr(p_1 > \\phi \\mid \\text{data})`
  exceeds a threshold after a minimum number of patients.
* :class:`StopAtN` -- stop when the number of patients treated at the
  recommended dose reaches ``n``.
* :class:`MinSampleSize` -- no stop (other than for safety) before ``n`` patients.

Examples
--------
The model recommends dose 4 (index 3) after a cohort with one DLT in three at
dose 2; no skipping allows at most dose 3, coherence keeps dose 2:

>>> import numpy as np
>>> from escalade.design.base import States
>>> s = States.from_counts([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, last_n=3, last_tox=1)
>>> ctx = RuleContext(s, recommended=np.array([3]), target=0.25)
>>> int(apply_rules([NoSkip()], ctx, 3).dose[0]), int(apply_rules([NoSkip(), Coherence()], ctx, 3).dose[0])
(2, 1)
>>> int(apply_rules([Coherence(), NoSkip()], ctx, 3).dose[0])  # any order
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import numpy as np

from escalade.design.base import BoolArray, Decisions, FloatArray, IntArray, States, StopReason

__all__ = [
    "STOP_PRIORITY",
    "RuleContext",
    "Effect",
    "Rule",
    "NoSkip",
    "Coherence",
    "StartUp",
    "SafetyStop",
    "StopAtN",
    "MinSampleSize",
    "apply_rules",
]

#: Reported reason where several stop at once (first wins).
STOP_PRIORITY: tuple[StopReason, ...] = (
    StopReason.ALL_TOXIC,
    StopReason.NO_ACCEPTABLE,
    StopReason.N_AT_DOSE,
    StopReason.RULE_COMPLETE,
    StopReason.MAX_COHORTS,
    StopReason.MAX_SAMPLE_SIZE,
)


@dataclass(frozen=True, slots=True, eq=False)
class RuleContext:
    """What a rule may look at, for a batch of ``S`` states.

    Attributes
    ----------
    states
        The trial states.
    recommended
        ``(S,)`` the model's recommended dose on all data (0-based), before any rule.
    target
        Target DLT probability.
    prob_lowest_too_toxic
        ``(S,)`` :math:`\\Pr(p_1 > \\phi \\mid \\text{data})`, or None when the
        design did not compute it (no rule needs it).
    """

    states: States
    recommended: IntArray
    target: float
    prob_lowest_too_toxic: FloatArray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Effect:
    """What one rule asks for; None fields ask for nothing.

    Attributes
    ----------
    replace, dose
        Where ``replace`` holds, ``dose`` replaces the model's recommendation.
    cap
        ``(S,)`` highest dose allowed next.
    stop, reason
        Stop where ``stop`` holds, for ``reason``.
    hold
        ``(S,)`` no stop (other than :attr:`StopReason.ALL_TOXIC`) where True.
    """

    replace: BoolArray | None = None
    dose: IntArray | None = None
    cap: IntArray | None = None
    stop: BoolArray | None = None
    reason: StopReason = StopReason.CONTINUE
    hold: BoolArray | None = None


class Rule(Protocol):
    """A trial rule: a pure function of the batch context."""

    name: ClassVar[str]

    def effect(self, ctx: RuleContext) -> Effect: ...


def _highest_tried(states: States) -> IntArray:
    treated = states.n > 0
    top = states.n_doses - 1 - np.argmax(treated[:, ::-1], axis=1)
    return np.where(treated.any(axis=1), top, states.current).astype(np.int64)


@dataclass(frozen=True, slots=True)
class NoSkip:
    """No skipping of doses when escalating (de-escalation is not limited).

    ``relative_to="current"``: next dose :math:`\\le` current dose + 1, as dfcrm's
    ``crmsim(restrict = TRUE)``. ``relative_to="tried"``: next dose
    :math:`\\le` highest dose tried so far + 1 (tried doses may be skipped,
    untried ones never).
    """

    relative_to: Literal["current", "tried"] = "current"
    name: ClassVar[str] = "no_skip"

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        base = s.current if self.relative_to == "current" else np.maximum(_highest_tried(s), s.current)
        return Effect(cap=base + 1)


@dataclass(frozen=True, slots=True)
class Coherence:
    """No escalation right after a toxic cohort (coherence; Cheung 2005).

    ``when="fraction"``: the last cohort's DLT fraction is at least the target
    (dfcrm ``crmsim``: ``sum(y[last cohort]) / mcohort >= target``);
    ``when="any"``: the last cohort had a DLT. Then next dose :math:`\\le` current.
    """

    when: Literal["fraction", "any"] = "fraction"
    name: ClassVar[str] = "coherence"

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        ln = s.last_n
        if self.when == "fraction":
            toxic = (ln > 0) & (s.last_tox / np.maximum(ln, 1) >= ctx.target)
        else:
            toxic = s.last_tox > 0
        cap = np.where(toxic, s.current, np.iinfo(np.int64).max)
        return Effect(cap=cap)


@dataclass(frozen=True, slots=True)
class StartUp:
    """Fixed start-up sequence until the first DLT (two-stage CRM; Cheung 2011, sec. 3.3).

    While no DLT has been seen and fewer than ``len(doses)`` cohorts have been
    treated, cohort ``k`` (0-based, ``k = N // cohort_size`` with ``N``
    patients so far) gets ``doses[k]`` (0-based). The cohort with the first DLT
    ends the stage; the model decides from then on (and also when the
    sequence is exhausted without a DLT). ``doses[0]`` is the first cohort's dose.
    """

    doses: tuple[int, ...]
    cohort_size: int
    name: ClassVar[str] = "start_up"

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        seq = np.asarray(self.doses, np.int64)
        k = s.total_n // self.cohort_size
        active = (s.tox.sum(axis=1) == 0) & (k < seq.size)
        dose = seq[np.minimum(k, seq.size - 1)]
        return Effect(replace=active, dose=dose)


@dataclass(frozen=True, slots=True)
class SafetyStop:
    """Stop (no dose) when :math:`\\Pr(p_1 > \\phi \\mid \\text{data}) >` ``threshold``.

    Applied once at least ``min_n`` patients have been treated in all; the
    probability is the design's posterior (for the CRM, the exact posterior of
    the model parameter, not dfcrm's normal approximation).
    """

    threshold: float
    min_n: int = 3
    name: ClassVar[str] = "safety_stop"

    def effect(self, ctx: RuleContext) -> Effect:
        if ctx.prob_lowest_too_toxic is None:
            raise ValueError("SafetyStop needs prob_lowest_too_toxic in the rule context")
        stop = (ctx.states.total_n >= self.min_n) & (ctx.prob_lowest_too_toxic > self.threshold)
        return Effect(stop=stop, reason=StopReason.ALL_TOXIC)


@dataclass(frozen=True, slots=True)
class StopAtN:
    """Stop when ``n`` patients have been treated at the recommended dose."""

    n: int
    name: ClassVar[str] = "stop_at_n"

    def effect(self, ctx: RuleContext) -> Effect:
        at = np.take_along_axis(ctx.states.n, ctx.recommended[:, None], axis=1)[:, 0]
        return Effect(stop=at >= self.n, reason=StopReason.N_AT_DOSE)


@dataclass(frozen=True, slots=True)
class MinSampleSize:
    """No stop other than a safety stop before ``n`` patients in all."""

    n: int
    name: ClassVar[str] = "min_sample_size"

    def effect(self, ctx: RuleContext) -> Effect:
        return Effect(hold=ctx.states.total_n < self.n)


def apply_rules(rules: Sequence[Rule], ctx: RuleContext, cohort_size: int | IntArray) -> Decisions:
    """Decisions for the batch: the model's dose under every rule (order-free; see module doc).

    Raises
    ------
    ValueError
        When more than one rule replaces the model's dose.
    """
    s = ctx.states
    effects = [r.effect(ctx) for r in rules]
    dose = np.asarray(ctx.recommended, np.int64).copy()
    replacing = [e for e in effects if e.replace is not None]
    if len(replacing) > 1:
        raise ValueError(f"only one rule may replace the model's dose; got {[r.name for r in rules]}")
    for e in replacing:
        dose = np.where(e.replace, e.dose, dose)
    for e in effects:
        if e.cap is not None:
            dose = np.minimum(dose, e.cap)
    dose = np.clip(dose, 0, s.n_doses - 1)
    out = Decisions.go(dose, cohort_size)
    hold = np.zeros(s.n_states, bool)
    for e in effects:
        if e.hold is not None:
            hold |= e.hold
    for reason in STOP_PRIORITY:
        mask = np.zeros(s.n_states, bool)
        for e in effects:
            if e.stop is not None and e.reason == reason:
                mask |= e.stop
        if reason != StopReason.ALL_TOXIC:
            mask &= ~hold
        if mask.any():
            out = out.with_stop(mask, reason)
    return out
