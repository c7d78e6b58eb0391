"""Deterministic cropping of long training audio (an ESPnet preprocess_fn)."""

import hashlib
from typing import Dict

import numpy as np


class DeterministicCrop:
    """Crop ``speech`` to at most ``max_samples`` at an offset fixed by the utterance id.

    The offset is a hash of ``(seed, uid)``: the same crop in every epoch, every worker and
    every resumed run, so a resumed run sees exactly the data an uninterrupted run saw.
    Also turns an ``is_replay`` entry into a 1-element int array.
    """

    def __init__(self, max_samples: int | None, seed: int = 0):
        if max_samples is not None and max_samples <= 0:
            raise ValueError(f"max_samples must be positive, got {max_samples}")
        self.max_samples = max_samples
        self.seed = seed

    def offset(self, uid: str, length: int) -> int:
        if self.max_samples is None or length <= self.max_samples:
            return 0
        h = hashlib.sha256(f"{self.seed}:{uid}".encode()).digest()
        return int.from_bytes(h[:8], "little") % (length - self.max_samples + 1)

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        out = dict(data)
        wav = out["speech"]
        if self.max_samples is not None and wav.shape[0] > self.max_samples:
            o = self.offset(uid, wav.shape[0])
            out["speech"] = wav[o : o + self.max_samples]
        if "is_replay" in out:
            out["is_replay"] = np.asarray(out["is_replay"], dtype=np.int64).reshape(-1)[:1]
        return out
