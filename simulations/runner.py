"""The parallel runner: fixed-size work units, joblib, resumable on disk.

A work unit is ``(scenario, chunk of trial indices)`` run under *every*
design of the study on the same virtual patients (common random numbers).
Chunks have a fixed size taken from the study, and the patients of a chunk
come from ``SeedSequence(seed, spawn_key=(scenario_key, chunk))``, so the
results are bit-identical for any number of workers, any backend and any
completion order (DESIGN.md sections 3 and 6).

When a unit directory is given, every finished unit is written there at once
(temporary file, then rename) and units already present are loaded instead
of recomputed: an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from escalade.design.base import Design
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import draw_patients, scenario_key
from escalade.simulations.trial import run_trials

__all__ = ["WorkUnit", "ScenarioSpec", "plan_units", "run_unit", "run_units"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """The numbers a worker needs about a scenario."""

    name: str
    p_dlt: tuple[float, ...]
    p_response: tuple[float, ...]
    association: float = 0.0

    @property
    def key(self) -> int:
        return scenario_key(self.name)


@dataclass(frozen=True, slots=True)
class WorkUnit:
    """Trials ``start .. start + size - 1`` of one scenario (chunk ``chunk``)."""

    scenario: int
    chunk: int
    start: int
    size: int

    @property
    def filename(self) -> str:
        return f"unit-s{self.scenario:04d}-c{self.chunk:06d}.npz"


def plan_units(n_scenarios: int, n_trials: int, chunk_size: int) -> list[WorkUnit]:
    """Fixed layout of work units; it depends on the study only, never on workers."""
    units = []
    for s in range(n_scenarios):
        for c, start in enumerate(range(0, n_trials, chunk_size)):
            units.append(WorkUnit(s, c, start, min(chunk_size, n_trials - start)))
    return units


def run_unit(
    unit: WorkUnit, scenario: ScenarioSpec, designs: Sequence[Design], seed: int
) -> list[TrialOutcomes]:
    """Run one unit under every design on the same patients (a pure function)."""
    max_n = max(int(d.max_n) for d in designs)
    patients = draw_patients(seed, scenario.key, unit.chunk, unit.size, max_n, scenario.association)
    p_tox = np.asarray(scenario.p_dlt, float)
    p_eff = np.asarray(scenario.p_response, float)
    outs = []
    for d in designs:
        o = run_trials(d, p_tox, p_eff, patients)
        outs.append(TrialOutcomes(o.selected, o.reason, o.n, o.tox, o.eff, o.both, o.cohorts, o.weight,
                                  trial=o.trial + unit.start))
    return outs


_FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "trial")


def _save_unit(path: Path, outs: list[TrialOutcomes]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, o in enumerate(outs):
        for f in _FIELDS:
            arrays[f"d{i}_{f}"] = getattr(o, f)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_unit(path: Path, n_designs: int) -> list[TrialOutcomes] | None:
    try:
        with np.load(path) as z:
            outs = []
            for i in range(n_designs):
                a = {f: z[f"d{i}_{f}"] for f in _FIELDS}
                t = a["selected"].shape[0]
                outs.append(TrialOutcomes(a["selected"], a["reason"], a["n"], a["tox"], a["eff"], a["both"],
                                          a["cohorts"], np.full(t, 1.0 / t), trial=a["trial"]))
            return outs
    except (OSError, KeyError, ValueError):
        log.warning("unit file %s is unreadable; recomputing it", path)
        return None


def _unit_task(unit: WorkUnit, scenario: ScenarioSpec, designs: Sequence[Design], seed: int,
               unit_dir: str | None) -> tuple[WorkUnit, list[TrialOutcomes]]:
    outs = run_unit(unit, scenario, designs, seed)
    if unit_dir is not None:
        _save_unit(Path(unit_dir) / unit.filename, outs)
    return unit, outs


def run_units(
    scenarios: Sequence[ScenarioSpec],
    designs: Sequence[Design],
    *,
    n_trials: int,
    seed: int,
    chunk_size: int,
    n_jobs: int = 1,
    backend: Literal["loky", "threading", "sequential", "dask"] = "loky",
    unit_dir: str | Path | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    scheduler: str | None = None,
) -> dict[tuple[int, int], TrialOutcomes]:
    """Run all units and return ``{(scenario, design): outcomes}`` with trials in order.

    Parameters
    ----------
    n_jobs
        Workers (``-1`` = all cores). Never changes the numbers.
    backend
        ``"loky"`` (processes, default), ``"threading"``, ``"sequential"`` or
        ``"dask"`` (joblib's dask backend on a ``dask.distributed`` cluster:
        ``scheduler`` is its address, or a local cluster is started).
    unit_dir
        Where finished units are stored (and loaded from, to resume).
    progress
        Called as ``progress(units_done, units_total, trials_done)``.
    """
    from joblib import Parallel, delayed, parallel_config

    units = plan_units(len(scenarios), n_trials, chunk_size)
    done: dict[WorkUnit, list[TrialOutcomes]] = {}
    udir = None
    if unit_dir is not None:
        udir = Path(unit_dir)
        udir.mkdir(parents=True, exist_ok=True)
        for u in units:
            p = udir / u.filename
            if p.exists():
                got = _load_unit(p, len(designs))
                if got is not None and got[0].n_trials == u.size:
                    done[u] = got
        if done:
            log.info("resuming: %d of %d units already done", len(done), len(units))
    todo = [u for u in units if u not in done]
    trials_done = sum(u.size for u in done)
    if progress:
        progress(len(done), len(units), trials_done)

    if todo:
        tasks = (delayed(_unit_task)(u, scenarios[u.scenario], designs, seed,
                                     None if udir is None else str(udir)) for u in todo)
        client = None
        if backend == "sequential" or (n_jobs == 1 and backend != "dask"):
            results = (_unit_task(u, scenarios[u.scenario], designs, seed, None if udir is None else str(udir))
                       for u in todo)
            for unit, outs in results:
                done[unit] = outs
                trials_done += unit.size
                if progress:
                    progress(len(done), len(units), trials_done)
        else:
            cfg: dict[str, Any] = {"backend": backend, "n_jobs": n_jobs}
            if backend == "dask":
                from dask.distributed import Client, LocalCluster

                if scheduler:
                    client = Client(scheduler)
                else:
                    workers = os.cpu_count() or 1 if n_jobs in (-1, None) else max(1, n_jobs)
                    client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                 dashboard_address=None))
                cfg = {"backend": "dask", "n_jobs": -1}
            try:
                with parallel_config(**cfg):
                    for unit, outs in Parallel(return_as="generator_unordered")(tasks):
                        done[unit] = outs
                        trials_done += unit.size
                        if progress:
                            progress(len(done), len(units), trials_done)
            finally:
                if client is not None:
                    cluster = getattr(client, "cluster", None)
                    client.close()
                    if cluster is not None and not scheduler:
                        cluster.close()

    result: dict[tuple[int, int], TrialOutcomes] = {}
    for s in range(len(scenarios)):
        su = [u for u in units if u.scenario == s]
        for di in range(len(designs)):
            result[(s, di)] = TrialOutcomes.concat([done[u][di] for u in su])
    return result
