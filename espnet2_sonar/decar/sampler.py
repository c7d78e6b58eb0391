"""Uniform sampling over clusters (DeepCluster): every non-empty cluster is drawn equally often.

For N clips in K non-empty clusters an epoch draws ``ceil(D / K)`` clips from each cluster,
D = N by default (so ``K * ceil(N / K) >= N`` draws) or a given number of draws. Inside a
cluster the draws walk through seeded random permutations of its members, so each member
is drawn once before any is drawn twice; all draws are then shuffled and cut into batches.
The order depends only on (labels, seed, epoch): a resumed run repeats an uninterrupted one.
"""

from typing import List, Sequence

import numpy as np


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """Independent numpy generator for (seed, epoch)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0xDECA]))


def cluster_uniform_indices(labels: Sequence[int], rng: np.random.Generator, draws: int = 0) -> np.ndarray:
    """Indices into ``labels`` [N], ``ceil(D / K)`` per non-empty cluster, shuffled -> int64 [K * ceil(D / K)].

    D = ``draws`` if > 0, else N."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    clusters = np.unique(labels)
    per_cluster = -(-(draws if draws > 0 else labels.size) // clusters.size)
    picked = []
    for c in clusters:
        members = np.flatnonzero(labels == c)
        rounds = -(-per_cluster // members.size)
        walk = np.concatenate([rng.permutation(members) for _ in range(rounds)])
        picked.append(walk[:per_cluster])
    out = np.concatenate(picked)
    rng.shuffle(out)
    return out


def cluster_uniform_batches(
    labels: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    draws: int = 0,
) -> List[List[int]]:
    """One epoch of batches (lists of indices into ``labels``), uniform over clusters.

    With ``world_size > 1`` every rank gets the same number of batches, holding the
    ``rank::world_size`` slice of each global batch; a last batch smaller than
    ``world_size`` is dropped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in [0, {world_size})")
    if batch_size < world_size:
        raise ValueError(f"batch_size ({batch_size}) must be >= world_size ({world_size})")
    order = cluster_uniform_indices(labels, epoch_rng(seed, epoch), draws).tolist()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [b for b in batches if len(b) >= world_size]
    return [b[rank::world_size] for b in batches]
