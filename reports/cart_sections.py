"""Appendix sections of the CAR-T patient: "Safety profile" and "Efficacy depth".

Read from ``oc.csv`` only (reports never run a design): the rows written by
:mod:`escalade.simulations.oc_cart` for scenarios with the CAR-T sections.

* **Safety profile**, per such scenario: a figure of stacked bars, one panel per
  adverse-event type, one bar per dose and design, stacked by grade 1-5 (% of the
  patients treated at the dose); and a table of grade >= 3 incidence per dose
  and design with its Monte Carlo SE, and deaths.
* **Efficacy depth**: per design, the true ORR, MRD-negative CR rate at each
  assessment, 12-month EFS and OS, median EFS and expansion at the selected
  dose, and the % of trials whose selection maximises 12-month EFS; a figure of
  the MRD-negative CR rate at the selected dose over the assessments.
"""

from __future__ import annotations

import re
from typing import Any, Final

import numpy as np
from matplotlib.figure import Figure

from escalade.reports.load import RunData, ScenarioInfo
from escalade.reports.plots import _FONT, FigureImage, _t, design_colours, png_bytes
from escalade.reports.tables import Cell, Table, _head, _oc_cell, split_wide

__all__ = ["cart_scenarios", "safety_context", "efficacy_context", "GRADE_COLOURS"]

#: Grade 1..5 colours (light to dark; grade 5, death, black).
GRADE_COLOURS: Final[tuple[str, ...]] = ("#FDE0C5", "#FAB78A", "#F08A4B", "#C0392B", "#111111")
_G3: Final = re.compile(r"^(?P<type>[A-Za-z_][A-Za-z0-9_]*)_g3plus_pct$")
_EFFICACY: Final[tuple[tuple[str, str, int], ...]] = (
    ("orr_selected", "True ORR at the selected dose", 3),
    ("efs12_selected", "True 12-month EFS at the selected dose", 3),
    ("os12_selected", "True 12-month OS at the selected dose", 3),
    ("median_efs_selected", "True median EFS at the selected dose (months, capped at 120)", 1),
    ("expansion_peak_selected", "True median CAR-T peak at the selected dose", 1),
    ("expansion_auc_selected", "True median CAR-T AUC0-28 at the selected dose", 1),
    ("efs_best_selection_pct", "Selected dose maximises 12-month EFS (%)", 1),
)


def _types(run: RunData, scenario: str) -> list[str]:
    rows = run.oc[(run.oc["scenario"] == scenario) & (run.oc["dose"].astype(str) == "")]
    return [m.group("type") for m in (_G3.match(x) for x in dict.fromkeys(rows["metric"])) if m]


def cart_scenarios(run: RunData) -> list[tuple[ScenarioInfo, list[str]]]:
    """The scenarios with CAR-T rows in oc.csv, with their AE types (in oc.csv order)."""
    return [(s, t) for s in run.scenarios if (t := _types(run, s.name))]


def _value(run: RunData, s: str, d: str, metric: str, dose: str = "") -> float:
    c = run.cell(s, d, metric, dose)
    return 0.0 if c is None or c.missing else float(c.value)


def _grade_figure(run: RunData, s: ScenarioInfo, types: list[str], k: int) -> FigureImage:
    names = run.design_names
    doses = [d.label for d in run.doses]
    nd, nx = len(doses), len(names)
    fig = Figure(figsize=(8.6, 2.3 * len(types) + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(types), 1, sharex=True))
    width = 0.8 / nx
    x = np.arange(nd)
    for ax, t in zip(axes, types):
        for i, d in enumerate(names):
            pos = x - 0.4 + width * (i + 0.5)
            bottom = np.zeros(nd)
            for g in range(1, 6):
                vals = np.array([_value(run, s.name, d, f"{t}_g{g}_pct", lab) for lab in doses])
                ax.bar(pos, vals, width * 0.92, bottom=bottom, color=GRADE_COLOURS[g - 1], edgecolor="white",
                       linewidth=0.3, label=f"grade {g}" if i == 0 else None)
                bottom += vals
            for xp in pos:
                ax.text(xp, -1.5, str(i + 1), ha="center", va="top", fontsize=5.5, color="#555555")
        ax.set_title(f"{t.upper()} by grade (% of patients treated at the dose)", fontsize=_FONT["title"])
        ax.set_ylim(-8, 100)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        ax.tick_params(labelsize=_FONT["tick"])
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    axes[-1].set_xticks(x, [_t(lab) for lab in doses])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=_FONT["legend"], frameon=False)
    key = "; ".join(f"{i + 1} = {_t(d)}" for i, d in enumerate(names))
    caption = (f"Scenario \u201c{s.name}\u201d: for each dose, one bar per design (numbered under the bars: {key}), "
               "stacked by grade: the mean % of the patients treated at the dose who had that grade (grade 5 = "
               "death). Pooled over the simulated trials; Monte Carlo SEs of the grade >= 3 rates are in the "
               "table beside.")
    return FigureImage(f"fig-safety-{k + 1}", f"Safety profile: {s.name}", caption, png_bytes(fig),
                       f"Stacked adverse-event grades by dose and design, {s.name}")


def _safety_tables(run: RunData, s: ScenarioInfo, types: list[str], k: int) -> list[Table]:
    """One table per AE type (grade >= 3 %) and one of deaths: rows = doses and the whole trial."""
    names = run.design_names
    out = []
    for m, title in [(f"{t}_g3plus_pct", f"{t.upper()} grade >= 3 (% of patients)") for t in types] + [
            ("deaths", "Deaths (grade 5 events, mean per trial)")]:
        rows = []
        for j, d in enumerate(run.doses):
            css = "mtd" if j == s.true_mtd else ""
            rows.append([_head(d.label, css)] + [_oc_cell(run, s.name, des, m, d.label, css) for des in names])
        rows.append([_head("Whole trial")] + [_oc_cell(run, s.name, des, m) for des in names])
        if m == "deaths":
            rows.append([_head("Any death (% of trials)")] + [_oc_cell(run, s.name, des, "any_death_pct")
                                                               for des in names])
        note = ("% of the patients treated at the dose (whole trial: of all patients)" if m != "deaths" else
                "Mean number per trial") + "; Monte Carlo SE in brackets. The true MTD's row is shaded."
        out.append(Table(f"safety-{k + 1}-{m.replace('_', '-')}", f"{title}: {s.name}", ["Dose"] + names, rows,
                         note, s.name))
    return out


def safety_context(run: RunData) -> list[dict[str, Any]]:
    """Per CAR-T scenario: ``{"name", "figure", "tables"}`` for the "Safety profile" section."""
    out = []
    for k, (s, types) in enumerate(cart_scenarios(run)):
        out.append({"name": s.name, "figure": _grade_figure(run, s, types, k),
                    "tables": [p for t in _safety_tables(run, s, types, k) for p in split_wide(t)]})
    return out


def _mrd_metrics(run: RunData, scenario: str) -> list[str]:
    rows = run.oc[(run.oc["scenario"] == scenario) & (run.oc["dose"].astype(str) == "")]
    return [m for m in dict.fromkeys(rows["metric"]) if m.startswith("mrd_neg_cr_") and m.endswith("_selected")]


def _efficacy_table(run: RunData, s: ScenarioInfo, types: list[str], k: int) -> Table:
    names = run.design_names
    mrd = _mrd_metrics(run, s.name)
    specs = [_EFFICACY[0]] + [(m, f"True MRD-negative CR rate at {m[11:-9]}, selected dose", 3) for m in mrd] \
        + list(_EFFICACY[1:]) + [(f"{t}_g3plus_selected", f"True {t.upper()} grade >= 3 rate at the selected dose", 3)
                                 for t in types]
    rows = []
    for m, label, _dec in specs:
        if all(run.cell(s.name, d, m) is None for d in names):
            continue
        rows.append([_head(label)] + [_oc_cell(run, s.name, d, m) for d in names])
    note = ("True values of the scenario at each trial's selected dose, averaged over the trials that selected "
            "one (Monte Carlo SE in brackets); the last % is over all trials.")
    return Table(f"efficacy-{k + 1}", f"Efficacy depth at the selected dose: {s.name}", ["Characteristic"] + names,
                 rows, note, s.name)


def _mrd_figure(run: RunData, s: ScenarioInfo, k: int) -> FigureImage | None:
    mrd = _mrd_metrics(run, s.name)
    if not mrd:
        return None
    names = run.design_names
    colours = design_colours(names)
    fig = Figure(figsize=(6.0, 3.0), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(mrd))
    for d in names:
        cells = [run.cell(s.name, d, m) for m in mrd]
        v = [np.nan if c is None or c.missing else c.value for c in cells]
        e = [0.0 if c is None or c.missing or c.exact else 1.96 * c.se for c in cells]
        ax.errorbar(x, v, yerr=e, marker="o", markersize=3, linewidth=1.0, capsize=2, color=colours[d][0],
                    label=_t(d))
    ax.set_xticks(x, [m[11:-9] for m in mrd])
    ax.set_ylabel("MRD-negative CR rate", fontsize=_FONT["label"])
    ax.tick_params(labelsize=_FONT["tick"])
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.legend(fontsize=_FONT["legend"], frameon=False, ncol=2)
    caption = ("True MRD-negative CR rate at the selected dose at each assessment, averaged over the trials that "
               "selected a dose; error bars \u00b11.96 Monte Carlo SEs.")
    return FigureImage(f"fig-mrd-{k + 1}", f"MRD-negative CR over time: {s.name}", caption, png_bytes(fig),
                       f"MRD-negative CR rate at the selected dose by assessment, {s.name}")


def efficacy_context(run: RunData) -> list[dict[str, Any]]:
    """Per CAR-T scenario: ``{"name", "figure", "tables"}`` for the "Efficacy depth" section."""
    out = []
    for k, (s, types) in enumerate(cart_scenarios(run)):
        out.append({"name": s.name, "figure": _mrd_figure(run, s, k), "tables": split_wide(_efficacy_table(run, s, types, k))})
    return out
