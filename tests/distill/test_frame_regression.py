"""Base pre-training from a frozen frame teacher: pooling, the loss, checkpoints, the task."""

import subprocess
import sys

import pytest
import torch

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.distill.frame_regression import FrameRegressionModel, pool_time_steps
from espnet2_sonar.teachers.frames import FrameTeacher, TeacherFrames

from sonar_fixtures import REPO, write_wav_dir


class ToyTeacher(FrameTeacher):
    """Frames every 10 ms: the log energy of each 160-sample hop in 4 bands (a fixed projection)."""

    name = "toy"
    output_dim = 8

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(160, 8)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))

    def num_frames(self, lengths):
        return lengths.long() // 160

    def frames(self, wavs, lengths):
        n = self.num_frames(lengths)
        hops = wavs[:, : wavs.shape[1] // 160 * 160].reshape(wavs.shape[0], -1, 160)
        x = torch.tanh(self.proj(hops))
        keep = torch.arange(x.shape[1])[None, :] < n[:, None]
        return TeacherFrames([x * keep[..., None]], n, 160)


def _encoder(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BeatsEncoder(BeatsConfig.named("tiny"))


def test_pool_time_steps_averages_valid_frames_only():
    frames = torch.arange(2 * 6 * 1, dtype=torch.float).reshape(2, 6, 1)
    out = pool_time_steps(frames, torch.tensor([6, 3]), steps=3, per_step=2)
    assert out[:, :, 0].tolist() == [[0.5, 2.5, 4.5], [6.5, 8.0, 0.0]]
    longer = pool_time_steps(frames, torch.tensor([6, 3]), steps=4, per_step=2)  # missing frames: no mean
    assert longer[0, 3, 0] == 0


def test_the_student_learns_to_regress_the_teacher():
    torch.manual_seed(0)
    model = FrameRegressionModel(_encoder(), ToyTeacher())
    g = torch.Generator().manual_seed(1)
    wavs = 0.1 * torch.randn(4, 16000, generator=g)
    lengths = torch.tensor([16000, 12000, 9000, 16000])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(30):
        loss, stats, weight = model(wavs, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]
    assert float(stats["cosine"]) == pytest.approx(1 - losses[-1], abs=0.05)
    assert not any(p.grad is not None for p in model.teacher.parameters())


def test_padding_does_not_change_the_loss_of_an_item():
    model = FrameRegressionModel(_encoder(), ToyTeacher()).eval()
    g = torch.Generator().manual_seed(2)
    wav = 0.1 * torch.randn(1, 9000, generator=g)
    alone, _, _ = model(wav, torch.tensor([9000]))
    padded = torch.cat([wav, torch.full((1, 7000), 0.5)], dim=1)
    batch = torch.cat([padded, padded], 0)
    both, _, _ = model(batch, torch.tensor([9000, 9000]))
    torch.testing.assert_close(both, alone, atol=1e-5, rtol=1e-5)


def test_checkpoints_leave_the_teacher_out_and_load_back():
    model = FrameRegressionModel(_encoder(1), ToyTeacher())
    state = model.state_dict()
    assert state and not any(k.startswith("teacher.") for k in state)
    other = FrameRegressionModel(_encoder(2), ToyTeacher())
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        torch.testing.assert_close(v, state[k])


@pytest.mark.timeout(600)
def test_teacher_distill_trains_with_ge2e_and_exports_an_official_encoder(tmp_path):
    from espnet2_sonar.beats.interop import load_official
    from espnet2_sonar.bin.make_train_lists import main as make_lists

    pool = write_wav_dir(tmp_path / "pool", "p", 10, seed=3)
    assert make_lists(["--pool_dir", str(pool), "--out_dir", str(tmp_path / "lists"), "--valid_share", "0.2"]) == 0
    lists = tmp_path / "lists"
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "espnet2_sonar.bin.teacher_distill", "--config",
           str(REPO / "conf" / "tiny" / "pretrain_teacher.yaml"), "--ngpu", "0", "--output_dir", str(out),
           "--max_epoch", "2", "--num_iters_per_epoch", "2", "--batch_size", "4",
           "--use_tensorboard", "false", "--use_matplotlib", "false"]
    for split in ("train", "valid"):
        cmd += [f"--{split}_data_path_and_name_and_type", f"{lists / split / 'wav.scp'},speech,sonar_sound_resample_mix",
                f"--{split}_shape_file", str(lists / split / "speech_shape")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    exp = subprocess.run([sys.executable, "-m", "espnet2_sonar.bin.sonar_export", "--exp_dir", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert exp.returncode == 0, exp.stderr[-3000:]
    assert (out / "encoder.pt").is_file() and not (out / "tokenizer.pt").exists()
    trained = load_official(out / "encoder.pt")
    assert trained.config.encoder_layers == BeatsConfig.named("tiny").encoder_layers
    assert "teacher." not in "".join(torch.load(out / "model.pth", weights_only=True))
    bad = subprocess.run(cmd[:3] + ["--print_config", "--teacher", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "nope" in bad.stderr
