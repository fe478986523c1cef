"""Dose-transition pathways (simulations/paths.py).

Trees are compared node by node with the R package escalation 0.2.3's
``get_dose_paths`` (validation/reference/escalation/escalation_nodes_*.json); path
probabilities are checked against the exact enumeration, which merges states
and so is computed a different way.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

from _toy_designs import SelectsCurrent, ToyPhase12
from conftest import load_reference
from escalade.design.base import States
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.simulations.exact import exact_outcomes
from escalade.simulations.paths import (
    HistoryError, TooManyPathsError, dose_paths, format_paths, history_states, parse_history,
)
from escalade.reports.paths_figure import plot_paths

CURVE_A = [0.05, 0.10, 0.25, 0.40, 0.55]


def _reference_tree(name: str) -> dict[str, tuple[int, int | None]]:
    """escalation node file -> {"NNN NNT ...": (depth, next_dose)} keyed by the outcome sequence."""
    rows = load_reference("escalation", f"escalation_nodes_{name}.json")
    by_id = {r["node"]: r for r in rows}
    out = {}
    for r in rows:
        seq, x = [], r
        while x["parent"] != "NA":
            seq.append(x["outcomes"])
            x = by_id[x["parent"]]
        out[" ".join(reversed(seq))] = (r["depth"], None if r["next_dose"] == "NA" else int(r["next_dose"]))
    return out


def _my_tree(paths, column: str = "next_dose", leaf_column: str | None = None) -> dict[str, tuple[int, int | None]]:
    out = {}
    for row in paths.table.itertuples(index=False):
        key = " ".join(tok[1:] for tok in row.path.split())
        col = leaf_column if (leaf_column and row.stop and row.depth == paths.n_cohorts) else column
        v = getattr(row, col)
        out[key] = (row.depth, None if pd.isna(v) else int(v))
    return out


def test_boin_tree_equals_escalation() -> None:
    # escalation_nodes_boin.json: get_boin(num_doses = 5, target = 0.25) %>%
    #   get_dose_paths(cohort_sizes = rep(3, 4)); next_dose after every node (NA = stop).
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=30))
    ref = _reference_tree("boin")
    mine = _my_tree(dose_paths(design, 4))
    assert len(mine) == len(ref) == 173
    assert mine == ref


def test_boin_stop12_tree_equals_escalation() -> None:
    # escalation_nodes_boin_stop12_select_mtd.json: get_boin(...) %>% stop_at_n(n = 12) %>%
    #   select_boin_mtd(); after 12 patients the "next dose" printed is select.mtd's MTD.
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=12))
    paths = dose_paths(design, 4)
    assert _my_tree(paths, leaf_column="selected") == _reference_tree("boin_stop12_select_mtd")
    leaves = paths.leaves()
    assert (leaves["reason"].isin(["max sample size", "all doses too toxic"])).all()


@pytest.mark.skipif(importlib.util.find_spec("escalade.design.crm") is None,
                    reason="design/crm.py is not in this checkout yet")
def test_crm_tree_equals_escalation() -> None:
    # escalation_nodes_crm_empiric.json: get_dfcrm(skeleton = c(0.05, 0.12, 0.25, 0.40, 0.55),
    #   target = 0.25) %>% get_dose_paths(cohort_sizes = rep(3, 4))  (skipping allowed)
    from escalade.design.registry import build_design

    design = build_design("crm", {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55], "no_skip": "off", "coherence": "off"},
                          {"target": 0.25, "n_doses": 5, "cohort_size": 3, "max_n": 30, "start_dose": 0})
    assert _my_tree(dose_paths(design, 4)) == _reference_tree("crm_empiric")


@pytest.mark.parametrize("design,p_tox,p_eff,rho,k", [
    (BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=12)), CURVE_A, None, 0.0, 4),
    (ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=3, allow_deescalation=True)), [0.1, 0.3, 0.5], None, 0.0, 6),
    (ToyPhase12(), [0.1, 0.3, 0.5], [0.2, 0.5, 0.7], 0.3, 5),
    (SelectsCurrent(BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=15))), CURVE_A, None, 0.0, 5),
], ids=["boin", "3+3", "toy12", "select-reads-path-state"])
def test_path_probabilities_equal_exact_enumeration(design, p_tox, p_eff, rho, k) -> None:
    paths = dose_paths(design, k, p_tox=p_tox, p_eff=p_eff, association=rho)
    leaves = paths.leaves()
    assert abs(leaves["path_prob"].sum() - 1.0) <= 1e-12
    assert (leaves["stop"]).all(), "k is large enough for every path to end"
    ex = exact_outcomes(design, p_tox, p_eff, association=rho)
    nd = design.n_doses
    sel = leaves["selected"].fillna(0).astype(int).to_numpy()        # 0 = none, 1-based otherwise
    from_paths = np.bincount(sel, weights=leaves["path_prob"].to_numpy(), minlength=nd + 1)
    from_exact = np.bincount(ex.selected + 1, weights=ex.weight, minlength=nd + 1)
    np.testing.assert_allclose(from_paths, from_exact, rtol=0, atol=1e-13)
    # expected DLTs per dose: sum over nodes of P(node) x (DLTs of its cohort)
    nodes = paths.table[paths.table["depth"] > 0]
    dlt_paths = np.bincount(nodes["dose"].astype(int) - 1, weights=nodes["path_prob"] * nodes["n_tox"],
                            minlength=nd)
    np.testing.assert_allclose(dlt_paths, (ex.tox * ex.weight[:, None]).sum(axis=0), atol=1e-13)


def test_history_is_parsed_and_decided() -> None:
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=30))
    cohorts = parse_history("1NNN 2NTN", 5)
    assert [(c.dose, c.outcomes) for c in cohorts] == [(0, "NNN"), (1, "NTN")]
    assert parse_history("1nnn2ntn", 5) == cohorts                    # spaces optional, any case
    st = history_states(cohorts, 5)
    assert st.n[0].tolist() == [3, 3, 0, 0, 0] and st.tox[0].tolist() == [0, 1, 0, 0, 0]
    assert (int(st.current[0]), int(st.last_n[0]), int(st.last_tox[0])) == (1, 3, 1)
    paths = dose_paths(design, 1, "1NNN 2NTN")
    root = paths.table.iloc[0]
    dec = design.decide(st)
    assert root["next_dose"] == dec.dose[0] + 1 and root["path"] == "1NNN 2NTN"
    # each child's next dose is decide() on the child's state
    for row in paths.table.iloc[1:].itertuples(index=False):
        child = history_states(parse_history(row.path, 5), 5)
        assert row.next_dose == design.decide(child).dose[0] + 1


def test_phase12_history_letters() -> None:
    st = history_states(parse_history("1NEB 1TTN", 3), 3)
    assert (st.n[0, 0], st.tox[0, 0], st.eff[0, 0], st.both[0, 0]) == (6, 3, 2, 1)
    paths = dose_paths(ToyPhase12(), 1, "1NE")
    assert set(paths.table.columns) >= {"n_eff", "n_both"}
    # a cohort of 2 has C(2 + 3, 3) = 10 outcomes in four cells
    assert len(paths.table) == 1 + math.comb(5, 3)
    assert set(paths.table["outcome"].iloc[1:]) >= {"NN", "EE", "TB", "BB", "NE"}


@pytest.mark.parametrize("text,pos,fix", [
    ("1NNN 2NXN", 7, "use N (no event)"),
    ("1NNN 7NN", 5, "doses are numbered 1 to 5"),
    ("1NNN 2", 5, "at least one patient letter"),
    ("NNN", 0, "dose number then one letter per patient"),
])
def test_bad_history_names_the_character_and_fix(text: str, pos: int, fix: str) -> None:
    with pytest.raises(HistoryError) as info:
        parse_history(text, 5)
    assert info.value.position == pos
    assert fix in str(info.value)


def test_text_csv_and_figure(tmp_path) -> None:
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=30))
    paths = dose_paths(design, 2, "1NNN", p_tox=CURVE_A)
    text = format_paths(paths)
    lines = text.splitlines()
    assert lines[1] == "now: next dose 2"
    assert lines[2].startswith("├─ 2 NNN -> 3") and "p = 0.729" in lines[2]
    assert len(lines) == 2 + len(paths.table) - 1
    assert "|- " in format_paths(paths, ascii=True)
    csv_path = tmp_path / "paths.csv"
    paths.to_csv(csv_path)
    back = pd.read_csv(csv_path)
    assert back["path"].tolist() == paths.table["path"].tolist()
    out = plot_paths(paths, tmp_path / "paths.png")
    assert out.stat().st_size > 5_000


def test_stop_is_a_leaf_with_reason_and_selection() -> None:
    design = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=3))
    paths = dose_paths(design, 3)
    row = paths.table[paths.table["path"] == "1TTT"].iloc[0]
    assert row["stop"] and row["leaf"] and row["reason"] == "all doses too toxic" and pd.isna(row["selected"])
    row = paths.table[paths.table["path"] == "1NNN 2NNN 3NNN"].iloc[0]
    assert row["stop"] and row["selected"] == 3 and row["reason"] == "design rule complete"
    assert "stop (design rule complete, select dose 3)" in format_paths(paths)


def test_node_limit() -> None:
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=30))
    with pytest.raises(TooManyPathsError, match="fewer cohorts"):
        dose_paths(design, 8, max_nodes=1000)


def test_root_after_a_complete_trial() -> None:
    design = BoinDesign(BoinConfig(target=0.25, n_doses=3, max_n=6))
    paths = dose_paths(design, 2, "1NNN 2NNN")
    assert len(paths.table) == 1
    root = paths.table.iloc[0]
    assert root["stop"] and root["reason"] == "max sample size" and root["selected"] == 2
    assert isinstance(history_states([], 3, 1), States)
