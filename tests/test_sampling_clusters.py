"""Tests of the clustering under the samplers: seeded faiss k-means (espnet2_sonar.sampling.kmeans)
and balanced-by-cluster sampling (espnet2_sonar.sampling.balanced, S-SONDO's BDS)."""

import numpy as np
import pytest

from espnet2_sonar.sampling.balanced import (
    BalancedBatchSampler,
    BalancedSampler,
    balanced_weights,
    draw_balanced_ids,
)
from espnet2_sonar.sampling.kmeans import _fill_empty_clusters, kmeans

# ----------------------------------------------------------------------------- k-means
@pytest.mark.timeout(60)
def test_kmeans_seeded_determinism_and_consistency():
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    a, b = kmeans(x, 8, seed=5), kmeans(x, 8, seed=5)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.assignments, b.assignments)
    assert a.sizes.sum() == 300 and (a.sizes >= 1).all() and a.num_clusters == 8
    assert np.bincount(a.assignments, minlength=8).tolist() == a.sizes.tolist()
    for j in range(8):  # centroids are member means
        np.testing.assert_allclose(a.centroids[j], x[a.assignments == j].mean(0), atol=1e-5)


@pytest.mark.timeout(60)
def test_kmeans_degenerate_inputs_never_nan():
    # fewer distinct points than k: clamped, every cluster non-empty
    dup = np.array([[0, 0]] * 20 + [[1, 1]] * 3 + [[5, 5]], dtype=np.float32)
    r = kmeans(dup, 5, seed=0)
    assert r.num_clusters == 3 and r.requested_k == 5 and (r.sizes >= 1).all()
    assert np.isfinite(r.centroids).all()
    # k > n
    few = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    r = kmeans(few, 10, seed=0)
    assert r.num_clusters == 4 and r.sizes.tolist() == [1, 1, 1, 1]
    # all identical
    r = kmeans(np.ones((10, 3), np.float32), 3)
    assert r.num_clusters == 1 and np.isfinite(r.centroids).all()
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((5, 2), np.nan, np.float32), 2)


@pytest.mark.timeout(30)
def test_empty_cluster_reseeding():
    x = np.concatenate([np.zeros((10, 2)), np.ones((10, 2)) * 3]).astype(np.float32)
    x += np.random.default_rng(0).normal(scale=0.1, size=x.shape).astype(np.float32)
    # two centroids that no point is closest to
    cents = np.array([[0, 0], [3, 3], [100, 100], [-100, 50]], dtype=np.float32)
    c, assign = _fill_empty_clusters(x, cents, spherical=False)
    assert np.bincount(assign, minlength=4).min() >= 1 and np.isfinite(c).all()


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


