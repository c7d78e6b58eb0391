"""Official BEATs tokenizer checkpoints ``{'cfg': dict, 'model': state_dict}`` <-> BeatsTokenizer.

Key map (official names: microsoft/unilm ``beats/Tokenizers.py`` and ``quantizer.py``):

==================================  ==============================================
ours                                official
==================================  ==============================================
encoder.<k>                         the encoder key map of ``beats.interop`` applied
                                    to <k> (patch_embedding.*, layer_norm.*,
                                    post_extract_proj.*, encoder.*)
quantize_layer.{0,2}.*              the same name
quantize.embedding.{weight,cluster_size,embed_avg,initted}, quantize.cluster_size
                                    the same name
quantize.{usage,replay_usage,protected,num_steps,num_expansions}
                                    not written (online codebook state; see below)
estimator.*                         not written (the official tokenizer has no estimator)
==================================  ==============================================

Writing: ``cfg`` is ``BeatsTokenizerConfig.to_flat()`` (the official flat layout plus our
keys, which the official code ignores) with ``quant_n`` set to the live codebook size, so a
grown codebook loads in the official code. Reading (``BeatsTokenizerConfig.from_flat``) is
strict: checkpoint keys the tokenizer does not have, keys it needs that the checkpoint lacks,
shape mismatches and unknown cfg keys raise errors naming them and the file. ``ignore``
takes globs of model keys to skip, ``ignore_cfg`` cfg keys to drop. The estimator of a loaded
tokenizer is freshly initialised; with ``codebook: occ`` in the cfg the codebook becomes an
online clustered codebook starting from the file's codes (running usage from
``quantize.cluster_size``, nothing protected).
"""

import fnmatch
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

import torch

import espnet2_sonar.beats.interop as encoder_interop
from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer, BeatsTokenizerConfig

QUANTIZE_KEYS = (
    "quantize.embedding.weight",
    "quantize.embedding.cluster_size",
    "quantize.embedding.embed_avg",
    "quantize.embedding.initted",
    "quantize.cluster_size",
)
_ENCODER = "encoder."


def _mismatch(message: str) -> Exception:
    return encoder_interop.CheckpointMismatchError(message)


def _is_tokenizer_key(key: str) -> bool:
    return key.startswith("quantize.") or key.startswith("quantize_layer.")


def to_official_tokenizer_state(tokenizer: BeatsTokenizer) -> Dict[str, torch.Tensor]:
    """Our tokenizer state -> official key names and layouts (no estimator, no OCC extras)."""
    state = tokenizer.state_dict()
    encoder = {k[len(_ENCODER) :]: v for k, v in state.items() if k.startswith(_ENCODER)}
    out = encoder_interop.to_official_state(encoder, tokenizer.encoder.num_layers)
    clash = sorted(k for k in out if _is_tokenizer_key(k))
    if clash:
        raise _mismatch(f"encoder keys clash with tokenizer keys: {clash}")
    out.update({k: v for k, v in state.items() if k.startswith("quantize_layer.") or k in QUANTIZE_KEYS})
    return out


def from_official_tokenizer_state(state: Mapping[str, torch.Tensor], num_layers: int) -> Dict[str, torch.Tensor]:
    """Official tokenizer state (keys already checked) -> our names, without estimator keys."""
    encoder = {k: v for k, v in state.items() if not _is_tokenizer_key(k)}
    out = {_ENCODER + k: v for k, v in encoder_interop.from_official_state(encoder, num_layers).items()}
    out.update({k: v for k, v in state.items() if _is_tokenizer_key(k)})
    return out


def official_tokenizer_checkpoint(tokenizer: BeatsTokenizer) -> Dict[str, Any]:
    """``{'cfg', 'model'}`` of ``tokenizer`` (tensors on the CPU)."""
    cfg = dict(tokenizer.config.to_flat(), quant_n=tokenizer.num_codes)
    model = {k: v.detach().cpu().clone() for k, v in to_official_tokenizer_state(tokenizer).items()}
    return {"cfg": cfg, "model": model}


def _check(expected: Mapping[str, torch.Tensor], kept: Mapping[str, torch.Tensor], source: str) -> None:
    encoder_interop.compare_states(expected, kept, source, "tokenizer")


def tokenizer_from_official(
    ckpt: Mapping[str, Any],
    ignore: Iterable[str] = (),
    ignore_cfg: Iterable[str] = (),
    overrides: Optional[Dict[str, Any]] = None,
    source: str = "checkpoint",
) -> BeatsTokenizer:
    """Build a BeatsTokenizer (eval mode) from an in-memory official tokenizer checkpoint.

    Args:
        ckpt: ``{'cfg': dict, 'model': state_dict}``.
        ignore: globs of model keys to skip; skipping a needed key still fails as missing.
        ignore_cfg: cfg keys to drop; any other unknown cfg key raises.
        overrides: flat cfg keys to replace (e.g. ``estimator_layers``, ``target_dim``, dropouts).
    """
    if not isinstance(ckpt, Mapping):
        raise _mismatch(f"{source}: expected a dict checkpoint, got {type(ckpt).__name__}")
    for part in ("cfg", "model"):
        if part not in ckpt:
            raise _mismatch(f"{source}: not an official BEATs tokenizer checkpoint (no {part!r} entry)")
    drop = set(ignore_cfg)
    cfg = {k: v for k, v in dict(ckpt["cfg"]).items() if k not in drop}
    cfg.update(overrides or {})
    try:
        config = BeatsTokenizerConfig.from_flat(cfg)
    except ValueError as err:
        raise ValueError(f"{source}: bad tokenizer cfg: {err}") from err
    use_occ = config.codebook == "occ"
    tokenizer = BeatsTokenizer(BeatsTokenizerConfig.from_dict(dict(config.to_dict(), codebook="norm_ema")))
    patterns = tuple(ignore)
    kept = {k: v for k, v in ckpt["model"].items() if not any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    _check(to_official_tokenizer_state(tokenizer), kept, source)
    state = from_official_tokenizer_state(kept, tokenizer.encoder.num_layers)
    state.update({k: v for k, v in tokenizer.state_dict().items() if k.startswith("estimator.")})
    tokenizer.load_state_dict(state, strict=True)
    if use_occ:
        tokenizer.use_online_codebook_(config.occ)
    return tokenizer.eval()


def load_official_tokenizer(
    path: str | Path,
    ignore: Iterable[str] = (),
    ignore_cfg: Iterable[str] = (),
    overrides: Optional[Dict[str, Any]] = None,
) -> BeatsTokenizer:
    """Read an official BEATs tokenizer file (e.g. ``Tokenizer_iter3_AS2M.pt``); strict, see module doc."""
    path = Path(path)
    ckpt = encoder_interop.read_checkpoint_file(path, "BEATs tokenizer checkpoint")
    return tokenizer_from_official(ckpt, ignore=ignore, ignore_cfg=ignore_cfg, overrides=overrides, source=str(path))


def save_official_tokenizer(tokenizer: BeatsTokenizer, path: str | Path) -> Path:
    """Write ``tokenizer`` as an official BEATs tokenizer checkpoint (loads in microsoft/unilm's Tokenizers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(official_tokenizer_checkpoint(tokenizer), path)
    return path
