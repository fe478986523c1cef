"""Time-to-event continual reassessment method (TITE-CRM) and the pending-data interface.

Cheung & Chappell (2000), Biometrics 56:1177-1182; rules and numerics follow the
R package ``dfcrm`` (0.2-2.1): ``titecrm`` for the fit and ``titesim`` for the
trial algorithm.

With skeleton :math:`s_k`, the dose-toxicity model is the empiric (power) model
:math:`p_k(\\beta) = s_k^{\\exp\\beta}` or the one-parameter logistic model
:math:`p_k(\\beta) = \\operatorname{expit}(a + e^{\\beta} x_k)` with
:math:`x_k = \\operatorname{logit}(s_k) - a` (``intcpt`` :math:`a = 3`), and the
prior is :math:`\\beta \\sim N(0, \\sigma^2)`, :math:`\\sigma^2 = 1.34`. A patient
``i`` treated at level :math:`\\ell_i` with DLT indicator :math:`y_i` (observed so
far) and weight :math:`w_i \\in [0, 1]` contributes to the *weighted likelihood*

.. math::

    L(\\beta) = \\prod_i p_{\\ell_i}(\\beta)^{y_i}
                \\big(1 - w_i\\, p_{\\ell_i}(\\beta)\\big)^{1 - y_i}.

Weights (``dfcrm`` ``scheme``): *linear* :math:`w_i = \\min(u_i / W, 1)` for
follow-up :math:`u_i` in a window of length :math:`W`, and :math:`w_i = 1` for a
patient whose DLT has been observed; *adaptive* (Cheung & Chappell 2000,
section 3): with :math:`z` observed DLTs at sorted times :math:`t_{(1)} \\le \\dots
\\le t_{(z)}` and :math:`m = \\#\\{t_{(j)} \\le u_i\\}`,

.. math::

    w_i = \\frac{1}{z + 1}\\begin{cases}
        u_i / t_{(1)} & m = 0,\\\\
        m + \\dfrac{u_i - t_{(m)}}{t_{(m+1)} - t_{(m)}} & 0 < m < z,\\\\
        z + \\dfrac{u_i - t_{(z)}}{W - t_{(z)}} & m = z,
    \\end{cases}

capped at 1 (linear when :math:`z = 0`). The posterior mean and variance of
:math:`\\beta` are integrated as :mod:`escalade.design.crm` integrates the CRM's,
on the same fixed grid (:class:`~escalade.design.crm.CrmModel`); the weighted
likelihood adds, to the CRM's count terms, one term
:math:`\\log(1 - w_i p_{\\ell_i})` per partially followed patient. Estimates are
plug-in, :math:`\\hat p_k = p_k(\\hat\\beta)`, and the recommended level is dfcrm's
(:func:`~escalade.design.crm.crm_mtd`). The trial rules are the CRM's
(:mod:`escalade.design.rules`), with ``titesim``'s defaults: no skipping
above the current dose, no coherence rule, no early stop; and, as for every
design, no escalation right after a cohort in which every patient had an
(observed) DLT. Without the coherence rule the weighted model can recommend
escalation right after a cohort with a DLT, which is incoherent in the sense of
Cheung (2005), Biometrika 92:863-873; a real trial should set
``coherence: fraction`` (the shipped study does; see docs/rules.md).

Pending data
------------
TITE designs decide on *pending* data, so they are not functions of the
per-dose counts alone (the documented exception of DESIGN.md section 2):
besides :meth:`decide` (complete data) they provide ``decide_tite(states,
followup)`` (the :class:`~escalade.design.base.DecidesOnFollowUp` protocol), where
:class:`~escalade.design.base.FollowUp` carries, per patient, the dose, whether a
DLT has been observed, and the follow-up as a fraction of the DLT window, and
they return :class:`~escalade.design.base.TiteDecisions` (decisions plus an accrual-suspension flag).
The time-aware engine :mod:`escalade.simulations.timed` builds both.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import stats

from escalade.design.base import (ConfigDesign, DesignEntry, NO_DOSE, BoolArray, Decisions, FloatArray, FollowUp, IntArray, States,
                                  TiteDecisions, TiteExplanation)
from escalade.design.crm import (_N_INTERVALS, CrmConfig, CrmFit, CrmModel, counts_loglik, crm_fit_counts, crm_mtd,
                                 crm_rules, design_intervals, grid_sums)
from escalade.design.errors import ConfigError, did_you_mean
from escalade.design.rules import RuleContext, SharedRules, apply_rules, select_with_rules
from escalade.design.rules import state_fields as rules_state_fields

__all__ = [
    "ENTRY",
    "tite_weights",
    "TiteCrmConfig",
    "TiteCrmDesign",
    "TiteCrmFit",
    "titecrm",
    "weighted_posterior",
    ]

def tite_weights(follow: FollowUp, scheme: Literal["linear", "adaptive"] = "linear") -> FloatArray:
    """``(S, N)`` TITE-CRM weights (1 for observed DLTs, 0 for empty slots), as ``dfcrm::titecrm``.

    Examples
    --------
    The adaptive weights of ``dfcrm``'s help example (follow-up in days, window 180):

    >>> f = FollowUp.one([2, 2, 2, 3, 3, 2, 1, 1, 1, 2], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0],
    ...                  [178, 181, 168, 181, 24, 181, 179, 102, 42, 3], 180)
    >>> np.round(tite_weights(f, "adaptive")[0, [0, 8, 9]], 6).tolist()
    [0.944444, 0.375, 0.041667]
    """
    frac = follow.fraction
    w = np.where(follow.dlt, 1.0, frac)
    if scheme == "adaptive":
        t = np.sort(np.where(follow.dlt, frac, np.inf), axis=1)  # DLT times first, inf padding
        z = follow.dlt.sum(axis=1)
        zc = z[:, None]
        m = (t[:, None, :] <= frac[:, :, None]).sum(axis=2)  # (S, N): DLT times <= u
        tpad = np.concatenate([np.zeros_like(t[:, :1]), t, np.full_like(t[:, :1], np.inf)], axis=1)
        t_m = np.take_along_axis(tpad, m, axis=1)           # t_(m), with t_(0) = 0
        t_next = np.take_along_axis(tpad, m + 1, axis=1)    # t_(m+1)
        t_z = np.take_along_axis(tpad, zc, axis=1)          # t_(z)
        with np.errstate(divide="ignore", invalid="ignore"):
            inner = m + (frac - t_m) / (t_next - t_m)       # m = 0: u / t_(1)
            last = zc + (frac - t_z) / (1.0 - t_z)
            ad = np.where(m >= zc, last, inner) / (zc + 1)
        ad = np.minimum(np.where(np.isfinite(ad), ad, 1.0), 1.0)
        w = np.where(follow.dlt, 1.0, np.where(zc > 0, ad, frac))
    elif scheme != "linear":
        raise ValueError(f"scheme must be 'linear' or 'adaptive'; got {scheme!r}")
    return np.where(follow.treated, np.minimum(w, 1.0), 0.0)


# ----------------------------------------------------------------------------------------------
# The weighted posterior, on the CRM's grid
# ----------------------------------------------------------------------------------------------


def weighted_posterior(model: CrmModel, y: Any, n_complete_nondlt: Any, part_dose: Any, part_w: Any
                       ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Posterior mean and variance of :math:`\\beta`, and :math:`\\Pr(p_1 > \\phi)`, for ``S`` weighted likelihoods.

    ``y[s, k]`` DLTs and ``n_complete_nondlt[s, k]`` weight-1 non-DLT patients
    per dose enter as counts (summed in a fixed order, as the CRM); ``part_dose`` and
    ``part_w`` ``(S, P)`` are the partially followed non-DLT patients (padding
    has weight 0 and adds nothing). Integration as
    :meth:`escalade.design.crm.CrmModel.posterior` (same grid and weights).
    """
    g = model._grid()  # the CRM's quadrature tables (cached per model)
    counts = np.concatenate([np.atleast_2d(np.asarray(y, float)),
                             np.atleast_2d(np.asarray(n_complete_nondlt, float))], axis=1)
    ll = counts_loglik(counts, g.log_pq)  # no BLAS: the same bits for a state in any batch
    pw = np.atleast_2d(np.asarray(part_w, float))
    if pw.size:
        table = _prob_table(model)
        dose = np.maximum(np.atleast_2d(np.asarray(part_dose, np.int64)), 0)
        # patient by patient in order, each state's partial patients only: the weight-0 padding would add
        # exact zeros (log1p(-0) = -0), so leaving it out changes no bit and saves its logarithms
        for j in range(pw.shape[1]):
            rows = np.flatnonzero(pw[:, j] != 0.0)
            if rows.size:
                ll[rows] += np.log1p(-pw[rows, j][:, None] * table[dose[rows, j]])
    ll += g.log_prior
    ll -= ll.max(axis=1, keepdims=True)
    np.maximum(ll, _EXP_FLOOR, out=ll)
    np.exp(ll, out=ll)
    m = grid_sums(ll, np.ascontiguousarray(g.weights.T))
    mean = m[:, 1] / m[:, 0]
    return mean, m[:, 2] / m[:, 0] - mean**2, m[:, 3] / m[:, 0]


_EXP_FLOOR = -300.0  # as the CRM: relative densities below e^-300 are floored (no slow underflow)


@functools.cache
def _prob_table(model: CrmModel) -> np.ndarray:
    """``p_k(beta_g)``, ``(D, G)``, from the model's grid (computed once per model)."""
    return np.exp(model._grid().log_pq[: model.n_doses])


@dataclass(frozen=True, slots=True)
class TiteCrmFit:
    """A TITE-CRM fit, with ``dfcrm::titecrm``'s fields (levels 0-based here).

    ``ptox_lower``/``ptox_upper`` are ``ptoxL``/``ptoxU``:
    :math:`p_k(\\hat\\beta \\pm z\\,\\mathrm{sd})` with :math:`z = \\Phi^{-1}(0.5 + \\text{conf}/2)`.
    """

    weights: np.ndarray
    estimate: float
    post_var: float
    ptox: np.ndarray
    ptox_lower: np.ndarray
    ptox_upper: np.ndarray
    mtd: int


def titecrm(
    level: Any, tox: Any, followup: Any, obswin: float, *, skeleton: Any, target: float,
    model: Literal["empiric", "logistic"] = "empiric", intercept: float = 3.0, prior_var: float = 1.34,
    scheme: Literal["linear", "adaptive"] = "linear", conf_level: float = 0.9,
) -> TiteCrmFit:
    """Fit TITE-CRM to one trial's data, as ``dfcrm::titecrm(..., method = "bayes")``.

    Parameters
    ----------
    level
        0-based dose level of each patient (``dfcrm`` uses 1-based levels).
    tox, followup, obswin
        DLT indicators, follow-up times and the observation window (same unit).
    intercept, prior_var
        dfcrm's ``intcpt`` and ``scale^2``.

    Examples
    --------
    ``dfcrm``'s help example (``titecrm(prior, 0.2, tox, level, followup = ..., obswin = 180)``):

    >>> fit = titecrm([2, 2, 2, 3, 3, 2, 1, 1, 1, 2], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0],
    ...               [178, 181, 168, 181, 24, 181, 179, 102, 42, 3], 180,
    ...               skeleton=[0.05, 0.10, 0.20, 0.35, 0.50, 0.70], target=0.2)
    >>> round(fit.estimate, 6), fit.mtd + 1
    (-0.132787, 3)
    """
    m = CrmModel(skeleton=tuple(float(v) for v in skeleton), target=float(target), model=model,
                 intercept=float(intercept), prior_var=float(prior_var), conf_level=float(conf_level))
    follow = FollowUp.one(level, tox, followup, obswin)
    w = tite_weights(follow, scheme)
    y, c, pd_, pw = _counts_and_partial(follow, w, m.n_doses)
    mean, var, _ = weighted_posterior(m, y, c, pd_, pw)
    est, v = float(mean[0]), float(var[0])
    z = stats.norm.ppf(0.5 + conf_level / 2.0)
    sd = math.sqrt(max(v, 0.0))
    ptox = m.ptox(np.array([est, est + z * sd, est - z * sd]))
    return TiteCrmFit(w[0], est, v, ptox[0], ptox[1], ptox[2], int(crm_mtd(ptox[0], target)))


def _counts_and_partial(follow: FollowUp, w: np.ndarray, n_doses: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split patients into per-dose counts (DLTs; weight-1 non-DLTs) and the partial ones."""
    s = follow.n_states
    dose = np.where(follow.treated, follow.dose, 0)
    rows = np.broadcast_to(np.arange(s)[:, None], dose.shape)
    y = np.zeros((s, n_doses))
    c = np.zeros((s, n_doses))
    np.add.at(y, (rows, dose), (follow.dlt & follow.treated).astype(float))
    full = follow.treated & ~follow.dlt & (w >= 1.0)
    np.add.at(c, (rows, dose), full.astype(float))
    part = follow.treated & ~follow.dlt & (w < 1.0) & (w > 0.0)
    p = int(part.sum(axis=1).max(initial=0))
    if p == 0:
        return y, c, np.zeros((s, 0), np.int64), np.zeros((s, 0))
    order = np.argsort(~part, axis=1, kind="stable")[:, :p]       # partial patients first
    pw = np.where(np.take_along_axis(part, order, axis=1), np.take_along_axis(w, order, axis=1), 0.0)
    pd_ = np.take_along_axis(dose, order, axis=1)
    return y, c, pd_, pw


# ----------------------------------------------------------------------------------------------
# The design
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TiteCrmConfig(SharedRules):
    """TITE-CRM parameters: the CRM's (:class:`~escalade.design.crm.CrmConfig`, same
    names and defaults) plus the weight ``scheme``, with ``dfcrm::titesim``'s rules.

    ``intercept`` and ``prior_var`` are dfcrm's ``intcpt`` and ``scale^2``;
    ``start_dose`` its ``x0`` (0-based); ``no_skip="current"`` its ``restrict``
    (at most one level above the last cohort's dose). ``coherence`` is off, as
    in ``titesim`` ("fraction"/"any" apply to the DLTs *observed* in the last
    cohort). The optional stopping rules are the CRM's, evaluated on the
    weighted posterior: ``safety_threshold`` (stop when
    :math:`\\Pr(p_1 > \\phi \\mid \\text{data}) >` threshold after ``safety_min_n``
    patients), and the shared rules of every design
    (:class:`~escalade.design.rules.SharedRules`: ``stop_n_at_dose``, ``min_n``,
    ``no_escalation_after_dlts`` (on: ``"all"``), overdose control, ...),
    evaluated on the observed data. Only ``method = "bayes"``.

    Attributes
    ----------
    scheme
        Weight of a pending patient: ``"linear"`` (follow-up / window, Cheung &
        Chappell 2000) or ``"adaptive"`` (dfcrm's adaptive weights).

    The other parameters are the CRM's (:class:`~escalade.design.crm.CrmConfig`).
    """

    target: float
    n_doses: int
    skeleton: tuple[float, ...]
    cohort_size: int = 1
    max_n: int = 30
    start_dose: int = 0
    model: Literal["empiric", "logistic"] = "empiric"
    intercept: float = 3.0
    prior_var: float = 1.34
    scheme: Literal["linear", "adaptive"] = "linear"
    conf_level: float = 0.9
    no_skip: Literal["current", "tried", "off"] = "current"
    coherence: Literal["fraction", "any", "off"] = "off"
    safety_threshold: float | None = None
    safety_min_n: int = 3

    def __post_init__(self) -> None:
        self.check_rules()
        crm = self.crm()  # validates every shared field
        object.__setattr__(self, "skeleton", crm.skeleton)
        if self.scheme not in ("linear", "adaptive"):
            raise ConfigError("scheme", self.scheme,
                              f"must be one of ['linear', 'adaptive']{did_you_mean(str(self.scheme), ('linear', 'adaptive'))}")

    def crm(self) -> CrmConfig:
        """The CRM configuration with the same model and rules (complete data)."""
        return CrmConfig(target=self.target, n_doses=self.n_doses, skeleton=self.skeleton,
                         cohort_size=self.cohort_size, max_n=self.max_n, start_dose=self.start_dose,
                         model=self.model, intercept=self.intercept, prior_var=self.prior_var, method="bayes",
                         conf_level=self.conf_level, safety_threshold=self.safety_threshold,
                         safety_min_n=self.safety_min_n, **self.shared_rule_fields())


@dataclass(frozen=True, slots=True)
class TiteCrmDesign(ConfigDesign):
    """TITE-CRM as ``dfcrm::titesim`` runs it (one-stage, Bayesian).

    At each decision (the arrival of the next cohort) the weighted posterior of
    all patients so far gives the level closest to the target; the CRM's rules
    then apply (default: at most one level above the last cohort's dose;
    de-escalation unrestricted; no coherence rule; no early stop). The trial
    ends at ``max_n``; :meth:`select` is the recommended level of the fit to the
    complete data (all weights 1), or none where the safety rule holds.
    """

    config: TiteCrmConfig
    kind: ClassVar[str] = "tite_crm"
    enumerable: ClassVar[bool] = False
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False
    model: CrmModel = field(init=False)
    rules: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        crm = self.config.crm()
        object.__setattr__(self, "model", CrmModel.from_config(crm, design_intervals(crm)))
        object.__setattr__(self, "rules", crm_rules(self.config))
        _prob_table(self.model)  # build the tables now, not inside the first batch

    @property
    def state_fields(self) -> str:
        """``"all"`` when a rule reads the last cohort (it does by default: the DLT guardrail)."""
        return rules_state_fields(self.rules)

    def _decide(self, states: States, y: Any, c: Any, pd_: Any, pw: Any) -> Decisions:
        mean, _, prob = weighted_posterior(self.model, y, c, pd_, pw)
        mtd = crm_mtd(self.model.ptox(mean), self.config.target)
        ctx = RuleContext(states, mtd, self.config.target, prob)
        return apply_rules(self.rules, ctx, self.config.cohort_size)

    def decide(self, states: States) -> Decisions:
        """Complete data (every weight 1): the CRM with these rules."""
        s = states.n_states
        return self._decide(states, states.tox, states.n - states.tox, np.zeros((s, 0), np.int64), np.zeros((s, 0)))

    def decide_tite(self, states: States, followup: FollowUp) -> TiteDecisions:
        """Pending data: the weighted posterior of :class:`FollowUp` (never suspends)."""
        w = tite_weights(followup, self.config.scheme)
        y, c, pd_, pw = _counts_and_partial(followup, w, self.n_doses)
        return TiteDecisions(self._decide(states, y, c, pd_, pw), np.zeros(states.n_states, bool))

    def explain(self, states: States, **options: Any) -> CrmFit:
        """The CRM fit to the complete data of the first state (every weight 1; conduct mode)."""
        import dataclasses

        return crm_fit_counts(dataclasses.replace(self.model, n_intervals=_N_INTERVALS), states.n[0], states.tox[0])
    def explain_tite(self, states: States, followup: FollowUp) -> TiteExplanation:
        """Weights, weighted posterior and plug-in DLT probabilities of the first trial (conduct mode)."""
        c = self.config
        one = followup.take(slice(0, 1))
        w = tite_weights(one, c.scheme)
        y, cc, pd_, pw = _counts_and_partial(one, w, self.n_doses)
        mean, var, prob = weighted_posterior(self.model, y, cc, pd_, pw)
        est, v = float(mean[0]), float(var[0])
        z = stats.norm.ppf(0.5 + c.conf_level / 2.0)
        sd = math.sqrt(max(v, 0.0))
        ptox = self.model.ptox(np.array([est, est + z * sd, est - z * sd]))
        rule = (f"TITE-CRM (Cheung & Chappell 2000): weighted likelihood, {c.scheme} weights (a pending patient "
                f"counts as a non-DLT with weight = follow-up / window); next dose the one whose DLT "
                f"probability is closest to the target {c.target:g}, then the CRM's rules")
        return TiteExplanation(
            w[0], rule,
            {"estimate": est, "post_var": v, "prob_lowest_too_toxic": float(prob[0]),
             "effective_n": float(w[0].sum())},
            {"ptox": ptox[0], "ptox_lower": ptox[1], "ptox_upper": ptox[2]})

    def select(self, states: States) -> IntArray:
        s = states.n_states
        mean, _, prob = weighted_posterior(self.model, states.tox, states.n - states.tox,
                                           np.zeros((s, 0), np.int64), np.zeros((s, 0)))
        sel = crm_mtd(self.model.ptox(mean), self.config.target)
        sel = select_with_rules(self.rules, RuleContext(states, sel, self.config.target, prob))
        return np.where(states.total_n > 0, sel, NO_DOSE).astype(np.int64)


ENTRY = DesignEntry(
    kind="tite_crm", name="Time-to-event continual reassessment method (TITE-CRM)", config=TiteCrmConfig,
    design=TiteCrmDesign, explanation=CrmFit, params_documented_by=CrmConfig, methods="escalade.reports.methods_tite:tite_crm_methods",
    citation="Cheung YK, Chappell R (2000). Sequential designs for phase I clinical trials with late-onset "
             "toxicities. Biometrics 56:1177-1182.",
    aliases=("titecrm", "tite-crm"))
