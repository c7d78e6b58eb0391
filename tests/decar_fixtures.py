"""Generated audio for the DECAR tests (not a test module).

    write_sound_dir(path, "u", 24, seed=0)   # Kaldi dir: wav.scp, utt2dur, utt2label

Clips are 16 kHz mono, drawn from a few synthetic sound classes (steady tone, chirp,
noise burst, click train, amplitude-modulated tone) with seeded random parameters, so
clustering has structure to find. Everything is seeded: the same call writes the same files.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

SR = 16000
REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLASSES = ("tone", "chirp", "noise", "clicks", "am")


def synth(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of class ``kind`` -> float32 [seconds * SR]."""
    t = np.arange(int(seconds * SR)) / SR
    if kind == "tone":
        f = rng.uniform(200, 1500)
        x = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
    elif kind == "chirp":
        f0, f1 = rng.uniform(200, 600), rng.uniform(2000, 5000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    elif kind == "noise":
        x = rng.standard_normal(t.size) * (np.sin(np.pi * t / seconds) ** 2)
    elif kind == "clicks":
        x = np.zeros(t.size)
        period = int(SR / rng.uniform(4, 12))
        x[:: max(period, 1)] = 1.0
        x = np.convolve(x, np.hanning(64), mode="same")
    elif kind == "am":
        f, fm = rng.uniform(300, 3000), rng.uniform(2, 8)
        x = np.sin(2 * np.pi * f * t) * (0.5 + 0.5 * np.sin(2 * np.pi * fm * t))
    else:
        raise ValueError(kind)
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.2, 0.6)
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_sound_dir(
    path: Path,
    prefix: str,
    n: int,
    seed: int,
    classes: Sequence[str] = CLASSES,
    seconds: Sequence[float] = (1.0, 1.5, 2.5),
) -> Path:
    """A Kaldi dir of ``n`` clips cycling through ``classes`` and durations ``seconds``."""
    path = Path(path).resolve()
    (path / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scp, durs, labels = [], [], []
    for i in range(n):
        uid = f"{prefix}{i:04d}"
        kind = classes[i % len(classes)]
        dur = seconds[(i // len(classes)) % len(seconds)]
        f = path / "wav" / f"{uid}.wav"
        sf.write(f, synth(kind, dur, rng), SR, subtype="FLOAT")
        scp.append(f"{uid} {f}\n")
        durs.append(f"{uid} {dur:.3f}\n")
        labels.append(f"{uid} {kind}\n")
    (path / "wav.scp").write_text("".join(scp))
    (path / "utt2dur").write_text("".join(durs))
    (path / "utt2label").write_text("".join(labels))
    return path


def run(cmd, cwd=None, env_extra=None, timeout=600, check=True) -> subprocess.CompletedProcess:
    """Run a command with the venv's Python on PATH and few threads; raise with its output on
    failure (unless ``check`` is False)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(PYTHON).parent}:{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(env_extra or {})
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def decar_train_cmd(lists: Path, out_dir: Path, max_epoch: int, *extra: str) -> list:
    """``python -m espnet2_sonar.bin.decar_train`` on ``lists/{train,valid}`` with the tiny config."""
    return [
        PYTHON, "-m", "espnet2_sonar.bin.decar_train",
        "--config", str(REPO / "conf" / "tiny" / "decar_efficientnet.yaml"),
        "--ngpu", "0", "--output_dir", str(out_dir), "--max_epoch", str(max_epoch), "--resume", "true",
        "--train_data_path_and_name_and_type", f"{lists}/train/wav.scp,speech,sonar_sound_resample_mix",
        "--valid_data_path_and_name_and_type", f"{lists}/valid/wav.scp,speech,sonar_sound_resample_mix",
        "--train_shape_file", f"{lists}/train/speech_shape", "--valid_shape_file", f"{lists}/valid/speech_shape",
        "--batch_size", "8", "--model_conf", "num_clusters=5", "--model_conf", "bn_calibration_clips=16",
        "--model_conf", "draws_per_epoch=0",
        *extra,
    ]  # fmt: skip
