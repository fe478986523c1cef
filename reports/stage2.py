"""The appendix section on the randomised dose-optimisation stage (runs of a study with ``optimisation``).

Reads only the stored run: the ``stage2_*`` rows of ``oc.csv``
(:mod:`escalade.simulations.stage2`) and the study text in the manifest (for
the stage's settings). One methods paragraph, then one table per scenario:
each design's probability of selecting each dose after stage 2 (and none),
the programme's total sample size and DLTs, and, with calendar time, its
total duration, each with its Monte Carlo SE.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from escalade.reports.formatting import fmt_cell, metric_spec
from escalade.reports.load import RunData
from escalade.reports.tables import Cell, Table

__all__ = ["stage2_section", "stage2_methods_text"]

log = logging.getLogger(__name__)


def _optimisation(run: RunData) -> Any:
    text = run.manifest.get("study_text")
    if not text:
        return None
    from escalade.scenarios.errors import EscaladeError
    from escalade.scenarios.load import parse_study

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return parse_study(str(text), source=str(run.manifest.get("study_file") or "study")).optimisation
    except EscaladeError as exc:
        log.warning("the stored study text does not validate (%s); the optimisation stage is described from "
                    "oc.csv only", exc)
        return None


def stage2_methods_text(run: RunData) -> str:
    """The methods paragraph of the two-stage programme."""
    cfg = _optimisation(run)
    settings = cfg.describe() if cfg is not None else "settings as in the study file"
    return ("After dose escalation, every simulated trial that selected a dose went on to a randomised "
            f"dose-optimisation stage: {settings}. Trials that selected no dose stop after escalation. The final "
            "dose is chosen from the randomised stage-2 data alone (stage-1 data only determine the candidates). "
            "Stage-2 patients come from a separate stream of virtual patients, the same for every design of a "
            "scenario (common random numbers), so the escalation's results are unchanged by this stage and designs "
            "are compared on the same patients in both stages; there is no interim analysis."
            + (" Durations add stage-2 accrual at the study's rate and the longer of the DLT window and the "
               "response assessment." if (run.oc["metric"] == "stage2_duration_days").any() else ""))


_SCALARS = ("stage2_total_n", "stage2_total_dlts", "stage2_orr_selected", "stage2_total_duration_days")


def stage2_section(run: RunData) -> dict[str, Any] | None:
    """``{"methods": text, "tables": [Table, ...]}``, or None when the run has no optimisation stage."""
    oc = run.oc
    if not oc["metric"].astype(str).str.startswith("stage2_").any():
        return None
    labels = [d.label for d in run.doses]
    metrics = [m for m in _SCALARS if (oc["metric"] == m).any()]
    columns = ["Design", *[f"{lab} (%)" for lab in labels], "None (%)", *[metric_spec(m).label for m in metrics]]
    tables = []
    for k, s in enumerate(run.scenarios):
        rows = []
        for d in run.designs:
            row = [Cell(d.name, header=True)]
            for dose in [*labels, "none"]:
                c = run.cell(s.name, d.name, "stage2_select_pct", dose)
                row.append(Cell(fmt_cell(c, 1), None if c is None else c.value, None if c is None else c.se))
            for m in metrics:
                c = run.cell(s.name, d.name, m)
                row.append(Cell(fmt_cell(c, metric_spec(m).decimals), None if c is None else c.value,
                                None if c is None else c.se))
            rows.append(row)
        tables.append(Table(id=f"stage2-s{k + 1}", title=f"{s.name}: selection after the optimisation stage",
                            columns=columns, rows=rows, scenario=s.name,
                            note=("Mean (Monte Carlo SE) over the simulated trials, or exact values; the whole two-stage "
                                  "programme.")))
    return {"methods": stage2_methods_text(run), "tables": tables}
