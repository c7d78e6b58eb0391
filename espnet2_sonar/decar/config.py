"""DecarConfig: every DECAR constant (PAPERS.md, "DECAR"), given as ``--model_conf``.

One config drives the model (MLP head, classifier, SpecAugment), the per-epoch
re-clustering (feature extraction, PCA-whitening, k-means) and the cluster-uniform sampler,
so a run's ``config.yaml`` records all of them.
"""

from dataclasses import dataclass, field
from typing import List

from espnet2_sonar.nn.specaug import SpecAugmentConfig
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class DecarConfig(StrictConfig):
    """DeepCluster-style pre-training of an audio encoder on pseudo-labels.

    Paper values (EfficientNet-B0 on AudioSet): ``num_clusters=512``, ``pca_dim=128``,
    ``kmeans_niter=20``, ``head_dims=[512, 512]`` (MLP 1280-512-512-k).
    """

    num_clusters: int = 512
    """k of k-means = outputs of the classifier layer."""
    head_dims: List[int] = field(default_factory=lambda: [512, 512])
    """Hidden sizes of the MLP between the pooled encoder output and the classifier; the
    last one is the feature clustered each epoch (DeepCluster clusters the penultimate layer)."""
    head_dropout: float = 0.5
    """Dropout before each hidden Linear of the MLP head (training only)."""
    classifier_init_std: float = 0.01
    """The classifier is re-initialised each epoch: weight ~ N(0, std^2), bias 0."""
    pca_dim: int = 128
    """PCA-whitening output size before k-means (clamped to the data's rank)."""
    kmeans_niter: int = 20
    """Lloyd iterations of faiss k-means."""
    seed: int = 0
    """Seeds k-means, the classifier re-initialisation, the sampler and SpecAugment; epoch e
    uses streams derived from (seed, e), so a resumed run repeats an uninterrupted one."""
    draws_per_epoch: int = 0
    """Clips drawn per epoch by the cluster-uniform sampler (0: the training set size N, as
    DeepCluster); more draws give more steps per clustering on small sets."""
    feature_batch_size: int = 16
    """Clips per encoder call during the whole-set feature extraction."""
    feature_max_seconds: float = 10.0
    """Clips are cut to their first this-many seconds for feature extraction (<= 0: no cut)."""
    feature_shard_size: int = 256
    """Clips per resumable feature shard."""
    bn_calibration_clips: int = 256
    """Clips (an evenly spaced subset of the training list) used to recompute BatchNorm running
    statistics before each clustering step and before export (0: never; see batchnorm.py)."""
    keep_features: bool = False
    """Keep each epoch's extracted features on disk (else deleted once clustered)."""
    freq_masks: int = 2
    """SpecAugment: frequency masks per clip (training only; 0 disables)."""
    freq_mask_width: int = 8
    """SpecAugment: largest frequency-mask width in bins."""
    time_masks: int = 2
    """SpecAugment: time masks per clip (training only; 0 disables)."""
    time_mask_ratio: float = 0.1
    """SpecAugment: largest time-mask width as a share of the clip's valid frames."""
    lowpass_prob: float = 0.0
    """Band limiting (training only, before SpecAugment): share of clips low-passed at a
    cutoff ~ U[lowpass_min_hz, lowpass_max_hz] (0 disables, as the paper's DECAR)."""
    lowpass_min_hz: float = 3000.0
    lowpass_max_hz: float = 6000.0

    def __post_init__(self):
        self.head_dims = [int(d) for d in self.head_dims]
        if self.num_clusters < 2:
            raise ValueError(f"num_clusters must be >= 2, got {self.num_clusters}")
        if not self.head_dims or min(self.head_dims) < 1:
            raise ValueError(f"head_dims must be a non-empty list of positive sizes, got {self.head_dims}")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        if self.pca_dim < 1 or self.kmeans_niter < 1:
            raise ValueError(f"pca_dim and kmeans_niter must be >= 1, got {self.pca_dim}, {self.kmeans_niter}")
        if self.draws_per_epoch < 0:
            raise ValueError(f"draws_per_epoch must be >= 0, got {self.draws_per_epoch}")
        if self.bn_calibration_clips < 0:
            raise ValueError(f"bn_calibration_clips must be >= 0, got {self.bn_calibration_clips}")
        if self.feature_batch_size < 1 or self.feature_shard_size < 1:
            raise ValueError("feature_batch_size and feature_shard_size must be >= 1")
        self.specaug()  # validates the SpecAugment fields (one set of checks, in nn.specaug)
        if not 0.0 <= self.lowpass_prob <= 1.0:
            raise ValueError(f"lowpass_prob must be in [0, 1], got {self.lowpass_prob}")
        if not 0.0 < self.lowpass_min_hz <= self.lowpass_max_hz:
            raise ValueError(
                f"need 0 < lowpass_min_hz <= lowpass_max_hz, got {self.lowpass_min_hz}, {self.lowpass_max_hz}"
            )

    def specaug(self) -> SpecAugmentConfig:
        """The SpecAugment part of this config (``nn.specaug``)."""
        return SpecAugmentConfig(
            freq_masks=self.freq_masks,
            freq_mask_width=self.freq_mask_width,
            time_masks=self.time_masks,
            time_mask_ratio=self.time_mask_ratio,
        )

    @property
    def feature_dim(self) -> int:
        """Size of the clustered feature (the last hidden layer of the head)."""
        return self.head_dims[-1]
