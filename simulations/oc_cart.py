"""Operating characteristics of the CAR-T patient (graded adverse events, response depth, survival).

Rows of ``oc.csv`` added when a scenario has the CAR-T sections
(:mod:`escalade.scenarios.cart`); each is a :class:`~escalade.simulations.oc.PerTrial`
ratio of means with its Monte Carlo SE, like every other characteristic.

From the simulated patients (per trial, ``dose`` a dose label or ``""`` for the whole trial):

* ``{type}_g{0..5}_patients`` and ``{type}_g{0..5}_pct``: patients with that grade (number, and
  % of the patients treated at the dose / in the trial);
  ``{type}_g3plus_patients``, ``{type}_g3plus_pct``: at grade >= 3;
* ``deaths`` (grade-5 events, per dose and per trial), ``any_death_pct`` (% of trials with a death);
* ``infused_below_pct``: % of patients infused below their assigned dose.

True values at the selected dose (over the trials that selected one, as ``orr_selected``):

* ``{type}_g3plus_selected``; ``mrd_neg_cr_{assessment}_selected``;
  ``efs12_selected``, ``os12_selected``, ``median_efs_selected`` (months, capped at
  :data:`MEDIAN_CAP_MONTHS` where EFS never falls to 50%); ``expansion_peak_selected``,
  ``expansion_auc_selected`` (true median peak and AUC0-28);
* ``efs_best_selection_pct``: % of trials whose selected dose maximises the true 12-month EFS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from escalade.design.base import NO_DOSE

__all__ = ["cart_per_trial", "MEDIAN_CAP_MONTHS", "CART_KEY_METRICS"]

#: Median EFS is reported up to this many months (a cure fraction >= 50% has no median).
MEDIAN_CAP_MONTHS: Final[float] = 120.0
#: CAR-T metrics shown in the terminal summary (when present).
CART_KEY_METRICS: Final[tuple[str, ...]] = ("crs_g3plus_pct", "icans_g3plus_pct", "deaths", "any_death_pct",
                                            "efs12_selected")


def cart_per_trial(out: Any, truth: Any, labels: Sequence[str]) -> dict[tuple[str, str], Any]:
    """The CAR-T rows of one scenario x design (see the module docstring); empty without them."""
    from escalade.simulations.oc import PerTrial

    cols: dict[tuple[str, str], Any] = {}
    model = getattr(truth, "cart", None)
    if model is None:
        return cols
    nd = len(labels)
    extra = out.extra or {}
    n = out.n
    total = n.sum(axis=1)
    if extra:
        for name in model.type_names:
            counts = {g: np.asarray(extra[f"ae.{name}.g{g}"]) for g in range(1, 6)}
            counts[0] = n - sum(counts[g] for g in range(1, 6))
            counts["3plus"] = counts[3] + counts[4] + counts[5]
            for g in (0, 1, 2, 3, 4, 5, "3plus"):
                c = counts[g]
                for j in range(nd):
                    cols[(f"{name}_g{g}_patients", labels[j])] = PerTrial(c[:, j])
                for j in range(nd):
                    cols[(f"{name}_g{g}_pct", labels[j])] = PerTrial(c[:, j], n[:, j], 100.0)
                cols[(f"{name}_g{g}_patients", "")] = PerTrial(c.sum(axis=1))
                cols[(f"{name}_g{g}_pct", "")] = PerTrial(c.sum(axis=1), total, 100.0)
        if "death" in extra:
            death = np.asarray(extra["death"])
            for j in range(nd):
                cols[("deaths", labels[j])] = PerTrial(death[:, j])
            cols[("deaths", "")] = PerTrial(death.sum(axis=1))
            cols[("any_death_pct", "")] = PerTrial(death.sum(axis=1) > 0, None, 100.0)
        if "infused_below" in extra:
            cols[("infused_below_pct", "")] = PerTrial(np.asarray(extra["infused_below"]), total, 100.0)
    sel = np.asarray(out.selected)
    has = sel != NO_DOSE
    at = np.clip(sel, 0, None)
    tr = model.truth()

    def selected(values: np.ndarray) -> Any:
        return PerTrial(np.where(has, np.asarray(values, float)[at], 0.0), has)

    for name in model.type_names:
        cols[(f"{name}_g3plus_selected", "")] = selected(tr[f"{name}_g3plus"])
    for key in (k for k in tr if k.startswith("mrd_neg_cr_")):  # in assessment order
        cols[(f"{key}_selected", "")] = selected(tr[key])
    if "efs12" in tr:
        cols[("efs12_selected", "")] = selected(tr["efs12"])
        cols[("median_efs_selected", "")] = selected(np.minimum(tr["median_efs"], MEDIAN_CAP_MONTHS))
        best = np.flatnonzero(np.isclose(tr["efs12"], tr["efs12"].max(), rtol=0, atol=1e-12))
        cols[("efs_best_selection_pct", "")] = PerTrial(has & np.isin(sel, best), None, 100.0)
    if "os12" in tr:
        cols[("os12_selected", "")] = selected(tr["os12"])
    if "expansion_peak_median" in tr:
        cols[("expansion_peak_selected", "")] = selected(tr["expansion_peak_median"])
        cols[("expansion_auc_selected", "")] = selected(tr["expansion_auc_median"])
    return cols
