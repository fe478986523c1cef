"""Time-to-event Bayesian optimal interval design (TITE-BOIN).

Yuan, Lin, Li, Nie & Warren (2018), Clin Cancer Res 24:4921-4930. TITE-BOIN
decides for a new cohort while some patients' DLT outcomes are still pending,
and reduces to BOIN (:mod:`escalade.design.boin`: same boundaries
:math:`\\lambda_e, \\lambda_d`, elimination and final selection) when none is.

At the current dose let :math:`n` patients be treated, :math:`y` of them with
an observed DLT, :math:`c` *pending* (no DLT yet, window not complete), and
:math:`\\mathrm{STFT} = \\sum_{i\\ \\mathrm{pending}} u_i / W` their standardized total
follow-up time. A pending patient followed for :math:`u_i` of the window
:math:`W` has a DLT (under uniform onset) with probability
:math:`(1 - u_i/W)\\,p / (1 - p\\,u_i/W)`, which the paper approximates by
:math:`(1 - u_i/W)\\,\\tilde p / (1 - \\tilde p)` with :math:`\\tilde p` the
posterior mean from the completed patients under a Beta(:math:`\\phi/2`,
:math:`1 - \\phi/2`) prior. The imputed DLT rate is

.. math::

    \\tilde p = \\frac{y + \\phi/2}{n - c + 1}, \\qquad
    \\hat p = \\frac{y + (c - \\mathrm{STFT})\\,\\tilde p / (1 - \\tilde p)}{n},

and :math:`\\hat p` takes the place of :math:`y/n` in BOIN's rule. Solving for
STFT gives the pre-tabulated rules (:func:`tite_boin_rules`): escalate iff
:math:`\\mathrm{STFT} \\ge c - (n\\lambda_e - y)(1-\\tilde p)/\\tilde p`, de-escalate
iff :math:`\\mathrm{STFT} \\le c - (n\\lambda_d - y)(1-\\tilde p)/\\tilde p`.

What is implemented, in order, at a decision with data pending at the
current dose (checked against the published decision table for
:math:`\\phi = 0.2` reproduced in Table 1 of PMC9260438, which cites the paper):

1. *Elimination* (as BOIN): dose :math:`j` and higher are eliminated once
   :math:`n_j \\ge 3` and :math:`\\Pr(p_j > \\phi \\mid y_j, n_j) > 0.95` with the
   *observed* DLTs and all treated patients (a pending patient can only add a
   DLT). All doses eliminated: stop. The current dose eliminated (a late DLT
   at a lower dose): go to the highest admissible lower dose.
2. *Certain de-escalation*: :math:`y/n` already at or above BOIN's
   de-escalation boundary: de-escalate, whatever is pending (pending outcomes
   can only raise :math:`\\hat p`).
3. *Accrual suspension*: more than ``max_pending`` (50%) of the patients at the
   current dose pending (and neither rule 1 nor 2 moves down): suspend accrual
   until more outcomes are known.
4. Otherwise, when :math:`y/n < \\phi` only escalation is considered
   (escalate if :math:`\\hat p \\le \\lambda_e`, else stay); when :math:`y/n > \\phi`
   only de-escalation (de-escalate if :math:`\\hat p \\ge \\lambda_d`, else stay);
   :math:`y/n = \\phi`: stay. This split is what the published tables show
   (e.g. :math:`n = 6, y = 1, c \\le 3` for :math:`\\phi = 0.2`: stay whatever the
   STFT); the paper's plain rule would also de-escalate on imputed DLTs alone
   when :math:`y/n < \\phi` -- set ``deescalate_below_target=True`` for that.
5. BOIN's ``n_earlystop`` and ``extrasafe`` stops as in :mod:`~escalade.design.boin`.

Elimination (1, as a limit on the next dose and a stop) and the stops of 5 are
BOIN's rules written with the shared rule classes
(:func:`~escalade.design.boin.boin_rules`, :mod:`escalade.design.rules`),
applied order-free to the move of 2-4 with the shared guardrails (by default
no escalation right after a cohort whose patients all had an observed DLT);
the accrual suspension of 3 holds every stop but a safety stop.

With nothing pending at the current dose the rule is BOIN's, including the
package's tie handling of :math:`\\lambda_d n`. Final selection: ``BOIN::select.mtd``
on the complete data once every patient's window has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from escalade.design.base import (ConfigDesign, Decisions, DesignEntry, FollowUp, IntArray, States, StopReason, TiteDecisions,
                                  TiteExplanation)
from escalade.design.boin import BoinBoundaries, BoinConfig, BoinDesign, BoinExplanation, boin_explanation
from escalade.design.config import check_probability
from escalade.design.errors import ConfigError
from escalade.design.rules import RuleContext, SharedRules, apply_rules

__all__ = ["ENTRY", "TiteBoinConfig", "TiteBoinDesign", "TiteBoinRule", "tite_boin_rules", "format_tite_table",
           "imputed_rate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TiteBoinConfig(SharedRules):
    """TITE-BOIN parameters: BOIN's (names and defaults of the ``BOIN`` package) plus two.

    Attributes
    ----------
    max_pending
        Accrual-suspension threshold: suspend when more than this fraction of
        the patients at the current dose is pending (0.5 in the paper).
    deescalate_below_target
        Let imputed DLTs alone trigger de-escalation when :math:`y/n < \\phi`
        (default False, as the published tables).

    The other parameters are BOIN's (:class:`~escalade.design.boin.BoinConfig`).
    The shared trial rules (:class:`~escalade.design.rules.SharedRules`, the
    all-DLT guardrail on by default) apply to the observed data.
    """

    target: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    p_saf: float | None = None
    p_tox: float | None = None
    cutoff_eli: float = 0.95
    extrasafe: bool = False
    offset: float = 0.05
    n_earlystop: int = 100
    bound_mtd: bool = False
    max_pending: float = 0.5
    deescalate_below_target: bool = False

    def __post_init__(self) -> None:
        self.check_rules()
        boin = self.boin()  # validates the shared fields, fills p_saf/p_tox
        object.__setattr__(self, "p_saf", boin.p_saf)
        object.__setattr__(self, "p_tox", boin.p_tox)
        check_probability("max_pending", self.max_pending)
        if self.max_pending >= 1.0:
            raise ConfigError("max_pending", self.max_pending,
                              "must be below 1 (suspend when more than this fraction is pending; paper: 0.5)")
        if not isinstance(self.deescalate_below_target, bool):
            raise ConfigError("deescalate_below_target", self.deescalate_below_target, "must be true or false")

    def boin(self) -> BoinConfig:
        """The equivalent BOIN configuration (complete data)."""
        return BoinConfig(target=self.target, n_doses=self.n_doses, cohort_size=self.cohort_size,
                          max_n=self.max_n, start_dose=self.start_dose, p_saf=self.p_saf, p_tox=self.p_tox,
                          cutoff_eli=self.cutoff_eli, extrasafe=self.extrasafe, offset=self.offset,
                          n_earlystop=self.n_earlystop, bound_mtd=self.bound_mtd, **self.shared_rule_fields())

    @property
    def lambda_e(self) -> float:
        return self.boin().lambda_e

    @property
    def lambda_d(self) -> float:
        return self.boin().lambda_d


def imputed_rate(n: Any, y: Any, c: Any, stft: Any, target: float) -> np.ndarray:
    """TITE-BOIN's :math:`\\hat p` (module docstring); ``y/n`` when nothing is pending.

    >>> round(float(imputed_rate(9, 1, 3, 0.7732, 0.2)), 4)  # at the escalation threshold (lambda_e)
    0.1572
    """
    n = np.asarray(n, float)
    y = np.asarray(y, float)
    c = np.asarray(c, float)
    stft = np.asarray(stft, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pt = (y + target / 2.0) / (n - c + 1.0)
        odds = pt / (1.0 - pt)
        return np.where(n > 0, (y + (c - stft) * odds) / n, 0.0)


def _thresholds(n: Any, y: Any, c: Any, target: float, lam: float) -> np.ndarray:
    """STFT at which :math:`\\hat p` equals ``lam``: :math:`c - (n\\lambda - y)(1-\\tilde p)/\\tilde p`."""
    n = np.asarray(n, float)
    y = np.asarray(y, float)
    c = np.asarray(c, float)
    pt = (y + target / 2.0) / (n - c + 1.0)
    return c - (n * lam - y) * (1.0 - pt) / pt


@dataclass(frozen=True, slots=True)
class TiteBoinDesign(ConfigDesign):
    """TITE-BOIN as a decision on pending data (not enumerable; see the module docstring).

    :meth:`decide` (complete data) and :meth:`select` are BOIN's.
    """

    config: TiteBoinConfig
    kind: ClassVar[str] = "tite_boin"
    enumerable: ClassVar[bool] = False
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False
    _boin: BoinDesign = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_boin", BoinDesign(self.config.boin()))

    @property
    def boundaries(self) -> BoinBoundaries:
        return self._boin.boundaries

    @property
    def rules(self) -> tuple:
        """BOIN's rules (:func:`~escalade.design.boin.boin_rules`), applied to the observed data."""
        return self._boin.rules

    @property
    def state_fields(self) -> str:
        return self._boin.state_fields

    def decide(self, states: States) -> Decisions:
        """Complete data: exactly BOIN."""
        return self._boin.decide(states)

    def select(self, states: States) -> IntArray:
        return self._boin.select(states)

    def eliminated(self, states: States) -> np.ndarray:
        """``(S, D)`` BOIN's elimination on the complete data."""
        return self._boin.eliminated(states)

    def explain(self, states: States, **options: Any) -> BoinExplanation:
        """BOIN's explanation of the complete data of the first state (conduct mode)."""
        return boin_explanation(self._boin, states)

    def decide_tite(self, states: States, followup: FollowUp) -> TiteDecisions:
        """Next dose, stop or accrual suspension for every trial, on pending data."""
        cfg, b = self.config, self.boundaries
        s = states.n_states
        d = states.current
        top = cfg.n_doses - 1
        rows = np.arange(s)
        at_d = followup.pending & (followup.dose == d[:, None])
        c = at_d.sum(axis=1)
        stft = np.where(at_d, followup.fraction, 0.0).sum(axis=1)
        n = states.at_current(states.n)
        y = states.at_current(states.tox)
        m = np.minimum(n, b.n_max)
        elim = self._boin.eliminated(states)

        deesc_obs = y >= b.deescalate[m]
        cur_elim = elim[rows, d]
        has_p = c > 0
        suspend = has_p & ~deesc_obs & ~cur_elim & (c > cfg.max_pending * n)
        phat = imputed_rate(n, y, c, stft, cfg.target)
        below = y < cfg.target * n
        above = y > cfg.target * n
        esc_p = phat <= b.lambda_e
        deesc_p = phat >= b.lambda_d
        if not cfg.deescalate_below_target:
            esc_p &= below
            deesc_p &= above
        esc = np.where(has_p, esc_p, y <= b.escalate[m])
        deesc = deesc_obs | (has_p & deesc_p & ~esc_p)

        # the boundaries' move; elimination (never into, and out of, an eliminated dose: to the highest
        # admissible lower dose), extrasafe and n_earlystop are BOIN's rules, applied order-free with the
        # shared ones; suspension holds every stop but a safety stop
        nxt = np.where(esc & (d < top), d + 1, np.where(deesc & (d > 0), d - 1, d)).astype(np.int64)
        out = apply_rules(self._boin.rules, RuleContext(states, nxt, cfg.target), cfg.cohort_size, hold=suspend)
        return TiteDecisions(out, suspend & ~out.stop)


    def explain_tite(self, states: States, followup: FollowUp) -> TiteExplanation:
        """Effective counts at the current dose of the first trial (conduct mode).

        A pending patient's weight is its follow-up fraction :math:`u_i/W` (its
        share of STFT); complete patients and observed DLTs weigh 1. Only the
        patients pending at the current dose enter the decision.
        """
        cfg, b = self.config, self.boundaries
        one = followup.take(slice(0, 1))
        d = int(states.current[0])
        at_d = one.pending[0] & (one.dose[0] == d)
        c = int(at_d.sum())
        stft = float(one.fraction[0][at_d].sum())
        n = int(states.n[0, d])
        y = int(states.tox[0, d])
        phat = float(imputed_rate(n, y, c, stft, cfg.target))
        ptilde = (y + cfg.target / 2.0) / (n - c + 1.0) if n else float("nan")
        weights = np.where(one.pending[0], one.fraction[0], np.where(one.treated[0], 1.0, 0.0))
        rule = (f"TITE-BOIN (Yuan et al. 2018): at the current dose, p_hat = (y + (c - STFT) p~/(1 - p~)) / n "
                f"replaces y/n in BOIN's rule (escalate if p_hat <= lambda_e, de-escalate if >= lambda_d); "
                f"suspend accrual when more than {cfg.max_pending:.0%} of the patients at the current dose "
                f"are pending")
        m = min(n, b.n_max)
        return TiteExplanation(weights, rule, {
            "n_at_current": n, "dlt_at_current": y, "pending_at_current": c, "stft": stft,
            "p_tilde": ptilde, "p_hat": phat, "lambda_e": b.lambda_e, "lambda_d": b.lambda_d,
            "pending_limit": cfg.max_pending * n, "deescalate_if_dlt_ge": int(b.deescalate[m]) if n else None,
        })


# ----------------------------------------------------------------------------------------------
# The pre-tabulated decision rules
# ----------------------------------------------------------------------------------------------

Action = Literal["escalate", "stay", "de-escalate", "de-escalate & eliminate", "suspend", "depends on STFT"]


@dataclass(frozen=True, slots=True)
class TiteBoinRule:
    """One row of the TITE-BOIN decision table.

    For ``n`` patients at the current dose with ``y`` observed DLTs (``y ..
    y_max`` for the grouped eliminating counts) and ``pending_min ..
    pending_max`` patients pending: ``action``. For ``"depends on STFT"``:
    escalate if STFT >= ``escalate_at``, de-escalate if STFT <= ``deescalate_at``
    (either may be None), otherwise stay.
    """

    n: int
    y: int
    pending_min: int
    pending_max: int
    action: Action
    escalate_at: float | None = None
    deescalate_at: float | None = None
    y_max: int | None = None


def tite_boin_rules(config: TiteBoinConfig, n_values: Any = None) -> list[TiteBoinRule]:
    """The decision table for ``n`` patients at the current dose (default: every
    cohort multiple up to ``max_n``); consecutive pending counts that share an
    unconditional action are grouped.

    Examples
    --------
    Row ``n = 9, y = 1, c = 3`` of the published table for target 0.2 (escalate
    if STFT >= 0.77, else stay):

    >>> cfg = TiteBoinConfig(target=0.2, n_doses=5)
    >>> [(r.action, round(r.escalate_at, 2)) for r in tite_boin_rules(cfg, [9]) if r.y == 1 and r.pending_min == 3]
    [('depends on STFT', 0.77)]
    """
    cfg = config
    b = BoinDesign(cfg.boin()).boundaries
    if n_values is None:
        n_values = range(cfg.cohort_size, cfg.max_n + 1, cfg.cohort_size)
    rules: list[TiteBoinRule] = []
    for n in n_values:
        n = int(n)
        m = min(n, b.n_max)
        elim_y = int(b.eliminate[m]) if n >= 3 else n + 1
        for y in range(0, min(n, elim_y) + 1):
            if y == elim_y:
                rules.append(TiteBoinRule(n, y, 0, n - y, "de-escalate & eliminate", y_max=n))
                continue
            cells = [(c, *_cell(cfg, b, n, y, c)) for c in range(0, n - y + 1)]
            start = 0
            for i in range(1, len(cells) + 1):
                if i == len(cells) or cells[i][1:] != cells[start][1:] or cells[start][1] == "depends on STFT":
                    _, action, te, td = cells[start]
                    rules.append(TiteBoinRule(n, y, cells[start][0], cells[i - 1][0], action, te, td))
                    start = i
    return rules


def _cell(cfg: TiteBoinConfig, b: BoinBoundaries, n: int, y: int, c: int
          ) -> tuple[Action, float | None, float | None]:
    """Action for ``(n, y, c)``, as :meth:`TiteBoinDesign.decide_tite` (same order of rules)."""
    m = min(n, b.n_max)
    if y >= b.deescalate[m]:
        return "de-escalate", None, None
    if c > cfg.max_pending * n:
        return "suspend", None, None
    if c == 0:
        return ("escalate" if y <= b.escalate[m] else "stay"), None, None
    below, above = y < cfg.target * n, y > cfg.target * n
    te = td = None
    if below or cfg.deescalate_below_target:
        t = float(_thresholds(n, y, c, cfg.target, b.lambda_e))
        if t <= 0:
            return "escalate", None, None
        te = t if t < c else None
    if above or cfg.deescalate_below_target:
        t = float(_thresholds(n, y, c, cfg.target, b.lambda_d))
        if t >= c:
            return "de-escalate", None, None
        td = t if t >= 0 else None
    if te is None and td is None:
        return "stay", None, None
    return "depends on STFT", te, td


def format_tite_table(config: TiteBoinConfig, n_values: Any = None, *, digits: int = 2) -> str:
    """The TITE-BOIN decision table as text (``escalade boundaries --tite``).

    Columns as in the published tables: patients treated at the current dose,
    DLTs observed, patients pending, and the escalate / stay / de-escalate
    entries ("Y", "Y & elim", or an STFT condition), or "suspend accrual".
    """
    cfg = config
    rows = [("n", "DLTs", "pending", "escalate", "stay", "de-escalate")]
    for r in tite_boin_rules(cfg, n_values):
        ys = f">={r.y}" if r.y_max is not None and r.y_max > r.y else str(r.y)
        if r.pending_min == r.pending_max:
            pend = str(r.pending_min)
        elif r.pending_min == 0:
            pend = f"<={r.pending_max}"
        elif r.pending_max == r.n - r.y:
            pend = f">={r.pending_min}"
        else:
            pend = f"{r.pending_min}-{r.pending_max}"
        esc = stay = de = ""
        if r.action == "escalate":
            esc = "Y"
        elif r.action == "stay":
            stay = "Y"
        elif r.action == "de-escalate":
            de = "Y"
        elif r.action == "de-escalate & eliminate":
            de = "Y & elim"
        elif r.action == "depends on STFT":
            te, td = r.escalate_at, r.deescalate_at
            esc = "" if te is None else f"STFT>={te:.{digits}f}"
            de = "" if td is None else f"STFT<={td:.{digits}f}"
            if te is not None and td is not None:
                stay = f"{td:.{digits}f}<STFT<{te:.{digits}f}"
            elif te is not None:
                stay = f"STFT<{te:.{digits}f}"
            else:
                stay = f"STFT>{td:.{digits}f}"
        else:
            esc = "suspend accrual"
        rows.append((str(r.n), ys, pend, esc, stay, de))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = [
        f"TITE-BOIN decision table: target {cfg.target:g}, lambda_e {cfg.lambda_e:.4f}, "
        f"lambda_d {cfg.lambda_d:.4f}; suspend accrual when more than {cfg.max_pending:.0%} of the "
        f"patients at the current dose are pending",
        "STFT = standardized total follow-up time of the pending patients (sum of follow-up / DLT window).",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


ENTRY = DesignEntry(
    kind="tite_boin", name="Time-to-event Bayesian optimal interval (TITE-BOIN) design", config=TiteBoinConfig,
    design=TiteBoinDesign, explanation=BoinExplanation, params_documented_by=BoinConfig, methods="escalade.reports.methods_tite:tite_boin_methods",
    citation="Yuan Y, Lin R, Li D, Nie L, Warren KE (2018). Time-to-event Bayesian optimal interval design to "
             "accelerate phase I trials. Clin Cancer Res 24:4921-4930.",
    aliases=("titeboin", "tite-boin"))
