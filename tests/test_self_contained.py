"""The suite needs nothing beside a clone of the repository (issue 13, section 3).

The reference outputs used to be read from ``../shared/reference``, a folder that existed only on the
machines that built escalade, so a fresh clone failed with collection errors. These tests fail if a test
or bench file points outside the repository again, or if a reference file a test loads is missing
from ``validation/reference/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "validation" / "reference"

# what a path out of the repository looks like in source text
OUTSIDE = [
    (re.compile(r"\.\./(shared|\.\./)"), "a relative path out of the repository (../shared, ../../)"),
    (re.compile(r"shared/(reference|scripts)"), "the build machines' shared folder (use validation/reference/)"),
    (re.compile(r"parents\[\s*[2-9]\s*\]"), "a parent of the repository root (tests/x.py: parents[1] is the root)"),
    (re.compile(r"\.parent\.parent\.parent|REPO\.parent|ROOT\.parent"), "a parent of the repository root"),
    (re.compile(r"""["'](/work|/home|/Users|/mnt|/srv|/opt)/"""), "an absolute path on one machine"),
    (re.compile(r"expanduser\("), "a path in the user's home"),
]


def _sources() -> list[Path]:
    files = sorted((REPO / "tests").glob("*.py")) + sorted((REPO / "bench").glob("*.py"))
    return [p for p in files if p.name != Path(__file__).name]


def test_sources_are_found() -> None:
    names = {p.name for p in _sources()}
    assert {"conftest.py", "test_efftox.py", "test_boin.py"} <= names


@pytest.mark.parametrize("path", _sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_test_or_bench_file_reads_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    hits = [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {why}: {m.group(0)!r}"
            for pattern, why in OUTSIDE for m in pattern.finditer(text)]
    assert not hits, "\n".join(hits)


def _literal_reference_paths() -> set[tuple[str, ...]]:
    """The ``load_reference("folder", "file.json")`` calls of the tests whose arguments are literals."""
    out = set()
    for path in sorted((REPO / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_reference" and node.args
                    and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)):
                out.add(tuple(a.value for a in node.args))
    return out


def test_every_reference_file_a_test_loads_is_in_the_repository() -> None:
    wanted = _literal_reference_paths()
    assert len(wanted) >= 10  # the parser found the calls
    missing = ["/".join(p) for p in sorted(wanted) if not REFERENCE.joinpath(*p).is_file()]
    assert not missing, f"missing from validation/reference/: {missing}"


def test_conftest_reads_the_repository_copy() -> None:
    import importlib.util

    # a separate copy of conftest, executed without the variable (the registered one is left alone)
    spec = importlib.util.spec_from_file_location("conftest_without_env", REPO / "tests" / "conftest.py")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.REFERENCE.resolve() == REFERENCE
    assert fresh.load_reference("boin", "boundaries.json")["cases"]


def test_reference_folders_carry_their_provenance() -> None:
    for folder in ("boin", "dfcrm", "efftox", "escalation"):
        d = REFERENCE / folder
        assert (d / "README.md").is_file() and (d / "make_reference.R").is_file(), folder
        head = (d / "make_reference.R").read_text(encoding="utf-8")[:1500]
        assert "RECONSTRUCTED" in head and "R 4.2.2" in head, folder  # says what it is and where numbers came from
    assert "Wheeler" in (REFERENCE / "README.md").read_text(encoding="utf-8")  # the published 3+3 figures
