"""Decision-table designs: one table over (patients, DLTs) at the current dose drives the trial.

The interval designs of the BOIN family decide from the data at the current
dose alone, so each is a *decision table* over ``(n, y)`` (``n`` patients
treated at the current dose, ``y`` of them with a DLT) with four entries:

* ``E``  escalate to the next higher dose;
* ``S``  stay at the current dose;
* ``D``  de-escalate to the next lower dose;
* ``DU`` de-escalate, and eliminate this dose and every higher dose (never used again).

This module holds the shared machinery: :class:`DecisionTable` (built from a
formula, read from / written to a CSV, its boundaries as the R packages print
them), the elimination rule :class:`TableElimination` (a ``DU`` entry met at
*any* dose eliminates it and the doses above, as ``get.oc``'s elimination
does), the design base :class:`TableDesign` (own move from the table, then the
shared order-free trial rules of :mod:`escalade.design.rules`; final selection
by isotonic regression as ``BOIN::select.mtd``) and the kind ``decision_table``
(a protocol's own table from a CSV). The formula designs (Keyboard, mTPI-2,
i3+3) live in :mod:`escalade.design.interval` and only compute their table.

Counts beyond the table (a live trial with more than ``max_n`` patients at a
dose) use the table's last row with the DLT count scaled to it; simulation
never gets there (the engine stops at ``max_n``).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from escalade.design.base import (BoolArray, ConfigDesign, Decisions, DesignEntry, ExplanationMixin, IntArray, States,
                                  StopReason)
from escalade.design.boin import boin_boundaries, boin_estimates, isotonic_mtd
from escalade.design.config import check_fraction, check_int, check_probability, check_trial_size
from escalade.design.errors import ConfigError
from escalade.design.rules import (Effect, Rule, RuleContext, SharedRules, apply_rules, beta_exceeds,
                                   select_with_rules, shared_rules)
from escalade.design.rules import state_fields as rules_state_fields

__all__ = ["E", "S", "D", "DU", "DECISIONS", "DecisionTable", "TableElimination", "TableDesign", "TableExplanation",
           "table_explanation", "read_table_csv", "boin_decision_table", "DecisionTableConfig", "DecisionTableDesign",
           "IntervalConfig", "mark_elimination", "design_table", "ENTRY"]

E, S, D, DU = "E", "S", "D", "DU"
#: The four decisions, in the order of their integer codes 1, 0, -1, -2.
DECISIONS: tuple[str, ...] = (E, S, D, DU)
_CODE = {E: 1, S: 0, D: -1, DU: -2}
_NAME = {v: k for k, v in _CODE.items()}
_NONE = -9  # y > n: no entry


@dataclass(frozen=True, slots=True, eq=False)
class DecisionTable:
    """Decisions for ``n = 1 .. n_max`` patients at the current dose and ``y = 0 .. n`` DLTs.

    Attributes
    ----------
    codes
        ``(n_max + 1, n_max + 1)`` int8: 1 = E, 0 = S, -1 = D, -2 = DU; row 0 and
        ``y > n`` unused (-9).
    """

    codes: np.ndarray

    @classmethod
    def from_rows(cls, rows: "dict[int, list[str]] | list[list[str]]") -> "DecisionTable":
        """From ``rows[n] = [decision for y = 0..n]`` (a list starts at ``n = 1``)."""
        items = rows.items() if isinstance(rows, dict) else enumerate(rows, start=1)
        items = dict(items)
        n_max = max(items)
        codes = np.full((n_max + 1, n_max + 1), _NONE, np.int8)
        for n, row in items.items():
            codes[n, : n + 1] = [_CODE[v] for v in row]
        return cls(codes)

    @property
    def n_max(self) -> int:
        return int(self.codes.shape[0] - 1)

    def rows(self) -> tuple[tuple[str, ...], ...]:
        """``rows()[n - 1]``: the decisions for ``y = 0 .. n`` (hashable, JSON-friendly)."""
        return tuple(tuple(_NAME[int(c)] for c in self.codes[n, : n + 1]) for n in range(1, self.n_max + 1))

    def decision(self, n: Any, y: Any) -> IntArray:
        """Codes for counts ``(n, y)`` (elementwise; ``n >= 1``). Beyond ``n_max``, the last row at ``y`` scaled."""
        n = np.asarray(n, np.int64)
        y = np.asarray(y, np.int64)
        big = n > self.n_max
        if np.any(big):
            y = np.where(big, np.floor(y * self.n_max / np.maximum(n, 1)).astype(np.int64), y)
            n = np.minimum(n, self.n_max)
        return self.codes[np.maximum(n, 1), np.clip(y, 0, None)].astype(np.int64)

    def boundaries(self) -> dict[str, list[int | None]]:
        """Per ``n = 1..n_max``: escalate if ``y <=``, de-escalate if ``y >=``, eliminate if ``y >=``.

        As ``Keyboard::get.boundary.kb`` derives them from its table: the largest
        ``y`` with ``E`` (-1 when none), the smallest with ``D`` (else the
        smallest with ``DU``), the smallest with ``DU`` (None when none).
        """
        esc, de, el = [], [], []
        for n in range(1, self.n_max + 1):
            row = self.codes[n, : n + 1]
            e = np.nonzero(row == 1)[0]
            d = np.nonzero(row == -1)[0]
            u = np.nonzero(row == -2)[0]
            esc.append(int(e.max()) if e.size else -1)
            de.append(int(d.min()) if d.size else (int(u.min()) if u.size else None))
            el.append(int(u.min()) if u.size else None)
        return {"n": list(range(1, self.n_max + 1)), "escalate_if_ntox_le": esc, "deescalate_if_ntox_ge": de,
                "eliminate_if_ntox_ge": el}

    def table(self, cohort_size: int = 1, n_max: int | None = None) -> dict[str, list[int | None]]:
        """:meth:`boundaries` at ``n = k * cohort_size`` up to ``n_max`` (as the packages print them)."""
        b = self.boundaries()
        top = self.n_max if n_max is None else n_max
        keep = [i for i, n in enumerate(b["n"]) if n % cohort_size == 0 and n <= top]
        return {k: [v[i] for i in keep] for k, v in b.items()}

    def format(self, cohort_size: int = 1, n_max: int | None = None) -> str:
        """The boundaries as text, one column per number of patients (up to ``n_max``)."""
        t = self.table(cohort_size, n_max)
        rows = [("Number of patients treated", t["n"]), ("Escalate if # of DLT <=", t["escalate_if_ntox_le"]),
                ("Deescalate if # of DLT >=", t["deescalate_if_ntox_ge"]),
                ("Eliminate if # of DLT >=", t["eliminate_if_ntox_ge"])]
        w = max(len(r[0]) for r in rows) + 2
        return "\n".join(f"{label:<{w}}" + "".join(f"{'NA' if v is None else v:>5}" for v in vals)
                         for label, vals in rows)

    def to_csv(self) -> str:
        """The table as CSV text (``n,dlt,decision``), readable by :func:`read_table_csv`."""
        out = io.StringIO()
        out.write("n,dlt,decision\n")
        for n, row in enumerate(self.rows(), start=1):
            for y, v in enumerate(row):
                out.write(f"{n},{y},{v}\n")
        return out.getvalue()


_MAX_PROBLEMS = 10


def design_table(design: Any) -> DecisionTable | None:
    """The decision table of any design that has one (a ``decision_table()`` method), else None."""
    method = getattr(design, "decision_table", None)
    return method() if callable(method) else None


def read_table_csv(path: str, *, n_needed: int, field_name: str = "table") -> DecisionTable:
    """Read and validate a decision-table CSV (columns ``n``, ``dlt``, ``decision``).

    Every ``(n, dlt)`` with ``n = 1 .. n_needed`` and ``dlt = 0 .. n`` must appear
    exactly once, with a decision among E, S, D, DU (any case); rows for larger
    ``n`` are allowed. The path is taken as given: absolute, or relative to the
    current working directory (the design layer has no study file to resolve it
    against).

    Raises
    ------
    ConfigError
        Naming ``field_name``, the path and, one line each, the first problems
        found (``line 4: dlt = 5 is above n = 3``) with the fix.
    """
    shown = os.fspath(path)
    try:
        with open(shown, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(field_name, shown, f"no such file (working directory {os.getcwd()}); give an absolute "
                                             "path or one relative to where escalade is run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(field_name, shown, f"cannot be read ({exc}); give a UTF-8 CSV file "
                                             "with columns n, dlt, decision") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    cols = [h.strip().lower() for h in header] if header else []
    missing = [c for c in ("n", "dlt", "decision") if c not in cols]
    if missing:
        raise ConfigError(field_name, shown, f"the CSV header must name the columns n, dlt, decision; missing "
                                             f"{', '.join(missing)} (header read: {','.join(cols) or 'empty file'})")
    i_n, i_y, i_d = cols.index("n"), cols.index("dlt"), cols.index("decision")
    problems: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    for lineno, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) < len(cols):
            problems.append(f"line {lineno}: {len(row)} fields, the header has {len(cols)}")
            continue
        try:
            n = int(row[i_n].strip())
            y = int(row[i_y].strip())
        except ValueError:
            problems.append(f"line {lineno}: n = {row[i_n].strip()!r}, dlt = {row[i_y].strip()!r} must be whole "
                            "numbers")
            continue
        dec = row[i_d].strip().upper()
        if n < 1:
            problems.append(f"line {lineno}: n = {n} must be at least 1")
        elif not 0 <= y <= n:
            problems.append(f"line {lineno}: dlt = {y} must be between 0 and n = {n}")
        elif dec not in _CODE:
            problems.append(f"line {lineno}: decision {row[i_d].strip()!r} must be one of E, S, D, DU")
        elif (n, y) in seen:
            problems.append(f"line {lineno}: n = {n}, dlt = {y} appears twice")
        else:
            seen[(n, y)] = dec
    if not problems:
        gaps = [(n, y) for n in range(1, n_needed + 1) for y in range(n + 1) if (n, y) not in seen]
        if gaps:
            first = ", ".join(f"(n = {n}, dlt = {y})" for n, y in gaps[:5])
            problems.append(f"{len(gaps)} entries missing for n up to {n_needed} (max_n), e.g. {first}")
        top = max((n for n, _ in seen), default=0)
        extra = [(n, y) for n in range(n_needed + 1, top + 1) for y in range(n + 1) if (n, y) not in seen]
        if extra:
            problems.append(f"n = {extra[0][0]} is incomplete (dlt = {extra[0][1]} missing); give every dlt = "
                            "0..n for each n listed")
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        lines = problems[:_MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
        raise ConfigError(field_name, shown, "the decision table CSV has problems; fix each:\n  "
                          + "\n  ".join(lines))
    top = max(n for n, _ in seen)
    return DecisionTable.from_rows({n: [seen[(n, y)] for y in range(n + 1)] for n in range(1, top + 1)})


def boin_decision_table(target: float, n_max: int, *, p_saf: float | None = None, p_tox: float | None = None,
                        cutoff_eli: float = 0.95) -> DecisionTable:
    """BOIN's rules (``BOIN::get.boundary``) as a decision table; ``DU`` where BOIN eliminates (``n >= 3``)."""
    p_saf = 0.6 * target if p_saf is None else p_saf
    p_tox = 1.4 * target if p_tox is None else p_tox
    b = boin_boundaries(target, max(n_max, 3), p_saf, p_tox, cutoff_eli)
    rows = {}
    for n in range(1, n_max + 1):
        row = []
        for y in range(n + 1):
            if n >= 3 and y >= b.eliminate[n]:
                row.append(DU)
            elif y <= b.escalate[n]:
                row.append(E)
            elif y >= b.deescalate[n]:
                row.append(D)
            else:
                row.append(S)
        rows[n] = row
    return DecisionTable.from_rows(rows)


@dataclass(frozen=True, slots=True, eq=False)
class TableElimination:
    """Eliminate dose :math:`d` and every higher dose once the table says ``DU`` at :math:`(n_d, y_d)`.

    Checked at every treated dose (not only the current one), as ``get.oc``'s
    elimination; next dose :math:`\\le` the highest dose not eliminated; with
    the lowest dose eliminated the trial stops (all doses too toxic). Also
    applies to the final selection (:func:`~escalade.design.rules.select_with_rules`).
    """

    table: DecisionTable
    name: ClassVar[str] = "table_elimination"
    final: ClassVar[bool] = True
    reads_last_cohort: ClassVar[bool] = False

    def excluded(self, states: States) -> BoolArray:
        """``(S, D)``: dose eliminated (it, or a lower dose, has a ``DU`` entry)."""
        n, y = states.n, states.tox
        hit = (n > 0) & (self.table.decision(np.maximum(n, 1), y) == _CODE[DU])
        return np.logical_or.accumulate(hit, axis=1)

    def effect(self, ctx: RuleContext) -> Effect:
        ex = self.excluded(ctx.states)
        cap = np.where(ex.any(axis=1), np.argmax(ex, axis=1) - 1, np.iinfo(np.int64).max)
        return Effect(cap=cap, stop=ex[:, 0], reason=StopReason.ALL_TOXIC)


@dataclass(frozen=True, slots=True)
class TableExplanation(ExplanationMixin):
    """What a decision-table design's decision rests on, for one state (doses 1-based).

    Attributes
    ----------
    current_dose, n_at_current, dlt_at_current
        The last cohort's dose (1-based) and the data there.
    decision
        The table's entry there (E, S, D or DU).
    escalate_if_le, deescalate_if_ge, eliminate_if_ge
        The table's boundaries at the current n (None where undefined).
    eliminated, p_isotonic
        Per dose: eliminated by a ``DU`` entry, and ``select.mtd``'s isotonic estimate.
    rule
        One sentence naming the design and its table.
    """

    current_dose: int
    n_at_current: int
    dlt_at_current: int
    decision: str | None
    escalate_if_le: int | None
    deescalate_if_ge: int | None
    eliminate_if_ge: int | None
    eliminated: tuple[bool, ...]
    p_isotonic: tuple[float, ...]
    rule: str

    def table(self) -> dict[str, list]:
        return {"eliminated": list(self.eliminated), "p_isotonic": list(self.p_isotonic)}

    def details(self) -> dict[str, object]:
        return {"rule": self.rule, "current_dose": self.current_dose, "n_at_current": self.n_at_current,
                "dlt_at_current": self.dlt_at_current, "decision": self.decision,
                "escalate_if_le": self.escalate_if_le, "deescalate_if_ge": self.deescalate_if_ge,
                "eliminate_if_ge": self.eliminate_if_ge}


class TableDesign(ConfigDesign):
    """Shared behaviour of the decision-table designs (mix into a frozen dataclass with ``config``).

    The design's own move at the current dose :math:`d` with ``m`` patients and
    ``y`` DLTs there is the table's entry: ``E`` gives :math:`d + 1` (not above
    the top dose), ``D``/``DU`` give :math:`d - 1` (not below the lowest), ``S``
    keeps :math:`d`. The trial rules then apply, order-free
    (:func:`~escalade.design.rules.apply_rules`): :class:`TableElimination`
    (``DU`` at any dose eliminates it and higher doses; the lowest eliminated
    stops the trial), ``n_earlystop`` (stop when that many patients are at the
    current dose and the rules stay, as ``get.oc``) and the shared guardrails
    of the config (by default no escalation right after an all-DLT cohort).

    Final selection: among doses treated and not eliminated, the dose whose
    isotonic estimate of the DLT rate is closest to the target, exactly as
    ``BOIN::select.mtd`` (:func:`~escalade.design.boin.isotonic_mtd`), then the
    final safety rules.
    """

    __slots__ = ()
    kind: ClassVar[str]
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = False
    memoise: ClassVar[bool] = False
    label: ClassVar[str] = "decision table"

    def build_table(self) -> DecisionTable:  # pragma: no cover - each design overrides it
        """The design's decision table (each table design defines it: Keyboard, mTPI-2, i3+3, a CSV)."""
        raise TypeError(f"{type(self).__name__} is a table design and must define build_table()")

    def _setup(self) -> None:
        c = self.config
        table = self.build_table()
        object.__setattr__(self, "table", table)
        rules: list[Rule] = list(shared_rules(c, c.target))
        rules.append(TableElimination(table))
        n_early = getattr(c, "n_earlystop", 100)
        if n_early <= c.max_n:
            from escalade.design.rules import StopAtN
            rules.append(StopAtN(n_early, at="staying"))
        object.__setattr__(self, "rules", tuple(rules))

    @property
    def state_fields(self) -> str:
        """``"counts"`` unless a rule reads the last cohort (the default DLT guardrail does)."""
        return rules_state_fields(self.rules)

    def decision_table(self) -> DecisionTable:
        """The design's decision table (``escalade boundaries`` prints it)."""
        return self.table

    def move(self, states: States) -> IntArray:
        """The table's own next dose (before elimination and the other rules)."""
        d = states.current
        top = self.config.n_doses - 1
        m = states.at_current(states.n)
        y = states.at_current(states.tox)
        code = np.where(m > 0, self.table.decision(np.maximum(m, 1), y), _CODE[S])
        up = (code == _CODE[E]) & (d < top)
        down = (code <= _CODE[D]) & (d > 0)
        return np.where(up, d + 1, np.where(down, d - 1, d)).astype(np.int64)

    def decide(self, states: States) -> Decisions:
        return apply_rules(self.rules, RuleContext(states, self.move(states), self.config.target),
                           self.config.cohort_size)

    def eliminated(self, states: States) -> np.ndarray:
        return TableElimination(self.table).excluded(states)

    def select(self, states: States) -> IntArray:
        adm = (states.n > 0) & ~self.eliminated(states)
        sel = isotonic_mtd(states.n, states.tox, adm, target=self.config.target)
        return select_with_rules(self.rules, RuleContext(states, sel, self.config.target))

    def explain(self, states: States, **options: object) -> TableExplanation:
        """The table's entry and boundaries at the current dose, and the isotonic estimates, of the first state."""
        return table_explanation(self, states)


def table_explanation(design: TableDesign, states: States) -> TableExplanation:
    """:class:`TableExplanation` of the first state of ``states``."""
    t = design.table
    d = int(states.current[0])
    m = int(states.n[0, d])
    y = int(states.tox[0, d])
    b = t.boundaries()
    k = min(m, t.n_max) - 1
    n = states.n[0]
    est = boin_estimates(n, states.tox[0], n > 0, intervals=False)
    elim = design.eliminated(states.take(slice(0, 1)))[0]
    return TableExplanation(
        current_dose=d + 1, n_at_current=m, dlt_at_current=y,
        decision=_NAME[int(t.decision(m, y))] if m else None,
        escalate_if_le=b["escalate_if_ntox_le"][k] if m else None,
        deescalate_if_ge=b["deescalate_if_ntox_ge"][k] if m else None,
        eliminate_if_ge=b["eliminate_if_ntox_ge"][k] if m else None,
        eliminated=tuple(bool(v) for v in elim), p_isotonic=tuple(float(v) for v in est.phat),
        rule=f"{design.label}: the entry at (patients, DLTs) of the current dose decides E, S, D or DU")


def _check_common(c: Any) -> None:
    check_fraction("target", c.target)
    check_trial_size(c.n_doses, c.cohort_size, c.max_n, c.start_dose)
    check_int("n_earlystop", c.n_earlystop, low=1)
    c.check_rules()


def mark_elimination(rows: dict[int, list[str]], target: float, cutoff_eli: float, min_n: int,
                     prior: tuple[float, float] = (1.0, 1.0)) -> dict[int, list[str]]:
    """Set ``DU`` where :math:`\\Pr(p > \\phi \\mid y, n) >` ``cutoff_eli`` under a Beta prior and ``n >= min_n``.

    The elimination rule of BOIN, Keyboard, mTPI-2 and i3+3 (:func:`~escalade.design.rules.beta_exceeds`,
    the same tail probabilities as BOIN's tables).
    """
    for n, row in rows.items():
        if n < min_n:
            continue
        hit = beta_exceeds(target, cutoff_eli, np.arange(n + 1), np.full(n + 1, n), prior)
        rows[n] = [DU if h else v for v, h in zip(row, hit)]
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalConfig(SharedRules):
    """Settings shared by the interval designs (Keyboard, mTPI-2, i3+3).

    Attributes
    ----------
    target
        Target DLT probability :math:`p_T`.
    n_doses, cohort_size, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    max_n
        Maximum sample size; the decision table covers every ``n`` up to it.
    cutoff_eli
        Eliminate a dose and every higher dose (``DU``) when :math:`\\Pr(p > p_T \\mid \\text{data}) >` ``cutoff_eli``
        under a Beta(1, 1) prior with at least ``elim_min_n`` patients there (:math:`\\xi` in mTPI-2 and i3+3).
    elim_min_n
        Patients needed at a dose before it can be eliminated (3, as ``BOIN``/``Keyboard``'s ``get.oc``).
    n_earlystop
        Stop when this many patients are at the current dose and the rules would stay (100: never).
    """

    target: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    cutoff_eli: float = 0.95
    elim_min_n: int = 3
    n_earlystop: int = 100

    def check_interval(self) -> None:
        _check_common(self)
        check_probability("cutoff_eli", self.cutoff_eli)
        check_int("elim_min_n", self.elim_min_n, low=1)

    def check_band(self, below: str, above: str, what: str) -> None:
        """The interval ``(target - below, target + above)`` of the fields named ``below`` and ``above``:
        each a fraction, and the interval inside (0, 1)."""
        lo, hi = getattr(self, below), getattr(self, above)
        check_fraction(below, lo)
        check_fraction(above, hi)
        if not (0 < self.target - lo and self.target + hi < 1):
            raise ConfigError(below, (lo, hi), f"the {what} (target - {below}, target + {above}) must lie inside "
                                               f"(0, 1) for target {self.target}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionTableConfig(SharedRules):
    """A protocol's own decision table, read from a CSV file.

    Attributes
    ----------
    table
        Path of the CSV file with columns ``n`` (patients treated at the current dose), ``dlt`` (of them with a
        DLT) and ``decision`` (E escalate, S stay, D de-escalate, DU de-escalate and eliminate this and every
        higher dose), one row per ``(n, dlt)`` for ``n = 1 .. max_n``; absolute, or relative to the study
        file's folder (the loader resolves it; :attr:`DesignEntry.path_params`). Its contents are stored with the run (``decisions``), so a rerun does not depend
        on the file.
    target
        Target DLT probability; used by the final selection (isotonic estimate closest to it).
    n_doses, cohort_size, start_dose
        Study settings (filled from the study file); ``start_dose`` is 0-based.
    max_n
        Maximum sample size; the table must cover every ``n`` up to it.
    n_earlystop
        Stop when this many patients are at the current dose and the rules would stay (100: never).
    """

    table: str
    target: float
    n_doses: int
    cohort_size: int = 3
    max_n: int = 30
    start_dose: int = 0
    n_earlystop: int = 100
    decisions: tuple[tuple[str, ...], ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if not isinstance(self.table, str) or not self.table.strip():
            raise ConfigError("table", self.table, "must be the path of a CSV file with columns n, dlt, decision")
        _check_common(self)
        t = read_table_csv(self.table, n_needed=self.max_n)
        object.__setattr__(self, "decisions", t.rows())


@dataclass(frozen=True, slots=True)
class DecisionTableDesign(TableDesign):
    """A protocol's own decision table (kind ``decision_table``), see :class:`TableDesign`."""

    config: DecisionTableConfig
    kind: ClassVar[str] = "decision_table"
    label: ClassVar[str] = "Protocol decision table"
    table: DecisionTable = field(init=False)
    rules: tuple[Rule, ...] = field(init=False)

    def __post_init__(self) -> None:
        self._setup()

    def build_table(self) -> DecisionTable:
        return DecisionTable.from_rows(list(self.config.decisions))


ENTRY = DesignEntry(
    kind="decision_table", name="Protocol decision table", config=DecisionTableConfig, design=DecisionTableDesign,
    explanation=TableExplanation, methods="escalade.reports.methods_tables:decision_table_methods",
    citation="A protocol's own decision table over (patients, DLTs) at the current dose, with final selection "
             "as BOIN (Liu S, Yuan Y (2015). J R Stat Soc C 64:507-523).",
    path_params=("table",),
)
