"""Exact operating characteristics (simulations/exact.py).

References: validation/reference/escalation/ (exact recommendation probabilities of the
R package escalation 0.2.3, confirmed by an independent enumeration), Wheeler et
al.'s exact A+B figures (validation/reference/README.md), closed forms, and the Monte
Carlo engine (within 4 standard errors computed from the number of trials).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from scipy import stats

from _toy_designs import CountingDesign, ToyPhase12
from conftest import load_reference
from escalade.design.base import NO_DOSE, StopReason
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.threeplusthree import ThreePlusThreeConfig, ThreePlusThreeDesign
from escalade.scenarios.errors import ConfigError, EscaladeError
from escalade.simulations.exact import (
    ExactLimitError, ExactOutcomes, cell_probabilities, cohort_outcomes, exact_outcomes,
)
from escalade.simulations.outcomes import TrialOutcomes
from escalade.simulations.trial import simulate

ESC = load_reference("escalation", "escalation_exact_probs.json")
CURVE_A = ESC["results"]["boin"]["curves"]["A_given"]["true_prob_tox"]  # (0.05, 0.10, 0.25, 0.40, 0.55)


def _recommend(out: TrialOutcomes, n_doses: int) -> np.ndarray:
    """P(no dose), P(dose 1), ..., P(dose D)."""
    return np.bincount(out.selected + 1, weights=out.weight, minlength=n_doses + 1)


def _expected_n(out: TrialOutcomes) -> np.ndarray:
    return (out.n * out.weight[:, None]).sum(axis=0)


def _ref_vector(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    pr = entry["prob_recommend"]
    rec = np.array([pr["NoDose"]] + [pr[str(k)] for k in range(1, 6)])
    en = np.array([entry["expected_n_at_dose"][str(k)] for k in range(1, 6)])
    return rec, en


# --------------------------------------------------------------------------- BOIN vs escalation


def test_boin_select_mtd_semantics_equal_escalation() -> None:
    # escalation_exact_probs.json, results.boin_stop12_select_mtd, curve A_given:
    # get_boin(num_doses = 5, target = 0.25) %>% stop_at_n(n = 12) %>% select_boin_mtd(),
    # get_dose_paths(cohort_sizes = c(3, 3, 3, 3)), calculate_probabilities(true_prob_tox = A)
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=12))
    out = exact_outcomes(design, CURVE_A)
    rec, en = _ref_vector(ESC["results"]["boin_stop12_select_mtd"]["curves"]["A_given"])
    np.testing.assert_allclose(_recommend(out, 5), rec, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_expected_n(out), en, rtol=0, atol=1e-9)
    assert isinstance(out, ExactOutcomes) and isinstance(out, TrialOutcomes) and out.exact


def test_boin_next_dose_semantics_equal_escalation() -> None:
    # escalation_exact_probs.json, results.boin: plain get_boin(num_doses = 5, target = 0.25); the
    # "recommended dose" is the selector's next-dose decision after the 4th cohort.
    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=12))
    out = exact_outcomes(design, CURVE_A, recommendation="next_dose")
    rec, en = _ref_vector(ESC["results"]["boin"]["curves"]["A_given"])
    np.testing.assert_allclose(_recommend(out, 5), rec, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_expected_n(out), en, rtol=0, atol=1e-9)
    assert out.recommendation == "next_dose"


# --------------------------------------------------------------------------- CRM vs escalation

_HAS_CRM = importlib.util.find_spec("escalade.design.crm") is not None
SKELETON = ESC["meta"]["skeleton"]  # (0.05, 0.12, 0.25, 0.40, 0.55)


def _crm(**extra: object):
    from escalade.design.registry import build_design

    params = {"skeleton": SKELETON, **extra}
    return build_design("crm", params, {"target": 0.25, "n_doses": 5, "cohort_size": 3, "max_n": 12,
                                        "start_dose": 0})


@pytest.mark.skipif(not _HAS_CRM, reason="design/crm.py is not in this checkout yet")
def test_crm_empiric_equals_escalation() -> None:
    # escalation_exact_probs.json, results.crm_empiric, curve A_given: get_dfcrm(skeleton, target = 0.25)
    # (dfcrm::crm defaults: empiric, bayes, scale = sqrt(1.34); skipping allowed, no coherence rule),
    # cohorts 3,3,3,3; recommendation = the model's dose after the 4th cohort.
    out = exact_outcomes(_crm(no_skip="off", coherence="off"), CURVE_A)
    rec, en = _ref_vector(ESC["results"]["crm_empiric"]["curves"]["A_given"])
    np.testing.assert_allclose(_recommend(out, 5), rec, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_expected_n(out), en, rtol=0, atol=1e-9)


@pytest.mark.skipif(not _HAS_CRM, reason="design/crm.py is not in this checkout yet")
def test_crm_no_skip_equals_crmsim_restrict_enumeration() -> None:
    # validation/reference/escalation/README.md, row "own crm_dfcrm_crmsim_restrict", curve A (printed to
    # 6 decimals, so compared to 5e-7): dfcrm::crmsim(restrict = TRUE) semantics, enumerated exactly:
    # no skipping above the current dose, no escalation after a cohort with DLT fraction >= target;
    # final selection = the model's recommended dose (5 after four clean cohorts, though never given).
    out = exact_outcomes(_crm(), CURVE_A)  # CrmDesign defaults are crmsim(restrict = TRUE)
    rec = [0.0, 0.020879, 0.266042, 0.355030, 0.301093, 0.056956]
    np.testing.assert_allclose(_recommend(out, 5), rec, rtol=0, atol=5e-7)
    np.testing.assert_allclose(_expected_n(out), [3.6990, 4.1245, 3.3855, 0.7910, 0.0], rtol=0, atol=5e-5)


# --------------------------------------------------------------------------- 3+3: Wheeler et al.

# validation/reference/README.md: Wheeler et al.'s exact A+B figures, as quoted (2 decimals) in the R
# package escalation's tests. The AplusB app prints signif(x, 3) (helpers.R, print.threep3); the
# quoted figures are those rounded again to 2 decimals (e.g. 0.3247 -> 0.325 -> 0.33), which is the
# only rounding under which both rows agree with the exact values.
WHEELER = [
    (True, [0.1, 0.2, 0.3, 0.4, 0.5], [0.10, 0.28, 0.33, 0.20, 0.06, 0.02]),
    (False, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [0.09, 0.26, 0.33, 0.22, 0.08, 0.02, 0, 0, 0]),
]


def _signif_then_2dp(x: float) -> float:
    return round(float(f"{x:.3g}"), 2)


@pytest.mark.parametrize("deesc,p_true,expected", WHEELER)
def test_threeplusthree_equals_wheeler_figures(deesc: bool, p_true: list[float], expected: list[float]) -> None:
    d = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=len(p_true), allow_deescalation=deesc))
    probs = _recommend(exact_outcomes(d, p_true), len(p_true))
    assert [_signif_then_2dp(p) for p in probs] == expected, probs


def test_threeplusthree_without_deescalation_equals_closed_form() -> None:
    # Storer's 3+3: dose j passes with 0/3, or 1/3 then 0/3: pass_j = b0 + b1 b0 with b0 = (1-p)^3,
    # b1 = 3p(1-p)^2; MTD = k iff doses 1..k pass and k+1 fails (the top dose passing ends at the top).
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    b0, b1 = (1 - p) ** 3, 3 * p * (1 - p) ** 2
    passes = b0 + b1 * b0
    expected = [1 - passes[0]]
    for k in range(len(p)):
        fail_next = 1 - passes[k + 1] if k + 1 < len(p) else 1.0
        expected.append(np.prod(passes[: k + 1]) * fail_next)
    d = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=len(p), allow_deescalation=False))
    np.testing.assert_allclose(_recommend(exact_outcomes(d, p), len(p)), expected, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- properties


CASES = [
    ("boin", BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=24)), [0.05, 0.15, 0.3, 0.45, 0.6], None, 0.0),
    ("boin-extrasafe", BoinDesign(BoinConfig(target=0.3, n_doses=4, max_n=18, extrasafe=True, titration=True)),
     [0.3, 0.5, 0.6, 0.7], [0.2, 0.4, 0.5, 0.5], 0.5),
    ("3+3", ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=6, allow_deescalation=True)),
     [0.02, 0.1, 0.2, 0.35, 0.5, 0.6], None, 0.0),
    ("toy12", ToyPhase12(), [0.1, 0.3, 0.5], [0.2, 0.5, 0.7], -0.4),
]


@pytest.mark.parametrize("name,design,p_tox,p_eff,rho", CASES, ids=[c[0] for c in CASES])
def test_terminal_probabilities_sum_to_one(name: str, design, p_tox, p_eff, rho) -> None:
    out = exact_outcomes(design, p_tox, p_eff, association=rho)
    assert abs(out.weight.sum() - 1.0) <= 1e-12
    assert np.all(out.weight > 0)
    # one row per distinct terminal outcome
    key = np.concatenate([out.n, out.tox, out.cohorts[:, None], out.selected[:, None], out.reason[:, None]], axis=1)
    if out.efficacy_enumerated:
        key = np.concatenate([key, out.eff, out.both], axis=1)
    assert np.unique(key, axis=0).shape[0] == out.n_trials
    ended = out.reason == StopReason.MAX_SAMPLE_SIZE
    assert np.all(out.n[ended].sum(axis=1) == design.max_n)
    assert np.all(out.n[~ended].sum(axis=1) < design.max_n)


def test_decide_sees_each_distinct_state_once_per_depth() -> None:
    design = CountingDesign(BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=15)))
    exact_outcomes(design, CURVE_A)
    assert design.batches
    for batch in design.batches:
        assert np.unique(batch, axis=0).shape[0] == batch.shape[0]


def test_state_fields_counts_merges_more_and_changes_nothing() -> None:
    # BOIN's decide and select never read the last cohort, so declaring it merges more states
    class Declared(CountingDesign):
        state_fields = "counts"

    class Undeclared(CountingDesign):
        state_fields = "all"

    base = BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=18))
    a, b = Undeclared(base), Declared(base)
    ea, eb = exact_outcomes(a, CURVE_A), exact_outcomes(b, CURVE_A)
    assert eb.n_decided < 0.8 * ea.n_decided
    np.testing.assert_allclose(_recommend(ea, 5), _recommend(eb, 5), atol=1e-15)
    for field in ("n", "tox"):
        np.testing.assert_allclose((getattr(ea, field) * ea.weight[:, None]).sum(axis=0),
                                   (getattr(eb, field) * eb.weight[:, None]).sum(axis=0), atol=1e-14)

    class Wrong(CountingDesign):
        state_fields = "counts_only"

    with pytest.raises(ConfigError, match="state_fields"):
        exact_outcomes(Wrong(base), CURVE_A)


@pytest.mark.parametrize("rho", [0.0, 0.45, -0.7])
def test_cell_probabilities_equal_bivariate_normal(rho: float) -> None:
    pt = np.array([0.05, 0.2, 0.5, 0.83])
    pe = np.array([0.6, 0.1, 0.5, 0.3])
    cells = cell_probabilities(pt, pe, rho)
    np.testing.assert_allclose(cells.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(cells[:, 0] + cells[:, 1], pt, atol=1e-15)
    np.testing.assert_allclose(cells[:, 0] + cells[:, 2], pe, atol=1e-15)
    cov = [[1.0, rho], [rho, 1.0]]
    ref = [stats.multivariate_normal.cdf([stats.norm.ppf(a), stats.norm.ppf(b)], mean=[0, 0], cov=cov,
                                         abseps=1e-12, releps=1e-12) for a, b in zip(pt, pe)]
    np.testing.assert_allclose(cells[:, 0], ref, rtol=0, atol=1e-9)


def test_cell_probabilities_limits() -> None:
    assert cell_probabilities([0.3], [0.6], 1.0)[0, 0] == pytest.approx(0.3, abs=1e-15)
    assert cell_probabilities([0.3], [0.6], -1.0)[0, 0] == pytest.approx(0.0, abs=1e-15)
    assert cell_probabilities([0.3], [0.6], 0.0)[0, 0] == 0.3 * 0.6
    assert cell_probabilities([0.0], [0.6], 0.5)[0, 0] == 0.0


def test_cohort_outcomes_count_compositions() -> None:
    cells, coef = cohort_outcomes(3, True)
    assert cells.shape == (math.comb(3 + 3, 3), 4)         # compositions of 3 into 4 cells
    assert coef.sum() == 4 ** 3                              # multinomial theorem
    assert np.all(cells.sum(axis=1) == 3)
    cells, coef = cohort_outcomes(4, False)
    assert coef.tolist() == [1, 4, 6, 4, 1]


def test_expected_responses_equal_enumerated_responses() -> None:
    # a toxicity-only design: enumerating responses must give the same selection and the same
    # expected responders per dose as the conditional expectations (module docstring)
    design = BoinDesign(BoinConfig(target=0.3, n_doses=3, max_n=12))
    p_tox, p_eff, rho = [0.1, 0.3, 0.5], [0.2, 0.45, 0.6], 0.6
    a = exact_outcomes(design, p_tox, p_eff, association=rho)
    b = exact_outcomes(design, p_tox, p_eff, association=rho, efficacy="enumerate")
    assert not a.efficacy_enumerated and b.efficacy_enumerated
    assert b.n_trials > a.n_trials
    np.testing.assert_allclose(_recommend(a, 3), _recommend(b, 3), atol=1e-14)
    for field in ("n", "tox", "eff", "both"):
        ea = (getattr(a, field) * a.weight[:, None]).sum(axis=0)
        eb = (getattr(b, field) * b.weight[:, None]).sum(axis=0)
        np.testing.assert_allclose(ea, eb, atol=1e-13, err_msg=field)


@pytest.mark.parametrize("design,p_tox,p_eff,rho", [
    (BoinDesign(BoinConfig(target=0.3, n_doses=4, max_n=15)), [0.1, 0.25, 0.4, 0.55], [0.2, 0.4, 0.5, 0.6], 0.5),
    (ToyPhase12(), [0.1, 0.3, 0.5], [0.2, 0.5, 0.7], -0.4),
], ids=["boin", "toy12"])
def test_exact_agrees_with_the_simulator(design, p_tox, p_eff, rho) -> None:
    t = 20_000
    sim = simulate(design, p_tox, p_eff, n_trials=t, seed=11, association=rho, chunk_size=5000)
    ex = exact_outcomes(design, p_tox, p_eff, association=rho)
    nd = design.n_doses
    # selection probabilities: binomial standard errors from the exact p
    p = _recommend(ex, nd)
    got = np.bincount(sim.selected + 1, minlength=nd + 1) / t
    se = np.sqrt(np.maximum(p * (1 - p), 1e-6) / t)
    assert np.all(np.abs(got - p) <= 4 * se), (got, p)
    # mean counts per dose: standard errors from the simulated spread
    for field in ("n", "tox", "eff", "both"):
        x = getattr(sim, field).astype(float)
        mean = (getattr(ex, field) * ex.weight[:, None]).sum(axis=0)
        se = x.std(axis=0, ddof=1) / np.sqrt(t) + 1e-9
        assert np.all(np.abs(x.mean(axis=0) - mean) <= 4 * se), (field, x.mean(axis=0), mean)
    # reasons
    for r in np.unique(np.r_[ex.reason, sim.reason]):
        pe_ = ex.weight[ex.reason == r].sum()
        assert abs(np.mean(sim.reason == r) - pe_) <= 4 * math.sqrt(max(pe_ * (1 - pe_), 1e-6) / t)


# --------------------------------------------------------------------------- errors


def test_state_limit_raises_with_its_numbers() -> None:
    design = BoinDesign(BoinConfig(target=0.3, n_doses=5, max_n=30))
    with pytest.raises(ExactLimitError) as info:
        exact_outcomes(design, [0.05, 0.15, 0.3, 0.45, 0.6], max_states=100)
    err = info.value
    assert err.limit == 100 and err.n_states > 100 and err.depth >= 1 and err.design == "boin"
    assert "simulate instead" in str(err) and "max_states" in str(err)
    assert isinstance(err, EscaladeError)


def test_limit_message_estimates_the_measured_peak_memory() -> None:
    # issue 18: the message said ~200 bytes per state while ~1,300 were used; now the estimate is
    # checked against tracemalloc's peak (NumPy reports its buffers to it) on a run whose live states
    # dominate the fixed costs
    import tracemalloc

    from escalade.simulations import exact as exact_module

    design = BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=39))
    exact_outcomes(BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=6)), CURVE_A)
    tracemalloc.start()
    try:
        out = exact_outcomes(design, CURVE_A)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    measured = peak / out.peak_states
    with pytest.raises(ExactLimitError) as info:
        exact_outcomes(design, CURVE_A, max_states=out.peak_states - 1)
    est = info.value.bytes_per_state
    assert est == exact_module._bytes_per_state(np.zeros((0, 23), np.int8))
    assert 0.8 * measured <= est <= 1.3 * measured, (est, measured)  # the old 200 bytes: 0.65
    assert f"about {est} bytes per state" in str(info.value)


def test_compact_storage_gives_the_same_numbers_as_int64() -> None:
    from escalade.simulations import exact as exact_module

    assert exact_module._storage_dtype(24, 5) == np.int8
    assert exact_module._storage_dtype(300, 5) == np.int16
    runs = [(BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=24)), "auto"),
            (BoinDesign(BoinConfig(target=0.25, n_doses=5, cohort_size=3, max_n=9)), "enumerate")]
    for design, efficacy in runs:
        compact = exact_outcomes(design, CURVE_A, [0.1, 0.2, 0.3, 0.4, 0.5], 0.2, efficacy=efficacy)
        original = exact_module._storage_dtype
        try:
            exact_module._storage_dtype = lambda max_n, n_doses: np.dtype(np.int64)
            wide = exact_outcomes(design, CURVE_A, [0.1, 0.2, 0.3, 0.4, 0.5], 0.2, efficacy=efficacy)
        finally:
            exact_module._storage_dtype = original
        for f in ("selected", "reason", "n", "tox", "eff", "both", "cohorts", "weight"):
            a, b = getattr(compact, f), getattr(wide, f)
            assert a.dtype == b.dtype and np.array_equal(a, b), (efficacy, f)


def test_bad_inputs_say_the_fix() -> None:
    design = BoinDesign(BoinConfig(target=0.3, n_doses=3, max_n=9))
    with pytest.raises(ConfigError, match="p_tox.*one probability per dose \\(3 values\\)"):
        exact_outcomes(design, [0.1, 0.2])
    with pytest.raises(ConfigError, match="p_eff.*probabilities in \\[0, 1\\]"):
        exact_outcomes(design, [0.1, 0.2, 0.3], [0.1, 1.2, 0.3])
    with pytest.raises(ConfigError, match="association"):
        exact_outcomes(design, [0.1, 0.2, 0.3], association=1.5)
    with pytest.raises(ConfigError, match="recommendation"):
        exact_outcomes(design, [0.1, 0.2, 0.3], recommendation="mtd")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be enumerated"):
        exact_outcomes(ToyPhase12(), [0.1, 0.2, 0.3], efficacy="expected")


def test_non_markov_design_is_refused() -> None:
    class NotMarkov(ToyPhase12):
        enumerable = False  # type: ignore[assignment]

    with pytest.raises(EscaladeError, match="not Markov"):
        exact_outcomes(NotMarkov(), [0.1, 0.2, 0.3])


def test_next_dose_recommendation_is_none_where_the_design_stopped() -> None:
    design = ThreePlusThreeDesign(ThreePlusThreeConfig(n_doses=3))
    out = exact_outcomes(design, [0.2, 0.3, 0.5], recommendation="next_dose")
    stopped = out.reason != StopReason.MAX_SAMPLE_SIZE
    assert stopped.any() and np.all(out.selected[stopped] == NO_DOSE)
