"""Dose-transition pathways: every way the next cohorts can go, and where each leads.

Given a design, a number of cohorts ``K`` and (optionally) the trial so far as
a history string, :func:`dose_paths` enumerates every sequence of cohort
outcomes of the next ``K`` cohorts and the design's decision after each: the
next dose, or a stop with its reason (as the R package escalation's
``get_dose_paths``, but deciding on counts in one batch per depth). With a
true dose-outcome curve each path also gets its probability (escalation's
``calculate_probabilities``):

.. math::

    \\Pr(\\text{path}) = \\prod_{k=1}^{K} \\Pr(o_k \\mid \\text{dose}_k, c_k),

a product of binomial (toxicity-only designs) or multinomial (designs that use
efficacy) cohort-outcome probabilities, so the leaf probabilities sum to 1.

History strings
---------------
Cohorts separated by spaces (optional); each is the 1-based dose then one letter
per patient: ``N`` no event, ``T`` toxicity (DLT); for phase I/II also ``E``
response without DLT and ``B`` both, e.g. ``"1NNN 2NTN"`` or ``"1NNE 2BTN"``.

Unlike exact enumeration (:mod:`escalade.simulations.exact`) the tree is not
merged: two orders of events that reach the same counts are two paths.

Examples
--------
>>> from escalade.design.boin import BoinConfig, BoinDesign
>>> d = BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=30))
>>> p = dose_paths(d, 1, "1NNN")
>>> [(path, int(nxt)) for path, nxt in zip(p.table["path"], p.table["next_dose"])]
[('1NNN', 2), ('1NNN 2NNN', 3), ('1NNN 2NNT', 1), ('1NNN 2NTT', 1), ('1NNN 2TTT', 1)]
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalade.design.base import NO_DOSE, Design, IntArray, States, StopReason
from escalade.scenarios.errors import ConfigError, EscaladeError
from escalade.simulations.atomic import atomic_write, replacing
from escalade.simulations.exact import (
    cell_probabilities, check_truth, cohort_outcomes, decide_in_chunks, outcome_probabilities,
)

__all__ = [
    "DosePaths",
    "HistoryError",
    "TooManyPathsError",
    "Cohort",
    "parse_history",
    "history_states",
    "outcome_string",
    "dose_paths",
    "format_paths",
    "DEFAULT_MAX_NODES",
]

log = logging.getLogger(__name__)

#: Default cap on the number of nodes of a pathways tree.
DEFAULT_MAX_NODES: int = 250_000

_LETTERS = "NTEB"
_TOKEN = re.compile(r"(\d+)([A-Za-z]+)")


class HistoryError(EscaladeError, ValueError):
    """A history string cannot be read; ``text``, ``position`` (0-based) and ``fix`` say why."""

    def __init__(self, text: str, position: int, problem: str, fix: str) -> None:
        self.text = text
        self.position = position
        self.fix = fix
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(f"history {text!r}, character {position + 1}: {problem}; {fix}{pointer}")


class TooManyPathsError(EscaladeError, RuntimeError):
    """The tree would exceed ``limit`` nodes (``n_nodes`` reached at ``depth``)."""

    def __init__(self, n_nodes: int, limit: int, depth: int) -> None:
        self.n_nodes, self.limit, self.depth = int(n_nodes), int(limit), int(depth)
        super().__init__(f"dose paths would need {self.n_nodes:,} nodes by cohort {self.depth} (limit "
                         f"max_nodes = {self.limit:,}); ask for fewer cohorts, or use exact_outcomes for "
                         f"operating characteristics (it merges identical states)")


@dataclass(frozen=True, slots=True)
class Cohort:
    """One cohort of a history: 0-based ``dose`` and per-patient letters (``N T E B``)."""

    dose: int
    outcomes: str

    @property
    def n(self) -> int:
        return len(self.outcomes)

    @property
    def tox(self) -> int:
        return sum(ch in "TB" for ch in self.outcomes)

    @property
    def eff(self) -> int:
        return sum(ch in "EB" for ch in self.outcomes)

    @property
    def both(self) -> int:
        return self.outcomes.count("B")

    def __str__(self) -> str:
        return f"{self.dose + 1}{self.outcomes}"


def parse_history(text: str, n_doses: int) -> list[Cohort]:
    """Read ``"1NNN 2NTN"`` into cohorts (doses 1-based in the text, 0-based in the result).

    Raises
    ------
    HistoryError
        Naming the character, what is wrong and the fix.
    """
    text = "" if text is None else str(text)
    out: list[Cohort] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        gap = text[pos:m.start()]
        if gap.strip():
            bad = pos + len(gap) - len(gap.lstrip())
            raise HistoryError(text, bad, f"unexpected {text[bad]!r}",
                               "write cohorts as a dose number then one letter per patient, e.g. '1NNN 2NTN'")
        dose = int(m.group(1))
        if not 1 <= dose <= n_doses:
            raise HistoryError(text, m.start(1), f"dose {dose} does not exist",
                               f"doses are numbered 1 to {n_doses}")
        letters = m.group(2).upper()
        for i, ch in enumerate(letters):
            if ch not in _LETTERS:
                raise HistoryError(text, m.start(2) + i, f"{m.group(2)[i]!r} is not an outcome",
                                   "use N (no event), T (toxicity), E (efficacy only) or B (both)")
        out.append(Cohort(dose - 1, letters))
        pos = m.end()
    tail = text[pos:]
    if tail.strip():
        bad = pos + len(tail) - len(tail.lstrip())
        fix = ("each cohort needs at least one patient letter after its dose, e.g. '2NNN'"
               if tail.strip().isdigit() else
               "write cohorts as a dose number then one letter per patient, e.g. '1NNN 2NTN'")
        raise HistoryError(text, bad, f"unexpected {tail.strip()!r}", fix)
    return out


def history_states(cohorts: list[Cohort], n_doses: int, start_dose: int = 0) -> States:
    """The :class:`States` (one row) after ``cohorts``; current = the last cohort's dose.

    With no cohort: an empty trial positioned at ``start_dose``.
    """
    if not cohorts:
        return States.empty(1, n_doses, start_dose)
    n = np.zeros(n_doses, np.int64)
    tox, eff, both = n.copy(), n.copy(), n.copy()
    for c in cohorts:
        n[c.dose] += c.n
        tox[c.dose] += c.tox
        eff[c.dose] += c.eff
        both[c.dose] += c.both
    last = cohorts[-1]
    return States.from_counts(n, tox, eff, both, current=last.dose, last_n=last.n, last_tox=last.tox)


def outcome_string(cells: tuple[int, int, int, int] | np.ndarray) -> str:
    """Letters of a cohort outcome ``(b, t, e, m)``: ``N``s, then ``E``, ``T``, ``B``."""
    b, t, e, m = (int(x) for x in cells)
    return "N" * m + "E" * e + "T" * t + "B" * b


@dataclass(frozen=True, slots=True, eq=False)
class DosePaths:
    """A dose-transition tree.

    Attributes
    ----------
    table
        One row per node, in depth-first order (node 1 is the root: the trial
        after the history). Columns: ``node, parent, depth, dose`` (1-based dose
        given to this node's cohort), ``outcome`` (letters), ``n_tox`` (and
        ``n_eff, n_both`` for designs that use efficacy), ``path`` (history plus
        the cohorts so far, e.g. ``"1NNN 2NNT"``), ``next_dose`` (1-based; NA
        when the trial ends), ``next_cohort_size``, ``stop``, ``reason``
        (label), ``selected`` (1-based final selection where the trial ends;
        NA for none or while it goes on), ``leaf``; with a true curve also
        ``prob`` (of this cohort's outcome given the parent) and ``path_prob``.
    design, n_cohorts, history, efficacy
        What was enumerated (``efficacy``: outcomes include responses).
    """

    table: pd.DataFrame
    design: str
    n_cohorts: int
    history: str
    efficacy: bool

    @property
    def has_probabilities(self) -> bool:
        return "path_prob" in self.table.columns

    def leaves(self) -> pd.DataFrame:
        """The rows without children (ends of paths)."""
        return self.table[self.table["leaf"]]

    def to_csv(self, path: str | Path | None = None) -> str | None:
        """The table as CSV (written to ``path`` atomically if given, else returned)."""
        text = self.table.to_csv(index=False)
        if path is None:
            return text
        atomic_write(path, text)
        return None

    def text(self, **kwargs: Any) -> str:
        return format_paths(self, **kwargs)


def dose_paths(
    design: Design,
    n_cohorts: int,
    history: str = "",
    *,
    p_tox: object | None = None,
    p_eff: object | None = None,
    association: float = 0.0,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> DosePaths:
    """Every path of the next ``n_cohorts`` cohorts and the decision after each.

    Parameters
    ----------
    design
        Any design (decisions are asked on counts; ``enumerable`` is not required
        for the tree, only for its probabilities to be meaningful).
    n_cohorts
        Number of further cohorts to enumerate (>= 0).
    history
        The trial so far, e.g. ``"1NNN 2NTN"``; empty for a new trial.
    p_tox, p_eff, association
        Optional true curve: adds ``prob`` and ``path_prob``.
    max_nodes
        Limit on the tree's size (:class:`TooManyPathsError` beyond it).

    Returns
    -------
    DosePaths
    """
    if not isinstance(n_cohorts, (int, np.integer)) or isinstance(n_cohorts, bool) or n_cohorts < 0:
        raise ConfigError("n_cohorts", n_cohorts, "must be a whole number >= 0")
    nd = int(design.n_doses)
    max_n = int(design.max_n)
    efficacy = bool(getattr(design, "uses_efficacy", False))
    cohorts = parse_history(history, nd)
    hist_text = " ".join(str(c) for c in cohorts)
    with_prob = p_tox is not None
    if with_prob:
        pt, pe, rho = check_truth(p_tox, p_eff, association, nd)
    elif p_eff is not None:
        raise ConfigError("p_tox", None, "is needed with p_eff: give the true DLT curve too")
    else:
        pt, pe, rho = np.zeros(nd), np.zeros(nd), 0.0
    cells_p = cell_probabilities(pt, pe, rho)
    start_dose, start_size = design.start()
    root = history_states(cohorts, nd, start_dose)
    m = root.matrix()

    # per-node columns (filled depth by depth; depth-0 = root)
    rec: dict[str, list[np.ndarray]] = {k: [] for k in (
        "id", "parent", "depth", "dose", "b", "t", "e", "mm", "next", "size", "stop", "reason", "prob", "pprob")}
    keys: list[np.ndarray] = []
    states_all: list[np.ndarray] = []

    def decide_rows(mat: np.ndarray) -> tuple[IntArray, IntArray, np.ndarray, np.ndarray]:
        """Next dose, size, stop, reason for post-cohort rows (max_n ends the trial)."""
        s = mat.shape[0]
        nxt = np.full(s, NO_DOSE, np.int64)
        size = np.zeros(s, np.int64)
        stop = mat[:, :nd].sum(axis=1) >= max_n
        reason = np.where(stop, np.int8(StopReason.MAX_SAMPLE_SIZE), np.int8(StopReason.CONTINUE)).astype(np.int8)
        ask = np.nonzero(~stop)[0]
        if ask.size:
            sub = mat[ask]
            uniq, first, inv = np.unique(sub, axis=0, return_index=True, return_inverse=True)
            dec = decide_in_chunks(design, States.from_matrix(sub[first], nd))
            inv = inv.reshape(-1)
            nxt[ask] = np.where(dec.stop[inv], NO_DOSE, dec.dose[inv])
            size[ask] = np.where(dec.stop[inv], 0, dec.cohort_size[inv])
            stop[ask] = dec.stop[inv]
            reason[ask] = dec.reason[inv]
        return nxt, size, stop, reason

    if cohorts:
        nxt, size, stop, reason = decide_rows(m)
    else:
        nxt, size = np.asarray([start_dose]), np.asarray([start_size])
        stop, reason = np.zeros(1, bool), np.zeros(1, np.int8)
    n_nodes = 1
    ids = np.zeros(1, np.int64)
    pprob = np.ones(1)
    key = np.full((1, max(int(n_cohorts), 1)), -1, np.int64)
    _append(rec, id=ids, parent=np.full(1, -1), depth=np.zeros(1, np.int64), dose=np.full(1, NO_DOSE),
            b=np.zeros(1, np.int64), t=np.zeros(1, np.int64), e=np.zeros(1, np.int64), mm=np.zeros(1, np.int64),
            next=nxt, size=size, stop=stop, reason=reason, prob=np.ones(1), pprob=pprob)
    keys.append(key)
    states_all.append(m)
    table: dict[int, np.ndarray] = {}
    for depth in range(1, int(n_cohorts) + 1):
        go = ~stop
        if not go.any():
            break
        pm, pids, pdose, pp, pkey = m[go], ids[go], nxt[go], pprob[go], key[go]
        c = np.minimum(size[go], max_n - pm[:, :nd].sum(axis=1))
        n_new = int(sum(cohort_outcomes(int(cv), efficacy)[0].shape[0] * int((c == cv).sum())
                        for cv in np.unique(c)))
        if n_nodes + n_new > max_nodes:
            raise TooManyPathsError(n_nodes + n_new, max_nodes, depth)
        kids, _, par, out = _expand_all(pm, pdose, c, nd, efficacy)
        cells = _cells_of(c[par], out, efficacy)
        cond = np.empty(par.shape[0])
        for cv in np.unique(c[par]):
            cv = int(cv)
            if cv not in table:
                table[cv] = outcome_probabilities(cv, efficacy, pt, cells_p)
            sel = c[par] == cv
            cond[sel] = table[cv][pdose[par[sel]], out[sel]]
        m = kids
        ids = np.arange(n_nodes, n_nodes + kids.shape[0])
        n_nodes += kids.shape[0]
        pprob = pp[par] * cond
        key = pkey[par].copy()
        key[:, depth - 1] = out
        nxt, size, stop, reason = decide_rows(m)
        _append(rec, id=ids, parent=pids[par], depth=np.full(ids.shape[0], depth), dose=pdose[par],
                b=cells[:, 0], t=cells[:, 1], e=cells[:, 2], mm=cells[:, 3], next=nxt, size=size, stop=stop,
                reason=reason, prob=cond, pprob=pprob)
        keys.append(key)
        states_all.append(m)

    cat = {k: np.concatenate(v) for k, v in rec.items()}
    allm = np.concatenate(states_all)
    allkey = np.concatenate(keys)
    ended = cat["stop"]
    selected = np.full(allm.shape[0], NO_DOSE, np.int64)
    if ended.any():
        sel = np.asarray(design.select(States.from_matrix(allm[ended], nd)), np.int64)
        selected[ended] = np.where((sel >= 0) & (sel < nd), sel, NO_DOSE)
    # depth-first order: sort by the outcome-index sequence (-1 = not reached, sorts first)
    order = np.lexsort(allkey.T[::-1])
    old_to_new = np.empty(order.shape[0], np.int64)
    old_to_new[order] = np.arange(order.shape[0])
    has_child = np.zeros(allm.shape[0], bool)
    par_all = cat["parent"]
    has_child[par_all[par_all >= 0]] = True

    paths = _path_strings(cat, hist_text)
    df = pd.DataFrame({
        "node": old_to_new + 1,
        "parent": pd.array(np.where(par_all >= 0, old_to_new[np.maximum(par_all, 0)] + 1, -1), dtype="Int64"),
        "depth": cat["depth"],
        "dose": pd.array(np.where(cat["dose"] >= 0, cat["dose"] + 1, -1), dtype="Int64"),
        "outcome": [outcome_string(x) for x in zip(cat["b"], cat["t"], cat["e"], cat["mm"])],
        "n_tox": cat["b"] + cat["t"],
    })
    if efficacy:
        df["n_eff"] = cat["b"] + cat["e"]
        df["n_both"] = cat["b"]
    df["path"] = paths
    df["next_dose"] = pd.array(np.where(cat["stop"], -1, cat["next"] + 1), dtype="Int64")
    df["next_cohort_size"] = pd.array(np.where(cat["stop"], -1, cat["size"]), dtype="Int64")
    df["stop"] = cat["stop"]
    df["reason"] = [StopReason(int(r)).label for r in cat["reason"]]
    df["selected"] = pd.array(np.where(selected >= 0, selected + 1, -1), dtype="Int64")
    df["leaf"] = ~has_child
    if with_prob:
        df["prob"] = cat["prob"]
        df["path_prob"] = cat["pprob"]
    for col in ("parent", "dose", "next_dose", "next_cohort_size", "selected"):
        df.loc[df[col] == -1, col] = pd.NA
    df.loc[df["depth"] == 0, "outcome"] = ""
    df = df.sort_values("node", kind="stable").reset_index(drop=True)
    log.info("dose paths of %s: %d nodes over %d cohorts", design.kind, len(df), n_cohorts)
    return DosePaths(df, design.kind, int(n_cohorts), hist_text, efficacy)


def _append(rec: dict[str, list[np.ndarray]], **cols: np.ndarray) -> None:
    for k, v in cols.items():
        rec[k].append(np.asarray(v))


def _cells_of(c: IntArray, out: IntArray, efficacy: bool) -> IntArray:
    cells = np.empty((out.shape[0], 4), np.int64)
    for cv in np.unique(c):
        sel = c == cv
        cells[sel] = cohort_outcomes(int(cv), efficacy)[0][out[sel]]
    return cells


def _expand_all(m: IntArray, dose: IntArray, c: IntArray, nd: int, efficacy: bool
                ) -> tuple[IntArray, None, IntArray, IntArray]:
    """Children for every outcome (zero-probability ones included), parent-major order."""
    from escalade.simulations.exact import _expand

    zeros = np.zeros(nd)
    cells = cell_probabilities(zeros, zeros, 0.0)
    kids, _, par, out = _expand(m, np.ones(m.shape[0]), dose, c, nd, efficacy, {}, zeros, cells, keep_zero=True)
    order = np.lexsort((out, par))
    return kids[order], None, par[order], out[order]


def _path_strings(cat: dict[str, np.ndarray], hist_text: str) -> list[str]:
    parent = cat["parent"]
    n = parent.shape[0]
    out: list[str] = [""] * n
    for i in range(n):  # parents precede children (built depth by depth)
        if parent[i] < 0:
            out[i] = hist_text
            continue
        tok = f"{int(cat['dose'][i]) + 1}{outcome_string((cat['b'][i], cat['t'][i], cat['e'][i], cat['mm'][i]))}"
        prev = out[int(parent[i])]
        out[i] = f"{prev} {tok}" if prev else tok
    return out


# --------------------------------------------------------------------------- text


def format_paths(paths: DosePaths, *, ascii: bool = False, max_lines: int | None = None) -> str:
    """The tree as indented text, one line per node::

        start (history 1NNN): next dose 2
        ├─ 2 NNN -> 3
        │  ├─ 3 NNN -> 4   p = 0.614
    """
    tee, last, bar, gap = ("|- ", "`- ", "|  ", "   ") if ascii else ("├─ ", "└─ ", "│  ", "   ")
    df = paths.table
    children: dict[int, list[int]] = {}
    for node, parent in zip(df["node"], df["parent"]):
        if parent is not pd.NA and not pd.isna(parent):
            children.setdefault(int(parent), []).append(int(node))
    rows = {int(r.node): r for r in df.itertuples(index=False)}
    head = (f"{paths.design}: dose paths over {paths.n_cohorts} cohort(s)"
            + (f" after {paths.history}" if paths.history else " from the start"))
    lines = [head]

    def what(r: Any) -> str:
        if r.stop:
            sel = "" if pd.isna(r.selected) else f", select dose {int(r.selected)}"
            if pd.isna(r.selected) and r.reason != StopReason.CONTINUE.label:
                sel = ", no dose selected"
            return f"stop ({r.reason}{sel})"
        return f"{int(r.next_dose)}"

    def prob(r: Any) -> str:
        return f"   p = {r.path_prob:.4g}" if paths.has_probabilities else ""

    r0 = rows[1]
    lines.append(f"{'start' if not paths.history else 'now'}: "
                 + ("trial ended: " + what(r0) if r0.stop else f"next dose {int(r0.next_dose)}"))
    stack: list[tuple[int, str, bool]] = [(n, "", i == len(children.get(1, [])) - 1)
                                          for i, n in enumerate(children.get(1, []))][::-1]
    while stack:
        node, prefix, is_last = stack.pop()
        r = rows[node]
        lines.append(f"{prefix}{last if is_last else tee}{int(r.dose)} {r.outcome} -> {what(r)}{prob(r)}")
        if max_lines is not None and len(lines) >= max_lines:
            lines.append(f"... ({len(df) - len(lines) + 2} more nodes)")
            break
        kids = children.get(node, [])
        sub = prefix + (gap if is_last else bar)
        stack.extend([(k, sub, i == len(kids) - 1) for i, k in enumerate(kids)][::-1])
    return "\n".join(lines)


# --------------------------------------------------------------------------- figure
