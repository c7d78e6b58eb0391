"""BEATs input features: batched Kaldi fbank with the official normalisation.

    waveform [-1, 1] * 2**15 -> Kaldi fbank (128 mel, 16 kHz, 25 ms / 10 ms, povey window,
    dither 0, snip_edges) -> (fbank - 15.41663) / (2 * 6.55582)

The fbank is computed for the whole batch at once; it equals
``torchaudio.compliance.kaldi.fbank`` run item by item (checked in the tests) and is
several times faster. Every frame depends only on its own 400 samples, so padding never
changes a valid frame; samples past an item's length are zeroed first, so whatever the
padding value, an item's valid frames equal the item run alone.

Normalisation statistics: 15.41663 / 6.55582 are the AudioSet statistics of the official
BEATs code and released checkpoints. ESPnet's ``espnet2/beats/utils.py`` defaults to
15.29130 / 5.90532 (OpenBEATs corpus statistics): a checkpoint must be used with the stats
it was trained with, so they are constructor arguments here, and ``BeatsConfig`` fields
(``fbank_mean``, ``fbank_std``) that every checkpoint we write carries in its cfg.

Inputs shorter than one patch (``min_frames`` frames, 0.175 s for 16x16 patches) are padded
with silence up to one patch: the item then yields exactly one row of patches.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torchaudio.compliance.kaldi import get_mel_banks

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

NUM_MEL_BINS = 128
FRAME_LENGTH = 400  # samples (25 ms)
FRAME_SHIFT = 160  # samples (10 ms)
FFT_SIZE = 512  # frame length rounded up to a power of two, as Kaldi does
PREEMPHASIS = 0.97
WAVEFORM_SCALE = 2**15
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
ESPNET_FBANK_MEAN = 15.29130  # espnet2/beats/utils.py DEFAULT_FBANK_MEAN (OpenBEATs corpus)
ESPNET_FBANK_STD = 5.90532


def num_frames(sample_lengths: torch.Tensor) -> torch.Tensor:
    """Kaldi frame count (snip_edges): LongTensor[B] from sample counts [B]."""
    n = sample_lengths.long()
    return torch.where(n >= FRAME_LENGTH, 1 + (n - FRAME_LENGTH).div(FRAME_SHIFT, rounding_mode="floor"), 0)


def samples_for_frames(frames: int) -> int:
    """Fewest samples that give ``frames`` frames."""
    return FRAME_LENGTH + (frames - 1) * FRAME_SHIFT


@dataclass
class FbankOutput:
    """Normalised fbank of a batch.

    fbank: [B, F, 128] float32; frames past ``frame_lengths`` are zero.
    frame_lengths: LongTensor[B], valid frames per item.
    """

    fbank: torch.Tensor
    frame_lengths: torch.Tensor


class BeatsFrontend(nn.Module):
    """Waveforms [B, T] (16 kHz, [-1, 1]) -> normalised fbank [B, F, 128].

    Args:
        fbank_mean, fbank_std: normalisation (official BEATs stats by default).
        min_frames: items (and the batch) shorter than this are padded with silence up to it
            (16 = one 16x16 patch row).
    """

    def __init__(self, fbank_mean: float = FBANK_MEAN, fbank_std: float = FBANK_STD, min_frames: int = 16):
        super().__init__()
        self.fbank_mean = float(fbank_mean)
        self.fbank_std = float(fbank_std)
        self.min_frames = int(min_frames)
        banks, _ = get_mel_banks(NUM_MEL_BINS, FFT_SIZE, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
        banks = nn.functional.pad(banks, (0, 1))  # [128, 257]: Nyquist bin gets weight 0
        window = torch.hann_window(FRAME_LENGTH, periodic=False).pow(0.85)
        # non-persistent: not part of any checkpoint
        self.register_buffer("mel_banks", banks.float(), persistent=False)
        self.register_buffer("window", window.float(), persistent=False)

    @property
    def min_samples(self) -> int:
        return samples_for_frames(self.min_frames)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per item after short-input padding: LongTensor[B] from samples [B]."""
        return num_frames(lengths.long().clamp(min=self.min_samples))

    def kaldi_fbank(self, wavs: torch.Tensor) -> torch.Tensor:
        """Un-normalised log mel fbank of int16-scaled waveforms [B, T] -> [B, F, 128]."""
        frames = wavs.unfold(-1, FRAME_LENGTH, FRAME_SHIFT)  # [B, F, 400]
        frames = frames - frames.mean(dim=-1, keepdim=True)  # remove DC offset
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - PREEMPHASIS * previous) * self.window
        power = torch.fft.rfft(frames, n=FFT_SIZE).abs().pow(2.0)  # [B, F, 257]
        mel = torch.matmul(power, self.mel_banks.T)
        eps = torch.finfo(mel.dtype).eps
        return mel.clamp(min=eps).log()

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> FbankOutput:
        """wavs [B, T] float, lengths [B] valid samples -> FbankOutput ([B, F, 128], [B])."""
        if wavs.dim() == 3 and wavs.shape[-1] == 1:
            wavs = wavs.squeeze(-1)
        if wavs.dim() != 2:
            raise ValueError(f"BeatsFrontend expects waveforms [B, T], got shape {tuple(wavs.shape)}")
        if lengths.shape != (wavs.shape[0],):
            raise ValueError(f"lengths must have shape [{wavs.shape[0]}], got {tuple(lengths.shape)}")
        lengths = lengths.to(wavs.device).long()
        if bool((lengths > wavs.shape[1]).any()) or bool((lengths < 0).any()):
            raise ValueError(f"lengths {lengths.tolist()} out of range for waveforms of {wavs.shape[1]} samples")
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            total = max(int(lengths.max()) if lengths.numel() else 0, self.min_samples)
            wavs = wavs[:, :total].float()
            if wavs.shape[1] < total:
                wavs = nn.functional.pad(wavs, (0, total - wavs.shape[1]))
            keep = valid_mask(lengths, total)
            wavs = wavs * keep * WAVEFORM_SCALE
            fbank = (self.kaldi_fbank(wavs) - self.fbank_mean) / (2 * self.fbank_std)
            frame_lengths = self.frame_lengths(lengths)
            valid = valid_mask(frame_lengths, fbank.shape[1])
            fbank = fbank * valid[..., None]
        return FbankOutput(fbank=fbank, frame_lengths=frame_lengths)
