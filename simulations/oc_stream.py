"""A large run's outcomes stay in its unit files: blocks for the characteristics, and outcomes read back lazily.

:func:`~escalade.simulations.study_run.run_study` summarises a scenario of more than
:data:`~escalade.simulations.study_run.KEEP_OUTCOMES_TRIALS` trials without ever holding all its trials:

* :class:`BlockFeeder` collects each work unit as it comes in, and as soon as a block of consecutive units is
  complete (:func:`~escalade.simulations.oc_moments.block_units`) hands its per-trial tables to an
  :class:`~escalade.simulations.oc_moments.OcAccumulator` and drops them;
* :class:`UnitStore` reads the units back from the run's ``units/`` folder, one at a time, when the trial rows
  are written (``trials.parquet``), when the results hash is computed (one outcome field at a time,
  :func:`~escalade.simulations.study_run.results_hash`) and when a caller asks for a scenario's outcomes
  (:class:`StoredOutcomes`, the mapping of :attr:`RunResult.outcomes`, materialises one scenario x design on
  access).

:func:`slice_table` cuts a whole per-trial table into the same blocks, so that a scenario held in memory gets
the same numbers, bit for bit, as one summarised as its units come in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from escalade.simulations.oc import PerTrial, TrialTable
from escalade.simulations.oc_moments import OcAccumulator, block_units
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.unit_file import concat_units

__all__ = ["BlockFeeder", "UnitStore", "StoredOutcomes", "slice_table", "accumulate_tables", "regroup"]


def slice_table(table: TrialTable, a: int, b: int) -> TrialTable:
    """Rows ``a .. b - 1`` of a per-trial table (views)."""
    sl = slice(a, b)
    return TrialTable(table.trial[sl], table.weight[sl], table.exact,
                      {k: PerTrial(c.num[sl], None if c.den is None else c.den[sl], c.scale)
                       for k, c in table.columns.items()}, table.objective)


def accumulate_tables(tables: Mapping[str, TrialTable], *, n_trials: int, chunk_size: int) -> OcAccumulator:
    """Whole per-trial tables (every simulated design of a scenario, the same trials) cut into the blocks a
    streamed run uses, merged in order."""
    acc = OcAccumulator()
    step = block_units(chunk_size) * chunk_size
    for i, a in enumerate(range(0, max(n_trials, 1), step)):
        acc.add(i, {d: slice_table(t, a, min(a + step, n_trials)) for d, t in tables.items()})
    return acc


def _design_rec(rec: np.ndarray, design: int) -> np.ndarray:
    """The columns of one design of a packed unit (a view)."""
    names = [n for n in rec.dtype.names or () if n.split(":", 1)[0] == str(design)]
    return rec[names]


class BlockFeeder:
    """Units of one scenario in (any order); each complete block of units out to ``tables`` and the accumulator.

    ``tables(outs)`` builds the per-trial tables of a block from its outcomes
    under each simulated design (built with ``all_stop_reasons=True``);
    ``durations`` (when the study tracks time) collects each block's trial
    durations per design, for the quantiles, which need every trial.
    """

    def __init__(self, n_units: int, chunk_size: int, tables: Callable[[list[TrialOutcomes]], dict[str, TrialTable]],
                 *, timed: bool) -> None:
        self.per_block = block_units(chunk_size)
        self.n_units = n_units
        self.tables = tables
        self.acc = OcAccumulator()
        self.waiting: dict[int, dict[int, np.ndarray]] = {}
        self.timed = timed
        self.durations: dict[int, list[np.ndarray]] = {}

    def add(self, chunk: int, rec: np.ndarray) -> None:
        b = chunk // self.per_block
        got = self.waiting.setdefault(b, {})
        got[chunk] = rec
        size = min(self.per_block, self.n_units - b * self.per_block)
        if len(got) < size:
            return
        del self.waiting[b]
        outs = concat_units([got[c] for c in sorted(got)])
        del got
        if self.timed:
            self.durations[b] = [np.asarray(o.duration, float) if o.duration is not None else np.zeros(0)
                                 for o in outs]
        self.acc.add(b, self.tables(outs))

    def duration(self, design: int) -> np.ndarray:
        """Every trial's duration under simulated design ``design`` (index), in trial order."""
        return np.concatenate([self.durations[b][design] for b in sorted(self.durations)])


class UnitStore:
    """The unit files of a run, read back one at a time: ``{scenario: [(chunk, path), ...]}``."""

    def __init__(self) -> None:
        self.paths: dict[int, dict[int, Path]] = {}

    def add(self, scenario: int, chunk: int, path: Path) -> None:
        self.paths.setdefault(scenario, {})[chunk] = Path(path)

    def _files(self, scenario: int) -> list[Path]:
        got = self.paths[scenario]
        return [got[c] for c in sorted(got)]

    def n_trials(self, scenario: int) -> int:
        return sum(int(np.load(p, mmap_mode="r").shape[0]) for p in self._files(scenario))

    def parts(self, scenario: int, design: int) -> Iterator[TrialOutcomes]:
        """The outcomes under ``design`` unit by unit, in trial order (weights as stored: see :func:`regroup`)."""
        for p in self._files(scenario):
            yield concat_units([_design_rec(np.load(p, allow_pickle=False), design)])[0]

    def column(self, scenario: int, design: int, field: str) -> Iterator[np.ndarray]:
        """One outcome field (``"n"``, ``"x.death"``, ...) under ``design``, unit by unit, original dtype."""
        prefix = f"{design}:{field}:"
        for p in self._files(scenario):
            rec = np.load(p, mmap_mode="r")
            name = next(n for n in rec.dtype.names if n.startswith(prefix))
            yield np.asarray(rec[name]).astype(np.dtype(name[len(prefix):]))
            del rec

    def fields(self, scenario: int, design: int) -> list[str]:
        """The outcome fields stored for ``design`` (as in the first unit)."""
        rec = np.load(self._files(scenario)[0], mmap_mode="r")
        return [n.split(":")[1] for n in rec.dtype.names if n.split(":", 1)[0] == str(design)]

    def outcomes(self, scenario: int, design: int) -> TrialOutcomes:
        """The whole scenario's outcomes under ``design`` (materialised; weights ``1/T``)."""
        from numpy.lib.recfunctions import repack_fields

        recs = [repack_fields(_design_rec(np.load(p, allow_pickle=False), design)) for p in self._files(scenario)]
        return concat_units(recs)[0]


def regroup(parts: Iterator[TrialOutcomes], n_trials: int, size: int) -> Iterator[TrialOutcomes]:
    """Consecutive parts regrouped into runs of ``size`` trials (the last shorter), weights ``1/n_trials``."""
    buf: list[TrialOutcomes] = []
    held = 0

    def emit(group: list[TrialOutcomes]) -> TrialOutcomes:
        o = group[0] if len(group) == 1 else TrialOutcomes.concat(group)
        return dataclasses.replace(o, weight=np.full(o.n_trials, 1.0 / n_trials))

    for p in parts:
        buf.append(p)
        held += p.n_trials
        while held >= size:
            whole = emit(buf)
            yield _cut(whole, 0, size)
            rest = _cut(whole, size, whole.n_trials)
            buf, held = ([rest] if rest.n_trials else []), rest.n_trials
    if held:
        yield emit(buf)


def _cut(o: TrialOutcomes, a: int, b: int) -> TrialOutcomes:
    return o.rows(a, b)


@dataclasses.dataclass(frozen=True, slots=True)
class _Stored:
    store: UnitStore
    scenario: int
    design: int


class StoredOutcomes(Mapping[tuple[str, str], TrialOutcomes]):
    """``{(scenario, design): TrialOutcomes}`` whose large entries stay in the unit files until asked for.

    Entries held in memory (small scenarios, exact enumeration) are returned
    as they are; a stored entry is read back from the unit files at each
    access (:meth:`UnitStore.outcomes`), so holding the mapping costs nothing.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], TrialOutcomes | _Stored] = {}

    def hold(self, key: tuple[str, str], value: TrialOutcomes) -> None:
        self._items[key] = value

    def refer(self, key: tuple[str, str], store: UnitStore, scenario: int, design: int) -> None:
        self._items[key] = _Stored(store, scenario, design)

    def __getitem__(self, key: tuple[str, str]) -> TrialOutcomes:
        v = self._items[key]
        return v.store.outcomes(v.scenario, v.design) if isinstance(v, _Stored) else v

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def stored(self, key: tuple[str, str]) -> Any:
        """``(store, scenario, design)`` of a stored entry, or None for one held in memory."""
        v = self._items[key]
        return (v.store, v.scenario, v.design) if isinstance(v, _Stored) else None

    def parts(self, key: tuple[str, str], size: int) -> Iterator[TrialOutcomes]:
        """The entry in runs of ``size`` trials (weights ``1/T``), one unit file read at a time."""
        v = self._items[key]
        if not isinstance(v, _Stored):
            yield from (_cut(v, a, a + size) for a in range(0, max(v.n_trials, 1), size))
            return
        n = v.store.n_trials(v.scenario)
        yield from regroup(v.store.parts(v.scenario, v.design), n, size)

