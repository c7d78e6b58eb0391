"""Class-incremental classifiers on pooled features: a naive linear head and the analytic one.

Both grow with the classes and expose the same two calls:

    update_(features [n, D], labels [n], num_classes, generator)   # one session's training data
    scores(features [n, D], num_classes) -> [n, num_classes]

``LinearHead`` is naive sequential fine-tuning: a softmax linear layer trained with
cross-entropy on the current session's data only (no replay, no regulariser), so it
forgets. ``AnalyticHead`` is ``RandomFeatures`` + ``AnalyticClassifier`` (exemplar-free,
equal to ridge regression on every session's data).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from espnet2_sonar.pace.analytic import AnalyticClassifier, AnalyticConfig, RandomFeatures
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class LinearConfig(StrictConfig):
    """Naive sequential linear head."""

    lr: float = 0.01
    """Adam learning rate."""
    epochs: int = 30
    """Passes over each session's training data."""
    batch_size: int = 32
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.lr <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"invalid linear head config: {self}")


class LinearHead:
    """Softmax linear head on standardised features (first-session statistics, then fixed)."""

    def __init__(self, dim: int, config: LinearConfig):
        self.config = config
        self.dim = dim
        self.layer: nn.Linear | None = None
        self.mean = torch.zeros(dim)
        self.inv_std = torch.ones(dim)
        self.fitted_stats = False

    @property
    def num_classes(self) -> int:
        return 0 if self.layer is None else self.layer.out_features

    def _grow(self, num_classes: int) -> None:
        """Append zero-initialised rows for new classes (old rows kept)."""
        if num_classes <= self.num_classes:
            return
        new = nn.Linear(self.dim, num_classes)
        with torch.no_grad():
            new.weight.zero_()
            new.bias.zero_()
            if self.layer is not None:
                new.weight[: self.num_classes] = self.layer.weight
                new.bias[: self.num_classes] = self.layer.bias
        self.layer = new

    def _norm(self, x: Tensor) -> Tensor:
        return (x.float() - self.mean) * self.inv_std

    def update_(self, features: Tensor, labels: Tensor, num_classes: int, generator: torch.Generator) -> None:
        if not self.fitted_stats:
            self.mean = features.float().mean(dim=0)
            self.inv_std = 1.0 / (features.float().std(dim=0, unbiased=False) + 1e-5)
            self.fitted_stats = True
        self._grow(num_classes)
        x, y = self._norm(features), labels.long()
        optim = torch.optim.Adam(self.layer.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        for _ in range(self.config.epochs):
            order = torch.randperm(x.shape[0], generator=generator)
            for s in range(0, order.numel(), self.config.batch_size):
                b = order[s : s + self.config.batch_size]
                loss = F.cross_entropy(self.layer(x[b]), y[b])
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()

    @torch.no_grad()
    def scores(self, features: Tensor, num_classes: int) -> Tensor:
        if self.layer is None:
            raise RuntimeError("LinearHead.scores before any update_")
        return self.layer(self._norm(features))[:, :num_classes]


class AnalyticHead:
    """Random features + recursive ridge classifier (see ``analytic.py``)."""

    def __init__(self, dim: int, config: AnalyticConfig, seed: int):
        self.features = RandomFeatures(dim, config, seed)
        self.classifier = AnalyticClassifier(config.proj_dim, config.gamma, config.chunk_size)
        self.fitted_center = False

    def update_(self, features: Tensor, labels: Tensor, num_classes: int, generator: torch.Generator) -> None:
        if not self.fitted_center:
            self.features.fit_center_(features)
            self.fitted_center = True
        self.classifier.update_(self.features(features), labels, num_classes)

    @torch.no_grad()
    def scores(self, features: Tensor, num_classes: int) -> Tensor:
        return self.classifier.scores(self.features(features), num_classes).float()
