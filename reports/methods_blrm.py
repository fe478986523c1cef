"""Methods text for the BLRM with EWOC, as ``escalade.design.blrm`` runs it.

Neuenschwander, Branson & Gsponer (2008), Stat Med 27:2420-2439; Babb,
Rogatko & Zacks (1998), Stat Med 17:1103-1120. The prior table (interval
probabilities and the 2.5/50/97.5% quantiles of each dose's DLT probability
before any patient, and whether EWOC would allow the dose) is computed with the
design module's own posterior (:class:`escalade.design.blrm.BlrmModel` with no
data), never re-derived here.
"""

from __future__ import annotations

import dataclasses
import math

from escalade.reports.formatting import dose_display, dose_phrase, fmt_number
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["blrm_methods", "crm2_methods", "BLRM_REFERENCES", "CRM2_REFERENCES"]

BLRM_REFERENCES: tuple[str, ...] = (
    "Neuenschwander B, Branson M, Gsponer T. Critical aspects of the Bayesian approach to phase I cancer "
    "trials. Statistics in Medicine 2008; 27(13):2420\u20132439.",
    "Babb J, Rogatko A, Zacks S. Cancer phase I clinical trials: efficient dose escalation with overdose "
    "control. Statistics in Medicine 1998; 17(10):1103\u20131120.",
    "Neuenschwander B, Matano A, Tang Z, Roychoudhury S, Wandel S, Bailey S. A Bayesian industry approach to "
    "phase I combination trials in oncology. In: Zhao W, Yang H (eds). Statistical Methods in Drug "
    "Combination Studies. Chapman & Hall/CRC; 2015:95\u2013135.",
    "Weber S, Widmer L, Bean A. OncoBayes2: Bayesian logistic regression for oncology dose-escalation "
    "trials. R package.",
)

_PARAMETERS = {
    "doses": "dose amounts d (the model uses log(d / d*))",
    "reference_dose": "reference dose d* (not set: the middle dose level)",
    "reference_dose_used": "reference dose d* used",
    "prior_mean": "prior means of (log \u03b1, log \u03b2)",
    "prior_sd": "prior standard deviations of (log \u03b1, log \u03b2)",
    "prior_corr": "prior correlation of log \u03b1 and log \u03b2",
    "mixture": "mixture prior components (weight, means, SDs, correlation); replaces the prior above",
    "target_interval": "limits c\u2081, c\u2082 of the target toxicity interval [c\u2081, c\u2082)",
    "ewoc": "EWOC: a dose is eligible only if P(DLT probability \u2265 c\u2082) is below this",
    "criterion": "choice among eligible doses (target: highest P(target); highest: highest eligible dose)",
    "no_skip": "limit on escalation (current: one level above the current dose; tried: above the highest tried)",
    "max_step": "largest ratio of the next dose amount to the current one",
    "safety_min_n": "patients needed before the trial stops because no dose is eligible",
    "stop_n_at_dose": "stop when this many patients have been treated at the recommended dose",
    "stop_prob_target": "... and the recommended dose's P(target) is at least this",
    "min_n": "no stop other than for safety before this many patients",
    "select_tried_only": "final MTD only among doses given to patients",
    "grid_points": "integration grid: nodes per axis",
    "grid_width": "integration grid: half-width in prior SDs",
    "cohort_size": "patients per cohort",
    "max_n": "maximum sample size",
    "start_dose": "dose of the first cohort",
    "n_doses": "number of dose levels",
}


def _config(design: DesignInfo):  # -> BlrmConfig
    from escalade.design.blrm import BlrmConfig

    names = {f.name for f in dataclasses.fields(BlrmConfig) if f.init}
    p = {k: (tuple(v) if isinstance(v, list) and k != "mixture" else v) for k, v in design.params.items()
         if k in names}
    return BlrmConfig(**p)


def _prior_table(run: RunData, design: DesignInfo, index: int) -> Table:
    from escalade.design.blrm import BlrmModel, blrm_recommend

    cfg = _config(design)
    fit = BlrmModel.from_config(cfg).fit_one([0] * cfg.n_doses, [0] * cfg.n_doses)
    elig, _ = blrm_recommend(cfg, fit["prob_target"][None, :], fit["prob_over"][None, :])
    c1, c2 = cfg.target_interval
    rows = []
    for j, d in enumerate(run.doses[:cfg.n_doses]):
        q = fit["quantiles"][j]
        rows.append([Cell(dose_display(d), header=True),
                     Cell(fmt_number(fit["prob_under"][j], 3), float(fit["prob_under"][j])),
                     Cell(fmt_number(fit["prob_target"][j], 3), float(fit["prob_target"][j])),
                     Cell(fmt_number(fit["prob_over"][j], 3), float(fit["prob_over"][j])),
                     Cell(fmt_number(q[1], 3), float(q[1])),
                     Cell(f"{fmt_number(q[0], 3)} \u2013 {fmt_number(q[2], 3)}"),
                     Cell("yes" if elig[0, j] else "no")])
    return Table(f"blrm-prior-{index + 1}", "BLRM prior: interval probabilities per dose before any patient",
                 ["Dose", f"P(< {c1:g})", f"P([{c1:g}, {c2:g}))", f"P(\u2265 {c2:g})", "Median P(DLT)",
                  "95% interval", "Eligible (EWOC)"], rows,
                 f"Prior of the DLT probability at each dose implied by the prior of (log \u03b1, log \u03b2), "
                 f"reference dose d* = {cfg.reference_dose_used:g}; eligible when P(\u2265 {c2:g}) < {cfg.ewoc:g}.")


def _prior_sentence(design: DesignInfo) -> str:
    cfg = _config(design)
    comps = cfg.components()

    def one(m: tuple[float, float], cov: tuple[tuple[float, float], ...]) -> str:
        s1, s2 = math.sqrt(cov[0][0]), math.sqrt(cov[1][1])
        r = cov[0][1] / (s1 * s2)
        corr = f", correlation {r:g}" if r else ""
        return f"means ({m[0]:.3g}, {m[1]:.3g}), standard deviations ({s1:.3g}, {s2:.3g}){corr}"

    if len(comps) == 1:
        return f"a bivariate normal prior on (log \u03b1, log \u03b2) with {one(comps[0][1], comps[0][2])}"
    parts = "; ".join(f"weight {w:.3g}: {one(m, s)}" for w, m, s in comps)
    return f"a mixture of {len(comps)} bivariate normal priors on (log \u03b1, log \u03b2) ({parts})"


def blrm_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, prior table and references for a BLRM-EWOC design."""
    cfg = _config(design)
    cs, max_n, start = cfg.cohort_size, cfg.max_n, cfg.start_dose
    c1, c2 = cfg.target_interval
    p1 = (f"Dose escalation will be guided by a Bayesian logistic regression model (BLRM; Neuenschwander, "
          f"Branson and Gsponer, 2008) with escalation with overdose control (EWOC; Babb, Rogatko and Zacks, "
          f"1998). Patients are treated in cohorts of {cs}, up to {max_n} patients, the first cohort at dose "
          f"level {start + 1} ({dose_phrase(run.doses[start])}). {trial_setting_sentence(run)}").strip()
    p2 = (f"The probability of a DLT at dose d is modelled as logit p(d) = log \u03b1 + \u03b2 log(d / d*), with "
          f"reference dose d* = {cfg.reference_dose_used:g}, so that \u03b1 is the odds of a DLT at d* and \u03b2 > 0 "
          f"makes toxicity increase with dose; the model is given {_prior_sentence(design)} (table below). "
          f"After each cohort the posterior distribution of p(d) at every dose is summarised by the "
          f"probabilities of under-dosing (p(d) < {c1:g}), targeted toxicity ({c1:g} \u2264 p(d) < {c2:g}) and "
          f"over-dosing (p(d) \u2265 {c2:g}).")
    choice = ("the eligible dose with the highest probability of targeted toxicity" if cfg.criterion == "target"
              else "the highest eligible dose")
    p3 = (f"By the EWOC principle a dose is eligible only if its probability of over-dosing is below {cfg.ewoc:g}; "
          f"the next cohort receives {choice}")
    limits = []
    if cfg.no_skip == "current":
        limits.append("no dose level is skipped in escalation (at most one level above the current dose)")
    elif cfg.no_skip == "tried":
        limits.append("the next dose is at most one level above the highest dose tried so far")
    if cfg.max_step is not None:
        limits.append(f"the next dose amount is at most {cfg.max_step:g} times the current one")
    p3 += (", provided that " + " and ".join(limits) + "." if limits else ".")
    stops = ["for safety when no dose is eligible" + (f" (once {cfg.safety_min_n} patients have been treated)"
                                                      if cfg.safety_min_n else "") + "; no dose is then selected"]
    if cfg.stop_n_at_dose is not None:
        extra = (f" and its probability of targeted toxicity is at least {cfg.stop_prob_target:g}"
                 if cfg.stop_prob_target is not None else "")
        stops.append(f"when {cfg.stop_n_at_dose} patients have been treated at the recommended dose{extra}")
    p4 = ("The trial stops " + ", or ".join(stops)
          + (f"; it does not stop before {cfg.min_n} patients except for safety" if cfg.min_n else "")
          + f". Otherwise it continues to {max_n} patients. The MTD is the dose the same rule recommends on "
          f"all data at the end of the trial" + (" among doses given to patients" if cfg.select_tried_only else "")
          + ".")
    p5 = ("The posterior is computed by deterministic numerical integration on a fixed "
          f"{cfg.grid_points} \u00d7 {cfg.grid_points} grid in (log \u03b1, log \u03b2) (prior mean \u00b1 "
          f"{cfg.grid_width:g} prior standard deviations); its interval probabilities and quantiles agree with "
          "long Markov chain Monte Carlo (NUTS) runs to within 0.005.")
    return MethodsSection(design.name, design.kind,
                          "Bayesian logistic regression model with escalation with overdose control (BLRM-EWOC)",
                          [p1, p2, p3, p4, p5], parameter_table(run, design, index, _PARAMETERS),
                          [_prior_table(run, design, index)], (), BLRM_REFERENCES)



CRM2_REFERENCES: tuple[str, ...] = (
    "O'Quigley J, Pepe M, Fisher L. Continual reassessment method: a practical design for phase 1 clinical "
    "trials in cancer. Biometrics 1990; 46(1):33\u201348.",
    "Sweeting M, Mander A, Sabin T. bcrm: Bayesian continual reassessment method designs for phase I "
    "dose-finding trials. Journal of Statistical Software 2013; 54(13):1\u201326.",
)


def crm2_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text and parameters for the two-parameter logistic CRM (bcrm's ``logit2``)."""
    from escalade.design.crm_logistic2 import Crm2Config

    names = {f.name for f in dataclasses.fields(Crm2Config) if f.init}
    cfg = Crm2Config(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in design.params.items()
                        if k in names})
    m1, m2 = cfg.prior_mean
    s1, s2 = cfg.prior_sd
    p1 = (f"The two-parameter logistic continual reassessment method (CRM; O'Quigley, Pepe and Fisher, 1990), "
          f"as implemented in the R package bcrm (Sweeting, Mander and Sabin, 2013), will be used to find the "
          f"dose whose DLT probability is closest to the target \u03c6 = {cfg.target:g}. Patients are treated in "
          f"cohorts of {cfg.cohort_size}, up to {cfg.max_n} patients, the first cohort at dose level "
          f"{cfg.start_dose + 1} ({dose_phrase(run.doses[cfg.start_dose])}). {trial_setting_sentence(run)}").strip()
    p2 = (f"The model is logit p\u2096 = log \u03b1\u2081 + \u03b1\u2082 x\u2096 with (log \u03b1\u2081, "
          f"log \u03b1\u2082) bivariate normal with means ({m1:.3g}, {m2:.3g}), standard deviations "
          f"({s1:.3g}, {s2:.3g}) and correlation {cfg.prior_corr:g}; the standardised doses x\u2096 "
          f"({', '.join(f'{x:.3f}' for x in cfg.sdose)}) make the model at the prior "
          f"{cfg.sdose_calculate} of \u03b1 equal the skeleton ({', '.join(f'{v:g}' for v in cfg.skeleton)}). "
          f"After each cohort the next dose is the one whose "
          + ("plug-in estimate p\u2096(E[\u03b1 | data])" if cfg.pointest == "plugin"
             else "posterior mean DLT probability")
          + " is closest to \u03c6" + (", without skipping untried dose levels in escalation"
                                       if cfg.no_skip != "off" else "") + ".")
    p3 = (f"The trial continues to {cfg.max_n} patients"
          + (f", stopping early for safety when Pr(p\u2081 > \u03c6 | data) > {cfg.safety_threshold:g}"
             if cfg.safety_threshold is not None else "")
          + (f", or when {cfg.stop_n_at_dose} patients have been treated at the recommended dose"
             if cfg.stop_n_at_dose is not None else "")
          + ". The MTD is the dose the model recommends on all data. The posterior is computed by deterministic "
            "numerical integration on a fixed grid.")
    return MethodsSection(design.name, design.kind, "Two-parameter logistic continual reassessment method",
                          [p1, p2, p3], parameter_table(run, design, index), (), (), CRM2_REFERENCES)


