"""BOIN12 (Lin, Zhou, Yan, Li & Yuan 2020, JCO Precis Oncol 4:1393-1402)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from escalade.design.base import States, StopReason
from escalade.design.boin12 import (Boin12Config, Boin12Design, boin12_estimates, boin12_rds_table,
                                    unimodal_regression)
from escalade.design.registry import build_design
from escalade.scenarios.errors import ConfigError
from escalade.simulations.trial import simulate

CELL = {"N": (0, 0), "E": (0, 1), "T": (1, 0), "B": (1, 1)}  # (DLT, response) as in escalation's strings


def _states(path: str, n_doses: int = 5) -> States:
    """Counts after cohorts written as '1NNN 2ENT' (dose, then one letter per patient)."""
    n, t, e, b = (np.zeros(n_doses, np.int64) for _ in range(4))
    cur = last_t = last_n = 0
    for coh in path.split():
        cur, last_t, last_n = int(coh[0]) - 1, 0, 0
        for ch in coh[1:]:
            tt, ee = CELL[ch]
            n[cur] += 1
            t[cur] += tt
            e[cur] += ee
            b[cur] += tt * ee
            last_t += tt
            last_n += 1
    return States.from_counts(n, t, e, b, current=cur, last_n=last_n, last_tox=last_t)


def _next(design: Boin12Design, path: str) -> int | None:
    dec = design.decide(_states(path))
    return None if dec.stop[0] else int(dec.dose[0]) + 1


# The paper's example (phi_T = 0.35, phi_E = 0.25, u11 = 60, u00 = 40, N* = 6) and its Supplement's
# Figure S2 trial, then single cohorts checked against the MD Anderson BOIN12 application, as
# collected in the R package escalation (tests/testthat/test_boin12.R, 'published example' and
# 'Shiny app - parameterisation 1'); 1-based doses.
PAPER = {
    "1NNN 2ENT 3ETT 2EEN": 2,  # p. 1396
    "1NNN": 2, "1NNN 2NNB": 3, "1NNN 2NNB 3NEE": 3, "1NNN 2NNB 3NEE 3NTN": 4,
    "1NNN 2NNB 3NEE 3NTN 4ETE": 4, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE": 4,
    "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN": 5, "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN": 5,
    "1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT": 4,
}
APP1 = {
    "1EBB": 1, "1EEB": 1, "1EEE": 1, "1EET": 1, "1ETB": 1, "1ETT": 1, "1NBB": 1, "1NEB": 1, "1NEE": 1,
    "1NET": 2, "1NNB": 2, "1NNE": 2, "1NNN": 2, "1NNT": 2, "1NTB": 1, "1NTT": 1,
    "2BBB": 1, "2EBB": 1, "2EEB": 2, "2EEE": 2, "2EET": 2, "2ETB": 1, "2ETT": 1, "2NBB": 1, "2NEB": 2,
    "2NEE": 2, "2NET": 3, "2NNB": 3, "2NNE": 3, "2NNN": 3, "2NNT": 3, "2NTB": 1, "2NTT": 1, "2TBB": 1,
    "2TTB": 1, "2TTT": 1,
    "5BBB": 4, "5EBB": 4, "5EEB": 5, "5EEE": 5, "5EET": 5, "5ETB": 4, "5ETT": 4, "5NBB": 4, "5NEB": 5,
    "5NEE": 5, "5NET": 4, "5NNB": 4, "5NNE": 4, "5NNN": 4, "5NNT": 4, "5NTB": 4, "5NTT": 4, "5TBB": 4,
    "5TTB": 4, "5TTT": 4,
}
# 'parameterisation 2': phi_T = 0.15, phi_E = 0.4, u11 = 30, u00 = 50, c_T = 0.9, c_E = 0.8
APP2 = {
    "1EEB": 1, "1EEE": 1, "1EET": 1, "1NEB": 1, "1NEE": 1, "1NET": 1, "1NNB": 1, "1NNE": 2, "1NNN": 2,
    "2BBB": 1, "2EBB": 1, "2EEB": 1, "2EEE": 2, "2EET": 1, "2ETB": 1, "2ETT": 1, "2NBB": 1, "2NEB": 1,
    "2NEE": 2, "2NET": 1, "2NNB": 1, "2NNN": 3, "2NNT": 1, "2NTB": 1, "2NTT": 1, "2TBB": 1, "2TTB": 1,
    "2TTT": 1,
    "5BBB": 4, "5EBB": 4, "5EEB": 4, "5EEE": 5, "5EET": 4, "5ETB": 4, "5ETT": 4, "5NBB": 4, "5NEB": 4,
    "5NEE": 5, "5NET": 4, "5NNB": 4, "5NNE": 4, "5NNN": 4, "5NNT": 4, "5NTB": 4, "5NTT": 4, "5TBB": 4,
    "5TTB": 4, "5TTT": 4,
}
DESIGN1 = Boin12Design(Boin12Config(target=0.35, n_doses=5, phi_e=0.25, u11=60, u00=40, max_n=36,
                                    n_earlystop=12))
DESIGN2 = Boin12Design(Boin12Config(target=0.15, n_doses=5, phi_e=0.4, u11=30, u00=50, cutoff_eli=0.9,
                                    cutoff_eli_eff=0.8, max_n=36, n_earlystop=12))


@pytest.mark.parametrize("design,cases", [(DESIGN1, PAPER), (DESIGN1, APP1), (DESIGN2, APP2)],
                         ids=["paper", "app-1", "app-2"])
def test_published_and_application_decisions(design, cases) -> None:
    got = {p: _next(design, p) for p in cases}
    assert got == cases


def test_lowest_dose_eliminated_stops_where_the_application_stays() -> None:
    # Parameterisation 2 with 2 or 3 DLTs in 3 patients at dose 1: Pr(p_T > 0.15 | Beta(3, 2)) =
    # 1 - (4 * 0.15^3 - 3 * 0.15^4) = 0.988 > c_T = 0.9, so the paper's admissibility rule eliminates
    # dose 1 and every higher dose: the trial stops. (The application keeps treating at dose 1.)
    for path in ("1EBB", "1ETB", "1ETT", "1NBB", "1NTB"):
        dec = DESIGN2.decide(_states(path))
        assert dec.stop[0] and dec.reason[0] == StopReason.ALL_TOXIC, path
        assert DESIGN2.select(_states(path))[0] == -1


def test_paper_example_ends_at_twelve_with_obd_dose_4() -> None:
    # "... 5NBT 4NEN": 12 patients at dose 4, the trial stops (n_earlystop 12). Counts (n, DLT, resp):
    # (3,0,0) (3,1,1) (6,1,2) (12,3,6) (6,3,3). Toxicity: (y + 0.05)/(n + 0.1) = 0.016, 0.339, 0.172,
    # 0.252, 0.5; doses 2-3 violate the order and pool to 2.1/9.2 = 0.228 (weights n + 0.1), so the
    # MTD is dose 4 (|0.252 - 0.35| is smallest). Efficacy, unimodal and mode-averaged:
    # 0.031, 0.361, 0.386, 0.476; utility 60 pE + 40 (1 - pT) (u11 + u00 = 100) is largest at dose 4
    # (58.5 against 41.2, 52.5, 54.0; dose 5 is above the MTD): OBD = dose 4, as the paper.
    s = _states("1NNN 2NNB 3NEE 3NTN 4ETE 4NBE 4BNN 5BEN 5NBT 4NEN")
    dec = DESIGN1.decide(s)
    assert dec.stop[0] and dec.reason[0] == StopReason.N_AT_DOSE
    paper = dataclasses.replace(DESIGN1.config, selection="paper")
    est = boin12_estimates(paper, s.n, s.tox, s.eff, s.both)
    pooled = np.array([0.05 / 3.1, 2.1 / 9.2, 2.1 / 9.2, 3.05 / 12.1, 3.05 / 6.1])
    np.testing.assert_allclose(est.p_tox[0], pooled)
    np.testing.assert_allclose(est.utility[0, :4], 60 * est.p_eff[0, :4] + 40 * (1 - est.p_tox[0, :4]))
    np.testing.assert_allclose(est.utility[0, :4], [41.2, 52.5, 54.0, 58.5], atol=0.05)
    assert est.mtd[0] == 3 and est.obd[0] == 3 and Boin12Design(paper).select(s)[0] == 3
    # the software's rule (the default): + 0.001 j on the pooled toxicity, + 0.01 j on the efficacy
    # fit (every dose is treated here, so only its weight placement in the umbrella fit differs)
    soft = boin12_estimates(DESIGN1.config, s.n, s.tox, s.eff, s.both)
    np.testing.assert_allclose(soft.p_tox[0], pooled + 0.001 * np.arange(1, 6))
    np.testing.assert_allclose(soft.utility[0], 60 * soft.p_eff[0] + 40 * (1 - soft.p_tox[0]))
    assert soft.mtd[0] == 3 and soft.obd[0] == 3 and DESIGN1.select(s)[0] == 3


def test_rank_based_desirability_scores_table_3() -> None:
    # Table 3 of Lin et al. (2020): phi_T = 0.35, phi_E = 0.25, u11 = 60, u00 = 40, n = 0, 3, 6, 9;
    # values as tabulated (and checked in escalation's tests/testthat/test_boin12_rds.R); "E" = eliminated.
    t = boin12_rds_table(Boin12Config(target=0.35, n_doses=5, phi_e=0.25), [0, 3, 6, 9])
    t = t.set_index(["n", "dlt", "response"])
    expect = {(0, 0, 0): 60, (3, 0, 3): 91, (6, 1, 5): 87, (6, 5, 1): None, (9, 0, 8): 99,
              (9, 2, 3): 32.5, (9, 5, 5): 32.5, (9, 3, 1): 7, (9, 4, 0): None, (9, 6, 9): None}
    for key, val in expect.items():
        got = t.loc[key, "rds"]
        assert (np.isnan(got) if val is None else got == val), (key, got, val)
    assert t["admissible"].sum() == np.nanmax(t["rds"]) + 0.5 or t["rds"].max() <= t["admissible"].sum()


def test_benchmark_and_desirability_by_hand() -> None:
    c = Boin12Config(target=0.35, n_doses=5, phi_e=0.25)
    # u_bar = 100*0.65*0.25 + 60*0.35*0.25 + 40*0.65*0.75 = 16.25 + 5.25 + 19.5 = 41; u_b = 41 + 59/2
    assert c.benchmark == pytest.approx(70.5)
    d = Boin12Design(c)
    s = States.from_counts([[0, 3, 0, 0, 0]], [[0, 1, 0, 0, 0]], [[0, 2, 0, 0, 0]], [[0, 1, 0, 0, 0]], current=1)
    des = d.desirability(s)[0]
    assert des[0] == pytest.approx(1 - 0.705)  # untried: Beta(1, 1) prior
    # dose 2: one (DLT, response), one (response only), one neither: x = (60 + 100 + 40)/100 = 2,
    # Pr(u > 0.705 | Beta(3, 2)) = 1 - I_0.705(3, 2) = 1 - (4 * 0.705^3 - 3 * 0.705^4)
    assert des[1] == pytest.approx(1 - (4 * 0.705**3 - 3 * 0.705**4))


def test_non_additive_utilities_use_the_four_cells() -> None:
    c = Boin12Config(target=0.15, n_doses=3, phi_e=0.4, u11=30, u00=50)
    assert not c.additive
    d = Boin12Design(c)
    # same marginal counts (1 DLT, 1 response in 2 patients), different cells: (B, N) vs (T, E)
    a = States.from_counts([[2, 0, 0]], [[1, 0, 0]], [[1, 0, 0]], [[1, 0, 0]], current=0)
    b = States.from_counts([[2, 0, 0]], [[1, 0, 0]], [[1, 0, 0]], [[0, 0, 0]], current=0)
    # x = (30 + 50)/100 = 0.8 versus (0 + 100)/100 = 1.0
    ub = c.benchmark / 100
    from scipy.special import betaincc
    assert d.desirability(a)[0, 0] == pytest.approx(betaincc(1.8, 2.2, ub))
    assert d.desirability(b)[0, 0] == pytest.approx(betaincc(2.0, 2.0, ub))
    assert "both" in boin12_rds_table(c, [0, 3]).columns


def _unimodal_brute(y: np.ndarray, w: np.ndarray, mode: int) -> np.ndarray:
    """Best feasible fit among all partitions of the sequence into intervals (exhaustive)."""
    k = y.size
    best, best_sse = None, np.inf
    for cuts in itertools.product([0, 1], repeat=k - 1):
        f = np.empty(k)
        start = 0
        for i in range(k):
            if i == k - 1 or cuts[i]:
                sl = slice(start, i + 1)
                f[sl] = np.sum(w[sl] * y[sl]) / np.sum(w[sl])
                start = i + 1
        ok = all(f[i] <= f[i + 1] + 1e-12 if i < mode else f[i] >= f[i + 1] - 1e-12 for i in range(k - 1))
        sse = float(np.sum(w * (y - f) ** 2))
        if ok and sse < best_sse - 1e-12:
            best, best_sse = f, sse
    return best


def test_unimodal_regression_is_the_least_squares_fit() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        k = int(rng.integers(1, 7))
        y = rng.random(k)
        w = rng.uniform(0.5, 10, k)
        mode = int(rng.integers(0, k))
        np.testing.assert_allclose(unimodal_regression(y, w, mode), _unimodal_brute(y, w, mode), atol=1e-12)


def test_plateau_favours_the_lower_dose() -> None:
    # Response plateaus from dose 2 while toxicity rises: BOIN12's OBD should be the plateau's first
    # dose far more often than the MTD-driven BOIN picks it (same virtual patients for both).
    p_tox = [0.05, 0.08, 0.15, 0.30, 0.45]
    p_eff = [0.15, 0.55, 0.55, 0.56, 0.56]
    study = {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 30, "start_dose": 0}
    b12 = simulate(build_design("boin12", {}, study), p_tox, p_eff, n_trials=600, seed=2)
    boin = simulate(build_design("boin", {}, study), p_tox, p_eff, n_trials=600, seed=2)
    pick12, pickb = (b12.selected == 1).astype(float), (boin.selected == 1).astype(float)
    d = pick12 - pickb
    assert d.mean() > 3 * d.std(ddof=1) / np.sqrt(d.size)
    assert np.all(b12.both <= np.minimum(b12.tox, b12.eff))


@pytest.mark.parametrize("params,field", [
    ({"u11": 120}, "u11"), ({"u00": -1}, "u00"), ({"phi_e": 0}, "phi_e"), ({"n_star": 0}, "n_star"),
    ({"cutoff_eli_eff": 1.5}, "cutoff_eli_eff"), ({"p_saf": 0.5}, "p_saf"),
])
def test_config_errors_name_the_field(params, field) -> None:
    with pytest.raises(ConfigError) as exc:
        Boin12Config(target=0.3, n_doses=5, **params)
    assert exc.value.field == field
