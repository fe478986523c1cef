"""One module, one name: a checkout and an installed package import the same modules.

From the checkout root, ``escalade.design`` is the folder ``design/`` (mapped by
``escalade._checkout.LayerFinder``, as ``pyproject.toml`` maps it on install);
``import design`` fails with a clear ImportError and ``escalade.escalade`` does not exist.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import escalade
from escalade import _checkout

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_layers_are_the_checkout_folders() -> None:
    import escalade.design.base as base

    assert Path(escalade.__file__).resolve().parent == ROOT / "escalade"
    assert Path(base.__file__).resolve() == ROOT / "design" / "base.py"
    assert base.StopReason is sys.modules["escalade.design"].StopReason


@pytest.mark.parametrize("layer", _checkout.LAYERS)
def test_bare_layer_import_fails_with_a_clear_message(layer: str) -> None:
    out = _run(f"import {layer}")
    assert out.returncode != 0
    assert f"import escalade.{layer}, not {layer}" in out.stderr


def test_no_second_copy_and_no_escalade_escalade() -> None:
    out = _run("import sys, escalade.design.base\n"
               "try:\n    import escalade.escalade\nexcept ModuleNotFoundError:\n    print('absent')\n"
               "try:\n    import design.base\nexcept ImportError:\n    print('refused')\n"
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('design', 'scenarios', 'simulations', "
               "'reports')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["absent", "refused", "[]"]


def test_pyproject_maps_the_same_layers() -> None:
    """The installed package (pyproject's package-dir) and the checkout finder name the same folders."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {k.partition(".")[2]: v for k, v in cfg["package-dir"].items() if k.startswith("escalade.")}
    assert mapped == {layer: layer for layer in _checkout.LAYERS}
    assert {f"escalade.{layer}" for layer in _checkout.LAYERS} <= set(cfg["packages"])


def test_finder_is_not_installed_for_an_installed_layout(tmp_path: Path) -> None:
    pkg = tmp_path / "escalade"
    (pkg / "design").mkdir(parents=True)
    assert _checkout.install(pkg) is False
    before = list(sys.meta_path)
    assert _checkout.install(ROOT / "escalade") is False  # already installed for this root
    assert sys.meta_path == before


@pytest.mark.slow
def test_pip_install_gives_the_same_module_names(tmp_path: Path) -> None:
    """``pip install .`` (into a target folder) imports every layer as ``escalade.<layer>``."""
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    code = ("import escalade, escalade.design.base as b, escalade.reports.methods, sys\n"
            "print(b.__file__)\nprint(any(type(f).__name__ == 'LayerFinder' for f in sys.meta_path))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "PATH": ""}, timeout=120)
    assert out.returncode == 0, out.stderr
    path, finder = out.stdout.split()
    assert Path(path).is_relative_to(target) and finder == "False"
