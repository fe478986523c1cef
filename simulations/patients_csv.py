"""Reading a live trial's patients CSV: one pass over the rows, every problem reported at once.

:func:`read_patients` reads and checks the file that ``escalade next-dose``
(:mod:`escalade.simulations.conduct`) decides on. It is linear in the number of
rows: each row is parsed once, ids are checked against a dictionary, and the
date checks compare each row with the previous enrolment only.

Patients file
-------------
One row per patient, in the order they were treated, with a header row:

=================  =========  =====================================================
column             required   values
=================  =========  =====================================================
``id``             yes        any text, unique
``dose_level``     yes        whole number, 1 = lowest dose
``dlt``            yes        ``0``/``1``, ``no``/``yes``, ``false``/``true`` (any case)
``response``       phase I/II same values; blank allowed only for toxicity-only designs,
                              and for TITE-BOIN12 until the response assessment day
``cohort``         no         cohort label; when given, the last cohort is its last value
``enrol_date``     TITE       ISO date ``YYYY-MM-DD`` the patient was dosed (start of
                              the DLT window); rows must be in its order
``dlt_date``       TITE       date the DLT was observed; blank when ``dlt`` is 0
``response_date``  no         date the response was assessed (TITE-BOIN12: the time of a
                              response; blank = the assessment day)
other ``*date``    no         ISO dates, checked and not used
``grade_<type>``   graded     grade 0-5 of adverse-event type ``<type>`` (e.g.
                              ``grade_crs``, ``grade_icans``): the highest grade in
                              the DLT window; one column per type
``response_category`` graded  the patient's response category (e.g. ``cr``), one of
                              the protocol's categories; ``response`` may then be blank
=================  =========  =====================================================

Designs on graded outcomes (gBOIN, gBOIN-ET) need a ``grade_<type>`` column
for each adverse-event type their weights name and, when they score efficacy
(gBOIN-ET), ``response_category`` for every patient (``read_patients(...,
require_grades=True, response_categories=[...])``).

Designs that decide on pending data (TITE-CRM, TITE-BOIN) need ``enrol_date``
for every patient and ``dlt_date`` for every DLT. Whenever dates are given they
are checked against each other and against the decision date (``as_of``): no
date after ``as_of``, no DLT or response before enrolment, and no DLT later
than the DLT window after enrolment (a toxicity after the window is not a DLT).

Blank lines and lines starting with ``#`` are skipped; other columns are kept
out of the decision and listed in the notes (a column whose name is close to a
known one is an error, with a did-you-mean). Nothing is guessed: every bad row
is reported, with its line number and the fix, in one :class:`PatientDataError`.
A file that cannot be read as UTF-8 text (UTF-16, Latin-1), a directory, or a
missing file is one :class:`PatientDataError` with one line saying what to do.
"""

from __future__ import annotations

import csv
import datetime as _dt
import difflib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalade.scenarios.errors import EscaladeError

__all__ = [
    "Patient",
    "PatientList",
    "Problem",
    "PatientDataError",
    "read_patients",
    "date_problems",
]

_REQUIRED = ("id", "dose_level", "dlt")
_OPTIONAL = ("response", "cohort")
_ENROL, _DLT_DATE, _RESPONSE_DATE = "enrol_date", "dlt_date", "response_date"
_GRADE_PREFIX, _RESPONSE_CATEGORY = "grade_", "response_category"
_TRUE = {"1", "yes", "y", "true"}
_FALSE = {"0", "no", "n", "false"}
_BOOL_FIX = "write 0/no or 1/yes"
_SHOWN = 30  # problems listed in the message (all are kept in PatientDataError.problems)
_UTF8_FIX = ("save it as UTF-8 ('CSV UTF-8' in Excel, or: iconv -f latin1 -t utf-8 FILE > NEW.csv)")


@dataclass(frozen=True, slots=True)
class Patient:
    """One patient: 0-based ``dose``; ``response`` is None where not recorded.

    ``enrol``, ``dlt_on`` and ``response_on`` are the ``enrol_date``,
    ``dlt_date`` and ``response_date`` columns (None when blank or absent);
    ``dates`` holds every date column as ``(name, date)`` pairs.
    """

    id: str
    dose: int
    dlt: bool
    response: bool | None
    line: int
    cohort: str | None = None
    dates: tuple[tuple[str, _dt.date | None], ...] = ()
    enrol: _dt.date | None = None
    dlt_on: _dt.date | None = None
    response_on: _dt.date | None = None
    grades: tuple[tuple[str, int], ...] = ()
    response_category: str | None = None


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
    """One bad entry of the patients file (``line`` 0: the file as a whole)."""

    line: int
    field: str
    value: str
    fix: str

    def __str__(self) -> str:
        if self.line == 0:
            return self.fix
        shown = repr(self.value) if self.value != "" else "(blank)"
        return f"line {self.line}: {self.field} = {shown}: {self.fix}"


class PatientDataError(EscaladeError, ValueError):
    """The patients file has problems; ``problems`` lists every one (line, field, value, fix).

    A problem with the file as a whole (missing, a directory, not UTF-8) is one
    line: ``FILE: what is wrong; what to do``. The message lists the first 30
    problems and counts the rest.
    """

    def __init__(self, file: str | None, problems: list[Problem]) -> None:
        self.file = file
        self.problems = list(problems)
        where = file or "patients data"
        if len(self.problems) == 1 and self.problems[0].line == 0:
            super().__init__(f"{where}: {self.problems[0]}")
            return
        body = "\n".join(f"  {p}" for p in self.problems[:_SHOWN])
        if len(self.problems) > _SHOWN:
            body += f"\n  ... and {len(self.problems) - _SHOWN} more problem(s) of the same kinds"
        super().__init__(f"{where}: {len(self.problems)} problem(s); nothing was decided:\n{body}")


def _bool(text: str) -> bool | None:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def _file_error(name: str, fix: str) -> PatientDataError:
    return PatientDataError(name, [Problem(0, "file", name, fix)])


def _read_text(path: Path, name: str) -> str:
    """The file's text, or one clear error (missing, directory, unreadable, not UTF-8)."""
    if path.is_dir():
        raise _file_error(name, "is a directory, not a patients CSV file; give the path of the file "
                                "itself (e.g. scenarios/patients_example.csv)")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _file_error(name, "no such file; check the path (an example: scenarios/patients_example.csv)") \
            from None
    except OSError as exc:
        raise _file_error(name, f"cannot be read ({exc.strerror or exc}); check the path and its "
                                f"permissions") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise _file_error(name, f"is UTF-16 text (or binary), not a UTF-8 CSV file; {_UTF8_FIX}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise _file_error(name, f"line {line}: byte 0x{byte:02x} is not UTF-8 (the file looks Latin-1 or "
                                f"Windows-1252 encoded); {_UTF8_FIX}") from None


def read_patients(
    source: str | Path | io.TextIOBase,
    *,
    n_doses: int | None = None,
    require_response: bool = False,
    require_dates: bool = False,
    as_of: _dt.date | None = None,
    dlt_window_days: float | None = None,
    name: str | None = None,
    require_grades: bool = False,
    response_categories: Iterable[str] | None = None,
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
    require_dates
        True for designs that decide on pending data (TITE): every patient
        needs ``enrol_date`` and every DLT a ``dlt_date``.
    as_of
        Decision date: no date may be later (checked when given).
    dlt_window_days
        Length of the DLT window: a ``dlt_date`` more than this many days after
        ``enrol_date`` is an error (checked when given).
    name
        File name used in messages (defaults to the path).
    require_grades
        True for designs on graded toxicities: at least one ``grade_<type>``
        column, and every grade given (0-5).
    response_categories
        The protocol's response categories: ``response_category`` is then
        required for every patient and must be one of them.

    Raises
    ------
    PatientDataError
        Listing every problem: line number, field, value and fix.

    Examples
    --------
    >>> pts = read_patients("id,dose_level,dlt,enrol_date,dlt_date\\n"
    ...                     "P1,1,0,2025-01-06,\\nP2,1,1,2025-01-08,2025-01-20\\n")
    >>> [(p.id, p.dose, p.dlt, (p.dlt_on - p.enrol).days if p.dlt else None) for p in pts]
    [('P1', 0, False, None), ('P2', 0, True, 12)]
    """
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        path = Path(source)
        name = name or str(path)
        text = _read_text(path, name)
    elif isinstance(source, str):
        text = source
    else:
        text = source.read()
    problems: list[Problem] = []
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text))
    line_end = 0
    try:
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
    except csv.Error as exc:
        raise PatientDataError(name, [Problem(line_end + 1, "row", "", f"cannot be read as CSV ({exc}); "
                                                                       f"check quotes and separators")]) from None
    if header is None:
        raise PatientDataError(name, [Problem(1, "header", "", "the file is empty: the first line must name the "
                                                                "columns id,dose_level,dlt[,response]")])
    cats = None if response_categories is None else [str(c) for c in response_categories]
    problems += _header_problems(header, header_line, require_response and cats is None, require_dates)
    problems += _graded_header_problems(header, header_line, require_grades, cats)
    if problems:
        raise PatientDataError(name, problems)
    ignored = [c for c in header if c and c not in _known(header)]

    idx = {c: i for i, c in enumerate(header)}
    date_cols = [c for c in header if c.endswith("date")]
    seen: dict[str, int] = {}
    patients: list[Patient] = []
    last_enrol: tuple[_dt.date, int] | None = None
    width = len(header)
    for line, row in rows:
        if len(row) > width and any(c.strip() for c in row[width:]):
            problems.append(Problem(line, "row", ",".join(row),
                                    f"has {len(row)} fields but the header has {width}; "
                                    f"quote values that contain commas"))
            continue
        if len(row) < width:
            row = row + [""] * (width - len(row))
        cells = {c: row[i].strip() for c, i in idx.items()}

        pid = cells["id"]
        if not pid:
            problems.append(Problem(line, "id", "", "every patient needs an id"))
        elif pid in seen:
            problems.append(Problem(line, "id", pid, f"duplicate of line {seen[pid]}; ids must be unique"))
        else:
            seen[pid] = line
        dose_txt = cells["dose_level"]
        dose: int | None = None
        if not (dose_txt.isascii() and dose_txt.isdigit()):
            problems.append(Problem(line, "dose_level", dose_txt, "must be a whole dose-level number (1 = lowest)"))
        else:
            dose = int(dose_txt)
            if dose < 1 or (n_doses is not None and dose > n_doses):
                problems.append(Problem(line, "dose_level", dose_txt, f"must be between 1 and {n_doses or '...'}"))
                dose = None
        dlt_txt = cells["dlt"]
        dlt = _bool(dlt_txt)
        if dlt is None:
            fix = (f"{_BOOL_FIX}; if the DLT window is not over yet, write 0 (a TITE design weighs the "
                   f"follow-up by enrol_date) or leave the patient out until it is" if not dlt_txt else _BOOL_FIX)
            problems.append(Problem(line, "dlt", dlt_txt, fix))
        resp: bool | None = None
        if "response" in idx:
            r_txt = cells["response"]
            if r_txt:
                resp = _bool(r_txt)
                if resp is None:
                    problems.append(Problem(line, "response", r_txt, _BOOL_FIX))
            elif require_response and cats is None:
                problems.append(Problem(line, "response", "",
                                        f"{_BOOL_FIX}; this design decides on responses, so none may be blank"))
        dates: list[tuple[str, _dt.date | None]] = []
        bad_date = False
        for c in date_cols:
            t = cells[c]
            if not t:
                dates.append((c, None))
                continue
            try:
                dv = _dt.date.fromisoformat(t)
            except ValueError:
                problems.append(Problem(line, c, t, "must be a date written YYYY-MM-DD"))
                bad_date = True
                continue
            dates.append((c, dv))
            if c == _ENROL:
                if last_enrol is not None and dv < last_enrol[0]:
                    problems.append(Problem(line, c, t, f"earlier than line {last_enrol[1]} "
                                                        f"({last_enrol[0].isoformat()}); list patients in the "
                                                        f"order they were treated"))
                last_enrol = (dv, line)
        cohort = cells["cohort"] if "cohort" in idx else None
        if "cohort" in idx and not cohort:
            problems.append(Problem(line, "cohort", "", "blank; give every patient a cohort label, or drop the "
                                                        "column"))
        grades, category, bad_graded = _graded_cells(cells, line, cats, problems)
        if dose is not None and dlt is not None and pid and not bad_date and not bad_graded:
            d = dict(dates)
            patients.append(Patient(pid, dose - 1, dlt, resp, line, cohort, tuple(dates),
                                    d.get(_ENROL), d.get(_DLT_DATE), d.get(_RESPONSE_DATE), grades, category))
    problems += date_problems(patients, require_dates=require_dates, as_of=as_of,
                              dlt_window_days=dlt_window_days, has_dlt_date=_DLT_DATE in idx)
    if problems:
        problems.sort(key=lambda p: p.line)
        raise PatientDataError(name, problems)
    return PatientList(tuple(patients), tuple(ignored), name)


def _known(header: list[str]) -> set[str]:
    return (set(_REQUIRED + _OPTIONAL) | {c for c in header if c.endswith("date")}
            | {c for c in header if c.startswith(_GRADE_PREFIX) and len(c) > len(_GRADE_PREFIX)}
            | ({_RESPONSE_CATEGORY} & set(header)))


def _graded_header_problems(header: list[str], line: int, require_grades: bool,
                            categories: list[str] | None) -> list[Problem]:
    shown = ",".join(header)
    out: list[Problem] = []
    if require_grades and not any(c.startswith(_GRADE_PREFIX) and len(c) > len(_GRADE_PREFIX) for c in header):
        out.append(Problem(line, "header", shown, "no grade_<type> column; this design decides on graded "
                                                  "toxicities: give one column per adverse-event type with its "
                                                  "grade 0-5, e.g. grade_crs,grade_icans"))
    if categories is not None and _RESPONSE_CATEGORY not in header:
        out.append(Problem(line, "header", shown, f"column '{_RESPONSE_CATEGORY}' is missing; this design scores "
                                                  f"response categories ({', '.join(categories)})"))
    return out


def _graded_cells(cells: dict[str, str], line: int, categories: list[str] | None,
                  problems: list[Problem]) -> tuple[tuple[tuple[str, int], ...], str | None, bool]:
    """The row's grades (``grade_<type>`` columns) and response category, problems appended."""
    grades: list[tuple[str, int]] = []
    bad = False
    for c, t in cells.items():
        if not c.startswith(_GRADE_PREFIX) or len(c) == len(_GRADE_PREFIX):
            continue
        if not (t.isascii() and t.isdigit() and 0 <= int(t) <= 5):
            problems.append(Problem(line, c, t, "must be a grade 0-5 (0: no event of this type)"))
            bad = True
            continue
        grades.append((c[len(_GRADE_PREFIX):], int(t)))
    category = cells.get(_RESPONSE_CATEGORY) or None
    if categories is not None:
        if category is None:
            problems.append(Problem(line, _RESPONSE_CATEGORY, "", f"blank; give one of {', '.join(categories)}"))
            bad = True
        elif category not in categories:
            low = {c.lower(): c for c in categories}
            if category.lower() in low:
                category = low[category.lower()]
            else:
                problems.append(Problem(line, _RESPONSE_CATEGORY, category,
                                        f"is not a response category of the protocol; give one of "
                                        f"{', '.join(categories)}"))
                bad = True
    return tuple(grades), category, bad


def _header_problems(header: list[str], line: int, require_response: bool, require_dates: bool) -> list[Problem]:
    problems: list[Problem] = []
    shown = ",".join(header)
    for col in _REQUIRED:
        if col not in header:
            problems.append(Problem(line, "header", shown,
                                    f"column '{col}' is missing (required: {', '.join(_REQUIRED)})"))
    if require_response and "response" not in header:
        problems.append(Problem(line, "header", shown,
                                "column 'response' is missing; this design decides on responses"))
    if require_dates and _ENROL not in header:
        problems.append(Problem(line, "header", shown,
                                "column 'enrol_date' is missing; this design decides on follow-up time: give "
                                "each patient's enrol_date (YYYY-MM-DD) and each DLT's dlt_date"))
    counts: dict[str, int] = {}
    for c in header:
        counts[c] = counts.get(c, 0) + 1
    for c in sorted(c for c, k in counts.items() if k > 1 and c):
        problems.append(Problem(line, "header", c, "column appears more than once; keep one"))
    names = sorted(set(_REQUIRED + _OPTIONAL + (_ENROL, _DLT_DATE, _RESPONSE_DATE, _RESPONSE_CATEGORY)))
    for c in header:
        if not c or c in names or (c.startswith(_GRADE_PREFIX) and len(c) > len(_GRADE_PREFIX)):
            continue
        # a date column of another name (death_date) is kept; one close to a known name is a typo
        close = difflib.get_close_matches(c, names, n=1, cutoff=0.8 if c.endswith("date") else 0.75)
        if close:
            problems.append(Problem(line, "header", c, f"unknown column; did you mean '{close[0]}'?"))
    return problems


def date_problems(
    patients: Iterable[Patient],
    *,
    require_dates: bool = False,
    as_of: _dt.date | None = None,
    dlt_window_days: float | None = None,
    has_dlt_date: bool = True,
) -> list[Problem]:
    """Problems with the patients' dates (see the module docstring); one pass, no problem: ``[]``."""
    out: list[Problem] = []
    for p in patients:
        if require_dates and p.enrol is None:
            out.append(Problem(p.line, _ENROL, "", "blank; this design weighs each patient by follow-up time: "
                                                   "give the date the patient was dosed (YYYY-MM-DD)"))
        if p.dlt_on is not None and not p.dlt:
            out.append(Problem(p.line, _DLT_DATE, p.dlt_on.isoformat(),
                               "given but dlt = 0; set dlt = 1 or clear dlt_date"))
        if p.dlt and p.dlt_on is None and require_dates:
            what = "blank" if has_dlt_date else "missing (no dlt_date column)"
            out.append(Problem(p.line, _DLT_DATE, "", f"{what}; this design needs the date each DLT was observed"))
        for field_, day in ((_ENROL, p.enrol), (_DLT_DATE, p.dlt_on), (_RESPONSE_DATE, p.response_on)):
            if day is not None and as_of is not None and day > as_of:
                out.append(Problem(p.line, field_, day.isoformat(),
                                   f"is after the decision date {as_of.isoformat()} (--as-of); correct the date, "
                                   f"or decide as of a later date"))
        if p.enrol is None:
            continue
        for field_, day in ((_DLT_DATE, p.dlt_on), (_RESPONSE_DATE, p.response_on)):
            if day is not None and day < p.enrol:
                out.append(Problem(p.line, field_, day.isoformat(),
                                   f"is before enrol_date {p.enrol.isoformat()}; correct one of the two dates"))
        if p.dlt_on is not None and dlt_window_days is not None and p.dlt_on >= p.enrol:
            day = (p.dlt_on - p.enrol).days
            if day > dlt_window_days:
                out.append(Problem(p.line, _DLT_DATE, p.dlt_on.isoformat(),
                                   f"is day {day} after enrol_date, outside the {dlt_window_days:g}-day DLT window; "
                                   f"a toxicity after the window is not a DLT: set dlt = 0 and clear dlt_date"))
    return out
