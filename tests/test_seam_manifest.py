"""manifest.json has one typed schema (simulations/manifest.py) for its writer and its readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from escalade.scenarios.load import parse_study
from escalade.simulations.manifest import Manifest, ManifestError, StudySettings
from escalade.simulations.study_run import run_study

SMALL = """\
study: {title: "Manifest", target: 0.25, cohort_size: 3, max_n: 9, dlt_window_days: 21}
doses: [{label: A, amount: 1}, {label: B, amount: 2}]
designs: [{name: B, design: boin}]
scenarios:
  - {name: S1, description: "first", p_dlt: [0.1, 0.3]}
simulation: {n_trials: 20, seed: 4}
"""


def test_written_manifest_reads_back_typed(tmp_path: Path) -> None:
    run_study(parse_study(SMALL), out_dir=tmp_path / "r", n_jobs=1, backend="sequential")
    raw = json.loads((tmp_path / "r" / "manifest.json").read_text())
    m = Manifest.from_dict(raw)
    assert m.to_dict() == raw  # the writer's dict is exactly the schema's
    assert m.settings == StudySettings(title="Manifest", target=0.25, cohort_size=3, max_n=9, start_dose=0,
                                       dlt_window_days=21.0, response_days=90.0)
    assert m.scenarios[0].description == "first" and m.scenarios[0].true_mtd == 2
    assert m.designs[0].design == "boin" and m.designs[0].params["cutoff_eli"] == 0.95


def test_older_and_newer_manifests() -> None:
    base = {"n_trials": 10, "seed": 1, "target": 0.3, "doses": [{"label": "A", "amount": 1}],
            "scenarios": [{"name": "S", "p_dlt": [0.2]}], "designs": [{"name": "B", "design": "x"}]}
    m = Manifest.from_dict({**base, "file_sha256": {"oc.csv": "ab"}})
    assert m.settings is None and math.isnan(m.scenarios[0].p_response[0])
    assert m.extra == {"file_sha256": {"oc.csv": "ab"}}  # keys of a newer version are kept
    assert m.to_dict()["file_sha256"] == {"oc.csv": "ab"}
    with pytest.raises(ManifestError, match="seed"):
        Manifest.from_dict({k: v for k, v in base.items() if k != "seed"})
    with pytest.raises(ManifestError, match=r"scenarios\[0\].p_dlt"):
        Manifest.from_dict({**base, "scenarios": [{"name": "S", "p_dlt": "high"}]})
    with pytest.raises(ManifestError, match=r"doses\[0\].amount"):
        Manifest.from_dict({**base, "doses": [{"label": "A", "amount": "one"}]})
