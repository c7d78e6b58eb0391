"""ESPnet iterator factory that feeds an epoch's pseudo-labels with every batch.

ESPnet's Trainer calls ``train_iter_factory.build_iter(epoch)`` *before* the epoch hook in
``DecarTrainer.train_one_epoch`` has clustered, so ``build_iter`` returns a lazy
:class:`PseudoLabelledEpoch`: the labels file of the epoch is read, and the batches
planned, only when iteration starts. Training batches are uniform over clusters
(``sampler.py``); validation batches run through the list in order. Each batch gets
``pseudo_label`` (LongTensor[B]) added for ``DecarModel.forward``.
"""

from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

from espnet2_sonar.decar.recluster import labelled_ids, read_labels
from espnet2_sonar.decar.sampler import cluster_uniform_batches

Batch = Tuple[List[str], Dict[str, torch.Tensor]]


class PseudoLabelledEpoch:
    """Iterable over one epoch's ``(utt_ids, batch)``; planned on first iteration."""

    def __init__(self, factory: "PseudoLabelIterFactory", epoch: int):
        self.factory = factory
        self.epoch = epoch
        self._plan: Optional[Tuple[List[List[str]], Dict[str, int]]] = None

    def plan(self) -> Tuple[List[List[str]], Dict[str, int]]:
        """(batches of utterance ids, labels) of this epoch."""
        if self._plan is None:
            f = self.factory
            path = f.labels_path(self.epoch)
            labels = read_labels(path)
            per_key = labelled_ids(labels, f.keys, path)
            if f.uniform:
                index = cluster_uniform_batches(
                    per_key, f.batch_size, f.seed, self.epoch, f.rank, f.world_size, draws=f.draws_per_epoch
                )
            else:
                n, step = len(f.keys), f.batch_size
                index = [list(range(i, min(i + step, n)))[f.rank :: f.world_size] for i in range(0, n, step)]
                index = [b for b in index if b]
            self._plan = ([[f.keys[i] for i in b] for b in index], labels)
        return self._plan

    def __len__(self) -> int:
        if self._plan is None and not self.factory.labels_path(self.epoch).is_file():
            raise TypeError("the number of batches is known once the epoch's pseudo-labels exist")
        return len(self.plan()[0])

    def __iter__(self) -> Iterator[Batch]:
        batches, labels = self.plan()
        f = self.factory
        loader = SequenceIterFactory(
            dataset=f.dataset,
            batches=batches,
            seed=f.seed,
            shuffle=False,
            num_workers=f.num_workers,
            collate_fn=f.collate_fn,
            pin_memory=f.pin_memory,
        ).build_iter(self.epoch)
        for ids, batch in loader:
            batch["pseudo_label"] = torch.tensor([labels[u] for u in ids], dtype=torch.long)
            yield ids, batch


class PseudoLabelIterFactory(AbsIterFactory):
    """Per-epoch iterators over ``dataset`` labelled by ``labels_path(epoch)``.

    Args:
        dataset: an ESPnet dataset (``dataset[uid] -> (uid, dict of arrays)``).
        keys: every utterance id of the split, in list order.
        labels_path: epoch -> the ``<utt> <cluster>`` file written by the clustering step.
        batch_size: clips per (global) batch.
        uniform: sample uniformly over clusters (training) or go through ``keys`` in order.
        seed: sampler seed (epoch e uses (seed, e)).
        rank, world_size: data-parallel shard of every batch.
        draws_per_epoch: clips drawn per training epoch (0: the split size).
    """

    def __init__(
        self,
        dataset,
        keys: List[str],
        labels_path: Callable[[int], Path],
        batch_size: int,
        uniform: bool,
        seed: int = 0,
        num_workers: int = 0,
        collate_fn=None,
        pin_memory: bool = False,
        rank: int = 0,
        world_size: int = 1,
        draws_per_epoch: int = 0,
    ):
        if not keys:
            raise ValueError("PseudoLabelIterFactory: the split has no utterances")
        self.dataset = dataset
        self.keys = list(keys)
        self.labels_path = labels_path
        self.batch_size = int(batch_size)
        self.uniform = bool(uniform)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.pin_memory = bool(pin_memory)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.draws_per_epoch = int(draws_per_epoch)

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> PseudoLabelledEpoch:
        return PseudoLabelledEpoch(self, epoch)
