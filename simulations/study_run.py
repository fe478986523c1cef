"""Run a whole study and write its run directory.

A run directory holds:

* ``trials.parquet`` - one row per scenario x design x trial (or exact
  terminal state, with its probability in ``weight``);
* ``oc.csv`` - operating characteristics with Monte Carlo standard errors;
* ``paired.csv`` - paired differences between designs (common random numbers);
* ``manifest.json`` - everything needed to regenerate the run (DESIGN.md section 7);
* ``units/`` - finished work units (lets an interrupted run resume).

Every file is written to a temporary name and renamed into place, so a run
directory never holds a half-written file. ``inputs.json`` records the inputs
that determine the results (study text and hash, trials, seed, chunk size,
exact mode; never workers or backend): a run of other inputs into the same
directory is refused, naming what changed, unless ``force``. While a run
writes, ``.lock`` holds its PID and host; a second run refuses, and a lock
left by a killed run (its process gone from this host) is removed with a
warning. A run that fails before any work unit is kept removes the directory
it created.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, StopReason
from escalade.design.registry import build_study_designs, config_to_dict
from escalade.scenarios.errors import ConfigError, EscaladeError, StudyError
from escalade.scenarios.study import LIMITS, Study
from escalade.simulations.atomic import atomic_write, make_dir, replacing, write_error
from escalade.simulations.csv_text import neutralise_frame
from escalade.simulations.oc import Truth, operating_characteristics, paired_differences
from escalade.simulations.oc_time import time_characteristics
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.unit_file import UNIT_SUFFIX

__all__ = ["RunResult", "run_study", "trials_frame", "write_run", "atomic_write", "RunDirError", "results_hash",
           "study_differences"]

log = logging.getLogger(__name__)

RUN_FORMAT = 1


class RunDirError(EscaladeError):
    """A run directory cannot be used (locked, or holds a run of other inputs)."""


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


def _proc_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot, Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:  # pragma: no cover - unexpected /proc format
        return None


def _pid_namespace() -> str | None:
    """This process's PID namespace (Linux): PIDs of another namespace (container) cannot be checked."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _lock_is_stale(info: dict[str, Any]) -> str | None:
    """Why a lock is stale (its process is gone from this host), or None if it may be live."""
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or host != socket.gethostname():
        return None  # another host (or an unreadable lock): it cannot be checked from here
    if info.get("pid_ns") not in (None, _pid_namespace()):
        return None  # another container on this host: its PIDs are not ours
    if not _pid_alive(pid):
        return f"process {pid} on {host} is no longer running"
    start = info.get("proc_start")
    if start is not None and _proc_start(pid) not in (None, start):
        return f"process {pid} on {host} has ended (its PID now belongs to another process)"
    return None


def _read_lock(lock: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = lock.read_bytes()
    except FileNotFoundError:
        return b"", {}
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return raw, {}
    return raw, info if isinstance(info, dict) else {}


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the duration of a run.

    The lock is created atomically with its content (a JSON record of the
    PID, host, PID namespace and process start time of its holder, hard-linked
    into place) and removed when the run ends. A lock left by a run that was killed
    (``SIGKILL``, power loss) is stale when its host is this host and its
    process is gone (or its PID now belongs to another process): it is then
    removed with a warning. A lock of a live process, of another host or
    container, or in an unknown format makes the run refuse.
    """
    lock = out / ".lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": _proc_start(os.getpid()),
          "pid_ns": _pid_namespace(), "started": _dt.datetime.now(_dt.timezone.utc).isoformat(),
          "escalade_lock": 1}
    body = json.dumps(me).encode()
    for _attempt in range(5):
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-lock-", dir=out)
        except OSError as exc:  # read-only, no permission, full disk: nothing of the run can be written here
            raise write_error(lock, exc) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            try:
                os.link(tmp, lock)  # atomic: fails if a lock exists; never a lock without content
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: exclusive create, then write
                lfd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(lfd, "wb") as fh:
                    fh.write(body)
            break
        except FileExistsError:
            pass
        except OSError as exc:
            raise write_error(lock, exc) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        raw, info = _read_lock(lock)
        if not raw and not lock.exists():
            continue  # released meanwhile
        why = _lock_is_stale(info)
        if why is None:
            who = (f"process {info.get('pid')} on {info.get('host')}"
                   + (f", since {info['started']}" if "started" in info else "") if info else "unknown holder")
            raise RunDirError(f"{out}: another escalade run is writing here ({who}; lock file {lock}); wait "
                              f"for it to finish, or delete {lock} if that run is no longer running")
        log.warning("%s: removing a stale lock (%s); finished work units are kept and the run resumes", out, why)
        _remove_if_unchanged(lock, raw)
    else:
        raise RunDirError(f"{out}: could not take the lock {lock} (it keeps changing); is another run starting?")
    try:
        yield
    finally:
        raw, info = _read_lock(lock)
        if info.get("pid") == me["pid"] and info.get("host") == me["host"]:
            lock.unlink(missing_ok=True)


def _remove_if_unchanged(lock: Path, raw: bytes) -> None:
    """Remove ``lock`` if it still holds ``raw`` (not a fresh lock another run took meanwhile)."""
    aside = lock.with_name(f".lock.stale-{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    try:
        if aside.read_bytes() != raw:  # someone else's fresh lock: put it back
            try:
                os.link(aside, lock)
            except FileExistsError:  # pragma: no cover - a third run took it meanwhile
                pass
    finally:
        aside.unlink(missing_ok=True)


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
    ctx = _lock(out) if out is not None else None
    created = make_dir(out, what="run directory") if out is not None else False
    with _tidy_on_failure(out if created else None), ctx if ctx is not None else _null():
        if out is not None:
            record = _inputs_record(study, n_trials, seed, exact, fingerprint)
            _prepare_dir(out, record, force)
            atomic_write(out / "inputs.json", json.dumps(record, indent=2))
        scen_specs = [ScenarioSpec(s.name, s.p_dlt, s.p_response, s.association,
                                   study.timing if study.timing.enabled else None,
                                   study.dlt_window_days, study.response_days) for s in study.scenarios]
        outcomes: dict[tuple[str, str], TrialOutcomes] = {}
        fallbacks: dict[tuple[str, str], str] = {}
        exact_results: dict[tuple[int, int], TrialOutcomes] = {}
        if exact:
            exact_results, fallbacks_idx = _exact_all(study, designs, scen_specs)
            fallbacks = {(study.scenarios[s].name, designs[d][0].name): why for (s, d), why in fallbacks_idx.items()}
        sim_designs = [d for _, d in designs]
        if not study.timing.enabled:
            for spec, d in designs:
                if not getattr(d, "markov", True):
                    log.warning("design '%s' decides on follow-up times but %s has no timing section; "
                                "using the default timing (Poisson accrual of %.1f patients a month, uniform "
                                "DLT onset); add a 'timing' section to set them", spec.name,
                                study.source or "the study", study.timing.rate_per_month)
        need_sim = not exact or len(exact_results) < len(scen_specs) * len(designs)
        labels = study.dose_labels()
        summaries: dict[int, _ScenarioSummary] = {}

        def summarise(si: int, sim_outs: list[TrialOutcomes] | None) -> None:
            """A scenario's OCs (and trial rows) as soon as its outcomes are in, while others run."""
            s = study.scenarios[si]
            truth = Truth(np.asarray(s.p_dlt), np.asarray(s.p_response), study.target)
            got = _ScenarioSummary()
            for di, (spec, d) in enumerate(designs):
                o = exact_results.get((si, di))
                if o is None:
                    assert sim_outs is not None
                    o = sim_outs[di]
                got.outcomes[spec.name] = o
                got.oc.append(operating_characteristics(o, truth, max_n=int(d.max_n), dose_labels=labels,
                                                        scenario=s.name, design=spec.name))
                if o.duration is not None:
                    got.oc.append(time_characteristics(o, scenario=s.name, design=spec.name))
                if out is not None:
                    got.trials.append(_trials_part(labels, s.name, spec.name, o))
            got.paired = paired_differences(got.outcomes, truth, scenario=s.name,
                                            max_n={spec.name: int(d.max_n) for spec, d in designs})
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
        manifest = {
            "escalade_version": _versions().get("escalade", "unknown"),
            "run_format": RUN_FORMAT,
            "command": command,
            "study_file": study.source,
            "study_sha256": study.sha256,
            "study_text": study.text,
            "title": study.title,
            "n_trials": n_trials,
            "seed": seed,
            "chunk_size": study.simulation.chunk_size,
            "exact": exact,
            "exact_fallbacks": [{"scenario": k[0], "design": k[1], "reason": v} for k, v in fallbacks.items()],
            "n_jobs": n_jobs,
            "backend": backend,
            "target": study.target,
            "doses": [{"label": d.label, "amount": d.amount, "unit": d.unit} for d in study.doses],
            "scenarios": [{"name": s.name, "p_dlt": list(s.p_dlt), "p_response": list(s.p_response),
                           "association": s.association, "true_mtd": s.mtd(study.target) + 1}
                          for s in study.scenarios],
            "designs": [{"name": spec.name, "design": d.kind, "params_given": spec.params,
                         "params": config_to_dict(d.config)} for spec, d in designs],
            "platform": {"system": platform.system(), "release": platform.release(),
                         "machine": platform.machine(), "python": sys.version.split()[0],
                         "cpu_count": os.cpu_count()},
            "versions": _versions(),
            "started": started.isoformat(),
            "finished": finished.isoformat(),
            "elapsed_s": round(time.perf_counter() - t0, 3),
            "results_sha256": results_hash(outcomes),
        }
        result = RunResult(study, designs, outcomes, oc, paired, manifest, fallbacks)
        if out is not None:
            write_run(out, result, trials)
    return result


@contextmanager
def _null() -> Iterator[None]:
    yield


@contextmanager
def _tidy_on_failure(out: Path | None) -> Iterator[None]:
    """Remove a run directory this run created if it fails before any work unit is kept.

    Once a unit is on disk the directory stays, so that a re-run resumes.
    """
    try:
        yield
    except BaseException:
        if out is not None and not any((out / "units").glob(f"unit-*{UNIT_SUFFIX}")):
            for p in [out / "inputs.json", *out.glob(".tmp-*"), *(out / "units").glob(".tmp-*")]:
                with suppress(OSError):  # never hide the error that ended the run
                    p.unlink(missing_ok=True)
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


def _exact_all(study: Study, designs: list, scen_specs: list[ScenarioSpec]
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
            if not getattr(d, "markov", False):
                why[(si, di)] = f"design '{d.kind}' is not Markov in its state"
                continue
            if study.timing.enabled:
                why[(si, di)] = "the study simulates calendar time (durations are not enumerated)"
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

    ``trials`` is :func:`trials_frame` of the result when the caller has it already.
    """
    out = Path(out)
    make_dir(out, what="run directory")
    if trials is None:
        trials = trials_frame(result.study, result.outcomes)
    texts = {"manifest.json": json.dumps(result.manifest, indent=2, default=_json_default),  # renamed last
             "paired.csv": neutralise_frame(result.paired).to_csv(index=False),
             "oc.csv": neutralise_frame(result.oc).to_csv(index=False)}
    with ExitStack() as files:  # every file written to its temporary name first, then the renames
        for name, text in texts.items():
            files.enter_context(replacing(out / name)).write_text(text, encoding="utf-8")
        trials.to_parquet(files.enter_context(replacing(out / "trials.parquet", ".parquet")), index=False)


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
