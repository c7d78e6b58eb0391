"""Reading a ``decar_efficientnet`` checkpoint file: ``{'kind', 'cfg', 'model'}``, validated.

Below both ``efficientnet.model`` (whose ``init=`` reads one) and ``efficientnet.interop``
(which converts between encoders and these dicts). Keys of older files are renamed to the
current layout by :func:`upgrade_efficientnet_state`, the one place that knows the old names:

    blocks.N.se.reduce.{weight,bias}  ->  blocks.N.se.fc1.{weight,bias}
    blocks.N.se.expand.{weight,bias}  ->  blocks.N.se.fc2.{weight,bias}

(the squeeze-excite became the shared ``espnet2_sonar.nn.conv.SqueezeExcite``; tensors
and shapes are unchanged). :func:`check_efficientnet_checkpoint` applies it to these files,
and ``EfficientNetEncoder`` applies it when any state dict is loaded into it, so ESPnet
checkpoints of whole models (a resumed DECAR run, ``--init_param``) load too.
"""

import re
from pathlib import Path
from typing import Any, Dict, Mapping

import torch

KIND = "decar_efficientnet"
_LEGACY_SE_NAMES = {"reduce": "fc1", "expand": "fc2"}


def _rename_legacy_se(m: "re.Match[str]") -> str:
    return f"{m.group(1)}{_LEGACY_SE_NAMES[m.group(2)]}."


def upgrade_efficientnet_state(state: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``state`` with squeeze-excite keys of the older layout renamed (see the module docstring);
    ``prefix``: where the encoder's keys start in ``state`` (e.g. ``encoder.`` in a whole model)."""
    legacy = re.compile(rf"^({re.escape(prefix)}blocks\.\d+\.se\.)(reduce|expand)\.")
    return {legacy.sub(_rename_legacy_se, k): v for k, v in state.items()}


def is_efficientnet_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, Mapping) and ckpt.get("kind") == KIND


def check_efficientnet_checkpoint(ckpt: Any, source: str) -> Dict[str, Any]:
    """``ckpt`` as a dict if it is a DECAR EfficientNet checkpoint with ``cfg`` and ``model``, else ``ValueError``."""
    if not is_efficientnet_checkpoint(ckpt):
        raise ValueError(f"{source}: not a DECAR EfficientNet checkpoint (expected kind={KIND!r})")
    for part in ("cfg", "model"):
        if not isinstance(ckpt.get(part), Mapping):
            raise ValueError(f"{source}: DECAR EfficientNet checkpoint without a {part!r} mapping")
    return {**ckpt, "model": upgrade_efficientnet_state(ckpt["model"])}


def read_efficientnet_checkpoint(path: str | Path) -> Dict[str, Any]:
    """Read and validate the checkpoint dict at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DECAR EfficientNet checkpoint not found: {path}")
    return check_efficientnet_checkpoint(torch.load(path, map_location="cpu", weights_only=True), str(path))
