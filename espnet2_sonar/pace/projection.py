"""Subspace-orthogonal LoRA: keep new adapters off the input directions old sessions used.

For a LoRA linear with inputs x, the adapter changes the output by (alpha / r) B A x. If every
row of A is orthogonal to a subspace U, old inputs lying in U see no change whatever B is.
So, per LoRA module:

1. after each session, the inputs X [tokens, in] that the session's training data produce in
   the *unlearned* model (the model before the next session adapts it) are accumulated into
   the uncentred covariance C += X^T X (float64);
2. the protected subspace U [in, k] is the top eigenvectors of C with the smallest k whose
   eigenvalues hold a share ``rho_svd`` of the total (energy ratio; eigenvalues of C are the
   squared singular values of X);
3. a new session's A starts projected, A <- A (I - U U^T), and its gradient is projected the
   same way after every backward pass. With SGD (momentum and weight decay included) every
   update is then a combination of projected vectors, so A stays orthogonal to U exactly.
"""

from dataclasses import dataclass
from typing import Dict, Iterable, Optional

import torch
from torch import Tensor

from espnet2_sonar.pace.lora import LoRALinear
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class ProjectionConfig(StrictConfig):
    """Protected-subspace selection."""

    rho_svd: float = 0.99
    """Energy ratio: the protected subspace keeps this share of the covariance's eigenvalue sum."""
    max_rank_fraction: float = 0.9
    """At most this share of the input dimensions is protected (leaves room to learn)."""

    def __post_init__(self):
        if not 0.0 < self.rho_svd <= 1.0:
            raise ValueError(f"rho_svd must be in (0, 1], got {self.rho_svd}")
        if not 0.0 < self.max_rank_fraction <= 1.0:
            raise ValueError(f"max_rank_fraction must be in (0, 1], got {self.max_rank_fraction}")


def protected_basis(cov: Tensor, rho: float, max_rank: Optional[int] = None) -> Tensor:
    """Orthonormal basis [d, k] of the top eigenvectors of ``cov`` [d, d] holding a share ``rho``
    of the eigenvalue sum (k >= 1 unless cov is zero; at most ``max_rank``)."""
    evals, evecs = torch.linalg.eigh(cov.double())  # ascending
    evals = evals.flip(0).clamp(min=0)
    evecs = evecs.flip(1)
    total = float(evals.sum())
    if total <= 0:
        return evecs[:, :0]
    share = torch.cumsum(evals, 0) / total
    k = int(torch.searchsorted(share, torch.tensor(rho, dtype=share.dtype) - 1e-12)) + 1
    k = min(k, cov.shape[0], max_rank if max_rank is not None else cov.shape[0])
    return evecs[:, :k]


def project_out(m: Tensor, basis: Tensor) -> Tensor:
    """Remove the components of the rows of m [r, d] along the columns of basis [d, k]."""
    if basis.shape[1] == 0:
        return m
    b = basis.to(m.dtype)
    return m - (m @ b) @ b.T


class SubspaceProtector:
    """Accumulated input covariances and protected bases of a set of LoRA modules."""

    def __init__(self, config: ProjectionConfig):
        self.config = config
        self.cov: Dict[str, Tensor] = {}
        self.basis: Dict[str, Tensor] = {}

    def accumulate_(self, name: str, x: Tensor) -> None:
        """Add inputs x [tokens, in] to module ``name``'s uncentred covariance."""
        x = x.detach().double().cpu()
        c = x.T @ x
        self.cov[name] = self.cov[name] + c if name in self.cov else c

    def update_bases_(self) -> Dict[str, int]:
        """Recompute every protected basis from its covariance; returns the ranks."""
        for name, cov in self.cov.items():
            max_rank = max(0, int(self.config.max_rank_fraction * cov.shape[0]))
            self.basis[name] = protected_basis(cov, self.config.rho_svd, max_rank)
        return {name: int(b.shape[1]) for name, b in self.basis.items()}

    @torch.no_grad()
    def project_init_(self, modules: Dict[str, LoRALinear]) -> None:
        """Project the newest A of every protected module onto the free subspace."""
        for name, m in modules.items():
            if name in self.basis:
                a, _ = m.current()
                a.copy_(project_out(a, self.basis[name].to(a.device)))

    @torch.no_grad()
    def project_params_(self, modules: Dict[str, LoRALinear]) -> None:
        """Re-project the newest A after an optimiser step (exact for SGD already; needed for
        optimisers whose update is not a combination of the gradients, such as Adam)."""
        self.project_init_(modules)

    @torch.no_grad()
    def project_grads_(self, modules: Dict[str, LoRALinear]) -> None:
        """Project the gradient of the newest A of every protected module (call after backward)."""
        for name, m in modules.items():
            a, _ = m.current()
            if name in self.basis and a.grad is not None:
                a.grad.copy_(project_out(a.grad, self.basis[name].to(a.device)))


def capture_inputs(modules: Dict[str, LoRALinear], on: bool, token_mask: Optional[Tensor] = None) -> None:
    """Start (``on``) or stop recording the inputs of ``modules``; ``token_mask`` [B, N] selects rows."""
    for m in modules.values():
        m.capture = [] if on else None
        m.token_mask = token_mask if on else None


def set_token_mask(modules: Iterable[LoRALinear], token_mask: Optional[Tensor]) -> None:
    """Valid-token mask [B, N] for the next captured forward."""
    for m in modules:
        m.token_mask = token_mask
