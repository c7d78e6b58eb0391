"""TokenizerTrainModel: BEATs tokenizer distillation from a frozen teacher, as an ESPnet model.

The tokenizer's estimator predicts the teacher's last layer from the quantized features;
loss = mean(1 - cos(teacher, estimate)) + commitment (``tokenizer/objective.py``). This is
the second half of a BEATs iteration: a tokenizer distilled from iteration i's model gives
iteration i + 1 its targets.
"""

from typing import Dict, Optional, Tuple

import torch

from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet2_sonar.distill.teacher import FrozenTeacher
from espnet2_sonar.tokenizer.objective import tokenizer_loss


class TokenizerTrainModel(AbsESPnetModel):
    """Args: tokenizer (``BeatsTokenizer`` with an estimator), teacher (``BeatsEncoder``)."""

    def __init__(self, tokenizer: torch.nn.Module, teacher: torch.nn.Module, commitment_weight: float = 1.0):
        super().__init__()
        self.tokenizer = tokenizer
        self.teacher = FrozenTeacher(teacher)
        self.commitment_weight = float(commitment_weight)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        is_replay: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """speech [B, T] 16 kHz, speech_lengths [B] -> (loss, stats, batch size)."""
        if speech.dim() == 3:
            speech = speech.squeeze(-1)
        speech = speech[:, : int(speech_lengths.max())]
        replay = None if is_replay is None else is_replay.reshape(speech.shape[0], -1)[:, 0].bool()
        target = self.teacher("encode", speech, speech_lengths)
        out = self.tokenizer(speech, speech_lengths, replay)
        terms = tokenizer_loss(out, target.layers[-1], target.padding_mask, self.commitment_weight)
        p = out.counts / out.counts.sum().clamp(min=1.0)
        perplexity = torch.exp(-(p * p.clamp(min=1e-12).log()).sum())
        stats = {
            "loss": terms.loss.detach(),
            "loss_cosine": terms.cosine.detach(),
            "loss_commitment": terms.commitment.detach(),
            "batch_code_perplexity": perplexity.detach(),
            "codebook_size": torch.tensor(float(self.tokenizer.num_codes)),
        }
        loss, stats, weight = force_gatherable((terms.loss, stats, speech.shape[0]), terms.loss.device)
        return loss, stats, weight

    def collect_feats(self, speech, speech_lengths, **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
