"""Compiled (numba) per-dose sums of TITE-BOIN12's pending data.

:func:`escalade.design.tite_boin12.pending_summary` reads, per trial and dose,
about a dozen sums over the patients (counts, effective sample sizes,
expected utilities of the pending patients). In NumPy that is some sixty
small array operations per decision; :func:`pending_sums` is one loop over
each trial's patients with the same arithmetic, in the same order:

* every sum over patients runs in patient order from 0 (as ``np.bincount``,
  and as the sum over the patient axis of a one-hot array, which adds exact
  zeros for the other doses; the terms left out here are such zeros, added
  to sums of non-negative terms);
* each element-wise expression is evaluated as written in the NumPy form
  (e.g. ``p * (1 - w) / (1 - p * w)``, left to right), with ``fastmath`` off:
  no multiply-add is fused, nothing is reordered.

So the results are NumPy's, bit for bit (``tests/test_tite_boin12.py`` checks
them against the one-hot formulation). Cached on disk (``cache=True``): a new
environment compiles it on first use, later processes load it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["pending_sums"]


@njit(cache=True, nogil=True, error_model="numpy")
def pending_sums(dose: np.ndarray, dlt: np.ndarray, fraction: np.ndarray, eff: np.ndarray, eff_fraction: np.ndarray,
                 n_doses: int, target: float, phi_e: float, u11: float, u00: float,
                 x_counts: np.ndarray) -> tuple:  # pragma: no cover - compiled
    """Per-dose sums of ``S`` trials' patients (``(S, N)`` inputs; ``dose < 0``: empty slot).

    Returns ``n, y_tox, ess_tox, p_tox, pending_tox, y_eff, ess_eff, p_eff, pending_eff, x``
    (``(S, D)`` float arrays) as :func:`escalade.design.tite_boin12.pending_summary`
    defines them; ``x_counts`` are BOIN12's quasi-events of the counts, taken
    where no patient at a dose has an open outcome.
    """
    s_n, p_n = dose.shape
    d_n = n_doses
    n = np.zeros((s_n, d_n))
    y_t = np.zeros((s_n, d_n))
    y_e = np.zeros((s_n, d_n))
    full_t = np.zeros((s_n, d_n))
    part_t = np.zeros((s_n, d_n))
    full_e = np.zeros((s_n, d_n))
    part_e = np.zeros((s_n, d_n))
    pend_t = np.zeros((s_n, d_n))
    pend_e = np.zeros((s_n, d_n))
    n_done = np.zeros((s_n, d_n))
    tox_done = np.zeros((s_n, d_n))
    eff_done = np.zeros((s_n, d_n))
    both_done = np.zeros((s_n, d_n))
    n_open = np.zeros((s_n, d_n))
    x_pend = np.zeros((s_n, d_n))
    ess_t = np.empty((s_n, d_n))
    ess_e = np.empty((s_n, d_n))
    p_t = np.empty((s_n, d_n))
    p_e = np.empty((s_n, d_n))
    x = np.empty((s_n, d_n))
    for s in range(s_n):
        for i in range(p_n):
            d = dose[s, i]
            if d < 0:
                continue
            is_t = dlt[s, i]
            is_e = eff[s, i]
            pt = (not is_t) and fraction[s, i] < 1.0
            pe = (not is_e) and eff_fraction[s, i] < 1.0
            n[s, d] += 1.0
            if is_t:
                y_t[s, d] += 1.0
            if is_e:
                y_e[s, d] += 1.0
            if pt:
                part_t[s, d] += fraction[s, i]
                pend_t[s, d] += 1.0
            else:
                full_t[s, d] += 1.0
            if pe:
                part_e[s, d] += eff_fraction[s, i]
                pend_e[s, d] += 1.0
            else:
                full_e[s, d] += 1.0
            if not (pt or pe):
                n_done[s, d] += 1.0
                if is_t:
                    tox_done[s, d] += 1.0
                if is_e:
                    eff_done[s, d] += 1.0
                if is_t and is_e:
                    both_done[s, d] += 1.0
            else:
                n_open[s, d] += 1.0
        for d in range(d_n):
            ess_t[s, d] = full_t[s, d] + part_t[s, d]
            ess_e[s, d] = full_e[s, d] + part_e[s, d]
            p_t[s, d] = y_t[s, d] / ess_t[s, d] if ess_t[s, d] > 0 else target
            p_e[s, d] = y_e[s, d] / ess_e[s, d] if ess_e[s, d] > 0 else phi_e
        for i in range(p_n):
            d = dose[s, i]
            if d < 0:
                continue
            is_t = dlt[s, i]
            is_e = eff[s, i]
            pt = (not is_t) and fraction[s, i] < 1.0
            pe = (not is_e) and eff_fraction[s, i] < 1.0
            if not (pt or pe):
                continue
            w_t = fraction[s, i] if pt else 0.0
            w_e = eff_fraction[s, i] if pe else 0.0
            pti = p_t[s, d]
            pei = p_e[s, d]
            if is_t:
                e_t = 1.0
            elif pt:
                e_t = pti * (1 - w_t) / (1 - pti * w_t)
            else:
                e_t = 0.0
            if is_e:
                e_e = 1.0
            elif pe:
                e_e = pei * (1 - w_e) / (1 - pei * w_e)
            else:
                e_e = 0.0
            u = (u11 * e_t * e_e + 100.0 * (1 - e_t) * e_e + u00 * (1 - e_t) * (1 - e_e)) / 100.0
            x_pend[s, d] += u
        for d in range(d_n):
            if n_open[s, d] > 0:
                nn, tt, ee, bb = n_done[s, d], tox_done[s, d], eff_done[s, d], both_done[s, d]
                y01 = ee - bb
                y00 = nn - tt - ee + bb
                x[s, d] = (100.0 * y01 + u11 * bb + u00 * y00) / 100.0 + x_pend[s, d]
            else:
                x[s, d] = x_counts[s, d]
    return n, y_t, ess_t, p_t, pend_t, y_e, ess_e, p_e, pend_e, x
