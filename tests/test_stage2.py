"""The randomised dose-optimisation stage (escalade.simulations.stage2, the study file's ``optimisation``).

Closed-form checks use the stage alone on made-up escalation outcomes: with two arms of m patients whose true
rates are equal, the two response counts are i.i.d. Binomial(m, p), so the higher dose is selected with
probability exactly (1 - P(tie)) / 2, P(tie) = sum_k b(k; m, p)^2 (ties go to the lower dose); every Monte Carlo
comparison is within 4 standard errors computed from the number of trials.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from escalade.design.base import NO_DOSE
from escalade.scenarios.errors import StudyError
from escalade.scenarios.load import parse_study
from escalade.scenarios.study import Optimisation
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.stage2 import candidate_doses, run_stage2, stage2_patients
from escalade.simulations.study_run import results_hash, run_study

K_SE = 4.0


def _outcomes(selected: np.ndarray, n_doses: int = 4, n_at: int = 6) -> TrialOutcomes:
    t = selected.size
    n = np.full((t, n_doses), n_at, np.int64)
    z = np.zeros((t, n_doses), np.int64)
    return TrialOutcomes(selected=selected.astype(np.int64), reason=np.zeros(t, np.int64), n=n, tox=z.copy(),
                         eff=z.copy(), both=z.copy(), cohorts=np.full(t, 4, np.int64), weight=np.full(t, 1.0 / t),
                         trial=np.arange(t))


def test_equal_truth_selects_each_candidate_as_the_closed_form_says() -> None:
    m, p, t = 12, 0.4, 20_000
    cfg = Optimisation(candidates="mtd_and_next_lower", n_per_arm=m, select_by="orr_with_safety", max_tox=1.0)
    s2 = run_stage2(cfg, _outcomes(np.full(t, 2)), p_dlt=[0.1, 0.2, 0.2, 0.5], p_response=[0.1, p, p, 0.6],
                    association=0.0, seed=11, scenario="equal", target=0.3)
    assert np.all(s2.arms == [1, 2]) and np.all(s2.n == m)
    tie = float(np.sum(stats.binom.pmf(np.arange(m + 1), m, p) ** 2))
    want_hi = (1 - tie) / 2
    got_hi = float(np.mean(s2.selected == 2))
    se = np.sqrt(want_hi * (1 - want_hi) / t)
    assert abs(got_hi - want_hi) < K_SE * se, (got_hi, want_hi, se)
    assert abs(float(np.mean(s2.selected == 1)) - (1 + tie) / 2) < K_SE * se


def test_equal_truth_under_utility_is_symmetric_up_to_ties() -> None:
    """Utility with equal truths: P(higher) = P(lower strictly better) = (1 - P(tie)) / 2, P(tie) by enumeration of
    the four outcome cells' multinomial (independent toxicity and response)."""
    m, pt, pe, t = 6, 0.2, 0.5, 20_000
    cfg = Optimisation(candidates=(0, 1), n_per_arm=m, select_by="utility", u11=60, u00=40)
    s2 = run_stage2(cfg, _outcomes(np.full(t, 3)), p_dlt=[pt, pt, 0.5, 0.6], p_response=[pe, pe, 0.5, 0.5],
                    association=0.0, seed=5, scenario="u", target=0.3)
    cells = np.array([100.0, 60.0, 40.0, 0.0])  # E not T, E and T, neither, T not E
    probs = np.array([pe * (1 - pt), pe * pt, (1 - pe) * (1 - pt), (1 - pe) * pt])
    dist: dict[float, float] = {}
    from itertools import combinations_with_replacement
    from math import factorial
    for combo in combinations_with_replacement(range(4), m):
        k = np.bincount(combo, minlength=4)
        pr = factorial(m) / np.prod([factorial(int(x)) for x in k]) * np.prod(probs ** k)
        u = round(float(k @ cells), 9)
        dist[u] = dist.get(u, 0.0) + pr
    tie = sum(v * v for v in dist.values())
    want_hi = (1 - tie) / 2
    got_hi = float(np.mean(s2.selected == 1))
    se = np.sqrt(want_hi * (1 - want_hi) / t)
    assert abs(got_hi - want_hi) < K_SE * se, (got_hi, want_hi)


def test_an_infeasible_candidate_is_never_selected() -> None:
    """Every patient of the higher arm has a DLT (rate 1 > max_tox): the lower dose every time; both arms
    infeasible: no dose."""
    t = 500
    out = _outcomes(np.full(t, 2))
    cfg = Optimisation(candidates="mtd_and_next_lower", n_per_arm=10, select_by="orr_with_safety", max_tox=0.3)
    s2 = run_stage2(cfg, out, p_dlt=[0.0, 0.0, 1.0, 1.0], p_response=[0.1, 0.2, 0.9, 0.9], association=0.0,
                    seed=1, scenario="x", target=0.3)
    assert np.all(s2.selected == 1) and np.all(s2.tox[:, 1] == 10) and np.all(s2.tox[:, 0] == 0)
    s2 = run_stage2(cfg, out, p_dlt=[0.0, 1.0, 1.0, 1.0], p_response=[0.1, 0.2, 0.9, 0.9], association=0.0,
                    seed=1, scenario="x", target=0.3)
    assert np.all(s2.selected == NO_DOSE)


def test_candidates_rules() -> None:
    sel = np.array([NO_DOSE, 0, 1, 3])
    out = _outcomes(sel)
    arms = candidate_doses(Optimisation(candidates="mtd_and_next_lower", n_per_arm=3), out, target=0.3)
    assert arms.tolist() == [[-1, -1], [0, -1], [0, 1], [2, 3]]
    arms = candidate_doses(Optimisation(candidates=(1, 2), n_per_arm=3), out, target=0.3)
    assert arms.tolist() == [[-1, -1], [-1, -1], [1, -1], [1, 2]]  # never above the escalation's selection
    # obd_and_mtd: the isotonic MTD of the stage-1 data (all 6 patients per dose, no DLTs: the top dose) and
    # the design's selection, merged when equal
    arms = candidate_doses(Optimisation(candidates="obd_and_mtd", n_per_arm=3), out, target=0.3)
    assert arms.tolist() == [[-1, -1], [0, 3], [1, 3], [3, -1]]


def test_no_stage2_without_a_selection() -> None:
    cfg = Optimisation(candidates="mtd_and_next_lower", n_per_arm=5)
    s2 = run_stage2(cfg, _outcomes(np.array([NO_DOSE, NO_DOSE])), p_dlt=[0.1] * 4, p_response=[0.5] * 4,
                    association=0.0, seed=3, scenario="n", target=0.3)
    assert np.all(s2.selected == NO_DOSE) and s2.n.sum() == 0 and not s2.ran.any()


def test_a_trials_stage2_patients_depend_on_its_number_only() -> None:
    """Common random numbers: trial 700's patients are the same whichever other trials are drawn with it."""
    a_t, a_e = stage2_patients(9, "S", np.arange(1000), 8, 0.3)
    b_t, b_e = stage2_patients(9, "S", np.array([700, 3, 999]), 8, 0.3)
    assert np.array_equal(a_t[[700, 3, 999]], b_t) and np.array_equal(a_e[[700, 3, 999]], b_e)
    c_t, _ = stage2_patients(10, "S", np.array([700]), 8, 0.3)
    assert not np.array_equal(c_t[0], a_t[700])


STUDY = """
study: {title: two-stage, target: 0.3, cohort_size: 3, max_n: 18}
doses: [{amount: 1}, {amount: 2}, {amount: 3}, {amount: 4}]
designs:
  - {name: BOIN, design: boin}
  - {name: "3+3", design: "3+3"}
scenarios:
  - {name: A, p_dlt: [0.05, 0.15, 0.3, 0.5], p_response: [0.2, 0.4, 0.4, 0.5], association: 0.2}
  - {name: B, p_dlt: [0.3, 0.5, 0.6, 0.7], p_response: [0.3, 0.4, 0.5, 0.5]}
simulation: {n_trials: 600, seed: 7, chunk_size: 200}
"""
OPT = "optimisation: {candidates: mtd_and_next_lower, n_per_arm: 10, select_by: utility, max_tox: 0.4}\n"


def _stage2_rows(res) -> object:
    oc = res.oc
    return oc[oc.metric.str.startswith("stage2")].reset_index(drop=True)


def test_off_is_bit_identical_and_on_adds_only_stage2_rows() -> None:
    off = run_study(parse_study(STUDY), n_jobs=1, backend="sequential")
    on = run_study(parse_study(STUDY + OPT), n_jobs=1, backend="sequential")
    assert off.manifest["results_sha256"] == results_hash(on.outcomes)  # the escalation's numbers unchanged
    assert on.manifest["results_sha256"] != off.manifest["results_sha256"]  # stage 2 is part of the results
    assert not off.oc.metric.str.startswith("stage2").any()
    base = on.oc[~on.oc.metric.str.startswith("stage2")].reset_index(drop=True)
    assert base.equals(off.oc)
    rows = _stage2_rows(on)
    sel = rows[rows.metric == "stage2_select_pct"]
    for (_, _), g in sel.groupby(["scenario", "design"]):
        assert abs(g.value.sum() - 100.0) < 1e-9 and (g.se >= 0).all()
    total = rows[(rows.metric == "stage2_total_n") & (rows.design == "BOIN") & (rows.scenario == "A")].value.item()
    n1 = off.oc[(off.oc.metric == "sample_size") & (off.oc.design == "BOIN") & (off.oc.scenario == "A")].value.item()
    n2 = rows[(rows.metric == "stage2_patients") & (rows.design == "BOIN") & (rows.scenario == "A")].value.item()
    assert abs(total - (n1 + n2)) < 1e-9 and n2 > 10


def test_workers_and_added_designs_do_not_change_stage2(tmp_path: Path) -> None:
    one = run_study(parse_study(STUDY + OPT), n_jobs=1, backend="sequential")
    two = run_study(parse_study(STUDY + OPT), n_jobs=2, backend="threading")
    assert one.manifest["results_sha256"] == two.manifest["results_sha256"]
    assert _stage2_rows(one).equals(_stage2_rows(two))
    more = STUDY.replace('  - {name: "3+3", design: "3+3"}\n',
                         '  - {name: "3+3", design: "3+3"}\n  - {name: KB, design: keyboard}\n')
    three = run_study(parse_study(more + OPT), n_jobs=1, backend="sequential")
    r1, r3 = _stage2_rows(one), _stage2_rows(three)
    assert r1.equals(r3[r3.design != "KB"].reset_index(drop=True))


def test_run_directory_has_stage2_columns(tmp_path: Path) -> None:
    import pandas as pd

    run_study(parse_study(STUDY + OPT), n_jobs=1, backend="sequential", out_dir=tmp_path / "run")
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert {"stage2_selected_dose", "stage2_patients"} <= set(trials.columns)
    assert (trials.stage2_patients[trials.selected_dose.isna()] == 0).all()


@pytest.mark.parametrize("section, path, words", [
    ("optimisation: {n_per_arm: 0}", "optimisation.n_per_arm", "integer"),
    ("optimisation: {n_per_arm: 10, candidates: best}", "optimisation.candidates", "mtd_and_next_lower"),
    ("optimisation: {n_per_arm: 10, candidates: [2, 2]}", "optimisation.candidates", "repeat"),
    ("optimisation: {n_per_arm: 10, candidates: [5]}", "optimisation.candidates[0]", "[1, 4]"),
    ("optimisation: {n_per_arm: 10, select_by: orr}", "optimisation.select_by", "utility"),
    ("optimisation: {n_per_arm: 10, u11: 50}", "optimisation.u11", "select_by: utility"),
    ("optimisation: {n_per_arm: 10, arms: 2}", "optimisation.arms", "allowed keys"),
    ("optimisation: {candidates: obd_and_mtd}", "optimisation.n_per_arm", "required"),
])
def test_bad_optimisation_sections_say_the_fix(section: str, path: str, words: str) -> None:
    with pytest.raises(StudyError) as err:
        parse_study(STUDY + section + "\n", source="s.yaml")
    msg = str(err.value)
    assert path in msg and words in msg and msg.count("\n") == 0, msg


def test_parsed_defaults() -> None:
    st = parse_study(STUDY + "optimisation: {n_per_arm: 12, candidates: [1, 3]}\n")
    o = st.optimisation
    assert o.candidates == (0, 2) and o.select_by == "orr_with_safety" and o.max_tox == 0.3
    assert "12 patients" in o.describe()
    assert parse_study(STUDY).optimisation is None


def test_appendix_has_the_stage2_section(tmp_path: Path) -> None:
    from escalade.reports.appendix import render_html
    from escalade.reports.load import load_run

    run_study(parse_study(STUDY + OPT), n_jobs=1, backend="sequential", out_dir=tmp_path / "run")
    run = load_run(tmp_path / "run")
    html = render_html(run)
    assert 'id="optimisation"' in html and "10 patients randomised to each candidate dose" in html
    assert "A: selection after the optimisation stage" in html and "Both stages: patients (mean)" in html
    c = run.cell("A", "BOIN", "stage2_select_pct", run.doses[1].label)
    assert f"{c.value:.1f} ({c.se:.1f})" in html
    run_study(parse_study(STUDY), n_jobs=1, backend="sequential", out_dir=tmp_path / "off")
    assert 'id="optimisation"' not in render_html(load_run(tmp_path / "off"))


def test_paired_differences_of_the_programme() -> None:
    """paired.csv pairs the stage-2 characteristics between designs (same trials, same stage-2 patients): the
    difference equals the difference of the oc.csv values, and its paired SE is below the unpaired one."""
    res = run_study(parse_study(STUDY + OPT), n_jobs=1, backend="sequential")
    p = res.paired[(res.paired.metric == "stage2_total_n") & (res.paired.scenario == "A")]
    assert len(p) == 1
    oc = res.oc
    v = {d: oc[(oc.metric == "stage2_total_n") & (oc.scenario == "A") & (oc.design == d)].value.item()
         for d in ("BOIN", "3+3")}
    row = p.iloc[0]
    assert abs(row.difference - (v[row.design] - v[row.versus])) < 1e-9
    off = run_study(parse_study(STUDY), n_jobs=1, backend="sequential")
    assert not off.paired.metric.str.startswith("stage2").any()
    assert res.paired[~res.paired.metric.str.startswith("stage2")].reset_index(drop=True).equals(off.paired)


def test_programme_duration_with_calendar_time() -> None:
    """Stage 2 lasts n2 * (30.4375 / rate) days of accrual plus max(DLT window, response assessment) days, so
    its mean is E[n2] * gap + P(stage 2) * assessment; the programme adds the escalation's duration."""
    timed = STUDY.replace("study: {title: two-stage, target: 0.3, cohort_size: 3, max_n: 18}",
                          "study: {title: two-stage, target: 0.3, cohort_size: 3, max_n: 18, dlt_window_days: 28, "
                          "response_days: 90}") + "timing: {accrual: {process: fixed, rate_per_month: 2}}\n"
    res = run_study(parse_study(timed + OPT), n_jobs=1, backend="sequential")
    oc = res.oc

    def v(metric: str, scen: str = "B", design: str = "BOIN") -> float:
        return oc[(oc.metric == metric) & (oc.scenario == scen) & (oc.design == design)].value.item()

    gap = 30.4375 / 2
    want = v("stage2_patients") * gap + v("stage2_run_pct") / 100 * 90
    assert abs(v("stage2_duration_days") - want) < 1e-6
    assert abs(v("stage2_total_duration_days") - (v("duration_days") + want)) < 1e-6
    assert 0 < v("stage2_run_pct") < 100  # scenario B stops early in some trials: both branches are seen


@pytest.mark.parametrize("cfg, assoc", [
    (Optimisation(candidates="mtd_and_next_lower", n_per_arm=8, select_by="orr_with_safety", max_tox=0.3), 0.0),
    (Optimisation(candidates="mtd_and_next_lower", n_per_arm=6, select_by="utility", u11=60, u00=40,
                  max_tox=0.5), 0.4),
    (Optimisation(candidates=(0, 1, 2), n_per_arm=5, select_by="utility", u11=30, u00=50), -0.3),
])
def test_exact_stage2_equals_the_simulated_stage(cfg: Optimisation, assoc: float) -> None:
    """Two independent routes: the enumerated selection law given each trial's candidates, averaged over the
    trials, against the simulated stage on the same trials (within 4 SEs of the Bernoulli draws)."""
    t = 20_000
    rng = np.random.default_rng(3)
    out = _outcomes(rng.integers(-1, 4, size=t))
    p_dlt, p_resp = [0.05, 0.2, 0.3, 0.45], [0.2, 0.45, 0.5, 0.55]
    s2 = run_stage2(cfg, out, p_dlt=p_dlt, p_response=p_resp, association=assoc, seed=8, scenario="x", target=0.3)
    from escalade.simulations.stage2 import exact_stage2

    arms, p_sel = exact_stage2(cfg, out, p_dlt=p_dlt, p_response=p_resp, association=assoc, target=0.3)
    assert np.array_equal(arms, s2.arms) and np.allclose(p_sel.sum(axis=1), 1.0, atol=1e-12)
    got = np.bincount(np.where(s2.selected == NO_DOSE, 4, s2.selected), minlength=5) / t
    want = p_sel.mean(axis=0)
    se = np.sqrt(np.maximum((p_sel * (1 - p_sel)).mean(axis=0), 1e-8) / t)
    assert np.all(np.abs(got - want) < K_SE * se), (got, want, se)
    assert len(set(s2.selected.tolist())) >= 3  # the check sees several outcomes


def test_exact_runs_have_exact_stage2_rows() -> None:
    """With exact enumeration the stage's characteristics are exact (SE 0) and lie within Monte Carlo error of the
    simulated run's."""
    exact = STUDY.replace("simulation: {n_trials: 600, seed: 7, chunk_size: 200}",
                          "simulation: {n_trials: 4000, seed: 7, exact: true}")
    ex = run_study(parse_study(exact + OPT), n_jobs=1, backend="sequential")
    sim = run_study(parse_study(exact.replace("exact: true", "exact: false") + OPT), n_jobs=1,
                    backend="sequential")
    a, b = _stage2_rows(ex), _stage2_rows(sim)
    assert a.exact.all() and (a.se == 0).all() and not b.exact.any()
    m = a.merge(b, on=["scenario", "design", "metric", "dose"], suffixes=("_ex", "_sim"))
    assert len(m) == len(a) == len(b)
    q = np.clip(m.value_ex / 100, 0, 1)
    floor = np.where(m.metric.str.endswith("_pct"), 100 * np.sqrt(np.maximum(q * (1 - q), 1 / 4000) / 4000), 1e-9)
    z = np.abs(m.value_ex - m.value_sim) / np.maximum(m.se_sim, floor)  # a rare event unseen in 4000 trials
    assert (z < K_SE).all(), m[z >= K_SE]
    sel = a[a.metric == "stage2_select_pct"]
    assert np.allclose(sel.groupby(["scenario", "design"]).value.sum(), 100.0)


def test_exact_stage2_refuses_large_arms(caplog: pytest.LogCaptureFixture) -> None:
    exact = STUDY.replace("simulation: {n_trials: 600, seed: 7, chunk_size: 200}",
                          "simulation: {n_trials: 600, seed: 7, exact: true}")
    with caplog.at_level("WARNING"):
        res = run_study(parse_study(exact + "optimisation: {n_per_arm: 101}\n"), n_jobs=1, backend="sequential")
    assert not res.oc.metric.str.startswith("stage2").any()
    assert "n_per_arm up to 100" in caplog.text and "simulate instead" in caplog.text


def test_stage2_requirement_passes_in_validate() -> None:
    from escalade.validation.suite import Context, run_requirements

    (res,) = run_requirements(Context(quick=True), only=["STAGE2-1"])
    assert res.passed and res.n_comparisons == 13, res


def test_doctests() -> None:
    import doctest

    from escalade.simulations import stage2

    result = doctest.testmod(stage2, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


@pytest.mark.parametrize("kwargs, words", [
    ({"candidates": "best"}, "candidates"), ({"candidates": ()}, "non-empty"), ({"n_per_arm": 0}, "n_per_arm"),
    ({"select_by": "orr"}, "select_by"), ({"max_tox": 1.5}, "max_tox"), ({"randomisation": "adaptive"}, "equal"),
])
def test_optimisation_config_checks_itself(kwargs: dict, words: str) -> None:
    args = {"n_per_arm": 10, **kwargs}
    with pytest.raises(ValueError, match=words):
        Optimisation(**args)
