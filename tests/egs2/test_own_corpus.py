"""Your own corpus in the recipes: the scripts' options, sonar.sh's checks of
--prior_dir/--domain_dirs/--task_dirs, and the folder_audio recipe end to end on a tiny folder.
The format step and the folder builder themselves are tested in tests/data/."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from espnet2_sonar.data.kaldi_dir import read_kaldi_dir, validate_kaldi_dir

from audio_fixtures import audio_folder, own_dirs

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "sonar1"
FOLDER_RECIPE = REPO / "egs2" / "folder_audio" / "sonar1"
DEBIAN_RECIPE = REPO / "egs2" / "debian_sounds" / "sonar1"


# ---------------------------------------------------------------- the scripts

def test_scripts_parse_and_help_lists_the_options():
    for script in (TEMPLATE / "sonar.sh", FOLDER_RECIPE / "run.sh", FOLDER_RECIPE / "local" / "data.sh"):
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    for link in ("sonar.sh", "path.sh", "cmd.sh", "utils", "stages", "conf"):
        assert (FOLDER_RECIPE / link).is_symlink() and (FOLDER_RECIPE / link).exists(), link
    out = subprocess.run([str(FOLDER_RECIPE / "run.sh"), "--help"], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    for opt in ("--audio_root", "--prior_dir", "--domain_dirs", "--task_dirs", "--task_domain", "--format_args",
                "--local_data_opts"):
        assert opt in out.stdout, opt
    assert '--domains "speech env"' in out.stdout and "cries=prior,minetest_foley=env" in out.stdout


def _sonar(args, stop_stage="0", cwd=DEBIAN_RECIPE):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", stop_stage, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(180)
def test_sonar_sh_checks_and_formatsown_dirs(tmp_path):
    d = str(tmp_path)
    bad = _sonar(["--domain_dirs", f"birds={d}", "--domains", "music"])
    assert bad.returncode != 0 and "--domain_dirs gives 'birds'" in bad.stderr, bad.stderr[-2000:]
    bad = _sonar(["--prior_dir", d, "--domain_dirs", f"birds={d}", "--task_dirs", f"calls={d}",
                  "--domains", "birds music", "--task_domain", "calls=birds"])
    assert bad.returncode != 0 and "--domains lists 'music'" in bad.stderr, bad.stderr[-2000:]
    bad = _sonar(["--prior_dir", d, "--domain_dirs", f"birds={d}", "--task_dirs", f"calls={d}", "--domains", "birds"])
    assert bad.returncode != 0 and "--task_domain gives no domain for task 'calls'" in bad.stderr, bad.stderr[-2000:]
    # all three given: stage 1 formats them and does not run local/data.sh (the debian builder)
    mine = own_dirs(tmp_path)
    ok = _sonar(["--prior_dir", str(mine / "prior"), "--domain_dirs", f"birds={mine / 'birds'}",
                 "--task_dirs", f"calls={mine / 'calls'}", "--domains", "birds", "--task_domain", "calls=birds",
                 "--data_dir", str(tmp_path / "data"), "--exp_dir", str(tmp_path / "exp")], stop_stage="1")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "local/data.sh is not run" in ok.stderr and "data_prep" not in ok.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "audio_formatted", "format_summary.json", "pools", "tasks"]
    validate_kaldi_dir(tmp_path / "data" / "tasks" / "calls" / "test", labelled=True)
    assert len(read_kaldi_dir(tmp_path / "data" / "pools" / "birds")) == 2


# ---------------------------------------------------------------- the folder_audio recipe end to end

def _base_checkpoint(kind: str, tmp_path: Path, env: dict) -> str:
    """A tiny BEATs encoder as a user would bring it: an official fine-tuned file (classifier and
    label_dict) read from a pre-filled Hugging Face cache offline, or an ESPnet-format file that
    records no fbank statistics (as ESPnet writes it)."""
    import torch

    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.formats import save_espnet
    from espnet2_sonar.beats.interop import save_official
    from sonar_fixtures import fill_hub_cache

    torch.manual_seed(3)
    encoder = BeatsEncoder(BeatsConfig.named("tiny")).eval()
    if kind == "official_finetuned_hf":
        ft = save_official(encoder, tmp_path / "ft.pt", predictor=torch.nn.Linear(160, 527), label_dict={0: "Speech"})
        fill_hub_cache(tmp_path / "hf_cache", "someone/beats-tiny-ft", {"ft.pt": ft})
        env.update(HF_HUB_CACHE=str(tmp_path / "hf_cache"), HF_HUB_OFFLINE="1")
        return "hf://someone/beats-tiny-ft/ft.pt"
    esp = torch.load(save_espnet(encoder, tmp_path / "esp.pt"), weights_only=True)
    esp["cfg"] = {k: v for k, v in esp["cfg"].items() if not k.startswith("fbank")}
    torch.save(esp, tmp_path / "esp.pt")
    return str(tmp_path / "esp.pt")


# Base pre-training itself is covered by tests/egs2/test_recipe.py; here the base is a user's checkpoint
# in each foreign format, carried through every stage (1-7).
@pytest.mark.timeout(900)
@pytest.mark.parametrize("base_kind", ["official_finetuned_hf", "espnet"])
def test_folder_audio_recipe_end_to_end(tmp_path, base_kind):
    root = audio_folder(tmp_path / "tiny folder", per_label=5)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="2")
    base_ckpt = _base_checkpoint(base_kind, tmp_path, env)
    cmd = ["./run.sh", "--audio_root", str(root), "--data_dir", str(tmp_path / "data"),
           "--base_ckpt", base_ckpt, "--base_teacher", "",
           "--exp_dir", str(tmp_path / "exp"), "--task_domain", "calls=prior,engines=city",
           "--methods", "sonar dcp", "--train_seeds", "0", "--probe_seeds", "0", "--probe_max_per_class", "20",
           "--sample_args", "--max_seconds 4 --num_strata 4",
           "--train_args", "--max_epoch 1 --num_iters_per_epoch 2 --batch_size 4"]
    proc = subprocess.run(cmd, cwd=FOLDER_RECIPE, env=env, capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    results = json.loads((tmp_path / "exp" / "report" / "results.json").read_text())
    assert results["spec"]["domains"] == ["birds", "city"]
    assert results["spec"]["task_domain"] == {"calls": "prior", "engines": "city"}
    assert results["spec"]["old_tasks"] == ["calls"]
    assert (tmp_path / "exp" / "tseed0" / "sonar" / "city" / "encoder.pt").is_file()
    assert (tmp_path / "exp" / "RESULTS.md").is_file()
    from espnet2_sonar.beats.frontend import ESPNET_FBANK_MEAN, FBANK_MEAN
    from espnet2_sonar.beats.interop import load_official

    base = load_official(tmp_path / "exp" / "base" / "encoder.pt")  # canonical: strict official format
    assert base.config.fbank_mean == (ESPNET_FBANK_MEAN if base_kind == "espnet" else FBANK_MEAN)
    # the continual stages start from the user's weights and keep the base's statistics
    adapted = load_official(tmp_path / "exp" / "tseed0" / "sonar" / "city" / "encoder.pt")
    assert adapted.config.fbank_mean == base.config.fbank_mean
