"""BOIN12's final (OBD) selection: the authors' software rule, the paper's rule, and their batched fits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import load_reference
from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.boin12 import Boin12Config, Boin12Design, boin12_estimates, unimodal_regression
from escalade.design.isotonic import unimodal_fits
from escalade.scenarios.errors import ConfigError
from escalade.simulations.trial import simulate

# brockk/escalation issue #8 (2025-02-25): the trialdesign.org BOIN12 application's defaults with extra dose
# exploration de-selected and correlation 0; 5 doses, stop at 12 at a dose or 36 in all.
ISSUE8 = dict(target=0.35, n_doses=5, phi_e=0.25, u11=60.0, u00=40.0, n_star=6, cutoff_eli=0.95,
              cutoff_eli_eff=0.9, n_earlystop=12, max_n=36, n_explore=100, start_dose=0)
ISSUE8_TOX = [0.03, 0.17, 0.35, 0.50, 0.65]
ISSUE8_EFF = [0.12, 0.39, 0.43, 0.55, 0.65]
ISSUE8_APP = {1: 0.573, 2: 0.213}  # dose 2 and dose 3 (0-based 1, 2), 10,000 trials each, as published there
ISSUE8_APP_TRIALS = 10_000


def _random_counts(rng: np.random.Generator, s: int, nd: int, contiguous: bool = True) -> tuple[np.ndarray, ...]:
    n = rng.choice([3, 6, 9, 12], size=(s, nd))
    if contiguous:
        top = rng.integers(1, nd + 1, size=s)
        n = np.where(np.arange(nd)[None, :] < top[:, None], n, 0)
    else:
        n = np.where(rng.random((s, nd)) < 0.3, 0, n)
    tox = rng.binomial(n, rng.uniform(0, 0.7, (s, nd)))
    eff = rng.binomial(n, rng.uniform(0.05, 0.8, (s, nd)))
    both = rng.binomial(np.minimum(tox, eff), 0.5)
    return n, tox, eff, both


def test_iso_weights_reproduce_iso_ufit() -> None:
    # validation/reference/boin12_software/ufit.json: Iso::ufit (Iso 0.0-18.1) at every mode, as BOIN12's code calls it
    ref = load_reference("boin12_software", "ufit.json")
    n_differ = 0
    for case in ref["cases"]:
        y, w, fits = np.array(case["y"]), np.array(case["w"]), np.array(case["fits"])
        np.testing.assert_allclose(unimodal_fits(y, w, weights="iso"), fits, rtol=0, atol=1e-12)
        n_differ += not np.allclose(unimodal_fits(y, w), fits, rtol=0, atol=1e-12)
    assert n_differ > 10  # the weight placement matters: the exact fit differs in many cases


def test_exact_fits_equal_the_scalar_unimodal_regression() -> None:
    rng = np.random.default_rng(5)
    for k in range(1, 8):
        y = rng.random((400, k))
        w = rng.uniform(0.3, 10, (400, k))
        got = unimodal_fits(y, w)
        want = np.array([[unimodal_regression(y[i], w[i], m) for m in range(k)] for i in range(400)])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _paper_estimates_one_at_a_time(cfg: Boin12Config, n, tox, eff) -> tuple[np.ndarray, np.ndarray]:
    """The previous per-trial implementation: p_eff and the OBD, one row at a time."""
    from scipy import stats

    p_eff = np.full(n.shape, np.nan)
    for i in range(n.shape[0]):
        t = n[i] > 0
        if not t.any():
            continue
        y, m = eff[i, t].astype(float), n[i, t].astype(float)
        pe, w = (y + 0.05) / (m + 0.1), m + 0.5
        fits = np.stack([unimodal_regression(pe, w, k) for k in range(pe.size)])
        ll = stats.binom.logpmf(y[None, :], m[None, :], fits).sum(axis=1)
        post = np.exp(ll - ll.max())
        p_eff[i, t] = (post / post.sum()) @ fits
    return p_eff


@pytest.mark.parametrize("contiguous", [True, False])
def test_batched_paper_estimates_equal_one_at_a_time(contiguous) -> None:
    cfg = Boin12Config(target=0.3, n_doses=5, phi_e=0.3, selection="paper")
    n, tox, eff, both = _random_counts(np.random.default_rng(9), 500, 5, contiguous)
    est = boin12_estimates(cfg, n, tox, eff, both)
    np.testing.assert_allclose(est.p_eff, _paper_estimates_one_at_a_time(cfg, n, tox, eff), rtol=0, atol=1e-12)
    one = [boin12_estimates(cfg, n[i:i + 1], tox[i:i + 1], eff[i:i + 1], both[i:i + 1]) for i in range(len(n))]
    np.testing.assert_array_equal(est.obd, [e.obd[0] for e in one])
    np.testing.assert_array_equal(est.mtd, [e.mtd[0] for e in one])


def test_software_rule_equals_the_r_restatement() -> None:
    # validation/reference/boin12_software/select.json: software_select(n, yt, ye, target = 0.35, phi_e = 0.25,
    # u11 = 60, u00 = 40) on 300 random final states (R 4.2.2, Iso 0.0-18.1)
    ref = load_reference("boin12_software", "select.json")
    for case in ref["cases"]:
        nd = len(case["n"])
        cfg = Boin12Config(target=0.35, n_doses=nd, phi_e=0.25, u11=60, u00=40)
        n, tox, eff = (np.array([case[k]], np.int64) for k in ("n", "tox", "eff"))
        est = boin12_estimates(cfg, n, tox, eff, np.zeros_like(n))
        np.testing.assert_allclose(est.p_tox[0], case["p_tox"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(est.p_eff[0], case["p_eff"], rtol=0, atol=1e-12)
        ok = np.array(case["utility"]) > -100
        np.testing.assert_allclose(est.utility[0][ok], np.array(case["utility"])[ok], rtol=0, atol=1e-9)
        assert est.mtd[0] == case["mtd"] - 1
        assert est.obd[0] == (case["obd"] - 1 if case["any_ok"] else NO_DOSE), case


def test_software_rule_within_three_se_of_the_published_application_figures() -> None:
    # brockk/escalation#8: trialdesign.org's BOIN12 selects dose 2 in 57.3% and dose 3 in 21.3% (10,000 trials).
    # The difference of two independent proportions has SE sqrt(p(1-p)/n_ours + p(1-p)/n_app): about 0.61 and
    # 0.50 percentage points here.
    n_trials = 20_000
    res = simulate(Boin12Design(Boin12Config(**ISSUE8)), ISSUE8_TOX, ISSUE8_EFF, n_trials=n_trials, seed=8)
    for dose, published in ISSUE8_APP.items():
        ours = float(np.mean(res.selected == dose))
        se = np.sqrt(published * (1 - published) * (1 / n_trials + 1 / ISSUE8_APP_TRIALS))
        assert abs(ours - published) < 3 * se, (dose, ours, published, se)


def test_paper_rule_keeps_the_previous_selection() -> None:
    # the paper's rule is escalade's previous one: only treated doses fitted, exact umbrella fit, no adjustments
    cfg = Boin12Config(**ISSUE8, selection="paper")
    n, tox, eff, both = _random_counts(np.random.default_rng(3), 300, 5)
    est = boin12_estimates(cfg, n, tox, eff, both)
    assert np.isnan(est.p_tox[n == 0]).all() and np.isnan(est.p_eff[n == 0]).all()
    np.testing.assert_allclose(est.p_eff, _paper_estimates_one_at_a_time(cfg, n, tox, eff), rtol=0, atol=1e-12)


def test_software_rule_selects_nothing_after_a_stopping_decision() -> None:
    # Doses 1 and 2 have 0/9 responses (Pr(p_E < 0.25 | 0/9) = 1 - 0.75^10 = 0.94 > 0.9: futile); dose 2, the
    # current one, has 4/9 DLTs, at BOIN's de-escalation boundary, with no admissible dose below: the decision
    # stops the trial (no acceptable dose) although dose 3 (0/3 DLTs, 2/3 responses) is admissible. Dose 3 is
    # the MTD (pooled toxicity 4.1/12.2 + 0.003 = 0.339) and the only admissible dose up to it: the paper's
    # rule selects it from the final data, the software reports the trial as stopped (no dose).
    cfg = Boin12Config(**ISSUE8)
    counts = dict(n=[[9, 9, 3, 0, 0]], tox=[[0, 4, 0, 0, 0]], both=[[0, 0, 0, 0, 0]])
    s = States.from_counts(counts["n"], counts["tox"], [[0, 0, 2, 0, 0]], counts["both"], current=1)
    d = Boin12Design(cfg)
    dec = d.decide(s)
    assert dec.stop[0] and dec.reason[0] == StopReason.NO_ACCEPTABLE
    np.testing.assert_array_equal(d.admissible(s)[0], [False, False, True, True, True])
    est = boin12_estimates(cfg, s.n, s.tox, s.eff, s.both)
    assert est.mtd[0] == 2 and est.obd[0] == 2
    assert d.select(s)[0] == NO_DOSE
    assert Boin12Design(dataclasses.replace(cfg, selection="paper")).select(s)[0] == 2
    # with 4/9 responses at dose 2 it stays admissible: the trial goes on, and a dose is selected
    s2 = States.from_counts(counts["n"], counts["tox"], [[0, 4, 2, 0, 0]], counts["both"], current=1)
    assert not d.decide(s2).stop[0]
    assert d.select(s2)[0] == 2


def test_selection_option_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="selection"):
        Boin12Config(target=0.3, n_doses=3, selection="app")


def test_both_rules_agree_on_a_clear_case() -> None:
    s = States.from_counts([[6, 6, 6, 0, 0]], [[0, 1, 4, 0, 0]], [[1, 5, 5, 0, 0]], [[0, 1, 3, 0, 0]], current=2)
    for sel in ("software", "paper"):
        cfg = dataclasses.replace(Boin12Config(target=0.3, n_doses=5, phi_e=0.3), selection=sel)
        assert Boin12Design(cfg).select(s)[0] == 1, sel
