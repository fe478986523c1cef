"""A state's posterior does not depend on its batch, the chunking or the BLAS threads (issue 13, section 3).

The EffTox importance-sampling engine and the CRM / TITE-CRM quadrature are memoised and batched by
state, so a trial's decision must not change with the other states that happen to share its batch.
Before issue 13 they did in the last bits: a lone CRM state went through a BLAS matrix-vector kernel
and a batch through a matrix-matrix one, and the EffTox log-likelihood summed over the doses treated
anywhere in a chunk (so the product's length depended on the other states), which OpenBLAS's Haswell
kernels (``OPENBLAS_CORETYPE=Haswell``) round differently. Every summary is compared bit for bit
(``np.array_equal``) for one state alone, batches of 7, 64 and 1000, other chunk sizes and engine
threads, and 1 or 2 BLAS threads (threadpoolctl), with the OPENBLAS variables as set and, in a
subprocess, unset. The tests never set an OPENBLAS variable.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from escalade.design.crm import CrmModel
from escalade.design.efftox import EXAMPLE_PRIOR, EffToxConfig, EffToxDesign
from escalade.design.efftox_engine import _SUMMARY_FIELDS, EffToxEngine
from escalade.design.tite_crm import weighted_posterior

REPO = Path(__file__).resolve().parents[1]

EFFTOX = dict(n_doses=5, doses=(1.0, 2.0, 4.0, 6.6, 10.0), efficacy_hurdle=0.5, toxicity_hurdle=0.3, eff0=0.5,
              tox1=0.65, eff_star=0.7, tox_star=0.25, cohort_size=3, max_n=39, **EXAMPLE_PRIOR)
SPLITS = (1, 7, 64)  # batch sizes compared with one batch of all states (singles: the first 12 states)


def _efftox_cells(rng: np.random.Generator, s: int) -> np.ndarray:
    """Random joint cell counts ``(S, 5, 4)``: 0-12 cohorts of 3 on random doses (so chunk-mates differ
    in which doses they were treated at), plus one state without data."""
    cnt = np.zeros((s, 5, 4), np.int64)
    for i in range(1, s):
        for _ in range(rng.integers(1, 13)):
            cnt[i, rng.integers(0, 5)] += rng.multinomial(3, [0.15, 0.3, 0.1, 0.45])
    return cnt


def _split(fn, n: int, size: int, limit: int | None = None) -> list[tuple[slice, object]]:
    stop = n if limit is None else min(n, limit)
    return [(slice(a, min(a + size, stop)), fn(slice(a, min(a + size, stop)))) for a in range(0, stop, size)]


def efftox_mismatches(n_states: int = 1000, seed: int = 11) -> list[str]:
    """Summaries of ``n_states`` random states computed whole, split, re-chunked and with 1 or 2 BLAS
    threads; the fields that differ from the whole batch in any bit (empty list: all identical)."""
    eng = EffToxDesign(EffToxConfig(**EFFTOX)).engine
    cnt = _efftox_cells(np.random.default_rng(seed), n_states)
    bad = []

    def compare(label: str, part, where) -> None:
        for f in _SUMMARY_FIELDS:
            if not np.array_equal(getattr(whole, f)[where], getattr(part, f), equal_nan=True):
                bad.append(f"efftox {label}: {f}")

    with threadpool_limits(limits=2, user_api="blas"):
        whole = eng.summarise(cnt)
    other = EffToxEngine(eng.coded_doses, prior_mean=eng.prior_mean, prior_sd=eng.prior_sd,
                         efficacy_hurdle=eng.efficacy_hurdle, toxicity_hurdle=eng.toxicity_hurdle, eff0=eng.eff0,
                         tox1=eng.tox1, p=eng.p,
                         settings=dataclasses.replace(eng.settings, n_threads=2, chunk_elements=50_000))
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            for size in SPLITS:
                limit = 12 if size == 1 else 2 * 64 + 5
                for where, part in _split(lambda sl: eng.summarise(cnt[sl]), n_states, size, limit):
                    compare(f"batch of {size}, {threads} BLAS thread(s)", part, where)
            order = np.random.default_rng(threads).permutation(n_states)
            compare(f"shuffled, 2 engine threads, other chunks, {threads} BLAS thread(s)",
                    other.summarise(cnt[order]), order)
    return sorted(set(bad))


def _crm_states(rng: np.random.Generator, s: int) -> tuple[np.ndarray, np.ndarray]:
    n = rng.integers(0, 10, (s, 5)) * (rng.random((s, 5)) < 0.7)
    return n, rng.binomial(n, 0.3)


def crm_mismatches(n_states: int = 1000, seed: int = 5) -> list[str]:
    """As :func:`efftox_mismatches` for the CRM posterior (Bayes, MLE, safety probability) and the
    TITE-CRM weighted posterior (with extra weight-0 padding columns in the split batches)."""
    rng = np.random.default_rng(seed)
    n, y = _crm_states(rng, n_states)
    pdose = np.where(rng.random((n_states, 4)) < 0.6, rng.integers(0, 5, (n_states, 4)), -1)
    pw = np.where(pdose >= 0, rng.uniform(0.0, 1.0, (n_states, 4)), 0.0)
    bad = []
    for model, method in (("empiric", "bayes"), ("logistic", "bayes"), ("empiric", "mle")):
        m = CrmModel(skeleton=(0.05, 0.12, 0.25, 0.40, 0.55), target=0.3, model=model, intercept=3.0,
                     prior_var=1.34, method=method, conf_level=0.9, n_intervals=142)

        def crm(sl: slice, m=m):
            est = m.estimate(n[sl], y[sl], safety=True)
            return tuple(a for a in (est.beta, est.ptox, est.post_var, est.prob_lowest_too_toxic) if a is not None)

        def tite(sl: slice, m=m, pad: int = 0):
            pd_ = np.pad(pdose[sl], ((0, 0), (0, pad)), constant_values=-1)
            return weighted_posterior(m, y[sl], (n - y)[sl], pd_, np.pad(pw[sl], ((0, 0), (0, pad))))

        with threadpool_limits(limits=2, user_api="blas"):
            ref = {"crm": crm(slice(None)), "tite": tite(slice(None))}
        for threads in (1, 2):
            with threadpool_limits(limits=threads, user_api="blas"):
                for size in (*SPLITS, n_states):
                    for name, fn in (("crm", crm), ("tite", lambda sl, f=tite: f(sl, pad=3))):
                        for where, part in _split(fn, n_states, size):
                            for k, (a, b) in enumerate(zip(ref[name], part)):
                                if not np.array_equal(a[where], b, equal_nan=True):
                                    bad.append(f"{name} {model}/{method} output {k}: batch of {size}, "
                                               f"{threads} BLAS thread(s)")
    return sorted(set(bad))


def test_efftox_engine_is_bit_identical_for_any_batch_split_and_blas_threads() -> None:
    assert efftox_mismatches() == []


def test_crm_and_tite_crm_are_bit_identical_for_any_batch_split_and_blas_threads() -> None:
    assert crm_mismatches() == []


def test_same_bits_with_the_openblas_variables_unset() -> None:
    """The same checks in a fresh interpreter without any ``OPENBLAS_*`` variable (OpenBLAS then picks
    its kernels from the CPU), so the suite covers both the environment it was given and the default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS")}
    code = ("import sys; sys.path.insert(0, 'tests'); import test_reproducible as t; "
            "bad = t.efftox_mismatches(200) + t.crm_mismatches(200); print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


@pytest.mark.parametrize("fn", [efftox_mismatches, crm_mismatches])
def test_the_checks_can_fail(fn, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that compares nothing would pass vacuously: perturb one state's data in the split runs
    only (the whole batch is computed first) and see the check report it."""
    import escalade.design.crm as crm_module
    import escalade.design.efftox_engine as eng_module

    calls = {"n": 0}
    if fn is efftox_mismatches:
        orig = eng_module.EffToxEngine.summarise

        def summarise(self, counts, **kw):
            calls["n"] += 1
            c = np.array(counts)
            if calls["n"] > 1 and c.ndim == 3:
                c[0, 0, 3] += 1  # one more patient without efficacy or toxicity at dose 1
            return orig(self, c, **kw)

        monkeypatch.setattr(eng_module.EffToxEngine, "summarise", summarise)
        assert fn(40)
    else:
        orig_ll = crm_module.counts_loglik

        def counts_loglik(counts, table):
            calls["n"] += 1
            out = orig_ll(counts, table)
            if out.shape[0] == 1:  # lone states only (the whole batch has 40)
                out = np.nextafter(out, np.inf)  # one ulp: the kind of difference the checks must see
            return out

        monkeypatch.setattr(crm_module, "counts_loglik", counts_loglik)
        assert fn(40)
