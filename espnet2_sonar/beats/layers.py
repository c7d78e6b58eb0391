"""BEATs transformer building blocks: gradient scaling, conv positional embedding, layer, stack.

``BeatsTransformer`` is the official ``TransformerEncoder`` (post-LN DeepNorm layers, conv
positional embedding, gated relative position bias shared by all layers, layer-wise
gradient decay) in batch-first layout on SDPA. Layer-wise gradient decay multiplies the
gradient flowing into every layer's input by the ratio (official ``GradMultiply`` applied
to a tensor, not a tuple), so with loss on the last layer, layer i of L receives
ratio**(L-1-i) of its undecayed gradient and everything below the stack ratio**L.
"""

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from espnet2_sonar.beats.attention import RelativePositionBias, SelfAttention, key_padding_bias
from espnet2_sonar.beats.config import BeatsConfig


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``scale``."""
    return _ScaleGrad.apply(x, scale)


def _activation(name: str):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    if name == "gelu_accurate":
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "tanh":
        return torch.tanh
    if name == "linear":
        return lambda x: x
    raise ValueError(f"unsupported activation_fn {name!r}")


class ConvPositionalEmbedding(nn.Module):
    """Grouped Conv1d over time with weight norm (dim 2), 'same' length, GELU: [B, N, D] -> [B, N, D].

    Parameters (torch parametrization): ``conv.bias``, ``conv.parametrizations.weight.original0``
    (g, [1, 1, K]) and ``original1`` (v, [D, D / groups, K]).
    """

    def __init__(self, dim: int, kernel_size: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (kernel_size * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))  # [B, D, N + trim]
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).transpose(1, 2)


class BeatsLayer(nn.Module):
    """One transformer layer, post-LN (optionally DeepNorm-scaled residual) or pre-LN.

    post-LN: x = LN1(alpha x + Attn(x)); x = LN2(alpha x + FFN(x))
    pre-LN:  x = x + Attn(LN1(x));       x = x + FFN(LN2(x))
    """

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        activation_fn: str = "gelu",
        layer_norm_first: bool = False,
        deep_norm_alpha: float = 1.0,
        gated_position_bias: bool = False,
    ):
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads, dropout=attention_dropout, gated=gated_position_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = _activation(activation_fn)
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.layer_norm_first = layer_norm_first
        self.alpha = deep_norm_alpha

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(self.activation(self.fc1(x)))))

    def forward(
        self,
        x: torch.Tensor,
        position_bias: Optional[torch.Tensor] = None,
        key_bias: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x [B, N, D], position_bias [1, H, N, N] | None, key_bias [B, 1, 1, N] | None -> [B, N, D]."""
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), position_bias, key_bias))
            return x + self._ffn(self.final_layer_norm(x))
        residual = x if self.alpha == 1.0 else x * self.alpha
        x = self.self_attn_layer_norm(residual + self.dropout(self.self_attn(x, position_bias, key_bias)))
        residual = x if self.alpha == 1.0 else x * self.alpha
        return self.final_layer_norm(residual + self._ffn(x))


def make_layer(config: BeatsConfig, num_layers: int | None = None, dim: int | None = None) -> BeatsLayer:
    """A BeatsLayer with the config's hyper-parameters; ``num_layers`` sets the DeepNorm alpha."""
    num_layers = num_layers or config.encoder_layers
    return BeatsLayer(
        dim=dim or config.encoder_embed_dim,
        ffn_dim=config.encoder_ffn_embed_dim,
        num_heads=config.encoder_attention_heads,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        activation_fn=config.activation_fn,
        layer_norm_first=config.layer_norm_first,
        deep_norm_alpha=math.pow(2 * num_layers, 0.25) if config.deep_norm else 1.0,
        gated_position_bias=config.relative_position_embedding and config.gru_rel_pos,
    )


def init_layers_(layers: nn.ModuleList, deep_norm: bool) -> None:
    """Official initialisation: BERT normal(0.02) for Linear/Embedding, DeepNorm xavier gains."""
    for module in layers.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
    if deep_norm:
        beta = math.pow(8 * len(layers), -0.25)
        for layer in layers:
            d = layer.self_attn.dim
            w = layer.self_attn.qkv_proj.weight.data
            for part, gain in zip(w.split(d, dim=0), (1.0, 1.0, beta)):  # q, k, v as separate matrices
                nn.init.xavier_normal_(part, gain=gain)
            for linear in (layer.self_attn.out_proj, layer.fc1, layer.fc2):
                nn.init.xavier_normal_(linear.weight, gain=beta)


class BeatsTransformer(nn.Module):
    """Conv positional embedding + ``encoder_layers`` BeatsLayers sharing one position bias.

    Parameters: ``pos_conv``, ``layer_norm``, ``layers.{i}``, ``rel_pos`` (when
    ``relative_position_embedding``).
    """

    def __init__(self, config: BeatsConfig):
        super().__init__()
        dim = config.encoder_embed_dim
        self.pos_conv = ConvPositionalEmbedding(dim, config.conv_pos, config.conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList([make_layer(config) for _ in range(config.encoder_layers)])
        self.rel_pos = None
        if config.relative_position_embedding:
            self.rel_pos = RelativePositionBias(config.num_buckets, config.encoder_attention_heads, config.max_distance)
        self.layer_norm_first = config.layer_norm_first
        self.dropout = nn.Dropout(config.dropout)
        self.layerdrop = config.encoder_layerdrop
        self.grad_ratio = config.layer_wise_gradient_decay_ratio
        init_layers_(self.layers, config.deep_norm)
        if self.rel_pos is not None:
            nn.init.normal_(self.rel_pos.embedding.weight, mean=0.0, std=0.02)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """x [B, N, D], padding_mask [B, N] (True = pad) or None.

        Returns L + 1 tensors [B, N, D]: the input to layer 1 (after the positional
        embedding), then each layer's output; with pre-LN the last one is layer-normed.
        Values at padded positions are unspecified (the caller masks them).
        """
        key_bias = None
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
            if bool(padding_mask.any()):
                key_bias = key_padding_bias(padding_mask, x.dtype)
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        position_bias = self.rel_pos(x.shape[1]) if self.rel_pos is not None else None
        outputs = [x]
        for layer in self.layers:
            if self.grad_ratio != 1.0:
                x = scale_grad(x, self.grad_ratio)
            if not (self.training and self.layerdrop > 0 and float(torch.rand(())) < self.layerdrop):
                x = layer(x, position_bias, key_bias)
            outputs.append(x)
        if self.layer_norm_first:
            outputs[-1] = self.layer_norm(x)
        return outputs
