"""The Python API: build a study from a file or from Python objects, run it, and look at tidy results.

``Study`` is a study file as Python data: ``Study.from_yaml`` reads one, ``Study(...)`` builds one
from doses, designs (``escalade.designs``) and scenarios, and ``Study.to_yaml`` writes it back. Every
study is checked by the study file loader itself (``escalade.scenarios.load.parse_study``), so a bad value
gives the same one-line error as in a file (``scenarios[1].p_dlt[2] = 1.3: must be a probability in [0, 1]``),
and by building each design (``designs[0].params.cutoff_eli ...``), as ``escalade run`` does before it starts.

``Study.run`` runs ``escalade.simulations.study_run.run_study``, the engine of ``escalade run``: with
``out`` it writes the same run directory, with the same results hash, as the command line. The ``Run``
it returns holds the tidy results (``Run.oc``, ``Run.paired``, ``Run.trials``); its figures,
appendix and amendment diff come from the reports layer (``escalade.reports``), which reads a run
directory: a run without ``out`` writes one to a temporary folder the first time it is needed, removed when
the ``Run`` is.

Examples
--------
>>> import escalade as esc
>>> study = esc.Study(
...     target=0.3, doses=[10, 20, 40],
...     designs=[esc.designs.BOIN(name="BOIN"), esc.designs.THREE_PLUS_THREE(name="3+3")],
...     scenarios=[{"name": "MTD at DL2", "p_dlt": [0.1, 0.3, 0.5]}])
>>> run = study.run(n_trials=50, seed=1)
>>> run.oc.columns.tolist()
['scenario', 'design', 'metric', 'dose', 'value', 'se', 'exact']
>>> study.replace(target=1.2)
Traceback (most recent call last):
...
escalade.scenarios.errors.StudyError: study.target = 1.2: must be a DLT rate strictly between 0 and 1
"""

from __future__ import annotations

import copy
import logging
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from escalade import designs as _designs
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.errors import EscaladeError, StudyError, did_you_mean
from escalade.scenarios.load import load_study, parse_study
from escalade.scenarios.study import DoseLevel, Scenario
from escalade.scenarios.study import Study as StudySpec

__all__ = ["Study", "Run", "RunCancelled", "Diff"]

log = logging.getLogger(__name__)

#: ``progress(units_done, units_total, trials_done)``: called once before any work unit runs and after each.
Progress = Callable[[int, int, int], None]

#: Top-level sections of a study file that ``Study`` takes as its own arguments.
_SECTIONS: tuple[str, ...] = ("study", "doses", "designs", "scenarios", "simulation")


class RunCancelled(EscaladeError):
    """``Study.run`` was cancelled (its ``cancel`` was set).

    With ``out``, the work units finished before the cancellation stay in the run directory and the same run
    resumes from them.
    """


class Study:
    """A dose-finding study: doses, designs, true scenarios and simulation settings, checked as a study file.

    Parameters
    ----------
    target
        Target DLT rate (``study.target``).
    doses
        Dose levels, increasing: amounts (``[1e5, 3e5]``, labelled ``DL1, DL2, ...``), mappings as in a study
        file (``{"label": "DL1", "amount": 1e5, "unit": "cells/kg"}``) or
        ``escalade.scenarios.study.DoseLevel``.
    designs
        The designs to compare: ``escalade.designs`` objects (``esc.designs.BOIN(name="BOIN")``) or study
        file entries (``{"name": "BOIN", "design": "boin", "params": {...}}``).
    scenarios
        True scenarios: mappings as in a study file (``name``, ``p_dlt``, optional ``p_response``,
        ``association``, ``description``) or ``escalade.scenarios.study.Scenario``.
    simulation
        The ``simulation`` section (``n_trials``, ``seed``, ``chunk_size``, ``exact``).
    sections
        Other top-level sections of a study file, by name (e.g. ``{"timing": {...}}``).
    **settings
        Other keys of the ``study`` section: ``title``, ``cohort_size``, ``max_n``, ``start_dose`` (1-based, as
        in files), ``dlt_window_days``, ``response_days``, ``mtd_definition``, ``mtd_delta``, ...

    Raises
    ------
    StudyError
        The study file loader's one-line error, naming the field path (``doses[1].amount``), the value and
        the fix; or a design's, naming ``designs[i].params.NAME``.

    Notes
    -----
    Scenario files are documented in ``scenarios/README.md``; a field this class does not name as an argument
    is still accepted through ``settings`` or ``sections`` and checked by the same loader. A study is immutable:
    ``replace`` returns a changed copy.
    """

    def __init__(self, *, target: float, doses: Sequence[Any], designs: Sequence[Any], scenarios: Sequence[Any],
                 simulation: Mapping[str, Any] | None = None, sections: Mapping[str, Any] | None = None,
                 **settings: Any) -> None:
        head = {"title": settings.pop("title")} if "title" in settings else {}
        doses, designs, scenarios = (_listed(doses), _listed(designs), _listed(scenarios))
        data: dict[str, Any] = {"study": {**head, "target": target, **settings},
                                "doses": [_dose_entry(d, i) for i, d in enumerate(doses)]
                                if isinstance(doses, Sequence) and not isinstance(doses, str) else doses,
                                "designs": [_design_entry(d) for d in designs]
                                if isinstance(designs, Sequence) and not isinstance(designs, str) else designs,
                                "scenarios": [_scenario_entry(s) for s in scenarios]
                                if isinstance(scenarios, Sequence) and not isinstance(scenarios, str) else scenarios}
        if simulation is not None:
            data["simulation"] = dict(simulation)
        for key, value in (sections or {}).items():
            if key in data:
                raise StudyError(None, key, value, f"is an argument of Study; pass {key}=... instead of "
                                                   f"sections={{{key!r}: ...}}")
            data[key] = value
        self._init(data, None, None)

    def _init(self, data: dict[str, Any], spec: StudySpec | None, source: str | None) -> None:
        data = _plain(data)
        if spec is None:
            spec = parse_study(_dump(data), source=source)
        self._data: dict[str, Any] = data
        self._spec: StudySpec = spec
        self._built = build_study_designs(spec)  # the designs' own checks, with designs[i].params.NAME

    # -- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> Study:
        """Read and check a study file (as ``escalade run`` reads it).

        A design parameter that names a file (a protocol's decision table) is read relative to the study
        file's folder, as on the command line.

        Raises
        ------
        StudyError
            Naming the file, the field path, the value and the fix.
        """
        spec = load_study(path)
        data = yaml.safe_load(spec.text)  # load_study refused anything but plain YAML before this
        self = cls.__new__(cls)
        self._init(data, spec, spec.source)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Study:
        """A study from the plain data of a study file (what ``yaml.safe_load`` gives; see ``to_dict``).

        ``source`` names the data in error messages and is the folder that relative file parameters are
        read from (default: none, the working directory).
        """
        if not isinstance(data, Mapping):
            raise StudyError(source, "file", data, "must be a mapping of the sections study, doses, designs, "
                                                   "scenarios (and optionally simulation, timing)")
        self = cls.__new__(cls)
        self._init(copy.deepcopy(dict(data)), None, source)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The study as plain data (a deep copy): the sections of its study file."""
        return copy.deepcopy(self._data)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The study file's text; written to ``path`` as well when given.

        ``Study.from_yaml`` of the text gives an equal study with the same results; comments of a study read
        from a file are not kept.
        """
        text = _dump(self._data)
        if path is not None:
            from escalade.simulations.atomic import atomic_write

            atomic_write(Path(path), text)
        return text

    def replace(self, **changes: Any) -> Study:
        """A copy with some parts changed, checked as a new study.

        Keywords are the arguments of ``Study``: ``doses``, ``designs``, ``scenarios``, ``simulation``,
        any setting of the ``study`` section (``target``, ``max_n``, ...; ``None`` removes one, so that its
        default applies), another top-level section by name (``timing``), or ``sections={name: ...}`` for any
        section (``None`` removes a section). The copy is no longer the study
        file, so errors name no file; a design's relative file parameter (a decision table CSV) is made absolute
        against the file's folder.

        Examples
        --------
        >>> import escalade as esc
        >>> s = esc.Study(target=0.3, doses=[1, 2], designs=[esc.designs.BOIN()],
        ...               scenarios=[{"name": "a", "p_dlt": [0.1, 0.3]}])
        >>> s.replace(max_n=12).spec.max_n
        12
        """
        data = self.to_dict()
        for key, value in changes.items():
            if key == "doses":
                data[key] = [_dose_entry(d, i) for i, d in enumerate(value)]
            elif key == "designs":
                data[key] = [_design_entry(d) for d in value]
            elif key == "scenarios":
                data[key] = [_scenario_entry(s) for s in value]
            elif key == "sections":
                data.update(value or {})
            elif key in ("simulation", "study") or key in data and key not in _SECTIONS or key == "timing":
                data[key] = value
            elif value is None:
                data["study"].pop(key, None)
            else:
                data["study"][key] = value
        for key in [k for k, v in data.items() if v is None and k not in _SECTIONS]:
            del data[key]
        return Study.from_dict(self._anchored(data))

    def with_scenario(self, name: str, **fields: Any) -> Study:
        """A copy in which the scenario ``name`` has some fields changed (e.g. ``p_dlt=[...]``).

        Raises
        ------
        StudyError
            When the study has no scenario of that name (with a did-you-mean suggestion).
        """
        data = self.to_dict()
        names = [s.get("name") for s in data["scenarios"]]
        if name not in names:
            raise StudyError(self._spec.source, "scenarios", name,
                             f"no scenario of this name{did_you_mean(name, [str(n) for n in names])}; "
                             f"choose one of {names}")
        data["scenarios"][names.index(name)].update(_plain(fields))
        return Study.from_dict(self._anchored(data))

    def _anchored(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with relative file parameters of the designs made absolute against this study's file's folder,
        so that a changed copy (no longer that file, so named in no error) still reads the same files."""
        if not self._spec.source or not isinstance(data.get("designs"), list):
            return data
        from escalade.design.registry import entry
        from escalade.scenarios.errors import ConfigError

        base = Path(self._spec.source).parent
        for d in data["designs"]:
            if not isinstance(d, dict) or not isinstance(d.get("params"), dict):
                continue
            try:
                names = entry(str(d.get("design"))).path_params
            except ConfigError:
                continue
            for key in names:
                v = d["params"].get(key)
                if isinstance(v, str) and v.strip() and not Path(v).is_absolute():
                    d["params"][key] = str((base / v).resolve())
        return data

    # -- what the study holds ---------------------------------------------------------------------------------------

    @property
    def spec(self) -> StudySpec:
        """The validated study (``escalade.scenarios.study.Study``) the engine runs."""
        return self._spec

    @property
    def title(self) -> str:
        """The study's title."""
        return self._spec.title

    @property
    def target(self) -> float:
        """Target DLT rate."""
        return self._spec.target

    @property
    def doses(self) -> tuple[DoseLevel, ...]:
        """The dose levels, in order."""
        return self._spec.doses

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        """The true scenarios, in order."""
        return self._spec.scenarios

    @property
    def designs(self) -> list[_designs.Design]:
        """The designs, as ``escalade.designs`` objects (each with the study's settings)."""
        return [self.design(spec.name) for spec, _ in self._built]

    @property
    def design_names(self) -> list[str]:
        """The names of the designs, in order."""
        return [spec.name for spec, _ in self._built]

    def design(self, name: str) -> _designs.Design:
        """The design called ``name`` (or of that kind), with the study's settings filled in.

        Its ``escalade.designs.Design.decision_table``, ``escalade.designs.Design.next_dose`` and
        ``escalade.designs.Design.paths`` use the study's doses, target and DLT window, and ``paths`` takes
        a scenario of the study by name.
        """
        found = [(i, s) for i, (s, _) in enumerate(self._built) if s.name == name]
        if not found:
            found = [(i, s) for i, (s, d) in enumerate(self._built) if d.kind == str(name).lower()]
        if not found:
            names = self.design_names
            raise StudyError(self._spec.source, "designs", name,
                             f"is not a design of this study{did_you_mean(str(name), names)}; choose one of {names}")
        i, spec = found[0]
        obj = _designs.get(spec.kind)(name=spec.name, **copy.deepcopy(spec.params))
        obj._bind(self._spec.design_defaults(), self._spec.source, {s.name: s for s in self._spec.scenarios},
                  self._spec.dose_labels(), self._spec.dlt_window_days)
        obj._built = self._built[i][1]
        return obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Study) and self._data == other._data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Study({self.title!r}: {len(self.doses)} doses, {len(self._built)} designs "
                f"({', '.join(self.design_names)}), {len(self.scenarios)} scenarios)")

    # -- running ----------------------------------------------------------------------------------------------------

    def run(self, *, n_trials: int | None = None, seed: int | None = None, jobs: int = 1,
            out: str | Path | None = None, progress: Progress | bool | None = None,
            cancel: threading.Event | Callable[[], bool] | None = None, exact: bool | None = None,
            backend: Literal["loky", "threading", "sequential", "dask"] = "loky", force: bool = False) -> Run:
        """Simulate every scenario x design (``escalade run``), on common virtual patients.

        Parameters
        ----------
        n_trials, seed
            Trials per scenario and seed (default: the study's ``simulation`` section).
        jobs
            Worker processes (``-1``: every core). Never changes the numbers.
        out
            Run directory to write (``trials.parquet``, ``oc.csv``, ``paired.csv``, ``manifest.json``), as
            ``escalade run --out``: the same files and results hash. An interrupted run into it resumes.
        progress
            ``progress(units_done, units_total, trials_done)``, called before the first work unit and after each;
            ``True`` shows a text progress bar on stderr.
        cancel
            A ``threading.Event`` (or a function returning True) that stops the run at the next work unit
            with ``RunCancelled``, e.g. set from another thread.
        exact
            Exact operating characteristics where a design allows (``--exact``).
        backend, force
            As ``escalade run --backend``, ``--force``.

        Returns
        -------
        Run

        Raises
        ------
        RunCancelled
            When ``cancel`` was set.
        StudyError, ConfigError
            Bad trials or seed, naming them.
        """
        from escalade.simulations.study_run import run_study

        report = _progress_bar() if progress is True else (progress or None)
        is_set = (cancel.is_set if isinstance(cancel, threading.Event) else cancel) if cancel is not None else None

        def check(done: int, total: int) -> None:
            if is_set is not None and is_set():
                raise RunCancelled(f"run cancelled after {done} of {total} work units"
                                   + (f"; the same run into {out} resumes from them" if out is not None else ""))

        def on_progress(done: int, total: int, trials: int) -> None:
            check(done, total)
            if report is not None:
                report(done, total, trials)
                check(done, total)  # set by the report itself (a "cancel" button served by the same loop)

        try:
            result = run_study(self._spec, n_trials=n_trials, seed=seed, n_jobs=jobs, backend=backend,
                               out_dir=out, exact=exact, force=force,
                               progress=on_progress if (report is not None or is_set is not None) else None)
        finally:
            if progress is True and report is not None:
                report.close()  # type: ignore[attr-defined]
        return Run(self, result, Path(out) if out is not None else None)


class Run:
    """The results of ``Study.run`` (or of a run directory: ``Run.open``).

    Attributes
    ----------
    study
        The ``Study`` that was run.
    path
        The run directory (``None`` for a run without ``out``, until a report or figure needs one).
    """

    def __init__(self, study: Study | None, result: Any, path: Path | None) -> None:
        self.study = study
        self._result = result
        self.path: Path | None = path
        self._data: Any = None
        self._trials: pd.DataFrame | None = None
        self._tmp: Any = None
        self.plot = _Plots(self)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """A run directory written by ``escalade run --out`` or ``Study.run`` (files checked against the
        manifest's hashes, as ``escalade report`` checks them)."""
        from escalade.reports.load import load_run

        data = load_run(path)
        run = cls(None, None, Path(path))
        run._data = data
        text = data.manifest.get("study_text")
        if text:
            try:
                run.study = Study.from_dict(yaml.safe_load(text), source=data.manifest.get("study_file"))
            except EscaladeError as exc:  # a run of an older escalade: results stay readable
                log.warning("%s: the stored study file is not a valid study for this escalade (%s)", path, exc)
        return run

    # -- tidy results ---------------------------------------------------------------------------------------------

    @property
    def oc(self) -> pd.DataFrame:
        """Operating characteristics, one row per scenario x design x metric x dose: ``value`` with its Monte
        Carlo standard error ``se`` (``exact`` rows have none); the contents of ``oc.csv``."""
        return self._result.oc if self._result is not None else self._data.oc

    @property
    def paired(self) -> pd.DataFrame:
        """Every pair of designs on the same virtual patients: ``difference`` (``design`` minus ``versus``, the
        later in the study minus the earlier) with its paired ``se`` and the unpaired ``se_unpaired``; the
        contents of ``paired.csv``. ``compare`` gives one pair in either order."""
        return self._result.paired if self._result is not None else self._data.paired

    @property
    def trials(self) -> pd.DataFrame:
        """One row per scenario x design x trial: selected dose, stop reason, patients, DLTs and responses per
        dose, sample size, duration (``trials.parquet``)."""
        if self._trials is None:
            if self._result is not None:
                from escalade.simulations.study_run import trials_frame

                self._trials = trials_frame(self._result.study, self._result.outcomes)
            else:
                self._trials = pd.read_parquet(self.data.path / "trials.parquet")
        return self._trials

    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: inputs, versions, seeds, truths per scenario, ``results_sha256``."""
        return self._result.manifest if self._result is not None else self._data.manifest

    @property
    def results_sha256(self) -> str:
        """The hash of the trial outcomes: equal for equal results, whatever the workers."""
        return str(self.manifest["results_sha256"])

    def table(self, metric: str = "correct_selection_pct", *, dose: str = "", se: bool = False) -> pd.DataFrame:
        """One characteristic as a scenario x design table (``se=True``: its standard errors instead).

        Raises
        ------
        KeyError
            When the run has no such metric (the message lists those it has).
        """
        oc = self.oc
        rows = oc[(oc["metric"] == metric) & (oc["dose"].astype(str) == dose)]
        if rows.empty:
            have = sorted(set(oc["metric"]))
            raise KeyError(f"no metric {metric!r} at dose {dose!r} in this run{did_you_mean(metric, have)}; "
                           f"metrics: {', '.join(have)}")
        wide = rows.pivot(index="scenario", columns="design", values="se" if se else "value")
        return wide.loc[list(dict.fromkeys(rows["scenario"])), list(dict.fromkeys(rows["design"]))]

    def compare(self, design: str, versus: str, *, metric: str | None = None) -> pd.DataFrame:
        """Paired differences ``design - versus`` per scenario and metric, with their standard errors.

        The designs saw the same virtual patients, so the paired standard error ``se`` is far smaller than
        ``se_unpaired`` (sqrt(se_a² + se_b²)); ``z`` is ``difference / se``.
        """
        p = self.paired
        names = list(dict.fromkeys([*p["design"], *p["versus"]]))
        for name in (design, versus):
            if name not in names:
                raise KeyError(f"no design {name!r} in this run's paired differences{did_you_mean(name, names)}; "
                               f"designs: {', '.join(names)}")
        fwd = p[(p["design"] == design) & (p["versus"] == versus)].copy()
        back = p[(p["design"] == versus) & (p["versus"] == design)].copy()
        back["difference"] = -back["difference"]
        back[["design", "versus"]] = [design, versus]
        out = pd.concat([fwd, back], ignore_index=True)
        if metric is not None:
            out = out[out["metric"] == metric]
        out = out.assign(z=out["difference"] / out["se"].where(out["se"] > 0))
        return out.reset_index(drop=True)

    # -- reports (the reports layer reads a run directory) ----------------------------------------------------------

    @property
    def data(self) -> Any:
        """The run as the reports layer reads it (``escalade.reports.load.RunData``); a run without a
        directory writes one to a temporary folder first (removed with this object)."""
        if self._data is None:
            from escalade.reports.load import load_run
            from escalade.simulations.study_run import write_run

            path = self.path
            if path is None:
                tmp = tempfile.mkdtemp(prefix="escalade-run-")
                self._tmp = weakref.finalize(self, shutil.rmtree, tmp, True)
                path = Path(tmp)
                write_run(path, self._result)
            self._data = load_run(path)
        return self._data

    def save(self, path: str | Path) -> Path:
        """Write the run directory (``trials.parquet``, ``oc.csv``, ``paired.csv``, ``manifest.json``) of a run
        made without ``out``, e.g. to zip and hand over; ``escalade report`` and ``escalade diff`` read it.

        Raises
        ------
        StudyError
            When ``path`` exists and is not an empty directory (nothing is overwritten).
        """
        from escalade.simulations.study_run import write_run

        out = Path(path)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise StudyError(None, "path", str(out), "exists and is not an empty directory; give a new one")
        if self._result is None:
            shutil.copytree(self.data.path, out, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("units", ".lock", "inputs.json", "report*"))
        else:
            write_run(out, self._result)
        return out

    def report(self, path: str | Path | None = None, *, fmt: Literal["html", "pdf", "both"] = "html",
               xlsx: bool = False, compare: Run | None = None) -> list[Path]:
        """Write the simulation appendix (``escalade report``): HTML (and PDF, Excel).

        Parameters
        ----------
        path
            Output path without suffix (default: ``report`` in the run directory, which a run without ``out``
            does not have: then ``path`` is required).
        fmt
            ``"html"`` (default), ``"pdf"`` or ``"both"``.
        xlsx
            Also the tables as an Excel workbook.
        compare
            An earlier run: adds the section "Changes from the previous run".

        Returns
        -------
        list of Path
            The files written.
        """
        from escalade.reports.write import write_appendix

        if path is None and self.path is None:
            raise StudyError(None, "path", None, "is required for a run without a run directory: "
                                                 "run.report('appendix') writes appendix.html")
        return write_appendix(self.data, fmt=fmt, xlsx=xlsx, out=path,
                              compare=compare.data if compare is not None else None)

    def diff(self, other: Run) -> Diff:
        """How this run's inputs and characteristics moved in ``other`` (``escalade diff THIS OTHER``).

        Changes are ``other - self``, with paired standard errors where both runs share virtual patients (same
        seed, trials and chunk size), else sqrt(se_a² + se_b²).
        """
        from escalade.reports.diff import diff_runs

        return Diff(diff_runs(self.data, other.data))

    def __repr__(self) -> str:
        m = self.manifest
        where = f", {self.path}" if self.path is not None else ""
        return (f"Run({m.get('title')!r}: {len(m.get('scenarios', []))} scenarios x {len(m.get('designs', []))} "
                f"designs, {m.get('n_trials')} trials, seed {m.get('seed')}{where})")


class Diff:
    """The comparison of two runs (``escalade diff``): ``str(diff)`` is the command's summary.

    Attributes
    ----------
    changes
        One row per scenario x design x metric x dose in both runs: values and SEs of each run, ``change``,
        ``se_change``, ``z``, ``flagged`` (moved by more than 2 SE).
    inputs
        The inputs that changed: ``field``, ``before``, ``after``.
    raw
        The reports layer's ``escalade.reports.diff.RunDiff``.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.changes: pd.DataFrame = raw.changes
        self.inputs = pd.DataFrame([(c.field, c.before, c.after) for c in raw.inputs],
                                   columns=["field", "before", "after"])

    @property
    def flagged(self) -> pd.DataFrame:
        """The characteristics that moved by more than 2 standard errors."""
        return self.changes[self.changes["flagged"]]

    def __str__(self) -> str:
        from escalade.reports.diff import format_diff

        return format_diff(self.raw, full=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


class _Plots:
    """Figures of a run (matplotlib figures, as in the appendix): ``run.plot.selection()``,
    ``run.plot.allocation()``."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def selection(self, scenario: str | Sequence[str] | None = None, *, columns: int = 2) -> Any:
        """Selection % of each dose (and of no dose) per design, one panel per scenario, with ±1.96 MC SE bars;
        the true MTD shaded. ``scenario``: one name or several (default: every scenario)."""
        from escalade.api_plot import by_dose_figure

        return by_dose_figure(self._run.data, "select_pct", scenario, columns=columns)

    def allocation(self, scenario: str | Sequence[str] | None = None, *, columns: int = 2) -> Any:
        """Mean patients treated at each dose per design, one panel per scenario, with ±1.96 MC SE bars."""
        from escalade.api_plot import by_dose_figure

        return by_dose_figure(self._run.data, "patients", scenario, columns=columns)


def _progress_bar() -> Progress:
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int, trials: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, unit="unit", desc="simulating", file=sys.stderr)
        bar.n = done
        bar.set_postfix_str(f"{trials} trials", refresh=False)
        bar.refresh()

    def close() -> None:
        if state.get("bar") is not None:
            state["bar"].close()

    update.close = close  # type: ignore[attr-defined]
    return update


# -- study file entries from Python objects ----------------------------------------------------------------------


def _listed(v: Any) -> Any:
    """A numpy array or other iterable as a list (a mapping or text is left for the loader to name)."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    if isinstance(v, (tuple, range)) or (hasattr(v, "__iter__") and not isinstance(v, (str, bytes, Mapping, list))):
        return list(v)
    return v


def _dose_entry(d: Any, i: int) -> Any:
    if isinstance(d, DoseLevel):
        return {"label": d.label, "amount": d.amount, **({"unit": d.unit} if d.unit else {})}
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return {"label": f"DL{i + 1}", "amount": d}
    return d  # a mapping (or anything else: the loader names what is wrong with it)


def _design_entry(d: Any) -> Any:
    if isinstance(d, _designs.Design):
        return d.to_dict()
    if isinstance(d, type) and issubclass(d, _designs.Design):
        return d().to_dict()
    return d


def _scenario_entry(s: Any) -> Any:
    if isinstance(s, Scenario):
        out: dict[str, Any] = {"name": s.name, "p_dlt": list(s.p_dlt), "p_response": list(s.p_response)}
        if s.association:
            out["association"] = s.association
        if s.description:
            out["description"] = s.description
        return out
    return s


def _plain(v: Any) -> Any:
    """Plain YAML data (dicts, lists, numbers, text): tuples and numpy values converted."""
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return _plain(v.tolist())
    return v


def _dump(data: Mapping[str, Any]) -> str:
    try:
        return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=120)
    except yaml.YAMLError as exc:
        raise StudyError(None, "study", "<data>", f"holds a value a study file cannot hold ({exc}); use numbers, "
                                                  "text, lists and mappings") from None
