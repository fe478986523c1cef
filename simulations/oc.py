"""Operating characteristics and paired differences, from one per-trial metric table.

Every characteristic of ``oc.csv`` is a ratio of (weighted) means of two
per-trial quantities, a numerator :math:`a_i` and a denominator :math:`b_i`
(:class:`PerTrial`):

.. math::

    \\hat R = \\frac{\\sum_i w_i a_i}{\\sum_i w_i b_i},

with :math:`b_i = 1` for a plain mean (selection %, sample size, DLTs) and a
per-trial count for a ratio of means (DLT rate = DLTs / patients, % of
patients at the MTD = patients at the MTD / patients, true ORR at the
selected dose over the trials that selected one). Weights are :math:`1/T` for
simulated trials and the terminal-state probabilities for exact enumeration
(which has no Monte Carlo error: ``se`` 0 and ``exact`` True).

The Monte Carlo standard error is the delta-method one: with the per-trial
influence values :math:`\\varphi_i = (a_i - \\hat R b_i)/\\bar b`,
:math:`\\mathrm{SE}(\\hat R) = s_\\varphi/\\sqrt{T}` (for a mean, :math:`s_a/\\sqrt T`).

Paired differences between designs (``paired.csv``) come from the *same*
table: the difference of designs A and B is :math:`\\hat R_A - \\hat R_B`,
exactly the difference of the two values in ``oc.csv``, and, because trial
``i`` of every design saw the same virtual patients (common random numbers),
its standard error is that of the per-trial differences of influence values,
:math:`s_{\\varphi_A - \\varphi_B}/\\sqrt T` (the delta method for a difference
of ratios; for a mean it is the usual paired SE :math:`s_{a_A - a_B}/\\sqrt T`).
Designs enumerated exactly are not paired (their rows are terminal states,
not trials).

:func:`~escalade.simulations.study_run.run_study` computes these same quantities for simulated designs
from blocks of trials merged in order (:mod:`escalade.simulations.oc_moments`: counts, means and centred
sums of products), so that its memory does not grow with the number of trials; the functions here work on
whole tables (exact enumeration, and callers that hold every trial).

Definitions against the truth (:class:`Truth`, built from the study's
:class:`~escalade.scenarios.study.MtdRule`): the true MTD may be *no dose*
(every dose too toxic), in which case selecting no dose is the correct
selection, every selected dose is an overdose selection, no patient is
treated "at the MTD" and every patient is treated above it. Overdosing
(``overdose60_pct``, ``overdose80_pct``) follows ``BOIN::get.oc``: the % of
trials in which more than 60% (80%) of the maximum sample size was treated
above the true MTD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, StopReason
from escalade.scenarios.study import MtdRule
from escalade.simulations.outcomes import TrialOutcomes

__all__ = ["Truth", "PerTrial", "TrialTable", "trial_table", "operating_characteristics", "paired_differences",
           "paired_from_tables", "KEY_METRICS", "per_trial_metrics", "PAIRED_COLUMNS"]

#: Metrics shown in the terminal summary.
KEY_METRICS: tuple[str, ...] = (
    "correct_selection_pct", "acceptable_selection_pct", "select_none_pct", "overdose_selection_pct",
    "patients_at_mtd_pct", "patients_above_mtd", "dlts", "sample_size", "orr_selected",
)

#: Columns of ``paired.csv``.
PAIRED_COLUMNS: tuple[str, ...] = ("scenario", "design", "versus", "metric", "difference", "se", "se_unpaired")


@dataclass(frozen=True, slots=True)
class Truth:
    """What the characteristics of one scenario x design are measured against.

    Attributes
    ----------
    p_dlt, p_response
        True per-dose rates.
    target
        Target DLT rate.
    rule
        The study's definition of the true MTD and acceptable doses
        (default: :class:`~escalade.scenarios.study.MtdRule` of ``target`` with
        its defaults).
    optimal
        The design's own optimal dose under the truth (0-based,
        :data:`~escalade.design.base.NO_DOSE` for none), or ``None`` for a
        design without an objective of its own (phase I designs).
    objective
        Name of that objective (e.g. ``"EffTox utility"``), or ``None``.
    cart
        The scenario's CAR-T model (:class:`escalade.scenarios.cart.CartModel`),
        for the graded characteristics, or ``None``.
    """

    p_dlt: np.ndarray
    p_response: np.ndarray
    target: float
    rule: MtdRule | None = None
    optimal: int | None = None
    objective: str | None = None
    cart: Any = None

    @property
    def mtd_rule(self) -> MtdRule:
        return self.rule if self.rule is not None else MtdRule(self.target)

    @property
    def mtd(self) -> int:
        """0-based true MTD, :data:`NO_DOSE` when no dose is tolerable."""
        m = self.mtd_rule.mtd(self.p_dlt)
        return NO_DOSE if m is None else m

    @property
    def acceptable(self) -> tuple[int, ...]:
        """0-based doses within target +/- delta."""
        return self.mtd_rule.acceptable(self.p_dlt)


@dataclass(frozen=True, slots=True, eq=False)
class PerTrial:
    """One characteristic per trial: ``scale * sum(w * num) / sum(w * den)`` (``den`` None: a mean).

    ``num`` and ``den`` keep their own dtype (booleans, counts, or views into
    the outcome arrays) and are converted to float only when estimated, so
    that a table of a million trials on twenty doses stays small.
    """

    num: np.ndarray
    den: np.ndarray | None = None
    scale: float = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class TrialTable:
    """The per-trial metric table of one scenario x design (feeds ``oc.csv`` and ``paired.csv``).

    Attributes
    ----------
    trial
        ``(T,)`` trial numbers (rows are sorted by them), or state indices when exact.
    weight
        ``(T,)`` weights summing to 1.
    exact
        True for exact enumeration (no Monte Carlo error, never paired).
    columns
        ``(metric, dose) -> PerTrial``, in ``oc.csv`` order; ``dose`` is a dose
        label, ``"none"``, a stop reason, or ``""`` for a scalar characteristic.
    objective
        Name of the design's own objective (``optimal_selection_pct`` is paired
        only between designs of the same objective), or ``None``.
    """

    trial: np.ndarray
    weight: np.ndarray
    exact: bool
    columns: dict[tuple[str, str], PerTrial] = field(default_factory=dict)
    objective: str | None = None

    def estimate(self, key: tuple[str, str]) -> tuple[float, float]:
        """Value and Monte Carlo SE of one characteristic (SE 0 when exact)."""
        c = self.columns[key]
        value, phi = _influence(c, self.weight)
        if self.exact or phi is None or phi.size < 2:
            return value, (0.0 if np.isfinite(value) else float("nan"))
        return value, c.scale * _se(phi, self.weight)

    def influence(self, key: tuple[str, str]) -> tuple[float, np.ndarray | None]:
        """Value and per-trial influence values (unscaled) of one characteristic."""
        return _influence(self.columns[key], self.weight)


def _influence(c: PerTrial, w: np.ndarray) -> tuple[float, np.ndarray | None]:
    a = np.asarray(c.num, float)
    if c.den is None:
        m = float(np.sum(w * a))
        return c.scale * m, a - m
    b = np.asarray(c.den, float)
    mb = float(np.sum(w * b))
    if mb == 0.0:
        return float("nan"), None
    r = float(np.sum(w * a)) / mb
    return c.scale * r, (a - r * b) / mb


def _se(phi: np.ndarray, w: np.ndarray) -> float:
    """SE of a weighted mean of influence values (unbiased variance; ``w`` = 1/T for simulated trials)."""
    t = phi.size
    m = float(np.sum(w * phi))
    var = float(np.sum(w * (phi - m) ** 2)) * t / (t - 1)
    return float(np.sqrt(var / t))


def per_trial_metrics(out: TrialOutcomes, truth: Truth, max_n: int,
                      dose_labels: Sequence[str] | None = None, *,
                      all_stop_reasons: bool = False) -> dict[tuple[str, str], PerTrial]:
    """Numerators and denominators per trial of every characteristic (rows in ``oc.csv`` order).

    Metric names (``dose`` in brackets where per dose):

    * ``select_pct`` [dose label, ``"none"``]: % of trials selecting the dose / no dose;
    * ``patients``, ``patients_pct``, ``dlts_at_dose``, ``responders_at_dose`` [dose];
    * ``correct_selection_pct``: selection = the true MTD (no dose when it is none);
    * ``acceptable_selection_pct``: selection within target +/- delta, or the true MTD itself
      (so no dose when it is none; the top dose of an all-safe scenario);
    * ``select_none_pct``, ``overdose_selection_pct`` (a dose above the true MTD; any dose when it is none);
    * ``optimal_selection_pct``: selection = the design's own optimal dose (designs with an objective only);
    * ``patients_at_mtd_pct`` (ratio of means), ``patients_above_mtd``, ``overdose60_pct``, ``overdose80_pct``;
    * ``dlts``, ``dlt_rate`` (ratio of means), ``sample_size``, ``responders``;
    * ``orr_selected``: true response rate at the selected dose, over the trials that selected one
      (ratio of means; not defined when none did);
    * ``early_stop_pct``, ``stop_pct`` [stop reason] (the reasons some trial stopped for; every reason with
      ``all_stop_reasons``, so that blocks of trials summarised apart hold the same columns,
      :mod:`escalade.simulations.oc_moments`);
    * with calendar time, ``duration_days``, ``suspensions``, ``suspended_pct``
      (:func:`escalade.simulations.oc_time.time_per_trial`);
    * with backfill cohorts (:attr:`TrialOutcomes.n_backfill`): ``backfill_patients`` and
      ``backfill_escalation_patients`` [dose] (the patients at each dose split into backfill and
      escalation patients), ``backfill_total`` (backfill patients per trial) and ``backfill_pct``
      (% of all patients, ratio of means);
    * with the CAR-T sections, graded AEs, deaths, response depth and EFS
      (:func:`escalade.simulations.oc_cart.cart_per_trial`).
    """
    nd = out.n_doses
    labels = list(dose_labels) if dose_labels is not None else [f"DL{j + 1}" for j in range(nd)]
    sel = np.asarray(out.selected)
    has = sel != NO_DOSE
    total = out.n.sum(axis=1).astype(float)
    mtd = truth.mtd
    ok_sel = np.zeros(nd + 1, bool)  # index nd = "no dose"
    ok_sel[list(truth.acceptable)] = True
    ok_sel[mtd if mtd != NO_DOSE else nd] = True
    cols: dict[tuple[str, str], PerTrial] = {}

    def pct(x: np.ndarray) -> PerTrial:
        return PerTrial(np.asarray(x), None, 100.0)

    def mean(x: np.ndarray) -> PerTrial:
        return PerTrial(np.asarray(x))

    for j in range(nd):
        cols[("select_pct", labels[j])] = pct(sel == j)
    cols[("select_pct", "none")] = pct(~has)
    for j in range(nd):
        cols[("patients", labels[j])] = mean(out.n[:, j])
    for j in range(nd):
        cols[("patients_pct", labels[j])] = PerTrial(out.n[:, j], total, 100.0)
    for j in range(nd):
        cols[("dlts_at_dose", labels[j])] = mean(out.tox[:, j])
    for j in range(nd):
        cols[("responders_at_dose", labels[j])] = mean(out.eff[:, j])

    above = np.arange(nd) > mtd  # everything when the MTD is no dose (-1)
    n_above = out.n[:, above].sum(axis=1).astype(float)
    at_mtd = out.n[:, mtd].astype(float) if mtd != NO_DOSE else np.zeros(out.n_trials)
    cols[("correct_selection_pct", "")] = pct(sel == mtd)
    cols[("acceptable_selection_pct", "")] = pct(ok_sel[np.where(has, sel, nd)])
    cols[("select_none_pct", "")] = pct(~has)
    cols[("overdose_selection_pct", "")] = pct(has & (sel > mtd))
    if truth.optimal is not None:
        cols[("optimal_selection_pct", "")] = pct(sel == truth.optimal)
    cols[("patients_at_mtd_pct", "")] = PerTrial(at_mtd, total, 100.0)
    cols[("patients_above_mtd", "")] = mean(n_above)
    cols[("overdose60_pct", "")] = pct(n_above > 0.6 * max_n)
    cols[("overdose80_pct", "")] = pct(n_above > 0.8 * max_n)
    dlts = out.tox.sum(axis=1).astype(float)
    cols[("dlts", "")] = mean(dlts)
    cols[("dlt_rate", "")] = PerTrial(dlts, total)
    cols[("sample_size", "")] = mean(total)
    cols[("responders", "")] = mean(out.eff.sum(axis=1))
    p_resp = np.asarray(truth.p_response, float)
    cols[("orr_selected", "")] = PerTrial(np.where(has, p_resp[np.clip(sel, 0, None)], 0.0), has)
    early = np.array([StopReason(int(r)).early for r in range(len(StopReason))])
    reasons = np.asarray(out.reason).astype(int)
    cols[("early_stop_pct", "")] = pct(early[reasons])
    for r in StopReason:
        if r is StopReason.CONTINUE:
            continue
        hit = reasons == int(r)
        if all_stop_reasons or hit.any():
            cols[("stop_pct", r.label)] = pct(hit)
    if out.duration is not None:
        from escalade.simulations.oc_time import time_per_trial

        cols.update({(m, ""): c for m, c in time_per_trial(out).items()})
    if out.n_backfill is not None:  # a design with backfill cohorts: patients split by how they were treated
        nb = np.asarray(out.n_backfill)
        for j in range(nd):
            cols[("backfill_patients", labels[j])] = mean(nb[:, j])
        for j in range(nd):
            cols[("backfill_escalation_patients", labels[j])] = mean(out.n[:, j] - nb[:, j])
        bt = nb.sum(axis=1).astype(float)
        cols[("backfill_total", "")] = mean(bt)
        cols[("backfill_pct", "")] = PerTrial(bt, total, 100.0)
    if truth.cart is not None:  # the CAR-T patient (escalade.simulations.oc_cart)
        from escalade.simulations.oc_cart import cart_per_trial

        cols.update(cart_per_trial(out, truth, labels))
    return cols


def trial_table(out: TrialOutcomes, truth: Truth, *, max_n: int,
                dose_labels: Sequence[str] | None = None, all_stop_reasons: bool = False) -> TrialTable:
    """The :class:`TrialTable` of one scenario x design, rows sorted by trial number
    (``all_stop_reasons``: see :func:`per_trial_metrics`)."""
    if out.exact:
        w = np.asarray(out.weight, float)
        w = w / w.sum()
    else:  # simulated trials weigh 1/T each, whatever arithmetic produced the stored weights
        w = np.full(out.n_trials, 1.0 / out.n_trials)
    trial = np.asarray(out.trial if out.trial is not None else np.arange(out.n_trials))
    order = np.argsort(trial, kind="stable")
    cols = per_trial_metrics(out, truth, max_n, dose_labels, all_stop_reasons=all_stop_reasons)
    if not np.array_equal(order, np.arange(order.size)):
        cols = {k: PerTrial(c.num[order], None if c.den is None else c.den[order], c.scale)
                for k, c in cols.items()}
    return TrialTable(trial[order], w[order], bool(out.exact), cols, truth.objective if truth.optimal is not None
                      else None)


_OC_COLUMNS = ["scenario", "design", "metric", "dose", "value", "se", "exact"]


def oc_rows(table: TrialTable, *, scenario: str = "", design: str = "",
            skip: Sequence[str] = ()) -> pd.DataFrame:
    """``oc.csv`` rows of a :class:`TrialTable` (metrics in ``skip`` left out)."""
    rows = [(m, d, *table.estimate((m, d))) for (m, d) in table.columns if m not in skip]
    df = pd.DataFrame(rows, columns=["metric", "dose", "value", "se"])
    df.insert(0, "design", design)
    df.insert(0, "scenario", scenario)
    df["exact"] = table.exact
    return df[_OC_COLUMNS]


def operating_characteristics(
    out: TrialOutcomes,
    truth: Truth,
    *,
    max_n: int,
    dose_labels: Sequence[str] | None = None,
    scenario: str = "",
    design: str = "",
    table: TrialTable | None = None,
) -> pd.DataFrame:
    """Tidy table of operating characteristics for one scenario x design.

    Columns: ``scenario, design, metric, dose, value, se, exact``; ``dose`` is a
    dose label for per-dose metrics, ``"none"`` for no selection, a stop
    reason for ``stop_pct`` rows and empty otherwise. Calendar-time means are
    left to :func:`escalade.simulations.oc_time.time_characteristics`.
    """
    if table is None:
        table = trial_table(out, truth, max_n=max_n, dose_labels=dose_labels)
    from escalade.simulations.oc_time import TIME_METRICS

    return oc_rows(table, scenario=scenario, design=design, skip=TIME_METRICS)


def paired_from_tables(tables: Mapping[str, TrialTable], *, scenario: str = "") -> pd.DataFrame:
    """Paired differences between every two designs of a scenario (``paired.csv`` rows).

    For designs listed in the order ``d_0, d_1, ...``, row ``(design=d_j,
    versus=d_i)`` for every ``i < j`` and every scalar characteristic both
    tables hold (``optimal_selection_pct`` only between designs of the same
    objective): ``difference`` is exactly ``value(d_j) - value(d_i)`` of
    ``oc.csv``, ``se`` the paired delta-method SE (module docstring) and
    ``se_unpaired`` :math:`\\sqrt{se_i^2 + se_j^2}`. Designs enumerated
    exactly, or holding other trials, are not paired; a characteristic that
    is not defined for either design (ORR at the selected dose when no trial
    selected a dose) has no row.
    """
    names = list(tables)
    rows = []
    for i, base in enumerate(names):
        tb = tables[base]
        for other in names[i + 1:]:
            to = tables[other]
            if tb.exact or to.exact or not np.array_equal(tb.trial, to.trial) or tb.trial.size < 2:
                continue
            for key in to.columns:
                m, dose = key
                if dose != "" or key not in tb.columns:
                    continue
                if m == "optimal_selection_pct" and to.objective != tb.objective:
                    continue
                va, phi_a = to.influence(key)
                vb, phi_b = tb.influence(key)
                if phi_a is None or phi_b is None or not (np.isfinite(va) and np.isfinite(vb)):
                    continue
                scale = to.columns[key].scale
                se = scale * _se(phi_a - phi_b, to.weight)
                se_a, se_b = to.estimate(key)[1], tb.estimate(key)[1]
                rows.append((scenario, other, base, m, va - vb, se, float(np.hypot(se_a, se_b))))
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def paired_differences(
    outcomes: Mapping[str, TrialOutcomes], truth: Truth | Mapping[str, Truth], *, max_n: Mapping[str, int],
    scenario: str = "",
) -> pd.DataFrame:
    """:func:`paired_from_tables` of the outcomes of several designs on one scenario.

    ``truth`` is one :class:`Truth` for all designs, or one per design (their
    own optimal doses).
    """
    tables = {}
    for name, o in outcomes.items():
        t = truth[name] if isinstance(truth, Mapping) else truth
        tables[name] = trial_table(o, t, max_n=max_n[name])
    return paired_from_tables(tables, scenario=scenario)
