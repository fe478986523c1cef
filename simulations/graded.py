"""The CAR-T virtual patient: graded adverse events, response depth, survival, expansion, infused dose.

Each patient draws, once, a latent Gaussian vector :math:`z` with the
scenario's correlation matrix :math:`R` (one coordinate per AE type, one for
response; a Gaussian copula), plus uniforms for onset times, survival,
expansion and manufacturing. Every outcome at a dose is a monotone function
of these latents (:mod:`escalade.scenarios.cart`), so

* the grades and categories have exactly the scenario's probabilities, and
  the derived binary DLT (the ``dlt_rule`` over grades) and response (a
  category in the ORR set) have exactly the derived ``p_dlt``/``p_response``
  that the scenario's designs, OCs and true MTD use;
* a patient's outcomes at every dose are fixed before any design runs
  (common random numbers across doses and designs).

The latents come from a fifth child of the chunk's seed sequence,
``SeedSequence(seed, spawn_key=(scenario, chunk, 4))``, drawn in the same
blocks of :data:`~escalade.simulations.patients.BLOCK` patients, so the
existing streams ``u_tox``, ``u_eff``, ``u_onset``, ``u_arrival`` are never
changed, and a scenario without the CAR-T sections never draws them.
Sections a scenario leaves out fall back on the plain patient: the DLT is
``u_tox < p_dlt[d]`` without ``adverse_events``, response ``u_eff <
p_response[d]`` without ``response``.

Outcomes are stored for every dose, ``(T, N, D)`` per quantity, for the
*assigned* dose: with a ``manufacturing`` section a patient's outcomes at
assigned dose ``d`` are those at the infused dose (Devlin, Iasonos &
O'Quigley 2021, J R Stat Soc C 70:815-834).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from escalade.scenarios.cart import GRADES, CartModel
from escalade.simulations.patients import BLOCK, Patients

__all__ = ["GradedPatients", "draw_graded", "graded_counts", "efs_months", "GRADED_CHILD", "check_graded_design",
           "patient_scores"]

#: Index of the graded stream among the children of a chunk's seed sequence (0-3 are taken).
GRADED_CHILD = 4


@dataclass(frozen=True, slots=True, eq=False)
class GradedPatients:
    """Graded outcomes ``(T, N, D)`` at each assigned dose, and per-patient latents ``(T, N)``.

    Attributes
    ----------
    model
        The scenario's :class:`~escalade.scenarios.cart.CartModel`.
    grades
        ``(K, T, N, D)`` int8 grade 0-5 of each AE type (``K = 0`` without ``adverse_events``).
    category
        ``(T, N, D)`` int8 response category (index, best first) at the primary
        assessment, or ``None`` without a ``response`` section.
    dlt, resp
        ``(T, N, D)`` binary DLT (the rule over grades) and response (category in the ORR set).
    onset
        ``(T, N, D)`` DLT onset as a fraction of the DLT window (the earliest
        type reaching its threshold), or ``None`` (the plain ``u_onset``).
    infused
        ``(T, N, D)`` int8 infused dose level per assigned dose.
    u_response, u_survival
        ``(T, N)`` response uniform (:math:`\\Phi(-z_R)`) and survival uniform.
    z_expansion
        ``(T, N)`` expansion normal (correlated with response).
    """

    model: CartModel
    grades: np.ndarray
    category: np.ndarray | None
    dlt: np.ndarray
    resp: np.ndarray
    onset: np.ndarray | None
    infused: np.ndarray
    u_response: np.ndarray
    u_survival: np.ndarray
    z_expansion: np.ndarray

    @property
    def types(self) -> tuple[str, ...]:
        return self.model.type_names

    def scores_input(self, rows: np.ndarray, cols: np.ndarray, dose: np.ndarray
                     ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Grades per type and response category of patients ``(rows, cols)`` at doses ``dose`` (1-D each)."""
        grades = {name: self.grades[k, rows, cols, dose] for k, name in enumerate(self.types)}
        cat = None if self.category is None else self.category[rows, cols, dose]
        return grades, cat


def _blocks(rng: np.random.Generator, shape: tuple[int, ...], n_trials: int, n_blocks: int,
            normal: bool) -> np.ndarray:
    draw = rng.standard_normal if normal else rng.random
    return np.concatenate([draw((n_trials, BLOCK, *shape)) for _ in range(n_blocks)], axis=1)


def draw_graded(model: CartModel, patients: Patients, *, seed: int, scenario: int, chunk: int,
                p_dlt: Sequence[float], p_response: Sequence[float]) -> GradedPatients:
    """The graded outcomes of the patients of one chunk (see the module docstring).

    Parameters
    ----------
    model
        The scenario's CAR-T model.
    patients
        The chunk's plain patients (:func:`~escalade.simulations.patients.draw_patients`), for
        the sections the model leaves out and for the shape ``(T, N)``.
    seed, scenario, chunk
        As for :func:`~escalade.simulations.patients.draw_patients`.
    p_dlt, p_response
        The scenario's (derived) true curves.
    """
    from escalade.simulations.timed import onset_fraction

    t_count, cap = patients.u_tox.shape
    n_blocks = cap // BLOCK
    ss = np.random.SeedSequence(seed, spawn_key=(scenario, chunk, GRADED_CHILD))
    cop_ss, onset_ss, surv_ss, exp_ss, man_ss = ss.spawn(5)
    k_ae = len(model.ae_types)
    z = _blocks(np.random.default_rng(cop_ss), (k_ae + 1,), t_count, n_blocks, True)
    if model.correlation is not None:
        z = z @ np.linalg.cholesky(model.correlation).T
    nd = len(p_dlt)
    # product-dose outcomes (T, N, D); per dose one sorted search, equal to comparing with each threshold
    grades = np.empty((k_ae, t_count, cap, nd), np.int8)
    dlt_p = np.zeros((t_count, cap, nd), bool)
    onset_p = None
    if k_ae:
        u_on = _blocks(np.random.default_rng(onset_ss), (k_ae,), t_count, n_blocks, False)
        onset_p = np.ones((t_count, cap, nd))
        for k, t in enumerate(model.ae_types):
            v = special.ndtr(-z[:, :, k])
            rising = t.at_least()[:, :0:-1]  # (D, 5): P(grade >= 5), ..., P(grade >= 1), non-decreasing
            for d in range(nd):  # grade = #{g >= 1: v < P(grade >= g)}
                grades[k, :, :, d] = GRADES - 1 - np.searchsorted(rising[d], v, side="right")
            thr = model.rule.threshold(t.name)
            if thr is None:
                continue
            hit = grades[k] >= thr
            dlt_p |= hit
            frac = onset_fraction(u_on[:, :, k], t.onset)
            np.minimum(onset_p, np.where(hit, frac[:, :, None], 1.0), out=onset_p)
    else:
        dlt_p = patients.u_tox[:, :, None] < np.asarray(p_dlt, float)[None, None, :]
    u_resp = special.ndtr(-z[:, :, -1])
    category_p = None
    if model.response is not None:
        r = model.response
        cum = r.cumulative(r.primary)[:, :-1]  # (D, M - 1)
        category_p = np.empty((t_count, cap, nd), np.int8)
        for d in range(nd):  # category = #{m: u >= P(category <= m)}
            category_p[:, :, d] = np.searchsorted(cum[d], u_resp, side="right")
        resp_p = r.orr_index[category_p]
    else:
        resp_p = patients.u_eff[:, :, None] < np.asarray(p_response, float)[None, None, :]
    u_surv = _blocks(np.random.default_rng(surv_ss), (), t_count, n_blocks, False)
    z_x = _blocks(np.random.default_rng(exp_ss), (), t_count, n_blocks, True)
    if model.expansion is not None:
        rho = model.expansion.correlation
        z_x = rho * z[:, :, -1] + np.sqrt(1.0 - rho * rho) * z_x
    infused = np.empty((t_count, cap, nd), np.int8)
    infused[:] = np.arange(nd, dtype=np.int8)
    m = model.manufacturing
    if m is not None:
        u_man = _blocks(np.random.default_rng(man_ss), (2,), t_count, n_blocks, False)
        short = u_man[:, :, 0, None] < m.p_short[None, None, :]
        steps = 1 + np.searchsorted(np.cumsum(m.lands)[:-1], u_man[:, :, 1], side="right")
        ti, ni, di = np.nonzero(short)
        to = np.maximum(di - steps[ti, ni], 0)
        infused[ti, ni, di] = to
        # outcomes follow the infused dose: overwrite the short entries only (read before writing)
        for a in (dlt_p, resp_p, onset_p, category_p):
            if a is not None:
                a[ti, ni, di] = a[ti, ni, to]
        if k_ae:
            grades[:, ti, ni, di] = grades[:, ti, ni, to]
    return GradedPatients(model, grades, category_p, dlt_p, resp_p, onset_p, infused, u_resp, u_surv, z_x)


def efs_months(g: GradedPatients, category: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               which: str = "efs") -> np.ndarray:
    """Event-free (``which="efs"``) or overall (``"os"``) survival in months of patients ``(rows, cols)``.

    The time solves :math:`S_m(T) = u` for the patient's survival uniform
    :math:`u` and response category :math:`m`; EFS and OS share :math:`u`, so
    :math:`\\mathrm{EFS} \\le \\mathrm{OS}` whenever :math:`S^{EFS}_m \\le S^{OS}_m`.
    """
    surv = g.model.survival
    if surv is None:
        raise ValueError("the scenario has no survival section")
    curves = surv.efs if which == "efs" else surv.os
    if curves is None:
        raise ValueError(f"the scenario's survival section has no {which}")
    u = g.u_survival[rows, cols]
    out = np.empty(u.shape)
    for m, c in enumerate(curves):
        sel = category == m
        out[sel] = c.quantile_time(u[sel])
    return out


def graded_counts(g: GradedPatients, patient_dose: np.ndarray) -> dict[str, np.ndarray]:
    """Per-trial tallies of the treated patients (``patient_dose`` ``(T, N)``, ``-1`` untreated).

    Returns ``{name: array}``: ``ae.{type}.g{1..5}`` ``(T, D)`` patients at each
    assigned dose with that grade, ``death`` ``(T, D)`` patients with a grade-5
    event, ``infused_below`` ``(T,)`` patients infused below their assigned dose.
    """
    t_count, width = patient_dose.shape
    nd = g.dlt.shape[2]
    treated = patient_dose >= 0
    r, c = np.nonzero(treated)
    d = patient_dose[r, c]
    out: dict[str, np.ndarray] = {}
    dead = np.zeros(r.size, bool)
    for k, name in enumerate(g.types):
        gr = g.grades[k, r, c, d].astype(np.intp)
        # one tally per (trial, dose, grade)
        tally = np.bincount((r * nd + d) * GRADES + gr, minlength=t_count * nd * GRADES)
        tally = tally.reshape(t_count, nd, GRADES).astype(np.int16)
        for grade in range(1, GRADES):
            out[f"ae.{name}.g{grade}"] = np.ascontiguousarray(tally[:, :, grade])
        dead |= gr == GRADES - 1
    if g.types:
        out["death"] = np.bincount(r[dead] * nd + d[dead], minlength=t_count * nd).reshape(
            t_count, nd).astype(np.int16)
    if g.model.manufacturing is not None:
        below = g.infused[r, c, d] < d
        out["infused_below"] = np.bincount(r[below], minlength=t_count).astype(np.int16)
    return out


def check_graded_design(design: object, model: CartModel | None, scenario: str) -> None:
    """One clear line when a design that scores graded outcomes meets a scenario without them."""
    if not getattr(design, "graded", False):
        return
    from escalade.scenarios.errors import EscaladeError

    name = getattr(design, "kind", type(design).__name__)
    if model is None or not model.graded:
        raise EscaladeError(f"design '{name}' scores graded toxicity: scenario '{scenario}' needs an "
                            "adverse_events section (with a top-level dlt_rule); see scenarios/README.md")
    if model.response is None:
        raise EscaladeError(f"design '{name}' scores ordinal response: scenario '{scenario}' needs a response "
                            "section (categories best first); see scenarios/README.md")


def patient_scores(design: object, g: GradedPatients, rows: np.ndarray, cols: np.ndarray, dose: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The contract's call: ``design.patient_scores(grades, response, categories)`` for these patients."""
    grades, cat = g.scores_input(rows, cols, dose)
    assert g.model.response is not None
    tox, eff = design.patient_scores(grades, cat, g.model.response.categories)  # type: ignore[attr-defined]
    return np.asarray(tox, np.float64), np.asarray(eff, np.float64)
