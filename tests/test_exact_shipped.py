"""Exact enumeration agrees with the simulator on every shipped scenario (issue: exact OCs).

For each scenario of the shipped study files and each design there that is a pure function of
the counts (3+3, BOIN, CRM; the phase I/II designs are covered in test_exact.py), exact selection
probabilities and expected patients per dose lie within 3 Monte Carlo standard errors of 4,000
simulated trials, and the terminal probabilities sum to 1 within 1e-12.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.load import load_study
from escalade.simulations.exact import exact_outcomes
from escalade.simulations.trial import simulate

SCEN_DIR = Path(__file__).resolve().parents[1] / "scenarios"
CASES = []
for f in sorted(SCEN_DIR.glob("*.yaml")):
    study = load_study(f)
    for spec, design in build_study_designs(study):
        if design.kind in ("3+3", "boin", "crm") and design.enumerable:  # not: BOIN with backfill (calendar time)
            for s in study.scenarios:
                CASES.append(pytest.param(design, s, id=f"{f.stem}-{spec.name}-{s.name}"))


@pytest.mark.parametrize("design,scenario", CASES)
def test_exact_within_3_mc_se_of_simulation(design, scenario) -> None:
    p_t, p_e = np.asarray(scenario.p_dlt), np.asarray(scenario.p_response)
    ex = exact_outcomes(design, p_t, p_e)
    assert abs(ex.weight.sum() - 1.0) < 1e-12
    t = 4000
    sim = simulate(design, p_t, p_e, n_trials=t, seed=99)
    for j in range(-1, design.n_doses):
        p = float(ex.weight[ex.selected == j].sum())
        got = float(np.mean(sim.selected == j))
        se = np.sqrt(max(p * (1 - p), 1e-6) / t)
        assert abs(got - p) <= 3 * se + 1e-12, (j, got, p)
    en = (ex.n * ex.weight[:, None]).sum(axis=0)
    se = sim.n.std(axis=0, ddof=1) / np.sqrt(t)
    # a dose never reached in the simulation has sample SD 0; bound its SE by var(n) <= max_n * E[n]
    se = np.maximum(se, np.sqrt(design.max_n * en / t))
    assert np.all(np.abs(sim.n.mean(axis=0) - en) <= 3 * se + 1e-9)


def test_exact_demo_reproduces_escalation_through_the_cli(tmp_path: Path) -> None:
    import pandas as pd

    from escalade.cli import main

    out = tmp_path / "exact"
    assert main(["run", str(SCEN_DIR / "exact_demo.yaml"), "--exact", "--out", str(out), "--no-progress"]) == 0
    oc = pd.read_csv(out / "oc.csv")
    sel = oc[(oc.scenario == "Curve A") & (oc.metric == "select_pct")].set_index(["design", "dose"]).value
    # validation/reference/escalation/README.md: BOIN + select.mtd, curve A: 0.057406, 0.415079, 0.356433, 0.170867, 0
    assert sel[("BOIN", "D3")] == pytest.approx(35.6433, abs=5e-5)
    assert sel[("BOIN", "D2")] == pytest.approx(41.5079, abs=5e-5)
    # CRM empiric, no skipping (crmsim restrict): 0.020879, 0.266042, 0.355030, 0.301093, 0.056956
    assert sel[("CRM", "D3")] == pytest.approx(35.5030, abs=5e-5)
    assert oc.exact.all()
