"""Target makers: the tokenizers that give SonarModel its per-patch codes.

A target maker turns waveforms into T's codes (the MAM targets) and, where one exists,
T0's codes (the tokenizer-level distillation targets). Implementations, in
``target_makers.py``:

- ``RandomProjectionTargets``: BEATs iter1 frozen random-projection quantizer (base
  pre-training from scratch; no T0).
- ``FrozenTokenizerTargets``: a frozen BEATs tokenizer (DCP; later BEATs iterations).
- ``EvolvingTokenizerTargets``: SONAR's tokenizer: the BEATs tokenizer's transformer is
  frozen and its codebook is an online clustered codebook that updates, re-anchors and
  grows during training; T0's codes come from a frozen copy of the initial codebook
  applied to the same features (one tokenizer forward serves both).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from torch import nn


@dataclass
class Targets:
    """Per-patch targets of one batch.

    Attributes:
        codes: LongTensor [B, N], T's codes on the encoder's patch grid (pads arbitrary).
        old_codes: LongTensor [B, N] or None, T0's codes.
        num_codes: live codebook size of T (logits are sliced to it).
        stats: scalars to log (codebook size, usage perplexity, dead codes, codes added).
    """

    codes: torch.Tensor
    old_codes: Optional[torch.Tensor]
    num_codes: int
    stats: Dict[str, torch.Tensor] = field(default_factory=dict)


class AbsTargetMaker(nn.Module, ABC):
    """Waveforms -> ``Targets``. Never trained by gradient; codebooks may evolve."""

    @property
    @abstractmethod
    def num_codes(self) -> int:
        """Live size of T's codebook."""

    @property
    def max_codes(self) -> int:
        """Largest size T's codebook may reach (heads are allocated at this size)."""
        return self.num_codes

    @property
    def old_num_codes(self) -> Optional[int]:
        """Size of T0's codebook, or None when there is no T0."""
        return None

    @abstractmethod
    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, is_replay: Optional[torch.Tensor]
    ) -> Targets:
        """Args: speech [B, T], speech_lengths [B], is_replay [B] bool or None."""
