"""The schema of ``manifest.json``: one set of dataclasses for its writer and its readers.

:func:`~escalade.simulations.study_run.run_study` builds a :class:`Manifest`
and writes :meth:`Manifest.to_dict`; the reports (:mod:`escalade.reports.load`)
read it back with :meth:`Manifest.from_dict`, so a field is named, typed and
checked in one place, and reports never re-parse the stored study text. To add
a field: give it a default here (older manifests lack it), fill it in the
writer, and read it from the dataclass. Keys this version does not know are
kept in :attr:`Manifest.extra` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.design.errors import EscaladeError

__all__ = ["ManifestError", "DoseRecord", "ScenarioRecord", "DesignRecord", "StudySettings", "Manifest",
           "RUN_FORMAT"]

#: Version of the run-directory layout (``inputs.json`` fingerprint includes it). Format 2 adds the
#: per-file hashes (``files_sha256``) that ``report``, ``diff`` and ``rerun`` verify, and the study's truth
#: per scenario (true MTD, acceptable doses, each phase I/II design's optimal dose).
RUN_FORMAT = 2


class ManifestError(EscaladeError, ValueError):
    """A manifest field is missing or malformed.

    Attributes
    ----------
    field
        Path of the field, e.g. ``"scenarios[2].p_dlt"``.
    problem
        What is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseRecord:
    """A dose level: label, amount and unit."""

    label: str
    amount: float
    unit: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioRecord:
    """A true scenario; ``true_mtd`` is 1-based (None: no dose acceptable), as the file stores it."""

    name: str
    p_dlt: tuple[float, ...]
    p_response: tuple[float, ...] = ()
    association: float = 0.0
    true_mtd: int | None = None
    true_mtd_why: str = ""
    acceptable_doses: tuple[int, ...] = ()
    optimal: tuple[Mapping[str, Any], ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DesignRecord:
    """A compared design: display name, registry kind (``design``), parameters given and filled."""

    name: str
    design: str
    params: Mapping[str, Any] = field(default_factory=dict)
    params_given: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySettings:
    """Study-level settings the reports print (None where an older manifest lacks them)."""

    title: str | None = None
    target: float | None = None
    cohort_size: int | None = None
    max_n: int | None = None
    start_dose: int | None = None
    dlt_window_days: float | None = None
    response_days: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """Everything needed to regenerate and report a run (DESIGN.md section 7).

    ``settings`` is None for manifests written before it existed (readers then
    fall back to what they can derive). Unknown keys are kept in ``extra``.
    """

    escalade_version: str = "unknown"
    run_format: int = RUN_FORMAT
    command: str | None = None
    study_file: str | None = None
    study_sha256: str | None = None
    study_text: str | None = None
    title: str | None = None
    n_trials: int
    seed: int
    chunk_size: int | None = None
    exact: bool = False
    exact_fallbacks: tuple[Mapping[str, Any], ...] = ()
    n_jobs: int | None = None
    backend: str | None = None
    target: float
    mtd_rule: Mapping[str, Any] = field(default_factory=dict)
    timing: Mapping[str, Any] | None = None
    doses: tuple[DoseRecord, ...]
    scenarios: tuple[ScenarioRecord, ...]
    designs: tuple[DesignRecord, ...]
    settings: StudySettings | None = None
    platform: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    elapsed_s: float | None = None
    results_sha256: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict in the order of the fields (tuples as lists, ``extra`` merged in)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if f.name == "settings" and v is None:
                continue
            out[f.name] = _plain(v)
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Manifest":
        """Check and type a manifest read from JSON.

        Raises
        ------
        ManifestError
            Naming the first missing or malformed field.
        """
        if not isinstance(data, Mapping):
            raise ManifestError("manifest", "must be a JSON object")
        missing = [k for k in ("n_trials", "seed", "doses", "scenarios", "designs", "target") if k not in data]
        if missing:
            raise ManifestError(", ".join(missing), "missing (written by another program or version)")
        target = _num(data["target"], "target")
        doses = tuple(_record(DoseRecord, d, f"doses[{i}]") for i, d in enumerate(_list(data["doses"], "doses")))
        scenarios = []
        for i, s in enumerate(_list(data["scenarios"], "scenarios")):
            where = f"scenarios[{i}]"
            rec = _record(ScenarioRecord, s, where)
            if not rec.p_dlt:
                raise ManifestError(f"{where}.p_dlt", "must list one probability per dose")
            if not rec.p_response:
                rec = dataclasses.replace(rec, p_response=(math.nan,) * len(rec.p_dlt))
            scenarios.append(rec)
        designs = tuple(_record(DesignRecord, d, f"designs[{i}]") for i, d in enumerate(_list(data["designs"],
                                                                                              "designs")))
        if not doses or not scenarios or not designs:
            raise ManifestError("doses/scenarios/designs", "lists no doses, scenarios or designs")
        known = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in known and k not in
                              ("doses", "scenarios", "designs", "settings", "extra", "target")}
        for k in ("n_trials", "seed"):
            kw[k] = _int(data[k], k)
        if "exact_fallbacks" in kw:
            kw["exact_fallbacks"] = tuple(kw["exact_fallbacks"] or ())
        settings = data.get("settings")
        return cls(target=target, doses=doses, scenarios=tuple(scenarios), designs=designs,
                   settings=None if settings is None else _record(StudySettings, settings, "settings"),
                   extra={k: v for k, v in data.items() if k not in known}, **kw)


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise ManifestError(where, f"must be a list; got {type(v).__name__}")
    return v


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ManifestError(where, f"must be a number; got {v!r}")
    return float(v)


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ManifestError(where, f"must be an integer; got {v!r}")
    return v


def _record(cls: type, data: Any, where: str) -> Any:
    """Build one of the record dataclasses from a JSON object, coercing numbers and lists by the field types."""
    if not isinstance(data, Mapping):
        raise ManifestError(where, "must be a JSON object")
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data or data[f.name] is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ManifestError(f"{where}.{f.name}", "missing")
            continue
        v = data[f.name]
        t = str(f.type)
        try:
            if t.startswith("tuple[float"):
                kw[f.name] = tuple(float(x) for x in _list(v, f"{where}.{f.name}"))
            elif t.startswith("tuple[int"):
                kw[f.name] = tuple(_int(x, f"{where}.{f.name}") for x in _list(v, f"{where}.{f.name}"))
            elif t.startswith("tuple[Mapping"):
                items = _list(v, f"{where}.{f.name}")
                if not all(isinstance(x, Mapping) for x in items):
                    raise ManifestError(f"{where}.{f.name}", "must be a list of JSON objects")
                kw[f.name] = tuple(dict(x) for x in items)
            elif t.startswith("float"):
                kw[f.name] = _num(v, f"{where}.{f.name}")
            elif t.startswith("int"):
                kw[f.name] = _int(v, f"{where}.{f.name}")
            elif t.startswith("str"):
                kw[f.name] = str(v)
            elif t.startswith("Mapping"):
                if not isinstance(v, Mapping):
                    raise ManifestError(f"{where}.{f.name}", "must be a JSON object")
                kw[f.name] = dict(v)
            else:
                kw[f.name] = v
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(f"{where}.{f.name}", f"malformed ({exc})") from None
    return cls(**kw)
