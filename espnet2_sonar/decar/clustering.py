"""DeepCluster's clustering step: faiss PCA-whitening, L2 normalisation, seeded faiss k-means.

    x [N, D] -> PCA to d = min(pca_dim, D, N, rank) dims, each scaled to unit variance
      -> rows L2-normalised -> k-means (k clusters, niter Lloyd iterations, seed)

Guarantees (inherited from ``espnet2_sonar.nn.kmeans`` with ``k_policy="distinct"``): every cluster is non-empty
(empty ones are re-seeded from the farthest points of the largest spread), centroids are
finite, and ``k`` is clamped to the number of distinct points (``Clustering.requested_k``
keeps the value asked for). Directions with (numerically) zero variance are dropped
before whitening instead of being divided by ~0, so degenerate data never gives NaN.

The fitted transform and centroids assign new points (e.g. the validation set) with
:meth:`Clustering.assign`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from espnet2_sonar.nn.kmeans import assign_to_centroids, kmeans
from espnet2_sonar.utils.atomic_write import atomic_path

RELATIVE_EIGEN_TOL = 1e-5
"""Principal directions whose variance is below this share of the largest are dropped."""


@dataclass
class PcaWhitening:
    """y = x @ matrix.T + bias. matrix: float32 [d, D]; bias: float32 [d]."""

    matrix: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x [N, D] -> whitened, L2-normalised [N, d] (all-zero rows stay zero)."""
        y = np.asarray(x, dtype=np.float32) @ self.matrix.T + self.bias
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        return np.ascontiguousarray(y / np.maximum(norm, 1e-12), dtype=np.float32)


def fit_pca_whitening(x: np.ndarray, dim: int) -> PcaWhitening:
    """faiss PCA with eigen_power -0.5 on x [N, D] to at most ``dim`` dims (see module doc)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d_in = x.shape
    d_out = max(1, min(int(dim), d_in, n))
    pca = faiss.PCAMatrix(d_in, d_out, -0.5)
    pca.epsilon = 1e-12
    pca.train(x)
    eig = faiss.vector_to_array(pca.eigenvalues)[:d_out].astype(np.float64)
    top = float(eig.max()) if eig.size else 0.0
    keep = int((eig > RELATIVE_EIGEN_TOL * top).sum()) if top > 0 else 0
    if keep == 0:  # all points equal: one constant dimension, so everything is one cluster
        return PcaWhitening(np.zeros((1, d_in), np.float32), np.zeros(1, np.float32))
    # rows are sorted by decreasing eigenvalue, so the first ``keep`` form the smaller PCA;
    # faiss's eigenvalues are sums over the N points: sqrt(N) makes the variance exactly 1
    scale = np.sqrt(n)
    matrix = faiss.vector_to_array(pca.A).reshape(d_out, d_in)[:keep] * scale
    bias = faiss.vector_to_array(pca.b)[:keep] * scale
    return PcaWhitening(matrix.astype(np.float32), bias.astype(np.float32))


@dataclass
class Clustering:
    """Result of :func:`cluster_features`.

    labels: int64 [N] cluster of each input row, in [0, K).
    centroids: float32 [K, d] in the whitened, normalised space.
    sizes: int64 [K], all >= 1.
    objective: k-means sum of squared distances.
    requested_k: the k asked for (K = len(centroids) may be smaller, see module doc).
    whitening: the fitted transform.
    """

    labels: np.ndarray
    centroids: np.ndarray
    sizes: np.ndarray
    objective: float
    requested_k: int
    whitening: PcaWhitening

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid of new points x [M, D] -> int64 [M]."""
        return assign_to_centroids(self.whitening(x), self.centroids)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` atomically."""
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to a name without it
            np.savez(
                tmp,
                labels=self.labels,
                centroids=self.centroids,
                sizes=self.sizes,
                pca_matrix=self.whitening.matrix,
                pca_bias=self.whitening.bias,
                meta=np.array(json.dumps({"objective": self.objective, "requested_k": self.requested_k})),
            )

    @classmethod
    def load(cls, path: str | Path) -> "Clustering":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return cls(
                labels=z["labels"],
                centroids=z["centroids"],
                sizes=z["sizes"],
                objective=float(meta["objective"]),
                requested_k=int(meta["requested_k"]),
                whitening=PcaWhitening(z["pca_matrix"], z["pca_bias"]),
            )


def cluster_features(x: np.ndarray, k: int, *, pca_dim: int = 128, niter: int = 20, seed: int = 0) -> Clustering:
    """PCA-whiten, L2-normalise and k-means x [N, D] into (at most) k clusters, seeded."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty [N, D] array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf (did the encoder diverge?)")
    whitening = fit_pca_whitening(x, pca_dim)
    z = whitening(x)
    km = kmeans(z, k, k_policy="distinct", seed=seed, niter=niter, max_points_per_centroid=1 << 30)
    return Clustering(
        labels=km.assignments,
        centroids=km.centroids,
        sizes=km.sizes,
        objective=km.objective,
        requested_k=int(k),
        whitening=whitening,
    )


def normalized_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """NMI (arithmetic normalisation) of two labelings [N]; 1.0 when both are constant."""
    a = np.unique(np.asarray(a), return_inverse=True)[1]
    b = np.unique(np.asarray(b), return_inverse=True)[1]
    if a.shape != b.shape or a.size == 0:
        raise ValueError("labelings must be non-empty and of equal length")
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    p = joint / a.size
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pa[:, None] * pb[None, :])[nz])).sum())
    ha = float(-(pa * np.log(pa)).sum())
    hb = float(-(pb * np.log(pb)).sum())
    if ha + hb == 0:
        return 1.0
    return max(0.0, 2.0 * mi / (ha + hb))
