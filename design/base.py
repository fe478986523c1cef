"""The design interface: batched trial states, decisions and the Design protocol.

A dose-finding rule is a pure function of the trial's *sufficient statistics*
(DESIGN.md section 2). For binary outcomes these are, per dose ``d``:

* ``n[d]``    patients treated,
* ``tox[d]``  patients with a dose-limiting toxicity (DLT),
* ``eff[d]``  responders,
* ``both[d]`` patients with a DLT *and* a response (so the four joint cells
  tox x eff of phase I/II designs are ``both``, ``tox - both``, ``eff - both``
  and ``n - tox - eff + both``),

plus a little path state: the dose of the last cohort (``current``) and the
size and DLT count of the last cohort (``last_n``, ``last_tox``; needed by the
coherence rule of Cheung 2005).

Everything is *batched*: a :class:`States` holds ``S`` states as arrays with
doses on the last axis, and a design decides all of them at once. The engine
memoises by state (:meth:`States.keys`), so a design sees each distinct state
once per batch.
"""

from __future__ import annotations

import enum
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ConfigDesign",
    "DecidesOnFollowUp",
    "DesignEntry",
    "Explanation",
    "ExplanationMixin",
    "FollowUp",
    "TiteDecisions",
    "TiteExplanation",
    "decides_on_followup",
    "is_graded",
    "NO_DOSE",
    "StopReason",
    "States",
    "Decisions",
    "Design",
    "IntArray",
    "BoolArray",
    "FloatArray",
    "TrueOptimum",
    "unique_rows",
]

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

#: Index meaning "no dose" in arrays of selected or next doses. Dose indices are
#: 0-based internally and printed 1-based; files and reports write "none".
NO_DOSE: Final[int] = -1


class StopReason(enum.IntEnum):
    """Why a trial ended (or :attr:`CONTINUE` while it goes on).

    The value is what is stored in arrays; :attr:`label` is what reports print
    and :attr:`early` says whether the trial stopped before its planned end.
    """

    CONTINUE = 0
    MAX_SAMPLE_SIZE = 1
    ALL_TOXIC = 2
    N_AT_DOSE = 3
    NO_ACCEPTABLE = 4
    RULE_COMPLETE = 5
    MAX_COHORTS = 6

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def early(self) -> bool:
        """True for a stop before the planned end (an algorithmic design such as
        3+3 finishing its rule is a planned end, not an early stop)."""
        return self not in (StopReason.CONTINUE, StopReason.MAX_SAMPLE_SIZE, StopReason.MAX_COHORTS,
                            StopReason.RULE_COMPLETE)


_LABELS: Final[dict[StopReason, str]] = {
    StopReason.CONTINUE: "continuing",
    StopReason.MAX_SAMPLE_SIZE: "max sample size",
    StopReason.ALL_TOXIC: "all doses too toxic",
    StopReason.N_AT_DOSE: "n at dose reached",
    StopReason.NO_ACCEPTABLE: "no acceptable dose",
    StopReason.RULE_COMPLETE: "design rule complete",
    StopReason.MAX_COHORTS: "max cohorts",
}


def _as_int_matrix(a: Any, name: str) -> IntArray:
    arr = np.asarray(a, dtype=np.int64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"States.{name} must be 2-D (states, doses); got shape {arr.shape}")
    return arr


_HASH_MULT = np.random.default_rng(20240607).integers(1, 2**62, size=256, dtype=np.int64) | 1


def unique_rows(a: IntArray) -> tuple[IntArray, IntArray]:
    """``first, inverse`` with ``a[first][inverse] == a`` over distinct rows (fast path: 64-bit row hash).

    The hash is checked against the rows; on a collision the exact (slower)
    ``np.unique(axis=0)`` is used, so the result never depends on luck.
    """
    a = np.ascontiguousarray(a, np.int64)
    if a.shape[0] < 2:
        idx = np.arange(a.shape[0])
        return idx, idx
    if a.shape[1] <= _HASH_MULT.size:
        key = a @ _HASH_MULT[: a.shape[1]]  # wraps modulo 2**64
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        if np.array_equal(a[first][inverse.reshape(-1)], a):
            return first, inverse.reshape(-1)
    _, first, inverse = np.unique(a, axis=0, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


@dataclass(frozen=True, slots=True, eq=False)
class States:
    """A batch of ``S`` trial states on ``D`` doses (doses on the last axis).

    Attributes
    ----------
    n, tox, eff, both
        ``(S, D)`` integer counts: patients, DLTs, responders, DLT-and-response.
    current
        ``(S,)`` 0-based dose of the last cohort (the start dose before any).
    last_n, last_tox
        ``(S,)`` size and DLT count of the last cohort (0 before any).
    tox_score, eff_score
        ``(S, D)`` float64 per-dose *sums* of the patients' toxicity and
        efficacy scores, for graded designs (:func:`is_graded`: gBOIN's
        normalised equivalent toxicity score, gBOIN-ET's scores); None when
        no design of the run uses them. The engine adds each cohort's
        :meth:`patient_scores <escalade.design.gboin.GboinDesign.patient_scores>`
        to them; designs that ignore them are unchanged.
    """

    n: IntArray
    tox: IntArray
    eff: IntArray
    both: IntArray
    current: IntArray
    last_n: IntArray
    last_tox: IntArray
    tox_score: FloatArray | None = None
    eff_score: FloatArray | None = None

    def __post_init__(self) -> None:
        for name in ("tox_score", "eff_score"):
            v = getattr(self, name)
            if v is None:
                continue
            a = np.asarray(v, np.float64)
            if a.ndim == 1:
                a = a[None, :]
            if a.shape != self.n.shape:
                raise ValueError(f"States.{name} must have the shape of n {self.n.shape} (states, doses); "
                                 f"got {a.shape}")
            object.__setattr__(self, name, a)

    @classmethod
    def from_counts(
        cls,
        n: Any,
        tox: Any,
        eff: Any | None = None,
        both: Any | None = None,
        *,
        current: Any | None = None,
        last_n: Any | None = None,
        last_tox: Any | None = None,
        tox_score: Any | None = None,
        eff_score: Any | None = None,
    ) -> "States":
        """Build states from per-dose counts (1-D for one state, 2-D for a batch).

        ``current`` defaults to the highest treated dose (0 when none is);
        ``last_n``/``last_tox`` default to 0; ``tox_score``/``eff_score``
        (per-dose score sums of graded designs) to None.
        """
        n_ = _as_int_matrix(n, "n")
        tox_ = _as_int_matrix(tox, "tox")
        eff_ = np.zeros_like(n_) if eff is None else _as_int_matrix(eff, "eff")
        both_ = np.zeros_like(n_) if both is None else _as_int_matrix(both, "both")
        if not (n_.shape == tox_.shape == eff_.shape == both_.shape):
            raise ValueError("States: n, tox, eff and both must have the same shape")
        s = n_.shape[0]
        if current is None:
            treated = n_ > 0
            top = np.where(treated.any(axis=1), n_.shape[1] - 1 - np.argmax(treated[:, ::-1], axis=1), 0)
            current_ = top.astype(np.int64)
        else:
            current_ = np.broadcast_to(np.asarray(current, dtype=np.int64), (s,)).copy()
        ln = np.zeros(s, np.int64) if last_n is None else np.broadcast_to(np.asarray(last_n, np.int64), (s,)).copy()
        lt = np.zeros(s, np.int64) if last_tox is None else np.broadcast_to(np.asarray(last_tox, np.int64), (s,)).copy()
        return cls(n_, tox_, eff_, both_, current_, ln, lt, tox_score, eff_score)

    @classmethod
    def empty(cls, n_states: int, n_doses: int, start: int | IntArray = 0) -> "States":
        """``n_states`` trials with no patient yet, positioned at ``start``."""
        z = np.zeros((n_states, n_doses), np.int64)
        cur = np.broadcast_to(np.asarray(start, np.int64), (n_states,)).copy()
        zs = np.zeros(n_states, np.int64)
        return cls(z, z.copy(), z.copy(), z.copy(), cur, zs, zs.copy())

    @property
    def n_states(self) -> int:
        return int(self.n.shape[0])

    @property
    def n_doses(self) -> int:
        return int(self.n.shape[1])

    @property
    def total_n(self) -> IntArray:
        return self.n.sum(axis=1)

    def at_current(self, a: IntArray) -> IntArray:
        """Pick ``a[s, current[s]]`` for every state."""
        return np.take_along_axis(a, self.current[:, None], axis=1)[:, 0]

    def take(self, index: Any) -> "States":
        """Sub-batch (fancy or boolean index on the state axis); score fields follow."""
        return States(
            self.n[index], self.tox[index], self.eff[index], self.both[index],
            self.current[index], self.last_n[index], self.last_tox[index],
            None if self.tox_score is None else self.tox_score[index],
            None if self.eff_score is None else self.eff_score[index],
        )

    @classmethod
    def concat(cls, parts: Sequence["States"]) -> "States":
        """One batch from several (in order); a score field is kept when every part has it."""
        def cat(name: str) -> Any:
            vals = [getattr(p, name) for p in parts]
            return None if any(v is None for v in vals) else np.concatenate(vals)
        return cls(*(cat(f.name) for f in dataclasses.fields(cls)))

    def _score_bits(self) -> IntArray | None:
        """The score fields' exact bit patterns as int64 columns (None when there are none)."""
        cols = [np.ascontiguousarray(v, np.float64).view(np.int64)
                for v in (self.tox_score, self.eff_score) if v is not None]
        return np.concatenate(cols, axis=1) if cols else None

    def matrix(self) -> IntArray:
        """All fields side by side as one ``(S, 4 D + 3)`` integer matrix."""
        return np.concatenate(
            [self.n, self.tox, self.eff, self.both,
             self.current[:, None], self.last_n[:, None], self.last_tox[:, None]],
            axis=1,
        )

    @classmethod
    def from_matrix(cls, m: IntArray, n_doses: int) -> "States":
        d = n_doses
        m = np.asarray(m, np.int64)
        return cls(m[:, :d], m[:, d:2 * d], m[:, 2 * d:3 * d], m[:, 3 * d:4 * d],
                   m[:, 4 * d], m[:, 4 * d + 1], m[:, 4 * d + 2])

    def unique(self, fields: str = "all") -> tuple["States", IntArray]:
        """Distinct states and the inverse index (``self == uniq.take(inverse)``).

        ``fields="counts"`` ignores the path state except ``current`` (for rules
        that do not use the last cohort); the default keys on everything.
        """
        m = self.matrix()
        if fields == "counts":
            d = self.n_doses
            m = m[:, : 4 * d + 1]
        bits = self._score_bits()
        if bits is not None:  # graded designs: equal states have equal score sums, bit for bit
            m = np.concatenate([m, bits], axis=1)
        first, inverse = unique_rows(m)
        return self.take(first), inverse


@dataclass(frozen=True, slots=True, eq=False)
class Decisions:
    """What to do next for each state of a batch.

    Attributes
    ----------
    dose
        ``(S,)`` 0-based dose for the next cohort (:data:`NO_DOSE` when stopping).
    stop
        ``(S,)`` True where the trial stops now.
    reason
        ``(S,)`` :class:`StopReason` values (``CONTINUE`` where not stopping).
    cohort_size
        ``(S,)`` size of the next cohort (ignored where stopping).
    """

    dose: IntArray
    stop: BoolArray
    reason: NDArray[np.int8]
    cohort_size: IntArray

    @classmethod
    def go(cls, dose: IntArray, cohort_size: int | IntArray) -> "Decisions":
        dose = np.asarray(dose, np.int64)
        s = dose.shape[0]
        return cls(
            dose,
            np.zeros(s, bool),
            np.full(s, StopReason.CONTINUE, np.int8),
            np.broadcast_to(np.asarray(cohort_size, np.int64), (s,)).copy(),
        )

    def with_stop(self, mask: BoolArray, reason: StopReason) -> "Decisions":
        """Stop where ``mask`` holds and the state is not already stopped."""
        new = mask & ~self.stop
        return Decisions(
            np.where(new, NO_DOSE, self.dose),
            self.stop | new,
            np.where(new, np.int8(reason), self.reason).astype(np.int8),
            self.cohort_size,
        )

    def take(self, index: Any) -> "Decisions":
        return Decisions(self.dose[index], self.stop[index], self.reason[index], self.cohort_size[index])

    @property
    def n_states(self) -> int:
        return int(self.dose.shape[0])


@dataclass(frozen=True, slots=True)
class TrueOptimum:
    """A phase I/II design's optimal dose under *true* curves (what its objective would pick knowing them).

    A design with an objective other than the MTD (EffTox's utility, BOIN12's
    utility) provides ``true_optimum(p_tox, p_eff, p_both=None) -> TrueOptimum``;
    the simulator scores the design's selections against :attr:`dose`, so that
    each design is judged by its own objective and nothing outside ``design/``
    needs to know how that objective is computed.

    Attributes
    ----------
    dose
        0-based optimal dose, :data:`NO_DOSE` when no dose is eligible.
    value
        The objective per dose (e.g. the true utility).
    eligible
        Per dose: does the dose meet the design's own acceptability hurdles?
    objective
        Short name of the objective, e.g. ``"EffTox utility"``.
    rule
        One sentence: which doses are eligible and what is maximised (ties).
    """

    dose: int
    value: tuple[float, ...]
    eligible: tuple[bool, ...]
    objective: str
    rule: str


@runtime_checkable
class Design(Protocol):
    """What every dose-finding design provides (3+3, BOIN, CRM, EffTox, ...).

    A design is a frozen object holding a frozen config; both methods are pure
    functions of the batch of states they are given.

    Attributes
    ----------
    kind
        Registry name, e.g. ``"boin"``.
    config
        The frozen configuration dataclass (every parameter, defaults filled).
    n_doses, max_n
        Number of dose levels; maximum sample size (the engine ends a trial
        when it is reached, before asking :meth:`decide`).
    enumerable
        True when the trial's course is a function of the :class:`States`
        only, so that exact enumeration (:mod:`escalade.simulations.exact`)
        and dose paths are valid. A design that decides on follow-up times
        (:class:`DecidesOnFollowUp`) is not enumerable; whether a design runs
        in the time-aware engine is :func:`decides_on_followup`, a separate
        question.
    uses_efficacy
        True when decisions depend on responses (phase I/II designs).
    memoise
        True when a decision is costly enough that the engine should decide
        each distinct state once (BOIN and 3+3 are table look-ups: False).
    state_fields
        ``"counts"`` when neither ``decide`` nor ``select`` reads the last
        cohort (``last_n``, ``last_tox``), so that exact enumeration may merge
        states that differ only there; ``"all"`` otherwise.

    A design that decides on graded outcomes also sets the class attribute
    ``graded = True`` (default False, :class:`ConfigDesign`; test with
    :func:`is_graded`) and provides ``patient_scores(grades, response,
    categories) -> (tox_score, eff_score)``: per patient, from the grade 0-5
    of each adverse-event type (``grades[type]``, int8 ``(m,)``) and the index
    of the response category (int8 ``(m,)``, into ``categories``, best
    first), two float64 ``(m,)`` arrays; it raises
    :class:`~escalade.design.errors.DesignError` when its weights name a type
    or category the scenario lacks. The engine adds the scores per dose to
    :attr:`States.tox_score` / :attr:`States.eff_score`.
    """

    kind: ClassVar[str]
    enumerable: ClassVar[bool]
    uses_efficacy: ClassVar[bool]
    memoise: ClassVar[bool]
    state_fields: str

    @property
    def config(self) -> Any: ...

    @property
    def n_doses(self) -> int: ...

    @property
    def max_n(self) -> int: ...

    def start(self) -> tuple[int, int]:
        """``(dose, cohort_size)`` of the first cohort (0-based dose)."""
        ...

    def decide(self, states: States) -> Decisions:
        """Next dose (or stop, with its reason) for every state of the batch."""
        ...

    def select(self, states: States) -> IntArray:
        """Final recommended dose (0-based) or :data:`NO_DOSE` for every state."""
        ...

    def explain(self, states: States, **options: Any) -> "Explanation":
        """What the decision for one state rests on (estimates per dose, rule quantities).

        Conduct mode (``escalade next-dose``) prints it; ``options`` are the
        design's own (e.g. EffTox's ``mcmc=True``).
        """
        ...


@dataclass(frozen=True, slots=True, eq=False)
class FollowUp:
    """Per-patient data of ``S`` trials at one decision time (patients on the last axis).

    Attributes
    ----------
    dose
        ``(S, N)`` 0-based dose of each patient, :data:`~escalade.design.base.NO_DOSE`
        for an empty slot (trials with fewer patients are padded).
    dlt
        ``(S, N)`` True where the patient's DLT has been observed by now.
    fraction
        ``(S, N)`` follow-up as a fraction of the DLT window, in ``[0, 1]``: time
        from dosing to the DLT for a patient with an observed DLT, else the time
        since dosing, capped at 1 (``dfcrm``'s ``followup / obswin``).
    eff, eff_fraction
        Optional, for designs with late-onset efficacy (TITE-BOIN12): ``(S, N)``
        True where a response has been observed by now, and the follow-up as a
        fraction of the efficacy assessment window (capped at 1; for an observed
        response, the time to it). ``None`` when the caller has no efficacy
        follow-up (toxicity-only designs).
    """

    dose: IntArray
    dlt: BoolArray
    fraction: FloatArray
    eff: BoolArray | None = None
    eff_fraction: FloatArray | None = None

    def __post_init__(self) -> None:
        dose = np.atleast_2d(np.asarray(self.dose, np.int64))
        dlt = np.atleast_2d(np.asarray(self.dlt, bool))
        frac = np.atleast_2d(np.asarray(self.fraction, float))
        if not dose.shape == dlt.shape == frac.shape:
            raise ValueError(f"FollowUp: dose, dlt and fraction need one shape; got {dose.shape}, "
                             f"{dlt.shape}, {frac.shape}")
        empty = dose < 0
        if np.any(dlt & empty):
            raise ValueError("FollowUp: a DLT is recorded in an empty patient slot (dose = NO_DOSE)")
        if np.any(~empty & ~((frac >= 0) & (frac <= 1))):
            raise ValueError("FollowUp.fraction must lie in [0, 1] (follow-up / DLT window, capped at 1)")
        object.__setattr__(self, "dose", dose)
        object.__setattr__(self, "dlt", dlt)
        object.__setattr__(self, "fraction", np.where(empty, 0.0, frac))
        if (self.eff is None) != (self.eff_fraction is None):
            raise ValueError("FollowUp: give both eff and eff_fraction (efficacy follow-up) or neither")
        if self.eff is not None:
            eff = np.atleast_2d(np.asarray(self.eff, bool))
            efr = np.atleast_2d(np.asarray(self.eff_fraction, float))
            if not eff.shape == efr.shape == dose.shape:
                raise ValueError(f"FollowUp: eff and eff_fraction need the shape of dose {dose.shape}; got "
                                 f"{eff.shape}, {efr.shape}")
            if np.any(eff & empty):
                raise ValueError("FollowUp: a response is recorded in an empty patient slot (dose = NO_DOSE)")
            if np.any(~empty & ~((efr >= 0) & (efr <= 1))):
                raise ValueError("FollowUp.eff_fraction must lie in [0, 1] (follow-up / efficacy window, capped at 1)")
            object.__setattr__(self, "eff", eff)
            object.__setattr__(self, "eff_fraction", np.where(empty, 0.0, efr))

    @classmethod
    def one(cls, dose: Any, dlt: Any, followup: Any, window: float) -> "FollowUp":
        """One trial from 0-based doses, DLT indicators and follow-up times in the window's unit."""
        f = np.minimum(np.asarray(followup, float) / float(window), 1.0)
        return cls(np.asarray(dose, np.int64)[None, :], np.asarray(dlt, bool)[None, :], f[None, :])

    @property
    def n_states(self) -> int:
        return int(self.dose.shape[0])

    @property
    def treated(self) -> BoolArray:
        return self.dose >= 0

    @property
    def pending(self) -> BoolArray:
        """Treated, no DLT observed, window not complete."""
        return self.treated & ~self.dlt & (self.fraction < 1.0)

    @property
    def pending_eff(self) -> BoolArray:
        """Treated, no response observed, efficacy window not complete (all False without efficacy follow-up)."""
        if self.eff is None or self.eff_fraction is None:
            return np.zeros(self.dose.shape, bool)
        return self.treated & ~self.eff & (self.eff_fraction < 1.0)

    def take(self, index: Any) -> "FollowUp":
        if self.eff is None or self.eff_fraction is None:
            return FollowUp(self.dose[index], self.dlt[index], self.fraction[index])
        return FollowUp(self.dose[index], self.dlt[index], self.fraction[index], self.eff[index],
                        self.eff_fraction[index])


@dataclass(frozen=True, slots=True, eq=False)
class TiteExplanation:
    """What a decision on pending data rests on, for one trial (conduct mode).

    ``weights`` ``(N,)``: the weight the design gives each patient (1 for a
    complete outcome or an observed DLT). ``per_dose``: columns with one value
    per dose (e.g. the weighted posterior's ``ptox``), or empty. ``details``:
    scalar quantities, ``rule`` the rule in one sentence.
    """

    weights: FloatArray
    rule: str
    details: dict[str, Any] = field(default_factory=dict)
    per_dose: dict[str, Any] = field(default_factory=dict)

    def table(self) -> dict[str, Any]:
        return dict(self.per_dose)



@dataclass(frozen=True, slots=True, eq=False)
class TiteDecisions:
    """Decisions on pending data: what :meth:`DecidesOnFollowUp.decide_tite` returns.

    ``suspend[s]`` True means: enrol nobody now, wait for more follow-up and
    ask again (``decisions`` is ignored there).
    """

    decisions: Decisions
    suspend: BoolArray

    @property
    def n_states(self) -> int:
        return self.decisions.n_states


@runtime_checkable
class DecidesOnFollowUp(Protocol):
    """A design that decides on *pending* data: follow-up times, not counts alone.

    Such a design (TITE-CRM, TITE-BOIN) runs in the time-aware engine
    (:mod:`escalade.simulations.timed`), which calls :meth:`decide_tite` at each
    arrival with every patient's follow-up; :meth:`Design.decide` remains its
    decision on complete data. Test with :func:`decides_on_followup`.
    """

    def decide_tite(self, states: States, followup: FollowUp) -> TiteDecisions:
        """Decisions, or a suspension of accrual, given the follow-up so far."""
        ...


def is_graded(design: Any) -> bool:
    """True when ``design`` decides on graded outcomes (its class sets ``graded = True``).

    A graded design provides ``patient_scores(grades, response, categories)``
    giving each patient's (toxicity score, efficacy score); the engine adds
    them per dose to :attr:`States.tox_score` / :attr:`States.eff_score`.
    """
    return bool(getattr(design, "graded", False))


def decides_on_followup(design: Any) -> bool:
    """True when ``design`` decides on follow-up times (:class:`DecidesOnFollowUp`)."""
    return isinstance(design, DecidesOnFollowUp)


@runtime_checkable
class Explanation(Protocol):
    """What :meth:`Design.explain` returns: per-dose columns and the rule's quantities.

    :meth:`table` has one row per dose (column name -> values, doses in
    order); :meth:`details` holds scalars (numbers, text; a ``"rule"`` entry
    states the rule in words). Conduct mode, paths and reports read these two
    methods only, never a design's own fields.
    """

    def table(self) -> Mapping[str, Sequence[Any]]: ...

    def details(self) -> Mapping[str, Any]: ...


class ExplanationMixin:
    """Default :meth:`Explanation.details` of a dataclass explanation: its float and text fields.

    Integer fields are left out (a design's dose indices are 0-based and would
    read wrongly next to 1-based doses); override :meth:`details` to show them.
    """

    __slots__ = ()

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, (float, str)) and not isinstance(v, bool):
                out[f.name] = v
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DesignEntry:
    """How a design describes itself: one entry per design, declared in its own module.

    :mod:`escalade.design.registry` lists the entries in one table; the
    engine, exact enumeration, paths, conduct mode, reports and ``escalade
    designs`` find everything about a design here, never by its name.

    Attributes
    ----------
    kind
        Registry name used in study files (``design: boin``), lower case.
    name
        Full name for people, e.g. ``"Bayesian optimal interval (BOIN)"``.
    config
        The frozen configuration dataclass; its numpydoc ``Attributes`` section
        gives each parameter's meaning (``escalade designs`` prints it).
    design
        The design class, built as ``design(config)``.
    explanation
        The type :meth:`Design.explain` returns.
    methods
        ``"module:function"`` of the report's methods-text writer (design/
        never imports reports/, so the writer is named, and the reports layer
        imports it); None for a design that uses the generic parameter list
        on purpose.
    citation
        The paper that defines the design (one line).
    aliases
        Other accepted spellings of ``kind``.
    params_documented_by
        Another config class whose ``Attributes`` section documents the
        parameters this config shares with it (TITE-CRM's are the CRM's).
    path_params
        Parameters that name a file (e.g. a protocol's decision table): the
        study loader resolves a relative path against the study file's folder,
        so a study and its files move together.
    """

    kind: str
    name: str
    config: type
    design: type
    explanation: type
    methods: str | None
    citation: str
    aliases: tuple[str, ...] = ()
    params_documented_by: type | None = None
    path_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind != self.kind.strip().lower() or not self.kind:
            raise ValueError(f"DesignEntry.kind must be a non-empty lower-case name; got {self.kind!r}")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"DesignEntry({self.kind!r}).config must be a dataclass; got {self.config!r}")
        if self.methods is not None and ":" not in self.methods:
            raise ValueError(f"DesignEntry({self.kind!r}).methods must read 'module:function'; got {self.methods!r}")


class ConfigDesign:
    """Mixin for designs whose frozen ``config`` has ``n_doses``, ``max_n``,
    ``start_dose`` and ``cohort_size``: the :class:`Design` properties read it,
    and the first cohort of ``cohort_size`` goes to ``start_dose``."""

    __slots__ = ()
    config: Any
    #: True for designs deciding on graded toxicities / ordinal responses
    #: (gBOIN, gBOIN-ET); such a design defines ``patient_scores`` (see
    #: :func:`is_graded`).
    graded: ClassVar[bool] = False

    @property
    def n_doses(self) -> int:
        return int(self.config.n_doses)

    @property
    def max_n(self) -> int:
        return int(self.config.max_n)

    def start(self) -> tuple[int, int]:
        return int(self.config.start_dose), int(self.config.cohort_size)
