"""Speed and calendar time of the late-onset-toxicity designs (issue 8).

1. TITE-CRM on dfcrm's ``titesim`` scenario TS1 (5 doses, n = 24, one patient
   every 14 days, 28-day window): ``dfcrm::titesim`` needs 36-42 s for 2,000
   trials (validation/reference/dfcrm/README.md); the time-aware engine decides for
   all trials of a chunk in one batched posterior per arrival.
2. TITE-BOIN against BOIN with full follow-up, at 1.5 and 4 patients a month:
   mean trial duration (days), accrual suspensions (patients who waited) and
   correct selection, on the same virtual patients.

3. TITE-BOIN side by side with the C++ TITE engine of simFastBOIN
   (``simFastBOIN_tite`` in the project's shared peers folder, found with ``--tite-peer DIR`` or
   ``ESCALADE_TITE_PEER``; R with Rcpp and simFastBOIN in ``R_LIBS_USER``):
   10,000 trials, 5 doses, 10 cohorts of 3, 28-day window, uniform DLT onset,
   Poisson accrual of 4 patients a month; each side timed inside its own
   process after a warm-up, processes interleaved, best of 7, wall and CPU
   time; the general engine (``engine="general"``, the code the compiled kernel
   of :mod:`escalade.simulations.fast_tite` replaced) alongside. Without the
   peer, escalade's figures alone. Then the kernels' first call in a fresh
   process with an empty numba cache (compile) and from the cache.

   Measured 2026-12-01 on the shared 2-core machine, same run, best of 7: at
   load average 1.2, kernel 26.2 ms (CPU 26.2 ms), general engine 311.3 ms
   (12x), C++ TITE engine 28.0 ms: ratio 1.07x (wall and CPU; peer time /
   escalade time); at load 5-7 the wall ratio was 1.03-1.27x, CPU 1.00-1.04x.
   First call 6.6 s CPU with an empty numba cache (compile), 0.32 s from the
   cache. (Before the kernel, the general engine in the same run: 0.09x the peer.)

Run: python bench/bench_tite.py [n_trials] [--tite-peer DIR] [--repeats 7] [--side-by-side-only]
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's escalade, not an installed one

import numpy as np  # noqa: E402

from escalade.design.boin import BoinConfig, BoinDesign  # noqa: E402
from escalade.design.tite_boin import TiteBoinConfig, TiteBoinDesign  # noqa: E402
from escalade.design.tite_crm import TiteCrmConfig, TiteCrmDesign  # noqa: E402
from escalade.scenarios.study import Timing  # noqa: E402
from escalade.simulations.timed import DAYS_PER_MONTH, simulate_timed  # noqa: E402

log = logging.getLogger("bench_tite")

SK5 = (0.08397349130562429, 0.15674102114263633, 0.25, 0.3545004276151119, 0.4603431110853069)
PI = [0.05, 0.12, 0.25, 0.40, 0.55]
DFCRM_TITESIM_S = 38.0  # median elapsed of 2,000 titesim trials (TS1)


def main(n_trials: int = 2000) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tite_crm = TiteCrmDesign(TiteCrmConfig(skeleton=SK5, target=0.25, n_doses=5, max_n=24))
    timing = Timing(accrual="fixed", rate_per_month=DAYS_PER_MONTH / 14)
    simulate_timed(tite_crm, PI, timing=timing, dlt_window_days=28, n_trials=100, seed=1)  # warm-up
    t0 = time.perf_counter()
    out = simulate_timed(tite_crm, PI, timing=timing, dlt_window_days=28, n_trials=n_trials, seed=2)
    dt = time.perf_counter() - t0
    sel = np.bincount(out.selected + 1, minlength=6)[1:] / n_trials
    log.info("TITE-CRM TS1: %d trials in %.2f s (dfcrm::titesim: ~%.0f s per 2,000); selection %s",
             n_trials, dt, DFCRM_TITESIM_S, np.round(sel, 3).tolist())

    p = [0.05, 0.12, 0.30, 0.45, 0.60]
    for rate in (1.5, 4.0):
        tm = Timing(accrual="poisson", rate_per_month=rate, dlt_onset="early")
        for name, design in (("BOIN", BoinDesign(BoinConfig(target=0.3, n_doses=5))),
                             ("TITE-BOIN", TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5)))):
            t0 = time.perf_counter()
            o = simulate_timed(design, p, timing=tm, dlt_window_days=28, n_trials=n_trials, seed=3)
            dt = time.perf_counter() - t0
            log.info("%4.1f/month %-9s duration %6.1f d (sd %5.1f), suspensions %5.2f, correct %5.1f%%, "
                     "%.2f s", rate, name, o.duration.mean(), o.duration.std(), o.suspensions.mean(),
                     100 * np.mean(o.selected == 2), dt)


SIDE_P = [0.05, 0.12, 0.30, 0.45, 0.60]
SIDE_RATE = 4.0  # patients a month


def _side_child(n_trials: int, engine: str) -> None:
    """In a fresh process: one warm-up, then print the wall and CPU seconds of one TITE-BOIN simulation."""
    design = TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5, cohort_size=3, max_n=30))
    tm = Timing(accrual="poisson", rate_per_month=SIDE_RATE, dlt_onset="uniform")
    simulate_timed(design, SIDE_P, timing=tm, dlt_window_days=28, n_trials=300, seed=1, engine=engine)
    t0, c0 = time.perf_counter(), time.process_time()
    out = simulate_timed(design, SIDE_P, timing=tm, dlt_window_days=28, n_trials=n_trials, seed=2, engine=engine)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    assert out.n_trials == n_trials
    print(f"{dt:.6f} {dc:.6f}")


def _compile_child() -> None:
    """In a fresh process (``NUMBA_CACHE_DIR`` set by the caller): seconds of the kernels' first call."""
    design = TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5))
    tm = Timing(accrual="poisson", rate_per_month=SIDE_RATE)
    simulate_timed(BoinDesign(BoinConfig(target=0.3, n_doses=5)), SIDE_P, timing=tm, dlt_window_days=28,
                   n_trials=10, seed=1, engine="general")  # imports and tables, outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    simulate_timed(design, SIDE_P, timing=tm, dlt_window_days=28, n_trials=10, seed=1)
    print(f"{time.perf_counter() - t0:.6f} {time.process_time() - c0:.6f}")


_R_TITE = """
src <- readLines("tite_sfb.R")  # the wrapper, with Rcpp's build cache kept between processes
src <- sub('Rcpp::sourceCpp("tite_sfb.cpp")', 'Rcpp::sourceCpp("tite_sfb.cpp", cacheDir = "{cache}")', src, fixed = TRUE)
eval(parse(text = src))
run <- function(seed) tite_sim(0.3, c({p}), 10, 3, 28, {rate} / 30.4375, {n}, seed)
invisible(run(1))
t0 <- proc.time(); invisible(run(2)); t <- proc.time() - t0
cat(sprintf("%.6f %.6f\\n", t[["elapsed"]], t[["user.self"]] + t[["sys.self"]]))
"""


def _timed(cmd: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> tuple[float, float]:
    """``(wall, cpu)`` seconds printed by a child process."""
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr.strip()[-600:]}")
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def compile_time() -> None:
    """The compiled kernels' first call in a fresh process: with an empty numba cache, then from the cache."""
    me = [sys.executable, os.path.abspath(__file__), "--compile-child"]
    with tempfile.TemporaryDirectory(prefix="escalade-numba-") as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        cold = _timed(me, env=env)
        warm = _timed(me, env=env)
    log.info("TITE-BOIN kernel first call: %.1f s (CPU %.1f s) with an empty numba cache (compile), %.2f s "
             "(CPU %.2f s) from the cache", *cold, *warm)


def side_by_side(n_trials: int, repeats: int, peer_dir: str | None) -> None:
    """escalade's TITE-BOIN (compiled kernel, and the general engine it replaces) against the C++ TITE
    engine: interleaved processes, best of ``repeats`` each, wall and CPU time."""
    peer = None
    if peer_dir and shutil.which("Rscript") and (Path(peer_dir) / "tite_sfb.cpp").exists():
        peer = str(Path(peer_dir).resolve())
    cache = os.path.join(tempfile.gettempdir(), "escalade-bench-rcpp")
    code = _R_TITE.format(cache=cache, p=", ".join(map(str, SIDE_P)), rate=SIDE_RATE, n=n_trials)
    me = [sys.executable, os.path.abspath(__file__), str(n_trials), "--side-child"]
    best = {"kernel": [np.inf, np.inf], "general": [np.inf, np.inf], "peer": [np.inf, np.inf]}
    for _ in range(repeats):
        runs = [("kernel", me + ["--engine", "auto"], None), ("general", me + ["--engine", "general"], None)]
        if peer:
            runs.append(("peer", ["Rscript", "-e", code], peer))
        for name, cmd, cwd in runs:
            wall, cpu = _timed(cmd, cwd=cwd)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    k, g, r = best["kernel"], best["general"], best["peer"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    log.info("TITE-BOIN %d trials, best of %d processes each (load average %.1f):", n_trials, repeats, load)
    log.info("  escalade kernel %.1f ms (CPU %.1f ms); general engine %.1f ms (CPU %.1f ms): %.1fx faster",
             1e3 * k[0], 1e3 * k[1], 1e3 * g[0], 1e3 * g[1], g[1] / k[1])
    if peer:
        log.info("  simFastBOIN C++ TITE %.1f ms (CPU %.1f ms): ratio %.2fx wall, %.2fx CPU "
                 "(peer time / escalade time)", 1e3 * r[0], 1e3 * r[1], r[0] / k[0], r[1] / k[1])
    else:
        log.info("  peer not found: pass --tite-peer DIR (with R, Rcpp and simFastBOIN in R_LIBS_USER)")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n_trials", nargs="?", type=int, default=2000)
    ap.add_argument("--tite-peer", default=os.environ.get("ESCALADE_TITE_PEER"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--side-by-side-only", action="store_true")
    ap.add_argument("--side-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side_child:
        _side_child(a.n_trials, a.engine)
    elif a.compile_child:
        _compile_child()
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        if not a.side_by_side_only:
            main(a.n_trials)
        compile_time()
        side_by_side(10_000 if a.side_by_side_only else a.n_trials, a.repeats, a.tite_peer)
