"""``bin/adapt``: audio folders -> Kaldi dirs (formats, rates, stereo, nesting, odd names, bad
files), input errors, the no-prior and tokenizer-distillation branches, and one end-to-end
adaptation of a tiny BEATs model (export, report, held-out clips never trained on, a rerun
that trains nothing)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sonar_fixtures import make_official_checkpoints, write_wav_dir

MP3_OK = "MP3" in sf.available_formats()
TRAIN_ARGS = ("--max_epoch 1 --num_iters_per_epoch 2 --batch_size 4 --num_workers 0 "
              "--use_tensorboard false --use_matplotlib false")


def _sound(sr: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    """[T, C] chirp + harmonic + noise, a different pitch per seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = rng.uniform(150, min(2000, sr / 6))
    phase = 2 * np.pi * f0 * (t + rng.uniform(-0.3, 0.3) * t**2)
    x = 0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.03 * rng.standard_normal(t.shape)
    return np.stack([x * (1.0 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


def make_folder(root: Path, seed: int, extra: int = 0) -> dict:
    """Mixed formats, rates and channel counts, nested folders, names with spaces; returns
    {relative path: (seconds, channels)} of the audio written (plus a text file and a hidden file)."""
    files = {
        "clip one.wav": (8000, 1.5, 2, {"subtype": "PCM_16"}),
        "a dir/Deeper Down/Song.FLAC": (48000, 2.0, 1, {}),
        "a dir/x.ogg": (22050, 1.25, 1, {"format": "OGG", "subtype": "VORBIS"}),
        "a b.wav": (16000, 1.0, 1, {}),
        "a_b.wav": (16000, 1.0, 1, {}),  # sanitises like "a b.wav": the hash keeps the ids apart
        "long take.wav": (16000, 25.0, 2, {}),  # cut into 10 + 10 + 5 s
    }
    if MP3_OK:
        files["mp3s/tune.MP3"] = (44100, 1.5, 2, {"format": "MP3"})
    for i in range(extra):
        files[f"more/clip {i:02d}.flac"] = (32000, 1.0 + 0.25 * (i % 3), 1, {})
    out = {}
    for k, (rel, (sr, sec, ch, kw)) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _sound(sr, sec, ch, seed * 100 + k), sr, **kw)
        out[rel] = (sec, ch)
    (root / "notes.txt").write_text("not audio")
    (root / "a dir" / "._x.wav").write_bytes(b"\x00\x05\x16\x07 mac resource fork")  # hidden: never read
    return out


def _table(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())


# ---------------------------------------------------------------- scanning

@pytest.mark.timeout(120)
def test_scan_converts_every_format_to_16k_mono_with_stable_ids(tmp_path):
    from espnet2_sonar.adapt.scan import prepare_pool, recording_id
    from espnet2_sonar.data.audio import audio_info
    from espnet2_sonar.data.kaldi_dir import validate_kaldi_dir

    folder = tmp_path / "my audio"
    written = make_folder(folder, seed=1)
    scan = prepare_pool("new", folder, tmp_path / "out" / "data", nj=1, progress=False)
    utts = validate_kaldi_dir(scan.dir, labelled=False, check_audio=True)  # 16 kHz mono, durations match utt2dur
    assert scan.num_files == len(written) and scan.ignored == 2  # notes.txt and the hidden ._x.wav
    ids = {u.utt_id for u in utts}
    assert all(i.startswith("new-") and not any(c.isspace() for c in i) for i in ids)
    for u in utts:
        info = audio_info(u.path)
        assert (info.sample_rate, info.channels) == (16000, 1)
        assert Path(u.path).suffix == ".flac"
        assert Path(u.path).is_relative_to(tmp_path / "out" / "data" / "audio" / "new")
    by_rec = {}
    for u in utts:
        by_rec.setdefault(scan.rec_of[u.utt_id], []).append(u)
    assert len(by_rec) == len(written)
    for rel, (sec, ch) in written.items():
        rec = recording_id("new", rel)
        pieces = sorted(by_rec[rec], key=lambda u: u.utt_id)
        total = sum(u.duration for u in pieces)
        tol = 0.1 if rel.lower().endswith(".mp3") else 0.01  # mp3 frames: encoder padding
        assert abs(total - sec) < tol, (rel, total, sec)
        if rel == "long take.wav":
            assert [round(u.duration, 2) for u in pieces] == [10.0, 10.0, 5.0]
            assert [u.utt_id for u in pieces] == [f"{rec}-000", f"{rec}-001", f"{rec}-002"]
        else:
            assert [u.utt_id for u in pieces] == [rec]
    assert recording_id("new", "a b.wav") != recording_id("new", "a_b.wav")
    if MP3_OK:
        assert recording_id("new", "mp3s/tune.MP3") in by_rec
    # a rerun reuses every conversion and gives the same ids; a changed source is converted again
    scan2 = prepare_pool("new", folder, tmp_path / "out" / "data", nj=1, progress=False)
    assert scan2.reused == len(written) and {u.utt_id for u in scan2.utts} == ids
    sf.write(folder / "a b.wav", _sound(16000, 2.0, 1, 99), 16000)
    scan3 = prepare_pool("new", folder, tmp_path / "out" / "data", nj=1, progress=False)
    assert scan3.reused == len(written) - 1
    assert [u.duration for u in scan3.utts if u.utt_id == recording_id("new", "a b.wav")] == [2.0]
    assert not list((tmp_path / "out" / "data" / "audio" / "new").glob(".*.tmp"))


def test_mp3_support_is_known():
    if not MP3_OK:
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no MP3 support: mp3 files cannot be made "
                    "for the fixture (nor read by the tool)")
    assert "MP3" in sf.available_formats()


@pytest.mark.timeout(60)
def test_unreadable_files_raise_naming_them_unless_skipped(tmp_path):
    from espnet2_sonar.adapt.scan import NoAudioError, prepare_pool
    from espnet2_sonar.data.audio import AudioFileError

    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "good.wav", _sound(16000, 1.0, 1, 0), 16000)
    (folder / "broken file.wav").write_bytes(b"RIFF\x00\x00junk" * 20)
    (folder / "empty.flac").write_bytes(b"")
    with pytest.raises(AudioFileError) as err:
        prepare_pool("new", folder, tmp_path / "data", progress=False)
    msg = str(err.value)
    assert "broken file.wav" in msg and "empty.flac" in msg and "--skip_bad_audio" in msg
    assert not (tmp_path / "data" / "new").exists()  # nothing written for a failed scan
    scan = prepare_pool("new", folder, tmp_path / "data", skip_bad=True, progress=False)
    assert [u.utt_id.split("-")[1] for u in scan.utts] == ["good"]
    assert sorted(Path(p).name for p, _ in scan.bad) == ["broken file.wav", "empty.flac"]
    assert any("empty" in r for _, r in scan.bad)
    # no audio at all
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(NoAudioError, match="texts: no audio files found"):
        prepare_pool("new", tmp_path / "texts", tmp_path / "data", progress=False)


@pytest.mark.timeout(120)
def test_scan_in_a_process_pool_matches_the_serial_scan(tmp_path):
    from espnet2_sonar.adapt.scan import prepare_pool

    make_folder(tmp_path / "in", seed=7, extra=6)  # >= 8 files: the pool is used
    serial = prepare_pool("new", tmp_path / "in", tmp_path / "a", nj=1, progress=False)
    pooled = prepare_pool("new", tmp_path / "in", tmp_path / "b", nj=2, progress=False)
    rows = [[(u.utt_id, round(u.duration, 4)) for u in s.utts] for s in (serial, pooled)]
    assert rows[0] == rows[1]


# ---------------------------------------------------------------- base checkpoints

def test_config_set_follows_the_checkpoint_size():
    from espnet2_sonar.adapt.pipeline import detect_size
    from espnet2_sonar.beats.config import BeatsConfig

    for name in ("tiny", "small", "base"):
        assert detect_size(BeatsConfig.named(name).to_dict()) == (name, True)
    custom = BeatsConfig.named("small", encoder_layers=8).to_dict()
    assert detect_size(custom) == ("small", False)
    # an official release's cfg omits nothing we compare, but a missing key means the official default (base)
    assert detect_size({}) == ("base", True)


@pytest.mark.timeout(60)
def test_a_fine_tuned_checkpoint_is_adapted_without_its_classifier(tmp_path):
    import torch

    from espnet2_sonar.adapt.pipeline import AdaptOptions, Layout, prepare_base
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import load_official, save_official

    torch.manual_seed(0)
    encoder = BeatsEncoder("tiny").eval()
    ckpt = save_official(encoder, tmp_path / "ft.pt", predictor=torch.nn.Linear(160, 5), label_dict={0: "x"})
    lay = Layout(tmp_path / "out", "sonar")
    base = prepare_base(AdaptOptions(base_ckpt=ckpt, new_audio=tmp_path, out_dir=lay.out), lay)
    assert base.stripped_head and base.size == "tiny"
    copied = torch.load(lay.base_encoder, map_location="cpu", weights_only=True)
    assert copied["cfg"]["finetuned_model"] is False and not any(k.startswith("predictor.") for k in copied["model"])
    loaded = load_official(lay.base_encoder)  # strict: loads without any ignore globs
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), encoder.state_dict().values()))


# ---------------------------------------------------------------- input errors (CLI)

@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny BEATs encoder and tokenizer (official format) side by side, and a folder with
    the encoder alone."""
    root = tmp_path_factory.mktemp("base")
    kinit = write_wav_dir(root / "kinit", "k", 4, seed=1)
    ckpts = make_official_checkpoints(root / "m0", kinit)
    alone = root / "alone"
    alone.mkdir()
    (alone / "beats.pt").write_bytes(ckpts["encoder"].read_bytes())
    return {"encoder": ckpts["encoder"], "tokenizer": ckpts["tokenizer"], "alone": alone / "beats.pt"}


def _cli(argv):
    from espnet2_sonar.bin.adapt import main

    return main([str(a) for a in argv])


@pytest.mark.timeout(120)
def test_bad_inputs_give_errors_naming_the_file(tmp_path, tiny_base, capsys):
    import torch

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", _sound(16000, 1.0, 1, 0), 16000)
    out = tmp_path / "out"

    def err(*argv):
        capsys.readouterr()
        assert _cli([*argv]) == 2
        return capsys.readouterr().err

    assert "missing.pt: no such file" in err("--base_ckpt", tmp_path / "missing.pt", "--new_audio", audio,
                                             "--out_dir", out)
    (tmp_path / "text.pt").write_text("hello")
    assert "text.pt: not a readable PyTorch checkpoint" in err(
        "--base_ckpt", tmp_path / "text.pt", "--new_audio", audio, "--out_dir", out)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    assert "other.pt: not an official BEATs checkpoint" in err(
        "--base_ckpt", tmp_path / "other.pt", "--new_audio", audio, "--out_dir", out)
    assert "this is a BEATs tokenizer checkpoint" in err(
        "--base_ckpt", tiny_base["tokenizer"], "--new_audio", audio, "--out_dir", out)
    e = err("--base_ckpt", tiny_base["encoder"], "--new_audio", tmp_path / "nowhere", "--out_dir", out)
    assert "nowhere: no such folder" in e
    (tmp_path / "empty").mkdir()
    assert "empty: no audio files found" in err("--base_ckpt", tiny_base["encoder"], "--new_audio", tmp_path / "empty",
                                                "--out_dir", out)
    assert "must not contain whitespace" in err("--base_ckpt", tiny_base["encoder"], "--new_audio", audio,
                                                "--out_dir", tmp_path / "out dir")
    assert "same folder" in err("--base_ckpt", tiny_base["encoder"], "--new_audio", audio, "--prior_audio", audio,
                                "--out_dir", out)


# ---------------------------------------------------------------- no prior audio, tokenizer distillation

class _Stop(Exception):
    pass


def _run_until_training(monkeypatch, opts):
    """Run the pipeline in-process, stopping at the first ESPnet training; returns its (module, argv)."""
    from espnet2_sonar.adapt import pipeline

    calls = []

    def fake(module, out, argv):
        calls.append((module, out, argv))
        raise _Stop

    monkeypatch.setattr(pipeline, "run_espnet", fake)
    with pytest.raises(_Stop):
        pipeline.adapt(opts)
    return calls[0]


@pytest.mark.timeout(120)
def test_without_prior_audio_trains_without_replay_and_says_so(tmp_path, tiny_base, monkeypatch, caplog):
    from espnet2_sonar.adapt.pipeline import AdaptOptions

    make_folder(tmp_path / "new", seed=2, extra=4)
    out = tmp_path / "out"
    opts = AdaptOptions(base_ckpt=tiny_base["encoder"], new_audio=tmp_path / "new", out_dir=out, nj=1, progress=False)
    with caplog.at_level("WARNING"):
        module, exp, argv = _run_until_training(monkeypatch, opts)
    assert "No --prior_audio" in caplog.text and "rho = 0" in caplog.text and "unguarded by replay" in caplog.text
    assert module == "sonar_train" and exp == out / "exp" / "sonar"
    assert argv[argv.index("--config") + 1].endswith("conf/tiny/train_sonar.yaml")  # a tiny checkpoint
    assert f"init={out / 'base' / 'tokenizer.pt'}" in argv  # the tokenizer next to the checkpoint
    assert not (out / "replay").exists() and not (out / "data" / "prior").exists()
    assert set(_table(out / "lists" / "train" / "train" / "is_replay").values()) == {"0"}
    run = json.loads((out / "run.json").read_text())
    assert run["prior_clips"] is None and run["tokenizer"] == "beside"


@pytest.mark.timeout(120)
def test_without_a_tokenizer_one_is_distilled_from_the_base_encoder(tmp_path, tiny_base, monkeypatch, caplog):
    from espnet2_sonar.adapt.pipeline import AdaptOptions

    make_folder(tmp_path / "new", seed=3)
    make_folder(tmp_path / "prior", seed=4, extra=4)
    out = tmp_path / "out"
    opts = AdaptOptions(base_ckpt=tiny_base["alone"], new_audio=tmp_path / "new", prior_audio=tmp_path / "prior",
                        out_dir=out, method="dcp", nj=1, progress=False)
    with caplog.at_level("WARNING"):
        module, exp, argv = _run_until_training(monkeypatch, opts)
    assert "distilling a tokenizer from the base encoder on the prior pool" in caplog.text
    assert module == "tokenizer_train" and exp == out / "exp" / "tokenizer"
    assert f"teacher={out / 'base' / 'encoder.pt'}" in argv
    assert argv[argv.index("--config") + 1].endswith("conf/tiny/tokenizer.yaml")
    # distilled on the prior pool's training part: held-out drift clips are not in its lists
    held = set(_table(out / "data" / "prior_heldout" / "wav.scp"))
    assert held
    for split in ("train", "valid"):
        assert not held & set(_table(out / "lists" / "tokenizer" / split / "wav.scp"))


# ---------------------------------------------------------------- end to end

@pytest.mark.timeout(400)
def test_adapt_end_to_end_then_a_rerun_trains_nothing(tmp_path, tiny_base, monkeypatch):
    from espnet2_sonar.adapt import pipeline
    from espnet2_sonar.beats.interop import load_official
    from espnet2_sonar.tokenizer.interop import load_official_tokenizer

    make_folder(tmp_path / "new audio", seed=5, extra=6)
    make_folder(tmp_path / "prior audio", seed=6, extra=10)
    tasks = tmp_path / "tasks"
    for split, n in (("train", 6), ("test", 4)):
        d = write_wav_dir(tasks / "tones" / split, f"{split}", n, seed=10 + n)
        (d / "utt2label").write_text("".join(f"{split}{i:03d} {'ab'[i % 2]}\n" for i in range(n)))
    out = tmp_path / "out"
    argv = ["--base_ckpt", tiny_base["encoder"], "--new_audio", tmp_path / "new audio",
            "--prior_audio", tmp_path / "prior audio", "--out_dir", out, "--nj", "1", "--no_progress",
            "--heldout_share", "0.2", "--probe_tasks", tasks, "--train_args", TRAIN_ARGS,
            "--sample_args", "--max_seconds 2 --num_strata 4"]

    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # Ctrl-C when training starts: exit 130, nothing exported
        m.setattr(pipeline, "run_espnet", interrupted)
        assert _cli(argv) == 130
    assert (out / "replay" / "wav.scp").is_file() and not (out / "encoder.pt").exists()
    assert not list(out.rglob(".*.tmp*"))  # no temp file or dir left behind
    assert _cli(argv) == 0, (out / "adapt.log").read_text()[-3000:]  # resumes

    load_official(out / "encoder.pt")
    load_official_tokenizer(out / "tokenizer.pt")
    md = (out / "report.md").read_text()
    for section in ("## Drift from the base model", "## Codebook", "## Frozen probes", "## Timings", "## Data"):
        assert section in md
    rep = json.loads((out / "report.json").read_text())
    drift = rep["drift"]["drift"]
    assert set(rep["drift"]["audio"]) == {"prior_heldout", "new_heldout"}
    assert 0.0 <= drift["adapted"]["prior_heldout"]["last"] < drift["random"]["prior_heldout"]["last"]
    assert rep["codebook"]["base_codes"] > 0 and rep["codebook"]["per_epoch"]["epoch"] == [1]
    assert "codebook_size" in rep["codebook"]["per_epoch"]
    assert set(rep["probes"]["tasks"]["tones"]) >= {"base", "adapted", "delta"}
    assert rep["replay"]["sampled"] > 0 and rep["training"]["replay_items"] > 0
    assert rep["command"].startswith("python") and "--new_audio" in rep["command"]

    # held-out prior clips (drift audio) are in no training or replay list, by id or by path
    held = _table(out / "data" / "prior_heldout" / "wav.scp")
    assert held
    lists = [out / "replay" / "wav.scp", out / "lists" / "train" / "train" / "wav.scp",
             out / "lists" / "train" / "valid" / "wav.scp"]
    for scp in lists:
        table = _table(scp)
        assert not {k.split("__rep")[0] for k in table} & set(held), scp
        assert not set(table.values()) & set(held.values()), scp
    # ... while the replay candidates are the rest of the prior pool
    assert set(_table(out / "replay" / "wav.scp")) <= set(_table(out / "data" / "prior_train" / "wav.scp"))

    # a rerun trains nothing and exports nothing again
    log = out / "exp" / "sonar" / "train.log"
    kept = (log, out / "encoder.pt", out / "tokenizer.pt", out / "exp" / "sonar" / ".done")
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    assert _cli(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    again = json.loads((out / "report.json").read_text())
    assert again["timings"]["this_run"]["training (sonar)"]["status"].startswith("skipped")
    assert again["timings"]["this_run"]["export"]["status"].startswith("skipped")
    # other inputs on the same out_dir: refused before anything is rewritten, not silently reused
    heldout_scp = (out / "data" / "prior_heldout" / "wav.scp").read_text()
    argv2 = [a if a != "0.2" else "0.3" for a in argv]
    assert _cli(argv2) == 2
    assert "heldout_share" in (out / "adapt.log").read_text().splitlines()[-1]
    assert (out / "data" / "prior_heldout" / "wav.scp").read_text() == heldout_scp
