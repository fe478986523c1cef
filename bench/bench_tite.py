"""Speed and calendar time of the late-onset-toxicity designs (issue 8).

1. TITE-CRM on dfcrm's ``titesim`` scenario TS1 (5 doses, n = 24, one patient
   every 14 days, 28-day window): ``dfcrm::titesim`` needs 36-42 s for 2,000
   trials (validation/reference/dfcrm/README.md); the time-aware engine decides for
   all trials of a chunk in one batched posterior per arrival.
2. TITE-BOIN against BOIN with full follow-up, at 1.5 and 4 patients a month:
   mean trial duration (days), accrual suspensions (patients who waited) and
   correct selection, on the same virtual patients.

Run: python bench/bench_tite.py [n_trials]
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.tite_boin import TiteBoinConfig, TiteBoinDesign
from escalade.design.tite_crm import TiteCrmConfig, TiteCrmDesign
from escalade.scenarios.study import Timing
from escalade.simulations.timed import DAYS_PER_MONTH, simulate_timed

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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
