"""SsondoModel: student + mapping head trained to match cached teacher embeddings (ESPnet model).

    speech [B, T] -> StudentEncoder.embed -> e_s [B, D_s] -> MappingHead -> z [B, D_t]
    loss = mean_b  L(z_b, teacher_emb_b)          (L: cosine by default, see losses.py)

Only the student and the head are parameters; the teacher never runs during training.
Reported stats: ``loss`` and ``cos`` (mean cosine similarity of z and the teacher, whatever
the loss).
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch import Tensor

from espnet2_sonar.ssondo.losses import AbsEmbeddingLoss
from espnet2_sonar.students.encoder import StudentEncoder
from espnet2_sonar.students.head import MappingHead
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class SsondoConfig(StrictConfig):
    """``--model_conf`` of the S-SONDO task; unknown keys are errors."""

    teacher_dim: Optional[int] = None
    """Teacher embedding width D_t; None: read from the training teacher cache."""
    head_hidden: int = 768
    """Hidden width of the mapping head (S-SONDO: 768 or 1280)."""
    head_dropout: float = 0.2
    """Dropout inside the mapping head."""


class SsondoModel(AbsESPnetModel):
    """Embedding distillation model.

    Args:
        student: log-mel frontend + backbone.
        head: maps the student's clip embedding to the teacher's width.
        loss: per-item embedding loss.
    """

    def __init__(self, student: StudentEncoder, head: MappingHead, loss: AbsEmbeddingLoss):
        super().__init__()
        if head.input_size != student.output_size():
            raise ValueError(f"head input {head.input_size} != student output {student.output_size()}")
        self.student = student
        self.head = head
        self.loss = loss

    def map(self, speech: Tensor, speech_lengths: Tensor) -> Tensor:
        """Student embeddings mapped to the teacher space: [B, T], [B] -> [B, D_t]."""
        return self.head(self.student.embed(speech, speech_lengths))

    def forward(
        self,
        speech: Tensor,
        speech_lengths: Tensor,
        teacher_emb: Tensor,
        teacher_emb_lengths: Optional[Tensor] = None,
        **kwargs,
    ) -> Tuple[Tensor, Dict[str, Tensor], Tensor]:
        """speech [B, T], speech_lengths [B], teacher_emb [B, D_t] -> (loss, stats, weight)."""
        if teacher_emb.dim() != 2 or teacher_emb.shape[1] != self.head.output_size:
            raise ValueError(
                f"teacher_emb must be [B, {self.head.output_size}], got {tuple(teacher_emb.shape)}: "
                "the teacher cache and model_conf.teacher_dim disagree"
            )
        mapped = self.map(speech, speech_lengths)
        teacher = teacher_emb.to(mapped.dtype)
        loss = self.loss(mapped, teacher).mean()
        with torch.no_grad():
            cos = F.cosine_similarity(mapped, teacher, dim=-1).mean()
        stats = {"loss": loss.detach(), "cos": cos}
        loss, stats, weight = force_gatherable((loss, stats, speech.shape[0]), loss.device)
        return loss, stats, weight

    def collect_feats(self, speech: Tensor, speech_lengths: Tensor, **kwargs) -> Dict[str, Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
