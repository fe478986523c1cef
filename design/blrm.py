"""Bayesian logistic regression model (BLRM) with escalation with overdose control (EWOC).

Neuenschwander, Branson & Gsponer (2008), Stat Med 27:2420-2439; EWOC after
Babb, Rogatko & Zacks (1998), Stat Med 17:1103-1120; interval probabilities
and parameterisation as the R package OncoBayes2 (``blrm_exnex``, single agent).

Model
-----
For dose amount :math:`d` and reference dose :math:`d^*`,

.. math::

    \\operatorname{logit} p(d) = \\log\\alpha + \\beta \\log(d / d^*), \\qquad
    \\theta = (\\log\\alpha, \\log\\beta) \\sim \\sum_k w_k\\, N_2(m_k, \\Sigma_k),

one bivariate normal component (correlation allowed) or a mixture. With
:math:`n_j` patients and :math:`y_j` DLTs at dose :math:`d_j` the likelihood is
:math:`\\prod_j p(d_j)^{y_j}\\{1 - p(d_j)\\}^{n_j - y_j}`: a function of the
per-dose counts only.

Rules
-----
Per dose, the posterior probabilities of under-dosing :math:`[0, c_1)`, target
toxicity :math:`[c_1, c_2)` and over-dosing :math:`[c_2, 1]` (defaults
:math:`c_1 = 0.16`, :math:`c_2 = 0.33`). A dose is *eligible* (EWOC) when
:math:`\\Pr(p(d) \\ge c_2 \\mid D) <` ``ewoc`` (0.25). The model recommends the
eligible dose with the largest :math:`\\Pr(\\text{target})` (``criterion="target"``;
ties to the lower dose) or the highest eligible dose (``criterion="highest"``).
Around it, order-free trial rules (:mod:`escalade.design.crm_rules`): no
skipping of untried levels, a maximum escalation step (next amount at most
``max_step`` times the current one), stop when no dose is eligible (safety),
stop when enough patients were treated at the recommended dose (optionally
only when its target probability is high enough), no stop before ``min_n``.
The final MTD is the recommended dose on all data, by the same criteria.

Numerics
--------
The posterior is integrated on one fixed grid per configuration: ``grid_points``
nodes per axis over the prior's mean :math:`\\pm` ``grid_width`` SDs in
:math:`(\\log\\alpha, \\log\\beta)` (the union of the components' boxes for a
mixture). For a batch of ``S`` states the log posterior is one matrix product
``[tox, n - tox][S, 2D] @ [log p; log(1 - p)][2D, G]`` plus the log prior,
then one ``exp`` and one product with a ``(G, 1 + 4D + 1)`` weight matrix that
holds the normaliser, the two CDF values per dose, the posterior means of
:math:`p(d_j)` and the mass near the edge of the grid.

* Smooth integrands (normaliser, means) use equal weights, the trapezoidal rule
  on a function that vanishes at the box's edge (error decreasing geometrically
  with the nodes per posterior SD).
* Interval probabilities are CDFs of :math:`\\eta_j = \\log\\alpha + e^{\\log\\beta} x_j`:
  for each row of the grid (fixed :math:`\\log\\beta`) the condition
  :math:`\\eta_j < \\operatorname{logit} c` is a half-line in :math:`\\log\\alpha`,
  integrated exactly for the piecewise cubic (four-point Lagrange) interpolant
  of the row; the rows are then summed (trapezoidal rule again, the row
  integrals being smooth in :math:`\\log\\beta`). The CDF is thus a fixed linear
  functional of the grid values (no indicator's jump on the grid), error
  :math:`O(h^4)`.
* Quantiles of :math:`p(d)` (single fits) invert the same CDF by bisection.
* Determinism: no BLAS. The two contractions are compiled loops
  (:mod:`escalade.design.blrm_kernels`) with a fixed order of operations per
  state, and the rest is element-wise, so a state's summaries are the same,
  bit for bit, whatever the batch (tested).

Accuracy against a long NUTS run (:mod:`escalade.design.blrm_pymc`, stored in
``validation/reference/blrm/``) and against a brute-force 1,600 x 1,600 grid is tested.

Examples
--------
OncoBayes2's single-agent example (``hist_SA``, reference dose 50):

>>> cfg = BlrmConfig(n_doses=5, doses=(1, 2.5, 5, 10, 25), reference_dose=50)
>>> fit = blrm_fit(cfg, n=[3, 4, 5, 4, 2], tox=[0, 0, 0, 0, 2])
>>> [round(v, 3) for v in fit.prob_over]
[0.0, 0.0, 0.001, 0.037, 0.67]
>>> fit.eligible, fit.recommended   # dose 5 fails EWOC; dose 4 has the highest P(target)
((True, True, True, True, False), 3)
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

import numpy as np
from scipy import special

from escalade.design.base import (ConfigDesign, NO_DOSE, Decisions, DesignEntry, ExplanationMixin, FloatArray, IntArray,
                                  States, StopReason)
from escalade.design.blrm_kernels import counts_loglik_rows, grid_sums_rows, pairwise_plan
from escalade.design.config import check_fraction, check_int, check_positive, check_trial_size
from escalade.design.rules import (Effect, Rule, RuleContext, SharedRules, StopAtN, apply_rules, shared_rules,
                                   state_fields as rules_state_fields)
from escalade.design.errors import ConfigError, did_you_mean
from escalade.design.state_cache import StateCache

__all__ = [
    "BlrmConfig",
    "BlrmModel",
    "BlrmFit",
    "BlrmSummary",
    "BlrmExplanation",
    "BlrmDesign",
    "blrm_fit",
    "blrm_recommend",
    "MaxStep",
    "NoEligibleDose",
    "StopAtTarget",
    "SummaryCache",
    "ENTRY",
]

log = logging.getLogger(__name__)

_BLOCK: Final[int] = 32            # states per block (bounds the (block, G) buffer; results never depend on it)
_EDGE: Final[float] = 0.05         # "edge" = outer 5% of the grid on each side (diagnostic)
_EDGE_WARN: Final[float] = 1e-4    # warn when more posterior mass than this lies at the edge
_BISECT: Final[int] = 60           # bisection steps for quantiles (interval 60 logits wide -> 5e-17)
_CRITERIA: Final[tuple[str, ...]] = ("target", "highest")
_NO_SKIP: Final[tuple[str, ...]] = ("current", "tried", "off")
_LFULL: Final[np.ndarray] = np.array([-1.0, 13.0, 13.0, -1.0]) / 24.0   # cubic cell weights, offsets -1..2
_OFFSETS: Final[tuple[int, ...]] = (-1, 0, 1, 2)
_PAD: Final[int] = 3


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(name, value, f"must be one of {list(choices)}{did_you_mean(str(value), choices)}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _pair(name: str, v: Any) -> tuple[float, float]:
    if isinstance(v, (str, bytes)) or not isinstance(v, (Sequence, np.ndarray)) or len(v) != 2 \
            or not all(_is_number(x) for x in v):
        raise ConfigError(name, v, "must be two numbers: [log alpha, log beta]")
    return float(v[0]), float(v[1])


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class BlrmConfig(SharedRules):
    """BLRM-EWOC parameters, with OncoBayes2's and Neuenschwander et al.'s names.

    Attributes
    ----------
    n_doses, doses
        Number of dose levels and their amounts (any unit, increasing; filled
        from the study file).
    reference_dose
        :math:`d^*`, where :math:`\\operatorname{logit} p = \\log\\alpha`. ``None``:
        the amount of the middle dose level (level ``(n_doses + 1) // 2``).
    prior_mean, prior_sd, prior_corr
        Bivariate normal prior of :math:`(\\log\\alpha, \\log\\beta)`: means, SDs and
        correlation. Default :math:`N((\\operatorname{logit} 0.5, \\log 1), \\operatorname{diag}(2^2, 1^2))`,
        OncoBayes2's weakly informative example prior.
    mixture
        Mixture prior instead: a list of components, each
        ``{weight, mean: [la, lb], sd: [la, lb], corr}`` (or six numbers
        ``[weight, mean_la, mean_lb, sd_la, sd_lb, corr]``); weights are
        normalised. Empty (default): the single component above.
    target_interval
        :math:`(c_1, c_2)`: under-dosing :math:`[0, c_1)`, target :math:`[c_1, c_2)`,
        over-dosing :math:`[c_2, 1]`.
    ewoc
        A dose is eligible iff :math:`\\Pr(\\text{over-dosing}) <` ``ewoc``.
    criterion
        ``"target"``: the eligible dose maximising :math:`\\Pr(\\text{target})`;
        ``"highest"``: the highest eligible dose.
    cohort_size, max_n, start_dose
        Study settings (``start_dose`` 0-based).
    no_skip
        ``"current"``: next dose at most one level above the current dose;
        ``"tried"``: at most one above the highest dose tried; ``"off"``.
    max_step
        Next dose amount at most ``max_step`` times the current dose's (e.g. 2
        for a 100% increment); ``None``: no such limit.
    safety_min_n
        The trial stops when no dose is eligible, once this many patients were treated.
    stop_n_at_dose, stop_prob_target
        Stop when ``stop_n_at_dose`` patients were treated at the recommended
        dose (and, if set, its :math:`\\Pr(\\text{target}) \\ge` ``stop_prob_target``).
    min_n
        No stop other than the safety stop before this many patients.
    select_tried_only
        Final MTD among doses given to at least one patient (default: any dose,
        the same criteria as during the trial).
    grid_points, grid_width
        Nodes per axis of the integration grid and its half-width in prior SDs.
    """

    n_doses: int
    doses: tuple[float, ...]
    reference_dose: float | None = None
    prior_mean: tuple[float, float] = (0.0, 0.0)
    prior_sd: tuple[float, float] = (2.0, 1.0)
    prior_corr: float = 0.0
    mixture: tuple[tuple[float, ...], ...] = ()
    target_interval: tuple[float, float] = (0.16, 0.33)
    ewoc: float = 0.25
    criterion: Literal["target", "highest"] = "target"
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    no_skip: Literal["current", "tried", "off"] = "current"
    max_step: float | None = None
    safety_min_n: int = 0
    stop_n_at_dose: int | None = None
    stop_prob_target: float | None = None
    min_n: int = 0
    select_tried_only: bool = False
    grid_points: int = 161
    grid_width: float = 7.0
    reference_dose_used: float = field(init=False)

    def __post_init__(self) -> None:
        self.check_rules()
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        doses = self.doses
        if isinstance(doses, (str, bytes)) or not isinstance(doses, (Sequence, np.ndarray)):
            raise ConfigError("doses", doses, "must be a list of dose amounts, one per dose level")
        if len(doses) != self.n_doses:
            raise ConfigError("doses", list(doses), f"must have one amount per dose ({self.n_doses}); got {len(doses)}")
        if not all(_is_number(d) and d > 0 for d in doses):
            raise ConfigError("doses", list(doses), "must be positive dose amounts (the model uses log(d / d*))")
        doses = tuple(float(d) for d in doses)
        if any(not b > a for a, b in zip(doses, doses[1:])):
            raise ConfigError("doses", list(doses), "must increase strictly")
        object.__setattr__(self, "doses", doses)
        if self.reference_dose is None:
            ref = doses[(self.n_doses - 1) // 2]
        else:
            check_positive("reference_dose", self.reference_dose)
            ref = float(self.reference_dose)
        object.__setattr__(self, "reference_dose_used", ref)
        object.__setattr__(self, "prior_mean", _pair("prior_mean", self.prior_mean))
        sd = _pair("prior_sd", self.prior_sd)
        if not min(sd) > 0:
            raise ConfigError("prior_sd", list(sd), "must be two positive standard deviations")
        object.__setattr__(self, "prior_sd", sd)
        if not (_is_number(self.prior_corr) and -1.0 < self.prior_corr < 1.0):
            raise ConfigError("prior_corr", self.prior_corr, "must be a correlation strictly between -1 and 1")
        object.__setattr__(self, "mixture", _mixture(self.mixture))
        ti = self.target_interval
        if isinstance(ti, (str, bytes)) or not isinstance(ti, (Sequence, np.ndarray)) or len(ti) != 2:
            raise ConfigError("target_interval", ti, "must be two DLT probabilities [c1, c2] (e.g. [0.16, 0.33])")
        for i, v in enumerate(ti):
            check_fraction(f"target_interval[{i}]", v)
        if not ti[0] < ti[1]:
            raise ConfigError("target_interval", list(ti), "must increase: under-dosing below c1, over-dosing from c2")
        object.__setattr__(self, "target_interval", (float(ti[0]), float(ti[1])))
        check_fraction("ewoc", self.ewoc)
        _check_choice("criterion", self.criterion, _CRITERIA)
        _check_choice("no_skip", self.no_skip, _NO_SKIP)
        if self.max_step is not None:
            check_positive("max_step", self.max_step)
            if not self.max_step > 1.0:
                raise ConfigError("max_step", self.max_step, "must exceed 1 (e.g. 2 for a 100% increment) or be null")
            blocked = [j for j in range(self.n_doses - 1) if doses[j + 1] > self.max_step * doses[j] * (1 + 1e-12)]
            if blocked:
                j = blocked[0]
                raise ConfigError("max_step", self.max_step,
                                  f"forbids any escalation from dose level {j + 1} ({doses[j]:g}) to level {j + 2} "
                                  f"({doses[j + 1]:g}, x{doses[j + 1] / doses[j]:.3g}); raise it to at least "
                                  f"{max(doses[k + 1] / doses[k] for k in range(self.n_doses - 1)):.3g} or set "
                                  f"null and use no_skip")
        check_int("safety_min_n", self.safety_min_n, low=0)
        if self.stop_n_at_dose is not None:
            check_int("stop_n_at_dose", self.stop_n_at_dose, low=1)
        if self.stop_prob_target is not None:
            check_fraction("stop_prob_target", self.stop_prob_target)
            if self.stop_n_at_dose is None:
                raise ConfigError("stop_prob_target", self.stop_prob_target, "needs stop_n_at_dose as well")
        check_int("min_n", self.min_n, low=0, high=self.max_n, what=f"an integer in [0, max_n = {self.max_n}]")
        check_int("grid_points", self.grid_points, low=41, high=1001, what="an integer in [41, 1001]")
        check_positive("grid_width", self.grid_width)
        if not 4.0 <= self.grid_width <= 20.0:
            raise ConfigError("grid_width", self.grid_width, "must lie in [4, 20] prior SDs (default 7)")

    def components(self) -> list[tuple[float, tuple[float, float], tuple[tuple[float, float], ...]]]:
        """Prior components ``(weight, mean, covariance)`` (weights summing to 1)."""
        comps = self.mixture or ((1.0, *self.prior_mean, *self.prior_sd, self.prior_corr),)
        total = sum(c[0] for c in comps)
        out = []
        for w, m1, m2, s1, s2, r in comps:
            cov = ((s1 * s1, r * s1 * s2), (r * s1 * s2, s2 * s2))
            out.append((w / total, (m1, m2), cov))
        return out


def _mixture(mix: Any) -> tuple[tuple[float, ...], ...]:
    if mix is None:
        return ()
    if isinstance(mix, (str, bytes, Mapping)) or not isinstance(mix, (Sequence, np.ndarray)):
        raise ConfigError("mixture", mix, "must be a list of components {weight, mean, sd, corr}")
    out = []
    for k, c in enumerate(mix):
        name = f"mixture[{k}]"
        if isinstance(c, Mapping):
            extra = set(c) - {"weight", "mean", "sd", "corr"}
            if extra:
                raise ConfigError(f"{name}.{sorted(extra)[0]}", c[sorted(extra)[0]],
                                  "is not a component field; allowed: weight, mean, sd, corr")
            for key in ("weight", "mean", "sd"):
                if key not in c:
                    raise ConfigError(f"{name}.{key}", None, "is required (a component has weight, mean, sd, corr)")
            m, s = _pair(f"{name}.mean", c["mean"]), _pair(f"{name}.sd", c["sd"])
            vals = (c["weight"], *m, *s, c.get("corr", 0.0))
        elif isinstance(c, (Sequence, np.ndarray)) and not isinstance(c, (str, bytes)) and len(c) == 6:
            vals = tuple(c)
        else:
            raise ConfigError(name, c, "must be {weight, mean: [la, lb], sd: [la, lb], corr} or six numbers "
                                       "[weight, mean_la, mean_lb, sd_la, sd_lb, corr]")
        if not all(_is_number(v) for v in vals):
            raise ConfigError(name, list(vals), "must hold finite numbers")
        w, m1, m2, s1, s2, r = (float(v) for v in vals)
        check_positive(f"{name}.weight", w)
        check_positive(f"{name}.sd[0]", s1)
        check_positive(f"{name}.sd[1]", s2)
        if not -1.0 < r < 1.0:
            raise ConfigError(f"{name}.corr", r, "must be a correlation strictly between -1 and 1")
        out.append((w, m1, m2, s1, s2, r))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# quadrature


def _partial_weights(t: np.ndarray) -> np.ndarray:
    """``(..., 4)``: integrals over ``[0, t]`` of the Lagrange basis on nodes -1, 0, 1, 2 (unit step)."""
    t = np.asarray(t, float)
    t2, t3, t4 = t * t, t ** 3, t ** 4
    return np.stack([
        -(t4 / 4 - t3 + t2) / 6,
        (t4 / 4 - 2 * t3 / 3 - t2 / 2 + 2 * t) / 2,
        -(t4 / 4 - t3 / 3 - t2) / 2,
        (t4 / 4 - t2 / 2) / 6,
    ], axis=-1)


def _cdf_weights(u: np.ndarray, na: int) -> np.ndarray:
    """Weights ``(..., na)`` with ``w @ f`` = integral of the row's cubic interpolant below ``u``.

    ``u`` is the threshold in units of the step from the first node. Outside
    the nodes the row is 0 (three zero nodes each side); every node's weights
    over all cells sum to exactly 1, so ``u`` beyond the grid gives ``sum(f)``.
    """
    u = np.clip(np.asarray(u, float), -2.0, na + 1.0)
    k = np.clip(np.floor(u), -2, na).astype(np.int64)
    t = u - k
    lt = _partial_weights(t)
    i = np.arange(na)
    w = np.zeros(u.shape + (na,))
    for idx, o in enumerate(_OFFSETS):
        m = i - o                                   # the cell in which node i is offset o
        w += np.where((m >= -2) & (m <= k[..., None] - 1), _LFULL[idx], 0.0)
        w += np.where(i == k[..., None] + o, lt[..., idx, None], 0.0)
    return w


@dataclass(frozen=True, slots=True, eq=False)
class BlrmSummary:
    """Posterior summaries of a batch of states at the design's doses (``(S, D)`` arrays).

    ``prob_under``, ``prob_target``, ``prob_over``: interval probabilities;
    ``mean``: posterior mean of :math:`p(d_j)`; ``edge_mass``: ``(S,)`` share of
    the posterior within 5% of the grid's edge (should be ~0); ``mean_alpha``,
    ``mean_beta``: ``(S,)`` posterior means of :math:`\alpha` and :math:`\beta`
    (for plug-in estimates, as bcrm's two-parameter logistic CRM uses).
    """

    prob_under: FloatArray
    prob_target: FloatArray
    prob_over: FloatArray
    mean: FloatArray
    edge_mass: FloatArray
    mean_alpha: FloatArray | None = None
    mean_beta: FloatArray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class BlrmModel:
    """The BLRM posterior on a fixed grid, for a batch of per-dose counts.

    Built once per configuration (:meth:`from_config`); :meth:`summarise`
    gives the interval probabilities at the design's doses for many states,
    :meth:`fit_one` everything (quantiles too) for one state at any doses.
    """

    doses: tuple[float, ...]
    reference_dose: float
    components: tuple[tuple[float, tuple[float, float], tuple[tuple[float, float], ...]], ...]
    target_interval: tuple[float, float]
    grid_points: int = 161
    grid_width: float = 7.0
    positions: tuple[float, ...] | None = None
    a: np.ndarray = field(init=False, repr=False)
    b: np.ndarray = field(init=False, repr=False)
    log_prior: np.ndarray = field(init=False, repr=False)
    log_terms: np.ndarray = field(init=False, repr=False)
    weights: np.ndarray = field(init=False, repr=False)
    _weights_gj: np.ndarray = field(init=False, repr=False)
    _plan: np.ndarray = field(init=False, repr=False)

    @classmethod
    def from_config(cls, c: BlrmConfig) -> "BlrmModel":
        return cls(doses=c.doses, reference_dose=c.reference_dose_used, components=tuple(c.components()),
                   target_interval=c.target_interval, grid_points=c.grid_points, grid_width=c.grid_width)

    def __post_init__(self) -> None:
        L, n = self.grid_width, self.grid_points
        lo = np.min([[m[0] - L * math.sqrt(s[0][0]), m[1] - L * math.sqrt(s[1][1])]
                     for _, m, s in self.components], axis=0)
        hi = np.max([[m[0] + L * math.sqrt(s[0][0]), m[1] + L * math.sqrt(s[1][1])]
                     for _, m, s in self.components], axis=0)
        a = np.linspace(lo[0], hi[0], n)
        b = np.linspace(lo[1], hi[1], n)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        A, B = np.meshgrid(a, b)                                 # rows: log beta, columns: log alpha
        theta = np.stack([A.ravel(), B.ravel()], axis=1)        # (G, 2), g = j * n + i
        object.__setattr__(self, "log_prior", self._log_prior(theta))
        x = self.x
        eta = theta[:, :1] + np.exp(theta[:, 1:2]) * x[None, :]  # (G, D)
        # rows: log p(d_j) for the DLTs, then log(1 - p(d_j)) for the others
        object.__setattr__(self, "log_terms", np.ascontiguousarray(
            np.concatenate([-np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)], axis=1).T))
        d = x.size
        lc = special.logit(np.asarray(self.target_interval))
        h = a[1] - a[0]
        cols = [np.ones(a.size * b.size)]
        for c in lc:                                              # CDF at c1, then at c2, per dose
            thr = c - np.exp(b)[:, None] * x[None, :]           # (n_b, D): the log-alpha threshold per row
            w = _cdf_weights((thr - a[0]) / h, a.size)          # (n_b, D, n_a)
            cols.extend(w[:, j, :].ravel() for j in range(d))
        cols.extend(special.expit(eta[:, j]) for j in range(d))
        cols.extend([np.exp(theta[:, 0]), np.exp(theta[:, 1])])
        m = max(1, int(round(_EDGE * n)))
        edge = np.zeros((b.size, a.size), bool)
        edge[:m, :] = edge[-m:, :] = edge[:, :m] = edge[:, -m:] = True
        cols.append(edge.ravel().astype(float))
        object.__setattr__(self, "weights", np.ascontiguousarray(np.stack(cols, axis=1)))
        # grid-major weights for the compiled grid sums, padded with zero columns to a multiple of 4 (the
        # kernel's vector width; a column's sums never read another's)
        j = self.weights.shape[1]
        wp = np.zeros((self.weights.shape[0], -(-j // 4) * 4))
        wp[:, :j] = self.weights
        object.__setattr__(self, "_weights_gj", wp)
        object.__setattr__(self, "_plan", pairwise_plan(self.weights.shape[0]))

    def __reduce__(self) -> tuple[Any, tuple]:
        """Pickle the defining numbers only (not ~10 MB of grid tables): the receiving process builds the
        model once (:func:`_shared_model`) and reuses it for every later copy (one per work unit)."""
        return (_shared_model, self.cache_key()[1:])

    def cache_key(self) -> tuple:
        """The numbers that define the posterior summaries (equal keys: equal summaries, bit for bit)."""
        return ("blrm", self.doses, self.reference_dose, self.components, self.target_interval, self.grid_points,
                self.grid_width, self.positions)

    @property
    def x(self) -> np.ndarray:
        """:math:`\\log(d_j / d^*)`, or the given ``positions`` (e.g. bcrm's standardised doses)."""
        if self.positions is not None:
            return np.asarray(self.positions, float)
        return np.log(np.asarray(self.doses, float) / self.reference_dose)

    @property
    def n_doses(self) -> int:
        return len(self.doses)

    def _log_prior(self, theta: np.ndarray) -> np.ndarray:
        parts = []
        for w, m, s in self.components:
            cov = np.asarray(s, float)
            dev = theta - np.asarray(m, float)
            quad = np.einsum("gi,ij,gj->g", dev, np.linalg.inv(cov), dev)
            parts.append(math.log(w) - 0.5 * math.log(np.linalg.det(2 * math.pi * cov)) - 0.5 * quad)
        return special.logsumexp(np.stack(parts), axis=0)

    def _log_post(self, n: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Unnormalised log posterior ``(S, G)`` (fixed-shape blocks are the caller's job)."""
        counts = np.concatenate([y, n - y], axis=1).astype(float)
        return counts @ self.log_terms + self.log_prior

    def summarise(self, n: Any, tox: Any) -> BlrmSummary:
        """Interval probabilities, posterior means and edge mass for a batch of counts ``(S, D)``.

        States are processed in blocks of at most ``_BLOCK`` (a ``(block, G)``
        buffer); every operation is per state (the compiled contractions) or
        element-wise, so a state's numbers do not depend on the batch.
        """
        n_ = np.atleast_2d(np.asarray(n, np.int64))
        y = np.atleast_2d(np.asarray(tox, np.int64))
        d = self.n_doses
        if n_.shape[1] != d or y.shape != n_.shape:
            raise ValueError(f"n and tox need shape (S, {d}); got {n_.shape} and {y.shape}")
        if np.any(n_ < 0) or np.any(y < 0) or np.any(y > n_):
            raise ValueError("n must be >= 0 and tox between 0 and n at every dose")
        s = n_.shape[0]
        out = np.empty((s, self.weights.shape[1]))
        # no BLAS: both contractions are element-wise sums in a fixed order (crm.counts_loglik, crm.grid_sums,
        # here their compiled kernels called directly), so a state's numbers are the same in any batch and for
        # any number of threads, with no thread pool to set
        wgj, plan, nj = self._weights_gj, self._plan, self.weights.shape[1]
        for lo in range(0, s, _BLOCK):
            hi = min(lo + _BLOCK, s)
            cnt = np.concatenate([y[lo:hi], n_[lo:hi] - y[lo:hi]], axis=1).astype(np.float64)
            buf = counts_loglik_rows(cnt, self.log_terms)
            buf += self.log_prior
            buf -= buf.max(axis=1, keepdims=True)
            np.exp(buf, out=buf)
            out[lo:hi] = grid_sums_rows(buf, wgj, plan)[:, :nj]
        z = out[:, :1]
        cdf1 = out[:, 1:1 + d] / z
        cdf2 = out[:, 1 + d:1 + 2 * d] / z
        return BlrmSummary(prob_under=cdf1, prob_target=cdf2 - cdf1, prob_over=1.0 - cdf2,
                           mean=out[:, 1 + 2 * d:1 + 3 * d] / z, edge_mass=out[:, -1] / z[:, 0],
                           mean_alpha=out[:, -3] / z[:, 0], mean_beta=out[:, -2] / z[:, 0])

    def density(self, n: Any, tox: Any) -> np.ndarray:
        """Normalised posterior weights of one state on the grid, ``(n_b, n_a)`` (sum 1)."""
        n_ = np.asarray(n, np.int64).reshape(1, -1)
        y = np.asarray(tox, np.int64).reshape(1, -1)
        lp = self._log_post(n_, y)[0]
        f = np.exp(lp - lp.max())
        return (f / f.sum()).reshape(self.b.size, self.a.size)

    def cdf(self, f: np.ndarray, x: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """:math:`\\Pr(\\eta(x) < e)` for dose positions ``x`` and levels ``eta`` (broadcast), density ``f``."""
        a, b = self.a, self.b
        h = a[1] - a[0]
        na = a.size
        fp = np.pad(f, ((0, 0), (_PAD, _PAD)))
        cells = sum(_LFULL[i] * fp[:, i:i + na + 3] for i in range(4))         # cells m = -2 .. na
        cum = np.concatenate([np.zeros((b.size, 1)), np.cumsum(cells, axis=1)], axis=1)
        xx, ee = np.broadcast_arrays(np.asarray(x, float), np.asarray(eta, float))
        u = (ee[..., None] - np.exp(b) * xx[..., None] - a[0]) / h              # (..., n_b)
        u = np.clip(u, -2.0, na + 1.0)
        k = np.clip(np.floor(u), -2, na).astype(np.int64)
        lt = _partial_weights(u - k)
        rows = np.arange(b.size)
        val = cum[rows, k + 2]
        for idx, o in enumerate(_OFFSETS):
            val = val + lt[..., idx] * fp[rows, k + o + _PAD]
        return val.sum(axis=-1)

    def fit_one(self, n: Any, tox: Any, doses: Sequence[float] | None = None,
                quantiles: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, np.ndarray]:
        """Summaries of one state at ``doses`` (default: the design's): interval probabilities,
        mean and SD of :math:`p(d)`, quantiles of :math:`p(d)`, edge mass."""
        f = self.density(n, tox)
        xe = self.x if doses is None else np.log(np.asarray(doses, float) / self.reference_dose)
        return self.fit_positions(f, xe, quantiles)

    def fit_positions(self, f: np.ndarray, xe: np.ndarray,
                      quantiles: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, np.ndarray]:
        """:meth:`fit_one` for a density ``f`` (:meth:`density`) at model positions ``xe``."""
        xe = np.asarray(xe, float)
        lc = special.logit(np.asarray(self.target_interval))
        c1 = self.cdf(f, xe, lc[0])
        c2 = self.cdf(f, xe, lc[1])
        A, B = np.meshgrid(self.a, self.b)
        p = special.expit(A[..., None] + np.exp(B)[..., None] * xe)
        mean = np.einsum("ij,ijk->k", f, p)
        sd = np.sqrt(np.maximum(np.einsum("ij,ijk->k", f, p * p) - mean ** 2, 0.0))
        q = np.asarray(quantiles, float)
        lo = np.full((xe.size, q.size), -30.0)
        hi = np.full((xe.size, q.size), 30.0)
        for _ in range(_BISECT):
            mid = 0.5 * (lo + hi)
            below = self.cdf(f, xe[:, None], mid) < q[None, :]
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        m = max(1, int(round(_EDGE * self.grid_points)))
        edge = 1.0 - f[m:-m, m:-m].sum()
        return {"prob_under": c1, "prob_target": c2 - c1, "prob_over": 1.0 - c2, "mean": mean, "sd": sd,
                "quantiles": special.expit(0.5 * (lo + hi)), "edge_mass": np.float64(edge)}


# --------------------------------------------------------------------------------------------
# the rule on one or many states


def blrm_recommend(c: BlrmConfig, prob_target: np.ndarray, prob_over: np.ndarray,
                   n: np.ndarray | None = None) -> tuple[np.ndarray, IntArray]:
    """EWOC eligibility ``(S, D)`` and the model's dose ``(S,)`` (NO_DOSE where none is eligible).

    With ``n`` given and ``select_tried_only``, only doses with patients count (final selection).
    """
    elig = np.atleast_2d(prob_over) < c.ewoc
    if n is not None and c.select_tried_only:
        elig = elig & (np.atleast_2d(n) > 0)
    d = elig.shape[1]
    if c.criterion == "target":
        best = np.argmax(np.where(elig, np.atleast_2d(prob_target), -np.inf), axis=1)  # ties: lowest dose
    else:
        best = d - 1 - np.argmax(elig[:, ::-1], axis=1)
    return elig, np.where(elig.any(axis=1), best, NO_DOSE).astype(np.int64)


@dataclass(frozen=True, slots=True)
class BlrmFit:
    """The BLRM fit to one trial's counts (doses 0-based; per-dose tuples at ``doses``).

    ``eligible`` and ``recommended`` are for the design's doses (the first
    ``n_doses`` entries when extra evaluation doses were asked for).
    """

    doses: tuple[float, ...]
    prob_under: tuple[float, ...]
    prob_target: tuple[float, ...]
    prob_over: tuple[float, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    q025: tuple[float, ...]
    q50: tuple[float, ...]
    q975: tuple[float, ...]
    eligible: tuple[bool, ...]
    recommended: int
    edge_mass: float


def blrm_fit(config: BlrmConfig, n: Sequence[int], tox: Sequence[int], *,
             extra_doses: Sequence[float] = (), model: BlrmModel | None = None) -> BlrmFit:
    """Posterior summaries, EWOC eligibility and the model's dose for one trial's counts.

    ``extra_doses`` adds evaluation points (e.g. the reference dose) after the
    design's doses.
    """
    m = BlrmModel.from_config(config) if model is None else model
    doses = tuple(config.doses) + tuple(float(v) for v in extra_doses)
    r = m.fit_one(n, tox, doses)
    d = config.n_doses
    elig, rec = blrm_recommend(config, r["prob_target"][None, :d], r["prob_over"][None, :d])
    q = r["quantiles"]

    def tup(v: np.ndarray) -> tuple[float, ...]:
        return tuple(float(x) for x in v)

    return BlrmFit(doses, tup(r["prob_under"]), tup(r["prob_target"]), tup(r["prob_over"]), tup(r["mean"]),
                   tup(r["sd"]), tup(q[:, 0]), tup(q[:, 1]), tup(q[:, 2]), tuple(bool(v) for v in elig[0]),
                   int(rec[0]), float(r["edge_mass"]))


# --------------------------------------------------------------------------------------------
# trial rules specific to the BLRM (they compose with the shared ones, order-free)


@dataclass(frozen=True, slots=True)
class MaxStep:
    """Next dose amount at most ``factor`` times the current dose's amount.

    ``cap[k]`` is the highest level whose amount is within the factor of level ``k``.
    """

    cap: tuple[int, ...]
    name: ClassVar[str] = "max_step"

    def effect(self, ctx: RuleContext) -> Effect:
        return Effect(cap=np.asarray(self.cap, np.int64)[ctx.states.current])


@dataclass(frozen=True, slots=True)
class NoEligibleDose:
    """Stop for safety (no dose selected) when no dose satisfies EWOC, with ``min_n`` patients or more."""

    eligible_any: np.ndarray
    min_n: int = 0
    name: ClassVar[str] = "no_eligible_dose"

    def effect(self, ctx: RuleContext) -> Effect:
        stop = (ctx.states.total_n >= self.min_n) & ~self.eligible_any
        return Effect(stop=stop, reason=StopReason.ALL_TOXIC)


@dataclass(frozen=True, slots=True)
class StopAtTarget:
    """Stop when ``n`` patients were treated at the recommended dose and its
    :math:`\\Pr(\\text{target}) \\ge` ``prob``."""

    n: int
    prob: float
    prob_target: np.ndarray
    name: ClassVar[str] = "stop_at_target"

    def effect(self, ctx: RuleContext) -> Effect:
        rec = ctx.recommended[:, None]
        at = np.take_along_axis(ctx.states.n, rec, axis=1)[:, 0]
        pt = np.take_along_axis(self.prob_target, rec, axis=1)[:, 0]
        return Effect(stop=(at >= self.n) & (pt >= self.prob), reason=StopReason.N_AT_DOSE)


def _step_caps(c: BlrmConfig) -> tuple[int, ...]:
    d = np.asarray(c.doses)
    return tuple(int(np.searchsorted(d, c.max_step * d[k] * (1 + 1e-12), side="right") - 1)
                 for k in range(c.n_doses))


# --------------------------------------------------------------------------------------------
# the design


#: Summaries by state counts, shared by the copies of a design in a process (:mod:`escalade.design.state_cache`;
#: keyed by :meth:`BlrmModel.cache_key`).
SummaryCache = StateCache



@functools.lru_cache(maxsize=16)
def _shared_model(doses: tuple, reference_dose: float, components: tuple, target_interval: tuple, grid_points: int,
                  grid_width: float, positions: tuple | None) -> BlrmModel:
    """The :class:`BlrmModel` of these numbers, built once per process (the target of its pickles)."""
    return BlrmModel(doses=doses, reference_dose=reference_dose, components=components,
                     target_interval=target_interval, grid_points=grid_points, grid_width=grid_width,
                     positions=positions)


@dataclass(frozen=True, slots=True)
class BlrmExplanation(ExplanationMixin):
    """Per-dose posterior summaries, EWOC eligibility and what the rules allow, for one state.

    :meth:`table` gives the per-dose columns; the float and text fields are the
    scalars (``ess`` etc. only for a NUTS fit).
    """

    dose_amount: tuple[float, ...]
    prob_under: tuple[float, ...]
    prob_target: tuple[float, ...]
    prob_over: tuple[float, ...]
    mean: tuple[float, ...]
    q025: tuple[float, ...]
    q50: tuple[float, ...]
    q975: tuple[float, ...]
    eligible: tuple[bool, ...]
    allowed: tuple[bool, ...]
    rule: str
    engine: str
    ewoc: float
    edge_mass: float | None = None
    max_rhat: float | None = None
    ess: float | None = None
    divergences: float | None = None

    def table(self) -> dict[str, list[Any]]:
        names = ("dose_amount", "prob_under", "prob_target", "prob_over", "mean", "q025", "q50", "q975",
                 "eligible", "allowed")
        return {k: list(getattr(self, k)) for k in names}


@dataclass(frozen=True, slots=True)
class BlrmDesign(ConfigDesign):
    """BLRM with EWOC (Neuenschwander et al. 2008) on a deterministic quadrature posterior.

    ``decide``: summaries of every distinct state (memoised by counts), the
    model's dose (eligible dose with highest P(target), or highest eligible),
    then the rules: no skipping / maximum step (caps), stop when no dose is
    eligible (safety), stop at n at the recommended dose, minimum sample size.
    ``select``: the model's dose on all data (NO_DOSE when none is eligible).

    Examples
    --------
    >>> d = BlrmDesign(BlrmConfig(n_doses=5, doses=(1, 2.5, 5, 10, 25), reference_dose=50))
    >>> st = States.from_counts([[3, 0, 0, 0, 0], [3, 4, 5, 4, 2]], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 2]],
    ...                         current=[0, 4])
    >>> d.decide(st).dose.tolist()   # no skipping caps the first at dose 2; the second goes back to dose 4
    [1, 3]
    """

    config: BlrmConfig
    kind: ClassVar[str] = "blrm"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False  # the design memoises summaries by counts itself, across batches
    model: BlrmModel = field(init=False, repr=False, compare=False)
    _cache: SummaryCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", BlrmModel.from_config(self.config))
        object.__setattr__(self, "_cache", SummaryCache(key=self.model.cache_key()))

    @property
    def state_fields(self) -> str:
        """``"all"`` when a trial rule reads the last cohort (the default all-DLT guardrail does)."""
        return rules_state_fields(self.rules)

    def summaries(self, states: States) -> BlrmSummary:
        """:class:`BlrmSummary` of every state, computed once per distinct counts (cached)."""
        d = self.n_doses
        m = np.concatenate([states.n, states.tox], axis=1).astype(np.int64)
        uniq, inverse = np.unique(m, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        cache = self._cache.data
        keys = [row.tobytes() for row in uniq]
        rows = [cache.get(k) for k in keys]
        todo = [i for i, r in enumerate(rows) if r is None]
        if todo:
            idx = np.asarray(todo)
            s = self.model.summarise(uniq[idx, :d], uniq[idx, d:])
            new = np.concatenate([s.prob_under, s.prob_target, s.prob_over, s.mean, s.edge_mass[:, None]], axis=1)
            bad = s.edge_mass > _EDGE_WARN
            if bad.any():
                j = int(idx[np.argmax(bad)])
                log.warning("BLRM posterior: %.2g of the mass lies at the edge of the grid for n=%s, tox=%s; "
                            "widen grid_width", float(s.edge_mass.max()), uniq[j, :d].tolist(), uniq[j, d:].tolist())
            if len(cache) + idx.size > self._cache.limit:
                cache.clear()
            for i, r in zip(todo, new):
                cache[keys[i]] = r
                rows[i] = r
        arr = np.stack(rows)[inverse] if rows else np.empty((0, 4 * d + 1))
        return BlrmSummary(arr[:, :d], arr[:, d:2 * d], arr[:, 2 * d:3 * d], arr[:, 3 * d:4 * d], arr[:, -1])

    def _rules(self, summ: BlrmSummary, eligible_any: np.ndarray) -> tuple[Rule, ...]:
        c = self.config
        # the shared rules (no skipping, stop at n, minimum n, the all-DLT guardrail, ...), with the
        # overdosing bound as the target of those that need one; stop at n may require P(target) too
        shared = [r for r in self.rules if c.stop_prob_target is None or not isinstance(r, StopAtN)]
        rules: list[Rule] = [NoEligibleDose(eligible_any, c.safety_min_n), *shared]
        if c.max_step is not None:
            rules.append(MaxStep(_step_caps(c)))
        if c.stop_n_at_dose is not None and c.stop_prob_target is not None:
            rules.append(StopAtTarget(c.stop_n_at_dose, c.stop_prob_target, summ.prob_target))
        return tuple(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The shared trial rules the config switches on (:func:`~escalade.design.rules.shared_rules`)."""
        return shared_rules(self.config, self.config.target_interval[1])

    def decide(self, states: States) -> Decisions:
        summ = self.summaries(states)
        elig, rec = blrm_recommend(self.config, summ.prob_target, summ.prob_over)
        ok = rec != NO_DOSE
        ctx = RuleContext(states, np.where(ok, rec, 0), self.config.target_interval[1])
        return apply_rules(self._rules(summ, ok), ctx, self.config.cohort_size)

    def select(self, states: States) -> IntArray:
        summ = self.summaries(states)
        _, rec = blrm_recommend(self.config, summ.prob_target, summ.prob_over, states.n)
        has = states.total_n > 0
        return np.where(has, rec, NO_DOSE).astype(np.int64)

    def explain(self, states: States, *, mcmc: bool = False, **sample_kwargs: Any) -> BlrmExplanation:
        """Interval probabilities, quantiles, EWOC eligibility and the doses the rules allow (one state).

        With ``mcmc=True`` the posterior comes from NUTS
        (:func:`escalade.design.blrm_pymc.sample_posterior`, needs PyMC) with its
        ArviZ diagnostics; ``sample_kwargs`` go to it.
        """
        if states.n_states != 1:
            raise ValueError(f"explain takes one state; got {states.n_states}")
        c = self.config
        d = c.n_doses
        if mcmc:
            from escalade.design.blrm_pymc import sample_posterior

            f = sample_posterior(c, states, **sample_kwargs)
            under, target, over = (f.interval_prob[:, k] for k in range(3))
            mean, q = f.mean, f.quantiles
            chains, draws = f.idata.posterior.sizes["chain"], f.idata.posterior.sizes["draw"]
            engine = f"NUTS (PyMC), {chains} chains x {draws} draws"
            extra: dict[str, Any] = dict(max_rhat=f.max_rhat, ess=f.min_ess_bulk, divergences=float(f.divergences))
        else:
            r = self.model.fit_one(states.n[0], states.tox[0])
            under, target, over, mean, q = r["prob_under"], r["prob_target"], r["prob_over"], r["mean"], r["quantiles"]
            engine = f"quadrature, {c.grid_points} x {c.grid_points} grid"
            extra = dict(edge_mass=float(r["edge_mass"]))
        elig, rec = blrm_recommend(c, target[None, :], over[None, :])
        ok = rec != NO_DOSE
        summ = BlrmSummary(under[None, :], target[None, :], over[None, :], mean[None, :], np.zeros(1))
        ctx = RuleContext(states, np.where(ok, rec, 0), c.target_interval[1])
        caps = np.full(1, d - 1)
        for rule in self._rules(summ, ok):
            e = rule.effect(ctx)
            if e.cap is not None:
                caps = np.minimum(caps, e.cap)
        allowed = elig[0] & (np.arange(d) <= caps[0])
        c1, c2 = c.target_interval
        rule = (f"EWOC: eligible if P(DLT rate >= {c2:g}) < {c.ewoc:g}; next dose = "
                + ("the eligible dose with the highest P(" + f"{c1:g} <= DLT rate < {c2:g})"
                   if c.criterion == "target" else "the highest eligible dose")
                + ", within the escalation limits (allowed)")

        def tup(v: Any) -> tuple[float, ...]:
            return tuple(float(x) for x in v)

        return BlrmExplanation(tup(c.doses), tup(under), tup(target), tup(over), tup(mean), tup(q[:, 0]),
                               tup(q[:, 1]), tup(q[:, 2]), tuple(bool(v) for v in elig[0]),
                               tuple(bool(v) for v in allowed), rule=rule, engine=engine, ewoc=c.ewoc, **extra)


ENTRY = DesignEntry(
    kind="blrm", name="Bayesian logistic regression model with escalation with overdose control (BLRM-EWOC)",
    config=BlrmConfig, design=BlrmDesign, explanation=BlrmExplanation,
    methods="escalade.reports.methods_blrm:blrm_methods",
    citation="Neuenschwander B, Branson M, Gsponer T (2008). Critical aspects of the Bayesian approach to phase I "
             "cancer trials. Stat Med 27:2420-2439.",
    aliases=("blrm_ewoc",))
