"""Paired differences between any two designs, from the stored trial-level results.

``paired.csv`` compares every design with the first one only. Every design saw
the same virtual patients in trial ``i`` of a scenario (common random numbers),
so the difference between any two designs can be paired trial by trial from
``trials.parquet``: for a per-trial quantity :math:`x`, the difference of means
:math:`\\bar x_A - \\bar x_B` has standard error :math:`s_{x_A - x_B}/\\sqrt{T}`.
This reads stored results only; nothing is simulated.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from escalade.reports.load import RunData

__all__ = ["PAIRABLE", "paired_from_trials", "per_trial_values"]

#: Metrics that can be recomputed per trial from ``trials.parquet``.
PAIRABLE: tuple[str, ...] = ("correct_selection_pct", "select_none_pct", "overdose_selection_pct",
                             "sample_size", "dlts", "patients_above_mtd")


def _per_trial(df: pd.DataFrame, metric: str, mtd1: int, n_doses: int) -> np.ndarray:
    sel = df["selected_dose"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    if metric == "correct_selection_pct":
        return 100.0 * (sel == mtd1)
    if metric == "select_none_pct":
        return 100.0 * np.isnan(sel)
    if metric == "overdose_selection_pct":
        return 100.0 * (np.nan_to_num(sel, nan=0.0) > mtd1)
    if metric == "patients_above_mtd":
        cols = [f"n_{j}" for j in range(mtd1 + 1, n_doses + 1)]
        return df[cols].sum(axis=1).to_numpy(float) if cols else np.zeros(len(df))
    return df[metric].to_numpy(float)


def _groups(run: RunData) -> dict[tuple[str, str], pd.DataFrame] | None:
    """Trials of each (scenario, design), sorted by trial number (computed once per run)."""
    def compute() -> dict[tuple[str, str], pd.DataFrame] | None:
        trials = run.trials()
        if trials is None:
            return None
        return {k: g.sort_values("trial") for k, g in trials.groupby(["scenario", "design"], sort=False)}

    return run.cached("pairing.trial_groups", compute)


def paired_from_trials(run: RunData, scenario: str, a: str, b: str, metric: str) -> tuple[float, float] | None:
    """Difference ``a - b`` of ``metric`` in ``scenario`` and its paired SE, or ``None`` if it cannot be paired.

    It cannot be paired when the metric is not in :data:`PAIRABLE`, the trials
    file is missing, either design was enumerated exactly, or the two designs
    do not hold the same trials.
    """
    if metric not in PAIRABLE:
        return None
    groups = _groups(run)
    if groups is None:
        return None
    info = next((s for s in run.scenarios if s.name == scenario), None)
    if info is None or (scenario, a) not in groups or (scenario, b) not in groups:
        return None
    da, db = groups[(scenario, a)], groups[(scenario, b)]
    if da.empty or len(da) != len(db) or da["exact"].any() or db["exact"].any():
        return None
    if not np.array_equal(da["trial"].to_numpy(), db["trial"].to_numpy()) or len(da) < 2:
        return None
    n_doses = len(run.doses)
    d = _per_trial(da, metric, info.true_mtd + 1, n_doses) - _per_trial(db, metric, info.true_mtd + 1, n_doses)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))


def per_trial_values(run: RunData, scenario: str, design: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(trial numbers, per-trial values of metric)`` of one scenario x design, sorted by trial, or ``None``
    when the metric is not in :data:`PAIRABLE`, the trials file is missing or the design was enumerated
    exactly. The mean of the values is the metric's value in ``oc.csv`` (used by ``escalade diff`` to pair
    two runs that share virtual patients)."""
    if metric not in PAIRABLE:
        return None
    groups = _groups(run)
    info = next((s for s in run.scenarios if s.name == scenario), None)
    if groups is None or info is None or (scenario, design) not in groups:
        return None
    df = groups[(scenario, design)]
    if df.empty or df["exact"].any():
        return None
    return df["trial"].to_numpy(), _per_trial(df, metric, info.true_mtd + 1, len(run.doses)).astype(float)
