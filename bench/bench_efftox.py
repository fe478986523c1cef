"""Speed and memory of EffTox simulation (issue: EffTox engines).

Target: 10,000 EffTox trials of 13 cohorts of 3 on 5 doses in <= 60 s on a
2-core machine. For scale: trialr refits Stan after every cohort, 0.76 s per
fit on one core (validation/reference/efftox/efftox_stan_timing.json), i.e. about
13 x 10,000 x 0.76 s = 27 hours for the same run; trialr's vignette quotes
25 minutes for 100 trials.

The design is the prostate cancer example of Thall et al. (2014) (trialr's
``efftox_parameters_demo``); every posterior is the deterministic importance
sampling of :mod:`escalade.design.efftox_engine` with its default 4,096
points (plus a 512-point pilot) per distinct state. Decisions are memoised by
state, within a batch by the simulator and across batches by the design.

Run: python bench/bench_efftox.py [--trials 10000] [--threads 2] [--n-points 4096]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from escalade.design.efftox import EXAMPLE_PRIOR, EffToxConfig, EffToxDesign
from escalade.simulations.trial import simulate

# a scenario with an interior optimal dose (utility highest at dose 3 or 4)
P_TOX = [0.05, 0.10, 0.15, 0.20, 0.35]
P_EFF = [0.20, 0.40, 0.55, 0.65, 0.70]
STAN_SECONDS_PER_FIT = 0.76  # median rstan::sampling() wall time, 4 x 2000 iterations, 1 core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2, help="threads of the posterior engine (default 2 = 2 cores)")
    ap.add_argument("--n-points", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()

    cfg = EffToxConfig(n_doses=5, doses=(1.0, 2.0, 4.0, 6.6, 10.0), efficacy_hurdle=0.5, toxicity_hurdle=0.3,
                       eff0=0.5, tox1=0.65, eff_star=0.7, tox_star=0.25, cohort_size=3, max_n=39,
                       **EXAMPLE_PRIOR, n_points=args.n_points, n_threads=args.threads)
    design = EffToxDesign(cfg)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = simulate(design, P_TOX, P_EFF, n_trials=args.trials, seed=args.seed)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fits = len(design._cache.data)
    n = args.trials
    print(f"EffTox, {n:,} trials x 13 cohorts of 3, 5 doses, {args.threads} thread(s), "
          f"{args.n_points} points per posterior")
    print(f"  wall {wall:.1f} s  ({n / wall:,.0f} trials/s; CPU {cpu:.1f} s)   target <= 60 s on 2 cores")
    print(f"  distinct posteriors computed: {fits:,} ({wall / max(fits, 1) * 1e3:.2f} ms each, wall)")
    print(f"  trialr/Stan for the same fits: ~{fits * STAN_SECONDS_PER_FIT / 3600:.1f} h "
          f"(~{13 * n * STAN_SECONDS_PER_FIT / 3600:.0f} h without memoisation)")
    print(f"  peak RSS {rss:.0f} MiB (before the run {rss0:.0f} MiB)")
    sel = np.bincount(out.selected + 1, minlength=6) / n
    print("  selected: none " + " ".join(f"d{j}={sel[j]:.3f}" for j in range(1, 6)) + f" (none={sel[0]:.3f})")
    print(f"  mean patients per dose {np.round(out.n.mean(axis=0), 2).tolist()}")


if __name__ == "__main__":
    main()
