"""DecarModel: encoder + MLP head + classifier trained with cross-entropy on cluster pseudo-labels.

    speech -> [band limit, training only] -> spectrogram -> [SpecAugment, training only]
      -> encoder -> mean over time [B, D]
      -> head: (Dropout -> Linear -> ReLU) per ``head_dims`` -> feature [B, H]
      -> classifier Linear(H, k) -> CE(logits, pseudo_label)

The paper's head is 1280-512-512-k. Each epoch the feature H of every training clip is
clustered (see ``recluster.py``) and the classifier is re-initialised
(``reset_classifier_``), as in DeepCluster: cluster indices carry no meaning across epochs.
"""

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_sonar.decar.augment import BandLimit
from espnet2_sonar.decar.config import DecarConfig
from espnet2_sonar.decar.encoders import pooled_embedding, spectrogram
from espnet2_sonar.nn.specaug import SpecAugment
from espnet2_sonar.utils.seeding import derive_seed


def _mlp(dim: int, hidden: list, dropout: float) -> nn.Sequential:
    layers = []
    for h in hidden:
        layers += [nn.Dropout(dropout), nn.Linear(dim, h), nn.ReLU()]
        dim = h
    return nn.Sequential(*layers)


class DecarModel(AbsESPnetModel):
    """DECAR pre-training model.

    Args:
        encoder: an ``EfficientNetEncoder`` or a ``BeatsEncoder`` (``output_size()`` = D).
        config: ``DecarConfig`` or its dict.
    """

    def __init__(self, encoder: nn.Module, config: DecarConfig | dict | None = None):
        super().__init__()
        self.config = config if isinstance(config, DecarConfig) else DecarConfig.from_dict(config)
        cfg = self.config
        self.encoder = encoder
        self.head = _mlp(encoder.output_size(), cfg.head_dims, cfg.head_dropout)
        self.classifier = nn.Linear(cfg.feature_dim, cfg.num_clusters)
        self.augment = SpecAugment(cfg.specaug())  # draws from the generator forward passes (seed, step)
        self.band_limit = BandLimit(cfg.lowpass_prob, cfg.lowpass_min_hz, cfg.lowpass_max_hz)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.reset_classifier_(torch.Generator().manual_seed(cfg.seed))

    @property
    def num_clusters(self) -> int:
        return self.classifier.out_features

    def reset_classifier_(self, generator: torch.Generator) -> None:
        """Re-initialise the classifier: weight ~ N(0, classifier_init_std^2) drawn from ``generator``, bias 0."""
        w = torch.randn(self.classifier.weight.shape, generator=generator) * self.config.classifier_init_std
        with torch.no_grad():
            self.classifier.weight.copy_(w.to(self.classifier.weight))
            self.classifier.bias.zero_()

    def _augment_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.config.seed, "decar.augment", int(self.step)))

    def features(self, speech: torch.Tensor, speech_lengths: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """The clustered feature: head output [B, H] (dropout active only in training mode)."""
        if speech.dim() == 3:
            speech = speech.squeeze(-1)
        speech = speech[:, : int(speech_lengths.max())]
        generator = self._augment_generator() if augment else None
        if augment and self.band_limit.active:
            speech = self.band_limit(speech, speech_lengths, generator)
        spec = spectrogram(self.encoder, speech, speech_lengths)
        if augment and self.augment.active:
            spec.feats, _ = self.augment(spec.feats, spec.frame_lengths, generator)
        return self.head(pooled_embedding(self.encoder, spec))

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        pseudo_label: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """One step.

        Args:
            speech: [B, T] 16 kHz waveforms (zero padded); speech_lengths: [B].
            pseudo_label: LongTensor[B], this epoch's cluster of each clip (added to the batch
                by ``PseudoLabelIterFactory``).
        Returns:
            loss (scalar), stats {loss, acc}, batch size (weight).
        """
        if pseudo_label is None:
            raise ValueError(
                "DecarModel needs 'pseudo_label' in the batch; train it with DecarTask, whose "
                "iterators add the epoch's cluster assignments"
            )
        target = pseudo_label.reshape(-1).long().to(speech.device)
        if target.numel() != speech.shape[0]:
            raise ValueError(f"pseudo_label has {target.numel()} entries for a batch of {speech.shape[0]}")
        if int(target.min()) < 0 or int(target.max()) >= self.num_clusters:
            raise ValueError(f"pseudo_label out of range [0, {self.num_clusters}): {target.tolist()}")
        logits = self.classifier(self.features(speech, speech_lengths, augment=self.training))  # [B, k]
        loss = nn.functional.cross_entropy(logits, target)
        acc = (logits.argmax(dim=-1) == target).float().mean()
        if self.training:
            self.step += 1
        stats = {"loss": loss.detach(), "acc": acc.detach()}
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def collect_feats(self, speech, speech_lengths, **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
