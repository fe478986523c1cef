"""The numba kernels of :mod:`escalade.simulations.graded`: the CAR-T patient's outcomes and tallies.

:func:`patient_outcomes` counts, for every treated patient, the cuts its
latent normals pass (:func:`escalade.simulations.graded._tables` turns the
per-dose probabilities into cuts on the latent scale, each with a band around
it). A latent inside a band is reported as ``-1`` and the caller computes that
patient with the defining floating-point formula, so the outcomes are
identical to it. :func:`cohort_step` runs a whole cohort of the cohort loop
(outcomes, counts, tallies) in one call; :func:`tally_add` adds patients to
the per-trial tallies. ``cache=True``: compiled once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["patient_outcomes", "cohort_step", "tally_add"]


@njit(cache=True)
def patient_outcomes(z: np.ndarray, u_tox: np.ndarray, u_eff: np.ndarray, u_man: np.ndarray, flat: np.ndarray,
                     dose: np.ndarray, ae_lo: np.ndarray, ae_hi: np.ndarray, threshold: np.ndarray,
                     resp_lo: np.ndarray, resp_hi: np.ndarray, orr: np.ndarray, p_short: np.ndarray,
                     land_cuts: np.ndarray, p_dlt: np.ndarray, p_resp: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Every outcome of patients ``flat`` (columns of ``z``, of ``u_man`` and of the flattened plain
    uniforms ``u_tox``/``u_eff``) assigned ``dose``, in one pass.

    Returns ``(grades (K, n), category (n,), dlt (n,), resp (n,), infused (n,), odd)``. The infused level
    is ``dose`` unless ``u_man[0] < p_short[dose]`` (a shortfall), then ``dose`` less ``1 + #{c in
    land_cuts: c <= u_man[1]}`` levels, at least level 0. At it, the grade of type ``k`` is ``#{g:
    z[k] >= ae_hi[k, level, g]}`` and the DLT is some grade at or above its type's ``threshold``; the
    category is ``#{m: z[-1] <= resp_lo[level, m]}`` and the response ``orr[category]``. A latent in a
    band (``ae_lo <= z < ae_hi``, ``resp_lo < z <= resp_hi``) is counted in ``odd``; NaN cuts are never
    passed. An empty ``ae_lo`` / ``resp_lo`` / ``p_short`` is an absent section: the plain patient's ``u_tox <
    p_dlt`` / ``u_eff < p_resp`` at the infused level, no shortfall. ``odd`` counts the latents inside a
    band: their grade or category is ``-1``, and ``dlt``/``resp`` of those patients
    are left for the caller to recompute. The comparisons count without branches (the cuts are passed
    at random, so branches would mispredict).
    """
    n = flat.size
    k_ae = ae_lo.shape[0]
    n_cut = ae_lo.shape[2]
    m_cut = resp_lo.shape[1]
    r_row = z.shape[0] - 1
    grades = np.empty((k_ae, n), np.int8)
    category = np.full(n, -1, np.int8)
    dlt = np.empty(n, np.bool_)
    resp = np.empty(n, np.bool_)
    infused = np.empty(n, np.int64)
    odd = 0
    for i in range(n):
        f = flat[i]
        d = dose[i]
        j = d
        if p_short.size and u_man[0, f] < p_short[d]:
            steps = 1
            for c in range(land_cuts.size):
                steps += land_cuts[c] <= u_man[1, f]
            j = max(d - steps, 0)
        infused[i] = j
        if k_ae:
            t = False
            for k in range(k_ae):
                x = z[k, f]
                g = 0
                amb = 0
                for c in range(n_cut):
                    above = x >= ae_hi[k, j, c]
                    g += above
                    amb += (x >= ae_lo[k, j, c]) & (not above)
                odd += amb > 0
                grades[k, i] = -1 if amb else g
                t |= g >= threshold[k]
            dlt[i] = t
        else:
            dlt[i] = u_tox[f] < p_dlt[j]
        if resp_lo.shape[0]:
            x = z[r_row, f]
            m = 0
            amb = 0
            for c in range(m_cut):
                below = x <= resp_lo[j, c]
                m += below
                amb += (x <= resp_hi[j, c]) & (not below)
            odd += amb > 0
            if amb == 0:
                category[i] = m
            resp[i] = orr[m]
        else:
            resp[i] = u_eff[f] < p_resp[j]
    return grades, category, dlt, resp, infused, odd


@njit(cache=True)
def cohort_step(live: np.ndarray, dose: np.ndarray, size: np.ndarray, pos: np.ndarray, z: np.ndarray,
                u_tox: np.ndarray, u_eff: np.ndarray, u_man: np.ndarray, ae_lo: np.ndarray, ae_hi: np.ndarray,
                threshold: np.ndarray, resp_lo: np.ndarray, resp_hi: np.ndarray, orr: np.ndarray,
                p_short: np.ndarray, land_cuts: np.ndarray, p_dlt: np.ndarray, p_resp: np.ndarray,
                by_infused: bool, n: np.ndarray, tox: np.ndarray, eff: np.ndarray, both: np.ndarray,
                current: np.ndarray, last_n: np.ndarray, last_tox: np.ndarray, cohorts: np.ndarray,
                tally: np.ndarray, death: np.ndarray, below: np.ndarray) -> int:
    """A whole cohort of CAR-T patients: trial ``live[r]`` treats ``size[r]`` patients from slot
    ``pos[live[r]]`` on at assigned dose ``dose[r]``.

    Their outcomes come from :func:`patient_outcomes`; if a latent lies in a band, returns ``odd`` and
    changes nothing (the caller takes the defining formula's route). Otherwise records the cohort as
    ``CohortLoop.record`` then ``CohortLoop.record_patients`` do (the counts at the infused level when
    ``by_infused``; ``last_tox`` all the cohort's DLTs), adds the patients to the tallies of
    :func:`tally_add`, and returns 0.
    """
    cap = u_tox.size // n.shape[0]
    total = 0
    for r in range(live.size):
        total += size[r]
    flat = np.empty(total, np.int64)
    assigned = np.empty(total, np.int64)
    i = 0
    for r in range(live.size):
        base = live[r] * cap + pos[live[r]]
        for s in range(size[r]):
            flat[i] = base + s
            assigned[i] = dose[r]
            i += 1
    grades, _category, dlt, resp, infused, odd = patient_outcomes(
        z, u_tox, u_eff, u_man, flat, assigned, ae_lo, ae_hi, threshold, resp_lo, resp_hi, orr, p_short,
        land_cuts, p_dlt, p_resp)
    if odd:
        return odd
    n_grades = tally.shape[1]
    i = 0
    for r in range(live.size):
        t = live[r]
        d = dose[r]
        nt = 0
        for s in range(size[r]):
            j = infused[i]
            at = j if by_infused else d
            a = np.int64(dlt[i])
            b = np.int64(resp[i])
            n[t, at] += 1
            tox[t, at] += a
            eff[t, at] += b
            both[t, at] += a & b
            nt += a
            dead = False
            for k in range(grades.shape[0]):
                g = grades[k, i]
                tally[k, g, t, d] += 1
                dead |= g == n_grades - 1
            death[t, d] += dead
            below[t] += j < d
            i += 1
        pos[t] += size[r]
        cohorts[t] += 1
        current[t] = d
        last_n[t] = size[r]
        last_tox[t] = nt
    return 0


@njit(cache=True)
def tally_add(rows: np.ndarray, dose: np.ndarray, grades: np.ndarray, infused: np.ndarray, tally: np.ndarray,
              death: np.ndarray, below: np.ndarray) -> None:
    """Adds patients ``i`` (trial ``rows[i]``, assigned ``dose[i]``) to the tallies: ``tally`` ``(K,
    n_grades, T, D)`` patients per type, grade, trial and assigned dose; ``death`` ``(T, D)`` patients with
    a grade ``n_grades - 1`` event of any type; ``below`` ``(T,)`` patients infused below their dose."""
    n_grades = tally.shape[1]
    for i in range(rows.size):
        t = rows[i]
        d = dose[i]
        dead = False
        for k in range(grades.shape[0]):
            g = grades[k, i]
            tally[k, g, t, d] += 1
            if g == n_grades - 1:
                dead = True
        if dead:
            death[t, d] += 1
        if infused[i] < d:
            below[t] += 1
