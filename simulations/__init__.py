"""The engine: virtual patients, the vectorised trial loop, the parallel runner,
exact enumeration and trial-level results."""

from escalade._checkout import refuse_bare_import as _refuse_bare_import

_refuse_bare_import(__name__)


__all__: list[str] = []
