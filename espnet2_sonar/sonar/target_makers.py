"""Target makers behind SonarTask's ``--tokenizer`` choice (the interface is in ``targets.py``)."""

import copy
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from espnet2_sonar.sonar.targets import AbsTargetMaker, Targets
from espnet2_sonar.tokenizer.codebook import PAD_CODE
from espnet2_sonar.tokenizer.occ import OnlineClusteredCodebook


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def _distributed_collectives():
    """(all_reduce, broadcast) for torch.distributed when it is running, else None."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from espnet2_sonar.tokenizer.codebook import torch_all_reduce_sum, torch_broadcast_rank0

        return torch_all_reduce_sum, torch_broadcast_rank0
    return None


def _load_tokenizer(init: Optional[str], arch: str):
    from espnet2_sonar.tokenizer.formats import load_beats_tokenizer
    from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer

    if init:
        return load_beats_tokenizer(init)  # any format, file or Hugging Face spec
    return BeatsTokenizer(arch)


class RandomProjectionTargets(AbsTargetMaker):
    """BEATs iter1 targets: a frozen random-projection quantizer (no T0).

    Args: fields of ``RandomProjectionConfig`` (quant_n codes of dim quant_dim, seed, ...).
    """

    def __init__(self, quant_n: int = 1024, quant_dim: int = 256, patch_norm: bool = True, seed: int = 0,
                 input_patch_size: int = 16):
        super().__init__()
        from espnet2_sonar.tokenizer.random_projection import RandomProjectionTokenizer

        self.tokenizer = RandomProjectionTokenizer(
            dict(quant_n=quant_n, quant_dim=quant_dim, patch_norm=patch_norm, seed=seed,
                 input_patch_size=input_patch_size)
        )

    @property
    def num_codes(self) -> int:
        return self.tokenizer.num_codes

    def exportable_tokenizer(self):
        return None

    def forward(self, speech, speech_lengths, is_replay) -> Targets:
        codes = self.tokenizer.encode(speech, speech_lengths)
        return Targets(codes=codes, old_codes=None, num_codes=self.num_codes)


class FrozenTokenizerTargets(AbsTargetMaker):
    """Targets of a frozen BEATs tokenizer (DCP, and BEATs iterations >= 2).

    The tokenizer is T and T0 at once: its codes serve both heads if asked.

    Args:
        init: official-format tokenizer checkpoint (None: a random ``arch`` tokenizer, for tests).
        arch: architecture when ``init`` is None.
        max_codes: rows of the MAM heads (default: the codebook size). Set it to the evolving
            tokenizer's ``max_codes`` so that heads keep one shape across base, DCP and SONAR
            stages and can seed each other (``--init_param``); extra rows are never read.
    """

    def __init__(self, init: Optional[str] = None, arch: str = "tiny", max_codes: Optional[int] = None):
        super().__init__()
        self.tokenizer = _frozen(_load_tokenizer(init, arch))
        if max_codes is not None and max_codes < self.tokenizer.num_codes:
            raise ValueError(f"max_codes={max_codes} is below the tokenizer's {self.tokenizer.num_codes} codes")
        self._max_codes = max_codes

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()
        return self

    @property
    def num_codes(self) -> int:
        return self.tokenizer.num_codes

    @property
    def max_codes(self) -> int:
        return self._max_codes or self.num_codes

    @property
    def old_num_codes(self) -> Optional[int]:
        return self.tokenizer.num_codes

    def exportable_tokenizer(self):
        return self.tokenizer

    def forward(self, speech, speech_lengths, is_replay) -> Targets:
        codes = self.tokenizer.encode(speech, speech_lengths)
        return Targets(codes=codes, old_codes=codes, num_codes=self.num_codes,
                       stats={"codebook_size": torch.tensor(float(self.num_codes))})


class EvolvingTokenizerTargets(AbsTargetMaker):
    """SONAR's evolving tokenizer T and the frozen T0 it started from.

    T's transformer and quantize layer stay frozen (eval mode, no gradient); its codebook is
    an online clustered codebook that, in training mode, takes NormEMA updates, re-anchors
    dead codes, protects codes used by replay items and grows on novel new-domain features.
    T0's codes are the nearest codes of the same features in a frozen copy of the initial
    codebook (``old_codebook`` buffer), so one tokenizer forward serves both.

    Args:
        init: official-format tokenizer checkpoint of T0 (None: a random ``arch`` tokenizer).
        arch: architecture when ``init`` is None.
        occ: ``OCCConfig`` fields (num_codes and dim come from the tokenizer).
    """

    def __init__(self, init: Optional[str] = None, arch: str = "tiny", occ: Optional[Dict[str, Any]] = None):
        super().__init__()
        tokenizer = _load_tokenizer(init, arch)
        if isinstance(tokenizer.quantize, OnlineClusteredCodebook):
            tokenizer = self._restart_from(tokenizer)
        occ = dict(occ or {})
        occ.setdefault("num_codes", tokenizer.num_codes)
        occ.setdefault("dim", tokenizer.config.quant_dim)
        self.register_buffer("old_codebook", tokenizer.quantize.weight.detach().clone())  # [K0, d]
        tokenizer.use_online_codebook_(occ)
        collectives = _distributed_collectives()
        if collectives is not None:
            tokenizer.quantize.set_distributed_(*collectives)
        for p in tokenizer.parameters():
            p.requires_grad_(False)
        tokenizer.estimator = None  # T is not retrained by distillation here
        self.tokenizer = tokenizer
        self._last_added = 0

    @staticmethod
    def _restart_from(tokenizer):
        """A tokenizer whose codebook already evolved (previous stage): keep its codes as a
        plain NormEMA codebook, so this stage's OCC starts with fresh usage statistics."""
        from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer

        cfg = dict(tokenizer.config.to_dict(), codebook="norm_ema", quant_n=tokenizer.num_codes)
        fresh = BeatsTokenizer(cfg)
        state = {k: v for k, v in tokenizer.state_dict().items() if not k.startswith("estimator.")}
        fresh.estimator = None
        own = {"quantize.usage", "quantize.replay_usage", "quantize.protected", "quantize.num_steps",
               "quantize.num_expansions"}
        fresh.load_state_dict({k: v for k, v in state.items() if k not in own}, strict=True)
        return fresh

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()
        self.tokenizer.quantize.train(mode)
        return self

    @property
    def codebook(self):
        return self.tokenizer.quantize

    @property
    def num_codes(self) -> int:
        return self.codebook.num_codes

    @property
    def max_codes(self) -> int:
        return self.codebook.config.max_codes

    @property
    def old_num_codes(self) -> Optional[int]:
        return self.old_codebook.shape[0]

    def exportable_tokenizer(self):
        return self.tokenizer

    def forward(self, speech, speech_lengths, is_replay) -> Targets:
        with torch.no_grad():
            feats = self.tokenizer.features(speech, speech_lengths)
            q = self.codebook(feats.features, feats.padding_mask, is_replay)
            unit = F.normalize(feats.features.float(), dim=-1)
            old_codes = (unit @ self.old_codebook.T).argmax(-1)
            old_codes = old_codes.masked_fill(feats.padding_mask, PAD_CODE)
        stats = {
            "codebook_size": torch.tensor(float(self.num_codes)),
            "code_perplexity": self.codebook.usage_perplexity().detach(),
            "dead_codes": self.codebook.dead_codes().sum().float(),
            "protected_codes": self.codebook.protected.sum().float(),
            "codes_added": torch.tensor(float(q.added)),
            "codes_reanchored": torch.tensor(float(q.reanchored)),
        }
        return Targets(codes=q.codes, old_codes=old_codes, num_codes=self.num_codes, stats=stats)
