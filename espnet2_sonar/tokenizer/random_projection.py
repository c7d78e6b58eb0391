"""BEATs iter1 tokenizer: a frozen random-projection quantizer on fbank patches.

    waveform [B, T] -> BEATs fbank [B, F, 128] (``BeatsFrontend``)
      -> 16x16 patches, flattened (frame-major inside a patch) -> [B, N, 256],
         N = (F // 16) * 8, patch index t * 8 + f (time-major, the encoder's patch grid)
      -> LayerNorm without affine (optional) -> x @ P  (P: [256, quant_dim], random, frozen)
      -> L2-normalise -> nearest of ``quant_n`` random unit codes by cosine -> codes [B, N]

Nothing is trained. The projection and the codebook are drawn from a generator seeded with
``config.seed`` and kept as buffers, so a checkpoint carries them. Codes depend only on a
patch's own fbank frames, which do not depend on padding: an item padded in a batch gets
the codes it gets alone. Padded positions hold ``PAD_CODE``.
"""

from dataclasses import dataclass
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from espnet2_sonar.beats.frontend import FBANK_MEAN, FBANK_STD, NUM_MEL_BINS, BeatsFrontend
from espnet2_sonar.tokenizer.codebook import PAD_CODE

from espnet2_sonar.utils.config import StrictConfig


@dataclass
class RandomProjectionConfig(StrictConfig):
    """Random-projection tokenizer settings (names follow the BEATs tokenizer cfg)."""

    input_patch_size: int = 16
    """Side of the square fbank patch; must divide the 128 mel bins (BEATs: 16)."""
    quant_n: int = 1024
    """Number of random codes."""
    quant_dim: int = 256
    """Dimension of the projection and of the codes."""
    patch_norm: bool = True
    """Standardise each flattened patch (LayerNorm without affine) before projecting."""
    seed: int = 0
    """Seed of the projection matrix and the codebook."""

    def __post_init__(self):
        if self.input_patch_size <= 0 or NUM_MEL_BINS % self.input_patch_size:
            raise ValueError(f"input_patch_size={self.input_patch_size} must divide {NUM_MEL_BINS}")
        if self.quant_n < 1 or self.quant_dim < 1:
            raise ValueError(f"quant_n and quant_dim must be >= 1, got {self.quant_n}, {self.quant_dim}")


class RandomProjectionTokenizer(nn.Module):
    """Frozen random-projection quantizer on the BEATs patch grid.

    Args:
        config: ``RandomProjectionConfig`` or its dict.
        fbank_mean, fbank_std: fbank normalisation (official BEATs stats by default).
    """

    def __init__(
        self,
        config: RandomProjectionConfig | Dict[str, Any] | None = None,
        fbank_mean: float = FBANK_MEAN,
        fbank_std: float = FBANK_STD,
    ):
        super().__init__()
        if not isinstance(config, RandomProjectionConfig):
            config = RandomProjectionConfig.from_dict(config)
        self.config = config
        p = config.input_patch_size
        self.patch_size = p
        self.freq_patches = NUM_MEL_BINS // p
        self.frontend = BeatsFrontend(fbank_mean, fbank_std, min_frames=p)
        g = torch.Generator().manual_seed(config.seed)
        projection = torch.randn(p * p, config.quant_dim, generator=g) / (p * p) ** 0.5
        codebook = F.normalize(torch.randn(config.quant_n, config.quant_dim, generator=g), dim=-1)
        self.register_buffer("projection", projection)  # [p*p, quant_dim]
        self.register_buffer("codebook", codebook)  # [quant_n, quant_dim], unit rows

    @property
    def num_codes(self) -> int:
        return self.config.quant_n

    def patch_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid patches per item: LongTensor[B] from sample counts [B] (the encoder's grid)."""
        rows = self.frontend.frame_lengths(lengths).clamp(min=self.patch_size) // self.patch_size
        return rows * self.freq_patches

    def patches(self, fbank: torch.Tensor, rows: int) -> torch.Tensor:
        """Normalised fbank [B, F, 128] -> flattened patches [B, rows * 8, p * p], time-major."""
        p = self.patch_size
        need = rows * p
        if fbank.shape[1] < need:
            fbank = F.pad(fbank, (0, 0, 0, need - fbank.shape[1]))
        x = fbank[:, :need].reshape(fbank.shape[0], rows, p, self.freq_patches, p)
        return x.permute(0, 1, 3, 2, 4).reshape(fbank.shape[0], rows * self.freq_patches, p * p)

    @torch.no_grad()
    def encode(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Codes of waveforms.

        Args:
            wavs: [B, T] 16 kHz waveforms in [-1, 1]; samples past ``lengths`` are ignored.
            lengths: [B] valid samples.
        Returns:
            LongTensor [B, N], N = patch_lengths(lengths).max(); ``PAD_CODE`` at pads.
        """
        feats = self.frontend(wavs, lengths)
        num_patches = self.patch_lengths(lengths).to(feats.fbank.device)
        x = self.patches(feats.fbank, int(num_patches.max()) // self.freq_patches)  # [B, N, p*p]
        if self.config.patch_norm:
            x = F.layer_norm(x, x.shape[-1:])
        x = F.normalize(x @ self.projection, dim=-1)  # [B, N, quant_dim]
        codes = (x @ self.codebook.T).argmax(dim=-1)  # [B, N]
        pad = torch.arange(codes.shape[1], device=codes.device)[None, :] >= num_patches[:, None]
        return codes.masked_fill(pad, PAD_CODE)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Same as ``encode``."""
        return self.encode(wavs, lengths)
