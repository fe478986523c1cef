"""Operating characteristics from accumulated moments: memory flat in the number of simulated trials.

Every characteristic of ``oc.csv`` is a ratio of means :math:`\\hat R = \\bar a / \\bar b` of two per-trial
quantities (:class:`~escalade.simulations.oc.PerTrial`; :math:`b_i = 1` for a plain mean), with the
delta-method standard error of :mod:`escalade.simulations.oc`:

.. math::

    \\mathrm{SE}(\\hat R)^2 = \\frac{1}{T(T-1)\\,\\bar b^2} \\sum_i (a_i - \\hat R b_i)^2
    = \\frac{M_{aa} - 2\\hat R M_{ab} + \\hat R^2 M_{bb}}{T(T-1)\\,\\bar b^2},

where :math:`M_{xy} = \\sum_i (x_i - \\bar x)(y_i - \\bar y)` are centred sums of products (the second form
holds because :math:`\\bar a - \\hat R \\bar b = 0`). So the count :math:`T`, the means and the centred sums of
products of a few per-trial variables carry everything the value and its SE need. To keep the digits that
the second form would lose to cancellation (a ratio that is the same in every trial has SE 0, and
:math:`M_{aa} - 2\\hat R M_{ab} + \\hat R^2 M_{bb}` would leave :math:`\\sqrt{\\epsilon}`-sized noise), the sums
are kept for :math:`z = (a, b, e)` with :math:`e = a - r b`, where :math:`r` is a reference ratio (the first
block's): :math:`\\sum_i (a_i - \\hat R b_i)^2 = M_{ee} - 2\\delta M_{eb} + \\delta^2 M_{bb}` with
:math:`\\delta = \\hat R - r`, which is small. The paired difference of designs :math:`A` and :math:`B` on the
same trials needs, in the same way, the sums for :math:`z = (e^A, b^A, e^B - e^A, b^B - b^A)`: the
difference of influence values is a linear form :math:`c^\\top z_i` (coefficients from :math:`\\bar b`,
:math:`\\delta` of each design), whose sum of squares is :math:`c^\\top M_{zz} c`. Differences, not the two
designs' raw values, are accumulated, so that designs that agree on most trials lose no digits, and designs
that agree on every trial get a paired SE of exactly 0, as before. A block's sums are first taken about its
own ratios and referred to the first block's when merged (:math:`e \\mapsto e + (r_{block} - r) b`, a linear
map of :math:`z`).

A scenario's simulated trials are summarised in *blocks* of consecutive work units (at least
:data:`OC_BLOCK_TRIALS` trials, :func:`block_units`), each block's moments computed in two passes (means,
then centred products) and the blocks merged in trial order with the pairwise update of Chan, Golub &
LeVeque (1983), *The American Statistician* 37:242-247, eq. 2.1:

.. math::

    M = M_1 + M_2 + \\delta\\delta^\\top \\frac{n_1 n_2}{n_1 + n_2}, \\qquad \\delta = \\bar z_2 - \\bar z_1.

Only one block's per-trial rows are held at a time (plus the blocks that arrive ahead of an unfinished one),
whatever the number of trials; the block layout depends on the study's ``chunk_size`` only, never on the
workers or the order units finish in, so the numbers are the same for any workers. They equal the
whole-array formulas of :mod:`escalade.simulations.oc` up to rounding (differences of order 1e-15 of the
larger of a value and its SE; a test checks <= 1e-12; where the old formulas left rounding noise in an SE
that is exactly 0, say 1e-31 for a sample size that is 30 in every trial, these give 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from escalade.simulations.oc import PAIRED_COLUMNS, TrialTable

__all__ = ["OC_BLOCK_TRIALS", "block_units", "OcAccumulator"]

#: Fewest trials per block of accumulated moments (a block is a run of whole work units; see the module docstring).
OC_BLOCK_TRIALS: Final[int] = 65_536

_OC_COLUMNS = ["scenario", "design", "metric", "dose", "value", "se", "exact"]

Key = tuple[str, str]


def block_units(chunk_size: int) -> int:
    """Work units per block: the fewest whole units of ``chunk_size`` trials holding :data:`OC_BLOCK_TRIALS`.

    >>> block_units(500), block_units(10_000), block_units(100_000)
    (132, 7, 1)
    """
    return max(1, -(-OC_BLOCK_TRIALS // max(1, int(chunk_size))))


@dataclass(slots=True, eq=False)
class _Co:
    """Count, means ``(k, m)`` and centred sums of products ``(k, k, m)`` of ``k`` variables, for ``m`` items."""

    n: int
    mean: np.ndarray
    m2: np.ndarray

    def merge(self, other: _Co) -> _Co:
        """The moments of both sets of trials (Chan, Golub & LeVeque 1983, eq. 2.1)."""
        n = self.n + other.n
        d = other.mean - self.mean
        f = self.n * other.n / n
        return _Co(n, self.mean + d * (other.n / n), self.m2 + other.m2 + d[:, None] * d[None, :] * f)

    def mapped(self, lin: np.ndarray) -> _Co:
        """The moments of ``L z`` for a linear map ``L`` ``(k, k, m)``, one per item."""
        return _Co(self.n, np.einsum("ijm,jm->im", lin, self.mean),
                   np.einsum("ijm,jlm,klm->ikm", lin, self.m2, lin))


#: Values held at a time when a block's columns are stacked (columns are summarised in groups of this many values).
_GROUP_VALUES: Final[int] = 1 << 20


def _co(vs: Sequence[np.ndarray]) -> _Co:
    """Means ``(k, g)`` and centred sums of products ``(k, k, g)`` of ``k`` variables ``(g, T)`` (two passes;
    each row summed on its own, pairwise, so a column's moments do not depend on the others of its group)."""
    k = len(vs)
    t = vs[0].shape[1]
    mean = np.stack([v.sum(axis=1) / t for v in vs])
    cs = [v - mu[:, None] for v, mu in zip(vs, mean)]
    m2 = np.zeros((k, k, mean.shape[1]))
    for i in range(k):
        for j in range(i, k):
            m2[i, j] = m2[j, i] = (cs[i] * cs[j]).sum(axis=1)
    return _Co(t, mean, m2)


def _groups(m: int, t: int) -> list[slice]:
    g = max(1, _GROUP_VALUES // max(t, 1))
    return [slice(a, min(a + g, m)) for a in range(0, m, g)]


def _concat(parts: list[_Co], n: int, k: int) -> _Co:
    if not parts:
        return _Co(n, np.zeros((k, 0)), np.zeros((k, k, 0)))
    return _Co(n, np.concatenate([p.mean for p in parts], axis=-1), np.concatenate([p.m2 for p in parts], axis=-1))


@dataclass(frozen=True, slots=True, eq=False)
class _Layout:
    names: tuple[str, ...]
    keys: dict[str, tuple[Key, ...]]
    scale: dict[str, np.ndarray]
    objective: dict[str, str | None]
    pairs: tuple[tuple[str, str, tuple[Key, ...]], ...]  # (base, other, scalar keys both hold, other's order)

    @classmethod
    def of(cls, tables: Mapping[str, TrialTable]) -> _Layout:
        names = tuple(tables)
        keys = {d: tuple(t.columns) for d, t in tables.items()}
        pairs = []
        for i, base in enumerate(names):
            for other in names[i + 1:]:
                shared = tuple(k for k in keys[other] if k[1] == "" and k in tables[base].columns
                               and not (k[0] == "optimal_selection_pct"
                                        and tables[other].objective != tables[base].objective))
                pairs.append((base, other, shared))
        return cls(names, keys, {d: np.array([t.columns[k].scale for k in keys[d]], float) for d, t in tables.items()},
                   {d: t.objective for d, t in tables.items()}, tuple(pairs))


def _ab(tables: Mapping[str, TrialTable], design: str, keys: Sequence[Key]) -> tuple[np.ndarray, np.ndarray]:
    """Numerators and denominators (1 for a mean) of some columns, stacked ``(len(keys), T)``."""
    cols = [tables[design].columns[k] for k in keys]
    t = tables[design].trial.size
    a = np.empty((len(keys), t))
    b = np.ones((len(keys), t))
    for i, c in enumerate(cols):
        a[i] = c.num
        if c.den is not None:
            b[i] = c.den
    return a, b


def _ratio_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row's ratio of sums (0 where ``b`` is 0 throughout): the block's reference ``r`` for ``e = a - r b``."""
    sb = b.sum(axis=1)
    sa = a.sum(axis=1)
    return np.where(sb != 0.0, sa / np.where(sb != 0.0, sb, 1.0), 0.0)


@dataclass(slots=True, eq=False)
class _State:
    """Moments of a run of trials: per design ``z = (a, b, e)`` with ``e = a - r b`` (``r``: reference ratio per
    column), per pair of designs ``z = (e_base, b_base, e_other - e_base, b_other - b_base)`` per shared key."""

    own: dict[str, _Co]
    ref: dict[str, np.ndarray]
    pairs: dict[tuple[str, str], _Co]


def _block(tables: Mapping[str, TrialTable], layout: _Layout) -> _State:
    """One block's moments, each column referred to the block's own ratio."""
    n = next(iter(tables.values())).trial.size
    own, ref = {}, {}
    for d in layout.names:
        keys = layout.keys[d]
        parts, rs = [], []
        for g in _groups(len(keys), n):
            a, b = _ab(tables, d, keys[g])
            r = _ratio_of(a, b)
            parts.append(_co((a, b, a - r[:, None] * b)))
            rs.append(r)
        own[d], ref[d] = _concat(parts, n, 3), (np.concatenate(rs) if rs else np.zeros(0))
    pairs = {}
    for base, other, shared in layout.pairs:
        ib = np.array([layout.keys[base].index(k) for k in shared], int)
        io = np.array([layout.keys[other].index(k) for k in shared], int)
        parts = []
        for g in _groups(len(shared), n):
            a0, b0 = _ab(tables, base, shared[g])
            a1, b1 = _ab(tables, other, shared[g])
            e0 = a0 - ref[base][ib[g]][:, None] * b0
            e1 = a1 - ref[other][io[g]][:, None] * b1
            parts.append(_co((e0, b0, e1 - e0, b1 - b0)))
        pairs[(base, other)] = _concat(parts, n, 4)
    return _State(own, ref, pairs)


def _merge(x: _State, y: _State, layout: _Layout) -> _State:
    """Merge block ``y`` into ``x`` after referring ``y``'s ``e`` to ``x``'s reference ratios
    (``e_x = e_y + (r_y - r_x) b``), so that a column whose ratio is the same in every trial keeps ``e = 0``."""
    delta = {d: y.ref[d] - x.ref[d] for d in layout.names}
    own = {}
    for d in layout.names:
        m = delta[d].size
        lin = np.zeros((3, 3, m))
        lin[0, 0] = lin[1, 1] = lin[2, 2] = 1.0
        lin[2, 1] = delta[d]
        own[d] = x.own[d].merge(y.own[d].mapped(lin))
    pairs = {}
    for base, other, shared in layout.pairs:
        ib = [layout.keys[base].index(k) for k in shared]
        io = [layout.keys[other].index(k) for k in shared]
        d0, d1 = delta[base][ib], delta[other][io]
        lin = np.zeros((4, 4, len(shared)))
        lin[0, 0] = lin[1, 1] = lin[2, 2] = lin[3, 3] = 1.0
        lin[0, 1] = d0
        lin[2, 1] = d1 - d0
        lin[2, 3] = d1
        pairs[(base, other)] = x.pairs[(base, other)].merge(y.pairs[(base, other)].mapped(lin))
    return _State(own, x.ref, pairs)


class OcAccumulator:
    """Operating characteristics of one scenario's simulated designs, from blocks of trials merged in order.

    Call :meth:`add` with each block's per-trial tables (one
    :class:`~escalade.simulations.oc.TrialTable` per design, the designs in
    study order, every table built with ``all_stop_reasons=True`` so that all
    blocks hold the same columns) and the block's index; blocks may come in
    any order and are merged in index order. Then :meth:`oc_rows`,
    :meth:`estimate` and :meth:`paired` give ``oc.csv`` and ``paired.csv``
    rows, as :func:`~escalade.simulations.oc.oc_rows` and
    :func:`~escalade.simulations.oc.paired_from_tables` give them from whole
    tables (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from escalade.simulations.oc import PerTrial, TrialTable
    >>> x = np.array([1.0, 0.0, 1.0, 1.0])
    >>> def table(rows):
    ...     return TrialTable(np.arange(rows.size), np.full(rows.size, 0.25), False, {("m", ""): PerTrial(rows)})
    >>> acc = OcAccumulator()
    >>> acc.add(1, {"A": table(x[2:])})
    >>> acc.add(0, {"A": table(x[:2])})
    >>> value, se = acc.estimate("A", ("m", ""))
    >>> round(value, 12), round(se, 12), round(float(np.std(x, ddof=1) / 2), 12)
    (0.75, 0.25, 0.25)
    """

    def __init__(self) -> None:
        self._layout: _Layout | None = None
        self._state: _State | None = None
        self._waiting: dict[int, _State] = {}
        self._next = 0

    @property
    def n_trials(self) -> int:
        """Trials merged so far (blocks waiting for an earlier one not counted)."""
        return next(iter(self._state.own.values())).n if self._state is not None else 0

    @property
    def pending(self) -> int:
        """Blocks added but not merged yet (an earlier block is missing)."""
        return len(self._waiting)

    def add(self, index: int, tables: Mapping[str, TrialTable]) -> None:
        """Block ``index`` (0, 1, ...: the order of its trials) of every simulated design's per-trial table."""
        layout = _Layout.of(tables)
        if self._layout is None:
            self._layout = layout
        elif layout.keys != self._layout.keys or layout.names != self._layout.names:
            raise ValueError(f"block {index} of the characteristics holds other columns or designs than block "
                             f"{self._next}; build every block's tables with all_stop_reasons=True")
        if index < self._next or index in self._waiting:
            raise ValueError(f"block {index} of the characteristics was added twice")
        self._waiting[index] = _block(tables, self._layout)
        while self._next in self._waiting:
            block = self._waiting.pop(self._next)
            self._state = block if self._state is None else _merge(self._state, block, self._layout)
            self._next += 1

    def _check(self) -> _Layout:
        if self._layout is None or self._waiting:
            raise ValueError(f"the characteristics are incomplete: {len(self._waiting)} block(s) wait for block "
                             f"{self._next}" if self._layout is not None else "no block of trials was added")
        return self._layout

    def _ratio(self, design: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``R``, ``b̄``, ``R - r`` (``r``: the reference of ``e``) and the SE of ``R`` (unscaled) of every column."""
        assert self._state is not None
        c = self._state.own[design]
        ma, mb = c.mean[0], c.mean[1]
        t = c.n
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(mb != 0.0, ma / np.where(mb != 0.0, mb, 1.0), np.nan)
            dr = r - self._state.ref[design]
            ss = c.m2[2, 2] - 2.0 * dr * c.m2[2, 1] + dr * dr * c.m2[1, 1]  # sum (a - R b)^2 = sum (e - dr b)^2
            se = np.sqrt(np.maximum(ss, 0.0) / (mb * mb) / (t - 1) / t) if t >= 2 else np.zeros_like(r)
        return r, mb, dr, np.where(np.isfinite(r), se, np.nan)

    def estimates(self, design: str) -> tuple[tuple[Key, ...], np.ndarray, np.ndarray]:
        """Keys, values and Monte Carlo SEs of every column of ``design`` (as ``TrialTable.estimate``)."""
        layout = self._check()
        r, _, _, se = self._ratio(design)
        s = layout.scale[design]
        return layout.keys[design], s * r, s * se

    def estimate(self, design: str, key: Key) -> tuple[float, float]:
        """Value and Monte Carlo SE of one characteristic of ``design``."""
        keys, value, se = self.estimates(design)
        i = keys.index(key)
        return float(value[i]), float(se[i])

    def oc_rows(self, design: str, *, scenario: str = "", skip: Sequence[str] = ()) -> pd.DataFrame:
        """``oc.csv`` rows of ``design`` (metrics in ``skip`` left out; a stop reason no trial had, too)."""
        keys, value, se = self.estimates(design)
        assert self._state is not None
        hit = self._state.own[design].mean[0] != 0.0
        rows = [(m, d, float(v), float(e)) for (m, d), v, e, h in zip(keys, value, se, hit)
                if m not in skip and (m != "stop_pct" or h)]
        df = pd.DataFrame(rows, columns=["metric", "dose", "value", "se"])
        df.insert(0, "design", design)
        df.insert(0, "scenario", scenario)
        df["exact"] = False
        return df[_OC_COLUMNS]

    def paired(self, *, scenario: str = "") -> pd.DataFrame:
        """``paired.csv`` rows of every two designs (as :func:`~escalade.simulations.oc.paired_from_tables`)."""
        layout = self._check()
        rows = []
        assert self._state is not None
        for base, other, shared in layout.pairs:
            pc = self._state.pairs[(base, other)]
            if pc.n < 2:
                continue
            kb, kt = layout.keys[base], layout.keys[other]
            rb, mbb, db, seb = self._ratio(base)
            rt, mbt, dt, set_ = self._ratio(other)
            sb, st = layout.scale[base], layout.scale[other]
            for q, key in enumerate(shared):
                i, j = kb.index(key), kt.index(key)
                if not (np.isfinite(rb[i]) and np.isfinite(rt[j])):
                    continue
                c = np.array([1.0 / mbt[j] - 1.0 / mbb[i], db[i] / mbb[i] - dt[j] / mbt[j], 1.0 / mbt[j],
                              -dt[j] / mbt[j]])
                ss = float(c @ pc.m2[:, :, q] @ c)
                se = st[j] * math.sqrt(max(ss, 0.0) / (pc.n - 1) / pc.n)
                va, vb = st[j] * rt[j], sb[i] * rb[i]
                rows.append((scenario, other, base, key[0], float(va - vb), se,
                             float(np.hypot(st[j] * set_[j], sb[i] * seb[i]))))
        return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))
