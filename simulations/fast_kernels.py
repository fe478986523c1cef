"""The numba kernels of :mod:`escalade.simulations.fast` (imported only when the fast path runs).

Each kernel repeats, for one trial at a time, what the general engine does for
a batch: :class:`~escalade.simulations.trial.CohortLoop` (enrol, record, end at
``max_n``, decide), the designs' ``decide``/``select`` and the rule layer
(:func:`~escalade.design.rules.apply_rules`, :func:`~escalade.design.rules.select_with_rules`),
in the same order and with the same floating-point operations (no fastmath),
so the outcomes are identical. ``cache=True``: compiled once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from escalade.design.base import StopReason

__all__ = ["run_cohorts", "select_final", "STOP_CODES"]

# StopReason values the kernels write (checked against the enum by tests/test_fast.py)
_MAX_SAMPLE_SIZE = 1
_ALL_TOXIC = 2
_N_AT_DOSE = 3
_NO_ACCEPTABLE = 4
_RULE_COMPLETE = 5
_MAX_COHORTS = 6
STOP_CODES = {StopReason.MAX_SAMPLE_SIZE: _MAX_SAMPLE_SIZE, StopReason.ALL_TOXIC: _ALL_TOXIC,
              StopReason.N_AT_DOSE: _N_AT_DOSE, StopReason.NO_ACCEPTABLE: _NO_ACCEPTABLE,
              StopReason.RULE_COMPLETE: _RULE_COMPLETE, StopReason.MAX_COHORTS: _MAX_COHORTS}


@njit(cache=True, inline="always")
def _priority(reason: int) -> int:
    """Rank of a stop reason in :data:`~escalade.design.rules.STOP_PRIORITY` (lower wins)."""
    if reason == _ALL_TOXIC:
        return 0
    if reason == _NO_ACCEPTABLE:
        return 1
    if reason == _N_AT_DOSE:
        return 2
    if reason == _RULE_COMPLETE:
        return 3
    if reason == _MAX_COHORTS:
        return 4
    return 5


@njit(cache=True, inline="always")
def _outcome(v, lo, hi, p, flat, known_idx, known_val):
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
def run_cohorts(kind, allow_deesc, max_n, cohort_size, esc, deesc, move_dir, overdose, dlt_guard, deesc_guard, stop_n,
                stop_staying, min_n, live, v_tox, lo_t, hi_t, p_tox, v_eff, lo_e, hi_e, p_eff, has_eff,
                known_idx, known_val, n, tox, eff, both, ints, resume, need):
    """Run the ``live`` trials to their end, or until an outcome needs its exact uniform.

    ``ints`` rows: pos, cohorts, current, last_n, last_tox, dose, size, reason.
    Returns ``(n_resume, n_need)``: the trials to run again once the flat
    indices ``need[:n_need]`` are evaluated (``n_resume = -1``: a cohort of size < 1).
    """
    t_count, cap = v_tox.shape
    nd = n.shape[1]
    top = nd - 1
    n_resume = 0
    n_need = 0
    bn = esc.size - 1
    for ti in range(live.size):
        t = live[ti]
        while True:
            pos = ints[0, t]
            d = ints[5, t]
            c = min(ints[6, t], max_n - pos)
            if c < 1:
                return -1, 0
            # outcomes of the cohort (nothing is changed before all are known)
            nt = 0
            ne = 0
            nb = 0
            missing = False
            for k in range(c):
                col = min(pos + k, cap - 1)
                flat = t * cap + col
                ot = _outcome(v_tox[t, col], lo_t[d], hi_t[d], p_tox[d], flat, known_idx, known_val)
                oe = 0
                if has_eff:
                    oe = _outcome(v_eff[t, col], lo_e[d], hi_e[d], p_eff[d], t_count * cap + flat, known_idx,
                                  known_val)
                if ot < 0:
                    need[n_need] = flat
                    n_need += 1
                    missing = True
                if oe < 0:
                    need[n_need] = t_count * cap + flat
                    n_need += 1
                    missing = True
                if ot > 0:
                    nt += 1
                if oe > 0:
                    ne += 1
                    if ot > 0:
                        nb += 1
            if missing:
                resume[n_resume] = t
                n_resume += 1
                break
            # record (CohortLoop.record)
            n[t, d] += c
            tox[t, d] += nt
            eff[t, d] += ne
            both[t, d] += nb
            pos += c
            ints[0, t] = pos
            ints[1, t] += 1
            ints[2, t] = d
            ints[3, t] = c
            ints[4, t] = nt
            if pos >= max_n:
                ints[7, t] = _MAX_SAMPLE_SIZE
                break
            # the design's own decision
            cur = d
            nc = n[t, cur]
            yc = tox[t, cur]
            bstop = False
            breason = 0
            if kind == 0:  # BOIN: BoinDesign.move
                m = min(nc, bn)
                if yc <= esc[m] and cur < top:
                    bdose = cur + 1
                elif yc >= deesc[m] and cur > 0:
                    bdose = cur - 1
                else:
                    bdose = cur
                bsize = cohort_size
            elif kind == 2:  # a decision table: TableDesign.move
                md = move_dir[nc, yc]
                if md == 1 and cur < top:
                    bdose = cur + 1
                elif md == -1 and cur > 0:
                    bdose = cur - 1
                else:
                    bdose = cur
                bsize = cohort_size
            else:  # 3+3: ThreePlusThreeDesign.decide
                above = n[t, min(cur + 1, top)]
                above_tried = cur < top and above > 0
                below_n = n[t, max(cur - 1, 0)]
                toxic = yc >= 2
                expand = nc == 3 and yc == 1
                incomplete = nc % 3 != 0 or nc == 0
                ok = (not toxic) and (not expand) and (not incomplete)
                if allow_deesc:
                    ok_done = ok and (cur == top or (above_tried and nc >= 6))
                    ok_expand = ok and above_tried and nc < 6
                    de = toxic and cur > 0 and below_n < 6
                else:
                    ok_done = ok and (cur == top or above_tried)
                    ok_expand = False
                    de = False
                escalate = ok and (not ok_done) and (not ok_expand)
                if escalate:
                    bdose = cur + 1
                elif de:
                    bdose = cur - 1
                else:
                    bdose = cur
                if toxic and cur == 0:
                    bstop = True
                    breason = _ALL_TOXIC
                    bdose = -1
                elif ok_done or (toxic and not de):
                    bstop = True
                    breason = _RULE_COMPLETE
                    bdose = -1
                bsize = 3
            rec = bdose
            # the rules (apply_rules): caps, then stops in priority order
            dose = 0 if bstop else bdose
            if dlt_guard != -2:
                ln = ints[3, t]
                lt = ints[4, t]
                tg = ln > 0 and lt >= ln
                if dlt_guard >= 1:
                    tg = tg or (ln > 0 and lt >= dlt_guard)
                if tg:
                    dose = min(dose, cur)
            if not np.isnan(deesc_guard):
                if nc > 0 and yc > deesc_guard * nc:
                    dose = min(dose, cur)
            od_stop = False
            for j in range(nd):
                if overdose[n[t, j], tox[t, j]]:
                    dose = min(dose, j - 1)
                    od_stop = j == 0
                    break
            dose = min(max(dose, 0), top)
            held = False
            if min_n > 0:
                tot = 0
                for j in range(nd):
                    tot += n[t, j]
                held = tot < min_n
            staying = dose == cur
            reason = 0
            if od_stop:
                reason = _ALL_TOXIC
            else:
                at_n = False
                for i in range(stop_n.size):
                    if stop_staying[i] == 1:
                        if n[t, cur] >= stop_n[i] and staying:
                            at_n = True
                    elif rec != -1 and n[t, max(rec, 0)] >= stop_n[i]:
                        at_n = True
                if at_n and not held:
                    reason = _N_AT_DOSE
                if bstop and (reason == 0 or _priority(breason) < _priority(reason)):
                    reason = breason
            if reason != 0:
                ints[7, t] = reason
                break
            ints[5, t] = dose
            ints[6, t] = bsize
    return n_resume, n_need


@njit(cache=True)
def select_final(kind, allow_deesc, boin_elim, final_overdose, target, bound, n, tox, current):
    """The final selection of every trial (the design's ``select``, then the final rules), 0-based or -1."""
    t_count, nd = n.shape
    out = np.empty(t_count, np.int64)
    adm = np.zeros(nd, np.bool_)
    est = np.empty(nd)
    wz = np.empty(nd)
    yz = np.empty(nd)
    cw = np.empty(nd + 1)
    cy = np.empty(nd + 1)
    sm = np.empty(nd)
    fit = np.empty(nd)
    for t in range(t_count):
        cur = current[t]
        if kind == 0:  # boin_select: elimination, then isotonic_mtd
            e = False
            e0 = False
            for j in range(nd):
                e = e or boin_elim[n[t, j], tox[t, j]] != 0
                if j == 0:
                    e0 = e
                adm[j] = n[t, j] > 0 and not e
            # boin_estimates(intervals=False): weighted isotonic fit of (y + 0.05) / (n + 0.1)
            cw[0] = 0.0
            cy[0] = 0.0
            for j in range(nd):
                nf = float(n[t, j])
                a = float(tox[t, j]) + 0.05
                bb = nf - float(tox[t, j]) + 0.05
                ph = a / (nf + 0.1)
                sq = nf + 0.1
                var = a * bb / (sq * sq * (nf + 1.1))
                if adm[j]:
                    wz[j] = 1.0 / var
                    yz[j] = ph
                else:
                    wz[j] = 0.0
                    yz[j] = 0.0
                cw[j + 1] = cw[j] + wz[j]
                cy[j + 1] = cy[j] + wz[j] * yz[j]
            for i in range(nd):
                fit[i] = -np.inf
            for j in range(nd):  # fit[i] = max over j <= i of min over k >= i of avg[j, k]
                if not adm[j]:
                    continue
                run = np.inf
                for k in range(nd - 1, j - 1, -1):
                    if adm[k]:
                        avg = (cy[k + 1] - cy[j]) / (cw[k + 1] - cw[j])
                        if avg < run:
                            run = avg
                    sm[k] = run
                for i in range(j, nd):
                    if sm[i] > fit[i]:
                        fit[i] = sm[i]
            for j in range(nd):
                est[j] = fit[j] if adm[j] else np.nan
            best = -1
            best_dist = np.inf
            best_below = False
            any_adm = False
            for j in range(nd):
                aj = adm[j]
                if aj and not np.isnan(bound):
                    aj = est[j] <= bound
                if not aj:
                    continue
                any_adm = True
                dj = abs(est[j] - target)
                bj = est[j] < target
                if dj < best_dist or (dj == best_dist and bj and best_below):
                    best = j
                    best_dist = dj
                    best_below = bj
            sel = best if any_adm else -1
            if e0:
                sel = -1
        else:  # ThreePlusThreeDesign.select
            y = tox[t, cur]
            nn = n[t, cur]
            passed = y <= 1 and not (nn == 3 and y == 1)
            sel = cur if passed else cur - 1
            if allow_deesc:
                below = max(sel, 0)
                nb = n[t, below]
                yb = tox[t, below]
                if sel >= 0 and (not passed) and (nb < 6 or yb > 1):
                    sel = -1
            if sel < 0:
                sel = -1
        # select_with_rules: the final rules' cap and safety stop
        for j in range(nd):
            if final_overdose[n[t, j], tox[t, j]]:
                if sel > j - 1:
                    sel = j - 1
                if j == 0:
                    sel = -1
                break
        out[t] = sel if sel >= 0 else -1
    return out
