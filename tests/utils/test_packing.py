"""Sharing a trained model: the self-contained packed.zip (ESPnet's pack code) and the Hugging
Face upload folder and card (espnet2_sonar.bin.hf_upload), all without network.

One tiny SONAR training (one epoch, the codebook growing at every step) is exported; its zip
must unpack elsewhere, with the experiment dir and every init checkpoint gone, into the same
model (every tensor equal, the same encoder output)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from sonar_fixtures import REPO, make_sonar_stage, sonar_train_args, state_differences, subprocess_env
from sonar_fixtures import OCC


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{'root', 'exp', 'stage'}: a trained and exported tiny SONAR stage."""
    from espnet2_sonar.bin.sonar_export import export

    root = tmp_path_factory.mktemp("packing")
    stage = make_sonar_stage(root)
    exp = root / "exp"
    cmd = [sys.executable, "-m", "espnet2_sonar.bin.sonar_train",
           *sonar_train_args(stage, exp, max_epoch=1, occ=OCC, extra=["--num_iters_per_epoch", "2"])]
    proc = subprocess.run(cmd, env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (exp / "stage_inputs.json").write_text('{"inputs": {"train_list": {"path": "lists/train/wav.scp", '
                                           '"sha256": "abc123"}}}')
    export(exp)
    return {"root": root, "exp": exp, "stage": stage}


def _encode(model) -> torch.Tensor:
    wav = torch.sin(torch.linspace(0, 2000, 16000)).unsqueeze(0) * 0.3
    with torch.no_grad():
        return model.encoder(wav, torch.tensor([16000]))[0]


@pytest.mark.timeout(300)
def test_packed_zip_is_self_contained_and_unpacks_into_the_same_model_elsewhere(exported, tmp_path):
    import espnet2
    from espnet2.main_funcs.pack_funcs import unpack

    from espnet2_sonar.tasks.sonar import SonarTask

    exp, stage = exported["exp"], exported["stage"]
    original, _ = SonarTask.build_model_from_file(exp / "config.yaml", exp / "model.pth", device="cpu")
    original.eval()
    expected = _encode(original)
    with zipfile.ZipFile(exp / "packed.zip") as z:
        names = set(z.namelist())
        meta = yaml.safe_load(z.read("meta.yaml"))
        config = yaml.safe_load(z.read("exp/config.yaml"))
    # ESPnet's pack: versions and a timestamp in meta.yaml
    assert meta["espnet"] == espnet2.__version__ and meta["torch"] == str(torch.__version__)
    assert meta["python"] == sys.version and meta["timestamp"] > 0
    assert meta["files"] == {"model_file": "exp/model.pth"} and meta["yaml_files"] == {"train_config": "exp/config.yaml"}
    init_encoder, init_tokenizer = "exp/init/encoder_conf/init/encoder.pt", "exp/init/tokenizer_conf/init/tokenizer.pt"
    assert {init_encoder, init_tokenizer, "exp/stage_inputs.json"} <= names
    assert config["encoder_conf"]["init"] == init_encoder and config["tokenizer_conf"]["init"] == init_tokenizer

    # elsewhere, with the experiment and every init checkpoint gone
    moved = tmp_path / "shared" / "packed.zip"
    moved.parent.mkdir()
    shutil.copyfile(exp / "packed.zip", moved)
    gone = tmp_path / "gone"
    shutil.move(str(stage.encoder.parent), str(gone))  # m0/: the init encoder and tokenizer
    try:
        with pytest.raises(FileNotFoundError):  # the experiment's own config needs them (control)
            SonarTask.build_model_from_file(exp / "config.yaml", exp / "model.pth", device="cpu")
        files = unpack(moved, tmp_path / "unpacked")
        assert Path(files["train_config"]).is_relative_to(tmp_path / "unpacked")
        unpacked = yaml.safe_load(Path(files["train_config"]).read_text())
        assert Path(unpacked["encoder_conf"]["init"]).is_file()
        model, _ = SonarTask.build_model_from_file(files["train_config"], files["model_file"], device="cpu")
    finally:
        shutil.move(str(gone), str(stage.encoder.parent))
    model.eval()
    assert state_differences(original.state_dict(), model.state_dict()) == []
    grown = model.state_dict()["targets.tokenizer.quantize.embedding.weight"].shape[0]
    assert grown > 128  # the grown codebook came along
    torch.testing.assert_close(_encode(model), expected, rtol=0, atol=0)


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.timeout(120)
def test_hf_dry_run_writes_the_folder_and_the_card(exported, tmp_path, capsys):
    from espnet2_sonar.bin.hf_upload import main

    results = tmp_path / "RESULTS.md"
    results.write_text("| method | gain |\n|---|---|\n| sonar | +1.5 |\n")
    out = tmp_path / "upload"
    assert main(["--exp_dir", str(exported["exp"]), "--repo", "me/sonar-tiny", "--out_dir", str(out),
                 "--results", str(results), "--dry_run"]) == 0
    listed = [line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("would upload")]
    assert sorted(Path(p).name for p in listed) == sorted(
        ["README.md", "RESULTS.md", "config.yaml", "encoder.pt", "packed.zip", "tokenizer.pt"])
    card = (out / "README.md").read_text()
    front = _front_matter(card)
    assert front["license"] == "apache-2.0" and front["library_name"] == "espnet"
    assert {"audio", "beats", "sonar"} <= set(front["tags"])
    assert "SONAR continual pre-training" in card
    assert "| sonar | +1.5 |" in card  # the results file, verbatim
    import hashlib

    assert hashlib.sha256((out / "packed.zip").read_bytes()).hexdigest() in card
    assert f"| torch | {torch.__version__} |" in card and "snapshot_download(\"me/sonar-tiny\")" in card
    assert "abc123" in card  # the recorded training inputs
    assert yaml.safe_load((out / "config.yaml").read_text())["encoder_conf"]["init"].startswith("exp/init/")
    # a second run rewrites its own folder; a foreign non-empty folder is refused
    assert main(["--exp_dir", str(exported["exp"]), "--repo", "me/sonar-tiny", "--out_dir", str(out), "--dry_run"]) == 0
    assert not (out / "RESULTS.md").exists() and "No results file" in (out / "README.md").read_text()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["--exp_dir", str(exported["exp"]), "--repo", "me/x", "--out_dir", str(foreign), "--dry_run"]) == 1
    assert (foreign / "keep.txt").exists() and "not made by hf_upload" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_hf_upload_creates_the_repo_and_uploads_the_folder(exported, tmp_path, monkeypatch):
    import huggingface_hub

    from espnet2_sonar.bin.hf_upload import main

    calls = []

    class RecordingApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, folder_path, repo_id, **kw):
            files = sorted(p.name for p in Path(folder_path).iterdir())
            calls.append(("upload_folder", repo_id, dict(kw, folder_path=folder_path, files=files)))
            return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    out = tmp_path / "upload"
    assert main(["--exp_dir", str(exported["exp"]), "--repo", "me/sonar-tiny", "--out_dir", str(out),
                 "--private"]) == 0
    (c_name, c_repo, c_kw), (u_name, u_repo, u_kw) = calls
    assert (c_name, c_repo, c_kw["repo_type"], c_kw["private"], c_kw["exist_ok"]) == \
        ("create_repo", "me/sonar-tiny", "model", True, True)
    assert (u_name, u_repo, u_kw["folder_path"]) == ("upload_folder", "me/sonar-tiny", str(out))
    assert {"README.md", "packed.zip", "encoder.pt", "tokenizer.pt", "config.yaml"} <= set(u_kw["files"])
    assert ".hf_upload" in u_kw["ignore_patterns"]


@pytest.mark.timeout(120)
def test_hf_upload_offline_fails_with_a_clear_message(exported, tmp_path):
    out = tmp_path / "upload"
    env = subprocess_env(HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="hf_not_a_token", HF_HUB_DISABLE_TELEMETRY="1")
    proc = subprocess.run([sys.executable, "-m", "espnet2_sonar.bin.hf_upload", "--exp_dir", str(exported["exp"]),
                           "--repo", "me/sonar-tiny", "--out_dir", str(out)],
                          env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 1
    assert "uploading" in proc.stderr and "me/sonar-tiny failed" in proc.stderr
    assert "The folder is complete" in proc.stderr and (out / "README.md").is_file()
    missing = subprocess.run([sys.executable, "-m", "espnet2_sonar.bin.hf_upload", "--exp_dir", str(tmp_path),
                              "--repo", "me/x", "--dry_run"], env=env, capture_output=True, text=True, timeout=100)
    assert missing.returncode == 1 and "packed.zip: missing; export the model first" in missing.stderr


@pytest.mark.timeout(120)
def test_recipe_stage_10_uploads_through_hf_upload(exported, tmp_path):
    """sonar.sh --stage 10 (never in the default run) with --hf_args --dry_run."""
    import os

    recipe = REPO / "egs2" / "debian_sounds" / "sonar1"
    env = dict(subprocess_env(), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    base = ["./run.sh", "--exp_dir", str(tmp_path / "exp"), "--data_dir", str(tmp_path / "data"),
            "--stage", "10", "--stop_stage", "10"]
    proc = subprocess.run(base + ["--hf_repo", "me/sonar-tiny", "--hf_dir", str(exported["exp"]),
                                  "--hf_args", "--dry_run --out_dir " + str(tmp_path / "up")],
                          cwd=recipe, env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "would upload" in proc.stdout and (tmp_path / "up" / "README.md").is_file()
    assert "me/sonar-tiny" in (tmp_path / "up" / "README.md").read_text()
    no_repo = subprocess.run(base, cwd=recipe, env=env, capture_output=True, text=True, timeout=100)
    assert no_repo.returncode != 0 and "Stage 10 needs --hf_repo owner/name" in no_repo.stderr
    helped = subprocess.run(["./run.sh", "--help"], cwd=recipe, env=env, capture_output=True, text=True, timeout=60)
    assert "--stop_stage 7 " in helped.stdout  # the default run never uploads


def test_packable_files_names_every_conf_file_and_refuses_missing_checkpoints(tmp_path, monkeypatch):
    from espnet2_sonar.utils.packing import packable_files

    monkeypatch.chdir(tmp_path)  # relative names are read from where the training ran
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "encoder.pt").write_bytes(b"x")
    config = {"encoder_conf": {"init": "base/encoder.pt", "arch": "tiny"}, "model_conf": {"teacher_input": "visible"},
              "init_param": ["base/model.pth:predictor:predictor"], "train_shape_file": ["lists/train/speech_shape"]}
    packed, files = packable_files(config, Path("config.yaml"))
    assert files == {"exp/init/encoder_conf/init/encoder.pt": Path("base/encoder.pt")}
    assert packed["encoder_conf"] == {"init": "exp/init/encoder_conf/init/encoder.pt", "arch": "tiny"}
    assert packed["model_conf"] == config["model_conf"] and packed["init_param"] == []
    assert packed["train_shape_file"] == config["train_shape_file"]  # training-only: left as ESPnet writes it
    with pytest.raises(FileNotFoundError, match=r"config.yaml: tokenizer_conf.init=gone/tokenizer.pt names no file"):
        packable_files({"tokenizer_conf": {"init": "gone/tokenizer.pt"}}, Path("config.yaml"))
