"""DECAR clustering: PCA-whitening + k-means reproducible by seed, never empty, never NaN."""

import numpy as np
import pytest

from espnet2_sonar.decar.clustering import Clustering, cluster_features, fit_pca_whitening, normalized_mutual_info


def _blobs(n=300, d=40, k=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.timeout(60)
def test_pseudo_labels_reproducible_by_seed(tmp_path):
    x, _ = _blobs()
    a = cluster_features(x, 8, pca_dim=16, niter=20, seed=3)
    b = cluster_features(x.copy(), 8, pca_dim=16, niter=20, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    # the saved clustering assigns like the in-memory one
    a.save(tmp_path / "c.npz")
    c = Clustering.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(c.labels, a.labels)
    np.testing.assert_array_equal(c.assign(x[:50]), a.assign(x[:50]))


@pytest.mark.timeout(60)
def test_clusters_recover_well_separated_blobs():
    x, y = _blobs(k=5, seed=1)
    res = cluster_features(x, 5, pca_dim=8, seed=0)
    assert normalized_mutual_info(res.labels, y) > 0.95


@pytest.mark.timeout(60)
def test_whitening_gives_unit_rows_and_identity_covariance():
    x, _ = _blobs(n=500, d=20, seed=2)
    w = fit_pca_whitening(x, 8)
    assert w.matrix.shape == (8, 20)
    y = x @ w.matrix.T + w.bias  # before normalisation: zero mean, identity covariance
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(8), atol=1e-2)
    np.testing.assert_allclose(np.linalg.norm(w(x), axis=1), 1.0, atol=1e-5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    ["duplicates", "fewer_distinct_than_k", "all_equal", "rank_deficient", "one_far_outlier"],
)
def test_degenerate_features_never_empty_never_nan(case):
    rng = np.random.default_rng(0)
    if case == "duplicates":  # 4 distinct points, each repeated: faiss may leave clusters empty
        x = np.repeat(rng.normal(size=(4, 16)), [50, 30, 3, 1], axis=0)
        k, expect_k = 4, 4
    elif case == "fewer_distinct_than_k":
        x = np.repeat(rng.normal(size=(3, 16)), 10, axis=0)
        k, expect_k = 8, 3
    elif case == "all_equal":
        x = np.ones((20, 16))
        k, expect_k = 5, 1
    elif case == "rank_deficient":  # N < D and points on a 2-D plane
        x = rng.normal(size=(12, 2)) @ rng.normal(size=(2, 64))
        k, expect_k = 6, 6
    else:  # one direction dwarfs the others (they fall below the eigenvalue tolerance)
        x = np.concatenate([rng.normal(size=(60, 8)) * 0.01, [[1e4] * 8]])
        k, expect_k = 4, None
    res = cluster_features(x.astype(np.float32), k, pca_dim=32, seed=1)
    assert res.requested_k == k and 1 <= res.num_clusters <= k
    assert expect_k is None or res.num_clusters == expect_k
    assert np.isfinite(res.centroids).all() and np.isfinite(res.objective)
    assert (res.sizes >= 1).all() and res.sizes.sum() == len(x)
    assert set(np.unique(res.labels)) == set(range(res.num_clusters))
    assert np.isfinite(res.whitening(x)).all()


@pytest.mark.timeout(30)
def test_nan_features_are_rejected():
    x = np.zeros((10, 4), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cluster_features(x, 2)


@pytest.mark.timeout(30)
def test_nmi_properties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 2000)
    perm = np.array([3, 0, 4, 1, 2])
    assert normalized_mutual_info(a, perm[a]) == pytest.approx(1.0)
    assert normalized_mutual_info(a, rng.integers(0, 5, 2000)) < 0.02


@pytest.mark.timeout(30)
def test_empty_cluster_from_kmeans_is_reseeded(monkeypatch):
    """Force faiss to return a centroid no point is nearest to: the cluster is re-seeded."""
    import espnet2_sonar.nn.kmeans as km

    class FarCentroidKmeans:
        def __init__(self, d, k, **kwargs):
            self.d, self.k = d, k

        def train(self, x):
            far = np.full((1, self.d), 1e6, np.float32)  # points are unit-norm: never nearest
            self.centroids = np.concatenate([x[: self.k - 1], far])

    monkeypatch.setattr(km.faiss, "Kmeans", FarCentroidKmeans)
    x, _ = _blobs(n=120, d=16, k=4, seed=3)
    res = cluster_features(x, 6, pca_dim=8, seed=0)
    assert res.num_clusters == 6 and (res.sizes >= 1).all()
    assert np.isfinite(res.centroids).all()
    assert np.abs(res.centroids).max() <= 1.0 + 1e-5  # the far centroid was replaced by member means
