"""Methods text for the continual reassessment method (CRM), as ``escalade.design.crm`` runs it.

O'Quigley, Pepe & Fisher (1990), Biometrics 46:33-48; Cheung (2011), *Dose
Finding by the Continual Reassessment Method*. The table lists the skeleton and
the prior 90% interval of each dose's DLT probability, computed with the
design module's own model (:class:`escalade.design.crm.CrmModel`).
"""

from __future__ import annotations

import dataclasses
import math

from escalade.reports.formatting import dose_display, dose_phrase, fmt_number
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["crm_methods", "CRM_REFERENCES"]

CRM_REFERENCES: tuple[str, ...] = (
    "O'Quigley J, Pepe M, Fisher L. Continual reassessment method: a practical design for phase 1 clinical "
    "trials in cancer. Biometrics 1990; 46(1):33\u201348.",
    "Cheung YK. Dose Finding by the Continual Reassessment Method. Boca Raton: Chapman & Hall/CRC; 2011.",
    "Lee SM, Cheung YK. Model calibration in the continual reassessment method. Clinical Trials 2009; "
    "6(3):227\u2013238.",
    "Cheung YK. Coherence principles in dose-finding studies. Biometrika 2005; 92(4):863\u2013873.",
)

_PARAMETERS = {
    "target": "target DLT probability \u03c6",
    "skeleton": "prior guesses of the DLT probability at each dose",
    "model": "dose-toxicity model (empiric = power, or one-parameter logistic)",
    "intercept": "intercept a0 of the logistic model",
    "prior_var": "prior variance \u03c3\u00b2 of \u03b2",
    "method": "estimate of \u03b2: posterior mean (bayes) or maximum likelihood (mle)",
    "conf_level": "level of the reported interval of each dose's DLT probability",
    "no_skip": "limit on escalation (current: one level above the current dose; tried: above the highest tried)",
    "coherence": "no escalation after a cohort with DLT fraction \u2265 \u03c6 (fraction) or any DLT (any)",
    "startup": "dose levels of a start-up stage, followed until the first DLT",
    "safety_threshold": "stop if Pr(DLT probability at the lowest dose > \u03c6) exceeds this",
    "safety_min_n": "patients needed before the safety stop applies",
    "stop_n_at_dose": "stop when this many patients have been treated at the recommended dose",
    "min_n": "no stop other than for safety before this many patients",
    "cohort_size": "patients per cohort",
    "max_n": "maximum sample size",
    "start_dose": "dose of the first cohort",
    "n_doses": "number of dose levels",
}

_Z90 = 1.6448536269514722  # standard normal 0.95 quantile


def _skeleton_table(run: RunData, design: DesignInfo, index: int) -> Table:
    from escalade.design.crm import CrmConfig, CrmModel

    names = {f.name for f in dataclasses.fields(CrmConfig) if f.init}
    p = {k: (tuple(v) if isinstance(v, list) else v) for k, v in design.params.items() if k in names}
    cfg = CrmConfig(**p)
    model = CrmModel.from_config(cfg)
    sd = math.sqrt(cfg.prior_var)
    lo = model.ptox(_Z90 * sd if cfg.model == "empiric" else -_Z90 * sd)
    hi = model.ptox(-_Z90 * sd if cfg.model == "empiric" else _Z90 * sd)
    lo, hi = [min(a, b) for a, b in zip(lo, hi)], [max(a, b) for a, b in zip(lo, hi)]
    rows = []
    for j, d in enumerate(run.doses[:cfg.n_doses]):
        rows.append([Cell(dose_display(d), header=True), Cell(fmt_number(cfg.skeleton[j], 3), cfg.skeleton[j]),
                     Cell(f"{fmt_number(lo[j], 3)} \u2013 {fmt_number(hi[j], 3)}")])
    return Table(f"crm-skeleton-{index + 1}", "CRM skeleton and prior", ["Dose", "Skeleton s\u2096",
                 "Prior 90% interval of P(DLT)"], rows,
                 f"\u03b2 ~ N(0, {cfg.prior_var:g}); the interval is the DLT probability at the 5th and 95th "
                 f"percentiles of the prior of \u03b2.")


def crm_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, skeleton table and references for a CRM design."""
    p = design.params
    target, cs, max_n = float(p["target"]), int(p["cohort_size"]), int(p["max_n"])
    start = int(p.get("start_dose", 0))
    model, var = str(p.get("model", "empiric")), float(p.get("prior_var", 1.34))
    p1 = (f"The continual reassessment method (CRM; O'Quigley, Pepe and Fisher, 1990), as described by Cheung "
          f"(2011), will be used to find the maximum tolerated dose (MTD), the dose whose DLT probability is "
          f"closest to the target \u03c6 = {target:g}. Patients are treated in cohorts of {cs}, up to {max_n} "
          f"patients, the first cohort at dose level {start + 1} ({dose_phrase(run.doses[start])}). "
          f"{trial_setting_sentence(run)}").strip()
    if model == "logistic":
        m = (f"The dose-toxicity curve is the one-parameter logistic model logit p\u2096(\u03b2) = a0 + "
             f"exp(\u03b2) x\u2096 with a0 = {float(p.get('intercept', 3.0)):g}, where the doses x\u2096 are "
             f"chosen so that p\u2096(0) equals the skeleton s\u2096")
    else:
        m = ("The dose-toxicity curve is the empiric (power) model p\u2096(\u03b2) = s\u2096^exp(\u03b2), where the "
             "skeleton s\u2096 is the prior guess of the DLT probability at dose k")
    est = ("its posterior mean" if p.get("method", "bayes") == "bayes" else
           "its maximum-likelihood estimate (the posterior mean under a vague N(0, 500\u00b2) prior while the "
           "MLE does not exist)")
    p2 = (f"{m} (table below), with the prior \u03b2 ~ N(0, {var:g}). After each cohort, \u03b2 is estimated by "
          f"{est}, and the next cohort receives the dose whose estimated DLT probability p\u2096(\u03b2\u0302) is "
          f"closest to the target.")
    rules = []
    if p.get("no_skip", "current") == "current":
        rules.append("no dose is skipped in escalation: the next dose is at most one level above the current one")
    elif p.get("no_skip") == "tried":
        rules.append("the next dose is at most one level above the highest dose tried so far")
    if p.get("coherence", "fraction") == "fraction":
        rules.append(f"the dose is not escalated after a cohort whose observed DLT fraction is at least "
                     f"{target:g} (coherence; Cheung, 2005)")
    elif p.get("coherence") == "any":
        rules.append("the dose is not escalated after a cohort with any DLT")
    startup = p.get("startup") or []
    if startup:
        levels = ", ".join(str(int(k) + 1) for k in startup)
        rules.append(f"a start-up stage treats cohorts at dose levels {levels} in turn until the first DLT, after "
                     f"which the model-based rule takes over (two-stage CRM)")
    p3 = ("In addition, " + "; ".join(rules) + ".") if rules else ""
    stops = []
    if p.get("safety_threshold") is not None:
        stops.append(f"for safety when Pr(DLT probability at the lowest dose > {target:g} | data) > "
                     f"{float(p['safety_threshold']):g} with at least {int(p.get('safety_min_n', 3))} patients "
                     f"treated (no dose is then selected)")
    if p.get("stop_n_at_dose") is not None:
        stops.append(f"when {int(p['stop_n_at_dose'])} patients have been treated at the recommended dose")
    p4 = ("The trial stops " + " and ".join(stops) + (f", not before {int(p['min_n'])} patients except for safety"
          if int(p.get("min_n", 0) or 0) > 0 else "") + f"; otherwise it continues to {max_n} patients."
          if stops else f"The trial continues until {max_n} patients have been treated.")
    p4 += " The MTD is the dose recommended by the model after the last cohort."
    paragraphs = [x for x in (p1, p2, p3, p4) if x]
    return MethodsSection(design.name, design.kind, "Continual reassessment method (CRM)", paragraphs,
                          parameter_table(run, design, index, _PARAMETERS), [_skeleton_table(run, design, index)],
                          (), CRM_REFERENCES)
