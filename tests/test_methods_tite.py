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
    data.pop("dlt_rule", None)  # the kept scenario has no graded adverse events for the protocol's DLT rule
    run_study(parse_study(yaml.safe_dump(data), source="t.yaml"), n_trials=20, out_dir=tmp_path / "run")
    run = load_run(tmp_path / "run")
    sections = {d.kind: methods_section(run, d, i) for i, d in enumerate(run.designs)}
    assert all(s.specific for s in sections.values())
    tb = sections["tite_boin"]
    assert "STFT" in " ".join(tb.paragraphs) and tb.decision_tables
    # target 0.30, 3 patients, 1 DLT, 1 pending: decided by the pending patient's follow-up (STFT)
    # one row per (n, DLTs), the decision for each number of pending patients; n shown on its first row
    rows = [[c.text for c in r] for r in tb.decision_tables[0].rows]
    n_of, last = [], ""
    for r in rows:
        last = r[0] or last
        n_of.append(last)
    assert any(n == "3" and r[1] == "1" and "1: " in r[2] and "STFT" in r[2].split("1: ", 1)[1].split(";")[0]
               for n, r in zip(n_of, rows))
    assert any("suspend accrual" in r[2] for r in rows)
    # complete: every cohort multiple up to the maximum sample size
    assert sorted({int(n) for n in n_of}) == list(range(3, 31, 3))
    assert "skeleton (0.12, 0.2, 0.3, 0.4, 0.5)" in " ".join(sections["tite_crm"].paragraphs)
    b12 = sections["boin12"]
    assert "optimal biological dose" in b12.paragraphs[0] and b12.decision_tables[0].rows
    # complete: rows of n up to the maximum sample size, inadmissible outcomes as "E", never "nan"
    ns = {int(r[0].text) for t in b12.decision_tables for r in t.rows if r[0].text}
    assert max(ns) == 30 and min(ns) == 3
    texts = {c.text for t in b12.decision_tables for r in t.rows for c in r}
    assert "E" in texts and not any("nan" in x for x in texts)
    # every design-specific parameter has a meaning
    for s in sections.values():
        assert all(r[3].text for r in s.parameters.rows), s.name
    # a kind without a template falls back to the generic text listing every parameter
    import dataclasses

    d0 = run.designs[0]
    generic = methods_section(run, dataclasses.replace(d0, kind="mystery"), 0)
    assert not generic.specific and "no protocol template" in generic.paragraphs[0]
    assert [r[0].text for r in generic.parameters.rows] == list(d0.params)
