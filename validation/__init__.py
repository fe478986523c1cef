"""The validation suite shipped with escalade (``escalade validate``; issue 20).

Requirements (one statement, one test, one tolerance each) that compare the
installed package with the reference outputs of the R packages (BOIN, dfcrm,
escalation), Stan (EffTox) and long NUTS runs (BLRM) kept in
``validation/reference/`` (installed as package data, with their provenance
READMEs), with exact enumeration, with itself across workers, backends and
batch splits, and with its own prior (simulation-based calibration). See
:mod:`escalade.validation.suite` and :mod:`escalade.validation.report`.
"""

from escalade._checkout import refuse_bare_import as _refuse_bare_import

_refuse_bare_import(__name__)

__all__: list[str] = []
