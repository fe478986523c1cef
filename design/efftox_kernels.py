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

The kernels run with the GIL released (``nogil``), so the engine's threads run
them in parallel, and are cached on disk (``cache=True``): the first call of
a new Python environment compiles them (a few seconds, reported by
``bench/bench_efftox.py``), later processes load them.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["is_states", "exp32", "log32"]

_F = np.float32
_LOG2E = _F(1.44269504088896341)
_EXP_C1 = _F(0.693359375)
_EXP_C2 = _F(-2.12194440e-4)
_EXP_HI = _F(88.0)
_EXP_LO = _F(-87.0)       # below it exp is taken as 0 (the smallest normal float32 is e^-87.3)
_SQRTHF = _F(0.707106781186547524)


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


@njit(cache=True, error_model="numpy", inline="always")
def _clip(v, lo, hi):  # pragma: no cover - compiled
    """min(max(v, lo), hi) as two selects (vectorises; numba's min/max add NaN branches)."""
    v = v if v > lo else lo
    return v if v < hi else hi


@njit(cache=True, error_model="numpy", inline="always")
def _expf(x):  # pragma: no cover - compiled
    """Cephes ``expf``: e^x = 2^n e^r, |r| <= ln2/2, degree-6 polynomial; 0 below -87."""
    xc = _clip(x, _EXP_LO, _EXP_HI)
    n = np.floor(xc * _LOG2E + _F(0.5))
    r = xc - n * _EXP_C1
    r = r - n * _EXP_C2
    pol = _F(1.9875691500e-4)
    pol = pol * r + _F(1.3981999507e-3)
    pol = pol * r + _F(8.3334519073e-3)
    pol = pol * r + _F(4.1665795894e-2)
    pol = pol * r + _F(1.6666665459e-1)
    pol = pol * r + _F(5.0000001201e-1)
    pol = pol * (r * r) + r + _F(1.0)
    scale = _bits_f32(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    y = pol * scale
    return y if x >= _EXP_LO else _F(0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _logf(x):  # pragma: no cover - compiled
    """Cephes ``logf`` of a positive normal float32: x = 2^e m, m in [sqrt(1/2), sqrt(2))."""
    bits = _f32_bits(x)
    e = np.int32((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126)
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
def _tree_sum(buf):  # pragma: no cover - compiled
    """Sum of a float64 array whose length is a power of 2, by halving in place (a fixed binary tree)."""
    h = buf.size // 2
    while h >= 1:
        for i in range(h):
            buf[i] = buf[i] + buf[h + i]
        h //= 2
    return buf[0]


@njit(cache=True, error_model="numpy")
def _wsum(f, w, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i w_i f_i` in float64 (products exact, tree sum)."""
    for i in range(f.size):
        buf[i] = np.float64(w[i]) * np.float64(f[i])
    return _tree_sum(buf)


@njit(cache=True, error_model="numpy")
def _wsum_sq_dev(f, mean, w2, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i w^2_i (f_i - m)^2` in float64."""
    for i in range(f.size):
        dv = np.float64(f[i]) - mean
        buf[i] = np.float64(w2[i]) * (dv * dv)
    return _tree_sum(buf)


@njit(cache=True, error_model="numpy")
def _wsum_cross(f, mf, g, mg, w, buf):  # pragma: no cover - compiled
    """:math:`\\sum_i w_i (f_i - m_f)(g_i - m_g)` in float64."""
    for i in range(f.size):
        buf[i] = np.float64(w[i]) * ((np.float64(f[i]) - mf) * (np.float64(g[i]) - mg))
    return _tree_sum(buf)


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
        ezt = _expf(_clip(zt, -clip, clip))
        eze = _expf(_clip(ze, -clip, clip))
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
        ep = _expf(_clip(psi[q], -clip, clip))
        kk[q] = (ep - one) / (ep + one)


@njit(cache=True, error_model="numpy")
def _add_cell(lw, fc, a, b, e, t, qe, qt, kk, sign, tiny):  # pragma: no cover - compiled
    """lw += c log(max(a b + sign k e t (1-e)(1-t), tiny)) for one cell of one dose."""
    for q in range(lw.size):
        kq = (e[q] * t[q]) * (qe[q] * qt[q])
        kq = kq * kk[q]
        cell = a[q] * b[q] + sign * kq
        lw[q] = lw[q] + fc * _logf(cell if cell > tiny else tiny)


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
              prob_eff, prob_tox, acc_e, acc_t, theta_mean, theta_cov, ess, post_u, obd, ses):  # pragma: no cover
    """Self-normalised importance sampling of every state (see the engine's module docstring).

    Inputs: ``cnt`` (S, D, 4) cell counts, ``centre`` (S, 6), ``rs`` (S, 6, 6)
    float32 scaled proposal roots, ``tpts`` (6, P) and ``log_q`` (P,) the fixed
    t points; model constants in float32. Outputs (float64, preallocated):
    ``prob_eff``, ``prob_tox``, ``acc_e``, ``acc_t`` (S, D), ``theta_mean``
    (S, 6), ``theta_cov`` (S, 6, 6, when ``want_cov``), ``ess`` (S,), and when
    ``full`` ``post_u``, ``obd`` (S, D) and ``ses`` (6, S, D).
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
    lw = np.empty(n_p, f32)
    dev = np.empty(n_p, f32)
    w = np.empty(n_p, f32)
    w2 = np.empty(n_p, f32)
    ind = np.empty(n_p, f32)
    buf = np.empty(n_p)
    one = f32(1.0)
    for s in range(n_s):
        for i in range(6):  # theta = centre + rs @ t
            _theta_row(theta[i], f32(centre[s, i]), rs[s, i], tpts)
        for d in range(n_d):
            _dose_probs(theta[0], theta[1], theta[2], theta[3], theta[4], x[d], x2[d], lo_e, lo_t,
                        e[d], qe[d], t[d], qt[d], ae[d], at[d])
        _kappa(theta[5], kk)
        # log weight = log-likelihood (dose by dose, cell by cell in CELLS order) + log prior - log proposal
        lw[:] = 0.0
        for d in range(n_d):
            for c in range(4):
                cc = cnt[s, d, c]
                if cc == 0:
                    continue
                a = e[d] if c <= 1 else qe[d]
                b = t[d] if c == 0 or c == 2 else qt[d]
                sign = one if c == 0 or c == 3 else -one
                _add_cell(lw, f32(cc), a, b, e[d], t[d], qe[d], qt[d], kk, sign, tiny)
        dev[:] = 0.0
        for i in range(6):
            _add_prior_dev(dev, theta[i], mu[i], sprec[i])
        _finish_log_w(lw, dev, log_q)
        top = lw[0]
        for q in range(n_p):
            if lw[q] > top:
                top = lw[q]
        _weights(lw, top, w, w2)
        for q in range(n_p):
            buf[q] = np.float64(w[q])
        total = _tree_sum(buf)
        _scale_weights(w, w2, f32(1.0 / total))
        for q in range(n_p):
            buf[q] = np.float64(w2[q])
        ess[s] = 1.0 / _tree_sum(buf)
        for d in range(n_d):
            prob_eff[s, d] = _wsum(e[d], w, buf)
            prob_tox[s, d] = _wsum(t[d], w, buf)
            acc_e[s, d] = _wsum(ae[d], w, buf)
            acc_t[s, d] = _wsum(at[d], w, buf)
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
                    dv = de * (np.float64(e[d, q]) - pe) + dt * (np.float64(t[d, q]) - pt)
                    buf[q] = np.float64(w2[q]) * (dv * dv)
                ses[4, s, d] = math.sqrt(_tree_sum(buf))
                ses[5, s, d] = math.sqrt(_wsum_sq_dev(u[d], post_u[s, d], w2, buf))
