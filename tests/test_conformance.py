"""One conformance suite for every registered design (as scikit-learn's estimator checks).

Each design must: be frozen; decide a batch exactly as it decides each state alone;
return doses inside the range and NO_DOSE exactly where it stops; select a dose in
range or NO_DOSE; explain a state with its registered explanation type; and run end
to end in the simulator. A design that decides on follow-up times
(:class:`~escalade.design.base.DecidesOnFollowUp`) must, in addition, decide on
complete follow-up exactly as on complete data, decide a batch as one state at a
time, and run in the time-aware engine. Coherence (Cheung 2005) is checked for the
designs that claim it: turning a non-DLT into a DLT never raises the next dose.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from escalade.design.base import NO_DOSE, FollowUp, States, StopReason, decides_on_followup, is_graded
from escalade.design.registry import build_design, design_kinds, entry
from escalade.scenarios.study import Timing
from escalade.simulations.patients import draw_patients
from escalade.simulations.timed import run_timed_trials
from escalade.simulations.trial import simulate

N_DOSES = 5
STUDY = {"target": 0.3, "n_doses": N_DOSES, "cohort_size": 3, "max_n": 24, "start_dose": 0,
         "doses": (1.0, 2.0, 4.0, 6.6, 10.0)}
# Minimal parameters each design needs beyond the study-level ones. A new design must be added
# here (the test below fails otherwise), so that it is held to the same checks.
PARAMS: dict[str, dict] = {
    "3+3": {},
    "boin": {},
    "crm": {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55]},
    "efftox": {},
    "tite_crm": {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55]},
    "tite_boin": {},
    "boin12": {},
    "tite_boin12": {},
    "blrm": {},
    "crm2": {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55]},
    "keyboard": {},
    "mtpi2": {},
    "i3+3": {},
    "decision_table": {"table": str(Path(__file__).resolve().parents[1] / "scenarios" / "decision_table_example.csv")},
    "gboin": {},
    "gboin_et": {"delta": 0.4},
}
COHERENT = {"3+3", "boin", "crm", "blrm", "crm2", "keyboard", "mtpi2", "i3+3"}


def test_every_registered_design_is_in_the_suite() -> None:
    missing = set(design_kinds()) - set(PARAMS)
    assert not missing, f"add {sorted(missing)} to PARAMS in tests/test_conformance.py"


def _designs() -> list:
    return [pytest.param(kind, id=kind) for kind in design_kinds()]


def _random_states(rng: np.random.Generator, s: int, cohort: int = 3) -> States:
    """Random but consistent states: the four tox x eff cells of each dose add up to n."""
    n = rng.integers(0, 3, size=(s, N_DOSES)) * cohort
    current = np.array([rng.choice(np.nonzero(row)[0]) if row.any() else 0 for row in n])
    n[np.arange(s), current] = np.maximum(n[np.arange(s), current], cohort)
    cells = np.stack([rng.multinomial(k, [0.15, 0.15, 0.3, 0.4]) for k in n.ravel()]).reshape(s, N_DOSES, 4)
    both, tox_only, eff_only = cells[..., 0], cells[..., 1], cells[..., 2]
    tox, eff = both + tox_only, both + eff_only
    last_tox = np.minimum(rng.integers(0, 2, size=s), tox[np.arange(s), current])
    # graded designs' score totals (nETS, nEES in [0, 1] per patient): the DLTs plus part of the others
    tox_score = tox + 0.4 * rng.random((s, N_DOSES)) * (n - tox)
    eff_score = eff + 0.4 * rng.random((s, N_DOSES)) * (n - eff)
    return States.from_counts(n, tox, eff, both, current=current, last_n=cohort, last_tox=last_tox,
                              tox_score=tox_score, eff_score=eff_score)


@pytest.mark.parametrize("kind", _designs())
def test_design_contract(kind: str) -> None:
    design = build_design(kind, PARAMS[kind], STUDY)
    assert dataclasses.is_dataclass(design.config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(design.config, dataclasses.fields(design.config)[0].name, None)
    dose, size = design.start()
    assert 0 <= dose < N_DOSES and size >= 1
    assert isinstance(design.enumerable, bool)
    states = _random_states(np.random.default_rng(1), 40)
    dec = design.decide(states)
    assert dec.n_states == 40
    assert np.all(dec.dose[dec.stop] == NO_DOSE)
    assert np.all((dec.dose[~dec.stop] >= 0) & (dec.dose[~dec.stop] < N_DOSES))
    assert np.all(dec.reason[~dec.stop] == StopReason.CONTINUE)
    assert np.all(dec.reason[dec.stop] != StopReason.CONTINUE)
    assert np.all(dec.cohort_size[~dec.stop] >= 1)
    for i in range(0, 40, 7):  # batched equals one-at-a-time
        one = design.decide(states.take(slice(i, i + 1)))
        assert (one.dose[0], one.stop[0], one.reason[0]) == (dec.dose[i], dec.stop[i], dec.reason[i])
    sel = np.asarray(design.select(states))
    assert sel.shape == (40,)
    assert np.all((sel == NO_DOSE) | ((sel >= 0) & (sel < N_DOSES)))
    assert isinstance(design.explain(states.take(slice(3, 4))), entry(kind).explanation)


def _reachable_states(design, rng: np.random.Generator, s: int) -> States:
    """States a trial can reach under ``design``'s complete-data decisions (random cohorts, random lengths)."""
    dose0, size0 = design.start()
    n = np.zeros((s, N_DOSES), np.int64)
    tox = np.zeros_like(n)
    cur = np.full(s, dose0)
    size = np.full(s, size0)
    last_n = np.zeros(s, np.int64)
    last_tox = np.zeros(s, np.int64)
    live = np.ones(s, bool)
    at = cur.copy()  # dose of the last cohort given
    stop_at = rng.integers(1, 6, size=s)
    for step in range(6):
        go = live & (step < stop_at)
        if not go.any():
            break
        y = rng.binomial(size, 0.1 + 0.1 * cur)
        n[go, cur[go]] += size[go]
        tox[go, cur[go]] += y[go]
        last_n = np.where(go, size, last_n)
        last_tox = np.where(go, y, last_tox)
        at = np.where(go, cur, at)
        st = States.from_counts(n, tox, current=at, last_n=last_n, last_tox=last_tox)
        dec = design.decide(st)
        nxt_live = go & ~dec.stop & (n.sum(axis=1) + dec.cohort_size <= design.max_n)
        stop_at = np.where(go & ~nxt_live, step + 1, stop_at)
        cur = np.where(nxt_live, dec.dose, cur)
        size = np.where(nxt_live, dec.cohort_size, size)
        live = nxt_live | (live & ~go)
    return States.from_counts(n, tox, current=at, last_n=last_n, last_tox=last_tox)


def _followup(states: States, rng: np.random.Generator, complete: bool) -> FollowUp:
    """Per-patient follow-up consistent with ``states`` (each dose's patients, DLTs first)."""
    s = states.n_states
    width = int(states.n.sum(axis=1).max())
    dose = np.full((s, width), NO_DOSE)
    dlt = np.zeros((s, width), bool)
    for i in range(s):
        col = 0
        for d in range(N_DOSES):
            k, y = int(states.n[i, d]), int(states.tox[i, d])
            dose[i, col:col + k] = d
            dlt[i, col:col + y] = True
            col += k
    frac = np.ones((s, width)) if complete else np.where(dlt, rng.uniform(0, 1, (s, width)),
                                                         rng.choice([0.2, 0.6, 1.0], size=(s, width)))
    return FollowUp(dose, dlt, np.where(dose >= 0, frac, 0.0))


@pytest.mark.parametrize("kind", _designs())
def test_followup_contract(kind: str) -> None:
    design = build_design(kind, PARAMS[kind], STUDY)
    if not decides_on_followup(design):
        assert not callable(getattr(design, "decide_tite", None))
        return
    assert not design.enumerable, "decisions on follow-up times cannot be enumerated from the counts"
    rng = np.random.default_rng(5)
    states = _reachable_states(design, rng, 30)
    full = design.decide_tite(states, _followup(states, rng, complete=True))
    plain = design.decide(states)
    assert not full.suspend.any()
    assert np.array_equal(full.decisions.dose, plain.dose) and np.array_equal(full.decisions.stop, plain.stop)
    follow = _followup(states, rng, complete=False)
    out = design.decide_tite(states, follow)
    assert out.n_states == 30 and out.suspend.dtype == bool
    go = ~out.suspend & ~out.decisions.stop
    assert np.all((out.decisions.dose[go] >= 0) & (out.decisions.dose[go] < N_DOSES))
    for i in range(0, 30, 6):
        one = design.decide_tite(states.take(slice(i, i + 1)), follow.take(slice(i, i + 1)))
        assert (one.suspend[0], one.decisions.stop[0]) == (out.suspend[i], out.decisions.stop[i])
        if not out.suspend[i]:
            assert one.decisions.dose[0] == out.decisions.dose[i]

def _ungraded_designs() -> list:
    """Every kind but the graded ones, which need graded patients (AE grades, response categories):
    tests/test_gboin*.py run those end to end (and test_a_graded_design_asks_for_graded_patients below)."""
    return [pytest.param(kind, id=kind) for kind in design_kinds()
            if not is_graded(build_design(kind, PARAMS[kind], STUDY))]


@pytest.mark.parametrize("kind", _ungraded_designs())
def test_design_runs_in_the_simulator(kind: str) -> None:
    design = build_design(kind, PARAMS[kind], STUDY)
    p_tox, p_eff = [0.05, 0.1, 0.2, 0.35, 0.5], [0.1, 0.3, 0.5, 0.6, 0.6]
    if decides_on_followup(design):
        pts = draw_patients(3, 0, 0, 60, design.max_n)
        out = run_timed_trials(design, p_tox, p_eff, pts, Timing(), dlt_window_days=28, response_days=90)
        assert np.all(out.duration > 0)
    else:
        out = simulate(design, p_tox, p_eff, n_trials=60, seed=3)
    assert out.n.sum(axis=1).max() <= design.max_n
    assert np.all(out.tox <= out.n) and np.all(out.both <= np.minimum(out.tox, out.eff))


@pytest.mark.parametrize("kind", sorted(COHERENT))
def test_coherence_more_dlts_never_raise_the_dose(kind: str) -> None:
    assert kind in design_kinds(), f"{kind} is built in and must be registered"
    design = build_design(kind, PARAMS[kind], STUDY)
    states = _random_states(np.random.default_rng(7), 200)
    cur = states.current
    at = states.at_current(states.tox) < states.at_current(states.n)
    worse_tox = states.tox.copy()
    worse_tox[np.arange(200), cur] += at.astype(np.int64)
    worse = States(states.n, worse_tox, states.eff, np.minimum(states.both, worse_tox), cur,
                   states.last_n, np.minimum(states.last_tox + at, states.last_n))
    a, b = design.decide(states), design.decide(worse)
    da = np.where(a.stop, -1, a.dose)
    db = np.where(b.stop, -1, b.dose)
    ok = at & ~a.stop
    assert np.all(db[ok] <= da[ok])


@pytest.mark.parametrize("kind", [k for k in design_kinds() if is_graded(build_design(k, PARAMS[k], STUDY))])
def test_a_graded_design_asks_for_graded_patients(kind: str) -> None:
    """On two-coin-flip patients a graded design stops with one line naming the missing section."""
    from escalade.simulations.trial import run_trials

    design = build_design(kind, PARAMS[kind], STUDY)
    pts = draw_patients(3, 0, 0, 20, design.max_n)
    with pytest.raises(Exception, match="adverse_events"):
        run_trials(design, np.array([0.05, 0.1, 0.2, 0.35, 0.5]), np.array([0.1, 0.3, 0.5, 0.6, 0.6]), pts)
