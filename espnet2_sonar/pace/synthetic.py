"""Generated labelled tasks, so the benchmarks run without the corpus (tests, smoke runs).

Writes ``ROOT/tasks/<task>/{train,valid,test}/{wav.scp,utt2label}`` plus 16 kHz wavs.
Every class is a random sound recipe (harmonic tone with vibrato and amplitude modulation,
a band of noise, an envelope); items jitter pitch, gain, timing and noise around it.
``spread`` sets how far apart the class recipes lie: the ``fine`` tasks (animal, prior_sfx)
get closer classes than the ``coarse`` ones (foley, instrument).
"""

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import soundfile as sf

from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

SPREAD = {"foley": 1.0, "instrument": 1.0, "animal": 0.5, "prior_sfx": 0.5}


def _recipe(rng: np.random.Generator, centre: Dict[str, float], spread: float) -> Dict[str, float]:
    def around(key, lo, hi):
        return float(np.clip(centre[key] + spread * rng.uniform(-1, 1) * (hi - lo) / 2, lo, hi))

    return {
        "f0": around("f0", 80.0, 3000.0),
        "harmonics": around("harmonics", 1.0, 8.0),
        "decay": around("decay", 0.3, 0.95),
        "vibrato": around("vibrato", 0.0, 12.0),
        "am": around("am", 0.0, 20.0),
        "noise_centre": around("noise_centre", 300.0, 6000.0),
        "noise_mix": around("noise_mix", 0.0, 0.8),
        "attack": around("attack", 0.005, 0.3),
    }


def _render(recipe: Dict[str, float], seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE * rng.uniform(0.8, 1.2))
    t = np.arange(n) / SAMPLE_RATE
    f0 = recipe["f0"] * rng.uniform(0.93, 1.07)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * recipe["vibrato"] * t))) / SAMPLE_RATE
    tone = sum(recipe["decay"] ** k * np.sin((k + 1) * phase) for k in range(int(round(recipe["harmonics"]))))
    tone *= 1 + 0.5 * np.sin(2 * np.pi * recipe["am"] * t + rng.uniform(0, 2 * np.pi))
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec *= np.exp(-0.5 * ((freqs - recipe["noise_centre"]) / (0.25 * recipe["noise_centre"])) ** 2)
    noise = np.fft.irfft(spec, n)
    tone /= np.abs(tone).max() + 1e-9
    noise /= np.abs(noise).max() + 1e-9
    wav = (1 - recipe["noise_mix"]) * tone + recipe["noise_mix"] * noise
    env = np.minimum(1.0, t / recipe["attack"]) * np.exp(-t * rng.uniform(0.5, 2.0))
    wav = wav * env + 0.02 * rng.standard_normal(n)
    return (rng.uniform(0.1, 0.6) * wav / (np.abs(wav).max() + 1e-9)).astype(np.float32)


def write_synthetic_tasks(
    root: str | Path,
    seed: int = 0,
    tasks: Sequence[str] = ("foley", "instrument", "animal", "prior_sfx"),
    classes_per_task: int = 6,
    per_class: Dict[str, int] | None = None,
    seconds: float = 1.0,
) -> Path:
    """Write generated tasks under ``root/tasks`` (see module docstring); returns ``root``.

    ``per_class``: items per class and split (default train 8, valid 2, test 4).
    """
    root = Path(root)
    per_class = per_class or {"train": 8, "valid": 2, "test": 4}
    rng = np.random.default_rng(seed)
    for task in tasks:
        spread = SPREAD.get(task, 1.0)
        centre = _recipe(rng, _midpoints(), 1.0)
        recipes = [_recipe(rng, centre, spread) for _ in range(classes_per_task)]
        for split, count in per_class.items():
            d = root / "tasks" / task / split
            (d / "wav").mkdir(parents=True, exist_ok=True)
            scp, lab = [], []
            for c, recipe in enumerate(recipes):
                label = f"{task[:3]}{c:02d}"
                for i in range(count):
                    utt = f"{task}-{split}-{label}-{i:03d}"
                    path = d / "wav" / f"{utt}.wav"
                    sf.write(path, _render(recipe, seconds, rng), SAMPLE_RATE)
                    scp.append(f"{utt} {path}\n")
                    lab.append(f"{utt} {label}\n")
            (d / "wav.scp").write_text("".join(scp))
            (d / "utt2label").write_text("".join(lab))
    return root


def _midpoints() -> Dict[str, float]:
    return {
        "f0": 1540.0,
        "harmonics": 4.5,
        "decay": 0.625,
        "vibrato": 6.0,
        "am": 10.0,
        "noise_centre": 3150.0,
        "noise_mix": 0.4,
        "attack": 0.15,
    }
