"""The conclusion of a run, written from its numbers: a small table, then one or two sentences.

The table has one row per scenario: the correct answer (the true MTD, or no
dose when every dose is too toxic), the design that selected it most often,
its lead over the runner-up and over the reference design (the study file's
first) as a paired difference with its standard error (``paired.csv``, or
paired trial by trial from ``trials.parquet``), and safety flags
(:data:`SAFETY_RULES`). The sentences count the scenarios each design leads,
and how many leads are clear (more than :data:`~escalade.reports.tables.FLAG_Z`
standard errors). Every number comes from ``oc.csv`` / ``paired.csv``; the
text only compares them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dataclasses import dataclass

from escalade.reports.formatting import fmt_difference, fmt_number
from escalade.reports.load import RunData, ScenarioInfo
from escalade.reports.tables import FLAG_Z, Cell, Table

__all__ = ["conclusion", "conclusion_table", "has_acceptable_dose", "SafetyRule", "SAFETY_RULES",
           "correct_metric", "scenario_leaders"]


@dataclass(frozen=True, slots=True)
class SafetyRule:
    """A design is flagged in a scenario when ``metric`` is above (or, with ``below``, under) ``limit``."""

    metric: str
    limit: float
    text: str
    below: bool = False
    toxic_only: bool = False


#: Safety flags of the conclusion table, in the spirit of the BOIN papers' "risk of overdosing" (Zhou et al.
#: 2018, Clin Cancer Res 24:4921, table 2). A rule whose metric the run lacks is skipped.
SAFETY_RULES: tuple[SafetyRule, ...] = (
    SafetyRule("overdose_selection_pct", 25.0, "selects a dose above the true MTD in more than 25% of trials"),
    SafetyRule("overdose60_pct", 10.0, "treats more than 60% of the maximum sample size above the true MTD in "
               "more than 10% of trials"),
    SafetyRule("select_none_pct", 80.0, "selects a dose in more than 20% of trials although every dose is too "
               "toxic", below=True, toxic_only=True),
)


def has_acceptable_dose(scenario: ScenarioInfo, target: float) -> bool:
    """True when the scenario has a true MTD (by the study's rule, recorded in the manifest).

    In the other scenarios (every dose too toxic) the right decision is to
    stop without selecting a dose, which is what ``correct_selection_pct``
    then measures. ``target`` is not used (kept for callers).
    """
    return scenario.true_mtd is not None


def _value(run: RunData, s: str, d: str, m: str) -> float:
    c = run.cell(s, d, m)
    return math.nan if c is None else c.value


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _difference(run: RunData, s: str, a: str, b: str, m: str) -> tuple[float, float, bool]:
    """Difference ``a - b`` of metric ``m``, its SE, and whether the SE is paired.

    Taken from ``paired.csv`` (every pair of designs, computed at run time);
    otherwise (exact runs) the SE :math:`\\sqrt{se_a^2 + se_b^2}` from ``oc.csv``.
    """
    for x, y, sign in ((a, b, 1.0), (b, a, -1.0)):
        got = run.paired_cell(s, x, y, m)
        if got is not None:
            return sign * got[0], got[1], True
    ca, cb = run.cell(s, a, m), run.cell(s, b, m)
    if ca is None or cb is None:
        return math.nan, math.nan, False
    return ca.value - cb.value, math.hypot(ca.se, cb.se), False


def correct_metric(run: RunData, scenario: ScenarioInfo) -> str:
    """The metric that scores correct selection in ``scenario``: selecting no dose when every dose is too
    toxic, else ``correct_selection_pct`` (both name the same number once oc.csv scores "no dose" itself)."""
    return "correct_selection_pct" if has_acceptable_dose(scenario, run.target) else "select_none_pct"


def scenario_leaders(run: RunData, scenario: ScenarioInfo) -> list[tuple[str, float]]:
    """``(design, correct selection %)`` in decreasing order (ties: study-file order)."""
    m = correct_metric(run, scenario)
    vals = [(d, _value(run, scenario.name, d, m)) for d in run.design_names]
    vals = [(d, v) for d, v in vals if math.isfinite(v)]
    return sorted(vals, key=lambda t: -t[1])


def _diff_text(run: RunData, s: str, a: str, b: str, m: str) -> tuple[str, float, float]:
    d, se, _ = _difference(run, s, a, b, m)
    exact = bool(run.oc["exact"].all())
    text = fmt_difference(d, se, 1, exact=exact)
    if math.isfinite(d) and (se > 0 and abs(d) > FLAG_Z * se or exact and abs(d) > 0):
        text += " *"
    return text, d, se


def _flags(run: RunData, s: ScenarioInfo) -> list[str]:
    """``design: rule`` for every safety rule the design breaks in ``s``."""
    toxic = not has_acceptable_dose(s, run.target)
    out = []
    for d in run.design_names:
        hit = []
        for r in SAFETY_RULES:
            if r.toxic_only and not toxic:
                continue
            v = _value(run, s.name, d, r.metric)
            if math.isfinite(v) and (v < r.limit if r.below else v > r.limit):
                hit.append(str(SAFETY_RULES.index(r) + 1))
        if hit:
            out.append(f"{d} ({', '.join(hit)})")
    return out


def _optimal_sentences(run: RunData) -> list[str]:
    from escalade.reports.optimal import objective_designs, optimal_of

    out = []
    for design in objective_designs(run):
        sel, objective = [], ""
        for s in run.scenarios:
            opt = optimal_of(run, s.name, design.name)
            c = run.cell(s.name, design.name, "optimal_selection_pct")
            if opt is not None and opt.dose is not None and c is not None and not c.missing:
                sel.append(c.value)
                objective = opt.objective
        if sel:
            out.append(f"{design.name} aims at the dose that is best by its own objective ({objective}) rather "
                       f"than the MTD; it selected that optimal dose (by the true curves) in {_pct_range(sel)} "
                       f"of trials across the {len(sel)} scenarios that have one.")
    return out
def conclusion_table(run: RunData) -> Table:
    """Per scenario: correct answer, best design by correct selection, its paired lead over the runner-up and
    over the reference design, and safety flags."""
    ref = run.design_names[0]
    cols = ["Scenario", "Correct answer", "Best (correct %)", "Runner-up (correct %)",
            "Best − runner-up", f"Best − {ref}", "Safety flags"]
    rows = []
    for s in run.scenarios:
        m = correct_metric(run, s)
        lead = scenario_leaders(run, s)
        answer = "no dose (stop)" if s.true_mtd is None else run.doses[s.true_mtd].label
        row = [Cell(s.name, header=True), Cell(answer, css="text")]
        if not lead:
            rows.append(row + [Cell("\u2014", css="absent")] * 4 + [Cell("")])
            continue
        best, v = lead[0]
        row.append(Cell(f"{best} ({fmt_number(v, 1)})", v, css="text"))
        if len(lead) > 1:
            second, v2 = lead[1]
            row.append(Cell(f"{second} ({fmt_number(v2, 1)})", v2, css="text"))
            text, d, se = _diff_text(run, s.name, best, second, m)
            row.append(Cell(text, d, se, key={"scenario": s.name, "design": best, "versus": second, "metric": m,
                                                    "table": "conclusion"}))
        else:
            row += [Cell("\u2014", css="absent"), Cell("\u2014", css="absent")]
        if best != ref:
            text, d, se = _diff_text(run, s.name, best, ref, m)
            row.append(Cell(text, d, se, key={"scenario": s.name, "design": best, "versus": ref, "metric": m,
                                                    "table": "conclusion"}))
        else:
            row.append(Cell("(is the reference)", css="text"))
        flags = _flags(run, s)
        row.append(Cell("; ".join(flags) if flags else "none", css="text flag" if flags else "text"))
        rows.append(row)
    exact = bool(run.oc["exact"].all())
    se_how = ("computed exactly" if exact else
              "difference (paired standard error) on the same virtual patients")
    rules = " ".join(f"({k + 1}) {r.text}." for k, r in enumerate(SAFETY_RULES))
    note = (f"Correct %: trials that selected the correct answer (the true MTD; no dose where every dose is too "
            f"toxic). Differences in percentage points, {se_how}; * more than {FLAG_Z:g} SE. Safety flags: "
            f"{rules}")
    return Table("conclusion-table", "Best design per scenario", cols, rows, note)


def conclusion(run: RunData) -> str:
    """One or two plain sentences that read the conclusion table (:func:`conclusion_table`).

    Parameters
    ----------
    run
        The loaded run directory.

    Returns
    -------
    str
        Plain text (the template escapes it).
    """
    names = run.design_names
    wins = {d: 0 for d in names}
    clear: list[str] = []
    flagged: dict[str, int] = {d: 0 for d in names}
    for s in run.scenarios:
        lead = scenario_leaders(run, s)
        if lead:
            wins[lead[0][0]] += 1
            if len(lead) > 1:
                d, se, _ = _difference(run, s.name, lead[0][0], lead[1][0], correct_metric(run, s))
                if math.isfinite(d) and (d > FLAG_Z * se if se > 0 else d > 0):
                    clear.append(f"{lead[0][0]} in \u201c{s.name}\u201d")
        for f in _flags(run, s):
            flagged[f.rsplit(" (", 1)[0]] += 1
    n = len(run.scenarios)
    order = sorted((d for d in names if wins[d]), key=lambda d: -wins[d])
    parts = [f"{d} in {wins[d]}" for d in order]
    parts[0] += f" of the {n} scenarios"
    if clear:
        tail = (f"; its lead over the runner-up exceeds {FLAG_Z:g} paired standard errors only for "
                + _join(clear) + ", so elsewhere the best designs are not clearly distinguishable.")
    else:
        tail = (f"; no lead over the runner-up exceeds {FLAG_Z:g} paired standard errors, so the best designs are "
                "not clearly distinguishable.")
    first = "The design that selected the correct answer most often was " + _join(parts) + tail
    if len(names) == 1:
        first = f"{names[0]} was the only design simulated, in {n} scenarios."
    risky = [f"{d} ({flagged[d]})" for d in names if flagged[d]]
    second = ("Safety flags were raised for " + _join(risky) + " (number of scenarios; see the table)."
              if risky else "No design raised a safety flag in any scenario.")
    if bool(run.oc["exact"].all()):
        second += " All figures were computed exactly and have no Monte Carlo error."
    else:
        second += (f" Figures are means over {run.n_trials} simulated trials per scenario and design; differences "
                   f"within {FLAG_Z:g} standard errors are not evidence of a real difference.")
    return f"{first} {second}"
