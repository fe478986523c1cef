"""Run a whole study and write its run directory.

A run directory holds:

* ``trials.parquet`` - one row per scenario x design x trial (or exact
  terminal state, with its probability in ``weight``);
* ``oc.csv`` - operating characteristics with Monte Carlo standard errors;
* ``paired.csv`` - paired differences between designs (common random numbers);
* ``manifest.json`` - everything needed to regenerate the run (DESIGN.md section 7);
* ``units/`` - finished work units (lets an interrupted run resume).

Every file is written to a temporary name and renamed into place, so a run
directory never holds a half-written file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, StopReason
from escalade.design.registry import build_study_designs, config_to_dict
from escalade.scenarios.errors import EscaladeError
from escalade.scenarios.study import Study
from escalade.simulations.oc import Truth, operating_characteristics, paired_differences
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.runner import ScenarioSpec, run_units

__all__ = ["RunResult", "run_study", "trials_frame", "write_run", "atomic_write", "RunDirError", "results_hash"]

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


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trials_frame(study: Study, outcomes: dict[tuple[str, str], TrialOutcomes]) -> pd.DataFrame:
    """Tidy trial-level table: one row per scenario x design x trial."""
    frames = []
    labels = study.dose_labels()
    for (scen, des), o in outcomes.items():
        sel = o.selected
        df = pd.DataFrame({
            "scenario": scen,
            "design": des,
            "trial": o.trial if o.trial is not None else np.arange(o.n_trials),
            "selected_dose": pd.array(np.where(sel == NO_DOSE, 0, sel + 1), dtype="Int64"),
            "stop_reason": [StopReason(int(r)).label for r in o.reason],
            "sample_size": o.n.sum(axis=1),
            "dlts": o.tox.sum(axis=1),
            "responders": o.eff.sum(axis=1),
            "cohorts": o.cohorts,
            "weight": o.weight,
            "exact": o.exact,
        })
        df.loc[sel == NO_DOSE, "selected_dose"] = pd.NA
        df.insert(4, "selected_label", [labels[s] if s != NO_DOSE else "none" for s in sel])
        for j in range(o.n_doses):
            df[f"n_{j + 1}"] = o.n[:, j]
        for j in range(o.n_doses):
            df[f"dlt_{j + 1}"] = o.tox[:, j]
        for j in range(o.n_doses):
            df[f"resp_{j + 1}"] = o.eff[:, j]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


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


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    lock = out / ".lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise RunDirError(f"{out}: another escalade run is writing here (lock file {lock}); wait for it to "
                          f"finish, or delete {lock} if that run was killed") from None
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _prepare_dir(out: Path, fingerprint: str, study: Study, force: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "inputs.json"
    if stamp.exists():
        try:
            old = json.loads(stamp.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("fingerprint") != fingerprint:
            if not force:
                changed = [k for k in ("sha256", "n_trials", "seed", "chunk_size", "exact")
                           if old.get(k) != {"sha256": study.sha256}.get(k, old.get(k))]
                raise RunDirError(
                    f"{out} holds a run of different inputs ({', '.join(changed) or 'inputs'} changed: "
                    f"study file hash {old.get('sha256', '?')[:12]} -> {study.sha256[:12]}, "
                    f"n_trials {old.get('n_trials')}, seed {old.get('seed')}); use another --out "
                    f"or --force to overwrite it")
            for p in (out / "units").glob("*.npz"):
                p.unlink()


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
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    fingerprint = _inputs_fingerprint(study, n_trials, seed, exact)

    out = Path(out_dir) if out_dir is not None else None
    ctx = _lock(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with ctx if ctx is not None else _null():
        if out is not None:
            _prepare_dir(out, fingerprint, study, force)
            atomic_write(out / "inputs.json", json.dumps(
                {"fingerprint": fingerprint, "sha256": study.sha256, "n_trials": n_trials, "seed": seed,
                 "chunk_size": study.simulation.chunk_size, "exact": exact}, indent=2))
        scen_specs = [ScenarioSpec(s.name, s.p_dlt, s.p_response, s.association) for s in study.scenarios]
        outcomes: dict[tuple[str, str], TrialOutcomes] = {}
        fallbacks: dict[tuple[str, str], str] = {}
        exact_results: dict[tuple[int, int], TrialOutcomes] = {}
        if exact:
            exact_results, fallbacks_idx = _exact_all(study, designs, scen_specs)
            fallbacks = {(study.scenarios[s].name, designs[d][0].name): why for (s, d), why in fallbacks_idx.items()}
        sim_designs = [d for _, d in designs]
        need_sim = not exact or len(exact_results) < len(scen_specs) * len(designs)
        sim: dict[tuple[int, int], TrialOutcomes] = {}
        if need_sim:
            sim = run_units(scen_specs, sim_designs, n_trials=n_trials, seed=seed,
                            chunk_size=study.simulation.chunk_size, n_jobs=n_jobs, backend=backend,
                            unit_dir=None if out is None else out / "units", progress=progress,
                            scheduler=scheduler)
        for si, s in enumerate(study.scenarios):
            for di, (spec, _d) in enumerate(designs):
                outcomes[(s.name, spec.name)] = exact_results.get((si, di)) or sim[(si, di)]

        labels = study.dose_labels()
        oc_frames, paired_frames = [], []
        for si, s in enumerate(study.scenarios):
            truth = Truth(np.asarray(s.p_dlt), np.asarray(s.p_response), study.target)
            per_design = {}
            for spec, d in designs:
                o = outcomes[(s.name, spec.name)]
                per_design[spec.name] = o
                oc_frames.append(operating_characteristics(o, truth, max_n=int(d.max_n), dose_labels=labels,
                                                           scenario=s.name, design=spec.name))
            paired_frames.append(paired_differences(per_design, truth, scenario=s.name,
                                                    max_n={spec.name: int(d.max_n) for spec, d in designs}))
        oc = pd.concat(oc_frames, ignore_index=True)
        paired = pd.concat(paired_frames, ignore_index=True)
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
            write_run(out, result)
    return result


@contextmanager
def _null() -> Iterator[None]:
    yield


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
            try:
                got[(si, di)] = exact_outcomes(d, np.asarray(s.p_dlt), np.asarray(s.p_response),
                                               association=s.association)
            except Exception as exc:  # noqa: BLE001 - any failure falls back to simulation, with the reason
                why[(si, di)] = f"{type(exc).__name__}: {exc}"
                log.warning("exact enumeration fell back to simulation for %s / %s: %s", s.name, spec.name, exc)
    return got, why


def write_run(out: Path, result: RunResult) -> None:
    """Write trials.parquet, oc.csv, paired.csv and manifest.json atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_frame(result.study, result.outcomes)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=out)
    os.close(fd)
    try:
        trials.to_parquet(tmp, index=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / "trials.parquet")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write(out / "oc.csv", result.oc.to_csv(index=False))
    atomic_write(out / "paired.csv", result.paired.to_csv(index=False))
    atomic_write(out / "manifest.json", json.dumps(result.manifest, indent=2, default=_json_default))


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
