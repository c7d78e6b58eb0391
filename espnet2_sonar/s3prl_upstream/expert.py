"""s3prl ``UpstreamExpert`` for BEATs encoders (official checkpoints or packed ESPnet models).

Contract (s3prl ``upstream/example/expert.py``): ``forward(wavs: List[Tensor[T_i]])``
returns ``{"hidden_states": [L+1 tensors of shape [B, T_out, D]]}`` (input to layer 1
first, final output last) and ``get_downsample_rates(key)`` gives samples per output frame.

Frames. A BEATs patch covers 16 fbank frames (160 ms) x 16 mel bins, with 8 frequency
patches per time step (patches time-major). The expert averages the 8 frequency patches
of each time step (as BEATs users commonly do to get frame-level features, and keeping
width D for SUPERB's weighted sum), so one output frame is 160 ms: the downsample rate is
``160 * input_patch_size`` = 2560 samples at 16 kHz.

Lengths. s3prl derives the valid frames of an item of ``n`` samples as
``ceil(n / 2560)`` and expects ``ceil(max_n / 2560)`` frames in the batch. The encoder
has ``floor(kaldi_frames(n) / 16)`` time steps (at least 1: inputs shorter than one patch
are padded to one), one or two fewer than s3prl's count (the 25 ms analysis window eats
240 samples; e.g. 16000 samples: 6 steps vs 7). The expert therefore returns
``ceil(max_n / 2560)`` frames (at least 1) and fills every frame past an item's last valid
time step with a copy of that last step (what ``S3PRLUpstream._match_length`` does for
other upstreams; it cannot do it here because it only pads by less than 2x). So every
frame s3prl counts as valid is an encoder output of the item alone, and an item in a
padded batch equals the item run alone. (Our own probe, ``eval/embeddings.py``, pools the
exact valid patches instead.)
"""

import math
from typing import Dict, List

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

FBANK_SHIFT = 160  # samples per fbank frame (10 ms)


def time_frames(layer: Tensor, freq_patches: int) -> Tensor:
    """Average the frequency patches of each time step: [B, N, D] -> [B, N / freq_patches, D]."""
    b, n, d = layer.shape
    if n % freq_patches:
        raise ValueError(f"{n} patches is not a multiple of {freq_patches} frequency patches")
    return layer.view(b, n // freq_patches, freq_patches, d).mean(dim=2)


def pad_by_last_frame(frames: Tensor, valid: Tensor, num_frames: int) -> Tensor:
    """[B, T, D] -> [B, num_frames, D] where frame t >= valid[b] of item b copies frame valid[b]-1."""
    t = torch.arange(num_frames, device=frames.device)
    index = torch.minimum(t[None, :], (valid.to(frames.device) - 1).clamp(min=0)[:, None])  # [B, num_frames]
    return torch.gather(frames, 1, index[..., None].expand(-1, -1, frames.size(-1)))


class UpstreamExpert(nn.Module):
    """BEATs encoder as an s3prl upstream.

    Args:
        ckpt: official ``.pt``, ESPnet ``.pth`` or ESPnet exp dir (see
            ``espnet2_sonar.eval.checkpoints.load_encoder``).
        model_config: optional ESPnet ``config.yaml`` for a ``.pth`` (s3prl's ``-g``).
        refresh: passed by s3prl to every upstream; unused for local files.
    """

    def __init__(self, ckpt: str, model_config: str | None = None, refresh: bool = False):
        super().__init__()
        from espnet2_sonar.eval.checkpoints import load_encoder

        if ckpt is None:
            raise ValueError("sonar upstream needs a checkpoint: S3PRLUpstream('sonar_local', path_or_url=CKPT)")
        self.encoder = load_encoder(ckpt, model_config)
        self.freq_patches = int(self.encoder.freq_patches)
        self.downsample_rate = FBANK_SHIFT * int(self.encoder.patch_size)

    def get_downsample_rates(self, key: str) -> int:
        """Samples (16 kHz) per output frame, the same for every key: 160 * patch size."""
        return self.downsample_rate

    def forward(self, wavs: List[Tensor]) -> Dict[str, List[Tensor]]:
        """wavs: B waveforms [T_i] at 16 kHz -> {"hidden_states": L+1 x [B, ceil(max T_i / 2560), D]}."""
        lengths = torch.tensor([w.numel() for w in wavs], dtype=torch.long, device=wavs[0].device)
        padded = pad_sequence([w.reshape(-1) for w in wavs], batch_first=True)  # [B, T]
        layers = self.encoder.extract_layers(padded, lengths)  # L+1 x [B, N, D]
        valid = self.encoder.patch_lengths(lengths) // self.freq_patches  # [B] time steps
        num_out = max(1, math.ceil(int(lengths.max()) / self.downsample_rate))
        hidden = [pad_by_last_frame(time_frames(h, self.freq_patches), valid, num_out) for h in layers]
        return {"hidden_states": hidden, "last_hidden_state": hidden[-1]}
