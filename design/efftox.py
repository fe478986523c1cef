"""EffTox: phase I/II dose finding by efficacy-toxicity trade-offs.

Thall & Cook (2004), Biometrics 60:684-693; priors by effective sample size as
Thall, Herrick, Nguyen, Venier & Norris (2014), Clin Trials 11:657-666. The
trial rules are those of the R package ``trialr`` (``efftox_process``), written
out in ``validation/reference/efftox/README.md``.

Model
-----
With coded doses :math:`x_j = \\log d_j - \\overline{\\log d}`,

.. math::

    \\operatorname{logit} \\pi_T(x) = \\alpha + \\beta x, \\qquad
    \\operatorname{logit} \\pi_E(x) = \\gamma + \\zeta x + \\eta x^2,

and the joint probability of efficacy :math:`a` and toxicity :math:`b`
(:math:`a, b \\in \\{0, 1\\}`) is the Gumbel-type model of Thall & Cook (2004,
eq. 1)

.. math::

    \\pi_{a,b} = \\pi_E^a (1-\\pi_E)^{1-a} \\pi_T^b (1-\\pi_T)^{1-b}
      + (-1)^{a+b} \\pi_E (1-\\pi_E) \\pi_T (1-\\pi_T)
        \\frac{e^\\psi - 1}{e^\\psi + 1}.

The six parameters :math:`(\\alpha, \\beta, \\gamma, \\zeta, \\eta, \\psi)` have
independent normal priors. The data enter only through the four cells per
dose, in the order :data:`CELLS`.

Utility
-------
The desirability contour through :math:`(\\pi_E, \\pi_T) = (e_0, 0)`,
:math:`(1, t_1)` and :math:`(e^*, t^*)` is an :math:`L^p` circle around
:math:`(1, 0)` (Thall & Cook 2004, section 3):

.. math::

    u(\\pi_E, \\pi_T) = 1 - \\left[\\left(\\frac{1-\\pi_E}{1-e_0}\\right)^p
      + \\left(\\frac{\\pi_T}{t_1}\\right)^p\\right]^{1/p},

with :math:`p` the root of :math:`((1-e^*)/(1-e_0))^p + (t^*/t_1)^p = 1`
(:func:`solve_p`, solved to machine precision).

Rules (as trialr)
-----------------
Dose :math:`k` is *acceptable* when
:math:`\\Pr(\\pi_E(x_k) > \\underline{\\pi}_E \\mid D) > p_E`,
:math:`\\Pr(\\pi_T(x_k) < \\overline{\\pi}_T \\mid D) > p_T` (all strict) and
:math:`\\min G - 1 \\le k \\le \\max G + 1`, where :math:`G` is the set of doses
given so far. The next cohort (and the final recommendation) goes to the
acceptable dose of highest utility; with none acceptable the trial stops.
See :class:`EffToxDesign` for the ranking options.

Priors
------
Either the twelve hyperparameters directly, or elicited prior mean
probabilities per dose plus a target effective sample size, from which
:func:`prior_from_ess` computes them by least squares penalised by the ESS
(Thall et al. 2014). Defaults: the prostate cancer example of Thall et al.
(2014) as trialr gives it (:data:`EXAMPLE_PRIOR`).

Where escalade differs from trialr
----------------------------------
* Posterior: deterministic quasi-Monte Carlo importance sampling
  (:mod:`escalade.design.efftox_engine`) instead of NUTS draws, so that a
  state always gets the same decision (memoisation). Its error against long
  Stan runs is about 0.002 on posterior means and 0.005 on utilities,
  smaller than that of trialr's default 4 x 1000 draws (about 0.012 on
  utilities). The same model in PyMC (:mod:`escalade.design.efftox_pymc`) is
  the NUTS reference.
* :math:`p` is solved exactly (trialr stops ``uniroot`` at about 1e-4: its p
  is 5e-6 smaller, which moves utilities by about 3e-6); ``p=...`` reproduces
  trialr's value when needed.
* No data: the first cohort goes to ``start_dose`` without a fit (trialr needs
  the user's ``first_dose``; its acceptable set is NA), and :meth:`EffToxDesign.select`
  gives no dose.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special

from escalade.design.base import (ConfigDesign, NO_DOSE, Decisions, DesignEntry, ExplanationMixin, FloatArray, IntArray,
                                  States, StopReason, TrueOptimum, unique_rows)
from escalade.design.config import check_fraction, check_int, check_positive, check_probability, check_trial_size
from escalade.design.efftox_model import (CELLS, PARAMETERS, cell_counts, coded_doses, efftox_utility,
                                          joint_probabilities, solve_p)
from escalade.design.errors import ConfigError
from escalade.design.rules import Rule, RuleContext, SharedRules, apply_rules as apply_trial_rules
from escalade.design.rules import select_with_rules, shared_rules
from escalade.design.rules import state_fields as rules_state_fields
from escalade.design.state_cache import StateCache

if TYPE_CHECKING:  # pragma: no cover
    from escalade.design.efftox_engine import EffToxEngine, EngineSettings, PosteriorSummary

__all__ = [
    "ENTRY",
    "CELLS",
    "PARAMETERS",
    "coded_doses",
    "solve_p",
    "efftox_utility",
    "joint_probabilities",
    "EXAMPLE_PRIOR",
    "EffToxPrior",
    "prior_from_ess",
    "prior_ess",
    "EffToxConfig",
    "EffToxFit",
    "EffToxExplanation",
    "EffToxDesign",
    "apply_rules",
    "cell_counts",
    "parse_outcomes",
    ]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Priors (Thall et al. 2014)
# --------------------------------------------------------------------------------------------------

# Fixed quadrature grid for logistic-normal moments: z in [-12, 12], Simpson weights times phi(z).
_Z_GRID: Final[np.ndarray] = np.linspace(-12.0, 12.0, 4801)
_Z_WEIGHTS: Final[np.ndarray] = (
    np.where(np.arange(4801) % 2 == 1, 4.0, 2.0) * np.r_[0.5, np.ones(4799), 0.5]
    * (_Z_GRID[1] - _Z_GRID[0]) / 3.0 * np.exp(-0.5 * _Z_GRID ** 2) / math.sqrt(2.0 * math.pi)
)


def _logistic_normal_moments(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of :math:`\\operatorname{expit}(Y)`, :math:`Y \\sim N(m, v)`, by Simpson's rule.

    The grid (4801 nodes on :math:`z \\in [-12, 12]`) resolves the logistic step
    for standard deviations up to about 20 to better than 1e-8.
    """
    m = np.asarray(mean, float)[..., None]
    s = np.sqrt(np.asarray(var, float))[..., None]
    pr = special.expit(m + s * _Z_GRID)
    # NumPy's row-wise pairwise sums, not a BLAS product: the same bits for any number of doses or threads
    mu = np.add.reduce(pr * _Z_WEIGHTS, axis=-1)
    second = np.add.reduce(pr * pr * _Z_WEIGHTS, axis=-1)
    return mu, np.maximum(second - mu * mu, 0.0)


@dataclass(frozen=True, slots=True)
class EffToxPrior:
    """Independent normal prior of :math:`(\\alpha, \\beta, \\gamma, \\zeta, \\eta, \\psi)`.

    Attributes
    ----------
    mean, sd
        Six means and six standard deviations, in the order :data:`PARAMETERS`.
    """

    mean: tuple[float, ...]
    sd: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != 6 or len(self.sd) != 6:
            raise ConfigError("prior", (self.mean, self.sd), "needs six means and six standard deviations")
        for name, m, s in zip(PARAMETERS, self.mean, self.sd):
            if not math.isfinite(m):
                raise ConfigError(f"{name}_mean", m, "must be a finite number")
            check_positive(f"{name}_sd", s)

    def as_dict(self) -> dict[str, float]:
        """``{"alpha_mean": ..., "alpha_sd": ..., ...}`` (the config's field names)."""
        out: dict[str, float] = {}
        for name, m, s in zip(PARAMETERS, self.mean, self.sd):
            out[f"{name}_mean"] = float(m)
            out[f"{name}_sd"] = float(s)
        return out

    def prob_moments(self, coded: ArrayLike) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Prior mean and variance of :math:`\\pi_E(x_j)` and :math:`\\pi_T(x_j)` (keys ``"eff"``, ``"tox"``).

        :math:`\\operatorname{logit}\\pi_T(x) \\sim
        N(\\mu_\\alpha + \\mu_\\beta x, \\sigma_\\alpha^2 + \\sigma_\\beta^2 x^2)`
        and :math:`\\operatorname{logit}\\pi_E(x) \\sim N(\\mu_\\gamma + \\mu_\\zeta x + \\mu_\\eta x^2,
        \\sigma_\\gamma^2 + \\sigma_\\zeta^2 x^2 + \\sigma_\\eta^2 x^4)` exactly, so the
        moments are one-dimensional integrals (no Monte Carlo).
        """
        x = np.asarray(coded, float)
        m, s = np.asarray(self.mean), np.asarray(self.sd) ** 2
        tox = _logistic_normal_moments(m[0] + m[1] * x, s[0] + s[1] * x * x)
        eff = _logistic_normal_moments(m[2] + m[3] * x + m[4] * x * x, s[2] + s[3] * x * x + s[4] * x ** 4)
        return {"eff": eff, "tox": tox}


def prior_ess(prior: EffToxPrior, coded: ArrayLike) -> dict[str, float]:
    """Effective sample sizes of the prior of the efficacy and toxicity curves.

    As Thall et al. (2014): the prior of :math:`\\pi_k(x_j)` is matched to a
    beta distribution with the same mean :math:`\\mu` and variance
    :math:`\\sigma^2`, whose ESS is :math:`a + b = \\mu(1-\\mu)/\\sigma^2 - 1`
    (Morita, Thall & Mueller 2008, Biometrics 64:595-602); the ESS of the
    efficacy (toxicity) prior is the mean over doses.

    Examples
    --------
    The prior of the prostate cancer example (trialr's ``efftox_parameters_demo``)
    has ESS close to the 0.9 it was calibrated to:

    >>> pr = EffToxPrior((-7.9593, 1.5482, 0.7367, 3.4181, 0, 0), (3.5487, 3.5018, 2.5423, 2.4406, 0.2, 1))
    >>> {k: round(v, 3) for k, v in prior_ess(pr, coded_doses([1, 2, 4, 6.6, 10])).items()}
    {'eff': 0.908, 'tox': 0.905}
    """
    mom = prior.prob_moments(coded)
    out = {}
    for key in ("eff", "tox"):
        mu, var = mom[key]
        out[key] = float(np.mean(mu * (1.0 - mu) / var - 1.0))
    return out


def prior_from_ess(
    doses: ArrayLike,
    *,
    prob_eff: Sequence[float],
    prob_tox: Sequence[float],
    ess_eff: float = 0.9,
    ess_tox: float = 0.9,
    eta_mean: float = 0.0,
    eta_sd: float = 0.2,
    psi_mean: float = 0.0,
    psi_sd: float = 1.0,
    ess_weight: float = 0.1,
    sd_weight: float = 0.2,
) -> EffToxPrior:
    """Normal prior hyperparameters from elicited mean probabilities and a target ESS.

    Thall et al. (2014) choose the hyperparameters by least squares on the
    elicited prior means, penalised by the prior's effective sample size. For
    the toxicity curve we minimise over
    :math:`(\\mu_\\alpha, \\mu_\\beta, \\sigma_\\alpha, \\sigma_\\beta)`

    .. math::

        \\sum_j \\big(E[\\pi_T(x_j)] - \\bar\\pi_{T,j}\\big)^2
        + w_\\mathrm{ESS}\\,(\\mathrm{ESS}_T - \\mathrm{ESS}_T^*)^2
        + w_\\sigma\\,(\\sigma_\\alpha - \\sigma_\\beta)^2,

    and likewise for efficacy over :math:`(\\mu_\\gamma, \\mu_\\zeta, \\sigma_\\gamma, \\sigma_\\zeta)`
    with :math:`\\eta \\sim N(\\mu_\\eta, \\sigma_\\eta^2)` held fixed; :math:`\\psi`
    keeps its given prior. :math:`\\mathrm{ESS}` is :func:`prior_ess`. The
    prior moments are exact one-dimensional integrals (:meth:`EffToxPrior.prob_moments`),
    not Monte Carlo draws, so the result is deterministic; the minimiser is
    Nelder-Mead on :math:`(\\mu_1, \\mu_2, \\log\\sigma_1, \\log\\sigma_2)`, started
    from a least-squares line through :math:`\\operatorname{logit}\\bar\\pi_j`.

    Deviations and choices: the penalty weights ``ess_weight = 0.1`` and
    ``sd_weight = 0.2`` are the values ``trialr::get_efftox_priors`` uses; the
    2014 paper was not available to check its own weights. The
    :math:`\\sigma`-difference penalty picks one member of the otherwise flat
    family of priors with the same ESS. Defaults ``eta_sd = 0.2``,
    :math:`\\psi \\sim N(0, 1)` and ESS 0.9 are those of the prostate cancer
    example as trialr gives it.

    Parameters
    ----------
    doses
        Dose amounts (coded internally as :func:`coded_doses`).
    prob_eff, prob_tox
        Elicited prior mean probabilities of response and toxicity at each dose.
    ess_eff, ess_tox
        Target ESS of the efficacy and toxicity priors (the paper advises
        small values, about 0.3 to 1).

    Examples
    --------
    The elicitation of the prostate cancer example (as trialr's documentation
    gives it) yields hyperparameters within 0.04 (means) and 0.07 (SDs) of
    the published ones, alpha (-7.9593, 3.5487), beta (1.5482, 3.5018),
    gamma (0.7367, 2.5423), zeta (3.4181, 2.4406):

    >>> pr = prior_from_ess([1, 2, 4, 6.6, 10], prob_eff=[0.2, 0.4, 0.6, 0.8, 0.9],
    ...                     prob_tox=[0.02, 0.04, 0.06, 0.08, 0.10], ess_eff=0.9, ess_tox=0.9)
    >>> [round(v, 2) for v in pr.mean[:4]], [round(v, 2) for v in pr.sd[:4]]
    ([-8.0, 1.56, 0.73, 3.43], [3.55, 3.54, 2.51, 2.5])
    """
    x = coded_doses(doses)
    pe = np.asarray(prob_eff, float)
    pt = np.asarray(prob_tox, float)
    for name, arr in (("prior_prob_eff", pe), ("prior_prob_tox", pt)):
        if arr.shape != x.shape or np.any(~(arr > 0)) or np.any(~(arr < 1)):
            raise ConfigError(name, arr.tolist(), f"must be {x.size} probabilities strictly between 0 and 1")
    check_positive("prior_ess_eff", ess_eff)
    check_positive("prior_ess_tox", ess_tox)
    check_positive("eta_sd", eta_sd)
    check_positive("psi_sd", psi_sd)

    def fit(target: np.ndarray, ess_target: float, extra_mean: np.ndarray, extra_var: np.ndarray
            ) -> tuple[float, float, float, float]:
        def objective(v: np.ndarray) -> float:
            m1, m2, s1, s2 = v[0], v[1], math.exp(v[2]), math.exp(v[3])
            mu, var = _logistic_normal_moments(m1 + m2 * x + extra_mean, s1 * s1 + s2 * s2 * x * x + extra_var)
            ess = float(np.mean(mu * (1.0 - mu) / np.maximum(var, 1e-300) - 1.0))
            return float(np.sum((mu - target) ** 2) + ess_weight * (ess - ess_target) ** 2
                         + sd_weight * (s1 - s2) ** 2)

        slope, icept = np.polyfit(x, special.logit(target), 1)
        best = None
        for s0 in (1.0, 3.0):  # two starts; keep the better optimum
            res = optimize.minimize(objective, np.array([icept, slope, math.log(s0), math.log(s0)]),
                                    method="Nelder-Mead",
                                    options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000, "maxfev": 40000})
            if best is None or res.fun < best.fun:
                best = res
        v = best.x
        return float(v[0]), float(v[1]), math.exp(v[2]), math.exp(v[3])

    a_m, b_m, a_s, b_s = fit(pt, ess_tox, np.zeros_like(x), np.zeros_like(x))
    g_m, z_m, g_s, z_s = fit(pe, ess_eff, eta_mean * x * x, (eta_sd * x * x) ** 2)
    return EffToxPrior((a_m, b_m, g_m, z_m, float(eta_mean), float(psi_mean)),
                       (a_s, b_s, g_s, z_s, float(eta_sd), float(psi_sd)))


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

_PRIOR_FIELDS: Final[tuple[str, ...]] = tuple(f"{p}_{k}" for p in PARAMETERS[:4] for k in ("mean", "sd"))

#: Prior of the prostate cancer example of Thall et al. (2014), as trialr's
#: ``efftox_parameters_demo()`` gives it (the defaults of :class:`EffToxConfig`).
EXAMPLE_PRIOR: Final[dict[str, float]] = {
    "alpha_mean": -7.9593, "alpha_sd": 3.5487, "beta_mean": 1.5482, "beta_sd": 3.5018,
    "gamma_mean": 0.7367, "gamma_sd": 2.5423, "zeta_mean": 3.4181, "zeta_sd": 2.4406,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EffToxConfig(SharedRules):
    """EffTox parameters, with Thall & Cook's and trialr's names.

    Defaults are those of the prostate cancer example of Thall et al. (2014)
    as trialr's ``efftox_parameters_demo()`` gives them (hurdles 0.5 and 0.3,
    certainties 0.1, contour through (0.5, 0), (1, 0.65), (0.7, 0.25) and the
    prior :data:`EXAMPLE_PRIOR`). They make a runnable example, not a
    recommendation: a real trial elicits its own (the coded doses are
    centred, so the example prior is at least on the right scale for any
    dose set).

    Attributes
    ----------
    n_doses, doses
        Number of dose levels and the dose amounts (any consistent unit,
        increasing); the model uses :math:`x_j = \\log d_j - \\overline{\\log d}`.
    efficacy_hurdle, toxicity_hurdle
        :math:`\\underline\\pi_E` (lowest acceptable response rate) and
        :math:`\\overline\\pi_T` (highest acceptable toxicity rate).
    p_e, p_t
        Certainty thresholds: dose acceptable when
        :math:`\\Pr(\\pi_E > \\underline\\pi_E) > p_E` and
        :math:`\\Pr(\\pi_T < \\overline\\pi_T) > p_T` (strict, as trialr).
    eff0, tox1, eff_star, tox_star
        Contour points :math:`(e_0, 0)`, :math:`(1, t_1)`, :math:`(e^*, t^*)`.
    p
        Contour exponent; ``None`` (default) solves it exactly from the three
        points (:func:`solve_p`). Give trialr's 0.977363190505906 only to
        reproduce its rounding.
    alpha_mean, alpha_sd, beta_mean, beta_sd, gamma_mean, gamma_sd, zeta_mean, zeta_sd
        Normal prior (mean, SD) of the four curve parameters. Give them, or
        give none and ``prior_prob_eff`` / ``prior_prob_tox`` to derive them by
        :func:`prior_from_ess`. Any left unset (``None``) takes the value of
        the prostate cancer example (:data:`EXAMPLE_PRIOR`).
    eta_mean, eta_sd, psi_mean, psi_sd
        Normal prior of the quadratic efficacy term and of the association.
    prior_prob_eff, prior_prob_tox, prior_ess_eff, prior_ess_tox
        Elicited prior mean probabilities per dose and the target effective
        sample sizes for :func:`prior_from_ess`.
    rank_by
        ``"plugin"`` (default, as trialr): rank acceptable doses by
        :math:`u(E[\\pi_E], E[\\pi_T])`; ``"posterior_mean"``: by :math:`E[u(\\pi_E, \\pi_T)]`
        (Thall & Cook 2004 define the posterior mean utility).
    n_points, pilot_points, min_ess, qmc_seed, n_threads
        Numerical settings of the importance-sampling engine
        (:class:`~escalade.design.efftox_engine.EngineSettings`).

    no_escalation_after_dlts, overdose_control, lowest_dose_safety, ...
        The trial rules every design shares (:class:`~escalade.design.rules.SharedRules`),
        applied after EffTox's own; their target DLT rate is ``toxicity_hurdle``.
        By default only the all-DLT guardrail: EffTox's acceptability rule with
        :math:`p_T = 0.1` lets a vague prior escalate right after an all-DLT
        cohort (e.g. ``1NNN 2TTT`` -> dose 3).

    Derived (not set by the user): ``coded_doses``, ``contour_p``, ``prior_mean``, ``prior_sd``.
    """

    n_doses: int
    doses: tuple[float, ...]
    efficacy_hurdle: float = 0.5
    toxicity_hurdle: float = 0.3
    eff0: float = 0.5
    tox1: float = 0.65
    eff_star: float = 0.7
    tox_star: float = 0.25
    p_e: float = 0.1
    p_t: float = 0.1
    cohort_size: int = 3
    max_n: int = 39
    start_dose: int = 0
    p: float | None = None
    alpha_mean: float | None = None
    alpha_sd: float | None = None
    beta_mean: float | None = None
    beta_sd: float | None = None
    gamma_mean: float | None = None
    gamma_sd: float | None = None
    zeta_mean: float | None = None
    zeta_sd: float | None = None
    eta_mean: float = 0.0
    eta_sd: float = 0.2
    psi_mean: float = 0.0
    psi_sd: float = 1.0
    prior_prob_eff: tuple[float, ...] | None = None
    prior_prob_tox: tuple[float, ...] | None = None
    prior_ess_eff: float = 0.9
    prior_ess_tox: float = 0.9
    rank_by: Literal["plugin", "posterior_mean"] = "plugin"
    n_points: int = 4096
    pilot_points: int = 512
    min_ess: float = 1000.0
    qmc_seed: int = 20040684
    n_threads: int = 1
    coded_doses: tuple[float, ...] = field(init=False)
    contour_p: float = field(init=False)
    prior_mean: tuple[float, ...] = field(init=False)
    prior_sd: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        check_int("n_doses", self.n_doses, low=1)
        doses = self.doses
        if isinstance(doses, (str, bytes)) or not isinstance(doses, (Sequence, np.ndarray)):
            raise ConfigError("doses", doses, "must be a list of dose amounts, one per dose level")
        doses = tuple(float(d) for d in doses)
        if len(doses) != self.n_doses:
            raise ConfigError("doses", list(doses), f"must have one amount per dose ({self.n_doses}); got {len(doses)}")
        if any(not b > a for a, b in zip(doses, doses[1:])):
            raise ConfigError("doses", list(doses), "must increase strictly")
        object.__setattr__(self, "doses", doses)
        x = coded_doses(doses)
        check_fraction("efficacy_hurdle", self.efficacy_hurdle)
        check_fraction("toxicity_hurdle", self.toxicity_hurdle)
        for name in ("p_e", "p_t"):
            v = getattr(self, name)
            check_probability(name, v)
            if v >= 1.0:
                raise ConfigError(name, v, "must be below 1 (no probability exceeds 1); Thall & Cook use about 0.1")
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        p_root = solve_p(self.eff0, self.tox1, self.eff_star, self.tox_star)
        if self.p is None:
            p_used = p_root
        else:
            check_positive("p", self.p)
            p_used = float(self.p)
        if self.rank_by not in ("plugin", "posterior_mean"):
            raise ConfigError("rank_by", self.rank_by, "must be one of {'plugin', 'posterior_mean'}")
        object.__setattr__(self, "coded_doses", tuple(float(v) for v in x))
        object.__setattr__(self, "contour_p", p_used)
        prior = self._prior()
        object.__setattr__(self, "prior_mean", tuple(float(v) for v in prior.mean))
        object.__setattr__(self, "prior_sd", tuple(float(v) for v in prior.sd))
        self.engine_settings()  # validates the numerical settings
        self.check_rules()

    def _prior(self) -> EffToxPrior:
        for name in (*_PRIOR_FIELDS, "eta_mean", "eta_sd", "psi_mean", "psi_sd", "prior_ess_eff", "prior_ess_tox"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                                  or not math.isfinite(v)):
                raise ConfigError(name, v, "must be a finite number")
        given = [f for f in _PRIOR_FIELDS if getattr(self, f) is not None]
        elicited = self.prior_prob_eff is not None or self.prior_prob_tox is not None
        if given and elicited:
            raise ConfigError(given[0], getattr(self, given[0]),
                              "give either the prior hyperparameters (alpha_mean ... zeta_sd) or "
                              "prior_prob_eff/prior_prob_tox to derive them, not both")
        if elicited:
            for name in ("prior_prob_eff", "prior_prob_tox"):
                if getattr(self, name) is None:
                    raise ConfigError(name, None, "is needed with the other elicited prior probabilities")
            object.__setattr__(self, "prior_prob_eff", tuple(float(v) for v in self.prior_prob_eff))
            object.__setattr__(self, "prior_prob_tox", tuple(float(v) for v in self.prior_prob_tox))
            prior = prior_from_ess(self.doses, prob_eff=self.prior_prob_eff, prob_tox=self.prior_prob_tox,
                                   ess_eff=self.prior_ess_eff, ess_tox=self.prior_ess_tox, eta_mean=self.eta_mean,
                                   eta_sd=self.eta_sd, psi_mean=self.psi_mean, psi_sd=self.psi_sd)
            log.info("EffTox prior from elicited means (ESS %.2f / %.2f): %s", self.prior_ess_eff,
                     self.prior_ess_tox, {k: round(v, 4) for k, v in prior.as_dict().items()})
            return prior

        def value(name: str) -> float:
            v = getattr(self, name)
            return float(EXAMPLE_PRIOR[name] if v is None else v)

        return EffToxPrior(tuple(value(f"{p}_mean") for p in PARAMETERS[:4]) + (self.eta_mean, self.psi_mean),
                           tuple(value(f"{p}_sd") for p in PARAMETERS[:4]) + (self.eta_sd, self.psi_sd))

    @property
    def prior(self) -> EffToxPrior:
        """The prior in use (given or derived)."""
        return EffToxPrior(self.prior_mean, self.prior_sd)

    def engine_settings(self) -> "EngineSettings":
        from escalade.design.efftox_engine import EngineSettings

        return EngineSettings(n_points=self.n_points, pilot_points=self.pilot_points, min_ess=self.min_ess,
                              qmc_seed=self.qmc_seed, n_threads=self.n_threads)

    def utility(self, prob_eff: ArrayLike, prob_tox: ArrayLike) -> FloatArray:
        """:func:`efftox_utility` with this design's contour."""
        return efftox_utility(prob_eff, prob_tox, eff0=self.eff0, tox1=self.tox1, p=self.contour_p)

    def apply_rules(self, n: ArrayLike, prob_acc_eff: ArrayLike, prob_acc_tox: ArrayLike, utility: ArrayLike,
                    post_utility: ArrayLike) -> tuple[np.ndarray, np.ndarray, IntArray]:
        """:func:`apply_rules` with this configuration (what the engines call: they never import this module)."""
        return apply_rules(self, n, prob_acc_eff, prob_acc_tox, utility, post_utility)


# --------------------------------------------------------------------------------------------------
# The design
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class EffToxFit:
    """Posterior summaries and the EffTox rules for a batch of states.

    Attributes
    ----------
    summary
        :class:`~escalade.design.efftox_engine.PosteriorSummary` (posterior means,
        acceptability probabilities, plug-in and posterior mean utilities, ESS).
    has_data
        ``(S,)`` True where at least one patient was treated.
    in_range
        ``(S, D)`` rule (c): :math:`\\min G - 1 \\le k \\le \\max G + 1` (False without data).
    acceptable
        ``(S, D)`` all three rules hold (False without data; trialr reports NA).
    recommended
        ``(S,)`` acceptable dose of highest utility (ties: lowest dose), or
        :data:`~escalade.design.base.NO_DOSE` when none is acceptable or there is no data.
    """

    summary: "PosteriorSummary"
    has_data: np.ndarray
    in_range: np.ndarray
    acceptable: np.ndarray
    recommended: IntArray


def apply_rules(config: EffToxConfig, n: ArrayLike, prob_acc_eff: ArrayLike, prob_acc_tox: ArrayLike,
                utility: ArrayLike, post_utility: ArrayLike) -> tuple[np.ndarray, np.ndarray, IntArray]:
    """trialr's acceptability, range and ranking rules, batched over states.

    Parameters
    ----------
    n
        ``(S, D)`` patients per dose (defines the doses given, :math:`G`).
    prob_acc_eff, prob_acc_tox, utility, post_utility
        ``(S, D)`` posterior summaries (from any engine).

    Returns
    -------
    in_range, acceptable, recommended
        ``(S, D)``, ``(S, D)`` booleans and ``(S,)`` 0-based dose or NO_DOSE.
        States without patients have no dose in range (trialr: NA).
    """
    treated = np.atleast_2d(np.asarray(n)) > 0
    has = treated.any(axis=1)
    d = treated.shape[1]
    lo = np.where(has, np.argmax(treated, axis=1), 0) - 1
    hi = np.where(has, d - 1 - np.argmax(treated[:, ::-1], axis=1), -2) + 1
    k = np.arange(d)
    in_range = has[:, None] & (k >= lo[:, None]) & (k <= hi[:, None])
    acceptable = (in_range & (np.atleast_2d(prob_acc_eff) > config.p_e)
                  & (np.atleast_2d(prob_acc_tox) > config.p_t))
    score = np.atleast_2d(utility if config.rank_by == "plugin" else post_utility)
    best = np.argmax(np.where(acceptable, score, -np.inf), axis=1)  # first maximum: ties go to the lowest dose
    rec = np.where(acceptable.any(axis=1), best, NO_DOSE).astype(np.int64)
    return in_range, acceptable, rec


@dataclass(frozen=True, slots=True)
class EffToxExplanation(ExplanationMixin):
    """Per-dose posterior summaries and rules of one state, with the engine's diagnostics.

    :meth:`table` gives the per-dose columns; the float and text fields are
    the scalars (``ess`` is the importance-sampling ESS, or the smallest bulk
    ESS of a NUTS fit, whose ``max_rhat`` and ``divergences`` are also given).
    """

    prob_eff: tuple[float, ...]
    prob_tox: tuple[float, ...]
    prob_acc_eff: tuple[float, ...]
    prob_acc_tox: tuple[float, ...]
    utility: tuple[float, ...]
    post_utility: tuple[float, ...]
    prob_obd: tuple[float, ...]
    in_range: tuple[bool, ...]
    acceptable: tuple[bool, ...]
    contour_p: float
    rank_by: str
    engine: str
    ess: float
    max_rhat: float | None = None
    divergences: float | None = None

    def table(self) -> dict[str, list[Any]]:
        """One column per quantity, one row per dose (trialr's names)."""
        names = ("prob_eff", "prob_tox", "prob_acc_eff", "prob_acc_tox", "utility", "post_utility", "prob_obd",
                 "in_range", "acceptable")
        return {n: list(getattr(self, n)) for n in names}


@dataclass(frozen=True, slots=True)
class EffToxDesign(ConfigDesign):
    """EffTox (Thall & Cook 2004) with trialr's rules, on a deterministic posterior.

    After each cohort the posterior is computed by
    :class:`~escalade.design.efftox_engine.EffToxEngine` (importance sampling on
    fixed quasi-random points; deterministic, so decisions are memoised by
    state). Then, with :math:`G` the doses given so far:

    1. dose :math:`k` is acceptable iff
       :math:`\\Pr(\\pi_E(x_k) > \\underline\\pi_E \\mid D) > p_E`,
       :math:`\\Pr(\\pi_T(x_k) < \\overline\\pi_T \\mid D) > p_T` and
       :math:`\\min G - 1 \\le k \\le \\max G + 1` (trialr ``efftox_process``;
       the range rule is Thall & Cook's no-skipping rule, applied both ways);
    2. the next cohort gets the acceptable dose of highest utility: the
       plug-in :math:`u(E[\\pi_E \\mid D], E[\\pi_T \\mid D])` by default (as
       trialr), or the posterior mean :math:`E[u \\mid D]` with
       ``rank_by="posterior_mean"``; ties go to the lowest dose (``which.max``);
    3. with no acceptable dose the trial stops (:attr:`StopReason.NO_ACCEPTABLE`).

    The first cohort goes to ``start_dose`` (no data, no model fit). The trial
    otherwise runs to ``max_n`` (the engine's rule). :meth:`select` is the
    recommended dose after the last cohort (or none).

    The shared trial rules (:mod:`escalade.design.rules`, target DLT rate =
    ``toxicity_hurdle``) then apply to the decision: by default, no escalation
    right after a cohort in which every patient had a DLT. The acceptability
    and range rules (1) stay EffTox's own: they decide which doses compete on
    utility, so a limit applied afterwards would not give the same choice
    (the best acceptable dose within range is not the best dose capped).
    A limit lowers EffTox's dose even to a dose EffTox itself finds
    unacceptable (e.g. ``1NNN 2TTT`` with overdose control: dose 1, whose
    efficacy is not yet shown); the trial goes on there rather than stopping,
    and stops (no dose) only by EffTox's own rule or a safety rule.

    Examples
    --------
    >>> cfg = EffToxConfig(n_doses=5, doses=(1, 2, 4, 6.6, 10), efficacy_hurdle=0.5, toxicity_hurdle=0.3,
    ...                    eff0=0.5, tox1=0.65, eff_star=0.7, tox_star=0.25,
    ...                    alpha_mean=-7.9593, alpha_sd=3.5487, beta_mean=1.5482, beta_sd=3.5018,
    ...                    gamma_mean=0.7367, gamma_sd=2.5423, zeta_mean=3.4181, zeta_sd=2.4406)
    >>> design = EffToxDesign(cfg)
    >>> states = parse_outcomes("1NNE 2EEB", n_doses=5)
    >>> int(design.decide(states).dose[0]) + 1          # trialr's recommendation: dose 3
    3
    """

    config: EffToxConfig
    kind: ClassVar[str] = "efftox"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = True
    memoise: ClassVar[bool] = True
    engine: "EffToxEngine" = field(init=False, repr=False, compare=False)
    _cache: StateCache = field(init=False, repr=False, compare=False)
    rules: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from escalade.design.efftox_engine import EffToxEngine

        c = self.config
        object.__setattr__(self, "engine", EffToxEngine(
            np.asarray(c.coded_doses), prior_mean=c.prior_mean, prior_sd=c.prior_sd,
            efficacy_hurdle=c.efficacy_hurdle, toxicity_hurdle=c.toxicity_hurdle, eff0=c.eff0, tox1=c.tox1,
            p=c.contour_p, settings=c.engine_settings()))
        key: Any = c  # copies of a design with this configuration share one cache per process
        try:
            hash(c)
        except TypeError:
            key = None
        object.__setattr__(self, "_cache", StateCache(1_000_000, key=key))
        object.__setattr__(self, "rules", shared_rules(c, c.toxicity_hurdle))

    @property
    def state_fields(self) -> str:
        """``"all"`` when a trial rule reads the last cohort (the default guardrail does)."""
        return rules_state_fields(self.rules)

    def true_optimum(self, p_tox: ArrayLike, p_eff: ArrayLike, p_both: ArrayLike | None = None) -> TrueOptimum:
        """The dose of highest true utility among doses that truly clear both hurdles (Thall & Cook 2004).

        A dose is eligible when its true response rate is at least
        ``efficacy_hurdle`` and its true DLT rate at most ``toxicity_hurdle``
        (the hurdles of the acceptability rule, applied to the truth); the
        optimal dose maximises :meth:`EffToxConfig.utility` of the true
        marginal rates among them (ties: the lowest dose, as the design ranks).
        ``p_both`` is not used: the utility depends on the marginals only.

        Examples
        --------
        >>> cfg = EffToxConfig(n_doses=3, doses=(1, 2, 4), efficacy_hurdle=0.3, toxicity_hurdle=0.35,
        ...                    eff0=0.4, tox1=0.7, eff_star=0.65, tox_star=0.25)
        >>> EffToxDesign(cfg).true_optimum([0.05, 0.2, 0.5], [0.2, 0.6, 0.7]).dose
        1
        """
        c = self.config
        pt, pe = np.asarray(p_tox, float), np.asarray(p_eff, float)
        ok = (pe >= c.efficacy_hurdle) & (pt <= c.toxicity_hurdle)
        u = np.asarray(c.utility(pe, pt), float)
        dose = int(np.argmax(np.where(ok, u, -np.inf))) if ok.any() else NO_DOSE
        rule = (f"highest true EffTox utility (contour through ({c.eff0:g}, 0), (1, {c.tox1:g}) and "
                f"({c.eff_star:g}, {c.tox_star:g})) among doses with true response rate >= {c.efficacy_hurdle:g} "
                f"and true DLT rate <= {c.toxicity_hurdle:g}; ties: the lower dose")
        return TrueOptimum(dose, tuple(float(v) for v in u), tuple(bool(v) for v in ok), "EffTox utility", rule)

    def fit(self, states: States, *, full: bool = True) -> EffToxFit:
        """Posterior summaries, acceptability and the recommended dose of every state.

        ``full=False`` skips the posterior mean utility and ``prob_obd`` unless
        ``rank_by="posterior_mean"`` needs them.
        """
        c = self.config
        if states.n_doses != c.n_doses:
            raise ValueError(f"states have {states.n_doses} doses; the design has {c.n_doses}")
        cnt = cell_counts(states)
        need_full = full or c.rank_by == "posterior_mean"
        summ = self.engine.summarise(cnt, full=need_full)
        in_range, acceptable, rec = apply_rules(c, states.n, summ.prob_acc_eff, summ.prob_acc_tox,
                                                summ.utility, summ.post_utility)
        has = (states.n > 0).any(axis=1)
        return EffToxFit(summ, has, in_range, acceptable, rec)

    def recommend(self, states: States) -> IntArray:
        """Recommended dose (0-based, or NO_DOSE) per state, memoised by the state's counts."""
        m = np.concatenate([states.n, states.tox, states.eff, states.both], axis=1).astype(np.int64)
        # distinct states (in hash order: a state's posterior does not depend on its batch)
        first, inverse = unique_rows(m)
        uniq = m[first]
        cache = self._cache.data
        keys = [row.tobytes() for row in uniq]
        out = np.empty(uniq.shape[0], np.int64)
        todo = []
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        if todo:
            idx = np.asarray(todo)
            d = self.n_doses
            sub = States.from_counts(uniq[idx, :d], uniq[idx, d:2 * d], uniq[idx, 2 * d:3 * d],
                                     uniq[idx, 3 * d:], current=0)
            rec = self.fit(sub, full=False).recommended
            out[idx] = rec
            if len(cache) + idx.size > self._cache.limit:
                cache.clear()
            for i, r in zip(idx.tolist(), rec.tolist()):
                cache[keys[i]] = r
        return out[inverse]

    def explain(self, states: States, *, mcmc: bool = False, **sample_kwargs: Any) -> "EffToxExplanation":
        """Everything behind the decision for one state (conduct mode, reports).

        With ``mcmc=True`` the posterior comes from NUTS
        (:func:`escalade.design.efftox_pymc.sample_posterior`, needs PyMC) and the
        explanation carries its ArviZ diagnostics; ``sample_kwargs`` go to it.
        """
        if states.n_states != 1:
            raise ValueError(f"explain takes one state; got {states.n_states}")
        c = self.config
        if mcmc:
            from escalade.design.efftox_pymc import sample_posterior

            f = sample_posterior(c, states, **sample_kwargs)
            cols = (f.prob_eff, f.prob_tox, f.prob_acc_eff, f.prob_acc_tox, f.utility, f.post_utility, f.prob_obd)
            return EffToxExplanation(*(tuple(float(v) for v in a) for a in cols),
                                     tuple(bool(v) for v in f.in_range), tuple(bool(v) for v in f.acceptable),
                                     contour_p=c.contour_p, rank_by=c.rank_by,
                                     engine=f"NUTS (PyMC), {f.idata.posterior.sizes['chain']} chains x "
                                            f"{f.idata.posterior.sizes['draw']} draws",
                                     ess=f.min_ess_bulk, max_rhat=f.max_rhat, divergences=float(f.divergences))
        fit = self.fit(states)
        s = fit.summary
        cols = (s.prob_eff, s.prob_tox, s.prob_acc_eff, s.prob_acc_tox, s.utility, s.post_utility, s.prob_obd)
        return EffToxExplanation(*(tuple(float(v) for v in a[0]) for a in cols),
                                 tuple(bool(v) for v in fit.in_range[0]), tuple(bool(v) for v in fit.acceptable[0]),
                                 contour_p=c.contour_p, rank_by=c.rank_by,
                                 engine=f"importance sampling, {int(s.n_points[0])} quasi-random points",
                                 ess=float(s.ess[0]))

    def decide(self, states: States) -> Decisions:
        rec = self.recommend(states)
        has = (states.n > 0).any(axis=1)
        dose = np.where(has, rec, self.config.start_dose)
        dec = Decisions.go(np.where(dose == NO_DOSE, 0, dose), self.config.cohort_size)
        dec = dec.with_stop(has & (rec == NO_DOSE), StopReason.NO_ACCEPTABLE)
        return apply_trial_rules(self.rules, RuleContext(states, dec.dose, self.config.toxicity_hurdle), dec)

    def select(self, states: States) -> IntArray:
        rec = self.recommend(states)
        has = (states.n > 0).any(axis=1)
        sel = np.where(has, rec, NO_DOSE).astype(np.int64)
        return select_with_rules(self.rules, RuleContext(states, sel, self.config.toxicity_hurdle))


# --------------------------------------------------------------------------------------------------
# Outcome strings and registration
# --------------------------------------------------------------------------------------------------

_OUTCOME_CELL: Final[dict[str, int]] = {"B": 0, "E": 1, "T": 2, "N": 3}


def parse_outcomes(text: str, *, n_doses: int) -> States:
    """One state from trialr's outcome notation, e.g. ``"1NNE 2EEB"``.

    Each cohort is a 1-based dose number followed by one letter per patient:
    ``E`` efficacy only, ``T`` toxicity only, ``B`` both, ``N`` neither.
    ``current`` is the dose of the last cohort, ``last_n``/``last_tox`` its size
    and DLTs (read by the coherence rules and the all-DLT guardrail).

    Examples
    --------
    >>> s = parse_outcomes("1NNE 2EEB", n_doses=5)
    >>> s.n.tolist(), s.tox.tolist(), s.eff.tolist(), s.both.tolist()
    ([[3, 3, 0, 0, 0]], [[0, 1, 0, 0, 0]], [[1, 3, 0, 0, 0]], [[0, 1, 0, 0, 0]])
    """
    cells = np.zeros((n_doses, 4), np.int64)
    current = last_n = last_tox = 0
    for tok in text.split():
        i = 0
        while i < len(tok) and tok[i].isdigit():
            i += 1
        if i == 0 or i == len(tok) or any(ch not in _OUTCOME_CELL for ch in tok[i:]):
            raise ValueError(f"cannot read cohort {tok!r} in {text!r}: write a dose number then letters "
                             "from E, T, B, N, e.g. '1NNE 2EEB'")
        dose = int(tok[:i])
        if not 1 <= dose <= n_doses:
            raise ValueError(f"cohort {tok!r}: dose {dose} is not in 1..{n_doses}")
        for ch in tok[i:]:
            cells[dose - 1, _OUTCOME_CELL[ch]] += 1
        current = dose - 1
        last_n, last_tox = len(tok) - i, sum(ch in "TB" for ch in tok[i:])
    both, eff_only, tox_only, neither = cells.T
    return States.from_counts(both + eff_only + tox_only + neither, both + tox_only, both + eff_only, both,
                              current=current, last_n=last_n, last_tox=last_tox)


ENTRY = DesignEntry(
    kind="efftox", name="EffTox efficacy-toxicity trade-off design", config=EffToxConfig, design=EffToxDesign,
    explanation=EffToxExplanation, methods="escalade.reports.methods_efftox:efftox_methods",
    citation="Thall PF, Cook JD (2004). Dose-finding based on efficacy-toxicity trade-offs. Biometrics 60:684-693.")
