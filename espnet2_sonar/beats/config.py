"""BeatsConfig: the BEATs encoder's hyper-parameters, named exactly as the official cfg keys.

The field names and defaults follow ``BEATsConfig`` in microsoft/unilm ``beats/BEATs.py``,
so ``BeatsConfig.from_dict(ckpt["cfg"])`` reads a released checkpoint and
``BeatsConfig.to_dict()`` writes a cfg the official code reads back. One deliberate
difference: the official placeholder ``input_patch_size = -1`` (always overridden by the
released cfgs) is 16 here, so a default config builds. Two fields are ours: ``fbank_mean`` /
``fbank_std``, the fbank normalisation the weights were trained with (official defaults; the
official code ignores extra cfg keys, so files we write with them still load there).

Named architectures (``BeatsConfig.named``):

============  ======  ====  =====  =====  ===========  =========
name          layers  dim   FFN    heads  embed_dim    params
============  ======  ====  =====  =====  ===========  =========
``tiny``      2       160   640    4      512          ~1.0 M
``small``     5       384   1536   6      512          ~10 M
``base``      12      768   3072   12     512          ~90 M (official iter3)
============  ======  ====  =====  =====  ===========  =========

All three use the released iter3 recipe: post-LN DeepNorm, gated relative position bias
(320 buckets, max distance 800), conv positional embedding (k=128, 16 groups) and
layer-wise gradient decay 0.6.
"""

from dataclasses import dataclass
from typing import Any, Dict

from espnet2_sonar.beats.frontend import FBANK_MEAN, FBANK_STD
from espnet2_sonar.utils.config import StrictConfig

ACTIVATIONS = ("relu", "gelu", "gelu_accurate", "tanh", "linear")


@dataclass
class BeatsConfig(StrictConfig):
    """Hyper-parameters of a BEATs encoder (official ``cfg`` keys, official defaults)."""

    input_patch_size: int = 16
    """Side of the square fbank patch (frames x mel bins) cut by the patch embedding
    (official placeholder default -1; every released checkpoint uses 16)."""
    embed_dim: int = 512
    """Channels of the patch-embedding convolution (before ``post_extract_proj``)."""
    conv_bias: bool = False
    """Whether the patch-embedding convolution has a bias."""

    encoder_layers: int = 12
    """Number of transformer layers."""
    encoder_embed_dim: int = 768
    """Transformer width D (the encoder's output size)."""
    encoder_ffn_embed_dim: int = 3072
    """Hidden width of each layer's feed-forward block."""
    encoder_attention_heads: int = 12
    """Attention heads per layer; must divide ``encoder_embed_dim``."""
    activation_fn: str = "gelu"
    """Feed-forward activation: one of relu, gelu, gelu_accurate, tanh, linear
    (the official ``glu`` variant is not supported)."""

    layer_wise_gradient_decay_ratio: float = 1.0
    """Gradient multiplier applied to the input of every layer in the backward pass:
    layer i (0-based) of L gets ratio**(L-1-i) of its gradient, the patch embedding
    ratio**L. Released checkpoints use 0.6. Forward values are unchanged."""
    layer_norm_first: bool = False
    """Pre-LN layers (True) or post-LN layers (False, released checkpoints)."""
    deep_norm: bool = False
    """DeepNorm: post-LN residuals scaled by (2 L)^(1/4) and a matching initialisation.
    Incompatible with ``layer_norm_first``."""

    dropout: float = 0.1
    """Dropout on the transformer input and on each residual branch."""
    attention_dropout: float = 0.1
    """Dropout on the attention probabilities."""
    activation_dropout: float = 0.0
    """Dropout after the feed-forward activation."""
    encoder_layerdrop: float = 0.0
    """Probability of skipping a whole layer in training (LayerDrop)."""
    dropout_input: float = 0.0
    """Dropout on the projected patch embeddings, before the transformer."""

    conv_pos: int = 128
    """Kernel size (in patches) of the convolutional positional embedding."""
    conv_pos_groups: int = 16
    """Groups of the convolutional positional embedding; must divide ``encoder_embed_dim``."""

    relative_position_embedding: bool = False
    """Add a learned relative position bias (shared by all layers) to the attention logits."""
    num_buckets: int = 320
    """Buckets of the relative position bias (half per direction)."""
    max_distance: int = 1280
    """Distance (in patches) at which the log-spaced buckets saturate (released: 800)."""
    gru_rel_pos: bool = False
    """Gate the relative position bias by a function of the query (BEATs / WavLM gating)."""

    finetuned_model: bool = False
    """The checkpoint carries an AudioSet classifier (``predictor.*`` keys). The encoder
    does not build it; load such checkpoints with ``ignore=("predictor.*",)``."""
    predictor_dropout: float = 0.1
    """Dropout before the fine-tuned classifier (kept for cfg round trips only)."""
    predictor_class: int = 527
    """Classes of the fine-tuned classifier (kept for cfg round trips only)."""

    fbank_mean: float = FBANK_MEAN
    """Mean of the log-mel fbank the weights were trained with (ours; not an official key).
    Official BEATs: 15.41663 (the default); ESPnet/OpenBEATs releases: 15.29130."""
    fbank_std: float = FBANK_STD
    """Std of the fbank (ours): official 6.55582 (the default), ESPnet/OpenBEATs 5.90532."""

    def __post_init__(self):
        if self.input_patch_size <= 0:
            raise ValueError(f"input_patch_size must be > 0, got {self.input_patch_size}")
        if self.encoder_layers < 1:
            raise ValueError(f"encoder_layers must be >= 1, got {self.encoder_layers}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(
                f"encoder_attention_heads={self.encoder_attention_heads} does not divide "
                f"encoder_embed_dim={self.encoder_embed_dim}"
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError(
                f"conv_pos_groups={self.conv_pos_groups} does not divide "
                f"encoder_embed_dim={self.encoder_embed_dim}"
            )
        if self.activation_fn not in ACTIVATIONS:
            raise ValueError(f"activation_fn must be one of {ACTIVATIONS}, got {self.activation_fn!r}")
        if self.deep_norm and self.layer_norm_first:
            raise ValueError("deep_norm and layer_norm_first cannot both be true")
        if not self.fbank_std > 0:
            raise ValueError(f"fbank_std must be > 0, got {self.fbank_std}")
        self.fbank_mean, self.fbank_std = float(self.fbank_mean), float(self.fbank_std)
        if self.layer_wise_gradient_decay_ratio <= 0:
            raise ValueError(
                f"layer_wise_gradient_decay_ratio must be > 0, got {self.layer_wise_gradient_decay_ratio}"
            )
        if self.relative_position_embedding and self.num_buckets < 4:
            raise ValueError(f"num_buckets must be >= 4, got {self.num_buckets}")
        for name in ("dropout", "attention_dropout", "activation_dropout", "encoder_layerdrop", "dropout_input"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")


    @classmethod
    def named(cls, name: str, **overrides: Any) -> "BeatsConfig":
        """A named architecture (``tiny``, ``small``, ``base``) with field overrides."""
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown BEATs architecture {name!r}; known: {sorted(ARCHITECTURES)}")
        d = dict(ARCHITECTURES[name])
        d.update(overrides)
        return cls.from_dict(d)

    @classmethod
    def resolve(cls, config: "BeatsConfig | Dict[str, Any] | str | None") -> "BeatsConfig":
        """Accept a BeatsConfig, a cfg dict, an architecture name, or None (= ``base``)."""
        if config is None:
            return cls.named("base")
        if isinstance(config, cls):
            return config
        if isinstance(config, str):
            return cls.named(config)
        if isinstance(config, dict):
            return cls.from_dict(config)
        raise TypeError(f"expected BeatsConfig, dict or architecture name, got {type(config).__name__}")


# The released iter3 shape (cfg of BEATs_iter3*.pt); dropouts are the training values.
_ITER3 = dict(
    input_patch_size=16,
    embed_dim=512,
    conv_bias=False,
    encoder_layers=12,
    encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12,
    activation_fn="gelu",
    layer_wise_gradient_decay_ratio=0.6,
    layer_norm_first=False,
    deep_norm=True,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    encoder_layerdrop=0.0,
    dropout_input=0.0,
    conv_pos=128,
    conv_pos_groups=16,
    relative_position_embedding=True,
    num_buckets=320,
    max_distance=800,
    gru_rel_pos=True,
)

ARCHITECTURES: Dict[str, Dict[str, Any]] = {
    "base": dict(_ITER3),
    "small": dict(
        _ITER3, encoder_layers=5, encoder_embed_dim=384, encoder_ffn_embed_dim=1536, encoder_attention_heads=6
    ),
    "tiny": dict(
        _ITER3, encoder_layers=2, encoder_embed_dim=160, encoder_ffn_embed_dim=640, encoder_attention_heads=4
    ),
}
