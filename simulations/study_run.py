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
* ``units/`` - finished work units (lets an interrupted run resume).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, StopReason, decides_on_followup
from escalade.design.registry import config_to_dict
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.errors import ConfigError, EscaladeError, StudyError
from escalade.scenarios.study import LIMITS, Scenario, Study, Timing
from escalade.simulations.atomic import atomic_write, make_dir, replacing, write_error
from escalade.simulations.csv_text import neutralise_frame
from escalade.simulations.manifest import (RUN_FORMAT, DesignRecord, DoseRecord, Manifest, ScenarioRecord,
                                           StudySettings)
from escalade.simulations.oc import TrialTable, Truth, oc_rows, paired_from_tables, trial_table
from escalade.simulations.oc_time import TIME_METRICS, time_characteristics
from escalade.simulations.patients import joint_probability
from escalade.simulations.run_files import VERIFIED_FILES, RunFilesError, sha256_file, verify_run_files
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.run_lock import RunDirError, hold_lock
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.unit_file import UNIT_SUFFIX

__all__ = ["RunResult", "run_study", "trials_frame", "write_run", "atomic_write", "RunDirError", "results_hash",
           "study_differences", "effective_timing", "scenario_truths", "verify_run_files", "RunFilesError",
           "VERIFIED_FILES", "RUN_FORMAT"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class RunResult:
    """Outcomes and summaries of a study run."""

    study: Study
    designs: list[tuple[Any, Design]]
    outcomes: dict[tuple[str, str], TrialOutcomes]
    oc: pd.DataFrame
    paired: pd.DataFrame
    manifest: dict[str, Any]
    fallbacks: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class _ScenarioSummary:
    """One scenario's outcomes by design, OC frames, paired differences and trial rows."""

    outcomes: dict[str, TrialOutcomes] = field(default_factory=dict)
    oc: list[pd.DataFrame] = field(default_factory=list)
    paired: pd.DataFrame | None = None
    trials: list[pd.DataFrame] = field(default_factory=list)


def trials_frame(study: Study, outcomes: dict[tuple[str, str], TrialOutcomes]) -> pd.DataFrame:
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
    return pd.DataFrame(cols)


def results_hash(outcomes: dict[tuple[str, str], TrialOutcomes]) -> str:
    """SHA-256 of every trial's outcome (what ``escalade rerun`` verifies)."""
    h = hashlib.sha256()
    for key in sorted(outcomes):
        o = outcomes[key]
        h.update(repr(key).encode())
        for a in (o.selected, o.reason, o.n, o.tox, o.eff, o.both, o.cohorts):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        for name in sorted(o.extra or {}):  # CAR-T tallies (absent without the graded sections)
            h.update(name.encode())
            h.update(np.ascontiguousarray(o.extra[name], dtype=np.int64).tobytes())  # type: ignore[index]
        if o.exact:
            h.update(np.ascontiguousarray(o.weight, dtype=np.float64).tobytes())
    return h.hexdigest()


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
    key = json.dumps({"sha256": study.sha256, "n_trials": n_trials, "seed": seed,
                      "chunk_size": study.simulation.chunk_size, "exact": exact, "format": RUN_FORMAT},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def _inputs_record(study: Study, n_trials: int, seed: int, exact: bool, fingerprint: str) -> dict[str, Any]:
    """What ``inputs.json`` holds: the inputs that determine the results (not workers or backend)."""
    return {"fingerprint": fingerprint, "format": RUN_FORMAT, "sha256": study.sha256, "n_trials": n_trials,
            "seed": seed, "chunk_size": study.simulation.chunk_size, "exact": exact,
            "study_file": study.source, "study_text": study.text}


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
             if decides_on_followup(d)]
    if not timed:
        return None, "none: the study file has no timing section and no design needs calendar time"
    t = dataclasses.replace(Timing(), enabled=True)
    return t, (f"default timing for every design (the study file has no timing section and {', '.join(timed)} "
               f"decide{'s' if len(timed) == 1 else ''} on follow-up times): Poisson accrual of "
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
    with _tidy_on_failure(out, created), ctx if ctx is not None else _null():
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
        outcomes: dict[tuple[str, str], TrialOutcomes] = {}
        fallbacks: dict[tuple[str, str], str] = {}
        exact_results: dict[tuple[int, int], TrialOutcomes] = {}
        if exact:
            exact_results, fallbacks_idx = _exact_all(study, designs, scen_specs, timed=timing is not None)
            fallbacks = {(study.scenarios[s].name, designs[d][0].name): why for (s, d), why in fallbacks_idx.items()}
        sim_designs = [d for _, d in designs]
        need_sim = not exact or len(exact_results) < len(scen_specs) * len(designs)
        labels = study.dose_labels()
        summaries: dict[int, _ScenarioSummary] = {}

        def summarise(si: int, sim_outs: list[TrialOutcomes] | None) -> None:
            """A scenario's OCs (and trial rows) as soon as its outcomes are in, while others run."""
            s = study.scenarios[si]
            optimal = {o["design"]: o for o in truths[si]["optimal"]}
            got = _ScenarioSummary()
            tables: dict[str, TrialTable] = {}
            for di, (spec, d) in enumerate(designs):
                o = exact_results.get((si, di))
                if o is None:
                    assert sim_outs is not None
                    o = sim_outs[di]
                got.outcomes[spec.name] = o
                opt = optimal.get(spec.name)
                truth = Truth(np.asarray(s.p_dlt), np.asarray(s.p_response), study.target, study.mtd_rule,
                              None if opt is None else (NO_DOSE if opt["dose"] is None else opt["dose"] - 1),
                              None if opt is None else opt["objective"], cart=s.cart)
                table = tables[spec.name] = trial_table(o, truth, max_n=int(d.max_n), dose_labels=labels)
                got.oc.append(oc_rows(table, scenario=s.name, design=spec.name, skip=TIME_METRICS))
                if o.duration is not None:
                    got.oc.append(time_characteristics(o, scenario=s.name, design=spec.name))
                if out is not None:
                    got.trials.append(_trials_part(labels, s.name, spec.name, o))
            got.paired = paired_from_tables(tables, scenario=s.name)
            summaries[si] = got

        if need_sim:
            run_units(scen_specs, sim_designs, n_trials=n_trials, seed=seed, chunk_size=study.simulation.chunk_size,
                      n_jobs=n_jobs, backend=backend, unit_dir=None if out is None else out / "units",
                      progress=progress, scheduler=scheduler, on_scenario=summarise)
        else:
            for si in range(len(study.scenarios)):
                summarise(si, None)
        ordered = [summaries[si] for si in range(len(study.scenarios))]  # scenario order, whatever finished first
        for si, got in enumerate(ordered):
            for name, o in got.outcomes.items():
                outcomes[(study.scenarios[si].name, name)] = o
        oc = pd.concat([f for got in ordered for f in got.oc], ignore_index=True)
        paired = pd.concat([got.paired for got in ordered], ignore_index=True)
        trials = pd.concat([f for got in ordered for f in got.trials], ignore_index=True) if out is not None else None
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
            results_sha256=results_hash(outcomes),
        ).to_dict()
        result = RunResult(study, designs, outcomes, oc, paired, manifest, fallbacks)
        if out is not None:
            write_run(out, result, trials)
    return result


@contextmanager
def _null() -> Iterator[None]:
    yield


@contextmanager
def _tidy_on_failure(out: Path | None, created: bool) -> Iterator[None]:
    """On failure, remove the temporary files of unfinished writes (a worker stopped by a full disk, say), and
    remove a run directory this run created if no work unit was kept.

    Once a unit is on disk the directory stays, so that a re-run resumes.
    """
    try:
        yield
    except BaseException:
        if out is not None:
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


def write_run(out: Path, result: RunResult, trials: pd.DataFrame | None = None) -> None:
    """Write trials.parquet, oc.csv, paired.csv and manifest.json atomically, all or none.

    Every file goes to a temporary name first; only when all are written are
    they renamed into place (``manifest.json`` last), so a full disk leaves the
    directory as it was. Text cells of the CSV files that a spreadsheet would
    run as formulas are written with a leading apostrophe
    (:mod:`escalade.simulations.csv_text`).

    The SHA-256 of each of the first three, as written, goes into the
    manifest's ``files_sha256`` (also in ``result.manifest``); the manifest is
    written last. ``trials`` is :func:`trials_frame` of the result when the
    caller has it already.
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
        trials.to_parquet(parquet_tmp, index=False)
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
