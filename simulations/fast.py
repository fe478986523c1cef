"""Compiled whole-trial engine for BOIN, 3+3 and the table designs (a fast path of :func:`~escalade.simulations.trial.run_trials`).

The general engine (:mod:`escalade.simulations.trial`) advances all trials of
a chunk together, one cohort per step, with a few dozen numpy passes per step.
For a table-driven design the work per cohort is a handful of integer
look-ups, so numpy's per-call overhead dominates. Here one numba kernel runs
each trial from its first cohort to its end, then a second one applies the
final selection.

Which designs qualify
---------------------
:func:`fast_plan` returns a plan only for :class:`~escalade.design.boin.BoinDesign`,
:class:`~escalade.design.threeplusthree.ThreePlusThreeDesign` and the
decision-table designs (Keyboard, mTPI-2, i3+3, a protocol's table:
:class:`~escalade.design.decision_table.TableDesign`) (exact types, no
subclass or wrapper) whose rules are among those the kernel implements:
:class:`~escalade.design.decision_table.TableElimination`, :class:`~escalade.design.rules.DltGuard`,
:class:`~escalade.design.rules.DeescalationGuard`,
:class:`~escalade.design.rules.OverdoseControl`,
:class:`~escalade.design.rules.StopAtN` and
:class:`~escalade.design.rules.MinSampleSize` (BOIN without ``extrasafe`` or
``titration``), and whose config has no field beyond :data:`KNOWN_FIELDS`.
Anything else (other designs, other rules or options, calendar time, pending
data) runs in the general engine. Every threshold the kernel reads is
tabulated from the design's own Python functions (the BOIN boundaries,
:func:`~escalade.design.rules.beta_exceeds` through the rules' ``excluded``,
BOIN's selection-time elimination), and the rules combine exactly as
:func:`~escalade.design.rules.apply_rules` and
:func:`~escalade.design.rules.select_with_rules` combine them, so the outcomes
are the general engine's, array for array (``tests/test_fast.py``).

Latent normals instead of uniforms
----------------------------------
A patient has a DLT at dose ``d`` iff ``ndtr(z) < p[d]``
(:func:`~escalade.simulations.patients.draw_patients`). With the normals
``z`` (:func:`draw_latent`) the kernel decides by comparing ``z`` with
``ndtri(p[d])`` and evaluates ``ndtr`` (scipy's, in Python) only for the rare
``z`` in a narrow band around it, where rounding could matter; outside the
band the answer is certain by monotonicity, so the outcome is bit-identical
while the costly ``ndtr`` of every draw is skipped. Only the streams used are
drawn: the response stream only when some ``p_eff > 0`` (else no patient can
respond), never the onset and arrival streams (no calendar time). The draws
that are made are those of ``draw_patients``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import special

from escalade.design.base import NO_DOSE, Design
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import BLOCK

__all__ = ["FastPlan", "fast_plan", "run_fast", "draw_latent", "compile_kernels"]

log = logging.getLogger(__name__)

_BOIN, _TPT, _TABLE = 0, 1, 2
_SAFE_P = 1e-3      # p in [_SAFE_P, 1 - _SAFE_P]: a band of +-_BAND around ndtri(p)
_BAND = 1e-6        # (ndtr changes there by >= 3e-9, far above its rounding error of ~1e-16)
_TAIL_Z = 3.0       # outside that range: certain beyond +-3 (ndtr(-3) = 0.00135 > 1e-3), exact inside


@dataclass(frozen=True, slots=True, eq=False)
class FastPlan:
    """Everything the kernel needs about one design (tables from the design's own functions)."""

    kind: int
    n_doses: int
    max_n: int
    start_dose: int
    start_size: int
    cohort_size: int
    allow_deescalation: bool
    esc: np.ndarray           # BOIN: escalate if y <= esc[min(n, bn_max)]
    deesc: np.ndarray
    move_dir: np.ndarray      # table designs: (max_n + 1, max_n + 1) int8, +1 E, -1 D or DU, 0 S at (n, y)
    overdose: np.ndarray      # (max_n + 1, max_n + 1) uint8: decide-time exclusion hit at (n, y)
    final_overdose: np.ndarray  # the same for the final rules (select_with_rules)
    boin_elim: np.ndarray     # (max_n + 1, max_n + 1) uint8: the selection's elimination at (n, y)
    dlt_guard: int            # -2 off, -1 all-DLT cohort, k >= 1: at least k DLTs (or all)
    deesc_guard: float        # NaN: off; else lambda_d
    stop_n: np.ndarray        # StopAtN thresholds
    stop_staying: np.ndarray  # 1 where at="staying"
    min_n: int                # MinSampleSize (0: off)
    target: float
    bound: float              # NaN: no bound_mtd


def _grid(max_n: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.repeat(np.arange(max_n + 1), max_n + 1)
    y = np.tile(np.arange(max_n + 1), max_n + 1)
    return n, y


def _tabulate_overdose(rules: list, target: float | None, max_n: int) -> np.ndarray:
    """``(n, y)`` table of the exclusion hits of the rules (each rule's ``excluded`` on one-dose states)."""
    from escalade.design.base import States
    from escalade.design.decision_table import TableElimination

    n, y = _grid(max_n)
    hit = np.zeros(n.size, bool)
    if rules:
        st = States.from_counts(n[:, None], np.minimum(y, n)[:, None], current=0)
        for r in rules:
            ex = r.excluded(st) if isinstance(r, TableElimination) else r.excluded(st, float(target))
            hit |= ex[:, 0]
    hit &= y <= n
    return hit.reshape(max_n + 1, max_n + 1).astype(np.uint8)


#: Config fields the kernel knows the meaning of (BOIN, 3+3 and the table designs' configs as written). A config
#: with any other field (a rule or option added later) runs in the general engine until the kernel learns it.
KNOWN_FIELDS = frozenset({
    "allow_deescalation", "alpha", "beta", "beta_prior", "bound_mtd", "coherence", "cohort_size", "cutoff_eli",
    "decisions", "elim_min_n", "epsilon1", "epsilon2", "extrasafe", "lowest_dose_safety", "lowest_dose_safety_min_n",
    "margin_l", "margin_r", "max_n", "min_n", "n_doses", "n_earlystop", "no_escalation_above_boundary",
    "no_escalation_after_dlts", "no_skip", "offset", "overdose_control", "overdose_min_n", "p_saf", "p_tox",
    "start_dose", "stop_n_at_dose", "table", "target", "titration"})


#: Options the kernel runs only when they are off (their value here): backfill cohorts need calendar time,
#: and the published-table variants (BOIN staying at 1 DLT in 3, 3+3 six at the top dose) and BOIN12/TITE-BOIN12's
#: options are not compiled; on, the design runs in the general engine.
OFF_FIELDS: dict[str, object] = {"backfill": None, "stay_on_1_of_3": False, "six_at_top": False}


def fast_plan(design: Design) -> FastPlan | None:
    """The kernel's plan for ``design``, or None when it must run in the general engine."""
    import dataclasses

    from escalade.design import rules as R
    from escalade.design.boin import BoinDesign, _elimination_mask
    from escalade.design.decision_table import DecisionTableDesign, TableElimination
    from escalade.design.i3plus3 import I3plus3Design
    from escalade.design.keyboard import KeyboardDesign
    from escalade.design.mtpi2 import Mtpi2Design
    from escalade.design.threeplusthree import ThreePlusThreeDesign

    kinds = {BoinDesign: _BOIN, ThreePlusThreeDesign: _TPT, KeyboardDesign: _TABLE, Mtpi2Design: _TABLE,
             I3plus3Design: _TABLE, DecisionTableDesign: _TABLE}
    kind = kinds.get(type(design))  # exact types only: a subclass may change any method
    if kind is None:
        return None
    c = design.config
    if any(f.name not in KNOWN_FIELDS and not (f.name in OFF_FIELDS and getattr(c, f.name) == OFF_FIELDS[f.name])
           for f in dataclasses.fields(c)):
        return None
    max_n = int(design.max_n)
    if max_n > 256 or design.n_doses > 64:
        return None
    rules = list(design.rules)  # type: ignore[attr-defined]
    supported = (R.DltGuard, R.DeescalationGuard, R.OverdoseControl, R.StopAtN, R.MinSampleSize, TableElimination)
    if any(type(r) not in supported for r in rules):
        return None
    target = getattr(c, "target", None)
    dlt = [r for r in rules if isinstance(r, R.DltGuard)]
    dg = [r for r in rules if isinstance(r, R.DeescalationGuard)]
    od = [r for r in rules if isinstance(r, (R.OverdoseControl, TableElimination))]
    sn = [r for r in rules if isinstance(r, R.StopAtN)]
    mn = [r for r in rules if isinstance(r, R.MinSampleSize)]
    if len(dlt) > 1 or len(dg) > 1:
        return None
    empty = np.zeros((max_n + 1, max_n + 1), np.uint8)
    move_dir = np.zeros((1, 1), np.int8)
    start_dose, start_size = design.start()
    if kind == _BOIN:
        if c.extrasafe or c.titration:
            return None
        b = design.boundaries  # type: ignore[attr-defined]
        esc, deesc = np.asarray(b.escalate, np.int64), np.asarray(b.deescalate, np.int64)
        n, y = _grid(max_n)
        elim = _elimination_mask(n[:, None], np.minimum(y, n)[:, None], c.target, c.cutoff_eli)[:, 0] & (y <= n)
        boin_elim = elim.reshape(max_n + 1, max_n + 1).astype(np.uint8)
        from escalade.design.boin import BoinConfig

        bound = BoinConfig(target=c.target, n_doses=1, p_tox=c.p_tox).lambda_d if c.bound_mtd else np.nan
        allow = False
        cohort = int(c.cohort_size)
    elif kind == _TABLE:  # TableDesign.move / select, the codes read through the table's own decision()
        from escalade.design.decision_table import _CODE, D, E

        esc = deesc = np.zeros(1, np.int64)
        n, y = _grid(max_n)
        valid = (y <= n) & (n >= 1)
        code = np.full(n.size, _CODE[E] + 99, np.int64)
        code[valid] = design.table.decision(n[valid], y[valid])  # type: ignore[attr-defined]
        move_dir = np.where(code == _CODE[E], 1, np.where(code <= _CODE[D], -1, 0)).astype(np.int8)
        move_dir = np.where(valid, move_dir, 0).reshape(max_n + 1, max_n + 1).astype(np.int8)
        boin_elim = _tabulate_overdose([r for r in rules if isinstance(r, TableElimination)], target, max_n)
        bound = np.nan
        allow = False
        cohort = int(c.cohort_size)
    else:
        esc = deesc = np.zeros(1, np.int64)
        boin_elim = empty
        bound = np.nan
        allow = bool(c.allow_deescalation)
        cohort = 3
    return FastPlan(
        kind=kind, n_doses=int(design.n_doses), max_n=max_n, start_dose=int(start_dose), start_size=int(start_size),
        cohort_size=cohort, allow_deescalation=allow, esc=esc, deesc=deesc, move_dir=move_dir,
        overdose=_tabulate_overdose(od, target, max_n),
        final_overdose=_tabulate_overdose([r for r in od if r.final], target, max_n),
        boin_elim=boin_elim,
        dlt_guard=-2 if not dlt else (-1 if dlt[0].k is None else int(dlt[0].k)),
        deesc_guard=np.nan if not dg else float(dg[0].lambda_d),
        stop_n=np.array([r.n for r in sn], np.int64),
        stop_staying=np.array([1 if r.at == "staying" else 0 for r in sn], np.int64),
        min_n=max([int(r.n) for r in mn], default=0),
        target=float(target) if target is not None else np.nan,
        bound=float(bound),
    )


def draw_latent(seed: int, scenario: int, chunk: int, n_trials: int, max_patients: int, association: float = 0.0,
                *, efficacy: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The latent normals ``(z_tox, z_eff)`` of :func:`~escalade.simulations.patients.draw_patients`.

    ``draw_patients`` returns ``ndtr`` of exactly these arrays (the same
    streams, blocks and copula). ``efficacy=False`` skips the response stream
    (``z_eff`` is None); the onset and arrival streams are never drawn.
    """
    n_blocks = -(-max(max_patients, 1) // BLOCK)
    ss = np.random.SeedSequence(seed, spawn_key=(scenario, chunk))
    tox_ss, eff_ss, _onset = ss.spawn(3)
    rng = np.random.default_rng(tox_ss)
    z_t = np.concatenate([rng.standard_normal((n_trials, BLOCK)) for _ in range(n_blocks)], axis=1)
    if not efficacy:
        return z_t, None
    rng = np.random.default_rng(eff_ss)
    z_e = np.concatenate([rng.standard_normal((n_trials, BLOCK)) for _ in range(n_blocks)], axis=1)
    rho = float(association)
    if rho != 0.0:
        z_e = rho * z_t + np.sqrt(1.0 - rho * rho) * z_e
    return z_t, z_e


def _bands(p: np.ndarray, latent: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` per dose: value < lo is an event for sure, value >= hi is not; between, evaluate exactly."""
    p = np.asarray(p, float)
    if not latent:  # uniforms: the comparison itself (u < p)
        return p.copy(), p.copy()
    lo = np.empty_like(p)
    hi = np.empty_like(p)
    for d, pd in enumerate(p):
        if pd <= 0.0:
            lo[d] = hi[d] = -np.inf  # ndtr(z) >= 0: never below p
        elif _SAFE_P <= pd <= 1.0 - _SAFE_P:
            zp = float(special.ndtri(pd))
            lo[d], hi[d] = zp - _BAND, zp + _BAND
        elif pd < _SAFE_P:
            lo[d], hi[d] = -np.inf, -_TAIL_Z
        else:
            lo[d], hi[d] = _TAIL_Z, np.inf
    return lo, hi


_KERNELS: dict[str, object] = {}


def compile_kernels() -> dict[str, object]:
    """Import numba and compile (or load from numba's cache) the two kernels; returns them."""
    if _KERNELS:
        return _KERNELS
    from escalade.simulations import fast_kernels as K

    _KERNELS["run"] = K.run_cohorts
    _KERNELS["select"] = K.select_final
    return _KERNELS


def run_fast(plan: FastPlan, p_tox: np.ndarray, p_eff: np.ndarray, v_tox: np.ndarray, v_eff: np.ndarray | None, *,
             latent: bool) -> TrialOutcomes:
    """Run every trial under ``plan``; ``v_*`` are uniforms (``latent=False``) or latent normals.

    ``v_eff`` None means no patient can respond (every ``p_eff <= 0``).
    """
    K = compile_kernels()
    sel_kind = _BOIN if plan.kind == _TABLE else plan.kind  # the table designs select as BOIN (isotonic_mtd)
    p_tox = np.asarray(p_tox, float)
    p_eff = np.asarray(p_eff, float)
    t_count, cap = v_tox.shape
    nd = plan.n_doses
    has_eff = v_eff is not None and bool(np.any(p_eff > 0))
    ve = v_eff if has_eff else np.zeros((1, 1))
    lo_t, hi_t = _bands(p_tox, latent)
    lo_e, hi_e = _bands(p_eff, latent)
    n = np.zeros((t_count, nd), np.int64)
    tox = np.zeros_like(n)
    eff = np.zeros_like(n)
    both = np.zeros_like(n)
    ints = np.zeros((8, t_count), np.int64)  # pos, cohorts, current, last_n, last_tox, dose, size, reason
    ints[2] = plan.start_dose
    ints[5] = plan.start_dose
    ints[6] = plan.start_size
    live = np.arange(t_count, dtype=np.int64)
    known_idx = np.zeros(0, np.int64)   # flat indices (stream * T * cap + t * cap + col) evaluated exactly
    known_val = np.zeros(0, float)     # their uniforms ndtr(z)
    resume = np.empty(t_count, np.int64)  # trials waiting for exact values
    need = np.empty(2 * t_count * max(plan.max_n, 1), np.int64)
    for _round in range(2 * plan.max_n + 2):
        n_live, n_need = K["run"](  # type: ignore[operator]
            plan.kind, plan.allow_deescalation, plan.max_n, plan.cohort_size, plan.esc, plan.deesc, plan.move_dir,
            plan.overdose,
            plan.dlt_guard, plan.deesc_guard, plan.stop_n, plan.stop_staying, plan.min_n,
            live, v_tox, lo_t, hi_t, p_tox, ve, lo_e, hi_e, p_eff, has_eff, known_idx, known_val,
            n, tox, eff, both, ints, resume, need)
        if n_live < 0:
            raise RuntimeError("a design asked for a cohort of size < 1")
        if n_live == 0:
            break
        live = resume[:n_live].copy()
        idx = np.unique(need[:n_need])
        stream, rest = np.divmod(idx, t_count * cap)
        t, col = np.divmod(rest, cap)
        vals = np.empty(idx.size)
        s0 = stream == 0
        vals[s0] = v_tox[t[s0], col[s0]]
        vals[~s0] = ve[t[~s0], col[~s0]]
        # the uniform itself is kept (the kernel compares it with p at the patient's dose)
        u = special.ndtr(vals) if latent else vals
        known_idx, order = np.unique(np.concatenate([known_idx, idx]), return_index=True)
        known_val = np.concatenate([known_val, u])[order]
    else:  # pragma: no cover - every round completes at least one cohort of every trial it resumes
        raise RuntimeError("fast trial kernel did not finish")
    selected = K["select"](  # type: ignore[operator]
        sel_kind, plan.allow_deescalation, plan.boin_elim, plan.final_overdose, plan.target, plan.bound,
        n, tox, ints[2])
    selected = np.where((selected >= 0) & (selected < nd), selected, NO_DOSE)
    return TrialOutcomes(selected, ints[7].astype(np.int8), n, tox, eff, both, ints[1].copy(),
                         np.full(t_count, 1.0 / max(t_count, 1)), trial=np.arange(t_count))

