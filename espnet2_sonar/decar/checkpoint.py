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

KIND = "decar_efficientnet"


def efficientnet_checkpoint(encoder: EfficientNetEncoder) -> Dict[str, Any]:
    """The self-describing checkpoint dict of ``encoder`` (tensors on the CPU)."""
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return {"kind": KIND, "cfg": encoder.config.to_dict(), "model": state}


def is_efficientnet_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, Mapping) and ckpt.get("kind") == KIND


def _check(ckpt: Any, source: str) -> Dict[str, Any]:
    if not is_efficientnet_checkpoint(ckpt):
        raise ValueError(f"{source}: not a DECAR EfficientNet checkpoint (expected kind={KIND!r})")
    for part in ("cfg", "model"):
        if not isinstance(ckpt.get(part), Mapping):
            raise ValueError(f"{source}: DECAR EfficientNet checkpoint without a {part!r} mapping")
    return dict(ckpt)


def read_efficientnet_checkpoint(path: str | Path) -> Dict[str, Any]:
    """Read and validate the checkpoint dict at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DECAR EfficientNet checkpoint not found: {path}")
    return _check(torch.load(path, map_location="cpu", weights_only=True), str(path))


def efficientnet_from_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> EfficientNetEncoder:
    """Build the encoder (eval mode) from an in-memory checkpoint dict; strict load."""
    ckpt = _check(ckpt, source)
    try:
        encoder = EfficientNetEncoder(arch=None, config=EfficientNetConfig.from_dict(ckpt["cfg"]))
    except ValueError as e:
        raise ValueError(f"{source}: bad cfg: {e}") from e
    expected = encoder.state_dict()
    got = ckpt["model"]
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [k for k in set(expected) & set(got) if tuple(expected[k].shape) != tuple(got[k].shape)]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{source}: weights do not match the EfficientNet cfg: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {sorted(shapes)[:5]}"
        )
    encoder.load_state_dict(got, strict=True)
    return encoder.eval()


def load_efficientnet(path: str | Path) -> EfficientNetEncoder:
    """``efficientnet_from_checkpoint`` of the file at ``path``."""
    return efficientnet_from_checkpoint(read_efficientnet_checkpoint(path), source=str(path))


def save_encoder(encoder: nn.Module, path: str | Path) -> Path:
    """Write ``encoder`` for the probes: official BEATs format or the DECAR EfficientNet format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(encoder, BeatsEncoder):
        from espnet2_sonar.beats.interop import official_checkpoint

        torch.save(official_checkpoint(encoder), tmp)
    elif isinstance(encoder, EfficientNetEncoder):
        torch.save(efficientnet_checkpoint(encoder), tmp)
    else:
        raise TypeError(f"cannot export a {type(encoder).__name__} encoder")
    tmp.replace(path)
    return path


def load_encoder_any(path: str | Path) -> nn.Module:
    """Either kind of encoder file (or Hugging Face spec) -> encoder in eval mode (BEATs in any
    format ``beats.formats`` reads)."""
    from espnet2_sonar.utils.hub import resolve_checkpoint_path

    path = resolve_checkpoint_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if is_efficientnet_checkpoint(ckpt):
        return efficientnet_from_checkpoint(ckpt, source=str(path))
    from espnet2_sonar.beats.formats import canonical_encoder_checkpoint
    from espnet2_sonar.beats.interop import encoder_from_official

    return encoder_from_official(canonical_encoder_checkpoint(ckpt, str(path)), source=str(path))
