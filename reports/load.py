"""Read a run directory (``escalade run --out DIR``) for reporting.

Only stored results are read: ``manifest.json``, ``oc.csv`` and ``paired.csv``
(``trials.parquet`` stays the machine-readable trial-level output). Before
anything is read, the three result files are checked against the SHA-256 the
manifest recorded (:func:`escalade.simulations.run_files.verify_run_files`):
an edited or replaced file is refused. Nothing is simulated or re-derived
here: the true MTD, the acceptable doses and each design's optimal dose
(with the reasons) are the run's, from the manifest. Every problem is a
one-line :class:`~escalade.reports.errors.ReportError` naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from escalade.reports.errors import (
    RunDirNotFoundError,
    RunFileCorruptError,
    RunFileMissingError,
    RunInProgressError,
)
from escalade.simulations.csv_text import restore_frame
from escalade.simulations.manifest import Manifest, ManifestError

__all__ = ["OcCell", "DoseInfo", "ScenarioInfo", "DesignInfo", "OptimalDose", "RunData", "load_run", "OC_COLUMNS",
           "PAIRED_COLUMNS"]

log = logging.getLogger(__name__)

#: Columns ``oc.csv`` must have (``simulations/oc.py``).
OC_COLUMNS: tuple[str, ...] = ("scenario", "design", "metric", "dose", "value", "se", "exact")
#: Columns ``paired.csv`` must have.
PAIRED_COLUMNS: tuple[str, ...] = ("scenario", "design", "versus", "metric", "difference", "se", "se_unpaired")
_MANIFEST_KEYS: tuple[str, ...] = ("n_trials", "seed", "doses", "scenarios", "designs", "target", "mtd_rule")
_RERUN = "regenerate it with `escalade run STUDY.yaml --out {dir}`"


@dataclass(frozen=True, slots=True)
class OcCell:
    """One operating characteristic: its value, Monte Carlo SE, and whether it is exact."""

    value: float
    se: float
    exact: bool

    @property
    def missing(self) -> bool:
        """True when the value is not defined (e.g. ORR at the selected dose when none was selected)."""
        return not math.isfinite(self.value)


@dataclass(frozen=True, slots=True)
class DoseInfo:
    """A dose level as the manifest records it."""

    label: str
    amount: float
    unit: str = ""


@dataclass(frozen=True, slots=True)
class OptimalDose:
    """A phase I/II design's optimal dose under the true curves, by its own objective.

    Attributes
    ----------
    design
        The design's display name.
    objective
        What it maximises, e.g. ``"EffTox utility"``.
    dose
        0-based optimal dose, ``None`` when no dose meets the design's hurdles.
    why
        One sentence: the dose, and the rule that picks it.
    value
        The true objective per dose.
    """

    design: str
    objective: str
    dose: int | None
    why: str
    value: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    """A true scenario as the run defined it (0-based doses; the manifest stores them 1-based).

    Attributes
    ----------
    true_mtd
        The true MTD by the study's rule, ``None`` when no dose is tolerable
        (then selecting no dose is the correct selection).
    acceptable
        Doses whose true DLT rate is within target +/- delta.
    mtd_why
        Why the true MTD is that dose (or none), one sentence.
    optimal
        The optimal dose of each phase I/II design (by its own objective).
    """

    name: str
    p_dlt: tuple[float, ...]
    p_response: tuple[float, ...]
    association: float
    true_mtd: int | None
    description: str = ""
    acceptable: tuple[int, ...] = ()
    mtd_why: str = ""
    optimal: tuple[OptimalDose, ...] = ()


@dataclass(frozen=True, slots=True)
class DesignInfo:
    """A compared design: display name, registry kind, full and given parameters."""

    name: str
    kind: str
    params: Mapping[str, Any]
    params_given: Mapping[str, Any]


@dataclass(frozen=True, slots=True, eq=False)
class RunData:
    """Everything a report needs from one run directory.

    Attributes
    ----------
    path
        The run directory.
    manifest
        ``manifest.json`` as a dict.
    oc, paired
        ``oc.csv`` and ``paired.csv`` as data frames (``paired`` may be empty).
    doses, scenarios, designs
        From the manifest, in the study file's order.
    study_settings
        Study-level settings parsed from the stored study text (``dlt_window_days``,
        ``cohort_size``, ...); empty when the text cannot be parsed.
    """

    path: Path
    manifest: dict[str, Any]
    oc: pd.DataFrame
    paired: pd.DataFrame
    doses: tuple[DoseInfo, ...]
    scenarios: tuple[ScenarioInfo, ...]
    designs: tuple[DesignInfo, ...]
    study_settings: Mapping[str, Any] = field(default_factory=dict)
    _index: dict[tuple[str, str, str, str], OcCell] = field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        return str(self.manifest.get("title") or "Dose-finding study")

    @property
    def target(self) -> float:
        return float(self.manifest["target"])

    @property
    def n_trials(self) -> int:
        return int(self.manifest["n_trials"])

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def design_names(self) -> list[str]:
        return [d.name for d in self.designs]

    @property
    def scenario_names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    @property
    def dose_labels(self) -> list[str]:
        return [d.label for d in self.doses]

    @property
    def mtd_rule(self) -> str:
        """The study's definition of the true MTD and the acceptable doses, one sentence (from the manifest)."""
        rule = self.manifest.get("mtd_rule") or {}
        return str(rule.get("text") or "") if isinstance(rule, dict) else ""

    @property
    def timing(self) -> dict[str, Any]:
        """The calendar time the run simulated (``enabled``, ``source`` and the settings), from the manifest."""
        t = self.manifest.get("timing")
        return dict(t) if isinstance(t, dict) else {"enabled": False, "source": "not recorded"}

    @property
    def any_exact(self) -> bool:
        return bool(self.oc["exact"].any())

    def cell(self, scenario: str, design: str, metric: str, dose: str = "") -> OcCell | None:
        """The stored value of one characteristic, or ``None`` when the run has no such row."""
        return self._index.get((scenario, design, metric, dose))

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per run and key (derived tables such as trials grouped by design)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def paired_cell(self, scenario: str, design: str, versus: str, metric: str) -> tuple[float, float, float] | None:
        """``(difference, se, se_unpaired)`` of ``design - versus`` from ``paired.csv``, or ``None``.

        ``paired.csv`` holds every pair of designs once (the later design in
        the study file minus the earlier); the other order is its negative.
        ``None`` when the pair is not paired (exact enumeration) or the
        characteristic is not defined for one of the designs.
        """
        index = self._cache.get("paired")
        if index is None:
            p = self.paired
            index = {(r.scenario, r.design, r.versus, r.metric): (float(r.difference), float(r.se),
                                                                  float(r.se_unpaired))
                     for r in p.itertuples(index=False)}
            self._cache["paired"] = index
        got = index.get((scenario, design, versus, metric))
        if got is None:
            back = index.get((scenario, versus, design, metric))
            if back is not None:
                got = (-back[0], back[1], back[2])
        return got

    def stop_reasons(self) -> list[str]:
        """Stop reasons that occur in the run, in order of first appearance."""
        rows = self.oc[self.oc["metric"] == "stop_pct"]
        return list(dict.fromkeys(rows["dose"]))


def _read_manifest(path: Path) -> dict[str, Any]:
    f = path / "manifest.json"
    if not f.is_file():
        raise RunFileMissingError(f, "is missing, so this is not a finished run directory (manifest.json is "
                                  f"written last); {_RERUN.format(dir=path)}")
    try:
        man = json.loads(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunFileCorruptError(f, f"is not UTF-8 text; {_RERUN.format(dir=path)}") from None
    except json.JSONDecodeError as exc:
        raise RunFileCorruptError(f, f"is not valid JSON (line {exc.lineno}: {exc.msg}); "
                                  f"{_RERUN.format(dir=path)}") from None
    if not isinstance(man, dict):
        raise RunFileCorruptError(f, f"must hold a JSON object; {_RERUN.format(dir=path)}")
    missing = [k for k in _MANIFEST_KEYS if k not in man]
    if missing:
        raise RunFileCorruptError(f, f"lacks the field(s) {', '.join(missing)}; it was written by another "
                                  f"program or version; {_RERUN.format(dir=path)}")
    return man


def _read_csv(f: Path, columns: tuple[str, ...], numeric: tuple[str, ...], run_dir: Path) -> pd.DataFrame:
    text_cols = [c for c in columns if c not in numeric and c != "exact"]
    try:
        df = pd.read_csv(f, dtype={c: str for c in text_cols + ["exact"]}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunFileCorruptError(f, f"cannot be read as CSV ({first}); {_RERUN.format(dir=run_dir)}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RunFileCorruptError(f, f"lacks the column(s) {', '.join(missing)} (expected {', '.join(columns)}); "
                                  f"{_RERUN.format(dir=run_dir)}")
    restore_frame(df, text_cols)  # names written with a leading apostrophe against spreadsheet formulas
    for c in numeric:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            df[c] = col.astype(float)
            continue
        conv = pd.to_numeric(col.astype(str).str.strip().replace("", "nan"), errors="coerce")
        bad = conv.isna() & ~col.astype(str).str.strip().str.lower().isin(["nan", ""])
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise RunFileCorruptError(f, f"row {i + 2}, column {c}: {str(col.iloc[i])[:40]!r} is not a number; "
                                      f"{_RERUN.format(dir=run_dir)}")
        df[c] = conv.astype(float)
    if "exact" in columns:
        ex = df["exact"].astype(str).str.strip().str.lower()
        bad = ~ex.isin(["true", "false"])
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise RunFileCorruptError(f, f"row {i + 2}, column exact: {df['exact'].iloc[i]!r} is not True/False; "
                                      f"{_RERUN.format(dir=run_dir)}")
        df["exact"] = ex == "true"
    return df


def _study_settings(man: Mapping[str, Any], run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Study-level settings and scenario descriptions: the manifest's ``settings`` record
    (:class:`~escalade.simulations.manifest.StudySettings`), or, for a manifest written before
    it existed, the stored study text (best effort)."""
    record = Manifest.from_dict(man)
    if record.settings is not None:
        settings = {f.name: getattr(record.settings, f.name) for f in dataclasses.fields(record.settings)}
        return settings, {s.name: s.description for s in record.scenarios}
    text = man.get("study_text")
    if not text:
        return {}, {}
    from escalade.scenarios.errors import EscaladeError
    from escalade.scenarios.load import parse_study

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = parse_study(str(text), source=str(man.get("study_file") or "study"))
    except EscaladeError as exc:  # an older or newer schema: the manifest alone still suffices
        log.warning("%s: the stored study text no longer validates (%s); reporting from the manifest only",
                    run_dir / "manifest.json", exc)
        return {}, {}
    settings = {"title": st.title, "target": st.target, "cohort_size": st.cohort_size, "max_n": st.max_n,
                "start_dose": st.start_dose, "dlt_window_days": st.dlt_window_days,
                "response_days": st.response_days, "mtd_definition": st.mtd_definition,
                "mtd_delta": st.mtd_delta}
    return settings, {s.name: s.description for s in st.scenarios}


def _parse_structure(man: dict[str, Any], f: Path, run_dir: Path
                     ) -> tuple[tuple[DoseInfo, ...], tuple[ScenarioInfo, ...], tuple[DesignInfo, ...]]:
    try:
        record = Manifest.from_dict(man)
    except ManifestError as exc:
        raise RunFileCorruptError(f, f"has a malformed doses/scenarios/designs entry ({exc}); "
                                  f"{_RERUN.format(dir=run_dir)}") from None
    try:
        doses = tuple(DoseInfo(d.label, d.amount, d.unit) for d in record.doses)
        scen = []
        for s in record.scenarios:
            mtd = None if s.true_mtd is None else s.true_mtd - 1
            optimal = tuple(OptimalDose(str(o["design"]), str(o["objective"]),
                                        None if o["dose"] is None else int(o["dose"]) - 1, str(o.get("why") or ""),
                                        tuple(float(v) for v in o.get("value") or ()))
                            for o in s.optimal)
            scen.append(ScenarioInfo(s.name, s.p_dlt, s.p_response, s.association, mtd, s.description,
                                     tuple(j - 1 for j in s.acceptable_doses), s.true_mtd_why, optimal))
        designs = tuple(DesignInfo(d.name, d.design, dict(d.params), dict(d.params_given)) for d in record.designs)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFileCorruptError(f, f"has a malformed doses/scenarios/designs entry ({type(exc).__name__}: "
                                  f"{exc}); {_RERUN.format(dir=run_dir)}") from None
    return doses, tuple(scen), designs


def _verify(run_dir: Path, man: dict[str, Any]) -> None:
    """Refuse result files that differ from the hashes the manifest recorded (one line naming the file)."""
    from escalade.simulations.run_files import RunFilesError, verify_run_files

    try:
        verify_run_files(run_dir, man)
    except RunFilesError as exc:
        cls = RunFileMissingError if "is missing" in exc.reason else RunFileCorruptError
        raise cls(exc.path, exc.reason) from None


def load_run(path: str | Path) -> RunData:
    """Read and check a run directory.

    Parameters
    ----------
    path
        The directory an ``escalade run ... --out DIR`` wrote.

    Returns
    -------
    RunData

    Raises
    ------
    RunDirNotFoundError
        If ``path`` is not a directory.
    RunInProgressError
        If a run holds the directory's lock (its files may change while read).
    RunFileMissingError
        If ``manifest.json``, ``oc.csv``, ``paired.csv`` or ``trials.parquet`` is missing.
    RunFileCorruptError
        If a result file differs from the SHA-256 the manifest recorded, the
        manifest records none (an earlier escalade), a file cannot be parsed,
        lacks a column or field, or ``oc.csv`` does not match the manifest's
        scenarios and designs.
    """
    run_dir = Path(path)
    if not run_dir.is_dir():
        what = "is a file, not a run directory" if run_dir.exists() else "no such run directory"
        raise RunDirNotFoundError(run_dir, f"{what}; give the --out directory of an `escalade run`")
    lock = run_dir / ".lock"
    if lock.exists():
        raise RunInProgressError(lock, "an `escalade run` is writing this directory; report it when the run has "
                                 f"finished (if that run was killed, run it again to finish it, or delete {lock})")
    man = _read_manifest(run_dir)
    mf = run_dir / "manifest.json"
    _verify(run_dir, man)
    doses, scenarios, designs = _parse_structure(man, mf, run_dir)

    oc_f = run_dir / "oc.csv"
    if not oc_f.is_file():
        raise RunFileMissingError(oc_f, f"is missing; {_RERUN.format(dir=run_dir)}")
    oc = _read_csv(oc_f, OC_COLUMNS, ("value", "se"), run_dir)
    paired = _read_csv(run_dir / "paired.csv", PAIRED_COLUMNS, ("difference", "se", "se_unpaired"), run_dir)

    have = set(zip(oc["scenario"], oc["design"]))
    lost = [(s.name, d.name) for s in scenarios for d in designs if (s.name, d.name) not in have]
    if lost:
        s, d = lost[0]
        raise RunFileCorruptError(oc_f, f"has no rows for scenario {s!r} x design {d!r} listed in manifest.json "
                                  f"({len(lost)} such pairs); the files come from different runs; "
                                  f"{_RERUN.format(dir=run_dir)}")
    index = {(r.scenario, r.design, r.metric, r.dose): OcCell(float(r.value), float(r.se), bool(r.exact))
             for r in oc.itertuples(index=False)}
    settings, descriptions = _study_settings(man, run_dir)
    scenarios = tuple(dataclasses.replace(s, description=descriptions.get(s.name, "")) for s in scenarios)
    log.info("read run %s: %d scenarios x %d designs", run_dir, len(scenarios), len(designs))
    return RunData(run_dir, man, oc, paired, doses, scenarios, designs, settings, index)
