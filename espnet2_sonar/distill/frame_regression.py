"""Base pre-training from a frozen frame teacher: the student regresses the teacher's frames.

    L = mean over valid time steps t of 1 - cos(W . mean_f M_l[t, f], mean_{k in t} T_j[k])

The student M (a BEATs encoder) reads the whole (unmasked) input; its layer ``student_layer``
is averaged over the 8 frequency patches of each 160 ms time step and mapped by a linear
head W to the teacher's width. The teacher's layer ``teacher_layer`` (frames every 10 ms) is
averaged over the 16 frames of the same time step. Only the encoder is kept afterwards.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_sonar.beats.frontend import FRAME_SHIFT as FBANK_SHIFT
from espnet2_sonar.beats.masking import valid_patches
from espnet2_sonar.teachers.frames import FrameTeacher
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class FrameRegressionConfig(StrictConfig):
    """Which layers are matched (Python indices into each model's list of layers)."""

    student_layer: int = -1
    """student hidden state regressed (-1: the final output)."""
    teacher_layer: int = -1
    """teacher layer regressed (-1: the last)."""


def pool_time_steps(frames: Tensor, lengths: Tensor, steps: int, per_step: int) -> Tensor:
    """Average ``per_step`` consecutive frames: [B, T', D] -> [B, steps, D] (missing frames count as 0
    and are left out of the mean; a step with no valid frame is 0)."""
    need = steps * per_step
    if frames.shape[1] < need:
        frames = F.pad(frames, (0, 0, 0, need - frames.shape[1]))
    frames = frames[:, :need]
    valid = valid_patches(lengths.to(frames.device), need).float()
    total = (frames * valid[..., None]).reshape(frames.shape[0], steps, per_step, -1).sum(2)
    count = valid.reshape(frames.shape[0], steps, per_step).sum(2)
    return total / count.clamp(min=1)[..., None]


class FrameRegressionModel(AbsESPnetModel):
    """Args: encoder (``BeatsEncoder``), teacher (``FrameTeacher``), config."""

    def __init__(self, encoder: nn.Module, teacher: FrameTeacher, config: FrameRegressionConfig | dict | None = None):
        super().__init__()
        self.config = config if isinstance(config, FrameRegressionConfig) else FrameRegressionConfig.from_dict(config)
        self.encoder = encoder
        self.teacher = teacher
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.head = nn.Linear(encoder.output_size(), teacher.output_dim)

    def state_dict(self, *args, **kwargs):
        # the teacher's weights live in their package: never in our checkpoints
        state = super().state_dict(*args, **kwargs)
        return type(state)((k, v) for k, v in state.items() if not k.startswith("teacher."))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state = {k: v for k, v in state_dict.items() if not k.startswith("teacher.")}
        state.update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})
        return super().load_state_dict(state, strict=strict, assign=assign)

    def time_steps(self, speech: Tensor, speech_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Student features pooled over frequency [B, S, D] and valid steps [B]."""
        enc = self.encoder.encode(speech, speech_lengths)
        x = enc.layers[self.config.student_layer]
        fp = self.encoder.freq_patches
        steps = x.shape[1] // fp
        return x.reshape(x.shape[0], steps, fp, -1).mean(2), enc.num_patches // fp

    def forward(self, speech: Tensor, speech_lengths: Tensor, **kwargs) -> Tuple[Tensor, Dict[str, Tensor], Tensor]:
        """speech [B, T] 16 kHz, speech_lengths [B] -> (loss, stats, batch size)."""
        if speech.dim() == 3:
            speech = speech.squeeze(-1)
        speech = speech[:, : int(speech_lengths.max())]
        student, steps = self.time_steps(speech, speech_lengths)  # [B, S, D], [B]
        target = self.teacher(speech, speech_lengths)
        per_step = self.encoder.patch_size * FBANK_SHIFT // target.frame_shift  # teacher frames a time step
        t = pool_time_steps(target.layers[self.config.teacher_layer], target.lengths, student.shape[1], per_step)
        cos = F.cosine_similarity(self.head(student).float(), t.float(), dim=-1)  # [B, S]
        valid = valid_patches(steps.to(cos.device), student.shape[1]).float()
        loss = ((1.0 - cos) * valid).sum() / valid.sum().clamp(min=1)
        stats = {"loss": loss.detach(), "cosine": (cos * valid).sum().detach() / valid.sum().clamp(min=1)}
        loss, stats, weight = force_gatherable((loss, stats, speech.shape[0]), loss.device)
        return loss, stats, weight

    def collect_feats(self, speech, speech_lengths, **kwargs) -> Dict[str, Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
