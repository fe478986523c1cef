"""How numbers, doses and metrics are written in reports (one convention everywhere).

Percentages and means are written with one decimal, rates (proportions) with
three and durations in days with none, each followed by its Monte Carlo standard error in brackets with the
same number of decimals, or by ``(exact)`` for exactly enumerated values:
``59.3 (2.8)``, ``0.521 (0.006)``, ``61.0 (exact)``. A value that is not
defined (ORR at the selected dose when no trial selected one) is ``n/a``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from escalade.reports.load import DoseInfo, OcCell

__all__ = ["MetricSpec", "METRICS", "metric_spec", "fmt_number", "fmt_cell", "fmt_difference",
           "fmt_amount", "dose_display", "dose_phrase", "NOT_AVAILABLE", "text_table", "TERMINAL_WIDTH"]

#: Terminal tables are split into blocks of columns that fit this many characters.
TERMINAL_WIDTH: Final[int] = 120

NOT_AVAILABLE: Final[str] = "n/a"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Display name and precision of an operating characteristic of ``oc.csv``."""

    name: str
    label: str
    decimals: int
    unit: str = ""
    higher_is_better: bool | None = None


#: Every metric ``simulations/oc.py`` writes, in report order.
METRICS: Final[dict[str, MetricSpec]] = {m.name: m for m in (
    MetricSpec("select_pct", "Selected as MTD (%)", 1, "%"),
    MetricSpec("patients", "Patients treated (mean)", 1),
    MetricSpec("patients_pct", "Patients treated (% of all)", 1, "%"),
    MetricSpec("dlts_at_dose", "DLTs (mean)", 1),
    MetricSpec("responders_at_dose", "Responders (mean)", 1),
    MetricSpec("correct_selection_pct", "Correct selection of the true MTD (%)", 1, "%", True),
    MetricSpec("select_none_pct", "No dose selected (%)", 1, "%"),
    MetricSpec("overdose_selection_pct", "Dose above the true MTD selected (%)", 1, "%", False),
    MetricSpec("patients_at_mtd_pct", "Patients treated at the true MTD (%)", 1, "%", True),
    MetricSpec("patients_above_mtd", "Patients treated above the true MTD (mean)", 1, "", False),
    MetricSpec("overdose60_pct", "Trials with > 60% of max N above the MTD (%)", 1, "%", False),
    MetricSpec("overdose80_pct", "Trials with > 80% of max N above the MTD (%)", 1, "%", False),
    MetricSpec("dlts", "DLTs (mean)", 1, "", False),
    MetricSpec("dlt_rate", "DLT rate (DLTs / patients)", 3),
    MetricSpec("sample_size", "Sample size (mean)", 1),
    MetricSpec("responders", "Responders (mean)", 1, "", True),
    MetricSpec("orr_selected", "True ORR at the selected dose", 3, "", True),
    MetricSpec("early_stop_pct", "Stopped early (%)", 1, "%"),
    MetricSpec("duration_days", "Trial duration, mean (days)", 0),
    MetricSpec("duration_days_median", "Trial duration, median (days)", 0),
    MetricSpec("duration_days_p10", "Trial duration, 10th percentile (days)", 0),
    MetricSpec("duration_days_p90", "Trial duration, 90th percentile (days)", 0),
    MetricSpec("suspensions", "Patients waiting for a dose (mean)", 1),
    MetricSpec("suspended_pct", "Trials with accrual suspended (%)", 1, "%"),
    MetricSpec("stop_pct", "Stopped: reason (%)", 1, "%"),
    # the randomised optimisation stage (escalade.simulations.stage2): the whole two-stage programme
    MetricSpec("stage2_select_pct", "Selected after stage 2 (%)", 1, "%"),
    MetricSpec("stage2_run_pct", "Stage 2: trials that went on to it (%)", 1, "%"),
    MetricSpec("stage2_arms", "Stage 2: arms opened (mean)", 2),
    MetricSpec("stage2_patients", "Stage 2: patients (mean)", 1),
    MetricSpec("stage2_dlts", "Stage 2: DLTs (mean)", 1, "", False),
    MetricSpec("stage2_responders", "Stage 2: responders (mean)", 1, "", True),
    MetricSpec("stage2_total_n", "Both stages: patients (mean)", 1),
    MetricSpec("stage2_total_dlts", "Both stages: DLTs (mean)", 1, "", False),
    MetricSpec("stage2_select_true_mtd_pct", "After stage 2: true MTD selected (%)", 1, "%"),
    MetricSpec("stage2_orr_selected", "After stage 2: true ORR at the selected dose", 3, "", True),
    MetricSpec("stage2_duration_days", "Stage 2: duration, mean (days)", 0),
    MetricSpec("stage2_total_duration_days", "Both stages: duration, mean (days)", 0),
    MetricSpec("backfill_patients", "Backfill patients (mean)", 1),
    MetricSpec("backfill_escalation_patients", "Escalation patients (mean)", 1),
    MetricSpec("backfill_total", "Backfill patients per trial (mean)", 1),
    MetricSpec("backfill_pct", "Backfill patients (% of all)", 1, "%"),
)}


def _cart_spec(metric: str) -> MetricSpec | None:
    """Specs of the CAR-T patient's metrics (escalade.simulations.oc_cart), whose names carry AE types."""
    if metric == "deaths":
        return MetricSpec(metric, "Deaths (grade 5 events, mean)", 2, "", False)
    if metric == "any_death_pct":
        return MetricSpec(metric, "Trials with a death (%)", 1, "%", False)
    if metric == "infused_below_pct":
        return MetricSpec(metric, "Infused below the assigned dose (% of patients)", 1, "%")
    if metric.endswith("_pct") and "_g" in metric and not metric.endswith("_selection_pct"):
        kind, grade = metric[: -len("_pct")].rsplit("_g", 1)
        return MetricSpec(metric, f"{kind.upper()} grade {grade.replace('3plus', '>= 3')} (% of patients)", 1, "%")
    if metric.endswith("_patients") and "_g" in metric:
        kind, grade = metric[: -len("_patients")].rsplit("_g", 1)
        return MetricSpec(metric, f"{kind.upper()} grade {grade.replace('3plus', '>= 3')} (mean patients)", 1)
    named = {"efs12_selected": ("True 12-month EFS at the selected dose", 3),
             "os12_selected": ("True 12-month OS at the selected dose", 3),
             "median_efs_selected": ("True median EFS at the selected dose (months)", 1),
             "expansion_peak_selected": ("True median CAR-T peak at the selected dose", 1),
             "expansion_auc_selected": ("True median CAR-T AUC0-28 at the selected dose", 1),
             "efs_best_selection_pct": ("Selected dose maximises 12-month EFS (%)", 1)}
    if metric in named:
        label, dec = named[metric]
        return MetricSpec(metric, label, dec, "%" if metric.endswith("_pct") else "")
    if metric.startswith("mrd_neg_cr_") and metric.endswith("_selected"):
        at = metric[len("mrd_neg_cr_"): -len("_selected")]
        return MetricSpec(metric, f"True MRD-negative CR rate at {at}, selected dose", 3)
    if metric.endswith("_g3plus_selected"):
        return MetricSpec(metric, f"True {metric[: -len('_g3plus_selected')].upper()} grade >= 3 rate at the "
                                  "selected dose", 3)
    if metric.endswith("_selected"):
        base = metric[: -len("_selected")]
        if base.startswith(("median_efs", "expansion")):
            return MetricSpec(metric, f"True {base.replace('_', ' ')} at the selected dose", 1)
        return MetricSpec(metric, f"True {base.replace('_', ' ')} at the selected dose", 3)
    return None


def metric_spec(metric: str) -> MetricSpec:
    """The display spec of ``metric``; unknown metrics get their own name (``_pct``: "(%)", 1 decimal;
    others 3 decimals), so that a characteristic added to oc.csv is shown, never dropped."""
    if metric in METRICS:
        return METRICS[metric]
    cart = _cart_spec(metric)
    if cart is not None:
        return cart
    if metric.endswith("_pct"):
        text = metric[:-4].replace("_", " ")
        return MetricSpec(metric, f"{text[:1].upper()}{text[1:]} (%)", 1, "%")
    text = metric.replace("_", " ")
    return MetricSpec(metric, text[:1].upper() + text[1:], 3)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, keep: int = 1,
               width: int = TERMINAL_WIDTH, gap: int = 2) -> str:
    """A plain-text table, first column left-aligned and the others right-aligned, split into blocks of
    columns that each fit ``width`` characters (the first ``keep`` columns repeated in each block).

    Examples
    --------
    >>> print(text_table(["design", "a", "b"], [["3+3", "1.0", "22.5"]], width=40))
    design    a     b
    3+3     1.0  22.5
    """
    ncol = len(header)
    w = [max([len(str(header[j]))] + [len(str(r[j])) for r in rows if j < len(r)]) for j in range(ncol)]
    fixed = sum(w[:keep]) + gap * keep
    blocks: list[list[int]] = []
    for j in range(keep, ncol):
        if blocks and fixed + sum(w[k] + gap for k in blocks[-1]) + w[j] <= width:
            blocks[-1].append(j)
        else:
            blocks.append([j])
    blocks = blocks or [[]]

    def line(cells: Sequence[str], cols: Sequence[int]) -> str:
        parts = [f"{str(cells[j]) if j < len(cells) else '':<{w[j]}}" if j < keep else
                 f"{str(cells[j]) if j < len(cells) else '':>{w[j]}}" for j in cols]
        return (" " * gap).join(parts).rstrip()

    out = []
    for b, cols in enumerate(blocks):
        cols = list(range(keep)) + cols
        if b:
            out.append("")
        out.append(line(header, cols))
        out += [line(r, cols) for r in rows]
    return "\n".join(out)


def fmt_number(value: float, decimals: int, *, sign: bool = False) -> str:
    """``value`` rounded to ``decimals`` (``n/a`` when not finite; ``-0.0`` written ``0.0``)."""
    if value is None or not math.isfinite(value):
        return NOT_AVAILABLE
    text = f"{value:+.{decimals}f}" if sign else f"{value:.{decimals}f}"
    if float(text) == 0.0:
        text = f"{0.0:.{decimals}f}"
        if sign:
            text = "\u00b1" + text
    return text


def fmt_cell(cell: OcCell | None, decimals: int) -> str:
    """``value (se)``, ``value (exact)`` or ``n/a``.

    Examples
    --------
    >>> fmt_cell(OcCell(59.333, 2.8407, False), 1)
    '59.3 (2.8)'
    >>> fmt_cell(OcCell(0.5, 0.0, True), 3)
    '0.500 (exact)'
    """
    if cell is None or cell.missing:
        return NOT_AVAILABLE
    tail = "exact" if cell.exact else fmt_number(cell.se, decimals)
    return f"{fmt_number(cell.value, decimals)} ({tail})"


def fmt_difference(diff: float, se: float, decimals: int, *, exact: bool = False) -> str:
    """A signed difference with its SE: ``+30.0 (2.9)``."""
    if not math.isfinite(diff):
        return NOT_AVAILABLE
    tail = "exact" if exact else fmt_number(se, decimals)
    return f"{fmt_number(diff, decimals, sign=True)} ({tail})"


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def fmt_amount(amount: float) -> str:
    """A dose amount: plain below 10^4, else ``a×10^k`` with superscripts (``3×10⁶``).

    Examples
    --------
    >>> fmt_amount(3.0e6), fmt_amount(25), fmt_amount(0.5)
    ('3×10⁶', '25', '0.5')
    """
    if amount == 0 or 1e-3 <= abs(amount) < 1e4:
        return f"{amount:g}"
    exp = int(math.floor(math.log10(abs(amount))))
    mant = amount / 10 ** exp
    m = f"{mant:.3g}"
    if m == "10":
        m, exp = "1", exp + 1
    head = "" if m == "1" else f"{m}\u00d7"
    return f"{head}10{str(exp).translate(_SUPERSCRIPT)}"


def dose_display(dose: DoseInfo, *, unit: bool = True) -> str:
    """``DL3 (1×10⁶ CAR+ T cells/kg)``; without ``unit``: ``DL3 (1×10⁶)``."""
    amt = fmt_amount(dose.amount)
    if unit and dose.unit:
        return f"{dose.label} ({amt} {dose.unit})"
    return f"{dose.label} ({amt})"


def dose_phrase(dose: DoseInfo) -> str:
    """``DL3, 10⁶ CAR+ T cells/kg`` (for use inside brackets in running text)."""
    amt = fmt_amount(dose.amount)
    return f"{dose.label}, {amt} {dose.unit}".rstrip() if dose.unit else f"{dose.label}, {amt}"
