"""Linear CKA between two models' layers, and the LoRA depth it selects.

    CKA(X, Y) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F),   X_c = X - mean(X)

for X [n, d1], Y [n, d2] (the same n inputs through two models). After a short full
fine-tune, the layers whose representation stays close to the pretrained one (CKA >=
``threshold``) are kept frozen; LoRA goes only on layers deeper than the first layer whose
CKA drops below ``threshold`` (0.94 in PACE).
"""

from dataclasses import dataclass
from typing import List, Sequence

import torch
from torch import Tensor


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of x [n, d1] and y [n, d2] (n >= 2) in [0, 1]."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"linear_cka needs [n, d] inputs with the same n >= 2, got {tuple(x.shape)}, {tuple(y.shape)}")
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    num = (y.T @ x).pow(2).sum()
    den = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(num / den) if float(den) > 0 else 0.0


@dataclass
class DepthSelection:
    """Which layers get LoRA."""

    cka: List[float]
    """CKA of each layer's output (layer 1..L) between the fine-tuned and the pretrained model."""
    first_below: int
    """1-based first layer with CKA < threshold (0 if none)."""
    lora_layers: List[int]
    """0-based indices of the adapted layers."""


def select_lora_layers(cka: Sequence[float], threshold: float = 0.94, min_layers: int = 1) -> DepthSelection:
    """LoRA on layers deeper than the first layer (1-based l*) with CKA < threshold.

    Layers l*+1..L get adapters (0-based l*..L-1); when that leaves fewer than ``min_layers``
    (no layer below the threshold, or only the last), the ``min_layers`` deepest are adapted.
    """
    num = len(cka)
    first = next((i + 1 for i, c in enumerate(cka) if c < threshold), 0)
    start = first if first else num  # 0-based index of the first adapted layer
    start = min(start, num - min(min_layers, num))
    return DepthSelection(cka=[float(c) for c in cka], first_below=first, lora_layers=list(range(start, num)))


def layerwise_cka(a: Sequence[Tensor], b: Sequence[Tensor]) -> List[float]:
    """CKA of each pair of layer features a[i], b[i] ([n, d])."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} layers vs {len(b)}")
    return [linear_cka(x, y) for x, y in zip(a, b)]
