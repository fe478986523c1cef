"""The cohort loop's compiled CAR-T cohort (``CohortLoop.record_graded``) equals the general route.

The general route (``GradedPatients.at``, ``CohortLoop.record``, ``CohortLoop.record_patients``) is
the definition; the compiled step must give the same counts, decisions and tallies, with the sections
present or absent, counting at the assigned or the infused dose, and must change nothing when it hands a
cohort back because a latent lies within rounding of a cut.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from _cart_study import cart_study
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.simulations import graded as G
from escalade.simulations.patients import draw_patients, with_graded
from escalade.simulations.trial import CohortLoop, run_trials

BOIN = BoinDesign(BoinConfig(target=0.3, n_doses=4, max_n=21))
FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts")


@functools.cache
def _scenario(manufacturing: str | None):
    return cart_study(manufacturing=manufacturing).scenarios[-1]  # parsing takes ~0.5 s: once per module


def _model(variant: str):
    s = _scenario(None if variant == "assigned" else "infused")
    model = s.cart
    if variant == "no_ae_no_response":  # the plain patient's DLT and response, with a shortfall
        model = dataclasses.replace(model, ae_types=(), response=None, survival=None, expansion=None,
                                    correlation=None, _cache={})
    return s, model


def _run(s, model, n_trials: int = 150):
    pts = draw_patients(4, 0, 0, n_trials, BOIN.max_n, 0.0)
    pts = with_graded(pts, model, seed=4, scenario=0, chunk=0, p_dlt=s.p_dlt, p_response=s.p_response)
    return run_trials(BOIN, np.asarray(s.p_dlt), np.asarray(s.p_response), pts, engine="general")


def _same(a, b) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.extra.keys() == b.extra.keys()
    for k in a.extra:
        np.testing.assert_array_equal(a.extra[k], b.extra[k], err_msg=k)


@pytest.mark.parametrize("variant", ["assigned", "infused", "no_ae_no_response"])
def test_the_compiled_cohort_equals_the_general_route(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s, model = _model(variant)
    fast = _run(s, model)
    monkeypatch.setattr(CohortLoop, "record_graded", lambda self, live, d, c: False)
    general = _run(s, model)
    _same(fast, general)
    assert fast.extra  # tallies are there: ae.*, death (with AE types), infused_below (with a shortfall)
    if variant != "assigned":
        assert fast.extra["infused_below"].sum() > 0
    if variant == "infused":  # counts moved to the infused dose: the per-dose n differs from the assigned one
        assigned = _run(*_model("assigned"))
        assert not np.array_equal(fast.n, assigned.n)


def test_a_cohort_with_a_latent_in_a_band_is_handed_back_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen one band (the top dose's first response cut) so that some cohorts go through the formula's
    route and the others through the compiled step: the numbers equal those of the unwidened bands."""
    s, model = _model("infused")
    want = _run(s, model)
    wide = dataclasses.replace(model, _cache={})
    tab = G._tables(wide)
    tab["z_resp_lo"] = tab["z_resp_lo"].copy()
    tab["z_resp_hi"] = tab["z_resp_hi"].copy()
    tab["z_resp_lo"][-1, 0] -= 0.5
    tab["z_resp_hi"][-1, 0] += 0.5
    handed, compiled = [], []
    step = CohortLoop.record_graded

    def spy(self, live, d, c):
        ok = step(self, live, d, c)
        (compiled if ok else handed).append(int(c.sum()))
        return ok

    monkeypatch.setattr(CohortLoop, "record_graded", spy)
    got = _run(s, wide)
    assert handed and compiled  # both routes taken in the same trials
    _same(got, want)
