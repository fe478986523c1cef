"""The time-aware engine: accrual, onset, waiting, staggering, pending-data decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from escalade.design.base import States
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.design.tite_boin import TiteBoinConfig, TiteBoinDesign
from escalade.design.tite_crm import TiteCrmConfig, TiteCrmDesign, titecrm
from escalade.scenarios.study import Timing
from escalade.simulations.patients import Patients, draw_patients
from escalade.simulations.timed import (DAYS_PER_MONTH, arrival_days, onset_fraction, run_timed_trials,
                                        simulate_timed)
from escalade.simulations.trial import run_trials

P_TOX = np.array([0.05, 0.12, 0.30, 0.45, 0.60])
P_EFF = np.array([0.10, 0.30, 0.50, 0.60, 0.60])
BOIN = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30))
TPT = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=5))
FIELDS = ("selected", "reason", "n", "tox", "eff", "both", "cohorts")


def _patients(n: int, *, tox: float = 0.99, onset: float = 0.5) -> Patients:
    """One trial of ``n`` patients with fixed latent uniforms (u_tox 0.99: no DLT at any dose)."""
    u = np.full((1, n), tox)
    return Patients(u, np.full((1, n), 0.99), np.full((1, n), onset), np.zeros((1, n)))


def test_arrival_processes() -> None:
    u = draw_patients(5, 1, 0, 4000, 32).u_arrival
    gap = DAYS_PER_MONTH / 2.0
    pois = arrival_days(Timing(accrual="poisson", rate_per_month=2.0), u)
    gaps = np.diff(pois, axis=1, prepend=0.0)
    assert np.all(gaps >= 0)
    # exponential gaps: mean gap within 4 standard errors (sd of an exponential = its mean)
    assert abs(gaps.mean() - gap) < 4 * gap / np.sqrt(gaps.size)
    fixed = arrival_days(Timing(accrual="fixed", rate_per_month=2.0), u[:2, :4])
    np.testing.assert_allclose(fixed, [[gap, 2 * gap, 3 * gap, 4 * gap]] * 2)
    lst = arrival_days(Timing(accrual="list", rate_per_month=2.0, arrival_days=(0.0, 3.0)), u[:1, :4])
    np.testing.assert_allclose(lst, [[0.0, 3.0, 3.0 + gap, 3.0 + 2 * gap]])


@pytest.mark.parametrize("dist,cdf", [
    ("uniform", lambda x: x),
    ("early", lambda x: 1 - (1 - x) ** 3),   # Beta(1, 3)
    ("late", lambda x: x ** 3),              # Beta(3, 1)
])
def test_onset_quantiles_invert_the_beta_cdf(dist: str, cdf) -> None:
    u = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(cdf(onset_fraction(u, dist)), u, atol=1e-12)


@pytest.mark.parametrize("design", [BOIN, TPT], ids=["boin", "3+3"])
@pytest.mark.parametrize("timing", [
    Timing(accrual="poisson", rate_per_month=1.5),
    Timing(accrual="fixed", rate_per_month=30.0, dlt_onset="early"),
    Timing(accrual="poisson", rate_per_month=3.0, enrolment="stagger", stagger_days=7.0, dlt_onset="late"),
], ids=["poisson", "fixed-fast", "stagger"])
def test_complete_data_designs_decide_as_the_untimed_engine(design, timing) -> None:
    pts = draw_patients(9, 4, 0, 400, 30, 0.2)
    a = run_trials(design, P_TOX, P_EFF, pts)
    b = run_timed_trials(design, P_TOX, P_EFF, pts, timing, dlt_window_days=28, response_days=90)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    total = b.n.sum(axis=1)
    # waiting never speeds a trial up: it lasts at least from the first to the last arrival
    # among its patients plus one window
    arr = arrival_days(timing, pts.u_arrival)
    last = np.take_along_axis(arr, (total - 1)[:, None], axis=1)[:, 0]
    assert np.all(b.duration >= last - arr[:, 0] + 28 - 1e-9)
    assert np.all((b.suspensions >= 0) & (b.suspensions <= total))


def test_cohort_waiting_by_hand() -> None:
    # BOIN, cohorts of 3, arrivals on days 0, 10, 20, 30, 40, 50, no DLT, window 28.
    # Cohort 1 dosed on days 0, 10, 20; complete on day 48. Cohort 2 (escalated to DL2):
    # the day-30 and day-40 arrivals wait until day 48 (2 suspensions), day 50 dosed on arrival.
    # Duration = last dosing (50) + 28 - first dosing (0) = 78.
    design = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=6))
    timing = Timing(accrual="list", arrival_days=(0, 10, 20, 30, 40, 50), rate_per_month=1.0)
    out = run_timed_trials(design, P_TOX, P_EFF, _patients(16), timing, dlt_window_days=28, response_days=90)
    assert out.n[0].tolist() == [3, 3, 0, 0, 0]
    assert out.suspensions[0] == 2
    assert out.duration[0] == pytest.approx(78.0)
    # Staggering 7 days at each new dose: cohort 1's sentinel on day 0, the others on arrival
    # (10, 20 > 7). Cohort 2 is DL2's first: sentinel on day 48, the others wait to day 55.
    stag = Timing(accrual="list", arrival_days=(0, 10, 20, 30, 40, 50), rate_per_month=1.0,
                  enrolment="stagger", stagger_days=7.0)
    out = run_timed_trials(design, P_TOX, P_EFF, _patients(16), stag, dlt_window_days=28, response_days=90)
    assert out.suspensions[0] == 3
    assert out.duration[0] == pytest.approx(55.0 + 28.0)
    # stagger_scope="cohort": every cohort has a sentinel (same here: both cohorts start a new dose)
    out = run_timed_trials(design, P_TOX, P_EFF, _patients(16), stag, dlt_window_days=28, response_days=90,
                           stagger_scope="cohort")
    assert out.duration[0] == pytest.approx(83.0)


def test_a_dlt_completes_a_patient_at_onset() -> None:
    # All three patients of cohort 1 have DLTs at 0.25 of the window (day 7 after dosing), so the
    # cohort is complete on day 2 + 7 = 9 (not 2 + 28): the next arrival (day 30) is not delayed.
    design = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=6))
    timing = Timing(accrual="list", arrival_days=(0, 1, 2, 30, 40, 50), rate_per_month=1.0)
    out = run_timed_trials(design, P_TOX, P_EFF, _patients(16, tox=0.0, onset=0.25), timing,
                           dlt_window_days=28, response_days=90)
    assert out.tox[0].sum() == 3 and out.suspensions[0] == 0


@dataclass(frozen=True, slots=True)
class _BoinWithEfficacy:
    """BOIN's rules, but declared as using efficacy (so the engine waits for responses)."""

    inner: BoinDesign
    kind: ClassVar[str] = "boin_eff"
    enumerable: ClassVar[bool] = True
    uses_efficacy: ClassVar[bool] = True
    memoise: ClassVar[bool] = False

    config = property(lambda self: self.inner.config)
    n_doses = property(lambda self: self.inner.n_doses)
    max_n = property(lambda self: self.inner.max_n)

    def start(self):
        return self.inner.start()

    def decide(self, states: States):
        return self.inner.decide(states)

    def select(self, states: States):
        return self.inner.select(states)


def test_efficacy_designs_wait_for_the_response_assessment() -> None:
    # Same trial as the hand-worked one, but decisions need the day-90 responses: cohort 2 waits
    # until day 20 + 90 = 110 (all three of its patients delayed); follow-up ends 90 days after
    # the last dosing (110): duration 200.
    design = _BoinWithEfficacy(BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=6)))
    timing = Timing(accrual="list", arrival_days=(0, 10, 20, 30, 40, 50), rate_per_month=1.0)
    out = run_timed_trials(design, P_TOX, P_EFF, _patients(16), timing, dlt_window_days=28, response_days=90)
    assert out.suspensions[0] == 3
    assert out.duration[0] == pytest.approx(200.0)


def test_tite_boin_suspends_accrual_by_hand() -> None:
    # TITE-BOIN, target 0.3, arrivals on days 0..5, no DLT, window 28. Cohort 1 dosed on days
    # 0, 1, 2. Day 3: 3 of 3 pending (> 50%): suspend to the next outcome (day 28: patient 1's
    # window ends; 2 of 3 pending, still > 50%), then day 29 (1 of 3 pending): y = 0, so escalate.
    # Patients 4-6 (arrived days 3, 4, 5) are dosed on day 29: 3 suspensions; duration 29 + 28.
    design = TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5, max_n=6))
    timing = Timing(accrual="list", arrival_days=(0, 1, 2, 3, 4, 5), rate_per_month=1.0)
    out = run_timed_trials(design, P_TOX, P_EFF, _patients(16), timing, dlt_window_days=28, response_days=90)
    assert out.n[0].tolist() == [3, 3, 0, 0, 0]
    assert out.suspensions[0] == 3
    assert out.duration[0] == pytest.approx(57.0)


def test_batched_equals_one_at_a_time() -> None:
    tb = TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5, max_n=30))
    timing = Timing(accrual="poisson", rate_per_month=4.0, dlt_onset="late")
    pts = draw_patients(2, 8, 0, 60, 30)
    full = run_timed_trials(tb, P_TOX, P_EFF, pts, timing, dlt_window_days=28, response_days=90)
    for i in (0, 17, 42):
        one = Patients(*(a[i:i + 1] for a in (pts.u_tox, pts.u_eff, pts.u_onset, pts.u_arrival)))
        o = run_timed_trials(tb, P_TOX, P_EFF, one, timing, dlt_window_days=28, response_days=90)
        for f in FIELDS + ("duration", "suspensions"):
            np.testing.assert_array_equal(getattr(o, f)[0], getattr(full, f)[i], err_msg=f)


def test_tite_crm_in_the_engine_equals_a_direct_titesim_replica() -> None:
    # dfcrm::titesim's one-stage loop written out per patient (fixed accrual every 14 days,
    # uniform onset on the 28-day window, restrict = TRUE), on the same latent patients.
    sk = [0.08397349130562429, 0.15674102114263633, 0.25, 0.3545004276151119, 0.4603431110853069]
    pi = np.array([0.05, 0.12, 0.25, 0.40, 0.55])
    design = TiteCrmDesign(TiteCrmConfig(skeleton=tuple(sk), target=0.25, n_doses=5, max_n=24))
    timing = Timing(accrual="fixed", rate_per_month=DAYS_PER_MONTH / 14)
    pts = draw_patients(3, 0, 0, 40, 24)
    out = run_timed_trials(design, pi, np.zeros(5), pts, timing, dlt_window_days=28, response_days=90)
    assert np.all(out.suspensions == 0) and np.allclose(out.duration, 23 * 14 + 28)
    for r in range(40):
        cur, lev, y, u, arr = 0, [], [], [], []
        for i in range(24):
            t = 14.0 * (i + 1)
            if i:
                seen = [bool(y[j] and arr[j] + u[j] <= t) for j in range(i)]
                fu = [min(u[j] if seen[j] else t - arr[j], 28.0) for j in range(i)]
                cur = min(titecrm(lev, seen, fu, 28.0, skeleton=sk, target=0.25).mtd, cur + 1)
            lev.append(cur)
            arr.append(t)
            y.append(bool(pts.u_tox[r, i] < pi[cur]))
            u.append(28.0 * pts.u_onset[r, i])
        assert out.n[r].tolist() == np.bincount(lev, minlength=5).tolist()
        assert out.selected[r] == titecrm(lev, y, [28.0] * 24, 28.0, skeleton=sk, target=0.25).mtd


def test_simulate_timed_is_deterministic_and_needs_arrivals() -> None:
    tb = TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5, max_n=18))
    timing = Timing(accrual="poisson", rate_per_month=3.0)
    a = simulate_timed(tb, P_TOX, timing=timing, dlt_window_days=28, n_trials=50, seed=4, chunk_size=20)
    b = simulate_timed(tb, P_TOX, timing=timing, dlt_window_days=28, n_trials=50, seed=4, chunk_size=20)
    np.testing.assert_array_equal(a.duration, b.duration)
    assert a.trial.tolist() == list(range(50))
    pts = draw_patients(1, 1, 0, 3, 18)
    with pytest.raises(ValueError, match="u_arrival"):
        run_timed_trials(tb, P_TOX, P_EFF, Patients(pts.u_tox, pts.u_eff, pts.u_onset), timing,
                         dlt_window_days=28, response_days=90)


def test_time_characteristics_rows_and_quantile_errors() -> None:
    from escalade.simulations.oc_time import TIME_METRICS, time_characteristics, weighted_quantile
    from escalade.simulations.outcomes import TrialOutcomes

    # durations from an exponential of mean 100 days: the median (100 log 2) within 3 of its stated
    # SEs, and that SE close to the asymptotic sqrt(q(1-q)/T)/f(x_q) = 100/sqrt(T) (within 25%)
    t = 4000
    dur = np.random.default_rng(1).exponential(100.0, t)
    z = np.zeros((t, 2), np.int64)
    out = TrialOutcomes(np.zeros(t, np.int64), np.ones(t, np.int8), z, z, z, z, np.ones(t, np.int64),
                        np.full(t, 1.0 / t), duration=dur, suspensions=(dur > 150).astype(np.int64))
    df = time_characteristics(out, scenario="s", design="d").set_index("metric")
    assert list(df.index) == list(TIME_METRICS)
    assert list(df.columns) == ["scenario", "design", "dose", "value", "se", "exact"]
    med, se = df.loc["duration_days_median", ["value", "se"]]
    assert abs(med - 100 * np.log(2)) < 3 * se
    assert se == pytest.approx(100 / np.sqrt(t), rel=0.25)
    assert df.loc["duration_days", "value"] == pytest.approx(dur.mean())
    assert df.loc["suspended_pct", "value"] == pytest.approx(100 * np.mean(dur > 150))
    assert df.loc["duration_days_p10", "value"] < med < df.loc["duration_days_p90", "value"]
    assert weighted_quantile(np.array([5.0, 1.0]), np.array([0.9, 0.1]), 0.5) == 5.0
    untimed = TrialOutcomes(out.selected, out.reason, z, z, z, z, out.cohorts, out.weight)
    assert time_characteristics(untimed).empty


def test_a_safety_stop_on_pending_data_recommends_no_dose() -> None:
    # TITE-CRM with a safety rule (threshold 0.75). Patient 1 has a DLT on day 0.3; patients 2 and
    # 3 are followed 2 and 1 days when patient 4 arrives (day 3): Pr(p_1 > 0.25) under the weighted
    # posterior exceeds 0.75 and the trial stops. On the complete data (1 DLT in 3) the rule no
    # longer holds and select() alone would give DL1; a trial stopped for toxicity recommends none.
    design = TiteCrmDesign(TiteCrmConfig(skeleton=(0.08, 0.16, 0.25, 0.35, 0.46), target=0.25, n_doses=5,
                                         cohort_size=3, max_n=6, safety_threshold=0.75))
    u_tox = np.full((1, 16), 0.99)
    u_tox[0, 0] = 0.0
    pts = Patients(u_tox, np.full((1, 16), 0.99), np.full((1, 16), 0.01), np.zeros((1, 16)))
    timing = Timing(accrual="list", arrival_days=(0, 1, 2, 3, 4, 5), rate_per_month=1.0)
    out = run_timed_trials(design, np.full(5, 0.3), np.zeros(5), pts, timing, dlt_window_days=28,
                           response_days=90)
    assert out.reason[0] == 2 and out.n[0].tolist() == [3, 0, 0, 0, 0]  # StopReason.ALL_TOXIC
    assert design.select(States.from_counts(out.n, out.tox))[0] == 0
    assert out.selected[0] == -1
