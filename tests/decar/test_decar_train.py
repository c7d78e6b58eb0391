"""End to end: DecarTask training through ESPnet's Trainer, resume, and the recipe stage script."""

import json
import os

import pytest
import torch

from decar_fixtures import REPO, decar_train_cmd, run, write_sound_dir
from espnet2_sonar.bin.make_train_lists import main as make_lists


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("decar_data")
    pool = write_sound_dir(root / "pool", "u", 30, seed=0)
    make_lists(["--pool_dir", str(pool), "--out_dir", str(root / "lists"), "--valid_share", "0.1"])
    return root / "lists"


@pytest.mark.timeout(600)
def test_training_resumed_at_an_epoch_boundary_equals_uninterrupted(lists, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run(decar_train_cmd(lists, a, 2))
    run(decar_train_cmd(lists, b, 1))  # "interrupted" after epoch 1
    assert not (b / "decar" / "epoch002").exists()
    run(decar_train_cmd(lists, b, 2))  # resumed
    for name in ("train.labels", "valid.labels"):
        assert (a / "decar" / "epoch002" / name).read_text() == (b / "decar" / "epoch002" / name).read_text()
    sa, sb = torch.load(a / "2epoch.pth", weights_only=True), torch.load(b / "2epoch.pth", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    summary = json.loads((a / "decar" / "epoch002" / "summary.json").read_text())
    assert summary["num_clusters"] == 5 and summary["min_size"] >= 1 and summary["nmi_previous"] is not None
    # the exported encoder is what the probes load
    from espnet2_sonar.eval.checkpoints import load_encoder

    enc = load_encoder(a / "encoder.pt")
    ea, eb = torch.load(a / "encoder.pt", weights_only=True), torch.load(b / "encoder.pt", weights_only=True)
    assert ea["kind"] == "decar_efficientnet" and all(torch.equal(ea["model"][k], eb["model"][k]) for k in ea["model"])
    assert enc.output_size() == 320


@pytest.mark.timeout(600)
def test_stage_script_pretrains_then_continues_on_a_domain(tmp_path):
    data, exp = tmp_path / "data", tmp_path / "exp"
    write_sound_dir(data / "pools" / "prior", "p", 24, seed=1)
    write_sound_dir(data / "pools" / "music", "m", 20, seed=2, classes=("tone", "am", "chirp"))
    recipe = REPO / "egs2" / "debian_sounds" / "sonar1"
    cmd = [str(REPO / "egs2" / "TEMPLATE" / "sonar1" / "stages" / "decar.sh"), "--exp_dir", str(exp),
           "--data_dir", str(data), "--domains", "music", "--config", "conf/tiny/decar_efficientnet.yaml",
           "--replay_rho", "0.5", "--train_args", "--max_epoch 1 --batch_size 8 --model_conf num_clusters=4 --model_conf draws_per_epoch=0"]  # fmt: skip
    run(cmd, cwd=recipe)
    base, music = exp / "decar" / "base" / "encoder.pt", exp / "decar" / "music" / "encoder.pt"
    assert base.is_file() and music.is_file()
    assert "Loading pretrained params from" in (exp / "decar" / "music" / "train" / "train.log").read_text()
    # replay: the continual stage's list holds prior-pool clips at 0.5 : 1, the base stage's none
    from espnet2_sonar.sampling.mixing import read_kaldi_map

    music_train = read_kaldi_map(exp / "decar" / "music" / "lists" / "train" / "wav.scp")
    replayed = [k for k in music_train if k.startswith("p")]
    new = [k for k in music_train if k.startswith("m")]
    assert len(replayed) == round(0.5 * len(new)) > 0 and len(replayed) + len(new) == len(music_train)
    assert set(replayed) <= set(read_kaldi_map(data / "pools" / "prior" / "wav.scp"))
    assert not any(k.startswith("m") for k in read_kaldi_map(exp / "decar" / "base" / "lists" / "train" / "wav.scp"))
    from espnet2_sonar.eval.checkpoints import load_encoder

    b, m = load_encoder(base), load_encoder(music)
    assert any(not torch.equal(p, q) for p, q in zip(b.state_dict().values(), m.state_dict().values()))
    # the EfficientNet's own floor: the same network untrained, BatchNorm statistics from the prior pool
    random = exp / "decar" / "random" / "encoder.pt"
    r = load_encoder(random).state_dict()
    assert "epoch results" not in (random.parent / "train" / "train.log").read_text()  # no training epoch
    assert any(not torch.equal(r[k], v) for k, v in b.state_dict().items() if "running" not in k)
    means = [v for k, v in r.items() if k.endswith("running_mean")]
    assert means and all(torch.isfinite(v).all() for v in means) and any(v.abs().sum() > 0 for v in means)
    # idempotent: a second call trains nothing
    stamps = {p: os.stat(p).st_mtime_ns for p in (base, music, random)}
    out = run(cmd, cwd=recipe)
    assert "skip DECAR base" in out.stderr and "skip DECAR music" in out.stderr and "skip DECAR random" in out.stderr
    assert all(os.stat(p).st_mtime_ns == t for p, t in stamps.items())
    # kept lists made with another replay ratio are an error, not silently reused
    music.unlink()
    bad = run([*cmd[:-4], "--replay_rho", "1", *cmd[-2:]], cwd=recipe, check=False)
    assert bad.returncode != 0 and "made with --replay_rho 0.5, not 1" in bad.stderr
    # lists without the record predate replay: they count as ratio 0
    (exp / "decar" / "music" / "lists" / "replay_rho").unlink()
    old = run(cmd, cwd=recipe, check=False)
    assert old.returncode != 0 and "made with --replay_rho 0, not 0.5" in old.stderr
