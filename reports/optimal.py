"""The true optimal dose of each scenario under an EffTox design's utility (for marking, not for OCs).

EffTox targets the dose with the best efficacy-toxicity trade-off rather than
the MTD. Given the true curves of a scenario and the contour of the first
EffTox design of the run, the optimal dose is the one of highest true utility
among the doses that are acceptable by the design's hurdles (true response
rate at least ``efficacy_hurdle`` and true DLT rate at most
``toxicity_hurdle``); a scenario with no such dose has none. The utility is
:func:`escalade.design.efftox.efftox_utility` with the contour exponent the
run's manifest recorded (Thall & Cook 2004, section 3).
"""

from __future__ import annotations

import logging
import math

from escalade.reports.load import DesignInfo, RunData, ScenarioInfo

__all__ = ["efftox_design", "optimal_dose", "optimal_doses"]

log = logging.getLogger(__name__)


def efftox_design(run: RunData) -> DesignInfo | None:
    """The first EffTox design of the run (its utility defines "optimal"), or ``None``."""
    return next((d for d in run.designs if d.kind.lower() == "efftox"), None)


def optimal_dose(scenario: ScenarioInfo, design: DesignInfo) -> int | None:
    """0-based dose of highest true utility among truly acceptable doses, or ``None``."""
    from escalade.design.efftox import efftox_utility, solve_p

    p = design.params
    eff0, tox1 = float(p["eff0"]), float(p["tox1"])
    power = p.get("contour_p") or p.get("p") or solve_p(eff0, tox1, float(p["eff_star"]), float(p["tox_star"]))
    e_h, t_h = float(p["efficacy_hurdle"]), float(p["toxicity_hurdle"])
    best, best_u = None, -math.inf
    for j, (pe, pt) in enumerate(zip(scenario.p_response, scenario.p_dlt)):
        if not (math.isfinite(pe) and pe >= e_h and pt <= t_h):
            continue
        u = float(efftox_utility(pe, pt, eff0=eff0, tox1=tox1, p=float(power)))
        if u > best_u:  # ties: the lower dose
            best, best_u = j, u
    return best


def optimal_doses(run: RunData) -> dict[str, int | None] | None:
    """Optimal dose per scenario name, or ``None`` when the run has no EffTox design (or it cannot be read)."""
    design = efftox_design(run)
    if design is None:
        return None
    try:
        return {s.name: optimal_dose(s, design) for s in run.scenarios}
    except (ImportError, KeyError, TypeError, ValueError) as exc:
        log.warning("cannot compute the EffTox optimal doses from the manifest (%s); they are not marked", exc)
        return None
