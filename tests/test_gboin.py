"""gBOIN (Mu et al. 2019): scores, boundaries, decisions, selection, conduct.

References: BOIN's ``get.boundary`` (validation/reference/boin/boundaries.json) for
:math:`\\lambda_e, \\lambda_d` and elimination, since gBOIN's boundaries are BOIN's
applied to the mean normalised equivalent toxicity score; with 0/1 scores (one
AE type, weight 1 at the DLT grades only) gBOIN *is* BOIN on DLT counts, so its
decisions and selections must equal escalade's BOIN (validated against the BOIN
package) with the shared guardrails off.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_reference
from escalade.design.base import NO_DOSE, States, StopReason, is_graded
from escalade.design.errors import ConfigError, DesignError
from escalade.design.gboin import (GboinConfig, GboinDesign, response_scores, score_elimination,
                                   toxicity_scores)
from escalade.design.registry import build_design

BINARY = {"tox": [0, 0, 0, 1, 1, 1]}  # grade >= 3 is a DLT: nETS = DLT indicator


def _design(**kw) -> GboinDesign:
    base = dict(target=0.3, n_doses=5, cohort_size=3, max_n=30)
    base.update(kw)
    return GboinDesign(GboinConfig(**base))


def test_toxicity_scores_sum_weights_over_types_and_normalise() -> None:
    w = {"crs": [0, 0, 0.5, 1, 1.5, 2], "icans": [0, 0.25, 0.5, 1, 1.5, 2]}
    grades = {"crs": np.array([0, 2, 5, 3], np.int8), "icans": np.array([0, 1, 5, 4], np.int8)}
    got = toxicity_scores(grades, w)
    np.testing.assert_allclose(got, [0.0, 0.75 / 4, 1.0, 2.5 / 4])
    capped = toxicity_scores(grades, w, ets_max=2.0)  # ETS above 2 is capped at nETS = 1
    np.testing.assert_allclose(capped, [0.0, 0.375, 1.0, 1.0])
    # one AE type: boinet's sev.weight[g] / max(sev.weight)
    one = toxicity_scores({"hep": np.array([0, 1, 2, 3])}, {"hep": [0.0, 0.3, 1.0, 3.0, 3.0, 3.0]})
    np.testing.assert_allclose(one, [0, 0.1, 1 / 3, 1.0])


def test_scores_name_missing_types_and_categories_in_one_line() -> None:
    with pytest.raises(DesignError, match="'icans'.*lacks.*'crs'") as e:
        toxicity_scores({"crs": np.zeros(2, np.int8)}, {"icans": [0, 0, 0.5, 1, 1.5, 1.5]})
    assert "\n" not in str(e.value)
    with pytest.raises(DesignError, match="'vgpr'.*lacks"):
        response_scores(np.zeros(2, np.int8), ["cr", "pr", "nr"], {"vgpr": 1.0})
    with pytest.raises(DesignError, match="0-5"):
        toxicity_scores({"crs": np.array([6])}, None)
    d = _design(severity_weights={"neutropenia": [0, 0, 0, 1, 1, 1]})
    with pytest.raises(DesignError, match="neutropenia"):
        d.patient_scores({"crs": np.zeros(3, np.int8)}, np.zeros(3, np.int8), ["cr", "nr"])


def test_config_checks_say_the_fix() -> None:
    with pytest.raises(ConfigError, match="six weights|6 weights"):
        GboinConfig(target=0.3, n_doses=3, severity_weights={"crs": [0, 1]})
    with pytest.raises(ConfigError, match="non-decreasing"):
        GboinConfig(target=0.3, n_doses=3, severity_weights={"crs": [0, 1, 0.5, 1, 1, 1]})
    with pytest.raises(ConfigError, match="p_saf = 0.35 .*must be below the target"):
        GboinConfig(target=0.3, n_doses=3, p_saf=0.35)
    with pytest.raises(ConfigError, match="ets_max"):
        GboinConfig(target=0.3, n_doses=3, ets_max=0)


@pytest.mark.parametrize("case", ["target0.15_cs3_nc10", "target0.25_cs3_nc10", "target0.30_cs3_nc10",
                                  "target0.35_cs3_nc10"])
def test_boundaries_are_boins_get_boundary(case: str) -> None:
    ref = load_reference("boin", "boundaries.json")["cases"][case]
    target = float(ref["args"]["target"])
    d = _design(target=target)
    b = d.decision_table()
    assert b.lambda_e == pytest.approx(float(ref["lambda_e"]), abs=1e-12)
    assert b.lambda_d == pytest.approx(float(ref["lambda_d"]), abs=1e-12)
    full = ref["full_table"]
    for n, esc, de, el in zip(full["n"], full["escalate_if_ntox_le"], full["deescalate_if_ntox_ge"],
                              full["eliminate_if_ntox_ge"]):
        # integer DLT counts: the continuous thresholds give BOIN's integer table
        assert esc == int(np.floor(b.lambda_e * n + 1e-12))
        assert de == min(int(np.floor(b.lambda_d * n)) + 1, n + 1 if el is None else el)  # get.boundary caps at el
        cut = b.eliminate_at(n)
        if el is None:
            assert cut is None or cut >= n - 1e-9 or n < 3
        else:
            assert el - 1 <= cut < el  # y = el eliminates, y = el - 1 does not


def _binary_states(rng: np.random.Generator, s: int, nd: int = 5) -> States:
    n = rng.integers(0, 4, size=(s, nd)) * 3
    cur = np.array([rng.choice(np.nonzero(r)[0]) if r.any() else 0 for r in n])
    n[np.arange(s), cur] = np.maximum(n[np.arange(s), cur], 3)
    tox = rng.binomial(n, rng.uniform(0.05, 0.6, size=(s, 1)))
    return States.from_counts(n, tox, current=cur, tox_score=tox.astype(float))


def test_with_binary_scores_gboin_is_boin() -> None:
    """0/1 scores: decisions and the final MTD equal BOIN's (guardrails off, as gBOIN has none)."""
    states = _binary_states(np.random.default_rng(11), 4000)
    g = _design(no_escalation_after_dlts="off")
    b = build_design("boin", {"no_escalation_after_dlts": "off"}, {"target": 0.3, "n_doses": 5, "cohort_size": 3,
                                                                     "max_n": 30})
    dg, db = g.decide(states), b.decide(states)
    np.testing.assert_array_equal(dg.dose, db.dose)
    np.testing.assert_array_equal(dg.reason, db.reason)
    np.testing.assert_array_equal(g.select(states), b.select(states))
    # weights 1 at grades 3-5 turn grades into exactly these 0/1 scores
    t, e = _design(severity_weights=BINARY).patient_scores({"tox": np.array([0, 2, 3, 5], np.int8)},
                                                            np.zeros(4, np.int8), ["r"])
    assert t.tolist() == [0.0, 0.0, 1.0, 1.0] and not e.any()


def test_fractional_scores_decide_on_the_mean_nets() -> None:
    d = _design()  # lambda_e 0.2365, lambda_d 0.3585
    st = States.from_counts([[3, 0, 0, 0, 0]] * 3, [[0] * 5] * 3, current=0,
                            tox_score=[[0.70, 0, 0, 0, 0], [0.75, 0, 0, 0, 0], [1.08, 0, 0, 0, 0]])
    assert d.decide(st).dose.tolist() == [1, 0, 0]  # 0.233 <= lambda_e; 0.25 stays; 0.36 >= lambda_d (lowest: stay)
    up = States.from_counts([[3, 3, 0, 0, 0]], [[0, 0, 0, 0, 0]], current=1, tox_score=[[0.0, 1.2, 0, 0, 0]])
    assert d.decide(up).dose.tolist() == [0]


def test_boundaries_inclusive_as_in_the_paper() -> None:
    """Mu et al. (2019): escalate if the mean nETS <= lambda_e, de-escalate if >= lambda_d."""
    d = _design()
    b = d.boundaries
    st = States.from_counts([[0, 1, 0, 0, 0]] * 2, [[0] * 5] * 2, current=1,
                            tox_score=[[0, b.lambda_e, 0, 0, 0], [0, b.lambda_d, 0, 0, 0]])
    assert d.decide(st).dose.tolist() == [2, 0]


def test_elimination_and_stop_for_toxicity() -> None:
    d = _design()
    # 3 patients with total nETS 2.5 at dose 1: Pr(p > 0.3) > 0.95, every dose eliminated: stop
    st = States.from_counts([[3, 0, 0, 0, 0]], [[0] * 5], current=0, tox_score=[[2.5, 0, 0, 0, 0]])
    assert score_elimination(st.n, st.tox_score, target=0.3, cutoff_eli=0.95)[0].all()
    dec = d.decide(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.ALL_TOXIC
    assert d.select(st)[0] == NO_DOSE
    # dose 3 eliminated: escalating from dose 2 stays
    st = States.from_counts([[3, 3, 3, 0, 0]], [[0] * 5], current=1, tox_score=[[0, 0, 2.5, 0, 0]])
    assert d.decide(st).dose[0] == 1
    assert d.select(st)[0] in (0, 1)


def test_batched_equals_one_at_a_time_and_memo_keys_on_scores() -> None:
    rng = np.random.default_rng(3)
    base = _binary_states(rng, 60)
    st = States.from_counts(base.n, base.tox, current=base.current,
                            tox_score=base.tox + 0.4 * rng.random(base.n.shape) * (base.n - base.tox))
    d = _design()
    full = d.decide(st)
    for i in range(0, 60, 9):
        one = d.decide(st.take([i]))
        assert (one.dose[0], one.reason[0]) == (full.dose[i], full.reason[i])
    # two states equal in counts but not in scores stay distinct under unique()
    two = States.from_counts([[3, 0, 0, 0, 0]] * 2, [[0] * 5] * 2, current=0,
                             tox_score=[[0.5, 0, 0, 0, 0], [1.5, 0, 0, 0, 0]])
    uniq, inv = two.unique()
    assert uniq.n_states == 2 and d.decide(two).dose.tolist() == [1, 0]


def test_registered_graded_and_explained() -> None:
    d = build_design("gboin", {}, {"target": 0.3, "n_doses": 4, "cohort_size": 3, "max_n": 24})
    assert is_graded(d) and not build_design("boin", {}, {"target": 0.3, "n_doses": 4}).graded
    st = States.from_counts([[3, 3, 0, 0]], [[0, 1, 0, 0]], current=1, tox_score=[[0.3, 1.0, 0, 0]])
    ex = d.explain(st)
    assert ex.table()["mean_nets"][:2] == pytest.approx([0.1, 1 / 3])
    assert ex.details()["current_dose"] == 2
    with pytest.raises(DesignError, match="no toxicity scores"):
        d.decide(States.from_counts([[3, 0, 0, 0]], [[0, 0, 0, 0]]))


def test_conduct_reads_grades_and_answers(tmp_path) -> None:
    from escalade.simulations.conduct import next_dose
    from escalade.simulations.patients_csv import PatientDataError

    d = build_design("gboin", {"severity_weights": {"crs": [0, 0, 0.5, 1, 1.5, 1.5],
                                                    "icans": [0, 0, 0.5, 1, 1.5, 1.5]}},
                     {"target": 0.3, "n_doses": 4, "cohort_size": 3, "max_n": 24})
    csv = ("id,dose_level,dlt,grade_crs,grade_icans\nP1,1,0,1,0\nP2,1,0,2,0\nP3,1,0,0,0\n"
           "P4,2,1,3,2\nP5,2,0,2,2\nP6,2,0,1,0\n")
    r = next_dose(d, csv)
    # dose 2: nETS (1 + 0.5) / 3, (0.5 + 0.5) / 3, 0 -> mean 0.278: stay
    assert r.states.tox_score[0].tolist() == pytest.approx([0.5 / 3, 2.5 / 3, 0, 0])
    assert r.next_dose == 2 and not r.stop
    with pytest.raises(PatientDataError, match="grade_crs = '7'"):
        next_dose(d, csv.replace("P6,2,0,1,0", "P6,2,0,7,0"))
    with pytest.raises(PatientDataError, match="'icans'.*lacks"):
        next_dose(d, "id,dose_level,dlt,grade_crs\nP1,1,0,1\n")
    with pytest.raises(PatientDataError, match="no grade_<type> column"):
        next_dose(d, "id,dose_level,dlt\nP1,1,0\n")


@pytest.mark.parametrize("module", ["escalade.design.gboin", "escalade.design.gboin_et"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
