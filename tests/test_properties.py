"""Property-based checks (hypothesis) of the numerical building blocks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.design.boin import BoinConfig, boin_boundaries
from escalade.design.isotonic import isotonic_regression


def _pava(y: list[float], w: list[float]) -> list[float]:
    """Textbook pool-adjacent-violators, one block at a time (reference implementation)."""
    blocks = [[yi, wi, 1] for yi, wi in zip(y, w)]
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] > blocks[i + 1][0]:
            a, b = blocks[i], blocks[i + 1]
            wt = a[1] + b[1]
            blocks[i] = [(a[0] * a[1] + b[0] * b[1]) / wt, wt, a[2] + b[2]]
            del blocks[i + 1]
            i = max(i - 1, 0)
        else:
            i += 1
    out = []
    for v, _, k in blocks:
        out += [v] * k
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0.1, 10)), min_size=1, max_size=12))
def test_isotonic_equals_pava(pairs: list[tuple[float, float]]) -> None:
    y = [p[0] for p in pairs]
    w = [p[1] for p in pairs]
    np.testing.assert_allclose(isotonic_regression(y, w), _pava(y, w), atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0.1, 10), st.booleans()), min_size=1, max_size=10))
def test_isotonic_with_mask_skips_positions(rows: list[tuple[float, float, bool]]) -> None:
    y = np.array([r[0] for r in rows])
    w = np.array([r[1] for r in rows])
    m = np.array([r[2] for r in rows])
    fit = isotonic_regression(y, w, m)
    assert np.all(np.isnan(fit[~m]))
    if m.any():
        np.testing.assert_allclose(fit[m], _pava(list(y[m]), list(w[m])), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 0.6))
def test_boin_boundaries_properties(target: float) -> None:
    cfg = BoinConfig(target=target, n_doses=3)
    assert cfg.lambda_e < target < cfg.lambda_d  # Liu & Yuan (2015), section 2
    b = boin_boundaries(target, 30, cfg.p_saf, cfg.p_tox)
    n = np.arange(1, 31)
    assert np.all(b.escalate[1:] < b.deescalate[1:])
    assert np.all(np.diff(b.escalate[1:]) >= 0) and np.all(np.diff(b.deescalate[1:]) >= 0)
    elim = b.eliminate[1:]
    assert np.all((elim >= b.deescalate[1:]) | (elim > n) | (b.deescalate[1:] == elim))
    assert np.all(b.escalate[1:] / n <= cfg.lambda_e + 1e-12)
