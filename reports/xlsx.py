"""Excel export of the report tables (openpyxl), numbers as numbers.

Sheets: ``Summary`` (run facts and the conclusion), ``Scenarios`` (true
curves), ``Operating characteristics`` (one row per scenario x design x metric
x dose with value, SE and exact, labelled as in the report), ``Paired
differences`` and ``Manifest`` (design parameters, versions). Text cells are
always stored as text, never as formulas: a scenario named ``=HYPERLINK(...)``
stays a name (no formula injection). Control characters, which a workbook
cannot hold (an ESC in a scenario name), are written as their escape
(``\\x1b``), so that a name never stops the export.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from escalade.reports.conclusion import conclusion
from escalade.reports.errors import ReportDependencyError
from escalade.reports.formatting import dose_display, metric_spec
from escalade.reports.load import RunData

__all__ = ["xlsx_bytes", "SHEETS"]

#: Sheet names, in order.
SHEETS: tuple[str, ...] = ("Summary", "Scenarios", "Operating characteristics", "Paired differences", "Manifest")

#: Characters an .xlsx cell cannot hold (XML 1.0 forbids C0 controls other than tab, LF and CR).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _printable(text: str) -> str:
    r"""``text`` with each control character a workbook cannot hold written as its escape (``\x1b``).

    >>> print(_printable("A\x1b[31m"))
    A\x1b[31m
    """
    return _ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _sheet(wb: Any, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[int]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    ws.append(list(header))
    for c in ws[1]:
        c.font = Font(bold=True)
    for row in rows:
        ws.append([None if isinstance(v, float) and v != v else (_printable(v) if isinstance(v, str) else v)
                   for v in row])
    for row in ws.iter_rows(min_row=2):
        for c in row:
            if isinstance(c.value, str):
                c.data_type = "s"  # never a formula, whatever the text starts with
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    ws.freeze_panes = "A2"


def xlsx_bytes(run: RunData) -> bytes:
    """The report tables as an ``.xlsx`` workbook (bytes, for an atomic write).

    Raises
    ------
    ReportDependencyError
        If openpyxl is not installed.
    """
    try:
        from openpyxl import Workbook
    except ImportError as exc:
        raise ReportDependencyError(run.path, f"--xlsx needs openpyxl ({exc}); install it with "
                                    "`pip install \"escalade[reports]\"`") from None
    wb = Workbook()
    wb.remove(wb.active)
    man = run.manifest
    facts = [("Study", run.title), ("Designs", "; ".join(f"{d.name} ({d.kind})" for d in run.designs)),
             ("Target DLT rate", run.target), ("Trials per scenario", run.n_trials), ("Seed", run.seed),
             ("Exact", bool(man.get("exact"))), ("escalade version", str(man.get("escalade_version", ""))),
             ("Run finished", str(man.get("finished", ""))), ("Study SHA-256", str(man.get("study_sha256", ""))),
             ("Command", str(man.get("command") or "")), ("Conclusion", conclusion(run))]
    _sheet(wb, SHEETS[0], ["Item", "Value"], facts, [24, 120])

    scen_rows = []
    for s in run.scenarios:
        for j, d in enumerate(run.doses):
            scen_rows.append((s.name, d.label, dose_display(d), s.p_dlt[j], s.p_response[j], j == s.true_mtd,
                              s.association, s.description))
    _sheet(wb, SHEETS[1], ["Scenario", "Dose", "Dose (amount unit)", "True P(DLT)", "True P(response)",
                           "True MTD", "Association", "Description"], scen_rows, [34, 8, 30, 12, 15, 10, 12, 50])

    oc_rows = []
    for r in run.oc.itertuples(index=False):
        oc_rows.append((r.scenario, r.design, r.metric, metric_spec(r.metric).label, r.dose, float(r.value),
                        None if r.exact else float(r.se), bool(r.exact)))
    _sheet(wb, SHEETS[2], ["Scenario", "Design", "Metric", "Characteristic", "Dose / reason", "Value",
                           "Monte Carlo SE", "Exact"], oc_rows, [34, 12, 24, 42, 20, 12, 14, 8])

    p_rows = [(r.scenario, r.design, r.versus, r.metric, metric_spec(r.metric).label, float(r.difference),
               float(r.se), float(r.se_unpaired)) for r in run.paired.itertuples(index=False)]
    _sheet(wb, SHEETS[3], ["Scenario", "Design", "Versus", "Metric", "Characteristic", "Difference", "Paired SE",
                           "Unpaired SE"], p_rows, [34, 12, 12, 24, 42, 12, 12, 12])

    m_rows: list[tuple[str, str, str]] = []
    for d in run.designs:
        for k, v in d.params.items():
            m_rows.append((f"designs[{d.name}].params", k, json.dumps(v, default=str)))
    for k, v in (man.get("versions") or {}).items():
        m_rows.append(("versions", k, str(v)))
    for k, v in (man.get("platform") or {}).items():
        m_rows.append(("platform", k, str(v)))
    _sheet(wb, SHEETS[4], ["Section", "Key", "Value"], m_rows, [30, 22, 60])

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
