"""The engine: common random numbers, determinism across workers, memoisation, run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from escalade.design.base import States
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.scenarios.load import load_study
from escalade.simulations.oc import Truth, operating_characteristics, paired_differences
from escalade.simulations.patients import draw_patients
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.study_run import RunDirError, run_study
from escalade.simulations.trial import decide_memoised, run_trials, simulate

P = [0.05, 0.12, 0.30, 0.45, 0.60]
BOIN = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30))
TPT = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5))


def _same(a, b) -> None:
    for f in ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "trial"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_patients_do_not_depend_on_capacity() -> None:
    small = draw_patients(1, 7, 0, 50, 20, 0.3)
    large = draw_patients(1, 7, 0, 50, 100, 0.3)
    np.testing.assert_array_equal(small.u_tox, large.u_tox[:, : small.capacity])
    np.testing.assert_array_equal(small.u_eff, large.u_eff[:, : small.capacity])


def test_copula_gives_the_stated_joint_probability() -> None:
    from scipy.stats import multivariate_normal, norm

    pts = draw_patients(3, 1, 0, 20000, 16, association=0.5)
    pt, pe = 0.3, 0.6
    joint = np.mean((pts.u_tox < pt) & (pts.u_eff < pe))
    exact = multivariate_normal(mean=[0, 0], cov=[[1, 0.5], [0.5, 1]]).cdf([norm.ppf(pt), norm.ppf(pe)])
    se = np.sqrt(exact * (1 - exact) / pts.u_tox.size)
    assert abs(joint - exact) < 4 * se
    assert abs(np.mean(pts.u_tox < pt) - pt) < 0.01


def test_common_random_numbers_across_designs() -> None:
    scen = [ScenarioSpec("s", tuple(P), (0.2,) * 5)]
    alone = run_units(scen, [BOIN], n_trials=600, seed=11, chunk_size=200)
    big_tpt = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5, max_n=60))
    both = run_units(scen, [big_tpt, BOIN], n_trials=600, seed=11, chunk_size=200)
    _same(alone[(0, 0)], both[(0, 1)])  # adding a design never changes another's numbers
    twin = run_units(scen, [BOIN, BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30))],
                     n_trials=300, seed=11, chunk_size=100)
    _same(twin[(0, 0)], twin[(0, 1)])  # identical designs see identical patients


def test_adding_a_scenario_does_not_change_others() -> None:
    a = [ScenarioSpec("s", tuple(P), (0.2,) * 5)]
    b = [ScenarioSpec("other", (0.1,) * 5, (0.2,) * 5), a[0]]
    ra = run_units(a, [BOIN], n_trials=300, seed=5, chunk_size=100)
    rb = run_units(b, [BOIN], n_trials=300, seed=5, chunk_size=100)
    _same(ra[(0, 0)], rb[(1, 0)])


def test_identical_results_with_one_and_two_workers() -> None:
    scen = [ScenarioSpec("s", tuple(P), (0.2,) * 5), ScenarioSpec("t", (0.1, 0.2, 0.3, 0.4, 0.5), (0.3,) * 5)]
    one = run_units(scen, [TPT, BOIN], n_trials=900, seed=3, chunk_size=250, n_jobs=1)
    two = run_units(scen, [TPT, BOIN], n_trials=900, seed=3, chunk_size=250, n_jobs=2, backend="loky")
    thr = run_units(scen, [TPT, BOIN], n_trials=900, seed=3, chunk_size=250, n_jobs=2, backend="threading")
    for key in one:
        _same(one[key], two[key])
        _same(one[key], thr[key])


def test_memoised_decisions_equal_direct_ones() -> None:
    out = simulate(BOIN, P, n_trials=500, seed=2)
    states = States(out.n, out.tox, out.eff, out.both, np.zeros(500, np.int64) + 1,
                    np.full(500, 3), np.zeros(500, np.int64))

    class Memo(BoinDesign):
        memoise = True

    direct = BOIN.decide(states)
    memo = decide_memoised(Memo(BOIN.config), states)
    for f in ("dose", "stop", "reason", "cohort_size"):
        np.testing.assert_array_equal(getattr(direct, f), getattr(memo, f))


def test_paired_difference_equals_difference_of_means() -> None:
    pts = draw_patients(9, 0, 0, 4000, 30)
    truth = Truth(np.array(P), np.full(5, 0.3), 0.3)
    a = run_trials(TPT, np.array(P), np.full(5, 0.3), pts)
    b = run_trials(BOIN, np.array(P), np.full(5, 0.3), pts)
    pd_ = paired_differences({"3+3": a, "BOIN": b}, truth, max_n={"3+3": 30, "BOIN": 30})
    row = pd_[pd_.metric == "correct_selection_pct"].iloc[0]
    oca = operating_characteristics(a, truth, max_n=30)
    ocb = operating_characteristics(b, truth, max_n=30)
    va = oca[(oca.metric == "correct_selection_pct")].value.iloc[0]
    vb = ocb[(ocb.metric == "correct_selection_pct")].value.iloc[0]
    assert row.difference == pytest.approx(vb - va, abs=1e-9)
    ss = pd_[pd_.metric == "sample_size"].iloc[0]
    assert ss.se < ss.se_unpaired  # common patients make the comparison sharper


def test_oc_standard_errors_are_binomial() -> None:
    out = simulate(BOIN, P, n_trials=2000, seed=4)
    oc = operating_characteristics(out, Truth(np.array(P), np.zeros(5), 0.3), max_n=30,
                                   dose_labels=list("ABCDE"))
    row = oc[(oc.metric == "select_pct") & (oc.dose == "C")].iloc[0]
    p = np.mean(out.selected == 2)
    assert row.value == pytest.approx(100 * p)
    assert row.se == pytest.approx(100 * np.sqrt(p * (1 - p) / 1999), rel=1e-9)
    assert not oc.value.isna().any()


def _small_example(example_study_path: Path) -> str:
    """The shipped study with only its 3+3 and BOIN designs (keeps the test fast)."""
    import yaml

    data = yaml.safe_load(example_study_path.read_text())
    data["designs"] = [d for d in data["designs"] if d["design"] in ("3+3", "boin")]
    return yaml.safe_dump(data)


def test_run_directory_resume_and_refusals(tmp_path: Path, example_study_path: Path) -> None:
    from escalade.scenarios.load import parse_study

    study = parse_study(_small_example(example_study_path), source="small.yaml")
    out = tmp_path / "run"
    first = run_study(study, n_trials=400, seed=1, out_dir=out)
    for name in ("trials.parquet", "oc.csv", "paired.csv", "manifest.json"):
        assert (out / name).exists()
    assert not list(out.glob(".tmp-*"))
    man = json.loads((out / "manifest.json").read_text())
    boin = next(d for d in man["designs"] if d["design"] == "boin")
    assert boin["params"]["p_saf"] == pytest.approx(0.18) and boin["params"]["n_earlystop"] == 100
    assert man["study_sha256"] == study.sha256 and man["seed"] == 1
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 400 * len(study.scenarios) * len(study.designs)
    oc = pd.read_csv(out / "oc.csv")
    assert set(oc.scenario) == {s.name for s in study.scenarios}

    units = sorted((out / "units").glob("unit-*.npy"))
    for p in units[::2]:
        p.unlink()  # as if the run had been killed half-way
    second = run_study(study, n_trials=400, seed=1, out_dir=out)
    assert second.manifest["results_sha256"] == first.manifest["results_sha256"]

    with pytest.raises(RunDirError, match="different inputs"):
        run_study(study, n_trials=400, seed=2, out_dir=out)
    (out / ".lock").write_text("999\n")
    with pytest.raises(RunDirError, match="lock"):
        run_study(study, n_trials=400, seed=1, out_dir=out)
