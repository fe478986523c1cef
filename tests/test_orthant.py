"""Normal orthant probabilities behind the derived P(DLT) (scenarios/cart.py ``normal_orthant``).

Checked against closed forms (Sheppard's orthant formulas at the origin, independence) and, away from the
origin, against SciPy's randomised quasi-Monte Carlo (Genz) within its own error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from escalade.scenarios.cart import normal_orthant


def _corr(rng: np.random.Generator, k: int) -> np.ndarray:
    a = rng.normal(size=(k, k))
    s = a @ a.T + 0.3 * np.eye(k)
    d = np.sqrt(np.diag(s))
    return s / np.outer(d, d)


@pytest.mark.parametrize("seed", range(5))
def test_sheppard_orthant_at_the_origin(seed: int) -> None:
    # P(Z1<0, Z2<0) = 1/4 + asin(r)/(2 pi); P(Z1<0, Z2<0, Z3<0) = 1/8 + sum asin(r_ij)/(4 pi)
    c = _corr(np.random.default_rng(seed), 3)
    assert normal_orthant(np.zeros(2), c[:2, :2]) == pytest.approx(0.25 + math.asin(c[0, 1]) / (2 * math.pi),
                                                                 abs=1e-14)
    want = 0.125 + (math.asin(c[0, 1]) + math.asin(c[0, 2]) + math.asin(c[1, 2])) / (4 * math.pi)
    assert normal_orthant(np.zeros(3), c) == pytest.approx(want, abs=1e-12)


def test_independence_is_the_product() -> None:
    u = np.array([0.4, -1.3, 2.1])
    assert normal_orthant(u, np.eye(3)) == pytest.approx(float(np.prod(special.ndtr(u))), abs=1e-13)
    assert normal_orthant(u[:1], np.eye(1)) == float(special.ndtr(u[0]))


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_genz_quasi_monte_carlo(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for k in (2, 3):
        c = _corr(rng, k)
        u = rng.normal(size=k) * 1.5
        ref = stats.multivariate_normal.cdf(u, cov=c, abseps=1e-10, releps=1e-10, rng=np.random.default_rng(0))
        assert normal_orthant(u, c) == pytest.approx(ref, abs=1e-7)


def test_symmetric_in_the_order_of_the_variables() -> None:
    rng = np.random.default_rng(7)
    c, u = _corr(rng, 3), rng.normal(size=3)
    p = [2, 0, 1]
    assert normal_orthant(u[p], c[np.ix_(p, p)]) == pytest.approx(normal_orthant(u, c), abs=1e-12)


def test_four_variables_use_genz() -> None:
    u4 = np.array([0.2, -0.4, 1.0, 0.6])
    assert normal_orthant(u4, np.eye(4)) == pytest.approx(float(np.prod(special.ndtr(u4))), abs=1e-7)
