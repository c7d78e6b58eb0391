"""EfficientNet encoder <-> its self-describing checkpoint dict, registered as a checkpoint kind.

    {'kind': 'decar_efficientnet', 'cfg': EfficientNetConfig dict, 'model': state_dict}

Importing this module registers :func:`efficientnet_from_checkpoint` under ``decar_efficientnet``
(``utils.checkpoint_kinds``), so ``eval.checkpoints.load_encoder`` reads these files without
importing DECAR. Loads are strict: missing, unexpected or mis-shaped keys raise an error naming
the file; nothing is ignored (the file holds the encoder only).
"""

from typing import Any, Dict, Mapping

from espnet2_sonar.efficientnet.config import EfficientNetConfig
from espnet2_sonar.efficientnet.file import KIND, check_efficientnet_checkpoint
from espnet2_sonar.efficientnet.model import EfficientNetEncoder
from espnet2_sonar.nn.state_dict import state_diff
from espnet2_sonar.utils.checkpoint_kinds import register_checkpoint_kind


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
