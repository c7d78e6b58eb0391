"""SonarModel: loss composition of SONAR continual pre-training (DESIGN.md, "SONAR").

    L = L_MAM(T tokens) + lambda_tok * L_tok(T0 tokens) + lambda_model * L_model(M0 layers)

The student M is a BeatsEncoder in pre-training mode (75% of patches masked, only the
visible ones encoded), a predictor fills masked positions and two heads read codes off it:
``head_new`` for the evolving tokenizer T, ``head_old`` for the frozen tokenizer T0. M0 is
a frozen copy of the student's initial weights. Targets come from a ``TargetMaker``
(random projection, frozen BEATs tokenizer, or the evolving online clustered codebook).
"""

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet2_sonar.distill.criteria import CosineDistance
from espnet2_sonar.distill.losses import masked_cross_entropy
from espnet2_sonar.distill.teacher import FrozenTeacher
from espnet2_sonar.sonar.config import SonarConfig
from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.sonar.targets import AbsTargetMaker
from espnet2_sonar.utils.precision import maybe_autocast
from espnet2_sonar.utils.seeding import derive_seed


class SonarModel(AbsESPnetModel):
    """Student encoder + predictor + heads, frozen teacher, target maker.

    Args:
        encoder: the student M (``BeatsEncoder``), already initialised (e.g. from M0).
        predictor: ``BeatsPredictor`` mapping a masked ``EncoderOutput`` to [B, N, D_pred].
        targets: an ``AbsTargetMaker`` giving T's and T0's codes per patch.
        teacher: the frozen prior encoder M0 (needed when ``lambda_model > 0``).
        criterion: distance for L_model (default ``CosineDistance``).
        config: ``SonarConfig`` or its dict.
    """

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        targets: AbsTargetMaker,
        teacher: Optional[nn.Module] = None,
        criterion: Optional[nn.Module] = None,
        config: SonarConfig | dict | None = None,
    ):
        super().__init__()
        self.config = config if isinstance(config, SonarConfig) else SonarConfig.from_dict(config)
        self.encoder = encoder
        self.predictor = predictor
        self.targets = targets
        dim = predictor.output_size()
        # Heads are allocated at the codebook's maximum size; only the first
        # ``targets.num_codes`` rows are live, so a growing codebook never changes a
        # parameter's shape (optimizer state, DDP buckets and checkpoints stay valid).
        self.head_new = nn.Linear(dim, targets.max_codes)
        # head_old reads T0's codes; same allocation so weights can be copied between them.
        self.head_old = None
        if self.config.lambda_tok > 0:
            if targets.old_num_codes is None:
                raise ValueError("lambda_tok > 0 needs a target maker with a frozen old tokenizer (T0)")
            self.head_old = nn.Linear(dim, targets.max_codes)
            if self.config.head_old_init == "copy":
                self.head_old.load_state_dict(self.head_new.state_dict())
        self.criterion = criterion if criterion is not None else CosineDistance()
        self.teacher = None
        if self.config.lambda_model > 0:
            if teacher is None:
                raise ValueError("lambda_model > 0 needs a teacher encoder (M0)")
            fe_s, fe_t = encoder.frontend, teacher.frontend
            if (fe_s.fbank_mean, fe_s.fbank_std) != (fe_t.fbank_mean, fe_t.fbank_std):
                raise ValueError("student and teacher must use the same fbank normalisation")
            self.teacher = FrozenTeacher(teacher)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def _mask_generator(self, device: torch.device) -> torch.Generator:
        # Under DDP every rank draws its own masks (else equal-length items at the same batch
        # position on different ranks get identical masks): the seed mixes (seed, step, rank).
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        g = torch.Generator(device="cpu")
        g.manual_seed(derive_seed(self.config.seed, "sonar.mask", int(self.step), rank))
        return g

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        is_replay: Optional[torch.Tensor] = None,
        is_replay_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """One training/validation step.

        Args:
            speech: [B, T] 16 kHz waveforms (zero padded).
            speech_lengths: [B] valid samples.
            is_replay: [B, 1] or [B] int, 1 for replay (prior-pool) items, 0 for new-domain
                items; absent means all new.
        Returns:
            loss (scalar), stats (dict of scalars), batch size (weight).
        """
        if speech.dim() == 3:
            speech = speech.squeeze(-1)
        speech = speech[:, : int(speech_lengths.max())]
        bsz = speech.shape[0]
        replay = None
        if is_replay is not None:
            replay = is_replay.reshape(bsz, -1)[:, 0].bool()

        # 1. targets (no grad): codes of T (may evolve in training mode) and of T0
        with maybe_autocast(self.config.frozen_precision, speech.device):
            tgt = self.targets(speech, speech_lengths, replay)

        # 2. student on the visible patches, predictor on the full grid
        num_patches = self.encoder.patch_lengths(speech_lengths)
        mask = self.encoder.make_mask(num_patches, self.config.mask_prob, self._mask_generator(speech.device))
        mask = mask.to(speech.device)
        feats = self.encoder.frontend(speech, speech_lengths)  # shared by student and teacher
        enc = self.encoder.encode_features(feats.fbank, feats.frame_lengths, mask=mask)
        hidden = self.predictor(enc)  # [B, N, D]
        n = min(hidden.shape[1], tgt.codes.shape[1])
        valid = valid_mask(num_patches.to(speech.device), n)
        masked = mask[:, :n] & valid

        logits = self.head_new(hidden[:, :n])[..., : tgt.num_codes]
        mam = masked_cross_entropy(logits, tgt.codes[:, :n], masked)
        loss = mam.loss
        stats: Dict[str, torch.Tensor] = {
            "loss_mam": mam.loss.detach(),
            "acc_mam": mam.accuracy,
        }

        if self.head_old is not None and self.config.lambda_tok > 0:
            logits_old = self.head_old(hidden[:, :n])[..., : self.targets.old_num_codes]
            tok = masked_cross_entropy(logits_old, tgt.old_codes[:, :n], masked)
            loss = loss + self.config.lambda_tok * tok.loss
            stats["loss_tok"] = tok.loss.detach()
            stats["acc_tok"] = tok.accuracy

        if self.teacher is not None and self.config.lambda_model > 0:
            loss_model = self._model_distillation(feats, mask, enc)
            loss = loss + self.config.lambda_model * loss_model
            stats["loss_model"] = loss_model.detach()

        stats["loss"] = loss.detach()
        stats.update({k: v.detach().float() for k, v in tgt.stats.items()})
        if self.training:
            self.step += 1
        loss, stats, weight = force_gatherable((loss, stats, bsz), loss.device)
        return loss, stats, weight

    def _model_distillation(self, feats, mask, enc) -> torch.Tensor:
        """L_model: mean over distill_layers of 1 - cos(M_l[visible], sg(M0_l)[visible]).

        The teacher reads the student's fbank (both use the same frontend settings).
        """
        keep = ~enc.padding_mask  # [B, N_vis] valid visible positions
        teacher_mask = mask if self.config.teacher_input == "visible" else None
        with maybe_autocast(self.config.frozen_precision, feats.fbank.device):
            t_enc = self.teacher("encode_features", feats.fbank, feats.frame_lengths, mask=teacher_mask)
        t_layers = t_enc.layers
        if teacher_mask is None:  # full grid: pick the student's visible positions
            idx = enc.kept_index.clamp(min=0)  # [B, N_vis]
            t_layers = [torch.gather(t, 1, idx[..., None].expand(-1, -1, t.shape[-1])) for t in t_layers]
        losses = [self.criterion(enc.layers[l], t_layers[l], keep) for l in self.config.distill_layers]
        return torch.stack(losses).mean()

    def collect_feats(self, speech, speech_lengths, **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}
