"""Killing SonarTask training mid-epoch and resuming gives the uninterrupted run's losses
and final model (weights, grown codebook, optimizer-driven state), bit for bit.

Three trainings of the tiny SONAR config (2 epochs of 3 steps, codebook growing every
2nd step): (A) uninterrupted; (B) the same with ``--resume true``, SIGKILLed right before
step 5 (mid epoch 2, after the epoch-1 checkpoint was written); (C) B's command again,
which resumes from the epoch-1 checkpoint and finishes.
"""

import signal
import subprocess

import pytest
import torch

from sonar_fixtures import (
    PYTHON,
    REPO,
    load_state,
    make_sonar_stage,
    sonar_train_args,
    state_differences,
    subprocess_env,
)

OCC = dict(expand_every=2, expand_codes=16, max_codes=320, novelty_threshold=0.99, expand_trigger=0.0,
           usage_decay=0.5, dead_usage_threshold=0.9)
TIMING_KEYS = {"iter_time", "forward_time", "backward_time", "optim_step_time", "train_time", "time"}


def _start(stage, out, **env) -> subprocess.Popen:
    cmd = [PYTHON, str(REPO / "tests" / "fixtures" / "sonar_fixtures.py"),
           *sonar_train_args(stage, out, max_epoch=2, occ=OCC, extra=["--resume", "true"])]
    return subprocess.Popen(cmd, env=subprocess_env(**env), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(proc: subprocess.Popen, log) -> int:
    out, _ = proc.communicate(timeout=150)
    log.write_text(out)
    return proc.returncode


def _losses(exp_dir) -> dict:
    """{epoch: {'train'|'valid': {stat: value}}} from ESPnet's reporter, without timings."""
    reporter = torch.load(exp_dir / "checkpoint.pth", map_location="cpu", weights_only=True)["reporter"]
    return {
        epoch: {phase: {k: v for k, v in stats.items() if k not in TIMING_KEYS}
                for phase, stats in phases.items() if phase in ("train", "valid")}
        for epoch, phases in reporter["stats"].items()
    }


@pytest.mark.timeout(180)
def test_kill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    stage = make_sonar_stage(tmp_path)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    a = _start(stage, full)
    b = _start(stage, resumed, SONAR_TEST_KILL_AT_STEP="4")  # 4 steps done: one into epoch 2
    assert _wait(a, tmp_path / "full.log") == 0, (tmp_path / "full.log").read_text()[-4000:]
    assert _wait(b, tmp_path / "killed.log") == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-4000:]

    # B died mid epoch 2: only the epoch-1 checkpoint exists
    assert (resumed / "1epoch.pth").exists() and not (resumed / "2epoch.pth").exists()
    assert torch.load(resumed / "checkpoint.pth", weights_only=True)["reporter"]["epoch"] == 1

    c = _start(stage, resumed)
    assert _wait(c, tmp_path / "resumed.log") == 0, (tmp_path / "resumed.log").read_text()[-4000:]
    assert "The training was resumed" in (tmp_path / "resumed.log").read_text()

    # the same loss curve, every logged statistic of every epoch
    want, got = _losses(full), _losses(resumed)
    assert sorted(want) == sorted(got) == [1, 2]
    for epoch in want:
        for phase in ("train", "valid"):
            assert set(want[epoch][phase]) == set(got[epoch][phase])
            for key, value in want[epoch][phase].items():
                assert got[epoch][phase][key] == pytest.approx(value, rel=0, abs=1e-6), (epoch, phase, key)
    assert want[2]["train"]["codes_added"] > 0  # the codebook grew in the resumed epoch

    # the same final model: parameters, teacher, codebook (grown twice), counters
    final_full, final_resumed = load_state(full / "2epoch.pth"), load_state(resumed / "2epoch.pth")
    assert state_differences(final_full, final_resumed) == []
    assert final_full["targets.tokenizer.quantize.embedding.weight"].shape[0] == 128 + 3 * 16
    assert int(final_full["step"]) == 6 and int(final_full["targets.tokenizer.quantize.num_steps"]) == 6
    # and the same optimizer state
    opt_full = torch.load(full / "checkpoint.pth", weights_only=True)["optimizers"][0]["state"]
    opt_resumed = torch.load(resumed / "checkpoint.pth", weights_only=True)["optimizers"][0]["state"]
    assert opt_full.keys() == opt_resumed.keys()
    for i in opt_full:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_full[i][name], opt_resumed[i][name]), (i, name)
