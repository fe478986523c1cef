"""Each phase I/II design's true optimal dose per scenario, as the run recorded it.

A phase I/II design (EffTox, BOIN12) aims at the dose that is best by its own
objective rather than at the MTD. At run time the simulator asks each design
for the dose its objective picks under the true curves (the design's
``true_optimum``), scores the design's selections against it
(``optimal_selection_pct`` in ``oc.csv``) and records the dose and the reason
in ``manifest.json``. This module only reads that record: the reports layer
never computes a design's utility, so nothing here depends on which designs
exist.
"""

from __future__ import annotations

from escalade.reports.load import DesignInfo, OptimalDose, RunData

__all__ = ["objective_designs", "objective_design", "optimal_doses", "optimal_by_design", "optimal_of"]


def objective_designs(run: RunData) -> list[DesignInfo]:
    """The designs of the run that have an objective of their own (an optimal dose), in study order."""
    have = {o.design for s in run.scenarios for o in s.optimal}
    return [d for d in run.designs if d.name in have]


def objective_design(run: RunData) -> DesignInfo | None:
    """The first design with an objective of its own, or ``None`` (a phase I-only study)."""
    got = objective_designs(run)
    return got[0] if got else None


def optimal_of(run: RunData, scenario: str, design: str) -> OptimalDose | None:
    """The recorded optimal dose of ``design`` in ``scenario`` (``None``: the design has no objective)."""
    s = next((x for x in run.scenarios if x.name == scenario), None)
    if s is None:
        return None
    return next((o for o in s.optimal if o.design == design), None)


def optimal_by_design(run: RunData) -> dict[str, dict[str, int | None]]:
    """``{design: {scenario: 0-based optimal dose or None}}`` for every design with an objective."""
    return {d.name: {s.name: o.dose for s in run.scenarios for o in s.optimal if o.design == d.name}
            for d in objective_designs(run)}


def optimal_doses(run: RunData, design: str | None = None) -> dict[str, int | None] | None:
    """Optimal dose per scenario of ``design`` (default: the first design with an objective), or ``None``."""
    by = optimal_by_design(run)
    if not by:
        return None
    name = design if design is not None else next(iter(by))
    return by.get(name)
