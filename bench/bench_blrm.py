"""Speed of the simulator for the BLRM with EWOC (issue 17).

Target: 10,000 BLRM trials (5 doses, N = 30, cohorts of 3) in <= 60 s on a
2-core machine. For scale: crmPack runs JAGS for every decision and takes
minutes per hundred trials.

Design: OncoBayes2's example prior N((logit 0.5, log 1), diag(2^2, 1^2)),
doses 1, 2.5, 5, 10, 25 with reference dose 10, EWOC 0.25 on [0.33, 1],
target interval [0.16, 0.33), no skipping of untried levels.

Run: python bench/bench_blrm.py [n_trials]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from escalade.design.blrm import BlrmConfig, BlrmDesign, BlrmModel
from escalade.simulations.trial import simulate

P_TRUE = [0.05, 0.10, 0.20, 0.35, 0.50]   # dose 3 in the target interval


def main() -> None:
    n_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    cfg = BlrmConfig(n_doses=5, doses=(1, 2.5, 5, 10, 25), reference_dose=10, max_n=30, cohort_size=3)
    t0 = time.perf_counter()
    design = BlrmDesign(cfg)                    # a fresh design: empty cache, grid built here
    out = simulate(design, P_TRUE, n_trials=n_trials, seed=2026)
    s = time.perf_counter() - t0
    sel = np.bincount(out.selected + 1, minlength=cfg.n_doses + 1) / n_trials
    print(f"BLRM-EWOC, 5 doses, N = 30, cohorts of 3: {n_trials:,} trials in {s:.2f} s "
          f"({n_trials / s:,.0f} trials/s); {len(design._cache.data):,} distinct states fitted; "
          f"P(select none, 1..5) = {np.round(sel, 3).tolist()}; mean n = {out.n.sum(axis=1).mean():.1f}")
    m = BlrmModel.from_config(cfg)
    rng = np.random.default_rng(0)
    n = rng.integers(0, 10, size=(5_000, 5))
    y = rng.binomial(n, 0.3)
    m.summarise(n[:10], y[:10])
    t0 = time.perf_counter()
    m.summarise(n, y)
    print(f"posterior fits ({cfg.grid_points} x {cfg.grid_points} grid): "
          f"{n.shape[0] / (time.perf_counter() - t0):,.0f} states/s")


if __name__ == "__main__":
    main()
