"""Synthetic audio and a tiny teacher for the S-SONDO tests (not a test module).

    corpus = make_corpus(tmp_path / "data", seed=0)   # pools/<pool>/ + tasks/<task>/{train,valid,test}/
    teacher = make_teacher(tmp_path / "teacher.pt")   # random tiny BEATs, official format

The layout is data_prep's: unlabelled pools (wav.scp, utt2dur) and labelled task splits
(+ utt2label). Classes are families of synthetic sounds (tones, chirps, noise bands, clicks)
that differ per task; everything is seeded.
"""

import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile as sf
from sonar_fixtures import random_official_encoder

SR = 16000
REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def _tone(rng, n, f):
    t = np.arange(n) / SR
    return np.sin(2 * np.pi * f * rng.uniform(0.9, 1.1) * t + rng.uniform(0, 2 * np.pi))


def _chirp(rng, n, f0, f1):
    t = np.arange(n) / SR
    dur = n / SR
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur)))


def _band_noise(rng, n, lo, hi):
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spec[(freqs < lo) | (freqs > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-9)


def _clicks(rng, n, rate):
    x = np.zeros(n)
    step = max(1, int(SR / rate))
    for i in range(int(rng.integers(0, step)), n, step):
        x[i : i + 40] = rng.standard_normal(min(40, n - i))
    return x


SOUNDS = {
    "low_tone": lambda rng, n: _tone(rng, n, 220),
    "high_tone": lambda rng, n: _tone(rng, n, 2500),
    "harmonic": lambda rng, n: sum(_tone(rng, n, 330 * k) / k for k in range(1, 6)),
    "up_chirp": lambda rng, n: _chirp(rng, n, 300, 3000),
    "down_chirp": lambda rng, n: _chirp(rng, n, 3000, 300),
    "low_noise": lambda rng, n: _band_noise(rng, n, 50, 600),
    "high_noise": lambda rng, n: _band_noise(rng, n, 3000, 7000),
    "clicks": lambda rng, n: _clicks(rng, n, 8),
    "fast_clicks": lambda rng, n: _clicks(rng, n, 40),
}
TASKS = {
    "langid": ["harmonic", "up_chirp", "down_chirp"],
    "instrument": ["low_tone", "high_tone", "harmonic"],
    "animal": ["up_chirp", "clicks", "fast_clicks"],
    "foley": ["low_noise", "high_noise", "clicks"],
}
POOLS = {"prior": list(SOUNDS), "music": ["low_tone", "high_tone", "harmonic"]}


def synth(kind: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """One clip of sound family ``kind`` with random gain and a little noise: float32 [T]."""
    n = int(seconds * SR)
    x = SOUNDS[kind](rng, n)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.6) + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_dir(path: Path, items: List[tuple], labelled: bool) -> Path:
    """Kaldi dir from ``(utt, wav, label)`` items: wav.scp, utt2dur[, utt2label]."""
    path = Path(path)
    (path / "wav").mkdir(parents=True, exist_ok=True)
    scp, dur, lab = [], [], []
    for utt, wav, label in sorted(items, key=lambda x: x[0]):
        f = path / "wav" / f"{utt}.wav"
        sf.write(f, wav, SR, subtype="FLOAT")
        scp.append(f"{utt} {f}\n")
        dur.append(f"{utt} {len(wav) / SR:.3f}\n")
        lab.append(f"{utt} {label}\n")
    (path / "wav.scp").write_text("".join(scp))
    (path / "utt2dur").write_text("".join(dur))
    if labelled:
        (path / "utt2label").write_text("".join(lab))
    return path


def make_corpus(
    root: Path,
    seed: int = 0,
    pool_items: int = 24,
    per_class: Dict[str, int] | None = None,
    seconds: Sequence[float] = (0.5, 1.5),
    tasks: Sequence[str] = tuple(TASKS),
    pools: Sequence[str] = tuple(POOLS),
) -> Path:
    """pools/<pool>/ and tasks/<task>/{train,valid,test}/ of synthetic clips (seeded)."""
    root = Path(root)
    per_class = per_class or {"train": 6, "valid": 2, "test": 4}
    rng = np.random.default_rng(seed)
    for pool in pools:
        kinds = POOLS[pool]
        items = []
        for i in range(pool_items):
            kind = kinds[i % len(kinds)] if i % 4 else kinds[0]  # skewed: kinds[0] is over-represented
            items.append((f"{pool}-{i:04d}", synth(kind, rng, rng.uniform(*seconds)), kind))
        write_dir(root / "pools" / pool, items, labelled=False)
    for task in tasks:
        for split, n in per_class.items():
            items = [
                (f"{task}-{split}-{label}-{i:03d}", synth(label, rng, rng.uniform(*seconds)), label)
                for label in TASKS[task]
                for i in range(n)
            ]
            write_dir(root / "tasks" / task / split, items, labelled=True)
    return root


# the teacher: a random BEATs encoder of ``arch`` saved as an official checkpoint
make_teacher = random_official_encoder
