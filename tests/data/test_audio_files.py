"""The one audio-file scan and id scheme behind the folder recipe and ``adapt``."""

import os

import pytest

from espnet2_sonar.data.audio_files import AUDIO_EXTENSIONS, NEEDS_FFMPEG, find_audio, recording_id, sanitize


def test_scan_finds_audio_recursively_in_path_order_and_counts_the_rest(tmp_path):
    for rel in ["b/x.WAV", "a/y.flac", "a/deep/z.m4a", "top.bwf", "notes.txt", ".hidden.wav", "a/.cache/w.wav"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    os.symlink(tmp_path / "a", tmp_path / "b" / "loop")  # a folder linked twice is read once
    files, ignored = find_audio(tmp_path)
    rels = [f.relative_to(tmp_path).as_posix() for f in files]
    assert rels == ["a/deep/z.m4a", "a/y.flac", "b/x.WAV", "top.bwf"]
    assert ignored == 2  # notes.txt and the hidden file; hidden folders are not entered
    files, _ = find_audio(tmp_path, exclude=[tmp_path / "a"])
    assert [f.name for f in files] == ["x.WAV", "top.bwf"]
    assert NEEDS_FFMPEG < AUDIO_EXTENSIONS


def test_scan_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        find_audio(tmp_path / "nope")
    (tmp_path / "f.wav").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="f.wav"):
        find_audio(tmp_path / "f.wav")


def test_ids_are_safe_stable_and_keep_look_alike_names_apart():
    a, b = recording_id("new", "a b.wav", stem_limit=64), recording_id("new", "a_b.wav", stem_limit=64)
    assert a != b and a.startswith("new-a_b-") and " " not in a
    assert recording_id("new", "a b.wav", stem_limit=64) == a
    assert recording_id("my set!", "x/" + "s" * 100 + ".wav", stem_limit=10, prefix_limit=4).split("-")[:2] == ["my_s", "x_ssssssss"]
    assert sanitize("...") == "x" and sanitize("é-t é", 3) == "t" and sanitize("ab cd", 4) == "ab_c"
