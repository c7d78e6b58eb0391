"""Every BEATs tokenizer checkpoint format -> a BeatsTokenizer; install one canonically.

The formats are the encoder's (``espnet2_sonar.beats.formats``: official, ours, ESPnet/
OpenBEATs, a file or Hugging Face spec). A tokenizer file in the ESPnet format may also hold
``embed_loss_beta`` (our ``codebook_beta``) and the fine-tuning cfg keys
``_FINETUNE_CFG_KEYS`` (dropped). The canonical form is what ``tokenizer_from_official``
reads strictly.
"""

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from espnet2_sonar.beats.formats import canonical_parts, log_dropped, read_checkpoint, write_checkpoint
from espnet2_sonar.tokenizer.interop import official_tokenizer_checkpoint, tokenizer_from_official

_ESPNET_CFG_RENAMES = {"embed_loss_beta": "codebook_beta"}
_FINETUNE_CFG_KEYS = ("finetuned_model", "predictor_dropout", "predictor_class")


def canonical_tokenizer_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> Dict[str, Any]:
    """Any tokenizer format -> ``{'cfg', 'model'}`` that ``tokenizer_from_official`` reads strictly."""
    fmt, cfg, model, dropped = canonical_parts(
        ckpt, source, kind="tokenizer", espnet_cfg_renames=_ESPNET_CFG_RENAMES, espnet_cfg_drop=_FINETUNE_CFG_KEYS
    )
    log_dropped(ckpt, source, fmt, dropped)
    return {"cfg": cfg, "model": model}


def load_beats_tokenizer(spec: str | Path, overrides: Optional[Dict[str, Any]] = None):
    """A BeatsTokenizer (eval mode) from a file or Hub spec in any format (see module doc)."""
    ckpt, path = read_checkpoint(spec)
    canonical = canonical_tokenizer_checkpoint(ckpt, str(path))
    return tokenizer_from_official(canonical, overrides=overrides, source=str(path))


def install_tokenizer(spec: str | Path, out: str | Path, fmt: str = "official") -> Path:
    """Read the tokenizer ``spec`` (file or Hub spec, any format), check it loads, and write it
    to ``out`` in the canonical official format (the only one: ``fmt="espnet"`` is an error).
    Rewriting the same content leaves ``out`` untouched (stage guards compare mtimes)."""
    if fmt == "espnet":
        raise ValueError("the ESPnet format is written for encoders only")
    if fmt != "official":
        raise ValueError(f"fmt must be official|espnet, got {fmt!r}")
    return write_checkpoint(official_tokenizer_checkpoint(load_beats_tokenizer(spec)), Path(out))
