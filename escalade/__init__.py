"""escalade: simulate Bayesian adaptive dose-finding trials.

The package is laid out as the design card fixes it: ``escalade.scenarios``
(study files), ``escalade.design`` (dose-finding rules), ``escalade.simulations``
(the engine) and ``escalade.reports`` (operating characteristics, appendix).
Imports point down that list and never back up; the CLI (``escalade.cli``)
sits on top and nothing imports it.
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path as _Path

# In a source checkout the layers live beside this folder (design/, scenarios/,
# simulations/, reports/ at the repository root, as the design card fixes the
# layout) and pyproject.toml maps them to escalade.design etc. on install. When
# Python imports this folder straight from a checkout (``python -m pytest`` or
# ``python -m escalade`` run at the root put the root first on sys.path), the
# same mapping is made here, so the checkout and the installed package agree.
_root = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "design").is_dir() and (_root / "design" / "__init__.py").is_file():
    __path__.append(str(_root))  # type: ignore[name-defined]  # noqa: F821

try:
    __version__: str = version("escalade")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
