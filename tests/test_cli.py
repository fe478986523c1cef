"""The command line: run on the shipped example, boundaries, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import load_reference
from escalade.cli import main


def test_run_example_writes_run_directory(tmp_path: Path, example_study_path: Path, capsys) -> None:
    out = tmp_path / "run"
    rc = main(["run", str(example_study_path), "--trials", "200", "--jobs", "1", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "MTD at DL3" in text and "BOIN" in text and "PCS %" in text
    oc = pd.read_csv(out / "oc.csv")
    man = json.loads((out / "manifest.json").read_text())
    assert man["n_trials"] == 200 and "run" in man["command"]
    # the terminal table shows the same numbers as oc.csv
    row = oc[(oc.scenario == "MTD at DL3") & (oc.design == "BOIN") & (oc.metric == "correct_selection_pct")]
    assert f"{row.value.iloc[0]:.1f} ({row.se.iloc[0]:.1f})" in text


def test_boundaries_prints_the_package_table(capsys) -> None:
    assert main(["boundaries", "--target", "0.3", "--cohort-size", "3", "--cohorts", "10"]) == 0
    text = capsys.readouterr().out
    ref = load_reference("boin", "boundaries.json")["cases"]["target0.30_cs3_nc10"]["boundary_tab_at_cohort_ends"]
    lines = {ln[:28].strip(): ln[28:].split() for ln in text.splitlines() if "#" in ln or "Number" in ln}
    assert [int(v) for v in lines["Escalate if # of DLT <="]] == ref["escalate_if_ntox_le"]
    assert [int(v) for v in lines["Deescalate if # of DLT >="]] == ref["deescalate_if_ntox_ge"]
    assert [None if v == "NA" else int(v) for v in lines["Eliminate if # of DLT >="]] == ref["eliminate_if_ntox_ge"]


def test_bad_file_gives_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: {target: 2}\ndoses: [{amount: 1}]\ndesigns: [{design: boin}]\n"
                   "scenarios: [{name: a, p_dlt: [0.1]}]\n")
    proc = subprocess.run([sys.executable, "-m", "escalade", "run", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "bad.yaml: study.target = 2" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_boundaries_tite_prints_pending_rows(capsys) -> None:
    assert main(["boundaries", "--target", "0.3", "--cohort-size", "3", "--cohorts", "2", "--tite"]) == 0
    text = capsys.readouterr().out
    assert "TITE-BOIN" in text and "suspend accrual" in text
    # 3 patients, 1 DLT, 1 pending: the decision depends on the pending patient's follow-up (STFT)
    row = next(ln for ln in text.splitlines() if ln.split()[:3] == ["3", "1", "1"])
    assert "STFT" in row
