"""Length-aware CNN blocks (espnet2_sonar.nn.conv): padding invariance, masked statistics, layouts."""

import pytest
import torch

from espnet2_sonar.nn.conv import (
    ConvBNAct,
    FeatureMap,
    MaskedBatchNorm2d,
    SqueezeExcite,
    conv_lengths,
    mask_time,
    masked_mean_2d,
)

LENGTHS = torch.tensor([12, 7, 3])


def _to_layout(x, time_dim):
    """[B, C, T, F] -> the layout of ``time_dim``."""
    return x if time_dim == 2 else x.transpose(2, 3).contiguous()


def _item(x, b, n, time_dim):
    """Item b cut to its first n time steps, batch axis kept."""
    return x[b : b + 1, :, :n] if time_dim == 2 else x[b : b + 1, :, :, :n]


def _randomise_bn(module):
    """Non-trivial running statistics and affine parameters in every batch norm of ``module``."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("time_dim", [2, 3])
@pytest.mark.parametrize("kernel,stride,groups", [(3, 1, 1), (3, 2, 1), (5, 2, 4), (1, 1, 1), (1, 2, 1)])
def test_conv_bn_act_valid_outputs_do_not_depend_on_padding(time_dim, kernel, stride, groups):
    torch.manual_seed(0)
    block = ConvBNAct(4, 8, kernel, stride, groups, act="hardswish", time_dim=time_dim)
    _randomise_bn(block)
    block.eval()
    x = _to_layout(torch.randn(3, 4, 12, 6), time_dim)
    with torch.no_grad():
        y, n = block(x, LENGTHS)
        garbage = _to_layout(torch.randn(3, 4, 12, 6) * 100, time_dim)  # other padding content
        y2, _ = block(torch.where(mask_time(torch.ones_like(x), LENGTHS, time_dim) > 0, x, garbage), LENGTHS)
        longer = torch.cat([x, 50 * torch.ones_like(x)], dim=time_dim)  # extra padding
        y3, n3 = block(longer, LENGTHS)
        for b, length in enumerate(LENGTHS.tolist()):
            alone, n_alone = block(_item(x, b, length, time_dim), LENGTHS[b : b + 1])
            assert n[b] == n3[b] == n_alone[0] == alone.shape[time_dim]
            for out in (y, y2, y3):
                torch.testing.assert_close(_item(out, b, int(n[b]), time_dim), alone, rtol=1e-5, atol=1e-5)
    assert torch.equal(n, conv_lengths(LENGTHS, kernel, stride, kernel // 2))
    assert y.shape[time_dim] == conv_lengths(torch.tensor([12]), kernel, stride, kernel // 2)[0]


@pytest.mark.parametrize("time_dim", [2, 3])
def test_masked_batch_norm_equals_batch_norm_over_valid_steps(time_dim):
    torch.manual_seed(0)
    bn, ref = MaskedBatchNorm2d(4, time_dim=time_dim).train(), torch.nn.BatchNorm2d(4).train()
    x = torch.randn(3, 4, 10, 5) * 3 + 1  # [B, C, T, F]
    lengths = torch.tensor([10, 6, 3])
    y = bn(_to_layout(x, time_dim), lengths)
    y = y if time_dim == 2 else y.transpose(2, 3)
    valid_x = torch.cat([x[b, :, : lengths[b]] for b in range(3)], dim=1)[None]
    valid_y = torch.cat([y[b, :, : lengths[b]] for b in range(3)], dim=1)[None]
    torch.testing.assert_close(valid_y, ref(valid_x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 1
    # padding values never reach the statistics
    x2 = x.clone()
    x2[1, :, 6:] = 1e3
    y2 = MaskedBatchNorm2d(4, time_dim=time_dim).train()(_to_layout(x2, time_dim), lengths)
    y2 = y2 if time_dim == 2 else y2.transpose(2, 3)
    torch.testing.assert_close(y2[0], y[0].detach(), atol=1e-5, rtol=1e-5)


def test_masked_batch_norm_is_batch_norm_without_padding_and_in_eval_mode():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 5)
    bn, ref = MaskedBatchNorm2d(4, eps=1e-3, momentum=0.01), torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)
    assert torch.equal(bn.train()(x, torch.tensor([6, 6])), ref.train()(x))
    assert torch.equal(bn.running_var, ref.running_var)
    # eval mode: the running statistics, padding or not
    assert torch.equal(bn.eval()(x, torch.tensor([6, 2])), ref.eval()(x))


def test_conv_bn_act_without_masked_stats_keeps_plain_batch_norm():
    block = ConvBNAct(2, 3, 3, masked_stats=False, bn_eps=1e-3, bn_momentum=0.01)
    assert type(block.bn) is torch.nn.BatchNorm2d and block.bn.eps == 1e-3 and block.bn.momentum == 0.01
    assert sorted(block.state_dict()) == sorted(ConvBNAct(2, 3, 3).state_dict())  # same keys either way


@pytest.mark.parametrize("time_dim", [2, 3])
@pytest.mark.parametrize("conv1x1", [False, True])
def test_squeeze_excite_ignores_padding(time_dim, conv1x1):
    torch.manual_seed(0)
    se = SqueezeExcite(8, 4, act="silu", gate="sigmoid", time_dim=time_dim, conv1x1=conv1x1)
    x = _to_layout(torch.randn(3, 8, 12, 5), time_dim)
    noisy = torch.where(mask_time(torch.ones_like(x), LENGTHS, time_dim) > 0, x, torch.full_like(x, 1e3))
    y, y_noisy = se(x, LENGTHS), se(noisy, LENGTHS)
    for b, length in enumerate(LENGTHS.tolist()):
        alone = se(_item(x, b, length, time_dim), LENGTHS[b : b + 1])
        torch.testing.assert_close(_item(y, b, length, time_dim), alone)
        torch.testing.assert_close(_item(y_noisy, b, length, time_dim), alone)


def test_squeeze_excite_forms_compute_the_same_gate():
    torch.manual_seed(0)
    lin = SqueezeExcite(8, 4)
    conv = SqueezeExcite(8, 4, conv1x1=True)
    keys = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert list(lin.state_dict()) == list(conv.state_dict()) == keys
    conv.load_state_dict({k: v.view_as(conv.state_dict()[k]) for k, v in lin.state_dict().items()})
    x = torch.randn(3, 8, 12, 5)
    torch.testing.assert_close(lin(x, LENGTHS), conv(x, LENGTHS))


def test_masked_mean_2d_and_frames_agree_across_layouts():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 12, 5)  # [B, C, T, F]
    expected = torch.stack([x[b, :, :n].mean(dim=(1, 2)) for b, n in enumerate(LENGTHS.tolist())])
    torch.testing.assert_close(masked_mean_2d(x, LENGTHS, 2), expected)
    torch.testing.assert_close(masked_mean_2d(x.transpose(2, 3), LENGTHS, 3), expected)
    frames = FeatureMap(x, LENGTHS).frames()  # [B, T, C]
    assert frames.shape == (3, 12, 4)
    assert torch.equal(frames, FeatureMap(x.transpose(2, 3), LENGTHS, time_dim=3).frames())
    torch.testing.assert_close(frames[0], x[0].mean(dim=2).T)
    assert (frames[1, 7:] == 0).all() and (frames[2, 3:] == 0).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        ConvBNAct(1, 2, act="tanhh")
    with pytest.raises(ValueError, match="unknown gate 'relu'"):
        SqueezeExcite(4, 2, gate="relu")
    with pytest.raises(ValueError, match="time_dim must be 2"):
        ConvBNAct(1, 2, time_dim=1)


def test_same_seed_same_parameters():
    def build():
        torch.manual_seed(3)
        return torch.nn.ModuleList([ConvBNAct(3, 6, 3, 2), SqueezeExcite(6, 8), SqueezeExcite(6, 2, conv1x1=True)])

    a, b = build().state_dict(), build().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
