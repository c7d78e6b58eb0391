"""Reading a ``decar_efficientnet`` checkpoint file: ``{'kind', 'cfg', 'model'}``, validated.

Below both ``decar.efficientnet`` (whose ``init=`` reads one) and ``decar.checkpoint``
(which builds and writes them).
"""

from pathlib import Path
from typing import Any, Dict, Mapping

import torch

KIND = "decar_efficientnet"


def is_efficientnet_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, Mapping) and ckpt.get("kind") == KIND


def check_efficientnet_checkpoint(ckpt: Any, source: str) -> Dict[str, Any]:
    """``ckpt`` as a dict if it is a DECAR EfficientNet checkpoint with ``cfg`` and ``model``, else ``ValueError``."""
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
    return check_efficientnet_checkpoint(torch.load(path, map_location="cpu", weights_only=True), str(path))
