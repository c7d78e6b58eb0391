"""ESPnet data type ``sonar_sound``: a wav.scp reader whose errors name the file.

ESPnet's own ``sound`` type fails deep inside soundfile or the model on a corrupt, empty,
multichannel or wrong-rate file. Registering this module adds the types

    sonar_sound                  16 kHz mono required; anything else is an error
    sonar_sound_resample         other rates are resampled to 16 kHz
    sonar_sound_mix              multichannel audio is averaged to mono
    sonar_sound_resample_mix     both

to ``espnet2.train.dataset.DATA_TYPES``, usable as
``--train_data_path_and_name_and_type data/train/wav.scp,speech,sonar_sound_resample``.
Every error is an ``AudioFileError`` naming the utterance, the file and the problem.
"""

from pathlib import Path
from typing import Iterator

import numpy as np

from espnet2_sonar.data.kaldi_dir import read_table as read_scp  # noqa: F401 (re-exported)
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

_TYPES = ("sonar_sound", "sonar_sound_resample", "sonar_sound_mix", "sonar_sound_resample_mix")


class SonarSoundReader:
    """Mapping ``utt_id -> float32 waveform [T]`` at 16 kHz over a wav.scp."""

    def __init__(self, scp: str | Path, resample: bool = False, mix: bool = False, float_dtype=None):
        self.scp = str(scp)
        self.resample = resample
        self.mix = mix
        self.dtype = np.dtype(float_dtype or "float32")
        self._paths = read_scp(scp)

    def keys(self):
        return self._paths.keys()

    def __len__(self) -> int:
        return len(self._paths)

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __contains__(self, key) -> bool:
        return key in self._paths

    def __getitem__(self, key: str) -> np.ndarray:
        from espnet2_sonar.data.audio import AudioFileError, load_audio

        path = self._paths[key]
        try:
            wav, _ = load_audio(
                path,
                target_sr=SAMPLE_RATE,
                on_rate_mismatch="resample" if self.resample else "error",
                on_multichannel="mix" if self.mix else "error",
            )
        except AudioFileError as e:
            raise AudioFileError(path, f"{e.reason} (utterance {key!r} in {self.scp})") from None
        return wav.astype(self.dtype, copy=False)


def _make_loader(path, loader_type: str = "sonar_sound", float_dtype=None):
    if loader_type not in _TYPES:
        raise ValueError(f"unknown loader type {loader_type!r}; choose one of {_TYPES}")
    return SonarSoundReader(
        path, resample="resample" in loader_type, mix="mix" in loader_type, float_dtype=float_dtype
    )


def register_data_types() -> None:
    """Add the ``sonar_sound*`` types to ESPnet's DATA_TYPES (idempotent)."""
    from espnet2.train.dataset import DATA_TYPES

    if "sonar_sound" in DATA_TYPES:
        return
    DATA_TYPES["sonar_sound"] = dict(
        func=_make_loader,
        kwargs=["loader_type", "float_dtype"],
        help="16 kHz mono audio with clear per-file errors; suffixes _resample and _mix "
        "allow resampling other rates and averaging multichannel audio.\n\n"
        "   utterance_id_a a.flac\n   ...",
    )
