"""Conduct mode: "what dose for the next cohort?" from a live trial's patient list.

DESIGN.md section 2: the same ``decide`` that runs the simulations answers the
question for real data. :func:`~escalade.simulations.patients_csv.read_patients`
reads and checks a patients CSV (the columns are described there),
:func:`patients_states` turns it into the design's :class:`States`,
:func:`next_dose` asks the design and gathers the estimates behind the answer,
and :func:`format_next_dose` writes it for people.

The state
---------
Per-dose counts of patients, DLTs, responders and DLT-and-response; the current
dose is the dose of the last patient. The last cohort (used by coherence rules,
Cheung 2005) is the patients of the last ``cohort`` value when that column is
given; otherwise the trailing run of patients at the last dose, capped at the
design's cohort size (a note says so when the run is not a whole number of
cohorts). If the trial has reached the design's ``max_n`` the answer is "stop:
max sample size" without asking ``decide`` (as the simulator).

Pending data
------------
A design that decides on pending data (it has ``decide_tite``: TITE-CRM,
TITE-BOIN) is asked exactly as the time-aware engine asks it
(:func:`escalade.simulations.timed.pending_data` builds the same
:class:`States` and :class:`~escalade.design.tite_crm.FollowUp`): each patient's
follow-up is ``as_of - enrol_date`` days, a DLT's time ``dlt_date -
enrol_date``, both as fractions of the DLT window
(:func:`~escalade.simulations.timed.followup_fraction`). The answer lists every
pending patient (no DLT, window not over) with days of follow-up and the
weight the design gives them, and may be "suspend accrual" (TITE-BOIN).
A design that also decides with responses pending (TITE-BOIN12) takes
``response_days``: a blank ``response`` is an assessment not yet made
(follow-up ``as_of - enrol_date`` over ``response_days``; an error once that
day is past), a ``1`` counts from its ``response_date``, a ``0`` is complete.

Warnings
--------
The answer carries warnings (never silently): an untried dose more than one
level above the highest dose tried; an answer whose estimated P(DLT) exceeds
the target; data that skip a dose or exceed ``max_n``; a "dose selected if the
trial ended now" that no patient received; patients still inside the DLT
window counted as complete by a design that decides on complete data.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, States, StopReason, is_graded
from escalade.simulations.patients_csv import (
    _BOOL_FIX, Patient, PatientDataError, PatientList, Problem, date_problems, read_patients,
)
from escalade.simulations.timed import followup_fraction, pending_data

__all__ = [
    "Patient",
    "PatientList",
    "Problem",
    "PatientDataError",
    "NextDose",
    "read_patients",
    "patients_states",
    "graded_states",
    "next_dose",
    "format_next_dose",
]

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class _LastCohort:
    n: int
    tox: int
    lines: tuple[int, ...]
    note: str | None


def _last_cohort(patients: list[Patient] | PatientList, cohort_size: int, name: str | None) -> _LastCohort:
    if not patients:
        return _LastCohort(0, 0, (), None)
    patients = list(patients)
    last = patients[-1]
    if last.cohort is not None:
        members = [p for p in patients if p.cohort == last.cohort]
        first = patients.index(members[0])
        if patients[first:] != members:
            raise PatientDataError(name, [Problem(members[0].line, "cohort", last.cohort,
                                                  "the last cohort's patients must be the last rows of the file")])
        if any(p.dose != last.dose for p in members):
            bad = next(p for p in members if p.dose != last.dose)
            raise PatientDataError(name, [Problem(bad.line, "dose_level", str(bad.dose + 1),
                                                  f"cohort {last.cohort} mixes doses; a cohort has one dose")])
        return _LastCohort(len(members), sum(p.dlt for p in members), tuple(p.line for p in members), None)
    run = 0
    for p in reversed(patients):
        if p.dose != last.dose:
            break
        run += 1
    k = min(run, cohort_size)
    members = patients[-k:]
    note = None
    if run % cohort_size:
        note = (f"the last {run} patient(s) at dose {last.dose + 1} are not a whole number of cohorts of "
                f"{cohort_size}; the last cohort was taken as the last {k} (add a 'cohort' column to say otherwise)")
    return _LastCohort(k, sum(p.dlt for p in members), tuple(p.line for p in members), note)


def _cohort_size(design: Design) -> int:
    cfg = getattr(design, "config", None)
    size = getattr(cfg, "cohort_size", None)
    return int(size) if isinstance(size, (int, np.integer)) and size >= 1 else int(design.start()[1])


def patients_states(patients: list[Patient] | PatientList, n_doses: int, *, cohort_size: int = 3,
                    start_dose: int = 0, name: str | None = None) -> tuple[States, list[str]]:
    """The one-row :class:`States` of a patient list, and notes on how it was built.

    Responses not recorded count as non-responses in ``eff``/``both`` (only
    designs that ignore responses accept blanks, see :func:`read_patients`).
    """
    dose = np.fromiter((p.dose for p in patients), np.int64, len(patients))
    dlt = np.fromiter((p.dlt for p in patients), bool, len(patients))
    resp = np.fromiter((bool(p.response) for p in patients), bool, len(patients))
    n = np.bincount(dose, minlength=n_doses).astype(np.int64)
    tox = np.bincount(dose, weights=dlt, minlength=n_doses).astype(np.int64)
    eff = np.bincount(dose, weights=resp, minlength=n_doses).astype(np.int64)
    both = np.bincount(dose, weights=dlt & resp, minlength=n_doses).astype(np.int64)
    notes: list[str] = []
    if not patients:
        return States.empty(1, n_doses, start_dose), ["no patient yet: the first cohort gets the start dose"]
    lc = _last_cohort(patients, cohort_size, name)
    if lc.note:
        notes.append(lc.note)
    st = States.from_counts(n, tox, eff, both, current=patients[-1].dose, last_n=lc.n, last_tox=lc.tox)
    return st, notes


@dataclass(frozen=True, slots=True, eq=False)
class NextDose:
    """The design's answer for the next cohort, with what it rests on.

    Doses are 1-based. ``next_dose`` is None when the trial stops (``reason``
    says why) or when accrual is suspended (``suspend``: enrol nobody now, ask
    again when a pending outcome is known). ``selected_now`` is the dose the
    design would select if the trial ended with these data (None for none;
    ``selected_now_untried`` says no patient received it). ``table`` has one
    row per dose (n, DLTs, responses, and the design's estimates where it
    offers them); ``details`` holds rule quantities (e.g. BOIN boundaries at
    the current n, TITE-BOIN's effective counts, or the scalar fields of
    ``design.explain``); ``explain`` is what the design's explanation returned.
    ``pending`` lists the patients still in follow-up (id, dose, enrol_date,
    days of follow-up, weight, window_ends) for designs on pending data.
    ``warnings`` are the safety warnings of the module docstring;
    ``next_check`` says, when accrual is suspended, when to ask again.
    """

    design: str
    n_patients: int
    current_dose: int | None
    last_cohort_n: int
    last_cohort_dlt: int
    next_dose: int | None
    cohort_size: int | None
    stop: bool
    reason: str
    selected_now: int | None
    table: pd.DataFrame
    details: dict[str, Any] = field(default_factory=dict)
    explain: Any = None
    notes: tuple[str, ...] = ()
    states: States | None = None
    suspend: bool = False
    pending: pd.DataFrame | None = None
    warnings: tuple[str, ...] = ()
    as_of: str | None = None
    dlt_window_days: float | None = None
    selected_now_untried: bool = False
    next_check: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the per-dose table as a list of records, NaN as None)."""
        table = [{k: _native(v) for k, v in row.items()} for row in self.table.to_dict(orient="records")]
        pending = None
        if self.pending is not None:
            pending = [{k: _native(v) for k, v in row.items()} for row in self.pending.to_dict(orient="records")]
        return {
            "design": self.design, "n_patients": self.n_patients, "current_dose": self.current_dose,
            "as_of": self.as_of, "dlt_window_days": self.dlt_window_days,
            "last_cohort": {"n": self.last_cohort_n, "dlt": self.last_cohort_dlt},
            "next_dose": self.next_dose, "cohort_size": self.cohort_size, "stop": self.stop,
            "suspend": self.suspend, "reason": self.reason, "selected_now": self.selected_now,
            "selected_now_untried": self.selected_now_untried, "next_check": self.next_check,
            "warnings": list(self.warnings),
            "pending": pending, "doses": table,
            "details": {k: _native(v) for k, v in self.details.items()}, "notes": list(self.notes),
        }


def next_dose(
    design: Design,
    patients: str | Path | io.TextIOBase | PatientList | list[Patient],
    *,
    name: str | None = None,
    dose_labels: list[str] | None = None,
    explain_kwargs: dict[str, Any] | None = None,
    as_of: _dt.date | None = None,
    dlt_window_days: float | None = None,
    target: float | None = None,
    response_days: float | None = None,
    response_categories: list[str] | tuple[str, ...] | None = None,
) -> NextDose:
    """Next dose (or stop, or suspend accrual, with the reason) for a trial's data under ``design``.

    Parameters
    ----------
    design
        Any design. One with ``decide_tite`` (TITE-CRM, TITE-BOIN) decides on
        the follow-up of each patient and needs ``enrol_date`` (and
        ``dlt_date`` for DLTs) in the data and ``dlt_window_days``.
    patients
        A patients CSV (see :mod:`escalade.simulations.patients_csv`) or patients already read.
    name
        File name for messages.
    dose_labels
        Labels printed next to dose numbers (e.g. ``["DL1", ...]``).
    explain_kwargs
        Passed to ``design.explain`` (e.g. ``{"mcmc": True}`` for EffTox's
        NUTS posterior with its ArviZ diagnostics).
    as_of
        Decision date (default: today): follow-up is counted up to it, and no
        date in the data may be later.
    dlt_window_days
        Length of the DLT window in days (the study's ``dlt_window_days``).
    target
        Target DLT rate for the "estimated P(DLT) above target" warning
        (default: the design's ``config.target`` where it has one).
    response_days
        Day of the response assessment after ``enrol_date`` (the study's
        ``response_days``), for designs that decide with responses pending
        (TITE-BOIN12). There a blank ``response`` means "not assessed yet"
        (allowed until that day); a ``1`` counts from its ``response_date``
        (the assessment day when blank), a ``0`` is a completed assessment.
    response_categories
        The protocol's response categories, best first, for a design on graded
        outcomes that scores efficacy (gBOIN-ET); default: the categories its
        ``response_weights`` name. The data then give ``grade_<type>`` columns
        and ``response_category`` (:mod:`escalade.simulations.patients_csv`).

    Raises
    ------
    PatientDataError
        Bad rows (all listed with line, field and fix).
    """
    nd = int(design.n_doses)
    graded = is_graded(design)
    uses_eff = bool(getattr(design, "uses_efficacy", False))
    cats = _graded_categories(design, response_categories) if graded and uses_eff else None
    on_pending = callable(getattr(design, "decide_tite", None))
    if on_pending and dlt_window_days is None:
        raise ValueError(f"design '{design.kind}' decides on follow-up time: pass dlt_window_days")
    if dlt_window_days is not None and not dlt_window_days > 0:
        raise ValueError(f"dlt_window_days must be > 0; got {dlt_window_days}")
    late_eff = on_pending and uses_eff  # responses may be pending too (TITE-BOIN12)
    if late_eff and (response_days is None or not response_days > 0):
        raise ValueError(f"design '{design.kind}' decides with responses pending: pass response_days > 0 (the "
                         f"study's response_days); got {response_days}")
    as_of = as_of or _dt.date.today()
    if isinstance(patients, (list, tuple, PatientList)):
        pts = patients
        problems = date_problems(pts, require_dates=on_pending, as_of=as_of, dlt_window_days=dlt_window_days)
        if problems:
            raise PatientDataError(name, problems)
    else:
        pts = read_patients(patients, n_doses=nd, require_response=uses_eff and not late_eff and not graded,
                            require_dates=on_pending, as_of=as_of, dlt_window_days=dlt_window_days, name=name,
                            require_grades=graded, response_categories=cats)
    ignored = pts.ignored_columns if isinstance(pts, PatientList) else ()
    pts = list(pts)
    bad = [p for p in pts if not 0 <= p.dose < nd]
    if bad:
        raise PatientDataError(name, [Problem(p.line, "dose_level", str(p.dose + 1), f"must be between 1 and {nd}")
                                      for p in bad])
    if late_eff:
        overdue = [p for p in pts if p.response is None
                   and (as_of - p.enrol).days >= float(response_days)]  # type: ignore[arg-type]
        if overdue:
            raise PatientDataError(name, [Problem(p.line, "response", "", f"{_BOOL_FIX}: the response assessment "
                                                  f"(day {float(response_days):g} after enrol_date) is past")
                                          for p in overdue])
    elif uses_eff and not graded:
        blank = [p for p in pts if p.response is None]
        if blank:
            raise PatientDataError(name, [Problem(p.line, "response", "", f"{_BOOL_FIX}; this design decides on "
                                                                          f"responses") for p in blank])
    size0 = _cohort_size(design)
    start, first_size = design.start()
    states, notes = patients_states(pts, nd, cohort_size=size0, start_dose=start, name=name)
    if graded:
        states = graded_states(design, pts, states, cats, name=name)
    follow = None
    if on_pending and pts:
        states, follow = _pending_question(pts, states, nd, as_of, float(dlt_window_days),
                                           response_days=float(response_days) if late_eff else None)
    if ignored:
        notes.append(f"column(s) not used by the decision: {', '.join(ignored)}")
    total = int(states.total_n[0])
    suspend = False
    if total == 0:
        nxt, size, stop, reason = start, first_size, False, StopReason.CONTINUE
    elif total >= int(design.max_n):
        nxt, size, stop, reason = NO_DOSE, None, True, StopReason.MAX_SAMPLE_SIZE
        notes.append(f"{total} patients reach the maximum sample size ({design.max_n}): the trial is complete")
    else:
        if follow is not None:
            out = design.decide_tite(states, follow)
            dec, suspend = out.decisions, bool(np.asarray(out.suspend)[0])
        else:
            dec = design.decide(states)
        stop = bool(dec.stop[0]) and not suspend
        nxt = NO_DOSE if stop or suspend else int(dec.dose[0])
        size = None if stop or suspend else int(dec.cohort_size[0])
        reason = StopReason(int(dec.reason[0])) if not suspend else StopReason.CONTINUE
        if size is not None:
            size = min(size, int(design.max_n) - total)
    sel = int(np.asarray(design.select(states))[0]) if total else NO_DOSE
    table = _dose_table(states, pts, nd, dose_labels)
    details: dict[str, Any] = {}
    explained = None
    weights = None
    if follow is not None and callable(getattr(design, "explain_tite", None)):
        explained = design.explain_tite(states, follow)
        weights = np.asarray(explained.weights, float)
        details["rule"] = explained.rule
        details.update(explained.details)
        per_dose = pd.DataFrame(explained.table()) if explained.table() else None
        if per_dose is not None and len(per_dose) == nd:
            extra = per_dose[[c for c in per_dose.columns if c not in table.columns]]
            table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    else:
        explained = design.explain(states, **(explain_kwargs or {}))
        per_dose, scalars = _explained_parts(explained, nd)
        if per_dose is not None:
            extra = per_dose[[c for c in per_dose.columns if c not in table.columns]]
            table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
        details.update(scalars)
    pending = None
    next_check = None
    if follow is not None:
        pending = _pending_table(pts, follow, weights, as_of, float(dlt_window_days))
        if weights is None:
            notes.append("this design gives no per-patient weights; the weight shown is follow-up / DLT window")
        if suspend:
            next_check = _suspend_note(pending, int(states.current[0]) + 1)
        if len(pending) and total and not stop:
            notes.append(f"the dose selected if the trial ended now counts the {len(pending)} pending patient(s) "
                         f"as DLT-free")
        n_eff_pending = int(np.asarray(follow.pending_eff)[0].sum())
        if n_eff_pending:
            notes.append(f"{n_eff_pending} patient(s) await the response assessment (day {float(response_days):g}); "
                         f"they count by the fraction of it already followed")
    cur = int(states.current[0]) + 1 if total else None
    selected_now = None if sel < 0 or sel >= nd else sel + 1
    untried_sel = selected_now is not None and int(states.n[0, selected_now - 1]) == 0
    if target is None:
        target = getattr(getattr(design, "config", None), "target", None)
    warnings = _warnings(design, pts, states, table, next_dose=None if nxt == NO_DOSE else int(nxt),
                         start=int(start), selected_now=selected_now, untried_selected=untried_sel, target=target,
                         on_pending=on_pending, as_of=as_of, window=dlt_window_days)
    for w in warnings:
        log.info("next dose warning: %s", w)
    result = NextDose(
        design=design.kind, n_patients=total, current_dose=cur,
        last_cohort_n=int(states.last_n[0]), last_cohort_dlt=int(states.last_tox[0]),
        next_dose=None if nxt == NO_DOSE else int(nxt) + 1, cohort_size=size, stop=stop,
        reason="suspend accrual" if suspend else reason.label, selected_now=selected_now, table=table,
        details=details, explain=explained, notes=tuple(notes), states=states, suspend=suspend, pending=pending,
        warnings=tuple(warnings), as_of=as_of.isoformat(), dlt_window_days=dlt_window_days,
        selected_now_untried=untried_sel, next_check=next_check,
    )
    log.info("next dose (%s, %d patients): %s", design.kind, total,
             "stop: " + reason.label if stop else "suspend accrual" if suspend else f"dose {result.next_dose}")
    return result


def _graded_categories(design: Design, given: Any) -> list[str]:
    if given is not None:
        return [str(c) for c in given]
    weights = getattr(getattr(design, "config", None), "response_weights", None)
    if weights:
        return [str(c) for c in weights]
    raise ValueError(f"design '{design.kind}' scores response categories: pass response_categories (the "
                     f"protocol's categories, best first), or give the design response_weights")


def graded_states(design: Design, patients: list[Patient] | PatientList, states: States,
                  categories: list[str] | None, *, name: str | None = None) -> States:
    """``states`` with the per-dose sums of the patients' graded scores (``design.patient_scores``).

    Every patient's grades come from the ``grade_<type>`` columns, the
    response from ``response_category`` (index into ``categories``). A design
    error (weights naming a type the file lacks) becomes one
    :class:`PatientDataError` line naming the column to add.
    """
    from escalade.design.errors import DesignError

    pts = list(patients)
    nd = states.n_doses
    if not pts:
        z = np.zeros((1, nd))
        return dataclasses.replace(states, tox_score=z, eff_score=z.copy())
    types = [t for t, _ in pts[0].grades]
    grades = {t: np.array([dict(p.grades)[t] for p in pts], np.int8) for t in types}
    cats = list(categories) if categories else ["(none)"]
    resp = np.array([cats.index(p.response_category) if categories else 0 for p in pts], np.int8)
    try:
        ts, es = design.patient_scores(grades, resp, cats)
    except DesignError as exc:
        raise PatientDataError(name, [Problem(0, "file", name or "", f"{exc} (in a patients file: one "
                                                                     f"grade_<type> column per AE type)")]) from None
    dose = np.fromiter((p.dose for p in pts), np.int64, len(pts))
    tox = np.bincount(dose, weights=np.asarray(ts, float), minlength=nd)[None, :]
    eff = np.bincount(dose, weights=np.asarray(es, float), minlength=nd)[None, :]
    return dataclasses.replace(states, tox_score=tox, eff_score=eff)


def _pending_question(pts: list[Patient], states: States, nd: int, as_of: _dt.date, window: float,
                      *, response_days: float | None = None) -> tuple[States, Any]:
    """The :class:`States` and ``FollowUp`` of the patients as of ``as_of``, built as the time-aware engine
    builds them (:func:`~escalade.simulations.timed.pending_data`); with ``response_days``, also each patient's
    efficacy follow-up (a recorded response at its ``response_date``, else the assessment day; a recorded 0:
    assessed; blank: pending)."""
    enrol = np.array([p.enrol.toordinal() for p in pts], np.int64)  # dates were checked: never None here
    elapsed = (as_of.toordinal() - enrol).astype(float)
    dlt = np.array([p.dlt for p in pts], bool)
    dlt_day = np.array([(p.dlt_on.toordinal() if p.dlt else 0) for p in pts], np.int64) - np.where(dlt, enrol, 0)
    frac = followup_fraction(elapsed, dlt_day.astype(float), dlt, window)
    dose = np.array([p.dose for p in pts], np.int64)
    eff = np.array([bool(p.response) for p in pts], bool)
    last_n = int(states.last_n[0])
    efr = None
    if response_days is not None:
        resp_day = np.array([((p.response_on.toordinal() - p.enrol.toordinal()) if p.response_on else response_days)
                             for p in pts], float)
        efr = np.where(eff, np.minimum(resp_day / response_days, 1.0),
                       np.where([p.response is None for p in pts], np.minimum(elapsed / response_days, 1.0), 1.0))
        efr = np.clip(efr, 0.0, 1.0)
    st, follow = pending_data(dose[None], dlt[None], frac[None], eff[None], n_doses=nd, current=states.current,
                              last_n=states.last_n, last_start=np.array([len(pts) - last_n]),
                              eff_fraction=None if efr is None else efr[None])
    return st, follow


def _pending_table(pts: list[Patient], follow: Any, weights: np.ndarray | None, as_of: _dt.date, window: float
                   ) -> pd.DataFrame:
    """One row per pending patient: id, dose, enrol_date, days of follow-up, weight, window_ends."""
    pend = np.asarray(follow.pending)[0]
    w = np.asarray(follow.fraction)[0] if weights is None else weights
    rows = []
    for i in np.nonzero(pend)[0]:
        p = pts[i]
        rows.append({"id": p.id, "dose": p.dose + 1, "enrol_date": p.enrol.isoformat(),
                     "days": (as_of - p.enrol).days, "weight": float(w[i]),
                     "window_ends": (p.enrol + _dt.timedelta(days=window)).isoformat()})
    return pd.DataFrame(rows, columns=["id", "dose", "enrol_date", "days", "weight", "window_ends"])


def _suspend_note(pending: pd.DataFrame, current: int) -> str:
    at = pending[pending["dose"] == current]
    if not len(at):
        return "ask again when a pending outcome is known"
    first = at.sort_values("window_ends", kind="stable").iloc[0]
    return (f"{len(at)} patient(s) at dose {current} are pending; ask again when one of them has a DLT or "
            f"completes the DLT window (the first window ends on {first['window_ends']}, patient {first['id']})")


#: Columns of a design's per-dose estimates read as "estimated P(DLT)", in order of preference: CRM and
#: TITE-CRM (``ptox``), EffTox (``prob_tox``), BOIN (``p_isotonic``). Interim, until every design's
#: explanation names its DLT-probability estimate one way.
_P_DLT_COLUMNS = ("ptox", "prob_tox", "p_isotonic")


def _warnings(design: Design, pts: list[Patient], states: States, table: pd.DataFrame, *, next_dose: int | None,
              start: int, selected_now: int | None, untried_selected: bool, target: float | None,
              on_pending: bool, as_of: _dt.date, window: float | None) -> list[str]:
    """Safety warnings of the answer (module docstring); doses 0-based in, 1-based in the text."""
    out: list[str] = []
    n = states.n[0]
    total = int(n.sum())
    tried = np.nonzero(n > 0)[0]
    # data that skip a dose: a patient above the highest dose given before, plus one (or above the start dose)
    skips: list[str] = []
    hi = -1
    for p in pts:
        limit = max(hi + 1, start)
        if p.dose > limit:
            skips.append(f"line {p.line} ({p.id}) at dose {p.dose + 1}" + (
                f" when the highest dose given was {hi + 1}" if hi >= 0 else f" above the start dose {start + 1}"))
        hi = max(hi, p.dose)
    if skips:
        more = f" and {len(skips) - 3} more" if len(skips) > 3 else ""
        out.append(f"the data skip a dose: {'; '.join(skips[:3])}{more}; check the dose levels")
    max_n = int(design.max_n)
    if total > max_n:
        out.append(f"the data have {total} patients, more than the design's max_n ({max_n}); check the file and "
                   f"the study's max_n")
    if next_dose is not None and total:
        top = int(tried.max())
        if n[next_dose] == 0 and next_dose > top + 1:
            out.append(f"the answer, dose {next_dose + 1}, is untried and more than one level above the highest "
                       f"dose tried ({top + 1})")
        col = next((c for c in _P_DLT_COLUMNS if c in table.columns), None)
        if target is not None and col is not None:
            est = float(table[col].iloc[next_dose])
            if est == est and est > target:
                out.append(f"the estimated P(DLT) at the answer, dose {next_dose + 1}, is {est:.2f} ({col}), above "
                           f"the target {target:g}")
        elif target is not None and n[next_dose] > 0:
            rate = float(states.tox[0, next_dose] / n[next_dose])
            if rate > target:
                out.append(f"the observed DLT rate at the answer, dose {next_dose + 1}, is {rate:.2f}, above the "
                           f"target {target:g} (the design gives no model estimate)")
    if untried_selected:
        out.append(f"the dose selected if the trial ended now, dose {selected_now}, has not been given to any "
                   f"patient")
    if not on_pending and window is not None:
        inside = [p.id for p in pts if p.enrol is not None and not p.dlt and (as_of - p.enrol).days < window]
        if inside:
            shown = ", ".join(inside[:5]) + (f" and {len(inside) - 5} more" if len(inside) > 5 else "")
            out.append(f"{len(inside)} patient(s) without a DLT are still inside the {window:g}-day DLT window as of "
                       f"{as_of.isoformat()} ({shown}); this design decides on complete data and counts them as "
                       f"DLT-free: wait for their windows to end")
    return out


def _dose_table(states: States, pts: list[Patient], nd: int, labels: list[str] | None) -> pd.DataFrame:
    n = states.n[0]
    tox = states.tox[0]
    df = pd.DataFrame({"dose": np.arange(1, nd + 1)})
    if labels is not None:
        df["label"] = list(labels)[:nd] + [""] * max(0, nd - len(labels))
    df["n"] = n
    df["dlt"] = tox
    with np.errstate(invalid="ignore", divide="ignore"):
        df["dlt_rate"] = np.where(n > 0, tox / np.maximum(n, 1), np.nan)
    if any(p.response is not None for p in pts):
        df["responses"] = states.eff[0]
        df["dlt_and_response"] = states.both[0]
    return df


def _explained_parts(ex: Any, nd: int) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """Per-dose columns and scalar quantities of whatever ``design.explain`` returned.

    A DataFrame, or an object with a ``table()`` method returning columns, with one
    row per dose gives per-dose columns; a mapping, or a dataclass's float and
    text fields, gives scalars (integers are left out: a design's internal dose
    indices are 0-based and would read wrongly next to 1-based doses).
    """
    per_dose: pd.DataFrame | None = None
    if isinstance(ex, pd.DataFrame):
        per_dose = ex
    elif callable(getattr(ex, "table", None)):
        try:
            per_dose = pd.DataFrame(ex.table())
        except (TypeError, ValueError):
            per_dose = None
    if per_dose is not None and len(per_dose) != nd:
        per_dose = None
    scalars: dict[str, Any] = {}
    if callable(getattr(ex, "details", None)):  # the Explanation protocol
        scalars = dict(ex.details())
    elif isinstance(ex, dict):
        scalars = dict(ex)
    elif dataclasses.is_dataclass(ex):
        for f in dataclasses.fields(ex):
            v = getattr(ex, f.name)
            if isinstance(v, (float, str)) and not isinstance(v, bool):
                scalars[f.name] = v
    return per_dose, scalars


def format_next_dose(result: NextDose, *, digits: int = 2) -> str:
    """The answer, its warnings, the pending patients, the data per dose and the rule behind it, as plain text."""
    head = f"Design: {result.design}; {result.n_patients} patient(s)"
    if result.current_dose:
        head += f", current dose {result.current_dose}"
    if result.pending is not None:
        head += f"; data as of {result.as_of}, DLT window {result.dlt_window_days:g} days"
    lines = [head]
    if result.n_patients:
        lines.append(f"Last cohort: {result.last_cohort_n} patient(s) at dose {result.current_dose}, "
                     f"{result.last_cohort_dlt} DLT(s)" + (" observed" if result.pending is not None else ""))
    if result.stop:
        lines.append(f"DECISION: stop the trial ({result.reason})")
    elif result.suspend:
        lines.append("DECISION: suspend accrual: enrol nobody now, ask again when a pending outcome is known")
        if result.next_check:
            lines.append(f"  {result.next_check}")
    else:
        lines.append(f"DECISION: next cohort of {result.cohort_size} at dose {result.next_dose}")
    for w in result.warnings:
        lines.append(f"WARNING: {w}")
    sel = "none" if result.selected_now is None else str(result.selected_now)
    if result.selected_now_untried:
        sel += " (no patient has received this dose)"
    lines.append(f"Dose selected if the trial ended now: {sel}")
    if result.pending is not None:
        lines.append("")
        if len(result.pending):
            lines.append(f"Pending patients (no DLT yet, DLT window not over): {len(result.pending)}")
            lines.append(result.pending.to_string(index=False, float_format=lambda v: f"{v:.{digits + 1}f}"))
        else:
            lines.append("Pending patients: none (every DLT window is over or ended in a DLT)")
    lines.append("")
    lines.append(result.table.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}", na_rep="-"))
    if result.details:
        lines.append("")
        d = result.details
        if "rule" in d:
            lines.append(d["rule"])
        shown = {k: v for k, v in d.items() if k != "rule"}
        lines.append(", ".join(f"{k} = {_fmt(v, digits + 2)}" for k, v in shown.items()))
    if isinstance(result.explain, pd.DataFrame) and len(result.explain) != len(result.table):
        lines.append("")
        lines.append(result.explain.to_string(index=False))
    for note in result.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines)


def _native(v: Any) -> Any:
    """Plain Python value for JSON: numpy scalars unwrapped, NaN/NA as None."""
    if isinstance(v, np.generic):
        v = v.item()
    if v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return v


def _fmt(v: Any, digits: int) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
