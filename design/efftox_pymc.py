"""EffTox in PyMC: the NUTS reference for the fast engine and the conduct-mode fit.

The model is that of :mod:`escalade.design.efftox` (Thall & Cook 2004,
Biometrics 60:684-693), written once more in PyMC so that an independent
sampler checks :class:`~escalade.design.efftox_engine.EffToxEngine`:

.. math::

    \\theta = (\\alpha, \\beta, \\gamma, \\zeta, \\eta, \\psi) \\sim \\prod N(\\mu_i, \\sigma_i^2),
    \\qquad
    \\log L = \\sum_j \\sum_{(a,b)} c_{j,ab} \\log \\pi_{ab}(x_j; \\theta),

with the cell probabilities of :func:`~escalade.design.efftox_model.joint_probabilities`
(a ``pm.Potential``: per-dose cell counts carry the whole likelihood, as in the
per-patient Stan model of trialr). NUTS (Hoffman & Gelman 2014, JMLR
15:1593-1623) draws the posterior; summaries are fractions of draws, as trialr
computes them, and :func:`arviz.summary` gives R-hat (rank-normalised,
Vehtari et al. 2021, Bayesian Anal 16:667-718), bulk and tail ESS and MCSEs.

PyMC and ArviZ are optional (``pip install escalade[mcmc]``) and imported
inside the functions, so ``import escalade.design.efftox`` never needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from escalade.design.base import States
from escalade.design.efftox_model import CELLS, PARAMETERS, cell_counts

if TYPE_CHECKING:  # pragma: no cover
    from escalade.design.efftox import EffToxConfig
    import arviz
    import pandas
    import pymc

__all__ = ["build_model", "sample_posterior", "MCMCFit"]

log = logging.getLogger(__name__)


def build_model(config: EffToxConfig, counts: np.ndarray) -> "pymc.Model":
    """The EffTox model for one state's cell counts ``(D, 4)`` (order :data:`CELLS`).

    Deterministics ``prob_eff``, ``prob_tox`` and ``utility`` (per dose, the
    utility of each draw's probabilities) are stored with the draws.
    """
    import pymc as pm
    import pytensor.tensor as pt

    cnt = np.asarray(counts, float)
    d = config.n_doses
    if cnt.shape != (d, 4):
        raise ValueError(f"counts must have shape ({d}, 4); got {cnt.shape}")
    x = np.asarray(config.coded_doses, float)
    coords = {"dose": np.arange(1, d + 1), "cell": list(CELLS)}
    with pm.Model(coords=coords) as model:
        par = {name: pm.Normal(name, mu=m, sigma=s)
               for name, m, s in zip(PARAMETERS, config.prior_mean, config.prior_sd)}
        eta_t = par["alpha"] + par["beta"] * x
        eta_e = par["gamma"] + par["zeta"] * x + par["eta"] * x ** 2
        e = pm.Deterministic("prob_eff", pm.math.invlogit(eta_e), dims="dose")
        t = pm.Deterministic("prob_tox", pm.math.invlogit(eta_t), dims="dose")
        k = pt.tanh(0.5 * par["psi"])
        cells = pt.stack([
            e * t * (1 + k * (1 - e) * (1 - t)),
            e * (1 - t) * (1 - k * (1 - e) * t),
            (1 - e) * t * (1 - k * e * (1 - t)),
            (1 - e) * (1 - t) * (1 + k * e * t),
        ], axis=1)
        pm.Potential("log_likelihood", pt.sum(cnt * pt.log(cells)))
        p = config.contour_p
        u = 1 - (((1 - e) / (1 - config.eff0)) ** p + (t / config.tox1) ** p) ** (1 / p)
        pm.Deterministic("utility", u, dims="dose")
    return model


@dataclass(frozen=True, slots=True, eq=False)
class MCMCFit:
    """NUTS summaries of one state, the EffTox rules applied, and diagnostics.

    Per-dose arrays ``(D,)`` as :class:`~escalade.design.efftox_engine.PosteriorSummary`
    (``prob_eff``, ..., ``prob_obd``) with Monte Carlo standard errors
    (``mcse_*``: ArviZ's ESS-based MCSE of the mean; for the plug-in utility,
    the delta method on the two means). ``recommended`` is 0-based or NO_DOSE.

    Attributes
    ----------
    summary
        :func:`arviz.summary` of the six parameters and the per-dose
        probabilities and utilities (R-hat, ESS bulk/tail, MCSE), rounded to
        2 decimals for display.
    max_rhat, min_ess_bulk, min_ess_tail, divergences
        Diagnostics for the report, from the unrounded values: the largest
        rank-normalised split R-hat and the smallest bulk / tail ESS
        (Vehtari et al. 2021, Bayesian Analysis 16:667-718) over the
        quantities of ``summary``.
    idata
        The :class:`arviz.InferenceData` (posterior draws).
    """

    prob_eff: np.ndarray
    prob_tox: np.ndarray
    prob_acc_eff: np.ndarray
    prob_acc_tox: np.ndarray
    utility: np.ndarray
    post_utility: np.ndarray
    prob_obd: np.ndarray
    mcse_prob_eff: np.ndarray
    mcse_prob_tox: np.ndarray
    mcse_prob_acc_eff: np.ndarray
    mcse_prob_acc_tox: np.ndarray
    mcse_utility: np.ndarray
    mcse_post_utility: np.ndarray
    in_range: np.ndarray
    acceptable: np.ndarray
    recommended: int
    summary: "pandas.DataFrame"
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    idata: "arviz.InferenceData"


def sample_posterior(
    config: EffToxConfig,
    states: States,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int = 1,
    seed: int | np.random.SeedSequence = 0,
    target_accept: float = 0.8,
    **sample_kwargs: Any,
) -> MCMCFit:
    """Fit one state by NUTS and apply the EffTox rules (conduct mode, reports, tests).

    Parameters
    ----------
    config
        The design's configuration (prior, contour, hurdles).
    states
        A batch holding exactly one state.
    draws, tune, chains, cores, target_accept
        Passed to :func:`pymc.sample` (trialr's defaults are 4 chains of 1000
        warm-up plus 1000 draws).
    seed
        Seeds the chains (``random_seed`` of :func:`pymc.sample`); a
        :class:`numpy.random.SeedSequence` is reduced to one integer.
    """
    import arviz as az
    import pymc as pm

    if states.n_states != 1:
        raise ValueError(f"sample_posterior fits one state at a time; got {states.n_states}")
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    counts = cell_counts(states)[0]
    model = build_model(config, counts)
    with model:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                          target_accept=target_accept, progressbar=False, compute_convergence_checks=False,
                          **sample_kwargs)
    post = idata.posterior
    e = post["prob_eff"].values.reshape(-1, config.n_doses)
    t = post["prob_tox"].values.reshape(-1, config.n_doses)
    u = post["utility"].values.reshape(-1, config.n_doses)

    def mcse(name: str, values: np.ndarray | None = None) -> np.ndarray:
        if values is None:
            arr = post[name]
        else:
            arr = post["prob_eff"].copy(data=values.reshape(post["prob_eff"].shape))
        return np.asarray(az.mcse(arr.to_dataset(name="v"), method="mean")["v"].values, float)

    acc_e_draws = (e > config.efficacy_hurdle).astype(float)
    acc_t_draws = (t < config.toxicity_hurdle).astype(float)
    best = np.argmax(u, axis=1)
    prob_obd = np.bincount(best, minlength=config.n_doses) / best.size
    mean_e, mean_t = e.mean(axis=0), t.mean(axis=0)
    plug = config.utility(mean_e, mean_t)
    mc_e, mc_t = mcse("prob_eff"), mcse("prob_tox")
    # delta method: du/dE and du/dT at the means (finite differences of the closed form)
    h = 1e-6
    du_de = (config.utility(np.minimum(mean_e + h, 1.0), mean_t) - config.utility(mean_e - h, mean_t)) / (2 * h)
    du_dt = (config.utility(mean_e, mean_t + h) - config.utility(mean_e, np.maximum(mean_t - h, 0.0))) / (2 * h)
    mc_plug = np.sqrt((du_de * mc_e) ** 2 + (du_dt * mc_t) ** 2)
    in_range, acceptable, rec = config.apply_rules(states.n, acc_e_draws.mean(axis=0), acc_t_draws.mean(axis=0),
                                            plug, u.mean(axis=0))
    names = [*PARAMETERS, "prob_eff", "prob_tox", "utility"]
    summary = az.summary(idata, var_names=names)  # rounded to 2 decimals, for display
    # the diagnostics from the unrounded values: az.summary rounds R-hat to 2 decimals, so a rounded
    # 1.01 may be 1.005 (and a 1.01 threshold applied to it would really be 1.005)
    raw = az.summary(idata, var_names=names, round_to="none")
    stats = idata.sample_stats
    divergences = int(stats["diverging"].values.sum()) if "diverging" in stats else 0
    fit = MCMCFit(
        prob_eff=mean_e, prob_tox=mean_t,
        prob_acc_eff=acc_e_draws.mean(axis=0), prob_acc_tox=acc_t_draws.mean(axis=0),
        utility=plug, post_utility=u.mean(axis=0), prob_obd=prob_obd,
        mcse_prob_eff=mc_e, mcse_prob_tox=mc_t,
        mcse_prob_acc_eff=mcse("", acc_e_draws), mcse_prob_acc_tox=mcse("", acc_t_draws),
        mcse_utility=mc_plug, mcse_post_utility=mcse("utility"),
        in_range=in_range[0], acceptable=acceptable[0], recommended=int(rec[0]),
        summary=summary, max_rhat=float(raw["r_hat"].max()),
        min_ess_bulk=float(raw["ess_bulk"].min()), min_ess_tail=float(raw["ess_tail"].min()),
        divergences=divergences, idata=idata,
    )
    if fit.max_rhat > 1.01 or fit.divergences:
        log.warning("EffTox NUTS fit: max R-hat %.4f, %d divergent transitions; check the diagnostics",
                    fit.max_rhat, fit.divergences)
    return fit
