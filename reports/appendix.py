"""The simulation appendix: one HTML page (self-contained) and the same content as a PDF.

Sections, in order: 1. Summary (with the generated conclusion), 2. Methods per
design, 3. Scenarios, 4. Operating characteristics per scenario, 5. Figures,
6. Reproducibility, and optionally 7. Changes from a previous run
(:mod:`escalade.reports.diff`). The HTML needs no network access: figures are
PNG ``data:`` URIs, the stylesheet is inline, there is no script, and a
Content-Security-Policy forbids loading anything else. The PDF is WeasyPrint's
rendering of the very same HTML.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from escalade.reports import plots
from escalade.reports.conclusion import conclusion
from escalade.reports.errors import ReportDependencyError
from escalade.reports.formatting import dose_display
from escalade.reports.load import RunData
from escalade.reports.methods import methods_section
from escalade.reports.optimal import optimal_doses
from escalade.reports.tables import Cell, Table, scenario_tables, scenario_truth_table
from escalade.reports.templating import render

if TYPE_CHECKING:
    from escalade.reports.diff import RunDiff

__all__ = ["SECTIONS", "appendix_context", "render_html", "render_pdf", "regenerate_command"]

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


def _design_settings(run: RunData) -> str:
    out = [{"name": d.name, "design": d.kind, "params_given": dict(d.params_given), "params": dict(d.params)}
           for d in run.designs]
    return json.dumps(out, indent=2, ensure_ascii=False, default=str)


def _oc_intro(run: RunData) -> str:
    base = run.design_names[0]
    mc = ("Every number is a mean over the simulated trials followed by its Monte Carlo standard error in "
          "brackets" if not run.oc["exact"].all() else "Every number was computed by exact enumeration")
    return (f"{mc}; (exact) marks values without Monte Carlo error. Designs are side by side and the true MTD "
            f"is shaded. The paired differences compare each design with {base} on the same virtual patients "
            f"(common random numbers), so their standard errors are much smaller than those of independent "
            f"runs. Early stops are stops before the planned end (e.g. all doses too toxic); completing the "
            f"3+3 algorithm is a planned end.")


def appendix_context(run: RunData, *, generated: _dt.datetime | None = None,
                     compare: RunDiff | None = None) -> dict[str, Any]:
    """Everything the template needs, computed from the run (figures rendered here)."""
    gen = (generated or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    sections = [{"id": i, "title": f"{k + 1}. {t}"} for k, (i, t) in enumerate(SECTIONS)]
    optimal = optimal_doses(run)
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
        "conclusion": conclusion(run),
        "methods": [methods_section(run, d, i) for i, d in enumerate(run.designs)],
        "truth_table": scenario_truth_table(run, optimal),
        "scenario_notes": [(s.name, s.description) for s in run.scenarios if s.description]
                          + [(s.name, f"tox\u2013response association {s.association:g}")
                             for s in run.scenarios if s.association],
        "curves_figure": plots.scenario_curves_figure(run, optimal),
        "oc_intro": _oc_intro(run),
        "scenario_sections": scen_sections,
        "summary_figure": plots.summary_figure(run),
        "scenario_figures": [plots.selection_allocation_figure(run, s, k) for k, s in enumerate(run.scenarios)],
        "repro_facts": _repro_facts(run),
        "regenerate": regenerate_command(run),
        "recorded_command": run.manifest.get("command") or "",
        "study_file": str(run.manifest.get("study_file") or "STUDY.yaml"),
        "versions_table": _versions_table(run),
        "design_settings": _design_settings(run),
        "study_text": str(run.manifest.get("study_text") or "(not recorded)"),
        "diff": None,
    }
    if compare is not None:
        from escalade.reports.diff import diff_context

        ctx["sections"].append({"id": "changes", "title": f"{len(SECTIONS) + 1}. Changes from the previous run"})
        ctx["diff"] = diff_context(compare)
    return ctx


def render_html(run: RunData, *, generated: _dt.datetime | None = None, compare: RunDiff | None = None) -> str:
    """The appendix as one self-contained HTML document."""
    return render("appendix.html.j2", **appendix_context(run, generated=generated, compare=compare))


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

