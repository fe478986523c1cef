"""Cost of the CAR-T patient (issue #15): BOIN and CRM, 10,000 trials, every CAR-T section on vs none.

The scenario is the shipped study's "CAR-T patient: MTD at DL3" (adverse events of three types, response
depth at four assessments, survival, expansion, manufacturing). "None" runs the same derived P(DLT) and
ORR as plain Bernoulli patients, timed two ways: in the same engine as the CAR-T patients (the cohort loop,
``run_trials(engine="general")``: the cost of the richer patient itself), and by the fastest plain path
(``simulate``'s default: the compiled numba kernel of :mod:`escalade.simulations.fast` for BOIN; CRM has
none, so its two "none" figures are the same engine). Target: ratio <= 1.5 against the same engine.

Measured on the shared 2-core development machine (2026-11-30, CPU time, other jobs running):

* before (per-patient ``ndtr`` + sorted search, bincount tallies; commit 1726e31): BOIN 0.195 s vs
  0.084 s same engine (2.3x), vs 0.015 s compiled kernel (13x); CRM 0.257 s vs 0.130 s (2.0x);
* now (cuts on the latent scale, infused dose and tallies in numba,
  :mod:`escalade.simulations.graded_kernels`): BOIN 0.130-0.170 s vs 0.078-0.090 s same engine
  (1.7x-1.9x over runs: target NOT met), vs 0.014-0.017 s compiled kernel (9-10x); CRM 0.169-0.221 s vs
  0.114-0.136 s (1.5x-1.6x: at the target, not reliably under it). Identical outcomes (the shipped
  study's results_sha256 at 200 trials unchanged).

What is left of BOIN's ~0.05 s per 10,000 trials: drawing the copula normals (~1.2 ms per 1,000 trials,
every patient's, so the streams stay fixed), the cohort loop's graded bookkeeping in
``simulations/trial.py`` (``record_patients``, masks), ~0.1 ms per cohort for ``GradedPatients.at``. The
compiled kernel's 9x is the price of the general engine, not of the patient: CAR-T scenarios need the
cohort loop (grades, infused dose, graded designs).

Run: PYTHONPATH=. python bench/bench_cart.py (from the repository root)
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.crm import CrmConfig, CrmDesign
from escalade.scenarios.load import load_study
from escalade.simulations.trial import run_trials, simulate

STUDY = Path(__file__).resolve().parents[1] / "scenarios" / "cart_rr_heme.yaml"
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
