"""The log-mel-statistics floor: what a probe learns from the input spectrum alone.

``LogMelStats`` has the frozen-evaluation interface of an encoder (``extract_layers``,
``patch_lengths``) and one "layer" of one step: the mean and standard deviation over time of
each of the 128 log-mel bands BEATs reads (the same Kaldi fbank and normalisation), [B, 1, 256].
The probe then runs unchanged, so a task whose probes beat this floor by no more than
noise is one the encoder adds nothing to. Its file is ``{'kind': 'logmel_stats'}``.
"""

from typing import List, Mapping

import torch
from torch import Tensor, nn

from espnet2_sonar.beats.frontend import BeatsFrontend
from espnet2_sonar.beats.masking import valid_patches
from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.utils.checkpoint_kinds import register_checkpoint_kind

KIND = "logmel_stats"


class LogMelStats(nn.Module, FrozenExtractor):
    """Waveforms [B, T] -> [[B, 1, 256]]: per-band mean || std of the fbank over valid frames."""

    def __init__(self):
        super().__init__()
        self.frontend = BeatsFrontend()

    @torch.no_grad()
    def extract_layers(self, wavs: Tensor, lengths: Tensor) -> List[Tensor]:
        out = self.frontend(wavs, lengths)
        x, n = out.fbank, out.frame_lengths.clamp(min=1).to(out.fbank.device)
        keep = valid_patches(n, x.shape[1])[..., None].float()
        mean = (x * keep).sum(1) / n[:, None]
        var = ((x - mean[:, None]).pow(2) * keep).sum(1) / n[:, None]
        return [torch.cat([mean, var.clamp(min=0).sqrt()], dim=-1)[:, None, :]]

    def patch_lengths(self, lengths: Tensor) -> Tensor:
        return torch.ones_like(lengths, dtype=torch.long)


def logmel_checkpoint() -> dict:
    return {"kind": KIND}


@register_checkpoint_kind(KIND)
def logmel_from_checkpoint(ckpt: Mapping, source: str) -> LogMelStats:
    if ckpt.get("kind") != KIND:
        raise ValueError(f"{source}: not a log-mel-statistics floor file (expected kind={KIND!r})")
    return LogMelStats().eval()
