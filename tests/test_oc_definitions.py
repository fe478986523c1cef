"""Operating characteristics defined at their source (issue 12, items 1-5).

* the true MTD is defined once, by the study (highest dose <= target + delta, or none), and an
  all-toxic scenario is scored correct when no dose is selected; an all-safe one never shows
  over-selection;
* every paired difference in ``paired.csv`` is exactly the difference of the two values in ``oc.csv``,
  with a delta-method paired SE recomputed here from ``trials.parquet`` and checked by Monte Carlo;
* each phase I/II design is scored against the optimal dose of its own objective;
* ``report``, ``diff`` and ``rerun`` refuse result files that differ from the manifest's hashes;
* a study without ``timing`` whose TITE design needs a clock simulates every design in calendar time.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import EXAMPLE
from escalade.cli import main
from escalade.design.base import NO_DOSE
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.boin12 import Boin12Config, Boin12Design
from escalade.design.efftox import EffToxConfig, EffToxDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.scenarios.errors import StudyError
from escalade.scenarios.load import ZeroCurveWarning, parse_study
from escalade.scenarios.study import MtdRule, acceptable_doses, true_mtd
from escalade.simulations.oc import Truth, operating_characteristics, paired_differences, trial_table
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.patients import draw_patients
from escalade.simulations.study_run import run_study
from escalade.simulations.trial import run_trials

TRIALS = 200  # the shipped study, as the issue asks (about 30 s on one core)

SMALL = """\
study: {title: definitions, target: 0.3, cohort_size: 3, max_n: 18}
doses: [{label: A, amount: 1}, {label: B, amount: 2}, {label: C, amount: 3}]
designs:
  - {name: "3+3", design: "3+3"}
  - {name: BOIN, design: boin}
scenarios:
  - {name: toxic, p_dlt: [0.5, 0.6, 0.7], p_response: [0.3, 0.4, 0.5]}
  - {name: safe, p_dlt: [0.0, 0.0, 0.0], p_response: [0.2, 0.3, 0.4]}
  - {name: middle, p_dlt: [0.1, 0.3, 0.5], p_response: [0.2, 0.3, 0.4]}
simulation: {n_trials: 300, seed: 11, chunk_size: 100}
"""


def _value(oc: pd.DataFrame, s: str, d: str, m: str, dose: str = "") -> float:
    row = oc[(oc.scenario == s) & (oc.design == d) & (oc.metric == m) & (oc.dose == dose)]
    assert len(row) == 1, (s, d, m, dose)
    return float(row.value.iloc[0])


def _read_oc(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "oc.csv", keep_default_na=False, na_values={"value": [""], "se": [""]})


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shipped study, 200 trials per scenario, run through the CLI."""
    root = tmp_path_factory.mktemp("shipped")
    study = root / EXAMPLE.name
    shutil.copyfile(EXAMPLE, study)
    out = root / "run"
    assert main(["run", str(study), "--trials", str(TRIALS), "--jobs", "1", "--out", str(out),
                 "--no-progress"]) == 0
    return {"run": out, "oc": _read_oc(out), "paired": pd.read_csv(out / "paired.csv"),
            "trials": pd.read_parquet(out / "trials.parquet"),
            "manifest": json.loads((out / "manifest.json").read_text())}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("small")
    study = root / "small.yaml"
    study.write_text(SMALL)
    out = root / "run"
    assert main(["run", str(study), "--jobs", "1", "--out", str(out), "--no-progress"]) == 0
    return {"root": root, "study": study, "run": out, "oc": _read_oc(out),
            "manifest": json.loads((out / "manifest.json").read_text())}


# ------------------------------------------------------------------------------- 1. the true MTD


def test_true_mtd_is_the_highest_dose_within_target_plus_delta_or_none() -> None:
    assert true_mtd([0.05, 0.12, 0.30, 0.45], 0.30) == 2
    assert true_mtd([0.05, 0.10, 0.20, 0.35, 0.50], 0.30) == 3      # 0.35 <= 0.30 + 0.05 (no rounding slip)
    assert true_mtd([0.05, 0.10, 0.20, 0.35, 0.50], 0.30, delta=0.0) == 2
    assert true_mtd([0.50, 0.60, 0.70], 0.30) is None                # all too toxic: no dose
    assert true_mtd([0.0, 0.0, 0.0], 0.30) == 2                      # all safe: the top dose
    assert true_mtd([0.50, 0.60], 0.30, definition="closest") == 0   # the legacy option
    assert true_mtd([0.20, 0.40], 0.30, definition="closest") == 0   # tie: the lower dose
    assert acceptable_doses([0.05, 0.27, 0.33, 0.45], 0.30) == (1, 2)
    assert acceptable_doses([0.0, 0.0], 0.30) == ()
    rule = MtdRule(0.3)
    assert "none" in rule.explain([0.5, 0.6]) and "0.5 > 0.35" in rule.explain([0.5, 0.6])


def _small(text: str = SMALL):
    """SMALL parsed; its second scenario is all zeros on purpose, which the loader flags (and must)."""
    with pytest.warns(ZeroCurveWarning, match=r"scenarios\[1\]\.p_dlt is 0 at every dose"):
        return parse_study(text)


def test_study_file_sets_the_rule_and_refuses_bad_values() -> None:
    st = _small()
    assert (st.mtd_definition, st.mtd_delta) == ("highest_below", 0.05)
    st = _small(SMALL.replace("max_n: 18}", "max_n: 18, mtd_definition: closest, mtd_delta: 0.1}"))
    assert st.mtd_rule == MtdRule(0.3, 0.1, "closest")
    with pytest.raises(StudyError, match=r"study\.mtd_definition.*highest_below, closest"):
        parse_study(SMALL.replace("max_n: 18}", "max_n: 18, mtd_definition: nearest}"))
    with pytest.raises(StudyError, match=r"study\.mtd_delta"):
        parse_study(SMALL.replace("max_n: 18}", "max_n: 18, mtd_delta: 0.7}"))


def _outcomes(selected: list[int], n: list[list[int]]) -> TrialOutcomes:
    n_ = np.array(n, np.int64)
    z = np.zeros_like(n_)
    t = len(selected)
    return TrialOutcomes(np.array(selected, np.int64), np.ones(t, np.int8), n_, z, z, z, np.ones(t, np.int64),
                         np.full(t, 1.0 / t), trial=np.arange(t))


def test_all_toxic_scenario_correct_selection_is_no_dose() -> None:
    out = _outcomes([NO_DOSE, NO_DOSE, NO_DOSE, 0], [[3, 0, 0], [6, 0, 0], [3, 3, 0], [6, 3, 0]])
    truth = Truth(np.array([0.5, 0.6, 0.7]), np.array([0.3, 0.4, 0.5]), 0.3)
    oc = operating_characteristics(out, truth, max_n=9).set_index(["metric", "dose"])["value"]
    assert oc[("correct_selection_pct", "")] == 75.0 == oc[("select_none_pct", "")]
    assert oc[("acceptable_selection_pct", "")] == 75.0
    assert oc[("overdose_selection_pct", "")] == 25.0        # any selected dose is an overdose
    assert oc[("patients_at_mtd_pct", "")] == 0.0           # no MTD, no patient "at" it (not DL1)
    assert oc[("patients_above_mtd", "")] == np.mean([3, 6, 6, 9])  # every patient is above it


def test_all_safe_scenario_is_never_over_selected() -> None:
    out = _outcomes([2, 2, 1, NO_DOSE], [[3, 3, 3], [3, 3, 6], [3, 6, 0], [3, 0, 0]])
    truth = Truth(np.zeros(3), np.array([0.2, 0.3, 0.4]), 0.3)
    oc = operating_characteristics(out, truth, max_n=9).set_index(["metric", "dose"])["value"]
    assert oc[("overdose_selection_pct", "")] == 0.0
    assert oc[("patients_above_mtd", "")] == 0.0
    assert oc[("correct_selection_pct", "")] == 50.0        # the top dose is the MTD
    assert oc[("acceptable_selection_pct", "")] == 50.0     # no dose in the band: only the MTD counts
    assert oc[("patients_at_mtd_pct", "")] == pytest.approx(100 * 9 / 33)  # ratio of means: 9 of 33 patients


def test_all_toxic_and_all_safe_in_a_run(small: dict) -> None:
    oc, man = small["oc"], small["manifest"]
    toxic = next(s for s in man["scenarios"] if s["name"] == "toxic")
    assert toxic["true_mtd"] is None and "none" in toxic["true_mtd_why"]
    assert next(s for s in man["scenarios"] if s["name"] == "safe")["true_mtd"] == 3
    for d in ("3+3", "BOIN"):
        none = _value(oc, "toxic", d, "select_none_pct")
        assert _value(oc, "toxic", d, "correct_selection_pct") == none > 50
        assert _value(oc, "toxic", d, "overdose_selection_pct") == pytest.approx(100 - none)
        assert _value(oc, "toxic", d, "patients_at_mtd_pct") == 0.0
        assert _value(oc, "safe", d, "overdose_selection_pct") == 0.0
        assert _value(oc, "safe", d, "correct_selection_pct") == _value(oc, "safe", d, "select_pct", "C")
    assert man["mtd_rule"]["definition"] == "highest_below" and "0.35" in man["mtd_rule"]["text"]


def test_response_plateau_names_its_mtd_and_optimal_doses(shipped: dict) -> None:
    s = next(s for s in shipped["manifest"]["scenarios"] if s["name"].startswith("Response plateau"))
    assert s["true_mtd"] == 4 and "DL4" in s["true_mtd_why"] and "0.35" in s["true_mtd_why"]
    opt = {o["design"]: o for o in s["optimal"]}
    assert set(opt) == {"EffTox", "BOIN12", "TITE-BOIN12"}
    assert opt["EffTox"]["dose"] == 3 and opt["EffTox"]["objective"] == "EffTox utility"
    assert opt["BOIN12"]["dose"] == 3 and opt["BOIN12"]["objective"] == "BOIN12 utility"
    assert opt["TITE-BOIN12"]["dose"] == 3 and opt["TITE-BOIN12"]["objective"] == "BOIN12 utility"
    assert all(o["why"].startswith("DL3: highest true") for o in opt.values())


# ------------------------------------------------------------------------- 2. paired differences


def test_every_paired_difference_is_the_difference_of_the_reported_means(shipped: dict) -> None:
    oc, p = shipped["oc"], shipped["paired"]
    values = {(r.scenario, r.design, r.metric): r.value for r in oc[oc.dose == ""].itertuples()}
    ses = {(r.scenario, r.design, r.metric): r.se for r in oc[oc.dose == ""].itertuples()}
    assert len(p) > 0
    for r in p.itertuples():
        a, b = values[(r.scenario, r.design, r.metric)], values[(r.scenario, r.versus, r.metric)]
        assert r.difference == a - b, r  # exactly: the same numbers, differenced
        assert r.se_unpaired == pytest.approx(math.hypot(ses[(r.scenario, r.design, r.metric)],
                                                         ses[(r.scenario, r.versus, r.metric)]), rel=1e-12)
    # every pair of designs, every scalar characteristic defined for both, except time quantiles
    designs = [d["name"] for d in shipped["manifest"]["designs"]]
    have = set(zip(p.scenario, p.design, p.versus, p.metric))
    quantiles = {"duration_days_median", "duration_days_p10", "duration_days_p90"}
    for s in shipped["manifest"]["scenarios"]:
        for i, b in enumerate(designs):
            for a in designs[i + 1:]:
                for m in {k[2] for k in values if k[0] == s["name"] and k[1] == a} - quantiles:
                    va, vb = values[(s["name"], a, m)], values.get((s["name"], b, m))
                    if vb is None or not (math.isfinite(va) and math.isfinite(vb)):
                        continue
                    if m == "optimal_selection_pct":  # only between designs of the same objective
                        continue
                    assert (s["name"], a, b, m) in have, (s["name"], a, b, m)
    assert "patients_at_mtd_pct" in set(p.metric) and "orr_selected" in set(p.metric)


def _ratio_paired_se(num_a, den_a, num_b, den_b) -> tuple[float, float]:
    """Delta-method paired SE of R_a - R_b, written out independently of simulations/oc.py."""
    t = len(num_a)
    ra, rb = num_a.sum() / den_a.sum(), num_b.sum() / den_b.sum()
    za = (num_a - ra * den_a) / den_a.mean()
    zb = (num_b - rb * den_b) / den_b.mean()
    return ra - rb, float(np.std(za - zb, ddof=1) / math.sqrt(t))


@pytest.mark.parametrize("metric", ["patients_at_mtd_pct", "dlt_rate", "orr_selected"])
def test_ratio_metrics_pair_by_the_delta_method_from_trials_parquet(shipped: dict, metric: str) -> None:
    t, p, man = shipped["trials"], shipped["paired"], shipped["manifest"]
    s = next(s for s in man["scenarios"] if s["name"] == "MTD at DL3")
    mtd, p_resp = s["true_mtd"], np.array(s["p_response"])

    def parts(design: str) -> tuple[np.ndarray, np.ndarray]:
        g = t[(t.scenario == s["name"]) & (t.design == design)].sort_values("trial")
        if metric == "patients_at_mtd_pct":
            return 100.0 * g[f"n_{mtd}"].to_numpy(float), g["sample_size"].to_numpy(float)
        if metric == "dlt_rate":
            return g["dlts"].to_numpy(float), g["sample_size"].to_numpy(float)
        sel = g["selected_dose"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        has = ~np.isnan(sel)
        return np.where(has, p_resp[np.nan_to_num(sel, nan=1).astype(int) - 1], 0.0), has.astype(float)

    for design in ("BOIN", "CRM", "EffTox"):
        row = p[(p.scenario == s["name"]) & (p.design == design) & (p.versus == "3+3") & (p.metric == metric)]
        assert len(row) == 1
        diff, se = _ratio_paired_se(*parts(design), *parts("3+3"))
        assert row.difference.iloc[0] == pytest.approx(diff, rel=1e-9, abs=1e-12)
        assert row.se.iloc[0] == pytest.approx(se, rel=1e-9)


def test_paired_se_matches_the_spread_of_differences_over_replicate_runs() -> None:
    """Monte Carlo check: the reported paired SE of a ratio and of a mean is the SD of the difference."""
    p_dlt, p_eff = np.array([0.05, 0.15, 0.3, 0.45, 0.6]), np.full(5, 0.3)
    a = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5))
    b = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=24))
    truth = Truth(p_dlt, p_eff, 0.3)
    reps, t = 150, 200
    diffs: dict[str, list[float]] = {"patients_at_mtd_pct": [], "dlt_rate": [], "sample_size": []}
    ses: dict[str, list[float]] = {k: [] for k in diffs}
    for r in range(reps):
        pts = draw_patients(1000 + r, 0, 0, t, 24)
        pd_ = paired_differences({"a": run_trials(a, p_dlt, p_eff, pts), "b": run_trials(b, p_dlt, p_eff, pts)},
                                 truth, max_n={"a": 24, "b": 24}).set_index("metric")
        for k in diffs:
            diffs[k].append(float(pd_.loc[k, "difference"]))
            ses[k].append(float(pd_.loc[k, "se"]))
    for k in diffs:
        sd = float(np.std(diffs[k], ddof=1))
        mean_se = float(np.mean(ses[k]))
        # the SD of `reps` normal draws has relative SE ~ 1/sqrt(2 (reps - 1)); allow 4 of them
        assert abs(mean_se / sd - 1) < 4 / math.sqrt(2 * (reps - 1)), (k, mean_se, sd)


def test_exact_enumeration_rows_keep_their_weights(tmp_path: Path) -> None:
    study = _small()
    res = run_study(study, n_trials=50, exact=True, n_jobs=1, backend="sequential", out_dir=tmp_path / "run")
    oc = res.oc
    assert oc.exact.all() and (oc.se == 0).all()
    for d in ("3+3", "BOIN"):
        none = _value(oc, "toxic", d, "select_none_pct")
        assert _value(oc, "toxic", d, "correct_selection_pct") == none
        total = sum(_value(oc, "middle", d, "select_pct", x) for x in ("A", "B", "C", "none"))
        assert total == pytest.approx(100.0, abs=1e-9)
    assert res.paired.empty  # exactly enumerated designs hold terminal states, not paired trials


# ---------------------------------------------------------------------- 3. per-design optimal dose


def test_each_phase_one_two_design_is_scored_by_its_own_objective(shipped: dict) -> None:
    oc, man = shipped["oc"], shipped["manifest"]
    labels = [d["label"] for d in man["doses"]]
    rows = oc[oc.metric == "optimal_selection_pct"]
    assert set(rows.design) == {"EffTox", "BOIN12", "TITE-BOIN12"}
    assert len(rows) == 3 * len(man["scenarios"]) and (rows.se > 0).any()
    for s in man["scenarios"]:
        for o in s["optimal"]:
            dose = "none" if o["dose"] is None else labels[o["dose"] - 1]
            got = _value(oc, s["name"], o["design"], "optimal_selection_pct")
            assert got == pytest.approx(_value(oc, s["name"], o["design"], "select_pct", dose), abs=1e-9)
    p = shipped["paired"]
    # only designs with the same objective are paired on it: BOIN12 and TITE-BOIN12, never EffTox with either
    pairs = p[p.metric == "optimal_selection_pct"]
    assert len(pairs) == len(man["scenarios"])
    assert all({a, b} == {"BOIN12", "TITE-BOIN12"} for a, b in zip(pairs.design, pairs.versus))


def test_true_optimum_differs_by_objective() -> None:
    """Curves on which EffTox's contour and BOIN12's utility disagree; each design reports its own."""
    p_tox, p_eff = [0.02, 0.10, 0.28], [0.32, 0.45, 0.60]
    eff = EffToxDesign(EffToxConfig(n_doses=3, doses=(1, 2, 4), efficacy_hurdle=0.3, toxicity_hurdle=0.35,
                                    eff0=0.3, tox1=0.2, eff_star=0.5, tox_star=0.1))
    b12 = Boin12Design(Boin12Config(target=0.3, n_doses=3, phi_e=0.3, u11=60, u00=40))
    e, b = eff.true_optimum(p_tox, p_eff), b12.true_optimum(p_tox, p_eff)
    assert e.objective == "EffTox utility" and b.objective == "BOIN12 utility"
    assert e.dose == int(np.argmax(e.value)) and b.dose == int(np.argmax(b.value))
    assert e.dose != b.dose
    assert eff.true_optimum([0.5, 0.6, 0.7], p_eff).dose == NO_DOSE
    assert b12.true_optimum([0.1, 0.2, 0.25], [0.1, 0.2, 0.25]).dose == NO_DOSE  # futile: below phi_e


# ------------------------------------------------------------------------------- 4. results checked


def _tamper(path: Path) -> None:
    """Change one number of a CSV (the 5th field of the first row: a value or difference), or one byte."""
    if path.suffix == ".csv":
        lines = path.read_text().splitlines(keepends=True)
        fields = lines[1].split(",")
        fields[4] = "99.9"
        lines[1] = ",".join(fields)
        path.write_text("".join(lines))
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["oc.csv", "paired.csv", "trials.parquet"])
def test_report_diff_and_rerun_refuse_a_tampered_file(small: dict, tmp_path: Path, name: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(small["run"], run, ignore=shutil.ignore_patterns("units", "report*"))
    before = (run / name).read_bytes()
    _tamper(run / name)
    assert (run / name).read_bytes() != before
    for argv in (["report", str(run), "--format", "html"],
                 ["diff", str(small["run"]), str(run)],
                 ["diff", str(run), str(small["run"])],
                 ["rerun", str(run), "--out", str(tmp_path / "again"), "--no-progress", "--jobs", "1"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(run / name) in err and "SHA-256" in err, (argv, err)
    assert not (tmp_path / "again").exists()  # refused before anything ran
    assert not (run / "report.html").exists()


def test_a_missing_file_or_an_unhashed_manifest_is_refused(small: dict, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(small["run"], run, ignore=shutil.ignore_patterns("units", "report*"))
    (run / "paired.csv").unlink()
    assert main(["report", str(run), "--format", "html"]) == 2
    assert "paired.csv: is missing" in capsys.readouterr().err
    shutil.copyfile(small["run"] / "paired.csv", run / "paired.csv")
    (run / "trials.parquet").unlink()  # optional: nothing reads it; the others are still verified
    assert main(["diff", str(small["run"]), str(run)]) == 0
    capsys.readouterr()
    shutil.copyfile(small["run"] / "trials.parquet", run / "trials.parquet")
    man = json.loads((run / "manifest.json").read_text())
    del man["files_sha256"]
    (run / "manifest.json").write_text(json.dumps(man))
    assert main(["diff", str(small["run"]), str(run)]) == 2
    assert "records no files_sha256" in capsys.readouterr().err


def test_untouched_run_is_accepted_by_report_and_rerun(small: dict, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(small["run"]), str(small["run"])]) == 0
    capsys.readouterr()
    assert main(["rerun", str(small["run"]), "--out", str(tmp_path / "again"), "--no-progress", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "reproduces it" in out and "oc.csv and paired.csv identical" in out


# ---------------------------------------------------------------------------- 5. mixed timing


MIXED = """\
study: {title: mixed, target: 0.3, cohort_size: 3, max_n: 12}
doses: [{amount: 1}, {amount: 2}, {amount: 3}]
designs:
  - {name: BOIN, design: boin}
  - {name: TITE-BOIN, design: tite_boin}
scenarios:
  - {name: s, p_dlt: [0.1, 0.3, 0.5]}
simulation: {n_trials: 60, seed: 3, chunk_size: 30, exact: true}
"""


def test_a_tite_design_without_timing_puts_every_design_in_calendar_time(tmp_path: Path) -> None:
    res = run_study(parse_study(MIXED), n_jobs=1, backend="sequential", out_dir=tmp_path / "run")
    oc = res.oc
    for d in ("BOIN", "TITE-BOIN"):  # no half-filled table: durations for both
        row = oc[(oc.design == d) & (oc.metric == "duration_days")]
        assert len(row) == 1 and row.value.iloc[0] > 0
    timing = res.manifest["timing"]
    assert timing["enabled"] and timing["source"].startswith("default timing for every design")
    assert "TITE-BOIN" in timing["source"] and timing["rate_per_month"] == 1.5
    assert not oc.exact.any()  # exact mode cannot enumerate calendar time: every design says why
    assert {f["design"] for f in res.manifest["exact_fallbacks"]} == {"BOIN", "TITE-BOIN"}
    assert "default timing" in next(f["reason"] for f in res.manifest["exact_fallbacks"] if f["design"] == "BOIN")
    p = res.paired
    assert not p[p.metric == "duration_days"].empty  # durations are paired like any other mean


def test_a_study_without_tite_designs_stays_untimed(small: dict) -> None:
    assert small["manifest"]["timing"]["enabled"] is False
    assert not (small["oc"].metric == "duration_days").any()


def test_trial_table_sorts_by_trial_number() -> None:
    out = _outcomes([0, 1, 2], [[3, 0, 0], [3, 3, 0], [3, 3, 3]])
    shuffled = TrialOutcomes(out.selected[::-1], out.reason, out.n[::-1], out.tox, out.eff, out.both,
                             out.cohorts, out.weight, trial=np.array([2, 1, 0]))
    truth = Truth(np.array([0.1, 0.3, 0.5]), np.zeros(3), 0.3)
    a, b = trial_table(out, truth, max_n=9), trial_table(shuffled, truth, max_n=9)
    for key in a.columns:
        np.testing.assert_array_equal(a.columns[key].num, b.columns[key].num)
