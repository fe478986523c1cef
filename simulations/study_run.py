"""Run a whole study and write its run directory.

A run directory holds:

* ``trials.parquet`` - one row per scenario x design x trial (or exact
  terminal state, with its probability in ``weight``);
* ``oc.csv`` - operating characteristics with Monte Carlo standard errors;
* ``paired.csv`` - paired differences between designs (common random numbers);
* ``manifest.json`` - everything needed to regenerate the run (DESIGN.md section 7), the
  study's truth per scenario (true MTD, acceptable doses, each phase I/II
  design's optimal dose, each with the reason), the calendar time used, and
  the SHA-256 of ``trials.parquet``, ``oc.csv`` and ``paired.csv``
  (``files_sha256``), which ``report``, ``diff`` and ``rerun`` verify before
  using them (:func:`verify_run_files`);
* ``units/`` - finished work units (lets an interrupted run resume; a run of more than
  :data:`KEEP_OUTCOMES_TRIALS` trials per scenario also reads its outcomes back from them, one unit at a
  time, so that its memory stays flat in the number of trials).

Every file is written to a temporary name and renamed into place, so a run
directory never holds a half-written file. ``inputs.json`` records the inputs
that determine the results (study text and hash, trials, seed, chunk size,
exact mode; never workers or backend): a run of other inputs into the same
directory is refused, naming what changed, unless ``force``. While a run
writes, ``.lock`` holds its PID and host (:mod:`escalade.simulations.run_lock`);
a second run refuses, and a lock left by a killed run (its process gone from
this host) is removed with a warning. A run that fails before any work unit is kept removes the directory
it created.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, StopReason, decides_on_followup
from escalade.design.rules import backfill_of
from escalade.design.registry import config_to_dict
from escalade.scenarios.designs import build_study_designs, referenced_files
from escalade.scenarios.errors import ConfigError, EscaladeError, StudyError
from escalade.scenarios.study import LIMITS, Scenario, Study, Timing
from escalade.simulations.atomic import atomic_write, make_dir, replacing, write_error
from escalade.simulations.csv_text import neutralise_frame
from escalade.simulations.manifest import (RUN_FORMAT, DesignRecord, DoseRecord, Manifest, ScenarioRecord,
                                           StudySettings)
from escalade.simulations.oc import PAIRED_COLUMNS, TrialTable, Truth, oc_rows, trial_table
from escalade.simulations.oc_stream import BlockFeeder, StoredOutcomes, UnitStore, accumulate_tables, regroup
from escalade.simulations.oc_time import TIME_METRICS, time_rows
from escalade.simulations.patients import joint_probability
from escalade.simulations.run_files import VERIFIED_FILES, RunFilesError, sha256_file, verify_run_files
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.run_lock import RunDirError, hold_lock
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.unit_file import UNIT_SUFFIX

__all__ = ["RunResult", "run_study", "KEEP_OUTCOMES_TRIALS", "trials_frame", "write_run", "atomic_write", "RunDirError",
           "results_hash", "study_differences", "effective_timing", "scenario_truths", "verify_run_files",
           "RunFilesError", "VERIFIED_FILES", "RUN_FORMAT"]

log = logging.getLogger(__name__)


#: Trials per scenario above which a run that writes a run directory keeps no outcomes in memory: each scenario's
#: characteristics are accumulated as its work units come in (:mod:`escalade.simulations.oc_moments`), and its
#: trial rows, results hash and ``RunResult.outcomes`` are read back from the unit files, one unit at a time
#: (:mod:`escalade.simulations.oc_stream`), so that memory stays flat in the number of trials (issue 18). At or
#: below it (and always for a run without a directory, exact enumeration, backfill designs or an optimisation
#: stage) each scenario's outcomes are held while it is summarised and kept in ``RunResult.outcomes``, which is
#: faster to use. The numbers are the same either way.
KEEP_OUTCOMES_TRIALS = 200_000


@dataclass(frozen=True, slots=True, eq=False)
class RunResult:
    """Outcomes and summaries of a study run.

    ``outcomes`` maps ``(scenario, design)`` to :class:`TrialOutcomes`; for a
    run of more than :data:`KEEP_OUTCOMES_TRIALS` trials per scenario written
    to a run directory, its entries are read back from the run's unit files at
    each access (:class:`~escalade.simulations.oc_stream.StoredOutcomes`).
    """

    study: Study
    designs: list[tuple[Any, Design]]
    outcomes: Mapping[tuple[str, str], TrialOutcomes]
    oc: pd.DataFrame
    paired: pd.DataFrame
    manifest: dict[str, Any]
    fallbacks: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class _ScenarioSummary:
    """One scenario's outcomes by design, OC frames, paired differences and trial rows."""

    outcomes: dict[str, TrialOutcomes | None] = field(default_factory=dict)  # None: in the unit files
    oc: list[pd.DataFrame] = field(default_factory=list)
    paired: pd.DataFrame | None = None
    trials: list[pd.DataFrame] = field(default_factory=list)
    stage2: dict[str, Any] = field(default_factory=dict)


def trials_frame(study: Study, outcomes: Mapping[tuple[str, str], TrialOutcomes]) -> pd.DataFrame:
    """Tidy trial-level table: one row per scenario x design x trial."""
    labels = study.dose_labels()
    return pd.concat([_trials_part(labels, scen, des, o) for (scen, des), o in outcomes.items()],
                     ignore_index=True)


_REASON_LABEL = np.empty(max(StopReason) + 1, dtype=object)
for _r in StopReason:
    _REASON_LABEL[_r] = _r.label


def _trials_part(labels: Sequence[str], scen: str, des: str, o: TrialOutcomes) -> pd.DataFrame:
    """The rows of :func:`trials_frame` for one scenario x design (all columns built at once)."""
    sel = o.selected
    none = sel == NO_DOSE
    dose_label = np.array([*labels, "none"], dtype=object)  # the last entry is "no dose"
    cols: dict[str, Any] = {
        "scenario": scen,
        "design": des,
        "trial": o.trial if o.trial is not None else np.arange(o.n_trials),
        "selected_dose": pd.arrays.IntegerArray(np.where(none, 0, sel + 1).astype(np.int64), none),
        "selected_label": dose_label[np.where(none, len(labels), sel)],
        "stop_reason": _REASON_LABEL[o.reason],
        "sample_size": o.n.sum(axis=1),
        "dlts": o.tox.sum(axis=1),
        "responders": o.eff.sum(axis=1),
        "cohorts": o.cohorts,
        "weight": o.weight,
        "exact": o.exact,
    }
    if o.duration is not None:
        cols["duration_days"] = o.duration
    if o.suspensions is not None:
        cols["suspensions"] = o.suspensions
    for prefix, counts in (("n", o.n), ("dlt", o.tox), ("resp", o.eff)):
        for j in range(o.n_doses):
            cols[f"{prefix}_{j + 1}"] = counts[:, j]
    if o.n_backfill is not None:  # a design with backfill cohorts: backfill patients per dose (included in n_)
        for j in range(o.n_doses):
            cols[f"backfill_{j + 1}"] = pd.arrays.IntegerArray(  # nullable: empty for the other designs
                np.asarray(o.n_backfill[:, j], np.int64), np.zeros(o.n_trials, bool))
    return pd.DataFrame(cols)


#: Trial rows per parquet row group when ``trials.parquet`` is streamed (bounds the rows built at a time).
TRIAL_ROWS_PER_GROUP = 16_384


class _TrialsWriter:
    """Streams trial rows into a temporary ``.tmp-*.parquet`` beside ``trials.parquet`` (pyarrow ParquetWriter).

    Scenarios are written in the study's order as soon as their outcomes are
    in (a scenario that finishes early waits for the ones before it), each
    scenario x design in row groups of at most :data:`TRIAL_ROWS_PER_GROUP`
    rows, so the whole trial table is never held in memory. :func:`write_run`
    renames the file into place with the other files (all or none); a failed
    run removes it (its name starts with ``.tmp-``, as every unfinished write).
    """

    def __init__(self, out: Path, labels: Sequence[str], n_scenarios: int) -> None:
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=out)
        os.close(fd)
        self.path = Path(tmp)
        self.labels = list(labels)
        self.n_scenarios = n_scenarios
        self.next = 0
        self.waiting: dict[int, list[tuple[str, str, TrialOutcomes]]] = {}
        self.writer: Any = None

    def add(self, si: int, parts: list[tuple[str, str, Any]]) -> None:
        """Scenario ``si``'s outcomes (scenario name, design name, outcomes), in design order; the outcomes are
        a :class:`TrialOutcomes`, or a function of a number of rows giving the outcomes in runs of that many
        trials (read back from the unit files: :meth:`~escalade.simulations.oc_stream.StoredOutcomes.parts`)."""
        self.waiting[si] = parts
        while self.next in self.waiting:
            for scen, des, o in self.waiting.pop(self.next):
                groups = (o(TRIAL_ROWS_PER_GROUP) if callable(o) else
                          (_rows(o, a, a + TRIAL_ROWS_PER_GROUP)
                           for a in range(0, max(o.n_trials, 1), TRIAL_ROWS_PER_GROUP)))
                for g in groups:
                    self._write(_trials_part(self.labels, scen, des, g))
            self.next += 1

    def _write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        elif not table.schema.equals(self.writer.schema):
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)

    def close(self) -> Path:
        """Finish the file (every scenario must have been added) and return its path."""
        if self.next != self.n_scenarios:  # pragma: no cover - run_study adds every scenario
            raise RuntimeError(f"trial rows of {self.n_scenarios - self.next} scenarios were never written")
        if self.writer is None:  # pragma: no cover - a study has at least one scenario and design
            raise RuntimeError("no trial rows to write")
        self.writer.close()
        self.writer = None
        return self.path

    def discard(self) -> None:
        if self.writer is not None:
            with suppress(Exception):
                self.writer.close()
        self.path.unlink(missing_ok=True)


def _rows(o: TrialOutcomes, a: int, b: int) -> TrialOutcomes:
    """Rows ``a .. b - 1`` of ``o`` (views, no copy)."""
    if a == 0 and b >= o.n_trials:
        return o
    return o.rows(a, b)


def results_hash(outcomes: Mapping[tuple[str, str], TrialOutcomes], stage2: dict[tuple[str, str], Any] | None = None
                 ) -> str:
    """SHA-256 of every trial's outcome (what ``escalade rerun`` verifies).

    ``stage2``: the optimisation stage's outcomes (:class:`~escalade.simulations.stage2.Stage2Outcomes`) by
    (scenario, design), hashed after the escalation's only when the study has an ``optimisation`` section (a
    study without one keeps its hash). Entries of a :class:`~escalade.simulations.oc_stream.StoredOutcomes`
    kept in unit files are hashed field by field, one unit at a time: the same bytes, with no more than one
    unit in memory.
    """
    h = hashlib.sha256()
    stored = getattr(outcomes, "stored", None)  # StoredOutcomes: large entries hashed from the unit files
    for key in sorted(outcomes):
        ref = stored(key) if stored is not None else None
        if ref is not None:
            _hash_stored(h, repr(key), *ref)
            continue
        o = outcomes[key]
        h.update(repr(key).encode())
        for a in (o.selected, o.reason, o.n, o.tox, o.eff, o.both, o.cohorts):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        if o.n_backfill is not None:  # only designs with backfill cohorts: every other hash is unchanged
            h.update(np.ascontiguousarray(o.n_backfill, dtype=np.int64).tobytes())
        for name in sorted(o.extra or {}):  # CAR-T tallies (absent without the graded sections)
            h.update(name.encode())
            h.update(np.ascontiguousarray(o.extra[name], dtype=np.int64).tobytes())  # type: ignore[index]
        if o.exact:
            h.update(np.ascontiguousarray(o.weight, dtype=np.float64).tobytes())
    for key in sorted(stage2 or {}):
        s2 = stage2[key]  # type: ignore[index]
        h.update(("stage2" + repr(key)).encode())
        if isinstance(s2, tuple):  # exact: (candidate doses, selection probabilities)
            h.update(np.ascontiguousarray(s2[0], dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(s2[1], dtype=np.float64).tobytes())
            continue
        for a in (s2.arms, s2.n, s2.tox, s2.eff, s2.selected):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return h.hexdigest()


def _hash_stored(h: Any, key: str, store: UnitStore, scenario: int, design: int) -> None:
    """:func:`results_hash`'s bytes of one simulated scenario x design kept in unit files: each field's values
    unit by unit (the same bytes as the whole array's), so that no more than one unit is held."""
    fields = store.fields(scenario, design)
    h.update(key.encode())
    for f in ("selected", "reason", "n", "tox", "eff", "both", "cohorts"):
        for a in store.column(scenario, design, f):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    if "n_backfill" in fields:
        for a in store.column(scenario, design, "n_backfill"):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    for name in sorted(f[2:] for f in fields if f.startswith("x.")):
        h.update(name.encode())
        for a in store.column(scenario, design, "x." + name):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("escalade", "numpy", "scipy", "pandas", "pyarrow", "joblib", "pyyaml", "pymc", "arviz", "dask"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _inputs_fingerprint(study: Study, n_trials: int, seed: int, exact: bool) -> str:
    inputs: dict[str, Any] = {"sha256": study.sha256, "n_trials": n_trials, "seed": seed,
                              "chunk_size": study.simulation.chunk_size, "exact": exact, "format": RUN_FORMAT}
    files = referenced_files(study)
    if files:  # only then: a study naming no file keeps the fingerprint it always had
        inputs["files"] = files
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _inputs_record(study: Study, n_trials: int, seed: int, exact: bool, fingerprint: str) -> dict[str, Any]:
    """What ``inputs.json`` holds: the inputs that determine the results (not workers or backend),
    including the SHA-256 of files the designs read (a protocol's decision-table CSV)."""
    return {"fingerprint": fingerprint, "format": RUN_FORMAT, "sha256": study.sha256, "n_trials": n_trials,
            "seed": seed, "chunk_size": study.simulation.chunk_size, "exact": exact,
            "study_file": study.source, "study_text": study.text, "files": referenced_files(study)}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diff_paths(a: Any, b: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) > limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if path else str(k)
            if k not in b:
                out.append(f"{sub} removed")
            elif k not in a:
                out.append(f"{sub} added")
            else:
                _diff_paths(a[k], b[k], sub, out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} -> {len(b)} entries")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                _diff_paths(x, y, f"{path}[{i}]", out, limit)
    elif a != b:
        out.append(f"{path or 'document'}: {_short(a)} -> {_short(b)}")


def study_differences(old_text: str | None, new_text: str, *, limit: int = 5) -> str:
    """Which fields of a study file differ between two versions of its text (one line).

    Returns ``""`` when the old text is unknown, and ``"comments or formatting
    only"`` when both texts hold the same data.
    """
    import yaml

    if not old_text:
        return ""
    try:
        a, b = yaml.safe_load(old_text), yaml.safe_load(new_text)
    except yaml.YAMLError:  # pragma: no cover - both texts were validated
        return ""
    out: list[str] = []
    _diff_paths(a, b, "", out, limit)
    if not out:
        return "comments or formatting only"
    more = "; and more" if len(out) > limit else ""
    return "; ".join(out[:limit]) + more


def _changed_inputs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = []
    detail = ""
    if old.get("sha256") != new["sha256"]:
        detail = study_differences(old.get("study_text"), new["study_text"])
        changed.append(f"study file {str(old.get('sha256', '?'))[:12]} -> {new['sha256'][:12]}"
                       + (f" ({detail})" if detail else ""))
    for key, label in (("n_trials", "n_trials"), ("seed", "seed"), ("chunk_size", "simulation.chunk_size"),
                       ("exact", "exact"), ("format", "run format")):
        if label in detail:
            continue  # already named in the study file's differences
        if old.get(key, RUN_FORMAT if key == "format" else None) != new[key]:
            changed.append(f"{label} {old.get(key)!r} -> {new[key]!r}")
    old_files, new_files = old.get("files") or {}, new.get("files") or {}
    for field in sorted(set(old_files) | set(new_files)):
        if old_files.get(field) != new_files.get(field):
            changed.append(f"the file {field} names ({str(old_files.get(field, 'none'))[:12]} -> "
                           f"{str(new_files.get(field, 'none'))[:12]})")
    return changed or ["inputs"]


_RESULT_FILES = ("trials.parquet", "oc.csv", "paired.csv", "manifest.json")


def _prepare_dir(out: Path, record: dict[str, Any], force: bool) -> None:
    """Check (under the lock) that ``out`` holds no run of other inputs; tidy leftovers of a killed run."""
    units = out / "units"
    for leftover in [*out.glob(".tmp-*"), *out.glob(".lock.stale-*"), *units.glob(".tmp-*")]:
        leftover.unlink(missing_ok=True)  # half-written files of a killed run (we hold the lock)
    for old_format in units.glob("unit-*.npz"):  # units in the earlier zip format (.npz): recomputed
        old_format.unlink(missing_ok=True)
    stamp = out / "inputs.json"
    if not stamp.exists():
        stale = list(units.glob(f"unit-*{UNIT_SUFFIX}"))
        if stale:
            log.warning("%s: %d work units without inputs.json cannot be verified; recomputing them", out, len(stale))
            for p in stale:
                p.unlink()
        return
    try:
        old = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    if not isinstance(old, dict):
        old = {}
    if old.get("fingerprint") == record["fingerprint"]:
        return
    changed = _changed_inputs(old, record)
    if not force:
        raise RunDirError(f"{out} holds a run of different inputs; changed: {'; '.join(changed)}. Use another "
                          f"--out, or --force to discard that run")
    log.warning("%s: discarding the run of other inputs (--force); changed: %s", out, "; ".join(changed))
    for p in [*units.glob(f"unit-*{UNIT_SUFFIX}"), *(out / f for f in _RESULT_FILES)]:
        p.unlink(missing_ok=True)


def effective_timing(study: Study, designs: Sequence[Design]) -> tuple[Timing | None, str]:
    """The calendar time every design of the study is simulated with, and where it comes from.

    A study with a ``timing`` section uses it for every design. A study
    without one is simulated without calendar time, unless a design decides
    on follow-up times (:func:`~escalade.design.base.decides_on_followup`: TITE-CRM, TITE-BOIN), which needs a
    clock: then *every* design runs with the default timing
    (:class:`~escalade.scenarios.study.Timing` defaults: Poisson accrual of 1.5
    patients a month, uniform DLT onset over the window, cohort enrolment),
    so that durations are reported for all designs and compared on the same
    patients, never for some only. The second item says which applies, for the
    manifest and the report.
    """
    if study.timing.enabled:
        return study.timing, "the study file's timing section"
    timed = [spec_name for spec_name, d in zip((s.name for s in study.designs), designs)
             if decides_on_followup(d) or backfill_of(d) is not None]
    if not timed:
        return None, "none: the study file has no timing section and no design needs calendar time"
    t = dataclasses.replace(Timing(), enabled=True)
    why = (f"decide{'s' if len(timed) == 1 else ''} on follow-up times"
           if not any(backfill_of(d) is not None for d in designs) else
           f"need{'s' if len(timed) == 1 else ''} calendar time (backfill cohorts or follow-up times)")
    return t, (f"default timing for every design (the study file has no timing section and {', '.join(timed)} "
               f"{why}): Poisson accrual of "
               f"{t.rate_per_month:g} patients a month, uniform DLT onset over the "
               f"{study.dlt_window_days:g}-day window, cohort enrolment; add a timing section to set them")


def _timing_record(timing: Timing | None, source: str) -> dict[str, Any]:
    if timing is None:
        return {"enabled": False, "source": source}
    return {"enabled": True, "source": source, "accrual": timing.accrual, "rate_per_month": timing.rate_per_month,
            "arrival_days": list(timing.arrival_days), "dlt_onset": timing.dlt_onset,
            "enrolment": timing.enrolment, "stagger_days": timing.stagger_days}


def scenario_truths(study: Study, designs: Sequence[tuple[Any, Design]]) -> list[dict[str, Any]]:
    """Per scenario: the true MTD, the acceptable doses and each phase I/II design's optimal dose, with reasons.

    Dose numbers are 1-based (``None``: no dose). The true MTD follows the
    study's :attr:`~escalade.scenarios.study.Study.mtd_rule`; a design's
    optimal dose is what its own objective picks knowing the true curves
    (its ``true_optimum``), so that EffTox is scored by EffTox's utility and
    BOIN12 by BOIN12's. This is what ``manifest.json`` records under
    ``scenarios`` and what the report prints.
    """
    rule = study.mtd_rule
    labels = study.dose_labels()
    out = []
    for s in study.scenarios:
        mtd = rule.mtd(s.p_dlt)
        rec: dict[str, Any] = {
            "true_mtd": None if mtd is None else mtd + 1,
            "true_mtd_why": rule.explain(s.p_dlt, labels),
            "acceptable_doses": [j + 1 for j in rule.acceptable(s.p_dlt)],
            "optimal": [],
        }
        for spec, d in designs:
            opt = _true_optimum(d, s)
            if opt is None:
                continue
            name = None if opt.dose == NO_DOSE else labels[opt.dose]
            why = (f"{name}: " if name else "none: no dose meets the hurdles; ") + opt.rule
            rec["optimal"].append({"design": spec.name, "objective": opt.objective,
                                   "dose": None if opt.dose == NO_DOSE else opt.dose + 1,
                                   "value": list(opt.value), "eligible": list(opt.eligible), "why": why})
        out.append(rec)
    return out


def _true_optimum(design: Design, s: Scenario) -> Any:
    """``design.true_optimum`` of a scenario's true curves, or ``None`` for a design without an objective."""
    fn = getattr(design, "true_optimum", None)
    if fn is None:
        return None
    p_both = joint_probability(s.p_dlt, s.p_response, s.association)
    return fn(np.asarray(s.p_dlt, float), np.asarray(s.p_response, float), p_both)
def run_study(
    study: Study,
    *,
    n_trials: int | None = None,
    seed: int | None = None,
    n_jobs: int = 1,
    backend: Literal["loky", "threading", "sequential", "dask"] = "loky",
    scheduler: str | None = None,
    out_dir: str | Path | None = None,
    exact: bool | None = None,
    force: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    command: str | None = None,
) -> RunResult:
    """Simulate (or enumerate exactly) every scenario x design of a study.

    With ``out_dir`` the run directory is written (see the module docstring);
    finished units found there from an interrupted run of the same inputs are
    reused.
    """
    n_trials = study.simulation.n_trials if n_trials is None else int(n_trials)
    seed = study.simulation.seed if seed is None else int(seed)
    exact = study.simulation.exact if exact is None else bool(exact)
    designs = build_study_designs(study)
    _check_limits(study, designs, n_trials, seed)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    fingerprint = _inputs_fingerprint(study, n_trials, seed, exact)

    out = Path(out_dir) if out_dir is not None else None
    ctx = hold_lock(out) if out is not None else None
    created = make_dir(out, what="run directory") if out is not None else False
    with _tidy_on_failure(out, created) as owner, ctx if ctx is not None else _null(), ExitStack() as files:
        owner[0] = True  # this run holds the directory (its lock): its unfinished files may be removed on failure
        if out is not None:
            record = _inputs_record(study, n_trials, seed, exact, fingerprint)
            _prepare_dir(out, record, force)
            atomic_write(out / "inputs.json", json.dumps(record, indent=2))
        timing, timing_source = effective_timing(study, [d for _, d in designs])
        if timing is not None and not study.timing.enabled:
            log.warning("%s has no timing section but a design decides on follow-up times; every design is "
                        "simulated with the %s", study.source or "the study", timing_source.split(" (")[0])
        scen_specs = [ScenarioSpec(s.name, s.p_dlt, s.p_response, s.association, timing,
                                   study.dlt_window_days, study.response_days, s.cart) for s in study.scenarios]
        truths = scenario_truths(study, designs)
        outcomes = StoredOutcomes()
        fallbacks: dict[tuple[str, str], str] = {}
        exact_results: dict[tuple[int, int], TrialOutcomes] = {}
        if exact:
            exact_results, fallbacks_idx = _exact_all(study, designs, scen_specs, timed=timing is not None)
            fallbacks = {(study.scenarios[s].name, designs[d][0].name): why for (s, d), why in fallbacks_idx.items()}
        sim_designs = [d for _, d in designs]
        need_sim = not exact or len(exact_results) < len(scen_specs) * len(designs)
        labels = study.dose_labels()
        summaries: dict[int, _ScenarioSummary] = {}
        # simulated runs stream their trial rows to disk (exact rows are few, and may hold expected counts)
        # (rows of one schema only: a study whose designs add columns to some rows -- backfill counts, the
        # optimisation stage -- builds its table in memory)
        uniform = study.optimisation is None and all(backfill_of(d) is None for _, d in designs)
        stream = (_TrialsWriter(out, labels, len(study.scenarios)) if out is not None and not exact and uniform
                  else None)
        if stream is not None:
            files.callback(stream.discard)  # removed unless write_run renamed it into place

        # a large run that streams its trial rows keeps no outcomes: blocks of units summarised as they come in
        streamed = stream is not None and n_trials > KEEP_OUTCOMES_TRIALS
        chunk_size = study.simulation.chunk_size
        store = UnitStore()
        feeders: dict[int, BlockFeeder] = {}

        def truth_of(si: int, name: str) -> Truth:
            s = study.scenarios[si]
            opt = next((o for o in truths[si]["optimal"] if o["design"] == name), None)
            return Truth(np.asarray(s.p_dlt), np.asarray(s.p_response), study.target, study.mtd_rule,
                         None if opt is None else (NO_DOSE if opt["dose"] is None else opt["dose"] - 1),
                         None if opt is None else opt["objective"], cart=s.cart)

        def block_tables(si: int, outs: Sequence[TrialOutcomes]) -> dict[str, TrialTable]:
            """Per-trial tables of simulated outcomes (every stop reason a column: blocks hold the same ones)."""
            return {spec.name: trial_table(o, truth_of(si, spec.name), max_n=int(d.max_n), dose_labels=labels,
                                           all_stop_reasons=True) for (spec, d), o in zip(designs, outs)}

        def on_unit(unit: Any, rec: np.ndarray) -> None:
            store.add(unit.scenario, unit.chunk, out / "units" / unit.filename)  # type: ignore[operator]
            fd = feeders.get(unit.scenario)
            if fd is None:
                fd = feeders[unit.scenario] = BlockFeeder(
                    -(-n_trials // chunk_size), chunk_size, lambda outs, si=unit.scenario: block_tables(si, outs),
                    timed=timing is not None)
            fd.add(unit.chunk, rec)

        def summarise(si: int, sim_outs: list[TrialOutcomes] | None) -> None:
            """A scenario's OCs (and trial rows) as soon as its outcomes are in, while others run."""
            if streamed:
                summarise_streamed(si)
                return
            s = study.scenarios[si]
            got = _ScenarioSummary()
            tables: dict[str, TrialTable] = {}
            extra_rows: dict[str, list[pd.DataFrame]] = {}
            for di, (spec, d) in enumerate(designs):
                o = exact_results.get((si, di))
                if o is None:
                    assert sim_outs is not None
                    o = sim_outs[di]
                got.outcomes[spec.name] = o
                truth = truth_of(si, spec.name)
                table = tables[spec.name] = trial_table(o, truth, max_n=int(d.max_n), dose_labels=labels,
                                                        all_stop_reasons=not o.exact)
                part = _trials_part(labels, s.name, spec.name, o) if out is not None and stream is None else None
                if study.optimisation is not None:
                    g2 = _ScenarioSummary()
                    part = _stage2_summary(study, s, spec.name, o, truth, seed, g2, part, table)
                    got.stage2.update(g2.stage2)
                    extra_rows[spec.name] = g2.oc
                if part is not None:
                    got.trials.append(part)
            sim = {name: t for name, t in tables.items() if not t.exact}
            acc = accumulate_tables(sim, n_trials=n_trials, chunk_size=chunk_size) if sim else None
            for spec, _ in designs:
                o, table = got.outcomes[spec.name], tables[spec.name]
                assert o is not None
                if acc is None or spec.name not in sim:  # exact enumeration: weighted rows, no Monte Carlo error
                    got.oc.append(oc_rows(table, scenario=s.name, design=spec.name, skip=TIME_METRICS))
                else:
                    skip = (*TIME_METRICS, *(m for m, _ in table.columns if m.startswith("stage2_")))
                    got.oc.append(acc.oc_rows(spec.name, scenario=s.name, skip=skip))
                    if o.duration is not None:
                        got.oc.append(_time_rows(acc, spec.name, s.name, np.asarray(o.duration, float)))
                got.oc.extend(extra_rows.get(spec.name, []))
            got.paired = acc.paired(scenario=s.name) if acc is not None else pd.DataFrame(columns=list(PAIRED_COLUMNS))
            summaries[si] = got
            if stream is not None:
                stream.add(si, [(s.name, spec.name, got.outcomes[spec.name]) for spec, _ in designs])

        def summarise_streamed(si: int) -> None:
            """A large scenario's OCs from its accumulated blocks; its trial rows read back from the unit files."""
            s = study.scenarios[si]
            fd = feeders.pop(si)
            got = _ScenarioSummary()
            for di, (spec, _) in enumerate(designs):
                got.outcomes[spec.name] = None
                got.oc.append(fd.acc.oc_rows(spec.name, scenario=s.name, skip=TIME_METRICS))
                if fd.timed:
                    got.oc.append(_time_rows(fd.acc, spec.name, s.name, fd.duration(di)))
            got.paired = fd.acc.paired(scenario=s.name)
            summaries[si] = got
            assert stream is not None
            stream.add(si, [(s.name, spec.name, lambda size, di=di: regroup(store.parts(si, di), n_trials, size))
                            for di, (spec, _) in enumerate(designs)])

        if need_sim:
            run_units(scen_specs, sim_designs, n_trials=n_trials, seed=seed, chunk_size=chunk_size,
                      n_jobs=n_jobs, backend=backend, unit_dir=None if out is None else out / "units",
                      progress=progress, scheduler=scheduler, on_scenario=summarise,
                      on_unit=on_unit if streamed else None, keep=not streamed)
        else:
            for si in range(len(study.scenarios)):
                summarise(si, None)
        ordered = [summaries[si] for si in range(len(study.scenarios))]  # scenario order, whatever finished first
        stage2_out: dict[tuple[str, str], Any] = {}
        for si, got in enumerate(ordered):
            for di, (name, o) in enumerate(got.outcomes.items()):
                if o is None:
                    outcomes.refer((study.scenarios[si].name, name), store, si, di)
                else:
                    outcomes.hold((study.scenarios[si].name, name), o)
            for name, s2 in got.stage2.items():
                stage2_out[(study.scenarios[si].name, name)] = s2
        oc = pd.concat([f for got in ordered for f in got.oc], ignore_index=True)
        paired = pd.concat([got.paired for got in ordered], ignore_index=True)
        trials: pd.DataFrame | Path | None = None
        if stream is not None:
            trials = stream.close()
        elif out is not None:
            trials = pd.concat([f for got in ordered for f in got.trials], ignore_index=True)
        finished = _dt.datetime.now(_dt.timezone.utc)
        manifest = Manifest(
            escalade_version=_versions().get("escalade", "unknown"),
            run_format=RUN_FORMAT,
            command=command,
            study_file=study.source,
            study_sha256=study.sha256,
            study_text=study.text,
            title=study.title,
            n_trials=n_trials,
            seed=seed,
            chunk_size=study.simulation.chunk_size,
            exact=exact,
            exact_fallbacks=tuple({"scenario": k[0], "design": k[1], "reason": v} for k, v in fallbacks.items()),
            n_jobs=n_jobs,
            backend=backend,
            target=study.target,
            mtd_rule={"definition": study.mtd_definition, "delta": study.mtd_delta,
                      "text": study.mtd_rule.describe()},
            timing=_timing_record(timing, timing_source),
            doses=tuple(DoseRecord(label=d.label, amount=d.amount, unit=d.unit) for d in study.doses),
            scenarios=tuple(ScenarioRecord(name=s.name, p_dlt=tuple(s.p_dlt), p_response=tuple(s.p_response),
                                           association=s.association, true_mtd=truth["true_mtd"],
                                           true_mtd_why=truth["true_mtd_why"],
                                           acceptable_doses=tuple(truth["acceptable_doses"]),
                                           optimal=tuple(truth["optimal"]), description=s.description)
                            for s, truth in zip(study.scenarios, truths)),
            designs=tuple(DesignRecord(name=spec.name, design=d.kind, params_given=spec.params,
                                       params=config_to_dict(d.config)) for spec, d in designs),
            settings=StudySettings(title=study.title, target=study.target, cohort_size=study.cohort_size,
                                   max_n=study.max_n, start_dose=study.start_dose,
                                   dlt_window_days=study.dlt_window_days, response_days=study.response_days),
            platform={"system": platform.system(), "release": platform.release(),
                      "machine": platform.machine(), "python": sys.version.split()[0],
                      "cpu_count": os.cpu_count()},
            versions=_versions(),
            started=started.isoformat(),
            finished=finished.isoformat(),
            elapsed_s=round(time.perf_counter() - t0, 3),
            results_sha256=results_hash(outcomes, stage2_out if study.optimisation is not None else None),
        ).to_dict()
        result = RunResult(study, designs, outcomes, oc, paired, manifest, fallbacks)
        if out is not None:
            write_run(out, result, trials)
    return result


def _time_rows(acc: Any, design: str, scenario: str, duration: np.ndarray) -> pd.DataFrame:
    """The calendar-time rows of one simulated design (means accumulated, quantiles from every duration)."""
    keys = {m for m, _ in acc.estimates(design)[0]}
    return time_rows(lambda m: acc.estimate(design, (m, "")), duration, [m for m in TIME_METRICS if m in keys],
                     scenario=scenario, design=design)


def _stage2_summary(study: Study, s: Scenario, design: str, o: TrialOutcomes, truth: Truth, seed: int,
                    got: _ScenarioSummary, part: pd.DataFrame | None, main: TrialTable) -> pd.DataFrame | None:
    """The optimisation stage of one scenario x design (:mod:`escalade.simulations.stage2`): its ``stage2_*``
    rows of oc.csv, its scalar characteristics added to the design's table ``main`` (so paired.csv pairs them
    between designs: same trials, same stage-2 patients), its outcomes (for the results hash) and its columns
    of trials.parquet. An exact escalation gets the stage's exact selection probabilities given each terminal
    state (:func:`~escalade.simulations.stage2.exact_stage2`; no trials.parquet columns)."""
    from escalade.simulations.stage2 import exact_stage2, run_stage2, stage2_rows, stage2_table

    cfg = study.optimisation
    assert cfg is not None
    timed = study.timing.enabled
    common = dict(p_dlt=s.p_dlt, p_response=s.p_response, true_mtd=truth.mtd, dose_labels=study.dose_labels(),
                  assessment_days=max(study.dlt_window_days, study.response_days) if timed else None,
                  rate_per_month=study.timing.rate_per_month if timed else None)
    if o.exact:  # exact escalation: the stage's selection probabilities given each terminal state, exactly
        try:
            ex = exact_stage2(cfg, o, p_dlt=s.p_dlt, p_response=s.p_response, association=s.association,
                              target=study.target)
        except ValueError as exc:
            log.warning("optimisation stage not computed for %s / %s: %s", s.name, design, exc)
            return part
        got.stage2[design] = ex
        table = stage2_table(None, o, exact=ex, n_per_arm=cfg.n_per_arm, **common)  # type: ignore[arg-type]
        got.oc.append(stage2_rows(table, scenario=s.name, design=design))
        return part
    s2 = run_stage2(cfg, o, p_dlt=s.p_dlt, p_response=s.p_response, association=s.association, seed=seed,
                    scenario=s.name, target=study.target)
    got.stage2[design] = s2
    table = stage2_table(s2, o, **common)  # type: ignore[arg-type]
    got.oc.append(stage2_rows(table, scenario=s.name, design=design))
    if np.array_equal(main.trial, table.trial):
        main.columns.update({k: c for k, c in table.columns.items() if k[1] == ""})
    if part is None:
        return None
    trial = np.asarray(o.trial if o.trial is not None else np.arange(o.n_trials))
    none = s2.selected == NO_DOSE
    extra = pd.DataFrame({"trial": trial,
                          "stage2_selected_dose": pd.arrays.IntegerArray(np.where(none, 0, s2.selected + 1), none),
                          "stage2_patients": s2.n.sum(axis=1), "stage2_dlts": s2.tox.sum(axis=1),
                          "stage2_responders": s2.eff.sum(axis=1)})
    return part.merge(extra, on="trial", how="left", validate="one_to_one")


@contextmanager
def _null() -> Iterator[None]:
    yield


@contextmanager
def _tidy_on_failure(out: Path | None, created: bool) -> Iterator[list[bool]]:
    """On failure, remove the temporary files of unfinished writes (a worker stopped by a full disk, say), and
    remove a run directory this run created if no work unit was kept.

    Once a unit is on disk the directory stays, so that a re-run resumes. The
    temporary files are removed only when the run got as far as holding the
    directory's lock (the caller sets ``owner[0] = True`` then): a run refused
    by another run's lock must not remove that run's unfinished files (its
    streamed trial rows, a unit being written).
    """
    owner = [False]
    try:
        yield owner
    except BaseException:
        if out is not None and owner[0]:
            for p in [*out.glob(".tmp-*"), *(out / "units").glob(".tmp-*")]:
                with suppress(OSError):  # never hide the error that ended the run
                    p.unlink(missing_ok=True)
        if out is not None and created and not any((out / "units").glob(f"unit-*{UNIT_SUFFIX}")):
            with suppress(OSError):
                (out / "inputs.json").unlink(missing_ok=True)
            for d in (out / "units", out):
                try:
                    d.rmdir()
                except OSError:  # not empty (someone else's files) or gone: leave it
                    pass
        raise


def _check_limits(study: Study, designs: list[tuple[Any, Design]], n_trials: int, seed: int) -> None:
    """Refuse runs beyond the resource limits (``LIMITS`` in escalade/scenarios/study.py).

    The study file was checked on load; this checks the command-line overrides
    and what only the built designs know (their ``max_n``).
    """
    where = "LIMITS in escalade/scenarios/study.py"
    if not 1 <= n_trials <= LIMITS["max_trials"]:
        raise ConfigError("n_trials", n_trials, f"must be an integer in [1, {LIMITS['max_trials']}] "
                                                 f"(max_trials, {where})")
    if not 0 <= seed <= 2**63 - 1:
        raise ConfigError("seed", seed, "must be an integer in [0, 2**63 - 1]")
    total = n_trials * len(study.scenarios) * len(designs)
    if total > LIMITS["max_total_trials"]:
        raise ConfigError("n_trials", n_trials,
                          f"gives {total:,} simulated trials ({len(study.scenarios)} scenarios x {len(designs)} "
                          f"designs); at most {LIMITS['max_total_trials']:,} per run (max_total_trials, {where})")
    for i, (_spec, d) in enumerate(designs):
        max_n = int(d.max_n)
        if max_n > LIMITS["max_sample_size"]:
            raise StudyError(study.source, f"designs[{i}].params.max_n", max_n,
                             f"must be at most {LIMITS['max_sample_size']} patients (max_sample_size, {where})")
        if max_n * study.simulation.chunk_size > LIMITS["max_unit_patients"]:
            raise StudyError(study.source, "simulation.chunk_size", study.simulation.chunk_size,
                             f"times the largest max_n ({max_n}) must be at most "
                             f"{LIMITS['max_unit_patients']:,} virtual patients per work unit "
                             f"(max_unit_patients, {where}); lower chunk_size")


def _exact_all(study: Study, designs: list, scen_specs: list[ScenarioSpec], *, timed: bool
               ) -> tuple[dict[tuple[int, int], TrialOutcomes], dict[tuple[int, int], str]]:
    got: dict[tuple[int, int], TrialOutcomes] = {}
    why: dict[tuple[int, int], str] = {}
    try:
        from escalade.simulations.exact import exact_outcomes
    except ImportError:
        for si in range(len(scen_specs)):
            for di in range(len(designs)):
                why[(si, di)] = "exact enumeration is not available in this version"
        return got, why
    for si, s in enumerate(scen_specs):
        for di, (spec, d) in enumerate(designs):
            if not d.enumerable:
                why[(si, di)] = f"design '{d.kind}' is not enumerable (it decides on more than the per-dose counts)"
                continue
            if s.cart is not None:
                why[(si, di)] = ("the scenario's CAR-T patient (graded adverse events, response depth, "
                                 "manufacturing) is simulated, not enumerated")
                continue
            if timed:
                why[(si, di)] = ("the study simulates calendar time (durations are not enumerated)"
                                 if study.timing.enabled else
                                 "a design of the study needs calendar time, so every design is simulated with "
                                 "the default timing (durations are not enumerated)")
                continue
            try:
                got[(si, di)] = exact_outcomes(d, np.asarray(s.p_dlt), np.asarray(s.p_response),
                                               association=s.association)
            except Exception as exc:  # noqa: BLE001 - any failure falls back to simulation, with the reason
                why[(si, di)] = f"{type(exc).__name__}: {exc}"
                log.warning("exact enumeration fell back to simulation for %s / %s: %s", s.name, spec.name, exc)
    return got, why


def write_run(out: Path, result: RunResult, trials: pd.DataFrame | Path | None = None) -> None:
    """Write trials.parquet, oc.csv, paired.csv and manifest.json atomically, all or none.

    Every file goes to a temporary name first; only when all are written are
    they renamed into place (``manifest.json`` last), so a full disk leaves the
    directory as it was. Text cells of the CSV files that a spreadsheet would
    run as formulas are written with a leading apostrophe
    (:mod:`escalade.simulations.csv_text`).

    The SHA-256 of each of the first three, as written, goes into the
    manifest's ``files_sha256`` (also in ``result.manifest``); the manifest is
    written last. ``trials`` is :func:`trials_frame` of the result when the
    caller has it already, or the path of a parquet file of those rows already
    written in ``out`` (streamed during the run), which is renamed into place.
    """
    out = Path(out)
    make_dir(out, what="run directory")
    if trials is None:
        trials = trials_frame(result.study, result.outcomes)
    csv = {"paired.csv": neutralise_frame(result.paired).to_csv(index=False).encode("utf-8"),
           "oc.csv": neutralise_frame(result.oc).to_csv(index=False).encode("utf-8")}
    hashes: dict[str, str] = {}
    with ExitStack() as files:  # every file written to its temporary name first, then the renames (LIFO)
        manifest_tmp = files.enter_context(replacing(out / "manifest.json"))  # renamed last
        for name, data in csv.items():
            files.enter_context(replacing(out / name)).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        parquet_tmp = files.enter_context(replacing(out / "trials.parquet", ".parquet"))
        if isinstance(trials, pd.DataFrame):
            trials.to_parquet(parquet_tmp, index=False)
        else:
            os.replace(trials, parquet_tmp)
        hashes["trials.parquet"] = sha256_file(parquet_tmp)
        result.manifest["files_sha256"] = dict(sorted(hashes.items()))
        manifest_tmp.write_text(json.dumps(result.manifest, indent=2, default=_json_default), encoding="utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)
