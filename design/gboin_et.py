"""gBOIN-ET: generalised BOIN for graded toxicity and ordinal efficacy (optimal biological dose).

Takeda, Morita & Taguri (2022), "gBOIN-ET: the generalized Bayesian optimal
interval design for optimal dose-finding accounting for ordinal graded efficacy
and toxicity in early clinical trials", Biometrical Journal 64(7):1178-1191;
the rules follow the R package ``boinet`` (Yamaguchi & Takeda, version 1.5.0,
``gboinet()``), which the tests reproduce.

Scores. Each patient has a normalised equivalent toxicity score nETS in
[0, 1] (:func:`escalade.design.gboin.toxicity_scores`: severity weights per AE
type and grade, summed, over their maximum; with one AE type
``sev.weight[g] / max(sev.weight)`` as in ``boinet``) and a normalised
equivalent efficacy score nEES (:func:`escalade.design.gboin.response_scores`:
the response category's weight over the largest, ``res.weight[r] /
max(res.weight)``). At a dose with :math:`n` patients the estimates are the mean
scores :math:`\\hat p_T = x_T / n`, :math:`\\hat p_E = x_E / n`, treated as
quasi-binomial proportions.

Boundaries (Takeda, Taguri & Morita 2018 for BOIN-ET; ``boinet::gridoptim``):
:math:`\\lambda_1 \\in [\\phi_1, \\phi]`, :math:`\\lambda_2 \\in [\\phi, \\phi_2]` and
:math:`\\eta_1 \\in [\\delta_1, \\delta]` on a 0.01 grid minimise the probability of
an incorrect decision with :math:`n = 100` and six equally likely hypotheses
(:func:`gboinet_boundaries`; defaults :math:`\\phi_1 = 0.1\\phi`, :math:`\\phi_2 =
1.4\\phi`, :math:`\\delta_1 = 0.6\\delta`).

Dose finding at the current dose :math:`d`:

1. :math:`\\hat p_T \\le \\lambda_1` and :math:`\\hat p_E \\le \\eta_1`: escalate;
2. :math:`\\hat p_T < \\lambda_2` and :math:`\\hat p_E > \\eta_1`: stay;
3. :math:`\\hat p_T \\ge \\lambda_2`: de-escalate;
4. otherwise (:math:`\\lambda_1 < \\hat p_T < \\lambda_2`, :math:`\\hat p_E \\le \\eta_1`):
   escalate if :math:`d + 1` is untried, else go to the dose of highest
   :math:`\\hat p_E` among :math:`d - 1, d, d + 1` (those that exist; an untried dose
   counts :math:`\\hat p_E = 0`), ties at random.

Admissible set (every dose, tried or not, Beta(1, 1) priors): dose :math:`j` is
admissible unless :math:`\\Pr(p_{T,j} < \\phi) < 1 -` ``stopping_prob_t`` or
:math:`\\Pr(p_{E,j} > \\delta_1) < 1 -` ``stopping_prob_e``. The trial stops with no
dose when no dose is admissible; it ends (and selects) when a dose has
``stopping_npts`` patients. Otherwise the rule's dose is taken if admissible;
below the lowest dose: the lowest if admissible, else stop; above the top: the
top dose; an inadmissible higher dose: the lowest admissible dose above it
(else stay); an inadmissible dose at or below the current: the highest
admissible dose at or below it (else stop with no dose).

Final selection of the optimal biological dose (OBD) among the treated doses:
none if the trial stopped early or no treated dose is admissible; with one
treated dose, that dose if admissible; otherwise the toxicity estimate is the
(unweighted) isotonic regression of :math:`\\hat p_T` over the treated doses, the
efficacy estimate :math:`\\hat p_E` itself (``estpt.method = "obs.prob"``), and
``obd_method`` picks among the admissible treated doses
(``boinet::obd.select``):

* ``max_effprob``: the MTD is the highest dose whose toxicity estimate is
  closest to :math:`\\phi`; the OBD the lowest admissible dose with the highest
  :math:`\\hat p_E` among the admissible doses up to the MTD;
* ``utility_weighted``: :math:`u = \\hat p_E - w_1 \\hat p_T - w_2 \\hat p_T 1(\\hat p_T > \\phi_2)`;
* ``utility_truncated_linear``: :math:`u = f_E f_T`, piecewise linear from 0 at
  ``qlow_ast`` to 1 at ``qupp_ast`` (efficacy) and from 1 at ``plow_ast`` to 0
  at ``pupp_ast`` (toxicity);
* ``utility_scoring``: :math:`u = 100\\,\\hat p_E(1-\\hat p_T) + \\psi_{11}\\hat p_E\\hat p_T +
  \\psi_{00}(1-\\hat p_E)(1-\\hat p_T)`;

the utility ones take the lowest admissible dose of highest :math:`u`.

Where escalade differs from ``boinet``, all deliberate: the shared rules of
:mod:`escalade.design.rules` apply on the binary DLTs (by default no
escalation right after an all-DLT cohort; ``no_escalation_after_dlts: off``
reproduces ``boinet``); ties in rule 4 are
broken uniformly at random by a fixed function of the trial's state (so the
design stays a pure, memoisable function of its data; ``boinet`` draws from
the global random stream); the selected OBD is the dose itself (``boinet``
returns its position among the treated doses, the same dose when the trial
starts at the lowest one); the fractional-polynomial efficacy estimate
(``estpt.method = "fp.logistic"``, package ``mfp``) is not offered; decisions
are made on complete outcomes (no time-to-event version).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import special, stats

from escalade.design.base import (NO_DOSE, ConfigDesign, Decisions, DesignEntry, ExplanationMixin, FloatArray,
                                  IntArray, States, StopReason)
from escalade.design.config import check_fraction, check_int, check_probability, check_trial_size
from escalade.design.errors import ConfigError, DesignError
from escalade.design.rules import Rule, RuleContext, SharedRules, apply_rules, select_with_rules, shared_rules
from escalade.design.gboin import (GradeWeights, _format_rows, check_severity_weights, response_scores,
                                   toxicity_scores)
from escalade.design.isotonic import isotonic_regression

__all__ = ["OBD_METHODS", "GboinEtConfig", "GboinEtDesign", "GboinEtExplanation", "GboinEtBoundaries",
           "gboinet_boundaries", "gboinet_obd", "ENTRY"]

ObdMethod = Literal["max_effprob", "utility_weighted", "utility_truncated_linear", "utility_scoring"]
OBD_METHODS: tuple[str, ...] = ("max_effprob", "utility_weighted", "utility_truncated_linear", "utility_scoring")


def _r_seq(start: float, stop: float, by: float) -> np.ndarray:
    """R's ``seq(start, stop, by = by)`` for ``stop >= start`` (same points, bit for bit)."""
    span = stop - start
    if abs(span) / max(abs(stop), abs(start)) < 100 * np.finfo(float).eps:
        return np.array([start])
    k = int(span / by + 1e-10)
    return np.minimum(start + np.arange(k + 1) * by, stop)


def _r_pbinom(q: np.ndarray, n: int, p: float) -> np.ndarray:
    """R's ``pbinom(q, n, p)`` for real ``q`` (R takes ``floor(q + 1e-7)``)."""
    return stats.binom.cdf(np.floor(np.asarray(q, float) + 1e-7), n, p)


@functools.cache
def gboinet_boundaries(phi: float, phi1: float, phi2: float, delta: float, delta1: float,
                       n: int = 100) -> tuple[float, float, float]:
    """:math:`(\\lambda_1, \\lambda_2, \\eta_1)` as ``boinet::gridoptim`` (six hypotheses, prior 1/6 each).

    For each grid point the probability of an incorrect decision is summed
    over the hypotheses H1 (:math:`\\phi_1, \\delta_1`), H2 (:math:`\\phi_1,
    \\delta`), H4 (:math:`\\phi, \\delta`), H5 (:math:`\\phi_2, \\delta_1`) and H6
    (:math:`\\phi_2, \\delta`) (H3 contributes nothing) with binomial counts out
    of ``n``; the first minimum in R's column-major order wins. The H4 term
    uses :math:`\\Pr(X \\le n\\lambda_1 \\mid \\phi_1)` in its middle part, as
    ``boinet`` does.

    Examples
    --------
    >>> [round(v, 12) for v in gboinet_boundaries(0.6, 0.06, 0.84, 0.8, 0.48)]  # gboinet help, example 1
    [0.29, 0.73, 0.65]
    """
    l1 = _r_seq(phi1, phi, 0.01)
    l2 = _r_seq(phi, phi2, 0.01)
    e1 = _r_seq(delta1, delta, 0.01)
    a_p, a_1, a_2 = (_r_pbinom(n * l1, n, p)[:, None, None] for p in (phi, phi1, phi2))
    b_p, b_1, b_2 = (_r_pbinom(n * l2 - 1, n, p)[None, :, None] for p in (phi, phi1, phi2))
    e_d, e_1 = (_r_pbinom(n * e1, n, q)[None, None, :] for q in (delta, delta1))
    pi = 1.0 / 6.0
    # term by term in R's order of evaluation, so that exact ties resolve as in R
    h1 = a_1 * (1 - e_1) + 2 / 3 * (b_1 - a_1) * e_1 + (b_1 - a_1) * (1 - e_1) + (1 - b_1)
    h2 = a_1 * e_d + 2 / 3 * (b_1 - a_1) * e_d + (1 - b_1)
    h4 = a_p * e_d + 2 / 3 * (b_p - a_1) * e_d + (1 - b_p)
    h5 = a_2 * e_1 + a_2 * (1 - e_1) + 2 / 3 * (b_2 - a_2) * e_1 + (b_2 - a_2) * (1 - e_1)
    h6 = a_2 * e_d + a_2 * (1 - e_d) + 2 / 3 * (b_2 - a_2) * e_d + (b_2 - a_2) * (1 - e_d)
    total = pi * h1 + pi * h2 + pi * h4 + pi * h5 + pi * h6
    flat = np.ravel(total, order="F")
    i, j, k = np.unravel_index(int(np.argmin(flat)), total.shape, order="F")
    return float(l1[i]), float(l2[j]), float(e1[k])


@dataclass(frozen=True, slots=True, kw_only=True)
class GboinEtConfig(SharedRules):
    """Parameters of gBOIN-ET (Takeda, Morita & Taguri 2022; R package ``boinet``'s ``gboinet``).

    Attributes
    ----------
    target
        Target mean normalised equivalent toxicity score :math:`\\phi` (``boinet``'s ``phi``), not a DLT
        rate: set it in the design's params (the study's DLT target fills it otherwise).
    delta
        Target mean normalised equivalent efficacy score :math:`\\delta`.
    n_doses, cohort_size, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    max_n
        Maximum sample size (``size.cohort * n.cohort``).
    phi1, phi2
        Toxicity scores deemed too low / too high; default 0.1 and 1.4 times the target.
    delta1
        Lowest efficacy score worth having; default 0.6 times ``delta``.
    stopping_npts
        End the trial (and select) when a dose has this many patients; default ``max_n``.
    stopping_prob_t, stopping_prob_e
        A dose is inadmissible when :math:`\\Pr(p_T > \\phi) >` stopping_prob_t or
        :math:`\\Pr(p_E < \\delta_1) >` stopping_prob_e (Beta(1, 1) priors).
    obd_method
        Final selection: ``max_effprob``, ``utility_weighted``, ``utility_truncated_linear`` or
        ``utility_scoring``.
    w1, w2
        ``utility_weighted``: weight of the toxicity score and extra penalty above ``phi2``.
    plow_ast, pupp_ast, qlow_ast, qupp_ast
        ``utility_truncated_linear`` thresholds; default ``phi1``, ``phi2``, ``delta1 / 2``, ``delta``.
    psi00, psi11
        ``utility_scoring``: utility of (no toxicity, no efficacy) and of (toxicity, efficacy).
    severity_weights
        Per AE type, the weights of grades 0-5; default every AE type with 0, 0, 0.5, 1, 1.5, 1.5.
    ets_max
        The ETS mapped to nETS = 1; default the sum of the weighted types' largest weights.
    response_weights
        Per response category, its weight (e.g. ``{cr: 3, pr: 1, sd: 0.25}``; unnamed categories
        weigh 0); default 1 for the best category falling linearly to 0 for the worst.

    The shared rules (:class:`~escalade.design.rules.SharedRules`) are available too, on the
    binary DLTs, with the all-DLT guardrail on by default (``no_escalation_after_dlts: off``
    gives ``boinet``'s design).
    """

    target: float
    delta: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    phi1: float | None = None
    phi2: float | None = None
    delta1: float | None = None
    stopping_npts: int | None = None
    stopping_prob_t: float = 0.95
    stopping_prob_e: float = 0.99
    obd_method: ObdMethod = "max_effprob"
    w1: float = 0.33
    w2: float = 1.09
    plow_ast: float | None = None
    pupp_ast: float | None = None
    qlow_ast: float | None = None
    qupp_ast: float | None = None
    psi00: float = 40.0
    psi11: float = 60.0
    severity_weights: Mapping[str, Sequence[float]] | None = None
    ets_max: float | None = None
    response_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        check_fraction("target", self.target)
        check_fraction("delta", self.delta)
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        if self.phi1 is None:
            s(self, "phi1", 0.1 * self.target)
        if self.phi2 is None:
            s(self, "phi2", 1.4 * self.target)
        if self.delta1 is None:
            s(self, "delta1", 0.6 * self.delta)
        for name in ("phi1", "phi2", "delta1"):
            check_fraction(name, getattr(self, name))
        if not self.phi1 < self.target < self.phi2:
            raise ConfigError("phi1, phi2", (self.phi1, self.phi2),
                              f"must satisfy phi1 < target ({self.target}) < phi2 (defaults 0.1 and 1.4 x target)")
        if not self.delta1 < self.delta:
            raise ConfigError("delta1", self.delta1, f"must be below delta ({self.delta}); default 0.6 x delta")
        if self.stopping_npts is None:
            s(self, "stopping_npts", self.max_n)
        check_int("stopping_npts", self.stopping_npts, low=1)
        check_probability("stopping_prob_t", self.stopping_prob_t)
        check_probability("stopping_prob_e", self.stopping_prob_e)
        if self.obd_method not in OBD_METHODS:
            raise ConfigError("obd_method", self.obd_method, f"must be one of {', '.join(OBD_METHODS)}")
        for name, default in (("plow_ast", self.phi1), ("pupp_ast", self.phi2), ("qlow_ast", self.delta1 / 2),
                              ("qupp_ast", self.delta)):
            if getattr(self, name) is None:
                s(self, name, default)
        if not self.plow_ast < self.pupp_ast:
            raise ConfigError("plow_ast", self.plow_ast, f"must be below pupp_ast ({self.pupp_ast})")
        if not self.qlow_ast < self.qupp_ast:
            raise ConfigError("qlow_ast", self.qlow_ast, f"must be below qupp_ast ({self.qupp_ast})")
        for name in ("w1", "w2", "psi00", "psi11"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
                raise ConfigError(name, v, "must be a finite number")
        s(self, "severity_weights", check_severity_weights("severity_weights", self.severity_weights))
        if self.ets_max is not None and not (isinstance(self.ets_max, (int, float)) and self.ets_max > 0):
            raise ConfigError("ets_max", self.ets_max, "must be a positive number (the ETS mapped to nETS = 1)")
        if self.response_weights is not None:
            rw = self.response_weights
            if not isinstance(rw, Mapping) or not rw:
                raise ConfigError("response_weights", rw, "must map response categories to weights, e.g. "
                                                          "{cr: 3, pr: 1, sd: 0.25}")
            try:
                vals = {str(k): float(v) for k, v in rw.items()}
            except (TypeError, ValueError):
                raise ConfigError("response_weights", rw, "must map each category to a number") from None
            if not all(math.isfinite(v) and v >= 0 for v in vals.values()) or max(vals.values()) <= 0:
                raise ConfigError("response_weights", rw, "must be finite, >= 0, with some weight positive")
            s(self, "response_weights", GradeWeights(vals))
        self.check_rules()

    @property
    def boundaries(self) -> tuple[float, float, float]:
        """:math:`(\\lambda_1, \\lambda_2, \\eta_1)` (:func:`gboinet_boundaries`)."""
        return gboinet_boundaries(float(self.target), float(self.phi1), float(self.phi2), float(self.delta),
                                  float(self.delta1))


@dataclass(frozen=True, slots=True)
class GboinEtBoundaries:
    """gBOIN-ET's decision table: thresholds on the totals of nETS and nEES at a dose."""

    lambda1: float
    lambda2: float
    eta1: float
    n_max: int

    def table(self, cohort_size: int = 1, n_max: int | None = None) -> dict[str, list]:
        top = self.n_max if n_max is None else n_max
        ns = list(range(cohort_size, top + 1, cohort_size))
        return {"n": ns, "tox_score_low_le": [self.lambda1 * n for n in ns],
                "tox_score_high_ge": [self.lambda2 * n for n in ns], "eff_score_low_le": [self.eta1 * n for n in ns]}

    def format(self, cohort_size: int = 1, n_max: int | None = None) -> str:
        t = self.table(cohort_size, n_max)
        head = (f"gBOIN-ET (boinet::gridoptim): lambda1 = {self.lambda1:g}, lambda2 = {self.lambda2:g}, "
                f"eta1 = {self.eta1:g}; xT, xE = total nETS, nEES at the dose.\n"
                "Escalate if xT <= lambda1 n and xE <= eta1 n; de-escalate if xT >= lambda2 n; stay if "
                "xT < lambda2 n and xE > eta1 n; otherwise the\nneighbour with the highest mean nEES "
                "(an untried next dose first).")
        rows = [("Number of patients treated", t["n"]), ("xT low if <=", t["tox_score_low_le"]),
                ("xT high if >=", t["tox_score_high_ge"]), ("xE low if <=", t["eff_score_low_le"])]
        return head + "\n" + _format_rows(rows)


def _tie_uniform(states: States) -> FloatArray:
    """A uniform number in [0, 1) per state, a fixed function of the state's data (splitmix64 mixing)."""
    cols = [states.n, states.current[:, None]]
    for v in (states.tox_score, states.eff_score):
        if v is not None:
            cols.append(np.ascontiguousarray(v, np.float64).view(np.int64))
    m = np.concatenate(cols, axis=1).astype(np.uint64)
    h = np.full(m.shape[0], 0x9E3779B97F4A7C15, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(m.shape[1]):
            z = h ^ m[:, j]
            z = (z + np.uint64(0x9E3779B97F4A7C15))
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = z ^ (z >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _admissible(c: GboinEtConfig, n: np.ndarray, xt: np.ndarray, xe: np.ndarray) -> np.ndarray:
    """Neither :math:`\\Pr(p_T < \\phi) < 1 - c_T` nor :math:`\\Pr(p_E > \\delta_1) < 1 - c_E` (Beta(1, 1))."""
    n = np.asarray(n, float)
    t_ok = special.betainc(1.0 + xt, 1.0 + n - xt, c.target)
    e_ok = special.betaincc(1.0 + xe, 1.0 + n - xe, c.delta1)
    return ~((e_ok < 1.0 - c.stopping_prob_e) | (t_ok < 1.0 - c.stopping_prob_t))


def gboinet_obd(c: GboinEtConfig, n: Any, xt: Any, xe: Any) -> int:
    """The OBD (0-based, or :data:`NO_DOSE`) of one trial's final data, trial not stopped early."""
    n = np.asarray(n, float)
    xt = np.asarray(xt, float)
    xe = np.asarray(xe, float)
    ev = np.nonzero(n > 0)[0]
    if ev.size == 0:
        return NO_DOSE
    adm = _admissible(c, n[ev], xt[ev], xe[ev])
    if ev.size == 1:
        return int(ev[0]) if adm[0] else NO_DOSE
    if not adm.any():
        return NO_DOSE
    pt = isotonic_regression(xt[ev] / n[ev])
    pe = xe[ev] / n[ev]
    cand = np.nonzero(adm)[0]
    pos = np.arange(ev.size)
    if c.obd_method == "max_effprob":
        dist = np.abs(pt - c.target)
        mdif = dist[cand].min()
        mtd = int(pos[dist == mdif].max())
        meff = pe[cand[cand <= mtd]].max()
        best = int(cand[pe[cand] == meff].min())
        return int(ev[best])
    if c.obd_method == "utility_weighted":
        u = pe - c.w1 * pt - c.w2 * pt * (pt > c.phi2)
    elif c.obd_method == "utility_truncated_linear":
        fe = np.clip((pe - c.qlow_ast) / (c.qupp_ast - c.qlow_ast), 0.0, 1.0)
        fe = np.where(pe <= c.qlow_ast, 0.0, np.where(pe >= c.qupp_ast, 1.0, fe))
        ft = np.where(pt <= c.plow_ast, 1.0, np.where(pt >= c.pupp_ast, 0.0,
                                                      1.0 - (pt - c.plow_ast) / (c.pupp_ast - c.plow_ast)))
        u = fe * ft
    else:  # utility_scoring
        u = (0.0 * (1 - pe) * pt + c.psi00 * (1 - pe) * (1 - pt) + c.psi11 * pe * pt + 100.0 * pe * (1 - pt))
    best = int(cand[u[cand] == u[cand].max()].min())
    return int(ev[best])


@dataclass(frozen=True, slots=True)
class GboinEtDesign(ConfigDesign):
    """gBOIN-ET as a pure function of per-dose counts and nETS / nEES totals (see the module docstring)."""

    config: GboinEtConfig
    kind: ClassVar[str] = "gboin_et"
    enumerable: ClassVar[bool] = False  # decisions depend on continuous score totals
    uses_efficacy: ClassVar[bool] = True
    memoise: ClassVar[bool] = False  # decide is vectorised; select deduplicates states itself
    graded: ClassVar[bool] = True
    state_fields: ClassVar[str] = "all"  # states are keyed on every field (scores included)
    lambdas: tuple[float, float, float] = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lambdas", self.config.boundaries)
        # the shared rules count binary DLTs; those needing a target DLT rate are refused (the target is an nETS)
        object.__setattr__(self, "rules", shared_rules(self.config, None))

    def decision_table(self) -> GboinEtBoundaries:
        """The thresholds ``escalade boundaries --design gboin_et`` prints."""
        l1, l2, e1 = self.lambdas
        return GboinEtBoundaries(l1, l2, e1, int(self.config.max_n))

    def patient_scores(self, grades: Mapping[str, np.ndarray], response: np.ndarray,
                       categories: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """Each patient's (nETS, nEES)."""
        c = self.config
        t = toxicity_scores(grades, c.severity_weights, c.ets_max)
        return t, response_scores(response, categories, c.response_weights)

    def _scores(self, states: States) -> tuple[FloatArray, FloatArray]:
        if states.tox_score is None or states.eff_score is None:
            raise DesignError("gBOIN-ET decides on graded toxicities and ordinal responses, but these trial "
                              "states carry no scores (States.tox_score / eff_score): give the scenario adverse "
                              "events by type and grade and response categories")
        return states.tox_score, states.eff_score

    def admissible(self, states: States) -> np.ndarray:
        xt, xe = self._scores(states)
        return _admissible(self.config, states.n, xt, xe)

    def move(self, states: States) -> IntArray:
        """The rule's next dose before admissibility: -1 below the lowest, ``n_doses`` above the top."""
        xt, xe = self._scores(states)
        l1, l2, e1 = self.lambdas
        nd = self.config.n_doses
        s = states.n_states
        rows = np.arange(s)
        d = states.current
        n = states.n.astype(float)
        pt = np.where(n > 0, xt / np.maximum(n, 1.0), 0.0)
        pe = np.where(n > 0, xe / np.maximum(n, 1.0), 0.0)
        ptc, pec = pt[rows, d], pe[rows, d]
        up = (ptc <= l1) & (pec <= e1)
        stay = ~up & (ptc < l2) & (pec > e1)
        down = ~up & ~stay & (ptc >= l2)
        guided = ~(up | stay | down)
        nxt = np.where(up, d + 1, np.where(down, d - 1, d))
        # rule 4: untried next dose first, else the neighbour of highest mean nEES (ties at random)
        nxt_untried = (d < nd - 1) & (states.n[rows, np.minimum(d + 1, nd - 1)] == 0)
        offs = np.array([-1, 0, 1])
        nb = d[:, None] + offs[None, :]
        ok = (nb >= 0) & (nb < nd)
        val = np.where(ok, pe[rows[:, None], np.clip(nb, 0, nd - 1)], -np.inf)
        top = val.max(axis=1, keepdims=True)
        tied = ok & (val == top)
        k = tied.sum(axis=1)
        pick = np.minimum((_tie_uniform(states) * k).astype(np.int64), k - 1)
        rank = np.cumsum(tied, axis=1) - 1
        chosen = nb[rows, np.argmax(tied & (rank == pick[:, None]), axis=1)]
        nxt = np.where(guided, np.where(nxt_untried, d + 1, chosen), nxt)
        return nxt.astype(np.int64)

    def decide(self, states: States) -> Decisions:
        dec = self._boinet_decide(states)
        return apply_rules(self.rules, RuleContext(states, dec.dose, None), dec)

    def _boinet_decide(self, states: States) -> Decisions:
        """The decision as ``boinet`` makes it (before the shared rules)."""
        c = self.config
        nd = c.n_doses
        d = states.current
        rows = np.arange(states.n_states)
        adm = self.admissible(states)
        nxt = self.move(states)
        idx = np.arange(nd)[None, :]
        out = nxt.copy()
        stop = np.zeros(states.n_states, bool)
        below = nxt < 0
        out = np.where(below, 0, out)
        stop |= below & ~adm[:, 0]
        out = np.where(nxt >= nd, nd - 1, out)
        inner = (nxt >= 0) & (nxt < nd)
        nxt_c = np.clip(nxt, 0, nd - 1)
        bad = inner & ~adm[rows, nxt_c]
        higher = np.where(adm & (idx >= nxt_c[:, None]), idx, nd).min(axis=1)
        lower = np.where(adm & (idx <= nxt_c[:, None]), idx, -1).max(axis=1)
        esc = bad & (d < nxt)
        out = np.where(esc, np.where(higher < nd, higher, d), out)
        de = bad & (d >= nxt)
        out = np.where(de & (lower >= 0), lower, out)
        stop |= de & (lower < 0)
        dec = Decisions.go(np.where(stop, d, out).astype(np.int64), c.cohort_size)
        none = ~adm.any(axis=1)
        dec = dec.with_stop(none, StopReason.NO_ACCEPTABLE)
        dec = dec.with_stop((states.n >= c.stopping_npts).any(axis=1), StopReason.N_AT_DOSE)
        return dec.with_stop(stop, StopReason.NO_ACCEPTABLE)

    def select(self, states: States) -> IntArray:
        """The OBD of the final data (:data:`NO_DOSE` when the trial stopped early or no dose qualifies)."""
        xt, xe = self._scores(states)
        uniq, inverse = states.unique()
        early = self._boinet_decide(uniq).reason == np.int8(StopReason.NO_ACCEPTABLE)
        ux, ue = uniq.tox_score, uniq.eff_score
        out = np.array([NO_DOSE if early[i] else gboinet_obd(self.config, uniq.n[i], ux[i], ue[i])
                        for i in range(uniq.n_states)], np.int64)
        return select_with_rules(self.rules, RuleContext(states, out[inverse], None))

    def explain(self, states: States, **options: Any) -> "GboinEtExplanation":
        """Mean scores, admissibility and the OBD if the trial ended now, for the first state."""
        one = states.take(slice(0, 1))
        xt, xe = self._scores(one)
        n = one.n[0].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            mt = np.where(n > 0, xt[0] / n, np.nan)
            me = np.where(n > 0, xe[0] / n, np.nan)
        l1, l2, e1 = self.lambdas
        sel = int(self.select(one)[0])
        return GboinEtExplanation(
            lambda1=l1, lambda2=l2, eta1=e1, current_dose=int(one.current[0]) + 1,
            mean_nets=tuple(float(v) for v in mt), mean_nees=tuple(float(v) for v in me),
            admissible=tuple(bool(v) for v in self.admissible(one)[0]), obd_now=None if sel < 0 else sel + 1)


@dataclass(frozen=True, slots=True)
class GboinEtExplanation(ExplanationMixin):
    """What a gBOIN-ET decision rests on, for one state (doses 1-based).

    Attributes
    ----------
    lambda1, lambda2, eta1
        The toxicity and efficacy boundaries (``boinet::gridoptim``).
    current_dose
        The last cohort's dose.
    mean_nets, mean_nees, admissible
        Per dose: mean nETS and nEES (NaN untried) and admissibility.
    obd_now
        The OBD if the trial ended now (None: none).
    """

    lambda1: float
    lambda2: float
    eta1: float
    current_dose: int
    mean_nets: tuple[float, ...]
    mean_nees: tuple[float, ...]
    admissible: tuple[bool, ...]
    obd_now: int | None
    rule: str = ("gBOIN-ET (Takeda et al. 2022): escalate if mean nETS <= lambda1 and mean nEES <= eta1; stay if "
                 "mean nETS < lambda2 and mean nEES > eta1; de-escalate if mean nETS >= lambda2; otherwise the "
                 "neighbour of highest mean nEES; only admissible doses")

    def table(self) -> dict[str, list]:
        return {"mean_nets": list(self.mean_nets), "mean_nees": list(self.mean_nees),
                "admissible": list(self.admissible)}

    def details(self) -> dict[str, object]:
        return {"rule": self.rule, "lambda1": self.lambda1, "lambda2": self.lambda2, "eta1": self.eta1,
                "current_dose": self.current_dose, "obd_now": self.obd_now}


ENTRY = DesignEntry(
    kind="gboin_et", name="Generalised BOIN-ET on graded toxicity and ordinal efficacy (gBOIN-ET)",
    config=GboinEtConfig, design=GboinEtDesign, explanation=GboinEtExplanation,
    methods="escalade.reports.methods_gboin:gboin_et_methods",
    citation="Takeda K, Morita S, Taguri M (2022). gBOIN-ET: the generalized Bayesian optimal interval design for "
             "optimal dose-finding accounting for ordinal graded efficacy and toxicity in early clinical trials. "
             "Biom J 64(7):1178-1191.",
    aliases=("gboinet", "gboin-et"))
