"""Whole-set feature extraction for the per-epoch clustering (resumable, with a progress bar).

The feature of a clip is ``DecarModel.features`` in eval mode (no dropout, no SpecAugment):
the last hidden layer of the MLP head, as DeepCluster clusters the penultimate layer.
Extraction reuses ``espnet2_sonar.sampling.embed.extract_embeddings``: clips are batched by
length, written in atomic shards and a re-run skips finished shards, so an interrupted and
resumed extraction equals an uninterrupted one. Batching is exact because both encoders
are padding-invariant in eval mode.

A cache is tied to the model weights by ``tag`` (a digest of the weights): a cache left by
other weights (an older attempt at this epoch that trained differently) is deleted and
recomputed rather than reused.
"""

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch
from torch import nn

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.sampling.embed import EmbeddingSet, extract_embeddings
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

Reader = Callable[[str], np.ndarray]


class ClusterFeatureExtractor(nn.Module, FrozenExtractor):
    """Adapter giving a ``DecarModel`` the extractor interface of ``sampling.embed``.

    ``extract_layers`` -> [features [B, 1, H]]; ``patch_lengths`` -> ones (one position).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)  # extract_embeddings restores this mode afterwards

    def extract_layers(self, wavs: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        # ``extract_embeddings`` runs under inference_mode; leave it here, so tensors a module
        # caches on the way (BEATs' relative-position buckets) stay usable by training later.
        with torch.inference_mode(False), torch.no_grad():
            return [self.model.features(wavs.clone(), lengths.clone(), augment=False)[:, None, :]]

    def patch_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(lengths)


def weights_digest(module: nn.Module, skip_prefixes: tuple = ("classifier.",)) -> str:
    """sha1 of the module's state (names, shapes, bytes), ignoring keys under ``skip_prefixes``."""
    h = hashlib.sha1()
    for name, value in sorted(module.state_dict().items()):
        if name.startswith(skip_prefixes):
            continue
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def sound_reader(loader_type: str = "sonar_sound_resample_mix", sample_rate: int = SAMPLE_RATE) -> Reader:
    """Path -> float32 mono [T] following an ESPnet ``sonar_sound*`` data type's rules
    (``_resample``: other rates resampled, else an error; ``_mix``: channels averaged, else an error)."""
    from espnet2_sonar.data.audio import load_audio

    rate = "resample" if "resample" in loader_type else "error"
    mix = "mix" if "mix" in loader_type else "error"

    def read(path: str) -> np.ndarray:
        wav, _ = load_audio(path, target_sr=sample_rate, on_rate_mismatch=rate, on_multichannel=mix)
        return np.asarray(wav, dtype=np.float32)

    return read


def extract_cluster_features(
    model: nn.Module,
    wav_scp: str | Path,
    cache_dir: str | Path,
    *,
    tag: str,
    batch_size: int = 16,
    shard_size: int = 256,
    max_seconds: Optional[float] = 10.0,
    reader: Optional[Reader] = None,
    progress: bool = True,
) -> EmbeddingSet:
    """Features [N, H] of every clip of ``wav_scp`` (scp order), cached in ``cache_dir``.

    Args:
        model: a ``DecarModel`` (run in eval mode under inference_mode; its mode is restored).
        tag: identifies the weights (e.g. ``weights_digest(model)``); a cache with another tag
            is deleted first.
        max_seconds: clips are cut to their first ``max_seconds`` (None or <= 0: whole clips).
        reader: path -> mono float32 [T] at 16 kHz (default: ``sound_reader()``).
    """
    cache_dir = Path(cache_dir)
    meta = cache_dir / "meta.json"
    if meta.is_file():
        try:
            old_tag = json.loads(meta.read_text()).get("tag")
        except json.JSONDecodeError:
            old_tag = None
        if old_tag != tag:
            logging.info(f"{cache_dir}: features of other weights ({old_tag}); recomputing")
            shutil.rmtree(cache_dir)
    return extract_embeddings(
        ClusterFeatureExtractor(model),
        wav_scp,
        cache_dir,
        layer=0,
        batch_size=batch_size,
        shard_size=shard_size,
        min_seconds=0.025,
        max_seconds=max_seconds if max_seconds and max_seconds > 0 else None,
        reader=reader or sound_reader(),
        tag=tag,
        progress=progress,
    )
