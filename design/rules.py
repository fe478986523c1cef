"""Trial rules shared by every design: small, composable, order-free.

A design (3+3, BOIN, CRM, TITE-CRM, TITE-BOIN, EffTox, BOIN12, ...) first makes
its own decision on a batch of trial states: a next dose and cohort size, or a
stop with a reason. The trial rules of this module then look at the same
states (and at the design's own choice) and each return an :class:`Effect`: an
upper limit on the next dose, a stop with a reason, a hold on stopping, or (the
start-up and titration rules only) a dose that replaces the design's.
:func:`apply_rules` combines the effects with operations that do not depend on
the order of the rules:

1. the next dose is the design's, or the start-up/titration dose where such a
   stage is active (at most one rule may replace the dose, and with it the
   cohort size);
2. it is lowered to the smallest of all limits (``min`` commutes);
3. stops are collected per reason; where several reasons apply, the first in
   :data:`STOP_PRIORITY` is reported (safety before the rest). A stop marked
   ``when_staying`` applies only where the resulting next dose is the current
   dose (BOIN's ``n.earlystop``);
4. a hold (minimum sample size, titration) cancels every stop of a rule except
   a safety stop (:attr:`~escalade.design.base.StopReason.ALL_TOXIC`), which
   has its own minimum number of patients. A design's own stop (3+3 rule
   complete, EffTox "no acceptable dose", ...) is never cancelled: where the
   design stops it gives no dose to continue at.

Hence any permutation of the same rules gives the same decisions (tested for
every rule over all orders). This differs on purpose from the R package
``escalation``, whose selectors are chained and where, e.g.,
``demand_n_at_dose`` placed after or before ``stop_when_too_toxic`` changes
whether a safety stop can be delayed: here point 4 fixes the answer.

Every rule is a pure function of the batched :class:`~escalade.design.base.States`
(and of the design's decision on them), so memoisation, exact enumeration and
dose paths stay valid. Rules that read the last cohort (:class:`Coherence`,
:class:`DltGuard`) make a design key its states on ``last_n``/``last_tox`` too
(:func:`state_fields`).

Rules
-----
* :class:`NoSkip` -- no skipping of doses when escalating (dfcrm ``crmsim``
  ``restrict = TRUE``).
* :class:`Coherence` -- no escalation right after a cohort whose DLT fraction
  reaches the target, or after any DLT; Cheung (2005), Biometrika 92:863-873.
* :class:`DltGuard` -- no escalation right after a cohort in which every
  patient (or at least ``k``) had a DLT: the hard guardrail, on by default for
  every design.
* :class:`DeescalationGuard` -- no escalation while the current dose's observed
  DLT rate exceeds BOIN's de-escalation boundary :math:`\\lambda_d` (Liu & Yuan
  2015, JRSS C 64:507-523).
* :class:`OverdoseControl` -- a dose and every higher dose are excluded once
  :math:`\\Pr(p_d > \\phi \\mid y_d, n_d) > c` under a Beta prior (BOIN's
  elimination rule; with every dose excluded the trial stops).
* :class:`BetaSafetyStop` -- stop when :math:`\\Pr(p_1 > \\phi \\mid y_1, n_1) > c`
  under a Beta prior (BOIN's ``extrasafe``).
* :class:`SafetyStop` -- the same with the design's model posterior (CRM).
* :class:`StartUp` -- a fixed escalation sequence until the first DLT (the
  two-stage CRM; Cheung 2011, section 3.3).
* :class:`Titration` -- one patient per dose until the first DLT, then full
  cohorts (BOIN ``get.oc(titration = TRUE)``).
* :class:`StopAtN` -- stop when ``n`` patients have been treated at the dose
  the design recommends (or, BOIN's ``n.earlystop``, at the current dose
  when the rules keep it).
* :class:`MinSampleSize` -- no stop other than a safety stop before ``n`` patients.

Every design's config has the fields of :class:`SharedRules`, which switch the
generic rules on (:func:`shared_rules`); a design adds the rules that belong to
its published algorithm (BOIN's elimination, the CRM's start-up stage).

Backfill cohorts
----------------
:class:`Backfill` (the shared field ``backfill`` of :class:`SharedRules`, off by
default): while the escalation cohort is in follow-up, patients who arrive are
treated at a lower dose that has been cleared (BF-BOIN; Zhao, Yuan, Korn &
Freidlin (2024), Clin Cancer Res 30:673-679). Which doses are open is
:func:`backfill_open`, a pure function of the per-dose counts observed at the
patient's arrival; the decision after each escalation cohort uses every
patient whose outcome is known (escalation and backfill), and for BOIN-type
designs the paper's pooling rule resolves a conflict between the current dose
and a backfilled lower dose (:func:`backfill_pooled_move`). Backfill needs
calendar time, so a design with ``backfill`` runs in the calendar-time engine
(:func:`escalade.simulations.timed.run_timed_trials`); :func:`patient_slots`
is the number of patient slots its trials need.

Examples
--------
The design recommends dose 4 (index 3) after a cohort with one DLT in three at
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

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from scipy import stats

from escalade.design.base import NO_DOSE, BoolArray, Decisions, FloatArray, IntArray, States, StopReason
from escalade.design.config import check_fraction, check_int, check_positive

__all__ = [
    "STOP_PRIORITY",
    "RuleContext",
    "Effect",
    "Rule",
    "NoSkip",
    "Coherence",
    "DltGuard",
    "DeescalationGuard",
    "OverdoseControl",
    "BetaSafetyStop",
    "SafetyStop",
    "StartUp",
    "Titration",
    "StopAtN",
    "MinSampleSize",
    "apply_rules",
    "select_with_rules",
    "state_fields",
    "SharedRules",
    "shared_rules",
    "deescalation_boundary",
    "beta_exceeds",
    "describe_guardrails",
    "Backfill",
    "backfill_open",
    "backfill_pooled_move",
    "backfill_of",
    "patient_slots",
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

_NO_LIMIT = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True, eq=False)
class RuleContext:
    """What a rule may look at, for a batch of ``S`` states.

    Attributes
    ----------
    states
        The trial states.
    recommended
        ``(S,)`` the design's own next dose (0-based) before any rule;
        :data:`~escalade.design.base.NO_DOSE` where the design itself stops.
    target
        Target DLT probability :math:`\\phi` (None for a design without one; the
        rules that need it refuse to be built then).
    prob_lowest_too_toxic
        ``(S,)`` :math:`\\Pr(p_1 > \\phi \\mid \\text{data})` under the design's model,
        or None when the design did not compute it (only :class:`SafetyStop` needs it).
    """

    states: States
    recommended: IntArray
    target: float | None = None
    prob_lowest_too_toxic: FloatArray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Effect:
    """What one rule asks for; None fields ask for nothing.

    Attributes
    ----------
    replace, dose, size
        Where ``replace`` holds, ``dose`` replaces the design's next dose and
        ``size`` (when given) its cohort size.
    cap
        ``(S,)`` highest dose allowed next (below 0: no dose is allowed; the
        rule then also stops).
    stop, reason
        Stop where ``stop`` holds, for ``reason``.
    when_staying
        The stop applies only where the next dose (after every limit) is the
        current dose.
    hold
        ``(S,)`` no stop of a rule (other than :attr:`StopReason.ALL_TOXIC`) where True.
    """

    replace: BoolArray | None = None
    dose: IntArray | None = None
    size: IntArray | None = None
    cap: IntArray | None = None
    stop: BoolArray | None = None
    reason: StopReason = StopReason.CONTINUE
    when_staying: bool = False
    hold: BoolArray | None = None


class Rule(Protocol):
    """A trial rule: a pure function of the batch context.

    ``final`` is True for the safety rules that also apply to the final
    selection (:func:`select_with_rules`); ``reads_last_cohort`` is True when
    the rule looks at ``last_n``/``last_tox``.
    """

    name: ClassVar[str]
    final: ClassVar[bool]
    reads_last_cohort: ClassVar[bool]

    def effect(self, ctx: RuleContext) -> Effect: ...


def _highest_tried(states: States) -> IntArray:
    treated = states.n > 0
    top = states.n_doses - 1 - np.argmax(treated[:, ::-1], axis=1)
    return np.where(treated.any(axis=1), top, states.current).astype(np.int64)


def _need_target(ctx: RuleContext, rule: str) -> float:
    if ctx.target is None:
        raise ValueError(f"rule {rule} needs the design's target DLT rate; the design gave none")
    return float(ctx.target)


# --------------------------------------------------------------------------------------------
# Beta posterior tail probabilities, tabulated once per (target, threshold, prior)


@functools.cache
def _first_exceeding(target: float, threshold: float, a: float, b: float, n_max: int) -> IntArray:
    """Smallest ``y`` in ``1..n`` with :math:`\\Pr(p > \\phi)` under Beta(a + y, b + n - y) above
    ``threshold``, per ``n`` (``n + 1`` where none; index 0 unused). Monotone in ``y``."""
    out = np.arange(n_max + 1, dtype=np.int64) + 1
    for n in range(1, n_max + 1):
        ys = np.arange(1, n + 1)
        pr = stats.beta.sf(target, ys + a, n - ys + b)
        hit = np.nonzero(pr > threshold)[0]
        if hit.size:
            out[n] = ys[hit[0]]
    return out


def beta_exceeds(target: float, threshold: float, tox: Any, n: Any, prior: tuple[float, float] = (1.0, 1.0)
                 ) -> BoolArray:
    """:math:`\\Pr(p > \\phi \\mid y, n) >` ``threshold`` under a Beta(a, b) prior, elementwise.

    The posterior is Beta(:math:`a + y`, :math:`b + n - y`); a dose without a DLT
    never qualifies (as ``BOIN::get.boundary``, whose elimination boundaries
    start at one DLT). Computed by table look-up, so equal to BOIN's tables.

    >>> beta_exceeds(0.3, 0.95, [2, 3], [3, 3]).tolist()  # BOIN, target 0.3: 3/3 eliminates
    [False, True]
    """
    n = np.asarray(n, np.int64)
    tox = np.asarray(tox, np.int64)
    top = int(n.max(initial=0))
    if top > _TABLE_N:  # a live trial's long list at one dose: the probabilities of the given counts only
        a, b = float(prior[0]), float(prior[1])
        pr = stats.beta.sf(float(target), tox + a, np.maximum(n - tox, 0) + b)
        return (n > 0) & (tox >= 1) & (pr > threshold)
    size = 64
    while size < top:
        size *= 2
    table = _first_exceeding(float(target), float(threshold), float(prior[0]), float(prior[1]), size)
    return (n > 0) & (tox >= table[np.clip(n, 0, size)])


#: Largest number of patients at a dose covered by :func:`_first_exceeding`'s table, which costs O(n^2) to
#: build (every y for every n); larger counts (a live trial's data) are evaluated directly, from the same
#: tail probabilities, so the answers are the table's and reading a patients file stays linear in rows.
_TABLE_N = 256


def deescalation_boundary(target: float, p_tox: float | None = None) -> float:
    """BOIN's :math:`\\lambda_d` for target :math:`\\phi` and :math:`\\phi_2` = ``p_tox`` (default :math:`1.4\\phi`).

    .. math::

        \\lambda_d = \\frac{\\log\\frac{1-\\phi}{1-\\phi_2}}{\\log\\frac{\\phi_2(1-\\phi)}{\\phi(1-\\phi_2)}}

    Liu & Yuan (2015), JRSS C 64:507-523, eq. (2).

    >>> round(deescalation_boundary(0.3), 4)
    0.3585
    """
    phi = float(target)
    p2 = 1.4 * phi if p_tox is None else float(p_tox)
    return math.log((1 - phi) / (1 - p2)) / math.log(p2 * (1 - phi) / (phi * (1 - p2)))


# --------------------------------------------------------------------------------------------
# the rules


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
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        base = s.current if self.relative_to == "current" else np.maximum(_highest_tried(s), s.current)
        return Effect(cap=base + 1)


@dataclass(frozen=True, slots=True)
class Coherence:
    """No escalation right after a toxic cohort (coherence; Cheung 2005, Biometrika 92:863-873).

    ``when="fraction"``: the last cohort's DLT fraction is at least the target
    (dfcrm ``crmsim``: ``sum(y[last cohort]) / mcohort >= target``);
    ``when="any"``: the last cohort had a DLT. Then next dose :math:`\\le` current.
    """

    when: Literal["fraction", "any"] = "fraction"
    name: ClassVar[str] = "coherence"
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = True

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        ln = s.last_n
        if self.when == "fraction":
            target = _need_target(ctx, "coherence='fraction'")
            toxic = (ln > 0) & (s.last_tox / np.maximum(ln, 1) >= target)
        else:
            toxic = s.last_tox > 0
        return Effect(cap=np.where(toxic, s.current, _NO_LIMIT))


@dataclass(frozen=True, slots=True)
class DltGuard:
    """Never escalate right after a cohort in which every patient had a DLT (or at least ``k`` did).

    With ``k=None`` only an all-DLT cohort blocks escalation; with ``k`` a
    cohort with at least ``min(k, cohort size)`` DLTs does. Then next dose
    :math:`\\le` current. A model can recommend escalation after such a cohort
    when its prior or earlier data outweigh it (EffTox with a vague prior,
    BOIN after many clean patients at the dose); this guardrail forbids it
    whatever the model says. It is a special case of :class:`Coherence` with
    ``when="fraction"`` (an all-DLT fraction, 1, always reaches the target).
    """

    k: int | None = None
    name: ClassVar[str] = "no_escalation_after_dlts"
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = True

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        ln, lt = s.last_n, s.last_tox
        toxic = (ln > 0) & (lt >= ln)
        if self.k is not None:
            toxic |= (ln > 0) & (lt >= self.k)
        return Effect(cap=np.where(toxic, s.current, _NO_LIMIT))


@dataclass(frozen=True, slots=True)
class DeescalationGuard:
    """No escalation while the current dose's observed DLT rate exceeds ``lambda_d``.

    :math:`y_d / n_d > \\lambda_d` at the current dose :math:`d` (BOIN's
    de-escalation boundary, :func:`deescalation_boundary`): next dose
    :math:`\\le d`. BOIN and BOIN12 already de-escalate there; for model-based
    designs it keeps the model from escalating on data the interval designs
    call too toxic.
    """

    lambda_d: float
    name: ClassVar[str] = "no_escalation_above_boundary"
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        n, y = s.at_current(s.n), s.at_current(s.tox)
        above = (n > 0) & (y > self.lambda_d * n)
        return Effect(cap=np.where(above, s.current, _NO_LIMIT))


@dataclass(frozen=True, slots=True)
class OverdoseControl:
    """Exclude dose :math:`d` and every higher dose once :math:`\\Pr(p_d > \\phi \\mid y_d, n_d) > c`.

    Beta(a, b) prior (``prior``, default Beta(1, 1)), at least ``min_n``
    patients at :math:`d`, at least one DLT there (:func:`beta_exceeds`). This is
    BOIN's elimination rule (Liu & Yuan 2015; ``BOIN::get.oc``, ``cutoff.eli =
    0.95``). Next dose :math:`\\le` the highest dose not excluded; with the
    lowest dose excluded the trial stops (all doses too toxic), whatever the
    current dose. Also applies to the final selection (:func:`select_with_rules`).
    """

    threshold: float
    min_n: int = 3
    prior: tuple[float, float] = (1.0, 1.0)
    name: ClassVar[str] = "overdose_control"
    final: ClassVar[bool] = True
    reads_last_cohort: ClassVar[bool] = False

    def excluded(self, states: States, target: float) -> BoolArray:
        """``(S, D)``: dose excluded (it, or a lower dose, meets the rule)."""
        hit = (states.n >= self.min_n) & beta_exceeds(target, self.threshold, states.tox, states.n, self.prior)
        return np.logical_or.accumulate(hit, axis=1)

    def effect(self, ctx: RuleContext) -> Effect:
        ex = self.excluded(ctx.states, _need_target(ctx, "overdose_control"))
        cap = np.where(ex.any(axis=1), np.argmax(ex, axis=1) - 1, _NO_LIMIT)
        return Effect(cap=cap, stop=ex[:, 0], reason=StopReason.ALL_TOXIC)


@dataclass(frozen=True, slots=True)
class BetaSafetyStop:
    """Stop (no dose) when :math:`\\Pr(p_1 > \\phi \\mid y_1, n_1) > c` at the lowest dose.

    Beta(a, b) prior (default Beta(1, 1)), at least ``min_n`` patients at the
    lowest dose (:func:`beta_exceeds`). BOIN's ``extrasafe`` rule is this rule
    with :math:`c` = ``cutoff_eli - offset`` and ``at_lowest_only=True`` (as
    ``BOIN::get.oc``, it is checked only while the current dose is the lowest).
    """

    threshold: float
    min_n: int = 3
    prior: tuple[float, float] = (1.0, 1.0)
    at_lowest_only: bool = False
    name: ClassVar[str] = "lowest_dose_safety"
    final: ClassVar[bool] = True
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        target = _need_target(ctx, "lowest_dose_safety")
        n1, y1 = s.n[:, 0], s.tox[:, 0]
        stop = (n1 >= self.min_n) & beta_exceeds(target, self.threshold, y1, n1, self.prior)
        if self.at_lowest_only:
            stop &= s.current == 0
        return Effect(stop=stop, reason=StopReason.ALL_TOXIC)


@dataclass(frozen=True, slots=True)
class SafetyStop:
    """Stop (no dose) when the model's :math:`\\Pr(p_1 > \\phi \\mid \\text{data}) >` ``threshold``.

    Applied once at least ``min_n`` patients have been treated in all; the
    probability is the design's posterior (for the CRM, the exact posterior of
    the model parameter, not dfcrm's normal approximation).
    """

    threshold: float
    min_n: int = 3
    name: ClassVar[str] = "safety_stop"
    final: ClassVar[bool] = True
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        if ctx.prob_lowest_too_toxic is None:
            raise ValueError("SafetyStop needs prob_lowest_too_toxic in the rule context")
        stop = (ctx.states.total_n >= self.min_n) & (ctx.prob_lowest_too_toxic > self.threshold)
        return Effect(stop=stop, reason=StopReason.ALL_TOXIC)


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
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        seq = np.asarray(self.doses, np.int64)
        k = s.total_n // self.cohort_size
        active = (s.tox.sum(axis=1) == 0) & (k < seq.size)
        dose = seq[np.minimum(k, seq.size - 1)]
        return Effect(replace=active, dose=dose)


@dataclass(frozen=True, slots=True)
class Titration:
    """Accelerated titration (``BOIN::get.oc(titration = TRUE)``).

    While every dose has at most one patient and the current dose has one:
    without a DLT so far (and below the top dose) the next single patient goes
    one dose up; otherwise the current dose is filled to ``cohort_size``
    (``cohort_size - 1`` more patients). Stops of the other rules (other than
    for safety) are held meanwhile. The design starts with one patient at the
    lowest dose (its ``start()``).
    """

    cohort_size: int
    name: ClassVar[str] = "titration"
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        d = s.current
        in_titration = np.all(s.n <= 1, axis=1) & (s.at_current(s.n) == 1)
        up = in_titration & (s.tox.sum(axis=1) == 0) & (d < s.n_doses - 1)
        fill = in_titration & ~up
        return Effect(replace=up | fill, dose=np.where(up, d + 1, d),
                      size=np.where(up, 1, self.cohort_size - 1).astype(np.int64), hold=up | fill)


@dataclass(frozen=True, slots=True)
class StopAtN:
    """Stop when ``n`` patients have been treated at the next dose.

    ``at="recommended"``: at the dose the design recommends (before the rules;
    the CRM's ``stop_n_at_dose``). ``at="staying"``: at the current dose, where
    the next dose (after every rule) is the current one (BOIN's ``n.earlystop``:
    "stop when the number of patients at the current dose reaches it and the
    rule would stay").
    """

    n: int
    at: Literal["recommended", "staying"] = "recommended"
    name: ClassVar[str] = "stop_n_at_dose"
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        s = ctx.states
        if self.at == "staying":
            return Effect(stop=s.at_current(s.n) >= self.n, reason=StopReason.N_AT_DOSE, when_staying=True)
        rec = np.asarray(ctx.recommended, np.int64)
        at = np.take_along_axis(s.n, np.maximum(rec, 0)[:, None], axis=1)[:, 0]
        return Effect(stop=(rec != NO_DOSE) & (at >= self.n), reason=StopReason.N_AT_DOSE)


@dataclass(frozen=True, slots=True)
class MinSampleSize:
    """No stop other than a safety stop before ``n`` patients in all."""

    n: int
    name: ClassVar[str] = "min_sample_size"
    final: ClassVar[bool] = False
    reads_last_cohort: ClassVar[bool] = False

    def effect(self, ctx: RuleContext) -> Effect:
        return Effect(hold=ctx.states.total_n < self.n)


# --------------------------------------------------------------------------------------------
# composition


def apply_rules(rules: Sequence[Rule], ctx: RuleContext, base: Decisions | int | IntArray, *,
                hold: BoolArray | None = None) -> Decisions:
    """The design's decisions under every rule (order-free; see the module docstring).

    Parameters
    ----------
    rules
        The rules, in any order.
    ctx
        The batch; ``ctx.recommended`` is the design's own next dose.
    base
        The design's own :class:`~escalade.design.base.Decisions`, or just the
        cohort size when the design never stops by itself (the CRM): then the
        design's decision is ``ctx.recommended`` with that cohort size.
    hold
        ``(S,)`` an extra hold from the design (TITE-BOIN's accrual suspension:
        the trial waits rather than stops), combined like a rule's.

    Raises
    ------
    ValueError
        When more than one rule replaces the design's dose.
    """
    s = ctx.states
    if not isinstance(base, Decisions):
        base = Decisions.go(np.asarray(ctx.recommended, np.int64), base)
    effects = [r.effect(ctx) for r in rules]
    replacing = [(r, e) for r, e in zip(rules, effects) if e.replace is not None]
    if len(replacing) > 1:
        raise ValueError(f"only one rule may replace the design's dose; got {[r.name for r, _ in replacing]}")
    dose = np.where(base.stop, 0, base.dose).astype(np.int64)
    size = base.cohort_size.copy()
    for _, e in replacing:
        dose = np.where(e.replace, e.dose, dose)
        if e.size is not None:
            size = np.where(e.replace, e.size, size)
    for e in effects:
        if e.cap is not None:
            dose = np.minimum(dose, e.cap)
    dose = np.clip(dose, 0, s.n_doses - 1)
    held = np.zeros(s.n_states, bool) if hold is None else np.asarray(hold, bool).copy()
    for e in effects:
        if e.hold is not None:
            held |= e.hold
    staying = dose == s.current
    out = Decisions(dose, np.zeros(s.n_states, bool), np.full(s.n_states, StopReason.CONTINUE, np.int8),
                    np.asarray(size, np.int64))
    reasons = list(STOP_PRIORITY) + [r for r in StopReason if r not in STOP_PRIORITY and r != StopReason.CONTINUE]
    for reason in reasons:
        mask = np.zeros(s.n_states, bool)
        for e in effects:
            if e.stop is not None and e.reason == reason:
                mask |= (e.stop & staying) if e.when_staying else e.stop
        if reason != StopReason.ALL_TOXIC:
            mask &= ~held
        mask |= base.stop & (base.reason == reason)
        if mask.any():
            out = out.with_stop(mask, reason)
    return out


def select_with_rules(rules: Sequence[Rule], ctx: RuleContext) -> IntArray:
    """The final selection ``ctx.recommended`` under the safety rules (those with ``final``).

    Where a final rule stops for toxicity on the final data the selection is
    :data:`~escalade.design.base.NO_DOSE`; a selected dose above a final rule's
    limit (:class:`OverdoseControl`) is lowered to it.
    """
    sel = np.asarray(ctx.recommended, np.int64).copy()
    for r in rules:
        if not r.final:
            continue
        e = r.effect(ctx)
        if e.cap is not None:
            sel = np.where(sel > e.cap, e.cap, sel)
        if e.stop is not None and e.reason == StopReason.ALL_TOXIC:
            sel = np.where(e.stop, NO_DOSE, sel)
    return np.where(sel < 0, NO_DOSE, sel).astype(np.int64)


def state_fields(rules: Sequence[Rule], base: str = "counts") -> str:
    """``"all"`` when a rule reads the last cohort (exact enumeration may not merge
    states that differ there), else the design's own ``base``."""
    return "all" if any(r.reads_last_cohort for r in rules) else base


# --------------------------------------------------------------------------------------------
# the shared configuration fields


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedRules:
    """Trial-rule fields that every design's config has (same names, same meaning).

    A design may change a default (the CRM has ``no_skip="current"`` and
    ``coherence="fraction"``, as dfcrm). Each config calls :meth:`check_rules`
    in its ``__post_init__``; :func:`shared_rules` builds the rules.

    Attributes
    ----------
    no_escalation_after_dlts
        ``"all"`` (default, every design): never escalate right after a cohort
        in which every patient had a DLT; an integer ``k``: ... in which at least
        ``k`` patients (or all) had a DLT; ``"off"``. (:class:`DltGuard`)
    no_escalation_above_boundary
        No escalation while the current dose's observed DLT rate exceeds BOIN's
        de-escalation boundary :math:`\\lambda_d` for the target (with
        :math:`\\phi_2 = 1.4\\phi`). (:class:`DeescalationGuard`)
    overdose_control, overdose_min_n
        Exclude dose :math:`d` and above when :math:`\\Pr(p_d > \\phi \\mid
        \\text{data}) >` ``overdose_control`` with at least ``overdose_min_n``
        patients at :math:`d` (Beta prior ``beta_prior``); None: off.
        (:class:`OverdoseControl`)
    lowest_dose_safety, lowest_dose_safety_min_n
        Stop when :math:`\\Pr(p_1 > \\phi \\mid \\text{data}) >`
        ``lowest_dose_safety`` with at least that many patients at the lowest
        dose (Beta prior ``beta_prior``); None: off. (:class:`BetaSafetyStop`)
    beta_prior
        :math:`(a, b)` of the Beta prior of the two rules above (Beta(1, 1), as BOIN).
    no_skip
        ``"current"``: at most one dose above the current dose; ``"tried"``: at
        most one above the highest dose tried; ``"off"``. (:class:`NoSkip`)
    coherence
        ``"fraction"``: no escalation after a cohort whose DLT fraction reaches
        the target; ``"any"``: after any DLT; ``"off"``. (:class:`Coherence`)
    stop_n_at_dose
        Stop when this many patients have been treated at the dose the design
        recommends next (None: never). (:class:`StopAtN`)
    min_n
        No stop other than a safety stop before this many patients. (:class:`MinSampleSize`)
    backfill
        Backfill cohorts (BF-BOIN; Zhao et al. 2024): ``true`` for the defaults, a
        mapping of :class:`Backfill` settings (``max_per_dose``, ``max_total``,
        ``require_response``, ``assign``, ``unplaced``, ``pending_at_end``), or
        None/``false`` (off). Needs calendar time (the time-aware engine).
    """

    no_escalation_after_dlts: int | Literal["all", "off"] = "all"
    no_escalation_above_boundary: bool = False
    overdose_control: float | None = None
    overdose_min_n: int = 3
    lowest_dose_safety: float | None = None
    lowest_dose_safety_min_n: int = 3
    beta_prior: tuple[float, float] = (1.0, 1.0)
    no_skip: Literal["current", "tried", "off"] = "off"
    coherence: Literal["fraction", "any", "off"] = "off"
    stop_n_at_dose: int | None = None
    min_n: int = 0
    backfill: "Backfill | None" = None

    def check_rules(self) -> None:
        """Validate the shared fields (raises :class:`~escalade.design.errors.ConfigError`)."""
        from escalade.design.errors import ConfigError, did_you_mean

        g = self.no_escalation_after_dlts
        if isinstance(g, str):
            if g not in ("all", "off"):
                raise ConfigError("no_escalation_after_dlts", g,
                                  f"must be 'all', 'off' or a number of DLTs >= 1{did_you_mean(g, ('all', 'off'))}")
        else:
            check_int("no_escalation_after_dlts", g, low=1,
                      what="'all', 'off' or a whole number of DLTs >= 1")
        if not isinstance(self.no_escalation_above_boundary, bool):
            raise ConfigError("no_escalation_above_boundary", self.no_escalation_above_boundary,
                              "must be true or false")
        for name in ("overdose_control", "lowest_dose_safety"):
            v = getattr(self, name)
            if v is not None:
                check_fraction(name, v)
        check_int("overdose_min_n", self.overdose_min_n, low=1)
        check_int("lowest_dose_safety_min_n", self.lowest_dose_safety_min_n, low=1)
        bp = self.beta_prior
        if isinstance(bp, (str, bytes)) or not isinstance(bp, (Sequence, np.ndarray)) or len(bp) != 2:
            raise ConfigError("beta_prior", bp, "must be two numbers [a, b] > 0 (Beta(a, b); BOIN uses [1, 1])")
        for i, v in enumerate(bp):
            check_positive(f"beta_prior[{i}]", v)
        object.__setattr__(self, "beta_prior", (float(bp[0]), float(bp[1])))
        for name, allowed in (("no_skip", ("current", "tried", "off")), ("coherence", ("fraction", "any", "off"))):
            v = getattr(self, name)
            if v not in allowed:
                raise ConfigError(name, v, f"must be one of {list(allowed)}{did_you_mean(str(v), allowed)}")
        if self.stop_n_at_dose is not None:
            check_int("stop_n_at_dose", self.stop_n_at_dose, low=1)
        max_n = getattr(self, "max_n", None)
        if max_n is None:
            check_int("min_n", self.min_n, low=0)
        else:
            check_int("min_n", self.min_n, low=0, high=max_n, what=f"an integer in [0, max_n = {max_n}]")
        object.__setattr__(self, "backfill", Backfill.from_value(self.backfill))

    def shared_rule_fields(self) -> dict[str, Any]:
        """The shared fields and their values (to pass them on to a related config)."""
        return {name: getattr(self, name) for name in _SHARED_FIELDS}

    def rules_need_target(self) -> list[str]:
        """Names of the switched-on shared rules that need a target DLT rate."""
        out = []
        if self.no_escalation_above_boundary:
            out.append("no_escalation_above_boundary")
        if self.overdose_control is not None:
            out.append("overdose_control")
        if self.lowest_dose_safety is not None:
            out.append("lowest_dose_safety")
        if self.coherence == "fraction":
            out.append("coherence")
        return out


_SHARED_FIELDS: tuple[str, ...] = (
    "no_escalation_after_dlts", "no_escalation_above_boundary", "overdose_control", "overdose_min_n",
    "lowest_dose_safety", "lowest_dose_safety_min_n", "beta_prior", "no_skip", "coherence", "stop_n_at_dose",
    "min_n", "backfill",
)


def shared_rules(config: SharedRules, target: float | None) -> tuple[Rule, ...]:
    """The generic rules a config switches on (its :class:`SharedRules` fields).

    ``target`` is the design's target DLT rate (EffTox: its toxicity hurdle);
    None for a design without one, which then may not switch on a rule that
    needs it.

    Raises
    ------
    ConfigError
        A rule needing a target is on and the design has none.
    """
    c = config
    if target is None:
        need = c.rules_need_target()
        if need:
            from escalade.design.errors import ConfigError

            raise ConfigError(need[0], getattr(c, need[0]),
                              "needs a target DLT rate, which this design does not have: set 'target'")
    rules: list[Rule] = []
    g = c.no_escalation_after_dlts
    if g != "off":
        rules.append(DltGuard(None if g == "all" else int(g)))
    if c.no_escalation_above_boundary:
        rules.append(DeescalationGuard(deescalation_boundary(float(target))))  # type: ignore[arg-type]
    if c.overdose_control is not None:
        rules.append(OverdoseControl(c.overdose_control, c.overdose_min_n, c.beta_prior))
    if c.lowest_dose_safety is not None:
        rules.append(BetaSafetyStop(c.lowest_dose_safety, c.lowest_dose_safety_min_n, c.beta_prior))
    if c.no_skip != "off":
        rules.append(NoSkip(c.no_skip))  # type: ignore[arg-type]
    if c.coherence != "off":
        rules.append(Coherence(c.coherence))  # type: ignore[arg-type]
    if c.stop_n_at_dose is not None:
        rules.append(StopAtN(c.stop_n_at_dose))
    if c.min_n > 0:
        rules.append(MinSampleSize(c.min_n))
    return tuple(rules)


def describe_guardrails(params: Any) -> str:
    """One protocol sentence for the guardrails a design's recorded parameters switch on.

    ``params`` is the mapping of every parameter (a run manifest's, defaults
    filled); the target is ``target`` (EffTox: ``toxicity_hurdle``). Covers the
    guardrail fields (:attr:`SharedRules.no_escalation_after_dlts`,
    ``no_escalation_above_boundary``, ``overdose_control``,
    ``lowest_dose_safety``); the design's own methods text covers the rest.
    Empty when none is on (or for parameters of a manifest written before the
    shared rules).

    >>> describe_guardrails({"target": 0.3, "no_escalation_after_dlts": "all", "overdose_control": 0.95})
    'Trial rules (escalade, shared by every design): the dose is never escalated right after a cohort in \
which every patient had a DLT; a dose and all higher doses are excluded once Pr(DLT rate > 0.3 | data) > 0.95 \
under a Beta(1, 1) prior with at least 3 patients at the dose, and the trial stops if the lowest dose is excluded.'
    """
    p = dict(params)
    target = p.get("target", p.get("toxicity_hurdle"))
    prior = p.get("beta_prior") or (1.0, 1.0)
    beta = f"Beta({float(prior[0]):g}, {float(prior[1]):g})"
    parts = []
    g = p.get("no_escalation_after_dlts")
    if g == "all":
        parts.append("the dose is never escalated right after a cohort in which every patient had a DLT")
    elif g not in (None, "off"):
        parts.append(f"the dose is never escalated right after a cohort with {int(g)} or more DLTs "
                     "(or in which every patient had a DLT)")
    if p.get("no_escalation_above_boundary") and target is not None:
        parts.append(f"nor while the observed DLT rate at the current dose exceeds "
                     f"{deescalation_boundary(float(target)):.3f} (BOIN's de-escalation boundary; Liu & Yuan, 2015)")
    if p.get("overdose_control") is not None and target is not None:
        parts.append(f"a dose and all higher doses are excluded once Pr(DLT rate > {float(target):g} | data) > "
                     f"{float(p['overdose_control']):g} under a {beta} prior with at least "
                     f"{int(p.get('overdose_min_n', 3))} patients at the dose, and the trial stops if the lowest "
                     "dose is excluded")
    if p.get("lowest_dose_safety") is not None and target is not None:
        parts.append(f"the trial stops when Pr(DLT rate at the lowest dose > {float(target):g} | data) > "
                     f"{float(p['lowest_dose_safety']):g} under a {beta} prior with at least "
                     f"{int(p.get('lowest_dose_safety_min_n', 3))} patients there")
    text = "Trial rules (escalade, shared by every design): " + "; ".join(parts) + "." if parts else ""
    bf = p.get("backfill")
    if bf not in (None, False):
        b = Backfill.from_value(bf)
        assert b is not None
        where = "the highest" if b.assign == "highest" else "the lowest"
        sentence = (
            "Backfill cohorts (BF-BOIN; Zhao, Yuan, Korn & Freidlin, 2024): while an escalation cohort is in DLT "
            f"follow-up, each arriving patient is treated at {where} dose below the current one that has been "
            "cleared, whose observed DLT count (alone, or pooled with the next dose) is below BOIN's "
            "de-escalation boundary" + (", at which a response has been seen" if b.require_response else "")
            + f", and that has fewer than {b.max_per_dose} patients"
            + (f" (at most {b.max_total} backfill patients in all)" if b.max_total is not None else "")
            + " (backfill patients come in addition to the escalation's maximum sample size)"
            + "; the DLTs of backfill patients count in every later escalation decision and in the final "
            "selection" + (", and when the data of a backfilled dose conflict with the current dose's, the "
                           "doses between them are pooled as in the paper"
                           if "stay_on_1_of_3" in p else "") + ".")  # BOIN's parameters: its pooling rule
        text = (text + " " + sentence).strip()
    return text


# --------------------------------------------------------------------------------------------
# backfill cohorts


_BACKFILL_ASSIGN = ("highest", "lowest")
_BACKFILL_UNPLACED = ("wait", "leave")
_BACKFILL_PENDING = ("follow", "drop")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backfill:
    """Backfill cohorts (BF-BOIN): Zhao, Yuan, Korn & Freidlin (2024), Clin Cancer Res 30:673-679.

    While the escalation cohort at dose :math:`c` is in follow-up (its last
    patient dosed, not every outcome known), a patient who arrives is treated
    at a backfill dose :math:`b < c` that is *open* at the arrival
    (:func:`backfill_open`): (1) cleared: the escalation has moved above it;
    (2) with ``require_response``, a response has been seen there; (3) safe:
    the observed DLT count at :math:`b` is below BOIN's de-escalation boundary,
    or that of :math:`b` pooled with :math:`b + 1` is, and no lower dose is
    unsafe (the paper's closing rule: a dose whose data call for
    de-escalation closes with every dose above it); (4) fewer than
    ``max_per_dose`` patients treated there and fewer than ``max_total``
    backfill patients in the trial. The escalation's decisions use every
    outcome known by then, backfill patients' included; the final selection
    uses all patients.

    Attributes
    ----------
    max_per_dose
        A dose closes for backfill once this many patients (escalation and
        backfill) have been treated there (the paper's and ``bfboin``'s
        ``n.cap``, 12).
    max_total
        At most this many backfill patients in the trial (None: no limit but
        ``max_per_dose``).
    require_response
        Open a dose only once a response has been observed there (the paper;
        its software's ``p.response.true`` drives it). False: safety alone.
    assign
        Where several doses are open: ``"highest"`` (the paper) or ``"lowest"``.
    unplaced
        A patient who arrives while the escalation cohort is in follow-up and no
        dose is open: ``"wait"`` for the next escalation cohort (escalade's time
        model: nobody is lost) or ``"leave"`` the trial (referred elsewhere, as in
        the paper's simulations, where BOIN without backfill also loses them).
    pending_at_end
        Backfill patients still in follow-up when the escalation ends:
        ``"follow"`` them to the end of their window and count them (duration,
        sample size, final selection), or ``"drop"`` them as the paper's
        software does (the trial ends with the last escalation cohort).
    """

    max_per_dose: int = 12
    max_total: int | None = None
    require_response: bool = True
    assign: Literal["highest", "lowest"] = "highest"
    unplaced: Literal["wait", "leave"] = "wait"
    pending_at_end: Literal["follow", "drop"] = "follow"

    def __post_init__(self) -> None:
        from escalade.design.errors import ConfigError, did_you_mean

        check_int("backfill.max_per_dose", self.max_per_dose, low=1)
        if self.max_total is not None:
            check_int("backfill.max_total", self.max_total, low=0)
        if not isinstance(self.require_response, bool):
            raise ConfigError("backfill.require_response", self.require_response, "must be true or false")
        for name, allowed in (("assign", _BACKFILL_ASSIGN), ("unplaced", _BACKFILL_UNPLACED),
                              ("pending_at_end", _BACKFILL_PENDING)):
            v = getattr(self, name)
            if v not in allowed:
                raise ConfigError(f"backfill.{name}", v,
                                  f"must be one of {list(allowed)}{did_you_mean(str(v), allowed)}")

    @classmethod
    def from_value(cls, value: Any) -> "Backfill | None":
        """The setting from a study file's value: None/false (off), true (defaults), a mapping, or a Backfill."""
        from escalade.design.errors import ConfigError, did_you_mean

        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict) or hasattr(value, "items"):
            names = [f for f in cls.__dataclass_fields__]
            for key in value:
                if key not in names:
                    raise ConfigError(f"backfill.{key}", value[key],
                                      f"is not a backfill setting{did_you_mean(str(key), names)}; "
                                      f"allowed: {', '.join(names)}")
            return cls(**dict(value))
        raise ConfigError("backfill", value, "must be true, false or a mapping of backfill settings "
                          "(max_per_dose, max_total, require_response, assign, unplaced, pending_at_end)")

    def slots(self, n_doses: int) -> int:
        """Most backfill patients one trial can have."""
        cap = n_doses * self.max_per_dose
        return cap if self.max_total is None else min(cap, self.max_total)


def backfill_of(design: Any) -> Backfill | None:
    """The :class:`Backfill` setting of ``design`` (None when off or the design has none)."""
    return getattr(getattr(design, "config", None), "backfill", None)


def patient_slots(design: Any) -> int:
    """Patient slots one trial of ``design`` may use: ``max_n``, plus the backfill patients."""
    bf = backfill_of(design)
    extra = 0 if bf is None else bf.slots(int(design.n_doses))
    return int(design.max_n) + extra


def _deesc_at(table: IntArray, n: IntArray) -> IntArray:
    return table[np.clip(n, 1, table.shape[0] - 1)]


def backfill_open(setting: Backfill, *, n_obs: IntArray, y_obs: IntArray, n_treated: IntArray,
                  responded: BoolArray, current: IntArray, n_backfill_total: IntArray,
                  deescalate: IntArray) -> BoolArray:
    """``(S, D)``: doses open for backfill at a patient's arrival (see :class:`Backfill`).

    Parameters
    ----------
    n_obs, y_obs
        ``(S, D)`` patients whose outcome is known by now, and their DLTs.
    n_treated
        ``(S, D)`` patients treated so far (known or pending).
    responded
        ``(S, D)`` a response has been observed at the dose.
    current
        ``(S,)`` the escalation cohort's dose: only lower doses are cleared.
    n_backfill_total
        ``(S,)`` backfill patients so far.
    deescalate
        BOIN's de-escalation boundaries by number of patients (``deescalate[n]``:
        de-escalate with that many DLTs or more), long enough for the pooled counts.

    Safety (Zhao et al. 2024): dose :math:`b` is safe when :math:`y_b <`
    ``deescalate[n_b]``, or when the same holds for :math:`b` and :math:`b+1`
    pooled; the first unsafe dose closes itself and every dose above it.
    """
    s, nd = n_obs.shape
    cleared = np.arange(nd)[None, :] < np.asarray(current)[:, None]
    safe_own = y_obs < _deesc_at(deescalate, n_obs)
    n_up = np.concatenate([n_obs[:, 1:], np.zeros((s, 1), np.int64)], axis=1)
    y_up = np.concatenate([y_obs[:, 1:], np.zeros((s, 1), np.int64)], axis=1)
    safe_pool = (y_obs + y_up) < _deesc_at(deescalate, n_obs + n_up)
    safe = np.logical_and.accumulate(safe_own | safe_pool, axis=1)
    room = n_treated < setting.max_per_dose
    if setting.max_total is not None:
        room &= (np.asarray(n_backfill_total) < setting.max_total)[:, None]
    ok = cleared & safe & room
    if setting.require_response:
        ok &= responded
    return ok


#: Decisions of the boundaries at a dose (for :func:`backfill_pooled_move`).
_ESC, _STAY, _DEESC = 0, 1, 2


def backfill_pooled_move(states: States, own: IntArray, *, escalate: IntArray, deescalate: IntArray) -> IntArray:
    """BF-BOIN's next dose where backfill data at lower doses conflict with the current dose's.

    Zhao, Yuan, Korn & Freidlin (2024), Clin Cancer Res 30:673-679 (the rule
    as the software ``bfboin`` 0.1.1 implements it). With :math:`c` the current
    dose and each dose :math:`k \\le c` classified by the boundaries on its own
    data (escalate / stay / de-escalate):

    * no conflict (every lower dose escalates, or the current dose does not
      escalate and no lower dose de-escalates): the design's own move ``own``;
    * otherwise :math:`b^*` is the highest lower dose that conflicts (does not
      escalate when :math:`c` escalates; de-escalates when :math:`c` does not
      escalate), and the data of :math:`b^*..c` are pooled: escalate if the
      pooled count is at or below the escalation boundary; de-escalate, to the
      highest :math:`k \\in [b^*, c]` whose pooled data :math:`b^*..k` stay below
      the de-escalation boundary (or :math:`b^* - 1`, at least the lowest dose,
      when there is none), if at or above the de-escalation boundary; stay otherwise.

    Without data above the escalation boundary at a lower dose (always so
    without backfill: BOIN leaves a dose upwards only when its data say
    escalate) the result is ``own``. Elimination and the other trial rules
    apply afterwards, as for every design.
    """
    n, y = states.n, states.tox
    s, nd = n.shape
    top = escalate.shape[0] - 1
    c = np.asarray(states.current, np.int64)
    nn = np.clip(n, 1, top)
    code = np.where(y <= escalate[nn], _ESC, np.where(y >= deescalate[nn], _DEESC, _STAY))
    idx = np.arange(nd)[None, :]
    lower = idx < c[:, None]
    code_c = np.take_along_axis(code, c[:, None], axis=1)[:, 0]
    esc_c = code_c == _ESC
    bad = np.where(esc_c[:, None], code != _ESC, code == _DEESC) & lower
    conflict = bad.any(axis=1)
    if not conflict.any():
        return np.asarray(own, np.int64)
    b_star = np.where(conflict, nd - 1 - np.argmax(bad[:, ::-1], axis=1), 0)
    band = (idx >= b_star[:, None]) & (idx <= c[:, None])
    cum_n = np.cumsum(np.where(band, n, 0), axis=1)
    cum_y = np.cumsum(np.where(band, y, 0), axis=1)
    big = max(int(cum_n.max(initial=0)), 1)
    if big > top:
        raise ValueError(f"backfill: {big} pooled patients exceed the boundary table ({top}); build the "
                         "design's boundaries for at least its patient slots")
    pn = np.take_along_axis(cum_n, c[:, None], axis=1)[:, 0]
    py = np.take_along_axis(cum_y, c[:, None], axis=1)[:, 0]
    pnn = np.clip(pn, 1, top)
    up = py <= escalate[pnn]
    down = py >= deescalate[pnn]
    ok_k = band & (cum_y < deescalate[np.clip(cum_n, 1, top)])
    any_ok = ok_k.any(axis=1)
    k_hi = nd - 1 - np.argmax(ok_k[:, ::-1], axis=1)
    go_down = np.where(any_ok, k_hi, np.maximum(b_star - 1, 0))
    pooled = np.where(up, np.minimum(c + 1, nd - 1), np.where(down, go_down, c))
    return np.where(conflict, pooled, own).astype(np.int64)
