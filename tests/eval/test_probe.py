"""Frozen-probe CLI, pooled-embedding cache, probe training and metrics."""

import json
import os
from pathlib import Path

import pytest
import torch

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.beats.interop import save_official

from sonar_fixtures import TONE_CLASSES as CLASSES
from sonar_fixtures import write_labelled_tones as _write_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_encoder_ckpt):
    root = tmp_path_factory.mktemp("probe")
    return {
        "root": root,
        "ckpt": tiny_encoder_ckpt,
        "train": _write_dir(root, "train", 10, seed=1),
        "train_shuffled": _write_dir(root, "train_shuffled", 10, seed=1, shuffle_labels=True),
        "test": _write_dir(root, "test", 10, seed=2),
        "cache": root / "cache",
    }


def _cli(setup, out: Path, *extra: str) -> dict:
    from espnet2_sonar.bin.probe import main

    argv = ["--ckpt", str(setup["ckpt"]), "--test_dir", str(setup["test"]), "--out", str(out)]
    argv += ["--cache_dir", str(setup["cache"]), "--max_epochs", "100", "--patience", "15"]
    main(argv + list(extra))
    return json.loads(out.read_text())


@pytest.mark.timeout(300)
def test_probe_cli_separates_tones_from_noise(setup, tmp_path):
    result = _cli(setup, tmp_path / "r.json", "--train_dir", str(setup["train"]), "--seed", "0")
    assert result["accuracy"] >= 0.9 and result["macro_f1"] >= 0.9
    assert result["n_train"] + result["n_valid"] == 30 and result["n_test"] == 30
    assert result["n_valid"] == 3  # 10% of each class
    weights = result["layer_weights"]
    assert len(weights) == BeatsConfig.named("tiny").encoder_layers + 1 == result["num_layers"]
    assert abs(sum(weights) - 1.0) < 1e-5 and min(weights) > 0
    assert result["classes"] == sorted(CLASSES)
    assert all(result["per_class"][c]["n_test"] == 10 for c in CLASSES)
    assert sum(result["per_class"][c]["n_train"] for c in CLASSES) == result["n_train"]
    for key in ("seed", "ckpt", "epochs", "best_epoch", "best_valid_accuracy", "confusion"):
        assert key in result
    assert 1 <= result["best_epoch"] <= result["epochs"] <= 100


@pytest.mark.timeout(300)
def test_probe_with_shuffled_labels_is_near_chance(setup, tmp_path):
    result = _cli(setup, tmp_path / "r.json", "--train_dir", str(setup["train_shuffled"]), "--seed", "0")
    assert result["accuracy"] <= 0.6  # chance is 1/3 (30 test items)


@pytest.mark.timeout(300)
def test_cached_embeddings_equal_fresh_and_seeds_reuse_them(setup, tmp_path):
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.data.labelled_dir import read_labelled_dir
    from espnet2_sonar.eval.embeddings import extract_pooled, load_or_extract

    files = [Path(setup["ckpt"])]
    data = read_labelled_dir(setup["test"])
    encoder = load_encoder(setup["ckpt"])
    cache = tmp_path / "cache"
    first = load_or_extract(lambda: encoder, files, data, cache)
    assert not first.from_cache and first.cache_path.is_file()

    def no_encoder():
        raise AssertionError("a cache hit must not load the encoder")

    second = load_or_extract(no_encoder, files, data, cache)
    assert second.from_cache
    fresh = extract_pooled(encoder, data.wav_paths, batch_size=1)  # one at a time: no padding at all
    assert first.embeddings.shape == (30, 3, 160)
    assert torch.equal(second.embeddings, first.embeddings)
    torch.testing.assert_close(first.embeddings, fresh, atol=1e-5, rtol=1e-5)
    # touching an audio file invalidates the cache entry
    st = Path(data.wav_paths[0]).stat()
    os.utime(data.wav_paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not load_or_extract(lambda: encoder, files, data, cache).from_cache


@pytest.mark.timeout(300)
def test_probe_is_deterministic_by_seed(setup, tmp_path):
    train = ["--train_dir", str(setup["train"])]
    a = _cli(setup, tmp_path / "a.json", *train, "--seed", "3")
    b = _cli(setup, tmp_path / "b.json", *train, "--seed", "3")
    assert all(v["from_cache"] for v in b["embedding_cache"].values())
    for key in ("accuracy", "layer_weights", "epochs", "best_valid_accuracy", "confusion"):
        assert a[key] == b[key]


@pytest.mark.timeout(300)
def test_long_inputs_are_chunked(setup):
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.data.labelled_dir import read_labelled_dir
    from espnet2_sonar.eval.embeddings import _chunks, extract_pooled

    for n, c in [(10, 3), (16000, 5000), (16001, 16000), (5, 10)]:
        pieces = _chunks(n, c)
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
        sizes = [e - s for s, e in pieces]
        assert max(sizes) <= c and max(sizes) - min(sizes) <= 1
    encoder = load_encoder(setup["ckpt"])
    paths = read_labelled_dir(setup["test"]).wav_paths[:4]
    whole = extract_pooled(encoder, paths, chunk_seconds=None)
    assert torch.equal(extract_pooled(encoder, paths, chunk_seconds=10.0), whole)
    cut = extract_pooled(encoder, paths, chunk_seconds=0.2)
    assert cut.shape == whole.shape and torch.isfinite(cut).all()
    # layer 0 (patch embeddings, no context) pooled over chunks equals the whole-file mean
    # up to the patches lost at chunk edges: close, not equal
    assert (cut[:, 0] - whole[:, 0]).abs().max() < (whole[:, 0].abs().max())


@pytest.mark.timeout(120)
def test_bad_inputs_raise_clear_errors(setup, tmp_path):
    from espnet2_sonar.data.labelled_dir import read_labelled_dir
    from espnet2_sonar.eval.probe import run_probe

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "wav.scp").write_text((setup["test"] / "wav.scp").read_text())
    with pytest.raises(FileNotFoundError, match="utt2label"):
        read_labelled_dir(bad)
    lines = (setup["test"] / "utt2label").read_text().splitlines()
    (bad / "utt2label").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="no entry in utt2label"):
        read_labelled_dir(bad)
    (bad / "utt2label").write_text("\n".join(lines[:-1] + [lines[-1].split()[0] + " whale"]) + "\n")
    with pytest.raises(ValueError, match="whale"):
        run_probe(str(setup["ckpt"]), str(setup["train"]), str(bad), cache_dir=None)
    (bad / "wav.scp").write_text("u1 /nonexistent/u1.wav\n")
    (bad / "utt2label").write_text("u1 low\n")
    with pytest.raises(FileNotFoundError, match="/nonexistent/u1.wav"):
        read_labelled_dir(bad)


@pytest.mark.timeout(60)
def test_fit_probe_learns_and_split_is_stratified():
    from espnet2_sonar.eval.probe import ProbeConfig, fit_probe, stratified_split

    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(40)
    x = torch.randn(120, 4, 8, generator=gen)
    x[:, 2, :3] += 3.0 * torch.nn.functional.one_hot(y, 3)  # only layer 2 carries the label
    tr, va = stratified_split(y, 0.1, seed=5)
    assert torch.equal(tr, stratified_split(y, 0.1, seed=5)[0])
    assert not torch.equal(va, stratified_split(y, 0.1, seed=6)[1])
    assert torch.bincount(y[va]).tolist() == [4, 4, 4] and len(set(tr.tolist()) & set(va.tolist())) == 0
    fit = fit_probe(x[tr], y[tr], x[va], y[va], 3, ProbeConfig(lr=1e-2, max_epochs=60), seed=0)
    assert fit.best_valid_accuracy == 1.0
    assert int(fit.model.layer_weights().argmax()) == 2
    with pytest.raises(ValueError, match=r"unknown ProbeConfig key.*epochs"):
        ProbeConfig.from_dict({"lr": 1e-3, "epochs": 3})


@pytest.mark.timeout(30)
def test_metrics():
    from espnet2_sonar.eval.metrics import classification_metrics, relative_forgetting

    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], ["a", "b", "c"])
    assert m.accuracy == pytest.approx(3 / 5)
    # F1: a = 2/3, b = 2*(2/4*1)/(2/4+1) = 2/3, c = 0
    assert m.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert m.per_class["b"].n == 2 and m.per_class["b"].n_predicted == 4
    assert m.confusion == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert relative_forgetting(0.8, 0.212) == pytest.approx(0.735)
    with pytest.raises(ValueError):
        classification_metrics([0, 3], [0, 0], ["a", "b"])


@pytest.mark.timeout(60)
def test_load_encoder_reads_a_sonar_experiment_dir(tmp_path):
    """SonarTask writes encoder_conf {arch, init, config}; the probe's loader must read it."""
    import torch
    import yaml

    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder

    torch.manual_seed(0)
    enc = SonarBeatsEncoder("tiny", config={"dropout": 0.0}).eval()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"encoder": "beats", "encoder_conf": {"arch": "tiny", "init": None, "config": {"dropout": 0.0}}}))
    torch.save({f"encoder.{k}": v for k, v in enc.state_dict().items()}, tmp_path / "latest.pth")
    loaded = load_encoder(tmp_path)
    wavs, lengths = torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6000])
    with torch.no_grad():
        for a, b in zip(enc.extract_layers(wavs, lengths), loaded.extract_layers(wavs, lengths)):
            assert torch.allclose(a, b, atol=1e-6)


def test_load_encoder_dispatches_on_kind_and_names_unknown_kinds(tmp_path):
    """Self-describing checkpoints go to their family's loader; an unknown kind is a clear error."""
    from espnet2_sonar.efficientnet.interop import efficientnet_checkpoint
    from espnet2_sonar.efficientnet.model import EfficientNetEncoder
    from espnet2_sonar.eval.checkpoints import KIND_LOADERS, kind_loader, load_encoder

    for kind in KIND_LOADERS:  # every registered loader imports and is callable
        assert callable(kind_loader(kind, "x"))
    torch.manual_seed(0)
    cnn = EfficientNetEncoder("tiny").eval()
    torch.save(efficientnet_checkpoint(cnn), tmp_path / "cnn.pt")
    loaded = load_encoder(tmp_path / "cnn.pt")
    assert type(loaded) is EfficientNetEncoder and not loaded.training
    wavs, lengths = torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6000])
    with torch.no_grad():
        for a, b in zip(cnn.extract_layers(wavs, lengths), loaded.extract_layers(wavs, lengths)):
            assert torch.equal(a, b)
    torch.save({"kind": "mystery", "model": {}}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"odd\.pt: unknown checkpoint kind 'mystery'"):
        load_encoder(tmp_path / "odd.pt")


@pytest.mark.timeout(300)
def test_probe_matrix_caps_per_class_and_reprobes_when_the_cap_changes(setup, tmp_path):
    """Results are reused only when they were probed on the same clips (same per-class cap)."""
    from espnet2_sonar.bin import probe_matrix

    tasks = tmp_path / "tasks"
    (tasks / "tones").mkdir(parents=True)
    (tasks / "tones" / "train").symlink_to(setup["train"])
    (tasks / "tones" / "test").symlink_to(setup["test"])
    out = tmp_path / "eval"

    def run(cap):
        probe_matrix.main(["--ckpts", f"m={setup['ckpt']}", "--task_dir", str(tasks), "--tasks", "tones",
                           "--seeds", "0", "--out_dir", str(out), "--max_per_class", str(cap),
                           "--cache_dir", str(setup["cache"])])
        res = out / "m" / "tones" / "seed0.json"
        return json.loads(res.read_text()), res.stat().st_mtime_ns

    r4, t4 = run(4)
    assert r4["n_test"] == 4 * len(CLASSES) and r4["max_per_class"] == 4
    assert run(4)[1] == t4  # same cap: reused, not probed again
    r6, _ = run(6)
    assert r6["n_test"] == 6 * len(CLASSES) and r6["max_per_class"] == 6
    sub4 = (out / "subsets" / "max4" / "tones" / "test" / "utt2label").read_text().splitlines()
    sub6 = (out / "subsets" / "max6" / "tones" / "test" / "utt2label").read_text().splitlines()
    assert len(sub4) == 12 and set(sub4) <= set(sub6)  # hash ranking: a larger cap keeps the smaller subset


@pytest.mark.timeout(300)
def test_probe_matrix_reprobes_when_the_checkpoint_content_changes(setup, tmp_path):
    """Results are keyed on the checkpoint's content: a checkpoint retrained in place (same
    path, other weights) is probed again, an unchanged one is not, and a result without a
    recorded ``ckpt_sha256`` (written before it was recorded) counts as stale."""
    import hashlib
    import shutil

    from espnet2_sonar.bin import probe_matrix

    tasks = tmp_path / "tasks"
    (tasks / "tones").mkdir(parents=True)
    (tasks / "tones" / "train").symlink_to(setup["train"])
    (tasks / "tones" / "test").symlink_to(setup["test"])
    out, ckpt = tmp_path / "eval", tmp_path / "m" / "encoder.pt"
    ckpt.parent.mkdir()
    shutil.copy(setup["ckpt"], ckpt)
    res = out / "m" / "tones" / "seed0.json"

    def run():
        probe_matrix.main(["--ckpts", f"m={ckpt}", "--task_dir", str(tasks), "--tasks", "tones", "--seeds", "0",
                           "--out_dir", str(out), "--max_per_class", "4", "--cache_dir", str(tmp_path / "cache")])
        return json.loads(res.read_text()), res.stat().st_mtime_ns

    r1, t1 = run()
    assert r1["ckpt_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert run()[1] == t1  # unchanged checkpoint: reused
    with torch.random.fork_rng():  # the stage is retrained: other weights under the same path
        torch.manual_seed(1)
        save_official(BeatsEncoder(BeatsConfig.named("tiny")).eval(), ckpt)
    r2, t2 = run()
    assert t2 != t1 and r2["ckpt_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest() != r1["ckpt_sha256"]
    assert not r2["embedding_cache"]["train"]["from_cache"]  # embeddings of the new weights, not the old
    assert run()[1] == t2
    res.write_text(json.dumps({k: v for k, v in r2.items() if k != "ckpt_sha256"}))  # a result from before
    r3, _ = run()
    assert r3["ckpt_sha256"] == r2["ckpt_sha256"] and r3["embedding_cache"]["train"]["from_cache"]
