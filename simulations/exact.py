"""Exact operating characteristics by dynamic programming over trial states.

DESIGN.md section 2: a Markov design decides from the per-dose counts (and the
small path state of :class:`~escalade.design.base.States`) only, so the
probability of every terminal state follows from a forward recursion over
cohorts. With :math:`\\pi_k(s)` the probability that the trial is in the
(post-cohort) state :math:`s` after :math:`k` cohorts,

.. math::

    \\pi_{k+1}(s') = \\sum_{s \\,\\text{live}} \\pi_k(s)
        \\sum_{o} \\Pr(o \\mid \\text{dose}(s), c(s)) \\,[s \\oplus o = s'],

where ``dose(s)`` and ``c(s) = min(cohort_size(s), max_n - N(s))`` are the
design's decision in :math:`s`, :math:`o` runs over the outcomes of a cohort of
:math:`c` patients and :math:`s \\oplus o` adds them to the counts. States that
reach ``max_n`` end with :attr:`~escalade.design.base.StopReason.MAX_SAMPLE_SIZE`
(``decide`` is not asked, as in :mod:`escalade.simulations.trial`); states the
design stops end with its reason. Identical states at the same depth are merged
(their probabilities summed), so the cost grows with the number of *distinct*
states, and ``decide`` runs once per distinct live state, in one batch per depth.

Cohort outcomes
---------------
Each patient at dose :math:`d` has a DLT with probability :math:`p_T`, a response
with probability :math:`p_E`, jointly through a Gaussian copula with correlation
:math:`\\rho` (the engine's latent normals, :mod:`escalade.simulations.patients`):

.. math::

    \\pi_B = \\Phi_2(\\Phi^{-1}(p_T), \\Phi^{-1}(p_E); \\rho),\\quad
    \\pi_T = p_T - \\pi_B,\\quad \\pi_E = p_E - \\pi_B,\\quad
    \\pi_N = 1 - p_T - p_E + \\pi_B.

* Designs that use efficacy (``design.uses_efficacy``): the cohort's cell counts
  :math:`(b, t, e, m)` are multinomial :math:`(c; \\pi_B, \\pi_T, \\pi_E, \\pi_N)`.
* Toxicity-only designs: only the DLT count :math:`y \\sim \\mathrm{Bin}(c, p_T)`
  is enumerated (enumerating responses would multiply the states without changing
  a decision). Responses are then carried as their exact conditional expectation
  given the terminal state: given :math:`n_d` patients and :math:`y_d` DLTs at
  :math:`d`, patients' responses are independent of the path, so

  .. math::

      E[\\text{eff}_d \\mid s] = y_d \\frac{\\pi_B}{p_T} + (n_d - y_d) \\frac{\\pi_E}{1 - p_T},
      \\qquad E[\\text{both}_d \\mid s] = y_d \\frac{\\pi_B}{p_T}.

  The ``eff`` and ``both`` arrays of the result then hold these (float)
  expectations, so every operating characteristic linear in responses (responders,
  response rate) is exact; :attr:`ExactOutcomes.efficacy_enumerated` is False.

Memory
------
States are rows of one- or two-byte integers (the smallest type that holds
``max_n``; :func:`_storage_dtype`) with a float64 probability; ``decide`` and
``select`` get int64 :class:`~escalade.design.base.States` one chunk at a
time. The peak is about 270 bytes per distinct live state with one-byte
fields (expansion, merge and index arrays included; measured with tracemalloc
and RSS by ``bench/bench_exact.py``: BOIN on 5 doses, 20 cohorts of 3: 4.1
million states, 1.2 GB), which :class:`ExactLimitError` reports.

Examples
--------
>>> from escalade.design.boin import BoinConfig, BoinDesign
>>> d = BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=12))
>>> out = exact_outcomes(d, [0.05, 0.10, 0.25, 0.40, 0.55])
>>> round(float(out.weight.sum()), 12)
1.0
>>> round(float(out.weight[out.selected == 1].sum()), 6)  # P(select dose 2), as escalation
0.415079
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import integrate, special

from escalade.design.base import NO_DOSE, Decisions, Design, FloatArray, IntArray, States, StopReason
from escalade.scenarios.errors import ConfigError, EscaladeError
from escalade.simulations.outcomes import TrialOutcomes

__all__ = [
    "DEFAULT_MAX_STATES",
    "ExactOutcomes",
    "ExactLimitError",
    "exact_outcomes",
    "cell_probabilities",
    "cohort_outcomes",
    "outcome_probabilities",
    "check_truth",
    "decide_in_chunks",
]

log = logging.getLogger(__name__)

#: Default cap on the number of distinct live states held at one depth: about 3.2 GB at the peak with
#: one-byte fields (see :func:`_bytes_per_state`); BOIN and CRM on 5 doses reach 20 cohorts of 3 under it
#: (BOIN, curve A of bench/bench_exact.py: 4.1 million states).
DEFAULT_MAX_STATES: int = 12_000_000

#: States passed to ``decide``/``select`` per call (bounds a costly design's memory).
DECIDE_CHUNK: int = 65_536

#: Children built per expansion chunk before merging (bounds peak memory).
_EXPAND_CHUNK: int = 1_000_000

#: Terminal states passed to ``select`` per call.
_SELECT_CHUNK: int = 8_192

# Peak memory per distinct live state = _PEAK_FACTOR * (row bytes + 8) + _PEAK_EXTRA (see _bytes_per_state),
# fitted to tracemalloc's peaks of BOIN and CRM at 16 and 20 cohorts (bench/bench_exact.py)
_PEAK_FACTOR: float = 6.0
_PEAK_EXTRA: int = 80


class ExactLimitError(EscaladeError, RuntimeError):
    """Exact enumeration would hold more distinct states than allowed.

    Callers fall back to simulation (``run_study`` records the message as the
    reason). Attributes carry the numbers: ``n_states`` (reached), ``limit``,
    ``depth`` (cohort at which it happened), ``design`` (its kind) and
    ``bytes_per_state`` (the estimated peak memory per distinct live state).
    """

    def __init__(self, n_states: int, limit: int, depth: int, design: str, bytes_per_state: int = 0) -> None:
        self.n_states = int(n_states)
        self.limit = int(limit)
        self.depth = int(depth)
        self.design = design
        self.bytes_per_state = int(bytes_per_state) or _bytes_per_state(np.zeros((0, 23), np.int8))
        super().__init__(
            f"exact enumeration of design '{design}' reached {self.n_states:,} distinct states after cohort "
            f"{self.depth} (limit max_states = {self.limit:,}); simulate instead, or raise max_states "
            f"if memory allows (peak memory about {self.bytes_per_state} bytes per state, "
            f"{self.bytes_per_state * self.limit / 2**30:.1f} GiB at the limit)"
        )


@dataclass(frozen=True, slots=True, eq=False)
class ExactOutcomes(TrialOutcomes):
    """:class:`TrialOutcomes` of an exact enumeration: one row per distinct terminal state.

    ``weight`` holds the exact probability of each row (summing to 1 up to
    rounding), ``exact`` is True and ``cohorts`` is the depth at which the state
    ended. Terminal states that differ only in what the outcomes do not record
    (the current dose and the last cohort) share a row. Extra attributes:

    efficacy_enumerated
        True when responses were enumerated (``eff``/``both`` are integer counts);
        False when they are the exact conditional expectations (floats, see the
        module docstring).
    recommendation
        ``"select"`` (``design.select`` of the final state) or ``"next_dose"``
        (the dose ``decide`` gives after the last cohort; NO_DOSE where the
        design stopped).
    peak_states
        Largest number of distinct states held at one depth.
    n_decided
        Number of distinct live states passed to ``decide``.
    """

    efficacy_enumerated: bool = False
    recommendation: str = "select"
    peak_states: int = 0
    n_decided: int = 0


# --------------------------------------------------------------------------- truth and cohort outcomes


def check_truth(
    p_tox: object, p_eff: object | None, association: float, n_doses: int
) -> tuple[FloatArray, FloatArray, float]:
    """Validate true curves: ``n_doses`` probabilities each, ``association`` in [-1, 1].

    Raises
    ------
    ConfigError
        Naming ``p_tox``/``p_eff``/``association``, the value and what is allowed.
    """
    pt = np.asarray(p_tox, dtype=float).reshape(-1)
    pe = np.zeros_like(pt) if p_eff is None else np.asarray(p_eff, dtype=float).reshape(-1)
    for name, arr in (("p_tox", pt), ("p_eff", pe)):
        if arr.shape != (n_doses,):
            raise ConfigError(name, arr.tolist(), f"must hold one probability per dose ({n_doses} values)")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
            raise ConfigError(name, arr.tolist(), "must be probabilities in [0, 1]")
    rho = float(association)
    if not math.isfinite(rho) or not -1.0 <= rho <= 1.0:
        raise ConfigError("association", association, "must be a correlation in [-1, 1]")
    return pt, pe, rho


def _bvn_lower(h: float, k: float, rho: float) -> float:
    """:math:`\\Phi_2(h, k; \\rho)` for finite ``h, k`` and :math:`|\\rho| < 1`.

    Plackett's identity :math:`\\partial\\Phi_2/\\partial\\rho = \\phi_2`, integrated
    from 0 (independence): :math:`\\Phi_2 = \\Phi(h)\\Phi(k) + \\int_0^\\rho \\phi_2(h, k; r)\\,dr`
    (Plackett 1954, Biometrika 41:351-360). The integrand is smooth on [0, rho].
    """

    def dens(r: float) -> float:
        q = 1.0 - r * r
        return math.exp(-(h * h - 2.0 * r * h * k + k * k) / (2.0 * q)) / (2.0 * math.pi * math.sqrt(q))

    val, _err = integrate.quad(dens, 0.0, rho, epsabs=1e-15, epsrel=1e-13, limit=200)
    return float(special.ndtr(h) * special.ndtr(k) + val)


def cell_probabilities(p_tox: object, p_eff: object, association: float = 0.0) -> FloatArray:
    """Per-dose probabilities of the four joint cells, columns ``(B, T, E, N)``.

    ``B`` = DLT and response, ``T`` = DLT only, ``E`` = response only, ``N`` = neither,
    with :math:`\\pi_B = \\Phi_2(\\Phi^{-1}(p_T), \\Phi^{-1}(p_E); \\rho)` (exactly
    :math:`p_T p_E` when :math:`\\rho = 0`; the Fréchet bounds at :math:`\\rho = \\pm 1`).

    Examples
    --------
    >>> cell_probabilities([0.2], [0.5], 0.0).round(3).tolist()
    [[0.1, 0.1, 0.4, 0.4]]
    """
    pt = np.asarray(p_tox, float).reshape(-1)
    pe = np.asarray(p_eff, float).reshape(-1)
    rho = float(association)
    both = np.empty_like(pt)
    for i, (a, b) in enumerate(zip(pt, pe)):
        if a in (0.0, 1.0) or b in (0.0, 1.0) or rho == 0.0:
            both[i] = a * b  # exact: a degenerate margin is independent of everything
        elif rho >= 1.0:
            both[i] = min(a, b)
        elif rho <= -1.0:
            both[i] = max(0.0, a + b - 1.0)
        else:
            both[i] = _bvn_lower(float(special.ndtri(a)), float(special.ndtri(b)), rho)
    both = np.clip(both, np.maximum(0.0, pt + pe - 1.0), np.minimum(pt, pe))
    tox_only = pt - both
    eff_only = pe - both
    neither = 1.0 - pt - pe + both
    cells = np.stack([both, tox_only, eff_only, neither], axis=1)
    return np.clip(cells, 0.0, 1.0)


@functools.cache
def cohort_outcomes(c: int, efficacy: bool) -> tuple[IntArray, FloatArray]:
    """Every outcome of a cohort of ``c`` patients and its combinatorial coefficient.

    Returns ``(cells, coef)``: ``cells[k] = (b, t, e, m)`` counts of the four cells
    (with ``efficacy=False`` only ``b = e = 0`` rows, i.e. ``t`` DLTs and ``m = c - t``
    without), and ``coef[k]`` the multinomial (binomial) coefficient. Order: by DLT
    count, then responses (deterministic; used by the paths tree).
    """
    if c < 1:
        raise ValueError(f"cohort size must be >= 1; got {c}")
    rows: list[tuple[int, int, int, int]] = []
    if efficacy:
        for tox in range(c + 1):
            for b in range(tox, -1, -1):
                t = tox - b
                for e in range(c - tox + 1):
                    rows.append((b, t, e, c - tox - e))
        # order: DLTs ascending, then responders ascending, then "both" ascending
        rows.sort(key=lambda r: (r[0] + r[1], r[0] + r[2], r[0]))
    else:
        rows = [(0, t, 0, c - t) for t in range(c + 1)]
    cells = np.asarray(rows, np.int64)
    fact = [math.factorial(i) for i in range(c + 1)]
    coef = np.asarray([fact[c] // (fact[b] * fact[t] * fact[e] * fact[m]) for b, t, e, m in rows], float)
    return cells, coef


def outcome_probabilities(c: int, efficacy: bool, p_tox: FloatArray, cells_p: FloatArray) -> FloatArray:
    """``(D, K)`` probability of each outcome of :func:`cohort_outcomes` at each dose.

    Toxicity-only: :math:`\\binom{c}{y} p_T^y (1-p_T)^{c-y}`; with efficacy the
    multinomial :math:`\\frac{c!}{b!\\,t!\\,e!\\,m!}\\pi_B^b \\pi_T^t \\pi_E^e \\pi_N^m`.
    (``0**0 = 1``, so degenerate probabilities are handled exactly.)
    """
    cells, coef = cohort_outcomes(int(c), bool(efficacy))
    if efficacy:
        pw = cells_p[:, None, :] ** cells[None, :, :]
    else:
        two = np.stack([p_tox, 1.0 - p_tox], axis=1)                       # (D, 2): DLT, none
        pw = two[:, None, :] ** cells[None, :, [1, 3]]
    return coef[None, :] * np.prod(pw, axis=2)


# --------------------------------------------------------------------------- helpers


def decide_in_chunks(design: Design, states: States, chunk: int = DECIDE_CHUNK) -> Decisions:
    """``design.decide`` over a large batch in chunks of ``chunk`` states, checked.

    Raises
    ------
    RuntimeError
        If the design returns a continuing decision with a dose outside
        ``0..n_doses-1`` or a cohort size below 1 (a bug in the design).
    """
    s = states.n_states
    if s <= chunk:
        dec = design.decide(states)
    else:
        parts = [design.decide(states.take(slice(i, i + chunk))) for i in range(0, s, chunk)]
        dec = Decisions(
            np.concatenate([p.dose for p in parts]), np.concatenate([p.stop for p in parts]),
            np.concatenate([p.reason for p in parts]), np.concatenate([p.cohort_size for p in parts]),
        )
    dose = np.asarray(dec.dose, np.int64)
    stop = np.asarray(dec.stop, bool)
    size = np.asarray(dec.cohort_size, np.int64)
    if dose.shape != (s,) or stop.shape != (s,):
        raise RuntimeError(f"design '{design.kind}'.decide returned {dose.shape[0]} decisions for {s} states")
    go = ~stop
    bad = go & ((dose < 0) | (dose >= states.n_doses) | (size < 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise RuntimeError(f"design '{design.kind}'.decide continued with dose {dose[i]} and cohort size "
                           f"{size[i]} (allowed: dose 0..{states.n_doses - 1}, size >= 1)")
    return Decisions(dose, stop, np.asarray(dec.reason, np.int8), size)


def _select_in_chunks(design: Design, states: States, chunk: int = DECIDE_CHUNK) -> IntArray:
    s = states.n_states
    parts = [np.asarray(design.select(states.take(slice(i, i + chunk))), np.int64) for i in range(0, s, chunk)]
    sel = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return np.where((sel >= 0) & (sel < states.n_doses), sel, NO_DOSE)


def _storage_dtype(max_n: int, n_doses: int) -> np.dtype:
    """Smallest signed integer type holding every stored field (counts <= max_n, doses, reasons, -1)."""
    top = max(int(max_n) + 1, int(n_doses), max(int(r) for r in StopReason))
    return np.dtype(np.int8 if top <= 127 else np.int16 if top <= 32767 else np.int64)


def _bytes_per_state(m: IntArray) -> int:
    """Peak bytes per distinct live state of :func:`exact_outcomes`, for the limit's message.

    Measured with ``tracemalloc`` (bench/bench_exact.py prints it): a state's
    row (``m.itemsize`` bytes a field) and probability (8 bytes) are held
    about four times at the peak (the parents, the children being expanded,
    the merge's sorted keys and its index arrays of 8 bytes each), plus the
    terminal states kept so far.
    """
    return int(_PEAK_FACTOR * (m.shape[1] * m.itemsize + 8) + _PEAK_EXTRA)


def _decide_rows(design: Design, m: IntArray, nd: int, chunk: int = DECIDE_CHUNK) -> Decisions:
    """:func:`decide_in_chunks` on compact rows, building int64 States one chunk at a time."""
    if m.shape[0] <= chunk:
        return decide_in_chunks(design, States.from_matrix(m, nd), chunk)
    parts = [decide_in_chunks(design, States.from_matrix(m[i:i + chunk], nd), chunk)
             for i in range(0, m.shape[0], chunk)]
    return Decisions(np.concatenate([p.dose for p in parts]), np.concatenate([p.stop for p in parts]),
                     np.concatenate([p.reason for p in parts]), np.concatenate([p.cohort_size for p in parts]))


def _select_rows(design: Design, m: IntArray, nd: int, chunk: int = _SELECT_CHUNK) -> IntArray:
    """:func:`_select_in_chunks` on compact rows, one chunk of int64 States at a time.

    Smaller chunks than ``decide``'s: a final selection may hold far more per
    state (BOIN's isotonic regression: about 1.5 kB per state).
    """
    parts = [_select_in_chunks(design, States.from_matrix(m[i:i + chunk], nd), chunk)
             for i in range(0, m.shape[0], chunk)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _row_keys(m: IntArray) -> np.ndarray:
    """One opaque, exactly comparable key per row (bytes of a compact copy)."""
    hi = int(m.max(initial=0))
    lo = int(m.min(initial=0))
    dt = np.int8 if -128 <= lo and hi < 128 else np.int16 if -32768 <= lo and hi < 32768 else np.int64
    c = np.ascontiguousarray(m, dtype=dt)
    return c.view(np.dtype((np.void, c.dtype.itemsize * c.shape[1]))).reshape(-1)


def _merge(m: IntArray, p: FloatArray, key_cols: IntArray) -> tuple[IntArray, FloatArray]:
    """Distinct rows of ``m`` (compared on ``key_cols``) with their probabilities summed."""
    if m.shape[0] == 0:
        return m, p
    keys = _row_keys(m[:, key_cols])
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return m[first], np.bincount(inverse.reshape(-1), weights=p, minlength=first.shape[0])


def _expand(
    m: IntArray, prob: FloatArray, dose: IntArray, c: IntArray, n_doses: int, efficacy: bool,
    table: dict[int, FloatArray], p_tox: FloatArray, cells_p: FloatArray, *, keep_zero: bool = False,
) -> tuple[IntArray, FloatArray, IntArray, IntArray]:
    """Children of every parent row: one per cohort outcome.

    Returns ``(children, child_prob, parent_index, outcome_index)``; the
    outcome index refers to :func:`cohort_outcomes` of the parent's ``c``.
    Outcomes of probability exactly 0 are dropped unless ``keep_zero``.
    """
    d = n_doses
    kids, probs, parents, outs = [], [], [], []
    for cv in np.unique(c):
        cv = int(cv)
        sel = np.nonzero(c == cv)[0]
        cells, _ = cohort_outcomes(cv, efficacy)
        if cv not in table:
            table[cv] = outcome_probabilities(cv, efficacy, p_tox, cells_p)
        tab = table[cv]                                      # (D, K)
        k = cells.shape[0]
        pk = prob[sel, None] * tab[dose[sel]]                # (P, K)
        par = np.repeat(sel, k)
        out = np.tile(np.arange(k), sel.shape[0])
        pk = pk.reshape(-1)
        if not keep_zero:
            nz = pk > 0.0
            par, out, pk = par[nz], out[nz], pk[nz]
        child = m[par]  # fancy indexing copies
        dd = dose[par]
        rows = np.arange(par.shape[0])
        b, t, e = cells[out, 0], cells[out, 1], cells[out, 2]
        child[rows, dd] += cv
        child[rows, d + dd] += b + t
        child[rows, 2 * d + dd] += b + e
        child[rows, 3 * d + dd] += b
        child[:, 4 * d] = dd
        child[:, 4 * d + 1] = cv
        child[:, 4 * d + 2] = b + t
        kids.append(child)
        probs.append(pk)
        parents.append(par)
        outs.append(out)
    return np.concatenate(kids), np.concatenate(probs), np.concatenate(parents), np.concatenate(outs)


# --------------------------------------------------------------------------- the recursion


def exact_outcomes(
    design: Design,
    p_tox: object,
    p_eff: object | None = None,
    association: float = 0.0,
    *,
    max_states: int = DEFAULT_MAX_STATES,
    recommendation: Literal["select", "next_dose"] = "select",
    efficacy: Literal["auto", "enumerate", "expected"] = "auto",
) -> ExactOutcomes:
    """Exact distribution of the trial's terminal states under a true dose-outcome curve.

    Parameters
    ----------
    design
        Any design with ``enumerable = True``.
    p_tox, p_eff
        True probability of DLT and of response per dose (``p_eff`` defaults to 0).
    association
        Gaussian-copula correlation between DLT and response (as the simulator).
    max_states
        Limit on the distinct live states at one depth; beyond it
        :class:`ExactLimitError` is raised (callers fall back to simulation).
    recommendation
        ``"select"``: ``design.select`` on the final state (the engine's selected
        dose). ``"next_dose"``: the dose ``decide`` advocates after the last
        cohort, NO_DOSE where the design stopped (the R package escalation's
        ``prob_recommend`` for a selector without a final-selection rule).
    efficacy
        ``"auto"`` enumerates responses only when ``design.uses_efficacy``;
        ``"enumerate"`` always does (integer ``eff``/``both``); ``"expected"``
        never does (a toxicity-only design only: responses as exact conditional
        expectations, see the module docstring).

    Returns
    -------
    ExactOutcomes
        One row per distinct terminal state (per depth); ``weight`` = its probability.

    Raises
    ------
    ConfigError
        Bad true curves or options.
    ExactLimitError
        More than ``max_states`` distinct live states at some depth.
    EscaladeError
        The design is not Markov in its state.

    Notes
    -----
    A design may declare ``state_fields = "counts"`` when neither ``decide`` nor
    ``select`` reads the last cohort (``last_n``, ``last_tox``); states that
    differ only there are then merged (as :meth:`States.unique` with
    ``fields="counts"``), which can halve the states. The default, ``"all"``,
    is always exact.
    """
    if not design.enumerable:
        raise EscaladeError(f"design '{design.kind}' is not enumerable (not Markov in its per-dose counts); exact "
                            f"enumeration needs decisions that depend on the counts only: simulate instead")
    if recommendation not in ("select", "next_dose"):
        raise ConfigError("recommendation", recommendation, "must be one of {'select', 'next_dose'}")
    if efficacy not in ("auto", "enumerate", "expected"):
        raise ConfigError("efficacy", efficacy, "must be one of {'auto', 'enumerate', 'expected'}")
    uses_eff = bool(getattr(design, "uses_efficacy", False))
    if efficacy == "expected" and uses_eff:
        raise ConfigError("efficacy", efficacy, f"design '{design.kind}' decides on responses, so they must be "
                                                f"enumerated: use 'auto' or 'enumerate'")
    enum_eff = uses_eff or efficacy == "enumerate"
    if int(max_states) < 1:
        raise ConfigError("max_states", max_states, "must be a whole number >= 1")
    nd = int(design.n_doses)
    max_n = int(design.max_n)
    pt, pe, rho = check_truth(p_tox, p_eff, association, nd)
    cells_p = cell_probabilities(pt, pe, rho)

    width = 4 * nd + 3
    # merge on every field except the (all-zero) response columns when they are not enumerated, and
    # except the last cohort where the design declares that it never looks at it
    fields = getattr(design, "state_fields", "all")
    if fields not in ("all", "counts"):
        raise ConfigError("state_fields", fields, f"design '{design.kind}' must declare 'all' or 'counts'")
    count_cols = np.arange(4 * nd) if enum_eff else np.arange(2 * nd)
    path_cols = np.arange(4 * nd, width) if fields == "all" else np.asarray([4 * nd])
    key_cols = np.r_[count_cols, path_cols]

    # compact storage (issue 18): every stored value is a count <= max_n, a dose index or a stop reason,
    # so one or two bytes a field; decide/select see int64 States built one chunk at a time
    dt = _storage_dtype(max_n, nd)
    d0, size0 = design.start()
    m = np.zeros((1, width), dt)
    m[0, 4 * nd] = d0
    prob = np.ones(1)
    dose = np.asarray([d0], dt)
    size = np.asarray([size0], dt)
    table: dict[int, FloatArray] = {}

    term_m: list[IntArray] = []
    term_p: list[FloatArray] = []
    term_r: list[np.ndarray] = []
    term_depth: list[IntArray] = []
    peak = 1
    n_decided = 0
    depth = 0
    while m.shape[0]:
        depth += 1
        if depth > max_n + 1:  # pragma: no cover - each cohort enrols >= 1 patient
            raise RuntimeError("exact enumeration did not terminate")
        c = np.minimum(size, max_n - m[:, :nd].sum(axis=1))
        if np.any(c < 1):
            raise RuntimeError(f"design '{design.kind}' asked for a cohort of size < 1")
        # expand in chunks of parents, merging each chunk, then merge the chunks
        per_parent = int(cohort_outcomes(int(c.max()), enum_eff)[0].shape[0])
        step = max(1, _EXPAND_CHUNK // per_parent)
        mm, pp = [], []
        for i in range(0, m.shape[0], step):
            sl = slice(i, i + step)
            kids, kp, _, _ = _expand(m[sl], prob[sl], dose[sl], c[sl], nd, enum_eff, table, pt, cells_p)
            kids, kp = _merge(kids, kp, key_cols)
            mm.append(kids)
            pp.append(kp)
        m, prob = _merge(np.concatenate(mm), np.concatenate(pp), key_cols) if len(mm) > 1 else (mm[0], pp[0])
        peak = max(peak, m.shape[0])
        if m.shape[0] > max_states:
            raise ExactLimitError(m.shape[0], max_states, depth, design.kind, _bytes_per_state(m))

        full = m[:, :nd].sum(axis=1) >= max_n
        if full.any():
            term_m.append(m[full])
            term_p.append(prob[full])
            term_r.append(np.full(int(full.sum()), StopReason.MAX_SAMPLE_SIZE, np.int8))
            term_depth.append(np.full(int(full.sum()), depth, dt))
        m, prob = m[~full], prob[~full]
        if m.shape[0] == 0:
            break
        dec = _decide_rows(design, m, nd)
        n_decided += m.shape[0]
        if dec.stop.any():
            s = dec.stop
            term_m.append(m[s])
            term_p.append(prob[s])
            term_r.append(dec.reason[s])
            term_depth.append(np.full(int(s.sum()), depth, dt))
        go = ~dec.stop
        m, prob, dose, size = m[go], prob[go], dec.dose[go].astype(dt), dec.cohort_size[go].astype(dt)
        log.debug("exact %s: cohort %d, %d live states, %d terminal so far",
                  design.kind, depth, m.shape[0], sum(len(x) for x in term_p))

    tm = np.concatenate(term_m)
    weight = np.concatenate(term_p)
    reason = np.concatenate(term_r).astype(np.int8)
    cohorts = np.concatenate(term_depth)
    del term_m, term_p, term_r, term_depth
    if recommendation == "select":
        selected = _select_rows(design, tm, nd)
    else:
        selected = np.full(tm.shape[0], NO_DOSE, np.int64)
        ended = np.flatnonzero(reason == StopReason.MAX_SAMPLE_SIZE)
        if ended.size:
            dec = _decide_rows(design, tm[ended], nd)
            selected[ended] = np.where(dec.stop, NO_DOSE, dec.dose)

    # terminal states that differ only in path state (current dose, last cohort) that the
    # outcomes do not record are merged into one row (the same keys as int64 rows: _row_keys
    # compacts by value)
    rows = np.concatenate([selected[:, None].astype(dt), reason[:, None].astype(dt), cohorts[:, None],
                           tm[:, :4 * nd if enum_eff else 2 * nd]], axis=1)
    keys = _row_keys(rows)
    del rows
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    del keys
    weight = np.bincount(inverse.reshape(-1), weights=weight, minlength=first.shape[0])
    selected, reason, cohorts = selected[first], reason[first], cohorts[first].astype(np.int64)
    final = States.from_matrix(tm[first], nd)
    if enum_eff:
        eff, both = final.eff, final.both
    else:
        eff, both = _expected_responses(final.n, final.tox, pt, cells_p)
    total = float(weight.sum())
    if abs(total - 1.0) > 1e-9:  # pragma: no cover - would mean a bug in the recursion
        raise RuntimeError(f"exact terminal probabilities sum to {total!r}, not 1")
    log.info("exact %s: %d terminal states, peak %d live states, %d decided", design.kind,
             weight.shape[0], peak, n_decided)
    return ExactOutcomes(
        selected.astype(np.int64), reason, final.n, final.tox, eff, both, cohorts, weight,
        exact=True, trial=np.arange(weight.shape[0]), efficacy_enumerated=enum_eff,
        recommendation=recommendation, peak_states=int(peak), n_decided=int(n_decided),
    )


def _expected_responses(n: IntArray, tox: IntArray, p_tox: FloatArray, cells_p: FloatArray
                        ) -> tuple[FloatArray, FloatArray]:
    """:math:`E[\\text{eff}_d \\mid s]` and :math:`E[\\text{both}_d \\mid s]` given the DLT counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        q_tox = np.where(p_tox > 0, cells_p[:, 0] / p_tox, 0.0)           # P(response | DLT)
        q_none = np.where(p_tox < 1, cells_p[:, 2] / (1.0 - p_tox), 0.0)  # P(response | no DLT)
    both = tox * q_tox[None, :]
    eff = both + (n - tox) * q_none[None, :]
    return eff.astype(float), both.astype(float)
