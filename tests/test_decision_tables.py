"""Decision-table designs: Keyboard, mTPI-2, i3+3 and a protocol's own CSV table.

Sources of the expected values (each test names its own):

* Keyboard: the rule of ``Keyboard::get.boundary.kb`` as the package documents
  and implements it (https://rdrr.io/cran/Keyboard/src/R/get.boundary.kb.R;
  Yan, Mandrekar & Yuan 2017, Clin Cancer Res 23:3994-4003);
* mTPI-2: the interval construction and tie order of ``escalation::get_mtpi2``
  (https://rdrr.io/github/brockk/escalation/src/R/mtpi2_selector.R; Guo et al.
  2017); mTPI-2 and Keyboard make the same E/S/D decisions (Ji & Yang 2017,
  arXiv:1706.03277, cited by ``get_mtpi2``'s documentation);
* i3+3: the rules of Liu, Wang & Ji (2020), J Biopharm Stat 30(2):294-304
  (https://www.pubmed.gov/31304864/; arXiv:1901.01303),
  written out below entry by entry;
* elimination rows: ``BOIN::get.boundary``'s (R output in
  validation/reference/boin/boundaries.json), the same Beta(1, 1) rule;
* R output, entry for entry (the R script beside each JSON, its README the
  provenance): Keyboard 0.1.3's ``get.boundary.kb`` (validation/reference/keyboard/),
  escalation 0.2.3's ``get_mtpi2`` (validation/reference/mtpi2/) and FIND 0.1.1's
  ``get_decision_i3plus3`` by the i3+3 authors' group (validation/reference/i3plus3/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import load_reference
from escalade.cli import main
from escalade.design.base import States
from escalade.design.decision_table import DecisionTable, boin_decision_table, read_table_csv
from escalade.design.errors import ConfigError
from escalade.design.i3plus3 import i3plus3_table
from escalade.design.keyboard import keyboard_keys, keyboard_table
from escalade.design.mtpi2 import mtpi2_intervals, mtpi2_table
from escalade.design.registry import build_design
from escalade.simulations.trial import simulate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenarios" / "decision_table_example.csv"
STUDY = {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 30, "start_dose": 0}
BOIN_CASES = ["target0.15_cs3_nc10", "target0.20_cs3_nc10", "target0.25_cs3_nc10", "target0.30_cs3_nc10",
              "target0.35_cs3_nc10"]


# --------------------------------------------------------------------------------------------
# the formula designs' tables


def test_keyboard_keys_as_the_package_lays_them() -> None:
    """getkey() of get.boundary.kb: width-0.1 keys out from (0.25, 0.35), ends cut at 0 and 1."""
    cuts, target_key = keyboard_keys(0.3, 0.05, 0.05)
    assert np.allclose(cuts, [0, 0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0])
    assert target_key == 3 and np.isclose(cuts[target_key], 0.25)


def test_mtpi2_intervals_as_escalation_builds_them() -> None:
    below, ei, above = mtpi2_intervals(0.3, 0.05, 0.05)
    assert np.allclose(below, [(0.15, 0.25), (0.05, 0.15), (0.0, 0.05)])
    assert np.allclose(ei, (0.25, 0.35))
    assert np.allclose(above, [(0.35 + 0.1 * k, min(0.45 + 0.1 * k, 1.0)) for k in range(7)])


# Keyboard, target 0.3, cohorts of 3 (get.boundary.kb(target = 0.3, ncohort = 10, cohortsize = 3)'s rule,
# evaluated here; not an R run): escalate if DLTs <=, de-escalate if >=, eliminate if >=.
KEYBOARD_030 = {
    "n": [3, 6, 9, 12, 15, 18, 21, 24, 27, 30],
    "escalate_if_ntox_le": [0, 1, 2, 2, 3, 4, 5, 5, 6, 7],
    "deescalate_if_ntox_ge": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    "eliminate_if_ntox_ge": [3, 4, 5, 7, 8, 9, 10, 11, 12, 14],
}


def test_keyboard_table_target_030() -> None:
    assert keyboard_table(0.3, 30).table(3) == KEYBOARD_030


@pytest.mark.parametrize("case", BOIN_CASES)
def test_elimination_rows_equal_boin_get_boundary(case: str) -> None:
    """Keyboard, mTPI-2 and i3+3 eliminate by BOIN's Beta(1, 1) rule: BOIN 2.7.2's row (R output)."""
    ref = load_reference("boin", "boundaries.json")["cases"][case]
    target = float(ref["args"]["target"]) if "args" in ref and "target" in ref["args"] else float(case[6:10])
    want = ref["boundary_tab_at_cohort_ends"]["eliminate_if_ntox_ge"]
    for table in (keyboard_table(target, 30), mtpi2_table(target, 30), i3plus3_table(target, 30)):
        got = table.table(3)["eliminate_if_ntox_ge"]
        assert [None if w is None else int(w) for w in want] == got


@pytest.mark.parametrize("case", ["target0.25_cs3_nc10"])
def test_keyboard_equals_boin_at_target_025(case: str) -> None:
    """At target 0.25 Keyboard's boundaries coincide with BOIN's (R output of get.boundary)."""
    ref = load_reference("boin", "boundaries.json")["cases"][case]["boundary_tab_at_cohort_ends"]
    got = keyboard_table(0.25, 30).table(3)
    for row in ("escalate_if_ntox_le", "deescalate_if_ntox_ge"):
        assert got[row] == [int(v) for v in ref[row]]


@pytest.mark.parametrize("target", [0.1, 0.15, 0.2, 0.25, 0.3, 0.33, 0.35, 0.4])
def test_mtpi2_equals_keyboard_entry_for_entry(target: float) -> None:
    """mTPI-2 and Keyboard decide alike (Ji & Yang 2017), for every (n, y) up to 36."""
    assert mtpi2_table(target, 36).rows() == keyboard_table(target, 36).rows()


def _i3plus3_paper(target: float, e1: float, e2: float, n: int, y: int) -> str:
    lo, hi = target - e1, target + e2
    if y / n < lo - 1e-9:
        return "E"
    if y / n <= hi + 1e-9:
        return "S"
    return "S" if (y - 1) / n < lo - 1e-9 else "D"


@pytest.mark.parametrize("target", [0.2, 0.25, 0.3])
def test_i3plus3_table_is_the_papers_rules(target: float) -> None:
    t = i3plus3_table(target, 30)
    from escalade.design.rules import beta_exceeds
    for n in range(1, 31):
        for y in range(n + 1):
            want = _i3plus3_paper(target, 0.05, 0.05, n, y)
            if n >= 3 and beta_exceeds(target, 0.95, [y], [n])[0]:
                want = "DU"
            assert t.rows()[n - 1][y] == want, (n, y)


def test_i3plus3_landmarks_target_025() -> None:
    """Liu et al. (2020): at pT = 0.25, EI = [0.2, 0.3]: 1/3 stays (one DLT fewer would escalate), 2/3 de-escalates,
    3/3 de-escalates and eliminates; 1/4 and 1/5 lie in EI; 2/6 stays, 2/4 de-escalates."""
    rows = i3plus3_table(0.25, 6).rows()
    assert rows[2] == ("E", "S", "D", "DU")
    assert rows[3][1] == "S" and rows[3][2] == "D"
    assert rows[4][1] == "S"
    assert rows[5][2] == "S"


# --------------------------------------------------------------------------------------------
# a protocol's own table


def test_boin_table_csv_reproduces_boin_in_simulation(tmp_path: Path) -> None:
    """BOIN's table as a CSV: the same trials, the same selections, the same stops, trial by trial."""
    path = tmp_path / "boin_025.csv"
    path.write_text(boin_decision_table(0.25, 30).to_csv())
    study = dict(STUDY, target=0.25)
    boin = build_design("boin", {}, study)
    table = build_design("decision_table", {"table": str(path)}, study)
    for p_tox in ([0.05, 0.12, 0.25, 0.4, 0.55], [0.3, 0.45, 0.6, 0.7, 0.8], [0.02, 0.04, 0.06, 0.1, 0.25]):
        a = simulate(boin, p_tox, n_trials=1500, seed=20261130)
        b = simulate(table, p_tox, n_trials=1500, seed=20261130)
        for f in ("selected", "reason", "n", "tox", "cohorts"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), f
        assert len(set(a.selected.tolist())) > 2  # the check sees more than one outcome


def test_shipped_example_csv_is_boin_target_030() -> None:
    boin = build_design("boin", {}, STUDY)
    table = build_design("decision_table", {"table": str(EXAMPLE)}, STUDY)
    rng = np.random.default_rng(4)
    n = rng.integers(0, 5, size=(400, 5)) * 3
    cur = rng.integers(0, 5, size=400)
    n[np.arange(400), cur] = np.maximum(n[np.arange(400), cur], 3)
    tox = rng.binomial(n, 0.35)
    s = States.from_counts(n, tox, current=cur, last_n=3, last_tox=np.minimum(tox[np.arange(400), cur], 3))
    da, db = boin.decide(s), table.decide(s)
    assert np.array_equal(da.dose, db.dose) and np.array_equal(da.reason, db.reason)
    assert np.array_equal(boin.select(s), table.select(s))


def test_table_csv_round_trip(tmp_path: Path) -> None:
    t = mtpi2_table(0.2, 12)
    path = tmp_path / "t.csv"
    path.write_text(t.to_csv())
    assert read_table_csv(str(path), n_needed=12).rows() == t.rows()


def _bad(tmp_path: Path, text: str, max_n: int = 3) -> str:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_design("decision_table", {"table": str(path)}, dict(STUDY, max_n=max_n))
    assert err.value.field == "table"
    return str(err.value)


_GOOD3 = "n,dlt,decision\n1,0,E\n1,1,D\n2,0,E\n2,1,D\n2,2,D\n3,0,E\n3,1,S\n3,2,D\n3,3,DU\n"


def test_good_small_csv_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(_GOOD3.replace("3,1,S", "3,1,s"))  # any case
    d = build_design("decision_table", {"table": str(path)}, dict(STUDY, max_n=3))
    assert d.decision_table().rows()[2] == ("E", "S", "D", "DU")


def test_bad_csv_header(tmp_path: Path) -> None:
    msg = _bad(tmp_path, "patients,dlt,decision\n1,0,E\n")
    assert "missing n" in msg and "header" in msg


def test_bad_csv_one_line_per_problem(tmp_path: Path) -> None:
    text = _GOOD3.replace("3,1,S", "3,1,X").replace("2,2,D", "2,4,D").replace("1,1,D", "1,one,D") + "3,0,S\n"
    msg = _bad(tmp_path, text)
    lines = msg.splitlines()
    assert any("line 3:" in ln and "whole" in ln for ln in lines)
    assert any("line 6:" in ln and "dlt = 4" in ln and "between 0 and n = 2" in ln for ln in lines)
    assert any("line 8:" in ln and "'X'" in ln and "E, S, D, DU" in ln for ln in lines)
    assert any("line 11:" in ln and "appears twice" in ln for ln in lines)
    assert len(lines) == 5  # the heading and one line per problem


def test_bad_csv_missing_entries(tmp_path: Path) -> None:
    msg = _bad(tmp_path, _GOOD3, max_n=6)
    assert "missing for n up to 6" in msg and "(n = 4, dlt = 0)" in msg


def test_bad_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        build_design("decision_table", {"table": str(tmp_path / "nope.csv")}, STUDY)


# --------------------------------------------------------------------------------------------
# the command line


def test_boundaries_prints_a_designs_table(capsys) -> None:
    assert main(["boundaries", "--target", "0.3", "--design", "keyboard"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == keyboard_table(0.3, 30).format(3).strip()
    assert main(["boundaries", "--target", "0.3", "--design", "decision_table", "--param", f"table={EXAMPLE}",
                 "--cohorts", "4"]) == 0
    assert capsys.readouterr().out.split("\n")[0].split() == ["Number", "of", "patients", "treated", "3", "6", "9",
                                                               "12"]


def test_boundaries_refuses_a_design_without_a_table(capsys) -> None:
    assert main(["boundaries", "--target", "0.3", "--design", "3+3"]) == 2
    assert "has no decision table" in capsys.readouterr().err


def test_decision_table_object_is_the_design_table() -> None:
    d = build_design("i3+3", {}, STUDY)
    assert isinstance(d.decision_table(), DecisionTable) and d.decision_table().n_max == 30


# --------------------------------------------------------------------------------------------
# the methods text of a run


def test_methods_text_of_each_table_design(tmp_path: Path) -> None:
    """A tiny exact run with the four kinds: each gets its own writer, its table and its references."""
    from escalade.reports.load import load_run
    from escalade.reports.methods import methods_writer

    csv_path = tmp_path / "boin.csv"
    csv_path.write_text(boin_decision_table(0.25, 6).to_csv())
    study = tmp_path / "study.yaml"
    study.write_text(
        "study: {title: tables, target: 0.25, cohort_size: 3, max_n: 6}\n"
        "doses: [{amount: 1}, {amount: 2}, {amount: 3}]\n"
        "designs:\n  - {name: KB, design: keyboard}\n  - {name: M2, design: mtpi2}\n"
        "  - {name: I3, design: \"i3+3\"}\n"
        f"  - {{name: TB, design: decision_table, params: {{table: '{csv_path}'}}}}\n"
        "scenarios:\n  - {name: A, p_dlt: [0.1, 0.25, 0.5]}\n"
        "simulation: {n_trials: 50, seed: 3}\n")
    out = tmp_path / "run"
    assert main(["run", str(study), "--exact", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    run = load_run(out)
    heads = []
    for i, d in enumerate(run.designs):
        sec = methods_writer(d.kind)(run, d, i)
        assert sec.specific and sec.references and sec.decision_tables
        first = sec.decision_tables[0]
        assert [c.text for c in first.rows[0][1:]] == ["3", "6"]
        heads.append(sec.heading)
        assert "decisions" not in [r[0].text for r in sec.parameters.rows]
    assert len(set(heads)) == 4


def test_a_relative_table_path_is_read_beside_the_study_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study and its decision table move together: ``table: boin.csv`` is the file beside the study, whatever
    folder escalade runs in (an absolute path is used as it is)."""
    from escalade.scenarios.designs import build_study_designs
    from escalade.scenarios.load import load_study

    folder = tmp_path / "protocol"
    folder.mkdir()
    (folder / "boin.csv").write_text(boin_decision_table(0.25, 6).to_csv())
    study = folder / "study.yaml"
    study.write_text(
        "study: {title: tables, target: 0.25, cohort_size: 3, max_n: 6}\n"
        "doses: [{amount: 1}, {amount: 2}, {amount: 3}]\n"
        "designs:\n  - {name: TB, design: decision_table, params: {table: boin.csv}}\n"
        "scenarios:\n  - {name: A, p_dlt: [0.1, 0.25, 0.5]}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (spec, design), = build_study_designs(load_study(study))
    assert spec.params == {"table": "boin.csv"}  # what the file says, as the manifest records it
    assert design.config.table == str(folder / "boin.csv")
    assert design.config.decisions == boin_decision_table(0.25, 6).rows()


# --------------------------------------------------------------------------------------------
# the R packages' tables, entry for entry (validation/reference/keyboard, mtpi2, i3plus3; R scripts beside them)

KEYBOARD_REF = load_reference("keyboard", "keyboard_tables.json")["cases"]
MTPI2_REF = load_reference("mtpi2", "mtpi2_tables.json")["cases"]
I3PLUS3_REF = load_reference("i3plus3", "i3plus3_tables.json")["cases"]


@pytest.mark.parametrize("case", sorted(KEYBOARD_REF))
def test_keyboard_equals_the_package_entry_for_entry(case: str) -> None:
    """Keyboard 0.1.3, get.boundary.kb(...) (the call is in the JSON): its internal decision_table (copied with
    trace()) and its boundary tables. The package writes DU from n = 1, its simulator get.oc.kb eliminates from
    n = 3 only: ``elim_min_n = 1`` gives the package's table, the default 3 the same entries for n >= 3."""
    c = KEYBOARD_REF[case]
    a = c["args"]
    full = keyboard_table(a["target"], c["npts"], a["marginL"], a["marginR"], a["cutoff.eli"], 1)
    assert [list(r) for r in full.rows()] == c["decision_table"]
    assert full.boundaries() == c["full_boundary_tab"]
    assert full.table(a["cohortsize"]) == c["boundary_tab"]
    default = keyboard_table(a["target"], c["npts"], a["marginL"], a["marginR"], a["cutoff.eli"])
    assert [list(r) for r in default.rows()[2:]] == c["decision_table"][2:]
    assert all(v != "DU" for row in default.rows()[:2] for v in row)


@pytest.mark.parametrize("case", sorted(MTPI2_REF))
def test_mtpi2_equals_escalation_entry_for_entry(case: str) -> None:
    """escalation 0.2.3, get_mtpi2(...) fitted to n patients with y DLTs at dose 2 of 3 (the call is in the JSON):
    the recommended dose (E/S/D) and dose_admissible() (excluded from n >= 2: escalade's elim_min_n = 2)."""
    c = MTPI2_REF[case]
    a = c["args"]
    t = mtpi2_table(a["target"], a["n_max"], a["epsilon1"], a["epsilon2"], a["exclusion_certainty"], a["alpha"],
                    a["beta"], 2)
    want = [["DU" if not ok else d for d, ok in zip(dec, adm)] for dec, adm in zip(c["decision"], c["admissible"])]
    assert [list(r) for r in t.rows()] == want
    assert any("DU" in r for r in want) and any("S" in r for r in want)  # the comparison sees every decision


@pytest.mark.parametrize("case", sorted(I3PLUS3_REF))
def test_i3plus3_equals_find_entry_for_entry(case: str) -> None:
    """FIND 0.1.1 (Ji & Zhang, the i3+3 authors' group), get_decision_i3plus3(pT, EI, npts): n >= 3."""
    c = I3PLUS3_REF[case]
    a = c["args"]
    t = i3plus3_table(a["pT"], a["npts"], round(a["pT"] - a["EI"][0], 12), round(a["EI"][1] - a["pT"], 12))
    assert [list(r) for r in t.rows()[c["n_from"] - 1:]] == c["decision"]


@pytest.mark.parametrize("req", ["TABLE-1", "TABLE-2", "TABLE-3"])
def test_table_requirements_pass_in_validate(req: str) -> None:
    from escalade.validation.suite import Context, run_requirements

    (res,) = run_requirements(Context(quick=True), only=[req])
    assert res.passed and res.n_comparisons > 10, res
