"""Two-parameter logistic CRM (bcrm's ``ff = "logit2"``) on the BLRM's quadrature engine.

Sweeting, Mander & Sabin (2013), J Stat Softw 54(13):1-26 (R package bcrm);
O'Quigley, Pepe & Fisher (1990), Biometrics 46:33-48. The model is bcrm's

.. math::

    \\operatorname{logit} p_k = \\log\\alpha_1 + \\alpha_2 x_k, \\qquad
    (\\log\\alpha_1, \\log\\alpha_2) \\sim N_2(\\mu, \\Sigma)

(bcrm's ``prior.alpha = list(4, mu, Sigma)``: a bivariate lognormal prior), with
standardised doses :math:`x_k` computed from the skeleton :math:`s_k` as bcrm's
``find.x`` does, plugging in the prior mean of :math:`\\alpha` (``sdose_calculate =
"mean"``: :math:`\\bar\\alpha_i = e^{\\mu_i + \\Sigma_{ii}/2}`) or its median
(:math:`e^{\\mu_i}`):

.. math::

    x_k = \\frac{\\operatorname{logit}(s_k) - \\log\\bar\\alpha_1}{\\bar\\alpha_2}.

This is the BLRM of :mod:`escalade.design.blrm` with :math:`\\log(d_k/d^*)` replaced
by :math:`x_k`, so the posterior is the same fixed-grid quadrature
(:class:`~escalade.design.blrm.BlrmModel` with ``positions``): deterministic,
batched, memoised by counts, exact enumeration and dose paths work.

The recommended dose has the estimated DLT probability closest to the target
(ties to the lower dose): the plug-in :math:`p_k(E[\\alpha \\mid D])` by default
(bcrm ``pointest = "plugin"``), or the posterior mean of :math:`p_k`
(``pointest = "mean"``). The trial rules are the CRM's
(:func:`escalade.design.crm.crm_rules`): no skipping (bcrm ``constrain = TRUE``),
optional coherence, start-up, safety stop on :math:`\\Pr(p_1 > \\phi \\mid D)`,
stop at n at the recommended dose (bcrm ``nmtd``), minimum sample size (``nmin``).

Not implemented from bcrm: loss-based escalation on toxicity intervals
(``tox.cutpoints``; the BLRM design covers interval probabilities with EWOC), the
``precision`` stopping rule, and the 3+3 start.

Examples
--------
>>> cfg = Crm2Config(target=0.3, n_doses=4, skeleton=(0.1, 0.2, 0.3, 0.45))
>>> [round(v, 4) for v in cfg.sdose]
[-2.3023, -1.8104, -1.4835, -1.0913]
>>> d = Crm2Design(cfg)
>>> int(d.select(States.from_counts([3, 3, 0, 0], [0, 1, 0, 0]))[0])
1
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import special

from escalade.design.base import ConfigDesign, Decisions, DesignEntry, ExplanationMixin, FloatArray, IntArray, NO_DOSE, States
from escalade.design.blrm import BlrmModel, SummaryCache, _pair
from escalade.design.config import check_fraction, check_int, check_positive, check_trial_size
from escalade.design.crm import crm_mtd, crm_rules
from escalade.design.rules import RuleContext, SharedRules, apply_rules
from escalade.design.rules import state_fields as rules_state_fields
from escalade.design.errors import ConfigError, did_you_mean

__all__ = ["Crm2Config", "Crm2Design", "Crm2Explanation", "standardised_doses", "ENTRY"]

log = logging.getLogger(__name__)


def standardised_doses(skeleton: Sequence[float], prior_mean: Sequence[float], prior_var: Sequence[float],
                       how: str = "mean") -> tuple[float, ...]:
    """bcrm's ``find.x`` for ``logit2``: :math:`x_k = (\\operatorname{logit} s_k - \\log\\bar\\alpha_1)/\\bar\\alpha_2`.

    :math:`\\bar\\alpha = e^{\\mu + \\operatorname{diag}\\Sigma/2}` (``how="mean"``) or :math:`e^{\\mu}` (``"median"``).
    """
    half = 0.5 if how == "mean" else 0.0
    a1 = math.exp(prior_mean[0] + half * prior_var[0])
    a2 = math.exp(prior_mean[1] + half * prior_var[1])
    return tuple((math.log(s / (1 - s)) - math.log(a1)) / a2 for s in skeleton)


def _choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(name, value, f"must be one of {list(choices)}{did_you_mean(str(value), choices)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Crm2Config(SharedRules):
    """Two-parameter logistic CRM parameters (bcrm's names where it has them).

    Attributes
    ----------
    target
        Target DLT probability :math:`\\phi` (bcrm ``target.tox``).
    n_doses, cohort_size, max_n, start_dose
        Study settings (``start_dose`` 0-based).
    skeleton
        Prior guesses of the DLT probability per dose (bcrm ``p.tox0``), increasing in (0, 1).
    prior_mean, prior_sd, prior_corr
        Bivariate normal prior of :math:`(\\log\\alpha_1, \\log\\alpha_2)` (bcrm's
        ``prior.alpha = list(4, mean, Sigma)``). Default mean :math:`(\\log 3, 0)`, SDs (1, 1).
    sdose_calculate
        Plug-in of the prior for the standardised doses: ``"mean"`` (bcrm default) or ``"median"``.
    pointest
        ``"plugin"`` (bcrm default): :math:`p_k` at the posterior mean of
        :math:`\\alpha`; ``"mean"``: posterior mean of :math:`p_k`.
    no_skip, coherence, startup, safety_threshold, safety_min_n, stop_n_at_dose, min_n
        The CRM's trial rules (:class:`~escalade.design.crm.CrmConfig`); defaults
        as bcrm (``constrain = TRUE``, no coherence rule).
    grid_points, grid_width
        Integration grid (:class:`~escalade.design.blrm.BlrmConfig`).
    """

    target: float
    n_doses: int
    skeleton: tuple[float, ...]
    prior_mean: tuple[float, float] = (math.log(3.0), 0.0)
    prior_sd: tuple[float, float] = (1.0, 1.0)
    prior_corr: float = 0.0
    sdose_calculate: Literal["mean", "median"] = "mean"
    pointest: Literal["plugin", "mean"] = "plugin"
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    no_skip: Literal["current", "tried", "off"] = "current"
    coherence: Literal["fraction", "any", "off"] = "off"
    startup: tuple[int, ...] = ()
    safety_threshold: float | None = None
    safety_min_n: int = 3
    stop_n_at_dose: int | None = None
    min_n: int = 0
    grid_points: int = 161
    grid_width: float = 7.0
    sdose: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.check_rules()
        check_fraction("target", self.target)
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        sk = self.skeleton
        if isinstance(sk, (str, bytes)) or not isinstance(sk, (Sequence, np.ndarray)) or len(sk) != self.n_doses:
            raise ConfigError("skeleton", sk, f"must be a list of {self.n_doses} prior DLT probabilities, one per dose")
        for i, v in enumerate(sk):
            check_fraction(f"skeleton[{i}]", v)
        if any(not b > a for a, b in zip(sk, sk[1:])):
            raise ConfigError("skeleton", list(sk), "must increase strictly")
        object.__setattr__(self, "skeleton", tuple(float(v) for v in sk))
        object.__setattr__(self, "prior_mean", _pair("prior_mean", self.prior_mean))
        sd = _pair("prior_sd", self.prior_sd)
        if not min(sd) > 0:
            raise ConfigError("prior_sd", list(sd), "must be two positive standard deviations")
        object.__setattr__(self, "prior_sd", sd)
        if not (isinstance(self.prior_corr, (int, float)) and -1.0 < self.prior_corr < 1.0):
            raise ConfigError("prior_corr", self.prior_corr, "must be a correlation strictly between -1 and 1")
        _choice("sdose_calculate", self.sdose_calculate, ("mean", "median"))
        _choice("pointest", self.pointest, ("plugin", "mean"))
        _choice("no_skip", self.no_skip, ("current", "tried", "off"))
        _choice("coherence", self.coherence, ("fraction", "any", "off"))
        su = tuple(self.startup)
        for i, d in enumerate(su):
            check_int(f"startup[{i}]", d, low=0, high=self.n_doses - 1)
        object.__setattr__(self, "startup", tuple(int(d) for d in su))
        if self.safety_threshold is not None:
            check_fraction("safety_threshold", self.safety_threshold)
        check_int("safety_min_n", self.safety_min_n, low=0)
        if self.stop_n_at_dose is not None:
            check_int("stop_n_at_dose", self.stop_n_at_dose, low=1)
        check_int("min_n", self.min_n, low=0, high=self.max_n, what=f"an integer in [0, max_n = {self.max_n}]")
        check_int("grid_points", self.grid_points, low=41, high=1001, what="an integer in [41, 1001]")
        check_positive("grid_width", self.grid_width)
        var = (sd[0] ** 2, sd[1] ** 2)
        object.__setattr__(self, "sdose", standardised_doses(self.skeleton, self.prior_mean, var,
                                                             self.sdose_calculate))

    def model(self) -> BlrmModel:
        """The quadrature posterior: the BLRM engine at the standardised doses."""
        s1, s2 = self.prior_sd
        r = self.prior_corr
        cov = ((s1 * s1, r * s1 * s2), (r * s1 * s2, s2 * s2))
        # cut-offs: the first is the target, so that P(p_1 > target) = 1 - prob_under[:, 0]
        upper = 0.5 * (self.target + 1.0)
        return BlrmModel(doses=tuple(math.exp(x) for x in self.sdose), reference_dose=1.0,
                         components=((1.0, self.prior_mean, cov),), target_interval=(self.target, upper),
                         grid_points=self.grid_points, grid_width=self.grid_width, positions=self.sdose)


@dataclass(frozen=True, slots=True)
class Crm2Explanation(ExplanationMixin):
    """Per-dose estimates of one state (conduct mode): plug-in and posterior mean DLT
    probabilities, 2.5/50/97.5% quantiles, :math:`\\Pr(p_k > \\phi)`; scalars: posterior
    means of :math:`\\alpha_1, \\alpha_2`."""

    sdose: tuple[float, ...]
    ptox_plugin: tuple[float, ...]
    ptox_mean: tuple[float, ...]
    q025: tuple[float, ...]
    q50: tuple[float, ...]
    q975: tuple[float, ...]
    prob_above_target: tuple[float, ...]
    alpha1_mean: float
    alpha2_mean: float
    pointest: str
    engine: str

    def table(self) -> dict[str, list[float]]:
        names = ("sdose", "ptox_plugin", "ptox_mean", "q025", "q50", "q975", "prob_above_target")
        return {k: list(getattr(self, k)) for k in names}


@dataclass(frozen=True, slots=True)
class Crm2Design(ConfigDesign):
    """bcrm's two-parameter logistic CRM as a trial design (``crmsim``-like rules).

    ``decide``: the dose whose estimate (plug-in or posterior mean) is closest to
    the target, then the CRM rules. ``select``: the same on all data (none where the
    safety rule holds).
    """

    config: Crm2Config
    kind: ClassVar[str] = "crm2"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False  # memoised by counts in the design, across batches
    engine: BlrmModel = field(init=False, repr=False, compare=False)
    _cache: SummaryCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", self.config.model())
        object.__setattr__(self, "_cache", SummaryCache())

    @property
    def state_fields(self) -> str:
        return rules_state_fields(crm_rules(self.config))

    def start(self) -> tuple[int, int]:
        c = self.config
        return (c.startup[0] if c.startup else c.start_dose), c.cohort_size

    def estimates(self, states: States) -> tuple[FloatArray, FloatArray]:
        """``(S, D)`` DLT probability estimates (``pointest``) and ``(S,)`` :math:`\\Pr(p_1 > \\phi)`."""
        d = self.n_doses
        m = np.concatenate([states.n, states.tox], axis=1).astype(np.int64)
        uniq, inverse = np.unique(m, axis=0, return_inverse=True)
        cache = self._cache.data
        keys = [row.tobytes() for row in uniq]
        rows = [cache.get(k) for k in keys]
        todo = [i for i, r in enumerate(rows) if r is None]
        if todo:
            idx = np.asarray(todo)
            s = self.engine.summarise(uniq[idx, :d], uniq[idx, d:])
            if self.config.pointest == "plugin":
                est = special.expit(np.log(s.mean_alpha)[:, None] + s.mean_beta[:, None] * self.engine.x[None, :])
            else:
                est = s.mean
            new = np.concatenate([est, 1.0 - s.prob_under[:, :1]], axis=1)
            if len(cache) + idx.size > self._cache.limit:
                cache.clear()
            for i, r in zip(todo, new):
                cache[keys[i]] = r
                rows[i] = r
        arr = np.stack(rows)[inverse.reshape(-1)]
        return arr[:, :d], arr[:, d]

    def decide(self, states: States) -> Decisions:
        est, prob = self.estimates(states)
        ctx = RuleContext(states, crm_mtd(est, self.config.target), self.config.target, prob)
        return apply_rules(crm_rules(self.config), ctx, self.config.cohort_size)

    def select(self, states: States) -> IntArray:
        est, prob = self.estimates(states)
        c = self.config
        sel = crm_mtd(est, c.target)
        if c.safety_threshold is not None:
            sel = np.where((states.total_n >= c.safety_min_n) & (prob > c.safety_threshold), NO_DOSE, sel)
        return np.where(states.total_n > 0, sel, NO_DOSE).astype(np.int64)

    def explain(self, states: States, **options: Any) -> Crm2Explanation:
        """Estimates behind the decision for the first state."""
        m = self.engine
        f = m.density(states.n[0], states.tox[0])
        r = m.fit_positions(f, m.x)
        s = m.summarise(states.n[:1], states.tox[:1])
        a1, a2 = float(s.mean_alpha[0]), float(s.mean_beta[0])
        plug = special.expit(math.log(a1) + a2 * m.x)
        above = 1.0 - m.cdf(f, m.x, special.logit(self.config.target))

        def tup(v: Any) -> tuple[float, ...]:
            return tuple(float(x) for x in v)

        return Crm2Explanation(tup(m.x), tup(plug), tup(r["mean"]), tup(r["quantiles"][:, 0]),
                               tup(r["quantiles"][:, 1]), tup(r["quantiles"][:, 2]), tup(above), a1, a2,
                               self.config.pointest,
                               f"quadrature, {self.config.grid_points} x {self.config.grid_points} grid")


ENTRY = DesignEntry(
    kind="crm2", name="Two-parameter logistic CRM (bcrm)", config=Crm2Config, design=Crm2Design,
    explanation=Crm2Explanation, methods="escalade.reports.methods_blrm:crm2_methods",
    citation="Neuenschwander B, Branson M, Gsponer T (2008). Stat Med 27:2420-2439; Sweeting M, Mander A, Sabin T "
             "(2013). bcrm: Bayesian continual reassessment method designs for phase I dose-finding trials. "
             "J Stat Softw 54(13):1-26.",
    aliases=("crm_logistic2", "logit2"))
