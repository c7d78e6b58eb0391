"""The format step of Kaldi-style dirs (``data/format_dir.py``): pipes, segments, any
rate/channels -> 16 kHz mono FLAC, reuse on rerun, bad input named by file and line, and the
recipe layout of a whole corpus."""

import os
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_sonar.data.format_dir import FormatError, format_corpus, format_dir, parse_name_dirs
from espnet2_sonar.data.kaldi_dir import read_table, validate_kaldi_dir

from audio_fixtures import durations, own_dirs, write_tone


@pytest.mark.timeout(60)
def test_format_resolves_pipes_and_rates_to_16k_mono_flac(tmp_path):
    src = tmp_path / "in"
    a = write_tone(tmp_path / "audio" / "a 8k.wav", 1.0, 8000)  # a path with a space
    b = write_tone(tmp_path / "audio" / "b.flac", 2.0, 44100, channels=2)
    c = write_tone(tmp_path / "audio" / "c.wav", 1.5, 44100, channels=2)
    d = write_tone(tmp_path / "audio" / "d.ogg", 0.75, 22050, fmt="OGG")
    py = (f"{shlex.quote(sys.executable)} -c 'import sys; "
          f"sys.stdout.buffer.write(open(sys.argv[1], \"rb\").read())' {shlex.quote(str(d))} |")
    src.mkdir()
    (src / "wav.scp").write_text(f"utt-a {a}\nutt-b {b}\nutt-c cat {shlex.quote(str(c))} |\nutt-d {py}\n")
    (src / "utt2label").write_text("utt-a x\nutt-b y\nutt-c x\nutt-d y\n")
    rep = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=True, nj=1, progress=False)
    utts = validate_kaldi_dir(tmp_path / "out", labelled=True)  # 16 kHz mono, durations match the files
    assert [u.utt_id for u in utts] == ["utt-a", "utt-b", "utt-c", "utt-d"]
    assert all(u.path.endswith(".flac") and Path(u.path).parent == tmp_path / "flac" for u in utts)
    durs = durations(tmp_path / "out")
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
    write_tone(b, 1.0, 44100, channels=2)
    third = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=True, progress=False)
    assert third.reused == 3 and durations(tmp_path / "out")["utt-b"] == pytest.approx(1.0, abs=2e-3)
    assert len(list((tmp_path / "flac").glob("*.flac"))) == 4


@pytest.mark.timeout(60)
def test_format_cuts_segments_from_files_and_pipes(tmp_path):
    src = tmp_path / "in"
    rec1 = write_tone(tmp_path / "rec1.wav", 3.0, 44100, channels=2)
    rec2 = write_tone(tmp_path / "rec2.wav", 2.0, 8000)
    src.mkdir()
    (src / "wav.scp").write_text(f"r1 {rec1}\nr2 cat {rec2} |\nr3 {rec1}\n")  # r3: no segment, not used
    (src / "segments").write_text("s1 r1 0.0 1.25\ns2 r1 1.25 -1\ns3 r2 0.5 1.5\ns4 r2 1.0 2.2\n")
    (src / "utt2spk").write_text("s1 alice\ns2 alice\ns3 bob\ns4 bob\n")
    rep = format_dir(src, tmp_path / "out", tmp_path / "flac", labelled=False, progress=False)
    validate_kaldi_dir(tmp_path / "out", labelled=False)
    # s2: to the end of r1; s4 ends 0.2 s past r2 (within Kaldi's overshoot tolerance): cut at the end
    assert durations(tmp_path / "out") == pytest.approx({"s1": 1.25, "s2": 1.75, "s3": 1.0, "s4": 1.0}, abs=2e-3)
    assert read_table(tmp_path / "out" / "spk2utt") == {"alice": "s1 s2", "bob": "s3 s4"}
    assert rep.unused_recordings == 1 and not (tmp_path / "out" / "utt2label").exists()


@pytest.mark.timeout(60)
def test_format_data_cli_one_dir_leaves_foreign_files_alone(tmp_path):
    from espnet2_sonar.bin.format_data import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "wav.scp").write_text(f"u1 {write_tone(tmp_path / 'a.wav', 0.5, 48000, channels=2)}\n")
    mine = write_tone(tmp_path / "flac" / "myown-0123abcd.flac", 0.5, 16000)  # named like ours, not written by us
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
    good = write_tone(tmp_path / "good.wav", 1.0, 16000)
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


@pytest.mark.timeout(60)
def test_format_corpus_writes_the_recipe_layout(tmp_path):
    own_dirs(tmp_path)
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
