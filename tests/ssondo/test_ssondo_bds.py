"""Balanced data sampling for S-SONDO: 1/|cluster| weights, balanced draws, seeded, sharded."""

import numpy as np
import pytest

from espnet2_sonar.ssondo.bds import (
    bds_batch_sampler,
    fit_bds_clusters,
    read_utt2cluster,
    write_utt2cluster,
)


def _skewed_embeddings(sizes=(200, 50, 10, 4), dim=8, seed=0):
    """Well separated blobs of very different sizes."""
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[: len(sizes)] * 10
    x = np.concatenate([c + 0.1 * rng.standard_normal((n, dim)) for c, n in zip(centers, sizes)])
    ids = [f"utt{i:04d}" for i in range(len(x))]
    return x.astype(np.float32), ids


@pytest.mark.timeout(60)
def test_weights_follow_inverse_cluster_size_and_sum_to_one():
    x, ids = _skewed_embeddings()
    clusters = fit_bds_clusters(x, ids, k=4, seed=0)
    assert sorted(clusters.sizes.tolist()) == [4, 10, 50, 200]  # k-means finds the blobs
    w = clusters.weights
    assert w.shape == (len(ids),)
    np.testing.assert_allclose(w.sum(), 1.0)
    sizes = clusters.sizes[clusters.assignments]
    np.testing.assert_allclose(w * sizes, np.full(len(ids), 1.0 / 4))  # w_i * |cluster(i)| = 1/K
    per_cluster = np.bincount(clusters.assignments, weights=w)
    np.testing.assert_allclose(per_cluster, np.full(4, 0.25))


@pytest.mark.timeout(60)
def test_sampler_cluster_frequencies_are_balanced(tmp_path):
    x, ids = _skewed_embeddings()
    clusters = fit_bds_clusters(x, ids, k=4, seed=0)
    path = tmp_path / "utt2cluster"
    write_utt2cluster(path, clusters)
    assert (tmp_path / "bds.json").is_file()
    sampler = bds_batch_sampler(path, ids, batch_size=16, num_batches=250, seed=3)
    drawn = [u for batch in sampler.generate(7) for u in batch]
    assert len(drawn) == 250 * 16 and all(len(b) == 16 for b in sampler.generate(7))
    cluster_of = dict(zip(ids, clusters.assignments))
    freq = np.bincount([cluster_of[u] for u in drawn], minlength=4) / len(drawn)
    np.testing.assert_allclose(freq, 0.25, atol=0.03)  # random sampling would give 0.76 / 0.19 / 0.04 / 0.015
    # the smallest cluster's items are all seen, the largest's are not over-drawn
    assert {u for u in drawn if cluster_of[u] == np.argmin(clusters.sizes)} == {
        u for u in ids if cluster_of[u] == np.argmin(clusters.sizes)
    }


def test_sampler_is_deterministic_per_epoch_seed_and_differs_across_epochs(tmp_path):
    x, ids = _skewed_embeddings()
    path = tmp_path / "utt2cluster"
    write_utt2cluster(path, fit_bds_clusters(x, ids, k=4, seed=0))
    a = bds_batch_sampler(path, ids, batch_size=8, seed=0)
    b = bds_batch_sampler(path, ids, batch_size=8, seed=0)
    assert a.generate(1) == b.generate(1)
    assert a.generate(1) != a.generate(2)
    assert len(a) == len(ids) // 8  # default: one epoch's worth of batches


def test_sharded_sampler_partitions_each_batch(tmp_path):
    x, ids = _skewed_embeddings()
    path = tmp_path / "utt2cluster"
    write_utt2cluster(path, fit_bds_clusters(x, ids, k=4, seed=0))
    full = bds_batch_sampler(path, ids, batch_size=8, seed=0).generate(5)
    shards = [bds_batch_sampler(path, ids, batch_size=8, seed=0, rank=r, world_size=2).generate(5) for r in range(2)]
    for i, batch in enumerate(full):
        assert sorted(shards[0][i] + shards[1][i]) == sorted(batch)


def test_utt2cluster_round_trip_and_errors(tmp_path):
    x, ids = _skewed_embeddings(sizes=(5, 5))
    clusters = fit_bds_clusters(x, ids, k=2, seed=0)
    path = tmp_path / "utt2cluster"
    write_utt2cluster(path, clusters)
    got_ids, got = read_utt2cluster(path)
    assert got_ids == ids and got.tolist() == clusters.assignments.tolist()
    with pytest.raises(ValueError, match="not in the training list"):
        bds_batch_sampler(path, ids[:-1], batch_size=2)
    bad = tmp_path / "bad"
    bad.write_text("a 0\nb x\n")
    with pytest.raises(ValueError, match=r"bad:2"):
        read_utt2cluster(bad)
