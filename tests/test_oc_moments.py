"""Issue 18: operating characteristics from accumulated moments, and runs whose memory is flat in the trials.

* :class:`~escalade.simulations.oc_moments.OcAccumulator` gives the values, SEs and paired differences of the
  whole-table formulas (:mod:`escalade.simulations.oc`) to <= 1e-12 of the larger of the value and its SE,
  whatever the order the blocks come in, with SE exactly 0 where every trial has the same influence value;
* a run above ``KEEP_OUTCOMES_TRIALS`` (summarised as its units come in, outcomes read back from the unit
  files) writes byte-identical oc.csv, paired.csv and trials.parquet, and the same results hash and outcomes,
  as the same run held in memory, for any workers, and after a resume;
* its traced peak memory does not grow with the number of trials.
"""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import escalade.simulations.oc_moments as ocm
import escalade.simulations.study_run as sr
from escalade.scenarios.load import parse_study
from escalade.simulations.oc import PerTrial, TrialTable, oc_rows, paired_from_tables
from escalade.simulations.oc_moments import OcAccumulator, block_units
from escalade.simulations.oc_stream import StoredOutcomes, accumulate_tables, slice_table

T = 3000
BOUNDS = [0, 700, 1400, 2100, 2800, 3000]


def _tables() -> dict[str, TrialTable]:
    """Three designs on the same trials: ``C`` equals ``A`` on every trial; means, ratios, a ratio whose
    denominator is 0 in the first block, a ratio equal to 0.4 in every trial, a constant column."""
    rng = np.random.default_rng(18)
    raw = {}
    for d in "AB":
        n = rng.integers(0, 30, T)
        tox = rng.binomial(n, 0.3)
        has = rng.random(T) < 0.7
        late = has.copy()
        late[:BOUNDS[1]] = False
        raw[d] = {("patients", ""): PerTrial(n), ("dlt_rate", ""): PerTrial(tox, n),
                  ("select_pct", "DL1"): PerTrial(has, None, 100.0),
                  ("orr_selected", ""): PerTrial(np.where(has, 0.4, 0.0), has),
                  ("late", ""): PerTrial(np.where(late, rng.random(T), 0.0), late),
                  ("sample_size", ""): PerTrial(np.full(T, 30.0)),
                  ("duration_days", ""): PerTrial(rng.gamma(9.0, 40.0, T))}
    raw["C"] = raw["A"]
    w = np.full(T, 1.0 / T)
    return {d: TrialTable(np.arange(T), w, False, dict(cols)) for d, cols in raw.items()}


def _blocks(tables: dict[str, TrialTable]) -> list[dict[str, TrialTable]]:
    return [{d: slice_table(t, a, b) for d, t in tables.items()} for a, b in zip(BOUNDS[:-1], BOUNDS[1:])]


def _close(new: pd.Series, old: pd.Series, scale: pd.Series) -> None:
    assert np.array_equal(np.isnan(new), np.isnan(old))
    ok = np.isfinite(old)
    assert np.all(np.abs(new[ok] - old[ok]) <= 1e-12 * np.maximum(scale[ok], 1e-300)), (new[ok] - old[ok]).abs().max()


def test_accumulated_blocks_equal_the_whole_table_formulas() -> None:
    tables = _tables()
    acc = OcAccumulator()
    order = list(range(len(BOUNDS) - 1))
    random.Random(1).shuffle(order)
    blocks = _blocks(tables)
    for i in order:
        acc.add(i, blocks[i])
    assert acc.n_trials == T and acc.pending == 0
    for d, t in tables.items():
        old, new = oc_rows(t, design=d), acc.oc_rows(d)
        pd.testing.assert_frame_equal(old.drop(columns=["value", "se"]), new.drop(columns=["value", "se"]))
        scale = np.maximum(old.value.abs(), old.se)
        _close(new.value, old.value, scale)
        _close(new.se, old.se, scale)
    old, new = paired_from_tables(tables), acc.paired()
    pd.testing.assert_frame_equal(old.drop(columns=["difference", "se", "se_unpaired"]),
                                  new.drop(columns=["difference", "se", "se_unpaired"]))
    oc = oc_rows(tables["A"]).set_index("metric")["value"].abs()
    scale = np.maximum(old.metric.map(oc), old.se)
    for c in ("difference", "se", "se_unpaired"):
        _close(new[c], old[c], scale)
    same = new[new.design == "C"]  # C equals A on every trial
    assert (same[same.versus == "A"][["difference", "se"]] == 0).all().all()
    est = dict(zip(acc.estimates("A")[0], acc.estimates("A")[2]))
    assert est[("sample_size", "")] == 0.0 and est[("orr_selected", "")] < 1e-15  # the same in every trial


def test_the_order_blocks_come_in_changes_nothing() -> None:
    blocks = _blocks(_tables())
    runs = []
    for seed in (1, 2):
        acc = OcAccumulator()
        order = list(range(len(blocks)))
        random.Random(seed).shuffle(order)
        for i in order:
            acc.add(i, blocks[i])
        runs.append((acc.oc_rows("B"), acc.paired()))
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0], check_exact=True)
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1], check_exact=True)


def test_an_incomplete_or_inconsistent_set_of_blocks_is_refused() -> None:
    blocks = _blocks(_tables())
    acc = OcAccumulator()
    acc.add(1, blocks[1])
    with pytest.raises(ValueError, match="wait for block 0"):
        acc.oc_rows("A")
    with pytest.raises(ValueError, match="added twice"):
        acc.add(1, blocks[1])
    with pytest.raises(ValueError, match="all_stop_reasons=True"):
        acc.add(0, {d: t for d, t in blocks[0].items() if d != "C"})
    assert block_units(500) * 500 >= ocm.OC_BLOCK_TRIALS


STUDY = """\
study: {title: flat, target: 0.3, cohort_size: 3, max_n: 12}
doses: [{amount: 1}, {amount: 2}, {amount: 3}]
designs: [{name: BOIN, design: boin}, {name: "3+3", design: "3+3"}, {name: TB, design: tite_boin}]
scenarios:
  - {name: s1, p_dlt: [0.05, 0.25, 0.5], p_response: [0.1, 0.2, 0.3]}
  - {name: s2, p_dlt: [0.4, 0.6, 0.7]}
simulation: {n_trials: 400, seed: 5, chunk_size: 30}
"""
FILES = ("oc.csv", "paired.csv", "trials.parquet")


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sr.RunResult]:
    """The study run with every scenario's outcomes held in memory (blocks of 4 units: 120 trials; trial rows in
    groups of 150: each group ends inside a unit)."""
    out = tmp_path_factory.mktemp("held") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ocm, "OC_BLOCK_TRIALS", 100)
        mp.setattr(sr, "TRIAL_ROWS_PER_GROUP", 150)
        return out, sr.run_study(parse_study(STUDY, source="flat.yaml"), out_dir=out, backend="sequential")


def _streamed(out: Path, monkeypatch: pytest.MonkeyPatch, **kw) -> sr.RunResult:
    monkeypatch.setattr(ocm, "OC_BLOCK_TRIALS", 100)
    monkeypatch.setattr(sr, "TRIAL_ROWS_PER_GROUP", 150)
    monkeypatch.setattr(sr, "KEEP_OUTCOMES_TRIALS", 0)
    return sr.run_study(parse_study(STUDY, source="flat.yaml"), out_dir=out, **kw)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kw", [{"backend": "sequential"}, {"backend": "threading", "n_jobs": 2}])
def test_a_run_that_keeps_no_outcomes_writes_the_same_files(held, tmp_path: Path, monkeypatch, kw) -> None:
    ref_dir, ref = held
    res = _streamed(tmp_path / "run", monkeypatch, **kw)
    assert isinstance(res.outcomes, StoredOutcomes)
    assert all(res.outcomes.stored(k) is not None for k in res.outcomes)  # nothing held in memory
    for f in FILES:
        assert (tmp_path / "run" / f).read_bytes() == (ref_dir / f).read_bytes(), f
    assert res.manifest["results_sha256"] == ref.manifest["results_sha256"] == sr.results_hash(res.outcomes)
    assert list(res.outcomes) == list(ref.outcomes)
    key = ("s2", "TB")
    a, b = res.outcomes[key], ref.outcomes[key]
    for f in ("selected", "reason", "n", "tox", "eff", "cohorts", "trial", "duration", "weight"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    pd.testing.assert_frame_equal(res.oc, ref.oc, check_exact=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_resumed_run_that_keeps_no_outcomes_writes_the_same_files(held, tmp_path: Path, monkeypatch) -> None:
    ref_dir, _ = held
    out = tmp_path / "run"
    _streamed(out, monkeypatch, backend="sequential")
    units = sorted((out / "units").glob("unit-*"))
    for p in [*units[::2], *(out / f for f in FILES)]:
        p.unlink()
    _streamed(out, monkeypatch, backend="sequential")
    for f in FILES:
        assert (out / f).read_bytes() == (ref_dir / f).read_bytes(), f


def test_memory_of_a_run_that_keeps_no_outcomes_is_flat_in_the_trials(tmp_path: Path, monkeypatch) -> None:
    """Traced peak (numpy's buffers included) at 4x the trials within 1.25x (issue 18's target at 10x: 1.5x)."""
    text = ("study: {title: m, target: 0.3, cohort_size: 3, max_n: 30}\n"
            "doses: [{amount: 1}, {amount: 2}, {amount: 3}, {amount: 4}, {amount: 5}]\n"
            "designs: [{name: BOIN, design: boin}]\n"
            "scenarios: [{name: s, p_dlt: [0.05, 0.15, 0.3, 0.45, 0.6], p_response: [0.1, 0.2, 0.3, 0.4, 0.5]}]\n"
            "simulation: {n_trials: 100, seed: 3, chunk_size: 2000}\n")
    monkeypatch.setattr(ocm, "OC_BLOCK_TRIALS", 2000)
    monkeypatch.setattr(sr, "KEEP_OUTCOMES_TRIALS", 0)
    monkeypatch.setattr(sr, "TRIAL_ROWS_PER_GROUP", 2000)
    study = parse_study(text, source="m.yaml")
    sr.run_study(study, n_trials=2000, out_dir=tmp_path / "warm", backend="sequential")  # imports, compiles
    peaks = {}
    for n in (8000, 32000):
        tracemalloc.start()
        sr.run_study(study, n_trials=n, out_dir=tmp_path / f"r{n}", backend="sequential")
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[32000] <= 1.25 * peaks[8000], peaks


def test_whole_tables_cut_into_blocks_match_blocks_added_one_by_one() -> None:
    tables = _tables()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ocm, "OC_BLOCK_TRIALS", 700)
        a = accumulate_tables(tables, n_trials=T, chunk_size=700)
    b = OcAccumulator()
    for i, blk in enumerate(_blocks(tables)):
        b.add(i, blk)
    pd.testing.assert_frame_equal(a.oc_rows("A"), b.oc_rows("A"), check_exact=True)
    pd.testing.assert_frame_equal(a.paired(), b.paired(), check_exact=True)


@pytest.mark.parametrize("module", ["escalade.simulations.oc_moments", "escalade.simulations.oc_time"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
