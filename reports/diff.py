"""Compare two runs of an amended protocol: what changed in the inputs, and how each characteristic moved.

For every scenario and design present in both runs (matched by name) and every
characteristic of ``oc.csv``, the change ``B - A`` has the standard error

.. math::

    \\operatorname{se}(B - A) = \\sqrt{\\operatorname{se}_A^2 + \\operatorname{se}_B^2},

exact when the runs are independent, which they are when their seeds differ.
With the same seed, the trial numbers and chunks of both runs draw the same
virtual patients (common random numbers); their results are then positively
correlated and this standard error is conservative (too large). Exactly
enumerated values have no Monte Carlo error, so any change in them is real.
A change is flagged when it exceeds two standard errors (or, with both values
exact, when it is not zero).
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from escalade.reports.formatting import fmt_difference, fmt_number, metric_spec
from escalade.reports.load import RunData
from escalade.reports.tables import FLAG_Z, KEY_OC_ROWS, Cell, Table

__all__ = ["InputChange", "RunDiff", "diff_runs", "format_diff", "diff_context", "diff_tables", "input_changes"]

_EXACT_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class InputChange:
    """One input that differs between the runs: where, and its value before and after."""

    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True, eq=False)
class RunDiff:
    """The comparison of run ``a`` (before) with run ``b`` (after the amendment).

    Attributes
    ----------
    inputs
        Every input that changed.
    changes
        One row per scenario x design x metric x dose present in both runs:
        ``value_a, se_a, exact_a, value_b, se_b, exact_b, change, se_change, z, flagged, truth_changed``.
    independent
        True when the seeds differ (then ``se_change`` is exact, not conservative).
    scenarios_only_a, scenarios_only_b, designs_only_a, designs_only_b
        Names compared in one run only.
    """

    a: RunData
    b: RunData
    inputs: tuple[InputChange, ...]
    changes: pd.DataFrame
    independent: bool
    scenarios_only_a: tuple[str, ...] = ()
    scenarios_only_b: tuple[str, ...] = ()
    designs_only_a: tuple[str, ...] = ()
    designs_only_b: tuple[str, ...] = ()
    truth_changed: frozenset[str] = field(default_factory=frozenset)

    @property
    def n_flagged(self) -> int:
        return int(self.changes["flagged"].sum())

    def se_note(self) -> str:
        """How to read the standard errors of the changes, given the seeds."""
        if self.independent:
            return (f"The runs use different seeds ({self.a.seed} and {self.b.seed}), so they are independent and "
                    f"sqrt(se_A\u00b2 + se_B\u00b2) is the standard error of each change.")
        return (f"Both runs use seed {self.a.seed}: unchanged scenarios and designs see the same virtual patients, "
                f"so the runs are positively correlated and sqrt(se_A\u00b2 + se_B\u00b2) overstates the standard "
                f"error of a change (conservative).")


def _show(v: Any) -> str:
    if v is None:
        return "(absent)"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def _compare(field_name: str, a: Any, b: Any, out: list[InputChange]) -> None:
    if a != b:
        out.append(InputChange(field_name, _show(a), _show(b)))


def _compare_maps(prefix: str, a: Mapping[str, Any], b: Mapping[str, Any], out: list[InputChange]) -> None:
    for k in list(a) + [k for k in b if k not in a]:
        _compare(f"{prefix}.{k}", a.get(k), b.get(k), out)


def input_changes(a: RunData, b: RunData) -> list[InputChange]:
    """Inputs that differ: study settings, doses, designs and their parameters, scenarios, trials, seed."""
    ma, mb = a.manifest, b.manifest
    out: list[InputChange] = []
    _compare("study file", ma.get("study_file"), mb.get("study_file"), out)
    _compare("study file SHA-256", ma.get("study_sha256"), mb.get("study_sha256"), out)
    _compare("title", a.title, b.title, out)
    _compare("target", a.target, b.target, out)
    for k in ("cohort_size", "max_n", "start_dose", "dlt_window_days", "response_days"):
        _compare(f"study.{k}", a.study_settings.get(k), b.study_settings.get(k), out)
    _compare("n_trials", a.n_trials, b.n_trials, out)
    _compare("seed", a.seed, b.seed, out)
    _compare("chunk_size", ma.get("chunk_size"), mb.get("chunk_size"), out)
    _compare("exact", bool(ma.get("exact")), bool(mb.get("exact")), out)
    _compare("number of doses", len(a.doses), len(b.doses), out)
    for j in range(max(len(a.doses), len(b.doses))):
        da = a.doses[j] if j < len(a.doses) else None
        db = b.doses[j] if j < len(b.doses) else None
        for k in ("label", "amount", "unit"):
            _compare(f"doses[{j + 1}].{k}", getattr(da, k, None), getattr(db, k, None), out)
    des_a = {d.name: d for d in a.designs}
    des_b = {d.name: d for d in b.designs}
    for name in list(des_a) + [n for n in des_b if n not in des_a]:
        da, db = des_a.get(name), des_b.get(name)
        if da is None or db is None:
            _compare(f"designs[{name}]", None if da is None else da.kind, None if db is None else db.kind, out)
            continue
        _compare(f"designs[{name}].design", da.kind, db.kind, out)
        _compare_maps(f"designs[{name}].params", da.params, db.params, out)
    if set(des_a) == set(des_b):
        _compare("design order", a.design_names, b.design_names, out)
    sc_a = {s.name: s for s in a.scenarios}
    sc_b = {s.name: s for s in b.scenarios}
    for name in list(sc_a) + [n for n in sc_b if n not in sc_a]:
        sa, sb = sc_a.get(name), sc_b.get(name)
        if sa is None or sb is None:
            _compare(f"scenarios[{name}]", None if sa is None else "present", None if sb is None else "present", out)
            continue
        for k in ("p_dlt", "p_response", "association"):
            _compare(f"scenarios[{name}].{k}", getattr(sa, k), getattr(sb, k), out)
    _compare("escalade version", ma.get("escalade_version"), mb.get("escalade_version"), out)
    return out


def diff_runs(a: RunData, b: RunData) -> RunDiff:
    """Compare run ``a`` (before) with run ``b`` (after).

    Parameters
    ----------
    a, b
        Loaded run directories (:func:`escalade.reports.load.load_run`).

    Returns
    -------
    RunDiff
    """
    keys = ["scenario", "design", "metric", "dose"]
    m = a.oc.merge(b.oc, on=keys, how="inner", suffixes=("_a", "_b"))
    change = m["value_b"] - m["value_a"]
    se = np.sqrt(m["se_a"] ** 2 + m["se_b"] ** 2)
    finite = np.isfinite(change)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, change / se, np.where(np.abs(change) > _EXACT_TOL, np.inf * np.sign(change), 0.0))
    flagged = finite & (np.abs(change) > np.where(se > 0, FLAG_Z * se, _EXACT_TOL))
    sc_a = {s.name: s for s in a.scenarios}
    sc_b = {s.name: s for s in b.scenarios}
    truth = frozenset(n for n in sc_a if n in sc_b and (sc_a[n].p_dlt != sc_b[n].p_dlt
                                                        or sc_a[n].p_response != sc_b[n].p_response
                                                        or sc_a[n].association != sc_b[n].association))
    changes = pd.DataFrame({
        **{k: m[k] for k in keys},
        "value_a": m["value_a"], "se_a": m["se_a"], "exact_a": m["exact_a"],
        "value_b": m["value_b"], "se_b": m["se_b"], "exact_b": m["exact_b"],
        "change": change, "se_change": se, "z": z, "flagged": flagged,
        "truth_changed": m["scenario"].isin(truth),
    })
    changes = _sorted(changes, b)
    return RunDiff(
        a, b, tuple(input_changes(a, b)), changes, a.seed != b.seed,
        tuple(n for n in a.scenario_names if n not in sc_b), tuple(n for n in b.scenario_names if n not in sc_a),
        tuple(n for n in a.design_names if n not in b.design_names),
        tuple(n for n in b.design_names if n not in a.design_names), truth,
    )


def _sorted(changes: pd.DataFrame, run: RunData) -> pd.DataFrame:
    """Scenarios and designs in run B's order, metrics in report order, doses in dose order."""
    from escalade.reports.formatting import METRICS

    scen = {n: i for i, n in enumerate(run.scenario_names)}
    des = {n: i for i, n in enumerate(run.design_names)}
    met = {n: i for i, n in enumerate(list(KEY_OC_ROWS) + [m for m in METRICS if m not in KEY_OC_ROWS])}
    dose = {n: i for i, n in enumerate([""] + run.dose_labels + ["none"])}
    rank = pd.DataFrame({
        "s": changes["scenario"].map(scen).fillna(len(scen)),
        "d": changes["design"].map(des).fillna(len(des)),
        "m": changes["metric"].map(met).fillna(len(met)),
        "o": changes["dose"].map(dose).fillna(len(dose)),
    })
    order = np.lexsort((rank["o"].to_numpy(), rank["m"].to_numpy(), rank["d"].to_numpy(), rank["s"].to_numpy()))
    return changes.iloc[order].reset_index(drop=True)


def _select(diff: RunDiff, metrics: Sequence[str] | None) -> pd.DataFrame:
    c = diff.changes
    if metrics is None:
        return c
    return c[c["metric"].isin(metrics)]


def _fmt_side(v: float, se: float, exact: bool, decimals: int) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{fmt_number(v, decimals)} ({'exact' if exact else fmt_number(se, decimals)})"


def _row_texts(r: Any) -> tuple[str, str, str, str]:
    spec = metric_spec(r.metric)
    label = spec.label if not r.dose else f"{spec.label} [{r.dose}]"
    exact = bool(r.exact_a) and bool(r.exact_b)
    return (label, _fmt_side(r.value_a, r.se_a, r.exact_a, spec.decimals),
            _fmt_side(r.value_b, r.se_b, r.exact_b, spec.decimals),
            fmt_difference(r.change, r.se_change, spec.decimals, exact=exact))


def _plain(text: str) -> str:
    """Terminal-safe text: control and other non-printing characters shown as escapes."""
    return "".join(ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def _ordered(diff: RunDiff, rows: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    order = {n: i for i, n in enumerate(diff.b.scenario_names)}
    for name in sorted(rows["scenario"].unique(), key=lambda n: order.get(n, len(order))):
        yield name, rows[rows["scenario"] == name]


def format_diff(diff: RunDiff, *, metrics: Sequence[str] | None = KEY_OC_ROWS, only_flagged: bool = False) -> str:
    """The comparison as terminal text: inputs changed, then one table per scenario.

    Parameters
    ----------
    diff
        The comparison.
    metrics
        Characteristics to list (default: the summary ones); ``None`` lists all.
    only_flagged
        List only changes larger than two standard errors.
    """
    a, b = diff.a, diff.b
    lines = [f"A: {_plain(a.path)}  ({a.n_trials} trials, seed {a.seed})",
             f"B: {_plain(b.path)}  ({b.n_trials} trials, seed {b.seed})", ""]
    if diff.inputs:
        lines.append(f"Inputs changed ({len(diff.inputs)}):")
        w = min(max(len(_plain(c.field)) for c in diff.inputs), 60)
        for c in diff.inputs:
            lines.append(f"  {_plain(c.field):<{w}}  {_plain(c.before)} -> {_plain(c.after)}")
    else:
        lines.append("Inputs changed: none")
    for what, names in (("scenarios only in A", diff.scenarios_only_a), ("scenarios only in B", diff.scenarios_only_b),
                        ("designs only in A", diff.designs_only_a), ("designs only in B", diff.designs_only_b)):
        if names:
            lines.append(f"Not compared ({what}): {', '.join(_plain(n) for n in names)}")
    rows = _select(diff, metrics)
    total = len(diff.changes)
    lines += ["", f"Change = B - A with SE sqrt(se_A^2 + se_B^2); * = larger than {FLAG_Z:g} SE. {diff.se_note()}",
              f"{diff.n_flagged} of {total} compared characteristics moved by more than {FLAG_Z:g} SE."]
    if only_flagged:
        rows = rows[rows["flagged"]]
    for scen, part in _ordered(diff, rows):
        truth = "  [true curves changed]" if scen in diff.truth_changed else ""
        lines += ["", f"{_plain(scen)}{truth}"]
        texts = [(_plain(r.design),) + _row_texts(r) + ("*" if r.flagged else "",)
                 for r in part.itertuples(index=False)]
        if not texts:
            continue
        wd = max(6, max(len(t[0]) for t in texts))
        wl = max(len(t[1]) for t in texts)
        lines.append(f"{'design':<{wd}}  {'characteristic':<{wl}}  {'A':>15}  {'B':>15}  {'change':>16}")
        for d, lab, va, vb, ch, flag in texts:
            lines.append(f"{d:<{wd}}  {lab:<{wl}}  {va:>15}  {vb:>15}  {ch:>16} {flag}".rstrip())
    return "\n".join(lines)


def diff_tables(diff: RunDiff, *, metrics: Sequence[str] | None = None) -> list[Table]:
    """One table per scenario (rows: design x characteristic) for the HTML/PDF section."""
    metrics = list(KEY_OC_ROWS) + ["select_pct"] if metrics is None else metrics
    out = []
    for k, (scen, part) in enumerate(_ordered(diff, _select(diff, metrics))):
        rows = []
        for r in part.itertuples(index=False):
            label, va, vb, ch = _row_texts(r)
            key = {"scenario": scen, "design": r.design, "metric": r.metric, "dose": r.dose}
            rows.append([Cell(r.design, header=True), Cell(label, header=True),
                         Cell(va, r.value_a, r.se_a, bool(r.exact_a)), Cell(vb, r.value_b, r.se_b, bool(r.exact_b)),
                         Cell(ch + (" *" if r.flagged else ""), r.change, r.se_change, False, key,
                              "flag" if r.flagged else "")])
        note = "True curves changed between the runs: differences reflect the new truth." \
            if scen in diff.truth_changed else ""
        out.append(Table(f"diff-{k + 1}", scen, ["Design", "Characteristic", "A (before)", "B (after)",
                                                  "Change B \u2212 A (SE)"], rows, note, scen))
    return out


def diff_context(diff: RunDiff) -> dict[str, Any]:
    """What ``diff_section.html.j2`` needs."""
    inputs = Table("diff-inputs", "Inputs changed", ["Input", "A (before)", "B (after)"],
                   [[Cell(c.field, header=True, css="code"), Cell(c.before, css="text"), Cell(c.after, css="text")]
                    for c in diff.inputs], "" if diff.inputs else "No input changed.")
    not_compared = [(what, ", ".join(names)) for what, names in (
        ("Scenarios only in A", diff.scenarios_only_a), ("Scenarios only in B", diff.scenarios_only_b),
        ("Designs only in A", diff.designs_only_a), ("Designs only in B", diff.designs_only_b)) if names]
    return {
        "a_path": str(diff.a.path), "b_path": str(diff.b.path),
        "a_facts": f"{diff.a.n_trials} trials, seed {diff.a.seed}",
        "b_facts": f"{diff.b.n_trials} trials, seed {diff.b.seed}",
        "inputs": inputs,
        "not_compared": not_compared,
        "se_note": diff.se_note(),
        "n_flagged": diff.n_flagged,
        "n_compared": len(diff.changes),
        "flag_z": f"{FLAG_Z:g}",
        "tables": diff_tables(diff),
    }
