"""SonarTask under DDP: two CPU ranks (gloo) keep identical weights and codebooks.

Runs ``torch.distributed.run --nproc_per_node 2`` on the tiny SONAR config with OCC
settings that re-anchor, protect and grow the codebook at every step, and compares what
each rank holds after every training forward (the tokenizer's state) and at the end (the
whole model). The per-step comparison matters: DDP broadcasts rank 0's buffers before
every forward (validation included), which would hide diverged codebooks at the end.
A negative control without the OCC's collectives shows the per-step check can fail.
"""

import socket
import subprocess

import pytest
import torch

from sonar_fixtures import (
    K0,
    OCC,
    PYTHON,
    REPO,
    load_state,
    make_sonar_stage,
    sonar_train_args,
    state_differences,
    subprocess_env,
)



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(stage, out, dump, no_collectives: bool, max_epoch: int, extra=()) -> subprocess.Popen:
    cmd = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(REPO / "tests" / "fixtures" / "sonar_fixtures.py"),
           *sonar_train_args(stage, out, max_epoch=max_epoch, occ=OCC, extra=extra),
           "--dist_backend", "gloo", "--multiprocessing_distributed", "false"]
    env = subprocess_env(SONAR_TEST_DUMP=str(dump), SONAR_TEST_NO_COLLECTIVES="1" if no_collectives else "0")
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, log) -> None:
    out, _ = proc.communicate(timeout=150)
    log.write_text(out)
    assert proc.returncode == 0, f"distributed training failed (log {log}):\n{out[-4000:]}"


@pytest.mark.timeout(180)
def test_ranks_hold_identical_models_and_grown_codebooks(tmp_path):
    stage = make_sonar_stage(tmp_path)
    procs = {
        "ddp": _start(stage, tmp_path / "exp", tmp_path / "dump", no_collectives=False, max_epoch=2),
        "control": _start(stage, tmp_path / "exp_control", tmp_path / "dump_control", no_collectives=True,
                          max_epoch=1),
    }
    for name, proc in procs.items():
        _finish(proc, tmp_path / f"{name}.log")

    r0, r1 = (torch.load(tmp_path / "dump" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # the ranks trained on disjoint shares of every batch
    assert len(r0["uttids"]) == len(r1["uttids"]) == 6  # 3 batches x 2 epochs
    for ids0, ids1 in zip(r0["uttids"], r1["uttids"]):
        assert ids0 and ids1 and not set(ids0) & set(ids1)

    # each rank draws its own masks: equal-length items at the same batch position differ
    pairs = [(m0[i], m1[i]) for (n0, m0), (n1, m1) in zip(r0["masks"], r1["masks"])
             for i in range(min(len(n0), len(n1))) if n0[i] == n1[i]]
    assert pairs and any(not torch.equal(a, b) for a, b in pairs)

    # after every training forward, every codebook buffer is identical on both ranks ...
    assert len(r0["steps"]) == len(r1["steps"]) == 6
    for step, (s0, s1) in enumerate(zip(r0["steps"], r1["steps"])):
        assert state_differences(s0, s1) == [], f"ranks differ after step {step + 1}"
    sizes = [int(s["tokenizer.quantize.embedding.weight"].shape[0]) for s in r0["steps"]]
    assert sizes == [K0 + 16 * (i + 1) for i in range(6)]  # grew at every step
    last = r0["steps"][-1]
    assert last["tokenizer.quantize.protected"].any() and not last["tokenizer.quantize.protected"].all()

    # ... and at the end every parameter and buffer is, and equals what ESPnet saved (rank 0)
    assert state_differences(r0["final"], r1["final"]) == []
    assert state_differences(r0["final"], load_state(tmp_path / "exp" / "2epoch.pth")) == []
    assert int(r0["final"]["step"]) == 6
    assert r0["final"]["targets.tokenizer.quantize.embedding.weight"].shape[0] == K0 + 6 * 16
    initial = torch.load(stage.encoder, weights_only=True)["model"]
    assert not torch.equal(initial["post_extract_proj.weight"], r0["final"]["encoder.post_extract_proj.weight"])

    # negative control: without the collectives each rank's codebook follows its own data
    c0, c1 = (torch.load(tmp_path / "dump_control" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    diverged = [step for step, (s0, s1) in enumerate(zip(c0["steps"], c1["steps"]))
                if "tokenizer.quantize.embedding.weight" in state_differences(s0, s1)]
    assert diverged, "ranks agree even without collectives: the check above cannot fail"


@pytest.mark.timeout(180)
@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="CPU has no native bf16")
def test_ranks_stay_identical_under_bf16_autocast(tmp_path):
    """``--use_amp true`` on CPU ranks (AmpTrainer: bf16 autocast): one epoch, same checks."""
    stage = make_sonar_stage(tmp_path)
    proc = _start(stage, tmp_path / "exp", tmp_path / "dump", no_collectives=False, max_epoch=1,
                  extra=["--use_amp", "true"])
    _finish(proc, tmp_path / "amp.log")
    r0, r1 = (torch.load(tmp_path / "dump" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["cpu_autocast"] == r1["cpu_autocast"] == [True] * 3  # every training forward ran under autocast
    for step, (s0, s1) in enumerate(zip(r0["steps"], r1["steps"])):
        assert state_differences(s0, s1) == [], f"ranks differ after step {step + 1}"
    assert state_differences(r0["final"], r1["final"]) == []
    assert all(v.dtype != torch.bfloat16 for v in r0["final"].values())  # weights and buffers stay fp32
    assert r0["final"]["targets.tokenizer.quantize.embedding.weight"].shape[0] == K0 + 3 * 16
