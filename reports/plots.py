"""Report figures (matplotlib, Agg, no pyplot state): PNG bytes for embedding.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal
Design"), safe for the common colour-vision deficiencies; each design keeps
one colour in every figure, and bars also differ by hatching so that the
figures survive greyscale printing. Dose axes show the labels and amounts
with units from the manifest. User-supplied text (scenario and design names,
labels, units) is drawn literally: ``$`` is escaped so that matplotlib never
interprets it as mathtext.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from matplotlib.figure import Figure

from escalade.reports.conclusion import has_acceptable_dose
from escalade.reports.formatting import fmt_amount
from escalade.reports.load import RunData, ScenarioInfo

__all__ = ["OKABE_ITO", "design_colours", "FigureImage", "scenario_curves_figure", "selection_allocation_figure",
           "summary_figure", "png_bytes", "DPI"]

log = logging.getLogger(__name__)

#: Okabe-Ito colours, in the order designs get them (black is kept for reference lines).
OKABE_ITO: Final[tuple[str, ...]] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
                                     "#F0E442", "#000000")
_HATCHES: Final[tuple[str, ...]] = ("", "//", "..", "xx", "\\\\", "oo", "++", "--")
DLT_COLOUR: Final[str] = "#D55E00"
RESPONSE_COLOUR: Final[str] = "#0072B2"
MTD_SHADE: Final[str] = "#F0E442"
#: Resolution of embedded PNGs (sharp in print at the widths used, small in HTML).
DPI: Final[int] = 150
_FONT: Final[dict[str, float]] = {"title": 10, "label": 9, "tick": 8, "legend": 8}


@dataclass(frozen=True, slots=True)
class FigureImage:
    """A rendered figure: PNG bytes with an id, a title, a caption and alt text."""

    id: str
    title: str
    caption: str
    png: bytes
    alt: str

    @property
    def data_uri(self) -> str:
        """``data:image/png;base64,...`` for a self-contained ``<img>``."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _t(text: str, width: int | None = None) -> str:
    """User text for matplotlib: ``$`` escaped (no mathtext), optionally wrapped."""
    text = str(text).replace("$", r"\$")
    if width:
        text = "\n".join(textwrap.wrap(text, width, break_long_words=True)) or text
    return text


def design_colours(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour and hatch of each design, by position in the study file.

    Colours cycle through the palette and hatches shift by one at each cycle, so that no two of up to
    64 designs share both colour and hatch.
    """
    nc, nh = len(OKABE_ITO), len(_HATCHES)
    return {n: (OKABE_ITO[i % nc], _HATCHES[(i + i // nc) % nh]) for i, n in enumerate(names)}


def _legend_columns(labels: Sequence[str], width_in: float) -> int:
    """Legend columns that fit ``width_in`` inches (about 0.075 in per character at the legend font, plus
    the handle), so that a legend of many designs wraps onto rows instead of running off the figure."""
    per = 0.075 * max((len(lab) for lab in labels), default=1) + 0.55
    return max(1, min(len(labels), int(width_in // per)))


def png_bytes(fig: Figure) -> bytes:
    """Render ``fig`` as PNG (Agg), without a timestamp or software tag (reproducible bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _dose_axis(run: RunData, *, with_none: bool = False, vertical: bool = False) -> tuple[list[str], str]:
    """Tick labels ("DL1\\n10⁵"; one line "DL1 (10⁵)" with ``vertical``) and the axis label with the common
    unit."""
    units = {d.unit for d in run.doses}
    common = units.pop() if len(units) == 1 else None
    ticks = []
    for d in run.doses:
        amt = fmt_amount(d.amount) + ("" if common is not None or not d.unit else f" {d.unit}")
        ticks.append(_t(f"{d.label} ({amt})" if vertical else f"{d.label}\n{amt}"))
    if with_none:
        ticks.append("none")
    label = f"Dose level ({_t(common)})" if common else "Dose level"
    return ticks, label


def _style(ax) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(labelsize=_FONT["tick"])
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _crowded(run: RunData, panel_in: float, extra: int = 0, font: float = _FONT["tick"]) -> bool:
    """True when horizontal two-line dose ticks (``font`` points) would overprint in a panel ``panel_in``
    inches wide (about 0.45 in of it goes to the y axis; a character is about 0.6 em wide)."""
    n = len(run.doses) + extra
    chars = max(max(len(d.label), len(fmt_amount(d.amount))) for d in run.doses)
    return n * (chars * 0.6 * font / 72 + 0.06) > 0.9 * (panel_in - 0.45)


def _set_dose_ticks(ax, ticks: Sequence[str], vertical: bool) -> None:
    ax.set_xticks(np.arange(len(ticks)), ticks)
    if vertical:
        ax.tick_params(axis="x", labelrotation=90)


def _mark_mtd(ax, j: int | None, ticks: Sequence[str]) -> None:
    if j is None:  # no tolerable dose: nothing to mark
        return
    ax.axvspan(j - 0.45, j + 0.45, color=MTD_SHADE, alpha=0.35, zorder=0, linewidth=0)
    for k, lab in enumerate(ax.get_xticklabels()):
        if k == j:
            lab.set_fontweight("bold")


def scenario_curves_figure(run: RunData, optimal: Mapping[str, int | None] | None = None) -> FigureImage:
    """True P(DLT) and P(response) by dose, one panel per scenario, true MTD (and an optimal dose) marked."""
    ns = len(run.scenarios)
    ncol = min(4, ns)
    nrow = math.ceil(ns / ncol)
    vertical = _crowded(run, 2.6, font=_FONT["tick"] - 1)
    fig = Figure(figsize=(2.6 * ncol, (3.0 if vertical else 2.5) * nrow + 0.6), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
    ticks, xlabel = _dose_axis(run, vertical=vertical)
    x = np.arange(len(run.doses))
    for k, ax in enumerate(axes.flat):
        if k >= ns:
            ax.set_visible(False)
            continue
        s = run.scenarios[k]
        ax.plot(x, s.p_dlt, marker="o", color=DLT_COLOUR, linewidth=1.6, markersize=4, label="P(DLT)")
        if not all(math.isnan(v) for v in s.p_response):
            ax.plot(x, s.p_response, marker="s", linestyle="--", color=RESPONSE_COLOUR, linewidth=1.4,
                    markersize=4, label="P(response)")
        ax.axhline(run.target, color="#000000", linestyle=":", linewidth=1, label=f"target {run.target:g}")
        if s.true_mtd is not None:
            ax.plot([s.true_mtd], [s.p_dlt[s.true_mtd]], marker="*", markersize=13, color="#000000",
                    linestyle="none", label="true MTD")
        obd = None if optimal is None else optimal.get(s.name)
        if obd is not None:
            ax.plot([obd], [s.p_response[obd]], marker="D", markersize=8, markerfacecolor="none",
                    markeredgecolor="#000000", markeredgewidth=1.5, linestyle="none", label="optimal dose")
        ax.set_xticks(x, ticks, fontsize=_FONT["tick"] - 1)
        if vertical:
            ax.tick_params(axis="x", labelrotation=90)
        _mark_mtd(ax, s.true_mtd, ticks)
        ax.set_ylim(0, 1)
        if not has_acceptable_dose(s, run.target):
            ax.text(0.03, 0.97, "every dose above target", transform=ax.transAxes, ha="left", va="top",
                    fontsize=_FONT["tick"] - 1, style="italic")
        ax.set_title(_t(s.name, 34), fontsize=_FONT["title"])
        _style(ax)
        if k % ncol == 0:
            ax.set_ylabel("Probability", fontsize=_FONT["label"])
    handles, labels = [], []
    for ax in axes.flat:  # the optimal-dose marker may be absent from the first panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside upper center", ncol=_legend_columns(labels, 2.6 * ncol),
               fontsize=_FONT["legend"], frameon=False)
    fig.supxlabel(xlabel, fontsize=_FONT["label"])
    caption = (f"True probability of a DLT (solid) and of response (dashed) at each dose; dotted line: target "
               f"DLT rate {run.target:g}; star and shading: the true MTD.")
    if optimal is not None:
        caption += " Open diamond: the optimal dose by the first phase I/II design's own objective."
    return FigureImage("fig-scenarios", "True dose-toxicity and dose-response curves", caption, png_bytes(fig),
                       "True DLT and response probabilities by dose for each scenario")


def _bars(ax, run: RunData, scenario: ScenarioInfo, metric: str, doses: Sequence[str], scale: float = 1.96
          ) -> None:
    names = run.design_names
    colours = design_colours(names)
    width = 0.8 / len(names)
    x = np.arange(len(doses))
    for i, d in enumerate(names):
        vals, errs = [], []
        for lab in doses:
            c = run.cell(scenario.name, d, metric, lab)
            vals.append(0.0 if c is None or c.missing else c.value)
            errs.append(0.0 if c is None or c.missing or c.exact else scale * c.se)
        col, hatch = colours[d]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, yerr=errs, color=col, hatch=hatch, edgecolor="white",
               linewidth=0.4, label=_t(d), error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})


def selection_allocation_figure(run: RunData, scenario: ScenarioInfo, index: int) -> FigureImage:
    """Selection % (with "none") and mean patients per dose, designs side by side, for one scenario."""
    # many doses or designs: full-width panels, one above the other (bars stay wide enough to read)
    stacked = _crowded(run, 4.0, extra=1) or len(run.designs) * (len(run.doses) + 1) > 48
    vertical = _crowded(run, 8.0, extra=1) if stacked else False
    if stacked:
        fig = Figure(figsize=(8.6, 6.4 if vertical else 5.6), layout="constrained")
        ax1, ax2 = fig.subplots(2, 1)
    else:
        fig = Figure(figsize=(8.6, 3.1), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[len(run.doses) + 1, len(run.doses)])
    ticks, xlabel = _dose_axis(run, with_none=True, vertical=vertical)
    labels = run.dose_labels
    _bars(ax1, run, scenario, "select_pct", labels + ["none"])
    _set_dose_ticks(ax1, ticks, vertical)
    ax1.set_ylabel("Selected as MTD (%)", fontsize=_FONT["label"])
    ax1.set_ylim(0, 100)
    _mark_mtd(ax1, scenario.true_mtd, ticks)
    _bars(ax2, run, scenario, "patients", labels)
    _set_dose_ticks(ax2, ticks[:-1], vertical)
    ax2.set_ylabel("Patients treated (mean)", fontsize=_FONT["label"])
    _mark_mtd(ax2, scenario.true_mtd, ticks)
    for ax in (ax1, ax2):
        _style(ax)
        ax.set_xlabel(xlabel, fontsize=_FONT["label"])
    handles, labs = ax2.get_legend_handles_labels()
    fig.legend(handles, labs, loc="outside lower center", ncol=_legend_columns(labs, 8.6),
               fontsize=_FONT["legend"], frameon=False)
    fig.suptitle(_t(scenario.name, 60), fontsize=_FONT["title"], x=0.02, ha="left")
    err = "" if run.oc["exact"].all() else " Error bars: \u00b11.96 Monte Carlo standard errors."
    caption = f"Selection probability (left) and allocation (right) by dose; shaded: the true MTD.{err}"
    return FigureImage(f"fig-scenario-{index + 1}", scenario.name, caption, png_bytes(fig),
                       f"Selection and allocation by dose and design for scenario {index + 1}")


def summary_figure(run: RunData) -> FigureImage:
    """Across scenarios: correct selection, selection above the MTD and patients above the MTD, per design."""
    names = run.design_names
    colours = design_colours(names)
    scen = list(run.scenarios)
    ns = len(scen)
    fig = Figure(figsize=(8.6, 0.3 * ns * max(1.0, 0.35 * len(names)) + 1.2), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    panels = (("correct_selection_pct", "Correct selection (%)", 1.0),
              ("overdose_selection_pct", "Selected above the MTD (%)", 1.0),
              ("patients_above_mtd", "Patients above the MTD (mean)", 1.0))
    y = np.arange(ns)[::-1]
    height = 0.8 / len(names)
    ylabels = []
    for s in scen:
        name = _t(s.name, 26)
        ylabels.append(name if has_acceptable_dose(s, run.target) else name + "\n[correct = no dose]")
    for ax, (metric, title, _) in zip(axes, panels):
        for i, d in enumerate(names):
            vals, errs = [], []
            for s in scen:
                c = run.cell(s.name, d, metric)  # correct selection is "no dose" where no dose is tolerable
                vals.append(0.0 if c is None or c.missing else c.value)
                errs.append(0.0 if c is None or c.missing or c.exact else 1.96 * c.se)
            col, hatch = colours[d]
            ax.barh(y + 0.4 - height * (i + 0.5), vals, height, xerr=errs, color=col, hatch=hatch,
                    edgecolor="white", linewidth=0.4, label=_t(d),
                    error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})
        ax.set_title(title, fontsize=_FONT["title"])
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        ax.tick_params(labelsize=_FONT["tick"])
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        if metric.endswith("_pct"):
            ax.set_xlim(0, min(100.0, 1.15 * max(ax.get_xlim()[1], 1.0)))
    axes[0].set_yticks(y, ylabels)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=_legend_columns(labels, 8.6),
               fontsize=_FONT["legend"], frameon=False)
    err = "" if run.oc["exact"].all() else " Error bars: \u00b11.96 Monte Carlo standard errors."
    caption = ("Probability of correct selection and of overdosing per design across scenarios. Where every "
               "dose is above the target, the correct decision is to select no dose, and the first panel "
               f"shows the % of trials that selected none.{err}")
    return FigureImage("fig-summary", "Correct selection and overdosing across scenarios", caption,
                       png_bytes(fig), "Correct selection and overdosing by design across scenarios")
