"""``escalade.designs``: one class per registered design kind, answering as the command line does.

The classes come from the registry (a design registered later gets one too); ``decision_table`` equals
BOIN's published boundaries and the table designs' own tables; ``next_dose`` and ``paths`` are
``escalade next-dose`` and ``escalade paths``.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pandas as pd
import pytest
from _toy_designs import ENTRY as TOY

import escalade as esc
from escalade.design import registry
from escalade.design.decision_table import design_table
from escalade.design.errors import ConfigError
from escalade.simulations.conduct import format_next_dose, next_dose
from escalade.simulations.paths import dose_paths

ROOT = Path(__file__).resolve().parents[1]
PATIENTS = ROOT / "scenarios" / "patients_example.csv"


def test_every_registered_kind_has_a_class() -> None:
    classes = esc.designs.kinds()
    assert list(classes) == [e.kind for e in registry.entries()]
    for e in registry.entries():
        klass = classes[e.kind]
        assert getattr(esc.designs, klass.__name__) is klass and klass.__name__ in esc.designs.__all__
        assert esc.designs.get(e.kind) is klass
        for alias in e.aliases:
            assert esc.designs.get(alias) is klass
        names = [f.name for f in dataclasses.fields(e.config) if f.init]
        assert [p for p in inspect.signature(klass).parameters if p != "name"] == names
        assert e.citation in klass.__doc__
    assert esc.designs.BOIN.kind == "boin" and esc.designs.THREE_PLUS_THREE.kind == "3+3"
    assert esc.designs.TITE_BOIN.kind == "tite_boin" and esc.designs.I3PLUS3.kind == "i3+3"


def test_a_design_registered_later_is_found_too() -> None:
    with registry.registered(TOY):
        toy = esc.designs.TOY12(name="Toy", max_n=6)
        assert toy.build().max_n == 6 and toy.to_dict() == {"name": "Toy", "design": "toy12", "params": {"max_n": 6}}
        assert "TOY12" in dir(esc.designs)
    with pytest.raises(AttributeError, match="kinds\\(\\) lists them"):
        esc.designs.TOY12  # noqa: B018 - gone with its registration


def test_boin_decision_table_is_boin_get_boundary() -> None:
    """BOIN::get.boundary(target = 0.3, ncohort = 10, cohortsize = 3) (BOIN 2.7.2), as the README prints it."""
    t = esc.designs.BOIN(target=0.3).decision_table()
    assert list(t["n"]) == list(range(3, 31, 3))
    assert list(t["escalate_if_dlt_le"]) == [0, 1, 2, 2, 3, 4, 4, 5, 6, 7]
    assert list(t["deescalate_if_dlt_ge"]) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert list(t["eliminate_if_dlt_ge"]) == [3, 4, 5, 7, 8, 9, 10, 11, 12, 14]
    assert "stop_lowest_if_dlt_ge" not in t
    safe = esc.designs.BOIN(target=0.3, extrasafe=True).decision_table(max_n=12, cohort_size=1)
    assert list(safe["n"]) == list(range(1, 13)) and "stop_lowest_if_dlt_ge" in safe


@pytest.mark.parametrize("kind", ["keyboard", "mtpi2", "i3+3"])
def test_table_designs_give_their_own_table(kind: str) -> None:
    d = esc.designs.get(kind)(target=0.25, cohort_size=3, max_n=24)
    own = design_table(registry.build_design(kind, {"target": 0.25, "cohort_size": 3, "max_n": 24, "n_doses": 2}))
    want = own.table(3, 24)
    got = d.decision_table()
    assert list(got["n"]) == want["n"]
    assert [None if pd.isna(v) else int(v) for v in got["eliminate_if_dlt_ge"]] == want["eliminate_if_ntox_ge"]
    assert list(got["escalate_if_dlt_le"]) == want["escalate_if_ntox_le"]


def test_a_model_based_design_has_no_decision_table() -> None:
    with pytest.raises(ConfigError, match="has no decision table.*paths"):
        esc.designs.CRM(target=0.3, n_doses=3, skeleton=[0.1, 0.2, 0.3]).decision_table()


def test_missing_study_setting_says_how_to_give_it() -> None:
    with pytest.raises(ConfigError, match=r"n_doses .*pass BOIN\(n_doses=\.\.\.\)"):
        esc.designs.BOIN(target=0.3).next_dose(PATIENTS)


def test_next_dose_is_escalade_next_dose_from_a_file_or_a_data_frame() -> None:
    d = esc.designs.BOIN(target=0.3, n_doses=5)
    want = next_dose(d.build(), PATIENTS, name=str(PATIENTS), as_of=pd.Timestamp("2025-04-14").date(), target=0.3)
    from_file = d.next_dose(PATIENTS, as_of="2025-04-14")
    from_frame = d.next_dose(pd.read_csv(PATIENTS, comment="#"), as_of="2025-04-14")
    for got in (from_file, from_frame):
        assert got.next_dose == want.next_dose and got.reason == want.reason and got.stop == want.stop
        pd.testing.assert_frame_equal(got.table, want.table)
    assert str(from_file) == format_next_dose(want)
    bad = pd.read_csv(PATIENTS, comment="#")
    bad.loc[1, "dose_level"] = 9
    with pytest.raises(Exception, match="dose_level") as err:
        d.next_dose(bad, as_of="2025-04-14")
    assert "\n" not in str(err.value).splitlines()[0]


def test_paths_are_escalade_paths() -> None:
    d = esc.designs.BOIN(target=0.3, n_doses=4)
    curve = [0.05, 0.15, 0.3, 0.45]
    got = d.paths(2, "1NNN", p_dlt=curve)
    want = dose_paths(d.build(), 2, "1NNN", p_tox=curve)
    pd.testing.assert_frame_equal(got.table, want.table)
    assert got.leaves()["path_prob"].sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="needs a design taken from a study"):
        d.paths(1, scenario="MTD at DL3")


def test_replace_and_equality() -> None:
    a = esc.designs.BOIN(name="B", target=0.3, extrasafe=True)
    b = a.replace(extrasafe=None, cutoff_eli=0.9)
    assert b.params == {"target": 0.3, "cutoff_eli": 0.9} and b.name == "B"
    assert a != b and esc.designs.Design.from_dict(a.to_dict()) == a
    with pytest.raises(ConfigError, match="did you mean 'cutoff_eli'"):
        esc.designs.BOIN(cutof_eli=0.9)
    with pytest.raises(ConfigError, match="must be a probability"):
        esc.designs.BOIN(target=0.3, n_doses=3, cutoff_eli=1.5).build()
    with pytest.raises(TypeError, match="base class"):
        esc.designs.Design()


@pytest.mark.parametrize("module", ["escalade.designs", "escalade.api"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
