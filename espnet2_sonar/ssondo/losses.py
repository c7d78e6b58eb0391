"""Embedding-matching losses of S-SONDO: per-item loss between mapped student and teacher.

Every loss maps ``student [B, D]``, ``teacher [B, D]`` to a per-item loss ``[B]`` (the
model averages it). ``cosine`` is S-SONDO's default (it beat the others there); ``mse``,
``l1`` and ``kl`` are the ablations.
"""

from abc import ABC, abstractmethod

import torch.nn.functional as F
from torch import Tensor, nn


class AbsEmbeddingLoss(nn.Module, ABC):
    """Per-item distance between student and teacher embeddings."""

    @abstractmethod
    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """student, teacher [B, D] -> loss [B] (0 when they agree)."""

    @staticmethod
    def check(student: Tensor, teacher: Tensor) -> None:
        if student.shape != teacher.shape or student.dim() != 2:
            raise ValueError(
                f"student and teacher embeddings must both be [B, D], got {tuple(student.shape)} "
                f"and {tuple(teacher.shape)}"
            )


class CosineLoss(AbsEmbeddingLoss):
    """1 - cos(student, teacher), in [0, 2]."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        self.check(student, teacher)
        return 1.0 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1, eps=self.eps)


class MSELoss(AbsEmbeddingLoss):
    """Mean squared error over dimensions."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        self.check(student, teacher)
        return (student - teacher.to(student.dtype)).pow(2).mean(dim=-1)


class L1Loss(AbsEmbeddingLoss):
    """Mean absolute error over dimensions."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        self.check(student, teacher)
        return (student - teacher.to(student.dtype)).abs().mean(dim=-1)


class KLLoss(AbsEmbeddingLoss):
    """KL(softmax(teacher / T) || softmax(student / T)) * T**2 over the embedding dimensions.

    Args:
        temperature: softening temperature T (> 0).
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        self.check(student, teacher)
        t = self.temperature
        log_p = F.log_softmax(teacher.to(student.dtype) / t, dim=-1)
        log_q = F.log_softmax(student / t, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1) * t * t


LOSSES = {"cosine": CosineLoss, "mse": MSELoss, "l1": L1Loss, "kl": KLLoss}
