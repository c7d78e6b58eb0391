"""Audio reading, validation and conversion with errors that name the file and the problem.

``load_audio`` is the toolkit's one reader (training loader, probes, sampling); the corpus
builder uses ``decode_audio`` / ``resample`` / ``write_audio`` to turn extracted package
files into 16 kHz mono 16-bit FLAC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from espnet2_sonar.utils.atomic_write import atomic_path
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE


# Headerless formats soundfile can only read when told how: extension -> (subtype, rate).
# Asterisk's ``.gsm`` prompts are raw GSM 6.10 frames at 8 kHz.
RAW_FORMATS = {".gsm": ("GSM610", 8000)}


class AudioFileError(ValueError):
    """A file that cannot be used as audio; ``str(e)`` names the file and the problem."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across multiprocessing workers
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (no decoding)."""

    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _raw_kwargs(path: Path) -> dict:
    spec = RAW_FORMATS.get(path.suffix.lower())
    if spec is None:
        return {}
    subtype, sr = spec
    return {"format": "RAW", "subtype": subtype, "samplerate": sr, "channels": 1}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(path, "missing (no such file)")
    if path.is_dir():
        raise AudioFileError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")


def audio_info(path: str | Path) -> AudioInfo:
    """Rate, channels and length from the header; ``AudioFileError`` if unreadable or empty."""
    path = Path(path)
    _check_file(path)
    kwargs = _raw_kwargs(path)
    try:
        if kwargs:
            frames = sf.SoundFile(str(path), **kwargs).frames
            info = AudioInfo(str(path), kwargs["samplerate"], 1, frames)
        else:
            i = sf.info(str(path))
            info = AudioInfo(str(path), int(i.samplerate), int(i.channels), int(i.frames))
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as e:
        raise AudioFileError(path, f"corrupt or undecodable audio ({_short(e)})") from None
    if info.frames <= 0:
        raise AudioFileError(path, "zero-length audio (no samples)")
    return info


def decode_audio(
    path: str | Path, start: int = 0, frames: int = -1
) -> tuple[np.ndarray, int]:
    """Decode ``frames`` samples from ``start`` (native rate) -> (float32 [T, C], sr).

    Raises ``AudioFileError`` for a missing, empty, corrupt or zero-length file, and for
    audio containing NaN/inf samples.
    """
    path = Path(path)
    _check_file(path)
    try:
        with sf.SoundFile(str(path), **_raw_kwargs(path)) as f:
            sr = int(f.samplerate)
            if start and f.seekable():
                f.seek(start)
            elif start:  # headerless formats: read and drop
                f.read(start, dtype="float32", always_2d=True)
            if frames < 0:
                frames = max(0, f.frames - start)
            data = f.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as e:
        raise AudioFileError(path, f"corrupt or undecodable audio ({_short(e)})") from None
    if data.shape[0] == 0:
        raise AudioFileError(path, "zero-length audio (no samples)")
    if not np.isfinite(data).all():
        raise AudioFileError(path, "audio contains NaN or infinite samples")
    return data, sr


def to_mono(data: np.ndarray) -> np.ndarray:
    """[T, C] or [T] -> [T] by averaging channels."""
    return data if data.ndim == 1 else data.mean(axis=1, dtype=np.float32)


def resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling of [T] float audio; returns float32 [ceil(T * sr_out / sr_in)]."""
    if sr_in == sr_out:
        return wave.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(sr_out, sr_in)
    out = resample_poly(wave.astype(np.float32, copy=False), ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def load_audio(
    path: str | Path,
    target_sr: int = SAMPLE_RATE,
    on_rate_mismatch: Literal["resample", "error"] = "resample",
    on_multichannel: Literal["mix", "error"] = "mix",
) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 mono [T] at ``target_sr``.

    Returns:
        (wave [T] float32, target_sr)
    Raises:
        AudioFileError naming the file and the problem: missing, empty, corrupt/undecodable,
        zero-length, wrong rate (``on_rate_mismatch="error"``) or multichannel
        (``on_multichannel="error"``).
    """
    if on_rate_mismatch not in ("resample", "error"):
        raise ValueError(f"on_rate_mismatch must be 'resample' or 'error', got {on_rate_mismatch!r}")
    if on_multichannel not in ("mix", "error"):
        raise ValueError(f"on_multichannel must be 'mix' or 'error', got {on_multichannel!r}")
    data, sr = decode_audio(path)
    if data.shape[1] > 1 and on_multichannel == "error":
        raise AudioFileError(path, f"multichannel audio ({data.shape[1]} channels), expected mono")
    if sr != target_sr and on_rate_mismatch == "error":
        raise AudioFileError(path, f"wrong sample rate {sr} Hz, expected {target_sr} Hz")
    wave = resample(to_mono(data), sr, target_sr)
    if wave.shape[0] == 0:
        raise AudioFileError(path, "zero-length audio after resampling")
    return wave, target_sr


def peak_normalise_if_clipping(wave: np.ndarray) -> np.ndarray:
    """Scale down audio whose peak exceeds full scale (resampling overshoot), else unchanged."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    return wave / peak * 0.999 if peak > 1.0 else wave


def write_audio(path: str | Path, wave: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write [T] float audio as 16-bit mono (FLAC for ``.flac``, else WAV), atomically."""
    path = Path(path)
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise ValueError(f"{path}: write_audio expects non-empty [T] audio, got shape {wave.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), peak_normalise_if_clipping(wave), sr, format=fmt, subtype="PCM_16")


def is_silent(wave: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the peak of [T] audio is below ``threshold_db`` dBFS (digital silence)."""
    if wave.size == 0:
        return True
    peak = float(np.abs(wave).max())
    return peak <= 0.0 or 20 * math.log10(peak) < threshold_db


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
