"""Write reports to disk: everything rendered in memory first, then each file atomically.

A report is never half-written: each output goes to a temporary file in the
target directory, and only when every one is written are they renamed into
place (``simulations.atomic``); nothing is written at all when rendering any
requested format fails, or when the disk refuses any of the files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from escalade.reports.errors import ReportError
from escalade.reports.load import RunData
from escalade.simulations.atomic import atomic_write_all

__all__ = ["Format", "output_stem", "write_appendix", "write_diff_report", "formats_of"]

log = logging.getLogger(__name__)

Format = Literal["html", "pdf", "both"]
_SUFFIXES = (".html", ".htm", ".pdf", ".xlsx")


def formats_of(fmt: Format) -> tuple[str, ...]:
    """``"both"`` -> ``("html", "pdf")``."""
    if fmt not in ("html", "pdf", "both"):
        raise ValueError(f"format must be one of 'html', 'pdf', 'both'; got {fmt!r}")
    return ("html", "pdf") if fmt == "both" else (fmt,)


def output_stem(out: str | Path | None, default: Path) -> Path:
    """The output path without suffix: ``out`` (a known suffix dropped) or ``default``.

    Raises
    ------
    ReportError
        If the directory that would hold the outputs does not exist.
    """
    stem = Path(out) if out is not None else default
    if stem.suffix.lower() in _SUFFIXES:
        stem = stem.with_suffix("")
    if not stem.parent.is_dir():
        raise ReportError(stem.parent, "output directory does not exist; create it or choose another --out")
    return stem


def _write_all(outputs: dict[Path, bytes | str]) -> list[Path]:
    """Write every output, all or none (a full disk after the HTML leaves no new file at all).

    Raises
    ------
    WriteError
        One line naming the file, the system's reason and the fix.
    """
    written = atomic_write_all(outputs)
    for path in written:
        log.info("wrote %s", path)
    return written


def write_appendix(run: RunData, *, fmt: Format = "both", xlsx: bool = False, out: str | Path | None = None,
                   compare: RunData | None = None, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Render the appendix of ``run`` and write it (``report.html``/``.pdf``/``.xlsx`` in the run directory).

    Parameters
    ----------
    run
        The loaded run.
    fmt
        ``"html"``, ``"pdf"`` or ``"both"``.
    xlsx
        Also write the tables as an Excel workbook.
    out
        Output path without suffix (default: ``RUN_DIR/report``).
    compare
        A previous run: adds the section "Changes from the previous run".
    progress
        Called with one short line per stage (the CLI prints them on stderr).

    Returns
    -------
    list of Path
        The files written.
    """
    from escalade.reports.appendix import render_html, render_pdf

    stem = output_stem(out, run.path / "report")
    diff = None
    if compare is not None:
        from escalade.reports.diff import diff_runs

        diff = diff_runs(compare, run)
    t0 = time.perf_counter()
    html = render_html(run, compare=diff, progress=progress)
    outputs: dict[Path, bytes | str] = {}
    kinds: Sequence[str] = formats_of(fmt)
    if "html" in kinds:
        outputs[stem.with_suffix(".html")] = html
    if "pdf" in kinds:
        if progress is not None:
            progress("typesetting the PDF (WeasyPrint; the slowest step)")
        outputs[stem.with_suffix(".pdf")] = render_pdf(html, source=stem.with_suffix(".pdf"))
        if progress is not None:
            progress(f"PDF typeset ({time.perf_counter() - t0:.1f} s)")
    if xlsx:
        from escalade.reports.xlsx import xlsx_bytes

        outputs[stem.with_suffix(".xlsx")] = xlsx_bytes(run)
    return _write_all(outputs)


def write_diff_report(a: RunData, b: RunData, *, fmt: Format = "both", out: str | Path | None = None) -> list[Path]:
    """Write the amendment comparison of ``a`` -> ``b`` as HTML/PDF (default ``RUN_B/diff``)."""
    import datetime as _dt

    from escalade import __version__
    from escalade.reports.appendix import render_pdf
    from escalade.reports.diff import diff_context, diff_runs
    from escalade.reports.templating import render

    stem = output_stem(out, b.path / "diff")
    diff = diff_runs(a, b)
    html = render("diff.html.j2", title=b.title, version=__version__, diff=diff_context(diff),
                  generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    outputs: dict[Path, bytes | str] = {}
    kinds = formats_of(fmt)
    if "html" in kinds:
        outputs[stem.with_suffix(".html")] = html
    if "pdf" in kinds:
        outputs[stem.with_suffix(".pdf")] = render_pdf(html, source=stem.with_suffix(".pdf"))
    return _write_all(outputs)
