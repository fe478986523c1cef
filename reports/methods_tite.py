"""Methods text for TITE-BOIN, TITE-CRM and BOIN12.

The rules are those of ``escalade.design.tite_boin``, ``escalade.design.tite_crm``
and ``escalade.design.boin12`` (their module docstrings), written as protocol
text with the designs' decision tables.
"""

from __future__ import annotations

from escalade.reports.formatting import dose_phrase
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["tite_boin_methods", "tite_crm_methods", "boin12_methods"]

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
    rows = []
    for r in tite_boin_rules(cfg, [cs * k for k in range(1, 4)]):
        y = f"\u2265{r.y}" if r.y_max is not None and r.y_max > r.y else str(r.y)
        pend = str(r.pending_min) if r.pending_min == r.pending_max else f"{r.pending_min}\u2013{r.pending_max}"
        if r.escalate_at is not None or r.deescalate_at is not None:
            parts = []
            if r.escalate_at is not None:
                parts.append(f"escalate if STFT \u2265 {r.escalate_at:.2f}")
            if r.deescalate_at is not None:
                parts.append(f"de-escalate if STFT \u2264 {r.deescalate_at:.2f}")
            act = "; ".join(parts) + "; otherwise stay"
        else:
            act = {"suspend": "suspend accrual"}.get(r.action, r.action)
        rows.append([Cell(str(r.n)), Cell(y), Cell(pend), Cell(act)])
    table = Table(f"tite-boin-{index + 1}", "TITE-BOIN decisions with pending patients",
                  ["Patients at dose", "DLTs observed", "Pending", "Decision"], rows,
                  "STFT = sum over pending patients of follow-up / DLT window.")
    return MethodsSection(design.name, design.kind, "Time-to-event BOIN (TITE-BOIN) design", [p1, p2],
                          parameter_table(run, design, index), [table], (), TITE_BOIN_REFERENCES)


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
                          parameter_table(run, design, index), (), (), TITE_CRM_REFERENCES)


def boin12_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters and the desirability-score table of BOIN12."""
    from escalade.design.boin12 import Boin12Config, boin12_rds_table

    p = design.params
    fields = {k: p[k] for k in ("target", "n_doses", "cohort_size", "max_n", "start_dose", "phi_e", "u11",
                                "u00", "p_saf", "p_tox", "cutoff_eli", "cutoff_eli_eff", "n_star", "n_explore",
                                "n_earlystop", "prior_alpha", "prior_beta") if k in p}
    cfg = Boin12Config(**fields)
    p1 = (f"The BOIN12 design (Lin et al., 2020) will be used to find the optimal biological dose (OBD), the "
          f"dose with the best toxicity-efficacy trade-off. Patients are enrolled in cohorts of {cfg.cohort_size} "
          f"starting at {_start(run, design)}, up to {cfg.max_n} patients. {trial_setting_sentence(run)}").strip()
    p2 = (f"Outcomes are scored by utility: 100 for response without DLT, {cfg.u11:g} for response with DLT, "
          f"{cfg.u00:g} for neither, 0 for DLT without response. Escalation and de-escalation follow the BOIN "
          f"boundaries for the target DLT rate {cfg.target:g}; among the admissible doses, the next cohort goes "
          f"to the one with the highest rank-based desirability score (table below). A dose is not admissible "
          f"when Pr(DLT rate > {cfg.target:g}) > {cfg.cutoff_eli:g} or Pr(response rate < {cfg.phi_e:g}) > "
          f"{cfg.cutoff_eli_eff:g}. At the end, the OBD is the admissible dose with the highest estimated "
          f"utility.")
    df = boin12_rds_table(cfg)
    df = df[df["n"].isin([cfg.cohort_size, 2 * cfg.cohort_size])]
    rows = [[Cell(str(int(r.n))), Cell(str(int(r.dlt))), Cell(str(int(r.response))), Cell(f"{r.rds:.0f}"),
             Cell("yes" if r.admissible else "no")] for r in df.itertuples()]
    table = Table(f"boin12-{index + 1}", "BOIN12 rank-based desirability scores (RDS)",
                  ["Patients", "DLTs", "Responses", "RDS", "Admissible"], rows,
                  "Higher RDS = more desirable; the full table extends to the maximum sample size.")
    return MethodsSection(design.name, design.kind, "BOIN12 phase I/II design", [p1, p2],
                          parameter_table(run, design, index), [table], (), BOIN12_REFERENCES)
