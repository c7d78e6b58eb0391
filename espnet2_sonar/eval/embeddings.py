"""Per-layer mean-pooled embeddings of a labelled Kaldi-style data dir, with a disk cache.

For every utterance the frozen encoder's hidden states of all layers (input to layer 1
first, final output last) are averaged over the valid patches, giving ``[L+1, D]``.
Averaging over all patches equals averaging the per-time-step frequency means (every
time step has the same number of frequency patches), so this is "mean pooling over
time" of the 160 ms frames the s3prl upstream exposes.

Long recordings are cut into ``ceil(T / chunk)`` equal chunks of at most
``chunk_seconds`` (attention memory grows with the square of the length); the pooled
embedding is then the patch-count-weighted mean of the chunk means (each chunk, like any
BEATs input, drops its trailing partial patch).

Precision: ``precision`` (``utils.precision``) runs the encoder under autocast; the fbank
stays fp32 and the pooled embeddings are fp32 whatever the precision.

Cache: one file per (checkpoint content, chunking, precision, wav.scp content, every audio
file's size and mtime) under ``cache_dir``; a later probe seed on the same checkpoint and
data reads it instead of running the encoder.
"""

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import torch
from torch import Tensor
from tqdm import tqdm

from espnet2_sonar.data.labelled_dir import LabelledDir
from espnet2_sonar.nn.pooling import pool_layers
from espnet2_sonar.utils.atomic_write import atomic_path
from espnet2_sonar.utils.precision import autocast_context
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

CACHE_FORMAT = 1
"""Bump when the pooled values for the same inputs change; old cache files are then ignored."""


def _load_wave(path: str) -> Tensor:
    from espnet2_sonar.data.audio import load_audio

    wav, _ = load_audio(path, target_sr=SAMPLE_RATE)
    wav = torch.as_tensor(wav, dtype=torch.float32)
    if wav.dim() != 1:
        raise ValueError(f"{path}: expected mono audio, got an array of shape {tuple(wav.shape)}")
    return wav


def _chunks(num_samples: int, chunk_samples: Optional[int]) -> List[tuple]:
    """Equal chunks (start, end) of at most ``chunk_samples`` covering [0, num_samples)."""
    if chunk_samples is None or num_samples <= chunk_samples:
        return [(0, num_samples)]
    k = math.ceil(num_samples / chunk_samples)
    bounds = [round(i * num_samples / k) for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


@torch.no_grad()
def extract_pooled(
    encoder,
    wav_paths: List[str],
    batch_size: int = 8,
    chunk_seconds: Optional[float] = 10.0,
    device: str = "cpu",
    desc: str = "embeddings",
    precision: str = "fp32",
) -> Tensor:
    """Pooled per-layer embeddings of every file.

    Args:
        encoder: a BeatsEncoder (``extract_layers``, ``patch_lengths``), in eval mode.
        wav_paths: [n] audio files (read with ``espnet2_sonar.data.audio.load_audio`` at 16 kHz).
        batch_size: chunks per encoder call; chunks are sorted by length to limit padding.
        chunk_seconds: longest piece fed to the encoder at once; None for no cutting.
        precision: ``fp32`` / ``bf16`` / ``fp16`` of the encoder's forward.
    Returns:
        [n, L+1, D] float32 on the CPU.
    """
    autocast_context(precision, device)  # fail before reading any audio
    chunk = None if chunk_seconds is None else int(round(chunk_seconds * SAMPLE_RATE))
    encoder.eval()
    n = len(wav_paths)
    sums, counts = None, torch.zeros(n, dtype=torch.float64)
    block = batch_size * 16  # files read at a time: bounded memory, chunks sorted within it
    with tqdm(total=n, desc=desc, unit="file") as bar:
        for first in range(0, n, block):
            waves = {i: _load_wave(wav_paths[i]) for i in range(first, min(first + block, n))}
            pieces = [(i, s, e) for i, w in waves.items() for s, e in _chunks(w.numel(), chunk)]
            pieces.sort(key=lambda x: x[2] - x[1], reverse=True)
            for b in range(0, len(pieces), batch_size):
                batch = pieces[b : b + batch_size]
                lengths = torch.tensor([e - s for _, s, e in batch], dtype=torch.long)
                wavs = torch.zeros(len(batch), int(lengths.max()))
                for j, (i, s, e) in enumerate(batch):
                    wavs[j, : e - s] = waves[i][s:e]
                with autocast_context(precision, device):
                    layers = encoder.extract_layers(wavs.to(device), lengths.to(device))
                valid = encoder.patch_lengths(lengths.to(device)).cpu()
                pooled = pool_layers(layers, valid).double().cpu()  # [b, L+1, D]
                if sums is None:
                    sums = torch.zeros(n, *pooled.shape[1:], dtype=torch.float64)
                for j, (i, _, _) in enumerate(batch):
                    sums[i] += pooled[j] * valid[j]
                    counts[i] += valid[j]
            bar.update(len(waves))
    return (sums / counts[:, None, None]).float()


def _file_digest(path: Path, h) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)


def cache_key(ckpt_files: List[Path], data: LabelledDir, chunk_seconds: Optional[float],
              precision: str = "fp32") -> str:
    """sha256 over the checkpoint files' content, the chunking, the precision (when not fp32,
    so fp32 caches made before the option stay valid), wav.scp and each audio file's size/mtime."""
    tag = "" if precision == "fp32" else f"precision={precision};"
    h = hashlib.sha256(f"format={CACHE_FORMAT};chunk={chunk_seconds};{tag}".encode())
    for f in ckpt_files:
        _file_digest(Path(f), h)
    _file_digest(data.path / "wav.scp", h)
    for utt, p in zip(data.utt_ids, data.wav_paths):
        st = os.stat(p)
        h.update(f"{utt}\t{p}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class PooledEmbeddings:
    """Pooled per-layer embeddings of one data dir under one checkpoint."""

    utt_ids: List[str]
    embeddings: Tensor
    """[n, L+1, D] float32, rows in ``utt_ids`` order."""
    from_cache: bool
    cache_path: Optional[Path]


def default_cache_dir() -> Path:
    """``$ESPNET2_SONAR_CACHE/embeddings`` or ``~/.cache/espnet2_sonar/embeddings``."""
    root = os.environ.get("ESPNET2_SONAR_CACHE") or Path.home() / ".cache" / "espnet2_sonar"
    return Path(root) / "embeddings"


def load_or_extract(
    get_encoder: Callable[[], object],
    ckpt_files: List[Path],
    data: LabelledDir,
    cache_dir: Optional[Path],
    batch_size: int = 8,
    chunk_seconds: Optional[float] = 10.0,
    device: str = "cpu",
    desc: str = "embeddings",
    precision: str = "fp32",
) -> PooledEmbeddings:
    """Cached pooled embeddings of ``data``; ``get_encoder()`` is only called on a cache miss.

    ``cache_dir=None`` disables the cache. Cache files are written atomically.
    """
    path = None
    if cache_dir is not None:
        key = cache_key(ckpt_files, data, chunk_seconds, precision)
        path = Path(cache_dir) / f"{key[:40]}.pt"
        if path.is_file():
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") == key and stored.get("utt_ids") == data.utt_ids:
                return PooledEmbeddings(data.utt_ids, stored["embeddings"], True, path)
    emb = extract_pooled(get_encoder(), data.wav_paths, batch_size, chunk_seconds, device, desc, precision)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"key": key, "utt_ids": data.utt_ids, "embeddings": emb, "data_dir": str(data.path)}, tmp)
    return PooledEmbeddings(data.utt_ids, emb, False, path)
