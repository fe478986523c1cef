"""The compiled calendar-time TITE-BOIN kernel (simulations/fast_tite.py) gives the general engine's outcomes.

Every comparison is array for array (selection, stop reason, counts, cohorts, duration, suspensions), on a
grid of designs (options and rules the kernel accepts), accrual processes, onset distributions, staggering
and true curves, at small trial counts. The kernel compiles once per session (one signature).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from escalade.design.base import StopReason
from escalade.design.tite_boin import TiteBoinConfig, TiteBoinDesign
from escalade.scenarios.study import Timing
from escalade.simulations import fast_tite
from escalade.simulations.fast_tite import (draw_latent_timed, run_fast_tite, simulate_fast_tite, tite_plan)
from escalade.simulations.patients import draw_patients
from escalade.simulations.timed import arrival_days, run_timed_trials, simulate_timed

FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "weight", "trial", "duration", "suspensions")

DESIGNS = {
    "default": TiteBoinConfig(target=0.3, n_doses=5),
    "strict-start2": TiteBoinConfig(target=0.25, n_doses=6, max_n=36, max_pending=0.34, deescalate_below_target=True,
                                    n_earlystop=12, start_dose=1),
    "guards": TiteBoinConfig(target=0.3, n_doses=5, no_escalation_after_dlts=2, no_escalation_above_boundary=True,
                             overdose_control=0.8, stop_n_at_dose=12, min_n=9, bound_mtd=True),
    "cohort1": TiteBoinConfig(target=0.2, n_doses=4, cohort_size=1, max_n=20, cutoff_eli=0.9,
                              no_escalation_after_dlts="off"),
    "cohort2-wide": TiteBoinConfig(target=0.3, n_doses=5, cohort_size=2, max_n=44, max_pending=0.6),
}

TIMINGS = {
    "poisson": (Timing(accrual="poisson", rate_per_month=4.0, dlt_onset="uniform"), "new_dose"),
    "poisson-slow-early": (Timing(accrual="poisson", rate_per_month=1.5, dlt_onset="early"), "new_dose"),
    "uniform-fast-late": (Timing(accrual="uniform", rate_per_month=10.0, dlt_onset="late"), "new_dose"),
    "fixed-stagger": (Timing(accrual="fixed", rate_per_month=3.0, enrolment="stagger", stagger_days=7.0), "new_dose"),
    "list-stagger-cohort": (Timing(accrual="list", rate_per_month=6.0, arrival_days=(0.0, 0.0, 0.0, 10.0),
                                   enrolment="stagger", stagger_days=3.0, dlt_onset="early"), "cohort"),
}

CURVES = {
    "middle": lambda d: np.linspace(0.05, 0.6, d),
    "toxic": lambda d: np.linspace(0.5, 0.9, d),
    "safe": lambda d: np.linspace(0.01, 0.1, d),
    "extremes": lambda d: np.array([0.0, 1e-4, 0.3, 0.9995, 1.0, 0.5, 0.2][:d]),
}

# each design meets two calendars; every calendar meets two designs
PAIRS = [("default", "poisson"), ("default", "fixed-stagger"), ("strict-start2", "poisson-slow-early"),
         ("strict-start2", "list-stagger-cohort"), ("guards", "uniform-fast-late"), ("guards", "poisson"),
         ("cohort1", "fixed-stagger"), ("cohort1", "uniform-fast-late"), ("cohort2-wide", "list-stagger-cohort"),
         ("cohort2-wide", "poisson-slow-early")]


def _design(name: str) -> TiteBoinDesign:
    return TiteBoinDesign(DESIGNS[name])


def _same(a, b) -> None:
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if x is None or y is None:
            assert x is None and y is None, f
            continue
        assert x.dtype == y.dtype, f
        np.testing.assert_array_equal(x, y, err_msg=f)


# every pair meets two curves; every curve meets five pairs
GRID = [(d, t, c) for i, (d, t) in enumerate(PAIRS) for c in (list(CURVES)[i % 4], list(CURVES)[(i + 1) % 4])]


@pytest.mark.parametrize("design,timing,curve", GRID)
def test_kernel_equals_general_engine(design: str, timing: str, curve: str) -> None:
    """Latent normals (simulate_timed: three chunks, one partial) reproduce the general engine exactly."""
    d = _design(design)
    tm, scope = TIMINGS[timing]
    pt = CURVES[curve](d.n_doses)
    pe = np.linspace(0.1, 0.7, d.n_doses) if curve in ("middle", "toxic") else np.zeros(d.n_doses)
    kw = dict(timing=tm, dlt_window_days=28.0, n_trials=70, seed=7, association=-0.4, chunk_size=30,
              stagger_scope=scope)
    _same(simulate_timed(d, pt, pe, **kw), simulate_timed(d, pt, pe, engine="general", **kw))


@pytest.mark.parametrize("design,timing", PAIRS[::3])
def test_uniforms_equal_general_engine(design: str, timing: str) -> None:
    """The runner's path (shared uniforms of draw_patients, run_timed_trials) gives the general engine's outcomes."""
    d = _design(design)
    tm, scope = TIMINGS[timing]
    pt = CURVES["middle"](d.n_doses)
    pe = np.linspace(0.2, 0.6, d.n_doses)
    pts = draw_patients(3, 11, 0, 80, d.max_n, 0.3)
    kw = dict(dlt_window_days=21.0, response_days=60.0, stagger_scope=scope)
    _same(run_timed_trials(d, pt, pe, pts, tm, **kw), run_timed_trials(d, pt, pe, pts, tm, engine="general", **kw))


def test_lockstep_and_ambiguity_fallback_equal_general_engine() -> None:
    """The lock-step order (from the start, or after an imputed rate near a boundary) gives the same outcomes.

    ``ambiguous=1.0`` calls every decision with 3 or more pending patients ambiguous, so the fallback runs.
    """
    d = _design("cohort2-wide")
    tm, _ = TIMINGS["uniform-fast-late"]
    pt = CURVES["middle"](d.n_doses)
    pe = np.zeros(d.n_doses)
    z_t, _, u_on, u_arr = draw_latent_timed(5, 2, 0, 200, d.max_n, efficacy=False)
    plan = tite_plan(d)
    runs = [run_fast_tite(plan, pt, pe, z_t, None, u_on, u_arr, tm, dlt_window_days=28.0, latent=True, **kw)
            for kw in ({}, {"lockstep": True}, {"ambiguous": 1.0})]
    from scipy import special

    pts = dataclasses.replace(draw_patients(5, 2, 0, 200, d.max_n), u_tox=special.ndtr(z_t))
    general = run_timed_trials(d, pt, pe, pts, tm, dlt_window_days=28.0, response_days=90.0, engine="general")
    for r in runs:
        _same(r, general)


def test_band_values_are_evaluated_exactly() -> None:
    """Normals right at ndtri(p) need scipy's ndtr: the kernel asks for them, runs again, and agrees with it."""
    from scipy import special

    d = _design("default")
    tm, _ = TIMINGS["poisson"]
    p = np.array([0.05, 0.15, 0.3, 0.45, 0.6])
    z, _, u_on, u_arr = draw_latent_timed(1, 0, 0, 150, 30, efficacy=False)
    z[:, :9] = special.ndtri(0.05) + np.random.default_rng(1).choice([-1e-12, 0.0, 1e-12], (150, 9))
    plan = tite_plan(d)
    a = run_fast_tite(plan, p, np.zeros(5), z, None, u_on, u_arr, tm, dlt_window_days=28.0, latent=True)
    b = run_fast_tite(plan, p, np.zeros(5), special.ndtr(z), None, u_on, u_arr, tm, dlt_window_days=28.0,
                      latent=False)
    _same(a, b)


def test_latent_draws_are_draw_patients() -> None:
    from scipy import special

    pts = draw_patients(3, 7, 2, 40, 30, 0.5)
    z_t, z_e, u_on, u_arr = draw_latent_timed(3, 7, 2, 40, 30, 0.5)
    np.testing.assert_array_equal(special.ndtr(z_t), pts.u_tox)
    np.testing.assert_array_equal(special.ndtr(z_e), pts.u_eff)
    np.testing.assert_array_equal(u_on, pts.u_onset)
    np.testing.assert_array_equal(u_arr, pts.u_arrival)
    assert draw_latent_timed(3, 7, 2, 40, 30, 0.5, efficacy=False)[1] is None


@pytest.mark.parametrize("accrual", ["poisson", "uniform", "fixed", "list"])
def test_arrival_input_sums_to_arrival_days(accrual: str) -> None:
    """The kernel adds the gaps in order, as np.cumsum: the same days, bit for bit."""
    tm = Timing(accrual=accrual, rate_per_month=3.3, arrival_days=(0.0, 2.0) if accrual == "list" else ())
    u = draw_patients(2, 0, 0, 50, 32).u_arrival
    x, cum = fast_tite._arrival_input(tm, fast_tite._blocked(u))  # the kernel's blocks of 16 patients
    x = fast_tite._unblock(x)
    days = np.cumsum(x, axis=1) if cum else x
    seq = x.copy()
    if cum:
        for k in range(1, seq.shape[1]):
            seq[:, k] = seq[:, k - 1] + x[:, k]
    np.testing.assert_array_equal(days, arrival_days(tm, u))
    np.testing.assert_array_equal(seq, arrival_days(tm, u))


def test_stop_codes_match_enum() -> None:
    from escalade.simulations import fast_tite_kernels as K

    assert (K._MAX_SAMPLE_SIZE, K._ALL_TOXIC, K._N_AT_DOSE) == (
        StopReason.MAX_SAMPLE_SIZE, StopReason.ALL_TOXIC, StopReason.N_AT_DOSE)


def test_stop_reasons_and_suspensions_are_exercised() -> None:
    """The grid reaches every stop the kernel writes, accrual suspensions and the sentinel rule."""
    seen: set[int] = set()
    susp = 0
    for design, timing in PAIRS:
        d = _design(design)
        tm, scope = TIMINGS[timing]
        for curve in CURVES.values():
            o = simulate_fast_tite(d, curve(d.n_doses), None, timing=tm, dlt_window_days=28.0, response_days=90.0,
                                   n_trials=60, seed=1, stagger_scope=scope)
            seen |= set(o.reason.tolist())
            susp += int(o.suspensions.sum())
    assert {StopReason.MAX_SAMPLE_SIZE, StopReason.ALL_TOXIC, StopReason.N_AT_DOSE} <= seen
    assert susp > 0


def test_designs_outside_the_kernel_take_the_general_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from escalade.design.tite_boin12 import TiteBoin12Config, TiteBoin12Design
    from escalade.design.tite_crm import TiteCrmConfig, TiteCrmDesign

    for name in DESIGNS:
        assert tite_plan(_design(name)) is not None, name
    base = dict(target=0.3, n_doses=5)
    for extra in ({"extrasafe": True}, {"backfill": True}, {"no_skip": "tried"}, {"coherence": "any"},
                  {"lowest_dose_safety": 0.9}, {"max_n": 132}):
        assert tite_plan(TiteBoinDesign(TiteBoinConfig(**base, **extra))) is None, extra
    assert tite_plan(TiteCrmDesign(TiteCrmConfig(skeleton=(0.1, 0.2, 0.3), target=0.3, n_doses=3))) is None
    assert tite_plan(TiteBoin12Design(TiteBoin12Config(target=0.3, n_doses=3, phi_e=0.3))) is None

    @dataclasses.dataclass(frozen=True, slots=True)
    class Mine(TiteBoinDesign):  # a subclass may change any method
        pass

    assert tite_plan(Mine(TiteBoinConfig(**base))) is None
    # a config field the kernel does not know (an option added later): the general engine
    monkeypatch.setattr(fast_tite, "KNOWN_FIELDS", fast_tite.KNOWN_FIELDS - {"max_pending"})
    monkeypatch.setattr(fast_tite, "_PLANS", {})
    assert tite_plan(_design("default")) is None
    assert simulate_fast_tite(_design("default"), np.full(5, 0.2), None, timing=Timing(), dlt_window_days=28.0,
                              response_days=90.0, n_trials=5, seed=1) is None


def test_invalid_inputs_raise_the_general_engines_errors() -> None:
    d = _design("default")
    with pytest.raises(ValueError, match="true curves need 5 values"):
        simulate_timed(d, [0.1, 0.2], timing=Timing(), dlt_window_days=28.0, n_trials=5, seed=1)
    with pytest.raises(ValueError, match="dlt_window_days must be > 0"):
        simulate_timed(d, np.full(5, 0.2), timing=Timing(), dlt_window_days=0.0, n_trials=5, seed=1)
    with pytest.raises(ValueError, match="engine must be"):
        simulate_timed(d, np.full(5, 0.2), timing=Timing(), dlt_window_days=28.0, n_trials=5, seed=1,
                       engine="fast")  # type: ignore[arg-type]


def test_runner_results_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A study's run (the runner's units, TITE-BOIN beside BOIN on shared patients) is the general engine's."""
    from escalade.design.boin import BoinConfig, BoinDesign
    from escalade.simulations.runner import ScenarioSpec, run_units

    designs = [_design("default"), BoinDesign(BoinConfig(target=0.3, n_doses=5))]
    tm = Timing(accrual="poisson", rate_per_month=3.0, dlt_onset="late")
    sc = [ScenarioSpec("a", (0.05, 0.1, 0.25, 0.4, 0.55), (0.1, 0.2, 0.3, 0.4, 0.5), 0.2, timing=tm),
          ScenarioSpec("b", (0.3, 0.4, 0.5, 0.6, 0.7), (0.0,) * 5, timing=tm)]
    got = run_units(sc, designs, n_trials=120, seed=9, chunk_size=50, backend="sequential")
    monkeypatch.setattr(fast_tite, "tite_plan", lambda design: None)  # every trial in the general engine
    ref = run_units(sc, designs, n_trials=120, seed=9, chunk_size=50, backend="sequential")
    for key in ref:
        _same(got[key], ref[key])
