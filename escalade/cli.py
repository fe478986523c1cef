"""The ``escalade`` command line (the only module that imports every layer).

Sub-commands: ``run``, ``boundaries`` (and those registered by later layers:
``paths``, ``next-dose``, ``report``, ``diff``, ``rerun`` when available).
Bad input ends with a one-line error naming the file, the field and the fix
(exit status 2), never a traceback; so does a machine that refuses a write
(full disk, read-only file system, no permission: exit status 1). ``SIGTERM``
stops a run like Ctrl-C (its worker processes with it; exit status 143, 130
for Ctrl-C); finished work units are kept and the same command resumes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "Terminated"]

log = logging.getLogger("escalade")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def _jobs(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (-1 = all cores), got {text!r}") from None
    if v == 0 or v < -1:
        raise argparse.ArgumentTypeError("--jobs must be >= 1, or -1 for all cores")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from escalade import __version__

    p = argparse.ArgumentParser(prog="escalade", description="Simulate Bayesian adaptive dose-finding trials.")
    p.add_argument("--version", action="version", version=f"escalade {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="simulate every scenario x design of a study file")
    r.add_argument("study", help="study file (YAML), e.g. scenarios/cart_rr_heme.yaml")
    r.add_argument("--trials", type=_positive_int, help="number of virtual trials per scenario (default: the file's)")
    r.add_argument("--seed", type=int, help="random seed (default: the file's)")
    r.add_argument("--jobs", type=_jobs, default=-1, help="parallel workers (-1 = all cores; never changes results)")
    r.add_argument("--backend", choices=["loky", "dask", "threading", "sequential"], default="loky")
    r.add_argument("--scheduler", help="dask.distributed scheduler address (with --backend dask)")
    r.add_argument("--out", help="run directory (default: runs/<study name>)")
    r.add_argument("--exact", action="store_true", help="exact operating characteristics where the design allows")
    r.add_argument("--force", action="store_true", help="overwrite a run directory that holds other inputs")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    b = sub.add_parser("boundaries", help="decision table of BOIN (as BOIN::get.boundary prints it) or of any "
                                          "design that has one (--design)")
    b.add_argument("--target", type=_fraction, required=True)
    b.add_argument("--design", help="a design kind with a decision table, e.g. keyboard (default: BOIN); "
                                    "'escalade designs' lists the kinds")
    b.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a design parameter, e.g. --param table=my_table.csv (repeatable)")
    b.add_argument("--cohort-size", type=_positive_int, default=3)
    b.add_argument("--cohorts", type=_positive_int, default=10)
    b.add_argument("--p-saf", type=_fraction, help="default 0.6 x target")
    b.add_argument("--p-tox", type=_fraction, help="default 1.4 x target")
    b.add_argument("--cutoff-eli", type=_fraction, default=0.95)
    b.add_argument("--extrasafe", action="store_true")
    b.add_argument("--offset", type=_fraction, default=0.05)
    b.add_argument("--all-n", action="store_true", help="one column per number of patients, not per cohort")
    b.add_argument("--tite", action="store_true",
                   help="TITE-BOIN decision table with pending patients (Yuan et al. 2018)")

    for extra in _extra_commands():
        extra.add_parser(sub)
    return p


def _extra_commands() -> list[Any]:
    """Sub-commands contributed by escalade/cli_*.py modules (paths, next-dose, report, ...)."""
    import importlib
    import pkgutil

    import escalade

    mods = []
    for info in pkgutil.iter_modules(escalade.__path__):
        if info.name.startswith("cli_"):
            mods.append(importlib.import_module(f"escalade.{info.name}"))
    return mods


def _progress_bar(enabled: bool) -> tuple[Any, Any]:
    """A tqdm bar of work units with trials per second (counted from the first report)."""
    if not enabled:
        return None, lambda ok=True: None
    from tqdm import tqdm

    state: dict[str, Any] = {"bar": None, "t0": time.perf_counter(), "trials0": None}

    def update(done: int, total: int, trials: int) -> None:
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, unit="unit", desc="simulating", file=sys.stderr, leave=True)
            state["trials0"] = trials
            state["t0"] = time.perf_counter()  # the first report comes once the backend is ready
        bar = state["bar"]
        bar.n = done
        rate = (trials - state["trials0"]) / max(time.perf_counter() - state["t0"], 1e-9)
        bar.set_postfix_str(f"{trials} trials, {rate:,.0f} trials/s", refresh=False)
        bar.refresh()

    def close(ok: bool = True) -> None:
        if state["bar"] is not None:
            state["bar"].leave = ok  # after a failure the error line stands alone
            state["bar"].close()

    return update, close


#: Terminal columns of the key-characteristics table: ``(metric, header, decimals)``, in order; metrics the
#: run lacks are left out, and any other summary metric of oc.csv about selection is added after them.
KEY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("correct_selection_pct", "PCS %", 1),
    ("select_none_pct", "none %", 1),
    ("overdose_selection_pct", "over-sel %", 1),
    ("patients_at_mtd_pct", "pts@MTD %", 1),
    ("patients_above_mtd", "pts>MTD", 1),
    ("dlts", "DLTs", 1),
    ("sample_size", "N", 1),
    ("early_stop_pct", "early stop %", 1),
    ("orr_selected", "ORR@sel", 3),
    ("duration_days", "days", 0),
    # the CAR-T patient (scenarios with adverse_events/response/survival sections)
    ("crs_g3plus_pct", "CRS>=3 %", 1),
    ("icans_g3plus_pct", "ICANS>=3 %", 1),
    ("deaths", "deaths", 2),
    ("any_death_pct", "any death %", 1),
    ("efs12_selected", "EFS12@sel", 3),
)


def _key_columns(oc: Any) -> list[tuple[str, str, int]]:
    scalar = list(dict.fromkeys(oc.loc[oc["dose"].astype(str) == "", "metric"]))
    cols = [c for c in KEY_COLUMNS if c[0] in scalar]
    known = {c[0] for c in KEY_COLUMNS}
    for m in scalar:  # MRD-negative CR at each assessment, true at the selected dose
        if m.startswith("mrd_neg_cr_") and m.endswith("_selected"):
            cols.append((m, "MRD-CR " + m[len("mrd_neg_cr_"):-len("_selected")] + "@sel", 3))
    for m in scalar:
        if m not in known and "selection" in m:
            head = m.replace("_selection", " sel").replace("_pct", " %").replace("_", " ")
            cols.append((m, head, 1 if m.endswith("_pct") else 3))
    return cols


def _oc_text(idx: dict, key: tuple[str, str, str, str], prec: int, *, se: bool = True) -> str:
    row = idx.get(key)
    if row is None:
        return "-"
    v, e, ex = row
    if v != v:  # not defined (e.g. ORR at the selected dose when none was selected)
        return "n/a"
    return f"{v:.{prec}f}" + ("" if ex or not se else f" ({e:.{prec}f})")


def summary_table(oc: Any, scenarios: Sequence[str], designs: Sequence[str], *, width: int = 120) -> str:
    """Key characteristics per scenario and design (value with MC SE), in blocks of columns that fit
    ``width`` characters."""
    from escalade.reports.formatting import text_table

    cols = _key_columns(oc)
    idx = {(r.scenario, r.design, r.metric, r.dose): (float(r.value), float(r.se), bool(r.exact))
           for r in oc.itertuples(index=False)}
    out = []
    for s in scenarios:
        # a scenario's columns are those it has a value for (the CAR-T columns only where it has the sections)
        mine = [c for c in cols if any((s, d, c[0], "") in idx for d in designs)]
        rows = [[d] + [_oc_text(idx, (s, d, m, ""), p) for m, _, p in mine] for d in designs]
        out += ["", s, text_table(["design"] + [h for _, h, _ in mine], rows, width=width)]
    return "\n".join(out)


def per_dose_table(oc: Any, scenarios: Sequence[Any], designs: Sequence[str], doses: Sequence[str], *,
                   width: int = 120) -> str:
    """get.oc-style table per scenario: selection % at each dose and none, then mean patients treated at each
    dose and the mean sample size (means only; their SEs are in oc.csv), in blocks that fit ``width``."""
    from escalade.reports.formatting import text_table

    idx = {(r.scenario, r.design, r.metric, r.dose): (float(r.value), float(r.se), bool(r.exact))
           for r in oc.itertuples(index=False)}
    out = []
    for s in scenarios:
        truth = " ".join(f"{p:.2f}" for p in s.p_dlt)
        out += ["", f"{s.name}   (true P(DLT): {truth})"]
        sel = [[d] + [_oc_text(idx, (s.name, d, "select_pct", lab), 1, se=False) for lab in [*doses, "none"]]
               for d in designs]
        out.append(text_table(["selected %"] + list(doses) + ["none"], sel, width=width))
        pts = [[d] + [_oc_text(idx, (s.name, d, "patients", lab), 1, se=False) for lab in doses]
               + [_oc_text(idx, (s.name, d, "sample_size", ""), 1, se=False)] for d in designs]
        out.append(text_table(["patients"] + list(doses) + ["N"], pts, width=width))
    return "\n".join(out)


def fallback_notes(fallbacks: Sequence[dict[str, Any]], n_scenarios: int) -> list[str]:
    """``--exact`` fallbacks grouped: one line per reason and set of scenarios, naming the designs."""
    by_design: dict[tuple[str, str], list[str]] = {}
    for f in fallbacks:
        by_design.setdefault((str(f.get("design")), str(f.get("reason"))), []).append(str(f.get("scenario")))
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (design, reason), scen in by_design.items():
        groups.setdefault((reason, tuple(scen)), []).append(design)
    lines = []
    for (reason, scen), designs in groups.items():
        where = (f"all {n_scenarios} scenarios" if len(scen) == n_scenarios else
                 f"{len(scen)} scenario{'s' if len(scen) > 1 else ''}: " + ", ".join(scen))
        lines.append(textwrap.fill(f"note: simulated, not exact ({reason}): {', '.join(designs)} in {where}",
                                   120, subsequent_indent="  "))
    return lines


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from escalade.scenarios.load import load_study
    from escalade.simulations.study_run import run_study

    study = load_study(args.study)
    out = Path(args.out) if args.out else Path("runs") / Path(args.study).stem
    update, close = _progress_bar(not args.no_progress)
    cmd = "escalade " + " ".join(shlex.quote(a) for a in argv)
    try:
        res = run_study(study, n_trials=args.trials, seed=args.seed, n_jobs=args.jobs, backend=args.backend,
                        scheduler=args.scheduler, out_dir=out, exact=args.exact or None, force=args.force,
                        progress=update, command=cmd)
    except BaseException:
        close(False)
        raise
    close()
    m = res.manifest
    print(textwrap.fill(study.title, 120))
    all_exact = bool(res.oc["exact"].all())
    how = ("exact operating characteristics (no Monte Carlo error)" if all_exact else
           f"{m['n_trials']} trials per scenario, seed {m['seed']}; values are means with Monte Carlo SE in "
           f"brackets{' (none where exact)' if res.oc['exact'].any() else ''}")
    print(textwrap.fill(f"{how} (PCS = correct MTD selection; {study.mtd_rule.describe()})", 120))
    designs = [d.name for d in study.designs]
    print("\nSelection and allocation by dose (means over the trials, as BOIN's get.oc prints them)")
    print(per_dose_table(res.oc, study.scenarios, designs, [d.label for d in study.doses]))
    print("\nKey operating characteristics")
    print(summary_table(res.oc, [s.name for s in study.scenarios], designs))
    for line in fallback_notes(m["exact_fallbacks"], len(study.scenarios)):
        print(line)
    print("\n" + textwrap.fill(f"run directory: {out}  (trials.parquet, oc.csv, paired.csv, manifest.json; "
                               f"{m['elapsed_s']:.1f} s)", 120, break_on_hyphens=False))
    return 0


def _cmd_boundaries(args: argparse.Namespace) -> int:
    from escalade.design.boin import BoinConfig, boin_boundaries
    from escalade.design.registry import entry

    n_max = args.cohort_size * args.cohorts
    if args.design is not None and entry(args.design).kind != BoinConfig.__module__.rsplit(".", 1)[-1]:
        return _print_design_table(args, n_max)
    cfg = BoinConfig(target=args.target, n_doses=1, cohort_size=args.cohort_size, max_n=n_max,
                     p_saf=args.p_saf, p_tox=args.p_tox, cutoff_eli=args.cutoff_eli,
                     extrasafe=args.extrasafe, offset=args.offset)
    b = boin_boundaries(cfg.target, n_max, cfg.p_saf, cfg.p_tox, cfg.cutoff_eli, cfg.offset)
    print(format_boundaries(b, 1 if args.all_n else args.cohort_size, extrasafe=args.extrasafe))
    if args.tite:
        from escalade.design.tite_boin import TiteBoinConfig, format_tite_table

        tcfg = TiteBoinConfig(target=args.target, n_doses=1, cohort_size=args.cohort_size, max_n=n_max,
                              p_saf=args.p_saf, p_tox=args.p_tox, cutoff_eli=args.cutoff_eli,
                              extrasafe=args.extrasafe, offset=args.offset)
        print("\nTITE-BOIN: decisions with patients still pending (STFT = standardised total follow-up time"
              " of the pending patients)")
        print(format_tite_table(tcfg))
    return 0


def _print_design_table(args: argparse.Namespace, n_max: int) -> int:
    """Print the decision table a design reports through its ``decision_table()`` method."""
    import yaml

    from escalade.design.decision_table import design_table
    from escalade.design.errors import ConfigError
    from escalade.design.registry import build_design

    params: dict[str, Any] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--param", item, "must read NAME=VALUE, e.g. --param epsilon1=0.05")
        params[key.strip()] = yaml.safe_load(value) if value.strip() else value
    design = build_design(args.design, params, {"target": args.target, "n_doses": 2, "cohort_size": args.cohort_size,
                                                "max_n": n_max, "start_dose": 0})
    table = design_table(design)
    if table is None:
        raise ConfigError("--design", args.design, "has no decision table; choose a design that decides from a "
                                                   "table over (patients, DLTs), e.g. keyboard, mtpi2, i3+3")
    print(table.format(1 if args.all_n else args.cohort_size, n_max))
    return 0


def format_boundaries(b: Any, step: int, *, extrasafe: bool = False) -> str:
    """The decision table, one column per number of patients treated."""
    t = b.table(step)
    rows = [("Number of patients treated", t["n"]),
            ("Escalate if # of DLT <=", t["escalate_if_ntox_le"]),
            ("Deescalate if # of DLT >=", t["deescalate_if_ntox_ge"]),
            ("Eliminate if # of DLT >=", t["eliminate_if_ntox_ge"])]
    if extrasafe:
        rows.append(("Stop (lowest dose) if # of DLT >=",
                     [None if b.extrasafe_stop[n] > n else int(b.extrasafe_stop[n]) for n in t["n"]]))
    w = max(len(r[0]) for r in rows) + 2
    out = [f"lambda_e = {b.lambda_e:.4f}, lambda_d = {b.lambda_d:.4f} "
           f"(escalate if the DLT rate <= lambda_e, de-escalate if > lambda_d)", ""]
    for label, vals in rows:
        out.append(f"{label:<{w}}" + "".join(f"{'NA' if v is None else v:>5}" for v in vals))
    return "\n".join(out)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on ``SIGTERM``, so that a run stops as on Ctrl-C.

    Unwinding stops the worker pool (joblib terminates its workers when the
    loop over their results is left by an exception), releases the run
    directory's lock and keeps the finished work units.
    """


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def _os_error_line(exc: OSError) -> str:
    """One line for an ``OSError`` no layer turned into an escalade error: path, reason, fix."""
    from escalade.simulations.atomic import write_error

    path = exc.filename if exc.filename is not None else "escalade"
    return str(write_error(path, exc, action="failed"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``escalade`` command line; returns the exit status.

    0: done; 1: the machine refused a write or another system call (one line
    naming the path and the fix); 2: bad input (one line naming the file, the
    field and the fix); 130: Ctrl-C; 143: ``SIGTERM``.
    """
    from escalade.scenarios.errors import EscaladeError
    from escalade.scenarios.load import StudyWarning

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StudyWarning)  # each is logged already: one line, not three
            if args.command == "run":
                return _cmd_run(args, argv)
            if args.command == "boundaries":
                return _cmd_boundaries(args)
            return int(args.func(args, argv))
    except EscaladeError as exc:
        print(f"escalade: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, OSError) else 2
    except BrokenPipeError:  # output piped into e.g. head
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as exc:  # refused by the machine where no layer expected it: still one line
        print(f"escalade: error: {_os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        kept = "; finished work units are kept and the same command resumes" if args.command == "run" else ""
        print(f"escalade: {how}{kept}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
