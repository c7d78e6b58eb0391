"""BEATs tokenizer training loss: distil a teacher's last layer through the codebook.

    L = mean over valid positions of (1 - cos(teacher_last, estimate))
        + commitment_weight * commitment_loss            (beta is inside commitment_loss)

The codebook itself moves by EMA (no gradient), so the VQ term is the commitment term
only. ``TokenizerObjective`` bundles a tokenizer with a frozen teacher encoder.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer, TokenizerOutput


@dataclass
class TokenizerLoss:
    """Terms of the tokenizer loss (scalars).

    loss: total, with gradient.
    cosine: mean (1 - cos) between teacher and estimate over valid positions.
    commitment: the codebook's commitment loss (beta included).
    num_positions: number of valid positions averaged over (long).
    """

    loss: torch.Tensor
    cosine: torch.Tensor
    commitment: torch.Tensor
    num_positions: torch.Tensor


def tokenizer_loss(
    output: TokenizerOutput,
    teacher_last: torch.Tensor,
    teacher_padding_mask: Optional[torch.Tensor] = None,
    commitment_weight: float = 1.0,
) -> TokenizerLoss:
    """Loss of one tokenizer training step.

    Args:
        output: the tokenizer's training forward (needs an estimator).
        teacher_last: [B, N, D_t] the teacher's last layer on the same patch grid.
        teacher_padding_mask: Bool[B, N] (True = pad) of the teacher; positions padded on
            either side are excluded.
        commitment_weight: multiplier of the commitment term.
    """
    if output.estimate is None:
        raise ValueError("the tokenizer has no estimator (estimator_layers=0); it cannot be trained")
    if teacher_last.shape != output.estimate.shape:
        raise ValueError(
            f"teacher last layer {tuple(teacher_last.shape)} does not match the estimate "
            f"{tuple(output.estimate.shape)}: same patch grid and target_dim = teacher width are needed"
        )
    valid = ~output.padding_mask
    if teacher_padding_mask is not None:
        valid = valid & ~teacher_padding_mask.to(valid.device)
    cos = F.cosine_similarity(output.estimate.float(), teacher_last.detach().float(), dim=-1)  # [B, N]
    count = valid.sum()
    cosine = ((1.0 - cos) * valid).sum() / count.clamp(min=1)
    commitment = output.commitment_loss
    return TokenizerLoss(
        loss=cosine + commitment_weight * commitment,
        cosine=cosine,
        commitment=commitment,
        num_positions=count,
    )


class TokenizerObjective(nn.Module):
    """Tokenizer + frozen teacher encoder -> ``TokenizerLoss``.

    Args:
        tokenizer: the ``BeatsTokenizer`` being trained.
        teacher: a ``BeatsEncoder`` (or anything with ``encode(wavs, lengths)`` returning
            ``layers`` and ``padding_mask``); frozen and always in eval mode.
        commitment_weight: multiplier of the commitment term.
    """

    def __init__(self, tokenizer: BeatsTokenizer, teacher: nn.Module, commitment_weight: float = 1.0):
        super().__init__()
        self.tokenizer = tokenizer
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.commitment_weight = float(commitment_weight)

    def train(self, mode: bool = True) -> "TokenizerObjective":
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, wavs: torch.Tensor, lengths: torch.Tensor, replay_mask: Optional[torch.Tensor] = None
    ) -> TokenizerLoss:
        """wavs [B, T], lengths [B] (replay_mask Bool[B] for an online codebook)."""
        with torch.no_grad():
            t = self.teacher.encode(wavs, lengths)
        out = self.tokenizer(wavs, lengths, replay_mask)
        return tokenizer_loss(out, t.layers[-1], t.padding_mask, self.commitment_weight)
