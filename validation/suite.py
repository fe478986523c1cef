"""The requirements of ``escalade validate``: statement, test, tolerance, observed worst error, verdict.

Each requirement is one function of a :class:`Context` returning an :class:`Outcome`
(the worst error over its comparisons, in the unit of its tolerance, and how many
comparisons it made). The comparisons re-express those of the test suite
(``tests/test_boin.py``, ``test_crm.py``, ``test_tite_crm.py``, ``test_exact.py``,
``test_efftox.py``, ``test_blrm.py``, ``test_exact_shipped.py``) against the reference
outputs installed with the package (``escalade/validation/reference/``, provenance in
its READMEs), so that they run against the *installed* package, without ``tests/``.

Design code is reached through its module (``boin.boin_boundaries``, not a name
imported here), so a patched design function is what the suite measures: a
deliberately broken design fails exactly the requirements that depend on it
(``tests/test_validate.py``).

Monte Carlo requirements use fixed seeds, so a validation run is reproducible;
their tolerance is a number of Monte Carlo standard errors computed from the
number of simulated trials on both sides (the reference's own runs and ours).
Simulation-based calibration follows Talts et al. (2018), *Validating Bayesian
inference algorithms with simulation-based calibration*, arXiv:1804.06788, in its
continuous form: the posterior CDF at the parameter drawn from the prior
(Cook, Gelman & Rubin 2006, J. Comput. Graph. Stat. 15:675-692) is uniform, and
its histogram in ``B`` bins lies within binomial bands.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["REFERENCE", "Context", "Outcome", "Requirement", "RequirementResult", "REQUIREMENTS",
           "family_limit", "load_reference", "run_requirements", "sbc_band_ratio"]

#: The reference outputs, installed with the package (pyproject: package-data of escalade.validation).
REFERENCE = Path(__file__).resolve().parent / "reference"


@cache
def _load(parts: tuple[str, ...]) -> Any:
    path = REFERENCE.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference file missing from the installed package; reinstall escalade "
                                f"(pip install --force-reinstall escalade) or restore validation/reference/")
    return json.loads(path.read_text(encoding="utf-8"))


def load_reference(*parts: str) -> Any:
    """The parsed JSON of ``reference/<parts>`` (cached; the caller must not modify it)."""
    return _load(tuple(parts))


@dataclass(frozen=True, slots=True)
class Context:
    """Options of one validation run."""

    quick: bool = False


@dataclass(slots=True)
class Outcome:
    """What a requirement's test observed.

    ``worst`` is in the unit of the requirement's tolerance (``limit``); the
    requirement passes when ``worst <= limit`` (NaN never passes).
    """

    worst: float
    n_comparisons: int
    detail: str = ""
    passed_override: bool | None = None
    limit: float | None = None  # the limit this run applied, when it depends on the run (family-wise bounds)

    def passed(self, limit: float) -> bool:
        if self.passed_override is not None:
            return self.passed_override
        limit = limit if self.limit is None else self.limit
        return bool(np.isfinite(self.worst) and self.worst <= limit)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement: identifier, statement, how it is tested, tolerance, and what it depends on."""

    id: str
    statement: str
    test: str
    tolerance: str
    limit: float
    unit: str
    depends: tuple[str, ...]
    check: Callable[[Context], Outcome] = field(repr=False)


@dataclass(slots=True)
class RequirementResult:
    """A requirement as run: its text, the observed worst error, the verdict and the time taken."""

    id: str
    statement: str
    test: str
    tolerance: str
    limit: float
    unit: str
    depends: tuple[str, ...]
    worst: float
    n_comparisons: int
    passed: bool
    detail: str
    seconds: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["depends"] = list(self.depends)
        d["worst"] = None if not math.isfinite(self.worst) else self.worst
        d["worst_text"] = _fmt(self.worst)
        return d


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "inf" if v > 0 else "nan"
    if v == 0:
        return "0"
    return f"{v:.3g}" if (abs(v) >= 1e-3 and abs(v) < 1e4) else f"{v:.2e}"


class _Worst:
    """Running worst error over many comparisons (a mismatch of exact quantities is infinite)."""

    def __init__(self) -> None:
        self.value = 0.0
        self.n = 0
        self.where = ""

    def add(self, err: Any, where: str = "") -> None:
        e = np.asarray(err, float).ravel()
        self.n += e.size
        if e.size == 0:
            return
        m = float(np.max(np.where(np.isnan(e), np.inf, e)))
        if m > self.value:
            self.value = m
            self.where = where

    def exact(self, ok: bool, where: str) -> None:
        self.add(0.0 if ok else math.inf, where)

    def outcome(self, note: str = "") -> Outcome:
        where = f"worst at {self.where}" if self.where else ""
        return Outcome(self.value, self.n, "; ".join(t for t in (note, where) if t))

    def family_outcome(self, note: str, floor: float = 3.0) -> Outcome:
        """Monte Carlo comparisons: the limit is :func:`family_limit` of their number (at least ``floor``)."""
        z = family_limit(self.n, floor)
        o = self.outcome(f"{note}; limit z* = {z:.2f} for {self.n} comparisons")
        o.limit = z
        return o


def family_limit(k: int, floor: float = 3.0, alpha: float = 0.01) -> float:
    """The |z| bound of ``k`` Monte Carlo comparisons with family-wise false-alarm rate ``alpha``.

    Bonferroni: each comparison at two-sided level ``alpha / k``, i.e.
    :math:`z^* = \\Phi^{-1}(1 - \\alpha / (2k))`, and never below ``floor`` (3 SEs, the
    per-comparison bound of the test suite). With 280 comparisons at a plain 3 SEs a
    correct implementation would fail about half of the time (1 - 0.9973^280).
    """
    if k <= 0:
        return floor
    return max(floor, float(stats.norm.isf(alpha / (2 * k))))


def _absdiff(a: Any, b: Any) -> np.ndarray:
    return np.abs(np.asarray(a, float) - np.asarray(b, float))


def _pooled_pct_se(a_pct: float, n_a: int, b_pct: float, n_b: int) -> float:
    """SE of the difference of two independent percentages, from their pooled proportion (two-sample test).

    The pooled proportion is floored at half a trial of the larger sample, so an event that neither
    side saw still has a positive SE.
    """
    p = (a_pct * n_a + b_pct * n_b) / 100 / (n_a + n_b)
    p = min(max(p, 0.5 / (n_a + n_b)), 1 - 0.5 / (n_a + n_b))
    return 100 * math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b))


def _binomial_z(k: int, t: int, p: float) -> float:
    """``k`` events in ``t`` trials against an exact probability ``p``, as the equivalent normal deviate.

    The two-sided exact binomial test's p-value (scipy.stats.binomtest) turned into
    :math:`|z|` with the same two-sided tail probability: correct for rare events, where
    ``|k/t - p| / sqrt(p (1 - p) / t)`` is not normal.
    """
    if p <= 0.0 or p >= 1.0:
        return 0.0 if k == round(p * t) else math.inf
    pv = stats.binomtest(int(k), int(t), p).pvalue
    return float(stats.norm.isf(min(pv, 1.0) / 2)) if pv > 0 else math.inf


# ---------------------------------------------------------------------------------------------- BOIN


def _boin_boundaries(ctx: Context) -> Outcome:
    from escalade.design import boin

    w = _Worst()
    for case, c in sorted(load_reference("boin", "boundaries.json")["cases"].items()):
        a = c["args"]
        b = boin.boin_boundaries(a["target"], a["ncohort"] * a["cohortsize"], a["p.saf"], a["p.tox"],
                                 a["cutoff.eli"], a["offset"])
        w.add(_absdiff([b.lambda_e, b.lambda_d], [c["lambda_e"], c["lambda_d"]]), f"{case} lambda")
        full = b.table(1)
        for key in ("escalate_if_ntox_le", "deescalate_if_ntox_ge", "eliminate_if_ntox_ge"):
            w.exact(list(full[key]) == list(c["full_table"][key]), f"{case} {key}")
        ends = b.table(a["cohortsize"])
        for key in ("n", "escalate_if_ntox_le", "deescalate_if_ntox_ge", "eliminate_if_ntox_ge"):
            w.exact(list(ends[key]) == list(c["boundary_tab_at_cohort_ends"][key]), f"{case} cohort-end {key}")
        if a["extrasafe"]:
            ref = c["extrasafe_stop"]
            mine = [None if b.extrasafe_stop[n] > n or n < 3 else int(b.extrasafe_stop[n])
                    for n in ref["n_at_lowest_dose"]]
            w.exact(mine == ref["stop_trial_if_ntox_at_lowest_dose_ge"], f"{case} extrasafe")
    return w.outcome("8 get.boundary() calls; lambdas by absolute difference, decision tables entry by entry")


def _boin_select(ctx: Context) -> Outcome:
    from escalade.design import boin
    from escalade.design.base import NO_DOSE

    w = _Worst()
    for case, c in sorted(load_reference("boin", "select_mtd.json")["datasets"].items()):
        a = c["args"]
        sel = boin.boin_select(a["npts"], a["ntox"], target=a["target"], cutoff_eli=a["cutoff.eli"],
                               extrasafe=a["extrasafe"], offset=a["offset"], bound_mtd=a["boundMTD"],
                               p_tox=a["p.tox"])[0]
        w.exact(int(sel) == (NO_DOSE if c["MTD"] == 99 else c["MTD"] - 1), f"{case} MTD")
        npts = np.asarray(a["npts"])
        est = boin.boin_estimates(a["npts"], a["ntox"], npts > 0, target=a["target"])
        internals = c["internals_full_precision"]
        if internals.get("phat_all_treated"):
            t = npts > 0
            w.add(_absdiff(est.phat[t], internals["phat_all_treated"]), f"{case} phat")
            w.add(_absdiff(est.p_overdose[t], internals["p_overdose_all_treated"]), f"{case} p_overdose")
            w.add(_absdiff(est.ci_lower[t], internals["ci_lower_all_treated"]), f"{case} ci_lower")
            w.add(_absdiff(est.ci_upper[t], internals["ci_upper_all_treated"]), f"{case} ci_upper")
    return w.outcome("16 select.mtd() data sets: the selected dose exactly, the isotonic estimates numerically")


def _boin_get_oc(ctx: Context) -> Outcome:
    from escalade.design import boin
    from escalade.design.base import NO_DOSE
    from escalade.simulations.trial import simulate

    scen = load_reference("boin", "get_oc.json")["scenarios"]
    names = sorted(scen)
    w = _Worst()
    n_ours = 0
    for case in names:
        c = scen[case]
        a, r, der = c["args"], c["result"], c["derived_from_per_trial_data"]
        n_ref = a["ntrial"]
        t = 2000 if ctx.quick else n_ref
        cfg = boin.BoinConfig(target=a["target"], n_doses=len(a["p.true"]), cohort_size=a["cohortsize"],
                              max_n=a["ncohort"] * a["cohortsize"], start_dose=a["startdose"] - 1,
                              p_saf=a["p.saf"], p_tox=a["p.tox"], cutoff_eli=a["cutoff.eli"],
                              extrasafe=a["extrasafe"], offset=a["offset"], n_earlystop=a["n.earlystop"],
                              titration=a["titration"], bound_mtd=a["boundMTD"])
        out = simulate(boin.BoinDesign(cfg), a["p.true"], n_trials=t, seed=20240607)
        n_ours += t

        def z(mine: float, ref: float, se: float, where: str) -> None:
            w.add(abs(mine - ref) / se if se > 0 else (0.0 if mine == ref else math.inf), f"{case} {where}")

        def z_pct(mine: float, ref: float, where: str) -> None:
            z(mine, ref, _pooled_pct_se(ref, n_ref, mine, t), where)

        def z_mean(arr: np.ndarray, ref: float, ref_sd: float, where: str) -> None:
            # two independent means: the larger SD of the two samples (rare DLTs make one side's SD 0)
            sd = max(ref_sd, float(arr.std(ddof=1)))
            z(float(arr.mean()), ref, sd * math.sqrt(1 / n_ref + 1 / t), where)

        for j in range(cfg.n_doses):
            z_pct(float(np.mean(out.selected == j) * 100), r["selpercent"][j], f"selpercent[{j + 1}]")
            z_mean(out.n[:, j], r["npatients"][j], der["npatients_sd"][j], f"npatients[{j + 1}]")
            z_mean(out.tox[:, j], r["ntox"][j], der["ntox_sd"][j], f"ntox[{j + 1}]")
        z_pct(float(np.mean(out.selected == NO_DOSE) * 100), r["percentstop"], "percentstop")
        z_mean(out.n.sum(axis=1), r["totaln"], der["totaln_sd"], "totaln")
        z_mean(out.tox.sum(axis=1), r["totaltox"], der["totaltox_sd"], "totaltox")
        if r.get("overdose60") is not None:
            above = np.asarray(a["p.true"]) > a["target"]
            n_above = out.n[:, above].sum(axis=1)
            for key, frac in (("overdose60", 0.6), ("overdose80", 0.8)):
                z_pct(float(np.mean(n_above > frac * cfg.max_n) * 100), r[key], key)
    return w.family_outcome(f"{len(names)} get.oc() scenarios (10,000 trials each in R), {n_ours:,} simulated "
                            f"trials here "
                     f"(seed 20240607); |difference| / combined MC SE")


# ---------------------------------------------------------------------------------------------- CRM


def _crm_getprior(ctx: Context) -> Outcome:
    from escalade.design import skeleton

    w = _Worst()
    for i, c in enumerate(load_reference("dfcrm", "getprior.json")["cases"]):
        a = c["args"]
        sk = skeleton.getprior(a["halfwidth"], a["target"], a["nu"], a["nlevel"], a["model"], a["intcpt"])
        w.add(_absdiff(sk, c["skeleton"]), c.get("call", f"case {i}"))
    return w.outcome("dfcrm::getprior() skeletons")


def _crm_posterior(ctx: Context) -> Outcome:
    from escalade.design import crm

    ref = load_reference("dfcrm", "crm_posterior.json")
    skeletons = {k: v["value"] for k, v in ref["skeletons"].items()}
    w = _Worst()
    for ds_id, ds in sorted(ref["datasets"].items()):
        for fit_name, r in sorted(ds["fits"].items()):
            if not fit_name.endswith("bayes"):
                continue
            model, method = fit_name.split("_")
            sk = skeletons[ds["skeleton"]]
            cfg = crm.CrmConfig(target=ds["target"], n_doses=len(sk), skeleton=sk, model=model, method=method)
            fit = crm.crm_fit(cfg, np.array(ds["level"]) - 1, ds["tox"])
            where = f"{ds_id} {fit_name}"
            w.add(_absdiff([fit.estimate, fit.post_var], [r["estimate"], r["post_var"]]), f"{where} estimate/post_var")
            for mine, theirs in ((fit.ptox, "ptox"), (fit.ptox_lower, "ptoxL"), (fit.ptox_upper, "ptoxU")):
                w.add(_absdiff(mine, r[theirs]), f"{where} {theirs}")
            w.exact(int(fit.mtd) == r["mtd"] - 1, f"{where} mtd")
    return w.outcome("dfcrm::crm(method = 'bayes') fits, empiric and logistic: posterior mean and variance of "
                     "beta, ptox and its 90% limits; the recommended level exactly")


def _tite_crm(ctx: Context) -> Outcome:
    from escalade.design import tite_crm

    ref = load_reference("dfcrm", "titecrm.json")
    w = _Worst()
    for key, ds in sorted(ref["datasets"].items()):
        sk = ref["skeletons"][ds["skeleton"]]["value"]
        for variant, fit in sorted(ds["fits"].items()):
            if "mle" in variant:
                continue
            model = "logistic" if "logistic" in variant else "empiric"
            scheme = "adaptive" if "adaptive" in variant else "linear"
            got = tite_crm.titecrm(np.asarray(ds["level"]) - 1, ds["tox"], ds["followup"], ds["obswin"],
                                   skeleton=sk, target=ds["target"], model=model, scheme=scheme,
                                   conf_level=fit["conf.level"])
            where = f"{key} {variant}"
            w.add(_absdiff(got.weights, fit["weights"]), f"{where} weights")
            w.add(_absdiff([got.estimate, got.post_var], [fit["estimate"], fit["post_var"]]), f"{where} estimate")
            for mine, theirs in ((got.ptox, "ptox"), (got.ptox_lower, "ptoxL"), (got.ptox_upper, "ptoxU")):
                w.add(_absdiff(mine, fit[theirs]), f"{where} {theirs}")
            w.exact(int(got.mtd) + 1 == fit["mtd"], f"{where} mtd")
    return w.outcome("dfcrm::titecrm() fits (linear and adaptive weights)")


def _crmsim_config(a: dict) -> Any:
    from escalade.design import crm

    x0, m = a["x0"], a["mcohort"]
    two_stage = isinstance(x0, list)
    startup = tuple(int(x0[i]) - 1 for i in range(0, len(x0), m)) if two_stage else ()
    return crm.CrmConfig(target=a["target"], n_doses=len(a["PI"]), skeleton=a["prior"], cohort_size=m,
                         max_n=a["n"], start_dose=0 if two_stage else x0 - 1, model=a["model"],
                         method=a["method"], prior_var=a["scale"] ** 2, intercept=float(a["intcpt"]),
                         startup=startup)


def _crmsim(ctx: Context) -> Outcome:
    from escalade.design import crm
    from escalade.simulations.trial import simulate

    scen = load_reference("dfcrm", "crmsim.json")["scenarios"]
    names = sorted(scen)
    if ctx.quick:
        names = names[:2]
    w = _Worst()
    for sid in names:
        a, r, d = scen[sid]["args"], scen[sid]["result"], scen[sid]["derived_from_per_trial_data"]
        n_ref = a["nsim"]
        t = 500 if ctx.quick else n_ref
        out = simulate(crm.CrmDesign(_crmsim_config(a)), a["PI"], n_trials=t, seed=20240607)
        k = len(a["PI"])
        sel = np.array([(out.selected == j).mean() for j in range(k)])
        p = np.array(r["MTD_selection_fraction"])
        se = np.hypot(np.sqrt(np.maximum(p, 1 / n_ref) * (1 - p) / n_ref),
                      np.sqrt(np.maximum(sel, 1 / t) * (1 - sel) / t))
        w.add(np.abs(sel - p) / se, f"{sid} MTD fraction")
        for mine, ours_sd, ref, sd, what in ((out.n.mean(axis=0), out.n.std(axis=0, ddof=1), r["level_mean_patients"],
                                              d["level_sd"], "patients"),
                                             (out.tox.mean(axis=0), out.tox.std(axis=0, ddof=1), r["tox_mean_dlts"],
                                              d["tox_sd"], "DLTs")):
            se = np.hypot(np.maximum(np.array(sd), 1.0) / math.sqrt(n_ref), np.maximum(ours_sd, 1.0) / math.sqrt(t))
            w.add(np.abs(mine - np.array(ref)) / se, f"{sid} {what}")
    return w.family_outcome(f"{len(names)} dfcrm::crmsim() scenarios (2,000 trials each in R, seed 1009); "
                            f"|difference| / "
                     f"combined MC SE (SDs floored at 1 patient, fractions at 1/n)")


# ---------------------------------------------------------------------------------------------- exact


def _escalation_exact(ctx: Context) -> Outcome:
    from escalade.design import boin
    from escalade.design.registry import build_design
    from escalade.simulations.exact import exact_outcomes

    esc = load_reference("escalation", "escalation_exact_probs.json")
    curve = esc["results"]["boin"]["curves"]["A_given"]["true_prob_tox"]
    w = _Worst()

    def compare(out: Any, key: str) -> None:
        ref = esc["results"][key]["curves"]["A_given"]
        pr = ref["prob_recommend"]
        rec = np.array([pr["NoDose"]] + [pr[str(k)] for k in range(1, 6)])
        en = np.array([ref["expected_n_at_dose"][str(k)] for k in range(1, 6)])
        mine = np.bincount(out.selected + 1, weights=out.weight, minlength=6)
        w.add(_absdiff(mine, rec), f"{key} P(recommend)")
        w.add(_absdiff((out.n * out.weight[:, None]).sum(axis=0), en), f"{key} E[n]")

    design = boin.BoinDesign(boin.BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=12))
    compare(exact_outcomes(design, curve), "boin_stop12_select_mtd")
    compare(exact_outcomes(design, curve, recommendation="next_dose"), "boin")
    crm_design = build_design("crm", {"skeleton": esc["meta"]["skeleton"], "no_skip": "off", "coherence": "off"},
                              {"target": 0.25, "n_doses": 5, "cohort_size": 3, "max_n": 12, "start_dose": 0})
    compare(exact_outcomes(crm_design, curve), "crm_empiric")
    return w.outcome("escalation 0.2.3 calculate_probabilities(), curve A, 4 cohorts of 3: BOIN (select.mtd and "
                     "next-dose semantics) and CRM empiric; P(recommend each dose or none) and E[patients per dose]")


def _threeplusthree_wheeler(ctx: Context) -> Outcome:
    """3+3 by exact enumeration against Wheeler et al.'s exact A+B figures (reference README): the published
    figures are the exact values printed to 3 significant figures and then to 2 decimals, so each must agree
    with ours rounded the same way (the difference reported is before rounding, limit 0.0055)."""
    from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
    from escalade.simulations.exact import exact_outcomes

    w = _Worst()
    for deesc, p_true, published in _WHEELER:
        d = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=len(p_true), allow_deescalation=deesc))
        out = exact_outcomes(d, p_true)
        mine = np.bincount(out.selected + 1, weights=out.weight, minlength=len(p_true) + 1)
        where = f"{len(p_true)} doses, {'with' if deesc else 'without'} de-escalation"
        w.add(_absdiff(mine, published), f"{where} P(recommend)")
        w.exact([round(float(f"{x:.3g}"), 2) for x in mine] == list(published), f"{where} printed figures")
    return w.outcome("Wheeler et al. exact A+B figures (5 doses with de-escalation, 8 without): P(recommend none, "
                     "dose 1, ...), printed figures equal exactly")


#: Wheeler et al.'s exact A+B figures as printed (2 decimals), validation/reference/README.md.
_WHEELER = ((True, (0.1, 0.2, 0.3, 0.4, 0.5), (0.10, 0.28, 0.33, 0.20, 0.06, 0.02)),
            (False, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), (0.09, 0.26, 0.33, 0.22, 0.08, 0.02, 0, 0, 0)))


# ---------------------------------------------------------------------------------------------- decision tables


def _table_rows(table: Any, n_from: int = 1) -> list[list[str]]:
    return [list(r) for r in table.rows()[n_from - 1:]]


def _keyboard_tables(ctx: Context) -> Outcome:
    """keyboard_table() against Keyboard::get.boundary.kb (Keyboard 0.1.3): every (n, y) entry and the boundaries.

    The package's table marks ``DU`` from n = 1 while its simulator (get.oc.kb) and its documentation eliminate
    from 3 patients: escalade's default (``elim_min_n = 3``) writes those n < 3 entries as ``D``; with
    ``elim_min_n = 1`` the whole table is the package's."""
    from escalade.design.keyboard import keyboard_table

    w = _Worst()
    for case, c in sorted(load_reference("keyboard", "keyboard_tables.json")["cases"].items()):
        a = c["args"]
        full = keyboard_table(a["target"], c["npts"], a["marginL"], a["marginR"], a["cutoff.eli"], 1)
        w.exact(_table_rows(full) == c["decision_table"], f"{case} entries")
        w.exact(full.boundaries() == c["full_boundary_tab"], f"{case} boundaries")
        w.exact(full.table(a["cohortsize"]) == c["boundary_tab"], f"{case} boundary_tab")
        dflt = keyboard_table(a["target"], c["npts"], a["marginL"], a["marginR"], a["cutoff.eli"], 3)
        w.exact(_table_rows(dflt, 3) == c["decision_table"][2:], f"{case} entries n >= 3 (elim_min_n = 3)")
    return w.outcome("17 get.boundary.kb() calls (9 targets, 5 key widths, 3 cutoffs, n up to 40): every entry")


def _mtpi2_tables(ctx: Context) -> Outcome:
    """mtpi2_table() against escalation::get_mtpi2 (escalation 0.2.3): E/S/D at every (n, y), and exclusion.

    escalation excludes a dose from n = 2 patients when Pr(p > target) >= exclusion_certainty; escalade's DU is
    the same rule with ``elim_min_n = 2`` (strict > at the cutoff: no entry sits on it)."""
    from escalade.design.mtpi2 import mtpi2_table

    w = _Worst()
    for case, c in sorted(load_reference("mtpi2", "mtpi2_tables.json")["cases"].items()):
        a = c["args"]
        t = mtpi2_table(a["target"], a["n_max"], a["epsilon1"], a["epsilon2"], a["exclusion_certainty"],
                        a["alpha"], a["beta"], 2)
        want = [[("DU" if not adm else d) for d, adm in zip(dec, ok)]
                for dec, ok in zip(c["decision"], c["admissible"])]
        w.exact(_table_rows(t) == want, f"{case} entries")
        plain = mtpi2_table(a["target"], a["n_max"], a["epsilon1"], a["epsilon2"], a["exclusion_certainty"],
                            a["alpha"], a["beta"], a["n_max"] + 1)  # no elimination: the interval rule alone
        w.exact(_table_rows(plain) == c["decision"], f"{case} E/S/D")
    return w.outcome("15 get_mtpi2() fits per (n, y) (9 targets, 4 intervals, 3 cutoffs, 2 priors, n up to 40)")


def _i3plus3_tables(ctx: Context) -> Outcome:
    """i3plus3_table() against FIND::get_decision_i3plus3 (FIND 0.1.1, by the design's authors' group)."""
    from escalade.design.i3plus3 import i3plus3_table

    w = _Worst()
    for case, c in sorted(load_reference("i3plus3", "i3plus3_tables.json")["cases"].items()):
        a = c["args"]
        t = i3plus3_table(a["pT"], a["npts"], round(a["pT"] - a["EI"][0], 12), round(a["EI"][1] - a["pT"], 12))
        w.exact(_table_rows(t, c["n_from"]) == c["decision"], f"{case} entries")
    return w.outcome("12 get_decision_i3plus3() tables (9 targets, 4 intervals, n = 3 up to 40): every entry")


def _stage2_closed_form(ctx: Context) -> Outcome:
    """The optimisation stage against closed forms: two arms with equal truths select the higher dose with
    probability (1 - P(tie)) / 2, P(tie) = sum_k b(k; m, p)^2 (ties go to the lower dose), for several m and p;
    an arm whose every patient has a DLT is never selected."""
    from escalade.scenarios.study import Optimisation
    from escalade.simulations.outcomes import TrialOutcomes
    from escalade.simulations.stage2 import run_stage2

    t = 4000 if ctx.quick else 20000
    sel = np.full(t, 2, np.int64)
    z = np.zeros((t, 4), np.int64)
    out = TrialOutcomes(selected=sel, reason=np.zeros(t, np.int64), n=z + 6, tox=z, eff=z, both=z,
                        cohorts=np.full(t, 4, np.int64), weight=np.full(t, 1.0 / t), trial=np.arange(t))
    w = _Worst()
    for m, p in ((5, 0.2), (12, 0.4), (20, 0.5), (30, 0.7)):
        cfg = Optimisation(candidates="mtd_and_next_lower", n_per_arm=m, select_by="orr_with_safety", max_tox=1.0)
        s2 = run_stage2(cfg, out, p_dlt=[0.1, 0.2, 0.2, 0.5], p_response=[0.1, p, p, 0.9], association=0.0,
                        seed=20261130 + m, scenario=f"equal m={m}", target=0.3)
        tie = float(np.sum(stats.binom.pmf(np.arange(m + 1), m, p) ** 2))
        w.add(_binomial_z(int(np.sum(s2.selected == 2)), t, (1 - tie) / 2), f"m = {m}, p = {p}")
        cfg = Optimisation(candidates="mtd_and_next_lower", n_per_arm=m, select_by="orr_with_safety", max_tox=0.3)
        s2 = run_stage2(cfg, out, p_dlt=[0.0, 0.0, 1.0, 1.0], p_response=[0.1, p, 0.9, 0.9], association=0.0,
                        seed=7, scenario="infeasible", target=0.3)
        w.exact(bool(np.all(s2.selected == 1)), f"infeasible higher arm, m = {m}")
    # the simulated stage against its exact enumeration on the same trials: utility, association, three arms
    from escalade.simulations.stage2 import exact_stage2

    rng = np.random.default_rng(20261130)
    mixed = dataclasses.replace(out, selected=rng.integers(-1, 4, size=t))
    cfg = Optimisation(candidates=(0, 1, 2), n_per_arm=8, select_by="utility", u11=60, u00=40, max_tox=0.4)
    p_dlt, p_resp = [0.05, 0.2, 0.3, 0.45], [0.2, 0.45, 0.5, 0.55]
    s2 = run_stage2(cfg, mixed, p_dlt=p_dlt, p_response=p_resp, association=0.3, seed=2, scenario="mixed",
                    target=0.3)
    _, p_sel = exact_stage2(cfg, mixed, p_dlt=p_dlt, p_response=p_resp, association=0.3, target=0.3)
    got = np.bincount(np.where(s2.selected == -1, 4, s2.selected), minlength=5)
    for j in range(5):
        p = float(p_sel[:, j].mean())
        se = math.sqrt(max(float((p_sel[:, j] * (1 - p_sel[:, j])).mean()), 1e-12) / t)
        w.add(abs(got[j] / t - p) / se, f"utility, 3 arms: dose {j + 1 if j < 4 else 'none'}")
    return w.family_outcome(f"{t} trials per case: equal truths at two arms of m = 5, 12, 20, 30 patients; the "
                            "simulated stage against its exact enumeration (utility, association 0.3, 3 arms)")


def _shipped_cases(quick: bool) -> list[tuple[str, Any, Any]]:
    import escalade.scenarios as scenarios_pkg
    from escalade.scenarios.designs import build_study_designs
    from escalade.scenarios.load import load_study

    folder = Path(scenarios_pkg.__file__).resolve().parent
    files = sorted(folder.glob("*.yaml"))
    if quick:
        files = [f for f in files if f.stem == "cart_rr_heme"] or files[:1]
    cases = []
    for f in files:
        study = load_study(f)
        for spec, design in build_study_designs(study):
            if design.kind in ("3+3", "boin", "crm") and design.enumerable:  # BOIN with backfill needs a clock
                for s in study.scenarios:
                    cases.append((f"{f.stem}/{spec.name}/{s.name}", design, s))
    return cases


def _exact_vs_simulation(ctx: Context) -> Outcome:
    from escalade.simulations.exact import exact_outcomes
    from escalade.simulations.trial import simulate

    t = 1000 if ctx.quick else 4000
    w = _Worst()
    cases = _shipped_cases(ctx.quick)
    for name, design, s in cases:
        p_t, p_e = np.asarray(s.p_dlt), np.asarray(s.p_response)
        ex = exact_outcomes(design, p_t, p_e)
        w.exact(abs(ex.weight.sum() - 1.0) < 1e-12, f"{name} total probability")
        sim = simulate(design, p_t, p_e, n_trials=t, seed=99)
        for j in range(-1, design.n_doses):
            p = min(max(float(ex.weight[ex.selected == j].sum()), 0.0), 1.0)
            w.add(_binomial_z(int(np.sum(sim.selected == j)), t, p), f"{name} P(select {j + 1 if j >= 0 else 'none'})")
        en = (ex.n * ex.weight[:, None]).sum(axis=0)
        se = np.maximum(sim.n.std(axis=0, ddof=1) / math.sqrt(t), np.sqrt(design.max_n * en / t))
        w.add(np.abs(sim.n.mean(axis=0) - en) / np.where(se > 0, se, np.inf), f"{name} E[n]")
    return w.family_outcome(f"{len(cases)} scenario x design pairs of the shipped study files (3+3, BOIN, CRM); "
                     f"{t:,} simulated trials each (seed 99); selection: exact binomial test as |z|; E[n]: "
                     f"|simulated - exact| / MC SE")


# ---------------------------------------------------------------------------------------------- EffTox

_DEMO_P_TRIALR = "p_trialr_uniroot_default_tol"


def _efftox_demo(**extra: Any) -> dict[str, Any]:
    from escalade.design.efftox import EXAMPLE_PRIOR

    return dict(n_doses=5, doses=(1.0, 2.0, 4.0, 6.6, 10.0), efficacy_hurdle=0.5, toxicity_hurdle=0.3, p_e=0.1,
                p_t=0.1, eff0=0.5, tox1=0.65, eff_star=0.7, tox_star=0.25, **EXAMPLE_PRIOR, eta_mean=0.0,
                eta_sd=0.2, psi_mean=0.0, psi_sd=1.0, **extra)


def _efftox_utility(ctx: Context) -> Outcome:
    from escalade.design import efftox

    ref = load_reference("efftox", "efftox_design_and_utility.json")
    d = ref["design"]
    w = _Worst()
    w.add(_absdiff(efftox.coded_doses(d["real_doses"]), d["coded_doses"]), "coded doses")
    p = efftox.solve_p(d["eff0"], d["tox1"], d["eff_star"], d["tox_star"])
    w.add(abs(p - ref["p_exact"]), "p")
    for field_name in ("utility_grid", "utility_points"):
        rows = ref[field_name]
        e = np.array([r["prob_eff"] for r in rows], float)
        t = np.array([r["prob_tox"] for r in rows], float)
        for pv, col in ((ref[_DEMO_P_TRIALR], "utility_trialr_p"), (p, "utility_exact_p")):
            u = efftox.efftox_utility(e, t, eff0=d["eff0"], tox1=d["tox1"], p=pv)
            w.add(_absdiff(u, [r[col] for r in rows]), f"{field_name} {col}")
    return w.outcome("trialr's design constants: coded doses, the contour exponent p and the utility on a grid "
                     "and at named points")


def _efftox_stan(ctx: Context) -> Outcome:
    from escalade.design import efftox
    from escalade.design.base import NO_DOSE, States

    design_ref = load_reference("efftox", "efftox_design_and_utility.json")
    long = load_reference("efftox", "efftox_posteriors_long.json")
    names = sorted(long["datasets"])
    design = efftox.EffToxDesign(efftox.EffToxConfig(**_efftox_demo(p=design_ref[_DEMO_P_TRIALR])))
    states = [efftox.parse_outcomes(long["datasets"][k]["outcomes"], n_doses=5) for k in names]
    batch = States.concat(states)
    fit = design.fit(batch)
    s = fit.summary
    w = _Worst()
    for i, name in enumerate(names):
        ref = long["datasets"][name]
        pd_ = ref["per_dose"]
        if ref["num_patients"] == 0:
            w.exact(not fit.acceptable[i].any() and fit.recommended[i] == NO_DOSE, f"{name} no data")
            continue
        w.exact(fit.acceptable[i].tolist() == pd_["acceptable"], f"{name} acceptable set")
        want = NO_DOSE if ref["recommended_dose"] is None else ref["recommended_dose"] - 1
        w.exact(int(fit.recommended[i]) == want, f"{name} recommended dose")
        for mine, se, theirs, mcse in (("prob_eff", "se_prob_eff", "mean_prob_eff", "mcse_prob_eff"),
                                       ("prob_tox", "se_prob_tox", "mean_prob_tox", "mcse_prob_tox"),
                                       ("utility", "se_utility", "plugin_utility", "mcse_plugin_utility"),
                                       ("post_utility", "se_post_utility", "post_mean_utility",
                                        "mcse_post_mean_utility"),
                                       ("prob_acc_eff", "se_prob_acc_eff", "prob_acc_eff", "mcse_prob_acc_eff"),
                                       ("prob_acc_tox", "se_prob_acc_tox", "prob_acc_tox", "mcse_prob_acc_tox")):
            stan_se = np.array([0.0 if v is None else v for v in pd_[mcse]], float)
            combined = np.sqrt(getattr(s, se)[i] ** 2 + stan_se ** 2)
            excess = np.maximum(_absdiff(getattr(s, mine)[i], pd_[theirs]) - 1e-3, 0.0)
            w.add(np.where(excess > 0, excess / np.maximum(combined, 1e-300), 0.0), f"{name} {mine}")
    return w.family_outcome(f"{len(names)} data sets, long trialr/Stan runs; (|engine - Stan| - 0.001) / "
                            f"combined MC SE "
                     f"(Stan's monitor se_mean and the engine's importance-sampling SE); acceptable set and "
                     f"recommended dose exactly", floor=4.0)


# ---------------------------------------------------------------------------------------------- BLRM


def _blrm_nuts(ctx: Context) -> Outcome:
    from escalade.design import blrm
    from escalade.design.base import NO_DOSE

    ref = load_reference("blrm", "nuts_reference.json")
    w = _Worst()
    for name, ds in sorted(ref["datasets"].items()):
        mix = tuple((wt, m[0], m[1], math.sqrt(c[0][0]), math.sqrt(c[1][1]), c[0][1] / math.sqrt(c[0][0] * c[1][1]))
                    for wt, m, c in ds["components"])
        cfg = blrm.BlrmConfig(n_doses=len(ds["doses"]), doses=ds["doses"], reference_dose=ds["reference_dose"],
                              mixture=mix)
        f = blrm.blrm_fit(cfg, ds["n"], ds["tox"], extra_doses=ds["eval_doses"][cfg.n_doses:])
        w.add(_absdiff(np.stack([f.prob_under, f.prob_target, f.prob_over], axis=1), ds["interval_prob"]),
              f"{name} interval probabilities")
        w.add(_absdiff(np.stack([f.q025, f.q50, f.q975], axis=1), ds["quantiles_p"]), f"{name} quantiles")
        w.add(_absdiff(f.mean, ds["mean"]), f"{name} mean")
        ip = np.asarray(ds["interval_prob"])[: cfg.n_doses]
        eligible = ip[:, 2] < cfg.ewoc
        rec = int(np.argmax(np.where(eligible, ip[:, 1], -1.0))) if eligible.any() else NO_DOSE
        w.exact(tuple(f.eligible) == tuple(bool(v) for v in eligible) and f.recommended == rec,
                f"{name} EWOC-eligible set and recommended dose")
    return w.outcome(f"{len(ref['datasets'])} data sets, long PyMC NUTS runs (NUTS MC SE <= 0.0021); interval "
                     f"probabilities, quantiles and means of the DLT probabilities")


# ---------------------------------------------------------------------------------------------- determinism


def _shipped_study() -> Any:
    import escalade.scenarios as scenarios_pkg
    from escalade.scenarios.load import load_study

    return load_study(Path(scenarios_pkg.__file__).resolve().parent / "cart_rr_heme.yaml")


def _determinism(ctx: Context) -> Outcome:
    from escalade.simulations.study_run import results_hash, run_study

    study = _shipped_study()
    t = 12 if ctx.quick else 100
    chunks = (5, 12) if ctx.quick else (25, 100)
    if ctx.quick:  # three of the eight scenarios, every design
        study = dataclasses.replace(study, scenarios=study.scenarios[:3])

    def with_chunk(c: int) -> Any:
        return dataclasses.replace(study, simulation=dataclasses.replace(study.simulation, chunk_size=c))

    setups = [(1, "sequential"), (2, "loky"), (2, "threading")]
    differ, lines = [], []
    for c in chunks:
        hashes = []
        for jobs, backend in setups:
            res = run_study(with_chunk(c), n_trials=t, n_jobs=jobs, backend=backend)
            hashes.append((f"chunk {c}: {jobs} worker{'s' if jobs > 1 else ''}, {backend}", results_hash(res.outcomes)))
        differ += [label for label, h in hashes if h != hashes[0][1]]
        lines.append(f"chunk {c}: {hashes[0][1][:16]}...")
    note = (f"cart_rr_heme.yaml ({len(study.scenarios)} scenarios), {t} trials per scenario x design, the study's "
            f"seed; {len(setups)} setups "
            f"(1 worker sequential, 2 workers loky, 2 workers threading) per chunk size; hashes " + "; ".join(lines)
            + ". The chunk size is an input (it fixes the random streams, simulations/runner.py), so the two "
              "chunk sizes give two hashes, each the same for every setup")
    if differ:
        note += f"; DIFFERENT for: {', '.join(differ)}"
    return Outcome(float(len(differ)), len(chunks) * len(setups), note)


def _batch_split(ctx: Context) -> Outcome:
    from escalade.design.base import States
    from escalade.scenarios.designs import build_study_designs
    from escalade.simulations.trial import simulate

    study = _shipped_study()
    t = 12 if ctx.quick else 40
    w = _Worst()
    for spec, design in build_study_designs(study):
        if getattr(design.config, "backfill", None) is None:
            outs = [simulate(design, np.asarray(s.p_dlt), np.asarray(s.p_response), n_trials=t, seed=7)
                    for s in study.scenarios]
        else:  # backfill cohorts need calendar time (the decisions checked below are on counts all the same)
            from escalade.scenarios.study import Timing
            from escalade.simulations.timed import simulate_timed

            outs = [simulate_timed(design, np.asarray(s.p_dlt), np.asarray(s.p_response),
                                   timing=Timing(enabled=True), dlt_window_days=study.dlt_window_days,
                                   response_days=study.response_days, n_trials=t, seed=7)
                    for s in study.scenarios]
        states = States.from_counts(*(np.concatenate([getattr(o, f) for o in outs])
                                      for f in ("n", "tox", "eff", "both")))
        ref_dose = ref_sel = None
        for split in (None, 7, 1):
            if split == 1:  # one at a time: the first 16 states (the memo-free engines are slow one by one)
                states = states.take(slice(0, 16))
                ref_dose, ref_sel = ref_dose[:16], ref_sel[:16]
            d = [dd for s2, dd in build_study_designs(study) if s2.name == spec.name][0]  # fresh: no memo carried over
            if split is None:
                dose = d.decide(states).dose
                sel = d.select(states)
                ref_dose, ref_sel = dose, sel
                continue
            idx = range(0, states.n.shape[0], split)
            parts = [states.take(slice(i, i + split)) for i in idx]
            dose = np.concatenate([d.decide(p_).dose for p_ in parts])
            sel = np.concatenate([d.select(p_) for p_ in parts])
            w.exact(np.array_equal(dose, ref_dose) and np.array_equal(sel, ref_sel),
                    f"{spec.name}, batches of {split}")
    return w.outcome(f"every design of cart_rr_heme.yaml, the final states of {t} simulated trials per scenario "
                     f"({len(study.scenarios) * t} states): decide() and select() on one batch equal those on "
                     f"batches of 7 and (first 16) of 1, "
                     f"each from a freshly built design (no memo)")


# ---------------------------------------------------------------------------------------------- SBC


def sbc_band_ratio(u: np.ndarray, bins: int, alpha: float = 0.01) -> tuple[float, str]:
    """Worst bin of the histogram of ``u`` (uniform under calibration) relative to its binomial band.

    Each bin count is Binomial(``N``, 1/``bins``) under calibration; the band is
    its central interval of probability ``1 - alpha / bins`` (Bonferroni over
    the bins: all bins inside it with probability >= ``1 - alpha``). Returns
    the largest ``|count - N/bins|`` divided by the half-width of the band on
    that side (<= 1 inside the band) and a one-line description.
    """
    n = u.size
    counts = np.bincount(np.minimum((u * bins).astype(int), bins - 1), minlength=bins)
    lo, hi = stats.binom.interval(1 - alpha / bins, n, 1 / bins)
    mean = n / bins
    ratio = np.where(counts >= mean, (counts - mean) / max(hi - mean, 1e-12), (mean - counts) / max(mean - lo, 1e-12))
    return float(ratio.max()), f"{n} replicates in {bins} bins: counts {counts.tolist()}, band [{lo:.0f}, {hi:.0f}]"


def _sbc_crm(ctx: Context) -> Outcome:
    from escalade.design import crm

    reps = 200 if ctx.quick else 2000
    skeleton = (0.05, 0.12, 0.25, 0.40, 0.55)
    n = np.array([6, 6, 6, 3, 3])
    rng = np.random.default_rng(20200)
    worst, notes, n_used = 0.0, [], 0
    for model in ("empiric", "logistic"):
        base = crm.CrmModel(skeleton=skeleton, target=0.25, model=model)
        beta = rng.normal(0.0, math.sqrt(base.prior_var), reps)
        p = base.ptox(beta)
        tox = rng.binomial(n, p)
        u = []
        for r in range(reps):
            # Pr(beta < beta* | data) with beta* the drawn beta: the model whose target is p_1(drawn beta) at the
            # lowest dose has exactly that beta* (p_1 is monotone in beta), so its posterior CDF output is the PIT
            p1 = float(p[r, 0])
            if not 0.0 < p1 < 1.0:  # p_1 rounds to 0 or 1 only for |beta| far in the prior's tails
                continue
            m = crm.CrmModel(skeleton=skeleton, target=p1, model=model)
            u.append(float(m.posterior(n, tox[r])[2][0]))
        u = np.asarray(u)
        ratio, text = sbc_band_ratio(u, 10)
        worst = max(worst, ratio)
        n_used += u.size
        notes.append(f"{model}: {text}")
    return Outcome(worst, n_used, "beta ~ N(0, 1.34), skeleton (0.05, 0.12, 0.25, 0.40, 0.55), patients per dose "
                   "(6, 6, 6, 3, 3); posterior CDF at the drawn beta. " + "; ".join(notes))


def _sbc_efftox(ctx: Context) -> Outcome:
    from escalade.design import efftox
    from escalade.design.efftox_engine import EffToxEngine
    from escalade.design.efftox_model import coded_doses, joint_probabilities

    reps = 100 if ctx.quick else 1000
    cfg = efftox.EffToxConfig(**_efftox_demo())
    mu = np.asarray(cfg.prior_mean, float)
    sd = np.asarray(cfg.prior_sd, float)
    x = np.asarray(coded_doses(cfg.doses), float)
    n = np.array([6, 6, 6, 6, 6])
    j = 2  # the middle dose
    rng = np.random.default_rng(20201)
    u_tox, u_eff = np.empty(reps), np.empty(reps)
    for r in range(reps):
        a, b, g, z, e, psi = rng.normal(mu, sd)
        pt = 1 / (1 + np.exp(-(a + b * x)))
        pe = 1 / (1 + np.exp(-(g + z * x + e * x * x)))
        cells = joint_probabilities(pe, pt, np.full(x.shape, psi))
        counts = np.stack([rng.multinomial(n[k], cells[k] / cells[k].sum()) for k in range(x.size)])[None]
        eng = EffToxEngine(x, prior_mean=mu, prior_sd=sd, efficacy_hurdle=float(pe[j]),
                           toxicity_hurdle=float(pt[j]), eff0=cfg.eff0, tox1=cfg.tox1, p=cfg.contour_p)
        s = eng.summarise(counts, full=False)
        u_tox[r] = float(s.prob_acc_tox[0, j])        # Pr(pi_T(x_j) < drawn pi_T(x_j) | data)
        u_eff[r] = 1.0 - float(s.prob_acc_eff[0, j])  # Pr(pi_E(x_j) <= drawn pi_E(x_j) | data)
    rt, tt = sbc_band_ratio(u_tox, 10)
    re_, te = sbc_band_ratio(u_eff, 10)
    return Outcome(max(rt, re_), 2 * reps, "theta ~ the example prior (Thall et al. 2014), 6 patients per dose; "
                   f"posterior CDF of pi_T and pi_E at dose 3 at their drawn values. toxicity: {tt}; efficacy: {te}")


# ---------------------------------------------------------------------------------------------- gBOIN


def _gboin_boundaries(ctx: Context) -> Outcome:
    from escalade.design import gboin, gboin_et

    w = _Worst()
    ref = load_reference("boinet", "gboinet.json")
    for c in ref["gridoptim"]:
        got = gboin_et.gboinet_boundaries(c["phi"], c["phi1"], c["phi2"], c["delta"], c["delta1"])
        w.add(_absdiff(got, [c["lambda1"], c["lambda2"], c["eta1"]]), c["call"])
    for c in ref["gboinet"]:
        a = c["args"]
        cfg = gboin_et.GboinEtConfig(target=a["phi"], delta=a["delta"], n_doses=a["n.dose"])
        w.add(_absdiff(cfg.boundaries, [c["lambda1"], c["lambda2"], c["eta1"]]), f"gboinet {c['name']} defaults")
    for case, c in sorted(load_reference("boin", "boundaries.json")["cases"].items()):
        a = c["args"]
        g = gboin.GboinConfig(target=a["target"], n_doses=1, p_saf=a["p.saf"], p_tox=a["p.tox"])
        w.add(_absdiff([g.lambda_e, g.lambda_d], [c["lambda_e"], c["lambda_d"]]), f"gBOIN {case}")
    return w.outcome(f"{len(ref['gridoptim'])} gridoptim() calls and {len(ref['gboinet'])} gboinet() runs "
                     "(boinet 1.5.0); gBOIN's lambdas against 8 get.boundary() calls")


# ---------------------------------------------------------------------------------------------- the list

_MC = "combined Monte Carlo SEs"
_FAMILY = ("each within z* combined MC SEs, z* = max(3, Bonferroni bound for a 1% family-wise false alarm over the "
           "comparisons)")

#: Every requirement, in report order. ``depends`` names the code each one exercises.
REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("BOIN-1", "BOIN boundaries equal BOIN::get.boundary() (BOIN 2.7.2)",
                "boin_boundaries() against boin/boundaries.json: lambda_e, lambda_d and every decision table entry",
                "lambdas within 1e-12; tables exactly", 1e-12, "absolute difference", ("boin",), _boin_boundaries),
    Requirement("BOIN-2", "BOIN's MTD selection equals BOIN::select.mtd()",
                "boin_select() and boin_estimates() against boin/select_mtd.json",
                "selected dose exactly; isotonic estimates within 1e-10", 1e-10, "absolute difference", ("boin",),
                _boin_select),
    Requirement("BOIN-3", "BOIN's operating characteristics equal BOIN::get.oc() within Monte Carlo error",
                "simulate() against boin/get_oc.json: selection %, stop %, patients and DLTs per dose, totals",
                _FAMILY, 3.0, _MC, ("boin", "simulator"), _boin_get_oc),
    Requirement("CRM-1", "CRM skeletons equal dfcrm::getprior() (dfcrm 0.2-2.1)",
                "getprior() against dfcrm/getprior.json", "within 1e-12", 1e-12, "absolute difference",
                ("crm-skeleton",), _crm_getprior),
    Requirement("CRM-2", "CRM posteriors equal dfcrm::crm()",
                "crm_fit() against dfcrm/crm_posterior.json (Bayes fits)",
                "within 1e-6 (dfcrm's own integration error <= 1.3e-7); MTD exactly", 1e-6, "absolute difference",
                ("crm",), _crm_posterior),
    Requirement("CRM-3", "TITE-CRM fits equal dfcrm::titecrm()",
                "titecrm() against dfcrm/titecrm.json: weights, posterior moments, ptox and limits",
                "within 1e-6; MTD exactly", 1e-6, "absolute difference", ("crm", "tite-crm"), _tite_crm),
    Requirement("CRM-4", "CRM operating characteristics equal dfcrm::crmsim() within Monte Carlo error",
                "simulate() against dfcrm/crmsim.json: MTD fractions, patients and DLTs per level",
                _FAMILY, 3.0, _MC, ("crm", "simulator"), _crmsim),
    Requirement("EXACT-1", "Exact enumeration equals escalation::calculate_probabilities() (escalation 0.2.3)",
                "exact_outcomes() against escalation/escalation_exact_probs.json (BOIN, CRM)",
                "within 1e-9", 1e-9, "absolute difference", ("boin", "crm", "exact"), _escalation_exact),
    Requirement("3P3-1", "3+3 equals Wheeler et al.'s exact A+B figures",
                "exact enumeration of 3+3 (with and without de-escalation) against the published figures",
                "printed figures exactly; exact values within 0.0055 of them", 0.0055, "absolute difference",
                ("threeplusthree", "exact"), _threeplusthree_wheeler),
    Requirement("TABLE-1", "Keyboard's decision table equals Keyboard::get.boundary.kb() (Keyboard 0.1.3)",
                "keyboard_table() against keyboard/keyboard_tables.json: every (n, DLTs) entry and the boundaries",
                "exactly", 0.0, "entries that differ", ("keyboard",), _keyboard_tables),
    Requirement("TABLE-2", "mTPI-2's decision table equals escalation::get_mtpi2() (escalation 0.2.3)",
                "mtpi2_table() against mtpi2/mtpi2_tables.json: E/S/D and exclusion at every (n, DLTs)",
                "exactly", 0.0, "entries that differ", ("mtpi2",), _mtpi2_tables),
    Requirement("TABLE-3", "i3+3's decision table equals FIND::get_decision_i3plus3() (FIND 0.1.1)",
                "i3plus3_table() against i3plus3/i3plus3_tables.json: every (n, DLTs) entry, n >= 3",
                "exactly", 0.0, "entries that differ", ("i3+3",), _i3plus3_tables),
    Requirement("STAGE2-1", "The randomised optimisation stage selects as its closed form says",
                "run_stage2() with equal truths at two arms: P(higher dose) = (1 - P(tie)) / 2; an infeasible arm "
                "never selected; the simulated stage against exact_stage2() on the same trials", _FAMILY, 3.0, "MC SEs (|z|)", ("stage2",), _stage2_closed_form),
    Requirement("EXACT-2", "Exact enumeration and simulation agree on the shipped scenarios",
                "exact_outcomes() against simulate() for every 3+3, BOIN and CRM design of the shipped study files",
                _FAMILY + "; total probability 1 within 1e-12", 3.0, "MC SEs (|z|)",
                ("boin", "crm", "3+3", "exact", "simulator"), _exact_vs_simulation),
    Requirement("EFFTOX-1", "EffTox utility and contour equal trialr's",
                "coded_doses(), solve_p(), efftox_utility() against efftox/efftox_design_and_utility.json",
                "within 1e-6", 1e-6, "absolute difference", ("efftox",), _efftox_utility),
    Requirement("EFFTOX-2", "The EffTox fast engine's posterior equals long Stan runs within Monte Carlo error",
                "EffToxDesign.fit() against efftox/efftox_posteriors_long.json",
                "each within z* combined MC SEs + 0.001, z* = max(4, Bonferroni 1% family-wise over the comparisons); "
                "acceptable set and dose exactly", 4.0, _MC,
                ("efftox",), _efftox_stan),
    Requirement("BLRM-1", "The BLRM quadrature posterior equals long NUTS runs",
                "blrm_fit() against blrm/nuts_reference.json", "within 0.005 (about 2.4 NUTS MC SEs)", 0.005,
                "absolute difference", ("blrm",), _blrm_nuts),
    Requirement("GBOIN-1", "gBOIN-ET boundaries equal boinet::gridoptim() (boinet 1.5.0); gBOIN's equal BOIN's",
                "gboinet_boundaries() against boinet/gboinet.json; GboinConfig lambdas against boin/boundaries.json",
                "within 1e-12", 1e-12, "absolute difference", ("gboin",), _gboin_boundaries),
    Requirement("DET-1", "Results do not depend on the number of workers or the backend",
                "run_study() on cart_rr_heme.yaml: results hash for 1 worker (sequential) and 2 workers (loky, "
                "threading), at two chunk sizes", "identical hashes (0 runs differ)", 0.0, "runs with a different hash",
                ("simulator",), _determinism),
    Requirement("DET-2", "A trial's decisions do not depend on the batch it is computed in",
                "decide() and select() of every shipped design on one batch of states against batches of 7 and 1",
                "identical doses (0 differences)", 0.0, "batches with a different decision",
                ("boin", "crm", "3+3", "efftox", "blrm", "tite-crm", "simulator"), _batch_split),
    Requirement("SBC-1", "The CRM grid posterior is calibrated",
                "simulation-based calibration: posterior CDF at beta drawn from the prior, empiric and logistic",
                "every bin of 10 inside its binomial band (99% jointly)", 1.0, "fraction of the band half-width",
                ("crm",), _sbc_crm),
    Requirement("SBC-2", "The EffTox fast engine is calibrated",
                "simulation-based calibration: posterior CDF of pi_T and pi_E at dose 3 at values drawn from the "
                "prior", "every bin of 10 inside its binomial band (99% jointly)", 1.0,
                "fraction of the band half-width", ("efftox",), _sbc_efftox),
)


def run_requirements(ctx: Context, *, only: Iterable[str] | None = None,
                     progress: Callable[[str], None] | None = None) -> list[RequirementResult]:
    """Run the requirements (all, or those whose id is in ``only``), each to a result; errors fail it."""
    wanted = None if only is None else set(only)
    if wanted is not None:
        unknown = wanted - {r.id for r in REQUIREMENTS}
        if unknown:
            raise ValueError(f"unknown requirement id(s) {sorted(unknown)}; known: "
                             f"{', '.join(r.id for r in REQUIREMENTS)}")
    out = []
    for req in REQUIREMENTS:
        if wanted is not None and req.id not in wanted:
            continue
        if progress is not None:
            progress(f"{req.id}: {req.statement}")
        t0 = time.perf_counter()
        error = None
        try:
            o = req.check(ctx)
        except Exception as exc:  # a requirement whose test cannot run has failed; say why in one line
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            o = Outcome(math.nan, 0, f"the test raised {error}", passed_override=False)
        limit = req.limit if o.limit is None else o.limit
        out.append(RequirementResult(req.id, req.statement, req.test, req.tolerance, limit, req.unit,
                                     req.depends, o.worst, o.n_comparisons, o.passed(req.limit), o.detail,
                                     time.perf_counter() - t0, error))
    return out
