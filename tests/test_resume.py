"""Resumable, atomic, locked run directories (issue 7).

A run killed with SIGKILL resumes without recomputing its finished work units
and ends with the results of an uninterrupted run; the lock it leaves behind
is recognised as stale; a second run into a directory in use refuses; a run of
changed inputs refuses, naming what changed, unless ``--force``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from escalade.cli import main
from escalade.scenarios.load import parse_study
from escalade.simulations.runner import BackendError
from escalade.simulations.study_run import RunDirError, run_study

#: Big enough to take a few seconds on one core (4 scenarios x 80 units of 250 trials, three designs). BOIN
#: and 3+3 alone run in the compiled kernel in well under a second, so it has a CRM too: the kill and
#: concurrency tests need a run that is still going.
BIG = """\
study: {title: kill test, target: 0.3, cohort_size: 3, max_n: 30}
doses: [{amount: 1}, {amount: 2}, {amount: 3}, {amount: 4}, {amount: 5}]
designs: [{name: "3+3", design: "3+3"}, {name: BOIN, design: boin},
          {name: CRM, design: crm, params: {skeleton: [0.12, 0.20, 0.30, 0.40, 0.50]}}]
scenarios:
  - {name: a, p_dlt: [0.05, 0.12, 0.30, 0.45, 0.60], p_response: [0.1, 0.2, 0.3, 0.4, 0.5]}
  - {name: b, p_dlt: [0.30, 0.45, 0.58, 0.68, 0.78]}
  - {name: c, p_dlt: [0.02, 0.04, 0.08, 0.15, 0.30]}
  - {name: d, p_dlt: [0.12, 0.30, 0.45, 0.58, 0.70]}
simulation: {n_trials: 20000, seed: 7, chunk_size: 250}
"""

SMALL = """\
study: {title: small, target: 0.3, cohort_size: 3, max_n: 18}
doses: [{amount: 1}, {amount: 2}, {amount: 3}]
designs: [{name: BOIN, design: boin, params: {cutoff_eli: 0.95}}]
scenarios:
  - {name: s1, p_dlt: [0.1, 0.3, 0.5]}
  - {name: s2, p_dlt: [0.05, 0.1, 0.3]}
simulation: {n_trials: 300, seed: 1, chunk_size: 50}
"""


# The CLI subprocesses run in tmp_path; PYTHONPATH makes them import this checkout (not whatever
# escalade is installed), the code the reference run in this process uses.
_CHECKOUT_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "escalade", *args]


def _wait_for(cond, what: str, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _units(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "units").glob("unit-*.npy")}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sigkill_then_rerun_resumes_and_matches_uninterrupted(tmp_path: Path) -> None:
    study = tmp_path / "big.yaml"
    study.write_text(BIG)
    out = tmp_path / "run"
    cmd = _cli("run", str(study), "--out", str(out), "--jobs", "1", "--no-progress")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, env=_CHECKOUT_ENV)
    try:
        _wait_for(lambda: len(list((out / "units").glob("unit-*.npy"))) >= 8 or proc.poll() is not None,
                  "the first work units")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    assert not (out / "manifest.json").exists(), "the run finished before it was killed; make BIG bigger"
    lock = json.loads((out / ".lock").read_text())  # left behind by the killed run
    assert lock["pid"] == proc.pid and lock["host"] == socket.gethostname()
    before = _units(out)
    assert 8 <= len(before) < 320

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=_CHECKOUT_ENV, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "removing a stale lock" in again.stderr and f"process {proc.pid}" in again.stderr
    after = _units(out)
    assert len(after) == 320
    assert {k: after[k] for k in before} == before, "finished units were recomputed (rewritten)"
    assert not (out / ".lock").exists()
    assert not list(out.rglob(".tmp-*")), "a half-written file was left behind"

    ref = tmp_path / "ref"
    assert main(["run", str(study), "--out", str(ref), "--jobs", "2", "--no-progress"]) == 0
    m_resumed = json.loads((out / "manifest.json").read_text())
    m_ref = json.loads((ref / "manifest.json").read_text())
    assert m_resumed["results_sha256"] == m_ref["results_sha256"]
    assert (out / "oc.csv").read_bytes() == (ref / "oc.csv").read_bytes()
    assert (out / "paired.csv").read_bytes() == (ref / "paired.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "trials.parquet"), pd.read_parquet(ref / "trials.parquet"))


def test_second_concurrent_run_refuses(tmp_path: Path) -> None:
    study = tmp_path / "big.yaml"
    study.write_text(BIG)
    out = tmp_path / "run"
    cmd = _cli("run", str(study), "--out", str(out), "--jobs", "1", "--no-progress")
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_CHECKOUT_ENV)
    try:
        _wait_for(lambda: (out / ".lock").exists() or first.poll() is not None, "the first run's lock")
        second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=_CHECKOUT_ENV, timeout=120)
        assert first.poll() is None, "the first run ended before the second started; make BIG bigger"
    finally:
        _, err = first.communicate(timeout=300)
    assert second.returncode == 2
    msg = second.stderr.strip().splitlines()[-1]
    assert "another escalade run is writing here" in msg and f"process {first.pid}" in msg, second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err  # the refused run did not disturb the first one
    assert len(_units(out)) == 320 and (out / "manifest.json").exists()


def test_stale_and_live_locks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    study = parse_study(SMALL, source="small.yaml")
    out = tmp_path / "run"
    out.mkdir()
    host = socket.gethostname()

    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": host}))  # a live process
    with pytest.raises(RunDirError, match=f"another escalade run is writing here .process {os.getppid()} on"):
        run_study(study, out_dir=out)
    (out / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": f"not-{host}"}))  # cannot check
    with pytest.raises(RunDirError, match="lock"):
        run_study(study, out_dir=out)
    (out / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": host, "pid_ns": "pid:[1]"}))  # container
    with pytest.raises(RunDirError, match="lock"):
        run_study(study, out_dir=out)

    dead = _dead_pid()
    (out / ".lock").write_text(json.dumps({"pid": dead, "host": host}))
    with caplog.at_level(logging.WARNING, logger="escalade.simulations.study_run"):
        run_study(study, out_dir=out)
    assert f"removing a stale lock (process {dead} on {host} is no longer running)" in caplog.text
    assert not (out / ".lock").exists()

    # a PID that was reused by another process: the recorded start time tells them apart
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": host, "proc_start": "-1"}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="escalade.simulations.study_run"):
        run_study(study, out_dir=out)
    assert "PID now belongs to another process" in caplog.text


def test_lock_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src, dst) -> None:
        raise PermissionError(1, "Operation not permitted")  # as on some network file systems

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(RunDirError, match="another escalade run"):
        run_study(parse_study(SMALL), out_dir=out)
    (out / ".lock").unlink()
    run_study(parse_study(SMALL), out_dir=out)
    assert (out / "manifest.json").exists() and not (out / ".lock").exists()


def test_unit_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from escalade.simulations import unit_file

    study = parse_study(SMALL, source="small.yaml")
    run_study(study, out_dir=tmp_path / "run")
    unit = sorted((tmp_path / "run" / "units").glob("unit-*.npy"))[0]
    good = unit.read_bytes()
    rec = unit_file.load_unit(unit, 1, 0, study.simulation.chunk_size)
    assert rec is not None

    def disk_full(fh, arr, **kw) -> None:
        fh.write(b"\x93NUMPY half an array")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(unit_file.np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        unit_file.save_unit(unit, rec)
    assert unit.read_bytes() == good  # the finished unit is untouched
    with pytest.raises(OSError):
        unit_file.save_unit(unit.with_name("unit-s0009-c000000.npy"), rec)
    assert not unit.with_name("unit-s0009-c000000.npy").exists()  # never a half-written unit
    assert not list(unit.parent.glob(".tmp-*"))


def test_truncated_unit_is_recomputed(tmp_path: Path) -> None:
    study = parse_study(SMALL, source="small.yaml")
    out = tmp_path / "run"
    first = run_study(study, out_dir=out)
    unit = sorted((out / "units").glob("unit-*.npy"))[3]
    unit.write_bytes(unit.read_bytes()[:100])  # as if copied by a tool that is not atomic
    second = run_study(study, out_dir=out)
    assert second.manifest["results_sha256"] == first.manifest["results_sha256"]
    assert len(unit.read_bytes()) > 100


def test_units_in_the_earlier_zip_format_are_recomputed(tmp_path: Path) -> None:
    study = parse_study(SMALL, source="small.yaml")
    out = tmp_path / "run"
    first = run_study(study, out_dir=out)
    unit = sorted((out / "units").glob("unit-*.npy"))[2]
    old = unit.with_suffix(".npz")
    old.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip, as the first unit format was a zip
    unit.unlink()
    second = run_study(study, out_dir=out)
    assert second.manifest["results_sha256"] == first.manifest["results_sha256"]
    assert unit.exists() and not old.exists()


def test_changed_inputs_refuse_naming_them_unless_force(tmp_path: Path, capsys) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    out = tmp_path / "run"
    base = ["run", str(path), "--out", str(out), "--jobs", "1", "--no-progress"]
    assert main(base) == 0
    capsys.readouterr()

    path.write_text(SMALL.replace("[0.1, 0.3, 0.5]", "[0.1, 0.35, 0.5]").replace("cutoff_eli: 0.95", "cutoff_eli: 0.9"))
    assert main([*base, "--seed", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "holds a run of different inputs" in err
    assert "scenarios[0].p_dlt[1]: 0.3 -> 0.35" in err
    assert "designs[0].params.cutoff_eli: 0.95 -> 0.9" in err
    assert "seed 1 -> 9" in err
    assert "n_trials" not in err and "chunk_size" not in err  # unchanged inputs are not named
    assert "--force" in err

    assert main([*base, "--seed", "9", "--force"]) == 0
    forced = json.loads((out / "manifest.json").read_text())
    assert forced["seed"] == 9
    fresh = run_study(parse_study(path.read_text(), source=str(path)), seed=9, out_dir=tmp_path / "fresh")
    assert forced["results_sha256"] == fresh.manifest["results_sha256"]  # no unit of the old run was reused

    path.write_text(path.read_text() + "# a comment\n")
    with pytest.raises(RunDirError, match=r"study file \w+ -> \w+ \(comments or formatting only\)"):
        run_study(parse_study(path.read_text(), source=str(path)), seed=9, out_dir=out)
    with pytest.raises(RunDirError, match=r"changed: n_trials 300 -> 200\. Use another --out"):
        run_study(parse_study(path.read_text().replace("# a comment\n", ""), source=str(path)), seed=9,
                  n_trials=200, out_dir=out)


def test_failed_start_leaves_no_run_directory(tmp_path: Path, capsys) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    out = tmp_path / "new" / "run"
    with pytest.raises(BackendError, match="cannot connect to the dask scheduler at bogus://nowhere"):
        run_study(parse_study(SMALL), backend="dask", scheduler="bogus://nowhere", out_dir=out)
    assert not out.exists()
    assert main(["run", str(path), "--out", str(out), "--trials", "2000000"]) == 2
    assert "max_trials" in capsys.readouterr().err
    assert not out.exists()


def test_rerun_regenerates_and_verifies_the_results_hash(tmp_path: Path, capsys) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    run = tmp_path / "run"
    assert main(["run", str(path), "--out", str(run), "--jobs", "1", "--no-progress"]) == 0
    path.unlink()  # the manifest alone is enough
    capsys.readouterr()

    assert main(["rerun", str(run), "--jobs", "2", "--backend", "threading", "--no-progress"]) == 0
    out = capsys.readouterr().out
    original = json.loads((run / "manifest.json").read_text())
    again = json.loads((tmp_path / "run-rerun" / "manifest.json").read_text())
    assert f"reproduces it: results_sha256 {original['results_sha256']}" in out
    assert again["results_sha256"] == original["results_sha256"] and again["study_text"] == SMALL
    assert (run / "oc.csv").read_bytes() == (tmp_path / "run-rerun" / "oc.csv").read_bytes()

    assert main(["rerun", str(run), "--no-progress"]) == 2  # a finished re-run is not reused
    assert "already holds a finished run" in capsys.readouterr().err

    tampered = dict(original, results_sha256="0" * 64)
    (run / "manifest.json").write_text(json.dumps(tampered))
    assert main(["rerun", str(run), "--out", str(tmp_path / "again"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not reproduce it" in err
    assert "0" * 64 in err and original["results_sha256"] in err

    edited = dict(original, study_text=SMALL.replace("seed: 1", "seed: 2"))
    (run / "manifest.json").write_text(json.dumps(edited))
    assert main(["rerun", str(run), "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "study_text does not match study_sha256" in capsys.readouterr().err
    (run / "manifest.json").unlink()
    assert main(["rerun", str(run), "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "manifest.json does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_an_edited_decision_table_csv_is_a_changed_input(tmp_path: Path, capsys) -> None:
    """The run's inputs include the files a design reads: editing the protocol's decision-table CSV after a run
    refuses to resume into that folder (naming the file's field), as editing the study file does; the study text
    alone being unchanged is not enough."""
    from escalade.design.decision_table import boin_decision_table

    table = tmp_path / "table.csv"
    table.write_text(boin_decision_table(0.25, 6).to_csv())
    study = tmp_path / "study.yaml"
    study.write_text(
        "study: {title: tables, target: 0.25, cohort_size: 3, max_n: 6}\n"
        "doses: [{amount: 1}, {amount: 2}, {amount: 3}]\n"
        "designs:\n  - {name: TB, design: decision_table, params: {table: table.csv}}\n"
        "scenarios:\n  - {name: A, p_dlt: [0.1, 0.25, 0.5]}\n")
    out = tmp_path / "run"
    base = ["run", str(study), "--out", str(out), "--jobs", "1", "--no-progress", "--trials", "50"]
    assert main(base) == 0
    assert main(base) == 0  # same files: the run is resumed
    capsys.readouterr()

    edited = table.read_text().replace("4,1,S", "4,1,D")
    assert edited != table.read_text()
    table.write_text(edited)
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "holds a run of different inputs" in err
    assert "designs[0].params.table" in err
    assert "study file" not in err  # the study text did not change
