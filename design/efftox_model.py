"""The EffTox probability model: outcome cells, coded doses, the utility contour.

Thall & Cook (2004), Biometrics 60:684-693; Thall, Herrick, Nguyen, Venier &
Norris (2014), Clin Trials 11:657-666. These pieces are shared by the design
(:mod:`escalade.design.efftox`), the importance-sampling engine
(:mod:`escalade.design.efftox_engine`) and the PyMC model
(:mod:`escalade.design.efftox_pymc`); they import this module, never each
other's, so the three form no import circle.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

from escalade.design.base import FloatArray, IntArray, States
from escalade.design.config import check_probability
from escalade.design.errors import ConfigError

__all__ = ["CELLS", "PARAMETERS", "coded_doses", "solve_p", "efftox_utility", "joint_probabilities", "cell_counts"]

#: The four joint outcome cells per dose, (efficacy, toxicity) =
#: (1, 1), (1, 0), (0, 1), (0, 0); trialr's B, E, T, N.
CELLS: Final[tuple[str, ...]] = ("both", "eff_only", "tox_only", "neither")

#: Model parameters in the order used by every array of six.
PARAMETERS: Final[tuple[str, ...]] = ("alpha", "beta", "gamma", "zeta", "eta", "psi")

_P_XTOL: Final[float] = 1e-15  # absolute tolerance of the root p (machine precision near p ~ 1)


def coded_doses(doses: ArrayLike) -> FloatArray:
    """Standardised doses :math:`x_j = \\log d_j - \\frac{1}{J}\\sum_i \\log d_i` (Thall et al. 2014).

    Examples
    --------
    >>> coded_doses([1, 2, 4, 6.6, 10]).round(6).tolist()
    [-1.253819, -0.560672, 0.132475, 0.63325, 1.048766]
    """
    d = np.asarray(doses, float)
    if d.ndim != 1 or d.size < 1 or np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise ConfigError("doses", list(np.atleast_1d(d)), "must be a list of positive dose amounts")
    logd = np.log(d)
    return logd - logd.mean()


def solve_p(eff0: float, tox1: float, eff_star: float, tox_star: float) -> float:
    """Exponent :math:`p` of the contour through the three elicited points.

    Solves :math:`a^p + b^p = 1` with :math:`a = (1-e^*)/(1-e_0)`,
    :math:`b = t^*/t_1` (Thall & Cook 2004, section 3). For
    :math:`a, b \\in (0, 1)` the left side falls strictly from 2 (at
    :math:`p = 0`) to 0, so the positive root is unique; Brent's method brackets
    it and stops at an absolute tolerance of 1e-15.

    ``trialr::efftox_solve_p`` uses ``uniroot`` with its default tolerance
    (about 1.2e-4) and returns 0.977363190505906 for the Thall et al. (2014)
    contour; the root is 0.977368267459384.

    Raises
    ------
    ConfigError
        When the points do not define a contour: need ``0 <= eff0 < eff_star < 1``
        and ``0 < tox_star < tox1 <= 1``.

    Examples
    --------
    >>> round(solve_p(0.5, 0.65, 0.7, 0.25), 15)
    0.977368267459384
    """
    for name, v in (("eff0", eff0), ("tox1", tox1), ("eff_star", eff_star), ("tox_star", tox_star)):
        check_probability(name, v)
    if not eff0 < eff_star < 1.0:
        raise ConfigError("eff_star", eff_star, f"must lie in (eff0, 1) = ({eff0}, 1) for the contour to exist")
    if not 0.0 < tox_star < tox1:
        raise ConfigError("tox_star", tox_star, f"must lie in (0, tox1) = (0, {tox1}) for the contour to exist")
    a = (1.0 - eff_star) / (1.0 - eff0)
    b = tox_star / tox1
    la, lb = math.log(a), math.log(b)

    def f(p: float) -> float:
        return math.exp(p * la) + math.exp(p * lb) - 1.0

    hi = 1.0
    while f(hi) > 0.0:
        hi *= 2.0
        if hi > 1e12:  # pragma: no cover - unreachable for a, b < 1
            raise ConfigError("eff_star", eff_star, "gives no finite contour exponent p; move (eff_star, tox_star)")
    return float(optimize.brentq(f, 0.0, hi, xtol=_P_XTOL, rtol=4 * np.finfo(float).eps, maxiter=500))


def efftox_utility(prob_eff: ArrayLike, prob_tox: ArrayLike, *, eff0: float, tox1: float, p: float) -> FloatArray:
    """Utility :math:`u(\\pi_E, \\pi_T) = 1 - [((1-\\pi_E)/(1-e_0))^p + (\\pi_T/t_1)^p]^{1/p}`.

    Vectorised (arrays broadcast). Zero on the neutral contour, 1 at
    :math:`(1, 0)`, negative below the contour. Thall & Cook (2004), section 3.

    Examples
    --------
    >>> p = solve_p(0.5, 0.65, 0.7, 0.25)
    >>> float(np.round(efftox_utility(0.6, 0.1, eff0=0.5, tox1=0.65, p=p), 6))
    0.036252
    >>> float(efftox_utility(0.5, 0.0, eff0=0.5, tox1=0.65, p=p))
    0.0
    """
    e = np.asarray(prob_eff, float)
    t = np.asarray(prob_tox, float)
    a = ((1.0 - e) / (1.0 - eff0)) ** p
    b = (t / tox1) ** p
    return 1.0 - (a + b) ** (1.0 / p)


def joint_probabilities(prob_eff: ArrayLike, prob_tox: ArrayLike, psi: ArrayLike) -> FloatArray:
    """The four cell probabilities :math:`\\pi_{a,b}` in the order :data:`CELLS` (last axis).

    .. math::

        \\pi_{1,1} = \\pi_E\\pi_T\\,[1 + \\kappa(1-\\pi_E)(1-\\pi_T)], \\quad
        \\pi_{1,0} = \\pi_E(1-\\pi_T)\\,[1 - \\kappa(1-\\pi_E)\\pi_T],

        \\pi_{0,1} = (1-\\pi_E)\\pi_T\\,[1 - \\kappa\\pi_E(1-\\pi_T)], \\quad
        \\pi_{0,0} = (1-\\pi_E)(1-\\pi_T)\\,[1 + \\kappa\\pi_E\\pi_T],

    with :math:`\\kappa = (e^\\psi - 1)/(e^\\psi + 1) = \\tanh(\\psi/2)`: Thall &
    Cook (2004) eq. 1 factored. The cells sum to 1 and are positive for any
    :math:`\\psi`.

    Examples
    --------
    >>> joint_probabilities(0.5, 0.2, 0.0).round(3).tolist()
    [0.1, 0.4, 0.1, 0.4]
    """
    e = np.asarray(prob_eff, float)
    t = np.asarray(prob_tox, float)
    k = np.tanh(0.5 * np.asarray(psi, float))
    e, t, k = np.broadcast_arrays(e, t, k)
    return np.stack([
        e * t * (1.0 + k * (1.0 - e) * (1.0 - t)),
        e * (1.0 - t) * (1.0 - k * (1.0 - e) * t),
        (1.0 - e) * t * (1.0 - k * e * (1.0 - t)),
        (1.0 - e) * (1.0 - t) * (1.0 + k * e * t),
    ], axis=-1)


def cell_counts(states: States) -> IntArray:
    """``(S, D, 4)`` joint cell counts of a batch, in the order :data:`CELLS`.

    ``both``, ``eff - both``, ``tox - both``, ``n - tox - eff + both``.
    """
    n, tox, eff, both = states.n, states.tox, states.eff, states.both
    c = np.stack([both, eff - both, tox - both, n - tox - eff + both], axis=-1)
    if np.any(c < 0):
        bad = int(np.argmax((c < 0).any(axis=(1, 2))))
        raise ValueError(
            f"state {bad} has inconsistent counts (need both <= tox, eff and tox + eff - both <= n): "
            f"n={n[bad].tolist()}, tox={tox[bad].tolist()}, eff={eff[bad].tolist()}, both={both[bad].tolist()}"
        )
    return c.astype(np.int64)
