"""Seeded spherical k-means (faiss) for codebook initialisation and expansion.

Codebooks need exactly ``k`` unit vectors even when a batch holds fewer points than
codes (BEATs initialises 1024 codes from the first batch), so unlike a data-clustering
helper this one never shrinks ``k``: when there are fewer points than clusters, every
point becomes a centroid and the rest are drawn from the points with replacement by a
generator seeded from ``seed``. The same input and seed always give the same result.
"""

from dataclasses import dataclass

import faiss
import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class CodebookKMeans:
    """Outcome of :func:`spherical_kmeans`.

    Attributes:
        centroids: float32 [K, d], unit L2 norm, on the input's device.
        counts: int64 [K], points of the input assigned (by cosine) to each centroid.
    """

    centroids: torch.Tensor
    counts: torch.Tensor


def spherical_kmeans(
    x: torch.Tensor,
    num_clusters: int,
    *,
    seed: int,
    iters: int = 10,
    max_points_per_centroid: int = 256,
) -> CodebookKMeans:
    """Cluster unit vectors by cosine with faiss.

    Args:
        x: [N, d] features (normalised here; N >= 1, finite).
        num_clusters: K >= 1 centroids to return.
        seed: faiss initialisation seed (and the seed of the with-replacement draw
            used when N < K).
        iters: Lloyd iterations (official BEATs uses 10).
        max_points_per_centroid: faiss subsamples (seeded) above K times this.

    Returns:
        :class:`CodebookKMeans` with centroids [K, d] and counts [K].
    """
    if x.dim() != 2:
        raise ValueError(f"k-means input must be [N, d], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("k-means input is empty (no valid features in the batch)")
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    device = x.device
    unit = F.normalize(x.detach().float(), dim=-1).cpu()
    if not torch.isfinite(unit).all():
        raise ValueError("k-means input contains NaN or inf values")
    n, dim = unit.shape

    if n <= num_clusters:
        # every point is a centroid; the remainder repeats points (seeded draw)
        g = torch.Generator().manual_seed(int(seed))
        extra = torch.randint(n, (num_clusters - n,), generator=g)
        centroids = torch.cat([unit, unit[extra]], dim=0)
    else:
        km = faiss.Kmeans(
            dim,
            int(num_clusters),
            niter=int(iters),
            seed=int(seed),
            spherical=True,
            verbose=False,
            min_points_per_centroid=1,
            max_points_per_centroid=int(max_points_per_centroid),
        )
        km.train(np.ascontiguousarray(unit.numpy(), dtype=np.float32))
        centroids = torch.from_numpy(np.array(km.centroids, dtype=np.float32)).reshape(num_clusters, dim)
        centroids = F.normalize(centroids, dim=-1)

    assign = (unit @ centroids.T).argmax(dim=1)
    counts = torch.bincount(assign, minlength=num_clusters)
    return CodebookKMeans(centroids=centroids.to(device), counts=counts.to(device))
