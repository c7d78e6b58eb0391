"""The recipe end to end on the tiny corpus: every stage, both methods, then a rerun that
does no work again (stages are idempotent), then DECAR added to the same run from stage 3."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "egs2" / "debian_sounds" / "sonar1"


def _run(args, tmp_path, timeout):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="2")
    cmd = [
        "./run.sh", "--subset", "tiny", "--data_dir", str(tmp_path / "data"), "--exp_dir", str(tmp_path / "exp"),
        "--domains", "env bio", "--probe_seeds", "0 1", "--probe_max_per_class", "20",
        "--probe_tasks", "prior_sfx instrument animal foley",  # the tiny corpus has no voice_gender source
        "--train_args", "--max_epoch 1 --num_iters_per_epoch 2 --batch_size 4", *args,
    ]
    return subprocess.run(cmd, cwd=RECIPE, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(1500)
def test_recipe_end_to_end_on_the_tiny_corpus(tmp_path):
    proc = _run([], tmp_path, timeout=1400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    exp = tmp_path / "exp"
    from espnet2_sonar.beats.interop import load_official, load_official_tokenizer

    for stage_dir in [exp / "base", exp / "sonar" / "env", exp / "sonar" / "bio", exp / "dcp" / "env", exp / "dcp" / "bio"]:
        load_official(stage_dir / "encoder.pt")
        load_official_tokenizer(stage_dir / "tokenizer.pt")
    for domain in ("env", "bio"):
        report = json.loads((exp / "sonar" / domain / "replay" / "report.json").read_text())
        assert report["sampled_ids"], report.keys()
        flags = (exp / "sonar" / domain / "lists" / "train" / "is_replay").read_text().split()
        assert "1" in flags[1::2]  # SONAR trains on replay items
        dcp_flags = (exp / "dcp" / domain / "lists" / "train" / "is_replay").read_text().split()
        assert set(dcp_flags[1::2]) == {"0"}  # DCP has no replay
    results = json.loads((exp / "report" / "results.json").read_text())
    assert {"sonar", "dcp"} <= set(results["methods"]) if isinstance(results.get("methods"), (list, dict)) else True
    # the default base regresses the GE2E teacher; the teacher and the log-mel floor are reference rows
    assert (exp / "base" / "teacher" / "encoder.pt").is_file() and not (exp / "base" / "iter1").exists()
    assert {"random", "logmel", "teacher/ge2e"} <= set(results["references"])
    assert results["spec"]["old_tasks"] == ["prior_sfx", "instrument"]  # music is not adapted here
    assert set(results["task_floors"]["prior_sfx"]["references"]) >= {"random", "logmel", "teacher/ge2e"}
    assert "## Tasks: chance, floors and learnability" in (exp / "report" / "report.md").read_text()
    assert (exp / "report" / "report.md").read_text().strip()
    assert list((exp / "report").glob("*.png"))
    assert "encoder.pt" in proc.stderr  # prints where the checkpoints are

    # a rerun redoes nothing: every training dir is kept as it was
    logs = {p: p.stat().st_mtime for p in exp.glob("*/*/train.log")}
    assert logs
    again = _run([], tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert {p: p.stat().st_mtime for p in exp.glob("*/*/train.log")} == logs

    # DECAR beside them (stages 3-7 again: SONAR/DCP are skipped). The tiny default is the
    # paper's EfficientNet: trained from its own init, with that init exported as its floor.
    decar = _run(["--methods", "sonar dcp decar", "--stage", "3", "--train_args",
                  "--max_epoch 1 --batch_size 4 --model_conf draws_per_epoch=8 --model_conf num_clusters=3"],
                 tmp_path, timeout=900)
    assert decar.returncode == 0, decar.stdout[-3000:] + decar.stderr[-6000:]
    assert {p: p.stat().st_mtime for p in exp.glob("*/*/train.log")} == logs
    from espnet2_sonar.decar.checkpoint import load_efficientnet

    for stage in ("base", "random", "env", "bio"):
        load_efficientnet(exp / "decar" / stage / "encoder.pt")
    assert "Loading pretrained params" not in (exp / "decar" / "base" / "train" / "train.log").read_text()
    results = json.loads((exp / "report" / "results.json").read_text())
    assert "decar" in results["methods"] and {"random", "decar/random", "decar/prior"} <= set(results["references"])
    assert "decar (after bio) vs `decar/random`" in (exp / "report" / "report.md").read_text()
