"""Encoder checkpoints of DECAR runs, loadable by the frozen probes.

* ``EfficientNetEncoder`` -> a self-describing file
  ``{'kind': 'decar_efficientnet', 'cfg': EfficientNetConfig dict, 'model': state_dict}``;
* ``BeatsEncoder`` -> an official BEATs checkpoint (``espnet2_sonar.beats.interop``).

Loads are strict: missing, unexpected or mis-shaped keys raise an error naming the file;
nothing is ignored (the file holds the encoder only).
"""

from pathlib import Path
from typing import Any, Dict, Mapping

import torch
from torch import nn

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.decar.efficientnet import EfficientNetConfig, EfficientNetEncoder
from espnet2_sonar.decar.efficientnet_file import (  # noqa: F401 - re-exported: the checkpoint API of DECAR
    KIND,
    check_efficientnet_checkpoint,
    is_efficientnet_checkpoint,
    read_efficientnet_checkpoint,
)
from espnet2_sonar.nn.state_dict import state_diff
from espnet2_sonar.utils.checkpoint_kinds import register_checkpoint_kind
from espnet2_sonar.utils.atomic_write import atomic_path


def efficientnet_checkpoint(encoder: EfficientNetEncoder) -> Dict[str, Any]:
    """The self-describing checkpoint dict of ``encoder`` (tensors on the CPU)."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return {"kind": KIND, "cfg": encoder.config.to_dict(), "model": state}


@register_checkpoint_kind(KIND)
def efficientnet_from_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> EfficientNetEncoder:
    """Build the encoder (eval mode) from an in-memory checkpoint dict; strict load."""
    ckpt = check_efficientnet_checkpoint(ckpt, source)
    try:
        encoder = EfficientNetEncoder(arch=None, config=EfficientNetConfig.from_dict(ckpt["cfg"]))
    except ValueError as e:
        raise ValueError(f"{source}: bad cfg: {e}") from e
    expected = encoder.state_dict()
    got = ckpt["model"]
    diff = state_diff(expected, got)
    if diff:
        raise ValueError(
            f"{source}: weights do not match the EfficientNet cfg: missing {diff.missing[:5]}, "
            f"unexpected {diff.unexpected[:5]}, shape mismatches {sorted(diff.mismatched)[:5]}"
        )
    encoder.load_state_dict(got, strict=True)
    return encoder.eval()


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

