"""A work unit's results as one record array: how they travel from a worker and how they are stored.

One unit (a chunk of trials of one scenario, run under every design of the
study) becomes a single NumPy structured array with one record per trial and,
for design ``i`` and outcome field ``f`` of original dtype ``t``, a column
named ``"i:f:t"`` (``"1:n:<i8"``) holding the same integers in the smallest
type that fits (``int8`` for counts). One contiguous buffer pickles and
unpickles in a single copy, so a worker's result costs its parent almost
nothing to receive; on disk it is a plain ``.npy`` file (no pickle, readable
by ``numpy.load(..., allow_pickle=False)``), written to a temporary file and
renamed, so a unit file is either complete or absent. Restoring each column
to its original dtype makes the round trip exact, bit for bit.

Weights of simulated trials are ``1/T`` by construction and are not stored
(:meth:`TrialOutcomes.concat` renormalises them anyway); any other weight
column is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from escalade.simulations.atomic import replacing
from escalade.simulations.outcomes import TrialOutcomes

__all__ = ["pack", "unpack", "concat_units", "save_unit", "load_unit", "UNIT_SUFFIX"]

log = logging.getLogger(__name__)

UNIT_SUFFIX = ".npy"
FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "trial")  # always present
OPTIONAL = ("weight", "duration", "suspensions")  # present when not the default
_INT_TYPES = (np.int8, np.int16, np.int32)


def _narrow(a: np.ndarray) -> np.ndarray:
    """The same integers in the smallest signed type that holds them (lossless)."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for dt in _INT_TYPES:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt) if np.dtype(dt).itemsize < a.dtype.itemsize else a
    return a


def pack(outs: Sequence[TrialOutcomes]) -> np.ndarray:
    """One unit's outcomes under each design as a ``(T,)`` record array (see the module docstring)."""
    columns: list[tuple[str, np.ndarray]] = []
    for i, o in enumerate(outs):
        for f in (*FIELDS, *OPTIONAL):
            a = getattr(o, f)
            if a is None or (f == "weight" and np.array_equal(a, np.full(o.n_trials, 1.0 / o.n_trials))):
                continue
            a = np.asarray(a)
            columns.append((f"{i}:{f}:{a.dtype.str}", _narrow(a)))
        for name, a in sorted((o.extra or {}).items()):  # CAR-T tallies, "x.<name>"
            a = np.asarray(a)
            columns.append((f"{i}:x.{name}:{a.dtype.str}", _narrow(a)))
    t = columns[0][1].shape[0]
    rec = np.empty(t, dtype=[(name, a.dtype, a.shape[1:]) for name, a in columns])
    for name, a in columns:
        rec[name] = a
    return rec


def _layout(dtype: np.dtype) -> dict[int, dict[str, tuple[str, np.dtype]]]:
    """``{design: {field: (column, original dtype)}}`` from a record array's column names."""
    out: dict[int, dict[str, tuple[str, np.dtype]]] = {}
    for name in dtype.names or ():
        design, field, original = name.split(":", 2)
        out.setdefault(int(design), {})[field] = (name, np.dtype(original))
    return out


def concat_units(recs: Sequence[np.ndarray]) -> list[TrialOutcomes]:
    """The outcomes under each design of consecutive units (one scenario's chunks, in trial order)."""
    rec = recs[0] if len(recs) == 1 else np.concatenate(recs)
    outs = []
    for _, cols in sorted(_layout(rec.dtype).items()):
        a = {f: rec[name].astype(dt) for f, (name, dt) in cols.items()}
        t = rec.shape[0]
        extra = {f[2:]: v for f, v in a.items() if f.startswith("x.")} or None
        outs.append(TrialOutcomes(a["selected"], a["reason"], a["n"], a["tox"], a["eff"], a["both"], a["cohorts"],
                                  a.get("weight", np.full(t, 1.0 / t)), trial=a["trial"],
                                  duration=a.get("duration"), suspensions=a.get("suspensions"), extra=extra))
    return outs


def unpack(rec: np.ndarray) -> list[TrialOutcomes]:
    """Inverse of :func:`pack`: the unit's outcomes with their original dtypes."""
    return concat_units([rec])


def save_unit(path: Path, rec: np.ndarray) -> None:
    """Write a packed unit to ``path`` atomically (temporary file in the same folder, then rename)."""
    with replacing(path, UNIT_SUFFIX) as tmp, open(tmp, "wb") as fh:
        np.save(fh, rec, allow_pickle=False)


def load_unit(path: Path, n_designs: int, start: int, size: int) -> np.ndarray | None:
    """A stored unit, or None (with a warning) when it is unreadable or not the unit expected.

    Checked: every design ``0 .. n_designs - 1`` has every field of
    :data:`FIELDS`, and the trial indices are ``start .. start + size - 1``.
    """
    try:
        rec = np.load(path, allow_pickle=False)
        layout = _layout(rec.dtype)
        if rec.ndim != 1 or sorted(layout) != list(range(n_designs)):
            raise ValueError("not a unit of this study's designs")
        for cols in layout.values():
            missing = [f for f in FIELDS if f not in cols]
            if missing:
                raise KeyError(missing[0])
            if not np.array_equal(rec[cols["trial"][0]], np.arange(start, start + size)):
                raise ValueError("trial indices are not this unit's")
        return rec
    except (OSError, KeyError, ValueError, TypeError, EOFError) as exc:
        log.warning("unit file %s is unreadable (%s); recomputing it", path, exc)
        return None
