"""Bayesian optimal interval (BOIN) design.

Liu & Yuan (2015), JRSS C 64:507-523; Yan, Pan, Zhang, Liu & Yuan (2019),
J Stat Softw 94(13). Rules follow the R package ``BOIN`` (2.7.2): decision
boundaries of ``get.boundary``, the trial algorithm of ``get.oc`` and the final
selection of ``select.mtd``.

With target :math:`\\phi`, :math:`\\phi_1` = ``p_saf`` and :math:`\\phi_2` = ``p_tox``,

.. math::

    \\lambda_e = \\frac{\\log\\frac{1-\\phi_1}{1-\\phi}}{\\log\\frac{\\phi(1-\\phi_1)}{\\phi_1(1-\\phi)}},
    \\qquad
    \\lambda_d = \\frac{\\log\\frac{1-\\phi}{1-\\phi_2}}{\\log\\frac{\\phi_2(1-\\phi)}{\\phi(1-\\phi_2)}}.

With ``y`` DLTs out of ``n`` at the current dose: escalate if
:math:`y/n \\le \\lambda_e`, de-escalate if :math:`y/n > \\lambda_d`, else stay.
A dose and all higher ones are eliminated once :math:`n \\ge 3` and
:math:`\\Pr(p > \\phi \\mid y, n) > ` ``cutoff_eli`` under a Beta(1, 1) prior.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import stats

from escalade.design.base import ConfigDesign, NO_DOSE, Decisions, DesignEntry, ExplanationMixin, IntArray, States
from escalade.design.config import check_boin_interval, check_fraction, check_int, check_probability, check_trial_size
from escalade.design.isotonic import isotonic_regression
from escalade.design.rules import (
    BetaSafetyStop,
    OverdoseControl,
    Rule,
    RuleContext,
    SharedRules,
    StopAtN,
    Titration,
    apply_rules,
    backfill_pooled_move,
    patient_slots,
    select_with_rules,
    shared_rules,
)
from escalade.design.rules import state_fields as rules_state_fields

__all__ = ["BoinConfig", "BoinBoundaries", "BoinDesign", "boin_boundaries", "boin_rules", "boin_select",
           "BoinEstimates", "boin_estimates", "isotonic_mtd", "BoinExplanation", "boin_explanation", "ENTRY"]

_TIE_TOL = 1e-12  # lambda_d * n this close to an integer counts as that integer (as get.boundary)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoinConfig(SharedRules):
    """BOIN parameters, with the ``BOIN`` package's names and defaults.

    Attributes
    ----------
    target
        Target DLT probability :math:`\\phi`.
    n_doses, cohort_size, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    max_n
        Maximum sample size (``ncohort * cohortsize`` in the package).
    p_saf, p_tox
        :math:`\\phi_1` and :math:`\\phi_2`, the highest DLT rate deemed underdosing and the
        lowest deemed overdosing; default 0.6 and 1.4 times the target.
    cutoff_eli
        Eliminate a dose (and higher ones) when :math:`\\Pr(p > \\phi \\mid \\text{data})` exceeds it
        with at least 3 patients there.
    extrasafe
        Stop early when the lowest dose is too toxic by the stricter cut-off ``cutoff_eli - offset``.
    offset
        Offset of the extra-safe rule.
    n_earlystop
        Stop when this many patients are at the current dose and the rule would stay (100: never).
    titration
        Accelerated titration: one patient per dose upwards until the first DLT.
    bound_mtd
        Select no dose whose isotonic DLT estimate exceeds the de-escalation boundary.
    stay_on_1_of_3
        Stay (rather than de-escalate) when exactly 1 of 3 patients at the current
        dose has had a DLT. With a target below about 0.28 (e.g. 0.25), BOIN's
        de-escalation boundary at :math:`n = 3` is one DLT (:math:`\\lambda_d \\cdot 3 < 1`);
        many protocols instead stay at 1/3, as the 3+3 design does ("when observing 1
        DLT out of 3 patients and the target DLT rate is between 0.25 and 0.279, the
        decision is to stay", R package ``bfboinet``; the ``three.plus.three`` option of
        Zhao, Yuan, Korn & Freidlin (2024), Clin Cancer Res 30:673-679, software
        ``bfboin``; ``stay_on_1_of_3`` of ``simFastBOIN``). The de-escalation
        boundary at :math:`n = 3` becomes 2 where it was 1, provided 1/3 neither
        escalates nor eliminates; no other entry changes, and with a target where
        1/3 already stays the option changes nothing. Off by default (``BOIN`` itself).

    ``cutoff_eli`` (elimination, always on), ``extrasafe``/``offset``,
    ``n_earlystop`` and ``titration`` are BOIN's own rules, built from the
    shared rule classes (:func:`boin_rules`); the other shared rules
    (:class:`~escalade.design.rules.SharedRules`) are available too, with the
    all-DLT guardrail on by default (BOIN itself escalates after an all-DLT
    cohort only when many clean patients at the dose outweigh it, e.g. 0/12
    then 3/3).
    """

    target: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    p_saf: float | None = None
    p_tox: float | None = None
    cutoff_eli: float = 0.95
    extrasafe: bool = False
    offset: float = 0.05
    n_earlystop: int = 100
    titration: bool = False
    bound_mtd: bool = False
    stay_on_1_of_3: bool = False

    def __post_init__(self) -> None:
        check_fraction("target", self.target)
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        check_boin_interval(self)
        check_probability("cutoff_eli", self.cutoff_eli)
        check_probability("offset", self.offset)
        check_int("n_earlystop", self.n_earlystop, low=1)
        if not isinstance(self.stay_on_1_of_3, bool):
            from escalade.design.errors import ConfigError
            raise ConfigError("stay_on_1_of_3", self.stay_on_1_of_3, "must be true or false")
        self.check_rules()

    @property
    def lambda_e(self) -> float:
        phi, p1 = self.target, self.p_saf
        return math.log((1 - p1) / (1 - phi)) / math.log(phi * (1 - p1) / (p1 * (1 - phi)))

    @property
    def lambda_d(self) -> float:
        phi, p2 = self.target, self.p_tox
        return math.log((1 - phi) / (1 - p2)) / math.log(p2 * (1 - phi) / (phi * (1 - p2)))


@dataclass(frozen=True, slots=True)
class BoinBoundaries:
    """BOIN decision table for ``n = 0 .. n_max`` patients at a dose.

    Index ``n`` of each array is the boundary with ``n`` patients (index 0 is
    unused). ``eliminate[n] == n + 1`` means elimination is impossible at ``n``.
    """

    lambda_e: float
    lambda_d: float
    escalate: IntArray     # escalate if y <= escalate[n]
    deescalate: IntArray   # de-escalate if y >= deescalate[n]
    eliminate: IntArray    # eliminate if y >= eliminate[n]
    extrasafe_stop: IntArray  # stop (lowest dose) if y >= extrasafe_stop[n]

    @property
    def n_max(self) -> int:
        return int(self.escalate.shape[0] - 1)

    def table(self, cohort_size: int = 1) -> "dict[str, list[int | None]]":
        """Rows as ``BOIN::get.boundary`` prints them, at ``n = k * cohort_size``."""
        ns = list(range(cohort_size, self.n_max + 1, cohort_size))
        return {
            "n": ns,
            "escalate_if_ntox_le": [int(self.escalate[n]) for n in ns],
            "deescalate_if_ntox_ge": [int(self.deescalate[n]) for n in ns],
            "eliminate_if_ntox_ge": [None if self.eliminate[n] > n else int(self.eliminate[n]) for n in ns],
        }


def _beta_exceed(target: float, y: IntArray | int, n: IntArray | int) -> np.ndarray:
    """:math:`\\Pr(p > \\phi)` under Beta(y + 1, n - y + 1) (BOIN's elimination posterior)."""
    y = np.asarray(y, float)
    n = np.asarray(n, float)
    return stats.beta.sf(target, y + 1.0, n - y + 1.0)


@functools.cache
def boin_boundaries(
    target: float, n_max: int, p_saf: float, p_tox: float, cutoff_eli: float = 0.95, offset: float = 0.05,
    stay_on_1_of_3: bool = False,
) -> BoinBoundaries:
    """Decision boundaries for 1..``n_max`` patients, equal to ``BOIN::get.boundary``.

    Escalation boundary ``floor(lambda_e * n)``; de-escalation boundary the
    smallest integer strictly above ``lambda_d * n`` (``lambda_d * n`` within
    1e-12 of an integer ``m`` gives ``m + 1``); elimination the smallest
    ``y`` with :math:`\\Pr(p > \\phi \\mid y, n) >` ``cutoff_eli`` for ``n >= 3``;
    where elimination is below de-escalation the latter is lowered to it.
    With ``stay_on_1_of_3`` (:attr:`BoinConfig.stay_on_1_of_3`) the
    de-escalation boundary at ``n = 3`` is raised from 1 to 2 where 1/3 would
    neither escalate nor eliminate.
    """
    cfg = BoinConfig(target=target, n_doses=1, p_saf=p_saf, p_tox=p_tox, cutoff_eli=cutoff_eli)
    lam_e, lam_d = cfg.lambda_e, cfg.lambda_d
    ns = np.arange(n_max + 1)
    esc = np.floor(lam_e * ns).astype(np.int64)
    raw = lam_d * ns
    near = np.abs(raw - np.round(raw)) < _TIE_TOL
    deesc = np.where(near, np.round(raw) + 1, np.ceil(raw)).astype(np.int64)
    elim = ns + 1
    safe = ns + 1
    for n in range(3, n_max + 1):
        ys = np.arange(1, n + 1)
        pr = _beta_exceed(target, ys, n)
        hit = np.nonzero(pr > cutoff_eli)[0]
        if hit.size:
            elim[n] = ys[hit[0]]
        hit = np.nonzero(pr > cutoff_eli - offset)[0]
        if hit.size:
            safe[n] = ys[hit[0]]
    deesc = np.where(elim < deesc, elim, deesc)
    if stay_on_1_of_3 and n_max >= 3 and deesc[3] <= 1 and esc[3] < 1 and elim[3] > 1:
        deesc[3] = 2
    esc[0] = -1
    deesc[0] = 1
    return BoinBoundaries(lam_e, lam_d, esc, deesc, elim, safe)


def boin_rules(config: "BoinConfig") -> tuple[Rule, ...]:
    """BOIN's own rules (as ``BOIN::get.oc``) and the shared ones a config switches on.

    * elimination: :class:`~escalade.design.rules.OverdoseControl` with
      ``cutoff_eli``, Beta(1, 1), at least 3 patients (``get.oc``: a dose and
      all higher ones are eliminated; never escalate into them; with the
      lowest dose eliminated the trial stops);
    * ``extrasafe``: :class:`~escalade.design.rules.BetaSafetyStop` at
      ``cutoff_eli - offset``, checked while at the lowest dose;
    * ``n_earlystop``: :class:`~escalade.design.rules.StopAtN` at the current
      dose where the rules keep it (``at="staying"``);
    * ``titration``: :class:`~escalade.design.rules.Titration`.

    Combined with the shared rules by :func:`~escalade.design.rules.apply_rules`
    (order-free); the decisions equal ``get.oc``'s ordered ones (tested).
    """
    c = config
    rules: list[Rule] = list(shared_rules(c, c.target))
    rules.append(OverdoseControl(c.cutoff_eli, 3))
    if c.extrasafe:
        rules.append(BetaSafetyStop(c.cutoff_eli - c.offset, 3, at_lowest_only=True))
    if c.n_earlystop <= c.max_n:
        rules.append(StopAtN(c.n_earlystop, at="staying"))
    if getattr(c, "titration", False) and c.cohort_size > 1:
        rules.append(Titration(c.cohort_size))
    return tuple(rules)


class _EnumerableUnlessBackfill:
    """``enumerable``: True for the class (the design can be enumerated), and for an instance
    unless its config has backfill cohorts (whose course depends on calendar time)."""

    def __get__(self, obj: object, cls: type | None = None) -> bool:
        return True if obj is None else getattr(obj.config, "backfill", None) is None  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class BoinDesign(ConfigDesign):
    """BOIN as a pure function of per-dose counts (``BOIN::get.oc`` semantics).

    After each cohort at dose ``d`` with ``m`` patients and ``y`` DLTs there,
    the boundaries give the design's own move: escalate if
    :math:`y \\le` ``escalate[m]`` (not above the top dose), de-escalate if
    :math:`y \\ge` ``deescalate[m]`` (not below the lowest), else stay. The
    trial rules (:func:`boin_rules`) then apply, order-free, as ``get.oc``
    applies them in order:

    1. elimination: ``y >= eliminate[m]`` eliminates ``d`` and higher doses
       (never escalate into them); with the lowest dose eliminated the trial
       stops (all doses too toxic);
    2. extra-safe (optional): at the lowest dose, stop when
       :math:`\\Pr(p_1 > \\phi) >` ``cutoff_eli - offset``;
    3. ``n_earlystop``: stop when ``m >= n_earlystop`` and the rules stay;
    4. titration (optional);

    plus the shared guardrails switched on in the config (by default: no
    escalation right after an all-DLT cohort).

    With ``backfill`` (:class:`~escalade.design.rules.Backfill`; BF-BOIN, Zhao
    et al. 2024) the counts include the backfill patients whose outcomes are
    known, and a conflict between the current dose and a backfilled lower dose
    is resolved by the paper's pooling rule
    (:func:`~escalade.design.rules.backfill_pooled_move`) before the trial rules.

    The engine ends the trial at ``max_n`` *before* asking, so, as in
    ``get.oc``, no rule runs after the last cohort; :meth:`select` re-applies
    elimination to the final data as ``select.mtd`` does.
    """

    config: BoinConfig
    kind: ClassVar[str] = "boin"
    enumerable = _EnumerableUnlessBackfill()
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False
    boundaries: BoinBoundaries = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        c = self.config
        n_max = max(c.max_n, c.n_earlystop, 3)
        if c.backfill is not None:  # pooled backfill data: boundaries up to every patient slot
            n_max = max(n_max, patient_slots(self))
        extra = {"stay_on_1_of_3": True} if c.stay_on_1_of_3 else {}  # the call of the default stays as it was
        object.__setattr__(
            self, "boundaries", boin_boundaries(c.target, n_max, c.p_saf, c.p_tox, c.cutoff_eli, c.offset, **extra),
        )
        object.__setattr__(self, "rules", boin_rules(c))


    @property
    def state_fields(self) -> str:
        """``"counts"`` unless a rule reads the last cohort (the default DLT guardrail does)."""
        return rules_state_fields(self.rules)

    def start(self) -> tuple[int, int]:
        c = self.config
        if c.titration and c.cohort_size > 1:
            return 0, 1
        return c.start_dose, c.cohort_size

    def eliminated(self, states: States) -> np.ndarray:
        """``(S, D)`` booleans: dose eliminated (it, or a lower dose, meets the rule)."""
        b = self.boundaries
        n = np.minimum(states.n, b.n_max)
        hit = (states.n >= 3) & (states.tox >= b.eliminate[n])
        return np.logical_or.accumulate(hit, axis=1)

    def move(self, states: States) -> IntArray:
        """BOIN's own next dose by the boundaries alone (before elimination and the other rules)."""
        b = self.boundaries
        d = states.current
        top = self.config.n_doses - 1
        m = np.minimum(states.at_current(states.n), b.n_max)
        y = states.at_current(states.tox)
        esc_ok = y <= b.escalate[m]
        deesc = y >= b.deescalate[m]
        own = np.where(esc_ok & (d < top), d + 1, np.where(deesc & (d > 0), d - 1, d)).astype(np.int64)
        if self.config.backfill is None:
            return own
        # BF-BOIN: backfill data at a lower dose that conflict with the current dose's are pooled
        return backfill_pooled_move(states, own, escalate=b.escalate, deescalate=b.deescalate)

    def decide(self, states: States) -> Decisions:
        nxt = self.move(states)
        return apply_rules(self.rules, RuleContext(states, nxt, self.config.target), self.config.cohort_size)

    def explain(self, states: States, **options: object) -> "BoinExplanation":
        """Boundaries at the current dose's n and the isotonic estimates (``select.mtd``) of the first state."""
        return boin_explanation(self, states)

    def select(self, states: States) -> IntArray:
        c = self.config
        sel = boin_select(
            states.n, states.tox, target=c.target, cutoff_eli=c.cutoff_eli, extrasafe=c.extrasafe,
            offset=c.offset, bound_mtd=c.bound_mtd, p_tox=c.p_tox,
        )
        return select_with_rules(self.rules, RuleContext(states, sel, c.target))


@functools.cache
def _first_exceeding(target: float, cutoff: float, n_max: int) -> IntArray:
    """Smallest ``y`` with Pr(p > target | Beta(y+1, n-y+1)) > cutoff, per ``n`` (``n + 1`` if none)."""
    out = np.arange(n_max + 1) + 1
    for n in range(1, n_max + 1):
        ys = np.arange(0, n + 1)
        hit = np.nonzero(_beta_exceed(target, ys, n) > cutoff)[0]
        if hit.size:
            out[n] = ys[hit[0]]
    return out


#: Largest number of patients at a dose covered by the look-up table of :func:`_exceeds`. The table costs
#: O(n^2) to build (every y for every n); counts beyond it (a live trial's data, never a simulated trial's
#: usual size) are evaluated directly, so conduct mode stays linear in patients.
_TABLE_N = 256


def _exceeds(target: float, cutoff: float, y: IntArray, n: IntArray) -> np.ndarray:
    """Pr(p > target | Beta(y+1, n-y+1)) > cutoff, by table look-up (monotone in y).

    Above :data:`_TABLE_N` patients the probability is computed for the given
    ``(y, n)`` only: the same values the table is built from, hence the same
    answers.
    """
    n = np.asarray(n, np.int64)
    top = int(n.max(initial=0))
    if top > _TABLE_N:
        return (n >= 1) & (_beta_exceed(target, y, np.maximum(n, 1)) > cutoff)
    table = _first_exceeding(float(target), float(cutoff), max(top, 64))
    return np.asarray(y) >= table[n]


def _elimination_mask(n: IntArray, tox: IntArray, target: float, cutoff_eli: float) -> np.ndarray:
    hit = (n >= 3) & _exceeds(target, cutoff_eli, tox, n)
    return np.logical_or.accumulate(hit, axis=-1)


def boin_select(
    n: IntArray,
    tox: IntArray,
    *,
    target: float,
    cutoff_eli: float = 0.95,
    extrasafe: bool = False,
    offset: float = 0.05,
    bound_mtd: bool = False,
    p_tox: float | None = None,
) -> IntArray:
    """Final MTD as ``BOIN::select.mtd`` (0-based index or :data:`NO_DOSE`), batched.

    Doses treated and not eliminated are fitted by weighted isotonic regression
    of :math:`\\hat p = (y + 0.05)/(n + 0.1)` with weights the inverse
    Beta(y + 0.05, n - y + 0.05) variance; the MTD is the dose whose estimate
    is closest to the target. Ties (pooled doses share one estimate) follow the
    package's documented rule, written out instead of its ``+ k * 1e-10``
    jitter: among equal estimates below the target the highest dose wins,
    at or above it the lowest; equidistant doses either side of the target
    resolve to the lower one. With ``bound_mtd`` only doses whose estimate is
    at most :math:`\\lambda_d` qualify.
    """
    n = np.atleast_2d(np.asarray(n, np.int64))
    tox = np.atleast_2d(np.asarray(tox, np.int64))
    s, dn = n.shape
    elim = _elimination_mask(n, tox, target, cutoff_eli)
    if extrasafe:
        stop1 = (n[:, 0] >= 3) & _exceeds(target, cutoff_eli - offset, tox[:, 0], n[:, 0])
        elim = elim | stop1[:, None]
    adm = (n > 0) & ~elim
    bound = BoinConfig(target=target, n_doses=1, p_tox=p_tox).lambda_d if bound_mtd else None
    best = isotonic_mtd(n, tox, adm, target=target, bound=bound)
    return np.where(elim[:, 0], NO_DOSE, best)


def isotonic_mtd(n: IntArray, tox: IntArray, admissible: np.ndarray, *, target: float,
                 bound: float | None = None) -> IntArray:
    """The admissible dose whose isotonic DLT estimate is closest to the target (``select.mtd``), batched.

    Weighted PAVA of :math:`(y + 0.05)/(n + 0.1)` over the ``admissible`` doses
    (:func:`boin_estimates`); ties as :func:`boin_select` describes them; with
    ``bound`` only doses whose estimate is at most ``bound`` qualify.
    :data:`NO_DOSE` where no dose qualifies. Shared by BOIN and the
    decision-table designs (:mod:`escalade.design.decision_table`).
    """
    n = np.atleast_2d(np.asarray(n, np.int64))
    tox = np.atleast_2d(np.asarray(tox, np.int64))
    adm = np.atleast_2d(np.asarray(admissible, bool)) & (n > 0)
    s, dn = n.shape
    est = boin_estimates(n, tox, adm, intervals=False).phat
    if bound is not None:
        adm = adm & (est <= bound)
    dist = np.abs(est - target)
    below = est < target
    best = np.full(s, NO_DOSE, np.int64)
    best_dist = np.full(s, np.inf)
    best_below = np.zeros(s, bool)
    for j in range(dn):  # scan upwards; decide whether dose j beats the best so far
        dj = dist[:, j]
        better = dj < best_dist
        tie = dj == best_dist
        # tie with a lower dose: a higher dose wins only when both are below the target
        tie_win = tie & below[:, j] & best_below
        take = adm[:, j] & (better | tie_win)
        best = np.where(take, j, best)
        best_dist = np.where(take, dj, best_dist)
        best_below = np.where(take, below[:, j], best_below)
    return np.where(adm.any(axis=1), best, NO_DOSE)


@dataclass(frozen=True, slots=True)
class BoinEstimates:
    """Isotonic estimates of ``select.mtd`` (NaN where a dose is left out)."""

    phat: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    p_overdose: np.ndarray


def boin_estimates(
    n: IntArray, tox: IntArray, mask: np.ndarray | None = None, *, target: float | None = None,
    alpha: float = 0.05, intervals: bool = True,
) -> BoinEstimates:
    """Isotonic estimates as ``select.mtd`` computes them, over the ``mask`` doses.

    ``phat`` is the weighted PAVA of :math:`(y + 0.05)/(n + 0.1)`; the credible
    limits are PAVA (same weights) of the Beta(y + 0.05, n - y + 0.05)
    quantiles; ``p_overdose`` is the unit-weight PAVA of
    :math:`\\Pr(p > \\phi)` under that Beta (needs ``target``). ``intervals=False``
    skips the limits and ``p_overdose`` (NaN), which selection does not need.
    """
    n = np.asarray(n, float)
    y = np.asarray(tox, float)
    mask = (n > 0) if mask is None else np.asarray(mask, bool)
    a = y + 0.05
    bb = n - y + 0.05
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = a / (n + 0.1)
        var = a * bb / ((n + 0.1) ** 2 * (n + 1.1))
        w = np.where(mask, 1.0 / var, 0.0)
    fit = isotonic_regression(phat, w, mask)
    if not intervals:
        nan = np.full_like(fit, np.nan)
        return BoinEstimates(fit, nan, nan, nan)
    lo = isotonic_regression(stats.beta.ppf(alpha / 2, a, bb), w, mask)
    hi = isotonic_regression(stats.beta.ppf(1 - alpha / 2, a, bb), w, mask)
    if target is None:
        po = np.full_like(fit, np.nan)
    else:
        po = isotonic_regression(stats.beta.sf(target, a, bb), None, mask)
    return BoinEstimates(fit, lo, hi, po)


@dataclass(frozen=True, slots=True)
class BoinExplanation(ExplanationMixin):
    """What a BOIN decision rests on, for one state (doses 1-based).

    Attributes
    ----------
    target, lambda_e, lambda_d
        Target and the escalation / de-escalation boundaries (Liu & Yuan 2015).
    current_dose, n_at_current, dlt_at_current
        The last cohort's dose (1-based) and the data there.
    escalate_if_le, deescalate_if_ge, eliminate_if_ge
        DLT counts at the current n for each action (None where undefined:
        no patient yet; elimination needs n >= 3).
    eliminated, p_isotonic, ci_lower, ci_upper, p_overdose
        Per dose: elimination, and ``select.mtd``'s isotonic estimates.
    """

    target: float
    lambda_e: float
    lambda_d: float
    current_dose: int
    n_at_current: int
    dlt_at_current: int
    escalate_if_le: int | None
    deescalate_if_ge: int | None
    eliminate_if_ge: int | None
    eliminated: tuple[bool, ...]
    p_isotonic: tuple[float, ...]
    ci_lower: tuple[float, ...]
    ci_upper: tuple[float, ...]
    p_overdose: tuple[float, ...]
    rule: str = ("BOIN (Liu & Yuan 2015): escalate if DLTs <= escalate_if_le, de-escalate if DLTs >= "
                 "deescalate_if_ge, eliminate this and higher doses if DLTs >= eliminate_if_ge (n >= 3)")

    def table(self) -> dict[str, list]:
        return {"eliminated": list(self.eliminated), "p_isotonic": list(self.p_isotonic),
                "ci_lower": list(self.ci_lower), "ci_upper": list(self.ci_upper),
                "p_overdose": list(self.p_overdose)}

    def details(self) -> dict[str, object]:
        return {"rule": self.rule, "target": self.target, "lambda_e": self.lambda_e, "lambda_d": self.lambda_d,
                "current_dose": self.current_dose, "n_at_current": self.n_at_current,
                "dlt_at_current": self.dlt_at_current, "escalate_if_le": self.escalate_if_le,
                "deescalate_if_ge": self.deescalate_if_ge, "eliminate_if_ge": self.eliminate_if_ge}


def boin_explanation(design: "BoinDesign", states: States) -> BoinExplanation:
    """:class:`BoinExplanation` of the first state of ``states`` under ``design`` (BOIN or TITE-BOIN)."""
    c, b = design.config, design.boundaries
    d = int(states.current[0])
    m = int(states.n[0, d])
    mm = min(m, b.n_max)
    elim_at = int(b.eliminate[mm])
    n = states.n[0]
    est = boin_estimates(n, states.tox[0], n > 0, target=c.target)
    elim = design.eliminated(states.take(slice(0, 1)))[0]
    return BoinExplanation(
        target=float(c.target), lambda_e=float(b.lambda_e), lambda_d=float(b.lambda_d),
        current_dose=d + 1, n_at_current=m, dlt_at_current=int(states.tox[0, d]),
        escalate_if_le=int(b.escalate[mm]) if m else None,
        deescalate_if_ge=int(b.deescalate[mm]) if m else None,
        eliminate_if_ge=elim_at if (m >= 3 and elim_at <= m) else None,
        eliminated=tuple(bool(v) for v in elim), p_isotonic=tuple(float(v) for v in est.phat),
        ci_lower=tuple(float(v) for v in est.ci_lower), ci_upper=tuple(float(v) for v in est.ci_upper),
        p_overdose=tuple(float(v) for v in est.p_overdose))


ENTRY = DesignEntry(
    kind="boin", name="Bayesian optimal interval (BOIN) design", config=BoinConfig, design=BoinDesign,
    explanation=BoinExplanation, methods="escalade.reports.methods_boin:boin_methods",
    citation="Liu S, Yuan Y (2015). Bayesian optimal interval designs for phase I clinical trials. "
             "J R Stat Soc C 64:507-523.")
