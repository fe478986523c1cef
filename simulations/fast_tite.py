"""Compiled calendar-time engine for TITE-BOIN (a fast path of :func:`~escalade.simulations.timed.run_timed_trials`).

The time-aware engine (:mod:`escalade.simulations.timed`) runs TITE-BOIN's
pending-data loop with a few dozen numpy passes per step over all trials of a
chunk; per trial the work is a scan of at most ``max_n`` patients, so numpy's
per-call overhead dominates. Here one numba kernel
(:func:`~escalade.simulations.fast_tite_kernels.run_tite`) runs the whole loop
(accrual, DLT onset, accrual suspensions, the sentinel rule, decisions on
pending data) and the BOIN kernel's final selection
(:func:`~escalade.simulations.fast_kernels.select_final`) picks the MTD.

Which designs qualify
---------------------
:func:`tite_plan` returns a plan only for
:class:`~escalade.design.tite_boin.TiteBoinDesign` (exact type) whose config
has no field beyond :data:`KNOWN_FIELDS` (or has it at its value in
:data:`~escalade.simulations.fast.OFF_FIELDS` / :data:`OFF_FIELDS`: no
backfill, no ``extrasafe``, no ``lowest_dose_safety``, ``no_skip`` and
``coherence`` off) and whose BOIN twin (``config.boin()``) the BOIN kernel
accepts (:func:`~escalade.simulations.fast.fast_plan`: the rules
:class:`~escalade.design.rules.DltGuard`,
:class:`~escalade.design.rules.DeescalationGuard`,
:class:`~escalade.design.rules.OverdoseControl`,
:class:`~escalade.design.rules.StopAtN`,
:class:`~escalade.design.rules.MinSampleSize`), with ``max_n <= 128``.
Every accrual process, onset distribution and the sentinel rule (staggering)
are supported. The engine takes the general path for CAR-T (graded) patients
and for backfill cohorts. Every threshold is tabulated from the design's own
functions (BOIN's boundaries, its elimination through
:meth:`~escalade.design.tite_boin.TiteBoinDesign.eliminated`, the rules'
``excluded``), and the calendar takes the general engine's terms
(:func:`~escalade.simulations.timed.arrival_days`' gaps, added in order as
``np.cumsum`` adds them; :func:`~escalade.simulations.timed.onset_fraction`
times the window), so the outcomes are the general engine's, array for array
(``tests/test_fast_tite.py``).

Order of the trials
-------------------
The trials of a chunk run one after the other (each one's data stay in the
cache). One quantity depends on the order in which the general engine visits
them: the standardized total follow-up time (STFT), which it sums with
``np.sum(axis=1)`` over rows padded to the widest trial asked at that step,
so numpy's pairwise summation groups the terms by that width. With at most two
pending terms every grouping gives the same bits; with three or more the last
bit can differ, which matters only for an imputed rate within
:data:`AMBIGUOUS_WITHIN` of a boundary. Such a chunk (none in practice) runs
again in lock-step, step by step across its trials as the general engine, with
its row widths.

Speed
-----
``bench/bench_tite.py``: 10,000 trials (5 doses, 10 cohorts of 3, Poisson
accrual of 4 a month, 28-day window) in 26 ms of CPU including the draws,
12x the general engine and 1.07x as fast as the C++ TITE engine of simFastBOIN
(measured side by side at load 1.2 on the shared 2-core machine; 1.0-1.27x at
load 5-7); the first call compiles in about 7 s of CPU (then numba's cache).

Draws
-----
:func:`run_fast_tite` reads the uniforms of
:class:`~escalade.simulations.patients.Patients` (the runner's path, where
the designs of a study share the patients), or, from
:func:`~escalade.simulations.timed.simulate_timed`, the latent normals of
:func:`draw_latent_timed`: the DLT stream as normals compared with
``ndtri(p)`` outside a narrow band (as :mod:`escalade.simulations.fast`), the
response stream only when some ``p_eff > 0``, and the onset and arrival
uniforms of :func:`~escalade.simulations.patients.draw_patients` (same
streams, blocks and order), drawn in blocks of 16 patients as the kernel
reads them (:func:`_draw_blocks`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import special

from escalade.design.base import NO_DOSE, Design, StopReason
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import BLOCK

if TYPE_CHECKING:
    from escalade.scenarios.study import Timing

__all__ = ["TitePlan", "tite_plan", "run_fast_tite", "simulate_fast_tite", "draw_latent_timed", "compile_tite_kernel",
           "KNOWN_FIELDS", "OFF_FIELDS", "AMBIGUOUS_WITHIN"]

log = logging.getLogger(__name__)

#: Most patients per trial the kernel takes: the STFT sum reproduces numpy's pairwise summation for rows of
#: up to 128 values (one block); longer trials run in the general engine.
_MAX_N = 128


def _known_fields() -> frozenset[str]:
    from escalade.simulations import fast

    return fast.KNOWN_FIELDS | {"max_pending", "deescalate_below_target"}


#: TITE-BOIN config fields the kernel knows the meaning of. A config with any other field (an option added
#: later) runs in the general engine until the kernel learns it.
KNOWN_FIELDS: frozenset[str] = _known_fields()

#: Options the kernel runs only when off (their value here); on, the design runs in the general engine.
OFF_FIELDS: dict[str, object] = {"backfill": None, "extrasafe": False, "lowest_dose_safety": None,
                                 "no_skip": "off", "coherence": "off"}


@dataclass(frozen=True, slots=True, eq=False)
class TitePlan:
    """Everything the kernel needs about one TITE-BOIN design (tables from the design's own functions).

    ``base`` is the BOIN kernel's plan of the design's BOIN twin (boundaries,
    rule tables, selection tables); ``elim_hit`` ``(max_n + 1, max_n + 1)``
    marks the ``(n, y)`` at which one dose meets the design's own elimination
    (:meth:`~escalade.design.tite_boin.TiteBoinDesign.eliminated`, before it
    spreads to higher doses), which decides whether an accrual suspension applies.
    """

    base: object  # escalade.simulations.fast.FastPlan
    start_dose: int
    start_size: int
    elim_hit: np.ndarray
    lambda_e: float
    lambda_d: float
    max_pending: float
    below_only: bool


def tite_plan(design: Design) -> TitePlan | None:
    """The kernel's plan for ``design``, or None when it must run in the general engine."""
    from escalade.design.tite_boin import TiteBoinDesign

    if type(design) is not TiteBoinDesign:  # exact type: a subclass may change any method
        return None
    try:
        return _PLANS[design.config]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover - an unhashable config value: no cache
        return _plan(design)
    if len(_PLANS) >= 32:
        _PLANS.clear()
    plan = _PLANS[design.config] = _plan(design)
    return plan


#: Plans by config (the design is a function of its config): the tables cost milliseconds, a chunk's run less.
_PLANS: dict[object, TitePlan | None] = {}


def _plan(design: Design) -> TitePlan | None:
    from escalade.design.base import States
    from escalade.design.boin import BoinDesign
    from escalade.simulations.fast import _BOIN, _grid, fast_plan

    c = design.config
    known = KNOWN_FIELDS
    for f in dataclasses.fields(c):
        if f.name in OFF_FIELDS:
            if getattr(c, f.name) != OFF_FIELDS[f.name]:
                return None
        elif f.name not in known:
            return None
    max_n = int(design.max_n)
    if max_n > _MAX_N or design.n_doses > 64:
        return None
    twin = BoinDesign(c.boin())
    if list(twin.rules) != list(design.rules):  # pragma: no cover - the design's rules are its twin's
        return None
    base = fast_plan(twin)
    if base is None or base.kind != _BOIN:
        return None
    b = design.boundaries
    if not (np.array_equal(base.esc, b.escalate) and np.array_equal(base.deesc, b.deescalate)):
        return None  # pragma: no cover - one boundary table
    n, y = _grid(max_n)
    st = States.from_counts(n[:, None], np.minimum(y, n)[:, None], current=0)
    hit = design.eliminated(st)[:, 0] & (y <= n)
    start_dose, start_size = design.start()
    return TitePlan(base=base, start_dose=int(start_dose), start_size=int(start_size),
                    elim_hit=hit.reshape(max_n + 1, max_n + 1).astype(np.uint8),
                    lambda_e=float(b.lambda_e), lambda_d=float(b.lambda_d), max_pending=float(c.max_pending),
                    below_only=not bool(c.deescalate_below_target))


def draw_latent_timed(seed: int, scenario: int, chunk: int, n_trials: int, max_patients: int,
                      association: float = 0.0, *, efficacy: bool = True
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """``(z_tox, z_eff, u_onset, u_arrival)`` of :func:`~escalade.simulations.patients.draw_patients`.

    ``draw_patients`` returns ``ndtr`` of the two normals and exactly these
    uniforms (the same streams, blocks and copula). ``efficacy=False`` skips
    the response stream (``z_eff`` is None).
    """
    z_t, z_e, u_onset, u_arrival = _draw_blocks(seed, scenario, chunk, n_trials, max_patients, association,
                                                efficacy=efficacy)
    return _unblock(z_t), None if z_e is None else _unblock(z_e), _unblock(u_onset), _unblock(u_arrival)


def _draw_blocks(seed: int, scenario: int, chunk: int, n_trials: int, max_patients: int, association: float = 0.0,
                 *, efficacy: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """:func:`draw_latent_timed` as the kernel reads it: ``(n_blocks, T, BLOCK)`` arrays, block ``b`` being
    the ``b``-th ``(T, BLOCK)`` draw of each stream (one call per stream: the same numbers in the same
    order; no concatenation)."""
    n_blocks = -(-max(max_patients, 1) // BLOCK)
    ss = np.random.SeedSequence(seed, spawn_key=(scenario, chunk))
    tox_ss, eff_ss, onset_ss = ss.spawn(3)
    (arrival_ss,) = ss.spawn(1)  # the fourth child, as draw_patients spawns it
    shape = (n_blocks, n_trials, BLOCK)
    z_t = np.random.default_rng(tox_ss).standard_normal(shape)
    z_e = None
    if efficacy:
        z_e = np.random.default_rng(eff_ss).standard_normal(shape)
        rho = float(association)
        if rho != 0.0:
            z_e = rho * z_t + np.sqrt(1.0 - rho * rho) * z_e
    u_onset = np.random.default_rng(onset_ss).random(shape)
    u_arrival = np.random.default_rng(arrival_ss).random(shape)
    return z_t, z_e, u_onset, u_arrival


def _unblock(a: np.ndarray) -> np.ndarray:
    """``(n_blocks, T, BLOCK)`` to ``(T, n_blocks * BLOCK)`` (patients along the last axis)."""
    nb, t, b = a.shape
    return np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(t, nb * b)


def _blocked(a: np.ndarray) -> np.ndarray:
    """``(T, N)`` to the kernel's ``(n_blocks, T, BLOCK)`` (``N`` padded with zeros to whole blocks)."""
    a = np.asarray(a, float)
    t, n = a.shape
    nb = -(-max(n, 1) // BLOCK)
    if n != nb * BLOCK:
        a = np.concatenate([a, np.zeros((t, nb * BLOCK - n))], axis=1)
    return np.ascontiguousarray(a.reshape(t, nb, BLOCK).transpose(1, 0, 2))


def _arrival_input(timing: "Timing", u_arrival: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(x, gaps)``: the kernel's arrival input. With ``gaps`` the gaps between arrivals, which it adds in order as
    ``np.cumsum`` does (Poisson and uniform accrual: :func:`~escalade.simulations.timed.arrival_days`'s
    terms), or the arrival days themselves (fixed, list); ``u_arrival`` and the result in blocks,
    ``(n_blocks, T, BLOCK)``."""
    from escalade.simulations.timed import DAYS_PER_MONTH, arrival_days

    gap = DAYS_PER_MONTH / float(timing.rate_per_month)
    if timing.accrual == "poisson":  # -log1p(-u) * gap, in place
        x = np.negative(u_arrival)
        np.log1p(x, out=x)
        np.negative(x, out=x)
        x *= gap
        return x, True
    if timing.accrual == "uniform":
        return 2.0 * u_arrival * gap, True
    return _blocked(arrival_days(timing, _unblock(u_arrival))), False


#: An imputed rate this close to a boundary could fall on either side depending on the order in which the
#: pending patients' follow-up fractions are summed (orders differ by < 1e-11 for up to 128 terms).
AMBIGUOUS_WITHIN = 1e-9

_KERNELS: dict[str, object] = {}


def compile_tite_kernel() -> dict[str, object]:
    """Import numba and compile (or load from numba's cache) the kernel and the BOIN selection; returns them."""
    if _KERNELS:
        return _KERNELS
    from escalade.simulations import fast_kernels, fast_tite_kernels

    _KERNELS["run"] = fast_tite_kernels.run_tite
    _KERNELS["select"] = fast_kernels.select_final
    return _KERNELS


@dataclass(frozen=True, slots=True, eq=False)
class _Outputs:
    """The kernel's per-trial outputs (rows of a chunk, or of a whole simulation)."""

    n: np.ndarray
    tox: np.ndarray
    eff: np.ndarray
    both: np.ndarray
    cohorts: np.ndarray
    current: np.ndarray
    reason: np.ndarray
    suspensions: np.ndarray
    duration: np.ndarray

    @classmethod
    def zeros(cls, t_count: int, n_doses: int) -> "_Outputs":
        counts = [np.zeros((t_count, n_doses), np.int64) for _ in range(4)]
        return cls(*counts, np.zeros(t_count, np.int64), np.zeros(t_count, np.int64), np.zeros(t_count, np.int8),
                   np.zeros(t_count, np.int64), np.zeros(t_count))

    def rows(self, start: int, stop: int) -> "_Outputs":
        return _Outputs(*(getattr(self, f.name)[start:stop] for f in dataclasses.fields(self)))

    def outcomes(self, plan: TitePlan) -> TrialOutcomes:
        """Final selection (BOIN's, then the final rules), and the trial outcomes."""
        b = plan.base
        t_count, nd = self.n.shape
        selected = compile_tite_kernel()["select"](  # type: ignore[operator]
            0, False, b.boin_elim, b.final_overdose, b.target, b.bound, self.n, self.tox, self.current)
        selected = np.where((selected >= 0) & (selected < nd), selected, NO_DOSE)
        # a trial stopped for toxicity recommends no dose (as _run_pending: no_dose_after_safety_stop)
        unsafe = (self.reason == int(StopReason.ALL_TOXIC)) | (self.reason == int(StopReason.NO_ACCEPTABLE))
        selected = np.where(unsafe, NO_DOSE, selected)
        return TrialOutcomes(selected, self.reason, self.n, self.tox, self.eff, self.both, self.cohorts,
                             np.full(t_count, 1.0 / max(t_count, 1)), trial=np.arange(t_count),
                             duration=self.duration, suspensions=self.suspensions)


def run_fast_tite(plan: TitePlan, p_tox: np.ndarray, p_eff: np.ndarray, v_tox: np.ndarray, v_eff: np.ndarray | None,
                  u_onset: np.ndarray, u_arrival: np.ndarray, timing: "Timing", *, dlt_window_days: float,
                  stagger_scope: Literal["new_dose", "cohort"] = "new_dose", latent: bool,
                  lockstep: bool = False, ambiguous: float = AMBIGUOUS_WITHIN) -> TrialOutcomes:
    """Run every trial under ``plan`` on the calendar of ``timing``.

    ``v_*`` are uniforms (``latent=False``) or latent normals; ``v_eff`` None
    means no patient can respond (every ``p_eff <= 0``). ``u_onset`` and
    ``u_arrival`` are the patients' onset and arrival uniforms. Inputs are
    checked by :func:`~escalade.simulations.timed.run_timed_trials`.

    The trials run one after the other; where the order of a sum of follow-up
    fractions could decide (an imputed rate within ``ambiguous`` of a boundary),
    the chunk runs again in lock-step, as the general engine sums (``lockstep=True``:
    from the start; both are for tests).
    """
    out = _Outputs.zeros(v_tox.shape[0], plan.base.n_doses)
    _run_chunk(plan, p_tox, p_eff, _blocked(v_tox), None if v_eff is None else _blocked(v_eff), _blocked(u_onset),
               _blocked(u_arrival), timing, out, dlt_window_days=dlt_window_days, stagger_scope=stagger_scope,
               latent=latent, lockstep=lockstep, ambiguous=ambiguous)
    return out.outcomes(plan)


def _run_chunk(plan: TitePlan, p_tox: np.ndarray, p_eff: np.ndarray, v_tox: np.ndarray, v_eff: np.ndarray | None,
               u_onset: np.ndarray, u_arrival: np.ndarray, timing: "Timing", out: _Outputs, *,
               dlt_window_days: float, stagger_scope: str, latent: bool, lockstep: bool = False,
               ambiguous: float = AMBIGUOUS_WITHIN, bands: tuple[np.ndarray, ...] | None = None) -> None:
    """The kernel on one chunk (:func:`run_fast_tite`), writing into ``out`` (rows of the chunk).

    The patients' arrays come in blocks, ``(n_blocks, T, BLOCK)`` (:func:`_draw_blocks`, :func:`_blocked`).

    ``bands``: ``(lo_t, hi_t, lo_e, hi_e)`` computed once for all chunks (else here)."""
    from escalade.simulations.fast import _bands
    from escalade.simulations.fast_tite_kernels import AMBIGUOUS, ERR_COHORT, ERR_NO_PENDING, ERR_STEPS
    from escalade.simulations.timed import onset_fraction

    K = compile_tite_kernel()
    b = plan.base
    p_tox = np.asarray(p_tox, float)
    p_eff = np.asarray(p_eff, float)
    n_blocks, t_count, _ = v_tox.shape
    cap = n_blocks * BLOCK
    window = float(dlt_window_days)
    stagger = float(timing.stagger_days) if timing.enrolment == "stagger" else 0.0
    has_eff = v_eff is not None and bool(np.any(p_eff > 0))
    ve = v_eff if has_eff else np.zeros((1, 1, BLOCK))
    lo_t, hi_t, lo_e, hi_e = bands if bands is not None else (*_bands(p_tox, latent), *_bands(p_eff, latent))
    need = np.empty(2 * t_count * max(b.max_n, 1), np.int64)
    known_idx = np.zeros(0, np.int64)   # flat indices (stream * T * cap + t * cap + col) evaluated exactly
    known_val = np.zeros(0, float)      # their uniforms ndtr(z)
    v_tox = np.ascontiguousarray(v_tox, float)  # one compiled signature: C-ordered float64
    ve = np.ascontiguousarray(ve, float)
    u_onset = np.ascontiguousarray(u_onset, float)
    u_arrival = np.ascontiguousarray(u_arrival, float)
    arrival, arr_cum = _arrival_input(timing, u_arrival)
    # onset days are window * F^-1(u) (as _Timeline), multiplied in the kernel; uniform onset: F^-1(u) = u
    onset_frac = u_onset if timing.dlt_onset == "uniform" else onset_fraction(u_onset, timing.dlt_onset)
    for _round in range(2 * t_count * max(b.max_n, 1) + 2):
        status, n_need = K["run"](  # type: ignore[operator]
            b.max_n, b.cohort_size, plan.start_dose, plan.start_size, b.esc, b.deesc, plan.elim_hit, b.overdose,
            b.dlt_guard, b.deesc_guard, b.stop_n, b.stop_staying, b.min_n, b.target, plan.lambda_e, plan.lambda_d,
            plan.max_pending, plan.below_only, window, stagger, stagger_scope == "cohort", arrival, arr_cum, onset_frac,
            v_tox, lo_t, hi_t, p_tox, ve, lo_e, hi_e, p_eff, has_eff, known_idx, known_val,
            out.n, out.tox, out.eff, out.both, out.cohorts, out.current, out.reason, out.suspensions,
            out.duration, need, lockstep, float(ambiguous))
        if status == AMBIGUOUS:  # the STFT's summation order could decide: as the general engine sums it
            log.debug("a TITE-BOIN imputed rate lies within %g of a boundary: chunk run in lock-step", ambiguous)
            lockstep = True
            continue
        if status == ERR_COHORT:
            raise RuntimeError("design 'tite_boin' asked for a cohort of size < 1")
        if status == ERR_NO_PENDING:
            raise RuntimeError("design 'tite_boin' suspended accrual with no outcome pending")
        if status == ERR_STEPS:
            raise RuntimeError(f"timed trial loop for design 'tite_boin' did not finish in {4 * b.max_n + 10} steps")
        if n_need == 0:
            break
        # latent values within a band of some ndtri(p): evaluate them exactly and run the chunk again
        idx = np.unique(need[:n_need])
        stream, rest = np.divmod(idx, t_count * cap)
        t, col = np.divmod(rest, cap)
        vals = np.empty(idx.size)
        s0 = stream == 0
        vals[s0] = v_tox[col[s0] // BLOCK, t[s0], col[s0] % BLOCK]
        vals[~s0] = ve[col[~s0] // BLOCK, t[~s0], col[~s0] % BLOCK]
        known_idx, order = np.unique(np.concatenate([known_idx, idx]), return_index=True)
        known_val = np.concatenate([known_val, special.ndtr(vals)])[order]
    else:  # pragma: no cover - each round learns at least one new value
        raise RuntimeError("fast TITE kernel did not settle its band values")


def simulate_fast_tite(design: Design, p_tox: np.ndarray, p_eff: np.ndarray | None, *, timing: "Timing",
                       dlt_window_days: float, response_days: float, n_trials: int, seed: int,
                       association: float = 0.0, chunk_size: int = 1000, scenario: int = 0,
                       stagger_scope: Literal["new_dose", "cohort"] = "new_dose") -> TrialOutcomes | None:
    """:func:`~escalade.simulations.timed.simulate_timed` in the kernel on latent draws, or None.

    None when the design does not qualify (:func:`tite_plan`) or an input is
    not plainly valid (the general path then runs, or raises its error).
    Chunks and seeds are laid out as :func:`~escalade.simulations.timed.simulate_timed`'s.
    """
    plan = tite_plan(design)
    if plan is None:
        return None
    pt = np.asarray(p_tox, float)
    pe = np.zeros_like(pt) if p_eff is None else np.asarray(p_eff, float)
    nd = design.n_doses
    if (pt.shape != (nd,) or pe.shape != (nd,) or not dlt_window_days > 0 or not response_days >= 0
            or stagger_scope not in ("new_dose", "cohort") or n_trials < 1 or chunk_size < 1):
        return None
    efficacy = bool(np.any(pe > 0))
    from escalade.simulations.fast import _bands

    out = _Outputs.zeros(n_trials, nd)  # each chunk writes its rows: no concatenation
    bands = (*_bands(pt, True), *_bands(pe, True))
    for chunk, start in enumerate(range(0, n_trials, chunk_size)):
        size = min(chunk_size, n_trials - start)
        z_t, z_e, u_on, u_arr = _draw_blocks(seed, scenario, chunk, size, int(design.max_n), association,
                                             efficacy=efficacy)
        _run_chunk(plan, pt, pe, z_t, z_e, u_on, u_arr, timing, out.rows(start, start + size),
                   dlt_window_days=dlt_window_days, stagger_scope=stagger_scope, latent=True, bands=bands)
    return out.outcomes(plan)
