"""Operating characteristics with Monte Carlo standard errors (or exact).

Every characteristic is a (weighted) mean over trials of a per-trial quantity
``x_i``; with simulated trials (weights ``1/T``) its Monte Carlo standard error
is :math:`s_x/\\sqrt{T}`; with exact enumeration (weights = terminal-state
probabilities) it has no Monte Carlo error and ``se`` is 0 with
``exact = True``. Ratios (DLT rate, % of patients per dose) get delta-method
standard errors.

The true MTD is the dose whose true DLT rate is closest to the target (ties:
the lower dose). Overdosing follows ``BOIN::get.oc``: the % of trials in which
more than 60% (80%) of the maximum sample size was treated above the true MTD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, StopReason
from escalade.scenarios.study import true_mtd
from escalade.simulations.outcomes import TrialOutcomes

__all__ = ["Truth", "operating_characteristics", "paired_differences", "KEY_METRICS", "per_trial_metrics"]

#: Metrics shown in the terminal summary and compared in paired differences.
KEY_METRICS: tuple[str, ...] = (
    "correct_selection_pct", "select_none_pct", "overdose_selection_pct", "patients_at_mtd_pct",
    "patients_above_mtd", "dlts", "sample_size", "orr_selected",
)


@dataclass(frozen=True, slots=True)
class Truth:
    """What the characteristics are measured against."""

    p_dlt: np.ndarray
    p_response: np.ndarray
    target: float

    @property
    def mtd(self) -> int:
        return true_mtd(self.p_dlt, self.target)


def _mean_se(x: np.ndarray, w: np.ndarray, exact: bool) -> tuple[float, float]:
    x = np.asarray(x, float)
    m = float(np.sum(w * x))
    if exact or x.size < 2:
        return m, 0.0
    var = float(np.sum(w * (x - m) ** 2)) * x.size / (x.size - 1)
    return m, float(np.sqrt(var / x.size))


def _ratio_se(a: np.ndarray, b: np.ndarray, w: np.ndarray, exact: bool) -> tuple[float, float]:
    """Ratio of means E[a]/E[b] with its delta-method standard error."""
    ma, mb = float(np.sum(w * a)), float(np.sum(w * b))
    if mb == 0:
        return float("nan"), float("nan")
    r = ma / mb
    if exact or a.size < 2:
        return r, 0.0
    resid = (a - r * b) / mb
    _, se = _mean_se(resid, w, False)
    return r, se


def per_trial_metrics(out: TrialOutcomes, truth: Truth, max_n: int) -> dict[str, np.ndarray]:
    """Per-trial quantities behind the key metrics (also used for paired differences)."""
    mtd = truth.mtd
    sel = out.selected
    above = np.arange(out.n_doses) > mtd
    total = out.n.sum(axis=1)
    n_above = out.n[:, above].sum(axis=1)
    has = sel != NO_DOSE
    orr = np.where(has, truth.p_response[np.clip(sel, 0, None)], np.nan)
    return {
        "correct_selection_pct": 100.0 * (sel == mtd),
        "select_none_pct": 100.0 * ~has,
        "overdose_selection_pct": 100.0 * (has & (sel > mtd)),
        "patients_at_mtd_pct": np.where(total > 0, 100.0 * out.n[:, mtd] / np.maximum(total, 1), 0.0),
        "patients_above_mtd": n_above.astype(float),
        "dlts": out.tox.sum(axis=1).astype(float),
        "sample_size": total.astype(float),
        "orr_selected": orr,
        "responders": out.eff.sum(axis=1).astype(float),
        "overdose60_pct": 100.0 * (n_above > 0.6 * max_n),
        "overdose80_pct": 100.0 * (n_above > 0.8 * max_n),
    }


def operating_characteristics(
    out: TrialOutcomes,
    truth: Truth,
    *,
    max_n: int,
    dose_labels: Sequence[str] | None = None,
    scenario: str = "",
    design: str = "",
) -> pd.DataFrame:
    """Tidy table of operating characteristics for one scenario x design.

    Columns: ``scenario, design, metric, dose, value, se, exact``; ``dose`` is a
    dose label for per-dose metrics, ``"none"`` for no selection, a stop
    reason for ``stop_pct`` rows and empty otherwise.
    """
    w = np.asarray(out.weight, float)
    w = w / w.sum()
    ex = bool(out.exact)
    nd = out.n_doses
    labels = list(dose_labels) if dose_labels is not None else [f"DL{j + 1}" for j in range(nd)]
    rows: list[tuple[str, str, float, float]] = []

    def add(metric: str, dose: str, ms: tuple[float, float]) -> None:
        rows.append((metric, dose, ms[0], ms[1]))

    for j in range(nd):
        add("select_pct", labels[j], _mean_se(100.0 * (out.selected == j), w, ex))
    add("select_pct", "none", _mean_se(100.0 * (out.selected == NO_DOSE), w, ex))
    total = out.n.sum(axis=1).astype(float)
    for j in range(nd):
        add("patients", labels[j], _mean_se(out.n[:, j], w, ex))
    for j in range(nd):
        r, se = _ratio_se(out.n[:, j].astype(float), total, w, ex)
        add("patients_pct", labels[j], (100.0 * r, 100.0 * se))
    for j in range(nd):
        add("dlts_at_dose", labels[j], _mean_se(out.tox[:, j], w, ex))
    for j in range(nd):
        add("responders_at_dose", labels[j], _mean_se(out.eff[:, j], w, ex))

    pt = per_trial_metrics(out, truth, max_n)
    for name in ("correct_selection_pct", "select_none_pct", "overdose_selection_pct", "patients_above_mtd",
                 "dlts", "sample_size", "responders", "overdose60_pct", "overdose80_pct"):
        add(name, "", _mean_se(pt[name], w, ex))
    add("patients_at_mtd_pct", "", tuple(100.0 * v for v in _ratio_se(out.n[:, truth.mtd].astype(float), total, w, ex)))
    add("dlt_rate", "", _ratio_se(out.tox.sum(axis=1).astype(float), total, w, ex))
    has = out.selected != NO_DOSE
    if has.any():
        add("orr_selected", "", _mean_se(pt["orr_selected"][has], w[has] / w[has].sum(), ex))
    else:
        add("orr_selected", "", (float("nan"), float("nan")))
    early = np.array([StopReason(int(r)).early for r in range(len(StopReason))])
    reasons = out.reason.astype(int)
    add("early_stop_pct", "", _mean_se(100.0 * early[reasons], w, ex))
    for r in StopReason:
        if r is StopReason.CONTINUE:
            continue
        frac = 100.0 * (reasons == int(r))
        if frac.any():
            add("stop_pct", r.label, _mean_se(frac, w, ex))

    df = pd.DataFrame(rows, columns=["metric", "dose", "value", "se"])
    df.insert(0, "design", design)
    df.insert(0, "scenario", scenario)
    df["exact"] = ex
    return df


def paired_differences(
    outcomes: Mapping[str, TrialOutcomes], truth: Truth, *, max_n: Mapping[str, int], scenario: str = "",
    metrics: Sequence[str] = KEY_METRICS,
) -> pd.DataFrame:
    """Differences between designs on the same virtual patients (common random numbers).

    For designs ``A`` and ``B`` and a per-trial quantity ``x``, the difference
    :math:`\\bar x_A - \\bar x_B` has standard error :math:`s_{x_A - x_B}/\\sqrt T`
    computed from the paired per-trial differences; pairing removes the
    between-trial (patient) variance that the two designs share. Every design
    is compared with the first one given.
    """
    names = list(outcomes)
    rows = []
    if len(names) < 2:
        return pd.DataFrame(columns=["scenario", "design", "versus", "metric", "difference", "se", "se_unpaired"])
    base = names[0]
    ob = outcomes[base]
    order_b = np.argsort(ob.trial if ob.trial is not None else np.arange(ob.n_trials))
    mb = per_trial_metrics(ob, truth, max_n[base])
    for other in names[1:]:
        oo = outcomes[other]
        order_o = np.argsort(oo.trial if oo.trial is not None else np.arange(oo.n_trials))
        if oo.n_trials != ob.n_trials or oo.exact or ob.exact:
            continue
        mo = per_trial_metrics(oo, truth, max_n[other])
        for m in metrics:
            xa, xb = mo[m][order_o], mb[m][order_b]
            if m == "orr_selected":
                ok = ~np.isnan(xa) & ~np.isnan(xb)
                xa, xb = xa[ok], xb[ok]
            t = xa.size
            if t < 2:
                continue
            d = xa - xb
            rows.append((scenario, other, base, m, float(d.mean()), float(d.std(ddof=1) / np.sqrt(t)),
                         float(np.sqrt(xa.var(ddof=1) / t + xb.var(ddof=1) / t))))
    return pd.DataFrame(rows, columns=["scenario", "design", "versus", "metric", "difference", "se", "se_unpaired"])
