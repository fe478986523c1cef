"""gBOIN: the generalised BOIN design on a normalised equivalent toxicity score.

Mu, Yuan, Xu, Mandrekar & Yin (2019), "gBOIN: a unified model-assisted
phase I trial design accounting for toxicity grades, and binary or continuous
end points", J R Stat Soc C 68(2):289-308.

Scores (paper, Section 2; Chen, Krailo, Azen & Tighiouart 2010 for the severity
weights). Each adverse-event (AE) type :math:`k` has a severity weight
:math:`w_{k,g}` per grade :math:`g = 0..5`; a patient's equivalent toxicity
score is the sum over the weighted types of the weight of the grade reached,
and the *normalised* score divides it by its largest attainable value,

.. math::

    \\mathrm{ETS} = \\sum_k w_{k, g_k}, \\qquad
    y = \\mathrm{nETS} = \\min(\\mathrm{ETS}, \\mathrm{ETS}_{\\max}) / \\mathrm{ETS}_{\\max} \\in [0, 1],

with :math:`\\mathrm{ETS}_{\\max} = \\sum_k \\max_g w_{k,g}` unless ``ets_max`` is
given. With one AE type this is the R package ``boinet``'s ``ETS /
max(sev.weight)`` (Takeda, Morita & Taguri 2022). The score is a
*quasi-Bernoulli* outcome: at a dose with :math:`n` patients and score total
:math:`x = \\sum y_i`, the quasi-binomial likelihood :math:`p^x (1-p)^{n-x}`
has the BOIN form with a non-integer event count, so BOIN's boundaries apply
to :math:`\\hat p = x / n` unchanged (Liu & Yuan 2015, JRSS C 64:507-523):

.. math::

    \\lambda_e = \\frac{\\log\\frac{1-\\phi_1}{1-\\phi}}{\\log\\frac{\\phi(1-\\phi_1)}{\\phi_1(1-\\phi)}},\\qquad
    \\lambda_d = \\frac{\\log\\frac{1-\\phi}{1-\\phi_2}}{\\log\\frac{\\phi_2(1-\\phi)}{\\phi(1-\\phi_2)}},

where :math:`\\phi` is the target *mean nETS* (``target``), :math:`\\phi_1 =
0.6\\phi`, :math:`\\phi_2 = 1.4\\phi` by default.

Dose finding at the current dose :math:`d` (paper, Section 3.1): escalate if
:math:`\\hat p_d \\le \\lambda_e`, de-escalate if :math:`\\hat p_d \\ge \\lambda_d`,
else stay. Elimination (paper, Section 3.1, Beta(1, 1) prior, quasi-binomial
posterior Beta(:math:`1 + x, 1 + n - x`)): with :math:`n_d \\ge 3`, if
:math:`\\Pr(p_d > \\phi \\mid x_d, n_d) >` ``cutoff_eli`` the dose and all higher
ones are eliminated (never escalate into them; with the lowest dose
eliminated the trial stops; a trial above an eliminated dose moves to the
highest dose left, as ``BOIN::get.oc``). ``n_earlystop``: stop when that many patients
are at the current dose and the rule would stay there (``BOIN::get.oc``).

Final selection (paper, Section 3.1, as ``BOIN::select.mtd``): isotonic
regression of :math:`(x + 0.05)/(n + 0.1)` over the treated, non-eliminated
doses with weights the inverse Beta variance; the MTD is the dose whose
estimate is closest to :math:`\\phi` (ties as :func:`escalade.design.boin.isotonic_mtd`).

Where escalade differs: the shared rules of :mod:`escalade.design.rules`
apply on the binary DLTs of the same patients (by default no escalation right
after a cohort in which every patient had a DLT; ``no_escalation_after_dlts:
off`` gives the paper's design); rules that need a target DLT rate are
refused, the target being an nETS; the de-escalation test is :math:`\\hat p \\ge
\\lambda_d` as in the paper (``BOIN::get.boundary``'s integer table makes it
strict at integer ties, which a continuous score almost never meets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, special

from escalade.design.base import (NO_DOSE, ConfigDesign, Decisions, DesignEntry, ExplanationMixin, FloatArray,
                                  IntArray, States, StopReason)
from escalade.design.boin import BoinConfig, boin_estimates
from escalade.design.config import check_boin_interval, check_fraction, check_int, check_probability, check_trial_size
from escalade.design.errors import ConfigError, DesignError
from escalade.design.rules import Rule, RuleContext, SharedRules, apply_rules, select_with_rules, shared_rules

__all__ = ["DEFAULT_GRADE_WEIGHTS", "GradeWeights", "GboinConfig", "GboinDesign", "GboinExplanation",
           "GradedBoundaries", "gboin_boundaries", "toxicity_scores", "response_scores", "quasi_binomial_mtd",
           "score_elimination", "ENTRY"]

#: Severity weights of grades 0..5 used for every AE type of the scenario when none are given: grades 0-1
#: weigh 0, grade 2 half a DLT, grade 3 one DLT, grades 4-5 one and a half (Mu et al. 2019, Table 1's
#: scale, with grade 5 as grade 4).
DEFAULT_GRADE_WEIGHTS: tuple[float, ...] = (0.0, 0.0, 0.5, 1.0, 1.5, 1.5)

_N_GRADES = 6


class GradeWeights(dict):
    """A read-only ``{name: weights}`` mapping (hashable, so configs stay hashable; JSON as a dict)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((k, v if not isinstance(v, list) else tuple(v)) for k, v in self.items())))

    def _ro(self, *a: Any, **k: Any) -> None:
        raise TypeError("GradeWeights is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _ro  # type: ignore[assignment]


def check_severity_weights(name: str, value: Any) -> GradeWeights | None:
    """Validate ``{ae_type: [w_0, ..., w_5]}`` (non-negative, non-decreasing, not all 0)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(name, value, "must map each AE type to six weights for grades 0-5, e.g. "
                                       "{crs: [0, 0, 0.5, 1, 1.5, 1.5]}")
    out: dict[str, tuple[float, ...]] = {}
    for k, w in value.items():
        try:
            ws = tuple(float(v) for v in w)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}.{k}", w, "must be six numbers, the weights of grades 0-5") from None
        if len(ws) != _N_GRADES:
            raise ConfigError(f"{name}.{k}", list(ws), f"must have {_N_GRADES} weights (grades 0-5); got {len(ws)}")
        if not all(math.isfinite(v) and v >= 0 for v in ws) or any(b < a for a, b in zip(ws, ws[1:])):
            raise ConfigError(f"{name}.{k}", list(ws), "must be finite, >= 0 and non-decreasing in the grade")
        if ws[-1] <= 0:
            raise ConfigError(f"{name}.{k}", list(ws), "must give some grade a positive weight")
        out[str(k)] = ws
    return GradeWeights(out)


def toxicity_scores(grades: Mapping[str, Any], weights: Mapping[str, Sequence[float]] | None,
                    ets_max: float | None = None) -> FloatArray:
    """Per patient nETS :math:`= \\min(\\sum_k w_{k,g_k}, \\mathrm{ETS}_{\\max}) / \\mathrm{ETS}_{\\max}`.

    ``grades[type]`` are int arrays of grades 0-5 (one entry per patient);
    ``weights`` None weighs every type of ``grades`` by
    :data:`DEFAULT_GRADE_WEIGHTS`. ``ets_max`` None: the sum of the weighted
    types' largest weights.

    Raises
    ------
    DesignError
        When ``weights`` name a type that ``grades`` lacks, or a grade is out of 0-5.

    Examples
    --------
    >>> toxicity_scores({"crs": [0, 2, 3], "icans": [0, 0, 4]}, None).tolist()
    [0.0, 0.16666666666666666, 0.8333333333333334]
    """
    w = {k: DEFAULT_GRADE_WEIGHTS for k in grades} if weights is None else dict(weights)
    missing = [k for k in w if k not in grades]
    if missing:
        raise DesignError(f"severity_weights name AE type(s) {', '.join(map(repr, missing))} that the scenario "
                          f"lacks; its types are {', '.join(map(repr, grades)) or 'none'}: rename the weights or "
                          "add the type to the scenario's adverse events")
    m = None
    ets = None
    for k, wk in w.items():
        g = np.asarray(grades[k], np.int64)
        if g.size and (g.min() < 0 or g.max() >= _N_GRADES):
            raise DesignError(f"grades of AE type {k!r} must lie in 0-5; got {int(g.min())}..{int(g.max())}")
        term = np.asarray(wk, float)[g]
        ets = term if ets is None else ets + term
        m = g.shape[0]
    if ets is None:
        return np.zeros(0 if m is None else m)
    top = float(sum(max(wk) for wk in w.values())) if ets_max is None else float(ets_max)
    return np.minimum(ets, top) / top


def response_scores(response: Any, categories: Sequence[str], weights: Mapping[str, float] | None) -> FloatArray:
    """Per patient nEES: the weight of the response category over the largest weight.

    ``response`` holds indices into ``categories`` (best first). ``weights``
    None: rank weights, 1 for the best category falling linearly to 0 for
    the worst; a category the weights do not name weighs 0.

    Raises
    ------
    DesignError
        When ``weights`` name a category that ``categories`` lacks.

    Examples
    --------
    >>> response_scores([0, 1, 3], ["cr", "pr", "sd", "pd"], {"cr": 3.0, "pr": 1.0, "sd": 0.25}).tolist()
    [1.0, 0.3333333333333333, 0.0]
    """
    cats = [str(c) for c in categories]
    k = len(cats)
    if weights is None:
        table = np.linspace(1.0, 0.0, k) if k > 1 else np.ones(1)
    else:
        missing = [c for c in weights if c not in cats]
        if missing:
            raise DesignError(f"response_weights name categor(ies) {', '.join(map(repr, missing))} that the "
                              f"scenario lacks; its response categories are {', '.join(map(repr, cats))}")
        table = np.array([float(weights.get(c, 0.0)) for c in cats])
        table = table / table.max()
    r = np.asarray(response, np.int64)
    if r.size and (r.min() < 0 or r.max() >= k):
        raise DesignError(f"response category index must lie in 0..{k - 1} ({', '.join(cats)}); "
                          f"got {int(r.min())}..{int(r.max())}")
    return table[r]


@dataclass(frozen=True, slots=True, kw_only=True)
class GboinConfig(SharedRules):
    """Parameters of gBOIN (Mu et al. 2019).

    Attributes
    ----------
    target
        Target mean normalised equivalent toxicity score :math:`\\phi` (nETS, in (0, 1)), on the scale
        the weights define, not a DLT rate: set it in the design's params (the study's DLT target
        fills it otherwise).
    n_doses, cohort_size, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    max_n
        Maximum sample size.
    p_saf, p_tox
        :math:`\\phi_1`, :math:`\\phi_2`: highest mean nETS deemed underdosing and lowest deemed
        overdosing; default 0.6 and 1.4 times the target.
    cutoff_eli
        Eliminate a dose (and higher ones) when :math:`\\Pr(p > \\phi \\mid \\text{data}) >` cutoff_eli
        with at least 3 patients there (quasi-binomial Beta(1 + x, 1 + n - x) posterior).
    n_earlystop
        Stop when this many patients are at the current dose and the rule would stay (100: never).
    severity_weights
        Per AE type, the weights of grades 0-5, e.g. ``{crs: [0, 0, 0.5, 1, 1.5, 1.5]}``; AE types
        not named do not count. Default: every AE type of the scenario with weights
        0, 0, 0.5, 1, 1.5, 1.5.
    ets_max
        The ETS that maps to nETS = 1 (larger totals are capped); default the sum of the weighted
        types' largest weights.

    The shared rules (:class:`~escalade.design.rules.SharedRules`) are available too, on the
    binary DLTs, with the all-DLT guardrail on by default.
    """

    target: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    p_saf: float | None = None
    p_tox: float | None = None
    cutoff_eli: float = 0.95
    n_earlystop: int = 100
    severity_weights: Mapping[str, Sequence[float]] | None = None
    ets_max: float | None = None

    def __post_init__(self) -> None:
        check_fraction("target", self.target)
        check_trial_size(self.n_doses, self.cohort_size, self.max_n, self.start_dose)
        check_boin_interval(self)
        check_probability("cutoff_eli", self.cutoff_eli)
        check_int("n_earlystop", self.n_earlystop, low=1)
        object.__setattr__(self, "severity_weights", check_severity_weights("severity_weights",
                                                                             self.severity_weights))
        if self.ets_max is not None and not (isinstance(self.ets_max, (int, float)) and self.ets_max > 0):
            raise ConfigError("ets_max", self.ets_max, "must be a positive number (the ETS mapped to nETS = 1)")
        self.check_rules()

    @property
    def lambda_e(self) -> float:
        return BoinConfig(target=self.target, n_doses=1, p_saf=self.p_saf, p_tox=self.p_tox).lambda_e

    @property
    def lambda_d(self) -> float:
        return BoinConfig(target=self.target, n_doses=1, p_saf=self.p_saf, p_tox=self.p_tox).lambda_d


def _beta_sf(q: float, x: Any, n: Any) -> np.ndarray:
    """:math:`\\Pr(p > q)` under Beta(1 + x, 1 + n - x) (quasi-binomial posterior; x may be fractional)."""
    x = np.asarray(x, float)
    n = np.asarray(n, float)
    return special.betaincc(1.0 + x, 1.0 + n - x, q)


def score_elimination(n: Any, score: Any, *, target: float, cutoff_eli: float) -> np.ndarray:
    """``(S, D)``: dose eliminated, it or a lower dose having :math:`\\Pr(p > \\phi) >` cutoff with n >= 3."""
    n = np.atleast_2d(np.asarray(n, float))
    x = np.atleast_2d(np.asarray(score, float))
    hit = (n >= 3) & (_beta_sf(target, x, np.maximum(n, 1.0)) > cutoff_eli)
    return np.logical_or.accumulate(hit, axis=-1)


def quasi_binomial_mtd(n: Any, score: Any, admissible: Any, *, target: float) -> IntArray:
    """The admissible treated dose whose isotonic score estimate is closest to ``target``, batched.

    As :func:`escalade.design.boin.isotonic_mtd`, with a fractional event
    total (:func:`escalade.design.boin.boin_estimates` takes it as is); ties:
    among equal estimates below the target the highest dose, else the lowest.
    """
    n = np.atleast_2d(np.asarray(n, float))
    x = np.atleast_2d(np.asarray(score, float))
    adm = np.atleast_2d(np.asarray(admissible, bool)) & (n > 0)
    s, nd = n.shape
    est = boin_estimates(n, x, adm, intervals=False).phat
    dist = np.abs(est - target)
    below = est < target
    best = np.full(s, NO_DOSE, np.int64)
    best_dist = np.full(s, np.inf)
    best_below = np.zeros(s, bool)
    for j in range(nd):
        dj = dist[:, j]
        take = adm[:, j] & ((dj < best_dist) | ((dj == best_dist) & below[:, j] & best_below))
        best = np.where(take, j, best)
        best_dist = np.where(take, dj, best_dist)
        best_below = np.where(take, below[:, j], best_below)
    return np.where(adm.any(axis=1), best, NO_DOSE)


@dataclass(frozen=True, slots=True)
class GradedBoundaries:
    """gBOIN's decision table: thresholds on the *total* nETS of the patients at a dose.

    ``escalate[n] = lambda_e * n``, ``deescalate[n] = lambda_d * n``,
    ``eliminate[n]`` the total :math:`x` with :math:`\\Pr(p > \\phi \\mid x, n) =`
    cutoff (None where no total up to ``n`` reaches it, or ``n < 3``).
    """

    target: float
    lambda_e: float
    lambda_d: float
    cutoff_eli: float
    n_max: int

    def eliminate_at(self, n: int) -> float | None:
        if n < 3 or _beta_sf(self.target, n, n) <= self.cutoff_eli:
            return None
        return float(optimize.brentq(lambda x: float(_beta_sf(self.target, x, n)) - self.cutoff_eli, 0.0, n,
                                     xtol=1e-12))

    def table(self, cohort_size: int = 1, n_max: int | None = None) -> dict[str, list]:
        top = self.n_max if n_max is None else n_max
        ns = list(range(cohort_size, top + 1, cohort_size))
        return {"n": ns, "escalate_if_score_le": [self.lambda_e * n for n in ns],
                "deescalate_if_score_ge": [self.lambda_d * n for n in ns],
                "eliminate_if_score_gt": [self.eliminate_at(n) for n in ns]}

    def format(self, cohort_size: int = 1, n_max: int | None = None) -> str:
        t = self.table(cohort_size, n_max)
        head = (f"gBOIN on the normalised equivalent toxicity score (nETS): target {self.target:g}, "
                f"lambda_e = {self.lambda_e:.4f}, lambda_d = {self.lambda_d:.4f}; x = total nETS at the dose")
        rows = [("Number of patients treated", t["n"]), ("Escalate if x <=", t["escalate_if_score_le"]),
                ("Deescalate if x >=", t["deescalate_if_score_ge"]),
                (f"Eliminate if x > (Pr > {self.cutoff_eli:g})", t["eliminate_if_score_gt"])]
        return head + "\n" + _format_rows(rows)


def _format_rows(rows: Sequence[tuple[str, Sequence[Any]]]) -> str:
    w = max(len(r[0]) for r in rows) + 2

    def cell(v: Any) -> str:
        if v is None:
            return f"{'NA':>7}"
        return f"{v:>7}" if isinstance(v, (int, np.integer)) else f"{v:>7.2f}"

    return "\n".join(f"{label:<{w}}" + "".join(cell(v) for v in vals) for label, vals in rows)


def gboin_boundaries(config: GboinConfig) -> GradedBoundaries:
    """gBOIN's boundaries for ``config`` (BOIN's :math:`\\lambda_e, \\lambda_d` for the nETS target)."""
    c = config
    return GradedBoundaries(float(c.target), c.lambda_e, c.lambda_d, float(c.cutoff_eli), int(c.max_n))


@dataclass(frozen=True, slots=True)
class GboinDesign(ConfigDesign):
    """gBOIN as a pure function of per-dose patient counts and nETS totals (``States.tox_score``)."""

    config: GboinConfig
    kind: ClassVar[str] = "gboin"
    enumerable: ClassVar[bool] = False  # decisions depend on continuous score totals
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False  # vectorised
    graded: ClassVar[bool] = True
    state_fields: ClassVar[str] = "all"  # states are keyed on every field (scores included)
    boundaries: GradedBoundaries = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundaries", gboin_boundaries(self.config))
        # the shared rules count binary DLTs; those needing a target DLT rate are refused (the target is an nETS)
        object.__setattr__(self, "rules", shared_rules(self.config, None))

    def decision_table(self) -> GradedBoundaries:
        """The thresholds ``escalade boundaries --design gboin`` prints."""
        return self.boundaries

    def patient_scores(self, grades: Mapping[str, np.ndarray], response: np.ndarray,
                       categories: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """Each patient's (nETS, 0): gBOIN uses no efficacy score."""
        t = toxicity_scores(grades, self.config.severity_weights, self.config.ets_max)
        return t, np.zeros_like(t)

    def _score(self, states: States) -> FloatArray:
        if states.tox_score is None:
            raise DesignError("gBOIN decides on graded toxicities, but these trial states carry no toxicity "
                              "scores (States.tox_score): give the scenario adverse events by type and grade")
        return states.tox_score

    def eliminated(self, states: States) -> np.ndarray:
        c = self.config
        return score_elimination(states.n, self._score(states), target=c.target, cutoff_eli=c.cutoff_eli)

    def decide(self, states: States) -> Decisions:
        c, b = self.config, self.boundaries
        x = self._score(states)
        nd = c.n_doses
        d = states.current
        n_d = states.at_current(states.n).astype(float)
        p = states.at_current(x) / np.maximum(n_d, 1.0)
        up = (p <= b.lambda_e) & (d < nd - 1)
        down = (p >= b.lambda_d) & (d > 0)
        nxt = np.where(up, d + 1, np.where(down, d - 1, d))
        elim = self.eliminated(states)
        top_ok = (~elim).sum(axis=1) - 1  # highest dose not eliminated (elimination covers all higher doses)
        nxt = np.minimum(nxt, np.maximum(top_ok, 0))  # eliminated doses are never used again
        out = Decisions.go(nxt.astype(np.int64), c.cohort_size)
        out = out.with_stop(elim[:, 0], StopReason.ALL_TOXIC)
        out = out.with_stop((n_d >= c.n_earlystop) & (nxt == d), StopReason.N_AT_DOSE)
        return apply_rules(self.rules, RuleContext(states, out.dose, None), out)

    def select(self, states: States) -> IntArray:
        c = self.config
        x = self._score(states)
        elim = self.eliminated(states)
        best = quasi_binomial_mtd(states.n, x, ~elim, target=c.target)
        sel = np.where(elim[:, 0], NO_DOSE, best).astype(np.int64)
        return select_with_rules(self.rules, RuleContext(states, sel, None))

    def explain(self, states: States, **options: Any) -> "GboinExplanation":
        """Boundaries, the current dose's mean nETS and the isotonic estimates of the first state."""
        one = states.take(slice(0, 1))
        c, b = self.config, self.boundaries
        x = self._score(one)[0]
        n = one.n[0]
        d = int(one.current[0])
        elim = self.eliminated(one)[0]
        est = boin_estimates(n.astype(float), x, (n > 0) & ~elim, intervals=False).phat
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, x / np.maximum(n, 1), np.nan)
        sel = int(self.select(one)[0])
        return GboinExplanation(
            target=float(c.target), lambda_e=b.lambda_e, lambda_d=b.lambda_d, current_dose=d + 1,
            n_at_current=int(n[d]), nets_at_current=float(x[d]),
            mean_nets=tuple(float(v) for v in mean), eliminated=tuple(bool(v) for v in elim),
            p_isotonic=tuple(float(v) for v in est), mtd_now=None if sel < 0 else sel + 1)


@dataclass(frozen=True, slots=True)
class GboinExplanation(ExplanationMixin):
    """What a gBOIN decision rests on, for one state (doses 1-based).

    Attributes
    ----------
    target, lambda_e, lambda_d
        Target mean nETS and BOIN's boundaries for it.
    current_dose, n_at_current, nets_at_current
        The last cohort's dose, its patients and their total nETS.
    mean_nets, eliminated, p_isotonic
        Per dose: the mean nETS, elimination, the isotonic estimate used at the end.
    mtd_now
        The MTD if the trial ended now (None: none).
    """

    target: float
    lambda_e: float
    lambda_d: float
    current_dose: int
    n_at_current: int
    nets_at_current: float
    mean_nets: tuple[float, ...]
    eliminated: tuple[bool, ...]
    p_isotonic: tuple[float, ...]
    mtd_now: int | None
    rule: str = ("gBOIN (Mu et al. 2019): escalate if the mean nETS at the current dose <= lambda_e, "
                 "de-escalate if >= lambda_d, else stay; eliminate a dose and higher ones when "
                 "Pr(mean nETS > target) > cutoff_eli with >= 3 patients")

    def table(self) -> dict[str, list]:
        return {"mean_nets": list(self.mean_nets), "eliminated": list(self.eliminated),
                "p_isotonic": list(self.p_isotonic)}

    def details(self) -> dict[str, object]:
        return {"rule": self.rule, "target": self.target, "lambda_e": self.lambda_e, "lambda_d": self.lambda_d,
                "current_dose": self.current_dose, "n_at_current": self.n_at_current,
                "nets_at_current": self.nets_at_current, "mtd_now": self.mtd_now}


ENTRY = DesignEntry(
    kind="gboin", name="Generalised BOIN on graded toxicities (gBOIN)", config=GboinConfig, design=GboinDesign,
    explanation=GboinExplanation, methods="escalade.reports.methods_gboin:gboin_methods",
    citation="Mu R, Yuan Y, Xu J, Mandrekar SJ, Yin J (2019). gBOIN: a unified model-assisted phase I trial design "
             "accounting for toxicity grades, and binary or continuous end points. J R Stat Soc C 68(2):289-308.",
    aliases=("g-boin",))
