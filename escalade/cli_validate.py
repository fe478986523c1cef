"""``escalade validate``: run the validation suite shipped with the package and write its report (issue 20).

``escalade validate [--out DIR] [--quick]`` runs every requirement of
:mod:`escalade.validation.suite` against the installed package and its
installed reference data, prints one line per requirement, and writes
``validation.json``, ``validation.html`` and ``validation.pdf`` into ``DIR``
(default ``./validation-<date>``). Exit status 0 when every requirement
passes, 3 when any fails (1 and 2 keep their meaning: the machine refused a
write, bad input). Registered by :func:`add_parser` (the CLI collects ``cli_*`` modules).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_parser", "EXIT_FAILED"]

#: Exit status when at least one requirement fails.
EXIT_FAILED = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", help="run the shipped validation suite against this installation and write "
                                        "its report (JSON, HTML, PDF)")
    v.add_argument("--out", help="report directory (default: ./validation-<date>)")
    v.add_argument("--quick", action="store_true",
                   help="fewer simulated trials and replicates (about 1 minute on 2 cores; full: about 3)")
    v.add_argument("--only", nargs="+", metavar="ID", help="run only these requirements (e.g. BOIN-1 CRM-2)")
    v.add_argument("--no-pdf", action="store_true", help="write JSON and HTML only (no WeasyPrint needed)")
    v.set_defaults(func=_cmd_validate)


def _cmd_validate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from escalade.reports.errors import ReportDependencyError
    from escalade.scenarios.errors import ConfigError
    from escalade.validation.report import run_validation, write_validation
    from escalade.validation.suite import REQUIREMENTS

    if args.only:
        known = {r.id for r in REQUIREMENTS}
        unknown = [i for i in args.only if i not in known]
        if unknown:
            raise ConfigError("escalade validate --only", " ".join(unknown),
                              f"requirement ids from this list: {', '.join(r.id for r in REQUIREMENTS)}")
    out = Path(args.out) if args.out else Path(f"validation-{_dt.date.today().isoformat()}")

    def progress(line: str) -> None:
        print(f"running {line}", file=sys.stderr, flush=True)

    report = run_validation(quick=args.quick, only=args.only, progress=progress)
    for q in report["requirements"]:
        verdict = "pass" if q["passed"] else "FAIL"
        print(f"{verdict:4s}  {q['id']:9s} worst {q['worst_text']:>9s} (limit {q['limit']:.3g}, {q['unit']})  "
              f"{q['statement']}")
    try:
        written = write_validation(report, out, pdf=not args.no_pdf)
    except ReportDependencyError as exc:
        print(f"escalade: warning: {exc}; writing JSON and HTML only", file=sys.stderr)
        written = write_validation(report, out, pdf=False)
    total = report["n_requirements"]
    print(f"{total - report['n_failed']} of {total} requirements passed ({report['mode']} mode, "
          f"{report['wall_seconds']:.0f} s wall-clock, {report['cpu_seconds']:.0f} s CPU); report: "
          f"{', '.join(str(p) for p in written if p.suffix != '.sha256')}")
    return 0 if report["passed"] else EXIT_FAILED
