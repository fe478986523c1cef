"""The numba kernel of :mod:`escalade.simulations.fast_tite` (imported only when that fast path runs).

:func:`run_tite` repeats, for every trial of a chunk, what the time-aware
engine's pending-data loop (:func:`escalade.simulations.timed._run_pending`,
without backfill) does for a batch: the same steps (ask the trials waiting for
a decision, then dose the cohorts of those that may go), the same calendar
(:meth:`escalade.simulations.timed._Timeline.dose_cohort`, sentinel rule
included), the same observed data (:meth:`~escalade.simulations.timed._Timeline.observed`,
:func:`~escalade.simulations.timed.followup_fraction`), TITE-BOIN's
``decide_tite`` and the rule layer (:func:`~escalade.design.rules.apply_rules`
with the accrual suspension as a hold), with the same floating-point
operations in the same order (no fastmath), so the outcomes are identical.

The trials advance in lock-step, one engine step at a time, for one reason:
the general engine sums the pending patients' follow-up fractions (STFT) with
``np.sum(axis=1)`` over rows padded to the widest trial asked at that step,
and numpy's pairwise summation groups the terms by their position in that row
(:func:`_pairwise_add`); the kernel keeps the width, so it keeps the rounding.
``cache=True``: compiled once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["run_tite", "ERR_COHORT", "ERR_NO_PENDING", "ERR_STEPS", "ERR_UNKNOWN"]

_TOL = 1e-9  # escalade.simulations.timed._DELAY_TOL
_MAX_SAMPLE_SIZE = 1  # StopReason values (checked by tests/test_fast_tite.py)
_ALL_TOXIC = 2
_N_AT_DOSE = 3

ERR_COHORT = -1      # a design asked for a cohort of size < 1
ERR_NO_PENDING = -2  # accrual suspended with no outcome pending
ERR_STEPS = -3       # the loop did not finish in its step limit
ERR_UNKNOWN = -4     # (internal) a latent value in a band was not evaluated


@njit(cache=True, inline="always")
def _event(v, lo, hi, p, flat, known_idx, known_val):
    """1 / 0 for an event / none; -1 when the exact uniform is needed and not known yet."""
    if v < lo:
        return 1
    if v >= hi:
        return 0
    i = np.searchsorted(known_idx, flat)
    if i < known_idx.size and known_idx[i] == flat:
        return 1 if known_val[i] < p else 0
    return -1


@njit(cache=True)
def run_tite(max_n, cohort_size, start_dose, start_size, esc, deesc, elim_hit, overdose, dlt_guard, deesc_guard,
             stop_n, stop_staying, min_n, target, lambda_e, lambda_d, max_pending, below_only,
             window, stagger, stagger_all, arrival, onset,
             v_tox, lo_t, hi_t, p_tox, v_eff, lo_e, hi_e, p_eff, has_eff, known_idx, known_val,
             n, tox, eff, both, cohorts, current, reason, suspensions, duration, need):
    """Run every trial of the chunk to its end; returns ``(status, n_need)``.

    ``status`` 0, or one of the ``ERR_*`` codes. ``n_need > 0``: the flat
    indices ``need[:n_need]`` (stream * T * cap + t * cap + col) are latent
    values in a band whose exact uniform decides the outcome: evaluate them and
    run again (the outputs of this run are then meaningless).
    """
    t_count, cap = v_tox.shape
    nd = n.shape[1]
    top = nd - 1
    bn = esc.size - 1
    n_need = 0
    pos = np.zeros(t_count, np.int64)
    open_at = np.zeros(t_count)
    last_n = np.zeros(t_count, np.int64)
    last_start = np.zeros(t_count, np.int64)
    nxt_dose = np.full(t_count, start_dose, np.int64)
    nxt_size = np.full(t_count, start_size, np.int64)
    pend = np.zeros(t_count, np.bool_)
    pdose = np.empty((t_count, max_n), np.int64)
    dosed = np.empty((t_count, max_n))
    ptox = np.zeros((t_count, max_n), np.bool_)
    tried = np.zeros((t_count, nd), np.bool_)
    n_at = np.zeros((t_count, nd), np.int64)
    yobs = np.zeros(nd, np.int64)
    r = np.zeros(8)
    live = np.arange(t_count)
    n_live = t_count
    for t in range(t_count):
        current[t] = 0
        cohorts[t] = 0
        reason[t] = 0
        suspensions[t] = 0
        for j in range(nd):
            n[t, j] = 0
            tox[t, j] = 0
            eff[t, j] = 0
            both[t, j] = 0
    limit = 4 * max_n + 10
    done = False
    for _step in range(limit):
        if n_live == 0:
            done = True
            break
        width = 0  # the widest trial asked at this step: the padded rows numpy sums
        for li in range(n_live):
            t = live[li]
            if pend[t] and pos[t] > width:
                width = pos[t]
        m8 = width - width % 8 if width >= 8 else 0
        keep = 0
        for li in range(n_live):
            t = live[li]
            ready = True
            if pend[t]:
                # ---- the decision on the data observed by now (_Timeline.observed, decide_tite)
                p = pos[t]
                t_now = max(arrival[t, p], open_at[t])
                cur = current[t]
                for j in range(nd):
                    yobs[j] = 0
                c = 0
                ltox = 0
                for k in range(8):
                    r[k] = 0.0
                stft = 0.0
                for i in range(p):
                    d = pdose[t, i]
                    el = t_now - dosed[t, i]
                    if el < 0.0:
                        el = 0.0
                    if ptox[t, i] and onset[t, i] <= el + _TOL:
                        yobs[d] += 1
                        if i >= last_start[t]:
                            ltox += 1
                        continue
                    if el >= window - _TOL:
                        continue  # complete: fraction 1
                    f = min(el / window, 1.0)
                    if f < 1.0 and d == cur:  # pending at the current dose: its fraction enters STFT
                        c += 1
                        if i < m8:
                            r[i % 8] += f
                # numpy's pairwise sum of the padded row: 8 partial sums, then the tail in order
                stft = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
                if p > m8:
                    for i in range(m8, p):
                        d = pdose[t, i]
                        if d != cur:
                            continue
                        el = t_now - dosed[t, i]
                        if el < 0.0:
                            el = 0.0
                        if ptox[t, i] and onset[t, i] <= el + _TOL:
                            continue
                        if el >= window - _TOL:
                            continue
                        f = min(el / window, 1.0)
                        if f < 1.0:
                            stft += f
                nc = n_at[t, cur]
                yc = yobs[cur]
                m = min(nc, bn)
                cur_elim = False
                for j in range(cur + 1):
                    if elim_hit[n_at[t, j], yobs[j]] != 0:
                        cur_elim = True
                        break
                deesc_obs = yc >= deesc[m]
                has_p = c > 0
                susp = has_p and (not deesc_obs) and (not cur_elim) and (c > max_pending * nc)
                if has_p:
                    nf = float(nc)
                    yf = float(yc)
                    cf = float(c)
                    pt = (yf + target / 2.0) / (nf - cf + 1.0)
                    odds = pt / (1.0 - pt)
                    phat = (yf + (cf - stft) * odds) / nf
                    esc_p = phat <= lambda_e
                    deesc_p = phat >= lambda_d
                    if below_only:
                        esc_p = esc_p and yc < target * nc
                        deesc_p = deesc_p and yc > target * nc
                    up = esc_p
                    down = deesc_obs or (deesc_p and not esc_p)
                else:
                    up = yc <= esc[m]
                    down = deesc_obs
                if up and cur < top:
                    rec = cur + 1
                elif down and cur > 0:
                    rec = cur - 1
                else:
                    rec = cur
                # ---- the rules (apply_rules): caps, then stops in priority order; the suspension holds
                dose = rec
                if dlt_guard != -2:
                    ln = last_n[t]
                    tg = ln > 0 and ltox >= ln
                    if dlt_guard >= 1:
                        tg = tg or (ln > 0 and ltox >= dlt_guard)
                    if tg:
                        dose = min(dose, cur)
                if not np.isnan(deesc_guard):
                    if nc > 0 and yc > deesc_guard * nc:
                        dose = min(dose, cur)
                od_stop = False
                for j in range(nd):
                    if overdose[n_at[t, j], yobs[j]] != 0:
                        dose = min(dose, j - 1)
                        od_stop = j == 0
                        break
                dose = min(max(dose, 0), top)
                held = susp
                if min_n > 0:
                    tot = 0
                    for j in range(nd):
                        tot += n_at[t, j]
                    held = held or tot < min_n
                staying = dose == cur
                why = 0
                if od_stop:
                    why = _ALL_TOXIC
                else:
                    at_n = False
                    for i in range(stop_n.size):
                        if stop_staying[i] == 1:
                            if nc >= stop_n[i] and staying:
                                at_n = True
                        elif n_at[t, rec] >= stop_n[i]:
                            at_n = True
                    if at_n and not held:
                        why = _N_AT_DOSE
                if why != 0:
                    reason[t] = why
                    continue  # stopped: leaves the live list
                if susp:  # closed until the next pending outcome is known (a DLT or a window's end)
                    nxt = np.inf
                    for i in range(p):
                        known = dosed[t, i] + (onset[t, i] if ptox[t, i] else window)
                        if known > t_now + _TOL and known < nxt:
                            nxt = known
                    if not np.isfinite(nxt):
                        return ERR_NO_PENDING, 0
                    open_at[t] = nxt
                    ready = False
                else:
                    nxt_dose[t] = dose
                    nxt_size[t] = cohort_size
                    open_at[t] = t_now
            if ready:
                # ---- dose the cohort (_Timeline.dose_cohort), outcomes at its dose
                p = pos[t]
                d = nxt_dose[t]
                csz = min(nxt_size[t], max_n - p)
                if csz < 1:
                    return ERR_COHORT, 0
                t_open = open_at[t]
                gate = -np.inf
                for k in range(csz):
                    col = min(p + k, cap - 1)
                    a = arrival[t, col]
                    dt = max(a, t_open)
                    if k == 0 and stagger > 0.0 and (stagger_all or not tried[t, d]):
                        gate = dt + stagger
                    if k > 0 and stagger > 0.0:
                        dt = max(dt, gate)
                    flat = t * cap + col
                    ot = _event(v_tox[t, col], lo_t[d], hi_t[d], p_tox[d], flat, known_idx, known_val)
                    oe = 0
                    if has_eff:
                        oe = _event(v_eff[t, col], lo_e[d], hi_e[d], p_eff[d], t_count * cap + flat, known_idx,
                                    known_val)
                    if ot < 0:
                        need[n_need] = flat
                        n_need += 1
                        ot = 0
                    if oe < 0:
                        need[n_need] = t_count * cap + flat
                        n_need += 1
                        oe = 0
                    pdose[t, p + k] = d
                    dosed[t, p + k] = dt
                    ptox[t, p + k] = ot > 0
                    n[t, d] += 1
                    tox[t, d] += ot
                    eff[t, d] += oe
                    if ot > 0 and oe > 0:
                        both[t, d] += 1
                    if dt > a + _TOL:
                        suspensions[t] += 1
                tried[t, d] = True
                if gate > open_at[t]:
                    open_at[t] = gate
                n_at[t, d] += csz
                last_start[t] = p
                pos[t] = p + csz
                cohorts[t] += 1
                current[t] = d
                last_n[t] = csz
                pend[t] = True
                if p + csz >= max_n:
                    reason[t] = _MAX_SAMPLE_SIZE
                    continue
            live[keep] = t
            keep += 1
        n_live = keep
    if not done and n_live > 0:
        return ERR_STEPS, n_need
    for t in range(t_count):  # first dosing to the end of the last patient's window
        last = dosed[t, 0]
        for i in range(1, pos[t]):
            if dosed[t, i] > last:
                last = dosed[t, i]
        duration[t] = (last + window) - dosed[t, 0]
    return 0, n_need
