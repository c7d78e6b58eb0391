"""Encoder checkpoints of DECAR runs, loadable by the frozen probes.

* ``EfficientNetEncoder`` -> a self-describing file
  ``{'kind': 'decar_efficientnet', 'cfg': EfficientNetConfig dict, 'model': state_dict}``
  (``espnet2_sonar.efficientnet.interop``, which also registers its loader);
* ``BeatsEncoder`` -> an official BEATs checkpoint (``espnet2_sonar.beats.interop``).
"""

from pathlib import Path

import torch
from torch import nn

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.efficientnet.interop import efficientnet_checkpoint
from espnet2_sonar.efficientnet.model import EfficientNetEncoder
from espnet2_sonar.utils.atomic_write import atomic_path


def save_encoder(encoder: nn.Module, path: str | Path) -> Path:
    """Write ``encoder`` for the probes: official BEATs format or the DECAR EfficientNet format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(encoder, BeatsEncoder):
        from espnet2_sonar.beats.interop import official_checkpoint

        ckpt = official_checkpoint(encoder)
    elif isinstance(encoder, EfficientNetEncoder):
        ckpt = efficientnet_checkpoint(encoder)
    else:
        raise TypeError(f"cannot export a {type(encoder).__name__} encoder")
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path

