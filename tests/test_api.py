"""The Python API (issue 19): ``escalade.Study`` / ``escalade.Run`` over the layers the command line uses.

A study built in Python is checked by the study file loader itself (same one-line errors as a file), a study
file round-trips through ``to_yaml``, and ``Study.run(out=...)`` writes the run directory of ``escalade run``
with the same results hash. Results are the engine's (``oc.csv``, ``paired.csv``); figures, appendix and diff
are the reports layer's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import escalade as esc
from escalade.cli import main
from escalade.scenarios.errors import StudyError
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.load import parse_study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenarios" / "cart_rr_heme.yaml"

SMALL_YAML = """\
study:
  title: Small study
  target: 0.3
  cohort_size: 3
  max_n: 18
doses:
  - {label: DL1, amount: 10}
  - {label: DL2, amount: 20}
  - {label: DL3, amount: 40}
designs:
  - {name: 3+3, design: 3+3}
  - {name: BOIN, design: boin, params: {extrasafe: true}}
  - {name: Keyboard, design: keyboard}
scenarios:
  - {name: MTD at DL2, p_dlt: [0.1, 0.3, 0.5], p_response: [0.2, 0.4, 0.5]}
  - {name: All toxic, p_dlt: [0.5, 0.6, 0.7]}
simulation: {n_trials: 80, seed: 7, chunk_size: 40}
"""


def small_study() -> esc.Study:
    """SMALL_YAML built from Python objects."""
    return esc.Study(
        title="Small study", target=0.3, cohort_size=3, max_n=18,
        doses=[10, 20, 40],
        designs=[esc.designs.get("3+3")(name="3+3"), esc.designs.BOIN(name="BOIN", extrasafe=True),
                 {"name": "Keyboard", "design": "keyboard"}],
        scenarios=[{"name": "MTD at DL2", "p_dlt": [0.1, 0.3, 0.5], "p_response": [0.2, 0.4, 0.5]},
                   {"name": "All toxic", "p_dlt": [0.5, 0.6, 0.7]}],
        simulation={"n_trials": 80, "seed": 7, "chunk_size": 40})


@pytest.fixture(scope="module")
def small_run() -> esc.Run:
    return small_study().run()


def test_done_when_the_shipped_study_gives_a_data_frame() -> None:
    """Issue 19's first "done when": from_yaml(...).run(n_trials=100, seed=1).oc is a DataFrame."""
    run = esc.Study.from_yaml(EXAMPLE).run(n_trials=100, seed=1)
    oc = run.oc
    assert isinstance(oc, pd.DataFrame)
    assert {"scenario", "design", "metric", "dose", "value", "se", "exact"} <= set(oc.columns)
    study = run.study
    assert set(zip(oc["scenario"], oc["design"])) == {(s.name, d) for s in study.scenarios for d in study.design_names}
    pcs = oc[(oc["metric"] == "correct_selection_pct") & (oc["dose"] == "")]
    # a proportion's Monte Carlo SE, the sample SD of the 0/1 outcomes over sqrt(n): sqrt(p (1 - p) / (n - 1))
    p = pcs["value"].to_numpy() / 100
    assert np.allclose(pcs["se"].to_numpy(), 100 * np.sqrt(p * (1 - p) / 99), atol=1e-6,
                       equal_nan=True)  # NaN where a phase I/II design has no MTD objective
    assert run.manifest["n_trials"] == 100 and run.manifest["seed"] == 1


def test_the_shipped_study_round_trips_through_yaml(tmp_path: Path) -> None:
    a = esc.Study.from_yaml(EXAMPLE)
    path = tmp_path / "again.yaml"
    a.to_yaml(path)
    b = esc.Study.from_yaml(path)
    assert b == a and b.to_yaml() == a.to_yaml()
    assert b.spec.scenarios == a.spec.scenarios and b.spec.designs == a.spec.designs
    ra, rb = a.run(n_trials=20, seed=3), b.run(n_trials=20, seed=3)
    assert ra.results_sha256 == rb.results_sha256
    pd.testing.assert_frame_equal(ra.oc, rb.oc)


def test_a_study_built_in_python_is_the_study_file() -> None:
    built = small_study()
    from_file = esc.Study.from_dict(yaml.safe_load(SMALL_YAML))
    assert built.spec.designs == from_file.spec.designs
    assert built.spec.scenarios == from_file.spec.scenarios
    assert [d.amount for d in built.doses] == [10, 20, 40] and built.spec.max_n == 18
    assert built.run(n_trials=40).results_sha256 == from_file.run(n_trials=40).results_sha256
    assert esc.Study.from_dict(yaml.safe_load(built.to_yaml())) == built


def test_run_out_writes_the_command_line_run_directory(tmp_path: Path) -> None:
    study_file = tmp_path / "small.yaml"
    study_file.write_text(SMALL_YAML)
    assert main(["run", str(study_file), "--out", str(tmp_path / "cli"), "--no-progress", "--jobs", "1"]) == 0
    api = esc.Study.from_yaml(study_file).run(out=tmp_path / "api")
    cli = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    man = json.loads((tmp_path / "api" / "manifest.json").read_text())
    assert api.results_sha256 == cli["results_sha256"] == man["results_sha256"]
    assert man["files_sha256"] == cli["files_sha256"]  # oc.csv, paired.csv and trials.parquet, byte for byte
    assert man["study_sha256"] == cli["study_sha256"]
    reopened = esc.Run.open(tmp_path / "cli")
    pd.testing.assert_frame_equal(reopened.oc.reset_index(drop=True), api.oc.reset_index(drop=True),
                                  check_dtype=False)
    assert reopened.study == api.study and reopened.results_sha256 == api.results_sha256


@pytest.mark.parametrize(("change", "yaml_change"), [
    ({"target": 1.3}, ("target: 0.3", "target: 1.3")),
    ({"doses": [10, 20, 20]}, ("amount: 40", "amount: 20")),
    ({"cohort_sise": 3}, ("cohort_size: 3", "cohort_sise: 3")),
    ({"scenarios": [{"name": "MTD at DL2", "p_dlt": [0.1, 1.3, 0.5]}]}, None),
    ({"designs": [esc.designs.BOIN(name="BOIN", cutoff_eli=1.5)]}, None),
    ({"designs": [{"name": "3+3", "design": "3+3"}, {"name": "BOIN", "design": "bion", "params": {"extrasafe": True}},
                  {"name": "Keyboard", "design": "keyboard"}]}, ("design: boin,", "design: bion,")),
])
def test_errors_are_the_study_file_errors(change: dict, yaml_change: tuple[str, str] | None) -> None:
    with pytest.raises(StudyError) as got:
        small_study().replace(**change)
    message = str(got.value)
    assert "\n" not in message and "Traceback" not in message
    if yaml_change is not None:  # the same line as the file with the same mistake (as `escalade run` checks it)
        with pytest.raises(StudyError) as from_file:
            build_study_designs(parse_study(SMALL_YAML.replace(*yaml_change)))
        assert message == str(from_file.value)
    else:
        assert message.startswith(("scenarios[0].p_dlt[1] = 1.3", "designs[0].params.cutoff_eli = 1.5"))


def test_unknown_design_parameter_is_refused_when_written() -> None:
    from escalade.design.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'cutoff_eli'"):
        esc.designs.BOIN(cutof_eli=0.9)


def test_replace_and_with_scenario_change_only_what_they_name() -> None:
    s = small_study()
    t = s.replace(max_n=12).with_scenario("All toxic", p_dlt=[0.4, 0.5, 0.6])
    assert t.spec.max_n == 12 and s.spec.max_n == 18
    assert t.scenarios[1].p_dlt == (0.4, 0.5, 0.6) and s.scenarios[1].p_dlt == (0.5, 0.6, 0.7)
    assert t.scenarios[0] == s.scenarios[0] and t.spec.designs == s.spec.designs
    assert s.replace(max_n=None).spec.max_n == 30  # removed: the loader's default, 10 cohorts
    with pytest.raises(StudyError, match="did you mean 'All toxic'"):
        s.with_scenario("All toxik", p_dlt=[0.1, 0.2, 0.3])


def test_workers_and_backend_never_change_the_numbers() -> None:
    s = small_study()
    one = s.run(n_trials=80, jobs=1)
    two = s.run(n_trials=80, jobs=2, backend="threading")
    assert one.results_sha256 == two.results_sha256


def test_progress_reports_every_work_unit() -> None:
    calls: list[tuple[int, int, int]] = []
    small_study().run(n_trials=80, progress=lambda *a: calls.append(a))
    units = 2 * 2  # 2 scenarios x 80 / chunk_size 40
    assert calls[0] == (0, units, 0) and calls[-1] == (units, units, 80 * 2)
    assert [c[0] for c in calls] == list(range(units + 1))


def test_cancel_stops_at_the_next_unit_and_the_run_resumes(tmp_path: Path) -> None:
    s = small_study()
    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int, trials: int) -> None:
        seen.append(done)
        if done == 1:
            stop.set()  # as a "cancel" button in another thread would

    with pytest.raises(esc.RunCancelled, match="after 1 of 4 work units"):
        s.run(out=tmp_path / "run", progress=progress, cancel=stop)
    assert seen == [0, 1]
    assert len(list((tmp_path / "run" / "units").glob("unit-*"))) == 1
    resumed = s.run(out=tmp_path / "run")
    assert resumed.results_sha256 == s.run().results_sha256
    with pytest.raises(esc.RunCancelled):
        s.run(cancel=lambda: True)


def test_compare_is_the_paired_difference_of_the_two_means(small_run: esc.Run) -> None:
    oc = small_run.oc
    cmp = small_run.compare("3+3", "BOIN", metric="correct_selection_pct")
    assert list(cmp["scenario"]) == ["MTD at DL2", "All toxic"]
    for r in cmp.itertuples():
        a = oc[(oc.scenario == r.scenario) & (oc.design == "3+3") & (oc.metric == r.metric) & (oc.dose == "")]
        b = oc[(oc.scenario == r.scenario) & (oc.design == "BOIN") & (oc.metric == r.metric) & (oc.dose == "")]
        assert r.difference == pytest.approx(float(a.value.iloc[0]) - float(b.value.iloc[0]), abs=1e-9)
        assert r.se <= r.se_unpaired + 1e-12
    back = small_run.compare("BOIN", "3+3", metric="correct_selection_pct")
    assert np.allclose(back["difference"], -cmp["difference"]) and np.allclose(back["se"], cmp["se"])
    with pytest.raises(KeyError, match="did you mean 'BOIN'"):
        small_run.compare("BION", "3+3")


def test_table_is_one_metric_by_scenario_and_design(small_run: esc.Run) -> None:
    t = small_run.table("correct_selection_pct")
    assert list(t.index) == ["MTD at DL2", "All toxic"] and list(t.columns) == ["3+3", "BOIN", "Keyboard"]
    oc = small_run.oc
    row = oc[(oc.scenario == "All toxic") & (oc.design == "BOIN") & (oc.metric == "correct_selection_pct")]
    assert t.loc["All toxic", "BOIN"] == row.value.iloc[0]
    assert small_run.table("select_pct", dose="DL2", se=True).shape == (2, 3)
    with pytest.raises(KeyError, match="did you mean"):
        small_run.table("correct_selection")


def test_trials_are_one_row_per_scenario_design_and_trial(small_run: esc.Run) -> None:
    trials = small_run.trials
    assert len(trials) == 2 * 3 * 80
    sel = trials[(trials.scenario == "All toxic") & (trials.design == "BOIN")]
    oc = small_run.oc
    none = oc[(oc.scenario == "All toxic") & (oc.design == "BOIN") & (oc.metric == "select_none_pct")]
    assert 100 * sel["selected_dose"].isna().mean() == pytest.approx(none.value.iloc[0])


def test_figures_show_the_run_values(small_run: esc.Run) -> None:
    from matplotlib.figure import Figure

    fig = small_run.plot.selection()
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["MTD at DL2", "All toxic"]
    oc = small_run.oc
    want = oc[(oc.scenario == "MTD at DL2") & (oc.design == "BOIN") & (oc.metric == "select_pct")]
    bars = [c for c in axes[0].containers if c.get_label() == "BOIN"][0]
    assert [round(b.get_height(), 9) for b in bars] == [round(v, 9) for v in want.value]  # DL1..DL3, none
    one = small_run.plot.allocation("All toxic")
    assert len([ax for ax in one.axes if ax.get_visible()]) == 1
    with pytest.raises(StudyError, match="did you mean 'All toxic'"):
        small_run.plot.allocation("All toxik")


def test_report_and_diff(small_run: esc.Run, tmp_path: Path) -> None:
    written = small_run.report(tmp_path / "appendix")
    assert written == [tmp_path / "appendix.html"]
    assert "Small study" in written[0].read_text()
    other = small_run.study.replace(target=0.25).run()
    d = small_run.diff(other)
    assert "study.target" in set(d.inputs["field"]) or any("target" in f for f in d.inputs["field"])
    assert {"change", "se_change", "flagged"} <= set(d.changes.columns)
    assert "target" in str(d)
    with pytest.raises(StudyError, match="path"):
        small_run.report()  # no run directory: say where to write


def test_design_from_a_study_has_the_study_settings() -> None:
    s = small_study()
    boin = s.design("BOIN")
    assert boin.config.n_doses == 3 and boin.config.max_n == 18 and boin.config.extrasafe is True
    assert s.designs == [s.design(n) for n in ["3+3", "BOIN", "Keyboard"]]
    assert [{**d.to_dict(), "params": d.to_dict()["params"] or None} for d in s.designs] == [
        {"name": e["name"], "design": e["design"], "params": e.get("params")}
        for e in yaml.safe_load(SMALL_YAML)["designs"]]
    paths = boin.paths(1, scenario="MTD at DL2")
    assert paths.has_probabilities and paths.leaves()["path_prob"].sum() == pytest.approx(1.0)
    with pytest.raises(StudyError, match="did you mean 'BOIN'"):
        s.design("BION")


def test_import_escalade_stays_light() -> None:
    code = ("import sys, escalade\nprint('pandas' in sys.modules, 'escalade.api' in sys.modules)\n"
            "escalade.Study\nprint('escalade.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True"]
    assert {"Study", "Run", "designs", "__version__"} <= set(esc.__all__)


def test_public_names_have_docstrings_and_type_hints() -> None:
    import inspect

    from escalade import api

    for name in api.__all__:
        obj = getattr(api, name)
        assert (obj.__doc__ or "").strip(), name
    for cls in (api.Study, api.Run, esc.designs.Design):
        for name, member in vars(cls).items():
            if name.startswith("_"):
                continue
            fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if not callable(fn):
                continue
            assert (fn.__doc__ or "").strip(), f"{cls.__name__}.{name} has no docstring"
            assert "return" in fn.__annotations__, f"{cls.__name__}.{name} has no return type"
            sig = inspect.signature(fn)
            missing = [p for p in sig.parameters.values() if p.name not in ("self", "cls")
                       and p.annotation is inspect.Parameter.empty]
            assert not missing, f"{cls.__name__}.{name}: parameters without a type: {missing}"


def test_save_writes_a_run_directory_the_reports_read(small_run: esc.Run, tmp_path: Path) -> None:
    out = small_run.save(tmp_path / "saved")
    again = esc.Run.open(out)
    assert again.results_sha256 == small_run.results_sha256
    pd.testing.assert_frame_equal(again.oc.reset_index(drop=True), small_run.oc.reset_index(drop=True),
                                  check_dtype=False)
    assert main(["diff", str(out), str(out)]) == 0
    with pytest.raises(StudyError, match="not an empty directory"):
        small_run.save(out)


def test_numpy_doses_and_curves_are_plain_numbers() -> None:
    s = small_study().replace(doses=np.array([10.0, 20.0, 40.0]),
                              scenarios=[{"name": "a", "p_dlt": np.array([0.1, 0.3, 0.5])}])
    assert [d.amount for d in s.doses] == [10.0, 20.0, 40.0] and s.scenarios[0].p_dlt == (0.1, 0.3, 0.5)
    assert "!!python" not in s.to_yaml()
    t = esc.Study(target=0.3, doses=np.array([1.0, 2.0]), designs=(esc.designs.BOIN,),
                  scenarios=({"name": "a", "p_dlt": (0.1, 0.3)},))
    assert t.design_names == ["boin"] and [d.label for d in t.doses] == ["DL1", "DL2"]


def test_sections_and_timing_are_study_file_sections() -> None:
    s = small_study()
    timed = s.replace(timing={"accrual": {"process": "fixed", "rate_per_month": 2.0}})
    assert timed.spec.timing.enabled and timed.spec.timing.rate_per_month == 2.0
    assert "timing" in yaml.safe_load(timed.to_yaml())
    assert not timed.replace(sections={"timing": None}).spec.timing.enabled
    with pytest.raises(StudyError, match="timing.accrual.proces"):
        s.replace(sections={"timing": {"accrual": {"proces": "fixed"}}})
    built = esc.Study(target=0.3, doses=[1, 2], designs=[esc.designs.BOIN()], scenarios=[{"name": "a", "p_dlt": [0.1, 0.3]}],
                      sections={"timing": {"accrual": {"rate_per_month": 3}}})
    assert built.spec.timing.rate_per_month == 3
