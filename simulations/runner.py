"""The parallel runner: fixed-size work units, joblib, resumable on disk.

A work unit is ``(scenario, chunk of trial indices)`` run under *every*
design of the study on the same virtual patients (common random numbers).
Chunks have a fixed size taken from the study, and the patients of a chunk
come from ``SeedSequence(seed, spawn_key=(scenario_key, chunk))``, so the
results are bit-identical for any number of workers, any backend and any
completion order (DESIGN.md sections 3 and 6).

When a unit directory is given, every finished unit is written there at once
(temporary file, then rename) by the worker that ran it, or by the driving
process when the units run on a dask cluster given by address (its workers
may not share the file system); units already present are loaded instead of
recomputed: an interrupted run resumes where it stopped.

Sizing the work units
---------------------
A study has ``n_scenarios * ceil(n_trials / chunk_size)`` units; each runs
every design of the study on the same virtual patients (one patient draw, one
unit file). ``chunk_size`` (study file, ``simulation.chunk_size``, default
500) fixes the random streams, so it is an input of the study, never derived
from the number of workers. Two constraints set it:

* enough units: at least ``4 * W`` for ``W`` workers, so that the last,
  partly idle round costs little (a warning is logged below ``W`` units);
* big enough units: a task costs about a millisecond of scheduling and
  transfer (loky; dask a little more), and the engine has a fixed cost per
  chunk, so a unit should take some tens of milliseconds. On one core,
  BOIN + CRM run ~50,000 trials/s per design at ``chunk_size: 500`` (10 ms
  per unit) and ~85,000 at 2,500 (28 ms per unit): larger chunks cost less
  CPU in all, smaller ones balance better (bench/bench_scale.py).

For example, 8 scenarios x 20,000 trials make 64 units at ``chunk_size:
2500`` (enough for 16 workers) and 320 at 1,000 (80 workers).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from escalade.design.base import Design, decides_on_followup
from escalade.design.rules import backfill_of, patient_slots
from escalade.scenarios.errors import EscaladeError
from escalade.scenarios.study import Timing
from escalade.simulations.atomic import make_dir
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.heap import pad_heap
from escalade.simulations.graded import check_graded_design
from escalade.simulations.patients import draw_patients, scenario_key, with_graded
from escalade.simulations.trial import run_trials
from escalade.simulations.unit_file import UNIT_SUFFIX, concat_units, load_unit, pack, save_unit

__all__ = ["WorkUnit", "ScenarioSpec", "BackendError", "plan_units", "run_unit", "run_units"]

log = logging.getLogger(__name__)


class BackendError(EscaladeError):
    """A parallel backend cannot be used (dask missing, scheduler unreachable)."""


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """The numbers a worker needs about a scenario (and the study's clock).

    With ``timing`` enabled, or for a design that decides on follow-up times
    (:func:`~escalade.design.base.decides_on_followup`: TITE-CRM, TITE-BOIN), trials run in the calendar-time
    engine (:mod:`escalade.simulations.timed`), which adds durations and
    accrual suspensions; otherwise in the cohort engine.
    """

    name: str
    p_dlt: tuple[float, ...]
    p_response: tuple[float, ...]
    association: float = 0.0
    timing: Timing | None = None
    dlt_window_days: float = 28.0
    response_days: float = 90.0
    #: The scenario's CAR-T model (:class:`escalade.scenarios.cart.CartModel`) or ``None``.
    cart: Any = None

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
        return f"unit-s{self.scenario:04d}-c{self.chunk:06d}{UNIT_SUFFIX}"


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
    max_n = max(patient_slots(d) for d in designs)  # max_n, plus backfill patients (same draws for the rest)
    p_tox = np.asarray(scenario.p_dlt, float)
    p_eff = np.asarray(scenario.p_response, float)
    timing = scenario.timing
    fast = _fast_unit(designs, timing) if scenario.cart is None else None  # CAR-T patients: general engine
    if fast is not None:  # every design runs in the compiled kernel: only the latent streams it reads are drawn
        from escalade.simulations.fast import draw_latent, run_fast

        z_t, z_e = draw_latent(seed, scenario.key, unit.chunk, unit.size, max_n, scenario.association,
                               efficacy=bool(np.any(p_eff > 0)))
        return [run_fast(plan, p_tox, p_eff, z_t, z_e, latent=True).offset(unit.start) for plan in fast]
    patients = draw_patients(seed, scenario.key, unit.chunk, unit.size, max_n, scenario.association)
    patients = with_graded(patients, scenario.cart, seed=seed, scenario=scenario.key, chunk=unit.chunk,
                           p_dlt=p_tox, p_response=p_eff)
    outs = []
    for d in designs:
        check_graded_design(d, scenario.cart, scenario.name)
        if (timing is not None and timing.enabled) or decides_on_followup(d) or backfill_of(d) is not None:
            from escalade.simulations.timed import run_timed_trials

            o = run_timed_trials(d, p_tox, p_eff, patients, timing if timing is not None else Timing(),
                                 dlt_window_days=scenario.dlt_window_days, response_days=scenario.response_days)
        else:
            o = run_trials(d, p_tox, p_eff, patients)
        outs.append(o.offset(unit.start))
    return outs


def _fast_unit(designs: Sequence[Design], timing: Timing | None) -> list | None:
    """The kernels' plans when every design qualifies (:func:`~escalade.simulations.fast.fast_plan`) and
    the study has no calendar time; else None (the unit draws its patients and runs each design's engine)."""
    if timing is not None and timing.enabled:
        return None
    from escalade.simulations.fast import fast_plan

    plans = []
    for d in designs:
        plan = None if decides_on_followup(d) else fast_plan(d)
        if plan is None:
            return None
        plans.append(plan)
    return plans


#: How often (seconds) a worker process checks that the process that started it is still there.
WATCH_PARENT_S = 0.5
_watchdog: list[threading.Thread] = []


def _driver_gone(driver: int, was_child: bool) -> bool:
    """Whether the run that started this worker (process ``driver``) has ended."""
    if os.getppid() == driver:
        return False
    if was_child:  # re-parented: its parent has died
        return True
    if os.name != "posix":  # (os.kill(pid, 0) would terminate the process on Windows)
        return False
    try:
        os.kill(driver, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, or not ours to ask about
        return False
    return False


def _watch_parent(driver: int) -> None:
    """In a worker process: exit at once when the run that started it (process ``driver``) is gone.

    A run killed by ``SIGKILL`` (or by ``SIGTERM`` without Python's handler,
    e.g. by the out-of-memory killer) cannot stop its workers; without this
    they would run their queued units for a minute or more, at full CPU, for
    nobody. At its first unit (it may start after the run has died: the check
    is then immediate) and every :data:`WATCH_PARENT_S` seconds after, in a
    daemon thread, the worker checks that it is still the child of ``driver``
    (or, if it never was, that ``driver`` still exists) and otherwise ends with
    ``os._exit``. Portable (no ``prctl``); units already written stay on disk
    and a re-run resumes from them.
    """
    if _watchdog:
        return
    was_child = os.getppid() == driver
    if _driver_gone(driver, was_child):
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_PARENT_S)
            if _driver_gone(driver, was_child):
                os._exit(1)

    thread = threading.Thread(target=watch, name="escalade-watch-parent", daemon=True)
    thread.start()
    _watchdog.append(thread)


def _unit_task(unit: WorkUnit, scenario: ScenarioSpec, designs: Sequence[Design], seed: int,
               unit_dir: str | None, driver: int | None = None) -> tuple[WorkUnit, np.ndarray]:
    if driver is not None and driver != os.getpid():  # a worker process started by the run ``driver`` (loky)
        _watch_parent(driver)
    pad_heap()  # once per process: no page faults from freeing and retaking the engine's temporaries
    rec = pack(run_unit(unit, scenario, designs, seed))
    if unit_dir is not None:
        save_unit(Path(unit_dir) / unit.filename, rec)
    return unit, rec


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
    on_scenario: Callable[[int, list[TrialOutcomes]], None] | None = None,
    on_unit: Callable[[WorkUnit, np.ndarray], None] | None = None,
    keep: bool = True,
) -> dict[tuple[int, int], TrialOutcomes]:
    """Run all units and return ``{(scenario, design): outcomes}`` with trials in order.

    Parameters
    ----------
    n_jobs
        Workers (``-1`` = all cores), capped at one per core and per work unit
        left to run, with a log line saying so. Never changes the numbers.
        With the dask backend and no ``scheduler``, the size of the local
        cluster started (capped the same way).
    backend
        ``"loky"`` (processes, default), ``"threading"``, ``"sequential"`` or
        ``"dask"`` (joblib's dask backend on a ``dask.distributed`` cluster:
        ``scheduler`` is its address, or a ``LocalCluster`` of ``n_jobs``
        single-threaded worker processes is started and closed afterwards).
    unit_dir
        Where finished units are stored (and loaded from, to resume). Each
        unit is written as soon as it is finished: by the worker that ran it,
        or, on a dask cluster given by ``scheduler`` (whose workers may not
        share this file system), by this process when its result arrives.
    progress
        Called as ``progress(units_done, units_total, trials_done)`` once
        before any unit runs and after each unit, whatever the backend.
    scheduler
        Address of a running ``dask.distributed`` scheduler (dask only).
    on_scenario
        Called in this process as ``on_scenario(s, outcomes_by_design)`` as
        soon as every unit of scenario ``s`` is in (scenarios complete in
        roughly the order given), so that a caller can summarise a scenario
        while the workers run the next ones. The outcomes are those returned
        (an empty list when ``keep`` is false).
    on_unit
        Called in this process as ``on_unit(unit, packed)`` with every unit
        (resumed ones too) as it comes in, in completion order, before its
        scenario is handed to ``on_scenario``; ``packed`` is the unit's record
        array (:func:`~escalade.simulations.unit_file.pack`).
    keep
        False: units are not held once ``on_unit`` has seen them (they are in
        ``unit_dir``, which is then required), scenarios are handed over with
        no outcomes, and nothing is returned: memory stays flat in the number
        of trials.

    Raises
    ------
    BackendError
        When dask is not installed or the scheduler cannot be reached.
    """
    if not keep and unit_dir is None:
        raise ValueError("run_units(keep=False) needs a unit_dir: the units are not held in memory")
    units = plan_units(len(scenarios), n_trials, chunk_size)
    done = _Assembler(units, on_scenario, on_unit=on_unit, keep=keep)
    udir = None
    resumed: list[tuple[WorkUnit, np.ndarray]] = []
    if unit_dir is not None:
        udir = Path(unit_dir)
        make_dir(udir, what="directory of work units")
        for u in units:
            p = udir / u.filename
            if p.exists():
                got = load_unit(p, len(designs), u.start, u.size)
                if got is not None:
                    resumed.append((u, got))
        if resumed:
            log.info("resuming: %d of %d units already done", len(resumed), len(units))
    for u, rec in resumed:
        done.add(u, rec)
    done.progress = progress  # from here on: the resumed units are counted in the first report
    have = {u for u, _ in resumed}
    todo = [u for u in units if u not in have]
    started = done.report  # the first report, once the backend is ready (a bad dask address fails first)

    if not todo:
        started()
        return done.results()

    # Workers write their units when they share this file system (every backend but a dask cluster
    # given by address, whose workers may run elsewhere: there this process writes each unit on arrival).
    remote = backend == "dask" and bool(scheduler)
    worker_dir = None if udir is None or remote else str(udir)

    def finished(unit: WorkUnit, rec: np.ndarray) -> None:
        if udir is not None and remote:
            save_unit(udir / unit.filename, rec)
        log.debug("unit %s done (%d of %d)", unit.filename, done.n_done + 1, len(units))
        done.add(unit, rec)

    workers = 1 if backend == "sequential" or remote else _plan_workers(n_jobs, len(units), len(todo))
    if workers == 1 and backend != "dask":
        started()
        # one worker = one core: BLAS may not spread the small batched products over more threads
        # (as loky's workers are limited, and as oversubscription slows them a lot on a busy machine)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            for u in todo:
                finished(*_unit_task(u, scenarios[u.scenario], designs, seed, worker_dir))
        return done.results()

    from joblib import Parallel, delayed, parallel_config

    driver = os.getpid() if backend == "loky" else None  # worker processes of this machine, started by this one
    tasks = (delayed(_unit_task)(u, scenarios[u.scenario], designs, seed, worker_dir, driver) for u in todo)
    if backend != "dask":
        started()
        before = set(threading.enumerate())
        with parallel_config(backend=backend, n_jobs=workers):
            try:
                for unit, rec in Parallel(return_as="generator_unordered")(tasks):
                    finished(unit, rec)
            except BaseException:
                _settle_pool_threads(before)
                raise
        return done.results()

    with _dask_client(scheduler, workers) as client:
        if remote:
            _warn_if_starved(len(units), max(1, sum(client.nthreads().values())))
        started()
        with parallel_config(backend="dask", n_jobs=-1):
            for unit, rec in Parallel(return_as="generator_unordered")(tasks):
                finished(unit, rec)
    return done.results()


#: How long a failed run waits for the worker pool's helper threads to end (seconds, in all).
SETTLE_S = 10.0


def _settle_pool_threads(before: set[threading.Thread]) -> None:
    """After a failed run, let the aborted worker pool's helper threads end before the error goes up.

    When a unit fails, joblib kills the loky workers and closes the pool's
    queues, but a queue's feeder thread (a daemon) may still be finishing:
    dropping its last reference to a queue lock unlinks the named semaphore,
    then tells loky's resource tracker. If the command exits in between (an
    error exits at once), the daemon thread dies half-way and the tracker,
    left holding the name, prints two "leaked semlock" warnings under the
    error line (4 runs in 55 of a full-disk test on a loaded 2-core machine;
    none in 60 with this join). Joining the pool's threads first closes that
    window; a thread still alive after ``SETTLE_S`` seconds in all is left to
    the interpreter, as before.
    """
    deadline = time.monotonic() + SETTLE_S
    for t in threading.enumerate():
        if t is threading.current_thread() or not t.daemon:
            continue
        if t in before and t.name != "QueueFeederThread":  # a pool reused from an earlier run is aborted too
            continue
        t.join(max(0.0, deadline - time.monotonic()))


def _cores() -> int:
    """CPUs this process may use (affinity and container CPU quotas counted, as joblib counts them)."""
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def _plan_workers(n_jobs: int | None, n_units: int, n_todo: int) -> int:
    """Workers to start: ``n_jobs`` (``-1``: all cores), at most one per core and per unit left to run.

    More workers than cores only share the cores and take memory (each
    imports numpy and the designs: ``--jobs 1000`` once took 18 GB); more than
    units left would idle. The cap is logged (a warning when ``--jobs`` asked
    for more); it never changes the numbers.
    """
    cores = _cores()
    requested = cores if n_jobs is None or n_jobs < 0 else max(1, n_jobs)
    workers = max(1, min(requested, cores, n_todo))
    plural = "" if workers == 1 else "s"
    if requested > cores and n_units >= cores:
        log.warning("--jobs %d: using %d worker%s, one per core (this machine has %d); more would only share the "
                    "cores and take memory", requested, workers, plural, cores)
    elif n_units < requested:
        log.warning("only %d work units for %d workers: using %d worker%s%s%s", n_units, requested, workers, plural,
                    f" ({cores} cores)" if requested > cores else "",
                    "; lower simulation.chunk_size for more parallel work (it is an input: changing it changes the "
                    "random draws)" if n_units < cores else "")
    elif workers < requested:
        log.info("resuming: using %d worker%s, one per work unit left to run (%d)", workers, plural, n_todo)
    return workers


def _warn_if_starved(n_units: int, n_workers: int) -> None:
    if n_units < n_workers:
        log.warning("only %d work units for %d workers: some workers will idle; lower simulation.chunk_size "
                    "(it is an input: changing it changes the random draws)", n_units, n_workers)


@contextmanager
def _dask_client(scheduler: str | None, n_jobs: int | None) -> Iterator[Any]:
    """A ``dask.distributed`` client on ``scheduler``, or on a new local cluster."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise BackendError(f"--backend dask needs dask.distributed ({exc}); install it with "
                           "pip install 'escalade[dask]'") from None
    with _quiet_dask_logs():
        client, cluster = _connect(Client, LocalCluster, scheduler, n_jobs)
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Keep dask.distributed's INFO chatter (scheduler and worker start/stop) out of a run's output.

    distributed sets a level on each of its loggers, so the parent's level is
    not enough; with ``escalade -v`` (INFO on this module) nothing is changed.
    """
    if log.isEnabledFor(logging.INFO):
        yield
        return
    names = ["distributed"] + [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def _connect(Client: Any, LocalCluster: Any, scheduler: str | None, n_jobs: int | None) -> tuple[Any, Any]:
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler)  # timeout: dask config distributed.comm.timeouts.connect
            _check_worker_malloc(client)
        else:
            import dask

            # dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
            # adaptive mmap threshold: large numpy temporaries are then mmap'd and page-faulted afresh.
            # That made the simulation ~1.8x slower before work units padded the heap (heap.py), and
            # still ~10% slower after. Our own workers go without it.
            # The nannies also copy their settings into this process's os.environ for good (so that a
            # loky pool started later would inherit them): put it back as it was once they have started.
            env = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                   if k != _TRIM}
            saved = dict(os.environ)
            os.environ.pop(_TRIM, None)
            try:
                with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
                    cluster = LocalCluster(n_workers=max(1, n_jobs or 1), threads_per_worker=1, processes=True,
                                           dashboard_address=":0")  # any free port: never clashes with 8787
            finally:
                os.environ.clear()
                os.environ.update(saved)
            client = Client(cluster)
            log.info("started a local dask cluster of %d workers (dashboard %s)", max(1, n_jobs or 1),
                     getattr(cluster, "dashboard_link", "?"))
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        where = f"the dask scheduler at {scheduler}" if scheduler else "a local dask cluster"
        raise BackendError(f"cannot connect to {where}: {exc}; check the address (e.g. tcp://host:8786) "
                           "and that the scheduler is running") from None
    return client, cluster


_TRIM = "MALLOC_TRIM_THRESHOLD_"


def _worker_trim() -> str | None:
    return os.environ.get(_TRIM)


def _check_worker_malloc(client: Any) -> None:
    """Warn when a cluster's workers run with dask's MALLOC_TRIM_THRESHOLD_ (slow for this simulator)."""
    try:
        found = {v for v in client.run(_worker_trim).values() if v is not None}
    except Exception as exc:  # noqa: BLE001 - a diagnostic only; the run goes on
        log.debug("could not read the workers' environment: %s", exc)
        return
    if found:
        log.warning("the dask workers run with %s=%s (dask's default), which slows this simulation by up to "
                    "~10%%; start them with distributed.nanny.pre-spawn-environ.%s set to null in their dask "
                    "config (e.g. a YAML file in ~/.config/dask/)", _TRIM, ",".join(sorted(found)), _TRIM)


class _Assembler:
    """Finished units in; each scenario's outcomes out as soon as its last unit is in.

    A scenario's packed units are dropped once assembled, so the results are
    held once, not twice. ``progress`` (when set) is told of every unit before
    its scenario is assembled.
    """

    def __init__(self, units: Sequence[WorkUnit],
                 on_scenario: Callable[[int, list[TrialOutcomes]], None] | None, *,
                 on_unit: Callable[[WorkUnit, np.ndarray], None] | None = None, keep: bool = True) -> None:
        self.units_of: dict[int, list[WorkUnit]] = {}
        for u in units:
            self.units_of.setdefault(u.scenario, []).append(u)
        self.n_units = len(units)
        self.missing = {s: len(us) for s, us in self.units_of.items()}
        self.recs: dict[WorkUnit, np.ndarray] = {}
        self.result: dict[tuple[int, int], TrialOutcomes] = {}
        self.on_scenario = on_scenario
        self.on_unit = on_unit
        self.keep = keep
        self.progress: Callable[[int, int, int], None] | None = None
        self.n_done = 0
        self.trials_done = 0

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.n_done, self.n_units, self.trials_done)

    def add(self, unit: WorkUnit, rec: np.ndarray) -> None:
        if self.on_unit is not None:
            self.on_unit(unit, rec)
        if self.keep:
            self.recs[unit] = rec
        self.n_done += 1
        self.trials_done += unit.size
        self.report()
        s = unit.scenario
        self.missing[s] -= 1
        if self.missing[s] == 0:
            if not self.keep:
                if self.on_scenario is not None:
                    self.on_scenario(s, [])
                return
            outs = concat_units([self.recs.pop(u) for u in self.units_of[s]])
            for d, o in enumerate(outs):
                self.result[(s, d)] = o
            if self.on_scenario is not None:
                self.on_scenario(s, outs)

    def results(self) -> dict[tuple[int, int], TrialOutcomes]:
        """``{(scenario, design): outcomes}`` in scenario, then design order."""
        return dict(sorted(self.result.items()))
