"""The recipe end to end on the tiny corpus: every stage, both methods, two training seeds,
then a rerun that does no work again (stages are idempotent), then DECAR added to the same
run from stage 3. Also: no held-out clip (drift audio, old-task valid/test) is in any
training or replay list."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "egs2" / "debian_sounds" / "sonar1"


def _run(args, tmp_path, timeout):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="2")
    cmd = [
        "./run.sh", "--subset", "tiny", "--data_dir", str(tmp_path / "data"), "--exp_dir", str(tmp_path / "exp"),
        "--domains", "env bio", "--probe_seeds", "0 1", "--probe_max_per_class", "20", "--train_seeds", "0 1",
        "--probe_tasks", "prior_sfx instrument animal foley",  # the tiny corpus has no voice_gender source
        "--train_args", "--max_epoch 1 --num_iters_per_epoch 2 --batch_size 4", *args,
    ]
    return subprocess.run(cmd, cwd=RECIPE, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(1500)
def test_recipe_end_to_end_on_the_tiny_corpus(tmp_path):
    proc = _run([], tmp_path, timeout=1400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    exp = tmp_path / "exp"
    from espnet2_sonar.beats.interop import load_official
    from espnet2_sonar.tokenizer.interop import load_official_tokenizer

    runs = [exp / "tseed0", exp / "tseed1"]
    stage_dirs = [exp / "base"] + [r / m / d for r in runs for m in ("sonar", "dcp") for d in ("env", "bio")]
    for stage_dir in stage_dirs:
        load_official(stage_dir / "encoder.pt")
        load_official_tokenizer(stage_dir / "tokenizer.pt")
    for run in runs:
        for domain in ("env", "bio"):
            report = json.loads((run / "sonar" / domain / "replay" / "report.json").read_text())
            assert report["sampled_ids"], report.keys()
            flags = (run / "sonar" / domain / "lists" / "train" / "is_replay").read_text().split()
            assert "1" in flags[1::2]  # SONAR trains on replay items
            dcp_flags = (run / "dcp" / domain / "lists" / "train" / "is_replay").read_text().split()
            assert set(dcp_flags[1::2]) == {"0"}  # DCP has no replay
    # each training seed is its own run: the replay draws and the trained weights differ
    import torch

    w = [torch.load(r / "sonar" / "env" / "encoder.pt", map_location="cpu", weights_only=False) for r in runs]
    first = next(k for k, v in w[0]["model"].items() if v.dtype.is_floating_point and v.numel() > 100)
    assert not torch.equal(w[0]["model"][first], w[1]["model"][first])
    assert_held_out_clips_are_never_trained_on(tmp_path / "data", exp)
    results = json.loads((exp / "report" / "results.json").read_text())
    assert results["spec"]["train_seeds"] == [0, 1] and results["verdict"]["replicates"] == 2
    assert results["methods"]["sonar"]["mean_gain"]["n"] == 2
    results_md = (exp / "RESULTS.md").read_text()
    assert "--train_seeds" in results_md and "<!-- BEGIN README results -->" in results_md
    assert {"sonar", "dcp"} <= set(results["methods"])
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
    logs = {p: p.stat().st_mtime for p in list(exp.glob("*/*/train.log")) + list(exp.glob("tseed*/*/*/train.log"))}
    assert logs
    again = _run([], tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    assert {p: p.stat().st_mtime for p in logs} == logs

    # DECAR beside them (stages 3-7 again: SONAR/DCP are skipped). The tiny default is the
    # paper's EfficientNet: trained from its own init, with that init exported as its floor.
    # A rerun with other training args must not reuse the trained dirs silently: it stops and
    # names the difference (the stage guard), before any training.
    stale = _run(["--stage", "4", "--stop_stage", "4", "--train_args", "--max_epoch 2"], tmp_path, timeout=300)
    assert stale.returncode != 0 and "trained from other inputs" in stale.stderr, stale.stderr[-3000:]
    decar = _run(["--methods", "decar", "--stage", "3", "--stop_stage", "5", "--train_args",
                  "--max_epoch 1 --batch_size 4 --model_conf draws_per_epoch=8 --model_conf num_clusters=3"],
                 tmp_path, timeout=900)
    assert decar.returncode == 0, decar.stdout[-3000:] + decar.stderr[-6000:]
    decar = _run(["--methods", "sonar dcp decar", "--stage", "6"], tmp_path, timeout=900)
    assert decar.returncode == 0, decar.stdout[-3000:] + decar.stderr[-6000:]
    assert {p: p.stat().st_mtime for p in logs} == logs
    from espnet2_sonar.efficientnet.model import EfficientNetEncoder
    from espnet2_sonar.eval.checkpoints import load_encoder

    for run in runs:
        for stage in ("base", "random", "env", "bio"):
            assert isinstance(load_encoder(run / "decar" / stage / "encoder.pt"), EfficientNetEncoder)
    assert "Loading pretrained params" not in (runs[0] / "decar" / "base" / "train" / "train.log").read_text()
    results = json.loads((exp / "report" / "results.json").read_text())
    assert "decar" in results["methods"] and {"random", "decar/random"} <= set(results["references"])
    assert results["methods"]["decar"]["stages"][0] == "decar/prior"
    assert results["methods"]["decar"]["accuracy"]["n"][0][0] == 2  # its own stage 0, once per run
    assert "decar (after bio) vs `decar/random`" in (exp / "report" / "report.md").read_text()


def _table(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())


def assert_held_out_clips_are_never_trained_on(data: Path, exp: Path) -> None:
    """Drift audio (the prior pool's held-out valid list) and every task's valid/test clips are in
    no training list and no replay list (by utterance id and by audio path)."""
    held_out = _table(exp / "base" / "lists" / "valid" / "wav.scp")
    for split in ("valid", "test"):
        for scp in (data / "tasks").glob(f"*/{split}/wav.scp"):
            held_out.update(_table(scp))
    train_lists = [exp / "base" / "lists" / "train" / "wav.scp"]
    train_lists += list(exp.glob("tseed*/*/*/lists/train/wav.scp")) + list(exp.glob("tseed*/*/*/replay/wav.scp"))
    assert len(train_lists) > 5
    held_ids, held_paths = set(held_out), {v.strip() for v in held_out.values()}
    for scp in train_lists:
        table = _table(scp)
        ids = {k.split("__rep")[0] for k in table}
        assert not ids & held_ids, (scp, sorted(ids & held_ids)[:3])
        assert not {v.strip() for v in table.values()} & held_paths, scp
