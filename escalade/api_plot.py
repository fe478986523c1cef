"""Figures of ``escalade.Run`` as matplotlib figures (``run.plot.selection()``, ``run.plot.allocation()``).

The panels are drawn by the appendix's own figure code (``escalade.reports.plots``: the same bars,
colours, hatching, dose axis and true-MTD shading), one panel per scenario, and returned as a
``matplotlib.figure.Figure`` (no pyplot state) for a notebook to show or a script to save.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure

from escalade.reports import plots as _p
from escalade.reports.load import RunData, ScenarioInfo
from escalade.scenarios.errors import StudyError, did_you_mean

__all__ = ["by_dose_figure", "METRIC_LABELS"]

#: The characteristics ``by_dose_figure`` draws, with their axis labels.
METRIC_LABELS: dict[str, str] = {"select_pct": "Selected as MTD (%)", "patients": "Patients treated (mean)"}


def _scenarios(run: RunData, scenario: str | Sequence[str] | None) -> list[ScenarioInfo]:
    names = run.scenario_names
    if scenario is None:
        return list(run.scenarios)
    wanted = [scenario] if isinstance(scenario, str) else list(scenario)
    for w in wanted:
        if w not in names:
            raise StudyError(None, "scenario", w, f"is not a scenario of this run{did_you_mean(str(w), names)}; "
                                                  f"choose one of {names}")
    return [s for w in wanted for s in run.scenarios if s.name == w]


def by_dose_figure(run: RunData, metric: str, scenario: str | Sequence[str] | None = None, *,
                   columns: int = 2) -> Figure:
    """One characteristic by dose (``"select_pct"`` with "none", or ``"patients"``), designs side by side.

    Parameters
    ----------
    run
        The run, as the reports layer reads it.
    metric
        A key of ``METRIC_LABELS``.
    scenario
        One scenario's name, several, or ``None`` for all.
    columns
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        Error bars are ±1.96 Monte Carlo standard errors (none for exact values); the true MTD is shaded.
    """
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {sorted(METRIC_LABELS)}; got {metric!r}")
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a whole number >= 1; got {columns!r}")
    chosen = _scenarios(run, scenario)
    ncol = min(columns, len(chosen))
    nrow = math.ceil(len(chosen) / ncol)
    with_none = metric == "select_pct"
    vertical = _p._crowded(run, 8.6 / ncol, extra=int(with_none))
    fig = Figure(figsize=(4.3 * ncol, (3.4 if vertical else 2.9) * nrow + 0.5), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    ticks, xlabel = _p._dose_axis(run, with_none=with_none, vertical=vertical)
    labels = run.dose_labels + (["none"] if with_none else [])
    for ax, s in zip(axes, chosen):
        _p._bars(ax, run, s, metric, labels)
        _p._set_dose_ticks(ax, ticks, vertical)
        _p._mark_mtd(ax, s.true_mtd, ticks)
        _p._style(ax)
        ax.set_title(_p._t(s.name, 50), fontsize=_p._FONT["title"])
        ax.set_xlabel(xlabel, fontsize=_p._FONT["label"])
        ax.set_ylabel(METRIC_LABELS[metric], fontsize=_p._FONT["label"])
        if metric == "select_pct":
            ax.set_ylim(0, 100)
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    handles, labs = axes[0].get_legend_handles_labels()
    fig.legend(handles, labs, loc="outside lower center", ncol=_p._legend_columns(labs, 4.3 * ncol),
               fontsize=_p._FONT["legend"], frameon=False)
    return fig
