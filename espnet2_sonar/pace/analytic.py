"""RanPAC-style analytic classifier: frozen random features + recursive ridge regression.

    h = pooled backbone feature [D] -> (h - mu) / ||h - mu||  (optional)
    z = act(h P),  P ~ N(0, 1)^{D x M} fixed by a seed        (``RandomFeatures``)
    R = (Z^T Z + gamma I)^-1,  Q = Z^T Y,  W = R Q,  scores = z W   (``AnalyticClassifier``)

over all items seen so far (Y one-hot). ``AnalyticClassifier.update_`` folds a session's
rows into R with the Woodbury identity, chunk by chunk,

    R <- R - R Z_c^T (I + Z_c R Z_c^T)^-1 Z_c R,      Q <- Q + Z_c^T Y_c,

which equals the batch solution on all rows at once whatever the split into sessions
(exemplar-free: old rows are never needed again). New classes append zero columns to Q.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from espnet2_sonar.utils.config import StrictConfig


@dataclass
class AnalyticConfig(StrictConfig):
    """Random features and ridge of the analytic classifier."""

    proj_dim: int = 2048
    """M, random-projection width (8192 in the paper for 768-d features)."""
    gamma: float = 10.0
    """Ridge regulariser in R = (Z^T Z + gamma I)^-1."""
    activation: str = "relu"
    """Nonlinearity after the projection: relu or linear."""
    normalize: bool = True
    """Centre (first-session mean) and L2-normalise features before projecting."""
    chunk_size: int = 512
    """Rows per Woodbury step (the inverted matrix is chunk x chunk)."""

    def __post_init__(self):
        if self.proj_dim < 1 or self.gamma <= 0 or self.chunk_size < 1:
            raise ValueError(f"invalid analytic config: {self}")
        if self.activation not in ("relu", "linear"):
            raise ValueError(f"activation must be relu or linear, got {self.activation!r}")


class RandomFeatures:
    """Fixed random projection with a nonlinearity: [n, D] -> [n, M] float64.

    The centring mean is set once (``fit_center_``, from the first session's training
    features) and then frozen, so later sessions see the same map.
    """

    def __init__(self, dim: int, config: AnalyticConfig, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.config = config
        self.weight = torch.randn(dim, config.proj_dim, generator=gen, dtype=torch.float64)
        self.center = torch.zeros(dim, dtype=torch.float64)

    def fit_center_(self, x: Tensor) -> None:
        """Set the centring mean from features [n, D] (only used with ``normalize``)."""
        self.center = x.double().mean(dim=0)

    def __call__(self, x: Tensor) -> Tensor:
        x = x.double()
        if self.config.normalize:
            x = x - self.center
            x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
        z = x @ self.weight
        return torch.relu(z) if self.config.activation == "relu" else z


class AnalyticClassifier:
    """Ridge regression onto one-hot targets, updated recursively (see module docstring).

    Args:
        dim: M, width of the (random) features.
        gamma: ridge regulariser.
        chunk_size: rows per Woodbury step.
        dtype: float64 by default (the recursion accumulates rounding in float32).
    """

    def __init__(self, dim: int, gamma: float = 1.0, chunk_size: int = 512, dtype: torch.dtype = torch.float64):
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.dim = dim
        self.gamma = gamma
        self.chunk_size = chunk_size
        self.dtype = dtype
        self.R = torch.eye(dim, dtype=dtype) / gamma  # [M, M]
        self.Q = torch.zeros(dim, 0, dtype=dtype)  # [M, C]
        self.num_seen = 0

    @property
    def num_classes(self) -> int:
        return self.Q.shape[1]

    def update_(self, z: Tensor, labels: Tensor, num_classes: Optional[int] = None) -> None:
        """Fold rows z [n, M] with class ids labels [n] into R and Q.

        ``num_classes`` (default: max(current, labels.max() + 1)) grows Q with zero columns.
        """
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must be [n, {self.dim}], got {tuple(z.shape)}")
        if labels.shape != (z.shape[0],):
            raise ValueError(f"labels must be [{z.shape[0]}], got {tuple(labels.shape)}")
        needed = int(labels.max()) + 1 if labels.numel() else 0
        c = max(self.num_classes, needed, num_classes or 0)
        if c > self.num_classes:
            self.Q = torch.cat([self.Q, torch.zeros(self.dim, c - self.num_classes, dtype=self.dtype)], dim=1)
        z = z.to(self.dtype)
        y = torch.nn.functional.one_hot(labels.long(), c).to(self.dtype)
        for s in range(0, z.shape[0], self.chunk_size):
            zc, yc = z[s : s + self.chunk_size], y[s : s + self.chunk_size]
            rz = self.R @ zc.T  # [M, c]
            k = torch.eye(zc.shape[0], dtype=self.dtype) + zc @ rz  # [c, c], SPD
            chol = torch.linalg.cholesky(k)
            self.R = self.R - rz @ torch.cholesky_solve(rz.T, chol)
            self.R = 0.5 * (self.R + self.R.T)
            self.Q = self.Q + zc.T @ yc
        self.num_seen += z.shape[0]

    @property
    def weight(self) -> Tensor:
        """W = R Q: [M, C]."""
        return self.R @ self.Q

    def scores(self, z: Tensor, num_classes: Optional[int] = None) -> Tensor:
        """z [n, M] -> scores [n, C] (the first ``num_classes`` columns when given)."""
        w = self.weight if num_classes is None else self.R @ self.Q[:, :num_classes]
        return z.to(self.dtype) @ w


def ridge_solution(z: Tensor, labels: Tensor, num_classes: int, gamma: float) -> Tensor:
    """Batch reference: W = (Z^T Z + gamma I)^-1 Z^T Y, [M, C] (same dtype as z)."""
    y = torch.nn.functional.one_hot(labels.long(), num_classes).to(z.dtype)
    gram = z.T @ z + gamma * torch.eye(z.shape[1], dtype=z.dtype)
    return torch.linalg.solve(gram, z.T @ y)

