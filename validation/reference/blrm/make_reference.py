"""Write nuts_reference.json: long PyMC NUTS fits of the BLRM on six data sets (issue 17).

The data sets and priors below are the inputs; the JSON stores them with the
per-dose posterior summaries of p(d) (mean, SD, interval probabilities,
2.5/50/97.5% quantiles), their Monte Carlo standard errors and the ArviZ
diagnostics. tests/test_blrm.py compares the quadrature engine against this
file; its `slow` test reruns NUTS (shorter) and checks the file is still right.

Data set "hist_SA" is OncoBayes2's single-agent example (Neuenschwander et al.
2008; R: `example(blrm_exnex)` / `hist_SA`): doses 1, 2.5, 5, 10, 25 with
3, 4, 5, 4, 2 patients and 0, 0, 0, 0, 2 DLTs, reference dose 50 as in the
example's code, prior (log alpha, log beta) ~ N((logit 0.5, log 1), diag(2^2, 1^2)).

Run (about 7 minutes on 2 shared cores; names of data sets rerun only those and
keep the others of the existing file):
    nice python validation/reference/blrm/make_reference.py [NAME ...]
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the checkout's escalade

CHAINS, TUNE, DRAWS, SEED = 4, 1000, 25_000, 20081231
CUTOFFS = (0.16, 0.33)
QUANTILES = (0.025, 0.5, 0.975)
SA_DOSES = [1.0, 2.5, 5.0, 10.0, 25.0]


def _cov(sd: list[float], corr: float = 0.0) -> list[list[float]]:
    return [[sd[0] ** 2, corr * sd[0] * sd[1]], [corr * sd[0] * sd[1], sd[1] ** 2]]


WEAK = [[1.0, [0.0, 0.0], _cov([2.0, 1.0])]]   # logit(0.5) = 0, log(1) = 0

DATASETS = {
    "hist_SA": dict(doses=SA_DOSES, reference_dose=50.0, n=[3, 4, 5, 4, 2], tox=[0, 0, 0, 0, 2],
                    components=WEAK, eval_doses=SA_DOSES + [50.0]),
    "dlt_at_lowest": dict(doses=SA_DOSES, reference_dose=50.0, n=[6, 3, 0, 0, 0], tox=[2, 2, 0, 0, 0],
                          components=WEAK, eval_doses=SA_DOSES + [50.0]),
    "mid_trial": dict(doses=SA_DOSES, reference_dose=10.0, n=[3, 3, 6, 6, 3], tox=[0, 0, 1, 2, 2],
                      components=WEAK, eval_doses=SA_DOSES),
    "no_dlt": dict(doses=SA_DOSES, reference_dose=10.0, n=[3, 3, 3, 3, 3], tox=[0, 0, 0, 0, 0],
                   components=WEAK, eval_doses=SA_DOSES),
    "cart_correlated": dict(doses=[1e5, 3e5, 1e6, 3e6, 1e7], reference_dose=1e6, n=[3, 3, 6, 3, 0],
                            tox=[0, 0, 1, 2, 0],
                            components=[[1.0, [math.log(0.3 / 0.7), 0.0], _cov([1.5, 0.8], -0.3)]],
                            eval_doses=[1e5, 3e5, 1e6, 3e6, 1e7]),
    "mixture_prior": dict(doses=SA_DOSES, reference_dose=10.0, n=[3, 3, 3, 6, 0], tox=[0, 0, 0, 1, 0],
                          components=[[0.7, [math.log(0.25 / 0.75), 0.0], _cov([1.0, 0.7], 0.2)],
                                      [0.3, [0.0, 0.0], _cov([2.0, 1.0])]],
                          eval_doses=SA_DOSES),
}


def main() -> None:
    import arviz as az
    import pymc as pm

    from escalade.design.blrm_pymc import build_model, draw_summaries

    out = {"note": __doc__.split("\n\n")[0], "cutoffs": list(CUTOFFS), "quantiles": list(QUANTILES),
           "sampler": {"chains": CHAINS, "tune": TUNE, "draws": DRAWS, "seed": SEED, "target_accept": 0.95,
                       "pymc": pm.__version__, "arviz": az.__version__, "python": platform.python_version()},
           "datasets": {}}
    only = sys.argv[1:]
    path = HERE / "nuts_reference.json"
    if only:
        out["datasets"] = json.loads(path.read_text())["datasets"]
    for i, (name, ds) in enumerate(DATASETS.items()):
        if only and name not in only:
            continue
        t0 = time.time()
        model = build_model(doses=ds["doses"], reference_dose=ds["reference_dose"], n=ds["n"], tox=ds["tox"],
                            components=ds["components"])
        with model:
            idata = pm.sample(draws=DRAWS, tune=TUNE, chains=CHAINS, cores=1, random_seed=SEED + i,
                              target_accept=0.95, progressbar=False, compute_convergence_checks=False)
        theta = idata.posterior["theta"].values  # (chain, draw, 2)
        flat = theta.reshape(-1, 2)
        s = draw_summaries(flat, ds["eval_doses"], ds["reference_dose"], CUTOFFS, QUANTILES)
        # Monte Carlo SE of each interval probability: ESS of the indicator draws (ArviZ)
        x = np.log(np.asarray(ds["eval_doses"]) / ds["reference_dose"])
        eta = theta[..., :1] + np.exp(theta[..., 1:2]) * x
        lg = np.log(np.asarray(CUTOFFS) / (1 - np.asarray(CUTOFFS)))
        ind = np.stack([eta < lg[0], (eta >= lg[0]) & (eta < lg[1]), eta >= lg[1]], axis=-1).astype(float)
        mcse_int = np.zeros(ind.shape[2:])
        mcse_q = np.zeros((len(ds["eval_doses"]), len(QUANTILES)))
        for j in range(ind.shape[2]):
            for k in range(3):
                mcse_int[j, k] = float(np.ravel(az.mcse(ind[:, :, j, k], method="mean"))[0])
            p = 1 / (1 + np.exp(-eta[:, :, j]))
            for q, qq in enumerate(QUANTILES):
                mcse_q[j, q] = float(np.ravel(az.mcse(p, method="quantile", prob=qq))[0])
        summ = az.summary(idata, var_names=["log_alpha", "log_beta"])
        div = int(idata.sample_stats["diverging"].values.sum())
        out["datasets"][name] = {
            **{k: v for k, v in ds.items()},
            "mean": s["mean"].tolist(), "sd": s["sd"].tolist(),
            "interval_prob": s["interval_prob"].tolist(), "quantiles_p": s["quantiles"].tolist(),
            "mcse_interval_prob": mcse_int.tolist(), "mcse_quantiles_p": mcse_q.tolist(),
            "theta_mean": flat.mean(axis=0).tolist(), "theta_cov": np.cov(flat.T).tolist(),
            "max_rhat": float(summ["r_hat"].max()), "min_ess_bulk": float(summ["ess_bulk"].min()),
            "min_ess_tail": float(summ["ess_tail"].min()), "divergences": div,
            "seconds": round(time.time() - t0, 1),
        }
        print(name, f"{time.time() - t0:.0f} s", "rhat", float(summ["r_hat"].max()), "ess",
              float(summ["ess_bulk"].min()), "div", div, flush=True)
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
