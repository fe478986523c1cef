"""gBOIN-ET against the R package boinet 1.5.0 (``gboinet``, ``gridoptim``, ``obd.select``).

Reference: validation/reference/boinet/gboinet.json, written by the script beside it
(make_reference.R: boinet's R files sourced, copula's three functions replaced by
stand-ins that draw the same random numbers). Boundaries must be equal; operating
characteristics of the gboinet help page's examples and of a toxic and a futile scenario (10,000 trials
each, seed 100)
must agree within 3 Monte Carlo standard errors of the difference of two
independent 10,000-trial estimates, plus 0.05 percentage points (0.05 patients) for
boinet's rounding of what it prints.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from conftest import load_reference
from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.errors import ConfigError
from escalade.design.gboin_et import GboinEtConfig, GboinEtDesign, gboinet_boundaries, gboinet_obd
from escalade.design.registry import build_design

REF = load_reference("boinet", "gboinet.json")
N_SIM = 10_000
K_SE = 3.0


@pytest.mark.parametrize("case", REF["gridoptim"], ids=lambda c: c["call"])
def test_boundaries_equal_gridoptim(case: dict) -> None:
    got = gboinet_boundaries(case["phi"], case["phi1"], case["phi2"], case["delta"], case["delta1"])
    assert got == pytest.approx((case["lambda1"], case["lambda2"], case["eta1"]), abs=1e-12)


def _boinet_design(args: dict) -> tuple[GboinEtDesign, list[str]]:
    """The escalade design of a gboinet() call: one AE type ('tox', grades = category index), categories best
    first (boinet lists them worst first)."""
    sev = list(args["sev.weight"])
    res = list(args["res.weight"])
    k_e = len(res)
    cats = [f"e{k}" for k in range(k_e - 1, -1, -1)]  # best first
    method = {"utility.weighted": "utility_weighted", "utility.truncated.linear": "utility_truncated_linear",
              "utility.scoring": "utility_scoring", "max.effprob": "max_effprob"}[args["obd.method"]]
    params = dict(target=args["phi"], delta=args["delta"], n_doses=args["n.dose"], cohort_size=args["size.cohort"],
                  max_n=args["size.cohort"] * args["n.cohort"], start_dose=args["start.dose"] - 1, obd_method=method,
                  severity_weights={"tox": sev + [sev[-1]] * (6 - len(sev))},
                  response_weights={f"e{k}": float(w) for k, w in enumerate(res)},
                  no_escalation_after_dlts="off")  # boinet has no shared guardrails
    for r_name, name in (("w1", "w1"), ("w2", "w2")):
        if r_name in args:
            params[name] = args[r_name]
    return GboinEtDesign(GboinEtConfig(**params)), cats


def _simulate(design: GboinEtDesign, cats: list[str], toxprob: np.ndarray, effprob: np.ndarray, *, rho: float,
              n_trials: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Trials as gboinet simulates them; returns (selected dose per trial, patients per dose per trial).

    Per patient: a Gaussian copula (correlation ``rho``) couples the toxicity and efficacy event
    indicators (``event = U <= P(category > 0)``, which is what gboinet's Weibull event times within the
    windows amount to); given an event, the category is drawn from the remaining categories' probabilities.
    The loop is the engine's: cohorts to the design's dose, ``decide`` on the live trials, ``select`` at
    the end (the design itself re-derives an early stop from the final data).
    """
    c = design.config
    rng = np.random.default_rng(seed)
    nd, size = c.n_doses, c.cohort_size
    n = np.zeros((n_trials, nd), np.int64)
    xt = np.zeros((n_trials, nd))
    xe = np.zeros((n_trials, nd))
    cur = np.full(n_trials, c.start_dose, np.int64)
    live = np.arange(n_trials)
    psi_t = 1.0 - toxprob[0]
    psi_e = 1.0 - effprob[0]
    cond_t = np.cumsum(toxprob[1:] / psi_t, axis=0)  # (K_T - 1, D) conditional CDF given an event
    cond_e = np.cumsum(effprob[1:] / psi_e, axis=0)
    cov = np.array([[1.0, rho], [rho, 1.0]])
    for _ in range(c.max_n // size):
        if live.size == 0:
            break
        m = live.size * size
        dose = np.repeat(cur[live], size)
        z = rng.multivariate_normal(np.zeros(2), cov, size=m)
        u = stats.norm.cdf(z)
        v_t, v_e = rng.random(m), rng.random(m)
        ev_t = u[:, 0] <= psi_t[dose]
        ev_e = u[:, 1] <= psi_e[dose]
        cat_t = np.where(ev_t, 1 + (v_t[:, None] > cond_t[:, dose].T).sum(axis=1), 0)
        cat_e = np.where(ev_e, 1 + (v_e[:, None] > cond_e[:, dose].T).sum(axis=1), 0)
        cat_t = np.minimum(cat_t, toxprob.shape[0] - 1)
        cat_e = np.minimum(cat_e, effprob.shape[0] - 1)
        resp = (effprob.shape[0] - 1 - cat_e).astype(np.int8)  # category index, best first
        ts, es = design.patient_scores({"tox": cat_t.astype(np.int8)}, resp, cats)
        trial = np.repeat(live, size)
        np.add.at(n, (trial, dose), 1)
        np.add.at(xt, (trial, dose), ts)
        np.add.at(xe, (trial, dose), es)
        full = n[live].sum(axis=1) >= c.max_n
        ask = live[~full]
        if ask.size:
            st = States.from_counts(n[ask], np.zeros_like(n[ask]), current=cur[ask], tox_score=xt[ask],
                                    eff_score=xe[ask])
            dec = design.decide(st)
            cur[ask[~dec.stop]] = dec.dose[~dec.stop]
            live = ask[~dec.stop]
        else:
            live = ask
    final = States.from_counts(n, np.zeros_like(n), current=cur, tox_score=xt, eff_score=xe)
    return design.select(final), n


def _true_scores(prob: np.ndarray, weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, float)
    return (prob * (w / w.max())[:, None]).sum(axis=0)


@pytest.mark.parametrize("case", [c for c in REF["gboinet"] if not c["name"].endswith("_corr0")],
                         ids=lambda c: c["name"])
def test_operating_characteristics_match_boinet(case: dict) -> None:
    """boinet's own patients (te.corr 0.2), simulated here; the te.corr 0 cases run through the engine
    (tests/test_gboin_engine.py)."""
    args = case["args"]
    toxprob, effprob = np.array(args["toxprob"], float), np.array(args["effprob"], float)
    design, cats = _boinet_design(args)
    # boundaries of the design's defaults (phi1 = 0.1 phi, phi2 = 1.4 phi, delta1 = 0.6 delta) equal gboinet's
    assert design.lambdas == pytest.approx((case["lambda1"], case["lambda2"], case["eta1"]), abs=1e-12)
    # true nETS / nEES of the scenario as gboinet prints them (2 decimals)
    np.testing.assert_allclose(_true_scores(toxprob, args["sev.weight"]), case["nETS"], atol=0.005 + 1e-12)
    np.testing.assert_allclose(_true_scores(effprob, args["res.weight"]), case["nEES"], atol=0.005 + 1e-12)
    assert case["n_sim"] == N_SIM
    sel, n = _simulate(design, cats, toxprob, effprob, rho=case["te_corr"], n_trials=N_SIM, seed=20261130)
    nd = design.config.n_doses
    ours = np.array([np.mean(sel == d) for d in range(nd)] + [np.mean(sel == NO_DOSE)])
    theirs = np.array(list(case["prop_select"]) + [case["prop_stop"]]) / 100.0
    p = (ours + theirs) / 2
    se = np.sqrt(p * (1 - p) * 2 / N_SIM)  # SE of the difference of two independent 10,000-trial proportions
    bad = np.abs(ours - theirs) > K_SE * se + 0.0005
    assert not bad.any(), (f"selection % escalade {np.round(100 * ours, 1)} vs boinet {100 * theirs} "
                           f"(3 SE = {np.round(300 * se, 2)} points)")
    mean_n = n.mean(axis=0)
    se_n = n.std(axis=0, ddof=1) * np.sqrt(2 / N_SIM)
    bad = np.abs(mean_n - np.array(case["n_patient"])) > K_SE * se_n + 0.05
    assert not bad.any(), (f"patients per dose escalade {np.round(mean_n, 2)} vs boinet {case['n_patient']} "
                           f"(3 SE = {np.round(3 * se_n, 2)})")


def _cfg(**kw) -> GboinEtConfig:
    base = dict(target=0.35, delta=0.6, n_doses=4, cohort_size=3, max_n=24)
    base.update(kw)
    return GboinEtConfig(**base)


def _state(n, xt, xe, cur) -> States:
    n = np.atleast_2d(n)
    return States.from_counts(n, np.zeros_like(n), current=cur, tox_score=np.atleast_2d(np.asarray(xt, float)),
                              eff_score=np.atleast_2d(np.asarray(xe, float)))


def test_each_rule_of_the_decision() -> None:
    d = GboinEtDesign(_cfg())
    l1, l2, e1 = d.lambdas  # 0.155, 0.41 (gridoptim), eta1 0.47 for delta 0.6? checked against the formula below
    assert (l1, l2, e1) == gboinet_boundaries(0.35, 0.035, 0.49, 0.6, 0.36)
    lo_t, mid_t, hi_t = 0.5 * l1 * 3, 0.5 * (l1 + l2) * 3, 1.01 * l2 * 3
    lo_e, hi_e = 0.5 * e1 * 3, min(1.5 * e1, 0.99) * 3
    z = [3, 3, 0, 0]
    assert d.decide(_state(z, [0, lo_t, 0, 0], [2, lo_e, 0, 0], 1)).dose[0] == 2   # 1: escalate
    assert d.decide(_state(z, [0, lo_t, 0, 0], [2, hi_e, 0, 0], 1)).dose[0] == 1   # 2: stay (efficacious)
    assert d.decide(_state(z, [0, mid_t, 0, 0], [2, hi_e, 0, 0], 1)).dose[0] == 1  # 2: stay
    assert d.decide(_state(z, [0, hi_t, 0, 0], [2, hi_e, 0, 0], 1)).dose[0] == 0   # 3: de-escalate
    assert d.decide(_state(z, [0, mid_t, 0, 0], [2, lo_e, 0, 0], 1)).dose[0] == 2  # 4: untried next dose
    tried = [3, 3, 3, 0]
    # 4: the neighbour of highest mean nEES (dose 1 here)
    assert d.decide(_state(tried, [0, mid_t, 0.3, 0], [1.0, lo_e, 0.2, 0], 1)).dose[0] == 0
    assert d.decide(_state(tried, [0, mid_t, 0.3, 0], [0.1, lo_e, 1.0, 0], 1)).dose[0] == 2


def test_admissibility_stops_and_skips() -> None:
    d = GboinEtDesign(_cfg())
    c = d.config
    # every dose futile: Pr(nEES < delta1) > 0.99 needs many patients with no efficacy; none admissible -> stop
    st = _state([12, 12, 12, 12], [0, 0, 0, 0], [0, 0, 0, 0], 0)
    assert not d.admissible(st).any()
    dec = d.decide(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.NO_ACCEPTABLE and d.select(st)[0] == NO_DOSE
    # a dose with stopping_npts patients ends the trial (not early: a dose is selected)
    full = _state([3, c.max_n, 0, 0], [0.2, 2.0, 0, 0], [1.0, 15.0, 0, 0], 1)
    dec = d.decide(full)
    assert dec.reason[0] == StopReason.N_AT_DOSE and d.select(full)[0] == 1
    # de-escalation from dose 1 whose toxicity is inadmissible: stop
    tox1 = _state([6, 0, 0, 0], [5.0, 0, 0, 0], [3.0, 0, 0, 0], 0)
    assert not d.admissible(tox1)[0, 0]
    assert d.decide(tox1).stop[0]
    # escalation into an inadmissible dose skips to the lowest admissible dose above it
    skip = _state([3, 9, 0, 0], [0.0, 8.0, 0, 0], [0.5, 6.0, 0, 0], 0)
    assert not d.admissible(skip)[0, 1] and d.decide(skip).dose[0] == 2


def test_obd_methods_against_obd_select_by_hand() -> None:
    n = np.array([6, 6, 6, 6])
    xt = np.array([0.3, 0.9, 2.4, 1.8])       # mean 0.05 0.15 0.40 0.30 -> PAVA 0.05 0.15 0.35 0.35
    xe = np.array([1.2, 3.0, 4.2, 4.8])       # mean 0.20 0.50 0.70 0.80
    pt = np.array([0.05, 0.15, 0.35, 0.35])
    pe = xe / n
    # max.effprob: closest to 0.35 -> doses 3 and 4 (0-based 2, 3); the MTD is the highest of them (3); the
    # highest pe at or below it is dose 3's 0.8
    assert gboinet_obd(_cfg(obd_method="max_effprob"), n, xt, xe) == 3
    # equal pe at or below the MTD: the lowest such admissible dose
    assert gboinet_obd(_cfg(obd_method="max_effprob"), n, xt, [1.2, 4.2, 4.2, 3.0]) == 1
    u = pe - 0.33 * pt - 1.09 * pt * (pt > 0.49)
    assert gboinet_obd(_cfg(obd_method="utility_weighted"), n, xt, xe) == int(np.argmax(u))
    c = _cfg(obd_method="utility_truncated_linear")
    fe = np.clip((pe - c.qlow_ast) / (c.qupp_ast - c.qlow_ast), 0, 1)
    ft = np.clip(1 - (pt - c.plow_ast) / (c.pupp_ast - c.plow_ast), 0, 1)
    assert gboinet_obd(c, n, xt, xe) == int(np.argmax(fe * ft))
    us = 40 * (1 - pe) * (1 - pt) + 60 * pe * pt + 100 * pe * (1 - pt)
    assert gboinet_obd(_cfg(obd_method="utility_scoring"), n, xt, xe) == int(np.argmax(us))
    # one treated dose: selected when admissible
    assert gboinet_obd(_cfg(), [3, 0, 0, 0], [0.3, 0, 0, 0], [1.5, 0, 0, 0]) == 0


def test_ties_are_random_but_a_fixed_function_of_the_data() -> None:
    d = GboinEtDesign(_cfg())
    l1, l2, e1 = d.lambdas
    mid_t = 0.5 * (l1 + l2) * 3
    picks = []
    rng = np.random.default_rng(0)
    for _ in range(400):  # dose 1 and 3 tie on mean nEES (0), dose 2 rule 4: each neighbour equally likely
        a = rng.random() * 0.01
        picks.append(int(d.decide(_state([3, 3, 3, 0], [a, mid_t, a, 0], [0, 0, 0, 0], 1)).dose[0]))
    counts = np.bincount(picks, minlength=3)
    assert counts.sum() == 400 and all(abs(k - 400 / 3) < 4 * np.sqrt(400 * 2 / 9) for k in counts)
    st = _state([3, 3, 3, 0], [0.001, mid_t, 0.001, 0], [0, 0, 0, 0], 1)
    assert len({int(d.decide(st).dose[0]) for _ in range(5)}) == 1


def test_config_errors_say_the_fix() -> None:
    with pytest.raises(ConfigError, match="obd_method.*max_effprob"):
        _cfg(obd_method="max.effprob")
    with pytest.raises(ConfigError, match="delta1"):
        _cfg(delta1=0.7)
    with pytest.raises(ConfigError, match="phi1 < target"):
        _cfg(phi1=0.4)
    with pytest.raises(ConfigError, match="response_weights"):
        _cfg(response_weights={"cr": -1})
    with pytest.raises(ConfigError, match="delta"):
        build_design("gboin_et", {}, {"target": 0.3, "n_doses": 4})


def test_conduct_next_dose_from_grade_and_category_columns() -> None:
    from escalade.simulations.conduct import next_dose
    from escalade.simulations.patients_csv import PatientDataError

    d = build_design("gboin_et", {"delta": 0.5, "response_weights": {"cr": 3, "pr": 1, "sd": 0.25}},
                     {"target": 0.35, "n_doses": 4, "cohort_size": 3, "max_n": 24})
    csv = ("id,dose_level,dlt,grade_crs,grade_icans,response_category\nP1,1,0,1,0,cr\nP2,1,1,3,0,pr\n"
           "P3,1,0,0,0,pd\nP4,2,0,2,1,cr\nP5,2,0,0,0,sd\nP6,2,0,2,2,pr\n")
    r = next_dose(d, csv, response_categories=["cr", "pr", "sd", "pd"])
    w = 1.5 + 1.5  # default weights: largest per type
    assert r.states.tox_score[0, :2] == pytest.approx([1.0 / w, 1.5 / w])
    assert r.states.eff_score[0, :2] == pytest.approx([1 + 1 / 3, 1 + 0.25 / 3 + 1 / 3])
    assert r.next_dose == 2  # mean nETS 0.167 in (lambda1, lambda2), mean nEES 0.47 > eta1: stay
    assert r.table["mean_nees"].iloc[1] == pytest.approx((1 + 0.25 / 3 + 1 / 3) / 3)
    with pytest.raises(PatientDataError, match="response_category = 'mrd'"):
        next_dose(d, csv.replace("P6,2,0,2,2,pr", "P6,2,0,2,2,mrd"), response_categories=["cr", "pr", "sd", "pd"])
