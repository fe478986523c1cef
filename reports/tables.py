"""Report tables built from a run: one model for HTML, PDF and Excel.

A :class:`Table` is a list of rows of :class:`Cell`; every numeric cell keeps
its value, standard error and ``exact`` flag next to its text, so the HTML
shows ``59.3 (2.8)`` and the Excel export writes the numbers themselves. Each
numeric cell also carries its ``oc.csv`` key (``scenario``, ``design``,
``metric``, ``dose``), written as ``data-*`` attributes in the HTML, so that a
reader (or a test) can trace every number back to its row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from escalade.reports.formatting import (
    NOT_AVAILABLE,
    dose_display,
    fmt_cell,
    fmt_difference,
    fmt_number,
    metric_spec,
)
from escalade.reports.load import RunData, ScenarioInfo

__all__ = ["Cell", "Table", "KEY_OC_ROWS", "scenario_truth_table", "by_dose_table", "by_dose_combined_table", "key_oc_table",
           "stop_reason_table", "paired_tables", "scenario_tables", "FLAG_Z", "PAGE_CHARS", "split_wide",
           "column_widths", "key_metrics", "cross_scenario_tables"]

#: Differences larger than this many standard errors are flagged.
FLAG_Z: float = 2.0

#: Up to this many designs, the per-dose tables are one table (a column group per metric).
_COMBINE_UP_TO: int = 2

#: Comparisons per paired-differences table (two columns each).
_PAIRS_PER_TABLE: int = 3

#: Width of the printed page in characters of table text, as :func:`column_widths` counts them: A4 portrait
#: less 14 mm margins is 182 mm, about 63 em of the 8.2 pt table font; measured on the shipped study's PDF,
#: a table counted at 99 characters fills 75% of the line, so the line holds about 132; 120 leaves a margin.
#: Tables wider than this are split into parts that repeat their leading columns (:func:`split_wide`); in
#: print, cells may still wrap at spaces as a last resort, so nothing is ever cut.
PAGE_CHARS: int = 120

#: Characters a column costs beyond its text (cell padding and rules).
_COLUMN_PAD: float = 1.6

#: Row-header and text cells wrap; they are counted as at most this many characters wide.
_WRAP_CHARS: int = 22

#: Rows of the per-scenario summary table, in order (then any other summary metric oc.csv holds).
KEY_OC_ROWS: tuple[str, ...] = (
    "correct_selection_pct", "select_none_pct", "overdose_selection_pct", "patients_at_mtd_pct",
    "patients_above_mtd", "overdose60_pct", "overdose80_pct", "dlts", "dlt_rate", "sample_size",
    "responders", "orr_selected", "early_stop_pct", "duration_days", "duration_days_median", "duration_days_p10",
    "duration_days_p90", "suspensions", "suspended_pct",
)


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell.

    ``text`` is what is shown (escaped on output); ``value``/``se``/``exact``
    are the numbers behind it (``None`` for text cells); ``key`` maps data
    attribute names to values; ``css`` names classes such as ``mtd`` or ``flag``.
    """

    text: str
    value: float | None = None
    se: float | None = None
    exact: bool = False
    key: Mapping[str, str] = field(default_factory=dict)
    css: str = ""
    header: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table: ``columns`` are header texts, ``rows`` lists of cells.

    ``groups`` optionally adds a header row above ``columns`` of ``(text, span)``
    pairs whose spans add up to the number of columns. ``keep`` leading columns
    (row labels) are repeated in every part when :func:`split_wide` splits the
    table to fit the page. ``blocks`` optionally cuts the rows into consecutive
    groups of these sizes (one ``<tbody>`` each, kept on one page in print).
    """

    id: str
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    note: str = ""
    scenario: str = ""
    groups: Sequence[tuple[str, int]] = ()
    keep: int = 1
    blocks: Sequence[int] = ()

    def row_blocks(self) -> list[Sequence[Sequence[Cell]]]:
        """The rows cut by ``blocks`` (one block of all rows when ``blocks`` is empty or does not add up)."""
        if not self.blocks or sum(self.blocks) != len(self.rows):
            return [self.rows]
        out, k = [], 0
        for n in self.blocks:
            out.append(self.rows[k:k + n])
            k += n
        return out


def _head(text: str, css: str = "") -> Cell:
    return Cell(text, header=True, css=css)


def _common_unit(run: RunData) -> str:
    """The unit shared by every dose level, or ``""``."""
    units = {d.unit for d in run.doses}
    return units.pop() if len(units) == 1 else ""


def _oc_cell(run: RunData, scenario: str, design: str, metric: str, dose: str = "", css: str = "") -> Cell:
    spec = metric_spec(metric)
    c = run.cell(scenario, design, metric, dose)
    key = {"scenario": scenario, "design": design, "metric": metric, "dose": dose}
    if c is None:
        return Cell("\u2014", key=key, css=(css + " absent").strip())
    return Cell(fmt_cell(c, spec.decimals), None if c.missing else c.value, None if c.missing else c.se,
                c.exact, key, css)


def scenario_truth_table(run: RunData, optimal: Mapping[str, int | None] | None = None) -> Table:
    """True DLT and response probabilities per dose for every scenario.

    The true MTD is shaded in the P(DLT) row; with ``optimal`` (a phase I/II design's optimal
    dose per scenario, :mod:`escalade.reports.optimal`) that dose is marked in the
    P(response) row and listed in an extra column.
    """
    from escalade.reports.optimal import objective_design

    cols = ["Scenario", "Curve"] + [d.label for d in run.doses] + ["True MTD"]
    obj_design = objective_design(run)
    if optimal is not None:
        cols.append(f"Optimal dose ({obj_design.name})" if obj_design is not None else "Optimal dose")
    rows: list[list[Cell]] = []
    for s in run.scenarios:
        mtd_label = "none" if s.true_mtd is None else run.doses[s.true_mtd].label
        obd = None if optimal is None else optimal.get(s.name)
        for curve, probs in (("P(DLT)", s.p_dlt), ("P(response)", s.p_response)):
            row = [_head(s.name if curve == "P(DLT)" else "", "scenario"), _head(curve)]
            for j, p in enumerate(probs):
                css = "mtd" if curve == "P(DLT)" and j == s.true_mtd else ""
                css = "obd" if curve == "P(response)" and j == obd else css
                row.append(Cell(fmt_number(p, 2), p, None, True, {"scenario": s.name, "curve": curve,
                                                                   "dose": run.doses[j].label}, css))
            row.append(Cell(mtd_label if curve == "P(DLT)" else "", css="mtd-label"))
            if optimal is not None:
                text = "" if curve == "P(response)" else ("none" if obd is None else run.doses[obd].label)
                row.append(Cell(text, css="mtd-label"))
            rows.append(row)
    doses = "; ".join(dose_display(d) for d in run.doses)
    note = f"Shaded: {run.mtd_rule}. Doses: {doses}."
    if optimal is not None and obj_design is not None:
        why = next((o.why.split(": ", 1)[-1] for s in run.scenarios for o in s.optimal
                    if o.design == obj_design.name), "")
        note += f" Optimal dose of {obj_design.name} (outlined): {why}."
    return Table("scenarios-table", "True probabilities by dose", cols, rows, note, keep=2)


def by_dose_table(run: RunData, scenario: ScenarioInfo, metric: str, *, with_none: bool = False) -> Table:
    """Rows = doses (and ``none``), columns = designs, for one per-dose metric."""
    return by_dose_combined_table(run, scenario, (metric,), with_none=with_none, table_id=metric.replace("_", "-"),
                                  title=metric_spec(metric).label)


def by_dose_combined_table(run: RunData, scenario: ScenarioInfo, metrics: Sequence[str], *,
                           with_none: bool = True, table_id: str = "by-dose",
                           title: str = "Selection, allocation and DLTs by dose") -> Table:
    """Rows = doses (and ``none``); for each metric a group of columns, one per design.

    The ``none`` row (no dose selected) only has a value for ``select_pct``.
    """
    names = run.design_names
    common = _common_unit(run)
    cols = [f"Dose ({common})" if common else "Dose", "True P(DLT)"] + names * len(metrics)
    groups: list[tuple[str, int]] = [("", 2)] + [(metric_spec(m).label, len(names)) for m in metrics]
    rows = []
    for j, d in enumerate(run.doses):
        css = "mtd" if j == scenario.true_mtd else ""
        row = [_head(dose_display(d, unit=not common), css), Cell(fmt_number(scenario.p_dlt[j], 2), css=css)]
        for m in metrics:
            row += [_oc_cell(run, scenario.name, des, m, d.label, css) for des in names]
        rows.append(row)
    if with_none and "select_pct" in metrics:
        row = [_head("None (no dose selected)"), Cell("")]
        for m in metrics:
            row += [_oc_cell(run, scenario.name, des, m, "none") if m == "select_pct" else Cell("")
                    for des in names]
        rows.append(row)
    return Table(table_id, title, cols, rows, "", scenario.name, groups if len(metrics) > 1 else (), keep=2)


def key_oc_table(run: RunData, scenario: ScenarioInfo) -> Table:
    """Rows = summary characteristics, columns = designs."""
    rows = []
    for m in key_metrics(run):
        if all(run.cell(scenario.name, d, m) is None for d in run.design_names):
            continue  # e.g. calendar-time metrics of a run without accrual times
        spec = metric_spec(m)
        rows.append([_head(spec.label)] + [_oc_cell(run, scenario.name, des, m) for des in run.design_names])
    note = ("True ORR at the selected dose: over the trials that selected a dose. > 60% / > 80% of max N: "
            "trials that treated more than that share of the maximum sample size above the true MTD.")
    return Table("key-oc", "Summary of operating characteristics", ["Characteristic"] + run.design_names,
                 rows, note, scenario.name)


def stop_reason_table(run: RunData, scenario: ScenarioInfo) -> Table:
    """Percentage of trials ending for each reason; ``—`` where a reason never occurred."""
    rows = []
    for reason in run.stop_reasons():
        rows.append([_head(reason)] +
                    [_oc_cell(run, scenario.name, des, "stop_pct", reason) for des in run.design_names])
    return Table("stop-reasons", "How trials ended (%)", ["Reason"] + run.design_names, rows,
                 "\u2014: did not occur in this scenario.", scenario.name)


def paired_tables(run: RunData, scenario: ScenarioInfo) -> list[Table]:
    """Each design minus the first, on the same virtual patients (``paired.csv``).

    At most :data:`_PAIRS_PER_TABLE` comparisons per table, so that the table
    fits the printed page however many designs are compared.
    """
    p = run.paired[(run.paired["scenario"] == scenario.name) & (run.paired["versus"] == run.design_names[0])]
    if p.empty:
        return []
    pairs = list(dict.fromkeys(zip(p["design"], p["versus"])))
    metrics = list(dict.fromkeys(p["metric"]))
    chunks = [pairs[k:k + _PAIRS_PER_TABLE] for k in range(0, len(pairs), _PAIRS_PER_TABLE)]
    out = []
    for c, chunk in enumerate(chunks):
        cols = ["Characteristic"]
        for a, b in chunk:
            cols += [f"{a} \u2212 {b}", "SE unpaired"]
        rows = []
        for m in metrics:
            spec = metric_spec(m)
            row = [_head(spec.label)]
            for a, b in chunk:
                got = run.paired_cell(scenario.name, a, b, m)
                if got is None:
                    row += [Cell(NOT_AVAILABLE), Cell("")]
                    continue
                d, se, su = got
                flag = math.isfinite(d) and se > 0 and abs(d) > FLAG_Z * se
                key = {"scenario": scenario.name, "design": a, "versus": b, "metric": m}
                row.append(Cell(fmt_difference(d, se, spec.decimals) + (" *" if flag else ""), d, se, False, key,
                                "flag" if flag else ""))
                row.append(Cell(fmt_number(su, spec.decimals), su))
            rows.append(row)
        note = (f"Difference (paired SE); * |difference| > {FLAG_Z:g} paired SE. The unpaired SE is shown for "
                "comparison.") if c == len(chunks) - 1 else ""
        title = "Paired differences between designs" + (f" ({c + 1} of {len(chunks)})" if len(chunks) > 1 else "")
        out.append(Table("paired" if len(chunks) == 1 else f"paired-{c + 1}", title, cols, rows, note,
                         scenario.name))
    return out


def scenario_tables(run: RunData, scenario: ScenarioInfo) -> list[Table]:
    """All operating-characteristics tables of one scenario, in report order."""
    per_dose = ("select_pct", "patients", "dlts_at_dose")
    if len(run.designs) <= _COMBINE_UP_TO:
        out = [by_dose_combined_table(run, scenario, per_dose)]
    else:
        out = [by_dose_table(run, scenario, m, with_none=m == "select_pct") for m in per_dose]
    out += [key_oc_table(run, scenario),
            stop_reason_table(run, scenario)]
    out += paired_tables(run, scenario)
    return [part for t in out for part in split_wide(t)]


# --------------------------------------------------------------------------------------------- page width


def column_widths(table: Table) -> list[float]:
    """Estimated printed width of each column, in characters (text that wraps counts as its longest word
    up to :data:`_WRAP_CHARS`; numbers never wrap)."""
    widths = []
    for j, head in enumerate(table.columns):
        w = float(min(max((len(x) for x in str(head).split()), default=0), _WRAP_CHARS))
        for row in table.rows:
            if j >= len(row):
                continue
            c = row[j]
            n = len(c.text)
            if c.header or "text" in c.css.split():
                n = max(min(n, _WRAP_CHARS), max((len(x) for x in c.text.split()), default=0))
            w = max(w, float(n))
        widths.append(w + _COLUMN_PAD)
    return widths


def split_wide(table: Table, budget: int = PAGE_CHARS, *, drop_empty: bool = False) -> list[Table]:
    """``table`` as one or more tables that each fit ``budget`` characters across.

    The first ``table.keep`` columns (row labels) are repeated in every part;
    the other columns are shared out in order, as evenly as the width allows,
    so that no column is ever cut off the printed page. A table that fits is
    returned unchanged; parts are titled "(part k of n)" and only the last
    keeps the note. With ``drop_empty``, a part leaves out the rows whose cells
    outside the kept columns are all blank or a dash (e.g. impossible outcomes).
    """
    widths = column_widths(table)
    keep = max(0, min(table.keep, len(widths)))
    fixed = sum(widths[:keep])
    rest = list(range(keep, len(widths)))
    if fixed + sum(widths[keep:]) <= budget or not rest:
        return [table]
    room = max(budget - fixed, max(widths[keep:]))
    n_parts = 1
    while True:  # fewest parts whose even shares all fit
        size = math.ceil(len(rest) / n_parts)
        chunks = [rest[k:k + size] for k in range(0, len(rest), size)]
        if all(sum(widths[j] for j in ch) <= room for ch in chunks) or size == 1:
            break
        n_parts += 1
    group_of: list[int] = []
    for g, (_, span) in enumerate(table.groups):
        group_of += [g] * span
    parts = []
    for k, ch in enumerate(chunks):
        cols = list(range(keep)) + ch
        groups: list[tuple[str, int]] = []
        if table.groups and len(group_of) == len(table.columns):
            for j in cols:
                g = group_of[j]
                if groups and groups[-1][0] == g:
                    groups[-1] = (g, groups[-1][1] + 1)
                else:
                    groups.append((g, 1))
        rows = [[row[j] for j in cols if j < len(row)] for row in table.rows]
        blocks = table.blocks
        if drop_empty:
            keep_row = [any(c.text not in ("", "\u2014") for c in r[keep:]) for r in rows]
            rows = [r for r, ok in zip(rows, keep_row) if ok]
            blocks = ()
        parts.append(replace(table, blocks=blocks, id=table.id if k == 0 else f"{table.id}-part{k + 1}",
                             title=f"{table.title} (part {k + 1} of {len(chunks)})",
                             columns=[table.columns[j] for j in cols], rows=rows,
                             note=table.note if k == len(chunks) - 1 else "",
                             groups=[(table.groups[g][0], n) for g, n in groups]))
    return parts


# --------------------------------------------------------------------------------------------- across scenarios


def key_metrics(run: RunData) -> list[str]:
    """Summary characteristics (no dose) that ``oc.csv`` holds: :data:`KEY_OC_ROWS` first, in that order,
    then any other summary metric of the run in ``oc.csv`` order (so new characteristics are never lost)."""
    have = list(dict.fromkeys(run.oc.loc[run.oc["dose"].astype(str) == "", "metric"]))
    return [m for m in KEY_OC_ROWS if m in have] + [m for m in have if m not in KEY_OC_ROWS]


def _short_cell(run: RunData, scenario: str, design: str, metric: str, dose: str, decimals: int,
                css: str = "") -> Cell:
    """The value alone (no SE), as get.oc prints it; the key still names the oc.csv row (``data-shown="mean"``
    says that the SE is left out)."""
    c = run.cell(scenario, design, metric, dose)
    key = {"scenario": scenario, "design": design, "metric": metric, "dose": dose, "shown": "mean"}
    if c is None or c.missing:
        return Cell("\u2014", key=key, css=(css + " absent").strip())
    return Cell(fmt_number(c.value, decimals), c.value, c.se, c.exact, key, css)


def cross_scenario_tables(run: RunData) -> list[Table]:
    """The get.oc-style overview: per scenario x design, selection % per dose and none, then patients per
    dose and the mean sample size, with the true P(DLT) row of each scenario (true MTD shaded)."""
    names = run.design_names
    labels = run.dose_labels
    specs = (("overview-selection", "Selection percentage by dose, all scenarios",
              "select_pct", [(lab, lab) for lab in labels] + [("none", "None")], None),
             ("overview-patients", "Patients treated by dose (mean), all scenarios",
              "patients", [(lab, lab) for lab in labels], ("sample_size", "N")))
    out = []
    for tid, title, metric, doses, total in specs:
        cols = ["Scenario", "Design"] + [h for _, h in doses] + ([total[1]] if total else [])
        rows: list[list[Cell]] = []
        for s in run.scenarios:
            mtd = s.true_mtd
            truth = [_head(s.name, "scenario"), _head("True P(DLT)")]
            truth += [Cell(fmt_number(s.p_dlt[j], 2), s.p_dlt[j], None, True,
                           css="mtd" if j == mtd else "") for j in range(len(labels))]
            truth += [Cell("")] * (len(cols) - len(truth))
            rows.append(truth)
            for d in names:
                row = [_head(""), _head(d)]
                for j, (lab, _) in enumerate(doses):
                    row.append(_short_cell(run, s.name, d, metric, lab, 1, "mtd" if j == mtd else ""))
                if total:
                    row.append(_short_cell(run, s.name, d, total[0], "", 1))
                rows.append(row)
        blocks = [1 + len(names)] * len(run.scenarios)
        note = ("Means over the simulated trials (standard errors are in the per-scenario tables of section 4 "
                "and in oc.csv); shaded: the true MTD." if not run.oc["exact"].all() else
                "Computed exactly; shaded: the true MTD.")
        if total:
            note += " N: mean number of patients treated (sample size)."
        else:
            note += " None: the trial selected no dose."
        out.append(Table(tid, title, cols, rows, note, "", (), keep=2, blocks=blocks))
    return out
