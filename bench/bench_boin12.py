"""BOIN12's final selection, batched across trials against the previous per-trial loop (issue 18).

The previous implementation fitted the response rates one trial at a time (a
Python loop calling the scalar ``unimodal_regression`` once per mode, ~28,000
calls in the shipped run). The batched one (:func:`escalade.design.isotonic.unimodal_fits`)
fits every mode of every distinct final state in a few array operations. Both
are timed here on the same final states (the distinct terminal states of
``n_trials`` simulated BOIN12 trials on the scenario of brockk/escalation#8),
the paper's rule for both so that the results are the same (checked), and the
ratio is printed; the software rule (the default) is timed as well. TITE-BOIN12
selects with BOIN12's code on its complete final data, so this is its path too.

Run: python bench/bench_boin12.py [n_trials]
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time

import numpy as np
from scipy import stats

from escalade.design.boin12 import Boin12Config, Boin12Design, boin12_estimates, unimodal_regression
from escalade.simulations.trial import simulate

log = logging.getLogger("bench_boin12")

CFG = Boin12Config(target=0.35, n_doses=5, phi_e=0.25, n_earlystop=12, max_n=36, n_explore=100)
P_TOX = [0.03, 0.17, 0.35, 0.50, 0.65]
P_EFF = [0.12, 0.39, 0.43, 0.55, 0.65]


def previous_efficacy(n: np.ndarray, eff: np.ndarray) -> np.ndarray:
    """The per-trial loop this replaces (escalade before issue 18), kept for the comparison."""
    out = np.full(n.shape, np.nan)
    for i in range(n.shape[0]):
        t = n[i] > 0
        if not t.any():
            continue
        y, m = eff[i, t].astype(float), n[i, t].astype(float)
        pe, w = (y + 0.05) / (m + 0.1), m + 0.5
        fits = np.stack([unimodal_regression(pe, w, k) for k in range(pe.size)])
        ll = stats.binom.logpmf(y[None, :], m[None, :], fits).sum(axis=1)
        post = np.exp(ll - ll.max())
        out[i, t] = (post / post.sum()) @ fits
    return out


def _best(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n_trials: int = 10_000) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    res = simulate(Boin12Design(CFG), P_TOX, P_EFF, n_trials=n_trials, seed=18)
    m = np.concatenate([res.n, res.tox, res.eff], axis=1)
    uniq = np.unique(m, axis=0)
    n, tox, eff = np.split(uniq, 3, axis=1)
    both = np.zeros_like(n)
    paper = dataclasses.replace(CFG, selection="paper")
    old = previous_efficacy(n, eff)
    new = boin12_estimates(paper, n, tox, eff, both).p_eff
    if not np.allclose(old, new, rtol=0, atol=1e-12, equal_nan=True):
        raise SystemExit("bench_boin12: the batched fit differs from the per-trial loop")
    t_old = _best(lambda: previous_efficacy(n, eff), repeat=1)
    t_new = _best(lambda: boin12_estimates(paper, n, tox, eff, both))
    t_soft = _best(lambda: boin12_estimates(CFG, n, tox, eff, both))
    log.info("BOIN12 final selection, %d distinct final states of %d trials:", n.shape[0], n_trials)
    log.info("  previous per-trial loop (efficacy fit only): %8.1f ms", 1e3 * t_old)
    log.info("  batched, paper rule (all estimates, OBD):    %8.1f ms  -> %.0fx faster", 1e3 * t_new, t_old / t_new)
    log.info("  batched, software rule (default):            %8.1f ms  -> %.0fx faster", 1e3 * t_soft,
             t_old / t_soft)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
