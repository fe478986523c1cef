"""Methods text for each design: a protocol-ready paragraph, parameters, decision table, references.

:func:`methods_section` finds the design's writer through the registry: the
design's :class:`~escalade.design.base.DesignEntry` names it
(``methods="escalade.reports.methods_boin:boin_methods"``), since design/
never imports reports/. An entry with ``methods=None`` (on purpose), or a
kind this version does not know (an older manifest), gets
:func:`generic_methods`, which lists every parameter the manifest
records. All text is plain (the templates escape it); numbers come from the
manifest and, for decision tables, from the design module's own functions
(never re-derived here).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from escalade.design import registry
from escalade.design.errors import ConfigError
from escalade.design.rules import SharedRules
from escalade.reports.formatting import dose_display
from escalade.reports.load import DesignInfo, RunData
from escalade.reports.plots import FigureImage
from escalade.reports.tables import Cell, Table

__all__ = ["MethodsSection", "methods_section", "generic_methods", "parameter_table", "fmt_param",
           "methods_writer", "STUDY_LEVEL_PARAMS", "trial_setting_sentence", "COMMON_MEANINGS"]

log = logging.getLogger(__name__)

#: Parameters a design takes from the study settings when its params do not set them.
STUDY_LEVEL_PARAMS: frozenset[str] = frozenset(registry.STUDY_SETTINGS)

#: Meanings of parameters that many designs share (a design's own table takes precedence).
COMMON_MEANINGS: dict[str, str] = {
    "target": "target DLT rate \u03c6 at the MTD",
    "n_doses": "number of dose levels",
    "cohort_size": "patients per cohort",
    "max_n": "maximum sample size",
    "start_dose": "dose of the first cohort",
    "doses": "dose amounts",
    "p_saf": "\u03c61: highest DLT rate deemed sub-therapeutic (default 0.6\u03c6)",
    "p_tox": "\u03c62: lowest DLT rate deemed overly toxic (default 1.4\u03c6)",
    "cutoff_eli": "posterior probability cut-off for eliminating a dose (too toxic)",
    "extrasafe": "extra safety stopping rule at the lowest dose",
    "offset": "how much lower the extra-safe cut-off is than cutoff_eli",
    "n_earlystop": "stop once this many patients are treated at the current dose",
    "bound_mtd": "the selected MTD's estimated DLT rate must not exceed \u03bbd",
    "titration": "accelerated titration (one patient per dose) until the first DLT",
    "safety_threshold": "stop if Pr(DLT probability at the lowest dose > \u03c6) exceeds this",
    "safety_min_n": "patients needed before the safety stop applies",
    "stop_n_at_dose": "stop when this many patients have been treated at the recommended dose",
    "min_n": "no stop other than for safety before this many patients",
}


@dataclass(frozen=True, slots=True)
class MethodsSection:
    """The methods text of one design.

    Attributes
    ----------
    name, kind
        Display name and registry kind of the design.
    heading
        Full name of the method, e.g. ``"Bayesian optimal interval (BOIN) design"``.
    paragraphs
        Protocol text, plain.
    parameters
        Every parameter with its value and where it came from.
    decision_tables
        The rule as tables (BOIN boundaries, 3+3 rules, CRM skeleton, ...).
    figures
        Figures of the design (e.g. the EffTox utility contours).
    references
        Citations, one string each.
    specific
        False when written by the generic fallback.
    """

    name: str
    kind: str
    heading: str
    paragraphs: Sequence[str]
    parameters: Table
    decision_tables: Sequence[Table] = field(default_factory=tuple)
    figures: Sequence[FigureImage] = field(default_factory=tuple)
    references: Sequence[str] = field(default_factory=tuple)
    specific: bool = True


Writer = Callable[[RunData, DesignInfo, int], MethodsSection]


def methods_writer(kind: str) -> Writer | None:
    """The methods-text writer the registry entry of ``kind`` names (None: the generic text).

    Raises
    ------
    ConfigError
        For a kind the registry does not know.
    ImportError, AttributeError
        When the entry names a writer that does not exist (a test imports
        every entry's writer, so this cannot pass unnoticed).
    """
    name = registry.entry(kind).methods
    if name is None:
        return None
    module, _, func = name.partition(":")
    return getattr(importlib.import_module(module), func)


def fmt_param(run: RunData, name: str, value: Any) -> str:
    """A parameter value for people: dose indices 1-based with label, booleans yes/no, lists joined."""
    if name == "start_dose" and isinstance(value, int) and 0 <= value < len(run.doses):
        return f"dose level {value + 1}, {dose_display(run.doses[value])}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_param(run, "", v) for v in value)
    if isinstance(value, Mapping):  # a nested setting (backfill): "max_per_dose 12; require_response yes; ..."
        return "; ".join(f"{k} {fmt_param(run, '', v)}" for k, v in value.items())
    if value is None:
        return "off" if name in _RULE_FIELDS else "not set"
    return str(value)


#: The shared trial-rule fields (every design's config has them); None there means the rule is off.
_RULE_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(SharedRules))


def parameter_table(run: RunData, design: DesignInfo, index: int,
                    descriptions: Mapping[str, str] | None = None, *,
                    derived: Mapping[str, tuple[str, str]] | None = None) -> Table:
    """Every parameter of ``design`` (defaults filled in), with its source and meaning.

    ``derived`` maps a parameter that the study left unset to ``(value text, how it was derived)``: the
    value the design computed is shown, with the source "derived", instead of "not set".
    """
    descriptions = {**_registry_meanings(design.kind), **COMMON_MEANINGS, **(descriptions or {})}
    derived = derived or {}
    rows = []
    for name, value in design.params.items():
        shown = fmt_param(run, name, value)
        meaning = descriptions.get(name, "")
        if name in design.params_given:
            source = "study file"
        elif value is None and name in derived:
            shown, how = derived[name]
            source = "derived"
            meaning = f"{meaning}; {how}" if meaning else how
        elif name in STUDY_LEVEL_PARAMS:
            source = "study setting"
        else:
            source = "default"
        rows.append([Cell(name, header=True, css="code"), Cell(shown), Cell(source), Cell(meaning)])
    return Table(f"params-{index + 1}", f"Parameters of {design.name}", ["Parameter", "Value", "Source", "Meaning"],
                 rows, "Source: set in the study file, taken from the study settings, the design's default, or "
                       "derived by the design from other settings.")


_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod):`~?(?:[\w.]+\.)?([\w]+)`")
_MATH = re.compile(r":math:`([^`]*)`")


_TEX = (("\\text{data}", "data"), ("\\mid", "|"), ("\\phi", "\u03c6"), ("\\lambda", "\u03bb"),
        ("\\alpha", "\u03b1"), ("\\beta", "\u03b2"), ("\\le", "\u2264"), ("\\ge", "\u2265"))


def _plain_math(tex: str) -> str:
    for a, b in _TEX:
        tex = tex.replace(a, b)
    return " ".join(tex.replace("\\", "").replace("{", "").replace("}", "").split())


def _registry_meanings(kind: str) -> dict[str, str]:
    """Each parameter's meaning as the design's config documents it (``escalade designs``), first sentence,
    markup removed: the fallback for parameters a methods writer does not describe itself."""
    try:
        infos = registry.param_info(kind)
    except ConfigError:  # a kind this version does not know (older run): no meanings
        return {}
    out = {}
    for p in infos:
        text = _MATH.sub(lambda m: _plain_math(m.group(1)), _ROLE.sub(r"\1", p.meaning)).replace("``", "")
        text = re.split(r"(?<=[a-z0-9)])\. ", " ".join(text.split()), maxsplit=1)[0].rstrip(".")
        if text:
            out[p.name] = text[0].lower() + text[1:] if text[:2] != text[:2].upper() else text
    return out


def trial_setting_sentence(run: RunData) -> str:
    """The DLT and response assessment windows, when the study file states them."""
    st = run.study_settings
    parts = []
    if st.get("dlt_window_days"):
        parts.append(f"DLTs are assessed over a {st['dlt_window_days']:g}-day window")
    if st.get("response_days"):
        parts.append(f"response is assessed at day {st['response_days']:g}")
    if not parts:
        return ""
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def generic_methods(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """Fallback for a design kind without a protocol template: the parameters as recorded."""
    text = (f"The design \u201c{design.name}\u201d (kind \u201c{design.kind}\u201d) was simulated with the "
            f"parameters listed below, as recorded in the run's manifest with every default filled in. "
            f"This version of escalade has no protocol template for this kind of design; describe its "
            f"escalation, stopping and selection rules here, with the reference that defines them.")
    return MethodsSection(design.name, design.kind, design.kind, [text],
                          parameter_table(run, design, index), specific=False)


def methods_section(run: RunData, design: DesignInfo, index: int) -> MethodsSection:
    """The methods section of ``design`` (the ``index``-th of the run).

    A writer that fails (e.g. parameters of an older manifest it does not
    understand) falls back to the generic section, with a logged warning, so
    that a report is never lost for its methods text.
    """
    try:
        writer = methods_writer(design.kind)
    except ConfigError:
        log.warning("design kind %r of %s is not registered in this version; methods text is the parameter list",
                    design.kind, design.name)
        writer = None
    if writer is None:
        return _with_guardrails(generic_methods(run, design, index), design)
    try:
        return _with_guardrails(writer(run, design, index), design)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError) as exc:
        log.warning("methods text for %s (%s) fell back to the parameter list: %s", design.name, design.kind, exc)
        return _with_guardrails(generic_methods(run, design, index), design)


def _with_guardrails(section: MethodsSection, design: DesignInfo) -> MethodsSection:
    """The section with one more paragraph for the shared guardrails the design's parameters switch on
    (:func:`escalade.design.rules.describe_guardrails`; docs/rules.md)."""
    from escalade.design.rules import describe_guardrails

    text = describe_guardrails(design.params)
    if not text:
        return section
    return dataclasses.replace(section, paragraphs=[*section.paragraphs, text])
