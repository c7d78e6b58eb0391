"""FrameTeacher: what a frozen frame-level teacher gives (features on a fixed frame grid)."""

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor, nn

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor


@dataclass
class TeacherFrames:
    """Frame features of a batch.

    layers: per teacher layer, [B, T', D] float32 (frames past ``lengths`` are zero).
    lengths: LongTensor[B], valid frames per item.
    frame_shift: samples between frames (160 = 10 ms at 16 kHz).
    """

    layers: List[Tensor]
    lengths: Tensor
    frame_shift: int

    @property
    def last(self) -> Tensor:
        """[B, T', D]: the layer that base pre-training regresses."""
        return self.layers[-1]


class FrameTeacher(nn.Module, FrozenExtractor):
    """A frozen teacher: waveforms [B, T] (16 kHz, [-1, 1]) -> ``TeacherFrames``.

    It also has the frozen-evaluation interface of the probes (``extract_layers``,
    ``patch_lengths``), so it can be probed as a reference row.
    """

    name: str = ""
    output_dim: int = 0

    def frames(self, wavs: Tensor, lengths: Tensor) -> TeacherFrames:  # pragma: no cover - abstract
        raise NotImplementedError

    def extract_layers(self, wavs: Tensor, lengths: Tensor) -> List[Tensor]:
        return self.frames(wavs, lengths).layers

    def patch_lengths(self, lengths: Tensor) -> Tensor:
        return self.num_frames(lengths).clamp(min=1)

    def num_frames(self, lengths: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, mode: bool = True) -> "FrameTeacher":
        return super().train(False)  # frozen: always in eval mode

    def forward(self, wavs: Tensor, lengths: Tensor) -> TeacherFrames:
        with torch.no_grad():
            return self.frames(wavs, lengths)
