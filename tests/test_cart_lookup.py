"""The CAR-T patient's compiled grade/category lookup equals the defining floating-point formula.

``GradedPatients.at`` no longer evaluates ``ndtr`` per patient: ``_tables`` turns each key into a cut
on the latent scale with a band around it, and latents inside a band go through the formula
(``_exact_grades``, ``_exact_category``). These tests hit the cuts to the last bit (where scipy's
``ndtr`` is not monotone: a cut without its band gets some of these points wrong).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from escalade.scenarios.load import load_study
from escalade.simulations import graded as G
from escalade.simulations.graded_kernels import patient_outcomes
from escalade.simulations.patients import draw_patients

STUDY = Path(__file__).resolve().parents[1] / "scenarios" / "cart_rr_heme.yaml"


@pytest.fixture(scope="module")
def scenario():
    return next(s for s in load_study(STUDY).scenarios if s.cart is not None)


def _probe(tab: dict, rng: np.random.Generator) -> np.ndarray:
    """Random latents (wide tails) and every float within 40 ulps of each cut."""
    mids = np.concatenate([(tab[f"{n}_lo"] + tab[f"{n}_hi"]).ravel() / 2 for n in ("z_ae", "z_resp")])
    mids = mids[np.isfinite(mids)]
    near = [mids + s * np.spacing(np.abs(mids)) for s in range(-40, 41)]
    wide = rng.standard_normal(20_000) * rng.choice([1.0, 3.0, 10.0], 20_000)
    return np.concatenate([wide, *near, mids + 1e-13 * rng.standard_normal(mids.size), [0.0, -0.0, 40.0, -40.0]])


def test_kernel_and_fallback_equal_the_formula_at_every_cut(scenario) -> None:
    tab = G._tables(scenario.cart)
    k_ae, nd = tab["z_ae_lo"].shape[:2]
    z = _probe(tab, np.random.default_rng(3))
    zz = np.tile(z, (k_ae + 1, 1))
    flat = np.arange(z.size)
    none, plain = np.zeros(0), np.zeros(z.size)
    odd_total = 0
    for d in range(nd):
        dose = np.full(z.size, d)
        g, c, dlt, resp, infused, odd = patient_outcomes(
            zz, plain, plain, np.zeros((2, 0)), flat, dose, tab["z_ae_lo"], tab["z_ae_hi"], tab["threshold"],
            tab["z_resp_lo"], tab["z_resp_hi"], tab["orr"], none, none, np.zeros(nd), np.zeros(nd))
        np.testing.assert_array_equal(infused, dose)
        exact = np.stack([G._exact_grades(tab, z, k * nd + dose) for k in range(k_ae)])
        sure = (g >= 0).all(axis=0)
        for k in range(k_ae):
            ok = g[k] >= 0
            odd_total += int((~ok).sum())
            np.testing.assert_array_equal(g[k][ok], exact[k][ok], err_msg=f"type {k}, dose {d}")
        want_dlt = (exact >= tab["threshold"][:, None]).any(axis=0)
        np.testing.assert_array_equal(dlt[sure], want_dlt[sure], err_msg=f"DLT, dose {d}")
        ok = c >= 0
        odd_total += int((~ok).sum())
        exact_c = G._exact_category(tab, z, dose)
        np.testing.assert_array_equal(c[ok], exact_c[ok], err_msg=f"response, dose {d}")
        np.testing.assert_array_equal(resp[ok], tab["orr"][exact_c][ok], err_msg=f"ORR, dose {d}")
        assert odd == int((g < 0).sum() + (~ok).sum())
    assert 0 < odd_total < z.size  # the bands are hit by the probes, and only there


def test_at_equals_the_formula_for_a_chunk(scenario) -> None:
    pts = draw_patients(7, 0, 0, 400, 30, 0.0)
    g = G.draw_graded(scenario.cart, pts, seed=7, scenario=0, chunk=0, p_dlt=scenario.p_dlt,
                      p_response=scenario.p_response)
    tab = G._tables(scenario.cart)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 400, 5000), rng.integers(0, 30, 5000)
    dose = rng.integers(0, g.n_doses, 5000)
    out = g.at(rows, cols, dose)
    j, flat = out.infused, rows * g.u_tox.shape[1] + cols  # capacity: whole blocks of patients
    for k in range(len(g.types)):
        np.testing.assert_array_equal(out.grades[k], G._exact_grades(tab, g.z[k, flat], k * g.n_doses + j))
    np.testing.assert_array_equal(out.category, G._exact_category(tab, g.z[-1, flat], j))


def test_cuts_never_and_always() -> None:
    # key at offset + 1 (P = 0): never passed; response key at the offset (cum = 0): always passed
    cut = G._least_passing(np.array([0.0, 2.0]), np.array([1.0, 3.0]), strict=True)
    assert np.isnan(cut).all()
    assert (G._least_passing(np.array([4.0]), np.array([4.0]), strict=False) == -np.inf).all()
    assert np.isinf(G._band(np.array([9.0]))).all() and G._band(np.array([np.nan, -np.inf])).tolist() == [0.0, 0.0]


def test_infused_equals_the_searchsorted_formula(scenario) -> None:
    m = scenario.cart.manufacturing
    pts = draw_patients(5, 0, 0, 500, 30, 0.0)
    g = G.draw_graded(scenario.cart, pts, seed=5, scenario=0, chunk=0, p_dlt=scenario.p_dlt,
                      p_response=scenario.p_response)
    rng = np.random.default_rng(1)
    rows, cols, dose = rng.integers(0, 500, 20_000), rng.integers(0, 30, 20_000), rng.integers(0, g.n_doses, 20_000)
    u = g.stream("manufacturing")[:, rows * g.u_tox.shape[1] + cols]
    steps = 1 + np.searchsorted(np.cumsum(m.lands)[:-1], u[1], side="right")
    want = np.where(u[0] < m.p_short[dose], np.maximum(dose - steps, 0), dose)
    got = g.infused(rows, cols, dose)
    assert (want != dose).sum() > 100  # shortfalls of one and more levels occur
    assert (dose - want > 1).any()
    np.testing.assert_array_equal(got, want)


def test_graded_counts_equal_the_bincount_tallies(scenario) -> None:
    from escalade.scenarios.cart import GRADES

    pts = draw_patients(9, 0, 0, 300, 30, 0.0)
    g = G.draw_graded(scenario.cart, pts, seed=9, scenario=0, chunk=0, p_dlt=scenario.p_dlt,
                      p_response=scenario.p_response)
    t, cap = g.u_tox.shape
    rng = np.random.default_rng(2)
    dose = np.where(rng.random((t, cap)) < 0.7, rng.integers(0, g.n_doses, (t, cap)), -1)
    r, c = np.nonzero(dose >= 0)
    o = g.at(r, c, dose[r, c])
    grades = np.zeros((len(g.types), t, cap), np.int8)
    grades[:, r, c] = o.grades
    infused = np.full((t, cap), -1)
    infused[r, c] = o.infused
    got = G.graded_counts(g, dose, grades, infused)
    d, nd = dose[r, c], g.n_doses
    dead = np.zeros(r.size, bool)
    for k, name in enumerate(g.types):
        gr = grades[k, r, c].astype(np.intp)
        tally = np.bincount((r * nd + d) * GRADES + gr, minlength=t * nd * GRADES).reshape(t, nd, GRADES)
        for grade in range(1, GRADES):
            np.testing.assert_array_equal(got[f"ae.{name}.g{grade}"], tally[:, :, grade], err_msg=f"{name} g{grade}")
            assert got[f"ae.{name}.g{grade}"].dtype == np.int16 and got[f"ae.{name}.g{grade}"].flags.c_contiguous
        dead |= gr == GRADES - 1
    assert dead.any() and (got["infused_below"] > 0).any()
    np.testing.assert_array_equal(got["death"], np.bincount(r[dead] * nd + d[dead], minlength=t * nd).reshape(t, nd))
    np.testing.assert_array_equal(got["infused_below"], np.bincount(r[infused[r, c] < d], minlength=t))
