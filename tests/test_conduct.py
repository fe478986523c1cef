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
# validation/reference/boin/README.md): n = 3: escalate if DLTs <= 0, de-escalate if >= 2, eliminate if >= 3;
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


# =========================================================================== pending data (TITE designs)

import datetime as dt  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from escalade.design.tite_boin import TiteBoinConfig, TiteBoinDesign, tite_boin_rules  # noqa: E402
from escalade.design.tite_crm import TiteCrmConfig, TiteCrmDesign  # noqa: E402

AS_OF = dt.date(2025, 6, 30)
TITE_REF = load_reference("dfcrm", "titecrm.json")
EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "scenarios" / "patients_example.csv"
CART_TITE_CRM = TiteCrmDesign(TiteCrmConfig(target=0.30, n_doses=5, skeleton=(0.12, 0.20, 0.30, 0.40, 0.50),
                                            cohort_size=3, max_n=30, safety_threshold=0.90))
CART_TITE_BOIN = TiteBoinDesign(TiteBoinConfig(target=0.30, n_doses=5, cohort_size=3, max_n=30, cutoff_eli=0.95,
                                               extrasafe=True))


def _day(offset: int) -> str:
    return (AS_OF + dt.timedelta(days=offset)).isoformat()


def _dated(rows: list[tuple[int, int, int, int | None]]) -> str:
    """CSV from (dose_level, dlt, enrol day, DLT day after enrolment or None); days relative to AS_OF."""
    lines = ["id,dose_level,dlt,enrol_date,dlt_date"]
    for i, (d, y, enrol, dlt_day) in enumerate(rows):
        lines.append(f"P{i + 1:02d},{d},{y},{_day(enrol)},{'' if dlt_day is None else _day(enrol + dlt_day)}")
    return "\n".join(lines) + "\n"


def _dfcrm_rows(ds: dict) -> list[tuple[int, int, int, int | None]]:
    """dfcrm's (level, tox, followup) as dated rows: a patient without DLT enrolled ``followup`` days before
    AS_OF; a patient with a DLT enrolled with the patient before, the DLT ``followup`` days later."""
    rows: list[tuple[int, int, int, int | None]] = []
    for lev, tox, fu in zip(ds["level"], ds["tox"], ds["followup"]):
        if tox:
            rows.append((lev, 1, rows[-1][2], fu))
        else:
            rows.append((lev, 0, -fu, None))
    return rows


@pytest.mark.parametrize("case", ["T02_partial_followup_9pts", "T03_partial_followup_12pts_target030"])
@pytest.mark.parametrize("scheme", ["linear", "adaptive"])
def test_tite_crm_next_dose_from_dates_is_dfcrm_titecrm(case: str, scheme: str) -> None:
    # titecrm.json: dfcrm::titecrm(prior, target, tox, level, followup, obswin = 28, scheme, method = "bayes",
    # scale = sqrt(1.34)) (exact calls in the file). The same patients written as dates give the same weights,
    # posterior mean and ptox, and the next dose is dfcrm's mtd (never more than one level above the current).
    ds = TITE_REF["datasets"][case]
    fit = ds["fits"]["empiric_bayes" if scheme == "linear" else "empiric_bayes_adaptive"]
    sk = tuple(TITE_REF["skeletons"][ds["skeleton"]]["value"])
    design = TiteCrmDesign(TiteCrmConfig(target=ds["target"], n_doses=len(sk), skeleton=sk, scheme=scheme))
    r = next_dose(design, _dated(_dfcrm_rows(ds)), as_of=AS_OF, dlt_window_days=ds["obswin"])
    np.testing.assert_allclose(r.explain.weights, fit["weights"], atol=1e-12, rtol=0)
    assert r.details["estimate"] == pytest.approx(fit["estimate"], abs=1e-6)
    np.testing.assert_allclose(r.table["ptox"], fit["ptox"], atol=1e-6, rtol=0)
    assert r.next_dose == fit["mtd"] and not r.suspend
    pend = r.pending
    pending_w = [w for w, y, fu in zip(fit["weights"], ds["tox"], ds["followup"]) if not y and fu < ds["obswin"]]
    assert pend["weight"].tolist() == pytest.approx(pending_w, abs=1e-12)
    assert pend["days"].tolist() == [fu for y, fu in zip(ds["tox"], ds["followup"]) if not y and fu < ds["obswin"]]


def test_tite_crm_weights_by_hand() -> None:
    # T02 of titecrm.json as dates, window 28 days, as of 2025-06-30:
    #   P01-P04 enrolled 2025-06-02 (28 days: window over) -> weight 1
    #   P05 DLT on day 10 (2025-06-12) -> weight 1 (an observed DLT always counts fully)
    #   P06 enrolled 2025-06-10: 20 days -> linear weight 20/28 = 0.714286
    #   P07 2025-06-16: 14/28 = 0.5;  P08 2025-06-23: 7/28 = 0.25;  P09 2025-06-28: 2/28 = 0.071429
    # Adaptive (Cheung & Chappell 2000): one DLT, at t = 10/28; z = 1
    #   P06: u = 20 >= 10 -> (1 + (20 - 10)/(28 - 10)) / 2 = (1 + 0.5556) / 2 = 0.777778
    #   P07: (1 + (14 - 10)/18) / 2 = 0.611111;  P08: u = 7 < 10 -> (7/10) / 2 = 0.35;  P09: (2/10) / 2 = 0.1
    ds = TITE_REF["datasets"]["T02_partial_followup_9pts"]
    sk = tuple(TITE_REF["skeletons"]["sk5"]["value"])
    data = _dated(_dfcrm_rows(ds))
    assert "P06,2,0,2025-06-10," in data and "P05,2,1,2025-06-02,2025-06-12" in data
    for scheme, want in [("linear", [20 / 28, 0.5, 0.25, 2 / 28]), ("adaptive", [0.777778, 0.611111, 0.35, 0.1])]:
        d = TiteCrmDesign(TiteCrmConfig(target=0.25, n_doses=5, skeleton=sk, scheme=scheme))
        r = next_dose(d, data, as_of=AS_OF, dlt_window_days=28)
        assert r.pending["id"].tolist() == ["P06", "P07", "P08", "P09"]
        assert r.pending["days"].tolist() == [20, 14, 7, 2]
        np.testing.assert_allclose(r.pending["weight"], want, atol=1e-6)
        assert r.pending["window_ends"].tolist()[0] == "2025-07-08"  # 2025-06-10 + 28 days
        text = format_next_dose(r)
        assert "Pending patients (no DLT yet, DLT window not over): 4" in text and "P09" in text


def test_tite_crm_follow_up_changes_the_answer() -> None:
    # CAR-T TITE-CRM (target 0.30, skeleton 0.12..0.50): DL1 0/3 complete, DL2: P04 enrolled 21 days ago,
    # P05 DLT on day 9, P06 enrolled 7 days ago. Linear weights: P04 21/28 = 0.75, P06 7/28 = 0.25.
    # Every window over (as of 2025-06-30) -> weights 1: the data equal complete data and the answer is
    # decide() on the counts; the answers differ only through the weights.
    r_now = next_dose(CART_TITE_CRM, EXAMPLE_CSV, as_of=dt.date(2025, 4, 14), dlt_window_days=28)
    assert r_now.pending["weight"].tolist() == pytest.approx([0.75, 0.25])
    assert r_now.details["effective_n"] == pytest.approx(6 - 0.25 - 0.75)
    r_late = next_dose(CART_TITE_CRM, EXAMPLE_CSV, as_of=dt.date(2025, 6, 30), dlt_window_days=28)
    assert len(r_late.pending) == 0
    st = States.from_counts([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, last_n=3, last_tox=1)
    assert r_late.next_dose == int(CART_TITE_CRM.decide(st).dose[0]) + 1
    # partial follow-up makes DL2 look more toxic than complete data do
    assert r_now.table["ptox"][1] > r_late.table["ptox"][1]


# The published TITE-BOIN decision table for target 0.2 and cohorts of 3 (Yuan, Lin, Li, Nie & Warren 2018,
# Clin Cancer Res 24:4921, as reproduced in Table 1 of PMC9260438; the full table is in tests/test_tite_boin.py
# and `escalade boundaries --target 0.2 --tite` prints escalade's version). Each case: n patients at the
# current dose (DL2, after 3 complete patients without DLT at DL1), y DLTs, the follow-up days of the pending
# patients (window 30 days, so STFT = sum(days) / 30), and the published action.
TITE20 = TiteBoinDesign(TiteBoinConfig(target=0.2, n_doses=5, cohort_size=3, max_n=30))
PUBLISHED_CELLS = [
    # (n, y, pending days, action, published row)
    (3, 0, [15], "escalate", "3 0 <=1: escalate"),
    (3, 0, [20, 10], "suspend", "3 0 >=2: suspend accrual"),
    (3, 1, [29, 29], "de-escalate", "3 1 <=2: de-escalate (whatever the STFT)"),
    (6, 0, [5, 5, 5], "escalate", "6 0 <=3: escalate"),
    (6, 1, [1, 1, 1], "stay", "6 1 <=3: stay"),
    (6, 1, [25, 25, 25, 25], "suspend", "6 1 >=4: suspend accrual"),
    (9, 1, [10, 8, 6], "escalate", "9 1 3: escalate if STFT >= 0.77; STFT = 24/30 = 0.80"),
    (9, 1, [9, 7, 5], "stay", "9 1 3: STFT = 21/30 = 0.70 < 0.77: stay"),
    (9, 1, [20, 20, 15, 10], "escalate", "9 1 4: escalate if STFT >= 2.15; STFT = 65/30 = 2.17"),
    (9, 1, [20, 20, 15, 9], "stay", "9 1 4: STFT = 64/30 = 2.13 < 2.15: stay"),
    (9, 2, [15], "de-escalate", "9 2 1: de-escalate if STFT <= 0.52; STFT = 15/30 = 0.50"),
    (9, 2, [16], "stay", "9 2 1: STFT = 16/30 = 0.53 > 0.52: stay"),
    (9, 2, [25, 25, 25, 5, 5], "suspend", "9 2 >=5: suspend accrual"),
]


def _tite_boin_cell(n: int, y: int, pending_days: list[int]) -> str:
    rows: list[tuple[int, int, int, int | None]] = [(1, 0, -200, None)] * 3
    complete = n - y - len(pending_days)
    rows += [(2, 1, -100, 3)] * y + [(2, 0, -90, None)] * complete
    rows += [(2, 0, -d, None) for d in sorted(pending_days, reverse=True)]
    return _dated(rows)


@pytest.mark.parametrize("n,y,days,action,row", PUBLISHED_CELLS, ids=[c[4] for c in PUBLISHED_CELLS])
def test_tite_boin_next_dose_follows_the_published_table(n: int, y: int, days: list[int], action: str,
                                                         row: str) -> None:
    r = next_dose(TITE20, _tite_boin_cell(n, y, days), as_of=AS_OF, dlt_window_days=30)
    got = "suspend" if r.suspend else {1: "de-escalate", 2: "stay", 3: "escalate"}[r.next_dose]
    assert got == action
    assert r.details["n_at_current"] == n and r.details["dlt_at_current"] == y
    assert r.details["pending_at_current"] == len(days)
    assert r.details["stft"] == pytest.approx(sum(days) / 30)
    assert sorted(r.pending["days"].tolist(), reverse=True) == sorted(days, reverse=True)
    # escalade's own table (tite_boin_rules, printed by `escalade boundaries --tite`) says the same
    rule = next(t for t in tite_boin_rules(TITE20.config, [n])
                if t.y <= y <= (t.y_max or t.y) and t.pending_min <= len(days) <= t.pending_max)
    if rule.action == "depends on STFT":
        stft = sum(days) / 30
        want = ("escalate" if rule.escalate_at is not None and stft >= rule.escalate_at else
                "de-escalate" if rule.deescalate_at is not None and stft <= rule.deescalate_at else "stay")
    else:
        want = rule.action
    assert want == action


def test_tite_boin_suspends_accrual_on_the_example_file() -> None:
    # scenarios/patients_example.csv as of 2025-04-14 with the CAR-T TITE-BOIN (target 0.30, window 28 days):
    # at DL2 n = 3: P04 (enrolled 2025-03-24, 21 days, pending), P05 (DLT 2025-04-09), P06 (2025-04-07, 7 days,
    # pending) -> c = 2 pending > 50% of 3 -> suspend accrual. Effective counts: STFT = 21/28 + 7/28 = 1.0,
    # p~ = (1 + 0.15)/(3 - 2 + 1) = 0.575, p^ = (1 + (2 - 1.0) * 0.575/0.425)/3 = 0.7843.
    r = next_dose(CART_TITE_BOIN, EXAMPLE_CSV, as_of=dt.date(2025, 4, 14), dlt_window_days=28)
    assert r.suspend and r.next_dose is None and not r.stop and r.reason == "suspend accrual"
    assert r.details["stft"] == pytest.approx(1.0) and r.details["pending_at_current"] == 2
    assert r.details["p_tilde"] == pytest.approx(0.575) and r.details["p_hat"] == pytest.approx(0.784314, abs=1e-6)
    assert r.pending["weight"].tolist() == pytest.approx([0.75, 0.25])
    text = format_next_dose(r)
    assert "DECISION: suspend accrual" in text and "2025-04-21, patient P04" in text
    assert r.to_dict()["suspend"] is True
    # a week later P04's window is over: c = 1 (P06, 14 days) <= 1.5 -> no suspension. y/n = 1/3 > 0.3:
    # p~ = 1.15/3 = 0.3833, p^ = (1 + (1 - 0.5) * 0.3833/0.6167)/3 = 0.4369 >= lambda_d 0.3585 -> de-escalate.
    r = next_dose(CART_TITE_BOIN, EXAMPLE_CSV, as_of=dt.date(2025, 4, 21), dlt_window_days=28)
    assert not r.suspend and r.next_dose == 1
    assert r.details["p_hat"] == pytest.approx(0.436937, abs=1e-6)


def test_pending_question_is_the_timed_engines() -> None:
    # conduct builds States and FollowUp with timed.pending_data, as the time-aware engine: the counts are
    # patients_states' and the fractions follow-up / window
    r = next_dose(TITE20, _tite_boin_cell(9, 1, [10, 8, 6]), as_of=AS_OF, dlt_window_days=30)
    st, _ = patients_states(read_patients(_tite_boin_cell(9, 1, [10, 8, 6])), 5, cohort_size=3)
    assert np.array_equal(r.states.matrix(), st.matrix())


# --------------------------------------------------------------------------- dates: errors naming the line


def _err(design, data: str, **kw) -> str:
    kw.setdefault("as_of", AS_OF)
    kw.setdefault("dlt_window_days", 28)
    with pytest.raises(PatientDataError) as info:
        next_dose(design, data, name="trial.csv", **kw)
    return str(info.value)


def test_tite_design_needs_dates() -> None:
    msg = _err(CART_TITE_CRM, _patients([(1, 0)] * 3))
    assert "line 1: header" in msg and "column 'enrol_date' is missing" in msg
    msg = _err(CART_TITE_BOIN, "id,dose_level,dlt,enrol_date\nP1,1,0,2025-06-01\nP2,1,0,\nP3,1,1,2025-06-02\n")
    assert "line 3: enrol_date = (blank)" in msg
    # thousands of bad rows: every one is kept, the message shows the first 30
    many = "id,dose_level,dlt,enrol_date\n" + "".join(f"P{i},1,0,\n" for i in range(1000))
    with pytest.raises(PatientDataError) as info:
        next_dose(CART_TITE_BOIN, many, as_of=AS_OF, dlt_window_days=28)
    assert len(info.value.problems) == 1000
    assert str(info.value).count("\n") == 31 and str(info.value).endswith("and 970 more problem(s) of the same kinds")
    assert "line 4: dlt_date = (blank): missing (no dlt_date column)" in msg
    # a design on complete data does not need them
    assert next_dose(CART_BOIN, _patients([(1, 0)] * 3), as_of=AS_OF, dlt_window_days=28).next_dose == 2


def test_bad_dates_are_errors_naming_the_line() -> None:
    data = ("id,dose_level,dlt,enrol_date,dlt_date,response_date\n"
            "P1,1,1,2025-06-01,2025-05-30,\n"        # line 2: DLT before enrolment
            "P2,1,1,2025-06-01,2025-06-30,\n"        # line 3: DLT on day 29 of a 28-day window
            "P3,1,0,2025-06-02,2025-06-05,\n"        # line 4: DLT date with dlt = 0
            "P4,1,0,2025-06-03,,2025-06-01\n"        # line 5: response before enrolment
            "P5,1,0,2025-07-02,,\n")                 # line 6: enrolled after the as-of date
    msg = _err(CART_TITE_CRM, data)
    assert msg.startswith("trial.csv: 5 problem(s)")
    assert "line 2: dlt_date = '2025-05-30': is before enrol_date 2025-06-01" in msg
    assert "line 3: dlt_date = '2025-06-30': is day 29 after enrol_date, outside the 28-day DLT window" in msg
    assert "line 4: dlt_date = '2025-06-05': given but dlt = 0" in msg
    assert "line 5: response_date = '2025-06-01': is before enrol_date" in msg
    assert "line 6: enrol_date = '2025-07-02': is after the decision date 2025-06-30 (--as-of)" in msg
    # the same checks for designs on complete data, and for patients already read
    assert "outside the 28-day DLT window" in _err(CART_BOIN, data)
    pts = read_patients("id,dose_level,dlt,enrol_date\nP1,1,0,2025-07-02\n")
    assert "line 2: enrol_date = '2025-07-02': is after the decision date" in _err(CART_TITE_BOIN, pts)
    # a future DLT date is an error too; a DLT on the last day of the window is not
    ok = "id,dose_level,dlt,enrol_date,dlt_date\nP1,1,1,2025-06-01,2025-06-29\n"
    assert next_dose(CART_TITE_CRM, ok, as_of=AS_OF, dlt_window_days=28).n_patients == 1
    assert "is after the decision date" in _err(CART_TITE_CRM, ok, as_of=dt.date(2025, 6, 28))


def test_date_column_typos_are_caught_and_other_dates_kept() -> None:
    with pytest.raises(PatientDataError, match="did you mean 'enrol_date'"):
        read_patients("id,dose_level,dlt,enroll_date\nP1,1,0,2025-06-01\n")
    pts = read_patients("id,dose_level,dlt,death_date\nP1,1,0,2025-06-01\n")
    assert pts[0].dates == (("death_date", dt.date(2025, 6, 1)),)


# --------------------------------------------------------------------------- files that are not UTF-8 CSV


@pytest.mark.parametrize("kind", ["latin1", "utf16", "directory", "missing"])
def test_unreadable_files_are_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "patients.csv"
    text = "id,dose_level,dlt,notes\nP1,1,0,Müller\n"
    if kind == "latin1":
        path.write_bytes(text.encode("latin-1"))
        want = "line 2: byte 0xfc is not UTF-8"
    elif kind == "utf16":
        path.write_bytes(text.encode("utf-16"))
        want = "is UTF-16 text"
    elif kind == "directory":
        path.mkdir()
        want = "is a directory"
    else:
        want = "no such file"
    with pytest.raises(PatientDataError) as info:
        next_dose(CART_BOIN, path)
    msg = str(info.value)
    assert want in msg and msg.startswith(str(path)) and "\n" not in msg
    if kind in ("latin1", "utf16"):
        assert "save it as UTF-8" in msg
    # UTF-8, with or without a byte-order mark, is read
    if kind == "latin1":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        assert read_patients(path)[0].id == "P1"


# --------------------------------------------------------------------------- linear in rows


def _timed_next_dose(design, data: Any, k: int, **kw) -> float:
    """Best of two runs on ``k`` and ``k + 1`` rows (different counts: nothing cached from one to the other)."""
    best = float("inf")
    for extra in range(2):
        text = data(k + extra)
        t0 = time.perf_counter()
        next_dose(design, text, **kw)
        best = min(best, time.perf_counter() - t0)
    return best


def test_reading_and_deciding_is_linear_in_rows() -> None:
    # All patients at one dose was quadratic (8,000 rows: 76 s, from BOIN's elimination table built for every
    # n up to the count). Eight times the rows must cost far less than 64 times the time; and 20,000 rows
    # must take well under 5 s.
    def rows(k: int) -> str:
        return _csv([(f"P{i}", 1, int(i % 7 == 0), "2025-01-01", "2025-01-05" if i % 7 == 0 else "")
                     for i in range(k)], header="id,dose_level,dlt,enrol_date,dlt_date")

    next_dose(CART_BOIN, rows(10))  # warm up
    t_small = _timed_next_dose(CART_BOIN, rows, 1_000)
    assert t_small < 0.5  # quadratic: about 3 s here; linear: about 0.01 s
    t_8x = _timed_next_dose(CART_BOIN, rows, 8_000)
    assert t_8x < 20 * max(t_small, 0.01), (t_small, t_8x)  # linear: about 8 times; quadratic: 64 times
    assert _timed_next_dose(CART_BOIN, rows, 20_000) < 5.0
    # TITE designs on the same number of dated rows
    assert _timed_next_dose(CART_TITE_BOIN, rows, 20_000, as_of=AS_OF, dlt_window_days=28) < 5.0


# --------------------------------------------------------------------------- warnings


def test_warning_untried_dose_two_levels_up() -> None:
    from escalade.design.registry import build_design

    # CRM without its no-skipping rule: after 0/3 at DL1 the fit puts the target at DL4 (two untried doses skipped)
    d = build_design("crm", {"skeleton": [0.12, 0.20, 0.30, 0.40, 0.50], "no_skip": "off", "coherence": "off"},
                     {"target": 0.30, "n_doses": 5, "cohort_size": 3, "max_n": 30})
    r = next_dose(d, _patients([(1, 0)] * 3))
    assert r.next_dose >= 3
    assert any(f"the answer, dose {r.next_dose}, is untried and more than one level above the highest dose tried (1)"
               in w for w in r.warnings)
    assert "WARNING: the answer" in format_next_dose(r)
    # with the rule on, no such warning
    safe = build_design("crm", {"skeleton": [0.12, 0.20, 0.30, 0.40, 0.50]},
                        {"target": 0.30, "n_doses": 5, "cohort_size": 3, "max_n": 30})
    r = next_dose(safe, _patients([(1, 0)] * 3))
    assert r.next_dose == 2 and not any("more than one level" in w for w in r.warnings)


def test_warning_estimated_p_dlt_above_target() -> None:
    # BOIN stays at DL2 after 1/3 (escalate needs 0, de-escalate 2), but its isotonic estimate there is
    # (1 + 0.05)/(3 + 0.1) = 0.339 > 0.30 (select.mtd's adjusted estimate): say so.
    r = next_dose(CART_BOIN, _patients([(1, 0)] * 3 + [(2, 0), (2, 1), (2, 0)]))
    assert r.next_dose == 2
    assert any("the estimated P(DLT) at the answer, dose 2, is 0.34 (p_isotonic), above the target 0.3" in w
               for w in r.warnings)
    r = next_dose(CART_BOIN, _patients([(1, 0)] * 3))
    assert r.warnings == ()


def test_warning_data_skip_a_dose_and_exceed_max_n() -> None:
    r = next_dose(CART_BOIN, _patients([(1, 0)] * 3 + [(3, 0)] * 3))
    assert any("the data skip a dose: line 5 (P04) at dose 3 when the highest dose given was 1" in w
               for w in r.warnings)
    r = next_dose(CART_BOIN, _patients([(2, 0)] * 3))
    assert any("line 2 (P01) at dose 2 above the start dose 1" in w for w in r.warnings)
    r = next_dose(CART_BOIN, _patients([(1, 0)] * 3 + [(2, 0)] * 3 + [(3, 0)] * 27))
    assert r.stop and any("33 patients, more than the design's max_n (30)" in w for w in r.warnings)
    r = next_dose(CART_BOIN, _patients([(1, 0)] * 3 + [(2, 0)] * 27))
    assert not any("max_n" in w for w in r.warnings)  # exactly max_n: the trial is complete, no warning


def test_selected_dose_never_given_is_said() -> None:
    # CRM (coherent, no skipping) after DL1 0/3, DL2 1/3: stays at DL2, but the fit's dose closest to the
    # target is DL3 (ptox 0.31), which nobody has received.
    from escalade.design.registry import build_design

    d = build_design("crm", {"skeleton": [0.12, 0.20, 0.30, 0.40, 0.50]},
                     {"target": 0.30, "n_doses": 5, "cohort_size": 3, "max_n": 30})
    r = next_dose(d, _patients([(1, 0)] * 3 + [(2, 0), (2, 1), (2, 0)]))
    assert (r.next_dose, r.selected_now, r.selected_now_untried) == (2, 3, True)
    text = format_next_dose(r)
    assert "Dose selected if the trial ended now: 3 (no patient has received this dose)" in text
    assert any("dose 3, has not been given to any patient" in w for w in r.warnings)
    assert r.to_dict()["selected_now_untried"] is True
    r = next_dose(CART_BOIN, _patients([(1, 0)] * 3))
    assert "Dose selected if the trial ended now: 1\n" in format_next_dose(r) + "\n"


def test_warning_complete_data_design_with_patients_in_the_window() -> None:
    data = _dated([(1, 0, -60, None), (1, 0, -40, None), (1, 0, -10, None)])
    r = next_dose(CART_BOIN, data, as_of=AS_OF, dlt_window_days=28)
    assert any("1 patient(s) without a DLT are still inside the 28-day DLT window as of 2025-06-30 (P03)" in w
               for w in r.warnings)
    r = next_dose(CART_BOIN, data, as_of=AS_OF + dt.timedelta(days=30), dlt_window_days=28)
    assert r.warnings == ()
