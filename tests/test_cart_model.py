"""The CAR-T patient model: parsing, derived P(DLT), grade/response incidences and EFS against the truth.

Monte Carlo checks are within K standard errors computed from the number of draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from _cart_study import CART_TEXT, cart_study
from escalade.scenarios.cart import AdverseEventType, DltRule, derived_p_dlt
from escalade.scenarios.errors import StudyError
from escalade.scenarios.load import parse_study
from escalade.simulations.graded import draw_graded, efs_months
from escalade.simulations.patients import draw_patients, scenario_key

#: Standard errors allowed (two-sided; with ~200 checks per test a 4.5 SE miss has probability ~1e-3).
K = 4.5
T_BIG = 4000  # trials x 16 patients = 64,000 virtual patients per dose


def _graded(study, n_trials=T_BIG, capacity=16):
    s = study.scenarios[-1]
    key = scenario_key(s.name)
    pts = draw_patients(7, key, 0, n_trials, capacity)
    g = draw_graded(s.cart, pts, seed=7, scenario=key, chunk=0, p_dlt=s.p_dlt, p_response=s.p_response)
    return s, g, g.table()


def _within(freq: np.ndarray, p: np.ndarray, n: int) -> None:
    se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
    z = np.abs(freq - p) / se
    assert np.all(z < K), f"max |z| = {z.max():.2f} at {np.unravel_index(np.argmax(z), z.shape)}"


def test_derived_p_dlt_is_the_rule_over_independent_grades() -> None:
    a = AdverseEventType("crs", np.array([[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]]))
    b = AdverseEventType("icans", np.array([[0.7, 0.1, 0.1, 0.05, 0.05, 0.0]]))
    rule = DltRule((("crs", 3),), other=4, any=5)
    # crs >= 3: 0.2; icans >= 4 (other): 0.05 -> 1 - 0.8 * 0.95
    assert derived_p_dlt([a, b], None, rule)[0] == pytest.approx(1 - 0.8 * 0.95, abs=1e-15)
    assert derived_p_dlt([a, b], None, DltRule(any=5))[0] == pytest.approx(0.05, abs=1e-15)


def test_derived_p_dlt_equals_the_simulated_dlt_rate() -> None:
    study = cart_study()
    s, g, tab = _graded(study)
    n = tab.dlt.shape[0] * tab.dlt.shape[1]
    freq = tab.dlt.reshape(n, -1).mean(axis=0)
    _within(freq, np.asarray(s.p_dlt), n)
    # and the DLT is the rule over the simulated grades, type by type
    crs, cyto, icans = tab.grades  # types in name order
    rule = (crs >= 3) | (icans >= 3) | (cyto >= 4) | (crs >= 5) | (icans >= 5) | (cyto >= 5)
    np.testing.assert_array_equal(rule, tab.dlt)


def test_simulated_grades_match_the_truth_by_type_dose_and_grade() -> None:
    study = cart_study()
    s, g, tab = _graded(study)
    n = tab.dlt.shape[0] * tab.dlt.shape[1]
    for k, t in enumerate(s.cart.ae_types):
        gr = tab.grades[k].reshape(n, -1)
        freq = np.stack([(gr == grade).mean(axis=0) for grade in range(6)], axis=1)  # (D, 6)
        _within(freq, t.probs, n)


def test_response_categories_and_the_copula_match_the_truth() -> None:
    study = cart_study()
    s, g, tab = _graded(study)
    n = tab.dlt.shape[0] * tab.dlt.shape[1]
    r = s.cart.response
    cat = tab.category.reshape(n, -1)
    freq = np.stack([(cat == m).mean(axis=0) for m in range(len(r.categories))], axis=1)
    _within(freq, r.probs[r.primary], n)
    _within(tab.resp.reshape(n, -1).mean(axis=0), np.asarray(s.p_response), n)
    # P(CRS >= 2 and response) is the bivariate normal probability with correlation 0.3
    d = 2
    p_crs = s.cart.ae_types[0].at_least()[d, 2]
    p_orr = s.p_response[d]
    joint = stats.multivariate_normal(mean=[0, 0], cov=[[1, 0.3], [0.3, 1]]).cdf(
        [stats.norm.ppf(p_crs), stats.norm.ppf(p_orr)])
    got = np.mean((tab.grades[0][:, :, d] >= 2) & tab.resp[:, :, d])
    _within(np.array([got]), np.array([joint]), n)
    assert joint > p_crs * p_orr + 0.01  # the dependence is there (and the check could see it missing)


def test_grades_are_monotone_in_dose_for_every_patient() -> None:
    """Common random numbers across doses: stochastically ordered grade tables give ordered grades."""
    study = cart_study()
    _s, g, tab = _graded(study, n_trials=500)
    assert np.all(np.diff(tab.grades.astype(int), axis=-1) >= 0)


def test_efs_kaplan_meier_matches_the_specified_curve() -> None:
    """No censoring: the KM estimate is the empirical survival, Greenwood SE sqrt(S(1-S)/n)."""
    study = cart_study()
    s, g, tab = _graded(study)
    d = 2
    rows, cols = np.nonzero(np.ones(tab.category.shape[:2], bool))
    cat = tab.category[rows, cols, d]
    w = s.cart.response.probs[s.cart.response.primary][d]
    for which, curves in (("efs", s.cart.survival.efs), ("os", s.cart.survival.os)):
        t = efs_months(g, cat, rows, cols, which)
        for month in (1.0, 3.0, 6.0, 12.0, 24.0, 60.0):
            km = np.mean(t > month)
            truth = float(sum(wi * c.survival(month) for wi, c in zip(w, curves)))
            se = np.sqrt(truth * (1 - truth) / t.size)
            assert abs(km - truth) < K * se, (which, month, km, truth)
    assert s.cart.truth()["efs12"][d] == pytest.approx(
        float(sum(wi * c.survival(12.0) for wi, c in zip(w, s.cart.survival.efs))))
    # EFS <= OS for every patient (shared survival uniform, S_EFS <= S_OS here)
    assert np.all(efs_months(g, cat, rows, cols, "efs") <= efs_months(g, cat, rows, cols, "os"))


def test_manufacturing_shortfall_lands_where_stated() -> None:
    study = cart_study(manufacturing="assigned")
    s, g, tab = _graded(study)
    n = tab.dlt.shape[0] * tab.dlt.shape[1]
    m = s.cart.manufacturing.infused_probs()  # (D, D)
    inf = tab.infused.reshape(n, -1)
    freq = np.stack([(inf == j).mean(axis=0) for j in range(m.shape[0])], axis=1)
    _within(freq, m, n)
    # outcomes follow the infused dose: P(DLT | assigned d) = sum_j m[d, j] p_dlt[j]
    _within(tab.dlt.reshape(n, -1).mean(axis=0), m @ np.asarray(s.p_dlt), n)


def test_plain_draws_are_unchanged_by_the_graded_stream() -> None:
    study = cart_study()
    s = study.scenarios[-1]
    key = scenario_key(s.name)
    a = draw_patients(7, key, 0, 50, 32)
    g = draw_graded(s.cart, a, seed=7, scenario=key, chunk=0, p_dlt=s.p_dlt, p_response=s.p_response)
    b = draw_patients(7, key, 0, 50, 32)
    for f in ("u_tox", "u_eff", "u_onset", "u_arrival"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    # patients do not depend on capacity (blocks of 16): the first 16 are the same with room for 48
    big = draw_graded(s.cart, draw_patients(7, key, 0, 50, 48), seed=7, scenario=key, chunk=0, p_dlt=s.p_dlt,
                      p_response=s.p_response)
    np.testing.assert_array_equal(g.table().grades[:, :, :32], big.table().grades[:, :, :32])


@pytest.mark.parametrize(("old", "new", "needle"), [
    ("[0.5, 0.3, 0.12, 0.06, 0.02, 0.0]", "[0.5, 0.3, 0.12, 0.06, 0.02, 0.1]", "crs.grades[0]"),
    ("dlt_rule: {crs: 3,", "dlt_rule: {crx: 3,", "dlt_rule.crx"),
    ("crs~icans: 0.5", "crs~icans: 0.99, crs~cytopenia: -0.99, icans~cytopenia: 0.99",
     "positive-definite"),
    ("  - name: graded\n", "  - name: graded\n    p_dlt: [0.14, 0.25, 0.30, 0.51]\n", "differs by 0.0890"),
    ("categories: [mrd_neg_cr, cr, crh, pr, nr]", "categories: [a, b, c, d, e]", "response.orr"),
    ("mrd_neg_cr: {cure: 0.5, shape: 1.0, median_months: 12}", "mrd_neg_cr: {cure: 0.5}", "hazards_per_month"),
])
def test_errors_name_the_field_and_the_fix(old: str, new: str, needle: str) -> None:
    assert old in CART_TEXT
    with pytest.raises(StudyError) as exc:
        parse_study(CART_TEXT.replace(old, new, 1), source="cart.yaml")
    msg = str(exc.value)
    assert needle in msg and "cart.yaml" in msg and "\n" not in msg, msg


def test_adverse_events_need_a_dlt_rule() -> None:
    text = CART_TEXT.replace("dlt_rule: {crs: 3, icans: 3, any: 5, other: 4}\n", "")
    with pytest.raises(StudyError, match="dlt_rule: is required"):
        parse_study(text, source="cart.yaml")


def test_a_given_p_dlt_that_agrees_is_accepted() -> None:
    s = cart_study().scenarios[-1]
    given = ", ".join(f"{p:.3f}" for p in s.p_dlt)
    text = CART_TEXT.replace("  - name: graded\n", f"  - name: graded\n    p_dlt: [{given}]\n", 1)
    again = parse_study(text, source="cart.yaml").scenarios[-1]
    assert again.p_dlt == s.p_dlt  # the derived values are used (the same on every call)


def test_mapping_order_is_not_an_input() -> None:
    """AE types are taken in name order and assessments by day, so a reordered file gives the same numbers."""
    import yaml

    from escalade.simulations.trial import simulate
    from escalade.design.boin import BoinConfig, BoinDesign

    data = yaml.safe_load(CART_TEXT)
    graded = data["scenarios"][-1]
    graded["adverse_events"]["types"] = dict(reversed(list(graded["adverse_events"]["types"].items())))
    graded["response"]["assessments"] = dict(reversed(list(graded["response"]["assessments"].items())))
    again = parse_study(yaml.safe_dump(data, sort_keys=False), source="reordered.yaml").scenarios[-1]
    s = cart_study().scenarios[-1]
    assert again.cart.type_names == s.cart.type_names == ("crs", "cytopenia", "icans")
    assert again.cart.response.assessments == s.cart.response.assessments == ("day28", "month3")
    d = BoinDesign(BoinConfig(target=0.3, n_doses=4, max_n=21))
    a = simulate(d, s.p_dlt, s.p_response, n_trials=100, seed=4, cart=s.cart)
    b = simulate(d, again.p_dlt, again.p_response, n_trials=100, seed=4, cart=again.cart)
    np.testing.assert_array_equal(a.tox, b.tox)
    for k in a.extra:
        np.testing.assert_array_equal(a.extra[k], b.extra[k])


def test_doctests_of_the_car_t_model_run() -> None:
    import doctest

    import escalade.scenarios.cart as mod

    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_models_compare_by_value() -> None:
    """A study read twice gives equal scenarios (the API's YAML round trip relies on it); a changed grade
    probability makes them differ."""
    a, b = cart_study(), cart_study()
    assert a.scenarios == b.scenarios and hash(a.scenarios[-1].cart) == hash(b.scenarios[-1].cart)
    changed = parse_study(CART_TEXT.replace("[0.5, 0.3, 0.12, 0.06, 0.02, 0.0]", "[0.5, 0.3, 0.13, 0.05, 0.02, 0.0]"),
                          source="cart.yaml")
    assert changed.scenarios[-1].cart != a.scenarios[-1].cart
    assert changed.scenarios[:-1] == a.scenarios[:-1]
