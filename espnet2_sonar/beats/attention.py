"""Self-attention with a gated relative position bias (BEATs / WavLM), on torch SDPA.

Math (per head h, query i, key j, head dim d):

    logits[i, j] = q_i . k_j / sqrt(d) + gate_h(q_i) * bias_h[bucket(j - i)]   (+ -inf at pad keys)
    gate_h(q)    = a * (b * grep_a_h - 1) + 2,  (a, b) = sigmoid(sum over 4 of grep_linear(q) viewed [2, 4])

The bias table is shared by all layers of a stack (``RelativePositionBias``), the gate is
per layer. The gated bias and the key padding mask form one additive ``attn_mask`` for
``F.scaled_dot_product_attention``.
"""

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_buckets(
    num_queries: int, num_keys: int, num_buckets: int, max_distance: int, device: torch.device | None = None
) -> torch.Tensor:
    """Bidirectional T5-style buckets of (key - query): LongTensor[num_queries, num_keys].

    Half of the buckets per direction; within a direction, distances below a quarter of
    ``num_buckets`` get their own bucket, larger ones log-spaced buckets up to
    ``max_distance`` (clamped to the last bucket).
    """
    rel = torch.arange(num_keys, dtype=torch.long)[None, :] - torch.arange(num_queries, dtype=torch.long)[:, None]
    half = num_buckets // 2
    exact = half // 2
    offset = (rel > 0).long() * half
    dist = rel.abs()
    # float formula in the same operation order as the reference implementation, so the
    # integer bucket boundaries agree exactly; distances < exact never use this branch
    scaled = torch.log(dist.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (half - exact)
    far = (exact + scaled.long()).clamp(max=half - 1)
    buckets = offset + torch.where(dist < exact, dist, far)
    return buckets if device is None else buckets.to(device)


class RelativePositionBias(nn.Module):
    """Learned bias per (head, relative-position bucket); ``forward(n)`` -> [1, H, n, n]."""

    def __init__(self, num_buckets: int, num_heads: int, max_distance: int):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)
        self._buckets: Dict[Tuple[int, torch.device], torch.Tensor] = {}

    def buckets(self, n: int, device: torch.device) -> torch.Tensor:
        key = (n, device)
        if key not in self._buckets:
            if len(self._buckets) > 64:
                self._buckets.clear()
            # built outside inference mode: a cached inference tensor could not be used by a
            # later training forward of the same module (autograd refuses to save it)
            with torch.inference_mode(False):
                self._buckets[key] = relative_position_buckets(n, n, self.num_buckets, self.max_distance, device)
        return self._buckets[key]

    def forward(self, n: int) -> torch.Tensor:
        """Bias for a length-n sequence: [1, H, n, n]."""
        values = self.embedding(self.buckets(n, self.embedding.weight.device))  # [n, n, H]
        return values.permute(2, 0, 1).unsqueeze(0)


def key_padding_bias(padding_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask from a key padding mask [B, N] (True = pad) -> [B, 1, 1, N] (0 or -inf)."""
    bias = torch.zeros(padding_mask.shape, dtype=dtype, device=padding_mask.device)
    return bias.masked_fill(padding_mask, float("-inf"))[:, None, None, :]


class SelfAttention(nn.Module):
    """Multi-head self-attention with an optional (gated) additive position bias.

    Parameters: ``qkv_proj`` (q, k, v stacked: weight [3D, D]), ``out_proj``; with
    ``gated``: ``grep_linear`` (head_dim -> 8) and ``grep_a`` [1, H, 1, 1].
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, gated: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide dim={dim}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gated = gated
        if gated:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        position_bias: Optional[torch.Tensor] = None,
        key_bias: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x [B, N, D]; position_bias [1, H, N, N] or None; key_bias [B, 1, 1, N] additive or None.

        Returns [B, N, D].
        """
        bsz, n, _ = x.shape
        qkv = self.qkv_proj(x).view(bsz, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, N, hd]
        mask = key_bias
        if position_bias is not None:
            if self.gated:
                ab = torch.sigmoid(self.grep_linear(q).view(bsz, self.num_heads, n, 2, 4).sum(-1))  # [B,H,N,2]
                gate = ab[..., :1] * (ab[..., 1:] * self.grep_a - 1.0) + 2.0  # [B, H, N, 1]
                if key_bias is None:
                    mask = gate * position_bias
                else:
                    mask = torch.addcmul(key_bias, gate, position_bias)
            else:
                mask = position_bias if key_bias is None else position_bias + key_bias
        if mask is not None and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)  # e.g. bf16 activations under autocast, fp32 bias table
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)  # [B, H, N, hd]
        return self.out_proj(out.transpose(1, 2).reshape(bsz, n, self.dim))
