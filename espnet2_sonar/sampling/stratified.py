"""Task-relevant stratified replay sampling (TRSS), DESIGN.md "1. Task-relevant stratified sampling".

Given embeddings of the prior pool P_old and of the new domain D_new (both from the frozen
prior encoder M0):

1. k-means on P_old -> S strata (:func:`espnet2_sonar.nn.kmeans.kmeans`, ``k_policy="distinct"``).
2. relevance r_s of stratum s (:func:`stratum_relevance`):
   ``nearest``: share of D_new items whose nearest prior centroid is s;
   ``softmax``: mean over D_new of softmax_s(-||e - c_s||^2 / relevance_temperature).
3. budget B = round(rho * |D_new|) (:func:`replay_budget`), and per-stratum allocation
   (:func:`allocate`)  n_s = B * ((1 - alpha) * |S_s| / |P_old| + alpha * softmax(r / tau)_s).
4. n_s items drawn uniformly without replacement inside each stratum with a seeded
   ``numpy.random.Generator``.

How bounds and rounding are resolved (:func:`allocate`):

* bounds: lo_s = min(min_per_stratum, |S_s|), hi_s = |S_s| (no item is replayed twice);
* the effective budget is clipped into [sum lo, sum hi]: the minimum per stratum wins over
  B (the total then exceeds B), and B can never exceed |P_old|;
* real-valued targets x_s = clip(lambda * w_s, lo_s, hi_s), where w_s is the formula's
  weight and lambda >= 0 is the unique level at which sum x_s equals the effective budget
  ("water filling"). When no bound binds, lambda = B and x_s is exactly the formula;
  budget freed by capped strata goes to the others in proportion to their weights;
* integers: n_s = floor(x_s), then the remaining units go one each to the strata with the
  largest fractional parts (ties: lower stratum index). Hence sum n_s equals the
  effective budget exactly and |n_s - x_s| < 1.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Sequence

import numpy as np

from espnet2_sonar.nn.kmeans import KMeansResult, kmeans

from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class StratifiedSamplerConfig(StrictConfig):
    """Every TRSS constant (DESIGN.md, "1. Task-relevant stratified sampling")."""

    num_strata: int = 64
    """S: k-means clusters on the prior pool (clamped to the number of distinct embeddings)."""
    rho: float = 0.5
    """Replay ratio: budget B = round(rho * |D_new|) replay items (replay : new = rho : 1)."""
    alpha: float = 0.5
    """Mix of relevance-driven (alpha) and size-proportional (1 - alpha) allocation, in [0, 1]."""
    tau: float = 0.1
    """Temperature of softmax(r / tau) over the strata relevances r (smaller = sharper)."""
    min_per_stratum: int = 1
    """Every stratum replays at least this many items (capped by the stratum's size)."""
    relevance: Literal["nearest", "softmax"] = "nearest"
    """``nearest``: r_s = share of new items whose nearest prior centroid is s;
    ``softmax``: r_s = mean softmax over strata of -squared distance / relevance_temperature."""
    relevance_temperature: float = 0.1
    """Temperature of the per-item softmax of the ``softmax`` relevance (unused by ``nearest``)."""
    normalize: bool = True
    """L2-normalise embeddings before clustering and relevance (cosine geometry)."""
    kmeans_iters: int = 20
    """Lloyd iterations of the faiss k-means."""
    seed: int = 0
    """Seed of k-means initialisation and of the within-stratum draws."""

    def __post_init__(self):
        if int(self.num_strata) < 1:
            raise ValueError(f"num_strata must be >= 1, got {self.num_strata}")
        if not self.rho >= 0:
            raise ValueError(f"rho must be >= 0, got {self.rho}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not self.relevance_temperature > 0:
            raise ValueError(f"relevance_temperature must be > 0, got {self.relevance_temperature}")
        if int(self.min_per_stratum) < 0:
            raise ValueError(f"min_per_stratum must be >= 0, got {self.min_per_stratum}")
        if self.relevance not in ("nearest", "softmax"):
            raise ValueError(f"relevance must be 'nearest' or 'softmax', got {self.relevance!r}")
        self.num_strata = int(self.num_strata)
        self.min_per_stratum = int(self.min_per_stratum)


@dataclass
class Allocation:
    """Per-stratum replay allocation (all arrays [S]).

    weights: the formula's weights w_s = (1 - alpha) |S_s| / |P_old| + alpha softmax(r / tau)_s.
    targets: real-valued targets after bounds (= budget * weights when no bound binds).
    counts:  int64 n_s, lo_s <= n_s <= |S_s|.
    budget:  B requested; ``total`` = sum(counts) equals B unless bounds forbid it.
    """

    sizes: np.ndarray
    relevance: np.ndarray
    weights: np.ndarray
    targets: np.ndarray
    counts: np.ndarray
    budget: int

    @property
    def total(self) -> int:
        return int(self.counts.sum())


@dataclass
class StratifiedSample:
    """Result of :func:`stratified_sample`.

    sampled_ids / sampled_strata: replay ids and their stratum, grouped by stratum (in
    stratum order) and, within a stratum, in draw order.
    prior_strata: int64 [|P_old|], stratum of every prior item.
    centroids: float32 [S, D] (in the normalised space when ``config.normalize``).
    """

    config: StratifiedSamplerConfig
    allocation: Allocation
    sampled_ids: List[str]
    sampled_strata: List[int]
    prior_strata: np.ndarray
    centroids: np.ndarray
    num_prior: int
    num_new: int
    kmeans_objective: float = 0.0
    extra: Dict[str, Any] = field(default_factory=dict)

    def report(self) -> Dict[str, Any]:
        """JSON-serialisable summary: config, budget, per-stratum table, sampled ids."""
        a = self.allocation
        per_stratum = [
            {
                "stratum": s,
                "size": int(a.sizes[s]),
                "relevance": float(a.relevance[s]),
                "weight": float(a.weights[s]),
                "target": float(a.targets[s]),
                "allocated": int(a.counts[s]),
            }
            for s in range(len(a.sizes))
        ]
        return {
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "num_prior": self.num_prior,
            "num_new": self.num_new,
            "num_strata": len(a.sizes),
            "budget": a.budget,
            "total_sampled": len(self.sampled_ids),
            "kmeans_objective": self.kmeans_objective,
            "strata": per_stratum,
            "sampled_ids": list(self.sampled_ids),
            "sampled_strata": [int(s) for s in self.sampled_strata],
            **self.extra,
        }

    def write_report(self, path: str | Path) -> None:
        write_report(self.report(), path)


def write_report(report: Dict[str, Any], path: str | Path) -> None:
    """Write ``report`` as indented JSON (atomically: temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report, indent=2) + "\n")


def replay_budget(num_new: int, rho: float) -> int:
    """B = rho * |D_new| rounded half up to an integer."""
    if num_new < 0 or rho < 0:
        raise ValueError(f"num_new and rho must be >= 0, got {num_new}, {rho}")
    return int(np.floor(rho * num_new + 0.5))


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared L2 distances x [M, D], c [S, D] -> [M, S] (float64)."""
    x = x.astype(np.float64)
    c = c.astype(np.float64)
    d = (x**2).sum(1)[:, None] - 2.0 * x @ c.T + (c**2).sum(1)[None, :]
    return np.maximum(d, 0.0)


def stratum_relevance(
    new_emb: np.ndarray, centroids: np.ndarray, mode: str = "nearest", temperature: float = 0.1
) -> np.ndarray:
    """Relevance r [S] of each stratum to the new domain; sums to 1.

    new_emb [M, D], centroids [S, D]. ``nearest``: histogram of nearest centroids / M.
    ``softmax``: mean_i softmax_s(-||e_i - c_s||^2 / temperature).
    """
    new_emb = np.asarray(new_emb)
    if new_emb.ndim != 2 or new_emb.shape[0] == 0:
        raise ValueError(f"new-domain embeddings must be a non-empty [M, D] array, got {new_emb.shape}")
    if new_emb.shape[1] != centroids.shape[1]:
        raise ValueError(f"dimension mismatch: new D={new_emb.shape[1]}, centroids D={centroids.shape[1]}")
    r = np.zeros(centroids.shape[0], dtype=np.float64)
    for start in range(0, new_emb.shape[0], 4096):  # chunked: [chunk, S] at a time
        d = _sq_dists(new_emb[start : start + 4096], centroids)
        if mode == "nearest":
            r += np.bincount(d.argmin(axis=1), minlength=centroids.shape[0])
        elif mode == "softmax":
            r += _softmax(-d / temperature, axis=1).sum(axis=0)
        else:
            raise ValueError(f"relevance mode must be 'nearest' or 'softmax', got {mode!r}")
    return r / new_emb.shape[0]


def allocation_weights(sizes: np.ndarray, relevance: np.ndarray, alpha: float, tau: float) -> np.ndarray:
    """w_s = (1 - alpha) |S_s| / sum|S| + alpha softmax(r / tau)_s; [S], sums to 1."""
    sizes = np.asarray(sizes, dtype=np.float64)
    relevance = np.asarray(relevance, dtype=np.float64)
    return (1.0 - alpha) * sizes / sizes.sum() + alpha * _softmax(relevance / tau)


def _water_fill(w: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """x_s = clip(lam * w_s, lo_s, hi_s) with lam >= 0 such that sum x = total.

    Requires sum lo <= total <= sum hi and w >= 0. f(lam) = sum clip(...) is continuous,
    piecewise linear and non-decreasing, so lam is found exactly between breakpoints.
    """
    # weights that underflowed to 0 (alpha near 1, tiny tau) get a tiny equal floor, so
    # budget left over by capped strata can still be placed
    w = np.maximum(w, 1e-12)
    f = lambda lam: np.clip(lam * w, lo, hi).sum()  # noqa: E731
    bps = np.unique(np.concatenate([[0.0], lo / w, hi / w]))
    vals = np.array([f(b) for b in bps])
    j = int(np.searchsorted(vals, total, side="left"))
    if j >= len(bps):
        return hi.astype(np.float64)
    if vals[j] == total or j == 0:
        return np.clip(bps[j] * w, lo, hi)
    # f is linear on [bps[j-1], bps[j]]: slope = sum of w over strata strictly inside bounds
    lam0, lam1 = bps[j - 1], bps[j]
    lam = lam0 + (total - vals[j - 1]) * (lam1 - lam0) / (vals[j] - vals[j - 1])
    return np.clip(lam * w, lo, hi)


def _round_to_total(x: np.ndarray, hi: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of x (sum = total) to integers <= hi; ties -> lower index."""
    n = np.floor(x + 1e-9).astype(np.int64)
    n = np.minimum(n, hi)
    deficit = int(total - n.sum())
    if deficit > 0:
        frac = np.where(n < hi, x - n, -np.inf)
        order = np.lexsort((np.arange(len(x)), -frac))  # frac descending, then index
        n[order[:deficit]] += 1
    elif deficit < 0:  # only from round-off; take back from the smallest fractional parts
        frac = np.where(n > 0, x - n, np.inf)
        order = np.lexsort((np.arange(len(x)), frac))
        n[order[:-deficit]] -= 1
    return n


def allocate(
    sizes: Sequence[int],
    relevance: Sequence[float],
    budget: int,
    *,
    alpha: float,
    tau: float,
    min_per_stratum: int = 0,
) -> Allocation:
    """Replay counts per stratum: n_s = B ((1 - alpha) |S_s| / |P_old| + alpha softmax(r / tau)_s).

    Args:
        sizes: [S] stratum sizes |S_s| (>= 1 each); |P_old| = sum(sizes).
        relevance: [S] relevance r_s of each stratum to the new domain.
        budget: B (see :func:`replay_budget`).
        alpha, tau, min_per_stratum: see :class:`StratifiedSamplerConfig`.

    Bounds and rounding are resolved as the module docstring describes; the result's
    ``total`` equals ``budget`` whenever sum(min(min_per_stratum, |S_s|)) <= B <= |P_old|.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    relevance = np.asarray(relevance, dtype=np.float64)
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError(f"sizes must be a non-empty 1-D array, got shape {sizes.shape}")
    if relevance.shape != sizes.shape:
        raise ValueError(f"relevance shape {relevance.shape} != sizes shape {sizes.shape}")
    if (sizes < 1).any():
        raise ValueError(f"every stratum must hold >= 1 item, got sizes {sizes.tolist()}")
    if not np.isfinite(relevance).all():
        raise ValueError("relevance contains NaN or inf")
    if budget < 0 or min_per_stratum < 0:
        raise ValueError(f"budget and min_per_stratum must be >= 0, got {budget}, {min_per_stratum}")
    if not 0.0 <= alpha <= 1.0 or not tau > 0:
        raise ValueError(f"need 0 <= alpha <= 1 and tau > 0, got alpha={alpha}, tau={tau}")

    w = allocation_weights(sizes, relevance, alpha, tau)
    lo = np.minimum(min_per_stratum, sizes).astype(np.float64)
    hi = sizes.astype(np.float64)
    effective = int(min(max(budget, lo.sum()), hi.sum()))
    x = _water_fill(w, lo, hi, float(effective))
    counts = _round_to_total(x, sizes, effective)
    counts = np.clip(counts, lo.astype(np.int64), sizes)
    return Allocation(
        sizes=sizes, relevance=relevance, weights=w, targets=x, counts=counts, budget=int(budget)
    )


def sample_within_strata(
    strata: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform draws without replacement inside each stratum.

    strata: int [N] stratum of every item; counts: int [S] draws per stratum.
    Returns (item indices int64 [sum counts], their strata int64 [sum counts]) grouped by
    stratum in stratum order; the generator is consumed in stratum order.
    """
    strata = np.asarray(strata, dtype=np.int64)
    picked, picked_s = [], []
    for s, n_s in enumerate(np.asarray(counts, dtype=np.int64)):
        members = np.flatnonzero(strata == s)
        if n_s > members.size:
            raise ValueError(f"stratum {s}: cannot draw {n_s} items from {members.size}")
        if n_s == 0:
            continue
        picked.append(rng.choice(members, size=int(n_s), replace=False))
        picked_s.append(np.full(int(n_s), s, dtype=np.int64))
    if not picked:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(picked).astype(np.int64), np.concatenate(picked_s)


def stratified_sample(
    prior_ids: Sequence[str],
    prior_emb: np.ndarray,
    new_emb: np.ndarray,
    config: StratifiedSamplerConfig,
    clustering: KMeansResult | None = None,
) -> StratifiedSample:
    """The whole TRSS pipeline: cluster P_old, score strata, allocate B, draw replay ids.

    prior_ids: [N] ids of P_old; prior_emb [N, D]; new_emb [M, D] (same encoder and layer).
    clustering: a precomputed k-means of (normalised, if ``config.normalize``) prior_emb;
    computed here with ``config.seed`` when None.
    """
    prior_ids = list(prior_ids)
    prior_emb = np.asarray(prior_emb, dtype=np.float32)
    new_emb = np.asarray(new_emb, dtype=np.float32)
    if prior_emb.ndim != 2 or prior_emb.shape[0] != len(prior_ids):
        raise ValueError(f"prior embeddings {prior_emb.shape} do not match {len(prior_ids)} prior ids")
    if len(set(prior_ids)) != len(prior_ids):
        raise ValueError("prior ids are not unique")
    if new_emb.ndim != 2 or new_emb.shape[1] != prior_emb.shape[1]:
        raise ValueError(f"new embeddings {new_emb.shape} do not match prior dim {prior_emb.shape[1]}")
    if config.normalize:
        prior_emb, new_emb = _l2_normalize(prior_emb), _l2_normalize(new_emb)
    if clustering is None:
        clustering = kmeans(
            prior_emb,
            config.num_strata,
            k_policy="distinct",
            seed=config.seed,
            niter=config.kmeans_iters,
            spherical=False,
        )
    relevance = stratum_relevance(
        new_emb, clustering.centroids, config.relevance, config.relevance_temperature
    )
    budget = replay_budget(new_emb.shape[0], config.rho)
    alloc = allocate(
        clustering.sizes,
        relevance,
        budget,
        alpha=config.alpha,
        tau=config.tau,
        min_per_stratum=config.min_per_stratum,
    )
    rng = np.random.default_rng(config.seed)
    idx, strata = sample_within_strata(clustering.assignments, alloc.counts, rng)
    return StratifiedSample(
        config=config,
        allocation=alloc,
        sampled_ids=[prior_ids[i] for i in idx],
        sampled_strata=strata.tolist(),
        prior_strata=clustering.assignments,
        centroids=clustering.centroids,
        num_prior=len(prior_ids),
        num_new=int(new_emb.shape[0]),
        kmeans_objective=clustering.objective,
    )
