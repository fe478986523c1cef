"""Speed and memory of the simulator for BOIN and 3+3 (issue: foundation, section 6).

Target: 10,000 BOIN trials of a 5-dose scenario in <= 0.2 s (50x faster than
BOIN::get.oc's ~10 s on a 2-core machine), memory flat in the number of trials.

Run: python bench/bench_boin.py
"""

from __future__ import annotations

import resource
import time
import tracemalloc

from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.simulations.trial import simulate

P_TRUE = [0.05, 0.15, 0.30, 0.45, 0.60]  # BOIN::get.oc help-page scenario


def _time(design, n_trials: int, repeats: int = 5) -> float:
    simulate(design, P_TRUE, n_trials=200, seed=1)  # warm-up (imports, caches)
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        simulate(design, P_TRUE, n_trials=n_trials, seed=100 + r)
        best = min(best, time.perf_counter() - t0)
    return best


def _peak(design, n_trials: int) -> float:
    tracemalloc.start()
    simulate(design, P_TRUE, n_trials=n_trials, seed=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    boin = BoinDesign(BoinConfig(target=0.3, n_doses=5, cohort_size=3, max_n=30))
    tpt = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5))
    for name, design in (("BOIN", boin), ("3+3", tpt)):
        s = _time(design, 10_000)
        print(f"{name:5s} 10,000 trials: {s:.3f} s  ({10_000 / s:,.0f} trials/s; "
              f"BOIN::get.oc ~10 s -> {10.0 / s:.0f}x)")
    for n in (10_000, 40_000):
        print(f"BOIN  peak traced memory, {n:,} trials: {_peak(boin, n):.1f} MiB "
              f"(chunks of 1,000; trial-level results kept: {n * 5 * 4 * 8 / 2**20:.1f} MiB of counts)")
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
