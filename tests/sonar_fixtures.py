"""Synthetic data and tiny official checkpoints for the end-to-end SonarTask tests.

Not a test module: ``test_sonar_distributed.py`` and ``test_sonar_resume.py`` import it.

    stage = make_sonar_stage(tmp_path)          # wavs, lists, T0/M0 checkpoints
    cmd = sonar_train_args(stage, out_dir, max_epoch=2)
    run_sonar_train(cmd)                        # or under torch.distributed.run

Everything is seeded: the same call writes the same files.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile as sf
import torch

SR = 16000
REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def write_wav_dir(path: Path, prefix: str, n: int, seed: int, seconds: Sequence[float] = (1.0, 1.5, 2.0)) -> Path:
    """A Kaldi dir (wav.scp, utt2dur) of ``n`` 16 kHz mono wavs: chirps + harmonics + noise.

    Durations cycle through ``seconds``; ``seed`` picks pitches and noise.
    """
    path = Path(path)
    (path / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scp, durs = [], []
    for i in range(n):
        uid = f"{prefix}{i:03d}"
        dur = seconds[i % len(seconds)]
        t = np.arange(int(dur * SR)) / SR
        f0 = rng.uniform(100, 2000)
        sweep = rng.uniform(-0.5, 0.5)
        phase = 2 * np.pi * f0 * (t + sweep * t**2)
        wav = 0.3 * np.sin(phase) + 0.1 * np.sin(3 * phase) + 0.05 * rng.standard_normal(t.shape)
        f = path / "wav" / f"{uid}.wav"
        sf.write(f, wav.astype(np.float32), SR, subtype="FLOAT")
        scp.append(f"{uid} {f}\n")
        durs.append(f"{uid} {dur:.3f}\n")
    (path / "wav.scp").write_text("".join(scp))
    (path / "utt2dur").write_text("".join(durs))
    return path


def _batch_of(wav_dir: Path, limit: int = 4):
    wavs = []
    for line in (wav_dir / "wav.scp").read_text().splitlines()[:limit]:
        wav, _ = sf.read(line.split(maxsplit=1)[1], dtype="float32")
        wavs.append(torch.from_numpy(wav))
    lengths = torch.tensor([w.shape[0] for w in wavs])
    batch = torch.zeros(len(wavs), int(lengths.max()))
    for i, w in enumerate(wavs):
        batch[i, : w.shape[0]] = w
    return batch, lengths


def random_official_encoder(path: Path, arch: str = "tiny", seed: int = 0) -> Path:
    """A randomly initialised BEATs encoder of ``arch`` (seeded, global RNG untouched), saved
    as an official checkpoint at ``path``."""
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import save_official

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = BeatsEncoder(arch).eval()
    return save_official(encoder, path)


def make_official_checkpoints(out_dir: Path, prior_dir: Path, seed: int = 0) -> Dict[str, Path]:
    """Tiny M0 (random tiny BEATs encoder) and T0 (tiny tokenizer, codebook k-means
    initialised on prior audio), both in official format. Returns {'encoder', 'tokenizer'}."""
    from espnet2_sonar.beats.interop import save_official
    from espnet2_sonar.tokenizer.interop import save_official_tokenizer
    from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
    from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer

    out_dir = Path(out_dir)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        encoder = SonarBeatsEncoder("tiny")
        tokenizer = BeatsTokenizer("tiny").train()
        with torch.no_grad():
            tokenizer(*_batch_of(prior_dir))  # first training batch k-means-initialises T0's codebook
    finally:
        torch.random.set_rng_state(state)
    return {
        "encoder": save_official(encoder.eval(), out_dir / "encoder.pt"),
        "tokenizer": save_official_tokenizer(tokenizer.eval(), out_dir / "tokenizer.pt"),
    }


@dataclass
class SonarStage:
    """Inputs of one tiny SONAR continual pre-training stage.

    Attributes:
        lists: dir with ``train/`` and ``valid/`` lists (wav.scp, speech_shape, is_replay).
        encoder: official-format M0 checkpoint.
        tokenizer: official-format T0 checkpoint.
    """

    lists: Path
    encoder: Path
    tokenizer: Path


def make_sonar_stage(root: Path, num_new: int = 12, num_replay: int = 4) -> SonarStage:
    """Synthetic prior pool (replay) + new-domain pool, their lists, and M0/T0 checkpoints."""
    from espnet2_sonar.bin.make_train_lists import main as make_lists

    root = Path(root)
    prior = write_wav_dir(root / "prior", "old", num_replay, seed=1)
    new = write_wav_dir(root / "new", "new", num_new, seed=2)
    ckpts = make_official_checkpoints(root / "m0", prior)
    lists = root / "lists"
    rc = make_lists(["--pool_dir", str(new), "--out_dir", str(lists), "--replay_scp", str(prior / "wav.scp"),
                     "--valid_share", "0.2"])
    assert rc == 0
    return SonarStage(lists=lists, encoder=ckpts["encoder"], tokenizer=ckpts["tokenizer"])


def sonar_train_args(
    stage: SonarStage,
    output_dir: Path,
    max_epoch: int,
    occ: Optional[Dict[str, float]] = None,
    extra: Sequence[str] = (),
) -> List[str]:
    """``sonar_train`` arguments for conf/tiny/train_sonar.yaml on ``stage`` (CPU, batch 4)."""
    lists = stage.lists
    args = [
        "--config", str(REPO / "conf" / "tiny" / "train_sonar.yaml"),
        "--ngpu", "0",
        "--output_dir", str(output_dir),
        "--max_epoch", str(max_epoch),
        "--batch_size", "4",
        "--num_iters_per_epoch", "3",  # 12 new items / batch 4: the tests count on 3 steps an epoch
        "--num_workers", "0",
        "--use_tensorboard", "false",
        "--use_matplotlib", "false",
        "--encoder_conf", f"init={stage.encoder}",
        "--tokenizer_conf", f"init={stage.tokenizer}",
    ]
    for key, value in (occ or {}).items():
        args += ["--tokenizer_conf", f"occ.{key}={value}"]
    for split in ("train", "valid"):
        args += [
            f"--{split}_data_path_and_name_and_type", f"{lists}/{split}/wav.scp,speech,sonar_sound",
            f"--{split}_data_path_and_name_and_type", f"{lists}/{split}/is_replay,is_replay,text_int",
            f"--{split}_shape_file", f"{lists}/{split}/speech_shape",
        ]
    return args + list(extra)


def subprocess_env(**extra: str) -> Dict[str, str]:
    """Environment for child trainings: one thread each (2-core machine), repo importable."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=f"{REPO}:{env.get('PYTHONPATH', '')}")
    env.update(extra)
    return env


def load_state(path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def state_differences(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], atol: float = 0.0) -> List[str]:
    """Keys whose tensors differ (shape, dtype or values beyond ``atol``), or exist in one only."""
    diffs = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            diffs.append(f"{k}: {tuple(x.shape)}/{x.dtype} vs {tuple(y.shape)}/{y.dtype}")
        elif atol == 0.0 or not x.is_floating_point():
            if not torch.equal(x, y):
                diffs.append(k)
        elif not torch.allclose(x, y, atol=atol, rtol=0.0):
            diffs.append(f"{k}: max |diff| {float((x - y).abs().max()):.3g}")
    return diffs


# ---------------------------------------------------------------------------- launcher
# ``python tests/sonar_fixtures.py <sonar_train args>`` (alone or under torch.distributed.run)
# trains like ``python -m espnet2_sonar.bin.sonar_train``, with test hooks set by env vars:
#   SONAR_TEST_DUMP=DIR           write DIR/rank<r>.pt: {'final': state_dict, 'steps': per-step
#                                 tokenizer states after each training forward, 'uttids': [[ids]],
#                                 'masks': per-step (num_patches [B], mask [B, N]),
#                                 'cpu_autocast': per-step bool (CPU autocast on in the forward)}
#   SONAR_TEST_KILL_AT_STEP=N     SIGKILL this process when training step N is about to start
#                                 (N = SonarModel.step; 0-based count of finished steps)
#   SONAR_TEST_NO_COLLECTIVES=1   do not inject torch.distributed collectives into the OCC
#                                 (negative control: ranks' codebooks must then diverge)


def _recording_trainer():
    import signal

    from espnet2_sonar.utils.amp_trainer import AmpTrainer as Trainer  # SonarTask's trainer

    dump = os.environ.get("SONAR_TEST_DUMP")
    kill_at = os.environ.get("SONAR_TEST_KILL_AT_STEP")

    class RecordingTrainer(Trainer):
        model = None
        uttids: List[List[str]] = []

        @classmethod
        def train_one_epoch(cls, model, iterator, *args, **kwargs):
            def watched():
                for ids, batch in iterator:
                    if kill_at is not None and int(cls.model.step) == int(kill_at):
                        os.kill(os.getpid(), signal.SIGKILL)
                    cls.uttids.append(list(ids))
                    yield ids, batch

            return super().train_one_epoch(model, watched(), *args, **kwargs)

        @classmethod
        def run(cls, model, *args, **kwargs):
            option = kwargs["distributed_option"]  # ESPnet's AbsTask passes everything by keyword
            rank = option.dist_rank if option.distributed else 0
            cls.model = model
            steps, amp = [], []

            def after_targets(module, inputs, output):
                if module.training:
                    amp.append(torch.is_autocast_enabled("cpu"))
                    steps.append({k: v.detach().clone() for k, v in module.state_dict().items()
                                  if not k.startswith("tokenizer.encoder.")})

            model.targets.register_forward_hook(after_targets)
            masks = []
            make_mask = model.encoder.make_mask

            def recorded_make_mask(num_patches, *a, **kw):
                mask = make_mask(num_patches, *a, **kw)
                if model.training:
                    masks.append((num_patches.clone(), mask.clone()))
                return mask

            model.encoder.make_mask = recorded_make_mask
            super().run(model, *args, **kwargs)
            if dump:
                Path(dump).mkdir(parents=True, exist_ok=True)
                torch.save({"final": model.state_dict(), "steps": steps, "uttids": cls.uttids, "masks": masks,
                            "cpu_autocast": amp},
                           Path(dump) / f"rank{rank}.pt")

    return RecordingTrainer


def launch(argv: Sequence[str]) -> None:
    from espnet2_sonar.sonar import target_makers
    from espnet2_sonar.tasks.sonar import SonarTask

    if os.environ.get("SONAR_TEST_NO_COLLECTIVES") == "1":
        target_makers._distributed_collectives = lambda: None
    SonarTask.trainer = _recording_trainer()
    SonarTask.main(cmd=list(argv))


if __name__ == "__main__":
    launch(sys.argv[1:])


def fill_hub_cache(cache, repo_id, files, commit="0123456789abcdef0123456789abcdef01234567"):
    """The Hub cache layout hf_hub_download reads offline: models--OWNER--REPO/{refs/main, snapshots/SHA/...}."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    for name, src in files.items():
        dst = root / "snapshots" / commit / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    return commit
