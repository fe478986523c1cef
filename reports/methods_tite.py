"""Methods text for TITE-BOIN, TITE-CRM, BOIN12 and TITE-BOIN12.

The rules are those of ``escalade.design.tite_boin``, ``escalade.design.tite_crm``,
``escalade.design.boin12`` and ``escalade.design.tite_boin12`` (their module docstrings), written as protocol
text with the designs' decision tables.
"""

from __future__ import annotations

from typing import Any

from escalade.reports.formatting import dose_phrase
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table, split_wide

__all__ = ["tite_boin_methods", "tite_crm_methods", "boin12_methods", "tite_boin_table", "boin12_rds_tables",
           "boin12_selection_sentence", "tite_boin12_methods", "TITE_BOIN12_PARAMETERS",
           "TITE_BOIN_PARAMETERS", "TITE_CRM_PARAMETERS", "BOIN12_PARAMETERS"]

TITE_BOIN_REFERENCES = (
    "Yuan Y, Lin R, Li D, Nie L, Warren KE. Time-to-event Bayesian optimal interval design to accelerate "
    "phase I trials. Clinical Cancer Research 2018; 24(20):4921\u20134930.",
    "Liu S, Yuan Y. Bayesian optimal interval designs for phase I clinical trials. Journal of the Royal "
    "Statistical Society C 2015; 64(3):507\u2013523.",
)
TITE_CRM_REFERENCES = (
    "Cheung YK, Chappell R. Sequential designs for phase I clinical trials with late-onset toxicities. "
    "Biometrics 2000; 56(4):1177\u20131182.",
    "Cheung YK. Dose Finding by the Continual Reassessment Method. Chapman & Hall/CRC, 2011.",
)
BOIN12_REFERENCES = (
    "Lin R, Zhou Y, Yan F, Li D, Yuan Y. BOIN12: Bayesian optimal interval phase I/II trial design for "
    "utility-based dose finding in immunotherapy and targeted therapies. JCO Precision Oncology 2020; "
    "4:1393\u20131402.",
)


TITE_BOIN_PARAMETERS: dict[str, str] = {
    "max_pending": "suspend accrual when more than this fraction of the patients at the current dose are pending",
    "deescalate_below_target": "let imputed DLTs alone trigger de-escalation when the observed rate is below "
                               "the target",
}
TITE_CRM_PARAMETERS: dict[str, str] = {
    "skeleton": "prior guesses of the DLT probability at each dose",
    "model": "dose-toxicity model (empiric = power, or one-parameter logistic)",
    "intercept": "intercept a0 of the logistic model",
    "prior_var": "prior variance \u03c3\u00b2 of \u03b2",
    "scheme": "weight of a patient without DLT: the fraction of the DLT window observed (linear) or adaptive",
    "conf_level": "level of the reported interval of each dose's DLT probability",
    "no_skip": "limit on escalation (current: one level above the current dose; tried: above the highest tried)",
    "coherence": "no escalation after a cohort with DLT fraction \u2265 \u03c6 (fraction) or any DLT (any)",
}
BOIN12_PARAMETERS: dict[str, str] = {
    "target": "\u03c6T: highest acceptable DLT rate",
    "phi_e": "\u03c6E: lowest acceptable response rate",
    "u11": "utility of response with DLT (response without DLT = 100, DLT without response = 0)",
    "u00": "utility of neither response nor DLT",
    "cutoff_eli": "cT: a dose is not admissible when Pr(DLT rate > \u03c6T) exceeds this",
    "cutoff_eli_eff": "cE: a dose is not admissible when Pr(response rate < \u03c6E) exceeds this",
    "n_star": "N*: with at least this many patients at the current dose, escalation needs an estimated DLT "
              "rate \u2264 \u03bbe",
    "n_explore": "with at least this many patients at the current dose and the next dose untried, escalate",
    "prior_alpha": "Beta prior of the quasi-binomial utility: \u03b1",
    "prior_beta": "Beta prior of the quasi-binomial utility: \u03b2",
    "selection": "final selection of the OBD: 'software' (the authors' simulation code) or 'paper'",
}
TITE_BOIN12_PARAMETERS: dict[str, str] = {
    **BOIN12_PARAMETERS,
    "max_pending": "suspend accrual when more than this fraction of the patients at the current dose have a "
                   "pending toxicity outcome, or more than this fraction a pending efficacy outcome",
}
TITE_BOIN12_REFERENCES = (
    "Zhou Y, Lin R, Lee JJ, et al. TITE-BOIN12: a Bayesian phase I/II trial design to find the optimal biological "
    "dose with late-onset toxicity and efficacy. Statistics in Medicine 2022; 41:1918\u20131931.",
    *BOIN12_REFERENCES,
)


def _start(run: RunData, design: DesignInfo) -> str:
    start = int(design.params.get("start_dose", 0))
    return f"dose level {start + 1} ({dose_phrase(run.doses[start])})"


def tite_boin_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters and the pending-patient decision table of TITE-BOIN."""
    from escalade.design.tite_boin import TiteBoinConfig, tite_boin_rules

    p = design.params
    known = {k: p[k] for k in ("target", "n_doses", "cohort_size", "max_n", "start_dose", "p_saf", "p_tox",
                               "cutoff_eli", "extrasafe", "offset", "n_earlystop", "bound_mtd", "max_pending",
                               "deescalate_below_target") if k in p}
    cfg = TiteBoinConfig(**known)
    cs = int(cfg.cohort_size)
    p1 = (f"The time-to-event Bayesian optimal interval (TITE-BOIN) design (Yuan et al., 2018) will be used to "
          f"find the MTD, the dose with DLT probability closest to {cfg.target:g}. Patients are enrolled in "
          f"cohorts of {cs} starting at {_start(run, design)}, up to {cfg.max_n} patients. "
          f"{trial_setting_sentence(run)}").strip()
    p2 = ("New patients are enrolled without waiting for the previous ones to complete the DLT window. Each "
          "pending patient's unknown outcome is imputed from the standardized total follow-up time (STFT) of "
          "the pending patients, and the BOIN boundaries are applied to the resulting DLT rate; the table "
          "below lists every decision with pending patients. Accrual is suspended when more than "
          f"{cfg.max_pending:.0%} of the patients at the current dose are pending. Elimination of toxic doses "
          "and the final isotonic selection of the MTD are those of BOIN, on complete data.")
    table = tite_boin_table(cfg, index)
    return MethodsSection(design.name, design.kind, "Time-to-event BOIN (TITE-BOIN) design", [p1, p2],
                          parameter_table(run, design, index, TITE_BOIN_PARAMETERS), [table], (),
                          TITE_BOIN_REFERENCES)


def _tite_action(r: object) -> str:
    """The decision of one TITE-BOIN rule, in words."""
    if r.escalate_at is not None or r.deescalate_at is not None:
        parts = []
        if r.escalate_at is not None:
            parts.append(f"escalate if STFT \u2265 {r.escalate_at:.2f}")
        if r.deescalate_at is not None:
            parts.append(f"de-escalate if STFT \u2264 {r.deescalate_at:.2f}")
        return ", ".join(parts) + ", else stay"
    return {"suspend": "suspend accrual"}.get(r.action, r.action)


def tite_boin_table(cfg: object, index: int) -> Table:
    """The complete TITE-BOIN decision table, every cohort multiple up to ``max_n``: one row per number of
    patients n and DLTs y, listing the decision for each number of pending patients."""
    from escalade.design.tite_boin import tite_boin_rules

    rows = []
    by_ny: dict[tuple[int, str], list[str]] = {}
    for r in tite_boin_rules(cfg):
        y = f"\u2265 {r.y}" if r.y_max is not None and r.y_max > r.y else str(r.y)
        pend = str(r.pending_min) if r.pending_min == r.pending_max else f"{r.pending_min}\u2013{r.pending_max}"
        by_ny.setdefault((r.n, y), []).append(f"{pend}: {_tite_action(r)}")
    last_n = None
    for (n, y), acts in by_ny.items():
        rows.append([Cell(str(n) if n != last_n else "", header=True), Cell(y),
                     Cell("; ".join(acts), css="text")])
        last_n = n
    return Table(f"tite-boin-{index + 1}", "TITE-BOIN decisions with pending patients (complete)",
                 ["Patients at dose (n)", "DLTs observed (y)", "Pending patients: decision"], rows,
                 f"Every cohort multiple of n up to {cfg.max_n}. STFT = standardised total follow-up time: the "
                 "sum over pending patients of their follow-up divided by the DLT window. With no patient "
                 "pending the decision is BOIN's.")


#: BOIN12 score tables hold rows of n up to this many patients in one band (one column per response count).
_RDS_BAND: int = 14


def boin12_rds_tables(cfg: object, index: int) -> list[Table]:
    """The complete BOIN12 rank-based desirability table (Lin et al. 2020, table 3), every cohort multiple
    up to ``max_n``: rows = patients n and DLTs, columns = responses; E where the dose is not admissible.

    Rows of n up to :data:`_RDS_BAND` form one table; larger n another, split into parts across the page
    (:func:`~escalade.reports.tables.split_wide`). With non-additive utilities a cell holds the range of the
    scores over the number of patients with both outcomes.
    """
    from escalade.design.boin12 import boin12_rds_table

    df = boin12_rds_table(cfg)
    df = df[df["n"] > 0]
    cells: dict[tuple[int, int, int], str] = {}
    for (n, y, e), g in df.groupby(["n", "dlt", "response"]):
        r = g["rds"][g["admissible"]].dropna()
        if r.empty:
            cells[(int(n), int(y), int(e))] = "E"
        else:
            lo, hi = f"{r.min():.0f}", f"{r.max():.0f}"
            cells[(int(n), int(y), int(e))] = lo if lo == hi else f"{lo}\u2013{hi}"
    ns = sorted({k[0] for k in cells})
    bands = [b for b in ([n for n in ns if n <= _RDS_BAND], [n for n in ns if n > _RDS_BAND]) if b]
    out: list[Table] = []
    for k, band in enumerate(bands):
        top = max(band)
        rows = []
        for n in band:
            eliminated = [all(cells[(n, y, e)] == "E" for e in range(n + 1)) for y in range(n + 1)]
            first_all_e = next((y for y in range(n + 1) if all(eliminated[y:])), None)
            for y in range(n + 1):
                if first_all_e is not None and y > first_all_e:
                    break
                label = f"\u2265 {y}" if y == first_all_e and y < n else str(y)
                row = [Cell(str(n) if y == 0 else "", header=True), Cell(label)]
                for e in range(top + 1):
                    text = "\u2014" if e > n else cells[(n, y, e)]
                    row.append(Cell(text, css="absent" if text in ("E", "\u2014") else ""))
                rows.append(row)
        span = f"n = {band[0]} to {top}" if len(band) > 1 else f"n = {top}"
        note = ("Rows: n patients treated at the dose and their DLTs; columns: number of responses. Higher RDS "
                "= more desirable. E: the dose is eliminated (not admissible) after that outcome; \u2014: more "
                "responses than patients (not possible). Every cohort multiple of n up to the maximum sample "
                f"size ({ns[-1]}) is shown across {len(bands)} table{'s' if len(bands) > 1 else ''}.")
        table = Table(f"boin12-{index + 1}" + ("" if k == 0 else f"-{k + 1}"),
                      f"BOIN12 rank-based desirability scores (RDS), {span}", ["n", "DLTs"] +
                      [str(e) for e in range(top + 1)], rows, note if k == len(bands) - 1 else "", keep=2)
        out += split_wide(table, drop_empty=True)
    return out


def tite_crm_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text and parameters of TITE-CRM."""
    p = design.params
    sk = ", ".join(f"{v:.3g}" for v in p.get("skeleton", ()))
    p1 = (f"The time-to-event continual reassessment method (TITE-CRM; Cheung & Chappell, 2000) will be used "
          f"to find the MTD, the dose with DLT probability closest to {p.get('target', run.target):g}, among "
          f"{len(run.doses)} dose levels. Patients are enrolled in cohorts of {p.get('cohort_size', 3)} starting "
          f"at {_start(run, design)}, up to {p.get('max_n')} patients. {trial_setting_sentence(run)}").strip()
    p2 = (f"The dose-toxicity curve follows the {p.get('model', 'empiric')} model with skeleton ({sk}) and a "
          f"normal prior of variance {p.get('prior_var', 1.34):g} on its parameter. Each patient without a DLT "
          f"contributes to the likelihood with weight equal to the fraction of the DLT window observed "
          f"({p.get('scheme', 'linear')} weights), so that new patients can be dosed before earlier ones complete "
          f"follow-up; a patient with a DLT has weight 1. The next cohort receives the dose whose posterior "
          f"DLT probability is closest to the target, without skipping untried doses.")
    return MethodsSection(design.name, design.kind, "Time-to-event CRM (TITE-CRM)", [p1, p2],
                          parameter_table(run, design, index, TITE_CRM_PARAMETERS), (), (), TITE_CRM_REFERENCES)


def boin12_selection_sentence(cfg: Any) -> str:
    """The protocol sentence for BOIN12's (and TITE-BOIN12's) final selection, by ``cfg.selection``."""
    common = ("At the end of the trial, the DLT rates are estimated by isotonic regression of (y + 0.05)/(n + 0.1) "
              "(weights n + 0.1) and the MTD is the dose whose estimate is closest to the target; the response "
              "rates are estimated by unimodal (umbrella) isotonic regression of (y + 0.05)/(n + 0.1) (weights "
              "n + 0.5), averaged over the position of the mode with weights proportional to each fit's binomial "
              "likelihood; the OBD is the admissible dose at or below the MTD with the highest estimated utility")
    if cfg.selection == "software":
        return (common + ", computed as the authors' software computes it (Lin et al., 2020, web application at "
                "trialdesign.org): every dose enters the fits (untried doses at 0.5 with small weights), the "
                "estimates are offset by 0.001 (DLT) and 0.01 (response) times the dose level, the umbrella fits "
                "are those of the R package Iso (ufit), ties go to the lower dose, and a trial whose last "
                "decision was to stop for safety or futility selects no dose.")
    return (common + ", as the paper states it: only treated doses enter the fits, the umbrella fits are the "
            "least-squares ones, and ties go to the higher dose.")


def boin12_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters and the desirability-score table of BOIN12."""
    from escalade.design.boin12 import Boin12Config, boin12_rds_table

    p = design.params
    fields = {k: p[k] for k in ("target", "n_doses", "cohort_size", "max_n", "start_dose", "phi_e", "u11",
                                "u00", "p_saf", "p_tox", "cutoff_eli", "cutoff_eli_eff", "n_star", "n_explore",
                                "n_earlystop", "prior_alpha", "prior_beta", "selection") if k in p}
    cfg = Boin12Config(**fields)
    p1 = (f"The BOIN12 design (Lin et al., 2020) will be used to find the optimal biological dose (OBD), the "
          f"dose with the best toxicity-efficacy trade-off. Patients are enrolled in cohorts of {cfg.cohort_size} "
          f"starting at {_start(run, design)}, up to {cfg.max_n} patients. {trial_setting_sentence(run)}").strip()
    p2 = (f"Outcomes are scored by utility: 100 for response without DLT, {cfg.u11:g} for response with DLT, "
          f"{cfg.u00:g} for neither, 0 for DLT without response. Escalation and de-escalation follow the BOIN "
          f"boundaries for the target DLT rate {cfg.target:g}; among the admissible doses, the next cohort goes "
          f"to the one with the highest rank-based desirability score (table below). A dose is not admissible "
          f"when Pr(DLT rate > {cfg.target:g}) > {cfg.cutoff_eli:g} or Pr(response rate < {cfg.phi_e:g}) > "
          f"{cfg.cutoff_eli_eff:g}. {boin12_selection_sentence(cfg)}")
    tables = boin12_rds_tables(cfg, index)
    return MethodsSection(design.name, design.kind, "BOIN12 phase I/II design", [p1, p2],
                          parameter_table(run, design, index, BOIN12_PARAMETERS), tables, (), BOIN12_REFERENCES)


def tite_boin12_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters and BOIN12's desirability table for TITE-BOIN12."""
    from escalade.design.tite_boin12 import TiteBoin12Config

    p = design.params
    fields = {k: p[k] for k in ("target", "n_doses", "cohort_size", "max_n", "start_dose", "phi_e", "u11",
                                "u00", "p_saf", "p_tox", "cutoff_eli", "cutoff_eli_eff", "n_star", "n_explore",
                                "n_earlystop", "prior_alpha", "prior_beta", "selection", "max_pending") if k in p}
    cfg = TiteBoin12Config(**fields)
    p1 = (f"The TITE-BOIN12 design (Zhou et al., 2022) will be used to find the optimal biological dose (OBD) "
          f"with late-onset toxicity and efficacy. Patients are enrolled in cohorts of {cfg.cohort_size} starting "
          f"at {_start(run, design)}, up to {cfg.max_n} patients, without waiting for the previous patients' "
          f"outcomes to be complete. {trial_setting_sentence(run)}").strip()
    p2 = (f"Outcomes are scored by utility as in BOIN12 (Lin et al., 2020): 100 for response without DLT, "
          f"{cfg.u11:g} for response with DLT, {cfg.u00:g} for neither, 0 for DLT without response. A patient "
          f"whose toxicity or efficacy outcome is still pending counts by the fraction of its assessment window "
          f"already followed (the effective sample size); the DLT and response rates at each dose are estimated "
          f"from the effective sample sizes, and a pending outcome is replaced by its conditional probability "
          f"given the follow-up so far, which gives each dose's expected utility and its desirability, the "
          f"posterior probability that the utility exceeds the benchmark. BOIN12's rules are then applied to "
          f"these: escalation and de-escalation by the BOIN boundaries for the target DLT rate {cfg.target:g} "
          f"applied to the estimated DLT rate at the current dose; the next cohort goes to the most desirable "
          f"admissible dose next to the current one; a dose is not admissible when Pr(DLT rate > "
          f"{cfg.target:g}) > {cfg.cutoff_eli:g} (observed DLTs among all patients treated there) or "
          f"Pr(response rate < {cfg.phi_e:g}) > {cfg.cutoff_eli_eff:g} (among the patients already assessed "
          f"for response). "
          f"Accrual is suspended when more than {cfg.max_pending:.0%} of the patients at the current dose have a "
          f"pending toxicity outcome, or more than {cfg.max_pending:.0%} a pending efficacy outcome. With every "
          f"outcome complete the design is BOIN12 (table below).")
    p3 = (f"{boin12_selection_sentence(cfg)} The final selection uses the complete outcomes, once every "
          f"patient's assessment windows have ended.")
    tables = boin12_rds_tables(cfg, index)
    return MethodsSection(design.name, design.kind, "TITE-BOIN12 phase I/II design", [p1, p2, p3],
                          parameter_table(run, design, index, TITE_BOIN12_PARAMETERS), tables, (),
                          TITE_BOIN12_REFERENCES)
