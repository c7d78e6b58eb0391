"""DECAR input features: 64-bin log-mel spectrogram of 16 kHz audio, 25 ms windows, 10 ms hop.

    waveform [B, T] in [-1, 1] -> frames of 400 samples every 160 (no centring, so every
    frame lies inside the clip) -> Hann window -> |rFFT(512)|^2 -> 64 mel bands (HTK,
    f_min..f_max) -> log(power + 1e-6) -> (x - mean) / std

Padding invariance: samples past an item's length are zeroed, every frame depends only on
its own 400 samples, and frames past ``frame_lengths`` are set to 0, so an item's valid
frames equal the item run alone. Clips shorter than ``min_frames`` frames are padded with
silence up to it.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torchaudio.functional import melscale_fbanks

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

LOG_OFFSET = 1e-6


@dataclass
class LogMelOutput:
    """feats: [B, F, n_mels] normalised log-mel, zero past ``frame_lengths``; frame_lengths: LongTensor[B]."""

    feats: torch.Tensor
    frame_lengths: torch.Tensor


class LogMelFrontend(nn.Module):
    """Waveforms [B, T] -> normalised log-mel [B, F, n_mels].

    Args:
        n_mels: mel bands (DECAR: 64).
        sample_rate: expected input rate (16 kHz).
        win_length, hop_length: frame size and shift in samples (25 ms / 10 ms at 16 kHz).
        n_fft: FFT size (>= win_length).
        f_min, f_max: mel band edges in Hz (f_max None: Nyquist).
        mean, std: normalisation of the log power (rough statistics of natural audio; the
            encoder's first BatchNorm absorbs what remains).
        min_frames: shorter clips are padded with silence up to this many frames.
    """

    def __init__(
        self,
        n_mels: int = 64,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = 400,
        hop_length: int = 160,
        n_fft: int = 512,
        f_min: float = 50.0,
        f_max: float | None = None,
        mean: float = -6.0,
        std: float = 5.0,
        min_frames: int = 1,
    ):
        super().__init__()
        if n_fft < win_length:
            raise ValueError(f"n_fft ({n_fft}) must be >= win_length ({win_length})")
        if std <= 0 or min_frames < 1:
            raise ValueError(f"std must be > 0 and min_frames >= 1, got {std}, {min_frames}")
        self.n_mels = int(n_mels)
        self.sample_rate = int(sample_rate)
        self.win_length = int(win_length)
        self.hop_length = int(hop_length)
        self.n_fft = int(n_fft)
        self.mean = float(mean)
        self.std = float(std)
        self.min_frames = int(min_frames)
        fb = melscale_fbanks(
            n_fft // 2 + 1, float(f_min), float(f_max or sample_rate / 2), n_mels, sample_rate, norm=None, mel_scale="htk"
        )  # [n_freq, n_mels]
        self.register_buffer("mel_fb", fb.float(), persistent=False)
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per item (at least ``min_frames``): LongTensor[B] from sample counts [B]."""
        n = lengths.long()
        frames = torch.where(
            n >= self.win_length, 1 + (n - self.win_length).div(self.hop_length, rounding_mode="floor"), 0
        )
        return frames.clamp(min=self.min_frames)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> LogMelOutput:
        """wavs [B, T] (or [B, T, 1]) 16 kHz in [-1, 1], lengths [B] valid samples -> LogMelOutput."""
        if wavs.dim() == 3:
            wavs = wavs.squeeze(-1)
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be [B, T], got {tuple(wavs.shape)}")
        lengths = lengths.to(wavs.device).long()
        frame_lengths = self.frame_lengths(lengths)
        num_frames = int(frame_lengths.max())
        need = self.win_length + (num_frames - 1) * self.hop_length
        t = torch.arange(wavs.shape[1], device=wavs.device)
        x = wavs.float() * (t[None, :] < lengths[:, None])  # zero past each item's end
        if x.shape[1] < need:
            x = nn.functional.pad(x, (0, need - x.shape[1]))
        frames = x[:, :need].unfold(1, self.win_length, self.hop_length)  # [B, F, win]
        spec = torch.fft.rfft(frames * self.window, n=self.n_fft).abs().pow(2)  # [B, F, n_freq]
        logmel = torch.log(spec @ self.mel_fb + LOG_OFFSET)  # [B, F, n_mels]
        feats = (logmel - self.mean) / self.std
        valid = valid_mask(frame_lengths, num_frames)
        feats = feats * valid[..., None]
        return LogMelOutput(feats=feats, frame_lengths=frame_lengths)
