"""Analytic classifier: the recursive (Woodbury) update equals batch ridge regression."""

import pytest
import torch

from espnet2_sonar.pace.analytic import AnalyticClassifier, AnalyticConfig, RandomFeatures, ridge_solution
from espnet2_sonar.pace.classifiers import AnalyticHead


def _data(seed: int, n: int = 150, dim: int = 40, num_classes: int = 6):
    gen = torch.Generator().manual_seed(seed)
    z = torch.relu(torch.randn(n, dim, generator=gen, dtype=torch.float64) + 0.3)
    # class-incremental order: classes arrive in blocks, like sessions
    labels = torch.sort(torch.randint(0, num_classes, (n,), generator=gen)).values
    return z, labels


def _recursive(z, labels, cuts, gamma, chunk_size):
    clf = AnalyticClassifier(z.shape[1], gamma=gamma, chunk_size=chunk_size)
    bounds = [0, *cuts, z.shape[0]]
    for a, b in zip(bounds[:-1], bounds[1:]):
        clf.update_(z[a:b], labels[a:b], int(labels[:b].max()) + 1)
    return clf


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma", [0.1, 10.0])
def test_recursive_update_equals_batch_ridge(seed, gamma):
    z, labels = _data(seed)
    reference = ridge_solution(z, labels, int(labels.max()) + 1, gamma)
    # sessions of uneven sizes; chunks smaller than sessions (several Woodbury steps each)
    clf = _recursive(z, labels, [17, 60, 61, 120], gamma, chunk_size=13)
    assert _rel(clf.weight, reference) < 1e-6
    gram = z.T @ z + gamma * torch.eye(z.shape[1], dtype=z.dtype)
    assert _rel(clf.R, torch.linalg.inv(gram)) < 1e-6
    assert clf.num_seen == z.shape[0]


@pytest.mark.timeout(30)
def test_solution_independent_of_session_split():
    z, labels = _data(3, n=200, dim=64)
    c = int(labels.max()) + 1
    splits = [[], [100], [5, 6, 7, 150], list(range(10, 200, 10))]
    weights = []
    for cuts in splits:
        clf = AnalyticClassifier(z.shape[1], gamma=1.0, chunk_size=32)
        bounds = [0, *cuts, z.shape[0]]
        for a, b in zip(bounds[:-1], bounds[1:]):
            clf.update_(z[a:b], labels[a:b], c)
        weights.append(clf.weight)
    for w in weights[1:]:
        assert _rel(w, weights[0]) < 1e-9
    # row order inside the data does not matter either
    perm = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(0))
    clf = AnalyticClassifier(z.shape[1], gamma=1.0, chunk_size=50)
    clf.update_(z[perm], labels[perm], c)
    assert _rel(clf.weight, weights[0]) < 1e-9


@pytest.mark.timeout(30)
def test_new_classes_grow_columns_and_scores_restrict():
    z, labels = _data(4)
    clf = AnalyticClassifier(z.shape[1], gamma=1.0)
    first = labels < 3
    clf.update_(z[first], labels[first])
    assert clf.num_classes == 3
    clf.update_(z[~first], labels[~first])
    assert clf.num_classes == int(labels.max()) + 1
    assert clf.scores(z[:5], num_classes=3).shape == (5, 3)
    assert torch.allclose(clf.scores(z[:5])[:, :3], clf.scores(z[:5], num_classes=3))
    with pytest.raises(ValueError, match=r"z must be"):
        clf.update_(z[:, :3], labels)


@pytest.mark.timeout(30)
def test_random_features_seeded_and_head_separates_blobs():
    config = AnalyticConfig(proj_dim=256, gamma=1.0)
    a, b = RandomFeatures(8, config, seed=5), RandomFeatures(8, config, seed=5)
    x = torch.randn(4, 8)
    assert torch.equal(a(x), b(x)) and a(x).shape == (4, 256) and a(x).dtype == torch.float64
    assert not torch.equal(a(x), RandomFeatures(8, config, seed=6)(x))
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=gen) * 3
    labels = torch.arange(4).repeat_interleave(20)
    feats = centres[labels] + 0.3 * torch.randn(80, 8, generator=gen)
    head = AnalyticHead(8, config, seed=0)
    head.update_(feats[labels < 2], labels[labels < 2], 2, gen)
    head.update_(feats[labels >= 2], labels[labels >= 2], 4, gen)
    assert (head.scores(feats, 4).argmax(-1) == labels).float().mean() > 0.95
