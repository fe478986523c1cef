"""Study files: YAML scenarios (dose levels, true curves, designs to compare).

See ``scenarios/README.md`` for the schema and ``cart_rr_heme.yaml`` for the
shipped CAR-T example.
"""

from escalade._checkout import refuse_bare_import as _refuse_bare_import

_refuse_bare_import(__name__)


from escalade.scenarios.errors import ConfigError, EscaladeError, StudyError

__all__ = ["ConfigError", "EscaladeError", "StudyError"]
