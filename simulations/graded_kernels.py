"""The numba kernels of :mod:`escalade.simulations.graded` (the CAR-T patient's grade and category lookup).

Each kernel counts, for every treated patient, the cuts its latent normal
passes (:func:`escalade.simulations.graded._tables` turns the per-dose
probabilities into cuts on the latent scale, each with a band around it).
A latent inside a band is reported as ``-1`` and the caller computes that
patient with the defining floating-point formula, so the outcomes are
identical to it. ``cache=True``: compiled once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["grade_lookup", "category_lookup", "infused_lookup", "graded_tally"]


@njit(cache=True)
def grade_lookup(z: np.ndarray, flat: np.ndarray, dose: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(K, n)`` grades: per type ``k`` and patient ``i``, #{g: z[k, flat[i]] >= hi[k, dose[i], g]}; ``-1``
    where the latent lies in a band ``[lo, hi)`` (NaN cuts are never passed)."""
    k_ae, n = lo.shape[0], flat.size
    out = np.empty((k_ae, n), np.int8)
    for k in range(k_ae):
        for i in range(n):
            x = z[k, flat[i]]
            d = dose[i]
            g = 0
            amb = False
            for c in range(lo.shape[2]):
                if x >= hi[k, d, c]:
                    g += 1
                elif x >= lo[k, d, c]:
                    amb = True
            out[k, i] = -1 if amb else g
    return out


@njit(cache=True)
def category_lookup(z: np.ndarray, flat: np.ndarray, dose: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(n,)`` categories: #{m: z[flat[i]] <= lo[dose[i], m]}; ``-1`` where the latent lies in a band
    ``(lo, hi]`` (NaN cuts are never passed)."""
    n = flat.size
    out = np.empty(n, np.int8)
    for i in range(n):
        x = z[flat[i]]
        d = dose[i]
        m = 0
        amb = False
        for c in range(lo.shape[1]):
            if x <= lo[d, c]:
                m += 1
            elif x <= hi[d, c]:
                amb = True
        out[i] = -1 if amb else m
    return out


@njit(cache=True)
def infused_lookup(u: np.ndarray, flat: np.ndarray, dose: np.ndarray, p_short: np.ndarray,
                   cuts: np.ndarray) -> np.ndarray:
    """``(n,)`` infused levels: ``dose`` unless ``u[0] < p_short[dose]`` (a shortfall), then ``dose`` less
    ``1 + #{c in cuts: c <= u[1]}`` levels, at least level 0 (``cuts`` ascending)."""
    n = flat.size
    out = np.empty(n, np.int64)
    for i in range(n):
        d = dose[i]
        f = flat[i]
        if u[0, f] < p_short[d]:
            steps = 1
            for c in range(cuts.size):
                if cuts[c] <= u[1, f]:
                    steps += 1
            out[i] = max(d - steps, 0)
        else:
            out[i] = d
    return out


@njit(cache=True)
def graded_tally(patient_dose: np.ndarray, grades: np.ndarray, infused: np.ndarray, n_doses: int,
                 n_grades: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tallies of the treated patients (``patient_dose >= 0``): ``(K, T, D, n_grades)`` patients per
    type, trial, assigned dose and grade; ``(T, D)`` patients with a grade ``n_grades - 1`` event of
    any type; ``(T,)`` patients infused below their assigned dose."""
    k_ae = grades.shape[0]
    t_count, cap = patient_dose.shape
    tally = np.zeros((k_ae, t_count, n_doses, n_grades), np.int64)
    death = np.zeros((t_count, n_doses), np.int64)
    below = np.zeros(t_count, np.int64)
    for r in range(t_count):
        for c in range(cap):
            d = patient_dose[r, c]
            if d < 0:
                continue
            dead = False
            for k in range(k_ae):
                g = grades[k, r, c]
                tally[k, r, d, g] += 1
                if g == n_grades - 1:
                    dead = True
            if dead:
                death[r, d] += 1
            if infused[r, c] < d:
                below[r] += 1
    return tally, death, below
