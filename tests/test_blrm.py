"""BLRM with EWOC (issue 17): the quadrature posterior against long PyMC NUTS runs
(validation/reference/blrm/nuts_reference.json, written by make_reference.py beside it) and a
brute-force dense grid; simulation-based calibration; rules; exact enumeration against
simulation on the shipped study; conduct mode."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from conftest import load_reference
from escalade.design.base import NO_DOSE, States, StopReason
from escalade.design.blrm import BlrmConfig, BlrmDesign, BlrmModel, blrm_fit
from escalade.design.registry import build_design
from escalade.scenarios.designs import build_study_designs
from escalade.scenarios.errors import ConfigError
from escalade.scenarios.load import load_study
from escalade.simulations.exact import exact_outcomes
from escalade.simulations.trial import simulate

HERE = Path(__file__).resolve().parent
REF = load_reference("blrm", "nuts_reference.json")
NAMES = list(REF["datasets"])
SA = dict(n_doses=5, doses=(1, 2.5, 5, 10, 25))
# Issue 17: the fast posterior equals a long NUTS run within 0.005. The NUTS Monte Carlo SE of
# these numbers is <= 0.0021 (stored per number in the JSON), so 0.005 is ~2.4 MC SEs at worst.
TOL_NUTS = 0.005


def _config(ds: dict, **kw: object) -> BlrmConfig:
    mix = tuple((w, m[0], m[1], math.sqrt(c[0][0]), math.sqrt(c[1][1]), c[0][1] / math.sqrt(c[0][0] * c[1][1]))
                for w, m, c in ds["components"])
    return BlrmConfig(n_doses=len(ds["doses"]), doses=ds["doses"], reference_dose=ds["reference_dose"],
                      mixture=mix, **kw)


def _fit(ds: dict, **kw: object):
    cfg = _config(ds, **kw)
    return cfg, blrm_fit(cfg, ds["n"], ds["tox"], extra_doses=ds["eval_doses"][cfg.n_doses:])


# ---------------------------------------------------------------------------------------------
# accuracy


def test_reference_holds_the_oncobayes2_example() -> None:
    ds = REF["datasets"]["hist_SA"]
    assert ds["doses"] == [1.0, 2.5, 5.0, 10.0, 25.0] and ds["n"] == [3, 4, 5, 4, 2] and ds["tox"] == [0, 0, 0, 0, 2]
    assert ds["reference_dose"] == 50.0 and ds["eval_doses"][-1] == 50.0
    assert ds["components"] == [[1.0, [0.0, 0.0], [[4.0, 0.0], [0.0, 1.0]]]]
    assert any(ds["tox"][0] > 0 for ds in REF["datasets"].values())  # a data set with DLTs at the lowest dose
    for ds in REF["datasets"].values():
        assert ds["max_rhat"] < 1.01 and ds["divergences"] == 0 and ds["min_ess_bulk"] > 10_000


@pytest.mark.parametrize("name", NAMES)
def test_interval_probabilities_and_quantiles_equal_nuts(name: str) -> None:
    ds = REF["datasets"][name]
    _, f = _fit(ds)
    got = np.stack([f.prob_under, f.prob_target, f.prob_over], axis=1)
    np.testing.assert_allclose(got, ds["interval_prob"], rtol=0, atol=TOL_NUTS)
    np.testing.assert_allclose(np.stack([f.q025, f.q50, f.q975], axis=1), ds["quantiles_p"], rtol=0, atol=TOL_NUTS)
    np.testing.assert_allclose(f.mean, ds["mean"], rtol=0, atol=TOL_NUTS)


@pytest.mark.parametrize("name", NAMES)
def test_eligible_set_and_recommended_dose_equal_nuts(name: str) -> None:
    ds = REF["datasets"][name]
    cfg, f = _fit(ds)
    ip = np.asarray(ds["interval_prob"])[: cfg.n_doses]
    eligible = ip[:, 2] < cfg.ewoc
    rec = int(np.argmax(np.where(eligible, ip[:, 1], -1.0))) if eligible.any() else NO_DOSE
    assert f.eligible == tuple(bool(v) for v in eligible)
    assert f.recommended == rec
    # and the margin to the EWOC bound is real, so the equality is not luck
    assert np.min(np.abs(ip[:, 2] - cfg.ewoc)) > 0.03


def test_hist_sa_decision() -> None:
    # EWOC excludes dose 5 (P(over) = 0.67); dose 4 has the highest P(target) among the rest
    _, f = _fit(REF["datasets"]["hist_SA"])
    assert f.eligible == (True, True, True, True, False) and f.recommended == 3


def _brute(cfg: BlrmConfig, n: list[int], y: list[int], eval_doses: list[float], m: int = 1600) -> dict:
    """Brute force on an m x m grid over the prior mean +- 9 SDs: a constant density per cell, and
    the exact share of each cell below a threshold in log alpha (so the error is O(step^2) even
    where the threshold runs along the grid, as at the reference dose)."""
    comps = cfg.components()
    lo = np.min([[mu[0] - 9 * math.sqrt(c[0][0]), mu[1] - 9 * math.sqrt(c[1][1])] for _, mu, c in comps], axis=0)
    hi = np.max([[mu[0] + 9 * math.sqrt(c[0][0]), mu[1] + 9 * math.sqrt(c[1][1])] for _, mu, c in comps], axis=0)
    h = (hi[0] - lo[0]) / m
    a = lo[0] + (np.arange(m) + 0.5) * h
    b = lo[1] + (np.arange(m) + 0.5) * (hi[1] - lo[1]) / m
    A, B = np.meshgrid(a, b)
    lp = np.full(A.shape, -np.inf)
    for w, mu, cov in comps:
        cov = np.asarray(cov)
        P = np.linalg.inv(cov)
        da, db = A - mu[0], B - mu[1]
        q = P[0, 0] * da * da + 2 * P[0, 1] * da * db + P[1, 1] * db * db
        lp = np.logaddexp(lp, math.log(w) - 0.5 * math.log(np.linalg.det(2 * math.pi * cov)) - 0.5 * q)
    eb = np.exp(B)
    for j, xj in enumerate(np.log(np.asarray(cfg.doses) / cfg.reference_dose_used)):
        eta = A + eb * xj
        lp += -y[j] * np.logaddexp(0, -eta) - (n[j] - y[j]) * np.logaddexp(0, eta)
    f = np.exp(lp - lp.max())
    f /= f.sum()

    def cdf(xe: float, e: float) -> float:
        return float((f * np.clip((e - eb * xe - (A - h / 2)) / h, 0.0, 1.0)).sum())

    lc = special.logit(np.asarray(cfg.target_interval))
    out: dict[str, list] = {"interval": [], "mean": [], "quantiles": []}
    for xe in np.log(np.asarray(eval_doses) / cfg.reference_dose_used):
        under, below2 = cdf(xe, lc[0]), cdf(xe, lc[1])
        out["interval"].append([under, below2 - under, 1 - below2])
        eta = A + eb * xe
        out["mean"].append((f * special.expit(eta)).sum())
        order = np.argsort(eta, axis=None)
        cw = np.cumsum(f.ravel()[order])
        es = eta.ravel()[order]
        qs = []
        for q in (0.025, 0.5, 0.975):
            e = es[np.searchsorted(cw, q)]          # within a step of the quantile; refine linearly, twice
            for half in (0.05, 0.002):
                lo_e, hi_e = e - half, e + half
                f_lo, f_hi = cdf(xe, lo_e), cdf(xe, hi_e)
                e = lo_e + (q - f_lo) / (f_hi - f_lo) * (hi_e - lo_e)
            qs.append(special.expit(e))
        out["quantiles"].append(qs)
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("name", ["hist_SA", "mixture_prior"])
def test_agrees_with_brute_force_dense_grid(name: str) -> None:
    # The brute force's own error is O(step^2) (step ~0.02 in log alpha), its quantiles refined by
    # linear interpolation of its CDF (twice, over 0.1 then 0.004 logit); observed <= 3e-5; tolerance 2e-4.
    ds = REF["datasets"][name]
    cfg, f = _fit(ds)
    b = _brute(cfg, ds["n"], ds["tox"], ds["eval_doses"])
    np.testing.assert_allclose(np.stack([f.prob_under, f.prob_target, f.prob_over], axis=1), b["interval"],
                               rtol=0, atol=2e-4)
    np.testing.assert_allclose(np.stack([f.q025, f.q50, f.q975], axis=1), b["quantiles"], rtol=0, atol=2e-4)
    np.testing.assert_allclose(f.mean, b["mean"], rtol=0, atol=1e-9)   # smooth integrand: both spectral


def test_default_grid_agrees_with_a_four_times_finer_grid() -> None:
    # the cubic-interpolant CDF converges like h^4: 161 nodes per axis vs 641 differ by at most 3.1e-4
    # here (30 patients each); bound 5e-4, ten times below the 0.005 of the NUTS comparison
    rng = np.random.default_rng(17)
    n = rng.multinomial(30, [0.2] * 5, size=40)
    y = rng.binomial(n, [0.05, 0.1, 0.2, 0.35, 0.5])
    for cfg_kw in (dict(reference_dose=10), dict(reference_dose=50, prior_corr=-0.5)):
        coarse = BlrmModel.from_config(BlrmConfig(**SA, **cfg_kw)).summarise(n, y)
        fine = BlrmModel.from_config(BlrmConfig(**SA, **cfg_kw, grid_points=641)).summarise(n, y)
        for k in ("prob_under", "prob_target", "prob_over", "mean"):
            assert np.abs(getattr(coarse, k) - getattr(fine, k)).max() < 5e-4, k
        assert coarse.edge_mass.max() < 1e-6


def test_batched_summaries_are_bit_identical_to_one_at_a_time() -> None:
    m = BlrmModel.from_config(BlrmConfig(**SA, reference_dose=10))
    rng = np.random.default_rng(3)
    n = rng.integers(0, 9, size=(75, 5))
    y = rng.binomial(n, 0.3)
    whole = m.summarise(n, y)
    perm = rng.permutation(75)
    shuffled = m.summarise(n[perm], y[perm])
    for k in ("prob_under", "prob_target", "prob_over", "mean", "edge_mass"):
        a = getattr(whole, k)
        assert np.array_equal(a[perm], getattr(shuffled, k)), k
        for i in (0, 31, 32, 74):
            assert np.array_equal(a[i], getattr(m.summarise(n[i:i + 1], y[i:i + 1]), k)[0]), (k, i)


def test_single_fit_equals_batched_summaries() -> None:
    cfg = BlrmConfig(**SA, reference_dose=50)
    s = BlrmModel.from_config(cfg).summarise([[3, 4, 5, 4, 2]], [[0, 0, 0, 0, 2]])
    f = blrm_fit(cfg, [3, 4, 5, 4, 2], [0, 0, 0, 0, 2])
    np.testing.assert_allclose(f.prob_over, s.prob_over[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.prob_target, s.prob_target[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.mean, s.mean[0], rtol=0, atol=1e-12)


def test_one_component_mixture_equals_the_plain_prior() -> None:
    a = blrm_fit(BlrmConfig(**SA, reference_dose=10, prior_mean=(-1, 0.2), prior_sd=(1.5, 0.7), prior_corr=0.3),
                 [3, 3, 3, 0, 0], [0, 0, 1, 0, 0])
    b = blrm_fit(BlrmConfig(**SA, reference_dose=10, mixture=[{"weight": 2, "mean": [-1, 0.2], "sd": [1.5, 0.7],
                                                                "corr": 0.3}]), [3, 3, 3, 0, 0], [0, 0, 1, 0, 0])
    assert a == b


def test_simulation_based_calibration() -> None:
    # Talts et al. (2018), arXiv:1804.06788: theta ~ prior, data ~ model, then the posterior CDF at the
    # true value (the normalised rank) is Uniform(0, 1). 1,000 replicates, 10 bins; chi-square p > 0.001
    # for log alpha (eta at d*) and for eta at the lowest and highest dose.
    cfg = BlrmConfig(**SA, reference_dose=10, prior_mean=(-1.0, 0.0), prior_sd=(1.0, 0.7), prior_corr=0.2)
    m = BlrmModel.from_config(cfg)
    comps = cfg.components()
    rng = np.random.default_rng(20241117)
    reps, n = 1000, np.array([3, 6, 6, 6, 3])
    theta = rng.multivariate_normal(comps[0][1], comps[0][2], size=reps)
    x_eval = np.array([0.0, m.x[0], m.x[-1]])
    ranks = np.empty((reps, x_eval.size))
    for r in range(reps):
        p = special.expit(theta[r, 0] + np.exp(theta[r, 1]) * m.x)
        y = rng.binomial(n, p)
        dens = m.density(n, y)
        ranks[r] = m.cdf(dens, x_eval, theta[r, 0] + np.exp(theta[r, 1]) * x_eval)
    for k in range(x_eval.size):
        counts = np.bincount(np.minimum((ranks[:, k] * 10).astype(int), 9), minlength=10)
        assert stats.chisquare(counts).pvalue > 1e-3, (k, counts)
        assert abs(ranks[:, k].mean() - 0.5) < 3 * math.sqrt(1 / 12 / reps)  # no bias: 3 MC SEs


# ---------------------------------------------------------------------------------------------
# rules


def _states(n, y, **kw) -> States:
    return States.from_counts(n, y, **kw)


def test_next_dose_is_the_eligible_dose_of_highest_target_probability() -> None:
    d = BlrmDesign(BlrmConfig(**SA, reference_dose=50, no_skip="off"))
    st = _states([3, 4, 5, 4, 2], [0, 0, 0, 0, 2], current=4)
    dec = d.decide(st)
    assert dec.dose.tolist() == [3] and not dec.stop[0]
    hi = BlrmDesign(BlrmConfig(**SA, reference_dose=50, no_skip="off", criterion="highest"))
    assert hi.decide(st).dose.tolist() == [3]
    # without data at the higher doses "highest" goes as high as EWOC allows; "target" not beyond it
    st2 = _states([3, 3, 0, 0, 0], [0, 0, 0, 0, 0], current=1)
    f = blrm_fit(hi.config, [3, 3, 0, 0, 0], [0, 0, 0, 0, 0])
    top = max(i for i, e in enumerate(f.eligible) if e)
    assert hi.decide(st2).dose.tolist() == [top]
    assert d.decide(st2).dose[0] <= top


def test_no_skipping_and_maximum_step() -> None:
    st = _states([3, 0, 0, 0, 0], [0, 0, 0, 0, 0], current=0)
    free = BlrmDesign(BlrmConfig(**SA, reference_dose=10, no_skip="off"))
    assert free.decide(st).dose[0] >= 2          # the model alone would skip
    assert BlrmDesign(BlrmConfig(**SA, reference_dose=10)).decide(st).dose.tolist() == [1]
    # x2.5 step from dose 1 (amount 1) allows amount 2.5 = dose 2 only
    step = BlrmDesign(BlrmConfig(**SA, reference_dose=10, no_skip="off", max_step=2.5))
    assert step.decide(st).dose.tolist() == [1]
    with pytest.raises(ConfigError, match="max_step.*forbids any escalation"):
        BlrmConfig(**SA, max_step=2.0)   # 2.5 / 1 > 2


def test_safety_stop_when_no_dose_is_eligible() -> None:
    d = BlrmDesign(BlrmConfig(**SA, reference_dose=50))
    st = _states([6, 3, 0, 0, 0], [2, 2, 0, 0, 0], current=1)
    dec = d.decide(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.ALL_TOXIC and dec.dose[0] == NO_DOSE
    assert d.select(st).tolist() == [NO_DOSE]
    # min_n does not hold a safety stop; safety_min_n does
    assert BlrmDesign(BlrmConfig(**SA, reference_dose=50, min_n=30)).decide(st).stop[0]
    later = BlrmDesign(BlrmConfig(**SA, reference_dose=50, safety_min_n=12)).decide(st)
    assert not later.stop[0] and later.dose[0] == 0


def test_stop_at_n_and_minimum_sample_size() -> None:
    st = _states([3, 3, 6, 6, 0], [0, 0, 1, 1, 0], current=3)
    base = dict(**SA, reference_dose=10)
    rec = int(BlrmDesign(BlrmConfig(**base)).select(st)[0])
    assert st.n[0, rec] == 6
    dec = BlrmDesign(BlrmConfig(**base, stop_n_at_dose=6)).decide(st)
    assert dec.stop[0] and dec.reason[0] == StopReason.N_AT_DOSE
    assert not BlrmDesign(BlrmConfig(**base, stop_n_at_dose=6, min_n=21)).decide(st).stop[0]
    assert not BlrmDesign(BlrmConfig(**base, stop_n_at_dose=6, stop_prob_target=0.99)).decide(st).stop[0]
    assert BlrmDesign(BlrmConfig(**base, stop_n_at_dose=6, stop_prob_target=0.3)).decide(st).stop[0]


def test_more_dlts_never_raise_the_overdose_probability_less() -> None:
    # coherence of the model: a DLT instead of a non-DLT raises P(over-dosing) at every dose
    m = BlrmModel.from_config(BlrmConfig(**SA, reference_dose=10))
    rng = np.random.default_rng(5)
    n = rng.integers(1, 7, size=(60, 5))
    y = rng.binomial(n - 1, 0.3)
    j = rng.integers(0, 5, size=60)
    y2 = y.copy()
    y2[np.arange(60), j] += 1
    assert np.all(m.summarise(n, y2).prob_over >= m.summarise(n, y).prob_over - 1e-12)


def test_select_tried_only() -> None:
    st = _states([3, 3, 0, 0, 0], [0, 0, 0, 0, 0], current=1)
    any_dose = BlrmDesign(BlrmConfig(**SA, reference_dose=10)).select(st)[0]
    tried = BlrmDesign(BlrmConfig(**SA, reference_dose=10, select_tried_only=True)).select(st)[0]
    assert any_dose > 1 and tried == 1


# ---------------------------------------------------------------------------------------------
# configuration, registry, study


@pytest.mark.parametrize("change,field", [
    (dict(doses=(1, 2, 2, 4, 5)), "doses"),
    (dict(doses=(1, 2, 3)), "doses"),
    (dict(doses=(-1, 2, 3, 4, 5)), "doses"),
    (dict(reference_dose=0), "reference_dose"),
    (dict(prior_sd=(2, 0)), "prior_sd"),
    (dict(prior_mean=(0,)), "prior_mean"),
    (dict(prior_corr=1.0), "prior_corr"),
    (dict(target_interval=(0.33, 0.16)), "target_interval"),
    (dict(ewoc=1.2), "ewoc"),
    (dict(criterion="max"), "criterion"),
    (dict(no_skip="never"), "no_skip"),
    (dict(max_step=1.0), "max_step"),
    (dict(stop_prob_target=0.5), "stop_prob_target"),
    (dict(mixture=[{"weight": 1, "mean": [0, 0]}]), "mixture[0].sd"),
    (dict(mixture=[{"weight": 1, "mean": [0, 0], "sd": [1, 1], "rho": 0}]), "mixture[0].rho"),
    (dict(mixture=[[1, 0, 0, 1, 1]]), "mixture[0]"),
    (dict(grid_points=11), "grid_points"),
])
def test_config_errors_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        BlrmConfig(**{**SA, **change})
    assert err.value.field == field


def test_registry_builds_from_study_fields() -> None:
    d = build_design("blrm", {"reference_dose": 10, "ewoc": 0.2},
                     {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 24, "start_dose": 0,
                      "doses": (1.0, 2.5, 5.0, 10.0, 25.0)})
    assert isinstance(d, BlrmDesign) and d.config.max_n == 24 and d.config.ewoc == 0.2
    assert build_design("blrm_ewoc", {}, {"n_doses": 5, "doses": (1, 2, 3, 4, 5)}).config.reference_dose_used == 3.0
    with pytest.raises(ConfigError, match="ewoc"):
        build_design("blrm", {"ewok": 0.2}, {"n_doses": 5, "doses": (1, 2, 3, 4, 5)})


def _shipped_blrm() -> tuple:
    study = load_study(HERE.parent / "scenarios" / "cart_rr_heme.yaml")
    designs = [d for spec, d in build_study_designs(study) if d.kind == "blrm"]
    assert len(designs) == 1
    return study, designs[0]


def test_shipped_study_has_a_blrm_with_the_study_doses() -> None:
    study, d = _shipped_blrm()
    assert d.config.doses == tuple(x.amount for x in study.doses)
    assert d.config.reference_dose_used == study.doses[2].amount   # the middle dose level, DL3


@pytest.mark.parametrize("k", range(8))
def test_exact_within_3_mc_se_of_simulation_on_shipped_scenarios(k: int) -> None:
    study, design = _shipped_blrm()
    sc = study.scenarios[k]
    p_t, p_e = np.asarray(sc.p_dlt), np.asarray(sc.p_response)
    ex = exact_outcomes(design, p_t, p_e)
    assert abs(ex.weight.sum() - 1.0) < 1e-12
    t = 4000
    sim = simulate(design, p_t, p_e, n_trials=t, seed=99)
    for j in range(-1, design.n_doses):
        p = float(ex.weight[ex.selected == j].sum())
        got = float(np.mean(sim.selected == j))
        se = math.sqrt(max(p * (1 - p), 1e-6) / t)
        assert abs(got - p) <= 3 * se + 1e-12, (j, got, p)
    en = (ex.n * ex.weight[:, None]).sum(axis=0)
    se = np.maximum(sim.n.std(axis=0, ddof=1) / math.sqrt(t), np.sqrt(design.max_n * en / t))
    assert np.all(np.abs(sim.n.mean(axis=0) - en) <= 3 * se + 1e-9)
    edt = (ex.tox.sum(axis=1) * ex.weight).sum()
    assert abs(sim.tox.sum(axis=1).mean() - edt) <= 3 * sim.tox.sum(axis=1).std(ddof=1) / math.sqrt(t)


def test_memoised_summaries_do_not_change_results() -> None:
    # a design whose cache is warm from other trials gives the same trials as a fresh one
    _, design = _shipped_blrm()
    p = [0.05, 0.12, 0.30, 0.45, 0.60]
    warm = BlrmDesign(design.config)
    simulate(warm, [0.3, 0.4, 0.5, 0.6, 0.7], n_trials=300, seed=8)
    a = simulate(warm, p, n_trials=400, seed=5, chunk_size=100)
    b = simulate(BlrmDesign(design.config), p, n_trials=400, seed=5, chunk_size=100)
    assert np.array_equal(a.selected, b.selected) and np.array_equal(a.n, b.n) and np.array_equal(a.tox, b.tox)


# ---------------------------------------------------------------------------------------------
# conduct mode, packaging


def test_explain_feeds_conduct_mode() -> None:
    from escalade.simulations.conduct import Patient, format_next_dose, next_dose

    d = BlrmDesign(BlrmConfig(**SA, reference_dose=50))
    n, y = [3, 4, 5, 4, 2], [0, 0, 0, 0, 2]
    ex = d.explain(States.from_counts(n, y, current=4))
    tab = ex.table()
    assert tab["eligible"] == [True, True, True, True, False]
    assert tab["allowed"] == [True, True, True, True, False]
    assert ex.edge_mass < 1e-6 and ex.max_rhat is None and "EWOC" in ex.rule
    rows = [(j, int(i < y[j])) for j in range(5) for i in range(n[j])]
    res = next_dose(d, [Patient(str(i), dose, bool(t), None, i + 2) for i, (dose, t) in enumerate(rows)])
    assert (res.next_dose, res.stop, res.selected_now) == (4, False, 4)
    assert {"prob_under", "prob_target", "prob_over", "eligible"} <= set(res.table.columns)
    assert "EWOC" in format_next_dose(res)


def test_design_pickles_without_its_cache() -> None:
    import pickle

    d = BlrmDesign(BlrmConfig(**SA, reference_dose=10))
    d.decide(_states([3, 0, 0, 0, 0], [0, 0, 0, 0, 0]))
    assert d._cache.data
    blob = pickle.dumps(d)
    # neither the cached summaries nor the model's grid tables (~10 MB) travel: the receiving process
    # builds the model once and keeps one summary cache per model for all the copies it receives
    assert len(blob) < 20_000
    e, f = pickle.loads(blob), pickle.loads(blob)
    assert e.config == d.config and e._cache is not d._cache and e._cache is f._cache and e.model is f.model
    for k in ("log_terms", "log_prior", "weights"):
        assert np.array_equal(getattr(e.model, k), getattr(d.model, k))
    assert np.array_equal(e.decide(_states([3, 3, 0, 0, 0], [0, 1, 0, 0, 0])).dose,
                          d.decide(_states([3, 3, 0, 0, 0], [0, 1, 0, 0, 0])).dose)


def test_import_does_not_need_pymc() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['pymc'] = None; sys.modules['arviz'] = None; "
            "import escalade.design.blrm as b; print(b.BlrmConfig(n_doses=2, doses=(1, 2)).ewoc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.25"


@pytest.mark.parametrize("module", ["blrm", "crm_logistic2"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"escalade.design.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------
# NUTS (slow): the stored reference still holds, and conduct mode's --mcmc engine


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hist_SA", "dlt_at_lowest"])
def test_nuts_rerun_agrees_with_the_stored_reference(name: str) -> None:
    from escalade.design.blrm_pymc import sample_posterior

    ds = REF["datasets"][name]
    cfg = _config(ds)
    f = sample_posterior(cfg, States.from_counts(ds["n"], ds["tox"]), draws=5000, chains=4, seed=11)
    ref = np.asarray(ds["interval_prob"])[: cfg.n_doses]
    se = np.sqrt(np.maximum(ref * (1 - ref), 1e-4) / f.min_ess_bulk)
    assert np.all(np.abs(f.interval_prob - ref) <= 4 * se + 1e-3)
    assert f.max_rhat < 1.01 and f.divergences == 0


@pytest.mark.slow
def test_explain_with_nuts_carries_arviz_diagnostics() -> None:
    d = BlrmDesign(BlrmConfig(**SA, reference_dose=50))
    ex = d.explain(States.from_counts([3, 4, 5, 4, 2], [0, 0, 0, 0, 2]), mcmc=True, draws=2000, seed=1)
    assert ex.engine.startswith("NUTS") and ex.max_rhat < 1.01 and ex.ess > 1000
    assert ex.eligible == (True, True, True, True, False)


def test_run_and_report_show_the_blrm_beside_the_others(tmp_path: Path) -> None:
    from escalade.cli import main
    from escalade.reports.load import load_run
    from escalade.reports.methods import methods_section

    study = tmp_path / "s.yaml"
    study.write_text("""
study: {title: BLRM check, target: 0.3, cohort_size: 3, max_n: 15, start_dose: 1}
doses:
  - {label: DL1, amount: 1.0e+5, unit: cells/kg}
  - {label: DL2, amount: 3.0e+5, unit: cells/kg}
  - {label: DL3, amount: 1.0e+6, unit: cells/kg}
designs:
  - {name: "3+3", design: "3+3"}
  - name: BLRM
    design: blrm
    params: {prior_mean: [-1.386, 0.0], target_interval: [0.2, 0.35], stop_n_at_dose: 9}
  - {name: CRM2, design: crm2, params: {skeleton: [0.15, 0.3, 0.45]}}
scenarios:
  - {name: A, p_dlt: [0.05, 0.15, 0.35]}
simulation: {n_trials: 60, seed: 1, chunk_size: 60}
""")
    out = tmp_path / "run"
    assert main(["run", str(study), "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    assert main(["report", str(out), "--format", "html"]) == 0
    html = (out / "report.html").read_text()
    assert "BLRM-EWOC" in html and "BLRM prior" in html
    run = load_run(out)
    k = run.design_names.index("BLRM")
    sec = methods_section(run, run.designs[k], k)
    assert sec.specific and "EWOC" in sec.paragraphs[0] and "d* = 300000" in sec.paragraphs[1]
    assert "when 9 patients have been treated" in sec.paragraphs[3]
    # the prior table is the design's own prior summary (no data)
    cfg = BlrmConfig(n_doses=3, doses=(1e5, 3e5, 1e6), prior_mean=(-1.386, 0.0), target_interval=(0.2, 0.35))
    f = BlrmModel.from_config(cfg).fit_one([0, 0, 0], [0, 0, 0])
    assert [row[3].value for row in sec.decision_tables[0].rows] == pytest.approx(f["prob_over"].tolist())
    k = run.design_names.index("CRM2")
    sec = methods_section(run, run.designs[k], k)
    assert sec.specific and "bcrm" in sec.paragraphs[0] and "plug-in" in sec.paragraphs[1]


def test_next_dose_cli_for_the_shipped_blrm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from escalade.cli import main

    pts = tmp_path / "pts.csv"
    pts.write_text("id,dose_level,dlt\n1,1,0\n2,1,0\n3,1,0\n4,2,0\n5,2,1\n6,2,0\n")
    study = HERE.parent / "scenarios" / "cart_rr_heme.yaml"
    assert main(["next-dose", "--study", str(study), "--design", "BLRM", "--data", str(pts)]) == 0
    out = capsys.readouterr().out
    assert "DECISION" in out and "prob_over" in out and "eligible" in out and "EWOC" in out
    assert main(["next-dose", "--study", str(study), "--design", "BLRM", "--data", str(pts), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    _, d = _shipped_blrm()
    st = States.from_counts([3, 3, 0, 0, 0], [0, 1, 0, 0, 0], current=1, last_n=3, last_tox=1)
    assert res["next_dose"] == int(d.decide(st).dose[0]) + 1
    assert [r["eligible"] for r in res["doses"]] == list(d.explain(st).eligible)


@pytest.mark.slow
def test_next_dose_cli_blrm_with_nuts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from escalade.cli import main

    pts = tmp_path / "pts.csv"
    pts.write_text("id,dose_level,dlt\n1,1,0\n2,1,0\n3,1,0\n")
    study = HERE.parent / "scenarios" / "cart_rr_heme.yaml"
    assert main(["next-dose", "--study", str(study), "--design", "BLRM", "--data", str(pts), "--mcmc"]) == 0
    out = capsys.readouterr().out
    assert "NUTS" in out and "max_rhat" in out


# ---------------------------------------------------------------------------------------------
# the two-parameter logistic CRM (bcrm's logit2) on the same engine


def test_crm2_standardised_doses_are_bcrms_find_x() -> None:
    from escalade.design.crm_logistic2 import Crm2Config

    sk = (0.05, 0.1, 0.2, 0.35, 0.5)
    for how, half in (("mean", 0.5), ("median", 0.0)):
        cfg = Crm2Config(target=0.3, n_doses=5, skeleton=sk, prior_mean=(0.4, -0.2), prior_sd=(1.2, 0.5),
                         sdose_calculate=how)
        a1 = math.exp(0.4 + half * 1.44)
        a2 = math.exp(-0.2 + half * 0.25)
        # bcrm: find.x("logit2", p.tox0, alpha) = (qlogis(p.tox0) - log(alpha[1])) / alpha[2]
        np.testing.assert_allclose(cfg.sdose, [(special.logit(s) - math.log(a1)) / a2 for s in sk], rtol=1e-14)


def test_crm2_posterior_agrees_with_brute_force() -> None:
    from escalade.design.crm_logistic2 import Crm2Config, Crm2Design

    cfg = Crm2Config(target=0.3, n_doses=5, skeleton=(0.05, 0.1, 0.2, 0.35, 0.5), prior_corr=0.3)
    d = Crm2Design(cfg)
    n, y = [3, 3, 6, 3, 0], [0, 0, 2, 2, 0]
    # the same model as a BLRM with log(d / 1) = x_k
    as_blrm = BlrmConfig(n_doses=5, doses=tuple(math.exp(x) for x in cfg.sdose), reference_dose=1.0,
                         prior_mean=cfg.prior_mean, prior_sd=cfg.prior_sd, prior_corr=0.3,
                         target_interval=(0.3, 0.65))
    b = _brute(as_blrm, n, y, list(as_blrm.doses))
    s = d.engine.summarise([n], [y])
    np.testing.assert_allclose(s.mean[0], b["mean"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(1 - s.prob_under[0], b["interval"][:, 1] + b["interval"][:, 2], rtol=0, atol=2e-4)
    fine = Crm2Design(Crm2Config(target=0.3, n_doses=5, skeleton=cfg.skeleton, prior_corr=0.3, grid_points=641))
    f = fine.engine.summarise([n], [y])
    np.testing.assert_allclose([s.mean_alpha[0], s.mean_beta[0]], [f.mean_alpha[0], f.mean_beta[0]], rtol=1e-6)
    est, prob = d.estimates(States.from_counts(n, y))
    plug = special.expit(math.log(s.mean_alpha[0]) + s.mean_beta[0] * np.asarray(cfg.sdose))
    np.testing.assert_allclose(est[0], plug, rtol=1e-12)
    assert prob[0] == pytest.approx(1 - s.prob_under[0, 0], abs=1e-12)


def test_crm2_rules() -> None:
    from escalade.design.crm_logistic2 import Crm2Config, Crm2Design

    base = dict(target=0.3, n_doses=5, skeleton=(0.05, 0.1, 0.2, 0.35, 0.5))
    d = Crm2Design(Crm2Config(**base))
    st = States.from_counts([3, 0, 0, 0, 0], [0, 0, 0, 0, 0], current=0)
    est, _ = d.estimates(st)
    model_dose = int(np.argmin(np.abs(est[0] - 0.3)))
    assert model_dose > 1 and d.decide(st).dose.tolist() == [1]           # no skipping (constrain = TRUE)
    assert Crm2Design(Crm2Config(**base, no_skip="off")).decide(st).dose.tolist() == [model_dose]
    toxic = States.from_counts([6, 0, 0, 0, 0], [5, 0, 0, 0, 0], current=0)
    safe = Crm2Design(Crm2Config(**base, safety_threshold=0.9))
    dec = safe.decide(toxic)
    assert dec.stop[0] and dec.reason[0] == StopReason.ALL_TOXIC and safe.select(toxic).tolist() == [NO_DOSE]
    mean = Crm2Design(Crm2Config(**base, pointest="mean"))
    st2 = States.from_counts([3, 3, 6, 3, 0], [0, 0, 2, 2, 0], current=3)
    assert not np.allclose(mean.estimates(st2)[0], d.estimates(st2)[0])
    with pytest.raises(ConfigError) as err:
        Crm2Config(**{**base, "pointest": "median"})
    assert err.value.field == "pointest"


def test_crm2_exact_within_3_mc_se_of_simulation() -> None:
    study = load_study(HERE.parent / "scenarios" / "cart_rr_heme.yaml")
    design = build_design("crm2", {"skeleton": [0.12, 0.20, 0.30, 0.40, 0.50]}, study.design_defaults())
    p_t = np.asarray(study.scenarios[2].p_dlt)
    ex = exact_outcomes(design, p_t, np.zeros(5))
    assert abs(ex.weight.sum() - 1.0) < 1e-12
    t = 3000
    sim = simulate(design, p_t, n_trials=t, seed=21)
    for j in range(-1, design.n_doses):
        p = float(ex.weight[ex.selected == j].sum())
        se = math.sqrt(max(p * (1 - p), 1e-6) / t)
        assert abs(float(np.mean(sim.selected == j)) - p) <= 3 * se + 1e-12, j


@pytest.mark.slow
def test_crm2_posterior_means_equal_nuts() -> None:
    import pymc as pm

    from escalade.design.blrm_pymc import build_model, draw_summaries
    from escalade.design.crm_logistic2 import Crm2Config, Crm2Design

    cfg = Crm2Config(target=0.3, n_doses=5, skeleton=(0.05, 0.1, 0.2, 0.35, 0.5))
    n, y = [3, 3, 6, 3, 0], [0, 0, 2, 2, 0]
    doses = [math.exp(x) for x in cfg.sdose]
    model = build_model(doses=doses, reference_dose=1.0, n=n, tox=y,
                        components=[(1.0, cfg.prior_mean, [[1.0, 0.0], [0.0, 1.0]])])
    with model:
        idata = pm.sample(draws=5000, tune=1000, chains=4, cores=1, random_seed=3, progressbar=False,
                          target_accept=0.95, compute_convergence_checks=False)
    th = idata.posterior["theta"].values.reshape(-1, 2)
    ref = draw_summaries(th, doses, 1.0, (0.3, 0.65))
    s = Crm2Design(cfg).engine.summarise([n], [y])
    se = ref["sd"] / math.sqrt(th.shape[0] / 4)   # ESS >= a quarter of the draws
    assert np.all(np.abs(s.mean[0] - ref["mean"]) <= 4 * se)
    assert abs(s.mean_beta[0] - np.exp(th[:, 1]).mean()) <= 4 * np.exp(th[:, 1]).std() / math.sqrt(th.shape[0] / 4)
