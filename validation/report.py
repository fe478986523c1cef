"""Run the validation suite and write its report: ``validation.json``, ``validation.html``, ``validation.pdf``.

The report states, for each requirement of :mod:`escalade.validation.suite`, the
test, the tolerance, the observed worst error and the verdict, and the
environment that produced them: escalade's version and a SHA-256 of the
installed package's files (the code that was validated), Python, NumPy, SciPy
and their BLAS/OpenMP libraries (``threadpoolctl.threadpool_info()``), the CPU
model, the operating system and kernel, the date, the wall-clock and CPU time.
The HTML and PDF use the appendix's style sheet (``reports/templates``) and
WeasyPrint, as ``escalade report`` does; all files are written atomically, all or
none (``simulations.atomic``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from escalade.validation.suite import Context, RequirementResult, run_requirements

__all__ = ["SCHEMA", "environment", "find_validation", "package_hash", "run_validation", "render_html",
           "write_validation", "write_validation_summary",
           "environment_key"]

#: Identifies the JSON layout (bump when fields change meaning).
SCHEMA = "escalade-validation/1"


def _package_files() -> list[tuple[str, Path]]:
    """The installed package's files (relative name, path), without bytecode caches.

    From a checkout the layers live beside ``escalade/`` (``escalade._checkout``); the
    same files are hashed under the same relative names as in an installed package.
    """
    import escalade
    from escalade import _checkout

    root = Path(escalade.__file__).resolve().parent
    folders = [("", root)]
    if not (root / "design").is_dir():  # a checkout: the layers are top-level folders
        folders += [(f"{layer}/", root.parent / layer) for layer in _checkout.LAYERS]
    files = []
    for prefix, folder in folders:
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder).as_posix()
            if (not p.is_file() or "__pycache__" in p.parts or p.suffix in (".pyc", ".pyo")
                    or p.name.startswith(".")):  # caches, editor and temporary files are not the package
                continue
            if prefix == "" and rel.split("/")[0] in _checkout.LAYERS and len(folders) > 1:
                continue
            files.append((prefix + rel, p))
    return sorted(files)


def package_hash() -> tuple[str, int]:
    """SHA-256 over the package's files (each name and content, in name order) and the number of files."""
    h = hashlib.sha256()
    n = 0
    for name, path in _package_files():
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a temporary file of another process, gone since the listing
            continue
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
        n += 1
    return h.hexdigest(), n


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """The environment of this process: package, interpreter, numerical libraries, machine."""
    import numpy
    import scipy
    from threadpoolctl import threadpool_info

    import escalade

    digest, n_files = package_hash()
    return {
        "escalade_version": escalade.__version__,
        "package_sha256": digest,
        "package_files": n_files,
        "package_location": str(Path(escalade.__file__).resolve().parent),
        "python": sys.version.split()[0],
        "python_build": platform.python_implementation() + " " + " ".join(platform.python_build()),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "blas": [{k: str(v) for k, v in lib.items() if k in ("internal_api", "prefix", "version", "threading_layer",
                                                              "architecture", "num_threads", "filepath")}
                 for lib in threadpool_info()],
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "os": platform.platform(),
        "kernel": platform.release(),
    }


def environment_key(env: dict[str, Any]) -> str:
    """What makes two environments "the same" for reuse of a validation: package hash, versions, BLAS, CPU, OS."""
    keep = {k: env.get(k) for k in ("package_sha256", "python", "numpy", "scipy", "cpu", "os")}
    keep["blas"] = sorted((b.get("internal_api", ""), b.get("version", "")) for b in env.get("blas", []))
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def run_validation(*, quick: bool = False, only: Iterable[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the suite and return the report as a JSON-ready dict (``passed`` is the overall verdict)."""
    started = _dt.datetime.now(_dt.timezone.utc)
    t0, c0 = time.perf_counter(), time.process_time()
    results: list[RequirementResult] = run_requirements(Context(quick=quick), only=only, progress=progress)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env = environment()
    return {
        "schema": SCHEMA,
        "mode": "quick" if quick else "full",
        "subset": None if only is None else sorted(only),
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "passed": all(r.passed for r in results),
        "n_requirements": len(results),
        "n_failed": sum(not r.passed for r in results),
        "requirements": [r.as_json() for r in results],
        "environment": env,
        "environment_key": environment_key(env),
    }


def render_html(report: dict[str, Any]) -> str:
    """The validation report as self-contained HTML, in the appendix's style."""
    from escalade.reports.templating import render

    return render("validation.html.j2", r=report, version=report["environment"]["escalade_version"],
                  title="escalade validation report")


def write_validation(report: dict[str, Any], out_dir: str | Path, *, pdf: bool = True) -> list[Path]:
    """Write ``validation.json``, ``validation.html`` and (``pdf``) ``validation.pdf`` into ``out_dir``.

    The JSON carries its own SHA-256 in ``validation.json.sha256`` beside it, which
    ``escalade report`` quotes in its one-page summary.
    """
    from escalade.simulations.atomic import atomic_write_all

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    report = {**report, "json_sha256": digest}
    html = render_html(report)
    outputs: dict[Path, bytes | str] = {out / "validation.json": text,
                                        out / "validation.json.sha256": f"{digest}  validation.json\n",
                                        out / "validation.html": html}
    if pdf:
        from escalade.reports.appendix import render_pdf

        outputs[out / "validation.pdf"] = render_pdf(html, source=out / "validation.pdf")
    return atomic_write_all(outputs)


def find_validation(places: Iterable[str | Path]) -> tuple[dict[str, Any] | None, str]:
    """The newest validation report of *this* environment among ``places``, and a one-line explanation.

    Each place is a directory holding ``validation.json`` or a directory whose
    ``validation*/`` sub-directories do. A report counts only when its
    :func:`environment_key` (package hash, Python, NumPy, SciPy, BLAS, CPU, OS)
    equals this process's, so a validation of other code or another machine is
    never quoted.
    """
    found: list[Path] = []
    for place in places:
        d = Path(place)
        for cand in [d / "validation.json", *sorted(d.glob("validation*/validation.json"))]:
            if cand.is_file() and cand not in found:
                found.append(cand)
    if not found:
        return None, "no validation report found (run `escalade validate` on this machine)"
    key = environment_key(environment())
    best: tuple[str, dict[str, Any]] | None = None
    for path in found:
        try:
            rep = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if rep.get("schema") != SCHEMA or rep.get("environment_key") != key:
            continue
        rep["json_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        rep["json_path"] = str(path)
        if best is None or rep.get("started", "") > best[0]:
            best = (rep.get("started", ""), rep)
    if best is None:
        return None, (f"{len(found)} validation report(s) found, none of this environment (package, Python, "
                      f"NumPy/SciPy, BLAS, CPU, OS); run `escalade validate` on this machine")
    rep = best[1]
    verdict = "passed" if rep["passed"] else f"FAILED ({rep['n_failed']} of {rep['n_requirements']})"
    return rep, f"validation {verdict}, {rep['mode']} mode, {rep['started']}: {rep['json_path']} (SHA-256 " \
                f"{rep['json_sha256'][:16]}...)"


def write_validation_summary(report: dict[str, Any], stem: Path, *, pdf: bool) -> list[Path]:
    """A one-page summary of ``report`` (verdict table, environment, the JSON's hash) at ``stem``.html/.pdf."""
    from escalade.reports.templating import render
    from escalade.simulations.atomic import atomic_write_all

    html = render("validation_summary.html.j2", r=report, version=report["environment"]["escalade_version"],
                  title="escalade validation summary")
    outputs: dict[Path, bytes | str] = {stem.with_suffix(".html"): html}
    if pdf:
        from escalade.reports.appendix import render_pdf

        outputs[stem.with_suffix(".pdf")] = render_pdf(html, source=stem.with_suffix(".pdf"))
    return atomic_write_all(outputs)
