"""BOIN against the R package BOIN 2.7.2 (validation/reference/boin/)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import load_reference
from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.boin import BoinConfig, BoinDesign, boin_boundaries, boin_estimates, boin_select
from escalade.simulations.trial import simulate

BOUNDARIES = load_reference("boin", "boundaries.json")["cases"]
SELECT = load_reference("boin", "select_mtd.json")["datasets"]
GET_OC = load_reference("boin", "get_oc.json")["scenarios"]


@pytest.mark.parametrize("case", sorted(BOUNDARIES))
def test_boundaries_equal_get_boundary(case: str) -> None:
    # boundaries.json: get.boundary(target, ncohort, cohortsize, n.earlystop, p.saf, p.tox, cutoff.eli,
    # extrasafe, offset) -- exact call in cases[case]["call"]
    c = BOUNDARIES[case]
    a = c["args"]
    n_max = a["ncohort"] * a["cohortsize"]
    b = boin_boundaries(a["target"], n_max, a["p.saf"], a["p.tox"], a["cutoff.eli"], a["offset"])
    assert b.lambda_e == pytest.approx(c["lambda_e"], abs=1e-15)
    assert b.lambda_d == pytest.approx(c["lambda_d"], abs=1e-15)
    full = b.table(1)
    for key in ("escalate_if_ntox_le", "deescalate_if_ntox_ge", "eliminate_if_ntox_ge"):
        assert full[key] == c["full_table"][key], key
    at_ends = b.table(a["cohortsize"])
    for key in ("n", "escalate_if_ntox_le", "deescalate_if_ntox_ge", "eliminate_if_ntox_ge"):
        assert at_ends[key] == c["boundary_tab_at_cohort_ends"][key], key
    if a["extrasafe"]:
        ref = c["extrasafe_stop"]
        assert ref["cutoff"] == pytest.approx(a["cutoff.eli"] - a["offset"], abs=1e-15)
        mine = [None if b.extrasafe_stop[n] > n or n < 3 else int(b.extrasafe_stop[n]) for n in ref["n_at_lowest_dose"]]
        assert mine == ref["stop_trial_if_ntox_at_lowest_dose_ge"]


@pytest.mark.parametrize("case", sorted(SELECT))
def test_select_mtd_equals_package(case: str) -> None:
    # select_mtd.json: select.mtd(target, npts, ntox, cutoff.eli, extrasafe, offset, boundMTD, p.tox)
    c = SELECT[case]
    a = c["args"]
    sel = boin_select(a["npts"], a["ntox"], target=a["target"], cutoff_eli=a["cutoff.eli"],
                      extrasafe=a["extrasafe"], offset=a["offset"], bound_mtd=a["boundMTD"], p_tox=a["p.tox"])[0]
    expected = NO_DOSE if c["MTD"] == 99 else c["MTD"] - 1
    assert sel == expected
    internals = c["internals_full_precision"]
    npts = np.asarray(a["npts"])
    est = boin_estimates(a["npts"], a["ntox"], npts > 0, target=a["target"])
    if internals.get("phat_all_treated"):
        np.testing.assert_allclose(est.phat[npts > 0], internals["phat_all_treated"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(est.p_overdose[npts > 0], internals["p_overdose_all_treated"], atol=1e-12)
        np.testing.assert_allclose(est.ci_lower[npts > 0], internals["ci_lower_all_treated"], atol=1e-10)
        np.testing.assert_allclose(est.ci_upper[npts > 0], internals["ci_upper_all_treated"], atol=1e-10)
    # the package's printed 2-decimal estimates
    printed = c["p_est_as_returned"]["phat"]
    for j, txt in enumerate(printed):
        if txt != "----":
            assert f"{est.phat[j]:.2f}" == txt


def test_select_is_batched() -> None:
    cases = [SELECT[k]["args"] for k in sorted(SELECT) if SELECT[k]["args"]["target"] == 0.3
             and len(SELECT[k]["args"]["npts"]) == 5 and not SELECT[k]["args"]["extrasafe"]
             and not SELECT[k]["args"]["boundMTD"]]
    n = np.array([c["npts"] for c in cases])
    y = np.array([c["ntox"] for c in cases])
    batched = boin_select(n, y, target=0.3)
    single = [boin_select(n[i], y[i], target=0.3)[0] for i in range(len(cases))]
    assert batched.tolist() == single


def test_hand_checked_decisions() -> None:
    # Hand-checked against the target-0.30 table of validation/reference/boin/README.md
    # (lambda_e = 0.236, lambda_d = 0.359; n = 3: escalate if 0 DLT, de-escalate if >= 2, eliminate if 3).
    d = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30))
    # 0/3 at dose 1 -> escalate; 1/3 at dose 2 -> stay; 2/3 at dose 2... 3/6 -> de-escalate
    s = States.from_counts([[3, 0, 0, 0, 0], [0, 3, 0, 0, 0], [3, 6, 0, 0, 0], [3, 3, 3, 0, 0]],
                           [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 3, 0, 0, 0], [0, 0, 3, 0, 0]],
                           current=[0, 1, 1, 2])
    dec = d.decide(s)
    assert dec.dose.tolist()[:3] == [1, 1, 0]
    # 3/3 at dose 3 eliminates dose 3 and above -> de-escalate to dose 2
    assert dec.dose[3] == 1 and not dec.stop[3]
    # 3/3 at dose 1: dose 1 eliminated -> stop, no dose
    s1 = States.from_counts([3, 0, 0, 0, 0], [3, 0, 0, 0, 0], current=0)
    d1 = d.decide(s1)
    assert d1.stop[0] and d1.reason[0] == StopReason.ALL_TOXIC


def _se(p_pct: float, n: int) -> float:
    p = p_pct / 100
    return 100 * math.sqrt(max(p * (1 - p), 0.0) / n)


@pytest.mark.parametrize("case", sorted(GET_OC))
def test_get_oc_within_monte_carlo_error(case: str) -> None:
    # get_oc.json: get.oc(target, p.true, ncohort, cohortsize, n.earlystop, startdose, titration, p.saf,
    # p.tox, cutoff.eli, extrasafe, offset, boundMTD, ntrial = 10000, seed = 6); our own 10,000 trials.
    c = GET_OC[case]
    a, r, der = c["args"], c["result"], c["derived_from_per_trial_data"]
    n_trials = a["ntrial"]
    cfg = BoinConfig(target=a["target"], n_doses=len(a["p.true"]), cohort_size=a["cohortsize"],
                     max_n=a["ncohort"] * a["cohortsize"], start_dose=a["startdose"] - 1, p_saf=a["p.saf"],
                     p_tox=a["p.tox"], cutoff_eli=a["cutoff.eli"], extrasafe=a["extrasafe"], offset=a["offset"],
                     n_earlystop=a["n.earlystop"], titration=a["titration"], bound_mtd=a["boundMTD"])
    out = simulate(BoinDesign(cfg), a["p.true"], n_trials=n_trials, seed=20240607)
    t = out.n_trials
    sel = np.array([np.mean(out.selected == j) * 100 for j in range(cfg.n_doses)])
    for j in range(cfg.n_doses):
        se = math.hypot(der["mc_se_selpercent"][j], _se(sel[j], t))
        assert abs(sel[j] - r["selpercent"][j]) <= 3 * se + 1e-9, (j, sel[j], r["selpercent"][j], se)
    stop = np.mean(out.selected == NO_DOSE) * 100
    assert abs(stop - r["percentstop"]) <= 3 * math.hypot(der["mc_se_percentstop"], _se(stop, t)) + 1e-9
    for j in range(cfg.n_doses):
        se = math.hypot(der["npatients_sd"][j] / math.sqrt(n_trials), out.n[:, j].std(ddof=1) / math.sqrt(t))
        assert abs(out.n[:, j].mean() - r["npatients"][j]) <= 3 * se + 1e-9, ("npatients", j)
        se = math.hypot(der["ntox_sd"][j] / math.sqrt(n_trials), out.tox[:, j].std(ddof=1) / math.sqrt(t))
        assert abs(out.tox[:, j].mean() - r["ntox"][j]) <= 3 * se + 1e-9, ("ntox", j)
    tn = out.n.sum(axis=1)
    se = math.hypot(der["totaln_sd"] / math.sqrt(n_trials), tn.std(ddof=1) / math.sqrt(t))
    assert abs(tn.mean() - r["totaln"]) <= 3 * se + 1e-9
    tt = out.tox.sum(axis=1)
    se = math.hypot(der["totaltox_sd"] / math.sqrt(n_trials), tt.std(ddof=1) / math.sqrt(t))
    assert abs(tt.mean() - r["totaltox"]) <= 3 * se + 1e-9
    if r.get("overdose60") is not None:
        above = np.asarray(a["p.true"]) > a["target"]
        n_above = out.n[:, above].sum(axis=1)
        for key, frac in (("overdose60", 0.6), ("overdose80", 0.8)):
            mine = np.mean(n_above > frac * cfg.max_n) * 100
            se = math.hypot(_se(r[key], n_trials), _se(mine, t))
            assert abs(mine - r[key]) <= 3 * se + 1e-9, key
