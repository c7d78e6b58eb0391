"""Clip embeddings for sampling: one encoder layer, mean-pooled over valid frames, cached on disk.

The extractor is a ``torch.nn.Module`` with
``extract_layers(wavs: Tensor[B, T], lengths: Tensor[B]) -> list[Tensor[B, N, D]]``
(hidden states; ``layer`` indexes this list, negative from the end).

A ``nn.frozen_extractor.FrozenExtractor`` also gives ``patch_lengths(lengths: Tensor[B]) ->
Tensor[B]``, the valid positions along N per item: its items are batched by similar length
and padded, and the mean runs over the first ``patch_lengths`` positions only. Any other
module's items run alone (no padding can enter the mean).

Cache layout (``cache_dir``)::

    meta.json                 what was extracted (scp fingerprint, layer, tag, ...)
    shards/00000.npz ...      ids [n] + embeddings [n, D] of consecutive scp chunks
    embeddings.npy, ids.txt   the whole set, written when every shard is done

Extraction is resumable: a shard is written atomically once computed, and a re-run skips
shards that exist; each shard's result depends only on its own items, so an interrupted
and resumed extraction gives the same array as an uninterrupted one. A cache whose
``meta.json`` disagrees with the request raises an error instead of being reused.

Precision: ``precision`` (``utils.precision``) runs ``extract_layers`` under autocast; the
pooled embeddings are float32 whatever the precision. A non-fp32 precision is part of the
cache's meta (an fp32 cache has no ``precision`` key, as before the option existed).
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np
import torch
from tqdm import tqdm

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.nn.pooling import masked_mean
from espnet2_sonar.sampling.mixing import read_kaldi_map
from espnet2_sonar.utils.atomic_write import atomic_path
from espnet2_sonar.utils.precision import autocast_context
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

CACHE_VERSION = 1

Reader = Callable[[str], np.ndarray]


@dataclass
class EmbeddingSet:
    """ids: [N] utterance ids (wav.scp order); embeddings: float32 [N, D]."""

    ids: List[str]
    embeddings: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def default_reader(sample_rate: int = SAMPLE_RATE) -> Reader:
    """Audio reader built on ``espnet2_sonar.data.audio.load_audio`` (mono, resampled)."""

    def read(path: str) -> np.ndarray:
        from espnet2_sonar.data.audio import load_audio

        audio, _ = load_audio(path, target_sr=sample_rate)
        return np.asarray(audio, dtype=np.float32)

    return read


def mean_pool(hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the first ``valid[b]`` positions. hidden [B, N, D], valid int [B] -> [B, D]."""
    n = hidden.shape[1]
    return masked_mean(hidden, valid.to(hidden.device).long().clamp(min=1, max=n), dim=1)


def _module_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


@torch.inference_mode()
def embed_batch(module: torch.nn.Module, wavs: Sequence[np.ndarray], layer: int = -1,
                precision: str = "fp32") -> np.ndarray:
    """Embed one batch of 1-D waveforms (zero-padded together) -> float32 [B, D]."""
    device = _module_device(module)
    lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    batch = torch.zeros(len(wavs), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    with autocast_context(precision, device):
        layers = module.extract_layers(batch.to(device), lengths.to(device))
    try:
        hidden = layers[layer]
    except IndexError:
        raise IndexError(f"layer {layer} out of range: the extractor returned {len(layers)} layers") from None
    if isinstance(module, FrozenExtractor):
        valid = torch.as_tensor(module.patch_lengths(lengths.to(device)))
    else:
        valid = torch.full((len(wavs),), hidden.shape[1], dtype=torch.long)
    return mean_pool(hidden.float(), valid).cpu().numpy().astype(np.float32)


def _plan_batches(lengths: Sequence[int], batch_size: int, max_batch_samples: int | None) -> List[List[int]]:
    """Group indices by similar length (longest first): <= batch_size items and, when set,
    <= max_batch_samples padded samples per batch (a single longer item still runs alone)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches, cur = [], []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        too_big = max_batch_samples is not None and (len(cur) + 1) * longest > max_batch_samples
        if cur and (len(cur) >= batch_size or too_big):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def _scp_fingerprint(scp: dict) -> str:
    h = hashlib.sha1()
    for k, v in scp.items():
        h.update(f"{k} {v}\n".encode())
    return h.hexdigest()


def _save_npz_atomic(path: Path, **arrays) -> None:
    with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to a name without it
        np.savez(tmp, **arrays)


def _prepare_audio(wav: np.ndarray, utt: str, min_samples: int, max_samples: int | None) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"{utt}: the reader must return mono 1-D audio, got shape {wav.shape}")
    if wav.size == 0:
        raise ValueError(f"{utt}: empty audio")
    if max_samples is not None and wav.size > max_samples:
        wav = wav[:max_samples]
    if wav.size < min_samples:  # tile very short clips so the encoder sees at least one patch
        wav = np.tile(wav, int(np.ceil(min_samples / wav.size)))[:min_samples]
    return wav


def load_cached(cache_dir: str | Path) -> EmbeddingSet:
    """Load a finished cache (``embeddings.npy`` + ``ids.txt``)."""
    cache_dir = Path(cache_dir)
    emb_path, ids_path = cache_dir / "embeddings.npy", cache_dir / "ids.txt"
    if not (emb_path.is_file() and ids_path.is_file()):
        raise FileNotFoundError(f"{cache_dir}: no finished embedding cache (embeddings.npy, ids.txt)")
    ids = ids_path.read_text(encoding="utf-8").split()
    emb = np.load(emb_path)
    if emb.shape[0] != len(ids):
        raise ValueError(f"{cache_dir}: {emb.shape[0]} embeddings but {len(ids)} ids")
    return EmbeddingSet(ids=ids, embeddings=emb)


def extract_embeddings(
    module: torch.nn.Module,
    wav_scp: str | Path,
    cache_dir: str | Path,
    *,
    layer: int = -1,
    batch_size: int = 16,
    max_batch_samples: int | None = None,
    shard_size: int = 256,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float = 0.25,
    max_seconds: float | None = None,
    reader: Reader | None = None,
    num_workers: int = 0,
    tag: str = "",
    progress: bool = True,
    precision: str = "fp32",
) -> EmbeddingSet:
    """Embed every entry of a Kaldi ``wav.scp`` (resumable, cached in ``cache_dir``).

    Args:
        module: extractor (see the module docstring); run in eval mode under inference_mode.
        wav_scp: ``utt_id path`` lines; each path is passed to ``reader``.
        cache_dir: where shards and the final arrays go.
        layer: index into ``extract_layers``' list.
        batch_size, max_batch_samples: batch limits (items; padded samples).
        shard_size: items per resumable shard (consecutive scp lines).
        sample_rate: sample rate the reader resamples to.
        min_seconds: shorter clips are tiled up to this length.
        max_seconds: longer clips are cut to their first ``max_seconds`` (None: no cut).
        reader: path -> mono float32 [T]; default :func:`default_reader`.
        num_workers: threads reading audio (0: in the main thread).
        tag: free text identifying the extractor (e.g. checkpoint path); part of the
            cache key, so a cache made with another model is refused.
        progress: show a tqdm bar.
        precision: ``fp32`` / ``bf16`` / ``fp16`` of the extractor's forward.

    Returns:
        :class:`EmbeddingSet` in wav.scp order.
    """
    scp = read_kaldi_map(wav_scp)
    if not scp:
        raise ValueError(f"{wav_scp}: empty wav.scp")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}")
    reader = reader or default_reader(sample_rate)
    cache_dir = Path(cache_dir)
    meta = {
        "version": CACHE_VERSION,
        "scp_sha1": _scp_fingerprint(scp),
        "num_items": len(scp),
        "layer": int(layer),
        "shard_size": int(shard_size),
        "sample_rate": int(sample_rate),
        "min_seconds": float(min_seconds),
        "max_seconds": None if max_seconds is None else float(max_seconds),
        "tag": tag,
    }
    autocast_context(precision, _module_device(module))  # fail before any work
    if precision != "fp32":
        meta["precision"] = precision
    meta_path = cache_dir / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        diff = sorted(k for k in set(meta) | set(old) if meta.get(k) != old.get(k))
        if diff:
            raise ValueError(
                f"{cache_dir}: embedding cache was made with different settings ({', '.join(diff)}); "
                "delete it or use another cache_dir"
            )
        if (cache_dir / "embeddings.npy").is_file():
            cached = load_cached(cache_dir)
            if cached.ids == list(scp):
                return cached
    (cache_dir / "shards").mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    ids = list(scp)
    shards = [ids[i : i + shard_size] for i in range(0, len(ids), shard_size)]
    shard_paths = [cache_dir / "shards" / f"{j:05d}.npz" for j in range(len(shards))]
    todo = [j for j, p in enumerate(shard_paths) if not p.is_file()]
    min_samples = int(round(min_seconds * sample_rate))
    max_samples = None if max_seconds is None else int(round(max_seconds * sample_rate))
    per_item = not isinstance(module, FrozenExtractor)

    def load(utt: str) -> np.ndarray:
        try:
            wav = reader(scp[utt])
        except Exception as e:
            raise RuntimeError(f"{wav_scp}: cannot read {utt} ({scp[utt]}): {e}") from e
        return _prepare_audio(wav, utt, min_samples, max_samples)

    was_training = module.training
    module.eval()
    pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None
    bar = tqdm(
        total=len(ids),
        initial=len(ids) - sum(len(shards[j]) for j in todo),
        desc=f"embed {Path(wav_scp).parent.name or wav_scp}",
        unit="utt",
        disable=not progress,
    )
    try:
        for j in todo:
            utts = shards[j]
            wavs = list(pool.map(load, utts)) if pool else [load(u) for u in utts]
            emb = [None] * len(utts)
            lengths = [len(w) for w in wavs]
            plan = [[i] for i in range(len(utts))] if per_item else _plan_batches(lengths, batch_size, max_batch_samples)
            for group in plan:
                out = embed_batch(module, [wavs[i] for i in group], layer, precision)
                for i, row in zip(group, out):
                    emb[i] = row
                bar.update(len(group))
            _save_npz_atomic(shard_paths[j], ids=np.array(utts), embeddings=np.stack(emb))
    finally:
        bar.close()
        if pool:
            pool.shutdown()
        module.train(was_training)

    parts, got_ids = [], []
    for j, p in enumerate(shard_paths):
        with np.load(p) as z:
            if z["ids"].tolist() != shards[j]:
                raise ValueError(f"{p}: shard ids do not match {wav_scp}; delete {cache_dir}")
            parts.append(z["embeddings"])
            got_ids.extend(shards[j])
    embeddings = np.concatenate(parts).astype(np.float32)
    with atomic_path(cache_dir / "embeddings.npy", suffix=".npy") as tmp:  # np.save adds .npy to a name without it
        np.save(tmp, embeddings)
        (cache_dir / "ids.txt").write_text("\n".join(got_ids) + "\n", encoding="utf-8")
    return EmbeddingSet(ids=got_ids, embeddings=embeddings)
