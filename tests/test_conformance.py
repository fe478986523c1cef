"""One conformance suite for every registered design (as scikit-learn's estimator checks).

Each design must: be frozen; decide a batch exactly as it decides each state alone;
return doses inside the range and NO_DOSE exactly where it stops; select a dose in
range or NO_DOSE; and run end to end in the simulator. Coherence (Cheung 2005) is
checked for the designs that claim it: turning a non-DLT into a DLT never raises
the next dose.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.registry import build_design, design_kinds
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
    "blrm": {},
    "crm2": {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55]},
}
COHERENT = {"3+3", "boin", "crm", "blrm", "crm2"}


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
    return States.from_counts(n, tox, eff, both, current=current, last_n=cohort, last_tox=last_tox)


@pytest.mark.parametrize("kind", _designs())
def test_design_contract(kind: str) -> None:
    design = build_design(kind, PARAMS[kind], STUDY)
    assert dataclasses.is_dataclass(design.config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(design.config, dataclasses.fields(design.config)[0].name, None)
    dose, size = design.start()
    assert 0 <= dose < N_DOSES and size >= 1
    if not getattr(design, "markov", True):
        pytest.skip("decisions use follow-up times; covered by the design's own tests")
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


@pytest.mark.parametrize("kind", _designs())
def test_design_runs_in_the_simulator(kind: str) -> None:
    design = build_design(kind, PARAMS[kind], STUDY)
    if not getattr(design, "markov", True):
        pytest.skip("runs in the time-aware engine")
    out = simulate(design, [0.05, 0.1, 0.2, 0.35, 0.5], [0.1, 0.3, 0.5, 0.6, 0.6], n_trials=60, seed=3)
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
