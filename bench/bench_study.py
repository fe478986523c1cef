"""Time the shipped study (scenarios/cart_rr_heme.yaml) against a base revision, in the same run (issue 18).

The base revision (default ``HEAD``) is exported with ``git archive`` into a
temporary folder; both checkouts then run ``python -m escalade run`` on the
study with the same ``--trials``, ``--jobs`` and seed, one after the other,
and the script prints each wall and CPU time (the run and its worker
processes), their ratios, the load average, and whether the two
``results_sha256`` agree (they must, unless a change documents why). With
``--compile`` it first times the numba compile of the grid kernels on an
empty cache (what a fresh environment pays once) and a cached load. With
``--profile`` it also prints where this checkout's time goes, by design
(one sequential run under cProfile: cumulative seconds of each engine call).

Target (issue 18): 10,000 trials in <= 60 s on 2 cores.

Measured (2026-12-01, this 2-core machine, load average 1.5-2.0, numba cache warm; a fresh environment
compiles the kernels once, ~10-15 s): 55.9-56.7 s wall, 105-107 s CPU with ``--jobs 2``; the same run of
the tree before this session's issue-18 work took 82-85 s (its numba cache cold) and 65-68 s warm; the
HEAD of the previous session, 5.5 minutes. Per design in one process at 10,000 trials before the last two
changes: EffTox 28 s, TITE-BOIN12 25 s, BOIN and BOIN with backfill (calendar time) 14 s, TITE-CRM 4.7 s,
BOIN12 4.5 s, BLRM 3.8 s, TITE-BOIN 3.6 s (its extrasafe rule keeps it in the general engine), CRM 2.5 s.

Run: python bench/bench_study.py [--trials 10000] [--jobs 2] [--base HEAD] [--profile] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = "scenarios/cart_rr_heme.yaml"


def _run(checkout: Path, out: Path, trials: int, jobs: int) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the run and its worker processes, user + system) and ``results_sha256``."""
    cmd = [sys.executable, "-m", "escalade", "run", STUDY, "--out", str(out), "--trials", str(trials),
           "--jobs", str(jobs), "--no-progress", "--force"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"escalade run in {checkout} failed: {done.stderr.strip()[-800:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return dt, cpu, json.loads((out / "manifest.json").read_text())["results_sha256"]


def _load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def _compile_report() -> None:
    """First-use compile (empty numba cache) and cached load of this checkout's kernels, in fresh processes.

    The grid contractions (design/blrm_kernels.py: CRM, TITE-CRM, BLRM) and TITE-BOIN12's pending sums
    (design/boin12_kernels.py); EffTox's kernels are timed by bench/bench_efftox.py.
    """
    code = ("import time, numpy as np; t = time.perf_counter(); from escalade.design import blrm_kernels as k; "
            "from escalade.design import boin12_kernels as b; "
            "k.counts_loglik_rows(np.zeros((1, 2)), np.zeros((2, 3))); "
            "k.grid_sums_rows(np.zeros((1, 3)), np.zeros((3, 1)), k.pairwise_plan(3)); "
            "z = np.zeros((1, 1)); b.pending_sums(np.zeros((1, 1), np.int64), z > 0, z, z > 0, z + 1, 1, 0.3, 0.3, "
            "60.0, 40.0, z); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTHONPATH="", NUMBA_CACHE_DIR=cache)
        first, again = (float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                                             capture_output=True, text=True).stdout) for _ in range(2))
    print(f"kernels (design/blrm_kernels.py, boin12_kernels.py): first use {first:.1f} s (numba compile, once per "
          f"environment), later processes {again:.1f} s (import and cache load); {_load()}")


def _profile(trials: int) -> None:
    """Cumulative time of each design's engine call in one sequential run of this checkout."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT))
    from escalade.simulations import runner

    calls: dict[str, float] = {}
    orig = runner.run_unit

    def timed_unit(unit, scenario, designs, seed):  # type: ignore[no-untyped-def]
        outs = []
        for d in designs:
            t0 = time.perf_counter()
            outs.extend(orig(unit, scenario, [d], seed))
            calls[d.kind] = calls.get(d.kind, 0.0) + time.perf_counter() - t0
        return outs

    runner.run_unit = timed_unit
    from escalade.cli import main as cli_main

    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        try:
            cli_main(["run", str(ROOT / STUDY), "--out", tmp + "/run", "--trials", str(trials), "--jobs", "1",
                      "--backend", "sequential", "--no-progress", "--force"])
        except SystemExit:
            pass
        prof.disable()
        total = time.perf_counter() - t0
    runner.run_unit = orig
    print(f"this checkout, {trials:,} trials, one process: {total:.1f} s; by design (each drawing its own patients):")
    for kind, s in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:12s} {s:7.1f} s  {100 * s / total:5.1f}%")
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--base", default="HEAD", help="git revision to compare with (exported with git archive)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-base", action="store_true", help="time this checkout only")
    ap.add_argument("--compile", action="store_true",
                    help="also time the first-use numba compile of the grid kernels (empty cache) and a cached load")
    a = ap.parse_args()
    if a.profile:
        _profile(a.trials)
        return
    if a.compile:
        _compile_report()
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        print(_load())
        dt, cpu, sha = _run(ROOT, tmpd / "run-here", a.trials, a.jobs)
        print(f"this checkout: {a.trials:,} trials, {a.jobs} workers: {dt:.1f} s wall, {cpu:.1f} s CPU "
              f"(target <= 60 s wall at 10,000 on 2 cores); {_load()}")
        if a.no_base:
            return
        base = tmpd / "base"
        base.mkdir()
        archive = subprocess.run(["git", "archive", a.base], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        dt0, cpu0, sha0 = _run(base, tmpd / "run-base", a.trials, a.jobs)
        print(f"{a.base}: {dt0:.1f} s wall, {cpu0:.1f} s CPU; {_load()}")
        print(f"ratio (base / this checkout): CPU {cpu0 / cpu:.2f}x, wall {dt0 / dt:.2f}x (wall is noisy on a "
              "shared machine; CPU time is the figure to compare)")
        print(f"results_sha256 {'identical' if sha == sha0 else 'DIFFERENT'}: {sha[:16]} vs {sha0[:16]}")


if __name__ == "__main__":
    main()
