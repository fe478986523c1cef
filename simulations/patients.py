"""Virtual patients: latent uniforms drawn once, shared by every design.

Patient ``j`` of trial ``i`` carries ``(u_tox, u_eff)``; at dose ``d`` the
patient has a DLT iff ``u_tox < p_tox[d]`` and responds iff
``u_eff < p_eff[d]`` (Sweeting et al. 2024; DESIGN.md section 3). A
toxicity-response association ``rho`` is a Gaussian copula on the latent
normals :math:`z_T, z_E`:

.. math::

    u_T = \\Phi(z_T), \\qquad u_E = \\Phi\\big(\\rho z_T + \\sqrt{1-\\rho^2}\\, z_E\\big),

so :math:`\\Pr(\\text{DLT} \\wedge \\text{resp}) = \\Phi_2(\\Phi^{-1}(p_T), \\Phi^{-1}(p_E); \\rho)`.

Streams come from ``SeedSequence(seed, spawn_key=(scenario_key, chunk))``:
the draws of a chunk depend on the seed, the scenario's stable key and the
chunk index only — never on the designs compared, the number of workers or
the backend. Uniforms are drawn in fixed blocks of patients, so a design that
enrols more patients reads more blocks without changing the earlier ones.
"""

from __future__ import annotations

import hashlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

__all__ = ["Patients", "draw_patients", "scenario_key", "BLOCK", "joint_probability", "with_graded"]

#: Patients per block of latent draws (fixed: changing it changes every number).
BLOCK = 16


def scenario_key(name: str) -> int:
    """Stable 32-bit key of a scenario name (independent of its position in the file)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


@dataclass(frozen=True, slots=True, eq=False)
class Patients:
    """Latent uniforms ``(T, N)`` for ``T`` trials of up to ``N`` patients.

    ``u_arrival`` drives the accrual process of the time-aware engine
    (:mod:`escalade.simulations.timed`): the ``k``-th arrival of a trial uses
    ``u_arrival[:, k]``. It comes from its own stream (child 3 of the chunk's
    seed sequence), so drawing it never changes ``u_tox``, ``u_eff`` or
    ``u_onset``; ``None`` when the patients were built without it.
    ``graded`` holds the CAR-T patient's outcomes at every dose when the
    scenario has the CAR-T sections (:func:`with_graded`).
    """

    u_tox: np.ndarray
    u_eff: np.ndarray
    u_onset: np.ndarray
    u_arrival: np.ndarray | None = None
    #: The CAR-T patient's graded outcomes (:class:`escalade.simulations.graded.GradedPatients`), drawn
    #: from their own stream when the scenario has the CAR-T sections; ``None`` otherwise.
    graded: Any = None

    @property
    def capacity(self) -> int:
        return int(self.u_tox.shape[1])


def joint_probability(p_tox: object, p_eff: object, association: float = 0.0) -> np.ndarray:
    """True P(DLT and response) per dose under the Gaussian copula of :func:`draw_patients`.

    :math:`\\Phi_2(\\Phi^{-1}(p_T), \\Phi^{-1}(p_E); \\rho)`, which is
    :math:`p_T p_E` when :math:`\\rho = 0`, and :math:`\\min`-bounded at rates
    of 0 or 1.

    >>> joint_probability([0.2, 0.5], [0.5, 0.5]).tolist()
    [0.1, 0.25]
    >>> round(float(joint_probability([0.5], [0.5], 0.5)[0]), 6)   # 1/4 + arcsin(0.5)/(2 pi)
    0.333333
    """
    from scipy import stats

    pt, pe = np.asarray(p_tox, float), np.asarray(p_eff, float)
    rho = float(association)
    if rho == 0.0:
        return pt * pe
    out = np.minimum(pt, pe)
    inner = (pt > 0) & (pt < 1) & (pe > 0) & (pe < 1)
    out = np.where((pt <= 0) | (pe <= 0), 0.0, out)
    if inner.any():
        z = np.column_stack([special.ndtri(pt[inner]), special.ndtri(pe[inner])])
        mvn = stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])
        out[inner] = np.atleast_1d(mvn.cdf(z))
    return out


def _blocks(rng: np.random.Generator, n_trials: int, n_blocks: int) -> np.ndarray:
    return np.concatenate([rng.standard_normal((n_trials, BLOCK)) for _ in range(n_blocks)], axis=1)


def draw_patients(
    seed: int, scenario: int, chunk: int, n_trials: int, max_patients: int, association: float = 0.0
) -> Patients:
    """Draw the patients of one chunk of trials.

    Parameters
    ----------
    seed
        The study's seed.
    scenario
        The scenario's stable key (:func:`scenario_key`).
    chunk
        Chunk index (fixed-size chunks; the layout never depends on workers).
    n_trials, max_patients
        Shape of the draw (``max_patients`` is rounded up to whole blocks).
    association
        Gaussian-copula correlation between toxicity and response.
    """
    n_blocks = -(-max(max_patients, 1) // BLOCK)
    ss = np.random.SeedSequence(seed, spawn_key=(scenario, chunk))
    tox_ss, eff_ss, onset_ss = ss.spawn(3)
    z_t = _blocks(np.random.default_rng(tox_ss), n_trials, n_blocks)
    z_e = _blocks(np.random.default_rng(eff_ss), n_trials, n_blocks)
    rho = float(association)
    if rho != 0.0:
        z_e = rho * z_t + np.sqrt(1.0 - rho * rho) * z_e
    onset_rng = np.random.default_rng(onset_ss)
    u_onset = np.concatenate([onset_rng.random((n_trials, BLOCK)) for _ in range(n_blocks)], axis=1)
    # Arrivals: a fourth, independent child stream, spawned after the first three so that
    # the existing draws (and every result computed from them) stay bit-identical.
    (arrival_ss,) = ss.spawn(1)
    arrival_rng = np.random.default_rng(arrival_ss)
    u_arrival = np.concatenate([arrival_rng.random((n_trials, BLOCK)) for _ in range(n_blocks)], axis=1)
    return Patients(special.ndtr(z_t), special.ndtr(z_e), u_onset, u_arrival)


def with_graded(patients: Patients, model: Any, *, seed: int, scenario: int, chunk: int, p_dlt: Any,
                p_response: Any) -> Patients:
    """``patients`` with the CAR-T outcomes of ``model`` (unchanged when ``model`` is ``None``).

    The graded latents come from their own stream
    (:func:`escalade.simulations.graded.draw_graded`), so the plain draws stay bit-identical.
    """
    if model is None:
        return patients
    from escalade.simulations.graded import draw_graded

    g = draw_graded(model, patients, seed=seed, scenario=scenario, chunk=chunk, p_dlt=p_dlt, p_response=p_response)
    return dataclasses.replace(patients, graded=g)
