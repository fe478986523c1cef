"""The CRM's trial rules: now the shared rules of :mod:`escalade.design.rules`.

Kept so that ``from escalade.design.crm_rules import ...`` goes on working;
every name is the same object as in :mod:`escalade.design.rules`, which holds
the rules, their order-free composition and their documentation.
"""

from escalade.design.rules import (
    STOP_PRIORITY,
    Coherence,
    Effect,
    MinSampleSize,
    NoSkip,
    Rule,
    RuleContext,
    SafetyStop,
    StartUp,
    StopAtN,
    apply_rules,
)

__all__ = [
    "STOP_PRIORITY",
    "RuleContext",
    "Effect",
    "Rule",
    "NoSkip",
    "Coherence",
    "StartUp",
    "SafetyStop",
    "StopAtN",
    "MinSampleSize",
    "apply_rules",
]
