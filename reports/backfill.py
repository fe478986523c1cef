"""Backfill cohorts in the appendix: each design with backfill against the same design without it.

A design whose parameters set ``backfill`` (BF-BOIN; Zhao, Yuan, Korn & Freidlin (2024), Clin Cancer
Res 30:673-679; :class:`~escalade.design.rules.Backfill`) is paired with the study's design of the same
kind whose other parameters are the same (else the first of that kind without backfill). The table
gives, per scenario, the sample size, the backfill patients, the duration and the correct selection
without and with backfill, and the paired differences with their Monte Carlo SEs (``paired.csv``: both
designs saw the same virtual patients). Only stored results are read.
"""

from __future__ import annotations

from typing import Any

from escalade.reports.formatting import fmt_difference, fmt_number
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.tables import Cell, Table

__all__ = ["backfill_pairs", "backfill_tables", "backfill_text", "backfill_context"]


def _has_backfill(d: DesignInfo) -> bool:
    v = d.params.get("backfill")
    return v not in (None, False)


def _without(params: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(params).items() if k != "backfill"}


def backfill_pairs(run: RunData) -> list[tuple[DesignInfo, DesignInfo]]:
    """``(without, with)`` pairs: every design with backfill and its counterpart without (if the study has one)."""
    plain = [d for d in run.designs if not _has_backfill(d)]
    out = []
    for d in run.designs:
        if not _has_backfill(d):
            continue
        same_kind = [p for p in plain if p.kind == d.kind]
        exact = [p for p in same_kind if _without(p.params) == _without(d.params)]
        match = (exact or same_kind or [None])[0]
        if match is not None:
            out.append((match, d))
    return out


def _value(run: RunData, scenario: str, design: str, metric: str, decimals: int) -> str:
    c = run.cell(scenario, design, metric)
    return "n/a" if c is None or c.missing else fmt_number(c.value, decimals)


def _diff(run: RunData, scenario: str, with_: str, without: str, metric: str, decimals: int) -> str:
    got = run.paired_cell(scenario, with_, without, metric)
    return "n/a" if got is None else fmt_difference(got[0], got[1], decimals)


def backfill_tables(run: RunData) -> list[Table]:
    """One table per pair: scenarios in rows; without / with backfill and the paired differences."""
    tables = []
    timed = bool(run.scenarios) and run.cell(run.scenario_names[0], run.design_names[0], "duration_days") is not None
    for k, (a, b) in enumerate(backfill_pairs(run)):
        rows = []
        for s in run.scenario_names:
            row = [Cell(s, header=True),
                   Cell(_value(run, s, a.name, "sample_size", 1)), Cell(_value(run, s, b.name, "sample_size", 1)),
                   Cell(_value(run, s, b.name, "backfill_total", 1)),
                   Cell(_value(run, s, a.name, "correct_selection_pct", 1)),
                   Cell(_value(run, s, b.name, "correct_selection_pct", 1)),
                   Cell(_diff(run, s, b.name, a.name, "correct_selection_pct", 1))]
            if timed:
                row += [Cell(_value(run, s, a.name, "duration_days", 0)),
                        Cell(_value(run, s, b.name, "duration_days", 0)),
                        Cell(_diff(run, s, b.name, a.name, "duration_days", 0))]
            rows.append(row)
        cols = ["Scenario", "N without", "N with", "Backfill patients", "Correct % without", "Correct % with",
                "Difference (SE)"]
        groups = [("", 1), ("Sample size", 3), ("Correct selection", 3)]
        if timed:
            cols += ["Days without", "Days with", "Difference (SE)"]
            groups.append(("Duration (days)", 3))
        tables.append(Table(id=f"backfill-{k + 1}", title=f"{b.name} against {a.name}: sample size, correct "
                            "selection and duration", columns=cols, rows=rows, groups=groups,
                            note="Means over the simulated trials; differences are paired (same virtual patients), "
                                 "with their Monte Carlo standard errors."))
    return tables


def backfill_text(run: RunData) -> str:
    """What the backfill designs do and how arrivals are modelled, one paragraph."""
    pairs = backfill_pairs(run)
    if not pairs:
        return ""
    parts = []
    for a, b in pairs:
        bf = b.params.get("backfill")
        bf = bf if isinstance(bf, dict) else {}
        cap = bf.get("max_per_dose", 12)
        resp = bf.get("require_response", True)
        wait = bf.get("unplaced", "wait") == "wait"
        parts.append(
            f"{b.name} is {a.name} with backfill cohorts (BF-BOIN; Zhao, Yuan, Korn & Freidlin, 2024): while an "
            "escalation cohort is in DLT follow-up, an arriving patient is treated at the highest lower dose that "
            "has been cleared, whose observed DLT rate (alone or pooled with the next dose) is below the "
            f"de-escalation boundary{', where a response has been seen' if resp else ''}, and that has fewer than "
            f"{cap} patients. Backfill patients' outcomes count in every later decision and in the final "
            "selection. " + (
                "Patients who arrive while no dose is open wait for the next escalation cohort, as without "
                "backfill; backfill patients are therefore taken from those who would have started the next "
                "cohort, and the trial can take longer while treating more patients."
                if wait else
                "Patients who arrive while no dose is open are referred elsewhere, as in the paper's simulations."))
    return " ".join(parts)


def backfill_context(run: RunData) -> dict[str, Any] | None:
    """The template's ``backfill`` block, or None when the study has no design with backfill to compare."""
    tables = backfill_tables(run)
    if not tables:
        return None
    return {"text": backfill_text(run), "tables": tables}
