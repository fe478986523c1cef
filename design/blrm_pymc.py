"""BLRM in PyMC: the NUTS reference for the quadrature engine and the conduct-mode ``--mcmc`` fit.

The model is that of :mod:`escalade.design.blrm` (Neuenschwander, Branson &
Gsponer 2008, Stat Med 27:2420-2439; the parameterisation of the R package
OncoBayes2), written once more in PyMC so that an independent sampler checks
the deterministic posterior of :class:`~escalade.design.blrm.BlrmModel`:

.. math::

    \\operatorname{logit} p(d) = \\log\\alpha + \\beta \\log(d / d^*), \\qquad
    \\theta = (\\log\\alpha, \\log\\beta) \\sim \\sum_k w_k\\, N_2(m_k, \\Sigma_k),

    \\log L(\\theta) = \\sum_j y_j \\log p(d_j) + (n_j - y_j) \\log\\{1 - p(d_j)\\}.

The prior (a mixture of bivariate normals, one component for the usual
prior) and the binomial likelihood enter as ``pm.Potential`` terms on a flat
two-vector, so the same code serves single and mixture priors. NUTS (Hoffman
& Gelman 2014, JMLR 15:1593-1623) draws the posterior; interval
probabilities and quantiles of :math:`p(d)` are fractions and quantiles of
draws, as OncoBayes2's ``summary()`` computes them from Stan draws, and
:func:`arviz.summary` gives R-hat (rank-normalised, Vehtari et al. 2021,
Bayesian Anal 16:667-718) and bulk/tail ESS.

PyMC and ArviZ are optional (``pip install escalade[mcmc]``) and imported
inside the functions, so ``import escalade.design.blrm`` never needs them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from escalade.design.base import States

if TYPE_CHECKING:  # pragma: no cover
    import arviz
    import pandas
    import pymc

    from escalade.design.blrm import BlrmConfig

__all__ = ["build_model", "draw_summaries", "sample_posterior", "MCMCFit", "Component"]

log = logging.getLogger(__name__)

#: One prior component: (weight, mean of (log alpha, log beta), 2 x 2 covariance).
Component = tuple[float, Sequence[float], Sequence[Sequence[float]]]


def build_model(*, doses: Sequence[float], reference_dose: float, n: Sequence[int], tox: Sequence[int],
                components: Sequence[Component]) -> "pymc.Model":
    """The BLRM for one data set: per-dose counts ``n``, ``tox`` at dose amounts ``doses``.

    The free variable is ``theta`` = (log alpha, log beta); ``log_alpha``,
    ``log_beta`` and ``beta`` are stored as deterministics.
    """
    import pymc as pm
    import pytensor.tensor as pt

    x = np.log(np.asarray(doses, float) / float(reference_dose))
    n_ = np.asarray(n, float)
    y = np.asarray(tox, float)
    if not (x.shape == n_.shape == y.shape):
        raise ValueError(f"doses, n and tox need one value per dose; got {x.size}, {n_.size}, {y.size}")
    w = np.array([c[0] for c in components], float)
    w = w / w.sum()
    heaviest = int(np.argmax(w))
    with pm.Model() as model:
        theta = pm.Flat("theta", shape=2, initval=np.asarray(components[heaviest][1], float))
        comp_logp = []
        for wk, mk, sk in zip(w, (c[1] for c in components), (c[2] for c in components)):
            cov = np.asarray(sk, float)
            prec = np.linalg.inv(cov)
            dev = theta - np.asarray(mk, float)
            quad = pt.dot(dev, pt.dot(prec, dev))
            comp_logp.append(np.log(wk) - 0.5 * np.log(np.linalg.det(2 * np.pi * cov)) - 0.5 * quad)
        pm.Potential("log_prior", pm.math.logsumexp(pt.stack(comp_logp)))
        eta = theta[0] + pt.exp(theta[1]) * x
        # log p = -log1p(exp(-eta)), log(1 - p) = -log1p(exp(eta)): stable in both tails
        pm.Potential("log_likelihood", pt.sum(-y * pt.softplus(-eta) - (n_ - y) * pt.softplus(eta)))
        pm.Deterministic("log_alpha", theta[0])
        pm.Deterministic("log_beta", theta[1])
    return model


def draw_summaries(theta: np.ndarray, doses: Sequence[float], reference_dose: float,
                   cutoffs: Sequence[float], quantiles: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, np.ndarray]:
    """Per-dose summaries of draws ``theta`` ``(M, 2)``: mean of p, interval probabilities, quantiles.

    ``interval_prob`` has shape ``(D, len(cutoffs) + 1)``: the fractions of draws
    with :math:`p(d)` in ``[0, c_1)``, ``[c_1, c_2)``, ..., ``[c_K, 1]``.
    """
    x = np.log(np.asarray(doses, float) / float(reference_dose))
    eta = theta[:, :1] + np.exp(theta[:, 1:2]) * x[None, :]
    p = special.expit(eta)
    edges = np.concatenate([[-np.inf], special.logit(np.asarray(cutoffs, float)), [np.inf]])
    counts = np.stack([((eta >= lo) & (eta < hi)).mean(axis=0) for lo, hi in zip(edges[:-1], edges[1:])], axis=1)
    return {"mean": p.mean(axis=0), "sd": p.std(axis=0, ddof=1), "interval_prob": counts,
            "quantiles": np.quantile(p, np.asarray(quantiles), axis=0).T}


@dataclass(frozen=True, slots=True, eq=False)
class MCMCFit:
    """NUTS summaries of one state with diagnostics (conduct mode, tests).

    Attributes
    ----------
    mean, sd
        ``(D,)`` posterior mean and SD of :math:`p(d_j)`.
    interval_prob
        ``(D, 3)`` posterior probabilities of under-dosing, target and over-dosing.
    quantiles
        ``(D, 3)`` 2.5%, 50% and 97.5% posterior quantiles of :math:`p(d_j)`.
    summary
        :func:`arviz.summary` of ``log_alpha`` and ``log_beta``.
    max_rhat, min_ess_bulk, min_ess_tail, divergences
        Diagnostics for the report.
    idata
        The :class:`arviz.InferenceData`.
    """

    mean: np.ndarray
    sd: np.ndarray
    interval_prob: np.ndarray
    quantiles: np.ndarray
    summary: "pandas.DataFrame"
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    idata: "arviz.InferenceData"


def sample_posterior(
    config: "BlrmConfig",
    states: States,
    *,
    draws: int = 2000,
    tune: int = 1000,
    chains: int = 4,
    cores: int = 1,
    seed: int | np.random.SeedSequence = 0,
    target_accept: float = 0.9,
    **sample_kwargs: Any,
) -> MCMCFit:
    """Fit one state of a BLRM design by NUTS (conduct mode ``--mcmc``, reports, tests).

    Parameters
    ----------
    config
        The design's configuration (doses, reference dose, prior, intervals).
    states
        A batch holding exactly one state.
    draws, tune, chains, cores, target_accept
        Passed to :func:`pymc.sample`.
    seed
        Seeds the chains; a :class:`numpy.random.SeedSequence` is reduced to one integer.
    """
    import arviz as az
    import pymc as pm

    if states.n_states != 1:
        raise ValueError(f"sample_posterior fits one state at a time; got {states.n_states}")
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    model = build_model(doses=config.doses, reference_dose=config.reference_dose_used, n=states.n[0],
                        tox=states.tox[0], components=config.components())
    with model:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                          target_accept=target_accept, progressbar=False, compute_convergence_checks=False,
                          **sample_kwargs)
    theta = idata.posterior["theta"].values.reshape(-1, 2)
    s = draw_summaries(theta, config.doses, config.reference_dose_used, config.target_interval)
    summary = az.summary(idata, var_names=["log_alpha", "log_beta"])
    stats = idata.sample_stats
    divergences = int(stats["diverging"].values.sum()) if "diverging" in stats else 0
    fit = MCMCFit(mean=s["mean"], sd=s["sd"], interval_prob=s["interval_prob"], quantiles=s["quantiles"],
                  summary=summary, max_rhat=float(summary["r_hat"].max()),
                  min_ess_bulk=float(summary["ess_bulk"].min()), min_ess_tail=float(summary["ess_tail"].min()),
                  divergences=divergences, idata=idata)
    if fit.max_rhat > 1.01 or fit.divergences:
        log.warning("BLRM NUTS fit: max R-hat %.4f, %d divergent transitions; check the diagnostics",
                    fit.max_rhat, fit.divergences)
    return fit
