"""The compiled BOIN / 3+3 kernel (simulations/fast.py) gives the general engine's outcomes, array for array."""

from __future__ import annotations

import numpy as np
import pytest

from escalade.design.base import StopReason
from pathlib import Path

from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.decision_table import DecisionTableConfig, DecisionTableDesign
from escalade.design.i3plus3 import I3plus3Config, I3plus3Design
from escalade.design.keyboard import KeyboardConfig, KeyboardDesign
from escalade.design.mtpi2 import Mtpi2Config, Mtpi2Design
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.simulations.fast import draw_latent, fast_plan, run_fast
from escalade.simulations.patients import draw_patients
from escalade.simulations.runner import ScenarioSpec, run_units
from escalade.simulations.trial import run_trials, simulate

FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "weight", "trial")

DESIGNS = {
    "boin": BoinDesign(BoinConfig(target=0.3, n_doses=5)),
    "boin-7-earlystop": BoinDesign(BoinConfig(target=0.25, n_doses=7, cohort_size=3, max_n=36, n_earlystop=9)),
    "boin-cohort1-bound": BoinDesign(BoinConfig(target=0.2, n_doses=4, cohort_size=1, max_n=20, bound_mtd=True,
                                                start_dose=1)),
    "boin-guards": BoinDesign(BoinConfig(target=0.3, n_doses=5, no_escalation_after_dlts=2,
                                         no_escalation_above_boundary=True, overdose_control=0.8,
                                         stop_n_at_dose=12, min_n=9)),
    "boin-noguard": BoinDesign(BoinConfig(target=0.35, n_doses=6, cohort_size=2, max_n=24,
                                          no_escalation_after_dlts="off", cutoff_eli=0.9)),
    "3+3": ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5)),
    "3+3-deesc": ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=6, allow_deescalation=True)),
    "3+3-overdose": ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=4, target=0.3, overdose_control=0.9,
                                                              start_dose=1)),
    "keyboard": KeyboardDesign(KeyboardConfig(target=0.3, n_doses=5)),
    "keyboard-earlystop": KeyboardDesign(KeyboardConfig(target=0.25, n_doses=6, cohort_size=2, max_n=24,
                                                        n_earlystop=8, no_escalation_after_dlts="off")),
    "mtpi2": Mtpi2Design(Mtpi2Config(target=0.3, n_doses=5, max_n=33)),
    "i3+3": I3plus3Design(I3plus3Config(target=0.25, n_doses=5, stop_n_at_dose=9)),
    "table-csv": DecisionTableDesign(DecisionTableConfig(
        table=str(Path(__file__).resolve().parents[1] / "scenarios" / "decision_table_example.csv"), target=0.3,
        n_doses=5, max_n=18)),
}

# true DLT curves per number of doses: safe, target in the middle, all toxic, extremes (0, 1, tiny, near 1)
CURVES = {
    "middle": lambda d: np.linspace(0.05, 0.6, d),
    "toxic": lambda d: np.linspace(0.5, 0.9, d),
    "safe": lambda d: np.linspace(0.01, 0.1, d),
    "extremes": lambda d: np.array([0.0, 1e-4, 0.3, 0.9995, 1.0, 0.5, 0.2][:d]),
}


def _same(a, b) -> None:
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype, f
        np.testing.assert_array_equal(x, y, err_msg=f)


def _general(d, pt, pe, pts):
    return run_trials(d, pt, pe, pts, engine="general")


def test_designs_qualify():
    for name, d in DESIGNS.items():
        assert fast_plan(d) is not None, name
    # rules the kernel does not implement, and designs it does not know, stay on the general engine
    assert fast_plan(BoinDesign(BoinConfig(target=0.3, n_doses=5, extrasafe=True))) is None
    assert fast_plan(BoinDesign(BoinConfig(target=0.3, n_doses=5, titration=True))) is None
    assert fast_plan(BoinDesign(BoinConfig(target=0.3, n_doses=5, no_skip="tried"))) is None
    from escalade.design.crm import CrmConfig, CrmDesign

    assert fast_plan(CrmDesign(CrmConfig(skeleton=(0.1, 0.2, 0.3), target=0.3, n_doses=3))) is None
    assert fast_plan(KeyboardDesign(KeyboardConfig(target=0.3, n_doses=5, no_skip="tried"))) is None


def test_config_fields_the_kernel_does_not_know_go_to_the_general_engine(monkeypatch):
    import escalade.simulations.fast as fast

    d = DESIGNS["boin"]
    assert fast_plan(d) is not None
    monkeypatch.setattr(fast, "KNOWN_FIELDS", fast.KNOWN_FIELDS - {"titration"})  # as if a new option appeared
    assert fast_plan(d) is None


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("curve", list(CURVES))
def test_kernel_equals_general_engine(name, curve):
    """Uniforms (run_trials) and latent normals (simulate) both reproduce the cohort loop exactly."""
    d = DESIGNS[name]
    pt = CURVES[curve](d.n_doses)
    pe = np.linspace(0.1, 0.7, d.n_doses) if curve != "safe" else np.zeros(d.n_doses)
    pts = draw_patients(11, 3, 0, 700, d.max_n, 0.3)
    _same(run_trials(d, pt, pe, pts), _general(d, pt, pe, pts))
    a = simulate(d, pt, pe, n_trials=900, seed=5, association=-0.4, chunk_size=400)
    b = simulate(d, pt, pe, n_trials=900, seed=5, association=-0.4, chunk_size=400, run=_general)
    _same(a, b)
    assert len(set(a.reason.tolist())) >= 1


def test_stop_reasons_are_exercised():
    """The scenarios above reach every stop the kernel writes (so each branch is compared)."""
    seen = set()
    for d in DESIGNS.values():
        for curve in CURVES.values():
            o = simulate(d, curve(d.n_doses), n_trials=300, seed=1)
            seen |= set(o.reason.tolist())
    assert {StopReason.MAX_SAMPLE_SIZE, StopReason.ALL_TOXIC, StopReason.N_AT_DOSE,
            StopReason.RULE_COMPLETE} <= seen


def test_stop_codes_match_enum():
    from escalade.simulations.fast_kernels import STOP_CODES

    for reason, code in STOP_CODES.items():
        assert int(reason) == code


def test_latent_draws_are_draw_patients():
    from scipy import special

    pts = draw_patients(3, 7, 2, 50, 30, 0.5)
    z_t, z_e = draw_latent(3, 7, 2, 50, 30, 0.5)
    np.testing.assert_array_equal(special.ndtr(z_t), pts.u_tox)
    np.testing.assert_array_equal(special.ndtr(z_e), pts.u_eff)
    assert draw_latent(3, 7, 2, 50, 30, 0.5, efficacy=False)[1] is None


def test_band_values_are_evaluated_exactly():
    """Normals placed right at ndtri(p) need scipy's ndtr: the kernel asks for them and agrees with it."""
    from scipy import special

    d = DESIGNS["boin"]
    p = np.array([0.05, 0.15, 0.3, 0.45, 0.6])
    z = np.random.default_rng(0).standard_normal((200, 32))
    z[:, :6] = special.ndtri(0.05) + np.random.default_rng(1).choice([-1e-12, 0.0, 1e-12], (200, 6))
    plan = fast_plan(d)
    a = run_fast(plan, p, np.zeros(5), z, None, latent=True)
    b = run_fast(plan, p, np.zeros(5), special.ndtr(z), None, latent=False)
    _same(a, b)


@pytest.mark.parametrize("with_crm", [False, True])
def test_runner_results_unchanged(with_crm):
    """The runner's outcomes equal the general engine's: all designs in the kernel (latent normals, two streams
    drawn) or mixed with a CRM (uniforms drawn for every design)."""
    from escalade.design.crm import CrmConfig, CrmDesign

    designs = [DESIGNS["boin"], DESIGNS["3+3"]]
    if with_crm:
        designs.append(CrmDesign(CrmConfig(skeleton=(0.05, 0.1, 0.2, 0.3, 0.45), target=0.3, n_doses=5, max_n=30)))
    sc = [ScenarioSpec("a", (0.05, 0.1, 0.25, 0.4, 0.55), (0.1, 0.2, 0.3, 0.4, 0.5), 0.2),
          ScenarioSpec("b", (0.3, 0.4, 0.5, 0.6, 0.7), (0.0,) * 5)]
    got = run_units(sc, designs, n_trials=600, seed=9, chunk_size=250, backend="sequential")
    for s, spec in enumerate(sc):
        for k, d in enumerate(designs):
            ref = simulate(d, spec.p_dlt, spec.p_response, n_trials=600, seed=9, association=spec.association,
                           chunk_size=250, scenario=spec.key, run=_general)
            _same(got[(s, k)], ref)
