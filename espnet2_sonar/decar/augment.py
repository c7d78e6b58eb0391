"""DECAR's training augmentations, seeded: band limiting of the waveform and SpecAugment-style
masking of spectrogram features (frequency bands and time spans).

``BandLimit`` low-passes a random share of the clips at a random cutoff (an ideal filter:
FFT bins above the cutoff zeroed), so the network must assign a band-limited clip (a
telephone or low-rate recording, an 8 kHz file resampled to 16 kHz) to the cluster of the
full-band clip: the features become less sensitive to the recording's bandwidth.

SpecAugment:
Each clip gets ``freq_masks`` frequency masks of width ~ U{0..freq_mask_width} bins and
``time_masks`` time masks of width ~ U{0..floor(time_mask_ratio * valid frames)}, placed
uniformly inside the clip's valid region; masked cells are set to ``fill`` (0 = the mean
of normalised features). All draws come from the ``torch.Generator`` passed in, so the
same generator state gives the same masks.
"""

from dataclasses import dataclass

import torch

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE


@dataclass
class SpecAugment:
    """Callable masker; see the module docstring. All widths are upper bounds."""

    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_ratio: float = 0.1
    fill: float = 0.0

    def __post_init__(self):
        if min(self.freq_masks, self.freq_mask_width, self.time_masks) < 0:
            raise ValueError(f"mask counts and widths must be >= 0: {self}")
        if not 0.0 <= self.time_mask_ratio < 1.0:
            raise ValueError(f"time_mask_ratio must be in [0, 1), got {self.time_mask_ratio}")

    @property
    def active(self) -> bool:
        return (self.freq_masks > 0 and self.freq_mask_width > 0) or (self.time_masks > 0 and self.time_mask_ratio > 0)

    def masks(self, frame_lengths: torch.Tensor, num_frames: int, num_bins: int, generator: torch.Generator):
        """(time mask BoolTensor[B, F], frequency mask BoolTensor[B, M]) on the CPU."""
        lengths = frame_lengths.detach().cpu().long()
        bsz = lengths.shape[0]

        def spans(n: int, max_width: torch.Tensor, extent: torch.Tensor, size: int) -> torch.Tensor:
            # n spans per item: width ~ U{0..max_width}, start ~ U{0..extent - width}
            if n == 0:
                return torch.zeros(bsz, size, dtype=torch.bool)
            u = torch.rand(bsz, n, 2, generator=generator)
            width = (u[..., 0] * (max_width[:, None] + 1).float()).floor().long().minimum(extent[:, None])
            start = (u[..., 1] * (extent[:, None] - width + 1).float()).floor().long()
            pos = torch.arange(size)[None, None, :]
            return ((pos >= start[..., None]) & (pos < (start + width)[..., None])).any(dim=1)

        freq = spans(
            self.freq_masks, torch.full((bsz,), self.freq_mask_width), torch.full((bsz,), num_bins), num_bins
        )
        time_width = (lengths.float() * self.time_mask_ratio).floor().long()
        time = spans(self.time_masks, time_width, lengths.clamp(max=num_frames), num_frames)
        return time, freq

    def __call__(self, feats: torch.Tensor, frame_lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """feats [B, F, M] (frames x bins), frame_lengths [B] -> masked copy [B, F, M]."""
        if feats.dim() != 3:
            raise ValueError(f"feats must be [B, F, M], got {tuple(feats.shape)}")
        if not self.active:
            return feats
        time, freq = self.masks(frame_lengths, feats.shape[1], feats.shape[2], generator)
        cells = (time[:, :, None] | freq[:, None, :]).to(feats.device)
        return feats.masked_fill(cells, self.fill)


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
