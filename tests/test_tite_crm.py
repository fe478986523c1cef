"""TITE-CRM against dfcrm 0.2-2.1 (titecrm fits, titesim operating characteristics)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_reference
from escalade.design.base import States
from escalade.design.registry import build_design
from escalade.design.tite_crm import FollowUp, TiteCrmConfig, TiteCrmDesign, tite_weights, titecrm
from escalade.scenarios.errors import ConfigError
from escalade.scenarios.study import Timing
from escalade.simulations.timed import DAYS_PER_MONTH, simulate_timed

TOL = 1e-6  # dfcrm's own integration error is <= 1.3e-7 here (validation/reference/dfcrm/README.md)


def _fits(name: str):
    ref = load_reference("dfcrm", name)
    for key, ds in ref["datasets"].items():
        for variant, fit in ds["fits"].items():
            if "mle" in variant:
                continue  # TITE-CRM is implemented for method = "bayes" only
            yield pytest.param(ref["skeletons"][ds["skeleton"]]["value"], ds, variant, fit, id=f"{key}-{variant}")


@pytest.mark.parametrize("skeleton,ds,variant,fit", list(_fits("titecrm.json")))
def test_titecrm_matches_dfcrm(skeleton, ds, variant, fit) -> None:
    # titecrm(prior = <sk>, target, tox, level, n = length(level), followup, obswin, scheme,
    #         conf.level = 0.9, method = "bayes", model, var.est = TRUE, scale = sqrt(1.34), intcpt = 3)
    # (exact call in fit["call"])
    model = "logistic" if "logistic" in variant else "empiric"
    scheme = "adaptive" if "adaptive" in variant else "linear"
    got = titecrm(np.asarray(ds["level"]) - 1, ds["tox"], ds["followup"], ds["obswin"], skeleton=skeleton,
                  target=ds["target"], model=model, scheme=scheme, conf_level=fit["conf.level"])
    np.testing.assert_allclose(got.weights, fit["weights"], atol=1e-12, rtol=0)
    assert got.estimate == pytest.approx(fit["estimate"], abs=TOL)
    assert got.post_var == pytest.approx(fit["post_var"], abs=TOL)
    np.testing.assert_allclose(got.ptox, fit["ptox"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got.ptox_lower, fit["ptoxL"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got.ptox_upper, fit["ptoxU"], atol=TOL, rtol=0)
    assert got.mtd + 1 == fit["mtd"]


@pytest.mark.parametrize("skeleton,ds,variant,fit", list(_fits("crm_posterior.json")))
def test_complete_follow_up_is_dfcrm_crm(skeleton, ds, variant, fit) -> None:
    # crm(prior = <sk>, target, tox, level, conf.level = 0.9, method = "bayes", model, intcpt = 3,
    #     scale = sqrt(1.34), var.est = TRUE): TITE-CRM with every weight 1 is the CRM.
    model = "logistic" if "logistic" in variant else "empiric"
    n = len(ds["level"])
    got = titecrm(np.asarray(ds["level"]) - 1, ds["tox"], np.ones(n), 1.0, skeleton=skeleton,
                  target=ds["target"], model=model)
    assert got.estimate == pytest.approx(fit["estimate"], abs=TOL)
    assert got.post_var == pytest.approx(fit["post_var"], abs=TOL)
    np.testing.assert_allclose(got.ptox, fit["ptox"], atol=TOL, rtol=0)
    assert got.mtd + 1 == fit["mtd"]


def test_linear_and_adaptive_weights_by_hand() -> None:
    # dfcrm help example, window 180: DLTs at days 168 and 24 (weights 1). Linear: u / 180.
    # Adaptive (z = 2 DLTs at 24 < 168): u = 3 -> m = 0: 3/24/3; u = 42 -> m = 1:
    # (1 + (42-24)/(168-24))/3 = 0.375; u = 178 -> m = 2: (2 + (178-168)/(180-168))/3 = 0.9444.
    f = FollowUp.one([2, 2, 2, 3, 3, 2, 1, 1, 1, 2], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0],
                     [178, 181, 168, 181, 24, 181, 179, 102, 42, 3], 180)
    lin = tite_weights(f, "linear")[0]
    np.testing.assert_allclose(lin[[0, 2, 4, 7, 9]], [178 / 180, 1, 1, 102 / 180, 3 / 180])
    ada = tite_weights(f, "adaptive")[0]
    np.testing.assert_allclose(ada[[9, 8, 0, 1]], [3 / 24 / 3, 0.375, (2 + 10 / 12) / 3, 1.0])
    # no DLT yet: adaptive falls back to linear; empty slots weigh 0
    g = FollowUp(np.array([[0, 0, -1]]), np.zeros((1, 3), bool), np.array([[0.5, 1.0, 0.0]]))
    np.testing.assert_allclose(tite_weights(g, "adaptive"), [[0.5, 1.0, 0.0]])


def test_titesim_operating_characteristics() -> None:
    # titesim(PI = c(0.05, 0.12, 0.25, 0.4, 0.55), prior = <sk5>, target = 0.25, n = 24, x0 = 1,
    #         nsim = 2000, restrict = TRUE, obswin = 28, tgrp = 28, rate = 2, accrual = "fixed",
    #         surv = "uniform", scheme = "linear", method = "bayes", model = "empiric", seed = 1009)
    # Arrivals every obswin / rate = 14 days. Both sides are Monte Carlo: the difference of two
    # independent estimates has SE sqrt(se_ours^2 + se_ref^2) (= sqrt(2) se at equal sizes);
    # require each within 3 such SEs (proportions with the pooled binomial variance).
    ref = load_reference("dfcrm", "titesim.json")["scenarios"]["TS1"]
    args, res, der = ref["args"], ref["result"], ref["derived_from_per_trial_data"]
    design = TiteCrmDesign(TiteCrmConfig(skeleton=tuple(args["prior"]), target=0.25, n_doses=5, max_n=24))
    timing = Timing(accrual="fixed", rate_per_month=DAYS_PER_MONTH / 14, dlt_onset="uniform")
    n_ours, n_ref = 4000, args["nsim"]
    out = simulate_timed(design, args["PI"], timing=timing, dlt_window_days=28, n_trials=n_ours,
                         seed=20261124, chunk_size=1000)
    sel = np.array([(out.selected == j).mean() for j in range(5)])
    ref_sel = np.array(res["MTD_selection_fraction"])
    pooled = (n_ours * sel + n_ref * ref_sel) / (n_ours + n_ref)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_ours + 1 / n_ref))
    assert np.all(np.abs(sel - ref_sel) <= 3 * se), (sel, ref_sel, se)
    for ours, theirs, sd in ((out.n, res["level_mean_patients"], der["level_sd"]),
                             (out.tox, res["tox_mean_dlts"], der["tox_sd"])):
        sd = np.array(sd)
        se = np.sqrt(ours.var(axis=0, ddof=1) / n_ours + sd**2 / n_ref)
        assert np.all(np.abs(ours.mean(axis=0) - theirs) <= 3 * se), (ours.mean(axis=0), theirs)
    # titesim's Duration = last arrival + obswin from time 0 (364 days); ours runs from the first
    # patient's dosing (day 14), with no waiting in TITE-CRM.
    assert np.allclose(out.duration, res["duration_mean"] - 14.0)
    assert np.all(out.suspensions == 0)


def test_complete_data_decide_matches_pending_decide_with_everyone_followed() -> None:
    design = build_design("tite_crm", {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55]},
                          {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 24})
    assert design.config.cohort_size == 3 and design.config.max_n == 24 and not design.enumerable
    rng = np.random.default_rng(5)
    doses = rng.integers(0, 5, size=(30, 12))
    dlt = rng.random((30, 12)) < 0.3
    n = np.stack([np.bincount(r, minlength=5) for r in doses])
    y = np.stack([np.bincount(r, weights=t, minlength=5) for r, t in zip(doses, dlt)]).astype(int)
    states = States.from_counts(n, y, current=doses[:, -1])
    a = design.decide(states)
    b = design.decide_tite(states, FollowUp(doses, dlt, np.ones((30, 12)))).decisions
    np.testing.assert_array_equal(a.dose, b.dose)
    assert np.all(a.dose <= states.current + 1)  # restrict: never skip upwards


@pytest.mark.parametrize("params,field", [
    ({"skeleton": [0.1, 0.3, 0.2, 0.4, 0.5]}, "skeleton"),
    ({"skeleton": [0.1, 0.2, 0.3]}, "skeleton"),
    ({"skeleton": [0.1, 0.2, 0.3, 0.4, 0.5], "scheme": "quadratic"}, "scheme"),
    ({"skeleton": [0.1, 0.2, 0.3, 0.4, 0.99], "model": "logistic", "intercept": 3}, "intercept"),
    ({"skeleton": [0.1, 0.2, 0.3, 0.4, 0.5], "prior_var": -1.0}, "prior_var"),
    ({"skeleton": [0.1, 0.2, 0.3, 0.4, 0.5], "no_skip": "never"}, "no_skip"),
])
def test_config_errors_name_the_field(params, field) -> None:
    with pytest.raises(ConfigError) as exc:
        TiteCrmConfig(target=0.25, n_doses=5, **params)
    assert exc.value.field == field


def test_defaults_are_titesims() -> None:
    c = TiteCrmConfig(skeleton=(0.1, 0.2, 0.3), target=0.2, n_doses=3)
    assert (c.model, c.intercept, c.prior_var, c.scheme, c.cohort_size) == ("empiric", 3.0, 1.34, "linear", 1)
    assert (c.no_skip, c.coherence, c.safety_threshold) == ("current", "off", None)  # titesim: restrict only


def test_safety_stop_on_the_weighted_posterior() -> None:
    # Three patients at the lowest dose, all with DLTs: Pr(p_1 > 0.25) is large under the
    # (weighted) posterior, so the optional safety rule stops the trial with no dose.
    design = TiteCrmDesign(TiteCrmConfig(skeleton=(0.08, 0.16, 0.25, 0.35, 0.46), target=0.25, n_doses=5,
                                         safety_threshold=0.9, safety_min_n=3))
    states = States.from_counts([[3, 0, 0, 0, 0]], [[3, 0, 0, 0, 0]], current=0)
    follow = FollowUp(np.array([[0, 0, 0]]), np.ones((1, 3), bool), np.array([[0.2, 0.3, 0.1]]))
    dec = design.decide_tite(states, follow).decisions
    assert dec.stop[0] and design.select(states)[0] == -1
    # one DLT and two non-DLT patients followed for a tenth of the window (weights 0.1):
    # Pr(p_1 > 0.25) = 0.78 < 0.9, no stop; the same patients fully followed: 0.55
    follow = FollowUp(np.array([[0, 0, 0]]), np.array([[True, False, False]]), np.array([[0.2, 0.1, 0.1]]))
    states = States.from_counts([[3, 0, 0, 0, 0]], [[1, 0, 0, 0, 0]], current=0)
    assert not design.decide_tite(states, follow).decisions.stop[0]
