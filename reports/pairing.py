"""Per-trial values of a run's characteristics, read back from ``trials.parquet`` (for ``escalade diff``).

Two runs that share their virtual patients (same seed, number of trials and
chunk size) can be compared trial by trial: the change of a characteristic
then has the paired standard error :math:`s_{x_B - x_A}/\\sqrt{T}`. The
per-trial values come from the one per-trial metric table that wrote the run's
``oc.csv`` and ``paired.csv`` (:func:`escalade.simulations.oc.per_trial_metrics`),
measured against the run's truth as its manifest records it (true MTD rule,
delta): the trial rows are turned back into outcomes, nothing is re-defined
here and nothing is simulated. The mean of the values is the ``oc.csv`` value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE
from escalade.reports.load import RunData
from escalade.scenarios.study import DEFAULT_MTD_DELTA, MtdRule
from escalade.simulations.oc import Truth, per_trial_metrics
from escalade.simulations.outcomes import TrialOutcomes

__all__ = ["PAIRABLE", "per_trial_values"]

#: Characteristics that are means of one value per trial and that ``trials.parquet`` holds what they need
#: (selected dose, patients and DLTs per dose), so they can be paired across runs.
PAIRABLE: tuple[str, ...] = ("correct_selection_pct", "acceptable_selection_pct", "select_none_pct",
                             "overdose_selection_pct", "patients_above_mtd", "sample_size", "dlts")


def _groups(run: RunData) -> dict[tuple[str, str], pd.DataFrame] | None:
    """Trials of each (scenario, design), sorted by trial number (read once per run)."""
    def compute() -> dict[tuple[str, str], pd.DataFrame] | None:
        f = run.path / "trials.parquet"
        if not f.is_file():  # an optional file (reports and diffs run without it); verified when present
            return None
        trials = pd.read_parquet(f)
        return {k: g.sort_values("trial") for k, g in trials.groupby(["scenario", "design"], sort=False)}

    return run.cached("pairing.trial_groups", compute)


def _outcomes(df: pd.DataFrame, n_doses: int) -> TrialOutcomes:
    """The trial rows of one scenario x design as outcomes (what the per-trial metrics read)."""
    sel = df["selected_dose"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    selected = np.where(np.isnan(sel), NO_DOSE, np.nan_to_num(sel, nan=1.0) - 1).astype(np.int64)

    def counts(prefix: str) -> np.ndarray:
        return df[[f"{prefix}_{j}" for j in range(1, n_doses + 1)]].to_numpy(np.int64)

    t = len(df)
    return TrialOutcomes(selected=selected, reason=np.zeros(t, np.int8), n=counts("n"), tox=counts("dlt"),
                         eff=counts("resp"), both=np.zeros((t, n_doses), np.int64),
                         cohorts=df["cohorts"].to_numpy(np.int64), weight=np.full(t, 1.0 / t),
                         trial=df["trial"].to_numpy(np.int64))


def per_trial_values(run: RunData, scenario: str, design: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(trial numbers, per-trial values of metric)`` of one scenario x design, sorted by trial.

    ``None`` when the metric is not in :data:`PAIRABLE`, the run has no
    ``trials.parquet``, or the design was enumerated exactly (no trials).
    """
    if metric not in PAIRABLE:
        return None
    groups = _groups(run)
    info = next((s for s in run.scenarios if s.name == scenario), None)
    des = next((d for d in run.designs if d.name == design), None)
    if groups is None or info is None or des is None or (scenario, design) not in groups:
        return None
    df = groups[(scenario, design)]
    if df.empty or df["exact"].any():
        return None
    rule = run.manifest.get("mtd_rule") or {}
    mtd_rule = MtdRule(run.target, float(rule.get("delta", DEFAULT_MTD_DELTA)),
                       rule.get("definition", "highest_below"))
    truth = Truth(np.asarray(info.p_dlt, float), np.asarray(info.p_response, float), run.target, mtd_rule)
    max_n = int(des.params.get("max_n") or df["sample_size"].max())
    per = per_trial_metrics(_outcomes(df, len(run.doses)), truth, max_n, [d.label for d in run.doses])
    c = per[(metric, "")]
    return df["trial"].to_numpy(), c.scale * np.asarray(c.num, float)
