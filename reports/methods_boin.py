"""Methods text for BOIN, after the protocol template of the BOIN web application.

The decision table is ``escalade.design.boin.boin_boundaries`` (equal to
``BOIN::get.boundary``), printed at the end of each cohort as the package does.
Liu & Yuan (2015), JRSS C 64:507-523.
"""

from __future__ import annotations

from escalade.design.boin import BoinConfig, boin_boundaries
from escalade.reports.formatting import dose_phrase
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["boin_methods", "BOIN_REFERENCES", "BOIN_PARAMETERS", "boin_decision_tables"]

BOIN_REFERENCES: tuple[str, ...] = (
    "Liu S, Yuan Y. Bayesian optimal interval designs for phase I clinical trials. "
    "Journal of the Royal Statistical Society: Series C (Applied Statistics) 2015; 64(3):507\u2013523.",
    "Yuan Y, Hess KR, Hilsenbeck SG, Gilbert MR. Bayesian optimal interval design: a simple and "
    "well-performing design for phase I oncology trials. Clinical Cancer Research 2016; 22(17):4291\u20134301.",
    "Yan F, Pan H, Zhang L, Liu S, Yuan Y. BOIN: an R package for designing single-agent and drug-combination "
    "dose-finding trials using Bayesian optimal interval designs. Journal of Statistical Software 2020; "
    "94(13):1\u201332.",
)

BOIN_PARAMETERS: dict[str, str] = {
    "target": "target DLT rate \u03c6 at the MTD",
    "n_doses": "number of dose levels",
    "cohort_size": "patients per cohort",
    "max_n": "maximum sample size",
    "start_dose": "dose of the first cohort",
    "p_saf": "\u03c61: highest DLT rate deemed sub-therapeutic (default 0.6\u03c6)",
    "p_tox": "\u03c62: lowest DLT rate deemed overly toxic (default 1.4\u03c6)",
    "cutoff_eli": "posterior probability cut-off for eliminating a dose",
    "extrasafe": "extra safety stopping rule at the lowest dose",
    "offset": "how much lower the extra-safe cut-off is than cutoff_eli",
    "n_earlystop": "stop once this many patients are treated at the current dose",
    "titration": "accelerated titration (one patient per dose) until the first DLT",
    "bound_mtd": "the selected MTD's estimated DLT rate must not exceed \u03bbd",
    "stay_on_1_of_3": "one DLT in three patients at the current dose stays there instead of de-escalating",
}

_MAX_COLS = 12


def _config(run: RunData, design: DesignInfo) -> BoinConfig:
    p = dict(design.params)
    fields = set(BoinConfig.__dataclass_fields__)
    return BoinConfig(**{k: v for k, v in p.items() if k in fields})


def boin_decision_tables(cfg: BoinConfig, index: int) -> list[Table]:
    """The boundaries at the end of each cohort, split into tables of at most 12 columns."""
    extra = {"stay_on_1_of_3": True} if cfg.stay_on_1_of_3 else {}
    b = boin_boundaries(cfg.target, cfg.max_n, cfg.p_saf, cfg.p_tox, cfg.cutoff_eli, cfg.offset, **extra)
    t = b.table(cfg.cohort_size)
    ns = t["n"]
    rows_def = [("Escalate if # of DLTs \u2264", t["escalate_if_ntox_le"]),
                ("De-escalate if # of DLTs \u2265", t["deescalate_if_ntox_ge"]),
                ("Eliminate if # of DLTs \u2265", t["eliminate_if_ntox_ge"])]
    if cfg.extrasafe:
        rows_def.append(("Stop (lowest dose) if # of DLTs \u2265",
                         [None if b.extrasafe_stop[n] > n else int(b.extrasafe_stop[n]) for n in ns]))
    out = []
    for k in range(0, len(ns), _MAX_COLS):
        part = range(k, min(k + _MAX_COLS, len(ns)))
        rows = [[Cell("Patients treated at the current dose", header=True)] +
                [Cell(str(ns[i]), header=True) for i in part]]
        for label, vals in rows_def:
            rows.append([Cell(label, header=True)] +
                        [Cell("NA" if vals[i] is None else str(vals[i]), None if vals[i] is None else vals[i])
                         for i in part])
        suffix = "" if len(ns) <= _MAX_COLS else f" (part {k // _MAX_COLS + 1})"
        out.append(Table(f"boin-table-{index + 1}-{k // _MAX_COLS + 1}", f"BOIN decision table{suffix}", [], rows,
                         "NA: the dose cannot be eliminated with this many patients. "
                         "Elimination applies once at least 3 patients have been treated at a dose."))
    return out


def boin_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, decision table and references for a BOIN design."""
    c = _config(run, design)
    start = run.doses[c.start_dose]
    le, ld = c.lambda_e, c.lambda_d
    p1 = (f"The Bayesian optimal interval (BOIN) design (Liu and Yuan, 2015; Yuan et al., 2016) will be used to "
          f"find the maximum tolerated dose (MTD). The target DLT rate for the MTD is \u03c6 = {c.target:g} and the "
          f"maximum sample size is {c.max_n} patients, enrolled and treated in cohorts of {c.cohort_size}, at "
          f"{c.n_doses} dose levels. {trial_setting_sentence(run)}").strip()
    p2 = (f"Patients in the first cohort are treated at dose level {c.start_dose + 1} ({dose_phrase(start)}). "
          f"To assign a dose to each subsequent cohort, the observed DLT rate at the current dose, "
          f"p\u0302 = (number of patients with a DLT at the current dose) / (number of patients treated at the "
          f"current dose), is compared with the escalation boundary \u03bbe = {le:.4f} and the de-escalation "
          f"boundary \u03bbd = {ld:.4f}: if p\u0302 \u2264 \u03bbe the next cohort is treated at the next higher "
          f"dose level; if p\u0302 > \u03bbd, at the next lower dose level; otherwise at the current dose. These "
          f"boundaries minimise the probability of an incorrect dose assignment when \u03c61 = {c.p_saf:g} is the "
          f"highest DLT rate deemed sub-therapeutic (escalation warranted) and \u03c62 = {c.p_tox:g} the lowest "
          f"DLT rate deemed overly toxic (de-escalation required). The decision table below gives the rule in "
          f"numbers of patients with a DLT.")
    safety = (f"For patient safety, once at least 3 patients have been treated at a dose and "
              f"Pr(DLT rate > {c.target:g} | data) > {c.cutoff_eli:g} under a beta(1, 1) prior, that dose and all "
              f"higher doses are eliminated and never used again; if the lowest dose is eliminated, the trial "
              f"stops for safety and no dose is selected.")
    if c.extrasafe:
        safety += (f" In addition (extra-safe rule), the trial stops for safety when the lowest dose has at least 3 "
                   f"patients and Pr(DLT rate at the lowest dose > {c.target:g} | data) > "
                   f"{c.cutoff_eli - c.offset:g} (= {c.cutoff_eli:g} \u2212 {c.offset:g}).")
    if c.n_earlystop <= c.max_n:
        safety += (f" The trial also stops early when {c.n_earlystop} patients have been treated at the current "
                   f"dose and the rule keeps the next cohort there.")
    if c.titration:
        safety += (f" Accelerated titration is used at the start: one patient per dose level, escalating until the "
                   f"first DLT, after which the cohort at that dose is completed to {c.cohort_size} and the rules "
                   f"above apply.")
    safety += f" Otherwise the trial continues until {c.max_n} patients have been treated."
    sel = ("At the end of the trial the MTD is selected as the dose, among those treated and not eliminated, "
           "whose isotonic-regression (pool-adjacent-violators) estimate of the DLT rate is closest to the target; "
           "among tied estimates the higher dose is selected when they are below the target and the lower dose "
           "otherwise (as BOIN::select.mtd).")
    if c.bound_mtd:
        sel += f" The selected dose's estimate must also be at most \u03bbd = {ld:.4f}."
    return MethodsSection(design.name, design.kind, "Bayesian optimal interval (BOIN) design",
                          [p1, p2, safety, sel], parameter_table(run, design, index, BOIN_PARAMETERS),
                          boin_decision_tables(c, index), (), BOIN_REFERENCES)
