"""StudentEncoder: the shared log-mel frontend + a student backbone, with the extractor contract.

    waveform [B, T] (16 kHz) -> BeatsFrontend: normalised 128-bin Kaldi fbank [B, F, 128]
      -> AbsStudent -> K hidden states [B, N, D]

Every student reads the same features as a BEATs teacher (``espnet2_sonar.beats.frontend``),
except that inputs shorter than one frame are padded to one frame instead of one patch.

The encoder offers what the frozen probe, the s3prl expert and the sampling extractor
call on a BEATs encoder:

* ``extract_layers(wavs, lengths) -> K x [B, N, D]``;
* ``patch_lengths(lengths) -> [B]`` valid steps along N;
* ``freq_patches = 1`` and ``patch_size = time_stride`` (fbank frames per step), so the
  s3prl expert's downsample rate ``160 * patch_size`` is the student's frame rate.
"""

from typing import List

from torch import Tensor, nn

from espnet2_sonar.beats.frontend import FBANK_MEAN, FBANK_STD, BeatsFrontend
from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.nn.pooling import masked_mean
from espnet2_sonar.students.abs_student import AbsStudent, StudentOutput


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


class StudentEncoder(nn.Module, FrozenExtractor):
    """Log-mel frontend + student backbone.

    Args:
        backbone: an ``AbsStudent``.
        fbank_mean, fbank_std: fbank normalisation (BEATs' AudioSet statistics by default).
    """

    freq_patches = 1

    def __init__(self, backbone: AbsStudent, fbank_mean: float = FBANK_MEAN, fbank_std: float = FBANK_STD):
        super().__init__()
        self.frontend = BeatsFrontend(fbank_mean, fbank_std, min_frames=1)
        self.backbone = backbone

    @property
    def patch_size(self) -> int:
        """Fbank frames per output step (s3prl downsample rate = 160 * patch_size samples)."""
        return int(self.backbone.time_stride)

    @property
    def num_layers(self) -> int:
        return self.backbone.num_layers

    def output_size(self) -> int:
        return self.backbone.output_size()

    def patch_lengths(self, lengths: Tensor) -> Tensor:
        """Valid output steps [B] from valid samples [B]."""
        return self.backbone.output_lengths(self.frontend.frame_lengths(lengths))

    def encode(self, wavs: Tensor, lengths: Tensor) -> StudentOutput:
        """wavs [B, T] (or [B, T, 1]) 16 kHz in [-1, 1], lengths [B] -> StudentOutput."""
        feats = self.frontend(wavs, lengths)
        return self.backbone(feats.fbank, feats.frame_lengths)

    def extract_layers(self, wavs: Tensor, lengths: Tensor) -> List[Tensor]:
        """All K hidden states [B, N, D], zero past ``patch_lengths(lengths)``."""
        return self.encode(wavs, lengths).layers

    def embed(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        """Clip embedding [B, D]: the last hidden state averaged over valid steps."""
        out = self.encode(wavs, lengths)
        return masked_mean(out.last, out.lengths, dim=1)

    def forward(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        return self.embed(wavs, lengths)

