"""Balanced data sampling for S-SONDO: cluster teacher embeddings, sample 1 / |cluster| per item.

* :func:`fit_bds_clusters`: seeded faiss k-means (``espnet2_sonar.nn.kmeans``, ``k_policy="distinct"``) on the
  teacher embeddings (L2-normalised, spherical by default: the loss is a cosine);
* ``utt2cluster``: the assignments as a Kaldi text file (``<utt> <cluster>``), written next
  to the teacher cache and read by the training task (``--bds_clusters``);
* :func:`bds_batch_sampler`: ESPnet's batch sampler for the training iterator, built on
  ``espnet2_sonar.sampling.balanced.BalancedBatchSampler`` (weights 1 / (K |cluster|)),
  sharded by rank under DDP. Every epoch draws new batches, deterministic in (seed, epoch),
  so a resumed run draws what an uninterrupted one would.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from espnet2.samplers.abs_sampler import AbsSampler

from espnet2_sonar.sampling.balanced import BalancedBatchSampler, balanced_weights
from espnet2_sonar.nn.kmeans import kmeans
from espnet2_sonar.utils.atomic_write import atomic_write


@dataclass
class BdsClusters:
    """Cluster assignment of every training item.

    ids: [N] utterance ids; assignments: int64 [N] in [0, K); sizes: int64 [K] (all >= 1).
    """

    ids: List[str]
    assignments: np.ndarray
    sizes: np.ndarray
    requested_k: int
    seed: int

    @property
    def weights(self) -> np.ndarray:
        """float64 [N] BDS sampling probabilities (1 / (K |cluster|), summing to 1)."""
        return balanced_weights(self.assignments)

    def summary(self) -> dict:
        """JSON-ready description (k, sizes, imbalance)."""
        return {
            "num_items": len(self.ids),
            "requested_k": self.requested_k,
            "num_clusters": int(self.sizes.size),
            "seed": self.seed,
            "sizes": self.sizes.tolist(),
            "largest_share": float(self.sizes.max() / self.sizes.sum()),
            "smallest_share": float(self.sizes.min() / self.sizes.sum()),
        }


def fit_bds_clusters(
    embeddings: np.ndarray,
    ids: Sequence[str],
    k: int = 50,
    *,
    seed: int = 0,
    normalize: bool = True,
    niter: int = 25,
    nredo: int = 5,
) -> BdsClusters:
    """k-means (k clamped to the distinct points) of teacher embeddings [N, D].

    ``nredo`` restarts keep the best objective: a single run often splits a big cluster
    and merges small ones, exactly the clusters BDS exists to up-weight.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(ids):
        raise ValueError(f"embeddings must be [N, D] with N = {len(ids)} ids, got shape {x.shape}")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    result = kmeans(x, k, k_policy="distinct", seed=seed, niter=niter, nredo=nredo, spherical=normalize)
    return BdsClusters(list(ids), result.assignments.astype(np.int64), result.sizes, int(k), int(seed))


def write_utt2cluster(path: str | Path, clusters: BdsClusters) -> None:
    """``<utt> <cluster>`` lines (atomically) and ``bds.json`` (the summary) beside them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(f"{u} {int(c)}\n" for u, c in zip(clusters.ids, clusters.assignments)))
    (path.parent / "bds.json").write_text(json.dumps(clusters.summary(), indent=2) + "\n")


def read_utt2cluster(path: str | Path) -> Tuple[List[str], np.ndarray]:
    """(ids, int64 assignments) from a ``utt2cluster`` file; errors name the file and line."""
    ids, assign = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<utt> <cluster index>', got {line.strip()!r}")
            ids.append(parts[0])
            assign.append(int(parts[1]))
    if not ids:
        raise ValueError(f"{path}: no entries")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicated utterance ids")
    return ids, np.asarray(assign, dtype=np.int64)


class ShardedSampler(AbsSampler):
    """Rank ``rank`` of ``world_size``'s share of every batch of another ESPnet sampler."""

    def __init__(self, sampler: AbsSampler, rank: int, world_size: int):
        self.sampler, self.rank, self.world_size = sampler, int(rank), int(world_size)
        if sampler.batch_size < world_size:
            raise ValueError(f"batch size {sampler.batch_size} is smaller than the world size {world_size}")

    def __len__(self) -> int:
        return len(self.sampler)

    def generate(self, seed: int):
        return [b[self.rank :: self.world_size] for b in self.sampler.generate(seed)]

    def __iter__(self):
        return iter(self.generate(self.sampler.seed))


def bds_batch_sampler(
    clusters_file: str | Path,
    train_ids: Sequence[str],
    batch_size: int,
    num_batches: int | None = None,
    *,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> AbsSampler:
    """The BDS training batch sampler over the items of ``clusters_file``.

    Every clustered utterance must be in the training list ``train_ids`` (else the cache
    and the list disagree: an error naming both).
    """
    ids, assign = read_utt2cluster(clusters_file)
    known = set(train_ids)
    missing = [u for u in ids if u not in known]
    if missing:
        raise ValueError(
            f"{clusters_file}: {len(missing)} clustered utterance(s) are not in the training list, e.g. {missing[:3]}"
        )
    sampler = BalancedBatchSampler(ids, assign, batch_size, num_batches, seed=seed)
    return sampler if world_size == 1 else ShardedSampler(sampler, rank, world_size)
