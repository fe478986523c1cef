"""The trial loop, vectorised across trials (DESIGN.md section 4).

All trials of a chunk advance together, one cohort per step: enrol the next
cohort of every live trial at its current dose, read the outcomes from the
latent patients, update the per-dose counts, then ask the design for the next
dose of every live trial in one batch (memoised by distinct state when the
design is costly). A Python loop runs over cohorts only.

Order of events after a cohort (the same in exact enumeration):

1. the cohort of ``min(cohort_size, max_n - n)`` patients is added at the dose;
2. if the trial has reached the design's ``max_n`` it ends
   (``MAX_SAMPLE_SIZE``) and the design is not asked;
3. otherwise ``decide`` gives the next dose and cohort size, or a stop.

At the end ``select`` gives the recommended dose of every trial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from escalade.design.base import NO_DOSE, Decisions, Design, States, StopReason
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import Patients, draw_patients, with_graded

__all__ = ["run_trials", "simulate", "decide_memoised", "select_memoised", "CohortLoop"]


def decide_memoised(design: Design, states: States) -> Decisions:
    """``design.decide`` on the distinct states only, scattered back."""
    if not getattr(design, "memoise", True) or states.n_states < 2:
        return design.decide(states)
    uniq, inverse = states.unique()
    return design.decide(uniq).take(inverse)


def select_memoised(design: Design, states: States) -> np.ndarray:
    """``design.select`` on the distinct states only, scattered back."""
    if not getattr(design, "memoise", True) or states.n_states < 2:
        return np.asarray(design.select(states), np.int64)
    uniq, inverse = states.unique()
    return np.asarray(design.select(uniq), np.int64)[inverse]


class CohortLoop:
    """The per-trial arrays of the cohort loop and its two steps (shared by both engines).

    :meth:`next_cohort` gives the live trials, their doses and cohort sizes;
    :meth:`record` adds a cohort's outcomes to the counts; :meth:`decide` ends
    the trials that reached ``max_n`` and asks the design about the others.
    The calendar-time engine (:mod:`escalade.simulations.timed`) drives the
    same object, so both engines make identical decisions.
    """

    def __init__(self, design: Design, n_trials: int) -> None:
        nd = design.n_doses
        self.design = design
        self.max_n = int(design.max_n)
        self.n = np.zeros((n_trials, nd), np.int64)
        self.tox = np.zeros_like(self.n)
        self.eff = np.zeros_like(self.n)
        self.both = np.zeros_like(self.n)
        self.last_n = np.zeros(n_trials, np.int64)
        self.last_tox = np.zeros(n_trials, np.int64)
        self.pos = np.zeros(n_trials, np.int64)
        self.cohorts = np.zeros(n_trials, np.int64)
        self.reason = np.zeros(n_trials, np.int8)
        d0, size0 = design.start()
        self.dose = np.full(n_trials, d0, np.int64)
        self.size = np.full(n_trials, size0, np.int64)
        self.current = self.dose.copy()
        self.live = np.arange(n_trials)
        # CAR-T patients (escalade.simulations.graded): set by track_patients
        self.graded: Any = None
        self.tally: np.ndarray | None = None
        self.death: np.ndarray | None = None
        self.below: np.ndarray | None = None
        self.tox_score: np.ndarray | None = None
        self.eff_score: np.ndarray | None = None
        self.by_infused = False

    def track_patients(self, graded: Any, capacity: int) -> None:
        """Tally each treated patient's grades by assigned dose and, for a graded design, its scores.

        ``graded`` is the chunk's :class:`~escalade.simulations.graded.GradedPatients`; ``capacity`` its
        patients per trial (kept for the callers; the tallies do not need it).
        """
        from escalade.scenarios.cart import GRADES

        t, nd = self.n.shape
        self.graded = graded
        # (K, grade, T, D) patients per type, grade, trial and assigned dose; deaths; infused below assigned
        self.tally = np.zeros((len(graded.types), GRADES, t, nd), np.int16)
        self.death = np.zeros((t, nd), np.int16)
        self.below = np.zeros(t, np.int16)
        if getattr(self.design, "graded", False):
            self.tox_score = np.zeros(self.n.shape, np.float64)
            self.eff_score = np.zeros(self.n.shape, np.float64)
        man = graded.model.manufacturing
        self.by_infused = man is not None and man.decide_on == "infused"

    def record_graded(self, live: np.ndarray, d: np.ndarray, c: np.ndarray) -> bool:
        """:meth:`record` and :meth:`record_patients` of a cohort of CAR-T patients in one compiled pass.

        Trial ``live[r]`` treats ``c[r]`` patients from its next slot on at dose ``d[r]``
        (:func:`~escalade.simulations.graded_kernels.cohort_step`). Returns False, having changed nothing,
        when a patient's latent lies within rounding of a cut or the design scores graded outcomes: the
        caller then takes the general route (:meth:`~escalade.simulations.graded.GradedPatients.at`,
        :meth:`record`, :meth:`record_patients`), which gives the same numbers.
        """
        from escalade.simulations.graded_kernels import cohort_step

        if self.tox_score is not None:
            return False
        a = self.graded.kernel_args()
        odd = cohort_step(live, d, c, self.pos, *a, self.by_infused, self.n, self.tox, self.eff, self.both,
                          self.current, self.last_n, self.last_tox, self.cohorts, self.tally, self.death,
                          self.below)
        return odd == 0

    def record_patients(self, rows: np.ndarray, cols: np.ndarray, dose: np.ndarray, out: Any) -> None:
        """After :meth:`record`: the graded side of a cohort (patients ``(rows, cols)`` at assigned ``dose``).

        ``out`` holds their :class:`~escalade.simulations.graded.Outcomes`. Adds them to the tallies,
        scores a graded design's patients (the gboin contract), and with ``manufacturing.decide_on:
        infused`` moves each patient's counts to the dose actually infused.
        """
        from escalade.simulations.graded import patient_scores
        from escalade.simulations.graded_kernels import tally_add

        dose = np.asarray(dose, np.int64)
        tally_add(np.asarray(rows, np.int64), dose, out.grades, np.asarray(out.infused, np.int64), self.tally,
                  self.death, self.below)
        at = dose
        if self.by_infused:
            at = out.infused
            moved = at != dose
            if moved.any():
                r, f, to = rows[moved], dose[moved], at[moved]
                tox = out.dlt[moved].astype(np.int64)
                eff = out.resp[moved].astype(np.int64)
                for arr, v in ((self.n, np.ones_like(tox)), (self.tox, tox), (self.eff, eff),
                               (self.both, tox & eff)):
                    np.add.at(arr, (r, f), -v)
                    np.add.at(arr, (r, to), v)
        if self.tox_score is not None:
            ts, es = patient_scores(self.design, self.graded, out)
            np.add.at(self.tox_score, (rows, at), ts)
            np.add.at(self.eff_score, (rows, at), es)

    def _states(self, idx: Any) -> States:
        states = States(self.n[idx], self.tox[idx], self.eff[idx], self.both[idx], self.current[idx],
                        self.last_n[idx], self.last_tox[idx])
        if self.tox_score is None:
            return states
        if "tox_score" not in {f.name for f in dataclasses.fields(States)}:
            raise RuntimeError("design '%s' is graded but this checkout's States has no tox_score/eff_score "
                               "fields (merge the gboin branch)" % self.design.kind)
        return dataclasses.replace(states, tox_score=self.tox_score[idx],  # type: ignore[call-arg]
                                   eff_score=self.eff_score[idx])

    def next_cohort(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(live, dose, size)`` of the next cohort of every live trial."""
        live = self.live
        c = np.minimum(self.size[live], self.max_n - self.pos[live])
        if np.any(c < 1):
            raise RuntimeError(f"design '{self.design.kind}' asked for a cohort of size < 1")
        return live, self.dose[live], c

    def record(self, live: np.ndarray, d: np.ndarray, c: np.ndarray, t_tox: np.ndarray,
               t_eff: np.ndarray) -> None:
        """Add a cohort (``(L, width)`` DLT and response indicators, masked) at doses ``d``."""
        nt = t_tox.sum(axis=1)
        self.n[live, d] += c
        self.tox[live, d] += nt
        self.eff[live, d] += t_eff.sum(axis=1)
        self.both[live, d] += (t_tox & t_eff).sum(axis=1)
        self.pos[live] += c
        self.cohorts[live] += 1
        self.current[live] = d
        self.last_n[live] = c
        self.last_tox[live] = nt

    def decide(self) -> None:
        """End trials at ``max_n``; ask the design (memoised) for the others' next cohort."""
        live = self.live
        full = self.pos[live] >= self.max_n
        self.reason[live[full]] = StopReason.MAX_SAMPLE_SIZE
        live = live[~full]
        if live.size:
            states = self._states(live)
            dec = decide_memoised(self.design, states)
            self.reason[live[dec.stop]] = dec.reason[dec.stop]
            go = ~dec.stop
            self.dose[live[go]] = dec.dose[go]
            self.size[live[go]] = dec.cohort_size[go]
            live = live[go]
        self.live = live

    def final_states(self) -> States:
        return self._states(slice(None))

    def graded_extra(self) -> dict[str, np.ndarray] | None:
        """Per-trial graded tallies (as :func:`~escalade.simulations.graded.graded_counts`), or None."""
        if self.graded is None:
            return None
        from escalade.simulations.graded import tally_dict

        return tally_dict(self.graded, self.tally, self.death, self.below)


def run_trials(design: Design, p_tox: np.ndarray, p_eff: np.ndarray, patients: Patients, *,
               engine: Literal["auto", "general"] = "auto") -> TrialOutcomes:
    """Run every trial of ``patients`` under ``design`` and the true curves.

    Parameters
    ----------
    design
        Any :class:`~escalade.design.base.Design`.
    p_tox, p_eff
        True probability of DLT and of response per dose, shape ``(D,)``.
    patients
        Latent uniforms with room for ``design.max_n`` patients per trial.
    engine
        ``"auto"``: the compiled kernel (:mod:`escalade.simulations.fast`) when
        the design qualifies (:func:`~escalade.simulations.fast.fast_plan`),
        else the cohort loop below; ``"general"``: always the cohort loop. Both
        give identical outcomes.
    """
    p_tox = np.asarray(p_tox, float)
    p_eff = np.asarray(p_eff, float)
    n_doses = design.n_doses
    if p_tox.shape != (n_doses,) or p_eff.shape != (n_doses,):
        raise ValueError(f"true curves need {n_doses} values; got {p_tox.shape} and {p_eff.shape}")
    t_count = patients.u_tox.shape[0]
    max_n = int(design.max_n)
    if getattr(getattr(design, "config", None), "backfill", None) is not None:
        raise ValueError(f"design '{design.kind}' has backfill cohorts, which need calendar time: simulate it with "
                         "escalade.simulations.timed (a study runs it there by itself)")
    if patients.capacity < max_n:
        raise ValueError(f"patients hold {patients.capacity} per trial; the design needs {max_n}")

    if engine not in ("auto", "general"):
        raise ValueError(f"engine must be 'auto' or 'general'; got {engine!r}")
    if engine == "auto" and patients.graded is None:  # CAR-T patients: the general engine
        from escalade.simulations.fast import fast_plan, run_fast

        plan = fast_plan(design)
        if plan is not None:
            return run_fast(plan, p_tox, p_eff, patients.u_tox, patients.u_eff, latent=False)

    loop = CohortLoop(design, t_count)
    g = patients.graded
    if g is not None:
        from escalade.simulations.graded import check_graded_design

        check_graded_design(design, g.model, "this")
        loop.track_patients(g, patients.capacity)
    elif getattr(design, "graded", False):
        from escalade.simulations.graded import check_graded_design

        check_graded_design(design, None, "this")
    for _step in range(max_n + 1):
        if loop.live.size == 0:
            break
        live, d, c = loop.next_cohort()
        if g is not None and loop.record_graded(live, d, c):  # CAR-T patients: the whole cohort compiled
            loop.decide()
            continue
        offs = np.arange(int(c.max()))
        cols = np.minimum(loop.pos[live, None] + offs, patients.capacity - 1)
        mask = offs[None, :] < c[:, None]
        if g is None:
            t = (np.take_along_axis(patients.u_tox[live], cols, axis=1) < p_tox[d][:, None]) & mask
            e = (np.take_along_axis(patients.u_eff[live], cols, axis=1) < p_eff[d][:, None]) & mask
            loop.record(live, d, c, t, e)
        else:  # a latent within rounding of a cut, or a graded design: outcomes, then record them
            rr = np.broadcast_to(live[:, None], cols.shape)[mask]
            cc, dm = cols[mask], np.broadcast_to(d[:, None], cols.shape)[mask]
            o = g.at(rr, cc, dm)
            t = np.zeros(cols.shape, bool)
            e = np.zeros(cols.shape, bool)
            t[mask] = o.dlt
            e[mask] = o.resp
            loop.record(live, d, c, t, e)
            loop.record_patients(rr, cc, dm, o)
        loop.decide()
    else:  # pragma: no cover - every cohort enrols >= 1 patient, so max_n + 1 steps suffice
        raise RuntimeError("trial loop did not terminate")

    selected = select_memoised(design, loop.final_states())
    selected = np.where((selected >= 0) & (selected < n_doses), selected, NO_DOSE)
    return TrialOutcomes(selected, loop.reason, loop.n, loop.tox, loop.eff, loop.both, loop.cohorts,
                         np.full(t_count, 1.0 / max(t_count, 1)), trial=np.arange(t_count),
                         extra=loop.graded_extra())


def simulate(
    design: Design,
    p_tox: np.ndarray,
    p_eff: np.ndarray | None = None,
    *,
    n_trials: int,
    seed: int,
    association: float = 0.0,
    chunk_size: int = 1000,
    scenario: int = 0,
    run: Callable[[Design, np.ndarray, np.ndarray, Patients], TrialOutcomes] | None = None,
    cart: Any = None,
) -> TrialOutcomes:
    """Simulate ``n_trials`` trials of one design in one process (for tests, benches).

    Chunks and seeds are laid out exactly as the parallel runner lays them
    out, so the result equals the runner's for the same ``seed`` and
    ``scenario`` key. ``run`` runs one chunk (default :func:`run_trials`; the
    calendar-time engine passes its own). ``cart`` is a scenario's
    :class:`~escalade.scenarios.cart.CartModel` (CAR-T patients; ``p_tox`` and
    ``p_eff`` must then be its derived curves).
    """
    p_tox = np.asarray(p_tox, float)
    p_eff = np.zeros_like(p_tox) if p_eff is None else np.asarray(p_eff, float)
    plan = None
    if run is None and cart is None:
        from escalade.simulations.fast import fast_plan

        plan = fast_plan(design)
    run = run_trials if run is None else run
    parts = []
    for chunk, start in enumerate(range(0, n_trials, chunk_size)):
        size = min(chunk_size, n_trials - start)
        if plan is not None:  # the compiled kernel on the latent normals: only the streams it reads are drawn
            from escalade.simulations.fast import draw_latent, run_fast

            z_t, z_e = draw_latent(seed, scenario, chunk, size, design.max_n, association,
                                   efficacy=bool(np.any(p_eff > 0)))
            parts.append(run_fast(plan, p_tox, p_eff, z_t, z_e, latent=True).offset(start))
            continue
        pts = draw_patients(seed, scenario, chunk, size, design.max_n, association)
        pts = with_graded(pts, cart, seed=seed, scenario=scenario, chunk=chunk, p_dlt=p_tox, p_response=p_eff)
        parts.append(run(design, p_tox, p_eff, pts).offset(start))
    return TrialOutcomes.concat(parts)
