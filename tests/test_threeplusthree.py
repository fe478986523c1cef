"""3+3 rules, by hand and against Wheeler et al.'s exact figures (validation/reference/README.md)."""

from __future__ import annotations

import numpy as np
import pytest

from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.simulations.trial import simulate


def _decide(design: ThreePlusThreeDesign, n: list[int], tox: list[int], current: int) -> tuple[int, bool, int]:
    dec = design.decide(States.from_counts(n, tox, current=current))
    return int(dec.dose[0]), bool(dec.stop[0]), int(dec.reason[0])


@pytest.mark.parametrize("deesc", [False, True])
def test_rules_by_hand(deesc: bool) -> None:
    d = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=4, allow_deescalation=deesc))
    assert _decide(d, [3, 0, 0, 0], [0, 0, 0, 0], 0)[:2] == (1, False)        # 0/3 -> escalate
    assert _decide(d, [3, 3, 0, 0], [0, 1, 0, 0], 1)[:2] == (1, False)        # 1/3 -> three more
    assert _decide(d, [3, 6, 0, 0], [0, 1, 0, 0], 1)[:2] == (2, False)        # 1/6 -> escalate
    assert _decide(d, [3, 3, 3, 3], [0, 0, 0, 0], 3)[:2] == (NO_DOSE, True)  # 0/3 at top -> stop
    dose, stop, reason = _decide(d, [3, 0, 0, 0], [2, 0, 0, 0], 0)             # 2/3 at dose 1 -> none
    assert stop and reason == StopReason.ALL_TOXIC
    dose, stop, _ = _decide(d, [3, 6, 0, 0], [0, 2, 0, 0], 1)                 # 2/6 at dose 2
    if deesc:
        assert (dose, stop) == (0, False)                                       # dose 1 has only 3 -> back
    else:
        assert stop
    dose, stop, _ = _decide(d, [6, 3, 0, 0], [1, 2, 0, 0], 1)                 # dose 1 already has 6
    assert stop
    final = States.from_counts([6, 3, 0, 0], [1, 2, 0, 0], current=1)
    assert d.select(final)[0] == 0
    final = States.from_counts([3, 3, 3, 3], [0, 0, 0, 0], current=3)
    assert d.select(final)[0] == 3


def test_deescalation_needs_six_at_mtd() -> None:
    d = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=3, allow_deescalation=True))
    # came back to dose 1 (now 6 patients, 2 DLTs): too toxic as well -> stop with no dose
    s = States.from_counts([6, 3, 0], [2, 2, 0], current=0)
    dec = d.decide(s)
    assert dec.stop[0]
    assert d.select(s)[0] == NO_DOSE
    # came back to dose 1 and it passed (1/6): stop, MTD = dose 1, never re-escalate
    s = States.from_counts([6, 3, 0], [1, 2, 0], current=0)
    assert d.decide(s).stop[0]
    assert d.select(s)[0] == 0


# Wheeler et al. exact A+B calculations, printed to 2 decimals (validation/reference/README.md).
WHEELER = [
    (True, [0.1, 0.2, 0.3, 0.4, 0.5], [0.10, 0.28, 0.33, 0.20, 0.06, 0.02]),
    (False, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.09, 0.26, 0.33, 0.22, 0.08, 0.02, 0, 0, 0]),
]


@pytest.mark.parametrize("deesc,p_true,expected", WHEELER)
def test_wheeler_exact_figures_within_mc_error(deesc: bool, p_true: list[float], expected: list[float]) -> None:
    d = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=len(p_true), allow_deescalation=deesc))
    t = 40_000
    out = simulate(d, p_true, n_trials=t, seed=7, chunk_size=5000)
    probs = np.bincount(out.selected + 1, minlength=len(p_true) + 1) / t  # none, 1, 2, ...
    for got, exp in zip(probs, expected):
        se = np.sqrt(max(exp * (1 - exp), 1e-4) / t)
        # the printed figure is exact up to rounding (+-0.005); allow 3 MC SE on top
        assert abs(got - exp) <= 0.005 + 3 * se, (got, exp)
