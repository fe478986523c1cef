"""gBOIN-ET and gBOIN through escalade's own engine on CAR-T (graded) patients.

The boinet scenarios with independent toxicity and efficacy (``te.corr = 0``;
validation/reference/boinet/gboinet_corr0.json) written as study files: one AE type ``tox`` whose grades 0-3 are
boinet's toxicity categories, response categories best first (boinet lists them worst first). With no
correlation the engine's latent-Gaussian patient (escalade.simulations.graded) has exactly boinet's
distribution, so the operating characteristics must agree within 3 Monte Carlo SEs of the difference of two
independent 10,000-trial estimates (plus boinet's rounding to 0.1 of what it prints).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import load_reference
from escalade.design.base import NO_DOSE
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.load import parse_study
from escalade.simulations.trial import simulate

CORR0 = load_reference("boinet", "gboinet_corr0.json")["gboinet"]
N_SIM = 10_000
K_SE = 3.0
_METHOD = {"utility.weighted": "utility_weighted", "utility.truncated.linear": "utility_truncated_linear",
           "utility.scoring": "utility_scoring", "max.effprob": "max_effprob"}


def boinet_study(case: dict, *, n_trials: int = N_SIM, extra_designs: tuple[dict, ...] = ()) -> str:
    """The study file of one gboinet() call (te.corr 0)."""
    a = case["args"]
    nd = a["n.dose"]
    tox = np.array(a["toxprob"], float)   # (categories, doses), none first
    eff = np.array(a["effprob"], float)   # (categories, doses), worst first
    kt, ke = tox.shape[0], eff.shape[0]
    grades = [[float(tox[g, d]) if g < kt else 0.0 for g in range(6)] for d in range(nd)]
    cats = [f"e{k}" for k in range(ke - 1, -1, -1)]
    probs = [[float(eff[k, d]) for k in range(ke - 1, -1, -1)] for d in range(nd)]
    sev = list(a["sev.weight"])
    params = {"delta": a["delta"], "obd_method": _METHOD[a["obd.method"]],
              "severity_weights": {"tox": sev + [sev[-1]] * (6 - len(sev))},
              "response_weights": {f"e{k}": float(w) for k, w in enumerate(a["res.weight"])},
              "no_escalation_after_dlts": "off"}  # boinet has no shared guardrails
    for key in ("w1", "w2"):
        if key in a:
            params[key] = a[key]
    doc = {
        "study": {"title": case["name"], "target": a["phi"], "cohort_size": a["size.cohort"],
                  "max_n": a["size.cohort"] * a["n.cohort"], "dlt_window_days": 28},
        "doses": [{"amount": d + 1} for d in range(nd)],
        "designs": [{"name": "gBOIN-ET", "design": "gboin_et", "params": params}, *extra_designs],
        "scenarios": [{"name": "s", "adverse_events": {"types": {"tox": {"grades": grades}}},
                       "response": {"categories": cats, "orr": cats[:2],
                                    "assessments": {"primary": {"day": 56, "probs": probs}}}}],
        "dlt_rule": {"tox": kt - 1},
        "simulation": {"n_trials": n_trials, "seed": 20261130},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize("case", CORR0, ids=lambda c: c["name"])
def test_operating_characteristics_through_the_engine_match_boinet(case: dict) -> None:
    assert case["te_corr"] == 0 and case["n_sim"] == N_SIM
    study = parse_study(boinet_study(case), source=f"{case['name']}.yaml")
    (spec, design), = build_study_designs(study)
    s = study.scenarios[0]
    out = simulate(design, s.p_dlt, s.p_response, n_trials=N_SIM, seed=20261130, cart=s.cart)
    nd = design.n_doses
    sel = out.selected
    ours = np.array([np.mean(sel == d) for d in range(nd)] + [np.mean(sel == NO_DOSE)])
    theirs = np.array(list(case["prop_select"]) + [case["prop_stop"]]) / 100.0
    p = (ours + theirs) / 2
    se = np.sqrt(p * (1 - p) * 2 / N_SIM)
    bad = np.abs(ours - theirs) > K_SE * se + 0.0005
    assert not bad.any(), (f"selection % escalade {np.round(100 * ours, 1)} vs boinet {100 * theirs} "
                           f"(3 SE = {np.round(300 * se, 2)} points)")
    n = out.n
    se_n = n.std(axis=0, ddof=1) * np.sqrt(2 / N_SIM)
    bad = np.abs(n.mean(axis=0) - np.array(case["n_patient"])) > K_SE * se_n + 0.05
    assert not bad.any(), f"patients per dose {np.round(n.mean(axis=0), 2)} vs boinet {case['n_patient']}"


def test_gboin_runs_on_graded_patients_and_uses_the_grades() -> None:
    """gBOIN end to end: heavier weights on the same patients never raise the mean dose (coherence in weights)."""
    case = CORR0[0]
    light = {"name": "gBOIN light", "design": "gboin",
             "params": {"target": 0.3, "severity_weights": {"tox": [0, 0.1, 0.5, 1, 1, 1]}}}
    heavy = {"name": "gBOIN heavy", "design": "gboin",
             "params": {"target": 0.3, "severity_weights": {"tox": [0, 0.5, 1, 1, 1, 1]}}}
    study = parse_study(boinet_study(case, n_trials=400, extra_designs=(light, heavy)), source="g.yaml")
    s = study.scenarios[0]
    runs = {spec.name: simulate(d, s.p_dlt, s.p_response, n_trials=400, seed=5, cart=s.cart)
            for spec, d in build_study_designs(study) if spec.name.startswith("gBOIN ")}
    mean_dose = {k: float((o.n * np.arange(o.n.shape[1])).sum() / o.n.sum()) for k, o in runs.items()}
    assert mean_dose["gBOIN heavy"] < mean_dose["gBOIN light"]
    assert all((o.n.sum(axis=1) <= 48).all() for o in runs.values())


def test_methods_text_of_a_run(tmp_path) -> None:
    """Both designs in a run: their own methods writers, decision tables and references (not the generic text)."""
    from escalade.reports.load import load_run
    from escalade.reports.methods import methods_section
    from escalade.simulations.study_run import run_study

    g = {"name": "gBOIN", "design": "gboin", "params": {"target": 0.25}}
    study = parse_study(boinet_study(CORR0[0], n_trials=20, extra_designs=(g,)), source="m.yaml")
    run_study(study, n_trials=20, out_dir=tmp_path / "run", backend="sequential")
    run = load_run(tmp_path / "run")
    sec = {d.kind: methods_section(run, d, i) for i, d in enumerate(run.designs)}
    assert set(sec) == {"gboin", "gboin_et"} and all(s.specific for s in sec.values())
    et = " ".join(sec["gboin_et"].paragraphs)
    assert "lambda" not in et and "\u03bb1 = 0.29" in et and "boinet" in et  # gridoptim for phi 0.6, delta 0.8
    assert "utility" in et or "OBD" in et
    gb = sec["gboin"]
    assert "\u03bbe = 0.1968" in " ".join(gb.paragraphs)  # BOIN's lambda_e for a target of 0.25
    assert [c.text for c in gb.decision_tables[0].rows[0][1:4]] == ["4", "8", "12"]
    assert any("Mu R" in r for r in gb.references) and any("Takeda K" in r for r in sec["gboin_et"].references)
