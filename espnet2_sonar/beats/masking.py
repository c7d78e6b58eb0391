"""Patch masking for BEATs pre-training: draw masks, keep the visible patches.

A mask lives on the full patch grid: BoolTensor[B, N], True = masked, N = the batch's
largest valid patch count. Masked patches are dropped before the transformer (BEATs
style); the visible ones keep their time order.
"""

from dataclasses import dataclass

import torch

from espnet2_sonar.nn.masks import valid_mask


def valid_patches(num_patches: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """BoolTensor[B, N]: True at the first ``num_patches[b]`` positions of each row."""
    n = int(num_patches.max()) if n is None else n
    return valid_mask(num_patches, n)


def make_mask(num_patches: torch.Tensor, mask_prob: float, generator: torch.Generator) -> torch.Tensor:
    """Mask round(mask_prob * valid) of each item's valid patches, uniformly at random.

    At least one valid patch of every item stays visible. Randomness comes only from
    ``generator`` (drawn on its device), so equal seeds give equal masks.

    Args:
        num_patches: LongTensor[B], valid patches per item (full grid).
        mask_prob: share of valid patches to mask, in [0, 1).
        generator: the source of randomness.
    Returns:
        BoolTensor[B, N] on ``num_patches.device``, N = num_patches.max(); pads are False.
    """
    if not 0.0 <= mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
    num_patches = num_patches.long()
    bsz, n = num_patches.shape[0], int(num_patches.max()) if num_patches.numel() else 0
    valid = valid_patches(num_patches.to(generator.device), n)
    noise = torch.rand(bsz, n, generator=generator, device=generator.device)
    noise = noise.masked_fill(~valid, 2.0)  # pads rank last
    rank = noise.argsort(dim=1).argsort(dim=1)
    count = torch.round(mask_prob * num_patches.to(generator.device).double()).long()
    count = torch.minimum(count, (num_patches.to(generator.device) - 1).clamp(min=0))
    return (rank < count[:, None]).to(num_patches.device)


@dataclass
class VisiblePatches:
    """Where the visible patches of a masked batch sit.

    index: LongTensor[B, N'], full-grid position of each kept patch in time order; -1 at pads.
    padding_mask: BoolTensor[B, N'], True at pads (N' = most visible patches of any item).
    """

    index: torch.Tensor
    padding_mask: torch.Tensor


def visible_patches(mask: torch.Tensor, num_patches: torch.Tensor) -> VisiblePatches:
    """Positions of the valid, unmasked patches. mask [B, N] (True = masked), num_patches [B]."""
    n = mask.shape[1]
    keep = valid_patches(num_patches, n) & ~mask
    positions = torch.arange(n, device=mask.device).expand_as(mask)
    order = torch.where(keep, positions, positions + n).argsort(dim=1)  # kept first, in order
    count = keep.sum(dim=1)
    width = max(int(count.max()) if count.numel() else 0, 1)
    index = order[:, :width]
    padding_mask = torch.arange(width, device=mask.device)[None, :] >= count[:, None]
    return VisiblePatches(index=index.masked_fill(padding_mask, -1), padding_mask=padding_mask)


def gather_patches(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, C], index [B, N'] (-1 = pad, read as position 0) -> [B, N', C]."""
    return torch.gather(x, 1, index.clamp(min=0)[..., None].expand(-1, -1, x.shape[-1]))
