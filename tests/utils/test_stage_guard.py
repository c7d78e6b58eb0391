"""Stale outputs are impossible: the training-dir provenance guard (utils/stage_guard.py and
sonar.sh's train_model), and the recipe's --help (from any dir, without the venv, every
option with its value)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from espnet2_sonar.utils import stage_guard
from espnet2_sonar.utils.stage_guard import HashCache, StaleStageError, check, record

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "sonar1"
RECIPE = REPO / "egs2" / "debian_sounds" / "sonar1"

CONFIG = "encoder: beats\noptim: adam\noptim_conf:\n    lr: 0.001\nmax_epoch: 2\n"


@pytest.fixture
def stage(tmp_path):
    """A training dir's inputs: config, an init checkpoint (named in the args), data lists."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "train.yaml").write_text(CONFIG)
    (tmp_path / "prev").mkdir()
    (tmp_path / "prev" / "encoder.pt").write_bytes(b"weights-0" * 1000)
    for split in ("train", "valid"):
        (tmp_path / "lists" / split).mkdir(parents=True)
        (tmp_path / "lists" / split / "wav.scp").write_text(f"u1 /a/{split}1.wav\nu2 /a/{split}2.wav\n")
    return {
        "dir": tmp_path / "exp" / "sonar" / "music",
        "config": str(tmp_path / "conf" / "train.yaml"),
        "args": f"sonar_train --encoder_conf init={tmp_path}/prev/encoder.pt --seed 0 --max_epoch 1",
        "inputs": {"train_list": str(tmp_path / "lists" / "train" / "wav.scp"),
                   "valid_list": str(tmp_path / "lists" / "valid" / "wav.scp")},
        "root": tmp_path,
    }


def _trained(stage):
    """Record, then 'train' (the marker train_model writes when training finished)."""
    record(stage["dir"], stage["config"], stage["args"], stage["inputs"])
    (stage["dir"] / ".done").touch()


def _check(stage, **changes):
    s = dict(stage, **changes)
    return check(s["dir"], s["config"], s["args"], s["inputs"])


def test_record_then_check_with_the_same_inputs_passes(stage):
    _trained(stage)
    rec = json.loads((stage["dir"] / "stage_inputs.json").read_text())
    assert rec["config"]["text"] == CONFIG and rec["adopted"] is False
    assert rec["args"] == shlex.split(stage["args"])
    init = f"{stage['root']}/prev/encoder.pt"
    assert set(rec["inputs"]) == {"train_list", "valid_list", init}  # the init checkpoint the args name
    assert len(rec["inputs"][init]["sha256"]) == 64
    assert _check(stage) == []
    # recording again with the same inputs keeps the record (its time stays the first training's)
    record(stage["dir"], stage["config"], stage["args"], stage["inputs"])
    assert json.loads((stage["dir"] / "stage_inputs.json").read_text())["recorded_at"] == rec["recorded_at"]


def test_a_changed_config_is_named_with_its_dir_and_keys(stage):
    _trained(stage)
    Path(stage["config"]).write_text(CONFIG.replace("lr: 0.001", "lr: 0.002"))
    with pytest.raises(StaleStageError) as e:
        _check(stage)
    msg = str(e.value)
    assert msg.startswith(f"{stage['dir']}: ") and f"config {stage['config']} changed (sha256 " in msg
    assert "keys: optim_conf.lr" in msg and "--tag NAME" in msg
    # another path with the very same content is the same config
    other = stage["root"] / "conf" / "copy.yaml"
    other.write_text(CONFIG)
    assert _check(stage, config=str(other)) == []


def test_changed_args_are_named(stage):
    _trained(stage)
    with pytest.raises(StaleStageError, match=r"args changed \('1' -> '5'\)"):
        _check(stage, args=stage["args"].replace("--max_epoch 1", "--max_epoch 5"))
    with pytest.raises(StaleStageError, match=r"args changed \('' -> '--batch_size 4'\)"):
        _check(stage, args=stage["args"] + " --batch_size 4")


def test_a_changed_init_checkpoint_or_data_list_is_named(stage):
    _trained(stage)
    init = stage["root"] / "prev" / "encoder.pt"
    init.write_bytes(b"weights-1" * 1000)  # the previous stage was retrained
    with pytest.raises(StaleStageError) as e:
        _check(stage)
    assert f"input {init} changed (sha256 " in str(e.value) and str(stage["dir"]) in str(e.value)
    init.write_bytes(b"weights-0" * 1000)  # the same content again: fine (content, not mtime)
    assert _check(stage) == []
    Path(stage["inputs"]["train_list"]).write_text("u1 /a/other.wav\n")
    with pytest.raises(StaleStageError, match=r"input train_list \S+/lists/train/wav.scp changed"):
        _check(stage)


def test_a_partly_trained_dir_is_guarded_and_an_untrained_one_is_not(stage):
    record(stage["dir"], stage["config"], stage["args"], stage["inputs"])
    Path(stage["config"]).write_text(CONFIG + "patience: 3\n")
    assert _check(stage) == []  # nothing trained yet (e.g. failed at start-up): free to retrain
    (stage["dir"] / "checkpoint.pth").write_bytes(b"resume state")  # ESPnet's resume checkpoint
    with pytest.raises(StaleStageError, match="keys: patience"):
        _check(stage)


def test_a_dir_trained_before_the_guard_is_adopted(stage):
    stage["dir"].mkdir(parents=True)
    (stage["dir"] / ".done").touch()
    notes = _check(stage)
    assert notes and "not compared" in notes[0]
    rec = record(stage["dir"], stage["config"], stage["args"], stage["inputs"])
    assert rec["adopted"] is True
    assert _check(stage) == []
    Path(stage["config"]).write_text(CONFIG + "patience: 3\n")
    with pytest.raises(StaleStageError):
        _check(stage)


def test_hashes_are_cached_by_size_and_mtime(tmp_path):
    f = tmp_path / "big.pt"
    f.write_bytes(os.urandom(1 << 16))
    cache = HashCache(tmp_path / "cache.json")
    first = cache.sha256(f)
    cache.save()
    again = HashCache(tmp_path / "cache.json")
    assert again.sha256(f) == first and again.hashed == []  # read from the cache, not the file
    f.write_bytes(os.urandom(1 << 16))  # new content (new mtime): hashed again
    assert again.sha256(f) != first and again.hashed == [os.path.realpath(f)]
    import hashlib

    assert again.sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError, match="no such file"):
        again.sha256(tmp_path / "absent.pt")


def test_check_reuses_the_dirs_hash_cache(stage):
    _trained(stage)
    cache = stage["dir"] / stage_guard.HASH_CACHE_NAME
    assert cache.is_file()
    before = HashCache(cache)
    stage_guard.describe(stage["config"], stage["args"], stage["inputs"], before)
    assert before.hashed == []  # every input was hashed when recorded


def test_cli_exit_status_and_message(stage, capsys):
    argv = ["--dir", str(stage["dir"]), "--config", stage["config"], "--args", stage["args"],
            "--inputs", " ".join(f"{k}={v}" for k, v in stage["inputs"].items())]
    assert stage_guard.main(["record"] + argv) == 0
    (stage["dir"] / ".done").touch()
    assert stage_guard.main(["check"] + argv) == 0
    Path(stage["config"]).write_text(CONFIG.replace("adam", "sgd"))
    assert stage_guard.main(["check"] + argv) == 1
    err = capsys.readouterr().err
    assert f"stage_guard: {stage['dir']}: trained from other inputs: config" in err and "keys: optim" in err
    assert stage_guard.main(["check"] + argv[:-2] + ["--inputs", "broken"]) == 1


def _train_model_script(stage, tmp_path, train_args="--max_epoch 1"):
    """bash that runs sonar.sh's own train_model (extracted from the script) with a fake job
    runner that counts trainings instead of training."""
    fake = tmp_path / "fake_cmd.sh"
    fake.write_text('#!/usr/bin/env bash\necho trained >> "$(dirname "$3")/trainings"\n')
    fake.chmod(0o755)
    return f"""
set -euo pipefail
log() {{ echo "$*" >&2; }}
eval "$(sed -n '/^train_model() {{/,/^}}/p' {shlex.quote(str(TEMPLATE / 'sonar.sh'))})"
cd {shlex.quote(str(TEMPLATE))}  # the recipe dir: train_model starts trainings with utils/launch.sh
cuda_cmd={shlex.quote(str(fake))}; ngpu=0; num_nodes=1; cpu_ranks=1; train_args={shlex.quote(train_args)}
train_model sonar_train {stage['dir']} {stage['config']} {stage['root']}/lists/train {stage['root']}/lists/valid \\
    --encoder_conf init={stage['root']}/prev/encoder.pt --seed 0 --model_conf "seed=0 x"
"""


def _bash(script):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)


def test_sonar_sh_train_model_skips_same_inputs_and_stops_on_changed_ones(stage, tmp_path):
    first = _bash(_train_model_script(stage, tmp_path))
    assert first.returncode == 0, first.stderr
    trainings = stage["dir"] / "trainings"
    assert trainings.read_text().count("trained") == 1 and (stage["dir"] / ".done").is_file()
    rec = json.loads((stage["dir"] / "stage_inputs.json").read_text())
    assert rec["args"][:1] == ["sonar_train"] and "seed=0 x" in rec["args"]  # quoted words stay whole
    assert rec["args"][-2:] == ["--max_epoch", "1"]  # --train_args, word-split as on the command
    again = _bash(_train_model_script(stage, tmp_path))
    assert again.returncode == 0 and "skip training" in again.stderr
    assert trainings.read_text().count("trained") == 1
    changed = _bash(_train_model_script(stage, tmp_path, train_args="--max_epoch 3"))
    assert changed.returncode == 1 and trainings.read_text().count("trained") == 1
    assert f"{stage['dir']}: trained from other inputs: args changed ('1' -> '3')" in changed.stderr


# ---------------------------------------------------------------- recipe --help

def _help(cwd: Path, script: str, *args: str):
    """run.sh --help with a bare environment: no venv on PATH (path.sh would fail)."""
    return subprocess.run(["bash", script, *args, "--help"], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


@pytest.mark.parametrize("where", ["repo_root", "recipe_dir"])
def test_run_sh_help_works_outside_the_venv_and_shows_defaults(where):
    cwd, script = (REPO, "egs2/debian_sounds/sonar1/run.sh") if where == "repo_root" else (RECIPE, "./run.sh")
    proc = _help(cwd, script)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r'^  --train_seeds "0 1 2" +one run', out, re.M)
    assert re.search(r"^  --base_teacher ge2e +frozen frame teacher", out, re.M)  # run.sh's own setting
    assert '(sonar.sh default: "")' in out  # ... marked as overriding sonar.sh's
    assert re.search(r'^  --tag "" +experiment tag', out, re.M)
    # every option variable of sonar.sh is listed (the list is generated from them)
    text = (TEMPLATE / "sonar.sh").read_text()
    block = text[re.search(r"^# -+ options$", text, re.M).end():text.index("help_message=")]
    names = re.findall(r"^([a-z_][a-z0-9_]*)=", block, re.M)
    assert len(names) > 30
    assert [n for n in names if f"  --{n} " not in out] == []


def test_help_shows_options_given_before_it():
    proc = _help(RECIPE, "./run.sh", "--train_seeds", "4 5")
    assert proc.returncode == 0 and re.search(r'^  --train_seeds "4 5" ', proc.stdout, re.M)


def test_recipe_scripts_parse():
    for script in (TEMPLATE / "sonar.sh", RECIPE / "run.sh", TEMPLATE / "utils" / "parse_options.sh"):
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_sonar_sh_outside_a_recipe_dir_says_where_to_run():
    proc = subprocess.run(["bash", "egs2/debian_sounds/sonar1/run.sh", "--stage", "7"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "run from a recipe dir" in proc.stderr
