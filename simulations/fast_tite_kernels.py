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

Each trial runs from start to end on its own; ``lockstep=True`` runs them step
by step across the chunk as the general engine does, with its padded row widths
for the STFT sum (:mod:`escalade.simulations.fast_tite`, "Order of the
trials"). Patients whose data can no longer change (DLT seen, or window
complete, with nothing left to learn) form a settled prefix that later
decisions skip; the others are scanned without branches on their outcomes.
``cache=True``: compiled once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["run_tite", "AMBIGUOUS", "ERR_COHORT", "ERR_NO_PENDING", "ERR_STEPS"]

_TOL = 1e-9  # escalade.simulations.timed._DELAY_TOL
_MAX_SAMPLE_SIZE = 1  # StopReason values (checked by tests/test_fast_tite.py)
_ALL_TOXIC = 2
_N_AT_DOSE = 3

ERR_COHORT = -1      # a design asked for a cohort of size < 1
ERR_NO_PENDING = -2  # accrual suspended with no outcome pending
ERR_STEPS = -3       # the loop did not finish in its step limit
AMBIGUOUS = 2        # a decision the order of the STFT sum could change (run in lock-step)


@njit(cache=True)
def _in_band(p, flat, known_idx, known_val):
    """A value in its band (between ``lo`` and ``hi``): 1 / 0 from its exact uniform, -1 when not known yet.

    (Called only there: the common case, ``v < lo`` or ``v >= hi``, is decided in the loop itself.)
    """
    i = np.searchsorted(known_idx, flat)
    if i < known_idx.size and known_idx[i] == flat:
        return 1 if known_val[i] < p else 0
    return -1


@njit(cache=True)
def _gather(v, t, out):
    """Patient slots ``0 .. out.size - 1`` of trial ``t`` from ``v`` in blocks (``v[k >> 4, t, k & 15]``)."""
    for k in range(out.size):
        out[k] = v[k >> 4, t, k & 15]


@njit(cache=True)
def _arrivals(arrival, cum, t, out):
    """Arrival day of each patient slot of trial ``t`` (``arrival`` in blocks as the draws, ``[k >> 4, t, k & 15]``):
    ``arrival`` itself, or with ``cum`` its running sum
    along the slots (``np.cumsum(axis=1)``, which adds in order: :func:`~escalade.simulations.timed.arrival_days`
    for Poisson and uniform accrual)."""
    if cum:
        a = arrival[0, t, 0]
        out[0] = a
        for k in range(1, out.size):
            a = a + arrival[k >> 4, t, k & 15]
            out[k] = a
    else:
        for k in range(out.size):
            out[k] = arrival[k >> 4, t, k & 15]


@njit(cache=True, error_model="numpy")  # no zero-division checks: every divisor is > 0
def run_tite(max_n, cohort_size, start_dose, start_size, esc, deesc, elim_hit, overdose, dlt_guard, deesc_guard,
             stop_n, stop_staying, min_n, target, lambda_e, lambda_d, max_pending, below_only,
             window, stagger, stagger_all, arrival, arr_cum, onset_frac,
             v_tox, lo_t, hi_t, p_tox, v_eff, lo_e, hi_e, p_eff, has_eff, known_idx, known_val,
             n, tox, eff, both, cohorts, current, reason, suspensions, duration, need, lockstep, ambiguous):
    """Run every trial of the chunk to its end; returns ``(status, n_need)``.

    ``status`` 0, :data:`AMBIGUOUS` (only without ``lockstep``: run again with it), or one of the
    ``ERR_*`` codes. ``n_need > 0``: the flat indices ``need[:n_need]`` (stream * T * cap + t * cap + col)
    are latent values in a band whose exact uniform decides the outcome: evaluate them and run again (the
    outputs of this run are then meaningless).

    Without ``lockstep`` each trial runs from start to end on its own (its data stay in cache), and the
    STFT is summed in the order of a row as wide as the trial; with 3 or more pending terms the order of a
    sum can change its last bits, so a decision whose imputed rate lies within ``ambiguous`` of a
    boundary returns :data:`AMBIGUOUS`. ``lockstep`` runs the trials step by step as the general engine,
    with its row widths (the fallback for that case, which practically never arises).
    """
    nb, t_count, _ = v_tox.shape
    cap = nb * 16  # patient slots: blocks of 16 (patients.BLOCK), block-major: v[col >> 4, t, col & 15]
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
    settled = np.zeros(t_count, np.int64)
    t_settle = np.full(t_count, -np.inf)
    rows = t_count if lockstep else 1  # the trials' patients: one row each in lock-step, else one reused
    yset = np.zeros((rows, nd), np.int64)
    n_at = np.zeros((rows, nd), np.int64)
    tried = np.zeros((rows, nd), np.bool_)
    pdose = np.empty((rows, max_n), np.int64)
    dosed = np.empty((rows, max_n))
    ptox = np.zeros((rows, max_n), np.bool_)
    pons = np.empty((rows, max_n))  # DLT onset (days after dosing)
    arow = np.empty((rows, max_n))  # arrival days (timed.arrival_days)
    vrow = np.empty((rows, max_n))  # the patients' DLT values, onset fractions and response values, gathered
    orow = np.empty((rows, max_n))  # from the blocks of the draws
    erow = np.zeros((rows, max_n if has_eff else 1))
    yobs = np.zeros(nd, np.int64)
    r = np.zeros(8)
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
    # the general engine's loop runs at most `limit` steps and must be done before its last one
    limit = 4 * max_n + 10
    live = np.arange(t_count)
    n_live = t_count
    if lockstep:
        for t in range(t_count):
            _arrivals(arrival, arr_cum, t, arow[t])
            _gather(v_tox, t, vrow[t])
            _gather(onset_frac, t, orow[t])
            if has_eff:
                _gather(v_eff, t, erow[t])
    width = 0
    for o in range(limit if lockstep else t_count):
        if lockstep:  # step o of every live trial
            if n_live == 0:
                break
            if o == limit - 1:
                return ERR_STEPS, n_need
            width = 0  # the widest trial asked at this step: the padded rows numpy sums
            for li in range(n_live):
                t = live[li]
                if pend[t] and pos[t] > width:
                    width = pos[t]
            n_inner = n_live
        else:  # every step of trial o
            n_inner = limit - 1
        keep = 0
        code = 0
        for k in range(n_inner):
            if lockstep:
                t = live[k]
                w = t
            else:
                t = o
                w = 0  # one work row, reused trial after trial (stays in cache)
                width = pos[t]
                if k == 0:
                    for j in range(nd):
                        yset[0, j] = 0
                        n_at[0, j] = 0
                        tried[0, j] = False
                    _arrivals(arrival, arr_cum, t, arow[0])
                    _gather(v_tox, t, vrow[0])
                    _gather(onset_frac, t, orow[0])
                    if has_eff:
                        _gather(v_eff, t, erow[0])
            m8 = width - width % 8 if width >= 8 else 0
            code = 0
            ready = True
            if pend[t]:
                # ---- the decision on the data observed by now (_Timeline.observed, decide_tite)
                p = pos[t]
                t_now = max(arow[w, p], open_at[t])
                cur = current[t]
                # patients whose data can no longer change (DLT seen or window complete, and nothing left to
                # learn after t_now) form a settled prefix; t_now never decreases within a trial (else: rebuild)
                if t_now < t_settle[t]:
                    settled[t] = 0
                    for j in range(nd):
                        yset[w, j] = 0
                s0 = settled[t]
                while s0 < p:
                    el = t_now - dosed[w, s0]
                    if el < 0.0:
                        el = 0.0
                    if ptox[w, s0]:
                        if not (pons[w, s0] <= el + _TOL) or dosed[w, s0] + pons[w, s0] > t_now + _TOL:
                            break
                        yset[w, pdose[w, s0]] += 1
                    elif not (el >= window - _TOL) or dosed[w, s0] + window > t_now + _TOL:
                        break
                    s0 += 1
                settled[t] = s0
                t_settle[t] = t_now
                for j in range(nd):
                    yobs[j] = yset[w, j]
                ltox = 0
                for i in range(last_start[t], min(s0, p)):
                    if ptox[w, i]:
                        ltox += 1
                # the other patients, without branches (their outcomes are random): a DLT seen by now counts
                # at its dose; a patient pending at the current dose adds its fraction to STFT, summed as numpy
                # sums the padded row (pairwise: 8 partial sums over the whole blocks of 8, then the rest in
                # order); a term of 0.0 leaves a sum unchanged, so the other patients add nothing
                c = 0
                for k in range(8):
                    r[k] = 0.0
                ls = last_start[t]
                split = max(min(m8, p), s0)
                for i in range(s0, split):
                    d = pdose[w, i]
                    el = max(t_now - dosed[w, i], 0.0)
                    dl = ptox[w, i] & (pons[w, i] <= el + _TOL)
                    yobs[d] += dl
                    ltox += dl & (i >= ls)
                    f = min(el / window, 1.0)
                    pc = (not dl) & (el < window - _TOL) & (d == cur) & (f < 1.0)
                    c += pc
                    r[i % 8] += f if pc else 0.0
                stft = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
                for i in range(split, p):
                    d = pdose[w, i]
                    el = max(t_now - dosed[w, i], 0.0)
                    dl = ptox[w, i] & (pons[w, i] <= el + _TOL)
                    yobs[d] += dl
                    ltox += dl & (i >= ls)
                    f = min(el / window, 1.0)
                    pc = (not dl) & (el < window - _TOL) & (d == cur) & (f < 1.0)
                    c += pc
                    stft += f if pc else 0.0
                nc = n_at[w, cur]
                yc = yobs[cur]
                m = min(nc, bn)
                cur_elim = False
                for j in range(cur + 1):
                    if elim_hit[n_at[w, j], yobs[j]] != 0:
                        cur_elim = True
                        break
                deesc_obs = yc >= deesc[m]
                has_p = c > 0
                susp = has_p and (not deesc_obs) and (not cur_elim) and (c > max_pending * nc)
                if susp:  # the move is not used: the trial waits (or stops for toxicity, which holds)
                    up = False
                    down = False
                elif has_p:
                    nf = float(nc)
                    yf = float(yc)
                    cf = float(c)
                    pt = (yf + target / 2.0) / (nf - cf + 1.0)
                    odds = pt / (1.0 - pt)
                    phat = (yf + (cf - stft) * odds) / nf
                    if not lockstep and c >= 3 and (abs(phat - lambda_e) <= ambiguous
                                                    or abs(phat - lambda_d) <= ambiguous):
                        return AMBIGUOUS, 0  # the order of the STFT sum could decide: run the chunk in lock-step
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
                    if overdose[n_at[w, j], yobs[j]] != 0:
                        dose = min(dose, j - 1)
                        od_stop = j == 0
                        break
                dose = min(max(dose, 0), top)
                held = susp
                if min_n > 0:
                    tot = 0
                    for j in range(nd):
                        tot += n_at[w, j]
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
                        elif n_at[w, rec] >= stop_n[i]:
                            at_n = True
                    if at_n and not held:
                        why = _N_AT_DOSE
                if why != 0:  # stopped
                    reason[t] = why
                    code = 1
                    ready = False
                elif susp:  # closed until the next pending outcome is known (a DLT or a window's end)
                    nxt = np.inf
                    for i in range(s0, p):  # settled patients have nothing left to learn
                        known = dosed[w, i] + (pons[w, i] if ptox[w, i] else window)
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
                    a = arow[w, col]
                    dt = max(a, t_open)
                    if k == 0 and stagger > 0.0 and (stagger_all or not tried[w, d]):
                        gate = dt + stagger
                    if k > 0 and stagger > 0.0:
                        dt = max(dt, gate)
                    flat = t * cap + col
                    v = vrow[w, col]
                    ot = 1 if v < lo_t[d] else (0 if v >= hi_t[d] else _in_band(p_tox[d], flat, known_idx, known_val))
                    oe = 0
                    if has_eff:
                        v = erow[w, col]
                        oe = 1 if v < lo_e[d] else (0 if v >= hi_e[d] else
                                                    _in_band(p_eff[d], t_count * cap + flat, known_idx, known_val))
                    if ot < 0:
                        need[n_need] = flat
                        n_need += 1
                        ot = 0
                    if oe < 0:
                        need[n_need] = t_count * cap + flat
                        n_need += 1
                        oe = 0
                    pdose[w, p + k] = d
                    dosed[w, p + k] = dt
                    ptox[w, p + k] = ot > 0
                    pons[w, p + k] = window * orow[w, col]  # as _Timeline: window x F^-1(u)
                    n[t, d] += 1
                    tox[t, d] += ot
                    eff[t, d] += oe
                    if ot > 0 and oe > 0:
                        both[t, d] += 1
                    if dt > a + _TOL:
                        suspensions[t] += 1
                tried[w, d] = True
                if gate > open_at[t]:
                    open_at[t] = gate
                n_at[w, d] += csz
                last_start[t] = p
                pos[t] = p + csz
                cohorts[t] += 1
                current[t] = d
                last_n[t] = csz
                pend[t] = True
                if p + csz >= max_n:
                    reason[t] = _MAX_SAMPLE_SIZE
                    code = 1
            if code == 1:  # ended: first dosing to the end of the last patient's window
                last = dosed[w, 0]
                for i in range(1, pos[t]):
                    if dosed[w, i] > last:
                        last = dosed[w, i]
                duration[t] = (last + window) - dosed[w, 0]
            if lockstep:
                if code == 0:
                    live[keep] = t
                    keep += 1
            elif code != 0:
                break
        if lockstep:
            n_live = keep
        elif code == 0:
            return ERR_STEPS, n_need
    return 0, n_need
