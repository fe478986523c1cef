"""Weighted isotonic (non-decreasing) regression, batched over rows.

Uses the min-max characterisation of the isotonic fit (Barlow, Bartholomew,
Bremner & Brunk 1972, Theorem 1.4):

.. math::

    \\hat y_i = \\max_{j \\le i} \\min_{k \\ge i} \\frac{\\sum_{l=j}^{k} w_l y_l}{\\sum_{l=j}^{k} w_l},

which equals the pool-adjacent-violators (PAVA) solution and needs no
sequential merging, so a whole batch of trials (``S`` rows, ``D <= ~20``
doses) is one ``O(S D^3)`` array computation. Positions with ``mask=False``
are left out of the fit (their output is NaN), as BOIN's ``select.mtd`` skips
untreated or eliminated doses.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["isotonic_regression", "unimodal_fits"]


def isotonic_regression(
    y: ArrayLike, w: ArrayLike | None = None, mask: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Non-decreasing weighted least-squares fit along the last axis.

    Parameters
    ----------
    y
        ``(..., D)`` values.
    w
        ``(..., D)`` positive weights (default 1).
    mask
        ``(..., D)`` booleans; False positions are excluded (output NaN).

    Returns
    -------
    numpy.ndarray
        Fitted values, NaN where ``mask`` is False.

    Examples
    --------
    >>> isotonic_regression([1.0, 3.0, 2.0, 4.0]).tolist()
    [1.0, 2.5, 2.5, 4.0]
    >>> isotonic_regression([3.0, 1.0, 2.0], mask=[True, False, True]).tolist()
    [2.5, nan, 2.5]
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.broadcast_to(np.asarray(w, dtype=np.float64), y.shape)
    m = np.ones(y.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), y.shape)
    wz = np.where(m, w, 0.0)
    yz = np.where(m, y, 0.0)
    d = y.shape[-1]
    zeros = np.zeros(y.shape[:-1] + (1,))
    cw = np.concatenate([zeros, np.cumsum(wz, axis=-1)], axis=-1)  # (..., D+1)
    cy = np.concatenate([zeros, np.cumsum(wz * yz, axis=-1)], axis=-1)
    # avg[..., j, k] = weighted mean of positions j..k (k >= j)
    num = cy[..., None, 1:] - cy[..., :-1, None]
    den = cw[..., None, 1:] - cw[..., :-1, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = num / den
    j_idx = np.arange(d)[:, None]
    k_idx = np.arange(d)[None, :]
    valid = (k_idx >= j_idx) & m[..., :, None] & m[..., None, :]
    # min over k >= i of avg[j, k]: suffix minimum along k
    big = np.where(valid, avg, np.inf)
    suffix_min = np.minimum.accumulate(big[..., ::-1], axis=-1)[..., ::-1]  # [..., j, i]
    # max over j <= i (j admissible, j <= i) of suffix_min[j, i]
    cand = np.where(m[..., :, None] & (j_idx <= k_idx), suffix_min, -np.inf)
    fit = np.max(cand, axis=-2)
    return np.where(m, fit, np.nan)


def unimodal_fits(
    y: ArrayLike, w: ArrayLike, *, weights: Literal["exact", "iso"] = "exact"
) -> NDArray[np.float64]:
    """Weighted umbrella (unimodal) fits for every position of the mode, batched over rows.

    Parameters
    ----------
    y
        ``(..., D)`` values.
    w
        ``(..., D)`` positive weights.
    weights
        ``"exact"``: the least-squares fit, non-decreasing up to the mode and
        non-increasing after it. ``"iso"``: the fit of ``Iso::ufit`` (R package
        Iso 0.0-18, as the BOIN12 authors' software calls it), whose last
        pooling step attaches the weights to the wrong points (see Notes).

    Returns
    -------
    numpy.ndarray
        ``(..., D, D)``: ``out[..., m, :]`` is the fit whose mode is at position ``m``.

    Notes
    -----
    For a mode ``m`` strictly inside, both algorithms fit the points before the
    mode by increasing isotonic regression and those after it by decreasing
    isotonic regression, merge the two fitted sequences in increasing order
    (ties: right-hand points first), put the mode's point last and fit an
    increasing isotonic regression to that sequence, which pools the mode with
    the side values that exceed it (Frisen 1986, Stout 2008). The merged
    sequence should carry each point's own weight, ``w[ind[p]]`` at merged
    position ``p`` (``ind``: original index of the ``p``-th merged point);
    ``Iso``'s Fortran (``unimode.r``) assigns ``w1(ind(i)) = w(i)``, i.e. the
    inverse permutation ``w[argsort(ind)[p]]``. The two agree when the merge
    leaves every point in place.

    Examples
    --------
    >>> f = unimodal_fits([[0.275, 0.138, 0.788]], [[6.87, 5.37, 8.26]])
    >>> f[0, 1].round(3).tolist()
    [0.275, 0.532, 0.532]
    """
    if weights not in ("exact", "iso"):
        raise ValueError(f"unimodal_fits: weights must be 'exact' or 'iso'; got {weights!r}")
    y = np.asarray(y, dtype=np.float64)
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), y.shape)
    d = y.shape[-1]
    out = np.empty(y.shape[:-1] + (d, d))
    if d == 0:
        return out
    out[..., d - 1, :] = isotonic_regression(y, w)
    if d == 1:
        return out
    out[..., 0, :] = isotonic_regression(y[..., ::-1], w[..., ::-1])[..., ::-1]
    for m in range(1, d - 1):
        left = isotonic_regression(y[..., :m], w[..., :m])
        right_rev = isotonic_regression(y[..., m + 1:][..., ::-1], w[..., m + 1:][..., ::-1])
        vals = np.concatenate([right_rev, left], axis=-1)
        origin = np.concatenate([np.arange(d - 1, m, -1), np.arange(m)])
        order = np.argsort(vals, axis=-1, kind="stable")
        merged = np.concatenate([np.take_along_axis(vals, order, -1), y[..., m:m + 1]], axis=-1)
        ind = np.concatenate([origin[order], np.full(order.shape[:-1] + (1,), m)], axis=-1)
        inv = np.argsort(ind, axis=-1)
        wm = np.take_along_axis(w, ind if weights == "exact" else inv, -1)
        out[..., m, :] = np.take_along_axis(isotonic_regression(merged, wm), inv, -1)
    return out
