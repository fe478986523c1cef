"""TITE-BOIN12 (Zhou et al. 2022): pending-data rules, and BOIN12 exactly when every outcome is complete."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from escalade.design.base import NO_DOSE, FollowUp, States, StopReason
from escalade.design.boin12 import Boin12Config, Boin12Design
from escalade.design.registry import build_design
from escalade.design.tite_boin12 import TiteBoin12Config, TiteBoin12Design, pending_summary
from escalade.scenarios.errors import ConfigError
from escalade.scenarios.study import Timing
from escalade.simulations.timed import DAYS_PER_MONTH, pending_data, simulate_timed

KW = dict(target=0.35, n_doses=5, phi_e=0.25, u11=60.0, u00=40.0, max_n=30)
P_TOX = [0.05, 0.12, 0.30, 0.45, 0.60]
P_EFF = [0.15, 0.35, 0.55, 0.65, 0.70]


def _random_complete(rng: np.random.Generator, s: int, n_pat: int) -> tuple[States, FollowUp]:
    """Random trials whose every patient has complete toxicity and efficacy outcomes."""
    n_treated = rng.integers(1, n_pat + 1, size=s)
    slot = np.arange(n_pat)[None, :] < n_treated[:, None]
    top = rng.integers(0, 5, size=s)
    dose = np.where(slot, rng.integers(0, 5, size=(s, n_pat)) % (top[:, None] + 1), NO_DOSE)
    tox = slot & (rng.random((s, n_pat)) < rng.uniform(0, 0.7, (s, 1)))
    eff = slot & (rng.random((s, n_pat)) < rng.uniform(0, 0.8, (s, 1)))
    frac = np.where(tox, rng.uniform(0.01, 1.0, (s, n_pat)), 1.0)
    efr = np.where(eff, rng.uniform(0.01, 1.0, (s, n_pat)), 1.0)
    last_start = np.maximum(n_treated - 3, 0)
    current = dose[np.arange(s), n_treated - 1]
    last_n = n_treated - last_start
    return pending_data(dose, tox, frac, eff, n_doses=5, current=current, last_n=last_n, last_start=last_start,
                        eff_fraction=efr)


@pytest.mark.parametrize("selection", ["software", "paper"])
def test_complete_data_equals_boin12_decision_for_decision(selection) -> None:
    states, follow = _random_complete(np.random.default_rng(16), 4000, 24)
    tite = TiteBoin12Design(TiteBoin12Config(**KW, selection=selection, n_earlystop=12))
    b12 = Boin12Design(Boin12Config(**KW, selection=selection, n_earlystop=12))
    got = tite.decide_tite(states, follow)
    want = b12.decide(states)
    assert not got.suspend.any()
    np.testing.assert_array_equal(got.decisions.stop, want.stop)
    np.testing.assert_array_equal(got.decisions.reason, want.reason)
    go = ~want.stop
    np.testing.assert_array_equal(got.decisions.dose[go], want.dose[go])
    assert (want.reason == StopReason.NO_ACCEPTABLE).any() and want.stop.mean() < 0.9  # the draws reach both
    np.testing.assert_array_equal(tite.select(states), b12.select(states))


def test_simulation_equals_boin12_when_windows_end_before_the_next_arrival() -> None:
    # one patient every 100 days: the 28-day DLT window and the 90-day response assessment are complete at
    # every decision, so the pending-data engine must reproduce BOIN12 trial for trial
    timing = Timing(accrual="fixed", rate_per_month=DAYS_PER_MONTH / 100)
    out = {}
    for name, design in (("b12", Boin12Design(Boin12Config(**KW))), ("tite", TiteBoin12Design(TiteBoin12Config(**KW)))):
        out[name] = simulate_timed(design, P_TOX, P_EFF, timing=timing, dlt_window_days=28, response_days=90,
                                   n_trials=600, seed=12)
    a, b = out["b12"], out["tite"]
    for attr in ("selected", "reason", "n", "tox", "eff", "both", "cohorts"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    assert b.suspensions.sum() == 0
    assert len(np.unique(a.selected)) >= 4  # not a degenerate scenario


def test_approximated_likelihood_by_hand() -> None:
    # Three patients at dose 1: P1 DLT at 20% of the window, no response (efficacy complete); P2 no DLT (window
    # complete), response; P3 half-way through both windows. ESS_T = 2 + 0.5, p_T = 1/2.5 = 0.4; the same for
    # efficacy. P3: Pr(DLT | none yet) = 0.4 * 0.5 / (1 - 0.4 * 0.5) = 0.25, likewise response; its expected
    # utility 60 * 0.0625 + 100 * 0.1875 + 40 * 0.5625 = 45. x = (0 + 100 + 45)/100 = 1.45 quasi-events over n = 3.
    cfg = TiteBoin12Config(**KW)
    s = States.from_counts([[3, 0, 0, 0, 0]], [[1, 0, 0, 0, 0]], [[1, 0, 0, 0, 0]], [[0, 0, 0, 0, 0]], current=0)
    f = FollowUp([[0, 0, 0]], [[True, False, False]], [[0.2, 1.0, 0.5]], [[False, True, False]], [[1.0, 1.0, 0.5]])
    ps = pending_summary(cfg, s, f)
    assert ps.ess_tox[0, 0] == pytest.approx(2.5) and ps.ess_eff[0, 0] == pytest.approx(2.5)
    assert ps.p_tox[0, 0] == pytest.approx(0.4) and ps.p_eff[0, 0] == pytest.approx(0.4)
    assert ps.quasi_events[0, 0] == pytest.approx(1.45)
    assert ps.pending_tox[0, 0] == 1 and ps.pending_eff[0, 0] == 1
    ex = TiteBoin12Design(cfg).explain_tite(s, f)
    # benchmark 70.5 (Lin et al. 2020 Table 3 setting): Pr(u > 0.705 | Beta(1 + 1.45, 1 + 3 - 1.45))
    assert ex.per_dose["desirability"][0] == pytest.approx(special.betaincc(2.45, 2.55, 0.705))
    np.testing.assert_allclose(ex.weights, [1.0, 1.0, 0.5])
    # an untried dose keeps BOIN12's prior desirability 1 - u_b / 100
    assert ex.per_dose["desirability"][1] == pytest.approx(1 - 0.705)


def _one(n_pat_at: list[tuple[int, bool, float, bool, float]], current: int) -> tuple[States, FollowUp]:
    dose, dlt, fr, eff, efr = (np.array([[p[i] for p in n_pat_at]]) for i in range(5))
    last_start = np.array([max(len(n_pat_at) - 3, 0)])
    return pending_data(dose, dlt, fr, eff, n_doses=5, current=np.array([current]),
                        last_n=np.array([len(n_pat_at) - last_start[0]]), last_start=last_start, eff_fraction=efr)


def test_accrual_suspension_on_pending_toxicity_or_efficacy() -> None:
    d = TiteBoin12Design(TiteBoin12Config(**KW))
    done = [(0, False, 1.0, True, 1.0)] * 3  # dose 1: three complete patients with a response
    # dose 2: 2 of 3 with a pending DLT outcome (> 50%): suspend
    s, f = _one(done + [(1, False, 1.0, False, 0.4), (1, False, 0.5, False, 0.3), (1, False, 0.2, False, 0.1)], 1)
    assert d.decide_tite(s, f).suspend[0]
    # 1 of 3 pending for toxicity, but 2 of 3 still awaiting the response assessment: suspend
    s, f = _one(done + [(1, False, 1.0, True, 1.0), (1, False, 1.0, False, 0.3), (1, False, 0.2, False, 0.1)], 1)
    assert d.decide_tite(s, f).suspend[0]
    # one pending for each: decide
    s, f = _one(done + [(1, False, 1.0, True, 1.0), (1, False, 1.0, True, 1.0), (1, False, 0.2, False, 0.1)], 1)
    out = d.decide_tite(s, f)
    assert not out.suspend[0] and not out.decisions.stop[0]


def test_observed_dlts_at_the_boundary_de_escalate_without_waiting() -> None:
    # dose 2: 4 DLTs among 9 (>= BOIN's de-escalation count 4 for phi_T = 0.35) and 5 DLT outcomes pending:
    # pending outcomes can only add DLTs, so the design de-escalates instead of suspending
    d = TiteBoin12Design(TiteBoin12Config(**KW))
    pts = [(0, False, 1.0, True, 1.0)] * 3 + [(1, True, 0.3, True, 1.0)] * 4 + [(1, False, 0.6, False, 0.2)] * 5
    s, f = _one(pts, 1)
    out = d.decide_tite(s, f)
    assert not out.suspend[0] and not out.decisions.stop[0] and out.decisions.dose[0] == 0


def test_pending_responses_count_for_more_than_non_responses() -> None:
    # the same patients, the last two pending for efficacy versus assessed without a response: the pending ones
    # carry the estimated response probability, so dose 2 is more desirable with them pending
    d = TiteBoin12Design(TiteBoin12Config(**KW))
    base = [(0, False, 1.0, False, 1.0)] * 3 + [(1, False, 1.0, True, 1.0)] * 4
    s1, f1 = _one(base + [(1, False, 1.0, False, 0.5)] * 2, 1)
    s2, f2 = _one(base + [(1, False, 1.0, False, 1.0)] * 2, 1)
    des1 = d.explain_tite(s1, f1).per_dose["desirability"][1]
    des2 = d.explain_tite(s2, f2).per_dose["desirability"][1]
    assert des1 > des2
    # and with the windows complete the quasi-events are BOIN12's counts: 4 responders without DLT, 2 neither
    assert pending_summary(d.config, s2, f2).quasi_events[0, 1] == pytest.approx((4 * 100 + 2 * 40) / 100)


def test_shorter_than_boin12_when_responses_take_three_months() -> None:
    # CAR-T timing: 1.5 patients a month, DLT window 28 days, response at day 90; same virtual patients
    timing = Timing(accrual="poisson", rate_per_month=1.5, dlt_onset="early")
    res = {name: simulate_timed(design, P_TOX, P_EFF, timing=timing, dlt_window_days=28, response_days=90,
                                n_trials=400, seed=5)
           for name, design in (("b12", Boin12Design(Boin12Config(**KW))),
                                ("tite", TiteBoin12Design(TiteBoin12Config(**KW))))}
    diff = res["b12"].duration - res["tite"].duration
    assert diff.mean() > 100 and diff.mean() > 5 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert res["tite"].suspensions.mean() > 0  # the suspension rule is exercised


def test_registry_and_config_errors() -> None:
    study = {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 30, "start_dose": 0}
    d = build_design("tite_boin12", {"phi_e": 0.3}, study)
    assert isinstance(d, TiteBoin12Design) and d.config.selection == "software"
    with pytest.raises(ConfigError, match="max_pending"):
        TiteBoin12Config(**KW, max_pending=1.0)
    with pytest.raises(ConfigError, match="selection"):
        TiteBoin12Config(**KW, selection="web")


_CSV = """id,dose_level,dlt,response,enrol_date,dlt_date,response_date
P01,1,0,0,2025-01-06,,2025-04-06
P02,1,0,1,2025-01-13,,2025-03-20
P03,1,0,0,2025-01-20,,2025-04-20
P04,2,0,{r4},2025-03-24,,{d4}
P05,2,0,{r5},2025-03-31,,
P06,2,0,,2025-04-07,,
"""


def test_next_dose_from_a_dated_patients_file(tmp_path) -> None:
    from escalade.simulations.conduct import next_dose
    from escalade.simulations.patients_csv import PatientDataError
    import datetime as dt

    study = {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 30, "start_dose": 0}
    design = build_design("tite_boin12", {"phi_e": 0.3}, study)
    path = tmp_path / "patients.csv"
    # 2025-05-20: every DLT window at dose 2 is over, no response assessed yet (day 57, 50, 43 of 90): suspend
    path.write_text(_CSV.format(r4="", d4="", r5=""))
    res = next_dose(design, path, as_of=dt.date(2025, 5, 20), dlt_window_days=28, response_days=90)
    assert res.suspend and res.next_dose is None
    assert res.details["pending_eff_at_current"] == 3 and res.details["pending_tox_at_current"] == 0
    assert any("await the response assessment" in n for n in res.notes)
    # 2025-07-01: P04's assessment (day 90) is past with the response still blank: one clear error
    with pytest.raises(PatientDataError, match="response"):
        next_dose(design, path, as_of=dt.date(2025, 7, 1), dlt_window_days=28, response_days=90)
    # with P04 (response on day 60) and P05 (no response) recorded, only P06 is pending: a decision, the same
    # as the design's on the follow-up built by hand (P04 responded at day 60 of 90; P06 is at day 85 of 90)
    path.write_text(_CSV.format(r4="1", d4="2025-05-23", r5="0"))
    res = next_dose(design, path, as_of=dt.date(2025, 7, 1), dlt_window_days=28, response_days=90)
    assert not res.suspend and res.next_dose is not None
    f = FollowUp([[0, 0, 0, 1, 1, 1]], [[False] * 6], [[1.0] * 6], [[False, True, False, True, False, False]],
                 [[1.0, 1.0, 1.0, 60 / 90, 1.0, 85 / 90]])
    s = States.from_counts([[3, 3, 0, 0, 0]], [[0, 0, 0, 0, 0]], [[1, 1, 0, 0, 0]], [[0, 0, 0, 0, 0]], current=1,
                           last_n=3, last_tox=0)
    want = design.decide_tite(s, f)
    assert not want.suspend[0] and res.next_dose == int(want.decisions.dose[0]) + 1
    assert res.details["pending_eff_at_current"] == 1


@pytest.mark.parametrize("module", ["boin12", "tite_boin12", "isotonic"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"escalade.design.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_admissibility_rests_on_what_pending_outcomes_cannot_overturn() -> None:
    from scipy import stats

    d = TiteBoin12Design(TiteBoin12Config(**KW))
    # dose 1: two early DLTs, the third patient 10% into the DLT window; nobody assessed for response yet.
    # On the approximated likelihood (ESS 2.1) Pr(p_T > 0.35) would exceed 0.95 and stop the trial; on the
    # observed DLTs among the 3 treated it is 1 - I_0.35(3, 2) = 0.87: not eliminated. No assessed patient:
    # no futility either.
    s, f = _one([(0, True, 0.05, False, 0.1), (0, True, 0.08, False, 0.1), (0, False, 0.1, False, 0.1)], 0)
    assert stats.beta.sf(0.35, 3, 1.1) > 0.95 > stats.beta.sf(0.35, 3, 2)
    ex = d.explain_tite(s, f)
    assert ex.per_dose["admissible"][0]
    out = d.decide_tite(s, f)
    # 2/3 observed DLTs reach BOIN's de-escalation count: no waiting; at the lowest dose that means stay
    assert not out.suspend[0] and not out.decisions.stop[0] and out.decisions.dose[0] == 0
    # three assessed non-responders make dose 1 futile (Pr(p_E < 0.25 | 0/3) = 1 - 0.75^4 = 0.68 < 0.9: not
    # yet); nine do (1 - 0.75^10 = 0.94)
    pts = [(0, False, 1.0, False, 1.0)] * 9
    s, f = _one(pts, 0)
    assert not d.explain_tite(s, f).per_dose["admissible"][0]


# ---------------------------------------------------------------------------------------------
# speed paths (issue 18): the same numbers as the direct formulations


def _random_pending(rng: np.random.Generator, s: int, n_pat: int) -> tuple[States, FollowUp]:
    """Random trials with patients still in toxicity and efficacy follow-up (fractions below 1)."""
    n_treated = rng.integers(1, n_pat + 1, size=s)
    slot = np.arange(n_pat)[None, :] < n_treated[:, None]
    dose = np.where(slot, rng.integers(0, 5, size=(s, n_pat)) % (rng.integers(0, 5, size=(s, 1)) + 1), NO_DOSE)
    frac = np.where(slot, np.where(rng.random((s, n_pat)) < 0.5, 1.0, rng.uniform(0, 1, (s, n_pat))), 0.0)
    efr = np.where(slot, np.where(rng.random((s, n_pat)) < 0.4, 1.0, rng.uniform(0, 1, (s, n_pat))), 0.0)
    tox = slot & (rng.random((s, n_pat)) < 0.3)
    eff = slot & (rng.random((s, n_pat)) < 0.5)
    last_start = np.maximum(n_treated - 3, 0)
    return pending_data(dose, tox, frac, eff, n_doses=5, current=dose[np.arange(s), n_treated - 1],
                        last_n=n_treated - last_start, last_start=last_start, eff_fraction=efr)


def _pending_summary_one_hot(c: TiteBoin12Config, states: States, f: FollowUp) -> dict[str, np.ndarray]:
    """The per-dose sums as a sum over patients of one-hot ``(S, N, D)`` arrays (the earlier formulation)."""
    from escalade.design.boin12 import _quasi_events

    treated = f.treated
    onehot = ((f.dose[:, :, None] == np.arange(c.n_doses)) & treated[:, :, None]).astype(float)

    def per(v: np.ndarray) -> np.ndarray:
        return (onehot * v.astype(float)[:, :, None]).sum(axis=1)

    dlt, effo = f.dlt & treated, f.eff & treated
    pend_t, pend_e = f.pending, f.pending_eff
    w_t, w_e = np.where(pend_t, f.fraction, 0.0), np.where(pend_e, f.eff_fraction, 0.0)
    y_t, y_e = per(dlt), per(effo)
    ess_t, ess_e = per(treated & ~pend_t) + per(w_t), per(treated & ~pend_e) + per(w_e)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t = np.where(ess_t > 0, y_t / ess_t, c.target)
        p_e = np.where(ess_e > 0, y_e / ess_e, c.phi_e)
    dose = np.maximum(f.dose, 0)
    pt_i, pe_i = np.take_along_axis(p_t, dose, axis=1), np.take_along_axis(p_e, dose, axis=1)
    e_t = np.where(dlt, 1.0, np.where(pend_t, pt_i * (1 - w_t) / (1 - pt_i * w_t), 0.0))
    e_e = np.where(effo, 1.0, np.where(pend_e, pe_i * (1 - w_e) / (1 - pe_i * w_e), 0.0))
    u_i = (c.u11 * e_t * e_e + 100.0 * (1 - e_t) * e_e + c.u00 * (1 - e_t) * (1 - e_e)) / 100.0
    open_i = (pend_t | pend_e) & treated
    done = treated & ~open_i
    x_done = _quasi_events(c, per(done), per(done & dlt), per(done & effo), per(done & dlt & effo))
    x = np.where(per(open_i) > 0, x_done + per(np.where(open_i, u_i, 0.0)),
                 _quasi_events(c, states.n, states.tox, states.eff, states.both))
    return {"n": per(treated), "ess_tox": ess_t, "p_tox": p_t, "ess_eff": ess_e, "p_eff": p_e, "quasi_events": x,
            "pending_tox": per(pend_t), "pending_eff": per(pend_e)}


def test_pending_summary_equals_the_one_hot_sums_bit_for_bit() -> None:
    cfg = TiteBoin12Config(**KW)
    states, f = _random_pending(np.random.default_rng(11), 400, 24)
    ps = pending_summary(cfg, states, f)
    ref = _pending_summary_one_hot(cfg, states, f)
    assert (ps.pending_tox > 0).any() and (ps.pending_eff > 0).any()
    for k, v in ref.items():
        assert np.array_equal(np.asarray(getattr(ps, k), float), v), k


def test_distinct_evaluation_equals_direct_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    import escalade.design.boin12 as b12

    # the incomplete beta once per distinct argument pair, scattered back, is the element-wise call itself
    rng = np.random.default_rng(5)
    a = rng.integers(1, 8, (300, 5)).astype(float) + np.where(rng.random((300, 5)) < 0.3, rng.random((300, 5)), 0)
    b = rng.integers(1, 8, (300, 5)).astype(float)
    assert np.array_equal(b12._on_distinct(lambda x, y: special.betaincc(x, y, 0.7), a, b),
                          special.betaincc(a, b, 0.7))
    # the elimination probabilities from the table of counts (and beyond it) are the calls themselves
    n = rng.integers(0, 90, (200, 5)).astype(float)
    y = np.floor(n * rng.random((200, 5)))
    assert np.array_equal(b12._count_lookup("sf", 0.3, y, n), special.betaincc(y + 1, n - y + 1, 0.3))
    small = n <= 40
    assert np.array_equal(b12._count_lookup("cdf", 0.25, y[small], n[small]),
                          special.betainc(y[small] + 1, n[small] - y[small] + 1, 0.25))
    # and the design's decisions and evidence are those of the direct calls
    d = TiteBoin12Design(TiteBoin12Config(**KW))
    states, f = _random_pending(np.random.default_rng(12), 300, 24)
    fast = d.decide_tite(states, f)
    ev_fast = d._evidence(states, pending_summary(d.config, states, f))[0]
    monkeypatch.setattr(b12, "_on_distinct", lambda fn, x, y: fn(*np.broadcast_arrays(np.asarray(x, float),
                                                                                      np.asarray(y, float))))
    slow = d.decide_tite(states, f)
    ev_slow = d._evidence(states, pending_summary(d.config, states, f))[0]
    assert np.array_equal(fast.suspend, slow.suspend)
    for k in ("dose", "stop", "reason", "cohort_size"):
        assert np.array_equal(getattr(fast.decisions, k), getattr(slow.decisions, k)), k
    for k in ("desirability", "tox_eliminated", "futile", "deescalate", "escalate_ok"):
        assert np.array_equal(getattr(ev_fast, k), getattr(ev_slow, k)), k
    # BOIN12 on complete data: the same
    b = Boin12Design(Boin12Config(**KW))
    sc, _ = _random_complete(np.random.default_rng(13), 300, 24)
    monkeypatch.undo()
    fast_b = (b.decide(sc), b.select(sc), b.desirability(sc), b.admissible(sc))
    monkeypatch.setattr(b12, "_on_distinct", lambda fn, x, y: fn(*np.broadcast_arrays(np.asarray(x, float),
                                                                                      np.asarray(y, float))))
    slow_b = (b.decide(sc), b.select(sc), b.desirability(sc), b.admissible(sc))
    assert np.array_equal(fast_b[0].dose, slow_b[0].dose) and np.array_equal(fast_b[0].reason, slow_b[0].reason)
    for x, y in zip(fast_b[1:], slow_b[1:]):
        assert np.array_equal(x, y)
