"""The simulation appendix: one HTML page (self-contained) and the same content as a PDF.

Sections, in order: 1. Summary (the conclusion table and sentences, then the
get.oc-style overview of every scenario x design), 2. Methods per design,
3. Scenarios, 4. Operating characteristics per scenario, with CAR-T scenarios
"Safety profile" and "Efficacy depth" (:mod:`escalade.reports.cart_sections`),
then Figures, Reproducibility, and optionally Changes from a previous run
(:mod:`escalade.reports.diff`). The HTML needs no network access: figures are
PNG ``data:`` URIs, the stylesheet is inline, there is no script, and a
Content-Security-Policy forbids loading anything else. ``manifest.json`` and
the study file are attached as ``data:`` links (a download in a browser; an
embedded file attachment in the PDF). The PDF is WeasyPrint's rendering of the
very same HTML; tables wider than the page are split into parts
(:func:`escalade.reports.tables.split_wide`) in both.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalade.reports import plots
from escalade.reports.conclusion import conclusion, conclusion_table
from escalade.reports.errors import ReportDependencyError
from escalade.reports.formatting import dose_display
from escalade.reports.load import RunData
from escalade.reports.methods import methods_section
from escalade.reports.optimal import optimal_doses
from escalade.reports.tables import (
    Cell,
    Table,
    cross_scenario_tables,
    scenario_tables,
    scenario_truth_table,
    split_wide,
)
from escalade.reports.templating import render

if TYPE_CHECKING:
    from escalade.reports.diff import RunDiff

__all__ = ["SECTIONS", "appendix_context", "render_html", "render_pdf", "regenerate_command", "manifest_table",
           "attachments", "Progress"]

#: ``progress(message)``: called once per stage of the report (the CLI prints it on stderr).
Progress = Callable[[str], None]

log = logging.getLogger(__name__)

#: ``(id, title)`` of the appendix sections, in order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("methods", "Methods"),
    ("scenarios", "Scenarios"),
    ("oc", "Operating characteristics"),
    ("figures", "Figures"),
    ("reproducibility", "Reproducibility"),
)


def regenerate_command(run: RunData) -> str:
    """``escalade run STUDY --trials N --seed S --out DIR [--exact]``: regenerates the run's results."""
    man = run.manifest
    study = str(man.get("study_file") or "STUDY.yaml")
    parts = ["escalade", "run", study, "--trials", str(run.n_trials), "--seed", str(run.seed),
             "--out", str(run.path)]
    if man.get("exact"):
        parts.append("--exact")
    return " ".join(shlex.quote(p) for p in parts)


def _when(iso: Any) -> str:
    try:
        t = _dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso) if iso else "not recorded"
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _version() -> str:
    from escalade import __version__

    return __version__


def _summary_facts(run: RunData, generated: str) -> list[tuple[str, str]]:
    man = run.manifest
    designs = "; ".join(f"{d.name} ({d.kind})" for d in run.designs)
    doses = "; ".join(dose_display(d) for d in run.doses)
    exact = "exact enumeration" if man.get("exact") else "Monte Carlo simulation"
    return [
        ("Study", run.title),
        ("Designs compared", designs),
        ("Dose levels", doses),
        ("Target DLT rate", f"{run.target:g}"),
        ("Scenarios", str(len(run.scenarios))),
        ("Trials per scenario and design", f"{run.n_trials} ({exact})"),
        ("Seed", str(run.seed)),
        ("escalade version (run)", str(man.get("escalade_version", "unknown"))),
        ("Run date", _when(man.get("finished") or man.get("started"))),
        ("Report date", generated),
    ]


def _repro_facts(run: RunData) -> list[tuple[str, str]]:
    man = run.manifest
    plat = man.get("platform") or {}
    fallbacks = man.get("exact_fallbacks") or []
    rows = [
        ("Study file", str(man.get("study_file") or "not recorded")),
        ("Study file SHA-256", str(man.get("study_sha256") or "not recorded")),
        ("Results SHA-256", str(man.get("results_sha256") or "not recorded")),
        ("Trials per scenario", str(run.n_trials)),
        ("Seed", str(run.seed)),
        ("Chunk size", str(man.get("chunk_size", "not recorded"))),
        ("Exact enumeration", "yes" if man.get("exact") else "no"),
        ("Run format", str(man.get("run_format", "not recorded"))),
        ("Started", _when(man.get("started"))),
        ("Finished", _when(man.get("finished"))),
        ("Elapsed", f"{man['elapsed_s']:.1f} s" if isinstance(man.get("elapsed_s"), (int, float)) else "not recorded"),
        ("Workers / backend", f"{man.get('n_jobs', '?')} / {man.get('backend', '?')}"),
        ("Platform", " ".join(str(plat.get(k, "")) for k in ("system", "release", "machine")).strip()
         + (f", Python {plat['python']}" if plat.get("python") else "")
         + (f", {plat['cpu_count']} CPUs" if plat.get("cpu_count") else "")),
    ]
    for f in fallbacks:
        rows.append(("Simulated, not exact", f"{f.get('scenario')} / {f.get('design')}: {f.get('reason')}"))
    return rows


def _versions_table(run: RunData) -> Table:
    versions = run.manifest.get("versions") or {}
    rows = [[Cell(k, header=True, css="code"), Cell(str(v))] for k, v in versions.items()]
    return Table("versions", "Package versions", ["Package", "Version"], rows)


def _summarise(key: str, value: Any) -> str:
    """A short text for one manifest field: scalars as they are, lists and maps by size and names."""
    if key == "study_text":
        return f"{len(str(value).splitlines())} lines (the study file, printed below and attached)"
    if isinstance(value, list):
        names = [str(v.get("name") or v.get("label") or v.get("scenario") or "") if isinstance(v, dict) else str(v)
                 for v in value]
        names = [n for n in names if n]
        head = f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
        if names:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            head += f": {shown}"
        return head
    if isinstance(value, dict):
        if all(not isinstance(v, (dict, list)) for v in value.values()) and len(value) <= 6:
            return ", ".join(f"{k} {v}" for k, v in value.items())
        return f"{len(value)} fields: " + ", ".join(list(value)[:10]) + (", ..." if len(value) > 10 else "")
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def manifest_table(run: RunData) -> Table:
    """Every top-level field of ``manifest.json`` with a one-line summary (the file itself is attached)."""
    rows = [[Cell(k, header=True, css="code"), Cell(_summarise(k, v), css="text")]
            for k, v in run.manifest.items()]
    return Table("manifest-table", "Contents of manifest.json", ["Field", "Summary"], rows,
                 "Every parameter of every design, with defaults filled in, is in the methods section (2) and in "
                 "the attached manifest.json.")


def attachments(run: RunData) -> list[dict[str, str]]:
    """``manifest.json`` and the study file as ``data:`` URIs (``name``, ``href``, ``what``)."""
    man = run.manifest
    out = [{"name": "manifest.json", "what": "every input, setting and version of the run (JSON)",
            "href": "data:application/json;base64," + base64.b64encode(
                json.dumps(man, indent=2, ensure_ascii=False, default=str).encode("utf-8")).decode("ascii")}]
    text = man.get("study_text")
    if text:
        name = Path(str(man.get("study_file") or "study.yaml")).name or "study.yaml"
        out.append({"name": name, "what": "the study file of the run (YAML)",
                    "href": "data:application/x-yaml;base64," + base64.b64encode(
                        str(text).encode("utf-8")).decode("ascii")})
    return out


def _oc_intro(run: RunData) -> str:
    base = run.design_names[0]
    mc = ("Every number is a mean over the simulated trials followed by its Monte Carlo standard error in "
          "brackets" if not run.oc["exact"].all() else "Every number was computed by exact enumeration")
    return (f"{mc}; (exact) marks values without Monte Carlo error. Designs are side by side and the true MTD "
            f"is shaded. The paired differences compare each design with {base} on the same virtual patients "
            f"(common random numbers), so their standard errors are much smaller than those of independent "
            f"runs. Early stops are stops before the planned end (e.g. all doses too toxic); completing the "
            f"3+3 algorithm is a planned end.")


def _scenario_notes(run: RunData) -> list[tuple[str, str]]:
    """One line per scenario that has a description or a tox-response association."""
    out = []
    for s in run.scenarios:
        parts = [s.description.strip().rstrip(".")] if s.description.strip() else []
        if s.association:
            parts.append(f"tox\u2013response association {s.association:g}")
        if parts:
            out.append((s.name, "; ".join(parts) + "."))
    return out


def _stage(progress: Progress | None, t0: float, text: str) -> None:
    if progress is not None:
        progress(f"{text} ({time.perf_counter() - t0:.1f} s)")


def appendix_context(run: RunData, *, generated: _dt.datetime | None = None,
                     compare: RunDiff | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Everything the template needs, computed from the run (figures rendered here).

    ``progress`` (optional) is called with a short line after each stage.
    """
    t0 = time.perf_counter()
    gen = (generated or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    from escalade.reports.cart_sections import cart_scenarios, efficacy_context, safety_context

    cart = bool(cart_scenarios(run))
    ids = list(SECTIONS)
    if cart:  # the CAR-T patient's sections follow the operating characteristics
        at = ids.index(("oc", "Operating characteristics")) + 1
        ids[at:at] = [("safety", "Safety profile"), ("efficacy", "Efficacy depth")]
    sections = [{"id": i, "number": k + 1, "title": t} for k, (i, t) in enumerate(ids)]
    optimal = optimal_doses(run)
    # the conclusion table has text cells that wrap: it never needs parts
    summary = {"conclusion_table": [conclusion_table(run)], "conclusion": conclusion(run),
               "overview": [p for t in cross_scenario_tables(run) for p in split_wide(t)]}
    _stage(progress, t0, "summary and conclusion")
    methods = [methods_section(run, d, i) for i, d in enumerate(run.designs)]
    _stage(progress, t0, f"methods text of {len(methods)} designs")
    scen_sections = []
    for k, s in enumerate(run.scenarios):
        tables = [replace(t, id=f"s{k + 1}-{t.id}") for t in scenario_tables(run, s)]
        mtd = ("none (no dose is tolerable)" if s.true_mtd is None else dose_display(run.doses[s.true_mtd]))
        if s.mtd_why:  # the reasons start with "DL4: " / "none: ", already named
            mtd += f" \u2014 {s.mtd_why.split(': ', 1)[-1]}"
        for opt in s.optimal:
            mtd += (f"; optimal dose of {opt.design} ({opt.objective}): "
                    + ("none" if opt.dose is None else dose_display(run.doses[opt.dose]))
                    + f" \u2014 {opt.why.split(': ', 1)[-1]}")
        scen_sections.append({"name": s.name, "description": s.description, "mtd": mtd, "tables": tables})
    ctx: dict[str, Any] = {
        "title": run.title,
        "version": _version(),
        "generated": gen,
        "run_dir": str(run.path),
        "sections": sections,
        "summary_facts": _summary_facts(run, gen),
        **summary,
        "methods": methods,
        "truth_tables": split_wide(scenario_truth_table(run, optimal)),
        "scenario_notes": _scenario_notes(run),
        "oc_intro": _oc_intro(run),
        "scenario_sections": scen_sections,
        "repro_facts": _repro_facts(run),
        "regenerate": regenerate_command(run),
        "recorded_command": run.manifest.get("command") or "",
        "study_file": str(run.manifest.get("study_file") or "STUDY.yaml"),
        "versions_table": _versions_table(run),
        "manifest_table": manifest_table(run),
        "attachments": attachments(run),
        "study_text": str(run.manifest.get("study_text") or "(not recorded)"),
        "diff": None,
        "num": {sec["id"]: sec["number"] for sec in sections},
        "safety": safety_context(run) if cart else [],
        "efficacy": efficacy_context(run) if cart else [],
    }
    _stage(progress, t0, f"tables of {len(run.scenarios)} scenarios")
    ctx["curves_figure"] = plots.scenario_curves_figure(run, optimal)
    ctx["summary_figure"] = plots.summary_figure(run)
    ctx["scenario_figures"] = [plots.selection_allocation_figure(run, s, k) for k, s in enumerate(run.scenarios)]
    _stage(progress, t0, f"{len(ctx['scenario_figures']) + 2} figures")
    if compare is not None:
        from escalade.reports.diff import diff_context

        ctx["sections"].append({"id": "changes", "number": len(sections) + 1,
                                "title": "Changes from the previous run"})
        ctx["diff"] = diff_context(compare)
    return ctx


def render_html(run: RunData, *, generated: _dt.datetime | None = None, compare: RunDiff | None = None,
                progress: Progress | None = None) -> str:
    """The appendix as one self-contained HTML document."""
    return render("appendix.html.j2", **appendix_context(run, generated=generated, compare=compare,
                                                         progress=progress))


def render_pdf(html: str, *, source: str | Path = "report") -> bytes:
    """The same HTML typeset as a PDF by WeasyPrint (A4, page numbers, one section per page).

    Raises
    ------
    ReportDependencyError
        If WeasyPrint (or the system libraries it needs) is not installed.
    """
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: pango/cairo system libraries missing
        raise ReportDependencyError(source, f"PDF output needs WeasyPrint ({type(exc).__name__}: {exc}); install "
                                    "it with `pip install \"escalade[reports]\"` (and the pango library), or use "
                                    "--format html") from None
    return weasyprint.HTML(string=html).write_pdf()

