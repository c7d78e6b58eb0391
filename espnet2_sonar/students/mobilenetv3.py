"""MobileNetV3-style student on log-mel (S-SONDO's MobileNetV3 student, EfficientAT-like).

    fbank [B, F, 128] -> [B, 1, F, 128] -> stem ConvBNAct 3x3 /2 (hardswish)
      -> inverted-residual blocks (1x1 expand, kxk depthwise /s, squeeze-excite, 1x1 project)
      -> ConvBNAct 1x1 to ``last_channels`` (hardswish) -> mean over frequency -> [B, N, D]

The default block table is MobileNetV3-Small's (Howard et al., 2019), scaled by
``width_mult``. Strides act on time and frequency alike; total time stride is 2 ** (number
of stride-2 layers), 32 with the default table (320 ms per output step).
"""

from dataclasses import dataclass, field
from typing import List

from torch import Tensor, nn

from espnet2_sonar.nn.conv import ConvBNAct, FeatureMap, SqueezeExcite
from espnet2_sonar.students.abs_student import AbsStudent, StudentOutput
from espnet2_sonar.utils.config import StrictConfig

# kernel, expanded channels, output channels, squeeze-excite, activation, stride
MOBILENETV3_SMALL = [
    [3, 16, 16, True, "relu", 2],
    [3, 72, 24, False, "relu", 2],
    [3, 88, 24, False, "relu", 1],
    [5, 96, 40, True, "hardswish", 2],
    [5, 240, 40, True, "hardswish", 1],
    [5, 240, 40, True, "hardswish", 1],
    [5, 120, 48, True, "hardswish", 1],
    [5, 144, 48, True, "hardswish", 1],
    [5, 288, 96, True, "hardswish", 2],
    [5, 576, 96, True, "hardswish", 1],
    [5, 576, 96, True, "hardswish", 1],
]


def _divisible(c: float, divisor: int = 8) -> int:
    """Round ``c`` to a multiple of ``divisor``, never below 90% of ``c`` (MobileNet convention)."""
    out = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * c else out


@dataclass
class MobileNetV3Config(StrictConfig):
    """Hyper-parameters of the MobileNetV3 student; unknown keys are errors."""

    blocks: List[list] = field(default_factory=lambda: [list(b) for b in MOBILENETV3_SMALL])
    """Rows ``[kernel, expand, out, se, activation, stride]`` (channels before ``width_mult``)."""
    stem_channels: int = 16
    """Channels of the stem convolution (before ``width_mult``)."""
    last_channels: int = 576
    """Width D of the output (the final 1x1 convolution; before ``width_mult``)."""
    width_mult: float = 1.0
    """Channel multiplier applied to every layer (rounded to multiples of 8)."""
    se_reduction: int = 4
    """Squeeze-excite bottleneck reduction."""

    def __post_init__(self):
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {self.width_mult}")
        if not self.blocks:
            raise ValueError("blocks must not be empty")
        for i, b in enumerate(self.blocks):
            if len(b) != 6 or b[5] not in (1, 2) or b[0] % 2 == 0:
                raise ValueError(
                    f"blocks[{i}] = {b}: expected [odd kernel, expand, out, se, activation, stride 1|2]"
                )


class InvertedResidual(nn.Module):
    """1x1 expand -> kxk depthwise (stride) -> SE -> 1x1 project, residual when shapes allow.

    forward(x [B, C_in, T, F], lengths [B]) -> (y [B, C_out, T', F'], lengths' [B]).
    """

    def __init__(self, c_in: int, expand: int, c_out: int, kernel: int, se: bool, act: str, stride: int, se_reduction: int):
        super().__init__()
        self.expand = ConvBNAct(c_in, expand, 1, act=act) if expand != c_in else None
        self.depthwise = ConvBNAct(expand, expand, kernel, stride, groups=expand, act=act)
        self.se = SqueezeExcite(expand, max(8, expand // se_reduction)) if se else None
        self.project = ConvBNAct(expand, c_out, 1, act="identity")
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor, lengths: Tensor) -> "tuple[Tensor, Tensor]":
        y, n = (x, lengths) if self.expand is None else self.expand(x, lengths)
        y, n = self.depthwise(y, n)
        if self.se is not None:
            y = self.se(y, n)
        y, n = self.project(y, n)
        return (x + y if self.residual else y), n


class MobileNetV3Student(AbsStudent):
    """MobileNetV3-style student; keyword arguments are ``MobileNetV3Config`` fields."""

    def __init__(self, **conf):
        super().__init__()
        self.config = config = MobileNetV3Config.from_dict(conf)
        wm = config.width_mult
        c = _divisible(config.stem_channels * wm)
        self.stem = ConvBNAct(1, c, 3, 2, act="hardswish")
        blocks = []
        for kernel, expand, out, se, act, stride in config.blocks:
            e, o = _divisible(expand * wm), _divisible(out * wm)
            blocks.append(InvertedResidual(c, e, o, kernel, bool(se), act, stride, config.se_reduction))
            c = o
        self.blocks = nn.ModuleList(blocks)
        self.dim = _divisible(config.last_channels * wm)
        self.last = ConvBNAct(c, self.dim, 1, act="hardswish")
        self._stride = 2 ** (1 + sum(1 for b in config.blocks if b[5] == 2))

    @property
    def time_stride(self) -> int:
        return self._stride

    @property
    def num_layers(self) -> int:
        return 1

    def output_size(self) -> int:
        return self.dim

    def output_lengths(self, frame_lengths: Tensor) -> Tensor:
        n = self.stem.out_lengths(frame_lengths.long())
        for b in self.blocks:
            n = b.depthwise.out_lengths(n)
        return n

    def forward(self, fbank: Tensor, frame_lengths: Tensor) -> StudentOutput:
        x, n = self.stem(fbank[:, None], frame_lengths.long())  # [B, C, T/2, 64]
        for block in self.blocks:
            x, n = block(x, n)
        x, n = self.last(x, n)
        return StudentOutput(layers=[FeatureMap(x, n).frames()], lengths=n)

