"""Methods text for the decision-table designs: Keyboard, mTPI-2, i3+3 and a protocol's own table.

Each writer gives the protocol paragraph of its design, the parameters, the
decision table at the end of each cohort (from the design module's own table
function, never re-derived here) and the references; elimination and the final
selection (isotonic regression as ``BOIN::select.mtd``) are stated per design.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from escalade.design.decision_table import DecisionTable
from escalade.design.i3plus3 import i3plus3_table
from escalade.design.keyboard import keyboard_table
from escalade.design.mtpi2 import mtpi2_table
from escalade.reports.formatting import dose_phrase
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["keyboard_methods", "mtpi2_methods", "i3plus3_methods", "decision_table_methods", "table_tables"]

_MAX_COLS = 12

_BOIN_SELECT = ("Liu S, Yuan Y. Bayesian optimal interval designs for phase I clinical trials. Journal of the Royal "
                "Statistical Society: Series C 2015; 64(3):507\u2013523.")

_MEANINGS: dict[str, str] = {
    "margin_l": "target key lower margin (target key = (\u03c6 \u2212 margin_l, \u03c6 + margin_r))",
    "margin_r": "target key upper margin",
    "epsilon1": "equivalence interval lower margin \u03b51",
    "epsilon2": "equivalence interval upper margin \u03b52",
    "alpha": "first shape parameter of the beta prior",
    "beta": "second shape parameter of the beta prior",
    "cutoff_eli": "posterior probability cut-off \u03be for eliminating a dose (DU)",
    "elim_min_n": "patients needed at a dose before it can be eliminated",
    "table": "CSV file of the protocol's decision table",
}


def table_tables(t: DecisionTable, cohort_size: int, max_n: int, index: int, label: str) -> list[Table]:
    """The table's boundaries at the end of each cohort, split into tables of at most 12 columns."""
    full = t.table(cohort_size)
    keep = [i for i, n in enumerate(full["n"]) if n <= max_n]
    ns = [full["n"][i] for i in keep]
    rows_def = [("Escalate if # of DLTs \u2264", [full["escalate_if_ntox_le"][i] for i in keep]),
                ("De-escalate if # of DLTs \u2265", [full["deescalate_if_ntox_ge"][i] for i in keep]),
                ("Eliminate if # of DLTs \u2265", [full["eliminate_if_ntox_ge"][i] for i in keep])]
    out = []
    for k in range(0, len(ns), _MAX_COLS):
        part = range(k, min(k + _MAX_COLS, len(ns)))
        rows = [[Cell("Patients treated at the current dose", header=True)] +
                [Cell(str(ns[i]), header=True) for i in part]]
        for name, vals in rows_def:
            rows.append([Cell(name, header=True)] +
                        [Cell("NA" if vals[i] is None else str(vals[i]), None if vals[i] is None else vals[i])
                         for i in part])
        suffix = "" if len(ns) <= _MAX_COLS else f" (part {k // _MAX_COLS + 1})"
        out.append(Table(f"table-design-{index + 1}-{k // _MAX_COLS + 1}", f"{label}: decision table{suffix}", [],
                         rows, "NA: no such number of DLTs (never escalate: -1 means escalation is never allowed; "
                               "eliminate: the dose cannot be eliminated with this many patients)."))
    return out


def _p(design: DesignInfo) -> dict[str, Any]:
    return dict(design.params)


def _opening(run: RunData, p: dict[str, Any], name: str, cites: str) -> str:
    return (f"The {name} ({cites}) will be used to find the maximum tolerated dose (MTD). The target DLT rate for "
            f"the MTD is \u03c6 = {p['target']:g} and the maximum sample size is {p['max_n']} patients, enrolled "
            f"and treated in cohorts of {p['cohort_size']}, at {p['n_doses']} dose levels. "
            f"{trial_setting_sentence(run)}").strip()


def _start(run: RunData, p: dict[str, Any]) -> str:
    return (f"Patients in the first cohort are treated at dose level {p['start_dose'] + 1} "
            f"({dose_phrase(run.doses[p['start_dose']])}).")


def _safety(p: dict[str, Any], beta: str = "beta(1, 1)") -> str:
    text = (f"For patient safety, once at least {p.get('elim_min_n', 3)} patients have been treated at a dose and "
            f"Pr(DLT rate > {p['target']:g} | data) > {p['cutoff_eli']:g} under a {beta} prior (DU in the table), "
            f"that dose and all higher doses are eliminated and never used again; if the lowest dose is eliminated, "
            f"the trial stops for safety and no dose is selected.")
    return text + _early(p)


def _early(p: dict[str, Any]) -> str:
    text = ""
    if p.get("n_earlystop", 100) <= p["max_n"]:
        text += (f" The trial also stops early when {p['n_earlystop']} patients have been treated at the current "
                 f"dose and the rule keeps the next cohort there.")
    return text + f" Otherwise the trial continues until {p['max_n']} patients have been treated."


_SELECT = ("At the end of the trial the MTD is selected as the dose, among those treated and not eliminated, whose "
           "isotonic-regression (pool-adjacent-violators) estimate of the DLT rate is closest to the target; among "
           "tied estimates the higher dose is selected when they are below the target and the lower dose otherwise "
           "(as BOIN::select.mtd, which the {who} uses).")


def keyboard_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, decision table and references for a Keyboard design."""
    p = _p(design)
    lo, hi = p["target"] - p["margin_l"], p["target"] + p["margin_r"]
    width = p["margin_l"] + p["margin_r"]
    rule = (f"{_start(run, p)} The DLT rate scale is divided into keys (intervals) of equal width {width:g}: the "
            f"target key ({lo:g}, {hi:g}) and keys of the same width on either side (the outermost ones ending at 0 "
            f"and 1). After each cohort, the posterior distribution of the current dose's DLT rate, beta(1 + y, "
            f"1 + n \u2212 y) with y of the n patients treated there having a DLT, gives each key a probability; "
            f"the key with the largest probability (the strongest key) decides: left of the target key, escalate to "
            f"the next higher dose; the target key, stay; right of it, de-escalate to the next lower dose. The "
            f"decision table below gives the rule in numbers of patients with a DLT (Keyboard::get.boundary.kb).")
    t = keyboard_table(p["target"], max(p["max_n"], 3), p["margin_l"], p["margin_r"], p["cutoff_eli"],
                       p.get("elim_min_n", 3))
    return MethodsSection(design.name, design.kind, "Keyboard design",
                          [_opening(run, p, "Keyboard design", "Yan et al., 2017"), rule, _safety(p),
                           _SELECT.format(who="Keyboard package")],
                          parameter_table(run, design, index, _MEANINGS),
                          table_tables(t, p["cohort_size"], p["max_n"], index, "Keyboard design"), (),
                          ("Yan F, Mandrekar SJ, Yuan Y. Keyboard: a novel Bayesian toxicity probability interval "
                           "design for phase I clinical trials. Clinical Cancer Research 2017; 23(15):3994\u20134003.",
                           _BOIN_SELECT))


def mtpi2_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, decision table and references for an mTPI-2 design."""
    p = _p(design)
    lo, hi = p["target"] - p["epsilon1"], p["target"] + p["epsilon2"]
    prior = f"beta({p['alpha']:g}, {p['beta']:g})"
    rule = (f"{_start(run, p)} The DLT rate scale is divided into the equivalence interval ({lo:g}, {hi:g}) and "
            f"intervals of the same length {p['epsilon1'] + p['epsilon2']:g} on either side (the outermost ones "
            f"ending at 0 and 1). After each cohort, with y of the n patients treated at the current dose having a "
            f"DLT and a {prior} prior, each interval's unit probability mass (its posterior probability divided by "
            f"its length) is computed; the interval with the largest one decides: below the equivalence interval, "
            f"escalate; the equivalence interval, stay; above it, de-escalate (ties: escalate before stay before "
            f"de-escalate, as the R package escalation). The decision table below gives the rule in numbers of "
            f"patients with a DLT.")
    t = mtpi2_table(p["target"], max(p["max_n"], 3), p["epsilon1"], p["epsilon2"], p["cutoff_eli"], p["alpha"],
                    p["beta"], p.get("elim_min_n", 3))
    return MethodsSection(design.name, design.kind, "Modified toxicity probability interval-2 (mTPI-2) design",
                          [_opening(run, p, "mTPI-2 design", "Guo et al., 2017"), rule, _safety(p, prior),
                           _SELECT.format(who="design here")],
                          parameter_table(run, design, index, _MEANINGS),
                          table_tables(t, p["cohort_size"], p["max_n"], index, "mTPI-2 design"), (),
                          ("Guo W, Wang SJ, Yang S, Lynn H, Ji Y. A Bayesian interval dose-finding design addressing "
                           "Ockham's razor: mTPI-2. Contemporary Clinical Trials 2017; 58:23\u201333.",
                           "Ji Y, Liu P, Li Y, Bekele BN. A modified toxicity probability interval method for "
                           "dose-finding trials. Clinical Trials 2010; 7(6):653\u2013663.", _BOIN_SELECT))


def i3plus3_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, decision table and references for an i3+3 design."""
    p = _p(design)
    lo, hi = p["target"] - p["epsilon1"], p["target"] + p["epsilon2"]
    rule = (f"{_start(run, p)} After each cohort, the observed DLT rate y/n at the current dose (y of the n "
            f"patients treated there having a DLT) is compared with the equivalence interval [{lo:g}, {hi:g}]: below "
            f"it, escalate to the next higher dose; inside it, stay; above it, de-escalate to the next lower dose, "
            f"unless (y \u2212 1)/n is below the interval, in which case stay. The decision table below gives the "
            f"rule in numbers of patients with a DLT.")
    t = i3plus3_table(p["target"], max(p["max_n"], 3), p["epsilon1"], p["epsilon2"], p["cutoff_eli"],
                      p.get("elim_min_n", 3))
    return MethodsSection(design.name, design.kind, "i3+3 design",
                          [_opening(run, p, "i3+3 design", "Liu et al., 2020"), rule, _safety(p),
                           _SELECT.format(who="design here")],
                          parameter_table(run, design, index, _MEANINGS),
                          table_tables(t, p["cohort_size"], p["max_n"], index, "i3+3 design"), (),
                          ("Liu M, Wang SJ, Ji Y. The i3+3 design for phase I clinical trials. Journal of "
                           "Biopharmaceutical Statistics 2020; 30(2):294\u2013304.", _BOIN_SELECT))


def decision_table_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters and the protocol's decision table (from the run's manifest)."""
    p = _p(design)
    rows = p.get("decisions") or []
    shown = dataclasses.replace(design, params={k: v for k, v in design.params.items() if k != "decisions"})
    rule = (f"{_start(run, p)} After each cohort, the protocol's decision table (file {p['table']}) gives, for the "
            f"number of patients treated at the current dose and the number of them with a DLT, the next step: "
            f"escalate to the next higher dose (E), stay (S), de-escalate to the next lower dose (D), or de-escalate "
            f"and eliminate the current dose and all higher doses (DU). A dose whose data reach a DU entry is never "
            f"used again; if the lowest dose is eliminated, the trial stops for safety and no dose is selected.")
    paragraphs = [_opening(run, p, "protocol's decision table", "one table over patients and DLTs at the current "
                                                                "dose"), rule + _early(p),
                  _SELECT.format(who="BOIN design")]
    tables = (table_tables(DecisionTable.from_rows([list(r) for r in rows]), p["cohort_size"], p["max_n"], index,
                           "Protocol") if rows else [])
    return MethodsSection(design.name, design.kind, "Decision-table design", paragraphs,
                          parameter_table(run, shown, index, _MEANINGS), tables, (), (_BOIN_SELECT,))
