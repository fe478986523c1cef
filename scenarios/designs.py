"""The study's designs, validated and built once, with file context on every error.

The design layer knows nothing of files: :func:`escalade.design.registry.build_design`
raises :class:`~escalade.design.errors.ConfigError` naming the parameter;
:func:`build_study_designs` turns it into a :class:`~escalade.scenarios.errors.StudyError`
naming the study file and the field's path (``designs[1].params.skeleton``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from escalade.design.base import Design
from escalade.design.errors import ConfigError
from escalade.design.registry import build_design, entry
from escalade.scenarios.errors import StudyError
from escalade.scenarios.study import DesignSpec, Study

__all__ = ["build_study_designs", "referenced_files"]


def build_study_designs(study: Study) -> list[tuple[DesignSpec, Design]]:
    """Build every design of a study, turning config errors into file errors.

    Raises
    ------
    StudyError
        Naming the study file and ``designs[i].params.<field>`` (or
        ``designs[i].design`` for an unknown design).
    """
    out = []
    defaults = study.design_defaults()
    for i, spec in enumerate(study.designs):
        try:
            out.append((spec, build_design(spec.kind, _resolve_paths(study, spec), defaults)))
        except ConfigError as exc:
            prefix = f"designs[{i}]" if exc.field == "design" else f"designs[{i}].params"
            raise StudyError.from_config(study.source, prefix, exc) from None
    return out


def referenced_files(study: Study) -> dict[str, str]:
    """SHA-256 of each file a design parameter names (e.g. a ``decision_table`` CSV), keyed
    ``designs[i].params.NAME``; empty for a study whose designs name no file.

    A run's inputs are the study text *and* these files: editing a referenced CSV
    must invalidate a resumed run as editing the study does. A file that cannot be
    read hashes as ``"missing"`` (building the design then names the problem).
    """
    out: dict[str, str] = {}
    for i, spec in enumerate(study.designs):
        try:
            names = entry(spec.kind).path_params
        except ConfigError:
            continue
        params = _resolve_paths(study, spec)
        for name in names:
            value = params.get(name)
            if not (isinstance(value, str) and value.strip()):
                continue
            try:
                digest = hashlib.sha256(Path(value).read_bytes()).hexdigest()
            except OSError:
                digest = "missing"
            out[f"designs[{i}].params.{name}"] = digest
    return out


def _resolve_paths(study: Study, spec: DesignSpec) -> dict:
    """``spec.params`` with the design's file parameters (:attr:`DesignEntry.path_params`) that are relative
    paths resolved against the study file's folder (unchanged for a study not read from a file)."""
    params = dict(spec.params)
    try:
        names = entry(spec.kind).path_params
    except ConfigError:  # an unknown kind: build_design names it
        return params
    if not study.source:
        return params
    base = Path(study.source).parent
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value.strip() and not Path(value).is_absolute():
            params[name] = str(base / value)
    return params
