"""Length-aware building blocks for the CNN students (time-padding invariant in eval mode).

Feature maps are ``[B, C, T, F]`` (time, then mel frequency); ``lengths [B]`` counts the
valid time steps of each item. Every convolution masks its input past ``lengths`` first,
so a padded item sees exactly the zeros that the convolution's own zero padding gives
the item run alone: in eval mode an item's valid outputs do not depend on the batch it
is in. Batch norm and squeeze-excitation use statistics over valid positions only.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.nn.pooling import masked_mean as masked_mean_1d

ACTIVATIONS = {"relu": nn.ReLU, "hardswish": nn.Hardswish, "gelu": nn.GELU, "identity": nn.Identity}


def time_mask(lengths: Tensor, steps: int) -> Tensor:
    """BoolTensor[B, steps], True at valid time steps."""
    return valid_mask(lengths, steps)


def mask_time(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero the time steps past ``lengths``. x [B, C, T, F] -> [B, C, T, F]."""
    if bool((lengths >= x.shape[2]).all()):
        return x
    return x * time_mask(lengths, x.shape[2])[:, None, :, None].to(x.dtype)


def conv_lengths(lengths: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
    """Output lengths of a convolution along time: floor((L + 2p - k) / s) + 1, at least 1."""
    return ((lengths + 2 * padding - kernel).div(stride, rounding_mode="floor") + 1).clamp(min=1)


def masked_mean(x: Tensor, lengths: Tensor) -> Tensor:
    """Mean over valid time steps and all frequencies: [B, C, T, F] -> [B, C]."""
    valid = time_mask(lengths, x.shape[2])[:, None, :, None].to(x.dtype)
    count = (lengths.clamp(min=1) * x.shape[3]).to(x.dtype)[:, None]
    return (x * valid).sum(dim=(2, 3)) / count


def masked_time_pool(x: Tensor, lengths: Tensor) -> Tensor:
    """Mean over the first ``lengths[b]`` steps: [B, N, D] -> [B, D]."""
    return masked_mean_1d(x, lengths, dim=1)


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover valid time steps only.

    forward(x [B, C, T, F], lengths [B]) -> [B, C, T, F]. In eval mode this is the
    ordinary per-channel affine map with the running statistics.
    """

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:  # type: ignore[override]
        if not self.training:
            return super().forward(x)
        if bool((lengths >= x.shape[2]).all()):
            return super().forward(x)  # no padding: the ordinary batch statistics
        valid = time_mask(lengths, x.shape[2])[:, None, :, None].to(x.dtype)  # [B, 1, T, 1]
        count = valid.sum() * x.shape[3]
        xv = x * valid
        mean = xv.sum(dim=(0, 2, 3)) / count
        var = ((xv * x).sum(dim=(0, 2, 3)) / count - mean * mean).clamp(min=0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * unbiased)
        scale = torch.rsqrt(var + self.eps)
        shift = -mean * scale
        if self.affine:
            scale, shift = scale * self.weight, shift * self.weight + self.bias
        return torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None])  # one fused pass


class ConvBNAct(nn.Module):
    """Masked Conv2d -> MaskedBatchNorm2d -> activation, ``same``-style padding (k // 2).

    forward(x [B, C_in, T, F], lengths [B]) -> (y [B, C_out, T', F'], lengths' [B]).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: str = "relu"):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; known: {sorted(ACTIVATIONS)}")
        self.kernel, self.stride, self.padding = kernel, stride, kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, self.padding, groups=groups, bias=False)
        self.bn = MaskedBatchNorm2d(c_out)
        self.act = ACTIVATIONS[act]()

    def out_lengths(self, lengths: Tensor) -> Tensor:
        return conv_lengths(lengths, self.kernel, self.stride, self.padding)

    def forward(self, x: Tensor, lengths: Tensor) -> "tuple[Tensor, Tensor]":
        if self.kernel > 1:
            x = mask_time(x, lengths)
        lengths = self.out_lengths(lengths)
        return self.act(self.bn(self.conv(x), lengths)), lengths


class SqueezeExcite(nn.Module):
    """Channel gating from the masked mean: x * hardsigmoid(W2 relu(W1 mean(x))).

    forward(x [B, C, T, F], lengths [B]) -> [B, C, T, F].
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        s = masked_mean(x, lengths)  # [B, C]
        gate = nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * gate[:, :, None, None]


@dataclass
class FeatureMap:
    """A CNN feature map with its valid time steps.

    x: [B, C, T, F]; lengths: LongTensor[B].
    """

    x: Tensor
    lengths: Tensor

    def frames(self) -> Tensor:
        """Frequency-averaged time frames [B, T, C], zero past ``lengths``."""
        return mask_time(self.x, self.lengths).mean(dim=3).transpose(1, 2)
