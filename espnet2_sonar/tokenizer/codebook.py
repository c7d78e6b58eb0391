"""NormEMA vector quantizer: the BEATs tokenizer's L2-normalised EMA codebook.

Semantics follow the official ``NormEMAVectorQuantizer`` (microsoft/unilm
``beats/quantizer.py``), with these deliberate differences:

* eval mode has no side effects (the official one EMA-updates ``cluster_size`` in eval);
* EMA statistics come only from non-padded positions;
* a code unused in a batch keeps its vector bit-exact (the official one renormalises it);
* k-means init runs faiss spherical k-means, seeded, only in training mode;
* the distributed reduction is injected (``all_reduce`` / ``broadcast``), default identity.

State lives in buffers under the official state-dict names, so a tokenizer checkpoint
uses them unchanged::

    embedding.weight        [K, d]  unit code vectors (the only tensor the math reads)
    embedding.cluster_size  [K]     k-means cluster sizes at init (format parity)
    embedding.embed_avg     [K, d]  kept for format parity; not used by the NormEMA math
    embedding.initted       [1]     1.0 once the codebook is initialised
    cluster_size            [K]     EMA of per-batch code counts (usage statistics)
"""

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from espnet2_sonar.nn.kmeans import kmeans

Collective = Callable[[torch.Tensor], torch.Tensor]

PAD_CODE = -100
"""Code written at padded positions (the default ``ignore_index`` of torch's CE)."""


def identity(t: torch.Tensor) -> torch.Tensor:
    """Single-process reduction / broadcast: returns ``t`` unchanged."""
    return t


def torch_all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``all_reduce`` for torch.distributed (sum over ranks, in place); returns ``t``."""
    dist.all_reduce(t)
    return t


def torch_broadcast_rank0(t: torch.Tensor) -> torch.Tensor:
    """``broadcast`` for torch.distributed (rank 0's tensor to all ranks); returns ``t``."""
    dist.broadcast(t, src=0)
    return t


def l2norm(t: torch.Tensor) -> torch.Tensor:
    return F.normalize(t, p=2, dim=-1)


def codebook_kmeans(
    features: torch.Tensor, num_codes: int, *, seed: int, iters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine k-means of features [M, d] into exactly ``num_codes`` codes (``k_policy="exact"``).

    Returns:
        centroids: float32 [K, d], unit norm; counts: int64 [K] (points nearest each
        centroid), both on the features' device.
    """
    unit = l2norm(features.detach().float()).cpu()
    km = kmeans(unit.numpy(), num_codes, k_policy="exact", seed=seed, niter=iters, spherical=True)
    return torch.from_numpy(km.centroids).to(features.device), torch.from_numpy(km.sizes).to(features.device)


@dataclass
class QuantizerOutput:
    """Result of quantizing one batch.

    Attributes:
        quantized: [B, N, d] unit code vectors with straight-through gradient to the
            (normalised) input.
        codes: LongTensor [B, N]; ``PAD_CODE`` at padded positions.
        commitment_loss: scalar, ``beta * mean ||sg(q) - z||^2 / d`` over valid positions.
        counts: float [K], codes per code in this batch over valid positions (summed over
            ranks in training mode; local in eval). K is the size before any expansion
            done by this step.
        added: codes appended to the codebook by this step (online codebook only).
        reanchored: dead codes moved toward batch anchors by this step (online codebook only).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    counts: torch.Tensor
    added: int = 0
    reanchored: int = 0


@dataclass
class StepStats:
    """What one training-mode update did.

    Attributes:
        counts: float [K], per-code counts of the batch summed over ranks.
        added: codes appended (online codebook expansion).
        reanchored: dead codes moved toward anchors (online codebook).
    """

    counts: torch.Tensor
    added: int = 0
    reanchored: int = 0


class CodebookEmbedding(nn.Module):
    """Holder of the ``embedding.*`` buffers (official key names); no logic of its own."""

    def __init__(self, num_codes: int, dim: int, kmeans_init: bool, generator: torch.Generator):
        super().__init__()
        if kmeans_init:
            weight = torch.zeros(num_codes, dim)
        else:
            weight = l2norm(torch.randn(num_codes, dim, generator=generator))
        self.register_buffer("weight", weight)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_avg", weight.clone())
        self.register_buffer("initted", torch.tensor([float(not kmeans_init)]))


class NormEMACodebook(nn.Module):
    """L2-normalised codebook updated by normalised EMA (BEATs tokenizer quantizer).

    Args:
        num_codes: K.
        dim: d, code dimension.
        decay: EMA decay of code vectors and usage counts (BEATs: 0.99).
        beta: weight of the commitment loss (BEATs: 1.0).
        eps: official quantizer's smoothing constant; kept for config parity, not read
            by the NormEMA math.
        kmeans_init: initialise codes by k-means on the first training batch; otherwise
            random unit vectors drawn from ``seed`` at construction.
        seed: seed of the k-means and of the random init.
        kmeans_iters: Lloyd iterations of the init k-means.
        all_reduce: sums a tensor over ranks and returns it (default: identity).
        broadcast: returns rank 0's copy of a tensor (default: identity).
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        decay: float = 0.99,
        beta: float = 1.0,
        eps: float = 1e-5,
        kmeans_init: bool = True,
        *,
        seed: int = 0,
        kmeans_iters: int = 10,
        all_reduce: Collective = identity,
        broadcast: Collective = identity,
    ):
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError(f"num_codes and dim must be >= 1, got {num_codes}, {dim}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.beta = float(beta)
        self.eps = float(eps)
        self.seed = int(seed)
        self.kmeans_iters = int(kmeans_iters)
        self.all_reduce = all_reduce
        self.broadcast = broadcast
        g = torch.Generator().manual_seed(self.seed)
        self.embedding = CodebookEmbedding(num_codes, dim, kmeans_init, g)
        self.register_buffer("cluster_size", torch.zeros(num_codes))

    # ------------------------------------------------------------------ properties
    @property
    def num_codes(self) -> int:
        return int(self.embedding.weight.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embedding.weight.shape[1])

    @property
    def weight(self) -> torch.Tensor:
        """[K, d] unit code vectors."""
        return self.embedding.weight

    @property
    def initted(self) -> bool:
        return bool(self.embedding.initted.item() > 0)

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}, decay={self.decay}, beta={self.beta}"

    # ------------------------------------------------------------------ state changes
    def set_distributed_(self, all_reduce: Collective, broadcast: Collective) -> None:
        """Inject the collectives (e.g. ``torch_all_reduce_sum``, ``torch_broadcast_rank0``)."""
        self.all_reduce = all_reduce
        self.broadcast = broadcast

    @torch.no_grad()
    def init_codes_(self, features: torch.Tensor) -> None:
        """k-means-initialise the codebook from features [M, d]; rank 0's result wins."""
        centroids, counts = codebook_kmeans(features, self.num_codes, seed=self.seed, iters=self.kmeans_iters)
        centroids = self.broadcast(centroids.to(self.weight))
        counts = self.broadcast(counts.to(self.weight))
        self.embedding.weight.copy_(centroids)
        self.embedding.cluster_size.copy_(counts)
        self.embedding.initted.fill_(1.0)

    @torch.no_grad()
    def update_ema_(self, features: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """NormEMA step from valid unit features [M, d] and their codes [M].

        Returns:
            counts: float [K], per-code counts summed over ranks.
        """
        counts = self.all_reduce(torch.bincount(codes, minlength=self.num_codes).to(features.dtype))  # [K]
        embed_sum = features.new_zeros(self.num_codes, self.dim).index_add_(0, codes, features)
        embed_sum = self.all_reduce(embed_sum)  # [K, d]
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        used = counts > 0
        if used.any():
            mean = l2norm(embed_sum[used] / counts[used, None])
            moved = l2norm(self.weight[used] * self.decay + mean * (1.0 - self.decay))
            self.embedding.weight[used] = moved
        return counts

    @torch.no_grad()
    def step_(
        self, features: torch.Tensor, codes: torch.Tensor, replay: Optional[torch.Tensor]
    ) -> StepStats:
        """All training-mode state updates for one batch (subclasses extend).

        Args:
            features: [M, d] valid unit features; codes: [M]; replay: [M] bool or None
                (True for features of replay items; unused here).
        """
        return StepStats(counts=self.update_ema_(features, codes))

    # ------------------------------------------------------------------ math
    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code by cosine. z: [..., d] unit vectors -> LongTensor [...]."""
        return (z @ self.weight.T).argmax(dim=-1)

    def forward(
        self,
        z: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
        replay_mask: Optional[torch.Tensor] = None,
    ) -> QuantizerOutput:
        """Quantize a batch; in training mode also update the codebook.

        Args:
            z: [B, N, d] features (L2-normalised here).
            padding_mask: Bool [B, N], True at padded positions (excluded from the EMA,
                the loss and the counts); None = all valid.
            replay_mask: Bool [B], True for replay (prior-domain) items; read only by the
                online clustered codebook.
        Returns:
            :class:`QuantizerOutput`.
        """
        if z.dim() != 3 or z.shape[-1] != self.dim:
            raise ValueError(f"codebook input must be [B, N, {self.dim}], got {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):  # codes in full precision
            return self._quantize(l2norm(z.to(self.weight.dtype)), padding_mask, replay_mask)

    def _quantize(
        self, z: torch.Tensor, padding_mask: Optional[torch.Tensor], replay_mask: Optional[torch.Tensor]
    ) -> QuantizerOutput:
        """``forward`` on unit features z [B, N, d] in the codebook's dtype."""
        if padding_mask is None:
            padding_mask = torch.zeros(z.shape[:2], dtype=torch.bool, device=z.device)
        valid = ~padding_mask
        if self.training and not self.initted:
            self.init_codes_(z[valid])
        if not self.initted:
            raise RuntimeError(
                "codebook is not initialised: k-means init runs on the first training batch; "
                "call init_codes_(features) or load a checkpoint before encoding in eval mode"
            )
        codes = self.assign(z.detach())  # [B, N]
        z_q = F.embedding(codes, self.weight)  # [B, N, d]
        err = (z_q.detach() - z).pow(2).mean(-1)  # [B, N]
        n_valid = valid.sum().clamp(min=1)
        loss = self.beta * (err * valid).sum() / n_valid
        quantized = z + (z_q - z).detach()
        codes = codes.masked_fill(padding_mask, PAD_CODE)

        if self.training:
            replay = None
            if replay_mask is not None:
                replay = replay_mask.to(z.device).bool()[:, None].expand_as(valid)[valid]
            stats = self.step_(z.detach()[valid], codes[valid], replay)
            return QuantizerOutput(
                quantized, codes, loss, stats.counts, added=stats.added, reanchored=stats.reanchored
            )
        counts = torch.bincount(codes[valid], minlength=self.num_codes).float()
        return QuantizerOutput(quantized, codes, loss, counts)
