"""The two steps DECAR needs from an encoder: spectrogram, then clip embedding.

Splitting them lets SpecAugment act on the spectrogram in between. Supported encoders:

* ``EfficientNetEncoder``: 64-bin log-mel [B, F, 64] -> mean of the head output over valid
  positions [B, D];
* ``BeatsEncoder`` (e.g. ``SonarBeatsEncoder``): normalised 128-bin fbank [B, F, 128] ->
  mean of the last layer over valid patches [B, D].
"""

from dataclasses import dataclass

import torch
from torch import nn

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.efficientnet.model import EfficientNetEncoder


@dataclass
class Spectrogram:
    """feats: [B, F, M] normalised features, zero past ``frame_lengths``; frame_lengths: LongTensor[B]."""

    feats: torch.Tensor
    frame_lengths: torch.Tensor


def _check(encoder: nn.Module) -> None:
    if not isinstance(encoder, (EfficientNetEncoder, BeatsEncoder)):
        raise TypeError(
            f"DECAR supports EfficientNetEncoder and BeatsEncoder encoders, got {type(encoder).__name__}"
        )


def spectrogram(encoder: nn.Module, speech: torch.Tensor, lengths: torch.Tensor) -> Spectrogram:
    """Waveforms [B, T] with valid samples [B] -> the encoder's input features."""
    _check(encoder)
    out = encoder.frontend(speech, lengths)
    if isinstance(encoder, BeatsEncoder):
        return Spectrogram(out.fbank, out.frame_lengths)
    return Spectrogram(out.feats, out.frame_lengths)


def pooled_embedding(encoder: nn.Module, spec: Spectrogram) -> torch.Tensor:
    """Clip embedding [B, D]: the encoder output averaged over its valid positions."""
    _check(encoder)
    if isinstance(encoder, BeatsEncoder):
        out = encoder.encode_features(spec.feats, spec.frame_lengths)
        keep = (~out.padding_mask)[..., None].to(out.last.dtype)  # [B, N, 1]
        return (out.last * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
    return encoder.encode_features(spec.feats, spec.frame_lengths).pooled()
