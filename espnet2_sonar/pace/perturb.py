"""Boundary-aware time-frequency perturbations and the hinge regulariser.

1. Masked copies: each fbank gets ``num_time_masks`` bands of up to ``time_width`` frames and
   ``num_freq_masks`` bands of up to ``freq_width`` mel bins set to 0 (the normalised fbank's
   mean) inside its valid frames, by ``nn.specaug.SpecAugment`` with ``PerturbConfig.specaug()``
   and a passed generator.
2. Boundary set: each training clip gets ``num_copies`` (N_p) masked copies; a clip whose
   copies are misclassified by the current model at a rate above ``rho_p`` lies near a
   decision boundary.
3. Hinge loss on the clean features f (centred on the session's mean feature c, then
   L2-normalised; cosine distance d = 1 - cos): pull f toward its class mean and keep it
   ``margin`` further from the nearest boundary feature of another class,

       L = mean_i max(0, margin + d(f_i, mu_{y_i}) - min_{j in B, y_j != y_i} d(f_i, b_j)),

   with c, class means and boundary features fixed (detached) for the epoch. Centring
   matters: pooled transformer features share a large common component (all pairwise
   cosines near 1), which would make any margin unreachable.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from espnet2_sonar.nn.specaug import SpecAugmentConfig
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class PerturbConfig(StrictConfig):
    """Perturbations, boundary set and hinge regulariser."""

    num_copies: int = 4
    """N_p, masked copies per clip."""
    rho_p: float = 0.5
    """A clip is in the boundary set when more than this share of its copies is misclassified."""
    num_time_masks: int = 2
    time_width: int = 20
    """Largest time mask, frames (10 ms each)."""
    num_freq_masks: int = 2
    freq_width: int = 24
    """Largest frequency mask, mel bins (of 128)."""
    margin: float = 0.5
    """Hinge margin in cosine distance."""
    weight: float = 0.5
    """lambda: the hinge term's weight next to the cross-entropy."""

    def __post_init__(self):
        if self.num_copies < 1 or not 0.0 <= self.rho_p < 1.0 or self.weight < 0:
            raise ValueError(f"invalid perturbation config: {self}")
        self.specaug()  # raises on negative mask counts or widths

    def specaug(self) -> SpecAugmentConfig:
        """The masking of each copy: fixed-width bounds in frames and bins, fill 0."""
        return SpecAugmentConfig(
            freq_masks=self.num_freq_masks,
            freq_mask_width=self.freq_width,
            time_masks=self.num_time_masks,
            time_mask_width=self.time_width,
            time_mask_ratio=0.0,
        )


def boundary_mask(error_rate: Tensor, rho_p: float) -> Tensor:
    """BoolTensor[n]: items whose perturbed copies are misclassified at a rate above ``rho_p``."""
    return error_rate > rho_p


def hinge_loss(
    features: Tensor,
    labels: Tensor,
    class_means: Tensor,
    boundary_features: Tensor,
    boundary_labels: Tensor,
    margin: float,
    center: Optional[Tensor] = None,
) -> Tensor:
    """Boundary hinge loss (see module docstring).

    Args:
        features: [B, D] clean features (with gradients).
        labels: [B] class ids indexing ``class_means``.
        class_means: [C, D] (detached).
        boundary_features: [K, D] (detached); boundary_labels: [K].
        center: [D] subtracted from every feature first (None: no centring).
    Returns:
        scalar; 0 when there is no boundary item of another class.
    """
    if boundary_features.shape[0] == 0:
        return features.sum() * 0.0
    c = 0.0 if center is None else center
    f = F.normalize(features - c, dim=-1)
    mu = F.normalize(class_means - c, dim=-1)[labels]  # [B, D]
    pull = 1.0 - (f * mu).sum(-1)  # [B]
    dist = 1.0 - f @ F.normalize(boundary_features - c, dim=-1).T  # [B, K]
    other = labels[:, None] != boundary_labels[None, :]
    dist = dist.masked_fill(~other, float("inf"))
    push = dist.min(dim=1).values  # [B], inf when no boundary item of another class
    has = torch.isfinite(push)
    if not bool(has.any()):
        return features.sum() * 0.0
    return F.relu(margin + pull[has] - push[has]).mean()


def class_means(features: Tensor, labels: Tensor, num_classes: int, fallback: Optional[Tensor] = None) -> Tensor:
    """Mean feature of each class [C, D] (rows of absent classes: ``fallback`` rows or 0)."""
    out = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    out.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    out = out / counts.clamp(min=1)[:, None]
    if fallback is not None:
        out[counts == 0] = fallback[counts == 0]
    return out
