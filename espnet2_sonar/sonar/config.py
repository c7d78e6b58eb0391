"""SonarModel configuration: every SONAR constant lives here (DESIGN.md, "SONAR")."""

from dataclasses import dataclass, field
from typing import List, Optional

from espnet2_sonar.utils.config import StrictConfig
from espnet2_sonar.utils.precision import PRECISIONS


@dataclass
class SonarConfig(StrictConfig):
    """Loss composition and masking of SonarModel.

    DCP (direct continual pre-training) is this config with ``lambda_tok = 0``,
    ``lambda_model = 0``, no replay data and a frozen tokenizer.
    """

    lambda_tok: float = 1.0
    """Weight of the tokenizer-level distillation L_tok (CE against the frozen T0's codes)."""
    lambda_model: float = 1.0
    """Weight of the model-level distillation L_model (1 - cos to the frozen M0's layers)."""
    distill_layers: List[int] = field(default_factory=lambda: [-1])
    """Layers l of M / M0 used in L_model; indices into ``EncoderOutput.layers``
    (0 = input to layer 1, -1 = final output)."""
    teacher_input: str = "visible"
    """What M0 sees: ``visible`` (the same visible patches as the student, default: a direct
    constraint that M keeps M0's function on the inputs it trains on, at 25% of a full
    forward) or ``full`` (the unmasked input; its visible positions are compared)."""
    mask_prob: float = 0.75
    """Share of each item's valid patches that is masked (BEATs: 75%)."""
    seed: int = 0
    """Seed of the masking generator; the mask of step t is drawn from seed and t, so a
    resumed run draws the same masks as an uninterrupted one."""
    head_old_init: str = "copy"
    """How head_old starts when built: ``copy`` head_new's weights at build time, or ``random``."""
    frozen_precision: Optional[str] = None
    """Precision of the frozen forwards in a step (the tokenizer giving T's and T0's codes,
    the teacher M0): ``fp32``, ``bf16`` or ``fp16`` (``utils.precision``), or None to follow
    the step (autocast under ``--use_amp``, else fp32). T's and T0's codes always come from
    one tokenizer forward, so they share numerics; the codebook search itself is fp32."""

    def __post_init__(self):
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.teacher_input not in ("visible", "full"):
            raise ValueError(f"teacher_input must be 'visible' or 'full', got {self.teacher_input!r}")
        if self.head_old_init not in ("copy", "random"):
            raise ValueError(f"head_old_init must be 'copy' or 'random', got {self.head_old_init!r}")
        if self.frozen_precision is not None and self.frozen_precision not in PRECISIONS:
            raise ValueError(f"frozen_precision must be one of {PRECISIONS} or null, got {self.frozen_precision!r}")
        if self.lambda_tok < 0 or self.lambda_model < 0:
            raise ValueError("lambda_tok and lambda_model must be >= 0")
        self.distill_layers = [int(i) for i in self.distill_layers]


