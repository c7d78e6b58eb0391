"""Tests of balanced-by-cluster sampling (espnet2_sonar.sampling.balanced, S-SONDO's BDS).

The seeded faiss k-means under it is tested in tests/nn/test_kmeans.py."""

import numpy as np
import pytest

from espnet2_sonar.sampling.balanced import (
    BalancedBatchSampler,
    BalancedSampler,
    balanced_weights,
    draw_balanced_ids,
)

# ----------------------------------------------------------------------------- BDS
@pytest.mark.timeout(30)
def test_bds_weights_inverse_cluster_size():
    w = balanced_weights(np.array([0, 0, 0, 1, 2, 2]))
    np.testing.assert_allclose(w, [1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6])
    assert np.isclose(w.sum(), 1.0)
    # cluster ids with gaps: K counts non-empty clusters only
    np.testing.assert_allclose(balanced_weights(np.array([3, 3, 7])), [0.25, 0.25, 0.5])


@pytest.mark.timeout(60)
def test_bds_sampler_balances_clusters():
    assign = np.repeat([0, 1, 2], [500, 50, 5])
    s = BalancedSampler.from_assignments(assign, num_samples=30000, seed=1)
    freq = np.bincount(assign[list(s)], minlength=3) / 30000
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.02)
    first = list(s)
    assert first == list(s)  # same epoch -> same draws
    s.set_epoch(1)
    assert first != list(s)
    ids = [f"u{i}" for i in range(len(assign))]
    drawn = draw_balanced_ids(ids, balanced_weights(assign), 6000, seed=0)
    assert drawn == draw_balanced_ids(ids, balanced_weights(assign), 6000, seed=0)
    frac_small = np.mean([int(d[1:]) >= 550 for d in drawn])
    assert abs(frac_small - 1 / 3) < 0.03
    bs = BalancedBatchSampler(ids, assign, batch_size=8, num_batches=5, seed=2)
    batches = list(bs)
    assert len(batches) == len(bs) == 5 and all(isinstance(b, tuple) and len(b) == 8 for b in batches)
    assert batches == bs.generate(2) and batches != bs.generate(3)


