"""ERes2Net-style student on log-mel (S-SONDO's ERes2Net student; Chen et al., 2023).

    fbank [B, F, 128] -> [B, 1, F, 128] -> stem ConvBNAct 3x3 (/ stem_stride)
      -> 4 stages of Res2Net blocks (widths channels x [1, 2, 4, 8] x expansion; stages 2-4 /2)
      -> global feature fusion: the fused output of stages 1..i, downsampled 3x3 /2, is fused
         with stage i+1's output by attentional feature fusion (AFF)
      -> mean over frequency -> [B, N, D], D = 8 x channels x expansion

Res2Net block: a 1x1 convolution (carrying the stride) widens to ``scale`` groups of
``width`` channels; group i goes through a 3x3 convolution after being fused with the
output of group i-1 (local feature fusion: addition, or AFF in the stages listed in
``aff_stages``); the groups are concatenated, projected 1x1 and added to the shortcut.

AFF(x, y) = x * w + y * (2 - w), w = 1 + tanh(a(concat(x, y))), a = 1x1 -> BN -> ReLU -> 1x1 -> BN.
"""

from dataclasses import dataclass, field
from typing import List

import torch
from torch import Tensor, nn

from espnet2_sonar.nn.conv import ConvBNAct, FeatureMap
from espnet2_sonar.students.abs_student import AbsStudent, StudentOutput
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class ERes2NetConfig(StrictConfig):
    """Hyper-parameters of the ERes2Net student; unknown keys are errors."""

    channels: int = 16
    """Base width m: stage i has m * 2**i planes (before expansion)."""
    num_blocks: List[int] = field(default_factory=lambda: [2, 2, 2, 2])
    """Res2Net blocks per stage (4 stages)."""
    expansion: int = 2
    """Output channels of a block = planes * expansion."""
    scale: int = 2
    """Res2Net groups per block."""
    base_width: int = 32
    """Group width = max(4, planes * base_width // 64)."""
    aff_stages: List[int] = field(default_factory=lambda: [3, 4])
    """Stages (1-based) whose blocks fuse groups with AFF instead of addition."""
    aff_reduction: int = 4
    """Channel reduction inside AFF's attention."""
    stem_stride: int = 2
    """Stride of the stem convolution (1 or 2); the total time stride is stem_stride * 8."""

    def __post_init__(self):
        if len(self.num_blocks) != 4 or min(self.num_blocks) < 1:
            raise ValueError(f"num_blocks must list 4 positive counts, got {self.num_blocks}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.scale < 1 or self.channels < 1 or self.expansion < 1:
            raise ValueError("channels, expansion and scale must be >= 1")
        bad = [s for s in self.aff_stages if s not in (1, 2, 3, 4)]
        if bad:
            raise ValueError(f"aff_stages must be within 1..4, got {bad}")


class AFF(nn.Module):
    """Attentional feature fusion of two maps of equal shape.

    forward(x, y [B, C, T, F], lengths [B]) -> [B, C, T, F].
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.down = ConvBNAct(2 * channels, hidden, 1, act="relu")
        self.up = ConvBNAct(hidden, channels, 1, act="identity")

    def forward(self, x: Tensor, y: Tensor, lengths: Tensor) -> Tensor:
        a, _ = self.down(torch.cat([x, y], dim=1), lengths)
        a, _ = self.up(a, lengths)
        w = 1.0 + torch.tanh(a)
        return x * w + y * (2.0 - w)


class Res2Block(nn.Module):
    """Res2Net bottleneck with local feature fusion (see the module docstring).

    forward(x [B, C_in, T, F], lengths [B]) -> (y [B, planes * expansion, T', F'], lengths' [B]).
    """

    def __init__(self, c_in: int, planes: int, stride: int, config: ERes2NetConfig, aff: bool):
        super().__init__()
        width = max(4, planes * config.base_width // 64)
        c_out = planes * config.expansion
        self.scale = config.scale
        self.widen = ConvBNAct(c_in, width * config.scale, 1, stride, act="relu")
        self.convs = nn.ModuleList(ConvBNAct(width, width, 3, act="relu") for _ in range(config.scale))
        self.fuse = nn.ModuleList(AFF(width, config.aff_reduction) for _ in range(config.scale - 1)) if aff else None
        self.project = ConvBNAct(width * config.scale, c_out, 1, act="identity")
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = ConvBNAct(c_in, c_out, 1, stride, act="identity")

    def forward(self, x: Tensor, lengths: Tensor) -> "tuple[Tensor, Tensor]":
        h, n = self.widen(x, lengths)
        groups = torch.chunk(h, self.scale, dim=1)
        outs, prev = [], None
        for i, (g, conv) in enumerate(zip(groups, self.convs)):
            if prev is not None:
                g = self.fuse[i - 1](prev, g, n) if self.fuse is not None else g + prev
            prev, _ = conv(g, n)
            outs.append(prev)
        y, n = self.project(torch.cat(outs, dim=1), n)
        skip = x if self.shortcut is None else self.shortcut(x, lengths)[0]
        return torch.relu(y + skip), n


class ERes2NetStudent(AbsStudent):
    """ERes2Net-style student; keyword arguments are ``ERes2NetConfig`` fields."""

    def __init__(self, **conf):
        super().__init__()
        self.config = config = ERes2NetConfig.from_dict(conf)
        m, e = config.channels, config.expansion
        self.stem = ConvBNAct(1, m, 3, config.stem_stride, act="relu")
        stages, c = [], m
        for i, blocks in enumerate(config.num_blocks):
            planes = m * 2**i
            aff = (i + 1) in config.aff_stages
            layer = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layer.append(Res2Block(c if j == 0 else planes * e, planes, stride, config, aff))
            stages.append(nn.ModuleList(layer))
            c = planes * e
        self.stages = nn.ModuleList(stages)
        widths = [m * 2**i * e for i in range(4)]
        self.downsample = nn.ModuleList(ConvBNAct(widths[i], widths[i + 1], 3, 2, act="relu") for i in range(3))
        self.global_fuse = nn.ModuleList(AFF(widths[i + 1], config.aff_reduction) for i in range(3))
        self.dim = widths[-1]

    @property
    def time_stride(self) -> int:
        return self.config.stem_stride * 8

    @property
    def num_layers(self) -> int:
        return 1

    def output_size(self) -> int:
        return self.dim

    def output_lengths(self, frame_lengths: Tensor) -> Tensor:
        n = self.stem.out_lengths(frame_lengths.long())
        for stage in self.stages:
            n = stage[0].widen.out_lengths(n)
        return n

    def forward(self, fbank: Tensor, frame_lengths: Tensor) -> StudentOutput:
        x, n = self.stem(fbank[:, None], frame_lengths.long())
        fused, fused_n = None, None  # global feature fusion of stages 1..i, and its lengths
        for i, stage in enumerate(self.stages):
            for block in stage:
                x, n = block(x, n)
            if fused is None:
                fused = x
            else:
                down, _ = self.downsample[i - 1](fused, fused_n)
                fused = self.global_fuse[i - 1](x, down, n)
            fused_n = n
        return StudentOutput(layers=[FeatureMap(fused, n).frames()], lengths=n)
