"""Official BEATs checkpoints ``{'cfg': dict, 'model': state_dict[, 'label_dict']}`` <-> BeatsEncoder.

All name and layout conversions live in the key map below:

=====================================================  ===============================================
ours                                                   official (microsoft/unilm beats/)
=====================================================  ===============================================
encoder.pos_conv.conv.bias                             encoder.pos_conv.0.bias
encoder.pos_conv.conv.parametrizations.weight.original0  encoder.pos_conv.0.weight_g  (weight norm g)
encoder.pos_conv.conv.parametrizations.weight.original1  encoder.pos_conv.0.weight_v  (weight norm v)
encoder.rel_pos.embedding.weight                       encoder.layers.{i}.self_attn.relative_attention_bias.weight,
                                                       one copy per layer (the official layers share one module)
encoder.layers.{i}.self_attn.qkv_proj.{weight,bias}    encoder.layers.{i}.self_attn.{q,k,v}_proj.{weight,bias}
                                                       (stacked q, k, v along dim 0)
anything else                                          the same name
=====================================================  ===============================================

Loads are strict: checkpoint keys the encoder does not have, keys it needs that the
checkpoint lacks, and shape mismatches raise an error naming them and the file. Keys
matching an ``ignore`` glob (e.g. ``"predictor.*"`` of a fine-tuned checkpoint) are
skipped; ignoring a key the encoder needs still fails as missing. Fine-tuned official files,
ESPnet/OpenBEATs files and Hugging Face specs are turned into this format by ``beats.formats``
(``load_beats_encoder``; tokenizers: ``tokenizer.formats.load_beats_tokenizer``), which every
loader of user checkpoints uses.
"""

import fnmatch
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

import torch
from torch import nn

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.nn.state_dict import state_diff

_RENAMES = {
    "encoder.pos_conv.conv.bias": "encoder.pos_conv.0.bias",
    "encoder.pos_conv.conv.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
    "encoder.pos_conv.conv.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v",
}
_RENAMES_BACK = {v: k for k, v in _RENAMES.items()}
_REL_POS = "encoder.rel_pos.embedding.weight"
_REL_POS_OFFICIAL = "encoder.layers.{}.self_attn.relative_attention_bias.weight"
_REL_POS_OFFICIAL_RE = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight")
_QKV_RE = re.compile(r"(encoder\.layers\.\d+\.self_attn)\.qkv_proj\.(weight|bias)")
_QKV_OFFICIAL_RE = re.compile(r"(encoder\.layers\.\d+\.self_attn)\.([qkv])_proj\.(weight|bias)")


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not match the encoder."""


def to_official_state(state: Mapping[str, torch.Tensor], num_layers: int) -> Dict[str, torch.Tensor]:
    """Our state dict -> official key names and layouts."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        qkv = _QKV_RE.fullmatch(key)
        if qkv:
            prefix, kind = qkv.groups()
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"{prefix}.{name}_proj.{kind}"] = part.contiguous()
        elif key == _REL_POS:
            for i in range(num_layers):
                out[_REL_POS_OFFICIAL.format(i)] = value  # one shared tensor, as the official model saves it
        else:
            out[_RENAMES.get(key, key)] = value
    return out


def from_official_state(state: Mapping[str, torch.Tensor], num_layers: int) -> Dict[str, torch.Tensor]:
    """Official state dict -> our key names and layouts (keys must already be checked)."""
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[tuple, Dict[str, torch.Tensor]] = {}
    rel_pos: Dict[int, torch.Tensor] = {}
    for key, value in state.items():
        m = _QKV_OFFICIAL_RE.fullmatch(key)
        r = _REL_POS_OFFICIAL_RE.fullmatch(key)
        if m:
            prefix, name, kind = m.groups()
            qkv.setdefault((prefix, kind), {})[name] = value
        elif r:
            rel_pos[int(r.group(1))] = value
        else:
            out[_RENAMES_BACK.get(key, key)] = value
    for (prefix, kind), parts in qkv.items():
        out[f"{prefix}.qkv_proj.{kind}"] = torch.cat([parts[n] for n in "qkv"], dim=0)
    if rel_pos:
        first = rel_pos[0]
        differ = [i for i, t in sorted(rel_pos.items()) if not torch.equal(t, first)]
        if differ:
            raise CheckpointMismatchError(
                f"relative_attention_bias of layers {differ} differ from layer 0's; "
                "BEATs shares one table across layers"
            )
        out[_REL_POS] = first
    return out


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def compare_states(
    expected: Mapping[str, torch.Tensor], kept: Mapping[str, torch.Tensor], source: str, what: str
) -> None:
    """Raise ``CheckpointMismatchError`` naming unexpected keys, missing keys and shape
    mismatches of ``kept`` (from ``source``) against ``expected`` (what ``what`` needs)."""
    diff = state_diff(expected, kept)
    unexpected, missing = diff.unexpected, diff.missing
    shapes = [f"{k}: checkpoint {tuple(kept[k].shape)} vs {what} {tuple(expected[k].shape)}" for k in sorted(diff.mismatched)]
    if unexpected or missing or shapes:
        parts = []
        if unexpected:
            parts.append(f"unexpected keys {unexpected} (pass ignore=[...] globs to skip them)")
        if missing:
            parts.append(f"missing keys {missing}")
        if shapes:
            parts.append(f"shape mismatches {shapes}")
        raise CheckpointMismatchError(f"{source} does not match the BEATs {what}: " + "; ".join(parts))


def check_official_state(
    encoder: BeatsEncoder, state: Mapping[str, torch.Tensor], ignore: Iterable[str] = (), source: str = "checkpoint"
) -> Dict[str, torch.Tensor]:
    """Compare official-format ``state`` with what ``encoder`` needs; return it minus ignored keys.

    Raises ``CheckpointMismatchError`` naming unexpected keys, missing keys and shape mismatches.
    """
    ignore = tuple(ignore)
    expected = to_official_state(encoder.state_dict(), encoder.num_layers)
    kept = {k: v for k, v in state.items() if not _matches(k, ignore)}
    compare_states(expected, kept, source, "encoder")
    return kept


def encoder_from_official(
    ckpt: Mapping[str, Any],
    ignore: Iterable[str] = (),
    ignore_cfg: Iterable[str] = (),
    overrides: Optional[Dict[str, Any]] = None,
    source: str = "checkpoint",
) -> BeatsEncoder:
    """Build a BeatsEncoder (eval mode) from an in-memory official checkpoint dict.

    Args:
        ckpt: ``{'cfg': dict, 'model': state_dict, ...}``.
        ignore: globs of state-dict keys to skip (e.g. ``("predictor.*",)``).
        ignore_cfg: cfg keys to drop before building the config (e.g. ESPnet's extra
            ``mask_ratio``); any other unknown cfg key raises.
        overrides: cfg fields to replace (e.g. dropouts for fine-tuning).
    """
    for part in ("cfg", "model"):
        if part not in ckpt:
            raise CheckpointMismatchError(f"{source}: not an official BEATs checkpoint (no {part!r} entry)")
    cfg = {k: v for k, v in dict(ckpt["cfg"]).items() if k not in set(ignore_cfg)}
    cfg.update(overrides or {})
    try:
        config = BeatsConfig.from_dict(cfg)
    except ValueError as err:
        raise ValueError(f"{source}: bad cfg: {err}") from err
    encoder = BeatsEncoder(config)
    state = check_official_state(encoder, ckpt["model"], ignore, source)
    encoder.load_state_dict(from_official_state(state, encoder.num_layers), strict=True)
    return encoder.eval()


def official_checkpoint(
    encoder: BeatsEncoder, label_dict: Optional[Any] = None, predictor: Optional[nn.Linear] = None
) -> Dict[str, Any]:
    """Official-format checkpoint dict of ``encoder`` (tensors on the CPU).

    ``predictor`` (a fine-tuned classifier Linear(D, classes)) is written as ``predictor.*``
    with ``finetuned_model=True``; without it the cfg says ``finetuned_model=False``, so the
    official code loads the file strictly.
    """
    cfg = encoder.config.to_dict()
    model = {k: v.detach().cpu() for k, v in to_official_state(encoder.state_dict(), encoder.num_layers).items()}
    cfg["finetuned_model"] = predictor is not None
    if predictor is not None:
        cfg["predictor_class"] = predictor.out_features
        model["predictor.weight"] = predictor.weight.detach().cpu()
        model["predictor.bias"] = predictor.bias.detach().cpu()
    ckpt: Dict[str, Any] = {"cfg": cfg, "model": model}
    if label_dict is not None:
        ckpt["label_dict"] = label_dict
    return ckpt


def read_checkpoint_file(path: Path, what: str = "BEATs checkpoint") -> Any:
    """``torch.load`` of a checkpoint file on the CPU, tensors only; ``FileNotFoundError`` naming
    ``what`` and the path when there is no such file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_official(
    path: str | Path,
    ignore: Iterable[str] = (),
    ignore_cfg: Iterable[str] = (),
    overrides: Optional[Dict[str, Any]] = None,
) -> BeatsEncoder:
    """Read an official BEATs checkpoint file into a BeatsEncoder (eval mode); strict, see module doc."""
    path = Path(path)
    ckpt = read_checkpoint_file(path)
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return encoder_from_official(ckpt, ignore=ignore, ignore_cfg=ignore_cfg, overrides=overrides, source=str(path))


def save_official(
    encoder: BeatsEncoder,
    path: str | Path,
    label_dict: Optional[Any] = None,
    predictor: Optional[nn.Linear] = None,
) -> Path:
    """Write ``encoder`` as an official BEATs checkpoint that microsoft/unilm's BEATs loads strictly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(official_checkpoint(encoder, label_dict=label_dict, predictor=predictor), path)
    return path

