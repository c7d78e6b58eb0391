"""Model-level distillation criteria (``--distill_criterion``): distance of student to teacher."""

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from espnet2_sonar.distill.losses import layer_cosine_distance


class AbsDistillCriterion(nn.Module, ABC):
    """Base of the ``--distill_criterion`` choices: a scalar distance of student to teacher."""

    @abstractmethod
    def forward(self, student: torch.Tensor, teacher: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        """student, teacher: [B, N, D]; select: [B, N] bool. Returns a scalar."""


class CosineDistance(AbsDistillCriterion):
    """Mean over selected positions of ``1 - cos(student, sg(teacher))`` (DESIGN.md L_model)."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        """student, teacher: [B, N, D]; select: [B, N] bool. Returns a scalar."""
        return layer_cosine_distance(student, teacher, select)


class MSEDistance(AbsDistillCriterion):
    """Mean over selected positions of the squared L2 distance per feature (ablation)."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        """student, teacher: [B, N, D]; select: [B, N] bool. Returns a scalar."""
        err = F.mse_loss(student.float(), teacher.detach().float(), reduction="none").mean(-1)
        sel = select.to(err.dtype)
        return (err * sel).sum() / sel.sum().clamp(min=1.0)
