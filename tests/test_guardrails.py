"""Shared trial rules and hard safety guardrails (design/rules.py; issues 13 and 14).

* every design of the shipped study never escalates right after a cohort in which every
  patient had a DLT (every dose path of a few cohorts, from the start and from histories);
* the same for every registered design on random states, TITE designs on pending data included;
* the EffTox example of issue 13 (``1NNN 2TTT`` escalated to dose 3) now de-escalates;
* each rule on hand-made states; any order of the rules gives the same decisions (hypothesis);
* BOIN's in-trial rules, now written as shared rules, decide as ``BOIN::get.oc``'s ordered
  rules did (a literal copy of the former code is the reference) on every reachable state.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.design.base import NO_DOSE, Decisions, States, StopReason
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.efftox import parse_outcomes
from escalade.design.registry import build_design, design_kinds
from escalade.scenarios.designs import build_study_designs
from escalade.design.rules import (
    BetaSafetyStop,
    Coherence,
    DeescalationGuard,
    DltGuard,
    MinSampleSize,
    NoSkip,
    OverdoseControl,
    RuleContext,
    SafetyStop,
    StartUp,
    StopAtN,
    Titration,
    apply_rules,
    beta_exceeds,
    deescalation_boundary,
    select_with_rules,
    shared_rules,
    state_fields,
)
from escalade.design.tite_crm import FollowUp
from escalade.scenarios.errors import ConfigError
from escalade.scenarios.load import load_study
from escalade.simulations.paths import dose_paths

from test_conformance import PARAMS, STUDY

SHIPPED = Path(__file__).resolve().parents[1] / "scenarios" / "cart_rr_heme.yaml"
_STUDY = load_study(SHIPPED)
_DESIGNS = build_study_designs(_STUDY)


def _by_name(name: str):
    return next(d for spec, d in _DESIGNS if spec.name == name)


# ---------------------------------------------------------------------------------------------
# the guardrail on every design of the shipped study, by dose paths


def _histories(design) -> list[tuple[str, int]]:
    """(history, cohorts to enumerate): from the start, and from two later points of a trial."""
    deep = 2 if design.uses_efficacy else 3
    n = "NNE" if design.uses_efficacy else "NNN"
    return [("", deep), (f"1{n}", deep), (f"1{n} 2{n} 2{n}", 2)]


def test_the_shipped_study_has_every_built_in_design() -> None:
    kinds = {d.kind for _, d in _DESIGNS}
    assert {"3+3", "boin", "crm", "tite_crm", "tite_boin", "efftox", "boin12"} <= kinds


@pytest.mark.parametrize("name", [spec.name for spec, _ in _DESIGNS])
def test_no_design_of_the_shipped_study_escalates_after_an_all_dlt_cohort(name: str) -> None:
    design = _by_name(name)
    seen = 0
    for history, k in _histories(design):
        t = dose_paths(design, k, history).table
        t = t[t["depth"] > 0]
        size = t["outcome"].str.len()
        all_dlt = (t["n_tox"] == size) & (size > 0)
        seen += int(all_dlt.sum())
        nxt = t["next_dose"].fillna(-1).astype(int)
        bad = t[all_dlt & ~t["stop"] & (nxt > t["dose"].fillna(-1).astype(int))]
        assert bad.empty, f"{name} escalates after an all-DLT cohort: {bad['path'].tolist()[:5]}"
    assert seen > 0


def test_efftox_example_of_issue_13_now_de_escalates() -> None:
    # escalade paths scenarios/cart_rr_heme.yaml --design EffTox --cohorts 1 --from "1NNN" gave "2 TTT -> 3"
    efftox = _by_name("EffTox")
    t = dose_paths(efftox, 1, "1NNN").table.set_index("path")
    for outcome in ("TTT", "TTB", "TBB", "BBB"):
        assert int(t.loc[f"1NNN 2{outcome}", "next_dose"]) == 1  # overdose control (shipped) excludes DL2
    for outcome in ("NTT", "ETT", "NBB"):
        assert int(t.loc[f"1NNN 2{outcome}", "next_dose"]) == 2  # 2/3 > lambda_d: no escalation
    assert int(t.loc["1NNN 2NNN", "next_dose"]) == 3
    # with EffTox's own rules only, the all-DLT guardrail (on by default) still keeps it at DL2
    own = build_design("efftox", {**_spec("EffTox").params, "overdose_control": None,
                                  "no_escalation_above_boundary": False}, _STUDY.design_defaults())
    assert int(own.decide(parse_outcomes("1NNN 2TTT", n_doses=5)).dose[0]) == 1
    bare = build_design("efftox", {**_spec("EffTox").params, "overdose_control": None,
                                   "no_escalation_above_boundary": False, "no_escalation_after_dlts": "off"},
                        _STUDY.design_defaults())
    assert int(bare.decide(parse_outcomes("1NNN 2TTT", n_doses=5)).dose[0]) == 2  # the bug, rules off


def test_efftox_next_dose_after_0_of_3_and_3_of_3() -> None:
    from escalade.simulations.conduct import next_dose

    csv = "id,dose_level,dlt,response\n" + "".join(
        f"P{i},{d},{y},0\n" for i, (d, y) in enumerate([(1, 0)] * 3 + [(2, 1)] * 3))
    res = next_dose(_by_name("EffTox"), io.StringIO(csv))
    assert not res.stop and res.next_dose == 1


def _spec(name: str):
    return next(spec for spec, _ in _DESIGNS if spec.name == name)


def test_shipped_defaults() -> None:
    assert _by_name("CRM").config.safety_threshold == 0.9
    assert _by_name("TITE-CRM").config.coherence == "fraction"
    assert _by_name("TITE-CRM").config.safety_threshold == 0.9
    eff = _by_name("EffTox").config
    assert eff.overdose_control == 0.95 and eff.no_escalation_above_boundary
    for _, d in _DESIGNS:
        assert d.config.no_escalation_after_dlts == "all"
        assert any(isinstance(r, (DltGuard, Coherence)) for r in d.rules), d.kind


# ---------------------------------------------------------------------------------------------
# every registered design, on random states (pending data for the TITE designs)


def _all_dlt_states(rng: np.random.Generator, s: int, cohort: int = 3) -> States:
    """Random states whose last cohort (at the current dose, below the top) had ``cohort`` DLTs."""
    n = rng.integers(0, 4, size=(s, 5)) * cohort
    cur = rng.integers(0, 4, size=s)  # below the top dose: escalation is possible
    n[np.arange(s), cur] += cohort
    tox = rng.binomial(n, 0.1)
    tox[np.arange(s), cur] = rng.binomial(n[np.arange(s), cur] - cohort, 0.1) + cohort
    eff = rng.binomial(n - tox, 0.5)  # responders among the patients without a DLT
    return States.from_counts(n, tox, eff, np.zeros_like(n), current=cur, last_n=cohort, last_tox=cohort)


def _follow_up(states: States, cohort: int = 3) -> FollowUp:
    """Patients of each state, the last cohort (three observed DLTs) last; one earlier non-DLT
    patient still in follow-up where there is one."""
    rows = []
    for i in range(states.n_states):
        cur = int(states.current[i])
        doses, dlts = [], []
        for d in range(states.n_doses):
            k = int(states.n[i, d]) - (cohort if d == cur else 0)
            y = int(states.tox[i, d]) - (cohort if d == cur else 0)
            doses += [d] * k
            dlts += [True] * y + [False] * (k - y)
        doses += [cur] * cohort
        dlts += [True] * cohort
        frac = [1.0] * (len(doses) - cohort) + [0.3] * cohort
        free = [j for j in range(len(doses) - cohort) if not dlts[j]]
        if free:
            frac[free[-1]] = 0.5
        rows.append((doses, dlts, frac))
    width = max(len(r[0]) for r in rows)
    dose = np.full((states.n_states, width), NO_DOSE)
    dlt = np.zeros((states.n_states, width), bool)
    frac = np.zeros((states.n_states, width))
    for i, (d, y, f) in enumerate(rows):
        dose[i, : len(d)], dlt[i, : len(d)], frac[i, : len(d)] = d, y, f
    return FollowUp(dose, dlt, frac)


@pytest.mark.parametrize("kind", design_kinds())
def test_every_registered_design_never_escalates_after_an_all_dlt_cohort(kind: str) -> None:
    design = build_design(kind, PARAMS[kind], STUDY)
    states = _all_dlt_states(np.random.default_rng(3), 60)
    if getattr(design, "graded", False):  # graded designs also read score totals: a DLT patient scores 1
        states = States.from_counts(states.n, states.tox, states.eff, states.both, current=states.current,
                                    last_n=states.last_n, last_tox=states.last_tox, tox_score=states.tox * 1.0,
                                    eff_score=states.eff * 0.5)
    dec = design.decide(states)
    assert np.all(dec.stop | (dec.dose <= states.current))
    if hasattr(design, "decide_tite"):  # pending data: the decision on what is observed so far
        out = design.decide_tite(states, _follow_up(states))
        go = ~out.decisions.stop & ~np.asarray(out.suspend, bool)
        assert go.sum() > 10
        assert np.all(out.decisions.dose[go] <= states.current[go])


# ---------------------------------------------------------------------------------------------
# each rule on hand-made states


def _ctx(n, tox, *, current, rec, last_n=3, last_tox=0, target=0.3, prob=None) -> RuleContext:
    s = States.from_counts(n, tox, current=current, last_n=last_n, last_tox=last_tox)
    return RuleContext(s, np.atleast_1d(np.asarray(rec, np.int64)), target,
                       None if prob is None else np.atleast_1d(np.asarray(prob, float)))


def _dec(rules, ctx, base=3) -> tuple[int, bool, int]:
    d = apply_rules(rules, ctx, base)
    return int(d.dose[0]), bool(d.stop[0]), int(d.reason[0])


def test_dlt_guard_all_or_k() -> None:
    ctx = _ctx([3, 3, 0, 0, 0], [0, 3, 0, 0, 0], current=1, rec=3, last_tox=3)
    assert _dec([DltGuard()], ctx)[0] == 1
    two = _ctx([3, 3, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=3, last_tox=2)
    assert _dec([DltGuard()], two)[0] == 3          # 2/3 is not all
    assert _dec([DltGuard(2)], two)[0] == 1         # k = 2
    assert _dec([DltGuard(5)], ctx)[0] == 1         # k above the cohort size: all still counts
    one = _ctx([1, 0, 0, 0, 0], [1, 0, 0, 0, 0], current=0, rec=2, last_n=1, last_tox=1)
    assert _dec([DltGuard()], one)[0] == 0          # a cohort of one with a DLT
    empty = _ctx([0, 0, 0, 0, 0], [0, 0, 0, 0, 0], current=0, rec=1, last_n=0, last_tox=0)
    assert _dec([DltGuard()], empty)[0] == 1        # no cohort yet: no limit
    down = _ctx([3, 3, 0, 0, 0], [0, 3, 0, 0, 0], current=1, rec=0, last_tox=3)
    assert _dec([DltGuard()], down)[0] == 0         # de-escalation is never limited


def test_deescalation_guard_uses_boins_lambda_d() -> None:
    lam = deescalation_boundary(0.3)
    assert lam == pytest.approx(BoinConfig(target=0.3, n_doses=2).lambda_d, abs=1e-15)
    assert deescalation_boundary(0.25, 0.35) == pytest.approx(BoinConfig(target=0.25, n_doses=2, p_tox=0.35).lambda_d)
    g = DeescalationGuard(lam)
    assert _dec([g], _ctx([3, 3, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=2))[0] == 1   # 2/3 > 0.3585
    assert _dec([g], _ctx([3, 6, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=2))[0] == 2   # 2/6 = 0.333
    assert _dec([g], _ctx([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=2))[0] == 2


def test_overdose_control_caps_stops_and_needs_min_n() -> None:
    oc = OverdoseControl(0.95)
    # 3/3 at dose 2 (target 0.3): Pr(p > 0.3 | Beta(4, 1)) = 1 - 0.3^4 = 0.9919 > 0.95: doses 2+ excluded
    assert _dec([oc], _ctx([3, 3, 0, 0, 0], [0, 3, 0, 0, 0], current=1, rec=2))[:2] == (0, False)
    assert _dec([oc], _ctx([3, 3, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=2))[:2] == (2, False)
    assert _dec([OverdoseControl(0.95, min_n=6)], _ctx([3, 3, 0, 0, 0], [0, 3, 0, 0, 0], current=1, rec=2))[0] == 2
    # the lowest dose excluded: stop, whatever the current dose
    assert _dec([oc], _ctx([3, 3, 0, 0, 0], [3, 0, 0, 0, 0], current=1, rec=2)) == (NO_DOSE, True, StopReason.ALL_TOXIC)
    # a stronger prior belief in safety: Beta(1, 9) keeps 3/3 below the threshold
    assert _dec([OverdoseControl(0.95, prior=(1.0, 9.0))], _ctx([3, 3, 0, 0, 0], [0, 3, 0, 0, 0], current=1,
                                                                  rec=2))[0] == 2
    # selection: an excluded dose is never selected, none when the lowest is excluded
    ctx = _ctx([[3, 3, 0, 0, 0], [3, 0, 0, 0, 0]], [[0, 3, 0, 0, 0], [3, 0, 0, 0, 0]], current=[1, 0], rec=[1, 0])
    assert select_with_rules([oc], ctx).tolist() == [0, NO_DOSE]


def test_beta_exceeds_equals_boins_elimination_table() -> None:
    d = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30))
    n = np.repeat(np.arange(3, 31), 31)
    y = np.tile(np.arange(31), 28)
    keep = y <= n
    n, y = n[keep], y[keep]
    mine = beta_exceeds(0.3, 0.95, y, n)
    boins = y >= d.boundaries.eliminate[n]
    np.testing.assert_array_equal(mine, boins)
    assert not beta_exceeds(0.01, 0.5, 0, 50)  # no DLT never qualifies (as BOIN::get.boundary)


def test_beta_safety_stop_at_the_lowest_dose() -> None:
    r = BetaSafetyStop(0.95)  # 3/3: Pr(p > 0.3 | Beta(4, 1)) = 0.992; 2/3: Pr(p > 0.3 | Beta(3, 2)) = 0.916
    stop = _ctx([3, 0, 0, 0, 0], [3, 0, 0, 0, 0], current=0, rec=0)
    assert _dec([r], stop) == (NO_DOSE, True, StopReason.ALL_TOXIC)
    assert not _dec([r], _ctx([3, 0, 0, 0, 0], [2, 0, 0, 0, 0], current=0, rec=0))[1]
    assert not _dec([BetaSafetyStop(0.95, min_n=6)], stop)[1]
    assert _dec([BetaSafetyStop(0.9)], _ctx([3, 0, 0, 0, 0], [2, 0, 0, 0, 0], current=0, rec=0))[1]
    later = _ctx([3, 3, 0, 0, 0], [3, 0, 0, 0, 0], current=1, rec=1)
    assert _dec([r], later)[1] and not _dec([BetaSafetyStop(0.95, at_lowest_only=True)], later)[1]


def test_model_safety_stop_and_min_n_hold() -> None:
    ctx = _ctx([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=1, prob=0.95)
    assert _dec([SafetyStop(0.9)], ctx)[2] == StopReason.ALL_TOXIC
    assert _dec([SafetyStop(0.9), MinSampleSize(30)], ctx)[2] == StopReason.ALL_TOXIC  # never held
    assert not _dec([SafetyStop(0.9, min_n=9)], ctx)[1]
    with pytest.raises(ValueError, match="prob_lowest_too_toxic"):
        SafetyStop(0.9).effect(_ctx([3, 0], [0, 0], current=0, rec=0))


def test_stop_at_n_recommended_or_staying_and_the_hold() -> None:
    ctx = _ctx([3, 9, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=1)
    assert _dec([StopAtN(9)], ctx) == (NO_DOSE, True, StopReason.N_AT_DOSE)
    assert not _dec([StopAtN(9)], _ctx([3, 9, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=2))[1]
    assert _dec([StopAtN(9, at="staying")], ctx)[1]
    # BOIN's n.earlystop: not where the rules move away from the current dose
    assert not _dec([StopAtN(9, at="staying")], _ctx([3, 9, 0, 0, 0], [0, 2, 0, 0, 0], current=1, rec=0))[1]
    # ... but where a limit keeps the dose (escalation blocked by the guardrail)
    blocked = _ctx([3, 9, 0, 0, 0], [0, 3, 0, 0, 0], current=1, rec=2, last_tox=3)
    assert _dec([StopAtN(9, at="staying"), DltGuard()], blocked)[1]
    assert not _dec([StopAtN(9), MinSampleSize(13)], ctx)[1]
    assert _dec([StopAtN(9), MinSampleSize(12)], ctx)[1]


def test_no_skip_coherence_start_up_and_titration() -> None:
    ctx = _ctx([3, 3, 3, 0, 0], [0, 0, 0, 0, 0], current=0, rec=4)
    assert _dec([NoSkip()], ctx)[0] == 1 and _dec([NoSkip("tried")], ctx)[0] == 3
    tox = _ctx([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=3, last_tox=1)
    assert _dec([Coherence()], tox)[0] == 1                       # 1/3 >= 0.3
    assert _dec([Coherence()], _ctx([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=3, last_tox=1,
                                    target=0.4))[0] == 3          # 1/3 < 0.4
    assert _dec([Coherence("any")], _ctx([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=3, last_tox=1,
                                         target=0.4))[0] == 1
    with pytest.raises(ValueError, match="target"):
        Coherence().effect(_ctx([3, 0], [0, 0], current=0, rec=1, target=None))
    assert _dec([StartUp((0, 0, 1), 3)], _ctx([3, 0, 0, 0, 0], [0, 0, 0, 0, 0], current=0, rec=3))[0] == 0
    # titration: one patient per dose without a DLT, then fill the dose where the first DLT occurred
    t = Titration(3)
    up = apply_rules([t], _ctx([1, 1, 0, 0, 0], [0, 0, 0, 0, 0], current=1, rec=1, last_n=1), 3)
    assert (int(up.dose[0]), int(up.cohort_size[0])) == (2, 1)
    fill = apply_rules([t], _ctx([1, 1, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=0, last_n=1, last_tox=1), 3)
    assert (int(fill.dose[0]), int(fill.cohort_size[0])) == (1, 2)
    after = apply_rules([t], _ctx([1, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, rec=1), 3)
    assert (int(after.dose[0]), int(after.cohort_size[0])) == (1, 3)
    with pytest.raises(ValueError, match="only one rule"):
        apply_rules([t, StartUp((0, 1), 3)], _ctx([1, 0], [0, 0], current=0, rec=0, last_n=1), 3)


def test_a_designs_own_stop_stands_and_safety_wins() -> None:
    ctx = _ctx([3, 3, 0, 0, 0], [3, 0, 0, 0, 0], current=1, rec=NO_DOSE)
    base = Decisions.go(np.array([0]), 3).with_stop(np.array([True]), StopReason.NO_ACCEPTABLE)
    assert _dec([MinSampleSize(30)], ctx, base) == (NO_DOSE, True, StopReason.NO_ACCEPTABLE)
    assert _dec([OverdoseControl(0.95)], ctx, base)[2] == StopReason.ALL_TOXIC   # safety first
    assert _dec([StopAtN(3)], ctx, base)[2] == StopReason.NO_ACCEPTABLE          # no dose: no count


def test_state_fields_and_the_rules_a_config_switches_on() -> None:
    assert state_fields([NoSkip(), OverdoseControl(0.9)]) == "counts"
    assert state_fields([NoSkip(), DltGuard()]) == "all"
    cfg = BoinConfig(target=0.3, n_doses=5, no_escalation_after_dlts=2, no_escalation_above_boundary=True,
                     overdose_control=0.9, lowest_dose_safety=0.8, no_skip="tried", coherence="any",
                     stop_n_at_dose=12, min_n=9)
    types = [type(r) for r in shared_rules(cfg, 0.3)]
    assert types == [DltGuard, DeescalationGuard, OverdoseControl, BetaSafetyStop, NoSkip, Coherence, StopAtN,
                     MinSampleSize]
    off = BoinConfig(target=0.3, n_doses=5, no_escalation_after_dlts="off")
    assert shared_rules(off, 0.3) == ()


@pytest.mark.parametrize("field,value,match", [
    ("no_escalation_after_dlts", "some", "'all', 'off'"),
    ("no_escalation_after_dlts", 0, "DLTs >= 1"),
    ("overdose_control", 1.5, "between 0 and 1"),
    ("lowest_dose_safety", 0.0, "between 0 and 1"),
    ("beta_prior", [1, 0], "beta_prior"),
    ("no_skip", "currnet", "did you mean"),
    ("min_n", 99, "max_n"),
    ("no_escalation_above_boundary", "yes", "true or false"),
])
def test_bad_rule_settings_are_one_clear_error(field: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        build_design("boin", {field: value}, STUDY)
    assert field in str(info.value).split(" ")[0] and "\n" not in str(info.value)


def test_a_rule_needing_a_target_on_a_design_without_one() -> None:
    with pytest.raises(ConfigError, match="target"):
        build_design("3+3", {"overdose_control": 0.95}, {"n_doses": 5})
    d = build_design("3+3", {"overdose_control": 0.95}, {"n_doses": 5, "target": 0.3})
    assert any(isinstance(r, OverdoseControl) for r in d.rules)


# ---------------------------------------------------------------------------------------------
# order-free: any permutation of any rules gives the same decisions


_ALL_RULES = [NoSkip(), NoSkip("tried"), Coherence(), Coherence("any"), DltGuard(), DltGuard(2),
              DeescalationGuard(0.36), OverdoseControl(0.9), OverdoseControl(0.8, min_n=6, prior=(0.5, 2.0)),
              BetaSafetyStop(0.8), BetaSafetyStop(0.7, at_lowest_only=True), SafetyStop(0.85),
              StartUp((0, 0, 1, 2), 3), Titration(3), StopAtN(6), StopAtN(9, at="staying"), MinSampleSize(12)]


def _random_batch(seed: int, s: int = 150) -> RuleContext:
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 4, size=(s, 5)) * 3
    n[rng.random(s) < 0.1] = 0
    single = rng.random(s) < 0.1
    n[single] = rng.integers(0, 2, size=(int(single.sum()), 5))
    cur = np.array([rng.choice(np.flatnonzero(r)) if r.any() else 0 for r in n])
    tox = rng.binomial(n, rng.uniform(0.05, 0.7, size=(s, 1)))
    ln = np.minimum(n[np.arange(s), cur], np.where(single, 1, 3))
    lt = np.minimum(rng.integers(0, 4, size=s), np.minimum(tox[np.arange(s), cur], ln))
    states = States.from_counts(n, tox, current=cur, last_n=ln, last_tox=lt)
    rec = rng.integers(0, 5, size=s)
    return RuleContext(states, rec, 0.3, rng.uniform(0, 1, size=s))


_BATCHES = [_random_batch(k) for k in range(3)]


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_any_order_of_any_rules_gives_the_same_decisions(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(range(len(_ALL_RULES))), min_size=1, max_size=8, unique=True))
    rules = [_ALL_RULES[i] for i in chosen]
    replacing = [r for r in rules if isinstance(r, (StartUp, Titration))]
    if len(replacing) > 1:
        rules.remove(replacing[0])
    perm = data.draw(st.permutations(rules))
    ctx = _BATCHES[data.draw(st.integers(0, len(_BATCHES) - 1))]
    with_base = data.draw(st.booleans())
    base: Decisions | int = 3
    if with_base:  # a design that stops by itself in some states
        stop = np.arange(ctx.states.n_states) % 7 == 0
        base = Decisions.go(ctx.recommended, 3).with_stop(stop, StopReason.NO_ACCEPTABLE)
    a, b = apply_rules(rules, ctx, base), apply_rules(list(perm), ctx, base)
    for field in ("dose", "stop", "reason", "cohort_size"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(select_with_rules(rules, ctx), select_with_rules(list(perm), ctx))


def test_every_rule_changes_something_in_the_batches() -> None:
    # the order-free test above is not vacuous: each rule alters some decision of the batches
    for rule in _ALL_RULES:
        changed = False
        other = [StopAtN(6)] if isinstance(rule, MinSampleSize) else []  # a hold needs a stop to hold
        for ctx in _BATCHES:
            a, b = apply_rules(other, ctx, 3), apply_rules([*other, rule], ctx, 3)
            changed |= bool(np.any((a.dose != b.dose) | (a.stop != b.stop) | (a.cohort_size != b.cohort_size)))
        assert changed, rule


# ---------------------------------------------------------------------------------------------
# BOIN's rules, moved into the shared layer, decide as the former ordered code did


def _former_boin_decide(design: BoinDesign, states: States) -> Decisions:
    """BoinDesign.decide as it was before the shared rules (commit 7b9d4fd), for reference."""
    c, b = design.config, design.boundaries
    d = states.current
    top = c.n_doses - 1
    m = np.minimum(states.at_current(states.n), b.n_max)
    y = states.at_current(states.tox)
    elim = design.eliminated(states)
    esc_ok = y <= b.escalate[m]
    deesc = y >= b.deescalate[m]
    nxt_elim = np.take_along_axis(elim, np.minimum(d + 1, top)[:, None], axis=1)[:, 0]
    nxt = np.where(esc_ok & (d < top), np.where(nxt_elim, d, d + 1), np.where(deesc & (d > 0), d - 1, d))
    out = Decisions.go(nxt, c.cohort_size)
    out = out.with_stop((d == 0) & elim[:, 0], StopReason.ALL_TOXIC)
    if c.extrasafe:
        n1 = np.minimum(states.n[:, 0], b.n_max)
        safe_stop = (d == 0) & (states.n[:, 0] >= 3) & (states.tox[:, 0] >= b.extrasafe_stop[n1])
        out = out.with_stop(safe_stop, StopReason.ALL_TOXIC)
    if c.n_earlystop <= c.max_n:
        keep = (~esc_ok & ~deesc) | ((d == 0) & deesc) | (((d == top) | nxt_elim) & esc_ok)
        out = out.with_stop((states.at_current(states.n) >= c.n_earlystop) & keep, StopReason.N_AT_DOSE)
    if c.titration and c.cohort_size > 1:
        single = np.all(states.n <= 1, axis=1)
        in_titration = single & (states.at_current(states.n) == 1)
        no_dlt = states.tox.sum(axis=1) == 0
        up = in_titration & no_dlt & (d < c.n_doses - 1)
        fill = in_titration & ~up
        dose = np.where(up, d + 1, np.where(fill, d, out.dose))
        size = np.where(up, 1, np.where(fill, c.cohort_size - 1, out.cohort_size))
        stop = out.stop & ~(up | fill)
        reason = np.where(stop, out.reason, np.int8(StopReason.CONTINUE)).astype(np.int8)
        out = Decisions(dose.astype(np.int64), stop, reason, size.astype(np.int64))
    return out


@pytest.mark.parametrize("params", [
    {}, {"extrasafe": True}, {"titration": True}, {"n_earlystop": 6},
    {"titration": True, "extrasafe": True, "n_earlystop": 9, "cutoff_eli": 0.9, "target": 0.2},
])
def test_boin_with_shared_rules_decides_as_the_former_ordered_rules(params: dict) -> None:
    cfg = {"target": 0.3, "n_doses": 4, "cohort_size": 3, "max_n": 15, "no_escalation_after_dlts": "off", **params}
    design = BoinDesign(BoinConfig(**cfg))
    t = dose_paths(design, 6 if params.get("titration") else 4)
    from escalade.simulations.paths import history_states, parse_history

    states = [history_states(parse_history(p, 4), 4) for p in t.table["path"] if p]
    batch = States.from_matrix(np.concatenate([s.matrix() for s in states]), 4)
    batch = batch.take(batch.total_n < design.max_n)
    new, old = design.decide(batch), _former_boin_decide(design, batch)
    assert batch.n_states > 50
    for field in ("dose", "stop", "reason", "cohort_size"):
        np.testing.assert_array_equal(getattr(new, field), getattr(old, field))


def test_methods_sentence_for_the_guardrails() -> None:
    from escalade.design.registry import config_to_dict
    from escalade.design.rules import describe_guardrails

    eff = describe_guardrails(config_to_dict(_by_name("EffTox").config))
    assert "every patient had a DLT" in eff and "Pr(DLT rate > 0.35 | data) > 0.95" in eff and "0.419" in eff
    off = config_to_dict(build_design("boin", {"no_escalation_after_dlts": "off"}, STUDY).config)
    assert describe_guardrails(off) == ""
    assert describe_guardrails({"target": 0.3}) == ""  # a manifest written before the shared rules
