"""Masked-acoustic-model predictor and code head for BEATs pre-training.

``BeatsPredictor`` takes the ``EncoderOutput`` of a masked encode (visible patches only),
puts the encoded patches back on the full patch grid with a learned mask embedding at the
masked positions, and runs a few BeatsLayers over the full grid (the same design as
ESPnet's ``BeatsPretrainingPredictor``). ``CodeHead`` maps its hidden states to logits
over the tokenizer's codes and can grow when the codebook grows.
"""

from abc import ABC, abstractmethod
from typing import Optional

import torch
from torch import nn

from espnet2_sonar.beats.attention import RelativePositionBias, key_padding_bias
from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import EncoderOutput
from espnet2_sonar.beats.layers import init_layers_, make_layer
from espnet2_sonar.beats.masking import valid_patches


class AbsPredictor(nn.Module, ABC):
    """Base of the ``--predictor`` choices: encoded visible patches -> hidden states on the full grid."""

    @abstractmethod
    def output_size(self) -> int:
        """Width of the hidden states."""

    @abstractmethod
    def forward(self, enc: EncoderOutput) -> torch.Tensor:
        """Masked (or unmasked) EncoderOutput -> hidden [B, N, output_size()]."""


class BeatsPredictor(AbsPredictor):
    """Full-grid transformer over encoded visible patches + mask embeddings.

    Layers take their FFN width, heads, dropouts, activation and norm style from
    ``config``; they always carry a relative position bias (own table, config's buckets,
    gated when ``config.gru_rel_pos``), since mask embeddings carry no position otherwise.

    Args:
        config: the encoder's BeatsConfig (or dict / architecture name).
        num_layers: predictor layers (ESPnet default 3).
        dim: predictor width (default: the encoder width); must be divisible by the heads.
    """

    def __init__(self, config: BeatsConfig | dict | str, num_layers: int = 3, dim: Optional[int] = None):
        super().__init__()
        config = BeatsConfig.resolve(config)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.dim = dim or config.encoder_embed_dim
        self.decoder_embed = nn.Linear(config.encoder_embed_dim, self.dim)
        self.mask_embedding = nn.Parameter(torch.zeros(self.dim))
        layer_config = BeatsConfig.from_dict(dict(config.to_dict(), relative_position_embedding=True))
        self.layers = nn.ModuleList([make_layer(layer_config, num_layers, self.dim) for _ in range(num_layers)])
        self.rel_pos = RelativePositionBias(config.num_buckets, config.encoder_attention_heads, config.max_distance)
        self.norm = nn.LayerNorm(self.dim)
        init_layers_(self.layers, config.deep_norm)
        nn.init.normal_(self.rel_pos.embedding.weight, std=0.02)
        nn.init.normal_(self.decoder_embed.weight, std=0.02)
        nn.init.zeros_(self.decoder_embed.bias)
        nn.init.normal_(self.mask_embedding, std=0.02)

    def output_size(self) -> int:
        return self.dim

    def forward(self, enc: EncoderOutput) -> torch.Tensor:
        """Masked (or unmasked) EncoderOutput -> hidden [B, N, dim] on the full patch grid (pads zero)."""
        x = self.decoder_embed(enc.last)  # [B, N', dim]
        num_patches = enc.num_patches.to(x.device)
        if enc.kept_index is None:
            full = x
        else:
            bsz, n = enc.mask.shape
            index = enc.kept_index.to(x.device)
            index = torch.where(index >= 0, index, n)  # pads go to a spare column, dropped below
            grid = self.mask_embedding.to(x.dtype).expand(bsz, n + 1, self.dim)
            full = grid.scatter(1, index[..., None].expand(-1, -1, self.dim), x)[:, :n]
        padding_mask = ~valid_patches(num_patches, full.shape[1])
        key_bias = key_padding_bias(padding_mask, full.dtype) if bool(padding_mask.any()) else None
        position_bias = self.rel_pos(full.shape[1])
        for layer in self.layers:
            full = layer(full, position_bias, key_bias)
        return self.norm(full).masked_fill(padding_mask[..., None], 0.0)


class CodeHead(nn.Module):
    """Linear map from hidden states to code logits, growable: [..., dim] -> [..., num_codes].

    ``grow_`` appends rows and leaves the old ones unchanged. It replaces the parameters,
    so an optimizer holding the old ones must be rebuilt (or its state copied) afterwards.
    """

    def __init__(self, dim: int, num_codes: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(num_codes, dim))
        self.bias = nn.Parameter(torch.zeros(num_codes))
        nn.init.normal_(self.weight, std=0.02)

    @property
    def num_codes(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    @torch.no_grad()
    def grow_(self, new_num_codes: int, init: Optional[torch.Tensor] = None) -> None:
        """Extend to ``new_num_codes`` rows; new rows are ``init`` ([dK, dim]) or normal(0, 0.02)."""
        extra = new_num_codes - self.num_codes
        if extra < 0:
            raise ValueError(f"cannot shrink CodeHead from {self.num_codes} to {new_num_codes} codes")
        if extra == 0:
            return
        w = self.weight
        if init is None:
            init = torch.empty(extra, self.dim, device=w.device, dtype=w.dtype).normal_(std=0.02)
        elif tuple(init.shape) != (extra, self.dim):
            raise ValueError(f"init must be [{extra}, {self.dim}], got {tuple(init.shape)}")
        self.weight = nn.Parameter(torch.cat([w, init.to(w)], dim=0), requires_grad=w.requires_grad)
        self.bias = nn.Parameter(
            torch.cat([self.bias, self.bias.new_zeros(extra)]), requires_grad=self.bias.requires_grad
        )
