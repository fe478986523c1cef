"""Variants users meet in published tables (issue #16): BOIN staying at 1/3, 3+3 with six at the top dose.

Both are off by default; the defaults' decisions are those of the published designs (tested elsewhere:
tests/test_boin.py, tests/test_threeplusthree.py), and these tests pin what each option changes.
"""

from __future__ import annotations

import numpy as np
import pytest

from escalade.design.base import States, StopReason
from escalade.design.boin import BoinConfig, BoinDesign, boin_boundaries
from escalade.design.errors import ConfigError
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.simulations.exact import exact_outcomes


def _boin(**kw: object) -> BoinDesign:
    return BoinDesign(BoinConfig(target=0.25, n_doses=4, **kw))


def test_boin_default_deescalates_at_1_of_3_for_target_025() -> None:
    # lambda_d(0.25) = 0.298 < 1/3: BOIN::get.boundary(0.25, 10, 3) de-escalates at 1/3
    b = boin_boundaries(0.25, 30, 0.15, 0.35)
    assert b.deescalate[3] == 1 and b.escalate[3] == 0
    d = _boin()
    s = States.from_counts([3, 3, 0, 0], [0, 1, 0, 0], current=1, last_n=3, last_tox=1)
    assert int(d.decide(s).dose[0]) == 0


def test_boin_stay_on_1_of_3_stays_and_changes_nothing_else() -> None:
    base = boin_boundaries(0.25, 30, 0.15, 0.35)
    var = boin_boundaries(0.25, 30, 0.15, 0.35, stay_on_1_of_3=True)
    assert var.deescalate[3] == 2
    changed = np.nonzero(var.deescalate != base.deescalate)[0].tolist()
    assert changed == [3]
    assert np.array_equal(var.escalate, base.escalate) and np.array_equal(var.eliminate, base.eliminate)
    d = _boin(stay_on_1_of_3=True)
    s = States.from_counts([3, 3, 0, 0], [0, 1, 0, 0], current=1, last_n=3, last_tox=1)
    assert int(d.decide(s).dose[0]) == 1 and not d.decide(s).stop[0]
    # 2/3 still de-escalates; 1/6 (n = 6) is untouched
    s = States.from_counts([3, 3, 0, 0], [0, 2, 0, 0], current=1, last_n=3, last_tox=2)
    assert int(d.decide(s).dose[0]) == 0


def test_boin_stay_on_1_of_3_is_a_no_op_where_1_of_3_already_stays() -> None:
    # target 0.3: lambda_d = 0.359 > 1/3, so 1/3 stays anyway
    assert np.array_equal(boin_boundaries(0.3, 30, 0.18, 0.42).deescalate,
                          boin_boundaries(0.3, 30, 0.18, 0.42, stay_on_1_of_3=True).deescalate)


def test_boin_stay_on_1_of_3_moves_exact_operating_characteristics() -> None:
    p = np.array([0.1, 0.25, 0.4, 0.5])
    a = exact_outcomes(_boin(), p, np.zeros(4))
    b = exact_outcomes(_boin(stay_on_1_of_3=True), p, np.zeros(4))
    mean_n = lambda o: (o.weight[:, None] * o.n).sum(axis=0)  # noqa: E731
    # staying at 1/3 keeps more patients at the dose where 1/3 happened: the allocation moves up
    assert mean_n(b)[2] > mean_n(a)[2] + 0.05


def test_boin_stay_on_1_of_3_rejects_a_non_boolean() -> None:
    with pytest.raises(ConfigError, match="stay_on_1_of_3"):
        BoinConfig(target=0.25, n_doses=4, stay_on_1_of_3="yes")  # type: ignore[arg-type]


def _tpt(**kw: object) -> ThreePlusThreeDesign:
    return ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=3, **kw))


@pytest.mark.parametrize("deesc", [False, True])
def test_three_plus_three_default_ends_at_0_of_3_at_top(deesc: bool) -> None:
    d = _tpt(allow_deescalation=deesc)
    s = States.from_counts([3, 3, 3], [0, 0, 0], current=2)
    dec = d.decide(s)
    assert dec.stop[0] and dec.reason[0] == StopReason.RULE_COMPLETE
    assert d.select(s)[0] == 2


@pytest.mark.parametrize("deesc", [False, True])
def test_three_plus_three_six_at_top(deesc: bool) -> None:
    d = _tpt(allow_deescalation=deesc, six_at_top=True)
    s = States.from_counts([3, 3, 3], [0, 0, 0], current=2)
    dec = d.decide(s)
    assert not dec.stop[0] and int(dec.dose[0]) == 2 and int(dec.cohort_size[0]) == 3
    assert d.select(s)[0] == 1                        # not yet the MTD with three patients
    s = States.from_counts([3, 3, 6], [0, 0, 1], current=2)
    assert d.decide(s).stop[0] and d.select(s)[0] == 2  # 1/6 at the top dose: the MTD
    s = States.from_counts([3, 3, 6], [0, 0, 2], current=2)
    dec = d.decide(s)
    if deesc:  # 2/6 at the top dose, three at dose 2: back to dose 2 (Korn et al.)
        assert not dec.stop[0] and int(dec.dose[0]) == 1
    else:      # 2/6 at the top dose: stop, the MTD is the dose below
        assert dec.stop[0] and d.select(s)[0] == 1
    # lower doses: unchanged (0/3 below the top still escalates)
    s = States.from_counts([3, 0, 0], [0, 0, 0], current=0)
    assert int(d.decide(s).dose[0]) == 1


def test_three_plus_three_six_at_top_exact_sample_size() -> None:
    p = np.array([0.01, 0.02, 0.05])
    mean_n = lambda o: float((o.weight[:, None] * o.n).sum())  # noqa: E731
    a = exact_outcomes(_tpt(), p, np.zeros(3))
    b = exact_outcomes(_tpt(six_at_top=True), p, np.zeros(3))
    # almost every trial reaches the top dose with 0/3 and now treats three more there
    assert mean_n(b) - mean_n(a) > 2.5
    sel_top = lambda o: float(o.weight[o.selected == 2].sum())  # noqa: E731
    assert sel_top(b) > 0.95
