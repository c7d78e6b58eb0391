"""espnet2_sonar.nn: masks, masked pooling, the strict state-dict comparison."""

import torch

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.nn.pooling import masked_mean, pool_layers
from espnet2_sonar.nn.state_dict import state_diff


def test_valid_mask_marks_the_first_lengths_positions():
    mask = valid_mask(torch.tensor([0, 2, 4]), 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[False] * 4, [True, True, False, False], [True] * 4]


def test_masked_mean_ignores_padding_and_matches_the_unpadded_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=g)
    lengths = torch.tensor([5, 2, 1])
    pooled = masked_mean(x, lengths)
    assert pooled.shape == (3, 4)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(pooled[b], x[b, :n].mean(dim=0))
    padded = torch.cat([x, torch.full((3, 2, 4), 1e6)], dim=1)  # padding values never enter the mean
    torch.testing.assert_close(masked_mean(padded, lengths), pooled)


def test_masked_mean_over_an_inner_axis_and_zero_length():
    x = torch.randn(2, 3, 4, 5)
    pooled = masked_mean(x, torch.tensor([4, 0]), dim=2)
    assert pooled.shape == (2, 3, 5)
    torch.testing.assert_close(pooled[0], x[0].mean(dim=1))
    assert bool((pooled[1] == 0).all())


def test_pool_layers_stacks_then_pools_in_float32():
    layers = [torch.randn(2, 3, 4, dtype=torch.float64) for _ in range(3)]
    out = pool_layers(layers, torch.tensor([3, 1]))
    assert out.shape == (2, 3, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out[1, 2], layers[2][1, 0].float())


def test_state_diff_names_missing_unexpected_and_mismatched_keys():
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    got = {"b": torch.zeros(4), "c": torch.zeros(1), "z": torch.zeros(1)}
    diff = state_diff(expected, got)
    assert (diff.missing, diff.unexpected, diff.mismatched) == (["a"], ["z"], ["b"])
    assert diff
    assert not state_diff(expected, dict(expected))
