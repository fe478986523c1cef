"""The CAR-T patient in the engine: bit-identical without the sections, CRN and workers with them, the hook.

``PINNED`` is ``results_hash`` of ``_cart_study.PLAIN_TEXT`` (run_study, backend sequential) computed
at commit c46a790, before the CAR-T sections existed; a study without them must keep these numbers.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _cart_study import cart_study, plain_study
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.scenarios.errors import EscaladeError
from escalade.simulations.oc import Truth, trial_table
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.study_run import results_hash, run_study
from escalade.simulations.unit_file import pack, unpack

PINNED = "6121fb14cb40a95776aae33e1cd9eb16de609d0fb682d379757510f73080318c"
BOIN = BoinDesign(BoinConfig(target=0.3, n_doses=4, max_n=21))
FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "trial")


def _same(a, b) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert (a.extra is None) == (b.extra is None)
    for k in a.extra or {}:
        np.testing.assert_array_equal(a.extra[k], b.extra[k], err_msg=k)


def _spec(s, timing=None):
    return ScenarioSpec(s.name, s.p_dlt, s.p_response, s.association, timing, 28.0, 90.0, s.cart)


def test_a_study_without_the_sections_keeps_its_numbers() -> None:
    assert results_hash(run_study(plain_study(), backend="sequential").outcomes) == PINNED


def test_adding_a_graded_scenario_changes_no_other_scenario() -> None:
    plain = run_study(plain_study(), backend="sequential", n_trials=200).outcomes
    cart = run_study(cart_study(), backend="sequential", n_trials=200).outcomes
    for key, o in plain.items():
        _same(o, cart[key])
        assert cart[key].extra is None
    assert cart[("graded", "boin")].extra is not None


def test_graded_results_are_identical_for_any_workers_and_backend() -> None:
    s = cart_study(manufacturing="infused").scenarios[-1]
    designs = [BOIN, BoinDesign(BoinConfig(target=0.25, n_doses=4, max_n=21))]
    one = run_units([_spec(s)], designs, n_trials=400, seed=3, chunk_size=100, n_jobs=1)
    two = run_units([_spec(s)], designs, n_trials=400, seed=3, chunk_size=100, n_jobs=2, backend="loky")
    thr = run_units([_spec(s)], designs, n_trials=400, seed=3, chunk_size=100, n_jobs=2, backend="threading")
    for key in one:
        _same(one[key], two[key])
        _same(one[key], thr[key])
        _same(one[key], unpack(pack([one[key]]))[0])  # the unit file keeps the tallies, bit for bit


def test_common_random_numbers_with_the_sections() -> None:
    s = cart_study().scenarios[-1]
    alone = run_units([_spec(s)], [BOIN], n_trials=300, seed=11, chunk_size=100)
    big = BoinDesign(BoinConfig(target=0.3, n_doses=4, max_n=45))
    both = run_units([_spec(s)], [big, BOIN], n_trials=300, seed=11, chunk_size=100)
    _same(alone[(0, 0)], both[(0, 1)])  # adding a design (with more patients) never changes another's numbers


def test_calendar_engine_makes_the_same_decisions_and_tallies() -> None:
    from escalade.scenarios.study import Timing

    s = cart_study().scenarios[-1]
    timing = Timing(enabled=True, rate_per_month=3.0)
    cohort = run_units([_spec(s)], [BOIN], n_trials=200, seed=5, chunk_size=100)[(0, 0)]
    timed = run_units([_spec(s, timing)], [BOIN], n_trials=200, seed=5, chunk_size=100)[(0, 0)]
    _same(cohort, timed)
    assert timed.duration is not None


def test_tallies_are_the_treated_patients_grades() -> None:
    study = cart_study(n_trials=300)
    out = run_study(study, backend="sequential").outcomes[("graded", "boin")]
    x = out.extra
    for name in ("crs", "icans", "cytopenia"):
        per_grade = sum(x[f"ae.{name}.g{g}"] for g in range(1, 6))
        assert np.all(per_grade <= out.n)
    # a DLT needs crs/icans >= 3 or cytopenia >= 4 (or a death): DLTs <= patients with such a grade
    worst = x["ae.crs.g3"] + x["ae.crs.g4"] + x["ae.crs.g5"]
    assert np.all(out.tox <= worst + x["ae.icans.g3"] + x["ae.icans.g4"] + x["ae.icans.g5"]
                  + x["ae.cytopenia.g4"] + x["death"])
    assert np.all(out.tox >= x["death"])


def test_pooled_grade_incidence_at_each_dose_is_near_the_truth() -> None:
    """Dose level: pooled over trials, the % of patients with CRS >= 3 at each dose vs the truth.

    A patient's outcome is drawn independently of the decision to treat them at the dose, so the pooled
    rate is close to the truth; the tolerance is K SEs of the per-trial ratio estimator.
    """
    study = cart_study(n_trials=2000)
    r = run_study(study, backend="sequential")
    oc = r.oc
    s = study.scenarios[-1]
    truth = s.cart.ae_types[0].at_least()[:, 3]
    rows = oc[(oc.scenario == "graded") & (oc.design == "boin") & (oc.metric == "crs_g3plus_pct")]
    for j, label in enumerate(study.dose_labels()):
        row = rows[rows.dose == label].iloc[0]
        assert abs(row.value - 100 * truth[j]) < 4.5 * row.se + 1.0, (label, row.value, truth[j], row.se)


def test_oc_rows_for_the_car_t_patient() -> None:
    study = cart_study(n_trials=200)
    oc = run_study(study, backend="sequential").oc
    g = oc[oc.scenario == "graded"]
    metrics = set(g.metric)
    for m in ("crs_g3plus_pct", "icans_g3plus_pct", "crs_g5_patients", "deaths", "any_death_pct",
              "crs_g3plus_selected", "mrd_neg_cr_day28_selected", "mrd_neg_cr_month3_selected", "efs12_selected",
              "os12_selected", "median_efs_selected", "efs_best_selection_pct", "expansion_peak_selected"):
        assert m in metrics, m
    assert g.se.notna().all() and np.isfinite(g.value).all()
    assert not any(m.startswith(("crs", "icans", "efs", "mrd")) for m in oc[oc.scenario == "a"].metric)
    # the "true at the selected dose" rows are the truth averaged over the selections
    out = run_study(study, backend="sequential").outcomes[("graded", "boin")]
    tr = study.scenarios[-1].cart.truth()
    sel = out.selected[out.selected >= 0]
    row = g[(g.design == "boin") & (g.metric == "efs12_selected")].iloc[0]
    assert row.value == pytest.approx(tr["efs12"][sel].mean())


class _GradedToy(BoinDesign):
    """BOIN that also asks for patient scores (the gboin contract), recording what it got."""

    graded = True
    calls: list = []  # noqa: RUF012 - class-level record (the design is a frozen dataclass); not a field

    def patient_scores(self, grades, response, categories):
        self.calls.append(({k: v.copy() for k, v in grades.items()}, response.copy(), tuple(categories)))
        return grades["crs"].astype(float) / 4.0, (response == 0).astype(float)


def test_the_engine_hands_graded_designs_their_patients() -> None:
    from escalade.simulations.trial import simulate

    s = cart_study().scenarios[-1]
    d = _GradedToy(BoinConfig(target=0.3, n_doses=4, max_n=21))
    d.calls.clear()
    try:
        simulate(d, s.p_dlt, s.p_response, n_trials=50, seed=1, chunk_size=50, cart=s.cart)
    except RuntimeError as exc:  # this checkout's States may not carry the scores yet (gboin adds them)
        assert "tox_score" in str(exc)
    assert d.calls, "patient_scores was never called"
    grades, response, cats = d.calls[0]
    assert set(grades) == {"crs", "icans", "cytopenia"} and cats == s.cart.response.categories
    assert all(v.dtype == np.int8 for v in grades.values()) and response.dtype == np.int8
    assert grades["crs"].shape == response.shape == (50 * 3,)  # the first cohort of every trial
    with pytest.raises(EscaladeError, match="needs an adverse_events section"):
        run_units([_spec(plain_study().scenarios[0])], [d], n_trials=10, seed=1, chunk_size=10)


def test_truth_without_the_sections_has_no_car_t_rows() -> None:
    s = plain_study().scenarios[0]
    out = run_units([_spec(s)], [BOIN], n_trials=50, seed=1, chunk_size=50)[(0, 0)]
    cols = trial_table(out, Truth(np.asarray(s.p_dlt), np.asarray(s.p_response), 0.3), max_n=21).columns
    assert not any(m.startswith("crs") for m, _ in cols)
    assert dataclasses.fields(Truth)[-1].name == "cart"


def test_exact_mode_simulates_car_t_scenarios_and_says_why() -> None:
    r = run_study(cart_study(n_trials=50), backend="sequential", exact=True)
    why = [f for f in r.manifest["exact_fallbacks"] if f["scenario"] == "graded"]
    assert why and all("CAR-T patient" in f["reason"] for f in why)
    assert r.outcomes[("graded", "boin")].extra is not None
    assert r.outcomes[("a", "boin")].exact


def test_a_graded_design_without_a_response_section_sees_binary_categories() -> None:
    from escalade.simulations.trial import simulate

    s = cart_study().scenarios[-1]
    model = dataclasses.replace(s.cart, response=None, survival=None, expansion=None, correlation=None, _cache={})
    d = _GradedToy(BoinConfig(target=0.3, n_doses=4, max_n=21))
    d.calls.clear()
    try:
        simulate(d, s.p_dlt, (0.3,) * 4, n_trials=20, seed=2, chunk_size=20, cart=model)
    except RuntimeError as exc:  # this checkout's States may not carry the scores yet (gboin adds them)
        assert "tox_score" in str(exc)
    grades, response, cats = d.calls[0]
    assert cats == ("responder", "non_responder") and set(np.unique(response)) <= {0, 1}
