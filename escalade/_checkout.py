"""Import the layers of a source checkout as ``escalade.<layer>``, under that one name.

The design card fixes the repository's top-level folders (``design/``,
``scenarios/``, ``simulations/``, ``reports/``, and ``validation/``, the validation suite with its
reference data); ``pyproject.toml`` installs
them as ``escalade.design`` etc. (``[tool.setuptools.package-dir]``). When
Python imports :mod:`escalade` straight from a checkout (``python -m pytest``
or ``python -m escalade`` at the root), the folders are not inside
``escalade/``, so :mod:`escalade` installs :class:`LayerFinder`, which maps
exactly those five names to their folders, as setuptools' own editable-install
finder maps package names to source folders. Nothing else becomes importable
under ``escalade.`` (``escalade.escalade``, ``escalade.tests`` do not exist),
and each layer refuses to be imported under its bare folder name (see
:func:`refuse_bare_import`), so one file is one module in a process.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["LAYERS", "LayerFinder", "install", "refuse_bare_import"]

#: The layer folders of the checkout, in import order (each imports only those before it).
LAYERS: tuple[str, ...] = ("design", "scenarios", "simulations", "reports", "validation")


class LayerFinder(importlib.abc.MetaPathFinder):
    """Find ``escalade.<layer>`` in ``root/<layer>`` for the names in :data:`LAYERS` only.

    Sub-modules (``escalade.design.base``) are then found by the ordinary path
    finder through the layer package's ``__path__``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, layer = fullname.partition(".")
        if prefix != "escalade" or layer not in LAYERS:
            return None
        folder = self.root / layer
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"LayerFinder({str(self.root)!r})"


def install(package_dir: Path) -> bool:
    """Install a :class:`LayerFinder` when ``package_dir`` (the ``escalade/`` folder) is in a checkout.

    Returns False (and changes nothing) for an installed package, whose layers
    are sub-folders of ``escalade/``, or when a finder for this root is already
    installed.
    """
    package_dir = Path(package_dir).resolve()
    root = package_dir.parent
    if (package_dir / "design").is_dir() or not (root / "design" / "__init__.py").is_file():
        return False
    if any(isinstance(f, LayerFinder) and f.root == root for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, LayerFinder(root))
    return True


def refuse_bare_import(name: str) -> None:
    """Raise ImportError when a layer is imported by its folder name (``import design``).

    Called first thing in each layer's ``__init__.py`` with its ``__name__``;
    a checkout root on ``sys.path`` would otherwise give a second copy of every
    module (two ``StopReason`` enums in one process).
    """
    if name.partition(".")[0] != "escalade":
        raise ImportError(f"import escalade.{name}, not {name}: the folder {name}/ is the layer "
                          f"escalade.{name} of the escalade package (one module, one name)", name=name)
