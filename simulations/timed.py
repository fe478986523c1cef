"""The time-aware trial engine: accrual, DLT onset times, waiting and pending data.

Trials run on a calendar (days). Everything is vectorised across trials; Python
loops run over cohorts and decision times only (DESIGN.md section 4).

Time model
----------
* **Arrivals.** Patient ``k`` of a trial (0-based) arrives at ``a_k`` days after
  the trial opens, from the study's accrual process (:func:`arrival_days`):
  ``poisson`` (exponential gaps of mean ``30.4375 / rate_per_month`` days, from
  the dedicated uniforms ``Patients.u_arrival``), ``fixed`` (one arrival every
  ``30.4375 / rate_per_month`` days, the first after one gap, as
  ``dfcrm::titesim``), or ``list`` (the given days, then fixed gaps).
* **Outcomes.** At dose ``d`` the patient has a DLT within the window iff
  ``u_tox < p_tox[d]``, at :math:`W\\,F^{-1}(u_{onset})` days after dosing
  (:func:`onset_fraction`: uniform; ``early`` = Beta(1, 3), most DLTs in the first
  week or two, as CRS; ``late`` = Beta(3, 1)); a response (``u_eff < p_eff[d]``)
  is known ``response_days`` after dosing.
* **Waiting.** Nobody is lost: a patient who arrives while the trial is closed
  to enrolment waits and is dosed when it reopens (a queue). Every patient dosed
  later than they arrived counts as one *accrual suspension* in
  :attr:`~escalade.simulations.outcomes.TrialOutcomes.suspensions`.
* **Duration** (:attr:`TrialOutcomes.duration`): from the first patient's dosing
  to the end of the last patient's follow-up: the DLT window, or, for designs
  that use efficacy, the later of the window and the response assessment.

Enrolment rules
---------------
*Designs with complete data* (not :func:`~escalade.design.base.decides_on_followup`: 3+3, BOIN, CRM, BOIN12,
EffTox) enrol by **cohort** and wait for **full follow-up**: the patients of a
cohort are dosed as they arrive, then the trial closes until every one of them
has a complete outcome -- a DLT (observed at onset) or the end of the DLT
window, and for efficacy designs also the response assessment -- and the
design decides on complete data. The decisions, and so every count, are those
of the untimed engine :func:`~escalade.simulations.trial.run_trials` on the same
patients; time only adds duration and suspensions.

*Designs on pending data* (:class:`~escalade.design.base.DecidesOnFollowUp`: TITE-CRM, TITE-BOIN) decide
at the arrival of each cohort's first patient, with ``design.decide_tite`` on
the data observed by then (:class:`~escalade.design.base.FollowUp`); when a
design suspends accrual, the trial closes until the next pending patient's
outcome becomes known (a DLT or a completed window) and asks again. Cohort
members after the first are dosed on arrival. The final recommendation is
``design.select`` on the complete data once every window has ended, except
that a trial stopped for toxicity (all doses too toxic, no acceptable dose)
recommends no dose even if outcomes pending at the stop turn out better.

*Staggering* (``timing.enrolment = "stagger"``): the first patient dosed at a
dose level never given before (a *sentinel*) is observed alone for
``stagger_days``: no other patient is dosed before then (the others of the
cohort wait). ``stagger_scope="cohort"`` applies the sentinel rule to every
cohort instead (the wording of :class:`~escalade.scenarios.study.Timing`).
A DLT in the sentinel does not stop the others being dosed afterwards; the
design's own rules react to it at the next decision.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from escalade.design.base import NO_DOSE, Design, FollowUp, States, StopReason, decides_on_followup
from escalade.scenarios.study import Timing
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import Patients
from escalade.simulations.trial import CohortLoop, select_memoised, simulate

if TYPE_CHECKING:
    from escalade.design.tite_crm import FollowUp

__all__ = ["DAYS_PER_MONTH", "arrival_days", "onset_fraction", "followup_fraction", "pending_data", "run_timed_trials",
           "simulate_timed"]

log = logging.getLogger(__name__)

#: Days in a month (365.25 / 12) for accrual rates given per month.
DAYS_PER_MONTH = 30.4375

_DELAY_TOL = 1e-9  # days: a patient dosed later than arrival + this waited


def arrival_days(timing: Timing, u_arrival: np.ndarray) -> np.ndarray:
    """``(T, N)`` arrival days of every patient slot (non-decreasing along patients).

    Examples
    --------
    >>> arrival_days(Timing(accrual="fixed", rate_per_month=DAYS_PER_MONTH / 14), np.zeros((1, 3))).tolist()
    [[14.0, 28.0, 42.0]]
    """
    u = np.asarray(u_arrival, float)
    t, n = u.shape
    gap = DAYS_PER_MONTH / float(timing.rate_per_month)
    if timing.accrual == "poisson":
        return np.cumsum(-np.log1p(-u) * gap, axis=1)
    if timing.accrual == "fixed":
        return np.broadcast_to((np.arange(n) + 1.0) * gap, (t, n)).copy()
    if timing.accrual == "list":
        days = np.asarray(timing.arrival_days, float)
        k = np.arange(n)
        extra = days[-1] + (k - days.size + 1) * gap
        row = np.where(k < days.size, days[np.minimum(k, days.size - 1)], extra)
        return np.broadcast_to(row, (t, n)).copy()
    raise ValueError(f"timing.accrual must be one of poisson, fixed, list; got {timing.accrual!r}")


def onset_fraction(u_onset: np.ndarray, distribution: str) -> np.ndarray:
    """DLT onset as a fraction of the window: the quantile :math:`F^{-1}(u)`.

    ``uniform``: :math:`u`; ``early`` (Beta(1, 3), :math:`F(x) = 1 - (1-x)^3`):
    :math:`1 - (1-u)^{1/3}`; ``late`` (Beta(3, 1), :math:`F(x) = x^3`): :math:`u^{1/3}`.

    >>> onset_fraction(np.array([0.875]), "late").round(3).tolist(), onset_fraction(np.array([0.875]), "early").round(3).tolist()
    ([0.956], [0.5])
    """
    u = np.asarray(u_onset, float)
    if distribution == "uniform":
        return u.copy()
    if distribution == "early":
        return 1.0 - np.cbrt(1.0 - u)
    if distribution == "late":
        return np.cbrt(u)
    raise ValueError(f"timing.dlt_onset must be one of uniform, early, late; got {distribution!r}")


def followup_fraction(elapsed: np.ndarray, dlt_day: np.ndarray, dlt: np.ndarray, window: float) -> np.ndarray:
    """Follow-up as a fraction of the DLT window, as pending-data designs read it (``FollowUp.fraction``).

    ``dlt_day / window`` for a patient whose DLT has been observed; otherwise
    ``elapsed / window`` capped at 1, and exactly 1 once ``elapsed`` is within
    ``1e-9`` day of the window's end. ``elapsed`` and ``dlt_day`` are days since
    dosing (``dlt_day`` is read only where ``dlt``). The time-aware engine and
    conduct mode (:func:`escalade.simulations.conduct.next_dose`) both use it.

    >>> elapsed, dlt_day, dlt = np.array([7.0, 28.0, 14.0]), np.array([0.0, 0.0, 7.0]), np.array([False, False, True])
    >>> followup_fraction(elapsed, dlt_day, dlt, 28.0).tolist()
    [0.25, 1.0, 0.25]
    """
    elapsed = np.asarray(elapsed, float)
    done = elapsed >= window - _DELAY_TOL
    return np.where(dlt, np.asarray(dlt_day, float) / window,
                    np.where(done, 1.0, np.minimum(elapsed / window, 1.0)))


def pending_data(dose: np.ndarray, dlt: np.ndarray, fraction: np.ndarray, eff: np.ndarray, *, n_doses: int,
                 current: np.ndarray, last_n: np.ndarray, last_start: np.ndarray) -> tuple[States, FollowUp]:
    """The :class:`States` and :class:`~escalade.design.tite_crm.FollowUp` a pending-data design decides on.

    Parameters
    ----------
    dose
        ``(S, N)`` 0-based dose of each patient so far, ``NO_DOSE`` for an empty slot.
    dlt, eff
        ``(S, N)`` DLT / response observed by now.
    fraction
        ``(S, N)`` follow-up as a fraction of the window (:func:`followup_fraction`).
    current, last_n, last_start
        ``(S,)`` current dose, size of the last cohort and position of its first patient.

    The counts are those observed by now (a pending patient counts in ``n``
    and not in ``tox``); ``last_tox`` counts the last cohort's observed DLTs.
    Shared by the time-aware engine and conduct mode, so both ask
    ``design.decide_tite`` the same question.
    """
    from escalade.design.tite_crm import FollowUp

    dose = np.asarray(dose, np.int64)
    treated = dose >= 0
    dlt = np.asarray(dlt, bool) & treated
    eff = np.asarray(eff, bool) & treated
    onehot = (dose[:, :, None] == np.arange(n_doses)) & treated[:, :, None]
    n_ = onehot.sum(axis=1).astype(np.int64)
    y_ = (onehot & dlt[:, :, None]).sum(axis=1).astype(np.int64)
    e_ = (onehot & eff[:, :, None]).sum(axis=1).astype(np.int64)
    b_ = (onehot & (dlt & eff)[:, :, None]).sum(axis=1).astype(np.int64)
    in_last = (np.arange(dose.shape[1])[None, :] >= np.asarray(last_start)[:, None]) & treated
    lt = (dlt & in_last).sum(axis=1).astype(np.int64)
    states = States(n_, y_, e_, b_, np.asarray(current, np.int64), np.asarray(last_n, np.int64), lt)
    return states, FollowUp(dose, dlt, fraction)


class _Timeline:
    """Per-patient calendar and outcomes of ``T`` trials (patients on the last axis)."""

    def __init__(self, design: Design, p_tox: np.ndarray, p_eff: np.ndarray, patients: Patients, timing: Timing,
                 window: float, response: float, stagger_scope: str) -> None:
        t, n = patients.u_tox.shape
        self.design = design
        self.p_tox, self.p_eff = p_tox, p_eff
        self.pts = patients
        self.window = float(window)
        self.response = float(response)
        self.arrival = arrival_days(timing, patients.u_arrival)
        self.onset = self.window * onset_fraction(patients.u_onset, timing.dlt_onset)
        self.stagger = float(timing.stagger_days) if timing.enrolment == "stagger" else 0.0
        self.stagger_all = stagger_scope == "cohort"
        self.dose = np.full((t, n), NO_DOSE, np.int64)
        self.dosed_at = np.full((t, n), np.inf)
        self.tox = np.zeros((t, n), bool)
        self.eff = np.zeros((t, n), bool)
        self.tried = np.zeros((t, design.n_doses), bool)
        self.follow_len = self.window
        if getattr(design, "uses_efficacy", False):
            self.follow_len = max(self.window, self.response)
        # CAR-T patients (escalade.simulations.graded): outcomes and DLT onset by dose
        self.graded = patients.graded
        man = None if self.graded is None else self.graded.model.manufacturing
        self.by_infused = man is not None and man.decide_on == "infused"
        self.infused = np.full((t, n), NO_DOSE, np.int64) if self.graded is not None else None
        self.grades = np.zeros((len(self.graded.types), t, n), np.int8) if self.graded is not None else None

    def dose_cohort(self, rows: np.ndarray, pos: np.ndarray, size: np.ndarray, dose: np.ndarray,
                    t_open: np.ndarray) -> np.ndarray:
        """Dose ``size[i]`` patients from slot ``pos[i]`` of trial ``rows[i]`` at ``dose[i]``.

        Patients are dosed at ``max(arrival, t_open)`` (the sentinel rule delays
        the others). Returns the time before which nobody else may be dosed
        (the end of a sentinel's observation, else ``-inf``).
        """
        width = int(size.max())
        offs = np.arange(width)
        cols = np.minimum(pos[:, None] + offs, self.arrival.shape[1] - 1)
        mask = offs[None, :] < size[:, None]
        arr = np.take_along_axis(self.arrival[rows], cols, axis=1)
        dt = np.maximum(arr, t_open[:, None])
        hold = np.full(rows.size, -np.inf)
        if self.stagger > 0:
            sentinel = self.stagger_all | ~self.tried[rows, dose]
            gate = np.where(sentinel, dt[:, 0] + self.stagger, -np.inf)
            dt[:, 1:] = np.maximum(dt[:, 1:], gate[:, None])
            hold = gate
        r, k = np.nonzero(mask)
        trial, col, d = rows[r], cols[r, k], dose[r]
        self.dose[trial, col] = d
        self.dosed_at[trial, col] = dt[r, k]
        g = self.graded
        if g is None:
            self.tox[trial, col] = self.pts.u_tox[trial, col] < self.p_tox[d]
            self.eff[trial, col] = self.pts.u_eff[trial, col] < self.p_eff[d]
        else:  # the CAR-T patient: outcomes (and the DLT's onset) at the dose, from the graded model
            o = g.at(trial, col, d, onset=True)
            self.tox[trial, col] = o.dlt
            self.eff[trial, col] = o.resp
            if o.onset is not None:
                self.onset[trial, col] = self.window * o.onset
            self.infused[trial, col] = o.infused
            self.grades[:, trial, col] = o.grades
        self.tried[rows, dose] = True
        return hold

    def outcome_known(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Day each patient's outcome is complete: DLT onset or window end (+ response for efficacy designs)."""
        dt = self.dosed_at[rows, cols]
        tox = self.tox[rows, cols]
        done = dt + np.where(tox, self.onset[rows, cols], self.window)
        if getattr(self.design, "uses_efficacy", False):
            done = np.maximum(done, dt + self.response)
        return done

    def observed(self, rows: np.ndarray, t_now: np.ndarray, width: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Data of trials ``rows`` at days ``t_now``: dose, DLT seen, follow-up fraction, response seen, treated."""
        dose = self._count_dose(self.dose[rows, :width], rows, width)
        treated = dose >= 0
        elapsed = t_now[:, None] - self.dosed_at[rows, :width]
        elapsed = np.where(treated, np.maximum(elapsed, 0.0), 0.0)
        onset = self.onset[rows, :width]
        # an event at t_now counts as observed at t_now (tolerance for round-off in day sums)
        dlt = treated & self.tox[rows, :width] & (onset <= elapsed + _DELAY_TOL)
        frac = followup_fraction(elapsed, onset, dlt, self.window)
        eff = treated & self.eff[rows, :width] & (elapsed >= self.response - _DELAY_TOL)
        return dose, dlt, frac, eff, treated

    def _count_dose(self, dose: np.ndarray, rows: Any, width: int) -> np.ndarray:
        """The dose a patient counts at: the infused one with ``manufacturing.decide_on: infused``."""
        if not self.by_infused:
            return dose
        return np.where(dose >= 0, self.infused[rows, :width], dose)

    def finish(self, reason: np.ndarray, cohorts: np.ndarray, current: np.ndarray, last_n: np.ndarray,
               last_tox: np.ndarray, *, no_dose_after_safety_stop: bool = False,
               scored: States | None = None) -> TrialOutcomes:
        design = self.design
        t_count = self.dose.shape[0]
        nd = design.n_doses
        treated = self.dose >= 0
        cdose = self._count_dose(self.dose, slice(None), self.dose.shape[1])
        onehot = (cdose[:, :, None] == np.arange(nd)) & treated[:, :, None]
        n = onehot.sum(axis=1).astype(np.int64)
        tox = (onehot & self.tox[:, :, None]).sum(axis=1).astype(np.int64)
        eff = (onehot & self.eff[:, :, None]).sum(axis=1).astype(np.int64)
        both = (onehot & (self.tox & self.eff)[:, :, None]).sum(axis=1).astype(np.int64)
        final = States(n, tox, eff, both, current, last_n, last_tox) if scored is None else scored
        selected = select_memoised(design, final)
        selected = np.where((selected >= 0) & (selected < nd), selected, NO_DOSE)
        if no_dose_after_safety_stop:
            unsafe = np.isin(reason, (int(StopReason.ALL_TOXIC), int(StopReason.NO_ACCEPTABLE)))
            selected = np.where(unsafe, NO_DOSE, selected)
        first = np.where(treated[:, 0], self.dosed_at[:, 0], 0.0)
        end = np.where(treated, self.dosed_at + self.follow_len, -np.inf).max(axis=1)
        duration = np.where(treated.any(axis=1), end - first, 0.0)
        waited = treated & (self.dosed_at > self.arrival + _DELAY_TOL)
        extra = None
        if self.graded is not None:
            from escalade.simulations.graded import graded_counts

            extra = graded_counts(self.graded, self.dose, self.grades, self.infused)
        return TrialOutcomes(selected, reason, n, tox, eff, both, cohorts,
                             np.full(t_count, 1.0 / max(t_count, 1)), trial=np.arange(t_count),
                             duration=duration, suspensions=waited.sum(axis=1).astype(np.int64), extra=extra)


def run_timed_trials(
    design: Design,
    p_tox: np.ndarray,
    p_eff: np.ndarray,
    patients: Patients,
    timing: Timing,
    *,
    dlt_window_days: float,
    response_days: float,
    stagger_scope: Literal["new_dose", "cohort"] = "new_dose",
) -> TrialOutcomes:
    """Run every trial of ``patients`` on a calendar (see the module docstring).

    Parameters
    ----------
    design
        A design with complete-data decisions, or one that decides on pending
        data (:class:`~escalade.design.base.DecidesOnFollowUp`, with ``decide_tite``).
    p_tox, p_eff
        True probability of a DLT (within the window) and of response per dose.
    patients
        Latent uniforms with ``u_arrival`` (:func:`~escalade.simulations.patients.draw_patients`).
    timing
        The study's :class:`~escalade.scenarios.study.Timing` (accrual, onset, enrolment).
    dlt_window_days, response_days
        The DLT assessment window and the time of the response assessment.
    stagger_scope
        ``"new_dose"``: the sentinel rule applies to the first patient at each
        dose never given before; ``"cohort"``: to the first patient of every cohort.

    Returns
    -------
    TrialOutcomes
        As :func:`~escalade.simulations.trial.run_trials`, with ``duration``
        (days) and ``suspensions`` (patients who waited) filled.
    """
    p_tox = np.asarray(p_tox, float)
    p_eff = np.asarray(p_eff, float)
    nd = design.n_doses
    if p_tox.shape != (nd,) or p_eff.shape != (nd,):
        raise ValueError(f"true curves need {nd} values; got {p_tox.shape} and {p_eff.shape}")
    if patients.u_arrival is None:
        raise ValueError("patients carry no arrival uniforms (u_arrival); draw them with "
                         "escalade.simulations.patients.draw_patients")
    if patients.capacity < int(design.max_n):
        raise ValueError(f"patients hold {patients.capacity} per trial; the design needs {design.max_n}")
    if not dlt_window_days > 0 or not response_days >= 0:
        raise ValueError(f"dlt_window_days must be > 0 and response_days >= 0; got {dlt_window_days}, "
                         f"{response_days}")
    if stagger_scope not in ("new_dose", "cohort"):
        raise ValueError(f"stagger_scope must be 'new_dose' or 'cohort'; got {stagger_scope!r}")
    line = _Timeline(design, p_tox, p_eff, patients, timing, dlt_window_days, response_days, stagger_scope)
    if decides_on_followup(design):
        return _run_pending(design, line)
    return _run_complete(design, line)


def _run_complete(design: Design, line: _Timeline) -> TrialOutcomes:
    """Cohorts wait for full follow-up; decisions as the untimed engine's (same :class:`CohortLoop`)."""
    t_count = line.dose.shape[0]
    loop = CohortLoop(design, t_count)
    if line.graded is not None:
        loop.track_patients(line.graded, line.dose.shape[1])
    open_at = np.zeros(t_count)
    for _step in range(loop.max_n + 1):
        if loop.live.size == 0:
            break
        live, d, c = loop.next_cohort()
        p0 = loop.pos[live].copy()
        line.dose_cohort(live, p0, c, d, open_at[live])
        offs = np.arange(int(c.max()))
        mask = offs[None, :] < c[:, None]
        cols = np.minimum(p0[:, None] + offs, line.dose.shape[1] - 1)
        rows = np.broadcast_to(live[:, None], cols.shape)
        t_tox = line.tox[rows, cols] & mask
        t_eff = line.eff[rows, cols] & mask
        known = np.where(mask, line.outcome_known(rows, cols), -np.inf)
        open_at[live] = known.max(axis=1)
        loop.record(live, d, c, t_tox, t_eff)
        if line.graded is not None:
            rr, cc, dm = rows[mask], cols[mask], np.broadcast_to(d[:, None], cols.shape)[mask]
            loop.record_patients(rr, cc, dm, line.graded.at(rr, cc, dm))
        loop.decide()
    else:  # pragma: no cover - every cohort enrols >= 1 patient
        raise RuntimeError("timed trial loop did not terminate")
    return line.finish(loop.reason, loop.cohorts, loop.current, loop.last_n, loop.last_tox,
                       scored=loop.final_states() if loop.tox_score is not None else None)


def _run_pending(design: Design, line: _Timeline) -> TrialOutcomes:
    """Decide at each cohort's arrival on pending data; wait where the design suspends."""

    t_count = line.dose.shape[0]
    nd = design.n_doses
    if getattr(design, "graded", False):
        raise ValueError(f"design '{design.kind}' scores graded outcomes but decides on pending follow-up; "
                         "graded designs run with complete follow-up only")
    max_n = int(design.max_n)
    pos = np.zeros(t_count, np.int64)
    cohorts = np.zeros(t_count, np.int64)
    reason = np.zeros(t_count, np.int8)
    open_at = np.zeros(t_count)
    current = np.zeros(t_count, np.int64)
    last_n = np.zeros(t_count, np.int64)
    last_start = np.zeros(t_count, np.int64)
    d0, size0 = design.start()
    dose = np.full(t_count, d0, np.int64)
    size = np.full(t_count, size0, np.int64)
    live = np.arange(t_count)
    pending_decision = np.zeros(t_count, bool)  # False: the next cohort's dose is already fixed (first cohort)
    limit = 4 * max_n + 10
    for _step in range(limit):
        if live.size == 0:
            break
        ask = live[pending_decision[live]]
        if ask.size:
            t_now = np.maximum(line.arrival[ask, pos[ask]], open_at[ask])
            width = int(pos[ask].max())
            pdose, dlt, frac, effo, treated = line.observed(ask, t_now, width)
            states, follow = pending_data(np.where(treated, pdose, NO_DOSE), dlt, frac, effo, n_doses=nd,
                                          current=current[ask], last_n=last_n[ask], last_start=last_start[ask])
            out = design.decide_tite(states, follow)
            dec, susp = out.decisions, np.asarray(out.suspend, bool)
            stop = dec.stop & ~susp
            reason[ask[stop]] = dec.reason[stop]
            if susp.any():
                rows = ask[susp]
                known = line.outcome_known(np.broadcast_to(rows[:, None], (rows.size, width)),
                                           np.broadcast_to(np.arange(width), (rows.size, width)))
                known = np.where(treated[susp], known, np.inf)
                nxt = np.where(known > t_now[susp, None] + _DELAY_TOL, known, np.inf).min(axis=1)
                if not np.all(np.isfinite(nxt)):
                    raise RuntimeError(f"design '{design.kind}' suspended accrual with no outcome pending")
                open_at[rows] = nxt
            go = ~stop & ~susp
            dose[ask[go]] = dec.dose[go]
            size[ask[go]] = dec.cohort_size[go]
            open_at[ask[go]] = t_now[go]
            ready = np.zeros(t_count, bool)
            ready[ask[go]] = True
            ready[live[~pending_decision[live]]] = True
            live = live[~np.isin(live, ask[stop])]
        else:
            ready = np.zeros(t_count, bool)
            ready[live] = True
        enrol = live[ready[live]]
        if enrol.size:
            c = np.minimum(size[enrol], max_n - pos[enrol])
            if np.any(c < 1):
                raise RuntimeError(f"design '{design.kind}' asked for a cohort of size < 1")
            hold = line.dose_cohort(enrol, pos[enrol], c, dose[enrol], open_at[enrol])
            open_at[enrol] = np.maximum(open_at[enrol], hold)
            last_start[enrol] = pos[enrol]
            pos[enrol] += c
            cohorts[enrol] += 1
            current[enrol] = dose[enrol]
            last_n[enrol] = c
            pending_decision[enrol] = True
            full = enrol[pos[enrol] >= max_n]
            reason[full] = StopReason.MAX_SAMPLE_SIZE
            live = live[~np.isin(live, full)]
    else:
        raise RuntimeError(f"timed trial loop for design '{design.kind}' did not finish in {limit} steps")
    last_tox = np.zeros(t_count, np.int64)
    cols = np.arange(line.dose.shape[1])[None, :]
    in_last = (cols >= last_start[:, None]) & (cols < pos[:, None])
    last_tox = (line.tox & in_last).sum(axis=1).astype(np.int64)
    # A trial stopped for toxicity recommends no dose, even where outcomes pending at the stop
    # later turn out better (the final data can then look safer than the data that stopped it).
    return line.finish(reason, cohorts, current, last_n, last_tox, no_dose_after_safety_stop=True)


def simulate_timed(
    design: Design,
    p_tox: np.ndarray,
    p_eff: np.ndarray | None = None,
    *,
    timing: Timing,
    dlt_window_days: float,
    response_days: float = 90.0,
    n_trials: int,
    seed: int,
    association: float = 0.0,
    chunk_size: int = 1000,
    scenario: int = 0,
    stagger_scope: Literal["new_dose", "cohort"] = "new_dose",
) -> TrialOutcomes:
    """Simulate ``n_trials`` timed trials in one process (tests, benches).

    Chunks and seeds are laid out as the parallel runner lays them out, so the
    result equals the runner's for the same ``seed`` and ``scenario`` key.
    """
    def run(d: Design, pt: np.ndarray, pe: np.ndarray, patients: Patients) -> TrialOutcomes:
        return run_timed_trials(d, pt, pe, patients, timing, dlt_window_days=dlt_window_days,
                                response_days=response_days, stagger_scope=stagger_scope)

    return simulate(design, p_tox, p_eff, n_trials=n_trials, seed=seed, association=association,
                    chunk_size=chunk_size, scenario=scenario, run=run)
