"""Conduct mode (simulations/conduct.py): the next dose from a patients CSV."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _toy_designs import ToyPhase12
from conftest import load_reference
from escalade.design.base import States
from escalade.design.boin import BoinConfig, BoinDesign, boin_estimates
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.simulations.conduct import (
    PatientDataError, format_next_dose, next_dose, patients_states, read_patients,
)

# The BOIN design of scenarios/cart_rr_heme.yaml: target 0.30, cohorts of 3, max 30, 5 dose levels,
# cutoff_eli 0.95, extrasafe. Its boundaries (BOIN::get.boundary(target = 0.3, ...), see
# tests/reference/boin/README.md): n = 3: escalate if DLTs <= 0, de-escalate if >= 2, eliminate if >= 3;
# n = 6: escalate if <= 1, de-escalate if >= 3, eliminate if >= 4.
CART_BOIN = BoinDesign(BoinConfig(target=0.30, n_doses=5, cohort_size=3, max_n=30, cutoff_eli=0.95,
                                  extrasafe=True))


def _csv(rows: list[tuple], header: str = "id,dose_level,dlt") -> str:
    return header + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n"


def _patients(doses_dlts: list[tuple[int, int]]) -> str:
    return _csv([(f"P{i + 1:02d}", d, y) for i, (d, y) in enumerate(doses_dlts)])


# --------------------------------------------------------------------------- three CAR-T examples, by hand


def test_cart_example_1_stay_after_one_dlt_in_three() -> None:
    # Data: DL1 P01-P03 no DLT; DL2 P04-P06 no DLT; DL3 P07-P09, P08 has grade 4 CRS (DLT).
    # Rule: at DL3 n = 3, y = 1; escalate needs y <= 0, de-escalate needs y >= 2 -> stay.
    # Answer: next cohort of 3 at DL3.
    data = _patients([(1, 0)] * 3 + [(2, 0)] * 3 + [(3, 0), (3, 1), (3, 0)])
    r = next_dose(CART_BOIN, data)
    assert (r.next_dose, r.cohort_size, r.stop) == (3, 3, False)
    assert (r.current_dose, r.last_cohort_n, r.last_cohort_dlt) == (3, 3, 1)
    assert (r.details["escalate_if_le"], r.details["deescalate_if_ge"], r.details["eliminate_if_ge"]) == (0, 2, 3)


def test_cart_example_2_deescalate_without_eliminating() -> None:
    # Data: DL1 0/3, DL2 0/3, DL3 six patients (two cohorts) with 3 DLTs (P08, P11, P12: ICANS grade 3).
    # Rule: at DL3 n = 6, y = 3 >= 3 -> de-escalate; elimination at n = 6 needs y >= 4
    # (Pr(p > 0.3 | Beta(4, 4)) = 0.87 < 0.95), so DL3 stays open.
    # Answer: next cohort of 3 at DL2.
    data = _patients([(1, 0)] * 3 + [(2, 0)] * 3 + [(3, 0), (3, 1), (3, 0), (3, 0), (3, 1), (3, 1)])
    r = next_dose(CART_BOIN, data)
    assert (r.next_dose, r.stop) == (2, False)
    assert not r.table["eliminated"].any()
    assert r.details["eliminate_if_ge"] == 4


def test_cart_example_3_eliminated_dose_is_not_re_entered() -> None:
    # Data: DL1 0/3, DL2 0/3, DL3 3/3 (three DLTs: CRS grade 4 x2, ICANS grade 4) -> de-escalated to DL2,
    # which then treated 3 more without DLT (DL2: 0/6).
    # Rule: DL3 is eliminated (n = 3, y = 3 >= 3; Pr(p > 0.3 | Beta(4, 1)) = 1 - 0.3^4 = 0.992 > 0.95);
    # at DL2 n = 6, y = 0 <= 1 says escalate, but DL3 is eliminated -> stay.
    # Answer: next cohort of 3 at DL2; the dose selected now would be DL2.
    data = _patients([(1, 0)] * 3 + [(2, 0)] * 3 + [(3, 1)] * 3 + [(2, 0)] * 3)
    r = next_dose(CART_BOIN, data)
    assert (r.next_dose, r.stop) == (2, False)
    assert r.table["eliminated"].tolist() == [False, False, True, True, True]
    assert r.selected_now == 2
    text = format_next_dose(r)
    assert "DECISION: next cohort of 3 at dose 2" in text
    import json

    d = json.loads(json.dumps(r.to_dict()))
    assert d["next_dose"] == 2 and d["doses"][2]["eliminated"] is True and d["doses"][4]["p_isotonic"] is None


def test_cart_all_toxic_stops() -> None:
    # DL1: 3/3 DLTs -> DL1 eliminated -> stop, all doses too toxic, no dose selected.
    r = next_dose(CART_BOIN, _patients([(1, 1)] * 3))
    assert r.stop and r.next_dose is None and r.reason == "all doses too toxic" and r.selected_now is None
    assert "DECISION: stop the trial (all doses too toxic)" in format_next_dose(r)


# --------------------------------------------------------------------------- equal to decide() on reference data

CRM_DATA = load_reference("dfcrm", "crm_posterior.json")["datasets"]
DESIGNS = {
    "boin": lambda nd: BoinDesign(BoinConfig(target=0.25, n_doses=nd, max_n=60)),
    "3+3": lambda nd: ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=nd, allow_deescalation=True, max_n=60)),
}
if importlib.util.find_spec("escalade.design.crm") is not None:
    from escalade.design.registry import build_design

    def _crm(nd: int):
        sk = [0.05, 0.10, 0.20, 0.35, 0.50, 0.70][:nd] if nd <= 6 else None
        return build_design("crm", {"skeleton": sk}, {"target": 0.25, "n_doses": nd, "cohort_size": 3,
                                                      "max_n": 60})

    DESIGNS["crm"] = _crm


@pytest.mark.parametrize("kind", sorted(DESIGNS))
@pytest.mark.parametrize("case", sorted(CRM_DATA))
def test_next_dose_equals_decide_on_reference_data(case: str, kind: str) -> None:
    # crm_posterior.json datasets: patient-level (level, tox) sequences of dfcrm::crm's examples.
    c = CRM_DATA[case]
    levels, tox = c["level"], c["tox"]
    nd = len(load_reference("dfcrm", "crm_posterior.json")["skeletons"][c["skeleton"]]["value"])
    design = DESIGNS[kind](nd)
    r = next_dose(design, _patients(list(zip(levels, tox))))
    n = np.bincount(np.asarray(levels) - 1, minlength=nd)
    y = np.bincount(np.asarray(levels) - 1, weights=tox, minlength=nd).astype(int)
    run = 1
    while run < len(levels) and levels[-run - 1] == levels[-1]:
        run += 1
    last = min(run, 3)
    st = States.from_counts(n, y, current=levels[-1] - 1, last_n=last, last_tox=sum(tox[-last:]))
    dec = design.decide(st)
    assert r.stop == bool(dec.stop[0])
    assert r.next_dose == (None if dec.stop[0] else int(dec.dose[0]) + 1)
    assert r.states is not None and np.array_equal(r.states.matrix(), st.matrix())


# --------------------------------------------------------------------------- reading the file


def test_file_with_yes_no_dates_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    path.write_text(
        "# CAR-T trial, data cut 2025-03-31\n"
        "ID, Dose_Level, DLT, Response, Enrol_Date, notes\n"
        "P01,1,no,yes,2025-01-02,\n"
        "\n"
        "P02,1,No,NO,2025-01-09,\"CRS grade 2, resolved\"\n"
        "P03,1,0,1,2025-01-16,\n"
    )
    pts = read_patients(path, n_doses=5)
    assert [p.id for p in pts] == ["P01", "P02", "P03"]
    assert [p.line for p in pts] == [3, 5, 6]
    assert [p.response for p in pts] == [True, False, True]
    assert pts.ignored_columns == ("notes",)
    r = next_dose(CART_BOIN, path)
    assert r.next_dose == 2
    assert "column(s) not used by the decision: notes" in r.notes
    assert r.table["responses"].tolist() == [2, 0, 0, 0, 0]


def test_every_bad_row_is_reported_with_its_line_and_fix() -> None:
    data = ("id,dose_level,dlt,response,enrol_date\n"
            "P01,1,0,1,2025-01-02\n"
            "\n"
            "P01,6,maybe,1,2025-01-03\n"          # line 4: duplicate id, dose 6, dlt
            "P03,1.5,1,x,2025-02-30\n"            # line 5: dose, response, date
            "P04,1,,0,2025-01-01\n")              # line 6: blank dlt, date out of order
    with pytest.raises(PatientDataError) as info:
        next_dose(CART_BOIN, data, name="trial.csv")
    err = info.value
    got = {(p.line, p.field) for p in err.problems}
    assert got == {(4, "id"), (4, "dose_level"), (4, "dlt"), (5, "dose_level"), (5, "response"),
                   (5, "enrol_date"), (6, "dlt"), (6, "enrol_date")}
    msg = str(err)
    assert msg.startswith("trial.csv: 8 problem(s)")
    assert "line 4: dose_level = '6': must be between 1 and 5" in msg
    assert "line 6: dlt = (blank): write 0/no or 1/yes; if the DLT window is not over yet" in msg
    assert "line 4: id = 'P01': duplicate of line 2" in msg


def test_header_problems() -> None:
    with pytest.raises(PatientDataError, match="did you mean 'response'"):
        read_patients("id,dose_level,dlt,respons\nP1,1,0,1\n")
    with pytest.raises(PatientDataError, match="column 'dlt' is missing"):
        read_patients("id,dose_level\nP1,1\n")
    with pytest.raises(PatientDataError, match="the file is empty"):
        read_patients("\n\n")


def test_phase12_design_needs_every_response() -> None:
    with pytest.raises(PatientDataError, match="column 'response' is missing"):
        next_dose(ToyPhase12(), "id,dose_level,dlt\nP1,1,0\n")
    with pytest.raises(PatientDataError, match="line 3: response = \\(blank\\)"):
        next_dose(ToyPhase12(), "id,dose_level,dlt,response\nP1,1,0,1\nP2,1,0,\n")
    r = next_dose(ToyPhase12(), "id,dose_level,dlt,response\nP1,1,0,1\nP2,1,0,0\n")
    # toy rule: 0/2 DLT, 1/2 responses (not < 1/2) -> stay at dose 1
    assert r.next_dose == 1 and r.cohort_size == 2


def test_last_cohort_rules() -> None:
    # trailing run of 4 at dose 2 with cohorts of 3: the last cohort is the last 3, with a note
    pts = read_patients(_patients([(1, 0)] * 3 + [(2, 1), (2, 0), (2, 1), (2, 0)]), n_doses=5)
    st, notes = patients_states(pts, 5, cohort_size=3)
    assert (int(st.last_n[0]), int(st.last_tox[0])) == (3, 1)
    assert notes and "not a whole number of cohorts" in notes[0]
    # an explicit cohort column decides instead
    data = _csv([("P1", 1, 0, "A"), ("P2", 1, 0, "A"), ("P3", 2, 1, "B"), ("P4", 2, 1, "C")],
                header="id,dose_level,dlt,cohort")
    st, notes = patients_states(read_patients(data, n_doses=5), 5, cohort_size=3)
    assert (int(st.last_n[0]), int(st.last_tox[0]), notes) == (1, 1, [])
    with pytest.raises(PatientDataError, match="mixes doses"):
        bad = _csv([("P1", 1, 0, "A"), ("P2", 2, 0, "A")], header="id,dose_level,dlt,cohort")
        patients_states(read_patients(bad, n_doses=5), 5)


def test_no_patients_and_complete_trial() -> None:
    r = next_dose(CART_BOIN, "id,dose_level,dlt\n")
    assert (r.next_dose, r.cohort_size, r.n_patients) == (1, 3, 0)
    small = BoinDesign(BoinConfig(target=0.3, n_doses=3, max_n=6))
    r = next_dose(small, _patients([(1, 0)] * 3 + [(2, 0)] * 3))
    assert r.stop and r.reason == "max sample size" and r.selected_now == 2


def test_boin_estimates_are_select_mtd_estimates() -> None:
    data = _patients([(1, 0)] * 3 + [(2, 1), (2, 0), (2, 0)] + [(3, 1), (3, 1), (3, 0)] + [(2, 0)] * 3)
    r = next_dose(CART_BOIN, data)
    n = np.array([3, 6, 3, 0, 0])
    y = np.array([0, 1, 2, 0, 0])
    est = boin_estimates(n, y, n > 0, target=0.3)
    np.testing.assert_allclose(r.table["p_isotonic"], est.phat, equal_nan=True)
    np.testing.assert_allclose(r.table["p_overdose"], est.p_overdose, equal_nan=True)


def test_design_explain_is_included() -> None:
    class Explained(ThreePlusThreeDesign):
        def explain(self, states: States) -> pd.DataFrame:
            return pd.DataFrame({"dose": [1, 2], "why": ["a", "b"]})

    d = Explained(ThreePlusThreeConfig(n_doses=2))
    r = next_dose(d, _patients([(1, 0)] * 3))
    assert isinstance(r.explain, pd.DataFrame) and r.next_dose == 2
    assert r.table["why"].tolist() == ["a", "b"]
    assert "why" in format_next_dose(r)


@pytest.mark.skipif(importlib.util.find_spec("escalade.design.crm") is None, reason="no design/crm.py yet")
def test_crm_conduct_shows_the_fit() -> None:
    # crm_posterior.json D01_help_example: crm(prior = sk6, target = 0.2, tox, level, ...) gives
    # estimate -0.21217152630457572 and ptox as below; plain CRM (no restrictions) -> dfcrm's mtd.
    from escalade.design.registry import build_design

    c = CRM_DATA["D01_help_example"]
    fit = c["fits"]["empiric_bayes"]
    d = build_design("crm", {"skeleton": [0.05, 0.10, 0.20, 0.35, 0.50, 0.70], "no_skip": "off",
                             "coherence": "off"}, {"target": 0.2, "n_doses": 6, "max_n": 30})
    r = next_dose(d, _patients(list(zip(c["level"], c["tox"]))))
    assert r.details["estimate"] == pytest.approx(fit["estimate"], abs=1e-6)
    np.testing.assert_allclose(r.table["ptox"], fit["ptox"], atol=1e-6)
    assert r.next_dose == fit["mtd"]
    text = format_next_dose(r)
    assert "ptox" in text and "estimate = " in text
