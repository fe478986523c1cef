"""Reports: operating-characteristics tables, plots, the HTML/PDF appendix and the amendment diff.

Reads a run directory (``escalade run --out DIR``) and never runs a design.
Modules, one idea each: ``load`` (read and check a run directory), ``formatting``
(how numbers are written), ``tables``, ``plots``, ``conclusion``, ``pairing``
(paired differences from trial-level results), ``optimal`` (EffTox optimal
dose of the true curves), ``methods`` and ``methods_<design>`` (protocol text),
``appendix`` (HTML/PDF), ``xlsx``, ``diff`` (two runs compared), ``write``
(atomic output) and ``templating`` (jinja2, autoescaped).
"""

from escalade._checkout import refuse_bare_import as _refuse_bare_import

_refuse_bare_import(__name__)


__all__: list[str] = []
