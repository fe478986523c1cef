"""The CAR-T virtual patient: graded adverse events, response depth, survival, expansion, infused dose.

Each patient draws, once, a latent Gaussian vector :math:`z` with the
scenario's correlation matrix :math:`R` (one coordinate per AE type, one for
response; a Gaussian copula), plus uniforms for onset times, survival,
expansion and manufacturing. Every outcome at a dose is a monotone function
of these latents (:mod:`escalade.scenarios.cart`), so

* the grades and categories have exactly the scenario's probabilities, and
  the derived binary DLT (the ``dlt_rule`` over grades) and response (a
  category in the ORR set) have exactly the derived ``p_dlt``/``p_response``
  that the scenario's designs, OCs and true MTD use;
* a patient's outcomes at every dose are fixed before any design runs
  (common random numbers across doses and designs).

The latents come from a fifth child of the chunk's seed sequence,
``SeedSequence(seed, spawn_key=(scenario, chunk, 4))``, drawn in the same
blocks of :data:`~escalade.simulations.patients.BLOCK` patients, so the
existing streams ``u_tox``, ``u_eff``, ``u_onset``, ``u_arrival`` are never
changed, and a scenario without the CAR-T sections never draws them.
Sections a scenario leaves out fall back on the plain patient: the DLT is
``u_tox < p_dlt[d]`` without ``adverse_events``, response ``u_eff <
p_response[d]`` without ``response``.

Outcomes are computed on demand (:meth:`GradedPatients.at`) for the patients
a design treats, at their *assigned* dose: with a ``manufacturing`` section a
patient's outcomes at assigned dose ``d`` are those at the infused dose (Devlin, Iasonos &
O'Quigley 2021, J R Stat Soc C 70:815-834). The cohort loop computes and
records a whole cohort in one compiled call
(:func:`~escalade.simulations.graded_kernels.cohort_step`), which gives the
numbers of :meth:`GradedPatients.at` and the loop's general route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

from escalade.scenarios.cart import GRADES, CartModel
from escalade.simulations.graded_kernels import patient_outcomes, tally_add
from escalade.simulations.patients import BLOCK, Patients

__all__ = ["GradedPatients", "Outcomes", "draw_graded", "graded_counts", "tally_dict", "efs_months",
           "GRADED_CHILD", "check_graded_design", "patient_scores"]

#: Index of the graded stream among the children of a chunk's seed sequence (0-3 are taken).
GRADED_CHILD = 4


class Outcomes(NamedTuple):
    """Outcomes of ``n`` patients at given assigned doses (1-D arrays; ``grades`` is ``(K, n)``)."""

    grades: np.ndarray
    category: np.ndarray | None
    dlt: np.ndarray
    resp: np.ndarray
    onset: np.ndarray | None
    infused: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class GradedPatients:
    """The latents of the CAR-T patients of a chunk, ``(T, N)`` each; outcomes on demand.

    Outcomes are computed only for the patients a design treats, at the dose
    they receive (:meth:`at`), from latents drawn once, so they are the same
    whichever design asks and whenever it asks.

    Attributes
    ----------
    model
        The scenario's :class:`~escalade.scenarios.cart.CartModel`.
    z
        ``(K + 1, T * N)`` the copula's correlated normals: one row per AE type, the last for
        response (large = deep response), patients flattened trial by trial.
    u_tox, u_eff
        ``(T, N)`` the plain patient's uniforms, for the sections the model leaves out.
    p_dlt, p_response
        The scenario's true curves (for the plain fallbacks).
    streams
        The seed sequences of the onset, survival, expansion and manufacturing uniforms,
        drawn when first needed (:meth:`stream`), in the same blocks as the others.
    """

    model: CartModel
    z: np.ndarray
    u_tox: np.ndarray
    u_eff: np.ndarray
    p_dlt: np.ndarray
    p_response: np.ndarray
    streams: dict

    def stream(self, name: str) -> np.ndarray:
        """A lazily drawn stream: ``onset`` ``(K, T*N)``, ``survival`` ``(T*N,)``, ``expansion``
        ``(T*N,)`` (the normal, correlated with response), ``manufacturing`` ``(2, T*N)``."""
        got = self.streams.get(name)
        if isinstance(got, np.ndarray):
            return got
        t, n = self.u_tox.shape
        k_ae = len(self.model.ae_types)
        rng = np.random.default_rng(self.streams[f"{name}_ss"])
        if name == "onset":
            out = np.moveaxis(_blocks(rng, (k_ae,), t, n // BLOCK, False), -1, 0).reshape(k_ae, -1)
        elif name == "survival":
            out = _blocks(rng, (), t, n // BLOCK, False).ravel()
        elif name == "expansion":
            out = _blocks(rng, (), t, n // BLOCK, True).ravel()
            if self.model.expansion is not None:
                rho = self.model.expansion.correlation
                out = rho * self.z[-1] + np.sqrt(1.0 - rho * rho) * out
        elif name == "manufacturing":
            out = np.moveaxis(_blocks(rng, (2,), t, n // BLOCK, False), -1, 0).reshape(2, -1)
        else:
            raise KeyError(name)
        self.streams[name] = out
        return out

    @property
    def u_survival(self) -> np.ndarray:
        """``(T, N)`` survival uniform (EFS and OS share it, :func:`efs_months`)."""
        return self.stream("survival").reshape(self.u_tox.shape)

    @property
    def z_expansion(self) -> np.ndarray:
        """``(T, N)`` expansion normal (correlation ``expansion.correlation_with_response`` with response)."""
        return self.stream("expansion").reshape(self.u_tox.shape)

    @property
    def types(self) -> tuple[str, ...]:
        return self.model.type_names

    @property
    def n_doses(self) -> int:
        return int(self.p_dlt.size)

    def infused(self, rows: np.ndarray, cols: np.ndarray, dose: np.ndarray) -> np.ndarray:
        """Infused dose level of patients ``(rows, cols)`` assigned ``dose`` (the assigned one without shortfall)."""
        dose = np.asarray(dose, np.int64)
        m = self.model.manufacturing
        if m is None:
            return dose
        # the shortfall's levels: 1 + np.searchsorted(cumsum(lands)[:-1], u[1], side="right")
        return self.at(rows, cols, dose).infused

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """The arrays the compiled kernels read, in their order (computed once per chunk).

        ``(z, u_tox, u_eff, u_man, ae_lo, ae_hi, threshold, resp_lo, resp_hi, orr, p_short, land_cuts,
        p_dlt, p_response)`` of :func:`~escalade.simulations.graded_kernels.patient_outcomes`, the plain
        uniforms flattened like ``z``'s columns; an absent section is an empty table.
        """
        got = self.streams.get("kernel_args")
        if got is None:
            model, tab, nd = self.model, _tables(self.model), self.n_doses
            empty = np.zeros(0)
            ae = (np.zeros((0, nd, GRADES - 1)), np.zeros((0, nd, GRADES - 1)), np.zeros(0, np.int8))
            if model.ae_types:
                ae = (tab["z_ae_lo"], tab["z_ae_hi"], tab["threshold"])
            resp = (np.zeros((0, 1)), np.zeros((0, 1)), np.zeros(0, np.bool_))
            if model.response is not None:
                resp = (tab["z_resp_lo"], tab["z_resp_hi"], np.asarray(tab["orr"], np.bool_))
            man = (np.zeros((2, 0)), empty, empty)
            if model.manufacturing is not None:
                man = (np.ascontiguousarray(self.stream("manufacturing")), tab["p_short"], tab["land_cuts"])
            got = (self.z, self.u_tox.ravel(), self.u_eff.ravel(), man[0], *ae, *resp, man[1], man[2],
                   self.p_dlt, self.p_response)
            self.streams["kernel_args"] = got
        return got

    def at(self, rows: np.ndarray, cols: np.ndarray, dose: np.ndarray, *, onset: bool = False) -> Outcomes:
        """Outcomes of patients ``(rows, cols)`` (1-D index arrays) assigned ``dose``.

        The grade of type :math:`k` is :math:`\\#\\{g \\ge 1: \\Phi(-z_k) < \\Pr(G_k \\ge g)\\}` at the
        infused dose, the category :math:`\\#\\{m: u_R \\ge \\Pr(C \\le m)\\}`; the DLT is the
        rule over the grades, with its onset (``onset=True``, as a fraction of the DLT window) the
        earliest onset among the types that reach their threshold. One compiled pass
        (:func:`~escalade.simulations.graded_kernels.patient_outcomes`); latents within rounding of a
        cut go through the defining formula.
        """
        model = self.model
        dose = np.asarray(dose, np.int64)
        flat = np.asarray(rows, np.int64) * self.u_tox.shape[1] + np.asarray(cols, np.int64)
        a = self.kernel_args()
        grades, category, dlt, resp, j, odd = patient_outcomes(a[0], a[1], a[2], a[3], flat, dose, *a[4:])
        k_ae = len(model.ae_types)
        if odd:  # a latent within rounding of a cut: the defining formula
            tab = _tables(model)
            if k_ae and (grades < 0).any():
                kk, ii = np.nonzero(grades < 0)
                grades[kk, ii] = _exact_grades(tab, self.z[kk, flat[ii]], kk * self.n_doses + j[ii])
                dlt = (grades >= tab["threshold"][:, None]).any(axis=0)
            if model.response is not None and (category < 0).any():
                bad = category < 0
                category[bad] = _exact_category(tab, self.z[-1, flat[bad]], j[bad])
                resp = tab["orr"][category]
        on = None
        if k_ae and onset:
            from escalade.simulations.timed import onset_fraction

            hit = grades >= _tables(model)["threshold"][:, None]
            u = self.stream("onset")[:, flat]
            frac = np.stack([onset_fraction(u[k], t.onset) for k, t in enumerate(model.ae_types)])
            on = np.where(hit, frac, 1.0).min(axis=0)
        return Outcomes(grades, category if model.response is not None else None, dlt, resp, on, j)

    def table(self) -> Outcomes:
        """Outcomes of every patient at every assigned dose, each ``(T, N, D)`` (``grades`` ``(K, T, N, D)``)."""
        t, n = self.u_tox.shape
        nd = self.n_doses
        rows, cols, dose = (a.ravel() for a in np.meshgrid(np.arange(t), np.arange(n), np.arange(nd), indexing="ij"))
        o = self.at(rows, cols, dose, onset=True)
        shape = (t, n, nd)
        return Outcomes(o.grades.reshape(-1, *shape), None if o.category is None else o.category.reshape(shape),
                        o.dlt.reshape(shape), o.resp.reshape(shape),
                        None if o.onset is None else o.onset.reshape(shape), o.infused.reshape(shape))

    def scores_input(self, out: Outcomes) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[str, ...]]:
        """The contract's inputs: grades per type, the response category (1-D each) and the categories.

        Without a ``response`` section the categories are ``("responder", "non_responder")`` from the
        binary response (``u_eff < p_response``), so a design that scores toxicity only still runs.
        """
        grades = {name: out.grades[k] for k, name in enumerate(self.types)}
        r = self.model.response
        if r is None:
            return grades, np.where(out.resp, 0, 1).astype(np.int8), ("responder", "non_responder")
        return grades, out.category, r.categories


def _tables(model: CartModel) -> dict[str, np.ndarray]:
    """Per-dose tables of a model, computed once (cached on the model)."""
    cache = model._cache.setdefault("tables", {})  # noqa: SLF001 - the model's own cache
    if not cache:
        k_ae = len(model.ae_types)
        at_least = np.stack([t.at_least()[:, 1:] for t in model.ae_types]) if k_ae else np.zeros((0, 1, 5))
        nd = at_least.shape[1]
        offset = 2.0 * np.arange(k_ae * nd).reshape(k_ae, nd, 1)
        cache["ae_keys"] = (offset + (1.0 - at_least)).ravel()  # (K, D, 5) blocks, ascending
        never = GRADES  # no grade reaches it
        cache["threshold"] = np.array([model.rule.threshold(t.name) or never for t in model.ae_types], np.int8)
        r = model.response
        if r is not None:
            cache["cum"] = r.cumulative(r.primary)[:, :-1]
            cache["resp_keys"] = (2.0 * np.arange(cache["cum"].shape[0])[:, None] + cache["cum"]).ravel()
            cache["orr"] = r.orr_index
            nd_r, m1 = cache["cum"].shape
            off_r = np.repeat(2.0 * np.arange(nd_r), m1)
            # response: 2 d + Phi(-z) >= key  <=>  -z >= cut  <=>  z <= -cut
            cut = -_least_passing(off_r, cache["resp_keys"], strict=False).reshape(nd_r, m1)
            band = _band(cut)
            cache["z_resp_lo"], cache["z_resp_hi"] = cut - band, cut + band
        if model.manufacturing is not None:
            cache["p_short"] = np.asarray(model.manufacturing.p_short, np.float64)
            cache["land_cuts"] = np.cumsum(model.manufacturing.lands)[:-1].astype(np.float64)
        if k_ae:
            cut = _least_passing(offset.repeat(at_least.shape[2], axis=2).ravel(), cache["ae_keys"],
                                 strict=True).reshape(at_least.shape)  # (K, D, 5)
            band = _band(cut)
            cache["z_ae_lo"], cache["z_ae_hi"] = cut - band, cut + band
    return cache


#: Bound on the absolute error of ``scipy.special.ndtr`` taken for the bands (generous: it is ~1e-16).
NDTR_ERROR = 1e-14


def _band(cut: np.ndarray) -> np.ndarray:
    """Half-width of the band around each finite cut outside which the test is decided by the cut alone.

    Computed ``ndtr`` is not exactly monotone (ulp-level noise, here bounded by
    :data:`NDTR_ERROR`), so near a cut the defining formula decides: beyond
    ``delta = 4 e / phi(|cut| + 1)`` (``delta <= 1``) the true normal CDF moves
    by more than ``4 e``, which no error of ``2 e`` can undo; an infinite band
    (every latent near that cut done by the formula) otherwise.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.exp(-0.5 * (np.abs(cut) + 1.0) ** 2) / np.sqrt(2.0 * np.pi)
        delta = 4.0 * NDTR_ERROR / phi
    delta = np.where(delta <= 1.0, delta + 8.0 * np.spacing(np.abs(cut)), np.inf)
    return np.where(np.isfinite(cut), delta, 0.0)  # NaN (never passed) and -inf/+inf cuts are exact


def _exact_grades(tab: dict, z: np.ndarray, block: np.ndarray) -> np.ndarray:
    """The defining formula: #{g: 2 b + ndtr(z) > key_g} among block ``b``'s keys (one sorted search)."""
    q = 2.0 * block + special.ndtr(z)
    return (np.searchsorted(tab["ae_keys"], q, side="left") - (GRADES - 1) * block).astype(np.int8)


def _exact_category(tab: dict, z: np.ndarray, dose: np.ndarray) -> np.ndarray:
    """The defining formula: #{m: 2 d + ndtr(-z) >= key_m} among dose ``d``'s keys (one sorted search)."""
    m1 = tab["cum"].shape[1]
    q = 2.0 * dose + special.ndtr(-z)
    return (np.searchsorted(tab["resp_keys"], q, side="right") - m1 * dose).astype(np.int8)


def _ordered(x: np.ndarray) -> np.ndarray:
    """Float64 -> int64 with the same order (-0.0 and 0.0 both map to 0)."""
    i = np.ascontiguousarray(x, np.float64).view(np.int64)
    return np.where(i < 0, -(i & np.int64(0x7FFFFFFFFFFFFFFF)), i)


def _unordered(i: np.ndarray) -> np.ndarray:
    return np.where(i < 0, (-i) | np.int64(-0x8000000000000000), i).view(np.float64)


def _least_passing(offset: np.ndarray, key: np.ndarray, *, strict: bool) -> np.ndarray:
    """Per key, the least float64 ``z`` with ``offset + ndtr(z) > key`` (``>=`` when not ``strict``).

    Both sides as the floating-point expressions the outcomes were defined by:
    ``offset + ndtr(z)`` is non-decreasing in ``z``, so the test passes exactly
    when ``z >= cut``. Found by bisection over the float64 values in order
    (64 steps, all keys at once); ``+inf`` where no finite ``z`` passes.
    """
    def passes(z: np.ndarray) -> np.ndarray:
        q = offset + special.ndtr(z)
        return q > key if strict else q >= key

    lo = np.full(key.shape, _ordered(np.array(-np.inf))[()])  # fails, or the answer when -inf passes
    hi = np.full(key.shape, _ordered(np.array(np.inf))[()])   # passes (treated so; never reached by data)
    lo_passes = passes(np.full(key.shape, -np.inf))
    while np.any(hi > lo + 1):
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # no int64 overflow
        ok = passes(_unordered(mid))
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    never = ~passes(np.full(key.shape, np.inf))
    return np.where(lo_passes, -np.inf, np.where(never, np.nan, _unordered(hi)))


def _blocks(rng: np.random.Generator, shape: tuple[int, ...], n_trials: int, n_blocks: int,
            normal: bool) -> np.ndarray:
    draw = rng.standard_normal if normal else rng.random
    return np.concatenate([draw((n_trials, BLOCK, *shape)) for _ in range(n_blocks)], axis=1)


def draw_graded(model: CartModel, patients: Patients, *, seed: int, scenario: int, chunk: int,
                p_dlt: Sequence[float], p_response: Sequence[float]) -> GradedPatients:
    """The latents of the CAR-T patients of one chunk (see the module docstring).

    Parameters
    ----------
    model
        The scenario's CAR-T model.
    patients
        The chunk's plain patients (:func:`~escalade.simulations.patients.draw_patients`), for
        the sections the model leaves out and for the shape ``(T, N)``.
    seed, scenario, chunk
        As for :func:`~escalade.simulations.patients.draw_patients`.
    p_dlt, p_response
        The scenario's (derived) true curves.
    """
    t_count, cap = patients.u_tox.shape
    ss = np.random.SeedSequence(seed, spawn_key=(scenario, chunk, GRADED_CHILD))
    cop_ss, onset_ss, surv_ss, exp_ss, man_ss = ss.spawn(5)
    k_ae = len(model.ae_types)
    z = _blocks(np.random.default_rng(cop_ss), (k_ae + 1,), t_count, cap // BLOCK, True)
    if model.correlation is not None:
        z = z @ np.linalg.cholesky(model.correlation).T
    z = np.ascontiguousarray(np.moveaxis(z, -1, 0).reshape(k_ae + 1, -1))
    streams = {"onset_ss": onset_ss, "survival_ss": surv_ss, "expansion_ss": exp_ss, "manufacturing_ss": man_ss}
    return GradedPatients(model, z, patients.u_tox, patients.u_eff, np.asarray(p_dlt, float),
                          np.asarray(p_response, float), streams)


def efs_months(g: GradedPatients, category: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               which: str = "efs") -> np.ndarray:
    """Event-free (``which="efs"``) or overall (``"os"``) survival in months of patients ``(rows, cols)``.

    The time solves :math:`S_m(T) = u` for the patient's survival uniform
    :math:`u` and response category :math:`m`; EFS and OS share :math:`u`, so
    :math:`\\mathrm{EFS} \\le \\mathrm{OS}` whenever :math:`S^{EFS}_m \\le S^{OS}_m`.
    """
    surv = g.model.survival
    if surv is None:
        raise ValueError("the scenario has no survival section")
    curves = surv.efs if which == "efs" else surv.os
    if curves is None:
        raise ValueError(f"the scenario's survival section has no {which}")
    u = g.u_survival[rows, cols]
    out = np.empty(u.shape)
    for m, c in enumerate(curves):
        sel = category == m
        out[sel] = c.quantile_time(u[sel])
    return out


def graded_counts(g: GradedPatients, patient_dose: np.ndarray, grades: np.ndarray,
                  infused: np.ndarray) -> dict[str, np.ndarray]:
    """Per-trial tallies of the treated patients.

    ``patient_dose`` ``(T, N)`` is each patient's assigned dose (``-1``
    untreated), ``grades`` ``(K, T, N)`` and ``infused`` ``(T, N)`` their
    grades and infused dose. Returns ``{name: array}``: ``ae.{type}.g{1..5}``
    ``(T, D)`` patients at each assigned dose with that grade, ``death``
    ``(T, D)`` patients with a grade-5 event, ``infused_below`` ``(T,)``
    patients infused below their assigned dose.
    """
    t, nd = patient_dose.shape[0], g.n_doses
    tally = np.zeros((len(g.types), GRADES, t, nd), np.int16)
    death, below = np.zeros((t, nd), np.int16), np.zeros(t, np.int16)
    r, c = np.nonzero(patient_dose >= 0)
    tally_add(r.astype(np.int64), patient_dose[r, c].astype(np.int64),
              np.ascontiguousarray(grades[:, r, c], np.int8), infused[r, c].astype(np.int64), tally, death, below)
    return tally_dict(g, tally, death, below)


def tally_dict(g: GradedPatients, tally: np.ndarray, death: np.ndarray, below: np.ndarray) -> dict[str, np.ndarray]:
    """The named tallies of :func:`graded_counts` (``int16``, C-contiguous) from ``tally`` ``(K, grade, T,
    D)``, ``death`` ``(T, D)`` and ``below`` ``(T,)`` (the cohort loop accumulates these as it goes,
    :func:`~escalade.simulations.graded_kernels.cohort_step`)."""
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(g.types):
        for grade in range(1, GRADES):
            out[f"ae.{name}.g{grade}"] = tally[k, grade].astype(np.int16)
    if g.types:
        out["death"] = death.astype(np.int16)
    if g.model.manufacturing is not None:
        out["infused_below"] = below.astype(np.int16)
    return out


def check_graded_design(design: object, model: CartModel | None, scenario: str) -> None:
    """One clear line when a design that scores graded outcomes meets a scenario without them."""
    if not getattr(design, "graded", False):
        return
    from escalade.scenarios.errors import EscaladeError

    name = getattr(design, "kind", type(design).__name__)
    if model is None or not model.graded:
        raise EscaladeError(f"design '{name}' scores graded toxicity: scenario '{scenario}' needs an "
                            "adverse_events section (with a top-level dlt_rule); see scenarios/README.md")


def patient_scores(design: object, g: GradedPatients, out: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    """The contract's call: ``design.patient_scores(grades, response, categories)`` for these patients."""
    grades, cat, categories = g.scores_input(out)
    tox, eff = design.patient_scores(grades, cat, categories)  # type: ignore[attr-defined]
    return np.asarray(tox, np.float64), np.asarray(eff, np.float64)
