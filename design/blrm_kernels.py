"""Compiled (numba) grid contractions of the CRM, TITE-CRM and BLRM posteriors.

:func:`escalade.design.crm.counts_loglik` and :func:`escalade.design.crm.grid_sums`
are written as NumPy element-wise sums in a fixed order (no BLAS), so a state's
posterior has the same bits in any batch. In NumPy the first is one pass over
the ``(S, G)`` output per count column and the second one product array and
one reduction per weight row: for the BLRM's 161 x 161 grid, some thirty
passes over ~0.8 million numbers per block of 32 states. Here each is one
loop, with the same arithmetic in the same order:

* :func:`counts_loglik_rows`: ``out[s, g] = ((c_0 t_0 + c_1 t_1) + c_2 t_2) + ...``,
  each product rounded, then added (as NumPy's ``out = c0 * t0; out += c1 * t1; ...``);
* :func:`grid_sums_rows`: ``out[s, j]`` is NumPy's pairwise summation
  (``numpy/_core/src/umath/loops_utils.h.src``, ``pairwise_sum``: below 8 terms a
  plain loop from 0; up to 128 terms eight interleaved partial sums combined as
  ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the remainder; above,
  split at half the length rounded down to a multiple of 8) of the rounded
  products ``values[s, g] * weight_rows[j, g]``, which is what
  ``np.add.reduce(values * weight_rows[j], axis=1)`` computes on a C-contiguous
  row (NumPy >= 1.9; checked bit for bit in ``tests/test_blrm_kernels.py``).

The kernels are compiled with ``fastmath`` off: no multiply-add is fused and no
sum is reordered by the compiler, so each result is the NumPy expression's, bit
for bit, whether the compiler vectorises the loops or not. They take
C-contiguous float64 arrays only (one signature each: one compile) and are
cached on disk (``cache=True``): a new environment compiles them on first use
(a few seconds), later processes load them.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

__all__ = ["counts_loglik_rows", "grid_sums_rows", "pairwise_plan"]

_BLOCK = 128  # NumPy's PW_BLOCKSIZE
_UNROLL = 8


_LEAF, _JOIN = 0, 1


@functools.lru_cache(maxsize=64)
def pairwise_plan(n: int) -> np.ndarray:
    """NumPy's summation tree for ``n`` terms as a post-order program ``(op, lo, len)``.

    ``op`` is :data:`_LEAF` (sum ``len`` terms from ``lo``: a plain loop below 8
    terms, eight partial sums up to 128) or :data:`_JOIN` (add the last two
    partial results, left + right), exactly the recursion of NumPy's
    ``pairwise_sum`` unrolled; the compiled kernel runs it on a small stack
    (numba cannot cache recursive functions).
    """
    ops: list[tuple[int, int, int]] = []

    def walk(lo: int, m: int) -> None:
        if m <= _BLOCK:
            ops.append((_LEAF, lo, m))
            return
        m2 = m // 2
        m2 -= m2 % _UNROLL
        walk(lo, m2)
        walk(lo + m2, m - m2)
        ops.append((_JOIN, 0, 0))

    walk(0, int(n))
    plan = np.asarray(ops, np.int64).reshape(-1, 3)
    plan.setflags(write=False)
    return plan


@njit(cache=True, nogil=True)
def _leaf(values: np.ndarray, wt: np.ndarray, lo: int, n: int, out: np.ndarray,
          acc: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[s, j]`` = NumPy's sum of ``values[s, lo:lo + n] * wt[lo:lo + n, j]`` (``n <= 128``), all ``s, j``.

    The leaf's weights stay in the L1 cache while every row is done.
    """
    s_n = values.shape[0]
    j_n = wt.shape[1]
    if n < _UNROLL:
        for s in range(s_n):
            for j in range(j_n):
                out[s, j] = 0.0
            for i in range(lo, lo + n):
                vi = values[s, i]
                for j in range(j_n):
                    out[s, j] += vi * wt[i, j]
        return
    m = lo + n - (n % _UNROLL)
    for s in range(s_n):
        for k in range(_UNROLL):
            vi = values[s, lo + k]
            for j in range(j_n):
                acc[k, j] = vi * wt[lo + k, j]
        i = lo + _UNROLL
        while i < m:
            for k in range(_UNROLL):
                vi = values[s, i + k]
                for j in range(j_n):
                    acc[k, j] += vi * wt[i + k, j]
            i += _UNROLL
        for j in range(j_n):
            out[s, j] = ((acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j])) + \
                        ((acc[4, j] + acc[5, j]) + (acc[6, j] + acc[7, j]))
        while i < lo + n:
            vi = values[s, i]
            for j in range(j_n):
                out[s, j] += vi * wt[i, j]
            i += 1


@njit(cache=True, nogil=True)
def grid_sums_rows(values: np.ndarray, weights: np.ndarray, plan: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``(S, G)`` by ``(G, J)`` -> ``(S, J)``: NumPy's ``np.add.reduce(values * weights[:, j], axis=1)``.

    ``weights`` is grid-major (the transpose of the weight rows); ``plan`` is
    :func:`pairwise_plan` of ``G``.
    """
    s_n = values.shape[0]
    j_n = weights.shape[1]
    stack = np.empty((plan.shape[0] + 1, s_n, j_n))
    acc = np.empty((_UNROLL, j_n))
    top = 0
    for p in range(plan.shape[0]):
        if plan[p, 0] == _LEAF:
            _leaf(values, weights, plan[p, 1], plan[p, 2], stack[top], acc)
            top += 1
        else:
            left = stack[top - 2]
            right = stack[top - 1]
            for s in range(s_n):
                for j in range(j_n):
                    left[s, j] = left[s, j] + right[s, j]
            top -= 1
    return stack[0].copy()


@njit(cache=True, nogil=True)
def counts_loglik_rows(counts: np.ndarray, table: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``(S, K)`` by ``(K, G)`` -> ``(S, G)``: ``((c_0 t_0 + c_1 t_1) + ...)``, term by term in order."""
    s_n, k_n = counts.shape
    g_n = table.shape[1]
    out = np.empty((s_n, g_n))
    for s in range(s_n):
        row = out[s]
        c0 = counts[s, 0]
        t0 = table[0]
        for g in range(g_n):
            row[g] = c0 * t0[g]
        for k in range(1, k_n):
            c = counts[s, k]
            t = table[k]
            for g in range(g_n):
                row[g] = row[g] + c * t[g]
    return out
