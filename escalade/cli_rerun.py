"""``escalade rerun RUN_DIR``: regenerate a run from its manifest and verify it.

The manifest of a run directory holds the study file's full text and hash,
the number of trials, the seed and the exact-mode flag: everything the
results depend on (DESIGN.md section 7). ``rerun`` runs that study again into
a new directory (``RUN_DIR-rerun`` unless ``--out``; an interrupted re-run
there is resumed, a finished one is refused so that nothing is reused) with
any workers or backend, and compares the new ``results_sha256`` (every trial's
outcome) and the SHA-256 of the new ``oc.csv`` and ``paired.csv`` with the
recorded ones. Before anything runs, the original's ``trials.parquet``,
``oc.csv`` and ``paired.csv`` are checked against the hashes its manifest
recorded (:func:`escalade.simulations.run_files.verify_run_files`): a run
whose files were edited is refused, in one line naming the file, rather than
"reproduced". Exit status: 0 when everything is identical, 1 when something
differs (the message names the hashes or files and the package versions that
changed), 2 when ``RUN_DIR`` is not a usable run directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from escalade.scenarios.errors import EscaladeError

__all__ = ["add_parser", "handler", "rerun", "RerunError", "RerunOutcome"]

log = logging.getLogger(__name__)

_NEEDED = ("study_text", "study_sha256", "n_trials", "seed", "results_sha256")


class RerunError(EscaladeError):
    """A run directory cannot be re-run (no manifest, or an inconsistent one)."""


class RerunOutcome:
    """What a re-run found: the recorded and the new results hash, and where the new run is.

    Attributes
    ----------
    recorded, regenerated
        ``results_sha256`` of the original run (its manifest) and of the re-run.
    out
        The new run directory.
    version_changes
        ``"name old -> new"`` for each package whose version differs from the
        one recorded in the manifest.
    files_differ
        Which of ``oc.csv`` and ``paired.csv`` came out different from the
        recorded file (e.g. another escalade version's definitions), even if the
        trial outcomes are identical.
    """

    __slots__ = ("recorded", "regenerated", "out", "version_changes", "files_differ")

    def __init__(self, recorded: str, regenerated: str, out: Path, version_changes: list[str],
                 files_differ: list[str] | None = None) -> None:
        self.recorded = recorded
        self.regenerated = regenerated
        self.out = out
        self.version_changes = version_changes
        self.files_differ = list(files_differ or [])

    @property
    def identical(self) -> bool:
        return self.recorded == self.regenerated and not self.files_differ


def add_parser(sub: Any) -> None:
    """Add the ``rerun`` sub-command to the ``escalade`` parser."""
    from escalade.cli import _jobs

    r = sub.add_parser("rerun", help="regenerate a run from its manifest.json and verify its results hash",
                       description="Run the study recorded in RUN_DIR/manifest.json again (same study text, "
                                   "trials, seed) into a new directory and check that results_sha256 is "
                                   "identical. Exit status 1 if it is not.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by 'escalade run'")
    r.add_argument("--out", help="new run directory (default: RUN_DIR-rerun)")
    r.add_argument("--jobs", type=_jobs, default=-1,
                   help="parallel workers (-1 = all cores; never changes results)")
    r.add_argument("--backend", choices=["loky", "dask", "threading", "sequential"], default="loky")
    r.add_argument("--scheduler", help="dask.distributed scheduler address (with --backend dask)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=handler)


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    if not run_dir.is_dir():
        raise RerunError(f"{run_dir}: no such run directory")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RerunError(f"{path} does not exist; RUN_DIR must be a finished run directory "
                         "(escalade run STUDY --out RUN_DIR)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RerunError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(man, dict):
        raise RerunError(f"{path} is not a run manifest (a JSON object)")
    missing = [k for k in _NEEDED if k not in man]
    if missing:
        raise RerunError(f"{path} lacks {', '.join(missing)}; it was not written by a version of escalade that "
                         "records the study text and results hash")
    text = man["study_text"]
    if not isinstance(text, str) or hashlib.sha256(text.encode("utf-8")).hexdigest() != man["study_sha256"]:
        raise RerunError(f"{path}: study_text does not match study_sha256; the manifest was edited")
    from escalade.simulations.run_files import verify_run_files

    verify_run_files(run_dir, man)  # the original's result files must be the run's, or there is nothing to verify
    return man


def _version_changes(recorded: dict[str, Any] | None) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out = []
    for name, old in sorted((recorded or {}).items()):
        try:
            now = platform.python_version() if name == "python" else version(name)
        except PackageNotFoundError:
            now = "not installed"
        if now != old:
            out.append(f"{name} {old} -> {now}")
    return out


def rerun(run_dir: str | Path, *, out: str | Path | None = None, n_jobs: int = -1, backend: str = "loky",
          scheduler: str | None = None, progress: Any = None, command: str | None = None) -> RerunOutcome:
    """Regenerate ``run_dir`` from its manifest into ``out`` and compare the results hashes.

    Raises
    ------
    RerunError
        When ``run_dir`` holds no usable manifest, or ``out`` is ``run_dir``.
    """
    from escalade.scenarios.load import parse_study
    from escalade.simulations.study_run import run_study

    run_dir = Path(run_dir)
    man = _read_manifest(run_dir)
    target = Path(out) if out is not None else run_dir.with_name(run_dir.name + "-rerun")
    if target.resolve() == run_dir.resolve():
        raise RerunError(f"--out {target} is the run directory itself; give another directory")
    if (target / "manifest.json").exists():  # an unfinished re-run is resumed; a finished one is not reused
        raise RerunError(f"{target} already holds a finished run; delete it or give another --out, so that "
                         "every result is regenerated")
    study = parse_study(man["study_text"], source=man.get("study_file"))
    log.info("re-running %s (%s trials per scenario, seed %s) into %s", run_dir, man["n_trials"], man["seed"],
             target)
    res = run_study(study, n_trials=man["n_trials"], seed=man["seed"], exact=bool(man.get("exact", False)),
                    n_jobs=n_jobs, backend=backend, scheduler=scheduler,  # type: ignore[arg-type]
                    out_dir=target, progress=progress, command=command)
    old, new = man.get("files_sha256") or {}, res.manifest.get("files_sha256") or {}
    differ = [f for f in ("oc.csv", "paired.csv") if old.get(f) != new.get(f)]
    return RerunOutcome(man["results_sha256"], res.manifest["results_sha256"], target,
                        _version_changes(man.get("versions")), differ)


def handler(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``escalade rerun``; 0 if the results hash is reproduced, 1 if not."""
    from escalade.cli import _progress_bar

    update, close = _progress_bar(not args.no_progress)
    try:
        got = rerun(args.run_dir, out=args.out, n_jobs=args.jobs, backend=args.backend, scheduler=args.scheduler,
                    progress=update, command="escalade " + " ".join(shlex.quote(a) for a in argv))
    finally:
        close()
    if got.identical:
        print(f"rerun of {args.run_dir} reproduces it: results_sha256 {got.recorded}; oc.csv and paired.csv "
              f"identical (new run in {got.out})")
        return 0
    versions = "; ".join(got.version_changes) or "none"
    if got.recorded != got.regenerated:
        what = f"results_sha256 {got.recorded} (manifest) != {got.regenerated}"
    else:
        what = (f"the trial outcomes are identical (results_sha256 {got.recorded}) but "
                f"{' and '.join(got.files_differ)} differ{'s' if len(got.files_differ) == 1 else ''} "
                "(the operating characteristics are computed differently)")
    print(f"escalade: error: rerun of {args.run_dir} does not reproduce it: {what} (rerun in {got.out}); "
          f"package versions changed: {versions}", file=sys.stderr)
    return 1
