"""The one table of designs, and building a design from a study file's parameters.

Every design declares a :class:`~escalade.design.base.DesignEntry` named
``ENTRY`` in its own module; :data:`BUILTIN` lists them, and that list is the
only place a new built-in design is added. Everything else (the engine, exact
enumeration, paths, conduct mode, reports, ``escalade designs``) asks the
registry, never a design's name.

``build_design("boin", params, study_defaults)`` fills study-level settings
(target, number of doses, cohort size, maximum sample size, start dose) into
the config where the design has such a field and the study file did not set
it, validates everything, and returns the frozen design.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from escalade.design import (blrm, boin, boin12, crm, crm_logistic2, decision_table, efftox, i3plus3, keyboard, mtpi2,
                             threeplusthree, tite_boin, tite_crm)
from escalade.design import gboin, gboin_et, tite_boin12
from escalade.design.base import Design, DesignEntry
from escalade.design.errors import ConfigError, did_you_mean

__all__ = ["BUILTIN", "register", "unregister", "registered", "entry", "entries", "build_design", "design_kinds",
           "config_class", "config_to_dict", "ParamInfo", "param_info", "STUDY_SETTINGS"]

#: Study-level settings that fill a design parameter of the same name (unless the design's params set it).
STUDY_SETTINGS: tuple[str, ...] = ("target", "n_doses", "cohort_size", "max_n", "start_dose", "doses")

#: The built-in designs, one entry each (declared as ``ENTRY`` in the design's module).
BUILTIN: tuple[DesignEntry, ...] = (
    threeplusthree.ENTRY,
    boin.ENTRY,
    crm.ENTRY,
    efftox.ENTRY,
    tite_crm.ENTRY,
    tite_boin.ENTRY,
    boin12.ENTRY,
    tite_boin12.ENTRY,
    blrm.ENTRY,
    crm_logistic2.ENTRY,
    keyboard.ENTRY,
    mtpi2.ENTRY,
    i3plus3.ENTRY,
    decision_table.ENTRY,
    gboin.ENTRY,
    gboin_et.ENTRY,
)

_REGISTRY: dict[str, DesignEntry] = {}
_ALIASES: dict[str, str] = {}


def register(design_entry: DesignEntry) -> None:
    """Make a design available under its kind (and aliases) in study files.

    Raises
    ------
    ValueError
        When the kind or an alias is already taken by another design, or the
        entry's design class declares a different ``kind``.
    """
    e = design_entry
    if getattr(e.design, "kind", e.kind) != e.kind:
        raise ValueError(f"DesignEntry({e.kind!r}): its design class declares kind {e.design.kind!r}")
    for name in (e.kind, *e.aliases):
        owner = _ALIASES.get(name, name if name in _REGISTRY else None)
        if owner is not None and owner != e.kind:
            raise ValueError(f"design name {name!r} of {e.kind!r} is already taken by {owner!r}")
    _REGISTRY[e.kind] = e
    for a in e.aliases:
        _ALIASES[a] = e.kind


def unregister(kind: str) -> None:
    """Remove a design added by :func:`register` (built-in designs cannot be removed)."""
    if any(b.kind == kind for b in BUILTIN):
        raise ValueError(f"{kind!r} is a built-in design")
    e = _REGISTRY.pop(kind)
    for a in e.aliases:
        _ALIASES.pop(a, None)


@contextmanager
def registered(design_entry: DesignEntry) -> Iterator[DesignEntry]:
    """Register ``design_entry`` for the duration of a ``with`` block (tests, plug-ins)."""
    register(design_entry)
    try:
        yield design_entry
    finally:
        unregister(design_entry.kind)


for _e in BUILTIN:
    register(_e)


def entries() -> list[DesignEntry]:
    """Every registered design, in registration order (the built-in ones first)."""
    return list(_REGISTRY.values())


def design_kinds() -> list[str]:
    """Every registered kind, sorted."""
    return sorted(_REGISTRY)


def _canonical(kind: str) -> str:
    k = str(kind).strip().lower()
    k = _ALIASES.get(k, k)
    if k not in _REGISTRY:
        raise ConfigError("design", kind, f"must be one of {sorted(_REGISTRY)}{did_you_mean(k, _REGISTRY)} "
                                          f"(run 'escalade designs' to list them)")
    return k


def entry(kind: str) -> DesignEntry:
    """The registry entry of ``kind`` (or one of its aliases).

    Raises
    ------
    ConfigError
        For an unknown kind, with a did-you-mean suggestion.
    """
    return _REGISTRY[_canonical(kind)]


def config_class(kind: str) -> type:
    return entry(kind).config


def build_design(kind: str, params: Mapping[str, Any] | None = None,
                 study_defaults: Mapping[str, Any] | None = None) -> Design:
    """Validate ``params`` against the design's config and build the design.

    Raises
    ------
    ConfigError
        For an unknown design or parameter (with a did-you-mean suggestion) or
        a value out of range; ``field`` is the parameter's name.
    """
    e = entry(kind)
    k, cfg_cls = e.kind, e.config
    names = [f.name for f in dataclasses.fields(cfg_cls) if f.init]
    params = dict(params or {})
    for key in params:
        if key not in names:
            raise ConfigError(key, params[key],
                              f"is not a parameter of design '{k}'{did_you_mean(key, names)}; "
                              f"allowed: {', '.join(names)}")
    flags = {f.name for f in dataclasses.fields(cfg_cls) if f.type in ("bool", bool)}
    for key, v in params.items():
        if key in flags and not isinstance(v, bool):
            raise ConfigError(key, v, "must be true or false")
    merged = {key: v for key, v in (study_defaults or {}).items() if key in names}
    merged.update(params)
    try:
        cfg = cfg_cls(**merged)
    except TypeError as exc:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cfg_cls)
                   if f.init and f.name not in merged
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        hint = _MISSING_HINTS.get(missing[0], "") if missing else ""
        raise ConfigError(missing[0] if missing else "params", None,
                          f"is required by design '{k}'{hint}") from exc
    return e.design(cfg)


#: What to say when a required parameter is missing.
_MISSING_HINTS: dict[str, str] = {
    "skeleton": ("; calibrate one with 'escalade skeleton --target T --n-doses D --mtd M --halfwidth H' "
                 "(dfcrm getprior), e.g. 'escalade skeleton --target 0.25 --n-doses 5 --mtd 3 --halfwidth 0.05'"),
}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """All parameters of a config (defaults filled), JSON-friendly."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):  # a nested setting (backfill)
            v = dataclasses.asdict(v)
        if isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class ParamInfo:
    """One parameter of a design: name, default (``required`` when there is none) and meaning."""

    name: str
    default: Any
    required: bool
    meaning: str


def param_info(kind: str) -> list[ParamInfo]:
    """Every parameter a study file may set for ``kind``, with its default and meaning.

    The meaning comes from the numpydoc ``Attributes`` sections of the config
    class and its bases (the shared rule fields of
    :class:`~escalade.design.rules.SharedRules`; a line ``a, b`` documents both
    names), so the docstrings are the one source;
    then from the entry's ``params_documented_by`` config; the study settings
    have a shared meaning (:data:`STUDY_SETTINGS`).
    """
    e = entry(kind)
    cfg = e.config
    docs = dict(_STUDY_MEANINGS)
    if e.params_documented_by is not None:
        docs.update(_attribute_docs(e.params_documented_by.__doc__ or ""))
    for klass in reversed(cfg.__mro__):  # base classes first (the shared rule fields), the config last
        if klass is not object:
            docs.update(_attribute_docs(klass.__doc__ or ""))
    for name, text in _STUDY_MEANINGS.items():  # a grouped "Study settings ..." line says less than these
        if docs.get(name, "").startswith("Study setting"):
            docs[name] = text
    out = []
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default, required = f.default, False
        elif f.default_factory is not dataclasses.MISSING:
            default, required = f.default_factory(), False
        else:
            default, required = None, True
        if isinstance(default, tuple):
            default = list(default)
        out.append(ParamInfo(f.name, default, required, docs.get(f.name, "")))
    return out


_STUDY_MEANINGS: dict[str, str] = {
    "target": "Target DLT probability (study setting).",
    "n_doses": "Number of dose levels (study setting).",
    "cohort_size": "Patients per cohort (study setting).",
    "max_n": "Maximum sample size (study setting).",
    "start_dose": "0-based index of the first cohort's dose (study setting).",
    "doses": "Dose amounts, increasing (study setting).",
}

_SECTION = re.compile(r"^\s*(Attributes|Parameters)\s*\n\s*-{3,}\s*$", re.M)


def _attribute_docs(doc: str) -> dict[str, str]:
    """``{name: one-paragraph meaning}`` from a numpydoc ``Attributes``/``Parameters`` section."""
    m = _SECTION.search(doc)
    if not m:
        return {}
    lines = doc[m.end():].splitlines()
    indent = None
    out: dict[str, str] = {}
    names: list[str] = []
    text: list[str] = []

    def flush() -> None:
        meaning = " ".join(" ".join(text).split())
        for n in names:
            out[n] = meaning

    for line in lines:
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        if indent is None:
            indent = ind
        if ind < indent:
            break
        if ind == indent:
            if re.match(r"^\s*-{3,}\s*$", line) or not re.match(r"^[A-Za-z_][\w, ]*$", line.strip()):
                break  # the next section, or prose after the list
            flush()
            names = [n.strip() for n in line.strip().split(",") if n.strip()]
            text = []
        else:
            text.append(line.strip())
    flush()
    return out
