"""Uniform-over-clusters sampling: equal draws per non-empty cluster, seeded, shardable."""

from collections import Counter

import numpy as np
import pytest

from espnet2_sonar.decar.sampler import cluster_uniform_batches, cluster_uniform_indices, epoch_rng


def _skewed_labels(seed=0):
    # cluster sizes 1, 3, 20, 200 (and cluster ids with gaps: 2 and 5 are empty)
    sizes = {0: 1, 1: 3, 3: 20, 4: 200}
    labels = np.concatenate([[c] * n for c, n in sizes.items()])
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.timeout(30)
def test_every_nonempty_cluster_drawn_equally_often():
    labels = _skewed_labels()
    for epoch in range(1, 4):
        batches = cluster_uniform_batches(labels, batch_size=16, seed=0, epoch=epoch)
        drawn = [i for b in batches for i in b]
        per_cluster = Counter(labels[drawn].tolist())
        assert set(per_cluster) == {0, 1, 3, 4}  # empty clusters 2, 5 are never asked for
        counts = np.array(list(per_cluster.values()))
        assert counts.max() - counts.min() <= 1  # equal within tolerance (here: exactly)
        assert len(drawn) >= len(labels)  # an epoch covers at least N draws
        assert all(len(b) <= 16 for b in batches)


@pytest.mark.timeout(30)
def test_members_of_small_clusters_are_cycled_evenly():
    labels = _skewed_labels()
    idx = cluster_uniform_indices(labels, epoch_rng(1, 1))
    members = np.flatnonzero(labels == 1)  # 3 members, 56 draws
    hits = Counter(idx[np.isin(idx, members)].tolist())
    assert set(hits) == set(members.tolist())
    assert max(hits.values()) - min(hits.values()) <= 1
    big = np.flatnonzero(labels == 4)  # 200 members, 56 draws: no repeats
    assert len(set(idx[np.isin(idx, big)].tolist())) == 56


@pytest.mark.timeout(30)
def test_seeded_and_epoch_dependent():
    labels = _skewed_labels()
    a = cluster_uniform_batches(labels, 8, seed=5, epoch=2)
    assert a == cluster_uniform_batches(labels.copy(), 8, seed=5, epoch=2)
    assert a != cluster_uniform_batches(labels, 8, seed=5, epoch=3)
    assert a != cluster_uniform_batches(labels, 8, seed=6, epoch=2)


@pytest.mark.timeout(30)
def test_ranks_partition_the_global_batches():
    labels = _skewed_labels()
    full = cluster_uniform_batches(labels, 8, seed=0, epoch=1)
    shards = [cluster_uniform_batches(labels, 8, seed=0, epoch=1, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    for g, b0, b1 in zip(full, *shards):
        assert sorted(b0 + b1) == sorted(g)
    with pytest.raises(ValueError):
        cluster_uniform_batches(labels, 1, seed=0, epoch=1, rank=0, world_size=2)


@pytest.mark.timeout(30)
def test_draws_per_epoch_sets_the_epoch_length():
    labels = _skewed_labels()  # 224 clips in 4 clusters
    batches = cluster_uniform_batches(labels, 10, seed=0, epoch=1, draws=1000)
    drawn = [i for b in batches for i in b]
    assert len(drawn) == 4 * 250
    assert set(Counter(labels[drawn].tolist()).values()) == {250}
