"""Every BEATs checkpoint format users have -> the canonical official format; ESPnet format out.

Formats read (``detect_format``), encoder and tokenizer files alike (the tokenizer's side,
``load_beats_tokenizer`` and its ESPnet cfg keys, is ``espnet2_sonar.tokenizer.formats``):

==================  ===========================================================================
official            microsoft/unilm ``{'cfg', 'model'}`` (``BEATs_iter3*.pt``,
                    ``Tokenizer_iter3*.pt``), and ours (the same, with ``fbank_mean`` /
                    ``fbank_std`` in cfg)
official_finetuned  an official encoder with its AudioSet classifier: cfg
                    ``finetuned_model: true`` and/or ``predictor.*`` keys, usually a
                    ``label_dict``. The classifier and labels are dropped (logged).
espnet              ESPnet / OpenBEATs (``espnet2.beats``, ``generate_beats_checkpoint.py``):
                    the official keys plus ESPnet's two frozen all-ones padding convolutions
                    (``patch_embedding_pad.weight``, ``raw2fbank_pad.weight``); a partial cfg
                    (only what the recipe's ``beats_config`` set; missing keys take the
                    defaults, which ESPnet and the official code share) that may hold
                    ESPnet-only keys (``ESPNET_CFG_KEYS``, dropped; ``embed_loss_beta`` is our
                    ``codebook_beta``). A ``--finetuned_checkpoint`` file holds the whole
                    ESPnet model (``encoder.*`` plus head keys, dropped) and a ``token_list``.
==================  ===========================================================================

fbank statistics: a cfg without ``fbank_mean`` / ``fbank_std`` gets the official
15.41663 / 6.55582, or for the espnet format ESPnet's 15.29130 / 5.90532 (what ESPnet's
``BeatsEncoder`` applies unless told otherwise). The canonical checkpoint always states them.

The canonical form is what ``interop.encoder_from_official`` / ``tokenizer.interop.tokenizer_from_official``
read strictly with no ignore list: only the keys named above are ever dropped, anything else
unknown still fails naming the key and the file. Checkpoint arguments accept a Hugging Face
spec (``hf://OWNER/REPO/PATH``, see ``espnet2_sonar.utils.hub``) wherever a path is accepted.

Writing the ESPnet format (``save_espnet``): the official keys plus the two padding
convolutions, the full cfg, and beside it ``<name>.yaml`` with the ``encoder_conf`` (checkpoint
path and fbank statistics) ESPnet's ``BeatsEncoder`` needs to reproduce our outputs: ESPnet
reads the statistics from its constructor arguments, never from the cfg.
"""

import io
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from espnet2_sonar.beats.frontend import ESPNET_FBANK_MEAN, ESPNET_FBANK_STD, FBANK_MEAN, FBANK_STD
from espnet2_sonar.beats.interop import (
    CheckpointMismatchError,
    encoder_from_official,
    official_checkpoint,
    read_checkpoint_file,
)
from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.hub import resolve_checkpoint_path

log = logging.getLogger(__name__)

ESPNET_PAD_KEYS = ("patch_embedding_pad.weight", "raw2fbank_pad.weight")
"""ESPnet's frozen all-ones convolutions (padding-mask bookkeeping); not BEATs weights."""
ESPNET_CFG_KEYS = (
    "decoder_embed_dim", "decoder_pos_trainable", "decoder_attention_heads", "decoder_mlp_ratio",
    "decoder_layers", "codebook_vocab_size", "mask_ratio", "use_flash_attn",
)  # fmt: skip
"""cfg keys of ESPnet's ``BeatsConfig`` that are not encoder hyper-parameters (its
pre-training predictor, masking, attention kernel)."""
_PREFIX = "encoder."
FORMATS = ("official", "official_finetuned", "espnet")


def is_tokenizer_state(model: Mapping[str, Any]) -> bool:
    """Whether a BEATs-family state dict is a tokenizer's (it has a quantizer)."""
    return any(k.startswith(("quantize.", "quantize_layer.")) for k in model)


def detect_format(ckpt: Any, source: str = "checkpoint") -> str:
    """One of ``FORMATS`` for an in-memory checkpoint; ``CheckpointMismatchError`` naming
    ``source`` when it is no BEATs checkpoint at all."""
    if not isinstance(ckpt, Mapping):
        raise CheckpointMismatchError(f"{source}: expected a dict checkpoint, got {type(ckpt).__name__}")
    if not isinstance(ckpt.get("model"), Mapping):
        raise CheckpointMismatchError(
            f"{source}: not a BEATs checkpoint (no 'model' state dict; found keys {sorted(map(str, ckpt))[:8]}); "
            "expected an official or ESPnet/OpenBEATs file ({'cfg', 'model'})"
        )
    if not isinstance(ckpt.get("cfg", {}), Mapping):
        raise CheckpointMismatchError(f"{source}: 'cfg' is a {type(ckpt['cfg']).__name__}, expected a dict")
    model, cfg = ckpt["model"], dict(ckpt.get("cfg") or {})
    espnet = (
        any(k in model for k in ESPNET_PAD_KEYS)
        or any(k in cfg for k in ESPNET_CFG_KEYS)
        or "token_list" in ckpt
        or (_PREFIX + "patch_embedding.weight" in model and "patch_embedding.weight" not in model)
    )
    if espnet:
        return "espnet"
    if "cfg" not in ckpt:
        raise CheckpointMismatchError(f"{source}: not an official BEATs checkpoint (no 'cfg' entry)")
    if cfg.get("finetuned_model") or any(k.startswith("predictor.") for k in model):
        return "official_finetuned"
    return "official"


def canonical_parts(
    ckpt: Mapping[str, Any],
    source: str,
    kind: str = "encoder",
    espnet_cfg_renames: Optional[Mapping[str, str]] = None,
    espnet_cfg_drop: Tuple[str, ...] = (),
) -> Tuple[str, Dict[str, Any], Dict[str, Any], List[str]]:
    """The step every BEATs-family file (``kind``: ``encoder`` or ``tokenizer``) goes through:
    detect the format, check the kind, strip ESPnet's extras (for the espnet format also rename
    ``espnet_cfg_renames`` and drop ``espnet_cfg_drop`` cfg keys, the kind's own), state the
    fbank statistics. Returns (format, cfg, model, what was dropped)."""
    fmt = detect_format(ckpt, source)
    cfg, model = dict(ckpt.get("cfg") or {}), dict(ckpt["model"])
    if is_tokenizer_state(model) != (kind == "tokenizer"):
        other, want = ("encoder", "a tokenizer") if kind == "tokenizer" else ("tokenizer", "an encoder")
        raise CheckpointMismatchError(f"{source}: this is a BEATs {other} checkpoint, not {want}")
    dropped = []
    if fmt == "espnet":
        if _PREFIX + "patch_embedding.weight" in model and "patch_embedding.weight" not in model:
            # a whole ESPnet model (generate_beats_checkpoint --finetuned_checkpoint): keep the encoder
            heads = sorted({k.split(".", 1)[0] for k in model if not k.startswith(_PREFIX)})
            dropped += [f"{h}.*" for h in heads]
            model = {k[len(_PREFIX) :]: v for k, v in model.items() if k.startswith(_PREFIX)}
        dropped += [k for k in ESPNET_PAD_KEYS if model.pop(k, None) is not None]
        dropped += [f"cfg.{k}" for k in ESPNET_CFG_KEYS if cfg.pop(k, None) is not None]
        for old, new in (espnet_cfg_renames or {}).items():
            if old in cfg:
                cfg[new] = cfg.pop(old)
        dropped += [f"cfg.{k}" for k in espnet_cfg_drop if cfg.pop(k, None) is not None]
        cfg.setdefault("fbank_mean", ESPNET_FBANK_MEAN)
        cfg.setdefault("fbank_std", ESPNET_FBANK_STD)
    else:
        cfg.setdefault("fbank_mean", FBANK_MEAN)
        cfg.setdefault("fbank_std", FBANK_STD)
    return fmt, cfg, model, dropped


def log_dropped(ckpt: Mapping[str, Any], source: str, fmt: str, dropped: List[str]) -> None:
    """Log what canonicalising ``ckpt`` dropped (keys, and its ``label_dict`` / ``token_list``)."""
    extras = [k for k in ("label_dict", "token_list") if k in ckpt]
    if dropped or extras:
        log.info("%s (%s format): dropped %s; the encoder weights are kept", source, fmt, ", ".join(dropped + extras))


def canonical_encoder_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> Dict[str, Any]:
    """Any encoder format (see module doc) -> ``{'cfg', 'model'}`` that ``encoder_from_official``
    reads strictly, cfg stating the fbank statistics."""
    fmt, cfg, model, dropped = canonical_parts(ckpt, source)
    head = [k for k in model if k.startswith("predictor.")]
    if head:
        dropped += head
        model = {k: v for k, v in model.items() if not k.startswith("predictor.")}
    if cfg.get("finetuned_model") or head:
        cfg["finetuned_model"] = False
    log_dropped(ckpt, source, fmt, dropped)
    return {"cfg": cfg, "model": model}


def read_checkpoint(spec: str | Path) -> tuple:
    """(checkpoint dict, local path) of a file path or Hugging Face spec."""
    path = resolve_checkpoint_path(spec)
    try:
        ckpt = read_checkpoint_file(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- re-raised naming the file
        raise CheckpointMismatchError(f"{path}: cannot be read with torch.load ({e})") from e
    return ckpt, path


def load_beats_encoder(spec: str | Path, overrides: Optional[Dict[str, Any]] = None):
    """A BeatsEncoder (eval mode) from a file or Hub spec in any format (see module doc).

    ``overrides``: cfg fields to replace (e.g. dropouts, or fbank statistics)."""
    ckpt, path = read_checkpoint(spec)
    return encoder_from_official(canonical_encoder_checkpoint(ckpt, str(path)), overrides=overrides, source=str(path))


# ---------------------------------------------------------------- ESPnet format out
def espnet_checkpoint(official: Mapping[str, Any]) -> Dict[str, Any]:
    """An official-format checkpoint dict (encoder or tokenizer) -> ESPnet's format: the same
    cfg and keys plus ESPnet's two all-ones padding convolutions."""
    p = int(dict(official["cfg"]).get("input_patch_size", 16))
    model = dict(official["model"])
    model["patch_embedding_pad.weight"] = torch.ones(1, 1, p, p)
    model["raw2fbank_pad.weight"] = torch.ones(1, 1, 400)
    return {"cfg": dict(official["cfg"]), "model": model}


def espnet_encoder_conf(cfg: Mapping[str, Any], path: str | Path) -> Dict[str, Any]:
    """``espnet2.beats.encoder.BeatsEncoder`` arguments that reproduce our outputs from ``path``."""
    return {
        "beats_ckpt_path": str(path),
        "fbank_mean": float(cfg.get("fbank_mean", FBANK_MEAN)),
        "fbank_std": float(cfg.get("fbank_std", FBANK_STD)),
    }


def save_espnet(encoder, path: str | Path) -> Path:
    """Write ``encoder`` (a BeatsEncoder) in ESPnet's BEATs format, plus ``<path>.yaml``
    (``encoder_conf`` for ESPnet's ``BeatsEncoder``: checkpoint path, fbank statistics)."""
    return write_checkpoint(espnet_checkpoint(official_checkpoint(encoder)), Path(path), espnet_conf=True)


def write_checkpoint(ckpt: Dict[str, Any], path: str | Path, espnet_conf: bool = False) -> Path:
    """``torch.save`` to ``path`` atomically; an existing file with the same bytes is left alone
    (mtime kept). ``espnet_conf``: also write ``<path>.yaml`` (see ``save_espnet``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # not the file: torch.save names the archive after the file it writes
    torch.save(ckpt, buffer)
    data = buffer.getvalue()
    if not (path.is_file() and path.read_bytes() == data):
        atomic_write(path, data)
    if espnet_conf:
        import yaml

        conf = {"encoder": "beats", "encoder_conf": espnet_encoder_conf(ckpt["cfg"], path.resolve())}
        text = "# espnet2.beats.encoder.BeatsEncoder arguments for this checkpoint\n" + yaml.safe_dump(conf)
        side = path.with_suffix(".yaml")
        if not side.is_file() or side.read_text() != text:
            side.write_text(text)
    return path


def install_encoder(spec: str | Path, out: str | Path, fmt: str = "official") -> Path:
    """Read the encoder ``spec`` (file or Hub spec, any format), check it loads, and write it to
    ``out`` in the canonical official format (``fmt="espnet"``: ESPnet's). Rewriting the same
    content leaves ``out`` untouched, so stage guards that compare mtimes see no change."""
    if fmt not in ("official", "espnet"):
        raise ValueError(f"fmt must be official|espnet, got {fmt!r}")
    ckpt = official_checkpoint(load_beats_encoder(spec))
    if fmt == "espnet":
        return write_checkpoint(espnet_checkpoint(ckpt), Path(out), espnet_conf=True)
    return write_checkpoint(ckpt, Path(out))
