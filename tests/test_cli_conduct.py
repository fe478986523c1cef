"""``escalade paths`` and ``escalade next-dose`` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.cli import main


def test_paths_prints_tree_with_probabilities(tmp_path: Path, example_study_path: Path, capsys) -> None:
    csv = tmp_path / "paths.csv"
    rc = main(["paths", str(example_study_path), "--design", "BOIN", "--cohorts", "1", "--from", "1NNN",
               "--scenario", "MTD at DL3", "--csv", str(csv)])
    assert rc == 0
    out = capsys.readouterr().out
    # BOIN at target 0.30 after 1NNN goes to dose 2; from 2 with 0/3 it escalates to 3, 1/3 stays at 2
    assert "2 NNN -> 3" in out and "2 NNT -> 2" in out and "2 NTT -> 1" in out
    text = csv.read_text()
    assert text.count("\n") >= 5


def test_next_dose_answers_and_rejects_bad_rows(tmp_path: Path, example_study_path: Path, capsys) -> None:
    good = tmp_path / "pts.csv"
    good.write_text("id,dose_level,dlt,response\n1,1,0,0\n2,1,0,1\n3,1,0,0\n")
    assert main(["next-dose", "--study", str(example_study_path), "--design", "BOIN", "--data", str(good)]) == 0
    assert "next cohort of 3 at dose 2" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("id,dose_level,dlt\n1,9,0\n2,1,maybe\n")
    assert main(["next-dose", "--study", str(example_study_path), "--design", "BOIN", "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "line 3" in err
    assert main(["next-dose", "--study", str(example_study_path), "--design", "BION", "--data", str(good)]) == 2
    assert "did you mean 'BOIN'" in capsys.readouterr().err


def test_next_dose_mcmc_is_for_efftox_only(tmp_path: Path, example_study_path: Path, capsys) -> None:
    good = tmp_path / "pts.csv"
    good.write_text("id,dose_level,dlt,response\n1,1,0,1\n2,1,0,0\n3,1,0,1\n")
    rc = main(["next-dose", "--study", str(example_study_path), "--design", "BOIN", "--data", str(good), "--mcmc"])
    assert rc == 2 and "NUTS engine (EffTox, BLRM)" in capsys.readouterr().err


@pytest.mark.slow
def test_next_dose_efftox_with_nuts_diagnostics(tmp_path: Path, example_study_path: Path, capsys) -> None:
    good = tmp_path / "pts.csv"
    good.write_text("id,dose_level,dlt,response\n1,1,0,1\n2,1,0,0\n3,1,0,1\n")
    rc = main(["next-dose", "--study", str(example_study_path), "--design", "EffTox", "--data", str(good),
               "--mcmc"])
    out = capsys.readouterr().out
    assert rc == 0 and "NUTS" in out and "max_rhat" in out
