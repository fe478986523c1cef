"""escalade: simulate Bayesian adaptive dose-finding trials.

The package is laid out as the design card fixes it: ``escalade.scenarios``
(study files), ``escalade.design`` (dose-finding rules), ``escalade.simulations``
(the engine) and ``escalade.reports`` (operating characteristics, appendix).
Imports point down that list and never back up; the CLI (``escalade.cli``)
sits on top and nothing imports it.

The Python API (:mod:`escalade.api`, :mod:`escalade.designs`) is imported on first use, so that
``import escalade`` stays cheap for the command line::

    import escalade as esc
    run = esc.Study.from_yaml("scenarios/cart_rr_heme.yaml").run(n_trials=100, seed=1)
    run.oc                      # tidy operating characteristics with Monte Carlo SEs
    esc.designs.BOIN(target=0.3, n_doses=5).decision_table()
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path as _Path

from escalade import _checkout

# In a source checkout the layers live beside this folder (design/, scenarios/,
# simulations/, reports/, validation/ at the repository root, as the design card fixes the
# layout); pyproject.toml maps them to escalade.design etc. on install. From a
# checkout, a finder maps exactly those five names to their folders, so the
# checkout and the installed package are the same modules under one name
# (see escalade/_checkout.py and docs/architecture.md).
_checkout.install(_Path(__file__).parent)

try:
    __version__: str = version("escalade")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "Study", "Run", "RunCancelled", "designs"]

_API = {"Study": "escalade.api", "Run": "escalade.api", "RunCancelled": "escalade.api", "designs": "escalade.designs"}


def __getattr__(name: str) -> object:
    """``escalade.Study``, ``escalade.Run``, ``escalade.RunCancelled`` and ``escalade.designs``, imported on
    first use."""
    where = _API.get(name)
    if where is None:
        raise AttributeError(f"module 'escalade' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(where)
    return module if where.endswith(name) else getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
