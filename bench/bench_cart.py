"""Cost of the CAR-T patient (issue #15): BOIN and CRM, 10,000 trials, every CAR-T section on vs none.

The scenario is the shipped study's "CAR-T patient: MTD at DL3" (adverse events of three types, response
depth at four assessments, survival, expansion, manufacturing). "None" runs the same derived P(DLT) and
ORR as plain Bernoulli patients, timed two ways: in the same engine as the CAR-T patients (the cohort loop,
``run_trials(engine="general")``: the cost of the richer patient itself), and by the fastest plain path
(``simulate``'s default: the compiled numba kernel of :mod:`escalade.simulations.fast` for BOIN; CRM has
none, so its two "none" figures are the same engine). Target: ratio <= 1.5 against the same engine.

Measured on the shared 2-core development machine (2026-12-01, CPU time, least of 5 runs; the
previous code and this one run alternately, three rounds each, load average 4.2-5.1 from other jobs):

* before (commit 8362ddc: numba grade/category/infused lookups per cohort, but the cohort's masks,
  scatters, ``record`` and ``record_patients`` in numpy, patient arrays tallied at the end): BOIN 0.134-0.164
  s vs 0.081-0.088 s same engine (1.65x-1.86x: target NOT met), vs 0.015-0.016 s compiled kernel (9-11x);
  CRM 0.173-0.216 s vs 0.117-0.143 s (1.48x-1.52x). The first version (per-patient ``ndtr``, commit
  1726e31) was 2.3x (BOIN) and 2.0x (CRM);
* now (each cohort of CAR-T patients in one compiled call,
  :func:`escalade.simulations.graded_kernels.cohort_step`: outcomes of every patient in one pass with
  branch-free cut counts, counts and the per-trial tallies updated in place, no per-patient arrays):
  BOIN 0.096-0.102 s vs 0.080-0.085 s same engine (1.16x-1.23x), vs 0.014-0.016 s compiled kernel (6-7x);
  CRM 0.135-0.148 s vs 0.120-0.123 s (1.13x-1.21x). Identical outcomes (the shipped study's
  results_sha256 at 200 trials unchanged, 3c6a2a61...).

What is left of BOIN's ~0.015-0.02 s per 10,000 trials is mostly drawing the copula normals (~1.2 ms per
1,000 trials, every patient's four normals, so the streams stay fixed) and the compiled cohort steps
(~0.1 ms per cohort of 1,000 trials). The compiled kernel's 6-7x is the price of the general engine, not of
the patient: CAR-T scenarios need the cohort loop (grades, infused dose, graded designs).

Run: python bench/bench_cart.py (this checkout's escalade, not an installed one)
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's escalade, not an installed one

from escalade.design.boin import BoinConfig, BoinDesign  # noqa: E402 - after the path
from escalade.design.crm import CrmConfig, CrmDesign  # noqa: E402 - after the path
from escalade.scenarios.load import load_study  # noqa: E402 - after the path
from escalade.simulations.trial import run_trials, simulate  # noqa: E402 - after the path

STUDY = ROOT / "scenarios" / "cart_rr_heme.yaml"
N_TRIALS = 10_000


def _best(fn, repeats: int = 5) -> float:
    """Least CPU time of ``repeats`` runs (CPU, not wall, time: robust to other processes on the machine)."""
    fn()  # warm-up (imports, caches)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    study = load_study(STUDY)
    s = next(x for x in study.scenarios if x.cart is not None)
    p_dlt, p_eff = np.asarray(s.p_dlt), np.asarray(s.p_response)
    designs = {
        "BOIN": BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30)),
        "CRM": CrmDesign(CrmConfig(target=0.3, n_doses=5, max_n=30, skeleton=(0.12, 0.20, 0.30, 0.40, 0.50))),
    }
    general = partial(run_trials, engine="general")
    print(f"scenario: {s.name}; {N_TRIALS:,} trials, chunks of 1,000, least CPU time of 5 runs, one BLAS thread")
    for name, d in designs.items():
        fastest = _best(lambda d=d: simulate(d, p_dlt, p_eff, n_trials=N_TRIALS, seed=1))
        plain = _best(lambda d=d: simulate(d, p_dlt, p_eff, n_trials=N_TRIALS, seed=1, run=general))
        cart = _best(lambda d=d: simulate(d, p_dlt, p_eff, n_trials=N_TRIALS, seed=1, cart=s.cart))
        print(f"{name:5s} all CAR-T sections {cart:.3f} s | none, same engine (cohort loop) {plain:.3f} s: "
              f"ratio {cart / plain:.2f} (target <= 1.5) | none, fastest path {fastest:.3f} s: ratio "
              f"{cart / fastest:.2f}")

if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        main()
