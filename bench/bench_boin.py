"""Speed of BOIN and 3+3, side by side with simFastBOIN's C++ engine when R has it (issue 18).

Each figure is the time of one 10,000-trial simulation (10 cohorts of 3 for
BOIN, ``n_earlystop = 100`` on both sides), measured inside its own process
after a warm-up call; the processes of escalade and of the peer alternate,
and each side keeps its best of ``--repeats`` (default 7). escalade's figure
is :func:`escalade.simulations.trial.simulate` (the compiled kernel of
:mod:`escalade.simulations.fast`); the ``general`` column is the cohort loop
that every other design runs (``engine="general"``), the engine before the
kernel, measured in the same run. The first-call compile time of the kernels
(numba, with an empty cache) is printed first.

The peer is simFastBOIN (R package, C++ engine; the project's shared peers folder), found
with ``Rscript`` and the library folders in ``R_LIBS_USER`` (or
``--r-lib``). Without R or the package the script prints escalade's figures
alone. simFastBOIN's 3+3 (``sim_3p3``) is an R loop, not its C++ engine: its
figure is printed for completeness.

Run: python bench/bench_boin.py [--repeats 7] [--trials 10000] [--r-lib DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's escalade, not an installed one

WORK = {
    # name: (design, p_true, n_doses)
    "BOIN 5 doses": ("boin", [0.05, 0.15, 0.30, 0.45, 0.60]),  # BOIN::get.oc help-page scenario
    "BOIN 7 doses": ("boin", [0.02, 0.05, 0.10, 0.20, 0.30, 0.45, 0.60]),
    "3+3 5 doses": ("3+3", [0.05, 0.15, 0.30, 0.45, 0.60]),
}


def _child(name: str, n_trials: int, engine: str) -> None:
    """In a fresh process: warm up, then print the seconds of one simulation."""
    import numpy as np

    from escalade.design.boin import BoinConfig, BoinDesign
    from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
    from escalade.simulations.trial import run_trials, simulate

    kind, p = WORK[name]
    nd = len(p)
    design = (BoinDesign(BoinConfig(target=0.3, n_doses=nd, cohort_size=3, max_n=30)) if kind == "boin"
              else ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=nd)))
    def general(d, pt, pe, pts):  # type: ignore[no-untyped-def]
        return run_trials(d, pt, pe, pts, engine="general")

    run = general if engine == "general" else None
    simulate(design, p, n_trials=500, seed=1, run=run)  # warm-up: imports, kernels from numba's cache
    t0 = time.perf_counter()
    out = simulate(design, p, n_trials=n_trials, seed=2, run=run)
    dt = time.perf_counter() - t0
    assert out.n_trials == n_trials and np.all(out.cohorts > 0)
    print(f"{dt:.6f}")


def _compile_time() -> float:
    """Seconds of the first call in a process whose numba cache is empty (compile included)."""
    code = ("import time; t = time.perf_counter(); "
            "from escalade.simulations.fast import compile_kernels, fast_plan, run_fast; import numpy as np; "
            "from escalade.design.boin import BoinConfig, BoinDesign; "
            "plan = fast_plan(BoinDesign(BoinConfig(target=0.3, n_doses=5))); "
            "u = np.random.default_rng(1).random((10, 32)); "
            "run_fast(plan, np.full(5, 0.3), np.zeros(5), u, None, latent=False); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


_R_CODE = """
suppressMessages(library(simFastBOIN))
p <- c({p}); kind <- "{kind}"
run <- function(seed) {{
  if (kind == "boin") sim_boin(0.3, p, 10, 3, n_trials = {n}, n_earlystop = 100, seed = seed)
  else sim_3p3(p, n_trials = {n}, seed = seed)
}}
invisible(run(1))
t0 <- proc.time()[["elapsed"]]; invisible(run(2)); cat(sprintf("%.6f\\n", proc.time()[["elapsed"]] - t0))
"""


def _peer_available(env: dict[str, str]) -> bool:
    if shutil.which("Rscript") is None:
        return False
    ok = subprocess.run(["Rscript", "-e", "quit(status = !requireNamespace('simFastBOIN', quietly = TRUE))"],
                        env=env, capture_output=True)
    return ok.returncode == 0


def _run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr.strip()[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--r-lib", default=None, help="R library folder holding simFastBOIN (added to R_LIBS_USER)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.trials, args.engine)
        return
    env = dict(os.environ)
    if args.r_lib:
        env["R_LIBS_USER"] = os.pathsep.join(filter(None, [args.r_lib, env.get("R_LIBS_USER")]))
    peer = _peer_available(env)
    print(f"numba first call, empty cache (compile): {_compile_time():.2f} s")
    print(f"{args.trials:,} trials, best of {args.repeats} processes each"
          + ("" if peer else " (simFastBOIN not found: escalade alone)"))
    print(f"{'work':14s} {'escalade':>10s} {'general':>10s} {'simFastBOIN':>12s} {'ratio':>7s}")
    me = [sys.executable, os.path.abspath(__file__), "--trials", str(args.trials)]
    for name, (kind, p) in WORK.items():
        best = {"auto": float("inf"), "general": float("inf"), "peer": float("inf")}
        for _ in range(args.repeats):
            best["auto"] = min(best["auto"], _run(me + ["--child", name]))
            if peer:
                code = _R_CODE.format(p=", ".join(map(str, p)), kind=kind, n=args.trials)
                best["peer"] = min(best["peer"], _run(["Rscript", "-e", code], env))
            best["general"] = min(best["general"], _run(me + ["--child", name, "--engine", "general"]))
        ratio = f"{best['peer'] / best['auto']:6.2f}x" if peer else "     -"
        peer_s = f"{1e3 * best['peer']:9.1f} ms" if peer else "           -"
        print(f"{name:14s} {1e3 * best['auto']:7.1f} ms {1e3 * best['general']:7.1f} ms {peer_s} {ratio}"
              f"   (general/escalade {best['general'] / best['auto']:.1f}x)")
    print("ratio = peer time / escalade time (>= 1: escalade at least as fast)")


if __name__ == "__main__":
    main()
