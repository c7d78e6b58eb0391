"""Kaldi data dirs: atomic write/read round trip, validation errors name file and problem."""

import numpy as np
import pytest
import soundfile as sf

from espnet2_sonar.data.kaldi_dir import (
    KaldiDirError,
    Utterance,
    read_kaldi_dir,
    validate_kaldi_dir,
    write_kaldi_dir,
)


def _audio(tmp_path, name, seconds=0.5, sr=16000, channels=1):
    p = tmp_path / "audio" / name
    p.parent.mkdir(exist_ok=True)
    x = np.full((int(sr * seconds), channels), 0.1, dtype=np.float32)
    sf.write(p, x, sr, subtype="PCM_16")
    return str(p)


@pytest.mark.timeout(30)
def test_round_trip_sorted_and_labels(tmp_path):
    utts = [Utterance("b-2", _audio(tmp_path, "b.flac"), "b", 0.5, "dog"),
            Utterance("a-1", _audio(tmp_path, "a.flac", 0.25), "a", 0.25, "cat")]
    d = write_kaldi_dir(tmp_path / "train", utts, labelled=True)
    assert (d / "wav.scp").read_text().splitlines()[0].startswith("a-1 /")
    assert (d / "spk2utt").read_text() == "a a-1\nb b-2\n"
    back = read_kaldi_dir(d)
    assert back == sorted(utts, key=lambda u: u.utt_id)
    assert validate_kaldi_dir(d, labelled=True) == back
    # rewriting replaces the dir whole (no stale files, no temp dirs left)
    write_kaldi_dir(d, utts[:1], labelled=False)
    assert not (d / "utt2label").exists() and len(read_kaldi_dir(d)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "train"]


@pytest.mark.timeout(30)
def test_write_rejects_bad_input(tmp_path):
    a = _audio(tmp_path, "a.flac")
    with pytest.raises(KaldiDirError, match="duplicate"):
        write_kaldi_dir(tmp_path / "d", [Utterance("x", a, "x", 0.5), Utterance("x", a, "x", 0.5)], False)
    with pytest.raises(KaldiDirError, match="no label"):
        write_kaldi_dir(tmp_path / "d", [Utterance("x", a, "x", 0.5)], labelled=True)
    with pytest.raises(KaldiDirError, match="absolute"):
        write_kaldi_dir(tmp_path / "d", [Utterance("x", "rel.flac", "x", 0.5)], False)
    assert not (tmp_path / "d").exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("problem", ["duration", "rate", "stereo", "missing_audio", "no_label_file", "unsorted"])
def test_validate_finds_problem(tmp_path, problem):
    good = _audio(tmp_path, "g.flac")
    utts = [Utterance("u1", good, "u1", 0.5, "x")]
    if problem == "duration":
        utts = [Utterance("u1", good, "u1", 0.9, "x")]
    elif problem == "rate":
        utts = [Utterance("u1", _audio(tmp_path, "r.flac", sr=8000), "u1", 0.5, "x")]
    elif problem == "stereo":
        utts = [Utterance("u1", _audio(tmp_path, "s.flac", channels=2), "u1", 0.5, "x")]
    elif problem == "missing_audio":
        utts = [Utterance("u1", str(tmp_path / "nope.flac"), "u1", 0.5, "x")]
    d = write_kaldi_dir(tmp_path / "set", utts, labelled=True)
    if problem == "no_label_file":
        (d / "utt2label").unlink()
    if problem == "unsorted":
        write_kaldi_dir(d, utts + [Utterance("u0", good, "u0", 0.5, "x")], labelled=True)
        (d / "wav.scp").write_text("".join(reversed((d / "wav.scp").read_text().splitlines(True))))
    with pytest.raises(KaldiDirError) as ei:
        validate_kaldi_dir(d, labelled=True)
    msg = str(ei.value)
    assert str(d) in msg
    assert {"duration": "lasts", "rate": "8000 Hz", "stereo": "2 channel", "missing_audio": "missing",
            "no_label_file": "utt2label", "unsorted": "sorted"}[problem] in msg
