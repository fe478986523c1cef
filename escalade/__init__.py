"""escalade: simulate Bayesian adaptive dose-finding trials.

The package is laid out as the design card fixes it: ``escalade.scenarios``
(study files), ``escalade.design`` (dose-finding rules), ``escalade.simulations``
(the engine) and ``escalade.reports`` (operating characteristics, appendix).
Imports point down that list and never back up; the CLI (``escalade.cli``)
sits on top and nothing imports it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("escalade")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
