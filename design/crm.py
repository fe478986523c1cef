"""Continual reassessment method (CRM), batched over trial states.

O'Quigley, Pepe & Fisher (1990), Biometrics 46:33-48; Cheung (2011), *Dose
Finding by the Continual Reassessment Method*, Chapman & Hall (chapters 3-4);
rules and numbers follow the R package ``dfcrm`` 0.2-2.1 (``crm``, ``crmsim``).

Models, for dose :math:`k` with skeleton value :math:`s_k`:

.. math::

    \\text{empiric (power):}\\quad p_k(\\beta) = s_k^{\\exp\\beta},
    \\qquad
    \\text{logistic:}\\quad \\mathrm{logit}\\, p_k(\\beta) = a_0 + e^{\\beta} x_k,
    \\quad x_k = \\mathrm{logit}(s_k) - a_0,

so :math:`p_k(0) = s_k` in both; :math:`a_0` = ``intercept`` (3 in dfcrm) and
:math:`x_k` is dfcrm's ``dosescaled``. Prior :math:`\\beta \\sim N(0, \\sigma^2)`,
:math:`\\sigma^2` = ``prior_var`` (1.34). With :math:`n_k` patients and
:math:`y_k` DLTs at dose :math:`k` the likelihood is

.. math::

    L(\\beta) = \\prod_k p_k(\\beta)^{y_k}\\,\\{1 - p_k(\\beta)\\}^{n_k - y_k}.

**Bayes** (Cheung 2011, eq. 3.4): the posterior mean and variance of
:math:`\\beta`, computed as dfcrm does,

.. math::

    \\hat\\beta = \\frac{\\int_{-10}^{10} \\beta L(\\beta)\\pi(\\beta)\\,d\\beta}
                     {\\int_{-\\infty}^{\\infty} L(\\beta)\\pi(\\beta)\\,d\\beta},
    \\qquad
    \\widehat{\\mathrm{var}} = \\frac{\\int_{-10}^{10} \\beta^2 L\\pi}{\\int L\\pi} - \\hat\\beta^2

(dfcrm integrates the numerators over :math:`(-10, 10)` only; for the default
prior the mass outside is below :math:`10^{-17}`). **MLE**: the maximiser of
:math:`L` on :math:`[-10, 10]`; it needs at least one DLT and one non-DLT.

The reported DLT probabilities are plug-in values :math:`p_k(\\hat\\beta)`, not
posterior means of :math:`p_k`; the interval of level ``conf_level`` is
:math:`p_k(\\hat\\beta \\mp z\\,\\widehat{\\mathrm{sd}})` (normal approximation on
:math:`\\beta`, as dfcrm). The recommended dose is the one with
:math:`p_k(\\hat\\beta)` closest to the target :math:`\\phi`: the top dose if all
are :math:`\\le \\phi`, dose 1 if all are :math:`\\ge \\phi`, ties to the lower dose.

Numerics
--------
The posterior is integrated on one fixed grid of :math:`\\beta` per
configuration (cached); the grid, its weights and the choice of step are in
:mod:`escalade.design.crm_quadrature`, which explains them and their accuracy.
The two contractions (log-likelihood ``[tox, n - tox] . [log p; log(1 - p)]``
and the sums against the grid weights) are written as NumPy element-wise sums
in a fixed order (:func:`counts_loglik`, :func:`grid_sums`), not BLAS products,
so a state's posterior is the same, bit for bit, whatever the other states of
its batch and the number of threads.

The MLE is found on the same grid (argmax of the log-likelihood) and refined by
Newton's method in :math:`e^\\beta` safeguarded by bisection; the log-likelihood
is concave in :math:`e^\\beta`, hence unimodal in :math:`\\beta`, so the bracket
around the grid maximum holds the maximiser.

Trial rules (no skipping, coherence, start-up, stopping, and the guardrails
every design shares) are in :mod:`escalade.design.rules`; they compose in any
order.

Examples
--------
>>> cfg = CrmConfig(target=0.2, n_doses=6, skeleton=(0.05, 0.10, 0.20, 0.35, 0.50, 0.70))
>>> fit = crm_fit(cfg, level=[2, 3, 3, 2, 2, 3, 2, 1, 1, 1], tox=[0, 0, 1, 0, 0, 1, 1, 0, 0, 0])
>>> round(fit.estimate, 6), fit.mtd   # dfcrm::crm help example: -0.212172, mtd = 2 (1-based)
(-0.212172, 1)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import integrate, special

from escalade.design.blrm_kernels import counts_loglik_rows, grid_sums_rows, pairwise_plan
from escalade.design.base import ConfigDesign, Decisions, DesignEntry, ExplanationMixin, FloatArray, IntArray, States
from escalade.design.base import unique_rows as _unique_rows
from escalade.design.config import check_fraction, check_int, check_positive, check_trial_size
from escalade.design.crm_quadrature import LIMIT as _LIMIT
from escalade.design.crm_quadrature import Grid, design_intervals, grid
from escalade.design.rules import (
    Rule,
    RuleContext,
    SafetyStop,
    SharedRules,
    StartUp,
    apply_rules,
    select_with_rules,
    shared_rules,
    state_fields as rules_state_fields,
)
from escalade.design.errors import ConfigError, EscaladeError, did_you_mean

__all__ = [
    "ENTRY",
    "CrmConfig",
    "CrmDesign",
    "CrmModel",
    "crm_rules",
    "CrmEstimates",
    "CrmFit",
    "CrmFitError",
    "crm_fit",
    "crm_fit_counts",
    "crm_mtd",
    "counts_loglik",
    "grid_sums",
    ]

log = logging.getLogger(__name__)

Model = Literal["empiric", "logistic"]
Method = Literal["bayes", "mle"]

_N_INTERVALS = 2000     # grid step 0.01 on [-10, 10] for single fits (crm_fit)
_MLE_FALLBACK_VAR = 500.0 ** 2  # crmsim: Bayes with scale = 500 when the MLE does not exist
_NEWTON_STEPS = 100     # safeguarded Newton for the MLE (converges in ~5; the cap is never reached)
_MLE_XTOL = 1e-13
_EXP_FLOOR = -300.0     # relative posterior density below e^-300 is set to e^-300 (no underflow)
_CHUNK_CELLS = 1 << 14  # states x grid nodes per block (128 KiB): stays in cache
_MODELS = ("empiric", "logistic")


def counts_loglik(counts: FloatArray, table: FloatArray) -> FloatArray:
    """``counts @ table`` (``(S, K) @ (K, G)``), summed term by term in a fixed order.

    Not a BLAS product: BLAS picks kernels, blocking and threads from the shape
    of the whole call (a single state even goes through a matrix-vector
    kernel), so a state's log-likelihood could change in its last bits with
    the other states of its batch or the thread count. Here every state's
    row is :math:`((c_0 t_0 + c_1 t_1) + c_2 t_2) + \\dots`, each product rounded
    and then added (NumPy's ``out = c0 * t0; out += c1 * t1; ...``, written as
    one compiled loop, :func:`escalade.design.blrm_kernels.counts_loglik_rows`),
    the same in any batch; a zero count adds an exact zero.
    """
    return counts_loglik_rows(np.ascontiguousarray(counts, np.float64), np.ascontiguousarray(table, np.float64))


def grid_sums(values: FloatArray, weight_rows: FloatArray) -> FloatArray:
    """``values @ weight_rows.T`` (``(S, G)`` by ``(J, G)`` -> ``(S, J)``), row by row without BLAS.

    Each entry is NumPy's pairwise sum over the grid of one state's row
    (``np.add.reduce(values * weight_rows[j], axis=1)``, computed by the
    compiled :func:`escalade.design.blrm_kernels.grid_sums_rows` with the same
    tree), whose grouping depends only on the grid size, so it is the same in
    any batch and for any number of threads (see :func:`counts_loglik`).
    """
    v = np.ascontiguousarray(values, np.float64)
    w = np.ascontiguousarray(np.asarray(weight_rows, np.float64).T)
    return grid_sums_rows(v, w, pairwise_plan(v.shape[1]))


_METHODS = ("bayes", "mle")


class CrmFitError(EscaladeError, ValueError):
    """The requested fit does not exist for these data (e.g. the MLE with no DLT).

    Attributes
    ----------
    n_patients, n_dlt
        The data that caused it.
    """

    def __init__(self, message: str, n_patients: int, n_dlt: int) -> None:
        self.n_patients = n_patients
        self.n_dlt = n_dlt
        super().__init__(message)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(name, value, f"must be one of {list(choices)}{did_you_mean(str(value), choices)}")


def _dose_scaled(skeleton: Sequence[float], model: str, intercept: float) -> tuple[float, ...]:
    if model == "empiric":
        return tuple(float(s) for s in skeleton)
    return tuple(math.log(s / (1.0 - s)) - intercept for s in skeleton)


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmConfig(SharedRules):
    """CRM parameters, with dfcrm's defaults and the literature's names.

    The trial-rule fields are those every design shares
    (:class:`~escalade.design.rules.SharedRules`), with dfcrm's defaults for
    two of them: ``no_skip="current"`` and ``coherence="fraction"``
    (``crmsim(restrict = TRUE)``). Besides, by default (every design), no
    escalation right after a cohort in which every patient had a DLT (implied
    here by the coherence rule). Safety stop (``safety_threshold``) off by
    default as in dfcrm; a real trial should set it (the shipped study: 0.90).

    Attributes
    ----------
    target
        Target DLT probability :math:`\\phi`.
    n_doses, cohort_size, max_n, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    skeleton
        Prior guesses :math:`s_k`, one per dose, strictly increasing in (0, 1)
        (e.g. from :func:`escalade.design.skeleton.getprior`).
    model
        ``"empiric"`` (power) or ``"logistic"`` (one-parameter, intercept ``intercept``).
    intercept
        :math:`a_0` of the logistic model (dfcrm ``intcpt``).
    prior_var
        Prior variance :math:`\\sigma^2` of :math:`\\beta` (dfcrm ``scale``\\ :sup:`2`).
    method
        ``"bayes"`` (posterior mean) or ``"mle"``. In a simulated trial, where the
        MLE does not exist (no DLT, or DLTs only) the posterior mean under a
        :math:`N(0, 500^2)` prior is used, as ``crmsim`` does.
    conf_level
        Level of the per-dose interval of :func:`crm_fit`.
    no_skip
        ``"current"`` (dfcrm ``restrict``): at most one level above the current
        dose; ``"tried"``: at most one above the highest dose tried; ``"off"``.
    coherence
        ``"fraction"`` (dfcrm ``restrict``): no escalation after a cohort whose
        DLT fraction is at least the target; ``"any"``: after any DLT; ``"off"``
        (Cheung 2005, Biometrika 92:863-873).
    startup
        Two-stage CRM: 0-based doses of the cohorts of the start-up stage, followed
        until the first DLT; ``()`` for a one-stage design. ``startup[0]`` replaces
        ``start_dose``.
    safety_threshold, safety_min_n
        Stop for toxicity when :math:`\\Pr(p_1 > \\phi \\mid \\text{data})` exceeds
        ``safety_threshold`` with at least ``safety_min_n`` patients in all (None:
        no such rule); the probability is the CRM's posterior.
    stop_n_at_dose, min_n, no_escalation_after_dlts, no_escalation_above_boundary, overdose_control, ...
        The other shared rules (:class:`~escalade.design.rules.SharedRules`).
    """

    target: float
    n_doses: int
    skeleton: tuple[float, ...]
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    model: Model = "empiric"
    intercept: float = 3.0
    prior_var: float = 1.34
    method: Method = "bayes"
    conf_level: float = 0.9
    no_skip: Literal["current", "tried", "off"] = "current"
    coherence: Literal["fraction", "any", "off"] = "fraction"
    startup: tuple[int, ...] = ()
    safety_threshold: float | None = None
    safety_min_n: int = 3

    def __post_init__(self) -> None:
        check_fraction("target", self.target)
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        sk = self.skeleton
        if isinstance(sk, (str, bytes)) or not isinstance(sk, (Sequence, np.ndarray)):
            raise ConfigError("skeleton", sk, "must be a list of prior DLT probabilities, one per dose")
        sk = tuple(sk)
        if len(sk) != self.n_doses:
            raise ConfigError("skeleton", list(sk), f"must have one value per dose ({self.n_doses}); got {len(sk)}")
        for i, v in enumerate(sk):
            check_fraction(f"skeleton[{i}]", v)
        if any(not b > a for a, b in zip(sk, sk[1:])):
            raise ConfigError("skeleton", list(sk), "must increase strictly")
        object.__setattr__(self, "skeleton", tuple(float(v) for v in sk))
        _check_choice("model", self.model, _MODELS)
        if not (isinstance(self.intercept, (int, float)) and math.isfinite(self.intercept)):
            raise ConfigError("intercept", self.intercept, "must be a finite number")
        if self.model == "logistic":
            top = math.log(self.skeleton[-1] / (1 - self.skeleton[-1]))
            if not top < self.intercept:
                raise ConfigError("intercept", self.intercept,
                                  f"must exceed logit(skeleton[-1]) = {top:.4g} for the logistic model "
                                  "(dfcrm: the scaled doses must be negative)")
        check_positive("prior_var", self.prior_var)
        _check_choice("method", self.method, _METHODS)
        check_fraction("conf_level", self.conf_level)
        su = self.startup
        if isinstance(su, (str, bytes)) or not isinstance(su, (Sequence, np.ndarray)):
            raise ConfigError("startup", su, "must be a list of 0-based dose indices (one per cohort)")
        su = tuple(su)
        for i, d in enumerate(su):
            check_int(f"startup[{i}]", d, low=0, high=self.n_doses - 1,
                      what=f"a 0-based dose index in [0, {self.n_doses - 1}]")
        object.__setattr__(self, "startup", tuple(int(d) for d in su))
        if self.safety_threshold is not None:
            check_fraction("safety_threshold", self.safety_threshold)
        check_int("safety_min_n", self.safety_min_n, low=0)
        self.check_rules()

    @property
    def scale(self) -> float:
        """Prior standard deviation of :math:`\\beta` (dfcrm's ``scale``)."""
        return math.sqrt(self.prior_var)


def _beta_star(scaled: Sequence[float], model: str, intercept: float, target: float) -> float:
    """:math:`\\beta^*` with :math:`p_1(\\beta^*) = \\phi`; :math:`p_1 > \\phi \\iff \\beta < \\beta^*`."""
    x1 = scaled[0]
    if model == "empiric":
        return math.log(math.log(target) / math.log(x1))
    r = (math.log(target / (1 - target)) - intercept) / x1
    return math.log(r) if r > 0 else -math.inf  # p_1 < expit(a0) <= target: never above the target


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True, slots=True, eq=False)
class CrmEstimates:
    """Batched CRM estimates for ``S`` states.

    Attributes
    ----------
    beta
        ``(S,)`` posterior mean (Bayes) or MLE of :math:`\\beta`.
    ptox
        ``(S, D)`` plug-in DLT probabilities :math:`p_k(\\hat\\beta)`.
    mtd
        ``(S,)`` recommended dose (0-based), dfcrm's rule.
    post_var
        ``(S,)`` posterior variance (Bayes), else None.
    prob_lowest_too_toxic
        ``(S,)`` :math:`\\Pr(p_1 > \\phi \\mid \\text{data})` under the prior
        ``prior_var``, where asked for, else None.
    fallback
        ``(S,)`` True where the MLE did not exist and the :math:`N(0, 500^2)`
        posterior mean was used (method ``"mle"`` only).
    """

    beta: FloatArray
    ptox: FloatArray
    mtd: IntArray
    post_var: FloatArray | None = None
    prob_lowest_too_toxic: FloatArray | None = None
    fallback: np.ndarray | None = None


def crm_mtd(ptox: FloatArray, target: float) -> IntArray:
    """Dose closest to the target, dfcrm's rule (0-based), along the last axis.

    All :math:`p_k \\le \\phi`: the top dose; all :math:`p_k \\ge \\phi`: dose 1;
    else :math:`\\arg\\min_k |p_k - \\phi|` with ties to the lower dose.
    """
    ptox = np.asarray(ptox, float)
    best = np.argmin(np.abs(ptox - target), axis=-1)
    best = np.where(np.all(ptox >= target, axis=-1), 0, best)
    best = np.where(np.all(ptox <= target, axis=-1), ptox.shape[-1] - 1, best)
    return best.astype(np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmModel:
    """The dose-toxicity model and its estimation (no trial rules).

    Built from a :class:`CrmConfig` by :meth:`from_config`; the quadrature
    grid and its tables are computed once per distinct model (cached).
    """

    skeleton: tuple[float, ...]
    target: float
    model: Model = "empiric"
    intercept: float = 3.0
    prior_var: float = 1.34
    method: Method = "bayes"
    conf_level: float = 0.9
    n_intervals: int = _N_INTERVALS
    scaled: tuple[float, ...] = field(init=False)
    beta_star: float = field(init=False)

    def __post_init__(self) -> None:
        scaled = _dose_scaled(self.skeleton, self.model, self.intercept)
        object.__setattr__(self, "scaled", scaled)
        object.__setattr__(self, "beta_star", _beta_star(scaled, self.model, self.intercept, self.target))

    @classmethod
    def from_config(cls, c: CrmConfig, n_intervals: int = _N_INTERVALS) -> "CrmModel":
        """The model of a config; ``n_intervals`` quadrature intervals on :math:`[-10, 10]`."""
        return cls(skeleton=c.skeleton, target=c.target, model=c.model, intercept=float(c.intercept),
                   prior_var=float(c.prior_var), method=c.method, conf_level=float(c.conf_level),
                   n_intervals=n_intervals)

    @property
    def n_doses(self) -> int:
        return len(self.skeleton)

    def _grid(self, prior_var: float | None = None) -> Grid:
        pv = self.prior_var if prior_var is None else prior_var
        return grid(self.scaled, self.model, float(self.intercept), float(pv), self.beta_star, self.n_intervals)

    # ---- model functions

    def ptox(self, beta: Any) -> FloatArray:
        """:math:`p_k(\\beta)` for every dose, shape ``beta.shape + (D,)``."""
        b = np.asarray(beta, float)[..., None]
        x = np.asarray(self.scaled, float)
        with np.errstate(over="ignore"):
            theta = np.exp(b)
            if self.model == "empiric":
                return x ** theta
            return special.expit(self.intercept + theta * x)

    # ---- estimation, batched

    def posterior(self, n: Any, tox: Any, prior_var: float | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Posterior mean and variance of :math:`\\beta` and :math:`\\Pr(\\beta < \\beta^*)`, batched.

        ``n`` and ``tox`` are ``(S, D)`` (or ``(D,)``) counts. Mean and variance
        follow dfcrm (numerators over :math:`(-10, 10)`); the probability is
        normalised over the whole line.
        """
        g = self._grid(prior_var)
        n_ = np.atleast_2d(np.asarray(n, float))
        y = np.atleast_2d(np.asarray(tox, float))
        counts = np.concatenate([y, n_ - y], axis=1)
        s = np.empty((counts.shape[0], 4))
        step = max(1, _CHUNK_CELLS // g.beta.size)  # states per block: the (block, G) array stays in cache
        w_rows = np.ascontiguousarray(g.weights.T)
        for a in range(0, counts.shape[0], step):
            ll = counts_loglik(counts[a:a + step], g.log_pq)
            ll += g.log_prior
            ll -= ll.max(axis=1, keepdims=True)
            np.maximum(ll, _EXP_FLOOR, out=ll)  # exp() of underflowing values is many times slower
            np.exp(ll, out=ll)
            s[a:a + step] = grid_sums(ll, w_rows)
        mean = s[:, 1] / s[:, 0]
        var = s[:, 2] / s[:, 0] - mean**2
        cdf = s[:, 3] / s[:, 0]
        return mean, var, cdf

    def mle(self, n: Any, tox: Any) -> FloatArray:
        """Maximum-likelihood :math:`\\hat\\beta` on :math:`[-10, 10]`, batched (NaN where it does not exist)."""
        g = self._grid()
        n_ = np.atleast_2d(np.asarray(n, float))
        y = np.atleast_2d(np.asarray(tox, float))
        ok_states = (y.sum(axis=1) > 0) & (y.sum(axis=1) < n_.sum(axis=1))
        out = np.full(n_.shape[0], np.nan)
        if not ok_states.any():
            return out
        n_, y = n_[ok_states], y[ok_states]
        core = g.core
        counts = np.concatenate([y, n_ - y], axis=1)
        table = np.ascontiguousarray(g.log_pq[:, core])
        beta = g.beta[core]
        step = max(1, _CHUNK_CELLS // beta.size)
        k = np.concatenate([np.argmax(counts_loglik(counts[a:a + step], table), axis=1)
                            for a in range(0, counts.shape[0], step)])
        lo = beta[np.maximum(k - 1, 0)]
        hi = beta[np.minimum(k + 1, beta.size - 1)]
        # the maximiser lies in [lo, hi] (unimodal likelihood); at -10 or +10 when the score says so
        at_lo = self.score(n_, y, lo)[0] <= 0
        at_hi = self.score(n_, y, hi)[0] >= 0
        est = beta[k].copy()
        live = ~(at_lo | at_hi)
        for _ in range(_NEWTON_STEPS):  # Newton in theta = e^beta, safeguarded by bisection
            if not live.any():
                break
            b = est[live]
            d1, d2 = self.score(n_[live], y[live], b)
            lo[live] = np.where(d1 > 0, b, lo[live])
            hi[live] = np.where(d1 > 0, hi[live], b)
            # log L is concave in theta: d2l/dtheta2 = (l'' - l') / theta^2 < 0; the Newton step in
            # theta is theta * (1 - l' / (l'' - l'))
            curv = d2 - d1
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = 1.0 - d1 / curv
                nxt = b + np.log(ratio)
            ok = (curv < 0) & (ratio > 0) & (nxt >= lo[live]) & (nxt <= hi[live])
            done = ok & (np.abs(nxt - b) <= _MLE_XTOL)
            est[live] = np.where(ok, nxt, 0.5 * (lo[live] + hi[live]))
            idx = np.flatnonzero(live)
            live[idx[done]] = False
        est = np.where(at_lo, lo, np.where(at_hi, hi, est))
        out[ok_states] = est
        return out

    def score(self, n: FloatArray, tox: FloatArray, beta: FloatArray) -> tuple[FloatArray, FloatArray]:
        """First and second derivatives of :math:`\\log L` in :math:`\\beta` (one value per state).

        Empiric, with :math:`u_k = e^\\beta \\log s_k = \\log p_k` and :math:`r_k = p_k/(1-p_k)`:
        :math:`\\ell' = \\sum_k y_k u_k - (n_k - y_k) u_k r_k`,
        :math:`\\ell'' = \\sum_k y_k u_k - (n_k - y_k) u_k r_k (1 + u_k/(1-p_k))`.
        Logistic, with :math:`v_k = e^\\beta x_k`: :math:`\\ell' = \\sum_k (y_k - n_k p_k) v_k`,
        :math:`\\ell'' = \\sum_k (y_k - n_k p_k) v_k - n_k p_k (1 - p_k) v_k^2`.
        """
        x = np.asarray(self.scaled, float)[None, :]
        theta = np.exp(np.asarray(beta, float))[:, None]
        if self.model == "empiric":
            u = theta * np.log(x)
            q = -np.expm1(u)                 # 1 - p
            r = (1.0 - q) / q
            m = n - tox
            d1 = tox * u - m * u * r
            d2 = tox * u - m * u * r * (1.0 + u / q)
        else:
            v = theta * x
            p = special.expit(self.intercept + v)
            e = (tox - n * p) * v
            d1 = e
            d2 = e - n * p * (1.0 - p) * v * v
        return d1.sum(axis=1), d2.sum(axis=1)

    def estimate(self, n: Any, tox: Any, *, safety: bool = False) -> CrmEstimates:
        """Point estimate of :math:`\\beta` (method of the model), plug-in ``ptox`` and the
        recommended dose for a batch of states. For ``method="mle"`` the states whose
        MLE does not exist use the :math:`N(0, 500^2)` posterior mean (as ``crmsim``).
        With ``safety``, also :math:`\\Pr(p_1 > \\phi \\mid \\text{data})` under ``prior_var``.
        """
        n_ = np.atleast_2d(np.asarray(n, float))
        y = np.atleast_2d(np.asarray(tox, float))
        post_var = prob = fallback = None
        if self.method == "bayes":
            beta, post_var, prob = self.posterior(n_, y)
        else:
            beta = self.mle(n_, y)
            fallback = np.isnan(beta)
            if fallback.any():
                beta[fallback] = self.posterior(n_[fallback], y[fallback], _MLE_FALLBACK_VAR)[0]
            if safety:
                prob = self.posterior(n_, y)[2]
        if not safety:
            prob = None
        ptox = self.ptox(beta)
        return CrmEstimates(beta, ptox, crm_mtd(ptox, self.target), post_var, prob, fallback)


# --------------------------------------------------------------------------------------------
# single-state fit (conduct mode, reports)


@dataclass(frozen=True, slots=True)
class CrmFit(ExplanationMixin):
    """A CRM fit to one trial's data, with dfcrm ``crm()``'s fields (doses 0-based).

    Attributes
    ----------
    estimate, post_var, post_sd
        Posterior mean and variance of :math:`\\beta` (Bayes), or the MLE and dfcrm's
        crude variance (MLE; may be negative, then ``post_sd`` and the limits are NaN).
    ptox, ptox_lower, ptox_upper
        Plug-in DLT probabilities and their ``conf_level`` limits.
    mtd
        Recommended dose (0-based; dfcrm's ``mtd`` minus 1).
    prob_lowest_too_toxic
        :math:`\\Pr(p_1 > \\phi \\mid \\text{data})` under the model's prior (exact posterior).
    """

    estimate: float
    post_var: float
    post_sd: float
    ptox: tuple[float, ...]
    ptox_lower: tuple[float, ...]
    ptox_upper: tuple[float, ...]
    mtd: int
    target: float
    method: Method
    model: Model
    dosescaled: tuple[float, ...]
    prior_var: float
    conf_level: float
    n: tuple[int, ...]
    tox: tuple[int, ...]
    prob_lowest_too_toxic: float

    def table(self) -> dict[str, list[float]]:
        """Per-dose columns for reports (1-based dose numbers)."""
        return {"dose": list(range(1, len(self.ptox) + 1)), "n": list(self.n), "dlt": list(self.tox),
                "ptox": list(self.ptox), "ptox_lower": list(self.ptox_lower),
                "ptox_upper": list(self.ptox_upper)}


def _as_model(config: CrmConfig | CrmModel) -> CrmModel:
    if isinstance(config, CrmModel):
        return config
    if isinstance(config, CrmConfig):
        return CrmModel.from_config(config)
    raise TypeError(f"expected a CrmConfig or CrmModel; got {type(config).__name__}")


_R_REL_TOL = float(np.finfo(float).eps) ** 0.25  # R integrate()'s default rel.tol
_R_SUBDIVISIONS = 100                              # R integrate()'s default subdivisions


def _mle_crude_var(m: CrmModel, n: FloatArray, y: FloatArray, est: float) -> float:
    """dfcrm's ``post.var`` for ``method = "mle"``, reproduced as the package computes it.

    .. math::

        \\frac{\\int_{-100}^{100} \\beta^2 L(\\beta) e^{-\\beta^2/(2 \\cdot 500^2)} d\\beta}
             {\\int_{-10}^{10} L(\\beta) e^{-\\beta^2/(2 \\cdot 500^2)} d\\beta} - \\hat\\beta^2,

    both by QUADPACK's QAGS with R ``integrate()``'s settings (relative tolerance
    :math:`\\epsilon^{1/4}`, absolute tolerance 0, 100 subdivisions; ``scipy.integrate.quad``
    wraps the same QUADPACK routine). It is not a variance: for the logistic model the
    likelihood tends to a positive constant as :math:`\\beta \\to -\\infty`, so the
    numerator is dominated by an artefact of the integration and the value may be
    negative or huge. It is kept only so that :func:`crm_fit` reports what dfcrm reports.
    """
    x = np.asarray(m.scaled, float)
    a0, empiric = m.intercept, m.model == "empiric"
    scale2 = _MLE_FALLBACK_VAR

    def h(b: float, power: int) -> float:
        with np.errstate(over="ignore", under="ignore"):
            p = x ** math.exp(b) if empiric else 1.0 / (1.0 + np.exp(-a0 - math.exp(b) * x))
            lik = float(np.prod(p**y * (1.0 - p) ** (n - y)))
        return b**power * lik * math.exp(-b * b / 2.0 / scale2)

    opts: dict[str, Any] = dict(epsabs=0.0, epsrel=_R_REL_TOL, limit=_R_SUBDIVISIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        num = integrate.quad(h, -100.0, 100.0, args=(2,), **opts)[0]
        den = integrate.quad(h, -_LIMIT, _LIMIT, args=(0,), **opts)[0]
    return num / den - est**2


def crm_fit_counts(config: CrmConfig | CrmModel, n: Sequence[int], tox: Sequence[int]) -> CrmFit:
    """The CRM fit to per-dose counts ``n``, ``tox`` (one trial). See :func:`crm_fit`."""
    m = _as_model(config)
    n_ = np.asarray(n, float).reshape(1, -1)
    y = np.asarray(tox, float).reshape(1, -1)
    if n_.shape[1] != m.n_doses or y.shape != n_.shape:
        raise ValueError(f"n and tox need {m.n_doses} values (one per dose); got {n_.shape[1]} and {y.shape[1]}")
    if np.any(n_ < 0) or np.any(y < 0) or np.any(y > n_):
        raise ValueError("n must be >= 0 and tox between 0 and n at every dose")
    z = float(special.ndtri(0.5 + m.conf_level / 2))
    mean, var, prob = m.posterior(n_, y)
    if m.method == "bayes":
        est, pv = float(mean[0]), float(var[0])
    else:
        tot, dlt = int(n_.sum()), int(y.sum())
        if dlt == 0 or dlt == tot:
            what = "no DLT" if dlt == 0 else "only DLTs"
            raise CrmFitError(
                f"the MLE does not exist: {tot} patients with {what} (the likelihood is maximal at "
                f"beta = {'+' if dlt == 0 else '-'}infinity); use method='bayes', or wait for "
                f"{'a DLT' if dlt == 0 else 'a patient without DLT'} (dfcrm: ' mle does not exist!')",
                tot, dlt)
        est = float(m.mle(n_, y)[0])
        pv = _mle_crude_var(m, n_[0], y[0], est)
    sd = math.sqrt(pv) if pv >= 0 else math.nan
    ptox = m.ptox(est)
    lower = m.ptox(est + z * sd)
    upper = m.ptox(est - z * sd)
    return CrmFit(
        estimate=est, post_var=pv, post_sd=sd, ptox=tuple(map(float, ptox)),
        ptox_lower=tuple(map(float, lower)), ptox_upper=tuple(map(float, upper)),
        mtd=int(crm_mtd(ptox, m.target)), target=m.target, method=m.method, model=m.model,
        dosescaled=m.scaled, prior_var=m.prior_var, conf_level=m.conf_level,
        n=tuple(int(v) for v in n_[0]), tox=tuple(int(v) for v in y[0]), prob_lowest_too_toxic=float(prob[0]),
    )


def crm_fit(config: CrmConfig | CrmModel, level: Sequence[int], tox: Sequence[int]) -> CrmFit:
    """The CRM fit to one trial's patients, as ``dfcrm::crm`` (doses 0-based here).

    Parameters
    ----------
    config
        A :class:`CrmConfig` (or :class:`CrmModel`): skeleton, target, model,
        intercept, prior variance, method and confidence level.
    level
        0-based dose of each patient (dfcrm's ``level`` minus 1).
    tox
        0/1 DLT indicator of each patient.

    Returns
    -------
    CrmFit
        ``estimate``, ``post_var``, ``ptox``, ``ptox_lower``/``ptox_upper``, ``mtd`` as
        ``crm(prior, target, tox, level, conf.level, method, model, intcpt, scale, var.est = TRUE)``.

    Raises
    ------
    CrmFitError
        ``method="mle"`` with no DLT or with DLTs only (dfcrm: " mle does not exist!").
    """
    m = _as_model(config)
    lv = np.asarray(level, np.int64).reshape(-1)
    y = np.asarray(tox, np.int64).reshape(-1)
    if lv.shape != y.shape:
        raise ValueError(f"level and tox need one value per patient; got {lv.size} and {y.size}")
    if lv.size and (lv.min() < 0 or lv.max() >= m.n_doses):
        raise ValueError(f"level must hold 0-based doses in [0, {m.n_doses - 1}]; got {sorted(set(lv.tolist()))}")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("tox must be 0 or 1 for every patient")
    n = np.bincount(lv, minlength=m.n_doses)
    t = np.bincount(lv, weights=y, minlength=m.n_doses).astype(np.int64)
    return crm_fit_counts(m, n, t)


# --------------------------------------------------------------------------------------------
# the design


def crm_rules(c: Any) -> tuple[Rule, ...]:
    """The trial rules a CRM-type config switches on.

    The shared rules (:func:`~escalade.design.rules.shared_rules`: no skipping,
    coherence, the DLT guardrail, stop at n, minimum n, ...), the two-stage
    start-up sequence and the safety stop on the CRM's posterior. Used by
    :class:`CrmDesign` and by TITE-CRM (whose config has no start-up sequence);
    the rules combine order-free (:func:`~escalade.design.rules.apply_rules`).
    """
    rules: list[Rule] = list(shared_rules(c, c.target))
    if getattr(c, "startup", ()):
        rules.append(StartUp(c.startup, c.cohort_size))
    if c.safety_threshold is not None:
        rules.append(SafetyStop(c.safety_threshold, c.safety_min_n))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class CrmDesign(ConfigDesign):
    """The CRM as a trial design: dfcrm ``crmsim`` semantics by default.

    ``decide``: fit the model to all data, take its recommended dose, then apply
    the configured rules (:mod:`escalade.design.rules`; by default no
    skipping above the current dose and no escalation after a cohort with DLT
    fraction :math:`\\ge` target, i.e. ``crmsim(restrict = TRUE)``, which
    implies the all-DLT guardrail every design has).
    ``select``: the model's recommended dose on all data (``crmsim``'s final
    selection), or none where the safety rule (or lowered where overdose
    control, when switched on) holds on the final data.

    Examples
    --------
    >>> d = CrmDesign(CrmConfig(target=0.25, n_doses=5, skeleton=(0.05, 0.12, 0.25, 0.40, 0.55)))
    >>> st = States.from_counts([[3, 0, 0, 0, 0], [3, 3, 0, 0, 0]], [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]],
    ...                         current=[0, 1], last_n=3, last_tox=[0, 1])
    >>> d.decide(st).dose.tolist()   # the model says dose 4 after 0/3 at dose 1: no skipping gives dose 2
    [1, 1]
    >>> d.select(st).tolist()        # the model's choice on all data
    [3, 1]
    """

    config: CrmConfig
    kind: ClassVar[str] = "crm"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False  # decide() fits once per distinct (n, tox) itself, faster than the engine's key
    model: CrmModel = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", CrmModel.from_config(self.config, design_intervals(self.config)))
        object.__setattr__(self, "rules", crm_rules(self.config))
        self.model._grid()  # build (and cache) the tables now, not inside the first batch

    @property
    def state_fields(self) -> str:
        """``"counts"`` when no rule reads the last cohort (exact enumeration may merge such states)."""
        return rules_state_fields(self.rules)

    def start(self) -> tuple[int, int]:
        c = self.config
        return (c.startup[0] if c.startup else c.start_dose), c.cohort_size

    def _estimate(self, states: States) -> tuple[IntArray, FloatArray | None]:
        """Recommended dose and :math:`\\Pr(p_1 > \\phi)` per state, the model fitted once per distinct counts."""
        first, inverse = _unique_rows(np.concatenate([states.n, states.tox], axis=1))
        est = self.model.estimate(states.n[first], states.tox[first], safety=self.config.safety_threshold is not None)
        prob = None if est.prob_lowest_too_toxic is None else est.prob_lowest_too_toxic[inverse]
        return est.mtd[inverse], prob

    def decide(self, states: States) -> Decisions:
        mtd, prob = self._estimate(states)
        ctx = RuleContext(states, mtd, self.config.target, prob)
        return apply_rules(self.rules, ctx, self.config.cohort_size)

    def select(self, states: States) -> IntArray:
        sel, prob = self._estimate(states)
        return select_with_rules(self.rules, RuleContext(states, sel, self.config.target, prob))

    def explain(self, states: States, **options: Any) -> CrmFit:
        """The full fit to the first state of ``states`` (conduct mode).

        For ``method="mle"`` where the MLE does not exist, the Bayesian fit with
        the :math:`N(0, 500^2)` prior that the design itself uses.
        """
        n, t = states.n[0], states.tox[0]
        model = dataclasses.replace(self.model, n_intervals=_N_INTERVALS)
        try:
            return crm_fit_counts(model, n, t)
        except CrmFitError as exc:
            log.info("%s; explaining with the N(0, 500^2) posterior mean the design uses", exc)
            return crm_fit_counts(dataclasses.replace(model, method="bayes", prior_var=_MLE_FALLBACK_VAR), n, t)


ENTRY = DesignEntry(
    kind="crm", name="Continual reassessment method (CRM)", config=CrmConfig, design=CrmDesign,
    explanation=CrmFit, methods="escalade.reports.methods_crm:crm_methods",
    citation="O'Quigley J, Pepe M, Fisher L (1990). Continual reassessment method: a practical design for "
             "phase 1 clinical trials in cancer. Biometrics 46:33-48.")
