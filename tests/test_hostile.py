"""Hostile and malformed study files (issue 7): property-based.

Each test starts from a valid study file and breaks it: wrong types, missing
and extra keys, NaN and infinities, negative counts, probabilities outside
[0, 1], huge numbers of doses, trials or list entries, non-UTF-8 bytes, alias
bombs, deep nesting, duplicate keys and tags such as ``!!python/object``. Every
outcome must be either a valid study or a :class:`StudyError` whose one-line
message starts with the file and names the field; never another exception,
never a hang (hypothesis ``deadline``), and ``escalade run --out DIR`` must
not create DIR when it refuses the file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
import tempfile
from pathlib import Path
from typing import Any

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
