"""Quadrature for the CRM posterior: one fixed grid of :math:`\\beta` per configuration.

The CRM's posterior mean, variance and :math:`\\Pr(p_1 > \\phi)` are
integrals over the scalar parameter :math:`\\beta`
(:mod:`escalade.design.crm`); this module builds the grid and its weights,
cached per configuration. It knows nothing of trials or rules.

The posterior is integrated on one fixed grid of :math:`\\beta` per
configuration (cached), so that a batch of ``S`` states costs one matrix
product ``loglik[S, G] = [tox, n - tox][S, 2D] @ [log p; log(1 - p)][2D, G]``,
one ``exp`` and one product with a ``(G, 4)`` weight matrix (denominator,
the two numerators, the CDF below :math:`\\beta^*`), done per distinct
``(n, tox)`` in cache-sized blocks.

* Grid: uniform on :math:`[-10, 10]`; composite rule of local quintic
  interpolation, i.e. the trapezoidal rule (all interior weights equal to the
  step :math:`h`) with sixth-order end corrections. For a posterior of standard
  deviation :math:`s` that vanishes at :math:`\\pm 10` the trapezoidal error is
  about :math:`2 e^{-2\\pi^2 s^2/h^2}`.
* Step: :func:`~escalade.design.crm.crm_fit` (single fits, reports) uses 2,000 intervals
  (:math:`h = 0.01`); a design uses :func:`design_intervals`, from the smallest
  posterior standard deviation reachable with ``max_n`` patients
  (:math:`h = 0.7 s_{\\min}`, or :math:`0.4 s_{\\min}` with the safety rule),
  e.g. 142 intervals for the empiric model with 36 patients.
* Tails: where the prior puts mass above :math:`10^{-16}` outside
  :math:`(-10, 10)` (large ``prior_var``, or the :math:`N(0, 500^2)` prior that
  ``crmsim`` uses when the MLE does not exist) the denominator adds
  Gauss-Legendre panels on both tails; the numerators keep dfcrm's limits.
* :math:`\\Pr(p_1 > \\phi) = \\Pr(\\beta < \\beta^*)`: sinc (Whittaker-Shannon)
  interpolation of the grid values integrated exactly up to :math:`\\beta^*`,
  blended into the composite rule away from :math:`\\beta^*` (a polynomial rule
  cut at :math:`\\beta^*` would lose the geometric convergence).

Accuracy is tested against adaptive quadrature (relative tolerance
:math:`10^{-13}`): mean, variance and CDF agree to :math:`10^{-9}`, also with
wide priors and for up to 750 patients; the design grids agree with a fine grid
to :math:`10^{-9}` on random trials of ``max_n`` patients.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.polynomial import polynomial as P
from scipy import special

from escalade.design.base import FloatArray

__all__ = ["LIMIT", "LOG_FLOOR", "Grid", "grid", "core_weights", "prob_tables", "design_intervals"]

LIMIT = 10.0            # dfcrm: numerators over (-10, 10); MLE searched on [-10, 10]
LOG_FLOOR = -1e200      # log p of an underflowed probability (keeps 0 * log p finite)
_STEP_PER_SD = 0.7      # design grids: step / smallest posterior sd reachable with max_n patients
_STEP_PER_SD_CDF = 0.4  # the same when the safety rule needs the posterior CDF
_TAIL_MASS = 1e-16      # add tail panels when the prior puts more than this outside (-10, 10)
_CDF_PLATEAU = 1.5      # sinc CDF weights within this distance of beta* (see _cdf_weights)
_CDF_EDGE = 0.25        # width of the erfc taper between sinc and Gregory CDF weights
_HALF_STENCIL = 3       # local interpolation through 6 nodes (sixth-order end corrections)


def _basis_integrals(offsets: tuple[int, ...]) -> FloatArray:
    """``int_0^1 l_j(t) dt`` for the Lagrange basis on the nodes ``offsets`` (unit step)."""
    out = np.empty(len(offsets))
    for j, oj in enumerate(offsets):
        others = [o for o in offsets if o != oj]
        c = P.polyint(P.polyfromroots(others) / np.prod([oj - o for o in others]))
        out[j] = P.polyval(1.0, c) - P.polyval(0.0, c)
    return out


def core_weights(n_intervals: int, h: float) -> FloatArray:
    """Weights on the ``N + 1`` nodes of ``[-10, 10]``: composite rule of local quintic interpolation.

    Interval ``i`` is integrated with the Lagrange polynomial through nodes
    ``i-2 .. i+3`` (shifted inwards near the ends). Every interior weight is
    exactly ``h``: this is the trapezoidal rule, whose error decays geometrically
    for integrands that vanish at the ends, with sixth-order (Gregory-type)
    corrections at the ends for integrands that do not (e.g. DLT-only data under
    the :math:`N(0, 500^2)` prior).
    """
    n, k = n_intervals, 2 * _HALF_STENCIL
    w = np.zeros(n + 1)
    cache: dict[tuple[int, ...], FloatArray] = {}
    for i in range(n):
        lo = min(max(i - _HALF_STENCIL + 1, 0), n + 1 - k)
        offs = tuple(range(lo - i, lo - i + k))
        if offs not in cache:
            cache[offs] = _basis_integrals(offs)
        w[lo:lo + k] += h * cache[offs]
    return w


def _sinc_cdf_weights(beta: FloatArray, h: float, upper: float) -> FloatArray:
    """Weights of ``int_{-inf}^{upper} f`` from samples of ``f`` on a uniform grid (step ``h``).

    Whittaker-Shannon (sinc) interpolation of the samples, integrated exactly:

    .. math::

        \\int_{-\\infty}^{u} \\operatorname{sinc}\\Big(\\frac{\\beta - \\beta_j}{h}\\Big) d\\beta
        = h\\Big(\\frac12 + \\frac{\\mathrm{Si}(\\pi (u - \\beta_j)/h)}{\\pi}\\Big).

    For a well-sampled integrand (the condition under which the trapezoidal rule
    converges geometrically) this is as accurate as the full integral, unlike a
    polynomial rule cut at :math:`u`.
    """
    si, _ = special.sici(np.pi * (upper - beta) / h)
    return h * (0.5 + si / np.pi)


def _cdf_weights(core: FloatArray, w_core: FloatArray, h: float, upper: float) -> FloatArray:
    """Weights of ``int_{-10}^{upper} f`` on the core grid: sinc near ``upper``, Gregory elsewhere.

    With a smooth window :math:`\\varphi` equal to 1 (to :math:`10^{-16}`) within
    :data:`_CDF_PLATEAU` of ``upper`` and 0 far from it,
    :math:`\\int_{-10}^{u} f = \\int_{-\\infty}^{u} f\\varphi + \\int_{-10}^{u} f(1-\\varphi)`:
    the first integrand vanishes at :math:`\\pm 10` (sinc rule, :func:`_sinc_cdf_weights`),
    the second vanishes near ``u`` (composite rule of :func:`core_weights` on the nodes below ``u``).
    So the rule stays accurate where the posterior does not vanish at :math:`\\pm 10`.
    """
    phi = 0.5 * special.erfc((np.abs(core - upper) - _CDF_PLATEAU) / _CDF_EDGE)
    below = np.where(core < upper, w_core, 0.0)
    return phi * _sinc_cdf_weights(core, h, upper) + (1.0 - phi) * below


def _tail_nodes(sigma: float) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes ``t > 0`` and weights for ``int_0^inf f(10 + t) dt`` (prior scale ``sigma``)."""
    span = max(1.0, 9.0 * sigma)  # prior density below exp(-40) of its peak beyond
    edges = [0.0, 0.25]
    while edges[-1] < span:
        edges.append(edges[-1] * 2)
    x, w = np.polynomial.legendre.leggauss(10)
    ts, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        ts.append(0.5 * (b - a) * x + 0.5 * (a + b))
        ws.append(0.5 * (b - a) * w)
    return np.concatenate(ts), np.concatenate(ws)


def prob_tables(beta: FloatArray, scaled: Sequence[float], model: str, intercept: float
                 ) -> tuple[FloatArray, FloatArray]:
    """``log p`` and ``log(1 - p)`` of shape ``(D, G)``, underflow floored at :data:`LOG_FLOOR`."""
    x = np.asarray(scaled, float)[:, None]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        theta = np.exp(beta)[None, :]
        if model == "empiric":
            lp = theta * np.log(x)
            lq = np.log(-np.expm1(lp))
        else:
            z = intercept + theta * x
            lp = -np.logaddexp(0.0, -z)
            lq = -np.logaddexp(0.0, z)
    lp = np.where(np.isnan(lp), LOG_FLOOR, np.maximum(lp, LOG_FLOOR))
    lq = np.where(np.isnan(lq), LOG_FLOOR, np.maximum(lq, LOG_FLOOR))
    return lp, lq


@dataclass(frozen=True, slots=True, eq=False)
class Grid:
    beta: FloatArray       # (G,)
    log_pq: FloatArray     # (2 D, G): log p stacked over log(1 - p)
    log_prior: FloatArray  # (G,)
    weights: FloatArray    # (G, 4): denominator, beta and beta^2 numerators over (-10, 10), cdf to beta*
    core: slice            # the nodes on [-10, 10]


@functools.cache
def grid(scaled: tuple[float, ...], model: str, intercept: float, prior_var: float,
          beta_star: float, n_intervals: int) -> Grid:
    n = n_intervals
    h = 2 * LIMIT / n
    core = np.linspace(-LIMIT, LIMIT, n + 1)
    w_core = core_weights(n, h)
    sigma = math.sqrt(prior_var)
    k0 = 0
    beta, w_den = core, w_core
    if 2.0 * special.ndtr(-LIMIT / sigma) > _TAIL_MASS:
        t, wt = _tail_nodes(sigma)
        beta = np.concatenate([-LIMIT - t[::-1], core, LIMIT + t])
        w_den = np.concatenate([wt[::-1], w_core, wt])
        k0 = t.size
    core_slice = slice(k0, k0 + n + 1)
    w_num = np.zeros_like(beta)
    w_num[core_slice] = w_core
    w_cdf = np.zeros_like(beta)
    if math.isfinite(beta_star):
        w_cdf[core_slice] = _cdf_weights(core, w_core, h, beta_star)
        w_cdf[:k0] = np.where(beta[:k0] < beta_star, w_den[:k0], 0.0)
        w_cdf[k0 + n + 1:] = np.where(beta[k0 + n + 1:] < beta_star, w_den[k0 + n + 1:], 0.0)
    lp, lq = prob_tables(beta, scaled, model, intercept)
    weights = np.stack([w_den, w_num * beta, w_num * beta**2, w_cdf], axis=1)
    log_prior = -beta**2 / (2.0 * prior_var)
    return Grid(beta, np.concatenate([lp, lq]), log_prior, weights, core_slice)


@functools.cache
def _max_unit_information(model: str, intercept: float) -> float:
    """Largest Fisher information about :math:`\\beta` one patient can carry, over doses and :math:`\\beta`.

    Empiric: :math:`p (\\log p)^2 / (1 - p)` (max 0.648 at :math:`p \\approx 0.2`);
    logistic: :math:`p(1-p)(z - a_0)^2` at :math:`z = a_0 + e^\\beta x < a_0`.
    """
    if model == "empiric":
        p = np.linspace(1e-6, 1 - 1e-6, 200001)
        return float(np.max(p * np.log(p) ** 2 / (1 - p)))
    z = np.linspace(intercept - 60.0, intercept, 600001)
    p = special.expit(z)
    return float(np.max(p * (1 - p) * (z - intercept) ** 2))


def design_intervals(config: Any) -> int:
    """Quadrature intervals on :math:`[-10, 10]` for a design of at most ``max_n`` patients.

    The posterior standard deviation of :math:`\\beta` is at least about
    :math:`s = (n\\, i_{\\max} + 1/\\sigma^2)^{-1/2}` with :math:`i_{\\max}` the largest
    information one patient can carry (:func:`_max_unit_information`). The step is
    :math:`0.7 s` when only posterior means are needed (trapezoidal error about
    :math:`2 e^{-2\\pi^2/0.49} \\approx 10^{-17}` for a normal posterior) and
    :math:`0.4 s` when the safety rule needs :math:`\\Pr(p_1 > \\phi)` (sinc CDF
    accurate to about :math:`10^{-9}`; both checked in the tests against a fine grid).
    """
    info = _max_unit_information(config.model, float(config.intercept))
    sd = 1.0 / math.sqrt(config.max_n * info + 1.0 / config.prior_var)
    factor = _STEP_PER_SD_CDF if config.safety_threshold is not None else _STEP_PER_SD
    n = int(math.ceil(2 * LIMIT / (factor * sd)))
    return max(n + n % 2, 100)
