"""A design added as one module with one registry entry runs through all of escalade.

``tests/_toy_designs.py`` holds the toy's config, design, explanation, methods
writer and ``ENTRY``; this test registers that entry and, with no other change to
escalade, simulates it, enumerates it exactly, draws its dose paths, asks it for
the next dose, runs a study file that names it, writes the report with its
methods text, and lists it with ``escalade designs``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _toy_designs import ENTRY, ToyExplanation, ToyPhase12

from escalade.cli import main
from escalade.design import registry

STUDY_YAML = """\
study:
  title: "Toy design through every door"
  target: 0.3
  max_n: 9
doses:
  - {label: D1, amount: 1}
  - {label: D2, amount: 2}
  - {label: D3, amount: 3}
designs:
  - {name: Toy, design: toy12}
scenarios:
  - name: "Middle"
    p_dlt: [0.05, 0.2, 0.45]
    p_response: [0.1, 0.4, 0.6]
simulation:
  n_trials: 60
  seed: 11
"""


@pytest.fixture
def toy() -> Iterator[None]:
    with registry.registered(ENTRY):
        yield
    assert "toy12" not in registry.design_kinds()


def _design() -> ToyPhase12:
    d = registry.build_design("toy12", {}, {"target": 0.3, "n_doses": 3, "max_n": 9, "cohort_size": 3})
    assert isinstance(d, ToyPhase12) and d.max_n == 9
    return d


def test_simulate_exact_and_paths(toy: None) -> None:
    from escalade.simulations.exact import exact_outcomes
    from escalade.simulations.paths import dose_paths
    from escalade.simulations.trial import simulate

    d = _design()
    p_tox, p_eff = [0.05, 0.2, 0.45], [0.1, 0.4, 0.6]
    sim = simulate(d, p_tox, p_eff, n_trials=4000, seed=2)
    ex = exact_outcomes(d, p_tox, p_eff)
    # the simulated selection frequencies agree with the exact probabilities (within 4 MC SEs)
    for dose in range(3):
        p = float(ex.weight[ex.selected == dose].sum())
        freq = float(np.mean(sim.selected == dose))
        assert abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / 4000) + 1e-9
    paths = dose_paths(d, 2)
    assert len(paths.table) > 1 and paths.design == "toy12"


def test_next_dose_explains_with_the_toy_explanation(toy: None) -> None:
    from escalade.simulations.conduct import next_dose

    r = next_dose(_design(), "id,dose_level,dlt,response\nP1,1,0,0\nP2,1,0,0\n")
    assert r.next_dose == 2 and isinstance(r.explain, ToyExplanation)
    assert "observed_response_rate" in r.table.columns and r.details["rule"].startswith("toy")


def test_run_report_and_designs_from_the_cli(toy: None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = tmp_path / "toy.yaml"
    study.write_text(STUDY_YAML, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", str(study), "--out", str(out), "--jobs", "1", "--backend", "sequential",
                 "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["designs"][0]["design"] == "toy12"
    assert main(["report", str(out), "--format", "html"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Toy phase I/II design" in html and "Toy rule" in html  # the toy's own methods text
    capsys.readouterr()
    assert main(["designs", "--json"]) == 0
    listed = {d["kind"]: d for d in json.loads(capsys.readouterr().out)}
    assert listed["toy12"]["params"] == {"n_doses": 3, "max_n": 9}
    assert main(["designs", "toy12"]) == 0
    assert "Maximum sample size" in capsys.readouterr().out
