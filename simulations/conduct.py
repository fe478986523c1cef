"""Conduct mode: "what dose for the next cohort?" from a live trial's patient list.

DESIGN.md section 2: the same ``decide`` that runs the simulations answers the
question for real data. :func:`read_patients` reads and checks a patients CSV,
:func:`patients_states` turns it into the design's :class:`States`,
:func:`next_dose` asks the design and gathers the estimates behind the answer,
and :func:`format_next_dose` writes it for people.

Patients file
-------------
One row per patient, in the order they were treated, with a header row:

=============  =========  =====================================================
column         required   values
=============  =========  =====================================================
``id``         yes        any text, unique
``dose_level`` yes        whole number, 1 = lowest dose
``dlt``        yes        ``0``/``1``, ``no``/``yes``, ``false``/``true`` (any case)
``response``   phase I/II same values; blank allowed only for toxicity-only designs
``cohort``     no         cohort label; when given, the last cohort is its last value
``*date``      no         ISO dates ``YYYY-MM-DD`` (e.g. ``enrol_date``); when
                          ``enrol_date`` is present the rows must be in its order
=============  =========  =====================================================

Blank lines and lines starting with ``#`` are skipped; other columns are kept
out of the decision and listed in the notes (a column whose name is close to a
known one is an error, with a did-you-mean). Nothing is guessed: every bad row
is reported, with its line number and the fix, in one :class:`PatientDataError`.

The state
---------
Per-dose counts of patients, DLTs, responders and DLT-and-response; the current
dose is the dose of the last patient. The last cohort (used by coherence rules,
Cheung 2005) is the patients of the last ``cohort`` value when that column is
given; otherwise the trailing run of patients at the last dose, capped at the
design's cohort size (a note says so when the run is not a whole number of
cohorts). If the trial has reached the design's ``max_n`` the answer is "stop:
max sample size" without asking ``decide`` (as the simulator).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import difflib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, States, StopReason
from escalade.scenarios.errors import EscaladeError

__all__ = [
    "Patient",
    "PatientList",
    "Problem",
    "PatientDataError",
    "NextDose",
    "read_patients",
    "patients_states",
    "next_dose",
    "format_next_dose",
]

log = logging.getLogger(__name__)

_REQUIRED = ("id", "dose_level", "dlt")
_OPTIONAL = ("response", "cohort")
_ENROL = "enrol_date"
_TRUE = {"1", "yes", "y", "true"}
_FALSE = {"0", "no", "n", "false"}
_BOOL_FIX = "write 0/no or 1/yes"


@dataclass(frozen=True, slots=True)
class Patient:
    """One patient: 0-based ``dose``; ``response`` is None where not recorded."""

    id: str
    dose: int
    dlt: bool
    response: bool | None
    line: int
    cohort: str | None = None
    dates: tuple[tuple[str, _dt.date | None], ...] = ()


@dataclass(frozen=True, slots=True)
class PatientList:
    """Patients read from a file, in file order, with the columns left out of the decision."""

    patients: tuple[Patient, ...]
    ignored_columns: tuple[str, ...] = ()
    source: str | None = None

    def __iter__(self) -> Any:
        return iter(self.patients)

    def __len__(self) -> int:
        return len(self.patients)

    def __getitem__(self, i: Any) -> Any:
        return self.patients[i]


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad entry of the patients file."""

    line: int
    field: str
    value: str
    fix: str

    def __str__(self) -> str:
        shown = repr(self.value) if self.value != "" else "(blank)"
        return f"line {self.line}: {self.field} = {shown}: {self.fix}"


class PatientDataError(EscaladeError, ValueError):
    """The patients file has problems; ``problems`` lists every one (line, field, value, fix)."""

    def __init__(self, file: str | None, problems: list[Problem]) -> None:
        self.file = file
        self.problems = list(problems)
        where = file or "patients data"
        body = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{where}: {len(self.problems)} problem(s); nothing was decided:\n{body}")


def _bool(text: str) -> bool | None:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def read_patients(
    source: str | Path | io.TextIOBase,
    *,
    n_doses: int | None = None,
    require_response: bool = False,
    name: str | None = None,
) -> PatientList:
    """Read and check a patients CSV (path, file object, or the CSV text itself if it has a newline).

    Parameters
    ----------
    source
        Path to the file, an open text file, or CSV text.
    n_doses
        Number of dose levels (``dose_level`` must be in ``1..n_doses``).
    require_response
        True for designs that decide on responses: every patient needs one.
    name
        File name used in messages (defaults to the path).

    Raises
    ------
    PatientDataError
        Listing every problem: line number, field, value and fix.
    """
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        path = Path(source)
        if not path.exists():
            raise PatientDataError(str(path), [Problem(0, "file", str(path), "no such file; check the path")])
        text = path.read_text(encoding="utf-8-sig")
        name = name or str(path)
    elif isinstance(source, str):
        text = source
    else:
        text = source.read()
    reader = csv.reader(io.StringIO(text))
    problems: list[Problem] = []
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    line_end = 0
    for row in reader:
        start = line_end + 1
        line_end = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower().replace(" ", "_") for c in row]
            header_line = start
            continue
        rows.append((start, row))
    if header is None:
        raise PatientDataError(name, [Problem(1, "header", "", "the file is empty: the first line must name the "
                                                                "columns id,dose_level,dlt[,response]")])
    known = set(_REQUIRED + _OPTIONAL)
    for col in _REQUIRED:
        if col not in header:
            problems.append(Problem(header_line, "header", ",".join(header),
                                    f"column '{col}' is missing (required: {', '.join(_REQUIRED)})"))
    if require_response and "response" not in header:
        problems.append(Problem(header_line, "header", ",".join(header),
                                "column 'response' is missing; this design decides on responses"))
    dup_cols = {c for c in header if header.count(c) > 1 and c}
    for c in sorted(dup_cols):
        problems.append(Problem(header_line, "header", c, "column appears more than once; keep one"))
    date_cols = [c for c in header if c.endswith("date")]
    ignored: list[str] = []
    for c in header:
        if c in known or c in date_cols or not c:
            continue
        close = difflib.get_close_matches(c, list(known), n=1, cutoff=0.75)
        if close:
            problems.append(Problem(header_line, "header", c, f"unknown column; did you mean '{close[0]}'?"))
        else:
            ignored.append(c)
    if problems:
        raise PatientDataError(name, problems)

    idx = {c: header.index(c) for c in header}
    seen: dict[str, int] = {}
    patients: list[Patient] = []
    last_enrol: tuple[_dt.date, int] | None = None
    for line, row in rows:
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            problems.append(Problem(line, "row", ",".join(row),
                                    f"has {len(row)} fields but the header has {len(header)}; "
                                    f"quote values that contain commas"))
            continue
        row = row + [""] * (len(header) - len(row))

        def get(col: str) -> str:
            return row[idx[col]].strip() if col in idx else ""

        pid = get("id")
        if not pid:
            problems.append(Problem(line, "id", "", "every patient needs an id"))
        elif pid in seen:
            problems.append(Problem(line, "id", pid, f"duplicate of line {seen[pid]}; ids must be unique"))
        else:
            seen[pid] = line
        dose_txt = get("dose_level")
        dose: int | None = None
        if not dose_txt.isdigit():
            problems.append(Problem(line, "dose_level", dose_txt,
                                    "must be a whole dose-level number (1 = lowest)"))
        else:
            dose = int(dose_txt)
            if dose < 1 or (n_doses is not None and dose > n_doses):
                problems.append(Problem(line, "dose_level", dose_txt, f"must be between 1 and {n_doses or '...'}"))
                dose = None
        dlt_txt = get("dlt")
        dlt = _bool(dlt_txt)
        if dlt is None:
            fix = (f"{_BOOL_FIX}; if the DLT window is not over yet, leave the patient out until it is"
                   if not dlt_txt else _BOOL_FIX)
            problems.append(Problem(line, "dlt", dlt_txt, fix))
        resp: bool | None = None
        if "response" in idx:
            r_txt = get("response")
            if r_txt:
                resp = _bool(r_txt)
                if resp is None:
                    problems.append(Problem(line, "response", r_txt, _BOOL_FIX))
            elif require_response:
                problems.append(Problem(line, "response", "",
                                        f"{_BOOL_FIX}; this design decides on responses, so none may be blank"))
        dates: list[tuple[str, _dt.date | None]] = []
        for c in date_cols:
            t = get(c)
            if not t:
                dates.append((c, None))
                continue
            try:
                dv = _dt.date.fromisoformat(t)
            except ValueError:
                problems.append(Problem(line, c, t, "must be a date written YYYY-MM-DD"))
                continue
            dates.append((c, dv))
            if c == _ENROL:
                if last_enrol is not None and dv < last_enrol[0]:
                    problems.append(Problem(line, c, t, f"earlier than line {last_enrol[1]} "
                                                        f"({last_enrol[0].isoformat()}); list patients in the "
                                                        f"order they were treated"))
                last_enrol = (dv, line)
        cohort = get("cohort") if "cohort" in idx else None
        if "cohort" in idx and not cohort:
            problems.append(Problem(line, "cohort", "", "blank; give every patient a cohort label, or drop the "
                                                        "column"))
        if dose is not None and dlt is not None and pid:
            patients.append(Patient(pid, dose - 1, dlt, resp, line, cohort, tuple(dates)))
    if problems:
        raise PatientDataError(name, problems)
    return PatientList(tuple(patients), tuple(ignored), name)


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
    n = np.zeros(n_doses, np.int64)
    tox, eff, both = n.copy(), n.copy(), n.copy()
    for p in patients:
        n[p.dose] += 1
        tox[p.dose] += p.dlt
        r = bool(p.response)
        eff[p.dose] += r
        both[p.dose] += r and p.dlt
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
    says why). ``selected_now`` is the dose the design would select if the trial
    ended with these data (None for none). ``table`` has one row per dose (n,
    DLTs, responses, and the design's estimates where it offers them);
    ``details`` holds rule quantities (e.g. BOIN boundaries at the current n, or
    the scalar fields of ``design.explain``); ``explain`` is whatever
    ``design.explain(states)`` returned, if the design has that method (its
    per-dose columns are also joined to ``table``).
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the per-dose table as a list of records, NaN as None)."""
        table = [{k: _native(v) for k, v in row.items()} for row in self.table.to_dict(orient="records")]
        return {
            "design": self.design, "n_patients": self.n_patients, "current_dose": self.current_dose,
            "last_cohort": {"n": self.last_cohort_n, "dlt": self.last_cohort_dlt},
            "next_dose": self.next_dose, "cohort_size": self.cohort_size, "stop": self.stop,
            "reason": self.reason, "selected_now": self.selected_now, "doses": table,
            "details": {k: _native(v) for k, v in self.details.items()}, "notes": list(self.notes),
        }


def next_dose(
    design: Design,
    patients: str | Path | io.TextIOBase | PatientList | list[Patient],
    *,
    name: str | None = None,
    dose_labels: list[str] | None = None,
    explain_kwargs: dict[str, Any] | None = None,
) -> NextDose:
    """Next dose (or stop, with the reason) for a trial's data under ``design``.

    Parameters
    ----------
    design
        Any design.
    patients
        A patients CSV (see the module docstring) or patients already read.
    name
        File name for messages.
    dose_labels
        Labels printed next to dose numbers (e.g. ``["DL1", ...]``).
    explain_kwargs
        Passed to ``design.explain`` (e.g. ``{"mcmc": True}`` for EffTox's
        NUTS posterior with its ArviZ diagnostics).

    Raises
    ------
    PatientDataError
        Bad rows (all listed with line, field and fix).
    """
    nd = int(design.n_doses)
    uses_eff = bool(getattr(design, "uses_efficacy", False))
    if isinstance(patients, (list, tuple, PatientList)):
        pts = patients
    else:
        pts = read_patients(patients, n_doses=nd, require_response=uses_eff, name=name)
    ignored = pts.ignored_columns if isinstance(pts, PatientList) else ()
    pts = list(pts)
    bad = [p for p in pts if not 0 <= p.dose < nd]
    if bad:
        raise PatientDataError(name, [Problem(p.line, "dose_level", str(p.dose + 1), f"must be between 1 and {nd}")
                                      for p in bad])
    if uses_eff:
        blank = [p for p in pts if p.response is None]
        if blank:
            raise PatientDataError(name, [Problem(p.line, "response", "", f"{_BOOL_FIX}; this design decides on "
                                                                          f"responses") for p in blank])
    size0 = _cohort_size(design)
    start, first_size = design.start()
    states, notes = patients_states(pts, nd, cohort_size=size0, start_dose=start, name=name)
    if ignored:
        notes.append(f"column(s) not used by the decision: {', '.join(ignored)}")
    total = int(states.total_n[0])
    if total == 0:
        nxt, size, stop, reason = start, first_size, False, StopReason.CONTINUE
    elif total >= int(design.max_n):
        nxt, size, stop, reason = NO_DOSE, None, True, StopReason.MAX_SAMPLE_SIZE
        notes.append(f"{total} patients reach the maximum sample size ({design.max_n}): the trial is complete")
    else:
        dec = design.decide(states)
        stop = bool(dec.stop[0])
        nxt = NO_DOSE if stop else int(dec.dose[0])
        size = None if stop else int(dec.cohort_size[0])
        reason = StopReason(int(dec.reason[0]))
        if not stop:
            size = min(size, int(design.max_n) - total)
    sel = int(np.asarray(design.select(states))[0]) if total else NO_DOSE
    table = _dose_table(states, pts, nd, dose_labels)
    details: dict[str, Any] = {}
    explained = design.explain(states, **(explain_kwargs or {}))
    per_dose, scalars = _explained_parts(explained, nd)
    if per_dose is not None:
        extra = per_dose[[c for c in per_dose.columns if c not in table.columns]]
        table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    details.update(scalars)
    cur = int(states.current[0]) + 1 if total else None
    result = NextDose(
        design=design.kind, n_patients=total, current_dose=cur,
        last_cohort_n=int(states.last_n[0]), last_cohort_dlt=int(states.last_tox[0]),
        next_dose=None if nxt == NO_DOSE else int(nxt) + 1, cohort_size=size, stop=stop,
        reason=reason.label, selected_now=None if sel < 0 or sel >= nd else sel + 1, table=table,
        details=details, explain=explained, notes=tuple(notes), states=states,
    )
    log.info("next dose (%s, %d patients): %s", design.kind, total,
             "stop: " + reason.label if stop else f"dose {result.next_dose}")
    return result


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
    """The answer, the data per dose and the rule behind it, as plain text."""
    lines = [f"Design: {result.design}; {result.n_patients} patient(s)"
             + (f", current dose {result.current_dose}" if result.current_dose else "")]
    if result.n_patients:
        lines.append(f"Last cohort: {result.last_cohort_n} patient(s) at dose {result.current_dose}, "
                     f"{result.last_cohort_dlt} DLT(s)")
    if result.stop:
        lines.append(f"DECISION: stop the trial ({result.reason})")
    else:
        lines.append(f"DECISION: next cohort of {result.cohort_size} at dose {result.next_dose}")
    lines.append("Dose selected if the trial ended now: "
                 + (str(result.selected_now) if result.selected_now else "none"))
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
