"""CRM trial rules: each rule alone, order-free composition, coherence (Cheung 2005).

The rules live in :mod:`escalade.design.rules` (shared by every design); see also
tests/test_guardrails.py.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.crm import CrmConfig, CrmDesign
from escalade.design.rules import (
    Coherence,
    DltGuard,
    Effect,
    MinSampleSize,
    NoSkip,
    RuleContext,
    SafetyStop,
    StartUp,
    StopAtN,
    apply_rules,
)

SK5 = (0.05, 0.12, 0.25, 0.40, 0.55)


def _design(**kw: object) -> CrmDesign:
    base: dict[str, object] = dict(target=0.25, n_doses=5, skeleton=SK5, max_n=30, cohort_size=3)
    base.update(kw)
    return CrmDesign(CrmConfig(**base))  # type: ignore[arg-type]


def _one(design: CrmDesign, n: list[int], tox: list[int], current: int, last_n: int = 3, last_tox: int = 0
         ) -> tuple[int, bool, int]:
    dec = design.decide(States.from_counts(n, tox, current=current, last_n=last_n, last_tox=last_tox))
    return int(dec.dose[0]), bool(dec.stop[0]), int(dec.reason[0])


# ---------------------------------------------------------------------------------------------
# each rule


def test_no_skip_relative_to_current_or_tried() -> None:
    n, tox = [3, 3, 3, 0, 0], [0, 0, 0, 0, 0]
    plain = _design(no_skip="off", coherence="off")
    assert _one(plain, n, tox, current=0)[0] == 4          # the model alone skips to the top
    assert _one(_design(), n, tox, current=0)[0] == 1      # dfcrm restrict: current + 1
    assert _one(_design(no_skip="tried"), n, tox, current=0)[0] == 3  # highest tried + 1


def test_coherence_fraction_and_any() -> None:
    # a DLT in the last cohort of 3 at dose 2, after clean doses 1-2: the model alone escalates
    n, tox = [3, 3, 0, 0, 0], [0, 1, 0, 0, 0]
    plain = _design(no_skip="off", coherence="off", target=0.4)
    assert _one(plain, n, tox, current=1, last_tox=1)[0] >= 2
    # target 0.4: 1/3 < 0.4 so dfcrm's rule allows escalation; "any" does not
    assert _one(_design(target=0.4, no_skip="off"), n, tox, current=1, last_tox=1)[0] >= 2
    assert _one(_design(target=0.4, no_skip="off", coherence="any"), n, tox, current=1, last_tox=1)[0] == 1
    # target 0.25: 1/3 >= 0.25 -> no escalation (dfcrm crmsim restrict)
    assert _one(_design(target=0.25, no_skip="off", skeleton=(0.02, 0.05, 0.25, 0.40, 0.55)),
                n, tox, current=1, last_tox=1)[0] <= 1
    # the DLT was in an earlier cohort: no restriction from coherence
    assert _one(_design(target=0.4, no_skip="off", coherence="any"), n, tox, current=1, last_tox=0)[0] >= 2


def test_coherence_fraction_equal_to_target_blocks_escalation() -> None:
    # dfcrm crmsim: sum(y[last cohort]) / mcohort >= target (1/4 == 0.25 exactly)
    n, tox = [4, 4, 0, 0, 0], [0, 1, 0, 0, 0]
    free = _design(target=0.25, no_skip="off", coherence="off", cohort_size=4)
    assert _one(free, n, tox, current=1, last_n=4, last_tox=1)[0] >= 2
    assert _one(_design(target=0.25, no_skip="off", cohort_size=4), n, tox, current=1, last_n=4, last_tox=1)[0] == 1


def test_start_up_until_first_dlt_then_model() -> None:
    d = _design(startup=(0, 0, 1, 1, 2, 2, 3, 3, 4, 4), no_skip="off", coherence="off")
    assert d.start() == (0, 3)
    assert _one(d, [3, 0, 0, 0, 0], [0, 0, 0, 0, 0], 0)[0] == 0     # cohort 2: dose 1 again
    assert _one(d, [6, 0, 0, 0, 0], [0, 0, 0, 0, 0], 0)[0] == 1     # cohort 3: dose 2
    assert _one(d, [6, 3, 0, 0, 0], [0, 0, 0, 0, 0], 1)[0] == 1
    model = _one(_design(no_skip="off", coherence="off"), [6, 3, 0, 0, 0], [0, 1, 0, 0, 0], 1)[0]
    assert _one(d, [6, 3, 0, 0, 0], [0, 1, 0, 0, 0], 1)[0] == model  # first DLT: the model takes over
    # sequence exhausted without a DLT: the model decides
    short = _design(startup=(0,), no_skip="off", coherence="off")
    model = _one(_design(no_skip="off", coherence="off"), [3, 0, 0, 0, 0], [0, 0, 0, 0, 0], 0)[0]
    assert _one(short, [3, 0, 0, 0, 0], [0, 0, 0, 0, 0], 0)[0] == model > 1
    assert _design(startup=(2, 3)).start() == (2, 3)  # startup[0] replaces start_dose


def test_safety_stop_and_its_minimum() -> None:
    d = _design(safety_threshold=0.9, safety_min_n=3)
    st3 = States.from_counts([3, 0, 0, 0, 0], [3, 0, 0, 0, 0], current=0, last_n=3, last_tox=3)
    dec = d.decide(st3)
    assert dec.stop[0] and dec.dose[0] == NO_DOSE and dec.reason[0] == StopReason.ALL_TOXIC
    assert d.select(st3)[0] == NO_DOSE
    assert not _design(safety_threshold=0.9, safety_min_n=6).decide(st3).stop[0]
    assert not _design(safety_threshold=0.9999).decide(st3).stop[0]
    ok = States.from_counts([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, last_tox=1)
    assert not d.decide(ok).stop[0] and d.select(ok)[0] >= 0


def test_stop_at_n_at_recommended_dose_and_min_n() -> None:
    n, tox = [3, 9, 0, 0, 0], [0, 2, 0, 0, 0]   # model recommends dose 2 (index 1)
    assert _one(_design(), n, tox, 1, last_tox=1)[:2] == (1, False)
    d = _design(stop_n_at_dose=9)
    dose, stop, reason = _one(d, n, tox, 1, last_tox=1)
    assert stop and dose == NO_DOSE and reason == StopReason.N_AT_DOSE
    # the count is taken at the recommended dose, not at the current one
    assert _one(d, n, tox, 0, last_tox=0)[1]
    assert not _one(d, [9, 3, 0, 0, 0], [2, 0, 0, 0, 0], 0, last_tox=0)[1]
    assert d.select(States.from_counts(n, tox, current=1))[0] == 1
    assert _one(_design(stop_n_at_dose=9, min_n=15), n, tox, 1, last_tox=1)[:2] == (1, False)
    assert _one(_design(stop_n_at_dose=9, min_n=12), n, tox, 1, last_tox=1)[1]


def test_safety_stop_is_not_held_and_wins_over_n_at_dose() -> None:
    st_ = States.from_counts([9, 0, 0, 0, 0], [6, 0, 0, 0, 0], current=0, last_n=3, last_tox=3)
    for min_n in (0, 30):  # both rules fire; with min_n = 30 only the safety stop may
        d = _design(safety_threshold=0.9, stop_n_at_dose=9, min_n=min_n)
        dec = d.decide(st_)
        assert dec.stop[0] and dec.reason[0] == StopReason.ALL_TOXIC
    assert _one(_design(stop_n_at_dose=9), [9, 0, 0, 0, 0], [6, 0, 0, 0, 0], 0, last_tox=3)[2] \
        == StopReason.N_AT_DOSE


def test_only_one_rule_may_replace_the_dose() -> None:
    ctx = RuleContext(States.from_counts([3, 0], [0, 0], current=0), np.array([1]), 0.25)
    with pytest.raises(ValueError, match="only one rule"):
        apply_rules([StartUp((0, 1), 3), StartUp((1, 1), 3)], ctx, 3)


def test_safety_rule_needs_the_probability() -> None:
    ctx = RuleContext(States.from_counts([3, 0], [0, 0], current=0), np.array([1]), 0.25)
    with pytest.raises(ValueError, match="prob_lowest_too_toxic"):
        SafetyStop(0.9).effect(ctx)
    assert Effect().cap is None


# ---------------------------------------------------------------------------------------------
# composition is order-free


def _random_states(rng: np.random.Generator, s: int, n_doses: int = 5, cohort: int = 3) -> States:
    n = rng.integers(0, 4, size=(s, n_doses)) * cohort
    current = np.array([rng.choice(np.flatnonzero(r)) if r.any() else 0 for r in n])
    n[np.arange(s), current] = np.maximum(n[np.arange(s), current], cohort)
    tox = rng.binomial(n, rng.uniform(0.05, 0.6, size=(s, 1)))
    tox[rng.random(s) < 0.2] = 0  # some start-up-stage states (no DLT yet)
    last_tox = np.minimum(rng.integers(0, cohort + 1, size=s), tox[np.arange(s), current])
    return States.from_counts(n, tox, current=current, last_n=cohort, last_tox=last_tox)


def test_rules_in_any_order_give_the_same_decisions() -> None:
    d = _design(startup=(0, 0, 1, 2, 3), no_skip="tried", coherence="fraction", safety_threshold=0.8,
                safety_min_n=3, stop_n_at_dose=9, min_n=12)
    assert len(d.rules) == 7  # with the all-DLT guardrail every design has
    states = _random_states(np.random.default_rng(5), 400)
    mtd, prob = d._estimate(states)
    ctx = RuleContext(states, mtd, d.config.target, prob)
    ref = apply_rules(d.rules, ctx, 3)
    # the batch exercises every rule
    assert {StopReason.ALL_TOXIC, StopReason.N_AT_DOSE} <= set(ref.reason.tolist())
    assert np.any(ref.dose != np.where(ref.stop, NO_DOSE, mtd))
    for perm in itertools.permutations(d.rules):
        out = apply_rules(perm, ctx, 3)
        np.testing.assert_array_equal(out.dose, ref.dose)
        np.testing.assert_array_equal(out.stop, ref.stop)
        np.testing.assert_array_equal(out.reason, ref.reason)
    np.testing.assert_array_equal(d.decide(states).dose, ref.dose)


def test_design_batched_equals_one_at_a_time() -> None:
    d = _design(coherence="any", safety_threshold=0.85, stop_n_at_dose=9)
    states = _random_states(np.random.default_rng(9), 120)
    dec = d.decide(states)
    sel = d.select(states)
    for i in range(120):
        one = d.decide(states.take(slice(i, i + 1)))
        assert (one.dose[0], one.stop[0], one.reason[0]) == (dec.dose[i], dec.stop[i], dec.reason[i])
        assert d.select(states.take(slice(i, i + 1)))[0] == sel[i]


# ---------------------------------------------------------------------------------------------
# coherence (Cheung 2005): one more DLT never raises the next dose


@st.composite
def _state_and_worse(draw: st.DrawFn) -> tuple[States, States]:
    d_n, c = 5, draw(st.sampled_from([1, 2, 3]))
    n = [c * draw(st.integers(0, 4)) for _ in range(d_n)]
    cur = draw(st.integers(0, d_n - 1))
    n[cur] = max(n[cur], c)
    last_tox = draw(st.integers(0, c - 1))  # the last cohort has a non-DLT to turn into a DLT
    tox = [draw(st.integers(0, k)) for k in n]
    tox[cur] = draw(st.integers(last_tox, n[cur] - (c - last_tox)))
    a = States.from_counts(n, tox, current=cur, last_n=c, last_tox=last_tox)
    tox2 = list(tox)
    tox2[cur] += 1
    b = States.from_counts(n, tox2, current=cur, last_n=c, last_tox=last_tox + 1)
    return a, b


COHERENT = {
    "dfcrm-restrict": dict(),
    "plain-model": dict(no_skip="off", coherence="off"),
    "any-dlt": dict(coherence="any", no_skip="tried"),
    "two-stage-coherent": dict(startup=(0, 0, 0, 1, 1, 1, 2, 2, 2), coherence="any"),
    "logistic": dict(model="logistic"),
}
DESIGNS = {k: _design(**v) for k, v in COHERENT.items()}


@pytest.mark.parametrize("name", sorted(COHERENT))
@settings(max_examples=150, deadline=None)
@given(pair=_state_and_worse())
def test_more_dlts_never_raise_the_next_dose(name: str, pair: tuple[States, States]) -> None:
    d = DESIGNS[name]
    if d.config.startup:
        # arbitrary DLT-free states contradict the start-up sequence; the transition out of the
        # start-up stage is checked on the sequence's own states in the next test
        assume(int(pair[0].tox.sum()) > 0)
    a, b = d.decide(pair[0]), d.decide(pair[1])
    da = -1 if a.stop[0] else int(a.dose[0])
    db = -1 if b.stop[0] else int(b.dose[0])
    assert db <= da or a.stop[0]


@pytest.mark.parametrize("c", [1, 2, 3])
def test_two_stage_transition_is_coherent(c: int) -> None:
    # every state of the start-up stage: k cohorts along the sequence without DLT, the last one with
    # y or y + 1 DLTs; with the coherence rule the extra DLT never raises the next dose
    seq = (0, 0, 1, 1, 2, 3, 4)
    d = _design(startup=seq, coherence="any", cohort_size=c)
    for k in range(1, len(seq) + 1):
        n = np.zeros(5, np.int64)
        for dose in seq[:k]:
            n[dose] += c
        cur = seq[k - 1]
        for y in range(c):
            tox = np.zeros(5, np.int64)
            tox[cur] = y
            a = _one(d, n.tolist(), tox.tolist(), cur, last_n=c, last_tox=y)
            tox[cur] = y + 1
            b = _one(d, n.tolist(), tox.tolist(), cur, last_n=c, last_tox=y + 1)
            assert b[0] <= a[0] and b[0] <= cur, (k, y, a, b)


def test_mle_fallback_is_not_monotone_but_escalation_coherent() -> None:
    # dfcrm crmsim's MLE design: when every outcome is a DLT the MLE does not exist and the
    # N(0, 500^2) posterior mean is used, whose numerator dfcrm integrates over (-10, 10) only, so it
    # sits near 0 (the prior MTD). One more DLT can then *raise* the next dose (1/2 -> dose 1,
    # 2/2 -> dose 2 here), which is why the property test above excludes method = "mle". The
    # coherence rule still forbids escalation: the dose does not go above the current one.
    d = _design(model="logistic", method="mle")
    one = _one(d, [0, 2, 0, 0, 0], [0, 1, 0, 0, 0], 1, last_n=2, last_tox=1)[0]
    two = _one(d, [0, 2, 0, 0, 0], [0, 2, 0, 0, 0], 1, last_n=2, last_tox=2)[0]
    assert one == 0 and two == 1
    free = dict(model="logistic", method="mle", coherence="off", no_escalation_after_dlts="off")
    assert _one(_design(**free), [0, 2, 0, 0, 0], [0, 2, 0, 0, 0], 1, last_n=2, last_tox=2)[0] == 2
    # the all-DLT guardrail alone (on by default for every design) forbids it too
    assert _one(_design(model="logistic", method="mle", coherence="off"), [0, 2, 0, 0, 0], [0, 2, 0, 0, 0], 1,
                last_n=2, last_tox=2)[0] == 1


def test_two_stage_without_coherence_can_be_incoherent() -> None:
    # Cheung (2005): a conservative start-up sequence followed by the model may escalate right
    # after the first DLT; the coherence rule (on by default) prevents it.
    seq = (0, 0, 0, 0, 0, 0)  # six cohorts at dose 1 unless a DLT occurs
    n, tox = [12, 0, 0, 0, 0], [1, 0, 0, 0, 0]
    free = _design(startup=seq, coherence="off", no_skip="off", cohort_size=3)
    assert _one(free, n, [0, 0, 0, 0, 0], 0, last_tox=0)[0] == 0  # no DLT: the sequence keeps dose 1
    assert _one(free, n, tox, 0, last_tox=1)[0] == 2              # a DLT: the model jumps to dose 3
    coherent = dataclasses.replace(free.config, coherence="any")
    assert _one(CrmDesign(coherent), n, tox, 0, last_tox=1)[0] == 0


def test_decide_reports_cohort_size_and_start() -> None:
    d = _design(cohort_size=2, start_dose=1)
    assert d.start() == (1, 2)
    assert d.decide(States.from_counts([0, 2, 0, 0, 0], [0, 0, 0, 0, 0], current=1)).cohort_size[0] == 2
    assert d.enumerable and d.state_fields == "all"
    assert _design(coherence="off").state_fields == "all"  # the all-DLT guardrail reads the last cohort
    assert _design(coherence="off", no_escalation_after_dlts="off").state_fields == "counts"
    rules = {type(r) for r in _design(startup=(0,), stop_n_at_dose=6, min_n=3, safety_threshold=0.9).rules}
    assert rules == {StartUp, NoSkip, Coherence, SafetyStop, StopAtN, MinSampleSize, DltGuard}
