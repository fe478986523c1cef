"""The compiled grid contractions (design/blrm_kernels.py) are NumPy's expressions, bit for bit (issue 18)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from escalade.design.blrm_kernels import counts_loglik_rows, grid_sums_rows, pairwise_plan
from escalade.design.crm import counts_loglik, grid_sums


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64).view(np.uint64)


@pytest.mark.parametrize("g", [1, 7, 8, 9, 127, 128, 129, 136, 1000, 2001, 25921])
def test_grid_sums_are_numpys_pairwise_reduction(g: int) -> None:
    rng = np.random.default_rng(g)
    values = rng.random((9, g)) * np.exp(-rng.random((1, g)) * 30)   # posterior-like: many tiny terms
    rows = rng.normal(size=(5, g))                                     # signed weights (Lagrange CDF weights)
    rows[1] = np.where(rng.random(g) < 0.5, 0.0, rows[1])             # half-lines of zeros, as the CDF columns
    want = np.stack([np.add.reduce(values * rows[j], axis=1) for j in range(rows.shape[0])], axis=1)
    assert np.array_equal(_bits(grid_sums(values, rows)), _bits(want))
    assert np.array_equal(_bits(grid_sums_rows(values, np.ascontiguousarray(rows.T), pairwise_plan(g))), _bits(want))
    # one state at a time: the same bits (no dependence on the batch)
    one = np.concatenate([grid_sums(values[i:i + 1], rows) for i in range(values.shape[0])])
    assert np.array_equal(_bits(one), _bits(want))


def test_counts_loglik_is_term_by_term_in_order() -> None:
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 9, (40, 10)).astype(float)
    counts[rng.random(counts.shape) < 0.4] = 0.0
    table = -rng.random((10, 2001)) * 5
    want = counts[:, 0:1] * table[0]
    for k in range(1, table.shape[0]):
        want = want + counts[:, k:k + 1] * table[k]
    assert np.array_equal(_bits(counts_loglik(counts, table)), _bits(want))
    assert np.array_equal(_bits(counts_loglik_rows(counts, table)), _bits(want))
    # integer counts and a non-contiguous table give the same numbers
    assert np.array_equal(_bits(counts_loglik(counts.astype(np.int64), np.asfortranarray(table))), _bits(want))


def test_pairwise_plan_is_numpys_tree() -> None:
    # 300 terms: split at 144 (150 rounded down to a multiple of 8), then 144 -> 72 + 72, 156 -> 72 + 84
    plan = pairwise_plan(300).tolist()
    assert plan == [[0, 0, 72], [0, 72, 72], [1, 0, 0], [0, 144, 72], [0, 216, 84], [1, 0, 0], [1, 0, 0]]
    assert pairwise_plan(128).tolist() == [[0, 0, 128]]


def test_blrm_worker_copies_share_one_model_and_one_cache() -> None:
    from escalade.design.base import States
    from escalade.design.blrm import BlrmConfig, BlrmDesign

    d = BlrmDesign(BlrmConfig(n_doses=3, doses=(1.0, 2.0, 4.0), reference_dose=2.0, grid_points=41))
    blob = pickle.dumps(d)
    a, b = pickle.loads(blob), pickle.loads(blob)   # two work units received by one worker process
    assert a.model is b.model and a._cache is b._cache and a._cache is not d._cache
    st = States.from_counts([[3, 3, 0], [3, 0, 0]], [[0, 1, 0], [1, 0, 0]], current=[1, 0])
    before = len(a._cache.data)
    da = a.decide(st)
    assert len(b._cache.data) == before + 2             # b sees a's summaries
    db = b.decide(st)
    dd = d.decide(st)
    assert np.array_equal(da.dose, dd.dose) and np.array_equal(db.dose, dd.dose)
    sa, sd = a.summaries(st), d.summaries(st)
    assert np.array_equal(_bits(sa.prob_over), _bits(sd.prob_over))
