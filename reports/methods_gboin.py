"""Methods text for gBOIN (Mu et al. 2019) and gBOIN-ET (Takeda et al. 2022; R package boinet).

The numbers come from the designs themselves: BOIN's boundaries for the nETS
target (:func:`escalade.design.gboin.gboin_boundaries`) and ``boinet``'s grid
search (:func:`escalade.design.gboin_et.gboinet_boundaries`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from escalade.design.gboin import DEFAULT_GRADE_WEIGHTS, GboinConfig, gboin_boundaries
from escalade.design.gboin_et import GboinEtConfig
from escalade.reports.formatting import dose_phrase
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.tables import Cell, Table

__all__ = ["gboin_methods", "gboin_et_methods", "GBOIN_REFERENCES", "GBOIN_ET_REFERENCES"]

GBOIN_REFERENCES: tuple[str, ...] = (
    "Mu R, Yuan Y, Xu J, Mandrekar SJ, Yin J. gBOIN: a unified model-assisted phase I trial design accounting for "
    "toxicity grades, and binary or continuous end points. Journal of the Royal Statistical Society: Series C "
    "(Applied Statistics) 2019; 68(2):289\u2013308.",
    "Liu S, Yuan Y. Bayesian optimal interval designs for phase I clinical trials. Journal of the Royal "
    "Statistical Society: Series C (Applied Statistics) 2015; 64(3):507\u2013523.",
    "Chen Z, Krailo MD, Azen SP, Tighiouart M. A novel toxicity scoring system treating toxicity response as a "
    "quasi-continuous variable in phase I clinical trials. Contemporary Clinical Trials 2010; 31(5):473\u2013482.",
)

GBOIN_ET_REFERENCES: tuple[str, ...] = (
    "Takeda K, Morita S, Taguri M. gBOIN-ET: the generalized Bayesian optimal interval design for optimal "
    "dose-finding accounting for ordinal graded efficacy and toxicity in early clinical trials. Biometrical "
    "Journal 2022; 64(7):1178\u20131191.",
    "Takeda K, Taguri M, Morita S. BOIN-ET: Bayesian optimal interval design for dose finding based on both "
    "efficacy and toxicity outcomes. Pharmaceutical Statistics 2018; 17(4):383\u2013395.",
    "Yamaguchi Y, Takeda K, Maruo K. boinet: an R package for Bayesian optimal interval design for dose finding "
    "based on both efficacy and toxicity outcomes. The R Journal 2025 (package version 1.5.0).",
)

_PARAMS_GBOIN: dict[str, str] = {
    "target": "\u03c6: target mean normalised equivalent toxicity score (nETS) at the MTD",
    "p_saf": "\u03c61: highest mean nETS deemed under-dosing (default 0.6\u03c6)",
    "p_tox": "\u03c62: lowest mean nETS deemed overly toxic (default 1.4\u03c6)",
    "cutoff_eli": "posterior probability cut-off for eliminating a dose",
    "n_earlystop": "stop once this many patients are treated at the current dose and the rule stays",
    "severity_weights": "weights of grades 0\u20135 per adverse-event type",
    "ets_max": "equivalent toxicity score mapped to nETS = 1",
}

_PARAMS_GBOIN_ET: dict[str, str] = {
    "target": "\u03c6: target mean nETS",
    "delta": "\u03b4: target mean normalised equivalent efficacy score (nEES)",
    "phi1": "\u03c61: mean nETS deemed low (default 0.1\u03c6)",
    "phi2": "\u03c62: mean nETS deemed too high (default 1.4\u03c6)",
    "delta1": "\u03b41: lowest mean nEES worth having (default 0.6\u03b4)",
    "stopping_npts": "the trial ends when a dose has this many patients",
    "stopping_prob_t": "toxicity admissibility cut-off",
    "stopping_prob_e": "efficacy admissibility cut-off",
    "obd_method": "final selection of the optimal biological dose",
    "severity_weights": "weights of grades 0\u20135 per adverse-event type",
    "ets_max": "equivalent toxicity score mapped to nETS = 1",
    "response_weights": "weight of each response category",
}


def _config(cls: type, design: DesignInfo) -> Any:
    fields = set(cls.__dataclass_fields__)
    return cls(**{k: v for k, v in dict(design.params).items() if k in fields})


def _weights_sentence(weights: Any) -> str:
    if not weights:
        w = ", ".join(f"{v:g}" for v in DEFAULT_GRADE_WEIGHTS)
        return f"every adverse-event type of the protocol weighs grades 0\u20135 as {w}"
    parts = [f"{k}: {', '.join(f'{v:g}' for v in ws)}" for k, ws in dict(weights).items()]
    return "the weights of grades 0\u20135 are " + "; ".join(parts)


def _score_paragraph(c: Any) -> str:
    top = ("the sum of the weighted types' largest weights" if c.ets_max is None else f"{c.ets_max:g}")
    return ("Each patient's toxicity is summarised by the equivalent toxicity score (ETS; Chen et al., 2010): the "
            "sum, over the adverse-event types, of a severity weight for the highest grade of that type; "
            f"{_weights_sentence(c.severity_weights)}. The normalised score nETS = ETS / ETS\u2098\u2090\u2093 "
            f"(ETS\u2098\u2090\u2093 = {top}, larger totals capped) lies between 0 and 1 and is analysed as a "
            "quasi-Bernoulli outcome (Mu et al., 2019).")


def _threshold_table(key: str, title: str, ns: Sequence[int], rows_def: Sequence[tuple[str, Sequence[Any]]],
                     note: str) -> Table:
    rows = [[Cell("Patients treated at the current dose", header=True)] + [Cell(str(n), header=True) for n in ns]]
    for label, vals in rows_def:
        rows.append([Cell(label, header=True)] +
                    [Cell("NA" if v is None else f"{v:.2f}", None if v is None else float(v)) for v in vals])
    return Table(key, title, [], rows, note)


def gboin_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, the nETS decision table and references for gBOIN."""
    c = _config(GboinConfig, design)
    b = gboin_boundaries(c)
    start = run.doses[c.start_dose]
    p1 = (f"The generalised Bayesian optimal interval design gBOIN (Mu et al., 2019), which extends BOIN (Liu and "
          f"Yuan, 2015) from DLTs to graded toxicities, will be used to find the maximum tolerated dose (MTD). The "
          f"target mean nETS at the MTD is \u03c6 = {c.target:g}; the maximum sample size is {c.max_n} patients, "
          f"treated in cohorts of {c.cohort_size} at {c.n_doses} dose levels. {trial_setting_sentence(run)}").strip()
    p2 = _score_paragraph(c)
    p3 = (f"Patients in the first cohort are treated at dose level {c.start_dose + 1} ({dose_phrase(start)}). "
          f"After each cohort the mean nETS at the current dose is compared with the escalation boundary "
          f"\u03bbe = {b.lambda_e:.4f} and the de-escalation boundary \u03bbd = {b.lambda_d:.4f} (BOIN's boundaries "
          f"for \u03c6 = {c.target:g}, \u03c61 = {c.p_saf:g}, \u03c62 = {c.p_tox:g}): escalate if it is at most "
          f"\u03bbe, de-escalate if it is at least \u03bbd, otherwise stay. Once at least 3 patients have been "
          f"treated at a dose and Pr(mean nETS > {c.target:g} | data) > {c.cutoff_eli:g} under the quasi-binomial "
          f"beta(1 + total nETS, 1 + n \u2212 total nETS) posterior, that dose and all higher doses are eliminated; "
          f"if the lowest dose is eliminated the trial stops and no dose is selected.")
    if c.n_earlystop <= c.max_n:
        p3 += (f" The trial also stops when {c.n_earlystop} patients have been treated at the current dose and the "
               f"rule keeps the next cohort there.")
    p4 = ("At the end of the trial the MTD is the treated, non-eliminated dose whose isotonic-regression estimate of "
          "the mean nETS is closest to \u03c6 (as BOIN::select.mtd, with the nETS total in place of the DLT count).")
    t = b.table(c.cohort_size)
    table = _threshold_table(
        f"gboin-table-{index + 1}", "gBOIN decision table (total nETS at the current dose)", t["n"],
        [("Escalate if total nETS \u2264", t["escalate_if_score_le"]),
         ("De-escalate if total nETS \u2265", t["deescalate_if_score_ge"]),
         ("Eliminate if total nETS >", t["eliminate_if_score_gt"])],
        "NA: the dose cannot be eliminated with this many patients (elimination needs at least 3).")
    return MethodsSection(design.name, design.kind, "Generalised Bayesian optimal interval design (gBOIN)",
                          [p1, p2, p3, p4], parameter_table(run, design, index, _PARAMS_GBOIN), [table], (),
                          GBOIN_REFERENCES)


_OBD_TEXT = {
    "max_effprob": ("the MTD is the highest treated dose whose isotonic toxicity estimate is closest to \u03c6, and "
                    "the OBD the lowest admissible dose with the highest mean nEES among the admissible doses up to "
                    "the MTD"),
    "utility_weighted": "the OBD maximises u = nEES \u2212 w1 nETS \u2212 w2 nETS\u00b71(nETS > \u03c62)",
    "utility_truncated_linear": ("the OBD maximises the product of piecewise-linear efficacy and toxicity "
                                 "desirabilities"),
    "utility_scoring": ("the OBD maximises the mean utility 100 nEES(1 \u2212 nETS) + \u03c811 nEES\u00b7nETS + "
                        "\u03c800 (1 \u2212 nEES)(1 \u2212 nETS)"),
}


def gboin_et_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, boundaries and references for gBOIN-ET."""
    c = _config(GboinEtConfig, design)
    l1, l2, e1 = c.boundaries
    start = run.doses[c.start_dose]
    p1 = (f"The gBOIN-ET design (Takeda et al., 2022), the generalised BOIN-ET design for graded toxicity and "
          f"ordinal efficacy, will be used to find the optimal biological dose (OBD), as implemented in the R "
          f"package boinet (version 1.5.0). The targets are a mean nETS of \u03c6 = {c.target:g} and a mean "
          f"normalised equivalent efficacy score (nEES) of \u03b4 = {c.delta:g}; the maximum sample size is "
          f"{c.max_n} patients in cohorts of {c.cohort_size} at {c.n_doses} dose levels. "
          f"{trial_setting_sentence(run)}").strip()
    p2 = (_score_paragraph(c) + " Each patient's response category is scored likewise: nEES = the category's "
          "weight divided by the largest weight" + ("" if c.response_weights else
                                                     " (by default, 1 for the best category falling linearly to 0 "
                                                     "for the worst)") + ".")
    p3 = (f"Patients in the first cohort are treated at dose level {c.start_dose + 1} ({dose_phrase(start)}). "
          f"With the mean nETS and nEES at the current dose and the boundaries \u03bb1 = {l1:g}, \u03bb2 = {l2:g} "
          f"and \u03b71 = {e1:g} (chosen by boinet's grid search to minimise incorrect decisions for \u03c61 = "
          f"{c.phi1:g}, \u03c62 = {c.phi2:g}, \u03b41 = {c.delta1:g}): escalate if nETS \u2264 \u03bb1 and nEES "
          f"\u2264 \u03b71; stay if nETS < \u03bb2 and nEES > \u03b71; de-escalate if nETS \u2265 \u03bb2; otherwise "
          f"escalate to an untried next dose, or else move to the neighbouring dose (or stay) with the highest "
          f"mean nEES, ties at random.")
    p4 = (f"A dose is admissible unless Pr(mean nETS > {c.target:g}) > {c.stopping_prob_t:g} or Pr(mean nEES < "
          f"{c.delta1:g}) > {c.stopping_prob_e:g} under beta(1, 1) priors; only admissible doses are used, the trial "
          f"stops with no dose selected when none is, and it ends when {c.stopping_npts} patients have been "
          f"treated at one dose. At the end, among the admissible treated doses, with the isotonic toxicity "
          f"estimate and the observed mean nEES, {_OBD_TEXT[c.obd_method]}.")
    ns = list(range(c.cohort_size, c.max_n + 1, c.cohort_size))
    table = _threshold_table(
        f"gboin-et-table-{index + 1}", "gBOIN-ET boundaries as totals at the current dose", ns,
        [("Total nETS low if \u2264", [l1 * n for n in ns]), ("Total nETS high if \u2265", [l2 * n for n in ns]),
         ("Total nEES low if \u2264", [e1 * n for n in ns])],
        "Totals are the sums of the patients' scores at the current dose (mean \u00d7 n).")
    return MethodsSection(design.name, design.kind, "Generalised BOIN-ET design (gBOIN-ET)", [p1, p2, p3, p4],
                          parameter_table(run, design, index, _PARAMS_GBOIN_ET), [table], (), GBOIN_ET_REFERENCES)
