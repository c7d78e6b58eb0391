"""Length-aware 2-D CNN blocks: masked conv + batch norm + activation, squeeze-excite, feature maps.

Feature maps are ``[B, C, H, W]`` with one of the two spatial axes being time, given by
``time_dim`` (2: ``[B, C, T, F]``; 3: ``[B, C, F, T]``); the other axis is frequency.
``lengths [B]`` counts the valid time steps of each item. Every convolution wider than 1
masks its input past ``lengths`` first, so a padded item sees exactly the zeros that the
convolution's own zero padding gives the item run alone: in eval mode an item's valid
outputs do not depend on the batch it is in. Squeeze-excitation averages valid positions
only; :class:`MaskedBatchNorm2d` takes its training statistics from valid positions only.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor, nn

from espnet2_sonar.nn.masks import valid_mask

ACTIVATIONS = {
    "relu": nn.ReLU,
    "hardswish": nn.Hardswish,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}
GATES: Dict[str, Callable[[Tensor], Tensor]] = {"sigmoid": torch.sigmoid, "hardsigmoid": nn.functional.hardsigmoid}


def _freq_dim(time_dim: int) -> int:
    """The other spatial axis: 3 when time is 2, 2 when time is 3."""
    return 5 - time_dim


def _check_time_dim(time_dim: int) -> None:
    if time_dim not in (2, 3):
        raise ValueError(f"time_dim must be 2 ([B, C, T, F]) or 3 ([B, C, F, T]), got {time_dim}")


def time_mask_4d(lengths: Tensor, x: Tensor, time_dim: int) -> Tensor:
    """0/1 mask of ``x``'s dtype, broadcastable to x [B, C, H, W]: 1 at valid time steps."""
    shape = [x.shape[0], 1, 1, 1]
    shape[time_dim] = x.shape[time_dim]
    return valid_mask(lengths.to(x.device), x.shape[time_dim]).view(shape).to(x.dtype)


def mask_time(x: Tensor, lengths: Tensor, time_dim: int = 2) -> Tensor:
    """Zero the time steps past ``lengths``: x [B, C, H, W] -> same shape."""
    if bool((lengths >= x.shape[time_dim]).all()):
        return x
    return x * time_mask_4d(lengths, x, time_dim)


def conv_lengths(lengths: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
    """Output lengths of a convolution along time: floor((L + 2p - k) / s) + 1, at least 1."""
    return ((lengths + 2 * padding - kernel).div(stride, rounding_mode="floor") + 1).clamp(min=1)


def masked_mean_2d(x: Tensor, lengths: Tensor, time_dim: int = 2) -> Tensor:
    """Mean over valid time steps and all frequencies: [B, C, H, W] -> [B, C]."""
    count = (lengths.to(x.device).clamp(min=1) * x.shape[_freq_dim(time_dim)]).to(x.dtype)[:, None]
    return (x * time_mask_4d(lengths, x, time_dim)).sum(dim=(2, 3)) / count


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover valid time steps only.

    forward(x [B, C, H, W], lengths [B]) -> same shape. In eval mode, and in training mode
    on a batch without padding, this is ``nn.BatchNorm2d`` exactly.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, time_dim: int = 2):
        super().__init__(num_features, eps=eps, momentum=momentum)
        _check_time_dim(time_dim)
        self.time_dim = time_dim

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:  # type: ignore[override]
        if not self.training or bool((lengths >= x.shape[self.time_dim]).all()):
            return super().forward(x)  # running statistics, or the ordinary batch statistics
        valid = time_mask_4d(lengths, x, self.time_dim)
        count = valid.sum() * x.shape[_freq_dim(self.time_dim)]
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
    """Masked Conv2d (no bias) -> batch norm -> activation, ``same``-style padding (k // 2).

    forward(x [B, C_in, H, W], lengths [B]) -> (y [B, C_out, H', W'], lengths' [B]).
    Submodules ``conv``, ``bn``, ``act`` (state-dict keys ``conv.weight``, ``bn.*``).

    Args:
        act: a name in ``ACTIVATIONS``.
        time_dim: 2 for ``[B, C, T, F]`` maps, 3 for ``[B, C, F, T]``.
        bn_eps, bn_momentum: of the batch norm.
        masked_stats: training-mode batch statistics over valid time steps only
            (:class:`MaskedBatchNorm2d`); False keeps ``nn.BatchNorm2d``'s statistics over the
            whole padded batch (DECAR's EfficientNet as trained). Eval mode is the same either way.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
        *,
        time_dim: int = 2,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        masked_stats: bool = True,
    ):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; known: {sorted(ACTIVATIONS)}")
        _check_time_dim(time_dim)
        self.kernel, self.stride, self.padding, self.time_dim = kernel, stride, kernel // 2, time_dim
        self.masked_stats = masked_stats
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, self.padding, groups=groups, bias=False)
        if masked_stats:
            self.bn = MaskedBatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum, time_dim=time_dim)
        else:
            self.bn = nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum)
        self.act = ACTIVATIONS[act]()

    def out_lengths(self, lengths: Tensor) -> Tensor:
        return conv_lengths(lengths, self.kernel, self.stride, self.padding)

    def forward(self, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        if self.kernel > 1:
            x = mask_time(x, lengths, self.time_dim)
        lengths = self.out_lengths(lengths)
        y = self.conv(x)
        y = self.bn(y, lengths) if self.masked_stats else self.bn(y)
        return self.act(y), lengths


class SqueezeExcite(nn.Module):
    """Channel gating from the masked mean: x * gate(fc2(act(fc1(mean_valid(x))))).

    forward(x [B, C, H, W], lengths [B]) -> same shape. Submodules ``fc1`` (C -> hidden)
    and ``fc2`` (hidden -> C), with bias.

    Args:
        act: inner activation, a name in ``ACTIVATIONS``.
        gate: a name in ``GATES``.
        time_dim: 2 for ``[B, C, T, F]`` maps, 3 for ``[B, C, F, T]``.
        conv1x1: ``fc1``/``fc2`` are 1x1 ``Conv2d`` applied to [B, C, 1, 1] (weights
            [out, in, 1, 1], DECAR's EfficientNet) instead of ``Linear`` on [B, C] (weights
            [out, in]). The same maths, but different kernels round differently, so each
            model keeps the form its checkpoints were trained with.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        act: str = "relu",
        gate: str = "hardsigmoid",
        time_dim: int = 2,
        conv1x1: bool = False,
    ):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; known: {sorted(ACTIVATIONS)}")
        if gate not in GATES:
            raise ValueError(f"unknown gate {gate!r}; known: {sorted(GATES)}")
        _check_time_dim(time_dim)
        self.time_dim, self.conv1x1, self.gate = time_dim, conv1x1, GATES[gate]
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if conv1x1 else nn.Linear
        self.fc1 = layer(channels, hidden)
        self.act = ACTIVATIONS[act]()
        self.fc2 = layer(hidden, channels)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        s = masked_mean_2d(x, lengths, self.time_dim)  # [B, C]
        if self.conv1x1:
            return x * self.gate(self.fc2(self.act(self.fc1(s[:, :, None, None]))))
        return x * self.gate(self.fc2(self.act(self.fc1(s))))[:, :, None, None]


@dataclass
class FeatureMap:
    """A CNN feature map with its valid time steps.

    x: [B, C, T, F] (``time_dim`` 2) or [B, C, F, T] (``time_dim`` 3); lengths: LongTensor[B].
    """

    x: Tensor
    lengths: Tensor
    time_dim: int = 2

    def frames(self) -> Tensor:
        """Frequency-averaged time frames [B, T, C], zero past ``lengths``."""
        return mask_time(self.x, self.lengths, self.time_dim).mean(dim=_freq_dim(self.time_dim)).transpose(1, 2)
