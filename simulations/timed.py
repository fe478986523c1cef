"""The time-aware trial engine: accrual, DLT onset times, waiting and pending data.

Trials run on a calendar (days). Everything is vectorised across trials; Python
loops run over cohorts and decision times only (DESIGN.md section 4).

Time model
----------
* **Arrivals.** Patient ``k`` of a trial (0-based) arrives at ``a_k`` days after
  the trial opens, from the study's accrual process (:func:`arrival_days`):
  ``poisson`` (exponential gaps of mean ``30.4375 / rate_per_month`` days, from
  the dedicated uniforms ``Patients.u_arrival``), ``uniform`` (gaps uniform on
  twice that mean, as the BF-BOIN software of Zhao et al. 2024), ``fixed`` (one arrival every
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

*Designs on pending data* (:class:`~escalade.design.base.DecidesOnFollowUp`: TITE-CRM, TITE-BOIN,
TITE-BOIN12) decide at the arrival of each cohort's first patient, with ``design.decide_tite`` on
the data observed by then (:class:`~escalade.design.base.FollowUp`; for a design that uses
efficacy, also each patient's response so far and follow-up as a fraction of ``response_days``);
when a design suspends accrual, the trial closes until the next pending outcome becomes known (a
DLT or a completed window, or a response assessment) and asks again. Cohort
members after the first are dosed on arrival. The final recommendation is
``design.select`` on the complete data once every window has ended, except
that a trial stopped for toxicity (all doses too toxic, no acceptable dose)
recommends no dose even if outcomes pending at the stop turn out better.

*Backfill cohorts* (a design whose config sets ``backfill``, :class:`~escalade.design.rules.Backfill`;
BF-BOIN, Zhao, Yuan, Korn & Freidlin (2024), Clin Cancer Res 30:673-679): arrivals are placed one at a
time, in order of arrival. While the escalation cohort has room, the arrival joins it (dosed on arrival,
or when the trial reopens if they waited). Once its last patient is dosed and until every outcome of the
cohort is known, an arrival is treated at once at the backfill dose the setting opens for them
(:func:`~escalade.design.rules.backfill_open`, on the outcomes known at the arrival); with no dose open they
wait for the next escalation cohort (``unplaced="wait"``, as every arrival waits without backfill) or leave
the trial (``"leave"``, the paper's simulations). The escalation decision is made when the next arrival
comes after the cohort is complete (or at completion for a waiting patient), on every outcome known by then
(backfill patients' included; pending ones are not counted), by ``design.decide``. The escalation ends at
``max_n`` escalation patients or a stop; backfill ends with it. Patients still in follow-up then are
followed and counted (``pending_at_end="follow"``), or left out as the paper's software does (``"drop"``:
the trial then ends when the last escalation cohort's outcomes are complete, which is its duration).
:attr:`TrialOutcomes.n_backfill` holds the backfill patients per dose. Past the arrivals drawn for the
patient slots (only with ``unplaced="leave"``), further arrivals come at the mean gap. Staggering applies
to escalation patients as below (backfill doses have all been given before). For a design on pending data
(TITE-BOIN), the escalation cohort never waits for full follow-up; an arrival that meets an accrual
suspension is backfilled where a dose is open (and the design is asked again at the next arrival), and
waits as without backfill otherwise (``unplaced="wait"``, ``pending_at_end="follow"`` only).

*Staggering* (``timing.enrolment = "stagger"``): the first patient dosed at a
dose level never given before (a *sentinel*) is observed alone for
``stagger_days``: no other patient is dosed before then (the others of the
cohort wait). ``stagger_scope="cohort"`` applies the sentinel rule to every
cohort instead (the wording of :class:`~escalade.scenarios.study.Timing`).
A DLT in the sentinel does not stop the others being dosed afterwards; the
design's own rules react to it at the next decision.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from escalade.design.base import NO_DOSE, Design, FollowUp, States, StopReason, decides_on_followup
from escalade.design.rules import Backfill, backfill_of, backfill_open, deescalation_boundary, patient_slots
from escalade.scenarios.study import Timing
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import Patients, draw_patients
from escalade.simulations.trial import CohortLoop, decide_memoised, select_memoised, simulate

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
    if timing.accrual == "uniform":  # gaps uniform on (0, 2 x mean gap): the BF-BOIN software's default
        return np.cumsum(2.0 * u * gap, axis=1)
    if timing.accrual == "list":
        days = np.asarray(timing.arrival_days, float)
        k = np.arange(n)
        extra = days[-1] + (k - days.size + 1) * gap
        row = np.where(k < days.size, days[np.minimum(k, days.size - 1)], extra)
        return np.broadcast_to(row, (t, n)).copy()
    raise ValueError(f"timing.accrual must be one of poisson, uniform, fixed, list; got {timing.accrual!r}")


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
                 current: np.ndarray, last_n: np.ndarray, last_start: np.ndarray,
                 eff_fraction: np.ndarray | None = None,
                 in_last: np.ndarray | None = None) -> tuple[States, FollowUp]:
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
    eff_fraction
        ``(S, N)`` follow-up as a fraction of the efficacy window, for designs
        with late-onset efficacy (TITE-BOIN12); the :class:`FollowUp` then also
        carries the observed responses. None: toxicity follow-up only.
    in_last
        ``(S, N)`` optional: which slots belong to the last cohort (with backfill cohorts, whose
        patients come between cohorts); by default every slot from ``last_start`` on.

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
    if in_last is None:
        in_last = np.arange(dose.shape[1])[None, :] >= np.asarray(last_start)[:, None]
    in_last = np.asarray(in_last, bool) & treated
    lt = (dlt & in_last).sum(axis=1).astype(np.int64)
    states = States(n_, y_, e_, b_, np.asarray(current, np.int64), np.asarray(last_n, np.int64), lt)
    if eff_fraction is None:
        return states, FollowUp(dose, dlt, fraction)
    return states, FollowUp(dose, dlt, fraction, eff, eff_fraction)


def _per_dose(dose: np.ndarray, flag: np.ndarray, n_doses: int) -> np.ndarray:
    """``(S, D)`` counts of the patients with ``flag`` per dose (``dose`` ``(S, N)``, ``NO_DOSE`` for none).

    One ``bincount`` over the flagged patients: the counts of a one-hot
    ``(S, N, D)`` sum without building it.
    """
    s = dose.shape[0]
    keep = flag & (dose >= 0)
    idx = (np.arange(s, dtype=np.int64)[:, None] * n_doses + dose)[keep]
    return np.bincount(idx, minlength=s * n_doses).reshape(s, n_doses).astype(np.int64)


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
        self.set_outcomes(trial, col, d)
        self.tried[rows, dose] = True
        return hold

    def set_outcomes(self, trial: np.ndarray, col: np.ndarray, d: np.ndarray) -> None:
        """DLT and response (and for CAR-T patients grades, onset and infused dose) of the patients in
        slots ``col`` of trials ``trial`` treated at doses ``d`` (every engine path doses through here)."""
        g = self.graded
        if g is None:
            self.tox[trial, col] = self.pts.u_tox[trial, col] < self.p_tox[d]
            self.eff[trial, col] = self.pts.u_eff[trial, col] < self.p_eff[d]
            return
        o = g.at(trial, col, d, onset=True)  # the CAR-T patient: outcomes (and the DLT's onset) at the dose
        self.tox[trial, col] = o.dlt
        self.eff[trial, col] = o.resp
        if o.onset is not None:
            self.onset[trial, col] = self.window * o.onset
        self.infused[trial, col] = o.infused
        self.grades[:, trial, col] = o.grades

    def outcome_known(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Day each patient's outcome is complete: DLT onset or window end (+ response for efficacy designs)."""
        dt = self.dosed_at[rows, cols]
        tox = self.tox[rows, cols]
        done = dt + np.where(tox, self.onset[rows, cols], self.window)
        if getattr(self.design, "uses_efficacy", False):
            done = np.maximum(done, dt + self.response)
        return done

    def outcome_times(self, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
        """Days each patient's toxicity outcome (and, for efficacy designs, response assessment) is complete."""
        dt = self.dosed_at[rows, cols]
        times = [dt + np.where(self.tox[rows, cols], self.onset[rows, cols], self.window)]
        if getattr(self.design, "uses_efficacy", False):
            times.append(dt + self.response)
        return times

    def eff_followup(self, rows: np.ndarray, t_now: np.ndarray, width: int) -> np.ndarray:
        """Follow-up of trials ``rows`` at days ``t_now`` as a fraction of the response assessment time (<= 1)."""
        treated = self.dose[rows, :width] >= 0
        elapsed = np.where(treated, np.maximum(t_now[:, None] - self.dosed_at[rows, :width], 0.0), 0.0)
        if self.response <= 0:
            return np.where(treated, 1.0, 0.0)
        done = elapsed >= self.response - _DELAY_TOL
        return np.where(done, 1.0, np.minimum(elapsed / self.response, 1.0))

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
        n = _per_dose(cdose, treated, nd)
        tox = _per_dose(cdose, self.tox, nd)
        eff = _per_dose(cdose, self.eff, nd)
        both = _per_dose(cdose, self.tox & self.eff, nd)
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
    engine: Literal["auto", "general"] = "auto",
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
    engine
        ``"auto"``: the compiled calendar-time kernel (:mod:`escalade.simulations.fast_tite`)
        when the design qualifies (:func:`~escalade.simulations.fast_tite.tite_plan`), else the
        loops below; ``"general"``: always the loops below. Both give identical outcomes.

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
    slots = patient_slots(design)
    if patients.capacity < slots:
        raise ValueError(f"patients hold {patients.capacity} per trial; the design needs {slots}")
    if not dlt_window_days > 0 or not response_days >= 0:
        raise ValueError(f"dlt_window_days must be > 0 and response_days >= 0; got {dlt_window_days}, "
                         f"{response_days}")
    if stagger_scope not in ("new_dose", "cohort"):
        raise ValueError(f"stagger_scope must be 'new_dose' or 'cohort'; got {stagger_scope!r}")
    if engine not in ("auto", "general"):
        raise ValueError(f"engine must be 'auto' or 'general'; got {engine!r}")
    if engine == "auto" and patients.graded is None:  # CAR-T patients, backfill: the general engine
        from escalade.simulations.fast_tite import run_fast_tite, tite_plan

        plan = tite_plan(design)
        if plan is not None:
            return run_fast_tite(plan, p_tox, p_eff, patients.u_tox, patients.u_eff, patients.u_onset,
                                 patients.u_arrival, timing, dlt_window_days=dlt_window_days,
                                 stagger_scope=stagger_scope, latent=False)
    line = _Timeline(design, p_tox, p_eff, patients, timing, dlt_window_days, response_days, stagger_scope)
    bf = backfill_of(design)
    if bf is not None:
        if decides_on_followup(design):
            if bf.unplaced != "wait" or bf.pending_at_end != "follow":
                raise ValueError(f"design '{design.kind}' decides on pending data: its backfill cohorts take "
                                 "unplaced='wait' and pending_at_end='follow' (the paper's 'leave'/'drop' "
                                 "settings are for designs on complete data)")
            return _run_pending(design, line, bf)
        return _run_backfill(design, line, bf, timing)
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


def _deescalation_table(design: Design, size: int) -> np.ndarray:
    """BOIN's de-escalation boundaries for the design's target, by patients at a dose (``[n]``: the
    smallest DLT count strictly above :math:`\\lambda_d n`; ``BOIN::get.boundary``'s, which the paper's
    backfill safety rule reads, before any design option such as ``stay_on_1_of_3``), for ``n <= size``."""
    cfg = design.config
    target = getattr(cfg, "target", None)
    if target is None:
        raise ValueError(f"design '{design.kind}': backfill's safety rule needs a target DLT rate; set 'target'")
    lam = deescalation_boundary(float(target), getattr(cfg, "p_tox", None))
    raw = lam * np.arange(size + 1)
    near = np.abs(raw - np.round(raw)) < 1e-12
    return np.where(near, np.round(raw) + 1, np.ceil(raw)).astype(np.int64)


def _counts(rows: int, dose: np.ndarray, mask: np.ndarray, nd: int) -> np.ndarray:
    """``(R, D)`` number of ``mask`` slots per dose (``dose`` ``(R, W)``)."""
    r = np.broadcast_to(np.arange(rows)[:, None], dose.shape)
    idx = (r * nd + np.clip(dose, 0, nd - 1))[mask]
    return np.bincount(idx, minlength=rows * nd).reshape(rows, nd).astype(np.int64)


def _known_counts(line: _Timeline, rows: np.ndarray, t: np.ndarray, width: int) -> tuple[np.ndarray, ...]:
    """Per-dose counts of trials ``rows`` at days ``t``: outcomes known (patients, DLTs, responses, both),
    a response seen, and patients treated (known or pending)."""
    nd = line.tried.shape[1]
    cols = np.broadcast_to(np.arange(width), (rows.size, width))
    rr = np.broadcast_to(rows[:, None], cols.shape)
    dose = line.dose[rr, cols]
    treated = dose >= 0
    known = treated & (np.where(treated, line.outcome_known(rr, cols), np.inf) <= t[:, None] + _DELAY_TOL)
    tox, eff = line.tox[rr, cols], line.eff[rr, cols]
    n_obs = _counts(rows.size, dose, known, nd)
    y_obs = _counts(rows.size, dose, known & tox, nd)
    e_obs = _counts(rows.size, dose, known & eff, nd)
    b_obs = _counts(rows.size, dose, known & tox & eff, nd)
    seen = treated & eff & (line.dosed_at[rr, cols] + line.response <= t[:, None] + _DELAY_TOL)
    responded = _counts(rows.size, dose, seen, nd) > 0
    n_all = _counts(rows.size, dose, treated, nd)
    return n_obs, y_obs, e_obs, b_obs, responded, n_all


def _pick_backfill(bf: Backfill, open_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(has, dose)``: whether a dose is open, and the one the setting assigns (highest or lowest)."""
    nd = open_.shape[1]
    has = open_.any(axis=1)
    if bf.assign == "highest":
        return has, nd - 1 - np.argmax(open_[:, ::-1], axis=1)
    return has, np.argmax(open_, axis=1)


def _run_backfill(design: Design, line: _Timeline, bf: Backfill, timing: Timing) -> TrialOutcomes:
    """Escalation cohorts on complete data, with backfill patients placed while a cohort is in follow-up."""
    t_count, cap = line.dose.shape
    nd = design.n_doses
    max_n = int(design.max_n)
    leave = bf.unplaced == "leave"
    gap = DAYS_PER_MONTH / float(timing.rate_per_month)
    stream = line.arrival.copy()  # the k-th arrival of each trial; line.arrival becomes each slot's arrival
    deesc = _deescalation_table(design, patient_slots(design) + 1)
    role = np.zeros((t_count, cap), np.int8)  # 1 escalation, 2 backfill
    ai = np.zeros(t_count, np.int64)  # next arrival
    pi = np.zeros(t_count, np.int64)  # next patient slot
    d0, size0 = design.start()
    c_dose = np.full(t_count, d0, np.int64)
    c_size = np.full(t_count, min(size0, max_n), np.int64)
    c_filled = np.zeros(t_count, np.int64)
    c_tox = np.zeros(t_count, np.int64)
    c_done = np.full(t_count, -np.inf)
    t_open = np.zeros(t_count)
    esc_n = np.zeros(t_count, np.int64)
    bf_n = np.zeros(t_count, np.int64)
    cohorts = np.ones(t_count, np.int64)
    reason = np.zeros(t_count, np.int8)
    t_last = np.zeros(t_count)  # when the last escalation cohort's outcomes were complete
    live = np.ones(t_count, bool)

    def arrival(rows: np.ndarray, k: np.ndarray) -> np.ndarray:
        inside = k < cap
        last = stream[rows, cap - 1]
        return np.where(inside, stream[rows, np.minimum(k, cap - 1)], last + (k - cap + 1) * gap)

    def dose_one(rows: np.ndarray, d: np.ndarray, t: np.ndarray, t_arr: np.ndarray, kind: int) -> np.ndarray:
        slot = pi[rows]
        if np.any(slot >= cap):  # pragma: no cover - slots are max_n + the backfill limit
            raise RuntimeError("backfill engine ran out of patient slots")
        line.dose[rows, slot] = d
        line.dosed_at[rows, slot] = t
        line.arrival[rows, slot] = t_arr
        line.set_outcomes(rows, slot, d)
        tox = line.tox[rows, slot]
        line.tried[rows, d] = True
        role[rows, slot] = kind
        pi[rows] += 1
        ai[rows] += 1
        return tox

    def observed(rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
        return _known_counts(line, rows, t, max(int(pi[rows].max()), 1))

    limit = 4 * cap + 2 * max_n + 10 + (1_000_000 if leave else 0)  # "leave": arrivals that leave cost steps
    for _step in range(limit):
        rows = np.nonzero(live)[0]
        if rows.size == 0:
            break
        ta = arrival(rows, ai[rows])
        room = c_filled[rows] < c_size[rows]
        # 1. the escalation cohort has room: the arrival joins it
        r1 = rows[room]
        if r1.size:
            t = np.maximum(ta[room], t_open[r1])
            if line.stagger > 0:  # a sentinel: the cohort's others are dosed after its observation
                first = c_filled[r1] == 0
                sentinel = (line.stagger_all & first) | ~line.tried[r1, c_dose[r1]]
                hold = np.where(sentinel, t + line.stagger, -np.inf)
                t_open[r1] = np.maximum(t_open[r1], hold)
            tox = dose_one(r1, c_dose[r1], t, ta[room], 1)
            slot = pi[r1] - 1
            c_done[r1] = np.maximum(c_done[r1], line.outcome_known(r1, slot))
            c_filled[r1] += 1
            c_tox[r1] += tox
            esc_n[r1] += 1
        r2 = rows[~room]
        if r2.size == 0:
            continue
        ta2 = ta[~room]
        pending = ta2 < c_done[r2] - _DELAY_TOL
        decide = ~pending
        # 2. the cohort is in follow-up: backfill, or wait / leave
        rp = r2[pending]
        if rp.size:
            tp = ta2[pending]
            n_obs, y_obs, _, _, responded, n_all = observed(rp, tp)
            open_ = backfill_open(bf, n_obs=n_obs, y_obs=y_obs, n_treated=n_all, responded=responded,
                                  current=c_dose[rp], n_backfill_total=bf_n[rp], deescalate=deesc)
            has, pick = _pick_backfill(bf, open_)
            rb = rp[has]
            if rb.size:
                dose_one(rb, pick[has], tp[has], tp[has], 2)
                bf_n[rb] += 1
            rn = rp[~has]
            if leave:
                ai[rn] += 1
            else:  # the arrival waits: the decision is taken when the cohort is complete
                decide[np.nonzero(pending)[0][~has]] = True
        # 3. the cohort is complete: end at max_n, or decide on the outcomes known by now
        rd = r2[decide]
        if rd.size == 0:
            continue
        t_dec = np.maximum(ta2[decide], c_done[rd])
        t_last[rd] = c_done[rd]
        full = esc_n[rd] >= max_n
        reason[rd[full]] = StopReason.MAX_SAMPLE_SIZE
        live[rd[full]] = False
        rq, tq = rd[~full], t_dec[~full]
        if rq.size == 0:
            continue
        n_obs, y_obs, e_obs, b_obs, _, _ = observed(rq, tq)
        states = States(n_obs, y_obs, e_obs, b_obs, c_dose[rq].copy(), c_filled[rq].copy(), c_tox[rq].copy())
        dec = decide_memoised(design, states)
        stop = dec.stop
        reason[rq[stop]] = dec.reason[stop]
        live[rq[stop]] = False
        go = rq[~stop]
        c_dose[go] = dec.dose[~stop]
        c_size[go] = np.minimum(dec.cohort_size[~stop], max_n - esc_n[go])
        if np.any(c_size[go] < 1):
            raise RuntimeError(f"design '{design.kind}' asked for a cohort of size < 1")
        c_filled[go] = 0
        c_tox[go] = 0
        c_done[go] = -np.inf
        t_open[go] = tq[~stop]
        cohorts[go] += 1
    else:
        raise RuntimeError(f"backfill trial loop for design '{design.kind}' did not finish in {limit} steps")
    if bf.pending_at_end == "drop":  # as the paper's software: outcomes after the last cohort's are not seen
        treated = line.dose >= 0
        known = np.where(treated, line.dosed_at + np.where(line.tox, line.onset, line.window), np.inf)
        if getattr(design, "uses_efficacy", False):
            known = np.maximum(known, line.dosed_at + line.response)
        late = (role == 2) & treated & (known > t_last[:, None] + _DELAY_TOL)
        line.dose[late] = NO_DOSE
        line.dosed_at[late] = np.inf
        role[late] = 0
    out = line.finish(reason, cohorts, c_dose, c_filled, c_tox, no_dose_after_safety_stop=True)
    treated = line.dose >= 0
    n_bf = _counts(t_count, line.dose, treated & (role == 2), nd)
    duration = out.duration
    if bf.pending_at_end == "drop":
        first = np.where(treated[:, 0], line.dosed_at[:, 0], 0.0)
        duration = t_last - first
    return dataclasses.replace(out, n_backfill=n_bf, duration=duration)


def _run_pending(design: Design, line: _Timeline, bf: Backfill | None = None) -> TrialOutcomes:
    """Decide at each cohort's arrival on pending data; wait where the design suspends.

    With backfill cohorts (``bf``): where the design suspends accrual at a patient's arrival, that
    patient is treated at once at the backfill dose the setting opens (outcomes known by then), and
    the design is asked again at the next arrival; with no dose open the trial waits as without backfill.
    """

    t_count = line.dose.shape[0]
    nd = design.n_doses
    if getattr(design, "graded", False):
        raise ValueError(f"design '{design.kind}' scores graded outcomes but decides on pending follow-up; "
                         "graded designs run with complete follow-up only")
    max_n = int(design.max_n)
    if bf is not None:
        deesc = _deescalation_table(design, patient_slots(design) + 1)
        role = np.zeros(line.dose.shape, np.int8)  # 1 escalation, 2 backfill
        cohort_of = np.zeros(line.dose.shape, np.int64)
        esc_n = np.zeros(t_count, np.int64)
        bf_n = np.zeros(t_count, np.int64)
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
    late_eff = bool(getattr(design, "uses_efficacy", False))  # pending efficacy too (TITE-BOIN12)
    limit = 4 * max_n + 10 if bf is None else 4 * line.dose.shape[1] + 10
    # running totals of patients dosed per dose (the fast way to pending_data's counts) serve the plain
    # case: no backfill patients between cohorts, no pending efficacy, patients counted at the assigned dose
    totals = bf is None and not late_eff and not line.by_infused
    n_at = np.zeros((t_count, nd), np.int64)
    for _step in range(limit):
        if live.size == 0:
            break
        ask = live[pending_decision[live]]
        if ask.size:
            t_now = np.maximum(line.arrival[ask, pos[ask]], open_at[ask])
            width = int(pos[ask].max())
            pdose, dlt, frac, effo, treated = line.observed(ask, t_now, width)
            if totals:  # as pending_data(...), from the running totals and bincounts of the events
                pdose = np.where(treated, pdose, NO_DOSE)
                in_last = np.arange(width)[None, :] >= last_start[ask][:, None]
                states = States(n_at[ask], _per_dose(pdose, dlt, nd), _per_dose(pdose, effo, nd),
                                _per_dose(pdose, dlt & effo, nd), current[ask], last_n[ask],
                                (dlt & in_last).sum(axis=1).astype(np.int64))
                follow = FollowUp(pdose, dlt, frac)
            else:
                efr = line.eff_followup(ask, t_now, width) if late_eff else None
                in_last = None
                if bf is not None:
                    in_last = cohort_of[ask, :width] == cohorts[ask, None]
                states, follow = pending_data(np.where(treated, pdose, NO_DOSE), dlt, frac, effo, n_doses=nd,
                                              current=current[ask], last_n=last_n[ask],
                                              last_start=last_start[ask], eff_fraction=efr, in_last=in_last)
            out = design.decide_tite(states, follow)
            dec, susp = out.decisions, np.asarray(out.suspend, bool)
            stop = dec.stop & ~susp
            reason[ask[stop]] = dec.reason[stop]
            if bf is not None and susp.any():  # a suspension: the arrival may be backfilled instead of waiting
                rs, ts = ask[susp], t_now[susp]
                n_obs, y_obs, _, _, responded, n_all = _known_counts(line, rs, ts, max(width, 1))
                open_ = backfill_open(bf, n_obs=n_obs, y_obs=y_obs, n_treated=n_all, responded=responded,
                                      current=current[rs], n_backfill_total=bf_n[rs], deescalate=deesc)
                has, pick = _pick_backfill(bf, open_)
                rb, slot = rs[has], pos[rs[has]]
                if rb.size:
                    line.dose_cohort(rb, slot, np.ones(rb.size, np.int64), pick[has], ts[has])
                    role[rb, slot] = 2
                    pos[rb] += 1
                    bf_n[rb] += 1
                    placed = np.zeros(ask.size, bool)
                    placed[np.nonzero(susp)[0][has]] = True
                    susp = susp & ~placed  # asked again at the next arrival
            if susp.any():
                rows = ask[susp]
                # the next day any pending outcome (a DLT or window end; for efficacy designs also a
                # response assessment) becomes known
                nxt = np.full(rows.size, np.inf)
                for known in line.outcome_times(np.broadcast_to(rows[:, None], (rows.size, width)),
                                                np.broadcast_to(np.arange(width), (rows.size, width))):
                    known = np.where(treated[susp], known, np.inf)
                    nxt = np.minimum(nxt, np.where(known > t_now[susp, None] + _DELAY_TOL, known, np.inf).min(axis=1))
                if not np.all(np.isfinite(nxt)):
                    raise RuntimeError(f"design '{design.kind}' suspended accrual with no outcome pending")
                open_at[rows] = nxt
            go = ~stop & ~np.asarray(out.suspend, bool)
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
            used = pos[enrol] if bf is None else esc_n[enrol]
            c = np.minimum(size[enrol], max_n - used)
            if np.any(c < 1):
                raise RuntimeError(f"design '{design.kind}' asked for a cohort of size < 1")
            hold = line.dose_cohort(enrol, pos[enrol], c, dose[enrol], open_at[enrol])
            n_at[enrol, dose[enrol]] += c  # one cohort per trial: the (trial, dose) pairs are distinct
            open_at[enrol] = np.maximum(open_at[enrol], hold)
            if bf is not None:
                k = np.arange(int(c.max()))
                r, j = np.nonzero(k[None, :] < c[:, None])
                role[enrol[r], pos[enrol][r] + k[j]] = 1
                cohort_of[enrol[r], pos[enrol][r] + k[j]] = cohorts[enrol][r] + 1
                esc_n[enrol] += c
            last_start[enrol] = pos[enrol]
            pos[enrol] += c
            cohorts[enrol] += 1
            current[enrol] = dose[enrol]
            last_n[enrol] = c
            pending_decision[enrol] = True
            full = enrol[(pos[enrol] if bf is None else esc_n[enrol]) >= max_n]
            reason[full] = StopReason.MAX_SAMPLE_SIZE
            live = live[~np.isin(live, full)]
    else:
        raise RuntimeError(f"timed trial loop for design '{design.kind}' did not finish in {limit} steps")
    last_tox = np.zeros(t_count, np.int64)
    cols = np.arange(line.dose.shape[1])[None, :]
    in_last = (cols >= last_start[:, None]) & (cols < pos[:, None])
    if bf is not None:
        in_last = cohort_of == cohorts[:, None]
    last_tox = (line.tox & in_last).sum(axis=1).astype(np.int64)
    # A trial stopped for toxicity recommends no dose, even where outcomes pending at the stop
    # later turn out better (the final data can then look safer than the data that stopped it).
    out = line.finish(reason, cohorts, current, last_n, last_tox, no_dose_after_safety_stop=True)
    if bf is None:
        return out
    return dataclasses.replace(out, n_backfill=_counts(t_count, line.dose, (line.dose >= 0) & (role == 2), nd))


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
    engine: Literal["auto", "general"] = "auto",
) -> TrialOutcomes:
    """Simulate ``n_trials`` timed trials in one process (tests, benches).

    Chunks and seeds are laid out as the parallel runner lays them out, so the
    result equals the runner's for the same ``seed`` and ``scenario`` key.
    ``engine`` as :func:`run_timed_trials`; the compiled kernel reads latent
    normals here and draws only the streams it uses.
    """
    def run(d: Design, pt: np.ndarray, pe: np.ndarray, patients: Patients) -> TrialOutcomes:
        return run_timed_trials(d, pt, pe, patients, timing, dlt_window_days=dlt_window_days,
                                response_days=response_days, stagger_scope=stagger_scope, engine=engine)

    if engine == "auto":
        from escalade.simulations.fast_tite import simulate_fast_tite

        fast = simulate_fast_tite(design, p_tox, p_eff, timing=timing, dlt_window_days=dlt_window_days,
                                  response_days=response_days, n_trials=n_trials, seed=seed,
                                  association=association, chunk_size=chunk_size, scenario=scenario,
                                  stagger_scope=stagger_scope)
        if fast is not None:
            return fast
    slots = patient_slots(design)
    if slots == int(design.max_n):
        return simulate(design, p_tox, p_eff, n_trials=n_trials, seed=seed, association=association,
                        chunk_size=chunk_size, scenario=scenario, run=run)
    # backfill: more patient slots per trial (the same draws for the first max_n of them)
    pt = np.asarray(p_tox, float)
    pe = np.zeros_like(pt) if p_eff is None else np.asarray(p_eff, float)
    parts = []
    for chunk, start in enumerate(range(0, n_trials, chunk_size)):
        size = min(chunk_size, n_trials - start)
        pts = draw_patients(seed, scenario, chunk, size, slots, association)
        parts.append(run(design, pt, pe, pts).offset(start))
    return TrialOutcomes.concat(parts)
