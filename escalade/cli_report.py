"""``escalade report`` and ``escalade diff``: the reports layer on the command line.

``escalade report RUN_DIR [--format html|pdf|both] [--xlsx] [--out PATH] [--compare RUN_A]``
writes the simulation appendix of a run directory; ``escalade diff RUN_A RUN_B
[--report] [--all] [--flagged]`` prints how the inputs and the operating
characteristics of an amended protocol's run moved, and with ``--report``
writes the comparison as HTML/PDF. Registered by :func:`add_parser` (the CLI
loads every ``escalade/cli_*.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_parser", "cmd_report", "cmd_diff"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` and ``diff`` sub-commands to the ``escalade`` parser."""
    r = sub.add_parser("report", help="write the simulation appendix (HTML/PDF) of a run directory",
                       description="Write the simulation appendix of a run directory: summary, methods text per "
                                   "design, scenarios, operating characteristics with Monte Carlo SE, figures and "
                                   "reproducibility details. The HTML is self-contained; the PDF has the same "
                                   "content.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `escalade run --out`")
    r.add_argument("--format", choices=["html", "pdf", "both"], default="both", dest="fmt",
                   help="output format(s) (default: both)")
    r.add_argument("--xlsx", action="store_true", help="also export the tables to an Excel workbook")
    r.add_argument("--out", metavar="PATH", help="output path without suffix (default: RUN_DIR/report)")
    r.add_argument("--compare", metavar="RUN_A", help="add a section on the changes from this earlier run")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="one line per stage on stderr (default: when stderr is a terminal)")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("diff", help="compare two runs of an amended protocol",
                       description="Which inputs changed between RUN_A and RUN_B, then a summary of the key "
                                   "operating characteristics that moved by more than 2 standard errors. The "
                                   "standard error of a change is paired trial by trial when both runs share "
                                   "virtual patients (same seed, trials and chunk size), else "
                                   "sqrt(se_A^2 + se_B^2); changes larger than 2 SE are marked *.")
    d.add_argument("run_a", metavar="RUN_A", help="run before the amendment")
    d.add_argument("run_b", metavar="RUN_B", help="run after the amendment")
    d.add_argument("--all", action="store_true", dest="all_metrics",
                   help="after the summary, list every characteristic (per dose too)")
    d.add_argument("--flagged", action="store_true",
                   help="after the summary, list the characteristics that moved by more than 2 SE")
    d.add_argument("--report", action="store_true", help="also write the comparison as HTML/PDF")
    d.add_argument("--format", choices=["html", "pdf", "both"], default="both", dest="fmt",
                   help="format(s) of --report (default: both)")
    d.add_argument("--out", metavar="PATH", help="--report output path without suffix (default: RUN_B/diff)")
    d.set_defaults(func=cmd_diff)


def cmd_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``escalade report``."""
    from escalade.reports.load import load_run
    from escalade.reports.write import write_appendix

    t0 = time.perf_counter()
    show = sys.stderr.isatty() if args.progress is None else args.progress

    def progress(text: str) -> None:
        if show:
            print(f"report: {text}", file=sys.stderr, flush=True)

    run = load_run(args.run_dir)
    compare = load_run(args.compare) if args.compare else None
    progress(f"read {args.run_dir}: {len(run.scenarios)} scenarios x {len(run.designs)} designs "
             f"({time.perf_counter() - t0:.1f} s)")
    written = write_appendix(run, fmt=args.fmt, xlsx=args.xlsx, out=args.out, compare=compare, progress=progress)
    written += _validation_summary(run.path, written, args.fmt)
    progress(f"done ({time.perf_counter() - t0:.1f} s)")
    for path in written:
        print(f"wrote {path}")
    return 0


def _validation_summary(run_dir: Path, written: list[Path], fmt: str) -> list[Path]:
    """Issue 20: a one-page validation summary beside the appendix when a validation report of this environment
    is in the run directory or the working directory (``validation*/validation.json``); else say there is none."""
    from escalade.validation.report import find_validation, write_validation_summary

    rep, line = find_validation([Path(run_dir), Path.cwd()])
    print(f"report: {line}", file=sys.stderr)
    if rep is None or not written:
        return []
    stem = written[0].with_suffix("")
    return write_validation_summary(rep, stem.with_name(stem.name + "-validation"), pdf=fmt in ("pdf", "both"))


def cmd_diff(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``escalade diff``."""
    from escalade.reports.diff import diff_runs, format_diff
    from escalade.reports.load import load_run
    from escalade.reports.tables import KEY_OC_ROWS
    from escalade.reports.write import write_diff_report

    a, b = load_run(args.run_a), load_run(args.run_b)
    diff = diff_runs(a, b)
    if args.all_metrics or args.flagged:
        print(format_diff(diff, metrics=None if args.all_metrics else KEY_OC_ROWS, only_flagged=args.flagged))
    else:
        print(format_diff(diff, full=False))
    if args.report:
        for path in write_diff_report(a, b, fmt=args.fmt, out=args.out):
            print(f"wrote {path}")
    return 0
