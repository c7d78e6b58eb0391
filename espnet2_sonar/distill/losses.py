"""Distillation and masked-prediction losses used by SONAR (DESIGN.md, "SONAR")."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class MaskedCEOutput:
    """Cross-entropy over selected positions.

    Attributes:
        loss: scalar, mean CE over selected positions (0 with a graph when none are selected).
        accuracy: scalar, top-1 accuracy over selected positions (no grad).
        count: scalar long, number of selected positions.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    count: torch.Tensor


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, select: torch.Tensor
) -> MaskedCEOutput:
    """CE of ``logits`` [B, N, K] against ``targets`` [B, N] where ``select`` [B, N] is True."""
    if logits.shape[:2] != targets.shape or targets.shape != select.shape:
        raise ValueError(
            f"shape mismatch: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, "
            f"select {tuple(select.shape)}"
        )
    picked_logits = logits[select]  # [M, K]
    picked_targets = targets[select]  # [M]
    count = select.sum()
    if picked_targets.numel() == 0:
        zero = logits.sum() * 0.0
        return MaskedCEOutput(zero, zero.detach(), count)
    loss = F.cross_entropy(picked_logits.float(), picked_targets)
    with torch.no_grad():
        accuracy = (picked_logits.argmax(-1) == picked_targets).float().mean()
    return MaskedCEOutput(loss, accuracy, count)


def layer_cosine_distance(
    student: torch.Tensor, teacher: torch.Tensor, select: torch.Tensor
) -> torch.Tensor:
    """Mean over selected positions of ``1 - cos(student, sg(teacher))``.

    Args:
        student: [B, N, D] student features (gradient flows).
        teacher: [B, N, D] teacher features (detached here).
        select: [B, N] bool, positions that count.
    Returns:
        scalar loss.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    cos = F.cosine_similarity(student.float(), teacher.detach().float(), dim=-1)  # [B, N]
    sel = select.to(cos.dtype)
    return ((1.0 - cos) * sel).sum() / sel.sum().clamp(min=1.0)
