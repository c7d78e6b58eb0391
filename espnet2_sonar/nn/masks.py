"""Lengths -> boolean masks over a padded axis."""

import torch
from torch import Tensor


def valid_mask(lengths: Tensor, n: int) -> Tensor:
    """BoolTensor[B, n] on ``lengths.device``: True at the first ``lengths[b]`` positions of row b.

    Args:
        lengths: integer Tensor[B], valid positions per item.
        n: size of the padded axis.
    """
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]
