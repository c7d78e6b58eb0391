"""Teacher embeddings for S-SONDO: extracted once, cached on disk, read by the training task.

The teacher (any checkpoint ``espnet2_sonar.eval.checkpoints.load_encoder`` reads: an
official BEATs ``.pt``, an ESPnet ``.pth`` or exp dir; the caller loads it, as
``bin.ssondo_extract`` does) embeds every clip of a wav.scp as one layer's mean over valid
patches, on exactly the audio the student will see:

* audio read like the ``sonar_sound_resample_mix`` data type (16 kHz, mono);
* long clips cropped like the task's preprocessor (``DeterministicCrop``: at most
  ``crop_seconds``, offset fixed by a hash of ``(crop_seed, utterance id)``).

Extraction reuses ``espnet2_sonar.sampling.embed.extract_embeddings`` (resumable shards,
tqdm progress bar, batching by length); the teacher, its file content, the layer and the
crop are part of the cache key, so a cache made otherwise is refused. The cache dir::

    embeddings.npy, ids.txt, meta.json, shards/   (extract_embeddings)
    teacher.json                                  what the training task and report read

ESPnet data type ``ssondo_embeddings`` (registered by :func:`register_data_types`):
``--train_data_path_and_name_and_type DIR,teacher_emb,ssondo_embeddings`` maps each
utterance id to its float32 ``[D]`` row of ``DIR/embeddings.npy``.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
import torch

from espnet2_sonar.data.crop import DeterministicCrop
from espnet2_sonar.data.kaldi_dir import read_table
from espnet2_sonar.sampling.embed import EmbeddingSet, embed_batch, extract_embeddings, load_cached
from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.checkpoint_files import resolve_checkpoint
from espnet2_sonar.utils.hashing import files_sha256
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

TEACHER_JSON = "teacher.json"
DATA_TYPE = "ssondo_embeddings"


@dataclass
class TeacherInfo:
    """What a teacher cache holds (``teacher.json``)."""

    teacher: str
    """Checkpoint path as given."""
    teacher_sha256: str
    """sha256 of the checkpoint file(s)."""
    layer: int
    """Hidden-state index that was pooled (negative: from the end)."""
    crop_seconds: float | None
    """Clips longer than this were cropped (None: whole clips)."""
    crop_seed: int
    """Seed of the crop offsets."""
    dim: int
    """Embedding width D_t."""
    num_items: int
    teacher_params: int
    """Parameters of the teacher encoder."""
    precision: str = "fp32"
    """Precision of the teacher's forward (``utils.precision``); caches without it were fp32."""

    @classmethod
    def read(cls, cache_dir: str | Path) -> "TeacherInfo":
        path = Path(cache_dir) / TEACHER_JSON
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; {cache_dir} is not a finished S-SONDO teacher cache")
        return cls(**json.loads(path.read_text()))


class CroppedReader:
    """``path -> float32 [T]``: 16 kHz mono audio cropped as the training task crops it.

    ``extract_embeddings`` calls its reader with the wav.scp value; the crop offset depends
    on the utterance id, recovered here from the (unique) path.
    """

    def __init__(self, scp: Dict[str, str], crop_seconds: float | None, crop_seed: int):
        by_path: Dict[str, str] = {}
        for utt, path in scp.items():
            if path in by_path and crop_seconds is not None:
                raise ValueError(
                    f"utterances {by_path[path]!r} and {utt!r} share the audio {path}; with cropping "
                    "every utterance needs its own wav.scp entry value"
                )
            by_path[path] = utt
        self.by_path = by_path
        max_samples = None if crop_seconds is None else int(round(crop_seconds * SAMPLE_RATE))
        self.crop = DeterministicCrop(max_samples, seed=crop_seed)

    def read(self, utt: str, path: str) -> np.ndarray:
        from espnet2_sonar.data.audio import load_audio

        wav, _ = load_audio(path, target_sr=SAMPLE_RATE)
        return self.crop(utt, {"speech": np.asarray(wav, dtype=np.float32)})["speech"]

    def __call__(self, path: str) -> np.ndarray:
        return self.read(self.by_path[path], path)


def cache_teacher_embeddings(
    teacher_ckpt: str | Path,
    wav_scp: str | Path,
    cache_dir: str | Path,
    *,
    teacher: torch.nn.Module,
    layer: int = -1,
    crop_seconds: float | None = 10.0,
    crop_seed: int = 0,
    batch_size: int = 8,
    max_batch_seconds: float | None = 160.0,
    shard_size: int = 256,
    num_workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    precision: str = "fp32",
) -> EmbeddingSet:
    """Embed every clip of ``wav_scp`` with the teacher (resumable; see the module docstring).

    Args:
        teacher_ckpt: teacher checkpoint (official ``.pt``, ESPnet ``.pth`` or exp dir); its
            files key the cache.
        teacher: the encoder loaded from ``teacher_ckpt`` (``eval.checkpoints.load_encoder``).
        layer: index into the teacher's hidden states (-1: final output).
        crop_seconds, crop_seed: must equal the training task's ``--crop_seconds`` and
            ``--crop_seed`` (the task checks).
        batch_size, max_batch_seconds: teacher batch limits (items; padded audio seconds).
        shard_size: items per resumable shard.
        num_workers: audio reading threads.
        precision: fp32 / bf16 / fp16 of the teacher's forward (embeddings stay float32).
    Returns:
        EmbeddingSet (ids in wav.scp order, float32 [N, D_t]).
    """
    cache_dir = Path(cache_dir)
    files = resolve_checkpoint(teacher_ckpt).files
    sha = files_sha256(files)
    tag = json.dumps({"teacher_sha256": sha, "crop_seconds": crop_seconds, "crop_seed": int(crop_seed)}, sort_keys=True)
    scp = read_table(wav_scp)
    teacher = teacher.to(device).eval()
    result = extract_embeddings(
        teacher,
        wav_scp,
        cache_dir,
        layer=layer,
        batch_size=batch_size,
        max_batch_samples=None if max_batch_seconds is None else int(max_batch_seconds * SAMPLE_RATE),
        shard_size=shard_size,
        sample_rate=SAMPLE_RATE,
        min_seconds=0.0,
        max_seconds=None,
        reader=CroppedReader(scp, crop_seconds, crop_seed),
        num_workers=num_workers,
        tag=tag,
        progress=progress,
        precision=precision,
    )
    info = TeacherInfo(
        teacher=str(teacher_ckpt),
        teacher_sha256=sha,
        layer=int(layer),
        crop_seconds=crop_seconds,
        crop_seed=int(crop_seed),
        dim=int(result.embeddings.shape[1]),
        num_items=len(result),
        teacher_params=sum(p.numel() for p in teacher.parameters()),
        precision=precision,
    )
    atomic_write(cache_dir / TEACHER_JSON, json.dumps(asdict(info), indent=2) + "\n")
    return result


@torch.inference_mode()
def fresh_teacher_embeddings(
    teacher: torch.nn.Module,
    wav_scp: str | Path,
    utts: List[str],
    *,
    layer: int = -1,
    crop_seconds: float | None = 10.0,
    crop_seed: int = 0,
    precision: str = "fp32",
) -> np.ndarray:
    """The teacher embeddings of ``utts`` computed now, one clip at a time: float32 [n, D_t].

    The reference a cache must equal (no batching, no shards, no disk).
    """
    scp = read_table(wav_scp)
    reader = CroppedReader(scp, crop_seconds, crop_seed)
    teacher.eval()
    return np.concatenate([embed_batch(teacher, [reader.read(u, scp[u])], layer, precision) for u in utts])


class TeacherEmbeddingTable:
    """ESPnet loader: mapping ``utt_id -> float32 [D_t]`` over a teacher cache.

    ``path`` is the cache dir or its ``embeddings.npy`` (``ids.txt`` beside it).
    """

    def __init__(self, path: str | Path, float_dtype: str | None = None):
        path = Path(path)
        self.cache_dir = path if path.is_dir() else path.parent
        cached = load_cached(self.cache_dir)
        self.dtype = np.dtype(float_dtype or "float32")
        self.embeddings = cached.embeddings.astype(self.dtype, copy=False)
        self.index = {u: i for i, u in enumerate(cached.ids)}

    def keys(self):
        return self.index.keys()

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[str]:
        return iter(self.index)

    def __contains__(self, key) -> bool:
        return key in self.index

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.embeddings[self.index[key]]
        except KeyError:
            raise KeyError(
                f"utterance {key!r} has no teacher embedding in {self.cache_dir} "
                "(extract the cache from the same wav.scp as the training list)"
            ) from None


def register_data_types() -> None:
    """Add the ``ssondo_embeddings`` type to ESPnet's DATA_TYPES (idempotent)."""
    from espnet2.train.dataset import DATA_TYPES

    if DATA_TYPE in DATA_TYPES:
        return
    DATA_TYPES[DATA_TYPE] = dict(
        func=TeacherEmbeddingTable,
        kwargs=["float_dtype"],
        help="S-SONDO teacher embedding cache dir (embeddings.npy + ids.txt), one row per utterance",
    )
