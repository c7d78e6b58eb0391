"""Your own corpus in the recipe: the format step of Kaldi-style dirs (pipes, segments, any
rate/channels -> 16 kHz mono FLAC; bad input named by file and line), the folder builder of
egs2/folder_audio, sonar.sh's checks of --prior_dir/--domain_dirs/--task_dirs, and the
folder_audio recipe end to end on a tiny folder."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_sonar.data.folder_corpus import build_folder_corpus, example_destination, scan_layout, split_task
from espnet2_sonar.data.format_dir import FormatError, format_corpus, format_dir, parse_name_dirs
from espnet2_sonar.data.kaldi_dir import read_kaldi_dir, read_table, validate_kaldi_dir

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "sonar1"
FOLDER_RECIPE = REPO / "egs2" / "folder_audio" / "sonar1"
DEBIAN_RECIPE = REPO / "egs2" / "debian_sounds" / "sonar1"


def _tone(path: Path, seconds: float, sr: int, channels: int = 1, freq: float = 440.0, fmt=None):
    """A sine (each channel at another level) written with soundfile in the format of the suffix."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    data = np.stack([x * (1.0 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, format=fmt)
    return path


def _durations(d: Path) -> dict:
    return {k: float(v) for k, v in read_table(d / "utt2dur").items()}


# ---------------------------------------------------------------- the format step

@pytest.mark.timeout(60)
def test_format_resolves_pipes_and_rates_to_16k_mono_flac(tmp_path):
    src = tmp_path / "in"
    a = _tone(tmp_path / "audio" / "a 8k.wav", 1.0, 8000)  # a path with a space
    b = _tone(tmp_path / "audio" / "b.flac", 2.0, 44100, channels=2)
    c = _tone(tmp_path / "audio" / "c.wav", 1.5, 44100, channels=2)
    d = _tone(tmp_path / "audio" / "d.ogg", 0.75, 22050, fmt="OGG")
    py = (f"{shlex.quote(sys.executable)} -c 'import sys; "
          f"sys.stdout.buffer.write(open(sys.argv[1], \"rb\").read())' {shlex.quote(str(d))} |")
    src.mkdir()
    (src / "wav.scp").write_text(f"utt-a {a}\nutt-b {b}\nutt-c cat {shlex.quote(str(c))} |\nutt-d {py}\n")
    (src / "utt2label").write_text("utt-a x\nutt-b y\nutt-c x\nutt-d y\n")
    rep = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=True, nj=1, progress=False)
    utts = validate_kaldi_dir(tmp_path / "out", labelled=True)  # 16 kHz mono, durations match the files
    assert [u.utt_id for u in utts] == ["utt-a", "utt-b", "utt-c", "utt-d"]
    assert all(u.path.endswith(".flac") and Path(u.path).parent == tmp_path / "flac" for u in utts)
    durs = _durations(tmp_path / "out")
    assert durs == pytest.approx({"utt-a": 1.0, "utt-b": 2.0, "utt-c": 1.5, "utt-d": 0.75}, abs=2e-3)
    assert read_table(tmp_path / "out" / "utt2label") == {"utt-a": "x", "utt-b": "y", "utt-c": "x", "utt-d": "y"}
    assert read_table(tmp_path / "out" / "utt2spk")["utt-c"] == "utt-c"  # no utt2spk: the recording
    wave, sr = sf.read(utts[2].path)
    assert sr == 16000 and wave.ndim == 1
    assert np.abs(wave).max() == pytest.approx(0.3 * 0.85, abs=0.02)  # the channels' mean (0.3 and 0.21)
    assert rep.reused == 0 and not rep.dropped
    # a rerun converts nothing: the same files, untouched
    mtimes = {u.path: os.stat(u.path).st_mtime_ns for u in utts}
    again = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=True, progress=False)
    assert again.reused == 4 and {u.path: os.stat(u.path).st_mtime_ns for u in again.utts} == mtimes
    # a changed input gets a new file; the old one is removed
    _tone(b, 1.0, 44100, channels=2)
    third = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=True, progress=False)
    assert third.reused == 3 and _durations(tmp_path / "out")["utt-b"] == pytest.approx(1.0, abs=2e-3)
    assert len(list((tmp_path / "flac").glob("*.flac"))) == 4


@pytest.mark.timeout(60)
def test_format_cuts_segments_from_files_and_pipes(tmp_path):
    src = tmp_path / "in"
    rec1 = _tone(tmp_path / "rec1.wav", 3.0, 44100, channels=2)
    rec2 = _tone(tmp_path / "rec2.wav", 2.0, 8000)
    src.mkdir()
    (src / "wav.scp").write_text(f"r1 {rec1}\nr2 cat {rec2} |\nr3 {rec1}\n")  # r3: no segment, not used
    (src / "segments").write_text("s1 r1 0.0 1.25\ns2 r1 1.25 -1\ns3 r2 0.5 1.5\ns4 r2 1.0 2.2\n")
    (src / "utt2spk").write_text("s1 alice\ns2 alice\ns3 bob\ns4 bob\n")
    rep = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=False, progress=False)
    validate_kaldi_dir(tmp_path / "out", labelled=False)
    # s2: to the end of r1; s4 ends 0.2 s past r2 (within Kaldi's overshoot tolerance): cut at the end
    assert _durations(tmp_path / "out") == pytest.approx({"s1": 1.25, "s2": 1.75, "s3": 1.0, "s4": 1.0}, abs=2e-3)
    assert read_table(tmp_path / "out" / "spk2utt") == {"alice": "s1 s2", "bob": "s3 s4"}
    assert rep.unused_recordings == 1 and not (tmp_path / "out" / "utt2label").exists()


@pytest.mark.timeout(60)
def test_format_data_cli_one_dir_leaves_foreign_files_alone(tmp_path):
    from espnet2_sonar.bin.format_data import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "wav.scp").write_text(f"u1 {_tone(tmp_path / 'a.wav', 0.5, 48000, channels=2)}\n")
    mine = _tone(tmp_path / "flac" / "myown-0123abcd.flac", 0.5, 16000)  # named like ours, not written by us
    assert main(["--src", str(src), "--dst", str(tmp_path / "out"), "--audio_dir", str(tmp_path / "flac"),
                 "--quiet"]) == 0
    assert validate_kaldi_dir(tmp_path / "out", labelled=False)[0].duration == pytest.approx(0.5, abs=1e-3)
    assert mine.is_file()
    assert main(["--src", str(tmp_path / "nope"), "--dst", str(tmp_path / "out2"), "--quiet"]) == 1


def _bad_dir(tmp_path, wav_scp, **files):
    src = tmp_path / "bad"
    src.mkdir(exist_ok=True)
    if wav_scp is not None:
        (src / "wav.scp").write_text(wav_scp)
    for name, text in files.items():
        (src / name).write_text(text)
    return src


@pytest.mark.timeout(60)
def test_format_errors_name_the_file_and_line(tmp_path):
    good = _tone(tmp_path / "good.wav", 1.0, 16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    out, flac = tmp_path / "out", tmp_path / "flac"

    def fails(src, labelled=False, **kw):
        with pytest.raises(FormatError) as e:
            format_dir(src, out, flac, labelled=labelled, progress=False, **kw)
        return str(e.value)

    src = tmp_path / "empty"
    src.mkdir()
    assert f"{src / 'wav.scp'}: missing" in fails(src)
    msg = fails(_bad_dir(tmp_path, f"u1 {good}\nu2 {junk}\n"))
    assert f"{tmp_path / 'bad' / 'wav.scp'}:2" in msg and str(junk) in msg and "undecodable" in msg
    msg = fails(_bad_dir(tmp_path, f"u1 {good}\nu2 sh -c 'echo oops >&2; exit 3' |\n"))
    assert f"{tmp_path / 'bad' / 'wav.scp'}:2" in msg and "exit 3" in msg and "oops" in msg
    msg = fails(_bad_dir(tmp_path, f"u1 {good}\n", segments="s1 u1 0.0 0.5\ns2 u1 0.8 0.8\n"))
    assert f"{tmp_path / 'bad' / 'segments'}:2" in msg and "not after its start" in msg
    msg = fails(_bad_dir(tmp_path, f"u1 {good}\n", segments="s1 u1 0.0 0.5\ns2 u1 2.0 3.0\n"))
    assert f"{tmp_path / 'bad' / 'segments'}:2" in msg and "after the end of recording u1" in msg
    msg = fails(_bad_dir(tmp_path, f"u1 {good}\n", segments="s1 u9 0.0 0.5\n"))
    assert f"{tmp_path / 'bad' / 'segments'}:1" in msg and "u9" in msg
    (tmp_path / "bad" / "segments").unlink()
    msg = fails(_bad_dir(tmp_path, f"u1 {good}\nu2 {good}\n", utt2label="u1 dog\n"), labelled=True)
    assert "utt2label" in msg and "u2" in msg
    (tmp_path / "bad" / "utt2label").unlink()
    assert "utt2label: missing" in fails(_bad_dir(tmp_path, f"u1 {good}\n"), labelled=True)
    assert f"{tmp_path / 'bad' / 'wav.scp'}:1" in fails(_bad_dir(tmp_path, "bad/id /x.wav\n"))
    # --skip_bad: the bad utterance is dropped with a warning, the rest is written
    rep = format_dir(_bad_dir(tmp_path, f"u1 {good}\nu2 {junk}\nu3 false |\n"), out, flac, labelled=False,
                     skip_bad=True, progress=False)
    assert [u.utt_id for u in rep.utts] == ["u1"] and len(rep.bad) == 2


def _kaldi(d: Path, n: int) -> Path:
    """A Kaldi dir of ``n`` 22.05 kHz files with labels a/b (ids unique across dirs)."""
    d.mkdir(parents=True)
    lines, labels = [], []
    for i in range(n):
        f = _tone(d.parent / "src" / f"{d.name}{i}.wav", 0.5, 22050, freq=300 + 50 * i)
        lines.append(f"{d.parent.name}-{d.name}-{i} {f}\n")
        labels.append(f"{d.parent.name}-{d.name}-{i} {'a' if i % 2 else 'b'}\n")
    (d / "wav.scp").write_text("".join(lines))
    (d / "utt2label").write_text("".join(labels))
    return d


def _own_dirs(tmp_path: Path) -> Path:
    """mine/{prior,birds} pools and the task mine/calls/{train,test} (no valid split: allowed)."""
    _kaldi(tmp_path / "mine" / "prior", 3)
    _kaldi(tmp_path / "mine" / "birds", 2)
    for split in ("train", "test"):
        _kaldi(tmp_path / "mine" / "calls" / split, 4)
    return tmp_path / "mine"


@pytest.mark.timeout(60)
def test_format_corpus_writes_the_recipe_layout(tmp_path):
    _own_dirs(tmp_path)
    domains = parse_name_dirs(f"birds={tmp_path / 'mine' / 'birds'}", "--domain_dirs")
    tasks = parse_name_dirs(f"'calls={tmp_path / 'mine' / 'calls'}'", "--task_dirs")
    reps = format_corpus(tmp_path / "data", tmp_path / "mine" / "prior", domains, tasks, progress=False)
    data = tmp_path / "data"
    assert [r.dst.relative_to(data).as_posix() for r in reps] == [
        "pools/prior", "pools/birds", "tasks/calls/train", "tasks/calls/test"]
    for d in ("pools/prior", "pools/birds"):
        validate_kaldi_dir(data / d, labelled=False)
    for d in ("tasks/calls/train", "tasks/calls/test"):
        validate_kaldi_dir(data / d, labelled=True)
    with pytest.raises(FormatError, match="unique across the pools"):
        format_corpus(tmp_path / "data2", tmp_path / "mine" / "prior", {"again": tmp_path / "mine" / "prior"},
                      progress=False)
    (tmp_path / "mine" / "calls" / "test" / "utt2label").write_text(
        "calls-test-0 a\ncalls-test-1 a\ncalls-test-2 zebra\ncalls-test-3 a\n")
    with pytest.raises(FormatError, match=r"\['zebra'\] do not occur in its train split"):
        format_corpus(data, None, {}, tasks, progress=False)
    with pytest.raises(FormatError, match="no such dir"):
        format_corpus(data, None, {}, {"nope": tmp_path / "nope"}, progress=False)
    with pytest.raises(FormatError, match="not name=DIR"):
        parse_name_dirs("birds", "--domain_dirs")


# ---------------------------------------------------------------- the folder builder

def _folder(root: Path, per_label: int = 4, long_s: float = 0.0) -> Path:
    """prior/ and two domains (mixed formats, nested, spaces), two tasks with two labels."""
    kinds = [(".wav", 44100, 2, None), (".flac", 8000, 1, None), (".ogg", 22050, 1, "OGG"), (".wav", 16000, 1, None)]
    for i in range(6):
        ext, sr, ch, fmt = kinds[i % 4]
        _tone(root / "prior" / f"sub dir {i % 2}" / "deeper" / f"clip {i}{ext}", 0.6 + 0.1 * i, sr, ch,
              200 + 40 * i, fmt)
    for dom in ("birds", "city"):
        for i in range(4):
            ext, sr, ch, fmt = kinds[(i + 1) % 4]
            _tone(root / dom / f"take {i}{ext}", 0.8, sr, ch, 500 + 90 * i, fmt)
    for task, labels in (("calls", ("alarm call", "song")), ("engines", ("car", "truck"))):
        for li, label in enumerate(labels):
            for i in range(per_label):
                ext, sr, ch, fmt = kinds[(i + li) % 4]
                _tone(root / "tasks" / task / label / f"n{i // 2}" / f"x {i}{ext}", 0.7, sr, ch,
                      300 + 500 * li + 20 * i, fmt)
    if long_s:
        _tone(root / "city" / "long recording.wav", long_s, 16000)
    (root / "prior" / "notes.txt").write_text("not audio")
    (root / "prior" / ".hidden.wav").write_bytes(b"junk")
    return root


@pytest.mark.timeout(120)
def test_folder_corpus_builds_valid_kaldi_dirs(tmp_path):
    root = _folder(tmp_path / "my audio", long_s=23.0)
    corpus = build_folder_corpus(root, tmp_path / "data", nj=1, progress=False)
    data = tmp_path / "data"
    assert corpus.domains == ["birds", "city"]
    assert corpus.tasks == {"calls": ["alarm_call", "song"], "engines": ["car", "truck"]}
    assert corpus.ignored == 2  # notes.txt and the hidden file
    for pool in ("prior", "birds", "city"):
        utts = validate_kaldi_dir(data / "pools" / pool, labelled=False)
        assert all(" " not in u.utt_id and u.path.endswith(".flac") for u in utts)
    assert len(read_kaldi_dir(data / "pools" / "prior")) == 6
    city = read_kaldi_dir(data / "pools" / "city")
    long_pieces = sorted(u.duration for u in city if "long_recording" in u.utt_id)
    assert long_pieces == pytest.approx([3.0, 10.0, 10.0], abs=2e-3)  # cut into <= 10 s pieces
    assert len({u.spk for u in city if "long_recording" in u.utt_id}) == 1  # one recording, one speaker
    for task in ("calls", "engines"):
        splits = {s: validate_kaldi_dir(data / "tasks" / task / s, labelled=True) for s in ("train", "valid", "test")}
        train_labels = {u.label for u in splits["train"]}
        assert len(train_labels) == 2
        assert all(u.label in train_labels for s in ("valid", "test") for u in splits[s])
        ids = [u.utt_id for us in splits.values() for u in us]
        assert len(ids) == 8 == len(set(ids))
    summary = json.loads((data / "folder_corpus.json").read_text())
    assert summary["domains"] == ["birds", "city"] and len(summary["sets"]) == 9
    # a rerun reuses every file
    again = build_folder_corpus(root, data, progress=False)
    assert all(r.reused == len(r.utts) for r in again.reports)


@pytest.mark.timeout(60)
def test_folder_corpus_errors_and_stable_split(tmp_path):
    root = _folder(tmp_path / "f", per_label=6)
    (root / "birds" / "broken.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(FormatError) as e:
        build_folder_corpus(root, tmp_path / "data", progress=False)
    assert str(root / "birds" / "broken.wav") in str(e.value)
    corpus = build_folder_corpus(root, tmp_path / "data", skip_bad=True, progress=False)
    assert [p for p, _ in corpus.bad] == [str(root / "birds" / "broken.wav")]
    with pytest.raises(FormatError, match="no prior/ folder"):
        scan_layout(tmp_path / "f" / "birds")
    (root / "tasks" / "calls" / "song").rename(root / "tasks" / "calls" / ".song")
    with pytest.raises(FormatError, match="at least 2 label"):
        scan_layout(root)
    (root / "tasks" / "calls" / ".song").rename(root / "tasks" / "calls" / "song")
    # the split is stable: a new file leaves every other file where it was
    pools, tasks, _ = scan_layout(root)
    before = {f.rec_id: s for s, fs in split_task("calls", tasks["calls"]).items() for f in fs}
    _tone(root / "tasks" / "calls" / "song" / "new one.wav", 0.7, 16000)
    pools, tasks, _ = scan_layout(root)
    after = {f.rec_id: s for s, fs in split_task("calls", tasks["calls"]).items() for f in fs}
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1


def test_example_folder_layout_rules():
    wesnoth = "usr/share/games/wesnoth/1.16/data/core/sounds/"
    assert example_destination("wesnoth-1.16-data", wesnoth + "wolf-die-2.ogg") == "tasks/cries/die/wolf-die-2.ogg"
    assert example_destination("wesnoth-1.16-data", wesnoth + "ambient/night.ogg") \
        == "prior/wesnoth sounds/ambient/night.ogg"
    prompt = "usr/share/asterisk/sounds/en_US_f_Allison/digits/1.gsm"
    assert example_destination("asterisk-core-sounds-en-gsm", prompt) == "speech/asterisk prompts/digits/1.gsm"
    assert example_destination("minetest-data", "x/sounds/default_dug_metal.2.ogg") \
        == "tasks/minetest_foley/dug/default_dug_metal.2.ogg"
    assert example_destination("minetest-data", "x/sounds/fire_large.ogg") == "env/minetest/fire_large.ogg"


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
def test_sonar_sh_checks_and_formats_own_dirs(tmp_path):
    d = str(tmp_path)
    bad = _sonar(["--domain_dirs", f"birds={d}", "--domains", "music"])
    assert bad.returncode != 0 and "--domain_dirs gives 'birds'" in bad.stderr, bad.stderr[-2000:]
    bad = _sonar(["--prior_dir", d, "--domain_dirs", f"birds={d}", "--task_dirs", f"calls={d}",
                  "--domains", "birds music", "--task_domain", "calls=birds"])
    assert bad.returncode != 0 and "--domains lists 'music'" in bad.stderr, bad.stderr[-2000:]
    bad = _sonar(["--prior_dir", d, "--domain_dirs", f"birds={d}", "--task_dirs", f"calls={d}", "--domains", "birds"])
    assert bad.returncode != 0 and "--task_domain gives no domain for task 'calls'" in bad.stderr, bad.stderr[-2000:]
    # all three given: stage 1 formats them and does not run local/data.sh (the debian builder)
    mine = _own_dirs(tmp_path)
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
    root = _folder(tmp_path / "tiny folder", per_label=5)
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
