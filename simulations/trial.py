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

import numpy as np

from escalade.design.base import NO_DOSE, Decisions, Design, States, StopReason
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import Patients, draw_patients

__all__ = ["run_trials", "simulate", "decide_memoised", "select_memoised"]


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


def run_trials(design: Design, p_tox: np.ndarray, p_eff: np.ndarray, patients: Patients) -> TrialOutcomes:
    """Run every trial of ``patients`` under ``design`` and the true curves.

    Parameters
    ----------
    design
        Any :class:`~escalade.design.base.Design`.
    p_tox, p_eff
        True probability of DLT and of response per dose, shape ``(D,)``.
    patients
        Latent uniforms with room for ``design.max_n`` patients per trial.
    """
    p_tox = np.asarray(p_tox, float)
    p_eff = np.asarray(p_eff, float)
    n_doses = design.n_doses
    if p_tox.shape != (n_doses,) or p_eff.shape != (n_doses,):
        raise ValueError(f"true curves need {n_doses} values; got {p_tox.shape} and {p_eff.shape}")
    t_count = patients.u_tox.shape[0]
    max_n = int(design.max_n)
    if patients.capacity < max_n:
        raise ValueError(f"patients hold {patients.capacity} per trial; the design needs {max_n}")

    n = np.zeros((t_count, n_doses), np.int64)
    tox = np.zeros_like(n)
    eff = np.zeros_like(n)
    both = np.zeros_like(n)
    last_n = np.zeros(t_count, np.int64)
    last_tox = np.zeros(t_count, np.int64)
    pos = np.zeros(t_count, np.int64)
    cohorts = np.zeros(t_count, np.int64)
    reason = np.zeros(t_count, np.int8)
    d0, size0 = design.start()
    dose = np.full(t_count, d0, np.int64)
    size = np.full(t_count, size0, np.int64)
    current = dose.copy()
    live = np.arange(t_count)

    for _step in range(max_n + 1):
        if live.size == 0:
            break
        c = np.minimum(size[live], max_n - pos[live])
        if np.any(c < 1):
            raise RuntimeError(f"design '{design.kind}' asked for a cohort of size < 1")
        width = int(c.max())
        offs = np.arange(width)
        cols = np.minimum(pos[live, None] + offs, patients.capacity - 1)
        mask = offs[None, :] < c[:, None]
        d = dose[live]
        t = (np.take_along_axis(patients.u_tox[live], cols, axis=1) < p_tox[d][:, None]) & mask
        e = (np.take_along_axis(patients.u_eff[live], cols, axis=1) < p_eff[d][:, None]) & mask
        nt = t.sum(axis=1)
        ne = e.sum(axis=1)
        nb = (t & e).sum(axis=1)
        n[live, d] += c
        tox[live, d] += nt
        eff[live, d] += ne
        both[live, d] += nb
        pos[live] += c
        cohorts[live] += 1
        current[live] = d
        last_n[live] = c
        last_tox[live] = nt

        full = pos[live] >= max_n
        reason[live[full]] = StopReason.MAX_SAMPLE_SIZE
        live = live[~full]
        if live.size == 0:
            break
        states = States(n[live], tox[live], eff[live], both[live], current[live], last_n[live], last_tox[live])
        dec = decide_memoised(design, states)
        reason[live[dec.stop]] = dec.reason[dec.stop]
        go = ~dec.stop
        dose[live[go]] = dec.dose[go]
        size[live[go]] = dec.cohort_size[go]
        live = live[go]
    else:  # pragma: no cover - every cohort enrols >= 1 patient, so max_n + 1 steps suffice
        raise RuntimeError("trial loop did not terminate")

    final = States(n, tox, eff, both, current, last_n, last_tox)
    selected = select_memoised(design, final)
    selected = np.where((selected >= 0) & (selected < n_doses), selected, NO_DOSE)
    return TrialOutcomes(selected, reason, n, tox, eff, both, cohorts,
                         np.full(t_count, 1.0 / max(t_count, 1)), trial=np.arange(t_count))


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
) -> TrialOutcomes:
    """Simulate ``n_trials`` trials of one design in one process (for tests, benches).

    Chunks and seeds are laid out exactly as the parallel runner lays them
    out, so the result equals the runner's for the same ``seed`` and
    ``scenario`` key.
    """
    p_tox = np.asarray(p_tox, float)
    p_eff = np.zeros_like(p_tox) if p_eff is None else np.asarray(p_eff, float)
    parts = []
    for chunk, start in enumerate(range(0, n_trials, chunk_size)):
        size = min(chunk_size, n_trials - start)
        pts = draw_patients(seed, scenario, chunk, size, design.max_n, association)
        out = run_trials(design, p_tox, p_eff, pts)
        parts.append(TrialOutcomes(out.selected, out.reason, out.n, out.tox, out.eff, out.both, out.cohorts,
                                   out.weight, trial=out.trial + start))
    return TrialOutcomes.concat(parts)
