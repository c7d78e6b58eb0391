"""Small transformer student on log-mel.

    fbank [B, F, 128] -> tokens of ``frames_per_token`` frames x 128 mel (the last one
      zero-filled) -> Linear -> + sinusoidal position -> pre-LN transformer layers
      -> final LayerNorm -> layers: [embedding, layer 1, ..., layer L] each [B, N, D]

Padding-invariant: padded tokens are masked out of attention, so a padded item's valid
outputs equal the item run alone (up to float rounding).
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.students.abs_student import AbsStudent, StudentOutput
from espnet2_sonar.utils.config import StrictConfig

NUM_MEL_BINS = 128


@dataclass
class SmallTransformerConfig(StrictConfig):
    """Hyper-parameters of the transformer student; unknown keys are errors."""

    dim: int = 128
    """Model width D."""
    num_layers: int = 4
    """Transformer layers L."""
    num_heads: int = 4
    """Attention heads; must divide ``dim``."""
    ffn_dim: int = 512
    """Feed-forward hidden width."""
    frames_per_token: int = 8
    """Fbank frames (10 ms) per token."""
    dropout: float = 0.1
    """Dropout on the token embeddings, attention and residual branches."""

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} does not divide dim={self.dim}")
        if self.num_layers < 1 or self.frames_per_token < 1:
            raise ValueError("num_layers and frames_per_token must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def sinusoidal_positions(n: int, dim: int, device=None) -> Tensor:
    """[n, dim] fixed sine/cosine position table (Vaswani et al., 2017)."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class SmallTransformerStudent(AbsStudent):
    """Transformer student; keyword arguments are ``SmallTransformerConfig`` fields."""

    def __init__(self, **conf):
        super().__init__()
        self.config = config = SmallTransformerConfig.from_dict(conf)
        self.token_norm = nn.LayerNorm(config.frames_per_token * NUM_MEL_BINS)
        self.embed = nn.Linear(config.frames_per_token * NUM_MEL_BINS, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.dim,
                config.num_heads,
                config.ffn_dim,
                config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim)

    @property
    def time_stride(self) -> int:
        return self.config.frames_per_token

    @property
    def num_layers(self) -> int:
        return self.config.num_layers + 1

    def output_size(self) -> int:
        return self.config.dim

    def output_lengths(self, frame_lengths: Tensor) -> Tensor:
        k = self.config.frames_per_token
        return (frame_lengths.long() + k - 1).div(k, rounding_mode="floor").clamp(min=1)

    def forward(self, fbank: Tensor, frame_lengths: Tensor) -> StudentOutput:
        k = self.config.frames_per_token
        lengths = self.output_lengths(frame_lengths)
        b, f, m = fbank.shape
        if m != NUM_MEL_BINS:
            raise ValueError(f"expected fbank [B, F, {NUM_MEL_BINS}], got {tuple(fbank.shape)}")
        n = max(int(lengths.max()), 1)
        fbank = fbank * valid_mask(frame_lengths.long(), f)[..., None].to(fbank.dtype)  # zero the padding frames
        fbank = nn.functional.pad(fbank, (0, 0, 0, max(0, n * k - f)))[:, : n * k]
        tokens = fbank.reshape(b, n, k * m)  # [B, N, k * 128]
        x = self.embed(self.token_norm(tokens)) + sinusoidal_positions(n, self.config.dim, fbank.device)
        x = self.dropout(x)
        valid = valid_mask(lengths, n)  # [B, N]
        keep = valid[..., None].to(x.dtype)
        layers = [x * keep]
        for i, layer in enumerate(self.layers):
            x = layer(x, src_key_padding_mask=~valid)
            out = self.final_norm(x) if i == len(self.layers) - 1 else x
            layers.append(out * keep)
        return StudentOutput(layers=layers, lengths=lengths)
