"""Speed of exact operating characteristics (simulations/exact.py).

Exact BOIN and CRM characteristics on 5 doses, cohorts of 3, for 4 and 12
cohorts (max_n = 12 and 36), curve A of validation/reference/escalation. Targets:
<= 50 ms for 4 cohorts, <= 2 s for 12 cohorts. For each case the time is split
into the design's ``decide``/``select`` and the enumeration itself (expanding,
merging, bookkeeping), so a slow design shows up as such.

Reference: the R package escalation takes 1-2 s to build the 4-cohort paths plus
2-4.6 s per true curve (validation/reference/README.md).

Memory (issue 18: BOIN and CRM exact OCs reach 20 cohorts within 4 GB): for 12,
16 and 20 cohorts each design runs in a fresh child process, which prints the
peak number of distinct live states, the peak RSS above the process's RSS
before the enumeration, that increase per peak state (what the limit's error
message estimates, :func:`escalade.simulations.exact._bytes_per_state`) and the time.

Run: python bench/bench_exact.py [--repeats 5] [--memory-cohorts 12,16,20 | --memory-cohorts ""]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import this checkout, not an installed escalade

from escalade.design.base import Decisions  # noqa: E402, IntArray, States
from escalade.design.boin import BoinConfig, BoinDesign  # noqa: E402
from escalade.simulations.exact import _bytes_per_state, _storage_dtype, exact_outcomes  # noqa: E402

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


MEMORY_LIMIT_GIB = 4.0


def memory_child(name: str, cohorts: int) -> dict[str, float]:
    """One exact enumeration in this (fresh) process: states, peak RSS increase, time."""
    exact_outcomes(_designs(6)[name], CURVE_A)  # warm-up (imports, tables) on a 2-cohort trial
    design = _designs(3 * cohorts)[name]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = exact_outcomes(design, CURVE_A, max_states=10**9)
    sec = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    width = 4 * design.n_doses + 3
    est = _bytes_per_state(__import__("numpy").zeros((0, width), _storage_dtype(3 * cohorts, design.n_doses)))
    return {"states": out.peak_states, "terminal": out.n_trials, "peak_rss": rss, "delta": max(rss - rss0, 0),
            "seconds": sec, "estimate": est}


def memory_table(cohort_list: list[int]) -> None:
    log.info("%-10s %7s %11s %10s %12s %13s %9s  %s", "design", "cohorts", "peak_states", "terminal",
             "peak_RSS_MiB", "bytes/state", "time_s", "(estimate in the limit's message)")
    for cohorts in cohort_list:
        for name in ("BOIN", "CRM"):
            res = subprocess.run([sys.executable, __file__, "--memory-child", name, str(cohorts)],
                                 capture_output=True, text=True, check=False,
                                 env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
            if res.returncode != 0:
                log.info("%-10s %7d failed: %s", name, cohorts, res.stderr.strip().splitlines()[-1:])
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            ok = "ok" if r["peak_rss"] <= MEMORY_LIMIT_GIB * 2**30 else "OVER 4 GB"
            per = f"{r['delta'] / r['states']:.0f}" if r["delta"] > 0 else "n/a"  # below the warm-up's high-water mark
            log.info("%-10s %7d %11d %10d %12.0f %13s %9.1f  (%d) %s", name, cohorts, r["states"], r["terminal"],
                     r["peak_rss"] / 2**20, per, r["seconds"], r["estimate"], ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="best of this many runs (default 5)")
    ap.add_argument("--memory-cohorts", default="12,16,20",
                    help="cohort counts of the memory table (default 12,16,20; empty: skip it)")
    ap.add_argument("--memory-child", nargs=2, metavar=("DESIGN", "COHORTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return
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
    if args.memory_cohorts.strip():
        memory_table([int(c) for c in args.memory_cohorts.split(",")])


if __name__ == "__main__":
    main()
