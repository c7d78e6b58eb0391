"""Normalised fbank of every clip, computed once per run (optionally cached on disk).

The fbank has no parameters, so every method and session trains from it: the time-frequency
perturbations mask it, the backbone encodes it. Clips longer than ``max_seconds`` keep their
first ``max_seconds`` (deterministic). Audio is read with ``espnet2_sonar.data.audio.load_audio``
(16 kHz mono, resampled when needed).

Cache: one file per (list of files with their sizes and mtimes, crop, fbank statistics)
under ``cache_dir``.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from espnet2_sonar.utils.atomic_write import atomic_path
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

CACHE_FORMAT = 1


@dataclass
class FbankBatch:
    """Padded fbank of a batch: fbank [B, F, 128] (zeros past each length), frame_lengths [B]."""

    fbank: Tensor
    frame_lengths: Tensor

    def to(self, device) -> "FbankBatch":
        return FbankBatch(self.fbank.to(device), self.frame_lengths.to(device))


def pad_fbanks(items: Sequence[Tensor]) -> FbankBatch:
    """Stack [F_i, 128] fbanks into a zero-padded FbankBatch."""
    lengths = torch.tensor([x.shape[0] for x in items], dtype=torch.long)
    out = torch.zeros(len(items), int(lengths.max()), items[0].shape[1], dtype=items[0].dtype)
    for i, x in enumerate(items):
        out[i, : x.shape[0]] = x
    return FbankBatch(out, lengths)


def _cache_key(wav_paths: Sequence[str], max_seconds: Optional[float], frontend) -> str:
    h = hashlib.sha256(
        f"format={CACHE_FORMAT};max={max_seconds};mean={frontend.fbank_mean};std={frontend.fbank_std};".encode()
    )
    for p in wav_paths:
        st = os.stat(p)
        h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@torch.no_grad()
def compute_fbanks(
    wav_paths: Sequence[str], frontend, max_seconds: Optional[float] = 10.0, desc: str = "fbank"
) -> List[Tensor]:
    """Normalised fbank [F_i, 128] float32 of every file (see module docstring)."""
    from espnet2_sonar.data.audio import load_audio

    limit = None if max_seconds is None else int(round(max_seconds * SAMPLE_RATE))
    out = []
    for path in tqdm(wav_paths, desc=desc, unit="file", disable=len(wav_paths) < 50):
        wave, _ = load_audio(path, target_sr=SAMPLE_RATE)
        wav = torch.as_tensor(wave, dtype=torch.float32)[:limit]
        feats = frontend(wav[None], torch.tensor([wav.numel()]))
        out.append(feats.fbank[0, : int(feats.frame_lengths[0])].clone())
    return out


def load_fbanks(
    wav_paths: Sequence[str],
    frontend,
    max_seconds: Optional[float] = 10.0,
    cache_dir: Optional[str | Path] = None,
    desc: str = "fbank",
) -> List[Tensor]:
    """``compute_fbanks`` with an on-disk cache (``cache_dir=None``: no cache)."""
    if cache_dir is None:
        return compute_fbanks(wav_paths, frontend, max_seconds, desc)
    key = _cache_key(wav_paths, max_seconds, frontend)
    path = Path(cache_dir) / f"fbank-{key[:40]}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            return list(stored["fbank"])
    fbanks = compute_fbanks(wav_paths, frontend, max_seconds, desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"key": key, "fbank": fbanks}, tmp)
    return fbanks
