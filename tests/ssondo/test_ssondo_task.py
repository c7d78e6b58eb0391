"""SsondoTask end to end on generated audio: BDS iterator, training, export, probe, s3prl, checks."""

import argparse
import json
import subprocess

import numpy as np
import pytest
import torch

from ssondo_fixtures import PYTHON, REPO, make_corpus, make_teacher

STUDENT = ["--student", "transformer", "--student_conf", "{dim: 32, num_layers: 1, num_heads: 2, ffn_dim: 64, frames_per_token: 8}"]
CROP = "1.0"


def _run(args, cwd):
    out = subprocess.run([PYTHON, "-m", *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _train_cmd(root, out_dir, bds=True, epochs=1):
    cmd = [
        "--ngpu", "0", "--output_dir", str(out_dir), "--seed", "0", *STUDENT,
        "--model_conf", "head_hidden=32", "--crop_seconds", CROP, "--crop_seed", "0",
        "--batch_type", "unsorted", "--batch_size", "4", "--max_epoch", str(epochs), "--num_att_plot", "0",
        "--optim", "adam", "--optim_conf", "lr=0.001", "--num_workers", "0",
        "--train_data_path_and_name_and_type", f"{root}/lists/train/wav.scp,speech,sonar_sound_resample_mix",
        "--train_data_path_and_name_and_type", f"{root}/teacher/train,teacher_emb,ssondo_embeddings",
        "--valid_data_path_and_name_and_type", f"{root}/lists/valid/wav.scp,speech,sonar_sound_resample_mix",
        "--valid_data_path_and_name_and_type", f"{root}/teacher/valid,teacher_emb,ssondo_embeddings",
        "--train_shape_file", f"{root}/lists/train/speech_shape", "--valid_shape_file", f"{root}/lists/valid/speech_shape",
    ]
    return cmd + (["--bds_clusters", f"{root}/teacher/train/utt2cluster"] if bds else [])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssondo_task")
    make_corpus(root / "data", pool_items=24, tasks=["foley"], pools=["prior"], per_class={"train": 4, "valid": 2, "test": 3})
    make_teacher(root / "teacher.pt", "tiny")
    _run(["espnet2_sonar.bin.make_train_lists", "--pool_dir", f"{root}/data/pools/prior", "--out_dir", f"{root}/lists", "--valid_share", "0.2"], REPO)
    for split, extra in (("train", ["--bds_k", "3"]), ("valid", [])):
        _run(["espnet2_sonar.bin.ssondo_extract", "--teacher", f"{root}/teacher.pt", "--wav_scp", f"{root}/lists/{split}/wav.scp",
              "--out_dir", f"{root}/teacher/{split}", "--crop_seconds", CROP, *extra], REPO)
    _run(["espnet2_sonar.bin.ssondo_train", *_train_cmd(root, root / "exp")], REPO)
    _run(["espnet2_sonar.bin.ssondo_export", "--exp_dir", f"{root}/exp"], REPO)
    return root


def _args(root, bds=True):
    from espnet2_sonar.tasks.ssondo import SsondoTask

    args = SsondoTask.get_parser().parse_args(_train_cmd(root, root / "unused", bds))
    args.distributed = False
    return args


@pytest.mark.timeout(600)
def test_bds_iterator_draws_balanced_batches_of_clustered_items(trained):
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_sonar.ssondo.bds import read_utt2cluster
    from espnet2_sonar.tasks.ssondo import SsondoTask

    args = _args(trained)
    factory = SsondoTask.build_iter_factory(args, DistributedOption(distributed=False), mode="train")
    ids, assign = read_utt2cluster(trained / "teacher" / "train" / "utt2cluster")
    cluster_of = dict(zip(ids, assign))
    keys, batches = [], 0
    for epoch in range(1, 4):
        for utts, batch in factory.build_iter(epoch):
            keys += list(utts)
            batches += 1
            assert batch["speech"].shape[0] == 4 and batch["teacher_emb"].shape == (4, 160)
            assert batch["speech"].shape[1] <= int(float(CROP) * 16000)  # cropped as the teacher saw it
    assert batches == 3 * (len(ids) // 4)
    freq = np.bincount([cluster_of[k] for k in keys], minlength=assign.max() + 1) / len(keys)
    sizes = np.bincount(assign) / len(assign)
    # balanced draws are closer to uniform over clusters than the cluster sizes are
    uniform = np.full_like(freq, 1.0 / freq.size)
    assert np.abs(freq - uniform).max() < np.abs(sizes - uniform).max()
    # without --bds_clusters: ESPnet's ordinary iterator, every item once per epoch
    plain = SsondoTask.build_iter_factory(_args(trained, bds=False), DistributedOption(distributed=False), mode="train")
    seen = [u for utts, _ in plain.build_iter(1) for u in utts]
    assert sorted(seen) == sorted(ids)


@pytest.mark.timeout(600)
def test_training_records_teacher_dim_and_export_matches_the_trained_model(trained):
    import yaml

    from espnet2_sonar.students.file import load_student
    from espnet2_sonar.tasks.ssondo import SsondoTask

    conf = yaml.safe_load((trained / "exp" / "config.yaml").read_text())
    assert conf["model_conf"]["teacher_dim"] == 160 and conf["bds_clusters"].endswith("utt2cluster")
    model, _ = SsondoTask.build_model_from_file(trained / "exp" / "config.yaml", trained / "exp" / "valid.loss.best.pth")
    model.eval()
    student = load_student(trained / "exp" / "student.pt")
    g = torch.Generator().manual_seed(0)
    wavs, lengths = 0.1 * torch.randn(2, 12000, generator=g), torch.tensor([12000, 7000])
    with torch.no_grad():
        torch.testing.assert_close(student.embed(wavs, lengths), model.student.embed(wavs, lengths))
        mapped = load_student(trained / "exp" / "student.pt", features="mapped")
        torch.testing.assert_close(mapped.extract_layers(wavs, lengths)[0][:, 0], model.map(wavs, lengths))
    ckpt = torch.load(trained / "exp" / "student.pt", weights_only=True)
    assert ckpt["meta"]["teacher_params"] > 0 and ckpt["meta"]["bds"] is True


@pytest.mark.timeout(600)
def test_probe_and_s3prl_expert_load_the_student(trained, tmp_path):
    from espnet2_sonar.bin import probe
    from espnet2_sonar.s3prl_upstream.expert import UpstreamExpert

    task = trained / "data" / "tasks" / "foley"
    result = probe.main([
        "--ckpt", str(trained / "exp" / "student.pt"), "--train_dir", str(task / "train"), "--valid_dir", str(task / "valid"),
        "--test_dir", str(task / "test"), "--out", str(tmp_path / "r.json"), "--no_cache", "--max_epochs", "5",
    ])
    assert result["dim"] == 32 and result["num_layers"] == 2
    # the scores count the test dir's own items: confusion rows are its class counts, and the
    # accuracy is the confusion's diagonal share
    from collections import Counter

    truth = Counter(line.split()[1] for line in (task / "test" / "utt2label").read_text().splitlines())
    confusion = np.array(result["confusion"])
    assert dict(zip(result["classes"], confusion.sum(axis=1).tolist())) == dict(truth)
    assert result["n_test"] == sum(truth.values())
    assert result["accuracy"] == pytest.approx(np.trace(confusion) / result["n_test"])
    assert json.loads((tmp_path / "r.json").read_text())["ckpt"].endswith("student.pt")
    expert = UpstreamExpert(str(trained / "exp" / "student.pt"))
    wavs = [0.1 * torch.randn(16000), 0.1 * torch.randn(9000)]
    hidden = expert(wavs)["hidden_states"]
    assert len(hidden) == 2 and hidden[0].shape == (2, int(np.ceil(16000 / expert.get_downsample_rates("x"))), 32)


def test_crop_mismatch_with_the_teacher_cache_is_an_error(trained):
    from espnet2_sonar.tasks.ssondo import SsondoTask

    args = _args(trained)
    SsondoTask.build_preprocess_fn(args, train=True)  # matches: fine
    args = argparse.Namespace(**{**vars(args), "crop_seconds": 2.0})
    with pytest.raises(ValueError, match="crop_seconds=1.0"):
        SsondoTask.build_preprocess_fn(args, train=True)


def test_corrupted_student_checkpoint_is_refused(trained, tmp_path):
    from espnet2_sonar.students.file import StudentCheckpointError, load_student

    ckpt = torch.load(trained / "exp" / "student.pt", weights_only=True)
    ckpt["model"].pop(next(iter(ckpt["model"])))
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(StudentCheckpointError, match="bad.pt.*missing"):
        load_student(tmp_path / "bad.pt")
