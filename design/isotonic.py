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

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["isotonic_regression"]


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
