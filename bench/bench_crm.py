"""Speed of the simulator for the CRM (issue: CRM family).

Target: 10,000 CRM trials (6 doses, n = 36, cohorts of 3) in <= 1 s on a
2-core machine. For scale: dfcrm::crmsim needs 18-24 s for 2,000 trials of
n = 30 in cohorts of 3 (validation/reference/dfcrm/README.md, C4), i.e. about
100 s per 10,000 trials.

Run: python bench/bench_crm.py [n_trials]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from escalade.design.crm import CrmConfig, CrmDesign, CrmModel, design_intervals
from escalade.design.skeleton import getprior
from escalade.simulations.trial import simulate

P_TRUE = [0.05, 0.12, 0.30, 0.45, 0.60, 0.72]   # MTD = dose 3 at target 0.30
TARGET = 0.30
DFCRM_S_PER_10K = 5 * 21.8                     # median crmsim C4 (2,000 trials) x 5


def _variants() -> dict[str, CrmDesign]:
    base = dict(target=TARGET, n_doses=6, max_n=36, cohort_size=3)
    sk_e = getprior(0.05, TARGET, 3, 6)
    sk_l = getprior(0.05, TARGET, 3, 6, "logistic")
    return {
        "empiric, bayes (dfcrm restrict)": CrmDesign(CrmConfig(**base, skeleton=sk_e)),
        "logistic, bayes": CrmDesign(CrmConfig(**base, skeleton=sk_l, model="logistic")),
        "empiric, mle, two-stage": CrmDesign(CrmConfig(**base, skeleton=sk_e, method="mle",
                                                       startup=(0, 1, 2, 3, 4, 5))),
        "empiric + safety stop + stop at 12": CrmDesign(CrmConfig(**base, skeleton=sk_e, safety_threshold=0.9,
                                                                  stop_n_at_dose=12)),
    }


def _time(design: CrmDesign, n_trials: int, repeats: int = 3) -> tuple[float, np.ndarray]:
    simulate(design, P_TRUE, n_trials=200, seed=1)  # warm-up (imports, grid tables)
    best = float("inf")
    out = None
    for r in range(repeats):
        t0 = time.perf_counter()
        out = simulate(design, P_TRUE, n_trials=n_trials, seed=100 + r)
        best = min(best, time.perf_counter() - t0)
    assert out is not None
    sel = np.bincount(out.selected + 1, minlength=design.n_doses + 1) / n_trials
    return best, sel


def _fits_per_second() -> float:
    m = CrmModel(skeleton=getprior(0.05, TARGET, 3, 6), target=TARGET, n_intervals=246)
    rng = np.random.default_rng(0)
    n = rng.integers(0, 10, size=(20_000, 6))
    y = rng.binomial(n, 0.3)
    m.posterior(n[:10], y[:10])
    t0 = time.perf_counter()
    m.posterior(n, y)
    return n.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    n_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for name, design in _variants().items():
        s, sel = _time(design, n_trials)
        print(f"{name:38s} {n_trials:,} trials: {s:.3f} s  ({n_trials / s:,.0f} trials/s; "
              f"dfcrm::crmsim ~{DFCRM_S_PER_10K * n_trials / 10_000:.0f} s -> "
              f"{DFCRM_S_PER_10K * n_trials / 10_000 / s:.0f}x); grid {design.model.n_intervals + 1} nodes; "
              f"P(select none, 1..6) = {np.round(sel, 3).tolist()}")
    cfg = _variants()["empiric, bayes (dfcrm restrict)"].config
    print(f"posterior fits (batched, {design_intervals(cfg) + 1}-node grid): {_fits_per_second():,.0f} states/s")


if __name__ == "__main__":
    main()
