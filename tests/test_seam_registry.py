"""The seam: one registry entry per design, and nothing outside design/ speaking a design's name.

Each check is written so that forgetting a step of design/README.md fails here:
an entry without a methods writer, a writer that does not import, an explanation
of the wrong type, a README that no longer matches the registry, a design kind
spelled out in the engine or the reports.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from escalade.cli import main
from escalade.cli_designs import README_BEGIN, README_END, designs_json, designs_markdown
from escalade.design import registry
from escalade.design.base import DesignEntry, Explanation, FollowUp, States, decides_on_followup, is_graded
from escalade.design.errors import ConfigError
from escalade.design.skeleton import getprior
from escalade.reports.methods import methods_writer

ROOT = Path(__file__).resolve().parent.parent
STUDY = {"target": 0.3, "n_doses": 4, "cohort_size": 3, "max_n": 24, "start_dose": 0,
         "doses": (1.0, 2.0, 4.0, 8.0)}
NEEDS = {"skeleton": [0.05, 0.12, 0.25, 0.40], "table": str(ROOT / "scenarios" / "decision_table_example.csv"),
         "delta": 0.4}


def _build(e: DesignEntry):
    required = [p.name for p in registry.param_info(e.kind) if p.required and p.name not in registry.STUDY_SETTINGS]
    return registry.build_design(e.kind, {k: NEEDS[k] for k in required}, STUDY)


BUILTIN = [pytest.param(e, id=e.kind) for e in registry.BUILTIN]


@pytest.mark.parametrize("e", BUILTIN)
def test_entry_describes_its_design(e: DesignEntry) -> None:
    d = _build(e)
    assert type(d) is e.design and d.kind == e.kind and type(d.config) is e.config
    assert registry.entry(e.kind) is e
    for alias in e.aliases:
        assert registry.entry(alias) is e
    assert isinstance(e.design.enumerable, bool)
    if decides_on_followup(d):
        assert not e.design.enumerable  # follow-up times are not part of the state


@pytest.mark.parametrize("e", BUILTIN)
def test_explain_returns_the_declared_type(e: DesignEntry) -> None:
    d = _build(e)
    graded = is_graded(d)  # graded designs also read the per-dose score totals
    st = States.from_counts([3, 3, 0, 0], [0, 1, 0, 0], [1, 2, 0, 0], [0, 1, 0, 0], current=1, last_n=3,
                            last_tox=1, tox_score=[0.2, 1.1, 0, 0] if graded else None,
                            eff_score=[1.0, 1.5, 0, 0] if graded else None)
    ex = d.explain(st)
    assert isinstance(ex, e.explanation) and isinstance(ex, Explanation)
    table = ex.table()
    assert all(len(v) == 4 for v in table.values()), "explanation tables have one row per dose"
    details = ex.details()
    assert all(isinstance(v, (int, float, str, type(None))) for v in details.values())


@pytest.mark.parametrize("e", BUILTIN)
def test_methods_writer_is_found_through_the_registry(e: DesignEntry) -> None:
    assert e.methods is not None, f"{e.kind}: a built-in design needs its methods text (methods=...)"
    writer = methods_writer(e.kind)
    assert callable(writer) and writer.__module__.startswith("escalade.reports.methods_")


def test_forgetting_the_methods_writer_is_an_error() -> None:
    base = registry.entry("boin")
    with pytest.raises(TypeError):
        DesignEntry(kind="x", name="x", config=base.config, design=base.design, explanation=base.explanation,
                    citation="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="module:function"):
        dataclasses.replace(base, kind="x", methods="escalade.reports.methods_boin")
    other = type("Broken", (base.design,), {"kind": "boin_broken"})
    broken = dataclasses.replace(base, kind="boin_broken", design=other, methods="escalade.reports.methods_boin:nope")
    with registry.registered(broken):
        with pytest.raises(AttributeError):
            methods_writer("boin_broken")
    assert "boin_broken" not in registry.design_kinds()


def test_register_refuses_a_taken_name() -> None:
    base = registry.entry("boin")
    with pytest.raises(ValueError, match="already taken"):
        registry.register(dataclasses.replace(base, kind="other", design=type("D", (), {"kind": "other"}),
                                              aliases=("3plus3",)))
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("boin")


def test_unknown_design_names_the_command() -> None:
    with pytest.raises(ConfigError, match="escalade designs") as exc:
        registry.build_design("bion", {}, STUDY)
    assert "did you mean 'boin'" in str(exc.value)


def test_crm_without_skeleton_names_escalade_skeleton() -> None:
    with pytest.raises(ConfigError, match="escalade skeleton") as exc:
        registry.build_design("crm", {}, STUDY)
    assert exc.value.field == "skeleton"


# ------------------------------------------------------------------------------------------------
# escalade designs / skeleton
# ------------------------------------------------------------------------------------------------


def test_designs_json_lists_every_kind_with_defaults(capsys: pytest.CaptureFixture) -> None:
    assert main(["designs", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in got] == [e.kind for e in registry.entries()]
    for d in got:
        assert set(d) == {"kind", "name", "params", "citation"} and d["citation"]
    boin = next(d for d in got if d["kind"] == "boin")
    assert boin["params"]["cutoff_eli"] == 0.95 and boin["params"]["target"] is None
    assert got == designs_json()


def test_every_parameter_has_a_meaning() -> None:
    for e in registry.entries():
        missing = [p.name for p in registry.param_info(e.kind) if not p.meaning]
        assert not missing, f"{e.kind}: document {missing} in {e.config.__name__}'s Attributes section"


def test_designs_kind_shows_one(capsys: pytest.CaptureFixture) -> None:
    assert main(["designs", "tite-crm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tite_crm: ") and "scheme" in out and "Cheung" in out and "boin" not in out
    assert main(["designs", "nope"]) == 2
    assert "escalade designs" in capsys.readouterr().err


def test_scenarios_readme_is_generated_from_the_registry() -> None:
    text = (ROOT / "scenarios" / "README.md").read_text(encoding="utf-8")
    assert README_BEGIN in text and README_END in text
    section = text[text.index(README_BEGIN):text.index(README_END) + len(README_END)]
    assert section == designs_markdown(), ("scenarios/README.md drifted from the registry: run "
                                           "python -m escalade designs --markdown --update scenarios/README.md")
    for e in registry.entries():
        assert f"### `{e.kind}`" in section
    assert "### `timing`" in section and "`rate_per_month`" in section


def test_skeleton_command_is_getprior(capsys: pytest.CaptureFixture) -> None:
    assert main(["skeleton", "--target", "0.25", "--n-doses", "5", "--mtd", "3", "--halfwidth", "0.05"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("skeleton:")][0]
    got = json.loads(line.split(":", 1)[1])
    assert got == pytest.approx(getprior(0.05, 0.25, 3, 5), abs=5e-5)
    assert got == pytest.approx([0.084, 0.1567, 0.25, 0.3545, 0.4603], abs=1e-4)  # dfcrm::getprior(0.05, 0.25, 3, 5)
    assert main(["skeleton", "--target", "0.25"]) == 2
    assert "--n-doses" in capsys.readouterr().err


def test_skeleton_command_derives_the_efftox_prior(capsys: pytest.CaptureFixture) -> None:
    from escalade.design.efftox import prior_from_ess

    args = ["--doses", "1", "2", "4", "--prob-eff", "0.2", "0.4", "0.6", "--prob-tox", "0.05", "0.1", "0.2"]
    assert main(["skeleton", "--efftox", *args]) == 0
    out = dict(ln.split(": ") for ln in capsys.readouterr().out.splitlines() if not ln.startswith("#"))
    want = prior_from_ess([1, 2, 4], prob_eff=[0.2, 0.4, 0.6], prob_tox=[0.05, 0.1, 0.2]).as_dict()
    assert set(out) == set(want)
    for k, v in want.items():
        assert float(out[k]) == pytest.approx(v, rel=1e-5)
    d = registry.build_design("efftox", {k: float(out[k]) for k in want}, STUDY)  # pastes into params as is
    assert d.config.alpha_mean == pytest.approx(want["alpha_mean"], rel=1e-5)


# ------------------------------------------------------------------------------------------------
# Layers and names
# ------------------------------------------------------------------------------------------------


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every import of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, id(node) in top))
    return out


def test_design_layer_imports_only_numpy_and_scipy() -> None:
    # numba (and its llvmlite) compile the hot loops (issue 18: design/efftox_kernels.py); a core dependency
    allowed = {"numpy", "scipy", "numba", "llvmlite", "escalade"} | set(sys.stdlib_module_names)
    for path in sorted((ROOT / "design").glob("*.py")):
        for mod, top in _imports(path):
            root = mod.split(".")[0]
            if root == "escalade":
                assert mod == "escalade._checkout" or mod.startswith("escalade.design"), f"{path.name} imports {mod}"
            elif top:
                assert root in allowed, f"design/{path.name} imports {mod} at module level"
            else:  # optional engines, imported inside the function that needs them
                assert root in allowed | {"pymc", "arviz", "pytensor", "pandas"}, f"design/{path.name}: {mod}"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


#: Files another helper is rewriting; each must leave this list when it lands.
_PENDING: dict[str, str] = {}  # files allowed to name a design kind for now (none)


def test_no_design_kind_outside_design() -> None:
    names = {n for e in registry.BUILTIN for n in (e.kind, *e.aliases)}
    found = []
    for folder in ("simulations", "reports", "scenarios", "escalade"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in _PENDING:
                continue
            for line, value in _string_constants(path):
                if value.strip().lower() in names:
                    found.append(f"{rel}:{line}: {value!r}")
    assert not found, "design kinds named outside design/ (ask the registry or the protocol):\n" + "\n".join(found)


def test_no_markov_fallbacks() -> None:
    for folder in ("design", "simulations", "reports", "escalade"):
        for path in (ROOT / folder).rglob("*.py"):
            assert '"markov"' not in path.read_text(encoding="utf-8"), f"{path}: use enumerable / decides_on_followup"


def test_followup_lives_in_the_base_module() -> None:
    import escalade.design.tite_crm as tite_crm

    assert FollowUp.__module__ == "escalade.design.base" and tite_crm.FollowUp is FollowUp
    st = States.from_counts([3, 0, 0, 0], [0, 0, 0, 0], current=0)
    f = FollowUp(np.array([[0, 0, 0]]), np.zeros((1, 3), bool), np.ones((1, 3)))
    d = registry.build_design("tite_boin", {}, STUDY)
    assert np.array_equal(d.decide_tite(st, f).decisions.dose, d.decide(st).dose)


def _design_graph() -> dict[str, set[str]]:
    """design module -> design modules it imports anywhere (top level or inside functions, not TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "design").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        deps = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("escalade.design."):
                deps.add(node.module.split(".")[2])
            elif isinstance(node, ast.ImportFrom) and node.module == "escalade.design":
                deps.update(a.name for a in node.names)
        graph[path.stem] = deps - {path.stem}
    return graph


def test_design_modules_form_no_import_circle() -> None:
    graph = _design_graph()
    assert "efftox" not in graph["efftox_engine"] | graph["efftox_pymc"]
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError("import circle in design/: " + " -> ".join(trail + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for dep in sorted(graph.get(m, ())):
            visit(dep, trail + [m])
        state[m] = 2

    for m in graph:
        visit(m, [])


def test_design_doctests_run() -> None:
    """Every example in design/ runs (imported as escalade.design.*, the one name; see test_seam_packaging)."""
    import doctest
    import importlib
    import pkgutil

    import escalade.design

    for info in pkgutil.iter_modules(escalade.design.__path__):
        if info.name == "efftox_pymc":  # needs PyMC; its own tests cover it
            continue
        mod = importlib.import_module(f"escalade.design.{info.name}")
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0, f"escalade.design.{info.name}: {res.failed} doctest(s) failed"
