"""TITE-BOIN12: BOIN12 with late-onset toxicity and efficacy.

Zhou Y, Lin R, Lee JJ, et al. (2022), Stat Med 41:1918-1931.
TITE-BOIN12 takes BOIN12's decisions (:mod:`escalade.design.boin12`: admissibility,
BOIN's boundaries, desirability among the admissible neighbours, dose
exploration, final OBD selection) while patients' toxicity or efficacy
outcomes are still *pending*, with the paper's approximated likelihood, and
is BOIN12 exactly when nothing is pending.

Pending data (approximated likelihood). At dose :math:`j`, a patient's toxicity
outcome is *observed* (a DLT), *complete* (the DLT window :math:`W_T` ended
without one) or *pending* with follow-up :math:`t_i < W_T`; likewise for efficacy
with the assessment window :math:`W_E`. With :math:`y_{T,j}` observed DLTs and
weights :math:`w_i = t_i / W_T` for the pending patients, the effective sample
size and the estimate are

.. math::

    \\tilde n_{T,j} = \\#\\{\\text{observed or complete}\\} + \\sum_{i\\ \\text{pending}} w_i,
    \\qquad \\hat p_{T,j} = y_{T,j} / \\tilde n_{T,j},

and a pending patient's DLT, under uniform onset in the window, has the
conditional probability :math:`\\hat p_{T,j}(1 - w_i)/(1 - \\hat p_{T,j} w_i)`; the
same for efficacy (:math:`\\tilde n_{E,j}, \\hat p_{E,j}`). A patient's expected
utility is the utility of the four outcome cells under these probabilities (a
product over the pending outcomes only; an observed outcome is 0 or 1), and
the quasi-events are :math:`x_j = \\sum_i E[u_i]/100`, so the desirability is
:math:`\\Pr(u > u_b)` under Beta(:math:`\\alpha + x_j`, :math:`\\beta + n_j - x_j`) with
:math:`n_j` all patients treated at :math:`j` (pending ones included).

Decision at the arrival of a new cohort, current dose :math:`d`:

1. *Accrual suspension*: more than ``max_pending`` (50%) of the patients at
   :math:`d` with a pending toxicity outcome, or more than that with a pending
   efficacy outcome -- wait for more outcomes (unless the observed DLTs alone
   already reach BOIN's de-escalation boundary, which pending outcomes can only
   confirm). The paper's rule, as TITE-BOIN's (:mod:`escalade.design.tite_boin`).
2. *Admissibility* (BOIN12's Beta(1, 1) posteriors, on the data that pending
   outcomes cannot overturn): once :math:`n_j \\ge 3`, dose :math:`j` and higher are
   eliminated if :math:`\\Pr(p_T > \\phi_T) > c_T` under Beta(:math:`1 + y_T`,
   :math:`1 + n_j - y_T`) -- observed DLTs among all treated patients, as
   TITE-BOIN's elimination (a pending outcome can only add a DLT); dose :math:`j`
   if :math:`\\Pr(p_E < \\phi_E) > c_E` under Beta(:math:`1 + y_E`, :math:`1 + m_j - y_E`)
   with :math:`m_j \\ge 3` patients whose response assessment is complete.
3. BOIN12's rules 2-4 with :math:`\\hat p_{T,d}` in place of :math:`y/n`: de-escalate if
   :math:`\\hat p_{T,d} \\ge \\lambda_d` (or the observed DLTs reach BOIN's table);
   escalation past :math:`N^*` needs :math:`\\hat p_{T,d} \\le \\lambda_e`; the
   desirabilities above choose among the admissible neighbours.

With nothing pending at a dose every quantity above is BOIN12's (effective
sample size :math:`n_j`, the same quasi-events), and at the current dose BOIN's
integer table decides; so with complete data TITE-BOIN12 *is* BOIN12 (a test).
The final selection is BOIN12's on the complete data, once every window has
ended (``selection``: the software's rule by default); the time-aware engine
reports no dose for a trial stopped for toxicity or futility.

Where escalade fills in what the paper leaves open (its supplement was not
available here): admissibility as in 2 rather than on the approximated
likelihood (with early-onset DLTs, :math:`y_T / \\tilde n_T` overstates the DLT rate
while the DLT-free patients are pending, and eliminating on it stopped
trials for toxicity more often than BOIN12 itself in the shipped CAR-T
scenarios: 30% against 24% selecting no dose when only DL1 is tolerable; with
2 it is 21%); a dose whose patients are all pending at zero follow-up
(:math:`\\tilde n = 0`) takes :math:`\\phi_T` (:math:`\\phi_E`) as its estimate;
elimination is recomputed at every decision from the data then (stateless; the
authors' BOIN12 code keeps a dose eliminated once it was).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from escalade.design.base import (ConfigDesign, Decisions, DesignEntry, FloatArray, FollowUp, IntArray, States,
                                  StopReason, TiteDecisions, TiteExplanation)
from escalade.design.boin12_kernels import pending_sums
from escalade.design.boin12 import (Boin12Config, Boin12Design, Boin12Evidence, Boin12Explanation, _beta_tail,
                                    _elimination_probs, _quasi_events)
from escalade.design.config import check_probability
from escalade.design.errors import ConfigError

__all__ = ["ENTRY", "TiteBoin12Config", "TiteBoin12Design", "PendingSummary", "pending_summary"]

_MIN_N_ELIM = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class TiteBoin12Config(Boin12Config):
    """TITE-BOIN12 parameters: BOIN12's (:class:`~escalade.design.boin12.Boin12Config`) plus one.

    Attributes
    ----------
    max_pending
        Accrual suspension: wait when more than this fraction of the patients at
        the current dose have a pending toxicity outcome, or more than this
        fraction a pending efficacy outcome (0.5, as the paper).

    The windows themselves are the study's (``dlt_window_days``,
    ``response_days``): the time-aware engine supplies each patient's follow-up.
    """

    max_pending: float = 0.5

    def __post_init__(self) -> None:
        Boin12Config.__post_init__(self)
        check_probability("max_pending", self.max_pending)
        if self.max_pending >= 1.0:
            raise ConfigError("max_pending", self.max_pending,
                              "must be below 1 (suspend when more than this fraction is pending; paper: 0.5)")


@dataclass(frozen=True, slots=True, eq=False)
class PendingSummary:
    """Per-dose approximated-likelihood summaries of ``S`` trials (``(S, D)`` arrays; see the module docstring)."""

    n: FloatArray
    y_tox: FloatArray
    ess_tox: FloatArray
    p_tox: FloatArray
    pending_tox: IntArray
    y_eff: FloatArray
    ess_eff: FloatArray
    p_eff: FloatArray
    pending_eff: IntArray
    quasi_events: FloatArray


def pending_summary(config: Boin12Config, states: States, followup: FollowUp) -> PendingSummary:
    """Effective sample sizes, estimates and quasi-events per dose from pending data.

    Patients' observed DLTs and responses are ``followup.dlt`` and
    ``followup.eff``; their follow-up fractions ``followup.fraction`` (DLT
    window) and ``followup.eff_fraction`` (efficacy window). Where nothing is
    pending at a dose, the quasi-events are BOIN12's from the counts in ``states``.

    Examples
    --------
    >>> from escalade.design.base import States, FollowUp
    >>> cfg = Boin12Config(target=0.35, n_doses=2, phi_e=0.25)
    >>> s = States.from_counts([[3, 0]], [[1, 0]], [[1, 0]], [[0, 0]], current=0)
    >>> f = FollowUp([[0, 0, 0]], [[True, False, False]], [[0.2, 1.0, 0.5]],
    ...              [[False, True, False]], [[1.0, 1.0, 0.5]])
    >>> p = pending_summary(cfg, s, f)
    >>> float(p.ess_tox[0, 0]), float(p.ess_eff[0, 0]), round(float(p.p_tox[0, 0]), 3)
    (2.5, 2.5, 0.4)
    """
    c = config
    f = followup
    if f.eff is None or f.eff_fraction is None:  # no efficacy follow-up: nothing pending, no response seen
        eff, eff_fraction = np.zeros(f.dose.shape, bool), np.ones(f.dose.shape)
    else:
        eff, eff_fraction = f.eff, f.eff_fraction
    x_counts = _quasi_events(c, states.n, states.tox, states.eff, states.both)
    n, y_t, ess_t, p_t, pend_t, y_e, ess_e, p_e, pend_e, x = pending_sums(
        np.ascontiguousarray(f.dose, np.int64), np.ascontiguousarray(f.dlt, np.bool_),
        np.ascontiguousarray(f.fraction, np.float64), np.ascontiguousarray(eff, np.bool_),
        np.ascontiguousarray(eff_fraction, np.float64), int(c.n_doses), float(c.target), float(c.phi_e),
        float(c.u11), float(c.u00), np.ascontiguousarray(x_counts, np.float64))
    return PendingSummary(n, y_t, ess_t, p_t, pend_t.astype(np.int64), y_e, ess_e, p_e, pend_e.astype(np.int64), x)


@dataclass(frozen=True, slots=True)
class TiteBoin12Design(ConfigDesign):
    """TITE-BOIN12 as a decision on pending data (module docstring); BOIN12 on complete data."""

    config: TiteBoin12Config
    kind: ClassVar[str] = "tite_boin12"
    enumerable: ClassVar[bool] = False
    uses_efficacy: ClassVar[bool] = True
    memoise: ClassVar[bool] = False
    _b12: Boin12Design = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_b12", Boin12Design(self.config))

    @property
    def boundaries(self) -> Any:
        return self._b12.boundaries

    @property
    def rules(self) -> tuple:
        return self._b12.rules

    @property
    def state_fields(self) -> str:
        return self._b12.state_fields

    def decide(self, states: States) -> Decisions:
        """Complete data: exactly BOIN12."""
        return self._b12.decide(states)

    def select(self, states: States) -> IntArray:
        """BOIN12's final selection on the complete data."""
        return self._b12.select(states)

    def admissible(self, states: States) -> np.ndarray:
        return self._b12.admissible(states)

    def explain(self, states: States, **options: Any) -> Boin12Explanation:
        return self._b12.explain(states, **options)

    def true_optimum(self, p_tox: Any, p_eff: Any, p_both: Any | None = None) -> Any:
        return self._b12.true_optimum(p_tox, p_eff, p_both)

    def _evidence(self, states: States, ps: PendingSummary) -> tuple[Boin12Evidence, np.ndarray, np.ndarray]:
        """BOIN12's evidence from the pending summary; also (pending at d, observed DLTs force de-escalation)."""
        c, b = self.config, self.boundaries
        rows = np.arange(states.n_states)
        d = states.current
        n = states.n.astype(float)
        # toxicity: observed DLTs among all treated (a pending outcome can only add a DLT, so the elimination
        # never has to be undone); futility: responses among the patients whose assessment is complete
        assessed = n - ps.pending_eff
        p_over, p_fut = _elimination_probs(c, n, ps.y_tox, assessed, ps.y_eff)
        tox_e = np.logical_or.accumulate((n >= _MIN_N_ELIM) & (p_over > c.cutoff_eli), axis=-1)
        fut_e = (assessed >= _MIN_N_ELIM) & (p_fut > c.cutoff_eli_eff)
        des = _beta_tail(c, c.prior_alpha + ps.quasi_events, c.prior_beta + n - ps.quasi_events)
        n_d = states.at_current(states.n)
        y_d = states.at_current(states.tox)
        m = np.minimum(n_d, b.n_max)
        table_de = y_d >= b.deescalate[m]
        pend_d = ps.pending_tox[rows, d] > 0
        phat = ps.p_tox[rows, d]
        deesc = table_de | (pend_d & (phat >= b.lambda_d))
        esc_ok = np.where(pend_d, phat <= b.lambda_e, y_d <= b.escalate[m])
        return Boin12Evidence(des, tox_e, fut_e, deesc, esc_ok), pend_d, table_de

    def decide_tite(self, states: States, followup: FollowUp) -> TiteDecisions:
        """Next dose, stop or accrual suspension for every trial, on pending data."""
        c = self.config
        rows = np.arange(states.n_states)
        d = states.current
        ps = pending_summary(c, states, followup)
        ev, _, table_de = self._evidence(states, ps)
        out = self._b12.decide_on(states, ev)
        n_d = states.at_current(states.n)
        too_many = ((ps.pending_tox[rows, d] > c.max_pending * n_d)
                    | (ps.pending_eff[rows, d] > c.max_pending * n_d))
        safety = out.stop & np.isin(out.reason, (int(StopReason.ALL_TOXIC), int(StopReason.NO_ACCEPTABLE)))
        return TiteDecisions(out, too_many & ~table_de & ~safety)

    def explain_tite(self, states: States, followup: FollowUp) -> TiteExplanation:
        """Effective sample sizes, estimates and desirability per dose for the first trial (conduct mode).

        A patient's weight is its toxicity follow-up fraction while its DLT
        outcome is pending (1 once observed or complete).
        """
        c, b = self.config, self.boundaries
        one_s, one_f = states.take(slice(0, 1)), followup.take(slice(0, 1))
        ps = pending_summary(c, one_s, one_f)
        ev, pend_d, _ = self._evidence(one_s, ps)
        d = int(one_s.current[0])
        n_d = int(one_s.n[0, d])
        weights = np.where(one_f.pending[0], one_f.fraction[0], np.where(one_f.treated[0], 1.0, 0.0))
        rule = ("TITE-BOIN12 (Zhou et al. 2022): BOIN12's rules with pending outcomes weighted by their follow-up "
                "(effective sample sizes; expected utility of pending patients); suspend accrual when more than "
                f"{c.max_pending:.0%} of the patients at the current dose have a pending toxicity or efficacy "
                "outcome")
        untried = one_s.n[0] == 0
        per_dose = {"ess_tox": ps.ess_tox[0].tolist(), "p_tox_hat": np.where(untried, np.nan, ps.p_tox[0]).tolist(),
                    "ess_eff": ps.ess_eff[0].tolist(), "p_eff_hat": np.where(untried, np.nan, ps.p_eff[0]).tolist(),
                    "quasi_events": ps.quasi_events[0].tolist(), "desirability": ev.desirability[0].tolist(),
                    "admissible": (~(ev.tox_eliminated | ev.futile))[0].tolist()}
        return TiteExplanation(weights, rule, {
            "n_at_current": n_d, "pending_tox_at_current": int(ps.pending_tox[0, d]),
            "pending_eff_at_current": int(ps.pending_eff[0, d]), "pending_limit": c.max_pending * n_d,
            "lambda_e": b.lambda_e, "lambda_d": b.lambda_d, "p_tox_hat_at_current": float(ps.p_tox[0, d]),
        }, per_dose)


ENTRY = DesignEntry(
    kind="tite_boin12", name="TITE-BOIN12 (late-onset toxicity and efficacy)", config=TiteBoin12Config,
    design=TiteBoin12Design, explanation=Boin12Explanation, methods="escalade.reports.methods_tite:tite_boin12_methods",
    citation="Zhou Y, Lin R, Lee JJ, et al. (2022). TITE-BOIN12: a Bayesian phase I/II trial "
             "design to find the optimal biological dose with late-onset toxicity and efficacy. Stat Med "
             "41:1918-1931.",
    aliases=("tite-boin12",))
