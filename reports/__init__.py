"""Reports: operating-characteristics tables, plots, the HTML/PDF appendix and the amendment diff.

Reads a run directory (``escalade run --out DIR``) and never runs a design.
Modules, one idea each: ``load`` (read and check a run directory), ``formatting``
(how numbers are written), ``tables``, ``plots``, ``conclusion``,
``optimal`` (each phase I/II design's optimal dose, as the run recorded it), ``methods`` and ``methods_<design>`` (protocol text),
``appendix`` (HTML/PDF), ``xlsx``, ``diff`` (two runs compared), ``write``
(atomic output) and ``templating`` (jinja2, autoescaped).
"""

from escalade._checkout import refuse_bare_import as _refuse_bare_import

_refuse_bare_import(__name__)


__all__: list[str] = []
