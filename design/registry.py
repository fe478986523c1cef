"""Names used in study files -> design configs and design classes.

``build_design("boin", params, study_defaults)`` fills study-level settings
(target, number of doses, cohort size, maximum sample size, start dose) into
the config where the design has such a field and the study file did not set
it, validates everything, and returns the frozen design.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from escalade.design.base import Design
from escalade.scenarios.errors import ConfigError, did_you_mean

__all__ = ["register", "build_design", "build_study_designs", "design_kinds", "config_class", "config_to_dict"]

_REGISTRY: dict[str, tuple[type, Callable[[Any], Design]]] = {}
_ALIASES: dict[str, str] = {}


def register(kind: str, config_cls: type, design_factory: Callable[[Any], Design],
             aliases: tuple[str, ...] = ()) -> None:
    """Make a design available under ``kind`` (and ``aliases``) in study files."""
    _REGISTRY[kind] = (config_cls, design_factory)
    for a in aliases:
        _ALIASES[a] = kind


def design_kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _canonical(kind: str) -> str:
    _load_builtin()
    k = str(kind).strip().lower()
    k = _ALIASES.get(k, k)
    if k not in _REGISTRY:
        raise ConfigError("design", kind, f"must be one of {sorted(_REGISTRY)}{did_you_mean(k, _REGISTRY)}")
    return k


def config_class(kind: str) -> type:
    return _REGISTRY[_canonical(kind)][0]


def build_design(kind: str, params: Mapping[str, Any] | None = None,
                 study_defaults: Mapping[str, Any] | None = None) -> Design:
    """Validate ``params`` against the design's config and build the design.

    Raises
    ------
    ConfigError
        For an unknown design or parameter (with a did-you-mean suggestion) or
        a value out of range; ``field`` is the parameter's name.
    """
    k = _canonical(kind)
    cfg_cls, factory = _REGISTRY[k]
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
        raise ConfigError(missing[0] if missing else "params", None,
                          f"is required by design '{k}'") from exc
    return factory(cfg)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """All parameters of a config (defaults filled), JSON-friendly."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from escalade.design import boin, threeplusthree

    register("3+3", threeplusthree.ThreePlusThreeConfig, threeplusthree.ThreePlusThreeDesign,
             aliases=("3plus3", "three_plus_three", "threeplusthree"))
    register("boin", boin.BoinConfig, boin.BoinDesign)
    for name in ("crm", "efftox", "tite_crm", "tite_boin", "boin12", "blrm", "crm_logistic2"):
        try:
            mod = __import__(f"escalade.design.{name}", fromlist=["register_design"])
        except ModuleNotFoundError as exc:
            if exc.name != f"escalade.design.{name}":
                raise
            continue
        hook = getattr(mod, "register_design", None)
        if hook is None:
            logging.getLogger(__name__).warning("design module %s has no register_design(); skipped", name)
            continue
        hook(register)


def build_study_designs(study: "Study") -> list[tuple["DesignSpec", Design]]:
    """Build every design of a study, turning config errors into file errors.

    Raises
    ------
    StudyError
        Naming the study file and ``designs[i].params.<field>`` (or
        ``designs[i].design`` for an unknown design).
    """
    from escalade.scenarios.errors import StudyError

    out = []
    defaults = study.design_defaults()
    for i, spec in enumerate(study.designs):
        try:
            out.append((spec, build_design(spec.kind, spec.params, defaults)))
        except ConfigError as exc:
            prefix = f"designs[{i}]" if exc.field == "design" else f"designs[{i}].params"
            raise StudyError.from_config(study.source, prefix, exc) from None
    return out


from escalade.scenarios.study import DesignSpec, Study  # noqa: E402  (type names for the hints above)
