"""Typed configuration of the log-mel EfficientNet (DECAR's encoder) and its named architectures.

``b0`` is EfficientNet-B0 (Tan & Le 2019; 7 stages, 16 blocks, D = 1280) as DECAR uses it;
``tiny`` scales width by 0.25 and depth by 0.25 (7 blocks, D = 320) for CPU tests.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List

from espnet2_sonar.utils.config import StrictConfig

# expand ratio, kernel, stride, output channels, repeats (EfficientNet-B0)
B0_STAGES = [[1, 3, 1, 16, 1], [6, 3, 2, 24, 2], [6, 5, 2, 40, 2], [6, 3, 2, 80, 3],
             [6, 5, 1, 112, 3], [6, 5, 2, 192, 4], [6, 3, 1, 320, 1]]  # fmt: skip


@dataclass
class EfficientNetConfig(StrictConfig):
    """Architecture of :class:`EfficientNetEncoder`; unknown keys in ``from_dict`` are errors."""

    width_mult: float = 1.0
    """Channel multiplier (channels rounded to multiples of 8)."""
    depth_mult: float = 1.0
    """Block-count multiplier (repeats rounded up)."""
    stem_channels: int = 32
    """Stem output channels before width scaling."""
    head_channels: int = 1280
    """Head (output) size before width scaling."""
    stages: List[List[int]] = field(default_factory=lambda: [list(s) for s in B0_STAGES])
    """Per stage: [expand ratio, kernel, stride, channels, repeats] before scaling."""
    se_ratio: float = 0.25
    """Squeeze-excite bottleneck as a share of the block's input channels (0: none)."""
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    n_mels: int = 64
    """Log-mel bands of the input."""
    logmel_mean: float = -6.0
    logmel_std: float = 5.0

    def __post_init__(self):
        self.stages = [[int(v) for v in s] for s in self.stages]
        for s in self.stages:
            if len(s) != 5 or min(s) < 1 or s[1] % 2 == 0:
                raise ValueError(f"bad stage {s}: expected [expand>=1, odd kernel, stride, channels, repeats]")
        if self.width_mult <= 0 or self.depth_mult <= 0:
            raise ValueError("width_mult and depth_mult must be > 0")

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "EfficientNetConfig":
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown EfficientNet architecture {name!r}; known: {sorted(ARCHITECTURES)}")
        return cls.from_dict({**ARCHITECTURES[name], **overrides})

    def channels(self, c: int) -> int:
        """Width-scaled channel count, a multiple of 8 not below 90% of the exact value."""
        c = c * self.width_mult
        out = max(8, int(c + 4) // 8 * 8)
        return out + 8 if out < 0.9 * c else out

    def repeats(self, r: int) -> int:
        return int(math.ceil(r * self.depth_mult))


ARCHITECTURES: Dict[str, Dict[str, Any]] = {
    "b0": {},
    "tiny": {"width_mult": 0.25, "depth_mult": 0.25},
}
