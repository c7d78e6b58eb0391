"""AbsStudent: the contract every S-SONDO student backbone fulfils.

A student maps the shared log-mel input (``StudentEncoder``'s frontend: normalised
128-bin Kaldi fbank, 10 ms frames) to a list of hidden-state sequences of equal width::

    fbank [B, F, 128], frame_lengths [B]  ->  StudentOutput(layers: K x [B, N, D], lengths [B])

``layers[-1]`` is the final representation; its mean over the valid steps is the
student's clip embedding (what the mapping head sees, and what the probe pools).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import List

from torch import Tensor, nn


@dataclass
class StudentOutput:
    """Hidden states of a student.

    layers: K tensors [B, N, D] (K >= 1, same D), zero past ``lengths``; last = final output.
    lengths: LongTensor[B], valid steps per item along N.
    """

    layers: List[Tensor]
    lengths: Tensor

    @property
    def last(self) -> Tensor:
        """The final hidden state [B, N, D]."""
        return self.layers[-1]


class AbsStudent(nn.Module, ABC):
    """A student backbone on log-mel frames (see the module docstring)."""

    @property
    @abstractmethod
    def time_stride(self) -> int:
        """Fbank frames (10 ms) per output step (at most: CNN lengths round up)."""

    @abstractmethod
    def output_size(self) -> int:
        """Width D of every hidden state."""

    @property
    @abstractmethod
    def num_layers(self) -> int:
        """Number K of hidden states returned."""

    @abstractmethod
    def output_lengths(self, frame_lengths: Tensor) -> Tensor:
        """Valid output steps [B] from valid fbank frames [B]."""

    @abstractmethod
    def forward(self, fbank: Tensor, frame_lengths: Tensor) -> StudentOutput:
        """fbank [B, F, 128] (zero past frame_lengths), frame_lengths [B] -> StudentOutput."""
