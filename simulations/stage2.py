"""The randomised dose-optimisation stage after escalation (the study file's ``optimisation`` section).

Project Optimus-style programmes follow dose escalation with a randomised
comparison of one or two candidate doses (FDA 2024, *Optimizing the dosage of
human prescription drugs and biological products for the treatment of
oncologic diseases*, guidance for industry; Yuan, Zhou & Lin 2024, "Randomized
dose optimization designs", J Clin Oncol 42:3425-3433 as background). Every
simulated trial that selects a dose at the end of escalation goes on to:

1. its candidate doses (:class:`~escalade.scenarios.study.Optimisation`):
   the selected dose and the next lower (``mtd_and_next_lower``), the design's
   selection and the isotonic MTD of the stage-1 data (``obd_and_mtd``), or a
   fixed list (doses above the escalation's selection are not opened); one
   arm when the candidates coincide or the selection is the lowest dose;
2. ``n_per_arm`` new patients randomised to each arm (equal allocation);
3. one dose selected from the stage-2 data alone (the randomised comparison):
   ``orr_with_safety`` picks the highest observed response rate among the arms
   whose observed DLT rate is at most ``max_tox``; ``utility`` the highest mean
   utility :math:`\\bar u = (100\\,n_{E\\bar T} + u_{11} n_{ET} + u_{00} n_{\\bar E \\bar T}) / n`
   (BOIN12's scale; Lin, Zhou & Yuan 2020, JRSS C 69:1255-1272); ties go to the
   lower dose; with no arm within ``max_tox`` no dose is selected.

**Common random numbers.** Stage-2 patients come from a dedicated stream,
``SeedSequence(seed, spawn_key=(STAGE2_KEY, scenario_key, block))`` with
trials in fixed blocks of :data:`TRIALS_PER_BLOCK`: patient ``k`` of arm ``a``
of trial ``i`` has latent uniforms in column ``a * n_per_arm + k`` of row
``i mod TRIALS_PER_BLOCK`` of block ``i // TRIALS_PER_BLOCK``, with the
scenario's toxicity-response copula. So every design of a scenario sees the
same stage-2 patients (paired comparisons of whole programmes), the escalation
stream and every stage-1 number are untouched (a study without ``optimisation``
is bit-identical), and neither workers nor chunking change anything.

**Exact enumeration.** With an exactly enumerated escalation the stage is
enumerated too (:func:`exact_stage2`): each arm's four outcome cells are
multinomial, so the selection probabilities given a terminal state's
candidates are exact and the two-stage characteristics have no Monte Carlo
error. The same function applied to simulated trials checks the simulated
stage (tests/test_stage2.py).

Where escalade differs from a real protocol: outcomes are complete when the
stage-2 selection is made (no interim analysis), and the arms' outcomes do not
depend on the order of randomisation, so equal allocation is exact counts per
arm rather than a simulated permuted-block sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from escalade.design.base import NO_DOSE
from escalade.design.boin import isotonic_mtd
from escalade.design.rules import beta_exceeds
from escalade.scenarios.study import Optimisation
from escalade.simulations.oc import PerTrial, TrialTable, oc_rows
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import scenario_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Stage2Outcomes", "STAGE2_KEY", "TRIALS_PER_BLOCK", "stage2_patients", "candidate_doses", "run_stage2",
           "exact_stage2", "stage2_table", "stage2_rows", "STAGE2_METRICS", "DAYS_PER_MONTH", "EXACT_MAX_PER_ARM"]

#: First entry of the stage-2 streams' spawn key (ASCII "STG2"): apart from every escalation stream.
STAGE2_KEY = 0x53544732
#: Trials per block of stage-2 draws (fixed: changing it changes every stage-2 number).
TRIALS_PER_BLOCK = 256
#: Days per month of the accrual rate (as :mod:`escalade.simulations.timed`).
DAYS_PER_MONTH = 30.4375

#: Metric names of the stage-2 rows of ``oc.csv``.
STAGE2_METRICS: tuple[str, ...] = (
    "stage2_select_pct", "stage2_run_pct", "stage2_arms", "stage2_patients", "stage2_dlts", "stage2_responders",
    "stage2_total_n", "stage2_total_dlts", "stage2_select_true_mtd_pct", "stage2_orr_selected",
    "stage2_duration_days", "stage2_total_duration_days")


@dataclass(frozen=True, slots=True, eq=False)
class Stage2Outcomes:
    """The optimisation stage of every trial of one scenario x design.

    Attributes
    ----------
    arms
        ``(T, A)`` 0-based candidate doses, ascending, :data:`NO_DOSE` for unused arms.
    n, tox, eff
        ``(T, A)`` patients, DLTs and responders per arm.
    selected
        ``(T,)`` dose selected after stage 2 (:data:`NO_DOSE`: none, or no stage 2).
    """

    arms: np.ndarray
    n: np.ndarray
    tox: np.ndarray
    eff: np.ndarray
    selected: np.ndarray

    @property
    def ran(self) -> np.ndarray:
        return self.arms[:, 0] != NO_DOSE


def stage2_patients(seed: int, scenario: str, trials: np.ndarray, n_columns: int, association: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Latent ``(u_tox, u_eff)`` of shape ``(len(trials), n_columns)`` for the given trial numbers.

    Each block of :data:`TRIALS_PER_BLOCK` trials has its own stream (module docstring), so a trial's
    stage-2 patients depend on the seed, the scenario's name and the trial number only.
    """
    trials = np.asarray(trials, np.int64)
    u_t = np.empty((trials.size, n_columns))
    u_e = np.empty((trials.size, n_columns))
    key = scenario_key(scenario)
    rho = float(association)
    for block in np.unique(trials // TRIALS_PER_BLOCK):
        ss = np.random.SeedSequence(seed, spawn_key=(STAGE2_KEY, key, int(block)))
        tox_ss, eff_ss = ss.spawn(2)
        z_t = np.random.default_rng(tox_ss).standard_normal((TRIALS_PER_BLOCK, n_columns))
        z_e = np.random.default_rng(eff_ss).standard_normal((TRIALS_PER_BLOCK, n_columns))
        if rho != 0.0:
            z_e = rho * z_t + np.sqrt(1.0 - rho * rho) * z_e
        rows = trials // TRIALS_PER_BLOCK == block
        u_t[rows] = special.ndtr(z_t[trials[rows] % TRIALS_PER_BLOCK])
        u_e[rows] = special.ndtr(z_e[trials[rows] % TRIALS_PER_BLOCK])
    return u_t, u_e


def _stage1_mtd(out: TrialOutcomes, target: float) -> np.ndarray:
    """Isotonic MTD of the stage-1 data (``BOIN::select.mtd``'s estimate, its Beta(1, 1) elimination at 0.95)."""
    n, tox = np.asarray(out.n), np.asarray(out.tox)
    hit = (n >= 3) & beta_exceeds(target, 0.95, tox, n)
    eliminated = np.logical_or.accumulate(hit, axis=1)
    return isotonic_mtd(n, tox, (n > 0) & ~eliminated, target=target)


def candidate_doses(cfg: Optimisation, out: TrialOutcomes, *, target: float) -> np.ndarray:
    """``(T, A)`` candidate doses of each trial (ascending, distinct, :data:`NO_DOSE`-padded; none without a
    stage-1 selection).

    Examples
    --------
    Escalation selected no dose, the lowest, the second and the fourth (0-based -1, 0, 1, 3):

    >>> from escalade.simulations.outcomes import TrialOutcomes
    >>> sel = np.array([-1, 0, 1, 3])
    >>> z = np.zeros((4, 4), np.int64)
    >>> out = TrialOutcomes(selected=sel, reason=sel * 0, n=z + 6, tox=z, eff=z, both=z, cohorts=sel * 0,
    ...                     weight=np.full(4, 0.25))
    >>> candidate_doses(Optimisation(candidates="mtd_and_next_lower", n_per_arm=10), out, target=0.3).tolist()
    [[-1, -1], [0, -1], [0, 1], [2, 3]]
    >>> candidate_doses(Optimisation(candidates=(1, 2), n_per_arm=10), out, target=0.3).tolist()
    [[-1, -1], [-1, -1], [1, -1], [1, 2]]
    """
    sel = np.asarray(out.selected, np.int64)
    t = sel.size
    if cfg.candidates == "mtd_and_next_lower":
        raw = np.column_stack([sel - 1, sel])
        raw[:, 0] = np.where(sel >= 1, raw[:, 0], NO_DOSE)
    elif cfg.candidates == "obd_and_mtd":
        raw = np.column_stack([_stage1_mtd(out, target), sel])
    else:
        doses = np.asarray(cfg.candidates, np.int64)
        raw = np.where(doses[None, :] <= sel[:, None], doses[None, :], NO_DOSE)
    raw = np.where(sel[:, None] == NO_DOSE, NO_DOSE, raw)
    big = np.iinfo(np.int64).max
    srt = np.sort(np.where(raw == NO_DOSE, big, raw), axis=1)
    dup = np.zeros_like(srt, bool)
    dup[:, 1:] = srt[:, 1:] == srt[:, :-1]
    srt = np.sort(np.where(dup, big, srt), axis=1)
    arms = np.where(srt == big, NO_DOSE, srt)
    return arms.reshape(t, raw.shape[1])


def run_stage2(cfg: Optimisation, out: TrialOutcomes, *, p_dlt: Sequence[float], p_response: Sequence[float],
               association: float, seed: int, scenario: str, target: float) -> Stage2Outcomes:
    """Simulate the optimisation stage of every trial in ``out`` (simulated trials; see the module docstring)."""
    if out.exact:
        raise ValueError("the optimisation stage needs simulated trials (trial numbers for its patient stream); "
                         "run without --exact")
    arms = candidate_doses(cfg, out, target=target)
    t, a = arms.shape
    m = cfg.n_per_arm
    trials = np.asarray(out.trial if out.trial is not None else np.arange(t))
    u_t, u_e = stage2_patients(seed, scenario, trials, a * m, association)
    pt = np.append(np.asarray(p_dlt, float), 0.0)  # index NO_DOSE (-1): unused arm, no patients
    pe = np.append(np.asarray(p_response, float), 0.0)
    used = arms != NO_DOSE
    tox = u_t.reshape(t, a, m) < pt[arms][:, :, None]
    eff = u_e.reshape(t, a, m) < pe[arms][:, :, None]
    n = np.where(used, m, 0)
    ntox = np.where(used, tox.sum(axis=2), 0)
    neff = np.where(used, eff.sum(axis=2), 0)
    n11 = (tox & eff).sum(axis=2)
    score = _scores(cfg, n11, (eff & ~tox).sum(axis=2), (~eff & ~tox).sum(axis=2), m)
    feasible = used if cfg.max_tox is None else used & (ntox <= cfg.max_tox * m + 1e-9)
    score = np.where(feasible, score, -np.inf)
    best = np.argmax(score, axis=1)  # the first (lowest) dose among equal scores
    selected = np.where(feasible.any(axis=1), arms[np.arange(t), best], NO_DOSE)
    return Stage2Outcomes(arms, n, ntox, neff, selected.astype(np.int64))


def _scores(cfg: Optimisation, k11: np.ndarray, k10: np.ndarray, k00: np.ndarray, m: int) -> np.ndarray:
    """Each arm's selection score from its counts (the same arithmetic in simulation and enumeration)."""
    if cfg.select_by == "orr_with_safety":
        return (k11 + k10) / m
    return (100.0 * k10 + cfg.u11 * k11 + cfg.u00 * k00) / m


#: Largest ``n_per_arm`` the exact stage-2 enumeration takes (its cost grows as n_per_arm^3 / 6).
EXACT_MAX_PER_ARM = 100


def _arm_law(cfg: Optimisation, p11: float, p10: float, p01: float, p00: float
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact law of one arm's score: (feasible scores, their probabilities, P(infeasible)).

    The ``n_per_arm`` patients' four outcome cells (DLT and response, response only, DLT only, neither) are
    multinomial; every count vector is enumerated."""
    m = cfg.n_per_arm
    k = np.array([(a, b, c) for a in range(m + 1) for b in range(m + 1 - a) for c in range(m + 1 - a - b)],
                 np.int64).reshape(-1, 3)
    k11, k10, k01 = k[:, 0], k[:, 1], k[:, 2]
    k00 = m - k11 - k10 - k01
    counts = np.column_stack([k11, k10, k01, k00])
    probs = np.array([p11, p10, p01, p00], float)
    with np.errstate(divide="ignore"):
        logp = np.where(counts > 0, counts * np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    impossible = ((counts > 0) & (probs[None, :] <= 0)).any(axis=1)
    logpmf = special.gammaln(m + 1) - special.gammaln(counts + 1).sum(axis=1) + logp.sum(axis=1)
    pmf = np.where(impossible, 0.0, np.exp(logpmf))
    ntox = k11 + k01
    feasible = np.ones(k11.size, bool) if cfg.max_tox is None else ntox <= cfg.max_tox * m + 1e-9
    score = _scores(cfg, k11, k10, k00, m)
    return score[feasible], pmf[feasible], float(pmf[~feasible].sum())


def exact_stage2(cfg: Optimisation, out: TrialOutcomes, *, p_dlt: Sequence[float], p_response: Sequence[float],
                 association: float, target: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact selection probabilities of the optimisation stage for every row of ``out`` (simulated or exact).

    Returns ``(arms, p_select)``: the candidate doses (:func:`candidate_doses`) and ``(T, D + 1)`` the
    probability that stage 2 selects each dose (last column: none). With arms sorted upwards and ties to
    the lower dose, arm :math:`a` is selected with probability
    :math:`\\sum_s f_a(s) \\prod_{b<a} F_b(s^-) \\prod_{b>a} F_b(s)`, where :math:`f_b(s)` is the probability
    that arm :math:`b` is feasible with score :math:`s` and :math:`F_b` the distribution function of its
    score with infeasibility counted below every score.
    """
    from escalade.simulations.patients import joint_probability

    if cfg.n_per_arm > EXACT_MAX_PER_ARM:
        raise ValueError(f"exact stage-2 enumeration takes n_per_arm up to {EXACT_MAX_PER_ARM}; got "
                         f"{cfg.n_per_arm} (simulate instead)")
    arms = candidate_doses(cfg, out, target=target)
    nd = len(p_dlt)
    pt, pe = np.asarray(p_dlt, float), np.asarray(p_response, float)
    p11 = joint_probability(pt, pe, association)
    laws: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    for d in np.unique(arms[arms != NO_DOSE]):
        d = int(d)
        laws[d] = _arm_law(cfg, p11[d], pe[d] - p11[d], pt[d] - p11[d], 1.0 - pt[d] - pe[d] + p11[d])
    p_select = np.zeros((arms.shape[0], nd + 1))
    uniq, inverse = np.unique(arms, axis=0, return_inverse=True)
    for u, row in enumerate(uniq):
        doses = [int(d) for d in row if d != NO_DOSE]
        probs = np.zeros(nd + 1)
        if not doses:
            probs[nd] = 1.0
        else:
            grid = np.unique(np.concatenate([laws[d][0] for d in doses]))
            f, below, upto = [], [], []
            for d in doses:
                sc, pr, p_inf = laws[d]
                fd = np.bincount(np.searchsorted(grid, sc), weights=pr, minlength=grid.size)
                cum = np.cumsum(fd)
                f.append(fd)
                upto.append(p_inf + cum)
                below.append(p_inf + cum - fd)
            for a, d in enumerate(doses):
                others = np.ones(grid.size)
                for b in range(len(doses)):
                    if b != a:
                        others *= below[b] if b < a else upto[b]
                probs[d] = float(np.sum(f[a] * others))
            probs[nd] = float(np.prod([laws[d][2] for d in doses]))
        p_select[np.ravel(inverse) == u] = probs
    return arms, p_select


def stage2_table(s2: "Stage2Outcomes | None", out: TrialOutcomes, *, p_dlt: Sequence[float],
                 p_response: Sequence[float], true_mtd: int, dose_labels: Sequence[str],
                 assessment_days: float | None = None, rate_per_month: float | None = None,
                 exact: "tuple[np.ndarray, np.ndarray] | None" = None, n_per_arm: int | None = None) -> TrialTable:
    """The per-trial table of the whole two-stage programme (rows of ``oc.csv`` named ``stage2_*``).

    From the simulated stage ``s2``, or, with ``exact = (arms, p_select)`` of :func:`exact_stage2` (and
    ``n_per_arm``), from the exact selection probabilities and expected counts given each row's candidates
    (weights and exactness of ``out``: Monte Carlo error of the escalation only, none when it is exact).

    * ``stage2_select_pct`` [dose, ``none``]: the dose selected after stage 2;
    * ``stage2_run_pct``: trials that went on to stage 2; ``stage2_arms``: mean arms opened;
    * ``stage2_patients``, ``stage2_dlts``, ``stage2_responders``: stage 2 alone (means);
    * ``stage2_total_n``, ``stage2_total_dlts``: escalation plus stage 2;
    * ``stage2_select_true_mtd_pct``: the final dose is the study's true MTD;
    * ``stage2_orr_selected``: true response rate of the final dose, over trials that selected one;
    * with calendar time: ``stage2_duration_days`` (stage-2 accrual at the study's rate, one patient every
      30.4375 / rate days, plus the longer of the DLT window and the response assessment) and
      ``stage2_total_duration_days`` (escalation's duration plus that).
    """
    nd = len(dose_labels)
    pt, pe = np.asarray(p_dlt, float), np.asarray(p_response, float)
    if exact is not None:
        arms, p_sel = exact
        used = arms != NO_DOSE
        m = int(n_per_arm or 0)
        n2 = used.sum(axis=1) * m
        dlts2 = np.where(used, m * pt[arms], 0.0).sum(axis=1)
        resp2 = np.where(used, m * pe[arms], 0.0).sum(axis=1)
    else:
        assert s2 is not None
        arms = s2.arms
        used = arms != NO_DOSE
        p_sel = np.zeros((arms.shape[0], nd + 1))
        p_sel[np.arange(arms.shape[0]), np.where(s2.selected == NO_DOSE, nd, s2.selected)] = 1.0
        n2 = s2.n.sum(axis=1)
        dlts2 = s2.tox.sum(axis=1)
        resp2 = s2.eff.sum(axis=1)
    ran = used[:, 0]
    p_any = 1.0 - p_sel[:, nd]
    cols: dict[tuple[str, str], PerTrial] = {}
    for j in range(nd):
        cols[("stage2_select_pct", dose_labels[j])] = PerTrial(p_sel[:, j], None, 100.0)
    cols[("stage2_select_pct", "none")] = PerTrial(p_sel[:, nd], None, 100.0)
    cols[("stage2_run_pct", "")] = PerTrial(ran, None, 100.0)
    cols[("stage2_arms", "")] = PerTrial(used.sum(axis=1))
    cols[("stage2_patients", "")] = PerTrial(n2)
    cols[("stage2_dlts", "")] = PerTrial(dlts2)
    cols[("stage2_responders", "")] = PerTrial(resp2)
    cols[("stage2_total_n", "")] = PerTrial(out.n.sum(axis=1) + n2)
    cols[("stage2_total_dlts", "")] = PerTrial(out.tox.sum(axis=1) + dlts2)
    mtd_col = p_sel[:, true_mtd] if true_mtd != NO_DOSE else p_sel[:, nd]
    cols[("stage2_select_true_mtd_pct", "")] = PerTrial(mtd_col, None, 100.0)
    cols[("stage2_orr_selected", "")] = PerTrial(p_sel[:, :nd] @ pe, p_any)
    if assessment_days is not None and rate_per_month is not None:
        days2 = np.where(ran, n2 * (DAYS_PER_MONTH / float(rate_per_month)) + float(assessment_days), 0.0)
        cols[("stage2_duration_days", "")] = PerTrial(days2)
        if out.duration is not None:
            cols[("stage2_total_duration_days", "")] = PerTrial(np.asarray(out.duration, float) + days2)
    t = arms.shape[0]
    trial = np.asarray(out.trial if out.trial is not None else np.arange(t))
    order = np.argsort(trial, kind="stable")
    if not np.array_equal(order, np.arange(t)):
        cols = {k: PerTrial(np.asarray(c.num)[order], None if c.den is None else np.asarray(c.den)[order], c.scale)
                for k, c in cols.items()}
    if out.exact:
        w = np.asarray(out.weight, float)
        w = w / w.sum()
    else:
        w = np.full(t, 1.0 / t)
    return TrialTable(trial[order], w[order], bool(out.exact), cols)


def stage2_rows(table: TrialTable, *, scenario: str, design: str) -> "pd.DataFrame":
    """``oc.csv`` rows (with Monte Carlo SEs) of :func:`stage2_table`."""
    return oc_rows(table, scenario=scenario, design=design)
