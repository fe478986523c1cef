"""TITE-BOIN (Yuan, Lin, Li, Nie & Warren 2018, Clin Cancer Res 24:4921-4930)."""

from __future__ import annotations

import numpy as np
import pytest

from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.registry import build_design
from escalade.design.tite_boin import (TiteBoinConfig, TiteBoinDesign, format_tite_table, imputed_rate,
                                       tite_boin_rules)
from escalade.design.tite_crm import FollowUp
from escalade.scenarios.errors import ConfigError
from escalade.scenarios.study import Timing
from escalade.simulations.timed import DAYS_PER_MONTH, simulate_timed

CFG20 = TiteBoinConfig(target=0.2, n_doses=5)

# The TITE-BOIN decision table for target 0.2 and cohorts of 3, as published (Table 1 of
# PMC9260438, Contemp Clin Trials Commun, which cites Yuan et al. 2018 [22]); columns
# (n, DLTs, pending, action, escalate-if-STFT>=, de-escalate-if-STFT<=):
#   3 0 <=1 escalate | 3 0 >=2 suspend | 3 1 <=2 de-escalate | 3 >=2 <=1 de-escalate & eliminate
#   6 0 <=3 escalate | 6 0 >=4 suspend | 6 1 <=3 stay | 6 1 >=4 suspend | 6 2 <=4 de-escalate
#   6 >=3 <=3 de-escalate & eliminate
#   9 0 <=4 escalate | 9 0 >=5 suspend | 9 1 <=2 escalate | 9 1 3 STFT>=0.77 | 9 1 4 STFT>=2.15
#   9 1 >=5 suspend | 9 2 0 stay | 9 2 1 STFT<=0.52 | 9 2 2 STFT<=1.59 | 9 2 3 STFT<=2.66
#   9 2 4 STFT<=3.73 | 9 2 >=5 suspend | 9 3 <=6 de-escalate | 9 >=4 <=5 de-escalate & eliminate
PUBLISHED = [
    (3, 0, 0, 1, "escalate", None, None), (3, 0, 2, 3, "suspend", None, None),
    (3, 1, 0, 2, "de-escalate", None, None), (3, 2, 0, 1, "de-escalate & eliminate", None, None),
    (6, 0, 0, 3, "escalate", None, None), (6, 0, 4, 6, "suspend", None, None),
    (6, 1, 0, 3, "stay", None, None), (6, 1, 4, 5, "suspend", None, None),
    (6, 2, 0, 4, "de-escalate", None, None), (6, 3, 0, 3, "de-escalate & eliminate", None, None),
    (9, 0, 0, 4, "escalate", None, None), (9, 0, 5, 9, "suspend", None, None),
    (9, 1, 0, 2, "escalate", None, None), (9, 1, 3, 3, "depends on STFT", 0.77, None),
    (9, 1, 4, 4, "depends on STFT", 2.15, None), (9, 1, 5, 8, "suspend", None, None),
    (9, 2, 0, 0, "stay", None, None), (9, 2, 1, 1, "depends on STFT", None, 0.52),
    (9, 2, 2, 2, "depends on STFT", None, 1.59), (9, 2, 3, 3, "depends on STFT", None, 2.66),
    (9, 2, 4, 4, "depends on STFT", None, 3.73), (9, 2, 5, 7, "suspend", None, None),
    (9, 3, 0, 6, "de-escalate", None, None), (9, 4, 0, 5, "de-escalate & eliminate", None, None),
]


def test_published_decision_table_target_020() -> None:
    got = [(r.n, r.y, r.pending_min, r.pending_max, r.action,
            None if r.escalate_at is None else round(r.escalate_at, 2),
            None if r.deescalate_at is None else round(r.deescalate_at, 2))
           for r in tite_boin_rules(CFG20, [3, 6, 9])]
    assert got == PUBLISHED


def test_thresholds_worked_by_hand() -> None:
    # n = 9, y = 1, c = 3, target 0.2: p~ = (1 + 0.1)/(9 - 3 + 1) = 0.15714; lambda_e =
    # log(0.88/0.8)/log(0.2*0.88/(0.12*0.8)) = 0.157242 (p_saf = 0.12). Escalate iff p^ = (1 + (3 - STFT) p~/(1 - p~))/9 <= lambda_e, i.e.
    # STFT >= 3 - (9 lambda_e - 1)(1 - p~)/p~ = 3 - 0.41516 * 5.3636 = 0.7732.
    lam_e = CFG20.lambda_e
    assert lam_e == pytest.approx(0.157242, abs=1e-6)
    assert float(imputed_rate(9, 1, 3, 0.7732, 0.2)) == pytest.approx(lam_e, abs=1e-4)
    # n = 9, y = 2, c = 1: p~ = 2.1/9 = 0.2333; de-escalate iff STFT <= 1 - (9 lambda_d - 2) * 3.2857
    # = 1 - 0.14615 * 3.2857 = 0.5198 (lambda_d = 0.238462).
    assert float(imputed_rate(9, 2, 1, 0.5198, 0.2)) == pytest.approx(CFG20.lambda_d, abs=1e-4)
    # nothing pending: the observed rate
    assert float(imputed_rate(6, 2, 0, 0.0, 0.2)) == pytest.approx(2 / 6)


def test_plain_rule_variant_deescalates_on_imputed_dlts() -> None:
    # deescalate_below_target: n = 6, y = 1, c = 2: p~ = 1.1/5 = 0.22, de-escalate iff
    # STFT <= 2 - (6 * 0.238462 - 1)(0.78/0.22) = 2 - 0.43077 * 3.5455 = 0.4727.
    cfg = TiteBoinConfig(target=0.2, n_doses=5, deescalate_below_target=True)
    row = [r for r in tite_boin_rules(cfg, [6]) if r.y == 1 and r.pending_min == 2][0]
    assert row.action == "depends on STFT" and row.deescalate_at == pytest.approx(0.4727, abs=1e-4)


def _one_dose_states(n, y, c, stft, d=1, n_doses=5):
    """Trials with everyone at dose ``d``: ``c`` pending patients sharing follow-up ``stft``."""
    s = len(n)
    width = max(n)
    dose = np.full((s, width), NO_DOSE)
    dlt = np.zeros((s, width), bool)
    frac = np.zeros((s, width))
    for i in range(s):
        dose[i, : n[i]] = d
        dlt[i, : y[i]] = True
        frac[i, : y[i]] = 0.5
        frac[i, y[i]: n[i]] = 1.0
        if c[i]:
            frac[i, y[i]: y[i] + c[i]] = stft[i] / c[i]
    counts = np.zeros((s, n_doses), np.int64)
    counts[:, d] = n
    tox = np.zeros_like(counts)
    tox[:, d] = y
    return States.from_counts(counts, tox, current=d), FollowUp(dose, dlt, frac)


def test_decisions_follow_the_table() -> None:
    design = TiteBoinDesign(CFG20)
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(400):
        n = int(rng.integers(3, 16))
        y = int(rng.integers(0, n + 1))
        c = int(rng.integers(0, n - y + 1))
        stft = float(rng.uniform(0, c)) if c else 0.0
        cases.append((n, y, c, stft))
    n, y, c, stft = map(list, zip(*cases))
    states, follow = _one_dose_states(n, y, c, stft)
    out = design.decide_tite(states, follow)
    rules = {}
    for r in tite_boin_rules(CFG20, range(3, 16)):
        for yy in range(r.y, (r.y_max or r.y) + 1):
            for cc in range(r.pending_min, r.pending_max + 1):
                rules[(r.n, yy, cc)] = r
    for i, (ni, yi, ci, si) in enumerate(cases):
        r = rules[(ni, yi, ci)]
        dose, stop, susp = out.decisions.dose[i], out.decisions.stop[i], out.suspend[i]
        if r.action == "suspend":
            assert susp
            continue
        assert not susp
        expect = {"escalate": 2, "stay": 1, "de-escalate": 0}.get(r.action)
        if r.action == "depends on STFT":
            expect = 2 if r.escalate_at is not None and si >= r.escalate_at else (
                0 if r.deescalate_at is not None and si <= r.deescalate_at else 1)
        if r.action == "de-escalate & eliminate":
            assert not stop and dose == 0  # dose 1 and above eliminated: back to dose 0
            continue
        assert (dose, stop) == (expect, False), (cases[i], r)


def test_no_pending_data_is_boin() -> None:
    # Arrivals every 30 days > the 28-day window: nothing is ever pending, and TITE-BOIN
    # reduces to BOIN (the paper's property), trial by trial on the same patients.
    p = [0.05, 0.12, 0.30, 0.45, 0.60]
    timing = Timing(accrual="fixed", rate_per_month=DAYS_PER_MONTH / 30)
    kw = dict(timing=timing, dlt_window_days=28, n_trials=300, seed=5)
    a = simulate_timed(TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5, extrasafe=True)), p, **kw)
    b = simulate_timed(BoinDesign(BoinConfig(target=0.3, n_doses=5, extrasafe=True)), p, **kw)
    for f in ("selected", "reason", "n", "tox", "duration"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    # and complete-data decide() is BOIN's
    states = States.from_counts([[3, 3, 0, 0, 0]], [[0, 1, 0, 0, 0]], current=1)
    assert TiteBoinDesign(CFG20).decide(states).dose[0] == BoinDesign(CFG20.boin()).decide(states).dose[0]


def test_late_dlts_at_lower_doses() -> None:
    design = TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5))
    # current dose 2; dose 1 has 3/3 DLTs observed late (eliminates doses 1..4): back to dose 0
    states = States.from_counts([[3, 3, 3, 0, 0]], [[0, 3, 0, 0, 0]], current=2)
    follow = FollowUp(np.array([[0, 0, 0, 1, 1, 1, 2, 2, 2]]), np.array([[0, 0, 0, 1, 1, 1, 0, 0, 0]], bool),
                      np.array([[1, 1, 1, .9, .9, .9, .6, .6, .6]]))
    out = design.decide_tite(states, follow)
    assert (out.decisions.dose[0], out.suspend[0]) == (0, False)
    # the lowest dose eliminated: stop, all doses too toxic
    states = States.from_counts([[3, 3, 0, 0, 0]], [[3, 0, 0, 0, 0]], current=1)
    follow = FollowUp(np.array([[0, 0, 0, 1, 1, 1]]), np.array([[1, 1, 1, 0, 0, 0]], bool),
                      np.array([[.8, .9, .9, .2, .2, .2]]))
    out = design.decide_tite(states, follow)
    assert out.decisions.stop[0] and out.decisions.reason[0] == StopReason.ALL_TOXIC and not out.suspend[0]


def test_format_table_and_registry() -> None:
    text = format_tite_table(CFG20, [9])
    assert "9  1     3        STFT>=0.77       STFT<0.77" in text
    assert "suspend accrual" in text and "lambda_e 0.1572" in text
    design = build_design("tite_boin", {}, {"target": 0.25, "n_doses": 4, "cohort_size": 3, "max_n": 24})
    assert design.kind == "tite_boin" and not design.enumerable and design.config.p_saf == pytest.approx(0.15)
    with pytest.raises(ConfigError) as exc:
        TiteBoinConfig(target=0.3, n_doses=5, max_pending=1.0)
    assert exc.value.field == "max_pending"


def test_tite_boin_shortens_the_trial_without_losing_accuracy() -> None:
    # 4 patients a month, 28-day window: TITE-BOIN runs faster than BOIN with full follow-up, with a
    # correct-selection rate within 3 paired standard errors (same patients for both designs).
    p = [0.05, 0.12, 0.30, 0.45, 0.60]
    timing = Timing(accrual="poisson", rate_per_month=4.0)
    kw = dict(timing=timing, dlt_window_days=28, n_trials=1000, seed=8)
    a = simulate_timed(TiteBoinDesign(TiteBoinConfig(target=0.3, n_doses=5)), p, **kw)
    b = simulate_timed(BoinDesign(BoinConfig(target=0.3, n_doses=5)), p, **kw)
    assert a.duration.mean() < 0.9 * b.duration.mean()
    assert a.suspensions.mean() < b.suspensions.mean()
    d = (a.selected == 2).astype(float) - (b.selected == 2)
    assert abs(d.mean()) <= 3 * d.std(ddof=1) / np.sqrt(d.size) + 1e-12
