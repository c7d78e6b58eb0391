"""Balanced data sampling (BDS, S-SONDO): draw items with probability proportional to 1 / |cluster(i)|.

Every non-empty cluster then receives the same expected share of draws (1 / K), whatever
its size. The clusters usually come from :func:`espnet2_sonar.nn.kmeans.kmeans` on
teacher embeddings (k = 50 in S-SONDO).

Three ways to use the weights:

* :class:`BalancedSampler`: a ``torch.utils.data.Sampler`` over dataset indices (for a
  plain ``DataLoader``);
* :class:`BalancedBatchSampler`: an ESPnet ``AbsSampler`` yielding tuples of utterance ids,
  the contract of ESPnet's batch samplers (a task can return it from its iterator factory);
* :func:`draw_balanced_ids`: a seeded list of ids (with replacement), e.g. to write one
  epoch's key list for an unmodified ESPnet recipe.
"""

from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch
from espnet2.samplers.abs_sampler import AbsSampler
from torch.utils.data import Sampler

from espnet2_sonar.utils.seeding import derive_seed


def balanced_weights(assignments: Sequence[int]) -> np.ndarray:
    """Per-item weights w_i = 1 / (K * |cluster(i)|), K = number of non-empty clusters.

    assignments: int [N] cluster index of each item (any non-negative integers).
    Returns float64 [N], positive, summing to 1; each cluster's weights sum to 1 / K.
    """
    a = np.asarray(assignments)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"assignments must be a non-empty 1-D array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"assignments must be integers, got dtype {a.dtype}")
    if (a < 0).any():
        raise ValueError("assignments must be >= 0")
    counts = np.bincount(a)
    num_clusters = int((counts > 0).sum())
    return 1.0 / (num_clusters * counts[a].astype(np.float64))


def _draw(weights: np.ndarray, num_samples: int, seed: int, replacement: bool) -> np.ndarray:
    g = torch.Generator().manual_seed(int(seed))
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if not replacement and num_samples > int((w > 0).sum()):
        raise ValueError(f"cannot draw {num_samples} items without replacement from {int((w > 0).sum())}")
    return torch.multinomial(w, num_samples, replacement=replacement, generator=g).numpy()


class BalancedSampler(Sampler[int]):
    """Weighted random sampler over indices ``0..N-1`` with BDS weights.

    Draws ``num_samples`` indices per epoch (default N) from the weights; the draws of
    epoch e depend only on (seed, e): call :meth:`set_epoch` before each epoch, so a resumed
    run draws what an uninterrupted one would.
    """

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int | None = None,
        *,
        replacement: bool = True,
        seed: int = 0,
    ):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("weights must be a non-empty 1-D array of finite values >= 0 with a positive sum")
        self.weights = w
        self.num_samples = int(w.size if num_samples is None else num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.replacement = replacement
        self.seed = int(seed)
        self.epoch = 0

    @classmethod
    def from_assignments(cls, assignments: Sequence[int], **kwargs) -> "BalancedSampler":
        return cls(balanced_weights(assignments), **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        idx = _draw(self.weights, self.num_samples, derive_seed(self.seed, "bds.sampler", self.epoch), self.replacement)
        return iter(idx.tolist())


def draw_balanced_ids(
    ids: Sequence[str], weights: Sequence[float], num_samples: int, *, seed: int = 0, replacement: bool = True
) -> List[str]:
    """``num_samples`` ids drawn with the given weights (seeded; repeats allowed by default)."""
    ids = list(ids)
    if len(ids) != len(weights):
        raise ValueError(f"{len(ids)} ids but {len(weights)} weights")
    return [ids[i] for i in _draw(np.asarray(weights), int(num_samples), seed, replacement)]


class BalancedBatchSampler(AbsSampler):
    """ESPnet batch sampler (``AbsSampler``): batches of utterance ids drawn with BDS weights.

    Yields ``num_batches`` tuples of ``batch_size`` ids (with replacement across and within
    batches), deterministic in (seed, epoch). ``generate(seed)`` follows ESPnet's contract:
    the list of batches for that seed.
    """

    def __init__(
        self,
        ids: Sequence[str],
        assignments: Sequence[int],
        batch_size: int,
        num_batches: int | None = None,
        *,
        seed: int = 0,
    ):
        self.ids = list(ids)
        if len(self.ids) != len(assignments):
            raise ValueError(f"{len(self.ids)} ids but {len(assignments)} cluster assignments")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = balanced_weights(assignments)
        self.batch_size = int(batch_size)
        self.num_batches = int(num_batches if num_batches is not None else max(1, len(self.ids) // batch_size))
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_batches

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(N={len(self.ids)}, batch_size={self.batch_size}, "
            f"num_batches={self.num_batches}, seed={self.seed})"
        )

    def generate(self, seed: int) -> List[Tuple[str, ...]]:
        flat = draw_balanced_ids(self.ids, self.weights, self.num_batches * self.batch_size, seed=seed)
        b = self.batch_size
        return [tuple(flat[i * b : (i + 1) * b]) for i in range(self.num_batches)]

    def __iter__(self) -> Iterator[Tuple[str, ...]]:
        return iter(self.generate(self.seed))
