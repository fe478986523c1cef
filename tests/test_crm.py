"""CRM against the R package dfcrm 0.2-2.1 (validation/reference/dfcrm/) and escalation 0.2.3
(validation/reference/escalation/); quadrature error against adaptive quadrature."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from conftest import load_reference
from escalade.design.base import NO_DOSE, States
from escalade.design.crm import (
    CrmConfig,
    CrmDesign,
    CrmFitError,
    CrmModel,
    crm_fit,
    crm_fit_counts,
    crm_mtd,
    design_intervals,
)
from escalade.design.registry import build_design
from escalade.design.skeleton import getprior
from escalade.scenarios.errors import ConfigError
from escalade.simulations.trial import simulate

GETPRIOR = load_reference("dfcrm", "getprior.json")["cases"]
POSTERIOR = load_reference("dfcrm", "crm_posterior.json")
CRMSIM = load_reference("dfcrm", "crmsim.json")["scenarios"]
EXACT = load_reference("escalation", "escalation_exact_probs.json")
SKELETONS = {k: v["value"] for k, v in POSTERIOR["skeletons"].items()}
FITS = [(d, f) for d, ds in POSTERIOR["datasets"].items() for f in ds["fits"]]

# dfcrm's own integration error (README: crm() vs rel.tol = 1e-12 re-integration <= 1.3e-7 for the
# estimate, <= 1.0e-7 for post_var), so 1e-6 against crm() output; our quadrature against the
# tight re-integration: 1e-9.
TOL_BAYES = 1e-6
TOL_TIGHT = 1e-9
# README: crm()'s MLE is optimize(tol = 1e-4), within 1.6e-5 of the converged MLE -> 5e-5.
TOL_MLE = 5e-5


def _num(v: object) -> np.ndarray:
    vals = v if isinstance(v, list) else [v]
    return np.array([np.nan if x is None or x == "NaN" else float(x) for x in vals], float)


def _config(ds: dict, fit_name: str) -> CrmConfig:
    model, method = fit_name.split("_")
    sk = SKELETONS[ds["skeleton"]]
    return CrmConfig(target=ds["target"], n_doses=len(sk), skeleton=sk, model=model, method=method)


# ---------------------------------------------------------------------------------------------
# getprior


@pytest.mark.parametrize("i", range(len(GETPRIOR)), ids=[c["call"][9:-1] for c in GETPRIOR])
def test_getprior_equals_dfcrm(i: int) -> None:
    # getprior.json cases[i]: getprior(halfwidth, target, nu, nlevel, model, intcpt) -- exact call in "call"
    c = GETPRIOR[i]
    a = c["args"]
    sk = getprior(a["halfwidth"], a["target"], a["nu"], a["nlevel"], a["model"], a["intcpt"])
    np.testing.assert_allclose(sk, c["skeleton"], rtol=0, atol=1e-14)


def test_getprior_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="halfwidth"):
        getprior(0.3, 0.25, 3, 5)
    with pytest.raises(ConfigError, match="nu"):
        getprior(0.05, 0.25, 6, 5)
    with pytest.raises(ConfigError, match="intercept"):
        getprior(0.05, 0.25, 3, 5, "logistic", intercept=-2.0)
    with pytest.raises(ConfigError, match="model"):
        getprior(0.05, 0.25, 3, 5, "probit")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# crm() fits


@pytest.mark.parametrize(("ds_id", "fit_name"), [p for p in FITS if p[1].endswith("bayes")])
def test_bayes_fit_equals_dfcrm_crm(ds_id: str, fit_name: str) -> None:
    # crm_posterior.json datasets[ds_id].fits[fit_name]: crm(prior, target, tox, level, n, conf.level = 0.9,
    # method = "bayes", model, intcpt = 3, scale = sqrt(1.34), var.est = TRUE) -- exact call in "call"
    ds = POSTERIOR["datasets"][ds_id]
    ref = ds["fits"][fit_name]
    fit = crm_fit(_config(ds, fit_name), np.array(ds["level"]) - 1, ds["tox"])
    assert fit.estimate == pytest.approx(ref["estimate"], abs=TOL_BAYES)
    assert fit.post_var == pytest.approx(ref["post_var"], abs=TOL_BAYES)
    np.testing.assert_allclose(fit.ptox, ref["ptox"], rtol=0, atol=TOL_BAYES)
    np.testing.assert_allclose(fit.ptox_lower, ref["ptoxL"], rtol=0, atol=TOL_BAYES)
    np.testing.assert_allclose(fit.ptox_upper, ref["ptoxU"], rtol=0, atol=TOL_BAYES)
    np.testing.assert_allclose(fit.dosescaled, ref["dosescaled"], rtol=0, atol=1e-13)
    assert fit.mtd == ref["mtd"] - 1
    tight = ref["numerical_check_tight_tolerance"]
    assert fit.estimate == pytest.approx(tight["estimate"], abs=TOL_TIGHT)
    assert fit.post_var == pytest.approx(tight["post_var"], abs=TOL_TIGHT)


@pytest.mark.parametrize(("ds_id", "fit_name"), [p for p in FITS if p[1].endswith("mle")])
def test_mle_fit_equals_dfcrm_crm(ds_id: str, fit_name: str) -> None:
    # crm_posterior.json, method = "mle": the same call with method = "mle"
    ds = POSTERIOR["datasets"][ds_id]
    ref = ds["fits"][fit_name]
    cfg = _config(ds, fit_name)
    if ref.get("error"):
        assert ref["error"] == " mle does not exist!"
        with pytest.raises(CrmFitError, match="MLE does not exist") as info:
            crm_fit(cfg, np.array(ds["level"]) - 1, ds["tox"])
        assert info.value.n_patients == len(ds["tox"]) and info.value.n_dlt == sum(ds["tox"])
        return
    fit = crm_fit(cfg, np.array(ds["level"]) - 1, ds["tox"])
    assert fit.estimate == pytest.approx(ref["estimate"], abs=TOL_MLE)
    # converged MLE (optimize tol = 1e-12 in the reference script)
    assert fit.estimate == pytest.approx(ref["numerical_check_tight_tolerance"]["estimate"], abs=1e-7)
    np.testing.assert_allclose(fit.ptox, ref["ptox"], rtol=0, atol=TOL_MLE)
    # dfcrm's crude post.var (N(0, 500^2) second moment minus MLE^2): may be negative; then NaN limits
    assert fit.post_var == pytest.approx(ref["post_var"], abs=TOL_MLE, rel=1e-8)
    for mine, theirs in ((fit.ptox_lower, ref["ptoxL"]), (fit.ptox_upper, ref["ptoxU"])):
        expected = _num(theirs)
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(expected))
        np.testing.assert_allclose(np.asarray(mine)[~np.isnan(expected)], expected[~np.isnan(expected)],
                                   rtol=0, atol=TOL_MLE)
    assert math.isnan(fit.post_sd) == (ref["post_sd"] == "NaN")
    assert fit.mtd == ref["mtd"] - 1


def test_mle_needs_both_outcomes() -> None:
    cfg = CrmConfig(target=0.25, n_doses=5, skeleton=SKELETONS["sk5"], method="mle")
    with pytest.raises(CrmFitError, match="no DLT"):
        crm_fit(cfg, [0, 0, 0], [0, 0, 0])
    with pytest.raises(CrmFitError, match="only DLTs"):
        crm_fit(cfg, [0, 1], [1, 1])
    # the design itself falls back on crmsim's N(0, 500^2) posterior mean instead of failing
    d = CrmDesign(cfg)
    assert d.decide(States.from_counts([3, 0, 0, 0, 0], [0, 0, 0, 0, 0], current=0)).dose[0] == 1
    assert d.explain(States.from_counts([3, 0, 0, 0, 0], [0, 0, 0, 0, 0], current=0)).prior_var == 500.0**2


def test_fit_input_errors() -> None:
    cfg = CrmConfig(target=0.25, n_doses=5, skeleton=SKELETONS["sk5"])
    with pytest.raises(ValueError, match="one value per patient"):
        crm_fit(cfg, [0, 1], [0])
    with pytest.raises(ValueError, match="0-based"):
        crm_fit(cfg, [5], [0])
    with pytest.raises(ValueError, match="0 or 1"):
        crm_fit(cfg, [0], [2])
    with pytest.raises(ValueError, match="tox between 0 and n"):
        crm_fit_counts(cfg, [1, 0, 0, 0, 0], [2, 0, 0, 0, 0])


def test_counts_and_patients_give_the_same_fit() -> None:
    ds = POSTERIOR["datasets"]["D01_help_example"]
    cfg = _config(ds, "empiric_bayes")
    lv = np.array(ds["level"]) - 1
    a = crm_fit(cfg, lv, ds["tox"])
    b = crm_fit_counts(cfg, np.bincount(lv, minlength=6), np.bincount(lv, weights=ds["tox"], minlength=6))
    assert a == b


def test_mtd_rule() -> None:
    # dfcrm crm(): all ptox <= target -> top; all >= target -> level 1; else closest, ties to the lower
    assert crm_mtd([0.01, 0.05, 0.1], 0.25) == 2
    assert crm_mtd([0.3, 0.4, 0.5], 0.25) == 0
    assert crm_mtd([0.125, 0.375, 0.5], 0.25) == 0   # exact tie (binary fractions): the lower dose
    # the all-above / all-below rules are stated as dfcrm writes them, not derived from monotonicity
    assert crm_mtd([0.3, 0.26, 0.5], 0.25) == 0
    assert crm_mtd([0.1, 0.24, 0.2], 0.25) == 2
    assert crm_mtd([[0.1, 0.26, 0.5], [0.3, 0.4, 0.5]], 0.25).tolist() == [1, 0]


# ---------------------------------------------------------------------------------------------
# quadrature


def _adaptive(model: CrmModel, n: np.ndarray, y: np.ndarray, prior_var: float) -> tuple[float, float, float]:
    """Posterior mean/var (dfcrm's limits) and Pr(beta < beta*) by adaptive quadrature, rel.tol 1e-13."""
    x = np.asarray(model.scaled)

    def logf(b: float) -> float:
        with np.errstate(all="ignore"):
            e = np.exp(b)
            p = x**e if model.model == "empiric" else 1 / (1 + np.exp(-model.intercept - e * x))
            t = np.where(y > 0, y * np.log(p), 0.0) + np.where(n - y > 0, (n - y) * np.log1p(-p), 0.0)
        return float(t.sum()) - b * b / (2 * prior_var)

    grid = np.linspace(-10, 10, 4001)
    vals = [logf(b) for b in grid]
    top, mode = max(vals), float(grid[int(np.argmax(vals))])
    opts = dict(epsabs=0.0, epsrel=1e-13, limit=1000)

    def q(k: int, a: float, b: float) -> float:
        f = lambda t: t**k * math.exp(logf(t) - top)  # noqa: E731
        if a < mode < b:
            return integrate.quad(f, a, mode, **opts)[0] + integrate.quad(f, mode, b, **opts)[0]
        return integrate.quad(f, a, b, **opts)[0] if a < b else 0.0

    den = q(0, -np.inf, np.inf)
    m1 = q(1, -10, 10) / den
    m2 = q(2, -10, 10) / den
    return m1, m2 - m1**2, q(0, -np.inf, model.beta_star) / den


QUAD_CASES = [  # (n, tox) on 5 doses: no data, DLT-only, no-DLT, ordinary, large, very large trials
    ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
    ([3, 0, 0, 0, 0], [3, 0, 0, 0, 0]),
    ([30, 0, 0, 0, 0], [30, 0, 0, 0, 0]),
    ([0, 0, 0, 0, 60], [0, 0, 0, 0, 0]),
    ([3, 0, 0, 0, 0], [1, 0, 0, 0, 0]),
    ([6, 12, 9, 3, 0], [0, 2, 3, 2, 0]),
    ([40, 80, 60, 20, 0], [2, 10, 15, 8, 0]),
    ([100, 300, 200, 100, 50], [5, 36, 50, 40, 28]),
]


@pytest.mark.parametrize("model", ["empiric", "logistic"])
@pytest.mark.parametrize("prior_var", [1.34, 4.0, 500.0**2], ids=["default", "wide", "crmsim-mle-fallback"])
def test_quadrature_error_below_1e9(model: str, prior_var: float) -> None:
    # prior_var 4 and 500^2 put mass outside (-10, 10): the tail panels and dfcrm's split limits matter
    m = CrmModel(skeleton=(0.05, 0.12, 0.25, 0.40, 0.55), target=0.25, model=model, prior_var=prior_var)
    n = np.array([c[0] for c in QUAD_CASES])
    y = np.array([c[1] for c in QUAD_CASES])
    mean, var, cdf = m.posterior(n, y)
    for i in range(len(QUAD_CASES)):
        ref = _adaptive(m, n[i].astype(float), y[i].astype(float), prior_var)
        assert abs(mean[i] - ref[0]) < 1e-9, (i, mean[i], ref[0])
        assert abs(var[i] - ref[1]) < 1e-9, (i, var[i], ref[1])
        assert abs(cdf[i] - ref[2]) < 1e-9, (i, cdf[i], ref[2])


@pytest.mark.parametrize("safety", [None, 0.9], ids=["means", "with-cdf"])
@pytest.mark.parametrize("model", ["empiric", "logistic"])
def test_design_grid_agrees_with_fine_grid(model: str, safety: float | None) -> None:
    # The design's coarser grid (step from max_n, design_intervals) on random trials of max_n patients;
    # the posterior CDF is only used (and only accurate to 1e-9) when the safety rule is on.
    cfg = CrmConfig(target=0.25, n_doses=6, skeleton=getprior(0.05, 0.25, 3, 6, model), model=model, max_n=60,
                    safety_threshold=safety)
    coarse = CrmDesign(cfg).model
    fine = CrmModel.from_config(cfg, 4000)
    assert coarse.n_intervals == design_intervals(cfg) < fine.n_intervals
    rng = np.random.default_rng(11)
    n = np.array([rng.multinomial(60, rng.dirichlet(np.full(6, 0.5))) for _ in range(800)])
    y = rng.binomial(n, np.sort(rng.uniform(0, 0.9, size=(800, 6)), axis=1))
    a, b = coarse.posterior(n, y), fine.posterior(n, y)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-9)   # mean
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-9)   # variance
    if safety is not None:
        np.testing.assert_allclose(a[2], b[2], rtol=0, atol=1e-9)


def test_mle_is_the_maximiser() -> None:
    # batched safeguarded Newton against scipy's bounded scalar minimiser, state by state
    from scipy import optimize

    for model in ("empiric", "logistic"):
        m = CrmModel(skeleton=tuple(SKELETONS["sk6"]), target=0.2, model=model, method="mle")
        rng = np.random.default_rng(4)
        n = rng.integers(0, 7, size=(60, 6))
        y = rng.binomial(n, 0.35)
        est = m.mle(n, y)
        for i in range(60):
            if y[i].sum() == 0 or y[i].sum() == n[i].sum():
                assert np.isnan(est[i])
                continue
            f = lambda b: -float(np.sum(np.where(y[i] > 0, y[i] * np.log(m.ptox(b)), 0)  # noqa: E731
                                        + np.where(n[i] > y[i], (n[i] - y[i]) * np.log1p(-m.ptox(b)), 0)))
            ref = optimize.minimize_scalar(f, bounds=(-10, 10), method="bounded", options={"xatol": 1e-12}).x
            assert est[i] == pytest.approx(ref, abs=1e-7), (model, i)


def test_batched_equals_one_at_a_time() -> None:
    m = CrmModel(skeleton=tuple(SKELETONS["sk6"]), target=0.2)
    rng = np.random.default_rng(3)
    n = rng.integers(0, 7, size=(300, 6))
    y = rng.binomial(n, 0.3)
    mean, var, cdf = m.posterior(n, y)
    for i in range(0, 300, 17):
        one = m.posterior(n[i], y[i])
        assert (one[0][0], one[1][0], one[2][0]) == pytest.approx((mean[i], var[i], cdf[i]), abs=1e-14)
    est = CrmModel(skeleton=tuple(SKELETONS["sk6"]), target=0.2, method="mle").estimate(n, y)
    for i in range(0, 300, 17):
        assert est.mtd[i] == CrmModel(skeleton=tuple(SKELETONS["sk6"]), target=0.2, method="mle").estimate(
            n[i], y[i]).mtd[0]


# ---------------------------------------------------------------------------------------------
# configuration


def test_config_validation_names_field_value_and_fix() -> None:
    base = dict(target=0.25, n_doses=3)
    with pytest.raises(ConfigError, match="must increase strictly") as info:
        CrmConfig(**base, skeleton=(0.05, 0.12, 0.10))
    assert info.value.field == "skeleton" and info.value.value == [0.05, 0.12, 0.10]
    with pytest.raises(ConfigError, match=r"one value per dose \(3\); got 2"):
        CrmConfig(**base, skeleton=(0.05, 0.12))
    with pytest.raises(ConfigError) as info:
        CrmConfig(**base, skeleton=(0.05, 0.12, 1.0))
    assert info.value.field == "skeleton[2]"
    with pytest.raises(ConfigError, match="did you mean 'logistic'"):
        CrmConfig(**base, skeleton=(0.1, 0.2, 0.3), model="logistc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="intercept"):
        CrmConfig(**base, skeleton=(0.1, 0.2, 0.99), model="logistic")
    with pytest.raises(ConfigError, match="method"):
        CrmConfig(**base, skeleton=(0.1, 0.2, 0.3), method="mcmc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="prior_var"):
        CrmConfig(**base, skeleton=(0.1, 0.2, 0.3), prior_var=0.0)
    with pytest.raises(ConfigError, match="startup"):
        CrmConfig(**base, skeleton=(0.1, 0.2, 0.3), startup=(0, 1, 3))
    with pytest.raises(ConfigError, match="min_n"):
        CrmConfig(**base, skeleton=(0.1, 0.2, 0.3), min_n=40)
    cfg = CrmConfig(**base, skeleton=[0.1, 0.2, 0.3], startup=[0, 1])  # lists from YAML become tuples
    assert cfg.skeleton == (0.1, 0.2, 0.3) and cfg.startup == (0, 1)
    assert cfg.scale == pytest.approx(math.sqrt(1.34))


def test_registry_builds_crm_with_study_defaults() -> None:
    study = {"target": 0.3, "n_doses": 5, "cohort_size": 3, "max_n": 24, "start_dose": 1}
    d = build_design("crm", {"skeleton": [0.05, 0.12, 0.25, 0.40, 0.55]}, study)
    assert isinstance(d, CrmDesign) and d.config.target == 0.3 and d.start() == (1, 3)
    with pytest.raises(ConfigError, match="skeleton"):
        build_design("crm", {"skeleton": [0.05, 0.12, 0.10, 0.40, 0.55]}, study)
    with pytest.raises(ConfigError, match="required"):
        build_design("crm", {}, study)


# ---------------------------------------------------------------------------------------------
# exact path probabilities (escalation 0.2.3 and an independent enumeration, 4 cohorts of 3)


def _enumerate(design: CrmDesign, p_true: list[float], cohorts: int) -> tuple[np.ndarray, np.ndarray]:
    """P(select each dose) and E[n] per dose over every path, by brute force over cohort outcomes."""
    d_n = design.n_doses
    c = design.config.cohort_size
    sel = np.zeros(d_n)
    en = np.zeros(d_n)
    binom = [math.comb(c, k) for k in range(c + 1)]
    for path in itertools.product(range(c + 1), repeat=cohorts):
        n = np.zeros(d_n, np.int64)
        tox = np.zeros(d_n, np.int64)
        dose, prob = design.start()[0], 1.0
        for k, y in enumerate(path):
            prob *= binom[y] * p_true[dose] ** y * (1 - p_true[dose]) ** (c - y)
            n[dose] += c
            tox[dose] += y
            st = States.from_counts(n, tox, current=dose, last_n=c, last_tox=y)
            if k < cohorts - 1:
                dose = int(design.decide(st).dose[0])
        sel[design.select(st)[0]] += prob
        en += prob * n
    return sel, en


def test_exact_selection_plain_crm_equals_escalation() -> None:
    # escalation_exact_probs.json results.crm_empiric: get_dfcrm(skeleton, target = 0.25), skipping allowed,
    # recommendation after the 4th cohort, curve A_given
    meta = EXACT["meta"]
    ref = EXACT["results"]["crm_empiric"]["curves"]["A_given"]
    design = CrmDesign(CrmConfig(target=meta["target"], n_doses=5, skeleton=meta["skeleton"], max_n=12,
                                 no_skip="off", coherence="off"))
    sel, en = _enumerate(design, ref["true_prob_tox"], 4)
    np.testing.assert_allclose(sel, [ref["prob_recommend"][str(k)] for k in range(1, 6)], rtol=0, atol=1e-12)
    np.testing.assert_allclose(en, [ref["expected_n_at_dose"][str(k)] for k in range(1, 6)], rtol=0, atol=1e-12)


def test_every_dose_path_node_equals_escalation() -> None:
    # escalation_nodes_crm_empiric.json: get_dfcrm(skeleton, target = 0.25) %>% get_dose_paths(cohort_sizes =
    # c(3, 3, 3, 3)); each node = one cohort's outcomes (N/T) at its parent's next dose, and the next dose.
    # All 340 non-root nodes decided in one batch.
    nodes = {r["node"]: r for r in load_reference("escalation", "escalation_nodes_crm_empiric.json")}
    meta = EXACT["meta"]
    design = CrmDesign(CrmConfig(target=meta["target"], n_doses=5, skeleton=meta["skeleton"], max_n=12,
                                 no_skip="off", coherence="off"))
    rows, expected = [], []
    for r in nodes.values():
        if r["depth"] == 0:
            assert r["next_dose"] - 1 == design.start()[0]
            continue
        n, tox = np.zeros(5, np.int64), np.zeros(5, np.int64)
        node = r
        while node["depth"] > 0:
            parent = nodes[node["parent"]]
            n[parent["next_dose"] - 1] += len(node["outcomes"])
            tox[parent["next_dose"] - 1] += node["outcomes"].count("T")
            node = parent
        cur = nodes[r["parent"]]["next_dose"] - 1
        rows.append((n, tox, cur, r["outcomes"].count("T")))
        expected.append(r["next_dose"] - 1)
    st_ = States.from_counts([r[0] for r in rows], [r[1] for r in rows], current=[r[2] for r in rows],
                             last_n=3, last_tox=[r[3] for r in rows])
    assert len(expected) == 340
    np.testing.assert_array_equal(design.decide(st_).dose, expected)
    np.testing.assert_array_equal(design.select(st_), expected)


def test_exact_selection_crmsim_restrict() -> None:
    # escalation/README.md, row "own crm_dfcrm_crmsim_restrict", curve A (printed to 6 decimals)
    meta = EXACT["meta"]
    design = CrmDesign(CrmConfig(target=meta["target"], n_doses=5, skeleton=meta["skeleton"], max_n=12))
    sel, en = _enumerate(design, [0.05, 0.10, 0.25, 0.40, 0.55], 4)
    np.testing.assert_allclose(sel, [0.020879, 0.266042, 0.355030, 0.301093, 0.056956], rtol=0, atol=5e-7)
    np.testing.assert_allclose(en, [3.6990, 4.1245, 3.3855, 0.7910, 0.0], rtol=0, atol=5e-5)


# ---------------------------------------------------------------------------------------------
# crmsim operating characteristics (Monte Carlo)


def _crmsim_config(a: dict) -> CrmConfig:
    x0, m = a["x0"], a["mcohort"]
    two_stage = isinstance(x0, list)
    startup = tuple(int(x0[i]) - 1 for i in range(0, len(x0), m)) if two_stage else ()
    return CrmConfig(target=a["target"], n_doses=len(a["PI"]), skeleton=a["prior"], cohort_size=m,
                     max_n=a["n"], start_dose=0 if two_stage else x0 - 1, model=a["model"], method=a["method"],
                     prior_var=a["scale"] ** 2, intercept=float(a["intcpt"]), startup=startup)


@pytest.mark.parametrize("sid", sorted(CRMSIM))
def test_crmsim_operating_characteristics(sid: str) -> None:
    # crmsim.json scenarios[sid]: crmsim(PI, prior, target, n, x0, nsim = 2000, mcohort, restrict = TRUE,
    # method, model, intcpt = 3, scale = sqrt(1.34), seed = 1009) -- exact call in "call". Independent
    # streams, both 2000 trials: each fraction within 3 * sqrt(2) * its binomial MC SE (SE floored at
    # p = 1/2000 where dfcrm saw none), mean patients and DLTs per level within 3 * sqrt(2) * sd / sqrt(2000).
    sc = CRMSIM[sid]
    a, r, d = sc["args"], sc["result"], sc["derived_from_per_trial_data"]
    nsim = a["nsim"]
    out = simulate(CrmDesign(_crmsim_config(a)), a["PI"], n_trials=nsim, seed=20240607)
    assert np.all(out.selected >= 0)  # crmsim always selects
    sel = np.array([(out.selected == k).mean() for k in range(len(a["PI"]))])
    p = np.array(r["MTD_selection_fraction"])
    se = np.sqrt(np.maximum(p, 1 / nsim) * (1 - p) / nsim)
    k = 3 * math.sqrt(2)
    assert np.all(np.abs(sel - p) <= k * se), (sel, p)
    for mine, ref, sd in ((out.n.mean(axis=0), r["level_mean_patients"], d["level_sd"]),
                          (out.tox.mean(axis=0), r["tox_mean_dlts"], d["tox_sd"])):
        bound = k * np.maximum(np.array(sd), 1.0 / nsim) / math.sqrt(nsim)
        assert np.all(np.abs(mine - np.array(ref)) <= bound), (mine, ref)


def test_select_is_model_recommendation_on_all_data() -> None:
    ds = POSTERIOR["datasets"]["D10_completed_30_target030"]
    cfg = _config(ds, "empiric_bayes")
    lv = np.array(ds["level"]) - 1
    n = np.bincount(lv, minlength=cfg.n_doses)
    t = np.bincount(lv, weights=ds["tox"], minlength=cfg.n_doses).astype(int)
    design = CrmDesign(CrmConfig(target=cfg.target, n_doses=cfg.n_doses, skeleton=cfg.skeleton, max_n=len(lv)))
    assert design.select(States.from_counts(n, t))[0] == ds["fits"]["empiric_bayes"]["mtd"] - 1
    assert design.explain(States.from_counts(n, t)).mtd == ds["fits"]["empiric_bayes"]["mtd"] - 1
    assert NO_DOSE not in design.select(States.from_counts([3] * cfg.n_doses, [3] * cfg.n_doses)).tolist()


@pytest.mark.parametrize("module", ["crm", "rules", "skeleton"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"escalade.design.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
