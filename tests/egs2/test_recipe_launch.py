"""How the recipe starts a training (egs2/TEMPLATE/sonar1/utils/launch.sh, which sonar.sh's
train_model calls): always through ESPnet's launcher, as DDP whenever it uses more than one
device, never as DataParallel.

The command tests record what the launcher executes with stand-in job scripts (named as the
real ones: the launcher picks its path by the name) and feed the recorded training options
to ESPnet's own ``resolve_distributed_mode``. The DDP test runs the script for real on two CPU
ranks (gloo) and checks that both ranks hold the same parameters and the same grown codebook
after every step (the checks of test_sonar_distributed.py, same fixtures)."""

import argparse
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from sonar_fixtures import REPO, make_sonar_stage, sonar_train_args, state_differences, subprocess_env
from sonar_fixtures import K0, OCC

TEMPLATE = REPO / "egs2" / "TEMPLATE" / "sonar1"
LAUNCH = TEMPLATE / "utils" / "launch.sh"
RECORDER = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/argv"\n'


def _stand_in(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(RECORDER)
    path.chmod(0o755)
    return path


def _launch(tmp_path: Path, cmd: Path, *options: str) -> list:
    """Run launch.sh with ``cmd`` standing in for the job backend; the argv it was given."""
    proc = subprocess.run([str(LAUNCH), "--cmd", str(cmd), *options, str(tmp_path / "exp" / "train.log"),
                           "espnet2_sonar.bin.sonar_train", "--config", "c.yaml"],
                          cwd=TEMPLATE, env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return (cmd.parent / "argv").read_text().splitlines()


def _training_options(argv: list) -> argparse.Namespace:
    """The distributed options ESPnet's AbsTask reads, parsed from the training part of ``argv``."""
    p = argparse.ArgumentParser()
    p.add_argument("--ngpu", type=int, default=0)
    p.add_argument("--multiprocessing_distributed", type=lambda v: v.lower() == "true", default=False)
    for name in ("dist_launcher", "dist_init_method", "dist_backend", "dist_rank", "dist_world_size", "local_rank"):
        p.add_argument(f"--{name}", default=None)
    args, _ = p.parse_known_args(argv[argv.index("espnet2_sonar.bin.sonar_train") + 1:])
    return args


def _resolve(args: argparse.Namespace, monkeypatch) -> argparse.Namespace:
    from espnet2.train.distributed_utils import resolve_distributed_mode

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    resolve_distributed_mode(args)
    return args


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ngpu", [0, 1, 4])
def test_one_node_runs_one_process_or_ddp_never_dataparallel(tmp_path, ngpu, monkeypatch):
    argv = _launch(tmp_path, _stand_in(tmp_path, "run_local.sh"), "--ngpu", str(ngpu))
    assert argv[:3] == ["--gpu", str(ngpu), str(tmp_path / "exp" / "train.log")]
    assert argv[3:7] == ["python", "-m", "espnet2_sonar.bin.sonar_train", "--config"]
    args = _resolve(_training_options(argv), monkeypatch)
    # ESPnet's AbsTask.main spawns one DDP process per GPU exactly when both are true
    assert args.distributed == args.multiprocessing_distributed == (ngpu > 1)
    if ngpu > 1:  # the command before launch.sh (--ngpu only) was DataParallel: the check can fail
        old = _resolve(argparse.Namespace(**{**vars(_training_options(argv)), "multiprocessing_distributed": False}),
                       monkeypatch)
        assert not old.distributed


@pytest.mark.timeout(60)
def test_num_nodes_goes_through_slurm_with_one_task_per_node(tmp_path, monkeypatch):
    slurm = _stand_in(tmp_path, "slurm.pl")
    argv = _launch(tmp_path, slurm, "--ngpu", "4", "--num_nodes", "2")
    log = str(tmp_path / "exp" / "train.log")
    assert argv[:9] == ["--gpu", "4", "--num_threads", "4", "--num_nodes", "2", log, "srun", "--export=ALL"]
    args = _training_options(argv)
    assert (args.ngpu, args.multiprocessing_distributed, args.dist_launcher) == (4, True, "slurm")
    assert args.dist_init_method.startswith(f"file://{tmp_path / 'exp' / '.dist_init_'}")  # shared file system

    # the recipe's Slurm backend (utils/slurm.pl -> run_slurm.sh) allocates the nodes around that srun
    fake = tmp_path / "slurm_bin"
    fake.mkdir()
    for tool in ("salloc", "srun"):
        (fake / tool).write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" {tool} "$@" > "{fake}/{tool}.argv"\n')
        (fake / tool).chmod(0o755)
    env = dict(subprocess_env(), PATH=f"{fake}:{os.environ['PATH']}")
    subprocess.run([str(TEMPLATE / "utils" / "slurm.pl"), *argv], env=env, check=True, timeout=30)
    sent = (fake / "salloc.argv").read_text().splitlines()
    assert sent[:7] == ["salloc", "--nodes", "2", "--ntasks-per-node", "1", "--cpus-per-task", "4"]
    assert "--gres=gpu:4" in sent and sent[sent.index("srun"):][:2] == ["srun", "--export=ALL"]
    assert not (fake / "srun.argv").exists()  # srun runs inside the allocation, started by salloc

    # the local backend is one machine: it refuses, naming the backend to use
    proc = subprocess.run([str(LAUNCH), "--cmd", str(_stand_in(tmp_path, "run_local.sh")), "--num_nodes", "2",
                           log, "m"], cwd=TEMPLATE, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "cmd_backend=slurm" in proc.stderr


def test_train_model_starts_trainings_through_launch_sh():
    text = (TEMPLATE / "sonar.sh").read_text()
    body = text[text.index("train_model() {"):]
    body = body[: body.index("\n}\n")]
    assert 'utils/launch.sh --cmd "${cuda_cmd}" --ngpu "${ngpu}" --num_nodes "${num_nodes}" --cpu_ranks "${cpu_ranks}"' in body
    assert "python -m" not in body.split("stage_guard record")[-1]  # no other way to start one


@pytest.mark.timeout(240)
def test_recipe_launch_on_two_cpu_ranks_keeps_ranks_identical(tmp_path):
    """utils/launch.sh --ngpu 0 --cpu_ranks 2 (what train_model runs for --cpu_ranks 2), with
    the recording entry point of sonar_fixtures (sonar_train plus per-step dumps)."""
    stage = make_sonar_stage(tmp_path)
    dump = tmp_path / "dump"
    cmd = [str(LAUNCH), "--cmd", "utils/run_local.sh", "--ngpu", "0", "--cpu_ranks", "2",
           str(tmp_path / "exp" / "train.log"), "sonar_fixtures",
           *sonar_train_args(stage, tmp_path / "exp", max_epoch=1, occ=OCC)]
    env = subprocess_env(SONAR_TEST_DUMP=str(dump), SONAR_TEST_NO_COLLECTIVES="0")
    env["PYTHONPATH"] = f"{REPO / 'tests' / 'fixtures'}:{env['PYTHONPATH']}"
    proc = subprocess.run(cmd, cwd=TEMPLATE, env=env, capture_output=True, text=True, timeout=220)
    log = (tmp_path / "exp" / "train.log").read_text() if (tmp_path / "exp" / "train.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    assert "--dist_backend gloo" in log.splitlines()[0]
    assert re.search(r":0/2\] ", log), "ESPnet did not log as rank 0 of 2"

    r0, r1 = (torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for ids0, ids1 in zip(r0["uttids"], r1["uttids"]):  # two ranks, disjoint shares of each batch
        assert ids0 and ids1 and not set(ids0) & set(ids1)
    assert len(r0["steps"]) == len(r1["steps"]) == 3
    for step, (s0, s1) in enumerate(zip(r0["steps"], r1["steps"])):
        assert state_differences(s0, s1) == [], f"ranks differ after step {step + 1}"
    sizes = [int(s["tokenizer.quantize.embedding.weight"].shape[0]) for s in r0["steps"]]
    assert sizes == [K0 + 16 * (i + 1) for i in range(3)]  # the codebook grew at every step
    assert state_differences(r0["final"], r1["final"]) == []
