"""GE2E voice encoder (Wan et al., 2018) as a frozen frame teacher.

The weights are the ``pretrained.pt`` shipped inside the ``Resemblyzer`` wheel (a speaker
encoder trained on LibriSpeech, VoxCeleb 1/2); only that file is read, with torch, so the
package's own dependencies (librosa, webrtcvad) are not needed.

    waveform (16 kHz) -> RMS normalised to -30 dBFS -> mel power spectrogram (40 mel,
    25 ms Hann window, 10 ms hop, centred, Slaney scale and norm) -> 3 x LSTM(256)

The frame features are the hidden states of each LSTM layer (100 frames/s). The package
also drops long silences with a VAD before its utterance embedding; frames here keep the
time axis, so the VAD is not applied. The LSTM runs forward in time only, so a valid frame
never depends on padding after it.
"""

from pathlib import Path
from typing import Dict, List

import torch
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

from espnet2_sonar.beats.masking import valid_patches
from espnet2_sonar.teachers.frames import FrameTeacher, TeacherFrames
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

N_MELS = 40
HIDDEN = 256
NUM_LAYERS = 3
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
TARGET_DBFS = -30.0


class GE2ETeacher(FrameTeacher):
    """Frozen GE2E LSTM; ``frames`` gives its three layers' hidden states ([B, T', 256] each)."""

    name = "ge2e"
    output_dim = HIDDEN

    def __init__(self, state: Dict[str, Tensor], source: str = "GE2E weights"):
        super().__init__()
        self.mel = MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=WINDOW, win_length=WINDOW, hop_length=HOP,
                                  n_mels=N_MELS, power=2.0, norm="slaney", mel_scale="slaney", center=True,
                                  pad_mode="constant")
        # one single-layer LSTM per layer, so every layer's hidden states are visible
        self.lstms = nn.ModuleList(
            nn.LSTM(N_MELS if i == 0 else HIDDEN, HIDDEN, 1, batch_first=True) for i in range(NUM_LAYERS))
        expected = {f"lstm.{w}_l{i}" for i in range(NUM_LAYERS) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        missing = sorted(expected - set(state))
        if missing:
            raise ValueError(f"{source}: not a GE2E voice encoder state (missing {missing[:4]})")
        mine = {}
        for i in range(NUM_LAYERS):
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                mine[f"lstms.{i}.{w}_l0"] = state[f"lstm.{w}_l{i}"]
        got = self.lstms.state_dict()
        shapes = [k for k, v in got.items() if tuple(mine[f"lstms.{k}"].shape) != tuple(v.shape)]
        if shapes:
            raise ValueError(f"{source}: GE2E weight shapes do not match ({shapes[:4]})")
        self.lstms.load_state_dict({k[len("lstms."):]: v for k, v in mine.items()}, strict=True)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Centred STFT frames [B] of ``lengths`` samples."""
        return 1 + lengths.long().div(HOP, rounding_mode="floor")

    def normalise(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        """Scale each item to an RMS of -30 dBFS over its valid samples; padding is zeroed."""
        wavs = wavs * valid_patches(lengths, wavs.shape[1])
        rms = (wavs.pow(2).sum(1) / lengths.clamp(min=1)).sqrt()
        gain = (10 ** (TARGET_DBFS / 20)) / rms.clamp(min=1e-8)
        return wavs * gain[:, None]

    def mels(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        """[B, T'] mel power frames [B, T', 40] (frames past an item's length are zero)."""
        spec = self.mel(self.normalise(wavs.float(), lengths)).transpose(1, 2)  # [B, T', 40]
        n = self.num_frames(lengths)
        return spec * valid_patches(n, spec.shape[1])[..., None]

    def frames(self, wavs: Tensor, lengths: Tensor) -> TeacherFrames:
        lengths = lengths.to(wavs.device)
        x = self.mels(wavs, lengths)
        n = self.num_frames(lengths)
        keep = valid_patches(n, x.shape[1])[..., None]
        layers: List[Tensor] = []
        for lstm in self.lstms:
            x, _ = lstm(x)
            layers.append(x * keep)
        return TeacherFrames(layers, n, HOP)


def ge2e_weights_file(package_dir: Path) -> Path:
    return package_dir / "pretrained.pt"


def load_ge2e(package_dir: Path) -> GE2ETeacher:
    path = ge2e_weights_file(package_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the Resemblyzer package has no pretrained.pt (GE2E weights)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot be read with torch.load ({e})") from e
    state = ckpt.get("model_state") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict with 'model_state' (the GE2E weights)")
    return GE2ETeacher(state, str(path))


__all__ = ["GE2ETeacher", "load_ge2e"]
