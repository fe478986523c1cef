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

capped at 1 (linear when :math:`z = 0`). The posterior mean of :math:`\\beta`
and its variance are integrated by the trapezoid rule on a fixed uniform grid
(step 0.05) on :math:`[-10, 10]` (``dfcrm`` integrates the same integrands
adaptively with QUADPACK; the prior mass outside :math:`\\pm 10` is below
:math:`10^{-16}`). On ``dfcrm``'s reference fits the two agree to about
:math:`10^{-9}`.
Estimates are plug-in: :math:`\\hat p_k = p_k(\\hat\\beta)`; the recommended level is
the one whose :math:`\\hat p_k` is closest to the target (ties: the lower level).

Pending data
------------
TITE designs decide on *pending* data, so they are not functions of the
per-dose counts alone (the documented exception of DESIGN.md section 2):
besides :meth:`decide` (complete data) they provide ``decide_tite(states,
followup)``, where :class:`FollowUp` carries, per patient, the dose, whether a
DLT has been observed, and the follow-up as a fraction of the DLT window, and
they return :class:`TiteDecisions` (decisions plus an accrual-suspension flag).
The time-aware engine :mod:`escalade.simulations.timed` builds both.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import special, stats

from escalade.design.base import NO_DOSE, BoolArray, Decisions, FloatArray, IntArray, States
from escalade.design.config import check_fraction, check_int, check_positive, check_probability
from escalade.scenarios.errors import ConfigError

__all__ = [
    "FollowUp",
    "TiteDecisions",
    "tite_weights",
    "TiteCrmConfig",
    "TiteCrmDesign",
    "TiteCrmFit",
    "titecrm",
    "register_design",
]

#: Spacing of the uniform quadrature grid on [-BETA_LIMIT, BETA_LIMIT] (trapezoid rule).
#: For a smooth integrand that vanishes at both ends the rule converges geometrically,
#: with relative error about 2 exp(-2 pi^2 sd^2 / h^2) for a near-Gaussian posterior of
#: standard deviation sd: below 1e-15 while sd >= 0.07 (the logistic model reaches
#: sd 0.07 only after ~150 patients; the empiric model's posterior is wider).
GRID_STEP = 0.05
BETA_LIMIT = 10.0


# ----------------------------------------------------------------------------------------------
# Pending data
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class FollowUp:
    """Per-patient data of ``S`` trials at one decision time (patients on the last axis).

    Attributes
    ----------
    dose
        ``(S, N)`` 0-based dose of each patient, :data:`~escalade.design.base.NO_DOSE`
        for an empty slot (trials with fewer patients are padded).
    dlt
        ``(S, N)`` True where the patient's DLT has been observed by now.
    fraction
        ``(S, N)`` follow-up as a fraction of the DLT window, in ``[0, 1]``: time
        from dosing to the DLT for a patient with an observed DLT, else the time
        since dosing, capped at 1 (``dfcrm``'s ``followup / obswin``).
    """

    dose: IntArray
    dlt: BoolArray
    fraction: FloatArray

    def __post_init__(self) -> None:
        dose = np.atleast_2d(np.asarray(self.dose, np.int64))
        dlt = np.atleast_2d(np.asarray(self.dlt, bool))
        frac = np.atleast_2d(np.asarray(self.fraction, float))
        if not dose.shape == dlt.shape == frac.shape:
            raise ValueError(f"FollowUp: dose, dlt and fraction need one shape; got {dose.shape}, "
                             f"{dlt.shape}, {frac.shape}")
        empty = dose < 0
        if np.any(dlt & empty):
            raise ValueError("FollowUp: a DLT is recorded in an empty patient slot (dose = NO_DOSE)")
        if np.any(~empty & ~((frac >= 0) & (frac <= 1))):
            raise ValueError("FollowUp.fraction must lie in [0, 1] (follow-up / DLT window, capped at 1)")
        object.__setattr__(self, "dose", dose)
        object.__setattr__(self, "dlt", dlt)
        object.__setattr__(self, "fraction", np.where(empty, 0.0, frac))

    @classmethod
    def one(cls, dose: Any, dlt: Any, followup: Any, window: float) -> "FollowUp":
        """One trial from 0-based doses, DLT indicators and follow-up times in the window's unit."""
        f = np.minimum(np.asarray(followup, float) / float(window), 1.0)
        return cls(np.asarray(dose, np.int64)[None, :], np.asarray(dlt, bool)[None, :], f[None, :])

    @property
    def n_states(self) -> int:
        return int(self.dose.shape[0])

    @property
    def treated(self) -> BoolArray:
        return self.dose >= 0

    @property
    def pending(self) -> BoolArray:
        """Treated, no DLT observed, window not complete."""
        return self.treated & ~self.dlt & (self.fraction < 1.0)

    def take(self, index: Any) -> "FollowUp":
        return FollowUp(self.dose[index], self.dlt[index], self.fraction[index])


@dataclass(frozen=True, slots=True, eq=False)
class TiteDecisions:
    """Decisions on pending data: what :meth:`decide_tite` returns.

    ``suspend[s]`` True means: enrol nobody now, wait for more follow-up and
    ask again (``decisions`` is ignored there).
    """

    decisions: Decisions
    suspend: BoolArray

    @property
    def n_states(self) -> int:
        return self.decisions.n_states


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
# Model and posterior on a fixed grid
# ----------------------------------------------------------------------------------------------


@functools.cache
def _grid(step: float = GRID_STEP, limit: float = BETA_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and log trapezoid weights on ``[-limit, limit]``."""
    n = int(round(2 * limit / step)) + 1
    x = np.linspace(-limit, limit, n)
    w = np.full(n, step)
    w[[0, -1]] = step / 2
    return x, np.log(w)


def _log_p(beta: np.ndarray, skeleton: np.ndarray, model: str, intcpt: float) -> tuple[np.ndarray, np.ndarray]:
    """``log p_k(beta)`` and ``log(1 - p_k(beta))``, shape ``(D, G)`` (or broadcast)."""
    beta = np.asarray(beta, float)
    sk = np.asarray(skeleton, float)[:, None] if beta.ndim == 1 else np.asarray(skeleton, float)
    if model == "empiric":
        logp = np.exp(beta) * np.log(sk)
        log1m = np.log(-np.expm1(logp))
    else:
        x = special.logit(sk) - intcpt
        eta = intcpt + np.exp(beta) * x
        logp = -np.logaddexp(0.0, -eta)
        log1m = -np.logaddexp(0.0, eta)
    return logp, log1m


def _prob(beta: np.ndarray, skeleton: np.ndarray, model: str, intcpt: float) -> np.ndarray:
    """``p_k(beta_s)`` for a vector of ``beta`` (one per state): shape ``(S, D)``."""
    b = np.asarray(beta, float)[:, None]
    sk = np.asarray(skeleton, float)[None, :]
    if model == "empiric":
        return sk ** np.exp(b)
    return special.expit(intcpt + np.exp(b) * (special.logit(sk) - intcpt))


@dataclass(frozen=True, slots=True)
class _Moments:
    mean: np.ndarray
    var: np.ndarray


@functools.cache
def _model_grid(skeleton: tuple[float, ...], model: str, intcpt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log p``, ``log(1 - p)`` and ``p`` on the grid, ``(D, G)`` each (computed once per model)."""
    beta, _ = _grid()
    logp, log1m = _log_p(beta, np.asarray(skeleton, float), model, intcpt)
    return logp, log1m, np.exp(logp)


def _posterior(
    y: np.ndarray, n_complete_nondlt: np.ndarray, part_dose: np.ndarray, part_w: np.ndarray, *,
    skeleton: np.ndarray, model: str, intcpt: float, scale: float,
) -> _Moments:
    """Posterior mean and variance of beta for ``S`` weighted likelihoods.

    ``y[s, k]`` DLTs and ``n_complete_nondlt[s, k]`` weight-1 non-DLT patients
    per dose enter as counts (one matrix product each); ``part_dose``/``part_w``
    ``(S, P)`` are the partially followed non-DLT patients (weight < 1; padding
    has weight 0 and contributes nothing).
    """
    beta, logw = _grid()
    logp, log1m, prob = _model_grid(tuple(float(v) for v in skeleton), model, float(intcpt))  # (D, G)
    ll = np.asarray(y, float) @ logp + np.asarray(n_complete_nondlt, float) @ log1m
    if part_w.size:
        p = prob[np.maximum(part_dose, 0)]                        # (S, P, G)
        ll = ll + np.log1p(-part_w[:, :, None] * p).sum(axis=1)
    lp = ll - beta**2 / (2.0 * scale**2) + logw
    lp -= lp.max(axis=1, keepdims=True)
    wts = np.exp(lp)
    wts /= wts.sum(axis=1, keepdims=True)
    m1 = wts @ beta
    m2 = wts @ beta**2
    return _Moments(m1, np.maximum(m2 - m1 * m1, 0.0))


def _closest(ptox: np.ndarray, target: float) -> IntArray:
    """Level with ptox closest to the target (ties: the lowest, as R's ``order``)."""
    return np.argmin(np.abs(ptox - target), axis=1).astype(np.int64)


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
    model: Literal["empiric", "logistic"] = "empiric", intcpt: float = 3.0, scale: float = math.sqrt(1.34),
    scheme: Literal["linear", "adaptive"] = "linear", conf_level: float = 0.9,
) -> TiteCrmFit:
    """Fit TITE-CRM to one trial's data, as ``dfcrm::titecrm(..., method = "bayes")``.

    Parameters
    ----------
    level
        0-based dose level of each patient (``dfcrm`` uses 1-based levels).
    tox, followup, obswin
        DLT indicators, follow-up times and the observation window (same unit).

    Examples
    --------
    ``dfcrm``'s help example (``titecrm(prior, 0.2, tox, level, followup = ..., obswin = 180)``):

    >>> fit = titecrm([2, 2, 2, 3, 3, 2, 1, 1, 1, 2], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0],
    ...               [178, 181, 168, 181, 24, 181, 179, 102, 42, 3], 180,
    ...               skeleton=[0.05, 0.10, 0.20, 0.35, 0.50, 0.70], target=0.2)
    >>> round(fit.estimate, 6), fit.mtd + 1
    (-0.132787, 3)
    """
    sk = np.asarray(skeleton, float)
    follow = FollowUp.one(level, tox, followup, obswin)
    w = tite_weights(follow, scheme)
    d = sk.size
    y, c, pd_, pw = _counts_and_partial(follow, w, d)
    mom = _posterior(y, c, pd_, pw, skeleton=sk, model=model, intcpt=intcpt, scale=scale)
    est, var = float(mom.mean[0]), float(mom.var[0])
    z = stats.norm.ppf(0.5 + conf_level / 2.0)
    sd = math.sqrt(var)
    ptox = _prob(np.array([est]), sk, model, intcpt)[0]
    lo = _prob(np.array([est + z * sd]), sk, model, intcpt)[0]
    hi = _prob(np.array([est - z * sd]), sk, model, intcpt)[0]
    return TiteCrmFit(w[0], est, var, ptox, lo, hi, int(_closest(ptox[None, :], target)[0]))


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
class TiteCrmConfig:
    """TITE-CRM parameters, named as ``dfcrm::titesim``'s arguments.

    ``skeleton`` is dfcrm's ``prior``; ``start_dose`` its ``x0`` (0-based);
    ``restrict`` forbids skipping an untried dose when escalating (the next
    dose is at most one level above the last patient's). ``scale`` is the
    prior standard deviation of :math:`\\beta` (:math:`\\sqrt{1.34}`).
    """

    skeleton: tuple[float, ...]
    target: float
    n_doses: int
    model: Literal["empiric", "logistic"] = "empiric"
    intcpt: float = 3.0
    scale: float = math.sqrt(1.34)
    scheme: Literal["linear", "adaptive"] = "linear"
    cohort_size: int = 1
    max_n: int = 24
    start_dose: int = 0
    restrict: bool = True
    conf_level: float = 0.9

    def __post_init__(self) -> None:
        sk = self.skeleton
        if isinstance(sk, (str, bytes)) or not hasattr(sk, "__len__"):
            raise ConfigError("skeleton", sk, "must be a list of prior DLT probabilities, one per dose")
        sk = tuple(float(v) if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                   else v for v in sk)
        object.__setattr__(self, "skeleton", sk)
        check_int("n_doses", self.n_doses, low=1)
        if len(sk) != self.n_doses:
            raise ConfigError("skeleton", list(sk), f"must have one value per dose ({self.n_doses}); got {len(sk)}")
        for i, v in enumerate(sk):
            check_fraction(f"skeleton[{i}]", v)
        if any(not b > a for a, b in zip(sk, sk[1:])):
            raise ConfigError("skeleton", list(sk), "must increase strictly (e.g. from dfcrm::getprior)")
        check_fraction("target", self.target)
        if self.model not in ("empiric", "logistic"):
            raise ConfigError("model", self.model, "must be one of 'empiric', 'logistic'")
        if self.scheme not in ("linear", "adaptive"):
            raise ConfigError("scheme", self.scheme, "must be one of 'linear', 'adaptive'")
        check_positive("scale", self.scale)
        if not isinstance(self.intcpt, (int, float)) or isinstance(self.intcpt, bool) or not math.isfinite(self.intcpt):
            raise ConfigError("intcpt", self.intcpt, "must be a finite number (dfcrm default 3)")
        if self.model == "logistic" and any(special.logit(v) - self.intcpt >= 0 for v in sk):
            raise ConfigError("skeleton", list(sk), f"needs logit(skeleton) < intcpt = {self.intcpt} for the "
                                                    "logistic model (as dfcrm); raise intcpt or lower the skeleton")
        check_int("cohort_size", self.cohort_size, low=1)
        check_int("max_n", self.max_n, low=1)
        check_int("start_dose", self.start_dose, low=0, high=self.n_doses - 1,
                  what=f"a 0-based dose index in [0, {self.n_doses - 1}]")
        if not isinstance(self.restrict, bool):
            raise ConfigError("restrict", self.restrict, "must be true or false")
        check_probability("conf_level", self.conf_level)


@dataclass(frozen=True, slots=True)
class TiteCrmDesign:
    """TITE-CRM as ``dfcrm::titesim`` runs it (one-stage, Bayesian).

    At each decision (the arrival of the next cohort) the weighted posterior
    of all patients so far gives the level closest to the target; with
    ``restrict`` the next dose is at most one level above the last patient's
    (de-escalation is unrestricted; no coherence rule, as ``titesim``). There
    is no early stopping: the trial ends at ``max_n``, and :meth:`select` is the
    recommended level of the fit to the complete data (all weights 1).
    """

    config: TiteCrmConfig
    kind: ClassVar[str] = "tite_crm"
    markov: ClassVar[bool] = False
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False
    _skeleton: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_skeleton", np.asarray(self.config.skeleton, float))

    @property
    def n_doses(self) -> int:
        return self.config.n_doses

    @property
    def max_n(self) -> int:
        return self.config.max_n

    def start(self) -> tuple[int, int]:
        return self.config.start_dose, self.config.cohort_size

    def _mtd(self, y: np.ndarray, c: np.ndarray, pd_: np.ndarray, pw: np.ndarray) -> IntArray:
        cfg = self.config
        mom = _posterior(y, c, pd_, pw, skeleton=self._skeleton, model=cfg.model, intcpt=cfg.intcpt,
                         scale=cfg.scale)
        return _closest(_prob(mom.mean, self._skeleton, cfg.model, cfg.intcpt), cfg.target)

    def _next(self, mtd: IntArray, current: IntArray) -> Decisions:
        nxt = np.minimum(mtd, current + 1) if self.config.restrict else mtd
        return Decisions.go(nxt.astype(np.int64), self.config.cohort_size)

    def decide(self, states: States) -> Decisions:
        """Complete data (every weight 1): the CRM with ``titesim``'s restriction."""
        y = states.tox.astype(float)
        mtd = self._mtd(y, states.n - y, np.zeros((states.n_states, 0), np.int64), np.zeros((states.n_states, 0)))
        return self._next(mtd, states.current)

    def decide_tite(self, states: States, followup: FollowUp) -> TiteDecisions:
        """Pending data: the weighted posterior of :class:`FollowUp` (never suspends)."""
        w = tite_weights(followup, self.config.scheme)
        y, c, pd_, pw = _counts_and_partial(followup, w, self.n_doses)
        dec = self._next(self._mtd(y, c, pd_, pw), states.current)
        return TiteDecisions(dec, np.zeros(states.n_states, bool))

    def select(self, states: States) -> IntArray:
        y = states.tox.astype(float)
        s = states.n_states
        mtd = self._mtd(y, states.n - y, np.zeros((s, 0), np.int64), np.zeros((s, 0)))
        return np.where(states.total_n > 0, mtd, NO_DOSE)


def register_design(register: Any) -> None:
    """Registry hook (see :mod:`escalade.design.registry`)."""
    register("tite_crm", TiteCrmConfig, TiteCrmDesign, aliases=("titecrm", "tite-crm"))
