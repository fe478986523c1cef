"""Scale-out: speed-up from one worker to all local cores, and the dask backend's overhead (issue 7).

Targets, on a 2-core machine: at least 1.8x from 1 to 2 workers on a
20,000-trial BOIN + CRM study, and the dask backend within 20% of loky on the
same machine and the same number of workers.

The study is the CAR-T study's doses and 8 scenarios (scenarios/cart_rr_heme.yaml)
with the designs BOIN and CRM (BOIN and 3+3 when CRM is not registered), 20,000
trials per scenario, in units of ``chunk_size`` trials: 500 (the study-file
default; 320 units) and 2,500 (64 units). Timed, best of ``--repeats`` after a
warm-up that starts the workers, the runs interleaved:

1. the simulation stage (``run_units``, unit files written as in a real run)
   on 1 worker and with loky on all workers, with no dask cluster alive (its
   scheduler and idle workers would take CPU from the loky workers);
2. then, with a dask LocalCluster of as many single-threaded workers running,
   loky against dask on that cluster (same machine, same number of workers);
3. a run that starts its own dask cluster, and the whole ``run_study``: the
   operating characteristics of each scenario are computed in the driving
   process while the workers run the next scenarios, but the trial table is
   written at the end by one process, so it scales a little less than the
   simulation stage.

The dask cluster's start-up is reported on its own.

The machine may be shared: the load average is printed, and each figure is
the best of ``--repeats`` runs.

``--memory``: instead, the peak resident memory (``ru_maxrss``) of a whole
run (``run_study`` writing its run directory: one BOIN design, one 5-dose
scenario, chunks of 10,000 trials) at 1e5 and at 1e6 trials, each in a fresh
process, and their ratio (issue 18 target: <= 1.5), for this checkout and, in
the same run, for the code before the characteristics were accumulated
(``--against``: by default the parent of the commit that added
``simulations/oc_moments.py``, exported with ``git archive``; ``none`` to
skip). Above ``KEEP_OUTCOMES_TRIALS`` (200,000) trials per scenario a run
keeps no outcomes in memory (simulations/study_run.py), so the 1e6 run holds
one block of units at a time; the 1e5 run holds its 1e5 trials.
Measured side by side (load average ~3.5, 2 cores): before, 385 MiB and
595 MiB (ratio 1.55); now 348 MiB and 339 MiB (ratio 0.98; ~235 MiB of it is
the imports: numpy, pandas, pyarrow, numba).

Run: python bench/bench_scale.py [--trials 20000] [--chunk-size 2500] [--repeats 5]
     python bench/bench_scale.py --memory [--memory-trials 100000 1000000] [--against REV|none]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from escalade.design.registry import design_kinds
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.load import load_study, parse_study
from escalade.scenarios.study import Study
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.study_run import run_study

__all__ = ["main", "bench_study"]

log = logging.getLogger("bench_scale")

EXAMPLE = Path(__file__).resolve().parents[1] / "scenarios" / "cart_rr_heme.yaml"
SPEED_UP_TARGET = 1.8
DASK_OVERHEAD_TARGET = 0.20


def bench_study(n_trials: int, chunk_size: int) -> Study:
    """The CAR-T study's doses and scenarios with BOIN and CRM (or 3+3), ``n_trials`` per scenario."""
    import yaml

    example = load_study(EXAMPLE)
    if "crm" in design_kinds():
        second = {"name": "CRM", "design": "crm", "params": {"skeleton": [0.06, 0.14, 0.25, 0.38, 0.50]}}
    else:
        second = {"name": "3+3", "design": "3+3"}
    data = {
        "study": {"title": "bench_scale", "target": example.target, "cohort_size": example.cohort_size,
                  "max_n": example.max_n},
        "doses": [{"label": d.label, "amount": d.amount} for d in example.doses],
        "designs": [{"name": "BOIN", "design": "boin"}, second],
        "scenarios": [{"name": s.name, "p_dlt": list(s.p_dlt), "p_response": list(s.p_response),
                       "association": s.association} for s in example.scenarios],
        "simulation": {"n_trials": n_trials, "seed": 20261124, "chunk_size": chunk_size},
    }
    return parse_study(yaml.safe_dump(data, sort_keys=False), source="bench_scale.yaml")


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


MEMORY_TARGET = 1.5

_MEMORY_CHILD = """
import resource, sys, tempfile
sys.path.insert(0, {root!r})
from escalade.scenarios.load import parse_study
from escalade.simulations.study_run import run_study
n = {n}
text = (
    "study: {{title: memory, target: 0.3, cohort_size: 3, max_n: 30}}\\n"
    "doses: [{{amount: 1}}, {{amount: 2}}, {{amount: 3}}, {{amount: 4}}, {{amount: 5}}]\\n"
    "designs: [{{name: BOIN, design: boin}}]\\n"
    "scenarios: [{{name: s1, p_dlt: [0.05, 0.15, 0.3, 0.45, 0.6], p_response: [0.1, 0.2, 0.3, 0.4, 0.5]}}]\\n"
    f"simulation: {{{{n_trials: {{n}}, seed: 3, chunk_size: 10000}}}}\\n")
with tempfile.TemporaryDirectory() as d:
    run_study(parse_study(text, source="memory.yaml"), out_dir=d + "/run", backend="sequential")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _previous_tree(rev: str, dest: Path) -> Path | None:
    """The checkout at ``rev`` (default: before accumulated characteristics) exported into ``dest``."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    try:
        if rev == "default":
            added = subprocess.run([*git, "log", "--diff-filter=A", "--format=%H", "--",
                                    "simulations/oc_moments.py"], capture_output=True, text=True, check=True)
            first = added.stdout.split()
            if not first:
                return None
            rev = first[-1] + "~1"
        archive = subprocess.run([*git, "archive", rev], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        log.info("  (no previous figures: %s)", exc)
        return None
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    log.info("  previous code: %s", rev)
    return dest


def bench_memory(sizes: list[int], root: Path | None = None, label: str = "this checkout") -> dict[int, float]:
    """Peak RSS (MiB) of a whole run at each number of trials, each in a fresh process."""
    import subprocess

    root = str(root or Path(__file__).resolve().parents[1])
    log.info(" %s:", label)
    peaks = {}
    for n in sizes:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD.format(root=root, n=n)], capture_output=True,
                             text=True, check=True)
        peaks[n] = int(out.stdout.strip().splitlines()[-1]) / 1024
        log.info("  %9s trials: peak RSS %7.1f MiB  (%.1f s)", f"{n:,}", peaks[n], time.perf_counter() - t0)
    if len(sizes) >= 2:
        ratio = peaks[sizes[-1]] / peaks[sizes[0]]
        log.info("  ratio %s / %s trials: %.2f  [target <= %.1f: %s]", f"{sizes[-1]:,}", f"{sizes[0]:,}", ratio,
                 MEMORY_TARGET, "met" if ratio <= MEMORY_TARGET else "MISSED")
    return peaks


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--chunk-size", type=int, nargs="+", default=[500, 2_500],
                    help="one or more chunk sizes (500 is the study-file default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: all local cores")
    ap.add_argument("--memory", action="store_true", help="peak memory of a whole run at two sizes instead")
    ap.add_argument("--memory-trials", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--against", default="default",
                    help="with --memory: the git revision to measure too (default: before accumulated OCs; none)")
    args = ap.parse_args(argv)
    w = args.workers
    if args.memory:
        log.info("peak resident memory of a whole run (one BOIN design, one scenario, fresh process each); "
                 "load average %s:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        now = bench_memory(args.memory_trials)
        if args.against != "none":
            with tempfile.TemporaryDirectory() as d:
                prev = _previous_tree(args.against, Path(d))
                if prev is not None:
                    before = bench_memory(args.memory_trials, prev, "previous code")
                    for n in args.memory_trials:
                        log.info("  %9s trials: peak %.1f MiB now, %.1f MiB before (%.2fx)", f"{n:,}", now[n],
                                 before[n], now[n] / before[n])
        return 0

    for chunk_size in args.chunk_size:  # no dask cluster alive: it would take CPU from the loky workers
        _bench_speed_up(args.trials, chunk_size, w, args.repeats)

    import dask
    from dask.distributed import Client, LocalCluster

    # as escalade starts its own: without dask's MALLOC_TRIM_THRESHOLD_ (see runner._connect)
    env = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
           if k != "MALLOC_TRIM_THRESHOLD_"}
    t0 = time.perf_counter()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}), \
            LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        started = time.perf_counter() - t0
        for chunk_size in args.chunk_size:
            _bench_dask(args.trials, chunk_size, w, args.repeats, cluster.scheduler_address)
        client.close()
    log.info("dask LocalCluster of %d workers: start-up %.2f s", w, started)
    study = bench_study(args.trials, args.chunk_size[-1])

    def sim_own() -> object:
        scen = [ScenarioSpec(s.name, s.p_dlt, s.p_response, s.association) for s in study.scenarios]
        with tempfile.TemporaryDirectory() as d:
            return run_units(scen, [d for _, d in build_study_designs(study)], n_trials=args.trials,
                             seed=study.simulation.seed, chunk_size=args.chunk_size[-1], unit_dir=d,
                             backend="dask", n_jobs=w)

    log.info("dask, a run that starts and stops its own LocalCluster (chunk_size %d): %.2f s", args.chunk_size[-1],
             _best(sim_own, 1))

    for chunk_size in args.chunk_size:
        whole_study = bench_study(args.trials, chunk_size)

        def whole(n_jobs: int) -> Callable[[], object]:
            def go() -> object:
                with tempfile.TemporaryDirectory() as d:
                    return run_study(whole_study, n_jobs=n_jobs, out_dir=Path(d) / "run")
            return go

        best = _interleaved({"one": whole(1), "all": whole(w)}, max(1, args.repeats - 2))
        log.info("whole run_study (simulation + OCs + run directory, chunk_size %d), best of %d: 1 worker %.2f s, "
                 "%d workers %.2f s: speed-up %.2fx", chunk_size, max(1, args.repeats - 2), best["one"], w,
                 best["all"], best["one"] / best["all"])
    return 0


def _setup(n_trials: int, chunk_size: int) -> tuple[Callable[..., Callable[[], object]], int, int]:
    """A runner of the simulation stage with given options, the number of units and of trials in all."""
    study = bench_study(n_trials, chunk_size)
    designs = [d for _, d in build_study_designs(study)]
    scen = [ScenarioSpec(s.name, s.p_dlt, s.p_response, s.association) for s in study.scenarios]
    n_units = len(scen) * -(-n_trials // chunk_size)

    def sim(**kw) -> Callable[[], object]:
        def go() -> object:
            with tempfile.TemporaryDirectory() as d:
                return run_units(scen, designs, n_trials=n_trials, seed=study.simulation.seed,
                                 chunk_size=chunk_size, unit_dir=d, **kw)
        return go

    log.info("study: %d scenarios x %s trials, designs %s, chunk_size %d (%d units); %d local cores; "
             "load average %s", len(scen), f"{n_trials:,}", " + ".join(d.name for d in study.designs),
             chunk_size, n_units, os.cpu_count() or 1, " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return sim, n_units, n_trials * len(scen)


def _interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best time of each run over ``repeats`` rounds, the runs interleaved (after one warm-up each)."""
    for run in runs.values():
        run()  # warm-up: imports, loky workers, dask workers
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):  # interleaved, so that a busy spell on a shared machine hits all alike
        for name, run in runs.items():
            best[name] = min(best[name], _best(run, 1))
    return best


def _bench_speed_up(n_trials: int, chunk_size: int, w: int, repeats: int) -> None:
    sim, n_units, total = _setup(n_trials, chunk_size)
    best = _interleaved({"loky1": sim(n_jobs=1), "lokyN": sim(n_jobs=w, backend="loky")}, repeats)
    t1, tw = best["loky1"], best["lokyN"]
    speed_up = t1 / tw
    log.info("  simulation stage (unit files written as in a run), best of %d (interleaved):", repeats)
    log.info("    1 worker         %6.2f s  (%s trials/s per design; %.1f ms per unit)", t1, f"{total / t1:,.0f}",
             1000 * t1 / n_units)
    log.info("    loky, %d workers  %6.2f s  (%s trials/s per design)  speed-up %.2fx  [target >= %.1fx on 2 "
             "cores: %s]", w, tw, f"{total / tw:,.0f}", speed_up, SPEED_UP_TARGET,
             "met" if speed_up >= SPEED_UP_TARGET else "MISSED")


def _bench_dask(n_trials: int, chunk_size: int, w: int, repeats: int, scheduler: str) -> None:
    sim, _, total = _setup(n_trials, chunk_size)
    best = _interleaved({"lokyN": sim(n_jobs=w, backend="loky"), "dask": sim(backend="dask", scheduler=scheduler)},
                        repeats)
    tw, td = best["lokyN"], best["dask"]
    overhead = td / tw - 1
    log.info("  with the dask cluster running, best of %d (interleaved):", repeats)
    log.info("    loky, %d workers  %6.2f s", w, tw)
    log.info("    dask, %d workers  %6.2f s  (running LocalCluster, by address: units written by this process)  "
             "overhead vs loky %+.0f%%  [target <= %.0f%%: %s]", w, td, 100 * overhead,
             100 * DASK_OVERHEAD_TARGET, "met" if overhead <= DASK_OVERHEAD_TARGET else "MISSED")


if __name__ == "__main__":
    raise SystemExit(main())
