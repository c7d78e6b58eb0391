"""BeatsTokenizer: BEATs-shaped encoder + quantize layer + codebook (+ estimator for training).

    waveform [B, T] -> BeatsEncoder -> last layer [B, N, D]
      -> quantize_layer: Linear(D, D) - Tanh - Linear(D, quant_dim)      (``features``)
      -> codebook (NormEMA or online clustered) -> codes [B, N], quantized [B, N, quant_dim]
      -> estimator (training only): Linear(quant_dim, D_t) + ``estimator_layers`` BEATs
         layers with relative position bias + LayerNorm -> estimate [B, N, D_t]

The estimator predicts a teacher's last layer from the quantized features (BEATs tokenizer
training; the loss is in ``objective.py``). ``encode`` gives codes with no side effects;
``forward`` is the training step (the codebook updates in training mode).

Config: ``BeatsTokenizerConfig`` nests the encoder's ``BeatsConfig`` and adds the
tokenizer's own fields (nested form, the one ``to_dict`` / ``from_dict`` and YAML use)::

    encoder: {encoder_layers: 2, dropout: 0.0, ...}   # BeatsConfig fields
    quant_n: 128
    estimator_layers: 1

Checkpoints keep the official flat ``cfg`` layout: the official ``TokenizersConfig`` keys
(microsoft/unilm ``beats/Tokenizers.py``, official defaults except ``input_patch_size`` 16
instead of the placeholder -1) in ``OFFICIAL_KEYS``, then ours in ``OWN_KEYS`` (the official
code ignores extra cfg keys). ``BeatsTokenizerConfig.nest`` / ``from_flat`` / ``to_flat`` are
the one flat <-> nested conversion: the flat keys of the encoder (``ENCODER_FLAT_KEYS``) go
to / come from ``encoder``, the others are the tokenizer's fields. The encoder's fine-tuning
fields (``finetuned_model``, ``predictor_*``) have no flat key and must stay at their defaults.
Official checkpoint conversion lives in ``espnet2_sonar.tokenizer.interop``; every other
format is read by ``espnet2_sonar.tokenizer.formats``.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Iterator, Mapping, Optional

import torch
from torch import nn

from espnet2_sonar.beats.attention import RelativePositionBias, key_padding_bias
from espnet2_sonar.beats.config import ARCHITECTURES, BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.beats.layers import init_layers_, make_layer
from espnet2_sonar.tokenizer.codebook import Collective, NormEMACodebook, identity
from espnet2_sonar.tokenizer.occ import OCCConfig, OnlineClusteredCodebook

from espnet2_sonar.utils.config import StrictConfig, reject_unknown_keys

OFFICIAL_KEYS = (
    "input_patch_size", "embed_dim", "conv_bias", "encoder_layers", "encoder_embed_dim",
    "encoder_ffn_embed_dim", "encoder_attention_heads", "activation_fn", "layer_norm_first",
    "deep_norm", "dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop",
    "dropout_input", "conv_pos", "conv_pos_groups", "relative_position_embedding",
    "num_buckets", "max_distance", "gru_rel_pos", "quant_n", "quant_dim",
)  # fmt: skip
OWN_KEYS = (
    "layer_wise_gradient_decay_ratio", "codebook", "occ", "codebook_decay", "codebook_beta",
    "kmeans_iters", "seed", "estimator_layers", "target_dim", "fbank_mean", "fbank_std",
)  # fmt: skip
FLAT_KEYS = OFFICIAL_KEYS + OWN_KEYS
"""The flat cfg layout, in the order checkpoints are written."""
ENCODER_FLAT_KEYS = tuple(k for k in FLAT_KEYS if k in {f.name for f in fields(BeatsConfig)})
"""Flat keys that are ``BeatsConfig`` fields (nested under ``encoder``)."""
# BeatsConfig fields with no flat key (fine-tuning head): must keep their defaults
_ENCODER_UNFLATTENED = tuple(f.name for f in fields(BeatsConfig) if f.name not in ENCODER_FLAT_KEYS)
# OCC fields fixed by the tokenizer config itself (not settable inside ``occ``)
_OCC_FROM_TOKENIZER = {
    "num_codes": "quant_n", "dim": "quant_dim", "decay": "codebook_decay", "beta": "codebook_beta",
    "kmeans_iters": "kmeans_iters", "seed": "seed", "kmeans_init": "always true", "eps": "official default",
}  # fmt: skip
# codebook size x dimension of the named architectures
_QUANT = {"base": (1024, 256), "small": (512, 128), "tiny": (128, 32)}


@dataclass
class BeatsTokenizerConfig(StrictConfig):
    """BEATs tokenizer: encoder (``BeatsConfig``), quantizer, estimator (see module doc)."""

    encoder: BeatsConfig = field(default_factory=BeatsConfig)
    """The transformer encoder (a ``BeatsConfig`` or its dict; fine-tuning fields at defaults)."""
    quant_n: int = 1024
    """Codebook size (the live size; grows with an online clustered codebook)."""
    quant_dim: int = 256
    """Code dimension (output of the Linear-Tanh-Linear quantize layer)."""
    codebook: str = "norm_ema"
    """``norm_ema`` (BEATs NormEMA quantizer) or ``occ`` (online clustered codebook)."""
    occ: Dict[str, Any] = field(default_factory=dict)
    """OCCConfig fields for ``codebook: occ``, except those set by the keys above
    (num_codes, dim, decay, beta, kmeans_iters, seed)."""
    codebook_decay: float = 0.99
    """EMA decay of the code vectors (official: 0.99)."""
    codebook_beta: float = 1.0
    """Commitment loss weight (official: 1.0)."""
    kmeans_iters: int = 10
    """Lloyd iterations of the codebook's k-means init."""
    seed: int = 0
    """Seed of the codebook's k-means init and of the OCC's sampling."""
    estimator_layers: int = 3
    """Layers of the estimator that predicts the teacher's last layer (0: no estimator)."""
    target_dim: int = 0
    """Width of the teacher's last layer, and of the estimator (0: encoder.encoder_embed_dim)."""

    def __post_init__(self):
        if isinstance(self.encoder, Mapping):
            BeatsConfig.check_keys(self.encoder, "BeatsTokenizerConfig.encoder")
            self.encoder = BeatsConfig.from_dict(self.encoder)
        if not isinstance(self.encoder, BeatsConfig):
            raise TypeError(f"encoder must be a BeatsConfig or a dict, got {type(self.encoder).__name__}")
        default = BeatsConfig()
        changed = [k for k in _ENCODER_UNFLATTENED if getattr(self.encoder, k) != getattr(default, k)]
        if changed:
            raise ValueError(
                f"encoder fields {changed} are not tokenizer settings (no key in the official tokenizer "
                f"cfg); leave them at their defaults"
            )
        if self.codebook not in ("norm_ema", "occ"):
            raise ValueError(f"codebook must be 'norm_ema' or 'occ', got {self.codebook!r}")
        self.occ = dict(self.occ or {})
        fixed = sorted(set(self.occ) & set(_OCC_FROM_TOKENIZER))
        if fixed:
            raise ValueError(
                f"occ keys {fixed} are set by the tokenizer config "
                f"({', '.join(str(_OCC_FROM_TOKENIZER[k]) for k in fixed)}), not inside 'occ'"
            )
        self.occ_config()  # validates the OCC fields
        if self.estimator_layers < 0:
            raise ValueError(f"estimator_layers must be >= 0, got {self.estimator_layers}")
        heads = self.encoder.encoder_attention_heads
        if self.estimator_layers and self.estimator_dim % heads:
            raise ValueError(
                f"encoder.encoder_attention_heads={heads} must divide the estimator width "
                f"{self.estimator_dim} (target_dim)"
            )

    @property
    def estimator_dim(self) -> int:
        return self.target_dim or self.encoder.encoder_embed_dim

    def occ_config(self) -> OCCConfig:
        """The OCCConfig of ``codebook: occ``."""
        d = dict(self.occ)
        d.setdefault("max_codes", max(OCCConfig.max_codes, self.quant_n))
        return OCCConfig.from_dict(
            dict(
                d,
                num_codes=self.quant_n,
                dim=self.quant_dim,
                decay=self.codebook_decay,
                beta=self.codebook_beta,
                kmeans_iters=self.kmeans_iters,
                seed=self.seed,
            )
        )

    # ---- the flat (official cfg) layout: the one conversion
    @staticmethod
    def nest(d: Mapping[str, Any]) -> Dict[str, Any]:
        """Config keys in either form -> the nested form (partial dicts stay partial).

        A dict with an ``encoder`` key is nested and returned as a copy (``encoder`` as a dict);
        any other dict is flat (``FLAT_KEYS``): the encoder's keys move under ``encoder``.
        Unknown flat keys, and flat encoder keys beside an ``encoder`` section, raise
        ``ValueError`` naming them; unknown nested keys are left to ``from_dict``.
        """
        d = dict(d)
        if "encoder" in d:
            mixed = sorted(k for k in d if k in ENCODER_FLAT_KEYS)
            if mixed:
                raise ValueError(f"flat encoder key(s) {mixed} beside a nested 'encoder' section: move them into it")
            encoder = d["encoder"]
            d["encoder"] = encoder.to_dict() if isinstance(encoder, BeatsConfig) else dict(encoder or {})
            return d
        reject_unknown_keys(d, FLAT_KEYS, "flat BeatsTokenizerConfig")
        nested = {k: v for k, v in d.items() if k not in ENCODER_FLAT_KEYS}
        nested["encoder"] = {k: v for k, v in d.items() if k in ENCODER_FLAT_KEYS}
        return nested

    @classmethod
    def from_flat(cls, d: Mapping[str, Any]) -> "BeatsTokenizerConfig":
        """From a flat cfg (``FLAT_KEYS``, e.g. an official checkpoint's ``cfg``); strict."""
        if "encoder" in d:
            raise ValueError("a flat tokenizer cfg has no 'encoder' key (that is the nested form)")
        return cls.from_dict(cls.nest(d))

    def to_flat(self) -> Dict[str, Any]:
        """The flat cfg (``FLAT_KEYS`` in order) that checkpoints hold and the official code reads."""
        nested = self.to_dict()
        values = dict(nested.pop("encoder"), **nested)
        return {k: values[k] for k in FLAT_KEYS}

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "BeatsTokenizerConfig":
        """``tiny`` / ``small`` / ``base`` encoder shapes (BeatsConfig.named) with a codebook
        of 1024 x 256 (base), 512 x 128 (small) or 128 x 32 (tiny). ``overrides`` in either
        form (``nest``); nested ``encoder`` fields override the architecture's one by one."""
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown tokenizer architecture {name!r}; known: {sorted(ARCHITECTURES)}")
        over = cls.nest(overrides)
        encoder = dict(ARCHITECTURES[name], **over.pop("encoder"))
        d = dict(quant_n=_QUANT[name][0], quant_dim=_QUANT[name][1])
        d.update(over, encoder=encoder)
        return cls.from_dict(d)


@dataclass
class TokenizerFeatures:
    """Quantizer input of a batch.

    features: [B, N, quant_dim] quantize-layer output (not normalised).
    padding_mask: BoolTensor[B, N], True = pad.
    num_patches: LongTensor[B], valid patches per item.
    """

    features: torch.Tensor
    padding_mask: torch.Tensor
    num_patches: torch.Tensor


@dataclass
class TokenizerOutput:
    """Training forward of the tokenizer.

    codes: LongTensor[B, N], ``PAD_CODE`` at pads.
    quantized: [B, N, quant_dim] unit code vectors, straight-through to the features.
    estimate: [B, N, D_t] estimator output (zero at pads), or None without an estimator.
    padding_mask: BoolTensor[B, N], True = pad.
    commitment_loss: scalar, beta * mean squared distance of features to their codes.
    counts: float [K], codes per code in the batch (valid positions).
    added, reanchored: codes appended / re-anchored by this step (online codebook).
    """

    codes: torch.Tensor
    quantized: torch.Tensor
    estimate: Optional[torch.Tensor]
    padding_mask: torch.Tensor
    commitment_loss: torch.Tensor
    counts: torch.Tensor
    added: int = 0
    reanchored: int = 0


class TokenizerEstimator(nn.Module):
    """quantized [B, N, quant_dim] -> estimate of the teacher's last layer [B, N, D_t].

    Layers take heads, FFN width, dropouts, activation and norm style from the tokenizer's
    encoder config and always carry their own relative position bias table.
    """

    def __init__(self, config: BeatsTokenizerConfig):
        super().__init__()
        dim = config.estimator_dim
        encoder = config.encoder
        layer_config = replace(encoder, relative_position_embedding=True)
        self.connector = nn.Linear(config.quant_dim, dim)
        n = config.estimator_layers
        self.layers = nn.ModuleList([make_layer(layer_config, n, dim) for _ in range(n)])
        self.rel_pos = RelativePositionBias(encoder.num_buckets, encoder.encoder_attention_heads, encoder.max_distance)
        self.norm = nn.LayerNorm(dim)
        init_layers_(self.layers, encoder.deep_norm)
        nn.init.normal_(self.rel_pos.embedding.weight, std=0.02)
        nn.init.normal_(self.connector.weight, std=0.02)
        nn.init.zeros_(self.connector.bias)

    def forward(self, quantized: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        x = self.connector(quantized)  # [B, N, D_t]
        key_bias = key_padding_bias(padding_mask, x.dtype) if bool(padding_mask.any()) else None
        position_bias = self.rel_pos(x.shape[1])
        for layer in self.layers:
            x = layer(x, position_bias, key_bias)
        return self.norm(x).masked_fill(padding_mask[..., None], 0.0)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run with every submodule in eval mode; restore each one's mode afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


class BeatsTokenizer(nn.Module):
    """BEATs acoustic tokenizer (see module doc).

    Args:
        config: ``BeatsTokenizerConfig``, its (nested) dict, or an architecture name
            (``tiny``, ``small``, ``base``).
        fbank_mean, fbank_std: override the config's fbank normalisation
            (``config.encoder.fbank_mean`` / ``fbank_std``; the config is updated, so saved
            checkpoints record it).
        all_reduce, broadcast: collectives injected into the codebook (default identity).
    """

    def __init__(
        self,
        config: BeatsTokenizerConfig | Dict[str, Any] | str | None = None,
        fbank_mean: float | None = None,
        fbank_std: float | None = None,
        all_reduce: Collective = identity,
        broadcast: Collective = identity,
    ):
        super().__init__()
        if isinstance(config, str):
            config = BeatsTokenizerConfig.named(config)
        elif not isinstance(config, BeatsTokenizerConfig):
            config = BeatsTokenizerConfig.from_dict(config)
        stats = {k: v for k, v in (("fbank_mean", fbank_mean), ("fbank_std", fbank_std)) if v is not None}
        if stats:
            config = replace(config, encoder=replace(config.encoder, **stats))
        self.config = config
        self.encoder = BeatsEncoder(config.encoder)
        d = config.encoder.encoder_embed_dim
        self.quantize_layer = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, config.quant_dim))
        if config.codebook == "occ":
            self.quantize = OnlineClusteredCodebook(config.occ_config(), all_reduce=all_reduce, broadcast=broadcast)
        else:
            self.quantize = NormEMACodebook(
                config.quant_n,
                config.quant_dim,
                decay=config.codebook_decay,
                beta=config.codebook_beta,
                seed=config.seed,
                kmeans_iters=config.kmeans_iters,
                all_reduce=all_reduce,
                broadcast=broadcast,
            )
        self.estimator = TokenizerEstimator(config) if config.estimator_layers > 0 else None

    @property
    def num_codes(self) -> int:
        """Live codebook size."""
        return self.quantize.num_codes

    def patch_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid patches per item: LongTensor[B] from sample counts [B]."""
        return self.encoder.patch_lengths(lengths)

    def features(self, wavs: torch.Tensor, lengths: torch.Tensor) -> TokenizerFeatures:
        """Quantizer input of waveforms [B, T] with valid samples [B]."""
        enc = self.encoder.encode(wavs, lengths)
        return TokenizerFeatures(self.quantize_layer(enc.last), enc.padding_mask, enc.num_patches)

    @torch.no_grad()
    def encode(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Codes [B, N] (``PAD_CODE`` at pads) of waveforms [B, T]; no side effects, no dropout."""
        with _eval_mode(self):
            feats = self.features(wavs, lengths)
            return self.quantize(feats.features, feats.padding_mask).codes

    def forward(
        self, wavs: torch.Tensor, lengths: torch.Tensor, replay_mask: Optional[torch.Tensor] = None
    ) -> TokenizerOutput:
        """Training step: quantize (updating the codebook in training mode) and estimate.

        Args:
            wavs: [B, T] waveforms; lengths: [B] valid samples;
            replay_mask: Bool[B], True for replay items (online codebook only).
        """
        feats = self.features(wavs, lengths)
        q = self.quantize(feats.features, feats.padding_mask, replay_mask)
        estimate = None if self.estimator is None else self.estimator(q.quantized, feats.padding_mask)
        return TokenizerOutput(
            codes=q.codes,
            quantized=q.quantized,
            estimate=estimate,
            padding_mask=feats.padding_mask,
            commitment_loss=q.commitment_loss,
            counts=q.counts,
            added=q.added,
            reanchored=q.reanchored,
        )

    @torch.no_grad()
    def use_online_codebook_(self, occ: Optional[Dict[str, Any]] = None) -> OnlineClusteredCodebook:
        """Swap a NormEMA codebook for an online clustered one starting from it (T -> SONAR's T).

        ``occ``: OCC fields as in the config's ``occ`` key (default: the config's own);
        ``num_codes`` / ``dim`` may be given if they equal the codebook's size / dimension.
        """
        if isinstance(self.quantize, OnlineClusteredCodebook):
            raise ValueError("the tokenizer already uses an online clustered codebook")
        cfg = dict(self.config.to_dict(), codebook="occ", quant_n=self.num_codes)
        if occ is not None:
            occ = dict(occ)
            for key, have in (("num_codes", self.num_codes), ("dim", self.quantize.dim)):
                if key in occ and int(occ.pop(key)) != have:
                    raise ValueError(f"occ {key} must equal the codebook's ({have}); it is not settable here")
            cfg["occ"] = occ
        self.config = BeatsTokenizerConfig.from_dict(cfg)
        old = self.quantize
        self.quantize = OnlineClusteredCodebook.from_codebook(
            old, self.config.occ_config(), all_reduce=old.all_reduce, broadcast=old.broadcast
        )
        self.quantize.train(old.training)
        return self.quantize

