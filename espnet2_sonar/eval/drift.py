"""Representation drift: how far a continued encoder's features moved from the base model's.

A label-free view of forgetting. For audio of an old domain (e.g. the prior pool's
held-out validation list), both encoders see the same clips; per layer, drift is the mean
over clips of the mean over valid patches of ``1 - cos(h_ckpt, h_base)``. 0 means the
continued model computes the same features as the base on that audio; a randomly
initialised encoder sits near 1. SONAR's model-level distillation should keep it lower
than DCP's for the same amount of new-domain training.

Clips are taken evenly spaced over the sorted utterance ids (``max_clips``) and cut to
their first ``max_seconds``; every encoder sees exactly the same samples, at the same
``precision`` (the base included, so drift compares like with like); features are fp32.
"""

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

import torch
from torch import Tensor

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.utils.precision import autocast_context, check_precision, precision_record


def read_clips(wav_scp: str | Path, max_clips: int, max_seconds: float) -> Dict[str, Tensor]:
    """``{utt_id: waveform [T]}`` of up to ``max_clips`` evenly spaced entries of ``wav_scp``."""
    from espnet2_sonar.data.audio import SAMPLE_RATE, load_audio
    from espnet2_sonar.data.kaldi_dir import read_table

    table = read_table(wav_scp)
    if not table:
        raise ValueError(f"{wav_scp}: no entries")
    keys = sorted(table)
    keys = keys[:: max(1, len(keys) // max_clips)][:max_clips]
    limit = int(max_seconds * SAMPLE_RATE)
    return {k: torch.as_tensor(load_audio(table[k])[0][:limit], dtype=torch.float32) for k in keys}


@torch.no_grad()
def layer_features(encoder, clips: Mapping[str, Tensor], precision: str = "fp32") -> List[List[Tensor]]:
    """Per clip, every layer's hidden states [N, D] float32 (valid patches only) of a frozen
    encoder run on the CPU in ``precision``."""
    out = []
    for wav in clips.values():
        lengths = torch.tensor([wav.numel()])
        with autocast_context(precision, "cpu"):
            layers = encoder.extract_layers(wav[None], lengths)
        n = int(encoder.patch_lengths(lengths)[0]) if isinstance(encoder, FrozenExtractor) else layers[0].shape[1]
        out.append([h[0, :n].float() for h in layers])
    return out


def drift(features: List[List[Tensor]], base: List[List[Tensor]]) -> List[float]:
    """Per layer: mean over clips of the mean patch cosine distance to ``base``'s features."""
    if len(features) != len(base) or not features:
        raise ValueError(f"feature lists differ in length ({len(features)} vs {len(base)}) or are empty")
    num_layers = len(base[0])
    if any(len(f) != num_layers for f in features):
        raise ValueError("encoders have different numbers of layers: drift compares one architecture")
    per_layer = []
    for layer in range(num_layers):
        d = [1.0 - torch.nn.functional.cosine_similarity(f[layer], b[layer], dim=-1).mean().item()
             for f, b in zip(features, base)]
        per_layer.append(sum(d) / len(d))
    return per_layer


def representation_drift(
    base_ckpt: str | Path,
    ckpts: Mapping[str, str | Path],
    audio: Mapping[str, str | Path],
    max_clips: int = 40,
    max_seconds: float = 4.0,
    progress: Optional[Callable[[str], None]] = None,
    precision: str = "fp32",
) -> dict:
    """Drift of every checkpoint from ``base_ckpt`` on every audio set.

    Args:
        base_ckpt: the reference encoder (anything ``eval.checkpoints.load_encoder`` reads).
        ckpts: ``{name: checkpoint}``.
        audio: ``{set name: wav.scp}`` (old-domain audio, e.g. the prior pool's valid list).

    Returns ``{"base", "max_clips", "max_seconds", "audio": {set: {"wav_scp", "clips"}},
    "drift": {name: {set: {"per_layer": [...], "last": float, "mean": float}}}}``.
    """
    from espnet2_sonar.eval.checkpoints import load_encoder

    check_precision(precision, "cpu")
    clips = {name: read_clips(scp, max_clips, max_seconds) for name, scp in audio.items()}
    base = load_encoder(base_ckpt)
    base_feats = {name: layer_features(base, c, precision) for name, c in clips.items()}
    result = {
        "base": str(base_ckpt),
        "max_clips": max_clips,
        "max_seconds": max_seconds,
        "precision": precision_record(precision, "cpu"),
        "audio": {name: {"wav_scp": str(audio[name]), "clips": len(c)} for name, c in clips.items()},
        "drift": {},
    }
    for name, ckpt in ckpts.items():
        encoder = load_encoder(ckpt)
        result["drift"][name] = {}
        for set_name, c in clips.items():
            per_layer = drift(layer_features(encoder, c, precision), base_feats[set_name])
            result["drift"][name][set_name] = {
                "per_layer": per_layer, "last": per_layer[-1], "mean": sum(per_layer) / len(per_layer)}
        if progress is not None:
            progress(name)
    return result
