"""The result files of a run directory, and their check against the manifest before any use.

``escalade run`` records the SHA-256 of ``trials.parquet``, ``oc.csv`` and
``paired.csv``, as written, in ``manifest.json`` (``files_sha256``; the
manifest is written last). ``escalade report``, ``diff`` and ``rerun`` call
:func:`verify_run_files` before they read a number, and refuse a run whose
files were edited, replaced or removed since, in one line naming the file.
This guards against accidents (a hand-edited table, files copied from
another run), not against someone who also rewrites the manifest.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from escalade.scenarios.errors import EscaladeError
from escalade.simulations.manifest import RUN_FORMAT

__all__ = ["RUN_FORMAT", "VERIFIED_FILES", "OPTIONAL_FILES", "RunFilesError", "sha256_file", "verify_run_files"]

log = logging.getLogger(__name__)

# RUN_FORMAT (simulations/manifest.py) 2: true MTD "highest dose <= target + delta" (or none), acceptable
# and optimal-dose selection, paired.csv for every pair of designs from the per-trial metric table, default
# timing for every design of a study with a TITE design, and ``files_sha256`` in the manifest.
# (1: the first format, no file hashes.)

#: The result files whose SHA-256 the manifest records (``files_sha256``) and readers verify.
VERIFIED_FILES: tuple[str, ...] = ("trials.parquet", "oc.csv", "paired.csv")
#: Of those, the ones a reader does not need: a run directory may drop them (``trials.parquet`` is the
#: large trial-level file; reports, diffs and re-runs read ``oc.csv`` and ``paired.csv`` only). Present,
#: they must match like the others.
OPTIONAL_FILES: tuple[str, ...] = ("trials.parquet",)


class RunFilesError(EscaladeError):
    """A result file of a run directory is missing or differs from the hash its manifest recorded.

    Attributes
    ----------
    path
        The file (or the manifest, when it records no hashes).
    reason
        The message without the path.
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_run_files(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Check ``trials.parquet``, ``oc.csv`` and ``paired.csv`` against the manifest's ``files_sha256``.

    Raises
    ------
    RunFilesError
        In one line naming the file: when the manifest records no hashes (a
        run of an earlier escalade, whose definitions differ), or a file is
        missing (except one of :data:`OPTIONAL_FILES`, which is then only
        logged), or its SHA-256 differs from the recorded one (it was edited
        or replaced after the run).
    """
    run_dir = Path(run_dir)
    rerun = f"regenerate the run with `escalade run STUDY.yaml --out {run_dir} --force`"
    recorded = manifest.get("files_sha256")
    if not isinstance(recorded, dict):
        raise RunFilesError(run_dir / "manifest.json",
                            f"records no files_sha256, so its results cannot be verified (written by an earlier "
                            f"escalade, run format {manifest.get('run_format', 1)}, whose definitions differ from "
                            f"format {RUN_FORMAT}); {rerun}")
    for name in VERIFIED_FILES:
        f = run_dir / name
        want = recorded.get(name)
        if not isinstance(want, str):
            raise RunFilesError(run_dir / "manifest.json", f"files_sha256 has no entry for {name}; {rerun}")
        if not f.is_file():
            if name in OPTIONAL_FILES and not f.exists():
                log.warning("%s is missing; the other result files are verified without it", f)
                continue
            raise RunFilesError(f, f"is missing, but the run's manifest.json records it; {rerun}")
        got = sha256_file(f)
        if got != want:
            raise RunFilesError(f, f"differs from the SHA-256 recorded in manifest.json ({got[:12]}... != "
                                f"{want[:12]}...): the file was edited or replaced after the run; {rerun}")
