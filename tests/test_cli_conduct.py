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


EXAMPLE_PATIENTS = Path(__file__).resolve().parents[1] / "scenarios" / "patients_example.csv"


def test_next_dose_tite_boin_suspends_on_the_example(example_study_path: Path, capsys) -> None:
    # scenarios/patients_example.csv as of 2025-04-14: two of the three patients at DL2 still in their 28-day
    # window (P04 day 21, P06 day 7) -> TITE-BOIN suspends accrual (more than 50% pending)
    rc = main(["next-dose", "--study", str(example_study_path), "--design", "TITE-BOIN", "--data",
               str(EXAMPLE_PATIENTS), "--as-of", "2025-04-14"])
    out = capsys.readouterr().out
    assert rc == 0 and "DECISION: suspend accrual" in out
    assert "P04     2 2025-03-24    21   0.750  2025-04-21" in out
    assert "P06     2 2025-04-07     7   0.250  2025-05-05" in out
    rc = main(["next-dose", "--study", str(example_study_path), "--design", "TITE-CRM", "--data",
               str(EXAMPLE_PATIENTS), "--as-of", "2025-04-14", "--json"])
    import json

    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["as_of"] == "2025-04-14" and d["dlt_window_days"] == 28
    assert [p["weight"] for p in d["pending"]] == [0.75, 0.25]


@pytest.mark.parametrize("design", ["3+3", "BOIN", "CRM", "TITE-BOIN", "TITE-CRM", "EffTox", "BOIN12"])
def test_example_file_works_with_every_shipped_design(example_study_path: Path, capsys, design: str) -> None:
    rc = main(["next-dose", "--study", str(example_study_path), "--design", design, "--data", str(EXAMPLE_PATIENTS),
               "--as-of", "2025-06-30"])
    out = capsys.readouterr().out
    assert rc == 0 and "DECISION:" in out


def test_next_dose_as_of_errors(example_study_path: Path, capsys) -> None:
    args = ["next-dose", "--study", str(example_study_path), "--design", "TITE-CRM", "--data", str(EXAMPLE_PATIENTS)]
    with pytest.raises(SystemExit) as info:
        main(args + ["--as-of", "14/04/2025"])
    assert info.value.code == 2 and "'14/04/2025' is not a date written YYYY-MM-DD" in capsys.readouterr().err
    # a date in the file after --as-of: the line is named
    assert main(args + ["--as-of", "2025-04-01"]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "line 11: dlt_date = '2025-04-09': is after the decision date 2025-04-01" in err
    assert "line 12: enrol_date = '2025-04-07': is after the decision date 2025-04-01" in err


def test_tite_design_without_dates(tmp_path: Path, example_study_path: Path, capsys) -> None:
    f = tmp_path / "pts.csv"
    f.write_text("id,dose_level,dlt\n1,1,0\n2,1,0\n3,1,0\n")
    rc = main(["next-dose", "--study", str(example_study_path), "--design", "TITE-CRM", "--data", str(f)])
    err = capsys.readouterr().err
    assert rc == 2 and "line 1: header" in err and "column 'enrol_date' is missing" in err


@pytest.mark.parametrize("kind", ["latin1", "utf16", "directory", "missing"])
def test_unreadable_patients_file_is_one_line(tmp_path: Path, example_study_path: Path, capsys, kind: str) -> None:
    f = tmp_path / "pts.csv"
    text = "id,dose_level,dlt,notes\n1,1,0,Müller\n"
    if kind == "latin1":
        f.write_bytes(text.encode("latin-1"))
    elif kind == "utf16":
        f.write_bytes(text.encode("utf-16"))
    elif kind == "directory":
        f.mkdir()
    rc = main(["next-dose", "--study", str(example_study_path), "--design", "BOIN", "--data", str(f)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"escalade: error: {f}: ") and "Traceback" not in captured.err
