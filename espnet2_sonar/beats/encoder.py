"""BeatsEncoder: the BEATs audio encoder as an ESPnet ``AbsEncoder``.

    waveform [B, T] -> fbank [B, F, 128] (``BeatsFrontend``)
      -> Conv2d(1, embed_dim, 16x16, stride 16) -> N = (F // 16) * 8 patches, time-major
      -> LayerNorm(embed_dim) -> Linear(embed_dim, D) -> BeatsTransformer -> [B, N, D]

Equal to the official BEATs code on unpadded input, and padding-invariant: a padded item's
valid outputs equal its outputs when run alone (padding is masked out of the positional
convolution and of attention). In pre-training mode (``encode(..., mask=...)``) only the
visible patches enter the transformer, BEATs style.

Short inputs: waveforms shorter than one patch row (2800 samples = 0.175 s at 16 kHz) are
padded with silence up to it, so every item has at least 8 patches.

Checkpoints: parameter names are this package's own; ``espnet2_sonar.beats.interop``
converts to and from the official ``{'cfg', 'model'}`` format.
"""

from dataclasses import dataclass
from typing import ClassVar, List, Optional, Tuple

import torch
from torch import nn

from espnet2.asr.encoder.abs_encoder import AbsEncoder

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.frontend import NUM_MEL_BINS, BeatsFrontend
from espnet2_sonar.beats.layers import BeatsTransformer
from espnet2_sonar.beats.masking import gather_patches, make_mask, valid_patches, visible_patches
from espnet2_sonar.nn.frozen_extractor import FrozenExtractor


@dataclass
class EncoderOutput:
    """Hidden states of a BEATs encode.

    layers: L + 1 tensors [B, N', D]: the input to layer 1 first, the final output last.
        N' = N (full patch grid) without a mask, else the most visible patches of any item.
        Padded positions are zero.
    padding_mask: BoolTensor[B, N'], True = pad.
    mask: BoolTensor[B, N] (True = masked patch, full grid) or None.
    kept_index: LongTensor[B, N'], full-grid position of each encoded patch (-1 at pads), or
        None without a mask (then position j is patch j).
    num_patches: LongTensor[B], valid patches per item in the full grid.
    """

    layers: List[torch.Tensor]
    padding_mask: torch.Tensor
    mask: Optional[torch.Tensor]
    kept_index: Optional[torch.Tensor]
    num_patches: torch.Tensor

    @property
    def last(self) -> torch.Tensor:
        """The final output [B, N', D]."""
        return self.layers[-1]


class BeatsEncoder(AbsEncoder, FrozenExtractor):
    """BEATs encoder built from a ``BeatsConfig``.

    Args:
        config: a BeatsConfig, a dict of official cfg keys, or an architecture name
            (``tiny``, ``small``, ``base``); default ``base``.
        fbank_mean, fbank_std: override the config's fbank normalisation (``config.fbank_mean``,
            ``config.fbank_std``; official BEATs stats by default); the config is updated, so
            checkpoints written from this encoder record what it uses.
        input_size: ignored; accepted so ESPnet's ``--encoder_conf`` (which passes the
            frontend's output size) works.
    """

    CONF_KEYS: ClassVar[Tuple[str, ...]] = ("config", "fbank_mean", "fbank_std", "input_size")
    """The keyword arguments of ``__init__``: the keys an ESPnet ``encoder_conf`` for it may hold."""

    def __init__(
        self,
        config: BeatsConfig | dict | str | None = None,
        fbank_mean: float | None = None,
        fbank_std: float | None = None,
        input_size: int | None = None,
    ):
        super().__init__()
        config = BeatsConfig.resolve(config)
        stats = {k: v for k, v in (("fbank_mean", fbank_mean), ("fbank_std", fbank_std)) if v is not None}
        if stats:
            config = BeatsConfig.from_dict(dict(config.to_dict(), **stats))
        self.config = config
        p = config.input_patch_size
        if NUM_MEL_BINS % p:
            raise ValueError(f"input_patch_size={p} must divide the {NUM_MEL_BINS} mel bins")
        self.patch_size = p
        self.freq_patches = NUM_MEL_BINS // p
        self.frontend = BeatsFrontend(config.fbank_mean, config.fbank_std, min_frames=p)
        self.patch_embedding = nn.Conv2d(1, config.embed_dim, kernel_size=p, stride=p, bias=config.conv_bias)
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = None
        if config.embed_dim != config.encoder_embed_dim:
            self.post_extract_proj = nn.Linear(config.embed_dim, config.encoder_embed_dim)
        self.dropout_input = nn.Dropout(config.dropout_input)
        self.encoder = BeatsTransformer(config)
        nn.init.xavier_normal_(self.patch_embedding.weight)
        if self.patch_embedding.bias is not None:
            nn.init.zeros_(self.patch_embedding.bias)
        if self.post_extract_proj is not None:
            nn.init.xavier_normal_(self.post_extract_proj.weight)
            nn.init.zeros_(self.post_extract_proj.bias)

    def output_size(self) -> int:
        return self.config.encoder_embed_dim

    @property
    def num_layers(self) -> int:
        return self.config.encoder_layers

    # ----------------------------------------------------------------- lengths
    def patch_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid patches per item (full grid): LongTensor[B] from sample counts [B]."""
        return self.frames_to_patches(self.frontend.frame_lengths(lengths))

    def frames_to_patches(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Valid patches per item from fbank frame counts [B] (at least one patch row)."""
        rows = frame_lengths.long().clamp(min=self.patch_size) // self.patch_size
        return rows * self.freq_patches

    def make_mask(self, num_patches: torch.Tensor, mask_prob: float, generator: torch.Generator) -> torch.Tensor:
        """BoolTensor[B, N] masking round(mask_prob * valid) patches per item (see ``masking.make_mask``)."""
        return make_mask(num_patches, mask_prob, generator)

    # ----------------------------------------------------------------- encode
    def encode(
        self, wavs: torch.Tensor, lengths: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> EncoderOutput:
        """Encode waveforms.

        Args:
            wavs: [B, T] 16 kHz waveforms in [-1, 1] ([B, T, 1] accepted); samples past
                ``lengths`` are ignored.
            lengths: [B] valid samples.
            mask: BoolTensor[B, N] (True = masked, N = patch_lengths(lengths).max()) or None.
        """
        feats = self.frontend(wavs, lengths)
        return self.encode_features(feats.fbank, feats.frame_lengths, mask)

    def encode_features(
        self, fbank: torch.Tensor, frame_lengths: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> EncoderOutput:
        """Encode normalised fbank [B, F, 128] with valid frames [B] (see ``BeatsFrontend``).

        Items with fewer frames than one patch are read as one patch row (the frontend
        fills those frames with the fbank of silence).
        """
        if fbank.dim() != 3 or fbank.shape[-1] != NUM_MEL_BINS:
            raise ValueError(f"fbank must be [B, F, {NUM_MEL_BINS}], got {tuple(fbank.shape)}")
        num_patches = self.frames_to_patches(frame_lengths.to(fbank.device))
        rows = int(num_patches.max()) // self.freq_patches
        need = rows * self.patch_size
        if fbank.shape[1] < need:
            fbank = nn.functional.pad(fbank, (0, 0, 0, need - fbank.shape[1]))
        x = self.patch_embedding(fbank[:, None, :need].to(self.patch_embedding.weight.dtype))  # [B, C, rows, 8]
        x = x.flatten(2).transpose(1, 2)  # [B, N, C], patch t * 8 + f
        n = x.shape[1]
        padding_mask = ~valid_patches(num_patches, n)
        kept_index = None
        if mask is not None:
            if mask.shape != (x.shape[0], n):
                raise ValueError(
                    f"mask must be [B, N] = [{x.shape[0]}, {n}] (N = patch_lengths(lengths).max()), "
                    f"got {tuple(mask.shape)}"
                )
            mask = mask.to(x.device).bool() & ~padding_mask
            visible = visible_patches(mask, num_patches)
            x = gather_patches(x, visible.index)
            kept_index, padding_mask = visible.index, visible.padding_mask
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = self.dropout_input(x)
        layers = self.encoder(x, padding_mask)
        if bool(padding_mask.any()):
            layers = [h.masked_fill(padding_mask[..., None], 0.0) for h in layers]
        return EncoderOutput(
            layers=layers, padding_mask=padding_mask, mask=mask, kept_index=kept_index, num_patches=num_patches
        )

    def extract_layers(self, wavs: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        """All L + 1 hidden states [B, N, D] (input to layer 1 first), no masking."""
        return self.encode(wavs, lengths).layers

    def forward(
        self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        """AbsEncoder contract: waveforms [B, T] (or [B, T, 1]), lengths [B] -> ([B, N, D], [B], None)."""
        out = self.encode(xs_pad, ilens)
        return out.last, out.num_patches, None
