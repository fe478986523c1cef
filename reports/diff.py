"""Compare two runs of an amended protocol: what changed in the inputs, and how each characteristic moved.

For every scenario and design present in both runs (matched by name) and every
characteristic of ``oc.csv``, the change ``B - A`` has the standard error

.. math::

    \\operatorname{se}(B - A) = \\sqrt{\\operatorname{se}_A^2 + \\operatorname{se}_B^2},

exact when the runs are independent, which they are when their seeds differ.
When both runs share virtual patients (same seed, number of trials and chunk
size, and the scenario present under the same name, whose stable key spawns
its patient streams), trial ``i`` of a scenario saw the same patients in both
runs (common random numbers). For the metrics that are means of a per-trial
quantity (:data:`escalade.reports.pairing.PAIRABLE`) the change is then paired
trial by trial,

.. math::

    \\operatorname{se}(B - A) = \\operatorname{sd}_i(x_{B,i} - x_{A,i}) / \\sqrt{T},

far smaller than the unpaired one, which stays in ``se_unpaired`` (and is
conservative for the other metrics). Exactly enumerated values have no Monte
Carlo error, so any change in them is real. A change is flagged when it exceeds
two standard errors (or, with both values exact, when it is not zero).
"""

from __future__ import annotations

import json
import math
import textwrap
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from escalade.reports.formatting import fmt_difference, fmt_number, metric_spec
from escalade.reports.load import RunData
from escalade.reports.tables import FLAG_Z, KEY_OC_ROWS, Cell, Table

__all__ = ["InputChange", "RunDiff", "diff_runs", "format_diff", "diff_context", "diff_tables", "input_changes",
           "shares_patients", "moved_summary", "moved_table", "SUMMARY_LINES"]

#: Lines of the leading summary of ``escalade diff`` (largest moves first); ``--all`` lists everything.
SUMMARY_LINES = 20

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

    @property
    def n_paired(self) -> int:
        return int(self.changes["paired"].sum()) if "paired" in self.changes else 0

    def se_note(self) -> str:
        """How to read the standard errors of the changes, given the seeds."""
        if self.independent:
            return (f"The runs use different seeds ({self.a.seed} and {self.b.seed}), so they are independent and "
                    f"sqrt(se_A\u00b2 + se_B\u00b2) is the standard error of each change.")
        paired = (f" {self.n_paired} changes (means of per-trial quantities: correct selection, no dose, "
                  f"overdose selection, sample size, DLTs, patients above the MTD) are paired trial by trial on "
                  f"the shared patients, with their paired SE; the others use sqrt(se_A\u00b2 + se_B\u00b2), "
                  f"which overstates their standard error (conservative)." if self.n_paired else
                  " sqrt(se_A\u00b2 + se_B\u00b2) overstates the standard error of a change (conservative).")
        return (f"Both runs use seed {self.a.seed}: unchanged scenarios and designs see the same virtual patients, "
                f"so the runs are positively correlated." + paired)


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
    se_unpaired = np.sqrt(m["se_a"] ** 2 + m["se_b"] ** 2)
    se_paired = _paired_ses(a, b, m)
    paired = np.isfinite(se_paired)
    se = np.where(paired, se_paired, se_unpaired)
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
        "change": change, "se_change": se, "se_unpaired": se_unpaired, "paired": paired, "z": z,
        "flagged": flagged,
        "truth_changed": m["scenario"].isin(truth),
    })
    changes = _sorted(changes, b)
    return RunDiff(
        a, b, tuple(input_changes(a, b)), changes, a.seed != b.seed,
        tuple(n for n in a.scenario_names if n not in sc_b), tuple(n for n in b.scenario_names if n not in sc_a),
        tuple(n for n in a.design_names if n not in b.design_names),
        tuple(n for n in b.design_names if n not in a.design_names), truth,
    )


def shares_patients(a: RunData, b: RunData) -> bool:
    """True when trial ``i`` of a scenario (by name) saw the same virtual patients in both runs: same seed,
    number of trials and chunk size (patient streams are spawned from the seed, the scenario name's stable key
    and the chunk index)."""
    return (a.seed == b.seed and a.n_trials == b.n_trials
            and a.manifest.get("chunk_size") == b.manifest.get("chunk_size"))


def _paired_ses(a: RunData, b: RunData, m: pd.DataFrame) -> np.ndarray:
    """Paired SE of ``B - A`` for each merged row that can be paired trial by trial, else NaN."""
    from escalade.reports.pairing import PAIRABLE, per_trial_values

    out = np.full(len(m), np.nan)
    if not shares_patients(a, b):
        return out
    rows = np.flatnonzero(m["metric"].isin(PAIRABLE).to_numpy() & (m["dose"].astype(str) == "").to_numpy())
    for i in rows:
        r = m.iloc[i]
        if bool(r["exact_a"]) or bool(r["exact_b"]):
            continue
        va = per_trial_values(a, r["scenario"], r["design"], r["metric"])
        vb = per_trial_values(b, r["scenario"], r["design"], r["metric"])
        if va is None or vb is None or len(va[0]) != len(vb[0]) or len(va[0]) < 2:
            continue
        if not np.array_equal(va[0], vb[0]):
            continue
        d = vb[1] - va[1]
        if not np.all(np.isfinite(d)):
            continue
        out[i] = float(d.std(ddof=1) / math.sqrt(d.size))
    return out


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


def moved_summary(diff: RunDiff, *, limit: int | None = SUMMARY_LINES) -> tuple[str, int]:
    """The key characteristics (no per-dose rows) that moved by more than ``FLAG_Z`` SE, largest |z| first,
    as a text table of at most ``limit`` rows; and how many moved in all."""
    from escalade.reports.formatting import text_table

    rows, n = _moved(diff, limit)
    out = []
    for scen in dict.fromkeys(rows["scenario"]):  # scenarios in order of their largest move
        body = []
        for r in rows[rows["scenario"] == scen].itertuples(index=False):
            label, va, vb, ch = _row_texts(r)
            z = "exact" if not math.isfinite(r.z) else f"{r.z:+.1f}"
            body.append([_plain(r.design), label, va, vb, ch + (" (paired)" if r.paired else ""), z])
        truth = "  [true curves changed]" if scen in diff.truth_changed else ""
        out += [f"{_plain(scen)}{truth}",
                text_table(["  design", "characteristic", "A", "B", "change (SE)", "z"],
                           [["  " + b[0]] + b[1:] for b in body], keep=2)]
    return "\n".join(out), n


def format_diff(diff: RunDiff, *, metrics: Sequence[str] | None = KEY_OC_ROWS, only_flagged: bool = False,
                full: bool = True) -> str:
    """The comparison as terminal text: inputs changed, a summary of what moved, then (``full``) one table
    per scenario.

    Parameters
    ----------
    diff
        The comparison.
    metrics
        Characteristics of the full list (default: the summary ones); ``None`` lists all.
    only_flagged
        List only changes larger than two standard errors.
    full
        Add the full list after the summary (``escalade diff --all``).
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
    if diff.truth_changed:
        lines.append("True curves changed in: " + ", ".join(_plain(n) for n in sorted(diff.truth_changed)))
    total = len(diff.changes)
    lines += ["", textwrap.fill(f"Change = B - A; * = larger than {FLAG_Z:g} SE. {diff.se_note()}", 120),
              f"{diff.n_flagged} of {total} compared characteristics moved by more than {FLAG_Z:g} SE."]
    table, n_moved = moved_summary(diff)
    lines += ["", f"Key characteristics that moved by more than {FLAG_Z:g} SE ({n_moved}"
              + (f"; the {SUMMARY_LINES} largest" if n_moved > SUMMARY_LINES else "") + "):"]
    lines.append(table if n_moved else "  none")
    if not full:
        lines += ["", "escalade diff --all lists every characteristic (per dose too); --flagged only those moved."]
        return "\n".join(lines)
    rows = _select(diff, metrics)
    if only_flagged:
        rows = rows[rows["flagged"]]
    lines += ["", "Full list" + (" (changes larger than 2 SE)" if only_flagged else "") + ":"]
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


def _moved(diff: RunDiff, limit: int | None) -> tuple[pd.DataFrame, int]:
    """The key characteristics (no per-dose rows) that moved by more than ``FLAG_Z`` SE, largest |z| first
    (at most ``limit``), and how many moved in all."""
    c = diff.changes
    rows = c[c["flagged"] & c["metric"].isin(KEY_OC_ROWS) & (c["dose"].astype(str) == "")]
    rows = rows.assign(_az=np.abs(rows["z"].to_numpy(dtype=float))).sort_values("_az", ascending=False,
                                                                                 kind="stable")
    return (rows if limit is None else rows.head(limit)), len(rows)


def moved_table(diff: RunDiff, *, limit: int | None = SUMMARY_LINES) -> Table:
    """The key characteristics that moved by more than ``FLAG_Z`` SE, largest |z| first (HTML/PDF summary)."""
    rows, n = _moved(diff, limit)
    body = []
    for r in rows.itertuples(index=False):
        label, va, vb, ch = _row_texts(r)
        key = {"scenario": r.scenario, "design": r.design, "metric": r.metric, "dose": r.dose}
        body.append([Cell(r.scenario, header=True), Cell(r.design, header=True), Cell(label, header=True),
                     Cell(va, r.value_a, r.se_a, bool(r.exact_a)), Cell(vb, r.value_b, r.se_b, bool(r.exact_b)),
                     Cell(ch + (" (paired)" if r.paired else ""), r.change, r.se_change, False, key, "flag")])
    more = f" The {limit} largest of {n} are shown; the tables below list every change." if limit and n > limit \
        else ""
    note = ("No key characteristic moved by more than {:g} SE.".format(FLAG_Z) if not n else
            f"Largest moves first (|change| / SE).{more}")
    return Table("diff-moved", f"Key characteristics that moved by more than {FLAG_Z:g} SE", ["Scenario", "Design",
                 "Characteristic", "A (before)", "B (after)", "Change B \u2212 A (SE)"], body, note)


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
        "moved": moved_table(diff),
        "tables": diff_tables(diff),
    }
