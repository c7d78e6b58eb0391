"""Precise BatchNorm statistics before each clustering step and before export.

DeepCluster clusters eval-mode features, which use BatchNorm *running* statistics. At
initialisation these are (0, 1), far from the real activation statistics, and with the
EfficientNet momentum (0.01) a short epoch barely moves them: eval-mode features then
collapse (activations shrink layer by layer) and k-means sees a handful of distinct points.
So before features are extracted (and before the encoder is exported for the probes) the
running statistics are recomputed: every BatchNorm is reset, switched to a cumulative
average (``momentum=None``) and fed, without gradients and without dropout, a fixed,
evenly spaced subset of the training list, batched in equal-length crops (no padding enters
the statistics). The result depends only on the weights and the list, so a resumed run
recomputes the same numbers. Models without BatchNorm (BEATs) are left untouched.
"""

from typing import Callable, List, Optional

import numpy as np
import torch
from torch import nn

from espnet2_sonar.sampling.mixing import read_kaldi_map
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(module: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BN) and m.track_running_stats]


def evenly_spaced(n: int, k: int) -> List[int]:
    """min(n, k) indices spread evenly over range(n)."""
    if k >= n:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, k).round()})


@torch.no_grad()
def recalibrate_batchnorm_(
    model: nn.Module,
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    wav_scp: str,
    reader: Callable[[str], np.ndarray],
    max_clips: int = 256,
    batch_size: int = 16,
    max_seconds: Optional[float] = 10.0,
    sample_rate: int = SAMPLE_RATE,
) -> int:
    """Recompute the running statistics of every BatchNorm in ``model``; returns clips used (0: no BN).

    Args:
        forward: ``(wavs [B, T], lengths [B]) -> anything``, running the layers to calibrate
            (e.g. ``DecarModel.features``).
        wav_scp: list to take clips from (an evenly spaced subset of ``max_clips``).
        reader: path -> mono float32 [T].
        batch_size: clips per batch; each batch is cut to its shortest clip.
        max_seconds: clips are cut to their first ``max_seconds`` (None: whole clips).
    """
    layers = batchnorm_layers(model)
    if not layers or max_clips <= 0:
        return 0
    scp = list(read_kaldi_map(wav_scp).items())
    picked = [scp[i] for i in evenly_spaced(len(scp), max_clips)]
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    wavs = []
    for utt, path in picked:
        w = np.asarray(reader(path), dtype=np.float32)[:limit]
        if w.size == 0:
            raise ValueError(f"{wav_scp}: empty audio for {utt} ({path})")
        wavs.append(torch.from_numpy(w))
    order = sorted(range(len(wavs)), key=lambda i: (-wavs[i].numel(), i))

    was_training = model.training
    saved = [(m, m.momentum) for m in layers]
    device = next(model.parameters()).device
    model.eval()
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
            m.train()
        for s in range(0, len(order), batch_size):
            group = order[s : s + batch_size]
            length = min(wavs[i].numel() for i in group)
            batch = torch.stack([wavs[i][:length] for i in group]).to(device)
            forward(batch, torch.full((len(group),), length, dtype=torch.long, device=device))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
    return len(wavs)
