"""The plain-language conclusion of a run, written from its numbers.

One paragraph for the summary page: which design selects the true MTD most
often and in how many scenarios, by how much (paired differences from
``paired.csv`` with their standard errors), how often a dose above the MTD is
selected, the sample sizes, and what each design does when every dose is too
toxic. Every number comes from ``oc.csv`` / ``paired.csv``; the text only
compares them. Differences are called clear when they exceed two standard
errors, and "not distinguishable" otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from escalade.reports.formatting import fmt_number
from escalade.reports.load import RunData, ScenarioInfo
from escalade.reports.tables import FLAG_Z

__all__ = ["conclusion", "has_acceptable_dose"]


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


def _pct_range(vals: Sequence[float]) -> str:
    lo, hi = fmt_number(min(vals), 1), fmt_number(max(vals), 1)
    return f"{lo}%" if lo == hi else f"{lo}% to {hi}%"


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


def _pcs_sentences(run: RunData, scen: list[ScenarioInfo]) -> list[str]:
    names = run.design_names
    if not scen:
        return []
    pcs = {d: [_value(run, s.name, d, "correct_selection_pct") for s in scen] for d in names}
    if len(names) == 1:
        d = names[0]
        return [f"{d} selected the true MTD in {_pct_range(pcs[d])} of trials across the {len(scen)} scenarios "
                f"in which some dose is at or below the target DLT rate of {run.target:g}."]
    wins = {d: 0 for d in names}
    for i in range(len(scen)):
        best = max(pcs[d][i] for d in names)
        for d in names:
            if pcs[d][i] == best:
                wins[d] += 1
    leader = max(names, key=lambda d: (wins[d], sum(pcs[d])))
    out = [f"Across the {len(scen)} scenarios in which some dose is at or below the target DLT rate of "
           f"{run.target:g}, {leader} selected the true MTD most often in {wins[leader]} of {len(scen)} "
           f"({leader}: {_pct_range(pcs[leader])} of trials; "
           + "; ".join(f"{d}: {_pct_range(pcs[d])}" for d in names if d != leader) + ")."]
    exact = bool(run.oc["exact"].all())
    clauses, kinds = [], set()
    for other in names:
        if other == leader:
            continue
        diffs = [_difference(run, s.name, leader, other, "correct_selection_pct") for s in scen]
        ok = [(d, se, paired) for d, se, paired in diffs if math.isfinite(d)]
        if not ok:
            continue
        up = sum(1 for d, se, _ in ok if d > FLAG_Z * se)
        down = sum(1 for d, se, _ in ok if d < -FLAG_Z * se)
        lo, hi = min(ok, key=lambda t: t[0]), max(ok, key=lambda t: t[0])
        kinds.add(all(p for _, _, p in ok))
        if exact:
            span = f"{fmt_number(lo[0], 1, sign=True)} to {fmt_number(hi[0], 1, sign=True)}"
        else:
            span = (f"{fmt_number(lo[0], 1, sign=True)} (SE {fmt_number(lo[1], 1)}) to "
                    f"{fmt_number(hi[0], 1, sign=True)} (SE {fmt_number(hi[1], 1)})")
        clauses.append((other, span, up, down, len(ok)))
    if not clauses:
        return out
    if kinds == {True}:
        kind = "paired on the same virtual patients"
    elif exact:
        kind = "computed exactly, without Monte Carlo error"
    else:
        kind = "with independent-samples SEs"
    if len(clauses) == 1:
        other, span, up, down, n = clauses[0]
        clear = "it favoured" if exact else f"it exceeded {FLAG_Z:g} standard errors in favour of"
        text = (f"Compared with {other} ({kind}), the difference in correct selection ranged from {span} "
                f"percentage points; {clear} {leader} in {up} of {n} scenarios")
        out.append(text + (f" and in favour of {other} in {down}." if down else "."))
    else:
        clear = "in favour of" if exact else f"more than {FLAG_Z:g} SE in favour of"
        parts = [f"{span} versus {other} ({clear} {leader} in {up} of {n} scenarios"
                 + (f", in favour of {other} in {down})" if down else ")") for other, span, up, down, n in clauses]
        out.append(f"The difference in correct selection between {leader} and each other design ({kind}) ranged "
                   f"over the scenarios from " + "; ".join(parts) + " percentage points.")
    return out


def _ranges(run: RunData, scen: Sequence[ScenarioInfo], metric: str, unit: str) -> str:
    """``0.0% to 11.3% with 3+3 and 0.0% to 22.0% with BOIN``."""
    parts = []
    for d in run.design_names:
        v = [_value(run, s.name, d, metric) for s in scen]
        lo, hi = fmt_number(min(v), 1) + unit, fmt_number(max(v), 1) + unit
        parts.append(f"{lo} with {d}" if lo == hi else f"{lo} to {hi} with {d}")
    return _join(parts)


def _safety_sentences(run: RunData, scen: list[ScenarioInfo]) -> list[str]:
    names = run.design_names
    if not scen:
        return []
    out = [f"Over these scenarios, the share of trials selecting a dose above the true MTD ranged from "
           f"{_ranges(run, scen, 'overdose_selection_pct', '%')}, and the mean number of patients treated above "
           f"the true MTD from {_ranges(run, scen, 'patients_above_mtd', '')}."]
    base = names[0]
    counts = []
    for other in names[1:]:
        diffs = [_difference(run, s.name, other, base, "overdose_selection_pct") for s in scen]
        more = sum(1 for d, se, _ in diffs if math.isfinite(d) and d > FLAG_Z * se)
        less = sum(1 for d, se, _ in diffs if math.isfinite(d) and d < -FLAG_Z * se)
        counts.append((other, more, less))
    if len(counts) == 1:
        other, more, less = counts[0]
        out.append(f"{other} selected a dose above the true MTD clearly more often than {base} in {more} and "
                   f"clearly less often in {less} of these {len(scen)} scenarios.")
    elif counts:
        out.append(f"Compared with {base}, a dose above the true MTD was selected clearly (> {FLAG_Z:g} SE) more "
                   "often in " + _join([f"{m} scenarios by {o}" for o, m, _ in counts]) + " and clearly less "
                   "often in " + _join([f"{lo} by {o}" for o, _, lo in counts]) + f", out of {len(scen)}.")
    out.append(f"The mean sample size ranged from {_ranges(run, run.scenarios, 'sample_size', '')} "
               f"(number of patients, over all {len(run.scenarios)} scenarios).")
    return out


def _toxic_sentences(run: RunData, toxic: list[ScenarioInfo]) -> list[str]:
    out = []
    for s in toxic:
        parts = []
        for d in run.design_names:
            c = run.cell(s.name, d, "select_none_pct")
            if c is None:
                continue
            se = "exact" if c.exact else f"SE {fmt_number(c.se, 1)}"
            parts.append(f"{d} in {fmt_number(c.value, 1)}% ({se})")
        if parts:
            out.append(f"When every dose is above the target (scenario \u201c{s.name}\u201d), the trial should "
                       f"stop without selecting a dose: " + _join(parts) + " of trials did so.")
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


def conclusion(run: RunData) -> str:
    """A one-paragraph conclusion in plain language, generated from ``oc.csv`` and ``paired.csv``.

    Parameters
    ----------
    run
        The loaded run directory.

    Returns
    -------
    str
        Plain text (the template escapes it).
    """
    ok = [s for s in run.scenarios if has_acceptable_dose(s, run.target)]
    toxic = [s for s in run.scenarios if not has_acceptable_dose(s, run.target)]
    sentences = (_pcs_sentences(run, ok) + _safety_sentences(run, ok) + _optimal_sentences(run)
                 + _toxic_sentences(run, toxic))
    if bool(run.oc["exact"].all()):
        sentences.append("All figures were computed exactly, by enumerating every possible trial, and have no "
                         "Monte Carlo error.")
    else:
        sentences.append(f"All figures are based on {run.n_trials} simulated trials per scenario and design (seed "
                         f"{run.seed}); differences smaller than {FLAG_Z:g} standard errors should not be read as "
                         f"real differences between designs.")
    return " ".join(sentences)
