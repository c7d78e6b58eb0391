"""``FrozenExtractor``: the interface frozen evaluation, sampling and PACE read encoders through.

Every encoder family that can be probed, embedded or compared for drift inherits it (BEATs,
DECAR's EfficientNet, S-SONDO students, pretrained teachers, the log-mel floor), so callers
decide with ``isinstance(module, FrozenExtractor)`` instead of probing for methods. It is an
``abc.ABC`` mixin: ``class MyEncoder(nn.Module, FrozenExtractor)``; a subclass that leaves a
method out cannot be instantiated.
"""

import abc
from typing import List

from torch import Tensor


class FrozenExtractor(abc.ABC):
    """Hidden states of a frozen encoder and how many positions of each are valid."""

    @abc.abstractmethod
    def extract_layers(self, wavs: Tensor, lengths: Tensor) -> List[Tensor]:
        """Waveforms [B, T] (16 kHz, [-1, 1]) with valid samples [B] -> hidden states, each
        [B, N, D_l] (one N for every layer of a call; the width D_l may differ per layer)."""

    @abc.abstractmethod
    def patch_lengths(self, lengths: Tensor) -> Tensor:
        """Valid samples [B] -> valid positions along N of ``extract_layers``' states, LongTensor[B]."""
