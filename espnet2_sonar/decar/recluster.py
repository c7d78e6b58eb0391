"""The per-epoch DeepCluster step: features of the whole training set -> clusters -> pseudo-labels.

Layout under ``work_dir`` (``<output_dir>/decar`` in training)::

    epoch003/
        features_train/, features_valid/   resumable feature caches (deleted once clustered
                                           unless ``keep_features``)
        clustering.npz                     whitening, centroids, sizes, labels
        train.labels, valid.labels         ``<utt> <cluster>`` (valid: nearest train centroid)
        summary.json                       written last: the step is complete

A finished step whose ``summary.json`` names the same weights digest is reused, so a run
resumed in the middle of an epoch trains on exactly the labels of the uninterrupted run.
The k-means seed of epoch e is derived from (``config.seed``, e).
"""

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from torch import nn

from espnet2_sonar.decar.cluster_features import extract_cluster_features, sound_reader, weights_digest
from espnet2_sonar.decar.clustering import cluster_features, normalized_mutual_info
from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.seeding import derive_seed


@dataclass
class SplitData:
    """A split's audio list: Kaldi ``wav.scp`` and its ESPnet loader type (``sonar_sound*``)."""

    wav_scp: Path
    loader_type: str = "sonar_sound_resample_mix"


@dataclass
class EpochClusters:
    """Summary of one epoch's clustering (``summary.json``)."""

    epoch: int
    digest: str
    """Weights the features were computed with."""
    seed: int
    """k-means seed of this epoch."""
    num_items: int
    requested_k: int
    num_clusters: int
    """Non-empty clusters K (<= requested_k)."""
    min_size: int
    max_size: int
    objective: float
    nmi_previous: Optional[float]
    """NMI with the previous epoch's train labels (DeepCluster's stability measure)."""


def epoch_dir(work_dir: str | Path, epoch: int) -> Path:
    return Path(work_dir) / f"epoch{int(epoch):03d}"


def labels_path(work_dir: str | Path, epoch: int, split: str) -> Path:
    """``<work_dir>/epochNNN/<split>.labels``."""
    return epoch_dir(work_dir, epoch) / f"{split}.labels"


def kmeans_seed(seed: int, epoch: int) -> int:
    """Seed of the k-means that relabels the data for ``epoch``."""
    return derive_seed(int(seed), "decar.kmeans", int(epoch))


def write_labels(path: Path, ids: Sequence[str], labels: Sequence[int]) -> None:
    atomic_write(path, "".join(f"{u} {int(c)}\n" for u, c in zip(ids, labels)))


def read_labels(path: str | Path) -> Dict[str, int]:
    """``<utt> <cluster>`` lines -> dict; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pseudo-labels missing (the epoch's clustering step has not run)")
    out: Dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<utt> <cluster index>', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out


def _load_summary(path: Path) -> Optional[EpochClusters]:
    try:
        return EpochClusters(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def recluster_epoch(
    model: nn.Module,
    epoch: int,
    train: SplitData,
    valid: Optional[SplitData],
    work_dir: str | Path,
    progress: bool = True,
) -> EpochClusters:
    """Extract features of ``train`` (and ``valid``) with ``model``, cluster, write pseudo-labels.

    Args:
        model: a ``DecarModel`` (its ``config`` gives k, PCA size, seed, feature settings).
        epoch: 1-based epoch about to be trained.
        work_dir: see the module docstring.
    Returns:
        the epoch's :class:`EpochClusters` (also in ``summary.json``).
    """
    cfg = model.config
    out = epoch_dir(work_dir, epoch)
    out.mkdir(parents=True, exist_ok=True)
    digest = weights_digest(model)
    summary_path = out / "summary.json"
    done = _load_summary(summary_path) if summary_path.is_file() else None
    needed = [out / "train.labels"] + ([out / "valid.labels"] if valid is not None else [])
    if done is not None and done.digest == digest and all(p.is_file() for p in needed):
        logging.info(f"epoch {epoch}: reusing pseudo-labels of {out}")
        return done
    summary_path.unlink(missing_ok=True)

    def features(split: SplitData, name: str):
        return extract_cluster_features(
            model,
            split.wav_scp,
            out / f"features_{name}",
            tag=digest,
            batch_size=cfg.feature_batch_size,
            shard_size=cfg.feature_shard_size,
            max_seconds=cfg.feature_max_seconds,
            reader=sound_reader(split.loader_type),
            progress=progress,
        )

    train_feats = features(train, "train")
    seed = kmeans_seed(cfg.seed, epoch)
    clusters = cluster_features(
        train_feats.embeddings, cfg.num_clusters, pca_dim=cfg.pca_dim, niter=cfg.kmeans_niter, seed=seed
    )
    clusters.save(out / "clustering.npz")
    write_labels(out / "train.labels", train_feats.ids, clusters.labels)
    if valid is not None:
        valid_feats = features(valid, "valid")
        write_labels(out / "valid.labels", valid_feats.ids, clusters.assign(valid_feats.embeddings))

    nmi = None
    previous = labels_path(work_dir, epoch - 1, "train")
    if previous.is_file():
        old = read_labels(previous)
        if all(u in old for u in train_feats.ids):
            nmi = normalized_mutual_info(np.array([old[u] for u in train_feats.ids]), clusters.labels)
    summary = EpochClusters(
        epoch=int(epoch),
        digest=digest,
        seed=seed,
        num_items=len(train_feats.ids),
        requested_k=clusters.requested_k,
        num_clusters=clusters.num_clusters,
        min_size=int(clusters.sizes.min()),
        max_size=int(clusters.sizes.max()),
        objective=float(clusters.objective),
        nmi_previous=nmi,
    )
    atomic_write(summary_path, json.dumps(asdict(summary), indent=2) + "\n")
    if not cfg.keep_features:
        for name in ("train", "valid"):
            shutil.rmtree(out / f"features_{name}", ignore_errors=True)
    logging.info(
        f"epoch {epoch}: {summary.num_items} clips -> {summary.num_clusters} clusters "
        f"(sizes {summary.min_size}..{summary.max_size}), NMI vs previous {nmi}"
    )
    return summary


def labelled_ids(labels: Dict[str, int], keys: List[str], path: Path) -> List[int]:
    """Labels of ``keys`` in order; an error names ``path`` when one is missing."""
    missing = [k for k in keys if k not in labels]
    if missing:
        raise ValueError(f"{path}: no pseudo-label for {len(missing)} utterance(s), e.g. {missing[:3]}")
    return [labels[k] for k in keys]
