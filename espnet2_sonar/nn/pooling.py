"""Masked mean pooling over a padded axis."""

from typing import List

import torch
from torch import Tensor

from espnet2_sonar.nn.masks import valid_mask


def masked_mean(x: Tensor, lengths: Tensor, dim: int = 1) -> Tensor:
    """Mean of ``x`` over the first ``lengths[b]`` positions of axis ``dim``.

    Args:
        x: Tensor[B, ..., N, ...] with the padded axis N at ``dim`` (>= 1).
        lengths: integer Tensor[B] on ``x.device``; a 0 counts as 1 (the mean is then 0).
    Returns:
        ``x`` with axis ``dim`` removed, dtype of ``x``.
    """
    shape = [1] * x.dim()
    shape[0], shape[dim] = x.shape[0], x.shape[dim]
    valid = valid_mask(lengths, x.shape[dim]).view(shape).to(x.dtype)
    count = lengths.clamp(min=1).to(x.dtype).view([x.shape[0]] + [1] * (x.dim() - 2))
    return (x * valid).sum(dim=dim) / count


def pool_layers(layers: List[Tensor], valid_patches: Tensor) -> Tensor:
    """Mean of each layer over the valid patches.

    Args:
        layers: L+1 tensors [B, N, D] (patches time-major).
        valid_patches: [B] number of valid patches of each item (>= 1).
    Returns:
        [B, L+1, D] float32.
    """
    stacked = torch.stack(layers, dim=1).float()  # [B, L+1, N, D]
    return masked_mean(stacked, valid_patches.to(stacked.device), dim=2)
