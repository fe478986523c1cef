"""The CAR-T patient model of a scenario: adverse events by type and grade, response depth, survival.

Optional sections of a study file (schema in ``scenarios/README.md``):

* ``dlt_rule`` (top level, the protocol's DLT definition): a grade threshold
  per adverse-event type, ``other`` for types not named and ``any`` for every
  type, e.g. ``{crs: 3, icans: 3, any: 5, other: 4}``: a patient has a DLT
  when some type reaches its threshold. Grade 5 is death.
* per scenario ``adverse_events`` (per-dose probabilities of grades 0-5 per
  type, onset within the DLT window, correlations), ``response`` (ordinal
  categories best first at each assessment), ``survival`` (EFS and OS per
  response category), ``expansion`` (log-normal peak and AUC0-28) and
  ``manufacturing`` (infused dose below the assigned dose).

One latent Gaussian vector per patient (one normal per AE type and one for
response, correlated by one matrix :math:`R`) drives every graded outcome:
the grade of type :math:`k` at dose :math:`d` is

.. math::

    G_k(d) = \\sum_{g=1}^{5} \\mathbf 1\\{\\Phi(-z_k) < \\Pr(G_k(d) \\ge g)\\},

a monotone function of :math:`z_k`, so the grades have exactly the stated
probabilities and common random numbers hold across doses and designs. The
true P(DLT) is therefore

.. math::

    p_T(d) = 1 - \\Phi_K\\big(\\Phi^{-1}(1 - s_1(d)), \\dots, \\Phi^{-1}(1 - s_K(d)); R_{AE}\\big),
    \\qquad s_k(d) = \\Pr(G_k(d) \\ge t_k),

with :math:`t_k` the rule's threshold for type :math:`k` (:func:`derived_p_dlt`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

import numpy as np
from scipy import integrate, special, stats

from escalade.scenarios.errors import StudyError

__all__ = ["AdverseEventType", "DltRule", "ResponseModel", "SurvivalCurve", "SurvivalModel", "Expansion",
           "Manufacturing", "CartModel", "parse_dlt_rule", "parse_cart_scenario", "derived_p_dlt",
           "normal_orthant", "CART_SCENARIO_KEYS", "GRADES", "P_DLT_TOLERANCE", "ONSET_SHAPES"]

#: Grades 0-5 (ASTCT consensus grading, Lee et al. 2019, Biol Blood Marrow Transplant 25:625-638; 5 = death).
GRADES: Final[int] = 6
#: Largest allowed difference between a given ``p_dlt`` and the one derived from the AE model
#: (probabilities written to two decimals differ from the exact value by at most 0.005).
P_DLT_TOLERANCE: Final[float] = 0.005
#: Onset distributions within the DLT window (fractions of the window, as ``timing.dlt_onset``).
ONSET_SHAPES: Final[tuple[str, ...]] = ("uniform", "early", "late")
#: Scenario keys this module parses.
CART_SCENARIO_KEYS: Final[tuple[str, ...]] = ("adverse_events", "response", "survival", "expansion",
                                              "manufacturing")
_DEFAULT_ORR: Final[tuple[str, ...]] = ("mrd_neg_cr", "cr", "crh")
_TOL_SUM: Final[float] = 1e-6
_MISSING: Any = StudyError.MISSING  # type: ignore[attr-defined]


class _ValueEq:
    """Equality by value for the frozen model classes below, whose fields hold numpy arrays (the dataclass
    ``__eq__`` would compare arrays element-wise): two models are equal when every field is, arrays by shape,
    dtype and contents. A study read twice from the same text has equal scenarios."""

    __slots__ = ()

    def _key(self) -> tuple:
        return tuple(_canonical(getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())


def _canonical(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("array", v.shape, v.dtype.str, v.tobytes())
    if isinstance(v, _ValueEq):
        return v._key()
    if isinstance(v, Mapping):
        return tuple(sorted((k, _canonical(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_canonical(x) for x in v)
    return v


@dataclass(frozen=True, slots=True, eq=False)
class AdverseEventType(_ValueEq):
    """One AE type: ``probs[d, g]`` = P(grade g at dose d), and the onset distribution."""

    name: str
    probs: np.ndarray
    onset: str = "uniform"

    def at_least(self) -> np.ndarray:
        """``(D, 6)``: P(grade >= g) per dose (column 0 is 1)."""
        return np.clip(self.probs[:, ::-1].cumsum(axis=1)[:, ::-1], 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class DltRule:
    """The protocol's DLT definition: grade thresholds per type, ``other`` and ``any``."""

    thresholds: tuple[tuple[str, int], ...] = ()
    other: int | None = None
    any: int | None = None

    def threshold(self, name: str) -> int | None:
        """Lowest grade of type ``name`` that is a DLT (``None``: never)."""
        own = dict(self.thresholds).get(name, self.other)
        cands = [t for t in (own, self.any) if t is not None]
        return min(cands) if cands else None

    def describe(self) -> str:
        parts = [f"{k} grade >= {t}" for k, t in self.thresholds]
        if self.other is not None:
            parts.append(f"any other type grade >= {self.other}")
        if self.any is not None:
            parts.append(f"any type grade >= {self.any}")
        return "DLT: " + ", ".join(parts) if parts else "no DLT rule"


@dataclass(frozen=True, slots=True, eq=False)
class ResponseModel(_ValueEq):
    """Ordinal response categories (best first) at each assessment.

    ``probs[a]`` is ``(D, M)``: P(category m at assessment a, dose d).
    """

    categories: tuple[str, ...]
    orr: tuple[str, ...]
    assessments: tuple[str, ...]
    days: tuple[float, ...]
    probs: tuple[np.ndarray, ...]
    primary: int
    mrd: str | None = None

    @property
    def orr_index(self) -> np.ndarray:
        return np.array([c in self.orr for c in self.categories])

    def p_orr(self, assessment: int | None = None) -> np.ndarray:
        a = self.primary if assessment is None else assessment
        return self.probs[a][:, self.orr_index].sum(axis=1)

    def cumulative(self, assessment: int) -> np.ndarray:
        """``(D, M)``: P(category <= m) (best first), last column forced to 1."""
        c = np.cumsum(self.probs[assessment], axis=1)
        c[:, -1] = 1.0
        return c


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    """:math:`S(t) = \\pi + (1-\\pi) S_0(t)` (months), :math:`S_0` Weibull or piecewise exponential.

    Weibull: :math:`S_0(t) = \\exp(-(t/\\lambda)^k)`; piecewise exponential:
    hazards ``hazards[i]`` per month on ``[breaks[i-1], breaks[i])``.
    """

    cure: float = 0.0
    shape: float | None = None
    scale: float | None = None
    hazards: tuple[float, ...] = ()
    breaks: tuple[float, ...] = ()

    def _cumhaz(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, float)
        if self.shape is not None:
            return (np.maximum(t, 0.0) / self.scale) ** self.shape
        edges = np.array((0.0, *self.breaks, np.inf))
        h = np.array(self.hazards)
        width = np.clip(t[..., None] - edges[:-1], 0.0, np.diff(edges))
        return (width * h).sum(axis=-1)

    def survival(self, t: Any) -> np.ndarray:
        """S(t) at months ``t``."""
        return self.cure + (1.0 - self.cure) * np.exp(-self._cumhaz(np.asarray(t, float)))

    def quantile_time(self, u: np.ndarray) -> np.ndarray:
        """Months ``T`` with ``S(T) = u`` (``inf`` for the cured, ``u <= cure``)."""
        u = np.asarray(u, float)
        s0 = np.clip((u - self.cure) / max(1.0 - self.cure, 1e-300), 1e-300, 1.0)
        hz = -np.log(s0)
        if self.shape is not None:
            t = self.scale * hz ** (1.0 / self.shape)
        else:
            edges = np.array((0.0, *self.breaks))
            h = np.array(self.hazards)
            cum = np.concatenate([[0.0], np.cumsum(h[:-1] * np.diff(edges))]) if edges.size > 1 else np.zeros(1)
            i = np.searchsorted(cum, hz, side="right") - 1
            t = edges[i] + (hz - cum[i]) / h[i]
        return np.where(u <= self.cure, np.inf, t)


@dataclass(frozen=True, slots=True)
class SurvivalModel:
    """EFS and OS curves per response category (at the primary assessment)."""

    efs: tuple[SurvivalCurve, ...]
    os: tuple[SurvivalCurve, ...] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Expansion(_ValueEq):
    """Log-normal CAR-T expansion: per-dose medians and geometric SDs of peak and AUC0-28."""

    peak_median: np.ndarray
    peak_gsd: float
    auc_median: np.ndarray
    auc_gsd: float
    correlation: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class Manufacturing(_ValueEq):
    """Infused dose below the assigned dose (Devlin, Iasonos & O'Quigley 2021, J R Stat Soc C 70:815-834).

    ``p_short[d]``: P(the product for dose d falls short); ``lands[i]``: P(it
    lands ``i + 1`` levels below), clipped at the lowest level.
    """

    p_short: np.ndarray
    lands: np.ndarray
    decide_on: str = "assigned"

    def infused_probs(self) -> np.ndarray:
        """``(D, D)``: P(infused dose j | assigned dose d)."""
        nd = self.p_short.size
        m = np.zeros((nd, nd))
        for d in range(nd):
            m[d, d] += 1.0 - self.p_short[d]
            for i, p in enumerate(self.lands):
                m[d, max(d - i - 1, 0)] += self.p_short[d] * p
        return m


@dataclass(frozen=True, slots=True, eq=False)
class CartModel(_ValueEq):
    """Everything a scenario says about the CAR-T patient (any part may be absent)."""

    rule: DltRule
    ae_types: tuple[AdverseEventType, ...] = ()
    correlation: np.ndarray | None = None
    response: ResponseModel | None = None
    survival: SurvivalModel | None = None
    expansion: Expansion | None = None
    manufacturing: Manufacturing | None = None
    p_dlt: tuple[float, ...] = ()
    p_response: tuple[float, ...] = ()
    _cache: dict = field(default_factory=dict)  # truth() and the engine's per-dose tables, computed once

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.ae_types)

    @property
    def graded(self) -> bool:
        """True when adverse events are graded (a graded design can score them)."""
        return bool(self.ae_types)

    @property
    def n_latent(self) -> int:
        """Copula dimension: one per AE type, plus one for response."""
        return len(self.ae_types) + 1

    def truth(self) -> dict[str, np.ndarray]:
        """True per-dose characteristics (``(D,)`` arrays) at the product dose.

        Keys: ``{type}_g3plus`` (P(grade >= 3)), ``death`` (P(any grade 5)),
        ``orr``, ``mrd_neg_cr_{assessment}``, ``efs12``, ``os12``,
        ``median_efs`` (months, ``inf`` when EFS never falls to 50%),
        ``expansion_peak_median``, ``expansion_auc_median``.
        """
        if "truth" in self._cache:
            return self._cache["truth"]
        out: dict[str, np.ndarray] = {}
        for t in self.ae_types:
            out[f"{t.name}_g3plus"] = t.at_least()[:, 3]
        if self.ae_types:
            out["death"] = derived_p_dlt(self.ae_types, self.correlation, DltRule(any=5))
        r = self.response
        if r is not None:
            out["orr"] = r.p_orr()
            if r.mrd is not None:
                m = r.categories.index(r.mrd)
                for a, name in enumerate(r.assessments):
                    out[f"mrd_neg_cr_{name}"] = r.probs[a][:, m]
            if self.survival is not None:
                w = r.probs[r.primary]
                out["efs12"] = w @ np.array([c.survival(12.0) for c in self.survival.efs])
                out["median_efs"] = np.array([_mixture_median(self.survival.efs, row) for row in w])
                if self.survival.os is not None:
                    out["os12"] = w @ np.array([c.survival(12.0) for c in self.survival.os])
        if self.expansion is not None:
            out["expansion_peak_median"] = self.expansion.peak_median
            out["expansion_auc_median"] = self.expansion.auc_median
        self._cache["truth"] = out
        return out


def _mixture_median(curves: Sequence[SurvivalCurve], w: np.ndarray) -> float:
    """Median of :math:`\\sum_m w_m S_m(t)` in months by bisection (``inf`` when it stays above 1/2)."""
    def s(t: float) -> float:
        return float(sum(wi * float(c.survival(t)) for wi, c in zip(w, curves)))
    hi = 1.0
    while s(hi) > 0.5:
        hi *= 2.0
        if hi > 1e4:
            return math.inf
    lo = 0.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if s(mid) > 0.5 else (lo, mid)
    return 0.5 * (lo + hi)


def derived_p_dlt(types: Sequence[AdverseEventType], correlation: np.ndarray | None, rule: DltRule) -> np.ndarray:
    """True P(DLT) per dose implied by the AE model and the DLT rule (module docstring).

    >>> t = AdverseEventType("crs", np.array([[0.5, 0.3, 0.1, 0.1, 0, 0], [0.2, 0.3, 0.3, 0.15, 0.05, 0]]))
    >>> derived_p_dlt([t], None, DltRule(thresholds=(("crs", 3),))).round(3).tolist()
    [0.1, 0.2]
    """
    if not types:
        raise ValueError("derived_p_dlt needs at least one adverse-event type")
    nd = types[0].probs.shape[0]
    s = np.zeros((len(types), nd))
    for k, t in enumerate(types):
        thr = rule.threshold(t.name)
        s[k] = 0.0 if thr is None else t.at_least()[:, thr]
    corr = None if correlation is None else np.asarray(correlation)[: len(types), : len(types)]
    if corr is None or np.allclose(corr, np.eye(len(types))):
        return 1.0 - np.prod(1.0 - s, axis=0)
    out = np.empty(nd)
    for d in range(nd):
        keep = s[:, d] > 0
        if np.any(s[:, d] >= 1):
            out[d] = 1.0
            continue
        if keep.sum() == 0:
            out[d] = 0.0
            continue
        if keep.sum() == 1:
            out[d] = float(s[keep, d][0])
            continue
        out[d] = 1.0 - normal_orthant(special.ndtri(1.0 - s[keep, d]), corr[np.ix_(keep, keep)])
    return out


def _bvn(h: float, k: float, r: float) -> float:
    """:math:`\\Pr(Z_1 \\le h, Z_2 \\le k)` for standard normals with correlation ``r``, by Owen's T.

    :math:`\\Phi_2(h, k; r) = \\tfrac12\\Phi(h) + \\tfrac12\\Phi(k) - T(h, a_h) - T(k, a_k) - \\beta`,
    :math:`a_h = (k - rh)/(h\\sqrt{1-r^2})`, :math:`\\beta = \\tfrac12` when :math:`hk < 0` or
    (:math:`hk = 0` and :math:`h + k < 0`), else 0 (Owen 1956, Ann. Math. Statist. 27:1075-1090, eq. 3.1);
    ``scipy.special.owens_t`` evaluates :math:`T` to double precision.
    """
    if r == 0.0:
        return float(special.ndtr(h) * special.ndtr(k))
    if h == 0.0 and k == 0.0:  # Sheppard's formula
        return 0.25 + math.asin(r) / (2.0 * math.pi)
    s = math.sqrt((1.0 - r) * (1.0 + r))

    def owen(a: float, b: float) -> float:
        if a == 0.0:  # T(0, +-inf) = +-1/4
            return 0.0 if b == 0.0 else math.copysign(0.25, b)
        return float(special.owens_t(a, (b - r * a) / (a * s)))

    val = 0.5 * float(special.ndtr(h)) + 0.5 * float(special.ndtr(k)) - owen(h, k) - owen(k, h)
    if h * k < 0 or (h * k == 0 and h + k < 0):
        val -= 0.5
    return val


def normal_orthant(upper: np.ndarray, corr: np.ndarray) -> float:
    """:math:`\\Pr(Z_k \\le u_k \\ \\forall k)` for standard normals with correlation matrix ``corr``.

    Deterministic to ~1e-13 for up to three variables: one is :math:`\\Phi`, two are Owen's T
    (:func:`_bvn`), three are one adaptive quadrature over :math:`z_1` of the conditional bivariate
    probability (partial correlation :math:`r_{23\\cdot1}`). Four or more (or a correlation of +-1) use
    Genz's randomised quasi-Monte Carlo with a fixed generator (the same value on every call, ~1e-8).

    >>> round(normal_orthant(np.zeros(3), np.full((3, 3), 0.5) + 0.5 * np.eye(3)), 12)  # 1/4 exactly
    0.25
    """
    u = np.asarray(upper, dtype=float)
    c = np.asarray(corr, dtype=float)
    if u.size == 1:
        return float(special.ndtr(u[0]))
    off = np.abs(c[np.triu_indices(u.size, 1)])
    if u.size <= 3 and np.all(off < 1.0 - 1e-9):
        if u.size == 2:
            return _bvn(float(u[0]), float(u[1]), float(c[0, 1]))
        r12, r13, r23 = float(c[0, 1]), float(c[0, 2]), float(c[1, 2])
        s2, s3 = math.sqrt(1.0 - r12 * r12), math.sqrt(1.0 - r13 * r13)
        r = (r23 - r12 * r13) / (s2 * s3)
        u1, u2, u3 = (float(x) for x in u)

        def f(z: float) -> float:
            return math.exp(-0.5 * z * z) * _bvn((u2 - r12 * z) / s2, (u3 - r13 * z) / s3, r)

        v = integrate.quad(f, -math.inf, u1, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        return min(1.0, max(0.0, v / math.sqrt(2.0 * math.pi)))
    return float(stats.multivariate_normal.cdf(u, mean=np.zeros(u.size), cov=c, abseps=1e-9, releps=1e-9,
                                               rng=np.random.default_rng(0)))


# ---------------------------------------------------------------------------------------------------------------
# Parsing (called by escalade.scenarios.load with its context object; errors name file and field)


def parse_dlt_rule(ctx: Any, raw: Any) -> DltRule | None:
    """The top-level ``dlt_rule`` section (``None`` when absent)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise ctx.err("dlt_rule", raw, "must be a mapping of AE type (or 'any', 'other') to the lowest grade that "
                      "is a DLT, e.g. {crs: 3, icans: 3, any: 5, other: 4}")
    own: list[tuple[str, int]] = []
    other = anyg = None
    for k, v in raw.items():
        if not isinstance(k, str) or not k.strip():
            raise ctx.err("dlt_rule", k, "keys must be AE type names, 'any' or 'other'")
        g = ctx.integer(v, f"dlt_rule.{k}", low=1, high=5, what="a grade from 1 to 5 (grade >= it is a DLT)")
        if k == "other":
            other = g
        elif k == "any":
            anyg = g
        else:
            own.append((k, g))
    return DltRule(tuple(own), other, anyg)


def _grade_table(ctx: Any, raw: Any, path: str, nd: int) -> np.ndarray:
    if not isinstance(raw, list) or len(raw) != nd:
        raise ctx.err(path, raw, f"must list one row of {GRADES} grade probabilities (grades 0-5) per dose "
                      f"({nd} doses)")
    rows = []
    for d, row in enumerate(raw):
        p = f"{path}[{d}]"
        if not isinstance(row, list) or len(row) != GRADES:
            raise ctx.err(p, row, f"must hold {GRADES} probabilities, of grades 0, 1, 2, 3, 4 and 5")
        vals = [ctx.number(x, f"{p}[{g}]", low=0.0, high=1.0, what="a probability in [0, 1]")
                for g, x in enumerate(row)]
        if abs(sum(vals) - 1.0) > _TOL_SUM:
            raise ctx.err(p, row, f"must sum to 1 (sums to {sum(vals):.6g}); grade 0 is 'no event'")
        rows.append(vals)
    return np.array(rows, float)


def _onset(ctx: Any, v: Any, path: str) -> str:
    if v not in ONSET_SHAPES:
        raise ctx.err(path, v, f"must be one of {', '.join(ONSET_SHAPES)} (fraction of the DLT window: uniform, "
                      "Beta(1, 3) early, Beta(3, 1) late)")
    return str(v)


def _correlation(ctx: Any, raw: Any, path: str, names: Sequence[str]) -> np.ndarray | None:
    """Pairs ``a~b: rho`` over AE type names and ``response``, as a positive-definite matrix."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ctx.err(path, raw, "must be a mapping of pairs 'a~b' to correlations, e.g. {crs~icans: 0.5, "
                      "crs~response: 0.2}")
    idx = {n: i for i, n in enumerate(names)}
    r = np.eye(len(names))
    for k, v in raw.items():
        parts = str(k).split("~")
        if len(parts) != 2 or parts[0] not in idx or parts[1] not in idx or parts[0] == parts[1]:
            raise ctx.err(f"{path}.{k}", v, f"must name two different latents as 'a~b', from {', '.join(names)}")
        rho = ctx.number(v, f"{path}.{k}", low=-1, high=1, low_open=True, high_open=True,
                         what="a correlation strictly between -1 and 1")
        i, j = idx[parts[0]], idx[parts[1]]
        r[i, j] = r[j, i] = rho
    try:
        np.linalg.cholesky(r)
    except np.linalg.LinAlgError:
        raise ctx.err(path, raw, "does not give a positive-definite correlation matrix (smallest eigenvalue "
                      f"{np.linalg.eigvalsh(r).min():.3g}); weaken some correlations") from None
    return r


def _adverse_events(ctx: Any, raw: Any, path: str, nd: int) -> tuple[tuple[AdverseEventType, ...], Any]:
    ctx.mapping(raw, path, {"types", "correlation"}, {"types"})
    types_raw = raw["types"]
    if not isinstance(types_raw, dict) or not types_raw:
        raise ctx.err(f"{path}.types", types_raw, "must map each AE type name (e.g. crs, icans) to {grades, onset}")
    types = []
    for name, tr in sorted(types_raw.items(), key=lambda kv: str(kv[0])):  # by name: mapping order is no input
        p = f"{path}.types.{name}"
        if not isinstance(name, str) or not name.isidentifier() or name in ("any", "other", "response"):
            raise ctx.err(p, name, "AE type names must be identifiers other than any, other and response")
        ctx.mapping(tr, p, {"grades", "onset"}, {"grades"})
        types.append(AdverseEventType(name, _grade_table(ctx, tr["grades"], f"{p}.grades", nd),
                                      _onset(ctx, tr.get("onset", "uniform"), f"{p}.onset")))
    return tuple(types), raw.get("correlation")


def _response(ctx: Any, raw: Any, path: str, nd: int, response_days: float) -> ResponseModel:
    ctx.mapping(raw, path, {"categories", "orr", "assessments", "primary", "mrd"}, {"categories", "assessments"})
    cats = raw["categories"]
    if not isinstance(cats, list) or len(cats) < 2 or not all(isinstance(c, str) and c for c in cats) \
            or len(set(cats)) != len(cats):
        raise ctx.err(f"{path}.categories", cats, "must list at least two distinct category names, best first, "
                      "e.g. [mrd_neg_cr, cr, crh, pr, nr]")
    if "orr" in raw:
        orr = raw["orr"]
        if not isinstance(orr, list) or not orr or any(c not in cats for c in orr):
            raise ctx.err(f"{path}.orr", orr, f"must list categories counted as response, from {cats}")
    else:
        orr = [c for c in cats if c in _DEFAULT_ORR]
        if not orr:
            raise ctx.err(f"{path}.orr", _MISSING, f"is required: none of the categories {cats} is one of the "
                          f"default responses {list(_DEFAULT_ORR)}; list the response categories")
    mrd = raw.get("mrd", next((c for c in cats if c.startswith("mrd")), None))
    if mrd is not None and mrd not in cats:
        raise ctx.err(f"{path}.mrd", mrd, f"must be one of the categories {cats}")
    ass = raw["assessments"]
    if not isinstance(ass, dict) or not ass:
        raise ctx.err(f"{path}.assessments", ass, "must map assessment names (day28, month3, ...) to {day, probs}")
    names, days, probs = [], [], []
    for an, ar in ass.items():
        p = f"{path}.assessments.{an}"
        if not isinstance(an, str) or not an.isidentifier():
            raise ctx.err(p, an, "assessment names must be identifiers such as day28 or month3")
        ctx.mapping(ar, p, {"day", "probs"}, {"day", "probs"})
        day = ctx.number(ar["day"], f"{p}.day", low=0, low_open=True, what="a positive number of days")
        tab = ar["probs"]
        if not isinstance(tab, list) or len(tab) != nd:
            raise ctx.err(f"{p}.probs", tab, f"must list one row of {len(cats)} category probabilities per dose "
                          f"({nd} doses)")
        rows = []
        for d, row in enumerate(tab):
            q = f"{p}.probs[{d}]"
            if not isinstance(row, list) or len(row) != len(cats):
                raise ctx.err(q, row, f"must hold {len(cats)} probabilities, one per category {cats}")
            vals = [ctx.number(x, f"{q}[{m}]", low=0.0, high=1.0, what="a probability in [0, 1]")
                    for m, x in enumerate(row)]
            if abs(sum(vals) - 1.0) > _TOL_SUM:
                raise ctx.err(q, row, f"must sum to 1 (sums to {sum(vals):.6g})")
            rows.append(vals)
        names.append(an)
        days.append(day)
        probs.append(np.array(rows, float))
    if len(set(days)) != len(days):
        raise ctx.err(f"{path}.assessments", days, "assessment days must differ")
    order = sorted(range(len(days)), key=days.__getitem__)  # by day, whatever the mapping's order
    names, days, probs = [names[i] for i in order], [days[i] for i in order], [probs[i] for i in order]
    if "primary" in raw:
        if raw["primary"] not in names:
            raise ctx.err(f"{path}.primary", raw["primary"], f"must be one of the assessments {names}")
        primary = names.index(raw["primary"])
    else:
        exact = [i for i, d in enumerate(days) if abs(d - response_days) < 1e-9]
        primary = exact[0] if exact else len(names) - 1
    return ResponseModel(tuple(cats), tuple(orr), tuple(names), tuple(days), tuple(probs), primary, mrd)


def _curve(ctx: Any, raw: Any, path: str) -> SurvivalCurve:
    ctx.mapping(raw, path, {"cure", "shape", "median_months", "hazards_per_month", "breaks_months"}, set())
    cure = ctx.number(raw.get("cure", 0.0), f"{path}.cure", low=0, high=1, high_open=True,
                      what="a cure fraction in [0, 1)")
    if "shape" in raw or "median_months" in raw:
        if "hazards_per_month" in raw or "breaks_months" in raw:
            raise ctx.err(path, raw, "give either a Weibull {shape, median_months} or a piecewise exponential "
                          "{hazards_per_month, breaks_months}, not both")
        shape = ctx.number(raw.get("shape", 1.0), f"{path}.shape", low=0, low_open=True, what="a positive shape")
        if "median_months" not in raw:
            raise ctx.err(f"{path}.median_months", _MISSING, "is required for a Weibull curve (median of the "
                          "uncured, months)")
        med = ctx.number(raw["median_months"], f"{path}.median_months", low=0, low_open=True,
                         what="a positive number of months")
        return SurvivalCurve(cure, shape, med / math.log(2.0) ** (1.0 / shape))
    hz = raw.get("hazards_per_month")
    if not isinstance(hz, list) or not hz:
        raise ctx.err(f"{path}.hazards_per_month", hz if hz is not None else _MISSING,
                      "must list the monthly hazards of a piecewise exponential curve (or give shape and "
                      "median_months for a Weibull)")
    h = tuple(ctx.number(x, f"{path}.hazards_per_month[{i}]", low=0, low_open=True, what="a positive hazard")
              for i, x in enumerate(hz))
    br = raw.get("breaks_months", [])
    if not isinstance(br, list) or len(br) != len(h) - 1:
        raise ctx.err(f"{path}.breaks_months", br, f"must list {len(h) - 1} increasing month(s) where the hazard "
                      "changes (one fewer than the hazards)")
    b = tuple(ctx.number(x, f"{path}.breaks_months[{i}]", low=0, low_open=True) for i, x in enumerate(br))
    if any(y <= x for x, y in zip(b, b[1:])):
        raise ctx.err(f"{path}.breaks_months", list(b), "must increase")
    return SurvivalCurve(cure, hazards=h, breaks=b)


def _survival(ctx: Any, raw: Any, path: str, response: ResponseModel | None) -> SurvivalModel:
    if response is None:
        raise ctx.err(path, _MISSING, "needs the scenario's response section: EFS and OS are given per "
                      "response category")
    ctx.mapping(raw, path, {"efs", "os"}, {"efs"})
    out = {}
    for which in ("efs", "os"):
        if which not in raw:
            continue
        m = raw[which]
        p = f"{path}.{which}"
        ctx.mapping(m, p, set(response.categories), set(response.categories))
        out[which] = tuple(_curve(ctx, m[c], f"{p}.{c}") for c in response.categories)
    return SurvivalModel(out["efs"], out.get("os"))


def _per_dose(ctx: Any, raw: Any, path: str, nd: int, what: str) -> np.ndarray:
    if not isinstance(raw, list) or len(raw) != nd:
        raise ctx.err(path, raw, f"must list {nd} values, one per dose ({what})")
    return np.array([ctx.number(x, f"{path}[{i}]", low=0, low_open=True, what=what) for i, x in enumerate(raw)])


def _expansion(ctx: Any, raw: Any, path: str, nd: int) -> Expansion:
    ctx.mapping(raw, path, {"peak", "auc", "correlation_with_response"}, {"peak", "auc"})
    got = {}
    for k in ("peak", "auc"):
        ctx.mapping(raw[k], f"{path}.{k}", {"median", "gsd"}, {"median", "gsd"})
        got[k] = (_per_dose(ctx, raw[k]["median"], f"{path}.{k}.median", nd, "a positive median"),
                  ctx.number(raw[k]["gsd"], f"{path}.{k}.gsd", low=1, low_open=True,
                             what="a geometric SD > 1"))
    rho = ctx.number(raw.get("correlation_with_response", 0.0), f"{path}.correlation_with_response", low=-1,
                     high=1, low_open=True, high_open=True, what="a correlation strictly between -1 and 1")
    return Expansion(got["peak"][0], got["peak"][1], got["auc"][0], got["auc"][1], rho)


def _manufacturing(ctx: Any, raw: Any, path: str, nd: int) -> Manufacturing:
    ctx.mapping(raw, path, {"p_short", "lands", "decide_on"}, {"p_short"})
    ps = ctx.probs(raw["p_short"], f"{path}.p_short", nd)
    if ps[0] > 0:
        raise ctx.err(f"{path}.p_short[0]", ps[0], "must be 0: the lowest dose has no lower level to land on")
    lands = raw.get("lands", [1.0])
    if not isinstance(lands, list) or not lands:
        raise ctx.err(f"{path}.lands", lands, "must list P(1 level below), P(2 levels below), ... summing to 1")
    lv = [ctx.number(x, f"{path}.lands[{i}]", low=0, high=1, what="a probability") for i, x in enumerate(lands)]
    if abs(sum(lv) - 1) > _TOL_SUM:
        raise ctx.err(f"{path}.lands", lands, f"must sum to 1 (sums to {sum(lv):.6g})")
    decide = raw.get("decide_on", "assigned")
    if decide not in ("assigned", "infused"):
        raise ctx.err(f"{path}.decide_on", decide, "must be 'assigned' or 'infused' (the dose the designs count "
                      "a patient at)")
    return Manufacturing(np.array(ps), np.array(lv), decide)


def parse_cart_scenario(ctx: Any, sr: Mapping[str, Any], path: str, *, n_doses: int, rule: DltRule | None,
                        p_dlt: tuple[float, ...] | None, p_response: tuple[float, ...] | None,
                        response_days: float) -> CartModel | None:
    """The CAR-T sections of scenario ``sr`` (``None`` when it has none).

    ``p_dlt``/``p_response`` are the values the scenario gives (``None`` when
    absent); derived values replace them, and a given value must agree with
    the derived one within :data:`P_DLT_TOLERANCE`.
    """
    if not any(k in sr for k in CART_SCENARIO_KEYS):
        return None
    nd = n_doses
    types: tuple[AdverseEventType, ...] = ()
    corr_raw = None
    if "adverse_events" in sr:
        if rule is None:
            raise ctx.err("dlt_rule", _MISSING, f"is required when a scenario has adverse_events ({path}); e.g. "
                          "dlt_rule: {crs: 3, icans: 3, any: 5, other: 4}")
        types, corr_raw = _adverse_events(ctx, sr["adverse_events"], f"{path}.adverse_events", nd)
    resp = _response(ctx, sr["response"], f"{path}.response", nd, response_days) if "response" in sr else None
    corr = _correlation(ctx, corr_raw, f"{path}.adverse_events.correlation",
                        [t.name for t in types] + ["response"])
    if corr is not None and resp is None and np.any(corr[-1, :-1] != 0):
        raise ctx.err(f"{path}.adverse_events.correlation", corr_raw, "correlates with response, but the scenario "
                      "has no response section; add one or drop the ~response pairs")
    surv = _survival(ctx, sr["survival"], f"{path}.survival", resp) if "survival" in sr else None
    expn = _expansion(ctx, sr["expansion"], f"{path}.expansion", nd) if "expansion" in sr else None
    manu = _manufacturing(ctx, sr["manufacturing"], f"{path}.manufacturing", nd) if "manufacturing" in sr else None
    rule_ = rule if rule is not None else DltRule()
    if types:
        der = derived_p_dlt(types, corr, rule_)
        if p_dlt is not None:
            diff = np.abs(der - np.asarray(p_dlt))
            j = int(np.argmax(diff))
            if diff[j] > P_DLT_TOLERANCE:
                raise ctx.err(f"{path}.p_dlt[{j}]", p_dlt[j], f"differs by {diff[j]:.4f} from the P(DLT) "
                              f"{der[j]:.4f} that adverse_events and dlt_rule imply at dose {j + 1} (derived: "
                              f"{[round(float(x), 4) for x in der]}); drop p_dlt or make it agree within "
                              f"{P_DLT_TOLERANCE}")
        p_dlt = tuple(float(x) for x in der)
    elif p_dlt is None:
        raise ctx.err(f"{path}.p_dlt", _MISSING, "is required when the scenario has no adverse_events section")
    if resp is not None:
        por = resp.p_orr()
        if p_response is not None:
            diff = np.abs(por - np.asarray(p_response))
            j = int(np.argmax(diff))
            if diff[j] > P_DLT_TOLERANCE:
                raise ctx.err(f"{path}.p_response[{j}]", p_response[j], f"differs by {diff[j]:.4f} from the ORR "
                              f"{por[j]:.4f} at {resp.assessments[resp.primary]} that response implies at dose "
                              f"{j + 1}; drop p_response or make it agree within {P_DLT_TOLERANCE}")
        p_response = tuple(float(x) for x in por)
    return CartModel(rule_, types, corr, resp, surv, expn, manu, tuple(p_dlt),
                     tuple(p_response) if p_response is not None else (0.0,) * nd)
