"""``escalade paths`` and ``escalade next-dose``: the designs' rules, applied by hand.

``paths`` prints every path of the next cohorts with the dose each leads to
(for a protocol's dose-transition table); ``next-dose`` answers "what dose for
the next cohort?" for a live trial's patient data.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def _study_design(study_path: str, name: str) -> tuple[Any, Any]:
    """The study and its design called ``name`` (or of that kind)."""
    from escalade.scenarios.designs import build_study_designs
    from escalade.scenarios.errors import StudyError, did_you_mean
    from escalade.scenarios.load import load_study

    study = load_study(study_path)
    designs = build_study_designs(study)
    for spec, d in designs:
        if spec.name == name:
            return study, d
    for spec, d in designs:
        if d.kind == name.lower():
            return study, d
    names = [spec.name for spec, _ in designs]
    raise StudyError(study_path, "--design", name,
                     f"is not a design of this study{did_you_mean(name, names)}; choose one of {names}")


def _scenario(study: Any, name: str | None) -> Any:
    from escalade.scenarios.errors import StudyError, did_you_mean

    if name is None:
        return None
    for s in study.scenarios:
        if s.name == name:
            return s
    names = [s.name for s in study.scenarios]
    raise StudyError(study.source, "--scenario", name,
                     f"is not a scenario of this study{did_you_mean(name, names)}; choose one of {names}")


def _cmd_paths(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from escalade.reports.paths_figure import plot_paths
    from escalade.simulations.paths import dose_paths, format_paths

    study, design = _study_design(args.study, args.design)
    scen = _scenario(study, args.scenario)
    kw: dict[str, Any] = {}
    if scen is not None:
        kw = {"p_tox": scen.p_dlt, "p_eff": scen.p_response, "association": scen.association}
    paths = dose_paths(design, args.cohorts, args.history or "", **kw)
    print(format_paths(paths, ascii=args.ascii, max_lines=args.max_lines))
    if args.csv:
        paths.to_csv(args.csv)
        print(f"\ntable written to {args.csv}")
    if args.figure:
        written = plot_paths(paths, args.figure)
        print(f"figure written to {written}")
    return 0


def _cmd_next_dose(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import inspect

    from escalade.scenarios.errors import StudyError
    from escalade.simulations.conduct import format_next_dose, next_dose

    study, design = _study_design(args.study, args.design)
    kw = {"mcmc": True} if args.mcmc else None
    explain = getattr(design, "explain", None)
    if args.mcmc and (explain is None or "mcmc" not in inspect.signature(explain).parameters):
        from escalade.scenarios.errors import StudyError

        raise StudyError(args.study, "--mcmc", True, f"applies to designs with a NUTS engine (EffTox, BLRM); "
                         f"'{args.design}' is '{design.kind}'")
    result = next_dose(design, Path(args.data), name=args.data, dose_labels=study.dose_labels(),
                       explain_kwargs=kw, as_of=args.as_of, dlt_window_days=study.dlt_window_days,
                       target=study.target, response_days=study.response_days,
                       response_categories=_response_categories(study))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(format_next_dose(result))
    return 0


def _response_categories(study: Any) -> list[str] | None:
    """The protocol's response categories (best first), from the first scenario with a response section."""
    for s in getattr(study, "scenarios", ()):
        r = getattr(getattr(s, "cart", None), "response", None)
        if r is not None:
            return list(r.categories)
    return None


def _iso_date(text: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date written YYYY-MM-DD") from None


def add_parser(sub: Any) -> None:
    """Register the ``paths`` and ``next-dose`` sub-commands."""
    p = sub.add_parser("paths", help="dose-transition pathways of the next cohorts")
    p.add_argument("study", help="study file (YAML)")
    p.add_argument("--design", required=True, help="design name (or kind) in the study file")
    p.add_argument("--cohorts", type=int, default=2, help="number of further cohorts (default 2)")
    p.add_argument("--from", dest="history", default="",
                   help='trial so far, e.g. "1NNN 2NTN" (dose, then N/T per patient; E/B for phase I/II)')
    p.add_argument("--scenario", help="name of a scenario: adds each path's probability under it")
    p.add_argument("--csv", help="write the table of paths to this CSV file")
    p.add_argument("--figure", help="draw the tree to this file (.png, .pdf, .svg)")
    p.add_argument("--ascii", action="store_true", help="ASCII tree (no box-drawing characters)")
    p.add_argument("--max-lines", type=int, default=None, help="print at most this many lines of the tree")
    p.set_defaults(func=_cmd_paths)

    n = sub.add_parser("next-dose", help="next dose for a live trial's patient data")
    n.add_argument("--study", required=True, help="study file (YAML) defining the design")
    n.add_argument("--design", required=True, help="design name (or kind) in the study file")
    n.add_argument("--data", required=True,
                   help="patients CSV: id, dose_level (1-based), dlt (0/1), response (0/1, optional), enrol_date and "
                        "dlt_date (YYYY-MM-DD; needed by TITE designs); see scenarios/patients_example.csv")
    n.add_argument("--as-of", type=_iso_date, default=None, metavar="YYYY-MM-DD",
                   help="decision date: follow-up is counted up to it and no date in the data may be later "
                        "(default: today)")
    n.add_argument("--json", action="store_true", help="print the answer as JSON")
    n.add_argument("--mcmc", action="store_true",
                   help="EffTox, BLRM: posterior by PyMC NUTS, with ArviZ diagnostics (R-hat, ESS), instead of "
                        "the fast engine")
    n.set_defaults(func=_cmd_next_dose)
