"""espnet2_sonar.nn.specaug: the one seeded SpecAugment (DECAR's augmentation, PACE's masked copies)."""

import pytest
import torch

from espnet2.asr.specaug.abs_specaug import AbsSpecAug

from espnet2_sonar.nn.specaug import SpecAugment, SpecAugmentConfig

RATIO = SpecAugmentConfig(freq_masks=2, freq_mask_width=10, time_masks=3, time_mask_ratio=0.2)
FRAMES = SpecAugmentConfig(freq_masks=2, freq_mask_width=10, time_masks=3, time_mask_width=6, time_mask_ratio=0.0)


def _feats(lengths, frames, bins=32, seed=0, pad=0.0):
    """[B, frames, bins] features far from the fill value 0, ``pad`` past each length."""
    x = torch.rand(len(lengths), frames, bins, generator=torch.Generator().manual_seed(seed)) + 1.0
    valid = torch.arange(frames)[None, :, None] < torch.tensor(lengths)[:, None, None]
    return torch.where(valid, x, torch.full_like(x, pad))


def test_is_an_espnet_specaug_returning_x_and_lengths():
    aug = SpecAugment(RATIO, seed=0)
    assert isinstance(aug, AbsSpecAug) and isinstance(aug, torch.nn.Module)
    x, lengths = _feats([20, 7], 20), torch.tensor([20, 7])
    out, out_lengths = aug(x, lengths)
    assert out.shape == x.shape and out_lengths is lengths
    assert aug(x)[1] is None
    assert SpecAugment({"freq_masks": 1}).config == SpecAugmentConfig(freq_masks=1)
    with pytest.raises(ValueError, match=r"x \[B, T, F\]"):
        aug(x[0])
    with pytest.raises(ValueError, match="x_lengths"):
        aug(x, torch.tensor([20]))


@pytest.mark.parametrize("config", [RATIO, FRAMES], ids=["ratio", "frames"])
def test_same_seed_same_masks_different_seed_different_masks(config):
    lengths = torch.tensor([40, 25, 33])
    x = _feats(lengths.tolist(), 40)
    a, b = SpecAugment(config, seed=1), SpecAugment(config, seed=1)
    first, second = a(x, lengths)[0], a(x, lengths)[0]
    assert torch.equal(first, b(x, lengths)[0]) and torch.equal(second, b(x, lengths)[0])  # same sequence
    assert not torch.equal(first, second)  # the module's generator advances
    assert not torch.equal(first, SpecAugment(config, seed=2)(x, lengths)[0])
    # an explicit generator overrides the module's own and leaves it untouched
    c = SpecAugment(config, seed=7)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(c(x, lengths, g1)[0], first) and torch.equal(c(x, lengths, g2)[0], first)
    assert torch.equal(c.generator.get_state(), torch.Generator().manual_seed(7).get_state())


@pytest.mark.parametrize("config", [RATIO, FRAMES], ids=["ratio", "frames"])
def test_mask_widths_within_config_bounds_and_spans_inside_valid_frames(config):
    aug = SpecAugment(config)
    lengths = torch.tensor([60, 31, 5, 1, 0])
    widest_freq, widest_time = 0, torch.zeros(5, dtype=torch.long)
    for seed in range(200):
        freq, time = aug.spans(lengths, 32, torch.Generator().manual_seed(seed))
        assert freq.width.shape == (5, config.freq_masks) and time.width.shape == (5, config.time_masks)
        if config.time_mask_ratio > 0:
            bound = (lengths * config.time_mask_ratio).floor().long()
        else:
            bound = torch.full((5,), config.time_mask_width).minimum(lengths)
        assert (freq.width >= 0).all() and (freq.width <= config.freq_mask_width).all()
        assert (freq.start >= 0).all() and (freq.start + freq.width <= 32).all()
        assert (time.width >= 0).all() and (time.width <= bound[:, None]).all()
        assert (time.start >= 0).all() and (time.start + time.width <= lengths[:, None]).all()
        widest_freq = max(widest_freq, int(freq.width.max()))
        widest_time = widest_time.maximum(time.width.max(dim=1).values)
    assert widest_freq == config.freq_mask_width and torch.equal(widest_time, bound)  # the bounds are reached


@pytest.mark.parametrize("config", [RATIO, FRAMES], ids=["ratio", "frames"])
def test_padding_is_never_masked_and_padding_invariance(config):
    lengths = torch.tensor([40, 25, 9, 0])
    x = _feats(lengths.tolist(), 40, pad=7.0)
    out = SpecAugment(config)(x, lengths, torch.Generator().manual_seed(3))[0]
    assert torch.equal(x, _feats(lengths.tolist(), 40, pad=7.0))  # input not modified
    masked = out == 0
    assert masked.any()
    for i, n in enumerate(lengths.tolist()):
        assert torch.equal(out[i, n:], x[i, n:])  # padding untouched
        m = masked[i, :n]  # every masked cell lies in a full time band or a full frequency band of the valid frames
        assert torch.equal(m, m.all(dim=1)[:, None] | m.all(dim=0)[None, :])
    # more padding, other padding values: the same output inside the lengths
    wider = torch.cat([x, torch.full((4, 13, 32), -3.0)], dim=1)
    wider[:, :40][x == 7.0] = -3.0
    out_wider = SpecAugment(config)(wider, lengths, torch.Generator().manual_seed(3))[0]
    for i, n in enumerate(lengths.tolist()):
        assert torch.equal(out_wider[i, :n], out[i, :n])
        assert torch.equal(out_wider[i, n:], wider[i, n:])
    # no lengths: every frame is valid
    unpadded = SpecAugment(config)(x, None, torch.Generator().manual_seed(3))[0]
    assert torch.equal(unpadded, SpecAugment(config)(x, torch.full((4,), 40), torch.Generator().manual_seed(3))[0])


def test_inactive_config_changes_nothing_and_draws_nothing():
    x, lengths = _feats([10, 4], 10), torch.tensor([10, 4])
    g = torch.Generator().manual_seed(5)
    off = [SpecAugmentConfig(freq_masks=0, time_masks=0), SpecAugmentConfig(freq_mask_width=0, time_mask_ratio=0.0)]
    for config in off:
        aug = SpecAugment(config)
        assert not aug.active and aug(x, lengths, g)[0] is x
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(5).get_state())


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="not both"):
        SpecAugmentConfig(time_mask_width=5, time_mask_ratio=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        SpecAugmentConfig(freq_mask_width=-1)
    with pytest.raises(ValueError, match="time_mask_ratio"):
        SpecAugmentConfig(time_mask_ratio=1.0)
    with pytest.raises(ValueError, match="time_mask_widht"):
        SpecAugmentConfig.from_dict({"time_mask_widht": 5})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masks_do_not_depend_on_the_device():
    lengths = torch.tensor([40, 25, 9])
    x = _feats(lengths.tolist(), 40)
    cpu = SpecAugment(RATIO)(x, lengths, torch.Generator().manual_seed(4))[0]
    gpu = SpecAugment(RATIO)(x.cuda(), lengths.cuda(), torch.Generator().manual_seed(4))[0]
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
