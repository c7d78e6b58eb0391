"""DECAR's waveform augmentation, seeded: band limiting (its SpecAugment is ``nn.specaug``).

``BandLimit`` low-passes a random share of the clips at a random cutoff (an ideal filter:
FFT bins above the cutoff zeroed), so the network must assign a band-limited clip (a
telephone or low-rate recording, an 8 kHz file resampled to 16 kHz) to the cluster of the
full-band clip: the features become less sensitive to the recording's bandwidth. All draws
come from the ``torch.Generator`` passed in, so the same generator state gives the same cutoffs.
"""

from dataclasses import dataclass

import torch

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE


@dataclass
class BandLimit:
    """Callable waveform low-pass; see the module docstring.

    prob: share of clips low-passed (0 disables; nothing is drawn then);
    min_hz, max_hz: the cutoff of a low-passed clip ~ U[min_hz, max_hz].
    """

    prob: float = 0.0
    min_hz: float = 3000.0
    max_hz: float = 6000.0
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self):
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"band-limit prob must be in [0, 1], got {self.prob}")
        if not 0.0 < self.min_hz <= self.max_hz:
            raise ValueError(f"band-limit cutoffs need 0 < min_hz <= max_hz, got {self.min_hz}, {self.max_hz}")

    @property
    def active(self) -> bool:
        return self.prob > 0.0

    def cutoffs(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """[B] cutoff per clip in Hz; +inf for clips left full-band."""
        u = torch.rand(batch, 2, generator=generator, dtype=torch.float64)
        hz = self.min_hz + u[:, 1] * (self.max_hz - self.min_hz)
        return torch.where(u[:, 0] < self.prob, hz, torch.full_like(hz, float("inf")))

    def __call__(self, wavs: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """wavs [B, T], valid samples lengths [B] -> copy [B, T], low-passed clips zero past their end."""
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be [B, T], got {tuple(wavs.shape)}")
        if not self.active:
            return wavs
        cut = self.cutoffs(wavs.shape[0], generator)
        chosen = torch.isfinite(cut)
        if not bool(chosen.any()):
            return wavs
        n = wavs.shape[1]
        freqs = torch.fft.rfftfreq(n, d=1.0 / self.sample_rate).to(torch.float64)  # [n // 2 + 1]
        keep = (freqs[None, :] <= cut[:, None]).to(wavs.device)  # [B, n // 2 + 1]
        spectrum = torch.fft.rfft(wavs.float(), n=n) * keep
        out = torch.fft.irfft(spectrum, n=n).to(wavs.dtype)
        # the filter rings past a clip's end: keep padding zero, as the frontends expect
        valid = valid_mask(lengths.to(wavs.device), n)
        out = out * valid.to(out.dtype)
        return torch.where(chosen.to(wavs.device)[:, None], out, wavs)
