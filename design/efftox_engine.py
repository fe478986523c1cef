"""Fast, deterministic EffTox posterior: quasi-Monte Carlo importance sampling.

The EffTox posterior (:mod:`escalade.design.efftox`) has six parameters
:math:`\\theta = (\\alpha, \\beta, \\gamma, \\zeta, \\eta, \\psi)`. For every
state of a batch this module

1. finds the posterior mode :math:`\\hat\\theta` by Newton's method with
   analytic gradient and Hessian, a backtracking (Armijo) line search and the
   eigenvalues of the negative Hessian floored so every step ascends (Nocedal
   & Wright 2006, *Numerical Optimization*, sections 3.1 and 3.4);
2. **pilot** (``pilot_points``): importance sampling from the Laplace
   approximation widened into a multivariate t,
   :math:`q_0 = t_\\nu(\\hat\\theta, c_0^2 \\hat\\Sigma)`,
   :math:`\\hat\\Sigma = (-\\nabla^2 \\log p(\\hat\\theta \\mid D))^{-1}`, gives the
   posterior mean :math:`m` and covariance :math:`V`;
3. **main** (``n_points``): importance sampling from
   :math:`q = t_\\nu(m, c^2 V)` (one adaptive step of moment matching, as in
   adaptive importance sampling, Oh & Berger 1992, J Stat Comput Simul
   41:143-168). For the data sets of the reference folder the ESS is 60-85 %
   of the points, against 30-65 % for the Laplace proposal alone.

Points are a *fixed* scrambled Sobol sequence (Owen 1998; ``scipy.stats.qmc``,
fixed ``qmc_seed``) in 7 dimensions: six normal coordinates and one for the
:math:`\\chi^2_\\nu` radius of the t. Weights are self-normalised,
:math:`w_i \\propto p(\\theta_i)\\, L(D \\mid \\theta_i) / q(\\theta_i)` (Geweke 1989,
Econometrica 57:1317-1339), and the summaries are weighted means:
:math:`E[\\pi_E(x_j)]`, :math:`E[\\pi_T(x_j)]`, :math:`\\Pr(\\pi_E(x_j) > \\underline\\pi_E)`,
:math:`\\Pr(\\pi_T(x_j) < \\overline\\pi_T)`, the posterior mean utility and
:math:`\\Pr(j = \\arg\\max_k u_k)`.

Why per-state proposals. With one point set shared by all states (the prior
as proposal) the log-likelihood of a batch would be a single product
``counts[S, 4D] @ log_pi[4D, P]``; but the prior's ESS collapses as data
accrue (1.8 % of the draws for the 6-patient data set ``1NNE 2EEB`` in the
reference importance-sampling run, far less after 39 patients). Here each
state has its own points, and its log-likelihood is the same contraction per
state, :math:`\\sum_{d, c} n_{s,d,c} \\log \\pi_{s,d,c,i}` over the doses treated in the
chunk, summed dose by dose and cell by cell (see Determinism).

ESS check and fallback. The effective sample size
:math:`\\mathrm{ESS} = 1 / \\sum_i \\bar w_i^2` (Kong 1992) is checked for every
state. Where it is below ``min_ess`` the state is recomputed with four times
the points and a ``fallback_scale`` times wider proposal, for up to
``fallback_rounds`` rounds; every fallback is logged (INFO) and a state still
short after the last round is logged as a WARNING. The summary carries the
ESS and the number of points of every state.

Compiled kernels (issue 18). The mode finding and, with the default float32
``dtype``, both sampling steps run in :mod:`escalade.design.efftox_kernels`
(numba, ``fastmath`` off, cached on disk): one fused loop per state instead of
some sixty NumPy passes over ``(states, doses, points)`` arrays, and a Newton
iteration per state instead of one vectorised across states. The algorithm,
points and proposals are those of the NumPy code, which stays as the
``dtype=numpy.float64`` path and as the reference the tests compare with
(:meth:`EffToxEngine._is_chunk`, :func:`_laplace_mode_numpy`). What moved:
the kernels' own float32 ``exp``/``log`` (Cephes polynomials, about 1 ulp,
instead of NumPy's CPU-dispatched SIMD loops) and float64 tree sums (instead
of float32 pairwise sums) change posterior summaries by about 1e-7, far below
their Monte Carlo error (about 1e-3); the mode agrees to about 1e-14. The
kernel evaluates a point's log-likelihood as the logarithm of one product of
its cell probabilities (kept as mantissa and exponent), not as a sum of one
logarithm per cell (see :mod:`~escalade.design.efftox_kernels`). The
10,000-trial benchmark (``bench/bench_efftox.py``) selects the same dose in
every trial. The posterior mean of :math:`\theta` is computed only where it is
used (pilot step, ``full``), NaN otherwise.

Determinism. The points are fixed, and, on the NumPy path, every per-state quantity comes from
NumPy element-wise operations, from sums in a fixed order (the log-likelihood
dose by dose, where a dose that only other states of the chunk were treated
at adds exact zeros; the weighted means as NumPy's pairwise sums along each
state's row of points, whose grouping depends only on the number of points),
or from BLAS products of one fixed shape per state, ``(6, 6) @ (6, <= 4096)``
for :math:`\\theta`, small enough to run on one thread. No BLAS product mixes
states or depends on the batch's shape (one did before issue 13: the
log-likelihood's length was the number of doses treated anywhere in the chunk,
and OpenBLAS's Haswell kernels round such products differently for different
lengths). So a state's summary is the same, bit for bit, whatever the other
states of the batch, their order, the chunking, the engine's threads or the
BLAS threads: decisions are memoisable (``tests/test_reproducible.py``). The
compiled path has no BLAS call and sums in a fixed tree order, and its
arithmetic (no fused multiply-adds, its own exp/log) does not depend on the
CPU's vector width either.

Precision. The per-point work is in float32 (``dtype``; log-likelihoods of
a trial are sums of at most a few dozen terms, so the rounding, about 1e-6,
is far below the Monte Carlo error); modes and sums over points (means, the
ESS) are float64.

The likelihood needs only the four joint cell counts per dose, so a state is
a ``(D, 4)`` integer array (order :data:`escalade.design.efftox_model.CELLS`) and a
batch is ``(S, D, 4)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats
from scipy.stats import qmc

from escalade.design.config import check_int, check_positive
from escalade.design.errors import ConfigError

__all__ = ["EngineSettings", "PosteriorSummary", "EffToxEngine", "laplace_mode"]

log = logging.getLogger(__name__)

_N_PAR: Final[int] = 6
_NEWTON_MAX_ITER: Final[int] = 60
_NEWTON_TOL: Final[float] = 1e-12  # Newton decrement g' (-H)^-1 g at which the mode counts as found
_LINE_SEARCH_STEPS: Final[int] = 40
_ARMIJO_C: Final[float] = 1e-4
_MAX_STEP: Final[float] = 3.0     # longest first trial step of a Newton iteration, in prior SDs
_EIG_FLOOR: Final[float] = 1e-6   # floor of -H's eigenvalues, relative to the smallest prior precision
_ETA_CLIP: Final[float] = 80.0    # |logit| beyond which sigmoid is 0 or 1 in float32; keeps exp finite
_TINY: Final[dict[type, float]] = {np.float32: 1e-30, np.float64: 1e-300}  # floor of cell probabilities
_PILOT_MIN_ESS: Final[float] = 30.0  # pilot ESS needed to trust its moments for the main proposal
_STATE_BLOCK: Final[int] = 8192   # states per block (bounds the memory of mode finding)
_MIN_STATES_PER_THREAD: Final[int] = 16  # smaller batches are not worth a thread
_GEMM_COLUMNS: Final[int] = 4096  # points per (6 x 6) @ (6 x 4096) product: 147,456 multiply-adds, under
#                                   OpenBLAS's threading threshold (4 x 65,536), so each call is one thread


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """Numerical settings of :class:`EffToxEngine` (none changes the model).

    Attributes
    ----------
    n_points
        Sobol points per state in the main step (a power of 2). The default
        4096 keeps the Monte Carlo error of posterior means near 0.002 and of
        utilities near 0.005 on the reference data sets (ESS about 2500-3500).
    pilot_points
        Points of the pilot step (a power of 2; 0 skips it and samples from
        the Laplace approximation directly).
    min_ess
        ESS below which a state is recomputed (fallback).
    fallback_rounds
        Fallback attempts, each with four times the points of the previous one.
    df
        Degrees of freedom :math:`\\nu` of the multivariate-t proposals.
    scale
        :math:`c_0`, widening of the Laplace proposal (pilot step).
    pilot_scale
        :math:`c`, widening of the moment-matched proposal (main step).
    fallback_scale
        Extra widening per fallback round.
    qmc_seed
        Seed of the Owen scrambling of the Sobol sequence. Fixed: another seed
        changes every summary by Monte Carlo error.
    chunk_elements
        NumPy path (``dtype=numpy.float64``) only: states are processed in chunks of
        about this many (state, point, dose) elements (about 20 work arrays of
        this size); small chunks stay in cache. The compiled float32 path works
        state by state.
    n_threads
        Threads, each taking a contiguous group of the batch's states (the
        compiled kernels and NumPy release the GIL). Results do not depend on it.
    dtype
        ``numpy.float32`` (default: the compiled kernels) or ``numpy.float64``
        (the NumPy path, slower) for the per-point work.
    """

    n_points: int = 4096
    pilot_points: int = 512
    min_ess: float = 1000.0
    fallback_rounds: int = 2
    df: float = 10.0
    scale: float = 1.25
    pilot_scale: float = 1.0
    fallback_scale: float = 1.3
    qmc_seed: int = 20040684
    chunk_elements: int = 81_920
    n_threads: int = 1
    dtype: type = np.float32

    def __post_init__(self) -> None:
        for name in ("n_points", "pilot_points"):
            v = getattr(self, name)
            check_int(name, v, low=0 if name == "pilot_points" else 16)
            if v & (v - 1):
                raise ConfigError(name, v, "must be a power of 2 (a balanced Sobol set), e.g. 4096")
        if self.pilot_points and self.pilot_points < 16:
            raise ConfigError("pilot_points", self.pilot_points, "must be 0 (no pilot) or a power of 2 >= 16")
        check_positive("min_ess", self.min_ess)
        if self.min_ess >= self.n_points:
            raise ConfigError("min_ess", self.min_ess, f"must be below n_points ({self.n_points})")
        check_int("fallback_rounds", self.fallback_rounds, low=0, high=4)
        for name in ("df", "scale", "pilot_scale", "fallback_scale"):
            check_positive(name, getattr(self, name))
        check_int("qmc_seed", self.qmc_seed, low=0)
        check_int("chunk_elements", self.chunk_elements, low=1)
        check_int("n_threads", self.n_threads, low=1)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError("dtype", self.dtype, "must be numpy.float32 or numpy.float64")

    @property
    def levels(self) -> tuple[int, ...]:
        """Point counts of the main step and its fallbacks: ``n_points * 4**i``."""
        return tuple(self.n_points * 4 ** i for i in range(self.fallback_rounds + 1))


@dataclass(frozen=True, slots=True, eq=False)
class PosteriorSummary:
    """Posterior summaries of a batch of ``S`` states on ``D`` doses.

    Names follow ``trialr``'s ``efftox_fit``.

    Attributes
    ----------
    prob_eff, prob_tox
        ``(S, D)`` posterior means :math:`E[\\pi_E(x_j) \\mid D]`, :math:`E[\\pi_T(x_j) \\mid D]`.
    prob_acc_eff, prob_acc_tox
        ``(S, D)`` :math:`\\Pr(\\pi_E(x_j) > \\underline\\pi_E \\mid D)`,
        :math:`\\Pr(\\pi_T(x_j) < \\overline\\pi_T \\mid D)`.
    utility
        ``(S, D)`` plug-in utility :math:`u(E[\\pi_E], E[\\pi_T])` (what trialr ranks by).
    post_utility
        ``(S, D)`` posterior mean utility :math:`E[u(\\pi_E, \\pi_T) \\mid D]`
        (NaN when not requested).
    prob_obd
        ``(S, D)`` :math:`\\Pr(j = \\arg\\max_k u(\\pi_E(x_k), \\pi_T(x_k)) \\mid D)` over
        all doses (NaN when not requested).
    se_prob_eff, se_prob_tox, se_prob_acc_eff, se_prob_acc_tox, se_utility, se_post_utility
        ``(S, D)`` Monte Carlo standard errors of the above (NaN when not
        requested): the delta-method variance of a self-normalised importance
        sampling mean, :math:`\\sum_i \\bar w_i^2 (f_i - \\hat f)^2` (Owen 2013,
        *Monte Carlo theory, methods and examples*, ch. 9), linearising the
        plug-in utility; an IID formula, so conservative for the quasi-random points.
    theta_mean, theta_cov
        ``(S, 6)`` posterior means and ``(S, 6, 6)`` covariances (NaN unless
        ``full``) of :math:`(\\alpha, \\beta, \\gamma, \\zeta, \\eta, \\psi)`.
    mode
        ``(S, 6)`` posterior mode (centre of the proposal).
    ess
        ``(S,)`` importance-sampling effective sample size :math:`1/\\sum_i \\bar w_i^2`.
    n_points
        ``(S,)`` points used (more than ``EngineSettings.n_points`` after a fallback).
    """

    prob_eff: np.ndarray
    prob_tox: np.ndarray
    prob_acc_eff: np.ndarray
    prob_acc_tox: np.ndarray
    utility: np.ndarray
    post_utility: np.ndarray
    prob_obd: np.ndarray
    se_prob_eff: np.ndarray
    se_prob_tox: np.ndarray
    se_prob_acc_eff: np.ndarray
    se_prob_acc_tox: np.ndarray
    se_utility: np.ndarray
    se_post_utility: np.ndarray
    theta_mean: np.ndarray
    theta_cov: np.ndarray
    mode: np.ndarray
    ess: np.ndarray
    n_points: np.ndarray

    @property
    def n_states(self) -> int:
        return int(self.prob_eff.shape[0])

    def take(self, index: ArrayLike) -> "PosteriorSummary":
        """Sub-batch along the state axis."""
        return PosteriorSummary(*(getattr(self, f)[index] for f in _SUMMARY_FIELDS))


_SUMMARY_FIELDS: Final[tuple[str, ...]] = (
    "prob_eff", "prob_tox", "prob_acc_eff", "prob_acc_tox", "utility", "post_utility", "prob_obd",
    "se_prob_eff", "se_prob_tox", "se_prob_acc_eff", "se_prob_acc_tox", "se_utility", "se_post_utility",
    "theta_mean", "theta_cov", "mode", "ess", "n_points",
)


# --------------------------------------------------------------------------------------------------
# Log posterior with analytic derivatives (mode finding)
# --------------------------------------------------------------------------------------------------


def _softplus(z: np.ndarray) -> np.ndarray:
    """:math:`\\log(1 + e^z)` without overflow."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


@dataclass(frozen=True, slots=True, eq=False)
class _Model:
    x: np.ndarray          # (D,) coded doses
    x2: np.ndarray         # (D,) squared
    mu: np.ndarray         # (6,) prior means
    prec: np.ndarray       # (6,) prior precisions 1/sd^2
    powers: np.ndarray     # (D, 5): x^0 .. x^4


def _make_model(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> _Model:
    return _Model(x, x * x, mu, 1.0 / (sd * sd), x[:, None] ** np.arange(5))


def _log_post(model: _Model, theta: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Log posterior (up to a constant) at ``theta`` ``(S, 6)`` for counts ``(S, D, 4)``."""
    x, x2 = model.x, model.x2
    eta_t = theta[:, 0:1] + theta[:, 1:2] * x
    eta_e = theta[:, 2:3] + theta[:, 3:4] * x + theta[:, 4:5] * x2
    k = np.tanh(0.5 * theta[:, 5:6])
    sp_e, sp_t = _softplus(eta_e), _softplus(eta_t)
    e, t = np.exp(eta_e - sp_e), np.exp(eta_t - sp_t)
    qe, qt = np.exp(-sp_e), np.exp(-sp_t)
    c11, c10, c01, c00 = cnt[..., 0], cnt[..., 1], cnt[..., 2], cnt[..., 3]
    n = c11 + c10 + c01 + c00
    ll = (c11 + c10) * eta_e + (c11 + c01) * eta_t - n * (sp_e + sp_t)
    with np.errstate(divide="ignore", invalid="ignore"):  # far trial points of a line search may give -inf
        ll = ll + c11 * np.log1p(k * qe * qt) + c10 * np.log1p(-k * qe * t) \
            + c01 * np.log1p(-k * e * qt) + c00 * np.log1p(k * e * t)
    dev = theta - model.mu
    lp = ll.sum(axis=1) - 0.5 * (dev * dev * model.prec).sum(axis=1)
    return np.where(np.isnan(lp), -np.inf, lp)


def _log_post_derivs(model: _Model, theta: np.ndarray, cnt: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log posterior, gradient ``(S, 6)`` and Hessian ``(S, 6, 6)``.

    Per dose the log-likelihood is a function of
    :math:`(\\eta_E, \\eta_T, \\psi)`; with :math:`e = \\pi_E`, :math:`t = \\pi_T`,
    :math:`\\kappa = \\tanh(\\psi/2)` it is

    .. math::

        n_E\\eta_E - n\\log(1+e^{\\eta_E}) + n_T\\eta_T - n\\log(1+e^{\\eta_T})
        + \\sum_{\\text{cells}} c\\,\\log(1 + s\\,\\kappa\\, a(e)\\, b(t)),

    where the cells have :math:`(s, a, b)` = (+, 1-e, 1-t), (-, 1-e, t),
    (-, e, 1-t), (+, e, t) (see :func:`~escalade.design.efftox.joint_probabilities`).
    Derivatives of :math:`f = \\kappa a b` use :math:`de/d\\eta_E = e(1-e)`,
    :math:`d\\kappa/d\\psi = (1-\\kappa^2)/2`; then
    :math:`\\partial \\log(1+sf) = s f'/A` and
    :math:`\\partial^2 \\log(1+sf) = s f''/A - f' f'^\\top / A^2` with
    :math:`A = 1 + s f`. The chain rule to :math:`\\theta` is linear.
    """
    x, x2 = model.x, model.x2
    eta_t = theta[:, 0:1] + theta[:, 1:2] * x
    eta_e = theta[:, 2:3] + theta[:, 3:4] * x + theta[:, 4:5] * x2
    k = np.tanh(0.5 * theta[:, 5:6])
    kp = 0.5 * (1.0 - k * k)
    kpp = -k * kp
    sp_e, sp_t = _softplus(eta_e), _softplus(eta_t)
    e, t = np.exp(eta_e - sp_e), np.exp(eta_t - sp_t)
    qe, qt = np.exp(-sp_e), np.exp(-sp_t)
    de, dt = e * qe, t * qt
    dde, ddt = de * (qe - e), dt * (qt - t)
    cnt = cnt.astype(float)
    c11, c10, c01, c00 = cnt[..., 0], cnt[..., 1], cnt[..., 2], cnt[..., 3]
    n = c11 + c10 + c01 + c00
    ne, nt = c11 + c10, c11 + c01
    ll = ne * eta_e + nt * eta_t - n * (sp_e + sp_t)
    g = np.zeros(eta_e.shape + (3,))
    h = np.zeros(eta_e.shape + (3, 3))
    g[..., 0] = ne - n * e
    g[..., 1] = nt - n * t
    h[..., 0, 0] = -n * de
    h[..., 1, 1] = -n * dt
    # (count, sign, a, a', a'', b, b', b'') per cell, in CELLS order
    cells = (
        (c11, 1.0, qe, -de, -dde, qt, -dt, -ddt),
        (c10, -1.0, qe, -de, -dde, t, dt, ddt),
        (c01, -1.0, e, de, dde, qt, -dt, -ddt),
        (c00, 1.0, e, de, dde, t, dt, ddt),
    )
    for c, s, a, da, dda, b, db, ddb in cells:
        ab = a * b
        big_a = 1.0 + s * k * ab
        ll = ll + c * np.log(big_a)
        f1 = (k * da * b, k * a * db, kp * ab)
        r = c / big_a
        for i in range(3):
            g[..., i] += s * r * f1[i]
        f2 = ((k * dda * b, k * da * db, kp * da * b),
              (k * da * db, k * a * ddb, kp * a * db),
              (kp * da * b, kp * a * db, kpp * ab))
        for i in range(3):
            for j in range(3):
                h[..., i, j] += r * (s * f2[i][j] - f1[i] * f1[j] / big_a)
    # chain rule: eta_T = alpha + beta x, eta_E = gamma + zeta x + eta x^2, so every entry of the
    # gradient and Hessian in theta is a sum over doses of a per-dose term times a power of x
    # (written out, not einsum: faster, and each state's sums run in the same order in any batch)
    xp = model.powers                                        # (D, 5): 1, x, ..., x^4

    def moment(v: np.ndarray) -> np.ndarray:                 # (S, D) -> (S, 5): sum_d v_d x_d^k
        return (v[:, :, None] * xp).sum(axis=1)

    g_e, g_t = moment(g[..., 0]), moment(g[..., 1])
    grad = np.stack([g_t[:, 0], g_t[:, 1], g_e[:, 0], g_e[:, 1], g_e[:, 2], g[..., 2].sum(axis=1)], axis=1)
    hee, htt, het = moment(h[..., 0, 0]), moment(h[..., 1, 1]), moment(h[..., 0, 1])
    hep, htp = moment(h[..., 0, 2]), moment(h[..., 1, 2])
    hess = np.empty((theta.shape[0], _N_PAR, _N_PAR))
    e_idx = (2, 3, 4)  # gamma, zeta, eta: powers 0, 1, 2 of x
    t_idx = (0, 1)     # alpha, beta: powers 0, 1
    for i, a in enumerate(e_idx):
        for j, b in enumerate(e_idx):
            hess[:, a, b] = hee[:, i + j]
        for j, b in enumerate(t_idx):
            hess[:, a, b] = hess[:, b, a] = het[:, i + j]
        hess[:, a, 5] = hess[:, 5, a] = hep[:, i]
    for i, a in enumerate(t_idx):
        for j, b in enumerate(t_idx):
            hess[:, a, b] = htt[:, i + j]
        hess[:, a, 5] = hess[:, 5, a] = htp[:, i]
    hess[:, 5, 5] = h[..., 2, 2].sum(axis=1)
    dev = theta - model.mu
    lp = ll.sum(axis=1) - 0.5 * (dev * dev * model.prec).sum(axis=1)
    grad = grad - dev * model.prec
    hess = hess - np.diag(model.prec)
    return lp, grad, hess


def _cholesky_rows(a: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a batch of symmetric matrices, state by state.

    Written out over the (small, fixed) matrix size so that each state's
    arithmetic is the same in any batch; ``ok`` is False where a pivot falls
    below ``floor`` (not safely positive definite).
    """
    s, n = a.shape[0], a.shape[1]
    low = np.zeros_like(a)
    ok = np.ones(s, bool)
    for j in range(n):
        d = a[:, j, j] - (low[:, j, :j] ** 2).sum(axis=1)
        ok &= d > floor
        ljj = np.sqrt(np.where(d > floor, d, 1.0))
        low[:, j, j] = ljj
        for i in range(j + 1, n):
            low[:, i, j] = (a[:, i, j] - (low[:, i, :j] * low[:, j, :j]).sum(axis=1)) / ljj
    return low, ok


def _lower_inverse(low: np.ndarray) -> np.ndarray:
    """Inverses of a batch of lower-triangular matrices by forward substitution."""
    n = low.shape[1]
    inv = np.zeros_like(low)
    for j in range(n):
        inv[:, j, j] = 1.0 / low[:, j, j]
        for i in range(j + 1, n):
            inv[:, i, j] = -(low[:, i, j:i] * inv[:, j:i, j]).sum(axis=1) / low[:, i, i]
    return inv


def _ascent_direction(grad: np.ndarray, hess: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Newton ascent direction and a root ``R`` with ``R R' = (-H)^-1``.

    Where :math:`-H` is positive definite this is the Cholesky factor
    (:math:`R = L^{-\\top}`); elsewhere the eigenvalues of :math:`-H` are
    floored at ``floor`` (modified Newton, Nocedal & Wright 2006, section 3.4),
    which keeps the step an ascent direction.
    """
    neg = -hess
    low, ok = _cholesky_rows(neg, floor)
    root = np.empty_like(neg)
    step = np.empty_like(grad)
    if ok.any():
        inv = _lower_inverse(low[ok])                       # L^-1
        root[ok] = inv.transpose(0, 2, 1)                   # L^-T
        tmp = (inv * grad[ok][:, None, :]).sum(axis=2)       # L^-1 g
        step[ok] = (root[ok] * tmp[:, None, :]).sum(axis=2)  # L^-T L^-1 g = (-H)^-1 g
    bad = ~ok
    if bad.any():
        w, v = np.linalg.eigh(neg[bad])
        w = np.maximum(w, floor)
        proj = (v * grad[bad][:, :, None]).sum(axis=1) / w
        step[bad] = (v * proj[:, None, :]).sum(axis=2)
        root[bad] = v / np.sqrt(w)[:, None, :]
    return step, root


def laplace_mode(model: _Model, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mode and Laplace covariance root for every state (compiled, one state at a time).

    The algorithm of :func:`_laplace_mode_numpy` (kept as its reference) in
    :func:`escalade.design.efftox_kernels.mode_states`. Returns ``(mode (S, 6),
    root (S, 6, 6), converged (S,))`` with ``root @ root.T`` the inverse
    negative Hessian at the mode.
    """
    from escalade.design.efftox_kernels import mode_states

    s = cnt.shape[0]
    mode = np.empty((s, _N_PAR))
    root = np.empty((s, _N_PAR, _N_PAR))
    done = np.empty(s, np.bool_)
    mode_states(np.ascontiguousarray(cnt, np.int64), model.x, model.x2, model.mu, model.prec,
                _EIG_FLOOR * float(model.prec.min()), _NEWTON_MAX_ITER, _NEWTON_TOL, _LINE_SEARCH_STEPS, _ARMIJO_C,
                _MAX_STEP, mode, root, done)
    return mode, root, done


def _laplace_mode_numpy(model: _Model, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mode and Laplace covariance root for every state (NumPy, vectorised over states).

    Returns ``(mode (S, 6), root (S, 6, 6), converged (S,))`` with
    ``root @ root.T`` the inverse negative Hessian at the mode. Each state
    iterates on its own (converged states are frozen), so the result of a
    state does not depend on the batch.
    """
    s = cnt.shape[0]
    floor = _EIG_FLOOR * float(model.prec.min())
    theta = np.broadcast_to(model.mu, (s, _N_PAR)).copy()
    root = np.zeros((s, _N_PAR, _N_PAR))
    done = np.zeros(s, bool)
    for _ in range(_NEWTON_MAX_ITER):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        th, c = theta[act], cnt[act]
        lp, grad, hess = _log_post_derivs(model, th, c)
        step, rt = _ascent_direction(grad, hess, floor)
        dec = (grad * step).sum(axis=1)
        fin = dec < _NEWTON_TOL
        root[act[fin]] = rt[fin]
        done[act[fin]] = True
        go = ~fin
        if not go.any():
            break
        idx, th, c, step, lp, dec = act[go], th[go], c[go], step[go], lp[go], dec[go]
        # first trial step at most _MAX_STEP prior SDs in any coordinate (keeps trial points sane)
        reach = np.abs(step * np.sqrt(model.prec)).max(axis=1)
        alpha = np.minimum(1.0, _MAX_STEP / np.maximum(reach, 1e-300))
        pending = np.ones(idx.size, bool)
        new = th.copy()
        for _ls in range(_LINE_SEARCH_STEPS):
            p = np.flatnonzero(pending)
            if p.size == 0:
                break
            trial = th[p] + alpha[p, None] * step[p]
            lp_new = _log_post(model, trial, c[p])
            ok = lp_new >= lp[p] + _ARMIJO_C * alpha[p] * dec[p]
            new[p[ok]] = trial[ok]
            pending[p[ok]] = False
            alpha[p[~ok]] *= 0.5
        # no ascent found (flat to rounding): take the point as the mode
        stuck = pending
        theta[idx] = new
        if stuck.any():
            _, g2, h2 = _log_post_derivs(model, theta[idx[stuck]], c[stuck])
            root[idx[stuck]] = _ascent_direction(g2, h2, floor)[1]
            done[idx[stuck]] = True
    left = np.flatnonzero(~done)
    if left.size:
        log.debug("EffTox mode: %d of %d states not converged after %d Newton steps; using the last point",
                  left.size, s, _NEWTON_MAX_ITER)
        _, g2, h2 = _log_post_derivs(model, theta[left], cnt[left])
        root[left] = _ascent_direction(g2, h2, floor)[1]
    return theta, root, done


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _PointSet:
    t: np.ndarray      # (6, P) standard multivariate-t_nu variates, transposed
    log_q: np.ndarray  # (P,) log t density up to a constant


@dataclass(frozen=True, slots=True, eq=False, init=False)
class EffToxEngine:
    """Deterministic importance-sampling posterior of the EffTox model.

    Parameters
    ----------
    coded_doses
        :math:`x_j`, shape ``(D,)``.
    prior_mean, prior_sd
        Normal prior of :math:`(\\alpha, \\beta, \\gamma, \\zeta, \\eta, \\psi)`.
    efficacy_hurdle, toxicity_hurdle
        :math:`\\underline\\pi_E` and :math:`\\overline\\pi_T` of the acceptability probabilities.
    eff0, tox1, p
        Utility contour (:func:`~escalade.design.efftox_model.efftox_utility`).
    settings
        :class:`EngineSettings`.

    Examples
    --------
    >>> from escalade.design.efftox_model import coded_doses
    >>> eng = EffToxEngine(coded_doses([1, 2, 4, 6.6, 10]),
    ...                    prior_mean=[-7.9593, 1.5482, 0.7367, 3.4181, 0, 0],
    ...                    prior_sd=[3.5487, 3.5018, 2.5423, 2.4406, 0.2, 1],
    ...                    efficacy_hurdle=0.5, toxicity_hurdle=0.3, eff0=0.5, tox1=0.65, p=0.977368)
    >>> counts = np.zeros((1, 5, 4), int)
    >>> counts[0, 0] = [1, 1, 0, 4]   # dose 1: 1 both, 1 eff only, 0 tox only, 4 neither
    >>> s = eng.summarise(counts)
    >>> s.prob_eff.shape, bool(s.ess[0] > 300)
    ((1, 5), True)
    """

    coded_doses: np.ndarray
    prior_mean: np.ndarray
    prior_sd: np.ndarray
    efficacy_hurdle: float
    toxicity_hurdle: float
    eff0: float
    tox1: float
    p: float
    settings: EngineSettings
    _model: _Model = field(repr=False)
    _points: dict[int, _PointSet] = field(repr=False)

    def __init__(self, coded_doses: ArrayLike, *, prior_mean: Sequence[float], prior_sd: Sequence[float],
                 efficacy_hurdle: float, toxicity_hurdle: float, eff0: float, tox1: float, p: float,
                 settings: EngineSettings | None = None) -> None:
        x = np.asarray(coded_doses, float)
        mu = np.asarray(prior_mean, float)
        sd = np.asarray(prior_sd, float)
        if mu.shape != (_N_PAR,) or sd.shape != (_N_PAR,) or np.any(sd <= 0):
            raise ValueError("prior_mean and prior_sd need six values each (sd > 0)")
        st = settings or EngineSettings()
        object.__setattr__(self, "coded_doses", x)
        object.__setattr__(self, "prior_mean", mu)
        object.__setattr__(self, "prior_sd", sd)
        object.__setattr__(self, "efficacy_hurdle", float(efficacy_hurdle))
        object.__setattr__(self, "toxicity_hurdle", float(toxicity_hurdle))
        object.__setattr__(self, "eff0", float(eff0))
        object.__setattr__(self, "tox1", float(tox1))
        object.__setattr__(self, "p", float(p))
        object.__setattr__(self, "settings", st)
        object.__setattr__(self, "_model", _make_model(x, mu, sd))
        object.__setattr__(self, "_points", _t_points(st))

    @property
    def n_doses(self) -> int:
        return int(self.coded_doses.shape[0])

    def summarise(self, counts: ArrayLike, *, full: bool = True) -> PosteriorSummary:
        """Posterior summaries for a batch of cell counts ``(S, D, 4)`` (order ``CELLS``).

        ``full=False`` skips the posterior mean utility and ``prob_obd`` (NaN),
        which the plug-in ranking does not need (faster). States are processed
        in blocks of 8192 (mode finding) and small chunks (sampling), so
        memory stays bounded for any batch size.
        """
        cnt = np.asarray(counts)
        if cnt.ndim == 2:
            cnt = cnt[None]
        if cnt.ndim != 3 or cnt.shape[1:] != (self.n_doses, 4):
            raise ValueError(f"counts must have shape (S, {self.n_doses}, 4); got {cnt.shape}")
        if np.any(cnt < 0):
            raise ValueError("cell counts must be >= 0")
        cnt = cnt.astype(np.int64)
        s = cnt.shape[0]
        out = _empty_summary(s, self.n_doses)
        # contiguous groups of states, one per thread (each state is computed the same way in any group)
        n_groups = max(1, min(self.settings.n_threads, s // _MIN_STATES_PER_THREAD))
        size = min(_STATE_BLOCK, -(-s // n_groups))
        bounds = [(a, min(a + size, s)) for a in range(0, s, size)]

        def work(b: tuple[int, int]) -> PosteriorSummary:
            return self._summarise_block(cnt[b[0]:b[1]], full)

        if n_groups > 1:
            with ThreadPoolExecutor(max_workers=n_groups) as ex:
                parts = list(ex.map(work, bounds))
        else:
            parts = [work(b) for b in bounds]
        for (a, z), part in zip(bounds, parts):
            _fill(out, np.arange(a, z), part)
        return out

    # -- internals ----------------------------------------------------------------------------

    def _summarise_block(self, cnt: np.ndarray, full: bool) -> PosteriorSummary:
        s = cnt.shape[0]
        out = _empty_summary(s, self.n_doses)
        mode, root, _ = laplace_mode(self._model, cnt)
        st = self.settings
        centre = mode
        scale = np.full(s, st.scale)
        if st.pilot_points:
            # one adaptive step: centre and shape the proposal on the pilot's weighted moments
            pilot = self._run(cnt, mode, root, mode, st.pilot_points, scale, False, cov=True, probs=False)
            chol, ok = _safe_cholesky(pilot.theta_cov)
            use = ok & (pilot.ess >= _PILOT_MIN_ESS)
            centre = np.where(use[:, None], pilot.theta_mean, mode)
            root = np.where(use[:, None, None], chol, root)
            scale = np.where(use, st.pilot_scale, st.scale)
        todo = np.arange(s)
        for li, n_pts in enumerate(st.levels):
            res = self._run(cnt[todo], centre[todo], root[todo], mode[todo], n_pts, scale[todo], full, cov=full)
            low = res.ess < st.min_ess
            last = li == len(st.levels) - 1
            keep = np.ones(todo.size, bool) if last else ~low
            _fill(out, todo[keep], res.take(np.flatnonzero(keep)))
            if not low.any():
                break
            if last:
                log.warning(
                    "EffTox importance sampling: %d state(s) kept ESS < %.0f with %d points (lowest %.1f); "
                    "their summaries carry more Monte Carlo error (raise n_points or fallback_rounds)",
                    int(low.sum()), st.min_ess, n_pts, float(res.ess[low].min()))
                break
            log.info("EffTox importance sampling: %d of %d state(s) with ESS < %.0f at %d points "
                     "(lowest %.1f); retrying with %d points and a %.2fx wider proposal",
                     int(low.sum()), s, st.min_ess, n_pts, float(res.ess[low].min()), st.levels[li + 1],
                     st.fallback_scale)
            todo = todo[low]
            scale[todo] *= st.fallback_scale
        return out

    def _run(self, cnt: np.ndarray, centre: np.ndarray, root: np.ndarray, mode: np.ndarray, n_pts: int,
             scale: np.ndarray, full: bool, cov: bool = False, probs: bool = True) -> PosteriorSummary:
        """Importance sampling of every state of ``cnt`` from t proposals ``centre + scale * root @ t``.

        ``probs=False`` (the pilot) lets the compiled kernel skip the per-dose
        means (NaN); the NumPy path computes them anyway.
        """
        s = cnt.shape[0]
        per = max(1, self.settings.chunk_elements // (n_pts * self.n_doses))
        bounds = [(a, min(a + per, s)) for a in range(0, s, per)]
        pts = self._points[n_pts]

        if pts.t.dtype == np.float32:  # the compiled kernel (efftox_kernels); float64 keeps the NumPy path
            return self._is_compiled(cnt, centre, root, mode, pts, scale, full, cov, probs)
        parts = [self._is_chunk(cnt[a:z], centre[a:z], root[a:z], mode[a:z], pts, scale[a:z], full, cov)
                 for a, z in bounds]
        return PosteriorSummary(*(np.concatenate([getattr(q, f) for q in parts]) for f in _SUMMARY_FIELDS))

    def _is_compiled(self, cnt: np.ndarray, centre: np.ndarray, root: np.ndarray, mode: np.ndarray,
                     pts: _PointSet, scale: np.ndarray, full: bool, cov: bool, probs: bool = True
                     ) -> PosteriorSummary:
        """As :meth:`_is_chunk`, fused into one compiled loop per state (float32 points, float64 sums)."""
        from escalade.design.efftox_kernels import is_states

        m = self._model
        s, d = cnt.shape[0], self.n_doses
        f32 = np.float32
        rs = np.ascontiguousarray((scale[:, None, None] * root).astype(f32))
        nan = np.nan
        prob_eff, prob_tox, acc_e, acc_t = (np.empty((s, d)) for _ in range(4))
        theta_mean = np.full((s, _N_PAR), nan)
        theta_cov = np.full((s, _N_PAR, _N_PAR), nan)
        ess = np.empty(s)
        post_u, obd = np.full((s, d), nan), np.full((s, d), nan)
        ses = np.full((6, s, d), nan)
        lo_e = math.log(self.efficacy_hurdle / (1.0 - self.efficacy_hurdle))
        lo_t = math.log(self.toxicity_hurdle / (1.0 - self.toxicity_hurdle))
        is_states(np.ascontiguousarray(cnt, np.int64), np.ascontiguousarray(centre, float), rs, pts.t, pts.log_q,
                  m.x.astype(f32), m.x2.astype(f32), m.mu.astype(f32), np.sqrt(m.prec).astype(f32),
                  f32(lo_e), f32(lo_t), f32(_TINY[np.float32]), self.eff0, self.tox1, self.p, bool(cov), bool(full),
                  bool(probs), prob_eff, prob_tox, acc_e, acc_t, theta_mean, theta_cov, ess, post_u, obd, ses)
        plug = _utility(prob_eff, prob_tox, self.eff0, self.tox1, self.p)
        return PosteriorSummary(prob_eff, prob_tox, acc_e, acc_t, plug, post_u, obd, *ses, theta_mean, theta_cov,
                                mode.copy(), ess, np.full(s, pts.log_q.shape[0], np.int64))

    def _is_chunk(self, cnt: np.ndarray, centre: np.ndarray, root: np.ndarray, mode: np.ndarray, pts: _PointSet,
                  scale: np.ndarray, full: bool, cov: bool) -> PosteriorSummary:
        m = self._model
        ft = pts.t.dtype.type
        s, d = cnt.shape[0], self.n_doses
        n_pts = pts.log_q.shape[0]
        x = m.x.astype(ft)[:, None]
        x2 = m.x2.astype(ft)[:, None]
        # theta (S, 6, P) = centre + (scale * root) @ t: for every state the same BLAS calls, of one
        # fixed shape, (6, 6) @ (6, <= 4096) (single-threaded at that size), whatever the batch
        rs = (scale[:, None, None] * root).astype(ft)
        theta = np.empty((s, _N_PAR, n_pts), ft)
        for a in range(0, n_pts, _GEMM_COLUMNS):
            z = min(a + _GEMM_COLUMNS, n_pts)
            np.matmul(rs, pts.t[:, a:z], out=theta[:, :, a:z])
        theta += centre.astype(ft)[:, :, None]
        eta_t = theta[:, 0:1, :] + theta[:, 1:2, :] * x                            # (S, D, P)
        eta_e = theta[:, 2:3, :] + theta[:, 3:4, :] * x + theta[:, 4:5, :] * x2
        e, qe = _sigmoid_pair(eta_e)
        t, qt = _sigmoid_pair(eta_t)
        # log-likelihood: sum over treated doses of count * log(cell probability)
        treated = np.flatnonzero(cnt.sum(axis=(0, 2)) > 0)   # doses with data anywhere in the chunk
        log_lik = np.zeros((s, n_pts), ft)
        if treated.size:
            k = np.tanh(ft(0.5) * theta[:, 5:6, :])                               # (S, 1, P)
            et, qet, tt, qtt = e[:, treated], qe[:, treated], t[:, treated], qt[:, treated]
            # cell probabilities (CELLS order): with p_ab the independent products (p_11 = e t, p_10 =
            # e (1 - t), ...) and kq = k p_11 p_00 = k e t (1 - e)(1 - t), pi_11 = p_11 + kq,
            # pi_10 = p_10 - kq, pi_01 = p_01 - kq, pi_00 = p_00 + kq; written into one array, one log
            cells = np.empty(et.shape[:2] + (4, n_pts), ft)
            np.multiply(et, tt, out=cells[:, :, 0])
            np.multiply(et, qtt, out=cells[:, :, 1])
            np.multiply(qet, tt, out=cells[:, :, 2])
            np.multiply(qet, qtt, out=cells[:, :, 3])
            kq = cells[:, :, 0] * cells[:, :, 3]
            kq *= k
            cells[:, :, 0] += kq
            cells[:, :, 1] -= kq
            cells[:, :, 2] -= kq
            cells[:, :, 3] += kq
            np.maximum(cells, ft(_TINY[ft]), out=cells)  # below it only where the weight is negligible anyway
            np.log(cells, out=cells)
            # summed dose by dose and cell by cell in a fixed order (NumPy element-wise, no BLAS): a dose
            # at which only other states of the chunk were treated adds exact zeros (0 * finite log), so
            # a state's sum is the same whichever states share its chunk
            cf = cnt[:, treated].astype(ft)
            for i in range(treated.size):
                for j in range(4):
                    log_lik += cf[:, i, j, None] * cells[:, i, j]
        dev = (theta - m.mu.astype(ft)[:, None]) * np.sqrt(m.prec).astype(ft)[:, None]
        dev *= dev
        log_w = log_lik - ft(0.5) * dev.sum(axis=1) - pts.log_q  # a middle-axis sum: added row by row, in order
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= _row_sum(w)[:, None]
        ess = 1.0 / _row_sum((w * w).astype(float))
        prob_eff = _weighted_mean(e, w)
        prob_tox = _weighted_mean(t, w)
        lo_e = ft(math.log(self.efficacy_hurdle / (1.0 - self.efficacy_hurdle)))
        lo_t = ft(math.log(self.toxicity_hurdle / (1.0 - self.toxicity_hurdle)))
        acc_e = _weighted_mean((eta_e > lo_e).astype(ft), w)
        acc_t = _weighted_mean((eta_t < lo_t).astype(ft), w)
        theta_mean = _weighted_mean(theta, w)
        if cov:
            dth = theta - theta_mean.astype(ft)[:, :, None]
            wd = dth * w[:, None, :]
            theta_cov = np.empty((s, _N_PAR, _N_PAR))
            for i in range(_N_PAR):  # lower triangle, mirrored: exactly symmetric
                theta_cov[:, i, :i + 1] = _row_sum(wd[:, i:i + 1, :] * dth[:, :i + 1, :])
                theta_cov[:, :i, i] = theta_cov[:, i, :i]
        else:
            theta_cov = np.full((s, _N_PAR, _N_PAR), np.nan)
        plug = _utility(prob_eff, prob_tox, self.eff0, self.tox1, self.p)
        if full:
            p = ft(self.p)
            # u = 1 - (a + b)^(1/p), a = ((1-e)/(1-e0))^p, b = (t/t1)^p
            tiny = ft(_TINY[ft])
            a = np.exp(p * (np.log(np.maximum(qe, tiny)) - ft(math.log1p(-self.eff0))))
            b = np.exp(p * (np.log(np.maximum(t, tiny)) - ft(math.log(self.tox1))))
            u = ft(1.0) - np.exp(np.log(a + b) / p)
            post_u = _weighted_mean(u, w)
            best = np.argmax(u, axis=1)                                            # (S, P)
            obd = _weighted_mean(best[:, None, :] == np.arange(d)[None, :, None], w)
            # Monte Carlo SEs of the weighted means (delta method, IID formula): var = sum w^2 (f - mean)^2
            w2 = w * w

            def se(f: np.ndarray, mean: np.ndarray) -> np.ndarray:
                dev_f = f - mean.astype(ft)[:, :, None]
                dev_f *= dev_f
                return np.sqrt(_weighted_mean(dev_f, w2))

            de, dt = _utility_grad(prob_eff, prob_tox, self.eff0, self.tox1, self.p)
            lin = de.astype(ft)[:, :, None] * e + dt.astype(ft)[:, :, None] * t  # linearised plug-in utility
            ses = (se(e, prob_eff), se(t, prob_tox), se((eta_e > lo_e).astype(ft), acc_e),
                   se((eta_t < lo_t).astype(ft), acc_t), se(lin, de * prob_eff + dt * prob_tox), se(u, post_u))
        else:
            post_u = np.full((s, d), np.nan)
            obd = np.full((s, d), np.nan)
            ses = tuple(np.full((s, d), np.nan) for _ in range(6))
        return PosteriorSummary(prob_eff, prob_tox, acc_e, acc_t, plug, post_u, obd, *ses, theta_mean, theta_cov,
                                mode.copy(), ess, np.full(s, n_pts, np.int64))


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Sums along the last axis, row by row.

    NumPy reduces a contiguous last axis with pairwise summation whose
    grouping depends only on the row's length, so each row's sum is the same,
    bit for bit, whatever the other rows and the number of threads (unlike a
    BLAS product, whose kernel, blocking and threading change with the shape
    of the whole call).
    """
    return np.add.reduce(np.ascontiguousarray(a), axis=-1)


def _weighted_mean(f: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:math:`\\sum_i w_i f_i` per state and row: ``f`` ``(S, K, P)``, ``w`` ``(S, P)`` -> ``(S, K)`` float64."""
    return _row_sum(f * w[:, None, :]).astype(float)


def _utility_grad(e: np.ndarray, t: np.ndarray, eff0: float, tox1: float, p: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:math:`(\\partial u/\\partial\\pi_E, \\partial u/\\partial\\pi_T)`.

    With :math:`a = ((1-\\pi_E)/(1-e_0))^p`, :math:`b = (\\pi_T/t_1)^p`:
    :math:`\\partial u/\\partial\\pi_E = (a+b)^{1/p-1} a/(1-\\pi_E)` and
    :math:`\\partial u/\\partial\\pi_T = -(a+b)^{1/p-1} b/\\pi_T`.
    """
    e = np.clip(e, 0.0, 1.0 - 1e-12)
    t = np.clip(t, 1e-12, 1.0)
    a = ((1.0 - e) / (1.0 - eff0)) ** p
    b = (t / tox1) ** p
    c = (a + b) ** (1.0 / p - 1.0)
    return c * a / (1.0 - e), -c * b / t


def _sigmoid_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:math:`(\\sigma(z), 1 - \\sigma(z))` without cancellation: :math:`r = 1/(1+e^z)`, :math:`\\sigma = e^z r`.

    ``z`` is clipped to +-80 first (far beyond where either value differs from
    0 or 1 in float32), which keeps :math:`e^z` finite.
    """
    ez = np.exp(np.clip(z, -_ETA_CLIP, _ETA_CLIP))
    r = np.reciprocal(ez + z.dtype.type(1.0))
    return ez * r, r


def _utility(e: np.ndarray, t: np.ndarray, eff0: float, tox1: float, p: float) -> np.ndarray:
    from escalade.design.efftox_model import efftox_utility

    return efftox_utility(e, t, eff0=eff0, tox1=tox1, p=p)


def _t_points(st: EngineSettings) -> dict[int, _PointSet]:
    """Fixed scrambled-Sobol multivariate-t variates, one nested set per level."""
    sob = qmc.Sobol(d=_N_PAR + 1, scramble=True, seed=np.random.default_rng(st.qmc_seed))
    n_max = st.levels[-1]
    u = sob.random(n_max)
    eps = 0.5 / n_max  # keep the inverse CDFs finite
    u = np.clip(u, eps, 1.0 - eps)
    z = special.ndtri(u[:, :_N_PAR])
    chi2 = stats.chi2.ppf(u[:, _N_PAR], st.df)
    tv = z * np.sqrt(st.df / chi2)[:, None]
    log_q = -0.5 * (st.df + _N_PAR) * np.log1p((tv * tv).sum(axis=1) / st.df)
    out = {}
    for n in sorted({*st.levels, st.pilot_points} - {0}):
        out[n] = _PointSet(np.ascontiguousarray(tv[:n].T, dtype=st.dtype), np.ascontiguousarray(log_q[:n], st.dtype))
    return out


def _safe_cholesky(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of a batch of covariances and which ones succeeded (finite, positive definite).

    Written out (:func:`_cholesky_rows`), not LAPACK, so that each state's
    factor is the same whatever the batch and the number of threads.
    """
    ok = np.all(np.isfinite(cov), axis=(1, 2))
    low, pd = _cholesky_rows(np.where(ok[:, None, None], cov, np.eye(cov.shape[-1])), 0.0)
    return low, ok & pd


def _empty_summary(s: int, d: int) -> PosteriorSummary:
    nan = np.nan
    return PosteriorSummary(
        *(np.full((s, d), nan) for _ in range(13)), np.full((s, _N_PAR), nan),
        np.full((s, _N_PAR, _N_PAR), nan), np.full((s, _N_PAR), nan), np.full(s, nan), np.zeros(s, np.int64),
    )


def _fill(out: PosteriorSummary, index: np.ndarray, part: PosteriorSummary) -> None:
    for f in _SUMMARY_FIELDS:
        getattr(out, f)[index] = getattr(part, f)
