"""Methods text for EffTox (Thall & Cook 2004) as ``escalade.design.efftox`` runs it (trialr's rules).

The priors table is the manifest's ``prior_mean``/``prior_sd`` (derived by the
design from the effective-sample-size method of Thall et al. 2014 when not
given); the figure draws the utility contours with the design's own
:func:`escalade.design.efftox.efftox_utility`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from escalade.reports.formatting import dose_phrase, fmt_number
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.methods import MethodsSection, parameter_table, trial_setting_sentence
from escalade.reports.plots import DLT_COLOUR, RESPONSE_COLOUR, FigureImage, png_bytes
from escalade.reports.tables import Cell, Table

__all__ = ["efftox_methods", "EFFTOX_REFERENCES", "contour_figure"]

EFFTOX_REFERENCES: tuple[str, ...] = (
    "Thall PF, Cook JD. Dose-finding based on efficacy-toxicity trade-offs. Biometrics 2004; 60(3):684\u2013693.",
    "Thall PF, Herrick RC, Nguyen HQ, Venier JJ, Norris JC. Effective sample size for computing prior "
    "hyperparameters in Bayesian phase I-II dose-finding. Clinical Trials 2014; 11(6):657\u2013666.",
    "Brock K. trialr: Clinical trial designs in 'rstan'. R package (EffTox rules as efftox_process).",
)

_PARAMETERS = {
    "efficacy_hurdle": "lowest acceptable response rate",
    "toxicity_hurdle": "highest acceptable DLT rate",
    "p_e": "certainty needed that the response rate exceeds its hurdle",
    "p_t": "certainty needed that the DLT rate is below its hurdle",
    "eff0": "contour point (e0, 0): response rate worth no toxicity",
    "tox1": "contour point (1, t1): DLT rate acceptable with certain response",
    "eff_star": "intermediate contour point (e*, t*): response rate",
    "tox_star": "intermediate contour point (e*, t*): DLT rate",
    "contour_p": "exponent p of the contour (solved from the three points)",
    "rank_by": "ranking of acceptable doses (plug-in utility, or posterior mean utility)",
    "doses": "dose amounts (the model uses log dose, centred)",
    "coded_doses": "x = log dose \u2212 mean log dose",
}

_PRIOR_NAMES = ("alpha", "beta", "gamma", "zeta", "eta", "psi")

_PARAMETERS.update({
    "p": "exponent p of the utility contour (None: solved from the three contour points)",
    "prior_prob_eff": "elicited prior mean response probability at each dose",
    "prior_prob_tox": "elicited prior mean DLT probability at each dose",
    "prior_ess_eff": "effective sample size of the efficacy prior (Thall et al. 2014)",
    "prior_ess_tox": "effective sample size of the toxicity prior (Thall et al. 2014)",
    "n_points": "quasi-random points of the posterior integration",
    "pilot_points": "points of the pilot fit that centres the importance sampler",
    "min_ess": "lowest importance-sampling effective sample size before the fallback",
    "qmc_seed": "seed of the fixed quasi-random point set (decisions are deterministic)",
    "n_threads": "threads of the posterior computation (never changes results)",
    "prior_mean": "prior means of (\u03b1, \u03b2, \u03b3, \u03b6, \u03b7, \u03c8) as used",
    "prior_sd": "prior standard deviations of (\u03b1, \u03b2, \u03b3, \u03b6, \u03b7, \u03c8) as used",
})
for _n, _sym in zip(_PRIOR_NAMES, ("\u03b1", "\u03b2", "\u03b3", "\u03b6", "\u03b7", "\u03c8")):
    _PARAMETERS.setdefault(f"{_n}_mean", f"prior mean of {_sym}")
    _PARAMETERS.setdefault(f"{_n}_sd", f"prior standard deviation of {_sym}")


def _derived(design: DesignInfo) -> dict[str, tuple[str, str]]:
    """Values the design derived for the parameters the study left unset (priors, contour exponent)."""
    p = design.params
    out: dict[str, tuple[str, str]] = {}
    how = ("derived from the elicited prior probabilities by effective sample size (Thall et al. 2014)"
           if p.get("prior_prob_eff") is not None else "the design's default prior")
    mean, sd = p.get("prior_mean"), p.get("prior_sd")
    if mean is not None and sd is not None and len(mean) == len(_PRIOR_NAMES) == len(sd):
        for i, n in enumerate(_PRIOR_NAMES):
            out[f"{n}_mean"] = (fmt_number(float(mean[i]), 4), how)
            out[f"{n}_sd"] = (fmt_number(float(sd[i]), 4), how)
    if p.get("prior_prob_eff") is None:
        for k in ("prior_prob_eff", "prior_prob_tox"):
            out[k] = ("not used", "no elicited probabilities: the prior means and SDs above apply")
    if p.get("contour_p") is not None:
        out["p"] = (fmt_number(float(p["contour_p"]), 4), "solved from the three contour points")
    return out


_PARAM_LABELS = {"alpha": "\u03b1 (toxicity intercept)", "beta": "\u03b2 (toxicity slope)",
                 "gamma": "\u03b3 (efficacy intercept)", "zeta": "\u03b6 (efficacy slope)",
                 "eta": "\u03b7 (efficacy quadratic term)", "psi": "\u03c8 (association)"}


def _prior_table(design: DesignInfo, index: int) -> Table:
    from escalade.design.efftox import PARAMETERS

    p = design.params
    mean, sd = list(p["prior_mean"]), list(p["prior_sd"])
    rows = [[Cell(_PARAM_LABELS.get(n, n), header=True), Cell(fmt_number(mean[i], 4), mean[i]),
             Cell(fmt_number(sd[i], 4), sd[i])] for i, n in enumerate(PARAMETERS)]
    how = ("from the elicited prior probabilities by effective sample size (Thall et al., 2014)"
           if p.get("prior_prob_eff") is not None else "as given, or the defaults of the design (trialr's example)")
    return Table(f"efftox-prior-{index + 1}", "EffTox priors (independent normal)", ["Parameter", "Prior mean",
                 "Prior SD"], rows, f"Prior means and standard deviations {how}.")


def contour_figure(design: DesignInfo, index: int) -> FigureImage:
    """Utility contours in the (P(response), P(DLT)) plane with the three points that define them."""
    from escalade.design.efftox import efftox_utility

    p = design.params
    eff0, tox1, es, ts, power = (float(p[k]) for k in ("eff0", "tox1", "eff_star", "tox_star", "contour_p"))
    e, t = np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301))
    u = efftox_utility(e, t, eff0=eff0, tox1=tox1, p=power)
    fig = Figure(figsize=(4.6, 3.9), layout="constrained")
    ax = fig.subplots()
    levels = [-0.6, -0.4, -0.2, 0.2, 0.4, 0.6, 0.8]
    cs = ax.contour(e, t, u, levels=levels, colors="#888888", linewidths=0.8)
    ax.clabel(cs, fontsize=7, fmt="%.1f")
    ax.contour(e, t, u, levels=[0.0], colors=RESPONSE_COLOUR, linewidths=2.0)
    ax.plot([eff0, 1.0, es], [0.0, tox1, ts], "o", color=DLT_COLOUR, markersize=6, clip_on=False,
            label="points defining the neutral contour")
    ax.axvline(float(p["efficacy_hurdle"]), color="#000000", linestyle=":", linewidth=1)
    ax.axhline(float(p["toxicity_hurdle"]), color="#000000", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("P(response)", fontsize=9)
    ax.set_ylabel("P(DLT)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    caption = (f"Desirability contours u(\u03c0E, \u03c0T); thick: the neutral contour (u = 0) through "
               f"({eff0:g}, 0), (1, {tox1:g}) and ({es:g}, {ts:g}), p = {power:.4f}; utility rises towards the "
               f"lower right. Dotted: the efficacy and toxicity hurdles.")
    return FigureImage(f"fig-efftox-{index + 1}", f"EffTox utility contours ({design.name})", caption,
                       png_bytes(fig), "EffTox utility contours")


def efftox_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Protocol text, parameters, priors, contour figure and references for an EffTox design."""
    p = design.params
    start, cs, max_n = int(p.get("start_dose", 0)), int(p["cohort_size"]), int(p["max_n"])
    e_h, t_h, pe, pt = (float(p[k]) for k in ("efficacy_hurdle", "toxicity_hurdle", "p_e", "p_t"))
    coded = ", ".join(fmt_number(x, 3) for x in p["coded_doses"])
    p1 = (f"The EffTox design (Thall and Cook, 2004), with priors calibrated by effective sample size (Thall et "
          f"al., 2014), will be used to find the optimal dose, the dose with the most desirable trade-off between "
          f"response and DLT. Patients are treated in cohorts of {cs}, up to {max_n} patients, the first cohort at "
          f"dose level {start + 1} ({dose_phrase(run.doses[start])}). {trial_setting_sentence(run)}").strip()
    p2 = (f"With doses coded as x = log dose \u2212 mean log dose ({coded}), the probabilities of DLT and of "
          f"response follow logit \u03c0T(x) = \u03b1 + \u03b2x and logit \u03c0E(x) = \u03b3 + \u03b6x + \u03b7x\u00b2, "
          f"joined by a Gumbel-type model with association \u03c8; the six parameters have independent normal "
          f"priors (table below).")
    p3 = (f"A dose is acceptable when Pr(\u03c0E > {e_h:g} | data) > {pe:g} and Pr(\u03c0T < {t_h:g} | data) > "
          f"{pt:g}, and it is at most one level outside the range of doses given so far. Each cohort receives the "
          f"acceptable dose of highest utility ("
          + ("utility of the posterior mean probabilities" if p.get("rank_by", "plugin") == "plugin"
             else "posterior mean utility")
          + "); when no dose is acceptable the trial stops and no dose is selected. At the end of the trial the "
            "acceptable dose of highest utility is selected.")
    p4 = (f"The utility is u(\u03c0E, \u03c0T) = 1 \u2212 [((1 \u2212 \u03c0E)/(1 \u2212 e0))^p + "
          f"(\u03c0T/t1)^p]^(1/p), whose neutral contour passes through ({float(p['eff0']):g}, 0), "
          f"(1, {float(p['tox1']):g}) and ({float(p['eff_star']):g}, {float(p['tox_star']):g}), giving "
          f"p = {float(p['contour_p']):.4f} (figure below).")
    return MethodsSection(design.name, design.kind, "EffTox: efficacy-toxicity trade-off design",
                          [p1, p2, p3, p4], parameter_table(run, design, index, _PARAMETERS,
                                                            derived=_derived(design)),
                          [_prior_table(design, index)], [contour_figure(design, index)], EFFTOX_REFERENCES)
