"""Compiled (numba) kernels of the EffTox importance-sampling engine.

:mod:`escalade.design.efftox_engine` computes, for every state, some twenty
quantities over each of its 4,096 quasi-random points. In NumPy that is
about sixty passes over ``(states, doses, points)`` arrays; here it is one
loop per state over its points, fused, in float32 (the engine's default
``dtype``), with the sums in float64.

Reproducibility. The kernels are compiled with ``fastmath`` off, so no
multiply-add is fused and no sum is reordered by the compiler: every
elementwise operation is IEEE-exact whether the compiler vectorises it or not.
The exponential and logarithm are written out here (Cephes ``expf``/``logf``
polynomials, Moshier 1992, *Cephes Math Library*; relative error about 1e-7)
instead of calling the platform's ``libm`` or NumPy's CPU-dispatched SIMD
loops, so a state's numbers are the same, bit for bit, on every x86-64 or
ARM CPU, whatever its vector width. Sums over points are float64 sums along a
fixed binary tree (:func:`_tree_sum`: the point count is a power of 2). A state's summary depends on its own counts,
proposal and the fixed points only: never on the batch, the threads or BLAS
(there is no BLAS call).

The log-likelihood of a point (issue 18, second round) is one logarithm of a
product, not a sum of one logarithm per cell: each cell probability
:math:`\\pi = m\\,2^k` (:math:`m \\in [1, 2)`, read off its bits) adds
:math:`n k` to an integer exponent and multiplies :math:`m^n` (binary
powering in a fixed order) into a float32 mantissa, renormalised to
:math:`[1, 2)` after every cell, so the product cannot under- or overflow
whatever the counts; :func:`_log_scaled` is Cephes ``logf`` with the exponent
widened by the accumulated one. Measured on 4,096 points, a cell costs
0.9 us instead of 3.4 us (one log per point and state: 2.6 us), and the
engine's CPU per posterior fell by about 13%. The rounding error of the
product (about ``n`` float32 ulps for ``n`` patients) is no larger than that
of the sum of logarithms it replaced; summaries moved
by about 1e-7 (acceptability probabilities by up to 1e-3 where a point of
the main step moved across a hurdle, as the pilot's moments moved in the
last float32 bit), and the 10,000-trial benchmark and the shipped study
select the same doses in every trial as before.

Other same-number economies: the exponential skips its clip and range test
where the input is already clipped (:func:`_expf_mid`), the maximum of the
log weights runs in 16 lanes (:func:`_top`), the association term
:math:`\\kappa\\,\\pi_E\\pi_T(1-\\pi_E)(1-\\pi_T)` is computed once per dose
(:func:`_kq`), the pilot step skips per-dose means it does not use, and the
Newton kernel reuses its work arrays.

The kernels run with the GIL released (``nogil``), so the engine's threads run
them in parallel, and are cached on disk (``cache=True``): the first call of
a new Python environment compiles them (10-50 s on 2 cores, reported by
``bench/bench_efftox.py``), later processes load them.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["is_states", "mode_states", "exp32", "log32"]

_F = np.float32
_LOG2E = _F(1.44269504088896341)
_EXP_C1 = _F(0.693359375)
_EXP_C2 = _F(-2.12194440e-4)
_EXP_HI = _F(88.0)
_EXP_LO = _F(-87.0)       # below it exp is taken as 0 (the smallest normal float32 is e^-87.3)
_SQRTHF = _F(0.707106781186547524)
_LANES = 16               # running maxima of :func:`_top` (the point counts are powers of 2 >= 16)


@intrinsic
def _f32_bits(typingctx, x):  # pragma: no cover - compiled
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _bits_f32(typingctx, i):  # pragma: no cover - compiled
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(cache=True, error_model="numpy")
def _clip(v, lo, hi):  # pragma: no cover - compiled
    """min(max(v, lo), hi) as two selects (vectorises; numba's min/max add NaN branches)."""
    v = v if v > lo else lo
    return v if v < hi else hi


@njit(cache=True, error_model="numpy")
def _expf_mid(x):  # pragma: no cover - compiled
    """Cephes ``expf`` of an ``x`` in [-87, 88]: e^x = 2^n e^r, |r| <= ln2/2, degree-6 polynomial."""
    n = np.floor(x * _LOG2E + _F(0.5))
    r = x - n * _EXP_C1
    r = r - n * _EXP_C2
    pol = _F(1.9875691500e-4)
    pol = pol * r + _F(1.3981999507e-3)
    pol = pol * r + _F(8.3334519073e-3)
    pol = pol * r + _F(4.1665795894e-2)
    pol = pol * r + _F(1.6666665459e-1)
    pol = pol * r + _F(5.0000001201e-1)
    pol = pol * (r * r) + r + _F(1.0)
    scale = _bits_f32(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    return pol * scale


@njit(cache=True, error_model="numpy")
def _expf(x):  # pragma: no cover - compiled
    """Cephes ``expf``: e^x = 2^n e^r, |r| <= ln2/2, degree-6 polynomial; 0 below -87."""
    y = _expf_mid(_clip(x, _EXP_LO, _EXP_HI))
    return y if x >= _EXP_LO else _F(0.0)


@njit(cache=True, error_model="numpy")
def _logf_scaled(x, extra):  # pragma: no cover - compiled
    """Cephes ``logf`` of ``x * 2**extra`` for a positive normal float32 ``x`` (``extra`` an int32).

    x = 2^e m, m in [sqrt(1/2), sqrt(2)); the polynomial in m, then e + extra
    times ln 2 in two parts (exact products for |e| < 2**15).
    """
    bits = _f32_bits(x)
    e = np.int32((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126) + extra
    m = _bits_f32(np.int32((bits & np.int32(0x7FFFFF)) | np.int32(0x3F000000)))  # in [0.5, 1)
    lo = m < _SQRTHF
    e = e - (np.int32(1) if lo else np.int32(0))
    m = (m + m if lo else m) - _F(1.0)
    z = m * m
    y = _F(7.0376836292e-2)
    y = y * m - _F(1.1514610310e-1)
    y = y * m + _F(1.1676998740e-1)
    y = y * m - _F(1.2420140846e-1)
    y = y * m + _F(1.4249322787e-1)
    y = y * m - _F(1.6668057665e-1)
    y = y * m + _F(2.0000714765e-1)
    y = y * m - _F(2.4999993993e-1)
    y = y * m + _F(3.3333331174e-1)
    y = y * m * z
    ef = _F(e)
    y = y + ef * _EXP_C2
    y = y - _F(0.5) * z
    return m + y + ef * _EXP_C1


@njit(cache=True, error_model="numpy")
def _logf(x):  # pragma: no cover - compiled
    """Cephes ``logf`` of a positive normal float32."""
    return _logf_scaled(x, np.int32(0))


@njit(cache=True, error_model="numpy")
def exp32(x):  # pragma: no cover - compiled
    """Elementwise :func:`_expf` of a float32 array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _expf(x[i])
    return out


@njit(cache=True, error_model="numpy")
def log32(x):  # pragma: no cover - compiled
    """Elementwise :func:`_logf` of a positive float32 array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _logf(x[i])
    return out


@njit(cache=True, error_model="numpy")
def _tree_sum(buf, h):  # pragma: no cover - compiled
    """Sum of ``buf[:2h]`` (``h`` a power of 2) by halving in place along a fixed binary tree.

    The callers fill ``buf[:h]`` with the first level already added
    (``v_i + v_{i+h}``) and pass ``h``; the result is the tree sum of all ``2h`` values.
    """
    h //= 2
    while h >= 1:
        for i in range(h):
            buf[i] = buf[i] + buf[h + i]
        h //= 2
    return buf[0]


@njit(cache=True, error_model="numpy")
def _sum(f, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i f_i` in float64, tree order."""
    h = f.size // 2
    for i in range(h):
        buf[i] = np.float64(f[i]) + np.float64(f[h + i])
    return _tree_sum(buf, h)


@njit(cache=True, error_model="numpy")
def _wsum(f, w, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i w_i f_i` in float64 (products exact), tree order."""
    h = f.size // 2
    for i in range(h):
        buf[i] = np.float64(w[i]) * np.float64(f[i]) + np.float64(w[h + i]) * np.float64(f[h + i])
    return _tree_sum(buf, h)


@njit(cache=True, error_model="numpy")
def _wsum4(f1, f2, f3, f4, w, b1, b2, b3, b4, out, j):  # pragma: no cover - compiled
    """out[0..3, j] = the four :func:`_wsum` of f1..f4 (one pass over the weights; same numbers)."""
    h = w.size // 2
    for i in range(h):
        w0 = np.float64(w[i])
        w1 = np.float64(w[h + i])
        b1[i] = w0 * np.float64(f1[i]) + w1 * np.float64(f1[h + i])
        b2[i] = w0 * np.float64(f2[i]) + w1 * np.float64(f2[h + i])
        b3[i] = w0 * np.float64(f3[i]) + w1 * np.float64(f3[h + i])
        b4[i] = w0 * np.float64(f4[i]) + w1 * np.float64(f4[h + i])
    out[0, j] = _tree_sum(b1, h)
    out[1, j] = _tree_sum(b2, h)
    out[2, j] = _tree_sum(b3, h)
    out[3, j] = _tree_sum(b4, h)


@njit(cache=True, error_model="numpy")
def _wsum_sq_dev(f, mean, w2, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i w^2_i (f_i - m)^2` in float64, tree order."""
    h = f.size // 2
    for i in range(h):
        d0 = np.float64(f[i]) - mean
        d1 = np.float64(f[h + i]) - mean
        buf[i] = np.float64(w2[i]) * (d0 * d0) + np.float64(w2[h + i]) * (d1 * d1)
    return _tree_sum(buf, h)


@njit(cache=True, error_model="numpy")
def _wsum_cross(f, mf, g, mg, w, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i w_i (f_i - m_f)(g_i - m_g)` in float64, tree order."""
    h = f.size // 2
    for i in range(h):
        v0 = np.float64(w[i]) * ((np.float64(f[i]) - mf) * (np.float64(g[i]) - mg))
        v1 = np.float64(w[h + i]) * ((np.float64(f[h + i]) - mf) * (np.float64(g[h + i]) - mg))
        buf[i] = v0 + v1
    return _tree_sum(buf, h)


@njit(cache=True, error_model="numpy")
def _theta_row(out, c0, rs_row, tpts):  # pragma: no cover - compiled
    """out = c0 + sum_j rs_row[j] t_j, added over j in order."""
    for q in range(out.size):
        out[q] = c0
    for j in range(tpts.shape[0]):
        r = rs_row[j]
        if r == 0.0:  # a triangular root: adding 0 * t_j would change nothing
            continue
        tj = tpts[j]
        for q in range(out.size):
            out[q] = out[q] + r * tj[q]


@njit(cache=True, error_model="numpy")
def _dose_probs(th0, th1, th2, th3, th4, xd, x2d, lo_e, lo_t, e, qe, t, qt, ae, at):  # pragma: no cover
    """Per point: (sigma, 1 - sigma) of both linear predictors and the two acceptability indicators."""
    clip = np.float32(80.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for q in range(e.size):
        zt = th0[q] + th1[q] * xd
        ze = th2[q] + th3[q] * xd
        ze = ze + th4[q] * x2d
        ezt = _expf_mid(_clip(zt, -clip, clip))
        eze = _expf_mid(_clip(ze, -clip, clip))
        rt = one / (ezt + one)
        re = one / (eze + one)
        t[q] = ezt * rt
        qt[q] = rt
        e[q] = eze * re
        qe[q] = re
        ae[q] = one if ze > lo_e else zero
        at[q] = one if zt < lo_t else zero


@njit(cache=True, error_model="numpy")
def _kappa(psi, kk):  # pragma: no cover - compiled
    """tanh(psi / 2) = (e^psi - 1) / (e^psi + 1)."""
    clip = np.float32(80.0)
    one = np.float32(1.0)
    for q in range(psi.size):
        ep = _expf_mid(_clip(psi[q], -clip, clip))
        kk[q] = (ep - one) / (ep + one)


@njit(cache=True, error_model="numpy")
def _kq(e, t, qe, qt, kk, kq):  # pragma: no cover - compiled
    """kq = k e t (1-e)(1-t) of one dose (the association term every cell shares)."""
    for q in range(kq.size):
        v = (e[q] * t[q]) * (qe[q] * qt[q])
        kq[q] = v * kk[q]


@njit(cache=True, error_model="numpy")
def _renorm(mant, expo, q):  # pragma: no cover - compiled
    """Move the binary exponent of ``mant[q]`` (a positive normal float32) into ``expo[q]``: mant in [1, 2)."""
    bits = _f32_bits(mant[q])
    expo[q] = expo[q] + (((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127))
    mant[q] = _bits_f32((bits & np.int32(0x7FFFFF)) | np.int32(0x3F800000))


@njit(cache=True, error_model="numpy")
def _cell_power(mant, expo, a, b, kq, sign, tiny, n, base, sq):  # pragma: no cover - compiled
    """``mant * 2**expo`` times ``max(a b + sign kq, tiny) ** n``, point by point, for one cell of one dose.

    The cell probability ``c = m 2**k`` (``m`` in [1, 2)) adds ``n k`` to
    ``expo``; ``m ** n`` is multiplied into ``mant`` by binary powering in a
    fixed order (``m``, ``m**2``, ``m**4``, ... for the set bits of ``n``,
    lowest first, at most 64 at a time), and ``mant`` is renormalised into
    [1, 2), so the product never under- or overflows. Counts up to 7 (93 %
    of the cells of a trial) take one fused pass; ``base`` and ``sq`` are
    work arrays for larger counts.
    """
    one_bits = np.int32(0x3F800000)
    mask = np.int32(0x7FFFFF)
    n32 = np.int32(n)
    if n <= 7:
        b0 = (n & 1) != 0
        b1 = (n & 2) != 0
        b2 = (n & 4) != 0
        for q in range(mant.size):
            cell = a[q] * b[q] + sign * kq[q]
            cell = cell if cell > tiny else tiny
            bits = _f32_bits(cell)
            m1 = _bits_f32((bits & mask) | one_bits)
            m = mant[q]
            m = m * m1 if b0 else m
            m2 = m1 * m1
            m = m * m2 if b1 else m
            m4 = m2 * m2
            mant[q] = m * m4 if b2 else m
            expo[q] = expo[q] + n32 * (((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127))
            _renorm(mant, expo, q)
        return
    for q in range(mant.size):
        cell = a[q] * b[q] + sign * kq[q]
        cell = cell if cell > tiny else tiny
        bits = _f32_bits(cell)
        expo[q] = expo[q] + n32 * (((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127))
        base[q] = _bits_f32((bits & mask) | one_bits)
    rem = n
    while rem > 0:
        k = rem if rem <= 64 else 64
        rem -= k
        sq[:] = base
        while True:
            if k & 1:
                for q in range(mant.size):
                    mant[q] = mant[q] * sq[q]
            k >>= 1
            if k == 0:
                break
            for q in range(mant.size):
                sq[q] = sq[q] * sq[q]
        for q in range(mant.size):
            _renorm(mant, expo, q)


@njit(cache=True, error_model="numpy")
def _log_scaled(mant, expo, lw):  # pragma: no cover - compiled
    """lw = log(mant * 2**expo) point by point (:func:`_logf_scaled`)."""
    for q in range(lw.size):
        lw[q] = _logf_scaled(mant[q], expo[q])


@njit(cache=True, error_model="numpy")
def _add_prior_dev(dev, th, mu, sp):  # pragma: no cover - compiled
    for q in range(dev.size):
        dv = (th[q] - mu) * sp
        dev[q] = dev[q] + dv * dv


@njit(cache=True, error_model="numpy")
def _finish_log_w(lw, dev, log_q):  # pragma: no cover - compiled
    half = np.float32(0.5)
    for q in range(lw.size):
        v = lw[q] - half * dev[q]
        lw[q] = v - log_q[q]


@njit(cache=True, error_model="numpy")
def _weights(lw, top, w, w2):  # pragma: no cover - compiled
    for q in range(lw.size):
        w[q] = _expf(lw[q] - top)


@njit(cache=True, error_model="numpy")
def _scale_weights(w, w2, inv):  # pragma: no cover - compiled
    for q in range(w.size):
        v = w[q] * inv
        w[q] = v
        w2[q] = v * v


@njit(cache=True, error_model="numpy")
def _utility_points(qe, t, pf, l1e0, lt1, inv_p, tiny, u):  # pragma: no cover - compiled
    """u = 1 - (a + b)^(1/p), a = ((1-e)/(1-e0))^p, b = (t/t1)^p, through exp and log."""
    one = np.float32(1.0)
    for q in range(u.size):
        a = _expf(pf * (_logf(_clip(qe[q], tiny, one)) - l1e0))
        b = _expf(pf * (_logf(_clip(t[q], tiny, one)) - lt1))
        u[q] = one - _expf(_logf(a + b) * inv_p)


@njit(cache=True, error_model="numpy")
def _top(lw, lanes):  # pragma: no cover - compiled
    """The scan ``top = lw[0]; top = v if v > top`` over ``lw`` (a multiple of 16 long), in 16 lanes.

    16 running maxima, one per lane, then their maximum: vectorises where the
    one-by-one scan does not, and gives the same number (NaN skipped, NaN if
    ``lw[0]`` is). Ties of +0 and -0 may pick the other zero, which
    ``lw - top`` turns into the same weights.
    """
    top = lw[0]
    if top != top:
        return top
    for j in range(_LANES):
        lanes[j] = top
    for a in range(0, lw.size, _LANES):
        for j in range(_LANES):
            v = lw[a + j]
            lanes[j] = v if v > lanes[j] else lanes[j]
    for j in range(_LANES):
        top = lanes[j] if lanes[j] > top else top
    return top


@njit(cache=True, error_model="numpy", nogil=True)
def _utility_grad(e, t, eff0, tox1, p):  # pragma: no cover - compiled
    e = min(max(e, 0.0), 1.0 - 1e-12)
    t = min(max(t, 1e-12), 1.0)
    a = ((1.0 - e) / (1.0 - eff0)) ** p
    b = (t / tox1) ** p
    c = (a + b) ** (1.0 / p - 1.0)
    return c * a / (1.0 - e), -c * b / t


@njit(cache=True, error_model="numpy", nogil=True)
def is_states(cnt, centre, rs, tpts, log_q, x, x2, mu, sprec, lo_e, lo_t, tiny, eff0, tox1, p, want_cov, full,
              want_probs, prob_eff, prob_tox, acc_e, acc_t, theta_mean, theta_cov, ess, post_u, obd,
              ses):  # pragma: no cover - compiled
    """Self-normalised importance sampling of every state (see the engine's module docstring).

    Inputs: ``cnt`` (S, D, 4) cell counts, ``centre`` (S, 6), ``rs`` (S, 6, 6)
    float32 scaled proposal roots, ``tpts`` (6, P) and ``log_q`` (P,) the fixed
    t points; model constants in float32. Outputs (float64, preallocated):
    ``prob_eff``, ``prob_tox``, ``acc_e``, ``acc_t`` (S, D), ``theta_mean``
    (S, 6, when ``want_cov`` or ``full``; left as passed otherwise), ``theta_cov``
    (S, 6, 6, when ``want_cov``), ``ess`` (S,), and when
    ``full`` ``post_u``, ``obd`` (S, D) and ``ses`` (6, S, D). With ``want_probs``
    and ``full`` off (the pilot step: only the moments of theta and the ESS are
    used) the per-dose means are NaN and the dose probabilities of untreated
    doses are not computed; nothing else changes.
    """
    n_s, n_d = cnt.shape[0], cnt.shape[1]
    n_p = log_q.shape[0]
    f32 = np.float32
    theta = np.empty((6, n_p), f32)
    e = np.empty((n_d, n_p), f32)
    qe = np.empty((n_d, n_p), f32)
    t = np.empty((n_d, n_p), f32)
    qt = np.empty((n_d, n_p), f32)
    ae = np.empty((n_d, n_p), f32)
    at = np.empty((n_d, n_p), f32)
    u = np.empty((n_d, n_p), f32)
    kk = np.empty(n_p, f32)
    kq = np.empty(n_p, f32)
    mant = np.empty(n_p, f32)
    base = np.empty(n_p, f32)
    sq = np.empty(n_p, f32)
    expo = np.empty(n_p, np.int32)
    lw = np.empty(n_p, f32)
    dev = np.empty(n_p, f32)
    w = np.empty(n_p, f32)
    w2 = np.empty(n_p, f32)
    ind = np.empty(n_p, f32)
    lin = np.empty(n_p, f32)
    buf = np.empty(n_p)
    buf2 = np.empty(n_p)
    buf3 = np.empty(n_p)
    buf4 = np.empty(n_p)
    means = np.empty((4, n_d))
    lanes = np.empty(_LANES, f32)
    one = f32(1.0)
    for s in range(n_s):
        for i in range(6):  # theta = centre + rs @ t
            _theta_row(theta[i], f32(centre[s, i]), rs[s, i], tpts)
        probs = want_probs or full
        for d in range(n_d):
            if not probs and cnt[s, d, 0] + cnt[s, d, 1] + cnt[s, d, 2] + cnt[s, d, 3] == 0:
                continue
            _dose_probs(theta[0], theta[1], theta[2], theta[3], theta[4], x[d], x2[d], lo_e, lo_t,
                        e[d], qe[d], t[d], qt[d], ae[d], at[d])
        _kappa(theta[5], kk)
        # log weight = log-likelihood (dose by dose, cell by cell in CELLS order) + log prior - log proposal
        mant[:] = 1.0
        expo[:] = 0
        for d in range(n_d):
            if cnt[s, d, 0] + cnt[s, d, 1] + cnt[s, d, 2] + cnt[s, d, 3] == 0:
                continue
            _kq(e[d], t[d], qe[d], qt[d], kk, kq)
            for c in range(4):
                cc = cnt[s, d, c]
                if cc == 0:
                    continue
                a = e[d] if c <= 1 else qe[d]
                b = t[d] if c == 0 or c == 2 else qt[d]
                sign = one if c == 0 or c == 3 else -one
                _cell_power(mant, expo, a, b, kq, sign, tiny, cc, base, sq)
        _log_scaled(mant, expo, lw)
        dev[:] = 0.0
        for i in range(6):
            _add_prior_dev(dev, theta[i], mu[i], sprec[i])
        _finish_log_w(lw, dev, log_q)
        top = _top(lw, lanes)
        _weights(lw, top, w, w2)
        total = _sum(w, buf)
        _scale_weights(w, w2, f32(1.0 / total))
        ess[s] = 1.0 / _sum(w2, buf)
        for d in range(n_d):
            if not probs:
                prob_eff[s, d] = prob_tox[s, d] = acc_e[s, d] = acc_t[s, d] = np.nan
                continue
            _wsum4(e[d], t[d], ae[d], at[d], w, buf, buf2, buf3, buf4, means, d)
            prob_eff[s, d], prob_tox[s, d], acc_e[s, d], acc_t[s, d] = means[0, d], means[1, d], means[2, d], \
                means[3, d]
        if want_cov or full:
            for i in range(6):
                theta_mean[s, i] = _wsum(theta[i], w, buf)
        if want_cov:
            for i in range(6):
                for j in range(i + 1):  # lower triangle, mirrored: exactly symmetric
                    v = _wsum_cross(theta[i], theta_mean[s, i], theta[j], theta_mean[s, j], w, buf)
                    theta_cov[s, i, j] = v
                    theta_cov[s, j, i] = v
        if full:
            pf = f32(p)
            for d in range(n_d):
                _utility_points(qe[d], t[d], pf, f32(math.log1p(-eff0)), f32(math.log(tox1)), one / pf, tiny, u[d])
            for d in range(n_d):
                post_u[s, d] = _wsum(u[d], w, buf)
                for q in range(n_p):  # Pr(d = argmax_k u_k), ties to the lowest dose
                    best = 0
                    for k in range(1, n_d):
                        if u[k, q] > u[best, q]:
                            best = k
                    ind[q] = one if best == d else f32(0.0)
                obd[s, d] = _wsum(ind, w, buf)
                pe, pt = prob_eff[s, d], prob_tox[s, d]
                ses[0, s, d] = math.sqrt(_wsum_sq_dev(e[d], pe, w2, buf))
                ses[1, s, d] = math.sqrt(_wsum_sq_dev(t[d], pt, w2, buf))
                ses[2, s, d] = math.sqrt(_wsum_sq_dev(ae[d], acc_e[s, d], w2, buf))
                ses[3, s, d] = math.sqrt(_wsum_sq_dev(at[d], acc_t[s, d], w2, buf))
                de, dt = _utility_grad(pe, pt, eff0, tox1, p)
                for q in range(n_p):  # linearised plug-in utility
                    lin[q] = f32(de * (np.float64(e[d, q]) - pe) + dt * (np.float64(t[d, q]) - pt))
                ses[4, s, d] = math.sqrt(_wsum_sq_dev(lin, 0.0, w2, buf))
                ses[5, s, d] = math.sqrt(_wsum_sq_dev(u[d], post_u[s, d], w2, buf))


# ----------------------------------------------------------------------------------------------
# Posterior mode (Newton), one state at a time, float64 (the engine's laplace_mode, compiled)
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _softplus(z):  # pragma: no cover - compiled
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@njit(cache=True, error_model="numpy")
def _log_post1(th, cnt, x, x2, mu, prec):  # pragma: no cover - compiled
    """Log posterior (up to a constant) of one state; -inf where not finite."""
    k = math.tanh(0.5 * th[5])
    ll = 0.0
    for d in range(x.size):
        eta_t = th[0] + th[1] * x[d]
        eta_e = th[2] + th[3] * x[d] + th[4] * x2[d]
        sp_e, sp_t = _softplus(eta_e), _softplus(eta_t)
        e, t = math.exp(eta_e - sp_e), math.exp(eta_t - sp_t)
        qe, qt = math.exp(-sp_e), math.exp(-sp_t)
        c11, c10, c01, c00 = float(cnt[d, 0]), float(cnt[d, 1]), float(cnt[d, 2]), float(cnt[d, 3])
        n = c11 + c10 + c01 + c00
        v = (c11 + c10) * eta_e + (c11 + c01) * eta_t - n * (sp_e + sp_t)
        v = v + c11 * math.log1p(k * qe * qt) + c10 * math.log1p(-k * qe * t) \
            + c01 * math.log1p(-k * e * qt) + c00 * math.log1p(k * e * t)
        ll += v
    pr = 0.0
    for i in range(6):
        dv = th[i] - mu[i]
        pr += dv * dv * prec[i]
    lp = ll - 0.5 * pr
    return lp if lp == lp else -np.inf


@njit(cache=True, error_model="numpy")
def _derivs1(th, cnt, x, x2, mu, prec, grad, hess, wk):  # pragma: no cover - compiled
    """Log posterior, gradient and Hessian of one state (the engine's _log_post_derivs, per state).

    ``wk`` is a work array of 34 float64 (no allocation per call).
    """
    k = math.tanh(0.5 * th[5])
    kp = 0.5 * (1.0 - k * k)
    kpp = -k * kp
    wk[:22] = 0.0
    ge = wk[0:3]     # sum_d g_E x^j, j = 0..2
    gt = wk[3:5]
    gp = 0.0
    hee = wk[5:10]
    htt = wk[10:13]
    het = wk[13:17]
    hep = wk[17:20]
    htp = wk[20:22]
    hpp = 0.0
    ll = 0.0
    f1 = wk[22:25]
    f2 = wk[25:34].reshape((3, 3))
    for d in range(x.size):
        xd = x[d]
        eta_t = th[0] + th[1] * xd
        eta_e = th[2] + th[3] * xd + th[4] * x2[d]
        sp_e, sp_t = _softplus(eta_e), _softplus(eta_t)
        e, t = math.exp(eta_e - sp_e), math.exp(eta_t - sp_t)
        qe, qt = math.exp(-sp_e), math.exp(-sp_t)
        de, dt = e * qe, t * qt
        dde, ddt = de * (qe - e), dt * (qt - t)
        c = (float(cnt[d, 0]), float(cnt[d, 1]), float(cnt[d, 2]), float(cnt[d, 3]))
        n = c[0] + c[1] + c[2] + c[3]
        ne, nt = c[0] + c[1], c[0] + c[2]
        ll += ne * eta_e + nt * eta_t - n * (sp_e + sp_t)
        g0, g1, g2 = ne - n * e, nt - n * t, 0.0
        h00, h11, h01, h02, h12, h22 = -n * de, -n * dt, 0.0, 0.0, 0.0, 0.0
        for cell in range(4):
            cc = c[cell]
            s = 1.0 if cell == 0 or cell == 3 else -1.0
            if cell <= 1:
                a, da, dda = qe, -de, -dde
            else:
                a, da, dda = e, de, dde
            if cell == 0 or cell == 2:
                b, db, ddb = qt, -dt, -ddt
            else:
                b, db, ddb = t, dt, ddt
            ab = a * b
            big_a = 1.0 + s * k * ab
            ll += cc * math.log(big_a)
            f1[0], f1[1], f1[2] = k * da * b, k * a * db, kp * ab
            r = cc / big_a
            g0 += s * r * f1[0]
            g1 += s * r * f1[1]
            g2 += s * r * f1[2]
            f2[0, 0], f2[0, 1], f2[0, 2] = k * dda * b, k * da * db, kp * da * b
            f2[1, 1], f2[1, 2] = k * a * ddb, kp * a * db
            f2[2, 2] = kpp * ab
            h00 += r * (s * f2[0, 0] - f1[0] * f1[0] / big_a)
            h11 += r * (s * f2[1, 1] - f1[1] * f1[1] / big_a)
            h01 += r * (s * f2[0, 1] - f1[0] * f1[1] / big_a)
            h02 += r * (s * f2[0, 2] - f1[0] * f1[2] / big_a)
            h12 += r * (s * f2[1, 2] - f1[1] * f1[2] / big_a)
            h22 += r * (s * f2[2, 2] - f1[2] * f1[2] / big_a)
        xp = 1.0
        for j in range(5):
            if j < 3:
                ge[j] += g0 * xp
                hep[j] += h02 * xp
            if j < 2:
                gt[j] += g1 * xp
                htp[j] += h12 * xp
            if j < 3:
                htt[j] += h11 * xp
            if j < 4:
                het[j] += h01 * xp
            hee[j] += h00 * xp
            xp *= xd
        gp += g2
        hpp += h22
    grad[0], grad[1], grad[2], grad[3], grad[4], grad[5] = gt[0], gt[1], ge[0], ge[1], ge[2], gp
    e_idx = (2, 3, 4)
    t_idx = (0, 1)
    for i in range(3):
        a = e_idx[i]
        for j in range(3):
            hess[a, e_idx[j]] = hee[i + j]
        for j in range(2):
            hess[a, t_idx[j]] = het[i + j]
            hess[t_idx[j], a] = het[i + j]
        hess[a, 5] = hep[i]
        hess[5, a] = hep[i]
    for i in range(2):
        a = t_idx[i]
        for j in range(2):
            hess[a, t_idx[j]] = htt[i + j]
        hess[a, 5] = htp[i]
        hess[5, a] = htp[i]
    hess[5, 5] = hpp
    pr = 0.0
    for i in range(6):
        dv = th[i] - mu[i]
        pr += dv * dv * prec[i]
        grad[i] -= dv * prec[i]
        hess[i, i] -= prec[i]
    return ll - 0.5 * pr


@njit(cache=True, error_model="numpy")
def _ascent1(grad, hess, floor, step, root, low, inv, tmp):  # pragma: no cover - compiled
    """Newton ascent direction and a root R with R R' = (-H)^-1 (eigenvalues of -H floored where not PD).

    ``low``, ``inv`` (6, 6) and ``tmp`` (6,) are work arrays (no allocation per call).
    """
    n = 6
    low[:, :] = 0.0
    ok = True
    for j in range(n):
        dsum = 0.0
        for m in range(j):
            dsum += low[j, m] * low[j, m]
        dj = -hess[j, j] - dsum
        if not dj > floor:
            ok = False
            break
        ljj = math.sqrt(dj)
        low[j, j] = ljj
        for i in range(j + 1, n):
            v = 0.0
            for m in range(j):
                v += low[i, m] * low[j, m]
            low[i, j] = (-hess[i, j] - v) / ljj
    if ok:
        inv[:, :] = 0.0  # L^-1 by forward substitution
        for j in range(n):
            inv[j, j] = 1.0 / low[j, j]
            for i in range(j + 1, n):
                v = 0.0
                for m in range(j, i):
                    v += low[i, m] * inv[m, j]
                inv[i, j] = -v / low[i, i]
        for i in range(n):
            v = 0.0
            for j in range(n):
                v += inv[i, j] * grad[j]
            tmp[i] = v
        for i in range(n):
            v = 0.0
            for j in range(n):
                root[i, j] = inv[j, i]            # L^-T
                v += inv[j, i] * tmp[j]
            step[i] = v
        return
    neg = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            neg[i, j] = -hess[i, j]
    w, v = np.linalg.eigh(neg)
    for j in range(n):
        w[j] = max(w[j], floor)
    for j in range(n):
        pj = 0.0
        for i in range(n):
            pj += v[i, j] * grad[i]
        pj /= w[j]
        sw = math.sqrt(w[j])
        for i in range(n):
            root[i, j] = v[i, j] / sw
        w[j] = pj
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += v[i, j] * w[j]
        step[i] = s


@njit(cache=True, nogil=True, error_model="numpy")
def mode_states(cnt, x, x2, mu, prec, floor, max_iter, tol, ls_steps, armijo, max_step,
                mode, root, done):  # pragma: no cover - compiled
    """Posterior mode and Laplace root of every state: Newton with an Armijo line search.

    The same algorithm as :func:`escalade.design.efftox_engine.laplace_mode`
    (modified Newton, step capped at ``max_step`` prior SDs, backtracking by
    halves), one state at a time.
    """
    grad = np.empty(6)
    hess = np.empty((6, 6))
    step = np.empty(6)
    trial = np.empty(6)
    th = np.empty(6)
    rt = np.empty((6, 6))
    wk = np.empty(34)
    low = np.empty((6, 6))
    inv = np.empty((6, 6))
    tmp = np.empty(6)
    for s in range(cnt.shape[0]):
        c = cnt[s]
        th[:] = mu
        done[s] = False
        for _ in range(max_iter):
            lp = _derivs1(th, c, x, x2, mu, prec, grad, hess, wk)
            _ascent1(grad, hess, floor, step, rt, low, inv, tmp)
            dec = 0.0
            for i in range(6):
                dec += grad[i] * step[i]
            if dec < tol:
                done[s] = True
                break
            reach = 0.0
            for i in range(6):
                reach = max(reach, abs(step[i] * math.sqrt(prec[i])))
            alpha = min(1.0, max_step / max(reach, 1e-300))
            moved = False
            for _ls in range(ls_steps):
                for i in range(6):
                    trial[i] = th[i] + alpha * step[i]
                if _log_post1(trial, c, x, x2, mu, prec) >= lp + armijo * alpha * dec:
                    th[:] = trial
                    moved = True
                    break
                alpha *= 0.5
            if not moved:  # flat to rounding: take the point as the mode
                _derivs1(th, c, x, x2, mu, prec, grad, hess, wk)
                _ascent1(grad, hess, floor, step, rt, low, inv, tmp)
                done[s] = True
                break
        if not done[s]:
            _derivs1(th, c, x, x2, mu, prec, grad, hess, wk)
            _ascent1(grad, hess, floor, step, rt, low, inv, tmp)
        mode[s] = th
        root[s] = rt
