"""espnet2_sonar.nn.kmeans: one seeded faiss k-means, two explicit policies for ``k``."""

import numpy as np
import pytest
import torch

from espnet2_sonar.nn.kmeans import _fill_empty_clusters, assign_to_centroids, kmeans


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _check_consistent(r, x: np.ndarray, nearest: bool) -> None:
    """sizes count the assignments, objective sums the sq. distances to the assigned centroids;
    with ``nearest`` the assignments are the nearest centroids ("exact": always; "distinct":
    centroids are the member means of the final assignment, one half-step after it)."""
    n = x.shape[0]
    assert r.assignments.shape == (n,) and r.assignments.dtype == np.int64
    assert r.sizes.dtype == np.int64 and r.sizes.sum() == n
    assert np.bincount(r.assignments, minlength=r.num_clusters).tolist() == r.sizes.tolist()
    if nearest:
        np.testing.assert_array_equal(r.assignments, assign_to_centroids(x, r.centroids))
    sq = ((x.astype(np.float64) - r.centroids[r.assignments]) ** 2).sum()
    assert r.objective == pytest.approx(sq, rel=1e-5, abs=1e-6)


# ----------------------------------------------------------------------------- "distinct"
@pytest.mark.timeout(60)
def test_distinct_seeded_determinism_and_consistency():
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    a = kmeans(x, 8, k_policy="distinct", seed=5)
    b = kmeans(x.copy(), 8, k_policy="distinct", seed=5)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.assignments, b.assignments)
    assert a.num_clusters == 8 and a.requested_k == 8 and (a.sizes >= 1).all()
    _check_consistent(a, x, nearest=False)
    for j in range(8):  # centroids are member means
        np.testing.assert_allclose(a.centroids[j], x[a.assignments == j].mean(0), atol=1e-5)
    c = kmeans(x, 8, k_policy="distinct", seed=6)
    assert not np.array_equal(a.centroids, c.centroids)


@pytest.mark.timeout(60)
def test_distinct_degenerate_inputs_never_nan():
    # fewer distinct points than k: clamped, every cluster non-empty
    dup = np.array([[0, 0]] * 20 + [[1, 1]] * 3 + [[5, 5]], dtype=np.float32)
    r = kmeans(dup, 5, k_policy="distinct", seed=0)
    assert r.num_clusters == 3 and r.requested_k == 5 and (r.sizes >= 1).all()
    assert np.isfinite(r.centroids).all()
    # k > n
    few = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    r = kmeans(few, 10, k_policy="distinct", seed=0)
    assert r.num_clusters == 4 and r.sizes.tolist() == [1, 1, 1, 1]
    # all identical
    r = kmeans(np.ones((10, 3), np.float32), 3, k_policy="distinct", seed=0)
    assert r.num_clusters == 1 and np.isfinite(r.centroids).all() and r.objective == 0.0


@pytest.mark.timeout(60)
def test_distinct_spherical_centroids_are_unit():
    x = _unit(np.random.default_rng(2).normal(size=(400, 8)))
    r = kmeans(x, 6, k_policy="distinct", seed=1, nredo=2, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(r.centroids, axis=1), 1.0, atol=1e-5)
    assert (r.sizes >= 1).all()
    _check_consistent(r, x, nearest=False)


@pytest.mark.timeout(30)
def test_empty_cluster_reseeding():
    x = np.concatenate([np.zeros((10, 2)), np.ones((10, 2)) * 3]).astype(np.float32)
    x += np.random.default_rng(0).normal(scale=0.1, size=x.shape).astype(np.float32)
    # two centroids that no point is closest to
    cents = np.array([[0, 0], [3, 3], [100, 100], [-100, 50]], dtype=np.float32)
    c, assign = _fill_empty_clusters(x, cents, spherical=False)
    assert np.bincount(assign, minlength=4).min() >= 1 and np.isfinite(c).all()


# ----------------------------------------------------------------------------- "exact"
@pytest.mark.timeout(60)
def test_exact_fewer_points_than_clusters_repeats_points_by_seed():
    x = _unit(np.random.default_rng(3).normal(size=(5, 4)))
    a = kmeans(x, 12, k_policy="exact", seed=7, spherical=True)
    b = kmeans(x, 12, k_policy="exact", seed=7, spherical=True)
    assert a.num_clusters == 12 and a.requested_k == 12
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.centroids[:5], x)  # every point is a centroid
    # the remainder is the torch-seeded with-replacement draw codebooks have always used
    extra = torch.randint(5, (7,), generator=torch.Generator().manual_seed(7)).numpy()
    np.testing.assert_array_equal(a.centroids[5:], x[extra])
    assert a.sizes.sum() == 5 and a.objective == pytest.approx(0.0, abs=1e-5)
    _check_consistent(a, x, nearest=True)
    c = kmeans(x, 12, k_policy="exact", seed=8, spherical=True)
    assert not np.array_equal(a.centroids, c.centroids)


@pytest.mark.timeout(60)
def test_exact_never_shrinks_k_where_distinct_does():
    # 3 distinct points, 40 rows, k = 6: "exact" keeps 6 centroids, "distinct" clamps to 3
    dup = _unit(np.repeat(np.eye(3, 4) + 0.1, [30, 7, 3], axis=0))
    e = kmeans(dup, 6, k_policy="exact", seed=0, niter=10, spherical=True)
    d = kmeans(dup, 6, k_policy="distinct", seed=0, niter=10, spherical=True)
    assert e.num_clusters == 6 and e.requested_k == 6 and np.isfinite(e.centroids).all()
    assert d.num_clusters == 3 and d.requested_k == 6 and (d.sizes >= 1).all()
    _check_consistent(e, dup, nearest=True)


@pytest.mark.timeout(60)
def test_exact_seeded_spherical_faiss_path():
    x = _unit(np.random.default_rng(4).normal(size=(500, 16)))
    a = kmeans(x, 10, k_policy="exact", seed=3, niter=10, spherical=True)
    b = kmeans(x.copy(), 10, k_policy="exact", seed=3, niter=10, spherical=True)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.sizes, b.sizes)
    assert a.centroids.shape == (10, 16) and a.centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-6)
    _check_consistent(a, x, nearest=True)
    assert not np.array_equal(a.centroids, kmeans(x, 10, k_policy="exact", seed=4, niter=10, spherical=True).centroids)


# ----------------------------------------------------------------------------- validation
@pytest.mark.timeout(30)
@pytest.mark.parametrize("policy", ["exact", "distinct"])
def test_validation_errors(policy):
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((5, 2), np.nan, np.float32), 2, k_policy=policy, seed=0)
    with pytest.raises(ValueError, match="empty"):
        kmeans(np.zeros((0, 2), np.float32), 2, k_policy=policy, seed=0)
    with pytest.raises(ValueError, match="2-D"):
        kmeans(np.zeros(5, np.float32), 2, k_policy=policy, seed=0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        kmeans(x, 0, k_policy=policy, seed=0)


@pytest.mark.timeout(30)
def test_unknown_policy_and_assign_mismatch():
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="k_policy"):
        kmeans(x, 2, k_policy="clamp", seed=0)
    with pytest.raises(ValueError, match="dimension mismatch"):
        assign_to_centroids(x, np.zeros((3, 4), np.float32))
