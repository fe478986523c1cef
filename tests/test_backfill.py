"""Backfill cohorts (BF-BOIN; issue #16): the rules by hand, backfill off = today's engine, and the paper's table.

Zhao Y, Yuan Y, Korn EL, Freidlin B (2024). Backfilling patients in phase I dose-escalation trials using
Bayesian optimal interval design (BOIN). Clin Cancer Res 30(4):673-679: Table 3 (twelve scenarios) and
Table 4 (BF-BOIN vs BOIN), kept in validation/reference/bfboin/table4.json with their provenance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from escalade.design.base import States
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.errors import ConfigError
from escalade.design.rules import Backfill, backfill_open, backfill_pooled_move, patient_slots
from escalade.scenarios.study import Timing
from escalade.simulations.oc import Truth, operating_characteristics
from escalade.simulations.timed import DAYS_PER_MONTH, simulate_timed

ROOT = Path(__file__).resolve().parents[1]
TABLE4 = json.loads((ROOT / "validation/reference/bfboin/table4.json").read_text())
#: The paper's software re-run (R package bfboin, Poisson accrual): per-run means and SDs, see its README.
BFBOIN_R = json.loads((ROOT / "validation/reference/bfboin/bfboin_r.json").read_text())


def _boin(**kw: object) -> BoinDesign:
    base = dict(target=0.25, n_doses=5, max_n=30)
    base.update(kw)
    return BoinDesign(BoinConfig(**base))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the setting


def test_backfill_setting_values() -> None:
    assert BoinConfig(target=0.25, n_doses=5).backfill is None
    assert BoinConfig(target=0.25, n_doses=5, backfill=False).backfill is None
    assert BoinConfig(target=0.25, n_doses=5, backfill=True).backfill == Backfill()
    cfg = BoinConfig(target=0.25, n_doses=5, backfill={"max_per_dose": 6, "unplaced": "leave"})
    assert cfg.backfill == Backfill(max_per_dose=6, unplaced="leave")
    with pytest.raises(ConfigError, match="backfill.max_per_dos"):
        BoinConfig(target=0.25, n_doses=5, backfill={"max_per_dos": 6})
    with pytest.raises(ConfigError, match="backfill.assign"):
        BoinConfig(target=0.25, n_doses=5, backfill={"assign": "highst"})
    assert patient_slots(_boin(backfill=True)) == 30 + 5 * 12
    assert patient_slots(_boin(backfill={"max_total": 10})) == 40
    assert not _boin(backfill=True).enumerable and _boin().enumerable


def test_designs_json_lists_backfill() -> None:
    out = subprocess.run([sys.executable, "-m", "escalade", "designs", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    data = json.loads(out)
    entries = data if isinstance(data, list) else data.get("designs", data)
    text = json.dumps(entries)
    for kind in ("boin", "tite_boin", "boin12"):
        assert kind in text
    assert text.count('"backfill"') >= 3


# ---------------------------------------------------------------------------------------------
# the rules by hand


def _open(n_obs, y_obs, *, current, responded=None, n_treated=None, total=0, setting=None):  # noqa: ANN001, ANN202
    n_obs = np.atleast_2d(n_obs)
    deesc = _boin().boundaries.deescalate
    return backfill_open(setting or Backfill(), n_obs=n_obs, y_obs=np.atleast_2d(y_obs),
                         n_treated=np.atleast_2d(n_treated if n_treated is not None else n_obs),
                         responded=np.atleast_2d(responded if responded is not None else np.ones(5, bool)),
                         current=np.array([current]), n_backfill_total=np.array([total]), deescalate=deesc)[0]


def test_backfill_open_rules() -> None:
    # doses 1-2 cleared (escalating at dose 3), both safe and with a response
    assert _open([3, 3, 3, 0, 0], [0, 0, 0, 0, 0], current=2).tolist() == [True, True, False, False, False]
    # no response at dose 2: only dose 1
    resp = np.array([True, False, True, True, True])
    assert _open([3, 3, 3, 0, 0], [0, 0, 0, 0, 0], current=2, responded=resp).tolist()[:2] == [True, False]
    assert _open([3, 3, 3, 0, 0], [0, 0, 0, 0, 0], current=2, responded=resp,
                 setting=Backfill(require_response=False)).tolist()[:2] == [True, True]
    # dose 1 at 2/6 (above lambda_d = 0.298 for target 0.25) but pooled with dose 2 (2/12) safe: open
    assert _open([6, 6, 3, 0, 0], [2, 0, 0, 0, 0], current=2).tolist()[:2] == [True, True]
    # dose 1 at 3/6 and pooled 3/9 unsafe: dose 1 closes, and every dose above it
    assert _open([6, 3, 3, 0, 0], [3, 0, 0, 0, 0], current=2).tolist()[:2] == [False, False]
    # a dose with max_per_dose patients is closed; max_total closes all
    assert _open([12, 3, 3, 0, 0], [1, 0, 0, 0, 0], current=2).tolist()[:2] == [False, True]
    assert not _open([3, 3, 3, 0, 0], [0, 0, 0, 0, 0], current=2, total=4, setting=Backfill(max_total=4)).any()


def test_pooled_move_resolves_a_conflict() -> None:
    d = _boin(backfill=True)
    b = d.boundaries
    # current dose 3 (index 2) 0/3 -> escalate on its own; backfill at dose 2 shows 3/6 (de-escalate there)
    s = States.from_counts([3, 6, 3, 0, 0], [0, 3, 0, 0, 0], current=2, last_n=3, last_tox=0)
    own = np.array([3])
    # pooled doses 2-3: 3/9 -> 0.33 >= lambda_d: de-escalate to the highest k with pooled data below
    # the boundary from dose 2 up: none (3/6 at dose 2) -> dose 1 (index 0)
    assert backfill_pooled_move(s, own, escalate=b.escalate, deescalate=b.deescalate)[0] == 0
    assert int(d.decide(s).dose[0]) == 0
    # without backfill BOIN escalates on the current dose alone
    assert int(_boin().decide(s).dose[0]) == 3
    # 1/6 at dose 2 (stay there) and 0/6 at dose 3: pooled 1/12 -> escalate
    s = States.from_counts([3, 6, 6, 0, 0], [0, 1, 0, 0, 0], current=2, last_n=3, last_tox=0)
    assert backfill_pooled_move(s, np.array([3]), escalate=b.escalate, deescalate=b.deescalate)[0] == 3
    # 2/6 at dose 2 (de-escalate there), 1/3 at dose 3 (stay: 1/3 de-escalates at target 0.25, so use 1/6):
    s = States.from_counts([3, 6, 6, 0, 0], [0, 2, 1, 0, 0], current=2, last_n=3, last_tox=0)
    # pooled 3/12 = 0.25: between the boundaries -> stay at dose 3
    assert backfill_pooled_move(s, np.array([2]), escalate=b.escalate, deescalate=b.deescalate)[0] == 2
    # no conflict: the design's own move
    s = States.from_counts([3, 3, 3, 0, 0], [0, 0, 0, 0, 0], current=2, last_n=3, last_tox=0)
    assert backfill_pooled_move(s, np.array([3]), escalate=b.escalate, deescalate=b.deescalate)[0] == 3


# ---------------------------------------------------------------------------------------------
# the engine

TIMING = Timing(enabled=True, accrual="poisson", rate_per_month=2.0)


def _sim(design: BoinDesign, p: list[float], r: list[float], n: int = 1000, seed: int = 5,  # noqa: ANN202
         **kw: object):
    timing = kw.pop("timing", TIMING)
    return simulate_timed(design, np.array(p), np.array(r, float), timing=timing,  # type: ignore[arg-type]
                          dlt_window_days=28.0, n_trials=n, seed=seed, **kw)


P = [0.05, 0.12, 0.25, 0.4, 0.5]


@pytest.mark.parametrize("timing,scope", [
    (TIMING, "new_dose"),
    (Timing(enabled=True, accrual="poisson", rate_per_month=1.5, dlt_onset="early", enrolment="stagger",
            stagger_days=7.0), "new_dose"),
    (Timing(enabled=True, accrual="fixed", rate_per_month=4.0, enrolment="stagger", stagger_days=5.0), "cohort"),
])
def test_backfill_that_never_opens_is_todays_engine_bit_for_bit(timing: Timing, scope: str) -> None:
    """No response anywhere: the backfill engine (wait, follow) places every arrival as today's engine does."""
    a = _sim(_boin(), P, [0.0] * 5, timing=timing, stagger_scope=scope)
    b = _sim(_boin(backfill=True), P, [0.0] * 5, timing=timing, stagger_scope=scope)
    for f in ("selected", "reason", "n", "tox", "cohorts", "suspensions", "duration"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.n_backfill is None and b.n_backfill is not None and b.n_backfill.sum() == 0


def test_backfill_treats_more_patients_below_and_counts_them() -> None:
    r = [0.3] * 5
    a = _sim(_boin(), P, r)
    b = _sim(_boin(backfill=True), P, r)
    nb = b.n_backfill
    assert nb.sum() > 0
    assert np.all(nb <= b.n) and np.all(b.n <= 12 + 30)
    # backfill is only ever below the highest escalation dose, never at the top dose
    assert nb[:, -1].sum() == 0
    # escalation patients are at most max_n
    assert np.all((b.n - nb).sum(axis=1) <= 30)
    # per-dose cap (escalation + backfill) respected where backfill happened
    assert np.all(np.where(nb > 0, b.n, 0) <= 12 + 30)
    assert (b.n.sum(axis=1) - nb.sum(axis=1)).mean() == pytest.approx(a.n.sum(axis=1).mean(), abs=3.0)
    # the OCs split patients into backfill and escalation
    truth = Truth(p_dlt=tuple(P), p_response=tuple(r), target=0.25)
    oc = operating_characteristics(b, truth, max_n=30)
    got = set(oc["metric"])
    assert {"backfill_patients", "backfill_escalation_patients", "backfill_total", "backfill_pct"} <= got
    tot = oc[oc.metric == "backfill_total"]["value"].iloc[0]
    assert tot == pytest.approx(nb.sum(axis=1).mean())
    assert "backfill_total" not in set(operating_characteristics(a, truth, max_n=30)["metric"])


def test_backfill_is_deterministic_and_chunk_invariant() -> None:
    d = _boin(backfill=True)
    a = _sim(d, P, [0.3] * 5, n=600, chunk_size=300)
    b = _sim(d, P, [0.3] * 5, n=600, chunk_size=300)
    assert np.array_equal(a.n, b.n) and np.array_equal(a.duration, b.duration)


@pytest.mark.parametrize("timing", [Timing(enabled=True, accrual="poisson", rate_per_month=4.0),
                                    Timing(enabled=True, accrual="poisson", rate_per_month=1.5, dlt_onset="early",
                                           enrolment="stagger", stagger_days=7.0)])
def test_tite_boin_backfill(timing: Timing) -> None:
    """TITE-BOIN: an arrival that meets an accrual suspension is backfilled where a dose is open."""
    from escalade.design.tite_boin import TiteBoinConfig, TiteBoinDesign

    def tite(**kw: object) -> TiteBoinDesign:
        return TiteBoinDesign(TiteBoinConfig(target=0.25, n_doses=5, max_n=30, **kw))  # type: ignore[arg-type]

    a = _sim(tite(), P, [0.0] * 5, n=600, timing=timing)  # type: ignore[arg-type]
    b = _sim(tite(backfill=True), P, [0.0] * 5, n=600, timing=timing)  # type: ignore[arg-type]
    for f in ("selected", "reason", "n", "tox", "cohorts", "suspensions", "duration"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    c = _sim(tite(backfill=True), P, [0.4] * 5, n=600, timing=timing, response_days=28.0)  # type: ignore[arg-type]
    assert c.n_backfill.sum() > 0 and c.n_backfill[:, -1].sum() == 0
    assert np.all((c.n - c.n_backfill).sum(axis=1) <= 30)
    with pytest.raises(ValueError, match="pending data"):
        _sim(tite(backfill={"unplaced": "leave"}), P, [0.3] * 5, n=10)  # type: ignore[arg-type]


def test_boin12_backfill_through_the_shared_rules() -> None:
    """BOIN12 takes the same setting (the shared rules); its decisions see the backfill patients' outcomes."""
    from escalade.design.registry import build_design

    def b12(bf: object) -> object:
        return build_design("boin12", {"target": 0.3, "n_doses": 5, "max_n": 30, "phi_e": 0.3, "backfill": bf})

    r = [0.2, 0.35, 0.5, 0.55, 0.6]
    a = _sim(b12(None), P, [0.0] * 5, n=400)  # type: ignore[arg-type]
    b = _sim(b12({"require_response": True}), P, [0.0] * 5, n=400)  # type: ignore[arg-type]
    for f in ("selected", "n", "tox", "duration"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    c = _sim(b12(True), P, r, n=400, response_days=28.0)  # type: ignore[arg-type]
    assert c.n_backfill.sum() > 0 and np.all((c.n - c.n_backfill).sum(axis=1) <= 30)


# ---------------------------------------------------------------------------------------------
# the paper's Table 4

N_TABLE4 = 3000
#: Monte Carlo SEs: ours from the per-trial values over N_TABLE4 trials; the paper's, not stated, taken as
#: those of 10,000 trials (the same per-trial spread); plus the rounding of the table (+/- 0.05).
PAPER_TRIALS = 10_000


def _paper_settings(with_backfill: bool) -> BoinDesign:
    # The paper's software closes a dose once it has *more than* n.cap = 12 patients (bfboin 0.1.1 checks
    # "treated <= n.cap" before adding one), so its cap is 13 in escalade's terms; arrivals that cannot be
    # placed are referred away, and backfill patients in follow-up when the escalation ends are left out.
    # For target 0.25 the paper stays at 1/3, as the 3+3 (its software's three.plus.three, table rows match
    # only with it: see test_variants). BOIN rows: the same engine with no response, so no dose opens.
    return _boin(n_earlystop=9, stay_on_1_of_3=True,
                 backfill={"max_per_dose": 13, "unplaced": "leave", "pending_at_end": "drop"})


@pytest.fixture(scope="module")
def table4_runs() -> list[dict[str, dict[str, np.ndarray]]]:
    """Per scenario: BF-BOIN and BOIN with Poisson accrual, and BOIN with uniform accrual ("boin_uniform")."""
    poisson = Timing(enabled=True, accrual="poisson", rate_per_month=3.0)
    uniform = Timing(enabled=True, accrual="uniform", rate_per_month=3.0)
    out = []
    for sc in TABLE4["scenarios"]:
        p = np.array(sc["p_dlt"])
        mtd = int(np.argmin(np.abs(p - 0.25)))
        runs = {}
        for key, r, timing in (("bf_boin", sc["p_response"], poisson), ("boin", [0.0] * 5, poisson),
                               ("boin_uniform", [0.0] * 5, uniform)):
            o = simulate_timed(_paper_settings(True), p, np.array(r, float), timing=timing,
                               dlt_window_days=DAYS_PER_MONTH, response_days=DAYS_PER_MONTH, n_trials=N_TABLE4,
                               seed=2024)
            runs[key] = {
                "correct_selection_pct": 100.0 * (o.selected == mtd),
                "overdose_selection_pct": 100.0 * (o.selected > mtd),
                "patients_below_mtd": o.n[:, :mtd].sum(axis=1), "patients_at_mtd": o.n[:, mtd],
                "patients_above_mtd": o.n[:, mtd + 1:].sum(axis=1), "sample_size": o.n.sum(axis=1),
                "duration_months": o.duration / DAYS_PER_MONTH}
        out.append(runs)
    return out


def _z(x: np.ndarray, paper: float) -> float:
    x = np.asarray(x, float)
    sd = x.std()
    se = np.sqrt(sd ** 2 / x.size + sd ** 2 / PAPER_TRIALS + 0.05 ** 2 / 3)
    return float((x.mean() - paper) / se)


@pytest.mark.parametrize("key", ["bf_boin", "boin"])
def test_table4_selection_within_3_se(table4_runs, key: str) -> None:  # noqa: ANN001
    """Correct and overdosing selection (the paper's Table 4; page not checked), 12 scenarios, within 3 MC SEs."""
    for i, sc in enumerate(TABLE4["scenarios"]):
        for j, metric in enumerate(TABLE4["columns"][:2]):
            paper = sc[key][j]
            if paper is None:
                continue
            z = _z(table4_runs[i][key][metric], paper)
            got = table4_runs[i][key][metric].mean()
            assert abs(z) < 3, f"scenario {i + 1} {key} {metric}: {got:.2f} vs {paper} (z={z:.1f})"


#: Scenarios whose MTD is the top dose: there the paper's BF-BOIN rows have 0.5-1.3 more backfill patients below
#: the MTD than escalade (e.g. scenario 5: 26.1 vs 27.2; sample size 33.4 vs 34.4), 4-7 SEs. The R package
#: bfboin run with the paper's settings gives what escalade gives (26.0 and 33.3 with Poisson accrual; 25.6 with
#: uniform accrual, further off), within 2 SEs on every column (test_matches_the_bfboin_r_package_within_4_se):
#: the paper's BF-BOIN figures come from other code (the authors' own), whose difference there is not stated.
#: Selection agrees within 1 SE; below-MTD and sample size are pinned within 1.5 patients.
TOP_MTD = {4, 8, 11}

#: Scenario 1 (MTD = the lowest dose): the paper's own BOIN row is off BOIN's exact value (escalade's exact
#: enumeration of BOIN with n.earlystop = 9 and 1/3 staying, which equals BOIN::get.oc elsewhere: 8.89
#: patients at the MTD and a sample size of 15.22, against Table 4's 8.7 and 15.1). The R package bfboin gives
#: 8.86 and 15.07 (2,000 trials), so it is no rule of that software: 8.7 is 1.5-2 SEs from 8.89 if the paper
#: ran 1,000-2,000 trials (its number is not stated; _z assumes 10,000). Both rows are checked within 5 SEs there.
SCENARIO1 = {"patients_at_mtd": 8.892, "sample_size": 15.222}


@pytest.mark.parametrize("key", ["bf_boin", "boin"])
def test_table4_allocation_and_sample_size(table4_runs, key: str) -> None:  # noqa: ANN001
    """Patients below / at / above the MTD and the sample size (Table 4), within 4 MC SEs (1.5 patients
    for below-MTD and sample size of BF-BOIN where the MTD is the top dose, see TOP_MTD)."""
    for i, sc in enumerate(TABLE4["scenarios"]):
        for j, metric in enumerate(TABLE4["columns"][2:6], start=2):
            paper = sc[key][j]
            if paper is None:
                continue
            x = table4_runs[i][key][metric]
            if key == "bf_boin" and i in TOP_MTD and metric in ("patients_below_mtd", "sample_size"):
                assert abs(x.mean() - paper) < 1.5, f"scenario {i + 1} {metric}: {x.mean():.2f} vs {paper}"
                continue
            z = _z(x, paper)
            limit = 5 if i == 0 else 4  # scenario 1: see SCENARIO1
            assert abs(z) < limit, f"scenario {i + 1} {key} {metric}: {x.mean():.2f} vs {paper} (z={z:.1f})"


def test_table4_duration(table4_runs) -> None:  # noqa: ANN001
    """Duration (months) against Table 4.

    BOIN: the paper's rows were run with *uniform* accrual (gaps uniform on (0, 2/3) months, the bfboin
    software's default; its Poisson option gives 0.5-1.1 months longer, as escalade's Poisson runs do, see
    test_matches_the_bfboin_r_package_within_4_se), so escalade's BOIN with ``accrual="uniform"`` is held to
    the paper within 3 MC SEs in all 12 scenarios. BF-BOIN: the paper's rows match neither accrual of that
    software (Poisson 3-8% longer, uniform up to 4% shorter where the MTD is the top dose): they come from
    other code (see TOP_MTD), so they are held within 10% only, and the paired effect of backfill on duration
    (BF-BOIN minus BOIN, the paper's point that backfill does not lengthen the trial) within 0.6 months."""
    for i, sc in enumerate(TABLE4["scenarios"]):
        bf = table4_runs[i]["bf_boin"]["duration_months"]
        bo = table4_runs[i]["boin"]["duration_months"]
        z = _z(table4_runs[i]["boin_uniform"]["duration_months"], sc["boin"][6])
        assert abs(z) < 3, f"scenario {i + 1} BOIN, uniform accrual: vs {sc['boin'][6]} (z={z:.1f})"
        assert abs(bf.mean() / sc["bf_boin"][6] - 1) < 0.10, f"scenario {i + 1}: {bf.mean():.2f} vs {sc['bf_boin'][6]}"
        diff = bf.mean() - bo.mean()
        assert abs(diff - (sc["bf_boin"][6] - sc["boin"][6])) < 0.6, f"scenario {i + 1}: {diff:.2f}"


def test_uniform_accrual_only_moves_time() -> None:
    """``accrual="uniform"``: gaps uniform on (0, 2 x the mean gap), same mean rate; BOIN's counts unchanged."""
    from escalade.simulations.timed import arrival_days

    u = np.random.default_rng(5).random((400, 50))
    a = arrival_days(Timing(enabled=True, accrual="uniform", rate_per_month=3.0), u)
    gaps = np.diff(a, axis=1, prepend=0.0)
    gap = DAYS_PER_MONTH / 3.0
    assert gaps.min() >= 0 and gaps.max() < 2 * gap
    assert abs(gaps.mean() / gap - 1) < 4 * np.sqrt(1 / 3) / np.sqrt(gaps.size)  # sd of U(0, 2) is 1/sqrt(3)
    np.testing.assert_allclose(gaps, 2 * u * gap)
    p = np.array(P)
    kw = dict(dlt_window_days=28.0, n_trials=200, seed=3)
    x = simulate_timed(_boin(), p, timing=Timing(enabled=True, accrual="uniform", rate_per_month=3.0), **kw)
    y = simulate_timed(_boin(), p, timing=Timing(enabled=True, accrual="poisson", rate_per_month=3.0), **kw)
    np.testing.assert_array_equal(x.n, y.n)
    assert not np.allclose(x.duration, y.duration)


def test_matches_the_bfboin_r_package_within_4_se(table4_runs) -> None:  # noqa: ANN001
    """Every Table 4 column, 12 scenarios, BF-BOIN and BOIN, against the R package bfboin run with the paper's
    settings and Poisson accrual (validation/reference/bfboin/bfboin_r.json, 2,000 trials a run): within 4 SEs
    of the difference of two independent Monte Carlo means (ours over N_TABLE4 trials, R's over its own),
    duration included. This is the check of the rules: the published table itself differs from that software
    in places (the tests above)."""
    assert len(BFBOIN_R) == len(TABLE4["scenarios"])
    worst = 0.0
    for i, ref in enumerate(BFBOIN_R):
        assert ref["scenario"] == i + 1
        m = ref["n_trials"]
        for key in ("bf_boin", "boin"):
            for metric in TABLE4["columns"]:
                x = table4_runs[i][key][metric]
                mean, sd = ref[key]["mean"][metric], ref[key]["sd"][metric]
                se = np.sqrt(x.var(ddof=1) / x.size + sd ** 2 / m)
                if se == 0:  # e.g. no dose above the MTD: both exactly 0
                    assert x.mean() == pytest.approx(mean, abs=1e-12), f"scenario {i + 1} {key} {metric}"
                    continue
                z = (x.mean() - mean) / se
                worst = max(worst, abs(z))
                assert abs(z) < 4, f"scenario {i + 1} {key} {metric}: {x.mean():.3f} vs R {mean:.3f} (z={z:.1f})"
    assert worst > 0


def test_table4_backfill_adds_patients_without_lengthening(table4_runs) -> None:  # noqa: ANN001
    for i, _ in enumerate(TABLE4["scenarios"]):
        bf, bo = table4_runs[i]["bf_boin"], table4_runs[i]["boin"]
        assert bf["sample_size"].mean() > bo["sample_size"].mean() + 1.0
        assert bf["duration_months"].mean() < bo["duration_months"].mean() + 0.3


def test_untimed_engine_refuses_backfill() -> None:
    from escalade.simulations.trial import simulate

    with pytest.raises(ValueError, match="calendar time"):
        simulate(_boin(backfill=True), np.array(P), n_trials=5, seed=1)
