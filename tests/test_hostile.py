"""Hostile study files (issue 7) and hostile environments (issue 13, section 2).

Study files, property-based:

Each test starts from a valid study file and breaks it: wrong types, missing
and extra keys, NaN and infinities, negative counts, probabilities outside
[0, 1], huge numbers of doses, trials or list entries, non-UTF-8 bytes, alias
bombs, deep nesting, duplicate keys and tags such as ``!!python/object``. Every
outcome must be either a valid study or a :class:`StudyError` whose one-line
message starts with the file and names the field; never another exception,
never a hang (hypothesis ``deadline``), and ``escalade run --out DIR`` must
not create DIR when it refuses the file.

Environments (second half of this file): ``--out`` at a file or under
``/proc``, a read-only directory or file system, a full disk during ``run``
(then the same command resumes to the same results hash), ``report --xlsx`` on
names with control characters, ``--jobs 1000``, a run killed by ``SIGKILL`` or
``SIGTERM`` (its workers stop with it), names that a spreadsheet would run as
formulas, ``max_n`` below the cohort size and all-zero curves. Real small and
read-only file systems (tmpfs) are used where this machine lets the tests
mount one (root); refusals that cannot be made real (root is not stopped by
``chmod``) are simulated in a subprocess by patching the refused system call,
as each test says.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.cli import main
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.errors import StudyError
from escalade.scenarios.load import load_study, parse_study
from escalade.scenarios.study import LIMITS

BASE: dict[str, Any] = {
    "study": {"title": "hostile", "target": 0.3, "cohort_size": 3, "max_n": 12, "start_dose": 1,
              "dlt_window_days": 28, "response_days": 90},
    "doses": [{"label": "A", "amount": 1.0, "unit": "mg"}, {"label": "B", "amount": 2.0, "unit": "mg"},
              {"label": "C", "amount": 3.0, "unit": "mg"}],
    "designs": [{"name": "BOIN", "design": "boin", "params": {"cutoff_eli": 0.95, "extrasafe": True}},
                {"name": "3+3", "design": "3+3", "params": {"allow_deescalation": False}}],
    "scenarios": [{"name": "s1", "p_dlt": [0.1, 0.3, 0.5], "p_response": [0.2, 0.3, 0.4], "association": 0.2},
                  {"name": "s2", "p_dlt": [0.05, 0.1, 0.3], "description": "safe"}],
    "simulation": {"n_trials": 20, "seed": 1, "chunk_size": 10, "exact": False},
    "timing": {"accrual": {"process": "list", "rate_per_month": 2.0, "days": [0, 3, 9]},
               "dlt_onset": {"distribution": "early"}, "enrolment": {"mode": "cohort", "stagger_days": 0}},
}

#: Fields of the file (no list index) that a change elsewhere may legitimately be reported under.
CROSS_FIELDS = {"doses", "designs", "scenarios", "scenarios[].p_dlt", "scenarios[].p_response", "study.start_dose",
                "simulation.chunk_size", "simulation.n_trials", "timing.accrual.days", "timing.enrolment.stagger_days"}
FILE_FIELDS = re.compile(r"^(file|YAML|line \d+)$")

SETTINGS = settings(max_examples=120, deadline=5000, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


def _at(data: Any, path: tuple) -> Any:
    for k in path:
        data = data[k]
    return data


MAPPING_PATHS = [()] + [p for p in PATHS if isinstance(_at(BASE, p), dict)]


def _dotted(path: tuple) -> str:
    out = ""
    for k in path:
        if not isinstance(k, int) and (not k.isprintable() or len(k) > 40):
            return out  # the error shows such a key quoted; compare the parent's path only
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def _strip_indices(field: str) -> str:
    return re.sub(r"\[\d+\]", "[]", field)


_HUGE_INT = (st.integers(min_value=2**53, max_value=10**400) | st.integers(min_value=-(10**400), max_value=-1)
             | st.sampled_from([501, 10_000, 100_001, 10**6, 10**9, 10**15]))
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), _HUGE_INT,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e308, -1e-308, 1.5, -0.1, 2, 0, -1]),
    st.text(max_size=30), st.sampled_from(["", " ", "\n", "nan", ".inf", "1e999", "0x1F", "yes", "~", "1_000"]),
    st.binary(max_size=8), st.dates(),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


@st.composite
def structural_mutations(draw: st.DrawFn) -> tuple[bytes, tuple, str]:
    """One change to the parsed study: a value replaced, a key removed or added, a list made huge."""
    data = copy.deepcopy(BASE)
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "huge"]))
    if kind == "extra":
        path = draw(st.sampled_from(MAPPING_PATHS))
        key = draw(st.text(min_size=1, max_size=12) | st.sampled_from(
            ["titel", "n_trial", "p_dtl", "Target", "max_n", "n_earlystop", "cohort_size", "start_dose", "skeleton",
             "offset", "titration", "days"]))
        node = _at(data, path)
        if key in node:
            key += "_x"
        node[key] = draw(_VALUES)
        return _dump(data), (*path, key), kind
    if kind == "huge":
        path = draw(st.sampled_from([("doses",), ("scenarios",), ("designs",), ("scenarios", 0, "p_dlt"),
                                     ("timing", "accrual", "days")]))
        n = draw(st.sampled_from([LIMITS["max_doses"] + 1, LIMITS["max_designs"] + 1, LIMITS["max_scenarios"] + 1,
                                  LIMITS["max_list_items"] + 1, 5000]))
        node = _at(data, path[:-1])
        template = node[path[-1]][-1]
        node[path[-1]] = [copy.deepcopy(template) for _ in range(n)]
        return _dump(data), path, kind
    path = draw(st.sampled_from(PATHS))
    parent = _at(data, path[:-1])
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(_VALUES)
    return _dump(data), path, kind


def _check_error(err: StudyError, source: str) -> None:
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    assert msg.startswith(f"{source}: "), msg
    assert isinstance(err.field, str) and err.field, msg
    assert err.field in msg, msg
    assert len(msg) < 1000, msg


def _validate(text: bytes, workdir: Path) -> StudyError | None:
    """Load, build the designs and try ``escalade run``; return the StudyError, if any."""
    path = workdir / "study.yaml"
    path.write_bytes(text)
    out = workdir / "run"
    error = None
    try:
        study = load_study(path)
        build_study_designs(study)
    except StudyError as exc:
        _check_error(exc, str(path))
        error = exc
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["run", str(path), "--out", str(out), "--jobs", "1", "--trials", "3", "--no-progress"])
    err_text = stderr.getvalue()
    if error is not None:
        assert rc == 2, (rc, err_text)
        assert not out.exists(), f"a run directory was left behind: {sorted(p.name for p in out.rglob('*'))}"
    else:
        assert rc in (0, 2), (rc, err_text)
        if rc == 2:  # refused at run time (a limit only a built design knows): same rules
            assert not out.exists()
    if rc == 2:
        lines = [ln for ln in err_text.splitlines() if ln.startswith("escalade: error: ")]
        assert len(lines) == 1 and "Traceback" not in err_text, err_text
    return error


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    """One full run first, so that import time does not count against the deadline of an example."""
    with tempfile.TemporaryDirectory() as d:
        assert _validate(_dump(BASE), Path(d)) is None


@SETTINGS
@given(structural_mutations())
def test_structural_mutations_give_named_one_line_errors(mutation: tuple[bytes, tuple, str]) -> None:
    text, path, kind = mutation
    with tempfile.TemporaryDirectory() as d:
        error = _validate(text, Path(d))
    if error is None or FILE_FIELDS.match(error.field):
        return
    field, mutated = _strip_indices(error.field), _strip_indices(_dotted(path))
    related = (field.startswith(mutated) or mutated.startswith(field) or field in CROSS_FIELDS
               or field.startswith("designs[].params.") or mutated.startswith("study."))
    assert related, f"changed {_dotted(path)} ({kind}) but the error names {error.field}: {error}"


_TAGGED = ["!!python/object/apply:os.system ['echo pwned']", "!!python/name:os.system", "!!python/object:object {}",
           "!!python/tuple [1, 2]", "!custom 0.3", "!!binary aGVsbG8=", "!!timestamp 2026-01-01", "!!set {a, b}",
           "!!omap [{a: 1}]", "!!float 0.3", "!!str 0.3", "!!int 3", "!!null ''", "!!bool yes", "!!map {a: 1}"]


@st.composite
def text_mutations(draw: st.DrawFn) -> bytes:
    """Changes to the bytes of a valid file: tags, aliases, nesting, bad bytes, truncation, duplicates."""
    text = _dump(BASE)
    kind = draw(st.sampled_from(["tag", "alias_bomb", "alias", "nest", "bytes", "truncate", "duplicate",
                                 "long_number", "bom", "control"]))
    lines = text.split(b"\n")
    if kind == "tag":
        i = draw(st.sampled_from([k for k, ln in enumerate(lines) if b": " in ln and not ln.rstrip().endswith(b":")]))
        key = lines[i].split(b": ", 1)[0]
        lines[i] = key + b": " + draw(st.sampled_from(_TAGGED)).encode()
        return b"\n".join(lines)
    if kind == "alias_bomb":
        depth = draw(st.integers(2, 12))
        bomb = ["lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        bomb += [f"lol{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, depth)]
        return ("\n".join(bomb) + "\n").encode() + text
    if kind == "alias":
        return text.replace(b"target: 0.3", b"target: &t 0.3", 1).replace(b"cutoff_eli: 0.95", b"cutoff_eli: *t")
    if kind == "nest":
        depth = draw(st.sampled_from([30, 200, 5000, 50000]))
        return text.replace(b"target: 0.3", b"target: " + b"[" * depth + b"0.3" + b"]" * depth, 1)
    if kind == "bytes":
        pos = draw(st.integers(0, len(text)))
        bad = draw(st.binary(min_size=1, max_size=4).filter(lambda b: _not_utf8(b)))
        return text[:pos] + bad + text[pos:]
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "duplicate":
        i = draw(st.sampled_from([k for k, ln in enumerate(lines) if b": " in ln]))
        return b"\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
    if kind == "long_number":
        digits = draw(st.sampled_from([400, 4301, 20000]))
        return text.replace(b"n_trials: 20", b"n_trials: " + b"9" * digits, 1)
    if kind == "bom":
        return b"\xef\xbb\xbf" + text
    ch = draw(st.sampled_from(["\x00", "\x07", "\x1b", "\u2028", "\ufffe", "\x85"]))
    pos = draw(st.integers(0, len(text)))
    return text[:pos] + ch.encode("utf-8", "surrogatepass") + text[pos:]


def _not_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@SETTINGS
@given(text_mutations())
def test_text_mutations_give_named_one_line_errors(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        _validate(text, Path(d))


def test_the_base_study_is_valid_and_runs(tmp_path: Path) -> None:
    assert _validate(_dump(BASE), tmp_path) is None
    assert (tmp_path / "run" / "manifest.json").exists()


@pytest.mark.parametrize("text,field,words", [
    (b"just text\n", "file", "must be a mapping"),
    (b"[1, 2]\n", "file", "must be a mapping"),
    (_dump(BASE).replace(b"title: hostile", b"title: !!binary aGVsbG8="), "study.title", "tag"),
    (_dump(BASE).replace(b"title: hostile", b"title: !!timestamp 2026-01-01"), "study.title", "tag"),
    (_dump(BASE).replace(b"  title: hostile", b'  "bad\\nkey": 1\n  title: hostile'), "study.'bad\\nkey'",
     "unknown key"),
    (b"a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\n", "b[0]", "aliases"),
    (_dump(BASE).replace(b"target: 0.3", b"target: !!python/object/apply:os.system ['true']"), "study.target", "tag"),
    (_dump(BASE).replace(b"n_trials: 20", b"n_trials: " + b"9" * 5000), "simulation.n_trials", "digits"),
    (_dump(BASE).replace(b"n_trials: 20", b"n_trials: " + b"9" * 500), "simulation.n_trials", "500 digits"),
    (_dump(BASE).replace(b"n_trials: 20", b"n_trials: " + b"9" * 60), "simulation.n_trials", "max_trials"),
    (_dump(BASE).replace(b"amount: 3.0", b"amount: 1e999"), "doses[2].amount", "positive number"),
    (_dump(BASE).replace(b"target: 0.3", b"target: " + b"[" * 25 + b"]" * 25), "study.target", "nested"),
    (_dump(BASE).replace(b"  target: 0.3\n", b"  target: 0.3\n  target: 0.25\n"), "study.target", "twice"),
    (_dump(BASE).replace(b"cutoff_eli: 0.95", b"cutoff_eli: " + b"9" * 30), "designs[0].params.cutoff_eli",
     "max_param_int"),
    (_dump(BASE).replace(b"cutoff_eli: 0.95", b"n_earlystop: 1000000000"), "designs[0].params.n_earlystop",
     "max_param_int"),
    (_dump(BASE).replace(b"cutoff_eli: 0.95", b"max_n: 10000"), "designs[0].params.max_n", "max_sample_size"),
    (_dump(BASE).replace(b"extrasafe: true", b"extrasafe: 2026-01-01"), "designs[0].params.extrasafe",
     "number, text, true/false"),
    (_dump(BASE).replace(b"chunk_size: 10", b"chunk_size: 100000").replace(b"max_n: 12", b"max_n: 500"),
     "simulation.chunk_size", "max_unit_patients"),
    (_dump(BASE).replace(b"days:\n", b"days: [" + b"1, " * 1001 + b"1]\n    x:\n", 1), "timing.accrual.days",
     "max_list_items"),
])
def test_named_limits_and_hazards(tmp_path: Path, text: bytes, field: str, words: str) -> None:
    err = _validate(text, tmp_path)
    assert err is not None and err.field == field, (err.field if err else None, str(err))
    assert words in str(err), str(err)


def test_deep_nesting_is_refused_before_parsing(tmp_path: Path) -> None:
    err = _validate(_dump(BASE).replace(b"target: 0.3", b"target: " + b"[" * 50000 + b"]" * 50000), tmp_path)
    assert err is not None and (err.field == "study.target" or err.field.startswith("line ")), str(err)
    assert "nest" in str(err)


def test_total_work_is_limited() -> None:
    data = copy.deepcopy(BASE)
    data["simulation"]["n_trials"] = LIMITS["max_trials"]
    n = LIMITS["max_total_trials"] // (LIMITS["max_trials"] * len(data["designs"])) + 1
    data["scenarios"] = [dict(copy.deepcopy(data["scenarios"][1]), name=f"s{i}") for i in range(n)]
    with pytest.raises(StudyError, match="max_total_trials") as err:
        parse_study(_dump(data).decode(), source="f.yaml")
    assert err.value.field == "simulation.n_trials"


def test_limits_are_stated_in_errors() -> None:
    doses = [{"amount": float(i + 1)} for i in range(LIMITS["max_doses"] + 1)]
    data = dict(copy.deepcopy(BASE), doses=doses)
    with pytest.raises(StudyError, match=rf"at most {LIMITS['max_doses']} dose levels"):
        parse_study(_dump(data).decode(), source="f.yaml")
    data = copy.deepcopy(BASE)
    data["simulation"]["n_trials"] = LIMITS["max_trials"] + 1
    with pytest.raises(StudyError, match=r"max_trials") as err:
        parse_study(_dump(data).decode(), source="f.yaml")
    assert err.value.field == "simulation.n_trials"


def test_a_two_megabyte_file_is_refused_quickly(tmp_path: Path) -> None:
    import time

    flat = b"extra: [" + b",".join([b"1"] * (LIMITS["max_file_bytes"] // 2 - 10)) + b"]\n"
    big = _dump(BASE) + flat[: LIMITS["max_file_bytes"] - len(_dump(BASE)) - 10] + b"]\n"
    assert len(big) <= LIMITS["max_file_bytes"]
    t0 = time.perf_counter()
    err = _validate(big, tmp_path)
    assert time.perf_counter() - t0 < 5.0
    assert err is not None and math.isfinite(len(str(err)))


# ---------------------------------------------------------------------------------------------------------------------
# Hostile environments (issue 13 section 2): the machine refuses, the user kills, the names are hostile.
# Each gives one line on stderr naming the path and the fix, an exit status != 0, no traceback, and loses nothing.
# Where the issue is about what the user sees, the CLI runs in a subprocess (``python -m escalade``, or, to simulate a
# refusal on a machine where it cannot be made real, ``python -c`` that patches the refused call and calls main()).
# ---------------------------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]

ENV_STUDY = """\
study: {title: "hostile environment", target: 0.3, cohort_size: 3, max_n: 18, start_dose: 1}
doses: [{label: A, amount: 1}, {label: B, amount: 2}, {label: C, amount: 3}]
designs: [{name: BOIN, design: boin}, {name: "3+3", design: "3+3"}]
scenarios:
  - {name: "s1", p_dlt: [0.1, 0.3, 0.5]}
  - {name: "s2", p_dlt: [0.05, 0.1, 0.3]}
simulation: {n_trials: 4000, seed: 3, chunk_size: 1000}
"""
#: Units of ENV_STUDY: 2 scenarios x 4 chunks, ~35 kB each on disk.
ENV_UNITS = 8


def _cli(args: list[str], *, prelude: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    """``escalade ARGS`` in a fresh interpreter at the repository root (the checkout, not an installed copy).

    ``prelude`` is Python run first (to patch a system call that this machine will not refuse for real).
    """
    if prelude:
        cmd = [sys.executable, "-c", f"{prelude}\nimport sys\nfrom escalade.cli import main\n"
                                     "raise SystemExit(main(sys.argv[1:]))", *args]
    else:
        cmd = [sys.executable, "-m", "escalade", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=timeout)  # bytes: keep the \r of a bar
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


def _one_error_line(proc: subprocess.CompletedProcess, *, status: int = 1) -> str:
    """The single ``escalade: error:`` line of a failed command (and nothing else on stderr)."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.split("\n") if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("escalade: error: "), proc.stderr
    return lines[0]


def _study_file(tmp_path: Path, text: str = ENV_STUDY, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env_reference_hash(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The results hash of ENV_STUDY from an undisturbed run (in memory)."""
    from escalade.simulations.study_run import run_study

    return run_study(parse_study(ENV_STUDY, source="study.yaml"), n_jobs=1).manifest["results_sha256"]


def _refuse(prefix: Path, code: int) -> str:
    """Prelude: every creation of a file or directory under ``prefix`` fails with ``code`` (as a read-only
    directory or file system would), whatever the user (these tests may run as root, whom chmod does not stop)."""
    return f"""
import errno, os
_PREFIX, _CODE = {str(prefix)!r}, {code}
def _under(p):
    p = os.path.abspath(os.fsdecode(p))
    return p == _PREFIX or p.startswith(_PREFIX + os.sep)
_open, _mkdir = os.open, os.mkdir
def _refusing_open(path, flags, *a, **k):
    if flags & os.O_CREAT and _under(path):
        raise OSError(_CODE, os.strerror(_CODE), os.fsdecode(path))
    return _open(path, flags, *a, **k)
def _refusing_mkdir(path, *a, **k):
    if _under(path):
        raise OSError(_CODE, os.strerror(_CODE), os.fsdecode(path))
    return _mkdir(path, *a, **k)
os.open, os.mkdir = _refusing_open, _refusing_mkdir
"""


def _disk_full_after(k: int) -> str:
    """Prelude: the atomic writer (simulations/atomic.py) gets ENOSPC on its temporary file after ``k`` files."""
    return f"""
import errno, os, tempfile, types
import escalade.simulations.atomic as _atomic
_left = [{k}]
def _mkstemp(*a, **k):
    if _left[0] <= 0:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _left[0] -= 1
    return tempfile.mkstemp(*a, **k)
_atomic.tempfile = types.SimpleNamespace(mkstemp=_mkstemp)
"""


class _Tmpfs:
    """A small tmpfs mounted for one test (needs root, or CAP_SYS_ADMIN; otherwise the test is skipped)."""

    def __init__(self, where: Path, size: str, *, read_only: bool = False) -> None:
        if sys.platform != "linux" or shutil.which("mount") is None:
            pytest.skip("needs Linux mount(8) for a real small or read-only file system")
        where.mkdir(parents=True, exist_ok=True)
        opts = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); the simulated variant covers it")
        self.where = where

    def remount(self, opts: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{opts}", str(self.where)], check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path):
    mounted: list[_Tmpfs] = []

    def mount(name: str, size: str, *, read_only: bool = False) -> _Tmpfs:
        fs = _Tmpfs(tmp_path / name, size, read_only=read_only)
        mounted.append(fs)
        return fs

    yield mount
    for fs in mounted:
        fs.close()


# --- --out that cannot be a run directory --------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["existing file", "under /proc", "through a file"])
def test_out_that_cannot_be_a_directory_gives_one_line(tmp_path: Path, case: str) -> None:
    study = _study_file(tmp_path)
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    out = {"existing file": afile, "under /proc": Path("/proc/x"), "through a file": afile / "run"}[case]
    if case == "under /proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    line = _one_error_line(_cli(["run", str(study), "--out", str(out), "--no-progress", "--jobs", "1"]))
    assert f"escalade: error: {out}: " in line
    fix = {"existing file": "is a file, not a directory: give a directory path",
           "under /proc": "choose another path",
           "through a file": "a part of the path is a file, not a directory; choose another path"}[case]
    assert fix in line, line
    assert afile.read_text() == "keep me"


# --- read-only output directory and file system --------------------------------------------------------------------

def test_read_only_output_directory_gives_one_line(tmp_path: Path) -> None:
    """A directory without write permission. Not root: a real ``chmod 555``; root (whom chmod does not stop): the
    creation of files in it is refused with EACCES by a patched ``os.open``/``os.mkdir`` (``_refuse``)."""
    study = _study_file(tmp_path)
    out = tmp_path / "locked"
    out.mkdir()
    prelude = _refuse(out, errno.EACCES) if os.geteuid() == 0 else ""
    out.chmod(0o555)
    try:
        line = _one_error_line(_cli(["run", str(study), "--out", str(out), "--no-progress", "--jobs", "1"],
                                    prelude=prelude))
    finally:
        out.chmod(0o755)
    assert f"escalade: error: {out}/.lock: cannot be written (Permission denied): permission denied; choose a " \
           "directory you can write to" in line
    assert list(out.iterdir()) == []
    # the same refused one level down: the run directory cannot be created
    sub = out / "run"
    line = _one_error_line(_cli(["run", str(study), "--out", str(sub), "--no-progress", "--jobs", "1"],
                                prelude=_refuse(out, errno.EACCES)))
    assert f"escalade: error: {sub}: cannot create the run directory (Permission denied)" in line


@pytest.mark.parametrize("real", [True, False], ids=["tmpfs-ro", "simulated-EROFS"])
def test_read_only_file_system_gives_one_line(tmp_path: Path, tmpfs, real: bool) -> None:
    """A file system mounted read-only: a real ``tmpfs -o ro`` where this machine allows mounting, and always a
    simulated one (``os.open``/``os.mkdir`` under it raise EROFS)."""
    study = _study_file(tmp_path)
    ro = tmpfs("ro", "1m", read_only=True).where if real else tmp_path / "ro"
    ro.mkdir(exist_ok=True)
    prelude = "" if real else _refuse(ro, errno.EROFS)
    for out, what in ((ro / "run", "cannot create the run directory"), (ro, "cannot be written")):
        line = _one_error_line(_cli(["run", str(study), "--out", str(out), "--no-progress", "--jobs", "1"],
                                    prelude=prelude))
        assert f"(Read-only file system): the file system is read-only; choose a location on a writable disk" in line
        assert what in line and str(out) in line, line
    assert list(ro.iterdir()) == []


def test_report_into_a_read_only_place_gives_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["run", str(_study_file(tmp_path)), "--out", str(run), "--no-progress", "--jobs", "1"]) == 0
    ro = tmp_path / "ro"
    ro.mkdir()
    line = _one_error_line(_cli(["report", str(run), "--format", "html", "--xlsx", "--out", str(ro / "rep")],
                                prelude=_refuse(ro, errno.EROFS)))
    assert f"{ro / 'rep'}." in line and "read-only" in line
    assert list(ro.iterdir()) == []


# --- a full disk during a run, then the same command once space is back ---------------------------------------------

def _run_dir_state(out: Path) -> tuple[list[str], list[str]]:
    units = sorted(p.name for p in (out / "units").glob("*")) if (out / "units").is_dir() else []
    return sorted(p.name for p in out.iterdir() if p.name != "units"), units


@pytest.mark.parametrize("k,phase", [(3, "units"), (1 + ENV_UNITS + 2, "results files")])
def test_full_disk_simulated_then_resume_gives_the_same_hash(tmp_path: Path, env_reference_hash: str, k: int,
                                                             phase: str) -> None:
    """ENOSPC from the atomic writer after ``k`` files: inputs.json, then units, then the four results files (the
    third of which fails here: the two already in temporary files must not be renamed into place)."""
    study = _study_file(tmp_path)
    out = tmp_path / "run"
    args = ["run", str(study), "--out", str(out), "--no-progress", "--jobs", "1"]
    line = _one_error_line(_cli(args, prelude=_disk_full_after(k)))
    assert "cannot be written (No space left on device): the disk is full; free some space and run the same " \
           "command again (finished work is kept)" in line
    top, units = _run_dir_state(out)
    assert top == ["inputs.json"], top  # no lock, no temporary file, no result file of a half-finished run
    assert not [u for u in units if u.startswith(".tmp-")]
    assert len(units) == min(k - 1, ENV_UNITS)
    if phase == "units":
        assert f"{out / 'units'}/unit-" in line
    else:  # every unit was kept; none of the four result files was renamed into place
        assert str(out) in line and len(units) == ENV_UNITS
    proc = _cli(args)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["results_sha256"] == env_reference_hash


def test_full_disk_with_the_progress_bar_leaves_only_the_error_line(tmp_path: Path) -> None:
    """What a terminal shows: the bar is redrawn with carriage returns; after a failure it is cleared, not left."""
    proc = _cli(["run", str(_study_file(tmp_path)), "--out", str(tmp_path / "run"), "--jobs", "1"],
                prelude=_disk_full_after(4))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "simulating" in proc.stderr  # the bar was shown
    shown = [ln.rsplit("\r", 1)[-1].strip() for ln in proc.stderr.split("\n")]
    shown = [ln for ln in shown if ln]
    assert len(shown) == 1 and shown[0].startswith("escalade: error: ") and "the disk is full" in shown[0], shown


def test_full_disk_on_a_real_small_file_system_then_resume(tmp_path: Path, tmpfs, env_reference_hash: str) -> None:
    """A 100 kB tmpfs holds inputs.json and two units of ~35 kB; the loky workers hit ENOSPC. Once the file
    system is grown (remount), the same command resumes from the kept units to the undisturbed results hash."""
    study = _study_file(tmp_path)
    fs = tmpfs("small", "100k")
    out = fs.where / "run"
    args = ["run", str(study), "--out", str(out), "--no-progress", "--jobs", "2"]
    line = _one_error_line(_cli(args))
    assert f"escalade: error: {out}" in line and "No space left on device" in line and "free some space" in line
    top, units = _run_dir_state(out)
    assert top == ["inputs.json"] and units and not [u for u in units if not u.startswith("unit-")]
    kept = {u: (out / "units" / u).read_bytes() for u in units}
    fs.remount("size=4m")
    proc = _cli(args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["results_sha256"] == env_reference_hash
    assert all((out / "units" / u).read_bytes() == b for u, b in kept.items())


def test_a_failed_parallel_run_leaves_no_pool_thread_behind(tmp_path: Path, tmpfs,
                                                             capsys: pytest.CaptureFixture) -> None:
    """Full disk under loky, in this process: when the error reaches the caller, the aborted pool's feeder
    threads have ended (a daemon thread still unlinking a queue's semaphore when the command exits is what made
    loky's resource tracker print "leaked semlock" warnings under the error line)."""
    import threading

    fs = tmpfs("small", "100k")
    before = set(threading.enumerate())
    assert main(["run", str(_study_file(tmp_path)), "--out", str(fs.where / "run"), "--no-progress",
                 "--jobs", "2"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    left = [t.name for t in threading.enumerate() if t not in before and t.daemon and t.is_alive()]
    assert left == [], left


def test_settling_joins_the_pool_feeders_and_nothing_else() -> None:
    """The unit: daemon threads the run started, and queue feeders (a reused pool's too), are joined; an
    unrelated daemon thread that was there before is not waited for."""
    import threading

    from escalade.simulations import runner

    stop = threading.Event()
    unrelated = threading.Thread(target=stop.wait, name="someone-else", daemon=True)
    old_feeder = threading.Thread(target=time.sleep, args=(0.3,), name="QueueFeederThread", daemon=True)
    unrelated.start()
    old_feeder.start()
    before = set(threading.enumerate())
    new = threading.Thread(target=time.sleep, args=(0.3,), name="pool-helper", daemon=True)
    new.start()
    t0 = time.perf_counter()
    runner._settle_pool_threads(before)
    took = time.perf_counter() - t0
    assert not new.is_alive() and not old_feeder.is_alive() and unrelated.is_alive()
    assert took < runner.SETTLE_S / 2, took
    stop.set()


def test_full_disk_while_writing_a_report_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    import types

    from escalade.simulations import atomic

    run = tmp_path / "run"
    assert main(["run", str(_study_file(tmp_path)), "--out", str(run), "--no-progress", "--jobs", "1"]) == 0
    capsys.readouterr()
    real = atomic.tempfile.mkstemp
    calls: list[int] = []

    def mkstemp(*a, **k):  # the first output (report.html) fits, the second (report.xlsx) does not
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(atomic, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
    assert main(["report", str(run), "--format", "html", "--xlsx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'report.xlsx'}: cannot be written (No space left on device)" in err
    assert not [p.name for p in run.iterdir() if p.name.startswith(("report", ".tmp-"))]


def test_write_error_is_an_os_error_that_survives_pickling(tmp_path: Path) -> None:
    import pickle

    from escalade.simulations.atomic import WriteError, atomic_write

    with pytest.raises(WriteError) as got:
        atomic_write(tmp_path / "no" / "such" / "dir" / "f.txt", "x")
    err = got.value
    assert isinstance(err, OSError) and err.errno == errno.ENOENT and err.filename == str(err.path)
    back = pickle.loads(pickle.dumps(err))  # as it travels from a loky worker to the run
    assert type(back) is WriteError and str(back) == str(err) and back.errno == err.errno
    assert "\n" not in str(err) and str(err).startswith(f"{tmp_path / 'no' / 'such' / 'dir' / 'f.txt'}: ")


def test_short_write_without_an_error_number_is_named_a_full_disk(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy reports a full disk as "5000 requested and 4080 written" (no errno): the free space tells."""
    from escalade.simulations import atomic

    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Full())
    err = atomic.write_error(tmp_path / "u.npy", OSError("5000 requested and 4080 written"))
    assert err.errno == errno.ENOSPC and "the disk is full" in str(err) and "4080 written" in str(err)
    err = atomic.write_error(tmp_path / "t.parquet", OSError("Error writing bytes. Detail: [errno 28] No space"))
    assert err.errno == errno.ENOSPC


# --- report --xlsx on names with control characters ---------------------------------------------------------------

ESC_STUDY = ENV_STUDY.replace('title: "hostile environment"', 'title: "esc \\e[31m title"').replace(
    'name: "s1"', 'name: "red \\e[31m s1", description: "bell \\a here"').replace(
    "label: A,", 'label: "A\\e",').replace("name: BOIN,", 'name: "BOIN\\e",').replace("n_trials: 4000", "n_trials: 40")


def test_xlsx_report_with_control_characters_in_names(tmp_path: Path) -> None:
    import openpyxl

    run = tmp_path / "run"
    proc = _cli(["run", str(_study_file(tmp_path, ESC_STUDY)), "--out", str(run), "--no-progress", "--jobs", "1"])
    assert proc.returncode == 0, proc.stderr
    proc = _cli(["report", str(run), "--format", "html", "--xlsx"])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (run / "report.html").is_file() and (run / "report.xlsx").is_file()
    wb = openpyxl.load_workbook(run / "report.xlsx")
    ws = wb["Operating characteristics"]
    rows = {(r[0].value, r[1].value, r[4].value) for r in ws.iter_rows(min_row=2)}
    assert ("red \\x1b[31m s1", "BOIN\\x1b", "A\\x1b") in rows
    summary = {r[0].value: r[1].value for r in wb["Summary"].iter_rows(min_row=2)}
    assert summary["Study"] == "esc \\x1b[31m title"
    descr = [r[7].value for r in wb["Scenarios"].iter_rows(min_row=2)]
    assert "bell \\x07 here" in descr


# --- --jobs far beyond the machine ----------------------------------------------------------------------------------

def test_workers_are_capped_at_cores_and_units(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from escalade.simulations import runner

    monkeypatch.setattr(runner, "_cores", lambda: 4)
    with caplog.at_level(logging.INFO, logger="escalade.simulations.runner"):
        assert runner._plan_workers(1000, 50, 50) == 4
        assert "--jobs 1000: using 4 workers, one per core (this machine has 4)" in caplog.text
        caplog.clear()
        assert runner._plan_workers(1000, 2, 2) == 2
        assert "only 2 work units for 1000 workers: using 2 workers (4 cores); lower simulation.chunk_size" \
            in caplog.text
        caplog.clear()
        assert runner._plan_workers(-1, 50, 50) == 4 and caplog.text == ""
        assert runner._plan_workers(3, 50, 50) == 3 and caplog.text == ""
        assert runner._plan_workers(4, 50, 1) == 1  # resuming: one unit left
        assert "one per work unit left to run (1)" in caplog.text


def test_jobs_1000_starts_no_more_workers_than_cores(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    import joblib

    from escalade.simulations import runner
    from escalade.simulations.runner import ScenarioSpec, run_units

    asked: list[int] = []
    real = joblib.parallel_config

    def spy(*a, **k):
        asked.append(k.get("n_jobs"))
        return real(*a, **k)

    monkeypatch.setattr(joblib, "parallel_config", spy)
    study = parse_study(ENV_STUDY, source="s.yaml")
    designs = [d for _, d in build_study_designs(study)]
    specs = [ScenarioSpec(s.name, s.p_dlt, s.p_response) for s in study.scenarios]
    with caplog.at_level(logging.WARNING, logger="escalade.simulations.runner"):
        got = run_units(specs, designs, n_trials=50, seed=1, chunk_size=25, n_jobs=1000, backend="threading")
    cores = runner._cores()
    assert asked == ([min(cores, 4)] if min(cores, 4) > 1 else [])
    said = (f"--jobs 1000: using {cores} worker" if cores <= 4 else
            "only 4 work units for 1000 workers: using 4 workers")
    assert said in caplog.text, caplog.text
    ref = run_units(specs, designs, n_trials=50, seed=1, chunk_size=25, n_jobs=1)
    assert all(np.array_equal(got[k].selected, ref[k].selected) for k in ref)


# --- the run killed: its workers stop with it -----------------------------------------------------------------------

LONG_STUDY = """\
study: {title: "long", target: 0.3, cohort_size: 3, max_n: 30, start_dose: 1}
doses: [{label: A, amount: 1}, {label: B, amount: 2}, {label: C, amount: 3}, {label: D, amount: 4}]
designs: [{name: CRM, design: crm, params: {skeleton: [0.1, 0.2, 0.3, 0.4]}}]
scenarios:
  - {name: "s1", p_dlt: [0.1, 0.3, 0.5, 0.6]}
  - {name: "s2", p_dlt: [0.05, 0.1, 0.2, 0.3]}
simulation: {n_trials: 400000, seed: 1, chunk_size: 2000}
"""


def _processes() -> dict[int, tuple[int, str]]:
    """``{pid: (ppid, state)}`` of every process (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(d.name)] = (int(fields[1]), fields[0])
    return out


def _descendants(pid: int) -> set[int]:
    procs = _processes()
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, (ppid, _state) in procs.items():
            if ppid == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    procs = _processes()
    return {p for p in pids if p in procs and procs[p][1] not in ("Z", "X")}


def _describe(pids: set[int]) -> list[str]:
    out = []
    for p in sorted(pids):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
            out.append(f"{p} {_processes().get(p)} {cmd}")
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to list the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_leaves_no_worker_running(tmp_path: Path, sig: signal.Signals) -> None:
    study = _study_file(tmp_path, LONG_STUDY)
    out = tmp_path / "run"
    errfile = (tmp_path / "stderr.txt").open("w")  # a file, not a pipe: orphaned workers would hold a pipe open
    proc = subprocess.Popen([sys.executable, "-m", "escalade", "run", str(study), "--out", str(out), "--jobs", "2",
                             "--no-progress"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=errfile,
                            start_new_session=True)
    kids: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while not list((out / "units").glob("unit-*.npy")):  # the workers are busy: a unit is in
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.2)
        kids = _descendants(proc.pid)
        assert len(kids) >= 2, kids  # the loky workers (and loky's resource tracker)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        err = (tmp_path / "stderr.txt").read_text()
        deadline = time.monotonic() + 10
        while _alive(kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(kids), f"still running after {sig.name} of the run: {_describe(_alive(kids))}"
        if sig == signal.SIGTERM:
            assert proc.returncode == 143
            lines = [ln for ln in err.split("\n") if ln.strip()]
            assert lines == ["escalade: terminated (SIGTERM); finished work units are kept and the same command "
                             "resumes"], err
            assert not (out / ".lock").exists()
        assert list((out / "units").glob("unit-*.npy"))  # finished units are kept for the re-run
    finally:
        errfile.close()
        if proc.poll() is None:
            proc.kill()
        for p in _alive(kids):  # never leave a stray process behind a failed test
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)


_WORKER = """
import sys, time
from escalade.simulations.runner import _watch_parent
_watch_parent(int(sys.argv[1]))
print("watching", flush=True)
end = time.monotonic() + 60
while time.monotonic() < end:  # burn CPU, as a worker with queued units would
    pass
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to list processes")
def test_worker_exits_when_its_run_dies_or_died_before_it_started(tmp_path: Path) -> None:
    # the run dies while the worker computes: the worker notices within WATCH_PARENT_S
    parent = ("import subprocess, sys, os\n"
              f"p = subprocess.Popen([sys.executable, '-c', {_WORKER!r}, str(os.getpid())], "
              "stdout=subprocess.PIPE, text=True)\n"
              "print(p.pid, p.stdout.readline().strip(), flush=True)\n"
              "os._exit(0)  # gone without a word, as after SIGKILL\n")
    out = subprocess.run([sys.executable, "-c", parent], cwd=REPO, capture_output=True, text=True, timeout=120)
    pid, said = out.stdout.split()
    assert said == "watching", out.stderr
    deadline = time.monotonic() + 10
    while _alive({int(pid)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive({int(pid)})
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "the worker kept running after its run died"
    # a worker whose first unit arrives after the run has died exits at once
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    t0 = time.monotonic()
    late = subprocess.run([sys.executable, "-c", _WORKER, str(gone.pid)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert late.returncode == 1 and "watching" not in late.stdout and time.monotonic() - t0 < 30


# --- names that a spreadsheet would run as formulas -----------------------------------------------------------------

FORMULA_STUDY = ENV_STUDY.replace('name: "s1"', 'name: "=HYPERLINK(\\"http://x\\")"').replace(
    'name: "s2"', 'name: "-s2"').replace("name: BOIN,", 'name: "@BOIN",').replace(
    'name: "3+3"', 'name: "+3+3"').replace("label: A,", 'label: "-1",').replace("n_trials: 4000", "n_trials: 40")


def test_csv_names_are_neutralised_and_numbers_stay_numbers(tmp_path: Path) -> None:
    import pandas as pd

    from escalade.reports.load import load_run

    run = tmp_path / "run"
    assert main(["run", str(_study_file(tmp_path, FORMULA_STUDY)), "--out", str(run), "--no-progress",
                 "--jobs", "1"]) == 0
    oc = pd.read_csv(run / "oc.csv", keep_default_na=False)
    assert set(oc["scenario"]) == {"'=HYPERLINK(\"http://x\")", "'-s2"}
    assert set(oc["design"]) == {"'@BOIN", "'+3+3"}
    assert "-1" in set(oc["dose"])  # a label that is a plain number is no formula: left as written
    paired = pd.read_csv(run / "paired.csv", keep_default_na=False)
    assert set(paired["design"]) == {"'+3+3"} and set(paired["versus"]) == {"'@BOIN"}
    assert pd.api.types.is_float_dtype(paired["difference"]) and (paired["difference"] < 0).any()
    text = (run / "paired.csv").read_text()
    assert ",-" in text and ",'-0" not in text and ",'-1" not in text  # negative numbers are written as numbers
    for name in ("oc.csv", "paired.csv"):  # no cell a spreadsheet would run: text starts with a letter or a quote
        for line in (run / name).read_text().splitlines():
            for cell in line.split(","):
                assert not cell.startswith(("=", "+", "@")), (name, cell)
    back = load_run(run)  # the report reads the names back as they were written in the study
    assert set(back.oc["scenario"]) == {'=HYPERLINK("http://x")', "-s2"}
    assert set(back.oc["design"]) == {"@BOIN", "+3+3"}
    assert set(back.paired["versus"]) == {"@BOIN"}


@given(st.text(max_size=20))
def test_neutralise_round_trip(text: str) -> None:
    from escalade.simulations.csv_text import FORMULA_START, neutralise, restore

    safe = neutralise(text)
    assert restore(safe) == text
    if safe.startswith(FORMULA_START[:-1]):
        float(safe)  # only a plain number may start with - or +


# --- trial size and flat curves -------------------------------------------------------------------------------------

def test_max_n_below_the_cohort_size_is_a_study_error(tmp_path: Path) -> None:
    with pytest.raises(StudyError) as got:
        parse_study(ENV_STUDY.replace("max_n: 18", "max_n: 2"), source="f.yaml")
    assert got.value.field == "study.max_n" and "at least study.cohort_size (3)" in str(got.value)
    study = parse_study(ENV_STUDY.replace("design: boin}", "design: boin, params: {cohort_size: 4, max_n: 3}}"),
                        source="f.yaml")
    with pytest.raises(StudyError) as got:
        build_study_designs(study)
    assert got.value.field == "designs[0].params.max_n" and "at least the cohort size (4)" in str(got.value)
    path = _study_file(tmp_path, ENV_STUDY.replace("max_n: 18", "max_n: 2"))
    line = _one_error_line(_cli(["run", str(path), "--out", str(tmp_path / "o")]), status=2)
    assert "study.max_n = 2: must be at least study.cohort_size (3)" in line
    assert not (tmp_path / "o").exists()


def test_all_zero_curves_are_accepted_with_one_warning_line(tmp_path: Path) -> None:
    from escalade.scenarios.load import ZeroCurveWarning

    text = ENV_STUDY.replace("[0.05, 0.1, 0.3]}", "[0, 0, 0], p_response: [0.0, 0.0, 0.0]}").replace(
        "n_trials: 4000", "n_trials: 20")
    with pytest.warns(ZeroCurveWarning) as rec:
        study = parse_study(text, source="f.yaml")
    assert study.scenarios[1].p_dlt == (0.0, 0.0, 0.0)
    msgs = [str(w.message) for w in rec if issubclass(w.category, ZeroCurveWarning)]
    assert any("scenarios[1].p_dlt is 0 at every dose" in m for m in msgs)
    assert any("scenarios[1].p_response is 0 at every dose" in m for m in msgs)
    proc = _cli(["run", str(_study_file(tmp_path, text)), "--out", str(tmp_path / "o"), "--no-progress",
                 "--jobs", "1"])
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.split("\n") if ln.strip()]
    assert len(lines) == 2 and all(ln.startswith("WARNING escalade.scenarios.load: ") for ln in lines), lines
