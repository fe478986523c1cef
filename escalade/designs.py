"""Designs as Python objects: ``escalade.designs.BOIN(target=0.3, n_doses=5)`` and one class per registered kind.

The classes are generated from the design registry (``escalade.design.registry``) when this module is
imported, never listed by hand: every kind that ``escalade designs`` prints has a class here, whose keyword
arguments are the parameters of that design's config (the names, defaults and meanings of
``escalade designs KIND``), and a design registered later (``escalade.design.registry.register``) is found by
attribute access too. A class's name is the design's kind in upper case with every character that cannot be
in a Python name replaced by ``_``; a kind that starts with a digit takes its first alias that does not
(``3+3`` is ``THREE_PLUS_THREE``, ``i3+3`` is ``I3PLUS3``, ``tite_boin`` is ``TITE_BOIN``).
``get`` finds a class by kind or alias as a study file spells it (``get("3+3")``).

A design object is what one entry of a study file's ``designs`` list says (``name``, ``design``, ``params``):
``Design.to_dict`` is that entry, and ``escalade.Study`` takes the objects in its ``designs``. Used
on its own it answers the conduct questions of the command line, through the same code:
``Design.decision_table`` (``escalade boundaries``), ``Design.next_dose`` (``escalade next-dose``) and
``Design.paths`` (``escalade paths``). On its own a design needs the study settings its config requires
(e.g. BOIN's ``n_doses``); in a study they come from the study (``escalade.Study.design``).

Examples
--------
>>> from escalade import designs
>>> boin = designs.BOIN(target=0.3, n_doses=5, max_n=9)
>>> boin.to_dict()
{'name': 'boin', 'design': 'boin', 'params': {'target': 0.3, 'n_doses': 5, 'max_n': 9}}
>>> boin.decision_table()
   n  escalate_if_dlt_le  deescalate_if_dlt_ge  eliminate_if_dlt_ge
0  3                   0                     2                    3
1  6                   1                     3                    4
2  9                   2                     4                    5
>>> designs.get("3+3") is designs.THREE_PLUS_THREE
True
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import inspect
import io
import keyword
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from escalade.design import registry
from escalade.design.base import DesignEntry
from escalade.design.decision_table import design_table
from escalade.design.errors import ConfigError, did_you_mean
from escalade.simulations.conduct import NextDose, format_next_dose
from escalade.simulations.conduct import next_dose as _next_dose
from escalade.simulations.paths import DosePaths, dose_paths

__all__ = ["Design", "NextDoseAnswer", "get", "kinds", "class_name"]

#: Columns of ``Design.decision_table`` (``escalade boundaries`` prints the same rows).
TABLE_COLUMNS: tuple[str, ...] = ("n", "escalate_if_dlt_le", "deescalate_if_dlt_ge", "eliminate_if_dlt_ge")


def class_name(design_entry: DesignEntry) -> str:
    """The Python name of a registered design's class (see the module docstring for the rule).

    >>> class_name(registry.entry("tite_boin")), class_name(registry.entry("3+3"))
    ('TITE_BOIN', 'THREE_PLUS_THREE')
    """
    for name in (design_entry.kind, *design_entry.aliases):
        if re.fullmatch(r"[A-Za-z_]\w*", name) and not keyword.iskeyword(name.upper()):
            return name.upper()
    return "DESIGN_" + re.sub(r"\W", "_", design_entry.kind).upper()


class NextDoseAnswer(NextDose):
    """``escalade.simulations.conduct.NextDose`` that prints as ``escalade next-dose`` does.

    ``str(answer)`` is the command's text; every field of ``NextDose`` is there (``next_dose``, ``reason``,
    ``table``, ``warnings``, ...), and ``to_dict`` is the command's ``--json``.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return format_next_dose(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython shows the text, not the fields
        printer.text(str(self))


class Design:
    """One design with its parameters: an entry of a study file's ``designs`` list.

    Use a generated subclass (``escalade.designs.BOIN(...)``); each takes the parameters of its design as
    keyword arguments (``escalade designs KIND`` lists them with defaults and meanings), and ``name``, the
    design's name in tables (default: the kind, as in a study file).

    Parameters
    ----------
    name
        Name of the design in the study (must be unique there), e.g. ``"BOIN (extra safe)"``.
    **params
        The design's parameters, as a study file's ``params`` gives them. Unknown names and out-of-range values
        are refused here, with the same one-line error as in a study file.

    Attributes
    ----------
    kind
        Registry kind (``"boin"``), as a study file's ``design`` field.
    name
        Display name.
    params
        The parameters given (defaults are not filled in; ``config`` has every one).
    """

    kind: ClassVar[str] = ""
    _context: Mapping[str, Any]

    def __init__(self, name: str | None = None, **params: Any) -> None:
        if not self.kind:
            raise TypeError("escalade.designs.Design is the base class; use a design class such as "
                            "escalade.designs.BOIN, or escalade.designs.get(kind)")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError("name", name, "must be a non-empty text (the design's name in tables)")
        self.name: str = name.strip() if name is not None else self.kind
        self.params: dict[str, Any] = copy.deepcopy(params)
        self._context = {}
        self._source: str | None = None
        self._scenarios: dict[str, Any] = {}
        self._labels: list[str] | None = None
        self._window: float | None = None
        self._built: Any = None
        names = [p.name for p in registry.param_info(self.kind)]
        for key in self.params:  # an unknown name fails now; values are checked when the design is built
            if key not in names:
                raise ConfigError(key, self.params[key], f"is not a parameter of design '{self.kind}'"
                                                         f"{did_you_mean(key, names)}; allowed: {', '.join(names)}")

    # -- the study file entry ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The study file entry: ``{"name": ..., "design": kind, "params": {...}}`` (plain data, a copy)."""
        return {"name": self.name, "design": self.kind, "params": _plain(self.params)}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> Design:
        """The design of a study file entry (``name``, ``design``, ``params``); ``kind`` may be an alias."""
        klass = get(str(entry["design"]))
        return klass(name=entry.get("name"), **dict(entry.get("params") or {}))

    def replace(self, *, name: str | None = None, **params: Any) -> Design:
        """A copy with some parameters changed (``None`` removes a parameter, so its default applies again)."""
        merged = {**self.params, **params}
        merged = {k: v for k, v in merged.items() if v is not None}
        new = type(self)(name=self.name if name is None else name, **merged)
        new._bind(self._context, self._source, self._scenarios, self._labels, self._window)
        return new

    def __repr__(self) -> str:
        args = [f"name={self.name!r}"] + [f"{k}={v!r}" for k, v in self.params.items()]
        return f"{type(self).__name__}({', '.join(args)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Design) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable parameters: not hashable

    # -- the built design -------------------------------------------------------------------------------------------

    def _bind(self, context: Mapping[str, Any], source: str | None, scenarios: Mapping[str, Any],
              labels: Sequence[str] | None, window: float | None) -> Design:
        """Attach a study's settings (used by ``escalade.Study.design``)."""
        self._context = dict(context)
        self._source = source
        self._scenarios = dict(scenarios)
        self._labels = list(labels) if labels is not None else None
        self._window = window
        self._built = None
        return self

    @property
    def config(self) -> Any:
        """The design's frozen config, every parameter with its default filled in."""
        return self.build().config

    def build(self) -> Any:
        """The engine's design object (``escalade.design.base.Design``), built once and validated.

        Study settings come from the study when the design was taken from one (``escalade.Study.design``);
        on its own, the parameters must include those its config requires (e.g. ``n_doses``).

        Raises
        ------
        ConfigError
            Naming the parameter, the value and the fix.
        """
        if self._built is None:
            params = dict(self.params)
            if self._source:  # a file parameter relative to the study file's folder, as the study loader reads it
                base = Path(self._source).parent
                for key in registry.entry(self.kind).path_params:
                    v = params.get(key)
                    if isinstance(v, str) and v.strip() and not Path(v).is_absolute():
                        params[key] = str(base / v)
            try:
                self._built = registry.build_design(self.kind, params, self._context)
            except ConfigError as exc:
                if exc.allowed.startswith("is required by design") and not self._context:
                    raise ConfigError(exc.field, exc.value, f"{exc.allowed}; pass {type(self).__name__}("
                                      f"{exc.field}=...), or take the design from a study with "
                                      f"Study.design(name)") from None
                raise
        return self._built

    # -- conduct questions -----------------------------------------------------------------------------------------

    def decision_table(self, *, cohort_size: int | None = None, max_n: int | None = None) -> pd.DataFrame:
        """The design's decision table: the DLT counts that escalate, de-escalate and eliminate, per patients.

        As ``escalade boundaries`` prints it (for BOIN equal to ``BOIN::get.boundary``): one row per number of
        patients treated at the current dose, ``n = cohort_size, 2 cohort_size, ... <= max_n``; escalate if the
        number of DLTs is at most ``escalate_if_dlt_le`` (-1: never), de-escalate if at least
        ``deescalate_if_dlt_ge``, eliminate the dose and those above if at least ``eliminate_if_dlt_ge``
        (missing: never). A design with BOIN's extra-safe rule has a column ``stop_lowest_if_dlt_ge``.

        Parameters
        ----------
        cohort_size, max_n
            Rows to show (default: the design's cohort size and maximum sample size).

        Raises
        ------
        ConfigError
            For a design whose decisions are not a table over (patients, DLTs) at one dose, such as the CRM
            (model-based: every dose's data count); use ``paths`` there.
        """
        d = self._table_design()
        cfg = d.config
        step = int(cohort_size if cohort_size is not None else getattr(cfg, "cohort_size", 1))
        top = int(max_n if max_n is not None else d.max_n)
        if step < 1 or top < 1:
            raise ConfigError("cohort_size" if step < 1 else "max_n", step if step < 1 else top,
                              "must be a whole number >= 1")
        table = design_table(d)
        boundaries = getattr(d, "boundaries", None)
        if table is not None:
            rows = table.table(step, top)
        elif boundaries is not None and callable(getattr(boundaries, "table", None)):
            rows = {k: [v for v, n in zip(vals, boundaries.table(step)["n"]) if n <= top]
                    for k, vals in boundaries.table(step).items()}
            stop = getattr(boundaries, "extrasafe_stop", None)
            if getattr(cfg, "extrasafe", False) and stop is not None:
                rows["stop_lowest_if_dlt_ge"] = [None if stop[n] > n else int(stop[n]) for n in rows["n"]]
        else:
            raise ConfigError("design", self.kind, "has no decision table: its decisions depend on more than the "
                                                   "patients and DLTs at the current dose; see .paths() for its "
                                                   "decisions after the next cohorts")
        frame = pd.DataFrame({_column(k): pd.array(v, dtype="Int64") for k, v in rows.items()})
        return frame

    def _table_design(self) -> Any:
        """The built design; on its own, one dose level is enough for a table (as ``escalade boundaries``)."""
        if self._context or "n_doses" in self.params:
            return self.build()
        probe = type(self)(name=self.name, **self.params)
        probe._context = {"n_doses": 2}
        return probe.build()

    def next_dose(self, patients: pd.DataFrame | str | Path, *, as_of: _dt.date | str | None = None,
                  dlt_window_days: float | None = None, dose_labels: Sequence[str] | None = None,
                  mcmc: bool = False) -> NextDoseAnswer:
        """The next dose (or stop, or suspend accrual) for a live trial's patients, as ``escalade next-dose``.

        Parameters
        ----------
        patients
            One row per patient: a data frame or the path of a CSV file with the columns ``id, dose_level``
            (1-based), ``dlt`` (0/1), ``response`` (phase I/II designs) and, for designs that decide on
            follow-up time (TITE-CRM, TITE-BOIN), ``enrol_date`` and ``dlt_date`` (see
            ``scenarios/patients_example.csv``). Every row is checked; a bad one is reported with its line.
        as_of
            Decision date (a date or ``"YYYY-MM-DD"``; default today): follow-up is counted up to it.
        dlt_window_days
            DLT window (default: the study's when the design comes from one; needed by TITE designs).
        dose_labels
            Labels printed next to the dose numbers (default: the study's, else ``DL1, DL2, ...``).
        mcmc
            EffTox, BLRM: refit by PyMC NUTS and report R-hat, ESS and divergences.

        Returns
        -------
        NextDoseAnswer
            ``str(answer)`` is the command's text; ``answer.next_dose`` (1-based, None to stop or suspend),
            ``answer.reason``, ``answer.table`` (per dose), ``answer.warnings``.

        Raises
        ------
        PatientDataError
            Bad rows, each with its line, field and fix.
        """
        d = self.build()
        if isinstance(patients, pd.DataFrame):
            source: Any = io.StringIO(patients.to_csv(index=False))
            name = "patients (data frame)"
        else:
            source, name = Path(patients), str(patients)
        if isinstance(as_of, str):
            try:
                as_of = _dt.date.fromisoformat(as_of)
            except ValueError:
                raise ConfigError("as_of", as_of, "must be a date written YYYY-MM-DD") from None
        kw = {"mcmc": True} if mcmc else None
        if mcmc and "mcmc" not in inspect.signature(d.explain).parameters:
            raise ConfigError("mcmc", True, f"applies to designs with a NUTS engine (EffTox, BLRM), not "
                                            f"'{self.kind}'")
        labels = list(dose_labels) if dose_labels is not None else self._labels
        window = dlt_window_days if dlt_window_days is not None else self._window
        target = getattr(d.config, "target", None)
        answer = _next_dose(d, source, name=name, dose_labels=labels, explain_kwargs=kw, as_of=as_of,
                            dlt_window_days=window, target=target)
        return NextDoseAnswer(**{f.name: getattr(answer, f.name) for f in dataclasses.fields(answer)})

    def paths(self, n_cohorts: int = 2, history: str = "", *, scenario: str | None = None,
              p_dlt: Sequence[float] | None = None, p_response: Sequence[float] | None = None,
              association: float = 0.0) -> DosePaths:
        """Every path of the next ``n_cohorts`` cohorts and the decision after each, as ``escalade paths``.

        Parameters
        ----------
        n_cohorts
            Further cohorts to enumerate.
        history
            The trial so far, e.g. ``"1NNN 2NTN"`` (dose level, then N or T per patient; E or B for a response
            without or with a DLT in phase I/II designs); empty for a new trial.
        scenario
            A scenario of the study the design comes from: adds each path's probability under its true curves.
        p_dlt, p_response, association
            True curves given directly (instead of ``scenario``).

        Returns
        -------
        DosePaths
            ``.table`` (one row per node: dose, outcome, next dose, stop reason, probabilities) and ``.text()``
            (the tree as the command prints it).
        """
        if scenario is not None:
            if p_dlt is not None:
                raise ConfigError("scenario", scenario, "give either scenario or p_dlt, not both")
            s = self._scenarios.get(scenario)
            if s is None:
                names = list(self._scenarios)
                where = (f"is not a scenario of this study{did_you_mean(scenario, names)}; choose one of {names}"
                         if names else "needs a design taken from a study (Study.design(name)); or give p_dlt")
                raise ConfigError("scenario", scenario, where)
            p_dlt, p_response, association = s.p_dlt, s.p_response, s.association
        return dose_paths(self.build(), n_cohorts, history, p_tox=p_dlt, p_eff=p_response, association=association)


def _column(key: str) -> str:
    return key.replace("ntox", "dlt")


def _plain(v: Any) -> Any:
    """Plain YAML data: tuples and numpy values as lists and Python numbers."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):  # numpy array or scalar
        return _plain(v.tolist())
    return v


def _docstring(e: DesignEntry, cls_name: str) -> str:
    lines = [f"{e.name} (study file kind ``{e.kind}``).", "", e.citation, "",
             "Parameters", "----------", "name", "    Name of the design in the study (default "
             f"``{e.kind!r}``, as in a study file)."]
    for p in registry.param_info(e.kind):
        if p.required:
            default = "study setting" if p.name in registry.STUDY_SETTINGS else "required"
        else:
            default = f"default {p.default!r}"
        lines += [f"{p.name}", f"    {p.meaning or 'See escalade designs ' + e.kind + '.'} ({default})"]
    lines += ["", "See Also", "--------", "Design : the methods every design class has.", ""]
    return "\n".join(lines)


def _signature(e: DesignEntry) -> inspect.Signature:
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation="str | None")]
    for p in registry.param_info(e.kind):
        default = inspect.Parameter.empty if p.required and p.name not in registry.STUDY_SETTINGS else p.default
        if p.required and p.name in registry.STUDY_SETTINGS:
            default = None
        params.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation="Any"))
    return inspect.Signature(params, return_annotation=None)


_CLASSES: dict[str, type[Design]] = {}


def _class_for(e: DesignEntry) -> type[Design]:
    got = _CLASSES.get(e.kind)
    if got is not None and got.__dict__.get("_entry") is e:
        return got
    name = class_name(e)
    klass = type(name, (Design,), {"kind": e.kind, "_entry": e, "__doc__": _docstring(e, name),
                                    "__module__": __name__, "__qualname__": name})
    klass.__init__ = _init_with_signature(e)  # type: ignore[method-assign]
    _CLASSES[e.kind] = klass
    return klass


def _init_with_signature(e: DesignEntry) -> Any:
    def __init__(self: Design, name: str | None = None, **params: Any) -> None:
        Design.__init__(self, name, **params)

    __init__.__signature__ = _signature(e)  # type: ignore[attr-defined]
    __init__.__doc__ = f"Build a {e.name} entry (see the class docstring for the parameters)."
    return __init__


def kinds() -> dict[str, type[Design]]:
    """Every registered kind and its class, in registration order (the built-in designs first)."""
    return {e.kind: _class_for(e) for e in registry.entries()}


def get(kind: str) -> type[Design]:
    """The class of a design kind or alias as a study file spells it (``"3+3"``, ``"titeboin"``).

    Raises
    ------
    ConfigError
        For an unknown kind, with a did-you-mean suggestion and the list of kinds.
    """
    return _class_for(registry.entry(kind))


def __getattr__(name: str) -> type[Design]:
    """A design registered after this module was imported, by its class name."""
    for e in registry.entries():
        if class_name(e) == name:
            return _class_for(e)
    raise AttributeError(f"module 'escalade.designs' has no design class {name!r}"
                         f"{did_you_mean(name, [class_name(e) for e in registry.entries()])}; "
                         "escalade.designs.kinds() lists them")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {class_name(e) for e in registry.entries()})


for _e in registry.entries():
    globals()[class_name(_e)] = _class_for(_e)
    __all__.append(class_name(_e))
del _e
