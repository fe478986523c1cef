"""Protocol methods text for TITE-BOIN, TITE-CRM and BOIN12 (not the generic fallback)."""

from __future__ import annotations

from pathlib import Path

import yaml

from escalade.reports.load import load_run
from escalade.reports.methods import methods_section
from escalade.scenarios.load import parse_study
from escalade.simulations.study_run import run_study


def test_specific_methods_for_late_onset_and_phase12_designs(tmp_path: Path, example_study_path: Path) -> None:
    data = yaml.safe_load(example_study_path.read_text())
    data["designs"] = [d for d in data["designs"] if d["design"] in ("tite_boin", "tite_crm", "boin12")]
    data["scenarios"] = data["scenarios"][:1]
    run_study(parse_study(yaml.safe_dump(data), source="t.yaml"), n_trials=20, out_dir=tmp_path / "run")
    run = load_run(tmp_path / "run")
    sections = {d.kind: methods_section(run, d, i) for i, d in enumerate(run.designs)}
    assert all(s.specific for s in sections.values())
    tb = sections["tite_boin"]
    assert "STFT" in " ".join(tb.paragraphs) and tb.decision_tables
    # target 0.30, 3 patients, 1 DLT, 1 pending: decided by the pending patient's follow-up (STFT)
    rows = [[c.text for c in r] for r in tb.decision_tables[0].rows]
    assert any(r[:3] == ["3", "1", "1"] and "STFT" in r[3] for r in rows)
    assert any("suspend accrual" in r[3] for r in rows)
    assert "skeleton (0.12, 0.2, 0.3, 0.4, 0.5)" in " ".join(sections["tite_crm"].paragraphs)
    b12 = sections["boin12"]
    assert "optimal biological dose" in b12.paragraphs[0] and b12.decision_tables[0].rows
    # a kind without a template falls back to the generic text listing every parameter
    import dataclasses

    d0 = run.designs[0]
    generic = methods_section(run, dataclasses.replace(d0, kind="mystery"), 0)
    assert not generic.specific and "no protocol template" in generic.paragraphs[0]
    assert [r[0].text for r in generic.parameters.rows] == list(d0.params)
