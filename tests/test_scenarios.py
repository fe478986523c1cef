"""Study-file validation: each malformed-input class gives its named, one-line error."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.errors import StudyError
from escalade.scenarios.load import NonMonotoneWarning, load_study, parse_study

BASE = {
    "study": {"title": "t", "target": 0.3, "cohort_size": 3, "max_n": 12, "start_dose": 1},
    "doses": [{"label": "A", "amount": 1}, {"label": "B", "amount": 2}, {"label": "C", "amount": 3}],
    "designs": [{"name": "BOIN", "design": "boin"}],
    "scenarios": [{"name": "s1", "p_dlt": [0.1, 0.3, 0.5], "p_response": [0.2, 0.3, 0.4]}],
    "simulation": {"n_trials": 10, "seed": 1},
}


def _mutate(path: list, value: object) -> str:
    import copy

    data = copy.deepcopy(BASE)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return yaml.safe_dump(data)


_DELETE = object()


def test_example_loads(example_study_path: Path) -> None:
    study = load_study(example_study_path)
    assert study.n_doses == 5
    names = [s.name for s in study.scenarios]
    assert len(names) >= 8
    assert any("too toxic" in n for n in names) and any("safe" in n for n in names)
    assert {s.mtd(study.target) for s in study.scenarios} >= set(range(5))
    assert build_study_designs(study)


@pytest.mark.parametrize("path,value,field,words", [
    (["scenarios", 0, "p_dlt", 1], 1.5, "scenarios[0].p_dlt[1]", "probability in [0, 1]"),
    (["scenarios", 0, "p_dlt", 1], -0.1, "scenarios[0].p_dlt[1]", "probability in [0, 1]"),
    (["scenarios", 0, "p_dlt", 1], float("nan"), "scenarios[0].p_dlt[1]", "probability"),
    (["scenarios", 0, "p_dlt"], [0.1, 0.2], "scenarios[0].p_dlt", "one value per dose (3 doses)"),
    (["scenarios", 0, "p_response"], "high", "scenarios[0].p_response", "list of 3 probabilities"),
    (["study", "target"], 1.2, "study.target", "strictly between 0 and 1"),
    (["study", "target"], 0, "study.target", "strictly between 0 and 1"),
    (["study", "cohort_size"], 2.5, "study.cohort_size", "whole numbers"),
    (["study", "max_n"], -3, "study.max_n", "integer"),
    (["study", "start_dose"], 7, "study.start_dose", "[1, 3]"),
    (["simulation", "n_trials"], "many", "simulation.n_trials", "integer"),
    (["study", "targt"], 0.3, "study.targt", "did you mean 'target'"),
    (["scenarios", 0, "p_dtl"], [0.1, 0.2, 0.3], "scenarios[0].p_dtl", "did you mean 'p_dlt'"),
    (["simulaton"], {}, "simulaton", "did you mean 'simulation'"),
    (["study", "target"], _DELETE, "study.target", "is required"),
    (["doses", 1, "amount"], 0.5, "doses", "increase strictly"),
    (["designs", 0, "design"], "bion", "designs[0].design", "did you mean 'boin'"),
])
def test_malformed_input_names_field(path: list, value: object, field: str, words: str) -> None:
    text = _mutate(path, value)
    with pytest.raises(StudyError) as err:
        study = parse_study(text, source="bad.yaml")
        build_study_designs(study)
    msg = str(err.value)
    assert msg.startswith("bad.yaml: "), msg
    assert err.value.field == field, msg
    assert words in msg, msg
    assert "\n" not in msg


def test_design_param_errors_name_file_and_path() -> None:
    text = _mutate(["designs", 0, "params"], {"cutoff_eli": 1.5})
    with pytest.raises(StudyError) as err:
        build_study_designs(parse_study(text, source="f.yaml"))
    assert err.value.field == "designs[0].params.cutoff_eli"
    text = _mutate(["designs", 0, "params"], {"cutof_eli": 0.9})
    with pytest.raises(StudyError, match="did you mean 'cutoff_eli'"):
        build_study_designs(parse_study(text, source="f.yaml"))


def test_yaml_hazards_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not valid YAML"):
        parse_study("study: !!python/object:os.system {}\n", source="x.yaml")
    bomb = "a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(StudyError, match="aliases"):
        parse_study(bomb, source="x.yaml")
    with pytest.raises(StudyError, match="not valid YAML"):
        parse_study("study: [unclosed\n", source="x.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("study:\n  title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(StudyError, match="UTF-8"):
        load_study(bad)
    with pytest.raises(StudyError, match="does not exist"):
        load_study(tmp_path / "missing.yaml")


def test_numbers_written_as_1e6_are_accepted() -> None:
    text = _mutate(["doses", 2, "amount"], "1.0e6")
    assert parse_study(text).doses[2].amount == 1e6


def test_non_monotone_curve_warns() -> None:
    text = _mutate(["scenarios", 0, "p_dlt"], [0.3, 0.1, 0.5])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        parse_study(text, source="w.yaml")
    assert any(issubclass(w.category, NonMonotoneWarning) and "p_dlt" in str(w.message) for w in rec)


def test_flag_parameters_must_be_booleans() -> None:
    text = _mutate(["designs", 0, "params"], {"extrasafe": "yes"})
    with pytest.raises(StudyError) as err:
        build_study_designs(parse_study(text, source="f.yaml"))
    assert err.value.field == "designs[0].params.extrasafe" and "true or false" in str(err.value)
