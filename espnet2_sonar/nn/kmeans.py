"""Seeded faiss k-means with an explicit policy for how the requested ``k`` is honoured.

Two kinds of caller need different things from the same clustering:

* ``k_policy="exact"`` (codebooks): exactly ``k`` centroids, always. When there are no
  more points than clusters (``N <= k``, e.g. BEATs initialises 1024 codes from one
  batch) faiss is not run: every point becomes a centroid and the remaining ``k - N``
  repeat points drawn with replacement by a generator seeded from ``seed``. Clusters may
  be empty (a repeated point's copy wins no member) and centroids are faiss's own
  (unit-normalised when ``spherical``).
* ``k_policy="distinct"`` (data clustering: TRSS strata, BDS clusters, DeCAR pseudo-labels):
  ``k`` is clamped to the number of *distinct* points (more non-empty clusters cannot
  exist; ``KMeansResult.requested_k`` keeps the value asked for) and every cluster is
  non-empty: after faiss, each empty cluster is re-seeded at the point farthest from its
  own centroid among clusters with more than one member, centroids are recomputed as
  member means and points reassigned, until no cluster is empty. Centroids are then
  means of non-empty sets and never NaN.

Points are assigned to their nearest centroid in L2 (for unit vectors and unit centroids
this is the cosine argmax); under ``"distinct"`` the centroids are then the member means
of that final (non-empty) assignment. ``sizes`` counts the assignments and ``objective``
sums the squared distances to the assigned centroids. Randomness comes only from ``seed``: the
same input, policy and seed always give the same result.
"""

from dataclasses import dataclass
from typing import Literal, get_args

import faiss
import numpy as np
import torch
import torch.nn.functional as F

KPolicy = Literal["exact", "distinct"]
_MAX_RESEED_ROUNDS = 50


@dataclass
class KMeansResult:
    """Outcome of :func:`kmeans`.

    centroids:   float32 [K, D]; ``K == requested_k`` under ``"exact"``; under ``"distinct"``
                 the mean of each cluster's members and ``K <= requested_k``. Unit L2
                 norm when ``spherical``.
    assignments: int64 [N]; cluster of each point, in ``[0, K)``: its nearest (L2) centroid
                 under ``"exact"``; under ``"distinct"`` the final assignment whose member
                 means are the centroids.
    sizes:       int64 [K]; members per cluster, summing to N (all >= 1 under ``"distinct"``).
    objective:   sum of squared L2 distances of points to their assigned centroid.
    requested_k: the ``k`` asked for.
    """

    centroids: np.ndarray
    assignments: np.ndarray
    sizes: np.ndarray
    objective: float
    requested_k: int

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])


def _as_float32_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D], got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def _nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by L2. x [N, D], centroids [K, D] -> (index int64 [N], sq. dist [N])."""
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, idx = index.search(x, 1)
    return idx[:, 0].astype(np.int64), np.maximum(dist[:, 0], 0.0)


def _member_means(x: np.ndarray, assign: np.ndarray, k: int, spherical: bool) -> np.ndarray:
    """Mean of each cluster's members (float64 sums, one cluster at a time) -> float32 [K, D].

    Every cluster must be non-empty."""
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(k + 1))
    cent = np.empty((k, x.shape[1]), dtype=np.float64)
    for j in range(k):
        members = order[bounds[j] : bounds[j + 1]]
        if members.size == 0:
            raise RuntimeError(f"k-means: cluster {j} is empty")
        cent[j] = x[members].sum(axis=0, dtype=np.float64) / members.size
    if spherical:
        norm = np.linalg.norm(cent, axis=1, keepdims=True)
        cent = np.where(norm > 0, cent / np.maximum(norm, 1e-12), cent)
    return cent.astype(np.float32)


def _assigned_sq_dist(x: np.ndarray, centroids: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """||x_i - c_{assign_i}||^2 in chunks -> float64 [N]."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for s in range(0, x.shape[0], 16384):
        diff = x[s : s + 16384].astype(np.float64) - centroids[assign[s : s + 16384]]
        out[s : s + 16384] = (diff**2).sum(axis=1)
    return out


def _num_distinct_at_least(x: np.ndarray, k: int) -> int:
    """min(k, number of distinct rows of x); stops scanning once k distinct rows are seen."""
    seen: set = set()
    for s in range(0, x.shape[0], 4096):
        chunk = x[s : s + 4096] + np.float32(0.0)  # -0.0 -> 0.0, so equal rows hash equally
        for row in chunk:
            seen.add(hash(row.tobytes()))
            if len(seen) >= k:
                return k
    return len(seen)


def _fill_empty_clusters(
    x: np.ndarray, centroids: np.ndarray, spherical: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Re-seed empty clusters until none is left. Returns (centroids [K, D], assign [N])."""
    k = centroids.shape[0]
    assign, dist = _nearest(x, centroids)
    for _ in range(_MAX_RESEED_ROUNDS):
        sizes = np.bincount(assign, minlength=k)
        empty = np.flatnonzero(sizes == 0)
        if empty.size == 0:
            return centroids, assign
        d = dist.astype(np.float64).copy()
        for j in empty:
            # farthest point among clusters that can spare one; ties -> lowest index
            d[sizes[assign] <= 1] = -1.0
            i = int(np.argmax(d))
            if d[i] <= 0.0:  # cannot happen when distinct points >= k; guard anyway
                raise RuntimeError("k-means: cannot re-seed an empty cluster (too few distinct points)")
            sizes[assign[i]] -= 1
            assign[i] = j
            sizes[j] = 1
            d[i] = -1.0
        centroids = _member_means(x, assign, k, spherical)
        new_assign, dist = _nearest(x, centroids)
        if (np.bincount(new_assign, minlength=k) == 0).any():
            # keep the forced (non-empty) assignment; the next round returns it
            dist = _assigned_sq_dist(x, centroids, assign)
            continue
        assign = new_assign
    # Last resort: the forced assignment from the final round is non-empty by construction.
    if (np.bincount(assign, minlength=k) == 0).any():
        raise RuntimeError("k-means: empty clusters remain after re-seeding")
    return _member_means(x, assign, k, spherical), assign


def _points_with_seeded_repeats(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """All N <= k points, then k - N of them drawn with replacement -> float32 [k, D].

    The draw uses ``torch.Generator`` so codebooks initialised before this module existed
    are reproduced bit for bit."""
    g = torch.Generator().manual_seed(int(seed))
    extra = torch.randint(x.shape[0], (k - x.shape[0],), generator=g).numpy()
    return np.concatenate([x, x[extra]], axis=0)


def _faiss_kmeans(
    x: np.ndarray, k: int, *, seed: int, niter: int, nredo: int, spherical: bool, max_points_per_centroid: int
) -> np.ndarray:
    """faiss Lloyd k-means (seeded init, seeded subsampling above k * max_points_per_centroid)."""
    km = faiss.Kmeans(
        x.shape[1],
        int(k),
        niter=int(niter),
        nredo=int(nredo),
        seed=int(seed),
        spherical=bool(spherical),
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=int(max_points_per_centroid),
    )
    km.train(x)
    return np.array(km.centroids, dtype=np.float32).reshape(k, x.shape[1])


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    k_policy: KPolicy,
    seed: int,
    niter: int = 20,
    nredo: int = 1,
    spherical: bool = False,
    max_points_per_centroid: int = 256,
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` clusters with seeded faiss k-means.

    Args:
        x: float array [N, D] (N >= 1, finite). With ``spherical``, pass unit-normalised rows.
        k: number of clusters requested (>= 1).
        k_policy: how ``k`` is honoured (see the module docstring):
            ``"exact"``: exactly ``k`` centroids, padding with seeded repeats of the points
            when ``N <= k``; clusters may be empty.
            ``"distinct"``: ``k`` clamped to the number of distinct rows; every cluster
            non-empty, centroids are member means.
        seed: faiss initialisation/subsampling seed (and, under ``"exact"``, the seed of
            the with-replacement draw used when ``N <= k``).
        niter: Lloyd iterations.
        nredo: restarts (the best objective is kept).
        spherical: unit-normalise centroids after each step (cosine k-means).
        max_points_per_centroid: faiss subsamples the training set above ``k`` times this.

    Returns:
        :class:`KMeansResult` with centroids [K, D], assignments [N], sizes [K].
    """
    if k_policy not in get_args(KPolicy):
        raise ValueError(f"k_policy must be one of {get_args(KPolicy)}, got {k_policy!r}")
    x = _as_float32_matrix(x, "k-means input")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    requested_k = int(k)
    n = x.shape[0]
    fit = dict(seed=seed, niter=niter, nredo=nredo, spherical=spherical, max_points_per_centroid=max_points_per_centroid)

    if k_policy == "exact":
        k = requested_k
        if n <= k:
            centroids = _points_with_seeded_repeats(x, k, seed)
        else:
            centroids = _faiss_kmeans(x, k, **fit)
            if not np.isfinite(centroids).all():
                raise RuntimeError("k-means: faiss returned non-finite centroids")
            if spherical:  # faiss's centroids are unit up to rounding; exactly as codebooks always did
                centroids = F.normalize(torch.from_numpy(centroids), dim=-1).numpy()
        assign, dist = _nearest(x, centroids)
        objective = float(dist.astype(np.float64).sum())
    else:
        k = _num_distinct_at_least(x, requested_k) if requested_k > 1 else 1
        if k == 1:
            centroids = _member_means(x, np.zeros(n, dtype=np.int64), 1, spherical)
        else:
            centroids = _faiss_kmeans(x, k, **fit)
            if not np.isfinite(centroids).all():
                # degenerate faiss output: restart from k distinct data points, chosen by seed
                uniq = np.unique(x, axis=0)
                pick = np.random.default_rng(seed).choice(uniq.shape[0], size=k, replace=False)
                centroids = uniq[np.sort(pick)].astype(np.float32)
        centroids, assign = _fill_empty_clusters(x, centroids, spherical)
        centroids = _member_means(x, assign, k, spherical)
        objective = float(_assigned_sq_dist(x, centroids, assign).sum())

    return KMeansResult(
        centroids=centroids,
        assignments=assign,
        sizes=np.bincount(assign, minlength=k).astype(np.int64),
        objective=objective,
        requested_k=requested_k,
    )


def assign_to_centroids(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest-centroid index by L2. x [N, D], centroids [K, D] -> int64 [N]."""
    x = _as_float32_matrix(x, "points")
    centroids = _as_float32_matrix(centroids, "centroids")
    if centroids.shape[1] != x.shape[1]:
        raise ValueError(f"dimension mismatch: points D={x.shape[1]}, centroids D={centroids.shape[1]}")
    return _nearest(x, centroids)[0]
