"""BOIN12: Bayesian optimal interval phase I/II design for utility-based dose finding.

Lin, Zhou, Yan, Li & Yuan (2020), JCO Precision Oncology 4:1393-1402. The
rules follow the paper and, where the paper leaves details open, the authors'
simulation code (as distributed with the BOIN12 web application at
trialdesign.org); each such choice is marked *software* below.

Utility (paper, Table 1): with toxicity :math:`T` and efficacy :math:`E`,
:math:`u(T=0, E=1) = 100`, :math:`u(T=1, E=0) = 0`, and by default
:math:`u_{11} = u(T=1, E=1) = 60`, :math:`u_{00} = u(T=0, E=0) = 40`. At a dose
with :math:`n` patients and outcome counts :math:`y_{TE}`, the utility is treated
as a quasi-binomial probability with :math:`x = \\sum u_{TE}\\, y_{TE} / 100`
quasi-events, whose posterior under a Beta(1, 1) prior is
Beta(:math:`1 + x`, :math:`1 + n - x`). The benchmark is half-way between the
highest unacceptable utility :math:`\\bar u` (toxicity :math:`\\phi_T`, efficacy
:math:`\\phi_E`, independent) and 100:

.. math::

    \\bar u = 100(1-\\phi_T)\\phi_E + u_{11}\\phi_T\\phi_E + u_{00}(1-\\phi_T)(1-\\phi_E),
    \\qquad u_b = \\bar u + (100 - \\bar u)/2,

and the desirability of a dose is :math:`\\Pr(u/100 > u_b/100 \\mid \\text{data})`.
The paper tabulates its rank among all :math:`(n, y_T, y_E)` (the *rank-based
desirability score*, :func:`boin12_rds_table`, its Table 3); ranks preserve
the order, so the design compares the probabilities themselves.

Admissibility (paper): dose :math:`j` is eliminated, once :math:`n_j \\ge 3`, if
:math:`\\Pr(p_{T,j} > \\phi_T \\mid \\text{data}) > c_T = 0.95` (with all higher
doses) or :math:`\\Pr(p_{E,j} < \\phi_E \\mid \\text{data}) > c_E = 0.9` (that dose
only), Beta(1, 1) priors.

Dose finding, at current dose :math:`j` with :math:`\\hat p_T = y_T/n` and BOIN's
boundaries :math:`\\lambda_e, \\lambda_d` for :math:`\\phi_T` (paper, Table 2):

1. stop if the lowest dose is eliminated for toxicity (all doses too toxic), or
   every dose is eliminated (no acceptable dose); stop when :math:`n_j` reaches
   ``n_earlystop`` (*software*: whatever the rule would do next);
2. :math:`\\hat p_T \\ge \\lambda_d` (BOIN's de-escalation boundary): de-escalate to
   the highest admissible lower dose (*software*: stay if there is none and
   :math:`j` is admissible, else stop);
3. otherwise choose, by desirability, among :math:`j`, the highest admissible
   dose below :math:`j` and -- if :math:`n_j < N^* = 6`, or :math:`\\hat p_T \\le
   \\lambda_e` -- the lowest admissible dose above :math:`j` (*software*: admissible
   neighbours skip eliminated doses). An untried dose has the prior desirability
   :math:`1 - u_b/100`. Ties go to the higher dose (the software breaks them at
   random; the web application, per the R package ``escalation``, to the higher
   dose). The choice eliminated: stop;
4. dose exploration (paper's Supplement; *software*): if :math:`n_j \\ge 9` and
   :math:`\\hat p_T < \\lambda_d` and the next admissible higher dose is untried,
   escalate to it.

Final selection of the optimal biological dose (OBD), ``selection="software"``
(the default): the rule of the authors' simulation code (as in the BOIN12
web application; checked against an R restatement of it in
``validation/reference/boin12_software`` and, in simulation, against the
application's published figures of brockk/escalation issue #8). With dose
index :math:`j = 1, \\dots, J` and *every* dose entering the fits (an untried
dose as :math:`0.05/0.1 = 0.5` with a small weight):

- :math:`\\tilde p_{T,j}` = isotonic fit of :math:`(y_T + 0.05)/(n + 0.1)` (weights
  :math:`n + 0.1`) :math:`+\\, 0.001\\,j`;
- :math:`\\tilde p_{E,j}` = the unimodal (umbrella) fits of :math:`(y_E + 0.05)/(n + 0.1)`
  (weights :math:`n + 0.5`) for each position of the mode, as ``Iso::ufit``
  computes them (its last pooling step places the weights by the inverse
  permutation, :func:`~escalade.design.isotonic.unimodal_fits`), averaged with
  weights proportional to each fit's binomial likelihood, :math:`+\\, 0.01\\,j`;
- utility :math:`\\hat u = u_{11}\\tilde p_E + u_{00}(1 - \\tilde p_T)` (equal to the four-cell
  utility only when :math:`u_{11} + u_{00} = 100`, the defaults);
- MTD: the first dose with the smallest :math:`|\\tilde p_T - \\phi_T|` (all doses);
  OBD: the first dose with the largest :math:`\\hat u` among treated admissible
  doses up to the MTD;
- a trial whose last decision (taken after every cohort, the last included)
  stops it for toxicity or futility selects no dose, unless it ended at
  ``n_earlystop`` first.

Where escalade differs from that code: where no treated admissible dose
is at or below the MTD it selects no dose (R's ``which.max`` returns dose 1
whatever its utility), and the software breaks desirability ties at random
during the trial (escalade: the higher dose, above).

``selection="paper"``: the paper's rule without the software's numerical
adjustments (escalade's rule before the software's became the default):
only treated doses enter the fits, the umbrella fit is the least-squares
one, no index offsets; the MTD is the treated dose not eliminated for
toxicity closest to :math:`\\phi_T` (ties as ``BOIN::select.mtd``); the OBD
maximises :math:`\\hat u = 100(1-\\tilde p_T)\\tilde p_E + u_{11}\\tilde p_T\\tilde p_E +
u_{00}(1-\\tilde p_T)(1-\\tilde p_E)` among treated admissible doses at or below the
MTD, ties to the higher dose.

Both rules are computed for all final states at once (no per-trial loop).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from scipy import special, stats

from escalade.design.base import (ConfigDesign, NO_DOSE, Decisions, DesignEntry, ExplanationMixin, FloatArray, IntArray,
                                  States, StopReason, TrueOptimum)
from escalade.design.boin import BoinBoundaries, BoinConfig, boin_boundaries
from escalade.design.config import check_fraction, check_int, check_positive, check_probability
from escalade.design.isotonic import isotonic_regression, unimodal_fits
from escalade.design.errors import ConfigError
from escalade.design.rules import Rule, RuleContext, SharedRules, apply_rules, select_with_rules, shared_rules
from escalade.design.rules import state_fields as rules_state_fields

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ENTRY", "Boin12Evidence", "Boin12Explanation", "Boin12Config", "Boin12Design", "boin12_rds_table",
           "boin12_estimates", "Boin12Estimates", "unimodal_regression"]

_MIN_N_ELIM = 3  # elimination (toxicity or futility) needs at least 3 patients at the dose
_SELECTIONS = ("software", "paper")


@dataclass(frozen=True, slots=True, kw_only=True)
class Boin12Config(SharedRules):
    """BOIN12 parameters; defaults from the paper (Lin et al. 2020) and its software.

    Attributes
    ----------
    target
        :math:`\\phi_T`, the highest acceptable DLT rate (study target).
    phi_e
        :math:`\\phi_E`, the lowest acceptable response rate.
    u11, u00
        Utilities of (DLT and response) and (neither); (response, no DLT) is 100
        and (DLT, no response) 0.
    p_saf, p_tox
        BOIN's :math:`\\phi_1, \\phi_2` for :math:`\\lambda_e, \\lambda_d` (0.6 and 1.4 :math:`\\phi_T`).
    cutoff_eli, cutoff_eli_eff
        :math:`c_T` (0.95) and :math:`c_E` (0.9) of the admissibility rules.
    n_star
        :math:`N^*`: with at least this many patients at the current dose, escalation
        needs :math:`\\hat p_T \\le \\lambda_e` (6).
    n_explore
        Dose exploration: with at least this many at the current dose and the next
        dose untried, escalate (9).
    n_earlystop
        Stop when this many patients are at the current dose (100: never).
    prior_alpha, prior_beta
        Beta prior of the quasi-binomial utility (1, 1).
    selection
        The final (OBD) selection: ``"software"`` (default), the rule of the
        authors' simulation code; ``"paper"``, the same estimators without its
        numerical adjustments (see the module docstring, *Final selection*).
    no_escalation_after_dlts, overdose_control, ...
        The trial rules every design shares (:class:`~escalade.design.rules.SharedRules`),
        applied after BOIN12's own rules; by default only the all-DLT guardrail
        (BOIN12's dose exploration could otherwise escalate right after an
        all-DLT cohort, e.g. 0/6 then 3/3 at a dose below an untried one).
    """

    target: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    phi_e: float = 0.25
    u11: float = 60.0
    u00: float = 40.0
    p_saf: float | None = None
    p_tox: float | None = None
    cutoff_eli: float = 0.95
    cutoff_eli_eff: float = 0.9
    n_star: int = 6
    n_explore: int = 9
    n_earlystop: int = 100
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    selection: Literal["software", "paper"] = "software"

    def __post_init__(self) -> None:
        if self.selection not in _SELECTIONS:
            raise ConfigError("selection", self.selection, f"must be one of {list(_SELECTIONS)} (the authors' "
                                                           "software's OBD rule, or the paper's without its "
                                                           "numerical adjustments)")
        boin = BoinConfig(target=self.target, n_doses=self.n_doses, cohort_size=self.cohort_size,
                          max_n=self.max_n, start_dose=self.start_dose, p_saf=self.p_saf, p_tox=self.p_tox,
                          cutoff_eli=self.cutoff_eli)
        object.__setattr__(self, "p_saf", boin.p_saf)
        object.__setattr__(self, "p_tox", boin.p_tox)
        check_fraction("phi_e", self.phi_e)
        for name in ("u11", "u00"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 100.0:
                raise ConfigError(name, v, "must be a utility in [0, 100] (response without DLT = 100, "
                                           "DLT without response = 0)")
            object.__setattr__(self, name, float(v))
        check_probability("cutoff_eli_eff", self.cutoff_eli_eff)
        check_int("n_star", self.n_star, low=1)
        check_int("n_explore", self.n_explore, low=1)
        check_int("n_earlystop", self.n_earlystop, low=1)
        check_positive("prior_alpha", self.prior_alpha)
        check_positive("prior_beta", self.prior_beta)
        self.check_rules()

    @property
    def benchmark(self) -> float:
        """:math:`u_b`, the benchmark utility (0-100)."""
        pt, pe = self.target, self.phi_e
        ubar = 100 * (1 - pt) * pe + self.u11 * pt * pe + self.u00 * (1 - pt) * (1 - pe)
        return ubar + (100.0 - ubar) / 2.0

    @property
    def additive(self) -> bool:
        """True when the utility depends on the marginal counts only (:math:`u_{11} + u_{00} = 100`)."""
        return abs(self.u11 + self.u00 - 100.0) < 1e-12


def _quasi_events(cfg: Boin12Config, n: Any, tox: Any, eff: Any, both: Any) -> np.ndarray:
    n, tox, eff, both = (np.asarray(a, float) for a in (n, tox, eff, both))
    y01 = eff - both
    y00 = n - tox - eff + both
    return (100.0 * y01 + cfg.u11 * both + cfg.u00 * y00) / 100.0


_DISTINCT_MIN = 32  # below this many elements, evaluate directly (the unique pass would cost more)


def _on_distinct(fn: Any, a: Any, b: Any) -> np.ndarray:
    """``fn(a, b)`` (element-wise, broadcast) evaluated once per distinct pair ``(a, b)``, scattered back.

    The incomplete beta function costs ~6 microseconds an element, and the
    ``(S, D)`` arguments of a batch of trials repeat (integer counts, untried
    doses); each value is the one ``fn`` gives that element alone, so the
    result is bit for bit ``fn(a, b)``. Pairs are keyed as complex numbers
    (one fast sort); arguments that are not finite and positive (where ``-0.0``
    and ``0.0`` would share a key) go straight to ``fn``.
    """
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    if a.size < _DISTINCT_MIN or not (np.all(a > 0) and np.all(b > 0) and np.all(np.isfinite(a + b))):
        return fn(a, b)
    key = np.empty(a.shape, np.complex128)
    key.real, key.imag = a, b
    uniq, inverse = np.unique(key.ravel(), return_inverse=True)
    return np.asarray(fn(uniq.real, uniq.imag))[inverse.reshape(-1)].reshape(a.shape)


def _desirability(cfg: Boin12Config, n: Any, tox: Any, eff: Any, both: Any) -> np.ndarray:
    """:math:`\\Pr(u > u_b \\mid \\text{data})` under Beta(alpha + x, beta + n - x)."""
    x = _quasi_events(cfg, n, tox, eff, both)
    n = np.asarray(n, float)
    return _beta_tail(cfg, cfg.prior_alpha + x, cfg.prior_beta + n - x)


def _beta_tail(cfg: Boin12Config, a: Any, b: Any) -> np.ndarray:
    """:math:`\\Pr(u > u_b)` under Beta(``a``, ``b``), once per distinct ``(a, b)``."""
    ub = cfg.benchmark / 100.0
    return _on_distinct(lambda a_, b_: special.betaincc(a_, b_, ub), a, b)


_TABLE_N = 64  # the elimination probabilities are tabulated for counts up to this many patients at a dose


@functools.lru_cache(maxsize=32)
def _beta_count_table(kind: str, x: float) -> np.ndarray:
    """``table[y, n]``: ``betaincc(y + 1, n - y + 1, x)`` (``kind="sf"``) or ``betainc`` (``"cdf"``), ``y <= n``.

    Each entry is the element-wise call on those arguments, so a look-up is
    bit for bit the call; built once per threshold (~2,000 evaluations).
    """
    y, n = np.meshgrid(np.arange(_TABLE_N + 1.0), np.arange(_TABLE_N + 1.0), indexing="ij")
    b = np.where(y <= n, n - y + 1.0, 1.0)
    fn = special.betaincc if kind == "sf" else special.betainc
    out = np.where(y <= n, fn(y + 1.0, b, x), np.nan)
    out.setflags(write=False)
    return out


def _count_lookup(kind: str, x: float, y: np.ndarray, n: Any) -> np.ndarray:
    """``betaincc(y + 1, n - y + 1, x)`` (or ``betainc``) from the table when the counts are whole and in range."""
    y = np.asarray(y, float)
    n = np.asarray(n, float)
    if y.size and np.isfinite(y).all() and np.isfinite(n).all():
        yi, ni = y.astype(np.int64), np.broadcast_to(n, y.shape).astype(np.int64)
        if (yi.min() >= 0 and ni.max() <= _TABLE_N and np.array_equal(yi, y) and np.array_equal(ni, n)
                and np.all(yi <= ni)):
            return _beta_count_table(kind, x)[yi, ni]
    fn = special.betaincc if kind == "sf" else special.betainc
    return _on_distinct(lambda a, b: fn(a, b, x), y + 1.0, n - y + 1.0)


def _elimination_probs(cfg: Boin12Config, n_tox: Any, tox: Any, n_eff: Any, eff: Any) -> tuple[np.ndarray, np.ndarray]:
    """:math:`\\Pr(p_T > \\phi_T)` and :math:`\\Pr(p_E < \\phi_E)` under Beta(1 + y, 1 + n - y) posteriors.

    ``scipy.stats.beta.sf(x, a, b)`` and ``.cdf`` are ``special.betaincc(a, b, x)``
    and ``special.betainc(a, b, x)`` for these arguments (``x`` inside (0, 1),
    ``a, b >= 1``); here looked up in a table of those calls by the counts
    (:func:`_beta_count_table`), or evaluated once per distinct count pair
    beyond it.
    """
    return (_count_lookup("sf", float(cfg.target), tox, n_tox),
            _count_lookup("cdf", float(cfg.phi_e), eff, n_eff))


def _eliminated(cfg: Boin12Config, n: np.ndarray, tox: np.ndarray, eff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(S, D)`` toxicity elimination (this dose and higher) and futility elimination (this dose)."""
    ok = n >= _MIN_N_ELIM
    p_tox, p_fut = _elimination_probs(cfg, n, tox, n, eff)
    tox_e = np.logical_or.accumulate(ok & (p_tox > cfg.cutoff_eli), axis=-1)
    return tox_e, ok & (p_fut > cfg.cutoff_eli_eff)


@dataclass(frozen=True, slots=True)
class Boin12Design(ConfigDesign):
    """BOIN12 as a pure function of the per-dose outcome cells (see the module docstring).

    Its admissibility rules (toxicity and futility elimination) stay inside
    :meth:`decide`: they decide *which* neighbours compete on desirability, so
    they cannot be written as a limit applied afterwards without changing the
    choice. The shared trial rules (:mod:`escalade.design.rules`) apply to the
    result.
    """

    config: Boin12Config
    kind: ClassVar[str] = "boin12"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = True
    memoise: ClassVar[bool] = False  # decide is vectorised; select deduplicates states itself
    boundaries: BoinBoundaries = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        c = self.config
        object.__setattr__(self, "boundaries",
                           boin_boundaries(c.target, max(c.max_n, c.n_earlystop, 3), c.p_saf, c.p_tox, c.cutoff_eli))
        object.__setattr__(self, "rules", shared_rules(c, c.target))

    @property
    def state_fields(self) -> str:
        return rules_state_fields(self.rules)

    def admissible(self, states: States) -> np.ndarray:
        """``(S, D)``: neither eliminated for toxicity nor for futility."""
        tox_e, fut_e = _eliminated(self.config, states.n, states.tox, states.eff)
        return ~(tox_e | fut_e)

    def desirability(self, states: States) -> FloatArray:
        """``(S, D)`` :math:`\\Pr(u > u_b)` per dose (prior value for untried doses)."""
        return _desirability(self.config, states.n, states.tox, states.eff, states.both)

    def true_optimum(self, p_tox: Any, p_eff: Any, p_both: Any | None = None) -> TrueOptimum:
        """The dose of highest true mean utility among doses truly within BOIN12's hurdles.

        With the true probabilities of the four outcomes, the mean utility of
        a dose is :math:`100\\,\\pi_{01} + u_{11}\\pi_{11} + u_{00}\\pi_{00}`
        (Lin et al. 2020, Table 1), where :math:`\\pi_{11}` is ``p_both`` (the
        true P(DLT and response); independence :math:`\\pi_T\\pi_E` when not
        given). A dose is eligible when its true DLT rate is at most
        :math:`\\phi_T` (``target``) and its true response rate at least
        :math:`\\phi_E` (``phi_e``), the design's admissibility hurdles applied
        to the truth. Ties: the higher dose, as the design's final selection.

        Examples
        --------
        >>> d = Boin12Design(Boin12Config(target=0.3, n_doses=3, phi_e=0.3))
        >>> d.true_optimum([0.05, 0.2, 0.35], [0.3, 0.7, 0.72]).dose
        1
        """
        c = self.config
        pt, pe = np.asarray(p_tox, float), np.asarray(p_eff, float)
        p11 = pt * pe if p_both is None else np.asarray(p_both, float)
        p01, p00 = pe - p11, 1.0 - pt - pe + p11
        u = 100.0 * p01 + c.u11 * p11 + c.u00 * p00
        ok = (pt <= c.target) & (pe >= c.phi_e)
        nd = u.shape[0]
        dose = int(nd - 1 - np.argmax(np.where(ok, u, -np.inf)[::-1])) if ok.any() else NO_DOSE
        rule = (f"highest true mean utility (u11 = {c.u11:g}, u00 = {c.u00:g}; response without DLT 100, DLT "
                f"without response 0) among doses with true DLT rate <= {c.target:g} and true response rate >= "
                f"{c.phi_e:g}; ties: the higher dose")
        return TrueOptimum(dose, tuple(float(v) for v in u), tuple(bool(v) for v in ok), "BOIN12 utility", rule)

    def evidence(self, states: States) -> "Boin12Evidence":
        """What rules 1-4 read, from complete data (TITE-BOIN12 supplies its own from pending data)."""
        c, b = self.config, self.boundaries
        n_d = states.at_current(states.n)
        y_d = states.at_current(states.tox)
        m = np.minimum(n_d, b.n_max)
        tox_e, fut_e = _eliminated(c, states.n, states.tox, states.eff)
        return Boin12Evidence(self.desirability(states), tox_e, fut_e, y_d >= b.deescalate[m], y_d <= b.escalate[m])

    def _move(self, states: States, ev: "Boin12Evidence | None" = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rules 2-4: ``(next dose, chosen dose eliminated, toxicity elimination, any elimination, n at current)``."""
        c = self.config
        if ev is None:
            ev = self.evidence(states)
        s, nd = states.n_states, c.n_doses
        rows = np.arange(s)
        d = states.current
        n_d = states.at_current(states.n)
        tox_e = ev.tox_eliminated
        elim = tox_e | ev.futile
        des = np.where(elim, -np.inf, ev.desirability)
        idx = np.arange(nd)[None, :]
        lower = np.where(~elim & (idx < d[:, None]), idx, -1).max(axis=1)
        upper = np.where(~elim & (idx > d[:, None]), idx, nd).min(axis=1)
        deesc = ev.deescalate

        # 2. de-escalation: to the highest admissible lower dose, else stay (stop if d is eliminated)
        nxt_de = np.where(lower >= 0, lower, d)
        # 3. desirability among the admissible neighbours (ties to the higher dose)
        allow_up = (upper < nd) & ((n_d < c.n_star) | ev.escalate_ok)
        best = np.where(lower >= 0, lower, d)
        best_des = np.where(lower >= 0, des[rows, np.maximum(lower, 0)], -np.inf)
        take = des[rows, d] >= best_des
        best = np.where(take, d, best)
        best_des = np.where(take, des[rows, d], best_des)
        up_des = np.where(allow_up, des[rows, np.minimum(upper, nd - 1)], -np.inf)
        take = allow_up & (up_des >= best_des)
        best = np.where(take, upper, best)
        nxt = np.where(deesc, nxt_de, best)
        chosen_elim = elim[rows, nxt]
        # 4. dose exploration
        explore = (upper < nd) & (n_d >= c.n_explore) & ~deesc
        explore &= states.n[rows, np.minimum(upper, nd - 1)] == 0
        nxt = np.where(explore & ~chosen_elim, upper, nxt)
        return nxt, chosen_elim, tox_e, elim, n_d

    def decide(self, states: States) -> Decisions:
        return self.decide_on(states, self.evidence(states))

    def decide_on(self, states: States, ev: "Boin12Evidence") -> Decisions:
        """Rules 1-4 and the shared rules on given evidence (:meth:`evidence` for complete data).

        Stop order as the software's: all doses eliminated, then ``n_earlystop``,
        then the chosen dose eliminated (a trial at ``n_earlystop`` ends there).
        """
        c = self.config
        nxt, chosen_elim, tox_e, elim, n_d = self._move(states, ev)
        early = n_d >= c.n_earlystop
        out = Decisions.go(nxt.astype(np.int64), c.cohort_size)
        out = out.with_stop(tox_e[:, 0], StopReason.ALL_TOXIC)
        out = out.with_stop(elim.all(axis=1) | (chosen_elim & ~early), StopReason.NO_ACCEPTABLE)
        out = out.with_stop(early, StopReason.N_AT_DOSE)
        return apply_rules(self.rules, RuleContext(states, out.dose, c.target), out)

    def explain(self, states: States, **options: Any) -> "Boin12Explanation":
        """Admissibility, desirability and the end-of-trial estimates of the first state (doses 1-based)."""
        one = states.take(slice(0, 1))
        est = boin12_estimates(self.config, one.n, one.tox, one.eff, one.both)
        d = int(one.current[0])

        def untried_nan(v: np.ndarray) -> np.ndarray:  # the software rule fits untried doses too; not shown
            return np.where(one.n[0] > 0, v, np.nan)

        return Boin12Explanation(
            current_dose=d + 1, admissible=tuple(bool(v) for v in self.admissible(one)[0]),
            desirability=tuple(float(v) for v in self.desirability(one)[0]),
            p_tox=tuple(float(v) for v in untried_nan(est.p_tox[0])),
            p_eff=tuple(float(v) for v in untried_nan(est.p_eff[0])),
            utility=tuple(float(v) for v in untried_nan(est.utility[0])),
            mtd_now=None if est.mtd[0] < 0 else int(est.mtd[0]) + 1,
            obd_now=None if est.obd[0] < 0 else int(est.obd[0]) + 1)

    def select(self, states: States) -> IntArray:
        """The optimal biological dose of the final data (:data:`NO_DOSE` if none).

        With ``selection="software"`` a trial whose last decision stopped it for
        safety or futility selects no dose even at ``max_n``: the authors' code
        takes that decision after every cohort, the last included, and reports
        such a trial as stopped early (ending at ``n_earlystop`` comes first).
        """
        m = states.matrix()[:, : 4 * states.n_doses]
        uniq, first, inverse = np.unique(m, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        est = boin12_estimates(self.config, states.n[first], states.tox[first], states.eff[first],
                               states.both[first])
        obd = est.obd[inverse]
        if self.config.selection == "software":
            _, chosen_elim, tox_e, elim, n_d = self._move(states)
            none = tox_e[:, 0] | elim.all(axis=1) | (chosen_elim & (n_d < self.config.n_earlystop))
            obd = np.where(none, NO_DOSE, obd)
        return select_with_rules(self.rules, RuleContext(states, obd, self.config.target))


@dataclass(frozen=True, slots=True, eq=False)
class Boin12Evidence:
    """What BOIN12's dose-finding rules read, for a batch of ``S`` states.

    Attributes
    ----------
    desirability
        ``(S, D)`` :math:`\\Pr(u > u_b \\mid \\text{data})` per dose.
    tox_eliminated, futile
        ``(S, D)`` toxicity elimination (this dose and higher) and futility (this dose).
    deescalate, escalate_ok
        ``(S,)`` at the current dose: BOIN's de-escalation boundary reached; DLT
        rate at or below :math:`\\lambda_e` (escalation allowed once :math:`n \\ge N^*`).
    """

    desirability: FloatArray
    tox_eliminated: np.ndarray
    futile: np.ndarray
    deescalate: np.ndarray
    escalate_ok: np.ndarray


@dataclass(frozen=True, slots=True)
class Boin12Explanation(ExplanationMixin):
    """What a BOIN12 decision rests on, for one state (doses 1-based).

    Attributes
    ----------
    current_dose
        The last cohort's dose.
    admissible, desirability
        Per dose: neither eliminated for toxicity nor futility; :math:`\\Pr(u > u_b)`.
    p_tox, p_eff, utility
        Per dose: the end-of-trial estimates on these data (NaN for untried doses).
    mtd_now, obd_now
        The MTD and optimal biological dose if the trial ended now (None: none).
    """

    current_dose: int
    admissible: tuple[bool, ...]
    desirability: tuple[float, ...]
    p_tox: tuple[float, ...]
    p_eff: tuple[float, ...]
    utility: tuple[float, ...]
    mtd_now: int | None
    obd_now: int | None
    rule: str = ("BOIN12 (Lin et al. 2020): among the admissible doses next to the current one, the most "
                 "desirable (highest Pr(utility > benchmark)); BOIN's boundaries restrict escalation")

    def table(self) -> dict[str, list]:
        return {"admissible": list(self.admissible), "desirability": list(self.desirability),
                "p_tox_est": list(self.p_tox), "p_eff_est": list(self.p_eff), "utility": list(self.utility)}

    def details(self) -> dict[str, object]:
        return {"rule": self.rule, "current_dose": self.current_dose, "mtd_now": self.mtd_now,
                "obd_now": self.obd_now}


@dataclass(frozen=True, slots=True, eq=False)
class Boin12Estimates:
    """End-of-trial estimates (``(S, D)`` arrays; ``(S,)`` doses).

    The paper's rule leaves untreated doses NaN; the software's fits them too
    (and its ``p_tox``, ``p_eff`` include the dose-index offsets).
    """

    p_tox: FloatArray
    p_eff: FloatArray
    utility: FloatArray
    admissible: np.ndarray
    mtd: IntArray
    obd: IntArray


def unimodal_regression(y: Any, w: Any, mode: int) -> np.ndarray:
    """Weighted least-squares fit, non-decreasing up to index ``mode`` and non-increasing after.

    For a mode value :math:`c`, the best left part is the increasing isotonic fit
    :math:`a` of the points before the mode clipped at :math:`c`, and the best right
    part the decreasing fit :math:`b` after it, clipped likewise (isotonic
    regression under a constant bound is the clipped unbounded fit). The
    objective :math:`w_m (y_m - c)^2 + \\sum_i w_i (y_i - \\min(a_i, c))^2 + \\dots`
    is quadratic between consecutive values of :math:`a, b`, so its minimum over
    :math:`c` is found exactly piece by piece (checked in the tests against an
    exhaustive search).

    >>> unimodal_regression([0.275, 0.138, 0.788], [6.87, 5.37, 8.26], mode=1).round(3).tolist()
    [0.275, 0.532, 0.532]
    """
    y = np.asarray(y, float)
    w = np.asarray(w, float)
    k = y.size
    if k == 0:
        return y.copy()
    left = isotonic_regression(y[:mode], w[:mode]) if mode > 0 else np.empty(0)
    right = isotonic_regression(y[mode + 1:][::-1], w[mode + 1:][::-1])[::-1] if mode < k - 1 else np.empty(0)
    side_y = np.concatenate([y[:mode], y[mode + 1:]])
    side_w = np.concatenate([w[:mode], w[mode + 1:]])
    side_f = np.concatenate([left, right])
    knots = np.unique(side_f)
    edges = np.concatenate([[-np.inf], knots, [np.inf]])
    best_c, best_obj = y[mode], np.inf
    for lo, hi in zip(edges[:-1], edges[1:]):
        clipped = side_f >= hi  # points held at c on this piece (a_i > c)
        den = w[mode] + side_w[clipped].sum()
        c = (w[mode] * y[mode] + (side_w * side_y)[clipped].sum()) / den
        c = min(max(c, lo), hi)
        f = np.minimum(side_f, c)
        obj = w[mode] * (y[mode] - c) ** 2 + float(np.sum(side_w * (side_y - f) ** 2))
        if obj < best_obj:
            best_c, best_obj = c, obj
    out = np.empty(k)
    out[:mode] = np.minimum(left, best_c)
    out[mode] = best_c
    out[mode + 1:] = np.minimum(right, best_c)
    return out


def _averaged_fit(y: np.ndarray, n: np.ndarray, *, weights: Literal["exact", "iso"]) -> np.ndarray:
    """``(S, D)`` umbrella fits of :math:`(y + 0.05)/(n + 0.1)` (weights :math:`n + 0.5`), averaged over the mode.

    The weight of the fit with mode :math:`m` is proportional to its binomial
    likelihood :math:`\\prod_j p_{m,j}^{y_j} (1 - p_{m,j})^{n_j - y_j}` (the
    binomial coefficients cancel).
    """
    fits = unimodal_fits((y + 0.05) / (n + 0.1), n + 0.5, weights=weights)  # (S, mode, D)
    loglik = (y[:, None, :] * np.log(fits) + (n - y)[:, None, :] * np.log1p(-fits)).sum(axis=-1)
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    return np.einsum("sm,smd->sd", post, fits)


def _paper_efficacy(eff: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Mode-averaged exact umbrella fit over the treated doses of each row (NaN elsewhere).

    Rows are grouped by their set of treated doses, so each group is one
    batched fit over its treated columns.
    """
    treated = n > 0
    out = np.full(n.shape, np.nan)
    patterns, group = np.unique(treated, axis=0, return_inverse=True)
    group = group.reshape(-1)
    for g, pattern in enumerate(patterns):
        if not pattern.any():
            continue
        rows = np.flatnonzero(group == g)
        cols = np.flatnonzero(pattern)
        fit = _averaged_fit(eff[np.ix_(rows, cols)].astype(float), n[np.ix_(rows, cols)].astype(float),
                            weights="exact")
        out[np.ix_(rows, cols)] = fit
    return out


def _estimates_paper(c: Boin12Config, n: np.ndarray, tox: np.ndarray, eff: np.ndarray,
                     tox_e: np.ndarray, adm: np.ndarray) -> Boin12Estimates:
    s, nd = n.shape
    treated = n > 0
    pt_raw = (tox + 0.05) / (n + 0.1)
    p_tox = np.where(treated, isotonic_regression(pt_raw, np.where(treated, n + 0.1, 0.0), treated), np.nan)
    p_eff = _paper_efficacy(eff, n)
    util = (100.0 * (1 - p_tox) * p_eff + c.u11 * p_tox * p_eff + c.u00 * (1 - p_tox) * (1 - p_eff))
    # MTD: closest to the target among treated doses not eliminated for toxicity; ties as select.mtd
    cand = treated & ~tox_e
    mtd = np.full(s, NO_DOSE, np.int64)
    best = np.full(s, np.inf)
    best_below = np.zeros(s, bool)
    for j in range(nd):
        dist = np.abs(p_tox[:, j] - c.target)
        below = p_tox[:, j] < c.target
        take = cand[:, j] & ((dist < best) | ((dist == best) & below & best_below))
        mtd = np.where(take, j, mtd)
        best = np.where(take, dist, best)
        best_below = np.where(take, below, best_below)
    # OBD: highest utility among admissible treated doses at or below the MTD; ties to the higher dose
    ok = adm & treated & (np.arange(nd)[None, :] <= mtd[:, None])
    u = np.where(ok, util, -np.inf)
    obd = nd - 1 - np.argmax(u[:, ::-1], axis=1)
    obd = np.where(ok.any(axis=1) & (mtd >= 0) & ~tox_e[:, 0], obd, NO_DOSE).astype(np.int64)
    return Boin12Estimates(p_tox, p_eff, util, adm, mtd, obd)


def _estimates_software(c: Boin12Config, n: np.ndarray, tox: np.ndarray, eff: np.ndarray,
                        tox_e: np.ndarray, adm: np.ndarray) -> Boin12Estimates:
    s, nd = n.shape
    j1 = np.arange(1, nd + 1, dtype=float)  # the software's 1-based dose index in its adjustments
    nf = n.astype(float)
    p_tox = isotonic_regression((tox + 0.05) / (nf + 0.1), nf + 0.1) + 0.001 * j1
    p_eff = _averaged_fit(eff.astype(float), nf, weights="iso") + 0.01 * j1
    util = c.u11 * p_eff + c.u00 * (1.0 - p_tox)
    ok = adm & (n > 0)
    mtd = np.argmin(np.abs(p_tox - c.target), axis=1).astype(np.int64)  # first minimum, all doses
    ok &= np.arange(nd)[None, :] <= mtd[:, None]
    obd = np.argmax(np.where(ok, util, -np.inf), axis=1)  # first maximum
    obd = np.where(ok.any(axis=1) & ~tox_e[:, 0], obd, NO_DOSE).astype(np.int64)
    return Boin12Estimates(p_tox, p_eff, util, adm, mtd, obd)


def boin12_estimates(config: Boin12Config, n: Any, tox: Any, eff: Any, both: Any) -> Boin12Estimates:
    """Toxicity and efficacy estimates, utility, MTD and OBD for a batch of final data.

    Vectorised across rows (no per-trial loop); ``config.selection`` chooses
    the software's or the paper's rule (module docstring, *Final selection*).
    ``both`` is accepted for symmetry with the design's states; neither rule
    uses it (their utility is a function of the marginal estimates).
    """
    c = config
    n = np.atleast_2d(np.asarray(n, np.int64))
    tox = np.atleast_2d(np.asarray(tox, np.int64))
    eff = np.atleast_2d(np.asarray(eff, np.int64))
    tox_e, fut_e = _eliminated(c, n, tox, eff)
    adm = ~(tox_e | fut_e)
    if c.selection == "software":
        return _estimates_software(c, n, tox, eff, tox_e, adm)
    return _estimates_paper(c, n, tox, eff, tox_e, adm)


def boin12_rds_table(config: Boin12Config, n_values: Any = None) -> "pd.DataFrame":
    """The rank-based desirability scores (the paper's Table 3), one row per outcome.

    Rows for ``n`` in ``n_values`` (default 0 and every cohort multiple up to
    ``max_n``) and every :math:`y_T, y_E \\le n` (and, unless :math:`u_{11} + u_{00}
    = 100`, every number :math:`y_{TE}` with both). Columns: ``n, dlt, response``
    (``both``), ``desirability`` (:math:`\\Pr(u > u_b)`), ``admissible`` and ``rds``,
    the rank of the desirability among the admissible rows (ties averaged, as R's
    ``rank``; None where eliminated, the paper's "E").

    Examples
    --------
    >>> cfg = Boin12Config(target=0.35, n_doses=5, phi_e=0.25)
    >>> t = boin12_rds_table(cfg, [0, 3, 6, 9]).set_index(["n", "dlt", "response"])
    >>> float(t.loc[(3, 0, 3), "rds"]), float(t.loc[(9, 2, 3), "rds"])  # Table 3 of Lin et al. (2020)
    (91.0, 32.5)
    """
    import pandas as pd

    c = config
    if n_values is None:
        n_values = [0, *range(c.cohort_size, c.max_n + 1, c.cohort_size)]
    recs = []
    for n in n_values:
        n = int(n)
        for yt, ye in itertools.product(range(n + 1), range(n + 1)):
            if c.additive:
                bmin = bmax = max(0, yt + ye - n)
            else:
                bmin, bmax = max(0, yt + ye - n), min(yt, ye)
            for yb in range(bmin, bmax + 1):
                recs.append((n, yt, ye, yb))
    a = np.array(recs, np.int64)
    nn, yt, ye, yb = a.T
    des = _desirability(c, nn, yt, ye, yb)
    tox_e, fut_e = _eliminated(c, nn[:, None].astype(float), yt[:, None].astype(float), ye[:, None].astype(float))
    adm = ~(tox_e[:, 0] | fut_e[:, 0])
    rds = np.full(a.shape[0], np.nan)
    rds[adm] = stats.rankdata(des[adm], method="average")
    df = pd.DataFrame({"n": nn, "dlt": yt, "response": ye, "both": yb, "desirability": des,
                       "admissible": adm, "rds": rds})
    if c.additive:
        df = df.drop(columns="both")
    return df


ENTRY = DesignEntry(
    kind="boin12", name="BOIN12 utility-based phase I/II design", config=Boin12Config, design=Boin12Design,
    explanation=Boin12Explanation, methods="escalade.reports.methods_tite:boin12_methods",
    citation="Lin R, Zhou Y, Yan F, Li D, Yuan Y (2020). BOIN12: Bayesian optimal interval phase I/II trial design "
             "for utility-based dose finding in immunotherapy and targeted therapies. JCO Precis Oncol 4:1393-1402.",
    aliases=("boin-12",))
