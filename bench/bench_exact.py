"""Speed of exact operating characteristics (simulations/exact.py).

Exact BOIN and CRM characteristics on 5 doses, cohorts of 3, for 4 and 12
cohorts (max_n = 12 and 36), curve A of validation/reference/escalation. Targets:
<= 50 ms for 4 cohorts, <= 2 s for 12 cohorts. For each case the time is split
into the design's ``decide``/``select`` and the enumeration itself (expanding,
merging, bookkeeping), so a slow design shows up as such.

Reference: the R package escalation takes 1-2 s to build the 4-cohort paths plus
2-4.6 s per true curve (validation/reference/README.md).

Run: python bench/bench_exact.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from escalade.design.base import Decisions, IntArray, States
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.simulations.exact import exact_outcomes

log = logging.getLogger("bench_exact")

CURVE_A = [0.05, 0.10, 0.25, 0.40, 0.55]
SKELETON = [0.05, 0.12, 0.25, 0.40, 0.55]
TARGET_S = {4: 0.050, 12: 2.0}


@dataclass
class Timed:
    """Forwards to ``inner``, adding up the seconds spent in decide and select."""

    inner: Any
    decide_s: float = 0.0
    select_s: float = 0.0
    states: int = field(default=0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decide(self, states: States) -> Decisions:
        t0 = time.perf_counter()
        out = self.inner.decide(states)
        self.decide_s += time.perf_counter() - t0
        self.states += states.n_states
        return out

    def select(self, states: States) -> IntArray:
        t0 = time.perf_counter()
        out = self.inner.select(states)
        self.select_s += time.perf_counter() - t0
        self.states += states.n_states
        return out


def _designs(max_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"BOIN": BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=max_n))}
    try:
        from escalade.design.registry import build_design

        study = {"target": 0.25, "n_doses": 5, "cohort_size": 3, "max_n": max_n, "start_dose": 0}
        out["CRM"] = build_design("crm", {"skeleton": SKELETON}, study)
        out["CRM plain"] = build_design("crm", {"skeleton": SKELETON, "no_skip": "off", "coherence": "off"}, study)
    except Exception as exc:  # noqa: BLE001 - the bench reports what it could not build
        log.warning("CRM not benchmarked: %s", exc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="best of this many runs (default 5)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    log.info("%-10s %7s %9s %9s %9s %9s %8s %8s  %s", "design", "cohorts", "total_s", "decide_s", "select_s",
             "enum_s", "states", "terminal", "target")
    for cohorts in (4, 12):
        for name, design in _designs(3 * cohorts).items():
            exact_outcomes(design, CURVE_A)  # warm-up: imports, caches, quadrature tables
            best = None
            for _ in range(args.repeats):
                timed = Timed(design)
                t0 = time.perf_counter()
                out = exact_outcomes(timed, CURVE_A)
                total = time.perf_counter() - t0
                if best is None or total < best[0]:
                    best = (total, timed, out)
            total, timed, out = best
            ok = "ok" if total <= TARGET_S[cohorts] else "SLOW"
            log.info("%-10s %7d %9.4f %9.4f %9.4f %9.4f %8d %8d  <= %g s %s", name, cohorts, total,
                     timed.decide_s, timed.select_s, total - timed.decide_s - timed.select_s, timed.states,
                     out.n_trials, TARGET_S[cohorts], ok)


if __name__ == "__main__":
    main()
