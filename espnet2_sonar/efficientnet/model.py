"""EfficientNet-style CNN on 64-bin log-mel: DECAR's encoder, as an ESPnet ``AbsEncoder``.

    waveform [B, T] -> log-mel [B, F, 64] (``LogMelFrontend``) -> image [B, 1, 64, F]
      -> stem conv 3x3/2 -> MBConv stages (expand 1x1, depthwise kxk, squeeze-excite,
         project 1x1, residual) -> head conv 1x1 -> mean over frequency -> [B, F', D]

Named architectures (``espnet2_sonar.efficientnet.config``): ``b0`` is EfficientNet-B0
(Tan & Le 2019; 7 stages, 16 blocks, D = 1280, ~4 M parameters without a classifier) as
DECAR uses it; ``tiny`` scales width by 0.25 and depth by 0.25 (7 blocks, D = 320) for CPU
tests. Stochastic depth is not implemented.

Padding invariance: in eval mode an item's valid outputs equal the item run alone. Every
convolution wider than 1x1 sees zeros past the item's valid time steps (what it would see
alone) and the squeeze-excite mean runs over valid positions only; BatchNorm is
per-position in eval mode (in training mode its batch statistics include padding). The
length-aware blocks are the shared ones of ``espnet2_sonar.nn.conv``; this module holds the
architecture only. Squeeze-excite weights are ``*.se.fc1.*``/``*.se.fc2.*`` (1x1 convs);
files written before they were named ``*.se.reduce.*``/``*.se.expand.*`` are renamed on
reading (``espnet2_sonar.efficientnet.file``).

Probe interface: ``extract_layers`` returns one hidden state, the head output
[B, F', D] (stages have different widths and time resolutions, and a SUPERB-style probe
needs layers of one shape); ``patch_lengths`` gives its valid steps per item.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from espnet2.asr.encoder.abs_encoder import AbsEncoder

from espnet2_sonar.efficientnet.config import EfficientNetConfig
from espnet2_sonar.efficientnet.file import read_efficientnet_checkpoint, upgrade_efficientnet_state
from espnet2_sonar.efficientnet.logmel import LogMelFrontend
from espnet2_sonar.nn.conv import ConvBNAct, FeatureMap, SqueezeExcite
from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.nn.pooling import masked_mean as masked_mean_1d

TIME_DIM = 3
"""Feature maps are [B, C, F(mel), T]: time is the last axis."""


def conv_bn_act(
    cin: int, cout: int, kernel: int, stride: int, groups: int, cfg: EfficientNetConfig, act: bool = True
) -> ConvBNAct:
    """The shared length-aware Conv2d (no bias) -> BatchNorm -> SiLU (or none) on [B, C, F, T] maps.

    BatchNorm keeps ``nn.BatchNorm2d``'s training statistics (over the padded batch), as trained.
    """
    return ConvBNAct(
        cin,
        cout,
        kernel,
        stride,
        groups,
        act="silu" if act else "identity",
        time_dim=TIME_DIM,
        bn_eps=cfg.bn_eps,
        bn_momentum=cfg.bn_momentum,
        masked_stats=False,
    )


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [expand 1x1] -> depthwise kxk/s -> SE -> project 1x1 (+ x)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, cfg: EfficientNetConfig):
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn_act(cin, mid, 1, 1, 1, cfg) if expand != 1 else None
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, mid, cfg)
        squeezed = max(1, int(cin * cfg.se_ratio))
        self.se = (
            SqueezeExcite(mid, squeezed, act="silu", gate="sigmoid", time_dim=TIME_DIM, conv1x1=True)
            if cfg.se_ratio > 0
            else None
        )
        self.project = conv_bn_act(mid, cout, 1, 1, 1, cfg, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = x
        if self.expand is not None:
            h, _ = self.expand(h, lengths)
        h, out_lengths = self.depthwise(h, lengths)
        if self.se is not None:
            h = self.se(h, out_lengths)
        h, _ = self.project(h, out_lengths)
        return (h + x if self.residual else h), out_lengths


@dataclass
class EfficientNetOutput:
    """hidden: [B, F', D] head output averaged over frequency, zero past ``lengths``;
    lengths: LongTensor[B] valid time steps."""

    hidden: torch.Tensor
    lengths: torch.Tensor

    def pooled(self) -> torch.Tensor:
        """Mean over valid time steps -> [B, D]."""
        return masked_mean_1d(self.hidden, self.lengths, dim=1)


def _upgrade_legacy_keys(module: nn.Module, state_dict: Dict[str, Any], prefix: str, *args) -> None:
    """Load-state-dict pre-hook: rename older squeeze-excite keys under ``prefix`` in place."""
    upgraded = upgrade_efficientnet_state(state_dict, prefix)
    if list(upgraded) != list(state_dict):
        state_dict.clear()
        state_dict.update(upgraded)


class EfficientNetEncoder(AbsEncoder, FrozenExtractor):
    """Log-mel EfficientNet encoder.

    Args:
        arch: named architecture (``b0``, ``tiny``).
        config: EfficientNetConfig field overrides (or a full config dict with ``arch=None``).
        init: a ``decar_efficientnet`` checkpoint to start from (its cfg wins; see
            ``espnet2_sonar.efficientnet.interop``); loaded strictly.
        input_size: ignored (ESPnet passes the frontend's output size).
    """

    def __init__(
        self,
        arch: Optional[str] = "tiny",
        config: Optional[Dict[str, Any]] = None,
        init: Optional[str] = None,
        input_size: Optional[int] = None,
    ):
        super().__init__()
        self.register_load_state_dict_pre_hook(_upgrade_legacy_keys)
        loaded = None
        if init:
            loaded = read_efficientnet_checkpoint(init)
            cfg = EfficientNetConfig.from_dict(loaded["cfg"])
        elif isinstance(config, EfficientNetConfig):
            cfg = config
        elif arch is None:
            cfg = EfficientNetConfig.from_dict(config)
        else:
            cfg = EfficientNetConfig.named(arch, **(config or {}))
        self.config = cfg
        self.frontend = LogMelFrontend(n_mels=cfg.n_mels, mean=cfg.logmel_mean, std=cfg.logmel_std)
        cin = cfg.channels(cfg.stem_channels)
        self.stem = conv_bn_act(1, cin, 3, 2, 1, cfg)
        blocks = []
        for expand, kernel, stride, channels, repeats in cfg.stages:
            cout = cfg.channels(channels)
            for i in range(cfg.repeats(repeats)):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1, cfg))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = conv_bn_act(cin, cfg.channels(cfg.head_channels), 1, 1, 1, cfg)
        self._output_size = cfg.channels(cfg.head_channels)
        self._init_weights()
        if loaded is not None:
            self.load_state_dict(loaded["model"], strict=True)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def output_size(self) -> int:
        return self._output_size

    def frame_lengths_to_steps(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps from log-mel frame counts [B] -> LongTensor[B]."""
        n = self.stem.out_lengths(frame_lengths.long())
        for block in self.blocks:
            n = block.depthwise.out_lengths(n)
        return n

    def patch_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps per item from sample counts [B] -> LongTensor[B]."""
        return self.frame_lengths_to_steps(self.frontend.frame_lengths(lengths))

    def encode_features(self, feats: torch.Tensor, frame_lengths: torch.Tensor) -> EfficientNetOutput:
        """Normalised log-mel [B, F, n_mels] with valid frames [B] -> EfficientNetOutput."""
        if feats.dim() != 3 or feats.shape[-1] != self.config.n_mels:
            raise ValueError(f"feats must be [B, F, {self.config.n_mels}], got {tuple(feats.shape)}")
        lengths = frame_lengths.to(feats.device).long()
        x = feats.transpose(1, 2)[:, None]  # [B, 1, n_mels, F]
        x, lengths = self.stem(x, lengths)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        x, _ = self.head(x, lengths)
        hidden = FeatureMap(x, lengths, time_dim=TIME_DIM).frames()  # [B, F', D]
        return EfficientNetOutput(hidden=hidden, lengths=lengths)

    def encode(self, wavs: torch.Tensor, lengths: torch.Tensor) -> EfficientNetOutput:
        """16 kHz waveforms [B, T] with valid samples [B] -> EfficientNetOutput."""
        mel = self.frontend(wavs, lengths)
        return self.encode_features(mel.feats, mel.frame_lengths)

    def extract_layers(self, wavs: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        """Hidden states for probes: a one-element list [hidden [B, F', D]]."""
        return [self.encode(wavs, lengths).hidden]

    def forward(
        self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        """AbsEncoder contract: waveforms [B, T] (or [B, T, 1]), lengths [B] -> ([B, F', D], [B], None)."""
        out = self.encode(xs_pad, ilens)
        return out.hidden, out.lengths, None
