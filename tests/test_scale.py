"""Scale-out (issue 7): the dask backend, determinism across workers/backends/order, progress, unit sizing.

Every figure must be bit-identical whatever runs the work units: one
process or many, loky, threads or a dask.distributed cluster of any size, in
any completion order (DESIGN.md sections 3 and 6).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from escalade.cli import main
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.scenarios.load import parse_study
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.runner import (
    ScenarioSpec,
    _dask_client,
    _worker_trim,
    plan_units,
    run_unit,
    run_units,
)
from escalade.simulations.study_run import results_hash, run_study
from escalade.simulations.unit_file import load_unit, pack, save_unit, unpack

distributed = pytest.importorskip("distributed")

DESIGNS = [ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5, allow_deescalation=True)),
           BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30, extrasafe=True))]
SCENARIOS = [ScenarioSpec("MTD at DL3", (0.05, 0.12, 0.30, 0.45, 0.60), (0.15, 0.35, 0.55, 0.65, 0.70)),
             ScenarioSpec("toxic", (0.30, 0.45, 0.58, 0.68, 0.78), (0.3,) * 5, association=0.3),
             ScenarioSpec("safe", (0.02, 0.04, 0.08, 0.15, 0.30), (0.1, 0.2, 0.3, 0.4, 0.5))]
N_TRIALS, CHUNK, SEED = 700, 100, 20261124  # 3 scenarios x 7 chunks = 21 units, the last ones not full
FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "trial")

STUDY = """\
study: {title: scale, target: 0.3, cohort_size: 3, max_n: 24}
doses: [{amount: 1}, {amount: 2}, {amount: 3}, {amount: 4}]
designs: [{name: "3+3", design: "3+3"}, {name: BOIN, design: boin}]
scenarios:
  - {name: s1, p_dlt: [0.05, 0.15, 0.3, 0.45], p_response: [0.1, 0.2, 0.3, 0.4], association: 0.2}
  - {name: s2, p_dlt: [0.3, 0.4, 0.5, 0.6]}
simulation: {n_trials: 600, seed: 3, chunk_size: 100}
"""


def _assert_same(a: dict[tuple[int, int], TrialOutcomes], b: dict[tuple[int, int], TrialOutcomes]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        for f in FIELDS:
            x, y = getattr(a[key], f), getattr(b[key], f)
            assert x.dtype == y.dtype, (key, f)
            np.testing.assert_array_equal(x, y, err_msg=f"{key} {f}")


def _run(**kw) -> dict[tuple[int, int], TrialOutcomes]:
    return run_units(SCENARIOS, DESIGNS, n_trials=N_TRIALS, seed=SEED, chunk_size=CHUNK, **kw)


@pytest.fixture(scope="module")
def reference() -> dict[tuple[int, int], TrialOutcomes]:
    return _run(n_jobs=1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-threaded worker processes, as a small cluster would have."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def test_dask_backend_equals_loky_bit_for_bit(reference, cluster) -> None:
    loky = _run(n_jobs=2, backend="loky")
    dask = _run(n_jobs=2, backend="dask", scheduler=cluster.scheduler_address)
    _assert_same(reference, loky)
    _assert_same(loky, dask)
    named = {(str(s), str(d)): o for (s, d), o in dask.items()}
    assert results_hash(named) == results_hash({(str(s), str(d)): o for (s, d), o in loky.items()})


@pytest.mark.parametrize("n_jobs", [1, 2, 4])
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_identical_for_any_number_of_local_workers(reference, backend: str, n_jobs: int) -> None:
    _assert_same(reference, _run(n_jobs=n_jobs, backend=backend))


def test_identical_for_any_number_of_dask_workers(reference, cluster) -> None:
    with distributed.Client(cluster) as client:
        try:
            for workers in (4, 1):
                cluster.scale(workers)
                client.wait_for_workers(workers, timeout=60)
                _wait(lambda: len(client.nthreads()) == workers)
                _assert_same(reference, _run(backend="dask", scheduler=cluster.scheduler_address))
        finally:
            cluster.scale(2)
            client.wait_for_workers(2, timeout=60)


def _wait(cond, timeout: float = 30.0) -> None:
    import time

    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "the cluster did not reach its size"
        time.sleep(0.05)


def test_dask_without_address_starts_and_closes_a_local_cluster(reference, monkeypatch) -> None:
    nanny_env = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "PYTHONHASHSEED")
    for name in nanny_env:
        monkeypatch.delenv(name, raising=False)  # as dask's nannies may have left them by now
    from distributed.client import _global_clients

    before = {id(c) for c in list(_global_clients.values())}  # other tests' fixtures may hold clients
    calls: list[tuple[int, int, int]] = []
    got = _run(n_jobs=2, backend="dask", progress=lambda *a: calls.append(a))
    _assert_same(reference, got)
    assert calls[-1] == (21, 21, 3 * N_TRIALS)
    # the cluster it started is gone: no client of its own is left open
    left = [c for c in list(_global_clients.values()) if id(c) not in before and c.status != "closed"]
    assert not left
    assert not set(nanny_env) & set(os.environ)  # this process's environment is left as it was
    with _dask_client(None, 1) as client:  # the cluster a run starts: workers without dask's malloc setting
        assert set(client.run(_worker_trim).values()) == {None}
        assert len(client.nthreads()) == 1
    assert not set(nanny_env) & set(os.environ)


def test_workers_with_dasks_malloc_setting_are_reported(cluster, caplog) -> None:
    with distributed.Client(cluster) as client:
        trim = set(client.run(_worker_trim).values())
    assert trim == {"65536"}  # dask's default for the workers of a LocalCluster
    with caplog.at_level(logging.WARNING, logger="escalade.simulations.runner"):
        run_units(SCENARIOS[:1], DESIGNS[:1], n_trials=200, seed=1, chunk_size=100, backend="dask",
                  scheduler=cluster.scheduler_address)
    assert "MALLOC_TRIM_THRESHOLD_=65536" in caplog.text


def _save_unit(path: Path, outs: list[TrialOutcomes]) -> None:
    save_unit(path, pack(outs))


def test_unit_files_are_compact_and_load_back_exactly(tmp_path: Path) -> None:
    units = plan_units(1, 300, 300)
    outs = run_unit(units[0], SCENARIOS[0], DESIGNS, SEED)
    _save_unit(tmp_path / units[0].filename, outs)
    rec = np.load(tmp_path / units[0].filename, allow_pickle=False)  # a plain .npy record array, no pickle
    assert rec.shape == (300,)
    assert rec[f"1:n:{outs[1].n.dtype.str}"].dtype == np.int8
    assert rec[f"1:trial:{outs[1].trial.dtype.str}"].dtype == np.int16
    assert not any(":weight:" in name for name in rec.dtype.names)  # 1/T, not stored
    back = unpack(load_unit(tmp_path / units[0].filename, len(DESIGNS), 0, 300))
    _assert_same({(0, d): o for d, o in enumerate(outs)}, {(0, d): o for d, o in enumerate(back)})
    for a, b in zip(outs, back):
        np.testing.assert_array_equal(a.weight, b.weight)
        for f in FIELDS:
            assert getattr(a, f).dtype == getattr(b, f).dtype


def test_unit_round_trip_keeps_times_and_other_weights() -> None:
    t = 4
    o = TrialOutcomes(np.array([0, 1, -1, 2]), np.array([1, 2, 3, 1], np.int8), np.full((t, 3), 3),
                      np.ones((t, 3), int), np.zeros((t, 3), int), np.zeros((t, 3), int), np.array([2, 3, 1, 4]),
                      np.array([0.1, 0.2, 0.3, 0.4]), trial=np.arange(10, 14),
                      duration=np.array([100.5, 200.25, 30.0, 1e6]), suspensions=np.array([0, 70000, 2, 1]))
    back = unpack(pack([o]))[0]
    for f in (*FIELDS, "weight", "duration", "suspensions"):
        np.testing.assert_array_equal(getattr(back, f), getattr(o, f))
        assert getattr(back, f).dtype == getattr(o, f).dtype


def test_a_unit_file_of_other_trials_or_designs_is_not_used(tmp_path: Path, caplog) -> None:
    u = plan_units(1, 300, 100)[1]
    _save_unit(tmp_path / u.filename, run_unit(u, SCENARIOS[0], DESIGNS, SEED))
    assert load_unit(tmp_path / u.filename, len(DESIGNS), 100, 100) is not None
    with caplog.at_level(logging.WARNING):
        assert load_unit(tmp_path / u.filename, len(DESIGNS), 0, 100) is None  # another chunk's trials
        assert load_unit(tmp_path / u.filename, 1, 100, 100) is None  # another study's designs
    assert "recomputing it" in caplog.text


def test_any_completion_order_gives_the_same_results(reference, tmp_path: Path) -> None:
    units = plan_units(len(SCENARIOS), N_TRIALS, CHUNK)
    order = list(units)
    random.Random(5).shuffle(order)
    done = {u: run_unit(u, SCENARIOS[u.scenario], DESIGNS, SEED) for u in order}
    for s in range(len(SCENARIOS)):
        for d in range(len(DESIGNS)):
            cat = TrialOutcomes.concat([done[u][d] for u in units if u.scenario == s])
            for f in FIELDS:
                np.testing.assert_array_equal(getattr(cat, f), getattr(reference[(s, d)], f))
    # resume from a unit directory filled in a scrambled order, half of it
    for u in order[: len(order) // 2]:
        _save_unit(tmp_path / u.filename, done[u])
    _assert_same(reference, _run(n_jobs=2, unit_dir=tmp_path))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_each_scenario_is_handed_over_once_when_its_units_are_in(reference, tmp_path: Path, n_jobs: int) -> None:
    units = plan_units(len(SCENARIOS), N_TRIALS, CHUNK)
    for u in units[:7]:  # scenario 0 entirely on disk already: handed over before any unit runs
        _save_unit(tmp_path / u.filename, run_unit(u, SCENARIOS[u.scenario], DESIGNS, SEED))
    seen: list[int] = []
    units_done: list[int] = []

    def on_scenario(s: int, outs: list[TrialOutcomes]) -> None:
        seen.append(s)
        assert len(outs) == len(DESIGNS)
        if s == 0:
            assert units_done == []  # resumed from disk: handed over before the first unit runs
        else:
            assert units_done[-1] >= 7 * len(seen)  # every unit of the scenarios handed over so far is in
        _assert_same({(s, d): reference[(s, d)] for d in range(len(DESIGNS))}, {(s, d): o for d, o in enumerate(outs)})

    got = _run(n_jobs=n_jobs, unit_dir=tmp_path, on_scenario=on_scenario,
               progress=lambda done, total, trials: units_done.append(done))
    assert sorted(seen) == [0, 1, 2] and seen[0] == 0
    assert list(got) == sorted(reference)  # scenario, then design order, whatever finished first
    _assert_same(reference, got)


def test_run_directory_is_identical_for_one_and_two_workers(tmp_path: Path) -> None:
    import pandas as pd

    study = parse_study(STUDY, source="s.yaml")
    one = run_study(study, n_jobs=1, out_dir=tmp_path / "one")
    two = run_study(study, n_jobs=2, out_dir=tmp_path / "two")
    assert one.manifest["results_sha256"] == two.manifest["results_sha256"]
    for name in ("oc.csv", "paired.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one" / "trials.parquet"),
                                  pd.read_parquet(tmp_path / "two" / "trials.parquet"), check_exact=True)


def test_cli_dask_backend_run_equals_loky_run(tmp_path: Path, cluster) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STUDY)
    common = ["run", str(path), "--no-progress", "--jobs", "2"]
    assert main([*common, "--out", str(tmp_path / "loky")]) == 0
    assert main([*common, "--out", str(tmp_path / "dask"), "--backend", "dask",
                 "--scheduler", cluster.scheduler_address]) == 0
    m_loky = json.loads((tmp_path / "loky" / "manifest.json").read_text())
    m_dask = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    assert m_dask["backend"] == "dask"
    assert m_dask["results_sha256"] == m_loky["results_sha256"]
    assert (tmp_path / "loky" / "oc.csv").read_bytes() == (tmp_path / "dask" / "oc.csv").read_bytes()
    assert len(list((tmp_path / "dask" / "units").glob("unit-*.npy"))) == 12  # written here, by the driver


@pytest.mark.parametrize("backend", ["sequential", "loky", "threading", "dask"])
def test_progress_reports_units_and_trials_for_every_backend(backend: str, cluster, tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []
    kw = {"scheduler": cluster.scheduler_address} if backend == "dask" else {}
    units = plan_units(len(SCENARIOS), N_TRIALS, CHUNK)
    for u in units[:5]:  # some units already on disk: progress starts from them
        _save_unit(tmp_path / u.filename, run_unit(u, SCENARIOS[u.scenario], DESIGNS, SEED))
    _run(n_jobs=2, backend=backend, unit_dir=tmp_path, progress=lambda *a: calls.append(a), **kw)
    assert calls[0] == (5, 21, 500)
    assert len(calls) == 1 + 16  # once at the start, then once per unit run
    assert [c[0] for c in calls] == list(range(5, 22))
    assert all(c[1] == 21 for c in calls)
    assert all(b[2] > a[2] for a, b in zip(calls, calls[1:]))
    assert calls[-1] == (21, 21, 3 * N_TRIALS)


def test_cli_progress_bar_shows_units_and_trials_per_second(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STUDY)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "12/12" in err and "unit" in err and "trials/s" in err and "1200 trials" in err


def test_unit_layout_depends_on_the_study_only(caplog) -> None:
    units = plan_units(3, 1050, 100)
    assert len(units) == 3 * 11 and units[-1].size == 50
    assert [u.filename for u in units] == [u.filename for u in plan_units(3, 1050, 100)]
    with caplog.at_level(logging.WARNING, logger="escalade.simulations.runner"):
        run_units(SCENARIOS[:1], DESIGNS[:1], n_trials=100, seed=1, chunk_size=100, n_jobs=2, backend="threading")
    assert "only 1 work units for 2 workers" in caplog.text and "chunk_size" in caplog.text


def test_study_run_with_dask_scheduler_records_backend(tmp_path: Path, cluster) -> None:
    study = parse_study(STUDY, source="s.yaml")
    a = run_study(study, n_jobs=1)
    b = run_study(study, backend="dask", scheduler=cluster.scheduler_address, out_dir=tmp_path / "o")
    assert a.manifest["results_sha256"] == b.manifest["results_sha256"]
    assert b.manifest["backend"] == "dask"


def test_trials_parquet_is_streamed_in_row_groups(tmp_path, monkeypatch):
    """A simulated run writes trials.parquet scenario by scenario in bounded row groups (issue 18), and the
    file reads back as the whole trial table; no temporary file is left behind."""
    import pandas as pd
    import pyarrow.parquet as pq

    import escalade.simulations.study_run as sr

    monkeypatch.setattr(sr, "TRIAL_ROWS_PER_GROUP", 250)
    study = parse_study(STUDY, source="scale.yaml")
    res = run_study(study, out_dir=tmp_path / "run", backend="sequential")
    f = pq.ParquetFile(tmp_path / "run" / "trials.parquet")
    assert f.num_row_groups == 2 * 2 * 3  # scenarios x designs x ceil(600 / 250)
    assert max(f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)) <= 250
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run" / "trials.parquet"),
                                  sr.trials_frame(study, res.outcomes))
    assert not list((tmp_path / "run").glob(".tmp-*"))
    # a run that fails after some rows were streamed leaves no temporary file either
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sr, "write_run", boom)
    with pytest.raises(OSError):
        run_study(study, out_dir=tmp_path / "run2", backend="sequential")
    assert not list((tmp_path / "run2").glob(".tmp-*"))
