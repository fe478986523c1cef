"""Methods text for the 3+3 design (Storer 1989), with Korn et al. (1994) de-escalation.

The rules are those of ``escalade.design.threeplusthree`` (its module
docstring), written as protocol text and a decision table.
"""

from __future__ import annotations

from escalade.reports.formatting import dose_phrase
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["threeplusthree_methods", "THREEPLUSTHREE_REFERENCES", "threeplusthree_rules"]

THREEPLUSTHREE_REFERENCES: tuple[str, ...] = (
    "Storer BE. Design and analysis of phase I clinical trials. Biometrics 1989; 45(3):925\u2013937.",
    "Korn EL, Midthune D, Chen TT, Rubinstein LV, Christian MC, Simon RM. A comparison of two phase I trial "
    "designs. Statistics in Medicine 1994; 13(18):1799\u20131806.",
)

_PARAMETERS = {
    "n_doses": "number of dose levels",
    "start_dose": "dose of the first cohort",
    "allow_deescalation": "de-escalate to confirm the MTD with six patients (Korn et al. 1994)",
    "max_n": "maximum sample size (six per dose never exceeds it by default)",
}


def threeplusthree_rules(deescalation: bool, index: int) -> Table:
    """The 3+3 rule as a table: DLTs at the current dose -> action."""
    if deescalation:
        too_toxic = ("The current dose exceeds the MTD. If the next lower dose has 3 patients, treat 3 more "
                     "there and apply these rules; if it has 6, stop: it is the MTD. At the lowest dose: stop, "
                     "no dose is selected.")
    else:
        too_toxic = ("The current dose exceeds the MTD: stop; the MTD is the next lower dose (none at the "
                     "lowest dose).")
    rules = [
        ("0 of 3", "Escalate to the next dose. At the highest dose: stop, the highest dose is the MTD."),
        ("1 of 3", "Treat 3 more patients at the current dose."),
        ("0 or 1 of 6", "Escalate to the next dose. At the highest dose, or when the next dose was already "
                        "found too toxic: stop, the current dose is the MTD."),
        ("2 or more of 3 or of 6", too_toxic),
    ]
    rows = [[Cell(a, header=True), Cell(b)] for a, b in rules]
    return Table(f"tpt-table-{index + 1}", "3+3 decision rules", ["DLTs at the current dose", "Action"], rows)


def threeplusthree_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, rule table and references for a 3+3 design."""
    p = design.params
    start = int(p.get("start_dose", 0))
    deesc = bool(p.get("allow_deescalation", False))
    n_doses = int(p.get("n_doses", len(run.doses)))
    max_n = p.get("max_n")
    p1 = (f"The 3+3 design (Storer, 1989) will be used to find the maximum tolerated dose (MTD) among {n_doses} "
          f"dose levels. Patients are enrolled in cohorts of three, the first at dose level {start + 1} "
          f"({dose_phrase(run.doses[start])}). {trial_setting_sentence(run)}").strip()
    p2 = ("If none of the first three patients at a dose has a DLT, the next cohort is treated at the next higher "
          "dose. If one of three has a DLT, three more patients are treated at the same dose; if at most one of "
          "the six has a DLT, the dose is escalated. If two or more patients at a dose (of three or of six) "
          "have a DLT, that dose exceeds the MTD.")
    if deesc:
        p3 = ("With de-escalation (Korn et al., 1994), the MTD must have been given to six patients: when a dose "
              "exceeds the MTD and the dose below has only three patients, three more are treated at the dose "
              "below. The MTD is the highest dose at which at most one of six patients had a DLT; if the lowest "
              "dose exceeds the MTD, no dose is selected.")
    else:
        p3 = ("Without de-escalation, the MTD is the dose below the first dose at which two or more patients had "
              "a DLT (no dose if that is the lowest dose), and the highest dose if escalation reaches it without "
              "such a dose. The MTD may then have been given to only three patients.")
    if max_n is not None and int(max_n) < 6 * n_doses:
        p3 += f" The trial stops at {int(max_n)} patients at most."
    return MethodsSection(design.name, design.kind, "3+3 design" + (" with de-escalation" if deesc else ""),
                          [p1, p2, p3], parameter_table(run, design, index, _PARAMETERS),
                          [threeplusthree_rules(deesc, index)], (), THREEPLUSTHREE_REFERENCES)
